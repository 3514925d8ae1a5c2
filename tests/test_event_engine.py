"""The event-driven engine agrees with the clock engine.

Error budgets (float64): identical spike trains; membranes and currents within 1e-12
absolute (lazy leak tau^k vs k multiplications, and a different order of the synaptic
sum); gradients within 1e-10 relative to each tensor's scale. Ties at threshold are
measure-zero for random float weights, so spikes must match exactly.
"""
import subprocess
import sys

import numpy as np
import pytest

import stlsim
from stlsim.engines import event
from stlsim.grad.check import max_relative_error

SURROGATES = ["atan", "sigmoid", "rectangular", "superspike"]


def make_net(sizes, *, reset="hard", detach=False, surrogate="atan", theta=0.4, tau=0.5,
             gain=1.5, bias=False, seed=0, negative_thresholds=True):
    layers = [stlsim.Dense(a, b, init_gain=gain, bias=bias) for a, b in zip(sizes[:-1], sizes[1:])]
    neuron = stlsim.LIF(tau=tau, theta_init=theta, reset=reset, detach_reset=detach)
    net = stlsim.Network(layers, neuron=neuron, surrogate=surrogate, seed=seed, backend="numpy")
    if negative_thresholds:           # a few neurons per layer that fire without input
        rng = np.random.default_rng(seed + 100)
        for key in net.params:
            if key.endswith(".theta"):
                theta_values = net.params[key]
                theta_values[:3] = [-0.3, 0.0, -rng.random()]
    return net


def assert_same_forward(net, x):
    clock_rec = net.forward(x, engine="clock")
    event_rec = net.forward(x, engine="event")
    assert event_rec.engine == "event"
    for a, b in zip(clock_rec.spikes, event_rec.spikes):
        assert a.shape == b.shape and np.array_equal(a, b)
    for a, b in zip(clock_rec.membrane, event_rec.membrane):
        assert np.max(np.abs(a - b), initial=0.0) <= 1e-12
    for a, b in zip(clock_rec.currents, event_rec.currents):
        assert np.max(np.abs(a - b), initial=0.0) <= 1e-12
    np.testing.assert_array_equal(clock_rec.rates, event_rec.rates)
    # The sparse output path: the same spikes as events, and nothing dense rebuilt.
    rebuilt = event.CALLS["materialize"]
    sparse_rec = net.forward(x, engine="event", record="spikes")
    assert event.CALLS["materialize"] == rebuilt
    assert sparse_rec.membrane is None and sparse_rec.currents is None
    for a, b in zip(clock_rec.spikes, sparse_rec.spikes):
        assert isinstance(b, stlsim.SpikeEvents) and b.shape == a.shape
        assert np.array_equal(b.to_dense(), a)
    np.testing.assert_array_equal(clock_rec.rates, sparse_rec.rates)
    np.testing.assert_allclose(sparse_rec.firing_rates, clock_rec.firing_rates, rtol=1e-15)
    return clock_rec


def assert_same_gradients(net, x, y):
    loss_clock, grads_clock = net.loss_and_grad(x, y, engine="clock")
    calls = event.CALLS["backward"]
    loss_event, grads_event = net.loss_and_grad(x, y, engine="event")
    assert event.CALLS["backward"] == calls + 1           # the event backward ran
    assert loss_clock == loss_event
    for key in grads_clock:
        assert grads_event[key].shape == grads_clock[key].shape
        assert max_relative_error(grads_clock[key], grads_event[key]) <= 1e-10, key
    return grads_clock


def sparse_input(rng, T, B, n, density):
    return (rng.random((T, B, n)) < density).astype(np.float64)


# ------------------------------------------------------------------ random networks --
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("batch", [1, 4])
def test_random_networks_match_clock(surrogate, reset, batch):
    rng = np.random.default_rng(7)
    net = make_net((30, 40, 12), reset=reset, surrogate=surrogate)
    x = sparse_input(rng, 60, batch, 30, 0.08)
    rec = assert_same_forward(net, x)
    assert 0.01 < rec.firing_rates[0] < 0.6                 # the test has something to test
    assert_same_gradients(net, x, rng.integers(0, 12, batch))


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_detach_reset_bias_shared_threshold_and_analog_input(reset):
    rng = np.random.default_rng(3)
    layers = [stlsim.Dense(16, 24, bias=True, init_gain=1.5),
              stlsim.Dense(24, 6, threshold_sharing="layer", init_gain=1.5)]
    net = stlsim.Network(layers, neuron=stlsim.LIF(theta_init=0.3, reset=reset, detach_reset=True),
                         surrogate="rectangular", seed=1, backend="numpy")
    x = rng.random((40, 3, 16)) * (rng.random((40, 3, 16)) < 0.1)     # analog event weights
    assert_same_forward(net, x)
    assert_same_gradients(net, x, [0, 5, 2])


