"""Read and write NIR graphs (the Neuromorphic Intermediate Representation).

NIR is the interchange format snnTorch, Norse, SpikingJelly, Lava, Rockpool and sinabs
share: an HDF5 file holding a graph of nodes (``Affine``, ``Conv2d``, ``LIF``, ...).
Its neurons are continuous-time ODEs; stlsim's are the discrete steps of
``docs/model.md`` (L2g), (L1s), (L3'), (L4h). One forward-Euler step of length ``dt``
maps one onto the other::

    NIR LIF     tau dv/dt = (v_leak - v) + r I,   spike when v > v_threshold, v -> v_reset
    Euler       v_t = v_{t-1} + dt/tau (v_leak - v_{t-1} + r I_t)
    stlsim      m_t = a v_{t-1} + (1 - a) v_leak + g I_t                        (L2g)
                a = 1 - dt/tau  (decay factor),   g = r dt/tau  (input gain)
    NIR IF      dv/dt = r I                        a = 1,  g = r dt
    NIR CubaLIF tau_syn dJ/dt = -J + w_in I       J_t = c J_{t-1} + I_t           (L1s)
                                                   c = 1 - dt/tau_syn,  g = (r dt/tau_mem)(w_in dt/tau_syn)

NIR's spike is strictly above threshold (H(0) = 0, (L3')) with a hard reset to
v_reset (L4h); the graph says nothing about the initial state (stlsim starts at
v_leak, as Norse does), the surrogate or detach_reset. What stlsim needs beyond
that (soft or after-leak resets, detach_reset, H(0) = 1, v_init, the surrogate,
shared thresholds, trained decays, the population readout, dt itself) is stored in
each node's ``metadata["stlsim"]`` (a JSON text) and restored by ``read``; other
readers ignore it. ``read(path, dt, **conventions)`` takes those settings from the
caller for a file another framework wrote. The how-to: ``docs/howto_nir.md``.

    stlsim.nir.write(net, "model.nir", dt=1e-4)
    net2 = stlsim.nir.read("model.nir")                  # dt and conventions from the file
    net3 = stlsim.nir.read("snntorch.nir", dt=1e-4, preset="snntorch.Leaky.zero")

The ``nir`` package is an optional extra (``pip install "stlsim[nir]"``), imported
only when a function here is called.
"""
from __future__ import annotations

import itertools
import json
import os
import warnings

import numpy as np

from ._checks import check_bool, check_dtype, check_real, fail, seed_streams
from .layers import AvgPool2d, Conv2d, Dense, Dropout, Flatten, MaxPool2d
from .neurons import LIF, tau_like

__all__ = [
    "CONVENTIONS",
    "PEERS",
    "SCHEMA",
    "CheckReport",
    "check",
    "from_nir",
    "read",
    "to_nir",
    "write",
]

#: Version of the ``metadata["stlsim"]`` records this module writes.
SCHEMA = 1

#: The LIF settings a NIR graph cannot carry, which ``read(**conventions)`` accepts.
CONVENTIONS = ("reset", "detach_reset", "spike_at_threshold", "v_init", "learn_tau",
               "learn_alpha_syn")

# LIF fields whose values NIR's parameters carry (checked against them on reading).
_NUMERIC = ("tau", "input_gain", "v_leak", "v_reset", "alpha_syn")


def _nir():
    try:
        import nir
    except ImportError:
        raise ImportError("stlsim.nir needs the `nir` package, an optional extra: "
                          "pip install \"stlsim[nir]\" (or pip install nir).") from None
    return nir


def _dt(dt, owner):
    return check_real(dt, "dt", low=0.0, low_open=True, owner=owner)


def _meta(record: dict) -> dict:
    return {"stlsim": json.dumps(record, sort_keys=True)}


def _record_of(node) -> dict | None:
    """The stlsim record in a node's metadata, or None (a file from another writer)."""
    meta = getattr(node, "metadata", None)
    text = meta.get("stlsim") if isinstance(meta, dict) else None
    if isinstance(text, bytes):
        text = text.decode("utf8")
    if not isinstance(text, str):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


# ==================================================================== writing ====

def _effective(net, i):
    """The neuron of layer ``i`` with this network's trained decay values."""
    return net.neuron_in_use(i)


def _neuron_node(nir, net, i, layer, dt, owner):
    """The NIR neuron node of spiking layer ``i`` and its stlsim record."""
    from .network import NEURON_PARAMS
    neuron = net.neurons[net.spiking_layers.index(i)]
    eff = _effective(net, i)
    shape = tuple(layer.out_shape)
    theta = np.array(layer.expand_theta(net.params[f"{i}.theta"]), dtype=net.dtype)
    tau = np.broadcast_to(np.asarray(tau_like(eff, theta), dtype=np.float64), shape)
    gain = np.broadcast_to(np.asarray(eff.input_gain, dtype=np.float64), shape)

    def full(value):
        return np.full(shape, value, dtype=np.float64)

    record = {"settings": neuron.settings(), "threshold_sharing": layer.threshold_sharing,
              "trained": {key: net.params[f"{i}.{key}"].tolist() for key in NEURON_PARAMS
                          if f"{i}.{key}" in net.params}}
    if not eff.has_synapse and np.all(tau == 1.0):
        return nir.IF(r=full(gain / dt), v_threshold=theta, v_reset=full(eff.v_reset),
                      metadata=_meta(record)), record
    if np.any(tau >= 1.0):
        raise fail(f"layers[{i}]", "a neuron with tau < 1 in every neuron for a NIR LIF or "
                   "CubaLIF node (tau = 1 everywhere is an IF node, which has no synapse)",
                   f"tau values in [{tau.min()}, {tau.max()}]"
                   + (" with a synapse" if eff.has_synapse else ""), owner)
    tau_mem = dt / (1.0 - tau)                                      # a = 1 - dt/tau
    r = gain / (1.0 - tau)                                          # g = r dt/tau
    if eff.has_synapse:
        c = full(eff.alpha_syn)                                     # one, or one per neuron
        if np.any(c >= 1.0):
            raise fail(f"layers[{i}]", "a synapse with alpha_syn < 1 for a NIR CubaLIF node",
                       f"alpha_syn values in [{c.min()}, {c.max()}]", owner)
        return nir.CubaLIF(tau_syn=dt / (1.0 - c), tau_mem=tau_mem, r=r,
                           v_leak=full(eff.v_leak), v_threshold=theta, v_reset=full(eff.v_reset),
                           w_in=1.0 / (1.0 - c), metadata=_meta(record)), record
    return nir.LIF(tau=tau_mem, r=r, v_leak=full(eff.v_leak), v_threshold=theta,
                   v_reset=full(eff.v_reset), metadata=_meta(record)), record


