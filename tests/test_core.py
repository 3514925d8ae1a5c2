"""Core model (L1)-(L4), surrogates and BPTT (B1)-(B6) of docs/model.md."""
import subprocess
import sys

import numpy as np
import pytest

import stlsim
from stlsim.grad.check import compare, finite_difference_grads

RESETS = ["hard", "soft"]
SURROGATES = ["atan", "sigmoid", "rectangular", "superspike"]


def make_net(sizes, *, reset="hard", detach=False, surrogate="atan", population=1, theta=0.4,
             gain=1.5, bias=False, dtype=np.float64, seed=0):
    layers = [stlsim.Dense(a, b, init_gain=gain, bias=bias) for a, b in zip(sizes[:-1], sizes[1:])]
    neuron = stlsim.LIF(tau=0.5, theta_init=theta, reset=reset, detach_reset=detach)
    return stlsim.Network(layers, neuron=neuron, surrogate=surrogate, population=population,
                          seed=seed, dtype=dtype, backend="numpy")


# ----------------------------------------------------------------------- surrogates --
@pytest.mark.parametrize("name", SURROGATES)
def test_surrogate_derivative_is_derivative_of_primitive(name):
    sg = stlsim.surrogate.get(name)
    x = np.linspace(-3, 3, 2001)
    if name == "rectangular":  # kinks at |x| = width/2: stay clear of them
        x = x[np.abs(np.abs(x) - 0.5) > 1e-3]
    if name == "superspike":   # kink of |x| at 0
        x = x[np.abs(x) > 1e-3]
    h = 1e-6
    fd = (sg.primitive(x + h) - sg.primitive(x - h)) / (2 * h)
    np.testing.assert_allclose(sg.derivative(x), fd, rtol=1e-6, atol=1e-8)


def test_surrogate_formulas_match_spec():
    x = np.array([-0.7, 0.0, 0.2, 1.3])
    np.testing.assert_allclose(stlsim.surrogate.ATan(2.0).derivative(x), 1.0 / (1 + (np.pi * x) ** 2))
    g = 1 / (1 + np.exp(-4 * x))
    np.testing.assert_allclose(stlsim.surrogate.Sigmoid(4.0).derivative(x), 4 * g * (1 - g))
    np.testing.assert_allclose(stlsim.surrogate.Rectangular(1.0).derivative(x), [0, 1, 1, 0])
    np.testing.assert_allclose(stlsim.surrogate.SuperSpike(10.0).derivative(x), 1 / (1 + 10 * np.abs(x)) ** 2)
    assert stlsim.surrogate.ATan().value == 2.0  # paper default


def test_surrogates_keep_float32():
    x = np.linspace(-1, 1, 5, dtype=np.float32)
    for name in SURROGATES:
        sg = stlsim.surrogate.get(name)
        assert sg.derivative(x).dtype == np.float32
        assert sg.primitive(x).dtype == np.float32


# ------------------------------------------------------------------------- forward --
def test_spike_at_threshold_h0_is_one():
    net = make_net([1, 1], theta=1.0)
    net.params["0.weight"][...] = 1.0
    x = np.zeros((3, 1, 1))
    x[0, 0, 0] = 1.0                      # m_1 = 1.0 exactly = theta
    x[1, 0, 0] = np.nextafter(1.0, 0)     # m_2 = just below theta (v_1 = 0 after reset)
    rec = net.forward(x)
    np.testing.assert_array_equal(rec.spikes[0][:, 0, 0], [1, 0, 0])


def test_subthreshold_membrane_is_geometric_sum():
    tau, current, T = 0.7, 0.3, 25
    net = stlsim.Network([stlsim.Dense(1, 1)], neuron=stlsim.LIF(tau=tau, theta_init=1e9))
    net.params["0.weight"][...] = current
    rec = net.forward(np.ones((T, 1, 1)))
    t = np.arange(1, T + 1)
    np.testing.assert_allclose(rec.membrane[0][:, 0, 0], current * (1 - tau ** t) / (1 - tau), rtol=1e-13)
    assert rec.spikes[0].sum() == 0


@pytest.mark.parametrize("reset", RESETS)
def test_nonpositive_threshold_fires_without_input(reset):
    net = make_net([3, 2], reset=reset)
    net.params["0.theta"][...] = [0.0, -0.5]
    rec = net.forward(np.zeros((5, 2, 3)))
    assert np.all(rec.spikes[0] == 1)            # m = 0 >= theta every step
    if reset == "soft":                          # v grows by -theta each step: m_t = tau*v + 0
        m = rec.membrane[0][:, 0, 1]
        np.testing.assert_allclose(m[1], 0.5 * 0.5)


def test_soft_reset_subtracts_threshold():
    net = make_net([1, 1], reset="soft", theta=1.0)
    net.params["0.weight"][...] = 1.5
    rec = net.forward(np.ones((3, 1, 1)))
    # m1 = 1.5 -> spike, v1 = 0.5; m2 = 0.25 + 1.5 = 1.75 -> spike, v2 = 0.75; m3 = 1.875
    np.testing.assert_allclose(rec.membrane[0][:, 0, 0], [1.5, 1.75, 1.875])
    np.testing.assert_array_equal(rec.spikes[0][:, 0, 0], [1, 1, 1])


