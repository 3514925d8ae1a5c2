"""Hostile but realistic use, run as a table: bad flags, damaged files, signals, concurrent runs.

Every try ends in one of: ``ok`` (the right result, checked), ``clear`` (one error line
naming the problem: ``stlsim <command>: error: ...`` with exit 2 on the command line, a
ValueError/TypeError/FileNotFoundError/FloatingPointError with such a message in Python),
or a failure: ``traceback``, ``silent_wrong``, ``hang``, ``data_lost``. Each test asserts
that its rows hold no failure; the counts of the whole module are printed at the end
(run with ``-s`` to see them).
"""
from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import stlsim
from stlsim.cli import main as cli_main

h5py = pytest.importorskip("h5py")

FAILURES = ("traceback", "silent_wrong", "hang", "data_lost")
TABLE: list = []          # (group, case, outcome, detail) of every try in this module
HANGS_CAUGHT: list = []   # damaged files whose read the time limit stopped (reported as clear errors)
ERROR_LINE = re.compile(r"^stlsim( [\w-]+)?: error: \S")
TINY = ["--train-subset", "60", "--test-subset", "20", "--epochs", "1", "--hidden", "8", "-T", "2",
        "-P", "1", "--dtype", "float64", "--backend", "numpy", "--quiet"]
TINY_COMPARE = [*TINY, "--max-workers", "1"]     # compare's runs here, one after the other


def record(group, case, outcome, detail=""):
    TABLE.append((group, case, outcome, detail))
    return outcome


def failures(group):
    return [row for row in TABLE if row[0] == group and row[2] in FAILURES]


