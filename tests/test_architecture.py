"""The floors of the package (docs/architecture.md) and the backend protocol.

* ``stlsim.kernels`` is array in / array out: it imports nothing above it.
* Every backend is one ``Backend`` object with the protocol's fields; every engine
  module has ``run_forward`` and ``run_backward``.
"""
import ast
import collections
import pathlib

import numpy as np
import pytest

import stlsim
from stlsim.engines import BACKENDS, ENGINES, Backend, FusedResult, get_backend, get_engine

PACKAGE = pathlib.Path(stlsim.__file__).resolve().parent
# What a kernel module may import from stlsim: its own package and the floor below it.
KERNEL_MAY_IMPORT = {"stlsim.kernels", "stlsim._checks"}


def _stlsim_imports(path: pathlib.Path) -> set:
    """Absolute names of the stlsim modules ``path`` imports (anywhere in the file)."""
    module = "stlsim." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module[:-len(".__init__")]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("stlsim"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("stlsim"):             # the package, and what may be
                names.add(target)                       # a submodule of it: from . import x
                names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _floor_of(name: str) -> str:
    for allowed in KERNEL_MAY_IMPORT:
        if name == allowed or name.startswith(allowed + "."):
            return allowed
    return name


def test_kernels_import_nothing_above_them():
    kernel_files = sorted((PACKAGE / "kernels").glob("*.py"))
    assert len(kernel_files) >= 7
    offenders = {}
    for path in kernel_files:
        bad = {name for name in _stlsim_imports(path) if _floor_of(name) not in KERNEL_MAY_IMPORT}
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_the_import_checker_sees_relative_imports():
    # The check above can fail: an engine module imports upwards as seen by it.
    names = _stlsim_imports(PACKAGE / "engines" / "fused_cpu.py")
    assert "stlsim.kernels.cpu" in names and "stlsim.engines.backend" in names
    assert "stlsim.readout" in names
    assert any(_floor_of(n) not in KERNEL_MAY_IMPORT for n in names)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_is_one_protocol_object(name):
    try:
        backend = get_backend(name)
    except RuntimeError as err:                      # cuda without a GPU or simulator
        assert "backend" in str(err)
        pytest.skip(str(err))
    assert isinstance(backend, Backend) and backend.name == name
    assert callable(backend.lif_forward) and callable(backend.lif_backward)
    assert backend.fused is None or callable(backend.fused)
    assert isinstance(backend.calls, collections.Counter)
    assert get_backend(name) is backend                # built once, at import


def test_engines_have_forward_and_backward():
    for name in ENGINES:
        module = get_engine(name)
        assert callable(module.run_forward) and callable(module.run_backward)


def test_fused_step_returns_one_result_type():
    pytest.importorskip("numba")
    net = stlsim.Network([stlsim.Dense(5, 6), stlsim.Dense(6, 4)], population=2, seed=0,
                         neuron=stlsim.LIF(theta_init=0.3))
    x = (np.random.default_rng(0).random((4, 3, 5)) < 0.5).astype(float)
    y = np.array([0, 1, 0])
    result = get_backend("numba").fused(net.layers, net._layer_params(), x, y, net.neuron,
                                        net.surrogate, net.population, "mse_rate")
    assert isinstance(result, FusedResult)
    loss, grads, rates = net.loss_and_grad(x, y, return_rates=True, backend="numpy")
    assert result.loss == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(result.rates, rates, rtol=0, atol=1e-15)
    # a network the fused step does not take: None, and the caller runs the layers
    pooled = stlsim.Network([stlsim.Dense(5, 6), stlsim.Dropout(0.2), stlsim.Dense(6, 4)],
                            population=2)
    assert get_backend("numba").fused(pooled.layers, pooled._layer_params(), x, y, pooled.neuron,
                                      pooled.surrogate, 2, "mse_rate") is None
