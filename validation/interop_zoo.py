"""The interop zoo: the peers' tutorial and example models as their docs write them, each
converted by ``stlsim.interop`` and compared on random input spikes.

    python3 -m validation.interop_zoo            # writes validation/results/interop_zoo.md

Widths are reduced where a tutorial's would make the NumPy reference slow (the layer
types, order, neurons, surrogates and options are the tutorial's); each entry cites its
source and says what differs. Weights are scaled so that every layer fires. Leaky-integrator
readouts (Norse's LICell, LI, LILinearCell; snnTorch's mem) are converted with their loss on
the membrane (docs/model.md 9.6). SpikingJelly's VotingLayer is stlsim's population readout
with a rate loss. ``tests/test_interop_zoo.py``
asserts ``rep.ok`` on every entry and dtype.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Entry:
    name: str
    peer: str
    source: str
    build: object                 # () -> torch model (float64 where the peer allows)
    input_shape: tuple
    dtypes: tuple
    T: int = 8
    B: int = 4
    gain: float = 3.0             # weights are multiplied by this
    compare: dict = field(default_factory=dict)   # extra keyword arguments of compare
    fast: bool = False            # in the default test suite
    note: str = ""


def _scale(model, factor):
    import torch
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                module.weight.mul_(factor)
    return model


# ------------------------------------------------------------------------------ snnTorch --

def _snn():
    import snntorch as snn
    return snn


def snntorch_fc(beta=0.95, grad=None, **leaky):
    """snnTorch tutorial 5: Linear(784, 1000) -> Leaky -> Linear(1000, 10) -> Leaky."""
    import torch
    snn = _snn()
    kw = {} if grad is None else {"spike_grad": grad}
    return torch.nn.Sequential(
        torch.nn.Linear(784, 100), snn.Leaky(beta=beta, init_hidden=True, **kw, **leaky),
        torch.nn.Linear(100, 10), snn.Leaky(beta=beta, init_hidden=True, output=True, **kw, **leaky))


def snntorch_csnn(pool_first=True):
    """snnTorch tutorials 6-7: Conv2d(1, 12, 5) -> MaxPool2d(2) -> Leaky -> Conv2d(12, 64, 5)
    -> MaxPool2d(2) -> Leaky -> Flatten -> Linear(64*4*4, 10) -> Leaky."""
    import torch
    snn = _snn()
    grad = snn.surrogate.fast_sigmoid(slope=25)

    def leaky(**kw):
        return snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True, **kw)
    conv1, conv2 = torch.nn.Conv2d(1, 12, 5), torch.nn.Conv2d(12, 64, 5)
    body = ([conv1, torch.nn.MaxPool2d(2), leaky(), conv2, torch.nn.MaxPool2d(2), leaky()] if pool_first
            else [conv1, leaky(), torch.nn.MaxPool2d(2), conv2, leaky(), torch.nn.MaxPool2d(2)])
    return torch.nn.Sequential(*body, torch.nn.Flatten(), torch.nn.Linear(64 * 4 * 4, 10),
                               leaky(output=True))


def snntorch_synaptic():
    """snnTorch tutorial 5/Synaptic: Linear -> Synaptic(alpha 0.9, beta 0.8) -> Linear -> Synaptic."""
    import torch
    snn = _snn()
    return torch.nn.Sequential(
        torch.nn.Linear(784, 100), snn.Synaptic(alpha=0.9, beta=0.8, init_hidden=True),
        torch.nn.Linear(100, 10), snn.Synaptic(alpha=0.9, beta=0.8, init_hidden=True, output=True))


def snntorch_learnable():
    """snnTorch tutorial 5 with learn_beta and per-neuron learn_threshold."""
    import torch
    snn = _snn()
    return torch.nn.Sequential(
        torch.nn.Linear(784, 100),
        snn.Leaky(beta=torch.rand(100) * 0.5 + 0.45, threshold=torch.rand(100) * 0.5 + 0.75,
                  learn_beta=True, learn_threshold=True, init_hidden=True),
        torch.nn.Linear(100, 10), snn.Leaky(beta=0.9, learn_beta=True, init_hidden=True, output=True))


def snntorch_per_channel():
    """A conv layer with a per-channel (C, 1, 1) learned threshold and beta."""
    import torch
    snn = _snn()
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 5), torch.nn.MaxPool2d(2),
        snn.Leaky(beta=torch.rand(8, 1, 1) * 0.4 + 0.5, threshold=torch.rand(8, 1, 1) + 0.5,
                  learn_beta=True, learn_threshold=True, init_hidden=True),
        torch.nn.Flatten(), torch.nn.Linear(8 * 12 * 12, 10),
        snn.Leaky(beta=0.8, init_hidden=True, output=True))


def _snntorch_dropout_fc():
    """snnTorch tutorial 5's FC with a torch Dropout after each hidden layer, in training."""
    import torch
    snn = _snn()
    return torch.nn.Sequential(
        torch.nn.Linear(784, 100), snn.Leaky(beta=0.95, init_hidden=True), torch.nn.Dropout(0.3),
        torch.nn.Linear(100, 10), snn.Leaky(beta=0.95, init_hidden=True, output=True))


