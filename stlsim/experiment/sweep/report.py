"""``stlsim sweep-report DIR``: where STL beats SL, ties, or loses, read off a sweep's table.

Pairing: in every grid cell, the STL run and the SL run of the same seed share the
initial weights, the data order and the input encoding draws (``stlsim.train``), so the
per-seed difference d_s = acc_STL(s) - acc_SL(s) of the final test accuracies removes
most of the seed-to-seed spread. Per cell:

* mean d, its 95 % confidence interval mean +- t_{0.975, n-1} s / sqrt(n) over the n
  paired seeds (no interval for n = 1), and seeds won / lost / tied by STL. The spread s is
  the sample standard deviation of d, floored at one test sample, 1 / n_test: accuracies
  move in such steps, and a few seeds with identical differences would otherwise give an
  interval of zero width;
* p: the two-sided paired t-test of mean d = 0 with the same floored spread (so p < 0.05
  exactly when the interval excludes 0);
* q (Benjamini-Hochberg, ``scipy.stats.false_discovery_control``) and the Holm-adjusted p over
  the cells of the report: with many cells, about 2.5 % of true ties per direction show
  p < 0.05 by chance, so a cell's verdict is read off q: "STL better" if q < 0.05 and d > 0,
  "SL better" if q < 0.05 and d < 0, else "tie". A cell where every seed tied (d = 0 for all)
  is degenerate: it can show no difference at all, so it is left out of the family and of
  the counts against chance. With n seeds a two-sided sign test cannot go below 2 / 2^n
  (0.0625 at 5 seeds), which is why the t-test is used.

Per grid value (each axis value, pooled over the other axes) the same statistics over all
its paired seeds give the claim table ("does STL win at T = 2?"): a summary, since pooled
seeds of different cells are not one setting; its q and Holm p are over the claim rows.

Several sweep folders make one report (``write_sweep_report([dir1, dir2])``): a task that
two sweeps both ran (the same id: the same resolved options, mode and seed) counts once, and
a cell is the set of resolved options (not the grid's spelling), so a setting shared by two
sweeps is one cell. Options that differ between such cells but are no axis of the first
folder (another depth or data set in a second sweep) become axes of the report, so that its
tables and figures tell those cells apart.

Writes into ``DIR/report`` (or ``--out``): ``report.md`` (tables), ``cells.csv``,
``heatmap.png`` (difference with interval and seeds won, colour centred on 0,
significant cells framed; beside it the baseline's accuracy, the initial firing rate and
how far STL moved the thresholds), ``forest.png`` (every cell's interval) and
``difference_vs_epoch.png`` (the paired difference after each epoch, from ``history.csv``)
and ``fronts.png`` (energy: synaptic operations per test sample against test accuracy, per
run and per cell (means over seeds), with each mode's Pareto front of the cells: those no
other cell of that mode beats on both).
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from ..._checks import fail
from ..._io import atomic_path, say
from ...plot.sweep import show_value as _show
from .table import _csv_text, read_table

__all__ = ["paired_differences", "claims", "pareto_front", "write_sweep_report", "benjamini_hochberg", "holm",
           "adjust", "chance_counts", "read_sweeps", "distinguishing_options"]

_METRIC = "final_test_accuracy"


def _t975(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1))


def _stats(diffs, resolution: float = 0.0) -> dict:
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    if n >= 2:
        half = _t975(n) * max(float(d.std(ddof=1)), resolution) / math.sqrt(n)
        low, high = mean - half, mean + half
    else:
        low = high = math.nan
    if n >= 2 and low > 0:
        verdict = "STL better"
    elif n >= 2 and high < 0:
        verdict = "SL better"
    else:
        verdict = "tie" if n >= 2 else "one seed: no interval"
    return {"n": n, "mean": mean, "ci_low": low, "ci_high": high, "won": int(np.sum(d > 0)),
            "lost": int(np.sum(d < 0)), "tied": int(np.sum(d == 0)), "verdict": verdict,
            "verdict_unadjusted": verdict, "significant": bool(n >= 2 and (low > 0 or high < 0)),
            "p": _p_value(d, resolution), "degenerate": bool(n >= 2 and not np.any(d))}


def _key(value):
    return value if value is not None else ""


ALPHA = 0.05


def _p_value(diffs, resolution: float = 0.0) -> float:
    """Two-sided paired t-test of mean 0, spread floored at ``resolution`` (NaN below 2 seeds;
    1 when every seed tied)."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        return math.nan
    if not np.any(d):
        return 1.0
    spread = max(float(d.std(ddof=1)), resolution)
    if spread == 0.0:
        return 0.0
    t = float(d.mean()) / (spread / math.sqrt(n))
    return float(2.0 * stats.t.sf(abs(t), n - 1))


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q): q_(i) = min over j >= i of m p_(j) / j, at most 1
    (equals ``scipy.stats.false_discovery_control(p, method="bh")``)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: p_(i) -> max over j <= i of (m - j + 1) p_(j), at most 1."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def adjust(entries) -> list:
    """Add ``q`` (BH), ``p_holm`` and the verdict by q to ``entries`` (dicts from ``_stats``), in place.

    The family: the entries with two or more seeds and not every seed tied; the others get NaN.
    """
    family = [e for e in entries if e["n"] >= 2 and not e["degenerate"]]
    q = benjamini_hochberg([e["p"] for e in family])
    h = holm([e["p"] for e in family])
    for e, qi, hi in zip(family, q, h):
        e["q"], e["p_holm"] = float(qi), float(hi)
    tested = {id(e) for e in family}
    for e in entries:
        if id(e) not in tested:
            e["q"] = e["p_holm"] = math.nan
        if e["n"] < 2:
            verdict = "one seed: no interval"
        elif e["degenerate"]:
            verdict = "tie (every seed tied)"
        elif e["q"] < ALPHA:
            verdict = "STL better" if e["mean"] > 0 else "SL better"
        else:
            verdict = "tie"
        e["verdict"], e["significant"] = verdict, verdict in ("STL better", "SL better")
    return entries