def _folded_batchnorm(net, i, layer, weight, bias):
    """Conv weights and bias with the evaluation-mode BatchNorm folded in (running estimates)."""
    gamma = net.params[f"{i}.bn_weight"].astype(np.float64)
    beta = net.params[f"{i}.bn_bias"].astype(np.float64)
    mean = net.buffers[f"{i}.bn_running_mean"].astype(np.float64)
    var = net.buffers[f"{i}.bn_running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + layer.bn_eps)
    weight = weight.astype(np.float64) * scale[:, None, None, None]
    bias = (bias.astype(np.float64) - mean) * scale + beta
    return weight.astype(net.dtype), bias.astype(net.dtype)


def to_nir(net, dt, *, allow_lossy: bool = False):
    """``net`` as a ``nir.NIRGraph`` (time step ``dt`` in seconds) and the list of what was
    lost for other readers (empty unless ``allow_lossy``). See the module docstring."""
    from .network import Network
    owner = "stlsim.nir.write"
    nir = _nir()
    if not isinstance(net, Network):
        raise fail("net", "a stlsim.Network", type(net).__name__, owner, TypeError)
    dt = _dt(dt, owner)
    check_bool(allow_lossy, "allow_lossy", owner)
    from .surrogate import NAMES
    if len(set(net.surrogates)) > 1:
        raise fail("net.surrogates", "one surrogate for every layer (stlsim's NIR metadata "
                   "stores one)", repr(net.surrogates), owner)
    if net.surrogate.name not in NAMES:
        raise fail("net.surrogate", f"one of stlsim's named surrogates ({', '.join(NAMES)})",
                   repr(net.surrogate), owner)
    net._check_params()
    for i, layer in enumerate(net.layers):       # docs/model.md Section 10: not written yet
        if getattr(layer, "recurrent", None) is not None:
            raise fail(f"layers[{i}]", "a feed-forward layer (stlsim does not write recurrent "
                       "layers to NIR yet)", repr(layer), owner)
        if layer.has_neurons and net.neuron_in_use(i).stateful:
            raise fail(f"neuron of layer {i}", "a neuron without adaptation or synapse_delay "
                       "(stlsim does not write them to NIR yet)", repr(net.neuron_in_use(i)),
                       owner)
    nodes = {"input": nir.Input(input_type={"input": np.array(net.input_shape)})}
    order, losses, pending = ["input"], [], []

    def refuse(i, what, why):
        if not allow_lossy:
            raise fail(f"layers[{i}]", f"a layer NIR represents (Dense, Conv2d, AvgPool2d, "
                       f"Flatten); {why}. Pass allow_lossy=True to write it anyway",
                       what, owner)
        losses.append(f"layers[{i}] {what}: {why}")

    def add(name, node):
        nodes[name] = node
        order.append(name)

    for i, layer in enumerate(net.layers):
        kind = type(layer).__name__
        before = {"preceded_by": pending} if pending else {}
        if isinstance(layer, Dense):
            weight = net.params[f"{i}.weight"]
            node = (nir.Affine(weight=weight, bias=net.params[f"{i}.bias"]) if layer.bias
                    else nir.Linear(weight=weight))
            node.metadata = _meta({"layer": "Dense", "index": i, **before})
            add(f"dense{i}", node)
        elif isinstance(layer, Conv2d):
            weight = net.params[f"{i}.weight"]
            bias = net.params[f"{i}.bias"] if layer.bias else np.zeros(layer.out_channels, net.dtype)
            if layer.batchnorm:
                refuse(i, repr(layer), "NIR has no BatchNorm: its evaluation-mode form is "
                       "folded into the weights and bias with the running estimates, and "
                       "the training-mode batch statistics and the BatchNorm parameters "
                       "are dropped (stlsim reads it back as a Conv2d with bias)")
                weight, bias = _folded_batchnorm(net, i, layer, weight, bias)
            node = nir.Conv2d(input_shape=tuple(layer.in_shape[1:]), weight=weight,
                              stride=layer.stride, padding=layer.padding, dilation=(1, 1),
                              groups=1, bias=bias)
            node.metadata = _meta({"layer": "Conv2d", "index": i,
                                   "bias": layer.bias or layer.batchnorm, **before})
            add(f"conv{i}", node)
        elif isinstance(layer, (AvgPool2d, MaxPool2d)):
            if isinstance(layer, MaxPool2d):
                refuse(i, repr(layer), "NIR has no max pooling: other readers get an "
                       "AvgPool2d of the same window (stlsim restores the MaxPool2d from "
                       "the node's metadata)")
            add(f"pool{i}", nir.AvgPool2d(kernel_size=np.array(layer.kernel_size),
                                          stride=np.array(layer.stride), padding=np.zeros(2, int),
                                          metadata=_meta({"layer": kind, "index": i, **before})))
        elif isinstance(layer, Flatten):
            add(f"flatten{i}", nir.Flatten(input_type={"input": np.array(layer.in_shape)},
                                           start_dim=0, end_dim=-1,
                                           metadata=_meta({"layer": "Flatten", "index": i,
                                                           **before})))
        elif isinstance(layer, Dropout):
            refuse(i, repr(layer), "NIR has no dropout: the layer is left out of the graph "
                   "(the evaluation forward, where dropout is the identity, is unchanged; "
                   "stlsim restores it from the next node's metadata)")
            pending.append({"layer": "Dropout", "index": i, "p": layer.p})
            continue
        else:
            raise fail(f"layers[{i}]", "a layer NIR represents (Dense, Conv2d, AvgPool2d, Flatten)",
                       repr(layer), owner)
        pending = []
        if layer.has_neurons:
            reset = net.neurons[net.spiking_layers.index(i)].reset
            if reset != "hard":
                refuse(i, f"a neuron with reset={reset!r}", "NIR's LIF, CubaLIF and IF reset hard "
                       "to v_reset, so every other reader (snnTorch, Norse, SpikingJelly, ...) "
                       "would run a hard reset; only stlsim.nir.read restores this one from the "
                       "node's metadata")
            node, _ = _neuron_node(nir, net, i, layer, dt, owner)
            add(f"lif{i}", node)
    graph_record = {"schema": SCHEMA, "dt": dt, "population": net.population,
                    "dtype": net.dtype.name, "surrogate": {"name": net.surrogate.name,
                                                           "value": net.surrogate.value},
                    "input_shape": list(net.input_shape), "losses": losses}
    from ._io import provenance
    graph_record["provenance"] = provenance()
    nodes["input"].metadata = _meta(graph_record)
    out_shape = np.array(net.layers[-1].out_shape)
    nodes["output"] = nir.Output(output_type={"output": out_shape})
    order.append("output")
    edges = list(itertools.pairwise(order))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=_meta(graph_record), type_check=True)
    return graph, losses


