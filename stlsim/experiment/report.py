"""``stlsim report RUN_DIR``: a compare run (results.json + records) -> report.md + figures.

``analyze_run`` rebuilds every trained network from its record and measures, on the
run's test set (its first ``max_test`` samples): energy (SOPs and the equivalent ANN),
accuracy under input noise, and accuracy under the GJDF decision ablations. With the
histories in results.json (firing rates, thresholds) it checks the paper's claims one
by one (``check_claims``). ``write_report`` writes ``report.md``, ``analysis.json`` and
the figures next to each other (default: into RUN_DIR).

Verdict words: "holds" (every seed agrees), "mixed" (the mean agrees, not every seed),
"does not hold", "not measured".

A run with ANN baselines (``stlsim compare --modes ...,ann``) shows them in the accuracy
table only: firing rates, thresholds, energy, noise and decisions are spiking analyses, and
skip the ANN (the report says so in a note).
"""
from __future__ import annotations

import json
import os

import numpy as np

from .._checks import check_int, fail

__all__ = ["analyze_run", "check_claims", "write_report", "load_run_data", "gjdf_gain"]


# --------------------------------------------------------------------------- inputs --
def load_run_data(results: dict, spec: str | None = None):
    """The data set of a compare run, cut to the run's train/test sizes."""
    from ..data import load_dataset

    from ..data.event_datasets import is_event_spec, load_event_dataset

    info = results["dataset"]
    if spec is None:
        name, source = info["name"], info.get("source", "")
        if is_event_spec(name):          # an event or sequence set: its folder, when the run recorded one
            spec = f"{name}:{source}" if os.path.isdir(source) else name
        elif name == "digits":
            spec = "digits"
        elif name in ("fashion-mnist", "mnist", "cifar10") and os.path.isdir(source):
            spec = f"{name}:{source}"
        elif source.endswith(".npz"):
            spec = source
        else:
            spec = name
    if is_event_spec(spec):
        timesteps = results.get("config", {}).get("training", {}).get("timesteps")
        data = load_event_dataset(spec, timesteps)
    else:
        data = load_dataset(spec)
    n_train = min(int(info["n_train"]), data.n_train)
    n_test = min(int(info["n_test"]), data.n_test)
    return data.subset(n_train, n_test)


def _encoded_test(net, data, n, timesteps, encoding, seed=8):
    from ..data.encoding import encode, shape_inputs

    x = shape_inputs(net, data.x_test[:n], encoding == "frames")
    return encode(x, timesteps, encoding, np.random.default_rng([seed]), net.dtype)


def _per_seed_mean(values):
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std()), "per_seed": values.tolist()}


# ------------------------------------------------------------------------- analysis --
_SUMMARY_FIELDS = ("test_accuracy_mean", "test_accuracy_std", "test_accuracy_per_seed", "seeds",
                   "history_per_seed")
_HISTORY_FIELDS = ("epoch", "test_accuracy", "firing_rate", "theta_mean", "theta_std")
_ANN_HISTORY_FIELDS = ("epoch", "test_accuracy")     # the ReLU baseline has no spikes and no thresholds
ANN_NOTE = ("ann: the ReLU baseline of the same dense shape is in the accuracy table and nowhere else; "
            "firing rates, thresholds, energy, noise and decisions are spiking analyses and skip it")


