"""Files stlsim writes: atomic (temp file, then rename) and with the user's umask."""
import json
import os
import stat
import threading

import numpy as np
import pytest

from stlsim._io import atomic_path


@pytest.fixture
def umask():
    """Set the process umask for one test and restore the caller's afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"])
def test_atomic_path_gives_the_mode_open_would(tmp_path, umask, mask, expected):
    umask(mask)
    target = tmp_path / "sub" / "out.json"
    with atomic_path(target) as tmp:
        assert _mode(tmp) == expected                     # before the writer touches it
        with open(tmp, "w") as f:
            f.write("{}")
    assert _mode(target) == expected
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as f:                          # what a plain open gives, for comparison
        f.write("x")
    assert _mode(plain) == expected
    assert sorted(os.listdir(target.parent)) == ["out.json"]   # no temporary file left


def test_atomic_path_replaces_an_older_file_and_cleans_up_on_error(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "out.txt"
    target.write_text("old")
    os.chmod(target, 0o600)
    with atomic_path(target) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
    assert target.read_text() == "new" and _mode(target) == 0o644
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]


def test_atomic_path_from_many_threads_at_once(tmp_path, umask):
    umask(0o027)
    errors = []

    def write(i):
        try:
            for j in range(20):
                with atomic_path(tmp_path / f"{i}.txt") as tmp:
                    with open(tmp, "w") as f:
                        f.write(f"{i} {j}")
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(os.listdir(tmp_path)) == sorted(f"{i}.txt" for i in range(8))
    assert all(_mode(tmp_path / f"{i}.txt") == 0o640 for i in range(8))
    assert (tmp_path / "3.txt").read_text() == "3 19"


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600)], ids=["022", "077"])
def test_records_results_and_figures_keep_the_umask(tmp_path, umask, mask, expected):
    pytest.importorskip("h5py")
    pytest.importorskip("matplotlib")
    from stlsim.cli import main
    from stlsim.data import load_digits, save_npz_dataset

    umask(mask)
    run = tmp_path / "run"
    assert main(["compare", "--epochs", "1", "--seeds", "1", "--modes", "stl", "--train-subset", "40",
                 "--test-subset", "20", "--hidden", "8", "--timesteps", "2", "--backend", "numpy",
                 "--out", str(run), "--quiet"]) == 0
    written = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    results = json.loads((run / "results.json").read_text())
    assert any(name.endswith(".h5") for name in written)                       # a run record
    assert results["figures"] and all(name in written for name in results["figures"].values())
    modes = {name: _mode(run / name) for name in written}
    assert modes == {name: expected for name in written}
    data_file = tmp_path / "digits.npz"
    save_npz_dataset(data_file, load_digits().subset(10, 5))
    assert _mode(data_file) == expected
    assert np.load(data_file)["x_train"].shape[0] == 10
