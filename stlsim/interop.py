"""stlsim as a gradient oracle for snnTorch, SpikingJelly and Norse models.

    import stlsim.interop as interop          # torch is imported only by the calls below
    net = interop.from_snntorch(model, input_shape=(784,))     # also from_spikingjelly, from_norse
    rep = interop.compare(model, x, seed=0)   # x: (T, B, *input_shape), numpy or torch
    rep.ok, rep.spikes_equal, rep.max_rel_error, rep.worst, rep.first_divergence
    print(rep)                                # one row per parameter

A converter reads the peer's usual feed-forward idiom (a ``torch.nn.Sequential`` of
``nn.Linear`` / ``nn.Conv2d`` / BatchNorm1d/2d / pooling / Dropout / ``nn.Flatten`` and the
peer's neurons: snnTorch with ``init_hidden=True``, SpikingJelly in ``step_mode="m"`` or
``"s"``, Norse ``SequentialState``; or the graph executor a peer's NIR importer returns,
read as the chain of its modules by ``as_chain``) and returns a ``stlsim.Network`` with the same
parameters (copied) and the peer's exact neuron conventions (``stlsim.conventions``,
``docs/model.md`` Sections 8 and 9), or raises an error naming the module it cannot
convert and why. Dispatch is on exact types: a subclass of a known module is refused by
name. Layers between a weight layer and its neuron become a ``SynapseBlock`` ((L1b));
BatchNorm in training takes per-step or pooled batch statistics ((BN1), (BN1p)); Dropout
in training replays the peer's own masks ((D1)); snnTorch's graded spikes are a
``Scale`` ((G1)); its ``reset_delay=False`` the immediate resets ((L2i), (L4i)). A leaky-integrator readout after the last spiking layer (Norse's
``LICell`` / ``LI`` / ``LILinearCell``, or snnTorch's ``mem`` with ``output="membrane"``)
becomes a ``stlsim.readout.MembraneReadout`` ((LI1)-(LI3)).

``compare`` runs both on the same input, takes a loss on the output (a seeded random
linear probe ``sum(C * output)``; stlsim's ``"mse_rate"``/``"ce_rate"`` readout of the
spikes, or ``"ce_membrane_sum"``/``"ce_membrane_max"`` on a readout's membrane, with labels
``y``; its gradient is handed to the peer), and compares the forward spikes of every layer
(and the readout's membrane), the adjoints dL/ds_t and dL/dI_t of every layer and step (as
torch's ``.grad`` of a spike tensor and of a neuron's input hold them), and the gradient of
every trainable parameter (a shared peer value against the sum over the neurons it stands
for, (O1)). stlsim's side is the NumPy reference, float64 by default. In float32 a
difference is a bug only beyond ``ROUNDOFF_MULTIPLE`` times the model's own round-off,
measured by running the twin in float64 on the same weights and input ((O3), per layer
(O3l)); where every error is already within ``rtol`` that run is skipped, since it could
not change the verdict.

Peer quirks handled here (checked against the installed peers' source):
snnTorch 1.0's surrogates return float32 spikes, so its models run in float32 only;
Norse multiplies its constants by the Python float dt in their own dtype (float32
defaults stay float32, float64 ones do not); Norse's trained ``LIFParameters`` tensors
are not module parameters (found and restored here); SpikingJelly's thresholds are
floats (no gradient) unless a tensor is given; ``snntorch.utils.reset`` resets every
instance ever built, so each neuron is reset by its own ``reset_mem``.
"""
from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from ._checks import check_choice, check_dtype, fail, seed_streams
from .neurons import LIF, Adaptation

__all__ = ["from_snntorch", "from_spikingjelly", "from_norse", "compare", "Report", "ParamRow",
           "Conversion", "convert", "as_chain"]

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
    step_mode: str = "s"                      # "m": the peer takes the whole sequence at once
    training: bool = False                    # a BatchNorm in training mode: batch statistics
    readout: object = None                    # a stlsim.readout.MembraneReadout, or None
    readout_module: object = None             # the peer module whose membrane is the output
    dropouts: list = field(default_factory=list)   # (peer Dropout in training, its twin layer)
    dropout_masks: dict = field(default_factory=dict)   # id(peer Dropout) -> its masks, last run
    spike_scales: list = field(default_factory=list)    # per spiking layer: graded factor c or None
    output_scale: object = None               # c of the output layer's graded spikes (G1), or None
    output: str = "spikes"                    # what the loss reads: "spikes" or "membrane"


def _module_kind(module) -> str:
    name = type(module).__module__
    for peer in ("snntorch", "spikingjelly", "norse"):
        if name.startswith(peer):
            return peer
    return "torch" if name.startswith("torch") else name


def _fx_chain(model, owner):
    """(name, module) of a ``torch.fx.GraphModule`` (snnTorch's and SpikingJelly's NIR
    importers build one through ``nirtorch.nir_to_torch``) in the graph's topological order,
    when each module reads the one before (or its first output, ``getitem(out, 0)``)."""
    import operator
    nodes = list(model.graph.nodes)
    calls = [n for n in nodes if n.op == "call_module"]
    placeholders = [n for n in nodes if n.op == "placeholder"]

    def item(node):                 # the index of ``out[i]`` (a function or method call)
        if (node.op == "call_function" and node.target is operator.getitem) or (
                node.op == "call_method" and node.target == "__getitem__"):
            return node.args[1]
        return None

    def source(arg):
        while hasattr(arg, "op") and item(arg) == 0:
            arg = arg.args[0]
        return arg

    previous = placeholders[0] if placeholders else None
    for node in calls:
        arg = source(node.args[0]) if node.args else None
        users = [u for u in node.users if item(u) in (None, 0)]     # out[1]: the state
        if arg is not previous or len(users) > 1:
            raise fail("model", "a NIR graph executor whose modules form one chain (each reads "
                       "the one before it)", f"module {node.target!r} reading "
                       f"{getattr(arg, 'name', arg)!r} (after {getattr(previous, 'name', None)!r})"
                       f" with {len(users)} readers", owner)
        previous = node
    output = [n for n in nodes if n.op == "output"]
    result = output[0].args[0] if output else None
    result = result[0] if isinstance(result, (tuple, list)) else result
    if calls and source(result) is not calls[-1]:
        raise fail("model", "a NIR graph executor that returns its last module's output",
                   f"output {getattr(result, 'name', result)!r}", owner)
    return [(str(node.target), model.get_submodule(str(node.target))) for node in calls]


def _executor_chain(model, owner):
    """(name, module) of a ``nirtorch`` ``GraphExecutor`` (Norse's NIR importer) in its
    execution order (``get_execution_order``), when every node feeds only the next."""
    order = list(model.execution_order)
    for node, after in zip(order, order[1:] + [None]):
        outgoing = list(node.outgoing_nodes)
        if outgoing != ([] if after is None else [after]):
            raise fail("model", "a NIR graph executor whose modules form one chain",
                       f"node {node.name!r} feeding {[n.name for n in outgoing]}", owner)
    return [(node.name, node.elem) for node in order]


def as_chain(model, owner="stlsim.interop.as_chain"):
    """A peer's NIR-importer executor as the chain of its own modules, or ``model`` itself.

    snnTorch (``snntorch.import_nir.import_from_nir``) and SpikingJelly
    (``spikingjelly/activation_based/nir_exchange/from_nir.py``) return a ``torch.fx``
    ``GraphModule``, Norse (``norse.torch.from_nir``) a ``nirtorch`` ``GraphExecutor``.
    Their modules, in the graph's topological order, go into a ``torch.nn.Sequential``
    (Norse: ``SequentialState``) holding the same module objects, so that the converters
    read them and a backward lands on the executor's own parameters. The input and output
    ``Identity`` nodes are left out; SpikingJelly's ``_NIRStatefulModule`` is unwrapped to
    the neuron it holds (its ``functional_forward`` runs that neuron's own step). A graph
    that is not one chain (a skip, a recurrence, a fan-out) is refused by name."""
    torch = _torch()
    if isinstance(model, torch.fx.GraphModule):
        chain = _fx_chain(model, owner)
    elif type(model).__name__ == "GraphExecutor" and type(model).__module__.startswith("nirtorch"):
        chain = _executor_chain(model, owner)
    else:
        return model
    modules = []
    for name, module in chain:
        if type(module).__name__ == "_NIRStatefulModule" and hasattr(module, "module"):
            module = module.module
        if type(module) is torch.nn.Identity:
            continue
        modules.append((name.replace(".", "_"), module))
    if any(_module_kind(m) == "norse" for _, m in modules):
        from norse.torch import SequentialState
        sequence = SequentialState(*(m for _, m in modules))
    else:
        from collections import OrderedDict
        sequence = torch.nn.Sequential(OrderedDict(modules))
    return sequence


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


def _wrappers_of(torch_cls):
    """The peers' own subclasses of a torch layer that compute exactly what it computes:
    SpikingJelly's step-mode wrappers (``spikingjelly/activation_based/layer/
    stateless_wrapper.py`` and ``bn.py``: ``seq_to_ann_forward`` folds T into the batch and
    calls the torch layer; for BatchNorm in eval mode that is the per-step map)."""
    try:
        from spikingjelly.activation_based.layer import bn, stateless_wrapper
    except ImportError:
        return ()
    return tuple(c for module in (stateless_wrapper, bn) for c in vars(module).values()
                 if isinstance(c, type) and c.__bases__[:1] == (torch_cls,))


def _is(module, torch_cls, name, owner) -> bool:
    """Exact-type dispatch: ``module`` is a ``torch_cls`` (or a peer's wrapper of it); a
    subclass of it that stlsim does not know may compute anything, and is refused."""
    if type(module) is torch_cls or type(module) in _wrappers_of(torch_cls):
        return True
    if isinstance(module, torch_cls):
        raise fail(f"model[{name}]", f"a torch.nn.{torch_cls.__name__} (or SpikingJelly's wrapper "
                   "of it)", f"{_qualified(module)}, a subclass that may compute something else",
                   owner)
    return False


def _weight_layer(torch, name, module, owner):
    """(stlsim layer, {peer param: stlsim local name}) for a Linear / Conv2d."""
    import stlsim
    if _is(module, torch.nn.Linear, name, owner):
        layer = stlsim.Dense(module.in_features, module.out_features, bias=module.bias is not None)
        names = {"weight": "weight", "bias": "bias"}
    elif _is(module, torch.nn.Conv2d, name, owner):
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


def _shape_layer(torch, name, module, owner, dropouts=None):
    """The stlsim layer of a pooling, Flatten or Dropout module, else None. A Dropout in
    training is appended to ``dropouts`` with its twin, which replays the peer's masks."""
    import stlsim
    if _is(module, torch.nn.Flatten, name, owner):
        if module.start_dim not in (1, -3, -2) and module.end_dim != -1:
            raise fail(f"model[{name}]", "nn.Flatten over every axis of a sample",
                       repr(module), owner)
        return stlsim.Flatten()
    for torch_cls, stlsim_cls in ((torch.nn.AvgPool2d, stlsim.AvgPool2d),
                                  (torch.nn.MaxPool2d, stlsim.MaxPool2d)):
        if _is(module, torch_cls, name, owner):
            padding = module.padding if isinstance(module.padding, tuple) else (module.padding,) * 2
            if any(padding) or module.ceil_mode or (torch_cls is torch.nn.AvgPool2d
                                                     and not module.count_include_pad):
                raise fail(f"model[{name}]", "pooling without padding or ceil_mode",
                           repr(module), owner)
            if torch_cls is torch.nn.MaxPool2d and module.dilation not in (1, (1, 1)):
                raise fail(f"model[{name}]", "MaxPool2d with dilation 1", repr(module), owner)
            return stlsim_cls(module.kernel_size, module.stride)
    if _is_dropout(torch, module, name, owner):
        if module.training and float(module.p) > 0:
            if dropouts is None:
                raise fail(f"model[{name}]", "a Dropout in eval mode here (the identity)",
                           "a Dropout in training mode", owner)
            layer = stlsim.Dropout(float(module.p))     # replays the peer's masks (9.9)
            dropouts.append((module, layer))
            return layer
        # eval: the identity, also when another module in training runs the twin in training
        return stlsim.Dropout(0.0)
    return None