def check_run_dir(run_dir) -> dict:
    """Read and check ``results.json`` of a compare run; errors name the file and the field.

    Mode keys must be learning modes and seeds non-negative integers (record names are
    built from them and must stay inside ``run_dir``); every summary and per-seed history
    must have the fields the report reads.
    """
    from .._io import inside
    from .compare import COMPARE_MODES

    path = os.path.join(os.fspath(run_dir), "results.json")
    if not os.path.isdir(run_dir) or not os.path.isfile(path):
        raise fail("run_dir", "a directory written by `stlsim compare` (with results.json)",
                   repr(str(run_dir)), "report", FileNotFoundError)
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"File {path!r} is not a readable results.json ({err}).") from None

    def bad(field, expected, got):
        return ValueError(f"File {path!r}: `{field}` must be {expected}. Got {got} instead.")

    if not isinstance(results, dict):
        raise bad("(top level)", "a JSON object", type(results).__name__)
    for key in ("config", "modes", "dataset"):
        if not isinstance(results.get(key), dict):
            raise bad(key, "an object", "no such entry" if key not in results else type(results[key]).__name__)
    training = results["config"].get("training")
    if not isinstance(training, dict) or "timesteps" not in training or "encoding" not in training:
        raise bad("config.training", "an object with timesteps and encoding", repr(training)[:80])
    if not results["modes"]:
        raise bad("modes", "a non-empty object (no run finished an epoch?)", "{}")
    for mode, summary in results["modes"].items():
        if mode not in COMPARE_MODES:
            raise bad("modes", f"keyed by the modes of stlsim compare ({', '.join(COMPARE_MODES)})",
                      f"the key {mode!r}")
        if not isinstance(summary, dict):
            raise bad(f"modes.{mode}", "an object", type(summary).__name__)
        for key in _SUMMARY_FIELDS:
            if key not in summary:
                raise bad(f"modes.{mode}.{key}", "present", "no such entry")
        seeds = summary["seeds"]
        if not isinstance(seeds, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                  for v in seeds):
            raise bad(f"modes.{mode}.seeds", "a list of non-negative integers", repr(seeds)[:80])
        for seed in seeds:
            inside(run_dir, f"{mode}_seed{seed}.h5", "the record")
        if not isinstance(summary["history_per_seed"], list) or len(summary["history_per_seed"]) != len(seeds):
            raise bad(f"modes.{mode}.history_per_seed", f"a list of {len(seeds)} histories",
                      repr(summary["history_per_seed"])[:80])
        for i, history in enumerate(summary["history_per_seed"]):
            for key in _ANN_HISTORY_FIELDS if mode == "ann" else _HISTORY_FIELDS:
                if not isinstance(history, dict) or not isinstance(history.get(key), list) or not history[key]:
                    raise bad(f"modes.{mode}.history_per_seed[{i}].{key}", "a non-empty list", "no such list")
        # Numbers a report states: accuracies and rates are fractions, spreads are not negative.
        unit = [("test_accuracy_mean", summary["test_accuracy_mean"]),
                ("test_accuracy_per_seed", summary["test_accuracy_per_seed"])]
        unit += [(f"history_per_seed[{i}].{key}", h.get(key)) for i, h in enumerate(summary["history_per_seed"])
                 for key in ("test_accuracy", "train_accuracy", "firing_rate") if key in h]
        for field, value in unit:
            if not _all_in(value, 0.0, 1.0):
                raise bad(f"modes.{mode}.{field}", "numbers in [0, 1]", repr(value)[:80])
        if not _all_in(summary["test_accuracy_std"], 0.0, 1.0):
            raise bad(f"modes.{mode}.test_accuracy_std", "a number in [0, 1]", repr(summary["test_accuracy_std"])[:80])
        if isinstance(summary["test_accuracy_per_seed"], list) and len(summary["test_accuracy_per_seed"]) != len(seeds):
            raise bad(f"modes.{mode}.test_accuracy_per_seed", f"{len(seeds)} accuracies (one per seed)",
                      repr(summary["test_accuracy_per_seed"])[:80])
    return results


