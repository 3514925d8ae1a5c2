"""Run a sweep's tasks: serially, on an embedded Dask ``LocalCluster``, or on any Dask cluster.

One task is one ``stlsim train`` run (same options, same seed: the same record bit for bit)
with its own HDF5 record ``OUT/records/<id>.h5``. When a task ends, its worker writes its
row ``OUT/tasks/<id>.json`` (atomically), and the runner rewrites ``OUT/table.csv`` and
``OUT/history.csv`` from all rows (atomically), so:

* a rerun skips every task whose row says ``ok`` (rows are keyed by the task id, a hash
  of the task's resolved options, mode and seed); failed tasks are tried again;
* a task that raises gets a row with ``status = "error"`` and its error; the rest go on;
* a worker that dies mid-task (killed, out of memory) has its task run again by the Dask
  scheduler on another worker (up to ``distributed.scheduler.allowed-failures`` times;
  after that the row says ``killed``); a task whose record holds a checkpoint continues
  from it, which reproduces the uninterrupted run (``stlsim.train``'s resume);
* each task's random draws come from its own seed only, and every task runs under the one
  thread policy of ``stlsim.experiment.executor`` (BLAS and Numba at one thread, serially
  and on workers alike), so the results do not depend on the scheduler: a Dask run equals
  the serial run bit for bit (tested, with a LocalCluster and with a named scheduler).

On a cluster of several machines ``OUT`` must be a folder every worker can write to.
"""
from __future__ import annotations

import contextlib
import os
import time
import traceback

import numpy as np

from ..._checks import fail
from ..._io import say
from ...train.loop import RESUME_FREE
from ..executor import Executor
from ..spec import RunSpec
from .table import read_row, read_rows, write_tables

__all__ = ["run_task", "run_sweep"]

_TABLE_EVERY_S = 5.0   # rewrite the tables at most this often while tasks finish (and at the end)
_SOP_SAMPLES = 200     # test samples the synaptic operations are counted on


def task_spec(task) -> RunSpec:
    """The ``RunSpec`` of a sweep task (its resolved options, mode and seed)."""
    return RunSpec.from_options(task.option_dict, mode=task.mode, seed=task.seed, owner="stlsim sweep")


def _initial_rates(net, data, config):
    """Firing rates per layer of the untrained network on the test set (its own encoder draws)."""
    from ...train import evaluate

    test = evaluate(net, data.x_test, data.y_test, config, np.random.default_rng([config.seed, 6]),
                    backend=config.backend)
    return test["firing_rate"]


def _sops_per_sample(net, data, config):
    """Mean synaptic operations per test sample of the trained network (first samples)."""
    from ...analysis.energy import synaptic_operations
    from ...data.encoding import encode, shape_inputs

    x = shape_inputs(net, data.x_test[:_SOP_SAMPLES], config.encoding == "frames")
    x = encode(x, config.timesteps, config.encoding, np.random.default_rng([config.seed, 7]), net.dtype)
    ops = synaptic_operations(net, x, backend=config.backend)
    return float(ops.total / x.shape[1])


