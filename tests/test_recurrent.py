"""Recurrent layers and adaptive thresholds: docs/model.md Section 10, (L1r), (L3v), (L5a),
(B2r), (B10)-(B13).

* smooth mode: BPTT against float64 finite differences for every trained quantity
  (W, V, b_rec, theta, beta, rho, and the Section 8 options they combine with);
* spiking mode: against an independent autodiff model written here in torch from the
  equations (not from stlsim's code), and the two nearest wrong conventions (the
  adaptation updated before the spike, the recurrent input one step late) differ;
* the stateful reference reduces to the feed-forward one without recurrence or
  adaptation; the event engine refuses them by name; the fused paths do not take them.
"""
from __future__ import annotations

import numpy as np
import pytest

import stlsim
from stlsim.grad.bptt import lif_backward, lif_backward_stateful
from stlsim.grad.check import compare, finite_difference_grads
from stlsim.engines.clock import lif_forward, lif_forward_stateful


def make_net(neuron, recurrent=("all", None), *, sizes=(5, 7, 4), surrogate="sigmoid", seed=0,
             gain=2.5, theta=(0.2, 0.7), bias=False, dtype=np.float64, backend="numpy"):
    layers = [stlsim.Dense(a, b, init_gain=gain, recurrent=r,
                           recurrent_bias=bias and r == "all")
              for a, b, r in zip(sizes[:-1], sizes[1:], recurrent)]
    net = stlsim.Network(layers, neuron=neuron, surrogate=surrogate, seed=seed, dtype=dtype,
                         backend=backend)
    rng = np.random.default_rng(seed + 11)
    for key in net.params:
        if key.endswith(".theta"):
            net.params[key][:] = rng.uniform(*theta, net.params[key].shape)
    return net


def spikes_in(T=7, B=3, n=5, density=0.5, seed=1):
    return (np.random.default_rng(seed).random((T, B, n)) < density).astype(np.float64)


ADAPT = dict(beta=0.6, rho=0.8, learn_beta=True, learn_rho=True)

CASES = [
    ("all", {}, None),
    ("one", {}, None),
    ("all+bias", {}, None),
    ("all", dict(reset="soft"), None),
    ("all", dict(reset="subtract_after_leak"), None),
    ("all", dict(reset="subtract_after_leak", detach_reset=True), None),
    ("all", dict(reset="none"), None),
    ("all", dict(alpha_syn=0.6, learn_alpha_syn=True), None),           # RSynaptic-like
    ("all", dict(learn_tau="factor", tau=0.8), None),
    ("one", dict(input_gain=0.4, v_leak=0.1, v_reset=-0.1), None),
    (None, {}, ADAPT),
    (None, dict(reset="soft"), ADAPT),
    (None, dict(reset="subtract_after_leak"), ADAPT),
    (None, dict(reset="hard", detach_reset=True), dict(ADAPT, detach=True)),
    (None, dict(spike_at_threshold=False), dict(beta=1.2, rho=0.9, learn_beta=True)),
    ("all", {}, ADAPT),                                                   # both together
    ("one", dict(reset="soft", alpha_syn=0.5), ADAPT),
    (None, dict(synapse_delay=True, alpha_syn=0.7, input_gain=0.5, learn_alpha_syn=True), None),
    ("all", dict(synapse_delay=True, alpha_syn=0.6, tau=0.8, input_gain=0.2, v_leak=0.1,
                 spike_at_threshold=False), dict(ADAPT, detach=True)),     # LSNN-like
    ("one", dict(synapse_delay=True, tie_gain=True, learn_tau="factor", tau=0.8), None),
    ("all", dict(tau=np.linspace(0.3, 0.9, 7)), dict(beta=np.linspace(0.2, 1.0, 7), rho=0.7,
                                                      learn_beta=True, learn_rho=True)),
]


