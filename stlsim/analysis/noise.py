"""Noise robustness: corrupt test inputs, evaluate trained networks, accuracy-vs-noise curves.

Corruptions (every random number from a seeded ``np.random.Generator``; an int seed is
accepted and turned into ``np.random.default_rng(seed)``):

* ``gaussian_noise(x, sigma, rng)``: ``clip(x + sigma * N(0, 1), 0, 1)`` on images in
  [0, 1]; sigma = 0 returns ``x`` unchanged.
* ``salt_and_pepper(x, p, rng)``: each pixel, with probability p, is replaced by 0 or 1
  (each with probability 1/2).
* ``spike_noise(spikes, rng, delete=p_d, insert=p_i)``: on binary spike tensors (the
  rate-coded input, an event stream on a T x N grid): each spike is deleted with
  probability p_d, and each silent (t, input) slot gets a spike with probability p_i.
* ``event_noise(events, rng, drop=p, insert=f, ...)``: on event arrays
  (``stlsim.data.neuromorphic``): ``drop_events`` then ``insert_events`` of
  round(f * n_original) uniform random events (``stlsim.data.events``).

``noise_accuracy`` evaluates a network on the test set for several noise levels. Image
noise (``gaussian``, ``salt_pepper``) is applied before encoding, spike noise
(``spike_delete``, ``spike_insert``) after it. The encoding draws are the SAME at every
level (generator ``[seed, 6]``), the noise draws come from ``[seed, 5, level index]``,
so curves are paired: level 0 is the clean accuracy and any change is the noise's.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_array, check_choice, check_int, check_real, fail

__all__ = ["gaussian_noise", "salt_and_pepper", "spike_noise", "event_noise", "NOISE_KINDS",
           "DEFAULT_LEVELS", "noise_accuracy", "noise_curves"]

NOISE_KINDS = ("gaussian", "salt_pepper", "spike_delete", "spike_insert")
DEFAULT_LEVELS = {
    "gaussian": (0.0, 0.1, 0.2, 0.3, 0.5, 0.7),
    "salt_pepper": (0.0, 0.05, 0.1, 0.2, 0.3),
    "spike_delete": (0.0, 0.2, 0.4, 0.6, 0.8),
    "spike_insert": (0.0, 0.02, 0.05, 0.1, 0.2),
}


def _generator(rng, owner: str) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise fail("rng", "a numpy.random.Generator or a non-negative int seed", repr(rng), owner, TypeError)


def gaussian_noise(x, sigma: float, rng) -> np.ndarray:
    """``clip(x + sigma * N(0, 1), 0, 1)`` in x's dtype; sigma = 0 gives a copy of x."""
    owner = "gaussian_noise"
    x = check_array(x, "x", owner=owner)
    sigma = check_real(sigma, "sigma", low=0.0, owner=owner)
    rng = _generator(rng, owner)
    if sigma == 0:
        return x.copy()
    noisy = x + sigma * rng.standard_normal(x.shape)
    return np.clip(noisy, 0.0, 1.0).astype(x.dtype, copy=False)


def salt_and_pepper(x, p: float, rng) -> np.ndarray:
    """Each entry, with probability ``p``, becomes 0 or 1 (equally likely)."""
    owner = "salt_and_pepper"
    x = check_array(x, "x", owner=owner)
    p = check_real(p, "p", low=0.0, high=1.0, owner=owner)
    rng = _generator(rng, owner)
    hit = rng.random(x.shape) < p
    salt = rng.random(x.shape) < 0.5
    out = x.copy()
    out[hit] = salt[hit].astype(x.dtype)
    return out


def spike_noise(spikes, rng, *, delete: float = 0.0, insert: float = 0.0) -> np.ndarray:
    """Delete each spike with probability ``delete``; add one to each silent slot with
    probability ``insert``. ``spikes`` holds 0/1 values (any shape, e.g. (T, B, N))."""
    owner = "spike_noise"
    spikes = check_array(spikes, "spikes", owner=owner)
    if not np.all((spikes == 0) | (spikes == 1)):
        raise fail("spikes", "a binary (0/1) array", "non-binary values", owner)
    delete = check_real(delete, "delete", low=0.0, high=1.0, owner=owner)
    insert = check_real(insert, "insert", low=0.0, high=1.0, owner=owner)
    rng = _generator(rng, owner)
    draw = rng.random(spikes.shape)         # one uniform per slot: deletion OR insertion
    on = spikes == 1
    out = np.where(on, draw >= delete, draw < insert)
    return out.astype(spikes.dtype)


