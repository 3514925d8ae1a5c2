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
* each task's random draws come from its own seed only, and every worker runs one task at
  a time with one thread (BLAS, Numba), so the results do not depend on the scheduler:
  a Dask run equals the serial run bit for bit (tested).

On a cluster of several machines ``OUT`` must be a folder every worker can write to.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback

import numpy as np

from .._checks import fail
from .table import read_row, read_rows, write_tables

__all__ = ["run_task", "run_sweep", "train_on_workers", "SINGLE_THREAD_ENV"]

# One thread per worker process: the cores are shared out by processes, not threads.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "NUMBA_NUM_THREADS": "1"}

_TABLE_EVERY_S = 5.0   # rewrite the tables at most this often while tasks finish (and at the end)
_SOP_SAMPLES = 200     # test samples the synaptic operations are counted on


def _namespace(options: dict):
    import argparse

    ns = argparse.Namespace(**options)
    ns.quiet = True
    ns.out = None
    return ns


def _initial_rates(net, data, config):
    """Firing rates per layer of the untrained network on the test set (its own encoder draws)."""
    from ..train import evaluate

    test = evaluate(net, data.x_test, data.y_test, config, np.random.default_rng([config.seed, 6]),
                    backend=config.backend)
    return test["firing_rate"]


def _sops_per_sample(net, data, config):
    """Mean synaptic operations per test sample of the trained network (first samples)."""
    from ..analysis.energy import synaptic_operations
    from ..data.encoding import encode
    from ..train.loop import _shape_inputs

    x = _shape_inputs(net, data.x_test[:_SOP_SAMPLES], config.encoding == "frames")
    x = encode(x, config.timesteps, config.encoding, np.random.default_rng([config.seed, 7]), net.dtype)
    ops = synaptic_operations(net, x, backend=config.backend)
    return float(ops.total / x.shape[1])


def run_task(task, out_dir: str) -> dict:
    """Train one task; write its record and row; return the row (never raises on a failed run)."""
    from .. import cli
    from ..train import build_network, train

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
        data, netcfg, config = cli._configs(_namespace(task.option_dict), mode=task.mode, seed=task.seed)
        net = build_network(netcfg, data.sample_shape, data.n_classes, seed=task.seed, backend=config.backend)
        rates0 = _initial_rates(net, data, config)
        resume = record if os.path.exists(record) else None
        result = train(net, data, config, record_path=record, resume=resume, progress=False, netcfg=netcfg)
        if result.interrupted:
            raise KeyboardInterrupt
        history = result.history
        acc = history["test_accuracy"]
        if not acc:
            raise fail("epochs", "at least 1 for a sweep task", repr(config.epochs), "stlsim sweep")
        row.update(final_test_accuracy=float(acc[-1]), best_test_accuracy=float(max(acc)),
                   best_epoch=int(np.argmax(acc)) + 1, final_test_loss=float(history["test_loss"][-1]),
                   final_train_accuracy=float(history["train_accuracy"][-1]), epochs_done=len(acc),
                   train_wall_time_s=float(result.wall_time), n_test=int(len(data.y_test)))
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


def _run_ann(task, record, row) -> dict:
    """The ANN baseline of a task's configuration (``stlsim.sweep.ann``); fills ``row``."""
    from .. import cli
    from .ann import ann_macs_per_sample, train_ann

    data, netcfg, config = cli._configs(_namespace(task.option_dict), mode="sl", seed=task.seed)
    history, _, sizes, wall = train_ann(data, netcfg, config, record_path=record)
    acc = history["test_accuracy"]
    row.update(final_test_accuracy=float(acc[-1]), best_test_accuracy=float(max(acc)),
               best_epoch=int(np.argmax(acc)) + 1, final_test_loss=float(history["test_loss"][-1]),
               final_train_accuracy=float(history["train_accuracy"][-1]), epochs_done=len(acc),
               train_wall_time_s=float(wall), macs_per_sample=ann_macs_per_sample(sizes),
               n_test=int(len(data.y_test)))
    return history


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


def _dask_available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _client(scheduler, n_workers, log, preload=None):
    """A Dask client: of ``scheduler``'s address, or of a LocalCluster (``preload``: modules
    each local worker runs at its start, Dask's ``dask_setup`` preloads)."""
    from distributed import Client

    if scheduler not in (None, "local"):
        with Client(scheduler) as client:
            if log:
                log(f"dask: connected to {scheduler} ({len(client.scheduler_info()['workers'])} workers); "
                    f"dashboard {client.dashboard_link}")
            yield client
        return
    saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
    os.environ.update(SINGLE_THREAD_ENV)       # inherited by the worker processes from their start
    try:
        with _local_client(n_workers, log, preload) as client:
            yield client
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _local_client(n_workers, log, preload=None):
    from distributed import Client, LocalCluster

    extra = {} if not preload else {"preload": list(preload)}
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env=dict(SINGLE_THREAD_ENV), silence_logs=40, **extra) as cluster, \
            Client(cluster) as client:
        if log:
            try:
                import bokeh  # noqa: F401
                dash = f"dashboard {client.dashboard_link}"
            except ImportError:
                dash = f"dashboard {client.dashboard_link} (served once bokeh is installed: pip install bokeh)"
            log(f"dask: LocalCluster of {n_workers} worker process(es), 1 thread each; {dash}")
        yield client


