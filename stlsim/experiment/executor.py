"""One job runner for every application: here (serial), an embedded Dask ``LocalCluster``,
or the workers of a named Dask scheduler.

    with Executor(scheduler="local", max_workers=None, n_jobs=len(jobs)) as ex:
        for job, result in ex.run(fn, jobs, shared=data, on_done=callback):
            ...                # in job order; result None: the job did not finish (interrupted)

The policies live here once:

* **workers**: ``worker_count`` - every usable core (the CPU affinity where the system
  tells it), at most one per job; ``max_workers=1`` or ``scheduler="serial"`` runs the jobs
  here, one after the other; without dask.distributed a local run is serial and says so.
* **threads**: every job trains under ``job_threads()`` - BLAS (through threadpoolctl) and
  Numba at one thread each - here as on a worker, so a job's result does not depend on
  where it ran (an OpenBLAS GEMM's bits depend on its thread count). ``thread_settings()``
  goes into every record's provenance.
* **interrupts**: one ``interrupt_guard`` around the whole run. On the first Ctrl-C or
  SIGTERM no job begins, and the jobs running are asked to stop after their batch (here: the
  guard's flag, which ``stlsim.train.train`` checks; on workers: a Dask ``Event`` that a thread
  in each job turns into that flag); a second signal stops at once. A job that did not
  finish yields ``None``. Local workers ignore the terminal's signals (``dask_setup``): the
  process that owns the run decides what a signal means.
* **errors**: a job's exception is raised here, as in the serial path (after a stop was
  requested, a job lost while stopping yields ``None`` instead).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from .._checks import check_int, fail
from .._io import thread_settings

__all__ = ["Executor", "usable_cores", "dask_available", "worker_count", "job_threads", "thread_settings",
           "SINGLE_THREAD_ENV", "dask_setup"]

# One thread per worker process: the cores are shared out by processes, not threads.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "NUMBA_NUM_THREADS": "1"}
JOB_THREADS = 1


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):     # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def dask_available() -> bool:
    """Whether dask.distributed can be imported (the ``sweep`` extra)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def _scheduler_of(scheduler) -> str:
    if scheduler is None:
        return "local"
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise fail("scheduler", "'serial', 'local' or the address of a Dask scheduler (tcp://host:8786)",
                   repr(scheduler), "Executor")
    return scheduler.strip()


def worker_count(max_workers, n_jobs: int, scheduler="local") -> int:
    """How many jobs run at once: ``max_workers`` (default: every usable core; all jobs on a named
    scheduler's cluster), at most one per job; 1 for ``scheduler="serial"``."""
    scheduler = _scheduler_of(scheduler)
    if max_workers is not None:
        max_workers = check_int(max_workers, "max_workers", low=1, owner="Executor")
    if scheduler == "serial":
        return 1
    if max_workers is None:
        max_workers = usable_cores() if scheduler == "local" else max(n_jobs, 1)
    return max(1, min(max_workers, max(n_jobs, 1)))


@contextlib.contextmanager
def job_threads(threads: int = JOB_THREADS):
    """The thread policy of a training job: BLAS and Numba at ``threads`` thread(s) for the block.

    ``threadpool_limits`` reaches only the BLAS libraries loaded when it starts; SciPy brings an
    OpenBLAS of its own on first use, so it is loaded first (else a process's first job ran
    SciPy's BLAS at every core, and its record said so)."""
    from threadpoolctl import threadpool_limits

    numba_before = None
    try:
        import numba

        from ..kernels import cpu  # noqa: F401 - selects Numba's threading layer before its first use
        numba_before = numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    with contextlib.suppress(ImportError):
        import scipy.linalg  # noqa: F401 - loads SciPy's own OpenBLAS now, so that the limit reaches it too
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        if numba_before is not None:
            import numba

            numba.set_num_threads(numba_before)


