"""Smoke run of the peer benchmark runner (stlsim implementations only; no torch needed)."""
import json
import subprocess
import sys
from pathlib import Path

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
    assert run["ratios"]["stlsim-numba"]["vs gemm-numpy"] > 0