def write(net, path, dt, *, allow_lossy: bool = False) -> list:
    """Write ``net`` to the NIR file ``path`` (HDF5), atomically, with time step ``dt`` (s).

    Returns what other readers lose (empty unless ``allow_lossy``; also warned). Parts
    NIR cannot represent (MaxPool2d, BatchNorm, Dropout) are refused unless
    ``allow_lossy=True``; stlsim's own conventions travel in node metadata
    (``docs/howto_nir.md``).
    """
    graph, losses = to_nir(net, dt, allow_lossy=allow_lossy)
    nir = _nir()
    from ._io import atomic_path
    with atomic_path(path, suffix=".nir.tmp") as tmp:
        nir.write(tmp, graph)
    if losses:
        warnings.warn(f"NIR file {os.fspath(path)!r} is lossy for other readers: "
                      + "; ".join(losses), UserWarning, stacklevel=2)
    return losses


# ==================================================================== reading ====

def _read_dict(handle, path):
    """(in the bounded reader process) the graph of a NIR file as plain dicts and arrays."""
    from nir.serialization import hdf2dict
    if "node" not in handle:
        raise ValueError(f"File {path!r} is not a NIR file (no 'node' group).")
    return hdf2dict(handle["node"])


def _uniform(value, name, node_name, owner):
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise fail(f"{name} of node {node_name!r}", "finite", f"{arr.size} values, some not finite",
                   owner)
    if np.all(arr == arr.flat[0]):
        return float(arr.flat[0])
    # Values computed per neuron (r dt/tau with per-neuron tau, float32 files) differ in
    # their last bits: equal within 1e-6 relative counts as one value, their mean.
    if np.max(np.abs(arr - arr.mean())) > 1e-6 * max(np.max(np.abs(arr)), 1e-300):
        raise fail(f"{name} of node {node_name!r}", "the same for every neuron (stlsim's LIF "
                   "takes one value per layer)", f"values in [{arr.min()}, {arr.max()}]", owner)
    return float(arr.mean())


