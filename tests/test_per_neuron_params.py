"""Per-neuron alpha_syn, v_leak, v_reset, v_init ((L1s), (L2g), (L4h), (B9n)): the reference's
gradients against finite differences, the peers (snnTorch Synaptic, Norse LIF cells) through
interop.compare, the compiled backends' counted fallback, and clear errors for bad values."""
import functools

import numpy as np
import pytest

import stlsim
from stlsim.grad.check import compare, finite_difference_grads

from test_conventions import make_net as conventions_net
from test_conventions import spikes_in

SIZES = (6, 5, 4)


def make_net(neuron, *, population=1, dtype=np.float64, backend="numpy", theta=(0.1, 0.8), seed=0):
    """``test_conventions.make_net`` on this file's sizes, thresholds drawn from ``theta``."""
    return conventions_net(neuron, sizes=SIZES, population=population, dtype=dtype, backend=backend,
                           theta=theta, seed=seed)


def layer_neurons(n_hidden=SIZES[1], n_out=SIZES[2], **options):
    """One LIF per layer, each with values per neuron of its own layer."""
    out = []
    for n in (n_hidden, n_out):
        values = {k: (np.linspace(*v, n) if isinstance(v, tuple) else v) for k, v in options.items()}
        out.append(stlsim.LIF(theta_init=0.4, tau=0.7, **values))
    return out


PER_NEURON = [
    dict(alpha_syn=(0.2, 0.9), learn_alpha_syn=True),
    dict(alpha_syn=(0.2, 0.9), learn_alpha_syn=True, learn_tau="factor", tau=0.8,
         reset="subtract_after_leak"),
    dict(v_leak=(-0.2, 0.3)),
    dict(v_reset=(-0.3, 0.2)),
    dict(v_leak=(0.0, 0.3), v_reset=(0.1, -0.1), v_init=(0.0, 0.3), alpha_syn=(0.3, 0.6)),
]


@pytest.mark.parametrize("options", PER_NEURON, ids=lambda o: ",".join(o))
def test_smooth_bptt_of_per_neuron_values_matches_finite_differences(options):
    options = dict(options)
    tau = options.pop("tau", 0.7)
    neurons = [stlsim.LIF(**{**n.settings(), "tau": tau}) for n in layer_neurons(**options)]
    net = make_net(neurons, population=2)
    x, y = spikes_in(), np.array([0, 1, 1])
    _, grads = net.loss_and_grad(x, y, smooth=True)
    if "learn_alpha_syn" in options:                 # (B9): one gradient per neuron
        assert grads["0.alpha_syn"].shape == (SIZES[1],)
        assert grads["1.alpha_syn"].shape == (SIZES[2],)
        assert len(set(np.round(grads["0.alpha_syn"], 12))) > 1
    errors = compare(grads, finite_difference_grads(net, x, y))
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors
    assert all(e["scale"] > 1e-6 for e in errors.values()), errors


@pytest.mark.parametrize("name,values", [("alpha_syn", (0.2, 0.9)), ("v_leak", (-0.3, 0.4)),
                                         ("v_reset", (-0.5, 0.3))])
def test_the_mean_value_is_not_the_per_neuron_vector(name, values):
    """Negative control: the twin with each layer's mean value instead of its vector differs."""
    right = layer_neurons(**{name: values})
    wrong = [stlsim.LIF(**{**n.settings(), name: float(np.mean(getattr(n, name)))}) for n in right]
    x = spikes_in(density=0.7)
    net_right, net_wrong = make_net(right), make_net(wrong)
    probe = np.random.default_rng(3).normal(size=(x.shape[0], x.shape[1], SIZES[-1]))
    _, g_right, rec_right = net_right.probe_grad(x, probe)
    _, g_wrong, rec_wrong = net_wrong.probe_grad(x, probe)
    differs = any(not np.array_equal(a, b) for a, b in zip(rec_right.spikes, rec_wrong.spikes))
    assert differs and max(np.abs(g_right[k] - g_wrong[k]).max() for k in g_right) > 1e-3