def test_three_layers_and_the_numba_clock_backend():
    pytest.importorskip("numba")
    rng = np.random.default_rng(11)
    net = make_net((20, 25, 25, 5), surrogate="rectangular", theta=0.3)
    x = sparse_input(rng, 50, 2, 20, 0.1)
    assert_same_forward(net, x)
    assert_same_gradients(net, x, [1, 4])
    loss_numba, grads_numba = net.loss_and_grad(x, [1, 4], backend="numba")
    loss_event, grads_event = net.loss_and_grad(x, [1, 4], engine="event", backend="numba")
    assert loss_numba == loss_event
    for key in grads_numba:
        assert max_relative_error(grads_numba[key], grads_event[key]) <= 1e-10


# ------------------------------------------------------ neurons that cross without input --
@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("surrogate", ["atan", "rectangular"])
def test_empty_input_and_thresholds_at_or_below_zero(reset, surrogate):
    net = make_net((10, 8, 4), reset=reset, surrogate=surrogate, theta=0.5)
    net.params["0.theta"][:] = [-1.0, -0.5, -0.25, 0.0, -1e-3, 0.5, 1.0, -2.0]
    x = np.zeros((30, 2, 10))
    rec = assert_same_forward(net, x)
    assert rec.spikes[0][:, :, :5].sum() > 0                    # theta <= 0 fires from nothing
    assert rec.spikes[0][:, :, 5:7].sum() == 0
    assert_same_gradients(net, x, [0, 3])


