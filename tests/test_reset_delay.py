"""snnTorch's ``reset_delay=False``: the immediate resets (L2i), (L4i) and their backward
(B1i)-(B7i) of docs/model.md 9.10.

* smooth-mode BPTT of one layer and of a network against float64 finite differences, with
  steps where the detached carry q_t = H(v_{t-1} - theta) is 1;
* spikes and gradients against snnTorch's own ``Leaky(reset_delay=False)`` (subtract and
  zero, learned threshold and beta) through ``interop.compare``;
* the nearest wrong convention (the delayed reset, (L2a)) gives other spikes;
* the Numba backend runs the NumPy reference for it, counted; refusals by name.
"""
from __future__ import annotations

import numpy as np
import pytest

import stlsim
from stlsim.engines import clock, get_backend
from stlsim.grad import bptt
from stlsim.grad.check import compare, finite_difference_grads
from stlsim.neurons import reset_carries

RESETS = ("subtract_no_delay", "zero_no_delay")


def _layer_loss_and_grads(current, theta, tau, reset, weights):
    """L = sum(C * s) of one smooth layer, and (dL/dI, dL/dtheta, dL/dtau) by (B1i)-(B7i)."""
    neuron = stlsim.LIF(tau=tau, theta_init=0.0, reset=reset, spike_at_threshold=False,
                        learn_tau="factor")
    surrogate = stlsim.surrogate.get("sigmoid", 3.0)
    spikes, membrane = clock.lif_forward(current, theta, neuron, surrogate, smooth=True)
    grad_tau = np.zeros_like(theta)
    grad_current, grad_theta = bptt.lif_backward(weights, membrane, spikes, theta, neuron,
                                                 surrogate, grad_tau=grad_tau)
    return float(np.sum(weights * spikes)), (grad_current, grad_theta, grad_tau), (
        membrane, spikes, neuron)


@pytest.mark.parametrize("reset", RESETS)
def test_one_smooth_layer_matches_finite_differences_where_the_carry_is_one(reset):
    rng = np.random.default_rng(3)
    T, B, N = 10, 2, 4
    current = rng.uniform(-0.5, 2.5, (T, B, N))
    theta = rng.uniform(0.3, 0.8, N)
    tau = rng.uniform(0.5, 0.95, N)
    weights = rng.normal(size=(T, B, N))
    _, (g_current, g_theta, g_tau), (membrane, spikes, neuron) = _layer_loss_and_grads(
        current, theta, tau, reset, weights)
    carries = reset_carries(membrane, spikes, theta, neuron)
    if reset == "subtract_no_delay":
        assert 0 < carries.mean() < 1               # the (1 + q_t) of (B5i) is exercised

    def loss(c=current, th=theta, ta=tau):
        return _layer_loss_and_grads(c, th, ta, reset, weights)[0]

    h = 1e-6
    for name, value, grad in (("current", current, g_current), ("theta", theta, g_theta),
                              ("tau", tau, g_tau)):
        numeric = np.empty_like(value)
        for index in np.ndindex(value.shape):
            up, down = value.copy(), value.copy()
            up[index] += h
            down[index] -= h
            kw_up = {"c": up} if name == "current" else {"th": up} if name == "theta" else {"ta": up}
            kw_down = {k: down for k in kw_up}
            numeric[index] = (loss(**kw_up) - loss(**kw_down)) / (2 * h)
        scale = np.abs(numeric).max()
        assert scale > 1e-3, name
        np.testing.assert_allclose(grad, numeric, rtol=0, atol=1e-7 * max(scale, 1.0),
                                   err_msg=f"{reset}: dL/d{name}")


