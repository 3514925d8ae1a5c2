"""A SYNTHETIC neuromorphic stand-in: static images turned into events offline.

No real event-camera data ships on these machines, so this module imitates how N-MNIST
was recorded (Orchard et al. 2015): an event sensor looks at a still image and moves
along a triangle in three saccades; each pixel emits an ON (p = 1) or OFF (p = 0) event
whenever its log intensity has changed by a contrast threshold since its last event.

The simulation, per image, on a sensor of ``sensor_size`` (default: the image padded by
3 pixels on each side, so 28 x 28 -> 34 x 34 like N-MNIST):

1. The image, centred on a zero (dark) canvas, is shifted by ``(dx(t), dy(t))`` along the
   triangle (0, 0) -> (A/2, A) -> (A, 0) -> (0, 0), one saccade per edge, each
   ``duration_us / 3`` long; sub-pixel shifts use bilinear interpolation.
2. Every ``dt_us`` the log intensity ``L = log(I + eps)`` is compared with each pixel's
   reference ``L_ref``; ``k = floor(|L - L_ref| / C)`` events of the sign of the change are
   emitted and ``L_ref`` moves by ``k * C`` toward ``L``. The ``j``-th crossing in a step gets
   the time where linear interpolation of ``L`` crosses ``L_ref +- j*C``.
3. Optional, seeded from ``rng``: per-pixel threshold mismatch (``threshold_sigma``,
   relative) and background noise events (``noise_rate_hz`` per pixel, Poisson, random
   polarity, uniform times). With both 0 the result is a deterministic function of the
   image, and a blank image gives no events at all.

These are NOT recordings of a real sensor: no pixel latency, refractory period or
sensor bias drift is modelled, and event counts differ from N-MNIST's. Use them to run
the event pipeline end to end and to test it, not to report accuracy on N-MNIST.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_array, check_int, check_real, fail
from .neuromorphic import EVENT_DTYPE

__all__ = ["saccade_events", "make_neuromorphic_dataset", "saccade_path"]


def saccade_path(times_us: np.ndarray, duration_us: int, amplitude_px: float):
    """Return the sensor shift ``(dx, dy)`` in pixels at each time (three saccades)."""
    vertices = np.array([[0.0, 0.0], [amplitude_px / 2, amplitude_px], [amplitude_px, 0.0],
                         [0.0, 0.0]])
    phase = np.clip(np.asarray(times_us, dtype=np.float64) / duration_us, 0.0, 1.0) * 3.0
    edge = np.minimum(phase.astype(np.int64), 2)
    frac = (phase - edge)[:, None]
    shift = vertices[edge] * (1.0 - frac) + vertices[edge + 1] * frac
    return shift[:, 0], shift[:, 1]


def _shifted(canvas: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Bilinear sample of ``canvas`` at (row - dy, col - dx); zero outside."""
    height, width = canvas.shape
    padded = np.zeros((height + 2, width + 2))
    padded[1:-1, 1:-1] = canvas
    rows = np.arange(height)[:, None] - dy + 1.0
    cols = np.arange(width)[None, :] - dx + 1.0
    rows = np.clip(rows, 0.0, height + 1.0 - 1e-9)
    cols = np.clip(cols, 0.0, width + 1.0 - 1e-9)
    r0, c0 = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    fr, fc = rows - r0, cols - c0
    r1, c1 = np.minimum(r0 + 1, height + 1), np.minimum(c0 + 1, width + 1)
    return ((1 - fr) * (1 - fc) * padded[r0, c0] + (1 - fr) * fc * padded[r0, c1]
            + fr * (1 - fc) * padded[r1, c0] + fr * fc * padded[r1, c1])


