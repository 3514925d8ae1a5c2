"""Matrix products on the device for the CUDA path: (L1), (B4), (B6) of ``docs/model.md``.

Through CuPy's cuBLAS when CuPy imports (zero-copy: CuPy wraps the Numba arrays
through ``__cuda_array_interface__``), else through the tiled shared-memory GEMM
kernel below. ``set_gemm`` or ``STLSIM_CUDA_GEMM`` choose; ``choice()`` says which runs.
"""
from __future__ import annotations

import os

from .._checks import check_choice, fail
from .cuda_device import CALLS, SIMULATOR, cuda

__all__ = ["matmul", "set_gemm", "choice", "GEMMS", "cupy_version"]

GEMMS = ("auto", "cupy", "numba-tiled")
TILE = 16            # GEMM tile edge: TILE x TILE threads per block, one output element each
TILE_ROW = TILE + 1  # a tile row in shared memory: one padding column against bank conflicts


@cuda.jit
def _gemm_kernel(a, b, c, trans_a, trans_b):
    """c = op(a) @ op(b), op(x) = x.T where flagged: the GEMM used without CuPy.

    Block (TILE x TILE) computes one tile of c, thread (ty, tx) one element, marching
    over the inner dimension a tile at a time through shared memory. Each load is
    coalesced (consecutive tx read consecutive addresses; transposed operands are
    stored transposed into the tile, padded by one column against bank conflicts).
    The sum over k runs in increasing k: deterministic. ``a`` may be uint8 spikes.
    """
    a_tile = cuda.shared.array((TILE, TILE_ROW), c.dtype)
    b_tile = cuda.shared.array((TILE, TILE_ROW), c.dtype)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row0 = cuda.blockIdx.y * TILE
    col0 = cuda.blockIdx.x * TILE
    n_rows = c.shape[0]
    n_cols = c.shape[1]
    depth = a.shape[0] if trans_a else a.shape[1]
    total = cuda.local.array(1, c.dtype)
    total[0] = 0
    for k0 in range(0, depth, TILE):
        if trans_a:           # a is (depth, n_rows): tile[r, k] = a[k0 + k, row0 + r]
            k = k0 + ty
            r = row0 + tx
            a_tile[tx, ty] = a[k, r] if (k < depth and r < n_rows) else 0
        else:                 # a is (n_rows, depth)
            k = k0 + tx
            r = row0 + ty
            a_tile[ty, tx] = a[r, k] if (k < depth and r < n_rows) else 0
        if trans_b:           # b is (n_cols, depth): tile[k, col] = b[col0 + col, k0 + k]
            k = k0 + tx
            col = col0 + ty
            b_tile[tx, ty] = b[col, k] if (k < depth and col < n_cols) else 0
        else:                 # b is (depth, n_cols)
            k = k0 + ty
            col = col0 + tx
            b_tile[ty, tx] = b[k, col] if (k < depth and col < n_cols) else 0
        cuda.syncthreads()
        for k in range(TILE):
            total[0] += a_tile[ty, k] * b_tile[k, tx]
        cuda.syncthreads()
    if row0 + ty < n_rows and col0 + tx < n_cols:
        c[row0 + ty, col0 + tx] = total[0]


# --- choice and launch ----------------------------------------------------------------------

_cupy = None
_gemm_requested = check_choice(os.environ.get("STLSIM_CUDA_GEMM") or "auto", "STLSIM_CUDA_GEMM",
                               GEMMS, "environment")


def _load_cupy():
    """CuPy, or None when it is absent (or unusable: under the simulator)."""
    global _cupy
    if _cupy is None:
        _cupy = False
        if not SIMULATOR:
            try:
                import cupy
                _cupy = cupy
            except Exception:  # not installed, or no matching CUDA runtime
                pass
    return _cupy or None


def set_gemm(name: str) -> str:
    """Choose the GEMM: "auto" (CuPy's cuBLAS if CuPy imports, else the tiled numba.cuda
    kernel), "cupy" or "numba-tiled". Returns the one now in use. The environment
    variable ``STLSIM_CUDA_GEMM`` sets the same at import."""
    global _gemm_requested
    check_choice(name, "name", GEMMS, "set_gemm")
    if name == "cupy" and _load_cupy() is None:
        raise _no_cupy("name", "set_gemm")
    _gemm_requested = name
    return choice()


def _no_cupy(name, owner):
    return fail(name, "'auto' or 'numba-tiled' here", "'cupy' without an importable CuPy"
                + (" (the simulator cannot run CuPy)" if SIMULATOR else ""), owner)


def choice() -> str:
    """The GEMM in use: "cupy" or "numba-tiled"."""
    if _gemm_requested == "numba-tiled":
        return "numba-tiled"
    if _load_cupy() is not None:
        return "cupy"
    if _gemm_requested == "cupy":                  # asked for by STLSIM_CUDA_GEMM
        raise _no_cupy("STLSIM_CUDA_GEMM", "environment")
    return "numba-tiled"


def matmul(a, b, out, trans_a=False, trans_b=False):
    """out = op(a) @ op(b) on the device; ``a`` may hold uint8 spikes."""
    if choice() == "cupy":
        cupy = _cupy
        CALLS["gemm:cupy"] += 1
        out_view = cupy.asarray(out)
        # uint8 spikes become floats first: cuBLAS multiplies floats only.
        a_view, b_view = (cupy.asarray(m).astype(out_view.dtype, copy=False) for m in (a, b))
        cupy.matmul(a_view.T if trans_a else a_view, b_view.T if trans_b else b_view, out=out_view)
        return
    CALLS["gemm:numba-tiled"] += 1
    n_rows, n_cols = out.shape
    _gemm_kernel[(-(-n_cols // TILE), -(-n_rows // TILE)), (TILE, TILE)](a, b, out, trans_a,
                                                                         trans_b)


def cupy_version():
    """CuPy's version, or None when it is not used."""
    return getattr(_load_cupy(), "__version__", None)