def _is_dropout(torch, module, name, owner) -> bool:
    if _is(module, torch.nn.Dropout, name, owner):
        return True
    try:                         # spikingjelly/activation_based/layer/dropout.py: a MemoryModule
        from spikingjelly.activation_based.layer import Dropout as SJDropout
    except ImportError:
        return False
    return type(module) is SJDropout


def _batchnorm(torch, name, module, owner, pending, step_mode="s", training=False):
    """``(eps, momentum, fused)`` of a BatchNorm1d/2d between a weight layer and its neuron,
    else an error naming it; None if ``module`` is no BatchNorm. ``fused``: a BatchNorm2d
    right after a Conv2d whose statistics are per step becomes stlsim's Conv2d(batchnorm=
    True); any other is a ``BatchNorm`` part of the block. In training mode the statistics
    are per step where the peer calls the model once per step, pooled over T and B where it
    takes the whole sequence (SpikingJelly's multi-step layers: docs/model.md (BN1p))."""
    if not isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        return None
    if not (_is(module, torch.nn.BatchNorm2d, name, owner) or _is(module, torch.nn.BatchNorm1d,
                                                                   name, owner)):
        raise fail(f"model[{name}]", "a BatchNorm1d or BatchNorm2d", _qualified(module), owner)
    if pending is None:
        raise fail(f"model[{name}]", "a BatchNorm between a weight layer and its neuron",
                   "one after no weight layer", owner)
    if not module.affine or not module.track_running_stats:
        raise fail(f"model[{name}]", "a BatchNorm with affine=True and running statistics",
                   repr(module), owner)
    if module.momentum is None:
        raise fail(f"model[{name}].momentum", "a number (torch's cumulative average, momentum=None, "
                   "is not modelled)", "None", owner)
    pooled = module.training and step_mode == "m"
    # stlsim's Conv2d(batchnorm=True) follows the twin's training flag, which is on when any
    # module trains: a BatchNorm in another mode is a part with its mode fixed
    fused = (not pending.parts and isinstance(module, torch.nn.BatchNorm2d) and not pooled
             and type(pending.weight_module).__name__ == "Conv2d" and module.training == training)
    return float(module.eps), float(module.momentum), fused, pooled


@dataclass
class _Group:
    """One stlsim layer with neurons: the peer's weight layer, what follows it up to the
    neuron (BatchNorm, pooling, dropout), and the neuron."""

    index: int
    weight_name: str
    weight_module: object
    parts: list                     # stlsim layers after the weight layer (a SynapseBlock's)
    batchnorm: tuple = None         # (peer name, module) of a BatchNorm fused into a Conv2d
    part_params: list = field(default_factory=list)   # (block part index, peer name, module)
    scale_index: int | None = None  # the Scale layer of graded spikes (-1: the output's)
    neuron_name: str = ""
    neuron_module: object = None

    @property
    def prefix(self) -> str:        # local names of the weight layer's parameters
        return "0." if self.parts else ""


def _segments(children, neuron_of_module, owner, peer, step_mode="s", training=False, dropouts=None):
    """Split the peer's modules into stlsim layers: shape layers as they come, and each
    weight layer (Linear/Conv2d) with what follows it up to its neuron (BatchNorm, pooling,
    dropout: a ``SynapseBlock``, docs/model.md (L1b)). Returns ``(layers, groups)``: the
    stlsim layers (not yet built) and a ``_Group`` per spiking layer."""
    import stlsim

    from .layers.batchnorm import BatchNorm
    from .layers.block import SynapseBlock
    from .layers.scale import Scale
    torch = _torch()
    layers, groups = [], []
    pending = None                              # the _Group being collected
    for name, module in children:
        layer, _ = _weight_layer(torch, name, module, owner)
        if layer is not None:
            if pending is not None:
                raise fail(f"model[{name}]", "a neuron after each Linear/Conv2d (stlsim's "
                           "Dense and Conv2d carry their LIF neurons)",
                           f"{type(module).__name__} right after model[{pending.weight_name}]", owner)
            pending = _Group(len(layers), name, module, [])
            layers.append(layer)
            continue
        if pending is None and _is_neuron(module, peer, name, owner) and \
                hasattr(module, "input_weights") and hasattr(module, "hidden_size"):
            # a Norse recurrent cell: its own input weights, recurrence and neurons
            import stlsim
            layers.append(stlsim.Dense(int(module.input_size), int(module.hidden_size),
                                     recurrent="all"))
            groups.append(_Group(len(layers) - 1, name, module, [], neuron_name=name,
                                 neuron_module=module))
            continue
        if _is_neuron(module, peer, name, owner):
            if pending is None:
                raise fail(f"model[{name}]", "a neuron right after a Linear or Conv2d",
                           f"{type(module).__name__} after no weight layer", owner)
            pending.neuron_name, pending.neuron_module = name, module
            recurrence = _recurrence(module, name, owner)
            if recurrence is not None:
                if pending.parts:
                    raise fail(f"model[{name}]", "a recurrent neuron right after a Linear",
                               "pooling, BatchNorm or dropout before it", owner)
                layers[pending.index] = _recurrent_dense(layers[pending.index], module, name,
                                                         recurrence[0], recurrence[1], owner)
            if pending.parts:
                layers[pending.index] = SynapseBlock([layers[pending.index]] + pending.parts)
            groups.append(pending)
            if _graded(module):                      # snnTorch's graded spikes: (G1) after it
                if type(module) not in _snntorch_known()[:2]:
                    raise fail(f"model[{name}].graded_spikes_factor", "1 for a recurrent neuron "
                               "(its own graded spikes feed back; not modelled)",
                               repr(_array(module.graded_spikes_factor, np.float64).tolist()), owner)
                layers.append(Scale())
                pending.scale_index = len(layers) - 1
            pending = None
            continue
        bn = _batchnorm(torch, name, module, owner, pending, step_mode, training)
        if bn is not None:
            eps, momentum, fused, pooled = bn
            if fused:
                weight = layers[pending.index]
                layers[pending.index] = stlsim.Conv2d(
                    weight.in_channels, weight.out_channels, weight.kernel_size, weight.stride,
                    weight.padding, bias=weight.bias, batchnorm=True, bn_eps=eps, bn_momentum=momentum)
                pending.batchnorm = (name, module)
            else:                                        # a part of the block (BN1), (BN1p)
                pending.parts.append(BatchNorm(module.num_features, eps=eps, momentum=momentum,
                                               statistics="pooled" if pooled else "per_step",
                                               mode="train" if module.training else "eval"))
                pending.part_params.append((len(pending.parts), name, module))
            continue
        shape_layer = _shape_layer(torch, name, module, owner, dropouts)
        if shape_layer is not None:
            if pending is not None:                     # between the weights and the neuron
                pending.parts.append(shape_layer)
            else:
                layers.append(shape_layer)
            continue
        raise fail(f"model[{name}]", f"a layer or {peer} neuron stlsim can convert (Linear, Conv2d, "
                   "BatchNorm2d, AvgPool2d, MaxPool2d, Dropout, Flatten and the neurons of "
                   "stlsim.conventions.names())", _qualified(module), owner)
    if pending is not None:
        raise fail(f"model[{pending.weight_name}]", "a neuron after the last weight layer",
                   "no neuron", owner)
    if not groups:
        raise fail("model", "at least one neuron layer", "none", owner)
    if groups[-1].scale_index is not None:       # the output's (G1) stays outside the Network
        layers.pop()
        groups[-1].scale_index = -1
    return layers, groups


def _recurrence(module, name, owner):
    """The recurrence of a peer neuron module, docs/model.md (L1r): None (feed-forward), or
    ``(kind, bias, {peer attribute: (stlsim local name, tensor)})`` for snnTorch's
    ``RLeaky`` / ``RSynaptic`` (``snntorch/_neurons/rleaky.py``: ``recurrent(spk)``, an
    ``nn.Linear`` with bias, or ``RecurrentOneToOne``: ``spk * V``) and Norse's recurrent
    cells (``norse/torch/module/snn.py`` ``SNNRecurrentCell``: ``input_weights``,
    ``recurrent_weights``, no bias)."""
    if _module_kind(module) == "snntorch" and type(module) in _snntorch_known()[2:]:
        if not module.all_to_all:
            return "one", False, {}            # V: a neuron parameter (_NEURON_PARAMS)
        recurrent = module.recurrent
        if type(recurrent) is not _torch().nn.Linear:
            raise fail(f"model[{name}]", "a linear or one-to-one recurrence (stlsim's Dense)",
                       f"a {type(recurrent).__name__} recurrence (conv2d_channels, kernel_size)",
                       owner)
        mapping = {"recurrent.weight": ("recurrent", recurrent.weight)}
        if recurrent.bias is not None:
            mapping["recurrent.bias"] = ("recurrent_bias", recurrent.bias)
        return "all", recurrent.bias is not None, mapping
    if hasattr(module, "recurrent_weights") and hasattr(module, "input_weights"):
        return "all", False, {"input_weights": ("weight", module.input_weights),
                              "recurrent_weights": ("recurrent", module.recurrent_weights)}
    return None


def _recurrent_dense(layer, module, name, kind, bias, owner):
    """The feed-forward ``Dense`` of a peer's weight layer, rebuilt with the neuron's
    recurrence (stlsim's recurrent weights belong to the layer)."""
    import stlsim
    if type(layer) is not stlsim.Dense:
        raise fail(f"model[{name}]", "a recurrent neuron right after a Linear (stlsim's "
                   "recurrent layer is a Dense)", f"{type(layer).__name__} before it", owner)
    return stlsim.Dense(layer.in_features, layer.out_features, bias=layer.bias,
                        recurrent=kind, recurrent_bias=bias)


def _qualified(module) -> str:
    return f"{type(module).__module__}.{type(module).__name__}"


def _build(children, input_shape, neuron_of_module, dtype, owner, peer, model,
           surrogate_of_module, step_mode="s", training=False):
    """Walk the peer's modules (``_segments``), learn every layer's shape, then build each
    layer's LIF from its peer neuron and copy the peer's values into the network."""
    import stlsim

    from .layers.shape import resolve_shapes
    dropouts = []
    layers, groups = _segments(children, neuron_of_module, owner, peer, step_mode, training, dropouts)
    resolve_shapes(layers, input_shape)          # every layer's out_shape (Network redoes it)
    neurons, neuron_modules, params, surrogates, buffers = [], [], {}, [], {}
    graded_factors, k_layer = {}, 0               # spiking layer -> (key, peer tensor, shape)
    for group in groups:
        name, module, index = group.neuron_name, group.neuron_module, group.index
        shape = tuple(layers[index].out_shape)
        neuron = neuron_of_module(name, module, shape)
        neurons.append(neuron)
        neuron_modules.append(module)
        surrogates.append(surrogate_of_module(name, module))     # one per layer
        weight_shape = tuple(layers[index].parts[0].out_shape) if group.parts else shape
        local = f"{index}.{group.prefix}"
        for attr in ("weight", "bias"):
            tensor = getattr(group.weight_module, attr, None)
            if tensor is not None and group.weight_module is not module:
                params[f"{group.weight_name}.{attr}"] = _Mapped(f"{local}{attr}", weight_shape, tensor)
        recurrence = _recurrence(module, name, owner)
        for attr, (local_name, tensor) in ({} if recurrence is None else recurrence[2]).items():
            mask = None
            if local_name == "recurrent" and getattr(module, "autapses", True) is False:
                mask = 1.0 - np.eye(shape[0])       # Norse zeroes the diagonal's gradient
            params[f"{name}.{attr}"] = _Mapped(f"{index}.{local_name}", weight_shape, tensor,
                                               mask=mask)
        if group.batchnorm is not None:
            bn_name, bn = group.batchnorm
            for attr in ("weight", "bias"):
                params[f"{bn_name}.{attr}"] = _Mapped(f"{local}bn_{attr}", weight_shape,
                                                      getattr(bn, attr))
            buffers[f"{local}bn_running_mean"] = bn.running_mean
            buffers[f"{local}bn_running_var"] = bn.running_var
        for k, part_name, part in group.part_params:             # a BatchNorm part of the block
            part_shape = tuple(layers[index].parts[k].out_shape)
            for attr in ("weight", "bias"):
                params[f"{part_name}.{attr}"] = _Mapped(f"{index}.{k}.{attr}", part_shape,
                                                        getattr(part, attr))
            buffers[f"{index}.{k}.running_mean"] = part.running_mean
            buffers[f"{index}.{k}.running_var"] = part.running_var
        for attr, (local_name, tensor, scale) in _neuron_param_names(module, name).items():
            params[f"{name}.{attr}"] = _Mapped(f"{index}.{local_name}", shape, tensor, scale,
                                               copy=scale == 1.0)
        if group.scale_index is not None:            # graded spikes (G1): the factor c
            key = "output.scale" if group.scale_index == -1 else f"{group.scale_index}.scale"
            graded_factors[k_layer] = (key, module.graded_spikes_factor, shape)
            params[f"{name}.graded_spikes_factor"] = _Mapped(key, shape, module.graded_spikes_factor)
        k_layer += 1
    net = stlsim.Network(layers, neuron=neurons, surrogate=surrogates, population=1, seed=0,
                         dtype=dtype, backend="numpy", input_shape=tuple(input_shape))
    spike_scales = [None] * len(groups)
    output_scale = None
    for k, (key, tensor, shape) in graded_factors.items():
        value = _to_stlsim_shape(_array(tensor, np.float64), shape, shape)
        spike_scales[k] = value
        if key == "output.scale":
            output_scale = value.astype(dtype)
        else:
            net.params[key] = value.astype(dtype)
    for peer_name, mapped in list(params.items()):     # copy the peer's values into the network
        if mapped.key == "output.scale":
            continue
        target = net.params.get(mapped.key)
        if target is None or mapped.tensor is None:
            del params[peer_name]
            continue
        if not mapped.copy:                  # a rate (Norse tau_mem_inv): the LIF holds its value
            continue
        value = _array(mapped.tensor, np.float64)
        net.params[mapped.key] = _to_stlsim_shape(value, mapped.layer_shape, target.shape) \
            .astype(dtype)
    for key, tensor in buffers.items():
        net.buffers[key] = _array(tensor, np.float64).astype(dtype)
    params = {name: mapped for name, mapped in params.items() if mapped.tensor.requires_grad}
    for k, layer_index in enumerate(net.spiking_layers):
        theta = _threshold_value(neuron_modules[k], peer)
        key = f"{layer_index}.theta"
        net.params[key] = _to_stlsim_shape(theta, net.layers[layer_index].out_shape,
                                           net.params[key].shape).astype(dtype)
    return Conversion(net=net, peer=peer, model=model, neuron_modules=neuron_modules,
                      params=params, dtype=np.dtype(dtype), training=training, dropouts=dropouts,
                      spike_scales=spike_scales, output_scale=output_scale)


