"""Per-arm tuning: every mode gets its best value of the tuned options, chosen on a
validation split, never on the test set.

``stlsim sweep --grid "T=2,4" --tune "lr=1e-3,3e-3,1e-2" --val-fraction 0.2`` trains, for
every grid cell, mode and seed, one run per tuning value (the tuning values are options of
the task, as a grid axis would be, but not part of its cell). When the runs are done,
``write_tuned`` picks per (cell, mode, seed) the run with the highest final validation
accuracy (ties: the lower final validation loss, then the value listed first) and writes
its row, test accuracy included, to ``OUT/tuned.csv`` (``table.csv``'s columns plus
``tuned_<option>``, ``tuned_edge`` and ``tune_runs``). ``stlsim sweep-report`` reads
``tuned.csv`` for a tuned sweep, so each arm is compared at its own best setting, and it
shows which value won per arm and warns when a winner lies on the edge of its tuning grid
(the best value may lie beyond it).

The validation split (``val_fraction``, ``stlsim.train.config.validation_split``) is the same
for every mode and seed; the test split is only ever reported. Without ``val_fraction`` > 0
there is nothing to choose by, and ``expand_tuned`` refuses.

``theta_lr`` is not tuned for the modes that train no threshold (``sl``, ``ann``): they run
its first value only.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

from ..._checks import fail
from ..._io import atomic_path
from .grid import GridSpec, expand, parse_grid_text
from .table import METRIC_COLUMNS, _csv_text, read_table

__all__ = ["TUNED_TABLE", "parse_tune_text", "expand_tuned", "select", "write_tuned", "tuned_names",
           "tuning_markdown"]

TUNED_TABLE = "tuned.csv"
_OWNER = "stlsim sweep"
_NOT_TUNABLE = ("val_fraction", "dataset", "train_subset", "test_subset", "gain_ratio")
_THRESHOLDLESS = ("sl", "ann")       # modes that train no threshold: theta_lr does not matter
_VAL_COLUMNS = ("final_val_accuracy", "best_val_accuracy", "final_val_loss", "val_fraction")


def parse_tune_text(text: str, owner: str = _OWNER) -> dict:
    """``"lr=1e-3,3e-3 theta_lr=1e-2,3e-2"`` -> {name: [typed values]} (spelled like ``--grid``)."""
    spec = parse_grid_text(text, owner)
    for name in spec.axes:
        if name in _NOT_TUNABLE:
            raise fail(f"--tune option {name!r}", "a training option to choose per arm (lr, theta_lr, "
                       "weight_decay, ...)", repr(name), owner)
    return dict(spec.axes)


def expand_tuned(spec: GridSpec, tune: dict, base: dict, seeds, modes, owner: str = _OWNER) -> list:
    """The tasks of grid ``spec`` with every value of ``tune`` each: cells x tuning values x seeds x
    modes; a task's ``cell`` holds the grid's axes only (its options hold the tuning values)."""
    clash = sorted(set(tune) & (set(spec.axes) | set(spec.fixed)))
    if clash:
        raise fail(f"option {clash[0]!r}", "either tuned (--tune) or in the grid / fixed", "both", owner)
    val = spec.fixed.get("val_fraction", base.get("val_fraction", 0.0))
    if not val:
        raise fail("val_fraction", "a share of the training data > 0 to choose the tuned values by "
                   "(e.g. --val-fraction 0.2; the test set is never used for a choice)", repr(val), owner)
    grid = GridSpec(axes={**spec.axes, **tune}, fixed=spec.fixed, seeds=spec.seeds, modes=spec.modes)
    tasks = []
    for task in expand(grid, base, seeds, modes):
        cell = dict(task.cell)
        if task.mode in _THRESHOLDLESS and "theta_lr" in tune and cell["theta_lr"] != tune["theta_lr"][0]:
            continue
        tasks.append(dataclasses.replace(task, cell=tuple((k, v) for k, v in task.cell if k not in tune)))
    return tasks


def _meta(sweep_dir) -> dict:
    path = os.path.join(sweep_dir, "sweep.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def tuned_names(sweep_dir) -> list:
    """The tuned options of a sweep folder (from ``sweep.json``; [] for an untuned sweep)."""
    return [name for name, _ in _meta(sweep_dir).get("tune", [])]


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return str(a) == str(b)


def _index(value, values) -> int:
    for i, v in enumerate(values):
        if _same(value, v):
            return i
    return len(values)


def _on_edge(value, values) -> bool:
    """A winner at the smallest or largest of at least two numeric tuning values."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) < 2 or len(numbers) != len(values):
        return False
    return _same(value, min(numbers)) or _same(value, max(numbers))


