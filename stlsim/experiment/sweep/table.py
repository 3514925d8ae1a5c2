"""The sweep's tidy tables: one row per task (``table.csv``), one per task and epoch (``history.csv``).

``table.csv`` columns, in order: ``task_id``, ``status`` ("ok", "error", "killed"), the grid
axes (named after the options of ``stlsim train``, e.g. ``theta_init``, ``init_gain``, or
``gain_ratio``), ``seed``, ``mode``, then

* ``final_test_accuracy``, ``best_test_accuracy``, ``best_epoch``, ``final_test_loss``,
  ``final_train_accuracy``, ``epochs_done``, ``n_test`` (test samples: accuracies move in
  steps of 1 / n_test);
* ``firing_rate_init_l<k>`` (untrained network on the test set), ``firing_rate_l<k>``
  (after the last epoch), ``theta_mean_l<k>`` and ``theta_shift_l<k>`` (mean |theta - theta_init|)
  for spiking layer k (0 = first hidden layer);
* ``sops_per_sample``: synaptic operations per test sample of the trained network
  (``stlsim.analysis.energy``), counted on the first 200 test samples; ``macs_per_sample``:
  multiply-accumulates per sample of the ANN baseline (mode "ann");
* ``wall_time_s`` (the whole task), ``train_wall_time_s`` (the training loop);
* every other resolved option of the run (``dataset``, ``epochs``, ``hidden`` as
  ``256+128``, ...), then ``error``, ``record`` (the HDF5 record, relative to the sweep
  folder) and ``worker``.

Floats are written with ``repr`` (round-trip exact); a missing value is an empty field.
Provenance and the grid live in ``sweep.json`` beside the tables. With pyarrow installed,
``table.parquet`` is written too.
"""
from __future__ import annotations

import csv
import glob
import io
import json
import math
import os

from ..._io import atomic_path

__all__ = ["write_json", "read_row", "read_rows", "write_tables", "read_table", "METRIC_COLUMNS"]

METRIC_COLUMNS = ("final_test_accuracy", "best_test_accuracy", "best_epoch", "final_test_loss",
                  "final_train_accuracy", "epochs_done", "n_test")
_LAYER_PREFIXES = ("firing_rate_init_l", "firing_rate_l", "theta_mean_l", "theta_shift_l")
_TAIL = ("sops_per_sample", "macs_per_sample", "wall_time_s", "train_wall_time_s")
_LAST = ("error", "record", "worker")


def write_json(path, doc):
    """Write ``doc`` as JSON atomically with the user's umask."""
    with atomic_path(path, suffix=".json.tmp") as tmp:
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True, allow_nan=True)


def read_row(out_dir, tid):
    """One task's JSON document, or None if it has none (or an unreadable one: it runs again)."""
    try:
        with open(os.path.join(out_dir, "tasks", f"{tid}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_rows(out_dir) -> dict:
    """Task id -> its JSON document (row, options, cell, history) from ``OUT/tasks``."""
    docs = {}
    for path in glob.glob(os.path.join(out_dir, "tasks", "*.json")):
        tid = os.path.basename(path)[:-5]
        doc = read_row(out_dir, tid)
        if doc is not None:
            docs[tid] = doc
    return docs


def _fmt(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return "+".join(str(v) for v in value)
    return str(value)


def _layer_columns(rows, prefix):
    n = 0
    for row in rows:
        while f"{prefix}{n}" in row:
            n += 1
    return [f"{prefix}{k}" for k in range(n)]


def _csv_text(header, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_fmt(row.get(col)) for col in header])
    return buf.getvalue()


def write_tables(out_dir, ids, docs=None) -> str:
    """Rewrite ``table.csv`` and ``history.csv`` (atomically) from the rows of tasks ``ids``.

    ``docs``: the task documents already read (id -> document); default: read ``OUT/tasks``.
    """
    docs = read_rows(out_dir) if docs is None else docs
    axes = []
    rows, long_rows = [], []
    for tid in ids:
        doc = docs.get(tid)
        if doc is None:
            continue
        for name, _ in doc.get("cell", []):
            if name not in axes:
                axes.append(name)
    for tid in ids:
        doc = docs.get(tid)
        if doc is None:
            continue
        row = dict(doc["row"])
        row.update({k: v for k, v in doc.get("options", {}).items() if k not in row})
        row.update({k: v for k, v in doc.get("cell", [])})
        rows.append(row)
        hist = doc.get("history", {})
        for e, epoch in enumerate(hist.get("epoch", [])):
            long = {"task_id": tid, "mode": row["mode"], "seed": row["seed"], "epoch": int(epoch)}
            long.update({k: v for k, v in doc.get("cell", [])})
            for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
                long[key] = hist[key][e]
            for key in ("firing_rate", "theta_mean"):
                per_epoch = hist.get(key) or []
                for layer, value in enumerate(per_epoch[e] if e < len(per_epoch) else []):
                    long[f"{key}_l{layer}"] = value
            long_rows.append(long)
    layer_cols = [c for p in _LAYER_PREFIXES for c in _layer_columns(rows, p)]
    known = {"task_id", "status", "seed", "mode", *axes, *METRIC_COLUMNS, *layer_cols, *_TAIL, *_LAST,
             "traceback"}
    options = sorted({k for row in rows for k in row if k not in known})
    header = ["task_id", "status", *axes, "seed", "mode", *METRIC_COLUMNS, *layer_cols, *_TAIL, *options,
              *_LAST]
    path = os.path.join(out_dir, "table.csv")
    with atomic_path(path, suffix=".csv.tmp") as tmp:
        with open(tmp, "w", newline="") as f:
            f.write(_csv_text(header, rows))
    hist_header = ["task_id", *axes, "seed", "mode", "epoch", "train_loss", "train_accuracy", "test_loss",
                   "test_accuracy", *_layer_columns(long_rows, "firing_rate_l"),
                   *_layer_columns(long_rows, "theta_mean_l")]
    with atomic_path(os.path.join(out_dir, "history.csv"), suffix=".csv.tmp") as tmp:
        with open(tmp, "w", newline="") as f:
            f.write(_csv_text(hist_header, long_rows))
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
    except ImportError:
        pass
    else:   # pragma: no cover - pyarrow is optional
        table = pacsv.read_csv(path)
        with atomic_path(os.path.join(out_dir, "table.parquet"), suffix=".parquet.tmp") as tmp:
            pq.write_table(table, tmp)
        del pa
    return path


def _parse(text):
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# Columns that hold text even when it reads as a number: a hex task id such as "751068e520533285"
# would parse as the float inf, "0123456789012345" as an int without its leading 0.
_TEXT_COLUMNS = frozenset({"task_id", "record", "worker", "status", "error", "mode"})


def read_table(path) -> list:
    """``table.csv`` (or ``history.csv``) as a list of dicts; numbers parsed (but never in
    ``_TEXT_COLUMNS``, such as ``task_id``), empty fields None."""
    if os.path.isdir(path):
        path = os.path.join(path, "table.csv")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"sweep table {path!r} does not exist (run `stlsim sweep` first)")
    with open(path, newline="") as f:
        return [{k: (v if k in _TEXT_COLUMNS else _parse(v)) for k, v in row.items()} for row in csv.DictReader(f)]
