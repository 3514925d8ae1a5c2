"""GPU timings of one training step: stlsim's CUDA backend vs PyTorch and SpikingJelly.

One step = forward (L1)-(L4) through every layer, the mse_rate loss, and backward
(B1)-(B6) to the gradients of every weight and threshold; float32, hard reset,
tau = 0.5, atan surrogate, thresholds 1.0, binary (Bernoulli 0.2) input spikes.

Cases: 784-800-10 with T = 8 and B = 128, 1024; 700-128-20 with T = 1000
(B = 128). Frameworks:

* ``stlsim``: backend "cuda" through ``Network.loss_and_grad`` (x on the host: the
  step includes its upload and the gradients' download), and the same fused step
  with x already on the GPU; each with CuPy's cuBLAS and with the tiled numba.cuda GEMM.
* ``torch``: the same model in eager PyTorch on CUDA (a Heaviside/atan
  ``autograd.Function``, a Python loop over t), per-neuron learnable thresholds.
* ``spikingjelly``: ``layer.Linear`` + ``neuron.LIFNode(tau=2, decay_input=False)``
  (= m_t = 0.5 v_{t-1} + I_t, hard reset to 0), multi-step mode, ATan surrogate; its
  threshold is one fixed scalar. SpikingJelly >= 0.0.0.0.15 picks its CUDA kernels
  itself (native if built, else Triton, else Torch); older releases take
  ``backend="cupy"``, used when CuPy is present.

Each framework runs in its own subprocess under a time limit (a hang or a crash costs
that framework's figures only); results stream back as JSON lines and the main
process writes one file. ``benchmarks/gpu.sh`` runs this after the parity checks.

    python benchmarks/gpu_bench.py --out benchmarks/results/gpu.json [--budget 270]
    python benchmarks/gpu_bench.py --smoke      # tiny sizes on the CPU (simulator), no GPU
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

CASES = [
    {"name": "784-800-10 T=8 B=128", "sizes": [784, 800, 10], "T": 8, "B": 128},
    {"name": "784-800-10 T=8 B=1024", "sizes": [784, 800, 10], "T": 8, "B": 1024},
    {"name": "700-128-20 T=1000 B=128", "sizes": [700, 128, 20], "T": 1000, "B": 128},
]
SMOKE_CASES = [{"name": "12-10-4 T=4 B=3", "sizes": [12, 10, 4], "T": 4, "B": 3}]
SECTIONS = {"stlsim": 150, "torch": 90, "spikingjelly": 120}   # seconds each, at most
TAU, THETA, ALPHA, RATE = 0.5, 1.0, 2.0, 0.2


def _inputs(case, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = (rng.random((case["T"], case["B"], case["sizes"][0])) < RATE).astype(np.float32)
    y = rng.integers(0, case["sizes"][-1], case["B"])
    return x, y


def _time(step, sync, max_seconds, max_reps=20, min_reps=3):
    """Median wall time of ``step`` after two warm-up calls (compilation, allocation)."""
    for _ in range(2):
        step()
        sync()
    times = []
    while len(times) < max_reps and (len(times) < min_reps or sum(times) < max_seconds):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return {"median_ms": 1e3 * times[len(times) // 2], "min_ms": 1e3 * times[0], "reps": len(times)}


def _emit(**result):
    print("RESULT " + json.dumps(result), flush=True)


# --- the sections, each in its own process ----------------------------------------------------

def section_stlsim(cases, max_seconds, smoke):
    import numpy as np

    import stlsim
    from stlsim.engines import cuda_backend as backend
    from stlsim.engines import fused_cuda
    from stlsim.kernels import cuda_gemm
    from numba import cuda
    _emit(kind="info", section="stlsim", info=backend.info())
    gemms = ["numba-tiled"] if backend.SIMULATOR else (
        ["cupy", "numba-tiled"] if cuda_gemm.cupy_version() is not None else ["numba-tiled"])
    for gemm in gemms:
        backend.set_gemm(gemm)
        for case in cases:
            sizes = case["sizes"]
            try:
                net = stlsim.Network([stlsim.Dense(a, b) for a, b in zip(sizes[:-1], sizes[1:])],
                                     stlsim.LIF(tau=TAU, theta_init=THETA), "atan", population=1,
                                     dtype=np.float32, backend="cuda")
                x, y = _inputs(case)
                firing = [float(s.mean()) for s in net.forward(x).spikes]
                host = _time(lambda: net.loss_and_grad(x, y), cuda.synchronize, max_seconds)
                x_device = cuda.to_device(x)
                params = net._layer_params()

                def device_step():
                    fused_cuda.loss_and_grad(net.layers, params, x_device, y, net.neuron,
                                                net.surrogate, 1, "mse_rate")
                device = _time(device_step, cuda.synchronize, max_seconds)
                _emit(kind="timing", section="stlsim", case=case["name"],
                      variant=f"cuda gemm={gemm} x on host (Network.loss_and_grad)", firing=firing,
                      **host)
                _emit(kind="timing", section="stlsim", case=case["name"],
                      variant=f"cuda gemm={gemm} x on device (fused_loss_and_grad)", **device)
            except Exception as err:  # keep the other cases
                _emit(kind="error", section="stlsim", case=case["name"], variant=gemm,
                      error=f"{type(err).__name__}: {err}")
            backend.clear_workspace()
    _emit(kind="info", section="stlsim", calls=dict(backend.CALLS))


def _torch_device(smoke):
    import torch
    return torch.device("cpu" if smoke else "cuda")


def _torch_sync(torch, device):
    return (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)


def section_torch(cases, max_seconds, smoke):
    import torch
    device = _torch_device(smoke)
    _emit(kind="info", section="torch", version=torch.__version__,
          device=torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu")

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x >= 0).to(x.dtype)                                       # (L3) H(0) = 1

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (ALPHA / 2) / (1 + (math.pi * ALPHA * x / 2) ** 2)  # atan sigma'

    for case in cases:
        try:
            T, B, sizes = case["T"], case["B"], case["sizes"]
            x_np, y_np = _inputs(case)
            x = torch.from_numpy(x_np).to(device)
            target = torch.nn.functional.one_hot(torch.from_numpy(y_np).to(device), sizes[-1]).float()
            generator = torch.Generator().manual_seed(0)
            weights = [((torch.rand(b, a, generator=generator) * 2 - 1) / math.sqrt(a)).to(device)
                       .requires_grad_() for a, b in zip(sizes[:-1], sizes[1:])]
            thetas = [torch.full((b,), THETA, device=device, requires_grad=True) for b in sizes[1:]]

            def step():
                h = x
                for weight, theta in zip(weights, thetas):
                    current = (h.reshape(T * B, -1) @ weight.T).reshape(T, B, -1)   # (L1)
                    v = torch.zeros_like(current[0])
                    spikes = []
                    for t in range(T):
                        m = TAU * v + current[t]                                   # (L2)
                        s = Spike.apply(m - theta)                                 # (L3)
                        v = (1 - s) * m                                            # (L4h)
                        spikes.append(s)
                    h = torch.stack(spikes)
                loss = ((h.mean(0) - target) ** 2).mean()
                for p in weights + thetas:
                    p.grad = None
                loss.backward()
            timing = _time(step, _torch_sync(torch, device), max_seconds)
            _emit(kind="timing", section="torch", case=case["name"],
                  variant=f"eager {device.type}, autograd", **timing)
        except Exception as err:
            _emit(kind="error", section="torch", case=case["name"], error=f"{type(err).__name__}: {err}")


def section_spikingjelly(cases, max_seconds, smoke):
    import inspect

    import torch
    from spikingjelly.activation_based import functional, layer, neuron, surrogate
    device = _torch_device(smoke)
    import spikingjelly
    version = getattr(spikingjelly, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as package_version
            version = package_version("spikingjelly")
        except Exception:
            version = "unknown"
    old_api = "backend" in inspect.signature(neuron.LIFNode.__init__).parameters
    backends = ["torch"]
    if old_api and device.type == "cuda":
        try:
            import cupy  # noqa: F401
            backends = ["cupy", "torch"]
        except Exception:
            pass
    _emit(kind="info", section="spikingjelly", version=version,
          backends="backend= argument: " + ", ".join(backends) if old_api
          else "chosen by SpikingJelly (native CUDA if built, else Triton, else Torch)")
    for case in cases:
        for backend_name in backends if old_api else [None]:
            try:
                sizes = case["sizes"]
                x_np, y_np = _inputs(case)
                x = torch.from_numpy(x_np).to(device)
                target = torch.nn.functional.one_hot(torch.from_numpy(y_np).to(device),
                                                     sizes[-1]).float()
                modules = []
                for a, b in zip(sizes[:-1], sizes[1:]):
                    kwargs = dict(tau=2.0, decay_input=False, v_threshold=THETA, v_reset=0.0,
                                  surrogate_function=surrogate.ATan(alpha=ALPHA), step_mode="m")
                    if backend_name is not None:
                        kwargs["backend"] = backend_name
                    modules += [layer.Linear(a, b, bias=False, step_mode="m"), neuron.LIFNode(**kwargs)]
                net = torch.nn.Sequential(*modules).to(device)

                def step():
                    functional.reset_net(net)
                    out = net(x)
                    loss = ((out.mean(0) - target) ** 2).mean()
                    net.zero_grad(set_to_none=True)
                    loss.backward()
                timing = _time(step, _torch_sync(torch, device), max_seconds)
                _emit(kind="timing", section="spikingjelly", case=case["name"],
                      variant=f"{device.type} backend={backend_name or 'auto'}", **timing)
            except Exception as err:
                _emit(kind="error", section="spikingjelly", case=case["name"],
                      variant=str(backend_name), error=f"{type(err).__name__}: {err}")


# --- the orchestrator --------------------------------------------------------------------------

def _run_section(name, budget, smoke, max_seconds):
    """Run one section in a subprocess; returns (records, status)."""
    command = [sys.executable, os.path.abspath(__file__), "--section", name,
               "--max-seconds", str(max_seconds)] + (["--smoke"] if smoke else [])
    env = dict(os.environ)
    if smoke:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    records, status = [], "ok"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=budget, env=env)
        output, code = done.stdout, done.returncode
        if code != 0:
            status = f"exit {code}: " + done.stderr.strip()[-1500:]
    except subprocess.TimeoutExpired as err:
        output = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        status = f"stopped after its {budget:.0f} s budget"
    for line in output.splitlines():
        if line.startswith("RESULT "):
            records.append(json.loads(line[len("RESULT "):]))
    return records, status


def orchestrate(args):
    start = time.perf_counter()
    report = {"schema": 1, "what": "one training step (forward + loss + BPTT), float32, see "
              "benchmarks/gpu_bench.py", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "host": platform.node(), "python": platform.python_version(), "smoke": args.smoke}
    try:
        report["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                              text=True, timeout=10).stdout.strip() or None
    except Exception:
        report["git_commit"] = None
    if args.gpu_info and os.path.exists(args.gpu_info):
        report["nvidia_smi"] = open(args.gpu_info).read().strip()
    if args.parity and os.path.exists(args.parity):
        with open(args.parity) as handle:
            parity = json.load(handle)
        report["parity"] = {key: parity.get(key) for key in ("passed", "n_checks", "n_failed",
                                                              "seconds", "info")}
        report["parity"]["failed"] = [c for c in parity.get("checks", []) if not c.get("ok")]
        report["parity"]["worst_errors"] = sorted(
            ({"name": c["name"], "max_error": c["max_error"]} for c in parity.get("checks", [])
             if "max_error" in c), key=lambda c: -c["max_error"])[:5]
    elif args.parity:
        report["parity"] = {"passed": False, "error": f"no parity results at {args.parity}"}
    if args.parity_rc is not None and "parity" in report:
        report["parity"]["exit_status"] = args.parity_rc
    cases = SMOKE_CASES if args.smoke else CASES
    report["cases"] = cases
    report["results"], report["sections"] = [], {}
    for name, cap in SECTIONS.items():
        left = args.budget - (time.perf_counter() - start)
        if left < 20:
            report["sections"][name] = "skipped: out of time"
            continue
        records, status = _run_section(name, min(cap, left), args.smoke, args.max_seconds)
        report["sections"][name] = status
        report["results"].extend(records)
        print(f"{name}: {status}; {sum(r['kind'] == 'timing' for r in records)} timings", flush=True)
    report["seconds"] = round(time.perf_counter() - start, 1)
    table = {}
    for record in report["results"]:
        if record["kind"] == "timing":
            table.setdefault(record["case"], {})[f"{record['section']}: {record['variant']}"] = \
                round(record["median_ms"], 3)
    report["median_ms"] = table
    for case, row in table.items():
        print(case)
        for variant, ms in sorted(row.items(), key=lambda item: item[1]):
            print(f"  {ms:12.3f} ms  {variant}")
    from stlsim._io import atomic_path
    with atomic_path(args.out) as tmp, open(tmp, "w") as handle:     # atomic, user's umask
        json.dump(report, handle, indent=1)
    print(f"wrote {args.out} in {report['seconds']} s")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "results", "gpu.json"))
    parser.add_argument("--budget", type=float, default=270.0, help="seconds for all sections")
    parser.add_argument("--max-seconds", type=float, default=4.0,
                        help="timed seconds per case and variant (after warm-up)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU only (simulator)")
    parser.add_argument("--parity", help="JSON written by validation/cuda_parity.py")
    parser.add_argument("--parity-rc", type=int, help="its exit status")
    parser.add_argument("--gpu-info", help="a file with nvidia-smi's description of the GPU")
    parser.add_argument("--section", choices=sorted(SECTIONS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.section:
        cases = SMOKE_CASES if args.smoke else CASES
        {"stlsim": section_stlsim, "torch": section_torch,
         "spikingjelly": section_spikingjelly}[args.section](cases, args.max_seconds, args.smoke)
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