def snntorch_synaptic_zero():
    """snnTorch Synaptic with reset_mechanism="zero" (the new membrane zeroed, input included)."""
    import torch
    snn = _snn()
    return torch.nn.Sequential(
        torch.nn.Linear(784, 100), snn.Synaptic(alpha=0.9, beta=0.8, init_hidden=True,
                                                reset_mechanism="zero"),
        torch.nn.Linear(100, 10), snn.Synaptic(alpha=0.9, beta=0.8, init_hidden=True, output=True,
                                               reset_mechanism="zero"))


def snntorch_mixed_surrogates():
    """snnTorch tutorial 5's FC net with atan in the hidden layer and fast_sigmoid at the output."""
    import torch
    snn = _snn()
    return torch.nn.Sequential(
        torch.nn.Linear(784, 100), snn.Leaky(beta=0.9, init_hidden=True,
                                             spike_grad=snn.surrogate.atan(2.0)),
        torch.nn.Linear(100, 10), snn.Leaky(beta=0.9, init_hidden=True, output=True,
                                            spike_grad=snn.surrogate.fast_sigmoid(25)))


def snntorch_bn_csnn():
    """A snnTorch CSNN with BatchNorm2d after each conv, in training mode (per-step statistics)."""
    import torch
    snn = _snn()
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 12, 5), torch.nn.BatchNorm2d(12), torch.nn.MaxPool2d(2),
        snn.Leaky(beta=0.5, init_hidden=True), torch.nn.Conv2d(12, 16, 5), torch.nn.BatchNorm2d(16),
        torch.nn.MaxPool2d(2), snn.Leaky(beta=0.5, init_hidden=True), torch.nn.Flatten(),
        torch.nn.Linear(16 * 4 * 4, 10), snn.Leaky(beta=0.5, init_hidden=True, output=True))


def _snntorch_surrogate_fc(factory, *args):
    def build():
        return snntorch_fc(beta=0.9, grad=getattr(_snn().surrogate, factory)(*args))
    build.__doc__ = f"snnTorch tutorial 5's FC net with surrogate.{factory}{args}"
    return build


# -------------------------------------------------------------------------- SpikingJelly --

def _sj():
    from spikingjelly.activation_based import functional, layer, neuron, surrogate
    return functional, layer, neuron, surrogate


def sj_lif_fc(step_mode="m", **node):
    """spikingjelly/activation_based/examples/lif_fc_mnist.py: Flatten -> Linear(784, 10,
    bias=False) -> LIFNode(tau=2.0, surrogate ATan())."""
    import torch
    functional, layer, neuron, surrogate = _sj()
    node = {"tau": 2.0, "surrogate_function": surrogate.ATan(), **node}
    model = torch.nn.Sequential(layer.Flatten(), layer.Linear(28 * 28, 10, bias=False),
                                neuron.LIFNode(**node))
    functional.set_step_mode(model, step_mode)
    return model


def sj_fc2(node_cls="LIFNode", **node):
    """Two-layer FC with the given SpikingJelly neuron (the tutorials' lif_fc with a hidden layer)."""
    import torch
    functional, layer, neuron, _ = _sj()
    cls = getattr(neuron, node_cls)
    model = torch.nn.Sequential(layer.Flatten(), layer.Linear(784, 100), cls(**node),
                                layer.Linear(100, 10), cls(**node))
    functional.set_step_mode(model, "m")
    return model


