"""``stlsim sweep-noise DIR``: noise robustness of a sweep's runs, at matched clean accuracy and rate.

Comparing the noisy accuracy of STL and SL networks says little when one of them is more
accurate on clean data or fires more: both move the noisy accuracy on their own. So the
comparison is made between runs that match on both:

1. every finished spiking run of the sweep (its trained parameters, from its record) is
   evaluated on the same test inputs, clean and under each noise level
   (``stlsim.analysis.noise.noise_accuracy``: the same encoding draws at every level, so
   level 0 is the clean accuracy and a change is the noise's);
2. runs that did not learn (clean accuracy below ``min_accuracy``, default 0.5) are left
   out: two silent nets at chance would "match" and say nothing;
3. matching: each STL run is paired with at most one SL run, from any cell, whose clean
   accuracy is within ``acc_tol`` (default 1 percentage point) and whose mean hidden firing
   rate is within ``rate_tol`` (default 10 %, relative) of its own; among the admissible
   pairs the closest (|d acc| / acc_tol + |d rate| / (rate_tol * rate)) are taken first,
   one to one (greedy nearest neighbours without replacement), and only between runs of the
   same network structure: the same value of every axis that changes the forward model
   (``STRUCTURAL``: time steps, layer sizes, architecture, ...); axes that change only the
   initialisation or the optimisation (r, theta_init, learning rates, surrogate) may differ;
4. per noise level: the mean paired difference of the noisy accuracies, STL - SL, with its
   95 % t-interval over the matched pairs, and pairs won; and, as a check that does not
   depend on the calipers, the least-squares fit over all learned runs
   noisy = b0[structure] + b1 clean + b2 rate + b3 [STL] with the 95 % interval of b3 (the
   STL effect at equal clean accuracy, firing rate and structure).

Writes ``noise.csv`` (one row per run: cell, mode, seed, clean accuracy, rate, accuracy at
each level), ``noise_matched.csv`` (the pairs) and ``noise.md`` (the verdicts) into
``DIR/report`` (or ``--out``), all atomically.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..._checks import check_real, fail
from ..._io import atomic_path, say
from .report import _axes_of, _stats, _t975
from .runner import check_record_matches, checked_task_doc, record_of
from .table import _csv_text, read_table

__all__ = ["DEFAULT_NOISE", "noise_rows", "matched_pairs", "stl_effect", "write_noise_report"]

DEFAULT_NOISE = {"gaussian": (0.2, 0.4), "spike_delete": (0.4,), "spike_insert": (0.05,)}
# Axes that change the network the input passes through; matched runs agree on them.
STRUCTURAL = ("dataset", "arch", "hidden", "timesteps", "encoding", "population", "tau", "reset", "dtype",
              "threshold_sharing", "train_subset", "test_subset", "epochs")


def _column(kind: str, level: float) -> str:
    return f"{kind}@{level:g}"


def _hidden_rate(row) -> float:
    """Mean firing rate of the hidden layers (all spiking layers but the output) after training."""
    layers = sorted(int(k[len("firing_rate_l"):]) for k in row if k.startswith("firing_rate_l")
                    and k[len("firing_rate_l"):].isdigit())
    hidden = layers[:-1] or layers
    values = [row[f"firing_rate_l{k}"] for k in hidden if isinstance(row.get(f"firing_rate_l{k}"), (int, float))]
    return float(np.mean(values)) if values else float("nan")


def noise_rows(sweep_dir, *, noise=None, modes=("stl", "sl"), max_test=None, seed: int = 0, log=say) -> list:
    """Evaluate every finished run of ``modes`` clean and under ``noise`` ({kind: levels}).

    Returns one dict per run: ``task_id``, the cell's axes, ``mode``, ``seed``, ``clean_accuracy``,
    ``hidden_rate``, ``final_test_accuracy`` (the table's) and one column ``kind@level`` per level.
    """
    from ...analysis.dynamics import network_from_record
    from ...analysis.noise import NOISE_KINDS, noise_accuracy
    from ..spec import DataSpec

    owner = "stlsim sweep-noise"
    noise = dict(DEFAULT_NOISE if noise is None else noise)
    for kind, levels in noise.items():
        if kind not in NOISE_KINDS:
            raise fail("noise kind", f"one of {', '.join(NOISE_KINDS)}", repr(kind), owner)
        if not levels:
            raise fail(f"levels of {kind!r}", "at least one level", repr(levels), owner)
        for level in levels:
            check_real(level, f"level of {kind!r}", low=0.0, owner=owner)
    axes = _axes(sweep_dir)
    rows = [r for r in read_table(sweep_dir) if r.get("status") == "ok" and r["mode"] in modes]
    if not rows:
        raise fail("sweep", f"finished runs of the modes {list(modes)}", "none", owner)
    data_cache, out = {}, []
    table = os.path.join(sweep_dir, "table.csv")
    for n, row in enumerate(rows, 1):
        # Only the record of this task, at the one place it may be, checked against the task's row.
        tid = row["task_id"]
        record_path = record_of(sweep_dir, tid)
        if os.path.normpath(str(row.get("record") or "")) != os.path.join("records", f"{tid}.h5"):
            raise fail(f"column 'record' of task {tid} in {table!r}", f"'records/{tid}.h5' (the task's own record, "
                       "inside the sweep folder)", repr(row.get("record")), owner)
        doc = checked_task_doc(sweep_dir, tid, owner=owner)
        if doc["row"].get("mode") != row["mode"] or doc["row"].get("seed") != row["seed"]:
            raise fail(f"row of task {tid} in {table!r}", f"mode {doc['row'].get('mode')!r} seed "
                       f"{doc['row'].get('seed')!r} (its task file's)", f"mode {row['mode']!r} seed {row['seed']!r}",
                       owner)
        options = doc["options"]
        data_key = (options["dataset"], options.get("train_subset"), options.get("test_subset"))
        if data_key not in data_cache:          # one data set in memory at a time
            data_cache = {data_key: DataSpec(*data_key).load(options.get("timesteps"))}
        data = data_cache[data_key]
        if data.timesteps:
            raise fail("sweep", "runs on static images (noise is added to images or their rate code)",
                       f"event data {data.name!r}", owner)
        config_t, config_enc = int(options["timesteps"]), options["encoding"]
        net, rec = network_from_record(record_path, data.sample_shape, data.n_classes)
        check_record_matches(rec, doc, record_path, owner)
        x, y = data.x_test, data.y_test
        if max_test is not None:
            x, y = x[:max_test], y[:max_test]
        result = {"task_id": row["task_id"], **{a: row.get(a) for a in axes}, "mode": row["mode"],
                  "structure": "; ".join(f"{a}={row.get(a)}" for a in axes if a in STRUCTURAL) or "all",
                  "seed": row["seed"], "final_test_accuracy": row["final_test_accuracy"],
                  "hidden_rate": _hidden_rate(row), "n_test": int(len(y))}
        for kind, levels in noise.items():
            acc = noise_accuracy(net, x, y, kind, (0.0,) + tuple(float(v) for v in levels),
                                 timesteps=config_t, encoding=config_enc, seed=seed)
            result["clean_accuracy"] = float(acc[0])
            for level, a in zip(levels, acc[1:]):
                result[_column(kind, float(level))] = float(a)
        out.append(result)
        if log and (n % 50 == 0 or n == len(rows)):
            log(f"[{n}/{len(rows)}] runs evaluated under noise")
    return out


def _axes(sweep_dir) -> list:
    return _axes_of(sweep_dir, read_table(sweep_dir))[0]


def _learned(rows, mode, min_accuracy):
    return [r for r in rows if r["mode"] == mode and r["clean_accuracy"] >= min_accuracy
            and math.isfinite(r["hidden_rate"]) and r["hidden_rate"] > 0]


def matched_pairs(rows, *, mode="stl", baseline="sl", acc_tol=0.01, rate_tol=0.10, min_accuracy=0.5) -> list:
    """One-to-one pairs (a ``mode`` run, a ``baseline`` run) matched on clean accuracy and hidden rate."""
    acc_tol = check_real(acc_tol, "acc_tol", low=0.0, low_open=True, owner="matched_pairs")
    rate_tol = check_real(rate_tol, "rate_tol", low=0.0, low_open=True, owner="matched_pairs")
    a_runs, b_runs = _learned(rows, mode, min_accuracy), _learned(rows, baseline, min_accuracy)
    candidates = []
    for i, a in enumerate(a_runs):
        for j, b in enumerate(b_runs):
            d_acc = abs(a["clean_accuracy"] - b["clean_accuracy"])
            scale = rate_tol * max(a["hidden_rate"], b["hidden_rate"])
            d_rate = abs(a["hidden_rate"] - b["hidden_rate"])
            if a["structure"] == b["structure"] and d_acc <= acc_tol + 1e-12 and d_rate <= scale:
                candidates.append((d_acc / acc_tol + d_rate / scale, i, j))
    used_a, used_b, pairs = set(), set(), []
    for _, i, j in sorted(candidates):
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((a_runs[i], b_runs[j]))
    return pairs


def stl_effect(rows, column, *, mode="stl", baseline="sl", min_accuracy=0.5) -> dict:
    """Least squares noisy = b0[structure] + b1 clean + b2 rate + b3 [mode] over the learned runs:
    b3 (the mode's effect at equal clean accuracy, rate and structure) and its 95 % interval."""
    runs = _learned(rows, mode, min_accuracy) + _learned(rows, baseline, min_accuracy)
    structures = sorted({r["structure"] for r in runs})
    n_columns = 3 + len(structures)
    if len(runs) < n_columns + 3 or len({r["mode"] for r in runs}) < 2:
        return {"n": len(runs), "effect": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    X = np.array([[float(r["mode"] == mode), r["clean_accuracy"], r["hidden_rate"]]
                  + [float(r["structure"] == s) for s in structures] for r in runs])
    y = np.array([r[column] for r in runs])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    dof = len(y) - n_columns
    sigma2 = float(np.sum((y - X @ beta) ** 2)) / dof
    cov = sigma2 * np.linalg.pinv(X.T @ X)
    half = _t975(dof + 1) * math.sqrt(max(cov[0, 0], 0.0))
    return {"n": len(runs), "effect": float(beta[0]), "ci_low": float(beta[0] - half),
            "ci_high": float(beta[0] + half)}


def _verdict(low, high, mode, baseline):
    if math.isnan(low):
        return "-"
    if low > 0:
        return f"{mode.upper()} more robust"
    if high < 0:
        return f"{baseline.upper()} more robust"
    return "tie"


def write_noise_report(sweep_dir, out=None, *, noise=None, mode="stl", baseline="sl", acc_tol=0.01,
                       rate_tol=0.10, min_accuracy=0.5, max_test=None, seed=0, split=None, log=say) -> str:
    """Evaluate the runs under noise, match them, write noise.csv, noise_matched.csv, noise.md.

    ``split``: an axis whose values get a table each (default: ``theta_lr`` when it is an axis, so
    STL with each threshold learning rate is matched on its own); ``""``: one table."""
    noise = dict(DEFAULT_NOISE if noise is None else noise)
    axes = _axes(sweep_dir)
    if split is None:
        split = "theta_lr" if "theta_lr" in axes else ""
    if split and split not in axes:
        raise fail("split", f"an axis of the sweep ({', '.join(axes) or 'none'})", repr(split), "stlsim sweep-noise")
    rows = noise_rows(sweep_dir, noise=noise, modes=(mode, baseline), max_test=max_test, seed=seed, log=log)
    out = out or os.path.join(sweep_dir, "report")
    os.makedirs(out, exist_ok=True)
    columns = [_column(k, float(v)) for k, levels in noise.items() for v in levels]
    header = list(rows[0])
    with atomic_path(os.path.join(out, "noise.csv"), suffix=".csv.tmp") as tmp:
        with open(tmp, "w", newline="") as f:
            f.write(_csv_text(header, rows))
    groups = sorted({r.get(split) for r in rows}, key=str) if split else [None]
    M, B = mode.upper(), baseline.upper()
    lines = [f"# Noise robustness: {M} vs {B} at matched clean accuracy and firing rate", "",
             f"{len(rows)} runs evaluated on {rows[0]['n_test']} test samples (clean and noisy inputs from the "
             f"same encoding draws, seed {seed}). Runs below {100 * min_accuracy:.0f} % clean accuracy are left "
             f"out. Matched: one-to-one pairs of the same structure "
             f"({', '.join(a for a in axes if a in STRUCTURAL) or 'one'}) with |clean accuracy difference| <= "
             f"{100 * acc_tol:.1f} pp and hidden firing rates within {100 * rate_tol:.0f} %. Difference = "
             f"{M} - {B} noisy accuracy (pp), mean over pairs, 95 % t-interval; regression = the {M} "
             f"coefficient of noisy ~ structure + clean + rate + [{M}] over all learned runs."
             + (f" One table per value of {split} (each {M} on its own, with the {B} runs of its cells)."
                if split else ""), ""]
    pair_rows = []
    for group in groups:
        part = [r for r in rows if not split or r.get(split) == group]
        pairs = matched_pairs(part, mode=mode, baseline=baseline, acc_tol=acc_tol, rate_tol=rate_tol,
                              min_accuracy=min_accuracy)
        pair_rows += [{**({split: group} if split else {}), f"{mode}_task": a["task_id"], f"{baseline}_task": b["task_id"],
                       f"{mode}_clean": a["clean_accuracy"], f"{baseline}_clean": b["clean_accuracy"],
                       f"{mode}_rate": a["hidden_rate"], f"{baseline}_rate": b["hidden_rate"],
                       **{f"diff {c}": a[c] - b[c] for c in columns}} for a, b in pairs]
        n_learned = {m: len(_learned(part, m, min_accuracy)) for m in (mode, baseline)}
        if split:
            lines += [f"## {split} = {group}", ""]
        lines += [f"Learned runs: {M} {n_learned[mode]}, {B} {n_learned[baseline]}; matched pairs: {len(pairs)}."]
        if pairs:
            gaps = [abs(a["clean_accuracy"] - b["clean_accuracy"]) for a, b in pairs]
            rgap = [abs(a["hidden_rate"] - b["hidden_rate"]) / max(a["hidden_rate"], b["hidden_rate"])
                    for a, b in pairs]
            clean = np.mean([a["clean_accuracy"] - b["clean_accuracy"] for a, b in pairs])
            lines[-1] += (f" Mean |clean difference| {100 * np.mean(gaps):.2f} pp, mean relative rate difference "
                          f"{100 * np.mean(rgap):.1f} %; clean {M} - {B} {100 * clean:+.2f} pp.")
        lines += ["", "| noise | matched pairs | difference (pp) | 95% CI | won/lost/tied | verdict | "
                  "regression (pp) | 95% CI | verdict |", "|---|---|---|---|---|---|---|---|---|"]
        for c in columns:
            diffs = [a[c] - b[c] for a, b in pairs]
            st = _stats(diffs)
            mean, low, high = st["mean"], st["ci_low"], st["ci_high"]
            fit = stl_effect(part, c, mode=mode, baseline=baseline, min_accuracy=min_accuracy)
            fmt = lambda v: "-" if math.isnan(v) else f"{100 * v:+.2f}"  # noqa: E731
            lines.append(f"| {c} | {len(diffs)} | {fmt(mean)} | [{fmt(low)}, {fmt(high)}] | {st['won']}/"
                         f"{st['lost']}/{st['tied']} | {_verdict(low, high, mode, baseline)} | "
                         f"{fmt(fit['effect'])} | [{fmt(fit['ci_low'])}, {fmt(fit['ci_high'])}] | "
                         f"{_verdict(fit['ci_low'], fit['ci_high'], mode, baseline)} |")
        lines.append("")
    if pair_rows:
        with atomic_path(os.path.join(out, "noise_matched.csv"), suffix=".csv.tmp") as tmp:
            with open(tmp, "w", newline="") as f:
                f.write(_csv_text(list(pair_rows[0]), pair_rows))
    lines += ["Pairs come from different cells and seeds, so they are not independent draws of one "
              "setting; read the interval as a summary of this sweep, not a test of one network."]
    path = os.path.join(out, "noise.md")
    with atomic_path(path, suffix=".md.tmp") as tmp:
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
    if log:
        log(f"noise report: {path} ({len(pair_rows)} matched pairs)")
    return path