@pytest.fixture(scope="module", autouse=True)
def _print_counts():
    yield
    counts = collections.Counter(row[2] for row in TABLE)
    print("\n\nreliability table: tries / clear errors / correct results / tracebacks / silent wrong / "
          "hangs / data lost")
    print(f"  {len(TABLE)} / {counts['clear']} / {counts['ok']} / {counts['traceback']} / "
          f"{counts['silent_wrong']} / {counts['hang']} / {counts['data_lost']}")
    by_group = collections.defaultdict(collections.Counter)
    for group, _, outcome, _ in TABLE:
        by_group[group][outcome] += 1
    for group, c in sorted(by_group.items()):
        print(f"  {group:12} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    if HANGS_CAUGHT:
        print(f"  of the clear errors, {len(HANGS_CAUGHT)} were reads stopped by the time limit: {HANGS_CAUGHT}")
    for row in TABLE:
        if row[2] in FAILURES:
            print("  FAILED:", row)


def run_cli(*argv):
    """Run the CLI in this process; (outcome, rc, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli_main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    except BaseException as exc:  # noqa: BLE001 - what escapes is a traceback for the user
        return "traceback", None, f"{type(exc).__name__}: {exc}"
    text = err.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    if rc == 0:
        return "ok", rc, text
    if rc == 2 and lines and ERROR_LINE.match(lines[-1]) and "Traceback" not in text:
        return "clear", rc, lines[-1]
    return "traceback", rc, text[-300:]


def python_error(func, *args, **kwargs):
    """'clear' if ``func`` raises one of the API's error types with a message, else what it did."""
    try:
        func(*args, **kwargs)
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError, KeyError) as err:
        return ("clear" if str(err) else "traceback"), str(err)
    except Exception as err:  # noqa: BLE001
        return "traceback", f"{type(err).__name__}: {err}"
    return "silent_wrong", "accepted"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    (root / "afile").write_text("a file, not a folder")
    (root / "text.h5").write_text("not hdf5")
    (root / "notanpz.npz").write_text("not an npz")
    from stlsim.data import load_digits, save_npz_dataset

    data = load_digits().subset(60, 20)
    save_npz_dataset(root / "good.npz", data)
    blob = (root / "good.npz").read_bytes()
    (root / "truncated.npz").write_bytes(blob[: len(blob) // 2])
    escaping = type(data)(**{**data.__dict__, "name": "x/../../../ESCAPED"})
    save_npz_dataset(root / "escaping.npz", escaping)
    return root


@pytest.fixture(scope="module")
def trained(workdir):
    """A tiny finished `stlsim train` run: its record (2 epochs)."""
    out = workdir / "train"
    outcome, rc, text = run_cli("train", *TINY, "--epochs", "2", "--out", out)
    assert outcome == "ok", text
    return out / "stl_seed0.h5"


# ------------------------------------------------------------------------- bad flags --
BAD_TRAIN_FLAGS = [
    ["--hidden", ""], ["--hidden", "0"], ["--hidden", "a,b"], ["--hidden", "8,,8"],
    ["--train-subset", "0"], ["--test-subset", "-1"], ["--train-subset", "999999"],
    ["--epochs", "0"], ["--epochs", "-3"], ["--batch-size", "0"], ["--lr", "-1"], ["--lr", "nan"],
    ["--timesteps", "0"], ["--population", "0"], ["--tau", "2"], ["--surrogate", "bogus"],
    ["--theta-lr", "-1"], ["--optimizer", "rmsprop"], ["--backend", "bogus"], ["--encoding", "bogus"],
    ["--weight-decay", "-1"], ["--lr-decay", "2"], ["--dtype", "float16"], ["--reset", "zero"],
    ["--dataset", "missing.npz"], ["--dataset", "nmnist"], ["--dataset", "shd:/nonexistent"],
    ["--dataset", "truncated.npz"], ["--dataset", "notanpz.npz"], ["--dataset", "text.h5"],
    ["--out", "afile"], ["--out", "afile/sub"], ["--resume", "missing.h5"], ["--resume", "text.h5"],
    ["--resume", "."], ["--override", "lr=0.1"], ["--seed", "-1"], ["--mode", "xl"], ["--bogus-flag"],
]
BAD_COMPARE_FLAGS = [["--seeds", "0"], ["--seeds", "-1"], ["--modes", "stl,xx"], ["--modes", ""],
                     ["--modes", "stl,stl"], ["--out", "afile"], ["--epochs", "0"], ["--max-workers", "0"]]


def test_bad_flags_give_one_error_line(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    for flags in BAD_TRAIN_FLAGS:
        outcome, _, text = run_cli("train", *TINY, *flags)
        record("flags", "train " + " ".join(flags), outcome if outcome != "ok" else "silent_wrong", text)
    for flags in BAD_COMPARE_FLAGS:
        outcome, _, text = run_cli("compare", *TINY_COMPARE, *flags)
        record("flags", "compare " + " ".join(flags), outcome if outcome != "ok" else "silent_wrong", text)
    assert not failures("flags")


def test_cuda_without_gpu_is_one_line(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    outcome, rc, text = run_cli("train", *TINY, "--backend", "cuda", "--out", workdir / "cuda")
    if outcome == "ok":                   # a machine with a GPU: the run is real
        pytest.skip("a CUDA GPU is visible")
    record("flags", "train --backend cuda (no GPU)", outcome, text)
    assert outcome == "clear", text


def test_debug_shows_the_traceback(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    with pytest.raises(ValueError, match="afile"):
        cli_main(["--debug", "compare", *TINY_COMPARE, "--out", "afile"])


# ------------------------------------------------------------------------------ resume --
MISMATCHES = [(["--mode", "sl"], "mode"), (["--seed", "5"], "seed"), (["--lr", "0.01"], "lr"),
              (["--dtype", "float32"], "dtype"), (["-T", "3"], "timesteps"), (["--tau", "0.6"], "tau"),
              (["--optimizer", "sgd"], "optimizer"), (["--hidden", "9"], "hidden"),
              (["--theta-init", "1.5"], "theta_init"), (["--loss", "ce_rate"], "loss"),
              (["--population", "2"], "population"), (["--reset", "soft"], "reset")]


def test_resume_refuses_another_runs_record_naming_the_field(workdir, trained, monkeypatch):
    monkeypatch.chdir(workdir)
    before = trained.read_bytes()
    for flags, field in MISMATCHES:
        outcome, _, text = run_cli("train", *TINY, "--epochs", "3", "--resume", trained,
                                   "--out", workdir / "resumed", *flags)
        if outcome == "clear" and field not in text:
            outcome = "silent_wrong"       # refused, but the message does not name the field
        record("resume", f"resume with {' '.join(flags)}", outcome if outcome != "ok" else "silent_wrong", text)
    # the record itself is never touched by a refused resume
    record("resume", "record unchanged", "ok" if trained.read_bytes() == before else "data_lost")
    assert not failures("resume")


def test_resume_override_is_allowed_and_logged(workdir, trained, monkeypatch):
    from stlsim.train.records import load_record

    monkeypatch.chdir(workdir)
    out = workdir / "overridden"
    outcome, _, text = run_cli("train", *TINY, "--epochs", "3", "--resume", trained, "--out", out,
                               "--lr", "0.01", "--override", "lr=0.01")
    rec = load_record(out / "stl_seed0.h5")
    logged = rec["overrides"] == [{"field": "lr", "recorded": 0.001, "requested": 0.01, "at_epoch": 2}]
    good = outcome == "ok" and logged and list(rec["history"]["epoch"]) == [1, 2, 3]
    record("resume", "--override lr=0.01", "ok" if good else "silent_wrong", text)
    assert good, (text, rec["overrides"])
    outcome, _, text = run_cli("train", *TINY, "--epochs", "3", "--resume", trained, "--out", out,
                               "--override", "lrr=0.01")
    record("resume", "--override of an unknown field", outcome, text)
    assert outcome == "clear" and "lrr" in text


def test_resume_of_the_same_run_stays_bit_exact(workdir, trained, monkeypatch):
    from stlsim.train.records import load_record

    monkeypatch.chdir(workdir)
    run_cli("train", *TINY, "--epochs", "3", "--out", workdir / "straight")
    outcome, _, text = run_cli("train", *TINY, "--epochs", "3", "--resume", trained, "--out", workdir / "resumed3")
    a = load_record(workdir / "straight" / "stl_seed0.h5")
    b = load_record(workdir / "resumed3" / "stl_seed0.h5")
    same = outcome == "ok" and all(np.array_equal(a["params"][k], b["params"][k]) for k in a["params"])
    same = same and np.array_equal(a["history"]["test_loss"], b["history"]["test_loss"])
    record("resume", "resume 2 -> 3 epochs equals 3 epochs", "ok" if same else "silent_wrong", text)
    assert same


def _edited_copy(src, dst, edit):
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "a") as f:
        edit(f)
    return dst


def test_edited_records_are_refused(workdir, trained, monkeypatch):
    monkeypatch.chdir(workdir)
    edits = {
        "deleted checkpoint/params/1.theta": lambda f: f.__delitem__("checkpoint/params/1.theta"),
        "deleted history/test_loss": lambda f: f.__delitem__("history/test_loss"),
        "changed a weight": lambda f: f["checkpoint/params/0.weight"].__setitem__((0, 0), 1.0),
        "changed config attr": lambda f: f.attrs.__setitem__("config", "{not json"),
        "deleted digest": lambda f: f.attrs.__delitem__("digest"),
        "deleted optimizer m/0.weight": lambda f: f.__delitem__("checkpoint/optimizer/m/0.weight"),
        "deleted checkpoint": lambda f: f.__delitem__("checkpoint"),
    }
    for name, edit in edits.items():
        path = _edited_copy(trained, workdir / "edited.h5", edit)
        outcome, _, text = run_cli("train", *TINY, "--epochs", "3", "--resume", path, "--out", workdir / "ed")
        if outcome == "clear" and "edited.h5" not in text:
            outcome = "silent_wrong"
        record("records", name, outcome if outcome != "ok" else "silent_wrong", text)
    assert not failures("records")


def _same(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def _zeroed_blocks(src, tmp, loader, reference, step, group, monkeypatch, block=512):
    """Zero ``block`` bytes at every ``step`` offset; each load must fail clearly or be unchanged."""
    monkeypatch.setenv("STLSIM_HDF5_TIMEOUT", "4")      # a tiny file reads in well under a second
    blob = src.read_bytes()
    for offset in range(0, len(blob), step):
        damaged = bytearray(blob)
        damaged[offset:offset + block] = bytes(len(damaged[offset:offset + block]))
        path = tmp / f"zeroed_{offset}.h5"
        path.write_bytes(bytes(damaged))
        t0 = time.perf_counter()
        try:
            got = loader(path)
        except ValueError as err:
            outcome = "clear" if str(path) in str(err) else "traceback"
            detail = str(err)[:160]
            if "did not finish" in detail:
                HANGS_CAUGHT.append((group, offset))
        except Exception as err:  # noqa: BLE001
            outcome, detail = "traceback", f"{type(err).__name__}: {err}"
        else:
            outcome, detail = ("ok" if _same(reference, got) else "silent_wrong"), "loaded"
        if time.perf_counter() - t0 > 60:
            outcome = "hang"
        record(group, f"zeroed {block} B at {offset}", outcome, detail)
        path.unlink()


def _slow_requested(request):
    return "slow" in (request.config.getoption("markexpr") or "")


@pytest.mark.parametrize("step", [4096, pytest.param(512, marks=pytest.mark.slow)])
def test_damaged_records_fail_clearly_or_load_unchanged(workdir, trained, monkeypatch, tmp_path, step, request):
    from stlsim.train.records import load_record

    if step == 512 and not _slow_requested(request):
        pytest.skip("slow: run with -m slow")

    def loader(path):
        rec = load_record(path)
        rec["attrs"] = {k: rec["attrs"][k] for k in ("mode", "seed", "config", "digest")}
        return rec
    _zeroed_blocks(trained, tmp_path, loader, loader(trained), step, "records", monkeypatch)
    assert not failures("records")


@pytest.mark.parametrize("step", [2048, pytest.param(512, marks=pytest.mark.slow)])
def test_damaged_shd_files_fail_clearly_or_load_unchanged(monkeypatch, tmp_path, step, request):
    from stlsim.data.neuromorphic import make_unit_events, read_shd, write_shd

    if step == 512 and not _slow_requested(request):
        pytest.skip("slow: run with -m slow")
    rng = np.random.default_rng(0)
    events = [make_unit_events(np.sort(rng.integers(0, 900_000, 40)), rng.integers(0, 700, 40))
              for _ in range(30)]
    src = tmp_path / "shd.h5"
    write_shd(src, events, rng.integers(0, 20, 30))

    def loader(path):
        ev, labels = read_shd(path)
        return {"labels": labels, **{str(i): e for i, e in enumerate(ev)}}
    _zeroed_blocks(src, tmp_path, loader, loader(src), step, "shd", monkeypatch)
    assert not failures("shd")


# ------------------------------------------------------------------- python API values --
def test_api_refuses_what_it_used_to_take_silently():
    from stlsim.data.encoding import encode
    from stlsim.train import NetConfig, build_network

    net = stlsim.Network([stlsim.Dense(4, 6), stlsim.Dense(6, 4)], neuron=stlsim.LIF(),
                         surrogate=stlsim.surrogate.ATan(), population=2, seed=0)
    x, y = np.ones((3, 2, 4)), np.array([0, 1])
    cases = {
        "smooth='yes'": lambda: net.loss_and_grad(x, y, smooth="yes"),
        "training='no'": lambda: net.forward(x, training="no"),
        "return_rates=1": lambda: net.loss_and_grad(x, y, return_rates=1),
        "NetConfig(hidden='256')": lambda: build_network(NetConfig(hidden="256"), (64,), 10, 0),
        "NetConfig(hidden=[])+[0]": lambda: build_network(NetConfig(hidden=[0]), (64,), 10, 0),
        "encode('bogus')": lambda: encode(np.zeros((2, 3)), 2, "bogus", np.random.default_rng(0), np.float64),
        "encode(NaN)": lambda: encode(np.full((2, 3), np.nan), 2, "direct", np.random.default_rng(0), np.float64),
        "encode(T=0)": lambda: encode(np.zeros((2, 3)), 0, "rate", np.random.default_rng(0), np.float64),
    }
    for name, call in cases.items():
        outcome, text = python_error(call)
        record("api", name, outcome, text)

    def misspelled():
        net.params["0.wieght"] = net.params["0.weight"]
        try:
            net.forward(x)
        finally:
            del net.params["0.wieght"]
    record("api", "misspelled parameter key", *python_error(misspelled))

    def huge():
        saved = net.params["0.weight"].copy()
        net.params["0.weight"][...] = 1e308
        try:
            with np.errstate(all="ignore"):
                net.loss_and_grad(x, y)
        finally:
            net.params["0.weight"][...] = saved
    outcome, text = python_error(huge)
    record("api", "weights 1e308 (non-finite gradient)", outcome if "non-finite" in text else "silent_wrong", text)
    assert not failures("api")


def test_training_stops_on_a_non_finite_gradient(workdir):
    from stlsim.data import load_digits
    from stlsim.train import NetConfig, TrainConfig, build_network, train

    data = load_digits().subset(60, 20)
    net = build_network(NetConfig(hidden=[8], population=1), data.input_shape, 10, seed=0, backend="numpy")
    original = net.loss_and_grad

    def poisoned(*args, **kwargs):
        loss, grads, rates = original(*args, **kwargs)
        grads["0.theta"] = grads["0.theta"] * np.inf
        return loss, grads, rates
    net.loss_and_grad = poisoned
    config = TrainConfig(epochs=1, timesteps=2, backend="numpy")
    before = {k: v.copy() for k, v in net.params.items()}
    outcome, text = python_error(train, net, data, config, progress=False)
    untouched = all(np.array_equal(before[k], net.params[k]) for k in before)
    record("api", "train with an infinite gradient", outcome if untouched and "0.theta" in text else "silent_wrong",
           text)
    assert outcome == "clear" and untouched and "0.theta" in text
    outcome, text = python_error(train, net, data.subset(0, 10), config, progress=False)
    record("api", "train on an empty training split", outcome, text)
    assert outcome == "clear"


# ------------------------------------------------------------------------------- paths --
def test_names_from_files_stay_inside_their_folder(workdir, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    outcome, _, text = run_cli("train", *TINY, "--dataset", workdir / "escaping.npz")
    written = [os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs]
    escaped = os.path.exists(tmp_path.parent.parent / "ESCAPED") or any(p.startswith("..") for p in written)
    good = outcome == "ok" and not escaped and all(p.startswith("runs" + os.sep) for p in written)
    record("paths", "npz name x/../../../ESCAPED", "ok" if good else "silent_wrong", str(written))
    assert good, written

    from stlsim.data.event_datasets import load_dvsgesture

    (tmp_path / "outside.aedat").write_bytes(b"")
    dvs = tmp_path / "dvs"
    dvs.mkdir()
    for entry in ("../outside.aedat", str(tmp_path / "outside.aedat")):
        (dvs / "trials_to_train.txt").write_text(entry + "\n")
        (dvs / "trials_to_test.txt").write_text("")
        outcome, text = python_error(load_dvsgesture, dvs)
        record("paths", f"DVS trial list entry {entry!r}", outcome if "inside" in text else "silent_wrong", text)
    assert not failures("paths")


# ----------------------------------------------------------------- compare and report --
@pytest.fixture(scope="module")
def compared(workdir):
    out = workdir / "cmp"
    outcome, _, text = run_cli("compare", *TINY_COMPARE, "--seeds", "1", "--out", out)
    assert outcome == "ok", text
    return out


def _snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))
            if (folder / name).is_file()}


def test_a_folder_holds_one_run(workdir, compared, monkeypatch):
    monkeypatch.chdir(workdir)
    before = _snapshot(compared)
    # another run into it: refused, nothing changed
    outcome, _, text = run_cli("compare", *TINY_COMPARE, "--seeds", "1", "--lr", "0.01", "--out", compared)
    unchanged = _snapshot(compared) == before
    record("folders", "another run into a run folder", outcome if unchanged else "data_lost", text)
    # a live lock: refused
    (compared / ".stlsim.lock").write_text(str(os.getppid()))
    outcome, _, text = run_cli("compare", *TINY_COMPARE, "--seeds", "1", "--out", compared)
    record("folders", "a folder claimed by a live process", outcome if "claimed" in text else "silent_wrong", text)
    (compared / ".stlsim.lock").write_text("999999999")     # stale: its process is gone
    results = json.loads((compared / "results.json").read_text())
    assert results["modes"], "fixture run is complete"
    # --force replaces it cleanly: no file of the old run is left
    forced = workdir / "forced"
    run_cli("compare", *TINY_COMPARE, "--seeds", "2", "--modes", "stl", "--out", forced)
    outcome, _, text = run_cli("compare", *TINY_COMPARE, "--seeds", "1", "--modes", "sl", "--out", forced, "--force")
    names = sorted(os.listdir(forced))
    clean = outcome == "ok" and not any(n.startswith("stl_") for n in names) and "sl_seed0.h5" in names
    record("folders", "--force replaces another run", "ok" if clean else "silent_wrong", str(names))
    # --seeds 0 / --epochs 0 into a complete run: refused, nothing changed
    before = _snapshot(compared)
    for flags in (["--seeds", "0"], ["--epochs", "0"]):
        outcome, _, text = run_cli("compare", *TINY_COMPARE, *flags, "--out", compared)
        record("folders", f"compare {' '.join(flags)} into a complete run",
               outcome if _snapshot(compared) == before else "data_lost", text)
    # the same run again, interrupted at once: the old summary is kept apart, never beside new records
    import stlsim.experiment.executor

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
        yield                                                        # a generator, like the real one
    import shutil

    rerun = workdir / "rerun"
    shutil.copytree(compared, rerun)
    old_results = (rerun / "results.json").read_bytes()
    monkeypatch.setattr(stlsim.experiment.executor.Executor, "run", interrupted)
    outcome, rc, text = run_cli("compare", *TINY_COMPARE, "--seeds", "1", "--out", rerun)
    kept = (rerun / "results.previous.json").read_bytes() == old_results
    now = json.loads((rerun / "results.json").read_text())
    good = rc == 130 and kept and now["interrupted"] and not now["modes"]
    record("folders", "an interrupted rerun of the same run", "ok" if good else "data_lost", f"{rc} {text[-200:]}")
    assert not failures("folders")


def test_report_refuses_bad_run_folders(workdir, compared, monkeypatch, tmp_path):
    monkeypatch.chdir(workdir)
    good = json.loads((compared / "results.json").read_text())

    def folder(name, content, drop=()):
        d = tmp_path / name
        d.mkdir()
        if content is not None:
            (d / "results.json").write_text(content if isinstance(content, str) else json.dumps(content))
        for f in os.listdir(compared):
            if f.endswith(".h5") and f not in drop:
                (d / f).write_bytes((compared / f).read_bytes())
        return d
    bad = {
        "empty folder": folder("empty", None),
        "results.json = {}": folder("braces", {}),
        "results.json = []": folder("list", []),
        "invalid JSON": folder("invalid", "{\"modes\": "),
        "mode key ../../evil": folder("evil", {**good, "modes": {"../../evil": good["modes"]["stl"]}}),
        "seed '../x'": folder("seed", {**good, "modes": {"stl": {**good["modes"]["stl"], "seeds": ["../x"]}}}),
        "history without epochs": folder("hist", {**good, "modes": {"stl": {**good["modes"]["stl"],
                                                                            "history_per_seed": [{}]}}}),
        "missing folder": tmp_path / "nowhere",
    }
    quick = ["--no-noise", "--no-energy", "--no-decisions", "--quiet"]
    for name, d in bad.items():
        outcome, _, text = run_cli("report", d, *quick)
        record("report", name, outcome if outcome != "ok" else "silent_wrong", text)
    missing = folder("missing_record", good, drop=("sl_seed0.h5",))
    outcome, _, text = run_cli("report", missing, *quick)
    noted = "missing" in (missing / "report.md").read_text() if outcome == "ok" else False
    record("report", "a record missing", "ok" if noted else outcome if outcome != "ok" else "silent_wrong", text)
    assert not failures("report")


# ------------------------------------------------------------- signals and concurrency --
def _cli_process(*argv, cwd):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(stlsim.__file__))))
    return subprocess.Popen([sys.executable, "-m", "stlsim.cli", *map(str, argv)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _signal_tries(workdir, n, seed):
    from stlsim.train.records import load_record

    rng = np.random.default_rng(seed)
    long_run = [a if a != "1" or i != TINY.index("--epochs") + 1 else "40" for i, a in enumerate(TINY)]
    for k in range(n):
        out = workdir / f"sig{seed}_{k}"
        proc = _cli_process("train", *long_run, "--out", out, cwd=workdir)
        # wait until the first record exists, then strike at a random moment of the next epochs
        t0 = time.perf_counter()
        while not (out / "stl_seed0.h5").exists() and proc.poll() is None and time.perf_counter() - t0 < 60:
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0, 0.3)))
        sig = (signal.SIGINT, signal.SIGTERM)[k % 2]
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            record("signals", f"{sig.name} #{k}", "hang")
            continue
        try:
            rec = load_record(out / "stl_seed0.h5")
            complete = rec["checkpoint"] is not None and rec["checkpoint"]["epoch"] == len(rec["history"]["epoch"])
        except (ValueError, FileNotFoundError) as exc:
            record("signals", f"{sig.name} #{k}", "data_lost", str(exc))
            continue
        swallowed = "Exception ignored" in err or (proc.returncode == 0 and not rec["attrs"]["interrupted"]
                                                   and len(rec["history"]["epoch"]) < 40)
        if swallowed or not complete or "Traceback" in err:
            record("signals", f"{sig.name} #{k}", "silent_wrong" if swallowed else "data_lost", err[-300:])
        else:
            record("signals", f"{sig.name} #{k} (exit {proc.returncode})", "ok")
        leftovers = [n for n in os.listdir(out) if n.endswith(".tmp")]
        if leftovers:
            record("signals", f"{sig.name} #{k} temp files", "data_lost", str(leftovers))


