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
* (L2) The leak is applied lazily: each neuron keeps an anchor, the last step a at
  which it received input or spiked, and its membrane v_a after it; at step t,
  v_{t-1} = tau^(t-1-a) v_a (one power from a table, not t-1-a multiplications).
* (L3)-(L4) Only visited neurons are tested against theta: those with input, and the
  *candidates*, whose silent membrane can still cross: every neuron with theta <= 0
  (a membrane decaying up to 0 reaches it), and any neuron whose next silent membrane
  is >= theta (soft reset can leave v >= theta / tau). The others provably stay
  silent. Which silent steps are visited never changes a number.
* The tape holds input and spike events only. The backward re-runs each layer's
  forward to recompute the membranes where sigma' != 0, then runs (B1)-(B6) there
  (elsewhere delta just decays, or is cut by a hard-reset spike). With the rectangular
  surrogate (finite support) that is where |m - theta| < width/2, so memory grows with
  activity, not with T x N. Surrogates of infinite support (atan, sigmoid, superspike)
  need every m: the re-run then keeps a dense (T, B, N) membrane per layer, and the
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
import itertools

import numpy as np

from .. import _workspace as workspace
from .._checks import fail
from ..grad import bptt
from ..layers.dense import Dense
from ..spike_events import SpikeEvents
from . import clock
from ..neurons import LIF, neuron_of
from .backend import kernel_neuron, kernel_surrogate
from .event_convert import (dense_to_events, events_to_dense, kernel_values, rows_to_dense,
                            scan_dense)
from .event_tape import EventLayerTape, EventTape, Kept

__all__ = ["run_forward", "run_backward", "events_to_dense", "dense_to_events", "events_of_dense",
           "static_weights", "EventTape", "EventLayerTape", "CALLS", "SpikesPlan", "plan_spikes"]

# (L1) in the forward: a layer with more input events than TRANSPOSE_RATIO times its
# fan-in copies W.T (into a reused scratch buffer) and pushes one contiguous row of it
# per event; below that it reads W itself, eight rows at a time against all the events
# of a chunk of steps (``kernels.event_cpu._gather_rows``), which costs more per
# synaptic add but needs no copy: the break-even lies near 1.5-2.5 events per input
# neuron (the costs are measured in docs/event_engine.md).
# The backward accumulates dW.T in rows above GRAD_TRANSPOSE_RATIO events per input
# neuron, strided columns of dW below. Results are identical either way (same
# products, added in the same order).
TRANSPOSE_RATIO = 2.0
GRAD_TRANSPOSE_RATIO = 0.5
# Without the copy, a chunk of steps with at most DIRECT_RATIO events per input neuron
# (few events share a column) reads W where its events point (``_direct_rows``), a
# busier one gathers; same sums either way.
DIRECT_RATIO = 1.0
# ``Network`` keeps a copy of W.T for a Dense weight that did not change between two
# event-engine calls (``Network._transposed_weights``), and passes it as ``weight_t``:
# inference loops then push, as inside ``static_weights()``. False: it keeps none.
KEEP_TRANSPOSED = True

LIF_DEFAULTS = LIF().settings()

# How often each path ran (tests use it to prove the event kernels, not a fallback, ran).
CALLS = {"forward": 0, "backward": 0, "fallback": 0, "materialize": 0, "event_input": 0,
         "gather": 0, "push": 0, "cached_transpose": 0, "silent": 0, "plan": 0, "stepwise": 0}

_static_cache = None
def _scratch(name, shape, dtype):
    """A scratch array from the shared per-thread workspace (``stlsim._workspace``),
    reused across calls (contents undefined): the W.T copy, the dW.T accumulator and
    the forward's current buffer. Filled and consumed within one kernel call, never
    kept in a tape."""
    return workspace.buffer(("event", name), shape, dtype)


