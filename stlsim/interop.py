"""stlsim as a gradient oracle for snnTorch, SpikingJelly and Norse models.

    import stlsim.interop as interop          # torch is imported only by the calls below
    net = interop.from_snntorch(model, input_shape=(784,))     # also from_spikingjelly, from_norse
    rep = interop.compare(model, x, seed=0)   # x: (T, B, *input_shape), numpy or torch
    rep.ok, rep.spikes_equal, rep.max_rel_error, rep.worst, rep.first_divergence
    print(rep)                                # one row per parameter

A converter reads the peer's usual feed-forward idiom (a ``torch.nn.Sequential`` of
``nn.Linear`` / ``nn.Conv2d`` / pooling / ``nn.Flatten`` and the peer's neurons: snnTorch
with ``init_hidden=True``, SpikingJelly in ``step_mode="m"``, Norse ``SequentialState``)
and returns a ``stlsim.Network`` with the same parameters (copied) and the peer's exact
neuron conventions (``stlsim.conventions``, ``docs/model.md`` Section 8), or raises an
error naming the module it cannot convert and why.

``compare`` runs both on the same input, takes a loss on the output spikes (a seeded
random linear probe ``sum(C * s^L)``, or stlsim's ``"mse_rate"``/``"ce_rate"`` readout
with labels ``y``, whose dL/ds^L is handed to the peer), and compares the forward spikes
of every layer, the adjoints dL/ds_t of every layer and step (as torch's ``.grad`` of a
spike tensor holds them), and the gradient of every
trainable parameter. stlsim's side is the NumPy reference, float64 by default.

Peer quirks handled here (checked against the installed peers' source):
snnTorch 1.0's surrogates return float32 spikes, so its models run in float32 only and
are compared in float32 (``rtol`` 1e-5); Norse keeps its neuron constants as float32
tensors even in a float64 model, so the decay and gain are read back in the peer's own
arithmetic; SpikingJelly's thresholds are floats (no gradient) unless a tensor is given.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from ._checks import check_choice, check_dtype, fail
from .neurons import LIF

__all__ = ["from_snntorch", "from_spikingjelly", "from_norse", "compare", "Report", "ParamRow",
           "Conversion", "convert"]

RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - exercised only without torch
        raise fail("model", "a torch model (install torch: pip install 'torch==2.13.0')",
                   f"no importable torch ({err})", "stlsim.interop", ImportError) from None
    return torch


# ------------------------------------------------------------------------ conversion --

@dataclass
class Conversion:
    """A peer model and its stlsim twin: ``net``, the peer's name, and which stlsim
    parameter each peer parameter is (``params``: peer name -> (stlsim key, how))."""

    net: object
    peer: str
    model: object
    neuron_modules: list                      # the peer's neuron modules, in layer order
    params: dict = field(default_factory=dict)
    dtype: np.dtype = np.dtype(np.float64)


def _module_kind(module) -> str:
    name = type(module).__module__
    for peer in ("snntorch", "spikingjelly", "norse"):
        if name.startswith(peer):
            return peer
    return "torch" if name.startswith("torch") else name


def _layers_of(model, owner):
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise fail("model", "a torch.nn.Module (a Sequential of layers and neurons)",
                   type(model).__name__, owner, TypeError)
    children = list(model.named_children())
    if not children:
        raise fail("model", "a Sequential of layers and neurons", f"a {type(model).__name__} "
                   "with no child modules", owner)
    return children


def _array(value, dtype):
    return np.array(value.detach().cpu().numpy() if hasattr(value, "detach") else value,
                    dtype=dtype)


def _weight_layer(torch, name, module, owner):
    """(stlsim layer, {peer param: stlsim local name}) for a Linear / Conv2d."""
    import stlsim
    if isinstance(module, torch.nn.Linear):
        layer = stlsim.Dense(module.in_features, module.out_features, bias=module.bias is not None)
        names = {"weight": "weight", "bias": "bias"}
    elif isinstance(module, torch.nn.Conv2d):
        if module.dilation != (1, 1) or module.groups != 1 or module.padding_mode != "zeros" \
                or isinstance(module.padding, str):
            raise fail(f"model[{name}]", "a Conv2d with dilation 1, groups 1 and numeric zero "
                       "padding (what stlsim.Conv2d computes)", repr(module), owner)
        layer = stlsim.Conv2d(module.in_channels, module.out_channels, module.kernel_size,
                              module.stride, module.padding, bias=module.bias is not None)
        names = {"weight": "weight", "bias": "bias"}
    else:
        return None, None
    return layer, names


def _shape_layer(torch, name, module, owner):
    import stlsim
    if isinstance(module, torch.nn.Flatten):
        if module.start_dim not in (1, -3, -2) and module.end_dim != -1:
            raise fail(f"model[{name}]", "nn.Flatten over every axis of a sample",
                       repr(module), owner)
        return stlsim.Flatten()
    for torch_cls, stlsim_cls in ((torch.nn.AvgPool2d, stlsim.AvgPool2d),
                                  (torch.nn.MaxPool2d, stlsim.MaxPool2d)):
        if isinstance(module, torch_cls):
            padding = module.padding if isinstance(module.padding, tuple) else (module.padding,) * 2
            if any(padding) or module.ceil_mode or (torch_cls is torch.nn.AvgPool2d
                                                     and not module.count_include_pad):
                raise fail(f"model[{name}]", "pooling without padding or ceil_mode",
                           repr(module), owner)
            if torch_cls is torch.nn.MaxPool2d and module.dilation not in (1, (1, 1)):
                raise fail(f"model[{name}]", "MaxPool2d with dilation 1", repr(module), owner)
            return stlsim_cls(module.kernel_size, module.stride)
    return None


def _build(children, input_shape, neuron_of_module, dtype, owner, peer, model,
           surrogate_of_module):
    """Walk the peer's modules: weight layer, then its neuron, then shape layers."""
    import stlsim
    torch = _torch()
    layers, neurons, neuron_modules, params = [], [], [], {}
    surrogate = None
    pending = None                              # (index in layers, peer name, names)
    for name, module in children:
        layer, names = _weight_layer(torch, name, module, owner)
        if layer is not None:
            if pending is not None:
                raise fail(f"model[{name}]", "a neuron after each Linear/Conv2d (stlsim's "
                           "Dense and Conv2d carry their LIF neurons)",
                           f"{type(module).__name__} right after model[{pending[1]}]", owner)
            pending = (len(layers), name, names, module)
            layers.append(layer)
            continue
        neuron = neuron_of_module(name, module)
        if neuron is not None:
            if pending is None:
                raise fail(f"model[{name}]", "a neuron right after a Linear or Conv2d",
                           f"{type(module).__name__} after no weight layer", owner)
            index, weight_name, names, weight_module = pending
            neurons.append(neuron)
            neuron_modules.append(module)
            this_surrogate = surrogate_of_module(name, module)
            if surrogate is None:
                surrogate = this_surrogate
            elif this_surrogate != surrogate:
                raise fail(f"model[{name}]", f"the same surrogate in every layer ({surrogate!r}: "
                           "a stlsim Network has one)", repr(this_surrogate), owner)
            for peer_name, local in names.items():
                if getattr(weight_module, peer_name, None) is not None:
                    params[f"{weight_name}.{peer_name}"] = (f"{index}.{local}", "same")
            params.update({f"{name}.{p}": (f"{index}.{local}", how)
                           for p, (local, how) in _neuron_param_names(module, neuron).items()})
            pending = None
            continue
        shape_layer = _shape_layer(torch, name, module, owner)
        if shape_layer is not None:
            if pending is not None:
                raise fail(f"model[{name}]", "a neuron right after each Linear/Conv2d (pooling "
                           "before the neuron is not a stlsim layer)",
                           f"{type(module).__name__} after model[{pending[1]}]", owner)
            layers.append(shape_layer)
            continue
        raise fail(f"model[{name}]", f"a layer or {peer} neuron stlsim can convert (Linear, Conv2d, "
                   "AvgPool2d, MaxPool2d, Flatten and the neurons of docs/model.md Section 8)",
                   f"{type(module).__module__}.{type(module).__name__}", owner)
    if pending is not None:
        raise fail(f"model[{pending[1]}]", "a neuron after the last weight layer",
                   "no neuron", owner)
    if not neurons:
        raise fail("model", "at least one neuron layer", "none", owner)
    net = stlsim.Network(layers, neuron=neurons, surrogate=surrogate, population=1, seed=0,
                         dtype=dtype, backend="numpy", input_shape=tuple(input_shape))
    spiking = net.spiking_layers
    # copy the peer's values into the network
    for peer_name, (key, how) in list(params.items()):
        module_name, attr = peer_name.rsplit(".", 1)
        tensor = getattr(dict(children)[module_name], attr)
        value = _array(tensor, np.float64)
        target = net.params.get(key)
        if target is None:
            continue
        if value.size == target.size:
            value = value.reshape(target.shape)
        net.params[key] = np.broadcast_to(value, target.shape).astype(dtype).copy()
    for k, (layer_index, neuron) in enumerate(zip(spiking, neurons)):
        theta = _threshold_value(neuron_modules[k], peer)
        net.params[f"{layer_index}.theta"] = np.broadcast_to(
            theta, net.params[f"{layer_index}.theta"].shape).astype(dtype).copy()
    return Conversion(net=net, peer=peer, model=model, neuron_modules=neuron_modules,
                      params={k: v for k, v in params.items() if v[0] in net.params},
                      dtype=np.dtype(dtype))