def test_signals_during_training_keep_a_complete_record(workdir):
    _signal_tries(workdir, 4, seed=0)
    assert not failures("signals")


@pytest.mark.slow
def test_many_signals_during_training(workdir, request):
    if not _slow_requested(request):
        pytest.skip("slow: run with -m slow")
    _signal_tries(workdir, 24, seed=1)
    assert not failures("signals")


def test_concurrent_compares_into_one_folder(workdir):
    out = workdir / "shared"
    procs = [_cli_process("compare", *TINY_COMPARE, "--seeds", "1", "--modes", "stl", "--lr", lr, "--out", out,
                          cwd=workdir) for lr in ("0.001", "0.002")]
    done = [p.communicate(timeout=240) for p in procs]
    codes = sorted(p.returncode for p in procs)
    refused = [err for p, (_, err) in zip(procs, done) if p.returncode == 2]
    clear = codes == [0, 2] and all(ERROR_LINE.match(e.strip().splitlines()[-1]) for e in refused)
    results = json.loads((out / "results.json").read_text())
    from stlsim.train.records import load_record

    rec = load_record(out / "stl_seed0.h5")
    consistent = results["config"]["training"]["lr"] == rec["config"]["lr"]
    outcome = "clear" if clear and consistent else ("silent_wrong" if not consistent else "traceback")
    record("concurrency", "two compares into one folder", outcome, str(codes) + str(refused)[-200:])
    assert outcome == "clear"


