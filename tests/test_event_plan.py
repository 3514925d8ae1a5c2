"""``net.forward(x, engine="event", record="spikes")`` through the plan the Network keeps
(``engines.event.SpikesPlan``, ``Network._spikes_by_plan``): the same spikes and rates,
bit for bit, as the general path and the clock engine; used only while nothing it was
built from changed, rebuilt after any change (a parameter in place or replaced, a
setting, the dtype); every bad input still gets the general path's error."""
import gc

import numpy as np
import pytest

import stlsim
from stlsim.engines import event


def make(dtype=np.float64, bias=False, population=1, reset="hard", n_out=6, seed=3):
    layers = [stlsim.Dense(30, 40, init_gain=2.0, bias=bias), stlsim.Dense(40, n_out, init_gain=2.0)]
    return stlsim.Network(layers, neuron=stlsim.LIF(theta_init=0.4, reset=reset),
                          surrogate="rectangular", dtype=dtype, backend="numpy", seed=seed,
                          population=population)


def spikes(seed=0, T=20, B=3, density=0.2, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.random((T, B, 30)) < density).astype(dtype)


def general(net, x):
    """The same call on the general path (no plan)."""
    event.PLAN_SPIKES = False
    try:
        return net.forward(x, engine="event", record="spikes")
    finally:
        event.PLAN_SPIKES = True


def planned(net, x):
    """The call through the plan (warmed up: the plan is kept from the second call with
    unchanged weights); fails if the plan serves none of three calls after the warm-up.
    Anything else holding a parameter at a call (garbage not yet collected, say) makes the
    entry not private, and the guard then rightly takes the general path and keeps a new
    plan: the garbage is collected first, and a second and third try allowed (the full suite
    once failed here on the first try, in one of five runs; not reproduced since)."""
    gc.collect()
    for _ in range(2):
        net.forward(x, engine="event", record="spikes")
    for _ in range(3):
        before = event.CALLS["plan"]
        rec = net.forward(x, engine="event", record="spikes")
        if event.CALLS["plan"] == before + 1:
            return rec
    raise AssertionError("the plan did not serve the call")


def assert_same(a, b):
    assert a.rates.dtype == b.rates.dtype
    np.testing.assert_array_equal(a.rates, b.rates)
    assert a.layer_index == b.layer_index and a.engine == b.engine and a.backend == b.backend
    assert a.membrane is None and a.currents is None
    for u, v in zip(a.spikes, b.spikes, strict=True):
        assert isinstance(u, stlsim.SpikeEvents) and u.dtype == v.dtype
        np.testing.assert_array_equal(u.to_dense(), v.to_dense())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias,population,reset", [(False, 1, "hard"), (True, 2, "soft"),
                                                   (False, 3, "soft")])
def test_plan_equals_the_general_path_and_the_clock_engine(dtype, bias, population, reset):
    net, x = make(dtype, bias, population, reset), spikes(dtype=dtype)
    rec = planned(net, x)
    assert_same(rec, general(net, x))
    clock = net.forward(x, engine="clock")
    assert sum(s.n_events for s in rec.spikes) > 0                   # something to compare
    np.testing.assert_array_equal(rec.rates, clock.rates)
    for u, v in zip(rec.spikes, clock.spikes, strict=True):
        np.testing.assert_array_equal(u.to_dense(), v)
    # SpikeEvents input, analog values, a silent input: the same
    assert_same(planned(net, stlsim.SpikeEvents.from_dense(x)), general(net, x))
    analog = x * np.linspace(0.5, 1.5, 30).astype(dtype)
    assert_same(planned(net, analog), general(net, analog))
    silent = np.zeros_like(x)
    assert_same(planned(net, silent), general(net, silent))


def test_plan_follows_T_and_B():
    net = make()
    for T, B in [(20, 3), (50, 1), (7, 5), (20, 3)]:
        x = spikes(seed=T, T=T, B=B)
        assert_same(planned(net, x), general(net, x))


