"""Atomic file writing and provenance, shared by every writer in stlsim.

Files are written to a temporary file in the target directory and renamed over the
target only once complete, so an interrupted write never leaves a half-written file
(and an older file at the same path stays valid). Every file comes out with the mode
a plain ``open(path, "w")`` would give it: 0o666 minus the user's umask (0644 under
the usual umask 022), so a group sharing a results folder can read it.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import secrets
import subprocess
import sys
import time

__all__ = ["atomic_path", "damaged_file_error", "inside", "path_component", "provenance", "read_hdf5",
           "thread_settings", "say"]

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _new_temp_file(directory: str, prefix: str, suffix: str) -> str:
    """Create an empty file with a fresh random name; its mode is 0o666 & ~umask.

    ``tempfile.mkstemp`` would make it 0o600. Asking the kernel for 0o666 at creation
    lets it apply the umask itself, as ``open`` does: nothing reads or changes the
    process umask, so this is safe with other threads writing at the same time.
    """
    for _ in range(100):
        name = os.path.join(directory, f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            fd = os.open(name, _CREATE_FLAGS, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return name
    raise FileExistsError(f"no free temporary file name in {directory!r}")  # pragma: no cover


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    The temporary file exists (empty) with the user's umask applied, and the writer
    reopens or truncates it; the renamed file keeps that mode. On any exception
    (KeyboardInterrupt included) the temporary file is removed and ``path`` is left
    untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = _new_temp_file(directory, "." + os.path.basename(path) + ".", suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def provenance(**extra) -> dict:
    """Provenance fields every saved file carries (values are str/int/float)."""
    from . import __version__
    import numpy as np

    info = {
        "stlsim_version": __version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "threads": json.dumps(thread_settings(), sort_keys=True),   # JSON text: provenance values are flat
    }
    info.update(extra)
    return info


def thread_settings() -> dict:
    """The BLAS (library, version, kernel, threads) and Numba threads of this process right now.

    A GEMM's bits depend on the BLAS kernel (chosen per CPU) and its thread count, so a
    result reproduces bit for bit on the same machine type under the same thread settings.
    """
    out = {"blas": []}
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_info

        out["blas"] = [{k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                                  "threading_layer")}
                       for info in threadpool_info() if info.get("user_api") == "blas"]
    if "numba" in sys.modules:      # asked without launching Numba's threads (that would fix its layer)
        import numba
        from numba.np.ufunc import parallel

        if getattr(parallel, "_is_initialized", False):
            out["numba_threads"] = int(numba.get_num_threads())
        else:
            out["numba_threads_configured"] = int(numba.config.NUMBA_NUM_THREADS)
    return out


# ------------------------------------------------------------------ reading HDF5 files --
# h5py can loop for ever (or crash) inside the HDF5 library on a file whose metadata is
# damaged, where no Python signal or exception can reach it. So every HDF5 file stlsim
# reads is read by a short-lived child process under a time limit; the child hands back
# the plain numpy/Python objects, and the parent turns every failure (an h5py or OS error,
# a crash, a read that does not finish) into one error naming the file.

#: Exceptions h5py, HDF5 and the decoding of stored JSON raise on damaged files.
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError,
             UnicodeDecodeError, OverflowError, LookupError)


def damaged_file_error(path, problem: str) -> ValueError:
    """The error for a file that cannot be read: names the file and what is wrong."""
    return ValueError(f"File {os.fspath(path)!r} cannot be read: {problem}.")


def _read_timeout(path) -> float:
    """Seconds a read may take: STLSIM_HDF5_TIMEOUT (default 60) plus 1 s per 20 MB."""
    try:
        base = float(os.environ.get("STLSIM_HDF5_TIMEOUT", "60"))
    except ValueError:
        base = 60.0
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    return base + size / 20e6


def _call_reader(reader: str, path: str):
    """Open ``path`` with h5py and return ``module:function``(handle, path)."""
    import importlib

    import h5py

    module, func = reader.split(":")
    function = getattr(importlib.import_module(module), func)
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"File {path!r} is not a readable HDF5 file ({err}).") from None
    with handle:
        return function(handle, path)


def _child_main():  # pragma: no cover - runs in the child process
    import pickle

    reader, path = sys.argv[1], sys.argv[2]
    out = sys.stdout.buffer
    try:
        payload = ("ok", _call_reader(reader, path))
    except BaseException as err:          # every failure goes back as text
        payload = ("error", type(err).__name__, str(err))
    out.write(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    out.flush()


def read_hdf5(path, reader: str, *, timeout: float | None = None, in_process: bool | None = None):
    """Read an HDF5 file with ``reader`` ("module:function", called as ``f(handle, path)``).

    The read runs in a child process limited to ``timeout`` seconds (default: see
    ``_read_timeout``), so a damaged file gives a ``ValueError`` naming it instead of a
    hang, a crash or a raw h5py error. ``ValueError``s the reader raises itself (which
    name the file) pass through unchanged. ``in_process=True`` (or STLSIM_HDF5_IN_PROCESS=1)
    reads here instead, without the hang guard.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"File {path!r} does not exist.")
    if os.path.isdir(path):
        raise damaged_file_error(path, "it is a directory, not an HDF5 file")
    if in_process is None:
        in_process = os.environ.get("STLSIM_HDF5_IN_PROCESS") == "1"
    if in_process:
        try:
            return _call_reader(reader, path)
        except ValueError as err:
            if path in str(err):
                raise
            raise damaged_file_error(path, f"{type(err).__name__}: {err}") from None
        except H5_ERRORS as err:
            raise damaged_file_error(path, f"{type(err).__name__}: {err}") from None
    import pickle

    timeout = _read_timeout(path) if timeout is None else timeout
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-c", "from stlsim._io import _child_main; _child_main()", reader, path]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise damaged_file_error(path, f"reading it did not finish within {timeout:.0f} s "
                                       "(damaged HDF5 metadata?)") from None
    try:
        payload = pickle.loads(done.stdout)
    except Exception:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise damaged_file_error(path, f"the HDF5 library failed on it (exit status "
                                       f"{done.returncode}: {tail[0][:200]})") from None
    if payload[0] == "ok":
        return payload[1]
    kind, message = payload[1], payload[2]
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if kind in ("ValueError", "TypeError") and path in message:
        raise ValueError(message)
    if kind == "FileNotFoundError":
        raise FileNotFoundError(message)
    raise damaged_file_error(path, f"{kind}: {message}")


