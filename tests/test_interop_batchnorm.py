"""Training-mode layers: BatchNorm as a part of a synapse block (docs/model.md 9.8: (BN1),
(BN1p), (BN2)) and Dropout with the peer's own masks replayed (9.9: (D1), (D2)).

* Smooth mode: BPTT through BatchNorm1d after a Dense and a pooled BatchNorm2d, in
  training, equals float64 finite differences.
* Spiking mode: SpikingJelly's multi-step BatchNorm2d and BatchNorm1d in training (pooled
  statistics) and snnTorch's BatchNorm1d in training (per step) agree with the peers.
* Dropout in training: the peer's masks replayed (torch's per call, SpikingJelly's per
  sequence), checked by finite differences and against snnTorch and SpikingJelly.
* Negative: per-step statistics where the peer pools them fire differently; so do masks
  drawn by stlsim instead of the peer's.
"""
from __future__ import annotations

import numpy as np
import pytest

import stlsim
from stlsim.grad.check import compare, finite_difference_grads
from stlsim.layers import BatchNorm, SynapseBlock

from peer_helpers import random_spikes, scale_weights


def bn_net(seed=0):
    first = SynapseBlock([stlsim.Conv2d(1, 3, 3, padding=1, init_gain=3.0),
                          BatchNorm(3, statistics="pooled"), stlsim.AvgPool2d(2)])
    last = SynapseBlock([stlsim.Dense(48, 4, init_gain=3.0), BatchNorm(4)])
    net = stlsim.Network([first, stlsim.Flatten(), last], neuron=stlsim.LIF(tau=0.6, theta_init=0.3),
                         surrogate="sigmoid", population=2, seed=seed, backend="numpy",
                         input_shape=(1, 8, 8))
    rng = np.random.default_rng(seed + 3)
    for key in net.params:
        if key.endswith(("1.weight", "1.bias")):
            net.params[key][:] = rng.uniform(0.5, 1.5, net.params[key].shape)
    return net


def test_smooth_bptt_through_batchnorm_parts_in_training_matches_finite_differences():
    net = bn_net()
    x = (np.random.default_rng(1).random((5, 3, 1, 8, 8)) < 0.5).astype(np.float64)
    y = np.array([0, 1, 0])
    state = net.rng.bit_generator.state
    buffers = {k: v.copy() for k, v in net.buffers.items()}
    _, grads = net.loss_and_grad(x, y, smooth=True, training=True)
    net.rng.bit_generator.state = state
    for key, value in buffers.items():
        net.buffers[key][:] = value
    fd = finite_difference_grads(net, x, y, step=1e-5, training=True)
    errors = compare(grads, fd)
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors
    assert {"0.1.weight", "0.1.bias", "2.1.weight", "2.1.bias"} <= set(grads)


def test_pooled_statistics_update_the_running_estimates_once_per_call():
    layer = BatchNorm(2, statistics="pooled", momentum=0.5)
    layer.build((2,), 0)
    z = np.random.default_rng(0).normal(size=(4, 3, 2))
    params = {"weight": np.ones(2), "bias": np.zeros(2), "running_mean": np.zeros(2),
              "running_var": np.ones(2)}
    out, _ = layer.forward(z, params, stlsim.layers.Context(training=True))
    flat = z.reshape(-1, 2)
    np.testing.assert_allclose(params["running_mean"], 0.5 * flat.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(params["running_var"], 0.5 + 0.5 * flat.var(axis=0, ddof=1), rtol=1e-14)
    np.testing.assert_allclose(out.reshape(-1, 2).mean(axis=0), 0, atol=1e-14)


def test_batchnorm_part_names_what_it_expects():
    with pytest.raises(ValueError, match="statistics"):
        BatchNorm(3, statistics="per_batch")
    with pytest.raises(ValueError, match="3 channels"):
        stlsim.Network([SynapseBlock([stlsim.Dense(4, 5), BatchNorm(3)])], input_shape=(4,))


# ------------------------------------------------------------------ against the peers --

torch = pytest.importorskip("torch")
from stlsim import interop  # noqa: E402  (after the torch skip: the peers need torch)


def sj_bn_model(step_mode="m"):
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron, surrogate
    torch.manual_seed(5)
    model = torch.nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1, bias=False), layer.BatchNorm2d(4),
        neuron.IFNode(surrogate_function=surrogate.ATan()), layer.MaxPool2d(2), layer.Flatten(),
        layer.Linear(4 * 4 * 4, 12, bias=False), layer.BatchNorm1d(12),
        neuron.LIFNode(surrogate_function=surrogate.ATan()),
        layer.Linear(12, 5, bias=False), neuron.LIFNode(surrogate_function=surrogate.ATan()))
    functional.set_step_mode(model, step_mode=step_mode)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.8, 1.5)
                module.bias.uniform_(0.0, 0.4)
        model[8].weight.mul_(4.0)                       # the output layer fires too
    return scale_weights(model.double(), 2.0)