def _case_id(case):
    rec, options, adapt = case
    parts = [f"rec={rec}"] + list(options) + (["adapt"] if adapt else [])
    return ",".join(parts)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_smooth_bptt_matches_finite_differences(case):
    rec, options, adapt = case
    options = dict(options)
    tau = options.pop("tau", 0.7)
    bias = rec == "all+bias"
    rec = "all" if bias else rec
    adaptation = None if adapt is None else stlsim.Adaptation(**adapt)
    first = stlsim.LIF(theta_init=0.4, tau=tau, adaptation=adaptation, **options)
    second = stlsim.LIF(theta_init=0.4, tau=0.7 if np.ndim(tau) else tau,
                        adaptation=None if adapt is None or np.ndim(adapt["beta"])
                        else stlsim.Adaptation(**adapt), **options)
    net = make_net([first, second], (rec, "one" if rec else None), bias=bias)
    x, y = spikes_in(), np.array([0, 1, 3])
    _, grads = net.loss_and_grad(x, y, smooth=True)
    fd = finite_difference_grads(net, x, y, max_entries=8)
    errors = compare(grads, fd)
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors
    trained = {"recurrent", "adapt_beta", "adapt_rho"} & {k.split(".", 1)[1] for k in grads}
    for key, e in errors.items():
        if key.split(".", 1)[1] in trained:
            assert e["scale"] > 1e-5, f"{key}: a dead gradient checks nothing ({e})"


def test_parameters_names_shapes_and_groups():
    neuron = stlsim.LIF(adaptation=stlsim.Adaptation(learn_beta=True, learn_rho=True))
    net = stlsim.Network([stlsim.Dense(700, 128, recurrent="all"), stlsim.Dense(128, 20)],
                         neuron=neuron)
    assert net.params["0.recurrent"].shape == (128, 128)
    assert net.params["0.adapt_beta"].shape == (128,) and net.params["1.adapt_rho"].shape == (20,)
    np.testing.assert_array_equal(net.params["0.adapt_beta"], 1.8)
    groups = net.param_groups()
    assert "0.recurrent" in groups["synaptic"]
    assert {"0.adapt_beta", "0.adapt_rho", "1.adapt_beta", "1.adapt_rho"} <= set(groups["threshold"])
    one = stlsim.Network([stlsim.Dense(4, 6, recurrent="one")])
    assert one.params["0.recurrent"].shape == (6,)
    fixed = stlsim.Network([stlsim.Dense(4, 6)], neuron=stlsim.LIF(adaptation=stlsim.Adaptation()))
    assert sorted(fixed.params) == ["0.theta", "0.weight"]       # nothing trained: no parameter


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="recurrent"):
        stlsim.Dense(3, 4, recurrent="full")
    with pytest.raises(ValueError, match="recurrent_bias"):
        stlsim.Dense(3, 4, recurrent_bias=True)
    with pytest.raises(ValueError, match="rho"):
        stlsim.Adaptation(rho=1.5)
    with pytest.raises(ValueError, match="beta"):
        stlsim.Adaptation(beta=np.nan)
    with pytest.raises(TypeError, match="adaptation"):
        stlsim.LIF(adaptation=1.8)
    with pytest.raises(ValueError, match="adaptation"):
        stlsim.Network([stlsim.Dense(3, 4)],
                       neuron=stlsim.LIF(adaptation=stlsim.Adaptation(beta=[1.0, 2.0])))


def test_settings_round_trip_and_equality():
    neuron = stlsim.LIF(tau=0.9, adaptation=stlsim.Adaptation(beta=[0.5, 1.0], rho=0.9))
    again = stlsim.LIF(**neuron.settings())
    assert again == neuron and hash(again) == hash(neuron)
    assert neuron != stlsim.LIF(tau=0.9, adaptation=stlsim.Adaptation(beta=[0.5, 1.1], rho=0.9))
    assert not neuron.is_paper_form and "Adaptation(" in repr(neuron)


@pytest.mark.parametrize("options", [dict(), dict(reset="soft"), dict(reset="subtract_after_leak"),
                                     dict(alpha_syn=0.5, input_gain=0.3, v_leak=0.2),
                                     dict(reset="zero_after_leak", detach_reset=True)])