def test_interrupt_during_compare_writes_results_first(workdir):
    out = workdir / "cmp_int"
    proc = _cli_process("compare", *TINY_COMPARE, "--seeds", "2", "--out", out, cwd=workdir)
    t0 = time.perf_counter()
    while not (out / "stl_seed1.h5").exists() and proc.poll() is None and time.perf_counter() - t0 < 120:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    ok = (out / "results.json").exists() and "Traceback" not in err
    if ok:
        results = json.loads((out / "results.json").read_text())
        ok = results["modes"] and (results["interrupted"] or proc.returncode == 0)
    record("signals", "SIGINT during compare", "ok" if ok else "data_lost", err[-300:])
    assert ok


def test_bench_passes_its_options_through(capsys):
    pytest.importorskip("benchmarks.__main__")
    with pytest.raises(SystemExit) as exc:
        cli_main(["bench", "--quick", "--help"])
    text = capsys.readouterr().out
    good = exc.value.code == 0 and "--workloads" in text
    record("flags", "bench --quick --help reaches the benchmarks", "ok" if good else "silent_wrong", text[-200:])
    assert good


def test_errors_in_event_files_name_the_file(tmp_path):
    from stlsim.data.event_datasets import load_nmnist

    for split in ("Train", "Test"):
        (tmp_path / split / "3").mkdir(parents=True)
        # one event at x = 200 on a 34 x 34 sensor: byte0 x, byte1 y, then polarity and time
        (tmp_path / split / "3" / "00001.bin").write_bytes(bytes([200, 5, 0x80, 0x00, 0x10]))
    outcome, text = python_error(load_nmnist, tmp_path, timesteps=2)
    record("paths", "N-MNIST event outside the sensor", outcome if "00001.bin" in text else "silent_wrong", text)
    assert outcome == "clear" and "00001.bin" in text, text