@pytest.mark.parametrize("reset", RESETS)
def test_smooth_network_bptt_matches_finite_differences(reset):
    neuron = stlsim.LIF(theta_init=0.4, tau=0.7, reset=reset, spike_at_threshold=False,
                        learn_tau="factor")
    layers = [stlsim.Dense(6, 5, init_gain=3.0), stlsim.Dense(5, 2, init_gain=3.0)]
    net = stlsim.Network(layers, neuron=neuron, surrogate="sigmoid", seed=0,
                         dtype=np.float64, backend="numpy")
    x = (np.random.default_rng(1).random((8, 3, 6)) < 0.5).astype(np.float64)
    y = np.array([0, 1, 1])
    _, grads = net.loss_and_grad(x, y, smooth=True)
    errors = compare(grads, finite_difference_grads(net, x, y))
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors
    assert all(e["scale"] > 1e-4 for e in errors.values()), errors


def _snntorch_model(mechanism, seed=4, delay=False, learn=True):
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from peer_helpers import scale_weights
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 12),
        snn.Leaky(beta=0.8, threshold=0.7, init_hidden=True, reset_delay=delay,
                  reset_mechanism=mechanism, learn_beta=learn, learn_threshold=learn),
        torch.nn.Linear(12, 4),
        snn.Leaky(beta=0.7, init_hidden=True, output=True, reset_delay=delay,
                  reset_mechanism=mechanism))
    return scale_weights(model, 4.0)


def _input(seed=2):
    from peer_helpers import random_spikes
    return random_spikes((16, 3, 8), density=0.5, seed=seed)


@pytest.mark.parametrize("mechanism", ["subtract", "zero"])
def test_snntorch_reset_delay_false_agrees_with_its_twin(mechanism):
    from stlsim import interop
    model = _snntorch_model(mechanism)
    x = _input()
    rep = interop.compare(model, x, seed=2)
    assert rep.ok and rep.spikes_equal and min(rep.firing_rates) > 0.05, str(rep)
    assert {row.name for row in rep.rows} >= {"1.threshold", "1.beta"}, str(rep)
    net = interop.from_snntorch(model, (8,), dtype=np.float32)
    expected = "subtract_no_delay" if mechanism == "subtract" else "zero_no_delay"
    assert [n.reset for n in net.neurons] == [expected] * 2
    if mechanism == "subtract":                     # a step decided on a lowered m_t happened
        record = net.forward(x)
        theta = net.params["0.theta"]
        carries = reset_carries(record.membrane[0], record.spikes[0], theta, net.neurons[0])
        assert carries.sum() > 0


def _peer_spikes(model, x):
    import snntorch.utils
    import torch
    snntorch.utils.reset(model)
    with torch.no_grad():
        return np.stack([model(torch.from_numpy(x[t]))[0].numpy() for t in range(len(x))])


def test_the_delayed_reset_is_measurably_different_from_reset_delay_false():
    """The nearest wrong convention: the twin of the same weights with reset_delay=True."""
    import torch

    from stlsim import interop
    model = _snntorch_model("subtract")
    x = _input()
    peer = _peer_spikes(model, x)
    right = interop.from_snntorch(model, (8,), dtype=np.float32)
    np.testing.assert_array_equal(right.forward(x).spikes[-1], peer)
    delayed = _snntorch_model("subtract", delay=True)
    delayed.load_state_dict(model.state_dict())
    wrong = interop.from_snntorch(delayed, (8,), dtype=np.float32)
    assert wrong.neurons[0].reset == "subtract_after_leak"
    assert not np.array_equal(wrong.forward(x).spikes[-1], peer)
    with torch.no_grad():
        assert not np.array_equal(_peer_spikes(delayed, x), peer)


def test_zero_no_delay_differs_from_the_detached_hard_reset_in_its_gradient():
    """Same spikes as snnTorch's delayed zero reset (q_t = 0 for theta > 0), but the spike
    stays attached in (L4i): the detached hard reset gives another theta gradient."""
    x = _input().astype(np.float64)
    y = np.array([0, 1, 1])
    grads = {}
    for name, settings in (("no_delay", {"reset": "zero_no_delay"}),
                           ("hard", {"reset": "hard", "detach_reset": True})):
        neuron = stlsim.LIF(theta_init=0.5, tau=0.8, spike_at_threshold=False, **settings)
        net = stlsim.Network([stlsim.Dense(8, 6, init_gain=3.0), stlsim.Dense(6, 2, init_gain=3.0)],
                             neuron=neuron, surrogate="atan", seed=0, backend="numpy")
        grads[name] = (net.forward(x).spikes[-1], net.loss_and_grad(x, y)[1])
    np.testing.assert_array_equal(grads["no_delay"][0], grads["hard"][0])
    assert not np.allclose(grads["no_delay"][1]["0.theta"], grads["hard"][1]["0.theta"])