@dataclass(frozen=True, eq=False)
class _Mapped:
    """Where a peer parameter lives in the twin: its stlsim key, and the shape of the
    neurons of its layer (a per-channel or per-layer peer value is broadcast to them)."""

    key: str
    layer_shape: tuple
    tensor: object = None          # the peer's tensor (its .grad is read and restored)
    scale: float = 1.0             # peer gradient = scale * stlsim's gradient
    copy: bool = True              # copy the peer's value into net.params[key]
    mask: object = None            # peer gradient = mask * that (Norse's autapse hook)


def _to_stlsim_shape(value, layer_shape, target_shape):
    """A peer value as the stlsim parameter of ``target_shape``: reshaped when the sizes
    agree, else broadcast over the layer's neurons as torch broadcasts it."""
    value = np.asarray(value, dtype=np.float64)
    size = int(np.prod(target_shape))
    if value.size == size:
        return value.reshape(target_shape).copy()
    return np.broadcast_to(value, tuple(layer_shape)).reshape(target_shape).copy()


def _to_peer_shape(grad, layer_shape, peer_shape):
    """stlsim's gradient of a parameter as the peer's: reshaped when the sizes agree, else
    summed over the neurons a shared peer value stands for (B5), e.g. a (C, 1, 1)
    threshold over H and W."""
    grad = np.asarray(grad, dtype=np.float64)
    if grad.size == int(np.prod(peer_shape)):
        return grad.reshape(peer_shape)
    return _sum_to_shape(grad.reshape(layer_shape), tuple(peer_shape))


def _sum_to_shape(value, shape):
    """Sum ``value`` down to ``shape`` (the reverse of numpy/torch broadcasting)."""
    extra = value.ndim - len(shape)
    value = value.sum(axis=tuple(range(extra))) if extra > 0 else value
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and value.shape[i] != 1)
    return value.sum(axis=axes, keepdims=True).reshape(shape)


# Trainable parameters of the peers' neurons -> the stlsim parameter each one is.
_NEURON_PARAMS = {"threshold": "theta", "beta": "tau", "alpha": "alpha_syn", "w": "tau_w",
                  "v_threshold": "theta", "V": "recurrent"}


def _neuron_param_names(module, name) -> dict:
    """Trained parameters of a peer neuron module -> ``(stlsim local name, tensor, scale)``:
    the peer's gradient is ``scale`` times stlsim's (summed to the peer's shape)."""
    out = {}
    for attr, parameter in module.named_parameters(recurse=False):
        if not parameter.requires_grad or attr in ("input_weights", "recurrent_weights",
                                                   "graded_spikes_factor"):
            continue         # a Norse recurrent cell's weights: _recurrence; (G2): a Scale's
        local = _NEURON_PARAMS.get(attr)
        if local is None:
            raise fail(f"model[{name}].{attr}", "a trained parameter stlsim models (threshold, "
                       "beta, alpha, w, v_threshold, V)", f"a trained {attr!r}", "stlsim.interop")
        out[attr] = (local, parameter, 1.0)
    out.update(_norse_trained(module, name))
    return out


def _threshold_value(module, peer):
    if peer == "norse":
        return _array(module.p.v_th, np.float64)
    if peer == "spikingjelly":
        return _array(module.v_threshold, np.float64)
    return _array(module.threshold, np.float64)


def _per_neuron(value, shape, what, owner):
    """A peer's per-neuron (or per-channel) value as one float, or a flat array over the
    layer's neurons (broadcast as torch broadcasts it against the layer's output)."""
    value = np.asarray(value, dtype=np.float64)
    if value.size == 1:
        return float(value.reshape(-1)[0])
    try:
        return np.broadcast_to(value, tuple(shape)).reshape(-1).copy()
    except ValueError:
        raise fail(what, f"one value, or values that broadcast over the layer's neurons {tuple(shape)}",
                   f"shape {value.shape}", owner) from None


def _refuse_subclass(module, name, known, owner, why):
    """A subclass of a neuron stlsim converts may compute anything: refuse it by name."""
    raise fail(f"model[{name}]", f"exactly one of {', '.join(k.__name__ for k in known)} "
               f"({why})", f"{_qualified(module)}, a subclass with its own firing rule or forward",
               owner)


# --- snnTorch ---------------------------------------------------------------------------

def _snntorch_known():
    import snntorch as snn
    return (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic)


def _snntorch_synaptic():
    import snntorch as snn
    return (snn.Synaptic, snn.RSynaptic)


def _snntorch_is_neuron(module, name, owner):
    from snntorch._neurons.neurons import SpikingNeuron
    known = _snntorch_known()
    if type(module) in known:
        return True
    if isinstance(module, SpikingNeuron):
        _refuse_subclass(module, name, known, owner, "snntorch/_neurons/leaky.py, synaptic.py: "
                         "the conventions of stlsim.conventions.names()")
    return False


# snnTorch's surrogate factories (snntorch/surrogate.py: each returns a closure ``inner``
# over its arguments) -> (stlsim surrogate, the closure variables it takes, in order).
_SNNTORCH_SURROGATES = {
    "atan": ("ATan", ("alpha",), (2.0,)),
    "fast_sigmoid": ("SuperSpike", ("slope",), (25.0,)),
    "sigmoid": ("Sigmoid", ("slope",), (25.0,)),
    "straight_through_estimator": ("StraightThrough", (), ()),
    "triangular": ("SignedConstant", ("threshold",), (1.0,)),
    "heaviside": ("SpikeGate", (), ()),
    "spike_rate_escape": ("SpikeRateEscape", ("slope", "beta"), (25.0, 1.0)),
    "SFS": ("SparseFastSigmoid", ("slope", "B"), (25.0, 1.0)),
}


def _snntorch_surrogate(name, module):
    import stlsim
    fn = module.spike_grad
    qualname = getattr(fn, "__qualname__", "")
    closure = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ()))) \
        if hasattr(fn, "__code__") else {}
    factory = qualname.split(".<locals>.")[0] if qualname.endswith(".<locals>.inner") else ""
    if getattr(fn, "__module__", None) != "snntorch.surrogate" or factory not in _SNNTORCH_SURROGATES:
        raise fail(f"model[{name}].spike_grad", "one of snnTorch's deterministic surrogates ("
                   f"{', '.join(_SNNTORCH_SURROGATES)}; SSO is stochastic, LSO calls SSO's "
                   "function in snnTorch 1.0 and fails, custom_surrogate is unknown)",
                   qualname or repr(fn), "from_snntorch")
    cls_name, arguments, defaults = _SNNTORCH_SURROGATES[factory]
    values = [float(np.asarray(closure.get(a, d))) for a, d in zip(arguments, defaults)]
    return getattr(stlsim.surrogate, cls_name)(*values)


def _graded(module) -> bool:
    """snnTorch's graded spikes: a factor other than 1, or a trained one (G1)."""
    factor = getattr(module, "graded_spikes_factor", None)
    if factor is None or _module_kind(module) != "snntorch":
        return False
    return bool(getattr(factor, "requires_grad", False)) or bool(np.any(_array(factor, np.float64) != 1.0))


def _snntorch_neuron(name, module, shape):
    torch = _torch()
    owner = "from_snntorch"
    if not module.init_hidden:
        raise fail(f"model[{name}]", "snnTorch neurons with init_hidden=True (the Sequential "
                   "idiom)", "init_hidden=False", owner)
    if getattr(module, "inhibition", False) or getattr(module, "state_quant", False):
        raise fail(f"model[{name}]", "no inhibition or state quantisation", "one of them", owner)
    reset = {"subtract": "subtract_after_leak", "zero": "hard", "none": "none"}[
        module.reset_mechanism]
    if type(module) in _snntorch_known()[1:] and reset == "hard":
        # (RLeaky's _base_zero too: base - reset * base, the whole new membrane)
        # snntorch/_neurons/synaptic.py _base_zero: mem = (1 - reset)(beta mem + syn), the
        # new membrane zeroed with this step's input in it (L2z); Leaky's zero reset keeps
        # the input ((L4h) detached).
        reset = "zero_after_leak"
    detach_reset = True
    if not module.reset_delay and reset != "none":
        # snntorch/_neurons/leaky.py forward: mem - (spk - reset) * threshold (or * mem) right
        # after fire, spk attached, reset detached: (L2i), (L4i) of docs/model.md 9.10.
        leaky, synaptic = _snntorch_known()[:2]
        if type(module) is not leaky and not (type(module) is synaptic
                                              and reset == "subtract_after_leak"):
            raise fail(f"model[{name}]", "reset_delay=False only on a Leaky, or on a Synaptic "
                       "with reset_mechanism='subtract' (docs/model.md (L2i), (L4i))",
                       f"{type(module).__name__}(reset_mechanism={module.reset_mechanism!r}, "
                       "reset_delay=False)", owner)
        reset = "subtract_no_delay" if reset == "subtract_after_leak" else "zero_no_delay"
        detach_reset = False
    learn_beta = isinstance(module.beta, torch.nn.Parameter) and module.beta.requires_grad
    beta = _per_neuron(_array(module.beta, np.float64), shape, f"model[{name}].beta", owner)
    # snnTorch clamps beta to [0, 1] in every step (beta.clamp(0, 1)); a trained raw value
    # outside keeps its place in net.params (copied by _build), the clamp's zero gradient too.
    settings = dict(tau=np.clip(beta, 0.0, 1.0), reset=reset, detach_reset=detach_reset,
                    spike_at_threshold=False, theta_init=0.0,
                    learn_tau="factor" if learn_beta else False)
    if type(module) in _snntorch_synaptic():
        # one alpha, or one per neuron (L1s); snnTorch clamps it to [0, 1] in every step
        alpha = _per_neuron(_array(module.alpha, np.float64), shape, f"model[{name}].alpha", owner)
        learn_alpha = isinstance(module.alpha, torch.nn.Parameter) and module.alpha.requires_grad
        settings.update(alpha_syn=np.clip(alpha, 0.0, 1.0), learn_alpha_syn=learn_alpha)
    return LIF(**settings)