def _neuron_param_names(module, neuron):
    """Trainable parameters of a peer neuron -> (stlsim local name, how to compare)."""
    out = {}
    for name, parameter in module.named_parameters(recurse=False):
        if not parameter.requires_grad:
            continue
        local = {"threshold": "theta", "beta": "tau", "alpha": "alpha_syn", "w": "tau_w",
                 "v_threshold": "theta"}.get(name)
        if local is None:
            raise fail(f"{type(module).__name__}.{name}", "a trainable parameter stlsim models "
                       "(threshold, beta, alpha, w)", "another one", "stlsim.interop")
        how = "sum" if parameter.numel() == 1 and local == "theta" else "same"
        out[name] = (local, how)
    return out


def _threshold_value(module, peer):
    if peer == "norse":
        return _array(module.p.v_th, np.float64)
    if peer == "spikingjelly":
        return _array(module.v_threshold, np.float64)
    return _array(module.threshold, np.float64)


# --- snnTorch ---------------------------------------------------------------------------

def _snntorch_surrogate(name, module):
    import stlsim
    fn = module.spike_grad
    qualname = getattr(fn, "__qualname__", "")
    closure = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ()))) \
        if hasattr(fn, "__code__") else {}
    if getattr(fn, "__module__", None) != "snntorch.surrogate":
        qualname = ""                                     # not one of snnTorch's own
    if qualname.startswith("atan."):
        return stlsim.surrogate.ATan(float(closure.get("alpha", 2.0)))
    if qualname.startswith("fast_sigmoid."):
        return stlsim.surrogate.SuperSpike(float(closure.get("slope", 25.0)))
    raise fail(f"model[{name}].spike_grad", "snnTorch's surrogate.atan or fast_sigmoid "
               "(the surrogates stlsim has)", qualname or repr(fn), "from_snntorch")


