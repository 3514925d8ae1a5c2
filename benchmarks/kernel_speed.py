"""The Numba kernels against the plainest code that does the same work.

    python -m benchmarks.kernel_speed                 # T=8, B=128, N=800; 784-800-10 step
    python -m benchmarks.kernel_speed --quick         # small sizes, a smoke run

Two comparisons, each timed in one process, the implementations alternating in a
rotating order over ``--rounds`` rounds (each round runs a call enough times to last
~0.05 s); medians and ratios are printed and written to
``benchmarks/results/kernel_speed.json`` (``--out DIR`` elsewhere).

1. **Forward kernel vs a plain loop.** ``stlsim.kernels.cpu.forward`` (the spiking
   LIF recursion (L2)-(L4) over (T, B, N), outputs preallocated) against a plain
   ``numba.njit(parallel=True)`` loop written here that reads the same currents and
   writes the same membranes and spikes (``prange`` over samples, the same storage
   dtype). Per dtype, reset and surrogate (in spiking mode the surrogate plays no part
   in the forward; each is timed anyway, to show it), and smooth mode against a plain
   loop that calls the same ``atan`` primitive. Also ``get_backend("numba").lif_forward``,
   the protocol call that allocates its outputs. The spikes of every variant are checked
   bitwise against the NumPy reference (``engines.clock.lif_forward``).
2. **The fused training step vs its GEMMs.** ``Network.loss_and_grad`` of a 784-800-10
   Dense net (T=8, B=128, float32, numba backend: the fused CPU step) against the five
   matrix products that step cannot avoid (NumPy/BLAS, preallocated): the two forward
   products (L1), the two weight gradients (B4) and the one back-propagated error (B6).

Timings on a shared machine are noisy: the load average is recorded with each run, and
the fused step is also reported by its best round (the GEMMs likewise), which other
processes can only slow down.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SURROGATES = ("atan", "sigmoid", "rectangular", "superspike")


def _plain_loops():
    import numba

    @numba.njit(parallel=True, error_model="numpy")
    def plain_hard(current, theta, tau, membrane, spikes, v):
        T, B, N = current.shape
        for b in numba.prange(B):
            for i in range(N):
                v[b, i] = 0
            for t in range(T):
                for i in range(N):
                    m = tau * v[b, i] + current[t, b, i]
                    fired = m - theta[i] >= 0
                    membrane[t, b, i] = m
                    spikes[t, b, i] = fired
                    v[b, i] = 0 if fired else m

    @numba.njit(parallel=True, error_model="numpy")
    def plain_soft(current, theta, tau, membrane, spikes, v):
        T, B, N = current.shape
        for b in numba.prange(B):
            for i in range(N):
                v[b, i] = 0
            for t in range(T):
                for i in range(N):
                    m = tau * v[b, i] + current[t, b, i]
                    fired = m - theta[i] >= 0
                    membrane[t, b, i] = m
                    spikes[t, b, i] = fired
                    v[b, i] = m - theta[i] if fired else m

    @numba.njit(parallel=True, error_model="numpy")
    def plain_smooth_atan(current, theta, tau, alpha, membrane, spikes, v):
        T, B, N = current.shape
        for b in numba.prange(B):
            for i in range(N):
                v[b, i] = 0
            for t in range(T):
                for i in range(N):
                    m = tau * v[b, i] + current[t, b, i]
                    s = np.arctan(0.5 * np.pi * alpha * (m - theta[i])) / np.pi + 0.5
                    membrane[t, b, i] = m
                    spikes[t, b, i] = s
                    v[b, i] = (1 - s) * m

    return plain_hard, plain_soft, plain_smooth_atan


def _timed(calls, rounds, best=False):
    """Median (or, with ``best``, minimum) over rounds of the seconds per call of each
    named callable, the callables alternating in rotating order."""
    names = list(calls)
    reps = {}
    for name in names:
        calls[name]()                                 # warm-up: compile, page in
        t0 = time.perf_counter()
        calls[name]()
        reps[name] = max(1, int(0.05 / max(time.perf_counter() - t0, 1e-7)))
    samples = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            call = calls[name]
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                call()
            samples[name].append((time.perf_counter() - t0) / reps[name])
    pick = np.min if best else np.median
    return {name: float(pick(s)) for name, s in samples.items()}


def forward_kernel(T, B, N, rounds, log):
    import stlsim
    from stlsim.engines import get_backend
    from stlsim.engines.backend import kernel_surrogate, neuron_spec
    from stlsim.engines.clock import lif_forward as reference
    from stlsim.kernels import cpu

    plain_hard, plain_soft, plain_smooth_atan = _plain_loops()
    backend = get_backend("numba")
    rows = []
    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(0)
        current = rng.normal(0.6, 1.0, (T, B, N)).astype(dtype)
        theta = rng.uniform(0.5, 1.5, N).astype(dtype)
        tau = dtype(0.5)
        out = {k: np.empty_like(current) for k in ("m", "s", "m_plain", "s_plain")}
        scratch, v_plain = np.empty((2, B, N), dtype), np.empty((B, N), dtype)
        for reset in ("hard", "soft"):
            neuron = stlsim.LIF(tau=0.5, reset=reset)
            plain = plain_hard if reset == "hard" else plain_soft
            for name in SURROGATES + ("atan smooth",):
                smooth = name.endswith("smooth")
                if smooth and reset == "soft":
                    continue
                surrogate = stlsim.surrogate.get(name.split()[0])
                spec = kernel_surrogate(surrogate)
                layer = neuron_spec(neuron, theta, dtype)
                calls = {
                    "kernel": lambda: cpu.forward(current, theta, layer, smooth, *spec, out["m"],
                                                  out["s"], scratch),
                    "plain loop": (lambda: plain_smooth_atan(current, theta, tau, dtype(spec[1]),
                                                             out["m_plain"], out["s_plain"],
                                                             v_plain)) if smooth else
                                  (lambda: plain(current, theta, tau, out["m_plain"],
                                                 out["s_plain"], v_plain)),
                    "backend lif_forward": lambda: backend.lif_forward(current, theta, neuron,
                                                                       surrogate, smooth),
                }
                times = _timed(calls, rounds)
                ref_s, ref_m = reference(current, theta, neuron, surrogate, smooth)
                # smooth-mode spikes are P(m - theta): libm's atan may differ by an ulp
                spikes_equal = None if smooth else bool(np.array_equal(out["s"], ref_s))
                spikes_err = float(np.max(np.abs(out["s"].astype(np.float64) - ref_s)))
                membrane_err = float(np.max(np.abs(out["m"].astype(np.float64) - ref_m)))
                row = {"dtype": np.dtype(dtype).name, "reset": reset, "surrogate": name,
                       "kernel_ms": 1e3 * times["kernel"],
                       "plain_loop_ms": 1e3 * times["plain loop"],
                       "backend_lif_forward_ms": 1e3 * times["backend lif_forward"],
                       "kernel_vs_plain": times["kernel"] / times["plain loop"],
                       "spikes_equal_reference": spikes_equal, "spikes_max_abs_error": spikes_err,
                       "membrane_max_abs_error": membrane_err, "load": _load()}
                rows.append(row)
                log(f"  forward {row['dtype']:7s} {reset:4s} {name:12s} kernel "
                    f"{row['kernel_ms']:7.3f} ms  plain loop {row['plain_loop_ms']:7.3f} ms  "
                    f"ratio {row['kernel_vs_plain']:5.2f}  (lif_forward with allocation "
                    f"{row['backend_lif_forward_ms']:.3f} ms)  spikes equal: "
                    f"{spikes_equal if not smooth else f'within {spikes_err:.1e}'}")
    return rows


def fused_step(sizes, T, B, rounds, log):
    import stlsim
    from stlsim.engines import get_backend

    dtype = np.float32
    layers = [stlsim.Dense(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    net = stlsim.Network(layers, neuron=stlsim.LIF(theta_init=1.0), population=1, seed=0,
                         dtype=dtype, backend="numba")
    for key in net.params:
        if key.endswith(".weight"):
            net.params[key] *= 4                     # a firing net (r = gain / theta = 4)
    rng = np.random.default_rng(1)
    x = (rng.random((T, B, sizes[0])) < 0.2).astype(dtype)
    y = rng.integers(0, sizes[-1], B)
    rows = T * B
    w = [net.params[f"{i}.weight"] for i in range(len(sizes) - 1)]
    x2 = x.reshape(rows, -1)
    h = [x2] + [np.ones((rows, n), dtype) for n in sizes[1:-1]]
    delta = [np.ones((rows, n), dtype) for n in sizes[1:]]
    cur = [np.empty((rows, n), dtype) for n in sizes[1:]]
    dw = [np.empty_like(wi) for wi in w]
    err = [np.empty((rows, n), dtype) for n in sizes[1:-1]]

    def gemms():
        for i, wi in enumerate(w):
            np.matmul(h[i], wi.T, out=cur[i])                      # (L1)
        for i in range(len(w) - 1, -1, -1):
            np.matmul(delta[i].T, h[i], out=dw[i])                 # (B4)
            if i > 0:
                np.matmul(delta[i], w[i], out=err[i - 1])               # (B6)

    calls = {"fused step": lambda: net.loss_and_grad(x, y, return_rates=True),
             "necessary GEMMs": gemms}
    calls_before = get_backend("numba").calls["fused_loss_and_grad"]
    times = _timed(calls, rounds)
    best = _timed(calls, rounds, best=True)
    fused_ran = get_backend("numba").calls["fused_loss_and_grad"] > calls_before
    rates = net.forward(x).firing_rates
    row = {"sizes": list(sizes), "T": T, "B": B, "dtype": "float32",
           "step_ms": 1e3 * times["fused step"], "gemms_ms": 1e3 * times["necessary GEMMs"],
           "step_vs_gemms": times["fused step"] / times["necessary GEMMs"],
           "step_min_ms": 1e3 * best["fused step"], "gemms_min_ms": 1e3 * best["necessary GEMMs"],
           "step_vs_gemms_min": best["fused step"] / best["necessary GEMMs"],
           "fused_path_ran": fused_ran, "firing_rates": rates, "load": _load()}
    log(f"  step {'-'.join(map(str, sizes))} T={T} B={B} float32: fused step "
        f"{row['step_ms']:.2f} ms, necessary GEMMs {row['gemms_ms']:.2f} ms, ratio "
        f"{row['step_vs_gemms']:.2f}; best rounds {row['step_min_ms']:.2f} / "
        f"{row['gemms_min_ms']:.2f} ms = {row['step_vs_gemms_min']:.2f} (fused path ran: "
        f"{fused_ran}; firing rates "
        f"{', '.join(f'{r:.3f}' for r in rates)})")
    return row


def _load():
    return [round(v, 2) for v in os.getloadavg()]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernel_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None,
                        help="Numba and BLAS threads (default: what the machine gives)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    import stlsim
    if args.threads:
        stlsim.set_num_threads(args.threads)
    stlsim.get_num_threads()     # loads stlsim's kernels first: they choose Numba's threading
    import numba                 # layer, which a numba.get_num_threads() call would fix first

    def log(line):
        print(line, flush=True)

    T, B, N = (4, 16, 50) if args.quick else (8, 128, 800)
    sizes = (30, 40, 5) if args.quick else (784, 800, 10)
    log(f"kernel_speed: numba {numba.__version__}, {numba.get_num_threads()} Numba threads, "
        f"load {_load()}")
    forward = forward_kernel(T, B, N, args.rounds, log)
    step = fused_step(sizes, T, B, args.rounds, log)
    spiking = [r for r in forward if not r["surrogate"].endswith("smooth")]
    worst = max(spiking, key=lambda r: r["kernel_vs_plain"])
    log(f"worst spiking forward ratio {worst['kernel_vs_plain']:.2f} ({worst['dtype']} "
        f"{worst['reset']} {worst['surrogate']}); step / GEMMs {step['step_vs_gemms']:.2f}")
    from stlsim import _io
    results = {"schema_version": 1, "benchmark": "kernel_speed", "quick": args.quick,
               "provenance": _io.provenance(),
               "case": {"T": T, "B": B, "N": N}, "forward": forward, "fused_step": step,
               "numba_threads": numba.get_num_threads(), "numba": numba.__version__,
               "numpy": np.__version__, "python": sys.version.split()[0],
               "machine": platform.machine(), "cpus": os.cpu_count(),
               "stlsim": stlsim.__version__, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("kernel_speed_quick.json" if args.quick else "kernel_speed.json")
    with _io.atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(results, indent=1))
    log(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
