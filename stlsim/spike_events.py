"""Network input as a list of spike events instead of a dense (T, B, *shape) array.

A ``SpikeEvents`` is what an event camera, a cochlea model or a spike sorter hands
over: which input neuron fired at which step, in which sample. Every ``Network``
method that takes an input ``x`` accepts one. The event engine (``engine="event"``)
consumes it as it is, without building or scanning a dense array; the clock engine
turns it into the dense array ``to_dense()`` describes, so both engines simulate the
same input.

    ev = stlsim.SpikeEvents.from_events(events, T=100, input_shape=784)   # (K, 2) rows (t, i)
    rec = net.forward(ev, engine="event")

Storage: compressed rows. Row r = t * B + b holds the events of step t, sample b, in
increasing (flat, row-major) neuron index: ``index[ptr[r]:ptr[r + 1]]``, with weights
``values`` (None when every event has weight 1: spikes). Events given more than once
at the same (t, b, i) add up, as in a dense array built with ``np.add.at``.

Plain NumPy: importing this module loads nothing else.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import check_array, check_int, fail

__all__ = ["SpikeEvents"]

_OWNER = "SpikeEvents"


def _shape_tuple(input_shape, owner):
    if np.isscalar(input_shape):
        return (check_int(input_shape, "input_shape", low=1, owner=owner),)
    try:
        dims = tuple(input_shape)
    except TypeError:
        raise fail("input_shape", "an int or a tuple of ints", type(input_shape).__name__,
                   owner, TypeError) from None
    if not dims:
        raise fail("input_shape", "an int or a non-empty tuple of ints", "()", owner)
    return tuple(check_int(n, "input_shape", low=1, owner=owner) for n in dims)


class SpikeEvents:
    """Input spike events of a batch: T steps, B samples, input neurons of ``input_shape``.

    Build with :meth:`from_events` (a list of (t, i) or (t, b, i) rows) or
    :meth:`from_dense`; ``to_dense()`` gives the equivalent dense input. Immutable by
    convention: the arrays are marked read-only.
    """

    __slots__ = ("T", "batch_size", "input_shape", "ptr", "index", "values", "dtype")

    def __init__(self, T, batch_size, input_shape, ptr, index, values=None, dtype=np.float64):
        """Low-level constructor from compressed rows (checked); see the module doc."""
        owner = _OWNER
        self.T = check_int(T, "T", low=1, owner=owner)
        self.batch_size = check_int(batch_size, "batch_size", low=1, owner=owner)
        self.input_shape = _shape_tuple(input_shape, owner)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise fail("dtype", "a float dtype", str(self.dtype), owner, TypeError)
        rows, n = self.T * self.batch_size, self.n_inputs
        ptr = check_array(ptr, "ptr", shape=(rows + 1,), owner=owner)
        if ptr.dtype.kind not in "iu":
            raise fail("ptr", "an integer array", f"dtype {ptr.dtype}", owner, TypeError)
        ptr = ptr.astype(np.int64)
        if ptr[0] != 0 or np.any(np.diff(ptr) < 0):
            raise fail("ptr", "row offsets starting at 0, never decreasing",
                       f"ptr[0] = {ptr[0]}, {int(np.sum(np.diff(ptr) < 0))} decreasing steps",
                       owner)
        index = check_array(index, "index", shape=(int(ptr[-1]),), owner=owner)
        if index.size and index.dtype.kind not in "iu":
            raise fail("index", "an integer array", f"dtype {index.dtype}", owner, TypeError)
        index = index.astype(np.int32)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise fail("index", f"neuron indices in [0, {n - 1}]",
                       f"values in [{index.min()}, {index.max()}]", owner)
        rows_of = np.repeat(np.arange(rows, dtype=np.int64), np.diff(ptr))
        key = rows_of * n + index
        if index.size > 1 and np.any(np.diff(key) <= 0):
            raise fail("index", "increasing neuron indices within each row (t, b), no repeats",
                       f"{int(np.sum(np.diff(key) <= 0))} out-of-order or repeated events", owner)
        if values is not None:
            values = check_array(values, "values", shape=(index.size,), dtype=self.dtype,
                                 owner=owner, copy=True)
            if np.all(values == 1):
                values = None
        for array in (ptr, index, values):
            if array is not None:
                array.flags.writeable = False
        self.ptr, self.index, self.values = ptr, index, values

    # ------------------------------------------------------------------ constructors --
    @classmethod
    def _trusted(cls, T, batch_size, input_shape, ptr, index, values, dtype):
        """Wrap compressed rows made by stlsim's own kernels (already sorted, in range,
        no repeats) without the O(K) checks of the constructor. ``values`` None: spikes."""
        self = cls.__new__(cls)
        self.T, self.batch_size, self.input_shape = T, batch_size, tuple(input_shape)
        self.dtype = np.dtype(dtype)
        self.ptr, self.index, self.values = ptr, index, values
        return self

    @classmethod
    def from_events(cls, events, T, input_shape, *, batch_size=None, values=None,
                    dtype=np.float64, _owner="SpikeEvents.from_events"):
        """From an int array of event rows: (K, 2) ``(t, i)`` for one sample (B = 1;
        the format of ``stlsim.data.events.events_to_sparse``) or (K, 3) ``(t, b, i)``.
        ``i`` is the flat (row-major) index into ``input_shape``. ``values``: optional
        (K,) event weights (default 1). Rows may come in any order; repeats add up."""
        owner = _owner
        T = check_int(T, "T", low=1, owner=owner)
        shape = _shape_tuple(input_shape, owner)
        n = int(np.prod(shape))
        arr = np.asarray(events)
        if arr.size == 0:
            arr = arr.reshape(0, 2 if arr.ndim < 2 else arr.shape[-1]).astype(np.int64)
        if arr.ndim != 2 or arr.shape[1] not in (2, 3) or arr.dtype.kind not in "iu":
            raise fail("events", "an integer array of shape (K, 2) or (K, 3)",
                       f"dtype {arr.dtype} and shape {arr.shape}", owner, TypeError)
        arr = arr.astype(np.int64)
        t, i = arr[:, 0], arr[:, -1]
        b = np.zeros(len(arr), dtype=np.int64) if arr.shape[1] == 2 else arr[:, 1]
        if batch_size is None:
            batch_size = 1 if arr.shape[1] == 2 or not len(arr) else int(b.max()) + 1
        B = check_int(batch_size, "batch_size", low=1, owner=owner)
        for name, column, size in (("time step", t, T), ("sample", b, B), ("neuron", i, n)):
            if len(column) and (column.min() < 0 or column.max() >= size):
                raise fail("events", f"{name} indices in [0, {size - 1}]",
                           f"values in [{column.min()}, {column.max()}]", owner)
        weights = None if values is None else check_array(
            values, "values", shape=(len(arr),), dtype=dtype, owner=owner)
        key = (t * B + b) * n + i
        order = np.argsort(key, kind="stable")
        key = key[order]
        unique, first = np.unique(key, return_index=True)
        if weights is None and len(unique) == len(key):
            summed = None
        else:
            w = np.ones(len(key), dtype=dtype) if weights is None else weights[order]
            summed = np.add.reduceat(w, first) if len(key) else w
        keep = slice(None)
        if summed is not None:
            keep = summed != 0                        # weights that cancel: no event
            unique, summed = unique[keep], summed[keep]
        ptr = np.zeros(T * B + 1, dtype=np.int64)
        np.cumsum(np.bincount(unique // n, minlength=T * B), out=ptr[1:])
        return cls(T, B, shape, ptr, (unique % n).astype(np.int32), summed, dtype)

    @classmethod
    def from_dense(cls, x):
        """The nonzeros of a dense input ``x`` of shape (T, B, *input_shape)."""
        x = check_array(x, "x", owner="SpikeEvents.from_dense")
        if x.ndim < 3:
            raise fail("x", "an array of shape (T, B, *input_shape)", f"shape {x.shape}",
                       "SpikeEvents.from_dense")
        T, B = x.shape[:2]
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        flat = x.reshape(T * B, -1)
        rows, index = np.nonzero(flat)
        ptr = np.zeros(T * B + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=T * B), out=ptr[1:])
        return cls(T, B, x.shape[2:], ptr, index.astype(np.int32), flat[rows, index], dtype)

    # ------------------------------------------------------------------- properties --
    @property
    def n_inputs(self) -> int:
        """Input neurons per sample (the product of ``input_shape``)."""
        return math.prod(self.input_shape)

    @property
    def shape(self) -> tuple:
        """(T, B, *input_shape): the shape of the equivalent dense input."""
        return (self.T, self.batch_size) + self.input_shape

    @property
    def n_events(self) -> int:
        return int(self.ptr[-1])

    @property
    def nbytes(self) -> int:
        """Bytes held by the event arrays."""
        return sum(a.nbytes for a in (self.ptr, self.index, self.values) if a is not None)

    @property
    def density(self) -> float:
        """Events per input neuron, step and sample."""
        return self.n_events / (self.T * self.batch_size * self.n_inputs)

    def astype(self, dtype) -> SpikeEvents:
        """The same events, representing a dense input of ``dtype``."""
        if np.dtype(dtype) == self.dtype:
            return self
        return SpikeEvents(self.T, self.batch_size, self.input_shape, self.ptr, self.index,
                           self.values, dtype)

    def _copy(self) -> SpikeEvents:
        """The same events in arrays of their own (read-only like these)."""
        arrays = [None if a is None else a.copy() for a in (self.ptr, self.index, self.values)]
        for array in arrays:
            if array is not None:
                array.flags.writeable = False
        return SpikeEvents._trusted(self.T, self.batch_size, self.input_shape, *arrays, self.dtype)

    def to_dense(self, dtype=None) -> np.ndarray:
        """The equivalent dense input, shape (T, B, *input_shape)."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        dense = np.zeros((self.T * self.batch_size, self.n_inputs), dtype=dtype)
        rows = np.repeat(np.arange(self.T * self.batch_size), np.diff(self.ptr))
        dense[rows, self.index] = 1 if self.values is None else self.values
        return dense.reshape(self.shape)

    def to_events(self):
        """``(events, values)``: int64 (K, 3) rows (t, b, i) sorted by t, b, i, and the
        (K,) weights (ones for spikes)."""
        rows = np.repeat(np.arange(self.T * self.batch_size), np.diff(self.ptr))
        events = np.stack([rows // self.batch_size, rows % self.batch_size,
                           self.index.astype(np.int64)], axis=1)
        values = np.ones(self.n_events, self.dtype) if self.values is None else self.values.copy()
        return events, values

    def __repr__(self):
        kind = "spikes" if self.values is None else "weighted events"
        return (f"SpikeEvents(T={self.T}, batch_size={self.batch_size}, input_shape="
                f"{self.input_shape}, {self.n_events} {kind}, density {self.density:.4g})")
