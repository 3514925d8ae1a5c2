"""Every figure of stlsim (matplotlib, imported when a function here is first called).

Every function takes plain results (dicts/arrays), writes one figure to ``path`` and
returns the path it wrote; nothing here is imported by ``import stlsim``.

* this module: the training figures of ``stlsim compare`` (curves, firing rates,
  threshold distributions, spike raster);
* ``stlsim.plot.analysis``: the figures of ``stlsim report`` (``stlsim.analysis`` results).

Every function also takes ``fmt`` and ``dpi``:

fmt : {"png", "pdf", "svg"} or None
    The file format. None takes it from the suffix of ``path`` (PNG for any other suffix);
    a format given here replaces that suffix (``curves.png`` with ``fmt="pdf"`` writes
    ``curves.pdf``), so a caller can keep its file names and choose the format.
dpi : float or None
    Resolution of a PNG (``dpi=300`` for print); None is ``DEFAULT_DPI``. PDF and SVG are
    vector files: only their embedded images depend on it.

Shaded bands are one sample standard deviation over seeds either side of the mean (drawn
when there are two seeds or more); every figure says so in its legend.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["training_curves", "firing_rates", "threshold_distributions", "spike_raster", "FORMATS",
           "DEFAULT_DPI"]

MODE_COLORS = {"stl": "#c0392b", "sl": "#2471a3", "tl": "#229954", "ann": "#7d3c98"}
FORMATS = ("png", "pdf", "svg")
DEFAULT_DPI = 150
BAND_LABEL = "shaded: mean +- 1 SD over seeds"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_path(path, fmt=None, owner: str = "plot") -> tuple:
    """``(path, fmt)`` to write: ``fmt`` checked, or taken from ``path``'s suffix (PNG by
    default); a given ``fmt`` replaces an image suffix of ``path`` or is appended."""
    from .._checks import check_choice

    path = os.fspath(path)
    stem, suffix = os.path.splitext(path)
    suffix = suffix.lower().lstrip(".")
    if fmt is None:
        return path, (suffix if suffix in FORMATS else "png")
    check_choice(fmt, "fmt", FORMATS, owner)
    if suffix == fmt:
        return path, fmt
    if suffix in FORMATS or suffix in ("jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp"):
        return f"{stem}.{fmt}", fmt
    return f"{path}.{fmt}", fmt


def _save(fig, path, fmt=None, dpi=None, owner: str = "plot", tight: bool = True):
    """Write ``fig`` atomically as ``fmt`` at ``dpi``; close it; return the path written.

    ``tight=False`` keeps the figure's own margins (a tight bounding box draws it twice)."""
    from .._checks import check_real
    from .._io import atomic_path

    try:
        path, fmt = figure_path(path, fmt, owner)
        dpi = DEFAULT_DPI if dpi is None else check_real(dpi, "dpi", low=10, high=2400, owner=owner)
        with atomic_path(path, suffix="." + fmt) as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt, **({"bbox_inches": "tight"} if tight else {}))
    finally:
        _pyplot().close(fig)      # a long-lived process draws many: pyplot keeps every open figure
    return str(path)


def _integer_ticks(ax, axis: str = "x"):
    """Ticks at whole numbers only (epochs, time steps): no 1.5 epochs on a short run."""
    from matplotlib.ticker import MaxNLocator

    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(integer=True))


def mean_sd(values):
    """Mean and sample standard deviation (ddof=1) over the first axis; SD is 0 for one row."""
    values = np.asarray(values, dtype=float)
    sd = values.std(axis=0, ddof=1) if values.shape[0] > 1 else np.zeros(values.shape[1:])
    return values.mean(axis=0), sd


def _band_legend(ax, n_seeds: int, **kwargs):
    """The legend of ``ax``, plus an entry naming the shaded band when there is one."""
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    if n_seeds > 1:
        handles.append(Patch(facecolor="0.5", alpha=0.25))
        labels.append(BAND_LABEL.replace("seeds", f"{n_seeds} seeds"))
    return ax.legend(handles, labels, **kwargs)


