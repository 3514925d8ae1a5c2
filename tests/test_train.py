"""Training: optimizers, learning modes, records, resume, the compare job."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import stlsim
from stlsim.data import load_digits
from stlsim.train import Adam, SGD, NetConfig, TrainConfig, build_network, train, trainable_names
from stlsim.train.records import load_record


@pytest.fixture(scope="module")
def small_digits():
    return load_digits().subset(200, 100)


def tiny_setup(data, mode="stl", epochs=2, seed=0, **kw):
    netcfg = NetConfig(hidden=[32], population=2, theta_init=1.0, init_gain=4.0, dtype="float64")
    net = build_network(netcfg, data.input_shape, data.n_classes, seed=seed, backend="numpy")
    config = TrainConfig(mode=mode, epochs=epochs, timesteps=4, batch_size=50, seed=seed, backend="numpy", **kw)
    return net, netcfg, config


# ---------------------------------------------------------------------- optimizers --
@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_optimizers_match_torch(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(4, 3)), "theta": rng.normal(size=4)}
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    if kind == "adam":
        opt = Adam(params, ["w", "theta"], lr=1e-2, weight_decay=1e-3)
        topt = torch.optim.Adam(tparams.values(), lr=1e-2, weight_decay=1e-3)
    else:
        opt = SGD(params, ["w", "theta"], lr=1e-2, momentum=0.9, weight_decay=1e-3)
        topt = torch.optim.SGD(tparams.values(), lr=1e-2, momentum=0.9, weight_decay=1e-3)
    for _ in range(5):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        opt.step(grads)
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k])
        topt.step()
    for k in params:
        np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), rtol=1e-12, atol=1e-14)


def test_threshold_learning_rate_apart():
    params = {"w": np.ones(2), "theta": np.ones(2)}
    opt = SGD(params, ["w", "theta"], lr=0.1, momentum=0.0, lr_per_param={"theta": 0.01})
    opt.step({"w": np.ones(2), "theta": np.ones(2)})
    np.testing.assert_allclose(params["w"], 0.9)
    np.testing.assert_allclose(params["theta"], 0.99)


# -------------------------------------------------------------------- learning modes --
def test_learning_modes_freeze_what_the_spec_says(small_digits):
    for mode in ("stl", "sl", "tl"):
        net, netcfg, config = tiny_setup(small_digits, mode=mode, epochs=1)
        before = {k: v.copy() for k, v in net.params.items()}
        train(net, small_digits, config, progress=False)
        for key, value in net.params.items():
            changed = not np.array_equal(before[key], value)
            should = key in trainable_names(net, mode)
            assert changed == should, (mode, key)
    assert trainable_names(net, "tl") == ["0.theta", "1.theta"]


# ----------------------------------------------------------------- records, resume --
def test_resume_is_bit_exact(tmp_path, small_digits):
    net_a, netcfg, config = tiny_setup(small_digits, epochs=3)
    train(net_a, small_digits, config, progress=False)

    net_b, _, config_b = tiny_setup(small_digits, epochs=2)
    path = tmp_path / "run.h5"
    train(net_b, small_digits, config_b, record_path=path, progress=False, netcfg=netcfg)
    net_c, _, config_c = tiny_setup(small_digits, epochs=3)
    result = train(net_c, small_digits, config_c, resume=path, progress=False)
    for key in net_a.params:
        np.testing.assert_array_equal(net_a.params[key], net_c.params[key])
    assert result.history["epoch"] == [1, 2, 3]


def test_same_seed_same_run_other_seed_differs(small_digits):
    runs = []
    for seed in (0, 0, 1):
        net, _, config = tiny_setup(small_digits, epochs=1, seed=seed)
        runs.append(train(net, small_digits, config, progress=False).history["train_loss"])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_record_contents_and_provenance(tmp_path, small_digits):
    net, netcfg, config = tiny_setup(small_digits, epochs=2)
    path = tmp_path / "rec.h5"
    train(net, small_digits, config, record_path=path, progress=False, netcfg=netcfg)
    rec = load_record(path)
    assert rec["attrs"]["stlsim_version"] == stlsim.__version__
    assert rec["attrs"]["schema_version"] == 2 and rec["attrs"]["seed"] == 0
    assert rec["attrs"]["digest"].startswith("sha256:") and rec["overrides"] == []
    assert rec["conventions"]["reset"] == "hard" and rec["conventions"]["heaviside_at_zero"] == 1
    assert list(rec["history"]["epoch"]) == [1, 2]
    assert rec["history"]["firing_rate"].shape == (2, 2)
    for key in net.params:
        np.testing.assert_array_equal(rec["params"][key], net.params[key])
    assert sorted(os.listdir(tmp_path)) == ["rec.h5"]          # no temp files left


def test_bad_record_gives_clear_error(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="bad.h5"):
        load_record(bad)


def test_ctrl_c_saves_finished_epochs(tmp_path, small_digits, monkeypatch):
    net, netcfg, config = tiny_setup(small_digits, epochs=3)
    calls = {"n": 0}
    original = net.loss_and_grad

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:                        # second epoch, second batch
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(net, "loss_and_grad", interrupting)
    path = tmp_path / "int.h5"
    result = train(net, small_digits, config, record_path=path, progress=False, netcfg=netcfg)
    assert result.interrupted and result.history["epoch"] == [1]
    rec = load_record(path)
    assert rec["attrs"]["interrupted"] and rec["checkpoint"]["epoch"] == 1


def test_nan_loss_is_reported_not_trained_on(small_digits):
    net, _, config = tiny_setup(small_digits, epochs=1)
    net.loss_and_grad = lambda *a, **k: (float("nan"), {}, np.zeros((50, 10)))
    with pytest.raises(FloatingPointError, match="loss became nan"):
        train(net, small_digits, config, progress=False)


def test_config_errors():
    with pytest.raises(ValueError, match="`mode` of `TrainConfig`"):
        TrainConfig(mode="xl").validate()
    with pytest.raises(ValueError, match="`batch_size`"):
        TrainConfig(batch_size=0).validate()


# -------------------------------------------------------------------------- the CLI --
def run_cli(*args, cwd=None):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "stlsim", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_compare_writes_results_json_and_figures(tmp_path):
    out = tmp_path / "cmp"
    proc = run_cli("compare", "--epochs", "2", "--seeds", "2", "--train-subset", "150", "--test-subset", "60",
                   "--hidden", "32", "--population", "2", "--out", str(out), "--quiet", "--backend", "numpy",
                   "--max-workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "STL" in proc.stdout and "TL" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert set(results["modes"]) == {"stl", "sl", "tl"}
    for mode in results["modes"].values():
        assert len(mode["test_accuracy_per_seed"]) == 2
        assert all(0.0 <= a <= 1.0 for a in mode["test_accuracy_per_seed"])
        assert np.isclose(mode["test_accuracy_mean"], np.mean(mode["test_accuracy_per_seed"]))
        assert len(mode["firing_rate_per_layer"]) == 2 and len(mode["theta_mean_per_layer"]) == 2
    assert results["config"]["network"]["hidden"] == [32]
    for name in results["figures"].values():
        assert (out / name).stat().st_size > 1000
    assert len(list(out.glob("*.h5"))) == 6


def test_cli_bad_dataset_is_a_clear_error(tmp_path):
    proc = run_cli("compare", "--dataset", str(tmp_path / "missing.npz"), "--epochs", "1")
    assert proc.returncode == 2
    assert "missing.npz" in proc.stderr and "Traceback" not in proc.stderr


def test_train_on_user_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((60, 5)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    path = tmp_path / "toy.npz"
    np.savez(path, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    proc = run_cli("train", "--dataset", str(path), "--epochs", "1", "--hidden", "8", "--population", "1",
                   "--out", str(tmp_path / "t"), "--quiet", "--backend", "numpy")
    assert proc.returncode == 0, proc.stderr
    assert "final test accuracy" in proc.stdout


def test_resume_is_bit_exact_with_batchnorm_and_dropout(tmp_path, small_digits):
    from stlsim.layers import Reshape

    def conv_net():
        layers = [Reshape((1, 8, 8), input_shape=(64,)),
                  stlsim.Conv2d(1, 3, kernel_size=3, padding=1, batchnorm=True), stlsim.MaxPool2d(2),
                  stlsim.Flatten(), stlsim.Dropout(0.2), stlsim.Dense(3 * 4 * 4, 10 * 2, init_gain=4.0)]
        return stlsim.Network(layers, neuron=stlsim.LIF(theta_init=1.0), population=2, seed=0,
                              backend="numpy")

    config = lambda epochs: TrainConfig(epochs=epochs, timesteps=3, batch_size=50, backend="numpy")  # noqa: E731
    net_a = conv_net()
    train(net_a, small_digits, config(2), progress=False)
    net_b = conv_net()
    path = tmp_path / "conv.h5"
    train(net_b, small_digits, config(1), record_path=path, progress=False)
    assert load_record(path)["params"]["buffer:1.bn_running_mean"].shape == (3,)
    net_c = conv_net()
    train(net_c, small_digits, config(2), resume=path, progress=False)
    for key in net_a.params:
        np.testing.assert_array_equal(net_a.params[key], net_c.params[key])
    for key in net_a.buffers:
        np.testing.assert_array_equal(net_a.buffers[key], net_c.buffers[key])
