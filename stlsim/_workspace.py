"""Per-thread reusable arrays, on the host and on a GPU (one workspace for both).

Fresh multi-megabyte arrays cost page faults (host) or allocations (device) on every
call; kernels that need large temporaries (the fused Numba and CUDA steps, the event
engine's W.T copy and current buffer) take them from here instead. Contents are
undefined on return: a caller fills what it uses. An array obtained here stays valid
while referenced, even if the workspace is cleared (``clear``, or the size cap) in
between. Device arrays come from the ``allocate`` function the caller passes
(``numba.cuda.device_array``); this module imports nothing but NumPy.
"""
from __future__ import annotations

import threading

import numpy as np

__all__ = ["buffer", "clear"]

_local = threading.local()
MAX_BUFFERS = 64


def buffer(name, shape, dtype, allocate=np.empty):
    """The array of this thread's workspace called ``name`` with this shape and dtype,
    made by ``allocate(shape, dtype=dtype)`` when absent (``np.empty``: a host array)."""
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    key = (name, tuple(shape), np.dtype(dtype).str, allocate)
    array = buffers.get(key)
    if array is None:
        if len(buffers) >= MAX_BUFFERS:
            buffers.clear()
        array = buffers[key] = allocate(tuple(shape), dtype=dtype)
    return array


def clear():
    """Free this thread's reusable buffers, host and device (rebuilt on the next use)."""
    _local.buffers = {}