def test_stateful_reference_reduces_to_the_feed_forward_one(options):
    """Without recurrence and adaptation, the Section 10 loops are Sections 4 and 8.2."""
    rng = np.random.default_rng(3)
    neuron = stlsim.LIF(tau=0.8, theta_init=0.5, **options)
    surrogate = stlsim.surrogate.get("atan")
    current = rng.normal(0.3, 0.8, (9, 4, 6))
    theta = rng.uniform(0.2, 0.9, 6)
    for smooth in (False, True):
        s1, m1 = lif_forward(current, theta, neuron, surrogate, smooth)
        s2, m2 = lif_forward_stateful(current, theta, neuron, surrogate, smooth)
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_allclose(m1, m2, rtol=1e-13, atol=1e-13)
        e = rng.normal(size=current.shape)
        acc1 = {"grad_tau": np.zeros(6), "grad_gain": np.zeros(6)}
        acc2 = {"grad_tau": np.zeros(6), "grad_gain": np.zeros(6)}
        g1, t1 = lif_backward(e, m1, s1, theta, neuron, surrogate, current=current, **acc1)
        g2, t2, rec = lif_backward_stateful(e, m1, s1, theta, neuron, surrogate, current=current,
                                            **acc2)
        assert rec == {}
        np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(t1, t2, rtol=1e-12, atol=1e-13)
        for key in acc1:
            np.testing.assert_allclose(acc1[key], acc2[key], rtol=1e-12, atol=1e-13)


def test_event_engine_refuses_by_name_and_fused_paths_decline():
    x = spikes_in(n=5)
    net = make_net(stlsim.LIF(theta_init=0.5), ("all", None))
    with pytest.raises(ValueError, match="recurrent"):
        net.forward(x, engine="event")
    adaptive = make_net(stlsim.LIF(theta_init=0.5, adaptation=stlsim.Adaptation()), (None, None))
    with pytest.raises(ValueError, match="adaptation"):
        adaptive.forward(x, engine="event")
    pytest.importorskip("numba")
    for candidate in (net, adaptive):
        reference = candidate.loss_and_grad(x, np.array([0, 1, 2]), backend="numpy")
        backend = stlsim.engines.get_backend("numba")
        before = backend.calls["fused_loss_and_grad"]
        fast = candidate.loss_and_grad(x, np.array([0, 1, 2]), backend="numba")
        assert backend.calls["fused_loss_and_grad"] == before
        assert fast[0] == pytest.approx(reference[0], rel=1e-12)
        for key in reference[1]:
            np.testing.assert_allclose(fast[1][key], reference[1][key], rtol=1e-10, atol=1e-12)


# ------------------------------------------------- an independent autodiff model (torch) --

def _torch_model(torch, x, W, V, theta, beta, rho, *, kind, tau, reset, wrong=None, slope=2.0):
    """(L1r), (L3v), (L5a) for ONE layer, written from docs/model.md Section 10 with torch's
    autograd; atan surrogate (stlsim's ATan(2)). ``wrong``: "adapt_first" (the threshold of
    step t already holds s_t's rise: a_{t+1} in (L3v)) or "late" (R(s_{t-2}) in (L1r))."""
    pi = torch.pi

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            ctx.save_for_backward(u)
            return (u >= 0).to(u.dtype)

        @staticmethod
        def backward(ctx, grad):
            (u,) = ctx.saved_tensors
            return grad * (slope / 2) / (1 + (pi / 2 * slope * u) ** 2)

    T, B, _ = x.shape
    N = W.shape[0]
    v = torch.zeros(B, N, dtype=x.dtype)
    a = torch.zeros(B, N, dtype=x.dtype)
    s1 = torch.zeros(B, N, dtype=x.dtype)                     # s_{t-1}
    s2 = torch.zeros(B, N, dtype=x.dtype)                     # s_{t-2}
    out = []
    for t in range(T):
        s_rec = s2 if wrong == "late" else s1
        rec = s_rec @ V.T if kind == "all" else s_rec * V
        m = tau * v + x[t] @ W.T + rec
        if wrong == "adapt_first":
            # the mistake: the adaptation takes this step's spike first (from the
            # Heaviside of the static threshold), then the spike is compared with it
            pre = Spike.apply(m - theta - beta * a)
            th = theta + beta * (rho * a + pre)
        else:
            th = theta + beta * a
        s = Spike.apply(m - th)
        v = (1 - s) * m if reset == "hard" else m - s * th
        a = rho * a + s
        out.append(s)
        s2, s1 = s1, s
    return torch.stack(out)


