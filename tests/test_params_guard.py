"""``Network.params`` (``stlsim._params.ParamDict``): the per-call NaN scan is skipped
only for entries that provably did not change; every way of changing an entry is
still caught at the next call; the event engine's lazy Record is built from the
values the forward used; the W.T the Network keeps follows the weights."""
import copy
import pickle

import numpy as np
import pytest

import stlsim
from stlsim._params import ParamDict
from stlsim.engines import event
from stlsim.train.optim import SGD

ENGINES = ["clock", "event"]


def make(dtype=np.float64, bias=False):
    layers = [stlsim.Dense(30, 40, init_gain=1.5, bias=bias), stlsim.Dense(40, 6, init_gain=1.5)]
    return stlsim.Network(layers, neuron=stlsim.LIF(theta_init=0.4), surrogate="rectangular",
                          dtype=dtype, backend="numpy", seed=3)


def spikes(seed=0, T=20, B=2, density=0.1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.random((T, B, 30)) < density).astype(dtype)


def assert_nan_caught(net, x, engine):
    with pytest.raises(ValueError, match="finite"):
        net.forward(x, engine=engine)


def test_unchanged_entries_skip_the_scan_and_fresh_ones_do_not():
    net, x = make(), spikes()
    params = net.params
    assert isinstance(params, ParamDict)
    assert all(params._needs_check(key) for key in params)            # never checked
    net.forward(x)
    assert not any(params._needs_check(key) for key in params)        # checked, private
    version = dict(params._version)
    net.forward(x, engine="event")
    assert params._version == version                                 # nothing rescanned
    params["0.theta"]                                                 # read: exposed
    assert params._needs_check("0.theta") and not params._needs_check("0.weight")
    held = params["1.weight"]
    net.forward(x)
    assert params._needs_check("1.weight")                            # held elsewhere
    del held
    net.forward(x)                                                    # checked once more
    assert not params._needs_check("1.weight")


