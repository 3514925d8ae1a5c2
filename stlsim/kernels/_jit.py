"""Numba glue shared by the CPU and CUDA kernels (imports numba)."""
from __future__ import annotations

from numba.extending import register_jitable

from . import scalar

__all__ = ["register_scalar", "surrogate_spec"]

_registered = False


def register_scalar() -> None:
    """Make every function of ``scalar.JITABLE`` callable from Numba code (CPU and CUDA).

    ``register_jitable`` keeps the Python function unchanged and adds an overload
    for it, so the calls *between* scalar functions resolve when a kernel compiles.
    Idempotent.

    Note: Numba's on-disk cache (``cache=True``) is keyed on the kernel's own source
    file; after editing ``scalar.py``, delete ``stlsim/kernels/__pycache__/*.nb[ic]``.
    """
    global _registered
    if _registered:
        return
    for function in scalar.JITABLE:
        register_jitable(function)
    _registered = True


def surrogate_spec(surrogate):
    """(code, parameter) of a built-in surrogate for the kernels (CPU and CUDA); None for
    one they don't know (the caller then falls back to the NumPy reference)."""
    from .. import surrogate as surrogates

    known = {surrogates.ATan: scalar.ATAN, surrogates.Sigmoid: scalar.SIGMOID,
             surrogates.Rectangular: scalar.RECTANGULAR, surrogates.SuperSpike: scalar.SUPERSPIKE}
    code = known.get(type(surrogate))
    return None if code is None else (code, float(surrogate.value))