def from_snntorch(model, input_shape, *, dtype=np.float64):
    """The stlsim twin of a snnTorch Sequential (``Leaky``/``Synaptic`` with
    ``init_hidden=True``). Returns a ``stlsim.Network``."""
    return convert(model, input_shape, dtype=dtype, peer="snntorch").net


# --- SpikingJelly -----------------------------------------------------------------------

def _spikingjelly_known():
    from spikingjelly.activation_based import neuron as sj
    return (sj.LIFNode, sj.ParametricLIFNode, sj.IFNode)


def _spikingjelly_is_neuron(module, name, owner):
    from spikingjelly.activation_based.neuron import BaseNode
    known = _spikingjelly_known()
    if type(module) in known:
        return True
    if isinstance(module, BaseNode):
        _refuse_subclass(module, name, known, owner, "spikingjelly/_ops/lif/reference.py, "
                         "plif/reference.py: the conventions of stlsim.conventions.names()")
    return False


# SpikingJelly's surrogate classes (spikingjelly/activation_based/surrogate.py; the
# forward of each is ``heaviside``, x >= 0) -> (stlsim surrogate, the attributes it takes).
_SPIKINGJELLY_SURROGATES = {
    "Sigmoid": ("Sigmoid", ("alpha",)),
    "ATan": ("ATan", ("alpha",)),
    "SuperSpike": ("SpikingJellySuperSpike", ("alpha",)),
    "PiecewiseQuadratic": ("PiecewiseQuadratic", ("alpha",)),
    "PiecewiseExp": ("PiecewiseExp", ("alpha",)),
    "SoftSign": ("SoftSign", ("alpha",)),
    "Erf": ("Erf", ("alpha",)),
    "PiecewiseLeakyReLU": ("PiecewiseLeakyReLU", ("w", "c")),
    "NonzeroSignLogAbs": ("LogAbs", ("alpha",)),
    "S2NN": ("S2NN", ("alpha", "beta")),
    "QPseudoSpike": ("QPseudoSpike", ("alpha",)),
    "LeakyKReLU": ("LeakyKReLU", ("k", "leak")),
    "Rect": ("Rectangular", ("alpha",)),          # width 1/alpha: alpha on |x| < 0.5/alpha
}


def _spikingjelly_surrogate(name, module):
    from spikingjelly.activation_based import surrogate as sj

    import stlsim
    fn = module.surrogate_function
    where = f"model[{name}].surrogate_function"
    if not getattr(fn, "spiking", True):
        raise fail(where, "spiking=True", "spiking=False", "from_spikingjelly")
    kind = type(fn).__name__
    if getattr(sj, kind, None) is not type(fn) or kind not in _SPIKINGJELLY_SURROGATES:
        raise fail(where, f"one of SpikingJelly's surrogates stlsim has "
                   f"({', '.join(_SPIKINGJELLY_SURROGATES)})", _qualified(fn), "from_spikingjelly")
    cls_name, attributes = _SPIKINGJELLY_SURROGATES[kind]
    values = [float(getattr(fn, a)) for a in attributes]
    if kind == "Rect":
        values = [1.0 / values[0]]
    return getattr(stlsim.surrogate, cls_name)(*values)


def _spikingjelly_neuron(name, module, shape):
    from . import conventions
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
    """The stlsim twin of a SpikingJelly Sequential in ``step_mode="m"`` or ``"s"`` (``LIFNode``,
    ``ParametricLIFNode``, ``IFNode``). Returns a ``stlsim.Network``."""
    return convert(model, input_shape, dtype=dtype, peer="spikingjelly").net


# --- Norse ------------------------------------------------------------------------------

def _norse_known():
    import norse.torch as norse
    return (norse.LIFBoxCell, norse.LIFCell, norse.LIFRecurrentCell, norse.LSNNCell,
            norse.LSNNRecurrentCell) + _norse_sequences()


def _norse_sequences():
    """Norse's sequence modules: the same step as the cell, looped over T inside the
    module (``norse/torch/module/snn.py`` ``SNN.forward`` stacks the outputs)."""
    import norse.torch as norse
    return tuple(getattr(norse, name) for name in ("LIF", "LIFBox", "LSNN", "LIFRecurrent",
                                                   "LSNNRecurrent") if hasattr(norse, name))


def _norse_is_neuron(module, name, owner):
    known = _norse_known()
    if type(module) in known:
        return True
    if isinstance(module, known):
        _refuse_subclass(module, name, known, owner, "norse/torch/functional/lif_box.py, lif.py: "
                         "the conventions of stlsim.conventions.names()")
    return False


# Norse's threshold methods (norse/torch/functional/threshold.py ``threshold``; forward
# ``heaviside``, x > 0) -> stlsim surrogate. "super" ignores alpha in Norse 1.1
# (superspike.py: grad / (|x| + 1)^2).
_NORSE_SURROGATES = {"super": "SuperSpike", "triangle": "Triangle", "tanh": "HeaviTanh",
                     "circ": "Circ", "heavi_erfc": "HeaviErfc"}


def _norse_surrogate(name, module):
    import stlsim
    method = module.p.method
    if method not in _NORSE_SURROGATES:
        raise fail(f"model[{name}].p.method", f"one of {', '.join(map(repr, _NORSE_SURROGATES))}",
                   repr(method), "from_norse")
    cls = getattr(stlsim.surrogate, _NORSE_SURROGATES[method])
    if method == "super":
        return cls(1.0)
    return cls(float(_array(module.p.alpha, np.float64).reshape(-1)[0]))


def _norse_rate(dt, tensor):
    """dt * tensor in the peer's own arithmetic: Norse multiplies the Python float dt by
    its parameter tensor (``lif_box.py``: ``dt * p.tau_mem_inv``), so the product is
    rounded in that tensor's dtype (float32 constants stay float32, float64 ones don't)."""
    torch = _torch()
    with torch.no_grad():
        return _array(dt * torch.as_tensor(tensor), np.float64)


def _norse_scalar(module, name, field_name, owner):
    value = _array(getattr(module.p, field_name), np.float64)
    # one per neuron, all equal, is one value (Norse's NIR importer writes them per neuron)
    if value.size != 1 and not np.all(value == value.reshape(-1)[:1]):
        raise fail(f"model[{name}].p.{field_name}", "one value per layer (a stlsim LIF has one "
                   f"{field_name})", f"shape {value.shape}", owner)
    return float(value.reshape(-1)[0])


def _one_if_equal(value):
    """A per-neuron value whose entries are all equal as one float (the compiled kernels
    then run it); anything else unchanged."""
    if np.ndim(value) and np.all(value == value.reshape(-1)[:1]):
        return float(value.reshape(-1)[0])
    return value


def _norse_trained(module, name) -> dict:
    """Tensors inside a Norse cell's parameter tuple that are trained (``requires_grad``):
    they are not module parameters, so ``named_parameters`` misses them."""
    p = getattr(module, "p", None)
    if p is None or not hasattr(p, "_asdict") or _module_kind(module) != "norse":
        return {}
    torch = _torch()
    out = {}
    for field_name, value in p._asdict().items():
        if not (isinstance(value, torch.Tensor) and value.requires_grad):
            continue
        if field_name == "v_th":
            out["p.v_th"] = ("theta", value, 1.0)
        elif field_name == "tau_mem_inv":     # tau = 1 - dt k, r = dt k: dL/dk = -dt dL/dtau (B7)
            out["p.tau_mem_inv"] = ("tau", value, -float(module.dt))
        elif field_name == "tau_syn_inv":     # alpha_syn = 1 - dt k_syn: dL/dk_syn = -dt dL/dalpha (B9)
            out["p.tau_syn_inv"] = ("alpha_syn", value, -float(module.dt))
        else:
            raise fail(f"model[{name}].p.{field_name}", "a fixed constant (stlsim trains v_th, "
                       "tau_mem_inv and tau_syn_inv of a Norse cell)", "a tensor with "
                       "requires_grad=True", "from_norse")
    return out


def _norse_neuron(name, module, shape):
    import norse.torch as norse
    owner = "from_norse"
    p, dt = module.p, module.dt
    if getattr(p, "reset_method", None) is not None and \
            getattr(p.reset_method, "__name__", "") != "reset_value":
        raise fail(f"model[{name}].p.reset_method", "norse's reset_value",
                   getattr(p.reset_method, "__name__", repr(p.reset_method)), owner)
    trained = _norse_trained(module, name)
    rate = _per_neuron(_norse_rate(dt, p.tau_mem_inv), shape, f"model[{name}].p.tau_mem_inv", owner)
    # v_leak, v_reset: one value, or one per neuron ((L2g), (L4h)); Norse starts v at v_leak
    # (all equal is one value: Norse's NIR importer writes them per neuron)
    v_leak = _one_if_equal(_per_neuron(_array(p.v_leak, np.float64), shape,
                                       f"model[{name}].p.v_leak", owner))
    v_reset = _one_if_equal(_per_neuron(_array(p.v_reset, np.float64), shape,
                                        f"model[{name}].p.v_reset", owner))
    settings = dict(tau=1.0 - rate, input_gain=rate, v_leak=v_leak, v_reset=v_reset, reset="hard",
                    theta_init=0.0, detach_reset=False, spike_at_threshold=False, v_init=v_leak)
    if np.ndim(rate) or "p.tau_mem_inv" in trained:
        # r = dt tau_mem_inv = 1 - tau: the gain follows the (per-neuron or trained) decay
        settings.update(input_gain=1.0, tie_gain=True)
    if "p.tau_mem_inv" in trained:
        settings["learn_tau"] = "factor"
    lsnn = type(module) in (norse.LSNNCell, norse.LSNNRecurrentCell, norse.LSNN,
                            norse.LSNNRecurrent)
    recurrent = type(module) in (norse.LIFRecurrentCell, norse.LSNNRecurrentCell,
                                 norse.LIFRecurrent, norse.LSNNRecurrent)
    if lsnn:
        # norse/torch/functional/lsnn.py: the membrane reads the current of the step before
        # (L1d); b relaxes to v_th by dt tau_adapt_inv and jumps by beta per spike: (L3v),
        # (L5a) with rho = 1 - dt tau_adapt_inv, beta = rho beta_N (docs/model.md 10.1);
        # lsnn_step detaches z in the reset and in b, lsnn_feed_forward_step in neither.
        if "p.v_th" in trained:
            raise fail(f"model[{name}].p.v_th", "a fixed constant for an LSNN (its state b "
                       "starts at v_th.detach(), a gradient path stlsim does not model)",
                       "a tensor with requires_grad=True", owner)
        rho = 1.0 - _per_neuron(_norse_rate(dt, p.tau_adapt_inv), shape,
                                f"model[{name}].p.tau_adapt_inv", owner)
        beta = rho * _per_neuron(_array(p.beta, np.float64), shape, f"model[{name}].p.beta", owner)
        settings.update(synapse_delay=True, detach_reset=recurrent,
                        adaptation=Adaptation(beta=beta, rho=rho, detach=recurrent))
    if recurrent and not lsnn:
        # norse/torch/functional/lif.py lif_step: i_jump = i + W z_in + V z (L1r), (L1s);
        # v_new = (1 - z_new.detach()) v_decayed + z_new.detach() v_reset: a detached reset
        settings["detach_reset"] = True
    if type(module) in (norse.LIFCell, norse.LIF) or recurrent or lsnn:
        # alpha_syn = 1 - dt tau_syn_inv (L1s): one value, or one per neuron
        syn = _per_neuron(_norse_rate(dt, p.tau_syn_inv), shape, f"model[{name}].p.tau_syn_inv",
                          owner)
        # a trained one keeps its shape (its gradient goes back per neuron)
        settings["alpha_syn"] = 1.0 - (syn if "p.tau_syn_inv" in trained else _one_if_equal(syn))
        settings["learn_alpha_syn"] = "p.tau_syn_inv" in trained
    return LIF(**settings)


def from_norse(model, input_shape, *, dtype=np.float64):
    """The stlsim twin of a Norse ``SequentialState`` (``LIFBoxCell``, ``LIFCell``, ``LIF``)
    up to its last spiking layer. Returns a ``stlsim.Network``; a leaky-integrator readout
    after it is in ``convert(...).readout``."""
    return convert(model, input_shape, dtype=dtype, peer="norse").net