@pytest.mark.parametrize("engine", ENGINES)
def test_in_place_nan_through_the_mapping_is_caught(engine):
    net, x = make(), spikes()
    net.forward(x, engine=engine)
    net.params["0.weight"][3, 4] = np.nan
    assert_nan_caught(net, x, engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_nan_through_a_held_reference_is_caught_even_after_it_is_dropped(engine):
    net, x = make(), spikes()
    weight = net.params["0.weight"]
    net.forward(x, engine=engine)                     # checked while held
    weight[0, 0] = np.nan
    del weight                                        # private again, but not clean
    assert_nan_caught(net, x, engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_nan_through_a_view_or_a_loop_over_items_is_caught(engine):
    net, x = make(), spikes()
    row = net.params["1.weight"][2]
    net.forward(x, engine=engine)
    net.forward(x, engine=engine)
    row[1] = np.inf
    assert_nan_caught(net, x, engine)
    net, x = make(), spikes()
    net.forward(x, engine=engine)
    for key, value in net.params.items():
        if key == "1.theta":
            value[0] = np.nan
    assert_nan_caught(net, x, engine)
    net, x = make(), spikes()
    net.forward(x, engine=engine)
    plain = dict(net.params)                          # a plain dict of the same arrays
    net.forward(x, engine=engine)
    plain["0.theta"][:] = np.nan
    del plain
    assert_nan_caught(net, x, engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_in_place_arithmetic_and_an_optimizer_step_are_caught(engine):
    net, x = make(), spikes()
    net.forward(x, engine=engine)
    net.params["0.weight"] *= np.inf                  # __getitem__, __imul__, __setitem__
    assert_nan_caught(net, x, engine)
    net, x = make(), spikes()
    optimizer = SGD(net.params, list(net.params), lr=1.0)
    net.forward(x, engine=engine)
    grads = {key: np.full_like(value, np.nan) for key, value in net.params.items()}
    optimizer.step(grads)
    assert_nan_caught(net, x, engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_wrong_shapes_and_dtypes_are_caught_however_they_come(engine):
    net, x = make(), spikes()
    net.forward(x, engine=engine)
    net.params["0.weight"].shape = (40 * 30,)         # in place
    with pytest.raises(TypeError, match=r"params\['0.weight'\]"):
        net.forward(x, engine=engine)
    net, x = make(), spikes()
    net.forward(x, engine=engine)
    net.params["0.theta"] = np.zeros(39)
    with pytest.raises(TypeError, match=r"shape \(40,\)"):
        net.forward(x, engine=engine)
    net.params["0.theta"] = np.zeros(40, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        net.forward(x, engine=engine)
    net.params = {key: value.copy() for key, value in make().params.items()}   # a plain dict
    assert isinstance(net.params, ParamDict)
    net.forward(x, engine=engine)
    del net.params["1.theta"]
    with pytest.raises(ValueError, match="no entry"):
        net.forward(x, engine=engine)


def test_a_view_as_parameter_is_checked_at_every_call():
    net, x = make(), spikes()
    big = np.zeros((2, 40, 30))
    big[0] = net.params["0.weight"]
    net.params["0.weight"] = big[0]                   # does not own its memory
    net.forward(x)
    net.forward(x)
    assert net.params._needs_check("0.weight")
    big[0, 1, 1] = np.nan
    assert_nan_caught(net, x, "event")


def test_the_mapping_reads_like_a_dict():
    net = make()
    keys = list(net.params)
    assert keys == ["0.weight", "0.theta", "1.weight", "1.theta"] and len(net.params) == 4
    assert "0.theta" in net.params and net.params.get("nope") is None
    merged = net.params | {"extra": 1}
    assert isinstance(merged, dict) and set(merged) == set(keys) | {"extra"}
    assert isinstance(net.params.copy(), dict) and set({**net.params}) == set(keys)
    assert all(net.params._needs_check(key) for key in keys)       # all handed out


def test_copies_and_pickles_of_the_network_keep_working():
    net, x = make(), spikes()
    net.forward(x)
    twin = copy.deepcopy(net)
    again = pickle.loads(pickle.dumps(net))
    for other in (twin, again):
        assert isinstance(other.params, ParamDict)
        np.testing.assert_array_equal(other.forward(x).membrane[0], net.forward(x).membrane[0])
    twin.params["0.weight"][0, 0] = np.nan            # its own arrays
    net.forward(x)
    assert_nan_caught(twin, x, "clock")


# ----------------------------------------------------------------- the lazy Record --
def eager(net, x, **kwargs):
    """The Record as built before it was lazy (every dense list at once)."""
    saved = stlsim.network._LEGACY_CALL_PATH
    stlsim.network._LEGACY_CALL_PATH = True
    try:
        return net.forward(x, engine="event", **kwargs)
    finally:
        stlsim.network._LEGACY_CALL_PATH = saved


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lazy_record_is_built_only_when_read_and_equals_the_eager_one(dtype):
    net, x = make(dtype, bias=True), spikes(dtype=dtype, density=0.2)
    reference = eager(net, x)
    built = event.CALLS["materialize"]
    rec = net.forward(x, engine="event")
    rec.rates, rec.prediction, rec.layer_index                        # no dense list needed
    assert event.CALLS["materialize"] == built
    assert rec.firing_rates == reference.firing_rates
    assert event.CALLS["materialize"] == built + 2                    # both layers, once
    for name in ("spikes", "membrane", "currents"):
        for a, b in zip(getattr(reference, name), getattr(rec, name)):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
    assert isinstance(rec.spikes, list) and event.CALLS["materialize"] == built + 2


@pytest.mark.parametrize("change", ["in_place", "replace", "reassign", "optimizer"])
def test_lazy_record_keeps_the_values_of_its_forward(change):
    net, x = make(), spikes(density=0.2)
    reference = eager(net, x)
    rec = net.forward(x, engine="event")
    if change == "in_place":
        net.params["0.weight"] *= 3.0
    elif change == "replace":
        net.params["0.weight"] = net.params["0.weight"] * 3.0
    elif change == "reassign":
        params = net.params
        net.params = {key: value * 3.0 for key, value in params.items()}
        params["0.weight"] *= 3.0                     # the old mapping, held elsewhere
    else:
        optimizer = SGD(net.params, list(net.params), lr=1.0)
        optimizer.step({key: np.ones_like(value) for key, value in net.params.items()})
    changed = net.forward(x, engine="event")
    assert not np.array_equal(changed.membrane[0], reference.membrane[0])
    for a, b in zip(reference.membrane + reference.currents, rec.membrane + rec.currents):
        np.testing.assert_array_equal(a, b)


def test_lazy_record_keeps_its_input_events():
    net, x = make(), spikes(density=0.2)
    events = stlsim.SpikeEvents.from_dense(x)
    rec = net.forward(events, engine="event")
    reference = eager(net, x)
    events.index.flags.writeable = True                # deliberately bypassing the guard
    events.index[:] = 0
    np.testing.assert_array_equal(rec.membrane[0], reference.membrane[0])


def test_record_is_eager_while_a_weight_is_held_elsewhere():
    net, x = make(), spikes(density=0.2)
    weight = net.params["0.weight"]
    built = event.CALLS["materialize"]
    rec = net.forward(x, engine="event")
    assert event.CALLS["materialize"] == built + 2    # built now: weight may change
    reference = rec.membrane[0].copy()
    weight *= 3.0
    np.testing.assert_array_equal(rec.membrane[0], reference)


# ---------------------------------------------------------- W.T kept by the Network --
def test_transposed_weights_are_kept_only_while_unchanged():
    net, x = make(), spikes(density=0.05)
    reference = [eager(net, x).membrane[0]]
    cached = event.CALLS["cached_transpose"]
    net.forward(x, engine="event", record="spikes")   # first sight of this version
    assert event.CALLS["cached_transpose"] == cached
    for _ in range(2):                                 # unchanged: W.T copied once, reused
        rec = net.forward(x, engine="event")
        np.testing.assert_array_equal(rec.membrane[0], reference[0])
    assert event.CALLS["cached_transpose"] >= cached + 4
    kept = net._weight_t["0.weight"][1]
    np.testing.assert_array_equal(kept, net.params._data["0.weight"].T)
    net.params["0.weight"][:, :5] *= -1.0              # changed: the copy is not used
    cached = event.CALLS["cached_transpose"]
    rec = net.forward(x, engine="event")
    np.testing.assert_array_equal(rec.membrane[0], eager(net, x).membrane[0])
    assert "0.weight" not in net._weight_t
    loss, grads = net.loss_and_grad(x, [0, 1], engine="event")
    loss_clock, grads_clock = net.loss_and_grad(x, [0, 1], engine="clock")
    assert abs(loss - loss_clock) <= 1e-12


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_input_is_caught_on_the_event_engine_too(bad):
    # The event engine's Network scans a dense input for its nonzeros and tests only
    # those for finiteness: NaN and infinities are nonzeros.
    net, x = make(), spikes()
    x[3, 1, 7] = bad
    x[4, 0, 2] = bad
    for engine in ENGINES:
        with pytest.raises(ValueError, match="`x` of `Network` must be finite.*Got 2 non-finite"):
            net.forward(x, engine=engine)
        with pytest.raises(ValueError, match="Got 2 non-finite"):
            net.loss_and_grad(x, [0, 1], engine=engine)
    x = spikes()
    x[2, 1, 3] = -0.0                                  # no event, and finite
    events = event.CALLS["event_input"]
    rec = net.forward(x, engine="event")
    assert event.CALLS["event_input"] == events + 1    # scanned by the Network
    np.testing.assert_array_equal(rec.membrane[0], net.forward(x, engine="clock").membrane[0])



# ------------------------------------------- record="spikes": the Network's kept plan --
def _nan_in_place(net):
    net.params["0.weight"][3, 4] = np.nan


def _nan_through_a_dropped_reference(net):
    weight = net.params["1.weight"]
    net.forward(spikes(), engine="event", record="spikes")   # checked while held
    weight[0, 0] = np.nan


def _inf_through_a_view(net):
    row = net.params["0.theta"][2:]
    row[1] = np.inf


def _optimizer_step(net):
    optimizer = SGD(net.params, list(net.params), lr=1.0)
    optimizer.step({key: np.full_like(value, np.nan) for key, value in net.params.items()})


def _shape_in_place(net):
    net.params["0.weight"].shape = (40 * 30,)


def _wrong_shape(net):
    net.params["1.theta"] = np.zeros(5)


def _entry_deleted(net):
    del net.params["1.theta"]


@pytest.mark.parametrize("tamper,error,match", [
    (_nan_in_place, ValueError, "finite"), (_nan_through_a_dropped_reference, ValueError, "finite"),
    (_inf_through_a_view, ValueError, "finite"), (_optimizer_step, ValueError, "finite"),
    (_shape_in_place, TypeError, r"params\['0.weight'\]"), (_wrong_shape, TypeError, r"shape \(6,\)"),
    (_entry_deleted, ValueError, "no entry")])
def test_the_kept_plan_of_record_spikes_lets_no_change_through(tamper, error, match):
    net, x = make(), spikes()
    plans = event.CALLS["plan"]
    for _ in range(3):
        net.forward(x, engine="event", record="spikes")
    assert event.CALLS["plan"] == plans + 1          # the plan served the third call
    tamper(net)
    with pytest.raises(error, match=match):
        net.forward(x, engine="event", record="spikes")