@contextlib.contextmanager
def static_weights():
    """Promise that no weight changes in place inside the block (inference loops).

    Pushing contiguous rows of W.T is the cheapest way to add weight columns; without
    this block a call copies W.T when it has enough events to pay for the copy (see
    ``TRANSPOSE_RATIO``; below that it gathers from W), every call. Inside it the copy
    is made once per weight array and reused, and every call pushes (the presynaptic-
    major layout event-driven simulators keep). Replacing ``net.params[key]`` by a new
    array is fine; modifying an array in place inside the block gives stale results,
    and the outermost block checks for that when it ends: it raises RuntimeError if a
    weight it copied no longer equals its copy. Nesting is allowed.
    """
    global _static_cache
    outer = _static_cache
    if outer is not None:                            # nested: the outer block checks
        yield
        return
    _static_cache = cache = {}
    try:
        yield
    finally:
        _static_cache = None
    changed = sum(not np.array_equal(weight.T, copy) for weight, copy in cache.values())
    if changed:
        raise fail("the weights used inside static_weights()", "unchanged until the block ends",
                   f"{changed} weight array(s) modified in place: results computed inside the "
                   "block after the change used the old values", "static_weights", RuntimeError)


# ------------------------------------------------------------------------- forward --

def events_of_dense(x) -> SpikeEvents:
    """The nonzeros of a dense (T, B, *shape) input as ``SpikeEvents``: the scan
    ``run_forward`` does itself when given a dense array (-0.0 is no event)."""
    return scan_dense(x, _kernels())


_EVENT_CPU = None


def _kernels():
    """``kernels.event_cpu`` (imported on first use: it compiles or loads Numba code)."""
    global _EVENT_CPU
    if _EVENT_CPU is None:
        from ..kernels import event_cpu
        _EVENT_CPU = event_cpu
    return _EVENT_CPU


def _is_event_layer(layer) -> bool:
    return type(layer) is Dense


_WRITTEN = {}                       # id(W.T scratch buffer) -> serial of its last copy
_SERIAL = itertools.count(1)


def _transposed_weight(record, n_events):
    """W.T contiguous, or None when gathering from W itself is cheaper.

    Inside ``static_weights()`` the copy is cached per weight array; otherwise it is
    written into a scratch buffer right before a kernel call that uses it, and the
    layer's tape remembers which copy that was: the backward's re-run of the same layer
    reuses it if no other call has written the buffer since (``_WRITTEN``), instead of
    copying W.T again.
    """
    weight = record.weight
    if _static_cache is not None:
        hit = _static_cache.get(id(weight))
        if hit is None or hit[0] is not weight:
            hit = _static_cache[id(weight)] = (weight, np.ascontiguousarray(weight.T))
        return hit[1]
    if record.cached_weight_t is not None:           # the caller's copy (unchanged W)
        CALLS["cached_transpose"] += 1
        return record.cached_weight_t
    if n_events > TRANSPOSE_RATIO * weight.shape[1]:
        mine = record.weight_t
        if mine is not None and _WRITTEN.get(id(mine[0])) == mine[1]:
            return mine[0]                            # still this layer's copy
        buffer = _scratch("weight_t", weight.shape[::-1], weight.dtype)
        np.copyto(buffer, weight.T)
        if len(_WRITTEN) > 256:
            _WRITTEN.clear()
        serial = _WRITTEN[id(buffer)] = next(_SERIAL)
        record.weight_t = (buffer, serial)
        return buffer
    return None


_TAU_POWERS = {}


def _tau_powers(tau, T, dtype):
    """tau^k for k = 0..T in ``dtype`` (cached: the same table serves every call)."""
    key = (float(tau), T, dtype.str)
    table = _TAU_POWERS.get(key)
    if table is None:
        if len(_TAU_POWERS) > 32:
            _TAU_POWERS.clear()
        table = (float(tau) ** np.arange(T + 1, dtype=np.float64)).astype(dtype)
        table[1] = tau
        table.flags.writeable = False
        _TAU_POWERS[key] = table
    return table


_SETTINGS = {}


