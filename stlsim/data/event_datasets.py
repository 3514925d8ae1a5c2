"""Event data sets as frame ``Dataset``s: N-MNIST, DVS128 Gesture, SHD, and a synthetic stand-in.

Each loader reads local files with the exact-format readers of ``neuromorphic.py``,
bins every recording into T frames (``events.py``) over a fixed window so that bins
line up across samples, clips counts to {0, 1} per bin (a spike or none), and returns
a ``Dataset`` with ``timesteps = T`` and ``x`` of shape (N, T, features).

=====================  =========================================  =================
spec                   files                                      input per step
=====================  =========================================  =================
``nmnist:DIR``         ``DIR/{Train,Test}/<digit>/*.bin``         2 x 34 x 34, T=20 over 0-300 ms
``dvsgesture:DIR``     ``DIR/trials_to_{train,test}.txt``,        2 x 32 x 32 (128/4), T=20
                       ``user*.aedat``, ``user*_labels.csv``      over each gesture's window
``shd:FILE_DIR``       ``shd_{train,test}.h5`` in DIR             700 units, T=100 over 0-1.4 s
``saccade-digits``     bundled UCI digits -> simulated saccades   2 x 14 x 14, T=20 over 0-300 ms
=====================  =========================================  =================

``saccade-digits`` is SYNTHETIC (see ``synthetic.py``): the neuromorphic path end to
end on real images, in CI and offline. It is not N-MNIST and must not be reported as such.
"""
from __future__ import annotations

import glob
import os

import numpy as np

from .._checks import fail
from .._io import inside

__all__ = ["EVENT_SPECS", "is_event_spec", "load_event_dataset"]

EVENT_SPECS = ("nmnist", "dvsgesture", "shd", "saccade-digits")


def is_event_spec(spec) -> bool:
    """A data set fed as pre-binned frames ``(N, T, features)``: an event set of ``EVENT_SPECS``, or a
    sequence set of ``stlsim.data.sequence.SEQUENCE_SPECS`` (``mnist1d-seq``: one value per step)."""
    from .sequence import SEQUENCE_SPECS

    return isinstance(spec, str) and spec.split(":", 1)[0].lower() in EVENT_SPECS + SEQUENCE_SPECS


def _frames(events_list, T, sensor_size, downsample=1, windows=None, t_window=(0, 300_000), sources=None):
    """Binned frames of each recording; ``sources`` (one file name per recording) name errors."""
    from .events import events_to_frames

    out = []
    for k, events in enumerate(events_list):
        t_start, t_stop = windows[k] if windows is not None else t_window
        try:
            frames = events_to_frames(events, T, sensor_size, mode="time", polarity_channels=True,
                                      downsample=downsample, t_start=t_start, t_stop=t_stop)
        except ValueError as err:
            if sources is None:
                raise
            raise ValueError(f"File {sources[k]!r}: {err}") from None
        out.append(np.minimum(frames, 1.0).reshape(T, -1))
    return np.stack(out).astype(np.float32) if out else np.zeros((0, T, 1), np.float32)


def _dataset(name, x_train, y_train, x_test, y_test, n_classes, T, source, license_):
    from .static import Dataset

    return Dataset(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, name=name,
                   n_classes=n_classes, input_shape=(T, x_train.shape[2]), source=source,
                   license=license_, timesteps=T)


def load_saccade_digits(timesteps: int = 20, seed: int = 0, n_train=None, n_test=None, dt_us: int = 10_000):
    """The bundled digits turned into SYNTHETIC saccade event recordings, then frames.

    ``n_train``/``n_test`` convert only the first samples of each split; ``dt_us`` is
    the sensor simulation step (events inside a step are timed by interpolation).
    """
    from .static import load_digits
    from .synthetic import make_neuromorphic_dataset

    digits = load_digits(seed=seed).subset(n_train, n_test)
    rng = np.random.default_rng([seed, 7])
    parts = []
    for x, y in ((digits.x_train, digits.y_train), (digits.x_test, digits.y_test)):
        events, labels = make_neuromorphic_dataset(x.reshape(-1, 8, 8), y, rng, dt_us=dt_us)
        parts.append((_frames(events, timesteps, (14, 14)), labels))
    return _dataset("saccade-digits", parts[0][0], parts[0][1], parts[1][0], parts[1][1], 10, timesteps,
                    "bundled UCI digits converted to events by simulated saccades (SYNTHETIC)",
                    digits.license)