@pytest.mark.parametrize("key", ["0.weight", "0.theta", "1.weight", "1.theta", "0.bias"])
def test_plan_is_rebuilt_after_an_in_place_change(key):
    net, x = make(bias=True), spikes()
    first = planned(net, x)
    net.params[key][...] *= 0.5
    # The next call is not served by the old plan; it equals the general path.
    before = event.CALLS["plan"]
    rec = net.forward(x, engine="event", record="spikes")
    assert event.CALLS["plan"] == before
    assert_same(rec, general(net, x))
    assert_same(planned(net, x), general(net, x))
    with pytest.raises(AssertionError):
        assert_same(rec, first)                   # the change did change the output


def test_plan_is_not_used_while_a_reference_is_held_and_follows_a_replacement():
    net, x = make(), spikes()
    planned(net, x)
    theta = net.params["0.theta"]                   # exposed, and held: never clean
    before = event.CALLS["plan"]
    for value in (0.1, 0.3):
        theta[:] = value
        assert_same(net.forward(x, engine="event", record="spikes"), general(net, x))
    assert event.CALLS["plan"] == before
    del theta
    assert_same(planned(net, x), general(net, x))
    net.params["1.theta"] = np.full(6, 0.05)       # replaced
    before = event.CALLS["plan"]
    rec = net.forward(x, engine="event", record="spikes")
    assert event.CALLS["plan"] == before
    assert_same(rec, general(net, x))
    net.params = {key: value * 1.5 for key, value in net.params.items()}   # a new mapping
    assert_same(planned(net, x), general(net, x))


def test_plan_is_rebuilt_after_a_setting_changes():
    net, x = make(n_out=6), spikes()
    planned(net, x)
    net.population = 2                              # rates (B, 3) now
    rec = net.forward(x, engine="event", record="spikes")
    assert rec.rates.shape == (3, 3)
    assert_same(rec, general(net, x))
    np.testing.assert_array_equal(planned(net, x).rates, net.forward(x, engine="event").rates)
    net.backend = "numba"
    rec = planned(net, x)
    assert rec.backend == "numba"


def test_plan_is_rebuilt_after_a_dtype_change():
    net, x = make(np.float64), spikes()
    planned(net, x)
    net.dtype = np.dtype(np.float32)               # the parameters are still float64
    with pytest.raises(TypeError, match="float32"):
        net.forward(x.astype(np.float32), engine="event", record="spikes")
    net.params = {key: value.astype(np.float32) for key, value in net.params.items()}
    x32 = x.astype(np.float32)
    rec = planned(net, x32)
    assert rec.rates.dtype == np.float32 and rec.spikes[0].dtype == np.float32
    assert_same(rec, general(net, x32))
    # A float64 x on a float32 network is cast by the general path, not by the plan.
    before = event.CALLS["plan"]
    assert_same(net.forward(x, engine="event", record="spikes"), rec)
    assert event.CALLS["plan"] == before


