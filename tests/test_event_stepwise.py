"""The stepwise first-layer kernel of ``record="spikes"`` (``kernels.event_cpu._stepwise_spikes``,
chosen by ``dense_layer_spikes``): the same spikes as the lazy kernel (``dense_layer_forward``)
bit for bit, on random inputs of every density, B, reset, dtype, with and without a bias and
analog values; the plan runs it where most rows have input and the lazy kernel elsewhere; and
the plan's rates kernel equals ``readout.population_rates``."""
import numpy as np
import pytest

import stlsim
from stlsim.engines import event
from stlsim.engines.event_convert import kernel_values
from stlsim.kernels import event_cpu
from stlsim.readout import population_rates


def layer_spikes(x, weight, theta, tau, hard, bias, ratio):
    """``dense_layer_spikes`` on dense input ``x`` (T, B, n_in): (ptr, idx, stepwise)."""
    dtype = x.dtype
    T, B, _ = x.shape
    events = stlsim.SpikeEvents.from_dense(x)
    values, unit = kernel_values(events)
    has_bias = bias is not None
    return event_cpu.dense_layer_spikes(
        T, B, events.ptr, events.index, values, unit, weight, np.ascontiguousarray(weight.T),
        bias if has_bias else np.zeros(0, dtype), has_bias, theta, np.inf, tau,
        event._tau_powers(tau, T, np.dtype(dtype)), hard, np.empty((B, theta.shape[0]), dtype),
        float(np.finfo(dtype).eps), ratio)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hard", [True, False])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("density", [0.0, 0.005, 0.2])
def test_stepwise_kernel_equals_the_lazy_kernel(dtype, hard, B, density):
    T, n_in, N = 60, 50, 40
    total = silent_rows = silent_spikes = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        x = (rng.random((T, B, n_in)) < density).astype(dtype)
        if seed % 2:                                             # analog input values
            x *= rng.normal(1.0, 0.5, x.shape).astype(dtype)
        weight = rng.normal(0.0, 1.0, (N, n_in)).astype(dtype)
        # Some thresholds <= 0 (spikes without input, a neuron's own anchor: ``late``).
        low = -0.2 if seed % 3 == 2 else 0.1
        theta = rng.uniform(low, 1.0, N).astype(dtype)
        tau = dtype(rng.choice([0.5, 0.9, 1.0]))
        bias = rng.normal(0.0, 0.3, N).astype(dtype) if seed >= 4 else None
        lazy = layer_spikes(x, weight, theta, tau, hard, bias, np.inf)
        stepwise = layer_spikes(x, weight, theta, tau, hard, bias, 0.0)
        assert lazy[2] is False and stepwise[2] is True                # which kernel ran
        np.testing.assert_array_equal(stepwise[0], lazy[0])
        np.testing.assert_array_equal(stepwise[1], lazy[1])
        total += lazy[1].size
        if bias is None:
            rows = np.diff(stlsim.SpikeEvents.from_dense(x).ptr) == 0
            silent_rows += np.count_nonzero(rows)
            silent_spikes += np.diff(lazy[0])[rows].sum()
    assert total > 0
    if silent_rows:                         # the rows without input were tested with spikes
        assert silent_spikes > 0