def chance_counts(entries) -> dict:
    """Cells per direction at p < 0.05, at q < 0.05 and at Holm p < 0.05, against what true ties
    would give by chance (2.5 % per direction of the non-degenerate cells)."""
    family = [e for e in entries if e["n"] >= 2 and not e["degenerate"]]
    out = {"tested": len(family), "degenerate": sum(e["n"] >= 2 and e["degenerate"] for e in entries),
           "expected_per_direction": ALPHA / 2 * len(family)}
    for key in ("p", "q", "p_holm"):
        out[f"up_{key}"] = sum(e[key] < ALPHA and e["mean"] > 0 for e in family)
        out[f"down_{key}"] = sum(e[key] < ALPHA and e["mean"] < 0 for e in family)
    return out


def _identity(row, ignore=()) -> str:
    """The resolved options of a run that name its cell (JSON), whatever grid spelled them; an
    option added later at its old default (``spec.LATER_OPTIONS``) or missing counts as absent."""
    from ..spec import LATER_OPTIONS, OPTIONS

    out = {}
    for name in OPTIONS:
        value = row.get(name)
        if name in ignore or value is None or value == "":
            continue
        if name in LATER_OPTIONS and str(value) == str(LATER_OPTIONS[name]):
            continue
        out[name] = value
    return json.dumps(out, sort_keys=True, default=str)


def read_sweeps(sweep_dirs, table: str = "table.csv"):
    """(rows, axes, meta, duplicates) of one or several sweep folders: a task id seen twice counts
    once (the first folder's row); axes in order of first appearance; meta of the first folder."""
    if isinstance(sweep_dirs, (str, os.PathLike)):
        sweep_dirs = [sweep_dirs]
    rows, axes, meta, seen, duplicates = [], [], {}, set(), 0
    for k, sweep_dir in enumerate(sweep_dirs):
        mine = read_table(os.path.join(sweep_dir, table))
        my_axes, my_meta = _axes_of(sweep_dir, mine)
        if k == 0:
            meta = my_meta
        axes += [a for a in my_axes if a not in axes]
        for r in mine:
            tid = r.get("task_id")
            if tid is not None and tid in seen:
                duplicates += 1
                continue
            seen.add(tid)
            rows.append(r)
    return rows, axes, meta, duplicates