def _snntorch_neuron(name, module):
    import snntorch as snn
    owner = "from_snntorch"
    if not isinstance(module, (snn.Leaky, snn.Synaptic)):
        return None
    if not module.init_hidden:
        raise fail(f"model[{name}]", "snnTorch neurons with init_hidden=True (the Sequential "
                   "idiom)", "init_hidden=False", owner)
    if not module.reset_delay:
        raise fail(f"model[{name}]", "reset_delay=True (snnTorch's default)", "reset_delay=False",
                   owner)
    if getattr(module, "inhibition", False) or getattr(module, "state_quant", False):
        raise fail(f"model[{name}]", "no inhibition or state quantisation", "one of them", owner)
    if float(module.graded_spikes_factor) != 1.0:
        raise fail(f"model[{name}]", "graded_spikes_factor 1", repr(float(module.graded_spikes_factor)),
                   owner)
    reset = {"subtract": "subtract_after_leak", "zero": "hard", "none": "none"}[
        module.reset_mechanism]
    beta = _array(module.beta, np.float64)
    learn_beta = isinstance(module.beta, __import__("torch").nn.Parameter)
    settings = dict(tau=float(beta) if beta.size == 1 else beta, reset=reset, detach_reset=True,
                    spike_at_threshold=False, theta_init=0.0,
                    learn_tau="factor" if learn_beta else False)
    if not learn_beta:
        settings["tau"] = np.clip(settings["tau"], 0.0, 1.0)      # snnTorch clamps beta
    if isinstance(module, snn.Synaptic):
        alpha = float(_array(module.alpha, np.float64))
        learn_alpha = isinstance(module.alpha, __import__("torch").nn.Parameter)
        settings.update(alpha_syn=float(np.clip(alpha, 0.0, 1.0)), learn_alpha_syn=learn_alpha)
    return LIF(**settings)