PEERS = ("snntorch", "spikingjelly", "norse")


def _is_neuron(module, peer, name, owner) -> bool:
    """Whether ``module`` is a neuron of ``peer`` stlsim converts: dispatch on the exact
    type; a subclass of one is refused by name (it may fire by another rule)."""
    return {"snntorch": _snntorch_is_neuron, "spikingjelly": _spikingjelly_is_neuron,
            "norse": _norse_is_neuron}[peer](module, name, owner)


def _detect_peer(model, owner):
    kinds = {_module_kind(m) for m in model.modules()} - {"torch"}
    known = sorted(kinds & set(PEERS))
    if len(known) != 1:
        raise fail("model", "a snnTorch, SpikingJelly or Norse model (or name the peer: "
                   "peer='snntorch', 'spikingjelly' or 'norse')",
                   f"modules from {sorted(kinds) or ['torch only']}", owner)
    return known[0]


def convert(model, input_shape, *, dtype=np.float64, peer=None, output=None) -> Conversion:
    """The ``Conversion`` of a peer model (``peer`` detected from its modules' packages
    unless named: "snntorch", "spikingjelly" or "norse"). ``output``: what the loss reads,
    "spikes" (the last spiking layer's) or "membrane" (a leaky-integrator readout: Norse's
    ``LICell``, ``LI``, ``LILinearCell``, or the ``mem`` of snnTorch's last ``Leaky`` /
    ``Synaptic``; docs/model.md Section 9.6). None: "membrane" where the model ends in a
    Norse leaky integrator, else "spikes". A peer's NIR-importer executor is read as the
    chain of its modules (``as_chain``)."""
    owner = f"from_{peer}" if peer else "stlsim.interop.convert"
    if peer is not None:
        check_choice(peer, "peer", PEERS, owner)
    if output is not None:
        check_choice(output, "output", ("spikes", "membrane"), owner)
    model = as_chain(model, owner)
    children = _layers_of(model, owner)
    if peer is None:
        peer = _detect_peer(model, owner)
    children, tail, output = _split_readout(children, peer, output, owner)
    neuron_of, surrogate_of = {
        "snntorch": (_snntorch_neuron, _snntorch_surrogate),
        "spikingjelly": (_spikingjelly_neuron, _spikingjelly_surrogate),
        "norse": (_norse_neuron, _norse_surrogate)}[peer]
    step_mode = {"spikingjelly": _spikingjelly_step_mode, "norse": _norse_step_mode}.get(
        peer, lambda model, owner: "s")(model, owner)
    training = any(_trains(m) for _, m in children)
    conversion = _build(children, input_shape, neuron_of, check_dtype(dtype, owner=owner), owner,
                        peer, model, surrogate_of, step_mode, training)
    conversion.step_mode = step_mode
    conversion.output = output
    if tail:
        _attach_readout(conversion, tail, owner)
    return conversion


def _trains(module) -> bool:
    """Whether the peer module acts differently in training: a BatchNorm (batch statistics)
    or a Dropout with p > 0 (masks) in training mode; the twin then runs in training."""
    torch = _torch()
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        return module.training
    dropout = isinstance(module, torch.nn.Dropout) or type(module).__name__ == "Dropout"
    return dropout and module.training and float(getattr(module, "p", 0.0)) > 0


def _norse_step_mode(model, owner) -> str:
    """"m" for a SequentialState of Norse's sequence modules (``norse.LIF``), called once
    with the whole (T, B, ...) input; "s" for one of cells, called once per step."""
    torch = _torch()
    children = list(model.named_children())
    sequence_types = _norse_sequences() + tuple(c for c in _norse_integrators() if c.__name__ == "LI")
    sequences = [n for n, m in children if type(m) in sequence_types]
    if not sequences:
        return "s"
    cells = [n for n, m in children if _module_kind(m) == "norse" and n not in sequences]
    if cells:
        raise fail("model", "Norse cells or Norse sequence modules, not both (one is called "
                   "per step, the other once per sequence)",
                   f"sequence modules {sequences} and cells {cells}", owner)
    others = [n for n, m in children if n not in sequences and type(m) is not torch.nn.Linear]
    if others:
        raise fail(f"model[{others[0]}]", "a torch.nn.Linear between Norse sequence modules (a "
                   "(T, B, ...) input; convolutions need norse.Lift, which stlsim does not "
                   "convert)", _qualified(dict(children)[others[0]]), owner)
    return "m"


def _spikingjelly_step_mode(model, owner) -> str:
    """The one step mode of a SpikingJelly model: "m" (whole sequences, time-major) or "s"
    (one step per call, run by the oracle in a loop over t)."""
    modes = {name: module.step_mode for name, module in model.named_modules()
             if isinstance(getattr(module, "step_mode", None), str)}
    if len(set(modes.values())) > 1:
        mixed = ", ".join(f"model[{n}]: {m!r}" for n, m in modes.items())
        raise fail("model", "one step_mode for every SpikingJelly module "
                   "(functional.set_step_mode(model, 'm'))", mixed, owner)
    return next(iter(modes.values()), "s")


# ------------------------------------------------------------------- readouts (9.6) --

def _norse_integrators():
    """Norse's leaky integrators (``norse/torch/module/leaky_integrator.py``): the cell, the
    sequence module, and the cell with its own weights."""
    import norse.torch as norse
    return tuple(getattr(norse, name) for name in ("LICell", "LI", "LILinearCell", "LIBoxCell")
                 if hasattr(norse, name))


def _split_readout(children, peer, output, owner):
    """``(body, tail, output)``: the modules up to the last spiking neuron, and the readout
    after it (empty when the loss reads the spikes)."""
    last = children[-1][1]
    ends_in_integrator = peer == "norse" and type(last) in _norse_integrators()
    if output is None:
        output = "membrane" if ends_in_integrator else "spikes"
    if output == "spikes":
        if ends_in_integrator:
            raise fail("output", "'membrane' for a model that ends in a Norse leaky integrator "
                       "(it has no spikes)", "'spikes'", owner)
        return children, [], output
    if peer == "spikingjelly":
        raise fail("output", "'spikes' for a SpikingJelly model (stlsim reads no SpikingJelly "
                   "membrane yet)", "'membrane'", owner)
    if peer == "norse" and not ends_in_integrator:
        raise fail(f"model[{children[-1][0]}]", "a Norse LICell, LI or LILinearCell at the end "
                   "for output='membrane'", _qualified(last), owner)
    if peer == "snntorch" and type(last) not in _snntorch_known()[:2]:
        raise fail(f"model[{children[-1][0]}]", "a snnTorch Leaky or Synaptic at the end whose "
                   "mem the loss reads, for output='membrane' (a recurrent one feeds its own "
                   "spikes back: not a leaky integrator)", _qualified(last), owner)
    end = len(children) - 1
    start = end
    while start > 0 and not _is_neuron(children[start - 1][1], peer, children[start - 1][0], owner):
        start -= 1
    if start == 0:
        raise fail("model", "a spiking neuron before the readout", "none", owner)
    return children[:start], children[start:], output


def _leaky_integrator(name, module, peer, shape, owner):
    """The stlsim ``LeakyIntegrator`` of the peer's readout module (docs/model.md (LI1)-(LI3))."""
    from .layers.leaky import LeakyIntegrator
    torch = _torch()
    # input_weights: LILinearCell's own, mapped below; a graded factor scales spikes the
    # readout does not read, so it gets no gradient and changes nothing here
    # snnTorch's trained beta and threshold are the readout's trained tau and theta (BLI3)
    learned = {"beta": "tau", "threshold": "theta"} if peer == "snntorch" else {}
    trained = [attr for attr, p in module.named_parameters(recurse=False)
               if p.requires_grad and attr not in ("input_weights", "graded_spikes_factor")
               and attr not in learned]
    if peer == "norse":
        p, dt = module.p, module.dt
        trained += [f"p.{field_name}" for field_name, value in p._asdict().items()
                    if isinstance(value, torch.Tensor) and value.requires_grad]
    if trained:
        raise fail(f"model[{name}].{trained[0]}", "a constant (stlsim's leaky-integrator readout "
                   "trains only its weights)", "a trained tensor", owner)
    if peer == "norse":
        rate = _per_neuron(_norse_rate(dt, p.tau_mem_inv), shape, f"model[{name}].p.tau_mem_inv", owner)
        alpha = 0.0                    # LIBoxCell (leaky_integrator_box.py): no synaptic current
        if hasattr(p, "tau_syn_inv"):
            syn = _norse_rate(dt, p.tau_syn_inv)
            if syn.size != 1:
                raise fail(f"model[{name}].p.tau_syn_inv", "one value per layer",
                           f"shape {syn.shape}", owner)
            alpha = 1.0 - float(syn.reshape(-1)[0])
        v_leak = _norse_scalar(module, name, "v_leak", owner)
        rate = rate if np.ndim(rate) == 0 else rate.reshape(shape)
        return LeakyIntegrator(1.0 - rate, input_gain=rate, v_leak=v_leak, v_init=v_leak,
                               alpha=alpha)
    import snntorch as snn
    if (not module.reset_delay and module.reset_mechanism != "none") or \
            getattr(module, "inhibition", False) or getattr(module, "state_quant", False):
        raise fail(f"model[{name}]", "a readout Leaky with reset_delay=True (or no reset), no "
                   "inhibition and no state quantisation", repr(module), owner)
    reset = module.reset_mechanism
    if type(module) is snn.Synaptic and reset == "zero":
        raise fail(f"model[{name}].reset_mechanism", "'none' or 'subtract' for a Synaptic readout "
                   "(its zero reset also zeroes the synaptic current)", "'zero'", owner)
    learn = tuple(local for attr, local in learned.items()
                  if getattr(getattr(module, attr), "requires_grad", False))
    threshold = _array(module.threshold, np.float64)
    if threshold.size != 1 and "theta" not in learn:
        raise fail(f"model[{name}].threshold", "one value for a readout (or a trained one)",
                   f"shape {threshold.shape}", owner)
    beta = _per_neuron(_array(module.beta, np.float64), shape, f"model[{name}].beta", owner)
    beta = np.clip(beta, 0.0, 1.0)
    alpha = 0.0
    if type(module) is snn.Synaptic:
        alpha_value = _array(module.alpha, np.float64)
        if alpha_value.size != 1:
            raise fail(f"model[{name}].alpha", "one value per layer", f"shape {alpha_value.shape}",
                       owner)
        alpha = float(np.clip(alpha_value.reshape(-1)[0], 0.0, 1.0))
    # a trained beta and threshold take the peer's values in the readout's parameters
    # (_attach_readout); the constants here are their initial values only
    return LeakyIntegrator(beta if np.ndim(beta) == 0 else beta.reshape(shape), alpha=alpha,
                           reset=reset, theta=float(threshold.reshape(-1)[0]), learn=learn)


