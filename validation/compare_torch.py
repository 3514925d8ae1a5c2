"""Compare stlsim's BPTT gradients with an independent PyTorch autograd reference.

Runs random networks (default 784-400-200-10*P, T = 20..50, B = 16) over the grid
reset x detach_reset x surrogate x loss x dtype (plus smooth mode in float64) and
writes the error per parameter tensor to ``results/torch_errors.{json,md}``.

    python -m validation.compare_torch --out validation/results --seed 0      # from the repo root

This module also holds the case generator and the stlsim wrapper that
``compare_jax.py`` and the tests reuse; it imports torch only inside ``main``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import stlsim
from stlsim._io import atomic_path

HERE = Path(__file__).resolve().parent

SURROGATES = ("atan", "sigmoid", "rectangular", "superspike")
DEFAULT_SURROGATE_PARAM = {"atan": 2.0, "sigmoid": 4.0, "rectangular": 1.0, "superspike": 10.0}


# ----------------------------------------------------------------------------- cases
def random_case(rng: np.random.Generator, sizes, T: int, B: int, *, population: int = 1,
                bias: bool = False, analog: bool = False, dyadic: bool = False,
                input_rate: float = 0.3, nonpositive_fraction: float = 0.15):
    """Random parameters (stlsim keys), input and labels for a dense net.

    ``sizes = [n_in, hidden..., n_classes]``; the output layer has n_classes * population
    neurons. Weights are scaled to the fan-in so a good fraction of neurons spike in every
    layer; ``nonpositive_fraction`` of thresholds are drawn in [-0.5, 0] (neurons that fire
    without input). ``dyadic=True`` rounds everything to short binary fractions so sums are
    exact even in float32 (no summation-order dependence; membrane == theta ties occur).
    """
    if analog:
        x = rng.random((T, B, sizes[0]))
    else:
        x = (rng.random((T, B, sizes[0])) < input_rate).astype(np.float64)
    params = {}
    n_layers = len(sizes) - 1
    rate_in = input_rate if not analog else 0.5
    for l in range(n_layers):
        n_in = sizes[l]
        n_out = sizes[l + 1] * (population if l == n_layers - 1 else 1)
        active = max(n_in * rate_in, 1.0)
        weight = rng.normal(0.25 / active, 1.0 / np.sqrt(active), (n_out, n_in))
        theta = rng.uniform(0.25, 1.5, n_out)
        low = rng.random(n_out) < nonpositive_fraction
        theta[low] = rng.uniform(-0.5, 0.0, int(low.sum()))
        if dyadic:
            weight = np.round(weight * 32) / 32
            theta = np.round(theta * 8) / 8
        params[f"{l}.weight"] = weight
        params[f"{l}.theta"] = theta
        if bias:
            b = rng.normal(0.0, 0.2, n_out)
            params[f"{l}.bias"] = np.round(b * 32) / 32 if dyadic else b
        rate_in = 0.35  # typical rate of a hidden layer with this scaling
    y = rng.integers(0, sizes[-1], B)
    return params, x, y


def make_surrogate(name: str, param: float | None = None):
    value = DEFAULT_SURROGATE_PARAM[name] if param is None else param
    sur = stlsim.surrogate
    return {"atan": lambda: sur.ATan(alpha=value), "sigmoid": lambda: sur.Sigmoid(alpha=value),
            "rectangular": lambda: sur.Rectangular(width=value),
            "superspike": lambda: sur.SuperSpike(beta=value)}[name]()


def stlsim_network(params: dict, *, sizes, population=1, tau=0.5, reset="hard",
                   detach_reset=False, surrogate="atan", surrogate_param=None, dtype=np.float64,
                   backend="numpy", engine="clock"):
    n_layers = len(sizes) - 1
    bias = "0.bias" in params
    layers = [stlsim.Dense(sizes[l], sizes[l + 1] * (population if l == n_layers - 1 else 1),
                           bias=bias) for l in range(n_layers)]
    net = stlsim.Network(layers, neuron=stlsim.LIF(tau=tau, reset=reset, detach_reset=detach_reset),
                         surrogate=make_surrogate(surrogate, surrogate_param), population=population,
                         seed=0, dtype=dtype, backend=backend, engine=engine)
    if set(net.params) != set(params):
        raise RuntimeError(f"stlsim params {sorted(net.params)} != case params {sorted(params)}")
    for key, value in params.items():
        net.params[key][...] = value
    return net


def stlsim_run(params, x, y, *, sizes, population=1, tau=0.5, reset="hard", detach_reset=False,
               surrogate="atan", surrogate_param=None, loss="mse_rate", smooth=False,
               dtype=np.float64, backend="numpy", engine="clock"):
    """Same return dict as the references' ``run`` (all float64)."""
    net = stlsim_network(params, sizes=sizes, population=population, tau=tau, reset=reset,
                         detach_reset=detach_reset, surrogate=surrogate,
                         surrogate_param=surrogate_param, dtype=dtype, backend=backend, engine=engine)
    xd = np.asarray(x, dtype=dtype)
    value, grads, rec = net.loss_and_grad(xd, y, loss=loss, smooth=smooth, return_record=True)
    def f64(a):
        return np.asarray(a, dtype=np.float64)
    return {"loss": float(value), "grads": {k: f64(g) for k, g in grads.items()},
            "spikes": [f64(s) for s in rec.spikes], "membranes": [f64(m) for m in rec.membrane],
            "rates": f64(rec.rates)}