def saccade_events(image, rng, *, sensor_size=None, duration_us=300_000, amplitude_px=3.0,
                   dt_us=1000, threshold=0.3, eps=0.1, threshold_sigma=0.0,
                   noise_rate_hz=0.0) -> np.ndarray:
    """Simulate an event sensor making three saccades over ``image`` (H, W) in [0, 1].

    Returns time-sorted :data:`~stlsim.data.neuromorphic.EVENT_DTYPE` events on a
    ``sensor_size`` = (H + 6, W + 6) sensor by default. SYNTHETIC: see the module docstring.
    """
    owner = "saccade_events"
    image = check_array(image, "image", ndim=2, dtype=np.float64, owner=owner)
    if image.size and (image.min() < 0 or image.max() > 1):
        raise fail("image", "an array with values in [0, 1]",
                   f"values in [{image.min()}, {image.max()}]", owner)
    if not isinstance(rng, np.random.Generator):
        raise fail("rng", "a numpy.random.Generator", type(rng).__name__, owner, TypeError)
    duration_us = check_int(duration_us, "duration_us", low=1, owner=owner)
    dt_us = check_int(dt_us, "dt_us", low=1, high=duration_us, owner=owner)
    amplitude_px = check_real(amplitude_px, "amplitude_px", low=0, owner=owner)
    threshold = check_real(threshold, "threshold", low=0, low_open=True, owner=owner)
    eps = check_real(eps, "eps", low=0, low_open=True, owner=owner)
    threshold_sigma = check_real(threshold_sigma, "threshold_sigma", low=0, high=0.5, owner=owner)
    noise_rate_hz = check_real(noise_rate_hz, "noise_rate_hz", low=0, owner=owner)
    img_h, img_w = image.shape
    height, width = (img_h + 6, img_w + 6) if sensor_size is None else \
        (int(sensor_size[0]), int(sensor_size[1]))
    if height < img_h or width < img_w:
        raise fail("sensor_size", f"at least the image size ({img_h}, {img_w})",
                   repr(sensor_size), owner)

    canvas = np.zeros((height, width))
    top, left = (height - img_h) // 2, (width - img_w) // 2
    canvas[top:top + img_h, left:left + img_w] = image
    pixel_threshold = threshold * (1.0 + threshold_sigma * rng.standard_normal((height, width))) \
        if threshold_sigma > 0 else np.full((height, width), threshold)
    pixel_threshold = np.maximum(pixel_threshold, 0.01 * threshold)

    steps = np.arange(0, duration_us + 1, dt_us, dtype=np.int64)
    if steps[-1] != duration_us:
        steps = np.append(steps, duration_us)
    dx, dy = saccade_path(steps, duration_us, amplitude_px)
    reference = np.log(_shifted(canvas, dx[0], dy[0]) + eps)
    previous = reference.copy()
    chunks = []
    for k in range(1, steps.size):
        level = np.log(_shifted(canvas, dx[k], dy[k]) + eps)
        change = level - reference
        n_cross = np.floor(np.abs(change) / pixel_threshold).astype(np.int64)
        rows, cols = np.nonzero(n_cross)
        if rows.size:
            n = n_cross[rows, cols]
            sign = np.sign(change[rows, cols])
            # One event per crossing j = 1..n at pixel (r, c), timed by linear interpolation.
            pix = np.repeat(np.arange(rows.size), n)
            j = np.arange(pix.size) - np.repeat(np.cumsum(n) - n, n) + 1
            crossing = reference[rows, cols][pix] + sign[pix] * j * pixel_threshold[rows, cols][pix]
            step_change = (level - previous)[rows, cols][pix]
            safe = np.where(step_change != 0, step_change, 1.0)
            frac = np.clip((crossing - previous[rows, cols][pix]) / safe, 0.0, 1.0)
            t0, t1 = steps[k - 1], steps[k]
            ev = np.empty(pix.size, dtype=EVENT_DTYPE)
            ev["t"] = t0 + np.rint(frac * (t1 - t0)).astype(np.int64)
            ev["x"], ev["y"] = cols[pix], rows[pix]
            ev["p"] = (sign[pix] > 0)
            chunks.append(ev)
            reference[rows, cols] += sign * n * pixel_threshold[rows, cols]
        previous = level

    if noise_rate_hz > 0:
        n_noise = int(rng.poisson(noise_rate_hz * height * width * duration_us * 1e-6))
        noise = np.empty(n_noise, dtype=EVENT_DTYPE)
        noise["t"] = rng.integers(0, duration_us + 1, n_noise)
        noise["x"] = rng.integers(0, width, n_noise)
        noise["y"] = rng.integers(0, height, n_noise)
        noise["p"] = rng.integers(0, 2, n_noise)
        chunks.append(noise)
    if not chunks:
        return np.empty(0, dtype=EVENT_DTYPE)
    events = np.concatenate(chunks)
    return events[np.argsort(events["t"], kind="stable")]


def make_neuromorphic_dataset(images, labels, rng, **kwargs):
    """Turn static images ``(N, H, W)`` in [0, 1] into SYNTHETIC saccade event recordings.

    Returns ``(events_list, labels)`` with one event array per image (keyword arguments go
    to :func:`saccade_events`) and labels as int64. All randomness comes from ``rng``.
    """
    owner = "make_neuromorphic_dataset"
    images = check_array(images, "images", ndim=3, owner=owner)
    labels = np.asarray(labels)
    if labels.shape != (images.shape[0],) or labels.dtype.kind not in "iu":
        raise fail("labels", f"an integer array of shape ({images.shape[0]},)",
                   f"dtype {labels.dtype} and shape {labels.shape}", owner)
    events_list = [saccade_events(image, rng, **kwargs) for image in images]
    return events_list, labels.astype(np.int64)
