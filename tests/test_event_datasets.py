"""Event data sets as frames, end to end: files -> Dataset -> stlsim compare."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from stlsim.data import make_events, write_nmnist, write_shd, make_unit_events
from stlsim.data.event_datasets import load_event_dataset


def _nmnist_tree(root, per_digit=2):
    rng = np.random.default_rng(0)
    for split in ("Train", "Test"):
        for digit in range(10):
            folder = root / split / str(digit)
            folder.mkdir(parents=True)
            for k in range(per_digit):
                n = 50
                t = np.sort(rng.integers(0, 300_000, n))
                ev = make_events(t, rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n))
                write_nmnist(folder / f"{k:05d}.bin", ev)


def test_nmnist_folder_becomes_frames(tmp_path):
    _nmnist_tree(tmp_path)
    data = load_event_dataset(f"nmnist:{tmp_path}", timesteps=10)
    assert data.x_train.shape == (20, 10, 2 * 34 * 34) and data.timesteps == 10
    assert set(np.unique(data.x_train)) <= {0.0, 1.0} and data.x_train.sum() > 0
    assert sorted(np.unique(data.y_test)) == list(range(10))


def test_shd_files_become_frames(tmp_path):
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        events = [make_unit_events(np.sort(rng.integers(0, 1_000_000, 30)), rng.integers(0, 700, 30))
                  for _ in range(4)]
        write_shd(tmp_path / f"shd_{split}.h5", events, np.arange(4) % 20)
    data = load_event_dataset(f"shd:{tmp_path}", timesteps=7)
    assert data.x_train.shape == (4, 7, 700) and data.n_classes == 20


def test_missing_event_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="N-MNIST"):
        load_event_dataset(f"nmnist:{tmp_path}")
    with pytest.raises(ValueError, match="nmnist:PATH"):
        load_event_dataset("nmnist")


def test_compare_on_synthetic_saccade_digits(tmp_path):
    out = tmp_path / "sacc"
    proc = subprocess.run([sys.executable, "-m", "stlsim", "compare", "--dataset", "saccade-digits",
                           "--epochs", "1", "--seeds", "1", "--timesteps", "6", "--train-subset", "200",
                           "--test-subset", "100", "--hidden", "32", "--population", "2",
                           "--backend", "numpy", "--out", str(out), "--quiet", "--max-workers", "1"],
                          capture_output=True, text=True, env=dict(os.environ, MPLBACKEND="Agg"), timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["name"] == "saccade-digits"
    assert results["config"]["training"]["encoding"] == "frames"
    assert results["config"]["training"]["timesteps"] == 6
