"""Argument coercion and the one error-message shape of stlsim.

Every public entry point validates here and raises ``ValueError`` or ``TypeError``
with one sentence shape::

    `theta` of `Network` must be a finite array of shape (800,). Got shape (10,) instead.

Kernels never validate; wrappers do, before any kernel runs.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np

__all__ = [
    "fail",
    "check_choice",
    "check_real",
    "check_int",
    "check_array",
    "check_labels",
    "check_dtype",
    "check_bool",
    "seed_streams",
]


def _where(name: str, owner: str | None) -> str:
    return f"`{name}` of `{owner}`" if owner else f"`{name}`"


def fail(name: str, expected: str, got: str, owner: str | None = None,
         exc: type[Exception] = ValueError) -> Exception:
    """Build (not raise) the standard exception: name, expected, got."""
    return exc(f"{_where(name, owner)} must be {expected}. Got {got} instead.")


def check_choice(value, name: str, choices: Iterable[str], owner: str | None = None) -> str:
    """Return ``value`` if it is one of ``choices`` (strings), else raise ValueError."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise fail(name, f"one of {listed}", repr(value), owner)
    return value


def check_real(value, name: str, *, low=None, high=None, low_open=False, high_open=False,
               owner: str | None = None) -> float:
    """Return ``value`` as a finite float within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise fail(name, "a real number", f"{type(value).__name__} {value!r}", owner, TypeError)
    value = float(value)
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    interval = f" in {lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    bad = not np.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        expected = "a finite real number" + (interval if (low is not None or high is not None) else "")
        raise fail(name, expected, repr(value), owner)
    return value


def check_bool(value, name: str, owner: str | None = None) -> bool:
    """Return ``value`` if it is a real bool (True/False, numpy bools too); else TypeError.

    Strings such as "no" and numbers are refused rather than read by their truthiness.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise fail(name, "True or False", f"{type(value).__name__} {value!r}", owner, TypeError)


def check_int(value, name: str, *, low=None, high=None, owner: str | None = None) -> int:
    """Return ``value`` as an int within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise fail(name, "an integer", f"{type(value).__name__} {value!r}", owner, TypeError)
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise fail(name, f"an integer in [{lo}, {hi}]", repr(value), owner)
    return value


def check_dtype(dtype, name: str = "dtype", owner: str | None = None) -> np.dtype:
    """Return a float32 or float64 numpy dtype."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise fail(name, "numpy.float32 or numpy.float64", repr(dtype), owner, TypeError) from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise fail(name, "numpy.float32 or numpy.float64", str(dt), owner, TypeError)
    return dt


def _shape_str(shape) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_array(value, name: str, *, shape=None, ndim=None, dtype=None, finite=True,
                owner: str | None = None, copy=False) -> np.ndarray:
    """Coerce ``value`` to a numeric ndarray and check it.

    ``shape`` may contain ``None`` for free axes. ``dtype`` (if given) is the dtype
    the result is cast to; non-numeric input raises TypeError.
    """
    try:
        arr = np.asarray(value)
    except Exception as err:  # pragma: no cover - exotic objects
        raise fail(name, "an array", f"{type(value).__name__} ({err})", owner, TypeError) from None
    if arr.dtype.kind not in "biuf":
        raise fail(name, "a numeric (bool, integer or float) array", f"dtype {arr.dtype}", owner,
                   TypeError)
    if ndim is not None and arr.ndim != ndim:
        raise fail(name, f"an array with {ndim} dimensions", f"shape {arr.shape}", owner)
    if shape is not None:
        ok = arr.ndim == len(shape) and all(e is None or e == a for e, a in zip(shape, arr.shape))
        if not ok:
            word = "a finite array" if finite else "an array"
            raise fail(name, f"{word} of shape {_shape_str(shape)}", f"shape {arr.shape}", owner)
    if dtype is not None:
        arr = arr.astype(dtype, copy=copy)
    elif copy:
        arr = arr.copy()
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise fail(name, "finite (no NaN or infinity)", f"{n_bad} non-finite values", owner)
    return arr


def check_labels(value, name: str, n_samples: int, n_classes: int,
                 owner: str | None = None) -> np.ndarray:
    """Coerce class labels to an int64 array of shape (n_samples,) in [0, n_classes).

    The one label check of stlsim (``Network`` losses and ``Dataset`` both use it).
    Integer arrays are accepted; so are float arrays whose values are all whole
    numbers (``2.0``), as ``np.loadtxt`` and many files give them. Booleans,
    non-numeric arrays and fractional or non-finite floats raise TypeError; a wrong
    shape or labels outside [0, n_classes) raise ValueError.
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise fail(name, "an array of integer class labels", f"dtype {arr.dtype}", owner, TypeError)
    if arr.shape != (n_samples,):
        raise fail(name, f"an array of shape ({n_samples},)", f"shape {arr.shape}", owner)
    if arr.dtype.kind == "f" and arr.size:
        whole = np.isfinite(arr) & (arr == np.round(arr))
        if not np.all(whole):
            first = int(np.flatnonzero(~whole)[0])
            raise fail(name, "integer class labels (floats must be whole numbers)",
                       f"{float(arr[first])!r} at index {first}", owner, TypeError)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        low, high = arr.min(), arr.max()
        if arr.dtype.kind == "f":
            low, high = int(low), int(high)
        raise fail(name, f"labels in [0, {n_classes - 1}]", f"values in [{low}, {high}]", owner)
    return arr.astype(np.int64, copy=False)


def seed_streams(seed, n: int, name: str = "seed", owner: str | None = None) -> tuple:
    """``n`` independent random streams from ``seed``: an int >= 0, a ``numpy.random.SeedSequence``
    or a ``numpy.random.Generator``.

    An int keeps stlsim's documented streams, ``default_rng(seed)`` and then
    ``default_rng([seed, k])`` for k = 1, 2, ...; a SeedSequence gives ``default_rng`` of itself,
    then of its children k (its spawn key extended by k: the user's object is not changed); a
    Generator is the first stream itself and spawns the others (numpy's ``Generator.spawn``).
    """
    if isinstance(seed, np.random.Generator):
        return (seed, *seed.spawn(n - 1)) if n > 1 else (seed,)
    if isinstance(seed, np.random.SeedSequence):
        children = [np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, k),
                                           pool_size=seed.pool_size) for k in range(1, n)]
        return (np.random.default_rng(seed), *(np.random.default_rng(c) for c in children))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise fail(name, "an integer >= 0, a numpy.random.SeedSequence or a numpy.random.Generator",
                   f"{type(seed).__name__} {seed!r}", owner, TypeError if not isinstance(seed, numbers.Integral)
                   or isinstance(seed, bool) else ValueError)
    seed = int(seed)
    return (np.random.default_rng(seed), *(np.random.default_rng([seed, k]) for k in range(1, n)))
