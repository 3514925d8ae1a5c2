"""Figures of the analyses (matplotlib, imported when a function here is called).

Each function takes the plain results of ``stlsim.analysis`` (dicts and arrays), writes
one figure to ``path`` and returns the path written, like the training figures of
``stlsim.plot``, and takes the same ``fmt`` ("png", "pdf", "svg") and ``dpi`` keywords.
Shaded bands and error bars are one sample standard deviation over seeds unless the
legend says otherwise.
"""
from __future__ import annotations

import numpy as np

from . import BAND_LABEL, MODE_COLORS, _band_legend, _integer_ticks, _pyplot, mean_sd, threshold_panel
from . import _save as _save_figure


def _save(fig, path, fmt, dpi, owner):
    """Write the figure atomically with its fixed margins (``bbox_inches="tight"`` would
    draw every figure twice; a report draws many)."""
    return _save_figure(fig, path, fmt, dpi, owner, tight=False)

__all__ = ["rates_over_training", "thresholds_over_training", "threshold_histograms", "noise_curves",
           "energy_per_layer", "propagation_depth", "decision_rules", "population_gain", "threshold_dynamics"]


def _margins(fig, bottom=0.16, top=0.84, left=None, wspace=0.25):
    """Fixed margins (cheap; ``tight_layout`` and tight bounding boxes redraw the figure)."""
    width = fig.get_size_inches()[0]
    fig.subplots_adjust(left=left if left is not None else min(0.12, 1.0 / width), right=0.98,
                        bottom=bottom, top=top, wspace=wspace)


def _legend_below(fig, ax, n_seeds: int, band_label: str | None = None):
    """One legend for the figure, below the panels (in a panel it would hide curves that
    end near the top, as accuracies do): ``ax``'s entries and the shaded band's."""
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    if band_label is not None or n_seeds > 1:
        handles.append(Patch(facecolor="0.5", alpha=0.25))
        labels.append(band_label or BAND_LABEL.replace("seeds", f"{n_seeds} seeds"))
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)


def _band(ax, x, values, color, label):
    """Mean over seeds (rows of ``values``) as a line, +- 1 sample SD shaded; returns the
    number of seeds."""
    values = np.asarray(values, dtype=float)
    mean, sd = mean_sd(values)
    ax.plot(x, mean, color=color, label=label, marker="o", ms=3)
    if values.shape[0] > 1:
        ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
    return values.shape[0]


