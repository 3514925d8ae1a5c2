"""What ``stlsim.interop.compare`` costs on snnTorch's MNIST CSNN (T = 25, batch 16), and on
snnTorch tutorial 5's FC network (T = 8, batch 4).

    python3 -m benchmarks.interop_cost          # writes benchmarks/results/interop_cost.json

Times (best of ``repeats`` interleaved rounds, warm, in one process) of: the peer's forward + backward alone;
the twin's float32 forward + backward (NumPy reference) alone; the twin's float64 run that
estimates the model's round-off; and ``compare`` as a whole, with ``roundoff="auto"`` (the
float64 run only where some error exceeds rtol) and ``roundoff="always"``. The budget is
compare <= 1.2 (peer + twin) where the round-off run is skipped, 1.2 (peer + 2 twin) where
it is needed (the CSNN's errors, 1.3-1.7e-5, exceed rtol = 1e-5). Wall-clock on a shared
machine: read the ratios, not the seconds; the load average is recorded.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import numpy as np


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _case(interop, entry, repeats):
    import torch

    from validation.interop_zoo import _scale
    torch.manual_seed(0)
    model = _scale(entry.build(), entry.gain).float()
    x = (np.random.default_rng(0).random((entry.T, entry.B) + entry.input_shape) < 0.3).astype(np.float32)
    probe = np.random.default_rng(0).normal(size=(entry.T, entry.B, 10))
    conv = interop.convert(model, entry.input_shape, dtype=np.float32)
    twin64 = interop.convert(model, entry.input_shape, dtype=np.float64)
    x_t = torch.as_tensor(x)

    def grad(out):
        return probe.reshape(out.shape)

    def peer():
        interop._run_peer(conv, x_t, grad)

    def twin():
        interop._run_stlsim(conv, x, grad)

    def twin_float64():
        interop._run_stlsim(twin64, x.astype(np.float64), grad)

    reports = {}

    def whole_auto():
        reports["auto"] = interop.compare(model, x, seed=0)

    def whole_always():
        reports["always"] = interop.compare(model, x, seed=0, roundoff="always")

    steps = (("peer_fwd_bwd_s", peer), ("twin_float32_s", twin), ("twin_float64_roundoff_s", twin_float64),
             ("compare_auto_s", whole_auto), ("compare_always_s", whole_always))
    for _, fn in steps:                                   # warm up (imports, caches)
        fn()
    # Interleaved: each round times every step once, so a change of the machine's load
    # during the run reaches all of them alike; the best round of each is kept.
    times = {name: [] for name, _ in steps}
    for _ in range(repeats):
        for name, fn in steps:
            times[name].append(_best(fn, 1))
    result = {name: min(values) for name, values in times.items()}
    peer_twin = result["peer_fwd_bwd_s"] + result["twin_float32_s"]
    result["roundoff_measured_by_auto"] = reports["auto"].roundoff is not None
    result["max_rel_error"] = reports["auto"].max_rel_error
    result["ok_auto"], result["ok_always"] = reports["auto"].ok, reports["always"].ok
    result["budget_peer_plus_twin_x1.2_s"] = 1.2 * peer_twin
    result["budget_with_roundoff_x1.2_s"] = 1.2 * (peer_twin + result["twin_float64_roundoff_s"])
    needed = peer_twin + (result["twin_float64_roundoff_s"] if result["roundoff_measured_by_auto"] else 0.0)
    result["compare_auto_over_its_runs"] = result["compare_auto_s"] / needed
    result["compare_always_over_peer_plus_2_twin"] = result["compare_always_s"] / (
        peer_twin + result["twin_float64_roundoff_s"])
    result["compare_outside_runs_fraction"] = _outside_runs(interop, model, x)
    result["meta"] = {"model": entry.name, "T": entry.T, "B": entry.B}
    return result


def _outside_runs(interop, model, x):
    """The share of one ``compare`` call (roundoff="always") spent outside the peer's and
    the twin's runs (conversion, hooks, the comparisons and the report), from one profile
    of the call: a ratio inside one call, so a machine's changing load moves it little."""
    import cProfile
    import pstats
    profile = cProfile.Profile()
    profile.runcall(interop.compare, model, x, seed=0, roundoff="always")
    stats = pstats.Stats(profile).stats
    cumulative = {func[2]: entry[3] for func, entry in stats.items()
                  if func[0].endswith("interop.py")}
    runs = cumulative.get("_run_peer", 0.0) + cumulative.get("_run_stlsim", 0.0)
    return 1.0 - runs / cumulative["compare"]


def main(repeats: int = 5, path: str = "benchmarks/results/interop_cost.json"):
    import torch

    import stlsim.interop as interop
    from validation.interop_zoo import ZOO
    names = ("snntorch MNIST CSNN, neuron before pooling", "snntorch tutorial 5 FC (atan)")
    result = {name: _case(interop, next(e for e in ZOO if e.name == name), repeats) for name in names}
    result["meta"] = {"repeats": repeats, "cpus": os.cpu_count(), "python": sys.version.split()[0],
                      "machine": platform.machine(), "torch": torch.__version__,
                      "load_average_1_5_15": os.getloadavg(),
                      "note": "shared 2-core machine; other jobs were running"}
    with open(path, "w") as out:
        json.dump(result, out, indent=2)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
