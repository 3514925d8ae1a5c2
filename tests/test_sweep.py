"""Sweeps: grid parsing, task ids, the runner (serial and Dask), resume, failures, the report;
and the weight/threshold scaling symmetry of dense nets without BatchNorm."""
import csv
import os
import sys

import numpy as np
import pytest

import stlsim
from stlsim import cli
from stlsim.experiment.spec import RunSpec
from stlsim.experiment.sweep import expand, make_grid, parse_grid_text, run_sweep, run_task, task_id
from stlsim.experiment.sweep.grid import load_grid_file, preflight, resolve_options, train_options
from stlsim.train import NetConfig, build_network

# Tiny tasks: 60 training and 30 test digits, one hidden layer of 16, one epoch.
TINY = {"hidden": [16], "epochs": 1, "timesteps": 3, "population": 2, "train_subset": 60, "test_subset": 30,
        "batch_size": 30, "dtype": "float64", "backend": "numpy"}
# Columns that depend on the machine or the scheduler, not on the run.
VOLATILE = ("wall_time_s", "train_wall_time_s", "worker")


def base_options(**overrides):
    opts = {name: option.default for name, option in train_options().items()}
    opts.update(TINY)
    opts.update(overrides)
    return opts


def tiny_tasks(text="theta_init=1,2", seeds=(0,), modes=("stl", "sl"), **overrides):
    return expand(parse_grid_text(text), base_options(**overrides), list(seeds), list(modes))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def stable(rows):
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]


def record_params(out, row):
    from stlsim.train.records import load_record

    return load_record(os.path.join(out, row["record"]))["params"]


# ------------------------------------------------------------------------------ grids --
def test_grid_text_is_typed_like_stlsim_train():
    spec = parse_grid_text("theta-init=1,2 init_gain=0.5,4 hidden=32,16+16 surrogate=atan,rectangular T=2")
    assert spec.axes["theta_init"] == [1.0, 2.0] and all(isinstance(v, float) for v in spec.axes["theta_init"])
    assert spec.axes["hidden"] == [[32], [16, 16]]
    assert spec.axes["surrogate"] == ["atan", "rectangular"]
    assert spec.axes["timesteps"] == [2]       # argparse's dest of -T/--timesteps


def test_grid_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('seeds = 2\nmodes = ["stl", "sl"]\n[fixed]\nepochs = 1\n'
                    '[grid]\ntheta_init = [1, 2]\ngain_ratio = [1, 4]\nhidden = [16, [8, 8]]\n')
    spec = load_grid_file(str(path))
    assert spec.seeds == [0, 1] and spec.modes == ["stl", "sl"] and spec.fixed == {"epochs": 1}
    assert spec.axes["hidden"] == [[16], [8, 8]]
    tasks = expand(spec, base_options(), spec.seeds, spec.modes)
    assert len(tasks) == 2 * 2 * 2 * 2 * 2
    gains = {(t.option_dict["theta_init"], dict(t.cell)["gain_ratio"]): t.option_dict["init_gain"] for t in tasks}
    assert gains[(2.0, 4.0)] == 8.0 and gains[(1.0, 1.0)] == 1.0


