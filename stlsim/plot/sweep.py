"""The figures of a sweep (``stlsim sweep-report``): drawing only.

Each function takes what ``stlsim.experiment.sweep.report`` computed (paired cells, epoch
lines, SOPs points and fronts), writes a PNG and returns its path. matplotlib is imported
when a figure is drawn.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["heatmap", "forest", "difference_vs_epoch", "sops_fronts", "show_value", "cell_label"]


def show_value(value):
    """A cell value as the report prints it: 2.0 -> "2", layer sizes "128+128+128" -> "3x128"."""
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    if isinstance(value, str) and "+" in value:
        parts = value.split("+")
        if len(set(parts)) == 1:
            return f"{len(parts)}x{parts[0]}"
    return str(value)


def cell_label(cell: dict) -> str:
    """``"theta_init=1 gain_ratio=0.5"``: a cell's axes and values."""
    return " ".join(f"{k}={show_value(v)}" for k, v in cell.items()) or "(one cell)"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    from .._io import atomic_path

    with atomic_path(path, suffix=".png.tmp") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    return path


def _layout(axes, cells):
    """Heat-map rows / columns / facets: the first two axes with more than one value span a panel; a
    facet (a row of panels) for each combination of the other axes that some cell has (not their full
    product: a report of several sweeps may hold few of its combinations)."""
    values = {a: [] for a in axes}
    for c in cells:
        for a in axes:
            if c["cell"][a] not in values[a]:
                values[a].append(c["cell"][a])
    for a in values:
        try:
            values[a] = sorted(values[a])
        except TypeError:
            pass
    varied = [a for a in axes if len(values[a]) > 1] or list(axes[:1])
    y_axis = varied[0] if len(varied) >= 2 else None
    x_axis = varied[1] if len(varied) >= 2 else (varied[0] if varied else None)
    facet_axes = [a for a in axes if a not in (x_axis, y_axis)]
    present = {tuple(c["cell"][a] for a in facet_axes) for c in cells}
    facets = sorted(present, key=lambda f: tuple(values[a].index(v) for a, v in zip(facet_axes, f))) or [()]
    return values, x_axis, y_axis, facet_axes, facets


def _ink(image, value):
    """Black or white text, whichever reads on the cell's colour."""
    if not np.isfinite(value):
        return "black"
    r, g, b, _ = image.cmap(image.norm(value))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def heatmap(cells, axes, path, mode="stl", baseline="sl"):
    """Paired difference per cell (centred colour, CI, seeds won, significant cells framed) + context."""
    plt = _pyplot()
    from matplotlib.colors import TwoSlopeNorm

    values, x_axis, y_axis, facet_axes, facets = _layout(axes, cells)
    xs = values[x_axis] if x_axis else [None]
    ys = values[y_axis] if y_axis else [None]
    lookup = {tuple(c["cell"].get(a) for a in axes): c for c in cells}
    panels = [("diff", f"{mode.upper()} - {baseline.upper()} test accuracy (pp)\n95% CI, seeds won", "RdBu"),
              (f"{baseline}_mean", f"{baseline.upper()} test accuracy (%)", "viridis"),
              ("init_rate", "initial firing rate (hidden, spikes/step)", "magma"),
              ("theta_shift", f"{mode.upper()}: mean |theta - theta_init| (hidden)", "cividis")]
    span = max([abs(c["mean"]) for c in cells] + [abs(v) for c in cells for v in (c["ci_low"], c["ci_high"])
                                                  if not math.isnan(v)] + [1e-3])
    w = max(2.6, 0.9 * len(xs) + 1.2)
    h = max(1.6, 0.55 * len(ys) + 1.0)
    fig, grid = plt.subplots(len(facets), len(panels), figsize=(w * len(panels), h * len(facets) + 0.6),
                             squeeze=False)
    for fi, facet in enumerate(facets):
        fixed = dict(zip(facet_axes, facet))
        for pi, (key, title, cmap) in enumerate(panels):
            ax = grid[fi, pi]
            data = np.full((len(ys), len(xs)), np.nan)
            for yi, yv in enumerate(ys):
                for xi, xv in enumerate(xs):
                    where = {**fixed, **({x_axis: xv} if x_axis else {}), **({y_axis: yv} if y_axis else {})}
                    c = lookup.get(tuple(where.get(a) for a in axes))
                    if c is None:
                        continue
                    value = c["mean"] if key == "diff" else c[key]
                    data[yi, xi] = 100 * value if key in ("diff", f"{baseline}_mean") else value
            if key == "diff":
                norm = TwoSlopeNorm(vcenter=0.0, vmin=-100 * span, vmax=100 * span)
                im = ax.imshow(data, cmap=cmap, norm=norm, aspect="auto")
            else:
                scale = 100 if key == f"{baseline}_mean" else 1
                every = [scale * c[key] for c in cells if np.isfinite(c[key])]
                lo, hi = (min(every), max(every)) if every else (0, 1)
                im = ax.imshow(data, cmap=cmap, aspect="auto", vmin=lo, vmax=hi if hi > lo else lo + 1e-9)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            for yi, yv in enumerate(ys):
                for xi, xv in enumerate(xs):
                    where = {**fixed, **({x_axis: xv} if x_axis else {}), **({y_axis: yv} if y_axis else {})}
                    c = lookup.get(tuple(where.get(a) for a in axes))
                    if c is None:
                        continue
                    if key == "diff":
                        ci = ("" if math.isnan(c["ci_low"]) else
                              f"\n[{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]")
                        text = f"{100 * c['mean']:+.1f}{ci}\n{c['won']}/{c['n']}"
                        ax.text(xi, yi, text, ha="center", va="center", fontsize=7,
                                color=_ink(im, data[yi, xi]), fontweight="bold" if c["significant"] else None)
                        if c["significant"]:
                            ax.add_patch(plt.Rectangle((xi - 0.48, yi - 0.48), 0.96, 0.96, fill=False,
                                                       edgecolor="black", linewidth=2.2))
                    else:
                        v = c[key]
                        fmt = f"{100 * v:.1f}" if key.endswith("_mean") else f"{v:.3g}"
                        ax.text(xi, yi, fmt, ha="center", va="center", fontsize=7, color=_ink(im, data[yi, xi]))
            ax.set_xticks(range(len(xs)), [show_value(v) for v in xs] if x_axis else [""])
            ax.set_yticks(range(len(ys)), [show_value(v) for v in ys] if y_axis else [""])
            ax.set_xlabel(x_axis or "")
            ax.set_ylabel(y_axis or "")
            facet_text = ", ".join(f"{k}={show_value(v)}" for k, v in fixed.items())
            ax.set_title(title + (f"\n{facet_text}" if facet_text else ""), fontsize=8)
    fig.suptitle(f"Paired {mode.upper()} - {baseline.upper()} per cell (framed: 95% CI excludes 0)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def forest(cells, path, mode="stl", baseline="sl"):
    """Every cell's mean paired difference with its 95 % interval, sorted."""
    plt = _pyplot()
    order = sorted(cells, key=lambda c: c["mean"])
    fig, ax = plt.subplots(figsize=(7.5, max(2.0, 0.22 * len(order) + 1.0)))
    for i, c in enumerate(order):
        color = "#2166ac" if c["verdict"] == "STL better" else "#b2182b" if c["verdict"] == "SL better" else "0.35"
        if not math.isnan(c["ci_low"]):
            ax.plot([100 * c["ci_low"], 100 * c["ci_high"]], [i, i], color=color, lw=1.6)
        ax.plot(100 * c["mean"], i, "o", color=color, ms=4)
        ax.text(1.01, i, f"{c['won']}/{c['n']}", transform=ax.get_yaxis_transform(), va="center", fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(order)), [cell_label(c["cell"]) for c in order], fontsize=7)
    ax.set_xlabel(f"{mode.upper()} - {baseline.upper()} test accuracy (percentage points), 95% CI")
    ax.set_title(f"All cells (blue: {mode.upper()} better, red: {baseline.upper()} better; right: seeds won)",
                 fontsize=9)
    ax.set_ylim(-0.8, len(order) - 0.2)
    fig.tight_layout()
    return _save(fig, path)


