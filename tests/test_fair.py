"""Fair comparisons: weight decay forms, the validation split, per-arm tuning and the
report's multiple-comparison statistics."""
import csv
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
    """Coupled decay under Adam turns a zero gradient into a full step; decoupled does not."""
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


# ---------------------------------------------------------------- 3. per-arm tuning --
# Planted: validation and test disagree on the best lr; tuning must follow validation.
PLANTED_VAL = {"stl": {1e-3: 0.50, 3e-3: 0.70, 1e-2: 0.60}, "sl": {1e-3: 0.40, 3e-3: 0.50, 1e-2: 0.80}}
PLANTED_TEST = {"stl": {1e-3: 0.90, 3e-3: 0.40, 1e-2: 0.30}, "sl": {1e-3: 0.95, 3e-3: 0.20, 1e-2: 0.35}}


def planted_task(task, out_dir):
    opts = task.option_dict
    lr = opts["lr"]
    return {"task_id": task.id, "status": "ok", "error": "", "mode": task.mode, "seed": task.seed,
            "final_test_accuracy": PLANTED_TEST[task.mode][lr] + 0.01 * task.seed + 0.001 * opts["theta_init"],
            "final_val_accuracy": PLANTED_VAL[task.mode][lr], "final_val_loss": 0.1, "n_test": 1000,
            "val_fraction": opts["val_fraction"], "firing_rate_init_l0": 0.1, "firing_rate_l0": 0.1,
            "theta_shift_l0": 0.0, "sops_per_sample": 10.0}


def _tuned_sweep(out, seeds=(0, 1, 2), **fixed):
    from stlsim.experiment.sweep.grid import parse_grid_text
    from stlsim.experiment.sweep.runner import run_sweep
    from stlsim.experiment.sweep.tune import expand_tuned, parse_tune_text

    from test_sweep import base_options

    spec = parse_grid_text("theta_init=1,2")
    tune = parse_tune_text("lr=1e-3,3e-3,1e-2")
    tasks = expand_tuned(spec, tune, base_options(val_fraction=0.2, **fixed), list(seeds), ["stl", "sl"])
    meta = {"axes": [[k, v] for k, v in spec.axes.items()], "tune": [[k, v] for k, v in tune.items()]}
    run_sweep(tasks, out, scheduler="serial", task_fn=planted_task, meta=meta, log=None)
    return tasks


def test_tuning_picks_by_validation_never_by_test(tmp_path):
    from stlsim.experiment.sweep.report import write_sweep_report
    from stlsim.experiment.sweep.table import read_table
    from stlsim.experiment.sweep.tune import TUNED_TABLE, write_tuned

    out = str(tmp_path / "tuned")
    tasks = _tuned_sweep(out)
    assert len(tasks) == 2 * 3 * 3 * 2 and {t.cell for t in tasks} == {(("theta_init", 1.0),), (("theta_init", 2.0),)}
    rows = read_table(write_tuned(out))
    assert len(rows) == 2 * 3 * 2 and all(r["status"] == "ok" and r["tune_runs"] == 3 for r in rows)
    for r in rows:
        want = {"stl": 3e-3, "sl": 1e-2}[r["mode"]]
        assert r["tuned_lr"] == pytest.approx(want) and r["lr"] == pytest.approx(want)
        assert r["final_test_accuracy"] == pytest.approx(PLANTED_TEST[r["mode"]][want] + 0.01 * r["seed"]
                                                         + 0.001 * r["theta_init"])
        assert r["tuned_edge"] == ("lr" if r["mode"] == "sl" else None)
    path = write_sweep_report(out, log=None)
    text = open(path).read()
    assert os.path.isfile(os.path.join(out, TUNED_TABLE))
    assert "## Tuning" in text and "warning" in text and "SL theta_init=1" in text
    assert "STL theta_init=1: the chosen" not in text
    with open(os.path.join(out, "report", "cells.csv"), newline="") as f:     # the report's table, not a sweep's
        cells = list(csv.DictReader(f))
    # compared at the chosen values: STL 0.40 vs SL 0.35 (test picks would have given 0.90 vs 0.95)
    assert all(float(c["difference"]) == pytest.approx(0.05) for c in cells) and len(cells) == 2


