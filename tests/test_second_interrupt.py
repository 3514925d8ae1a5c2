"""A second Ctrl-C while a stopped run writes its summary never loses the finished runs.

The first stop signal asks the run to stop after its batch; a second one outside a protected
block stops it at once. The summary that follows (compare's results.json, a sweep's tables)
is gathered and written under ``signals.protect()``: here the two signals are sent from inside
that stretch (while the provenance is read, while the tables are written), the moment where
a parallel compare once lost its results.json.
"""
import json
import os
import signal

import pytest

import stlsim.experiment.compare
import stlsim.experiment.sweep.runner
from stlsim.data import load_digits
from stlsim.experiment.compare import run_comparison
from stlsim.experiment.sweep.runner import run_sweep
from stlsim.train import NetConfig, TrainConfig

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix",
                                reason="sends SIGINT to this process")


def _two_ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)       # the first: stop after this batch
    os.kill(os.getpid(), signal.SIGINT)       # the second: outside protect() it would stop at once


def _unless_interrupted(fn, *args, **kwargs):
    """``fn``'s result; a KeyboardInterrupt that escapes it fails the test (not the whole session)."""
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt as err:
        pytest.fail(f"the second signal escaped {fn.__name__}: KeyboardInterrupt({err})")


def test_compare_writes_results_json_despite_a_second_ctrl_c_while_summarising(tmp_path, monkeypatch):
    real = stlsim.experiment.compare.provenance

    def provenance_under_two_signals(**extra):
        _two_ctrl_c()
        return real(**extra)

    monkeypatch.setattr(stlsim.experiment.compare, "provenance", provenance_under_two_signals)
    data = load_digits().subset(40, 20)
    netcfg = NetConfig(hidden=[8], population=1, theta_init=1.0, dtype="float64")
    config = TrainConfig(epochs=1, timesteps=2, batch_size=20, backend="numpy")
    out = tmp_path / "compare"
    results = _unless_interrupted(run_comparison, data, netcfg, config, modes=("stl", "sl"), seeds=(0,),
                                  out_dir=str(out), progress=False, log=None, plots=True)
    written = json.loads((out / "results.json").read_text())
    assert set(written["modes"]) == {"stl", "sl"} == set(results["modes"])
    assert written["modes"]["stl"]["seeds"] == [0]
    assert not list(out.glob("*.png"))        # the figures are skipped once a signal came


def _quick_task(task, out_dir):
    return {"task_id": task.id, "status": "ok", "error": "", "mode": task.mode, "seed": task.seed,
            "final_test_accuracy": 0.5, "n_test": 10}


def test_sweep_writes_its_tables_despite_a_second_ctrl_c_while_writing_them(tmp_path, monkeypatch):
    from test_sweep import tiny_tasks

    real = stlsim.experiment.sweep.runner.write_tables

    def write_tables_under_two_signals(*args, **kwargs):
        _two_ctrl_c()
        return real(*args, **kwargs)

    monkeypatch.setattr(stlsim.experiment.sweep.runner, "write_tables", write_tables_under_two_signals)
    monkeypatch.setattr(stlsim.experiment.sweep.runner, "_TABLE_EVERY_S", float("inf"))   # the final write only
    tasks = tiny_tasks()
    out = str(tmp_path / "sweep")
    summary = _unless_interrupted(run_sweep, tasks, out, scheduler="serial", task_fn=_quick_task, log=None)
    assert summary["ok"] == len(tasks)
    assert os.path.exists(os.path.join(out, "table.csv"))
    with open(os.path.join(out, "table.csv")) as f:
        assert len(f.read().splitlines()) == len(tasks) + 1


def test_a_second_signal_in_a_polling_loop_waits_for_its_poll():
    """Inside ``defer_again`` (the parallel executor's loop and Dask's shutdown) the second signal
    is noted, not raised wherever Python is (inside another library's finalizer it would be
    printed as an ignored exception and lost); the loop's ``check_again`` raises it, and a third
    signal raises at once. Outside the block the second raises at once, as before."""
    from stlsim.train.signals import interrupt_guard

    with interrupt_guard() as signals:
        with signals.defer_again():
            _two_ctrl_c()
            assert signals.requested == "SIGINT" and signals.again == 1
            with pytest.raises(KeyboardInterrupt):
                signals.check_again()
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)       # the third
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    with interrupt_guard() as signals:
        signals.check_again()                              # nothing arrived: no-op
        with pytest.raises(KeyboardInterrupt):
            with signals.defer_again():
                pass
            _two_ctrl_c()                                  # outside the block: raised at once
