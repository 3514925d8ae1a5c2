"""Firing rates and thresholds over training, learned thresholds, signal propagation depth.

Inputs are the outputs of ``stlsim compare`` (``results.json`` and one HDF5 record per
run, ``docs/results.md``): the per-epoch test-set firing rate of every spiking layer
(spikes per neuron per step) and the mean/std of its thresholds are in each run's
history; the thresholds themselves (init and trained) in its record.

Rate stability, per mode and layer, over seeds: the final rate, its range over the
epochs after the first (``band``), and ``drift``: the largest relative change of the
rate between consecutive epochs in the second half of training. A layer whose rate is
below ``SILENT`` at the end has stopped passing signal.

Signal propagation depth (``propagation_depth``): dense networks with 1..7 hidden
layers of equal width (2..8 spiking layers, output included) are trained briefly in
each mode; on the test set we measure every layer's firing rate. Reported per depth:
``rate_first`` (first spiking layer), ``rate_deepest_hidden`` (last hidden layer),
``rate_output``, the ratio deepest hidden / first, the fraction of test samples whose
output layer stays silent for all T steps (no decision possible), and accuracy.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from .._checks import fail

__all__ = ["load_run", "network_from_record", "rates_over_training", "thresholds_over_training",
           "rate_stability", "learned_thresholds", "propagation_depth", "threshold_dynamics",
           "adaptive_layers", "SILENT"]

SILENT = 1e-3


# ------------------------------------------------------------------------- run dirs --
def load_run(run_dir) -> dict:
    """``results.json`` of a compare run plus the record paths: ``{"results", "records":
    {mode: [path per seed]}, "dir"}``."""
    path = os.path.join(run_dir, "results.json")
    if not os.path.isfile(path):
        raise fail("run_dir", "a directory written by `stlsim compare` (with results.json)",
                   repr(str(run_dir)), "load_run", FileNotFoundError)
    with open(path) as f:
        results = json.load(f)
    records = {}
    for mode, summary in results["modes"].items():
        paths = [os.path.join(run_dir, f"{mode}_seed{seed}.h5") for seed in summary["seeds"]]
        records[mode] = [p for p in paths if os.path.isfile(p)]
    return {"results": results, "records": records, "dir": str(run_dir)}


def network_from_record(record_path, input_shape, n_classes: int, backend=None):
    """Rebuild a trained network from its run record (parameters at the end of the run)."""
    from ..train import NetConfig, build_network
    from ..train.records import load_record

    rec = load_record(record_path)
    fields = {f.name for f in dataclasses.fields(NetConfig)}
    netcfg = NetConfig(**{k: v for k, v in rec["network"].items() if k in fields})
    net = build_network(netcfg, tuple(input_shape), n_classes, seed=int(rec["config"]["seed"]),
                        backend=backend)
    for key, value in rec["params"].items():
        # BatchNorm running estimates are stored next to the parameters as "buffer:<name>".
        store, name = (net.buffers, key[len("buffer:"):]) if key.startswith("buffer:") else (net.params, key)
        if name not in store or store[name].shape != np.shape(value):
            raise fail("record_path", f"a record of this network (entry {key!r})",
                       f"shape {np.shape(value)}", "network_from_record")
        store[name][...] = value
    return net, rec


def _history(results, key) -> dict:
    out = {}
    for mode, summary in results["modes"].items():
        runs = [np.asarray(h[key], dtype=float) for h in summary["history_per_seed"]]
        n = min(len(r) for r in runs)
        out[mode] = np.stack([r[:n] for r in runs])
    return out


def rates_over_training(results) -> dict:
    """``{mode: array (seeds, epochs, layers)}`` of test-set firing rates."""
    return _history(results, "firing_rate")


def thresholds_over_training(results) -> dict:
    """``{mode: {"mean": (seeds, epochs, layers), "std": (seeds, epochs, layers)}}``."""
    means, stds = _history(results, "theta_mean"), _history(results, "theta_std")
    return {mode: {"mean": means[mode], "std": stds[mode]} for mode in means}


def rate_stability(rates: np.ndarray) -> dict:
    """Stability summary of one mode's rates (seeds, epochs, layers); see module docstring."""
    rates = np.asarray(rates, dtype=float)
    final = rates[:, -1, :]
    later = rates[:, 1:, :] if rates.shape[1] > 1 else rates
    half = rates[:, rates.shape[1] // 2:, :]
    if half.shape[1] > 1:
        change = np.abs(np.diff(half, axis=1)) / np.maximum(half[:, :-1, :], SILENT)
        drift = change.max(axis=1).mean(axis=0)
    else:
        drift = np.zeros(rates.shape[2])
    return {"final_mean": final.mean(axis=0).tolist(), "final_std": final.std(axis=0).tolist(),
            "band_low": later.min(axis=(0, 1)).tolist(), "band_high": later.max(axis=(0, 1)).tolist(),
            "drift": drift.tolist(), "silent_layers": int(np.sum(final.mean(axis=0) < SILENT))}


def learned_thresholds(run) -> dict:
    """``{mode: {"init": [array per layer], "final": [array per layer]}}``, all seeds'
    thresholds concatenated (from the records of ``load_run(...)``)."""
    from ..train.records import load_record

    out = {}
    for mode, paths in run["records"].items():
        init, final = None, None
        for path in paths:
            rec = load_record(path)
            names = sorted((k for k in rec["params"] if k.endswith(".theta") and not k.startswith("buffer:")),
                           key=lambda k: int(k.split(".")[0]))
            a = [np.ravel(rec["theta_init"][k]) for k in names]
            b = [np.ravel(rec["params"][k]) for k in names]
            init = a if init is None else [np.concatenate([u, v]) for u, v in zip(init, a)]
            final = b if final is None else [np.concatenate([u, v]) for u, v in zip(final, b)]
        if init is not None:
            out[mode] = {"init": init, "final": final}
    return out


# ------------------------------------------------------ adaptive thresholds over time --
def adaptive_layers(net) -> list:
    """Indices (in ``net.layers``) of the spiking layers with an adaptive threshold."""
    return [i for i in net.spiking_layers if net.neuron_in_use(i).adaptive]


def threshold_dynamics(net, x, layer: int | None = None, sample: int = 0, neurons=None, n_neurons: int = 4,
                       backend=None) -> dict:
    """The effective threshold theta_t = theta + beta a_t of an adaptive layer over one input.

    ``x`` is the network's time-major input (T, B, ...); ``layer`` an index of ``net.layers``
    (default: the first adaptive layer). The adaptation state follows (L5a) of
    ``docs/model.md``, a_1 = 0, a_{t+1} = rho a_t + s_t, from the layer's recorded spikes,
    with the trained beta and rho (``Network.neuron_in_use``). ``neurons``: which neurons
    (flat indices); default ``n_neurons`` spread evenly over the ranks of the spike counts of
    the neurons that spike on this sample, from the busiest to the quietest (ties: the lower
    index first). Returns ``{"layer", "neurons", "theta_eff" (T, k), "theta" (k,),
    "beta" (k,), "rho" (k,), "membrane" (T, k), m_t before the reset, "spikes" (T, k),
    "a" (T, k), "theta_eff_mean" (T,), the layer's mean over all its neurons}``.
    """
    adaptive = adaptive_layers(net)
    if not adaptive:
        raise fail("net", "a network with an adaptive layer (LIF(adaptation=...))", "none adaptive",
                   "threshold_dynamics")
    layer = adaptive[0] if layer is None else int(layer)
    if layer not in adaptive:
        raise fail("layer", f"the index of an adaptive layer ({adaptive})", repr(layer), "threshold_dynamics")
    record = net.forward(x, backend=backend)
    k = record.layer_index.index(layer)
    spikes = np.asarray(record.spikes[k], dtype=np.float64)
    T, B = spikes.shape[:2]
    if not 0 <= int(sample) < B:
        raise fail("sample", f"an index of the batch (0..{B - 1})", repr(sample), "threshold_dynamics")
    s = spikes[:, int(sample)].reshape(T, -1)
    m = np.asarray(record.membrane[k], dtype=np.float64)[:, int(sample)].reshape(T, -1)
    n = s.shape[1]
    neuron = net.neuron_in_use(layer)
    beta = np.broadcast_to(np.asarray(neuron.adaptation.beta, np.float64).reshape(-1), (n,))
    rho = np.broadcast_to(np.asarray(neuron.adaptation.rho, np.float64).reshape(-1), (n,))
    theta = np.broadcast_to(np.asarray(net.params[f"{layer}.theta"], np.float64).reshape(-1), (n,)) \
        if np.size(net.params[f"{layer}.theta"]) in (1, n) else None
    if theta is None:
        raise fail("net", "thresholds per neuron or per layer", "another sharing", "threshold_dynamics")
    a = np.zeros((T, n))
    for t in range(1, T):                                   # (L5a): a_1 = 0, a_{t+1} = rho a_t + s_t
        a[t] = rho * a[t - 1] + s[t - 1]
    theta_eff = theta + beta * a                            # (L3v)
    if neurons is None:          # spread over the active neurons' spike counts, busiest first
        counts = s.sum(axis=0)
        order = np.lexsort((np.arange(n), -counts))
        active = order[counts[order] > 0]
        pool = active if len(active) >= min(int(n_neurons), n) else order
        k = min(int(n_neurons), len(pool))
        neurons = pool[np.unique(np.round(np.linspace(0, len(pool) - 1, k)).astype(np.int64))]
    neurons = np.asarray(neurons, dtype=np.int64).reshape(-1)
    if neurons.size == 0 or neurons.min() < 0 or neurons.max() >= n:
        raise fail("neurons", f"indices of the layer's {n} neurons", repr(neurons.tolist()), "threshold_dynamics")
    return {"layer": layer, "neurons": neurons.tolist(), "theta_eff": theta_eff[:, neurons],
            "theta": theta[neurons].copy(), "beta": beta[neurons].copy(), "rho": rho[neurons].copy(),
            "membrane": m[:, neurons], "spikes": s[:, neurons], "a": a[:, neurons],
            "theta_eff_mean": theta_eff.mean(axis=1)}


# ---------------------------------------------------------------- propagation depth --
def propagation_depth(data, *, depths=range(2, 9), modes=("stl", "sl", "tl"), seeds=(0, 1),
                      width: int = 128, epochs: int = 5, netcfg=None, trainconfig=None,
                      progress=False, log=None) -> dict:
    """Train dense nets of ``depths`` spiking layers in each mode; measure rates per layer.

    ``netcfg`` / ``trainconfig``: ``NetConfig`` / ``TrainConfig`` templates (hidden sizes,
    mode, seed and epochs are set here). Returns ``{"depths", "config", "modes": {mode:
    {"rates": [per depth: (seeds, layers) list], "rates_init": [...], "rate_first",
    "rate_deepest_hidden", "rate_output", "ratio", "silent_output_fraction",
    "accuracy": (seeds, depths) lists}}}``.
    """
    from ..readout import decide
    from ..train import NetConfig, TrainConfig, build_network, train
    from ..data.encoding import encode
    from ..data.encoding import shape_inputs

    netcfg = NetConfig() if netcfg is None else netcfg
    trainconfig = TrainConfig() if trainconfig is None else trainconfig
    depths = [int(d) for d in depths]
    if min(depths) < 2:
        raise fail("depths", "spiking-layer counts >= 2 (one hidden layer and the output)",
                   repr(depths), "propagation_depth")
    x_test = data.x_test
    out = {"depths": depths, "width": width, "epochs": epochs, "seeds": list(seeds),
           "config": {"network": dataclasses.asdict(netcfg),
                      "training": dataclasses.asdict(trainconfig)}, "modes": {}}

    def layer_rates(net, seed):
        x = shape_inputs(net, x_test)
        rec = net.forward(encode(x, trainconfig.timesteps, trainconfig.encoding,
                                 np.random.default_rng([seed, 7]), net.dtype), backend=trainconfig.backend)
        silent = float(np.mean(rec.spikes[-1].reshape(rec.spikes[-1].shape[0], x.shape[0], -1).sum(axis=(0, 2)) == 0))
        accuracy = float(np.mean(decide(rec.rates) == data.y_test))
        return rec.firing_rates, silent, accuracy

    for mode in modes:
        m = {k: [] for k in ("rates", "rates_init", "rate_first", "rate_deepest_hidden", "rate_output",
                             "ratio", "silent_output_fraction", "accuracy")}
        for depth in depths:
            cfg = dataclasses.replace(netcfg, hidden=[width] * (depth - 1))
            rows = {k: [] for k in m}
            for seed in seeds:
                net = build_network(cfg, data.input_shape, data.n_classes, seed=seed, backend=trainconfig.backend)
                init_rates, _, _ = layer_rates(net, seed)
                config = dataclasses.replace(trainconfig, mode=mode, seed=seed, epochs=epochs)
                train(net, data, config, progress=progress, netcfg=cfg)
                rates, silent, accuracy = layer_rates(net, seed)
                rows["rates"].append(rates)
                rows["rates_init"].append(init_rates)
                rows["rate_first"].append(rates[0])
                rows["rate_deepest_hidden"].append(rates[-2])
                rows["rate_output"].append(rates[-1])
                rows["ratio"].append(rates[-2] / rates[0] if rates[0] > 0 else 0.0)
                rows["silent_output_fraction"].append(silent)
                rows["accuracy"].append(accuracy)
                if log:
                    log(f"depth {depth} {mode.upper()} seed {seed}: acc {accuracy:.3f} rates "
                        + " ".join(f"{r:.3f}" for r in rates))
            for key, value in rows.items():
                m[key].append(value)
        # scalar metrics as (seeds, depths)
        for key in ("rate_first", "rate_deepest_hidden", "rate_output", "ratio",
                    "silent_output_fraction", "accuracy"):
            m[key] = np.array(m[key]).T.tolist()
        out["modes"][mode] = m
    return out
