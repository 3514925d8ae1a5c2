"""What ``stlsim.interop.compare`` costs on snnTorch's MNIST CSNN (T = 25, batch 16).

    python3 -m benchmarks.interop_cost          # writes benchmarks/results/interop_cost.json

Times (best of ``repeats``, warm) of: the peer's forward + backward alone; the twin's
float32 forward + backward (NumPy reference) alone; the twin's float64 run that estimates
the model's round-off (float32 comparisons only); and ``compare`` as a whole. The issue's
budget is compare <= 1.2 (peer + twin); the round-off estimate is a second twin run, so
the budget that holds for it is 1.2 (peer + 2 twin). Wall-clock on a shared machine:
read the ratios, not the seconds.
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


def main(repeats: int = 3, path: str = "benchmarks/results/interop_cost.json"):
    import torch

    import stlsim.interop as interop
    from validation.interop_zoo import ZOO, _scale
    entry = next(e for e in ZOO if e.name == "snntorch MNIST CSNN, neuron before pooling")
    torch.manual_seed(0)
    model = _scale(entry.build(), entry.gain).float()
    x = (np.random.default_rng(0).random((entry.T, entry.B) + entry.input_shape) < 0.3).astype(np.float32)
    probe = np.random.default_rng(0).normal(size=(entry.T, entry.B, 10))
    conv = interop.convert(model, entry.input_shape, dtype=np.float32)
    twin64 = interop.convert(model, entry.input_shape, dtype=np.float64)
    x_t = torch.as_tensor(x)

    def peer():
        interop._run_peer(conv, x_t, lambda out: probe.reshape(out.shape))

    def twin():
        interop._run_stlsim(conv.net, x, lambda out: probe.reshape(out.shape))

    def twin_float64():
        interop._run_stlsim(twin64.net, x.astype(np.float64), lambda out: probe.reshape(out.shape))

    def whole():
        interop.compare(model, x, seed=0)

    for fn in (peer, twin, twin_float64, whole):       # warm up (imports, caches)
        fn()
    result = {name: _best(fn, repeats) for name, fn in
              (("peer_fwd_bwd_s", peer), ("twin_float32_s", twin),
               ("twin_float64_roundoff_s", twin_float64), ("compare_s", whole))}
    result["budget_peer_plus_twin_x1.2_s"] = 1.2 * (result["peer_fwd_bwd_s"] + result["twin_float32_s"])
    result["budget_with_roundoff_x1.2_s"] = 1.2 * (result["peer_fwd_bwd_s"] + result["twin_float32_s"]
                                                   + result["twin_float64_roundoff_s"])
    result["meta"] = {"model": entry.name, "T": entry.T, "B": entry.B, "repeats": repeats,
                      "cpus": os.cpu_count(), "python": sys.version.split()[0],
                      "machine": platform.machine(), "torch": torch.__version__,
                      "note": "shared 2-core machine; other jobs were running"}
    with open(path, "w") as out:
        json.dump(result, out, indent=2)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
