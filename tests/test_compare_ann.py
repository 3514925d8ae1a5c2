"""`stlsim compare` with the ANN baseline (mode "ann"), its default of every usable core, and
the worker path: serial equals workers bit for bit, Ctrl-C on workers, the fallback without Dask."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import stlsim
import stlsim.experiment.compare
import stlsim.experiment.executor
from stlsim.cli import main as cli_main
from stlsim.experiment.compare import format_table, run_comparison
from stlsim.data import load_digits
from stlsim.train import NetConfig, TrainConfig
from stlsim.train.records import load_record

SPIKING_FIELDS = ("firing_rate_per_layer", "theta_mean_per_layer", "theta_std_per_layer")
QUIET = dict(progress=False, log=None)


@pytest.fixture(scope="module")
def tiny():
    data = load_digits().subset(60, 30)
    netcfg = NetConfig(hidden=[16], population=2, theta_init=1.0, init_gain=4.0, dtype="float64")
    config = TrainConfig(epochs=2, timesteps=3, batch_size=30, backend="numpy")
    return data, netcfg, config


@pytest.fixture(scope="module")
def with_ann(tiny, tmp_path_factory):
    """A serial compare of STL and the ANN, 2 seeds, with its figures: (results, folder)."""
    data, netcfg, config = tiny
    out = str(tmp_path_factory.mktemp("with_ann"))
    results = run_comparison(data, netcfg, config, modes=("stl", "ann"), seeds=(0, 1), out_dir=out, **QUIET)
    return results, out


def _same_runs(a, b, modes):
    """The summaries and histories of two compare results agree, except for wall times."""
    for mode in modes:
        x, y = a["modes"][mode], b["modes"][mode]
        assert set(x) == set(y), mode
        for key in x:
            if key == "history_per_seed":
                for hx, hy in zip(x[key], y[key]):
                    assert {k: v for k, v in hx.items() if k != "epoch_time"} == \
                        {k: v for k, v in hy.items() if k != "epoch_time"}, mode
            elif key != "wall_time_s_per_seed":
                assert x[key] == y[key], (mode, key)


def _params(folder, name):
    return load_record(os.path.join(folder, name))["params"]


# ------------------------------------------------------------------------- the ANN mode --
def test_ann_runs_are_summarised_recorded_and_tabled(with_ann, tiny):
    results, out = with_ann
    ann, stl = results["modes"]["ann"], results["modes"]["stl"]
    assert ann["seeds"] == [0, 1] and len(ann["history_per_seed"]) == 2
    assert np.isclose(ann["test_accuracy_mean"], np.mean(ann["test_accuracy_per_seed"]))
    assert ann["test_accuracy_per_seed"] == [h["test_accuracy"][-1] for h in ann["history_per_seed"]]
    assert not any(field in ann for field in SPIKING_FIELDS)       # an ANN has no spikes, no thresholds
    assert all(field in stl for field in SPIKING_FIELDS)
    for seed in (0, 1):
        rec = load_record(os.path.join(out, f"ann_seed{seed}.h5"))
        assert rec["attrs"]["mode"] == "ann" and int(rec["attrs"]["seed"]) == seed
        assert list(rec["history"]["test_accuracy"]) == ann["history_per_seed"][seed]["test_accuracy"]
        assert {k for k in rec["params"]} == {"0.weight", "1.weight"}          # 64-16-20, no thresholds
    on_disk = json.loads(open(os.path.join(out, "results.json")).read())
    assert set(on_disk["modes"]) == {"stl", "ann"} and on_disk["config"]["modes"] == ["stl", "ann"]
    table = format_table(results).splitlines()
    ann_row = next(row for row in table if row.startswith("ANN"))
    assert f"{ann['test_accuracy_mean']:.4f}" in ann_row and "- (ReLU)" in ann_row
    # the spiking figures leave the ANN out; the curves carry it
    assert set(results["figures"]) == {"curves", "firing_rates", "thresholds", "raster"}
    for name in results["figures"].values():
        assert os.path.getsize(os.path.join(out, name)) > 1000


def test_the_ann_run_is_the_sweeps_baseline(with_ann, tiny):
    """compare trains exactly ``stlsim.train.ann.train_ann`` with the run's config and seed."""
    import dataclasses

    from stlsim.train.ann import train_ann

    data, netcfg, config = tiny
    results, out = with_ann
    history, params, sizes, _ = train_ann(data, netcfg, dataclasses.replace(config, seed=1))
    assert sizes == [64, 16, 20]
    assert results["modes"]["ann"]["history_per_seed"][1]["test_accuracy"] == history["test_accuracy"]
    recorded = _params(out, "ann_seed1.h5")
    assert all(np.array_equal(recorded[k], params[k]) for k in params)