def event_noise(events, rng, *, drop: float = 0.0, insert: float = 0.0, sensor_size=None,
                n_units=None) -> np.ndarray:
    """Drop each event with probability ``drop``, then insert round(insert * n) uniform
    random events (n = number of events given; times within their span)."""
    from ..data.events import drop_events, insert_events

    owner = "event_noise"
    rng = _generator(rng, owner)
    insert = check_real(insert, "insert", low=0.0, owner=owner)
    n_original = len(events)
    out = drop_events(events, rng, drop)
    n_insert = int(round(insert * n_original))
    if n_insert:
        t = np.asarray(events)["t"]
        out = insert_events(out, rng, n_insert, sensor_size=sensor_size, n_units=n_units,
                            t_start=int(t.min()), t_stop=int(t.max()) + 1)
    return out


def _corrupt_images(kind, level, x, rng):
    if kind == "gaussian":
        return gaussian_noise(x, level, rng)
    if kind == "salt_pepper":
        return salt_and_pepper(x, level, rng)
    return x


def _corrupt_spikes(kind, level, spikes, rng):
    if kind == "spike_delete":
        return spike_noise(spikes, rng, delete=level)
    if kind == "spike_insert":
        return spike_noise(spikes, rng, insert=level)
    return spikes


def noise_accuracy(net, x, y, kind: str, levels=None, *, timesteps: int, encoding: str = "rate",
                   seed: int = 0, batch_size: int = 500, backend=None) -> np.ndarray:
    """Test accuracy of ``net`` on images ``x`` (N, ...) in [0, 1] with labels ``y``,
    for each noise level of ``kind`` (see the module docstring). Returns (len(levels),)."""
    from ..readout import decide
    from ..data.encoding import encode
    from ..data.encoding import shape_inputs

    owner = "noise_accuracy"
    kind = check_choice(kind, "kind", NOISE_KINDS, owner)
    levels = DEFAULT_LEVELS[kind] if levels is None else tuple(levels)
    timesteps = check_int(timesteps, "timesteps", low=1, owner=owner)
    seed = check_int(seed, "seed", low=0, owner=owner)
    batch_size = check_int(batch_size, "batch_size", low=1, owner=owner)
    if kind.startswith("spike") and encoding != "rate":
        raise fail("kind", "an image noise ('gaussian', 'salt_pepper') for direct encoding",
                   repr(kind), owner)
    x = shape_inputs(net, np.asarray(x))
    y = np.asarray(y)
    accuracy = np.zeros(len(levels))
    for k, level in enumerate(levels):
        noise_rng = np.random.default_rng([seed, 5, k])
        encode_rng = np.random.default_rng([seed, 6])      # same encoding draws at every level
        correct = 0
        for start in range(0, len(y), batch_size):
            xb = _corrupt_images(kind, level, x[start:start + batch_size], noise_rng)
            inputs = encode(xb, timesteps, encoding, encode_rng, net.dtype)
            inputs = _corrupt_spikes(kind, level, inputs, noise_rng)
            rec = net.forward(inputs, backend=backend)
            correct += int(np.sum(decide(rec.rates) == y[start:start + batch_size]))
        accuracy[k] = correct / len(y)
    return accuracy


def noise_curves(nets_by_mode: dict, x, y, *, kinds=NOISE_KINDS, levels=None, timesteps: int,
                 encoding: str = "rate", seed: int = 0, batch_size: int = 500, backend=None) -> dict:
    """Accuracy-vs-noise for trained networks ``{mode: [net per seed]}``.

    Returns ``{kind: {"levels": [...], "modes": {mode: {"per_seed": [[acc per level] per
    net], "mean": [...], "std": [...]}}}}``. Every network sees the same corrupted inputs.
    """
    levels = levels or {}
    out = {}
    for kind in kinds:
        lv = tuple(levels.get(kind, DEFAULT_LEVELS[kind]))
        if kind.startswith("spike") and encoding != "rate":
            continue
        modes = {}
        for mode, nets in nets_by_mode.items():
            per_seed = np.array([noise_accuracy(net, x, y, kind, lv, timesteps=timesteps, encoding=encoding,
                                                seed=seed, batch_size=batch_size, backend=backend)
                                 for net in nets])
            modes[mode] = {"per_seed": per_seed.tolist(), "mean": per_seed.mean(axis=0).tolist(),
                           "std": per_seed.std(axis=0).tolist()}
        out[kind] = {"levels": list(lv), "modes": modes}
    return out