def from_snntorch(model, input_shape, *, dtype=np.float64):
    """The stlsim twin of a snnTorch Sequential (``Leaky``/``Synaptic`` with
    ``init_hidden=True``). Returns a ``stlsim.Network``."""
    return convert(model, input_shape, dtype=dtype, peer="snntorch").net


# --- SpikingJelly -----------------------------------------------------------------------

def _spikingjelly_surrogate(name, module):
    import stlsim
    from spikingjelly.activation_based import surrogate as sj
    fn = module.surrogate_function
    alpha = float(getattr(fn, "alpha", 1.0))
    if not getattr(fn, "spiking", True):
        raise fail(f"model[{name}].surrogate_function", "spiking=True", "spiking=False",
                   "from_spikingjelly")
    for sj_cls, ours in ((sj.Sigmoid, stlsim.surrogate.Sigmoid), (sj.ATan, stlsim.surrogate.ATan),
                         (sj.SuperSpike, stlsim.surrogate.SpikingJellySuperSpike)):
        if type(fn) is sj_cls:
            return ours(alpha)
    raise fail(f"model[{name}].surrogate_function", "SpikingJelly's Sigmoid, ATan or SuperSpike",
               type(fn).__name__, "from_spikingjelly")


def _spikingjelly_neuron(name, module):
    from spikingjelly.activation_based import neuron as sj

    from . import conventions
    owner = "from_spikingjelly"
    kinds = tuple(getattr(sj, n) for n in ("LIFNode", "ParametricLIFNode", "IFNode") if hasattr(sj, n))
    if not isinstance(module, kinds):
        return None
    if module.step_mode != "m":
        raise fail(f"model[{name}]", "step_mode='m' (whole sequences, time-major)",
                   repr(module.step_mode), owner)
    v_reset = module.v_reset
    if type(module).__name__ == "IFNode":
        leak = 0.0 if v_reset is None else float(v_reset)
        return LIF(tau=1.0, input_gain=1.0, v_leak=leak, v_reset=leak, v_init=leak,
                   reset="soft" if v_reset is None else "hard", theta_init=0.0,
                   detach_reset=bool(module.detach_reset))
    if type(module).__name__ == "ParametricLIFNode":
        q = float(_array(module.w, np.float64).reshape(-1)[0])
        tau_sj = 1.0 / (1.0 / (1.0 + math.exp(-q)))
        settings = conventions.from_spikingjelly(tau=tau_sj, decay_input=module.decay_input,
                                                 v_threshold=0.0, v_reset=v_reset,
                                                 detach_reset=bool(module.detach_reset))
        settings.pop("input_gain")
        return LIF(**{**settings, "learn_tau": "sigmoid", "tie_gain": bool(module.decay_input)})
    settings = conventions.from_spikingjelly(tau=float(module.tau), decay_input=module.decay_input,
                                             v_threshold=0.0, v_reset=v_reset,
                                             detach_reset=bool(module.detach_reset))
    return LIF(**settings)


