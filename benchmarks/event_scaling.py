"""Event-driven vs clock-driven engine as input spike density grows.

Networks 784-800-10 and 700-128-20 (LIF tau 0.5, hard reset, atan surrogate unless
stated, default weight init; theta 0.5 instead of the default 2.0, at which these
untrained hidden layers stay silent at every density tested), T = 100 steps, batch 1
and 128, Bernoulli input spikes of density 0.001, 0.005, 0.02, 0.05, 0.2 (the fraction
of input neurons spiking per step). For each point:

* ``engine_forward``: the engine's own forward, ``engine.run_forward`` (output spikes
  plus what its backward needs) on the dense input array. The clock engine runs with
  its best backend (numpy and numba both timed, the faster kept); the event engine
  also inside ``static_weights()`` (W.T cached across calls, for inference loops) and
  fed the same input as a ``stlsim.SpikeEvents`` (``engine_forward_events``: no dense
  array to scan).
* ``record_forward``: ``net.forward`` (a ``Record`` with dense I, m, s; includes the
  Network's own argument checks, the same for both engines); for the event engine also
  ``spikes_forward``, ``net.forward(events, record="spikes")``: events in, each layer's
  spikes out as events, no dense array but the output layer's.
* ``forward_backward``: ``net.loss_and_grad`` (clock: its best backend, numba's fused
  step when available).

Each time is [t, wall min, wall median, CPU min, CPU median, repeats] with the
1-minute load average read before and after each point. This machine is shared (2
cores, other jobs running): multi-threaded code there loses whole scheduler quanta
waiting for its other threads, and wall time mostly measures the neighbours. So by
default every engine runs on ONE thread (``--threads 1`` pins BLAS and Numba; the
event kernels are single-threaded anyway) and t is the minimum CPU time of the
process, which counts the work done, not the waiting. ``--threads N`` lets the clock
engine use N cores; t is then the minimum wall time.

The headline point (784-800-10, batch 1, density 0.005) is also measured
in ``--rounds`` rounds (default 5), each timing the forwards back to back (min of 100
calls each), to show how much the ratio moves on this shared machine; with them the
plainest loop doing the event forward's work (``plain_event_forward``: per step, add
the weight column W[:, j] of each event, then one LIF update of every neuron) and the
costs of one column add from W.T (contiguous), from W (strided) and the engine's.

Then: the slope of the event forward time against the number of input events (linear
fit, ns per event, and log-log exponent), the crossover density where the clock
engine becomes faster, and the tracemalloc peak of a T = 1000 700-128-20
forward+backward at density 0.02 (batch 1 and 16, fresh process per measurement,
after a warm-up that compiles the kernels) for both engines with atan, rectangular
width 1 (its support (0, 1) around theta = 0.5 contains the resting membrane 0, so
every membrane is kept) and rectangular width 0.5 (support (0.25, 0.75): sparse).

    python benchmarks/event_scaling.py --rounds 9   # the reported run (~12 minutes)
    python benchmarks/event_scaling.py --quick    # a smoke test

Writes ``benchmarks/results/event_scaling.json`` and ``event_scaling.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _pin_threads():
    """Set the thread count of BLAS and Numba before they load (``--threads``, default 1)."""
    n = "1"
    for k, arg in enumerate(sys.argv):
        if arg == "--threads" and k + 1 < len(sys.argv):
            n = sys.argv[k + 1]
        elif arg.startswith("--threads="):
            n = arg.split("=", 1)[1]
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS", "STLSIM_NUM_THREADS"):
        os.environ[var] = n
    return int(n)


THREADS = _pin_threads()
HERE = os.path.dirname(os.path.abspath(__file__))

import numpy as np  # noqa: E402

import stlsim  # noqa: E402
from stlsim._io import atomic_path, provenance  # noqa: E402
from stlsim.engines import clock, event, get_backend  # noqa: E402
from stlsim.layers.base import Context  # noqa: E402

NETWORKS = {"784-800-10": (784, 800, 10), "700-128-20": (700, 128, 20)}
DENSITIES = (0.001, 0.005, 0.02, 0.05, 0.2)
BATCHES = (1, 128)
T_STEPS = 100


def load() -> float:
    return os.getloadavg()[0]


def timed(fn, repeats, budget_s=20.0):
    """``fn()`` timed ``repeats`` times (fewer if slow): [t, wall min, wall median, CPU
    min, CPU median, repeats], t = the CPU minimum with one thread (immune to waiting
    for a core on a loaded machine), else the wall minimum."""
    fn()                                                        # warm-up (JIT, caches)
    wall, cpu = [], []
    start = time.perf_counter()
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s and len(wall) >= 2:
            break
    stats = [min(wall), float(np.median(wall)), min(cpu), float(np.median(cpu)), len(wall)]
    return [stats[2] if THREADS == 1 else stats[0]] + stats


THETA = 0.5


def make_net(sizes, surrogate="atan"):
    layers = [stlsim.Dense(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    return stlsim.Network(layers, neuron=stlsim.LIF(theta_init=THETA), surrogate=surrogate,
                          seed=0)


def backends():
    names = ["numpy"]
    try:
        get_backend("numba")
        names.append("numba")
    except Exception:                                           # numba missing or broken
        pass
    return names


def bench_point(net, x, y, repeats, backend_names):
    layers, params = net.layers, net._layer_params()
    rec = net.forward(x, engine="event")
    point = {"input_events": int(np.count_nonzero(x)),
             "hidden_spikes": int(rec.spikes[0].sum()), "firing_rates": rec.firing_rates,
             "load_before": load()}

    ctx = Context()

    def engine_forward(engine, backend):
        module = event if engine == "event" else clock
        return lambda: module.run_forward(layers, params, x, net.neuron, net.surrogate, ctx,
                                          get_backend(backend))

    for backend in backend_names:
        point[f"clock_{backend}"] = {
            "engine_forward": timed(engine_forward("clock", backend), repeats),
            "record_forward": timed(lambda: net.forward(x, backend=backend), repeats),
            "forward_backward": timed(lambda: net.loss_and_grad(x, y, backend=backend), repeats),
        }
    events = stlsim.SpikeEvents.from_dense(x)
    point["event"] = {
        "engine_forward": timed(engine_forward("event", "numpy"), repeats),
        "engine_forward_events": timed(
            lambda: event.run_forward(layers, params, events, net.neuron, net.surrogate, ctx,
                                      get_backend("numpy")), repeats),
        "record_forward": timed(lambda: net.forward(x, engine="event"), repeats),
        "spikes_forward": timed(lambda: net.forward(events, engine="event", record="spikes"),
                                repeats),
        "forward_backward": timed(lambda: net.loss_and_grad(x, y, engine="event"), repeats),
        "forward_backward_events": timed(lambda: net.loss_and_grad(events, y, engine="event"),
                                         repeats),
    }
    with event.static_weights():
        point["event"]["engine_forward_static_weights"] = timed(engine_forward("event", "numpy"),
                                                                repeats)
    for key in ("engine_forward", "record_forward", "forward_backward"):
        best = min(backend_names, key=lambda b: point[f"clock_{b}"][key][0])
        point.setdefault("clock_best", {})[key] = point[f"clock_{best}"][key] + [best]
    point["load_after"] = load()
    return point


_PLAIN = None


def _plain_kernels():
    """The plainest event forward and the one-column costs, compiled on first use."""
    global _PLAIN
    if _PLAIN is None:
        import numba

        @numba.njit(cache=True)
        def plain_event_forward(ptr, index, weight, theta, tau, T):
            """Per step: zero the currents, add W[:, j] for each event, then one LIF
            update (L2)-(L4), hard reset, of every neuron. Returns the spike count."""
            N = weight.shape[0]
            v = np.zeros(N)
            current = np.empty(N)
            count = 0
            for t in range(T):
                current[:] = 0.0
                for e in range(ptr[t], ptr[t + 1]):
                    j = index[e]
                    for i in range(N):
                        current[i] += weight[i, j]
                for i in range(N):
                    m = tau * v[i] + current[i]
                    s = 1.0 if m >= theta[i] else 0.0
                    v[i] = (1.0 - s) * m
                    count += s != 0.0
            return count

        @numba.njit(cache=True)
        def column_adds(index, matrix, transposed, out):
            """Add one weight column per event into ``out``: rows of W.T, or W[:, j]."""
            for e in range(index.shape[0]):
                j = index[e]
                if transposed:
                    row = matrix[j]
                    for i in range(out.shape[0]):
                        out[i] += row[i]
                else:
                    for i in range(out.shape[0]):
                        out[i] += matrix[i, j]

        _PLAIN = plain_event_forward, column_adds
    return _PLAIN


def column_costs(weight, events, calls=100):
    """ns per event of adding one weight column, and the memory-bound cost of reading
    one (N float64 from a stream at the measured bandwidth of copying W)."""
    _, column_adds = _plain_kernels()
    weight_t = np.ascontiguousarray(weight.T)
    out = np.zeros(weight.shape[0])
    n = events.n_events
    index = np.ascontiguousarray(events.index)
    copy = np.empty_like(weight)
    result = {
        "contiguous_ns": timed(lambda: column_adds(index, weight_t, True, out), calls)[0] / n * 1e9,
        "strided_ns": timed(lambda: column_adds(index, weight, False, out), calls)[0] / n * 1e9,
        "copy_W_ms": timed(lambda: np.copyto(copy, weight), calls)[0] * 1e3,
    }
    bandwidth = 2 * weight.nbytes / (result["copy_W_ms"] * 1e-3)        # read + write
    result["bandwidth_GB_s"] = bandwidth / 1e9
    result["memory_bound_ns"] = weight.shape[0] * weight.itemsize / bandwidth * 1e9
    return result


def headline_rounds(rounds, backend_names, calls=100):
    """The issue's target point, timed ``rounds`` times: per round, the min CPU time of
    ``calls`` calls of each forward, and the ratios to the clock engine's best backend."""
    net = make_net(NETWORKS["784-800-10"])
    x = (np.random.default_rng(1).random((T_STEPS, 1, 784)) < 0.005).astype(np.float64)
    events = stlsim.SpikeEvents.from_dense(x)
    layers, params, ctx = net.layers, net._layer_params(), Context()

    def run(engine, data, backend="numpy"):
        module = event if engine == "event" else clock
        return lambda: module.run_forward(layers, params, data, net.neuron, net.surrogate, ctx,
                                          get_backend(backend))

    plain_event_forward, _ = _plain_kernels()
    weight, theta = net.params["0.weight"], net.params["0.theta"]
    plain = lambda: plain_event_forward(events.ptr, events.index, weight, theta, 0.5,  # noqa: E731
                                        T_STEPS)
    # The engines must agree on what they compute before their times mean anything.
    reference = run("clock", x, backend_names[0])()[0]
    identical = all(np.array_equal(run(engine, data)()[0], reference)
                    for engine, data in (("event", x), ("event", events)))
    _, tape = run("event", events)()
    identical &= plain() == tape.layers[0].spikes.n_events
    out = []
    for _ in range(rounds):
        clock_times = {b: timed(run("clock", x, b), calls)[0] for b in backend_names}
        best = min(clock_times, key=clock_times.get)
        times = {"clock_best": clock_times[best], "clock_backend": best,
                 "event": timed(run("event", x), calls)[0],
                 "event_spike_events": timed(run("event", events), calls)[0]}
        with event.static_weights():
            times["event_static_weights"] = timed(run("event", x), calls)[0]
        times["plain_loop_first_layer"] = timed(plain, calls)[0]
        for key in ("event", "event_spike_events", "event_static_weights",
                    "plain_loop_first_layer"):
            times["speedup_" + key] = times["clock_best"] / times[key]
        times["load"] = load()
        out.append(times)
        print("headline round: " + ", ".join(
            f"{k} {v:.2f}" if k.startswith(("speedup", "load"))
            else f"{k} {v * 1e3:.3f} ms" if isinstance(v, float) else f"{k} {v}"
            for k, v in times.items()), flush=True)
    summary = {}
    for key in ("event", "event_spike_events", "event_static_weights",
                "plain_loop_first_layer"):
        ratios = [r["speedup_" + key] for r in out]
        summary["speedup_" + key] = {"median": float(np.median(ratios)), "min": min(ratios),
                                     "max": max(ratios)}
    summary["outputs_identical"] = bool(identical)
    return {"input_events": int(x.sum()), "calls_per_timing": calls, "rounds": out,
            "summary": summary, "column_costs": column_costs(weight, events, calls)}