def test_negative_membrane_decaying_up_to_a_negative_threshold():
    # One input pushes v far below theta < 0; with no further input v decays towards 0
    # and crosses theta several silent steps later (k > 1): the case that forces every
    # theta <= 0 neuron to be updated at every step.
    net = make_net((1, 1), theta=-1.0, tau=0.5, negative_thresholds=False)
    net.params["0.weight"][:] = -20.0
    x = np.zeros((12, 1, 1))
    x[1, 0, 0] = 1.0
    rec = assert_same_forward(net, x)
    # m: 0 (fires), -20, -10, -5, -2.5, -1.25, then -0.625 >= -1 fires and resets to 0
    expected = [1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert rec.spikes[0][:, 0, 0].tolist() == expected


@pytest.mark.parametrize("tau", [0.9, 1.0])
def test_soft_reset_keeps_firing_after_the_input_stops(tau):
    # Soft reset subtracts theta: after a big input v_t >= theta / tau, so the neuron
    # crosses again with no input at all, possibly many times.
    net = make_net((3, 5, 2), reset="soft", surrogate="rectangular", tau=tau, theta=0.5,
                   negative_thresholds=False)
    net.params["0.weight"][:] = np.linspace(0.5, 4.0, 15).reshape(5, 3)
    x = np.zeros((40, 2, 3))
    x[2, :, :] = 1.0
    x[20, 1, 0] = 1.0
    rec = assert_same_forward(net, x)
    assert rec.spikes[0][3:20].sum() > 10                          # silent-step spikes
    assert_same_gradients(net, x, [0, 1])


def test_silent_membranes_inside_the_rectangular_support_reach_the_gradient():
    # tau = 0.9: a sub-threshold membrane decays *through* the window |m - theta| < 1/2
    # during silent steps; those steps carry gradient and must be kept.
    rng = np.random.default_rng(5)
    net = make_net((20, 15, 4), surrogate="rectangular", tau=0.9, theta=1.0, gain=3.0)
    x = sparse_input(rng, 80, 2, 20, 0.03)
    assert_same_forward(net, x)
    assert_same_gradients(net, x, [2, 3])


@pytest.mark.parametrize("tau", [0.0, 1.0])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_extreme_decay_factors(tau, reset):
    rng = np.random.default_rng(12)
    net = make_net((16, 20, 4), reset=reset, surrogate="rectangular", tau=tau)
    x = sparse_input(rng, 50, 2, 16, 0.05)
    assert_same_forward(net, x)
    assert_same_gradients(net, x, [3, 0])


# --------------------------------------------------------------------------- long runs --
@pytest.mark.parametrize("reset, surrogate", [("hard", "rectangular"), ("soft", "atan")])
def test_thousand_steps(reset, surrogate):
    rng = np.random.default_rng(2)
    net = make_net((24, 32, 6), reset=reset, surrogate=surrogate, tau=0.8)
    x = sparse_input(rng, 1000, 2, 24, 0.03)
    assert_same_forward(net, x)
    assert_same_gradients(net, x, [0, 5])


def test_rectangular_tape_grows_with_activity_not_with_t_times_n():
    rng = np.random.default_rng(4)
    net = make_net((50, 64, 10), surrogate="rectangular", theta=1.0, negative_thresholds=False)
    x = sparse_input(rng, 500, 1, 50, 0.01)
    _, _, tape, _, _, _ = net._forward(x, smooth=False, backend="numpy", engine="event",
                                       training=False)
    hidden = tape.layers[0]
    kept = event._rerun_keeping(hidden, 500, 1)
    dense = 500 * 64
    assert not kept.dense and kept.m.size < 0.2 * dense
    assert hidden.nbytes + kept.nbytes < 0.25 * dense * 8


# ------------------------------------------------------- other layers, fallbacks, helpers --
def test_non_dense_layers_run_on_the_clock_path_inside_the_engine():
    rng = np.random.default_rng(8)
    layers = [stlsim.Dense(12, 20, init_gain=2.0), stlsim.Dropout(0.5),
              stlsim.Dense(20, 4, init_gain=2.0)]
    net = stlsim.Network(layers, neuron=stlsim.LIF(theta_init=0.3), surrogate="rectangular",
                         backend="numpy", seed=3)
    x = sparse_input(rng, 30, 2, 12, 0.15)
    results = []
    for engine in ("clock", "event"):
        net.rng = np.random.default_rng(0)           # the same dropout masks for both
        results.append(net.loss_and_grad(x, [1, 2], engine=engine, training=True,
                                         return_record=True))
    (loss_a, grads_a, rec_a), (loss_b, grads_b, rec_b) = results
    assert loss_a == loss_b
    for a, b in zip(rec_a.spikes, rec_b.spikes):
        np.testing.assert_array_equal(a, b)
    for key in grads_a:
        assert max_relative_error(grads_a[key], grads_b[key]) <= 1e-10


def test_conv_front_end_then_event_dense():
    rng = np.random.default_rng(9)
    layers = [stlsim.Conv2d(1, 3, 3), stlsim.Flatten(), stlsim.Dense(3 * 6 * 6, 5, init_gain=2.0)]
    net = stlsim.Network(layers, neuron=stlsim.LIF(theta_init=0.3), surrogate="atan",
                         backend="numpy", input_shape=(1, 8, 8))
    x = sparse_input(rng, 10, 2, 64, 0.3).reshape(10, 2, 1, 8, 8)
    assert_same_forward(net, x)
    assert_same_gradients(net, x, [0, 4])


def test_smooth_mode_falls_back_to_the_clock_engine():
    rng = np.random.default_rng(1)
    net = make_net((8, 6, 3))
    x = sparse_input(rng, 10, 2, 8, 0.2)
    before = event.CALLS["fallback"]
    a = net.forward(x, smooth=True)
    b = net.forward(x, smooth=True, engine="event")
    assert event.CALLS["fallback"] == before + 1
    np.testing.assert_array_equal(a.spikes[0], b.spikes[0])
    _, grads_a = net.loss_and_grad(x, [0, 1], smooth=True)
    _, grads_b = net.loss_and_grad(x, [0, 1], smooth=True, engine="event")
    for key in grads_a:
        np.testing.assert_array_equal(grads_a[key], grads_b[key])


def test_network_default_engine_and_transposed_paths_agree_bitwise(monkeypatch):
    rng = np.random.default_rng(6)
    layers = [stlsim.Dense(30, 20, init_gain=1.5), stlsim.Dense(20, 5, init_gain=1.5)]
    net = stlsim.Network(layers, neuron=stlsim.LIF(theta_init=0.4), surrogate="rectangular",
                         engine="event", backend="numpy")
    x = sparse_input(rng, 40, 3, 30, 0.1)
    results = []
    for ratio in (0.0, np.inf):                       # always / never copy W.T
        monkeypatch.setattr(event, "TRANSPOSE_RATIO", ratio)
        monkeypatch.setattr(event, "GRAD_TRANSPOSE_RATIO", ratio)
        rec = net.forward(x)
        assert rec.engine == "event"
        results.append((rec, net.loss_and_grad(x, [0, 1, 2])[1]))
    with event.static_weights():
        results.append((net.forward(x), net.loss_and_grad(x, [0, 1, 2])[1]))
        results.append((net.forward(x), net.loss_and_grad(x, [0, 1, 2])[1]))
    (rec0, grads0) = results[0]
    for rec, grads in results[1:]:
        for a, b in zip(rec0.membrane, rec.membrane):
            np.testing.assert_array_equal(a, b)
        for key in grads0:
            np.testing.assert_array_equal(grads0[key], grads[key])


def test_worked_example_of_the_docs():
    # docs/event_engine.md: one neuron, tau = 0.5, theta = 1, w = 0.75, input events at
    # steps 2 (value 1) and 7 (value 21/16), 1-based. All numbers are exact in binary.
    net = make_net((1, 1), theta=1.0, tau=0.5, surrogate="rectangular",
                   negative_thresholds=False)
    net.params["0.weight"][:] = 0.75
    x = np.zeros((9, 1, 1))
    x[1, 0, 0] = 1.0
    x[6, 0, 0] = 21 / 16
    rec = net.forward(x, engine="event")
    m = rec.membrane[0][:, 0, 0]
    assert m[1] == 0.75                                        # step 2: 0.75 < 1, no spike
    assert m[6] == 0.5 ** 5 * 0.75 + 0.75 * 21 / 16 == 1.0078125   # step 7: tau^5 v_2 + I_7
    assert rec.spikes[0][:, 0, 0].tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0]
    assert m.tolist() == [0, 0.75, 0.375, 0.1875, 0.09375, 0.046875, 1.0078125, 0, 0]
    _, _, tape, _, _, _ = net._forward(x, smooth=False, backend="numpy", engine="event",
                                       training=False)
    kept = event._rerun_keeping(tape.layers[0], 9, 1)   # only steps 2 and 7 were touched
    assert kept.m.tolist() == [0.75, 1.0078125]
    assert np.flatnonzero(np.diff(kept.ptr)).tolist() == [1, 6]
    assert_same_forward(net, x)


