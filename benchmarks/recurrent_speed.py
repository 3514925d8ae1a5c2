"""The SHD network 700-128r-20 (first layer recurrent all-to-all): stlsim against
snnTorch RLeaky and Norse LSNN, forward + backward.

T = 1000 steps, B = 1 and B = 32, Bernoulli input of density ``--density`` (1.5 %),
float32; one training step = forward, the loss on the output spikes (MSE of the spike
rates against one-hot labels, stlsim's default ``mse_rate``) and backward with every
gradient. Two models, each with the same weights in every implementation:

* ``rleaky``: snnTorch's recurrent LIF, ``nn.Linear(700, 128) -> RLeaky(beta=0.95,
  linear_features=128) -> nn.Linear(128, 20) -> Leaky(beta=0.95)`` (all_to_all with its
  bias, subtract reset, atan(2)); stlsim ``Dense(700, 128, recurrent="all",
  recurrent_bias=True) -> Dense(128, 20)`` with ``LIF.preset("snntorch.Leaky",
  tau=0.95)``. snnTorch runs as its tutorials write it (``snntorch_loop``: the input
  Linear inside the loop over time) and with the input Linear hoisted out of it, one
  GEMM for all T steps (``snntorch_hoisted``, faster).
* ``lsnn``: adaptive thresholds, Norse ``LSNNRecurrent(700, 128) -> nn.Linear(128, 20)
  -> LIF()`` (its defaults: dt 1 ms, tau_mem_inv 100, tau_adapt_inv 1/800, beta 1.8,
  SuperSpike; its threshold rises by beta * tau_adapt_inv per spike); stlsim with
  ``LIF(tau=0.9, adaptation=Adaptation(beta=1.8/800, rho=1 - 1/800))``, hard reset,
  H(0) = 0 on layer 1, ``LIF(tau=0.9)`` on layer 2. Norse's neurons also carry a
  synaptic current (tau_syn_inv 200, one more state per neuron) and scale the input by
  dt tau_mem_inv = 0.1; stlsim's model here has no synapse (its compiled kernels do not
  implement it), and Norse's weights are stlsim's times ``NORSE_SCALE`` so that both
  fire at comparable rates (the results list each implementation's hidden rate).

Weights: ``init_gain=3`` for W; V is that initialisation times ``REC_SCALE`` = 0.1 (at
full scale the BPTT adjoint grows through 1000 steps and overflows float32, in stlsim's
reference as in its kernels).

stlsim runs with ``backend="numba"`` (the kernels of ``stlsim.kernels.recurrent_cpu``)
and ``backend="numpy"`` (the reference). Timed in ONE process per thread count, in
interleaved rounds (every variant once per round, rotating order; an entry is the
minimum over ``--calls`` calls; the median over rounds is reported), so the ratios hold
under load even when absolute times do not. Threads: the parent runs one child process
per ``--threads`` value with OPENBLAS/OMP/MKL_NUM_THREADS, STLSIM_NUM_THREADS and
``torch.set_num_threads`` all set to it.

The kernel strategies (``recurrent_cpu.STRATEGY``: a fused loop, or one BLAS call per
step) are timed too, per direction, on the hidden layer of the rleaky model.

Target (the recurrent issue): stlsim <= 0.5x the fastest peer's time.

    python -m benchmarks.recurrent_speed              # results/recurrent_speed.json, ~15 min
    python -m benchmarks.recurrent_speed --quick      # smoke run, T = 100
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("rleaky", "lsnn")
PEERS = {"rleaky": ("snntorch_loop", "snntorch_hoisted"), "lsnn": ("norse",)}
NORSE_SCALE = 2.0
# V is Dense's initialisation times REC_SCALE: at the full scale the adjoint grows through
# T = 1000 steps (spectral radius of tau + sigma' V above 1) and float32 overflows.
REC_SCALE = 0.1


# ------------------------------------------------------------------ the implementations --

def make_stlsim(stlsim, np, model, dtype, seed=0):
    if model == "rleaky":
        layers = [stlsim.Dense(700, 128, recurrent="all", recurrent_bias=True, init_gain=3.0),
                  stlsim.Dense(128, 20, init_gain=3.0)]
        neuron = stlsim.LIF.preset("snntorch.Leaky", tau=0.95)
        surrogate = stlsim.conventions.get("snntorch.Leaky").surrogate()
    else:
        layers = [stlsim.Dense(700, 128, recurrent="all", init_gain=3.0),
                  stlsim.Dense(128, 20, init_gain=3.0)]
        adaptation = stlsim.Adaptation(beta=1.8 / 800.0, rho=1.0 - 1.0 / 800.0)
        neuron = [stlsim.LIF(tau=0.9, theta_init=1.0, reset="hard", spike_at_threshold=False,
                             adaptation=adaptation),
                  stlsim.LIF(tau=0.9, theta_init=1.0, reset="hard", spike_at_threshold=False)]
        surrogate = stlsim.surrogate.SuperSpike(1.0)
    net = stlsim.Network(layers, neuron=neuron, surrogate=surrogate, dtype=dtype, seed=seed)
    net.params["0.recurrent"] = (REC_SCALE * net.params["0.recurrent"]).astype(dtype)
    return net


def make_snntorch(torch, snn, net, hoisted):
    nn = torch.nn
    p = {k: torch.tensor(v) for k, v in net.params.items()}
    fc1, fc2 = nn.Linear(700, 128, bias=False), nn.Linear(128, 20, bias=False)
    rlif = snn.RLeaky(beta=0.95, linear_features=128)            # atan(2), subtract reset
    lif = snn.Leaky(beta=0.95)
    with torch.no_grad():
        fc1.weight.copy_(p["0.weight"])
        fc2.weight.copy_(p["1.weight"])
        rlif.recurrent.weight.copy_(p["0.recurrent"])
        rlif.recurrent.bias.copy_(p["0.recurrent_bias"])
    params = list(fc1.parameters()) + list(fc2.parameters()) + list(rlif.parameters())

    def step(x, onehot):
        for q in params:
            q.grad = None
        spk1, mem1 = rlif.init_rleaky()
        mem2 = lif.init_leaky()
        # hoisted: one GEMM for all T steps, split with unbind (indexing cur_all[t] instead
        # would make autograd add a full (T, B, 128) zero tensor per step: 4x slower)
        cur_all = fc1(x).unbind(0) if hoisted else None
        out, hidden = [], 0.0
        for t in range(x.shape[0]):
            cur1 = cur_all[t] if hoisted else fc1(x[t])
            spk1, mem1 = rlif(cur1, spk1, mem1)
            spk2, mem2 = lif(fc2(spk1), mem2)
            out.append(spk2)
            hidden = hidden + spk1.detach().sum()
        rates = torch.stack(out).mean(0)
        loss = ((rates - onehot) ** 2).mean()
        loss.backward()
        return float(loss.detach()), float(hidden) / (x.shape[0] * x.shape[1] * 128)

    return step


def make_norse(torch, norse, net):
    nn = torch.nn
    p = {k: torch.tensor(v) for k, v in net.params.items()}
    lsnn = norse.LSNNRecurrent(700, 128)
    fc2 = nn.Linear(128, 20, bias=False)
    lif = norse.LIF()
    with torch.no_grad():
        lsnn.input_weights.copy_(NORSE_SCALE * p["0.weight"])
        lsnn.recurrent_weights.copy_(NORSE_SCALE * p["0.recurrent"])
        fc2.weight.copy_(p["1.weight"])
    params = list(lsnn.parameters()) + list(fc2.parameters())

    def step(x, onehot):
        for q in params:
            q.grad = None
        z, _ = lsnn(x)                                            # (T, B, 128)
        out, _ = lif(fc2(z))                                      # (T, B, 20)
        loss = ((out.mean(0) - onehot) ** 2).mean()
        loss.backward()
        return float(loss.detach()), float(z.detach().mean())

    return step


# ------------------------------------------------------------------------ one process --

def child(args):
    n = args.child
    import numpy as np
    import stlsim
    stlsim.set_num_threads(n)
    stlsim.get_num_threads()                 # load the kernels before torch (OMP guard)
    from stlsim.engines import get_backend
    from stlsim.kernels import recurrent_cpu
    import torch
    torch.set_num_threads(n)
    import snntorch as snn
    import norse
    import norse.torch as norse_torch

    T = args.T
    rng = np.random.default_rng(0)
    calls = get_backend("numba").calls
    results = {"threads": n, "stlsim_threads": stlsim.get_num_threads(),
               "torch_threads": torch.get_num_threads(), "load_before": os.getloadavg(),
               "median_ms": {}, "rounds_ms": {}, "hidden_rate": {}, "loss": {}}
    cases = []
    for B in args.batch:
        x = (rng.random((T, B, 700)) < args.density).astype(np.float32)
        y = rng.integers(0, 20, B)
        onehot = torch.nn.functional.one_hot(torch.tensor(y), 20).float()
        xt = torch.tensor(x)
        for model in MODELS:
            net = make_stlsim(stlsim, np, model, np.float32)
            variants = {
                "stlsim_numba": (lambda net=net, x=x, y=y: stlsim_step(net, x, y, "numba")),
                "stlsim_numpy": (lambda net=net, x=x, y=y: stlsim_step(net, x, y, "numpy")),
            }
            if model == "rleaky":
                for name in PEERS[model]:
                    step = make_snntorch(torch, snn, net, hoisted=name.endswith("hoisted"))
                    variants[name] = (lambda step=step, xt=xt, onehot=onehot: step(xt, onehot))
            else:
                step = make_norse(torch, norse_torch, net)
                variants["norse"] = (lambda step=step, xt=xt, onehot=onehot: step(xt, onehot))
            for name, fn in variants.items():
                cases.append(((model, B, name), fn))
    before = calls.copy()
    for key, fn in cases:                                       # warm-up, rates, losses
        loss, rate = fn()
        label = "/".join(map(str, key))
        results["hidden_rate"][label], results["loss"][label] = rate, loss
    numba_runs = sum(1 for (_, _, name), _ in cases if name == "stlsim_numba")
    results["numba_calls_in_warmup"] = {k: calls[k] - before[k] for k in calls
                                        if calls[k] != before[k]}
    results["kernels_ran"] = (calls["lif_backward_stateful"] - before["lif_backward_stateful"]
                              == numba_runs and calls["fallback:numpy"] == before["fallback:numpy"]
                              + 0)
    times = {key: [] for key, _ in cases}
    for r in range(args.rounds):
        order = cases[r % len(cases):] + cases[:r % len(cases)]
        for key, fn in order:
            best = float("inf")
            for _ in range(args.calls):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            times[key].append(best * 1e3)
    for key, v in times.items():
        label = "/".join(map(str, key))
        results["median_ms"][label] = float(np.median(v))
        results["rounds_ms"][label] = v
    results["strategies_ms"] = strategy_times(np, stlsim, recurrent_cpu, args, rng)
    results["load_after"] = os.getloadavg()
    results["versions"] = {"python": platform.python_version(), "numpy": np.__version__,
                           "numba": __import__("numba").__version__, "torch": torch.__version__,
                           "snntorch": snn.__version__, "norse": norse.__version__,
                           "stlsim": stlsim.__version__, "stlsim_file": stlsim.__file__}
    print(json.dumps(results))


def stlsim_step(net, x, y, backend):
    loss, _, record = net.loss_and_grad(x, y, backend=backend, return_record=True)
    return loss, float(record.spikes[0].mean())


def strategy_times(np, stlsim, recurrent_cpu, args, rng):
    """Each direction of the hidden layer's kernels under each strategy, interleaved."""
    from stlsim.engines import numba_backend as nb
    out = {}
    for B in args.batch:
        net = make_stlsim(stlsim, np, "rleaky", np.float32)
        x = (rng.random((args.T, B, 700)) < args.density).astype(np.float32)
        current = (x.reshape(-1, 700) @ net.params["0.weight"].T).reshape(args.T, B, 128)
        theta = net.params["0.theta"]
        recurrence = net.layers[0].recurrence({"recurrent": net.params["0.recurrent"],
                                               "recurrent_bias": net.params["0.recurrent_bias"]})
        neuron, surrogate = net.neuron, net.surrogate
        spikes, membrane = nb.lif_forward_stateful(current, theta, neuron, surrogate, False,
                                                   recurrence)
        grad = rng.normal(size=spikes.shape).astype(np.float32)
        saved = dict(recurrent_cpu.STRATEGY)
        fns = {}
        for strategy in ("fused", "blas"):
            def forward(strategy=strategy):
                recurrent_cpu.STRATEGY["forward"] = strategy
                nb.lif_forward_stateful(current, theta, neuron, surrogate, False, recurrence)

            def backward(strategy=strategy):
                recurrent_cpu.STRATEGY["backward"] = strategy
                nb.lif_backward_stateful(grad, membrane, spikes, theta, neuron, surrogate,
                                         recurrence=recurrence)
            fns[f"B{B}/forward/{strategy}"], fns[f"B{B}/backward/{strategy}"] = forward, backward
        try:
            for fn in fns.values():
                fn()
            times = {k: [] for k in fns}
            for r in range(max(3, args.rounds)):
                for key, fn in fns.items():
                    best = float("inf")
                    for _ in range(3):
                        t0 = time.perf_counter()
                        fn()
                        best = min(best, time.perf_counter() - t0)
                    times[key].append(best * 1e3)
        finally:
            recurrent_cpu.STRATEGY.update(saved)
        out.update({k: float(np.median(v)) for k, v in times.items()})
        out[f"B{B}/hidden_rate"] = float(spikes.mean())
    return out