@pytest.mark.parametrize("kind", ["all", "one"])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_spiking_gradients_match_an_independent_autodiff_model(kind, reset):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    T, B, n_in, N = 12, 4, 6, 8
    neuron = stlsim.LIF(tau=0.85, theta_init=1.0, reset=reset,
                        adaptation=stlsim.Adaptation(beta=0.5, rho=0.9, learn_beta=True,
                                                     learn_rho=True))
    net = stlsim.Network([stlsim.Dense(n_in, N, recurrent=kind, init_gain=3.0)], neuron=neuron,
                         surrogate=stlsim.surrogate.ATan(2.0), backend="numpy")
    net.params["0.theta"][:] = rng.uniform(0.6, 1.2, N)
    net.params["0.adapt_beta"][:] = rng.uniform(0.2, 0.8, N)
    net.params["0.adapt_rho"][:] = rng.uniform(0.7, 0.95, N)
    x = (rng.random((T, B, n_in)) < 0.4).astype(np.float64)
    probe = rng.normal(size=(T, B, N))
    _, grads, record = net.probe_grad(x, probe)

    def run(wrong=None):
        tensors = {k: torch.tensor(net.params[f"0.{k}"], requires_grad=True)
                   for k in ("weight", "recurrent", "theta", "adapt_beta", "adapt_rho")}
        s = _torch_model(torch, torch.tensor(x), tensors["weight"], tensors["recurrent"],
                         tensors["theta"], tensors["adapt_beta"], tensors["adapt_rho"],
                         kind=kind, tau=0.85, reset=reset, wrong=wrong)
        (s * torch.tensor(probe)).sum().backward()
        return s.detach().numpy(), {k: t.grad.numpy() for k, t in tensors.items()}

    spikes, peer = run()
    assert record.spikes[0].mean() > 0.05                      # the layer fires
    np.testing.assert_array_equal(spikes, record.spikes[0])
    for name, value in peer.items():
        np.testing.assert_allclose(grads[f"0.{name}"], value, rtol=1e-9, atol=1e-11,
                                   err_msg=name)
    for wrong in ("adapt_first", "late"):
        spikes_w, peer_w = run(wrong)
        differs = not np.array_equal(spikes_w, spikes) or any(
            not np.allclose(grads[f"0.{k}"], v, rtol=1e-6, atol=1e-9) for k, v in peer_w.items())
        assert differs, f"the wrong convention {wrong!r} is not detected"


# ------------------------------------------------------------------ the real peers --

def _snntorch_models(torch, snn):
    def seq(neuron):
        model = torch.nn.Sequential(torch.nn.Linear(10, 12), neuron, torch.nn.Linear(12, 5),
                                    snn.Leaky(beta=0.8, init_hidden=True))
        with torch.no_grad():
            model[0].weight.mul_(3.0)
            model[2].weight.mul_(3.0)
        return model
    return {
        "RLeaky": lambda: seq(snn.RLeaky(beta=0.9, linear_features=12, init_hidden=True)),
        "RLeaky.one": lambda: seq(snn.RLeaky(beta=0.9, all_to_all=False, V=torch.rand(12) * 0.5,
                                             init_hidden=True)),
        "RLeaky.one.scalar": lambda: seq(snn.RLeaky(beta=0.85, all_to_all=False, V=0.3,
                                                    init_hidden=True)),
        "RSynaptic": lambda: seq(snn.RSynaptic(alpha=0.8, beta=0.9, linear_features=12,
                                               init_hidden=True)),
        "RLeaky.zero": lambda: seq(snn.RLeaky(beta=0.9, linear_features=12, init_hidden=True,
                                              reset_mechanism="zero")),
    }