def test_population_rates_and_decision():
    net = make_net([4, 6], population=3)
    assert net.n_classes == 2
    rec = net.forward(np.random.default_rng(0).random((5, 2, 4)))
    s = rec.spikes[0]
    expected = s.reshape(5, 2, 2, 3).mean(axis=(0, 3))
    np.testing.assert_allclose(rec.rates, expected)
    np.testing.assert_array_equal(rec.prediction, np.argmax(expected, axis=1))


def test_analog_input_is_legal_and_float32_stays_float32():
    net = make_net([5, 4, 2], dtype=np.float32)
    x = np.random.default_rng(1).normal(size=(4, 3, 5))
    rec = net.forward(x)
    assert rec.spikes[0].dtype == np.float32 and rec.rates.dtype == np.float32
    loss, grads = net.loss_and_grad(x, np.array([0, 1, 1]))
    assert all(g.dtype == np.float32 for g in grads.values())


def test_params_are_assignable_in_place():
    net = make_net([64, 100, 20], population=2)
    W0 = np.random.default_rng(2).normal(size=(100, 64))
    net.params["0.weight"][...] = W0
    np.testing.assert_array_equal(net.params["0.weight"], W0)
    assert net.params["0.theta"].shape == (100,)
    assert net.params["1.weight"].shape == (20, 100)


# --------------------------------------------------- gradients vs finite differences --
CASES = [
    ([5, 4], 20),
    ([6, 5, 4], 12),
    ([5, 4, 4, 4], 8),
]


@pytest.mark.parametrize("sizes,T", CASES)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("surrogate", SURROGATES)
def test_smooth_bptt_matches_finite_differences(sizes, T, reset, detach, surrogate):
    net = make_net(sizes, reset=reset, detach=detach, surrogate=surrogate, population=2,
                   theta=0.3, bias=len(sizes) == 3)
    net.params["0.theta"][0] = -0.2            # thresholds <= 0 are legal
    rng = np.random.default_rng(len(sizes) * 7 + T)
    x = rng.random((T, 3, sizes[0]))
    y = rng.integers(0, net.n_classes, 3)
    for loss in ("mse_rate", "ce_rate"):
        _, grads = net.loss_and_grad(x, y, loss=loss, smooth=True)
        fd = finite_difference_grads(net, x, y, loss=loss)
        table = compare(grads, fd)
        worst = max(row["max_rel"] for row in table.values())
        assert worst <= 1e-6, table
        assert min(row["scale"] for row in table.values()) > 1e-6, "a dead net checks nothing"


def test_detach_reset_changes_smooth_gradient():
    rng = np.random.default_rng(3)
    x, y = rng.random((10, 3, 5)), np.array([0, 1, 0])
    g = {d: make_net([5, 4, 4], detach=d, population=2).loss_and_grad(x, y, smooth=True)[1]
         for d in (False, True)}
    assert np.max(np.abs(g[False]["0.weight"] - g[True]["0.weight"])) > 1e-4


def test_step_through_quantities_reassemble_the_gradient():
    net = make_net([5, 4, 2])
    rng = np.random.default_rng(4)
    x, y = (rng.random((6, 2, 5)) < 0.5).astype(float), np.array([0, 1])
    trace = net.step_through(x, y)
    _, grads = net.loss_and_grad(x, y)
    for key in grads:
        np.testing.assert_allclose(trace.grads[key], grads[key], rtol=1e-13, atol=1e-15)
    delta, s_in = trace.backward[1]["delta"], trace.forward[0]["s"]
    np.testing.assert_allclose(np.einsum("tbi,tbj->ij", delta, s_in), grads["1.weight"], atol=1e-14)  # (B4)
    fwd = trace.forward[0]
    np.testing.assert_allclose(fwd["m"][1:], 0.5 * fwd["v"][:-1] + fwd["I"][1:])                      # (L2)
    bwd = trace.backward[0]
    np.testing.assert_allclose(bwd["eps"][:-1], 0.5 * bwd["delta"][1:])                                # (B1)