def from_spikingjelly(model, input_shape, *, dtype=np.float64):
    """The stlsim twin of a SpikingJelly Sequential in ``step_mode="m"`` (``LIFNode``,
    ``ParametricLIFNode``, ``IFNode``). Returns a ``stlsim.Network``."""
    return convert(model, input_shape, dtype=dtype, peer="spikingjelly").net


# --- Norse ------------------------------------------------------------------------------

def _norse_surrogate(name, module):
    import stlsim
    method = module.p.method
    if method == "super":          # norse/torch/functional/superspike.py: 1 / (|x| + 1)^2
        return stlsim.surrogate.SuperSpike(1.0)
    if method == "triangle":
        return stlsim.surrogate.Triangle(float(_array(module.p.alpha, np.float64)))
    raise fail(f"model[{name}].p.method", "'super' or 'triangle'", repr(method), "from_norse")


def _norse_neuron(name, module):
    import norse.torch as norse
    torch = _torch()
    owner = "from_norse"
    if not isinstance(module, (norse.LIFBoxCell, norse.LIFCell)):
        return None
    p, dt = module.p, module.dt
    if getattr(p, "reset_method", None) is not None and \
            getattr(p.reset_method, "__name__", "") != "reset_value":
        raise fail(f"model[{name}].p.reset_method", "norse's reset_value",
                   getattr(p.reset_method, "__name__", repr(p.reset_method)), owner)
    with torch.no_grad():                        # the peer's own arithmetic (float32 constants)
        rate = float(torch.as_tensor(dt) * p.tau_mem_inv) if np.size(_array(p.tau_mem_inv,
                                                                            np.float64)) == 1 else None
        if rate is None:
            raise fail(f"model[{name}].p.tau_mem_inv", "one value per layer", "an array", owner)
        settings = dict(tau=1.0 - rate, input_gain=rate, v_leak=float(_array(p.v_leak, np.float64)),
                        v_reset=float(_array(p.v_reset, np.float64)), reset="hard",
                        theta_init=0.0, detach_reset=False, spike_at_threshold=False)
        settings["v_init"] = settings["v_leak"]
        if isinstance(module, norse.LIFCell):
            settings["alpha_syn"] = 1.0 - float(torch.as_tensor(dt) * p.tau_syn_inv)
    return LIF(**settings)


def from_norse(model, input_shape, *, dtype=np.float64):
    """The stlsim twin of a Norse ``SequentialState`` (``LIFBoxCell``, ``LIFCell``).
    Returns a ``stlsim.Network``."""
    return convert(model, input_shape, dtype=dtype, peer="norse").net


def convert(model, input_shape, *, dtype=np.float64, peer=None) -> Conversion:
    """The ``Conversion`` of a peer model (``peer`` detected from its neuron modules)."""
    owner = f"from_{peer}" if peer else "stlsim.interop.convert"
    children = _layers_of(model, owner)
    if peer is None:
        kinds = {_module_kind(m) for _, m in children} - {"torch"}
        if len(kinds) != 1 or next(iter(kinds)) not in ("snntorch", "spikingjelly", "norse"):
            raise fail("model", "a snnTorch, SpikingJelly or Norse model",
                       f"modules from {sorted(kinds) or ['torch only']}", owner)
        peer = next(iter(kinds))
    neuron_of, surrogate_of = {
        "snntorch": (_snntorch_neuron, _snntorch_surrogate),
        "spikingjelly": (_spikingjelly_neuron, _spikingjelly_surrogate),
        "norse": (_norse_neuron, _norse_surrogate)}[peer]
    return _build(children, input_shape, neuron_of, check_dtype(dtype, owner=owner), owner, peer,
                  model, surrogate_of)


