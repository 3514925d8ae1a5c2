"""Synapse blocks (docs/model.md (L1b), (B4b)): pooling, BatchNorm (eval) and Dropout (eval)
between a weight layer and its neurons, as the peers' tutorials write them.

* Smooth mode: BPTT through every kind of block equals float64 finite differences.
* Spiking mode: snnTorch tutorial 7's CSNN (Conv2d -> MaxPool2d -> Leaky) and SpikingJelly's
  CSNN and PLIF net (BatchNorm2d, Dropout in eval) agree with the peers.
* Negative: pooling after the neuron (the nearest wrong order) gives other spikes.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import stlsim
from stlsim.grad.check import compare, finite_difference_grads
from stlsim.layers import SynapseBlock


def block_net(kind, seed=0):
    if kind == "conv-maxpool":
        first = SynapseBlock([stlsim.Conv2d(1, 3, 3, padding=1, init_gain=3.0), stlsim.MaxPool2d(2)])
    elif kind == "conv-avgpool":
        first = SynapseBlock([stlsim.Conv2d(1, 3, 3, padding=1, init_gain=3.0), stlsim.AvgPool2d(2)])
    else:                                                   # BatchNorm (eval) and pooling
        first = SynapseBlock([stlsim.Conv2d(1, 3, 3, padding=1, batchnorm=True, init_gain=3.0),
                              stlsim.AvgPool2d(2)])
    last = SynapseBlock([stlsim.Dense(48, 4, init_gain=3.0), stlsim.Dropout(0.4)])
    net = stlsim.Network([first, stlsim.Flatten(), last], neuron=stlsim.LIF(tau=0.6, theta_init=0.3),
                         surrogate="sigmoid", population=2, seed=seed, backend="numpy",
                         input_shape=(1, 8, 8))
    rng = np.random.default_rng(seed + 3)
    for key in net.buffers:
        net.buffers[key][:] = rng.uniform(0.5, 1.5, net.buffers[key].shape) if key.endswith("var") \
            else rng.normal(0, 0.3, net.buffers[key].shape)
    for key in net.params:
        if "bn_" in key:
            net.params[key][:] = rng.uniform(0.5, 1.5, net.params[key].shape)
    return net


@pytest.mark.parametrize("kind", ["conv-maxpool", "conv-avgpool", "conv-bn-avgpool"])
def test_smooth_bptt_through_synapse_blocks_matches_finite_differences(kind):
    net = block_net(kind)
    x = (np.random.default_rng(1).random((5, 2, 1, 8, 8)) < 0.5).astype(np.float64)
    y = np.array([0, 1])
    _, grads = net.loss_and_grad(x, y, smooth=True)
    fd = finite_difference_grads(net, x, y, step=1e-5)
    errors = compare(grads, fd)
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors
    assert all(e["scale"] > 1e-6 for e in errors.values()), errors
    assert {"0.0.weight", "0.theta", "2.0.weight"} <= set(grads)


def test_a_block_in_training_mode_runs_its_dropout_masks():
    net = block_net("conv-maxpool")
    x = (np.random.default_rng(1).random((5, 2, 1, 8, 8)) < 0.5).astype(np.float64)
    eval_rates = net.forward(x).rates
    train_rates = net.forward(x, training=True).rates
    assert not np.array_equal(eval_rates, train_rates)


torch = pytest.importorskip("torch")
import stlsim.interop as interop  # noqa: E402
from peer_helpers import random_spikes, scale_weights  # noqa: E402


spikes = functools.partial(random_spikes, density=0.3, dtype=np.float32)
scaled = scale_weights


def tutorial7_csnn(pool_first=True, seed=0):
    """snnTorch tutorial 7: Conv2d(1, 12, 5) -> MaxPool2d(2) -> Leaky -> Conv2d(12, 64, 5) ->
    MaxPool2d(2) -> Leaky -> Flatten -> Linear(64*4*4, 10) -> Leaky (beta 0.5, fast_sigmoid 25)."""
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(seed)
    grad = snn.surrogate.fast_sigmoid(slope=25)

    def leaky(**kw):
        return snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True, **kw)
    conv1, conv2 = torch.nn.Conv2d(1, 12, 5), torch.nn.Conv2d(12, 64, 5)
    if pool_first:
        body = [conv1, torch.nn.MaxPool2d(2), leaky(), conv2, torch.nn.MaxPool2d(2), leaky()]
    else:
        body = [conv1, leaky(), torch.nn.MaxPool2d(2), conv2, leaky(), torch.nn.MaxPool2d(2)]
    return scaled(torch.nn.Sequential(*body, torch.nn.Flatten(), torch.nn.Linear(64 * 4 * 4, 10),
                                      leaky(output=True)), 3.0)


def test_snntorch_tutorial_7_csnn_with_pooling_before_the_neuron_agrees():
    # Before: refused ("pooling before the neuron is not a stlsim layer").
    model = tutorial7_csnn()
    x = spikes((8, 4, 1, 28, 28), seed=2)
    rep = interop.compare(model, x, seed=2)
    assert rep.ok, str(rep)
    net = interop.from_snntorch(model, (1, 28, 28))
    assert isinstance(net.layers[0], SynapseBlock) and net.params["0.theta"].shape == (12, 12, 12)


def test_pooling_after_the_neuron_is_measurably_different():
    before = tutorial7_csnn(pool_first=True)
    after = tutorial7_csnn(pool_first=False)
    x = spikes((8, 4, 1, 28, 28), seed=2)
    net_before = interop.from_snntorch(before, (1, 28, 28), dtype=np.float32)
    net_after = interop.from_snntorch(after, (1, 28, 28), dtype=np.float32)
    out_before = net_before.forward(x).spikes[-1]
    out_after = net_after.forward(x).spikes[-1]
    assert not np.array_equal(out_before, out_after)


def spikingjelly_csnn(channels=4, plif=False):
    """SpikingJelly's examples/conv_fashion_mnist.py CSNN (IFNode, ATan), or its
    model/parametric_lif_net.py MNISTNet (ParametricLIFNode, Dropout 0.5), in eval."""
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron, surrogate
    torch.manual_seed(5)

    def node():
        if plif:
            return neuron.ParametricLIFNode(surrogate_function=surrogate.ATan(), detach_reset=True)
        return neuron.IFNode(surrogate_function=surrogate.ATan())
    body = [layer.Conv2d(1, channels, kernel_size=3, padding=1, bias=False), layer.BatchNorm2d(channels),
            node(), layer.MaxPool2d(2, 2),
            layer.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
            layer.BatchNorm2d(channels), node(), layer.MaxPool2d(2, 2), layer.Flatten()]
    if plif:
        body += [layer.Dropout(0.5), layer.Linear(channels * 7 * 7, 32), node(), layer.Dropout(0.5),
                 layer.Linear(32, 20), node()]
    else:
        body += [layer.Linear(channels * 7 * 7, channels * 4 * 4, bias=False), node(),
                 layer.Linear(channels * 4 * 4, 10, bias=False), node()]
    model = torch.nn.Sequential(*body)
    functional.set_step_mode(model, step_mode="m")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.8, 1.5)
                module.bias.uniform_(-0.1, 0.3)
    return scaled(model.double().eval(), 2.0)


@pytest.mark.parametrize("plif", [False, True])
def test_spikingjelly_csnn_with_batchnorm_and_dropout_in_eval_agrees(plif):
    # Before: refused (layer.BatchNorm2d; layer.Dropout even in eval).
    model = spikingjelly_csnn(plif=plif)
    x = spikes((6, 3, 1, 28, 28), seed=4, dtype=np.float64)
    rep = interop.compare(model, x, seed=4, loss="mse_rate" if plif else "probe",
                          y=[0, 1, 1] if plif else None, population=2 if plif else 1)
    assert rep.ok, str(rep)
    names = {row.name for row in rep.rows}
    assert {"1.weight", "1.bias", "5.weight"} <= names                 # BatchNorm's gamma, beta


def test_the_spikingjelly_plif_net_in_training_agrees():
    # Before: refused (a multi-step BatchNorm2d, then a Dropout, in training). Now pooled
    # batch statistics and the peer's own dropout masks (tests/test_interop_batchnorm.py).
    model = spikingjelly_csnn(plif=True)
    model.train()
    rep = interop.compare(model, spikes((6, 4, 1, 28, 28), seed=2, dtype=np.float64), seed=2)
    assert rep.ok, str(rep)


@pytest.mark.parametrize("v_reset", [0.0, None])
def test_spikingjelly_single_step_mode_agrees(v_reset):
    # Before: refused (step_mode='s'). The oracle calls the model once per step.
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron
    torch.manual_seed(7)
    model = torch.nn.Sequential(layer.Linear(8, 10), neuron.LIFNode(tau=2.0, v_reset=v_reset),
                                layer.Linear(10, 4), neuron.ParametricLIFNode(v_reset=v_reset))
    functional.set_step_mode(model, "s")
    model = scaled(model.double(), 4.0)
    rep = interop.compare(model, spikes((10, 3, 8), seed=1, dtype=np.float64), seed=1)
    assert rep.ok and rep.first_divergence is None, str(rep)
    functional.set_step_mode(model[1], "m")
    with pytest.raises(ValueError, match="one step_mode"):
        interop.from_spikingjelly(model, (8,))


@pytest.mark.parametrize("kind", ["LIF"])       # the sequence modules of Norse 1.1.0 (it has no LIFBox)
def test_norse_sequence_modules_agree(kind):
    # Before: refused (norse.LIF). The model is called once with the whole sequence.
    norse = pytest.importorskip("norse.torch")
    torch.manual_seed(8)
    cls = getattr(norse, kind)
    model = scaled(norse.SequentialState(torch.nn.Linear(8, 12), cls(), torch.nn.Linear(12, 4),
                                         cls()).double(), 30.0)
    rep = interop.compare(model, spikes((12, 3, 8), density=0.4, seed=1, dtype=np.float64), seed=1)
    assert rep.ok and rep.first_divergence is None, str(rep)
    assert min(rep.firing_rates) > 0
    mixed = norse.SequentialState(torch.nn.Linear(8, 12), cls(), torch.nn.Linear(12, 4), norse.LIFCell())
    with pytest.raises(ValueError, match="not both"):
        interop.from_norse(mixed, (8,))


def test_snntorch_batchnorm_in_training_uses_per_step_batch_statistics():
    # snnTorch calls the model once per step, so a BatchNorm2d in training mode normalises
    # each step with that step's batch statistics: stlsim's Conv2d(batchnorm=True) in
    # training (layers/batchnorm.py). Its running statistics are left as they were.
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(9)
    model = scaled(torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
        snn.Leaky(beta=0.7, init_hidden=True), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 6), snn.Leaky(beta=0.8, init_hidden=True, output=True)), 2.0)
    assert model.training
    before = model[1].running_mean.clone()
    rep = interop.compare(model, spikes((8, 4, 1, 8, 8), seed=3), seed=3)
    assert rep.ok and min(rep.firing_rates) > 0, str(rep)
    assert {"1.weight", "1.bias"} <= {row.name for row in rep.rows}
    assert torch.equal(model[1].running_mean, before)
    # negative: the same model in eval mode (running statistics) fires differently
    net_eval = interop.from_snntorch(model.eval(), (1, 8, 8), dtype=np.float32)
    net_train = interop.from_snntorch(model.train(), (1, 8, 8), dtype=np.float32)
    x = spikes((8, 4, 1, 8, 8), seed=3)
    assert not np.array_equal(net_eval.forward(x).spikes[0], net_train.forward(x, training=True).spikes[0])