def distinguishing_options(rows, axes, ignore=()) -> list:
    """The options, beyond ``axes``, whose resolved values differ between the ok runs of ``rows``
    (in the option table's order): in a report of several sweeps, cells that share their axes'
    values but differ in such an option (another depth, data set, surrogate) are other cells, and
    these options become axes of the report so that its tables and figures tell them apart."""
    from ..spec import OPTIONS

    seen = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        ident = json.loads(_identity(r, ignore))
        for name in OPTIONS:
            seen.setdefault(name, set()).add(json.dumps(ident.get(name), default=str))
    return [n for n in OPTIONS if n not in axes and n not in ignore and len(seen.get(n, ())) > 1]


def _with_axes(rows, names):
    """``rows`` with the options ``names`` at their resolved values (an option added later and missing
    from an old table: its old default, as ``_identity`` reads it)."""
    from ..spec import LATER_OPTIONS

    out = []
    for r in rows:
        r = dict(r)
        for n in names:
            if r.get(n) in (None, "") and n in LATER_OPTIONS:
                r[n] = LATER_OPTIONS[n]
        out.append(r)
    return out


def paired_differences(rows, axes, mode: str = "stl", baseline: str = "sl", metric: str = _METRIC,
                       ignore=()) -> list:
    """Per grid cell (in grid order): the paired ``mode - baseline`` statistics, with q, Holm p and
    the verdict by q over these cells (module docstring). A cell is its axes' values and its
    resolved options (``ignore``: options that may differ between the arms, e.g. tuned ones)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    by = {}
    for r in ok:
        cell = (*(_key(r.get(a)) for a in axes), _identity(r, ignore))
        by.setdefault(cell, {}).setdefault(r["mode"], {})[r["seed"]] = r
    cells = []
    for cell, modes in by.items():
        cell = cell[:-1]
        a, b = modes.get(mode, {}), modes.get(baseline, {})
        seeds = sorted(set(a) & set(b))
        if not seeds:
            continue
        diffs = [a[s][metric] - b[s][metric] for s in seeds]
        resolution = _resolution([a[s] for s in seeds] + [b[s] for s in seeds])
        entry = {"cell": dict(zip(axes, cell)), "seeds": seeds, "diffs": diffs, "resolution": resolution,
                 **_stats(diffs, resolution),
                 f"{mode}_mean": float(np.mean([a[s][metric] for s in seeds])),
                 f"{baseline}_mean": float(np.mean([b[s][metric] for s in seeds])),
                 "init_rate": _mean_layers([b[s] for s in seeds], "firing_rate_init_l"),
                 "final_rate": _mean_layers([a[s] for s in seeds], "firing_rate_l"),
                 "theta_shift": _mean_layers([a[s] for s in seeds], "theta_shift_l"),
                 "sops_ratio": _ratio([a[s] for s in seeds], [b[s] for s in seeds], "sops_per_sample")}
        cells.append(entry)
    return adjust(cells)


def _resolution(rows) -> float:
    """One test sample's share of the accuracy (the largest over ``rows``); 0 if unknown."""
    sizes = [r.get("n_test") for r in rows if r.get("n_test")]
    return 1.0 / min(sizes) if sizes else 0.0


def _mean_layers(rows, prefix):
    """Mean over rows of the mean over hidden layers (all spiking layers but the output)."""
    values = []
    for r in rows:
        layers = [r[k] for k in sorted(r) if k.startswith(prefix) and k[len(prefix):].isdigit() and r[k] is not None]
        if len(layers) > 1:
            layers = layers[:-1]
        if layers:
            values.append(float(np.mean(layers)))
    return float(np.mean(values)) if values else math.nan


def _ratio(rows_a, rows_b, key):
    a = [r.get(key) for r in rows_a]
    b = [r.get(key) for r in rows_b]
    if any(v is None for v in a + b) or not sum(b):
        return math.nan
    return float(sum(a) / sum(b))