def _attach_readout(conv, tail, owner):
    """Build the ``MembraneReadout`` of ``tail`` (the modules after the last spiking
    neuron) on the twin's output, copy the peer's weights into it and map its parameters."""
    import stlsim

    from .layers.activation import ReLU
    from .readout import MembraneReadout
    torch = _torch()
    layers, weights, shape = [], [], tuple(conv.net.layers[-1].out_shape)
    for name, module in tail[:-1]:
        weight, _ = _weight_layer(torch, name, module, owner)
        if weight is not None:
            layers.append(weight)
            weights.append((name, module, {"weight": "weight", "bias": "bias"}))
        elif _is(module, torch.nn.ReLU, name, owner):
            layers.append(ReLU())
        else:
            layer = _shape_layer(torch, name, module, owner)
            if layer is None:
                raise fail(f"model[{name}]", "a Linear, ReLU, Flatten or Dropout before the readout's "
                           "leaky integrator", _qualified(module), owner)
            layers.append(layer)
    name, module = tail[-1]
    own_weights = type(module).__name__ == "LILinearCell"
    last_is_weight = bool(layers) and layers[-1].has_neurons
    if (own_weights and weights) or (not own_weights and (len(weights) != 1 or not last_is_weight)):
        raise fail(f"model[{name}]", "one Linear right before the readout's leaky integrator, "
                   "none before an LILinearCell (ReLU, Flatten or Dropout may come before it)",
                   " -> ".join(_qualified(m) for _, m in tail), owner)
    if type(module).__name__ == "LILinearCell":
        layers.append(stlsim.Dense(module.input_size, module.hidden_size))
        weights.append((name, module, {"input_weights": "weight"}))
    from .layers.shape import resolve_shapes
    resolve_shapes(layers, shape)
    out_shape = tuple(layers[-1].out_shape) if layers else shape
    layers.append(_leaky_integrator(name, module, conv.peer, out_shape, owner))
    readout = MembraneReadout(layers, in_shape=shape, dtype=conv.dtype)
    k_integrator = len(layers) - 1
    for attr, local in (("beta", "tau"), ("threshold", "theta")):   # trained (BLI3)
        if local in layers[-1].learn:
            tensor, key = getattr(module, attr), f"{k_integrator}.{local}"
            readout.params[key] = _to_stlsim_shape(_array(tensor, np.float64), out_shape,
                                                   out_shape).astype(conv.dtype)
            conv.params[f"{name}.{attr}"] = _Mapped(f"readout.{key}", out_shape, tensor)
    k_weight = len(layers) - 2
    for peer_name, peer_module, names in weights:
        for attr, local in names.items():
            tensor = getattr(peer_module, attr, None)
            if tensor is None:
                continue
            key = f"{k_weight}.{local}"
            readout.params[key] = _array(tensor, np.float64).reshape(readout.params[key].shape) \
                .astype(conv.dtype)
            if tensor.requires_grad:
                conv.params[f"{peer_name}.{attr}"] = _Mapped(f"readout.{key}", out_shape, tensor)
    conv.readout, conv.readout_module = readout, module


# --------------------------------------------------------------------------- running --

def _as_numpy(tensor):
    """A CPU torch tensor's values as NumPy (a view where NumPy has the dtype)."""
    tensor = tensor.detach()
    if tensor.dtype not in (_torch().float32, _torch().float64):    # e.g. bfloat16: no NumPy twin
        tensor = tensor.double()
    return tensor.numpy()


def _float64(tensor):
    """A torch tensor as a float64 NumPy array (one copy)."""
    return np.array(_as_numpy(tensor), dtype=np.float64)


def _steps_float64(steps):
    """A peer quantity kept as its steps (a list of per-step arrays, or one (T, ...) array)
    as one (T, ...) float64 array: one copy, for the paths that need the whole array."""
    return np.array(steps, dtype=np.float64)


def _keep_grad(store, index, grad):
    """A tensor hook: keep the gradient that reaches step ``index`` (what ``retain_grad``
    would put in ``.grad``, without its copy); the engine does not write into a gradient
    that a hook still holds."""
    store[index] = grad


def _run_peer(conv: Conversion, x_t, grad_output_fn):
    """Forward the peer, backward from ``grad_output_fn(output spikes)``; returns
    (spikes, dL/ds per neuron layer, grads by peer name, the readout's membrane, dL/dI per
    neuron layer), a layer's quantity as its steps: NumPy views of the peer's tensors (a
    list of per-step arrays, or one (T, ...) array in step_mode "m"). Every
    ``.grad`` the peer had before (module parameters and the trained tensors of Norse's
    parameter tuples) is restored afterwards."""
    torch = _torch()
    model, peer = conv.model, conv.peer
    # Every step's spikes and input current I_t of each neuron module, and the gradients
    # that reach them (by step index; a tensor hook keeps them as they arrive).
    captured = {id(m): [] for m in conv.neuron_modules}
    currents = {id(m): [] for m in conv.neuron_modules}
    spike_grads = {id(m): {} for m in conv.neuron_modules}
    current_grads = {id(m): {} for m in conv.neuron_modules}

    def hook(module, inputs, output):
        spikes = output[0] if isinstance(output, tuple) else output
        seq = captured[id(module)]
        if spikes.requires_grad:
            spikes.register_hook(functools.partial(_keep_grad, spike_grads[id(module)], len(seq)))
        seq.append(spikes)

    def current_hook(module, inputs):             # the neuron's input current I_t
        current, seq = inputs[0], currents[id(module)]
        if current.requires_grad:
            current.register_hook(functools.partial(_keep_grad, current_grads[id(module)], len(seq)))
        seq.append(current)

    # A BatchNorm in training mode updates its running statistics: put them back after.
    statistics = [(b, b.detach().clone()) for m in model.modules()
                  if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                  for b in m.buffers() if b is not None]
    tensors = {id(p): p for p in model.parameters()}
    tensors.update({id(m.tensor): m.tensor for m in conv.params.values() if m.tensor is not None})
    saved = {key: (None if t.grad is None else t.grad.clone()) for key, t in tensors.items()}
    membranes = []

    def readout_hook(module, inputs, output):     # the membrane u_t the loss reads (LI2)
        membranes.append(module.mem if peer == "snntorch" else output[0])

    # A Dropout in training: its masks, for the twin to replay (docs/model.md 9.9). torch's
    # Dropout draws a fresh mask per call from torch's generator; the same draw on ones,
    # from the generator state before the call, is that mask. SpikingJelly's layer.Dropout
    # keeps one mask per sequence in ``module.mask``.
    masks, rng_before = {id(m): [] for m, _ in conv.dropouts}, {}

    def dropout_pre(module, inputs):
        rng_before[id(module)] = torch.get_rng_state()

    def dropout_post(module, inputs, output):
        after = torch.get_rng_state()
        torch.set_rng_state(rng_before[id(module)])
        masks[id(module)].append(torch.nn.functional.dropout(
            torch.ones_like(inputs[0]), module.p, training=True))
        torch.set_rng_state(after)

    handles = [m.register_forward_hook(hook) for m in conv.neuron_modules]
    # (a Norse recurrent cell takes the layer's input and holds its own input weights: its
    # input is not the current I_t, and its dL/dI_t is not compared)
    handles += [m.register_forward_pre_hook(current_hook) for m in conv.neuron_modules
                if not hasattr(m, "input_weights")]
    for module, _ in conv.dropouts:
        if isinstance(module, torch.nn.Dropout):
            handles += [module.register_forward_pre_hook(dropout_pre),
                        module.register_forward_hook(dropout_post)]
    if conv.readout_module is not None:
        handles.append(conv.readout_module.register_forward_hook(readout_hook))
    try:
        for t in tensors.values():
            t.grad = None
        if peer == "snntorch":
            # Each neuron's own reset: snntorch.utils.reset(model) resets every instance of
            # the class ever built (a class-level list) and fails on one that never ran.
            for module in conv.neuron_modules + ([conv.readout_module] if conv.readout_module
                                                 is not None else []):
                module.reset_mem()
            outs = []
            for t in range(x_t.shape[0]):
                out = model(x_t[t])
                outs.append(out[0] if isinstance(out, tuple) else out)
            output = torch.stack(outs)
        elif peer == "spikingjelly":
            from spikingjelly.activation_based import functional
            functional.reset_net(model)
            if conv.step_mode == "m":
                output = model(x_t)
            else:                                    # step_mode="s": one call per step
                output = torch.stack([model(x_t[t]) for t in range(x_t.shape[0])])
        elif conv.step_mode == "m":                       # Norse sequence modules
            output, _ = model(x_t)
        else:
            state, outs = None, []
            for t in range(x_t.shape[0]):
                out, state = model(x_t[t], state)
                outs.append(out)
            output = torch.stack(outs)
        if conv.readout_module is not None:            # the loss reads the readout's membrane
            output = membranes[0] if conv.step_mode == "m" else torch.stack(membranes)
        conv.dropout_masks = {}
        for module, _ in conv.dropouts:
            if isinstance(module, torch.nn.Dropout):   # one mask per call: per step, or (T, B, ...)
                seq = masks[id(module)]
                mask = seq[0] if len(seq) == 1 and conv.step_mode == "m" else torch.stack(seq)
            else:                                      # SpikingJelly: one for every step
                mask = module.mask[None]
            conv.dropout_masks[id(module)] = mask.detach().double().numpy()
        grad = grad_output_fn(output.detach().cpu().double().numpy())
        output.backward(torch.as_tensor(grad, dtype=output.dtype))
        grads = {}
        for name, mapped in conv.params.items():
            g = mapped.tensor.grad
            grads[name] = (np.zeros(tuple(mapped.tensor.shape)) if g is None
                           else _float64(g))
    finally:
        for handle in handles:
            handle.remove()
        for key, t in tensors.items():                  # leave the user's .grad as it was
            t.grad = saved[key]
        with torch.no_grad():
            for buffer, value in statistics:
                buffer.copy_(value)
    # Returned as NumPy views of the peer's own tensors, one per step (step_mode "m": one
    # (T, ...) array): no copy; the comparisons read them a step at a time.
    def steps(seq):
        return _as_numpy(seq[0]) if conv.step_mode == "m" else [_as_numpy(s) for s in seq]

    def gradients(seq, kept):
        if not seq or len(kept) < len(seq):       # a step no gradient reached: no .grad
            return None
        return steps([kept[t] for t in range(len(seq))])

    spikes, adjoints, current_adjoints = [], [], []
    for m in conv.neuron_modules:
        seq = captured[id(m)]
        spikes.append(steps(seq))
        adjoints.append(gradients(seq, spike_grads[id(m)]))
        current_adjoints.append(gradients(currents[id(m)], current_grads[id(m)]))
    membrane = output.detach().double().numpy() if conv.readout_module is not None else None
    return spikes, adjoints, grads, membrane, current_adjoints


def _run_stlsim(conv, x, grad_output_fn, adjoint="g", training=False, margins=True):
    """The twin's NumPy reference: (spikes, adjoints, grads, margins, readout membrane,
    dL/dI_t per spiking layer); with ``margins=False`` the margins |m_t - theta| are not
    computed (None), for a run whose margins nobody reads (the float64 round-off twin).
    With a readout, ``grad_output_fn`` takes its membrane; the readout's backward turns
    dL/du into dL/ds^L ((BLI1)-(BLI2), (B4), (B6)) and its gradients join ``grads`` as
    ``"readout.{k}.weight"``."""
    for module, layer in conv.dropouts:               # the peer's masks of its last run
        layer.masks = conv.dropout_masks.get(id(module))
    readout, scale, kept = conv.readout, conv.output_scale, {}

    def output_grad(spikes):
        """dL/ds^L from the output the peer's loss reads: the spikes, graded by c (G1), then
        read by the readout (LI1)-(LI3) if there is one; backward (BLI), (G2)."""
        spikes = spikes.astype(conv.dtype)
        output = spikes if scale is None else spikes * scale                  # (G1)
        if readout is None:
            grad_output = np.asarray(grad_output_fn(output.astype(np.float64))).astype(conv.dtype)
        else:
            membrane, cache = readout.forward(output)
            grad_membrane = np.asarray(grad_output_fn(membrane.astype(np.float64)))
            kept["grads"], grad_output = readout.backward(grad_membrane.astype(readout.dtype), cache)
            kept["membrane"] = membrane
        if scale is None:
            return grad_output
        kept["scale"] = np.sum(grad_output * spikes, axis=(0, 1))             # (G2) dL/dc
        return grad_output * scale                                             # (G2) dL/ds
    # dL/dI_t of each spiking layer, as its (B4), (B6) receive it: recorded on the twin's
    # own layer objects for this run only.
    recorded = {i: [] for i in conv.net.spiking_layers}
    for i in recorded:
        layer, backward = conv.net.layers[i], conv.net.layers[i].backward

        def record(grad_current, *args, _store=recorded[i], _backward=backward, **kwargs):
            _store.append(grad_current)
            return _backward(grad_current, *args, **kwargs)
        layer.backward = record
    try:
        run = conv.net.reference_trace(x, output_grad, training=training)
    finally:
        for i in recorded:
            del conv.net.layers[i].backward
    integrator = None if readout is None else readout.layers[-1]
    if margins:
        margins = [np.abs(m - theta) for m, theta in zip(run.membrane, run.thetas)]
        if integrator is not None and integrator.reset != "none":    # the readout's own spikes (LI3)
            margins.append(np.abs(kept["membrane"] - integrator.theta))
    else:
        margins = None
    adjoints = [trace[adjoint] for trace in run.traces]
    current_adjoints = [recorded[i][0] for i in conv.net.spiking_layers]
    grads = dict(run.grads)
    grads.update({f"readout.{key}": value for key, value in kept.get("grads", {}).items()})
    if "scale" in kept:
        grads["output.scale"] = kept["scale"]
    return run.spikes, adjoints, grads, margins, kept.get("membrane"), current_adjoints