# ------------------------------------------------------------------------- the parent --

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--density", type=float, default=0.015)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2, help="calls per entry (minimum taken)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.T, args.rounds, args.calls = 100, 2, 1
    if args.child is not None:
        return child(args)
    runs = []
    for n in args.threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(n), OMP_NUM_THREADS=str(n),
                   MKL_NUM_THREADS=str(n), STLSIM_NUM_THREADS=str(n))
        cmd = [sys.executable, "-m", "benchmarks.recurrent_speed", "--child", str(n),
               "--T", str(args.T), "--density", str(args.density), "--rounds", str(args.rounds),
               "--calls", str(args.calls), "--batch", *map(str, args.batch)]
        done = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True,
                              cwd=HERE.parent)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    summary = summarise(runs, args)
    result = {
        "what": f"700-128r-20, T={args.T}, input density {args.density}, float32, one training "
                "step (forward + mse_rate loss on the output spikes + backward); median over "
                "rounds of the min over calls, ms",
        "machine_note": "shared 2-core VM, loaded by other jobs (see the load averages); "
                        "compare the ratios, measured in one process per thread count",
        "T": args.T, "batch": args.batch, "density": args.density, "rounds": args.rounds,
        "calls": args.calls, "runs": runs, "summary": summary,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("recurrent_speed_quick.json" if args.quick else "recurrent_speed.json")
    path.write_text(json.dumps(result, indent=1))
    for line in summary["lines"]:
        print(line)
    print("wrote", path)


def summarise(runs, args):
    lines, table = [], {}
    for run in runs:
        n = run["threads"]
        lines.append(f"threads {n} (stlsim {run['stlsim_threads']}, torch {run['torch_threads']}); "
                     f"load {run['load_before'][0]:.2f} -> {run['load_after'][0]:.2f}; kernels "
                     f"ran: {run['kernels_ran']}")
        med = run["median_ms"]
        for model in MODELS:
            for B in args.batch:
                key = f"{model}/{B}"
                numba, numpy = med[f"{key}/stlsim_numba"], med[f"{key}/stlsim_numpy"]
                peers = {p: med[f"{key}/{p}"] for p in PEERS[model]}
                fastest = min(peers, key=peers.get)
                ratio = numba / peers[fastest]
                table[f"threads{n}/{key}"] = {"stlsim_numba_ms": numba, "stlsim_numpy_ms": numpy,
                                              **{f"{p}_ms": v for p, v in peers.items()},
                                              "fastest_peer": fastest,
                                              "numba_over_fastest_peer": ratio,
                                              "target_met (<= 0.5)": ratio <= 0.5}
                lines.append(f"  {model:6s} B={B:<3d} stlsim numba {numba:9.1f} ms, numpy "
                             f"{numpy:9.1f} ms; " + ", ".join(f"{p} {v:9.1f} ms"
                                                             for p, v in peers.items())
                             + f"; numba / {fastest} = {ratio:.3f}"
                             + (" (target met)" if ratio <= 0.5 else " (target missed)"))
        strat = run["strategies_ms"]
        for B in args.batch:
            lines.append(f"  kernels B={B}: forward fused {strat[f'B{B}/forward/fused']:.2f} ms, "
                         f"blas {strat[f'B{B}/forward/blas']:.2f} ms; backward fused "
                         f"{strat[f'B{B}/backward/fused']:.2f} ms, blas "
                         f"{strat[f'B{B}/backward/blas']:.2f} ms (hidden rate "
                         f"{strat[f'B{B}/hidden_rate']:.3f})")
    return {"table": table, "lines": lines}


if __name__ == "__main__":
    main()