# --------------------------------------------------------------------------- running --

def _run_peer(conv: Conversion, x_t, grad_output_fn):
    """Forward the peer, backward from ``grad_output_fn(output spikes)``; returns
    (spikes per neuron layer, dL/ds per neuron layer, grads by peer name)."""
    torch = _torch()
    model, peer = conv.model, conv.peer
    captured = {id(m): [] for m in conv.neuron_modules}

    def hook(module, inputs, output):
        spikes = output[0] if isinstance(output, tuple) else output
        if spikes.requires_grad:
            spikes.retain_grad()
        captured[id(module)].append(spikes)

    handles = [m.register_forward_hook(hook) for m in conv.neuron_modules]
    saved = {name: None if p.grad is None else p.grad.clone()
             for name, p in model.named_parameters()}
    try:
        model.zero_grad(set_to_none=True)
        if peer == "snntorch":
            from snntorch import utils
            utils.reset(model)
            outs = []
            for t in range(x_t.shape[0]):
                out = model(x_t[t])
                outs.append(out[0] if isinstance(out, tuple) else out)
            output = torch.stack(outs)
        elif peer == "spikingjelly":
            from spikingjelly.activation_based import functional
            functional.reset_net(model)
            output = model(x_t)
        else:
            state, outs = None, []
            for t in range(x_t.shape[0]):
                out, state = model(x_t[t], state)
                outs.append(out)
            output = torch.stack(outs)
        grad = grad_output_fn(output.detach().cpu().double().numpy())
        output.backward(torch.as_tensor(grad, dtype=output.dtype))
    finally:
        for handle in handles:
            handle.remove()
    spikes, adjoints = [], []
    for m in conv.neuron_modules:
        seq = captured[id(m)]
        whole = seq[0] if len(seq) == 1 and seq[0].shape[0] == x_t.shape[0] and peer == "spikingjelly" \
            else None
        if whole is not None:
            spikes.append(whole.detach().double().numpy())
            adjoints.append(None if whole.grad is None else whole.grad.double().numpy())
        else:
            spikes.append(torch.stack([s.detach() for s in seq]).double().numpy())
            grads = [s.grad for s in seq]
            adjoints.append(None if any(g is None for g in grads)
                            else torch.stack(grads).double().numpy())
    named = dict(model.named_parameters())
    grads = {}
    for name in conv.params:
        parameter = named.get(name)
        grads[name] = (np.zeros(tuple(parameter.shape)) if parameter is None or parameter.grad is None
                       else parameter.grad.detach().double().numpy().copy())
    for name, parameter in named.items():                # leave the user's .grad as it was
        parameter.grad = saved[name]
    return spikes, adjoints, grads


def _run_stlsim(net, x, grad_output_fn, adjoint="g"):
    from .engines import get_backend
    from .grad import bptt
    x, output, tape, rates, _, _ = net._forward(x, smooth=False, backend="numpy", engine="clock",
                                                training=False)
    grad_output = grad_output_fn(output.astype(np.float64)).astype(net.dtype)
    traces = [None] * len(net.layers)
    per_layer = bptt.run_backward(net.layers, net._layer_params(), tape, grad_output,
                                  net._call_neuron(), net.surrogate, get_backend("numpy"),
                                  traces=traces)
    index = net.spiking_layers
    spikes = [tape.spikes[i] for i in index]
    margins = [np.abs(tape.membrane[i] - tape.thetas[i]) for i in index]
    adjoints = [traces[i][adjoint] for i in index]
    return spikes, adjoints, net._flatten(per_layer), margins


# ---------------------------------------------------------------------------- report --

@dataclass
class ParamRow:
    """One parameter of the comparison."""

    name: str            # the peer's name, e.g. "1.threshold"
    key: str             # stlsim's key, e.g. "0.theta"
    shape: tuple
    max_abs: float
    relative: float
    where: tuple         # index of the largest difference
    ok: bool