def test_disk_full_and_killed_saves(workdir, monkeypatch, tmp_path):
    import errno

    import stlsim._io

    monkeypatch.chdir(workdir)
    out = tmp_path / "full"

    def no_space(directory, prefix, suffix):
        raise OSError(errno.ENOSPC, "No space left on device", os.path.join(directory, prefix + suffix))
    with monkeypatch.context() as m:
        m.setattr(stlsim._io, "_new_temp_file", no_space)
        outcome, _, text = run_cli("compare", *TINY_COMPARE, "--seeds", "1", "--out", out)
    record("folders", "disk full during compare", outcome if "No space" in text else "silent_wrong", text)
    assert outcome == "clear" and "No space" in text
    assert not (out / ".stlsim.lock").exists()           # the claim is released on the way out
    # a save killed midway leaves a temp file: the next run of that record removes it once it is stale
    train_out = tmp_path / "killed"
    train_out.mkdir()
    stale = train_out / ".stl_seed0.h5.abcdef.h5.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    outcome, _, text = run_cli("train", *TINY, "--out", train_out)
    left = sorted(os.listdir(train_out))
    record("folders", "stale temp file of a killed save", "ok" if left == ["stl_seed0.h5"] else "silent_wrong",
           str(left))
    assert left == ["stl_seed0.h5"], left


def test_version_1_records_still_resume(workdir, trained, monkeypatch):
    def as_version_1(f):
        f.attrs["schema_version"] = 1
        del f.attrs["digest"]
        del f.attrs["overrides"]
    path = _edited_copy(trained, workdir / "v1.h5", as_version_1)
    monkeypatch.chdir(workdir)
    outcome, _, text = run_cli("train", *TINY, "--epochs", "3", "--resume", path, "--out", workdir / "v1out")
    record("records", "a version-1 record (no digest) resumes", outcome, text)
    assert outcome == "ok", text


# ================================================================= the application surfaces --
# Each case below was written before its fix and failed on the code of its day (see the report
# of the application surfaces): reads are confined to their folder and checked against what names them, folders
# are claimed, tables validated on read, records carry their data identity.
TINY_SWEEP = ["--train-subset", "60", "--test-subset", "20", "--epochs", "1", "--hidden", "8", "-T", "2",
              "-P", "1", "--dtype", "float64", "--backend", "numpy", "--quiet", "--scheduler", "serial"]


def _sweep(out, grid="theta_init=1.0", *extra):
    return run_cli("sweep", "--grid", grid, "--seeds", "1", "--modes", "stl,sl", *TINY_SWEEP, *extra, "--out", out)


@pytest.fixture(scope="module")
def swept(workdir):
    out = workdir / "sweep"
    outcome, _, text = _sweep(out)
    assert outcome == "ok", text
    return out