def claims(rows, axes, mode="stl", baseline="sl", metric=_METRIC, ignore=()) -> list:
    """Per axis value, pooled over the other axes: the paired statistics over all its seeds (a
    summary; q and Holm p over these claim rows, the cell counts by the cells' own q)."""
    cells = paired_differences(rows, axes, mode, baseline, metric, ignore)
    out = []
    for axis in axes:
        values = []
        for c in cells:
            if c["cell"][axis] not in values:
                values.append(c["cell"][axis])
        for value in values:
            mine = [c for c in cells if c["cell"][axis] == value]
            diffs = [d for c in mine for d in c["diffs"]]
            resolution = max(c["resolution"] for c in mine)
            entry = {"claim": f"{axis} = {_show(value)}", **_stats(diffs, resolution), "cells": len(mine),
                     "cells_stl_better": sum(c["verdict"] == "STL better" for c in mine),
                     "cells_sl_better": sum(c["verdict"] == "SL better" for c in mine)}
            out.append(entry)
    diffs = [d for c in cells for d in c["diffs"]]
    resolution = max((c["resolution"] for c in cells), default=0.0)
    out.append({"claim": "all cells", **_stats(diffs, resolution), "cells": len(cells),
                "cells_stl_better": sum(c["verdict"] == "STL better" for c in cells),
                "cells_sl_better": sum(c["verdict"] == "SL better" for c in cells)})
    return adjust(out)


def _pct(x, signed=True):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def pareto_front(points) -> list:
    """The (cost, accuracy, ...) tuples no other point beats on both: fewer or equal cost AND
    higher or equal accuracy, better in one. Sorted by cost; accuracy rises along the front."""
    front, best = [], -math.inf
    for p in sorted(points, key=lambda p: (p[0], -p[1])):
        if p[1] > best:
            front.append(p)
            best = p[1]
    return front


def _sops_points(rows, mode, axes):
    """Per run (sops, accuracy), and per cell the means over its seeds (sops, accuracy, cell, n)."""
    runs, by_cell = [], {}
    for r in rows:
        sops, acc = r.get("sops_per_sample"), r.get(_METRIC)
        if r.get("status") == "ok" and r["mode"] == mode and isinstance(sops, (int, float)) \
                and isinstance(acc, (int, float)) and math.isfinite(sops) and sops > 0:
            runs.append((float(sops), float(acc)))
            cell = tuple((a, _key(r.get(a))) for a in axes)
            by_cell.setdefault(cell, []).append((float(sops), float(acc)))
    cells = [(float(np.mean([p[0] for p in v])), float(np.mean([p[1] for p in v])), dict(c), len(v))
             for c, v in by_cell.items()]
    return runs, cells


def epoch_differences(history, axes, mode="stl", baseline="sl") -> list:
    """Per cell: (cell key, epochs, mean paired difference in pp after each epoch) over its seeds."""
    by = {}
    for r in history:
        cell = tuple(_key(r.get(a)) for a in axes)
        by.setdefault(cell, {}).setdefault((r["mode"], r["seed"]), {})[r["epoch"]] = r["test_accuracy"]
    lines = []
    for cell, runs in by.items():
        seeds = sorted({s for m, s in runs if m == mode} & {s for m, s in runs if m == baseline})
        if not seeds:
            continue
        epochs = sorted(set.intersection(*(set(runs[(m, s)]) for s in seeds for m in (mode, baseline))))
        if not epochs:
            continue
        diff = [100 * np.mean([runs[(mode, s)][e] - runs[(baseline, s)][e] for s in seeds]) for e in epochs]
        lines.append((cell, epochs, diff))
    return lines


def sops_points(rows, axes, modes) -> dict:
    """Per mode: its runs' (SOPs, accuracy), its cells' means over seeds, and the cells' Pareto front."""
    out = {}
    for mode in modes:
        runs, cells = _sops_points(rows, mode, axes)
        if runs:
            out[mode] = {"runs": runs, "cells": cells, "front": pareto_front(cells)}
    return out


def _front_table(fronts, axes, M, B, mode, baseline):
    """Markdown: the cheapest cell of each mode reaching each accuracy level both fronts reach."""
    if fronts is None:          # a report at an earlier epoch: the SOPs are the final network's
        return []
    lines = ["", "## Energy: SOPs-accuracy fronts", "",
             "For each accuracy level, the fewest synaptic operations per test sample with which a cell of "
             "the mode reached it, SOPs and accuracy each the mean over the cell's seeds (read off the "
             "mode's Pareto front of the cells, `fronts.png`; a front of single runs would favour the mode "
             "with the larger seed spread).", ""]
    if mode not in fronts or baseline not in fronts:
        return lines + ["(no SOP counts for both modes)"]
    top = min(fronts[mode][-1][1], fronts[baseline][-1][1])
    levels = [top - 0.10, top - 0.05, top - 0.02, top]     # up to the best accuracy both fronts reach
    lines += [f"| accuracy >= | {M} SOPs | {B} SOPs | {M}/{B} | {M} cell | {B} cell |", "|---|---|---|---|---|---|"]

    def cheapest(front, level):
        for p in front:
            if p[1] >= level - 1e-12:
                return p
        return None

    for level in levels:
        if level <= 0:
            continue
        a, b = cheapest(fronts[mode], level), cheapest(fronts[baseline], level)
        if a is None or b is None:
            continue
        where = lambda p: ", ".join(f"{k}={_show(v)}" for k, v in p[2].items()) + f" ({p[3]} seeds)"  # noqa: E731
        lines.append(f"| {100 * level:.1f} % | {a[0]:,.0f} | {b[0]:,.0f} | {a[0] / b[0]:.2f} | {where(a)} | "
                     f"{where(b)} |")
    return lines


