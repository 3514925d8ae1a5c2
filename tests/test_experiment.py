"""stlsim.experiment: a run as a value (the option table, RunSpec), one executor, the command
line built from the table; what the house move had to keep (task ids, results bit for bit)."""
import contextlib
import csv
import glob
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from stlsim import cli
from stlsim.experiment.spec import LATER_OPTIONS, OPTIONS, RunSpec
from stlsim.experiment.sweep import expand, load_grid_file, make_grid, parse_grid_text, run_sweep
from stlsim.train import NetConfig, TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"hidden": [16], "epochs": 1, "timesteps": 3, "population": 2, "train_subset": 60, "test_subset": 30,
        "batch_size": 30, "dtype": "float64", "backend": "numpy"}


def base_options(**overrides):
    opts = {name: option.default for name, option in OPTIONS.items()}
    opts.update(TINY)
    opts.update(overrides)
    return opts


def read_csv(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in ("wall_time_s", "train_wall_time_s", "worker")}
                for row in csv.DictReader(f)]


# ----------------------------------------------------------------- one set of defaults --
def test_the_cli_defaults_are_the_run_specs_and_the_configs():
    args = cli.build_parser().parse_args(["compare"])
    assert cli._given(args) == {}                       # nothing given: every default comes from the table
    spec = RunSpec.from_options({})
    assert RunSpec.from_options(cli._given(args)) == spec
    assert spec.net == NetConfig() and spec.train == TrainConfig()
    assert (spec.net.theta_init, spec.net.init_gain, spec.net.dtype, spec.net.hidden) == (1.0, 4.0, "float32", [256])
    assert (spec.train.epochs, spec.train.timesteps, spec.train.encoding) == (30, 8, "rate")
    assert spec.data.dataset == "digits"


def test_run_spec_options_round_trip_and_replace():
    spec = RunSpec.from_options({"dataset": "digits", "lr": 1e-2, "hidden": [32, 16], "detach_reset": True})
    options = spec.options()
    assert json.loads(json.dumps(options)) == options and set(options) == set(OPTIONS)
    assert RunSpec.from_options(options) == spec
    other = spec.replace(lr=3e-3, theta_lr=1e-2)
    assert (other.train.lr, other.train.theta_lr, other.net.hidden) == (3e-3, 1e-2, [32, 16])
    assert spec.train.lr == 1e-2                      # a value: replace made a new one
    with pytest.raises(ValueError, match="did you mean 'lr'"):
        RunSpec.from_options({"lrr": 1})
    with pytest.raises(TypeError, match="option 'epochs'"):
        RunSpec.from_options({"epochs": "ten"})
    with pytest.raises(ValueError, match="option 'epochs'.*>= 1"):
        RunSpec.from_options({"epochs": 0})


def test_a_users_npz_file_is_opened_once_for_its_size(tmp_path, monkeypatch):
    import numpy as np

    from stlsim.data import load_dataset, save_npz_dataset
    from stlsim.experiment import spec as spec_module

    path = str(tmp_path / "d.npz")
    save_npz_dataset(path, load_dataset("digits").subset(400, 20))
    opened = []
    real = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    tasks = expand(parse_grid_text("lr=1e-3,2e-3,3e-3"), base_options(dataset=path, epochs=None), [0, 1], ["sl"])
    assert len(tasks) == 6 and {t.option_dict["epochs"] for t in tasks} == {spec_module.npz_epochs(60)}
    assert opened.count(path) <= 1


# ------------------------------------------------------------------------- the grids --
def test_the_committed_studies_keep_their_task_ids():
    """Re-derive every committed sweep's tasks from its grid file and recorded fixed options."""
    studies = sorted(glob.glob(os.path.join(ROOT, "validation", "results", "sweep_*", "sweep.json")))
    assert len(studies) >= 8
    for path in studies:
        folder = os.path.dirname(path)
        with open(path) as f:
            meta = json.load(f)
        grid = load_grid_file(os.path.join(folder, "grid.toml"))
        base = {name: option.default for name, option in OPTIONS.items()}
        base.update(meta["fixed"])
        spec = make_grid(grid.axes, {k: v for k, v in grid.fixed.items() if k not in meta["fixed"]})
        ids = [t.id for t in expand(spec, base, meta["seeds"], meta["modes"])]
        assert sorted(ids) == sorted(meta["task_ids"]), folder