@pytest.mark.parametrize("step_mode", ["m", "s"])
def test_spikingjelly_batchnorm_in_training_agrees(step_mode):
    # Before: refused ("a BatchNorm2d in eval mode"; BatchNorm1d not converted at all).
    model = sj_bn_model(step_mode)
    assert model.training
    before = model[1].running_mean.clone()
    x = random_spikes((6, 4, 1, 8, 8), seed=2, dtype=np.float64)
    rep = interop.compare(model, x, seed=2)
    assert rep.ok and min(rep.firing_rates) > 0, str(rep)
    assert {"1.weight", "1.bias", "6.weight", "6.bias"} <= {row.name for row in rep.rows}
    assert torch.equal(model[1].running_mean, before)
    net = interop.from_spikingjelly(model, (1, 8, 8))
    parts = [p for layer in net.layers for p in getattr(layer, "parts", []) if isinstance(p, BatchNorm)]
    assert [p.statistics for p in parts] == (["pooled"] * 2 if step_mode == "m" else ["per_step"])


def test_snntorch_batchnorm1d_in_training_agrees():
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(6)
    model = scale_weights(torch.nn.Sequential(
        torch.nn.Linear(10, 12), torch.nn.BatchNorm1d(12), snn.Leaky(beta=0.8, init_hidden=True),
        torch.nn.Dropout(0.3).eval(), torch.nn.Linear(12, 4),
        snn.Leaky(beta=0.8, init_hidden=True, output=True)), 2.0)
    assert model[1].training and not model[3].training
    rep = interop.compare(model, random_spikes((8, 5, 10), seed=3), seed=3)
    assert rep.ok and min(rep.firing_rates) > 0, str(rep)
    assert {"1.weight", "1.bias"} <= {row.name for row in rep.rows}


def test_per_step_statistics_where_the_peer_pools_them_fire_differently():
    model = sj_bn_model("m")
    x = random_spikes((6, 4, 1, 8, 8), seed=2, dtype=np.float64)
    net = interop.from_spikingjelly(model, (1, 8, 8))
    pooled = net.forward(x, training=True).spikes
    for layer in net.layers:
        for part in getattr(layer, "parts", []):
            if isinstance(part, BatchNorm):
                part.statistics = "per_step"
    per_step = net.forward(x, training=True).spikes
    assert not all(np.array_equal(a, b) for a, b in zip(pooled, per_step))


# --- Dropout in training: the peer's masks, replayed (9.9) ------------------------------