@pytest.mark.parametrize("name", ["RLeaky", "RLeaky.one", "RLeaky.one.scalar", "RSynaptic",
                                  "RLeaky.zero"])
def test_snntorch_recurrent_neurons_match_the_peer(name):
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from stlsim import interop
    torch.manual_seed(0)
    model = _snntorch_models(torch, snn)[name]()
    x = (torch.rand(20, 4, 10) < 0.3).float()
    rep = interop.compare(model, x)
    assert rep.ok, str(rep)
    assert all(rate > 0.01 for rate in rep.firing_rates), rep.firing_rates
    recurrent = [row for row in rep.rows if row.key == "0.recurrent"]
    assert recurrent and recurrent[0].relative <= recurrent[0].tolerance     # V is compared


def _norse_models(torch, norse):
    p = norse.LSNNParameters(tau_adapt_inv=torch.as_tensor(1 / 50.0), beta=torch.as_tensor(1.8))
    return {
        "LIFRecurrentCell": lambda: norse.SequentialState(
            norse.LIFRecurrentCell(10, 12), torch.nn.Linear(12, 5), norse.LIFCell()),
        "LIFRecurrentCell.autapses": lambda: norse.SequentialState(
            norse.LIFRecurrentCell(10, 12, autapses=True), torch.nn.Linear(12, 5), norse.LIFCell()),
        "LSNNCell": lambda: norse.SequentialState(
            torch.nn.Linear(10, 12), norse.LSNNCell(p), torch.nn.Linear(12, 5), norse.LIFCell()),
        "LSNNRecurrentCell": lambda: norse.SequentialState(
            norse.LSNNRecurrentCell(10, 12, p), torch.nn.Linear(12, 5), norse.LIFCell()),
        "LSNNRecurrent": lambda: norse.SequentialState(
            norse.LSNNRecurrent(10, 12, p), torch.nn.Linear(12, 5), norse.LIF()),
    }


@pytest.mark.parametrize("name", ["LIFRecurrentCell", "LIFRecurrentCell.autapses", "LSNNCell",
                                  "LSNNRecurrentCell", "LSNNRecurrent"])
def test_norse_recurrent_and_adaptive_neurons_match_the_peer(name):
    torch = pytest.importorskip("torch")
    norse = pytest.importorskip("norse.torch")
    from stlsim import interop
    torch.manual_seed(1)
    model = _norse_models(torch, norse)[name]()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(10.0)
    model = model.double()
    x = (torch.rand(60, 4, 10) < 0.4).double()
    rep = interop.compare(model, x)
    assert rep.ok, str(rep)
    assert rep.max_rel_error <= 1e-10
    assert all(rate > 0.01 for rate in rep.firing_rates), rep.firing_rates


def test_lsnn_without_the_delayed_synapse_is_measurably_different():
    """(L1d) matters: the same LSNN converted with the membrane reading this step's current
    fires differently from Norse."""
    torch = pytest.importorskip("torch")
    norse = pytest.importorskip("norse.torch")
    from stlsim import interop
    from stlsim.neurons import replace_unchecked
    torch.manual_seed(1)
    model = _norse_models(torch, norse)["LSNNRecurrentCell"]()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(10.0)
    model = model.double()
    x = (torch.rand(60, 4, 10) < 0.4).double()
    with torch.no_grad():
        state, outs = None, []
        for t in range(x.shape[0]):
            out, state = model(x[t], state)
            outs.append(out)
    peer = torch.stack(outs).numpy()
    net = interop.from_norse(model, (10,))
    np.testing.assert_array_equal(net.forward(x.numpy()).spikes[-1], peer)
    wrong = stlsim.Network(net.layers, neuron=[replace_unchecked(n, synapse_delay=False)
                                               for n in net.neurons],
                           surrogate=net.surrogates, backend="numpy")
    wrong.params = {k: v.copy() for k, v in net.params.items()}
    assert not np.array_equal(wrong.forward(x.numpy()).spikes[-1], peer)


