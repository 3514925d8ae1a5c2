"""Issue 25, fair comparisons: weight decay forms, the validation split, per-arm tuning and the
report's multiple-comparison statistics."""
import json
import os

import numpy as np
import pytest

from stlsim.data import load_digits
from stlsim.experiment.spec import LATER_OPTIONS, OPTIONS, RunSpec
from stlsim.train import NetConfig, TrainConfig, build_network, train
from stlsim.train.config import validation_split
from stlsim.train.optim import SGD, Adam, decayed_names, make_optimizer

LR, THETA_LR, WD, EPS = 0.1, 0.01, 0.05, 1e-8


@pytest.fixture(scope="module")
def small_digits():
    return load_digits().subset(60, 30)


def _params():
    return {"0.w": np.array([[0.5, -2.0], [1.5, 0.25]]), "0.theta": np.array([1.0, -0.5])}


def _grads():
    return {"0.w": np.array([[0.3, 0.0], [-0.2, 1e-9]]), "0.theta": np.array([0.0, 0.4])}


def _adam_first_step(p, g):
    """Adam's first step on gradient ``g``: bias-corrected m / sqrt(v) = g / |g|."""
    return p - g / (np.abs(g) + EPS)


# ------------------------------------------------------------ 1. weight decay forms --
# The expected parameter after ONE step, written from each form's definition:
#   coupled:   g' = g + wd * p (decayed names only), then the optimizer's step on g'
#   decoupled: p <- p - lr_p * wd * p (decayed names only), then the step on g
#   none:      the step on g
def _expected(kind, form, decay_theta):
    p0, g = _params(), _grads()
    out = {}
    for name in p0:
        lr = THETA_LR if name.endswith("theta") else LR
        decayed = decay_theta or not name.endswith("theta")
        p, grad = p0[name].copy(), g[name].copy()
        if form == "coupled" and decayed:
            grad = grad + WD * p
        if form == "decoupled" and decayed:
            p = p - lr * WD * p
        if kind == "adam":
            out[name] = p - lr * (grad / (np.abs(grad) + EPS))
        else:                      # SGD, momentum 0.9: the first buffer is the gradient itself
            out[name] = p - lr * grad
    return out


@pytest.mark.parametrize("kind", ["adam", "sgd"])
@pytest.mark.parametrize("form", ["coupled", "decoupled", "none"])
@pytest.mark.parametrize("decay_theta", [True, False])
def test_each_weight_decay_form_matches_its_definition(kind, form, decay_theta):
    params = _params()
    decay_names = ["0.w", "0.theta"] if decay_theta else ["0.w"]
    opt = make_optimizer(kind, params, ["0.w", "0.theta"], lr=LR, weight_decay=WD,
                         lr_per_param={"0.theta": THETA_LR}, weight_decay_mode=form, decay_names=decay_names)
    opt.step(_grads())
    want = _expected(kind, form, decay_theta)
    for name in params:
        np.testing.assert_allclose(params[name], want[name], rtol=1e-12, atol=1e-15, err_msg=name)


def test_the_forms_differ_where_they_should():
    """Coupled decay under Adam turns a zero gradient into a full step (issue 25); decoupled does not."""
    moved = {}
    for form in ("coupled", "decoupled", "none"):
        params = {"theta": np.array([1.0])}
        Adam(params, ["theta"], lr=1e-3, weight_decay=1e-6, weight_decay_mode=form).step({"theta": np.zeros(1)})
        moved[form] = 1.0 - params["theta"][0]
    assert moved["none"] == 0.0
    assert moved["decoupled"] == pytest.approx(1e-3 * 1e-6, rel=1e-12)
    assert moved["coupled"] == pytest.approx(1e-3 * 1e-6 / (1e-6 + 1e-8), rel=1e-12)   # about lr itself
    assert moved["coupled"] > 900 * moved["decoupled"]


def test_coupled_is_the_default_and_unchanged():
    """The default Adam step is today's (coupled L2 on every parameter), bit for bit."""
    a, b = _params(), _params()
    Adam(a, list(a), lr=LR, weight_decay=WD).step(_grads())
    Adam(b, list(b), lr=LR, weight_decay=WD, weight_decay_mode="coupled", decay_names=list(b)).step(_grads())
    for name in a:
        assert np.array_equal(a[name], b[name])
    g = {k: v + WD * _params()[k] for k, v in _grads().items()}
    for name in a:
        np.testing.assert_allclose(a[name], _params()[name] - LR * g[name] / (np.abs(g[name]) + EPS), rtol=1e-12)


def test_weight_decay_options_are_checked():
    with pytest.raises(ValueError, match="weight_decay_mode"):
        Adam(_params(), ["0.w"], weight_decay_mode="l2")
    with pytest.raises(ValueError, match="decay_names"):
        SGD(_params(), ["0.w"], decay_names=["0.theta"])
    with pytest.raises(ValueError, match="weight_decay_mode"):
        TrainConfig(weight_decay_mode="adamw").validate()
    with pytest.raises(TypeError, match="decay_thresholds"):
        TrainConfig(decay_thresholds="no").validate()
    with pytest.raises(ValueError, match="val_fraction"):
        TrainConfig(val_fraction=1.0).validate()


def _tiny(data, mode="stl", seed=0, epochs=1, **kw):
    netcfg = NetConfig(hidden=[16], population=2, dtype="float64")
    net = build_network(netcfg, data.input_shape, data.n_classes, seed=seed, backend="numpy")
    config = TrainConfig(mode=mode, epochs=epochs, timesteps=3, batch_size=30, seed=seed, backend="numpy", **kw)
    return net, config