# ---------------------------------------------------------------------------- report --

@dataclass
class ParamRow:
    """One parameter of the comparison. ``relative``: the largest |stlsim - peer|
    relative to the parameter's largest |gradient|; ``roundoff``: the same measure
    between stlsim in float32 and in float64 (float32 comparisons only, else None);
    ``tolerance``: what ``relative`` is held to."""

    name: str            # the peer's name, e.g. "1.threshold"
    key: str             # stlsim's key, e.g. "0.theta"
    shape: tuple
    max_abs: float
    relative: float
    where: tuple         # index of the largest difference
    ok: bool
    roundoff: float | None = None
    tolerance: float | None = None


@dataclass
class Report:
    """What ``compare`` found. ``ok``: spikes identical, a readout's membranes within
    ``membrane_tolerance``, and every gradient within its ``tolerance`` (relative to the
    largest |gradient| of that parameter): ``rtol`` in float64; in float32 ``max(rtol,
    roundoff_multiple * roundoff)``, the model's own float32 round-off measured on these
    weights and this input, per layer (``docs/howto/check_framework.md``; None where every
    error is within ``rtol`` and it was not measured). ``first_divergence``: (layer, t,
    neuron) of the first difference, ``first_divergence_pass`` "forward" or "backward",
    ``first_divergence_of`` the quantity ("s_t", "dL/ds_t" or "dL/dI_t")."""

    peer: str
    dtype: str
    rtol: float
    spikes_equal: bool
    rows: list
    min_margin: float
    first_divergence: tuple | None
    first_divergence_pass: str | None
    loss: str
    roundoff: float | None = None          # largest row round-off (float32), else None
    roundoff_multiple: float | None = None
    roundoff_note: str = ""
    firing_rates: tuple = ()               # the twin's mean spikes per neuron and step, per layer
    membrane_error: float | None = None    # readout membranes: max |diff| / max |u| (output="membrane")
    membrane_tolerance: float | None = None
    first_divergence_of: str | None = None  # "s_t" (forward), "dL/ds_t" or "dL/dI_t" (backward)

    @property
    def max_rel_error(self) -> float:
        return max((row.relative for row in self.rows), default=0.0)

    @property
    def worst(self) -> str | None:
        """The peer's name of the parameter with the largest error relative to its
        tolerance."""
        if not self.rows:
            return None
        return max(self.rows, key=lambda row: row.relative / (row.tolerance or self.rtol)).name

    @property
    def membrane_ok(self) -> bool:
        """The readout's membranes agree (True when the loss reads spikes)."""
        return self.membrane_error is None or self.membrane_error <= self.membrane_tolerance

    @property
    def ok(self) -> bool:
        return self.spikes_equal and self.membrane_ok and all(row.ok for row in self.rows)

    def __str__(self) -> str:
        if self.roundoff is None:
            budget = f"rtol {self.rtol:.0e}"
        else:
            budget = (f"tolerance max(rtol {self.rtol:.0e}, {self.roundoff_multiple:g} x float32 "
                      f"round-off, up to {self.roundoff:.2e})")
        head = (f"stlsim vs {self.peer} ({self.dtype}, loss {self.loss}, {budget}): "
                f"{'OK' if self.ok else 'DIFFERENT'}; spikes "
                f"{'identical' if self.spikes_equal else 'DIFFER'}; smallest |m - theta| "
                f"{self.min_margin:.3g}"
                + (f"; firing rates {', '.join(f'{r:.3g}' for r in self.firing_rates)}"
                   if self.firing_rates else ""))
        extra = self.roundoff is not None
        lines = [head, f"{'parameter':<18} {'stlsim':<12} {'shape':<14} {'max |diff|':>11} "
                       f"{'relative':>10}" + (f" {'round-off':>10} {'multiple':>9}" if extra else "")
                       + "  where"]
        for row in self.rows:
            text = (f"{row.name:<18} {row.key:<12} {row.shape!s:<14} {row.max_abs:>11.3e} "
                    f"{row.relative:>10.3e}")
            if extra:
                multiple = row.relative / row.roundoff if row.roundoff else float("inf") \
                    if row.relative else 0.0
                text += f" {row.roundoff:>10.3e} {multiple:>9.3g}"
            lines.append(text + f"  {row.where}{'' if row.ok else '  <-- over tolerance'}")
        if self.membrane_error is not None:
            lines.append(f"readout membrane u_t: relative difference {self.membrane_error:.3e} "
                         f"(tolerance {self.membrane_tolerance:.1e})"
                         + ("" if self.membrane_ok else "  <-- over tolerance"))
        if self.roundoff_note:
            lines.append(f"note: {self.roundoff_note}")
        if self.first_divergence is not None:
            lines.append(f"first divergence ({self.first_divergence_pass}, {self.first_divergence_of}): "
                         f"layer, t, neuron = {self.first_divergence}")
        if self.min_margin < 1e-6:
            lines.append("note: a membrane lies within 1e-6 of its threshold: a spike decided by "
                         "a hair is a tie between the two rounding orders, not a bug")
        return "\n".join(lines)


def _divergence(ours, theirs, rtol, backward):
    """(layer, t, neuron) of the first difference: forward in layer/time order, backward
    from the last layer and the last step. ``rtol``: one number, or one per layer."""
    order = range(len(ours) - 1, -1, -1) if backward else range(len(ours))
    for layer in order:
        a, b = ours[layer], theirs[layer]
        if a is None or b is None:
            continue
        tolerance = rtol[layer] if isinstance(rtol, (list, tuple)) else rtol
        n = int(np.prod(b.shape[2:]))                  # neurons per sample
        a = a.reshape(a.shape[0], -1)                  # (float32 - float64 is float64)
        b = b.reshape(b.shape[0], -1)
        scale = max(_largest_abs(b), 1e-300) if backward else 0.0
        diff = np.subtract(a, b)                       # every step at once
        bad = np.abs(diff, out=diff) > tolerance * scale
        steps = np.flatnonzero(bad.any(axis=1))
        if steps.size:
            t = int(steps[-1] if backward else steps[0])
            return layer, t, int(np.flatnonzero(bad[t])[0] % n)
    return None


def _largest_abs(value) -> float:
    """max |value| without the temporary array of ``np.abs``."""
    return max(float(np.max(value)), -float(np.min(value)))


# Elements a comparison holds at once: its float64 buffer (512 KiB) and the pieces it reads
# stay in cache, where whole-array temporaries (22 MB a layer on the MNIST CSNN) did not.
_PIECE = 1 << 16