@dataclass
class Report:
    """What ``compare`` found. ``ok``: spikes identical and every gradient within
    ``rtol`` (relative to the largest |gradient| of that parameter)."""

    peer: str
    dtype: str
    rtol: float
    spikes_equal: bool
    rows: list
    min_margin: float
    first_divergence: tuple | None
    first_divergence_pass: str | None
    loss: str

    @property
    def max_rel_error(self) -> float:
        return max((row.relative for row in self.rows), default=0.0)

    @property
    def worst(self) -> str | None:
        """The peer's name of the parameter with the largest relative error."""
        if not self.rows:
            return None
        return max(self.rows, key=lambda row: row.relative).name

    @property
    def ok(self) -> bool:
        return self.spikes_equal and all(row.ok for row in self.rows)

    def __str__(self) -> str:
        head = (f"stlsim vs {self.peer} ({self.dtype}, loss {self.loss}, rtol {self.rtol:.0e}): "
                f"{'OK' if self.ok else 'DIFFERENT'}; spikes "
                f"{'identical' if self.spikes_equal else 'DIFFER'}; smallest |m - theta| "
                f"{self.min_margin:.3g}")
        lines = [head, f"{'parameter':<18} {'stlsim':<12} {'shape':<14} {'max |diff|':>11} "
                       f"{'relative':>10}  where"]
        for row in self.rows:
            lines.append(f"{row.name:<18} {row.key:<12} {str(row.shape):<14} {row.max_abs:>11.3e} "
                         f"{row.relative:>10.3e}  {row.where}{'' if row.ok else '  <-- over rtol'}")
        if self.first_divergence is not None:
            lines.append(f"first divergence ({self.first_divergence_pass}): layer, t, neuron = "
                         f"{self.first_divergence}")
        if self.min_margin < 1e-6:
            lines.append("note: a membrane lies within 1e-6 of its threshold: a spike decided by "
                         "a hair is a tie between the two rounding orders, not a bug")
        return "\n".join(lines)


def _divergence(ours, theirs, rtol, backward):
    """(layer, t, neuron) of the first difference: forward in layer/time order, backward
    from the last layer and the last step."""
    order = range(len(ours) - 1, -1, -1) if backward else range(len(ours))
    for layer in order:
        a, b = ours[layer], theirs[layer]
        if a is None or b is None:
            continue
        n = int(np.prod(b.shape[2:]))                  # neurons per sample
        a = a.reshape(a.shape[0], -1).astype(np.float64)
        b = b.reshape(b.shape[0], -1)
        scale = max(float(np.max(np.abs(b))), 1e-300) if backward else 0.0
        steps = range(a.shape[0] - 1, -1, -1) if backward else range(a.shape[0])
        for t in steps:
            bad = np.abs(a[t] - b[t]) > rtol * scale
            if np.any(bad):
                return layer, t, int(np.flatnonzero(bad)[0] % n)
    return None


