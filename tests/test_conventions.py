"""The neuron conventions of other frameworks (docs/model.md Section 8; stlsim.conventions).

* Smooth mode: BPTT of every new option, and of combinations, against float64 finite
  differences (relative error <= 1e-6).
* Spiking mode: each preset against the real peer (snnTorch 1.0 in float32, SpikingJelly
  2.0 and Norse 1.1 in float64), the same weights, thresholds, decays and input spikes,
  a random linear probe of the output spikes as the loss; spikes identical and every
  gradient within the stated bound. Skipped where the peer is not installed.
* Negative tests: the nearest wrong convention gives a measurably different result.
* The paper's defaults are unchanged: the reference equals the compiled kernels (which
  implement only the paper's form) bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest

import stlsim
from stlsim import conventions
from stlsim.engines import get_backend
from stlsim.grad.check import compare, finite_difference_grads

from conftest import rotated

SIZES = (6, 9, 4)


def make_net(neuron, *, surrogate="atan", sizes=SIZES, population=1, dtype=np.float64, seed=0,
             gain=2.0, theta=None, backend="numpy"):
    layers = [stlsim.Dense(a, b, init_gain=gain) for a, b in zip(sizes[:-1], sizes[1:])]
    net = stlsim.Network(layers, neuron=neuron, surrogate=surrogate, population=population,
                         seed=seed, dtype=dtype, backend=backend)
    if theta is not None:
        rng = np.random.default_rng(seed + 7)
        for key in net.params:
            if key.endswith(".theta"):
                net.params[key][:] = rng.uniform(*theta, net.params[key].shape)
    return net


def spikes_in(T=8, B=3, n=SIZES[0], density=0.5, seed=1, dtype=np.float64):
    return (np.random.default_rng(seed).random((T, B, n)) < density).astype(dtype)


# ------------------------------------------------------------------ smooth mode vs FD --

OPTIONS = [
    dict(reset="subtract_after_leak"),
    dict(reset="subtract_after_leak", detach_reset=True),
    dict(reset="subtract_after_leak", v_init=0.5),           # s_0 = 1: the first reset
    dict(reset="none"),
    dict(input_gain=0.5),
    dict(input_gain=0.3, reset="soft"),
    dict(v_leak=0.3),
    dict(v_reset=-0.2),
    dict(v_reset=0.25, detach_reset=True),
    dict(v_init=0.5),
    dict(spike_at_threshold=False, reset="soft"),
    dict(tau=np.linspace(0.2, 0.9, 9)),                      # per-neuron decay, layer 1
    dict(input_gain=0.1, v_leak=0.2, v_reset=0.1, v_init=0.2, tau=0.9),   # Norse-like, leaky
    dict(input_gain=0.5, v_leak=-0.1, v_reset=-0.1, v_init=-0.1),          # SpikingJelly-like
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}" for k in o))
def test_smooth_bptt_of_every_option_matches_finite_differences(options):
    options = dict(options)
    tau = options.pop("tau", 0.6)
    first = stlsim.LIF(theta_init=0.4, tau=tau, **options)
    # a per-neuron tau belongs to one layer: the others keep a scalar one
    second = stlsim.LIF(theta_init=0.4, tau=0.7 if np.ndim(tau) else tau, **options)
    for surrogate in ("atan", "sigmoid"):
        net = make_net([first, second], surrogate=surrogate, population=2, theta=(0.1, 0.8))
        x, y = spikes_in(), np.array([0, 1, 1])
        _, grads = net.loss_and_grad(x, y, smooth=True)
        fd = finite_difference_grads(net, x, y)
        errors = compare(grads, fd)
        assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors
        assert all(e["scale"] > 1e-4 for e in errors.values()), "a dead gradient checks nothing"


def test_per_layer_neurons_and_per_neuron_tau_are_checked():
    net = make_net([stlsim.LIF(tau=0.3), stlsim.LIF(tau=[0.1, 0.5, 0.7, 0.95], reset="soft")])
    assert net.neurons[1].per_neuron_tau and net.neuron is net.neurons[0]
    with pytest.raises(ValueError, match="one per neuron of layer 1"):
        make_net([stlsim.LIF(), stlsim.LIF(tau=[0.5, 0.5])])
    with pytest.raises(ValueError, match="a list of 2"):
        make_net([stlsim.LIF()])
    with pytest.raises(ValueError, match="`tau` of `LIF` must be decay factors in"):
        stlsim.LIF(tau=[0.5, 1.5])
    with pytest.raises(TypeError, match="`spike_at_threshold` of `LIF`"):
        stlsim.LIF(spike_at_threshold="no")


def test_paper_defaults_unchanged_bit_for_bit():
    # The compiled kernels implement only the paper's form and were not touched by the
    # conventions: the NumPy reference must still equal them exactly on the defaults.
    pytest.importorskip("numba")
    for reset in ("hard", "soft"):
        net = make_net(stlsim.LIF(theta_init=0.5, reset=reset), population=2, theta=(-0.2, 1.0))
        x, y = spikes_in(), np.array([0, 1, 0])
        ref = net.forward(x, backend="numpy")
        fast = net.forward(x, backend="numba")
        for a, b in zip(ref.spikes + ref.membrane, fast.spikes + fast.membrane):
            np.testing.assert_array_equal(a, b)
        loss_ref, grads_ref = net.loss_and_grad(x, y, backend="numpy")
        loss_fast, grads_fast = net.loss_and_grad(x, y, backend="numba")
        assert abs(loss_ref - loss_fast) <= 1e-15
        for key in grads_ref:
            np.testing.assert_allclose(grads_fast[key], grads_ref[key], rtol=0, atol=1e-13)


KERNEL_OPTIONS = OPTIONS + [dict(spike_at_threshold=False), dict(reset="none", input_gain=2.0),
                            dict(reset="subtract_after_leak", spike_at_threshold=False,
                                 detach_reset=True, v_init=0.6)]


@pytest.mark.parametrize("options, dtype", rotated(KERNEL_OPTIONS, [(np.float64,), (np.float32,)],
                                                   lambda o: ",".join(f"{k}" for k in o),
                                                   lambda combo: np.dtype(combo[0]).name))
def test_numba_kernels_equal_the_reference_for_every_option(options, dtype):
    pytest.importorskip("numba")
    backend = get_backend("numba")
    options = dict(options)
    tau = options.pop("tau", 0.6)
    first = stlsim.LIF(theta_init=0.4, tau=tau, **options)
    second = stlsim.LIF(theta_init=0.4, tau=0.7 if np.ndim(tau) else tau, **options)
    net = make_net([first, second], population=2, theta=(-0.1, 0.8), dtype=dtype)
    x, y = spikes_in(dtype=dtype), np.array([0, 1, 1])
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for smooth in (False, True):
        ref_loss, ref_grads, ref = net.loss_and_grad(x, y, smooth=smooth, backend="numpy",
                                                     return_record=True)
        before = backend.calls.copy()
        fused_loss, fused_grads = net.loss_and_grad(x, y, smooth=smooth, backend="numba")
        loss, grads, rec = net.loss_and_grad(x, y, smooth=smooth, backend="numba",
                                             return_record=True)
        assert backend.calls["fused_loss_and_grad"] == before["fused_loss_and_grad"] + 1
        assert backend.calls["lif_backward"] == before["lif_backward"] + 2
        assert backend.calls["fallback:numpy"] == before["fallback:numpy"]
        for a, b in zip(rec.spikes, ref.spikes):
            if smooth:
                np.testing.assert_allclose(a, b, rtol=0, atol=tol)
            else:
                np.testing.assert_array_equal(a, b)
        for a, b in zip(rec.membrane, ref.membrane):
            np.testing.assert_allclose(a, b, rtol=0, atol=tol * max(1.0, np.abs(b).max()))
        for got in (grads, fused_grads):
            for key in ref_grads:
                scale = max(1e-30, float(np.abs(ref_grads[key]).max()))
                err = float(np.abs(got[key].astype(np.float64) - ref_grads[key]).max()) / scale
                assert err <= tol, (key, err)
        assert abs(fused_loss - ref_loss) <= tol * max(1.0, abs(ref_loss))


def test_other_backends_and_engines_refuse_or_fall_back_by_name():
    net = make_net(stlsim.LIF.preset("snntorch.Leaky", tau=0.8), population=2)
    x = spikes_in()
    with pytest.raises(ValueError, match="engine='event'"):
        net.forward(x, engine="event")
    # the event engine runs the paper's form; a per-neuron tau is named too
    per_neuron = make_net([stlsim.LIF(tau=np.full(9, 0.5)), stlsim.LIF()])
    with pytest.raises(ValueError, match=r"tau \(per neuron\)"):
        per_neuron.forward(x, engine="event")
    # smooth mode falls back to the clock engine for every neuron, as before
    smooth = net.forward(x, engine="event", smooth=True)
    np.testing.assert_array_equal(smooth.spikes[0], net.forward(x, smooth=True).spikes[0])


def test_presets_and_pending_names():
    assert set(conventions.names()) >= {"stl", "snntorch.Leaky", "spikingjelly.LIFNode",
                                        "norse.LIFBoxCell"}
    assert stlsim.LIF.preset("stl") == stlsim.LIF()
    sj = stlsim.LIF.preset("spikingjelly.LIFNode")
    assert (sj.tau, sj.input_gain, sj.spike_at_threshold) == (0.5, 0.5, True)
    assert stlsim.LIF(**conventions.from_spikingjelly(tau=4.0, decay_input=False)).input_gain == 1
    norse = stlsim.LIF.preset("norse.LIFBoxCell")
    assert norse.tau == pytest.approx(0.9) and norse.input_gain == pytest.approx(0.1)
    assert stlsim.LIF.preset("snntorch.Leaky", tau=0.7).tau == 0.7
    with pytest.raises(TypeError, match="overrides"):
        stlsim.LIF.preset("snntorch.Leaky", beta=0.7)
    plif = stlsim.LIF.preset("spikingjelly.ParametricLIFNode")
    assert plif.learn_tau == "sigmoid" and plif.tie_gain and plif.input_gain == 1.0
    with pytest.raises(ValueError, match="one of 'stl'"):
        conventions.get("brian2")
    assert stlsim.surrogate.get("fast_sigmoid") == stlsim.surrogate.SuperSpike(25.0)


# -------------------------------------------------------------------- against the peers --

def _probe(net, x, seed=3):
    T, B = x.shape[:2]
    n_out = net.layers[-1].out_features
    return np.random.default_rng(seed).normal(size=(T, B, n_out)).astype(net.dtype)


def _torch_linear(net, torch, dtype):
    linears = []
    for i, layer in enumerate(net.layers):
        lin = torch.nn.Linear(layer.in_features, layer.out_features, bias=False).to(dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(net.params[f"{i}.weight"]))
        linears.append(lin)
    return linears


def _compare(net, x, probe, peer_spikes, peer_grads, rtol):
    loss, grads, record = net.probe_grad(x, probe)
    for ours, theirs in zip(record.spikes, peer_spikes):
        np.testing.assert_array_equal(ours, theirs)
    assert 0.05 < np.mean(record.spikes[0]) < 0.95, "a silent or saturated net checks little"
    for key, theirs in peer_grads.items():
        ours = grads[key]
        scale = max(float(np.max(np.abs(theirs))), 1e-30)
        err = float(np.max(np.abs(ours.astype(np.float64) - theirs))) / scale
        assert err <= rtol, f"{key}: relative error {err:.2e} > {rtol:.0e}"
        assert scale > 1e-6, f"{key}: a dead gradient checks nothing"
    return grads


def _measurably_different(net, x, probe, peer_spikes, peer_grads):
    """A wrong convention shows: other spikes, or a gradient off by > 1 % of its scale."""
    _, ours, record = net.probe_grad(x, probe)
    if any(not np.array_equal(a, b) for a, b in zip(record.spikes, peer_spikes)):
        return True
    return max(float(np.max(np.abs(ours[k] - peer_grads[k])) / np.max(np.abs(peer_grads[k])))
               for k in peer_grads) > 1e-2


def snntorch_run(net, x, probe, tau, reset_mechanism="subtract"):
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    linears = _torch_linear(net, torch, torch.float32)
    neurons = [snn.Leaky(beta=tau, threshold=torch.tensor(net.params[f"{i}.theta"]),
                         learn_threshold=True, spike_grad=snn.surrogate.atan(alpha=2.0),
                         reset_mechanism=reset_mechanism) for i in range(len(linears))]
    mems = [n.init_leaky() for n in neurons]
    spikes = [[] for _ in linears]
    for t in range(x.shape[0]):
        h = torch.as_tensor(x[t])
        for i, (lin, lif) in enumerate(zip(linears, neurons)):
            h, mems[i] = lif(lin(h), mems[i])
            spikes[i].append(h)
    out = [torch.stack(s) for s in spikes]
    (out[-1] * torch.as_tensor(probe)).sum().backward()
    grads = {}
    for i, (lin, lif) in enumerate(zip(linears, neurons)):
        grads[f"{i}.weight"] = lin.weight.grad.double().numpy()
        grads[f"{i}.theta"] = lif.threshold.grad.double().numpy()
    return [s.detach().numpy() for s in out], grads


def test_snntorch_leaky_matches_the_peer():
    tau = 0.8
    net = make_net(stlsim.LIF.preset("snntorch.Leaky", tau=tau), dtype=np.float32,
                   theta=(0.3, 1.2))
    x = spikes_in(dtype=np.float32)
    probe = _probe(net, x)
    spikes, grads = snntorch_run(net, x, probe, tau)
    # snnTorch computes in float32 (its spikes are float32); stlsim in float32 here too, with
    # the operations in another order: the gradients agree to float32 round-off.
    _compare(net, x, probe, spikes, grads, rtol=2e-5)


def test_snntorch_leaky_zero_reset_matches_the_peer():
    tau = 0.7
    net = make_net(stlsim.LIF.preset("snntorch.Leaky.zero", tau=tau), dtype=np.float32,
                   theta=(0.3, 1.2))
    x = spikes_in(dtype=np.float32)
    probe = _probe(net, x)
    spikes, grads = snntorch_run(net, x, probe, tau, reset_mechanism="zero")
    _compare(net, x, probe, spikes, grads, rtol=2e-5)


def test_snntorch_subtract_before_leak_is_measurably_different():
    # The nearest wrong convention: stlsim's own soft reset subtracts theta before the
    # leak (m_t = tau (m_{t-1} - s theta) + I), snnTorch after it.
    tau = 0.8
    wrong = stlsim.LIF(**{**conventions.get("snntorch.Leaky").settings, "tau": tau,
                          "reset": "soft"})
    net = make_net(wrong, dtype=np.float32, theta=(0.3, 1.2))
    x = spikes_in(dtype=np.float32)
    probe = _probe(net, x)
    spikes, grads = snntorch_run(net, x, probe, tau)
    assert _measurably_different(net, x, probe, spikes, grads)


def spikingjelly_run(net, x, probe, tau_sj=2.0, decay_input=True, v_reset=0.0):
    torch = pytest.importorskip("torch")
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron, surrogate
    linears = _torch_linear(net, torch, torch.float64)
    theta = float(net.params["0.theta"].flat[0])
    nodes = [neuron.LIFNode(tau=tau_sj, decay_input=decay_input, v_threshold=theta,
                            v_reset=v_reset, surrogate_function=surrogate.Sigmoid(alpha=4.0),
                            step_mode="m") for _ in linears]
    h = torch.as_tensor(x)
    spikes = []
    for lin, node in zip(linears, nodes):
        h = node(lin(h))                       # multi-step: (T, B, n)
        spikes.append(h)
    (spikes[-1] * torch.as_tensor(probe)).sum().backward()
    grads = {f"{i}.weight": lin.weight.grad.numpy() for i, lin in enumerate(linears)}
    return [s.detach().numpy() for s in spikes], grads


def test_spikingjelly_lifnode_matches_the_peer():
    net = make_net(stlsim.LIF.preset("spikingjelly.LIFNode"), surrogate=stlsim.surrogate.Sigmoid(4.0),
                   gain=4.0)
    x = spikes_in()
    probe = _probe(net, x)
    spikes, grads = spikingjelly_run(net, x, probe)
    # SpikingJelly's thresholds are one fixed float (not a parameter): weights compared.
    _compare(net, x, probe, spikes, grads, rtol=1e-10)


def test_spikingjelly_hard_reset_to_another_potential_matches_the_peer():
    settings = conventions.from_spikingjelly(tau=3.0, v_reset=-0.2, v_threshold=0.6)
    net = make_net(stlsim.LIF(**settings), surrogate=stlsim.surrogate.Sigmoid(4.0), gain=4.0)
    x = spikes_in()
    probe = _probe(net, x)
    spikes, grads = spikingjelly_run(net, x, probe, tau_sj=3.0, v_reset=-0.2)
    _compare(net, x, probe, spikes, grads, rtol=1e-10)


def test_spikingjelly_without_the_input_gain_is_measurably_different():
    # decay_input=False in stlsim (gain 1) against the peer's default decay_input=True.
    wrong = stlsim.LIF(**conventions.from_spikingjelly(decay_input=False))
    net = make_net(wrong, surrogate=stlsim.surrogate.Sigmoid(4.0), gain=4.0)
    x = spikes_in()
    probe = _probe(net, x)
    spikes, grads = spikingjelly_run(net, x, probe)
    assert _measurably_different(net, x, probe, spikes, grads)


def _norse_cells_run(net, x, probe, make_cell):
    """Run a Norse chain Linear -> cell -> ... step by step (cells from ``make_cell(v_th)``,
    with stlsim's thresholds as tensors that collect gradients); probe-loss backward."""
    torch = pytest.importorskip("torch")
    linears = _torch_linear(net, torch, torch.float64)
    thresholds = [torch.tensor(net.params[f"{i}.theta"], requires_grad=True)
                  for i in range(len(linears))]
    cells = [make_cell(th) for th in thresholds]
    states = [None] * len(cells)
    spikes = [[] for _ in cells]
    for t in range(x.shape[0]):
        h = torch.as_tensor(x[t])
        for i, (lin, cell) in enumerate(zip(linears, cells)):
            h, states[i] = cell(lin(h), states[i])
            spikes[i].append(h)
    out = [torch.stack(s) for s in spikes]
    (out[-1] * torch.as_tensor(probe)).sum().backward()
    grads = {}
    for i, lin in enumerate(linears):
        grads[f"{i}.weight"] = lin.weight.grad.numpy()
        grads[f"{i}.theta"] = thresholds[i].grad.numpy()
    return [s.detach().numpy() for s in out], grads


def norse_run(net, x, probe, tau_mem_inv=100.0, dt=1e-3):
    torch = pytest.importorskip("torch")
    pytest.importorskip("norse")
    import norse.torch as norse
    from norse.torch.functional.lif_box import LIFBoxParameters
    rate = torch.tensor(tau_mem_inv, dtype=torch.float64)
    return _norse_cells_run(net, x, probe, lambda th: norse.LIFBoxCell(
        p=LIFBoxParameters(tau_mem_inv=rate, v_th=th), dt=dt))


def test_norse_lifboxcell_matches_the_peer():
    net = make_net(stlsim.LIF.preset("norse.LIFBoxCell"),
                   surrogate=conventions.get("norse.LIFBoxCell").surrogate(), gain=25.0,
                   theta=(0.3, 1.2))
    x = spikes_in()
    probe = _probe(net, x)
    spikes, grads = norse_run(net, x, probe)
    _compare(net, x, probe, spikes, grads, rtol=1e-10)


def test_norse_spike_at_threshold_is_measurably_different():
    # The nearest wrong convention: H(0) = 1. With dt/tau_mem = 1/2, integer weights and
    # theta = 1 the membrane lands exactly on the threshold, and only H(0) decides.
    settings = {**conventions.from_norse(tau_mem_inv=500.0), "spike_at_threshold": True}
    net = make_net(stlsim.LIF(**settings), surrogate=stlsim.surrogate.SuperSpike(1.0))
    for key in net.params:
        net.params[key][:] = 2.0 if key.endswith(".weight") else 1.0
    x = spikes_in(density=0.3)
    probe = _probe(net, x)
    spikes, _ = norse_run(net, x, probe, tau_mem_inv=500.0)
    _, _, record = net.probe_grad(x, probe)
    assert not np.array_equal(record.spikes[0], spikes[0])
    exact = stlsim.Network(net.layers, neuron=stlsim.LIF(**{**settings,
                                                            "spike_at_threshold": False}),
                           surrogate=net.surrogate, backend="numpy")
    exact.params = {k: v.copy() for k, v in net.params.items()}
    _, _, record = exact.probe_grad(x, probe)
    np.testing.assert_array_equal(record.spikes[0], spikes[0])     # the right one agrees


def test_general_scalar_step_reduces_to_the_papers_form():
    # kernels/scalar.py: the clock kernels run the general step; the event and CUDA
    # kernels the paper's form. With every option off they are the same operations.
    from stlsim.kernels import scalar
    rng = np.random.default_rng(4)
    for _ in range(2000):
        current, v_prev, theta, e, delta_next = rng.normal(size=5)
        tau = float(rng.uniform(0, 1))
        for hard in (True, False):
            reset = scalar.HARD if hard else scalar.SOFT
            for smooth in (False, True):
                kind = int(rng.integers(0, 6))
                old = scalar.lif_forward_step(current, v_prev, theta, tau, hard, smooth, kind, 2.0)
                new = scalar.lif_forward_step_general(current, v_prev, 0.0, theta, tau, 0.0, 1.0,
                                                      0.0, reset, False, False, False, False,
                                                      smooth, kind, 2.0)
                assert old == new
                m, s, _ = old
                for detach in (False, True):
                    old_b = scalar.lif_backward_step(e, delta_next, m, s, theta, tau, hard, detach,
                                                     kind, 2.0)
                    delta, grad_current, term = scalar.lif_backward_step_general(
                        e, delta_next, m, s, theta, tau, 1.0, 0.0, reset, detach, False, False,
                        kind, 2.0)
                    assert old_b == (delta, term) and grad_current == delta


# ------------------------------------------------- synapses and trained decays vs peers --

def test_snntorch_synaptic_with_learned_decays_matches_the_peer():
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    alpha, beta = 0.6, 0.8
    neuron = stlsim.LIF.preset("snntorch.Synaptic", tau=beta, alpha_syn=alpha, learn_tau="factor",
                               learn_alpha_syn=True)
    net = make_net(neuron, dtype=np.float32, theta=(0.3, 1.2))
    x = spikes_in(dtype=np.float32)
    probe = _probe(net, x)
    linears = _torch_linear(net, torch, torch.float32)
    cells = [snn.Synaptic(alpha=alpha, beta=beta, threshold=torch.tensor(net.params[f"{i}.theta"]),
                          learn_alpha=True, learn_beta=True, learn_threshold=True,
                          spike_grad=snn.surrogate.atan(alpha=2.0)) for i in range(len(linears))]
    states = [cell.init_synaptic() for cell in cells]
    spikes = [[] for _ in cells]
    for t in range(x.shape[0]):
        h = torch.as_tensor(x[t])
        for i, (lin, cell) in enumerate(zip(linears, cells)):
            syn, mem = states[i]
            h, syn, mem = cell(lin(h), syn, mem)
            states[i] = (syn, mem)
            spikes[i].append(h)
    out = [torch.stack(s) for s in spikes]
    (out[-1] * torch.as_tensor(probe)).sum().backward()
    grads = {}
    for i, (lin, cell) in enumerate(zip(linears, cells)):
        grads[f"{i}.weight"] = lin.weight.grad.double().numpy()
        grads[f"{i}.theta"] = cell.threshold.grad.double().numpy()
        grads[f"{i}.tau"] = cell.beta.grad.double().numpy().reshape(1)
        grads[f"{i}.alpha_syn"] = cell.alpha.grad.double().numpy().reshape(1)
    _compare(net, x, probe, [s.detach().numpy() for s in out], grads, rtol=2e-5)


def test_spikingjelly_parametric_lif_matches_the_peer():
    torch = pytest.importorskip("torch")
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron, surrogate
    net = make_net(stlsim.LIF.preset("spikingjelly.ParametricLIFNode", tau=1 - 1 / 3.0),
                   surrogate=stlsim.surrogate.Sigmoid(4.0), gain=4.0)
    x = spikes_in()
    probe = _probe(net, x)
    linears = _torch_linear(net, torch, torch.float64)
    nodes = [neuron.ParametricLIFNode(init_tau=3.0, decay_input=True, v_threshold=1.0,
                                      v_reset=0.0, surrogate_function=surrogate.Sigmoid(alpha=4.0),
                                      step_mode="m").to(torch.float64) for _ in linears]
    for i, node in enumerate(nodes):                 # the same w, bit for bit
        with torch.no_grad():
            node.w.copy_(torch.as_tensor(net.params[f"{i}.tau_w"][0]))
    h = torch.as_tensor(x)
    spikes = []
    for lin, node in zip(linears, nodes):
        h = node(lin(h))
        spikes.append(h)
    (spikes[-1] * torch.as_tensor(probe)).sum().backward()
    grads = {f"{i}.weight": lin.weight.grad.numpy() for i, lin in enumerate(linears)}
    grads.update({f"{i}.tau_w": node.w.grad.numpy().reshape(1) for i, node in enumerate(nodes)})
    _compare(net, x, probe, [s.detach().numpy() for s in spikes], grads, rtol=1e-10)


def test_norse_lifcell_matches_the_peer():
    torch = pytest.importorskip("torch")
    pytest.importorskip("norse")
    import norse.torch as norse
    from norse.torch.functional.lif import LIFParameters
    net = make_net(stlsim.LIF.preset("norse.LIFCell"),
                   surrogate=conventions.get("norse.LIFCell").surrogate(), gain=15.0,
                   theta=(0.3, 1.2))
    x = spikes_in()
    probe = _probe(net, x)
    f64 = {"dtype": torch.float64}
    spikes, grads = _norse_cells_run(net, x, probe, lambda th: norse.LIFCell(
        p=LIFParameters(tau_syn_inv=torch.tensor(200.0, **f64),
                        tau_mem_inv=torch.tensor(100.0, **f64), v_th=th)))
    _compare(net, x, probe, spikes, grads, rtol=1e-10)


def test_synapse_without_its_filter_is_measurably_different():
    # The nearest wrong convention for Norse's LIFCell: no synapse (LIFBoxCell's neuron).
    right = make_net(stlsim.LIF.preset("norse.LIFCell"), surrogate="superspike", gain=15.0,
                     theta=(0.3, 1.2))
    wrong = make_net(stlsim.LIF.preset("norse.LIFBoxCell"), surrogate="superspike", gain=15.0,
                     theta=(0.3, 1.2))
    x = spikes_in()
    probe = _probe(right, x)
    _, g_right, r_right = right.probe_grad(x, probe)
    _, g_wrong, r_wrong = wrong.probe_grad(x, probe)
    differs = any(not np.array_equal(a, b) for a, b in zip(r_right.spikes, r_wrong.spikes))
    assert differs or max(np.abs(g_right[k] - g_wrong[k]).max() for k in g_right) > 1e-3


@pytest.mark.parametrize("options", [
    dict(alpha_syn=0.6, learn_alpha_syn=True),
    dict(learn_tau="factor", tau=0.6),
    dict(learn_tau="sigmoid", tau=0.6, tie_gain=True, v_leak=0.1, v_reset=0.1, v_init=0.1),
    dict(learn_tau="factor", tau=np.linspace(0.2, 0.9, 9)),
    dict(alpha_syn=0.8, learn_alpha_syn=True, learn_tau="factor", tau=0.9,
         reset="subtract_after_leak"),
], ids=lambda o: ",".join(o))
def test_smooth_bptt_of_trained_decays_and_synapses_matches_finite_differences(options):
    options = dict(options)
    tau = options.pop("tau", 0.6)
    first = stlsim.LIF(theta_init=0.4, tau=tau, **options)
    second = stlsim.LIF(theta_init=0.4, tau=0.7 if np.ndim(tau) else tau, **options)
    net = make_net([first, second], population=2, theta=(0.1, 0.8))
    x, y = spikes_in(), np.array([0, 1, 1])
    _, grads = net.loss_and_grad(x, y, smooth=True)
    trained = [k for k in grads if k.split(".")[1] in ("tau", "tau_w", "alpha_syn")]
    assert trained and set(trained) <= set(net.param_groups()["decay"])
    fd = finite_difference_grads(net, x, y)
    errors = compare(grads, fd)
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors
    assert all(errors[k]["scale"] > 1e-5 for k in trained)


def test_a_clamped_decay_gets_no_gradient_outside_its_range():
    net = make_net(stlsim.LIF(theta_init=0.4, learn_tau="factor", tau=0.6), population=2)
    net.params["0.tau"][:] = 1.2                     # snnTorch: beta.clamp(0, 1)
    x, y = spikes_in(), np.array([0, 1, 1])
    _, grads = net.loss_and_grad(x, y)
    assert grads["0.tau"][0] == 0 and grads["1.tau"][0] != 0


def test_synapse_runs_on_the_reference_in_the_numba_backend_and_says_so():
    pytest.importorskip("numba")
    backend = get_backend("numba")
    net = make_net(stlsim.LIF.preset("norse.LIFCell"), surrogate="superspike", gain=15.0,
                   population=2)
    x, y = spikes_in(), np.array([0, 1, 0])
    before = backend.calls.copy()
    loss, grads = net.loss_and_grad(x, y, backend="numba")
    assert backend.calls["fallback:numpy"] == before["fallback:numpy"] + 4   # 2 layers x 2
    ref_loss, ref_grads = net.loss_and_grad(x, y, backend="numpy")
    assert loss == ref_loss and all(np.array_equal(grads[k], ref_grads[k]) for k in grads)


def test_conventions_hold_data_and_import_no_neuron_module():
    # The house issue: LIF.preset (neurons.py) <-> Convention.neuron (conventions.py) was an
    # import circle. Conventions are plain data now; neurons.py imports them, one way.
    import ast
    import pathlib
    source = pathlib.Path(conventions.__file__).read_text()
    imported = {node.module for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", "_checks", None}, imported
    assert not hasattr(conventions.Convention, "neuron")
    neuron = stlsim.LIF.preset("snntorch.Leaky", tau=0.9)
    assert neuron.tau == 0.9 and neuron.reset == "subtract_after_leak"
    with pytest.raises(TypeError, match=r"`overrides` of `LIF.preset\('stl'\)` must be LIF settings"):
        stlsim.LIF.preset("stl", beta=0.5)


@pytest.mark.parametrize("synapse,learn", [(None, False), (0.5, False), (0.5, True)])
def test_smooth_bptt_of_the_zero_after_leak_reset_matches_finite_differences(synapse, learn):
    """(L2z), (B1z), (B3z): snnTorch's Synaptic zero reset, detached (a frozen-reset FD)."""
    neuron = stlsim.LIF(theta_init=0.4, tau=0.7, reset="zero_after_leak", detach_reset=True,
                        alpha_syn=synapse, learn_tau="factor" if learn else False,
                        learn_alpha_syn=learn)
    net = make_net(neuron, surrogate="sigmoid", population=2, theta=(0.1, 0.6))
    x, y = spikes_in(), np.array([0, 1, 1])
    _, grads = net.loss_and_grad(x, y, smooth=True)
    errors = compare(grads, finite_difference_grads(net, x, y))
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors
    assert all(e["scale"] > 1e-4 for e in errors.values()), errors


def test_the_zero_after_leak_reset_is_refused_attached_and_runs_the_reference_on_numba():
    with pytest.raises(ValueError, match="`detach_reset` of `LIF` must be True with reset='zero_after_leak'"):
        stlsim.LIF(reset="zero_after_leak")
    neuron = stlsim.LIF(theta_init=0.4, tau=0.7, reset="zero_after_leak", detach_reset=True)
    x, y = spikes_in(), np.array([0, 1, 1])
    _, expected = make_net(neuron).loss_and_grad(x, y)
    backend = get_backend("numba")
    before = backend.calls["fallback:numpy"]
    net = make_net(neuron)
    net.backend = "numba"
    _, grads = net.loss_and_grad(x, y)
    assert backend.calls["fallback:numpy"] > before
    for key in expected:
        np.testing.assert_array_equal(grads[key], expected[key])
