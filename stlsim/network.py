"""``Network``: layers + LIF neurons + surrogate + population readout.

The user-facing object of the core contract::

    net = stlsim.Network([stlsim.Dense(64, 100), stlsim.Dense(100, 20)],
                         neuron=stlsim.LIF(tau=0.5, theta_init=2.0), population=2, seed=0)
    rec = net.forward(x)                 # x: (T, B, 64)
    loss, grads = net.loss_and_grad(x, y)

Parameters live in ``net.params`` (an ordered dict of numpy arrays named
``"{layer}.weight"``, ``"{layer}.bias"``, ``"{layer}.theta"``, ...) and may be
assigned in place. The network keeps no simulation state between calls; the only
state it carries is ``net.buffers`` (BatchNorm running estimates
``"{layer}.bn_running_mean"``, ``"{layer}.bn_running_var"``), which a forward pass with
``training=True`` updates, as torch's BatchNorm does in train mode.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import surrogate as _surrogate
from ._params import ParamDict
from ._checks import check_array, check_bool, check_choice, check_dtype, check_int, check_labels, fail, seed_streams
from .engines import ENGINES, get_backend, get_engine, resolve_backend
from .engines.backend import kernel_surrogate
from .engines.event_tape import (EventLayerTape, EventTape, attach_parameters,
                                 detach_parameters, spike_events_of)
from .grad import bptt
from .layers.base import Context, Layer
from .layers.dense import Dense
from .layers.shape import resolve_shapes
from .neurons import (LIF, NO_DELAY_RESETS, adaptation_arrays, adaptation_states, after_reset,
                      neuron_of, replace_unchecked, reset_carries)
from .readout import LOSSES, decide, loss_from_rates, population_rates, rates_backward
from .spike_events import SpikeEvents

__all__ = ["Network", "Record", "StepTrace"]

# The per-call path before the guarded parameters (every parameter scanned for NaN at every call,
# the event engine's dense Record built eagerly, no kept W.T): True restores it.
# Kept for benchmarks/public_call.py, which measures both paths in one process.
_LEGACY_CALL_PATH = False


def _dense_field(name: str, doc: str) -> property:
    """A dense list of ``Record`` that is built (``Record._build``) before it is read or replaced."""
    attr = "_" + name

    def get(self):
        self._build()
        return getattr(self, attr)

    def put(self, value):
        self._build()
        setattr(self, attr, value)

    return property(get, put, doc=doc)


def _finite_events(events: SpikeEvents) -> SpikeEvents:
    """``events`` (the nonzeros of a dense ``x``) if their values are finite, else the
    error a dense ``x`` with a NaN or an infinity gets."""
    if events.values is not None and not np.all(np.isfinite(events.values)):
        n_bad = int(events.values.size - np.count_nonzero(np.isfinite(events.values)))
        raise fail("x", "finite (no NaN or infinity)", f"{n_bad} non-finite values", "Network")
    return events


class Record:
    """Result of ``Network.forward``.

    ``spikes[l]``, ``membrane[l]`` (m_t before reset) and ``currents[l]`` (I_t) are
    (T, B, *shape) arrays of the l-th *spiking* layer; ``layer_index[l]`` is that
    layer's position in ``Network.layers``. ``rates`` is (B, C). With
    ``forward(..., record="spikes")``, ``spikes[l]`` are ``SpikeEvents`` and
    ``membrane``, ``currents`` are None (nothing dense is built).

    On the event engine the dense lists are built when first read (re-running each
    layer's kernel, same numbers), or earlier: before anything can change the
    parameters they were computed from (``stlsim._params``). ``rates``,
    ``prediction`` never build them.
    """

    def __init__(self, spikes, membrane, currents, rates, layer_index, engine="clock",
                 backend="numpy"):
        self._spikes, self._membrane, self._currents = spikes, membrane, currents
        self.rates = rates
        self.layer_index = layer_index
        self.engine = engine
        self.backend = backend
        # (event tape without parameters, the ParamDict it reads them from): the arrays
        # there are the forward's until something exposes them, and exposing builds this.
        self._lazy = None

    @classmethod
    def _deferred(cls, tape, index, params, rates, engine, backend):
        """A Record of the event engine whose dense lists are built from ``tape`` on
        first read; ``tape`` must hold no parameter array (``detach_parameters``)."""
        record = cls(None, None, None, rates, index, engine, backend)
        record._lazy = (tape, params)
        params._pend(record)
        return record

    def _build(self):
        if self._lazy is None:
            return
        tape, params = self._lazy
        self._lazy = None
        attach_parameters(tape, params._data)
        index = self.layer_index
        self._spikes = [tape.spikes[i] for i in index]
        self._membrane = [tape.membrane[i] for i in index]
        self._currents = [tape.currents[i] for i in index]
        detach_parameters(tape)

    spikes = _dense_field("spikes", "Per spiking layer: s, (T, B, *shape).")
    membrane = _dense_field("membrane", "Per spiking layer: m before the reset, (T, B, *shape).")
    currents = _dense_field("currents", "Per spiking layer: the input current I, (T, B, *shape).")

    def __repr__(self) -> str:
        return (f"Record(engine={self.engine!r}, backend={self.backend!r}, "
                f"layer_index={self.layer_index}, rates shape {self.rates.shape})")

    @property
    def prediction(self) -> np.ndarray:
        return decide(self.rates)

    @property
    def firing_rates(self) -> list:
        """Mean spikes per neuron per step, one float per spiking layer."""
        return [s.density if isinstance(s, SpikeEvents) else float(s.mean()) for s in self.spikes]


@dataclass
class StepTrace:
    """Step-through view: forward and backward quantities of every spiking layer.

    ``forward[l]`` has keys "I", "m", "s", "v"; ``backward[l]`` has "e", "eps", "g",
    "delta" (all (T, B, *shape), notation of ``docs/model.md``). ``loss`` and
    ``grads`` are what ``loss_and_grad`` returns.
    """

    forward: list
    backward: list
    theta: list
    layer_index: list
    rates: np.ndarray
    loss: float
    grads: dict = field(default_factory=dict)


class Network:
    """A feed-forward spiking network trained by BPTT with surrogate gradients.

    The model is (L1)-(L4) of ``docs/model.md``, its gradient (B1)-(B6). Every argument is
    checked here; a wrong one raises ``ValueError`` or ``TypeError`` naming it.

    Parameters
    ----------
    layers : list of Layer
        The layers in order (``Dense``, ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``,
        ``Flatten``, ``Dropout``). Every layer with neurons (``Dense``, ``Conv2d``) is
        followed by its LIF neurons. The last layer must have neurons: C * P of them, for
        C classes and P = ``population``.
    neuron : LIF or list of LIF, optional
        One neuron shared by every spiking layer, or one per spiking layer (in order);
        None is ``LIF()``. ``LIF.preset(name)`` gives another framework's neuron
        (``stlsim.conventions``).
    surrogate : Surrogate or str, default "atan"
        The surrogate gradient: a ``stlsim.surrogate.Surrogate`` or its name ("atan", ...).
    population : int, default 1
        P, output neurons per class (P = 1: plain readout). Must divide the number of
        neurons of the last layer.
    seed : int, numpy.random.SeedSequence or numpy.random.Generator, default 0
        Seeds the parameter initialisation and the dropout masks (two streams: for an int,
        ``default_rng(seed)`` and ``default_rng([seed, 1])``; ``stlsim._checks.seed_streams``).
    dtype : numpy dtype, default numpy.float64
        ``numpy.float64`` (the reference) or ``numpy.float32``.
    backend : str, default "auto"
        The kernels that run the neurons: "auto" ("numba" if Numba imports, else
        "numpy"), "numpy" (the readable reference) or one registered in
        ``stlsim.engines.BACKENDS``. "auto" never picks a GPU backend.
    engine : str, default "clock"
        How time advances: "clock" or one registered in ``stlsim.engines.ENGINES``
        ("event": work only where spikes are).
    input_shape : tuple of int, optional
        The shape of one input sample, e.g. (1, 28, 28). None takes it from the first
        layer when that fixes it (``Dense``), else infers it backwards from the first
        ``Dense`` (square images; see ``stlsim.layers.shape``). Every layer then learns
        its shape from the one before it.

    Attributes
    ----------
    params : dict of str to numpy.ndarray
        The trained parameters, named ``"{layer}.weight"``, ``"{layer}.bias"``,
        ``"{layer}.theta"``, ...; they may be assigned in place.
    buffers : dict of str to numpy.ndarray
        Non-trained state: BatchNorm running estimates, updated by a forward pass with
        ``training=True``.
    neurons : list of LIF
        The neuron of each spiking layer.
    n_classes : int
        C, the number of classes (output neurons / P).

    Examples
    --------
    >>> import numpy as np, stlsim
    >>> net = stlsim.Network([stlsim.Dense(64, 100), stlsim.Dense(100, 20)],
    ...                      neuron=stlsim.LIF(tau=0.5, theta_init=2.0), population=2)
    >>> x = (np.random.default_rng(0).random((8, 5, 64)) < 0.3).astype(float)   # (T, B, inputs)
    >>> loss, grads = net.loss_and_grad(x, np.array([0, 1, 2, 3, 4]))
    >>> sorted(grads) == sorted(net.params)
    True
    """

    def __init__(self, layers, neuron: LIF | None = None, surrogate="atan", *, population: int = 1,
                 seed: int | np.random.SeedSequence | np.random.Generator = 0, dtype=np.float64,
                 backend: str = "auto", engine: str = "clock", input_shape=None):
        if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
            raise fail("layers", "a list of stlsim layers", type(layers).__name__, "Network", TypeError)
        self.layers = list(layers)
        if not self.layers:
            raise fail("layers", "a non-empty list of stlsim layers", "an empty list", "Network")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise fail(f"layers[{i}]", "a stlsim layer (Dense, Conv2d, ...)",
                           type(layer).__name__, "Network", TypeError)
        resolve_shapes(self.layers, input_shape)          # layer.build(shape) along the chain
        if not self.layers[-1].has_neurons:
            raise fail("layers[-1]", "a layer with neurons (Dense or Conv2d)",
                       type(self.layers[-1]).__name__, "Network")
        self.neurons = self._check_neurons(LIF() if neuron is None else neuron,
                                           check_dtype(dtype, owner="Network"))
        self.neuron = self.neurons[0]          # the shared neuron (the first, if per layer)
        self.surrogates = self._check_surrogates(surrogate)
        self.surrogate = self.surrogates[0]     # the shared surrogate (the first, if per layer)
        self.population = check_int(population, "population", low=1, owner="Network")
        n_out = int(np.prod(self.layers[-1].out_shape))
        if n_out % self.population:
            raise fail("population", f"a divisor of the output layer's {n_out} neurons",
                       repr(self.population), "Network")
        self.n_classes = n_out // self.population
        rng, self.rng = seed_streams(seed, 2, "seed", "Network")   # init; dropout masks and the like
        self.seed = int(seed) if isinstance(seed, (int, np.integer)) else None
        self.dtype = check_dtype(dtype, owner="Network")
        self.backend = resolve_backend(backend, "Network")
        self.engine = check_choice(engine, "engine", tuple(ENGINES), "Network")
        self.params = {}
        for i, layer in enumerate(self.layers):
            theta_init = self._neuron_of_layer(i).theta_init if layer.has_neurons else 0.0
            for name, value in layer.init_params(rng, self.dtype, theta_init).items():
                self.params[f"{i}.{name}"] = value
            if layer.has_neurons:                      # a trained decay or synapse (B7)-(B9)
                for name, value in _neuron_init(self._neuron_of_layer(i), layer).items():
                    self.params[f"{i}.{name}"] = value.astype(self.dtype)
        # Non-trainable state (BatchNorm running estimates); updated by training forwards.
        self.buffers = {}
        for i, layer in enumerate(self.layers):
            for name, value in layer.init_buffers(self.dtype).items():
                self.buffers[f"{i}.{name}"] = value
        self._buffer_shapes = {key: value.shape for key, value in self.buffers.items()}
        self._expected_shapes = self._param_shapes()
        self._weight_t = {}            # key -> (version, W.T) of event layers' unchanged weights
        self._weight_seen = {}         # key -> version at the last event-engine call
        self._plan = None              # (settings, versions, SpikesPlan, backend): _spikes_by_plan

    @property
    def params(self) -> ParamDict:
        """The parameters: a mapping of arrays (``stlsim._params.ParamDict``), used like a
        dict; entries may be replaced or changed in place."""
        return self._params

    @params.setter
    def params(self, value):
        self._params = value if isinstance(value, ParamDict) else ParamDict(value)

    # ------------------------------------------------------------------- neurons --
    def _check_neurons(self, neuron, dtype=np.float64) -> list:
        """One LIF per spiking layer, checked against the layers (per-neuron tau sizes)."""
        spiking = [i for i, layer in enumerate(self.layers) if layer.has_neurons]
        if isinstance(neuron, LIF):
            neurons = [neuron] * len(spiking)
        elif isinstance(neuron, (list, tuple)):
            neurons = list(neuron)
            if len(neurons) != len(spiking):
                raise fail("neuron", f"a stlsim.LIF or a list of {len(spiking)} (one per spiking "
                           "layer)", f"a list of {len(neurons)}", "Network")
            for k, n in enumerate(neurons):
                if not isinstance(n, LIF):
                    raise fail(f"neuron[{k}]", "a stlsim.LIF", type(n).__name__, "Network",
                               TypeError)
        else:
            raise fail("neuron", "a stlsim.LIF or a list of them", type(neuron).__name__,
                       "Network", TypeError)
        for i, n in zip(spiking, neurons):
            if n.per_neuron_tau:
                shape = tuple(self.layers[i].out_shape)
                if n.tau.size != int(np.prod(shape)):
                    try:
                        np.broadcast_to(n.tau, shape)
                    except ValueError:
                        raise fail("tau", f"a float or {int(np.prod(shape))} values (one per "
                                   f"neuron of layer {i}, shape {shape})", f"{n.tau.size} values",
                                   "Network") from None
            shape = tuple(self.layers[i].out_shape)
            for name in n.per_neuron_values:                        # (L1s), (L2g), (L4h)
                value = getattr(n, name)
                if value.size != int(np.prod(shape)):
                    raise fail(name, f"a float or {int(np.prod(shape))} values (one per neuron "
                               f"of layer {i}, shape {shape})", f"{value.size} values", "Network")
            if n.adaptive:
                size, n_neurons = n.adaptation.size(), int(np.prod(self.layers[i].out_shape))
                if size is not None and size != n_neurons:
                    raise fail("adaptation", f"beta and rho as floats or {n_neurons} values (one "
                               f"per neuron of layer {i})",
                               f"beta of {np.size(n.adaptation.beta)}, rho of "
                               f"{np.size(n.adaptation.rho)} values", "Network")
        neurons = [_shaped(n, self.layers[i].out_shape, dtype) for i, n in zip(spiking, neurons)]
        self._spiking_index = {i: k for k, i in enumerate(spiking)}
        # What the engines get: the LIF itself when shared, else one entry per layer.
        if all(n == neurons[0] for n in neurons):
            self._engine_neuron = neurons[0]
        else:
            self._engine_neuron = [neurons[self._spiking_index[i]] if i in self._spiking_index
                                   else None for i in range(len(self.layers))]
        return neurons

    def _neuron_of_layer(self, i: int) -> LIF:
        return self.neurons[self._spiking_index[i]]

    # --- one surrogate per spiking layer (a peer model may use another per layer) -------------
    def _check_surrogates(self, surrogate) -> list:
        """One Surrogate per spiking layer: ``surrogate`` shared, or a list of them (as
        ``neuron``). The engines get ``_engine_surrogate``: the Surrogate when shared, else
        a list indexed by layer position (``neurons.neuron_of`` picks a layer's entry)."""
        spiking = [i for i, layer in enumerate(self.layers) if layer.has_neurons]
        if isinstance(surrogate, (list, tuple)):
            if len(surrogate) != len(spiking):
                raise fail("surrogate", f"a surrogate or a list of {len(spiking)} (one per spiking "
                           "layer)", f"a list of {len(surrogate)}", "Network")
            surrogates = [_surrogate.get(s, owner="Network") for s in surrogate]
        else:
            surrogates = [_surrogate.get(surrogate, owner="Network")] * len(spiking)
        self._per_layer_surrogates = None
        if any(s != surrogates[0] for s in surrogates):
            by_layer = dict(zip(spiking, surrogates))
            self._per_layer_surrogates = [by_layer.get(i) for i in range(len(self.layers))]
        return surrogates

    @property
    def _engine_surrogate(self):
        """What the engines get: ``self.surrogate`` (read at call time, so assigning it
        still works), or the per-layer list when the layers' surrogates differ."""
        return self.surrogate if self._per_layer_surrogates is None else self._per_layer_surrogates

    def neuron_in_use(self, i: int) -> LIF:
        """The LIF of spiking layer ``i`` as a forward pass uses it: its trained decay,
        tied gain and synapse taken from ``params`` (clamped or through the sigmoid).
        (Public for ``stlsim.nir``.)"""
        if i not in self._spiking_index:
            raise fail("i", f"the index of a spiking layer ({self.spiking_layers})", repr(i),
                       "Network.neuron_in_use")
        return _effective_neuron(self._neuron_of_layer(i), self.params, i)

    # ------------------------------------------------------------------ description --
    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        neuron = self._engine_neuron if isinstance(self._engine_neuron, LIF) else self.neurons
        return (f"Network([{inner}], neuron={neuron!r}, surrogate={self.surrogate!r}, "
                f"population={self.population}, dtype={self.dtype.name})")

    @property
    def input_shape(self) -> tuple:
        return tuple(self.layers[0].in_shape)

    @property
    def spiking_layers(self) -> list:
        """Positions of the layers that have neurons."""
        return [i for i, layer in enumerate(self.layers) if layer.has_neurons]

    def param_groups(self) -> dict:
        """The names of the parameters by kind, for the learning modes.

        Returns
        -------
        dict of str to list of str
            ``{"synaptic": [...], "threshold": [...], "decay": [...]}``; "threshold"
            holds the thresholds and a trained adaptation (``Adaptation(learn_beta=...,
            learn_rho=...)``, docs/model.md Section 10), "decay" the trained decays and
            synapses (``LIF(learn_tau=...)``); recurrent weights are synaptic.
        """
        groups = {"synaptic": [], "threshold": [], "decay": []}
        for key in self.params:
            if key.endswith(".theta") or key.split(".", 1)[1] in ADAPTATION_PARAMS:
                groups["threshold"].append(key)
            elif key.split(".", 1)[1] in NEURON_PARAMS:
                groups["decay"].append(key)
            else:
                groups["synaptic"].append(key)
        return groups

    def _param_shapes(self) -> dict:
        """Every parameter's key and shape: the layers' and the trained neuron values."""
        shapes = {}
        for i, layer in enumerate(self.layers):
            for name, shape in layer.param_shapes().items():
                shapes[f"{i}.{name}"] = tuple(shape)
            if layer.has_neurons:
                for name, value in _neuron_init(self._neuron_of_layer(i), layer).items():
                    shapes[f"{i}.{name}"] = value.shape
        return shapes

    def _call_neuron(self):
        """What the engines get on this call: ``_engine_neuron``, with trained decays and
        synapses taken from ``params`` (clamped or through the sigmoid, as the peers do)."""
        if not any(n.learns or n.tie_gain for n in self.neurons):
            return self._engine_neuron
        per_layer = [None] * len(self.layers)
        for i in self.spiking_layers:
            per_layer[i] = _effective_neuron(self._neuron_of_layer(i), self.params._data, i)
        return per_layer

    def _layer_params(self, params=None) -> list:
        params = self.params._data if params is None else params
        per_layer = [{} for _ in self.layers]
        for key, value in params.items():
            index, name = key.split(".", 1)
            per_layer[int(index)][name] = value
        for key, value in self.buffers.items():      # layers read buffers next to params
            index, name = key.split(".", 1)
            per_layer[int(index)][name] = value
        return per_layer

    # ------------------------------------------------------------------- validation --
    def _check_params(self):
        """Every parameter: known key, ndarray of the right shape and dtype (O(1) each),
        and finite. The finiteness scan is skipped for an entry that provably did not
        change since it last passed (``stlsim._params``: clean and private)."""
        params = self.params
        data = params._data
        expected = self._expected_shapes
        if data.keys() != expected.keys():
            unknown = sorted(set(data) - set(expected))
            if unknown:
                raise fail(f"params[{unknown[0]!r}]", f"one of the network's parameters ({', '.join(sorted(expected))})",
                           "an unknown key", "Network")
        for key, shape in expected.items():
            value = data.get(key)
            if value is None:
                raise fail(f"params[{key!r}]", f"an array of shape {tuple(shape)}", "no entry", "Network")
            if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != self.dtype:
                got = (f"shape {value.shape}, dtype {value.dtype}" if isinstance(value, np.ndarray)
                       else type(value).__name__)
                raise fail(f"params[{key!r}]",
                           f"a {self.dtype.name} array of shape {tuple(shape)}", got, "Network", TypeError)
            del value                                  # (a reference here is not private)
            legacy = _LEGACY_CALL_PATH                 # scans, and leaves the state alone
            if legacy or params._needs_check(key):
                value = data[key]
                if not np.all(np.isfinite(value)):
                    raise fail(f"params[{key!r}]", "finite (no NaN or infinity)",
                               f"{int(value.size - np.count_nonzero(np.isfinite(value)))} non-finite values",
                               "Network")
                del value
                if not legacy:
                    params._checked(key)

        for key, value in self.buffers.items():
            shape = self._buffer_shapes[key]
            if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != self.dtype:
                got = (f"shape {value.shape}, dtype {value.dtype}" if isinstance(value, np.ndarray)
                       else type(value).__name__)
                raise fail(f"buffers[{key!r}]", f"a {self.dtype.name} array of shape {shape}", got,
                           "Network", TypeError)

    def _check_input(self, x, dense=True, scan=False):
        """``x`` as a checked dense array of the network's dtype; a ``SpikeEvents`` is
        kept as it is (in that dtype) when ``dense`` is False (the event engine).
        ``scan``: a dense ``x`` is returned as its nonzeros (``SpikeEvents``), for an
        event engine that would scan it anyway; only those values need the finiteness
        test (a NaN or an infinity is nonzero), O(events) instead of O(T B N)."""
        if isinstance(x, SpikeEvents):
            if x.input_shape != self.input_shape:
                raise fail("x", f"SpikeEvents with input_shape {self.input_shape}",
                           f"input_shape {x.input_shape}", "Network")
            x = x.astype(self.dtype)
            return x.to_dense() if dense else x
        shape = (None, None) + self.input_shape
        x = check_array(x, "x", shape=shape, dtype=self.dtype, finite=not scan, owner="Network")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise fail("x", "an array with at least one time step and one sample",
                       f"shape {x.shape}", "Network")
        if scan:
            return _finite_events(get_engine("event").events_of_dense(x))
        return x

    def _resolve(self, backend, engine):
        backend = self.backend if backend is None else backend
        engine = self.engine if engine is None else engine
        return (resolve_backend(backend, "Network"),
                check_choice(engine, "engine", tuple(ENGINES), "Network"))

    # ---------------------------------------------------------------------- compute --
    def _transposed_weights(self) -> dict:
        """{layer position: W.T} for the event engine: a copy of each Dense weight that
        did not change since the previous event-engine call (same version, see
        ``stlsim._params``), made on the second such call and reused while the version
        holds. Inference loops then push contiguous rows of W.T, as inside
        ``engines.event.static_weights()``; a weight that changes at every call (training)
        is never copied. Costs one weight-sized array per such layer."""
        versions = self.params._version
        out = {}
        for i, layer in enumerate(self.layers):
            if type(layer) is not Dense:
                continue
            key = f"{i}.weight"
            version = versions[key]
            hit = self._weight_t.get(key)
            if hit is not None and hit[0] == version:
                out[i] = hit[1]
            elif self._weight_seen.get(key) == version:
                out[i] = np.ascontiguousarray(self.params._data[key].T)
                self._weight_t[key] = (version, out[i])
            else:
                self._weight_t.pop(key, None)
            self._weight_seen[key] = version
        return out

    def _forward(self, x, *, smooth, backend, engine, training, reset_spikes=None, plan=False):
        check_bool(smooth, "smooth", "Network")
        check_bool(training, "training", "Network")
        backend, engine = self._resolve(backend, engine)
        if isinstance(self._engine_surrogate, list) and engine != "clock":
            raise fail("engine", "'clock' for a network with one surrogate per layer",
                       repr(engine), "Network")
        self._check_params()
        # The event engine scans a dense input for its nonzeros when its first layer is
        # event-driven and it does not fall back to the clock engine; done here instead,
        # so that only the nonzeros need the finiteness test.
        scan = (engine == "event" and not _LEGACY_CALL_PATH and not smooth and reset_spikes is None
                and type(self.layers[0]) is Dense and kernel_surrogate(self.surrogate) is not None)
        x = self._check_input(x, dense=engine != "event", scan=scan)
        ctx = Context(training=training, rng=self.rng, backend=backend)
        engine_module = get_engine(engine, "Network")
        extra = {}
        if engine == "event" and not _LEGACY_CALL_PATH and engine_module.KEEP_TRANSPOSED:
            extra["weight_t"] = self._transposed_weights()
            versions = dict(self.params._version) if plan else None
        output, tape = engine_module.run_forward(
            self.layers, self._layer_params(), x, self._call_neuron(), self._engine_surrogate, ctx,
            get_backend(backend, "Network"), smooth=smooth, reset_spikes=reset_spikes, **extra)
        if plan and "weight_t" in extra and isinstance(tape, EventTape):
            self._keep_plan(engine_module, extra["weight_t"], versions, backend)
        rates = population_rates(output.reshape(output.shape[0], output.shape[1], -1), self.population)
        return x, output, tape, rates, backend, engine

    def forward(self, x, *, smooth: bool = False, backend: str | None = None,
                engine: str | None = None, training: bool = False,
                record: str = "all") -> Record:
        """Simulate the network on time-major input ``x``.

        Parameters
        ----------
        x : numpy.ndarray or SpikeEvents
            Shape (T, B, *input_shape): binary spikes or analog values (direct input to
            the first layer), or a ``stlsim.SpikeEvents`` (every method taking ``x``
            accepts one; the event engine uses the events as they are, the clock engine
            their dense array).
        smooth : bool, default False
            Smooth mode: the forward uses the surrogate's primitive in place of the step,
            so that the BPTT gradient is the exact gradient of a smooth model.
        backend : str, optional
            This call's backend; None is the network's.
        engine : str, optional
            This call's engine ("clock", "event"); None is the network's.
        training : bool, default False
            Dropout and batch statistics on, where layers have them (BatchNorm running
            estimates are updated).
        record : {"all", "spikes"}, default "all"
            "all": dense currents, membranes and spikes of every spiking layer;
            "spikes": each layer's output spikes as ``SpikeEvents`` (the event engine
            then builds no dense array but the output layer's, which the rates need).

        Returns
        -------
        Record
            ``spikes[l]``, ``membrane[l]``, ``currents[l]`` per spiking layer and the
            (B, C) output ``rates``.
        """
        check_choice(record, "record", ("all", "spikes"), "Network")
        if record == "spikes":
            planned = self._spikes_by_plan(x, smooth, backend, engine, training)
            if planned is not None:
                return planned
        _, _, tape, rates, backend, engine = self._forward(
            x, smooth=smooth, backend=backend, engine=engine, training=training,
            plan=record == "spikes")
        index = self.spiking_layers
        if record == "spikes":
            return Record(spikes=spike_events_of(tape, index), membrane=None, currents=None,
                          rates=rates, layer_index=index, engine=engine, backend=backend)
        if isinstance(tape, EventTape) and not _LEGACY_CALL_PATH:
            return self._lazy_record(tape, isinstance(x, SpikeEvents), index, rates, engine,
                                     backend)
        return Record(spikes=[tape.spikes[i] for i in index],
                      membrane=[tape.membrane[i] for i in index],
                      currents=[tape.currents[i] for i in index],
                      rates=rates, layer_index=index, engine=engine, backend=backend)

    # -- forward(x, engine="event", record="spikes") through a kept plan --
    def _plan_state(self) -> tuple:
        """What a kept ``SpikesPlan`` was built from besides the parameter values: the
        settings the general path reads, compared at every call (identities and small
        values, O(layers)). The mappings by ``id``: their ``==`` compares arrays (a new
        ``ParamDict`` at a reused address has new versions: ``ParamDict._unchanged``)."""
        return (id(self._params), id(self.buffers), len(self.buffers), self.dtype, self.population,
                self.backend, self._engine_neuron, self.surrogate, self._per_layer_surrogates,
                self._expected_shapes, tuple(self.neurons), self.layers, tuple(self.layers),
                tuple((layer.bias, getattr(layer, "threshold_sharing", None),
                       getattr(layer, "recurrent", None)) for layer in self.layers))

    def _keep_plan(self, engine_module, weight_t, versions, backend):
        """After a general event forward with ``record="spikes"``: keep a plan for the
        next such call (``engines.event.plan_spikes``; None where it does not apply)."""
        plan = None
        if (not self.buffers and self._per_layer_surrogates is None
                and self._call_neuron() is self._engine_neuron):
            plan = engine_module.plan_spikes(self.layers, self._layer_params(), self._engine_neuron,
                                             self.surrogate, self.dtype, weight_t, self.input_shape)
        self._plan = None if plan is None else (self._plan_state(), versions, plan, backend)

    def _spikes_by_plan(self, x, smooth, backend, engine, training) -> Record | None:
        """``forward(x, engine="event", record="spikes")`` through the kept plan, or None
        (then the general path runs, checks everything and keeps a new plan). The plan
        serves only while nothing it was built from can have changed: the same settings
        (``_plan_state``), every parameter at the version it was checked at, clean and
        private (``ParamDict._unchanged``, O(1) per entry), and ``x`` a plain array or
        ``SpikeEvents`` of the network's dtype and input shape; a dense ``x`` gets the
        general path's checks (its nonzeros finite)."""
        kept = getattr(self, "_plan", None)
        if (kept is None or smooth is not False or training is not False or backend is not None
                or (self.engine if engine is None else engine) != "event" or _LEGACY_CALL_PATH):
            return None
        state, versions, plan, backend = kept
        if state != self._plan_state() or not self.params._unchanged(versions):
            return None
        if type(x) is np.ndarray:
            if (x.dtype != plan.dtype or x.shape[2:] != plan.input_shape or x.ndim < 3
                    or x.shape[0] < 1 or x.shape[1] < 1):
                return None
        elif type(x) is not SpikeEvents or x.dtype != plan.dtype or x.input_shape != plan.input_shape:
            return None
        spikes = plan.run(self.params._data, x, _finite_events)
        if spikes is None:
            return None
        rates = plan.rates(spikes[-1], self.population)
        if rates is None:
            output = plan.dense(spikes[-1])
            rates = population_rates(output.reshape(output.shape[0], output.shape[1], -1),
                                     self.population)
        index = self.spiking_layers
        return Record(spikes=[spikes[i] for i in index], membrane=None, currents=None,
                      rates=rates, layer_index=index, engine="event", backend=backend)

    def _lazy_record(self, tape, user_events, index, rates, engine, backend) -> Record:
        """The event engine's Record, dense lists deferred until read. Deferred only when
        every parameter the re-runs read is private to ``params`` once the tape lets go
        of it (then nothing can change it without going through ``params``, which builds
        the Record first); otherwise built now. The user's input events are copied
        (O(events)): the re-run must see them as they were."""
        detach_parameters(tape)
        first = tape.layers[0] if tape.layers else None
        if user_events and isinstance(first, EventLayerTape):
            first.inputs = first.inputs._copy()
        params = self.params
        if all(params._private(key) for key in tape.parameter_keys):
            return Record._deferred(tape, index, params, rates, engine, backend)
        record = Record(None, None, None, rates, index, engine, backend)
        record._lazy = (tape, params)
        record._build()
        return record

    def predict(self, x, **kwargs) -> np.ndarray:
        """Class decisions argmax_c r_{b,c} for input ``x``.

        Parameters
        ----------
        x : numpy.ndarray or SpikeEvents
            Shape (T, B, *input_shape), as for ``forward``.
        **kwargs
            Keywords of ``forward``.

        Returns
        -------
        numpy.ndarray
            (B,) class indices.
        """
        return self.forward(x, **kwargs).prediction

    def loss(self, x, y, *, loss: str = "mse_rate", smooth: bool = False, backend=None, engine=None,
             training: bool = False, reset_spikes=None) -> float:
        """The loss alone (no backward pass).

        Parameters
        ----------
        x : numpy.ndarray or SpikeEvents
            Shape (T, B, *input_shape), as for ``forward``.
        y : array_like of int
            (B,) class labels in 0..C-1.
        loss : {"mse_rate", "ce_rate"}, default "mse_rate"
            Mean squared error of the output rates against one-hot targets, or cross
            entropy of the rates.
        smooth, training : bool, default False
            As for ``forward``.
        backend, engine : str, optional
            As for ``forward``.
        reset_spikes : numpy.ndarray, optional
            Values that replace the spikes inside the reset (L4) while (L3) still
            computes the output; only for the finite differences that check
            ``detach_reset=True`` gradients (``stlsim.grad.check``).

        Returns
        -------
        float
        """
        check_choice(loss, "loss", LOSSES, "Network")
        x, _, _, rates, _, _ = self._forward(x, smooth=smooth, backend=backend, engine=engine,
                                             training=training, reset_spikes=reset_spikes)
        y = check_labels(y, "y", x.shape[1], self.n_classes, "Network")
        return loss_from_rates(rates, y, loss)[0]

    def loss_and_grad(self, x, y, *, loss: str = "mse_rate", smooth: bool = False,
                      backend: str | None = None, engine: str | None = None,
                      training: bool = False, return_record: bool = False,
                      return_rates: bool = False):
        """Loss and its gradient w.r.t. every parameter, by BPTT (B1)-(B6).

        Gradients are returned for every parameter; a learning mode decides what an
        optimizer updates.

        Parameters
        ----------
        x : numpy.ndarray or SpikeEvents
            Shape (T, B, *input_shape), as for ``forward``.
        y : array_like of int
            (B,) class labels in 0..C-1.
        loss : {"mse_rate", "ce_rate"}, default "mse_rate"
            As for ``loss``.
        smooth : bool, default False
            As for ``forward``: the exact gradient of the smooth model (what finite
            differences check).
        backend, engine : str, optional
            As for ``forward``.
        training : bool, default False
            Dropout and batch statistics on, where layers have them.
        return_record : bool, default False
            Also return the forward pass's ``Record``.
        return_rates : bool, default False
            Also return the (B, C) output rates (cheap on every path).

        Returns
        -------
        loss : float
        grads : dict of str to numpy.ndarray
            Keyed like ``net.params``, each of its parameter's shape.
        record : Record
            Only with ``return_record=True``.
        rates : numpy.ndarray
            Only with ``return_rates=True``.
        """
        check_choice(loss, "loss", LOSSES, "Network")
        for flag, value in (("smooth", smooth), ("training", training), ("return_record", return_record),
                            ("return_rates", return_rates)):
            check_bool(value, flag, "Network")
        if not return_record:
            fused = self._fused_loss_and_grad(x, y, loss, smooth, backend, engine, return_rates)
            if fused is not None:
                return fused
        x, output, tape, rates, backend, engine = self._forward(
            x, smooth=smooth, backend=backend, engine=engine, training=training)
        y = check_labels(y, "y", x.shape[1], self.n_classes, "Network")
        value, grad_rates = loss_from_rates(rates, y, loss)
        grad_output = rates_backward(grad_rates, x.shape[0], self.population).reshape(output.shape)
        per_layer = get_engine(engine, "Network").run_backward(
            self.layers, self._layer_params(), tape, grad_output, self._call_neuron(),
            self._engine_surrogate, get_backend(backend, "Network"))
        grads = self._flatten(per_layer)
        if return_record:
            index = self.spiking_layers
            record = Record(spikes=[tape.spikes[i] for i in index],
                            membrane=[tape.membrane[i] for i in index],
                            currents=[tape.currents[i] for i in index], rates=rates,
                            layer_index=index, engine=engine, backend=backend)
            return value, grads, record
        if return_rates:
            return value, grads, rates
        return value, grads

    def _fused_loss_and_grad(self, x, y, loss, smooth, backend, engine, return_rates=False):
        """The backend's whole-step fast path (``Backend.fused``), if it has one and
        takes this network; None otherwise. Same results as the layer-by-layer path."""
        backend, engine = self._resolve(backend, engine)
        fused = get_backend(backend, "Network").fused
        if fused is None or engine != "clock":
            return None
        self._check_params()
        x = self._check_input(x)
        y = check_labels(y, "y", x.shape[1], self.n_classes, "Network")
        result = fused(self.layers, self._layer_params(), x, y, self._call_neuron(), self._engine_surrogate,
                       self.population, loss, smooth)
        if result is None:
            return None
        grads = self._flatten(result.grads)
        return (result.loss, grads, result.rates) if return_rates else (result.loss, grads)

    def _flatten(self, per_layer) -> dict:
        for i in self.spiking_layers:                  # trained neuron values (B7)-(B9)
            if per_layer[i] is not None and any(k.startswith("neuron:") for k in per_layer[i]):
                per_layer[i].update(_neuron_param_grads(self._neuron_of_layer(i), self.params._data, i,
                                                        per_layer[i]))
        grads = {}
        for key in self.params._data:
            shape = self._expected_shapes[key]
            index, name = key.split(".", 1)
            grads[key] = np.asarray(per_layer[int(index)][name], dtype=self.dtype).reshape(shape)
            if not np.all(np.isfinite(grads[key])):
                n_bad = int(grads[key].size - np.count_nonzero(np.isfinite(grads[key])))
                raise FloatingPointError(f"The gradient of `params[{key!r}]` of `Network` has {n_bad} non-finite "
                                         "values (overflow in the forward or backward pass); it is not returned.")
        return grads

    def probe_grad(self, x, probe, *, smooth: bool = False, backend: str | None = None,
                   engine: str | None = None, training: bool = False):
        """The gradient of a linear probe of the output spikes, L = sum(probe * s^L).

        This is how another framework's gradients are compared with stlsim's, with no
        readout in between (``stlsim.interop``).

        Parameters
        ----------
        x : numpy.ndarray or SpikeEvents
            Shape (T, B, *input_shape), as for ``forward``.
        probe : numpy.ndarray
            The shape of the output spikes, (T, B, *output_shape).
        smooth, training : bool, default False
            As for ``forward``.
        backend, engine : str, optional
            As for ``forward``.

        Returns
        -------
        loss : float
            sum(probe * s^L).
        grads : dict of str to numpy.ndarray
            Keyed like ``net.params``.
        record : Record
            The forward pass.
        """
        x, output, tape, rates, backend, engine = self._forward(
            x, smooth=smooth, backend=backend, engine=engine, training=training)
        probe = check_array(probe, "probe", shape=output.shape, dtype=self.dtype, owner="Network")
        value = float(np.sum(probe * output))
        per_layer = get_engine(engine, "Network").run_backward(
            self.layers, self._layer_params(), tape, probe, self._call_neuron(), self._engine_surrogate,
            get_backend(backend, "Network"))
        index = self.spiking_layers
        record = Record(spikes=[tape.spikes[i] for i in index],
                        membrane=[tape.membrane[i] for i in index],
                        currents=[tape.currents[i] for i in index], rates=rates,
                        layer_index=index, engine=engine, backend=backend)
        return value, self._flatten(per_layer), record

    def reference_trace(self, x, output_grad, *, training: bool = False):
        """The NumPy reference's forward and backward with every step's adjoints, for a given dL/ds^L.

        What a gradient oracle compares against another framework (``stlsim.interop``): the
        clock engine and the NumPy backend, float as the network's dtype.

        Parameters
        ----------
        x : numpy.ndarray or SpikeEvents
            Shape (T, B, *input_shape), as for ``forward``.
        output_grad : callable
            ``output_grad(output)`` -> dL/d(output spikes), same shape; ``output`` is float64.
        training : bool, default False
            As for ``forward``.

        Returns
        -------
        types.SimpleNamespace
            ``output``; per spiking layer ``spikes``, ``membrane``, ``thetas`` (per neuron;
            (T, B, ...) per step for an adaptive layer, docs/model.md (L3v)) and
            ``traces`` (dicts of the backward quantities per step, e.g. ``"g"`` = dL/ds_t,
            ``"delta"`` = dL/dm_t; ``docs/model.md``); ``grads`` keyed like ``net.params``.
        """
        import types

        x, output, tape, _, _, _ = self._forward(x, smooth=False, backend="numpy", engine="clock",
                                                 training=training)
        grad_output = np.asarray(output_grad(output.astype(np.float64))).astype(self.dtype)
        traces = [None] * len(self.layers)
        per_layer = bptt.run_backward(self.layers, self._layer_params(), tape, grad_output, self._call_neuron(),
                                      self._engine_surrogate, get_backend("numpy", "Network"), traces=traces)
        index = self.spiking_layers
        thetas = [self._thresholds_in_use(tape, i) for i in index]
        return types.SimpleNamespace(output=output, spikes=[tape.spikes[i] for i in index],
                                     membrane=[tape.membrane[i] for i in index],
                                     thetas=thetas, traces=[traces[i] for i in index],
                                     grads=self._flatten(per_layer))

    def _thresholds_in_use(self, tape, i):
        """Layer ``i``'s thresholds as its neurons compared them: ``tape.thetas[i]``, or for
        an adaptive layer theta + beta a_t of every step (T, B, ...), docs/model.md (L3v)."""
        beta, rho = adaptation_arrays(neuron_of(self._call_neuron(), i), tape.thetas[i])
        if beta is None:
            return tape.thetas[i]
        return tape.thetas[i] + beta * adaptation_states(tape.spikes[i], rho)

    def step_through(self, x, y, *, loss: str = "mse_rate", smooth: bool = False) -> StepTrace:
        """Forward and backward with every intermediate quantity kept (NumPy reference).

        For teaching: ``trace.forward[l]["m"][t, b, i]`` is the membrane of neuron i of
        the l-th spiking layer at step t; ``trace.backward[l]["delta"][t, b, i]`` its
        dL/dm_t (the notation of ``docs/model.md``). An adaptive layer's
        ``trace.forward[l]["theta"]`` holds its threshold of every step, theta + beta a_t (L3v).

        Parameters
        ----------
        x : numpy.ndarray or SpikeEvents
            Shape (T, B, *input_shape), as for ``forward``.
        y : array_like of int
            (B,) class labels in 0..C-1.
        loss : {"mse_rate", "ce_rate"}, default "mse_rate"
            As for ``loss``.
        smooth : bool, default False
            As for ``forward``.

        Returns
        -------
        StepTrace
        """
        check_choice(loss, "loss", LOSSES, "Network")
        x, output, tape, rates, _, _ = self._forward(x, smooth=smooth, backend="numpy",
                                                     engine="clock", training=False)
        y = check_labels(y, "y", x.shape[1], self.n_classes, "Network")
        value, grad_rates = loss_from_rates(rates, y, loss)
        grad_output = rates_backward(grad_rates, x.shape[0], self.population).reshape(output.shape)
        traces = [None] * len(self.layers)
        per_layer = bptt.run_backward(self.layers, self._layer_params(), tape, grad_output,
                                      self._call_neuron(), self._engine_surrogate, get_backend("numpy"),
                                      traces=traces)
        index = self.spiking_layers
        forward, backward, thetas = [], [], []
        for i in index:
            m, s, theta = tape.membrane[i], tape.spikes[i], tape.thetas[i]
            theta_t = self._thresholds_in_use(tape, i)
            layer_neuron = self._neuron_of_layer(i)
            carry = (reset_carries(m, s, theta_t, layer_neuron)                # (L2i) q_t
                     if layer_neuron.reset in NO_DELAY_RESETS else None)
            v = after_reset(m, s, theta_t, layer_neuron, carry)                # (L4), (L4i)
            forward.append({"I": tape.currents[i], "m": m, "s": s, "v": v})
            if theta_t is not theta:
                forward[-1]["theta"] = theta_t                                 # (L3v) per step
            backward.append(traces[i])
            thetas.append(np.array(theta))
        return StepTrace(forward=forward, backward=backward, theta=thetas, layer_index=index,
                         rates=rates, loss=value, grads=self._flatten(per_layer))


# ------------------------------------------------------------- trained neuron values --
NEURON_PARAMS = ("tau", "tau_w", "alpha_syn")
ADAPTATION_PARAMS = ("adapt_beta", "adapt_rho")       # threshold parameters (Section 10)


def _shaped(neuron: LIF, shape, dtype) -> LIF:
    """``neuron`` with its per-neuron v_leak, v_reset, v_init, alpha_syn shaped like the
    layer's neurons, so that they broadcast over the batch axis ((L1s), (L2g), (L4h)), in
    the network's dtype (as a float is: float32 arithmetic stays float32)."""
    shape, dtype = tuple(shape), np.dtype(dtype)
    values = {}
    for name in neuron.per_neuron_values:
        value = getattr(neuron, name)
        if value.shape != shape or value.dtype != dtype:
            value = value.reshape(shape).astype(dtype)
            value.flags.writeable = False
            values[name] = value
    return replace_unchecked(neuron, **values) if values else neuron


def _neuron_init(neuron: LIF, layer) -> dict:
    """Initial values of the trained neuron parameters of one layer (float64): per-neuron
    adaptation values are shaped like the layer's neurons (``out_shape``)."""
    out = {}
    if neuron.adaptive:
        for name, value, learn in (("adapt_beta", neuron.adaptation.beta, neuron.adaptation.learn_beta),
                                   ("adapt_rho", neuron.adaptation.rho, neuron.adaptation.learn_rho)):
            if learn:
                value = np.asarray(value, dtype=np.float64)
                out[name] = (value.reshape(layer.out_shape).copy() if value.size > 1
                             else np.full(layer.out_shape, float(value.reshape(-1)[0])))
    tau = np.atleast_1d(np.asarray(neuron.tau, dtype=np.float64))
    if neuron.learn_tau == "factor":
        out["tau"] = tau.copy()
    elif neuron.learn_tau == "sigmoid":
        out["tau_w"] = np.log((1.0 - tau) / tau)          # tau = 1 - sigmoid(w)
    if neuron.learn_alpha_syn:
        alpha = np.asarray(neuron.alpha_syn, dtype=np.float64)   # one, or one per neuron
        out["alpha_syn"] = alpha.reshape(-1).copy() if alpha.ndim else np.array([alpha])
    return out


def _sigmoid(w):
    return 1.0 / (1.0 + np.exp(-w))


def _effective_neuron(neuron: LIF, params, i) -> LIF:
    """The neuron of layer ``i`` with this call's trained values."""
    values = {}
    tau = None
    if neuron.learn_tau == "factor":
        tau = np.clip(params[f"{i}.tau"].astype(np.float64), 0.0, 1.0)    # snnTorch: clamp(0, 1)
    elif neuron.learn_tau == "sigmoid":
        tau = 1.0 - _sigmoid(params[f"{i}.tau_w"].astype(np.float64))      # SpikingJelly PLIF
    if tau is not None:
        values["tau"] = float(tau[0]) if tau.size == 1 and not neuron.per_neuron_tau else tau
    if neuron.tie_gain:
        t = values.get("tau", neuron.tau)
        values["input_gain"] = 1.0 - (float(t) if np.ndim(t) == 0 else np.asarray(t))
    if neuron.learn_alpha_syn:
        raw = params[f"{i}.alpha_syn"]
        alpha = np.clip(raw.astype(np.float64), 0.0, 1.0)          # snnTorch: clamp(0, 1)
        values["alpha_syn"] = (alpha.reshape(np.shape(neuron.alpha_syn)).astype(raw.dtype)
                               if np.ndim(neuron.alpha_syn) else float(alpha[0]))
    if neuron.adaptive and neuron.adaptation.learns:                 # (L3v), (L5a) trained
        adaptation = neuron.adaptation
        changes = {}
        if adaptation.learn_beta:
            changes["beta"] = params[f"{i}.adapt_beta"].astype(np.float64)
        if adaptation.learn_rho:
            changes["rho"] = np.clip(params[f"{i}.adapt_rho"].astype(np.float64), 0.0, 1.0)
        values["adaptation"] = replace_unchecked(adaptation, **changes)
    return replace_unchecked(neuron, **values) if values else neuron


def _neuron_param_grads(neuron: LIF, params, i, local) -> dict:
    """dL/d(trained parameter) from the backward's dL/dtau, dL/dr and dL/dalpha_syn,
    through the clamp or the sigmoid (chain rule of (B7)-(B9))."""
    out = {}
    grad_tau = local.pop("neuron:tau", None)
    grad_gain = local.pop("neuron:gain", None)
    grad_alpha = local.pop("neuron:alpha", None)
    if grad_tau is not None:
        if grad_gain is not None:
            grad_tau = grad_tau - grad_gain                                 # r = 1 - tau
        per_neuron = neuron.per_neuron_tau
        if neuron.learn_tau == "factor":
            raw = params[f"{i}.tau"]
            grad = grad_tau.reshape(-1) if per_neuron else np.array([grad_tau.sum()])
            out["tau"] = grad * ((raw >= 0) & (raw <= 1))                   # clamp's gradient
        else:
            w = params[f"{i}.tau_w"].astype(np.float64)
            q = _sigmoid(w)
            grad = grad_tau.reshape(-1) if per_neuron else np.array([grad_tau.sum()])
            out["tau_w"] = -q * (1.0 - q) * grad                            # tau = 1 - sigmoid(w)
    if grad_alpha is not None:
        raw = params[f"{i}.alpha_syn"]
        grad = (grad_alpha.reshape(-1) if np.ndim(neuron.alpha_syn)      # (B9n) per neuron:
                else np.array([grad_alpha.sum()]))                          # not summed over them
        out["alpha_syn"] = grad * ((raw >= 0) & (raw <= 1))
    grad_beta = local.pop("neuron:beta", None)
    if grad_beta is not None:
        out["adapt_beta"] = grad_beta                                       # (B12)
    grad_rho = local.pop("neuron:rho", None)
    if grad_rho is not None:
        raw = params[f"{i}.adapt_rho"]
        out["adapt_rho"] = grad_rho * ((raw >= 0) & (raw <= 1))             # (B12), the clamp
    return out