# ---------------------------------------------------------------------------- report --
def _axes_of(sweep_dir, rows):
    meta_path = os.path.join(sweep_dir, "sweep.json")
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        axes = meta.get("axes", [])
        return [a[0] if isinstance(a, list) else a for a in axes], meta
    cols = list(rows[0]) if rows else []
    end = cols.index("seed") if "seed" in cols else 2
    return cols[2:end], {}


def _histories(dirs) -> list:
    """The rows of every folder's ``history.csv`` (a task seen twice: once)."""
    out, seen = [], set()
    for d in dirs:
        path = os.path.join(d, "history.csv")
        if not os.path.isfile(path):
            continue
        mine = read_table(path, allow_empty=True)     # runs without per-epoch rows add none
        ids = {r["task_id"] for r in mine}
        out += [r for r in mine if r["task_id"] not in seen]
        seen |= ids
    return out


def _sources(dirs, duplicates) -> str:
    if len(dirs) == 1:
        return ""
    return ("\n## Sources\n\n" + "\n".join(f"- `{d}`" for d in dirs) + f"\n\n{duplicates} task(s) found in more "
            "than one folder (the same id: options, mode and seed) were counted once; a cell is its resolved "
            "options, so a setting two sweeps share is one cell.\n")


def _at_epoch(rows, history, epoch):
    """``rows`` with ``final_test_accuracy`` replaced by the test accuracy after ``epoch``."""
    acc = {r["task_id"]: r["test_accuracy"] for r in history if r["epoch"] == epoch}
    out = []
    for r in rows:
        if r.get("status") == "ok" and r["task_id"] not in acc:
            raise fail("epoch", f"an epoch every run reached (run {r['task_id']} has no epoch {epoch})",
                       repr(epoch), "stlsim sweep-report")
        out.append({**r, _METRIC: acc.get(r["task_id"])})
    return out