@pytest.mark.parametrize("reset", RESETS)
def test_numba_runs_the_numpy_reference_counted(reset):
    pytest.importorskip("numba")
    neuron = stlsim.LIF(theta_init=0.5, tau=0.8, reset=reset, spike_at_threshold=False)
    x = _input().astype(np.float64)
    y = np.array([0, 1, 1])

    def net(backend):
        return stlsim.Network([stlsim.Dense(8, 6, init_gain=3.0), stlsim.Dense(6, 2, init_gain=3.0)],
                              neuron=neuron, surrogate="atan", seed=0, backend=backend)
    _, expected = net("numpy").loss_and_grad(x, y)
    backend = get_backend("numba")
    before = backend.calls["fallback:numpy"]
    _, grads = net("numba").loss_and_grad(x, y)
    assert backend.calls["fallback:numpy"] >= before + 4       # 2 layers, forward and backward
    for key in expected:
        np.testing.assert_array_equal(grads[key], expected[key])


def test_what_cannot_run_it_refuses_by_name():
    with pytest.raises(ValueError, match=r"`detach_reset` of `LIF` must be False with "
                                         r"reset='subtract_no_delay'"):
        stlsim.LIF(reset="subtract_no_delay", detach_reset=True)
    with pytest.raises(ValueError, match=r"`reset` of `LIF` must be a reset other than"):
        stlsim.LIF(reset="zero_no_delay", adaptation=stlsim.Adaptation())
    with pytest.raises(TypeError, match=r"`carry` of `after_reset`"):
        stlsim.neurons.after_reset(np.ones(2), np.ones(2), 0.5,
                                   stlsim.LIF(reset="subtract_no_delay"))
    neuron = stlsim.LIF(theta_init=0.5, reset="subtract_no_delay")
    net = stlsim.Network([stlsim.Dense(8, 2)], neuron=neuron, engine="event", backend="numpy")
    with pytest.raises(ValueError, match=r"reset='subtract_no_delay'"):
        net.forward(_input().astype(np.float64))


def test_snntorch_reset_delay_false_that_stlsim_has_no_form_for_is_refused_by_name():
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from stlsim import interop
    for neuron in (snn.Synaptic(alpha=0.5, beta=0.5, init_hidden=True, reset_delay=False,
                                reset_mechanism="zero"),
                   snn.RLeaky(beta=0.5, linear_features=4, init_hidden=True, reset_delay=False)):
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), neuron)
        with pytest.raises(ValueError, match=r"model\[1\].*reset_delay=False only on a Leaky"):
            interop.from_snntorch(model, (3,))


def test_presets_name_the_immediate_resets():
    assert stlsim.LIF.preset("snntorch.Leaky.no_delay", tau=0.9).reset == "subtract_no_delay"
    assert stlsim.LIF.preset("snntorch.Leaky.zero.no_delay", tau=0.9).reset == "zero_no_delay"
    neuron = stlsim.LIF.preset("snntorch.Synaptic.no_delay", tau=0.9, alpha_syn=0.5)
    assert neuron.reset == "subtract_no_delay" and not neuron.detach_reset