def sj_csnn(channels=8):
    """spikingjelly/activation_based/examples/conv_fashion_mnist.py CSNN (channels 128 there)."""
    import torch
    functional, layer, neuron, surrogate = _sj()
    model = torch.nn.Sequential(
        layer.Conv2d(1, channels, kernel_size=3, padding=1, bias=False), layer.BatchNorm2d(channels),
        neuron.IFNode(surrogate_function=surrogate.ATan()), layer.MaxPool2d(2, 2),
        layer.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
        layer.BatchNorm2d(channels), neuron.IFNode(surrogate_function=surrogate.ATan()),
        layer.MaxPool2d(2, 2), layer.Flatten(),
        layer.Linear(channels * 7 * 7, channels * 4 * 4, bias=False),
        neuron.IFNode(surrogate_function=surrogate.ATan()),
        layer.Linear(channels * 4 * 4, 10, bias=False), neuron.IFNode(surrogate_function=surrogate.ATan()))
    functional.set_step_mode(model, "m")
    return _eval_with_statistics(model)


def sj_plif_net(channels=8, hidden=64):
    """spikingjelly/activation_based/model/parametric_lif_net.py MNISTNet (channels 128,
    hidden 2048 there), ParametricLIFNode(ATan, detach_reset); its VotingLayer is stlsim's
    population readout (P = 10)."""
    import torch
    functional, layer, neuron, surrogate = _sj()

    def node():
        return neuron.ParametricLIFNode(surrogate_function=surrogate.ATan(), detach_reset=True)
    model = torch.nn.Sequential(
        layer.Conv2d(1, channels, kernel_size=3, padding=1, bias=False), layer.BatchNorm2d(channels),
        node(), layer.MaxPool2d(2, 2),
        layer.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
        layer.BatchNorm2d(channels), node(), layer.MaxPool2d(2, 2), layer.Flatten(),
        layer.Dropout(0.5), layer.Linear(channels * 7 * 7, hidden), node(), layer.Dropout(0.5),
        layer.Linear(hidden, 100), node())
    functional.set_step_mode(model, "m")
    return _eval_with_statistics(model)


def _eval_with_statistics(model):
    """Eval mode with running statistics and affine values away from their defaults."""
    import torch
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.8, 1.5)
                module.bias.uniform_(-0.1, 0.3)
    return model.eval()


def _sj_surrogate_fc(kind, **kwargs):
    def build():
        surrogate = _sj()[3]
        return sj_fc2(surrogate_function=getattr(surrogate, kind)(**kwargs))
    build.__doc__ = f"SpikingJelly two-layer FC, LIFNode with surrogate.{kind}({kwargs})"
    return build


# --------------------------------------------------------------------------------- Norse --

def norse_fc(cell="LIFCell", p=None):
    """Norse's MNIST task (norse/task/mnist.py): Linear -> LIFCell -> Linear -> (LI readout,
    here a LIFCell)."""
    import norse.torch as norse
    import torch
    cls = getattr(norse, cell)
    make = (lambda: cls()) if p is None else (lambda: cls(p()))
    return norse.SequentialState(torch.nn.Flatten(), torch.nn.Linear(784, 100), make(),
                                 torch.nn.Linear(100, 10), make())


def norse_sequence():
    """Norse's sequence modules: SequentialState(Linear, LIF, Linear, LIF) on (T, B, N)."""
    import norse.torch as norse
    import torch
    return norse.SequentialState(torch.nn.Linear(784, 100), norse.LIF(), torch.nn.Linear(100, 10),
                                 norse.LIF())