def load_nmnist(directory, timesteps: int = 20, max_per_split: int | None = None):
    """N-MNIST from ``DIR/Train/<digit>/*.bin`` and ``DIR/Test/<digit>/*.bin``."""
    from .neuromorphic import read_nmnist

    parts = []
    for split in ("Train", "Test"):
        files = sorted(glob.glob(os.path.join(directory, split, "[0-9]", "*.bin")))
        if not files:
            raise FileNotFoundError(f"N-MNIST: no {split}/<digit>/*.bin files under {directory!r}")
        if max_per_split:
            files = files[:: max(1, len(files) // max_per_split)][:max_per_split]
        labels = np.array([int(os.path.basename(os.path.dirname(f))) for f in files], dtype=np.int64)
        parts.append((_frames([read_nmnist(f) for f in files], timesteps, (34, 34), sources=files), labels))
    return _dataset("nmnist", parts[0][0], parts[0][1], parts[1][0], parts[1][1], 10, timesteps,
                    os.path.abspath(directory), "see the N-MNIST licence")


def load_dvsgesture(directory, timesteps: int = 20, downsample: int = 4):
    """DVS128 Gesture: AEDAT 3.1 recordings split into gestures by their label CSVs."""
    from .neuromorphic import read_aedat, read_gesture_labels, read_trial_list, split_gesture_recording

    parts = []
    for split in ("train", "test"):
        trial_file = os.path.join(directory, f"trials_to_{split}.txt")
        if not os.path.exists(trial_file):
            raise FileNotFoundError(f"DVS128 Gesture: {trial_file!r} is missing")
        events_list, windows, labels, sources = [], [], [], []
        for name in read_trial_list(trial_file):
            path = inside(directory, name, f"the recording listed in {trial_file!r}")
            csv = path[: -len(".aedat")] + "_labels.csv"
            for events, label in split_gesture_recording(read_aedat(path), read_gesture_labels(csv)):
                if len(events) == 0:
                    continue
                events_list.append(events)
                sources.append(path)
                windows.append((int(events["t"][0]), int(events["t"][-1]) + 1))
                labels.append(label)
        parts.append((_frames(events_list, timesteps, (128, 128), downsample, windows, sources=sources),
                      np.array(labels, dtype=np.int64)))
    return _dataset("dvsgesture", parts[0][0], parts[0][1], parts[1][0], parts[1][1], 11, timesteps,
                    os.path.abspath(directory), "see the DVS128 Gesture licence")


def load_shd_dataset(path, timesteps: int = 100, t_max_us: int = 1_400_000):
    """SHD from a directory holding ``shd_train.h5`` and ``shd_test.h5``."""
    from .events import units_to_frames
    from .neuromorphic import read_shd

    parts = []
    for split in ("train", "test"):
        file = os.path.join(path, f"shd_{split}.h5")
        if not os.path.exists(file):
            raise FileNotFoundError(f"SHD: {file!r} is missing")
        events_list, labels = read_shd(file)
        try:
            frames = np.stack([np.minimum(units_to_frames(ev, timesteps, 700, t_max_us), 1.0) for ev in events_list])
        except ValueError as err:
            raise ValueError(f"File {file!r}: {err}") from None
        parts.append((frames.astype(np.float32), labels))
    return _dataset("shd", parts[0][0], parts[0][1], parts[1][0], parts[1][1], 20, timesteps,
                    os.path.abspath(path), "CC BY 4.0 (SHD)")


def load_event_dataset(spec: str, timesteps: int | None = None, n_train=None, n_test=None):
    """Load an event data set by spec (table in the module docstring).

    ``n_train``/``n_test`` keep the first samples of each split (read or converted only
    as needed where the format allows).
    """
    from .sequence import SEQUENCE_SPECS, load_sequence_dataset

    name, _, where = spec.partition(":")
    name = name.lower()
    kwargs = {} if timesteps is None else {"timesteps": timesteps}
    if name in SEQUENCE_SPECS:
        return load_sequence_dataset(spec, timesteps)
    if name == "saccade-digits":
        return load_saccade_digits(n_train=n_train, n_test=n_test, **kwargs)
    if not where:
        raise fail("dataset", f"'{name}:PATH' with the local folder of the data", repr(spec), "load_event_dataset")
    if name == "nmnist":
        return load_nmnist(where, **kwargs)
    if name == "dvsgesture":
        return load_dvsgesture(where, **kwargs)
    if name == "shd":
        return load_shd_dataset(where, **kwargs)
    raise fail("dataset", "one of " + ", ".join(EVENT_SPECS), repr(spec), "load_event_dataset")
