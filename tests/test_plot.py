"""The figures of stlsim.plot and stlsim.plot.analysis: formats, resolution, and what a
reader needs on them (integer epoch ticks, labelled axes, titles that do not collide,
bands named in the legend). Drawn from small synthetic results."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stlsim import plot  # noqa: E402
from stlsim.plot import analysis as aplot  # noqa: E402

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF", "svg": b"<?xml"}


def _runs(n_seeds=3, n_epochs=3, n_layers=2, seed=0):
    rng = np.random.default_rng(seed)
    return [{"history": {"epoch": list(range(1, n_epochs + 1)),
                         "test_accuracy": list(rng.uniform(0.2, 0.9, n_epochs)),
                         "train_loss": list(rng.uniform(0.05, 0.1, n_epochs)),
                         "firing_rate": rng.uniform(0.05, 0.3, (n_epochs, n_layers)).tolist()}}
            for _ in range(n_seeds)]


def _thetas(n_layers=2, seed=0):
    rng = np.random.default_rng(seed)
    return {"init": [np.ones(20) for _ in range(n_layers)],       # 20 neurons: counts of a few each
            "final": [1 + 0.01 * rng.standard_normal(20) for _ in range(n_layers)]}


class _Record:
    def __init__(self):
        rng = np.random.default_rng(1)
        self.spikes = [(rng.random((8, 2, 30)) < 0.2).astype(float), (rng.random((8, 2, 20)) < 0.1).astype(float)]


def _main_figures(tmp_path, **kw):
    """The four figures of `stlsim compare`, each drawn once: {name: path written}."""
    runs = {"stl": _runs(seed=0), "sl": _runs(seed=1), "tl": _runs(seed=2)}
    thetas = {"stl": _thetas(seed=0), "sl": {"init": _thetas()["init"], "final": _thetas()["init"]},
              "tl": _thetas(seed=2)}
    return {"curves": plot.training_curves(runs, tmp_path / "curves.png", **kw),
            "firing_rates": plot.firing_rates(runs, tmp_path / "firing_rates.png", **kw),
            "thresholds": plot.threshold_distributions(thetas, tmp_path / "thresholds.png", **kw),
            "raster": plot.spike_raster(_Record(), tmp_path / "raster_stl.png", **kw)}


def _analysis_figures(tmp_path, **kw):
    rng = np.random.default_rng(0)
    modes = ("stl", "sl")
    levels = [0.0, 0.1, 0.2]
    return [
        aplot.rates_over_training({m: rng.uniform(0, 0.3, (3, 4, 2)) for m in modes}, tmp_path / "rates.png", **kw),
        aplot.thresholds_over_training({m: {"mean": 1 + 0.01 * rng.random((3, 4, 2)),
                                            "std": 0.01 * rng.random((3, 4, 2))} for m in modes},
                                       tmp_path / "theta.png", **kw),
        aplot.threshold_histograms({m: _thetas() for m in modes}, tmp_path / "theta_hist.png", **kw),
        aplot.noise_curves({"gaussian": {"levels": levels, "modes": {m: {"per_seed": rng.random((3, 3))}
                                                                    for m in modes}}},
                           tmp_path / "noise.png", **kw),
        aplot.energy_per_layer({m: {"names": ["0", "1"], "snn_joules_per_layer": [1e-9, 2e-9],
                                    "ann_joules_per_layer": [3e-9, 4e-9]} for m in modes},
                               tmp_path / "energy.png", **kw),
        aplot.propagation_depth({"depths": [2, 3], "modes": {m: {
            "ratio": rng.random((3, 2)), "silent_output_fraction": rng.random((3, 2)), "accuracy": rng.random((3, 2)),
            "rates": [rng.random((3, 2)), rng.random((3, 3))], "rates_init": [rng.random((3, 2)), rng.random((3, 3))]}
            for m in modes}}, tmp_path / "depth.png", **kw),
        aplot.decision_rules({m: {"GJDF": [0.9, 0.92, 0.91], "max (P=1)": [0.8, 0.82, 0.85]} for m in modes},
                             tmp_path / "decisions.png", **kw),
        aplot.population_gain({m: {"P": [1, 2, 5], "per_seed": rng.random((3, 3))} for m in modes},
                              tmp_path / "gain.png", **kw),
    ]


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    return struct.unpack(">II", head[16:24])


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_every_plot_function_writes_the_format_asked_for(tmp_path, fmt):
    written = list(_main_figures(tmp_path, fmt=fmt).values()) + _analysis_figures(tmp_path, fmt=fmt)
    assert len(written) == 12
    for path in written:
        assert path.endswith("." + fmt), path              # the ".png" of the name is replaced
        with open(path, "rb") as f:
            assert f.read(len(MAGIC[fmt])) == MAGIC[fmt], path
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]     # no temporary file left


def test_the_format_follows_the_path_when_not_given(tmp_path):
    runs = {"stl": _runs()}
    assert plot.training_curves(runs, tmp_path / "c.svg").endswith("c.svg")
    assert plot.training_curves(runs, tmp_path / "c.pdf").endswith("c.pdf")
    assert plot.training_curves(runs, tmp_path / "c").endswith("c")          # no suffix: PNG
    with open(tmp_path / "c", "rb") as f:
        assert f.read(8) == MAGIC["png"]


def test_dpi_scales_a_png(tmp_path):
    runs = {"stl": _runs()}
    low = _png_size(plot.firing_rates(runs, tmp_path / "low.png", dpi=100))
    high = _png_size(plot.firing_rates(runs, tmp_path / "high.png", dpi=300))
    assert high[0] == pytest.approx(3 * low[0], rel=0.03) and high[1] == pytest.approx(3 * low[1], rel=0.03)


def test_a_bad_format_or_dpi_is_refused_with_the_one_message_shape(tmp_path):
    with pytest.raises(ValueError, match=r"`fmt` of `training_curves` must be one of 'png', 'pdf', 'svg'\. "
                                         r"Got 'jpg' instead\."):
        plot.training_curves({"stl": _runs()}, tmp_path / "c.png", fmt="jpg")
    with pytest.raises(ValueError, match=r"`dpi` of `noise_curves` must be"):
        aplot.noise_curves({"gaussian": {"levels": [0, 1], "modes": {"stl": {"per_seed": np.ones((2, 2))}}}},
                           tmp_path / "n.png", dpi=0)
    assert not list(tmp_path.iterdir())
    assert not plt.get_fignums()                      # the refused figures were closed too


def test_figures_are_written_with_the_users_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = plot.training_curves({"stl": _runs()}, tmp_path / "c.png")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o640


@pytest.fixture
def kept_figures(monkeypatch):
    """Keep the figures the plot functions close, to inspect them."""
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)
    yield lambda: [plt.figure(n) for n in plt.get_fignums()]
    monkeypatch.undo()
    plt.close("all")


def _overlap(a, b):
    return not (a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0)


def test_the_main_job_figures_read_well(tmp_path, kept_figures):
    """Integer epoch and step ticks on a 3-epoch run, every visible axis labelled, the
    suptitle clear of every panel title, and the shaded band named in a legend."""
    _main_figures(tmp_path)
    figures = kept_figures()
    assert len(figures) == 4
    for fig in figures:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        suptitle = fig.get_suptitle()
        assert suptitle
        title_box = fig._suptitle.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_title():
                assert not _overlap(title_box, ax.title.get_window_extent(renderer)), (suptitle, ax.get_title())
            xlabel = ax.get_xlabel() or (ax.get_shared_x_axes().get_siblings(ax) and
                                         any(o.get_xlabel() for o in ax.get_shared_x_axes().get_siblings(ax)))
            assert xlabel, (suptitle, ax.get_title())
            ylabel = ax.get_ylabel() or any(o.get_ylabel() for o in ax.get_shared_y_axes().get_siblings(ax))
            assert ylabel, (suptitle, ax.get_title())
            if ax.get_xlabel() in ("epoch", "time step"):
                lo, hi = ax.get_xlim()
                ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
                assert ticks and all(float(t).is_integer() for t in ticks), (suptitle, ticks)
    legends = [t.get_text() for fig in figures[:2] for ax in fig.axes if ax.get_legend()
               for t in ax.get_legend().get_texts()]
    assert any("SD over 3 seeds" in text for text in legends), legends
    hist = figures[2]
    assert all(ax.get_ylabel() == "neurons (count)" for ax in hist.axes)
    for ax in hist.axes:                                    # counts: whole numbers on the y axis
        lo, hi = ax.get_ylim()
        assert all(float(t).is_integer() for t in ax.get_yticks() if lo <= t <= hi), ax.get_yticks()
    assert sum(ax.get_legend() is not None for ax in hist.axes) == 3           # one per mode (row)


def test_the_band_is_not_named_for_one_seed(tmp_path, kept_figures):
    plot.training_curves({"stl": _runs(n_seeds=1)}, tmp_path / "c.png")
    (fig,) = kept_figures()
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["STL (mean of 1 seed)"]