def _differences(ours, theirs, reduce=np.maximum, scale=True):
    """One pass over two sequences of T steps (``ours``: a (T, ...) array; ``theirs``: an
    array or a list of per-step arrays; ``ours_t`` read in the order of ``theirs_t``'s
    shape), about ``_PIECE`` elements at a time (a few whole steps, or a piece of one):
    (each step's largest |ours_t - theirs_t| in float64, ``_largest_abs(theirs)`` or None
    without ``scale``), the numbers the whole arrays give. ``reduce``: ``np.maximum`` lets a
    NaN through (as ``argmax`` finds it), ``np.fmax`` skips it (as ``>`` does); the scale
    lets a NaN through, as ``np.max`` does."""
    steps, size = len(theirs), int(np.size(theirs[0]))
    largest = np.full(steps, -np.inf)
    extremes = []                                   # per piece: max, min of theirs
    group = max(1, _PIECE // max(size, 1))          # whole steps at a time, or one in pieces
    buffer = np.empty(min(_PIECE, group * size))
    for first in range(0, steps if size else 0, group):
        # (a few steps of a list: stacked, one copy; one step: a view)
        b = np.asarray(theirs[first:first + group]) if group > 1 else np.asarray(theirs[first])[None]
        a = ours[first:first + group].reshape(b.shape)
        a, b = a.reshape(len(b), -1), b.reshape(len(b), -1)
        for start in range(0, size, _PIECE):
            a_piece, b_piece = a[:, start:start + _PIECE], b[:, start:start + _PIECE]
            diff = np.subtract(a_piece, b_piece, out=buffer[:b_piece.size].reshape(b_piece.shape),
                               dtype=np.float64)
            step = reduce.reduce(np.abs(diff, out=diff), axis=1)
            largest[first:first + len(b)] = reduce(largest[first:first + len(b)], step)
            if scale:
                extremes.append((b_piece.max(), b_piece.min()))
    if not scale:
        return largest, None
    extremes = np.array(extremes, dtype=np.float64).reshape(-1, 2)
    return largest, max(float(np.max(extremes[:, 0])), -float(np.min(extremes[:, 1])))


def _roundoff_tolerance(ours, ours64, rtol, covers) -> float:
    """A layer's tolerance from its own float32 round-off (O3l), ``max(rtol,
    ROUNDOFF_MULTIPLE * _relative(ours, ours64)[1])``, read a few steps at a time. It only grows
    with the steps read, so once ``covers(tolerance)`` (every step of the peer's difference
    within it) holds, the steps left cannot change the verdict and are not read: the value
    returned is then the tolerance of the steps read, which the scan treats alike."""
    if not np.size(ours64):
        return max(rtol, 0.0)
    own, own64 = _largest_abs(ours), _largest_abs(ours64)
    if math.isnan(own) or math.isnan(own64):       # a NaN difference, so _relative's is NaN
        return max(rtol, ROUNDOFF_MULTIPLE * math.nan)
    scale = max(own64, own, 1e-300)
    seen, group = -np.inf, max(1, _PIECE // max(int(np.size(ours64[0])), 1))
    for first in range(0, len(ours64), group):      # a few whole steps at a time, or one
        seen = np.maximum(seen, np.max(_differences(ours[first:first + group], ours64[first:first + group],
                                                    scale=False)[0]))
        tolerance = max(rtol, ROUNDOFF_MULTIPLE * (float(seen) / scale))
        if covers(tolerance):
            break
    return tolerance


def _last_step_over(ours, theirs, largest, limit):
    """(t, neuron) of the first |ours_t - theirs_t| > ``limit`` in the last step that has
    one (``largest``: each step's largest, ``_differences(..., np.fmax)``), or None:
    what ``_divergence(..., backward=True)`` finds in one layer, with one step's temporary."""
    steps = np.flatnonzero(largest > limit)
    if not steps.size:
        return None
    t = int(steps[-1])
    theirs_t = np.asarray(theirs[t])
    diff = np.abs(np.subtract(ours[t].reshape(theirs_t.shape), theirs_t, dtype=np.float64))
    neurons = int(np.prod(theirs_t.shape[1:]))              # per sample
    return t, int(np.flatnonzero(diff.reshape(-1) > limit)[0] % neurons)


def _relative(ours, theirs):
    """(max |diff|, relative to the larger of the two largest |values|, where)."""
    diff = np.asarray(np.subtract(ours, theirs))   # (float32 - float64 is float64; 0-d stays an array)
    np.abs(diff, out=diff)
    if not diff.size:
        return 0.0, 0.0, ()
    scale = max(_largest_abs(theirs), _largest_abs(ours), 1e-300)
    index = int(np.argmax(diff))
    largest = float(diff.flat[index])
    return largest, largest / scale, tuple(int(i) for i in np.unravel_index(index, diff.shape))


# A float32 gradient differs from the peer's by the round-off of two orders of operations.
# stlsim's own float32 - float64 difference on the same weights and input measures one of
# them; a difference is called a bug only beyond ROUNDOFF_MULTIPLE times it (and rtol).
ROUNDOFF_MULTIPLE = 4.0


def compare(model, x, *, seed: int | np.random.SeedSequence | np.random.Generator = 0, loss: str = "probe",
            y=None, population: int = 1, rtol: float | None = None, dtype=None, peer: str | None = None,
            output: str | None = None, roundoff: str = "auto") -> Report:
    """Run a peer model and its stlsim twin on ``x`` (T, B, *input_shape) and compare.

    ``loss``: "probe" (sum(C * output), C ~ N(0, 1) drawn from ``seed``: an int, a
    ``numpy.random.SeedSequence`` or a ``numpy.random.Generator``),
    "mse_rate" or "ce_rate" (stlsim's readout with labels ``y`` and ``population``; its
    dL/d(output spikes) is handed to the peer), or with a membrane output
    "ce_membrane_sum" / "ce_membrane_max" (docs/model.md (M1), (M2), labels ``y``).
    ``output``: "spikes" or "membrane" (a leaky-integrator readout; see ``convert``; the
    membranes are compared too). ``dtype``: float64 by default (float32
    for snnTorch, whose spikes are float32); ``rtol``: 1e-10 in float64, 1e-5 in float32,
    where a row's tolerance is also at least ``ROUNDOFF_MULTIPLE`` times stlsim's own
    float32 round-off (stlsim run in float64 on the same float32 weights and input).
    ``peer``: "snntorch", "spikingjelly" or "norse" (detected from the model's modules
    when left out; name it when a model mixes packages). ``roundoff``: "auto" measures the
    float32 round-off only where some error exceeds ``rtol`` (below it the verdict is OK
    whatever the round-off), "always" measures it whenever the dtype is float32.
    """
    torch = _torch()
    from .readout import (LOSSES, MEMBRANE_LOSSES, loss_from_membrane, loss_from_rates,
                          population_rates, rates_backward)
    check_choice(loss, "loss", ("probe",) + tuple(LOSSES) + tuple(MEMBRANE_LOSSES), "compare")
    check_choice(roundoff, "roundoff", ("auto", "always"), "compare")
    if peer is not None:
        check_choice(peer, "peer", PEERS, "compare")
    x_np = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if x_np.ndim < 3:
        raise fail("x", "an array of shape (T, B, *input_shape)", f"shape {x_np.shape}", "compare")
    model = as_chain(model, "compare")
    _layers_of(model, "compare")
    if peer is None:
        peer = _detect_peer(model, "compare")
    if dtype is None:
        dtype = np.float32 if peer == "snntorch" else np.float64
    dtype = check_dtype(dtype, owner="compare")
    # The peer model itself when it already computes in this dtype (its hooks then run, and
    # its .grad fields are restored afterwards); else a copy in that dtype (tensor hooks do
    # not survive the copy). Norse's parameter dataclasses stay float32 tensors either way.
    torch_dtype = torch.float32 if dtype == np.float32 else torch.float64
    if any(p.dtype != torch_dtype for p in model.parameters()):
        model = copy.deepcopy(model).to(torch_dtype)
    conv = convert(model, x_np.shape[2:], dtype=dtype, peer=peer, output=output)
    net = conv.net
    x_np = x_np.astype(dtype)
    rtol = RTOL[dtype] if rtol is None else float(rtol)
    T, B = x_np.shape[:2]
    out_shape = conv.readout.out_shape if conv.readout is not None else net.layers[-1].out_shape
    n_out = int(np.prod(out_shape))
    if (loss in MEMBRANE_LOSSES) != (conv.readout is not None) and loss != "probe":
        raise fail("loss", f"'probe' or one of {MEMBRANE_LOSSES if conv.readout is not None else LOSSES}"
                   f" for output={conv.output!r}", repr(loss), "compare")
    if loss == "probe":
        (probe_rng,) = seed_streams(seed, 1, "seed", "compare")      # an int, SeedSequence or Generator
        probe = probe_rng.normal(size=(T, B, n_out))

        def grad_output_fn(output):
            return probe.reshape(output.shape)
    elif loss in MEMBRANE_LOSSES:
        if y is None:
            raise fail("y", f"class labels for loss={loss!r}", "None", "compare")
        labels = np.asarray(y)

        def grad_output_fn(output):
            return loss_from_membrane(output.reshape(T, B, -1), labels, loss)[1].reshape(output.shape)
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

    peer_spikes, peer_adjoints, peer_grads, peer_membrane, peer_currents = _run_peer(conv, torch.as_tensor(x_np),
                                                                      grad_output_fn)
    # torch's .grad of a spike tensor: the total dL/ds_t (g_t) where the reset reads the
    # tensor a step returns (snnTorch, Norse cells), the part from above (e_t) where the
    # peer keeps the reset path inside (SpikingJelly's neuron functions in step_mode "m" and
    # "s" alike; Norse's sequence modules, whose output is a stack of the steps' spikes).
    adjoint = "e" if conv.peer == "spikingjelly" or conv.step_mode == "m" else "g"
    spikes, adjoints, grads, margins, membrane, currents = _run_stlsim(conv, x_np, grad_output_fn, adjoint,
                                                             conv.training)
    # snnTorch's graded spikes: its spike tensors hold c s_t (G1), their .grad dL/d(c s_t);
    # the twin's s_t and dL/ds_t are compared as c s_t and c dL/d(c s_t) (G2).
    for k, c in enumerate(conv.spike_scales):
        if c is not None:
            peer_spikes[k] = _steps_float64(peer_spikes[k])
            peer_spikes[k] = peer_spikes[k] / c.reshape(peer_spikes[k].shape[2:]) \
                if np.all(c != 0) else peer_spikes[k]
            if peer_adjoints[k] is not None:
                peer_adjoints[k] = _steps_float64(peer_adjoints[k])
                peer_adjoints[k] = peer_adjoints[k] * c.reshape(peer_adjoints[k].shape[2:])
    spikes_equal = all(len(a) == len(b) and all(np.array_equal(a[t].reshape(np.shape(b_t)), b_t)
                                                for t, b_t in enumerate(b))
                       for a, b in zip(spikes, peer_spikes))

    def as_peer(grad_of, name, mapped, shape):
        grad = mapped.scale * _to_peer_shape(grad_of[mapped.key], mapped.layer_shape, shape)
        return grad if mapped.mask is None else mapped.mask * grad

    errors = {}                                     # peer name -> (max |diff|, relative, where)
    for name, mapped in conv.params.items():
        theirs = peer_grads[name]
        errors[name] = _relative(as_peer(grads, name, mapped, theirs.shape), theirs)
    membrane_error = None
    if membrane is not None:                        # the readout's u_t (LI2), forward
        membrane_error = _relative(membrane.astype(np.float64).reshape(peer_membrane.shape),
                                   peer_membrane)[1]

    # The adjoints against the peer's, read once for every scan below: (layer, quantity)
    # -> (each step's largest |difference|, the peer's largest |value|).
    backward_quantities = {"dL/ds_t": (adjoints, peer_adjoints), "dL/dI_t": (currents, peer_currents)}
    gaps = {}

    def scan_backward(tolerance):
        """The first difference in the order the backward computes: per layer, last first,
        dL/ds_t (what arrives from above), then dL/dI_t (what leaves through (B4), (B6)).
        ``tolerance(layer, quantity, covers)``, at least rtol, is asked only where a step
        differs by more than rtol; ``covers(tol)``: no step of that layer's difference is
        beyond ``tol``."""
        for layer in range(len(adjoints) - 1, -1, -1):
            for quantity, (ours, theirs) in backward_quantities.items():
                if theirs[layer] is None:
                    continue
                if (layer, quantity) not in gaps:
                    gaps[layer, quantity] = _differences(ours[layer], theirs[layer], np.fmax)
                largest, scale = gaps[layer, quantity]
                scale = max(scale, 1e-300)

                def covers(tol, largest=largest, scale=scale):
                    return not np.any(largest > tol * scale)
                if covers(rtol):
                    continue
                where = _last_step_over(ours[layer], theirs[layer], largest,
                                        tolerance(layer, quantity, covers) * scale)
                if where is not None:
                    return (layer,) + where, quantity
        return None, None

    # (O3) in float32: the model's own round-off, from a float64 run of the twin. Every
    # tolerance is at least rtol, so where every error is already within rtol the estimate
    # cannot change the verdict, and (roundoff="auto") it is not run: the cost of compare is
    # then one peer run and one twin run (docs/howto/check_framework.md).
    within_rtol = (spikes_equal and all(e[1] <= rtol for e in errors.values())
                   and (membrane_error is None or membrane_error <= rtol)
                   and scan_backward(lambda layer, quantity, covers: rtol)[0] is None)
    roundoffs, note = {}, ""
    if dtype == np.float32 and within_rtol and roundoff == "auto":
        note = "every error within rtol, so the float32 round-off was not measured (roundoff='always' measures it)"
    elif dtype == np.float32:                       # the model's own float32 round-off
        twin = convert(conv.model, x_np.shape[2:], dtype=np.float64, peer=peer, output=conv.output)
        twin.dropout_masks = {id(module): conv.dropout_masks[id(module)] for module, _ in twin.dropouts}
        spikes64, adjoints64, grads64, _, membrane64, currents64 = _run_stlsim(
            twin, x_np.astype(np.float64), grad_output_fn, adjoint, conv.training, margins=False)
        if all(np.array_equal(a, b) for a, b in zip(spikes, spikes64)):
            for name, mapped in conv.params.items():
                shape = peer_grads[name].shape
                roundoffs[name] = _relative(as_peer(grads, name, mapped, shape),
                                            as_peer(grads64, name, mapped, shape))[1]
            # (O3l): the parameters of one layer share its adjoints, so their round-offs are
            # looks at one error; one look can be small by chance (seen: 5 x below the peer's
            # own on a conv bias), so each row takes the largest of its layer.
            layer_of = {name: mapped.key.split(".")[0] for name, mapped in conv.params.items()}
            pooled = {}
            for name, value in roundoffs.items():
                pooled[layer_of[name]] = max(pooled.get(layer_of[name], 0.0), value)
            roundoffs = {name: pooled[layer_of[name]] for name in roundoffs}
        else:
            note = ("stlsim's float32 and float64 runs fire differently on this input (a spike "
                    "decided by round-off), so no round-off estimate: tolerance rtol")
    rows = []
    for name, mapped in conv.params.items():
        max_abs, relative, where = errors[name]
        roundoff_row = roundoffs.get(name)
        tolerance = rtol if roundoff_row is None else max(rtol, ROUNDOFF_MULTIPLE * roundoff_row)
        rows.append(ParamRow(name=name, key=mapped.key, shape=tuple(peer_grads[name].shape),
                             max_abs=max_abs, relative=relative, where=where,
                             ok=relative <= tolerance, roundoff=roundoff_row, tolerance=tolerance))
    membrane_tolerance = None if membrane is None else rtol
    if membrane is not None and roundoffs:
        membrane_tolerance = max(rtol, ROUNDOFF_MULTIPLE * _relative(
            membrane.astype(np.float64), membrane64)[1])
    model_roundoff = max(roundoffs.values(), default=0.0) if roundoffs else None

    def tolerance(layer, quantity, covers):         # per layer: its adjoints' own round-off
        if not roundoffs:
            return rtol
        ours, ours64 = {"dL/ds_t": (adjoints, adjoints64), "dL/dI_t": (currents, currents64)}[quantity]
        return _roundoff_tolerance(ours[layer], ours64[layer], rtol, covers)
    noise = [row.name for row in rows if row.roundoff is not None and row.roundoff > 1e-2]
    if noise:
        note = (note + "; " if note else "") + (
            f"{', '.join(noise)}: float32 round-off of {max(roundoffs[n] for n in noise):.2g} of the "
            "gradient itself, a gradient that is round-off noise (zero in exact arithmetic, e.g. "
            "a bias before a BatchNorm in training)")
    divergence, which, quantity = None, None, None
    if not spikes_equal:
        peer_spikes = [_steps_float64(p) for p in peer_spikes]
        divergence, which = _divergence([s.reshape(p.shape) for s, p in zip(spikes, peer_spikes)],
                                        peer_spikes, 0.0, backward=False), "forward"
        quantity = "s_t"
    elif not within_rtol:
        divergence, quantity = scan_backward(tolerance)
        which = "backward" if divergence is not None else None
    min_margin = min(float(np.min(m)) for m in margins)
    return Report(peer=conv.peer, dtype=dtype.name, rtol=rtol, spikes_equal=spikes_equal,
                  rows=rows, min_margin=min_margin, first_divergence=divergence,
                  first_divergence_pass=which, loss=loss, roundoff=model_roundoff,
                  roundoff_multiple=ROUNDOFF_MULTIPLE if model_roundoff is not None else None,
                  roundoff_note=note, firing_rates=tuple(float(np.mean(s)) for s in spikes),
                  membrane_error=membrane_error, membrane_tolerance=membrane_tolerance,
                  first_divergence_of=quantity)