def test_the_rule_picks_the_kernel_by_the_rows_with_input():
    rng = np.random.default_rng(0)
    T, B, n_in, N = 40, 2, 20, 30
    weight = rng.normal(0.0, 1.0, (N, n_in))
    theta, tau = np.full(N, 0.5), np.float64(0.8)
    x = np.zeros((T, B, n_in))
    x[: T // 2, :, 3] = 1.0                                      # half the rows have input
    assert layer_spikes(x, weight, theta, tau, True, None, 0.5)[2] is True
    assert layer_spikes(x, weight, theta, tau, True, None, 0.51)[2] is False
    # A bias is input at every row.
    assert layer_spikes(x, weight, theta, tau, True, np.zeros(N), 1.0)[2] is True


def make(dtype=np.float32, reset="hard"):
    layers = [stlsim.Dense(30, 40, init_gain=2.0), stlsim.Dense(40, 6, init_gain=2.0)]
    return stlsim.Network(layers, neuron=stlsim.LIF(theta_init=0.4, reset=reset),
                          dtype=dtype, backend="numpy", seed=3)


def plan_calls(net, x):
    """Three ``record="spikes"`` calls; the last one's Record, and the kernel counts of
    the last one (the plan is kept from the second)."""
    for _ in range(2):
        net.forward(x, engine="event", record="spikes")
    before = dict(event.CALLS)
    rec = net.forward(x, engine="event", record="spikes")
    return rec, {key: event.CALLS[key] - before[key] for key in ("plan", "stepwise")}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_the_plan_runs_the_stepwise_kernel_where_rows_have_input(dtype, reset, monkeypatch):
    net, rng = make(dtype, reset), np.random.default_rng(1)
    busy = (rng.random((25, 3, 30)) < 0.2).astype(dtype)         # ~99.9 % of rows with input
    sparse = (rng.random((25, 3, 30)) < 0.005).astype(dtype)     # ~14 %: the lazy kernel
    for x, runs in ((busy, 2), (sparse, 0)):
        rec, calls = plan_calls(net, x)
        assert calls == {"plan": 1, "stepwise": runs}
        clock = net.forward(x, engine="clock")
        np.testing.assert_array_equal(rec.rates, clock.rates)
        for u, v in zip(rec.spikes, clock.spikes, strict=True):
            np.testing.assert_array_equal(u.to_dense(), v)
    assert sum(s.n_events for s in plan_calls(net, busy)[0].spikes) > 0
    monkeypatch.setattr(event, "STEPWISE_RATIO", np.inf)          # the lazy kernel alone
    lazy, calls = plan_calls(net, busy)
    assert calls == {"plan": 1, "stepwise": 0}
    monkeypatch.setattr(event, "STEPWISE_RATIO", 0.0)
    stepwise, calls = plan_calls(net, busy)
    assert calls == {"plan": 1, "stepwise": 2}
    np.testing.assert_array_equal(lazy.rates, stepwise.rates)
    for u, v in zip(lazy.spikes, stepwise.spikes, strict=True):
        np.testing.assert_array_equal(u.to_dense(), v.to_dense())


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_the_general_forward_runs_it_with_a_transposed_weight(reset):
    """Default record and ``loss_and_grad``: the forward pushes W.T here (static_weights)
    and runs the stepwise kernel; spikes, membranes and gradients as on the lazy kernel."""
    net, rng = make(np.float64, reset), np.random.default_rng(2)
    x = (rng.random((25, 3, 30)) < 0.2).astype(np.float64)
    y = np.array([0, 3, 5])
    results = {}
    for ratio in (event.STEPWISE_RATIO, np.inf):
        event.STEPWISE_RATIO, saved = ratio, event.STEPWISE_RATIO
        try:
            with event.static_weights():
                before = event.CALLS["stepwise"]
                rec = net.forward(x, engine="event")
                loss, grads = net.loss_and_grad(x, y, engine="event")
                results[ratio] = (rec, loss, grads, event.CALLS["stepwise"] - before)
        finally:
            event.STEPWISE_RATIO = saved
    (rec, loss, grads, runs), (lazy, lazy_loss, lazy_grads, lazy_runs) = results.values()
    assert runs == 4 and lazy_runs == 0                   # two layers, two forwards
    assert sum(s.sum() for s in rec.spikes) > 0
    for field in ("spikes", "membrane", "currents"):
        for u, v in zip(getattr(rec, field), getattr(lazy, field), strict=True):
            np.testing.assert_array_equal(u, v)
    assert loss == lazy_loss
    for key in grads:
        np.testing.assert_array_equal(grads[key], lazy_grads[key])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T,population", [(100, 1), (37, 3), (251, 2)])
def test_the_rates_kernel_equals_population_rates_at_every_count(dtype, T, population):
    n_classes = T * population + 1                  # class c spikes c times in all
    spikes = np.zeros((T, 1, n_classes * population), dtype=dtype)
    for c in range(n_classes):
        counts = np.zeros(T * population, dtype=dtype)
        counts[:c] = 1
        spikes[:, 0, c * population:(c + 1) * population] = counts.reshape(T, population)
    events = stlsim.SpikeEvents.from_dense(spikes)
    rates = event_cpu.population_rates(events.ptr, events.index, T, 1, n_classes, population,
                                       np.zeros(0, dtype))
    expected = population_rates(spikes, population)
    assert rates.dtype == expected.dtype
    np.testing.assert_array_equal(rates, expected)