# ------------------------------------------------------------------------ folder claims --
LOCK_NAME = ".stlsim.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # another user's live process
        return True
    except OSError:
        return False
    return True


def _start_time(pid: int):
    """The process's start time in clock ticks since boot (Linux /proc), else None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _is_stlsim(pid: int, started) -> bool:
    """Whether live ``pid`` is the stlsim run that wrote the lock (same start time where known; else
    a Python process whose command line names stlsim). Unknown (no /proc): assumed so."""
    now = _start_time(pid)
    if started is not None and now is not None:
        return now == started
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True
    return "stlsim" in cmdline


@contextlib.contextmanager
def _folder_mutex(out_dir, owner: str, wait_s: float = 30.0):
    """Hold an exclusive ``flock`` on the folder itself for the block: the few lines that read,
    judge, remove and write ``.stlsim.lock``. Without it two runs started together could both
    take the folder: one reads the other's lock in the instant between its creation and its
    content (an empty file looks stale), or removes the lock the other has just written in place
    of a stale one. The kernel drops the flock when its process ends, so it never goes stale.
    Where there is no ``flock`` (not POSIX, or a file system that refuses it) the block runs
    without it, as before; a folder held longer than ``wait_s`` (a run stopped inside these
    lines) is a clear error, never a hang."""
    try:
        import fcntl
        fd = os.open(out_dir, os.O_RDONLY)
    except (ImportError, OSError):
        fd = None
    try:
        deadline = time.monotonic() + wait_s
        while fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    from ._checks import fail
                    raise fail("out", "a folder no other run is writing to",
                               f"{out_dir!r}, held by another process for over {wait_s:g} s while it "
                               "claims it", owner) from None
                time.sleep(0.01)
            except OSError:          # no flock on this file system
                break
        yield
    finally:
        if fd is not None:
            os.close(fd)             # drops the flock


@contextlib.contextmanager
def claim_folder(out_dir, owner: str, force: bool = False):
    """Hold ``out_dir/.stlsim.lock`` (created exclusively; it holds the process id and start
    time) for the block. A lock of a live process is refused; one of an ended process (or, with
    ``force``, of a live process that is not a stlsim run: a reused process id) is taken over.
    Reading, judging and writing the lock happen under ``_folder_mutex``, so two runs started at
    once never both take the folder."""
    with _folder_mutex(out_dir, owner):
        _take_lock(out_dir, owner, force)
    path = os.path.join(out_dir, LOCK_NAME)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)


def _take_lock(out_dir, owner: str, force: bool) -> None:
    """Create ``out_dir/.stlsim.lock`` with this process's id and start time (``claim_folder``)."""
    from ._checks import fail

    path = os.path.join(out_dir, LOCK_NAME)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            try:
                with open(path) as f:
                    fields = f.read().split()
                pid = int(fields[0]) if fields else 0
                started = fields[1] if len(fields) > 1 else None
            except (OSError, ValueError):
                pid, started = 0, None
            if pid == os.getpid():
                raise fail("out", "a folder no other run is writing to",
                           f"{out_dir!r}, already claimed by this process", owner) from None
            if pid and _pid_alive(pid) and (not force or _is_stlsim(pid, started)):
                hint = "" if force else "; if that process is no stlsim run, pass --force"
                raise fail("out", "a folder no other run is writing to",
                           f"{out_dir!r}, claimed by the running process {pid} ({path}){hint}", owner) from None
            with contextlib.suppress(FileNotFoundError):   # stale: its process has ended
                os.remove(path)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {_start_time(os.getpid()) or ''}".strip())
        break
    else:
        raise fail("out", "a folder no other run is writing to", f"{out_dir!r}, claimed again and again "
                   f"({path})", owner)


