"""``python -m benchmarks``: time one training step of stlsim against its peers.

    python -m benchmarks                       # all workloads, float32 and float64
    python -m benchmarks --quick               # small sizes, a smoke run
    python -m benchmarks --workloads 784-800-10 --dtypes float32 --rounds 9
    python -m benchmarks --impls stlsim-numba,stlsim-numpy,gemm-numpy --no-memory

For each workload and dtype: build every implementation from the same weights,
thresholds and inputs; check the losses agree (float64: within 1e-9; float32 is
reported, spike ties may flip between BLAS libraries); time ``rounds`` rounds in one
process, the implementations alternating in a rotating order, each round running a
step enough times to last ~0.1 s; report medians and ratios; then measure each step's
peak memory in a fresh subprocess. Results: ``benchmarks/results/<tag>.json`` and
``.png``. Timings on a shared machine are noisy: the load average is recorded.

All implementations share one process, so idle threads of one library must not spin
while another computes: ``OMP_WAIT_POLICY=PASSIVE`` is set for PyTorch's OpenMP (unless
already set), and stlsim's kernels use Numba's workqueue layer. ``--threads N`` restarts
the run with every library (BLAS, PyTorch, Numba) on N threads.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # before torch loads libgomp

import argparse
import gc
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .impls import BUILDERS, EAGER_PEERS
from .workloads import QUICK, WORKLOADS, make_problem

RESULTS = Path(__file__).resolve().parent / "results"
SCHEMA_VERSION = 1


def _load() -> list:
    return [round(v, 2) for v in os.getloadavg()]


def _build_all(names, problem, dtype, log):
    built, notes = {}, {}
    for name in names:
        t0 = time.perf_counter()
        try:
            impl = BUILDERS[name](problem, dtype)
            loss = impl.step()                        # first call: JIT/compile included
            first = time.perf_counter() - t0
            impl.step()
        except ImportError as err:
            notes[name] = f"skipped: {err}"
            log(f"  {name:14s} {notes[name]}")
            continue
        built[name] = impl
        notes[name] = {"first_call_s": round(first, 3), "loss": loss}
        log(f"  {name:14s} built; first call {first:.2f} s, loss {loss:.10g}")
    return built, notes


def _check(built, notes, dtype, reference="stlsim-numpy"):
    """Same loss (and gradients) as the stlsim NumPy reference."""
    ref = built.get(reference)
    if ref is None:
        return {}
    ref_loss, ref_grads = ref.step(), ref.grads()
    report = {}
    for name, impl in built.items():
        if name.startswith("gemm"):
            continue
        loss, grads = impl.step(), impl.grads()
        rel_loss = abs(loss - ref_loss) / max(abs(ref_loss), 1e-30)
        grad_err = max(float(np.max(np.abs(grads[k] - ref_grads[k]))
                             / max(np.max(np.abs(ref_grads[k])), 1e-30)) for k in ref_grads)
        tol = 1e-9 if np.dtype(dtype) == np.float64 else None
        report[name] = {"loss": loss, "rel_loss_diff": rel_loss, "max_rel_grad_diff": grad_err,
                        "agrees": None if tol is None else bool(rel_loss <= tol and grad_err <= 1e-7)}
    return report


def _time(built, rounds, log):
    names = list(built)
    per_call = {}
    for name in names:                                # calls per round: ~0.1 s
        t0 = time.perf_counter()
        built[name].step()
        per_call[name] = time.perf_counter() - t0
    reps = {name: max(1, int(0.1 / max(per_call[name], 1e-6))) for name in names}
    samples = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            step = built[name].step
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                step()
            samples[name].append((time.perf_counter() - t0) / reps[name])
    return {name: {"median_ms": 1e3 * float(np.median(s)), "rounds_ms": [round(1e3 * v, 4) for v in s],
                   "calls_per_round": reps[name]} for name, s in samples.items()}


def _ratios(times):
    med = {k: v["median_ms"] for k, v in times.items()}
    out = {}
    for name in ("stlsim-numba", "stlsim-numpy"):
        if name not in med:
            continue
        row = {f"vs {other}": med[name] / med[other] for other in med if other != name}
        eager = [med[p] for p in EAGER_PEERS if p in med]
        if eager:
            row["vs best eager peer"] = med[name] / min(eager)
        peers = [med[p] for p in EAGER_PEERS + ("torch.compile",) if p in med]
        if peers:
            row["vs best peer"] = med[name] / min(peers)
        out[name] = row
    return out


# ---------------------------------------------------------------------------- memory --
def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def memory_probe(impl_name, workload, dtype):
    """Peak memory of one step, in this (fresh) process; prints JSON."""
    import ctypes
    import tracemalloc
    problem = make_problem(workload, dtype)
    impl = BUILDERS[impl_name](problem, dtype)
    impl.step()                                       # compile / JIT outside the measurement
    impl.step()
    if impl_name == "stlsim-numba":
        from stlsim import _workspace
        _workspace.clear()                         # count the workspace too
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)       # hand freed heap back: fresh page touches count
    except OSError:
        pass
    result = {}
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                              # reset the peak RSS (VmHWM)
        base = _rss_kb("VmRSS")
        traced = impl_name.startswith("stlsim")
        if traced:
            tracemalloc.start()
        impl.step()
        if traced:
            result["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        result["rss_peak_delta_mb"] = max(0, _rss_kb("VmHWM") - base) / 1024
    except OSError as err:
        result["error"] = str(err)
    print(json.dumps(result))


def _memory(names, workload_key, quick, dtype, log):
    out = {}
    for name in names:
        cmd = [sys.executable, "-m", "benchmarks", "--memory-probe", name, "--workloads", workload_key,
               "--dtypes", np.dtype(dtype).name] + (["--quick"] if quick else [])
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                                  cwd=Path(__file__).resolve().parents[1])
            out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        except Exception as err:  # a peer that cannot run here: say so, keep going
            out[name] = {"error": f"{type(err).__name__}: {err}"}
        log(f"  memory {name:14s} {out[name]}")
    return out


def markdown(results) -> str:
    """The results as a Markdown table (median ms, x GEMM-only, peak memory MB)."""
    order = ["stlsim-numba", "stlsim-numpy", "torch", "torch.compile", "snntorch", "spikingjelly",
             "gemm-numpy", "gemm-torch"]
    lines = ["| workload | dtype | load | " + " | ".join(order) + " |",
             "|---|---|---|" + "---|" * len(order)]
    for entry in results["runs"]:
        gemm = entry["times"].get("gemm-numpy", {}).get("median_ms")
        cells = []
        for name in order:
            t = entry["times"].get(name)
            if t is None:
                cells.append("not run")
                continue
            cell = f"{t['median_ms']:.1f}"
            if gemm and not name.startswith("gemm-numpy"):
                cell += f" ({t['median_ms'] / gemm:.2f}x)"
            mem = entry.get("memory", {}).get(name, {})
            if "rss_peak_delta_mb" in mem:
                cell += f", {mem['rss_peak_delta_mb']:.1f} MB"
            cells.append(cell)
        load = f"{entry['load_before'][0]}-{entry['load_after'][0]}"
        lines.append(f"| {entry['label']} | {entry['dtype']} | {load} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main --
def _table(results) -> str:
    lines = []
    for entry in results["runs"]:
        lines.append(f"\n{entry['workload']} ({entry['label']}), {entry['dtype']}; "
                     f"load {entry['load_before']} -> {entry['load_after']}")
        gemm = entry["times"].get("gemm-numpy", {}).get("median_ms")
        for name, t in sorted(entry["times"].items(), key=lambda kv: kv[1]["median_ms"]):
            mem = entry.get("memory", {}).get(name, {})
            mem_s = f"{mem['rss_peak_delta_mb']:8.1f} MB" if "rss_peak_delta_mb" in mem else ""
            extra = f"  x{t['median_ms'] / gemm:5.2f} GEMM" if gemm else ""
            lines.append(f"  {name:14s} {t['median_ms']:10.2f} ms{extra}  {mem_s}")
        for name, row in entry["ratios"].items():
            lines.append(f"  {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 rounds, no torch.compile")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--impls", default=",".join(BUILDERS))
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 7; quick 3)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--compile-long", action="store_true",
                        help="also torch.compile the T=1000 workload (its compile ran > 500 s here)")
    parser.add_argument("--tag", default=None, help="results file name (default: full or quick)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder (default benchmarks/results)")
    parser.add_argument("--threads", type=int, default=None,
                        help="restart with BLAS, PyTorch and Numba on this many threads")
    parser.add_argument("--markdown", default=None, metavar="JSON",
                        help="print the table of a results file as Markdown and exit")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads and os.environ.get("STLSIM_BENCH_THREADS") != str(args.threads):
        n = str(args.threads)
        for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "STLSIM_NUM_THREADS",
                    "STLSIM_BENCH_THREADS"):
            os.environ[key] = n                       # BLAS reads these when it loads: restart
        argv = sys.argv[1:] if argv is None else list(argv)
        os.execv(sys.executable, [sys.executable, "-m", "benchmarks"] + argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    table = QUICK if args.quick else WORKLOADS
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    dtypes = [np.dtype(d.strip()) for d in args.dtypes.split(",") if d.strip()]
    if args.memory_probe:
        memory_probe(args.memory_probe, table[workloads[0]], dtypes[0])
        return 0
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    unknown = [i for i in impls if i not in BUILDERS]
    if unknown:
        parser.error(f"unknown implementations {unknown}; choose from {list(BUILDERS)}")
    rounds = args.rounds or (3 if args.quick else 7)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    import stlsim
    results = {"schema_version": SCHEMA_VERSION, "stlsim_version": stlsim.__version__,
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "python": platform.python_version(), "numpy": np.__version__},
               "settings": {"quick": args.quick, "rounds": rounds, "impls": impls,
                            "threads_env": {k: os.environ.get(k) for k in (
                                "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "STLSIM_NUM_THREADS",
                                "NUMBA_THREADING_LAYER", "OPENBLAS_CORETYPE", "OMP_WAIT_POLICY")}},
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": []}
    try:
        import torch
        results["machine"]["torch"] = torch.__version__
        results["machine"]["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    for key in workloads:
        workload = table[key]
        for dtype in dtypes:
            long_compile = args.quick or (workload.T > 100 and not args.compile_long)
            names = [i for i in impls if not (i == "torch.compile" and long_compile)]
            log(f"\n== {key} ({workload.label}) {dtype.name}; load {_load()}")
            problem = make_problem(workload, dtype)
            load_before = _load()
            built, notes = _build_all(names, problem, dtype, log)
            check = _check(built, notes, dtype)
            for name, row in check.items():
                log(f"  check {name:14s} loss {row['loss']:.10g}  rel diff {row['rel_loss_diff']:.2e}  "
                    f"grad rel diff {row['max_rel_grad_diff']:.2e}  agrees {row['agrees']}")
            times = _time(built, rounds, log)
            entry = {"workload": key, "label": workload.label, "dtype": dtype.name, "notes": notes,
                     "check": check, "times": times, "ratios": _ratios(times),
                     "load_before": load_before, "load_after": _load()}
            skipped = [i for i in impls if i not in names]
            if skipped:
                entry["not_run"] = {i: ("torch.compile of a 1000-step Python loop did not finish in 500 s"
                                        " here; pass --compile-long to try") for i in skipped}
            del built
            gc.collect()
            if not args.no_memory:
                entry["memory"] = _memory([n for n in names if not n.startswith("gemm")], key, args.quick,
                                          dtype, log)
            results["runs"].append(entry)
            log(_table({"runs": [entry]}))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = args.tag or ("quick" if args.quick else "full")
    path = out / f"{tag}.json"
    from stlsim._io import atomic_path
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(results, indent=1))
    log(f"\nwrote {path}")
    if not args.no_plot:
        from .plot import plot
        log(f"wrote {plot(results, out / f'{tag}.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
