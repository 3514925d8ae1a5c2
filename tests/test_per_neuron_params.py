"""Per-neuron alpha_syn, v_leak, v_reset, v_init ((L1s), (L2g), (L4h), (B9)); issue 24."""
import numpy as np
import pytest

import stlsim
from stlsim.grad.check import compare, finite_difference_grads

SIZES = (6, 5, 4)


def make_net(neuron, *, population=1, dtype=np.float64, backend="numpy", theta=(0.1, 0.8), seed=0):
    layers = [stlsim.Dense(a, b, init_gain=2.0) for a, b in zip(SIZES[:-1], SIZES[1:])]
    net = stlsim.Network(layers, neuron=neuron, surrogate="atan", population=population,
                         seed=seed, dtype=dtype, backend=backend)
    rng = np.random.default_rng(seed + 7)
    for key in net.params:
        if key.endswith(".theta"):
            net.params[key][:] = rng.uniform(*theta, net.params[key].shape)
    return net


def spikes_in(T=8, B=3, n=SIZES[0], density=0.5, seed=1, dtype=np.float64):
    return (np.random.default_rng(seed).random((T, B, n)) < density).astype(dtype)


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