def test_events_to_dense_and_back():
    events = np.array([[0, 3], [2, 1], [2, 3], [4, 0]])
    x = event.events_to_dense(events, 5, 4)
    assert x.shape == (5, 1, 4) and x.sum() == 4 and x[2, 0, 3] == 1
    batched = np.array([[1, 1, 5], [0, 0, 2], [1, 1, 5]])
    x = event.events_to_dense(batched, 3, (2, 3), values=[0.5, 2.0, 0.25])
    assert x.shape == (3, 2, 2, 3) and x[1, 1, 1, 2] == 0.75 and x[0, 0, 0, 2] == 2.0
    back, values = event.dense_to_events(x)
    assert back.tolist() == [[0, 0, 2], [1, 1, 5]] and values.tolist() == [2.0, 0.75]
    assert event.events_to_dense(np.zeros((0, 2), dtype=int), 3, 4).sum() == 0
    with pytest.raises(ValueError, match="`events` of `events_to_dense` must be"):
        event.events_to_dense(np.array([[5, 0]]), 3, 4)


def test_float32_runs_in_float32():
    rng = np.random.default_rng(0)
    layers = [stlsim.Dense(20, 16, init_gain=1.5), stlsim.Dense(16, 4, init_gain=1.5)]
    net = stlsim.Network(layers, neuron=stlsim.LIF(theta_init=0.4), dtype=np.float32,
                         backend="numpy")
    x = sparse_input(rng, 30, 2, 20, 0.1).astype(np.float32)
    a, b = net.forward(x), net.forward(x, engine="event")
    assert b.membrane[0].dtype == np.float32
    assert np.mean(a.spikes[0] == b.spikes[0]) > 0.99
    _, grads = net.loss_and_grad(x, [0, 1], engine="event")
    assert all(g.dtype == np.float32 for g in grads.values())