# ------------------------------------------------------------------------- safe paths --
def inside(directory, name, what: str = "a file name") -> str:
    """``directory/name`` resolved, refused unless it stays inside ``directory``.

    For names read from data or files (trial lists, keys of a results file): absolute
    names, ``..`` and symbolic links that lead out of ``directory`` raise ``ValueError``.
    """
    name = os.fspath(name)
    root = os.path.realpath(os.fspath(directory))
    target = os.path.realpath(os.path.join(root, name))
    if os.path.isabs(name) or os.path.commonpath([root, target]) != root or target == root:
        raise ValueError(f"{what} {name!r} (read from data in {os.fspath(directory)!r}) must name a file "
                         f"inside that folder; it leads to {target!r}.")
    return target


def path_component(name: str) -> str:
    """``name`` made safe as one file-name component (no separators, no leading dots)."""
    text = "".join(c if (c.isalnum() or c in "-_.+") else "_" for c in str(name)).lstrip(".")
    return text[:100] or "unnamed"


# ------------------------------------------------------------------------ messages --

def say(text: str, logger: str = "stlsim") -> None:
    """One line of progress: to the ``logging`` logger ``logger`` (INFO) once the user, a
    notebook or ``stlsim.cli`` configured logging; to stderr otherwise, so a script that set
    nothing up still sees it. The default ``log`` of every long-running call."""
    import logging

    log = logging.getLogger(logger)
    if log.hasHandlers():
        log.info(text)
    else:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