def test_tuning_is_refused_without_a_validation_split_and_theta_lr_spares_sl():
    from stlsim.experiment.sweep.grid import parse_grid_text
    from stlsim.experiment.sweep.tune import expand_tuned, parse_tune_text

    from test_sweep import base_options

    spec = parse_grid_text("theta_init=1,2")
    with pytest.raises(ValueError, match="val_fraction"):
        expand_tuned(spec, parse_tune_text("lr=1e-3,1e-2"), base_options(), [0], ["stl", "sl"])
    with pytest.raises(ValueError, match="either tuned"):
        expand_tuned(spec, parse_tune_text("theta_init=1,3"), base_options(val_fraction=0.2), [0], ["stl"])
    with pytest.raises(ValueError, match="--tune option"):
        parse_tune_text("val_fraction=0.1,0.2")
    tasks = expand_tuned(spec, parse_tune_text("lr=1e-3,1e-2 theta_lr=1e-3,1e-2"), base_options(val_fraction=0.2),
                         [0], ["stl", "sl"])
    per_mode = {m: sum(t.mode == m for t in tasks) for m in ("stl", "sl")}
    assert per_mode == {"stl": 2 * 4, "sl": 2 * 2}


def test_tuned_sweep_end_to_end(tmp_path, capsys):
    """A real tiny sweep through the command line: --tune, --val-fraction, then sweep-report."""
    from stlsim import cli
    from stlsim.experiment.sweep.table import read_table

    out = str(tmp_path / "e2e")
    argv = ["sweep", "--grid", "theta_init=1", "--tune", "lr=1e-3,1e-2", "--val-fraction", "0.25", "--seeds", "1",
            "--scheduler", "serial", "--out", out, "--hidden", "16", "--epochs", "1", "-P", "2", "--train-subset",
            "60", "--test-subset", "30", "--batch-size", "30", "--backend", "numpy", "--dtype", "float64", "--quiet"]
    assert cli.main(argv) == 0
    table = read_table(out)
    assert len(table) == 4 and all(r["final_val_accuracy"] is not None and r["val_fraction"] == 0.25 for r in table)
    tuned = read_table(os.path.join(out, "tuned.csv"))
    assert len(tuned) == 2
    for r in tuned:
        arm = [t for t in table if t["mode"] == r["mode"]]
        best = max(t["final_val_accuracy"] for t in arm)
        assert r["final_val_accuracy"] == best
        assert r["final_test_accuracy"] == next(t for t in arm if t["task_id"] == r["task_id"])["final_test_accuracy"]
    assert cli.main(["sweep-report", out, "--quiet"]) == 0
    assert "## Tuning" in open(os.path.join(out, "report", "report.md")).read()