def _layer_settings(neuron, code, T, dtype):
    """Kernel arguments of one layer (which neurons a step without input visits is
    chosen per call: ``_run_layer``). Cached: a dict shared by every layer and call
    with the same neuron model, surrogate, T and dtype; never modified."""
    key = (float(neuron.tau), neuron.reset, bool(neuron.detach_reset), code, T, dtype.str)
    settings = _SETTINGS.get(key)
    if settings is None:
        from ..kernels import scalar
        kind, param, param2 = code
        tau = dtype.type(neuron.tau)
        finite = kind == scalar.RECTANGULAR           # sigma' = 0 outside |x| < width/2
        settings = dict(kind=kind, param=param, param2=param2, keep=1 if finite else 2,
                        half_width=0.5 * param if finite else np.inf, tau=tau,
                        tau_pow=_tau_powers(tau, T, dtype), hard=neuron.reset == "hard",
                        detach=neuron.detach_reset, eps=float(np.finfo(dtype).eps))
        if len(_SETTINGS) > 64:
            _SETTINGS.clear()
        _SETTINGS[key] = settings
    return settings


# The forward kernel computes the currents (L1) of a chunk of steps, then runs the
# neurons through them: about CHUNK_VALUES currents per chunk (1 MB in float64). Each
# chunk is one sweep over W when W is not transposed; more steps per sweep amortize it.
CHUNK_VALUES = 131072