def dask_setup(worker):  # pragma: no cover - runs in the worker processes (a Dask preload)
    """Preload of the local workers: they ignore the stop signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT).

    A Ctrl-C in the terminal reaches every process of the group; the process that owns the
    run alone decides what it means (``Executor``), and the LocalCluster stops its workers
    itself (a stop message, then SIGKILL).
    """
    import signal

    from ..train.signals import STOP_SIGNALS

    for sig in STOP_SIGNALS:
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
                    signals.requested = "stop (the process that owns the run was interrupted)"
                    return
            except Exception:   # noqa: BLE001 - the scheduler went away: the run is being torn down anyway
                return

    thread = threading.Thread(target=watch, name="stlsim-stop-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join(timeout=2 * poll_s)


def _on_worker(fn, shared, job, stop):
    """A job on a worker: None if ``stop`` was set before it began; else ``fn(shared, job)`` under the
    job thread policy, stopping after its batch once ``stop`` is set."""
    from ..train.signals import interrupt_guard

    if stop.is_set():
        return None
    # In a worker thread the guard only keeps the flag; the watcher sets it, train() stops after its batch.
    with interrupt_guard() as signals, _stop_on_event(stop, signals), job_threads():
        return fn(shared, job)


class Executor:
    """Runs jobs serially or on Dask workers under one worker, thread and interrupt policy.

    ``scheduler``: ``"serial"`` (here), ``"local"`` (an embedded LocalCluster of
    ``worker_count`` single-threaded processes; serial when that count is 1 or dask.distributed
    is missing) or the address of a running Dask scheduler. ``log``: a callable taking one line
    (None: quiet). Use it as a context manager; ``run`` may be called once or more inside.
    """

    def __init__(self, scheduler="local", max_workers=None, n_jobs: int = 1, log=None,
                 owner: str = "stlsim"):
        self.scheduler = _scheduler_of(scheduler)
        self.workers = worker_count(max_workers, n_jobs, self.scheduler)
        self.log = log
        self.owner = owner
        if self.scheduler == "local" and self.workers > 1 and not dask_available():
            if log:
                log(f"{owner}: dask.distributed is not installed, so the runs train one after the other on one "
                    'core (pip install "stlsim[sweep]" to train them on every core)')
            self.workers = 1
        self.serial = self.scheduler == "serial" or (self.scheduler == "local" and self.workers == 1)
        self._stack = None
        self.client = None
        self.signals = None

    @property
    def where(self) -> str:
        """Where the jobs run, in words."""
        if self.serial:
            return "here, one after the other"
        if self.scheduler == "local":
            return f"on {self.workers} worker processes"
        return f"on the workers of {self.scheduler}"

    def __enter__(self):
        from ..train.signals import interrupt_guard

        self._stack = contextlib.ExitStack()
        self.signals = self._stack.enter_context(interrupt_guard())
        if not self.serial:
            self.client = self._stack.enter_context(self._client())
        return self

    def __exit__(self, *exc):
        stack, self._stack = self._stack, None
        if self.serial:
            return stack.__exit__(*exc)
        with self.signals.defer_again():     # Dask's shutdown: no KeyboardInterrupt inside its finalizers
            return stack.__exit__(*exc)

    @contextlib.contextmanager
    def _client(self):
        """The Dask client; Dask's own log lines in this process only with --debug."""
        quiet = not logging.getLogger("stlsim").isEnabledFor(logging.DEBUG)
        dask_logger = logging.getLogger("distributed")
        level = dask_logger.level
        if quiet:
            dask_logger.setLevel(logging.CRITICAL + 1)
        try:
            with self._connect() as client:
                yield client
        finally:
            dask_logger.setLevel(level)

    @contextlib.contextmanager
    def _connect(self):
        from distributed import Client

        if self.scheduler != "local":
            with Client(self.scheduler) as client:
                if self.log:
                    self.log(f"dask: connected to {self.scheduler} ({len(client.scheduler_info()['workers'])} "
                             f"workers); dashboard {client.dashboard_link}")
                yield client
            return
        from distributed import LocalCluster

        # The workers' own log lines (a job's traceback among them) only with --debug: a job's error
        # reaches the user once, as the one line of the command that ran it.
        debug = logging.getLogger("stlsim").isEnabledFor(logging.DEBUG)
        with contextlib.ExitStack() as stack:
            saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
            os.environ.update(SINGLE_THREAD_ENV)   # inherited by the worker processes from their start
            try:
                cluster = stack.enter_context(LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                    env=dict(SINGLE_THREAD_ENV), silence_logs=logging.ERROR if debug else logging.CRITICAL + 1,
                    preload=["stlsim.experiment.executor"]))
            finally:
                # Restored as soon as the workers are up: this process keeps its own threads (Numba
                # re-reads NUMBA_NUM_THREADS when it compiles, and refuses a change once its threads
                # run); a restarted worker gets the settings from `env`.
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
            client = stack.enter_context(Client(cluster))
            if self.log:
                try:
                    import bokeh  # noqa: F401
                    dash = f"dashboard {client.dashboard_link}"
                except ImportError:
                    dash = f"dashboard {client.dashboard_link} (served once bokeh is installed)"
                self.log(f"dask: LocalCluster of {self.workers} worker process(es), 1 thread each; {dash}")
            yield client

    def run(self, fn, jobs, *, shared=None, on_done=None, key: str = "job", errors: str = "raise",
            scatter: bool = False):
        """``fn(shared, job)`` for each job; yields ``(job, result)`` in job order.

        ``fn`` must be a module-level function (it is pickled for the workers). ``shared`` goes
        with each job, or with ``scatter=True`` to each worker once (a data set; a job whose
        worker dies is then retried only while another worker still holds it). ``on_done(job, result)`` is called as each job ends (any
        order). ``result`` is None for a job an interrupt kept from beginning or finishing.
        ``errors="return"``: a job's exception (a worker killed under it, say) is its result
        instead of being raised.
        """
        if self._stack is None:
            raise fail("Executor", "used as a context manager (with Executor(...) as ex)", "a bare call",
                       self.owner, RuntimeError)
        jobs = list(jobs)
        if self.serial:
            yield from self._run_here(fn, jobs, shared, on_done, errors)
        else:
            yield from self._run_on_workers(fn, jobs, shared, on_done, key, errors, scatter)

    def _run_here(self, fn, jobs, shared, on_done, errors):
        for i, job in enumerate(jobs):
            if self.signals.requested:
                for rest in jobs[i:]:
                    yield rest, None
                return
            try:
                with job_threads():
                    result = fn(shared, job)
            except KeyboardInterrupt:
                if not self.signals.requested:
                    self.signals.requested = "SIGINT"
                result = None
            except Exception as err:
                if errors != "return":
                    raise
                result = err
            if on_done:
                on_done(job, result)
            yield job, result

    def _run_on_workers(self, fn, jobs, shared, on_done, key, errors, scatter):
        import uuid

        from distributed import Event

        client, signals = self.client, self.signals
        tag = uuid.uuid4().hex[:12]
        stop = Event(f"stlsim-stop-{tag}", client=client)
        handle = client.scatter(shared, broadcast=True) if scatter else shared
        waiting = list(enumerate(jobs))
        running = {}
        done = {}

        def submit_next():
            index, job = waiting.pop(0)
            future = client.submit(_on_worker, fn, handle, job, stop, pure=False, key=f"stlsim-{key}-{tag}-{index}")
            running[future] = index

        # At most `workers` jobs are out (one per worker), the next when one ends: Dask then puts it
        # on the free worker (submitted all at once, jobs of unequal length queued up on one worker).
        while waiting and len(running) < self.workers:
            submit_next()
        stop_sent = False
        next_out = 0
        try:
            with signals.defer_again():       # a second signal acts at the next poll (check_again)
                while running or next_out < len(jobs):
                    signals.check_again()
                    if signals.requested and not stop_sent:
                        stop.set()                         # the workers stop after their batch
                        stop_sent = True
                        waiting.clear()                    # and no job begins
                    while next_out < len(jobs) and next_out in done:
                        yield jobs[next_out], done[next_out]
                        next_out += 1
                    if not running:
                        for index in range(next_out, len(jobs)):
                            done.setdefault(index, None)
                        continue
                    ready = [f for f in running if f.done()]
                    if not ready:
                        time.sleep(0.05)
                        continue
                    for future in ready:
                        index = running.pop(future)
                        try:
                            value = future.result()        # a job's error is raised here, as in serial
                        except KeyboardInterrupt:
                            raise
                        except (Exception, asyncio.CancelledError) as err:   # a cancelled future: a BaseException
                            if signals.requested:
                                value = None               # lost while stopping: the job did not finish
                            elif errors == "return":
                                value = err
                            else:
                                raise
                        done[index] = value
                        if on_done:
                            on_done(jobs[index], value)
                        if waiting and not signals.requested:
                            submit_next()
        except KeyboardInterrupt:                      # the second signal: stop at once
            with contextlib.suppress(Exception):
                stop.set()
            client.cancel(list(running))
            for index in range(next_out, len(jobs)):
                yield jobs[index], done.get(index)
        except BaseException:
            client.cancel(list(running))
            raise
