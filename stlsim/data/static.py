"""Static-image data sets: the in-memory `Dataset`, file loaders and writers.

Every loader reads a local path and never downloads. Images come back as float32 in
[0, 1] with shape (N, *input_shape); labels as int64 in [0, n_classes).

File formats:

* **IDX** (MNIST, Fashion-MNIST): big-endian. Bytes 0-1 are zero, byte 2 is the
  element type (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
  0x0E float64), byte 3 the number of dimensions; then one big-endian uint32 per
  dimension, then the data in C order. Images: magic 0x00000803 (N, rows, cols);
  labels: magic 0x00000801 (N,). Files may be gzipped (detected from the content).
* **CIFAR-10 python batches**: pickled dicts with ``data`` (N, 3072) uint8, each row
  the R, then G, then B 32x32 planes in row-major order, and ``labels`` (N ints).
  The official files were pickled by Python 2, so their keys unpickle as bytes.
* **npz** (stlsim's own interchange): arrays ``x_train``, ``y_train``, ``x_test``,
  ``y_test``; optional 0-d string/int arrays ``name``, ``n_classes``, ``source``,
  ``license``, ``provenance`` (JSON).
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import os
from pathlib import Path

import numpy as np

from .._checks import check_int, check_labels, check_real, fail
from .._io import atomic_path, provenance

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
]

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist/"

_BUNDLED = Path(__file__).resolve().parent / "bundled"

_LICENSES = {
    "digits": "CC BY 4.0 (UCI ML hand-written digits, E. Alpaydin and C. Kaynak; via scikit-learn)",
    "fashion-mnist": "MIT (Zalando SE, Fashion-MNIST)",
    "mnist": "CC BY-SA 3.0 (Y. LeCun and C. Cortes, MNIST)",
    "cifar10": "no explicit licence; cite A. Krizhevsky (2009), Learning Multiple Layers of "
               "Features from Tiny Images",
}


# --------------------------------------------------------------------------- Dataset
@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A train/test split of images in [0, 1] with integer class labels.

    ``x_*`` are float32 of shape (N, *input_shape), ``y_*`` int64 of shape (N,) with
    values in [0, n_classes). Arrays are validated (and coerced) on construction.

    ``timesteps`` > 0 marks pre-binned event data: each sample already holds its own
    T = ``timesteps`` input frames on axis 1 (``input_shape[0] == timesteps``), fed to the
    network as they are (encoding "frames") instead of being rate- or direct-coded.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    n_classes: int
    input_shape: tuple
    source: str = ""
    license: str = ""
    timesteps: int = 0

    def __post_init__(self):
        owner = "Dataset"
        n_classes = check_int(self.n_classes, "n_classes", low=1, owner=owner)
        try:
            input_shape = tuple(int(d) for d in self.input_shape)
        except (TypeError, ValueError):
            raise fail("input_shape", "a tuple of positive integers", repr(self.input_shape),
                       owner, TypeError) from None
        if not input_shape or min(input_shape) < 1:
            raise fail("input_shape", "a non-empty tuple of positive integers",
                       repr(self.input_shape), owner)
        set_ = object.__setattr__  # frozen: coerced values are stored once, here
        set_(self, "n_classes", n_classes)
        set_(self, "input_shape", input_shape)
        timesteps = check_int(self.timesteps, "timesteps", low=0, owner=owner)
        if timesteps and input_shape[0] != timesteps:
            raise fail("input_shape", f"(timesteps={timesteps}, ...) for frame data",
                       repr(input_shape), owner)
        set_(self, "timesteps", timesteps)
        for part in ("train", "test"):
            x = _check_images(getattr(self, f"x_{part}"), f"x_{part}", input_shape, owner)
            y = check_labels(getattr(self, f"y_{part}"), f"y_{part}", len(x), n_classes, owner)
            set_(self, f"x_{part}", x)
            set_(self, f"y_{part}", y)

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    @property
    def n_test(self) -> int:
        return len(self.x_test)

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def sample_shape(self) -> tuple:
        """Shape of one network input per time step (input_shape without T for frames)."""
        return self.input_shape[1:] if self.timesteps else self.input_shape

    def flat(self) -> Dataset:
        """The same data with each image flattened to (n_features,) (views, no copy)."""
        if self.timesteps:
            features = int(np.prod(self.input_shape[1:]))
            return dataclasses.replace(
                self, x_train=self.x_train.reshape(self.n_train, self.timesteps, features),
                x_test=self.x_test.reshape(self.n_test, self.timesteps, features),
                input_shape=(self.timesteps, features))
        return dataclasses.replace(
            self,
            x_train=self.x_train.reshape(self.n_train, self.n_features),
            x_test=self.x_test.reshape(self.n_test, self.n_features),
            input_shape=(self.n_features,),
        )

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> Dataset:
        """Keep the first ``n_train`` training and ``n_test`` test samples (None: all)."""
        n_train = self.n_train if n_train is None else check_int(
            n_train, "n_train", low=0, high=self.n_train, owner="Dataset.subset")
        n_test = self.n_test if n_test is None else check_int(
            n_test, "n_test", low=0, high=self.n_test, owner="Dataset.subset")
        return dataclasses.replace(
            self,
            x_train=self.x_train[:n_train], y_train=self.y_train[:n_train],
            x_test=self.x_test[:n_test], y_test=self.y_test[:n_test],
        )

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"n_classes={self.n_classes})")


def _check_images(value, name, input_shape, owner) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise fail(name, "a numeric array", f"dtype {arr.dtype}", owner, TypeError)
    if arr.shape[1:] != input_shape or arr.ndim != 1 + len(input_shape):
        expected = "(N, " + ", ".join(str(d) for d in input_shape) + ")"
        raise fail(name, f"an array of shape {expected}", f"shape {arr.shape}", owner)
    arr = arr.astype(np.float32, copy=False)
    if arr.size:
        low, high = float(arr.min()), float(arr.max())  # NaN propagates and fails below
        if not (low >= 0.0 and high <= 1.0):
            raise fail(name, "finite values in [0, 1]", f"values in [{low}, {high}]", owner)
    return arr


def _existing_file(path, what: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file {path!r} does not exist.")
    return path


# --------------------------------------------------------------------------- digits
def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """The bundled UCI 8x8 hand-written digits (1,797 images), split train/test.

    Images are flattened to (N, 64) and scaled by 1/16 to [0, 1]. The split is
    stratified: in each class, ``round(test_fraction * n_class)`` samples chosen by a
    permutation from ``np.random.default_rng(seed)`` go to the test set. Both sets are
    then shuffled with the same generator, so ``subset`` takes a random-looking prefix.
    """
    owner = "load_digits"
    test_fraction = check_real(test_fraction, "test_fraction", low=0.0, high=1.0,
                               low_open=True, high_open=True, owner=owner)
    seed = check_int(seed, "seed", low=0, owner=owner)
    path = _BUNDLED / "digits.csv.gz"
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    pixels, labels = table[:, :64], table[:, 64]
    rng = np.random.default_rng(seed)
    test_parts, train_parts = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        n_test = int(round(test_fraction * len(members)))
        n_test = min(max(n_test, 1), len(members) - 1)  # keep each class in both sets
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    train = rng.permutation(np.concatenate(train_parts))
    test = rng.permutation(np.concatenate(test_parts))
    x = (pixels / 16.0).astype(np.float32)
    return Dataset(
        x_train=x[train], y_train=labels[train], x_test=x[test], y_test=labels[test],
        name="digits", n_classes=10, input_shape=(64,),
        source=f"{path} (UCI optdigits test set, via scikit-learn)",
        license=_LICENSES["digits"],
    )


# --------------------------------------------------------------------------- IDX
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_TYPES.items()}


def _read_maybe_gzip(path: str) -> bytes:
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] == b"\x1f\x8b":  # gzip magic; decide by content, not by file name
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise fail(path, "a complete gzip file", f"a damaged one ({err})") from None
    return raw


def read_idx(path) -> np.ndarray:
    """Read any IDX file (gzipped or not) into an array in native byte order."""
    path = _existing_file(path, "IDX")
    raw = _read_maybe_gzip(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        got = "magic 0x" + raw[:4].hex() if len(raw) >= 4 else f"a {len(raw)}-byte file"
        raise fail(path, "an IDX file (magic 0x0000TTDD, TT a known type code)", got)
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise fail(path, f"an IDX file with a {header}-byte header ({ndim} dimensions)",
                   f"{len(raw)} bytes in all")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        word = "truncated" if len(raw) < expected else "too long"
        raise fail(path, f"{expected} bytes for an IDX array of shape {dims} and type {dtype.name}",
                   f"{len(raw)} bytes ({word})")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))  # native order, writable copy


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file, gzipped if ``path`` ends in ``.gz`` (atomic).

    Supported dtypes: uint8, int8, int16, int32, float32, float64.
    """
    owner = "write_idx"
    arr = np.asarray(array)
    key = arr.dtype.newbyteorder("=")
    if key not in _IDX_CODES:
        raise fail("array", "of dtype uint8, int8, int16, int32, float32 or float64",
                   f"dtype {arr.dtype}", owner, TypeError)
    if not 1 <= arr.ndim <= 255:
        raise fail("array", "an array with 1 to 255 dimensions", f"shape {arr.shape}", owner)
    code = _IDX_CODES[key]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(arr, dtype=_IDX_TYPES[code]).tobytes()
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        if path.endswith(".gz"):
            with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                       mtime=0) as handle:
                handle.write(payload)
        else:
            with open(tmp, "wb") as handle:
                handle.write(payload)