def _chunk_steps(T, B, N):
    return max(1, min(T, CHUNK_VALUES // (B * N)))


_VISIT = {"crossing": 0, "support": 1, "everything": 2}   # kernels.event_cpu.CROSSING, ...


_EMPTIES = {}


def _empties(dtype):
    """Empty arrays of 3, 2 and 1 dimensions (the kernels' "none" arguments; nothing
    can be written into an empty array, so one set serves every call)."""
    empties = _EMPTIES.get(dtype.str)
    if empties is None:
        empties = _EMPTIES[dtype.str] = tuple(np.zeros((0,) * n, dtype=dtype) for n in (3, 2, 1))
    return empties


def _run_layer(kernels, record, T, B, visit, keep=0, dense=False, slot=None):
    """One call of the forward kernel on a layer's stored input events. ``visit`` says
    which neurons a step without input must visit (``kernels.event_cpu.visit_fence``):
    "crossing" (those that can fire; the forward), "support" (also those whose
    membrane can be inside the rectangular surrogate's support; the backward's re-run)
    or "everything" (a ``Record``, and surrogates of infinite support). ``keep`` = 2
    writes every membrane into a reused workspace array named by ``slot`` (a fresh one
    when None): a fresh array of T B N membranes costs a page fault per 4 kB. The
    forward ("crossing", nothing kept or recorded) with W.T runs the plan's kernel,
    ``dense_layer_spikes`` (stepwise where at least ``STEPWISE_RATIO`` of the rows have
    input; the same spikes): its membrane entries are then None."""
    inputs, settings, dtype = record.inputs, record.settings, record.theta.dtype
    N = record.theta.shape[0]
    empty3, empty2, empty1 = _empties(dtype)
    m_dense = empty1
    if keep == 2:
        m_dense = (np.empty(T * B * N, dtype=dtype) if slot is None
                   else _scratch(("kept", slot), (T * B * N,), dtype))
    rec = [np.zeros((T, B, N), dtype=dtype) for _ in range(3)] if dense else [empty3] * 3
    weight_t = _transposed_weight(record, inputs.n_events)
    values, unit = kernel_values(inputs)
    CALLS["push" if weight_t is not None else "gather"] += 1
    if weight_t is not None and visit == "crossing" and keep == 0 and not dense:
        # Spikes alone (the forward): the plan's kernel, stepwise where most rows have input.
        spk_ptr, spk_idx, stepwise = kernels.dense_layer_spikes(
            T, B, inputs.ptr, inputs.index, values, unit, record.weight, weight_t,
            record.bias if record.bias is not None else empty1, record.bias is not None,
            record.theta, settings["half_width"], settings["tau"], settings["tau_pow"],
            settings["hard"], _scratch("current", (B, N), dtype), settings["eps"],
            STEPWISE_RATIO)
        CALLS["stepwise"] += stepwise
        return (spk_ptr, spk_idx, None, None, None), rec
    out = kernels.dense_layer_forward(
        T, B, inputs.ptr, inputs.index, values, unit, record.weight,
        weight_t if weight_t is not None else empty2, weight_t is not None,
        record.bias if record.bias is not None else empty1,
        record.bias is not None, record.theta, _VISIT[visit], keep, settings["half_width"],
        settings["tau"], settings["tau_pow"], settings["hard"], dense, rec[0], rec[1], rec[2],
        _scratch("current", (_chunk_steps(T, B, N) * B, N), dtype), settings["eps"],
        DIRECT_RATIO, m_dense)
    return out, rec


def _rerun_recording(record, T, B):
    """Dense (I, m, s) of an event layer: its kernel again, visiting every neuron at
    every step (the numbers do not depend on the visiting schedule)."""
    CALLS["materialize"] += 1
    _, rec = _run_layer(_kernels(), record, T, B, "everything", dense=True)
    shape = (T, B) + tuple(record.out_shape)
    return tuple(a.reshape(shape) for a in rec)


def _rerun_keeping(record, T, B, slot=None):
    """The membranes the backward needs, recomputed from the input events; checks that
    the re-run reproduced the forward's spikes. ``slot``: see ``_run_layer``."""
    keep = record.settings["keep"]
    (spk_ptr, spk_idx, m_ptr, m_idx, m_val), _ = _run_layer(
        _kernels(), record, T, B, "support" if keep == 1 else "everything", keep=keep,
        slot=slot)
    same = (np.array_equal(spk_ptr, record.spikes.ptr)
            and np.array_equal(spk_idx, record.spikes.index))
    if not same:
        raise RuntimeError("internal error: the event engine's re-run changed the spikes")
    return Kept(dense=keep == 2, ptr=m_ptr, idx=m_idx, m=m_val)


def _forward_dense(kernels, layer, params, inputs, neuron, code, T, B, dtype, weight_t=None):
    theta = params["theta"]
    if theta.shape != tuple(layer.out_shape):        # shared threshold: one per neuron
        theta = layer.expand_theta(theta)
    theta = np.array(theta, dtype=dtype).reshape(-1)  # a copy: the tape must not change
    record = EventLayerTape(
        inputs=inputs, spikes=None, theta=theta,
        weight=np.ascontiguousarray(params["weight"], dtype=dtype),
        bias=np.ascontiguousarray(params["bias"], dtype=dtype) if layer.bias else None,
        settings=_layer_settings(neuron, code, T, dtype), out_shape=tuple(layer.out_shape),
        cached_weight_t=weight_t, has_bias=bool(layer.bias))
    if inputs.n_events == 0 and not layer.bias and theta.min(initial=np.inf) > 0:
        # Nothing reaches the layer: every membrane stays at v_0 = 0 < theta (L2)-(L4), in
        # either reset mode; no spike, no candidate. The kernel would find the same.
        CALLS["silent"] += 1
        spk_ptr, spk_idx = np.zeros(T * B + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)
    else:
        (spk_ptr, spk_idx, _, _, _), _ = _run_layer(kernels, record, T, B, "crossing")
    record.spikes = SpikeEvents._trusted(T, B, record.out_shape, spk_ptr, spk_idx, None, dtype)
    return record


_ACCEPTED = {}          # id(LIF) -> LIF, neurons ``kernel_neuron`` accepted (frozen objects)


def _check_neurons(neuron, layers):
    """The event kernels implement the paper's neuron (``LIF.is_paper_form``); any other
    option is refused here, by name, rather than computed wrongly."""
    for i, layer in enumerate(layers):
        if not layer.has_neurons:
            continue
        n = neuron_of(neuron, i)
        if _ACCEPTED.get(id(n)) is n:
            continue
        if kernel_neuron(n):
            if len(_ACCEPTED) > 64:
                _ACCEPTED.clear()
            _ACCEPTED[id(n)] = n
            continue
        extra = [name for name, value in n.settings().items()
                 if name in ("reset", "spike_at_threshold", "input_gain", "v_leak", "v_reset",
                             "v_init", "alpha_syn", "learn_tau", "tie_gain", "learn_alpha_syn",
                             "adaptation", "synapse_delay")
                 and np.any(value != LIF_DEFAULTS[name])
                 and not (name == "reset" and value == "soft")]
        if n.per_neuron_tau:
            extra.insert(0, "tau (per neuron)")
        extra = [f"{name} (per neuron)" if name in n.per_neuron_values else name
                 for name in extra]
        raise fail(f"neuron of layer {i}", "the paper's LIF options (scalar tau, hard or soft "
                   "reset, H(0) = 1, no gain, leak, reset or initial potential) for "
                   "engine='event'", ", ".join(f"{name}={n.settings().get(name.split()[0])!r}"
                                               for name in extra) + " (use engine='clock')",
                   "Network", ValueError)


def run_forward(layers, params_per_layer, x, neuron, surrogate, ctx, backend, *,
                smooth=False, reset_spikes=None, weight_t=None):
    """Forward through every layer, event-driven where possible. Returns ``(output, tape)``.

    Same signature and results as ``engines.clock.run_forward``; the tape is an
    ``EventTape`` (or the clock ``Tape`` on the fallbacks listed in the module doc).
    ``weight_t``: optional {layer position: W.T, C-contiguous}, copies the caller
    guarantees equal to that layer's weight (``Network`` keeps them for weights that
    did not change between calls); those layers push from them, copying nothing.
    """
    code = kernel_surrogate(surrogate)
    if (smooth or reset_spikes is not None or code is None
            or not any(_is_event_layer(layer) for layer in layers)):
        CALLS["fallback"] += 1
        if isinstance(x, SpikeEvents):
            x = x.to_dense()
        return clock.run_forward(layers, params_per_layer, x, neuron, surrogate, ctx, backend,
                                 smooth=smooth, reset_spikes=reset_spikes)
    _check_neurons(neuron, layers)
    for i, layer in enumerate(layers):
        if getattr(layer, "recurrent", None) is not None:      # Section 10: clock engine only
            raise fail(f"layers[{i}]", "feed-forward layers for engine='event' (the event "
                       "kernels have no recurrent current, (L1r))",
                       f"{layer!r} (use engine='clock')", "Network")
    CALLS["forward"] += 1
    kernels = _kernels()
    T, B = x.shape[:2]
    dtype = np.dtype(x.dtype)
    tape = EventTape(T=T, B=B, dtype=dtype, rebuild=_rerun_recording)
    if isinstance(x, SpikeEvents):                    # events as given: nothing to scan
        CALLS["event_input"] += 1
        dense, events = None, x
    else:
        dense, events = x, None
    for i, layer in enumerate(layers):
        params = params_per_layer[i]
        if _is_event_layer(layer):
            if events is None:
                events = scan_dense(dense, kernels)
            record = _forward_dense(kernels, layer, params, events, neuron_of(neuron, i), code,
                                    T, B, dtype, None if weight_t is None else weight_t.get(i))
            tape.layers.append(record)
            dense, events = None, record.spikes
            continue
        if dense is None:
            dense = rows_to_dense(events, kernels, dtype)
        out, cache = layer.forward(dense, params, ctx)
        record = {"input": dense, "cache": cache, "currents": None, "spikes": None,
                  "membrane": None, "theta": None}
        if layer.has_neurons:
            theta = layer.expand_theta(params["theta"])
            spikes, membrane = backend.lif_forward(out, theta, neuron_of(neuron, i), surrogate,
                                                   False)
            record.update(currents=out, spikes=spikes, membrane=membrane, theta=theta)
            out = spikes
        tape.layers.append(record)
        dense, events = out, None
    if dense is None:
        dense = rows_to_dense(events, kernels, dtype)
    return dense, tape


# ---------------------------------------------------- record="spikes": a kept plan --

# False: ``Network.forward(..., record="spikes")`` never uses a plan (the general path
# every call); ``benchmarks/public_call.py`` measures both in one process.
PLAN_SPIKES = True
# A plan's layer, and the general forward where it pushes W.T (``_run_layer``), runs
# ``kernels.event_cpu._stepwise_spikes`` (one tight pass per row, no candidate lists)
# when at least STEPWISE_RATIO of its T * B rows (steps of a sample) have input; the
# lazy kernel below that. The same spikes either way; the break-even is
# measured in docs/performance.md ("The event engine through `net.forward`").
STEPWISE_RATIO = 0.35


class _PlannedLayer:
    """What a ``SpikesPlan`` keeps of one Dense layer: copies and settings, never a
    reference to a parameter array (that would make the entry not private to
    ``Network.params``, and every call would scan it)."""

    __slots__ = ("weight_key", "bias_key", "theta", "silent_ok", "out_shape", "n_out", "tau",
                 "hard", "half_width", "eps", "weight_t", "tau_pow")

    def __init__(self, position, layer, theta, neuron, code, dtype, weight_t):
        settings = _layer_settings(neuron, code, 1, dtype)
        self.weight_key = f"{position}.weight"
        self.bias_key = f"{position}.bias" if layer.bias else None
        self.theta = theta
        # No input, no bias, theta > 0: no spike (the shortcut of ``_forward_dense``).
        self.silent_ok = not layer.bias and theta.min(initial=np.inf) > 0
        self.out_shape = tuple(layer.out_shape)
        self.n_out = theta.shape[0]
        self.tau, self.hard = settings["tau"], settings["hard"]
        self.half_width, self.eps = settings["half_width"], settings["eps"]
        self.weight_t = weight_t
        self.tau_pow = _tau_powers(self.tau, 1, dtype)


class SpikesPlan:
    """``net.forward(x, engine="event", record="spikes")`` prepared once for a network
    whose layers are all event-driven ``Dense`` layers.

    It holds what ``run_forward`` would recompute at every call: each layer's theta as
    a contiguous copy in the network's dtype, its neuron's kernel settings, the W.T
    copy the Network keeps for an unchanged weight; and it builds no tape. The Network
    keeps it (``Network._spikes_by_plan``) only while every parameter is unchanged
    (``ParamDict._unchanged``: the same versions, clean and private) and its settings
    are the ones it was built with; any doubt runs the general path, which checks
    everything and builds a new plan. Same kernel, same arguments as the general path's
    forward (``_run_layer`` with visit "crossing"): the same spikes, bit for bit.
    """

    __slots__ = ("layers", "dtype", "n_in", "input_shape")

    def __init__(self, layers, dtype, input_shape):
        self.layers, self.dtype = layers, dtype
        self.input_shape = tuple(input_shape)
        self.n_in = int(np.prod(self.input_shape))

    def run(self, data, x, check):
        """Every layer's output ``SpikeEvents`` for input ``x`` (the dense array or
        ``SpikeEvents`` the Network checked against the plan), the weights read from
        ``data`` (``Network.params._data``); None when plans are off (``PLAN_SPIKES``).
        ``check``: called on the nonzeros of a dense ``x`` (returns them or raises)."""
        if not PLAN_SPIKES:
            return None
        kernels = _kernels()
        dtype = self.dtype
        if isinstance(x, SpikeEvents):
            CALLS["event_input"] += 1
            events = x
        else:
            events = check(scan_dense(x, kernels))
        T, B = events.T, events.batch_size
        CALLS["forward"] += 1
        CALLS["plan"] += 1
        empty1 = _empties(dtype)[2]
        out = []
        for layer in self.layers:
            N = layer.n_out
            if events.n_events == 0 and layer.silent_ok:
                CALLS["silent"] += 1
                spk_ptr, spk_idx = np.zeros(T * B + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)
            else:
                if layer.tau_pow.shape[0] <= T:
                    layer.tau_pow = _tau_powers(layer.tau, T, dtype)
                values, unit = kernel_values(events)
                bias = data[layer.bias_key] if layer.bias_key is not None else empty1
                CALLS["push"] += 1
                CALLS["cached_transpose"] += 1
                spk_ptr, spk_idx, stepwise = kernels.dense_layer_spikes(
                    T, B, events.ptr, events.index, values, unit, data[layer.weight_key],
                    layer.weight_t, bias, layer.bias_key is not None, layer.theta,
                    layer.half_width, layer.tau, layer.tau_pow, layer.hard,
                    _scratch("current", (B, N), dtype), layer.eps, STEPWISE_RATIO)
                CALLS["stepwise"] += stepwise
                del bias
            events = SpikeEvents._trusted(T, B, layer.out_shape, spk_ptr, spk_idx, None, dtype)
            out.append(events)
        return out

    def dense(self, events):
        """The dense (T, B, *shape) array of ``events``."""
        return rows_to_dense(events, _kernels(), self.dtype)

    def rates(self, events, population):
        """(B, C) rates of the output layer's ``events``, bit for bit what
        ``readout.population_rates`` gives from their dense array (``np.mean``: a sum in
        the storage dtype, exact for counts up to 2^24, then ``true_divide`` by the
        count of items as an ``intp``, which divides in float64 and rounds once:
        ``kernels.event_cpu.population_rates`` does that in one kernel call); None where
        a count could be inexact (T * population > 2^24)."""
        T, B = events.T, events.batch_size
        if T * population > 2 ** 24:
            return None
        return _kernels().population_rates(events.ptr, events.index, T, B,
                                           self.layers[-1].n_out // population, population,
                                           _empties(self.dtype)[2])


def plan_spikes(layers, params_per_layer, neuron, surrogate, dtype, weight_t, input_shape):
    """A ``SpikesPlan`` for these layers, or None where ``run_forward`` would not run
    them all event-driven (another layer type, a recurrent layer, a fallback) or a
    layer has no kept W.T (``weight_t``: {position: W.T}, as for ``run_forward``).
    Call it after ``run_forward`` succeeded with the same arguments (which checked the
    neurons)."""
    code = kernel_surrogate(surrogate)
    if code is None or not KEEP_TRANSPOSED or not PLAN_SPIKES:
        return None
    planned = []
    for i, layer in enumerate(layers):
        if (not _is_event_layer(layer) or getattr(layer, "recurrent", None) is not None
                or weight_t.get(i) is None):
            return None
        theta = params_per_layer[i]["theta"]
        if theta.shape != tuple(layer.out_shape):
            theta = layer.expand_theta(theta)
        theta = np.array(theta, dtype=dtype).reshape(-1)
        planned.append(_PlannedLayer(i, layer, theta, neuron_of(neuron, i), code, np.dtype(dtype),
                                     weight_t[i]))
    return SpikesPlan(planned, np.dtype(dtype), input_shape)


# ------------------------------------------------------------------------ backward --

def run_backward(layers, params_per_layer, tape, grad_output, neuron, surrogate, backend):
    """(B1)-(B6) from the event tape. Same signature and results as
    ``grad.bptt.run_backward``: a list (per layer) of local-name gradient dicts.

    First every event layer is re-run to recompute the membranes where sigma' != 0
    (all of them for surrogates of infinite support); then layers are processed from
    the top, each passing e (dL/ds) to the layer below only where that layer kept m.
    """
    if not isinstance(tape, EventTape):
        return bptt.run_backward(layers, params_per_layer, tape, grad_output, neuron,
                                 surrogate, backend)
    CALLS["backward"] += 1
    kernels = _kernels()
    T, B, dtype = tape.T, tape.B, tape.dtype
    kept = [_rerun_keeping(r, T, B, slot=i) if isinstance(r, EventLayerTape) else None
            for i, r in enumerate(tape.layers)]
    grads = [None] * len(layers)
    grad_dense, grad_kept = grad_output, None         # e of the current layer: one of them
    for i in range(len(layers) - 1, -1, -1):
        layer, params, record = layers[i], params_per_layer[i], tape.layers[i]
        if isinstance(record, EventLayerTape):
            grads[i], grad_dense, grad_kept = _backward_dense(
                kernels, layer, record, kept[i], grad_dense, grad_kept,
                kept[i - 1] if i > 0 else False, T, B, dtype, i)
            kept[i] = None                            # free as we go
            continue
        local = {}
        if layer.has_neurons:
            grad_current, grad_theta = backend.lif_backward(
                grad_dense, record["membrane"], record["spikes"], record["theta"],
                neuron_of(neuron, i),
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


def _backward_dense(kernels, layer, record, kept, grad_dense, grad_kept, below, T, B, dtype,
                    position):
    """One event layer (at ``position`` in the network). ``below``: False (first
    layer), None (a clock layer below: dense e), or the ``Kept`` of the event layer
    below. Returns (grads, dense e or None, kept-aligned e or None) for the layer
    below; a dense e lives in this thread's workspace (consumed within the call)."""
    s = record.settings
    N = record.theta.shape[0]
    n_in = record.weight.shape[1]
    none = np.zeros(0, dtype=dtype)
    if kept.dense:                                    # dense e from above (loss, clock
        e_dense = np.ascontiguousarray(grad_dense, dtype=dtype).reshape(T, B, N)  # or event)
        e_kept = none
    else:
        e_dense = np.zeros((0, 0, 0), dtype=dtype)
        if grad_kept is None:                         # dense e given: read it where kept
            rows = np.repeat(np.arange(T * B), np.diff(kept.ptr))
            e_kept = np.ascontiguousarray(grad_dense, dtype=dtype).reshape(T * B, N)[rows, kept.idx]
        else:
            e_kept = grad_kept
    inputs = record.inputs
    transposed = inputs.n_events > GRAD_TRANSPOSE_RATIO * n_in
    values, unit = kernel_values(inputs)
    if transposed:
        grad_weight_t = _scratch("grad_weight_t", (n_in, N), dtype)
        grad_weight_t.fill(0)
        grad_weight = np.zeros((0, 0), dtype=dtype)
    else:
        grad_weight, grad_weight_t = np.zeros((N, n_in), dtype=dtype), np.zeros((0, 0), dtype=dtype)
    grad_bias = np.zeros(N if record.bias is not None else 0, dtype=dtype)
    empty_ptr, empty_idx = np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32)
    no_grad_input = np.zeros((0, 0, 0), dtype=dtype)
    if below is False:                                # first layer: no input gradient
        mode, below_ptr, below_idx = 0, empty_ptr, empty_idx
        e_below, grad_input = none, no_grad_input
    elif below is not None and not below.dense:       # e only where the layer below kept m
        mode, below_ptr, below_idx = 1, below.ptr, below.idx
        e_below, grad_input = np.zeros(below.idx.shape[0], dtype=dtype), no_grad_input
    else:                                             # dense e: a clock layer below, or an
        mode, below_ptr, below_idx = 2, empty_ptr, empty_idx   # event layer keeping every m
        grad_input = _scratch(("grad_input", position), (T, B, n_in), dtype)
        grad_input.fill(0)                            # (reused: no page faults)
        e_below = none
    grad_theta = kernels.dense_layer_backward(
        T, B, s["tau"], s["hard"], s["detach"], s["kind"], s["param"], s["param2"], record.theta,
        kept.dense, e_dense, e_kept, kept.ptr, kept.idx, kept.m, record.spikes.ptr,
        record.spikes.index, inputs.ptr, inputs.index, values, unit, transposed,
        grad_weight, grad_weight_t, record.bias is not None, grad_bias, record.weight, mode,
        below_ptr, below_idx, e_below, grad_input)
    local = {"weight": np.ascontiguousarray(grad_weight_t.T) if transposed else grad_weight}
    if record.bias is not None:
        local["bias"] = grad_bias
    local["theta"] = layer.reduce_theta(grad_theta.sum(axis=0).reshape(layer.out_shape))  # (B5)
    if mode == 1:
        return local, None, e_below
    if mode == 2:
        return local, grad_input.reshape((T, B) + tuple(layer.in_shape)), None
    return local, None, None
