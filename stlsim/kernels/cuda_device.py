"""numba.cuda set-up for the CUDA kernels: the import, the device check, the simulator.

Importing this module imports ``numba.cuda`` and raises the standard stlsim error
(``RuntimeError``) when it cannot run: numba-cuda missing, or no GPU visible.
``NUMBA_ENABLE_CUDASIM=1`` (set before Numba is imported) runs every kernel in
Numba's CUDA simulator instead, on the CPU; the tests do that. It also holds the
launch counter that every CUDA kernel module counts into (``CALLS``).
"""
from __future__ import annotations

import collections
import sys
import threading

from .._checks import fail

__all__ = ["cuda", "SIMULATOR", "THREADS", "CALLS", "blocks", "device_name"]

# Kernel launches by name ("kernel:...", "gemm:..."); the CUDA backend counts its entry
# points into the same counter.
CALLS = collections.Counter()


def _unavailable(reason: str) -> Exception:
    return fail("backend", "a backend this machine can run", f"'cuda' {reason}", None, RuntimeError)


try:
    from numba import cuda
except Exception as err:  # numba-cuda not installed, or broken against this numba
    raise _unavailable(f"without an importable numba.cuda ({type(err).__name__}: {err}); install "
                       "the cuda extra: pip install 'stlsim[cuda]'") from None


def _simulating() -> bool:
    config = getattr(cuda, "config", None)          # numba-cuda's own config module
    if config is None or not hasattr(config, "ENABLE_CUDASIM"):
        from numba.core import config
    return bool(config.ENABLE_CUDASIM)


SIMULATOR = _simulating()
if not SIMULATOR and not cuda.is_available():
    raise _unavailable("with no CUDA GPU visible to numba.cuda (NUMBA_ENABLE_CUDASIM=1 runs "
                       "Numba's CUDA simulator instead)")


def _lock_simulator_shared_arrays():
    """Make the simulator's ``cuda.shared.array`` safe for the block's threads.

    Numba's simulator runs each thread of a block as a Python thread, and its static
    ``cuda.shared.array`` looks the block's array up by call site and creates it when
    absent, without a lock. Two threads reaching the declaration together can both
    find it absent and each create one: part of the block then fills and reads a
    different tile, and the GEMM comes out wrong (rarely; more often on a loaded
    machine). Here the look-up and creation run under one lock.
    """
    from numba.cuda.simulator import kernelapi
    shared = kernelapi.FakeCUDAShared
    if getattr(shared.array, "locked_by_stlsim", False):
        return
    original = shared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:     # dynamic shared memory: nothing to race
            return original(self, shape, dtype, alignment)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)   # one array per call site
        with lock:
            if key not in self._allocations:
                # np.empty of the dtype (numba or NumPy), as the original allocates
                self._allocations[key] = kernelapi.FakeCUDALocal().array(shape, dtype)
            return self._allocations[key]

    array.locked_by_stlsim = True
    shared.array = array


if SIMULATOR:
    _lock_simulator_shared_arrays()

# Threads per block of the neuron kernels. Numba's simulator runs each thread of a block
# as a Python thread, so there the blocks are smaller (the kernels are the same).
THREADS = 32 if SIMULATOR else 128


def blocks(n):
    """Blocks of ``THREADS`` threads that cover ``n`` lanes."""
    return max(1, -(-n // THREADS))


def device_name():
    """("simulator", None) or (the GPU's name, its compute capability)."""
    if SIMULATOR:
        return "simulator", None
    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    return name, tuple(int(c) for c in device.compute_capability)