def run_task(task, out_dir: str) -> dict | None:
    """Train one task; write its record and row; return the row (never raises on a failed run).

    None: the task was interrupted (its record keeps the finished epochs; a rerun continues it).
    """
    from ...train import build_network, train

    started = time.perf_counter()
    record = os.path.join(out_dir, "records", f"{task.id}.h5")
    row = {"task_id": task.id, "status": "error", "error": "", "mode": task.mode, "seed": task.seed,
           "record": os.path.relpath(record, out_dir), "worker": f"{os.uname().nodename}:{os.getpid()}"}
    history = {}
    try:
        os.makedirs(os.path.dirname(record), exist_ok=True)
        if task.mode == "ann":
            history = _run_ann(task, record, row)
            row["status"] = "ok"
            row["wall_time_s"] = time.perf_counter() - started
            _write_row(out_dir, task, row, history)
            return row
        data, netcfg, config = task_spec(task).load()
        net = build_network(netcfg, data.sample_shape, data.n_classes, seed=task.seed, backend=config.backend)
        rates0 = _initial_rates(net, data, config)
        resume = record if _own_record(record, task, row) else None
        result = train(net, data, config, record_path=record, resume=resume, progress=False, netcfg=netcfg)
        if result.interrupted:
            return None
        history = result.history
        acc = history["test_accuracy"]
        if not acc:
            raise fail("epochs", "at least 1 for a sweep task", repr(config.epochs), "stlsim sweep")
        row.update(final_test_accuracy=float(acc[-1]), best_test_accuracy=float(max(acc)),
                   best_epoch=int(np.argmax(acc)) + 1, final_test_loss=float(history["test_loss"][-1]),
                   final_train_accuracy=float(history["train_accuracy"][-1]), epochs_done=len(acc),
                   train_wall_time_s=float(result.wall_time), n_test=int(len(data.y_test)))
        row.update(_validation_columns(history, config))
        for layer, rate in enumerate(rates0):
            row[f"firing_rate_init_l{layer}"] = float(rate)
        for layer, rate in enumerate(history["firing_rate"][-1]):
            row[f"firing_rate_l{layer}"] = float(rate)
        for layer, i in enumerate(net.spiking_layers):
            theta = net.params[f"{i}.theta"].astype(np.float64)
            theta0 = np.asarray(result.theta_init[f"{i}.theta"], dtype=np.float64)
            row[f"theta_mean_l{layer}"] = float(theta.mean())
            row[f"theta_shift_l{layer}"] = float(np.mean(np.abs(theta - theta0)))
        try:
            row["sops_per_sample"] = _sops_per_sample(net, data, config)
        except ImportError:  # pragma: no cover - analysis package unavailable
            row["sops_per_sample"] = float("nan")
        row["status"] = "ok"
    except KeyboardInterrupt:
        raise
    except Exception as err:   # a failed task is a row, not the end of the sweep
        row["error"] = f"{type(err).__name__}: {err}"
        row["traceback"] = traceback.format_exc(limit=8)
    row["wall_time_s"] = time.perf_counter() - started
    _write_row(out_dir, task, row, history)
    return row


def _validation_columns(history, config) -> dict:
    """The validation accuracy of a run with ``val_fraction`` > 0 (what tuning chooses by)."""
    val = history.get("val_accuracy") or []
    if not val:
        return {}
    return {"final_val_accuracy": float(val[-1]), "best_val_accuracy": float(max(val)),
            "final_val_loss": float(history["val_loss"][-1]), "val_fraction": float(config.val_fraction)}


def _own_record(path, task, row) -> bool:
    """Whether ``path`` holds a record of this task to continue; a record of another run (or a
    damaged one) is moved aside to ``<id>.h5.rejected`` and the task starts afresh."""
    from ...train.records import load_record

    if not os.path.exists(path):
        return False
    try:
        # what a resume may change (how far to train, where) may differ; train() checks the rest again
        check_record_matches(load_record(path), {"row": row, "options": task.option_dict}, path,
                             free=RESUME_FREE)
    except ValueError as err:
        os.replace(path, path + ".rejected")
        say(f"task {task.id}: its record was not its own run ({' '.join(str(err).split())}); moved to "
            f"{path}.rejected, the task starts afresh")
        return False
    return True


def _run_ann(task, record, row) -> dict:
    """The ANN baseline of a task's configuration (``stlsim.train.ann``); fills ``row``."""
    from ...train.ann import ann_macs_per_sample, train_ann

    data, netcfg, config = task_spec(task).load()
    history, _, sizes, wall = train_ann(data, netcfg, config, record_path=record)
    acc = history["test_accuracy"]
    row.update(final_test_accuracy=float(acc[-1]), best_test_accuracy=float(max(acc)),
               best_epoch=int(np.argmax(acc)) + 1, final_test_loss=float(history["test_loss"][-1]),
               final_train_accuracy=float(history["train_accuracy"][-1]), epochs_done=len(acc),
               train_wall_time_s=float(wall), macs_per_sample=ann_macs_per_sample(sizes),
               n_test=int(len(data.y_test)))
    row.update(_validation_columns(history, config))
    return history