# -------------------------------------------------------------------------- errors --
def test_bad_input_errors_name_argument_expected_and_got():
    net = make_net([4, 2])
    good_x, good_y = np.zeros((3, 2, 4)), np.array([0, 1])
    with pytest.raises(ValueError, match=r"`x` of `Network` must be a finite array of shape \(\?, \?, 4\)\. Got shape \(3, 2, 5\)"):
        net.forward(np.zeros((3, 2, 5)))
    bad = good_x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="`x`.*finite.*1 non-finite"):
        net.forward(bad)
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="`x`.*finite"):
        net.forward(bad)
    with pytest.raises(TypeError, match="`x`.*numeric"):
        net.forward(np.array([["a"]]))
    with pytest.raises(ValueError, match=r"`y`.*labels in \[0, 1\].*Got values in \[0, 2\]"):
        net.loss_and_grad(good_x, np.array([0, 2]))
    with pytest.raises(ValueError, match=r"`y`.*shape \(2,\)"):
        net.loss_and_grad(good_x, np.array([0]))
    with pytest.raises(TypeError, match="`y`.*integer"):
        net.loss_and_grad(good_x, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="`loss`.*'mse_rate', 'ce_rate'.*'l1'"):
        net.loss_and_grad(good_x, good_y, loss="l1")
    with pytest.raises(ValueError, match="`backend`.*'cobol'"):
        net.forward(good_x, backend="cobol")
    net.params["0.theta"] = np.zeros(3)
    with pytest.raises(TypeError, match=r"params\['0.theta'\].*shape \(2,\).*Got shape \(3,\)"):
        net.forward(good_x)
    net.params["0.theta"] = np.array([np.nan, 1.0])
    with pytest.raises(ValueError, match=r"params\['0.theta'\].*finite"):
        net.forward(good_x)


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match=r"`tau` of `LIF` must be a finite real number in \[0.0, 1.0\]. Got 1.5"):
        stlsim.LIF(tau=1.5)
    with pytest.raises(ValueError, match="`tau`"):
        stlsim.LIF(tau=float("nan"))
    with pytest.raises(ValueError, match="`reset` of `LIF` must be one of 'hard', 'soft', 'subtract_after_leak', 'none', 'zero_after_leak', 'subtract_no_delay', 'zero_no_delay'. Got 'zero'"):
        stlsim.LIF(reset="zero")
    with pytest.raises(ValueError, match="`surrogate` of `Network`.*'atan'.*Got 'tanh'"):
        stlsim.Network([stlsim.Dense(2, 2)], surrogate="tanh")
    with pytest.raises(ValueError, match="`population`.*divisor.*10 neurons"):
        stlsim.Network([stlsim.Dense(2, 10)], population=3)
    with pytest.raises(ValueError, match=r"`layers\[1\]`.*inputs of shape \(5,\)"):
        stlsim.Network([stlsim.Dense(2, 5), stlsim.Dense(4, 2)])
    with pytest.raises(TypeError, match="`dtype`.*float32 or numpy.float64"):
        stlsim.Network([stlsim.Dense(2, 2)], dtype=np.int32)
    with pytest.raises(ValueError, match="`alpha` of `ATan`"):
        stlsim.surrogate.ATan(alpha=-1)
    with pytest.raises(ValueError, match="`out_features` of `Dense`"):
        stlsim.Dense(3, 0)


def test_import_is_lean_and_compiles_nothing():
    code = ("import sys, stlsim; bad = [m for m in ('matplotlib', 'h5py', 'torch', 'jax', 'numba', "
            "'numba.cuda', 'scipy', 'stlsim.data') if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_seed_takes_an_int_a_seed_sequence_or_a_generator():
    layers = lambda: [stlsim.Dense(5, 6), stlsim.Dense(6, 4)]  # noqa: E731
    by_int = stlsim.Network(layers(), seed=3)
    again = stlsim.Network(layers(), seed=np.int64(3))
    assert all(np.array_equal(by_int.params[k], again.params[k]) for k in by_int.params)
    assert by_int.rng.random() == np.random.default_rng([3, 1]).random()     # the documented streams
    ss = np.random.SeedSequence(1234)
    a, b = stlsim.Network(layers(), seed=ss), stlsim.Network(layers(), seed=np.random.SeedSequence(1234))
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params) and a.seed is None
    assert a.rng.random() == b.rng.random()
    assert not np.array_equal(a.params["0.weight"], by_int.params["0.weight"])
    gen = np.random.default_rng(7)
    c = stlsim.Network(layers(), seed=gen)
    d = stlsim.Network(layers(), seed=np.random.default_rng(7))
    assert all(np.array_equal(c.params[k], d.params[k]) for k in c.params)
    with pytest.raises(TypeError, match="seed.*SeedSequence"):
        stlsim.Network(layers(), seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        stlsim.Network(layers(), seed=-1)


def test_reference_trace_is_the_probe_gradient_with_every_steps_adjoints():
    net = stlsim.Network([stlsim.Dense(5, 6), stlsim.Dense(6, 4)], neuron=stlsim.LIF(theta_init=0.3), seed=0)
    x = (np.random.default_rng(0).random((4, 3, 5)) < 0.5).astype(float)
    probe = np.random.default_rng(1).standard_normal((4, 3, 4))
    run = net.reference_trace(x, lambda output: probe)
    _, grads, record = net.probe_grad(x, probe, backend="numpy", engine="clock")
    assert set(run.grads) == set(grads) and all(np.allclose(run.grads[k], grads[k], rtol=0, atol=1e-14)
                                                for k in grads)
    assert all(np.array_equal(a, b) for a, b in zip(run.spikes, record.spikes))
    assert len(run.traces) == 2 and run.traces[-1]["g"].shape == (4, 3, 4)