def fit_slope(events, times):
    """Least-squares t = a + b * events (b in ns per event) and the log-log exponent."""
    events, times = np.asarray(events, float), np.asarray(times, float)
    b, a = np.polyfit(events, times, 1)
    exponent = np.polyfit(np.log(events), np.log(times), 1)[0]
    return {"intercept_ms": a * 1e3, "ns_per_event": b * 1e9, "loglog_exponent": exponent}


def crossover(densities, event_times, clock_times, fit=None, events_per_density=None):
    """Density where the event time reaches the clock time: interpolated (log-log)
    between measured points, else extrapolated along the linear fit."""
    ratio = np.log(np.asarray(event_times)) - np.log(np.asarray(clock_times))
    for k in range(len(densities) - 1):
        if ratio[k] < 0 <= ratio[k + 1]:
            f = -ratio[k] / (ratio[k + 1] - ratio[k])
            low, high = np.log(densities[k]), np.log(densities[k + 1])
            return {"density": float(np.exp(low + f * (high - low))), "how": "interpolated"}
    if ratio[0] >= 0:
        return {"density": None, "how": f"clock faster already at {densities[0]}"}
    if fit is None:
        return {"density": None, "how": f"event faster up to {densities[-1]}"}
    # t_event(d) = a + b * d * events_per_unit_density; solve for the clock's time there.
    clock_at_high = clock_times[-1]
    seconds_per_density = fit["ns_per_event"] * 1e-9 * events_per_density
    d = (clock_at_high - fit["intercept_ms"] * 1e-3) / seconds_per_density
    return {"density": float(d), "how": f"extrapolated (event faster up to {densities[-1]})"}