def difference_vs_epoch(lines, axes, path, mode="stl", baseline="sl"):
    """Paired difference of the test accuracy after each epoch, one line per cell.

    ``lines``: (cell key, epochs, difference in pp) per cell (``experiment.sweep.report.epoch_differences``).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    colour_axis = axes[0] if axes else None
    colour_values = sorted({cell[0] for cell, _, _ in lines}, key=str) if axes else [None]
    cmap = plt.get_cmap("tab10")
    for cell, epochs, diff in lines:
        colour = cmap(colour_values.index(cell[0]) % 10) if axes else "0.4"
        ax.plot(epochs, diff, color=colour, lw=0.9, alpha=0.7)
    if axes:
        for i, v in enumerate(colour_values):
            ax.plot([], [], color=cmap(i % 10), label=f"{colour_axis}={show_value(v)}")
        ax.legend(fontsize=7, loc="best")
    ax.axhline(0, color="black", lw=0.8)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{mode.upper()} - {baseline.upper()} test accuracy (pp)")
    ax.set_title("Paired difference after each epoch (one line per cell, mean over seeds)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)



_MODE_COLOURS = {"stl": "#2166ac", "sl": "#b2182b", "tl": "#4d9221", "ann": "0.3"}


def sops_fronts(points, path):
    """Every run's SOPs per test sample against its test accuracy; each mode's Pareto front.

    ``points``: per mode ``{"runs", "cells", "front"}`` (``experiment.sweep.report.sops_points``).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for mode, p in points.items():
        runs, cells, front = p["runs"], p["cells"], p["front"]
        colour = _MODE_COLOURS.get(mode, None)
        ax.scatter([p[0] for p in runs], [100 * p[1] for p in runs], s=5, alpha=0.2, color=colour,
                   label=f"{mode.upper()} runs ({len(runs)})")
        ax.scatter([p[0] for p in cells], [100 * p[1] for p in cells], s=16, color=colour, marker="D",
                   label=f"{mode.upper()} cells, mean over seeds ({len(cells)})")
        ax.step([p[0] for p in front], [100 * p[1] for p in front], where="post", color=colour, lw=1.6,
                label=f"{mode.upper()} front of the cells")
    ax.set_xscale("log")
    ax.set_xlabel("synaptic operations per test sample (trained network)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Energy: accuracy against SOPs per cell (front: no cell of that mode is cheaper and better)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)