def test_import_does_not_load_numba():
    code = ("import sys, stlsim, stlsim.engines.event; "
            "assert 'numba' not in sys.modules, 'numba imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------- synaptic paths, inputs as events --
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("steps", [1, 7])
def test_gathered_and_pushed_currents_agree_bitwise(monkeypatch, dtype, steps):
    # _gather_rows (W, eight rows at a time) and _push_rows (rows of W.T) add the same
    # products in the same order: bit-identical, in float32 too. 37 neurons: the tail
    # of N % 8 = 5; analog event weights and a bias; chunks of 1 and 7 steps.
    rng = np.random.default_rng(21)
    layers = [stlsim.Dense(19, 37, bias=True, init_gain=1.5), stlsim.Dense(37, 5, init_gain=1.5)]
    net = stlsim.Network(layers, neuron=stlsim.LIF(theta_init=0.3, reset="soft"),
                         surrogate="rectangular", dtype=dtype, backend="numpy", seed=4)
    x = (rng.random((40, 3, 19)) * (rng.random((40, 3, 19)) < 0.15)).astype(dtype)
    monkeypatch.setattr(event, "CHUNK_VALUES", steps * 3 * 37)  # steps per chunk
    monkeypatch.setattr(event, "KEEP_TRANSPOSED", False)       # no W.T kept by the Network
    # _direct_rows (W read where the events point) too: always push, always gather,
    # always direct.
    results = []
    for ratio, direct, path in ((0.0, 0.0, "push"), (np.inf, -1.0, "gather"),
                                (np.inf, np.inf, "gather")):
        monkeypatch.setattr(event, "TRANSPOSE_RATIO", ratio)
        monkeypatch.setattr(event, "GRAD_TRANSPOSE_RATIO", ratio)
        monkeypatch.setattr(event, "DIRECT_RATIO", direct)
        before = event.CALLS[path]
        rec = net.forward(x, engine="event")
        rec.membrane                                               # built now, on this path
        results.append((rec, net.loss_and_grad(x, [0, 1, 2], engine="event")[1]))
        assert event.CALLS[path] > before                          # that path ran
    a, grads_a = results[0]
    assert 0.01 < a.firing_rates[0] < 0.6
    for b, grads_b in results[1:]:
        for u, v in zip(a.membrane + a.currents, b.membrane + b.currents):
            np.testing.assert_array_equal(u, v)
        for key in grads_a:
            np.testing.assert_array_equal(grads_a[key], grads_b[key])
    clock = net.forward(x, engine="clock")
    budget = 1e-12 if dtype == np.float64 else 1e-5
    for u, v in zip(clock.membrane, a.membrane):
        assert np.max(np.abs(u.astype(np.float64) - v)) <= budget


def test_scan_of_dense_input_matches_numpy():
    from stlsim.engines.event_convert import rows_to_dense, scan_dense
    # kernels.event_cpu.dense_to_events: blocks of eight, -0.0 is no event, the tail of a
    # row whose length is not a multiple of 8, weights other than 1.
    rng = np.random.default_rng(5)
    for n, density in ((1, 0.5), (7, 0.3), (8, 0.0), (13, 0.2), (784, 0.005), (50, 1.0)):
        x = (rng.random((9, 2, n)) < density).astype(np.float64)
        x[0, 0, :] = -0.0
        if density:
            x[x != 0] *= rng.choice([1.0, -2.5], size=int(np.count_nonzero(x)))
        ev = scan_dense(x, event._kernels())
        rows, idx = np.nonzero(x.reshape(18, n))
        assert np.array_equal(ev.ptr, np.r_[0, np.cumsum(np.bincount(rows, minlength=18))])
        assert np.array_equal(ev.index, idx)
        assert (ev.values is None) == bool(np.all(x[x != 0] == 1))
        np.testing.assert_array_equal(rows_to_dense(ev, event._kernels(), np.float64), x)
        np.testing.assert_array_equal(ev.to_dense(), x)             # the SpikeEvents view
    x32 = np.zeros((2, 1, 10), dtype=np.float32)
    x32[1, 0, [2, 9]] = [1.0, 0.5]
    ev = scan_dense(x32, event._kernels())
    assert ev.index.tolist() == [2, 9] and ev.values.tolist() == [1.0, 0.5]


def test_visit_fences_are_the_documented_floors():
    from stlsim.kernels import event_cpu
    theta = np.array([0.5, 0.0, -0.3, 2.0, 0.1])
    eps = np.finfo(np.float64).eps
    crossing = event_cpu.visit_fence(theta, event_cpu.CROSSING, 0.5, eps)
    np.testing.assert_array_equal(crossing, [0.5, -np.inf, -np.inf, 2.0, 0.1])
    support = event_cpu.visit_fence(theta, event_cpu.SUPPORT, 0.25, eps)
    assert 0.25 - 1e-14 < support[0] < 0.25 and 1.75 - 1e-14 < support[3] < 1.75
    assert support[4] == -np.inf                    # support (-0.15, 0.35) holds 0
    assert np.all(event_cpu.visit_fence(theta, event_cpu.EVERYTHING, 0.5, eps) == -np.inf)


def test_spike_events_input_skips_the_dense_scan(monkeypatch):
    rng = np.random.default_rng(8)
    net = make_net((30, 40, 12), reset="soft", surrogate="rectangular")
    x = sparse_input(rng, 50, 3, 30, 0.08)
    ev = stlsim.SpikeEvents.from_dense(x)
    assert ev.shape == x.shape and ev.values is None and ev.n_events == int(x.sum())
    dense_rec = net.forward(x, engine="event")
    loss_dense, grads_dense = net.loss_and_grad(x, [0, 1, 2], engine="event")

    def no_scan(*args):
        raise AssertionError("the dense input was scanned")
    monkeypatch.setattr(event._kernels(), "dense_to_events", no_scan)
    calls = event.CALLS["event_input"]
    rec = net.forward(ev, engine="event")
    loss, grads = net.loss_and_grad(ev, [0, 1, 2], engine="event")
    assert event.CALLS["event_input"] == calls + 2
    for a, b in zip(dense_rec.membrane + dense_rec.spikes, rec.membrane + rec.spikes):
        np.testing.assert_array_equal(a, b)
    assert loss == loss_dense
    for key in grads:
        np.testing.assert_array_equal(grads[key], grads_dense[key])
    # the clock engine simulates the same input from the events' dense array
    monkeypatch.undo()
    assert_same_forward(net, x)
    clock_rec = net.forward(ev, engine="clock")
    np.testing.assert_array_equal(clock_rec.spikes[0], rec.spikes[0])
    assert net.loss_and_grad(ev, [0, 1, 2], engine="clock")[0] == net.loss_and_grad(x, [0, 1, 2])[0]


def test_spike_events_from_event_lists():
    events = np.array([[4, 0], [0, 3], [2, 1], [2, 3], [2, 1]])     # any order; (2, 1) twice
    ev = stlsim.SpikeEvents.from_events(events, T=5, input_shape=4)
    x = ev.to_dense()
    assert x.shape == (5, 1, 4) and x[2, 0, 1] == 2.0 and x.sum() == 5
    assert ev.values is not None                      # the repeat made a weight of 2
    np.testing.assert_array_equal(x, event.events_to_dense(events, 5, 4))
    batched = np.array([[1, 1, 5], [0, 0, 2], [1, 1, 5]])
    ev = stlsim.SpikeEvents.from_events(batched, 3, (2, 3), values=[0.5, 2.0, 0.25])
    assert ev.shape == (3, 2, 2, 3) and ev.to_dense()[1, 1, 1, 2] == 0.75
    back, values = ev.to_events()
    assert back.tolist() == [[0, 0, 2], [1, 1, 5]] and values.tolist() == [2.0, 0.75]
    cancel = stlsim.SpikeEvents.from_events([[0, 1], [0, 1]], 2, 3, values=[1.0, -1.0])
    assert cancel.n_events == 0 and cancel.to_dense().sum() == 0
    empty = stlsim.SpikeEvents.from_events(np.zeros((0, 2), dtype=int), 3, 4)
    assert empty.n_events == 0 and "0 spikes" in repr(empty)
    net = make_net((4, 6, 2), negative_thresholds=False)
    np.testing.assert_array_equal(net.forward(empty, engine="event").spikes[0], 0)


def test_spike_events_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="`events` of `SpikeEvents.from_events` must be"):
        stlsim.SpikeEvents.from_events([[5, 0]], 3, 4)
    with pytest.raises(TypeError, match="integer array of shape"):
        stlsim.SpikeEvents.from_events([[0.5, 1.0]], 3, 4)
    with pytest.raises(ValueError, match="increasing neuron indices"):
        stlsim.SpikeEvents(2, 1, 4, [0, 2, 2], [3, 1])
    with pytest.raises(ValueError, match="neuron indices in"):
        stlsim.SpikeEvents(2, 1, 4, [0, 1, 1], [4])
    with pytest.raises(ValueError, match="finite"):
        stlsim.SpikeEvents.from_events([[0, 1]], 2, 3, values=[np.nan])
    net = make_net((4, 6, 2), negative_thresholds=False)
    with pytest.raises(ValueError, match="SpikeEvents with input_shape"):
        net.forward(stlsim.SpikeEvents.from_events([[0, 1]], 2, 5), engine="event")