def tensor_errors(got: np.ndarray, ref: np.ndarray) -> dict:
    """max abs error and max abs error relative to the reference's largest entry."""
    diff = float(np.max(np.abs(got - ref))) if got.size else 0.0
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    return {"max_abs": diff, "max_rel": diff / scale if scale > 0 else (0.0 if diff == 0 else np.inf),
            "ref_max": scale}


def compare(got: dict, ref: dict, params: dict | None = None) -> dict:
    """Errors of ``got`` against ``ref``.

    ``spike_mismatches`` counts entries differing by more than 1e-9 (any flipped binary
    spike; in smooth mode "spikes" are P(m - theta) and normally agree to ~1e-15).
    ``flip_margin``: in the first layer with a flipped spike, the largest |m - theta| of
    the reference at a flip (tiny values mean a rounding-level near-tie at threshold).
    """
    mismatches = [np.abs(a - b) > 1e-9 for a, b in zip(got["spikes"], ref["spikes"])]
    flip_margin = None
    if params is not None:
        for l, mask in enumerate(mismatches):
            if mask.any():
                gap = np.abs(ref["membranes"][l] - params[f"{l}.theta"])
                flip_margin = float(np.max(gap[mask]))
                break
    return {"loss_abs": abs(got["loss"] - ref["loss"]),
            "spike_mismatches": int(sum(int(m.sum()) for m in mismatches)),
            "spike_max_abs": max(float(np.max(np.abs(a - b)))
                                 for a, b in zip(got["spikes"], ref["spikes"])),
            "flip_margin": flip_margin,
            "membrane_max_abs": max(float(np.max(np.abs(a - b)))
                                    for a, b in zip(got["membranes"], ref["membranes"])),
            "spike_rates": [float(s.mean()) for s in ref["spikes"]],
            "grads": {k: tensor_errors(got["grads"][k], ref["grads"][k]) for k in ref["grads"]}}


# ----------------------------------------------------------------------------- grid
def grid(quick: bool = False):
    for dtype, smooth in (("float64", False), ("float64", True), ("float32", False)):
        for reset, detach, surrogate, loss in itertools.product(
                ("hard", "soft"), (False, True), SURROGATES, ("mse_rate", "ce_rate")):
            if quick and (detach or loss == "ce_rate"):
                continue
            yield {"reset": reset, "detach_reset": detach, "surrogate": surrogate, "loss": loss,
                   "dtype": dtype, "smooth": smooth}


def run_grid(reference_run, name: str, args) -> list[dict]:
    rng = np.random.default_rng(args.seed)
    sizes = [args.n_in, *args.hidden, args.classes]
    rows = []
    for i, cfg in enumerate(grid(args.quick)):
        T = int(rng.integers(args.t_min, args.t_max + 1))
        bias = bool(i % 2)
        params, x, y = random_case(rng, sizes, T, args.batch, population=args.population, bias=bias)
        dtype = np.dtype(cfg["dtype"]).type
        if dtype is np.float32:
            params = {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()}
        kw = dict(population=args.population, reset=cfg["reset"], detach_reset=cfg["detach_reset"],
                  surrogate=cfg["surrogate"], loss=cfg["loss"], smooth=cfg["smooth"], dtype=dtype)
        t0 = time.perf_counter()
        ref = reference_run(params, x, y, **kw)
        t1 = time.perf_counter()
        got = stlsim_run(params, x, y, sizes=sizes, **kw)
        t2 = time.perf_counter()
        row = {**cfg, "T": T, "B": args.batch, "bias": bias, "sizes": sizes,
               "population": args.population, **compare(got, ref, params),
               "seconds_reference": t1 - t0, "seconds_stlsim": t2 - t1}
        rows.append(row)
        worst = max(e["max_rel"] for e in row["grads"].values())
        print(f"[{name}] {i:3d} {cfg['dtype']} smooth={cfg['smooth']!s:5} {cfg['reset']:4} "
              f"detach={cfg['detach_reset']!s:5} {cfg['surrogate']:11} {cfg['loss']:8} T={T:2d} "
              f"spike_mismatch={row['spike_mismatches']} worst_rel={worst:.2e} flip_margin={row['flip_margin']}", flush=True)
    return rows


