"""Compiled kernels (Numba), imported lazily.

* ``scalar``: the per-neuron math written once (plain Python; Numba CPU and CUDA
  compile the same functions).
* ``cpu``: the ``"numba"`` backend (``stlsim.engines.BACKENDS``). Importing it imports
  Numba; ``import stlsim`` does not.
* ``cuda``: the ``"cuda"`` backend (numba.cuda kernels, ``docs/cuda.md``). Importing it
  imports ``numba.cuda`` and fails with a clear error where no GPU is usable.

This package's ``__init__`` imports neither numba nor the kernels: it only holds the
thread-count setting, so that ``stlsim.set_num_threads`` works before Numba loads.
"""
from __future__ import annotations

import os
import sys

from .._checks import check_int, fail

__all__ = ["set_num_threads", "get_num_threads"]

_requested_threads = None


def _threads_from_env():
    value = os.environ.get("STLSIM_NUM_THREADS")
    if value in (None, ""):
        return None
    try:
        n = int(value)
    except ValueError:
        raise fail("STLSIM_NUM_THREADS", "a positive integer", repr(value), "environment") from None
    if n < 1:
        raise fail("STLSIM_NUM_THREADS", "a positive integer", repr(value), "environment")
    return n


def set_num_threads(n: int) -> None:
    """Threads used by stlsim's parallel Numba kernels (BLAS keeps its own setting).

    Takes effect now if the Numba backend is loaded, else when it loads. The
    environment variable ``STLSIM_NUM_THREADS`` sets the same thing at start-up;
    ``NUMBA_NUM_THREADS`` caps both. See ``docs/performance.md``.
    """
    global _requested_threads
    _requested_threads = check_int(n, "n", low=1, owner="set_num_threads")
    cpu = sys.modules.get(__name__ + ".cpu")
    if cpu is not None:
        cpu._apply_num_threads()


def get_num_threads() -> int:
    """Threads the Numba kernels will use (loads Numba)."""
    from . import cpu
    return cpu._apply_num_threads()
