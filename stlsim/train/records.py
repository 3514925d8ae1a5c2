"""Run records: one HDF5 file per training run (h5py, imported lazily).

Layout (``SCHEMA_VERSION`` 1)::

    /                       attrs: schema_version, stlsim_version, provenance fields,
                                   mode, seed, config (JSON), network (JSON),
                                   conventions (JSON), epochs_done, interrupted
    /history/<field>        one row per finished epoch (see docs/results.md)
    /params/<name>          parameters at the end of the run (or at the interrupt);
                            ``buffer:<name>`` entries hold BatchNorm running estimates
    /theta_init/<name>      thresholds at initialisation
    /checkpoint/params/<name>, /checkpoint/optimizer/<key>
                            state at the last finished epoch; attrs: epoch,
                            rng states (JSON); ``train(..., resume=path)`` continues
                            from here bit-exactly

Files are written atomically (temp file, then rename), so an interrupted save never
leaves a half-written record.
"""
from __future__ import annotations

import json

import numpy as np

from .._io import atomic_path, provenance

__all__ = ["SCHEMA_VERSION", "save_record", "load_record"]

SCHEMA_VERSION = 1


def _write_group(group, mapping: dict):
    for key, value in mapping.items():
        group.create_dataset(key, data=np.asarray(value))


def save_record(path, *, config: dict, network: dict, conventions: dict, history: dict,
                params: dict, theta_init: dict, checkpoint: dict | None, interrupted: bool):
    """Write one run record atomically. ``checkpoint`` has params, optimizer, rng, epoch."""
    import h5py

    with atomic_path(path, suffix=".h5.tmp") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["schema_version"] = SCHEMA_VERSION
            for key, value in provenance().items():
                f.attrs[key] = value
            f.attrs["mode"] = config["mode"]
            f.attrs["seed"] = int(config["seed"])
            f.attrs["config"] = json.dumps(config, sort_keys=True)
            f.attrs["network"] = json.dumps(network, sort_keys=True)
            f.attrs["conventions"] = json.dumps(conventions, sort_keys=True)
            f.attrs["epochs_done"] = len(history.get("epoch", []))
            f.attrs["interrupted"] = bool(interrupted)
            hist = f.create_group("history")
            for key, values in history.items():
                hist.create_dataset(key, data=np.asarray(values, dtype=np.float64))
            _write_group(f.create_group("params"), params)
            _write_group(f.create_group("theta_init"), theta_init)
            if checkpoint is not None:
                ck = f.create_group("checkpoint")
                ck.attrs["epoch"] = int(checkpoint["epoch"])
                ck.attrs["rng"] = json.dumps(checkpoint["rng"])
                ck.attrs["history_length"] = int(checkpoint["history_length"])
                _write_group(ck.create_group("params"), checkpoint["params"])
                opt = ck.create_group("optimizer")
                for key, value in checkpoint["optimizer"].items():
                    opt.create_dataset(key, data=np.asarray(value))


def _read_group(group) -> dict:
    out = {}

    def visit(name, obj):
        if hasattr(obj, "shape"):
            out[name] = obj[()]
    group.visititems(visit)
    return out


def load_record(path) -> dict:
    """Read a run record into plain Python/numpy objects."""
    import h5py

    from .._checks import fail

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise fail(str(path), "a readable stlsim HDF5 run record", f"an unreadable file ({err})") from None
    with f:
        version = f.attrs.get("schema_version")
        if version is None or "config" not in f.attrs:
            raise fail(str(path), "a stlsim run record (with schema_version and config)",
                       "an HDF5 file without them")
        if int(version) > SCHEMA_VERSION:
            raise fail(str(path), f"schema_version <= {SCHEMA_VERSION}", f"schema_version {int(version)}")
        record = {
            "attrs": {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()},
            "config": json.loads(f.attrs["config"]),
            "network": json.loads(f.attrs["network"]),
            "conventions": json.loads(f.attrs["conventions"]),
            "history": {k: f["history"][k][()] for k in f["history"]},
            "params": _read_group(f["params"]),
            "theta_init": _read_group(f["theta_init"]),
            "checkpoint": None,
        }
        if "checkpoint" in f:
            ck = f["checkpoint"]
            record["checkpoint"] = {
                "epoch": int(ck.attrs["epoch"]),
                "rng": json.loads(ck.attrs["rng"]),
                "history_length": int(ck.attrs["history_length"]),
                "params": _read_group(ck["params"]),
                "optimizer": _read_group(ck["optimizer"]),
            }
    return record