def test_only_the_ann_draws_only_the_curves(tiny, tmp_path):
    data, netcfg, config = tiny
    results = run_comparison(data, netcfg, config, modes=("ann",), seeds=(0,), out_dir=str(tmp_path), **QUIET)
    assert list(results["modes"]) == ["ann"] and list(results["figures"]) == ["curves"]
    assert "ANN" in format_table(results)


def test_ann_needs_a_dense_network(tiny, tmp_path):
    data, netcfg, config = tiny
    conv = NetConfig(arch="conv-small", population=2, dtype="float64")
    with pytest.raises(ValueError, match="conv-small") as err:
        run_comparison(data, conv, config, modes=("sl", "ann"), seeds=(0,), out_dir=str(tmp_path / "c"), **QUIET)
    assert "mlp" in str(err.value)
    assert not (tmp_path / "c").exists()                          # refused before anything is written
    with pytest.raises(ValueError, match="'xl'"):
        run_comparison(data, netcfg, config, modes=("stl", "xl"), out_dir=str(tmp_path / "x"), **QUIET)


def test_cli_names_the_allowed_modes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for modes, problem in (("stl,xx", "unknown mode 'xx'"), ("stl,stl", "twice"), ("", "unknown mode ''")):
        with pytest.raises(SystemExit) as exc:
            cli_main(["compare", "--modes", modes, "--epochs", "1"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "stl, sl, tl, ann" in err and problem in err, err
    rc = cli_main(["compare", "--modes", "sl,ann", "--arch", "conv-small", "--epochs", "1", "--seeds", "1",
                   "--train-subset", "20", "--test-subset", "10", "--quiet", "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 2 and "conv-small" in err and err.startswith("stlsim compare: error:"), err
    with pytest.raises(SystemExit):
        cli_main(["compare", "--help"])
    assert "ann (the ReLU network" in capsys.readouterr().out


def test_report_skips_the_ann_where_it_measures_spikes(with_ann, tmp_path):
    from stlsim.experiment.report import ANN_NOTE, write_report

    _, run = with_ann
    lines = []
    path = write_report(run, str(tmp_path), max_test=20, energy_batch=20, noise_kinds=("gaussian",),
                        noise_levels={"gaussian": (0.0, 0.2)}, log=lines.append)
    text = open(path).read()
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    assert set(analysis["accuracy"]) == {"stl", "ann"}                  # the ANN is in the accuracy table
    assert "| ANN |" in text
    for section in ("rates", "thresholds", "energy", "decisions"):
        assert set(analysis[section]) == {"stl"}, section
    assert all(set(curve["modes"]) == {"stl"} for curve in analysis["noise"].values())
    assert ANN_NOTE in text and any(ANN_NOTE in line for line in lines)


# ------------------------------------------------------------------------- the workers --
def test_workers_equal_serial_with_the_ann(tiny, with_ann, tmp_path):
    pytest.importorskip("distributed")
    data, netcfg, config = tiny
    serial, serial_dir = with_ann
    lines = []
    parallel = run_comparison(data, netcfg, config, modes=("stl", "ann"), seeds=(0, 1), out_dir=str(tmp_path),
                              max_workers=2, plots=False, log=lines.append)
    _same_runs(serial, parallel, ("stl", "ann"))
    for name in ("stl_seed0.h5", "stl_seed1.h5", "ann_seed0.h5", "ann_seed1.h5"):
        a, b = _params(serial_dir, name), _params(str(tmp_path), name)
        assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a), name
    finished = [line for line in lines if line.startswith("[")]        # one line per finished run
    assert len(finished) == 4 and all("test acc" in line for line in finished)
    assert {line.split("] ")[1].split(":")[0] for line in finished} == \
        {"STL seed 0", "STL seed 1", "ANN seed 0", "ANN seed 1"}


def test_without_dask_the_runs_train_here_with_one_line(tiny, with_ann, tmp_path, monkeypatch):
    data, netcfg, config = tiny
    monkeypatch.setattr(stlsim.experiment.executor, "dask_available", lambda: False)
    lines = []
    results = run_comparison(data, netcfg, config, modes=("stl", "ann"), seeds=(0, 1), out_dir=str(tmp_path),
                             max_workers=2, plots=False, progress=False, log=lines.append)
    assert len(lines) == 1 and 'pip install "stlsim[sweep]"' in lines[0]
    _same_runs(with_ann[0], results, ("stl", "ann"))


def _fake_comparison(calls):
    def fake(data, netcfg, config, **kwargs):
        calls.append(kwargs)
        return {"modes": {}, "figures": {}, "interrupted": False}
    return fake


def test_cli_default_is_every_usable_core_at_most_one_per_run(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(stlsim.experiment.compare, "run_comparison", _fake_comparison(calls))
    monkeypatch.setattr(stlsim.experiment.executor, "dask_available", lambda: True)
    base = ["compare", "--epochs", "1", "--train-subset", "20", "--test-subset", "10", "--quiet",
            "--out", str(tmp_path / "x")]
    for cores, flags, expected in ((8, [], 6), (4, [], 4), (1, [], 1), (8, ["--max-workers", "1"], 1),
                                   (2, ["--max-workers", "3"], 3), (8, ["--seeds", "1", "--modes", "stl"], 1),
                                   (1, ["--scheduler", "tcp://127.0.0.1:1"], 6)):
        monkeypatch.setattr(stlsim.experiment.executor, "usable_cores", lambda cores=cores: cores)
        assert cli_main(base + ["--seeds", "2"] + flags) == 0
        assert calls[-1]["max_workers"] == expected, (cores, flags)
    assert "6 runs on 6 worker processes" in capsys.readouterr().out
    # without dask.distributed: one line, then the serial path
    monkeypatch.setattr(stlsim.experiment.executor, "dask_available", lambda: False)
    monkeypatch.setattr(stlsim.experiment.executor, "usable_cores", lambda: 2)
    assert cli_main(base + ["--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert calls[-1]["max_workers"] == 1
    assert [line for line in out.splitlines() if "dask.distributed" in line] == [
        'stlsim compare: dask.distributed is not installed, so the runs train one after the other on one core '
        '(pip install "stlsim[sweep]" to train them on every core)']


def test_usable_cores_follows_the_affinity(monkeypatch):
    assert 1 <= stlsim.experiment.executor.usable_cores() <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert stlsim.experiment.executor.usable_cores() == len(os.sched_getaffinity(0))
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert stlsim.experiment.executor.usable_cores() == max(1, os.cpu_count() or 1)


def test_ctrl_c_on_workers_keeps_the_finished_epochs(tmp_path):
    """SIGINT to the whole process group (a terminal's Ctrl-C): the workers ignore it, the
    compare process stops them after their batch; results.json holds what they finished."""
    pytest.importorskip("distributed")
    out = tmp_path / "cmp"
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(stlsim.__file__))))
    argv = [sys.executable, "-m", "stlsim", "compare", "--train-subset", "60", "--test-subset", "20",
            "--epochs", "400", "--hidden", "8", "-T", "2", "-P", "1", "--dtype", "float64", "--backend", "numpy",
            "--seeds", "2", "--modes", "stl,sl", "--max-workers", "2", "--out", str(out)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        t0 = time.monotonic()
        while not list(out.glob("*_seed*.h5")) and proc.poll() is None and time.monotonic() - t0 < 300:
            time.sleep(0.05)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert "Traceback" not in stderr and "error" not in stderr.lower(), stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["modes"], stderr[-2000:]
    if proc.returncode == 0:                         # every run had finished before the signal
        assert not results["interrupted"]
        pytest.skip("the runs finished before the signal arrived")
    assert proc.returncode == 130 and results["interrupted"], (proc.returncode, stderr[-2000:])
    assert "stopping after this batch" in stderr
    summarised = 0
    for mode, summary in results["modes"].items():
        for seed, history in zip(summary["seeds"], summary["history_per_seed"]):
            rec = load_record(out / f"{mode}_seed{seed}.h5")        # saved by the worker, complete
            assert list(rec["history"]["epoch"]) == history["epoch"]
            assert rec["checkpoint"]["epoch"] == len(history["epoch"])
            assert bool(rec["attrs"]["interrupted"]) == (len(history["epoch"]) < 400)
            summarised += 1
    # one progress line per run that came back; a run stopped before its first epoch ends ("no epoch
    # finished") has nothing to summarise (on a loaded machine the second worker can be that slow)
    finished = [line for line in stdout.splitlines() if line.startswith("[")]
    assert summarised == sum("no epoch finished" not in line for line in finished), stdout
    assert summarised < 4 or any(s["interrupted"] for s in results["modes"].values())
    assert not list(out.glob(".*.tmp")) and not (out / ".stlsim.lock").exists()
