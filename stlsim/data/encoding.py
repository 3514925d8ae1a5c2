"""Turning static images into input currents over time, and minibatch order.

Time is the leading axis: an encoded batch has shape (T, *x.shape). Random numbers
come only from the ``np.random.Generator`` the caller passes, so a seed fixes them.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_array, check_choice, check_dtype, check_int, fail

__all__ = ["encode", "rate_encode", "direct_encode", "iterate_minibatches", "shape_inputs"]


def _check_generator(rng, owner: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise fail("rng", "a numpy.random.Generator (e.g. np.random.default_rng(seed))",
                   type(rng).__name__, owner, TypeError)
    return rng


def rate_encode(x, T: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Bernoulli rate coding: ``s[t] = 1`` with probability ``x`` at every step.

    ``x`` holds intensities in [0, 1] (any shape). The result has shape (T, *x.shape)
    and values 0 or 1 in ``dtype``. The spikes are ``rng.random((T, *x.shape)) < x``
    with float64 uniforms in [0, 1), so a pixel of 0 never fires, a pixel of 1 fires at
    every step, and the same generator state gives the same spikes for either dtype.
    """
    owner = "rate_encode"
    x = check_array(x, "x", owner=owner)
    if x.size and not (x.min() >= 0 and x.max() <= 1):
        raise fail("x", "an array of intensities in [0, 1]",
                   f"values in [{x.min()}, {x.max()}]", owner)
    T = check_int(T, "T", low=1, owner=owner)
    rng = _check_generator(rng, owner)
    dtype = check_dtype(dtype, owner=owner)
    uniform = rng.random((T, *x.shape))  # one draw, time-major, float64
    return (uniform < x).astype(dtype)


def direct_encode(x, T: int, dtype=np.float32) -> np.ndarray:
    """Direct (analog) coding: the image itself is the input current at every step.

    Returns a new array of shape (T, *x.shape) in ``dtype`` with ``out[t] == x``.
    """
    owner = "direct_encode"
    x = check_array(x, "x", owner=owner)
    T = check_int(T, "T", low=1, owner=owner)
    dtype = check_dtype(dtype, owner=owner)
    out = np.empty((T, *x.shape), dtype=dtype)
    out[...] = x
    return out


def iterate_minibatches(n: int, batch_size: int, rng: np.random.Generator | None = None,
                        shuffle: bool = True, drop_last: bool = False):
    """Yield int64 index arrays that cover ``range(n)`` in minibatches of ``batch_size``.

    With ``shuffle`` the order is ``rng.permutation(n)`` (``rng`` required); without it,
    0..n-1 in order. The last, smaller batch is yielded unless ``drop_last``.
    Arguments are checked at the call, before the first batch is asked for.
    """
    owner = "iterate_minibatches"
    n = check_int(n, "n", low=0, owner=owner)
    batch_size = check_int(batch_size, "batch_size", low=1, owner=owner)
    order = (_check_generator(rng, owner).permutation(n) if shuffle
             else np.arange(n)).astype(np.int64, copy=False)
    stop = n - n % batch_size if drop_last else n
    return (order[start:start + batch_size] for start in range(0, stop, batch_size))


def encode(x, timesteps: int, encoding: str, rng, dtype):
    """(B, *shape) values in [0, 1] -> (T, B, *shape) network input.

    "rate": Bernoulli rate coding; "direct": the values repeated T times (analog input);
    "frames": ``x`` is (B, T, *shape) pre-binned event frames, moved to time-major.
    An unknown encoding, a non-positive ``timesteps`` or non-finite values raise ``ValueError``.
    """
    check_choice(encoding, "encoding", ("rate", "direct", "frames"), "encode")
    check_int(timesteps, "timesteps", low=1, owner="encode")
    x = np.asarray(x)
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        n_bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        raise fail("x", "finite (no NaN or infinity)", f"{n_bad} non-finite values", "encode")
    if encoding == "frames":
        if x.shape[1] != timesteps:
            raise fail("timesteps", f"the frame data's {x.shape[1]} time bins", repr(timesteps), "encode")
        return np.ascontiguousarray(np.moveaxis(x, 1, 0), dtype=dtype)
    if encoding == "rate":
        return (rng.random((timesteps,) + x.shape) < x).astype(dtype)    # Bernoulli rate coding
    return np.broadcast_to(x.astype(dtype), (timesteps,) + x.shape).copy()  # direct (analog) input


def shape_inputs(net, x, frames: bool = False):
    """``x`` as ``net`` takes it: images flattened (per frame, for frame data ``(B, T, ...)``)
    when the network's first layer is dense; unchanged otherwise."""
    lead = 2 if frames else 1
    if len(net.input_shape) == 1 and x.ndim > lead + 1:
        return x.reshape(x.shape[:lead] + (-1,))
    return x