@pytest.mark.parametrize("text, exc, words", [
    ("theta_int=1,2", ValueError, ["theta_int", "did you mean 'theta_init'"]),
    ("theta_init=", ValueError, ["non-empty list"]),
    ("theta_init=1,abc", TypeError, ["a real number", "'abc'"]),
    ("epochs=1.5", TypeError, ["an integer"]),
    ("reset=hard,sideways", ValueError, ["'sideways'", "'soft'"]),
    ("seed=1,2", ValueError, ["--seeds"]),
    ("hidden=16,8+x", TypeError, ["layer sizes"]),
    ("gain_ratio=1,2 init_gain=1,2", ValueError, ["gain_ratio", "init_gain"]),
    ("theta_init", ValueError, ["NAME=V1,V2"]),
    ("quiet=1", ValueError, ["quiet"]),
])
def test_bad_grid_text_is_a_clear_error(text, exc, words):
    with pytest.raises(exc) as info:
        parse_grid_text(text)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("grid, exc, words", [
    ({"theta_init": []}, ValueError, ["non-empty list"]),
    ({"theta_init": 1.0}, TypeError, ["a list of values"]),
    ({"theta_init": ["1"]}, TypeError, ["a real number", "str"]),
    ({"epochs": [True]}, TypeError, ["an integer"]),
    ({"init_gain": [1, 1]}, ValueError, ["repeated"]),
    ({"hidden": [[]]}, TypeError, ["non-empty list of integers"]),
])
def test_bad_grid_values_are_clear_errors(grid, exc, words):
    with pytest.raises(exc) as info:
        make_grid(grid)
    for word in words:
        assert word in str(info.value)


