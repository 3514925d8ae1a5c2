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


def test_public_call_quick(tmp_path):
    """``benchmarks/public_call.py``: both call paths give bitwise the same outputs, both
    engines the same spikes and rates; the ratios are the medians' quotients."""
    pytest.importorskip("numba")
    cmd = [sys.executable, "-m", "benchmarks.public_call", "--quick", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "public_call_quick.json").read_text())
    assert all(results["identical_outputs_before_vs_after"].values())
    med = results["median_ms"]
    for path in ("before", "after"):
        ratio = results["speedup_over_clock"][path]["clock / event_spikes"]
        assert ratio == pytest.approx(med[f"{path}:clock"] / med[f"{path}:event_spikes"], rel=1e-12)
    assert len(results["load_average_before"]) == 3
    assert results["provenance"]["event_calls"]["cached_transpose"] > 0   # the kept W.T ran


def test_conv_gemm_only_baseline_has_the_steps_products():
    from benchmarks.conv_speed import gemm_only_fn
    from stlsim import architectures
    net = architectures.network("conv-small", input_shape=(1, 28, 28), n_classes=10,
                                population=10, dtype=np.float32, backend="numpy", seed=0)
    gemms = gemm_only_fn(net, 1, 2, np.float32)
    products = gemms.__closure__[0].cell_contents
    # two Conv2d layers and one Dense: (L1) and (B4) each, (B6) above the first layer
    assert len(products) == 3 + 3 + 2
    assert products[0][0].shape == (2 * 28 * 28, 25) and products[0][2].shape == (2 * 28 * 28, 16)
    assert products[-1][2].shape == (2, 1568)
    gemms()


def test_dense_thread_timeout_runs_both_arms(tmp_path):
    """``benchmarks/dense_thread_timeout.py``: each arm in its own process, the fused path ran,
    the summary is the medians of the processes' ratios."""
    pytest.importorskip("numba")
    cmd = [sys.executable, "-m", "benchmarks.dense_thread_timeout", "--pairs", "1", "--rounds", "1",
           "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "dense_thread_timeout.json").read_text())
    assert set(results["runs"]) == {"default", "OPENBLAS_THREAD_TIMEOUT=4"}
    for arm, rows in results["runs"].items():
        assert len(rows) == 1 and rows[0]["fused_path_ran"]
        assert rows[0]["OPENBLAS_THREAD_TIMEOUT"] == (None if arm == "default" else "4")
        assert results["summary"][arm]["median_step_vs_gemms"] == rows[0]["step_vs_gemms"]
