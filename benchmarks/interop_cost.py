"""What ``stlsim.interop.compare`` costs on snnTorch's MNIST CSNN (T = 25, batch 16), and on
snnTorch tutorial 5's FC network (T = 8, batch 4).

    python3 -m benchmarks.interop_cost                  # results/interop_cost.json (or _loaded)
    python3 -m benchmarks.interop_cost --before HEAD~1  # also times compare of that revision

Times (best of ``repeats`` interleaved rounds, warm, in one process) of: the peer's own
forward + backward (its modules called step by step, ``backward`` of the probe; no hooks);
the oracle's hooked peer run (``interop._run_peer``: the same plus the module hooks that keep
every step's spikes and currents and the tensor hooks that keep their gradients, handed on
as NumPy views, no copies); the twin's float32
forward + backward (``interop._run_stlsim``, the NumPy reference with its adjoints); the
twin's float64 run that estimates the model's round-off; and ``compare`` as a whole, with
``roundoff="auto"`` (the float64 run only where some error exceeds rtol: the CSNN's errors,
1.3-1.7e-5, exceed rtol = 1e-5, so there "auto" and "always" do the same work, call for
call) and ``roundoff="always"``. ``--before REV`` loads
``stlsim/interop.py`` of git revision REV beside the checkout's and times its ``compare`` in
the same rounds.

Two budgets: strict, compare <= 1.2 (peer + float32 twin), the issue's; and with the
round-off twin that a float32 verdict needs where an error exceeds rtol, compare <= 1.2
(peer + float32 twin + float64 twin). ``phases``: one ``compare`` call (auto) cut by
perf_counter around the conversions, the peer run, the two twin runs and the rest (checks,
comparisons, tolerances, report, first-divergence search), from the round where compare
was fastest. Wall-clock on a shared machine: read the ratios, not the seconds; the load
average is recorded, and a run that starts above ``LOADED`` writes ``_loaded.json``. On a
loaded machine ``--clock cpu --torch-threads 1`` (with OMP/OPENBLAS_NUM_THREADS=1) times
the CPU seconds of each step, which other jobs move much less than the wall clock.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

LOADED = 2.0          # 1-minute load average above which a run is not a quiet machine's
_clock = time.perf_counter   # --clock cpu: time.process_time (this process's CPU seconds)
CASES = ("snntorch MNIST CSNN, neuron before pooling", "snntorch tutorial 5 FC (atan)")


def _interop_at(revision):
    """``stlsim/interop.py`` as it was at git ``revision``, imported as a module of the
    checkout's ``stlsim`` package (its relative imports resolve to the checkout)."""
    source = subprocess.run(["git", "show", f"{revision}:stlsim/interop.py"], check=True,
                            capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as out:
        out.write(source)
    name = "stlsim._interop_before"
    spec = importlib.util.spec_from_file_location(name, out.name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                     # dataclasses look their module up there
    spec.loader.exec_module(module)
    os.unlink(out.name)
    return module


def _phases(interop, model, x):
    """One ``compare`` call (roundoff="auto") timed by phase: perf_counter around each call
    of ``convert``, ``_run_peer`` and ``_run_stlsim`` (module globals, wrapped for the call);
    the rest of the call is "outside"."""
    log = []

    def timed(name, fn):
        def call(*args, **kwargs):
            start = _clock()
            result = fn(*args, **kwargs)
            dtype = kwargs.get("dtype", getattr(args[0], "dtype", None))
            log.append((name, np.dtype(dtype).name if dtype is not None else "", _clock() - start))
            return result
        return call

    originals = {name: getattr(interop, name) for name in ("convert", "_run_peer", "_run_stlsim")}
    for name, fn in originals.items():
        setattr(interop, name, timed(name, fn))
    try:
        start = _clock()
        interop.compare(model, x, seed=0)
        total = _clock() - start
    finally:
        for name, fn in originals.items():
            setattr(interop, name, fn)
    labels = {("convert", "float32"): "convert_float32_s", ("convert", "float64"): "convert_float64_s",
              ("_run_peer", "float32"): "peer_hooked_run_s", ("_run_stlsim", "float32"): "twin_float32_s",
              ("_run_stlsim", "float64"): "twin_float64_s"}
    phases = {label: 0.0 for label in labels.values()}
    for name, dtype, seconds in log:
        phases[labels[(name, dtype)]] += seconds
    phases["outside_s"] = total - sum(seconds for _, _, seconds in log)
    phases["compare_s"] = total
    return phases


def _case(interop, entry, repeats, before=None):
    import torch

    from validation.interop_zoo import _scale
    torch.manual_seed(0)
    model = _scale(entry.build(), entry.gain).float()
    x = (np.random.default_rng(0).random((entry.T, entry.B) + entry.input_shape) < 0.3).astype(np.float32)
    probe = np.random.default_rng(0).normal(size=(entry.T, entry.B, 10))
    conv = interop.convert(model, entry.input_shape, dtype=np.float32)
    twin64 = interop.convert(model, entry.input_shape, dtype=np.float64)
    x_t = torch.as_tensor(x)
    probe_t = torch.as_tensor(probe, dtype=torch.float32)

    def grad(out):
        return probe.reshape(out.shape)

    def peer_bare():                       # the peer alone, as its user trains it
        for module in conv.neuron_modules:
            module.reset_mem()
        outs = [model(x_t[t]) for t in range(entry.T)]
        out = torch.stack([o[0] if isinstance(o, tuple) else o for o in outs])
        out.backward(probe_t.reshape(out.shape))
        model.zero_grad(set_to_none=True)

    def peer_hooked():
        interop._run_peer(conv, x_t, grad)

    def twin():
        interop._run_stlsim(conv, x, grad)

    def twin_float64():
        interop._run_stlsim(twin64, x.astype(np.float64), grad, margins=False)

    reports, phases = {}, []

    def whole_auto():
        reports["auto"] = interop.compare(model, x, seed=0)

    def whole_always():
        reports["always"] = interop.compare(model, x, seed=0, roundoff="always")

    steps = [("peer_fwd_bwd_s", peer_bare), ("peer_hooked_run_s", peer_hooked), ("twin_float32_s", twin),
             ("twin_float64_roundoff_s", twin_float64), ("compare_auto_s", whole_auto),
             ("compare_always_s", whole_always)]
    if before is not None:
        def before_auto():
            reports["before_auto"] = before.compare(model, x, seed=0)
        steps.append(("compare_before_auto_s", before_auto))
    steps.append(("phases", lambda: phases.append(_phases(interop, model, x))))
    for _, fn in steps:                                   # warm up (imports, caches)
        fn()
    phases.clear()
    # Interleaved: each round times every step once, so a change of the machine's load
    # during the run reaches all of them alike; the best round of each is kept. Every other
    # round runs them in reverse, so that no step always follows the same one (in
    # results/interop_cost_quiet2.json and _quiet3.json compare "auto", always timed right
    # after the float64 twin, took 6-7 % longer than "always", which makes the same calls).
    times = {name: [] for name, _ in steps}
    for round_ in range(repeats):
        for name, fn in (steps if round_ % 2 == 0 else steps[::-1]):
            gc.collect()        # no step pays for the garbage of the one before it
            start = _clock()
            fn()
            times[name].append(_clock() - start)
    result = {name: min(values) for name, values in times.items() if name != "phases"}
    result["phases_of_fastest_compare"] = min(phases, key=lambda p: p["compare_s"])
    peer, t32, t64 = result["peer_fwd_bwd_s"], result["twin_float32_s"], result["twin_float64_roundoff_s"]
    needed = reports["auto"].roundoff is not None
    result["roundoff_measured_by_auto"] = needed
    result["max_rel_error"] = reports["auto"].max_rel_error
    result["ok_auto"], result["ok_always"] = reports["auto"].ok, reports["always"].ok
    result["budget_strict_s"] = 1.2 * (peer + t32)
    result["budget_with_roundoff_s"] = 1.2 * (peer + t32 + t64)
    result["compare_auto_over_peer_plus_twin"] = result["compare_auto_s"] / (peer + t32)
    result["compare_auto_over_peer_plus_both_twins"] = result["compare_auto_s"] / (peer + t32 + t64)
    result["compare_auto_over_its_runs"] = result["compare_auto_s"] / (peer + t32 + (t64 if needed else 0.0))
    result["compare_always_over_peer_plus_both_twins"] = result["compare_always_s"] / (peer + t32 + t64)
    result["hooked_peer_over_bare_peer"] = result["peer_hooked_run_s"] / peer
    phase = result["phases_of_fastest_compare"]
    result["compare_outside_runs_fraction"] = (phase["outside_s"] + phase["convert_float32_s"]
                                               + phase["convert_float64_s"]) / phase["compare_s"]
    if before is not None:
        result["ok_before_auto"] = reports["before_auto"].ok
        result["same_report_as_before"] = repr(reports["before_auto"]) == repr(reports["auto"])
        result["compare_before_auto_over_peer_plus_both_twins"] = result["compare_before_auto_s"] / (
            peer + t32 + t64)
        result["compare_auto_over_before"] = result["compare_auto_s"] / result["compare_before_auto_s"]
    result["meta"] = {"model": entry.name, "T": entry.T, "B": entry.B}
    return result


def _summary(name, r) -> str:
    p = r["phases_of_fastest_compare"]
    lines = [f"{name}: compare (auto) {r['compare_auto_s']:.3f} s, round-off twin run: "
             f"{r['roundoff_measured_by_auto']}, max rel. error {r['max_rel_error']:.2e}",
             f"  peer fwd+bwd {r['peer_fwd_bwd_s']:.3f} s (hooked {r['peer_hooked_run_s']:.3f} s, "
             f"{r['hooked_peer_over_bare_peer']:.2f}x), twin float32 {r['twin_float32_s']:.3f} s, "
             f"float64 {r['twin_float64_roundoff_s']:.3f} s",
             f"  strict budget 1.2 (peer + twin)         {r['budget_strict_s']:.3f} s: compare is "
             f"{r['compare_auto_over_peer_plus_twin']:.2f}x (peer + twin)",
             f"  budget with round-off 1.2 (peer + 2 twins) {r['budget_with_roundoff_s']:.3f} s: compare is "
             f"{r['compare_auto_over_peer_plus_both_twins']:.2f}x (peer + both twins); always "
             f"{r['compare_always_over_peer_plus_both_twins']:.2f}x",
             "  phases of one compare: " + ", ".join(f"{k[:-2]} {v:.3f}" for k, v in p.items())
             + f"; outside the runs {r['compare_outside_runs_fraction']:.1%}"]
    if "compare_before_auto_s" in r:
        lines.append(f"  before: compare {r['compare_before_auto_s']:.3f} s "
                     f"({r['compare_before_auto_over_peer_plus_both_twins']:.2f}x peer + both twins); "
                     f"now/before {r['compare_auto_over_before']:.3f}; same report "
                     f"{r['same_report_as_before']}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", default=None, help="git revision whose compare is timed too")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own; on a loaded machine 1 "
                             "keeps torch's threads from waiting on each other)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: perf_counter; cpu: process_time, this process's CPU seconds (on a "
                             "loaded machine, with one thread everywhere, what the work costs)")
    parser.add_argument("--out", default=None,
                        help="results file (default: benchmarks/results/interop_cost.json, or "
                             f"interop_cost_loaded.json when the load average exceeded {LOADED} at the start)")
    args = parser.parse_args(argv)
    global _clock
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter
    import torch

    import stlsim.interop as interop
    from stlsim._io import atomic_path, provenance
    from validation.interop_zoo import ZOO
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    load_start = os.getloadavg()
    before = None if args.before is None else _interop_at(args.before)
    results = {name: _case(interop, next(e for e in ZOO if e.name == name), args.repeats, before)
               for name in CASES}
    load_end = os.getloadavg()
    out = args.out or ("benchmarks/results/interop_cost_loaded.json" if load_start[0] > LOADED
                       else "benchmarks/results/interop_cost.json")
    info = provenance(benchmark="interop_cost", repeats=args.repeats, before=args.before or "", clock=args.clock,
                      cpus=os.cpu_count(), torch_version=torch.__version__, torch_threads=torch.get_num_threads(),
                      load_average_start=json.dumps(load_start), load_average_end=json.dumps(load_end),
                      note="shared 2-core machine; other jobs were running")
    with atomic_path(out) as tmp:
        with open(tmp, "w") as f:
            json.dump({"provenance": info, "results": results}, f, indent=2)
    for name, r in results.items():
        print(_summary(name, r))
    print(f"load average at start {load_start}, at end {load_end}; written to {out}")
    return results


if __name__ == "__main__":
    main()