def test_numba_backend_runs_the_numpy_reference_for_per_neuron_values():
    pytest.importorskip("numba")
    neurons = layer_neurons(v_leak=(-0.2, 0.3), v_reset=(0.1, -0.2))
    x, y = spikes_in(), np.array([0, 1, 1])
    ref = make_net(neurons)
    fast = make_net(neurons, backend="numba")
    assert not stlsim.engines.backend.compiled_neuron(neurons[0])
    loss_ref, g_ref = ref.loss_and_grad(x, y)
    backend = stlsim.engines.get_backend("numba")
    before = backend.calls["fallback:numpy"]
    loss_fast, g_fast = fast.loss_and_grad(x, y)
    assert backend.calls["fallback:numpy"] > before
    assert loss_fast == pytest.approx(loss_ref, rel=1e-12)
    for key in g_ref:
        np.testing.assert_allclose(g_fast[key], g_ref[key], rtol=1e-10, atol=1e-14)


def test_settings_round_trip_per_neuron_arrays():
    neuron = stlsim.LIF(alpha_syn=[0.1, 0.5, 0.9], v_leak=[0.0, 0.1, 0.2], v_reset=[-0.1, 0, 0.1],
                        v_init=[0.0, 0.1, 0.2], learn_alpha_syn=True)
    assert neuron.per_neuron_values == ("v_leak", "v_reset", "v_init", "alpha_syn")
    settings = neuron.settings()
    assert settings["alpha_syn"] == [0.1, 0.5, 0.9]
    assert stlsim.LIF(**settings) == neuron
    net = make_net(layer_neurons(alpha_syn=(0.1, 0.9), learn_alpha_syn=True))
    assert net.params["0.alpha_syn"].shape == (SIZES[1],)
    np.testing.assert_allclose(net.params["0.alpha_syn"], np.linspace(0.1, 0.9, SIZES[1]))