def test_bad_grid_on_the_command_line(tmp_path, capsys):
    code = cli.main(["sweep", "--grid", "theta_init=1,2 init_gian=1", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "init_gian" in err and "init_gain" in err
    bad = tmp_path / "g.toml"
    bad.write_text("[grid]\ntheta_init = []\n")
    assert cli.main(["sweep", "--grid-file", str(bad)]) == 2
    assert "non-empty list" in capsys.readouterr().err
    assert cli.main(["sweep", "--grid", "theta_init=1", "--theta-init", "2"]) == 2
    assert "either fixed" in capsys.readouterr().err
    assert cli.main(["sweep", "--grid", "timesteps=0,2", "--dry-run"]) == 2      # checked before any run
    assert "timesteps" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_task_ids_follow_the_resolved_configuration():
    spec_ratio = parse_grid_text("gain_ratio=4")
    spec_gain = parse_grid_text("init_gain=4")
    (a,) = expand(spec_ratio, base_options(theta_init=1.0), [0], ["stl"])
    (b,) = expand(spec_gain, base_options(theta_init=1.0), [0], ["stl"])
    assert a.id == b.id                          # the same run, however the grid spelled it
    opts = resolve_options(base_options())
    assert task_id(opts, "stl", 0) != task_id(opts, "sl", 0) != task_id(opts, "stl", 1)
    assert task_id({**opts, "lr": 2e-3}, "stl", 0) != task_id(opts, "stl", 0)
    preflight([a])


# ----------------------------------------------------------------------------- runner --
@pytest.fixture(scope="module")
def serial_sweep(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("serial"))
    tasks = tiny_tasks()
    summary = run_sweep(tasks, out, scheduler="serial", log=None)
    assert summary["ok"] == len(tasks) == 4
    return out, tasks


def test_task_equals_stlsim_train(serial_sweep, tmp_path):
    """A task is `stlsim train` with the same options: the same final parameters, bit for bit."""
    out, tasks = serial_sweep
    task = tasks[0]
    opts = task.option_dict
    argv = ["train", "--mode", task.mode, "--seed", str(task.seed), "--out", str(tmp_path), "--quiet",
            "--hidden", "16", "--epochs", "1", "-T", "3", "-P", "2", "--train-subset", "60", "--test-subset", "30",
            "--batch-size", "30", "--dtype", "float64", "--backend", "numpy", "--theta-init", str(opts["theta_init"])]
    assert cli.main(argv) == 0
    from stlsim.train.records import load_record

    mine = load_record(os.path.join(out, "records", f"{task.id}.h5"))["params"]
    theirs = load_record(os.path.join(str(tmp_path), f"{task.mode}_seed{task.seed}.h5"))["params"]
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert np.array_equal(mine[key], theirs[key]), key


def test_table_columns(serial_sweep):
    out, tasks = serial_sweep
    rows = read_csv(os.path.join(out, "table.csv"))
    assert [r["task_id"] for r in rows] == [t.id for t in tasks]
    cols = list(rows[0])
    assert cols[:5] == ["task_id", "status", "theta_init", "seed", "mode"]
    for col in ("final_test_accuracy", "best_test_accuracy", "firing_rate_init_l0", "firing_rate_l1",
                "theta_shift_l0", "sops_per_sample", "wall_time_s", "init_gain", "dataset", "hidden"):
        assert col in cols
    stl = [r for r in rows if r["mode"] == "stl"]
    sl = [r for r in rows if r["mode"] == "sl"]
    assert all(float(r["theta_shift_l0"]) > 0 for r in stl)      # STL moves thresholds
    assert all(float(r["theta_shift_l0"]) == 0 for r in sl)      # SL does not
    assert all(float(r["sops_per_sample"]) > 0 for r in rows)
    history = read_csv(os.path.join(out, "history.csv"))
    assert len(history) == len(rows) and history[0]["epoch"] == "1"
    mode = os.stat(os.path.join(out, "table.csv")).st_mode & 0o777
    assert mode == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _never(task, out_dir):
    raise AssertionError(f"task {task.id} ran again")


def test_rerun_skips_every_finished_task(serial_sweep):
    out, tasks = serial_sweep
    before = open(os.path.join(out, "table.csv")).read()
    summary = run_sweep(tasks, out, scheduler="serial", task_fn=_never, log=None)
    assert summary["skipped"] == len(tasks) and summary["ran"] == 0
    assert open(os.path.join(out, "table.csv")).read() == before


def test_dask_two_workers_equal_serial_bitwise(serial_sweep, tmp_path):
    pytest.importorskip("distributed")
    out_serial, tasks = serial_sweep
    out = str(tmp_path / "dask")
    summary = run_sweep(tasks, out, scheduler="local", max_workers=2, log=None)
    assert summary["workers"] == 2 and summary["ok"] == len(tasks)
    rows_serial = read_csv(os.path.join(out_serial, "table.csv"))
    rows_dask = read_csv(os.path.join(out, "table.csv"))
    assert stable(rows_dask) == stable(rows_serial)
    assert len({r["worker"] for r in rows_dask}) >= 1
    assert open(os.path.join(out, "history.csv")).read() == open(os.path.join(out_serial, "history.csv")).read()
    for a, b in zip(rows_serial, rows_dask):
        pa, pb = record_params(out_serial, a), record_params(out, b)
        for key in pa:
            assert np.array_equal(pa[key], pb[key]), key


def test_a_failing_task_is_recorded_and_the_rest_finish(tmp_path):
    pytest.importorskip("distributed")
    missing = str(tmp_path / "missing.npz")
    tasks = tiny_tasks(f"dataset=digits,{missing}", modes=("stl",))
    out = str(tmp_path / "out")
    summary = run_sweep(tasks, out, scheduler="local", max_workers=2, log=None)
    assert summary["ok"] == 1 and summary["failed"] == 1
    rows = {r["dataset"]: r for r in read_csv(os.path.join(out, "table.csv"))}
    assert rows["digits"]["status"] == "ok" and float(rows["digits"]["final_test_accuracy"]) >= 0
    assert rows[missing]["status"] == "error" and "missing.npz" in rows[missing]["error"]
    # A rerun tries only the failed task again.
    ran = []
    run_sweep(tasks, out, scheduler="serial", task_fn=lambda t, o: ran.append(t.id) or run_task(t, o), log=None)
    assert ran == [tasks[1].id]


def _dies_once(task, out_dir):
    """Kill the worker process the first time a task starts; run it normally the second time."""
    marker = os.path.join(out_dir, f"killed-{task.id}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return run_task(task, out_dir)


def test_a_killed_workers_task_is_retried(serial_sweep, tmp_path):
    pytest.importorskip("distributed")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])    # workers cannot import this file
    out_serial, tasks = serial_sweep
    out = str(tmp_path / "killed")
    summary = run_sweep(tasks[:2], out, scheduler="local", max_workers=2, task_fn=_dies_once, log=None)
    assert summary["ok"] == 2
    assert all(os.path.exists(os.path.join(out, f"killed-{t.id}")) for t in tasks[:2])   # each died once
    rows = stable(read_csv(os.path.join(out, "table.csv")))
    assert rows == stable(read_csv(os.path.join(out_serial, "table.csv")))[:2]


def test_sweep_command_end_to_end(tmp_path, capsys):
    out = str(tmp_path / "cli")
    argv = ["sweep", "--grid", "init_gain=2,4", "--seeds", "2", "--modes", "stl,sl", "--scheduler", "serial",
            "--out", out, "--hidden", "16", "--epochs", "2", "-T", "3", "-P", "2", "--train-subset", "60",
            "--test-subset", "30", "--batch-size", "30", "--backend", "numpy"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "8 task(s)" in text and "8/8 tasks ok" in text
    rows = read_csv(os.path.join(out, "table.csv"))
    assert sorted({r["init_gain"] for r in rows}) == ["2.0", "4.0"] and {r["seed"] for r in rows} == {"0", "1"}
    assert cli.main(argv) == 0 and "8 skipped" in capsys.readouterr().out


# ------------------------------------------------------------ the scaling symmetry --
@pytest.mark.parametrize("dtype, backend", [("float64", "numpy"), ("float32", "numba")])
def test_weight_threshold_scaling_symmetry(dtype, backend):
    """Dense LIF net without BatchNorm: weights and thresholds scaled by the same c > 0 leave
    every spike unchanged (docs/model.md (L1)-(L4)), so theta 1 / init gain 4 and theta 2 /
    gain 8 with one seed give bit-identical spikes and loss; a different ratio does not."""
    if backend == "numba":
        pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    x = (rng.random((6, 20, 64)) < 0.3).astype(dtype)
    y = rng.integers(0, 10, 20)

    def run(theta, gain):
        cfg = NetConfig(hidden=[48, 32], population=2, theta_init=theta, init_gain=gain, dtype=dtype)
        net = build_network(cfg, (64,), 10, seed=3, backend=backend)
        rec = net.forward(x)
        loss, grads = net.loss_and_grad(x, y)
        return net, rec, loss, grads

    net1, rec1, loss1, grads1 = run(1.0, 4.0)
    net2, rec2, loss2, grads2 = run(2.0, 8.0)
    for key in net1.params:
        assert np.array_equal(2 * net1.params[key], net2.params[key]), key      # exact: a power of 2
    assert sum(float(s.sum()) for s in rec1.spikes) > 0
    for s1, s2 in zip(rec1.spikes, rec2.spikes):
        assert np.array_equal(s1, s2)
    assert loss1 == loss2
    # The optimisation is not symmetric: the surrogate's width is absolute, so gradients differ
    # by more than the factor 1/c the parameters' scale would give.
    assert not np.allclose(grads2["0.weight"] * 2, grads1["0.weight"])
    _, rec3, _, _ = run(1.0, 8.0)      # another ratio: other spikes
    assert not all(np.array_equal(a, b) for a, b in zip(rec1.spikes, rec3.spikes))


def test_import_stays_light():
    import subprocess

    code = ("import sys, stlsim, stlsim.experiment.sweep; bad = [m for m in ('distributed', 'dask', 'matplotlib', 'h5py') "
            "if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
    assert stlsim.__version__


# ----------------------------------------------------------------------------- report --
def _rows(diffs, cell_value=1.0):
    rows = []
    for seed, d in enumerate(diffs):
        for mode, acc in (("stl", 0.5 + d), ("sl", 0.5)):
            rows.append({"status": "ok", "theta_init": cell_value, "seed": seed, "mode": mode,
                         "final_test_accuracy": acc, "firing_rate_init_l0": 0.1, "firing_rate_l0": 0.2,
                         "theta_shift_l0": 0.01, "sops_per_sample": 100.0})
    return rows


def test_paired_differences_and_verdicts():
    from stlsim.experiment.sweep.report import claims, paired_differences

    (tie,) = paired_differences(_rows([0.01, 0.02, 0.03]), ["theta_init"])
    assert tie["n"] == 3 and tie["won"] == 3 and tie["mean"] == pytest.approx(0.02)
    half = 4.302652729749464 * 0.01 / np.sqrt(3)          # t_{0.975, 2} s / sqrt(n)
    assert tie["ci_low"] == pytest.approx(0.02 - half) and tie["ci_high"] == pytest.approx(0.02 + half)
    assert tie["verdict"] == "tie" and not tie["significant"]
    (win,) = paired_differences(_rows([0.010, 0.011, 0.012]), ["theta_init"])
    assert win["verdict"] == "STL better" and win["significant"]
    (loss,) = paired_differences(_rows([-0.02, -0.03, -0.025, -0.02]), ["theta_init"])
    assert loss["verdict"] == "SL better" and loss["lost"] == 4
    (one,) = paired_differences(_rows([0.05]), ["theta_init"])
    assert one["verdict"] == "one seed: no interval"
    rows = _rows([0.010, 0.011, 0.012], 1.0) + _rows([-0.02, -0.03, -0.025], 2.0)
    pooled = {c["claim"]: c for c in claims(rows, ["theta_init"])}
    assert pooled["theta_init = 1"]["cells_stl_better"] == 1 and pooled["theta_init = 2"]["cells_sl_better"] == 1
    assert pooled["all cells"]["n"] == 6


def test_sweep_report_command(tmp_path, capsys):
    out = str(tmp_path / "rep")
    argv = ["sweep", "--grid", "theta_init=1,2 T=2,3", "--seeds", "2", "--max-workers", "2", "--out", out,
            "--hidden", "16", "--epochs", "2", "-P", "2", "--train-subset", "60", "--test-subset", "30",
            "--batch-size", "30", "--backend", "numpy", "--quiet"]
    if not _has_distributed():
        argv += ["--scheduler", "serial"]
    assert cli.main(argv) == 0
    assert cli.main(["sweep-report", out]) == 0
    assert "sweep report:" in capsys.readouterr().out
    cells = read_csv(os.path.join(out, "report", "cells.csv"))
    assert [(c["theta_init"], c["timesteps"]) for c in cells] == [("1.0", "2"), ("1.0", "3"), ("2.0", "2"),
                                                                  ("2.0", "3")]
    assert all(c["n_seeds"] == "2" for c in cells)
    text = open(os.path.join(out, "report", "report.md")).read()
    assert "Verdicts per claim" in text and "| theta_init = 2 |" in text and "| timesteps = 3 |" in text
    for fig in ("heatmap.png", "forest.png", "difference_vs_epoch.png"):
        assert os.path.getsize(os.path.join(out, "report", fig)) > 5000
    assert cli.main(["sweep-report", str(tmp_path / "nothing")]) == 2
    early = str(tmp_path / "early")
    assert cli.main(["sweep-report", out, "--epoch", "1", "--out", early, "--quiet"]) == 0
    assert "test accuracy after epoch 1" in open(os.path.join(early, "report.md")).read()
    history = read_csv(os.path.join(out, "history.csv"))
    first = {(h["task_id"]): float(h["test_accuracy"]) for h in history if h["epoch"] == "1"}
    table = read_csv(os.path.join(out, "table.csv"))
    stl = {(r["theta_init"], r["timesteps"], r["seed"]): first[r["task_id"]] for r in table if r["mode"] == "stl"}
    sl = {(r["theta_init"], r["timesteps"], r["seed"]): first[r["task_id"]] for r in table if r["mode"] == "sl"}
    (cell,) = [c for c in read_csv(os.path.join(early, "cells.csv")) if (c["theta_init"], c["timesteps"]) == ("1.0", "2")]
    assert float(cell["difference"]) == pytest.approx(np.mean([stl[("1.0", "2", s)] - sl[("1.0", "2", s)]
                                                                for s in ("0", "1")]))
    assert cli.main(["sweep-report", out, "--epoch", "5"]) == 2            # the runs had 2 epochs


def _has_distributed():
    import importlib.util

    return importlib.util.find_spec("distributed") is not None


def test_an_existing_scheduler_by_address(serial_sweep, tmp_path):
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    out_serial, tasks = serial_sweep
    out = str(tmp_path / "remote")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        summary = run_sweep(tasks[:2], out, scheduler=cluster.scheduler_address, log=None)
    assert summary["ok"] == 2
    assert stable(read_csv(os.path.join(out, "table.csv"))) == stable(read_csv(os.path.join(out_serial,
                                                                                           "table.csv")))[:2]


def test_an_interrupted_task_continues_from_its_checkpoint(tmp_path):
    """A task whose record holds a checkpoint (its worker died after an epoch) resumes from it
    and ends bit-identical to the uninterrupted run."""
    from stlsim.train import build_network, train

    (task,) = tiny_tasks("theta_init=1", modes=("stl",), epochs=3)
    whole = str(tmp_path / "whole")
    run_task(task, whole)
    # The same task stopped after its first epoch: a record with a checkpoint at epoch 1.
    part = str(tmp_path / "part")
    data, netcfg, config = RunSpec.from_options(task.option_dict, mode="stl", seed=task.seed).load()
    import dataclasses

    net = build_network(netcfg, data.sample_shape, data.n_classes, seed=task.seed, backend=config.backend)
    first = train(net, data, dataclasses.replace(config, epochs=1),
                  record_path=os.path.join(part, "records", f"{task.id}.h5"), progress=False, netcfg=netcfg)
    row = run_task(task, part)
    from stlsim.train.records import load_record

    resumed = load_record(os.path.join(part, row["record"]))["history"]["epoch_time"]
    assert resumed[0] == first.history["epoch_time"][0]          # epoch 1 was not trained again
    assert row["status"] == "ok" and row["epochs_done"] == 3
    a = record_params(whole, row)
    b = record_params(part, row)
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def test_compare_on_two_workers_equals_serial(tmp_path):
    pytest.importorskip("distributed")
    from stlsim.experiment.compare import run_comparison
    from stlsim.data import load_digits
    from stlsim.train import TrainConfig

    data = load_digits().subset(60, 30)
    netcfg = NetConfig(hidden=[16], population=2, theta_init=1.0, init_gain=4.0, dtype="float64")
    config = TrainConfig(epochs=2, timesteps=3, batch_size=30, backend="numpy")
    kw = dict(modes=("stl", "sl"), seeds=(0, 1), progress=False, plots=False, log=None)
    serial = run_comparison(data, netcfg, config, out_dir=str(tmp_path / "serial"), **kw)
    parallel = run_comparison(data, netcfg, config, out_dir=str(tmp_path / "dask"), max_workers=2, **kw)
    for mode in ("stl", "sl"):
        a, b = serial["modes"][mode], parallel["modes"][mode]
        for key in ("test_accuracy_per_seed", "firing_rate_per_layer", "theta_mean_per_layer", "seeds"):
            assert a[key] == b[key], (mode, key)
        for ha, hb in zip(a["history_per_seed"], b["history_per_seed"]):
            assert {k: v for k, v in ha.items() if k != "epoch_time"} == \
                {k: v for k, v in hb.items() if k != "epoch_time"}
    for name in ("stl_seed0.h5", "sl_seed1.h5"):
        pa = record_params(str(tmp_path / "serial"), {"record": name})
        pb = record_params(str(tmp_path / "dask"), {"record": name})
        assert all(np.array_equal(pa[k], pb[k]) for k in pa)


# --------------------------------------------------------------------- ANN baseline --
def test_ann_gradient_matches_finite_differences():
    from stlsim.readout import loss_from_rates
    from stlsim.train.ann import _backward, _forward, _init

    rng = np.random.default_rng(1)
    sizes, C, P = [7, 5, 4, 6], 3, 2
    params = _init(sizes, 2.0, 0, np.float64)
    x, y = rng.random((4, 7)), np.array([0, 2, 1, 2])
    for loss in ("mse_rate", "ce_rate"):
        def value(p, loss=loss):
            return loss_from_rates(_forward(p, x, 3, C, P)[0], y, loss)[0]

        rates, acts, sig = _forward(params, x, 3, C, P)
        grads = _backward(params, acts, sig, loss_from_rates(rates, y, loss)[1], 3, P)
        for key, w in params.items():
            numeric = np.zeros_like(w)
            for idx in np.ndindex(w.shape):
                old = w[idx]
                w[idx] = old + 1e-6
                up = value(params)
                w[idx] = old - 1e-6
                down = value(params)
                w[idx] = old
                numeric[idx] = (up - down) / 2e-6
            np.testing.assert_allclose(grads[key], numeric, rtol=1e-5, atol=1e-9)


def test_ann_mode_in_a_sweep_and_the_report_against_it(tmp_path):
    out = str(tmp_path / "ann")
    tasks = tiny_tasks("theta_init=1", seeds=(0, 1), modes=("stl", "ann"), epochs=4, train_subset=300, lr=0.01,
                       test_subset=100, hidden=[32])
    summary = run_sweep(tasks, out, scheduler="serial", log=None)
    assert summary["ok"] == 4
    rows = read_csv(os.path.join(out, "table.csv"))
    ann = [r for r in rows if r["mode"] == "ann"]
    assert all(float(r["final_test_accuracy"]) > 0.3 for r in ann)          # chance is 0.1
    assert all(r["macs_per_sample"] == str(64 * 32 + 32 * 20) and r["firing_rate_l0"] == "" for r in ann)
    from stlsim.experiment.sweep.report import write_sweep_report

    path = write_sweep_report(out, baseline="ann", log=None)
    assert "STL vs ANN" in open(path).read()
    with pytest.raises(ValueError, match="mode"):
        make_grid({"theta_init": [1.0]}, modes=["stl", "relu"])


def test_ctrl_c_keeps_the_finished_tasks(tmp_path):
    tasks = tiny_tasks("theta_init=1,2", modes=("stl",))
    out = str(tmp_path / "int")

    def stop_at_second(task, out_dir):
        if task.id == tasks[1].id:
            raise KeyboardInterrupt
        return run_task(task, out_dir)

    summary = run_sweep(tasks, out, scheduler="serial", task_fn=stop_at_second, log=None)
    assert summary["interrupted"] and summary["ok"] == 1 and summary["not_run"] == 1 and summary["failed"] == 0
    assert [r["status"] for r in read_csv(os.path.join(out, "table.csv"))] == ["ok"]
    summary = run_sweep(tasks, out, scheduler="serial", log=None)
    assert summary["skipped"] == 1 and summary["ran"] == 1 and summary["ok"] == 2


def test_identical_differences_do_not_make_a_zero_width_interval():
    from stlsim.experiment.sweep.report import paired_differences

    rows = _rows([-0.01, -0.01, -0.01])
    (bare,) = paired_differences(rows, ["theta_init"])
    assert bare["ci_low"] == bare["ci_high"] == pytest.approx(-0.01)     # no test-set size known
    for r in rows:
        r["n_test"] = 100                                                  # accuracy steps of 0.01
    (floored,) = paired_differences(rows, ["theta_init"])
    half = 4.302652729749464 * 0.01 / np.sqrt(3)
    assert floored["ci_high"] == pytest.approx(-0.01 + half) and floored["verdict"] == "tie"