def write_sweep_report(sweep_dir, out=None, *, mode: str = "stl", baseline: str = "sl", epoch=None,
                       log=say) -> str:
    """Write report.md, cells.csv and the figures of a sweep folder; return report.md's path.

    ``sweep_dir``: a folder, or a list of folders reported as one (a task two of them ran counts
    once; module docstring). ``epoch``: compare the test accuracies after that epoch (from
    ``history.csv``) instead of the final ones. A tuned sweep (``stlsim.experiment.sweep.tune``)
    is reported from its ``tuned.csv``: per cell, mode and seed the run its validation chose.
    """
    dirs = [sweep_dir] if isinstance(sweep_dir, (str, os.PathLike)) else list(sweep_dir)
    if not dirs:
        raise fail("sweep_dir", "one or more sweep folders", "none", "stlsim sweep-report")
    from .tune import TUNED_TABLE, tuned_names, write_tuned

    tune = tuned_names(dirs[0])
    for d in dirs:
        if tuned_names(d) != tune:
            raise fail("sweep_dir", f"folders tuned alike (tuned options {tune or 'none'})",
                       f"{d} with tuned options {tuned_names(d) or 'none'}", "stlsim sweep-report")
        if tune:
            write_tuned(d)            # the choice, made afresh from the table: validation only
    rows, axes, meta, duplicates = read_sweeps(dirs, TUNED_TABLE if tune else "table.csv")
    extra = distinguishing_options(rows, axes, tune)
    if extra:
        axes = axes + extra
        rows = _with_axes(rows, extra)
    history = _histories(dirs)
    if epoch is not None:
        rows = _at_epoch(rows, history, epoch)
    modes = {r["mode"] for r in rows if r.get("status") == "ok"}
    for m in (mode, baseline):
        if m not in modes:
            raise fail("sweep", f"finished {m.upper()} runs to pair", f"modes {sorted(modes)}",
                       "stlsim sweep-report")
    cells = paired_differences(rows, axes, mode, baseline, ignore=tune)
    if not cells:
        raise fail("sweep", f"{mode.upper()} and {baseline.upper()} runs of the same seed in some cell",
                   "no pair", "stlsim sweep-report")
    sweep_dir = dirs[0]
    out = out or os.path.join(sweep_dir, "report")
    os.makedirs(out, exist_ok=True)
    from ...plot import sweep as plots

    figures = {"heatmap": plots.heatmap(cells, axes, os.path.join(out, "heatmap.png"), mode, baseline),
               "forest": plots.forest(cells, os.path.join(out, "forest.png"), mode, baseline)}
    if history:
        chosen = {r["task_id"] for r in rows}
        history = [r for r in history if r["task_id"] in chosen]
        figures["difference_vs_epoch"] = plots.difference_vs_epoch(
            epoch_differences(history, axes, mode, baseline), axes, os.path.join(out, "difference_vs_epoch.png"),
            mode, baseline)
    fronts = None
    if epoch is None:      # the SOPs are the trained network's: pair them with the final accuracies only
        points = sops_points(rows, axes, [m for m in ("stl", "sl", "tl") if m in modes])
        figures["fronts"] = plots.sops_fronts(points, os.path.join(out, "fronts.png"))
        fronts = {m: p["front"] for m, p in points.items()}
    header = [*axes, "n_seeds", f"{mode}_accuracy", f"{baseline}_accuracy", "difference", "ci_low", "ci_high",
              "won", "lost", "tied", "p", "q_bh", "p_holm", "verdict", "verdict_unadjusted", "initial_rate_hidden",
              "theta_shift_hidden", "sops_ratio"]
    table_rows = [{**c["cell"], "n_seeds": c["n"], f"{mode}_accuracy": c[f"{mode}_mean"],
                   f"{baseline}_accuracy": c[f"{baseline}_mean"], "difference": c["mean"], "ci_low": c["ci_low"],
                   "ci_high": c["ci_high"], "won": c["won"], "lost": c["lost"], "tied": c["tied"],
                   "p": c["p"], "q_bh": c["q"], "p_holm": c["p_holm"], "verdict": c["verdict"],
                   "verdict_unadjusted": c["verdict_unadjusted"], "initial_rate_hidden": c["init_rate"],
                   "theta_shift_hidden": c["theta_shift"], "sops_ratio": c["sops_ratio"]} for c in cells]
    with atomic_path(os.path.join(out, "cells.csv"), suffix=".csv.tmp") as tmp:
        with open(tmp, "w", newline="") as f:
            f.write(_csv_text(header, table_rows))
    text = _markdown(cells, claims(rows, axes, mode, baseline, ignore=tune), axes, rows, meta, figures, mode,
                     baseline, out, fronts)
    text += _sources(dirs, duplicates)
    if tune:
        from .tune import tuning_markdown

        text += tuning_markdown(sweep_dir, rows, axes, tune)
    if epoch is not None:
        text = text.replace("final test accuracy", f"test accuracy after epoch {epoch}", 1)
    path = os.path.join(out, "report.md")
    with atomic_path(path, suffix=".md.tmp") as tmp:
        with open(tmp, "w") as f:
            f.write(text)
    if log:
        n_sig = sum(c["significant"] for c in cells)
        log(f"{len(cells)} cells: {sum(c['verdict'] == 'STL better' for c in cells)} {mode.upper()} better, "
            f"{sum(c['verdict'] == 'SL better' for c in cells)} {baseline.upper()} better, "
            f"{len(cells) - n_sig} ties or single seeds")
    return path