def record_of(out_dir, tid) -> str:
    """The one place a task's record may be: ``OUT/records/<task id>.h5`` (inside ``OUT``)."""
    from ..._io import inside

    return inside(os.path.join(out_dir, "records"), f"{tid}.h5", "a task's record")


def checked_task_doc(out_dir, tid, *, owner="stlsim sweep") -> dict:
    """Task ``tid``'s document ``OUT/tasks/<tid>.json``, checked against its name.

    The document's own row must name ``tid``, and its options, mode and seed must hash to
    ``tid`` (``grid.task_id``): a row copied from another task or edited to another run is refused.
    """
    from .grid import task_id

    path = os.path.join(out_dir, "tasks", f"{tid}.json")
    doc = read_row(out_dir, tid)
    if not isinstance(doc, dict) or not isinstance(doc.get("row"), dict) or not isinstance(doc.get("options"), dict):
        raise fail(f"task file {path!r}", "a readable task row of `stlsim sweep`", "none or a damaged one", owner)
    row = doc["row"]
    try:
        own = task_id(doc["options"], row.get("mode"), row.get("seed"))
    except (TypeError, ValueError):
        own = None
    if row.get("task_id") != tid or own != tid:
        raise fail(f"task file {path!r}", f"the row of task {tid} (its options, mode and seed hash to its name)",
                   f"the row of task {row.get('task_id')!r}" if row.get("task_id") != tid
                   else "options, mode or seed of another task", owner)
    return doc


def check_record_matches(rec: dict, doc: dict, path, owner="stlsim sweep", free=()):
    """Refuse a record that is not the run of task document ``doc`` (mode, seed, options but ``free``)."""
    row, options = doc["row"], {k: v for k, v in doc["options"].items() if k not in free}
    attrs = rec.get("attrs", {})
    if attrs.get("mode") != row.get("mode") or attrs.get("seed") != row.get("seed"):
        raise fail(f"record {str(path)!r}", f"the run of task {row.get('task_id')} ({row.get('mode')} seed "
                   f"{row.get('seed')})", f"a record of {attrs.get('mode')} seed {attrs.get('seed')}", owner)
    config = rec.get("config", {})
    for key, value in options.items():
        if key == "encoding" and config.get(key) == "frames":
            continue      # a frame data set (events, sequences) is fed as its frames, whatever the option says
        if key in config and value is not None and config[key] is not None and _norm(config[key]) != _norm(value):
            raise fail(f"record {str(path)!r}", f"the run of task {row.get('task_id')} ({key} {value!r})",
                       f"a record with {key} {config[key]!r}", owner)


def _norm(value):
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(value)


def _finished(out_dir, tid, doc, log) -> bool:
    """Whether task ``tid`` holds a finished run whose row agrees with its record (a rerun skips it).

    The row alone is not trusted: it must be the row of this task, its record must exist and be
    the run of this task, and the row's accuracies must be the record's.
    """
    if doc.get("row", {}).get("status") != "ok":
        return False
    import json

    import h5py       # in this process: attributes and one checksummed array per task, read fast

    try:
        doc = checked_task_doc(out_dir, tid)
        path = record_of(out_dir, tid)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"its record {path!r} is missing")
        with h5py.File(path, "r") as f:
            rec = {"attrs": {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()},
                   "config": json.loads(f.attrs["config"])}
            acc = np.asarray(f["history/test_accuracy"][()], dtype=float)
        check_record_matches(rec, doc, path)
        row = doc["row"]
        if not len(acc) or row.get("final_test_accuracy") != float(acc[-1]) or row.get("epochs_done") != len(acc) \
                or row.get("best_test_accuracy") != float(acc.max()):
            raise ValueError(f"its row's accuracies are not those of its record {path!r}")
    except (OSError, ValueError, TypeError, KeyError) as err:
        if log:
            log(f"task {tid}: not taken as finished ({' '.join(str(err).split())}); it runs again")
        return False
    return True


