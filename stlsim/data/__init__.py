"""Data sets and input encodings for stlsim (``import stlsim.data``; not loaded by ``import stlsim``).

Static images (`static`): the bundled UCI digits, MNIST / Fashion-MNIST IDX files,
CIFAR-10 python batches and stlsim's npz format, all as a `Dataset` of float32 images
in [0, 1] and int64 labels. Loaders read local paths only; nothing is downloaded.

Encodings (`encoding`): `rate_encode` (Bernoulli spikes) and `direct_encode` (analog
input repeated over time), both time-major (T, *x.shape), plus `iterate_minibatches`;
`encode(x, timesteps, encoding, rng, dtype)` is the one the training loop and the
analyses use ("rate", "direct", or "frames" for pre-binned event frames).

Importing this package needs numpy only.
"""
from .encoding import direct_encode, encode, iterate_minibatches, rate_encode
from .static import (
    FASHION_MNIST_DIR,
    Dataset,
    load_cifar10,
    load_dataset,
    load_digits,
    load_idx,
    load_mnist_dir,
    load_npz,
    read_cifar10_batch,
    read_idx,
    save_npz_dataset,
    write_idx,
)

__all__ = [
    "Dataset",
    "FASHION_MNIST_DIR",
    "load_digits",
    "read_idx",
    "write_idx",
    "load_idx",
    "load_mnist_dir",
    "read_cifar10_batch",
    "load_cifar10",
    "load_npz",
    "save_npz_dataset",
    "load_dataset",
    "encode",
    "rate_encode",
    "direct_encode",
    "iterate_minibatches",
]

# Neuromorphic (event) data: N-MNIST, DVS128 Gesture (AEDAT 3.1), SHD (HDF5), the
# event transforms, the HDF5 dataset cache and the synthetic saccade stand-in.
# h5py stays imported inside the functions that need it.
from .cache import open_cache, write_cache
from .events import (crop_time, downsample_events, drop_events, events_to_frames, events_to_sparse,
                     insert_events, jitter_events, units_to_frames)
from .neuromorphic import (EVENT_DTYPE, UNIT_EVENT_DTYPE, iter_nmnist_chunks, make_events,
                           make_unit_events, read_aedat, read_gesture_labels, read_nmnist, read_shd,
                           read_trial_list, split_gesture_recording, write_aedat, write_nmnist, write_shd)
from .synthetic import make_neuromorphic_dataset, saccade_events

__all__ += [
    "open_cache", "write_cache",
    "crop_time", "downsample_events", "drop_events", "events_to_frames", "events_to_sparse",
    "insert_events", "jitter_events", "units_to_frames",
    "EVENT_DTYPE", "UNIT_EVENT_DTYPE", "iter_nmnist_chunks", "make_events", "make_unit_events",
    "read_aedat", "read_gesture_labels", "read_nmnist", "read_shd", "read_trial_list",
    "split_gesture_recording", "write_aedat", "write_nmnist", "write_shd",
    "make_neuromorphic_dataset", "saccade_events",
]