def memory_child(engine, surrogate, batch):
    """Run in a fresh process: tracemalloc peak of one T = 1000 forward+backward.

    ``surrogate`` is a name or "name:parameter" (e.g. "rectangular:0.5")."""
    batch = int(batch)
    import tracemalloc
    spec = surrogate
    name, _, value = spec.partition(":")
    surrogate = stlsim.surrogate.get(name, float(value) if value else None)
    net = make_net(NETWORKS["700-128-20"], surrogate)
    rng = np.random.default_rng(0)
    backend = "numba" if engine == "clock" and "numba" in backends() else "numpy"
    small = (rng.random((20, 1, 700)) < 0.02).astype(np.float64)
    net.loss_and_grad(small, [0], engine=engine, backend=backend)       # compile, warm up
    if backend == "numba":
        from stlsim import _workspace
        _workspace.clear()             # the fused step keeps buffers: count them too
    x = (rng.random((1000, batch, 700)) < 0.02).astype(np.float64)
    y = rng.integers(0, 20, batch)
    out = {"engine": engine, "surrogate": spec, "backend": backend, "batch": batch,
           "input_bytes_not_counted": int(x.nbytes)}
    for name, fn in (("forward", lambda: net.forward(x, engine=engine, backend=backend)),
                     ("forward_backward", lambda: net.loss_and_grad(x, y, engine=engine,
                                                                     backend=backend))):
        tracemalloc.start()
        fn()
        out[name + "_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    if engine == "event":
        _, _, tape, _, _, _ = net._forward(x, smooth=False, backend="numpy", engine="event",
                                           training=False)
        out["event_tape_bytes"] = int(sum(r.nbytes for r in tape.layers))
        kept = [event._rerun_keeping(r, 1000, batch) for r in tape.layers]
        out["kept_membrane_bytes"] = int(sum(k.nbytes for k in kept))
        out["kept_fraction"] = float(sum(k.m.size for k in kept)
                                     / sum(1000 * batch * r.theta.size for r in tape.layers))
    print(json.dumps(out))


def measure_memory():
    results = []
    for batch in (1, 16):
        for engine in ("clock", "event"):
            for surrogate in ("atan", "rectangular:1.0", "rectangular:0.5"):
                proc = subprocess.run([sys.executable, __file__, "--memory-child", engine,
                                       surrogate, str(batch)],
                                      capture_output=True, text=True, check=True)
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    for col, name in enumerate(NETWORKS):
        for row, batch in enumerate(BATCHES):
            ax = axes[row, col]
            points = [p for p in results["points"] if p["network"] == name and p["batch"] == batch]
            d = [p["density"] for p in points]
            for label, engine, key, style in (
                    ("clock forward (best backend)", "clock_best", "engine_forward", "C0-o"),
                    ("event forward", "event", "engine_forward", "C1-o"),
                    ("event forward, static weights", "event", "engine_forward_static_weights",
                     "C1:^"),
                    ("event forward, SpikeEvents input", "event", "engine_forward_events", "C2-v"),
                    ("clock forward+backward", "clock_best", "forward_backward", "C0--s"),
                    ("event forward+backward", "event", "forward_backward", "C1--s"),
                ("event forward+backward, SpikeEvents", "event", "forward_backward_events",
                 "C2--v")):
                ax.loglog(d, [p[engine][key][0] * 1e3 for p in points], style, label=label)
            ax.set_title(f"{name}, batch {batch}, T = {T_STEPS}")
            ax.set_xlabel("input spike density")
            ax.set_ylabel("time (ms)")
            ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    measure = "CPU time" if results["threads"] == 1 else "wall time"
    fig.suptitle(f"Event-driven vs clock-driven engine: best {measure}, {results['threads']} "
                 "thread(s), shared machine (load in the JSON)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small repeats, batch 1 only")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/Numba threads (default 1)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of the headline point (784-800-10, B 1, density 0.005)")
    parser.add_argument("--headline-only", action="store_true",
                        help="only the rounds of the headline point (printed, not written)")
    parser.add_argument("--calls", type=int, default=100,
                        help="calls per timing of the headline point (minimum taken)")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "event_scaling.json"))
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    if args.headline_only:
        print(json.dumps(headline_rounds(args.rounds, backends(), args.calls)["summary"],
                         indent=1))
        return
    batches = (1,) if args.quick else BATCHES
    backend_names = backends()
    rng = np.random.default_rng(0)
    results = {"provenance": provenance(benchmark="event_scaling", seed=0),
               "T": T_STEPS, "theta": THETA, "tau": 0.5, "densities": DENSITIES, "batches": batches,
               "clock_backends": backend_names, "cpu_count": os.cpu_count(), "threads": THREADS,
               "timing": ("[t, wall min, wall median, cpu min, cpu median, repeats]; t = cpu min "
                          "with 1 thread, else wall min (seconds)"),
               "points": []}
    for name, sizes in NETWORKS.items():
        net = make_net(sizes)
        for batch in batches:
            repeats = 3 if args.quick else (100 if batch == 1 else 3)
            for density in DENSITIES:
                x = (rng.random((T_STEPS, batch, sizes[0])) < density).astype(np.float64)
                y = rng.integers(0, sizes[-1], batch)
                point = bench_point(net, x, y, repeats, backend_names)
                point.update(network=name, batch=batch, density=density)
                results["points"].append(point)
                print(f"{name} B={batch} d={density}: clock fwd "
                      f"{point['clock_best']['engine_forward'][0] * 1e3:.3f} ms "
                      f"({point['clock_best']['engine_forward'][-1]}), event fwd "
                      f"{point['event']['engine_forward'][0] * 1e3:.3f} ms, events "
                      f"{point['event']['engine_forward_events'][0] * 1e3:.3f} ms, static "
                      f"{point['event']['engine_forward_static_weights'][0] * 1e3:.3f} ms | "
                      f"fwd+bwd clock {point['clock_best']['forward_backward'][0] * 1e3:.2f} "
                      f"event {point['event']['forward_backward'][0] * 1e3:.2f} ms | load "
                      f"{point['load_before']:.1f}/{point['load_after']:.1f}", flush=True)
    summary = {}
    for name, sizes in NETWORKS.items():
        for batch in batches:
            points = [p for p in results["points"] if p["network"] == name and p["batch"] == batch]
            d = [p["density"] for p in points]
            ev = [p["event"]["engine_forward"][0] for p in points]
            ck = [p["clock_best"]["engine_forward"][0] for p in points]
            evb = [p["event"]["forward_backward"][0] for p in points]
            ckb = [p["clock_best"]["forward_backward"][0] for p in points]
            fit = fit_slope([p["input_events"] for p in points], ev)
            fit_all = fit_slope([p["input_events"] + p["hidden_spikes"] for p in points], ev)
            per_density = T_STEPS * batch * sizes[0]
            summary[f"{name} batch {batch}"] = {
                "speedup_forward": [c / e for c, e in zip(ck, ev)],
                "speedup_forward_events": [
                    c / p["event"]["engine_forward_events"][0] for c, p in zip(ck, points)],
                "speedup_forward_static_weights": [
                    c / p["event"]["engine_forward_static_weights"][0] for c, p in zip(ck, points)],
                "speedup_record_forward": [p["clock_best"]["record_forward"][0]
                                           / p["event"]["record_forward"][0] for p in points],
                "speedup_forward_backward": [c / e for c, e in zip(ckb, evb)],
                "speedup_forward_backward_events": [
                    c / p["event"]["forward_backward_events"][0] for c, p in zip(ckb, points)],
                "speedup_spikes_forward": [p["clock_best"]["record_forward"][0]
                                           / p["event"]["spikes_forward"][0] for p in points],
                # backward alone: forward+backward minus the engine's forward
                "speedup_backward": [
                    (p["clock_best"]["forward_backward"][0] - p["clock_best"]["engine_forward"][0])
                    / (p["event"]["forward_backward"][0] - p["event"]["engine_forward"][0])
                    for p in points],
                "forward_fit": fit,
                "forward_fit_all_events": fit_all,
                "hidden_firing_rate": [p["firing_rates"][0] for p in points],
                "crossover_forward": crossover(d, ev, ck, fit, per_density),
                "crossover_forward_backward": crossover(d, evb, ckb),
                "crossover_forward_events": crossover(
                    d, [p["event"]["engine_forward_events"][0] for p in points], ck),
                "crossover_forward_backward_events": crossover(
                    d, [p["event"]["forward_backward_events"][0] for p in points], ckb),
            }
    results["summary"] = summary
    results["headline"] = headline_rounds(args.rounds, backend_names, args.calls)
    print(json.dumps(results["headline"]["summary"]), flush=True)
    if not args.quick:
        results["memory_T1000_700-128-20_d0.02"] = measure_memory()
    with atomic_path(args.out) as tmp:
        with open(tmp, "w") as handle:
            json.dump(results, handle, indent=1)
    plot(results, os.path.splitext(args.out)[0] + ".png")
    print(json.dumps({"summary": summary,
                      "memory": results.get("memory_T1000_700-128-20_d0.02")}, indent=1))


if __name__ == "__main__":
    main()