def _pval(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "-"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _chance_lines(cells, M, B) -> list:
    """The counts per direction against chance (module docstring), and the sign test's floor."""
    k = chance_counts(cells)
    m = k["tested"]
    lines = [f"Counts against chance: of {m} cells tested ({k['degenerate']} with every seed tied left out), "
             f"true ties would give about {k['expected_per_direction']:.1f} per direction at p < 0.05. "
             f"Observed at p < 0.05: {k['up_p']} {M} better, {k['down_p']} {B} better; at q < 0.05 (BH): "
             f"{k['up_q']} and {k['down_q']}; at Holm p < 0.05: {k['up_p_holm']} and {k['down_p_holm']}.", ""]
    seeds = sorted({c["n"] for c in cells if c["n"] >= 2})
    if seeds and seeds[0] <= 5:
        lines += [f"With {seeds[0]} paired seeds a two-sided sign test cannot go below p = "
                  f"{2 * 0.5 ** seeds[0]:.3g}; seeds won/lost are shown, not tested.", ""]
    return lines


def _markdown(cells, claim_rows, axes, rows, meta, figures, mode, baseline, out, fronts=None):
    M, B = mode.upper(), baseline.upper()
    n_ok = sum(r.get("status") == "ok" for r in rows)
    lines = [f"# Sweep report: {M} vs {B}", ""]
    if meta.get("command"):
        lines += ["Command: `" + " ".join(meta["command"]) + "`", ""]
    lines += [f"{len(rows)} tasks in the table, {n_ok} ok; {len(cells)} cells with paired seeds. "
              f"Difference = {M} - {B} final test accuracy of the same seed (percentage points), "
              "mean over seeds, 95% t-interval (spread floored at one test sample); won = seeds where "
              f"{M} is higher. p: two-sided paired t-test (the same floored spread); q: Benjamini-Hochberg over "
              "the cells; Holm: Holm-adjusted p over the cells. A cell's verdict is read off q < 0.05.", ""]
    lines += _chance_lines(cells, M, B)
    for name, fig in figures.items():
        lines.append(f"![{name}]({os.path.relpath(fig, out)})")
    lines += ["", "## Verdicts per claim: pooled summaries (over the other axes; not tests of one setting)", "",
              "| claim (pooled summary) | cells | pairs | difference (pp) | 95% CI | won/lost/tied | p | q (BH) | Holm p | cells "
              + M + " better (q) | cells " + B + " better (q) | pooled verdict (q) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in claim_rows:
        ci = "-" if math.isnan(c["ci_low"]) else f"[{_pct(c['ci_low'])}, {_pct(c['ci_high'])}]"
        lines.append(f"| {c['claim']} | {c['cells']} | {c['n']} | {_pct(c['mean'])} | {ci} | "
                     f"{c['won']}/{c['lost']}/{c['tied']} | {_pval(c['p'])} | {_pval(c['q'])} | {_pval(c['p_holm'])} | "
                     f"{c['cells_stl_better']} | {c['cells_sl_better']} | {c['verdict']} |")
    lines += ["", "Pooled intervals treat every paired seed of every cell as one observation; cells differ, so "
              "read them as a summary, not as a test of one setting. Their q and Holm p are over these summary "
              "rows; the cell counts use each cell's own q.", "",
              "## Verdicts per cell", "",
              "| " + " | ".join(axes) + f" | seeds | {M} acc | {B} acc | difference (pp) | 95% CI | won/lost/tied | "
              "p | q (BH) | Holm p | initial rate | theta shift | SOPs " + M + "/" + B + " | verdict (q) |",
              "|" + "---|" * (len(axes) + 13)]
    for c in cells:
        ci = "-" if math.isnan(c["ci_low"]) else f"[{_pct(c['ci_low'])}, {_pct(c['ci_high'])}]"
        cell = " | ".join(_show(c["cell"][a]) for a in axes)
        lines.append(f"| {cell} | {c['n']} | {_pct(c[f'{mode}_mean'], False)} | {_pct(c[f'{baseline}_mean'], False)} | "
                     f"{_pct(c['mean'])} | {ci} | {c['won']}/{c['lost']}/{c['tied']} | {_pval(c['p'])} | "
                     f"{_pval(c['q'])} | {_pval(c['p_holm'])} | {c['init_rate']:.3f} | "
                     f"{c['theta_shift']:.3g} | {c['sops_ratio']:.2f} | {c['verdict']} |")
    lines += _front_table(fronts, axes, M, B, mode, baseline)
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        lines += ["", f"## Tasks not ok ({len(failed)})", ""]
        for r in failed[:20]:
            lines.append(f"- {r['task_id']} {r['mode']} seed {r['seed']}: {r.get('status')}: {r.get('error')}")
    return "\n".join(lines) + "\n"
