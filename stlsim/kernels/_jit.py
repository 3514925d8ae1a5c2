"""Numba glue shared by the CPU and CUDA kernels (imports numba).

Two things live here, once:

* ``register_scalar()``: makes the plain-Python per-neuron math of ``kernels.scalar``
  callable from Numba CPU and CUDA kernels.
* ``prepare_cache(module_file)``: the one stale-cache policy for Numba's on-disk cache
  (``cache=True``). Numba keys a cached kernel on its own source file only; a kernel
  that inlines ``scalar.py`` would silently keep an old compiled version after an edit
  of ``scalar.py``. Each kernel module calls this at import: it drops the module's
  cache files when the digest of the files it depends on changed.
"""
from __future__ import annotations

import hashlib
import pathlib

from numba import types
from numba.extending import overload, register_jitable

from . import scalar

__all__ = ["register_scalar", "prepare_cache"]

_registered = False
_HERE = pathlib.Path(__file__).resolve().parent
# The sources every cached kernel depends on besides its own file.
_DEPENDENCIES = ("scalar.py", "_jit.py")


def register_scalar() -> None:
    """Make every function of ``scalar.JITABLE`` callable from Numba code (CPU and CUDA).

    ``register_jitable`` keeps the Python function unchanged and adds an overload
    for it, so the calls *between* scalar functions resolve when a kernel compiles.
    ``scalar.cast_like`` gets a typed overload instead (a cast to its second argument's
    float type). Idempotent.
    """
    global _registered
    if _registered:
        return
    for function in scalar.JITABLE:
        register_jitable(function)
    overload(scalar.cast_like)(_cast_like)
    _registered = True


def _cast_like(value, x):
    """Numba's ``scalar.cast_like``: ``value`` cast to the float type of ``x`` (NumPy's rule
    for a Python number meeting a float array), unchanged when ``x`` is not a float."""
    if isinstance(x, types.Float):
        cast = x
        return lambda value, x: cast(value)
    return lambda value, x: value


def _cache_dir(module_file: str) -> pathlib.Path:
    """Where Numba caches the kernels of ``module_file``: the first of its cache locators
    that accepts the file (``NUMBA_CACHE_DIR``, the in-tree ``__pycache__``, or the
    user-wide cache of a read-only install), as Numba itself picks it."""
    try:
        from numba.core import caching
        for locator in caching.CacheImpl._locator_classes:
            found = locator.from_function(_probe, module_file)
            if found is not None:
                return pathlib.Path(found.get_cache_path())
    except Exception:  # a Numba without these internals: the in-tree default
        pass
    return _HERE / "__pycache__"


def _probe():
    """A function of this file, for asking Numba's cache locators where they would cache."""


def prepare_cache(module_file: str) -> None:
    """Drop the Numba cache files of ``module_file`` if a dependency changed (best effort:
    a read-only install simply keeps its cache, which was built from the same sources)."""
    stem = pathlib.Path(module_file).stem
    cache = _cache_dir(module_file)
    try:
        digest = hashlib.sha256(b"".join((_HERE / name).read_bytes()
                                         for name in _DEPENDENCIES)).hexdigest()
        stamp = cache / f"{stem}.deps.sha256"
        if stamp.exists() and stamp.read_text() == digest:
            return
        cache.mkdir(exist_ok=True)
        for path in list(cache.glob(f"{stem}.*.nbi")) + list(cache.glob(f"{stem}.*.nbc")):
            path.unlink()
        stamp.write_text(digest)
    except OSError:
        pass
