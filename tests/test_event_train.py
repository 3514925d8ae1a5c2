"""Training with the event engine: ``TrainConfig(engine="event")``, ``stlsim train --engine``.

The event engine's gradients agree with the clock engine's within 1e-10 (float64,
``tests/test_event_engine.py``), so a short training run must follow the same path:
same per-batch decisions and nearly the same parameters.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from stlsim.data import load_digits
from stlsim.engines import event
from stlsim.train import NetConfig, TrainConfig, build_network, train


@pytest.fixture(scope="module")
def small_digits():
    return load_digits().subset(150, 60)


def _run(data, engine):
    netcfg = NetConfig(hidden=[32], population=2, theta_init=1.0, init_gain=4.0, dtype="float64")
    net = build_network(netcfg, data.input_shape, data.n_classes, seed=0, backend="numpy")
    config = TrainConfig(mode="stl", epochs=2, timesteps=6, batch_size=50, seed=0, backend="numpy",
                         engine=engine)
    return net, train(net, data, config, progress=False)


def test_event_training_follows_the_clock_run(small_digits):
    net_clock, clock = _run(small_digits, "clock")
    before = dict(event.CALLS)
    net_event, run = _run(small_digits, "event")
    assert event.CALLS["backward"] >= before["backward"] + 6     # 3 batches x 2 epochs
    assert event.CALLS["fallback"] == before["fallback"]
    assert run.history["test_accuracy"] == clock.history["test_accuracy"]
    np.testing.assert_allclose(run.history["train_loss"], clock.history["train_loss"], rtol=1e-9)
    np.testing.assert_allclose(run.history["firing_rate"], clock.history["firing_rate"],
                               rtol=1e-12)
    assert clock.history["firing_rate"][-1][0] > 0.01           # something was simulated
    for key, value in net_clock.params.items():
        scale = max(np.max(np.abs(value)), 1e-12)
        assert np.max(np.abs(net_event.params[key] - value)) <= 1e-8 * scale, key


def test_train_config_checks_the_engine():
    with pytest.raises(ValueError, match="engine"):
        TrainConfig(engine="events").validate()


def test_cli_train_with_the_event_engine(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "stlsim", "train", "--dataset", "digits", "--epochs", "1",
         "--hidden", "16", "--population", "1", "--train-subset", "100", "--test-subset", "50",
         "--engine", "event", "--backend", "numpy", "--quiet", "--out", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    assert "final test accuracy" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "stlsim", "train", "--engine", "fast"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--engine" in bad.stderr