# ------------------------------------------------------------- 4. report statistics --
def test_benjamini_hochberg_equals_scipy_and_holm_a_hand_count():
    from scipy import stats

    from stlsim.experiment.sweep.report import benjamini_hochberg, holm

    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])            # 4 x .005, 3 x .01, max(2 x .03, 1 x .04)
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])   # 4/1 x .005, 4/2 x .01, 4/3 x .03, .04
    rng = np.random.default_rng(0)
    for m in (1, 2, 7, 50):
        p = np.concatenate([rng.uniform(size=m), rng.uniform(0, 0.01, size=m // 3)])
        p[: m // 4] = p[0]                                                     # ties
        np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"),
                                   rtol=1e-12)
        h = holm(p)
        assert np.all(h >= p) and np.all(h <= 1) and np.all(h >= benjamini_hochberg(p) - 1e-15)


def _cell_rows(diffs, theta_init, tid_prefix="", seed0=0, n_test=1000, lr=1e-3):
    rows = []
    for k, d in enumerate(diffs):
        seed = seed0 + k
        for mode, acc in (("stl", 0.5 + d), ("sl", 0.5)):
            tid = f"{tid_prefix}{mode}{theta_init}-{seed}".replace(".", "_")     # a valid task id
            rows.append({"task_id": tid, "status": "ok", "theta_init": theta_init,
                         "seed": seed, "mode": mode, "final_test_accuracy": acc, "n_test": n_test, "lr": lr,
                         "firing_rate_init_l0": 0.1, "firing_rate_l0": 0.2, "theta_shift_l0": 0.01,
                         "sops_per_sample": 100.0})
    return rows


def test_p_values_and_verdicts_by_q():
    from scipy import stats

    from stlsim.experiment.sweep.report import chance_counts, paired_differences

    diffs = [0.010, 0.030, 0.020, 0.025, 0.005]
    (one,) = paired_differences(_cell_rows(diffs, 1.0), ["theta_init"])
    assert one["p"] == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue, rel=1e-10)
    assert one["q"] == one["p"] == one["p_holm"] and one["verdict"] == "STL better"
    # one cell at p ~ 0.02 among 19 noisy ties: significant alone, not after adjustment
    rng = np.random.default_rng(1)
    rows = _cell_rows(diffs, 0.0)
    for k in range(1, 20):
        rows += _cell_rows(list(rng.normal(0, 0.02, size=5)), float(k))
    rows += _cell_rows([0.0] * 5, 99.0)                                    # every seed tied
    cells = paired_differences(rows, ["theta_init"])
    first = cells[0]
    assert first["p"] < 0.05 and first["verdict_unadjusted"] == "STL better"
    assert first["q"] > 0.05 and first["verdict"] == "tie"
    tied = cells[-1]
    assert tied["degenerate"] and tied["verdict"] == "tie (every seed tied)" and np.isnan(tied["q"])
    counts = chance_counts(cells)
    assert counts["tested"] == 20 and counts["degenerate"] == 1
    assert counts["expected_per_direction"] == pytest.approx(0.5)
    assert counts["up_p"] == sum(c["p"] < 0.05 and c["mean"] > 0 for c in cells[:-1])


def test_duplicates_across_sweeps_collapse(tmp_path):
    from stlsim.experiment.sweep.report import paired_differences, read_sweeps, write_sweep_report
    from stlsim.experiment.sweep.table import _csv_text

    a = _cell_rows([0.01, 0.02, 0.015], 1.0) + _cell_rows([0.02, 0.01, 0.03], 2.0)
    b = _cell_rows([0.02, 0.01, 0.03], 2.0) + _cell_rows([0.05, 0.04, 0.06], 3.0) \
        + _cell_rows([0.02, 0.01], 2.0, tid_prefix="new", seed0=3)        # the shared cell, two more seeds
    dirs = []
    for name, rows in (("a", a), ("b", b)):
        d = tmp_path / name
        d.mkdir()
        header = list(rows[0])
        (d / "table.csv").write_text(_csv_text(header, rows))
        (d / "sweep.json").write_text(json.dumps({"axes": [["theta_init", [1.0, 2.0]]]}))
        dirs.append(str(d))
    rows, axes, _, duplicates = read_sweeps(dirs)
    assert duplicates == 6 and len(rows) == len(a) + len(b) - 6 and axes == ["theta_init"]
    cells = {c["cell"]["theta_init"]: c for c in paired_differences(rows, axes)}
    assert sorted(cells) == [1.0, 2.0, 3.0]
    assert cells[2.0]["n"] == 5 and cells[2.0]["seeds"] == [0, 1, 2, 3, 4]
    # the same axis value with another option is another cell
    other = _cell_rows([0.01, 0.02], 1.0, tid_prefix="lr", lr=1e-2)
    assert len(paired_differences(rows + other, axes)) == 4
    path = write_sweep_report(dirs, str(tmp_path / "rep"), log=None)
    text = open(path).read()
    assert "6 task(s) found in more than one folder" in text and "q (BH)" in text and "Holm p" in text
    assert "pooled summary" in text


def test_cells_that_differ_off_the_axes_stay_apart_in_a_report(tmp_path):
    """Two sweeps with the same axis values and another fixed option (here lr): four cells, and the
    report names the option, so its table and heat map do not merge or hide them."""
    import csv

    from stlsim.experiment.sweep.report import distinguishing_options, read_sweeps, write_sweep_report
    from stlsim.experiment.sweep.table import _csv_text

    dirs = []
    for name, lr, diffs in (("a", 1e-3, [0.01, 0.02, 0.015]), ("b", 1e-2, [-0.02, -0.01, -0.03])):
        rows = _cell_rows(diffs, 1.0, tid_prefix=name, lr=lr) + _cell_rows(diffs, 2.0, tid_prefix=name, lr=lr)
        d = tmp_path / name
        d.mkdir()
        (d / "table.csv").write_text(_csv_text(list(rows[0]), rows))
        (d / "sweep.json").write_text(json.dumps({"axes": [["theta_init", [1.0, 2.0]]]}))
        dirs.append(str(d))
    rows, axes, _, _ = read_sweeps(dirs)
    assert distinguishing_options(rows, axes) == ["lr"]
    assert distinguishing_options(rows, axes, ignore=("lr",)) == []
    assert distinguishing_options(read_sweeps(dirs[:1])[0], axes) == []
    write_sweep_report(dirs, str(tmp_path / "rep"), log=None)
    with open(tmp_path / "rep" / "cells.csv") as f:
        cells = list(csv.DictReader(f))
    assert len(cells) == 4 and {(c["theta_init"], c["lr"]) for c in cells} == {
        ("1.0", "0.001"), ("2.0", "0.001"), ("1.0", "0.01"), ("2.0", "0.01")}
    assert sorted(float(c["difference"]) > 0 for c in cells) == [False, False, True, True]


def test_heatmap_facets_are_the_combinations_present():
    """A report of several sweeps holds few of the product of its axes' values: one row of panels per
    combination that some cell has, in the axes' order (the full product made huge, empty figures)."""
    from stlsim.plot.sweep import _layout

    axes = ["r", "T", "hidden", "dataset", "surrogate"]
    cells = [{"cell": {"r": r, "T": 8, "hidden": h, "dataset": d, "surrogate": "atan"}}
             for r in (1, 2) for h, d in (("256", "digits"), ("128+128", "fashion"))]
    cells.append({"cell": {"r": 1, "T": 4, "hidden": "256", "dataset": "digits", "surrogate": "rect"}})
    values, x_axis, y_axis, facet_axes, facets = _layout(axes, cells)
    assert (y_axis, x_axis) == ("r", "T") and facet_axes == ["hidden", "dataset", "surrogate"]
    assert facets == [("128+128", "fashion", "atan"), ("256", "digits", "atan"), ("256", "digits", "rect")]


def test_the_ann_baseline_takes_the_same_decay_forms_and_split(small_digits):
    from stlsim.train.ann import train_ann

    netcfg = NetConfig(hidden=[16], population=2, dtype="float64")

    def run(**kw):
        config = TrainConfig(mode="sl", epochs=2, batch_size=30, seed=0, **kw).validate()
        history, params, _, _ = train_ann(small_digits, netcfg, config)
        return history, params

    hist, _ = run(val_fraction=0.25)
    assert len(hist["val_accuracy"]) == 2 and "val_accuracy" not in run()[0]
    _, p_none = run(weight_decay=1e-2, weight_decay_mode="none")
    _, p_zero = run(weight_decay=0.0)
    _, p_dec = run(weight_decay=1e-2, weight_decay_mode="decoupled")
    assert all(np.array_equal(p_none[k], p_zero[k]) for k in p_zero)
    assert not all(np.array_equal(p_dec[k], p_zero[k]) for k in p_zero)