def _atomic_write(path: Path, text: str):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def write_results(rows, name: str, reference: str, args, versions: dict):
    out = Path(args.out)
    meta = {"schema_version": 1, "reference": reference, "seed": args.seed,
            "stlsim_version": getattr(stlsim, "__version__", "unknown"),
            "python": platform.python_version(), "numpy": np.__version__, **versions,
            "conventions": {"spike_at_threshold": True, "tau": 0.5, "time_layout": "(T, B, N)",
                            "max_rel": "max|stlsim - ref| / max|ref| per tensor"},
            "sizes": [args.n_in, *args.hidden, args.classes], "population": args.population,
            "batch": args.batch, "T_range": [args.t_min, args.t_max]}
    _atomic_write(out / f"{name}.json", json.dumps({"meta": meta, "rows": rows}, indent=1))

    lines = [f"# stlsim vs {reference}: gradient errors", "",
             f"Network {'-'.join(map(str, meta['sizes']))} (x{args.population} population on the output), "
             f"B = {args.batch}, T in [{args.t_min}, {args.t_max}], seed {args.seed}. "
             "Per parameter tensor: max |stlsim - ref| (abs) and that divided by max |ref| (rel). "
             "float32 rows compare stlsim float32 with the reference in float32. "
             "Smooth rows use the surrogate primitive in the forward (exact gradients). "
             "'spike mism.' counts spikes that differ; 'flip margin' is the largest |m - theta| of "
             "the reference at a flipped spike in the first layer that has one. In float32, sums "
             "of ~800 inputs in a different order can put a membrane on the other side of the "
             "threshold when it lies within rounding of it; such a flip changes every later "
             "step, so those rows' gradient errors measure the flip, not the BPTT.", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())
             + f", numpy {np.__version__}, python {platform.python_version()}.", "",
             "| dtype | smooth | reset | detach | surrogate | loss | T | bias | spike rates | "
             "spike mism. | flip margin | loss abs | membrane abs | tensor | max abs | max rel |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        first = True
        for key, e in r["grads"].items():
            head = (f"| {r['dtype']} | {r['smooth']} | {r['reset']} | {r['detach_reset']} | "
                    f"{r['surrogate']} | {r['loss']} | {r['T']} | {r['bias']} | "
                    f"{' '.join(f'{s:.2f}' for s in r['spike_rates'])} | {r['spike_mismatches']} | "
                    f"{'-' if r['flip_margin'] is None else format(r['flip_margin'], '.1e')} | "
                    f"{r['loss_abs']:.1e} | {r['membrane_max_abs']:.1e} |") if first else "|" + " |" * 13
            lines.append(f"{head} {key} | {e['max_abs']:.2e} | {e['max_rel']:.2e} |")
            first = False
    summary = {}
    for r in rows:
        k = (r["dtype"], r["smooth"])
        worst = max(e["max_rel"] for e in r["grads"].values())
        summary.setdefault(k, []).append((worst, r["spike_mismatches"], r["flip_margin"]))
    lines += ["", "## Summary", "",
              "| dtype | smooth | configs | configs with spike flips | worst max rel, rows without flips "
              "| worst max rel, all rows | largest flip margin |", "|---|---|---|---|---|---|---|"]
    for (dt, sm), vals in summary.items():
        clean = [w for w, n, _ in vals if n == 0]
        margins = [m for _, n, m in vals if m is not None]
        lines.append(f"| {dt} | {sm} | {len(vals)} | {sum(n > 0 for _, n, _ in vals)} | "
                     f"{max(clean):.2e} | {max(w for w, _, _ in vals):.2e} | "
                     f"{format(max(margins), '.1e') if margins else '-'} |" if clean else
                     f"| {dt} | {sm} | {len(vals)} | {len(vals)} | - | {max(w for w, _, _ in vals):.2e} | "
                     f"{format(max(margins), '.1e') if margins else '-'} |")
    _atomic_write(out / f"{name}.md", "\n".join(lines) + "\n")
    print(f"wrote {out / (name + '.json')} and {out / (name + '.md')}")


def parse_args(description: str, argv=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", default=str(HERE / "results"), help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-in", type=int, default=784)
    p.add_argument("--hidden", type=int, nargs="*", default=[400, 200])
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--population", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--t-min", type=int, default=20)
    p.add_argument("--t-max", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="skip detach_reset=True and ce_rate rows")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    import torch

    from validation.references import torch_model

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rows = run_grid(torch_model.run, "torch", args)
    write_results(rows, "torch_errors", "PyTorch autograd (validation/references/torch_model.py)", args,
                  {"torch": torch.__version__})


if __name__ == "__main__":
    main()
