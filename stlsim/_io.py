"""Atomic file writing and provenance, shared by every writer in stlsim.

Files are written to a temporary file in the target directory and renamed over the
target only once complete, so an interrupted write never leaves a half-written file
(and an older file at the same path stays valid).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import tempfile

__all__ = ["atomic_path", "provenance"]


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception (KeyboardInterrupt included) the temporary file is removed and
    ``path`` is left untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix, dir=directory)
    os.close(fd)
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
