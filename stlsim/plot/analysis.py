"""Figures of the analyses (matplotlib, imported when a function here is called).

Each function takes the plain results of ``stlsim.analysis`` (dicts and arrays), writes
a PNG to ``path`` and returns the path, like the training figures of ``stlsim.plot``.
"""
from __future__ import annotations

import numpy as np

from . import MODE_COLORS, _pyplot, threshold_panel


def _save(fig, path):
    """Write a PNG atomically (no ``bbox_inches="tight"``: it draws every figure twice)."""
    from .._io import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    _pyplot().close(fig)
    return str(path)

__all__ = ["rates_over_training", "thresholds_over_training", "threshold_histograms", "noise_curves",
           "energy_per_layer", "propagation_depth", "decision_rules", "population_gain"]


def _margins(fig, bottom=0.16, top=0.84, left=None, wspace=0.25):
    """Fixed margins (cheap; ``tight_layout`` and tight bounding boxes redraw the figure)."""
    width = fig.get_size_inches()[0]
    fig.subplots_adjust(left=left if left is not None else min(0.12, 1.0 / width), right=0.98,
                        bottom=bottom, top=top, wspace=wspace)


def _integer_ticks(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _band(ax, x, values, color, label):
    values = np.asarray(values, dtype=float)
    mean, std = values.mean(axis=0), values.std(axis=0)
    ax.plot(x, mean, color=color, label=label, marker="o", ms=3)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2)


def rates_over_training(rates_by_mode: dict, path, title="Firing rate per layer over training (test set)"):
    """``{mode: (seeds, epochs, layers)}``: one panel per mode, mean +- std over seeds."""
    plt = _pyplot()
    modes = list(rates_by_mode)
    fig, axes = plt.subplots(1, len(modes), figsize=(4 * len(modes), 3.4), sharey=True, squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, mode in zip(axes[0], modes):
        rates = np.asarray(rates_by_mode[mode], dtype=float)
        epochs = np.arange(1, rates.shape[1] + 1)
        n_layers = rates.shape[2]
        for layer in range(n_layers):
            _band(ax, epochs, rates[:, :, layer], cmap(layer / max(n_layers - 1, 1)), f"layer {layer + 1}")
        ax.set_title(mode.upper())
        ax.set_xlabel("epoch")
        _integer_ticks(ax)
    axes[0][0].set_ylabel("spikes / neuron / step")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    _margins(fig)
    return _save(fig, path)


def thresholds_over_training(theta_by_mode: dict, path, title="Threshold mean (+- spread) per layer over training"):
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
            color = cmap(layer / max(mean.shape[1] - 1, 1))
            ax.plot(epochs, mean[:, layer], color=color, label=f"layer {layer + 1}", marker="o", ms=3)
            ax.fill_between(epochs, mean[:, layer] - spread[:, layer], mean[:, layer] + spread[:, layer],
                            color=color, alpha=0.15)
        ax.set_title(mode.upper())
        ax.set_xlabel("epoch")
        _integer_ticks(ax)
    axes[0][0].set_ylabel("theta")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    _margins(fig)
    return _save(fig, path)


def threshold_histograms(thetas_by_mode: dict, path, title="Learned thresholds (all seeds) vs init (grey)"):
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
    fig.suptitle(title)
    fig.subplots_adjust(hspace=0.55, wspace=0.3, left=0.08, right=0.97, bottom=0.06, top=0.9)
    return _save(fig, path)


_NOISE_LABELS = {"gaussian": "Gaussian noise sigma", "salt_pepper": "salt-and-pepper fraction",
                 "spike_delete": "input spikes deleted (prob.)", "spike_insert": "input spikes inserted (prob.)",
                 "event_drop": "events dropped (prob.)", "event_insert": "events inserted (x n)"}


def noise_curves(curves: dict, path, title="Accuracy under input noise (mean +- std over seeds)"):
    """``noise_curves`` output: one panel per noise kind, one line per mode."""
    plt = _pyplot()
    kinds = list(curves)
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.8 * len(kinds), 3.4), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        levels = curves[kind]["levels"]
        for mode, m in curves[kind]["modes"].items():
            _band(ax, levels, m["per_seed"], MODE_COLORS.get(mode), mode.upper())
        ax.set_xlabel(_NOISE_LABELS.get(kind, kind))
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    _margins(fig)
    return _save(fig, path)


def energy_per_layer(energy_by_mode: dict, path, title="Energy per inference, per synaptic layer"):
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
    return _save(fig, path)


def propagation_depth(depth: dict, path, title="Signal propagation vs depth (dense nets)"):
    """``propagation_depth`` output: deepest-hidden/first rate ratio, output silence and
    accuracy vs depth; per-layer rates of the deepest nets."""
    plt = _pyplot()
    depths = depth["depths"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    for mode, m in depth["modes"].items():
        color = MODE_COLORS.get(mode)
        _band(axes[0], depths, m["ratio"], color, mode.upper())
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
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    _margins(fig, wspace=0.35)
    return _save(fig, path)


def decision_rules(acc_by_mode: dict, path, title="Decision rules on the same spikes (GJDF ablations)"):
    """``{mode: {rule: [accuracy per seed]}}``: grouped bars, mean +- std."""
    plt = _pyplot()
    modes = list(acc_by_mode)
    rules = list(acc_by_mode[modes[0]])
    width = 0.8 / len(modes)
    fig, ax = plt.subplots(figsize=(max(6, 1.9 * len(rules)), 3.6))
    x = np.arange(len(rules))
    for k, mode in enumerate(modes):
        values = np.array([acc_by_mode[mode][r] for r in rules], dtype=float)      # (rules, seeds)
        ax.bar(x + k * width, values.mean(axis=1), width, yerr=values.std(axis=1), capsize=2,
               color=MODE_COLORS.get(mode), label=mode.upper())
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels([r.replace(" (", "\n(").replace(", ", ",\n") for r in rules], fontsize=8)
    ax.set_ylabel("test accuracy")
    lo = min(min(min(v) for v in acc_by_mode[m].values()) for m in modes)
    ax.set_ylim(max(0.0, lo - 0.1), 1.0)
    ax.legend(fontsize=8)
    fig.suptitle(title)
    _margins(fig, bottom=0.22)
    return _save(fig, path)


def population_gain(gain: dict, path, title="GJDF: accuracy with P output neurons per class vs P = 1"):
    """``{mode: {"P": [...], "per_seed": (len(P), seeds)}}`` accuracies: one line per mode."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for mode, g in gain.items():
        _band(ax, g["P"], np.asarray(g["per_seed"], dtype=float).T, MODE_COLORS.get(mode), mode.upper())
    ax.set_xlabel("population P (output neurons per class)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    _margins(fig)
    return _save(fig, path)