def test_decayed_names_spare_thresholds_only_when_asked(small_digits):
    net, _ = _tiny(small_digits)
    names = list(net.params)
    assert decayed_names(net, names, True) == names
    spared = decayed_names(net, names, False)
    assert spared and all(not n.endswith(".theta") for n in spared)
    assert set(names) - set(spared) == {n for n in names if n.endswith(".theta")}


def _trained(data, **kw):
    net, config = _tiny(data, **kw)
    result = train(net, data, config, progress=False)
    return net.params, result.history


def test_training_with_the_decay_forms(small_digits):
    """none == no decay; thresholds-only training without threshold decay == no decay; decoupled differs."""
    p_none, _ = _trained(small_digits, weight_decay=1e-2, weight_decay_mode="none")
    p_zero, _ = _trained(small_digits, weight_decay=0.0)
    p_dec, _ = _trained(small_digits, weight_decay=1e-2, weight_decay_mode="decoupled")
    p_cpl, _ = _trained(small_digits, weight_decay=1e-2)
    assert all(np.array_equal(p_none[k], p_zero[k]) for k in p_zero)
    assert not all(np.array_equal(p_dec[k], p_cpl[k]) for k in p_cpl)
    assert not all(np.array_equal(p_dec[k], p_zero[k]) for k in p_cpl)
    t_spared, _ = _trained(small_digits, mode="tl", weight_decay=1e-2, decay_thresholds=False)
    t_zero, _ = _trained(small_digits, mode="tl", weight_decay=0.0)
    assert all(np.array_equal(t_spared[k], t_zero[k]) for k in t_zero)


def test_new_options_are_rows_with_todays_defaults():
    for name, default in (("weight_decay_mode", "coupled"), ("decay_thresholds", True), ("val_fraction", 0.0)):
        assert OPTIONS[name].default == default and LATER_OPTIONS[name] == default
        assert getattr(TrainConfig(), name) == default
    spec = RunSpec.from_options({"weight_decay_mode": "decoupled", "decay_thresholds": False,
                                 "val_fraction": 0.2})
    assert (spec.train.weight_decay_mode, spec.train.decay_thresholds, spec.train.val_fraction) == (
        "decoupled", False, 0.2)
    from stlsim.experiment.sweep.grid import parse_grid_text, task_id

    grid = parse_grid_text("weight_decay_mode=coupled,decoupled,none decay_thresholds=true,false")
    assert grid.axes["decay_thresholds"] == [True, False]
    base = RunSpec.from_options({}).options()
    assert task_id(base, "stl", 0) == task_id({k: v for k, v in base.items() if k not in LATER_OPTIONS}, "stl", 0)
    assert task_id({**base, "weight_decay_mode": "none"}, "stl", 0) != task_id(base, "stl", 0)


# ------------------------------------------------------------- 2. validation split --
def test_validation_split_is_fixed_stratified_and_disjoint(small_digits):
    rest, x_val, y_val = validation_split(small_digits, 0.2)
    again, x_val2, _ = validation_split(small_digits, 0.2)
    assert np.array_equal(x_val, x_val2) and np.array_equal(rest.x_train, again.x_train)
    assert len(y_val) + len(rest.y_train) == len(small_digits.y_train)
    for label in np.unique(small_digits.y_train):
        n = int(np.sum(small_digits.y_train == label))
        assert int(np.sum(y_val == label)) == round(0.2 * n)
    flat = {row.tobytes() for row in rest.x_train.reshape(len(rest.y_train), -1)}
    assert not any(row.tobytes() in flat for row in x_val.reshape(len(y_val), -1))
    assert np.array_equal(rest.x_test, small_digits.x_test)
    with pytest.raises(ValueError, match="val_fraction"):
        validation_split(small_digits.subset(1, 5), 0.5)


def test_validation_accuracy_is_recorded_and_the_split_is_shared(small_digits, tmp_path):
    _, plain = _trained(small_digits)
    assert "val_accuracy" not in plain
    hists = {}
    for mode, seed in (("stl", 0), ("sl", 0), ("stl", 1)):
        net, config = _tiny(small_digits, mode=mode, seed=seed, epochs=2, val_fraction=0.25)
        hists[mode, seed] = train(net, small_digits, config, progress=False,
                                  record_path=tmp_path / f"{mode}{seed}.h5").history
    for hist in hists.values():
        assert len(hist["val_accuracy"]) == 2 and len(hist["val_loss"]) == 2
        assert all(0.0 <= a <= 1.0 for a in hist["val_accuracy"])
    # training on fewer samples changes the run
    assert hists["stl", 0]["train_loss"] != _trained(small_digits, epochs=2)[1]["train_loss"]


def test_resume_keeps_the_validation_history(small_digits, tmp_path):
    net, config = _tiny(small_digits, epochs=2, val_fraction=0.25)
    full = train(net, small_digits, config, progress=False).history
    path = tmp_path / "r.h5"
    net, config = _tiny(small_digits, epochs=1, val_fraction=0.25)
    train(net, small_digits, config, progress=False, record_path=path)
    net, config = _tiny(small_digits, epochs=2, val_fraction=0.25)
    resumed = train(net, small_digits, config, progress=False, record_path=path, resume=path).history
    assert resumed["val_accuracy"] == full["val_accuracy"]
    assert resumed["test_accuracy"] == full["test_accuracy"]