def _copy_tree(src, dst):
    import shutil

    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def _edit_table(path, edit):
    import csv

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows = edit(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def _set_cell(rows, row, column, value):
    rows[row][rows[0].index(column)] = value
    return rows


def _drop_column(rows, column):
    k = rows[0].index(column)
    return [r[:k] + r[k + 1:] for r in rows]


def _row_of(rows, mode):
    return next(i for i, r in enumerate(rows) if i and r[rows[0].index("mode")] == mode)


def test_class9_schema_version_cannot_switch_the_digest_off(workdir, trained):
    """Class 9: a record's own schema_version (0, 1, -1, 1.9) never turns its digest check off."""
    from stlsim.train.records import load_record

    for version in (0, 1, -1, 1.9, "2"):
        def edit(f, version=version):
            f.attrs["schema_version"] = version
            f["params/0.weight"][0, 0] = 7.0
        path = _edited_copy(trained, workdir / "schema.h5", edit)
        outcome, text = python_error(load_record, path, in_process=True)
        if outcome == "clear" and "schema.h5" not in text:
            outcome = "silent_wrong"
        record("records", f"schema_version {version!r} and an edited weight", outcome, text)
    assert not failures("records")


def test_class8_user_npz_labels_and_n_classes(workdir, tmp_path):
    """Class 8: absurd labels and n_classes of a user .npz fail clearly, naming the file."""
    from stlsim.data import load_digits
    from stlsim.data.static import load_npz

    data = load_digits().subset(60, 20)
    base = {"x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test, "y_test": data.y_test}
    cases = {
        "one label of 10**7": {"y_train": np.where(np.arange(60) == 0, 10**7, data.y_train)},
        "n_classes 4.9": {"n_classes": np.array(4.9)},
        "n_classes 10.5": {"n_classes": np.array(10.5)},
        "n_classes 10**7": {"n_classes": np.array(10**7)},
        "n_classes True": {"n_classes": np.array(True)},
        "n_classes a string": {"n_classes": np.array("ten")},
        "n_classes 0": {"n_classes": np.array(0)},
        "n_classes an array": {"n_classes": np.array([10, 10])},
        "name an array": {"name": np.array(["a", "b"])},
        "x_train with a nan": {"x_train": np.where(np.arange(data.x_train.size).reshape(data.x_train.shape) == 3,
                                                   np.nan, data.x_train)},
    }
    for name, change in cases.items():
        path = tmp_path / f"user_{len(TABLE)}.npz"
        np.savez(path, **{**base, **change})
        outcome, text = python_error(load_npz, path)
        if outcome == "clear" and path.name not in text:
            outcome = "traceback"          # a raw message that names neither file nor entry
        record("npz", name, outcome, text)
    assert not failures("npz")


QUICK_NOISE = ["--noise", "gaussian=0.2", "--min-accuracy", "0", "--max-test", "10", "--quiet"]


def test_class7_damaged_tables_are_refused_naming_file_and_column(workdir, swept, tmp_path):
    """Class 7: sweep-report validates table.csv: numbers in range, required columns, row length."""
    from stlsim.experiment.sweep.table import read_table

    d = _copy_tree(swept, tmp_path / "good")
    outcome, _, text = run_cli("sweep-report", d, "--quiet")
    record("tables", "an intact table", outcome, text)
    cases = {
        "accuracy 1.7": lambda rows: _set_cell(rows, 1, "final_test_accuracy", "1.7"),
        "accuracy -0.5": lambda rows: _set_cell(rows, 1, "final_test_accuracy", "-0.5"),
        "accuracy inf": lambda rows: _set_cell(rows, 1, "final_test_accuracy", "inf"),
        "accuracy nan": lambda rows: _set_cell(rows, 1, "best_test_accuracy", "nan"),
        "accuracy text": lambda rows: _set_cell(rows, 2, "final_test_accuracy", "high"),
        "seed -1": lambda rows: _set_cell(rows, 1, "seed", "-1"),
        "seed 1.5": lambda rows: _set_cell(rows, 1, "seed", "1.5"),
        "n_test 0": lambda rows: _set_cell(rows, 1, "n_test", "0"),
        "firing rate 3": lambda rows: _set_cell(rows, 1, "firing_rate_l0", "3"),
        "column seed missing": lambda rows: _drop_column(rows, "seed"),
        "column mode missing": lambda rows: _drop_column(rows, "mode"),
        "column final_test_accuracy missing": lambda rows: _drop_column(rows, "final_test_accuracy"),
        "column task_id missing": lambda rows: _drop_column(rows, "task_id"),
        "a short row": lambda rows: rows[:-1] + [rows[-1][:5]],
        "a long row": lambda rows: rows[:-1] + [rows[-1] + ["x"]],
        "no rows": lambda rows: rows[:1],
    }
    for name, edit in cases.items():
        d = _copy_tree(swept, tmp_path / "t")
        _edit_table(d / "table.csv", edit)
        outcome, _, text = run_cli("sweep-report", d, "--quiet")
        if outcome == "clear" and "table.csv" not in text:
            outcome = "traceback"
        record("tables", f"sweep-report: {name}", outcome if outcome != "ok" else "silent_wrong", text)
        outcome, text = python_error(read_table, d)
        if name != "no rows":
            record("tables", f"read_table: {name}", outcome if "table.csv" in text or outcome != "clear"
                   else "traceback", text)
    assert not failures("tables")


def test_class1_sweep_noise_reads_only_the_records_a_row_names(workdir, swept, trained, tmp_path):
    """Class 1: sweep-noise evaluates records/<task_id>.h5 of that task only, inside the folder."""
    d = _copy_tree(swept, tmp_path / "good")
    outcome, _, text = run_cli("sweep-noise", d, *QUICK_NOISE)
    record("sweep-noise", "an intact sweep", outcome, text)
    assert outcome == "ok", text
    import shutil

    def other_task(rows):
        stl, sl = _row_of(rows, "stl"), _row_of(rows, "sl")
        return _set_cell(rows, stl, "record", rows[sl][rows[0].index("record")])

    def swapped_ids(rows):
        stl, sl = _row_of(rows, "stl"), _row_of(rows, "sl")
        k = rows[0].index("task_id")
        rows[stl][k], rows[sl][k] = rows[sl][k], rows[stl][k]
        return rows
    edits = {
        "record ../train/stl_seed0.h5": lambda rows: _set_cell(rows, 1, "record", "../train/stl_seed0.h5"),
        "record an absolute path": lambda rows: _set_cell(rows, 1, "record", str(trained)),
        "record of another task": other_task,
        "task ids swapped": swapped_ids,
    }
    (tmp_path / "train").mkdir()
    shutil.copy(trained, tmp_path / "train" / "stl_seed0.h5")
    for name, edit in edits.items():
        d = _copy_tree(swept, tmp_path / "s")
        _edit_table(d / "table.csv", edit)
        outcome, _, text = run_cli("sweep-noise", d, *QUICK_NOISE)
        record("sweep-noise", name, outcome if outcome != "ok" else "silent_wrong", text)
    # the record file of another task (another mode) copied over this task's record
    d = _copy_tree(swept, tmp_path / "s")
    import csv

    rows = list(csv.DictReader(open(d / "table.csv")))
    stl = next(r for r in rows if r["mode"] == "stl")
    sl = next(r for r in rows if r["mode"] == "sl")
    shutil.copy(d / sl["record"], d / stl["record"])
    outcome, _, text = run_cli("sweep-noise", d, *QUICK_NOISE)
    record("sweep-noise", "another task's record under this task's name", outcome if outcome != "ok"
           else "silent_wrong", text)
    assert not failures("sweep-noise")


def test_class3_a_sweep_rerun_checks_its_task_rows(workdir, swept, tmp_path):
    """Class 3: a rerun trusts no task row blindly: deleted records, swapped or edited rows."""
    import csv

    from stlsim.train.records import load_record

    def table(d):
        return list(csv.DictReader(open(d / "table.csv")))
    truth = {r["task_id"]: r for r in table(swept)}
    stl = next(t for t, r in truth.items() if r["mode"] == "stl")
    sl = next(t for t, r in truth.items() if r["mode"] == "sl")

    def rerun(name, damage):
        d = _copy_tree(swept, tmp_path / "r")
        damage(d)
        outcome, _, text = _sweep(d)
        rows = table(d) if (d / "table.csv").exists() else []
        ids = sorted(r["task_id"] for r in rows)
        good = outcome == "ok" and ids == sorted(truth) and all(r["status"] == "ok" for r in rows)
        for r in rows if good else ():
            try:
                rec = load_record(d / r["record"], in_process=True)
            except (ValueError, FileNotFoundError) as err:
                good, text = False, str(err)
                continue
            good = good and float(r["final_test_accuracy"]) == rec["history"]["test_accuracy"][-1] \
                and rec["attrs"]["mode"] == r["mode"]
        record("sweep-rerun", name, "ok" if good else "silent_wrong", f"{outcome} {ids} {text[-200:]}")

    rerun("a deleted record", lambda d: os.remove(d / "records" / f"{stl}.h5"))
    rerun("a task row replaced by another's",
          lambda d: (d / "tasks" / f"{stl}.json").write_text((d / "tasks" / f"{sl}.json").read_text()))

    def edit_accuracy(d):
        doc = json.loads((d / "tasks" / f"{stl}.json").read_text())
        doc["row"]["final_test_accuracy"] = 0.99
        (d / "tasks" / f"{stl}.json").write_text(json.dumps(doc))
    rerun("an edited accuracy in a task row", edit_accuracy)
    rerun("a record replaced by another task's",
          lambda d: (d / "records" / f"{stl}.h5").write_bytes((d / "records" / f"{sl}.h5").read_bytes()))
    assert not failures("sweep-rerun")


def test_class5_report_checks_each_record_against_its_slot(workdir, compared, tmp_path, monkeypatch):
    """Class 5: report refuses records of another mode, seed or network, and accuracies out of [0, 1]."""
    import shutil

    monkeypatch.chdir(workdir)
    good = json.loads((compared / "results.json").read_text())
    others = {}
    for name, flags in (("seed 1", ["--seed", "1"]), ("hidden 9", ["--hidden", "9"]), ("lr 0.01", ["--lr", "0.01"])):
        out = tmp_path / name.replace(" ", "_")
        outcome, _, text = run_cli("train", *TINY, *flags, "--out", out)
        assert outcome == "ok", text
        others[name] = out / "stl_seed0.h5" if name != "seed 1" else out / "stl_seed1.h5"
    quick = ["--no-noise", "--no-decisions", "--max-test", "10", "--quiet"]
    outcome, _, text = run_cli("report", _copy_tree(compared, tmp_path / "intact"), *quick)
    record("report", "an intact run folder", outcome, text)
    cases = {"the sl record in the stl slot": compared / "sl_seed0.h5",
             **{f"a record of {k} in the stl slot": v for k, v in others.items()}}
    for name, src in cases.items():
        d = _copy_tree(compared, tmp_path / "r")
        shutil.copy(src, d / "stl_seed0.h5")
        outcome, _, text = run_cli("report", d, *quick)
        if outcome == "clear" and "stl_seed0.h5" not in text:
            outcome = "traceback"
        record("report", name, outcome if outcome != "ok" else "silent_wrong", text)

    def with_stl(**changes):
        return {**good, "modes": {**good["modes"], "stl": {**good["modes"]["stl"], **changes}}}
    hist = good["modes"]["stl"]["history_per_seed"][0]
    bad = {"accuracy per seed 1.7": with_stl(test_accuracy_per_seed=[1.7], test_accuracy_mean=1.7),
           "accuracy mean -0.5": with_stl(test_accuracy_mean=-0.5),
           "accuracy per seed inf": with_stl(test_accuracy_per_seed=[float("inf")]),
           "history accuracy 2.5": with_stl(history_per_seed=[{**hist, "test_accuracy": [2.5] * len(hist["epoch"])}]),
           "history rate -1": with_stl(history_per_seed=[{**hist, "firing_rate": [[-1.0] * len(hist["firing_rate"][0])]
                                                           * len(hist["epoch"])}])}
    for name, doc in bad.items():
        d = _copy_tree(compared, tmp_path / "r")
        (d / "results.json").write_text(json.dumps(doc))
        outcome, _, text = run_cli("report", d, *quick)
        record("report", f"results.json {name}", outcome if outcome != "ok" else "silent_wrong", text)
    # `stlsim train --out` a compare run folder: refused, the run's files unchanged
    d = _copy_tree(compared, tmp_path / "cmp")
    before = _snapshot(d)
    outcome, _, text = run_cli("train", *TINY, "--lr", "0.01", "--out", d)
    record("report", "train --out a compare run folder", outcome if _snapshot(d) == before and outcome != "ok"
           else "data_lost", text)
    assert not failures("report")


def test_class4_resume_refuses_other_data_or_engine_and_finished_records(workdir, trained, tmp_path, monkeypatch):
    """Class 4: a record holds its data identity (data set, sizes, fingerprint) and engine; resume
    refuses a mismatch by name, and a finished record is not resumed into nothing."""
    from stlsim.data import load_digits, save_npz_dataset

    monkeypatch.chdir(workdir)
    cases = [(["--train-subset", "50"], "train"), (["--test-subset", "19"], "test"),
             (["--engine", "event"], "engine")]
    for flags, field in cases:
        outcome, _, text = run_cli("train", *TINY, "--epochs", "3", "--resume", trained, "--out", tmp_path / "x",
                                   *flags)
        if outcome == "clear" and field not in text:
            outcome = "silent_wrong"
        record("resume", f"resume with {' '.join(flags)}", outcome if outcome != "ok" else "silent_wrong", text)
    # another .npz of the same name, shape and sizes, other labels
    data = load_digits().subset(60, 20)
    first, second = tmp_path / "a" / "user.npz", tmp_path / "b" / "user.npz"
    first.parent.mkdir()
    second.parent.mkdir()
    save_npz_dataset(first, data)
    save_npz_dataset(second, type(data)(**{**data.__dict__, "y_train": (data.y_train + 1) % 10}))
    outcome, _, text = run_cli("train", *TINY, "--dataset", first, "--out", tmp_path / "npz")
    assert outcome == "ok", text
    outcome, _, text = run_cli("train", *TINY, "--epochs", "2", "--dataset", second, "--resume",
                               tmp_path / "npz" / "stl_seed0.h5", "--out", tmp_path / "npz2")
    if outcome == "clear" and "data" not in text:
        outcome = "silent_wrong"
    record("resume", "resume on another .npz of the same name and shape", outcome if outcome != "ok"
           else "silent_wrong", text)
    # a finished record: nothing to resume, and no record path printed that is never written
    outcome, _, text = run_cli("train", *TINY, "--epochs", "2", "--resume", trained, "--out", tmp_path / "fin")
    record("resume", "resume a finished record (--epochs as recorded)", outcome if outcome != "ok"
           else "silent_wrong", text)
    assert not failures("resume")


def test_class2_a_sweep_folder_holds_one_sweep(workdir, swept, compared, tmp_path):
    """Class 2: another sweep into a sweep's --out, a sweep into a compare folder, a claimed folder:
    refused unless --force, the folder unchanged; the same sweep again is a rerun."""
    d = _copy_tree(swept, tmp_path / "s")
    before = _snapshot(d)
    outcome, _, text = _sweep(d, "theta_init=2.0")
    record("sweep-folders", "another sweep into a sweep's folder", outcome if outcome != "ok" and
           _snapshot(d) == before else "silent_wrong", text)
    outcome, _, text = _sweep(d)
    record("sweep-folders", "the same sweep again (a rerun)", outcome, text)
    c = _copy_tree(compared, tmp_path / "c")
    with contextlib.suppress(FileNotFoundError):
        (c / ".stlsim.lock").unlink()              # a stale lock an earlier test left: its removal changes nothing
    before = _snapshot(c)
    outcome, _, text = _sweep(c)
    record("sweep-folders", "a sweep into a compare run folder", outcome if outcome != "ok" and
           _snapshot(c) == before else "silent_wrong", text)
    d = _copy_tree(swept, tmp_path / "s")
    (d / ".stlsim.lock").write_text(str(os.getppid()))
    outcome, _, text = _sweep(d)
    record("sweep-folders", "a sweep into a folder claimed by a live process",
           outcome if "claimed" in text else "silent_wrong", text)
    (d / ".stlsim.lock").unlink()
    outcome, _, text = _sweep(d, "theta_init=2.0", "--force")
    import csv

    ids = {r["task_id"] for r in csv.DictReader(open(d / "table.csv"))}
    meta = json.loads((d / "sweep.json").read_text())
    good = outcome == "ok" and ids == set(meta["task_ids"]) and meta["axes"] == [["theta_init", [2.0]]]
    record("sweep-folders", "--force: another sweep replaces the table and sweep.json together",
           "ok" if good else "silent_wrong", f"{outcome} {text} {ids} {meta['task_ids']}")
    assert not failures("sweep-folders")


def test_class10_grids_are_checked_and_bounded(workdir, tmp_path):
    """Class 10: empty grids, unknown architectures and data sets (also with --dry-run), huge grids."""
    huge = " ".join(f"{name}=" + ",".join(str(v) for v in values) for name, values in
                    (("theta_init", np.round(np.linspace(0.5, 2.0, 1000), 6)),
                     ("lr", np.round(np.geomspace(1e-4, 1e-2, 1000), 9))))
    cases = {"--grid ''": [""], "--grid ' '": [" "], "an unknown arch (dry run)": ["arch=mlp,bogus", "--dry-run"],
             "an unknown data set (dry run)": ["dataset=digits,nowhere.npz", "--dry-run"],
             "an unknown data set name (dry run)": ["dataset=digits,mnst", "--dry-run"],
             "a grid of 10**6 cells (dry run)": [huge, "--dry-run"]}
    for name, argv in cases.items():
        t0 = time.perf_counter()
        outcome, _, text = run_cli("sweep", "--grid", *argv, "--seeds", "1", *TINY_SWEEP, "--out", tmp_path / "g")
        if time.perf_counter() - t0 > 20:
            outcome = "hang"
        record("grids", name, outcome if outcome != "ok" else "silent_wrong", text[-200:])
    outcome, _, text = run_cli("sweep", "--grid", "theta_init=1,2,3", "--seeds", "2", "--max-tasks", "8",
                               *TINY_SWEEP, "--dry-run", "--out", tmp_path / "g")
    record("grids", "--max-tasks below the grid's 12 tasks", outcome if "max-tasks" in text else "silent_wrong", text)
    outcome, _, text = run_cli("sweep", "--grid", "theta_init=1,2,3", "--seeds", "2", "--max-tasks", "12",
                               *TINY_SWEEP, "--dry-run", "--out", tmp_path / "g")
    record("grids", "--max-tasks at the grid's 12 tasks", outcome, text)
    assert not failures("grids")


def test_class11_signals_and_foreign_locks(workdir, tmp_path):
    """Class 11: SIGHUP and SIGQUIT are handled like SIGINT; SIGTERM to a sweep ends it with its summary
    and no temp files; a lock naming a live process that is no stlsim run yields to --force."""
    from stlsim.train.records import load_record

    long_run = [a if a != "1" or i != TINY.index("--epochs") + 1 else "40" for i, a in enumerate(TINY)]
    for sig in [s for s in (getattr(signal, "SIGHUP", None), getattr(signal, "SIGQUIT", None)) if s]:
        out = tmp_path / f"sig_{sig.name}"
        proc = _cli_process("train", *long_run, "--out", out, cwd=workdir)
        t0 = time.perf_counter()
        while not (out / "stl_seed0.h5").exists() and proc.poll() is None and time.perf_counter() - t0 < 60:
            time.sleep(0.02)
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            record("signals", f"train {sig.name}", "hang")
            continue
        try:
            rec = load_record(out / "stl_seed0.h5")
            good = rec["attrs"]["interrupted"] and proc.returncode == 130 and "Traceback" not in err
        except (ValueError, FileNotFoundError) as exc:
            good, err = False, str(exc)
        record("signals", f"train {sig.name}", "ok" if good else "data_lost", f"{proc.returncode} {err[-200:]}")
    # SIGTERM to a sweep: its summary, exit 130, a table, no temp files, no leaked semaphores
    out = tmp_path / "sweep_term"
    proc = _cli_process("sweep", "--grid", "theta_init=1.0,1.5,2.0", "--seeds", "1", "--modes", "stl,sl",
                        *[a if a != "1" or i != TINY_SWEEP.index("--epochs") + 1 else "20"
                          for i, a in enumerate(TINY_SWEEP) if a != "--quiet"], "--scheduler", "local",
                        "--max-workers", "2", "--out", out, cwd=workdir)
    t0 = time.perf_counter()
    while not list((out / "records").glob("*.h5")) if (out / "records").exists() else True:
        if proc.poll() is not None or time.perf_counter() - t0 > 60:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    try:
        stdout, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, err = "", "hang"
    temps = [str(p) for p in out.rglob("*.tmp")]
    good = proc.returncode == 130 and "sweep:" in stdout + err and (out / "table.csv").exists() and not temps \
        and "Traceback" not in err and "leaked" not in err
    record("signals", "SIGTERM to a sweep", "ok" if good else "hang" if err == "hang" else "data_lost",
           f"{proc.returncode} {temps} {err[-300:]}")
    # a lock naming a live process that is no stlsim run: --force takes the folder
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        for command in ("train", "compare"):
            out = tmp_path / f"locked_{command}"
            out.mkdir()
            (out / ".stlsim.lock").write_text(str(sleeper.pid))
            flags = TINY if command == "train" else [*TINY_COMPARE, "--seeds", "1", "--modes", "stl"]
            outcome, _, text = run_cli(command, *flags, "--out", out)
            record("folders", f"{command} into a folder locked by a live non-stlsim process", outcome
                   if outcome != "ok" and "claimed" in text else "silent_wrong", text)
            outcome, _, text = run_cli(command, *flags, "--out", out, "--force")
            record("folders", f"{command} --force into a folder locked by a live non-stlsim process",
                   "ok" if outcome == "ok" else "silent_wrong", text)       # refused even with --force
    finally:
        sleeper.kill()
    assert not failures("signals") and not failures("folders")


def _records_in(folder):
    """(mode, seed) of every record in a compare folder that holds at least one finished epoch."""
    from stlsim.train.records import load_record

    found = set()
    for path in folder.glob("*_seed*.h5"):
        try:
            rec = load_record(path)
        except (ValueError, FileNotFoundError):
            continue
        if len(rec["history"]["epoch"]):
            found.add((rec["attrs"]["mode"], int(rec["attrs"]["seed"])))
    return found


def _listed(folder):
    try:
        results = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return {(m, int(s)) for m, summary in results["modes"].items() for s in summary["seeds"]}


def _children(pid):
    """Process ids of every descendant of ``pid`` (Linux /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        frontier += kids
    return out


PARALLEL = [*[a if a != "1" or i != TINY.index("--epochs") + 1 else "40" for i, a in enumerate(TINY)],
            "--max-workers", "2", "--scheduler", "local"]


def test_class6_parallel_compare_keeps_every_finished_run(workdir, tmp_path):
    """Class 6: a worker's error is one line (no Dask traceback), a dead worker or a second Ctrl-C never
    drops a finished record from results.json."""
    pytest.importorskip("distributed")
    if not os.path.isdir("/proc"):
        pytest.skip("needs /proc to find the worker processes")
    # an error inside a worker: the record's path is a folder, so its save fails there
    out = tmp_path / "worker_error"
    (out / "stl_seed0.h5").mkdir(parents=True)
    proc = _cli_process("compare", *TINY, "--max-workers", "2", "--scheduler", "local", "--seeds", "1",
                        "--modes", "stl,sl", "--out", out, cwd=workdir)
    _, err = proc.communicate(timeout=240)
    lines = [line for line in err.splitlines() if line.strip()]
    one_line = proc.returncode == 2 and lines and ERROR_LINE.match(lines[-1]) and "Traceback" not in err \
        and not any("distributed" in line for line in lines)
    kept = ("sl", 0) in (_listed(out) or set())
    record("parallel", "an error inside a worker", "clear" if one_line and kept else
           "data_lost" if not kept else "traceback", err[-400:])
    # a worker killed mid-run
    out = tmp_path / "killed_worker"
    proc = _cli_process("compare", *PARALLEL, "--seeds", "2", "--modes", "stl", "--out", out, cwd=workdir)
    t0 = time.perf_counter()
    while not list(out.glob("stl_seed*.h5")) and proc.poll() is None and time.perf_counter() - t0 < 120:
        time.sleep(0.05)
    workers = [p for p in _children(proc.pid) if p != proc.pid]
    if workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(workers[-1], signal.SIGKILL)
    _, err = proc.communicate(timeout=240)
    listed = _listed(out)
    good = listed is not None and _records_in(out) <= listed and "unexpected" not in err and "Traceback" not in err
    record("parallel", "a worker killed mid-run", "ok" if good else "data_lost",
           f"{proc.returncode} {listed} {_records_in(out)} {err[-300:]}")
    # a double Ctrl-C
    for k in range(2):
        out = tmp_path / f"double_int_{k}"
        proc = _cli_process("compare", *PARALLEL, "--seeds", "2", "--modes", "stl,sl", "--out", out, cwd=workdir)
        t0 = time.perf_counter()
        while len(list(out.glob("*_seed*.h5"))) < 2 and proc.poll() is None and time.perf_counter() - t0 < 120:
            time.sleep(0.05)
        time.sleep(0.1 * k)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            record("parallel", f"double Ctrl-C #{k}", "hang")
            continue
        listed = _listed(out)
        good = listed is not None and _records_in(out) <= listed and "Traceback" not in err
        record("parallel", f"double Ctrl-C #{k}", "ok" if good else "data_lost",
               f"{proc.returncode} {listed} {_records_in(out)} {err[-300:]}")
    assert not failures("parallel")


def test_class11_a_sweep_rerun_removes_temp_files_of_killed_saves(workdir, swept, tmp_path):
    """Class 11: temp files that a killed sweep left (its saves cut short) are removed by the rerun."""
    d = _copy_tree(swept, tmp_path / "s")
    left = [d / "records" / ".x.h5.abc123.h5.tmp", d / "tasks" / ".x.json.abc123.json.tmp", d / ".table.csv.a.csv.tmp"]
    for path in left:
        path.write_bytes(b"half")
    outcome, _, text = _sweep(d)
    remaining = [str(p) for p in d.rglob("*.tmp")]
    record("signals", "temp files of a killed sweep, then a rerun", "ok" if outcome == "ok" and not remaining
           else "data_lost" if remaining else outcome, f"{outcome} {remaining} {text[-200:]}")
    assert not failures("signals")