def select(rows, axes, tune: dict, modes_without=_THRESHOLDLESS) -> list:
    """Per (cell, mode, seed) of ``rows`` (``table.csv``'s): the chosen run's row, with
    ``tuned_<name>``, ``tuned_edge`` (the names whose winner lies on the grid's edge) and
    ``tune_runs``. A group with a run not ok, or without validation accuracy, gives a row with
    status "error" that says why (nothing is chosen from part of a grid)."""
    groups = {}
    for r in rows:
        key = (tuple(r.get(a) for a in axes), r["mode"], r["seed"])
        groups.setdefault(key, []).append(r)
    out = []
    for (cell, mode, seed), group in groups.items():
        names = [n for n in tune if not (n == "theta_lr" and mode in modes_without)]
        expected = math.prod(len(tune[n]) for n in names)
        ok = [r for r in group if r.get("status") == "ok" and r.get("final_val_accuracy") is not None]
        base = {"status": "error", **dict(zip(axes, cell)), "mode": mode, "seed": seed, "tune_runs": len(group)}
        if len(ok) < expected:
            missing = "validation accuracy (val_fraction > 0)" if any(
                r.get("status") == "ok" for r in group) and not ok else "every run ok"
            out.append({**base, "task_id": "", "error": f"tuning incomplete: {len(ok)} of {expected} runs with "
                        f"{missing}"})
            continue

        def rank(r, names=names):
            loss = r.get("final_val_loss")
            return (-float(r["final_val_accuracy"]), float(loss) if loss is not None else math.inf,
                    tuple(_index(r.get(n), tune[n]) for n in names))

        best = min(ok, key=rank)
        row = dict(best)
        row["tune_runs"] = len(ok)
        for n in tune:
            row[f"tuned_{n}"] = best.get(n) if n in names else None
        row["tuned_edge"] = "+".join(n for n in names if _on_edge(best.get(n), tune[n]))
        out.append(row)
    return out


def write_tuned(sweep_dir) -> str:
    """Write ``OUT/tuned.csv`` from ``OUT/table.csv`` and the tuning grid in ``OUT/sweep.json``."""
    meta = _meta(sweep_dir)
    if not meta.get("tune"):
        raise fail("sweep", "a tuned sweep (stlsim sweep --tune ...)", f"{sweep_dir} without tuning values",
                   "stlsim sweep-report")
    tune = {name: values for name, values in meta["tune"]}
    axes = [a[0] if isinstance(a, list) else a for a in meta.get("axes", [])]
    rows = select(read_table(sweep_dir), axes, tune)
    tuned = [f"tuned_{n}" for n in tune] + ["tuned_edge", "tune_runs"]
    first = ["task_id", "status", *axes, "seed", "mode", *tuned, *METRIC_COLUMNS, *_VAL_COLUMNS]
    rest = sorted({k for r in rows for k in r} - set(first) - {"error", "record", "worker", "traceback"})
    header = first + rest + ["error", "record", "worker"]
    path = os.path.join(sweep_dir, TUNED_TABLE)
    with atomic_path(path, suffix=".csv.tmp") as tmp:
        with open(tmp, "w", newline="") as f:
            f.write(_csv_text(header, rows))
    return path


def tuning_markdown(sweep_dir, rows, axes, tune) -> str:
    """The report's section: the winning value per arm (cell and mode, over seeds) and the edge warnings."""
    from ...plot.sweep import show_value

    meta = _meta(sweep_dir)
    grid = {name: values for name, values in meta.get("tune", [])}
    lines = ["", "## Tuning (per arm, chosen on the validation split)", "",
             "Every arm (cell x mode x seed) trained each value of "
             + ", ".join(f"{n} in {{{', '.join(show_value(v) for v in grid.get(n, []))}}}" for n in tune)
             + f" (validation share {rows[0].get('val_fraction') if rows else '-'} of the training data, the same "
             "samples for every arm); the run with the best final validation accuracy was kept, and its test "
             "accuracy is the one compared above. The test set was used for no choice.", "",
             "| " + " | ".join(axes) + " | mode | " + " | ".join(f"{n} chosen (per seed)" for n in tune)
             + " | on the edge |", "|" + "---|" * (len(axes) + len(tune) + 2)]
    by = {}
    for r in rows:
        if r.get("status") == "ok":
            by.setdefault((tuple(r.get(a) for a in axes), r["mode"]), []).append(r)
    edges = []
    for (cell, mode), group in by.items():
        group.sort(key=lambda r: r["seed"])
        chosen = [", ".join("-" if r.get(f"tuned_{n}") is None else show_value(r.get(f"tuned_{n}")) for r in group)
                  for n in tune]
        edge = sum(bool(r.get("tuned_edge")) for r in group)
        lines.append("| " + " | ".join(show_value(v) for v in cell) + f" | {mode.upper()} | " + " | ".join(chosen)
                     + f" | {edge}/{len(group)} |")
        if edge:
            where = " ".join(f"{a}={show_value(v)}" for a, v in zip(axes, cell))
            names = sorted({n for r in group for n in str(r.get("tuned_edge") or "").split("+") if n})
            edges.append(f"- **warning**: {mode.upper()} {where}: the chosen {', '.join(names)} lies on the edge "
                         f"of its tuning grid in {edge} of {len(group)} seeds; the best value may lie beyond it "
                         "(widen the grid).")
    bad = [r for r in rows if r.get("status") != "ok"]
    lines += [""] + edges
    if bad:
        lines += ["", f"{len(bad)} arm(s) could not be chosen: " + "; ".join(
            f"{r['mode']} seed {r['seed']}: {r.get('error')}" for r in bad[:10])]
    return "\n".join(lines) + "\n"