def run_sweep(tasks, out_dir, *, scheduler="local", max_workers=None, meta=None, task_fn=None,
              log=print) -> dict:
    """Run ``tasks`` (from ``grid.expand``) into ``out_dir``; return a summary.

    ``scheduler``: "local" (an embedded LocalCluster, one single-threaded worker process per
    core, at most ``max_workers``), "serial" (this process, no Dask), or the address of a
    running Dask scheduler ("tcp://host:8786"). Without dask.distributed installed, "local"
    falls back to serial. ``task_fn(task, out_dir) -> row`` replaces ``run_task`` (tests).
    ``meta`` is stored in ``OUT/sweep.json``.
    """
    from .table import write_json

    task_fn = run_task if task_fn is None else task_fn
    if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)
                                    or max_workers < 1):
        raise fail("max_workers", "an integer >= 1", repr(max_workers), "run_sweep")
    os.makedirs(os.path.join(out_dir, "tasks"), exist_ok=True)
    started = time.perf_counter()
    if meta is not None:
        from .._io import provenance

        write_json(os.path.join(out_dir, "sweep.json"), {**meta, "provenance": provenance(),
                                                          "task_ids": [t.id for t in tasks]})
    ids = [t.id for t in tasks]
    docs = {tid: doc for tid, doc in read_rows(out_dir).items() if tid in set(ids)}
    todo = [t for t in tasks if docs.get(t.id, {}).get("row", {}).get("status") != "ok"]
    progress = _Progress(len(todo), len(tasks) - len(todo), log)
    last_write = [0.0]

    def finish(task, row):
        doc = read_row(out_dir, task.id)          # the worker wrote it; the row alone if it could not
        docs[task.id] = doc if doc is not None and doc.get("row", {}).get("status") == row["status"] else {
            "row": row, "cell": [list(kv) for kv in task.cell], "options": task.option_dict}
        progress.task_done(task, row)
        if time.perf_counter() - last_write[0] > _TABLE_EVERY_S:
            write_tables(out_dir, ids, docs)
            last_write[0] = time.perf_counter()

    if scheduler == "local" and not _dask_available():
        if log:
            log("dask.distributed is not installed (pip install 'stlsim[sweep]'): running the tasks serially")
        scheduler = "serial"
    n_workers = min(max_workers or os.cpu_count() or 1, max(len(todo), 1))
    interrupted = False
    if scheduler == "serial" or not todo:
        try:
            for task in todo:
                finish(task, task_fn(task, out_dir))
        except KeyboardInterrupt:
            interrupted = True
    else:
        from distributed import as_completed

        with _client(scheduler, n_workers, log) as client:
            futures = {client.submit(task_fn, task, out_dir, key=f"stlsim-task-{task.id}", pure=False): task
                       for task in todo}
            try:
                for future in as_completed(futures):
                    task = futures[future]
                    try:
                        row = future.result()
                    except Exception as err:     # KilledWorker: the task killed every worker it ran on
                        row = _killed_row(task, out_dir, err)
                    finish(task, row)
            except KeyboardInterrupt:
                interrupted = True
                client.cancel(list(futures))
    table = write_tables(out_dir, ids, docs)
    statuses = [docs.get(i, {}).get("row", {}).get("status", "missing") for i in ids]
    summary = {"tasks": len(tasks), "ran": progress.done, "skipped": len(tasks) - len(todo),
               "ok": statuses.count("ok"), "failed": statuses.count("error") + statuses.count("killed"),
               "not_run": statuses.count("missing"),
               "wall_time_s": time.perf_counter() - started, "table": table, "interrupted": interrupted,
               "workers": 0 if scheduler == "serial" else n_workers}
    if log:
        log(f"sweep: {summary['ok']}/{summary['tasks']} tasks ok, {summary['failed']} failed, "
            f"{summary['not_run']} not run, {summary['skipped']} skipped, {summary['wall_time_s']:.1f}s; "
            f"table: {table}")
        sys.stdout.flush()
    return summary


