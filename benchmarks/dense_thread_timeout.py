"""The dense 784-800-10 training step vs its five GEMMs, with OpenBLAS's idle workers spinning
(the default) or put to sleep at once (``OPENBLAS_THREAD_TIMEOUT=4``).

    python -m benchmarks.dense_thread_timeout               # 4 pairs of processes, 7 rounds each
    python -m benchmarks.dense_thread_timeout --pairs 2 --rounds 3 --out /tmp   # a smoke run
    python -m benchmarks.dense_thread_timeout --before HEAD~1   # + that revision's step

OpenBLAS reads ``OPENBLAS_THREAD_TIMEOUT`` once, when NumPy loads it: after each GEMM its
worker threads spin for 2**timeout cycles (default 2**28, ~0.1 s here) before they sleep, on
the cores the LIF kernels' Numba threads want next. Since the setting cannot change inside a
process, each arm runs in its own process (``benchmarks.kernel_speed.fused_step``: the
fused step and its necessary GEMMs interleaved in that process), the two arms alternating
process by process. ``--before REV`` adds a third arm: git revision REV of this repository
(exported to a temporary folder, its own ``stlsim`` and ``benchmarks``) in the default
environment, alternating with the others, so a change to the step is timed before and after
in the same run. Writes ``results/dense_thread_timeout.json`` with the load average.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
ARMS = {"default": None, "OPENBLAS_THREAD_TIMEOUT=4": "4"}


def export_revision(rev: str, into: Path) -> Path:
    """The tree of git revision ``rev`` of this repository, written under ``into``."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True,
                             check=True).stdout
    tree = into / "tree"
    tree.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def one_process(rounds: int) -> dict:
    """Run in a child: one fused_step measurement as a dict."""
    from benchmarks.kernel_speed import fused_step

    row = fused_step((784, 800, 10), 8, 128, rounds, lambda line: None)
    out = {key: row[key] for key in ("step_ms", "gemms_ms", "step_vs_gemms", "step_vs_gemms_min",
                                     "fused_path_ran", "load")}
    out["OPENBLAS_THREAD_TIMEOUT"] = os.environ.get("OPENBLAS_THREAD_TIMEOUT")   # what this process ran with
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dense_thread_timeout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4, help="processes per arm (alternating)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds inside each process")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--before", default=None, metavar="REV",
                        help="also run git revision REV's step (default environment)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one_process(args.rounds)))
        return 0
    with tempfile.TemporaryDirectory(prefix="stlsim-before-") as tmp:
        arms = {arm: (timeout, ROOT) for arm, timeout in ARMS.items()}
        if args.before is not None:
            revision = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT,
                                      capture_output=True, text=True, check=True).stdout.strip()
            arms[f"before {revision}"] = (None, export_revision(args.before, Path(tmp)))
        return _run(args, arms)


def _run(args, arms) -> int:
    load_before = os.getloadavg()
    runs = {arm: [] for arm in arms}
    for pair in range(args.pairs):
        for arm, (timeout, tree) in (arms.items() if pair % 2 == 0 else reversed(list(arms.items()))):
            env = dict(os.environ, PYTHONPATH=str(tree))
            env.pop("OPENBLAS_THREAD_TIMEOUT", None)
            if timeout is not None:
                env["OPENBLAS_THREAD_TIMEOUT"] = timeout
            proc = subprocess.run([sys.executable, "-m", "benchmarks.dense_thread_timeout", "--child",
                                   "--rounds", str(args.rounds)], cwd=tree, env=env, capture_output=True,
                                  text=True, check=True)
            runs[arm].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            row = runs[arm][-1]
            print(f"{arm:28s} step {row['step_ms']:6.2f} ms  GEMMs {row['gemms_ms']:6.2f} ms  "
                  f"ratio {row['step_vs_gemms']:.3f} (best rounds {row['step_vs_gemms_min']:.3f})", flush=True)
    summary = {arm: {"median_step_vs_gemms": statistics.median(r["step_vs_gemms"] for r in rows),
                     "median_step_vs_gemms_best_rounds": statistics.median(r["step_vs_gemms_min"] for r in rows),
                     "median_step_ms": statistics.median(r["step_ms"] for r in rows)}
               for arm, rows in runs.items()}
    for arm, s in summary.items():
        print(f"{arm:28s} medians over processes: step/GEMMs {s['median_step_vs_gemms']:.3f}, best rounds "
              f"{s['median_step_vs_gemms_best_rounds']:.3f}, step {s['median_step_ms']:.2f} ms")
    out = {"runs": runs, "summary": summary, "pairs": args.pairs, "rounds": args.rounds,
           "before": args.before,
           "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
           "meta": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "dense_thread_timeout.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