def _chain(graph, owner):
    """The node names of a feed-forward chain Input -> ... -> Output, in order."""
    nir = _nir()
    succ, pred = {}, {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise fail("graph", "a NIR graph with one Input node", f"{len(inputs)} Input nodes", owner)
    order, name, seen = [], inputs[0], set()
    while True:
        if name in seen:
            raise fail("graph", "a feed-forward chain (stlsim has no recurrence)",
                       f"a cycle through node {name!r}", owner)
        seen.add(name)
        order.append(name)
        nxt = succ.get(name, [])
        if len(nxt) > 1 or len(pred.get(name, [])) > 1:
            raise fail("graph", "a chain (each node one input and one output)",
                       f"node {name!r} with {len(pred.get(name, []))} inputs and {len(nxt)} "
                       "outputs", owner)
        if not nxt:
            break
        name = nxt[0]
    if set(order) != set(graph.nodes):
        extra = sorted(set(graph.nodes) - set(order))
        raise fail("graph", "a chain that visits every node", f"nodes {extra} off the chain",
                   owner)
    return order


def _neuron_from_node(node, name, dt, shape, record, owner):
    """(LIF, theta per neuron, trained raw values or {}) of a NIR neuron node at step dt."""
    nir = _nir()
    n = int(np.prod(shape))

    def arr(value, what):
        a = np.asarray(value, dtype=np.float64)
        if a.size not in (1, n):
            raise fail(f"{what} of node {name!r}", f"one value or {n} (one per neuron of shape "
                       f"{tuple(shape)})", f"{a.size} values", owner)
        return np.broadcast_to(a.reshape(-1) if a.size == n else a.reshape(()), (n,))

    theta = arr(node.v_threshold, "v_threshold").reshape(shape)
    per_neuron = {"v_reset": arr(node.v_reset, "v_reset")}        # arrays first, (n,) each
    if isinstance(node, nir.IF):
        tau = np.ones(n)
        gain = arr(node.r, "r") * dt                                # a = 1, g = r dt
    else:
        tau_mem = arr(node.tau_mem if isinstance(node, nir.CubaLIF) else node.tau, "tau")
        if np.any(tau_mem < dt) or not np.all(np.isfinite(tau_mem)):
            raise fail("dt", f"at most the smallest time constant of node {name!r} "
                       f"({tau_mem.min()!r} s), so that the decay factor 1 - dt/tau is in [0, 1]",
                       repr(dt), owner)
        tau = 1.0 - dt / tau_mem                                    # a = 1 - dt/tau
        gain = arr(node.r, "r") * dt / tau_mem                      # g = r dt/tau
        per_neuron["v_leak"] = arr(node.v_leak, "v_leak")
        if isinstance(node, nir.CubaLIF):
            tau_syn = arr(node.tau_syn, "tau_syn")
            if np.any(tau_syn < dt) or not np.all(np.isfinite(tau_syn)):
                raise fail("dt", f"at most the smallest tau_syn of node {name!r} "
                           f"({tau_syn.min()!r} s)", repr(dt), owner)
            per_neuron["alpha_syn"] = 1.0 - dt / tau_syn            # c = 1 - dt/tau_syn
            gain = gain * arr(node.w_in, "w_in") * dt / tau_syn     # (L1s) input weight
    per_neuron["input_gain"] = gain
    per_neuron["tau"] = tau
    if record and isinstance(record.get("settings"), dict):
        saved = record["settings"]
        if _consistent(saved, per_neuron, record.get("trained", {})):
            return dict(saved), theta, record.get("trained", {})    # exact values, conventions
    labels = {"v_reset": "v_reset", "v_leak": "v_leak", "alpha_syn": "1 - dt/tau_syn",
              "input_gain": "the input gain r dt/tau"}
    values = {key: _uniform(per_neuron[key], label, name, owner) for key, label in labels.items()
              if key in per_neuron}
    values.setdefault("v_leak", 0.0)                              # IF: no leak term
    values["tau"] = float(tau[0]) if np.all(tau == tau[0]) else tau
    settings = {"reset": "hard", "spike_at_threshold": False, "detach_reset": False,
                "v_init": values["v_leak"], "theta_init": float(theta.flat[0]), **values}
    if record and isinstance(record.get("settings"), dict):      # the node's values win
        settings.update({k: record["settings"][k] for k in ("reset", "detach_reset",
                         "spike_at_threshold", "v_init") if k in record["settings"]})
    trained = {}
    return settings, theta, trained


def _consistent(saved, values, trained) -> bool:
    """Whether a stlsim record's numbers say what the node's parameters say (same dt)."""
    try:
        eff = dict(saved)
        if saved.get("learn_tau") == "factor" and "tau" in trained:
            eff["tau"] = np.clip(np.asarray(trained["tau"], dtype=np.float64), 0.0, 1.0)
        elif saved.get("learn_tau") == "sigmoid" and "tau_w" in trained:
            eff["tau"] = 1.0 - 1.0 / (1.0 + np.exp(-np.asarray(trained["tau_w"], dtype=np.float64)))
        if saved.get("learn_alpha_syn") and "alpha_syn" in trained:
            eff["alpha_syn"] = np.clip(np.asarray(trained["alpha_syn"], dtype=np.float64),
                                       0.0, 1.0)                    # one, or one per neuron
        if saved.get("tie_gain"):
            eff["input_gain"] = 1.0 - np.asarray(eff["tau"], dtype=np.float64)
        for key in _NUMERIC:
            if key == "v_leak" and key not in values:                # IF: (1 - tau) v_leak = 0
                continue
            mine, theirs = eff.get(key), values.get(key)
            if (mine is None) != (theirs is None):
                return False
            if mine is None:
                continue
            mine = np.asarray(mine, dtype=np.float64).reshape(-1)
            theirs = np.asarray(theirs, dtype=np.float64).reshape(-1)
            if mine.size == 1 and theirs.size > 1:
                mine = np.broadcast_to(mine, theirs.shape)
            if theirs.size == 1 and mine.size > 1:
                theirs = np.broadcast_to(theirs, mine.shape)
            if mine.shape != theirs.shape or not np.allclose(mine, theirs, rtol=1e-6, atol=1e-9):
                return False
        return True
    except (TypeError, ValueError, KeyError, IndexError):
        return False


def _padding(value, kernel, stride, name, owner):
    if isinstance(value, bytes):
        value = value.decode("utf8")
    if isinstance(value, str):
        if value == "valid":
            return (0, 0)
        if value == "same" and tuple(stride) == (1, 1) and all(k % 2 for k in kernel):
            return tuple((k - 1) // 2 for k in kernel)
        raise fail(f"padding of node {name!r}", "an integer pair, 'valid', or 'same' with stride "
                   "1 and odd kernels", repr(value), owner)
    pad = np.broadcast_to(np.asarray(value, dtype=np.int64).reshape(-1), (2,))
    return tuple(int(p) for p in pad)


def _pair_of(value, name, what, owner):
    pair = np.broadcast_to(np.asarray(value).reshape(-1), (2,))
    if pair.dtype.kind not in "iuf" or np.any(pair != np.round(pair)) or np.any(pair < 0):
        raise fail(f"{what} of node {name!r}", "integers", repr(value), owner)
    return tuple(int(p) for p in pair)


def from_nir(graph, dt=None, *, surrogate=None, population=None, dtype=None, backend="auto",
             preset=None, **conventions):
    """A ``stlsim.Network`` from a ``nir.NIRGraph`` (see ``read``)."""
    from . import surrogate as _surrogate
    from .conventions import get as get_convention
    from .network import Network
    owner = "stlsim.nir.read"
    nir = _nir()
    if not isinstance(graph, nir.NIRGraph):
        raise fail("graph", "a nir.NIRGraph", type(graph).__name__, owner, TypeError)
    unknown = sorted(set(conventions) - set(CONVENTIONS))
    if unknown:
        raise fail(unknown[0], f"one of the settings NIR cannot carry ({', '.join(CONVENTIONS)})",
                   "an unknown keyword (tau, thresholds, gains and potentials come from the "
                   "file)", owner, TypeError)
    order = _chain(graph, owner)
    head = _record_of(graph.nodes[order[0]]) or _record_of(graph) or {}
    if head.get("schema", SCHEMA) > SCHEMA:
        raise fail("graph", f"stlsim metadata of schema {SCHEMA} or older",
                   f"schema {head['schema']} (written by a newer stlsim)", owner)
    if dt is None:
        if "dt" not in head:
            raise fail("dt", "given for a NIR file stlsim did not write (NIR time constants are "
                       "in seconds; snnTorch and SpikingJelly export with dt = 1e-4, Norse with "
                       "1e-3)", "None", owner)
        dt = head["dt"]
    dt = _dt(dt, owner)
    dtype = check_dtype(head.get("dtype", "float64") if dtype is None else dtype, owner=owner)
    if preset is not None:
        chosen = get_convention(preset)
        preset_settings = {k: v for k, v in chosen.settings.items()
                           if k in ("reset", "detach_reset", "spike_at_threshold")}
        conventions = {**preset_settings, **conventions}
        if surrogate is None:
            surrogate = chosen.surrogate()
    if surrogate is None:
        saved = head.get("surrogate")
        surrogate = (_surrogate.get(saved["name"], saved["value"], owner)
                     if isinstance(saved, dict) else "atan")
    population = head.get("population", 1) if population is None else population

    input_node = graph.nodes[order[0]]
    shape = tuple(int(s) for s in np.asarray(input_node.input_type["input"]).reshape(-1))
    layers, neurons, values, pending_neuron = [], [], [], None
    for name in order[1:]:
        node = graph.nodes[name]
        record = _record_of(node) or {}
        for dropped in record.get("preceded_by", []):
            layers.append(Dropout(dropped["p"]))
            values.append({})
        is_neuron = isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF))
        if pending_neuron is not None and not is_neuron and not isinstance(node, nir.Output):
            raise fail("graph", "a neuron node (LIF, CubaLIF or IF) after every Affine, Linear "
                       "or Conv2d node", f"node {name!r} ({type(node).__name__}) after "
                       f"{pending_neuron!r}", owner)
        if isinstance(node, (nir.Affine, nir.Linear)):
            weight = np.asarray(node.weight)
            if weight.ndim != 2:
                raise fail(f"weight of node {name!r}", "a 2-D (out, in) matrix",
                           f"shape {weight.shape}", owner)
            layer = Dense(weight.shape[1], weight.shape[0], bias=isinstance(node, nir.Affine))
            vals = {"weight": weight}
            if isinstance(node, nir.Affine):
                vals["bias"] = np.asarray(node.bias).reshape(-1)
            layers.append(layer)
            values.append(vals)
            pending_neuron = name
        elif isinstance(node, nir.Conv2d):
            weight = np.asarray(node.weight)
            if weight.ndim != 4:
                raise fail(f"weight of node {name!r}", "a 4-D (C_out, C_in, kh, kw) array",
                           f"shape {weight.shape}", owner)
            if int(np.asarray(node.groups)) != 1 or _pair_of(node.dilation, name, "dilation",
                                                               owner) != (1, 1):
                raise fail(f"node {name!r}", "a Conv2d with groups 1 and dilation 1 (stlsim's)",
                           f"groups {node.groups}, dilation {node.dilation}", owner)
            stride = _pair_of(node.stride, name, "stride", owner)
            padding = _padding(node.padding, weight.shape[2:], stride, name, owner)
            bias = np.asarray(node.bias).reshape(-1)
            has_bias = bool(record.get("bias", True)) or bool(np.any(bias != 0))
            layer = Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), stride,
                           padding, bias=has_bias)
            vals = {"weight": weight}
            if has_bias:
                vals["bias"] = bias
            layers.append(layer)
            values.append(vals)
            pending_neuron = name
        elif isinstance(node, nir.AvgPool2d):
            kernel = _pair_of(node.kernel_size, name, "kernel_size", owner)
            stride = _pair_of(node.stride, name, "stride", owner)
            if _pair_of(node.padding, name, "padding", owner) != (0, 0):
                raise fail(f"padding of node {name!r}", "0 (stlsim's pooling has no padding)",
                           repr(node.padding), owner)
            cls = MaxPool2d if record.get("layer") == "MaxPool2d" else AvgPool2d
            layers.append(cls(kernel, stride))
            values.append({})
        elif isinstance(node, nir.Flatten):
            start, end = int(node.start_dim), int(node.end_dim)
            if start != 0 or end != -1:
                raise fail(f"node {name!r}", "a Flatten of the whole sample (start_dim 0, "
                           "end_dim -1)", f"start_dim {start}, end_dim {end}", owner)
            layers.append(Flatten())
            values.append({})
        elif is_neuron:
            if pending_neuron is None:
                raise fail("graph", "every neuron node right after an Affine, Linear or Conv2d "
                           "node (stlsim's layers are synapses followed by neurons)",
                           f"node {name!r} ({type(node).__name__}) after something else", owner)
            values[-1]["neuron"] = (name, node, record)
            pending_neuron = None
        elif isinstance(node, nir.Output):
            pass
        else:
            raise fail(f"node {name!r}", "one of the node types stlsim reads (Affine, Linear, "
                       "Conv2d, AvgPool2d, Flatten, LIF, CubaLIF, IF)", type(node).__name__, owner)
    if pending_neuron is not None:
        raise fail("graph", "a neuron node after the last synapse", f"{pending_neuron!r} last",
                   owner)
    # Each layer learns its shape from the one before it (the neuron nodes need them).
    from .layers.shape import resolve_shapes
    resolve_shapes(layers, shape)
    trained_of = {}
    for i, (layer, vals) in enumerate(zip(layers, values)):
        if not layer.has_neurons:
            continue
        name, node, record = vals.pop("neuron")
        settings, theta, trained = _neuron_from_node(node, name, dt, layer.out_shape, record, owner)
        settings.update(conventions)
        try:
            neuron = LIF(**{k: v for k, v in settings.items() if k in LIF().settings()})
        except (TypeError, ValueError) as err:
            raise ValueError(f"Node {name!r} of the NIR graph gives no valid stlsim.LIF at "
                             f"dt = {dt!r}: {err}") from None
        sharing = record.get("threshold_sharing", "neuron")
        if sharing == "channel" and isinstance(layer, Conv2d) and np.all(theta == theta[:, :1, :1]):
            vals["theta"] = theta[:, 0, 0]
        elif sharing == "layer" and np.all(theta == theta.flat[0]):
            vals["theta"] = np.asarray(theta.flat[0])
        else:
            sharing, vals["theta"] = "neuron", theta
        layer.threshold_sharing = sharing
        trained_of[i] = trained
        neurons.append(neuron)
    net = Network(layers, neuron=neurons, surrogate=surrogate, population=population, dtype=dtype,
                  backend=backend, input_shape=shape)
    for i, vals in enumerate(values):
        for key, value in vals.items():
            net.params[f"{i}.{key}"] = np.array(value, dtype=dtype).reshape(
                net.params[f"{i}.{key}"].shape)
        if i in trained_of:
            for key, value in trained_of[i].items():
                if f"{i}.{key}" in net.params:
                    net.params[f"{i}.{key}"] = np.array(value, dtype=dtype).reshape(
                        net.params[f"{i}.{key}"].shape)
    return net