def norse_conv():
    """norse/torch/models/conv.py ConvNet as a SequentialState (channels 20, 50 and fc 500
    there; its 10x conv gain, ReLU and LILinearCell readout left out)."""
    import norse.torch as norse
    import torch
    return norse.SequentialState(
        torch.nn.Conv2d(1, 6, 5), norse.LIFCell(), torch.nn.MaxPool2d(2), torch.nn.Conv2d(6, 12, 5),
        norse.LIFCell(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(12 * 4 * 4, 50),
        norse.LIFCell(), torch.nn.Linear(50, 10), norse.LIFCell())


def norse_fc_li(sequence=False):
    """Norse's MNIST FC with its leaky-integrator readout: Linear -> LIFCell -> Linear ->
    LICell (``LIF`` and ``LI`` sequence modules with ``sequence``), the loss on the
    readout's voltage (norse/task/mnist.py: log_softmax of its maximum over time)."""
    import norse.torch as norse
    import torch
    if sequence:
        return norse.SequentialState(torch.nn.Linear(784, 100), norse.LIF(), torch.nn.Linear(100, 10),
                                     norse.LI())
    return norse.SequentialState(torch.nn.Flatten(), torch.nn.Linear(784, 100), norse.LIFCell(),
                                 torch.nn.Linear(100, 10), norse.LICell())


def norse_convnet(v_th=None):
    """norse/torch/models/conv.py ConvNet (ConvNet4 with ``v_th`` 0.7 in its first two cells,
    the model of norse/task/mnist.py) as a SequentialState, in its order: Conv2d -> LIFCell ->
    max_pool2d -> 10 x Conv2d -> LIFCell -> max_pool2d -> Linear -> LIFCell -> ReLU ->
    LILinearCell. Channels 6, 12 and fc 50 (20, 50, 500 there; 32, 64, 1024 in ConvNet4); the
    10 x gain is folded into conv 2's weights (the same forward; the peer's gradient with
    respect to the unscaled weights is 10 x the one compared here)."""
    import norse.torch as norse
    import torch
    from norse.torch.functional.lif import LIFParameters

    def cell(first=False):
        extra = {"v_th": torch.as_tensor(v_th)} if (v_th is not None and first) else {}
        return norse.LIFCell(p=LIFParameters(method="super", alpha=torch.tensor(100.0), **extra))
    conv2 = torch.nn.Conv2d(6, 12, 5)
    with torch.no_grad():
        conv2.weight.mul_(10.0)
        conv2.bias.mul_(10.0)
    return norse.SequentialState(
        torch.nn.Conv2d(1, 6, 5), cell(True), torch.nn.MaxPool2d(2), conv2, cell(True),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(12 * 4 * 4, 50), cell(),
        torch.nn.ReLU(), norse.LILinearCell(50, 10))


def norse_trained():
    """A LIFCell whose LIFParameters tensors are trained (tau_mem_inv per neuron, v_th)."""
    import torch
    from norse.torch.functional.lif import LIFParameters
    return norse_fc(p=lambda: LIFParameters(tau_mem_inv=torch.nn.Parameter(torch.tensor(100.0)),
                                            v_th=torch.nn.Parameter(torch.tensor(1.0))))


def _norse_method(method):
    def build():
        import torch
        from norse.torch.functional.lif_box import LIFBoxParameters
        return norse_fc("LIFBoxCell", p=lambda: LIFBoxParameters(method=method, alpha=torch.tensor(2.0)))
    build.__doc__ = f"Norse LIFBoxCell FC with method={method!r} (alpha 2)"
    return build


F32, F64 = "float32", "float64"
ZOO = [
    Entry("snntorch tutorial 5 FC (atan)", "snntorch", "snnTorch tutorial 5", snntorch_fc, (784,),
          (F32,), gain=3.0, fast=True, note="hidden 100 (1000 there); Sequential idiom of tutorial 6"),
    Entry("snntorch tutorials 6-7 CSNN", "snntorch", "snnTorch tutorials 6, 7", snntorch_csnn,
          (1, 28, 28), (F32,), note="pooling before the neuron, as written"),
    Entry("snntorch MNIST CSNN, neuron before pooling", "snntorch", "the oracle cost benchmark's model",
          lambda: snntorch_csnn(pool_first=False), (1, 28, 28), (F32,), T=25, B=16),
    Entry("snntorch Synaptic FC", "snntorch", "snnTorch tutorial 5 (Synaptic)", snntorch_synaptic,
          (784,), (F32,), fast=True),
    Entry("snntorch tutorial 5 FC, loss on mem_rec", "snntorch", "snnTorch tutorial 5",
          snntorch_fc, (784,), (F32,), fast=True,
          compare={"output": "membrane", "loss": "ce_membrane_sum"},
          note="CrossEntropyLoss of every step's mem, summed, as the tutorial; reset subtract"),
    Entry("snntorch Synaptic FC, loss on mem", "snntorch", "snnTorch tutorial 5 (Synaptic)",
          snntorch_synaptic, (784,), (F32,), compare={"output": "membrane", "loss": "ce_membrane_sum"}),
    Entry("snntorch output Leaky reset none, loss on mem", "snntorch", "Leaky(reset_mechanism='none')",
          lambda: snntorch_fc(beta=0.8, reset_mechanism="none"), (784,), (F32,), gain=1.0,
          compare={"output": "membrane"}),
    Entry("snntorch learnable beta and thresholds", "snntorch", "snnTorch Leaky(learn_beta, "
          "learn_threshold)", snntorch_learnable, (784,), (F32,)),
    Entry("snntorch learnable beta and thresholds, loss on mem", "snntorch", "snnTorch Leaky(learn_beta, "
          "learn_threshold)", snntorch_learnable, (784,), (F32,),
          compare={"output": "membrane", "loss": "ce_membrane_sum"},
          note="the output Leaky's trained beta read through its mem (BLI3)"),
    Entry("snntorch per-channel threshold, beta", "snntorch", "per-channel learned threshold and beta", snntorch_per_channel,
          (1, 28, 28), (F32,)),
    Entry("snntorch reset zero", "snntorch", "Leaky(reset_mechanism='zero')",
          lambda: snntorch_fc(reset_mechanism="zero"), (784,), (F32,)),
    Entry("snntorch reset none", "snntorch", "Leaky(reset_mechanism='none')",
          lambda: snntorch_fc(beta=0.8, reset_mechanism="none"), (784,), (F32,), gain=1.0),
    Entry("snntorch Synaptic zero reset", "snntorch", "Synaptic(reset_mechanism='zero')",
          snntorch_synaptic_zero, (784,), (F32,)),
    Entry("snntorch reset_delay=False", "snntorch", "Leaky(reset_delay=False)",
          lambda: snntorch_fc(reset_delay=False), (784,), (F32,),
          note="the immediate reset (L2i), (L4i)"),
    Entry("snntorch reset zero, reset_delay=False", "snntorch",
          "Leaky(reset_mechanism='zero', reset_delay=False)",
          lambda: snntorch_fc(reset_mechanism="zero", reset_delay=False), (784,), (F32,),
          note="the immediate reset (L2i), (L4i)"),
    Entry("snntorch surrogate per layer", "snntorch", "atan hidden, fast_sigmoid output",
          snntorch_mixed_surrogates, (784,), (F32,)),
    Entry("snntorch CSNN with BatchNorm2d (training)", "snntorch", "Conv2d-BatchNorm2d-MaxPool2d-Leaky",
          snntorch_bn_csnn, (1, 28, 28), (F32,), gain=1.0, note="16 channels in conv 2; its conv biases have a zero exact gradient (BatchNorm removes them): relative error ~1 is round-off noise on both sides, within 4 x its round-off"),
    Entry("snntorch fast_sigmoid", "snntorch", "snntorch.surrogate", _snntorch_surrogate_fc("fast_sigmoid", 25),
          (784,), (F32,)),
    Entry("snntorch sigmoid", "snntorch", "snntorch.surrogate", _snntorch_surrogate_fc("sigmoid", 5),
          (784,), (F32,)),
    Entry("snntorch straight_through_estimator", "snntorch", "snntorch.surrogate",
          _snntorch_surrogate_fc("straight_through_estimator"), (784,), (F32,)),
    Entry("snntorch triangular", "snntorch", "snntorch.surrogate", _snntorch_surrogate_fc("triangular", 1),
          (784,), (F32,)),
    Entry("snntorch heaviside", "snntorch", "snntorch.surrogate", _snntorch_surrogate_fc("heaviside"),
          (784,), (F32,)),
    Entry("snntorch spike_rate_escape", "snntorch", "snntorch.surrogate",
          _snntorch_surrogate_fc("spike_rate_escape", 1, 25), (784,), (F32,)),
    Entry("snntorch SFS", "snntorch", "snntorch.surrogate", _snntorch_surrogate_fc("SFS", 25, -0.5),
          (784,), (F32,)),
    Entry("spikingjelly lif_fc_mnist", "spikingjelly", "examples/lif_fc_mnist.py", sj_lif_fc,
          (1, 28, 28), (F64, F32), gain=6.0, fast=True),
    Entry("spikingjelly lif_fc_mnist, step_mode s", "spikingjelly", "examples/lif_fc_mnist.py",
          lambda: sj_lif_fc("s"), (1, 28, 28), (F64,), gain=6.0, fast=True),
    Entry("spikingjelly conv_fashion_mnist CSNN", "spikingjelly", "examples/conv_fashion_mnist.py",
          sj_csnn, (1, 28, 28), (F64, F32), gain=2.0, note="channels 8 (128 there); eval mode"),
    Entry("spikingjelly PLIF MNISTNet", "spikingjelly", "model/parametric_lif_net.py", sj_plif_net,
          (1, 28, 28), (F64, F32), gain=8.0, compare={"loss": "mse_rate", "population": 10},
          note="channels 8, hidden 64; eval (Dropout identity); VotingLayer = population 10"),
    Entry("spikingjelly PLIF MNISTNet, training", "spikingjelly", "model/parametric_lif_net.py",
          lambda: sj_plif_net().train(), (1, 28, 28), (F64, F32), gain=8.0,
          compare={"loss": "mse_rate", "population": 10},
          note="train(): BatchNorm2d with statistics pooled over T and B, Dropout with "
               "SpikingJelly's own masks replayed"),
    Entry("snntorch FC with Dropout, training", "snntorch", "snnTorch tutorial 5 with nn.Dropout",
          lambda: _snntorch_dropout_fc(), (784,), (F32,), fast=True,
          note="torch's masks, one per step, replayed"),
    Entry("spikingjelly PLIF FC", "spikingjelly", "neuron.ParametricLIFNode",
          lambda: sj_fc2("ParametricLIFNode"), (1, 28, 28), (F64, F32), gain=8.0),
    Entry("spikingjelly soft reset", "spikingjelly", "LIFNode(v_reset=None)",
          lambda: sj_fc2(v_reset=None), (1, 28, 28), (F64, F32), gain=8.0),
    Entry("spikingjelly detach_reset, decay_input False", "spikingjelly", "LIFNode(detach_reset=True, "
          "decay_input=False)", lambda: sj_fc2(detach_reset=True, decay_input=False, tau=3.0),
          (1, 28, 28), (F64, F32), gain=2.0),
    Entry("spikingjelly PiecewiseQuadratic", "spikingjelly", "surrogate.PiecewiseQuadratic",
          _sj_surrogate_fc("PiecewiseQuadratic", alpha=1.0), (1, 28, 28), (F64, F32), gain=8.0),
    Entry("spikingjelly Erf", "spikingjelly", "surrogate.Erf", _sj_surrogate_fc("Erf", alpha=2.0),
          (1, 28, 28), (F64, F32), gain=8.0),
    Entry("spikingjelly SoftSign", "spikingjelly", "surrogate.SoftSign", _sj_surrogate_fc("SoftSign", alpha=2.0),
          (1, 28, 28), (F64, F32), gain=8.0),
    Entry("spikingjelly PiecewiseExp", "spikingjelly", "surrogate.PiecewiseExp",
          _sj_surrogate_fc("PiecewiseExp", alpha=1.0), (1, 28, 28), (F64, F32), gain=8.0),
    Entry("spikingjelly PiecewiseLeakyReLU", "spikingjelly", "surrogate.PiecewiseLeakyReLU",
          _sj_surrogate_fc("PiecewiseLeakyReLU", w=1.0, c=0.01), (1, 28, 28), (F64, F32), gain=8.0),
    Entry("norse MNIST FC (LIFCell)", "norse", "norse/task/mnist.py", norse_fc, (1, 28, 28), (F64, F32),
          T=16, gain=30.0, fast=True, note="LIFCell in place of the LI readout"),
    Entry("norse MNIST FC, LICell readout", "norse", "norse/task/mnist.py", norse_fc_li, (1, 28, 28),
          (F64, F32), T=16, gain=30.0, fast=True, compare={"loss": "ce_membrane_max"},
          note="hidden 100; loss: log_softmax of the max voltage over time, as mnist.py"),
    Entry("norse LIF and LI sequence modules", "norse", "norse.LIF, norse.LI (SNN)",
          lambda: norse_fc_li(sequence=True), (784,), (F64, F32), T=16, gain=30.0),
    Entry("norse ConvNet, LILinearCell readout", "norse", "norse/torch/models/conv.py ConvNet",
          norse_convnet, (1, 28, 28), (F64, F32), T=16, gain=30.0,
          compare={"loss": "ce_membrane_max"},
          note="as written but channels 6, 12, fc 50; 10x conv gain folded into the weights"),
    Entry("norse ConvNet4 (MNIST task), LILinearCell readout", "norse",
          "norse/torch/models/conv.py ConvNet4, norse/task/mnist.py", lambda: norse_convnet(0.7),
          (1, 28, 28), (F64, F32), T=16, gain=30.0, compare={"loss": "ce_membrane_max"},
          note="as written but channels 6, 12, fc 50; v_th 0.7; 10x conv gain folded"),
    Entry("norse LIF sequence modules", "norse", "norse.LIF (SNN)", norse_sequence, (784,),
          (F64, F32), T=16, gain=30.0),
    Entry("norse ConvNet", "norse", "norse/torch/models/conv.py", norse_conv, (1, 28, 28), (F64, F32),
          T=16, gain=30.0, note="channels 6, 12, fc 50; no 10x gain, ReLU or LI readout"),
    Entry("norse LIFBoxCell FC", "norse", "norse.LIFBoxCell", lambda: norse_fc("LIFBoxCell"),
          (1, 28, 28), (F64, F32), T=16, gain=30.0),
    Entry("norse trained LIFParameters", "norse", "LIFParameters(tau_mem_inv=Parameter, v_th=Parameter)",
          norse_trained, (1, 28, 28), (F64, F32), T=16, gain=30.0),
    Entry("norse method tanh", "norse", "LIFBoxParameters(method='tanh')", _norse_method("tanh"),
          (1, 28, 28), (F64, F32), T=16, gain=30.0),
    Entry("norse method circ", "norse", "LIFBoxParameters(method='circ')", _norse_method("circ"),
          (1, 28, 28), (F64, F32), T=16, gain=30.0),
    Entry("norse method heavi_erfc", "norse", "LIFBoxParameters(method='heavi_erfc')",
          _norse_method("heavi_erfc"), (1, 28, 28), (F64, F32), T=16, gain=30.0),
]


def run(entry: Entry, dtype: str, seed: int = 0, roundoff: str = "always"):
    """Build the entry's model (seeded), compare it in ``dtype``; returns the Report. The
    float32 round-off is measured on every entry (``roundoff="always"``) for the table."""
    import torch

    import stlsim.interop as interop
    torch.manual_seed(seed)
    torch_dtype = torch.float32 if dtype == F32 else torch.float64
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)     # tensors the model makes itself (Norse's p) too
    try:
        model = _scale(entry.build(), entry.gain).to(torch_dtype)
    finally:
        torch.set_default_dtype(default)
    x = (np.random.default_rng(seed).random((entry.T, entry.B) + entry.input_shape) < 0.3)
    kwargs = dict(entry.compare)
    if kwargs.get("loss", "probe") != "probe":     # labels for a rate or membrane loss
        kwargs["y"] = np.arange(entry.B) % 10
    return interop.compare(model, x.astype(dtype), seed=seed, dtype=dtype, roundoff=roundoff, **kwargs)


def main(path="validation/results/interop_zoo.md"):
    header = ("| model | peer | source | dtype | ok | max rel. error | float32 round-off | "
              "error / round-off | lowest firing rate | note |")
    rows = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    failures = 0
    for entry in ZOO:
        for dtype in entry.dtypes:
            rep = run(entry, dtype)
            failures += not rep.ok
            roundoff = "-" if rep.roundoff is None else f"{rep.roundoff:.1e}"
            ratio = "-" if not rep.roundoff else f"{rep.max_rel_error / rep.roundoff:.2g}"
            rows.append(f"| {entry.name} | {entry.peer} | {entry.source} | {dtype} | "
                        f"{'OK' if rep.ok else 'DIFFERENT'} | {rep.max_rel_error:.1e} | {roundoff} | "
                        f"{ratio} | {min(rep.firing_rates):.2g} | {entry.note} |")
            print(rows[-1], flush=True)
    with open(path, "w") as out:
        out.write("\n".join(rows) + "\n")
    return failures


if __name__ == "__main__":
    sys.exit(1 if main(*sys.argv[1:]) else 0)
