"""The event-driven engine: the same LIF network, computed only where spikes happen.

Select it with ``Network(..., engine="event")``, ``net.forward(x, engine="event")`` or
``net.loss_and_grad(x, y, engine="event")``; results are the same ``Record`` and
gradient dict as the clock engine's (spike trains identical, membranes within 1e-12,
gradients within 1e-10 in float64; ``tests/test_event_engine.py``).

How it works (details and a worked example: ``docs/event_engine.md``):

* Input is a list of events (t, b, i, value): the nonzeros of the dense (T, B, N)
  array the Network passes (analog values are event weights). To build that array from
  an event list, use :func:`events_to_dense`; :func:`dense_to_events` goes back.
* (L1) Each presynaptic event adds its weight column (times its value) to the currents
  of its sample; in a ``Dense`` layer that reaches every neuron of the sample.
* (L2) The leak is applied lazily: a neuron updated at step t after k silent steps
  uses v_{t-1} = tau^k v_last (one power, not k multiplications).
* (L3)-(L4) Only updated neurons are tested against theta. A neuron is also updated
  without input when its membrane, decaying, can still cross theta or enter the
  surrogate's support: always for theta <= 0 (a membrane decaying to 0 from below
  reaches theta), and after any step where tau v_t lies above a per-neuron floor
  (soft reset can leave v >= theta / tau). Everyone else provably stays silent.
* Backward: (B1)-(B6) from the spike events and the membranes where sigma' != 0. With
  the rectangular surrogate (finite support) only membranes with |m - theta| < width/2
  are kept, so the tape grows with activity, not with T x N. Surrogates of infinite
  support (atan, sigmoid, superspike) need m everywhere: the engine then updates and
  keeps every neuron at every step (dense tape, ~12 bytes per neuron-step), and the
  saving is only in the synaptic work.

Scope. ``Dense`` layers run event-driven. Any other layer (Conv2d, pooling, Flatten,
Dropout, BatchNorm, a Dense subclass) runs on the clock path inside this engine with
the network's backend: dense input from the events before it, dense gradients to the
event layer below it. The whole network falls back to the clock engine in smooth mode
(every neuron emits P(m - theta) != 0 every step: nothing is sparse), with
``reset_spikes`` (finite-difference checks) and with a surrogate the kernels don't
know; ``run_backward`` then runs ``grad.bptt``.

``net.forward`` returns dense I, m and s (that is what a ``Record`` holds): the event
tape keeps only events, so those arrays are rebuilt on first access by re-running the
layer's kernel with recording on (same code path, so the same spikes). ``loss_and_grad``
never builds them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._checks import check_array, check_int, fail
from ..grad import bptt
from . import clock

__all__ = ["run_forward", "run_backward", "events_to_dense", "dense_to_events",
           "static_weights", "EventTape", "EventLayerTape", "CALLS"]

# Event layers are transposed-and-pushed (contiguous weight rows) when they carry more
# events than this many times the layer's fan-in; below it, strided columns of W are
# cheaper than copying W.T (measured on 784x800: copy ~2 ns/weight, strided push
# ~1-3 ns/weight, contiguous push ~0.3 ns/weight).
TRANSPOSE_RATIO = 1.0

# How often each path ran (tests use it to prove the event kernels, not a fallback, ran).
CALLS = {"forward": 0, "backward": 0, "fallback": 0, "materialize": 0}

_SURROGATE_CODES = {"ATan": 0, "Sigmoid": 1, "Rectangular": 2, "SuperSpike": 3}  # scalar.py
_static_cache = None


# ------------------------------------------------------------------ public helpers --

def events_to_dense(events, T, n_inputs, *, batch_size=None, values=None, dtype=np.float64):
    """A network input (T, B, *input_shape) from a list of events.

    Parameters
    ----------
    events : int array (K, 2) of rows ``(t, i)`` (one sample, B = 1; the format of
        ``stlsim.data.events.events_to_sparse``) or (K, 3) of rows ``(t, b, i)``.
        ``i`` is the flat (row-major) index into the input shape.
    T : number of time steps.
    n_inputs : int, or the input shape of one sample (e.g. ``(2, 34, 34)``).
    batch_size : B (default: 1 for (K, 2) events, 1 + the largest b for (K, 3)).
    values : optional (K,) event weights (default 1). Events at the same (t, b, i) add.

    The event engine turns the array back into events internally (its nonzeros), so
    ``net.forward(events_to_dense(...), engine="event")`` simulates exactly these events.
    """
    owner = "events_to_dense"
    T = check_int(T, "T", low=1, owner=owner)
    shape = (check_int(n_inputs, "n_inputs", low=1, owner=owner),) if np.isscalar(n_inputs) \
        else tuple(check_int(n, "n_inputs", low=1, owner=owner) for n in n_inputs)
    n = int(np.prod(shape))
    arr = np.asarray(events)
    if arr.size == 0:
        arr = arr.reshape(0, 2 if arr.ndim < 2 else arr.shape[-1])
    if arr.ndim != 2 or arr.shape[1] not in (2, 3) or (arr.size and arr.dtype.kind not in "iu"):
        raise fail("events", "an integer array of shape (K, 2) or (K, 3)",
                   f"dtype {arr.dtype} and shape {arr.shape}", owner, TypeError)
    arr = arr.astype(np.int64)
    t = arr[:, 0]
    b = np.zeros(len(arr), dtype=np.int64) if arr.shape[1] == 2 else arr[:, 1]
    i = arr[:, -1]
    if batch_size is None:
        batch_size = 1 if arr.shape[1] == 2 or not len(arr) else int(b.max()) + 1
    B = check_int(batch_size, "batch_size", low=1, owner=owner)
    for name, column, size in (("time step", t, T), ("sample", b, B), ("neuron", i, n)):
        if len(column) and (column.min() < 0 or column.max() >= size):
            raise fail("events", f"{name} indices in [0, {size - 1}]",
                       f"values in [{column.min()}, {column.max()}]", owner)
    if values is None:
        weights = np.ones(len(arr), dtype=dtype)
    else:
        weights = check_array(values, "values", shape=(len(arr),), dtype=dtype, owner=owner)
    x = np.zeros(T * B * n, dtype=dtype)
    np.add.at(x, (t * B + b) * n + i, weights)
    return x.reshape((T, B) + shape)


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


@contextlib.contextmanager
def static_weights():
    """Promise that no weight changes in place inside the block (inference loops).

    The event kernels push contiguous weight rows, so they work on W.T; without this
    block a call copies W.T when it has enough events to pay for it (see
    ``TRANSPOSE_RATIO``), every call. Inside it the copy is made once per weight array
    and reused. Replacing ``net.params[key]`` by a new array is fine; modifying an
    array in place inside the block gives stale results. Nesting is allowed.
    """
    global _static_cache
    outer = _static_cache
    if outer is None:
        _static_cache = {}
    try:
        yield
    finally:
        if outer is None:
            _static_cache = None


# ---------------------------------------------------------------------------- tape --

@dataclass
class _Events:
    """Compressed rows of events: row r = t * B + b holds ``idx[ptr[r]:ptr[r + 1]]``."""

    ptr: np.ndarray
    idx: np.ndarray
    val: np.ndarray          # event weights; empty when every weight is 1 (``unit``)
    unit: bool
    n: int                   # neurons per sample

    @classmethod
    def from_dense(cls, x, kernels):
        T, B = x.shape[:2]
        ptr, idx, val = kernels.dense_to_events(np.ascontiguousarray(x).reshape(T * B, -1))
        unit = bool(np.all(val == 1))
        return cls(ptr, idx, val[:0] if unit else val, unit, int(np.prod(x.shape[2:])))

    @property
    def count(self) -> int:
        return int(self.ptr[-1])

    def to_dense(self, T, B, shape, dtype):
        dense = np.zeros(T * B * self.n, dtype=dtype)
        rows = np.repeat(np.arange(T * B, dtype=np.int64), np.diff(self.ptr))
        dense[rows * self.n + self.idx] = 1 if self.unit else self.val
        return dense.reshape((T, B) + tuple(shape))

    @property
    def nbytes(self) -> int:
        return self.ptr.nbytes + self.idx.nbytes + self.val.nbytes


@dataclass
class EventLayerTape:
    """What the event engine keeps of one ``Dense`` layer: input and output events and
    the membranes the backward needs (``kept_*``: compressed rows like ``_Events``)."""

    inputs: _Events
    spikes: _Events
    kept_ptr: np.ndarray
    kept_idx: np.ndarray
    kept_m: np.ndarray
    theta: np.ndarray        # per neuron, contiguous
    weight: np.ndarray
    bias: np.ndarray | None
    settings: dict           # kernel arguments shared by forward, re-run and backward
    out_shape: tuple
    dense: tuple | None = None   # (I, m, s) once rebuilt for a Record

    @property
    def nbytes(self) -> int:
        """Bytes of the event tape (inputs, spikes, kept membranes)."""
        return (self.inputs.nbytes + self.spikes.nbytes + self.kept_ptr.nbytes
                + self.kept_idx.nbytes + self.kept_m.nbytes)


class _PerLayer(Sequence):
    """``tape.spikes[i]`` etc.: dense arrays per layer, built on first access."""

    def __init__(self, tape, name):
        self._tape, self._name = tape, name

    def __len__(self):
        return len(self._tape.layers)

    def __getitem__(self, i):
        return self._tape._dense(i, self._name)


@dataclass
class EventTape:
    """Everything the event backward needs; the clock ``Tape``'s fields as views.

    ``layers[i]`` is an ``EventLayerTape`` (event-driven Dense layer) or a dict with
    the clock path's ``input``, ``cache``, ``currents``, ``spikes``, ``membrane``,
    ``theta`` (other layers).
    """

    T: int
    B: int
    dtype: np.dtype
    layers: list = field(default_factory=list)

    def __post_init__(self):
        self.spikes = _PerLayer(self, "spikes")
        self.membrane = _PerLayer(self, "membrane")
        self.currents = _PerLayer(self, "currents")
        self.thetas = _PerLayer(self, "theta")

    def _dense(self, i, name):
        record = self.layers[i]
        if isinstance(record, dict):
            return record[name]
        if name == "theta":
            return record.theta.reshape(record.out_shape)
        if name == "spikes" and record.dense is None:
            return record.spikes.to_dense(self.T, self.B, record.out_shape, self.dtype)
        if record.dense is None:
            record.dense = _rerun_recording(record, self.T, self.B)
        current, membrane, spikes = record.dense
        return {"currents": current, "membrane": membrane, "spikes": spikes}[name]


# ------------------------------------------------------------------------- forward --

def _kernels():
    from ..kernels import event_cpu
    return event_cpu


def _is_event_layer(layer) -> bool:
    from ..layers.dense import Dense
    return type(layer) is Dense


def _surrogate_code(surrogate):
    from .. import surrogate as surrogates
    name = type(surrogate).__name__
    if name not in _SURROGATE_CODES or not isinstance(surrogate, getattr(surrogates, name)):
        return None
    return _SURROGATE_CODES[name], float(surrogate.value)


def _transposed_weight(weight, n_events):
    """W.T contiguous, or None when strided columns of W are cheaper (or cached)."""
    if _static_cache is not None:
        hit = _static_cache.get(id(weight))
        if hit is None or hit[0] is not weight:
            hit = _static_cache[id(weight)] = (weight, np.ascontiguousarray(weight.T))
        return hit[1]
    if n_events > TRANSPOSE_RATIO * weight.shape[1]:
        return np.ascontiguousarray(weight.T)
    return None


def _layer_settings(theta, neuron, surrogate, code, T, dtype):
    kind, param = code
    tau = dtype.type(neuron.tau)
    if kind == 2:                                     # rectangular: support |x| < width/2
        half_width = 0.5 * param
        margin = 16 * np.finfo(dtype).eps * (np.abs(theta.astype(np.float64)) + half_width)
        floor = theta.astype(np.float64) - half_width - margin
        floor[theta <= 0] = -np.inf
        keep_all = False
    else:                                             # sigma' != 0 everywhere
        half_width = np.inf
        floor = np.full(theta.shape, -np.inf)
        keep_all = True
    tau_pow = (float(tau) ** np.arange(T + 1, dtype=np.float64)).astype(dtype)
    tau_pow[1] = tau
    return dict(floor=floor, keep_all=keep_all, half_width=float(half_width), tau=tau,
                tau_pow=tau_pow, hard=neuron.reset == "hard", kind=kind, param=param,
                detach=neuron.detach_reset)


def _run_layer(kernels, inputs, weight, weight_t, bias, theta, settings, T, B, dtype,
               record=False):
    N = theta.shape[0]
    if record:
        rec = [np.zeros((T, B, N), dtype=dtype) for _ in range(3)]
    else:
        rec = [np.zeros((0, 0, 0), dtype=dtype)] * 3
    val = inputs.val if not inputs.unit else np.zeros(0, dtype=dtype)
    out = kernels.dense_layer_forward(
        T, B, inputs.ptr, inputs.idx, val, inputs.unit, weight,
        weight_t if weight_t is not None else np.zeros((0, 0), dtype=dtype), weight_t is not None,
        bias if bias is not None else np.zeros(0, dtype=dtype), bias is not None, theta,
        settings["floor"], settings["keep_all"], settings["half_width"], settings["tau"],
        settings["tau_pow"], settings["hard"], record, rec[0], rec[1], rec[2])
    return out, rec


def _rerun_recording(record, T, B):
    """Dense (I, m, s) of an event layer: its kernel again, with recording on."""
    CALLS["materialize"] += 1
    kernels = _kernels()
    weight_t = _transposed_weight(record.weight, record.inputs.count)
    _, rec = _run_layer(kernels, record.inputs, record.weight, weight_t, record.bias,
                        record.theta, record.settings, T, B, record.kept_m.dtype, record=True)
    shape = (T, B) + tuple(record.out_shape)
    return tuple(a.reshape(shape) for a in rec)


def _forward_dense(kernels, layer, params, inputs, neuron, surrogate, code, T, B, dtype):
    weight = np.ascontiguousarray(params["weight"], dtype=dtype)
    bias = np.ascontiguousarray(params["bias"], dtype=dtype) if layer.bias else None
    theta = np.array(layer.expand_theta(params["theta"]), dtype=dtype).reshape(-1)  # writable copy
    settings = _layer_settings(theta, neuron, surrogate, code, T, dtype)
    weight_t = _transposed_weight(weight, inputs.count)
    (spk_ptr, spk_idx, kept_ptr, kept_idx, kept_m), _ = _run_layer(
        kernels, inputs, weight, weight_t, bias, theta, settings, T, B, dtype)
    spikes = _Events(spk_ptr, spk_idx, np.zeros(0, dtype=dtype), True, theta.shape[0])
    return EventLayerTape(inputs=inputs, spikes=spikes, kept_ptr=kept_ptr, kept_idx=kept_idx,
                          kept_m=kept_m, theta=theta, weight=weight, bias=bias,
                          settings=settings, out_shape=tuple(layer.out_shape))


def run_forward(layers, params_per_layer, x, neuron, surrogate, ctx, backend, *,
                smooth=False, reset_spikes=None):
    """Forward through every layer, event-driven where possible. Returns ``(output, tape)``.

    Same signature and results as ``engines.clock.run_forward``; the tape is an
    ``EventTape`` (or the clock ``Tape`` on the fallbacks listed in the module doc).
    """
    code = _surrogate_code(surrogate)
    if (smooth or reset_spikes is not None or code is None
            or not any(_is_event_layer(layer) for layer in layers)):
        CALLS["fallback"] += 1
        return clock.run_forward(layers, params_per_layer, x, neuron, surrogate, ctx, backend,
                                 smooth=smooth, reset_spikes=reset_spikes)
    CALLS["forward"] += 1
    kernels = _kernels()
    T, B = x.shape[:2]
    dtype = np.dtype(x.dtype)
    tape = EventTape(T=T, B=B, dtype=dtype)
    dense, events, shape = x, None, x.shape[2:]
    for i, layer in enumerate(layers):
        params = params_per_layer[i]
        if _is_event_layer(layer):
            if events is None:
                events = _Events.from_dense(dense, kernels)
            record = _forward_dense(kernels, layer, params, events, neuron, surrogate, code,
                                    T, B, dtype)
            tape.layers.append(record)
            dense, events, shape = None, record.spikes, tuple(layer.out_shape)
            continue
        if dense is None:
            dense = events.to_dense(T, B, shape, dtype)
        out, cache = layer.forward(dense, params, ctx)
        record = {"input": dense, "cache": cache, "currents": None, "spikes": None,
                  "membrane": None, "theta": None}
        if layer.has_neurons:
            theta = layer.expand_theta(params["theta"])
            spikes, membrane = backend.lif_forward(out, theta, neuron, surrogate, False)
            record.update(currents=out, spikes=spikes, membrane=membrane, theta=theta)
            out = spikes
        tape.layers.append(record)
        dense, events, shape = out, None, out.shape[2:]
    if dense is None:
        dense = events.to_dense(T, B, shape, dtype)
    return dense, tape


# ------------------------------------------------------------------------ backward --

def run_backward(layers, params_per_layer, tape, grad_output, neuron, surrogate, backend):
    """(B1)-(B6) from what the event forward kept. Same signature and results as
    ``grad.bptt.run_backward``: a list (per layer) of local-name gradient dicts."""
    if not isinstance(tape, EventTape):
        return bptt.run_backward(layers, params_per_layer, tape, grad_output, neuron,
                                 surrogate, backend)
    CALLS["backward"] += 1
    kernels = _kernels()
    T, B, dtype = tape.T, tape.B, tape.dtype
    grads = [None] * len(layers)
    grad_dense, grad_kept = grad_output, None         # e of the current layer: one of them
    for i in range(len(layers) - 1, -1, -1):
        layer, params, record = layers[i], params_per_layer[i], tape.layers[i]
        if isinstance(record, EventLayerTape):
            grads[i], grad_dense, grad_kept = _backward_dense(
                kernels, layer, record, grad_dense, grad_kept,
                tape.layers[i - 1] if i > 0 else None, T, B, dtype)
            continue
        if grad_dense is None:                        # unreachable: event layers above
            raise RuntimeError("internal: dense gradient expected")  # give dense e
        local = {}
        if layer.has_neurons:
            grad_current, grad_theta = backend.lif_backward(
                grad_dense, record["membrane"], record["spikes"], record["theta"], neuron,
                surrogate)
            local["theta"] = layer.reduce_theta(grad_theta)               # (B5) shared sum
        else:
            grad_current = grad_dense
        layer_grads, grad_dense = layer.backward(grad_current, record["cache"], params,
                                                 need_input_grad=i > 0)   # (B4), (B6)
        local.update(layer_grads)
        grads[i] = local
        grad_kept = None
    return grads


def _backward_dense(kernels, layer, record, grad_dense, grad_kept, below, T, B, dtype):
    s = record.settings
    N = record.theta.shape[0]
    n_in = record.weight.shape[1]
    all_kept = s["keep_all"]
    if all_kept:                                      # the layer above sent dense e
        e_dense, e_kept = np.ascontiguousarray(grad_dense, dtype=dtype).reshape(T, B, N), None
    elif grad_kept is None:                           # dense e (loss, clock layer): pick
        e_dense = np.ascontiguousarray(grad_dense, dtype=dtype).reshape(T * B, N)
        rows = np.repeat(np.arange(T * B), np.diff(record.kept_ptr))
        e_dense, e_kept = None, e_dense[rows, record.kept_idx]
    else:
        e_dense, e_kept = None, grad_kept
    if e_dense is None:
        e_dense = np.zeros((0, 0, 0), dtype=dtype)
    if e_kept is None:
        e_kept = np.zeros(0, dtype=dtype)
    inputs = record.inputs
    transposed = _static_cache is not None or inputs.count > TRANSPOSE_RATIO * n_in
    if transposed:
        grad_weight, grad_weight_t = np.zeros((0, 0), dtype=dtype), np.zeros((n_in, N), dtype=dtype)
    else:
        grad_weight, grad_weight_t = np.zeros((N, n_in), dtype=dtype), np.zeros((0, 0), dtype=dtype)
    grad_bias = np.zeros(N if record.bias is not None else 0, dtype=dtype)
    empty_ptr = np.zeros(1, dtype=np.int64)
    if below is None:                                 # first layer: no input gradient
        mode, below_ptr, below_idx = 0, empty_ptr, np.zeros(0, dtype=np.int32)
        e_below, grad_input = np.zeros(0, dtype=dtype), np.zeros((0, 0, 0), dtype=dtype)
    elif isinstance(below, EventLayerTape) and not below.settings["keep_all"]:
        # e only where the layer below keeps m
        mode, below_ptr, below_idx = 1, below.kept_ptr, below.kept_idx
        e_below, grad_input = np.zeros(below.kept_idx.shape[0], dtype=dtype), np.zeros((0, 0, 0), dtype=dtype)
    else:                                             # dense e: a clock layer below, or
        # an event layer that keeps every m
        mode, below_ptr, below_idx = 2, empty_ptr, np.zeros(0, dtype=np.int32)
        e_below, grad_input = np.zeros(0, dtype=dtype), np.zeros((T, B, n_in), dtype=dtype)
    val = inputs.val if not inputs.unit else np.zeros(0, dtype=dtype)
    grad_theta = kernels.dense_layer_backward(
        T, B, s["tau"], s["hard"], s["detach"], s["kind"], s["param"], record.theta, all_kept,
        e_dense, e_kept, record.kept_ptr, record.kept_idx, record.kept_m, record.spikes.ptr,
        record.spikes.idx, inputs.ptr, inputs.idx, val, inputs.unit, transposed, grad_weight,
        grad_weight_t, record.bias is not None, grad_bias, record.weight, mode, below_ptr,
        below_idx, e_below, grad_input)
    local = {"weight": np.ascontiguousarray(grad_weight_t.T) if transposed else grad_weight}
    if record.bias is not None:
        local["bias"] = grad_bias
    local["theta"] = layer.reduce_theta(grad_theta.sum(axis=0).reshape(layer.out_shape))  # (B5)
    if mode == 1:
        return local, None, e_below
    if mode == 2:
        return local, grad_input.reshape((T, B) + tuple(layer.in_shape)), None
    return local, None, None