def read(path, dt=None, *, surrogate=None, population=None, dtype=None, backend="auto",
         preset=None, **conventions):
    """A ``stlsim.Network`` from the NIR file ``path``.

    Parameters
    ----------
    dt : float, seconds
        The Euler step that turns NIR's time constants into decay factors and gains
        (module docstring). Default: the dt stored by ``stlsim.nir.write``; a file from
        another writer needs it (snnTorch and SpikingJelly export with 1e-4, Norse 1e-3).
    surrogate, population, dtype, backend
        As ``stlsim.Network``; default: what the file's stlsim metadata says, else
        "atan", 1, float64.
    preset : str, optional
        A ``stlsim.conventions`` name whose reset, detach_reset, H(0) and surrogate
        replace NIR's (e.g. "snntorch.Leaky.zero" for a snnTorch export).
    **conventions
        LIF settings NIR cannot carry (``CONVENTIONS``: reset, detach_reset,
        spike_at_threshold, v_init, learn_tau, learn_alpha_syn), for every layer.

    Without stlsim metadata a neuron node reads as NIR defines it: hard reset to
    v_reset, spike strictly above threshold (H(0) = 0), detach_reset False, v_0 =
    v_leak; per-neuron tau and thresholds are kept; r dt/tau, v_leak and v_reset must
    be the same for every neuron of a layer.
    """
    graph = _load(path)
    return from_nir(graph, dt, surrogate=surrogate, population=population, dtype=dtype,
                    backend=backend, preset=preset, **conventions)


