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
import re

from ..._checks import fail
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


# Required columns (a missing one would silently drop rows or pairs) and the range of each
# numeric column a report reads; a column matches the first pattern it starts with.
_REQUIRED = {"table.csv": ("task_id", "status", "mode", "seed", "final_test_accuracy"),
             "history.csv": ("task_id", "mode", "seed", "epoch")}
_STATUSES = ("ok", "error", "killed")
_MODES = ("stl", "sl", "tl", "ann")
# (column prefix, what, check, integer)
_RANGES = (
    ("seed", "an integer >= 0", lambda v: v >= 0, True),
    ("epochs_done", "an integer >= 0", lambda v: v >= 0, True),
    ("best_epoch", "an integer >= 1", lambda v: v >= 1, True),
    ("epoch", "an integer >= 1", lambda v: v >= 1, True),
    ("n_test", "an integer >= 1", lambda v: v >= 1, True),
    ("final_test_accuracy", "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0, False),
    ("best_test_accuracy", "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0, False),
    ("final_train_accuracy", "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0, False),
    ("train_accuracy", "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0, False),
    ("test_accuracy", "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0, False),
    ("firing_rate", "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0, False),
    ("final_test_loss", "a finite number >= 0", lambda v: 0.0 <= v < math.inf, False),
    ("train_loss", "a finite number >= 0", lambda v: 0.0 <= v < math.inf, False),
    ("test_loss", "a finite number >= 0", lambda v: 0.0 <= v < math.inf, False),
    ("theta_", "a finite number", lambda v: math.isfinite(v), False),
    ("sops_per_sample", "a number >= 0", lambda v: 0.0 <= v < math.inf, False),
    ("macs_per_sample", "a number >= 0", lambda v: 0.0 <= v < math.inf, False),
    ("wall_time_s", "a number >= 0", lambda v: 0.0 <= v < math.inf, False),
    ("train_wall_time_s", "a number >= 0", lambda v: 0.0 <= v < math.inf, False),
)
_TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


_PER_LAYER = ("firing_rate", "theta_")     # prefixes of the per-layer columns (firing_rate_l0, theta_mean_l1, ...)


def _range_of(column):
    """(what, check, integer) of ``column``: its own entry of ``_RANGES``, or its per-layer prefix's."""
    for prefix, what, check, integer in _RANGES:
        if column == prefix or (prefix in _PER_LAYER and column.startswith(prefix)):
            return what, check, integer
    return None


def _check_row(path, number, row, file_kind):
    """Raise naming file, row and column if ``row`` (parsed) holds a value out of its range."""
    def bad(column, expected, got):
        return fail(f"column {column!r} of row {number} of {path!r}", expected, got, owner=None)
    if not _TASK_ID.match(row.get("task_id") or ""):
        raise bad("task_id", "a task id (letters, digits, '-' or '_')", repr(row.get("task_id")))
    if row.get("mode") not in _MODES:
        raise bad("mode", f"one of {', '.join(_MODES)}", repr(row.get("mode")))
    if file_kind == "table.csv" and row.get("status") not in _STATUSES:
        raise bad("status", f"one of {', '.join(_STATUSES)}", repr(row.get("status")))
    finished = file_kind == "history.csv" or row.get("status") == "ok"
    for column, value in row.items():
        rule = _range_of(column)
        if rule is None:
            continue
        what, check, integer = rule
        if value is None:
            if finished and column in _REQUIRED[file_kind]:
                raise bad(column, what, "an empty field")
            continue
        number_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if integer:
            number_ok = isinstance(value, int) and not isinstance(value, bool)
        if not number_ok or (isinstance(value, float) and math.isnan(value)) or not check(value):
            raise bad(column, what, repr(value))


def read_table(path, *, allow_empty: bool = False) -> list:
    """``table.csv`` (or ``history.csv``) as a list of dicts; numbers parsed (but never in
    ``_TEXT_COLUMNS``, such as ``task_id``), empty fields None.

    The table is validated as it is read: the required columns are there, every row has as
    many fields as the header, and each number a report reads lies in its range (accuracies
    and rates in [0, 1], seeds and sizes integers, ...); an error names the file, the row
    (1 = the first after the header) and the column.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "table.csv")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"sweep table {path!r} does not exist (run `stlsim sweep` first)")
    file_kind = "history.csv" if os.path.basename(path).startswith("history") else "table.csv"
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise fail(repr(path), "a readable sweep table (CSV)", f"an unreadable file ({err})") from None
    if not header:
        raise fail(repr(path), "a sweep table with a header line", "an empty file")
    missing = [c for c in _REQUIRED[file_kind] if c not in header]
    if missing:
        raise fail(f"the columns of {path!r}", f"a header with {', '.join(_REQUIRED[file_kind])}",
                   f"no column {missing[0]!r}")
    if len(set(header)) != len(header):
        twice = next(c for c in header if header.count(c) > 1)
        raise fail(f"the columns of {path!r}", "distinct column names", f"{twice!r} twice")
    rows = []
    for number, fields in enumerate(raw, 1):
        if not fields:
            continue
        if len(fields) != len(header):
            raise fail(f"row {number} of {path!r}", f"{len(header)} fields (as its header)",
                       f"{len(fields)} fields")
        row = {k: (v if k in _TEXT_COLUMNS else _parse(v)) for k, v in zip(header, fields)}
        for k in ("task_id", "mode", "status"):
            if row.get(k) == "":
                row[k] = None
        _check_row(path, number, row, file_kind)
        rows.append(row)
    if not rows and not allow_empty:       # a history of runs that kept no epochs may be empty
        raise fail(repr(path), "a sweep table with at least one row", "only a header (no task finished?)")
    return rows
