"""Converters between dense inputs and events, for the event engine and its users.

* ``events_to_dense`` / ``dense_to_events``: public helpers (event rows <-> a dense
  (T, B, *shape) network input).
* ``scan_dense`` / ``rows_to_dense``: the engine's own fast versions (Numba kernels of
  ``kernels.event_cpu``) between a dense array and a ``SpikeEvents``, the one event
  type stlsim uses inside and out.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_array, fail
from ..spike_events import SpikeEvents

__all__ = ["events_to_dense", "dense_to_events", "scan_dense", "rows_to_dense",
           "kernel_values"]


def events_to_dense(events, T, n_inputs, *, batch_size=None, values=None, dtype=np.float64):
    """A network input (T, B, *input_shape) from a list of events.

    Parameters
    ----------
    events : numpy.ndarray
        int (K, 2) of rows ``(t, i)`` (one sample, B = 1; the format of
        ``stlsim.data.events.events_to_sparse``) or (K, 3) of rows ``(t, b, i)``. ``i`` is
        the flat (row-major) index into the input shape.
    T : int
        Number of time steps.
    n_inputs : int or tuple
        The number of inputs, or the input shape of one sample (e.g. ``(2, 34, 34)``).
    batch_size : int, optional
        B (default: 1 for (K, 2) events, 1 + the largest b for (K, 3)).
    values : numpy.ndarray, optional
        (K,) event weights (default 1). Events at the same (t, b, i) add.
    dtype : numpy dtype, default float64
        The dtype of the array.

    Returns
    -------
    numpy.ndarray
        (T, B, *input_shape).

    The event engine turns the array back into events internally (its nonzeros), so
    ``net.forward(events_to_dense(...), engine="event")`` simulates exactly these events.
    ``stlsim.SpikeEvents.from_events`` (the same arguments) keeps them as events.
    """
    events = SpikeEvents.from_events(events, T, n_inputs, batch_size=batch_size, values=values,
                                     dtype=dtype, _owner="events_to_dense")
    return events.to_dense()


def dense_to_events(x):
    """The events of a dense input (T, B, *shape): ``(events, values)``.

    ``events`` is int64 (K, 3) with rows ``(t, b, i)`` sorted by t, b, then i (``i``
    the flat index into ``shape``); ``values`` the (K,) nonzero entries.
    """
    x = check_array(x, "x", owner="dense_to_events")
    if x.ndim < 3:
        raise fail("x", "an array of shape (T, B, *input_shape)", f"shape {x.shape}",
                   "dense_to_events")
    T, B = x.shape[:2]
    flat = x.reshape(T, B, -1)
    t, b, i = np.nonzero(flat)
    return np.stack([t, b, i], axis=1).astype(np.int64), flat[t, b, i]


_MAGNITUDE = {}
_PAIR_MAGNITUDE = np.array([0x7FFFFFFF7FFFFFFF], dtype=np.uint64)   # both sign bits off
_NO_VALUES = {}


def kernel_values(events: SpikeEvents):
    """``(values, unit)`` as the kernels take them: an empty array and True for spikes."""
    if events.values is None:
        empty = _NO_VALUES.get(events.dtype.str)
        if empty is None:
            empty = _NO_VALUES[events.dtype.str] = np.zeros(0, dtype=events.dtype)
        return empty, True
    return events.values, False


def scan_dense(x, kernels) -> SpikeEvents:
    """The nonzeros of a dense (T, B, *shape) array as ``SpikeEvents`` (one kernel pass:
    ``kernels.event_cpu.dense_to_events``; -0.0 counts as no event)."""
    T, B = x.shape[:2]
    flat = np.ascontiguousarray(x).reshape(T * B, -1)
    size = flat.dtype.itemsize
    if size == 4 and flat.shape[1] % 2 == 0:          # float32 pairs as 64-bit words
        ptr, idx, val, unit = kernels.dense_pairs_to_events(flat, flat.view(np.uint64),
                                                            _PAIR_MAGNITUDE)
    else:
        magnitude = _MAGNITUDE.get(size)
        if magnitude is None:                         # all bits but the sign bit
            unsigned = np.dtype(f"u{size}")
            magnitude = _MAGNITUDE[size] = np.array([np.iinfo(unsigned).max >> 1], dtype=unsigned)
        ptr, idx, val, unit = kernels.dense_to_events(flat, flat.view(magnitude.dtype), magnitude)
    return SpikeEvents._trusted(T, B, x.shape[2:], ptr, idx, None if unit else val, flat.dtype)


def rows_to_dense(events: SpikeEvents, kernels, dtype) -> np.ndarray:
    """The dense (T, B, *shape) array of ``events`` (``kernels.event_cpu.events_to_rows``)."""
    dense = np.zeros((events.T * events.batch_size, events.n_inputs), dtype=dtype)
    values, unit = kernel_values(events)
    kernels.events_to_rows(events.ptr, events.index, values, unit, dense)
    return dense.reshape(events.shape)
