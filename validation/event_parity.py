"""Event engine vs clock engine on random networks: the worst errors.

For each of ``--networks`` random two- or three-layer Dense networks (sizes, T up to
300, batch 1-3, input density 0.02-0.2, hard or soft reset, detach_reset on or off,
all four surrogates, tau in {0, 0.3, 0.5, 0.9, 0.99, 1}, thresholds drawn in
[-1, 1.2] so that some are <= 0, a bias or analog input weights on some, the event
engine's gather or push path for the currents), float64:

* spike trains of every layer must be identical,
* the largest |membrane difference| and |current difference| (budget 1e-12),
* the largest relative gradient error per tensor (``grad.check.max_relative_error``,
  budget 1e-10), from ``loss_and_grad`` on both engines.

    python -m validation.event_parity [--networks 60] [--json validation/results/event_parity.json]

Exit status 0 when every network is within budget.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import stlsim
from stlsim._io import atomic_path, provenance
from stlsim.engines import event
from stlsim.grad.check import max_relative_error

SURROGATES = ("atan", "sigmoid", "rectangular", "superspike")
TAUS = (0.0, 0.3, 0.5, 0.9, 0.99, 1.0)


def random_case(seed):
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(2, 4))
    sizes = [int(rng.integers(10, 41))] + [int(rng.integers(8, 50)) for _ in range(depth - 1)]
    sizes.append(int(rng.integers(3, 11)))
    case = {"seed": seed, "sizes": sizes, "T": int(rng.choice([20, 60, 150, 300])),
            "batch": int(rng.integers(1, 4)), "density": float(rng.uniform(0.02, 0.2)),
            "reset": str(rng.choice(["hard", "soft"])), "detach": bool(rng.random() < 0.3),
            "surrogate": SURROGATES[seed % 4], "tau": float(TAUS[seed % len(TAUS)]),
            "bias": bool(rng.random() < 0.3), "analog": bool(rng.random() < 0.3),
            "path": "push" if rng.random() < 0.5 else "gather"}
    return case, rng


def run_case(case, rng):
    layers = [stlsim.Dense(a, b, init_gain=1.5, bias=case["bias"])
              for a, b in zip(case["sizes"][:-1], case["sizes"][1:])]
    neuron = stlsim.LIF(tau=case["tau"], theta_init=0.4, reset=case["reset"],
                        detach_reset=case["detach"])
    net = stlsim.Network(layers, neuron=neuron, surrogate=case["surrogate"],
                         seed=case["seed"], backend="numpy")
    for key in net.params:
        if key.endswith(".theta"):
            net.params[key][:] = rng.uniform(-1.0, 1.2, net.params[key].shape)
    shape = (case["T"], case["batch"], case["sizes"][0])
    x = (rng.random(shape) < case["density"]).astype(np.float64)
    if case["analog"]:
        x *= rng.uniform(0.2, 2.0, shape)
    y = rng.integers(0, case["sizes"][-1], case["batch"])
    event.TRANSPOSE_RATIO = event.GRAD_TRANSPOSE_RATIO = 0.0 if case["path"] == "push" else np.inf
    clock_rec, event_rec = net.forward(x, engine="clock"), net.forward(x, engine="event")
    loss_c, grads_c = net.loss_and_grad(x, y, engine="clock")
    loss_e, grads_e = net.loss_and_grad(x, y, engine="event")
    return {
        "spikes_identical": all(np.array_equal(a, b)
                                for a, b in zip(clock_rec.spikes, event_rec.spikes)),
        "hidden_firing_rate": float(clock_rec.firing_rates[0]),
        "membrane_max_abs": max(float(np.max(np.abs(a - b)))
                                for a, b in zip(clock_rec.membrane, event_rec.membrane)),
        "current_max_abs": max(float(np.max(np.abs(a - b)))
                               for a, b in zip(clock_rec.currents, event_rec.currents)),
        "loss_abs": abs(float(loss_c) - float(loss_e)),
        "grad_max_rel": max(float(max_relative_error(grads_c[k], grads_e[k])) for k in grads_c),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", type=int, default=60)
    parser.add_argument("--json", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "results", "event_parity.json"))
    args = parser.parse_args(argv)
    saved = event.TRANSPOSE_RATIO, event.GRAD_TRANSPOSE_RATIO
    rows = []
    try:
        for seed in range(args.networks):
            case, rng = random_case(seed)
            case.update(run_case(case, rng))
            case["ok"] = (case["spikes_identical"] and case["membrane_max_abs"] <= 1e-12
                          and case["current_max_abs"] <= 1e-12 and case["grad_max_rel"] <= 1e-10)
            rows.append(case)
            print(f"{seed:3d} {case['sizes']} T={case['T']} B={case['batch']} "
                  f"{case['reset']}/{case['surrogate']} tau={case['tau']} {case['path']}: "
                  f"rate {case['hidden_firing_rate']:.3f}, m {case['membrane_max_abs']:.1e}, "
                  f"I {case['current_max_abs']:.1e}, grad {case['grad_max_rel']:.1e}"
                  f"{'' if case['ok'] else '  FAIL'}", flush=True)
    finally:
        event.TRANSPOSE_RATIO, event.GRAD_TRANSPOSE_RATIO = saved
    summary = {key: max(r[key] for r in rows)
               for key in ("membrane_max_abs", "current_max_abs", "loss_abs", "grad_max_rel")}
    summary.update(networks=len(rows),
                   all_spikes_identical=all(r["spikes_identical"] for r in rows),
                   failures=[r["seed"] for r in rows if not r["ok"]])
    print(json.dumps(summary, indent=1))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with atomic_path(args.json) as tmp:
        with open(tmp, "w") as handle:
            json.dump({"provenance": provenance(validation="event_parity"), "summary": summary,
                       "networks": rows}, handle, indent=1)
    return 0 if not summary["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