# ==================================================================== checking ====
# What a peer's own NIR importer decides that the graph does not say (read from its
# importer's source; docs/howto_nir.md): surrogate, detach_reset, and the dtype it runs in.
PEERS = {
    "snntorch": {"surrogate": ("atan", 2.0), "detach_reset": False, "dtype": np.float32,
                 "source": "snntorch/import_nir.py: snn.Leaky(beta=1 - dt/tau, reset_mechanism="
                           "'zero', reset_delay=False), dt fixed at 1e-4, threshold divided by "
                           "r dt/tau when that is not 1; with reset_delay=False its reset "
                           "(snntorch/_neurons/leaky.py: mem - (spk - reset) * mem) is not "
                           "detached; atan surrogate"},
    "norse": {"surrogate": ("superspike", 1.0), "detach_reset": False, "dtype": np.float32,
              "source": "norse/torch/utils/import_nir.py: LIFBoxCell(tau_mem_inv=1/tau, v_th, "
                        "v_leak), r and v_reset not read; float32 tensors"},
    "spikingjelly": {"surrogate": ("sigmoid", 4.0), "detach_reset": False, "dtype": np.float64,
                     "source": "spikingjelly/activation_based/nir_exchange/from_nir.py: "
                               "LIFNode(tau/dt, decay_input=r == 1), IFNode (r = 1/dt), H(0) = 1"},
}