def dask_setup(worker):  # pragma: no cover - runs in the worker processes (a Dask preload)
    """Preload of ``stlsim compare``'s local workers: they ignore SIGINT and SIGTERM.

    A Ctrl-C in the terminal reaches every process of the group; the compare process alone
    decides what it means (``train_on_workers``), and the LocalCluster stops its workers
    itself (a stop message, then SIGKILL).
    """
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):      # not the main thread: leave it
            signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def _stop_on_event(stop, signals, poll_s=1.0):
    """While the block runs, a thread sets ``signals.requested`` once the Dask Event ``stop`` is set."""
    import threading

    finished = threading.Event()

    def watch():
        while not finished.is_set():
            try:
                if stop.wait(timeout=poll_s):
                    signals.requested = "stop (the compare process was interrupted)"
                    return
            except Exception:   # noqa: BLE001 - the scheduler went away: the run is being torn down anyway
                return

    thread = threading.Thread(target=watch, name="stlsim-compare-stop-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join(timeout=2 * poll_s)


def _train_compare_run(data, netcfg, trainconfig, mode, seed, out_dir, stop):
    """One run of ``stlsim compare`` on a worker: (result, final parameters, buffers), or None
    when ``stop`` (a Dask Event) was set before it began."""
    from ..compare import train_one
    from ..train.loop import interrupt_guard

    if stop.is_set():
        return None
    # In a worker thread the guard only keeps the flag; the watcher sets it, train() stops after its batch.
    with interrupt_guard() as signals, _stop_on_event(stop, signals):
        net, result = train_one(data, netcfg, trainconfig, mode, seed, out_dir, progress=False)
    if net is None:                               # the ANN baseline: its parameters stay in its record
        return result, {}, {}
    return result, {k: v.copy() for k, v in net.params.items()}, \
        {k: v.copy() for k, v in getattr(net, "buffers", {}).items()}


def train_on_workers(data, netcfg, trainconfig, jobs, out_dir, *, progress=True, max_workers=2, scheduler="local",
                     log=print):
    """``stlsim compare``'s (mode, seed) runs on Dask workers; yields (mode, seed, net, result) in job order.

    The data set is sent to every worker once; each run is ``compare.train_one`` there, so it
    equals the serial run bit for bit. At most ``max_workers`` runs are out at a time, in job
    order. The network of each run is rebuilt here with the worker's final parameters (``net``
    is None for the ANN). With ``progress``, one line per finished run goes to ``log``.

    Interrupts (the caller's ``interrupt_guard``): local workers ignore SIGINT and SIGTERM
    (``dask_setup``). On the first signal every worker is asked to stop after its batch and
    save its finished epochs (a Dask Event); runs not begun yield ``result = None``. A second
    signal cancels everything at once: the runs not finished by then yield ``result = None``.
    An error in a run is raised here, as in the serial path.
    Without dask.distributed the runs are trained here, one after the other.
    """
    import uuid

    from ..train import build_network
    from ..train.loop import interrupt_guard

    if scheduler == "local" and not _dask_available():
        if log:
            log('dask.distributed is not installed (pip install "stlsim[sweep]"): training the runs serially, '
                "in this process")
        from ..compare import _train_here

        yield from _train_here(data, netcfg, trainconfig, jobs, out_dir, progress)
        return
    from distributed import Event

    from ..compare import run_line

    done = {}
    tag = uuid.uuid4().hex[:12]
    slots = min(max_workers, len(jobs))
    preload = ["stlsim.sweep.runner"] if scheduler in (None, "local") else None
    with interrupt_guard() as signals, _client(scheduler, slots, log, preload=preload) as client:
        stop = Event(f"stlsim-compare-stop-{tag}", client=client)
        shared = client.scatter(data, broadcast=True)
        waiting = list(jobs)
        running = {}

        def submit_next():
            mode, seed = waiting.pop(0)
            future = client.submit(_train_compare_run, shared, netcfg, trainconfig, mode, seed, out_dir, stop,
                                   pure=False, key=f"stlsim-compare-{tag}-{mode}-{seed}")
            running[future] = (mode, seed)

        # At most `slots` runs are out (one per local worker), the next when one ends: Dask then puts
        # it on the free worker (submitted all at once, runs of unequal length queued up on one worker).
        while waiting and len(running) < slots:
            submit_next()
        stop_sent = False
        try:
            while running:
                if signals.requested and not stop_sent:
                    stop.set()                         # the workers stop after their batch
                    stop_sent = True
                    waiting.clear()                    # and no run begins
                ready = [f for f in running if f.done()]
                if not ready:
                    time.sleep(0.1)
                    continue
                for future in ready:
                    job = running.pop(future)
                    try:
                        value = future.result()        # a run's error is raised here, as in serial
                    except Exception:
                        if not signals.requested:
                            raise
                        value = None                   # lost while stopping: the run did not finish
                    done[job] = value
                    if waiting and not signals.requested:
                        submit_next()
                    if value is not None and progress and log:
                        finished = sum(v is not None for v in done.values())
                        log(f"[{finished}/{len(jobs)}] {run_line(*job, value[0], trainconfig.epochs)}")
        except KeyboardInterrupt:                      # the second signal: stop at once
            with contextlib.suppress(Exception):
                stop.set()
            client.cancel(list(running))
        except BaseException:
            client.cancel(list(running))
            raise
    for mode, seed in jobs:
        value = done.get((mode, seed))
        if value is None:
            yield mode, seed, None, None
            continue
        result, params, buffers = value
        if mode == "ann":
            yield mode, seed, None, result
            continue
        net = build_network(netcfg, data.sample_shape, data.n_classes, seed=seed, backend=trainconfig.backend)
        for key, value in params.items():
            net.params[key][...] = value
        for key, value in buffers.items():
            net.buffers[key][...] = value
        yield mode, seed, net, result
