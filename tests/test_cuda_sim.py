"""The CUDA backend in Numba's CUDA simulator, against the NumPy reference.

``NUMBA_ENABLE_CUDASIM`` is read when Numba is imported, and other test modules
import Numba into this process, so the kernels run in subprocesses: the parity
checks are ``validation/cuda_parity.py --sim --quick`` (every reset, surrogate,
detach_reset and smooth-mode combination of the neuron kernels; the device-resident
Dense path; a conv network; the GEMM; bitwise determinism; launch counters). The
same script runs on a real GPU from ``benchmarks/gpu.sh``.

Skipped only when numba.cuda cannot be imported at all (numba-cuda not installed).
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

import stlsim
from stlsim.engines import BACKENDS, resolve_backend

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(code_or_args, *, simulator, timeout=120):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    args = code_or_args if isinstance(code_or_args, list) else ["-c", code_or_args]
    return subprocess.run([sys.executable] + args, capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)


def _numba_cuda_importable() -> bool:
    return _run("import numba.cuda", simulator=True, timeout=60).returncode == 0


requires_numba_cuda = pytest.mark.skipif(not _numba_cuda_importable(),
                                         reason="numba.cuda does not import (pip install 'stlsim[cuda]')")


@requires_numba_cuda
def test_simulator_parity_with_numpy_reference(tmp_path):
    out = tmp_path / "parity.json"
    done = _run([str(ROOT / "validation" / "cuda_parity.py"), "--sim", "--quick", "--json", str(out)],
                simulator=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["passed"] and result["n_failed"] == 0
    assert result["info"]["device"] == "simulator" and result["info"]["simulator"]
    names = [check["name"] for check in result["checks"]]
    for reset in ("hard", "soft"):
        for surrogate in ("atan", "sigmoid", "rectangular", "superspike"):
            for dtype in ("float64", "float32"):
                for detach in (False, True):
                    for smooth in (False, True):
                        assert (f"neuron {dtype} {reset} {surrogate} detach={detach} smooth={smooth}"
                                in names)
    assert any(name.startswith("dense network") and "float32" in name for name in names)
    for label in ("after_leak", "none", "leak_gain_vreset", "per_neuron_tau", "strict"):
        assert f"convention float64 {label} smooth=False" in names     # Section 8 on the GPU
    assert any(name.startswith("deterministic") for name in names)
    # The budgets were the (1e-12 in float64, 1e-5 in float32), spikes identical.
    for check in result["checks"]:
        if "tolerance" in check:
            assert check["tolerance"] <= (1e-5 if "float32" in check["name"] else 1e-12)
            assert check["spikes_identical"]
    # Proof that the CUDA kernels ran (not a NumPy fallback): launch counters.
    calls = result["info"]["calls"]
    for key in ("kernel:lif_forward", "kernel:lif_backward", "kernel:column_sum",
                "kernel:spread_rates", "gemm:numba-tiled", "fused_loss_and_grad"):
        assert calls.get(key, 0) > 0, key
    assert calls.get("fallback:numpy", 0) == 0


@requires_numba_cuda
def test_simulator_mismatched_convention_is_detected():
    # The parity checks can fail: detach_reset=True on the GPU vs False in NumPy differ.
    code = (
        "import numpy as np, stlsim\n"
        "from stlsim.engines import get_backend\n"
        "cuda = get_backend('cuda')\n"
        "from stlsim.grad.bptt import lif_backward\n"
        "from stlsim.engines.clock import lif_forward\n"
        "rng = np.random.default_rng(0)\n"
        "current, theta, e = rng.uniform(-1, 3, (5, 2, 6)), np.full(6, 0.5), rng.normal(size=(5, 2, 6))\n"
        "atan = stlsim.surrogate.get('atan')\n"
        "s, m = lif_forward(current, theta, stlsim.LIF(), atan)\n"
        "ref = lif_backward(e, m, s, theta, stlsim.LIF(), atan)[0]\n"
        "got = cuda.lif_backward(e, m, s, theta, stlsim.LIF(detach_reset=True), atan)[0]\n"
        "same = cuda.lif_backward(e, m, s, theta, stlsim.LIF(), atan)[0]\n"
        "print(np.abs(got - ref).max() > 1e-3, np.abs(same - ref).max() <= 1e-12,\n"
        "      cuda.calls['kernel:lif_backward'])\n")
    done = _run(code, simulator=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "True", "2"]


@requires_numba_cuda
def test_clear_error_without_a_gpu():
    code = ("import numpy as np, stlsim\n"
            "net = stlsim.Network([stlsim.Dense(3, 2)], backend='cuda')\n"
            "try:\n"
            "    net.loss_and_grad(np.zeros((2, 1, 3)), [0])\n"
            "    print('RAN')\n"
            "except RuntimeError as err:\n"
            "    print(err)\n")
    done = _run(code, simulator=False)
    assert done.returncode == 0, done.stderr[-3000:]
    if done.stdout.strip() == "RAN":
        pytest.skip("a CUDA GPU is visible here: nothing to refuse")
    message = done.stdout.strip()
    assert message.startswith("`backend` must be a backend this machine can run. Got 'cuda' with no "
                              "CUDA GPU visible to numba.cuda")
    assert "NUMBA_ENABLE_CUDASIM=1" in message and message.endswith("instead.")


def test_clear_error_without_numba_cuda():
    code = ("import sys\n"
            "sys.modules['numba.cuda'] = None   # as if numba-cuda were not installed\n"
            "import numpy as np, stlsim\n"
            "net = stlsim.Network([stlsim.Dense(3, 2)], backend='cuda')\n"
            "try:\n"
            "    net.forward(np.zeros((2, 1, 3)))\n"
            "except RuntimeError as err:\n"
            "    print(err)\n")
    done = _run(code, simulator=False)
    assert done.returncode == 0, done.stderr[-3000:]
    message = done.stdout.strip()
    assert message.startswith("`backend` must be a backend this machine can run. Got 'cuda' without "
                              "an importable numba.cuda")
    assert "pip install 'stlsim[cuda]'" in message


def test_cuda_is_registered_but_never_chosen_automatically():
    assert BACKENDS["cuda"] == "stlsim.engines.cuda_backend"
    assert resolve_backend("auto") in ("numba", "numpy")
    # Naming the backend imports nothing: the error (or the kernels) come at the first call.
    net = stlsim.Network([stlsim.Dense(3, 2)], backend="cuda")
    assert net.backend == "cuda"


@requires_numba_cuda
def test_training_step_runs_the_fused_path_once_and_never_the_per_layer_path():
    # Network.loss_and_grad(..., return_rates=True) is the training loop's call: on the
    # CUDA backend it must be one fused device step per batch, with no second,
    # layer-by-layer pass (forward and backward launches once per layer and batch).
    code = (
        "import numpy as np, stlsim, json\n"
        "from stlsim.data.static import Dataset\n"
        "from stlsim.engines import get_backend\n"
        "from stlsim.train import TrainConfig, train\n"
        "rng = np.random.default_rng(0)\n"
        "data = Dataset(x_train=rng.random((12, 6), dtype=np.float32), y_train=np.arange(12) % 2,\n"
        "               x_test=rng.random((4, 6), dtype=np.float32), y_test=np.arange(4) % 2,\n"
        "               name='tiny', n_classes=2, input_shape=(6,))\n"
        "net = stlsim.Network([stlsim.Dense(6, 5), stlsim.Dense(5, 4)], population=2,\n"
        "                     neuron=stlsim.LIF(theta_init=0.5), backend='cuda', dtype=np.float32)\n"
        "calls = get_backend('cuda').calls\n"
        "train(net, data, TrainConfig(epochs=1, batch_size=4, timesteps=3, backend='cuda',\n"
        "                             eval_batch_size=4), progress=False)\n"
        "print(json.dumps(dict(calls)))\n")
    done = _run(code, simulator=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    calls = json.loads(done.stdout.strip().splitlines()[-1])
    steps, layers = 12 // 4, 2
    assert calls["fused_loss_and_grad"] == steps
    assert calls.get("lif_backward", 0) == 0                  # no per-layer backward pass
    assert calls["kernel:lif_backward"] == steps * layers     # one launch per layer and step
    # the per-layer forward ran only for the test-set evaluation (inference, one batch)
    assert calls["kernel:lif_forward"] == steps * layers + calls.get("lif_forward", 0)
    assert calls.get("lif_forward", 0) == layers
    assert calls.get("fallback:numpy", 0) == 0