def compare(model, x, *, seed: int = 0, loss: str = "probe", y=None, population: int = 1,
            rtol: float | None = None, dtype=None) -> Report:
    """Run a peer model and its stlsim twin on ``x`` (T, B, *input_shape) and compare.

    ``loss``: "probe" (sum(C * output spikes), C ~ N(0, 1) seeded by ``seed``),
    "mse_rate" or "ce_rate" (stlsim's readout with labels ``y`` and ``population``; its
    dL/d(output spikes) is handed to the peer). ``dtype``: float64 by default (float32
    for snnTorch, whose spikes are float32); ``rtol``: 1e-10 in float64, 1e-5 in float32.
    """
    torch = _torch()
    from .readout import LOSSES, loss_from_rates, population_rates, rates_backward
    check_choice(loss, "loss", ("probe",) + tuple(LOSSES), "compare")
    x_np = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if x_np.ndim < 3:
        raise fail("x", "an array of shape (T, B, *input_shape)", f"shape {x_np.shape}", "compare")
    peer_kind = {_module_kind(m) for _, m in model.named_children()} - {"torch"}
    peer = next(iter(peer_kind)) if len(peer_kind) == 1 else None
    if dtype is None:
        dtype = np.float32 if peer == "snntorch" else np.float64
    dtype = np.dtype(dtype)
    # The peer model itself when it already computes in this dtype (its hooks then run, and
    # its .grad fields are restored afterwards); else a copy in that dtype (tensor hooks do
    # not survive the copy). Norse's parameter dataclasses stay float32 tensors either way.
    torch_dtype = torch.float32 if dtype == np.float32 else torch.float64
    if any(p.dtype != torch_dtype for p in model.parameters()):
        model = copy.deepcopy(model).to(torch_dtype)
    conv = convert(model, x_np.shape[2:], dtype=dtype, peer=peer)
    net = conv.net
    x_np = x_np.astype(dtype)
    rtol = RTOL[dtype] if rtol is None else float(rtol)
    T, B = x_np.shape[:2]
    n_out = int(np.prod(net.layers[-1].out_shape))
    if loss == "probe":
        probe = np.random.default_rng(seed).normal(size=(T, B, n_out))

        def grad_output_fn(output):
            return probe.reshape(output.shape)
    else:
        if y is None:
            raise fail("y", f"class labels for loss={loss!r}", "None", "compare")
        if n_out % population:
            raise fail("population", f"a divisor of the {n_out} output neurons",
                       repr(population), "compare")
        labels = np.asarray(y)

        def grad_output_fn(output):
            rates = population_rates(output.reshape(T, B, -1), population)
            _, grad_rates = loss_from_rates(rates, labels, loss)
            return rates_backward(grad_rates, T, population).reshape(output.shape)

    peer_spikes, peer_adjoints, peer_grads = _run_peer(conv, torch.as_tensor(x_np), grad_output_fn)
    # torch's .grad of a spike tensor: the total dL/ds_t (g_t) where the reset is taken in
    # Python autograd (snnTorch, Norse), the part from above (e_t) where SpikingJelly's
    # fused multi-step function keeps the reset path inside.
    spikes, adjoints, grads, margins = _run_stlsim(net, x_np, grad_output_fn,
                                                   "e" if conv.peer == "spikingjelly" else "g")
    spikes_equal = all(np.array_equal(a.reshape(b.shape), b) for a, b in zip(spikes, peer_spikes))
    rows = []
    for name, (key, how) in conv.params.items():
        ours = grads[key].astype(np.float64)
        theirs = peer_grads[name]
        if how == "sum":
            ours = np.array(ours.sum()).reshape(theirs.shape)
        ours = ours.reshape(theirs.shape) if ours.size == theirs.size else ours
        diff = np.abs(ours - theirs)
        scale = max(float(np.max(np.abs(theirs))), float(np.max(np.abs(ours))), 1e-300)
        where = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)) \
            if diff.size else ()
        relative = float(np.max(diff)) / scale if diff.size else 0.0
        rows.append(ParamRow(name=name, key=key, shape=tuple(theirs.shape),
                             max_abs=float(np.max(diff)) if diff.size else 0.0,
                             relative=relative, where=where, ok=relative <= rtol))
    divergence, which = None, None
    if not spikes_equal:
        divergence, which = _divergence([s.reshape(p.shape) for s, p in zip(spikes, peer_spikes)],
                                        peer_spikes, 0.0, backward=False), "forward"
    else:
        divergence = _divergence([a.reshape(p.shape) if p is not None else None
                                  for a, p in zip(adjoints, peer_adjoints)], peer_adjoints, rtol,
                                 backward=True)
        which = "backward" if divergence is not None else None
    min_margin = min(float(np.min(m)) for m in margins)
    return Report(peer=conv.peer, dtype=dtype.name, rtol=rtol, spikes_equal=spikes_equal,
                  rows=rows, min_margin=min_margin, first_divergence=divergence,
                  first_divergence_pass=which, loss=loss)