@pytest.mark.parametrize("name, peer", [("snntorch.RLeaky", "RLeaky"), ("snntorch.RSynaptic", "RSynaptic"),
                                        ("snntorch.RLeaky.one", "RLeaky.one"),
                                        ("norse.LIFRecurrentCell", "LIFRecurrentCell"),
                                        ("norse.LSNNRecurrentCell", "LSNNRecurrentCell")])
def test_presets_are_what_the_converter_reads_from_the_peer(name, peer):
    torch = pytest.importorskip("torch")
    from stlsim import conventions, interop
    if name.startswith("snntorch"):
        snn = pytest.importorskip("snntorch")
        model = _snntorch_models(torch, snn)[peer]()
        twin = interop.from_snntorch(model, (10,))
        overrides = dict(tau=0.9, **({"alpha_syn": 0.8} if "Synaptic" in name else {}))
    else:
        norse = pytest.importorskip("norse.torch")
        model = _norse_models(torch, norse)[peer]()
        if "LSNN" in peer:                        # the preset takes Norse's defaults
            cell = model[0]
            cell.p = norse.LSNNParameters()
        twin = interop.from_norse(model, (10,))
        overrides = {}
    preset = stlsim.LIF.preset(name, theta_init=0.0, **overrides)
    converted = twin.neurons[0]
    for key, value in preset.settings().items():
        got = converted.settings()[key]
        if value is None or isinstance(value, bool):
            assert got == value, (key, got, value)
        elif isinstance(value, dict):
            for k, v in value.items():
                assert np.allclose(got[k], v, rtol=1e-6), (key, k, got[k], v)
        else:
            assert np.allclose(got, value, rtol=1e-6) if not isinstance(value, str) \
                else got == value, (key, got, value)
    layer = twin.layers[0]
    for option, value in conventions.get(name).layer.items():
        assert getattr(layer, option) == value


def test_nir_write_refuses_recurrent_and_adaptive_networks_by_name(tmp_path):
    pytest.importorskip("nir")
    from stlsim import nir as stlsim_nir
    with pytest.raises(ValueError, match="recurrent"):
        stlsim_nir.write(make_net(stlsim.LIF(), ("all", None)), tmp_path / "a.nir", 1e-3)
    adaptive = make_net(stlsim.LIF(adaptation=stlsim.Adaptation()), (None, None))
    with pytest.raises(ValueError, match="adaptation"):
        stlsim_nir.write(adaptive, tmp_path / "b.nir", 1e-3)


def test_synaptic_operations_count_the_recurrent_spikes():
    from stlsim.analysis.energy import ann_macs, synaptic_operations
    for kind, fan in (("all", 7), ("one", 1)):
        net = make_net(stlsim.LIF(theta_init=0.5), (kind, None))
        x = spikes_in()
        record = net.forward(x)
        ops = synaptic_operations(net, x, record=record)
        feed_forward = synaptic_operations(make_net(stlsim.LIF(theta_init=0.5), (None, None)), x,
                                           record=record)
        own = (record.spikes[0][:-1] != 0).sum(axis=(0, 2))
        assert own.sum() > 0
        np.testing.assert_array_equal(ops.per_sample[:, 0] - feed_forward.per_sample[:, 0],
                                      own * fan)
        assert ann_macs(net.layers[0]) == 5 * 7 + (49 if kind == "all" else 7)


