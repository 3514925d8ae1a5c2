"""Engines (how time is advanced) and backends (which kernels run the neurons).

Both are looked up by name and imported lazily, so ``import stlsim`` stays cheap.
A backend module provides ``lif_forward`` and ``lif_backward`` with the signatures
of the NumPy reference (``engines.clock.lif_forward``, ``grad.bptt.lif_backward``).
Optionally it also provides ``fused_loss_and_grad`` (a whole training step for the
networks it handles, returning None for the others; see ``stlsim.kernels.cpu``).

The backend name "auto" resolves to "numba" when Numba imports, else to "numpy";
it never picks a GPU backend.
"""
from __future__ import annotations

import importlib

from .._checks import check_choice

__all__ = ["BACKENDS", "ENGINES", "get_backend", "get_engine", "resolve_backend"]

BACKENDS = {
    "numpy": "stlsim.engines.numpy_backend",
    "numba": "stlsim.kernels.cpu",
    "cuda": "stlsim.kernels.cuda",
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


def get_backend(name: str, owner: str | None = None):
    """Import and return the backend module called ``name`` ("auto" allowed)."""
    return importlib.import_module(BACKENDS[resolve_backend(name, owner)])


def get_engine(name: str, owner: str | None = None):
    """Import and return the engine module called ``name``."""
    check_choice(name, "engine", tuple(ENGINES), owner)
    return importlib.import_module(ENGINES[name])
