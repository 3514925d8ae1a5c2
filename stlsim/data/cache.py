"""HDF5 cache of a preprocessed data set (e.g. event frames), read lazily in batches.

Schema (``schema = "stlsim.cache"``, ``schema_version = 1``), one HDF5 file:

* ``/x``: ``(N, T, ...)`` float32 or uint8, chunked one sample per chunk, gzip level 1;
* ``/y``: ``(N,)`` int64 labels;
* root attributes: ``schema``, ``schema_version``, provenance (:func:`stlsim._io.provenance`)
  and ``meta_json``, the caller's ``meta`` dict as JSON (T, sensor size, transform, seed ...).

:func:`write_cache` writes to a temporary file and renames it over ``path`` only when
everything is written, so an exception mid-way (from the sample iterable, say) leaves an
older cache at ``path`` valid. :func:`open_cache` reads labels and meta eagerly and the
samples lazily. ``h5py`` is imported inside the functions.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .._checks import check_int, fail
from .._io import atomic_path, provenance

__all__ = ["CACHE_SCHEMA", "CACHE_SCHEMA_VERSION", "write_cache", "open_cache", "Cache"]

CACHE_SCHEMA = "stlsim.cache"
CACHE_SCHEMA_VERSION = 1


def _storage_dtype(sample: np.ndarray) -> np.dtype:
    # Counts and binary spikes fit in uint8 exactly; anything else is stored as float32.
    return np.dtype(np.uint8) if sample.dtype.kind in "bu" and sample.dtype.itemsize == 1 \
        else np.dtype(np.float32)


def write_cache(path, data, labels, meta: dict | None = None, *, compression_level: int = 1) -> None:
    """Write samples and labels to an HDF5 cache at ``path``, atomically.

    ``data`` is an array ``(N, T, ...)`` or an iterable of ``N`` per-sample arrays
    ``(T, ...)`` (consumed once, one sample in memory at a time). ``labels`` has shape
    ``(N,)``. Samples of dtype uint8 or bool are stored as uint8, all others as float32.
    ``meta`` must be JSON-serialisable.
    """
    import h5py

    owner = "write_cache"
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise fail("labels", "a 1-D integer array", f"dtype {labels.dtype} and shape {labels.shape}",
                   owner)
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise fail("meta", "a dict", type(meta).__name__, owner, TypeError)
    try:
        meta_json = json.dumps(meta, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise fail("meta", "JSON-serialisable", f"{err}", owner, TypeError) from None
    level = check_int(compression_level, "compression_level", low=0, high=9, owner=owner)
    n = labels.size
    samples = iter(data)
    if isinstance(data, np.ndarray) and (data.ndim < 2 or data.shape[0] != n):
        raise fail("data", f"an array of shape ({n}, T, ...)", f"shape {data.shape}", owner)

    with atomic_path(path, suffix=".h5.tmp") as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.attrs["schema"] = CACHE_SCHEMA
            handle.attrs["schema_version"] = CACHE_SCHEMA_VERSION
            for key, value in provenance().items():
                handle.attrs[key] = value
            handle.attrs["meta_json"] = meta_json
            handle.create_dataset("y", data=labels.astype(np.int64))
            x = None
            count = 0
            for sample in samples:
                if count == n:
                    count += 1  # one too many is enough to report
                    break
                sample = np.asarray(sample)
                if x is None:
                    if sample.ndim < 1 or sample.dtype.kind not in "biuf":
                        raise fail("data", "numeric samples of shape (T, ...)",
                                   f"dtype {sample.dtype} and shape {sample.shape}", owner)
                    x = handle.create_dataset(
                        "x", shape=(n,) + sample.shape, dtype=_storage_dtype(sample),
                        chunks=(1,) + sample.shape, compression="gzip" if level else None,
                        compression_opts=level if level else None, shuffle=bool(level))
                if sample.shape != x.shape[1:]:
                    raise fail(f"data[{count}]", f"a sample of shape {x.shape[1:]}",
                               f"shape {sample.shape}", owner)
                x[count] = sample.astype(x.dtype, copy=False)
                count += 1
            if count != n:
                got = f"more than {n} samples" if count > n else f"{count} samples"
                raise fail("data", f"{n} samples (one per label)", got, owner)
            if x is None:  # N = 0: an empty cache still records a dataset
                handle.create_dataset("x", shape=(0,), dtype=np.float32)


def _probe(handle, path):
    """Touch every object, attribute and the first and last sample (in ``read_hdf5``'s child)."""
    names = []
    handle.visit(names.append)
    dict(handle.attrs)
    for name in names:
        obj = handle[name]
        dict(obj.attrs)
        if hasattr(obj, "shape") and obj.shape and obj.shape[0]:
            obj[0], obj[obj.shape[0] - 1]
        elif hasattr(obj, "shape"):
            obj[()]
    return len(names)


class Cache:
    """An open cache file; use :func:`open_cache`. Closes on ``close()`` or ``with`` exit."""

    def __init__(self, path):
        import h5py

        from .._io import read_hdf5

        self.path = os.fspath(path)
        # A bounded read of the structure first: h5py can hang on damaged metadata.
        try:
            read_hdf5(self.path, "stlsim.data.cache:_probe")
        except ValueError as err:
            raise ValueError(f"File {self.path!r} is not a stlsim cache: {str(err).split(': ', 1)[-1]}") from None
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise ValueError(f"File {self.path!r} is not a stlsim cache: not a readable HDF5 "
                             f"file ({err}).") from None
        try:
            self._validate()
        except BaseException:
            self._file.close()
            raise
        self.x = self._file["x"]
        self.labels = np.asarray(self._file["y"][()], dtype=np.int64)
        self.meta = json.loads(self._file.attrs["meta_json"])
        self.attrs = {k: (v.item() if isinstance(v, np.generic) else v)
                      for k, v in self._file.attrs.items()}

    def _validate(self):
        import h5py

        attrs = self._file.attrs
        schema = attrs.get("schema")
        if isinstance(schema, np.generic):
            schema = schema.item()
        if isinstance(schema, bytes):
            schema = schema.decode(errors="replace")
        if schema != CACHE_SCHEMA:
            raise ValueError(f"File {self.path!r} is not a stlsim cache: its 'schema' attribute "
                             f"is {schema!r}, expected {CACHE_SCHEMA!r}.")
        version = attrs.get("schema_version")
        if isinstance(version, np.generic):
            version = version.item()
        if not isinstance(version, int) or version != CACHE_SCHEMA_VERSION:
            raise ValueError(f"File {self.path!r} has stlsim cache schema version {version!r}; this "
                             f"stlsim reads version {CACHE_SCHEMA_VERSION}. Rebuild the cache.")
        for name in ("x", "y"):
            if not isinstance(self._file.get(name), h5py.Dataset):
                raise ValueError(f"File {self.path!r} is a damaged stlsim cache: dataset "
                                 f"'/{name}' is missing.")
        x, y = self._file["x"], self._file["y"]
        if y.ndim != 1 or (x.shape[0] != y.shape[0]):
            raise ValueError(f"File {self.path!r} is a damaged stlsim cache: '/x' has shape "
                             f"{x.shape} but '/y' has shape {y.shape}.")
        if "meta_json" not in attrs:
            raise ValueError(f"File {self.path!r} is a damaged stlsim cache: attribute "
                             f"'meta_json' is missing.")

    def __len__(self) -> int:
        return int(self.labels.size)

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    def __getitem__(self, index):
        """Read samples ``x[index]`` (int or slice) as float32, with their labels."""
        return np.asarray(self.x[index], dtype=np.float32), self.labels[index]

    def batches(self, batch_size, rng=None, drop_last=False, time_major=False):
        """Yield ``(x, y)`` batches read lazily from disk, x as float32.

        ``rng`` (a ``np.random.Generator``) shuffles the sample order; ``None`` keeps file
        order. ``x`` is ``(B, T, ...)``, or ``(T, B, ...)`` with ``time_major=True`` (the
        engines' layout).
        """
        batch_size = check_int(batch_size, "batch_size", low=1, owner="Cache.batches")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise fail("rng", "a numpy.random.Generator or None", type(rng).__name__,
                       "Cache.batches", TypeError)
        n = len(self)
        order = rng.permutation(n) if rng is not None else np.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            index = order[start:start + batch_size]
            # h5py reads fancy indices in increasing order; read sorted, then restore order.
            sorted_index, inverse = np.unique(index, return_inverse=True)
            x = np.asarray(self.x[sorted_index], dtype=np.float32)[inverse.reshape(-1)]
            if time_major and x.ndim >= 2:
                x = np.swapaxes(x, 0, 1)
            yield x, self.labels[index]

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def open_cache(path) -> Cache:
    """Open a cache written by :func:`write_cache`.

    Raises ``ValueError`` naming the file if it is not HDF5, not a stlsim cache, of
    another schema version, or damaged.
    """
    return Cache(path)