def test_learning_modes_and_the_threshold_learning_rate_cover_the_adaptation():
    from stlsim.train.modes import trainable_names
    neuron = stlsim.LIF(theta_init=0.5, adaptation=stlsim.Adaptation(learn_beta=True,
                                                                     learn_rho=True))
    net = make_net(neuron, ("all", None))
    adapt = {k for k in net.params if "adapt_" in k}
    assert adapt and adapt <= set(trainable_names(net, "stl"))
    assert adapt <= set(trainable_names(net, "tl")) and "0.recurrent" not in trainable_names(net, "tl")
    assert not adapt & set(trainable_names(net, "sl")) and "0.recurrent" in trainable_names(net, "sl")
    # one plain SGD step: beta moves by theta_lr * grad, the recurrent weights by lr * grad
    from stlsim.data import Dataset
    from stlsim.train import TrainConfig, train
    rng = np.random.default_rng(0)
    x = rng.random((20, 5)).astype(np.float32)
    y = rng.integers(0, 4, 20)
    data = Dataset(x, y, x, y, "toy", 4, (5,))
    config = TrainConfig(epochs=1, batch_size=20, lr=1e-3, theta_lr=0.5, optimizer="sgd",
                         momentum=0.0, weight_decay=0.0, timesteps=6, encoding="direct",
                         lr_decay=1.0)
    before = {k: v.copy() for k, v in net.params.items()}
    reference = stlsim.Network(net.layers, neuron=net.neurons, surrogate=net.surrogates,
                               backend="numpy")
    reference.params = {k: v.copy() for k, v in before.items()}
    train(net, data, config, progress=False)
    moved = {k: net.params[k] - before[k] for k in net.params}
    ratio_beta = np.max(np.abs(moved["0.adapt_beta"]))
    ratio_rec = np.max(np.abs(moved["0.recurrent"]))
    assert ratio_beta > 0 and ratio_rec > 0
    # the step sizes differ by theta_lr / lr = 500 relative to the gradients
    _, grads = reference.loss_and_grad(np.repeat(x[None], 6, axis=0), y)
    np.testing.assert_allclose(moved["0.adapt_beta"], -0.5 * grads["0.adapt_beta"], rtol=1e-6,
                               atol=1e-12)
    np.testing.assert_allclose(moved["0.recurrent"], -1e-3 * grads["0.recurrent"], rtol=1e-6,
                               atol=1e-12)


def test_step_through_shows_the_threshold_of_every_step():
    neuron = stlsim.LIF(theta_init=0.5, reset="soft", adaptation=stlsim.Adaptation(beta=0.4, rho=0.7))
    net = make_net(neuron, (None, None))
    x, y = spikes_in(), np.array([0, 1, 3])
    trace = net.step_through(x, y)
    layer = trace.forward[0]
    assert layer["theta"].shape == layer["m"].shape
    a = np.zeros_like(layer["s"][0])
    for t in range(x.shape[0]):                        # (L3v), (L5a) and the soft reset (L4s)
        np.testing.assert_allclose(layer["theta"][t], net.params["0.theta"] + 0.4 * a)
        np.testing.assert_allclose(layer["v"][t], layer["m"][t] - layer["s"][t] * layer["theta"][t])
        a = 0.7 * a + layer["s"][t]
    assert layer["s"].sum() > 0


def test_the_delayed_synapse_runs_the_reference_on_the_numba_backend():
    """(L1d) without a synapse: the stateful kernels do not implement it, so the numba
    backend must fall back (counted), never run the undelayed kernel."""
    pytest.importorskip("numba")
    backend = stlsim.engines.get_backend("numba")
    neuron = stlsim.LIF(theta_init=0.4, synapse_delay=True, adaptation=stlsim.Adaptation(0.3, 0.8))
    x, y = spikes_in(), np.array([0, 1, 3])
    fast = make_net(neuron, ("all", None), backend="numba")
    reference = make_net(neuron, ("all", None), backend="numpy")
    before = backend.calls["fallback:numpy"]
    loss, grads = fast.loss_and_grad(x, y)
    assert backend.calls["fallback:numpy"] >= before + 2
    expected_loss, expected = reference.loss_and_grad(x, y)
    assert loss == expected_loss
    for key in expected:
        np.testing.assert_array_equal(grads[key], expected[key])
    undelayed = make_net(stlsim.LIF(theta_init=0.4, adaptation=stlsim.Adaptation(0.3, 0.8)),
                         ("all", None), backend="numpy")
    assert not np.array_equal(undelayed.forward(x).spikes[0], reference.forward(x).spikes[0])
