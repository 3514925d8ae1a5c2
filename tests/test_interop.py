"""stlsim as a gradient oracle (stlsim.interop): convert a peer model, compare everything.

For each peer and its neurons: ``rep.ok`` in float64 (float32 for snnTorch, whose spikes
are float32), with per-neuron learnable thresholds and decays, conv layers, pooling and
P > 1. The oracle catches real bugs: a gradient scaled by 1 + 1e-6, a swapped surrogate
and a detached reset injected into the peer make ``rep.ok`` False, and ``rep.worst`` or
``rep.first_divergence`` point at them. Skipped where a peer is not installed.
"""
from __future__ import annotations

import subprocess
import sys

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import stlsim.interop as interop  # noqa: E402
from peer_helpers import random_spikes, scale_weights  # noqa: E402


spikes = functools.partial(random_spikes, density=0.3, dtype=np.float64)
scale_ = scale_weights


# ----------------------------------------------------------------------------- snnTorch --

def snntorch_model(kind="leaky", reset="subtract", learn=True):
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(0)
    thresholds = torch.rand(16) * 0.8 + 0.4
    if kind == "leaky":
        first = snn.Leaky(beta=torch.rand(16) * 0.5 + 0.4, threshold=thresholds, init_hidden=True,
                          learn_threshold=learn, learn_beta=learn, reset_mechanism=reset)
        last = snn.Leaky(beta=0.7, init_hidden=True, learn_beta=learn, output=True,
                         reset_mechanism=reset, spike_grad=snn.surrogate.fast_sigmoid(slope=10))
    else:
        first = snn.Synaptic(alpha=0.6, beta=0.8, threshold=thresholds, init_hidden=True,
                             learn_alpha=learn, learn_beta=learn, learn_threshold=learn)
        last = snn.Synaptic(alpha=0.5, beta=0.7, init_hidden=True, output=True,
                            spike_grad=snn.surrogate.atan(alpha=2.0))
    if kind == "leaky":
        first.spike_grad = snn.surrogate.fast_sigmoid(slope=10)
    return scale_(torch.nn.Sequential(torch.nn.Linear(12, 16), first, torch.nn.Linear(16, 6), last), 2.5)


@pytest.mark.parametrize("kind,reset", [("leaky", "subtract"), ("leaky", "zero"),
                                        ("synaptic", "subtract")])
def test_snntorch_models_agree(kind, reset):
    model = snntorch_model(kind, reset)
    rep = interop.compare(model, spikes((10, 4, 12)), seed=1)
    assert rep.ok, str(rep)
    assert rep.dtype == "float32" and rep.rtol == 1e-5
    names = {row.name for row in rep.rows}
    assert {"1.threshold", "1.beta"} <= names                     # per-neuron, learnable
    if kind == "synaptic":
        assert "1.alpha" in names
    net = interop.from_snntorch(model, input_shape=(12,))
    assert net.dtype == np.float64 and net.neurons[0].per_neuron_tau == (kind == "leaky")
    np.testing.assert_array_equal(net.params["0.weight"], model[0].weight.detach().double().numpy())


def test_snntorch_conv_pool_and_population_readout_agree():
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(1)
    model = scale_(torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), snn.Leaky(beta=0.8, init_hidden=True),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(48, 8),
        snn.Leaky(beta=0.9, init_hidden=True, output=True)), 3.0)
    x = spikes((8, 3, 1, 8, 8), seed=2)
    rep = interop.compare(model, x, loss="mse_rate", y=[0, 1, 3], population=2)
    assert rep.ok, str(rep)


# -------------------------------------------------------------------------- SpikingJelly --

def spikingjelly_model(plif=False, v_reset=0.0):
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import layer, neuron, surrogate
    torch.manual_seed(2)
    last = (neuron.ParametricLIFNode(init_tau=3.0, step_mode="m", v_reset=v_reset) if plif else
            neuron.LIFNode(tau=2.0, step_mode="m", v_reset=v_reset,
                           surrogate_function=surrogate.ATan(alpha=2.0)))
    return scale_(torch.nn.Sequential(
        layer.Conv2d(2, 4, 3, padding=1, step_mode="m"),
        neuron.LIFNode(tau=2.0, v_threshold=0.5, v_reset=v_reset, step_mode="m",
                       surrogate_function=surrogate.ATan(alpha=2.0) if not plif else surrogate.Sigmoid()),
        layer.AvgPool2d(2, step_mode="m"), layer.Flatten(step_mode="m"),
        torch.nn.Linear(64, 10), last).double(), 5.0)