def test_detach_reset_and_surrogate_param_are_grid_axes():
    tasks = expand(parse_grid_text("detach_reset=false,true surrogate_param=2,4"), base_options(), [0], ["stl"])
    assert [(t.option_dict["detach_reset"], t.option_dict["surrogate_param"]) for t in tasks] == \
        [(False, 2.0), (False, 4.0), (True, 2.0), (True, 4.0)]
    assert len({t.id for t in tasks}) == 4
    # at their defaults the options added later leave a task's id as it was
    plain = expand(parse_grid_text("lr=1e-3"), base_options(), [0], ["stl"])[0]
    same = expand(parse_grid_text("detach_reset=false"), base_options(lr=1e-3), [0], ["stl"])[0]
    assert plain.id == same.id and set(LATER_OPTIONS) <= set(plain.option_dict)
    spec = RunSpec.from_options(tasks[2].option_dict)
    assert spec.net.detach_reset is True and spec.net.surrogate_param == 2.0


# --------------------------------------------------------------------- the command line --
def test_compare_help_shows_groups_and_every_default(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["compare", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for group in ("data options", "network options", "training options", "execution options", "output options",
                  "comparison options"):
        assert group in text, group
    for option in OPTIONS.values():
        assert option.flag in text, option.flag
    helps = text.split("options:", 1)[1]
    flags = [line for line in helps.splitlines() if line.strip().startswith("--") and "--help" not in line]
    assert flags and "(default:" in " ".join(helps.split())
    assert " ".join(helps.split()).count("(default:") >= len(OPTIONS) + 6


def test_no_abbreviations_and_a_hint_for_a_close_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["compare", "--seed", "1"])
    assert exit_.value.code == 2
    assert "--seeds" in capsys.readouterr().err


def test_debug_is_accepted_after_the_subcommand(capsys, tmp_path):
    missing = str(tmp_path / "missing.npz")
    assert cli.main(["compare", "--dataset", missing, "--out", str(tmp_path / "x")]) == 2     # one line
    assert "error:" in capsys.readouterr().err
    with pytest.raises(OSError):                              # --debug: the traceback
        cli.main(["compare", "--dataset", missing, "--out", str(tmp_path / "x"), "--debug"])
    with pytest.raises(OSError):
        cli.main(["--debug", "compare", "--dataset", missing, "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit):                           # a bad value: argparse's own message
        cli.main(["compare", "--epochs", "0"])
    assert "`--epochs` must be a number >= 1. Got 0 instead." in capsys.readouterr().err


def test_the_compare_table_is_aligned_and_names_its_sample_sd():
    from stlsim.experiment.compare import format_table

    with open(os.path.join(ROOT, "tests", "data", "compare_default_short.json")) as f:
        results = json.load(f)
    lines = format_table(results).splitlines()
    assert "SD (sample" in lines[0] and len(lines) == 2 + len(results["modes"])
    bars = {tuple(i for i, ch in enumerate(line) if ch == "|") for line in lines[:1] + lines[2:]}
    assert len(bars) == 1                                  # every row's columns line up
    stl = results["modes"]["stl"]["test_accuracy_per_seed"]
    sample_sd = (sum((a - sum(stl) / 2) ** 2 for a in stl) / (len(stl) - 1)) ** 0.5
    assert f"+- {sample_sd:.4f}" in lines[2]


def test_version(capsys):
    import stlsim

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"stlsim {stlsim.__version__}"


def test_library_modules_do_not_parse_text():
    import stlsim.experiment.compare
    import stlsim.experiment.sweep.grid
    import stlsim.experiment.sweep.runner  # noqa: F401 - imported for sys.modules

    for name, module in list(sys.modules.items()):
        if name.startswith("stlsim") and name not in ("stlsim.cli", "stlsim.__main__"):
            assert "argparse" not in vars(module), name


# ---------------------------------------------------------- the same result anywhere --
GOLDEN_BLAS_KERNEL = "Haswell"     # the OpenBLAS kernel of the machine that wrote compare_default_short.json
SHORT = ["compare", "--epochs", "2", "--train-subset", "300", "--test-subset", "100", "--seeds", "2", "--quiet"]


def _numbers(results: dict) -> dict:
    """results.json without what depends on the clock or the machine."""
    out = json.loads(json.dumps(results))
    for key in ("provenance", "total_wall_time_s", "figures"):
        out.pop(key, None)
    out["dataset"].pop("source")                 # the path of the bundled file: where the checkout is
    for mode in out["modes"].values():
        mode.pop("wall_time_s_per_seed")
        for history in mode["history_per_seed"]:
            history.pop("epoch_time")
    return out


@pytest.mark.parametrize("workers", [[], ["--max-workers", "1"], ["--scheduler", "serial"]])
def test_compare_without_flags_gives_the_results_it_gave_before(tmp_path, workers):
    """The default compare (every usable core), one run after the other and serial: the results.json
    that the code before the move to stlsim.experiment wrote (commit 9b03f61, this machine type's
    OpenBLAS), bit for bit. Six threshold spreads (``theta_std``) were rewritten since, by the
    change that made the float32 kernels compute in float32 as the NumPy reference does
    (``kernels.scalar.cast_like``): each moved by at most 2.2e-7 relative, and nothing else
    (accuracies, losses, rates, learning rates) moved."""
    if workers == [] or "--max-workers" not in workers:
        pytest.importorskip("distributed")
    from stlsim._io import thread_settings

    kernels = {b.get("architecture") for b in thread_settings()["blas"]}
    if kernels != {GOLDEN_BLAS_KERNEL}:       # OpenBLAS picks its kernel per CPU: the last bits may differ
        pytest.skip(f"the golden results.json was computed with OpenBLAS's {GOLDEN_BLAS_KERNEL} kernel; "
                    f"this machine uses {sorted(map(str, kernels))}")
    with open(os.path.join(ROOT, "tests", "data", "compare_default_short.json")) as f:
        before = json.load(f)
    out = str(tmp_path / "run")
    code = subprocess.run([sys.executable, "-m", "stlsim", *SHORT, *workers, "--out", out], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=600)
    assert code.returncode == 0, code.stderr[-2000:]
    with open(os.path.join(out, "results.json")) as f:
        now = json.load(f)
    now_numbers, before_numbers = _numbers(now), _numbers(before)
    for mode in now_numbers["modes"].values():          # a field added since: the sample SD
        assert mode.pop("test_accuracy_sd") >= 0
    for name in ("weight_decay_mode", "decay_thresholds", "val_fraction"):    # options added since (weight decay forms, validation)
        assert now_numbers["config"]["training"].pop(name) == LATER_OPTIONS[name]
    for name in ("recurrent", "adaptation", "adapt_beta", "adapt_rho", "learn_adapt_beta",
                 "learn_adapt_rho"):                            # options added since (recurrent, adaptive layers)
        assert now_numbers["config"]["network"].pop(name) == LATER_OPTIONS[name]
    assert now_numbers == before_numbers
    assert json.loads(now["provenance"]["threads"])["blas"]          # the thread settings are recorded


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _dask_cluster(n_workers=2):
    """``dask scheduler`` and ``n_workers`` ``dask worker`` processes on 127.0.0.1; yields the address."""
    pytest.importorskip("distributed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        from distributed import Client

        for _ in range(n_workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                 "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 120
        while True:
            try:
                with Client(address, timeout=5) as client:
                    if len(client.scheduler_info()["workers"]) == n_workers:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("the dask scheduler and workers did not start in 120 s")
            time.sleep(1)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
            if proc.poll() is None:
                proc.kill()


def test_a_sweep_on_a_named_scheduler_equals_the_serial_sweep(tmp_path):
    tasks = expand(parse_grid_text("theta_init=1,2"), base_options(dtype="float32", backend="numba"), [0],
                   ["stl", "sl"])
    serial = str(tmp_path / "serial")
    assert run_sweep(tasks, serial, scheduler="serial", log=None)["ok"] == 4
    with _dask_cluster(2) as address:
        remote = str(tmp_path / "remote")
        summary = run_sweep(tasks, remote, scheduler=address, log=None)
    assert summary["ok"] == 4 and summary["workers"] == 4
    assert read_csv(os.path.join(remote, "table.csv")) == read_csv(os.path.join(serial, "table.csv"))


def test_compare_scheduler_serial_runs_here(tmp_path, capsys):
    out = str(tmp_path / "serial")
    argv = ["compare", "--epochs", "1", "--train-subset", "60", "--test-subset", "30", "--seeds", "1",
            "--modes", "sl", "--hidden", "16", "-T", "3", "-P", "2", "--scheduler", "serial", "--quiet",
            "--out", out]
    assert cli.main(argv) == 0
    assert "1 runs here, one after the other" in capsys.readouterr().out
    assert os.path.isfile(os.path.join(out, "sl_seed0.h5"))


def test_compare_writes_its_figures_in_the_asked_format(tmp_path):
    out = str(tmp_path / "svg")
    argv = ["compare", "--epochs", "1", "--train-subset", "60", "--test-subset", "30", "--seeds", "1",
            "--modes", "stl", "--hidden", "16", "-T", "3", "-P", "2", "--max-workers", "1", "--quiet",
            "--fig-format", "svg", "--out", out]
    assert cli.main(argv) == 0
    with open(os.path.join(out, "results.json")) as f:
        figures = json.load(f)["figures"]
    assert sorted(figures.values()) == ["curves.svg", "firing_rates.svg", "raster_stl.svg", "thresholds.svg"]
    for name in figures.values():
        with open(os.path.join(out, name)) as f:
            assert "<svg" in f.read(2000)
    with pytest.raises(SystemExit):
        cli.main(argv[:-3] + ["--fig-format", "jpg", "--out", out])


def test_the_executor_yields_in_job_order_and_applies_one_thread_policy():
    from stlsim.experiment.executor import Executor, job_threads, thread_settings

    with job_threads():
        inside = thread_settings()
    assert all(b["num_threads"] == 1 for b in inside["blas"]) and inside.get("numba_threads", 1) == 1
    done = []
    with Executor("serial") as ex:
        got = list(ex.run(_square, [3, 1, 2], shared=10, on_done=lambda job, r: done.append(job)))
    assert got == [(3, 19), (1, 11), (2, 14)] and done == [3, 1, 2]
    with pytest.raises(TypeError), Executor("serial") as ex:
        list(ex.run(_square, [0], shared=None))
    with Executor("serial") as ex:
        (job, err), = ex.run(_square, [0], shared=None, errors="return")
    assert isinstance(err, TypeError)


def test_the_thread_policy_reaches_a_blas_first_loaded_inside_the_job():
    # a fresh process: SciPy's own OpenBLAS is not loaded yet when the first job starts
    code = ("import numpy\nfrom stlsim.experiment.executor import job_threads, thread_settings\n"
            "with job_threads():\n    import scipy.linalg\n    s = thread_settings()\n"
            "print(len(s['blas']), max(b['num_threads'] for b in s['blas']))")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    libraries, most = map(int, out.stdout.split())
    assert libraries >= 1 and most == 1, out.stdout


def _square(shared, job):
    return shared + job * job          # shared None: a TypeError, the job's own error