class CheckReport:
    """What ``check`` found: stlsim's gradients of a probe of the output spikes, and with a
    peer, ``stlsim.interop.compare`` of the peer's own import of the file.

    ``rows``: (parameter, shape, max |stlsim grad|, max |diff| or None, relative or None);
    ``spikes_equal`` (None without a peer); ``max_rel_error``; ``worst``; ``ok``.
    With a peer, ``report`` is interop's ``Report`` on the peer's import (its gradients
    against its stlsim twin; ``rows`` are its rows), and ``reading`` says whether that import
    is the network stlsim reads from the file: ``reading_spikes_equal`` and
    ``reading_rows`` (stlsim key, max |diff|, relative) of the synapse gradients of the
    twin against ``stlsim.nir.read``'s network, held to ``rtol`` too. ``ok`` needs both.
    """

    def __init__(self, path, dt, rows, rates, margin, against=None, spikes_equal=None,
                 rtol=None, notes=(), report=None, reading_spikes_equal=None, reading_rows=()):
        self.path, self.dt, self.rows, self.rates, self.margin = path, dt, rows, rates, margin
        self.against, self.spikes_equal, self.rtol, self.notes = against, spikes_equal, rtol, notes
        self.report, self.reading_spikes_equal = report, reading_spikes_equal
        self.reading_rows = list(reading_rows)

    @property
    def max_rel_error(self):
        rel = [r[4] for r in self.rows if r[4] is not None]
        return max(rel) if rel else None

    @property
    def worst(self):
        rel = [(r[4], r[0]) for r in self.rows if r[4] is not None]
        return max(rel)[1] if rel else None

    @property
    def reading_ok(self) -> bool | None:
        """The peer's import is the network ``stlsim.nir.read`` gives (None without a peer)."""
        if self.against is None:
            return None
        return bool(self.reading_spikes_equal) and all(
            rel <= self.rtol for _, _, rel in self.reading_rows)

    @property
    def ok(self) -> bool:
        if self.against is None:
            return True
        return bool(self.report.ok) and bool(self.reading_ok)

    def __str__(self):
        head = f"{self.path}: dt = {self.dt!r} s, firing rate per layer " + " ".join(
            f"{r:.3f}" for r in self.rates) + f", smallest |m - theta| {self.margin:.3g}"
        lines = [head]
        if self.against is None:
            lines.append(f"{'parameter':<12} {'shape':<16} {'max |grad|':>11}")
            lines.extend(f"{name:<12} {shape!s:<16} {size:>11.3e}"
                         for name, shape, size, _, _ in self.rows)
            return "\n".join(lines + list(self.notes))
        lines.append(f"against {self.against}: its own NIR import of the file, checked by "
                     "stlsim.interop.compare:")
        lines.append(str(self.report))
        worst = max(self.reading_rows, key=lambda row: row[2], default=None)
        lines.append(
            f"the import is the network stlsim reads from the file: "
            f"{'yes' if self.reading_ok else 'NO'} (spikes "
            f"{'identical' if self.reading_spikes_equal else 'DIFFER'}"
            + ("" if worst is None else f"; synapse gradients: worst {worst[0]}, relative "
               f"{worst[2]:.3e}, rtol {self.rtol:g}") + ")")
        lines.extend(self.notes)
        return "\n".join(lines)


def _import_with(peer, path, dt):
    """The peer's own NIR import of ``path``: the executor its importer returns."""
    import torch
    graph = _load(path)
    if peer == "snntorch":
        import contextlib
        import io

        from snntorch.import_nir import import_from_nir
        with contextlib.redirect_stdout(io.StringIO()):       # it prints as it imports
            return import_from_nir(graph)
    if peer == "norse":
        import logging

        import norse.torch as norse
        logging.getLogger().setLevel(logging.ERROR)
        return norse.from_nir(graph, dt=dt, ignore_warnings=True)
    from spikingjelly.activation_based.nir_exchange import import_from_nir
    torch_dtype = torch.float32 if PEERS[peer]["dtype"] == np.float32 else torch.float64
    return import_from_nir(graph, dt=dt, dtype=torch_dtype, step_mode="m")


def _synapse_rows(theirs, ours):
    """(key, max |diff|, relative) of the weights and biases both networks have."""
    rows = []
    for key, g in ours.items():
        other = theirs.get(key)
        if not key.endswith((".weight", ".bias")) or other is None or other.shape != g.shape:
            continue
        diff = float(np.max(np.abs(g.astype(np.float64) - other.astype(np.float64))))
        scale = max(float(np.max(np.abs(other))), float(np.max(np.abs(g))), 1e-30)
        rows.append((key, diff, diff / scale))
    return rows


