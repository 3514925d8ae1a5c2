"""Every figure of stlsim (matplotlib, imported when a function here is first called).

Every function takes plain results (dicts/arrays), writes a PNG to ``path`` and
returns the path; nothing here is imported by ``import stlsim``.

* this module: the training figures of ``stlsim compare`` (curves, firing rates,
  threshold distributions, spike raster);
* ``stlsim.plot.analysis``: the figures of ``stlsim report`` (``stlsim.analysis`` results).
"""
from __future__ import annotations

import numpy as np

__all__ = ["training_curves", "firing_rates", "threshold_distributions", "spike_raster"]

MODE_COLORS = {"stl": "#c0392b", "sl": "#2471a3", "tl": "#229954", "ann": "#7d3c98"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    from .._io import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    _pyplot().close(fig)          # a long-lived process draws many: pyplot keeps every open figure
    return str(path)


def _mean_std(runs, key):
    values = np.array([run["history"][key] for run in runs], dtype=float)
    return values.mean(axis=0), values.std(axis=0)


def training_curves(runs_by_mode: dict, path, title="STL vs SL vs TL"):
    """Test accuracy and training loss per epoch, mean +- std over seeds, per mode (the ANN too)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for mode, runs in runs_by_mode.items():
        epochs = runs[0]["history"]["epoch"]
        color = MODE_COLORS.get(mode)
        for ax, key, label in ((axes[0], "test_accuracy", "test accuracy"), (axes[1], "train_loss", "training loss")):
            mean, std = _mean_std(runs, key)
            ax.plot(epochs, mean, color=color, label=f"{mode.upper()} (n={len(runs)})")
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
    axes[0].legend()
    axes[0].set_ylim(0, 1)
    fig.suptitle(title)
    return _save(fig, path)


def firing_rates(runs_by_mode: dict, path, title="Firing rate per layer (test set)"):
    """Per-layer firing rate over epochs, one panel per spiking mode (pass no "ann" runs)."""
    plt = _pyplot()
    modes = list(runs_by_mode)
    fig, axes = plt.subplots(1, len(modes), figsize=(4 * len(modes), 3.4), sharey=True, squeeze=False)
    for ax, mode in zip(axes[0], modes):
        runs = runs_by_mode[mode]
        rates = np.array([run["history"]["firing_rate"] for run in runs], dtype=float)  # (S, E, L)
        epochs = runs[0]["history"]["epoch"]
        for layer in range(rates.shape[2]):
            mean = rates[:, :, layer].mean(axis=0)
            ax.plot(epochs, mean, label=f"layer {layer + 1}")
        ax.set_title(mode.upper())
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("spikes / neuron / step")
    axes[0][0].legend()
    fig.suptitle(title)
    return _save(fig, path)


def threshold_panel(ax, init, final, mode: str, layer: int):
    """One histogram panel: thresholds at init (grey) and trained (the mode's colour)."""
    init, final = np.ravel(init), np.ravel(final)
    lo, hi = min(init.min(), final.min()), max(init.max(), final.max())
    bins = np.linspace(lo - 0.05, hi + 0.05, 40)
    ax.hist(init, bins=bins, color="0.6", label="init")
    ax.hist(final, bins=bins, color=MODE_COLORS.get(mode), alpha=0.75, label="trained")
    ax.set_title(f"{mode.upper()} layer {layer + 1}", fontsize=9)


def threshold_distributions(thetas_by_mode: dict, path, title="Thresholds at init and after training"):
    """Histograms of thresholds per layer: init (grey) and trained, one row per mode.

    ``thetas_by_mode[mode]`` is ``{"init": [arr per layer], "final": [arr per layer]}``.
    """
    plt = _pyplot()
    modes = list(thetas_by_mode)
    n_layers = len(next(iter(thetas_by_mode.values()))["final"])
    fig, axes = plt.subplots(len(modes), n_layers, figsize=(3.6 * n_layers, 2.6 * len(modes)), squeeze=False)
    for r, mode in enumerate(modes):
        for layer in range(n_layers):
            ax = axes[r][layer]
            threshold_panel(ax, thetas_by_mode[mode]["init"][layer], thetas_by_mode[mode]["final"][layer],
                            mode, layer)
            if r == len(modes) - 1:
                ax.set_xlabel("theta")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def spike_raster(record, path, sample: int = 0, title="Spikes of one test sample, every layer"):
    """Raster of one sample through every spiking layer of a ``Record``."""
    plt = _pyplot()
    n = len(record.spikes)
    fig, axes = plt.subplots(n, 1, figsize=(7, 1.2 + 1.6 * n), sharex=True, squeeze=False)
    for l, spikes in enumerate(record.spikes):
        s = spikes[:, sample].reshape(spikes.shape[0], -1)
        t, i = np.nonzero(s > 0.5)
        ax = axes[l][0]
        ax.scatter(t + 1, i, s=4, marker="|", color="k")
        ax.set_ylabel(f"layer {l + 1}\nneuron")
        ax.set_ylim(-0.5, s.shape[1] - 0.5)
    axes[-1][0].set_xlabel("time step")
    fig.suptitle(title)
    return _save(fig, path)
