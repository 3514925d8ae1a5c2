"""Smoke run of the peer benchmark runner (stlsim implementations only; no torch needed)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_runner_quick(tmp_path):
    pytest.importorskip("numba")
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--workloads", "700-128-20",
           "--dtypes", "float64", "--impls", "stlsim-numba,stlsim-numpy,gemm-numpy", "--rounds", "2",
           "--no-memory", "--no-plot", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "quick.json").read_text())
    run = results["runs"][0]
    assert run["check"]["stlsim-numba"]["agrees"] is True
    assert set(run["times"]) == {"stlsim-numba", "stlsim-numpy", "gemm-numpy"}
    # The ratios are the medians' quotients (not asserted for speed: timings are noisy).
    times = {name: t["median_ms"] for name, t in run["times"].items()}
    assert all(np.isfinite(t) and t > 0 for t in times.values())
    assert run["ratios"]["stlsim-numba"]["vs gemm-numpy"] == pytest.approx(
        times["stlsim-numba"] / times["gemm-numpy"], rel=1e-12)
    assert all(len(t["rounds_ms"]) == 2 for t in run["times"].values())


def test_kernel_speed_quick(tmp_path):
    """``benchmarks/kernel_speed.py``: every variant checked against the NumPy reference,
    the fused step ran, ratios consistent with the times (speed itself is reported only)."""
    pytest.importorskip("numba")
    cmd = [sys.executable, "-m", "benchmarks.kernel_speed", "--quick", "--rounds", "1",
           "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "kernel_speed_quick.json").read_text())
    rows = results["forward"]
    variants = {(r["dtype"], r["reset"], r["surrogate"]) for r in rows}
    for dtype in ("float32", "float64"):
        for surrogate in ("atan", "sigmoid", "rectangular", "superspike"):
            assert {(dtype, "hard", surrogate), (dtype, "soft", surrogate)} <= variants
        assert (dtype, "hard", "atan smooth") in variants
    for r in rows:
        tol = 1e-5 if r["dtype"] == "float32" else 1e-12
        if r["surrogate"].endswith("smooth"):
            assert r["spikes_equal_reference"] is None and r["spikes_max_abs_error"] <= tol
        else:
            assert r["spikes_equal_reference"] is True and r["spikes_max_abs_error"] == 0
        assert r["membrane_max_abs_error"] <= tol
        assert r["kernel_vs_plain"] == pytest.approx(r["kernel_ms"] / r["plain_loop_ms"], rel=1e-9)
    step = results["fused_step"]
    assert step["fused_path_ran"] is True
    assert step["step_vs_gemms"] == pytest.approx(step["step_ms"] / step["gemms_ms"], rel=1e-9)
    assert "stlsim_version" in results["provenance"]