def _write_row(out_dir, task, row, history):
    from .table import write_json

    doc = {"row": row, "options": task.option_dict, "cell": [[k, v] for k, v in task.cell],
           "history": {k: np.asarray(v).tolist() for k, v in history.items()}}
    write_json(os.path.join(out_dir, "tasks", f"{task.id}.json"), doc)


def _killed_row(task, out_dir, err) -> dict:
    row = {"task_id": task.id, "status": "killed", "error": f"{type(err).__name__}: {err}",
           "mode": task.mode, "seed": task.seed, "record": os.path.join("records", f"{task.id}.h5")}
    _write_row(out_dir, task, row, {})
    return row


class _Progress:
    def __init__(self, total, skipped, log):
        self.total, self.done, self.failed, self.log = total, 0, 0, log
        self.start = time.perf_counter()
        if log and skipped:
            log(f"{skipped} finished task(s) found, skipped")

    def task_done(self, task, row):
        self.done += 1
        self.failed += row["status"] != "ok"
        if not self.log:
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        cell = " ".join(f"{k}={'+'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in task.cell)
        if row["status"] == "ok":
            what = f"test acc {row['final_test_accuracy']:.4f} ({row['wall_time_s']:.1f}s)"
        else:
            what = f"{row['status'].upper()}: {row['error'][:200]}"
        self.log(f"[{self.done}/{self.total}{f', {self.failed} failed' if self.failed else ''}, "
                 f"eta {eta:.0f}s] {task.mode.upper()} seed {task.seed} {cell}: {what}")


def _sweep_job(shared, task):
    """An executor job: ``task_fn(task, out_dir)``."""
    task_fn, out_dir = shared
    return task_fn(task, out_dir)


def _claim_sweep(out_dir, ids, force: bool, owner="stlsim sweep"):
    """A sweep folder holds one sweep: refuse a compare run's folder, and one whose ``sweep.json``
    names other tasks (another grid, seeds or modes), unless ``force``."""
    import json

    for name in ("run.json", "results.json"):
        if os.path.isfile(os.path.join(out_dir, name)) and not force:
            raise fail("out", "an empty folder or one of this sweep", f"{out_dir!r}, which holds the {name} of a "
                       "`stlsim compare` run; choose another --out (or pass --force)", owner)
    path = os.path.join(out_dir, "sweep.json")
    if ids is None or not os.path.isfile(path) or force:
        return
    try:
        with open(path) as f:
            old = json.load(f)
        old_ids = old["task_ids"]
    except (OSError, ValueError, KeyError, TypeError):
        old_ids = None
    if old_ids is None or sorted(old_ids) != sorted(ids):
        what = "an unreadable sweep.json" if old_ids is None else (
            f"another sweep ({len(set(old_ids) - set(ids))} of its {len(old_ids)} tasks are not in this one, "
            f"{len(set(ids) - set(old_ids))} of this one's {len(ids)} not in it)")
        raise fail("out", "an empty folder or one holding this same sweep (a rerun)",
                   f"{out_dir!r}, which holds {what}; choose another --out, or pass --force to replace its "
                   "table and sweep.json (the finished tasks both share are kept)", owner)


def run_sweep(tasks, out_dir, *, scheduler="local", max_workers=None, meta=None, task_fn=None,
              log=say, force: bool = False) -> dict:
    """Run ``tasks`` (from ``grid.expand``) into ``out_dir``; return a summary.

    ``scheduler``: "local" (an embedded LocalCluster, one single-threaded worker process per
    usable core, at most ``max_workers``), "serial" (this process, no Dask), or the address of
    a running Dask scheduler ("tcp://host:8786"); ``stlsim.experiment.executor`` runs them.
    Without dask.distributed installed, "local" falls back to serial. ``task_fn(task, out_dir)
    -> row`` replaces ``run_task`` (tests; a module-level function). ``meta`` is stored in
    ``OUT/sweep.json``.

    The folder is claimed (``.stlsim.lock``) while the sweep runs; a folder of a compare run or of
    another sweep (other task ids in its ``sweep.json``) is refused unless ``force``. SIGINT,
    SIGTERM, SIGHUP and SIGQUIT stop it alike: the finished tasks are kept, the tables written and
    the summary returned with ``interrupted`` True.
    """
    if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)
                                    or max_workers < 1):
        raise fail("max_workers", "an integer >= 1", repr(max_workers), "run_sweep")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise fail("out", "a folder", f"{out_dir!r}, which is a file", "stlsim sweep")
    os.makedirs(out_dir, exist_ok=True)
    from ..._io import claim_folder
    from ...train.signals import interrupt_guard

    with claim_folder(out_dir, "stlsim sweep", force), interrupt_guard() as signals:
        _claim_sweep(out_dir, [t.id for t in tasks] if meta is not None else None, force)
        return _run_claimed(tasks, out_dir, scheduler, max_workers, meta, task_fn, log, signals)


