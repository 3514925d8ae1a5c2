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


# ------------------------------------------------------------------ the import rules --
# The rules of docs/architecture.md, read from the code: no circles (lazy imports count),
# no library module importing the command line or argparse, no private name taken from a
# module in another folder (siblings of one sub-package may share; _checks, _io and
# _workspace are the package's shared private utilities).
SHARED_PRIVATE = {"_checks", "_io", "_workspace"}
COMMAND_LINE = {"cli", "__main__"}


def _modules(root: pathlib.Path, pkg: str) -> dict:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([pkg, *parts])] = path
    return out


def import_rule_problems(root: pathlib.Path, pkg: str = "stlsim") -> list:
    """What breaks the import rules in the package folder ``root`` (one line each)."""
    modules = _modules(root, pkg)
    problems, graph = [], {}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        folder = mod if is_pkg else mod.rsplit(".", 1)[0]
        is_cli = mod.rsplit(".", 1)[-1] in COMMAND_LINE
        deps = graph.setdefault(mod, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = folder.split(".")[:len(folder.split(".")) - (node.level - 1)] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [(target, a.name) for a in node.names]
            else:
                continue
            for target, name in targets:
                if target == "argparse" and not is_cli:
                    problems.append(f"{mod}: library module imports argparse")
                if not (target == pkg or target.startswith(pkg + ".")):
                    continue
                sub = f"{target}.{name}" if name else target
                dep = sub if sub in modules else target
                deps.add(dep)
                if dep.rsplit(".", 1)[-1] == "cli" and not is_cli:
                    problems.append(f"{mod}: library module imports the command line")
                there = target if modules.get(target, pathlib.Path()).name == "__init__.py" else target.rsplit(".", 1)[0]
                if (name and name.startswith("_") and not name.startswith("__") and sub not in modules
                        and target.rsplit(".", 1)[-1] not in SHARED_PRIVATE and not (there == folder != pkg)):
                    problems.append(f"{mod}: takes the private name {name} from {target}")
    # circles: modules that reach each other (a package __init__ re-exporting its own modules is not one)
    reach = {m: set() for m in graph}
    for start in graph:
        todo = [d for d in graph[start] if d in graph]
        while todo:
            m = todo.pop()
            if m not in reach[start]:
                reach[start].add(m)
                todo.extend(d for d in graph[m] if d in graph)
    seen = set()
    for m in sorted(graph):
        group = sorted(n for n in reach[m] if m in reach[n] and modules[n].name != "__init__.py") if \
            modules[m].name != "__init__.py" else []
        if len(group) > 1 and tuple(group) not in seen:
            seen.add(tuple(group))
            problems.append("circle: " + " <-> ".join(group))
    return problems


def test_the_package_keeps_the_import_rules():
    assert import_rule_problems(PACKAGE) == []


def test_the_import_rules_see_a_planted_violation(tmp_path):
    import shutil

    root = tmp_path / "stlsim"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    before = set(import_rule_problems(root))        # the package's own (none: the test above)
    (root / "experiment" / "planted.py").write_text(
        "import argparse\nfrom .. import cli\nfrom ..train.loop import _check_gradients\n")
    (root / "readout.py").write_text((root / "readout.py").read_text() + "\nfrom .network import Network\n")
    problems = set(import_rule_problems(root)) - before
    assert "stlsim.experiment.planted: library module imports argparse" in problems
    assert "stlsim.experiment.planted: library module imports the command line" in problems
    assert "stlsim.experiment.planted: takes the private name _check_gradients from stlsim.train.loop" in problems
    assert any(p.startswith("circle:") and "stlsim.readout" in p and "stlsim.network" in p for p in problems)
