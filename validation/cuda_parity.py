"""Parity of the CUDA backend (``stlsim.engines.cuda_backend``) with the NumPy reference.

What is checked, with these error budgets (float64: 1e-12, float32: 1e-5,
relative to max(1, max |reference|); spikes must be identical):

1. the neuron kernels through the per-layer protocol (``lif_forward``,
   ``lif_backward``): both resets, all four surrogates, detach_reset on and off,
   smooth mode, thresholds <= 0 and a membrane exactly at threshold (H(0) = 1); the
   neuron conventions of docs/model.md Section 8; and every surrogate the kernels compile
   (docs/model.md 9.11; ``--quick``: the five two-parameter ones), none falling back;
2. the device-resident Dense path (``fused_cuda.loss_and_grad``, ``fused_cuda.forward``) against
   ``Network.loss_and_grad``/``forward`` on the NumPy backend: loss, every gradient,
   spikes and membranes of every layer; bias, shared thresholds, float32;
3. a conv network through the per-layer protocol (``Network`` with backend="cuda");
4. the GEMM (all transpose cases, uint8 spikes, partial tiles) and bitwise
   determinism of two identical training steps;
5. proof that the CUDA path ran: kernel launch counters > 0, no NumPy fallback.

Run it in Numba's CUDA simulator (no GPU needed; slow, so the sizes are tiny)::

    python -m validation.cuda_parity --sim [--json results.json]      # from the repo root

or on a GPU, with larger sizes and every available GEMM (CuPy's cuBLAS and the
tiled numba.cuda kernel)::

    python -m validation.cuda_parity [--json results.json]

Exit status 0 when every check passes. ``tests/test_cuda_sim.py`` runs the first form
(``--quick``). It imports only stlsim, so ``python validation/cuda_parity.py`` works too.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sim", action="store_true",
                        help="run in Numba's CUDA simulator (sets NUMBA_ENABLE_CUDASIM=1)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--quick", action="store_true",
                        help="fewer network and GEMM configurations (every neuron configuration)")
    args = parser.parse_args(argv)
    if args.sim:
        if "numba" in sys.modules and os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
            raise SystemExit("--sim must be given before Numba is imported")
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"        # read when Numba is imported
        # The simulator runs a block's threads as Python threads and polls them; a short
        # GIL switch interval makes its barriers (the GEMM's syncthreads) much faster.
        sys.setswitchinterval(5e-5)

    import numpy as np

    import stlsim
    from stlsim.engines import cuda_backend as backend
    from stlsim.engines import fused_cuda
    from stlsim.kernels import cuda_gemm

    start = time.perf_counter()
    simulator = backend.SIMULATOR
    checks = []

    def error(got, reference):
        got, reference = np.asarray(got, dtype=np.float64), np.asarray(reference, dtype=np.float64)
        if got.shape != reference.shape:
            return float("inf")
        if got.size == 0:
            return 0.0
        return float(np.max(np.abs(got - reference)) / max(1.0, float(np.max(np.abs(reference)))))

    def record(name, errors, spikes_equal=True, tol=None):
        worst = max(errors.values()) if errors else 0.0
        ok = bool(spikes_equal) and worst <= tol
        checks.append({"name": name, "ok": ok, "max_error": worst, "tolerance": tol,
                       "spikes_identical": bool(spikes_equal),
                       "errors": {k: v for k, v in errors.items()}})
        print(f"{'ok  ' if ok else 'FAIL'} {name}: max error {worst:.2e} (tol {tol:.0e})"
              + ("" if spikes_equal else "; SPIKES DIFFER"), flush=True)

    tolerance = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
    surrogates = {"atan": stlsim.surrogate.get("atan"), "sigmoid": stlsim.surrogate.get("sigmoid"),
                  "rectangular": stlsim.surrogate.get("rectangular"),
                  "superspike": stlsim.surrogate.get("superspike")}
    from stlsim.engines.clock import lif_forward as reference_forward
    from stlsim.grad.bptt import lif_backward as reference_backward

    # --- 1. neuron kernels, per-layer protocol -------------------------------------------
    T, B, N = (5, 3, 8) if simulator else (40, 32, 96)
    rng = np.random.default_rng(1)
    configs = []
    for dtype in (np.float64, np.float32):
        for reset in ("hard", "soft"):
            for name in surrogates:
                for detach in (False, True):
                    for smooth in (False, True):
                        configs.append((np.dtype(dtype), reset, name, detach, smooth))
    for dtype, reset, name, detach, smooth in configs:
        tau = 0.5 if reset == "hard" else 0.7
        neuron = stlsim.LIF(tau=tau, reset=reset, detach_reset=detach)
        theta = rng.uniform(-0.5, 1.5, N).astype(dtype)
        current = rng.uniform(-1.0, 2.5, (T, B, N)).astype(dtype)
        current[0, 0, 0] = theta[0]                     # m_1 = theta exactly: H(0) = 1 spike
        grad_spikes = rng.normal(size=(T, B, N)).astype(dtype)
        surrogate = surrogates[name]
        spikes_ref, membrane_ref = reference_forward(current, theta, neuron, surrogate, smooth)
        spikes, membrane = backend.lif_forward(current, theta, neuron, surrogate, smooth)
        delta_ref, theta_ref = reference_backward(grad_spikes, membrane_ref, spikes_ref, theta,
                                                  neuron, surrogate)
        delta, grad_theta = backend.lif_backward(grad_spikes, membrane_ref, spikes_ref, theta,
                                                 neuron, surrogate)
        same = np.array_equal(spikes, spikes_ref) if not smooth else True
        errors = {"membrane": error(membrane, membrane_ref), "grad_membrane": error(delta, delta_ref),
                  "grad_theta": error(grad_theta, theta_ref)}
        if smooth:
            errors["spikes (smooth)"] = error(spikes, spikes_ref)
        if not smooth and spikes[0, 0, 0] != 1:
            same = False                                # the spike AT threshold is missing
        record(f"neuron {dtype.name} {reset} {name} detach={detach} smooth={smooth}", errors,
               same, tolerance[dtype])

    # --- 1b. the neuron conventions of docs/model.md Section 8, per-layer protocol ----------
    conventions = {
        "after_leak": dict(reset="subtract_after_leak", detach_reset=True, spike_at_threshold=False,
                           v_init=0.6),
        "after_leak_attached": dict(reset="subtract_after_leak"),
        "none": dict(reset="none", input_gain=0.5),
        "leak_gain_vreset": dict(input_gain=0.1, v_leak=0.2, v_reset=0.1, v_init=0.2, tau=0.9),
        "per_neuron_tau": dict(tau=np.linspace(0.1, 0.95, N), reset="soft"),
        "strict": dict(spike_at_threshold=False),
    }
    def compiled_matches(label, neuron, surrogate, dtype, theta_low):
        """Spiking and smooth mode of one neuron on the CUDA kernels against the reference;
        a fallback to the NumPy reference fails the check."""
        theta = rng.uniform(theta_low, 1.2, N).astype(dtype)
        current = rng.uniform(-1.0, 2.5, (T, B, N)).astype(dtype)
        grad_spikes = rng.normal(size=(T, B, N)).astype(dtype)
        before = backend.CALLS["fallback:numpy"]
        for smooth in (False, True):
            spikes_ref, membrane_ref = reference_forward(current, theta, neuron, surrogate, smooth)
            spikes, membrane = backend.lif_forward(current, theta, neuron, surrogate, smooth)
            delta_ref, theta_ref = reference_backward(grad_spikes, membrane_ref, spikes_ref,
                                                      theta, neuron, surrogate)
            delta, grad_theta = backend.lif_backward(grad_spikes, membrane_ref, spikes_ref,
                                                     theta, neuron, surrogate)
            errors = {"membrane": error(membrane, membrane_ref),
                      "grad_current": error(delta, delta_ref),
                      "grad_theta": error(grad_theta, theta_ref)}
            same = True if smooth else np.array_equal(spikes, spikes_ref)
            if smooth:
                errors["spikes (smooth)"] = error(spikes, spikes_ref)
            ran = backend.CALLS["fallback:numpy"] == before
            record(f"{label} smooth={smooth}", errors, same and ran, tolerance[dtype])

    for dtype in (np.dtype(np.float64), np.dtype(np.float32)):
        for label, options in conventions.items():
            options = dict(options)
            neuron = stlsim.LIF(tau=options.pop("tau", 0.6), **options)
            compiled_matches(f"convention {dtype.name} {label}", neuron, surrogates["atan"], dtype,
                             -0.3)

    # --- 1c. every surrogate the kernels compile (docs/model.md 9.11: the peers' one- and
    # two-parameter ones), soft reset, spiking and smooth; none may fall back -------------------
    from stlsim.kernels.scalar import SURROGATE_CODES
    two_parameter = [n for n in SURROGATE_CODES if stlsim.surrogate.get(n).second is not None]
    for dtype in (np.dtype(np.float64), np.dtype(np.float32)):
        for name in (two_parameter if args.quick else SURROGATE_CODES):   # --quick: the five
            compiled_matches(f"surrogate {dtype.name} {name}", stlsim.LIF(tau=0.7, reset="soft"),
                             stlsim.surrogate.get(name), dtype, 0.2)

    # --- 2. the device-resident Dense path ---------------------------------------------------
    def dense_net(sizes, dtype, reset="hard", surrogate="atan", detach=False, bias=False,
                  sharing="neuron", population=2, tau=0.5):
        layers = [stlsim.Dense(a, b, bias=bias, threshold_sharing=sharing, init_gain=2.0)
                  for a, b in zip(sizes[:-1], sizes[1:])]
        net = stlsim.Network(layers, stlsim.LIF(tau=tau, reset=reset, detach_reset=detach),
                             surrogate, population=population, seed=3, dtype=dtype, backend="numpy")
        for key in net.params:
            if key.endswith(".theta"):
                net.params[key][...] = np.random.default_rng(4).uniform(
                    0.05, 0.6, net.params[key].shape).astype(dtype)
        return net

    sizes = (12, 10, 6) if simulator else (100, 64, 20)
    T, B = (4, 3) if simulator else (8, 32)
    network_configs = [
        dict(dtype=np.float64, reset="hard", surrogate="atan"),
        dict(dtype=np.float64, reset="soft", surrogate="sigmoid", tau=0.8),
        dict(dtype=np.float64, reset="hard", surrogate="superspike", detach=True),
        dict(dtype=np.float64, reset="soft", surrogate="rectangular", bias=True, sharing="layer"),
        dict(dtype=np.float64, reset="soft", surrogate="atan", detach=True, smooth=True),
        dict(dtype=np.float32, reset="hard", surrogate="atan"),
        dict(dtype=np.float32, reset="soft", surrogate="sigmoid", bias=True, smooth=True),
    ]
    if args.quick:
        network_configs = [network_configs[i] for i in (2, 3, 6)]
    gemms = ["numba-tiled"] if simulator else [g for g in ("cupy", "numba-tiled")
                                               if g != "cupy" or cuda_gemm.cupy_version() is not None]
    for gemm in gemms:
        backend.set_gemm(gemm)
        for config in network_configs:
            config = dict(config)
            smooth = config.pop("smooth", False)
            dtype = np.dtype(config["dtype"])
            net = dense_net(sizes, **config)
            x = np.random.default_rng(5).random((T, B, sizes[0])).astype(dtype)
            y = np.arange(B) % net.n_classes
            loss_ref, grads_ref = net.loss_and_grad(x, y, smooth=smooth, backend="numpy")
            before = backend.CALLS["fused_loss_and_grad"]
            loss, grads = net.loss_and_grad(x, y, smooth=smooth, backend="cuda")
            used_fused = backend.CALLS["fused_loss_and_grad"] == before + 1
            record_ref = net.forward(x, smooth=smooth, backend="numpy")
            spikes, membranes = fused_cuda.forward(net.layers, net._layer_params(), x, net.neuron,
                                                      net.surrogate, smooth)
            errors = {"loss": error(loss, loss_ref)}
            errors.update({f"grad {k}": error(grads[k], grads_ref[k]) for k in grads_ref})
            errors.update({f"membrane {i}": error(m, r) for i, (m, r) in
                           enumerate(zip(membranes, record_ref.membrane))})
            if smooth:
                errors.update({f"spikes {i} (smooth)": error(s, r) for i, (s, r) in
                               enumerate(zip(spikes, record_ref.spikes))})
                same = True
            else:
                same = all(np.array_equal(s, r) for s, r in zip(spikes, record_ref.spikes))
                if not same:
                    print("  differing spikes per layer:", [int(np.sum(s != r)) for s, r in
                                                            zip(spikes, record_ref.spikes)])
            activity = [float(s.mean()) for s in record_ref.spikes]
            label = " ".join(f"{k}={v.__name__ if isinstance(v, type) else v}" for k, v in config.items())
            record(f"dense network [{gemm}] {label} smooth={smooth} (firing {activity})", errors,
                   same and used_fused, tolerance[dtype])
        # Two identical steps give bitwise identical results (no atomics, fixed orders).
        net = dense_net(sizes, np.float64, reset="soft", surrogate="atan")
        x = np.random.default_rng(6).random((T, B, sizes[0]))
        y = np.arange(B) % net.n_classes
        first = net.loss_and_grad(x, y, backend="cuda")
        second = net.loss_and_grad(x, y, backend="cuda")
        identical = first[0] == second[0] and all(np.array_equal(first[1][k], second[1][k])
                                                   for k in first[1])
        checks.append({"name": f"deterministic [{gemm}]", "ok": bool(identical)})
        print(f"{'ok  ' if identical else 'FAIL'} deterministic [{gemm}]: two steps bitwise equal",
              flush=True)

    # The per-layer protocol on the same Dense network (Network.forward uses it).
    net = dense_net(sizes, np.float64, reset="hard", surrogate="atan")
    x = np.random.default_rng(7).random((T, B, sizes[0]))
    ref, got = net.forward(x, backend="numpy"), net.forward(x, backend="cuda")
    record("Network.forward per-layer path", {f"membrane {i}": error(a, b) for i, (a, b) in
                                              enumerate(zip(got.membrane, ref.membrane))},
           all(np.array_equal(a, b) for a, b in zip(got.spikes, ref.spikes)), 1e-12)

    # --- 2b. the device-resident path with other frameworks' neurons ------------------------
    for preset in ("snntorch.Leaky", "norse.LIFBoxCell", "spikingjelly.LIFNode"):
        net = dense_net(sizes, np.float64)
        net = stlsim.Network(net.layers, neuron=stlsim.LIF.preset(preset, theta_init=0.3),
                             surrogate="atan", population=2, seed=3, backend="numpy")
        for key in net.params:
            if key.endswith(".weight"):
                net.params[key] *= 4.0
        x = np.random.default_rng(6).random((T, B, sizes[0]))
        y = np.arange(B) % net.n_classes
        loss_ref, grads_ref = net.loss_and_grad(x, y, backend="numpy")
        before = backend.CALLS["fused_loss_and_grad"]
        loss, grads = net.loss_and_grad(x, y, backend="cuda")
        used_fused = backend.CALLS["fused_loss_and_grad"] == before + 1
        errors = {"loss": error(loss, loss_ref)}
        errors.update({f"grad {k}": error(grads[k], grads_ref[k]) for k in grads_ref})
        record(f"dense network {preset} float64", errors, used_fused, 1e-12)

    # --- 3. a conv network: per-layer protocol, GEMMs on the host ----------------------------
    conv = stlsim.Network([stlsim.Conv2d(1, 2, 3, padding=1, init_gain=3.0), stlsim.Flatten(),
                           stlsim.Dense(2 * 5 * 5, 4, init_gain=3.0)],
                          stlsim.LIF(theta_init=0.4), population=2, seed=2,
                          input_shape=(1, 5, 5), backend="numpy")
    x = np.random.default_rng(8).random((3 if simulator else 8, 2 if simulator else 16, 1, 5, 5))
    y = np.arange(x.shape[1]) % conv.n_classes
    loss_ref, grads_ref = conv.loss_and_grad(x, y, backend="numpy")
    before = backend.CALLS["lif_backward"]
    loss, grads = conv.loss_and_grad(x, y, backend="cuda")
    errors = {"loss": error(loss, loss_ref)}
    errors.update({f"grad {k}": error(grads[k], grads_ref[k]) for k in grads_ref})
    record("conv network per-layer path", errors, backend.CALLS["lif_backward"] == before + 2, 1e-12)

    # --- 4. the GEMM on its own ------------------------------------------------------------
    from numba import cuda
    rng = np.random.default_rng(9)
    m, k, n = (20, 35, 18) if simulator else (300, 700, 130)
    cases = ((False, True, True), (True, False, False), (False, False, False), (True, True, True))
    for gemm in gemms:
        backend.set_gemm(gemm)
        for trans_a, trans_b, spikes_a in cases[:2] if args.quick else cases:
            a = (rng.random((k, m) if trans_a else (m, k)) < 0.3)
            a = a.astype(np.uint8) if spikes_a else rng.normal(size=a.shape)
            b = rng.normal(size=(n, k) if trans_b else (k, n))
            out = cuda.device_array((m, n))
            cuda_gemm.matmul(cuda.to_device(a), cuda.to_device(b), out, trans_a, trans_b)
            expected = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)
            record(f"gemm [{gemm}] trans_a={trans_a} trans_b={trans_b} a={a.dtype}",
                   {"product": error(out.copy_to_host(), expected)}, True, 1e-12)

    # --- 5. the CUDA path ran -----------------------------------------------------------------
    calls = dict(backend.CALLS)
    ran = all(calls.get(key, 0) > 0 for key in ("kernel:lif_forward", "kernel:lif_backward",
                                                 "kernel:column_sum", "kernel:spread_rates",
                                                 "fused_loss_and_grad", "lif_forward",
                                                 "lif_backward"))
    ran = ran and sum(v for key, v in calls.items() if key.startswith("gemm:")) > 0
    ran = ran and calls.get("fallback:numpy", 0) == 0
    checks.append({"name": "CUDA path ran (launch counters)", "ok": bool(ran), "calls": calls})
    print(f"{'ok  ' if ran else 'FAIL'} CUDA path ran: {calls}", flush=True)

    passed = all(c["ok"] for c in checks)
    result = {"info": backend.info(), "passed": passed, "n_checks": len(checks),
              "n_failed": sum(not c["ok"] for c in checks),
              "seconds": round(time.perf_counter() - start, 2), "checks": checks}
    print(f"{len(checks) - result['n_failed']} passed, {result['n_failed']} failed "
          f"in {result['seconds']} s on {result['info']['device']}", flush=True)
    if args.json:
        from stlsim._io import atomic_path

        with atomic_path(args.json) as tmp, open(tmp, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