def _run_claimed(tasks, out_dir, scheduler, max_workers, meta, task_fn, log, signals) -> dict:
    import glob

    from .table import write_json

    for name in glob.glob(os.path.join(out_dir, "**", ".*.tmp"), recursive=True):   # saves cut short
        with contextlib.suppress(OSError):
            os.remove(name)

    task_fn = run_task if task_fn is None else task_fn
    os.makedirs(os.path.join(out_dir, "tasks"), exist_ok=True)
    started = time.perf_counter()
    if meta is not None:
        from ..._io import provenance

        write_json(os.path.join(out_dir, "sweep.json"), {**meta, "provenance": provenance(),
                                                          "task_ids": [t.id for t in tasks]})
    ids = [t.id for t in tasks]
    docs = {tid: doc for tid, doc in read_rows(out_dir).items() if tid in set(ids)}
    done = {tid for tid, doc in docs.items() if _finished(out_dir, tid, doc, log)}
    for tid in set(docs) - done:
        del docs[tid]                       # a row not trusted is no row: the task runs again
    todo = [t for t in tasks if t.id not in done]
    progress = _Progress(len(todo), len(tasks) - len(todo), log)
    last_write = [0.0]

    def finish(task, row):
        if row is None:                           # interrupted: the task did not finish
            return
        if isinstance(row, BaseException):        # KilledWorker: the task killed every worker it ran on
            row = _killed_row(task, out_dir, row)
        doc = read_row(out_dir, task.id)          # the worker wrote it; the row alone if it could not
        docs[task.id] = doc if doc is not None and doc.get("row", {}).get("status") == row["status"] else {
            "row": row, "cell": [list(kv) for kv in task.cell], "options": task.option_dict}
        progress.task_done(task, row)
        if time.perf_counter() - last_write[0] > _TABLE_EVERY_S:
            write_tables(out_dir, ids, docs)
            last_write[0] = time.perf_counter()

    executor = Executor(scheduler, max_workers, n_jobs=len(todo), log=log, owner="stlsim sweep")
    interrupted = False
    if todo:
        try:
            with executor:
                for _task, row in executor.run(_sweep_job, todo, shared=(task_fn, out_dir), on_done=finish,
                                               key="task", errors="return"):
                    interrupted = interrupted or row is None
                interrupted = interrupted or bool(executor.signals.requested)
        except KeyboardInterrupt:
            interrupted = True
    with signals.protect():       # a second Ctrl-C while the tables are written must not cut them short
        table = write_tables(out_dir, ids, docs)
    statuses = [docs.get(i, {}).get("row", {}).get("status", "missing") for i in ids]
    summary = {"tasks": len(tasks), "ran": progress.done, "skipped": len(tasks) - len(todo),
               "ok": statuses.count("ok"), "failed": statuses.count("error") + statuses.count("killed"),
               "not_run": statuses.count("missing"),
               "wall_time_s": time.perf_counter() - started, "table": table, "interrupted": interrupted,
               "workers": 0 if executor.serial else executor.workers}
    if log:
        log(f"sweep: {summary['ok']}/{summary['tasks']} tasks ok, {summary['failed']} failed, "
            f"{summary['not_run']} not run, {summary['skipped']} skipped, {summary['wall_time_s']:.1f}s; "
            f"table: {table}")
    return summary
