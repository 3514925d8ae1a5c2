"""snnTorch's graded spikes (docs/model.md 9.10: (G1), (G2)).

* Smooth mode: BPTT through a Scale layer (a trained graded factor) equals float64 finite
  differences.
* Spiking mode: fixed and trained factors, per layer and per neuron, on hidden and output
  layers and before a membrane readout, agree with snnTorch.
* Negative: the twin without the factor is caught.
* With reset_delay=False (the reset reads the ungraded spike, spk / c - reset) they agree
  too (docs/model.md (L2i), (L4i); tests/test_reset_delay.py has the rest).
"""
from __future__ import annotations

import numpy as np
import pytest

import stlsim
from stlsim.grad.check import compare, finite_difference_grads
from stlsim.layers import Scale

from peer_helpers import random_spikes, scale_weights


def test_smooth_bptt_through_a_scale_layer_matches_finite_differences():
    net = stlsim.Network([stlsim.Dense(5, 6, init_gain=3.0), Scale(), stlsim.Dense(6, 4, init_gain=3.0)],
                         neuron=stlsim.LIF(tau=0.6, theta_init=0.3), surrogate="sigmoid",
                         population=2, seed=0, backend="numpy")
    net.params["1.scale"] = np.random.default_rng(1).uniform(0.5, 2.0, 6)
    x = (np.random.default_rng(2).random((6, 3, 5)) < 0.5).astype(np.float64)
    y = np.array([0, 1, 1])
    _, grads = net.loss_and_grad(x, y, smooth=True)
    fd = finite_difference_grads(net, x, y, step=1e-5)
    errors = compare(grads, fd)
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors
    assert errors["1.scale"]["scale"] > 1e-6


torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
from stlsim import interop  # noqa: E402  (after the torch skip: the peers need torch)


def graded_model(learn, per_neuron=True):
    torch.manual_seed(0)
    hidden = torch.rand(30) + 0.5 if per_neuron else 1.5
    return scale_weights(torch.nn.Sequential(
        torch.nn.Linear(20, 30),
        snn.Leaky(beta=0.9, init_hidden=True, graded_spikes_factor=hidden,
                  learn_graded_spikes_factor=learn),
        torch.nn.Linear(30, 5),
        snn.Leaky(beta=0.8, init_hidden=True, output=True, graded_spikes_factor=1.7,
                  learn_graded_spikes_factor=learn)), 3.0)


@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_snntorch_graded_spikes_agree(learn, per_neuron):
    # Before: refused ("graded_spikes_factor must be 1").
    model = graded_model(learn, per_neuron)
    rep = interop.compare(model, random_spikes((10, 4, 20)), seed=0, roundoff="always")
    assert rep.ok and min(rep.firing_rates) > 0.05, str(rep)
    names = {row.name for row in rep.rows}
    assert ({"1.graded_spikes_factor", "3.graded_spikes_factor"} <= names) == learn
    net = interop.from_snntorch(model, (20,))
    assert isinstance(net.layers[1], Scale)                  # the output's c stays outside


def test_graded_spikes_before_a_membrane_readout_agree():
    model = graded_model(learn=True)
    rep = interop.compare(model, random_spikes((10, 4, 20)), seed=0, output="membrane",
                          loss="ce_membrane_sum", y=[0, 1, 2, 3])
    assert rep.ok, str(rep)
    assert "1.graded_spikes_factor" in {row.name for row in rep.rows}


def test_a_twin_without_the_graded_factor_is_caught(monkeypatch):
    monkeypatch.setattr(interop, "_graded", lambda module: False)
    rep = interop.compare(graded_model(learn=False), random_spikes((10, 4, 20)), seed=0)
    assert not rep.ok and not rep.spikes_equal and rep.first_divergence_pass == "forward"


def test_graded_spikes_with_reset_delay_false_agree():
    # Before: reset_delay=False was refused by name.
    model = graded_model(learn=True)
    for module in model:
        if isinstance(module, snn.Leaky):
            module.reset_delay = False
    rep = interop.compare(model, random_spikes((10, 4, 20)), seed=0)
    assert rep.ok and min(rep.firing_rates) > 0.05, str(rep)
    assert interop.from_snntorch(model, (20,)).neurons[0].reset == "subtract_no_delay"


def test_graded_recurrent_neurons_and_recurrent_readouts_are_refused_by_name():
    # snnTorch 1.0's RLeaky takes no graded_spikes_factor argument, but fire() applies the
    # attribute all the same
    recurrent = snn.RLeaky(beta=0.8, linear_features=6, init_hidden=True, output=True)
    recurrent.graded_spikes_factor = torch.tensor(2.0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 6), recurrent)
    with pytest.raises(ValueError, match=r"model\[1\]\.graded_spikes_factor.*recurrent"):
        interop.from_snntorch(model, (20,))
    model = torch.nn.Sequential(torch.nn.Linear(20, 6), snn.Leaky(beta=0.8, init_hidden=True),
                                torch.nn.Linear(6, 3),
                                snn.RLeaky(beta=0.8, linear_features=3, init_hidden=True, output=True))
    with pytest.raises(ValueError, match=r"model\[3\].*Leaky or Synaptic at the end"):
        interop.convert(model, (20,), output="membrane")
