"""Event streams to network inputs, and event-level augmentation.

Works on the structured arrays of :mod:`stlsim.data.neuromorphic`: camera events with
fields ``t, x, y, p`` (``x`` = column, ``y`` = row) and audio-like events with fields
``t, unit``. Times are int64 microseconds.

Binning. Events in the window ``t_start <= t < t_stop`` are put into ``T`` bins:

* ``mode="time"``: equal durations, ``bin = floor((t - t_start) * T / (t_stop - t_start))``;
* ``mode="count"``: equal event counts; the window's ``n`` events, in time order, go to
  ``bin = floor(i * T / n)`` for the ``i``-th event (as SpikingJelly's ``split_by="number"``).

A frame holds per-pixel event counts, so the frames of a window sum to the number of
events in it. Frame layout is ``(T, C, H', W')`` with ``C = 2`` (channel = polarity,
0 = OFF, 1 = ON) or ``C = 1`` (polarities merged), ``H' = ceil(H / downsample)``. The
flat neuron index used by :func:`events_to_sparse` is the row-major index into
``(C, H', W')``, so it matches ``frames.reshape(T, -1)``.

Augmentations draw every random number from the ``np.random.Generator`` they are given,
so the same seed gives the same result.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_choice, check_int, check_real, fail

__all__ = [
    "events_to_frames",
    "events_to_sparse",
    "units_to_frames",
    "crop_time",
    "downsample_events",
    "jitter_events",
    "drop_events",
    "insert_events",
]


# --------------------------------------------------------------------------- validation

def _check_events(events, owner: str, fields=("t", "x", "y", "p")) -> np.ndarray:
    arr = np.asarray(events)
    if arr.ndim != 1 or arr.dtype.names is None or not set(fields) <= set(arr.dtype.names):
        raise fail("events", f"a 1-D structured array with fields {', '.join(fields)}",
                   f"dtype {arr.dtype} and shape {arr.shape}", owner, TypeError)
    return arr


def _check_sensor(sensor_size, owner: str):
    try:
        height, width = (int(s) for s in sensor_size)
    except (TypeError, ValueError):
        raise fail("sensor_size", "a pair (H, W) of positive integers", repr(sensor_size), owner,
                   TypeError) from None
    if height < 1 or width < 1:
        raise fail("sensor_size", "a pair (H, W) of positive integers", repr(sensor_size), owner)
    return height, width


def _check_rng(rng, owner: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise fail("rng", "a numpy.random.Generator (np.random.default_rng(seed))",
                   type(rng).__name__, owner, TypeError)
    return rng


def _window(t: np.ndarray, t_start, t_stop, owner: str):
    """Resolve the default window: first event to last event (inclusive)."""
    if t_start is None:
        t_start = int(t.min()) if t.size else 0
    if t_stop is None:
        t_stop = int(t.max()) + 1 if t.size else t_start + 1
    t_start, t_stop = int(t_start), int(t_stop)
    if t_stop <= t_start:
        raise fail("t_stop", f"greater than t_start ({t_start})", repr(t_stop), owner)
    return t_start, t_stop


def _bin_index(t: np.ndarray, T: int, mode: str, t_start: int, t_stop: int):
    """Return (mask of events inside the window, bin index of each kept event)."""
    inside = (t >= t_start) & (t < t_stop)
    if mode == "time":
        bins = ((t[inside] - t_start) * T) // (t_stop - t_start)
    else:
        kept = t[inside]
        order = np.argsort(kept, kind="stable")
        rank = np.empty(kept.size, dtype=np.int64)
        rank[order] = np.arange(kept.size)
        bins = (rank * T) // max(kept.size, 1)
    return inside, bins.astype(np.int64)


def _pixel_index(events, inside, height: int, width: int, polarity_channels: bool,
                 downsample: int, owner: str):
    x = events["x"][inside].astype(np.int64)
    y = events["y"][inside].astype(np.int64)
    if x.size and (x.min() < 0 or x.max() >= width or y.min() < 0 or y.max() >= height):
        raise fail("events", f"events inside the sensor (x < {width}, y < {height})",
                   f"x in [{x.min()}, {x.max()}], y in [{y.min()}, {y.max()}]", owner)
    out_h, out_w = -(-height // downsample), -(-width // downsample)
    channel = events["p"][inside].astype(np.int64).clip(0, 1) if polarity_channels \
        else np.zeros(x.size, dtype=np.int64)
    flat = (channel * out_h + y // downsample) * out_w + x // downsample
    return flat, (2 if polarity_channels else 1, out_h, out_w)


# --------------------------------------------------------------------------- to inputs

def events_to_frames(events, T, sensor_size, mode="time", polarity_channels=True, downsample=1,
                     t_start=None, t_stop=None, normalize=False) -> np.ndarray:
    """Bin camera events into frames of event counts, float32 ``(T, C, H', W')``.

    ``t_start`` / ``t_stop`` default to the first event and one past the last. With
    ``normalize=True`` the frames are divided by their overall maximum (so values lie in
    [0, 1] and the relative weight of time bins is kept); all-zero frames stay zero.
    """
    owner = "events_to_frames"
    events = _check_events(events, owner)
    T = check_int(T, "T", low=1, owner=owner)
    height, width = _check_sensor(sensor_size, owner)
    check_choice(mode, "mode", ("time", "count"), owner)
    downsample = check_int(downsample, "downsample", low=1, owner=owner)
    t_start, t_stop = _window(events["t"], t_start, t_stop, owner)
    inside, bins = _bin_index(events["t"], T, mode, t_start, t_stop)
    flat, shape = _pixel_index(events, inside, height, width, bool(polarity_channels), downsample,
                               owner)
    size = int(np.prod(shape))
    counts = np.bincount(bins * size + flat, minlength=T * size)
    frames = counts.reshape((T,) + shape).astype(np.float32)
    if normalize and frames.max() > 0:
        frames /= frames.max()
    return frames


def events_to_sparse(events, T, sensor_size=None, mode="time", polarity_channels=True,
                     downsample=1, t_start=None, t_stop=None, unique=True) -> np.ndarray:
    """Spike list for an event-driven engine: int64 ``(K, 2)`` rows ``(time_step, neuron)``.

    Camera events (``t, x, y, p``; ``sensor_size`` required) map to the flat index into
    ``(C, H', W')`` used by :func:`events_to_frames`; unit events (``t, unit``) map to
    their unit. Rows are sorted by time step, then neuron. With ``unique=True`` (default)
    a neuron emits at most one spike per step, i.e. the rows are the nonzeros of the
    binary frames ``events_to_frames(...) > 0``.
    """
    owner = "events_to_sparse"
    arr = np.asarray(events)
    is_units = arr.dtype.names is not None and "unit" in arr.dtype.names
    events = _check_events(events, owner, ("t", "unit") if is_units else ("t", "x", "y", "p"))
    T = check_int(T, "T", low=1, owner=owner)
    check_choice(mode, "mode", ("time", "count"), owner)
    t_start, t_stop = _window(events["t"], t_start, t_stop, owner)
    inside, bins = _bin_index(events["t"], T, mode, t_start, t_stop)
    if is_units:
        neuron = events["unit"][inside].astype(np.int64)
    else:
        if sensor_size is None:
            raise fail("sensor_size", "a pair (H, W) for camera events", "None", owner, TypeError)
        height, width = _check_sensor(sensor_size, owner)
        downsample = check_int(downsample, "downsample", low=1, owner=owner)
        neuron, _ = _pixel_index(events, inside, height, width, bool(polarity_channels),
                                 downsample, owner)
    pairs = np.stack([bins, neuron], axis=1)
    if unique:
        return np.unique(pairs, axis=0).reshape(-1, 2)
    return pairs[np.lexsort((neuron, bins))].reshape(-1, 2)


def units_to_frames(events, T, n_units=700, t_max_us=1_400_000, t_start=0) -> np.ndarray:
    """Bin unit events (SHD) into float32 ``(T, n_units)`` counts over ``[t_start, t_max_us)``.

    Bins have equal durations. The default window, 0 to 1.4 s, covers every SHD sample;
    later events are dropped. Raises ``ValueError`` for a unit outside ``[0, n_units)``.
    """
    owner = "units_to_frames"
    events = _check_events(events, owner, ("t", "unit"))
    T = check_int(T, "T", low=1, owner=owner)
    n_units = check_int(n_units, "n_units", low=1, owner=owner)
    t_start, t_stop = _window(events["t"], t_start, t_max_us, owner)
    inside, bins = _bin_index(events["t"], T, "time", t_start, t_stop)
    unit = events["unit"][inside].astype(np.int64)
    if unit.size and (unit.min() < 0 or unit.max() >= n_units):
        raise fail("events['unit']", f"units in [0, {n_units - 1}]",
                   f"values in [{unit.min()}, {unit.max()}]", owner)
    counts = np.bincount(bins * n_units + unit, minlength=T * n_units)
    return counts.reshape(T, n_units).astype(np.float32)


# --------------------------------------------------------------------------- event edits

def crop_time(events, t_start=None, t_stop=None, rebase=False) -> np.ndarray:
    """Keep events with ``t_start <= t < t_stop`` (either bound may be None = open).

    With ``rebase=True`` the kept times are shifted so that ``t_start`` becomes 0.
    """
    events = _check_events(events, "crop_time", ("t",))
    t = events["t"]
    keep = np.ones(t.size, dtype=bool)
    if t_start is not None:
        keep &= t >= t_start
    if t_stop is not None:
        keep &= t < t_stop
    out = events[keep].copy()
    if rebase and t_start is not None:
        out["t"] -= int(t_start)
    return out


def downsample_events(events, factor) -> np.ndarray:
    """Integer-divide camera coordinates by ``factor`` (a sensor of ``ceil(H/factor)`` rows)."""
    events = _check_events(events, "downsample_events")
    factor = check_int(factor, "factor", low=1, owner="downsample_events")
    out = events.copy()
    out["x"] //= factor
    out["y"] //= factor
    return out


def _sorted_by_time(events) -> np.ndarray:
    return events[np.argsort(events["t"], kind="stable")]


def jitter_events(events, rng, sigma_us=0.0, sigma_xy=0.0, sensor_size=None) -> np.ndarray:
    """Add Gaussian noise to event times (``sigma_us``) and positions (``sigma_xy`` pixels).

    Noise is rounded to integers; times are clipped at 0. With ``sensor_size`` given,
    events jittered off the sensor are dropped (otherwise coordinates are clipped at 0).
    The result is re-sorted by time (stable). Unit events take ``sigma_us`` only.
    """
    owner = "jitter_events"
    events = _check_events(events, owner, ("t",))
    rng = _check_rng(rng, owner)
    sigma_us = check_real(sigma_us, "sigma_us", low=0, owner=owner)
    sigma_xy = check_real(sigma_xy, "sigma_xy", low=0, owner=owner)
    out = events.copy()
    n = out.size
    out["t"] = np.maximum(out["t"] + np.rint(rng.normal(0.0, sigma_us, n)).astype(np.int64), 0)
    if "x" in out.dtype.names and "y" in out.dtype.names:
        x = out["x"].astype(np.int64) + np.rint(rng.normal(0.0, sigma_xy, n)).astype(np.int64)
        y = out["y"].astype(np.int64) + np.rint(rng.normal(0.0, sigma_xy, n)).astype(np.int64)
        if sensor_size is not None:
            height, width = _check_sensor(sensor_size, owner)
            keep = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            out, x, y = out[keep], x[keep], y[keep]
        out["x"], out["y"] = np.maximum(x, 0), np.maximum(y, 0)
    return _sorted_by_time(out)


def drop_events(events, rng, p) -> np.ndarray:
    """Drop each event independently with probability ``p`` (order is kept)."""
    owner = "drop_events"
    events = _check_events(events, owner, ("t",))
    rng = _check_rng(rng, owner)
    p = check_real(p, "p", low=0, high=1, owner=owner)
    return events[rng.random(events.size) >= p].copy()


def insert_events(events, rng, n_events, sensor_size=None, n_units=None, t_start=None,
                  t_stop=None) -> np.ndarray:
    """Add ``n_events`` uniformly random events (noise robustness tests).

    Times are uniform in ``[t_start, t_stop)`` (default: the events' own span);
    camera events get uniform ``x < W``, ``y < H`` (``sensor_size`` required) and a random
    polarity; unit events a uniform unit below ``n_units`` (required). The result is
    sorted by time (stable, original events first among equal times).
    """
    owner = "insert_events"
    events = _check_events(events, owner, ("t",))
    rng = _check_rng(rng, owner)
    n_events = check_int(n_events, "n_events", low=0, owner=owner)
    t_start, t_stop = _window(events["t"], t_start, t_stop, owner)
    noise = np.zeros(n_events, dtype=events.dtype)
    noise["t"] = rng.integers(t_start, t_stop, n_events)
    names = events.dtype.names
    if "unit" in names:
        if n_units is None:
            raise fail("n_units", "a positive integer for unit events", "None", owner, TypeError)
        n_units = check_int(n_units, "n_units", low=1, owner=owner)
        noise["unit"] = rng.integers(0, n_units, n_events)
    else:
        _check_events(events, owner)
        if sensor_size is None:
            raise fail("sensor_size", "a pair (H, W) for camera events", "None", owner, TypeError)
        height, width = _check_sensor(sensor_size, owner)
        noise["x"] = rng.integers(0, width, n_events)
        noise["y"] = rng.integers(0, height, n_events)
        noise["p"] = rng.integers(0, 2, n_events)
    return _sorted_by_time(np.concatenate([events, noise]))
