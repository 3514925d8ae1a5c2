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
import os
import platform
import secrets

__all__ = ["atomic_path", "provenance"]

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
    }
    info.update(extra)
    return info