def _all_in(value, low, high) -> bool:
    """Whether ``value`` (a number or nested lists of them; None for a missing one) lies in [low, high]."""
    if value is None:
        return True
    if isinstance(value, list):
        return all(_all_in(v, low, high) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


# Training options a record may hold with another value than results.json: where it was computed.
_WHERE_COMPUTED = ("backend", "eval_batch_size", "engine")


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def check_records(run: dict):
    """Each record in a slot of ``results.json`` is that slot's run: mode, seed, training
    configuration and network; errors name the record and the field."""
    from ..train.records import load_record

    results = run["results"]
    config = results.get("config", {})
    for mode, paths in run["records"].items():
        for path in paths:
            seed = int(os.path.basename(path)[len(f"{mode}_seed"):-len(".h5")])
            rec = load_record(path)
            attrs = rec["attrs"]
            got = {"mode": attrs.get("mode"), "seed": attrs.get("seed")}
            for field, want in (("mode", mode), ("seed", seed)):
                if got[field] != want:
                    raise fail(f"record {path!r}", f"the run of its slot ({mode} seed {seed})",
                               f"a record of {got['mode']} seed {got['seed']} ({field} differs)")
            for part, recorded in (("training", rec["config"]), ("network", rec["network"])):
                expected = config.get(part) or {}
                for key, value in expected.items():
                    if part == "training" and key in _WHERE_COMPUTED:
                        continue
                    if key in recorded and _plain(recorded[key]) != _plain(value):
                        raise fail(f"record {path!r}", f"a run of results.json's {part} ({key} {value!r})",
                                   f"a record with {key} {recorded[key]!r}")


def analyze_run(run_dir, *, data=None, dataset: str | None = None, max_test: int = 1000,
                noise: bool = True, noise_kinds=None, noise_levels=None, energy: bool = True,
                decisions: bool = True, energy_batch: int = 200, backend=None, log=None) -> dict:
    """Measure everything the report shows; returns a JSON-serialisable dict."""
    from ..analysis import dynamics, gjdf
    from ..analysis import noise as noise_mod
    from ..analysis.energy import energy as measure_energy

    log = log or (lambda *_: None)
    max_test = check_int(max_test, "max_test", low=1, owner="analyze_run")
    check_run_dir(run_dir)
    run = dynamics.load_run(run_dir)
    check_records(run)
    results = run["results"]
    training = results["config"]["training"]
    timesteps, encoding = int(training["timesteps"]), training["encoding"]
    out = {"run_dir": str(run_dir), "dataset": results["dataset"], "config": results["config"],
           "accuracy": {}, "rates": {}, "thresholds": {}, "energy": {}, "noise": {}, "decisions": {},
           "max_test": None, "notes": []}
    for mode, summary in results["modes"].items():
        out["accuracy"][mode] = {"mean": summary["test_accuracy_mean"], "std": summary["test_accuracy_std"],
                                 "per_seed": summary["test_accuracy_per_seed"]}
    if "ann" in results["modes"]:          # from here on: the spiking modes only
        log(f"report: {ANN_NOTE}")
        out["notes"].append(ANN_NOTE)
        results = {**results, "modes": {m: v for m, v in results["modes"].items() if m != "ann"}}
        run = {**run, "results": results, "records": {m: p for m, p in run["records"].items() if m != "ann"}}
    rates = dynamics.rates_over_training(results)
    thetas = dynamics.thresholds_over_training(results)
    for mode in rates:
        out["rates"][mode] = dynamics.rate_stability(rates[mode])
        out["rates"][mode]["per_epoch_mean"] = rates[mode].mean(axis=0).tolist()
        out["thresholds"][mode] = {"final_mean": thetas[mode]["mean"][:, -1].mean(axis=0).tolist(),
                                   "final_std": thetas[mode]["std"][:, -1].mean(axis=0).tolist()}
    learned = dynamics.learned_thresholds(run) if any(run["records"].values()) else {}
    for mode, t in learned.items():
        out["thresholds"][mode].update({
            "init_mean": [float(np.mean(a)) for a in t["init"]],
            "quantiles": [np.quantile(a, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist() for a in t["final"]],
            "negative_fraction": [float(np.mean(a <= 0)) for a in t["final"]]})
    out["_rates"], out["_thetas"], out["_learned"] = rates, thetas, learned
    if results["config"].get("network", {}).get("adaptation") and any(run["records"].values()):
        try:                              # adaptive thresholds over one test sample, seed 0 of each mode
            if data is None:
                data = load_run_data(results, dataset)
            out["_dynamics"] = {}
            for mode, paths in run["records"].items():
                if paths:
                    net, _ = dynamics.network_from_record(paths[0], data.sample_shape, data.n_classes,
                                                          backend=backend)
                    x = _encoded_test(net, data, 1, timesteps, encoding)
                    out["_dynamics"][mode] = dynamics.threshold_dynamics(net, x, backend=backend)
        except (OSError, ValueError, TypeError) as err:
            out["notes"].append(f"data set not loadable ({err}); adaptive thresholds not shown")

    if not (noise or energy or decisions) or not any(run["records"].values()):
        return out
    if data is None:
        try:
            data = load_run_data(results, dataset)
        except (OSError, ValueError, TypeError) as err:
            out["notes"].append(f"data set not loadable ({err}); energy, noise and decisions not measured")
            return out
    n = min(max_test, data.n_test)
    out["max_test"] = n
    x, y = data.x_test[:n], data.y_test[:n]
    nets = {}
    for mode, paths in run["records"].items():
        expected = len(run["results"]["modes"][mode]["seeds"])
        if len(paths) < expected:
            out["notes"].append(f"{mode}: {expected - len(paths)} of {expected} records are missing; "
                                "measured on the others")
        if not paths:
            continue
        nets[mode] = []
        for path in paths:
            net, rec = dynamics.network_from_record(path, data.sample_shape, data.n_classes, backend=backend)
            if net.buffers and not any(k.startswith("buffer:") for k in rec["params"]):
                out["notes"].append("these records hold no BatchNorm running estimates (written before "
                                    "stlsim stored them); BN layers use their initial estimates here")
            nets[mode].append(net)
    if energy:
        log("report: energy")
        for mode, mode_nets in nets.items():
            per_seed = []
            for net in mode_nets:
                inputs = _encoded_test(net, data, min(n, energy_batch), timesteps, encoding)
                per_seed.append(measure_energy(net, inputs, backend=backend).as_dict())
            out["energy"][mode] = {
                "per_seed": per_seed,
                "snn_joules": _per_seed_mean([e["snn_joules"] for e in per_seed]),
                "snn_joules_per_layer": np.mean([e["snn_joules_per_layer"] for e in per_seed], axis=0).tolist(),
                "sops_per_sample": _per_seed_mean([e["ops"]["sops_total"] / e["ops"]["batch_size"]
                                                   for e in per_seed]),
                "sops_per_sample_per_layer": np.mean([e["ops"]["sops_mean_per_sample"] for e in per_seed],
                                                     axis=0).tolist(),
                "ann_joules": per_seed[0]["ann_joules"], "ann_T_joules": per_seed[0]["ann_T_joules"],
                "ann_joules_per_layer": per_seed[0]["ann_joules_per_layer"],
                "ann_macs_per_layer": per_seed[0]["ops"]["ann_macs_per_layer"],
                "names": per_seed[0]["names"], "input_ops": per_seed[0]["ops"]["input_ops"],
                "energy_samples": per_seed[0]["ops"]["batch_size"]}
    if noise:
        log("report: noise")
        kinds = noise_kinds or [k for k in noise_mod.NOISE_KINDS
                                if encoding == "rate" or not k.startswith("spike")]
        out["noise"] = noise_mod.noise_curves(nets, x, y, kinds=kinds, levels=noise_levels, timesteps=timesteps,
                                              encoding=encoding, backend=backend)
    if decisions:
        log("report: decisions")
        for mode, mode_nets in nets.items():
            per_net = [gjdf.decision_accuracy(net, x, y, timesteps=timesteps, encoding=encoding, backend=backend)
                       for net in mode_nets]
            out["decisions"][mode] = {rule: [acc[rule] for acc in per_net] for rule in per_net[0]}
    return out


def gjdf_gain(results: dict, baseline: dict) -> dict:
    """GJDF gain: ``results`` (P > 1) vs ``baseline`` (a compare run with P = 1 on the same
    data and seeds), for the modes both have: ``{mode: {"P": [1, P], "per_seed": [[...], [...]]}}``."""
    p_run = int(results["config"]["network"]["population"])
    p_base = int(baseline["config"]["network"]["population"])
    if p_base != 1 or p_run <= 1:
        raise fail("baseline", "a run with population 1 compared with a run with population > 1",
                   f"populations {p_base} and {p_run}", "gjdf_gain")
    if results["config"]["seeds"] != baseline["config"]["seeds"] or \
            results["dataset"]["n_train"] != baseline["dataset"]["n_train"]:
        raise fail("baseline", "a run on the same data and seeds", "different seeds or training sets",
                   "gjdf_gain")
    return {mode: {"P": [1, p_run], "per_seed": [baseline["modes"][mode]["test_accuracy_per_seed"],
                                                  results["modes"][mode]["test_accuracy_per_seed"]]}
            for mode in results["modes"] if mode in baseline["modes"]}


# --------------------------------------------------------------------------- claims --
def _compare(a, b):
    """(mean difference, wins, n): a vs b per seed (paired by seed index)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = min(len(a), len(b))
    return float(a.mean() - b.mean()), int(np.sum(a[:n] > b[:n])), n


def _verdict(diff, wins, n):
    if diff > 0 and wins == n:
        return "holds"
    if diff > 0:
        return "mixed"
    return "does not hold"


def check_claims(analysis: dict, population_gain: dict | None = None) -> list:
    """One row per claim: ``{"claim", "verdict", "evidence"}``.

    ``population_gain``: ``{mode: {"P": [1, P], "per_seed": [[acc P=1 per seed], [acc P per seed]]}}``
    from separate trainings (``validation/claims.py``), for the GJDF claim.
    """
    rows = []
    acc = analysis["accuracy"]
    for other in ("sl", "tl"):
        if "stl" in acc and other in acc:
            diff, wins, n = _compare(acc["stl"]["per_seed"], acc[other]["per_seed"])
            rows.append({"claim": f"STL > {other.upper()} (test accuracy)", "verdict": _verdict(diff, wins, n),
                         "evidence": f"STL {acc['stl']['mean']:.4f} +- {acc['stl']['std']:.4f} vs "
                                     f"{other.upper()} {acc[other]['mean']:.4f} +- {acc[other]['std']:.4f}; "
                                     f"difference {100 * diff:+.2f} points; STL higher on {wins}/{n} seeds"})
    if "stl" in analysis["rates"]:
        parts, ok = [], True
        for mode, r in analysis["rates"].items():
            finals = ", ".join(f"{v:.3f}" for v in r["final_mean"])
            drift = max(r["drift"]) if r["drift"] else 0.0
            parts.append(f"{mode.upper()}: final rates [{finals}], silent layers {r['silent_layers']}, "
                         f"max epoch-to-epoch change in 2nd half {100 * drift:.0f}%")
        r = analysis["rates"]["stl"]
        ok = r["silent_layers"] == 0 and (max(r["drift"]) if r["drift"] else 0) < 0.25
        epochs = len(r.get("per_epoch_mean", []))
        verdict = ("holds" if ok else "does not hold") if epochs >= 3 else "not measured"
        rows.append({"claim": "Stable firing rates (STL: no silent layer, < 25% change per epoch late in training)",
                     "verdict": verdict, "evidence": f"{epochs} epochs; " + "; ".join(parts)})
    if analysis.get("noise"):
        parts, better, total = [], 0, 0
        for kind, c in analysis["noise"].items():
            noisy = {mode: float(np.mean(np.asarray(m["per_seed"])[:, 1:])) for mode, m in c["modes"].items()}
            clean = {mode: float(np.mean(np.asarray(m["per_seed"])[:, 0])) for mode, m in c["modes"].items()}
            if "stl" in noisy and len(noisy) > 1:
                total += 1
                better += all(noisy["stl"] >= v for k, v in noisy.items() if k != "stl")
            parts.append(f"{kind}: " + ", ".join(
                f"{m.upper()} {v:.3f} ({100 * v / clean[m]:.0f}% of clean)" if clean[m] > 0 else f"{m.upper()} {v:.3f}"
                for m, v in noisy.items()))
        verdict = "holds" if total and better == total else ("mixed" if better else "does not hold")
        rows.append({"claim": "Noise robustness (STL's mean accuracy over the noisy levels >= SL's and TL's)",
                     "verdict": verdict if total else "not measured",
                     "evidence": f"STL best on {better}/{total} noise kinds; " + "; ".join(parts)})
    if analysis.get("energy"):
        e = analysis["energy"]
        parts = [f"{m.upper()}: SNN {v['snn_joules']['mean'] * 1e9:.3f} nJ "
                 f"({v['sops_per_sample']['mean']:.0f} SOPs)" for m, v in e.items()]
        any_mode = next(iter(e.values()))
        ann = any_mode["ann_joules"]
        ratio = ann / e["stl"]["snn_joules"]["mean"] if "stl" in e and e["stl"]["snn_joules"]["mean"] > 0 else None
        verdict = "not measured" if ratio is None else ("holds" if ratio > 1 else "does not hold")
        rows.append({"claim": "Energy: the STL-SNN spends less than the equivalent ANN (E_AC 0.9 pJ, E_MAC 4.6 pJ)",
                     "verdict": verdict,
                     "evidence": "; ".join(parts) + f"; ANN {ann * 1e9:.3f} nJ per pass "
                                 f"({any_mode['ann_T_joules'] * 1e9:.3f} nJ for T passes)"
                                 + (f"; ANN/STL = {ratio:.2f}" if ratio is not None else "")})
    if analysis.get("decisions") and "stl" in analysis["decisions"]:
        d = analysis["decisions"]["stl"]
        joint = d["joint (all P neurons, all T steps)"]
        parts = []
        worst = None
        for rule, values in d.items():
            if rule.startswith("joint"):
                continue
            diff, wins, n = _compare(joint, values)
            parts.append(f"vs {rule}: {100 * diff:+.2f} points ({wins}/{n} seeds)")
            worst = diff if worst is None else min(worst, diff)
        rows.append({"claim": "GJDF: joint voting of all P neurons and T steps beats partial votes (same STL nets)",
                     "verdict": "not measured" if worst is None else ("holds" if worst > 0 else "mixed"),
                     "evidence": f"joint {np.mean(joint):.4f}; " + "; ".join(parts)})
    for mode, g in (population_gain or {}).items():
        p1, pk = g["per_seed"][0], g["per_seed"][-1]
        diff, wins, n = _compare(pk, p1)
        rows.append({"claim": f"GJDF: P = {g['P'][-1]} beats P = 1 ({mode.upper()}, same data and seeds)",
                     "verdict": _verdict(diff, wins, n),
                     "evidence": f"P={g['P'][-1]} {np.mean(pk):.4f} +- {np.std(pk):.4f} vs P=1 "
                                 f"{np.mean(p1):.4f} +- {np.std(p1):.4f}; gain {100 * diff:+.2f} points; "
                                 f"{wins}/{n} seeds"})
    return rows


# --------------------------------------------------------------------------- report --
def _figures(analysis, out_dir, population_gain=None, fig_format=None, dpi=None) -> dict:
    from ..plot import analysis as plots

    style = {"fmt": fig_format, "dpi": dpi}

    figs = {}
    if population_gain:
        figs["population_gain"] = plots.population_gain(population_gain,
                                                        os.path.join(out_dir, "report_population_gain.png"), **style)
    if analysis.get("_rates"):
        figs["rates"] = plots.rates_over_training(analysis["_rates"], os.path.join(out_dir, "report_rates.png"), **style)
        figs["theta"] = plots.thresholds_over_training(analysis["_thetas"], os.path.join(out_dir, "report_theta.png"), **style)
    if analysis.get("_learned"):
        figs["theta_hist"] = plots.threshold_histograms(analysis["_learned"],
                                                        os.path.join(out_dir, "report_theta_hist.png"), **style)
    if analysis.get("_dynamics"):
        figs["theta_dynamics"] = plots.threshold_dynamics(analysis["_dynamics"],
                                                          os.path.join(out_dir, "report_theta_dynamics.png"), **style)
    if analysis.get("energy"):
        figs["energy"] = plots.energy_per_layer({m: {"names": v["names"],
                                                     "snn_joules_per_layer": v["snn_joules_per_layer"],
                                                     "ann_joules_per_layer": v["ann_joules_per_layer"]}
                                                 for m, v in analysis["energy"].items()},
                                                os.path.join(out_dir, "report_energy.png"), **style)
    if analysis.get("noise"):
        figs["noise"] = plots.noise_curves(analysis["noise"], os.path.join(out_dir, "report_noise.png"), **style)
    if analysis.get("decisions"):
        figs["decisions"] = plots.decision_rules(analysis["decisions"], os.path.join(out_dir, "report_decisions.png"), **style)
    return {k: os.path.basename(v) for k, v in figs.items()}


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _state_words(net) -> str:
    """The hidden layers' recurrence and adaptation, as the report's network line names them ('' if none)."""
    words = []
    if net.get("recurrent", "none") != "none":
        words.append(f"recurrent hidden layers ({net['recurrent']})")
    if net.get("adaptation"):
        learned = [n for n in ("beta", "rho") if net.get(f"learn_adapt_{n}")]
        words.append(f"adaptive thresholds (beta {net.get('adapt_beta')}, rho {net.get('adapt_rho')}"
                     + (f", {' and '.join(learned)} trained" if learned else "") + ")")
    return "".join(", " + w for w in words)


def _markdown(analysis, claims, figs, population_gain=None, extra_sections=()) -> str:
    ds, cfg = analysis["dataset"], analysis["config"]
    net, tr = cfg["network"], cfg["training"]
    md = [f"# STL-SNN claims checked: {ds['name']}", "",
          f"Run: `{analysis['run_dir']}`. Data: {ds['name']}, {ds['n_train']} train / {ds['n_test']} test "
          f"samples, input {ds['input_shape']}, {ds['n_classes']} classes. Network: {net['arch']} hidden "
          f"{net['hidden']}, P = {net['population']}, tau {net['tau']}, theta init {net['theta_init']}, "
          f"init gain {net['init_gain']}, {net['reset']} reset, {net['surrogate']} surrogate, {net['dtype']}"
          f"{_state_words(net)}. "
          f"Training: {tr['epochs']} epochs, T = {tr['timesteps']}, {tr['encoding']} encoding, {tr['optimizer']} "
          f"lr {tr['lr']}, batch {tr['batch_size']}, loss {tr['loss']}. Seeds {cfg['seeds']}.", ""]
    if analysis.get("max_test"):
        md += [f"Energy, noise and decision measurements use the first {analysis['max_test']} test samples.", ""]
    for note in dict.fromkeys(analysis.get("notes", [])):
        md += [f"> Note: {note}", ""]
    md += ["## Claims", "", _table(["claim", "verdict", "evidence"],
                                   [[c["claim"], f"**{c['verdict']}**", c["evidence"]] for c in claims]), ""]
    md += ["## Accuracy", "", _table(["mode", "test accuracy (mean +- std)", "per seed"],
                                     [[m.upper(), f"{a['mean']:.4f} +- {a['std']:.4f}",
                                       " ".join(f"{v:.4f}" for v in a["per_seed"])]
                                      for m, a in analysis["accuracy"].items()]), ""]
    md += ["## Firing rates and thresholds over training", "",
           "Test-set firing rate (spikes per neuron per step) of every spiking layer after each epoch, "
           "mean over seeds; band = range over epochs 2..E and seeds; drift = largest relative "
           "epoch-to-epoch change in the second half of training.", ""]
    rows = []
    for m, r in analysis["rates"].items():
        for layer, final in enumerate(r["final_mean"]):
            th = analysis["thresholds"].get(m, {})
            rows.append([m.upper(), layer + 1, f"{final:.4f} +- {r['final_std'][layer]:.4f}",
                         f"[{r['band_low'][layer]:.4f}, {r['band_high'][layer]:.4f}]",
                         f"{100 * r['drift'][layer]:.1f}%",
                         f"{th['init_mean'][layer]:.3f}" if "init_mean" in th else "",
                         f"{th['final_mean'][layer]:.3f} +- {th['final_std'][layer]:.3f}" if th else "",
                         f"{100 * th['negative_fraction'][layer]:.1f}%" if "negative_fraction" in th else ""])
    md += [_table(["mode", "layer", "final rate", "band", "drift", "theta init", "theta final (mean +- spread)",
                   "theta <= 0"], rows), ""]
    for key, caption in (("rates", "Firing rates per layer over training"),
                         ("theta", "Thresholds per layer over training"),
                         ("theta_hist", "Learned threshold distributions (all seeds)"),
                         ("theta_dynamics", "Adaptive thresholds theta + beta a_t over one test sample (seed 0)")):
        if key in figs:
            md += [f"![{caption}]({figs[key]})", ""]
    if analysis.get("energy"):
        e = analysis["energy"]
        any_mode = next(iter(e.values()))
        md += ["## Energy", "",
               f"SOPs counted from the spikes that reach each synaptic layer times their fan-out "
               f"(`stlsim.analysis.synaptic_operations`, input counted as `{any_mode['input_ops']}`), on "
               f"{any_mode['energy_samples']} test samples; E = 0.9 pJ x SOP (SNN) vs 4.6 pJ x MAC (ANN of the "
               f"same layer shapes, one pass; the T-pass figure is given too). Per inference, mean over seeds.", ""]
        rows = []
        for layer, name in enumerate(any_mode["names"]):
            row = [name, f"{any_mode['ann_macs_per_layer'][layer]:,}"]
            for m, v in e.items():
                sops, joules = v["sops_per_sample_per_layer"][layer], v["snn_joules_per_layer"][layer]
                row.append(f"{sops:,.0f} / {joules * 1e9:.3f}")
            row.append(f"{any_mode['ann_joules_per_layer'][layer] * 1e9:.3f}")
            rows.append(row)
        total = ["total", f"{sum(any_mode['ann_macs_per_layer']):,}"]
        total += [f"{v['sops_per_sample']['mean']:,.0f} / {v['snn_joules']['mean'] * 1e9:.3f}" for v in e.values()]
        total.append(f"{any_mode['ann_joules'] * 1e9:.3f} (T passes: {any_mode['ann_T_joules'] * 1e9:.3f})")
        rows.append(total)
        md += [_table(["layer", "ANN MACs"] + [f"{m.upper()} SOPs / nJ" for m in e] + ["ANN nJ"], rows), ""]
        if "energy" in figs:
            md += [f"![Energy per layer]({figs['energy']})", ""]
    if analysis.get("noise"):
        md += ["## Noise robustness", "",
               "Test accuracy with corrupted inputs (mean +- std over seeds). Gaussian and salt-and-pepper "
               "noise corrupt the images before rate encoding (values clipped to [0, 1]); spike deletion / "
               "insertion corrupt the encoded input spikes. The same corrupted inputs for every network.", ""]
        for kind, c in analysis["noise"].items():
            header = [kind] + [f"{lv:g}" for lv in c["levels"]]
            rows = [[m.upper()] + [f"{mu:.3f} +- {sd:.3f}" for mu, sd in zip(v["mean"], v["std"])]
                    for m, v in c["modes"].items()]
            md += [_table(header, rows), ""]
        if "noise" in figs:
            md += [f"![Accuracy vs noise]({figs['noise']})", ""]
    if analysis.get("decisions"):
        md += ["## Joint decision (GJDF) ablations", "",
               "The same output spikes decided by different rules (`stlsim.analysis.joint_decision`): all P "
               "neurons and all T steps (the network's decision), only the last step, per-step votes, one "
               "neuron per class.", ""]
        rules = list(next(iter(analysis["decisions"].values())))
        rows = [[m.upper()] + [f"{np.mean(d[r]):.4f} +- {np.std(d[r]):.4f}" for r in rules]
                for m, d in analysis["decisions"].items()]
        md += [_table(["mode"] + rules, rows), ""]
        if "decisions" in figs:
            md += [f"![Decision rules]({figs['decisions']})", ""]
    if population_gain:
        p = max(g["P"][-1] for g in population_gain.values())
        md += [f"## GJDF: P = {p} vs P = 1 (trained separately, same data and seeds)", ""]
        rows = []
        for mode, g in population_gain.items():
            a, b = np.asarray(g["per_seed"][0], dtype=float), np.asarray(g["per_seed"][-1], dtype=float)
            rows.append([mode.upper(), f"{a.mean():.4f} +- {a.std():.4f} ({' '.join(f'{v:.4f}' for v in a)})",
                         f"{b.mean():.4f} +- {b.std():.4f} ({' '.join(f'{v:.4f}' for v in b)})",
                         f"{100 * (b.mean() - a.mean()):+.2f}"])
        md += [_table(["mode", "P = 1 (per seed)", f"P = {p} (per seed)", "gain (points)"], rows), ""]
        if "population_gain" in figs:
            md += [f"![GJDF gain]({figs['population_gain']})", ""]
    for section in extra_sections:
        md += [section, ""]
    return "\n".join(md)


def write_report(run_dir, out_dir=None, *, analysis=None, population_gain=None, baseline_dir=None,
                 extra_sections=(), extra_claims=(), fig_format=None, dpi=None, **kwargs) -> str:
    """Write ``report.md``, ``analysis.json`` and the figures; return the report's path.

    ``baseline_dir``: a compare run with P = 1 on the same data and seeds: the GJDF gain
    of this run's P over P = 1 is then checked (or pass ``population_gain`` directly).
    ``extra_claims``: more ``{"claim", "verdict", "evidence"}`` rows for the claims table;
    ``extra_sections``: Markdown appended at the end. ``kwargs`` go to ``analyze_run``
    (``max_test``, ``noise``, ``energy``, ``decisions``, ``dataset``, ``backend``, ...)
    unless ``analysis`` is given.
    """
    from .._io import atomic_path

    if not os.path.isdir(run_dir):
        raise fail("run_dir", "a directory written by `stlsim compare`", repr(str(run_dir)), "write_report",
                   FileNotFoundError)
    out_dir = run_dir if out_dir is None else out_dir
    os.makedirs(out_dir, exist_ok=True)
    analysis = analyze_run(run_dir, **kwargs) if analysis is None else analysis
    if baseline_dir is not None and population_gain is None:
        from ..analysis.dynamics import load_run

        check_run_dir(baseline_dir)
        population_gain = gjdf_gain(load_run(run_dir)["results"], load_run(baseline_dir)["results"])
    claims = check_claims(analysis, population_gain) + list(extra_claims)
    figs = _figures(analysis, out_dir, population_gain, fig_format, dpi)
    text = _markdown(analysis, claims, figs, population_gain, extra_sections)
    path = os.path.join(out_dir, "report.md")
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text + "\n")
    public = {k: v for k, v in analysis.items() if not k.startswith("_")}
    public.update({"claims": claims, "figures": figs})
    with atomic_path(os.path.join(out_dir, "analysis.json")) as tmp:
        with open(tmp, "w") as f:
            json.dump(public, f, indent=1, default=float)
    return path
