"""Shared pytest set-up.

Backend sweep: the gradient tests of ``test_core.py`` and ``test_vs_torch.py`` build
their networks with ``backend="numpy"``. Here each of them is also run with every
other CPU backend in ``STLSIM_TEST_BACKENDS`` (default "numpy,numba"): for such a run
the name "numpy" is pointed at that backend's module, so the same assertions check the
fast kernels; the run fails if the backend's kernels did not actually run. Tests that
take a ``backend`` argument choose for themselves and are left alone. Set
``STLSIM_TEST_BACKENDS=numpy`` to skip the sweep.
"""
from __future__ import annotations

import importlib.util
import os
import re

import numpy as np
import pytest

# module name -> which of its tests form the gradient suite
GRADIENT_SUITE = {
    "test_core": re.compile(r"bptt|gradient"),
    "test_vs_torch": re.compile(r"matches_torch|ties|threshold|convention"),
}


def _sweep_backends() -> list:
    names = [n.strip() for n in os.environ.get("STLSIM_TEST_BACKENDS", "numpy,numba").split(",")
             if n.strip()]
    if "numba" in names and importlib.util.find_spec("numba") is None:
        names.remove("numba")
    return names or ["numpy"]


def pytest_generate_tests(metafunc):
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    pattern = GRADIENT_SUITE.get(module)
    if pattern is None or not pattern.search(metafunc.function.__name__):
        return
    if "backend" in metafunc.fixturenames:
        return
    backends = _sweep_backends()
    if backends == ["numpy"]:
        return
    metafunc.fixturenames.append("stlsim_backend")
    metafunc.parametrize("stlsim_backend", backends)


@pytest.fixture(autouse=True)
def _backend_sweep(request, monkeypatch):
    callspec = getattr(request.node, "callspec", None)
    backend = callspec.params.get("stlsim_backend") if callspec else None
    if backend in (None, "numpy"):
        yield
        return
    from stlsim import engines
    calls = engines.get_backend(backend).calls
    before = sum(n for key, n in calls.items() if not key.startswith("fallback"))
    monkeypatch.setitem(engines.BACKENDS, "numpy", engines.BACKENDS[backend])
    yield
    ran = sum(n for key, n in calls.items() if not key.startswith("fallback"))
    assert ran > before, f"the {backend} kernels never ran"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` are skipped unless the run selects them (``-m slow``)."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


def rotated(cases, combos, case_id, combo_id):
    """``pytest.param``s of every (case, combo): case i runs with ``combos[i % len(combos)]`` in the
    default suite, its other combos are marked ``slow``.

    Each such parametrisation compiles its own kernel specialisations: on a clean clone (cold Numba
    caches) the whole matrix costs minutes of compilation, while every case and every combo still runs
    by default once; ``-m slow`` runs the full matrix. ``combos`` are tuples of further arguments.
    """
    params = []
    for i, case in enumerate(cases):
        for k, combo in enumerate(combos):
            marks = () if k == i % len(combos) else (pytest.mark.slow,)
            params.append(pytest.param(case, *combo, id=f"{case_id(case)}-{combo_id(combo)}", marks=marks))
    return params


def assert_close(got, ref, tol, what=""):
    """max |got - ref| <= tol * max |ref| (float64 arithmetic); the message names ``what``."""
    ref = np.asarray(ref, np.float64)
    scale = max(float(np.max(np.abs(ref))), 1e-30)
    err = float(np.max(np.abs(np.asarray(got, np.float64) - ref)))
    assert err <= tol * scale, f"{what}: max abs err {err:.3e}, max |ref| {scale:.3e}"