def rates_over_training(rates_by_mode: dict, path, title="Firing rate per layer over training (test set)",
                        *, fmt=None, dpi=None):
    """``{mode: (seeds, epochs, layers)}``: one panel per mode, mean +- SD over seeds."""
    plt = _pyplot()
    modes = list(rates_by_mode)
    fig, axes = plt.subplots(1, len(modes), figsize=(4 * len(modes), 3.4), sharey=True, squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, mode in zip(axes[0], modes):
        rates = np.asarray(rates_by_mode[mode], dtype=float)
        epochs = np.arange(1, rates.shape[1] + 1)
        n_layers = rates.shape[2]
        for layer in range(n_layers):
            n_seeds = _band(ax, epochs, rates[:, :, layer], cmap(0.85 * layer / max(n_layers - 1, 1)),
                            f"layer {layer + 1}")
        ax.set_title(mode.upper())
        ax.set_xlabel("epoch")
        _integer_ticks(ax)
    axes[0][0].set_ylabel("spikes / neuron / step")
    _legend_below(fig, axes[0][0], n_seeds)
    fig.suptitle(title)
    _margins(fig, bottom=0.27)
    return _save(fig, path, fmt, dpi, "rates_over_training")


def thresholds_over_training(theta_by_mode: dict, path, title="Threshold mean (+- spread) per layer over training",
                             *, fmt=None, dpi=None):
    """``{mode: {"mean": (S, E, L), "std": (S, E, L)}}``: mean over seeds of each layer's
    threshold mean, shaded by the mean within-layer std."""
    plt = _pyplot()
    modes = list(theta_by_mode)
    fig, axes = plt.subplots(1, len(modes), figsize=(4 * len(modes), 3.4), sharey=True, squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, mode in zip(axes[0], modes):
        mean = np.asarray(theta_by_mode[mode]["mean"], dtype=float).mean(axis=0)
        spread = np.asarray(theta_by_mode[mode]["std"], dtype=float).mean(axis=0)
        epochs = np.arange(1, mean.shape[0] + 1)
        for layer in range(mean.shape[1]):
            color = cmap(0.85 * layer / max(mean.shape[1] - 1, 1))
            ax.plot(epochs, mean[:, layer], color=color, label=f"layer {layer + 1}", marker="o", ms=3)
            ax.fill_between(epochs, mean[:, layer] - spread[:, layer], mean[:, layer] + spread[:, layer],
                            color=color, alpha=0.15)
        ax.set_title(mode.upper())
        ax.set_xlabel("epoch")
        _integer_ticks(ax)
    axes[0][0].set_ylabel("threshold theta (layer mean)")
    _legend_below(fig, axes[0][0], 1, "shaded: +- the layer's SD of theta (mean over seeds)")
    fig.suptitle(title)
    _margins(fig, bottom=0.27)
    return _save(fig, path, fmt, dpi, "thresholds_over_training")


def threshold_histograms(thetas_by_mode: dict, path, title="Learned thresholds (all seeds) vs init",
                         *, fmt=None, dpi=None):
    """``{mode: {"init": [array per layer], "final": [...]}}`` (``learned_thresholds``):
    one row per mode, one panel per layer."""
    plt = _pyplot()
    modes = list(thetas_by_mode)
    n_layers = len(thetas_by_mode[modes[0]]["final"])
    fig, axes = plt.subplots(len(modes), n_layers, figsize=(3.4 * n_layers, 2.3 * len(modes) + 0.6),
                             squeeze=False)
    for r, mode in enumerate(modes):
        for layer in range(n_layers):
            ax = axes[r][layer]
            threshold_panel(ax, thetas_by_mode[mode]["init"][layer], thetas_by_mode[mode]["final"][layer],
                            mode, layer)
            ax.tick_params(labelsize=7)
            ax.set_ylabel("neurons (count)", fontsize=7)
            if layer == 0:
                ax.legend(fontsize=6, loc="upper left")
            ax.set_xlabel("threshold theta", fontsize=7)
    fig.suptitle(title)
    height = fig.get_size_inches()[1]
    fig.subplots_adjust(hspace=0.6, wspace=0.35, left=0.08, right=0.97, bottom=0.5 / height,
                        top=1 - 0.75 / height)
    return _save(fig, path, fmt, dpi, "threshold_histograms")


_NOISE_LABELS = {"gaussian": "Gaussian noise sigma", "salt_pepper": "salt-and-pepper fraction",
                 "spike_delete": "input spikes deleted (prob.)", "spike_insert": "input spikes inserted (prob.)",
                 "event_drop": "events dropped (prob.)", "event_insert": "events inserted (x n)"}


def noise_curves(curves: dict, path, title="Accuracy under input noise (mean +- SD over seeds)",
                 *, fmt=None, dpi=None):
    """``noise_curves`` output: one panel per noise kind, one line per mode."""
    plt = _pyplot()
    kinds = list(curves)
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.8 * len(kinds), 3.4), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        levels = curves[kind]["levels"]
        for mode, m in curves[kind]["modes"].items():
            n_seeds = _band(ax, levels, m["per_seed"], MODE_COLORS.get(mode), mode.upper())
        ax.set_xlabel(_NOISE_LABELS.get(kind, kind))
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("test accuracy")
    _legend_below(fig, axes[0][0], n_seeds)
    fig.suptitle(title)
    _margins(fig, bottom=0.27)
    return _save(fig, path, fmt, dpi, "noise_curves")


def energy_per_layer(energy_by_mode: dict, path, title="Energy per inference, per synaptic layer",
                     *, fmt=None, dpi=None):
    """``{mode: Energy.as_dict()}``: bars of SNN energy per layer per mode and the ANN's."""
    plt = _pyplot()
    modes = list(energy_by_mode)
    first = energy_by_mode[modes[0]]
    n_layers = len(first["names"])
    width = 0.8 / (len(modes) + 1)
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * n_layers + 2), 3.6))
    x = np.arange(n_layers)
    for k, mode in enumerate(modes):
        ax.bar(x + k * width, np.array(energy_by_mode[mode]["snn_joules_per_layer"]) * 1e9, width,
               color=MODE_COLORS.get(mode), label=f"SNN {mode.upper()}")
    ax.bar(x + len(modes) * width, np.array(first["ann_joules_per_layer"]) * 1e9, width, color="0.5",
           label="ANN (1 pass)")
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels([f"layer {i + 1}" for i in range(n_layers)])
    ax.set_ylabel("nJ per inference")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    _margins(fig)
    return _save(fig, path, fmt, dpi, "energy_per_layer")


