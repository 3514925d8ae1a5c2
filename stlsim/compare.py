"""The main job: train STL, SL and TL side by side on the same data, seeds and network.

``run_comparison`` trains every (mode, seed), writes one HDF5 record per run, the
plots and ``results.json`` (schema in ``docs/results.md``), and returns the results.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np

from ._io import atomic_path, provenance

__all__ = ["run_comparison", "format_table", "RESULTS_SCHEMA_VERSION"]

RESULTS_SCHEMA_VERSION = 1


def _mode_summary(runs) -> dict:
    final_acc = [run["history"]["test_accuracy"][-1] for run in runs]
    best_acc = [max(run["history"]["test_accuracy"]) for run in runs]
    rates = np.array([run["history"]["firing_rate"][-1] for run in runs], dtype=float)
    theta_mean = np.array([run["history"]["theta_mean"][-1] for run in runs], dtype=float)
    theta_std = np.array([run["history"]["theta_std"][-1] for run in runs], dtype=float)
    return {
        "test_accuracy_mean": float(np.mean(final_acc)),
        "test_accuracy_std": float(np.std(final_acc)),
        "test_accuracy_per_seed": [float(a) for a in final_acc],
        "best_test_accuracy_per_seed": [float(a) for a in best_acc],
        "firing_rate_per_layer": rates.mean(axis=0).tolist(),
        "theta_mean_per_layer": theta_mean.mean(axis=0).tolist(),
        "theta_std_per_layer": theta_std.mean(axis=0).tolist(),
        "wall_time_s_per_seed": [float(run["wall_time"]) for run in runs],
        "seeds": [int(run["seed"]) for run in runs],
        "interrupted": any(run["interrupted"] for run in runs),
        "history_per_seed": [run["history"] for run in runs],
    }


def format_table(results: dict) -> str:
    """The comparison table printed at the end of ``stlsim compare``."""
    rows = ["mode | test accuracy (mean +- std) | per seed | firing rate per layer | theta mean per layer | time/seed",
            "-----|----------------------------|----------|-----------------------|----------------------|----------"]
    for mode, m in results["modes"].items():
        per_seed = " ".join(f"{a:.3f}" for a in m["test_accuracy_per_seed"])
        rates = " ".join(f"{r:.3f}" for r in m["firing_rate_per_layer"])
        thetas = " ".join(f"{t:.2f}" for t in m["theta_mean_per_layer"])
        wall = np.mean(m["wall_time_s_per_seed"])
        rows.append(f"{mode.upper():4} | {m['test_accuracy_mean']:.4f} +- {m['test_accuracy_std']:.4f}"
                    f"        | {per_seed} | {rates} | {thetas} | {wall:.1f}s")
    return "\n".join(rows)


def _train_here(data, netcfg, trainconfig, jobs, out_dir, progress):
    """(mode, seed, net, result) for each job, trained one after the other in this process."""
    from .train import build_network, train

    for mode, seed in jobs:
        net = build_network(netcfg, data.sample_shape, data.n_classes, seed=seed, backend=trainconfig.backend)
        config = dataclasses.replace(trainconfig, mode=mode, seed=seed)
        record_path = os.path.join(out_dir, f"{mode}_seed{seed}.h5")
        result = train(net, data, config, record_path=record_path, progress=progress, netcfg=netcfg)
        yield mode, seed, net, result


def run_comparison(data, netcfg, trainconfig, *, modes=("stl", "sl", "tl"), seeds=(0, 1, 2), out_dir="runs/compare",
                   progress=True, plots=True, log=print, max_workers: int = 1, scheduler: str = "local") -> dict:
    """Train every mode on every seed; write records, plots and results.json to ``out_dir``.

    ``max_workers`` > 1 trains the runs on that many Dask worker processes (``scheduler``:
    "local" for an embedded LocalCluster, or a scheduler's address; ``stlsim.sweep.runner``);
    each run depends on its seed only, so the results equal the serial ones bit for bit.
    """
    os.makedirs(out_dir, exist_ok=True)
    runs_by_mode = {mode: [] for mode in modes}
    thetas_by_mode = {}
    started = time.perf_counter()
    interrupted = False
    last_net = {}
    jobs = [(mode, seed) for mode in modes for seed in seeds]
    if max_workers > 1 and len(jobs) > 1:
        from .sweep.runner import train_on_workers

        trained = train_on_workers(data, netcfg, trainconfig, jobs, out_dir, progress=progress,
                                   max_workers=max_workers, scheduler=scheduler, log=log)
    else:
        trained = _train_here(data, netcfg, trainconfig, jobs, out_dir, progress)
    for mode, seed, net, result in trained:
        if result is None:                   # interrupted before this run finished
            interrupted = True
            break
        runs_by_mode[mode].append(dataclasses.asdict(result))
        if seed == seeds[0]:
            thetas_by_mode[mode] = {
                "init": [result.theta_init[f"{i}.theta"] for i in net.spiking_layers],
                "final": [net.params[f"{i}.theta"].copy() for i in net.spiking_layers]}
            last_net[mode] = net
        if result.interrupted:
            interrupted = True
            break
    runs_by_mode = {m: r for m, r in runs_by_mode.items() if r and r[0]["history"]["epoch"]}
    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "provenance": provenance(),
        "dataset": {"name": data.name, "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)),
                    "n_classes": int(data.n_classes), "input_shape": list(data.input_shape),
                    "source": str(getattr(data, "source", "")), "license": str(getattr(data, "license", ""))},
        "config": {"network": dataclasses.asdict(netcfg),
                   "training": {k: v for k, v in dataclasses.asdict(trainconfig).items() if k not in ("mode", "seed")},
                   "seeds": list(seeds), "modes": list(modes)},
        "modes": {mode: _mode_summary(runs) for mode, runs in runs_by_mode.items()},
        "total_wall_time_s": time.perf_counter() - started,
        "interrupted": interrupted,
        "figures": {},
    }
    if plots and runs_by_mode:
        from . import plot

        figs = results["figures"]
        figs["curves"] = plot.training_curves(runs_by_mode, os.path.join(out_dir, "curves.png"),
                                              title=f"STL vs SL vs TL on {data.name}")
        figs["firing_rates"] = plot.firing_rates(runs_by_mode, os.path.join(out_dir, "firing_rates.png"))
        thetas = {m: t for m, t in thetas_by_mode.items() if m in runs_by_mode}
        figs["thresholds"] = plot.threshold_distributions(thetas, os.path.join(out_dir, "thresholds.png"))
        if "stl" in last_net:
            from .data.encoding import encode
            from .train.loop import _shape_inputs

            net = last_net["stl"]
            x = _shape_inputs(net, data.x_test[:1], trainconfig.encoding == "frames")
            rec = net.forward(encode(x, trainconfig.timesteps, trainconfig.encoding,
                                     np.random.default_rng(0), net.dtype))
            figs["raster"] = plot.spike_raster(rec, os.path.join(out_dir, "raster_stl.png"),
                                               title=f"STL: spikes of test sample 0 (label {data.y_test[0]})")
        figs = {k: os.path.basename(v) for k, v in figs.items()}
        results["figures"] = figs
    with atomic_path(os.path.join(out_dir, "results.json")) as tmp:
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1, default=float)
    return results