def test_nir_write_refuses_the_immediate_reset_and_round_trips_it_when_lossy(tmp_path):
    pytest.importorskip("nir")
    import warnings

    from stlsim import nir as snir
    neuron = stlsim.LIF(tau=0.7, theta_init=0.5, reset="subtract_no_delay",
                        spike_at_threshold=False)
    net = stlsim.Network([stlsim.Dense(8, 6, init_gain=3.0), stlsim.Dense(6, 2, init_gain=3.0)],
                         neuron=neuron, seed=0, backend="numpy")
    path = tmp_path / "m.nir"
    with pytest.raises(ValueError, match=r"allow_lossy=True.*reset='subtract_no_delay'"):
        snir.write(net, path, dt=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        losses = snir.write(net, path, dt=1e-4, allow_lossy=True)
    assert len(losses) == 2 and all("subtract_no_delay" in loss for loss in losses)
    back = snir.read(path)
    assert [n.reset for n in back.neurons] == ["subtract_no_delay"] * 2
    x = _input().astype(np.float64)
    np.testing.assert_array_equal(back.forward(x).spikes[-1], net.forward(x).spikes[-1])


def test_a_membrane_readout_without_reset_takes_reset_delay_false_and_one_with_is_refused():
    """A readout Leaky with reset_mechanism='none' computes the same for either reset_delay
    (snnTorch's no-delay block acts only for 'subtract' and 'zero'); a resetting readout
    with reset_delay=False is not a stlsim readout and is refused by name."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from peer_helpers import random_spikes, scale_weights

    from stlsim import interop
    for mechanism in ("none", "subtract"):
        torch.manual_seed(4)
        model = scale_weights(torch.nn.Sequential(
            torch.nn.Linear(20, 30), snn.Leaky(beta=0.9, init_hidden=True, reset_delay=False),
            torch.nn.Linear(30, 5), snn.Leaky(beta=0.8, init_hidden=True, output=True,
                                              reset_mechanism=mechanism, reset_delay=False)), 3.0)
        x = random_spikes((16, 4, 20))
        if mechanism == "none":
            rep = interop.compare(model, x, seed=1, output="membrane", loss="ce_membrane_sum",
                                  y=np.arange(4) % 5)
            assert rep.ok and min(rep.firing_rates) > 0.05, str(rep)
        else:
            with pytest.raises(ValueError, match=r"model\[3\].*a readout Leaky with "
                                                 r"reset_delay=True \(or no reset\)"):
                interop.convert(model, (20,), output="membrane")


def test_the_step_trace_shows_the_post_reset_membrane():
    """v_t of (L4i) in the step-through trace: the membrane snnTorch returns."""
    neuron = stlsim.LIF(tau=0.8, theta_init=0.3, reset="subtract_no_delay", spike_at_threshold=False)
    net = stlsim.Network([stlsim.Dense(8, 2, init_gain=4.0)], neuron=neuron, seed=0, backend="numpy")
    x = _input().astype(np.float64)
    trace = net.step_through(x, np.array([0, 1, 1]))
    step = trace.forward[0]
    v_prev = np.concatenate([np.zeros_like(step["v"][:1]), step["v"][:-1]])
    carry = (v_prev > 0.3).astype(np.float64)                          # (L2i) q_t
    assert carry.sum() > 0
    np.testing.assert_allclose(step["m"], 0.8 * v_prev + step["I"] - carry * 0.3, atol=1e-12)
    np.testing.assert_allclose(step["v"], step["m"] - (step["s"] - carry) * 0.3, atol=1e-12)


def test_snntorch_synaptic_subtract_reset_delay_false_agrees():
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from peer_helpers import scale_weights

    from stlsim import interop
    torch.manual_seed(5)
    model = scale_weights(torch.nn.Sequential(
        torch.nn.Linear(8, 12), snn.Synaptic(alpha=0.6, beta=0.8, threshold=0.7, init_hidden=True,
                                             reset_delay=False, learn_threshold=True),
        torch.nn.Linear(12, 4), snn.Synaptic(alpha=0.5, beta=0.7, init_hidden=True, output=True,
                                             reset_delay=False)), 3.0)
    rep = interop.compare(model, _input(), seed=3)
    assert rep.ok and rep.spikes_equal and min(rep.firing_rates) > 0.05, str(rep)
    assert interop.from_snntorch(model, (8,)).neurons[0].reset == "subtract_no_delay"