def propagation_depth(depth: dict, path, title="Signal propagation vs depth (dense nets)",
                      *, fmt=None, dpi=None):
    """``propagation_depth`` output: deepest-hidden/first rate ratio, output silence and
    accuracy vs depth; per-layer rates of the deepest nets."""
    plt = _pyplot()
    depths = depth["depths"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    for mode, m in depth["modes"].items():
        color = MODE_COLORS.get(mode)
        n_seeds = _band(axes[0], depths, m["ratio"], color, mode.upper())
        _band(axes[1], depths, m["silent_output_fraction"], color, mode.upper())
        _band(axes[2], depths, m["accuracy"], color, mode.upper())
        rates = np.asarray(m["rates"][-1], dtype=float)             # (seeds, layers) at max depth
        layers = np.arange(1, rates.shape[1] + 1)
        _band(axes[3], layers, rates, color, mode.upper())
        init = np.asarray(m["rates_init"][-1], dtype=float).mean(axis=0)
        axes[3].plot(layers, init, color=color, ls=":", lw=1)
    axes[0].set_ylabel("rate deepest hidden / rate first")
    axes[1].set_ylabel("test samples with silent output")
    axes[2].set_ylabel("test accuracy")
    for ax in axes[:3]:
        ax.set_xlabel("spiking layers")
        ax.set_xticks(depths)
    axes[1].set_ylim(-0.02, 1.02)
    axes[3].set_xlabel(f"layer (net of {depths[-1]} spiking layers; dotted: at init)")
    axes[3].set_ylabel("spikes / neuron / step")
    _band_legend(axes[0], n_seeds, fontsize=8)
    fig.suptitle(title)
    _margins(fig, wspace=0.35)
    return _save(fig, path, fmt, dpi, "propagation_depth")


def decision_rules(acc_by_mode: dict, path, title="Decision rules on the same spikes (GJDF ablations)",
                   *, fmt=None, dpi=None):
    """``{mode: {rule: [accuracy per seed]}}``: grouped bars, mean +- sample SD."""
    plt = _pyplot()
    modes = list(acc_by_mode)
    rules = list(acc_by_mode[modes[0]])
    width = 0.8 / len(modes)
    fig, ax = plt.subplots(figsize=(max(6, 1.9 * len(rules)), 3.6))
    x = np.arange(len(rules))
    for k, mode in enumerate(modes):
        values = np.array([acc_by_mode[mode][r] for r in rules], dtype=float)      # (rules, seeds)
        mean, sd = mean_sd(values.T)
        ax.bar(x + k * width, mean, width, yerr=sd, capsize=2, color=MODE_COLORS.get(mode),
               label=f"{mode.upper()} (bar: mean; error bar: 1 SD over {values.shape[1]} seeds)")
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels([r.replace(" (", "\n(").replace(", ", ",\n") for r in rules], fontsize=8)
    ax.set_ylabel("test accuracy")
    lo = min(min(min(v) for v in acc_by_mode[m].values()) for m in modes)
    ax.set_ylim(max(0.0, lo - 0.1), 1.0)
    ax.legend(fontsize=8)
    fig.suptitle(title)
    _margins(fig, bottom=0.22)
    return _save(fig, path, fmt, dpi, "decision_rules")


def population_gain(gain: dict, path, title="GJDF: accuracy with P output neurons per class vs P = 1",
                    *, fmt=None, dpi=None):
    """``{mode: {"P": [...], "per_seed": (len(P), seeds)}}`` accuracies: one line per mode."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    n_seeds = 1
    for mode, g in gain.items():
        n_seeds = _band(ax, g["P"], np.asarray(g["per_seed"], dtype=float).T, MODE_COLORS.get(mode), mode.upper())
    ax.set_xlabel("population P (output neurons per class)")
    ax.set_ylabel("test accuracy")
    _integer_ticks(ax)
    _band_legend(ax, n_seeds, fontsize=8)
    fig.suptitle(title)
    _margins(fig)
    return _save(fig, path, fmt, dpi, "population_gain")


def threshold_dynamics(dynamics_by_mode: dict, path, title="Adaptive thresholds over one test sample",
                       *, fmt=None, dpi=None):
    """``{mode: stlsim.analysis.threshold_dynamics(...)}``: per mode one column, per neuron one
    panel with the membrane m_t before the reset (grey), the effective threshold
    theta + beta a_t (coloured), the static theta (dashed) and the neuron's spikes (ticks on top);
    a last panel shows the layer's mean effective threshold."""
    plt = _pyplot()
    modes = list(dynamics_by_mode)
    n_rows = max(len(d["neurons"]) for d in dynamics_by_mode.values()) + 1
    fig, axes = plt.subplots(n_rows, len(modes), figsize=(max(6.5, 4.2 * len(modes)), 1.3 * n_rows + 1.2),
                             sharex=True, squeeze=False)
    for c, mode in enumerate(modes):
        d = dynamics_by_mode[mode]
        color = MODE_COLORS.get(mode, "C0")
        T = d["theta_eff"].shape[0]
        t = np.arange(1, T + 1)
        for r in range(n_rows - 1):
            ax = axes[r][c]
            if r >= len(d["neurons"]):
                ax.axis("off")
                continue
            ax.plot(t, d["membrane"][:, r], color="0.6", lw=0.8, label="membrane m_t (before reset)")
            ax.plot(t, d["theta_eff"][:, r], color=color, lw=1.4, label="theta + beta a_t")
            ax.axhline(d["theta"][r], color=color, ls="--", lw=0.8, label="theta")
            top = max(float(np.max(d["theta_eff"][:, r])), float(np.max(d["membrane"][:, r])))
            steps = t[d["spikes"][:, r] > 0.5]
            ax.plot(steps, np.full(steps.shape, top * 1.08 if top > 0 else 0.1), "|", color="k", ms=6,
                    label="spike")
            ax.set_ylabel(f"neuron {d['neurons'][r]}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.text(1.0, 1.0, f"beta {d['beta'][r]:.2g}, rho {d['rho'][r]:.3g}, {len(steps)} spikes",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=7)
        axes[0][c].set_title(f"{mode.upper()}: layer {d['layer'] + 1}", fontsize=9, pad=12)
        ax = axes[-1][c]
        ax.plot(t, d["theta_eff_mean"], color=color, lw=1.4)
        ax.set_ylabel("layer mean\ntheta + beta a_t", fontsize=8)
        ax.set_xlabel("time step")
        ax.tick_params(labelsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(title)
    _margins(fig, bottom=0.1, top=0.9, left=0.14)
    return _save(fig, path, fmt, dpi, "threshold_dynamics")