def test_smooth_bptt_through_replayed_dropout_masks_matches_finite_differences():
    rng = np.random.default_rng(4)
    masks = (rng.random((5, 3, 6)) >= 0.4) / 0.6                 # one per step, scaled
    block = SynapseBlock([stlsim.Dense(6, 4, init_gain=3.0), stlsim.Dropout(0.4, masks=masks[..., :4])])
    net = stlsim.Network([SynapseBlock([stlsim.Dense(5, 6, init_gain=3.0),
                                        stlsim.Dropout(0.4, masks=masks)]), block],
                         neuron=stlsim.LIF(tau=0.6, theta_init=0.3), surrogate="sigmoid",
                         population=2, seed=0, backend="numpy")
    x = (rng.random((5, 3, 5)) < 0.5).astype(np.float64)
    y = np.array([0, 1, 1])
    _, grads = net.loss_and_grad(x, y, smooth=True, training=True)
    fd = finite_difference_grads(net, x, y, step=1e-5, training=True)
    errors = compare(grads, fd)
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors
    dropped = net.forward(x, training=True).currents[0]
    assert np.all(dropped[masks[..., :6] == 0] == 0)             # the given masks, not drawn ones


def snntorch_dropout_model():
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(7)
    return scale_weights(torch.nn.Sequential(
        torch.nn.Linear(20, 30), snn.Leaky(beta=0.9, init_hidden=True), torch.nn.Dropout(0.4),
        torch.nn.Linear(30, 5), torch.nn.Dropout(0.3), snn.Leaky(beta=0.8, init_hidden=True, output=True)),
        3.0)


def test_snntorch_dropout_in_training_replays_torchs_masks():
    # Before: refused ("a Dropout in eval mode ... draws masks the twin cannot replay").
    model = snntorch_dropout_model()
    x = random_spikes((10, 4, 20))
    state = torch.get_rng_state()
    rep = interop.compare(model, x, seed=0, roundoff="always")
    assert rep.ok and min(rep.firing_rates) > 0.05, str(rep)
    assert not torch.equal(torch.get_rng_state(), state)       # the peer drew, as in training
    conv = interop.convert(model, (20,), dtype=np.float32)
    assert len(conv.dropouts) == 2


@pytest.mark.parametrize("step_mode", ["m", "s"])
def test_spikingjelly_dropout_in_training_replays_its_sequence_mask(step_mode):
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron, surrogate
    torch.manual_seed(8)
    model = torch.nn.Sequential(layer.Linear(20, 30), neuron.LIFNode(surrogate_function=surrogate.ATan()),
                                layer.Dropout(0.5), layer.Linear(30, 5),
                                neuron.LIFNode(surrogate_function=surrogate.ATan()))
    functional.set_step_mode(model, step_mode)
    model = scale_weights(model.double(), 5.0)
    x = random_spikes((10, 4, 20), dtype=np.float64)
    conv = interop.convert(model, (20,))
    rep = interop.compare(model, x, seed=0)
    assert rep.ok and min(rep.firing_rates) > 0.01, str(rep)
    # the twin saw one mask for every step, (1, B, 30)
    interop._run_peer(conv, torch.as_tensor(x), lambda out: np.ones(out.shape))
    (mask,) = conv.dropout_masks.values()
    assert mask.shape == (1, 4, 30)


def test_masks_drawn_by_stlsim_instead_of_the_peers_fire_differently():
    model = snntorch_dropout_model()
    x = random_spikes((10, 4, 20))
    conv = interop.convert(model, (20,), dtype=np.float32)
    interop._run_peer(conv, torch.as_tensor(x), lambda out: np.ones(out.shape))
    replayed = interop._run_stlsim(conv, x, lambda out: np.ones(out.shape), training=True)[0]
    for module, layer in conv.dropouts:                     # forget the peer's masks: draw
        conv.dropout_masks.pop(id(module))
    drawn = interop._run_stlsim(conv, x, lambda out: np.ones(out.shape), training=True)[0]
    assert not all(np.array_equal(a, b) for a, b in zip(replayed, drawn))


def test_dropout_in_training_before_a_readout_is_refused_by_name():
    norse = pytest.importorskip("norse.torch")
    model = norse.SequentialState(torch.nn.Linear(20, 30), norse.LIFCell(), torch.nn.Dropout(0.5),
                                  torch.nn.Linear(30, 5), norse.LICell())
    with pytest.raises(ValueError, match=r"`model\[2\]`.*Dropout in eval mode here"):
        interop.convert(model, (20,))
