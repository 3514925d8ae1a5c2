"""Training-step speed of the convolutional presets: stlsim (numpy, numba) next to PyTorch CPU.

One training step = forward + loss + backward (``Network.loss_and_grad(training=True)``:
BatchNorm batch statistics, dropout on) for a batch of rate-coded images; PyTorch runs
the same network (same parameters, BatchNorm per time step, dropout per time step, LIF
with the atan surrogate) with autograd on the CPU, in this process. The runs are
interleaved (stlsim numpy, stlsim numba, torch, repeat) so that background load on a
shared machine affects them alike; the medians of wall-clock and process CPU time (all
threads) are reported with the load average. Threads: each library's default (BLAS,
Numba and torch intra-op use all cores). OpenBLAS's idle threads spin for
2^OPENBLAS_THREAD_TIMEOUT cycles (default 2^28, ~0.1 s) after each GEMM; on a busy 2-core
machine that takes a core from the kernels stlsim runs between its GEMMs. The variable
is read when NumPy loads (set it before Python starts); the run records it.

    python benchmarks/conv_speed.py                       # stl-mnist and conv-small, B = 50, T = 4
    python benchmarks/conv_speed.py --arch conv-small --repeats 5
    OPENBLAS_NUM_THREADS=1 STLSIM_NUM_THREADS=1 python benchmarks/conv_speed.py --profile --repeats 21

``--profile`` times the pieces of one numba-backend step instead (``profile_step``: the
conv kernels, the layers, the LIF kernels, each GEMM of ``gemm_only_fn`` alone; process
CPU time, best of ``--repeats``); run it on one thread, set before Python starts.

"gemm-only" times the products a step cannot avoid (``gemm_only_fn``); each row carries
its ratios to torch-cpu and to gemm-only, of the medians ("ratios") and of the best
repeats ("best_ratios": what the neighbours on a shared machine could not slow down).
Writes ``benchmarks/results/conv_speed.json``, or ``conv_speed_loaded.json`` when the
1-minute load average exceeded ``LOADED`` at the start (such a run is only indicative;
``--out`` overrides both). The load at the end is recorded too, but it includes this
run's own threads (up to the core count), so it does not decide.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time

import numpy as np

from stlsim import architectures
from stlsim._io import atomic_path, provenance
from stlsim.layers import Conv2d, Dense, Dropout, Flatten, MaxPool2d, Reshape
from stlsim.layers.pool import AvgPool2d

LOADED = 2.0          # load average above which a run is not a quiet machine's
RESULTS = os.path.join(os.path.dirname(__file__), "results")


def torch_step_fn(net, torch):
    """A PyTorch autograd training step for the stlsim network ``net`` (same parameters)."""
    F = torch.nn.functional
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[net.dtype]
    params = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in net.params.items()}
    buffers = {k: torch.tensor(v, dtype=dtype) for k, v in net.buffers.items()}
    tau, alpha = net.neuron.tau, net.surrogate.value

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x >= 0).to(x.dtype)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (alpha / 2) / (1 + (math.pi * alpha * x / 2) ** 2)

    def lif(current, theta):
        v = torch.zeros_like(current[0])
        out = []
        for t in range(current.shape[0]):
            m = tau * v + current[t]
            s = Spike.apply(m - theta)
            v = (1 - s) * m
            out.append(s)
        return torch.stack(out)

    def step(x, y):
        h = x
        T, B = h.shape[:2]
        for i, layer in enumerate(net.layers):
            if isinstance(layer, Conv2d):
                z = F.conv2d(h.flatten(0, 1), params[f"{i}.weight"], params.get(f"{i}.bias"),
                             stride=layer.stride, padding=layer.padding)
                z = z.reshape((T, B) + z.shape[1:])
                if layer.batchnorm:
                    z = torch.stack([F.batch_norm(z[t], buffers[f"{i}.bn_running_mean"],
                                                  buffers[f"{i}.bn_running_var"], params[f"{i}.bn_weight"],
                                                  params[f"{i}.bn_bias"], training=True) for t in range(T)])
                theta = params[f"{i}.theta"]
                if layer.threshold_sharing == "channel":
                    theta = theta.reshape(-1, 1, 1)
                h = lif(z, theta)
            elif isinstance(layer, Dense):
                h = lif(F.linear(h, params[f"{i}.weight"], params.get(f"{i}.bias")), params[f"{i}.theta"])
            elif isinstance(layer, (MaxPool2d, AvgPool2d)):
                pool = F.max_pool2d if isinstance(layer, MaxPool2d) else F.avg_pool2d
                z = pool(h.flatten(0, 1), layer.kernel_size, layer.stride)
                h = z.reshape((T, B) + z.shape[1:])
            elif isinstance(layer, (Flatten, Reshape)):
                h = h.reshape((T, B) + tuple(layer.out_shape))
            elif isinstance(layer, Dropout):
                h = torch.stack([F.dropout(h[t], layer.p, training=True) for t in range(T)])
            else:
                raise TypeError(type(layer).__name__)
        C = h.shape[2] // net.population
        rates = h.reshape(T, B, C, net.population).mean(dim=(0, 3))
        target = F.one_hot(y, C).to(rates.dtype)
        loss = ((rates - target) ** 2).sum() / (B * C)
        for p in params.values():
            p.grad = None
        loss.backward()
        return float(loss.detach())

    return step


def gemm_only_fn(net, T, B, dtype):
    """The matrix products a training step of ``net`` cannot avoid, and nothing else
    (the GEMM-only baseline, as ``benchmarks/impls.py`` has for Dense nets).

    Per Conv2d layer, over all T*B images at once (channels-last, as ``layers.conv``):
    the forward product (L1) cols (T B Ho Wo, kh kw C_in) @ W^T (kh kw C_in, C_out), the
    weight gradient (B4) delta^T cols (as cols^T delta when kh kw C_in >= C_out, the faster
    orientation for OpenBLAS that ``layers.conv`` uses too), and, above the first layer, the input gradient
    (B6) delta @ W (the col2im scatter-add is not counted); per Dense layer its three
    products likewise. Operands are preallocated random arrays of those shapes (the
    products' time does not depend on the values), outputs written in place."""
    rng = np.random.default_rng(0)
    products = []
    first = True
    for layer in net.layers:
        if isinstance(layer, Conv2d):
            c_out, h_out, w_out = layer.out_shape
            kh, kw = layer.kernel_size
            rows, k = T * B * h_out * w_out, kh * kw * layer.in_channels
        elif isinstance(layer, Dense):
            rows, k, c_out = T * B, layer.in_features, layer.out_features
        else:
            continue
        cols = rng.random((rows, k)).astype(dtype)
        weight = rng.random((c_out, k)).astype(dtype)
        delta = rng.random((rows, c_out)).astype(dtype)
        out = np.empty((rows, c_out), dtype)
        grad_w = np.empty((c_out, k), dtype)
        products.append((cols, weight.T, out))                       # (L1)
        if isinstance(layer, Conv2d) and k >= c_out:     # (B4) oriented as the layer does it
            products.append((cols.T, delta, np.empty((k, c_out), dtype)))
        else:
            products.append((delta.T, cols, grad_w))                 # (B4)
        if not first:
            products.append((delta, weight, np.empty((rows, k), dtype)))   # (B6)
        first = False

    def gemms():
        for a, b, out in products:
            np.matmul(a, b, out=out)
    gemms.products = products
    return gemms


def profile_step(net, x, y, repeats):
    """Per-piece process CPU time (s) of ``net.loss_and_grad(training=True, backend="numba")``,
    the best of ``repeats`` steps (the pieces of the fastest step): every kernel wrapper of
    ``kernels.conv_cpu`` ("kernel: ..."), each layer class's forward and backward (kernels
    and GEMMs inside), the backend's LIF kernels, and each product of ``gemm_only_fn`` timed
    alone ("gemm i: shapes"). The wrappers are restored on return."""
    from stlsim.engines import numba_backend
    from stlsim.kernels import conv_cpu
    acc = {}

    def timed(fn, label):
        def run(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[label] = acc.get(label, 0.0) + time.process_time() - start
        return run

    patches = [(conv_cpu, name, f"kernel: {name}") for name in conv_cpu.__all__ if name != "CALLS"]
    patches += [(type(layer), method, f"{type(layer).__name__}.{method}")
                for layer in net.layers for method in ("forward", "backward")]
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
    backend = numba_backend.BACKEND
    try:
        for owner, name, label in dict(((o, n), (o, n, lbl)) for o, n, lbl in patches).values():
            setattr(owner, name, timed(getattr(owner, name), label))
        numba_backend.BACKEND = backend._replace(
            lif_forward=timed(backend.lif_forward, "LIF forward"),
            lif_backward=timed(backend.lif_backward, "LIF backward"))
        net.loss_and_grad(x, y, training=True, backend="numba")            # warm-up
        best = None
        for _ in range(repeats):
            acc.clear()
            start = time.process_time()
            net.loss_and_grad(x, y, training=True, backend="numba")
            acc["whole step"] = time.process_time() - start
            if best is None or acc["whole step"] < best["whole step"]:
                best = dict(acc)
    finally:
        numba_backend.BACKEND = backend
        for owner, name, original in saved:
            setattr(owner, name, original)
    T, B = x.shape[:2]
    gemms = gemm_only_fn(net, T, B, x.dtype)
    gemms()
    cpu = []
    for _ in range(repeats):
        start = time.process_time()
        gemms()
        cpu.append(time.process_time() - start)
    best["gemm-only (one call)"] = min(cpu)
    for i, (a, b, out) in enumerate(gemms.products):
        cpu = []
        for _ in range(repeats):
            start = time.process_time()
            np.matmul(a, b, out=out)
            cpu.append(time.process_time() - start)
        best[f"gemm {i}: {a.shape} @ {b.shape}"] = min(cpu)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["stl-mnist", "conv-small"])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--time-steps", type=int, default=4)
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="print the per-piece profile of one numba step (profile_step) and exit")
    parser.add_argument("--out", default=None,
                        help="results file (default: results/conv_speed.json, or conv_speed_loaded.json "
                             f"when the load average exceeded {LOADED} at the start)")
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype)

    backends = ["numpy"]
    try:
        from stlsim.engines import get_backend
        get_backend("numba")
        backends.append("numba")
    except Exception as err:  # pragma: no cover - numba backend absent
        print(f"numba backend unavailable: {err}")
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch not installed: stlsim only")

    if args.profile:
        from stlsim import get_num_threads
        for name in args.arch:
            net = architectures.network(name, input_shape=(1, 28, 28), n_classes=10,
                                        population=args.population, dtype=dtype, backend="numpy", seed=0)
            rng = np.random.default_rng(0)
            images = rng.random((args.batch, 1, 28, 28))
            x = (rng.random((args.time_steps,) + images.shape) < images).astype(dtype)
            y = rng.integers(0, 10, args.batch)
            pieces = profile_step(net, x, y, args.repeats)
            print(f"{name}: B {args.batch}, T {args.time_steps}, {dtype.name}, numba threads "
                  f"{get_num_threads()}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; "
                  f"process CPU ms, best of {args.repeats}")
            for key, value in sorted(pieces.items(), key=lambda item: -item[1]):
                print(f"  {key:44s} {1000 * value:9.1f}")
        print(f"load average {os.getloadavg()[0]:.2f}")
        return

    results = []
    load_start = os.getloadavg()
    for name in args.arch:
        net = architectures.network(name, input_shape=(1, 28, 28), n_classes=10,
                                    population=args.population, dtype=dtype, backend="numpy", seed=0)
        rng = np.random.default_rng(0)
        images = rng.random((args.batch, 1, 28, 28))
        x = (rng.random((args.time_steps,) + images.shape) < images).astype(dtype)   # rate coding
        y = rng.integers(0, 10, args.batch)
        runners = {f"stlsim-{b}": (lambda b=b: net.loss_and_grad(x, y, training=True, backend=b))
                   for b in backends}
        if torch is not None:
            step = torch_step_fn(net, torch)
            tx = torch.tensor(x)
            ty = torch.tensor(y, dtype=torch.long)
            runners["torch-cpu"] = lambda: step(tx, ty)
        runners["gemm-only"] = gemm_only_fn(net, args.time_steps, args.batch, dtype)
        for run in runners.values():        # warm-up: JIT, caches, allocator
            run()
        times = {key: [] for key in runners}
        cpu = {key: [] for key in runners}
        for _ in range(args.repeats):
            for key, run in runners.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                run()
                times[key].append(time.perf_counter() - start)
                cpu[key].append(time.process_time() - start_cpu)
        n_params = int(sum(v.size for v in net.params.values()))
        for key, values in times.items():
            median = statistics.median(values)
            row = {"arch": name, "runner": key, "batch": args.batch, "time_steps": args.time_steps,
                   "dtype": dtype.name, "seconds_per_batch": median, "samples_per_second": args.batch / median,
                   "all_seconds": values, "cpu_seconds_per_batch": statistics.median(cpu[key]),
                   "parameters": n_params}
            others = [other for other in ("torch-cpu", "gemm-only") if other in times and other != key]
            ratios = {f"vs {other}": median / statistics.median(times[other]) for other in others}
            row["ratios"] = ratios
            row["best_ratios"] = {f"vs {other}": min(values) / min(times[other]) for other in others}
            results.append(row)
            print(f"{name:12s} {key:14s} {median:7.3f} s/batch  {args.batch / median:8.1f} samples/s  "
                  f"(CPU {statistics.median(cpu[key]):.2f} s)  "
                  + "  ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
                  + ("  (best: " + ", ".join(f"{v:.2f}x" for v in row["best_ratios"].values()) + ")"
                     if ratios else ""))
    load_end = os.getloadavg()
    from stlsim import get_num_threads
    info = provenance(
        benchmark="conv_speed", cpu_count=os.cpu_count(), machine=platform.machine(),
        load_average_start=list(load_start), load_average_end=list(load_end),
        stlsim_threads=get_num_threads() if "numba" in backends else None,
        openblas_num_threads=os.environ.get("OPENBLAS_NUM_THREADS"),
        openblas_thread_timeout=os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
        torch_version=None if torch is None else torch.__version__,
        torch_threads=None if torch is None else torch.get_num_threads(),
        note="one training step = forward + loss + backward, training mode (BN batch stats, dropout); "
             "median over interleaved repeats")
    out = args.out
    if out is None:
        loaded = load_start[0] > LOADED              # the end's load includes this run's own threads
        out = os.path.join(RESULTS, "conv_speed_loaded.json" if loaded else "conv_speed.json")
    with atomic_path(out) as tmp:
        with open(tmp, "w") as f:
            json.dump({"provenance": info, "results": results}, f, indent=2)
    print(f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end; wrote {out}")


if __name__ == "__main__":
    main()
