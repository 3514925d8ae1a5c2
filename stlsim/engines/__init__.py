"""Engines (how time is advanced) and backends (which kernels run the neurons).

Both are looked up by name and imported lazily, so ``import stlsim`` stays cheap.
An engine module provides ``run_forward`` (and, if its tape is its own,
``run_backward``). A backend is a ``Backend`` object (``engines.backend``: the
protocol, ``lif_forward``, ``lif_backward`` and an optional ``fused`` step), defined
as ``BACKEND`` in the module that ``BACKENDS`` names. The map of the package, and
where a new backend plugs in: ``docs/architecture.md``.

The backend name "auto" resolves to "numba" when Numba imports, else to "numpy";
it never picks a GPU backend.
"""
from __future__ import annotations

import importlib

from .._checks import check_choice
from .backend import Backend, FusedResult

__all__ = ["BACKENDS", "ENGINES", "Backend", "FusedResult", "get_backend", "get_engine",
           "resolve_backend"]

# name -> the module whose ``BACKEND`` is that backend
BACKENDS = {
    "numpy": "stlsim.engines.numpy_backend",
    "numba": "stlsim.engines.numba_backend",
    "cuda": "stlsim.engines.cuda_backend",
}
ENGINES = {
    "clock": "stlsim.engines.clock",
    "event": "stlsim.engines.event",
}


_auto_choice = None


def resolve_backend(name: str, owner: str | None = None) -> str:
    """Check a backend name; turn "auto" into "numba" (if Numba imports) or "numpy"."""
    global _auto_choice
    check_choice(name, "backend", ("auto",) + tuple(BACKENDS), owner)
    if name != "auto":
        return name
    if _auto_choice is None:
        try:
            importlib.import_module("numba")
            _auto_choice = "numba"
        except Exception:  # not installed, or broken against this numpy
            _auto_choice = "numpy"
    return _auto_choice


_LOADED = {}            # module path -> module (importlib.import_module costs ~us per call)


def _module(path):
    module = _LOADED.get(path)
    if module is None:
        module = _LOADED[path] = importlib.import_module(path)
    return module


def get_backend(name: str, owner: str | None = None) -> Backend:
    """The ``Backend`` called ``name`` ("auto" allowed); imports its kernels on first use."""
    return _module(BACKENDS[resolve_backend(name, owner)]).BACKEND


def get_engine(name: str, owner: str | None = None):
    """Import and return the engine module called ``name``."""
    check_choice(name, "engine", tuple(ENGINES), owner)
    return _module(ENGINES[name])