def test_bad_inputs_get_the_general_paths_errors_on_the_planned_call():
    net, x = make(), spikes()
    planned(net, x)
    bad = x.copy()
    bad[3, 1, 7] = np.nan
    with pytest.raises(ValueError, match="`x` of `Network` must be finite.*Got 1 non-finite"):
        net.forward(bad, engine="event", record="spikes")
    with pytest.raises(ValueError, match="x"):
        net.forward(x[:, :, :29], engine="event", record="spikes")
    with pytest.raises(ValueError, match="x"):
        net.forward(x[:0], engine="event", record="spikes")
    net.params["0.weight"][0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        net.forward(x, engine="event", record="spikes")


def test_plan_is_not_used_off_its_case():
    net, x = make(), spikes()
    planned(net, x)
    before = event.CALLS["plan"]
    net.forward(x, engine="clock", record="spikes")
    net.forward(x, engine="event")                                  # default record
    net.forward(x, engine="event", record="spikes", smooth=True)    # falls back to clock
    net.forward(x, engine="event", record="spikes", backend="numpy")
    assert event.CALLS["plan"] == before
    conv = stlsim.Network([stlsim.Conv2d(1, 2, 3), stlsim.Flatten(), stlsim.Dense(2 * 4 * 4, 3)],
                          input_shape=(1, 6, 6), seed=0)
    xc = (np.random.default_rng(0).random((5, 2, 1, 6, 6)) < 0.3).astype(np.float64)
    for _ in range(3):
        conv.forward(xc, engine="event", record="spikes")
    assert event.CALLS["plan"] == before and conv._plan is None


def test_plan_holds_no_parameter_array():
    # A reference kept across calls would make the entry not private: every call would
    # scan it (and the plan would never serve).
    from stlsim import _params
    net, x = make(bias=True), spikes()
    planned(net, x)
    scans = _params.SCANS["full"]
    for _ in range(3):
        planned(net, x)
    assert _params.SCANS["full"] == scans
    assert all(net.params._private(key) for key in net.params._data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 16, 35, 70])
def test_the_scan_of_a_dense_input_finds_every_nonzero(dtype, n):
    # One pass, blocks of eight entries tested at once (float32 pairs as 64-bit words
    # where n is even): the same events as np.nonzero, -0.0 no event, any alignment.
    from stlsim.engines.event_convert import scan_dense
    rng = np.random.default_rng(n)
    base = np.zeros(5 * 3 * n + 1, dtype=dtype)
    for x in (base[:-1].reshape(5, 3, n), base[1:].reshape(5, 3, n)):   # 8-byte aligned or not
        for density in (0.0, 0.05, 0.5, 1.0):
            x[...] = (rng.random(x.shape) < density) * rng.choice([1.0, -0.5, 2.0], x.shape)
            x[0, 0] = -0.0
            x[1, 2, n - 1] = 3.0                                        # the tail
            events = scan_dense(x, event._kernels())
            expected = stlsim.SpikeEvents.from_dense(x)
            np.testing.assert_array_equal(events.ptr, expected.ptr)
            np.testing.assert_array_equal(events.index, expected.index)
            np.testing.assert_array_equal(events.to_dense(), expected.to_dense())
            assert (events.values is None) == (expected.values is None)


def test_plan_with_a_shared_threshold_and_an_in_place_change_of_it():
    layers = [stlsim.Dense(30, 40, init_gain=2.0, threshold_sharing="layer"),
              stlsim.Dense(40, 6, init_gain=2.0)]
    net = stlsim.Network(layers, neuron=stlsim.LIF(theta_init=0.4), seed=5)
    x = spikes()
    assert net.params["0.theta"].shape != (40,)
    assert_same(planned(net, x), general(net, x))
    net.params["0.theta"][...] = 0.2
    assert_same(planned(net, x), general(net, x))


@pytest.mark.parametrize("protocol", [2, 5])
def test_an_unpickled_network_owns_its_parameters_and_gets_the_plan(protocol):
    """Protocol 5 hands arrays back as views of pickle's buffer; the ParamDict copies them once,
    so an unpickled network (a Dask worker's, one loaded from disk) is not scanned at every call."""
    import pickle

    from stlsim import _params
    net, x = make(bias=True), spikes()
    twin = pickle.loads(pickle.dumps(net, protocol=protocol))
    assert all(twin.params._private(key) for key in twin.params._data)
    rec = planned(twin, x)
    scans = _params.SCANS["full"]
    planned(twin, x)
    assert _params.SCANS["full"] == scans
    assert_same(rec, general(net, x))
    twin.params["0.weight"][0, 0] = np.nan          # still guarded: an exposed entry is checked in full
    with pytest.raises(ValueError, match="0.weight"):
        twin.forward(x, engine="event", record="spikes")