@pytest.mark.parametrize("kwargs,match", [
    (dict(alpha_syn=[0.5, 1.2]), "alpha_syn"),
    (dict(alpha_syn=[0.5, -0.1]), "alpha_syn"),
    (dict(v_leak=[0.0, np.nan]), "v_leak"),
    (dict(v_reset=[]), "v_reset"),
    (dict(v_init=["a", 1]), "v_init"),
])
def test_bad_per_neuron_values_are_refused_by_name(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        stlsim.LIF(**kwargs)


@pytest.mark.parametrize("name", ["alpha_syn", "v_leak", "v_reset", "v_init"])
def test_a_wrong_length_names_the_value_and_the_layer(name):
    neuron = stlsim.LIF(**{name: np.linspace(0.1, 0.5, 3)})
    with pytest.raises(ValueError, match=rf"{name}.*5 values \(one per neuron of layer 0"):
        make_net(neuron)


def test_the_event_engine_refuses_per_neuron_values_by_name():
    neuron = stlsim.LIF(v_leak=np.linspace(0.1, 0.5, 4))
    net = stlsim.Network([stlsim.Dense(6, 4)], neuron=neuron, backend="numpy")
    with pytest.raises(ValueError, match=r"v_leak \(per neuron\)"):
        net.forward(spikes_in(), engine="event")


# ------------------------------------------------------------------------ vs the peers --

def _peer_spikes(shape, density=0.4, dtype=np.float32, seed=0):
    return (np.random.default_rng(seed).random(shape) < density).astype(dtype)


def _scale(model, factor):
    import torch
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.mul_(factor)
    return model


@pytest.mark.parametrize("learn", [False, True])
def test_snntorch_synaptic_with_per_neuron_alpha_agrees(learn):
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from stlsim import interop
    torch.manual_seed(4)
    model = _scale(torch.nn.Sequential(
        torch.nn.Linear(8, 10), snn.Synaptic(alpha=torch.linspace(0.1, 0.95, 10), beta=0.8,
                                             init_hidden=True, learn_alpha=learn),
        torch.nn.Linear(10, 4), snn.Synaptic(alpha=torch.tensor([0.2, 0.5, 0.7, 0.9]), beta=0.7,
                                             init_hidden=True, output=True,
                                             learn_alpha=learn)), 3.0)
    x = _peer_spikes((12, 3, 8))
    rep = interop.compare(model, x, seed=2)
    assert rep.ok and min(rep.firing_rates) > 0.05, str(rep)
    names = {row.name for row in rep.rows}
    assert ({"1.alpha", "3.alpha"} <= names) == learn
    net = interop.from_snntorch(model, (8,))
    np.testing.assert_allclose(net.neurons[0].alpha_syn, np.linspace(0.1, 0.95, 10), rtol=1e-6)
    if learn:
        assert net.params["0.alpha_syn"].shape == (10,)
    # negative control: the twin with the mean alpha differs from the peer
    assert_the_mean_differs(net, "alpha_syn", x)


def assert_the_mean_differs(net, name, x):
    """A twin of ``net`` whose neurons hold the mean of their per-neuron ``name`` (the nearest
    wrong conversion) spikes differently on ``x``."""
    wrong = stlsim.Network(net.layers, neuron=[stlsim.LIF(**{**n.settings(), name: float(np.mean(getattr(n, name)))})
                                               for n in net.neurons],
                           surrogate=net.surrogates, dtype=net.dtype, backend="numpy")
    wrong.params.update({k: v.copy() for k, v in net.params.items()
                         if k in wrong.params and wrong.params[k].shape == v.shape})
    assert not all(np.array_equal(a, b) for a, b in zip(net.forward(x).spikes, wrong.forward(x).spikes))


def _norse_model(trained, box=False):
    torch = pytest.importorskip("torch")
    norse = pytest.importorskip("norse.torch")
    from norse.torch.functional.lif import LIFParameters
    from norse.torch.functional.lif_box import LIFBoxParameters
    f64 = functools.partial(torch.tensor, dtype=torch.float64)

    def value(v):
        return torch.nn.Parameter(f64(v)) if trained else f64(v)
    torch.manual_seed(1)
    first = norse.LIFCell(LIFParameters(
        tau_syn_inv=value(np.linspace(100.0, 300.0, 12)), tau_mem_inv=value(np.linspace(60.0, 150.0, 12)),
        v_leak=f64(np.linspace(-0.1, 0.2, 12)), v_th=f64(1.0), v_reset=f64(np.linspace(-0.2, 0.1, 12))))
    if box:
        last = norse.LIFBoxCell(LIFBoxParameters(
            tau_mem_inv=value([80.0, 100.0, 120.0, 140.0]), v_leak=f64([0.0, 0.1, -0.1, 0.05]),
            v_th=f64(1.0), v_reset=f64([0.0, -0.1, 0.1, 0.2])))
    else:
        last = norse.LIFCell(LIFParameters(tau_syn_inv=value([150.0, 200.0, 250.0, 300.0]),
                                           v_leak=f64([0.0, 0.1, -0.1, 0.05]), v_th=f64(1.0),
                                           v_reset=f64([0.0, -0.1, 0.1, 0.2])))
    return _scale(norse.SequentialState(torch.nn.Linear(10, 12), first, torch.nn.Linear(12, 4),
                                        last).double(), 30.0), first


@pytest.mark.parametrize("trained", [False, True])
@pytest.mark.parametrize("box", [False, True], ids=["LIFCell", "LIFBoxCell"])
def test_norse_per_neuron_constants_agree_in_float64(trained, box):
    torch = pytest.importorskip("torch")
    from stlsim import interop
    model, first = _norse_model(trained, box)
    x = _peer_spikes((12, 4, 10), dtype=np.float64)
    rep = interop.compare(model, x)
    assert rep.ok and rep.max_rel_error < 1e-10 and min(rep.firing_rates) > 0.02, str(rep)
    if trained:
        names = {row.name for row in rep.rows}
        assert {"1.p.tau_mem_inv", "1.p.tau_syn_inv",
                "3.p.tau_mem_inv" if box else "3.p.tau_syn_inv"} <= names
        assert first.p.tau_syn_inv.grad is None          # restored
    net = interop.from_norse(model, (10,))
    n = net.neurons[0]
    assert n.per_neuron_values == ("v_leak", "v_reset", "v_init", "alpha_syn") and n.per_neuron_tau
    np.testing.assert_allclose(n.v_leak, np.linspace(-0.1, 0.2, 12))
    np.testing.assert_array_equal(n.v_init, n.v_leak)                    # Norse starts at v_leak
    # negative control: the mean v_reset instead of the vector
    assert_the_mean_differs(net, "v_reset", x)
    del torch


@pytest.mark.parametrize("learn", [False, True])
def test_nir_write_keeps_per_neuron_values_and_reads_back(tmp_path, learn):
    pytest.importorskip("nir")
    import stlsim.nir as snir
    dt = 1e-3
    neurons = [stlsim.LIF(tau=0.8, theta_init=0.5, spike_at_threshold=False,
                          alpha_syn=np.linspace(0.2, 0.9, n), learn_alpha_syn=learn,
                          v_leak=np.linspace(-0.1, 0.2, n), v_reset=np.linspace(0.1, -0.1, n),
                          v_init=np.linspace(-0.1, 0.2, n)) for n in SIZES[1:]]
    net = make_net(neurons)
    if learn:
        net.params["0.alpha_syn"][:] = np.linspace(0.3, 0.6, SIZES[1])
    path = tmp_path / "per_neuron.nir"
    assert snir.write(net, path, dt=dt) == []
    graph = snir._load(path)
    node = graph.nodes["lif0"] if "lif0" in graph.nodes else next(
        v for v in graph.nodes.values() if type(v).__name__ == "CubaLIF")
    alpha = np.linspace(0.3, 0.6, SIZES[1]) if learn else np.linspace(0.2, 0.9, SIZES[1])
    np.testing.assert_allclose(np.asarray(node.tau_syn).reshape(-1), dt / (1 - alpha), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(node.v_leak).reshape(-1), np.linspace(-0.1, 0.2, SIZES[1]))
    np.testing.assert_allclose(np.asarray(node.v_reset).reshape(-1), np.linspace(0.1, -0.1, SIZES[1]))
    back = snir.read(path, dt=dt, backend="numpy")
    x = spikes_in(T=10, density=0.6)
    for a, b in zip(net.forward(x).spikes, back.forward(x).spikes):
        np.testing.assert_array_equal(a, b)
    assert back.neurons[0].per_neuron_values == ("v_leak", "v_reset", "v_init", "alpha_syn")
    if learn:
        np.testing.assert_array_equal(back.params["0.alpha_syn"], net.params["0.alpha_syn"])


def test_per_neuron_values_of_a_conv_layer_are_shaped_like_its_neurons():
    """A flat vector of C*H*W values is reshaped to (C, H, W) and broadcast over the batch."""
    n = 2 * 4 * 4
    neurons = [stlsim.LIF(theta_init=0.3, v_leak=np.linspace(-0.1, 0.2, n),
                          alpha_syn=np.linspace(0.1, 0.9, n), learn_alpha_syn=True),
               stlsim.LIF(theta_init=0.3)]
    net = stlsim.Network([stlsim.Conv2d(1, 2, 3, padding=1), stlsim.Flatten(), stlsim.Dense(n, 3)],
                         neuron=neurons, backend="numpy", seed=0, dtype=np.float64)
    assert net.neurons[0].v_leak.shape == (2, 4, 4)
    x, y = (np.random.default_rng(0).random((6, 2, 1, 4, 4)) < 0.5).astype(float), np.array([0, 2])
    _, grads = net.loss_and_grad(x, y, smooth=True)
    assert grads["0.alpha_syn"].shape == (n,)
    errors = compare(grads, finite_difference_grads(net, x, y))
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors


def test_per_neuron_values_keep_a_float32_network_in_float32():
    """Per-neuron arrays are held in the network's dtype, as a float is used: a float64
    vector would lift the membrane of a float32 network to float64."""
    neurons = layer_neurons(v_leak=(-0.2, 0.3), v_reset=(0.1, -0.2), v_init=(0.0, 0.1),
                            alpha_syn=(0.2, 0.9), learn_alpha_syn=True)
    net = make_net(neurons, dtype=np.float32)
    assert all(getattr(net.neurons[0], k).dtype == np.float32 for k in net.neurons[0].per_neuron_values)
    assert net.neuron_in_use(0).alpha_syn.dtype == np.float32
    x = spikes_in(dtype=np.float32)
    record = net.forward(x)
    assert all(s.dtype == np.float32 for s in record.spikes)
    assert all(m.dtype == np.float32 for m in record.membrane)
    _, grads = net.loss_and_grad(x, np.array([0, 1, 1]))
    assert grads["0.alpha_syn"].dtype == np.float32
