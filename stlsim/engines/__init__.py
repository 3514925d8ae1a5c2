"""Engines (how time is advanced) and backends (which kernels run the neurons).

Both are looked up by name and imported lazily, so ``import stlsim`` stays cheap.
A backend module provides ``lif_forward`` and ``lif_backward`` with the signatures
of the NumPy reference (``engines.clock.lif_forward``, ``grad.bptt.lif_backward``).
"""
from __future__ import annotations

import importlib

from .._checks import check_choice

__all__ = ["BACKENDS", "ENGINES", "get_backend", "get_engine"]

BACKENDS = {
    "numpy": "stlsim.engines.numpy_backend",
    "numba": "stlsim.kernels.cpu",
}
ENGINES = {
    "clock": "stlsim.engines.clock",
    "event": "stlsim.engines.event",
}


def get_backend(name: str, owner: str | None = None):
    """Import and return the backend module called ``name``."""
    check_choice(name, "backend", tuple(BACKENDS), owner)
    return importlib.import_module(BACKENDS[name])


def get_engine(name: str, owner: str | None = None):
    """Import and return the engine module called ``name``."""
    check_choice(name, "engine", tuple(ENGINES), owner)
    return importlib.import_module(ENGINES[name])
