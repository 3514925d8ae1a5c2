"""Sequence data sets: a static data set presented one feature per time step.

``mnist1d-seq`` is MNIST-1D (Greydanus 2020, the ``mnist1d`` package) as a sequence task:
each sample's 40 values are fed one per step (T = 40), as an analog input current to a single
input unit, so the network must integrate over time to classify (a feed-forward network
sees one value at a time; a recurrent or adaptive layer carries what it saw). The samples are
generated offline by ``mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())`` (the
package's default seed 42: 4,000 training and 1,000 test sequences), min-max scaled into
[0, 1] by the training set's range (test values clipped), as ``Dataset`` asks for values in
[0, 1], and cached as an ``.npz``; the package's download helper is never called.

    from stlsim.data.sequence import load_mnist1d_seq
    data = load_mnist1d_seq()        # Dataset, x_train (4000, 40, 1), timesteps 40

Spec ``mnist1d-seq`` (cache in ``$STLSIM_DATA_CACHE`` or ``~/.cache/stlsim``) or
``mnist1d-seq:DIR`` (cache in DIR). A cache that does not match its recorded shapes is
regenerated.
"""
from __future__ import annotations

import os

import numpy as np

from .._checks import fail
from .._io import atomic_path

__all__ = ["SEQUENCE_SPECS", "MNIST1D_LENGTH", "cache_dir", "load_mnist1d_seq", "load_sequence_dataset"]

SEQUENCE_SPECS = ("mnist1d-seq",)
MNIST1D_LENGTH = 40            # values per MNIST-1D sample with the package's default arguments
_CACHE_NAME = "mnist1d_seq.npz"
_SOURCE = ("mnist1d.data.make_dataset(get_dataset_args()), seed 42, min-max scaled to [0, 1] by the "
           "training range, one value per time step")


def cache_dir(directory=None) -> str:
    """Where the generated data is cached: ``directory``, ``$STLSIM_DATA_CACHE`` or ``~/.cache/stlsim``."""
    if directory:
        return os.fspath(directory)
    return os.environ.get("STLSIM_DATA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "stlsim")


def _generate():
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ImportError("mnist1d-seq needs the mnist1d package (pip install mnist1d); its samples are "
                          "generated offline, nothing is downloaded") from None
    d = make_dataset(get_dataset_args())           # generates from seed 42; never downloads
    x, x_test = np.asarray(d["x"], np.float64), np.asarray(d["x_test"], np.float64)
    low, high = float(x.min()), float(x.max())
    scale = lambda v: np.clip((v - low) / (high - low), 0.0, 1.0).astype(np.float32)  # noqa: E731
    return (scale(x), np.asarray(d["y"], np.int64), scale(x_test), np.asarray(d["y_test"], np.int64))


def _read(path):
    try:
        with np.load(path) as f:
            parts = tuple(f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, KeyError, ValueError):
        return None
    x, y, xt, yt = parts
    if x.ndim != 2 or x.shape[1] != MNIST1D_LENGTH or xt.shape[1:] != x.shape[1:] or len(y) != len(x) \
            or len(yt) != len(xt):
        return None
    return parts


def load_mnist1d_seq(directory=None, timesteps: int | None = None):
    """MNIST-1D as a sequence ``Dataset`` (frames ``(N, 40, 1)``, ``timesteps = 40``); see the module."""
    from .static import Dataset

    if timesteps is not None and int(timesteps) != MNIST1D_LENGTH:
        raise fail("timesteps", f"{MNIST1D_LENGTH} for mnist1d-seq (one step per value of a sample)",
                   repr(timesteps), "load_mnist1d_seq")
    folder = cache_dir(directory)
    path = os.path.join(folder, _CACHE_NAME)
    parts = _read(path) if os.path.exists(path) else None
    if parts is None:
        parts = _generate()
        os.makedirs(folder, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, x_train=parts[0], y_train=parts[1], x_test=parts[2], y_test=parts[3])
    x, y, xt, yt = parts
    T = x.shape[1]
    return Dataset(x_train=x.reshape(len(x), T, 1), y_train=y, x_test=xt.reshape(len(xt), T, 1), y_test=yt,
                   name="mnist1d-seq", n_classes=10, input_shape=(T, 1), source=_SOURCE,
                   license="Apache-2.0 (mnist1d)", timesteps=T)


def load_sequence_dataset(spec: str, timesteps: int | None = None):
    """A sequence data set by spec: ``mnist1d-seq`` or ``mnist1d-seq:CACHE_DIR``."""
    name, _, where = str(spec).partition(":")
    if name.lower() == "mnist1d-seq":
        return load_mnist1d_seq(where or None, timesteps)
    raise fail("dataset", "one of " + ", ".join(SEQUENCE_SPECS), repr(spec), "load_sequence_dataset")