def test_scaling_benchmark_headline_runs():
    # benchmarks/event_scaling.py, its headline point in one short round: the engines
    # computed the same output spikes, and the reported ratios are consistent (their
    # size is reported, never asserted: timings are noisy).
    import json
    import pathlib
    script = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "event_scaling.py"
    out = subprocess.run([sys.executable, str(script), "--headline-only", "--rounds", "1",
                          "--calls", "2"], capture_output=True, text=True, check=True).stdout
    summary = json.loads(out[out.index("{"):])
    assert summary["outputs_identical"] is True
    for key in ("speedup_event", "speedup_event_spike_events", "speedup_event_static_weights"):
        ratios = summary[key]
        assert np.isfinite(ratios["median"]) and ratios["min"] == ratios["median"] == ratios["max"]


def test_static_weights_reuses_the_copy_and_catches_in_place_changes():
    rng = np.random.default_rng(9)
    net = make_net((30, 40, 12), negative_thresholds=False)
    x = sparse_input(rng, 40, 2, 30, 0.02)                # few events: gathered outside
    plain = net.forward(x, engine="event")
    before = dict(event.CALLS)
    with event.static_weights():
        with event.static_weights():                     # nesting is allowed
            inside = net.forward(x, engine="event")
        again = net.forward(x, engine="event")
    assert event.CALLS["push"] > before["push"] and event.CALLS["gather"] == before["gather"]
    for a, b, c in zip(plain.membrane, inside.membrane, again.membrane):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    with pytest.raises(RuntimeError, match="1 weight array\\(s\\) modified in place"):
        with event.static_weights():
            net.forward(x, engine="event")
            net.params["0.weight"] *= 0.5                # in place: the copy is stale
    assert event._static_cache is None
    with event.static_weights():                         # replacing an array is fine
        net.forward(x, engine="event")
        net.params["0.weight"] = net.params["0.weight"] * 2.0
        net.forward(x, engine="event")