@pytest.mark.parametrize("plif,v_reset", [(False, 0.0), (True, 0.0), (False, None)])
def test_spikingjelly_models_agree(plif, v_reset):
    model = spikingjelly_model(plif, v_reset)
    rep = interop.compare(model, spikes((10, 3, 2, 8, 8), seed=3), seed=4)
    assert rep.ok, str(rep)
    assert rep.dtype == "float64" and rep.max_rel_error <= 1e-10
    if plif:
        assert "5.w" in {row.name for row in rep.rows}


def test_a_gradient_scaled_by_one_part_per_million_is_caught():
    model = spikingjelly_model()
    model[4].weight.register_hook(lambda grad: grad * (1 + 1e-6))
    rep = interop.compare(model, spikes((10, 3, 2, 8, 8), seed=3), seed=4)
    assert not rep.ok and rep.spikes_equal
    assert rep.worst == "4.weight" and 5e-7 < rep.max_rel_error < 2e-6
    assert "<-- over tolerance" in str(rep)


# --------------------------------------------------------------------------------- Norse --

def norse_model(reset_method=None):
    pytest.importorskip("norse")
    import norse.torch as norse
    from norse.torch.functional.lif_box import LIFBoxParameters
    torch.manual_seed(3)
    box = LIFBoxParameters() if reset_method is None else LIFBoxParameters(reset_method=reset_method)
    return scale_(norse.SequentialState(
        torch.nn.Linear(10, 20), norse.LIFCell(), torch.nn.Linear(20, 6),
        norse.LIFBoxCell(p=box)).double(), 30.0)


def test_norse_models_agree_with_population_readout():
    rep = interop.compare(norse_model(), spikes((12, 4, 10), seed=5), loss="mse_rate",
                          y=[0, 1, 2, 0], population=2)
    assert rep.ok, str(rep)


def test_a_detached_reset_in_the_peer_is_caught():
    # The peer claims Norse's reset_value but detaches its spikes: a real bug class.
    def reset_value(z, v, reset, th):
        return (1 - z.detach()) * v + z.detach() * reset
    rep = interop.compare(norse_model(reset_method=reset_value), spikes((12, 4, 10), seed=5))
    assert rep.spikes_equal and not rep.ok
    assert rep.first_divergence is not None and rep.first_divergence_pass == "backward"


def test_a_swapped_surrogate_in_the_peer_is_caught():
    snn = pytest.importorskip("snntorch")
    model = snntorch_model()

    def fast_sigmoid(slope):                              # says fast_sigmoid(slope=10) ...
        def inner(x):
            assert slope == 10
            return snn.surrogate.ATan.apply(x, 2.0)       # ... but computes atan(alpha=2)
        inner.__module__, inner.__qualname__ = "snntorch.surrogate", "fast_sigmoid.<locals>.inner"
        return inner
    model[3].spike_grad = fast_sigmoid(10.0)
    rep = interop.compare(model, spikes((10, 4, 12)), seed=1)
    assert rep.spikes_equal and not rep.ok
    # the first adjoint that differs, scanning backwards, is dL/dI_t of the layer with the
    # swapped surrogate at the last step (its dL/ds_t is the probe on both sides)
    assert rep.first_divergence_pass == "backward" and rep.first_divergence[:2] == (1, 9)
    assert rep.first_divergence_of == "dL/dI_t"
    assert {row.name for row in rep.rows if not row.ok} >= {"2.weight", "3.beta"}


# -------------------------------------------------------------------------------- errors --

def test_unconvertible_models_are_clear_errors():
    snn = pytest.importorskip("snntorch")
    with pytest.raises(ValueError, match=r"`model\[1\]` of `from_snntorch` must be .*ReLU"):
        interop.from_snntorch(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
                                                  snn.Leaky(beta=0.5, init_hidden=True)), (3,))
    with pytest.raises(ValueError, match="init_hidden=True"):
        interop.from_snntorch(torch.nn.Sequential(torch.nn.Linear(3, 4), snn.Leaky(beta=0.5)), (3,))
    # a BatchNorm after pooling is a part of the block now (layers.BatchNorm); one after a
    # neuron belongs to no weight layer
    net = interop.from_snntorch(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AvgPool2d(2),
                                                    torch.nn.BatchNorm2d(2).eval(),
                                                    snn.Leaky(beta=0.5, init_hidden=True)), (1, 6, 6))
    assert type(net.layers[0].parts[2]).__name__ == "BatchNorm"
    with pytest.raises(ValueError, match=r"`model\[2\]`.*between a weight layer and its neuron"):
        interop.from_snntorch(torch.nn.Sequential(torch.nn.Linear(3, 4), snn.Leaky(beta=0.5, init_hidden=True),
                                                  torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2),
                                                  snn.Leaky(beta=0.5, init_hidden=True)), (3,))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        interop.from_snntorch("model", (3,))


def test_import_is_lazy():
    code = ("import sys, stlsim, stlsim.interop; "
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
