"""Recurrent and adaptive networks through the applications: the run options, the sequence and
SHD data sets, records and resume, and the adaptive-threshold analysis (docs/recurrent.md)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import stlsim
from stlsim.experiment.spec import LATER_OPTIONS, OPTIONS, RunSpec, dataset_defaults
from stlsim.train import NetConfig, TrainConfig, build_network, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEW = {"recurrent": "none", "adaptation": False, "adapt_beta": 0.09, "adapt_rho": 0.95,
       "learn_adapt_beta": False, "learn_adapt_rho": False}


# ------------------------------------------------------------------------------ options --
def test_new_options_are_rows_later_options_and_netconfig_fields():
    for name, default in NEW.items():
        assert name in OPTIONS and OPTIONS[name].target == "net" and OPTIONS[name].help
        assert LATER_OPTIONS[name] == default
        assert getattr(NetConfig(), name) == default
    assert RunSpec.from_options({}).options() | NEW == RunSpec.from_options({}).options()   # digits: as before


def test_new_options_leave_old_task_ids_alone():
    from stlsim.experiment.sweep.grid import expand, parse_grid_text, task_id

    base = RunSpec.from_options({}).options()
    old = {k: v for k, v in base.items() if k not in NEW}          # a task of before these options
    assert task_id(base, "stl", 0) == task_id(old, "stl", 0)
    assert task_id({**base, "recurrent": "all"}, "stl", 0) != task_id(base, "stl", 0)
    tasks = expand(parse_grid_text("recurrent=none,all,one adaptation=off,on"),
                   {n: o.default for n, o in OPTIONS.items()}, [0], ["stl"])
    assert len({t.id for t in tasks}) == 6
    assert [(t.option_dict["recurrent"], t.option_dict["adaptation"]) for t in tasks][:2] == [
        ("none", False), ("none", True)]


@pytest.mark.parametrize("options, match", [
    ({"recurrent": "full"}, "recurrent"),
    ({"adapt_rho": 1.5}, "adapt_rho"),
    ({"adapt_beta": -1.0}, "adapt_beta"),
    ({"adapt_beta": 2.0}, "adaptation"),                    # set, but the adaptation is off
    ({"learn_adapt_rho": True, "adaptation": False}, "adaptation"),
    ({"adaptation": "maybe"}, "adaptation"),
    ({"arch": "vgg11", "recurrent": "all"}, "arch"),
    ({"hidden": [], "recurrent": "all"}, "hidden"),
])
def test_bad_values_are_clear_errors(options, match):
    with pytest.raises((ValueError, TypeError), match=match):
        RunSpec.from_options(options)


def test_flags_and_grid_text_parse_on_and_off():
    from stlsim.experiment.spec import option

    assert option("--adaptation").parse("on") is True and option("adaptation").parse("off") is False
    with pytest.raises(ValueError, match="adapt_rho"):
        option("adapt_rho").parse("1.2", where="option 'adapt_rho'")


def test_network_from_options_recurrent_hidden_adaptive_hidden_only():
    spec = RunSpec.from_options({"hidden": [6, 5], "recurrent": "one", "adaptation": True, "adapt_beta": 0.5,
                                 "adapt_rho": 0.9, "learn_adapt_beta": True, "learn_adapt_rho": True})
    net = build_network(spec.net, (4,), 3, seed=0)
    assert [layer.recurrent for layer in net.layers] == ["one", "one", None]
    assert [n.adaptive for n in net.neurons] == [True, True, False]
    assert net.neurons[0].adaptation == stlsim.Adaptation(beta=0.5, rho=0.9, learn_beta=True, learn_rho=True)
    assert {"0.adapt_beta", "0.adapt_rho", "1.adapt_beta", "1.adapt_rho"} <= set(net.param_groups()["threshold"])
    assert "0.recurrent" in net.param_groups()["synaptic"]


# ------------------------------------------------------------------------------- data --
def _write_shd(folder, n=6, seed=1):
    from stlsim.data import make_unit_events, write_shd

    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        events = [make_unit_events(np.sort(rng.integers(0, 1_300_000, 80)), rng.integers(0, 700, 80))
                  for _ in range(n)]
        write_shd(os.path.join(folder, f"shd_{split}.h5"), events, np.arange(n) % 20)


def test_shd_trains_the_standard_recurrent_adaptive_network(tmp_path):
    defaults = dataset_defaults(f"shd:{tmp_path}")
    assert (defaults["hidden"], defaults["recurrent"], defaults["adaptation"], defaults["population"]) == (
        [128], "all", True, 1)
    _write_shd(str(tmp_path))
    spec = RunSpec.from_options({"dataset": f"shd:{tmp_path}", "epochs": 1, "timesteps": 12, "batch_size": 3})
    data, netcfg, config = spec.load()
    assert config.encoding == "frames" and data.x_train.shape == (6, 12, 700)
    net = build_network(netcfg, data.sample_shape, data.n_classes, seed=0)
    assert [(layer.in_features, layer.out_features, layer.recurrent) for layer in net.layers] == [(700, 128, "all"),
                                                                                     (128, 20, None)]
    assert net.neurons[0].adaptation == stlsim.Adaptation(beta=0.09, rho=0.95) and not net.neurons[1].adaptive
    result = train(net, data, config, progress=False, netcfg=netcfg)
    assert len(result.history["test_accuracy"]) == 1


def test_mnist1d_seq_is_one_value_per_step_and_cached(tmp_path):
    pytest.importorskip("mnist1d")
    from stlsim.data.sequence import load_mnist1d_seq

    data = load_mnist1d_seq(tmp_path)
    assert data.x_train.shape == (4000, 40, 1) and data.x_test.shape == (1000, 40, 1)
    assert data.timesteps == 40 and data.sample_shape == (1,) and data.n_classes == 10
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert os.path.isfile(tmp_path / "mnist1d_seq.npz")
    again = load_mnist1d_seq(tmp_path)                       # from the cache, the same samples
    np.testing.assert_array_equal(again.x_test, data.x_test)
    from mnist1d.data import get_dataset_args, make_dataset

    raw = make_dataset(get_dataset_args())["x"][0]          # the sample's values, in order, one per step
    np.testing.assert_allclose(np.corrcoef(raw, data.x_train[0, :, 0])[0, 1], 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="timesteps"):
        load_mnist1d_seq(tmp_path, timesteps=20)
    spec = RunSpec.from_options({"dataset": f"mnist1d-seq:{tmp_path}", "train_subset": 30, "test_subset": 20})
    data, netcfg, config = spec.load()
    assert config.encoding == "frames" and config.timesteps == 40 and netcfg.recurrent == "all"
    assert build_network(netcfg, data.sample_shape, 10, 0).layers[0].in_features == 1


# ---------------------------------------------------------------------- records, resume --
def _small_seq(seed=0, n=40):
    rng = np.random.default_rng(seed)
    from stlsim.data import Dataset

    x = rng.random((n, 10, 3)).astype(np.float32)
    y = np.arange(n) % 4
    return Dataset(x, y, x[:12], y[:12], name="toy-seq", n_classes=4, input_shape=(10, 3), timesteps=10)


def _run(tmp_path, name, epochs, resume=None, **net):
    net = {"adapt_beta": 0.4, "adapt_rho": 0.9, **net}
    netcfg = NetConfig(hidden=[8], population=2, recurrent="all", adaptation=True, learn_adapt_beta=True,
                       learn_adapt_rho=True, dtype="float64", **net)
    config = TrainConfig(mode="stl", epochs=epochs, batch_size=10, timesteps=10, encoding="frames", lr=1e-2,
                         seed=3).validate()
    data = _small_seq()
    built = build_network(netcfg, data.sample_shape, data.n_classes, seed=3)
    path = str(tmp_path / f"{name}.h5")
    train(built, data, config, record_path=path, resume=resume, progress=False, netcfg=netcfg)
    return built, path


def test_records_keep_the_settings_and_resume_reproduces(tmp_path):
    from stlsim.train.records import load_record

    straight, _ = _run(tmp_path, "straight", 2)
    _, first = _run(tmp_path, "first", 1)
    rec = load_record(first)
    assert {k: rec["network"][k] for k in NEW} == {"recurrent": "all", "adaptation": True, "adapt_beta": 0.4,
                                                    "adapt_rho": 0.9, "learn_adapt_beta": True,
                                                    "learn_adapt_rho": True}
    assert {"0.recurrent", "0.adapt_beta", "0.adapt_rho"} <= set(rec["params"])
    assert not np.allclose(rec["params"]["0.adapt_beta"], 0.4)      # trained (STL: a threshold parameter)
    resumed, _ = _run(tmp_path, "resumed", 2, resume=first)
    for key in straight.params:
        np.testing.assert_array_equal(resumed.params[key], straight.params[key], err_msg=key)
    with pytest.raises(ValueError, match="adapt_rho"):
        _run(tmp_path, "other", 2, resume=first, adapt_rho=0.8)


def test_sl_keeps_the_adaptation_fixed(tmp_path):
    netcfg = NetConfig(hidden=[8], population=2, recurrent="one", adaptation=True, adapt_beta=0.4,
                       learn_adapt_beta=True, dtype="float64")
    data = _small_seq()
    net = build_network(netcfg, data.sample_shape, data.n_classes, seed=1)
    config = TrainConfig(mode="sl", epochs=1, batch_size=10, timesteps=10, encoding="frames", lr=1e-2).validate()
    train(net, data, config, progress=False, netcfg=netcfg)
    np.testing.assert_array_equal(net.params["0.adapt_beta"], 0.4)
    assert not np.allclose(net.params["0.recurrent"], build_network(netcfg, (3,), 4, seed=1).params["0.recurrent"])


# ------------------------------------------------------------- threshold dynamics --
def test_threshold_dynamics_follows_the_adaptation_state(tmp_path):
    from stlsim.analysis import threshold_dynamics
    from stlsim.plot.analysis import threshold_dynamics as plot_dynamics

    neuron = stlsim.LIF(tau=0.8, theta_init=0.3, adaptation=stlsim.Adaptation(beta=0.7, rho=0.8, learn_beta=True))
    net = stlsim.Network([stlsim.Dense(3, 6, recurrent="all", init_gain=3.0), stlsim.Dense(6, 4)],
                         neuron=[neuron, stlsim.LIF()], seed=2, dtype=np.float64)
    net.params["0.adapt_beta"][:] = np.linspace(0.2, 1.2, 6)
    x = np.random.default_rng(0).random((15, 2, 3))
    d = threshold_dynamics(net, x, sample=1, neurons=[0, 5])
    spikes = np.asarray(net.forward(x).spikes[0])[:, 1]
    a = np.zeros(6)
    for t in range(15):                                            # (L3v), (L5a) by hand
        np.testing.assert_allclose(d["theta_eff"][t], (net.params["0.theta"] + net.params["0.adapt_beta"] * a)[[0, 5]])
        a = 0.8 * a + spikes[t]
    assert d["spikes"].sum() > 0 and d["layer"] == 0
    assert np.all(np.diff(d["theta_eff"], axis=0)[d["spikes"][:-1] > 0.5] > 0)   # a spike raises the next step's
    picked = threshold_dynamics(net, x, n_neurons=3)
    assert len(picked["neurons"]) == 3
    path = plot_dynamics({"stl": d, "sl": picked}, tmp_path / "dyn.png")
    assert os.path.getsize(path) > 1000
    with pytest.raises(ValueError, match="adaptive"):
        threshold_dynamics(stlsim.Network([stlsim.Dense(3, 4)]), x)


def test_report_of_an_adaptive_run_shows_the_threshold_dynamics(tmp_path):
    pytest.importorskip("mnist1d")
    env = {**os.environ, "PYTHONPATH": ROOT, "STLSIM_DATA_CACHE": str(tmp_path / "cache")}
    out = str(tmp_path / "run")
    args = ["--dataset", "mnist1d-seq", "--train-subset", "60", "--test-subset", "20", "--epochs", "1",
            "--hidden", "12", "--adaptation", "on", "--learn-adapt-beta", "true", "--seeds", "1",
            "--modes", "stl,sl", "--batch-size", "20", "--scheduler", "serial", "--out", out]
    run = subprocess.run([sys.executable, "-m", "stlsim", "compare", *args], capture_output=True, text=True,
                         env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    with open(os.path.join(out, "results.json")) as f:
        net = json.load(f)["config"]["network"]
    assert (net["recurrent"], net["adaptation"], net["learn_adapt_beta"]) == ("all", True, True)
    rep = subprocess.run([sys.executable, "-m", "stlsim", "report", out, "--no-noise", "--no-energy",
                          "--no-decisions", "--max-test", "20"], capture_output=True, text=True, env=env,
                         timeout=600)
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert os.path.getsize(os.path.join(out, "report_theta_dynamics.png")) > 1000
    with open(os.path.join(out, "report.md")) as f:
        text = f.read()
    assert "report_theta_dynamics.png" in text
    assert "recurrent hidden layers (all), adaptive thresholds (beta 0.09, rho 0.95, beta trained)" in text


def test_netconfig_round_trips_through_json():
    cfg = NetConfig(recurrent="one", adaptation=True, adapt_beta=0.3, learn_adapt_rho=True).validate()
    again = NetConfig(**json.loads(json.dumps(dataclasses.asdict(cfg)))).validate()
    assert again == cfg


def test_docs_page_code_runs(tmp_path, monkeypatch):
    """The Python blocks of docs/recurrent.md run, in order, in one namespace."""
    import re

    text = open(os.path.join(ROOT, "docs", "recurrent.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, "recurrent.md", "exec"), namespace)  # noqa: S102 - running the page is the test
    assert namespace["worst"] <= 1e-6


def test_a_rerun_of_a_frame_data_sweep_skips_its_finished_tasks(tmp_path):
    """A frame data set's record says encoding 'frames' where its task says the option's value:
    the record is still the task's own run, so a rerun (or a widened grid) keeps it."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    args = [sys.executable, "-m", "stlsim", "sweep", "--dataset", "saccade-digits", "--train-subset", "30",
            "--test-subset", "10", "--epochs", "1", "--hidden", "6", "--recurrent", "one", "--seeds", "1",
            "--modes", "stl", "--scheduler", "serial", "--out", str(tmp_path / "s")]
    first = subprocess.run([*args, "--grid", "lr=1e-3"], capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    again = subprocess.run([*args, "--grid", "lr=1e-3,1e-2", "--force"], capture_output=True, text=True, env=env,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2/2 tasks ok, 0 failed, 0 not run, 1 skipped" in again.stdout + again.stderr
    assert "rejected" not in again.stdout + again.stderr
