"""Run records: one HDF5 file per training run (h5py, imported lazily).

Layout (``SCHEMA_VERSION`` 2)::

    /                       attrs: schema_version, stlsim_version, provenance fields,
                                   mode, seed, config (JSON), network (JSON),
                                   conventions (JSON), epochs_done, interrupted,
                                   overrides (JSON: fields a resume was allowed to change),
                                   data (JSON: data set name, sizes, fingerprint of inputs
                                   and labels), engine,
                                   digest ("sha256:..." over every array and the attrs
                                   that define the run)
    /history/<field>        one row per finished epoch (see docs/results.md)
    /params/<name>          parameters at the end of the run (or at the interrupt);
                            ``buffer:<name>`` entries hold BatchNorm running estimates
    /theta_init/<name>      thresholds at initialisation
    /checkpoint/params/<name>, /checkpoint/optimizer/<key>
                            state at the last finished epoch; attrs: epoch,
                            rng states (JSON); ``train(..., resume=path)`` continues
                            from here bit-exactly

Files are written atomically (temp file, then rename), so an interrupted save never
leaves a half-written record. Arrays carry HDF5 ``fletcher32`` checksums and the root a
digest of everything, so a damaged record is refused, never loaded with changed values;
records are read through ``stlsim._io.read_hdf5`` (a bounded read in a child process).
Version-1 records (no digest) still load; a digest, where the file has one, is always checked
(the file's own ``schema_version`` cannot switch the check off).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from .._io import atomic_path, damaged_file_error, provenance, read_hdf5

__all__ = ["SCHEMA_VERSION", "save_record", "load_record"]

SCHEMA_VERSION = 2

# Attributes that define a run; the digest covers them with the arrays.
_RUN_ATTRS = ("mode", "seed", "config", "network", "conventions", "epochs_done", "interrupted",
              "overrides")
_CHECKPOINT_ATTRS = ("epoch", "rng", "history_length")
# Attributes of later records (the data identity and the engine): covered by the digest where present,
# so deleting one from a record that has it breaks the digest like any other edit.
_LATER_ATTRS = ("data", "engine")


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _digest(root_attrs: dict, checkpoint_attrs: dict | None, arrays: dict) -> str:
    """sha256 over the run-defining attributes and every array (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    attrs = {k: _plain(root_attrs.get(k)) for k in _RUN_ATTRS}
    attrs.update({k: _plain(root_attrs[k]) for k in _LATER_ATTRS if k in root_attrs})
    if checkpoint_attrs is not None:
        attrs.update({f"checkpoint.{k}": _plain(checkpoint_attrs.get(k)) for k in _CHECKPOINT_ATTRS})
    h.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(f"\n{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return "sha256:" + h.hexdigest()


def _dataset(group, key, value, arrays: dict, prefix: str, dtype=None):
    arr = np.asarray(value, dtype=dtype)
    checksum = arr.ndim > 0 and arr.size > 0
    group.create_dataset(key, data=arr, fletcher32=checksum)
    arrays[f"{prefix}/{key}"] = arr


def save_record(path, *, config: dict, network: dict, conventions: dict, history: dict,
                params: dict, theta_init: dict, checkpoint: dict | None, interrupted: bool,
                overrides: list | None = None, data: dict | None = None, engine: str | None = None):
    """Write one run record atomically. ``checkpoint`` has params, optimizer, rng, epoch.

    ``data``: the identity of the data set the run trains on (``stlsim.train.loop.data_identity``:
    name, sizes, a fingerprint of inputs and labels); ``engine``: the engine it ran on.

    ``overrides``: the fields a resume was allowed to change (one dict per change:
    field, recorded, requested, at_epoch), kept across resumes.
    """
    import h5py

    root = {"mode": str(config["mode"]), "seed": int(config["seed"]),
            "config": json.dumps(config, sort_keys=True),
            "network": json.dumps(network, sort_keys=True),
            "conventions": json.dumps(conventions, sort_keys=True),
            "epochs_done": len(history.get("epoch", [])), "interrupted": bool(interrupted),
            "overrides": json.dumps(list(overrides or []), sort_keys=True)}
    if data is not None:
        root["data"] = json.dumps(data, sort_keys=True)
    if engine is not None:
        root["engine"] = str(engine)
    arrays: dict = {}
    with atomic_path(path, suffix=".h5.tmp") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["schema_version"] = SCHEMA_VERSION
            for key, value in provenance().items():
                f.attrs[key] = value
            for key, value in root.items():
                f.attrs[key] = value
            hist = f.create_group("history")
            for key, values in history.items():
                _dataset(hist, key, values, arrays, "history", dtype=np.float64)
            params_group = f.create_group("params")
            for key, value in params.items():
                _dataset(params_group, key, value, arrays, "params")
            theta_group = f.create_group("theta_init")
            for key, value in theta_init.items():
                _dataset(theta_group, key, value, arrays, "theta_init")
            ck_attrs = None
            if checkpoint is not None:
                ck = f.create_group("checkpoint")
                ck_attrs = {"epoch": int(checkpoint["epoch"]), "rng": json.dumps(checkpoint["rng"]),
                            "history_length": int(checkpoint["history_length"])}
                for key, value in ck_attrs.items():
                    ck.attrs[key] = value
                ck_params = ck.create_group("params")
                for key, value in checkpoint["params"].items():
                    _dataset(ck_params, key, value, arrays, "checkpoint/params")
                opt = ck.create_group("optimizer")
                for key, value in checkpoint["optimizer"].items():
                    _dataset(opt, key, value, arrays, "checkpoint/optimizer")
            f.attrs["digest"] = _digest(root, ck_attrs, arrays)


def _read_group(group, prefix: str, arrays: dict) -> dict:
    out = {}

    def visit(name, obj):
        if hasattr(obj, "shape"):
            out[name] = obj[()]
            arrays[f"{prefix}/{name}"] = out[name]
    group.visititems(visit)
    return out


def _schema_version(value, path) -> int:
    """The record's schema version: an integer in [1, SCHEMA_VERSION], else the file is refused."""
    from .._checks import fail

    value = _plain(value)
    if isinstance(value, (bool, float, str, bytes)) or not isinstance(value, (int, np.integer)) \
            or not 1 <= int(value) <= SCHEMA_VERSION:
        raise fail(f"schema_version of {str(path)!r}", f"an integer in [1, {SCHEMA_VERSION}]", repr(value))
    return int(value)


def _read_open(f, path) -> dict:
    """Read an open record (``f``: an h5py File); runs inside ``read_hdf5``'s child."""
    from .._checks import fail

    version = f.attrs.get("schema_version")
    if version is None or "config" not in f.attrs:
        raise fail(str(path), "a stlsim run record (with schema_version and config)",
                   "an HDF5 file without them")
    version = _schema_version(version, path)
    for group in ("history", "params", "theta_init"):
        if group not in f:
            raise damaged_file_error(path, f"its group '/{group}' is missing")
    arrays: dict = {}
    attrs = {k: _plain(v) for k, v in f.attrs.items()}
    record = {
        "attrs": attrs,
        "config": json.loads(f.attrs["config"]),
        "network": json.loads(f.attrs["network"]),
        "conventions": json.loads(f.attrs["conventions"]),
        "overrides": json.loads(attrs.get("overrides", "[]")),
        "data": json.loads(attrs["data"]) if "data" in attrs else None,
        "engine": attrs.get("engine"),
        "history": _read_group(f["history"], "history", arrays),
        "params": _read_group(f["params"], "params", arrays),
        "theta_init": _read_group(f["theta_init"], "theta_init", arrays),
        "checkpoint": None,
    }
    ck_attrs = None
    if "checkpoint" in f:
        ck = f["checkpoint"]
        ck_attrs = {k: _plain(ck.attrs[k]) for k in _CHECKPOINT_ATTRS}
        record["checkpoint"] = {
            "epoch": int(ck_attrs["epoch"]),
            "rng": json.loads(ck_attrs["rng"]),
            "history_length": int(ck_attrs["history_length"]),
            "params": _read_group(ck["params"], "checkpoint/params", arrays),
            "optimizer": _read_group(ck["optimizer"], "checkpoint/optimizer", arrays),
        }
    # The file cannot switch its own check off: a digest present is always checked, and only a
    # version-1 record (written before digests) may lack one, with nothing of version 2 in it.
    if version == 1 and "digest" not in attrs and "overrides" not in attrs:
        return record
    stored = attrs.get("digest")
    if not isinstance(stored, str):
        raise damaged_file_error(path, "its digest attribute is missing")
    if _digest(attrs, ck_attrs, arrays) != stored:
        raise damaged_file_error(path, "its contents do not match the digest stored with them "
                                       "(the file is damaged)")
    return record


def load_record(path, *, in_process: bool | None = None) -> dict:
    """Read a run record into plain Python/numpy objects.

    Raises ``ValueError`` naming the file if it is not a record, is damaged (checksum or
    digest mismatch, missing parts, a read that does not finish) or of a newer schema;
    ``FileNotFoundError`` if it does not exist.
    """
    return read_hdf5(path, "stlsim.train.records:_read_open", in_process=in_process)
