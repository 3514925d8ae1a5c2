"""Per-thread reusable arrays for the CPU kernels (plain NumPy).

Fresh multi-megabyte arrays cost page faults on every call; kernels that need large
temporaries (the fused Numba step, the event engine's W.T copy and current buffer)
take them from here instead. Contents are undefined on return: a caller fills what it
uses. An array obtained here stays valid while referenced, even if the workspace is
cleared (``clear``, or the size cap) in between.
"""
from __future__ import annotations

import threading

import numpy as np

__all__ = ["buffer", "clear"]

_local = threading.local()
MAX_BUFFERS = 64


def buffer(name, shape, dtype) -> np.ndarray:
    """The array of this thread's workspace called ``name`` with this shape and dtype."""
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    key = (name, tuple(shape), np.dtype(dtype).str)
    array = buffers.get(key)
    if array is None:
        if len(buffers) >= MAX_BUFFERS:
            buffers.clear()
        array = buffers[key] = np.empty(shape, dtype=dtype)
    return array


def clear():
    """Free this thread's reusable buffers (they are rebuilt on the next use)."""
    _local.buffers = {}
