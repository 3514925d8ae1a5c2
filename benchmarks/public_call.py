"""The event engine measured through the calls users make.

784-800-10 (LIF tau 0.5, theta 0.5, hard reset, atan; the network of
``event_scaling.py``), B = 1, T = 100, Bernoulli input of density 0.005, float32, the
default backend and threads. Timed in ONE process, in interleaved rounds (every
variant once per round, in a rotating order; each entry the minimum over ``--calls``
calls), so the ratios hold under load even when absolute times do not:

* ``clock``: ``net.forward(x)`` on the clock engine (the denominator of the targets);
* ``event_spikes``: ``net.forward(x, engine="event", record="spikes")``;
* ``event_record``: ``net.forward(x, engine="event")``, the default record, not read;
* ``event_record_read``: the same, then ``rec.membrane`` read (dense lists built);
* ``event_spikes_from_events``: ``record="spikes"`` from a ``SpikeEvents`` input.

Each is measured on three paths, in the same rounds: "before", the path before the guarded
parameters (``stlsim.network._LEGACY_CALL_PATH = True``: every parameter scanned for NaN
at every call, the dense record built eagerly, no W.T kept between calls); "guarded",
the guarded parameters without the kept plan of ``record="spikes"``
(``stlsim.engines.event.PLAN_SPIKES = False``: the general path at every call); and
"after", the default. Before timing, the outputs of the paths are compared: spikes,
rates, membranes and currents bitwise equal.

Beside them, per round, the floor and the kernel alone (first layer, the after path's
arguments): ``plain_loop``, the plainest Numba loop doing the first layer's event work
(per step: push the rows of W.T of the step's input events into one current row, then
one LIF pass (L2)-(L4), hard reset, over the 800 neurons; ``plain_push``),
``kernel``, ``kernels.event_cpu.dense_layer_spikes`` called as the plan calls it
(``engines.event.STEPWISE_RATIO``: here the stepwise kernel), ``kernel_lazy``, the same
call forced onto the lazy kernel (the plan's kernel before issue 28's last step), and
``event_spikes_lazy``, the after path's ``event_spikes`` with the plan forced onto the
lazy kernel (``STEPWISE_RATIO = inf`` during the call).

Targets: ``event_spikes`` >= 10x and ``event_record`` >= 5x the clock engine's
``net.forward(x)``.

    python -m benchmarks.public_call                 # ~1 minute; results/public_call.json
    python -m benchmarks.public_call --file public_call_loaded.json   # a loaded machine
    python -m benchmarks.public_call --quick         # smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import stlsim
import stlsim.network as network_module
from stlsim.engines import event

HERE = Path(__file__).resolve().parent
x_global = None
VARIANTS = ("clock", "event_spikes", "event_record", "event_record_read", "event_spikes_from_events")
PATHS = ("before", "guarded", "after")
FLOOR = ("plain_loop", "kernel", "kernel_lazy", "event_spikes_lazy")
_PLAIN = None


def _plain_push():
    """The plainest event forward of one layer from rows of W.T (compiled on first use)."""
    global _PLAIN
    if _PLAIN is None:
        import numba

        @numba.njit(cache=True)
        def plain_push(ptr, index, weight_t, theta, tau, T):
            """Per step: the current row = the sum of the W.T rows of the step's events,
            then (L2)-(L4) with hard reset for every neuron. Returns the spike count."""
            N = weight_t.shape[1]
            zero, one = weight_t.dtype.type(0), weight_t.dtype.type(1)
            v = np.zeros(N, dtype=weight_t.dtype)
            current = np.empty(N, dtype=weight_t.dtype)
            count = 0
            for t in range(T):
                current[:] = zero
                for e in range(ptr[t], ptr[t + 1]):
                    row = weight_t[index[e]]
                    for i in range(N):
                        current[i] += row[i]
                for i in range(N):
                    m = tau * v[i] + current[i]
                    spike = m - theta[i] >= zero
                    v[i] = (one - (one if spike else zero)) * m
                    count += spike
            return count

        _PLAIN = plain_push
    return _PLAIN


def floor_calls(net, x, events):
    """The plain loop and the event kernels alone on the first layer (B = 1), and the
    whole call on the lazy kernel."""
    from stlsim.engines.event_convert import kernel_values
    net.forward(events, engine="event", record="spikes")     # keeps the plan
    net.forward(events, engine="event", record="spikes")
    layer = net._plan[2].layers[0]
    data, dtype = net.params._data, net.dtype
    T, B = events.T, events.batch_size
    theta, tau, weight_t = layer.theta, layer.tau, layer.weight_t
    plain = _plain_push()
    kernels = event._kernels()
    e1 = event._empties(dtype)[2]
    current = np.empty((B, layer.n_out), dtype=dtype)
    values, unit = kernel_values(events)

    def kernel(ratio=None):
        ptr, idx, stepwise = kernels.dense_layer_spikes(
            T, B, events.ptr, events.index, values, unit, data[layer.weight_key], weight_t, e1,
            False, theta, layer.half_width, tau, event._tau_powers(tau, T, dtype), layer.hard,
            current, layer.eps, event.STEPWISE_RATIO if ratio is None else ratio)
        return idx.size

    def event_spikes_lazy():
        ratio, event.STEPWISE_RATIO = event.STEPWISE_RATIO, np.inf
        try:
            return net.forward(x, engine="event", record="spikes")
        finally:
            event.STEPWISE_RATIO = ratio

    same = plain(events.ptr, events.index, weight_t, theta, tau, T) == kernel() == kernel(np.inf)
    return {"plain_loop": lambda: plain(events.ptr, events.index, weight_t, theta, tau, T),
            "kernel": kernel, "kernel_lazy": lambda: kernel(np.inf),
            "event_spikes_lazy": event_spikes_lazy}, bool(same)


def make_case(T=100, B=1, density=0.005, seed=0):
    net = stlsim.Network([stlsim.Dense(784, 800), stlsim.Dense(800, 10)],
                         neuron=stlsim.LIF(tau=0.5, theta_init=0.5), dtype=np.float32, seed=seed)
    rng = np.random.default_rng(seed)
    x = (rng.random((T, B, 784)) < density).astype(np.float32)
    return net, x, stlsim.SpikeEvents.from_dense(x)


def calls(net, x, events):
    return {
        "clock": lambda: net.forward(x),
        "event_spikes": lambda: net.forward(x, engine="event", record="spikes"),
        "event_record": lambda: net.forward(x, engine="event"),
        "event_record_read": lambda: net.forward(x, engine="event").membrane,
        "event_spikes_from_events": lambda: net.forward(events, engine="event", record="spikes"),
    }


def set_path(path: str):
    network_module._LEGACY_CALL_PATH = path == "before"
    event.PLAN_SPIKES = path == "after"


def check_identical(net, x, events) -> dict:
    """Both paths, both engines: the same numbers, bit for bit."""
    out = {}
    recs = {}
    names = ("clock", "event", "event_again", "event_spikes", "event_spikes_again",
             "event_spikes_from_events", "event_spikes_from_events_again")
    for path in PATHS:
        set_path(path)
        recs[path] = [net.forward(x), net.forward(x, engine="event"), net.forward(x, engine="event")]
        for _ in range(3):                              # the third call: the plan serves it
            spikes = net.forward(x, engine="event", record="spikes")
        from_events = [net.forward(events, engine="event", record="spikes") for _ in range(3)][-1]
        recs[path] += [net.forward(x, engine="event", record="spikes"), spikes,
                       net.forward(events, engine="event", record="spikes"), from_events]
    set_path("after")
    for path in ("before", "guarded"):
        for k, name in enumerate(names):
            a, b = recs[path][k], recs["after"][k]
            same = np.array_equal(a.rates, b.rates)
            if "spikes" in name:
                same &= all(np.array_equal(u.to_dense(), v.to_dense()) for u, v in zip(a.spikes, b.spikes))
            else:
                for field in ("spikes", "membrane", "currents"):
                    same &= all(np.array_equal(u, v) for u, v in zip(getattr(a, field), getattr(b, field)))
            out[f"{name}: {path} vs after"] = bool(same)
    clock, ev, spikes = recs["after"][0], recs["after"][1], recs["after"][3]
    out["event_spikes_equal_clock"] = all(np.array_equal(u, v) for u, v in zip(clock.spikes, ev.spikes))
    out["record_spikes_equal_clock"] = all(np.array_equal(u, v.to_dense())
                                           for u, v in zip(clock.spikes, spikes.spikes))
    out["event_rates_equal_clock"] = bool(np.array_equal(clock.rates, ev.rates)
                                          and np.array_equal(clock.rates, spikes.rates))
    return out


def fast_path_state(net) -> dict:
    """Whether the after-path's skip can happen: each parameter private to
    ``net.params`` (else: what else holds it), and the full scans per call."""
    import gc
    from stlsim import _params
    params = net.params
    state = {"private": {key: bool(params._private(key)) for key in params._data}}
    holders = {}
    for key, private in state["private"].items():
        if not private:
            holders[key] = [type(r).__name__ for r in gc.get_referrers(params._data[key])]
    state["held_by"] = holders
    set_path("after")
    before, plans = _params.SCANS["full"], event.CALLS["plan"]
    for _ in range(10):
        net.forward(x_global, engine="event", record="spikes")
    state["full_scans_per_call"] = (_params.SCANS["full"] - before) / 10
    state["record_spikes_calls_served_by_the_plan"] = (event.CALLS["plan"] - plans) / 10
    return state


def measure(net, x, events, rounds, n_calls, floor) -> dict:
    fns = calls(net, x, events)
    fns.update(floor)
    keys = [(path, name) for name in VARIANTS for path in PATHS] + [("floor", name) for name in FLOOR]
    times = {key: [] for key in keys}
    for path, name in keys:                        # warm-up (compiles, W.T copies, caches)
        set_path("after" if path == "floor" else path)
        for _ in range(3):
            fns[name]()
    for r in range(rounds):
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        for path, name in order:
            set_path("after" if path == "floor" else path)
            fn = fns[name]
            fn()
            best = np.inf
            for _ in range(n_calls):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            times[(path, name)].append(best * 1e3)
    set_path("after")
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=50, help="calls per entry (minimum taken)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--file", default="public_call.json",
                        help="results file name (public_call_loaded.json on a loaded machine)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.calls = 2, 3
    net, x, events = make_case()
    load_before = os.getloadavg()
    identical = check_identical(net, x, events)
    floor, floor_same = floor_calls(net, x, events)
    identical["plain_loop_spike_count_equals_kernel"] = floor_same
    global x_global
    x_global = x
    times = measure(net, x, events, args.rounds, args.calls, floor)
    fast = fast_path_state(net)
    load_after = os.getloadavg()
    medians = {key: float(np.median(v)) for key, v in times.items()}
    ratios, per_round = {}, {}
    for path in PATHS:
        clock = medians[(path, "clock")]
        ratios[path] = {f"clock / {name}": clock / medians[(path, name)] for name in VARIANTS
                        if name != "clock"}
        per_round[path] = {f"clock / {name}": [c / e for c, e in zip(times[(path, "clock")],
                                                                      times[(path, name)])]
                           for name in VARIANTS if name != "clock"}
    ratios["floor"] = {"kernel / plain_loop": medians[("floor", "kernel")]
                       / medians[("floor", "plain_loop")],
                       "kernel_lazy / plain_loop": medians[("floor", "kernel_lazy")]
                       / medians[("floor", "plain_loop")],
                       "kernel_lazy / kernel": medians[("floor", "kernel_lazy")]
                       / medians[("floor", "kernel")],
                       "after event_spikes / plain_loop": medians[("after", "event_spikes")]
                       / medians[("floor", "plain_loop")],
                       "clock / event_spikes_lazy": medians[("after", "clock")]
                       / medians[("floor", "event_spikes_lazy")]}
    result = {
        "what": "event engine through net.forward, 784-800-10, B=1, T=100, "
                "density 0.005, float32; median over rounds of the min over calls, ms",
        "load_average_before": load_before, "load_average_after": load_after,
        "machine_note": "shared 2-core VM: other engineers' jobs may have run; compare ratios",
        "rounds": args.rounds, "calls": args.calls,
        "threads": stlsim.get_num_threads(),
        "paths": {"before": "stlsim.network._LEGACY_CALL_PATH = True",
                  "guarded": "stlsim.engines.event.PLAN_SPIKES = False",
                  "after": "default", "floor": "first layer alone: plain loop, event kernel"},
        "identical_outputs_before_vs_after": identical,
        "after_path_state": fast,
        "median_ms": {f"{path}:{name}": v for (path, name), v in medians.items()},
        "rounds_ms": {f"{path}:{name}": v for (path, name), v in times.items()},
        "speedup_over_clock": ratios,
        "speedup_over_clock_per_round": per_round,
        "targets": {"event_spikes >= 10x": ratios["after"]["clock / event_spikes"] >= 10,
                    "event_record >= 5x": ratios["after"]["clock / event_record"] >= 5},
        "provenance": {"stlsim_version": stlsim.__version__, "stlsim_file": stlsim.__file__,
                       "python": platform.python_version(),
                       "numpy": np.__version__, "event_calls": dict(event.CALLS)},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("public_call_quick.json" if args.quick else args.file)
    path.write_text(json.dumps(result, indent=1))
    print(f"load {load_before[0]:.2f} -> {load_after[0]:.2f} (1-min average; shared machine); "
          f"stlsim from {stlsim.__file__}")
    if fast["full_scans_per_call"]:
        print("WARNING: the after path scanned parameters at every call: not what it measures")
    print("identical outputs:", identical)
    print("after path: full parameter scans per call", fast["full_scans_per_call"],
          "(0 expected)" + ("" if not fast["held_by"] else f"; held elsewhere: {fast['held_by']}"),
          "; record='spikes' calls served by the plan", fast["record_spikes_calls_served_by_the_plan"])
    for p in PATHS:
        print(f"{p:7s} clock {medians[(p, 'clock')]:.3f} ms; " + ", ".join(
            f"{name} {medians[(p, name)]:.3f} ms ({ratios[p]['clock / ' + name]:.1f}x)"
            for name in VARIANTS if name != "clock"))
    print(f"floor   first layer: plain loop {medians[('floor', 'plain_loop')]:.3f} ms, event kernel "
          f"{medians[('floor', 'kernel')]:.3f} ms ({ratios['floor']['kernel / plain_loop']:.2f}x the "
          f"loop), lazy kernel {medians[('floor', 'kernel_lazy')]:.3f} ms "
          f"({ratios['floor']['kernel_lazy / plain_loop']:.2f}x); the whole after call is "
          f"{ratios['floor']['after event_spikes / plain_loop']:.2f}x the loop; on the lazy kernel "
          f"{medians[('floor', 'event_spikes_lazy')]:.3f} ms "
          f"({ratios['floor']['clock / event_spikes_lazy']:.1f}x)")
    print("targets (after):", result["targets"])
    print("wrote", path)


if __name__ == "__main__":
    main()