def training_curves(runs_by_mode: dict, path, title="STL vs SL vs TL", *, fmt=None, dpi=None):
    """Test accuracy and training loss per epoch, mean +- SD over seeds, per mode (the ANN too).

    Parameters
    ----------
    runs_by_mode : dict of str to list of dict
        Per mode ("stl", "sl", "tl", "ann"), one run result per seed: dicts with a
        ``"history"`` holding ``"epoch"``, ``"test_accuracy"`` and ``"train_loss"`` per epoch.
    path : str or os.PathLike
        Where to write the figure.
    title : str
        The figure's title.
    fmt : {"png", "pdf", "svg"}, optional
        The file format; None takes it from ``path`` (see the module docstring).
    dpi : float, optional
        Resolution of a PNG; None is ``DEFAULT_DPI`` (150). ``dpi=300`` for print.

    Returns
    -------
    str
        The path written (``path`` with the suffix of ``fmt``).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    n_seeds = max(len(runs) for runs in runs_by_mode.values())
    for mode, runs in runs_by_mode.items():
        epochs = runs[0]["history"]["epoch"]
        color = MODE_COLORS.get(mode)
        for ax, key in ((axes[0], "test_accuracy"), (axes[1], "train_loss")):
            mean, sd = mean_sd([run["history"][key] for run in runs])
            ax.plot(epochs, mean, color=color, marker="o" if len(epochs) < 12 else None, ms=3,
                    label=f"{mode.upper()} (mean of {len(runs)} seed{'s' if len(runs) > 1 else ''})")
            if len(runs) > 1:
                ax.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
    for ax, label in ((axes[0], "test accuracy"), (axes[1], "training loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        _integer_ticks(ax)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(0, 1)
    axes[0].set_title("test accuracy after each epoch", fontsize=10)
    axes[1].set_title("training loss", fontsize=10)
    _band_legend(axes[0], n_seeds, fontsize=8, loc="lower right")
    fig.suptitle(title)
    return _save(fig, path, fmt, dpi, "training_curves")


def firing_rates(runs_by_mode: dict, path, title="Firing rate per layer (test set)", *, fmt=None, dpi=None):
    """Per-layer firing rate over epochs, mean +- SD over seeds, one panel per spiking mode.

    Parameters
    ----------
    runs_by_mode : dict of str to list of dict
        As for ``training_curves``, spiking modes only (no "ann"); each run's
        ``history["firing_rate"]`` is (epochs, layers).
    path : str or os.PathLike
        Where to write the figure.
    title : str
        The figure's title.
    fmt : {"png", "pdf", "svg"}, optional
        The file format; None takes it from ``path`` (see the module docstring).
    dpi : float, optional
        Resolution of a PNG; None is ``DEFAULT_DPI`` (150). ``dpi=300`` for print.

    Returns
    -------
    str
        The path written (``path`` with the suffix of ``fmt``).
    """
    plt = _pyplot()
    modes = list(runs_by_mode)
    fig, axes = plt.subplots(1, len(modes), figsize=(4 * len(modes), 3.6), sharey=True, squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("viridis")
    n_seeds = 1
    for ax, mode in zip(axes[0], modes):
        runs = runs_by_mode[mode]
        n_seeds = max(n_seeds, len(runs))
        rates = np.array([run["history"]["firing_rate"] for run in runs], dtype=float)  # (S, E, L)
        epochs = runs[0]["history"]["epoch"]
        n_layers = rates.shape[2]
        for layer in range(n_layers):
            color = cmap(0.85 * layer / max(n_layers - 1, 1))
            mean, sd = mean_sd(rates[:, :, layer])
            name = f"layer {layer + 1}" + (" (output)" if layer == n_layers - 1 and n_layers > 1 else "")
            ax.plot(epochs, mean, color=color, marker="o" if len(epochs) < 12 else None, ms=3, label=name)
            if len(runs) > 1:
                ax.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
        ax.set_title(f"{mode.upper()} ({len(runs)} seed{'s' if len(runs) > 1 else ''})", fontsize=10)
        ax.set_xlabel("epoch")
        _integer_ticks(ax)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("firing rate (spikes / neuron / step)")
    _band_legend(axes[0][0], n_seeds, fontsize=8)
    fig.suptitle(title)
    return _save(fig, path, fmt, dpi, "firing_rates")


def threshold_panel(ax, init, final, mode: str, layer: int):
    """One histogram panel: thresholds at init (grey) and trained (the mode's colour).

    Equal initial thresholds (the usual case) are one dashed line rather than a bar that
    would dwarf the trained histogram; the bins span the values with a margin proportional
    to their spread, so that a small change is still visible."""
    init, final = np.ravel(init), np.ravel(final)
    lo, hi = min(init.min(), final.min()), max(init.max(), final.max())
    pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1e-3)
    bins = np.linspace(lo - pad, hi + pad, 42)      # 41 bins: one is centred on equal values
    if np.ptp(init) == 0:
        ax.axvline(init[0], color="0.35", ls="--", lw=1.2, label=f"init (all {init[0]:.3g})")
    else:
        ax.hist(init, bins=bins, color="0.6", label="init")
    ax.hist(final, bins=bins, color=MODE_COLORS.get(mode), alpha=0.75, label=f"trained ({mode.upper()})")
    ax.set_xlim(bins[0], bins[-1])
    _integer_ticks(ax, "y")                                      # counts of neurons
    ax.set_title(f"{mode.upper()} layer {layer + 1}", fontsize=9)


def threshold_distributions(thetas_by_mode: dict, path, title="Thresholds at init and after training (one seed)",
                            *, fmt=None, dpi=None):
    """Histograms of thresholds per layer: init (grey) and trained, one row per mode.

    Every row has its own legend (the trained colour is the mode's); counts are neurons
    (per-position thresholds of a conv layer count once each).

    Parameters
    ----------
    thetas_by_mode : dict of str to dict
        ``thetas_by_mode[mode]`` is ``{"init": [array per layer], "final": [array per layer]}``.
    path : str or os.PathLike
        Where to write the figure.
    title : str
        The figure's title.
    fmt : {"png", "pdf", "svg"}, optional
        The file format; None takes it from ``path`` (see the module docstring).
    dpi : float, optional
        Resolution of a PNG; None is ``DEFAULT_DPI`` (150). ``dpi=300`` for print.

    Returns
    -------
    str
        The path written (``path`` with the suffix of ``fmt``).
    """
    plt = _pyplot()
    modes = list(thetas_by_mode)
    n_layers = len(next(iter(thetas_by_mode.values()))["final"])
    fig, axes = plt.subplots(len(modes), n_layers, figsize=(3.8 * n_layers, 2.5 * len(modes) + 0.6),
                             squeeze=False, layout="constrained")
    for r, mode in enumerate(modes):
        for layer in range(n_layers):
            ax = axes[r][layer]
            threshold_panel(ax, thetas_by_mode[mode]["init"][layer], thetas_by_mode[mode]["final"][layer],
                            mode, layer)
            ax.tick_params(labelsize=8)
            ax.set_ylabel("neurons (count)", fontsize=8)
            if layer == 0:
                ax.legend(fontsize=7, loc="upper left")
            ax.set_xlabel("threshold theta", fontsize=8)
    fig.suptitle(title)
    return _save(fig, path, fmt, dpi, "threshold_distributions")


def spike_raster(record, path, sample: int = 0, title="Spikes of one test sample, every layer", *, fmt=None,
                 dpi=None):
    """Raster of one sample through every spiking layer of a ``Record`` (time steps from 1).

    Parameters
    ----------
    record : Record
        What ``Network.forward`` returned (dense spikes, ``record="all"``).
    path : str or os.PathLike
        Where to write the figure.
    sample : int, default 0
        Which sample of the batch.
    title : str
        The figure's title.
    fmt : {"png", "pdf", "svg"}, optional
        The file format; None takes it from ``path`` (see the module docstring).
    dpi : float, optional
        Resolution of a PNG; None is ``DEFAULT_DPI`` (150). ``dpi=300`` for print.

    Returns
    -------
    str
        The path written (``path`` with the suffix of ``fmt``).
    """
    plt = _pyplot()
    n = len(record.spikes)
    fig, axes = plt.subplots(n, 1, figsize=(7, 1.2 + 1.6 * n), sharex=True, squeeze=False, layout="constrained")
    n_steps = record.spikes[0].shape[0]
    for l, spikes in enumerate(record.spikes):
        s = (spikes[:, sample].reshape(spikes.shape[0], -1) > 0.5)          # (T, neurons)
        ax = axes[l][0]
        # one cell per (step, neuron), black where it spiked: exact for a few steps or many
        ax.imshow(s.T, aspect="auto", cmap="Greys", vmin=0, vmax=1, origin="lower",
                  interpolation="nearest" if s.shape[1] <= 1000 else "antialiased",
                  extent=(0.5, n_steps + 0.5, -0.5, s.shape[1] - 0.5))
        ax.set_ylabel(f"layer {l + 1}\nneuron index")
        ax.text(1.0, 1.0, f"{int(s.sum())} spikes in {s.size} neuron-steps (black: spike)", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7)
    axes[-1][0].set_xlabel("time step")
    axes[-1][0].set_xlim(0.5, n_steps + 0.5)
    _integer_ticks(axes[-1][0])
    fig.suptitle(title)
    return _save(fig, path, fmt, dpi, "spike_raster")