def check(path, *, against=None, dt=None, timesteps: int = 8, batch: int = 4,
          seed: int | np.random.SeedSequence | np.random.Generator = 0,
          rtol=None, **read_options) -> CheckReport:
    """Read the NIR file ``path``, run stlsim's forward and the gradient of a seeded random
    probe of the output spikes, L = sum(C * s^L), on a seeded random spike input.

    ``against``: "snntorch", "norse" or "spikingjelly" imports the file with that peer's
    own NIR importer; ``stlsim.interop.as_chain`` reads the executor it returns as a chain
    of the peer's modules, and ``stlsim.interop.compare`` checks that model's spikes and
    gradients against its stlsim twin (the report's ``report``). ``against`` may also be
    the peer model the file was exported from (a snnTorch ``Sequential``, say): the same
    check of that model, with its own reset, detach and H(0) (``interop.convert``'s twin)
    applied to the file. Either way the twin is also compared with the network
    ``stlsim.nir.read`` gives with those conventions (``reading_ok``), so a peer that
    imports the file as another network (Norse ignores r; snnTorch's importer builds a
    zero reset, whatever the exporter's model had) fails the check. ``read_options`` go to
    ``read`` (``docs/howto_nir.md``; the command ``stlsim check``).
    """
    from . import surrogate as _surrogate
    from ._checks import check_choice, check_int
    owner = "stlsim.nir.check"
    timesteps = check_int(timesteps, "timesteps", low=1, owner=owner)
    batch = check_int(batch, "batch", low=1, owner=owner)
    seed = check_int(seed, "seed", low=0, owner=owner)
    graph = _load(path)
    head = _record_of(graph.nodes[_chain(graph, owner)[0]]) or {}
    notes, peer_model = [], None
    if against is not None and not isinstance(against, str):
        try:
            import torch
        except ImportError:
            raise ImportError("`stlsim.nir.check(against=model)` needs torch.") from None
        if not isinstance(against, torch.nn.Module):
            raise fail("against", "'snntorch', 'norse', 'spikingjelly' or the peer model "
                       "(a torch.nn.Module) the file was exported from",
                       type(against).__name__, owner, TypeError)
        from . import interop
        peer_model = interop.as_chain(against, owner)
        against = interop._detect_peer(peer_model, owner)
        peer = PEERS[against]
        if dt is None and "dt" not in head:
            dt = {"snntorch": 1e-4, "spikingjelly": 1e-4, "norse": 1e-3}[against]   # exporters' dt
        shape = tuple(from_nir(graph, dt).input_shape)
        conv = interop.convert(peer_model, shape, dtype=peer["dtype"], peer=against)
        neuron = conv.net.neurons[0]
        for name in ("reset", "detach_reset", "spike_at_threshold"):
            read_options.setdefault(name, getattr(neuron, name))
        read_options.setdefault("surrogate", conv.net.surrogates[0])
        read_options.setdefault("dtype", peer["dtype"])
        notes.append(f"The file read with the conventions of the model given: reset="
                     f"{neuron.reset!r}, detach_reset={neuron.detach_reset}, H(0) = "
                     f"{int(neuron.spike_at_threshold)}.")
    elif against is not None:
        check_choice(against, "against", tuple(PEERS), owner)
        peer = PEERS[against]
        try:
            import torch  # noqa: F401
            __import__(against)
        except ImportError:
            raise ImportError(f"`stlsim check --against {against}` needs torch and {against} "
                              "installed.") from None
        read_options.setdefault("surrogate", _surrogate.get(*peer["surrogate"]))
        read_options.setdefault("detach_reset", peer["detach_reset"])
        read_options.setdefault("dtype", peer["dtype"])
        if dt is None and against == "snntorch" and "dt" not in head:
            dt = 1e-4                    # its importer's fixed step (used whatever the file says)
        notes.append(f"{against}'s importer: {peer['source']}.")
    dt = head.get("dt") if dt is None else dt
    net = from_nir(graph, dt, **read_options)
    (rng,) = seed_streams(seed, 1, "seed", "stlsim.nir.check")     # an int, SeedSequence or Generator
    x = (rng.random((timesteps, batch) + net.input_shape) < 0.5).astype(net.dtype)
    probe = rng.standard_normal((timesteps, batch) + tuple(net.layers[-1].out_shape))
    _, grads, record = net.probe_grad(x, probe.astype(net.dtype))
    margin = min(float(np.min(np.abs(m - np.asarray(net.layers[i].expand_theta(
        net.params[f"{i}.theta"]))))) for m, i in zip(record.membrane, record.layer_index))
    rates = [float(s.mean()) for s in record.spikes]
    if against is None:
        rows = [(key, tuple(g.shape), float(np.max(np.abs(g))), None, None)
                for key, g in grads.items()]
        return CheckReport(os.fspath(path), dt, rows, rates, margin, notes=tuple(notes))
    from . import interop
    if peer_model is None:
        try:
            peer_model = interop.as_chain(_import_with(against, path, float(dt)), owner)
        except Exception as err:  # noqa: BLE001 - the peer's importer refusing is the answer
            raise ValueError(f"{against}'s own NIR importer cannot run {os.fspath(path)!r}: "
                             f"{type(err).__name__}: {err}".rstrip(": ")) from None
    rtol = (1e-4 if peer["dtype"] == np.float32 else 1e-10) if rtol is None else rtol
    report = interop.compare(peer_model, x, seed=seed, dtype=peer["dtype"], peer=against)
    twin = interop.convert(peer_model, net.input_shape, dtype=peer["dtype"], peer=against).net
    _, twin_grads, twin_record = twin.probe_grad(x, probe.astype(twin.dtype))
    reading_equal = bool(np.array_equal(twin_record.spikes[-1], record.spikes[-1]))
    rows = []
    for row in report.rows:
        size = twin_grads.get(row.key)
        rows.append((row.key, tuple(row.shape), float("nan") if size is None else float(
            np.max(np.abs(size))), row.max_abs, row.relative))
    notes.append("stlsim.nir.read's network and the twin of the import: the same input and "
                 "probe; a threshold the importer rescales is left out of that comparison.")
    return CheckReport(os.fspath(path), dt, rows, rates, margin, against, report.spikes_equal,
                       rtol, tuple(notes), report=report, reading_spikes_equal=reading_equal,
                       reading_rows=_synapse_rows(twin_grads, grads))


def _load(path):
    """The ``nir.NIRGraph`` of a NIR file, read by the bounded HDF5 reader."""
    from ._io import read_hdf5
    nir = _nir()
    data = dict(read_hdf5(path, "stlsim.nir:_read_dict"))
    data["type_check"] = False
    try:
        graph = nir.dict2NIRNode(data)
    except (KeyError, ValueError, TypeError, AssertionError, AttributeError) as err:
        raise ValueError(f"File {os.fspath(path)!r} is not a NIR graph stlsim can read "
                         f"({type(err).__name__}: {err}).") from None
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"File {os.fspath(path)!r} holds a single {type(graph).__name__} "  # noqa: TRY004
                         "node, not a NIR graph.")
    return graph
