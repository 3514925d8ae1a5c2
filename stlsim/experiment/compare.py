"""The main job: train STL, SL and TL side by side on the same data, seeds and network.

``run_comparison`` trains every (mode, seed), writes one HDF5 record per run,
``results.json`` (schema in ``docs/results.md``) and then the plots, and returns the results.
Besides the learning modes, ``"ann"`` trains the ReLU network of the same dense shape with
the same optimiser, data order and seed (``stlsim.train.ann``): the accuracy the spiking
constraint is measured against. The runs may train on Dask worker processes
(``max_workers``; ``stlsim compare`` uses every usable core), through the one job runner
``stlsim.experiment.executor``, whose thread policy makes the results the same bit for bit.
``compare(spec, ...)`` is the run of a ``RunSpec``: it loads the data and calls
``run_comparison``.

A run folder holds one run. ``run.json`` in it names the run (data set, network,
training configuration, seeds, modes); a rerun of the same run may write there again,
another run is refused unless ``force=True``, which first removes the old run's files.
While a run trains, ``.stlsim.lock`` (holding the process id) claims the folder, so a
second concurrent run into it is refused. Ctrl-C or SIGTERM stops between batches; the
finished runs are summarised in ``results.json`` (``"interrupted": true``) before any
figure is drawn. With worker processes the same holds: the workers ignore the terminal's
signals, and on the first one this process asks each of them to stop after its batch and
save its finished epochs (runs not yet begun are not begun); a second signal stops at
once, and the runs still training then keep only the epochs their records already hold.
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import time

import numpy as np

from .._checks import check_choice, check_int, fail
from .._io import LOCK_NAME, atomic_path, claim_folder, provenance, say  # noqa: F401 - LOCK_NAME: kept importable
from ..train.signals import interrupt_guard
from .executor import Executor, usable_cores
from .spec import MODES as COMPARE_MODES

__all__ = ["COMPARE_MODES", "RESULTS_SCHEMA_VERSION", "compare", "format_table", "run_comparison",
           "usable_cores", "train_one"]

RESULTS_SCHEMA_VERSION = 1
RUN_NAME = "run.json"
_FIGURES = ("curves.png", "firing_rates.png", "thresholds.png", "raster_stl.png")


def _lock(out_dir, force: bool = False):
    """Hold ``out_dir/.stlsim.lock`` for the block (``stlsim._io.claim_folder``)."""
    return claim_folder(out_dir, "compare", force)


def _identity(data, netcfg, trainconfig, modes, seeds) -> dict:
    """What defines a compare run (``run.json``)."""
    return json.loads(json.dumps({
        "dataset": {"name": data.name, "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test))},
        "network": dataclasses.asdict(netcfg),
        "training": {k: v for k, v in dataclasses.asdict(trainconfig).items()
                     if k not in ("mode", "seed", "backend", "eval_batch_size")},
        "seeds": list(seeds), "modes": list(modes)}, sort_keys=True, default=str))


def _first_difference(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{prefix}{key}"
            found = _first_difference(a[key], b[key], f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else prefix.rstrip(".") or "(whole)"


def _identity_of_results(path):
    """The identity of a run from its results.json (folders written before run.json); None if unknown."""
    try:
        with open(path) as f:
            old = json.load(f)
        training = {k: v for k, v in old["config"]["training"].items() if k not in ("backend", "eval_batch_size")}
        return json.loads(json.dumps({
            "dataset": {k: old["dataset"][k] for k in ("name", "n_train", "n_test")},
            "network": old["config"]["network"], "training": training,
            "seeds": old["config"]["seeds"], "modes": old["config"]["modes"]}, sort_keys=True, default=str))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _old_run_files(out_dir) -> list:
    names = [os.path.join(out_dir, n) for n in ("results.json", "results.previous.json", RUN_NAME) + _FIGURES]
    names += glob.glob(os.path.join(out_dir, "*_seed*.h5"))
    return [n for n in names if os.path.isfile(n)]


def _claim(out_dir, identity: dict, force: bool):
    """Refuse (or with ``force`` clear) a folder holding another run; write run.json."""
    run_file = os.path.join(out_dir, RUN_NAME)
    # Temporary files of writes cut short by SIGKILL: nobody else writes here while we hold the lock.
    for name in glob.glob(os.path.join(out_dir, ".*.tmp")):
        with contextlib.suppress(OSError):
            os.remove(name)
    old = _old_run_files(out_dir)
    if old and not force:
        other = None
        try:
            with open(run_file) as f:
                other = json.load(f)
        except FileNotFoundError:
            other = _identity_of_results(os.path.join(out_dir, "results.json"))
        except (OSError, ValueError):
            other = {"unreadable": run_file}
        if other is None:
            raise fail("out", "an empty folder or one holding this same run",
                       f"{out_dir!r}, which holds files of a run of unknown settings "
                       f"({os.path.basename(old[0])}); pass --force to replace them", "compare")
        field = _first_difference(identity, other)
        if field:
            raise fail("out", "an empty folder or one holding this same run",
                       f"{out_dir!r}, which holds another run (its {field} differs); pass --force to "
                       "replace it, or choose another --out", "compare")
    if force:
        for name in old:
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)
    elif os.path.exists(os.path.join(out_dir, "results.json")):
        # this same run again: the old summary must not sit beside the new records
        os.replace(os.path.join(out_dir, "results.json"), os.path.join(out_dir, "results.previous.json"))
    with atomic_path(run_file) as tmp:
        with open(tmp, "w") as f:
            json.dump(identity, f, indent=1, sort_keys=True)


def _mode_summary(runs) -> dict:
    """One mode's summary over its seeds; the ANN's lacks the spiking fields (no spikes, no thresholds)."""
    final_acc = [run["history"]["test_accuracy"][-1] for run in runs]
    best_acc = [max(run["history"]["test_accuracy"]) for run in runs]
    summary = {
        "test_accuracy_mean": float(np.mean(final_acc)),
        "test_accuracy_std": float(np.std(final_acc)),       # population SD (ddof 0), kept for older readers
        "test_accuracy_sd": float(np.std(final_acc, ddof=1)) if len(final_acc) > 1 else float("nan"),
        "test_accuracy_per_seed": [float(a) for a in final_acc],
        "best_test_accuracy_per_seed": [float(a) for a in best_acc],
    }
    if runs[0]["mode"] != "ann":
        rates = np.array([run["history"]["firing_rate"][-1] for run in runs], dtype=float)
        theta_mean = np.array([run["history"]["theta_mean"][-1] for run in runs], dtype=float)
        theta_std = np.array([run["history"]["theta_std"][-1] for run in runs], dtype=float)
        summary.update({
            "firing_rate_per_layer": rates.mean(axis=0).tolist(),
            "theta_mean_per_layer": theta_mean.mean(axis=0).tolist(),
            "theta_std_per_layer": theta_std.mean(axis=0).tolist()})
    summary.update({
        "wall_time_s_per_seed": [float(run["wall_time"]) for run in runs],
        "seeds": [int(run["seed"]) for run in runs],
        "interrupted": any(run["interrupted"] for run in runs),
        "history_per_seed": [run["history"] for run in runs],
    })
    return summary


def format_table(results: dict) -> str:
    """The comparison table printed at the end of ``stlsim compare``: aligned columns; the spread
    is the sample standard deviation over the seeds (n - 1), as in the sweep reports."""
    header = ["mode", "test accuracy: mean +- SD (sample, over seeds)", "per seed", "firing rate per layer",
              "theta mean per layer", "time per seed"]
    rows = []
    for mode, m in results["modes"].items():
        accs = np.asarray(m["test_accuracy_per_seed"], dtype=float)
        sd = float(np.std(accs, ddof=1)) if accs.size > 1 else float("nan")
        spread = f" +- {sd:.4f}" if accs.size > 1 else " (one seed)"
        rows.append([mode.upper(), f"{m['test_accuracy_mean']:.4f}{spread}",
                     " ".join(f"{a:.3f}" for a in accs),
                     " ".join(f"{r:.3f}" for r in m.get("firing_rate_per_layer", [])) or "- (ReLU)",
                     " ".join(f"{t:.2f}" for t in m.get("theta_mean_per_layer", [])) or "- (none)",
                     f"{np.mean(m['wall_time_s_per_seed']):.1f}s"])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: " | ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), "-|-".join("-" * w for w in widths)] + [line(r) for r in rows])


def run_line(mode, seed, result, epochs) -> str:
    """One line about a finished run (the progress of the worker path and of the ANN runs)."""
    acc = result.history["test_accuracy"]
    done = f"interrupted after {len(acc)} of {epochs} epochs" if result.interrupted else f"{len(acc)} epochs"
    what = f"test acc {acc[-1]:.4f}" if acc else "no epoch finished"
    return f"{mode.upper()} seed {seed}: {what} ({done}, {result.wall_time:.1f}s)"


def train_one(data, netcfg, trainconfig, mode, seed, out_dir, progress=False, label=None):
    """One run of a comparison, here: (net, result); ``net`` is None for the ANN baseline.

    The spiking modes train with ``stlsim.train.train``; ``"ann"`` with
    ``stlsim.train.ann.train_ann`` (no checkpoints: a first interrupt lets it finish).
    The record is ``out_dir/<mode>_seed<seed>.h5``. Serial and worker runs both call this.
    """
    from ..train import build_network, train

    record_path = os.path.join(out_dir, f"{mode}_seed{seed}.h5")
    if mode == "ann":
        from ..train.ann import train_ann
        from ..train.config import RunResult

        history, _, _, wall = train_ann(data, netcfg, dataclasses.replace(trainconfig, seed=seed),
                                        record_path=record_path)
        result = RunResult(mode="ann", seed=seed, history=history, wall_time=wall, interrupted=False,
                           theta_init={}, record_path=record_path)
        return None, result
    net = build_network(netcfg, data.sample_shape, data.n_classes, seed=seed, backend=trainconfig.backend)
    config = dataclasses.replace(trainconfig, mode=mode, seed=seed)
    result = train(net, data, config, record_path=record_path, progress=progress, netcfg=netcfg, label=label)
    return net, result


def _compare_job(shared, job):
    """One (mode, seed) run as an executor job: (result, final parameters, buffers).

    ``shared`` = (data, netcfg, trainconfig, out_dir, progress); ``job`` = (mode, seed, label).
    """
    data, netcfg, trainconfig, out_dir, progress = shared
    mode, seed, label = job
    net, result = train_one(data, netcfg, trainconfig, mode, seed, out_dir, progress=progress, label=label)
    if net is None:                               # the ANN baseline: its parameters stay in its record
        return result, {}, {}
    return result, {k: v.copy() for k, v in net.params.items()}, \
        {k: v.copy() for k, v in getattr(net, "buffers", {}).items()}


def _rebuilt(data, netcfg, trainconfig, seed, params, buffers):
    """The network of a finished run, from its final parameters."""
    from ..train import build_network

    net = build_network(netcfg, data.sample_shape, data.n_classes, seed=seed, backend=trainconfig.backend)
    for key, value in params.items():
        net.params[key][...] = value
    for key, value in buffers.items():
        net.buffers[key][...] = value
    return net


def compare(spec, *, modes=("stl", "sl", "tl"), seeds=(0, 1, 2), out_dir=None, progress=True, plots=True,
            log=say, max_workers=None, scheduler: str = "local", force: bool = False, fig_format: str = "png",
            dpi: int | None = None) -> dict:
    """``run_comparison`` of a ``RunSpec`` (``stlsim.experiment.spec``): loads its data, then trains
    every mode on every seed. ``out_dir`` defaults to ``runs/compare-<data set>``; ``max_workers``
    to every usable core (``executor.worker_count``)."""
    from .._io import path_component

    data, netcfg, trainconfig = spec.load()
    if out_dir is None:
        out_dir = os.path.join("runs", f"compare-{path_component(data.name)}")
    return run_comparison(data, netcfg, trainconfig, modes=modes, seeds=seeds, out_dir=out_dir, progress=progress,
                          plots=plots, log=log, max_workers=max_workers, scheduler=scheduler, force=force,
                          fig_format=fig_format, dpi=dpi)


def run_comparison(data, netcfg, trainconfig, *, modes=("stl", "sl", "tl"), seeds=(0, 1, 2), out_dir="runs/compare",
                   progress=True, plots=True, log=say, max_workers: int | None = 1, scheduler: str = "local",
                   force: bool = False, fig_format: str = "png", dpi: int | None = None) -> dict:
    """Train every mode on every seed; write records, plots and results.json to ``out_dir``.

    ``modes``: any of ``COMPARE_MODES`` ("stl", "sl", "tl", and "ann", the ReLU baseline of a
    dense ("mlp") network). ``max_workers`` > 1 (None: every usable core) trains the runs on
    that many Dask worker processes (``scheduler``: "local" for an embedded LocalCluster,
    "serial" for this process, or a scheduler's address; serial, with one line saying so,
    without dask.distributed). Every run trains under the executor's one thread policy, so
    the results equal the serial ones bit for bit. ``force``: replace another run's files in
    ``out_dir`` (otherwise refused). ``log``: a callable taking one line of progress (None: quiet).
    """
    modes = [check_choice(m, "modes", COMPARE_MODES, "run_comparison") for m in modes]
    if not modes or len(set(modes)) != len(modes):
        raise fail("modes", "a non-empty list of distinct learning modes", repr(list(modes)), "run_comparison")
    if "ann" in modes and netcfg.arch != "mlp":
        raise fail("arch", "'mlp' (a dense network) when the modes include ann (the ReLU baseline has "
                   "the dense shape only)", repr(netcfg.arch), "run_comparison")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise fail("seeds", "a non-empty list of distinct seeds >= 0", repr(seeds), "run_comparison")
    if trainconfig.epochs < 1:
        raise fail("epochs", "at least 1 for a comparison", repr(trainconfig.epochs), "run_comparison")
    style = {"fmt": check_choice(fig_format, "fig_format", ("png", "pdf", "svg"), "run_comparison"),
             "dpi": None if dpi is None else check_int(dpi, "dpi", low=1, owner="run_comparison")}
    jobs = [(mode, seed) for mode in modes for seed in seeds]
    executor = Executor(scheduler, max_workers, n_jobs=len(jobs), log=log, owner="stlsim compare")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise fail("out", "a folder", f"{out_dir!r}, which is a file", "run_comparison")
    os.makedirs(out_dir, exist_ok=True)
    with _lock(out_dir, force), interrupt_guard() as signals:
        _claim(out_dir, _identity(data, netcfg, trainconfig, modes, seeds), force)
        return _run_claimed(data, netcfg, trainconfig, modes, seeds, out_dir, progress, plots, log,
                            executor, signals, style)


def _run_claimed(data, netcfg, trainconfig, modes, seeds, out_dir, progress, plots, log, executor, signals,
                 style):
    runs_by_mode = {mode: [] for mode in modes}
    thetas_by_mode = {}
    started = time.perf_counter()
    started_at = time.time() - 1.0             # records saved since then are this invocation's
    interrupted = False
    last_net = {}
    n = len(modes) * len(seeds)
    jobs = [(mode, seed, f"[run {k + 1}/{n}] {mode.upper()} seed {seed}")
            for k, (mode, seed) in enumerate((m, s) for m in modes for s in seeds)]
    finished = [0]

    def on_done(job, value):
        if value is None:
            return
        finished[0] += 1
        mode, seed, _ = job
        if log and progress:                 # one line per finished run: run k of N and the ETA of the rest
            elapsed = time.perf_counter() - started
            left = elapsed / finished[0] * (n - finished[0])
            eta = f"; eta {left:.0f}s" if finished[0] < n else ""
            log(f"[{finished[0]}/{n}] {run_line(mode, seed, value[0], trainconfig.epochs)}{eta}")

    shared = (data, netcfg, trainconfig, out_dir, progress and executor.serial)
    failed = []
    try:
        with executor:
            # After an interrupt no run begins; what is yielded has finished (or stopped after its batch).
            for (mode, seed, _), value in executor.run(_compare_job, jobs, shared=shared, on_done=on_done,
                                                       key="compare", scatter=True, errors="return"):
                if value is None:                    # a run the interrupt kept from beginning or finishing
                    interrupted = True
                    continue
                if isinstance(value, BaseException):  # the other runs go on; the error is raised at the end
                    failed.append((mode, seed, value))
                    if log:
                        log(f"{mode.upper()} seed {seed}: failed ({_one_line(value)})")
                    continue
                result, params, buffers = value
                runs_by_mode[mode].append(dataclasses.asdict(result))
                if mode != "ann" and seed == seeds[0]:
                    net = _rebuilt(data, netcfg, trainconfig, seed, params, buffers)
                    thetas_by_mode[mode] = {
                        "init": [result.theta_init[f"{i}.theta"] for i in net.spiking_layers],
                        "final": [net.params[f"{i}.theta"].copy() for i in net.spiking_layers]}
                    last_net[mode] = net
                interrupted = interrupted or result.interrupted
    except KeyboardInterrupt:
        interrupted = True
    interrupted = interrupted or bool(signals.requested)
    results_path = os.path.join(out_dir, "results.json")

    def write_results():
        with signals.protect(), atomic_path(results_path) as tmp:
            with open(tmp, "w") as f:
                json.dump(results, f, indent=1, default=float)

    # The summary is built and written under protect(): a second Ctrl-C while it is gathered
    # (reading the records, the provenance) must not lose the finished runs from results.json.
    with signals.protect():
        # Runs whose result never came back (a second Ctrl-C, a worker that died after its last save, an
        # error after it): what their records hold is kept, so no finished epoch is dropped from results.json.
        _recover_from_records(runs_by_mode, out_dir, trainconfig, seeds, since=started_at)
        runs_by_mode = {m: [r for r in runs if r["history"]["epoch"]] for m, runs in runs_by_mode.items()}
        runs_by_mode = {m: runs for m, runs in runs_by_mode.items() if runs}
        results = {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "provenance": provenance(),
            "dataset": {"name": data.name, "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)),
                        "n_classes": int(data.n_classes), "input_shape": list(data.input_shape),
                        "source": str(getattr(data, "source", "")), "license": str(getattr(data, "license", ""))},
            "config": {"network": dataclasses.asdict(netcfg),
                       "training": {k: v for k, v in dataclasses.asdict(trainconfig).items() if k not in ("mode", "seed")},
                       "seeds": list(seeds), "modes": list(modes)},
            "modes": {mode: _mode_summary(runs) for mode, runs in runs_by_mode.items()},
            "total_wall_time_s": time.perf_counter() - started,
            "interrupted": interrupted,
            "figures": {},
        }
        write_results()                  # before the figures: an interrupt there loses nothing
    if not interrupted:                  # the rerun is complete: its older summary has been replaced
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out_dir, "results.previous.json"))
    if plots and runs_by_mode and not signals.requested:
        from .. import plot

        figs = results["figures"]
        figs["curves"] = plot.training_curves(runs_by_mode, os.path.join(out_dir, "curves.png"),
                                              title=" vs ".join(m.upper() for m in runs_by_mode)
                                              + f" on {data.name}", **style)
        spiking = {m: runs for m, runs in runs_by_mode.items() if m != "ann"}   # an ANN has no spikes
        if spiking:
            figs["firing_rates"] = plot.firing_rates(spiking, os.path.join(out_dir, "firing_rates.png"), **style)
        thetas = {m: t for m, t in thetas_by_mode.items() if m in spiking}
        if thetas:
            figs["thresholds"] = plot.threshold_distributions(thetas, os.path.join(out_dir, "thresholds.png"),
                                                              **style)
        if "stl" in last_net:
            from ..data.encoding import encode, shape_inputs

            net = last_net["stl"]
            x = shape_inputs(net, data.x_test[:1], trainconfig.encoding == "frames")
            rec = net.forward(encode(x, trainconfig.timesteps, trainconfig.encoding,
                                     np.random.default_rng(0), net.dtype))
            figs["raster"] = plot.spike_raster(rec, os.path.join(out_dir, "raster_stl.png"),
                                               title=f"STL: spikes of test sample 0 (label {data.y_test[0]})",
                                               **style)
        figs = {k: os.path.basename(v) for k, v in figs.items()}
        results["figures"] = figs
        write_results()
    if failed:                           # results.json holds the runs that finished; the error is one line
        mode, seed, err = failed[0]
        if len(failed) == 1 and isinstance(err, Exception):
            raise err
        more = f" ({len(failed) - 1} more run(s) failed)" if len(failed) > 1 else ""
        raise RuntimeError(f"{mode} seed {seed} failed: {_one_line(err)}{more}")
    return results


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _recover_from_records(runs_by_mode, out_dir, trainconfig, seeds, since: float):
    """Add each (mode, seed) missing from ``runs_by_mode`` whose record in ``out_dir`` was saved by
    this invocation (at or after ``since``, a ``time.time()``) and holds finished epochs of this run
    (its mode, seed and training configuration)."""
    from ..train.records import load_record

    for mode, runs in runs_by_mode.items():
        have = {int(r["seed"]) for r in runs}
        for seed in seeds:
            path = os.path.join(out_dir, f"{mode}_seed{seed}.h5")
            if seed in have or not os.path.isfile(path) or os.path.getmtime(path) < since:
                continue
            try:
                rec = load_record(path)
            except (ValueError, OSError):
                continue
            config = rec["config"]
            if rec["attrs"].get("mode") != mode or int(rec["attrs"].get("seed", -1)) != seed or any(
                    config.get(k) != v for k, v in dataclasses.asdict(trainconfig).items()
                    if k not in ("mode", "seed", "backend", "eval_batch_size", "engine") and k in config):
                continue
            history = {k: np.asarray(v).tolist() for k, v in rec["history"].items()}
            if "epoch" in history:
                history["epoch"] = [int(e) for e in history["epoch"]]
            runs.append({"mode": mode, "seed": seed, "history": history, "wall_time": float("nan"),
                         "interrupted": bool(rec["attrs"].get("interrupted", True)) or
                         len(history.get("epoch", [])) < trainconfig.epochs,
                         "theta_init": {}, "record_path": path})
        runs.sort(key=lambda r: seeds.index(int(r["seed"])))