def test_parity_validation_script(tmp_path):
    # validation/event_parity.py on a few of its random networks (the full run: 60).
    import importlib.util
    import json
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "validation" / "event_parity.py"
    spec = importlib.util.spec_from_file_location("event_parity", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    saved = event.TRANSPOSE_RATIO, event.GRAD_TRANSPOSE_RATIO
    out = tmp_path / "parity.json"
    assert module.main(["--networks", "4", "--json", str(out)]) == 0
    assert (event.TRANSPOSE_RATIO, event.GRAD_TRANSPOSE_RATIO) == saved     # restored
    report = json.loads(out.read_text())
    assert report["summary"]["networks"] == 4 and report["summary"]["all_spikes_identical"]
    assert report["provenance"]["validation"] == "event_parity"


# ----------------------------------------------------------------- sparse output --
def test_record_spikes_keeps_every_layer_as_events():
    rng = np.random.default_rng(21)
    net = make_net((40, 60, 30, 8), surrogate="rectangular", theta=0.3)
    events = stlsim.SpikeEvents.from_dense(sparse_input(rng, 50, 3, 40, 0.05))
    counts = dict(event.CALLS)
    rec = net.forward(events, engine="event", record="spikes")
    assert event.CALLS["materialize"] == counts["materialize"]          # no dense I, m, s
    assert event.CALLS["event_input"] == counts["event_input"] + 1
    assert [s.input_shape for s in rec.spikes] == [(60,), (30,), (8,)]
    assert rec.firing_rates[0] > 0.01 and rec.firing_rates[1] > 0.01
    # Between layers the spikes stay events: each layer's input IS the output below it.
    _, _, tape, _, _, _ = net._forward(events, smooth=False, backend="numpy", engine="event",
                                       training=False)
    for below, above in zip(tape.layers[:-1], tape.layers[1:]):
        assert above.inputs is below.spikes
    # The clock engine answers the same request from its dense spikes.
    clock_rec = net.forward(events, engine="clock", record="spikes")
    for a, b in zip(rec.spikes, clock_rec.spikes):
        assert np.array_equal(a.ptr, b.ptr) and np.array_equal(a.index, b.index)
    np.testing.assert_array_equal(rec.rates, clock_rec.rates)
    np.testing.assert_array_equal(rec.prediction, net.predict(events, engine="clock"))


def test_record_spikes_with_a_clock_path_layer_and_bad_values():
    rng = np.random.default_rng(5)
    layers = [stlsim.Conv2d(1, 2, 3, padding=1), stlsim.Flatten(), stlsim.Dense(2 * 36, 6)]
    net = stlsim.Network(layers, neuron=stlsim.LIF(theta_init=0.3), seed=0, backend="numpy",
                         input_shape=(1, 6, 6))
    x = sparse_input(rng, 20, 2, 36, 0.3).reshape(20, 2, 1, 6, 6)
    dense = net.forward(x, engine="event")
    sparse = net.forward(x, engine="event", record="spikes")
    assert [s.input_shape for s in sparse.spikes] == [(2, 6, 6), (6,)]
    for a, b in zip(dense.spikes, sparse.spikes):
        assert np.array_equal(b.to_dense(), a)
    with pytest.raises(ValueError, match="record"):
        net.forward(x, record="membrane")


def test_the_backward_rerun_reuses_the_forwards_copy_of_w_t(monkeypatch):
    monkeypatch.setattr(event, "TRANSPOSE_RATIO", 0.0)            # always push from W.T
    monkeypatch.setattr(event, "KEEP_TRANSPOSED", False)          # from the scratch copy
    from stlsim import _workspace
    _workspace.clear()       # room for this test's buffers: a full workspace is cleared,
    rng = np.random.default_rng(13)   # and the second call would then get a new buffer
    net = make_net((20, 30, 5), surrogate="rectangular")
    x = sparse_input(rng, 30, 2, 20, 0.2)

    def forward():
        return net._forward(x, smooth=False, backend="numpy", engine="event", training=False)[2]

    record = forward().layers[0]
    buffer, serial = record.weight_t
    event._rerun_keeping(record, 30, 2)
    assert record.weight_t[0] is buffer and record.weight_t[1] == serial   # no new copy
    forward()                          # another call writes the same scratch buffer
    event._rerun_keeping(record, 30, 2)                          # copies again, same spikes
    assert record.weight_t[1] != serial
    assert_same_gradients(net, x, [0, 4])


def test_a_layer_without_input_is_silent_without_running_its_kernel():
    # theta 50: the hidden layer never fires, so the output layer gets no event; with
    # theta > 0 and no bias it cannot fire either, and its kernel is skipped.
    rng = np.random.default_rng(12)
    net = make_net((30, 40, 12), theta=50.0, negative_thresholds=False)
    x = sparse_input(rng, 30, 2, 30, 0.1)
    silent = event.CALLS["silent"]
    assert_same_forward(net, x)
    assert event.CALLS["silent"] > silent
    loss, grads = net.loss_and_grad(x, [0, 1], engine="event")
    loss_clock, grads_clock = net.loss_and_grad(x, [0, 1], engine="clock")
    assert loss == loss_clock
    for key in grads:
        np.testing.assert_allclose(grads[key], grads_clock[key], rtol=1e-10, atol=1e-14)
    net.params["1.theta"][0] = -0.5                  # a neuron that fires without input
    silent = event.CALLS["silent"]
    assert_same_forward(net, x)
    assert event.CALLS["silent"] == silent