def _idx_magic(path: str) -> str:
    raw = _read_maybe_gzip(path)[:4]
    return "magic 0x" + raw.hex() if len(raw) == 4 else f"a {len(raw)}-byte file"


def load_idx(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """Read an IDX image file and its label file.

    Returns images as float32 (N, rows, cols) scaled by 1/255 and labels as int64 (N,).
    """
    images_path = _existing_file(images_path, "IDX image")
    labels_path = _existing_file(labels_path, "IDX label")
    images = read_idx(images_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise fail(images_path, "an IDX file of uint8 images (N, rows, cols), magic 0x00000803",
                   _idx_magic(images_path))
    labels = read_idx(labels_path)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise fail(labels_path, "an IDX file of uint8 labels (N,), magic 0x00000801",
                   _idx_magic(labels_path))
    if len(images) != len(labels):
        raise fail(labels_path, f"an IDX label file with {len(images)} labels, one per image "
                   f"in {images_path}", f"{len(labels)} labels")
    return images.astype(np.float32) / np.float32(255.0), labels.astype(np.int64)


_IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find_idx(directory: str, stem: str) -> str:
    # Some mirrors write "train-images.idx3-ubyte" instead of "train-images-idx3-ubyte".
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f"IDX file {stem}[.gz] is missing from {directory!r}. An MNIST-style directory "
        f"holds {', '.join(s + '[.gz]' for s in _IDX_STEMS.values())}.")


def load_mnist_dir(directory=FASHION_MNIST_DIR, name: str | None = None,
                   n_classes: int = 10) -> Dataset:
    """Load an MNIST-style directory of the four standard IDX files (gz or not).

    Works for MNIST and Fashion-MNIST. ``name`` defaults to ``"fashion-mnist"`` when
    the directory path contains "fashion", else ``"mnist"``; it picks the licence text.
    Images are (N, 28, 28) float32 in [0, 1]; ``Dataset.flat()`` gives (N, 784).
    """
    owner = "load_mnist_dir"
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"MNIST-style directory {directory!r} does not exist. For Fashion-MNIST on "
            f"Debian/Ubuntu: apt-get install dataset-fashion-mnist (installs to "
            f"{FASHION_MNIST_DIR}).")
    if name is None:
        name = "fashion-mnist" if "fashion" in directory.lower() else "mnist"
    n_classes = check_int(n_classes, "n_classes", low=1, high=256, owner=owner)
    paths = {key: _find_idx(directory, stem) for key, stem in _IDX_STEMS.items()}
    x_train, y_train = load_idx(paths["train_images"], paths["train_labels"])
    x_test, y_test = load_idx(paths["test_images"], paths["test_labels"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise fail(paths["test_images"], f"images of the training size {x_train.shape[1:]}",
                   f"size {x_test.shape[1:]}")
    for key, labels in (("train_labels", y_train), ("test_labels", y_test)):
        if labels.size and labels.max() >= n_classes:
            raise fail(paths[key], f"labels in [0, {n_classes - 1}]",
                       f"a maximum label of {labels.max()}")
    return Dataset(
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        name=name, n_classes=n_classes, input_shape=x_train.shape[1:],
        source=os.path.abspath(directory), license=_LICENSES.get(name, ""),
    )


# --------------------------------------------------------------------------- CIFAR-10
def _numpy_reconstructors() -> dict:
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric

    allowed = {}
    for package in ("numpy._core", "numpy.core"):  # py2-era files say numpy.core
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    import codecs
    allowed[("_codecs", "encode")] = codecs.encode  # how protocol-2 pickles store bytes
    return allowed


def _load_pickle(path: str):
    """Unpickle a CIFAR batch, refusing any global that is not a numpy array builder.

    Plain ``pickle.load`` runs whatever code a file names; the CIFAR batches only
    need numpy's array reconstructors, so nothing else is allowed.
    """
    import pickle

    allowed = _numpy_reconstructors()

    class _NumpyOnly(pickle.Unpickler):
        def find_class(self, module, name):
            try:
                return allowed[(module, name)]
            except KeyError:
                raise fail(path, "a CIFAR batch pickle holding only lists, bytes and numpy "
                           "arrays", f"a reference to {module}.{name}") from None

    with open(path, "rb") as handle:
        try:
            # encoding="bytes": Python 2 str objects (keys, numpy buffers) stay bytes.
            return _NumpyOnly(handle, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, UnicodeDecodeError) as err:
            raise fail(path, "a CIFAR-10 python batch (a pickled dict)",
                       f"an unreadable pickle ({err})") from None


def _get_key(batch: dict, key: str):
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    return None


def read_cifar10_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch (``data_batch_k`` or ``test_batch``).

    Returns images float32 (N, 3, 32, 32) in [0, 1] and labels int64 (N,). Keys may be
    bytes (the official Python 2 pickles) or str.
    """
    path = _existing_file(path, "CIFAR-10 batch")
    batch = _load_pickle(path)
    if not isinstance(batch, dict):
        raise fail(path, "a pickled dict with keys 'data' and 'labels'",
                   f"a pickled {type(batch).__name__}")
    data, labels = _get_key(batch, "data"), _get_key(batch, "labels")
    missing = [k for k, v in (("data", data), ("labels", labels)) if v is None]
    if missing:
        keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in batch)
        raise fail(path, "a CIFAR-10 batch with keys 'data' and 'labels'",
                   f"keys {keys} (missing {missing})")
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise fail(path, "a CIFAR-10 batch whose 'data' has shape (N, 3072)",
                   f"shape {data.shape}")
    if data.dtype != np.uint8:
        raise fail(path, "a CIFAR-10 batch whose 'data' is uint8", f"dtype {data.dtype}")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.shape != (len(data),):
        raise fail(path, f"a CIFAR-10 batch with {len(data)} integer labels",
                   f"labels of shape {labels.shape} and dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise fail(path, "labels in [0, 9]", f"values in [{labels.min()}, {labels.max()}]")
    images = data.reshape(len(data), 3, 32, 32).astype(np.float32) / np.float32(255.0)
    return images, labels.astype(np.int64)


def load_cifar10(directory) -> Dataset:
    """Load CIFAR-10 from its python batches: ``data_batch_1..5`` and ``test_batch``.

    ``directory`` may be the extracted ``cifar-10-batches-py`` folder or its parent.
    Images are (N, 3, 32, 32) float32 in [0, 1] (channels first, R, G, B).
    """
    directory = os.fspath(directory)
    nested = os.path.join(directory, "cifar-10-batches-py")
    if os.path.isdir(nested):
        directory = nested
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not os.path.isfile(os.path.join(directory, n))]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 python batches {missing} are missing from {directory!r}. Extract "
            f"cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) there; "
            f"stlsim never downloads.")
    train = [read_cifar10_batch(os.path.join(directory, n)) for n in names[:5]]
    x_test, y_test = read_cifar10_batch(os.path.join(directory, "test_batch"))
    return Dataset(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=x_test, y_test=y_test,
        name="cifar10", n_classes=10, input_shape=(3, 32, 32),
        source=os.path.abspath(directory), license=_LICENSES["cifar10"],
    )


# --------------------------------------------------------------------------- npz
_NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


# Classes of a user data set at most: one output neuron each; a stray label of 10**7 would
# otherwise build a network of ten million outputs.
MAX_CLASSES = 100_000


def _npz_images(path: str, key: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
        if arr.size:
            low, high = float(arr.min()), float(arr.max())
            if not (low >= 0.0 and high <= 1.0):
                raise fail(path, f"an npz whose float '{key}' lies in [0, 1]",
                           f"values in [{low}, {high}]")
        return arr
    raise fail(path, f"an npz whose '{key}' is uint8 (0..255) or float in [0, 1]",
               f"dtype {arr.dtype}")


def load_npz(path) -> Dataset:
    """Load a data set saved as npz (by `save_npz_dataset` or by hand).

    Required arrays: ``x_train``, ``y_train``, ``x_test``, ``y_test``. Images may be
    uint8 (scaled by 1/255) or float in [0, 1]. Optional 0-d entries: ``name``,
    ``n_classes`` (an integer, default: largest label + 1; at most ``MAX_CLASSES``),
    ``source``, ``license``. Every error names the file.
    """
    path = _existing_file(path, "npz")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise fail(path, "an npz archive", f"an unreadable file ({err})") from None
    with archive:
        missing = [k for k in _NPZ_ARRAYS if k not in archive.files]
        if missing:
            raise fail(path, "an npz with arrays " + ", ".join(_NPZ_ARRAYS),
                       f"keys {sorted(archive.files)} (missing {missing})")
        x = {part: _npz_images(path, f"x_{part}", archive[f"x_{part}"]) for part in ("train", "test")}
        y = {part: archive[f"y_{part}"] for part in ("train", "test")}
        meta = {}
        for key in ("name", "n_classes", "source", "license"):
            if key in archive.files:
                value = archive[key]
                if value.ndim != 0:
                    raise fail(path, f"an npz whose '{key}' is a single value (a 0-d array)",
                               f"shape {value.shape}")
                meta[key] = value.item()
    for part in ("train", "test"):
        if x[part].ndim < 2:
            raise fail(path, f"an npz whose 'x_{part}' has shape (N, ...features)",
                       f"shape {x[part].shape}")
        if y[part].dtype.kind not in "iu":
            raise fail(path, f"an npz whose 'y_{part}' holds integer labels",
                       f"dtype {y[part].dtype}")
        if y[part].shape != (len(x[part]),):
            raise fail(path, f"an npz whose 'y_{part}' has one label per image, shape "
                       f"({len(x[part])},)", f"shape {y[part].shape}")
    if x["train"].shape[1:] != x["test"].shape[1:]:
        raise fail(path, f"an npz whose 'x_test' images have the 'x_train' shape "
                   f"{x['train'].shape[1:]}", f"shape {x['test'].shape[1:]}")
    labels = np.concatenate([y["train"], y["test"]])
    if labels.size and labels.min() < 0:
        raise fail(path, "an npz with labels >= 0", f"a minimum label of {labels.min()}")
    if labels.size and labels.max() >= MAX_CLASSES:
        raise fail(path, f"an npz with labels below {MAX_CLASSES} (stlsim.data.static.MAX_CLASSES: one "
                   "output neuron per class)", f"a maximum label of {labels.max()}")
    default_classes = int(labels.max()) + 1 if labels.size else 1
    n_classes = meta.get("n_classes", default_classes)
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or not 1 <= n_classes <= MAX_CLASSES:
        raise fail(path, f"an npz whose 'n_classes' is an integer in [1, {MAX_CLASSES}]",
                   f"{type(n_classes).__name__} {n_classes!r}")
    if labels.size and labels.max() >= n_classes:
        raise fail(path, f"an npz with labels in [0, {n_classes - 1}] (its n_classes)",
                   f"a maximum label of {labels.max()}")
    for key in ("name", "source", "license"):
        if key in meta and not isinstance(meta[key], str):
            raise fail(path, f"an npz whose '{key}' is a string", f"{type(meta[key]).__name__} {meta[key]!r}")
    try:
        return Dataset(
            x_train=x["train"], y_train=y["train"], x_test=x["test"], y_test=y["test"],
            name=str(meta.get("name", Path(path).stem)), n_classes=n_classes,
            input_shape=x["train"].shape[1:],
            source=str(meta.get("source", os.path.abspath(path))),
            license=str(meta.get("license", "")),
        )
    except (ValueError, TypeError) as err:      # the message names the file the arrays came from
        raise type(err)(f"File {path!r}: {err}") from None


def save_npz_dataset(path, dataset: Dataset, compress: bool = True) -> None:
    """Save ``dataset`` as npz (atomic) so that `load_npz` gives it back exactly."""
    if not isinstance(dataset, Dataset):
        raise fail("dataset", "a stlsim.data.Dataset", type(dataset).__name__,
                   "save_npz_dataset", TypeError)
    arrays = {
        "x_train": dataset.x_train, "y_train": dataset.y_train,
        "x_test": dataset.x_test, "y_test": dataset.y_test,
        "name": np.array(dataset.name), "n_classes": np.array(dataset.n_classes),
        "source": np.array(dataset.source), "license": np.array(dataset.license),
        "provenance": np.array(json.dumps(provenance(schema="stlsim.dataset/1"))),
    }
    save = np.savez_compressed if compress else np.savez
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:  # a file object: np.savez would append ".npz" to a name
            save(handle, **arrays)


# --------------------------------------------------------------------------- by name
_ENV_DIRS = {"mnist": "STLSIM_MNIST_DIR", "cifar10": "STLSIM_CIFAR10_DIR"}
_WHERE_TO_PUT = {
    "mnist": "the four MNIST IDX files (train-images-idx3-ubyte[.gz], "
             "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
             "t10k-labels-idx1-ubyte[.gz])",
    "cifar10": "the extracted CIFAR-10 python batches (data_batch_1..5, test_batch from "
               "cifar-10-python.tar.gz)",
}


def load_dataset(spec: str) -> Dataset:
    """Load a data set by name or path.

    ``spec`` is ``"digits"``, ``"fashion-mnist"``, ``"mnist"``, ``"cifar10"`` (each of
    the last three optionally followed by ``":DIR"``), or a path to a ``.npz`` file.
    Without ``:DIR``, Fashion-MNIST is read from the Debian directory
    ``/usr/share/datasets/fashion-mnist/``, MNIST from ``$STLSIM_MNIST_DIR`` and CIFAR-10
    from ``$STLSIM_CIFAR10_DIR``. Nothing is ever downloaded.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise fail("spec", "a data set name or a path to an .npz file",
                   f"{type(spec).__name__} {spec!r}", "load_dataset", TypeError)
    spec = os.fspath(spec)
    name, _, directory = spec.partition(":")
    name = name.lower()
    if name == "digits" and not directory:
        return load_digits()
    if name in ("fashion-mnist", "mnist", "cifar10"):
        if not directory and name == "fashion-mnist":
            directory = FASHION_MNIST_DIR
        if not directory:
            directory = os.environ.get(_ENV_DIRS[name], "")
        if not directory:
            raise FileNotFoundError(
                f"No directory given for {name!r}, and stlsim never downloads. Put "
                f"{_WHERE_TO_PUT[name]} in a directory, then pass '{name}:/that/dir' or set "
                f"{_ENV_DIRS[name]}=/that/dir.")
        if name == "cifar10":
            return load_cifar10(directory)
        return load_mnist_dir(directory, name=name)
    if spec.lower().endswith(".npz"):
        return load_npz(spec)
    raise fail("spec", "'digits', 'fashion-mnist[:DIR]', 'mnist[:DIR]', 'cifar10[:DIR]' or a "
               "path to an .npz file", repr(spec), "load_dataset")
