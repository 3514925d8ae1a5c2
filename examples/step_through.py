"""Step through BPTT on a tiny network: every forward and backward quantity, per step.

What it shows (equations of docs/model.md):

1. A 4-3-2 network of LIF neurons (T = 6 steps, one sample, hard reset, atan
   surrogate) run by ``net.step_through(x, y)``, which keeps every intermediate array.
2. A table, one row per time step, for neuron 0 of the hidden layer: the forward
   quantities I_t, m_t, s_t, v_t of (L1)-(L4) and the backward ones e_t, eps_t, g_t,
   delta_t of (B1)-(B3). Read the backward columns bottom-up: they are computed from
   t = T down to 1. At t = 5 the membrane equals theta exactly and the neuron fires
   (H(0) = 1, spike AT threshold); after each spike v_t = 0 (hard reset).
3. That the gradients reassemble from the trace: eps_t = tau delta_{t+1} (B1),
   e^1_t = W2^T delta^2_t (B6), dL/dW = sum_t delta_t (s^{l-1}_t)^T (B4) and
   dL/dtheta = -sum_t g_t sigma'(m_t - theta) (B5), each printed with its largest error.
4. A figure of the same neuron: forward quantities (top) and backward ones (bottom)
   over t.

Run:  python examples/step_through.py [--out PATH] [--no-show] [--quick]
(the network is already tiny, so --quick changes nothing.)
"""
import argparse
from pathlib import Path

import numpy as np

import stlsim

T, TAU, THETA = 6, 0.5, 1.0
NEURON = 0           # the hidden neuron the table and figure follow


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "step_through.png"),
                        help="where to save the figure (PNG)")
    parser.add_argument("--no-show", action="store_true", help="save the figure, do not open a window")
    parser.add_argument("--quick", action="store_true", help="accepted for the test suite; no effect")
    args = parser.parse_args(argv)

    import matplotlib
    if args.no_show:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net = stlsim.Network([stlsim.Dense(4, 3), stlsim.Dense(3, 2)],
                         neuron=stlsim.LIF(tau=TAU, theta_init=THETA, reset="hard"),
                         surrogate="atan", backend="numpy")
    # Hand-picked weights, so that the hidden neuron 0 fires sometimes, not always.
    net.params["0.weight"][:] = [[0.6, 0.5, -0.2, 0.4],
                                 [0.3, -0.4, 0.5, 0.2],
                                 [-0.3, 0.6, 0.4, 0.5]]
    net.params["1.weight"][:] = [[0.8, 0.4, 0.6],
                                 [0.5, 0.9, -0.3]]
    x = (np.random.default_rng(3).random((T, 1, 4)) < 0.6).astype(np.float64)   # (T, B, 4)
    y = np.array([1])

    trace = net.step_through(x, y)
    forward, backward = trace.forward[0], trace.backward[0]   # the hidden layer
    print(f"loss (mse_rate) = {trace.loss:.6f}, rates = {np.round(trace.rates[0], 3)}, label = {y[0]}")
    print(f"hidden neuron {NEURON}, theta = {THETA}, tau = {TAU}, hard reset")
    print(" t |      I_t      m_t  s_t      v_t |       e_t     eps_t       g_t   delta_t")
    for t in range(T):
        f = [forward[k][t, 0, NEURON] for k in ("I", "m", "s", "v")]
        b = [backward[k][t, 0, NEURON] for k in ("e", "eps", "g", "delta")]
        note = "   <- m_t == theta: fires, H(0) = 1" if f[1] == THETA else ""
        print(f"{t + 1:2d} | {f[0]:8.4f} {f[1]:8.4f} {f[2]:4.0f} {f[3]:8.4f} | "
              + " ".join(f"{value:9.5f}" for value in b) + note)

    # Reassemble the gradients from the trace.
    out_layer = trace.backward[1]
    hidden_spikes, W2 = forward["s"], net.params["1.weight"]
    delta_next = np.concatenate([backward["delta"][1:], np.zeros_like(backward["delta"][:1])])
    sigma = net.surrogate.derivative(forward["m"] - trace.theta[0])
    checks = {
        "(B1) eps_t = tau delta_{t+1}": (backward["eps"], TAU * delta_next),
        "(B6) e^1_t = W2^T delta^2_t": (backward["e"], out_layer["delta"] @ W2),
        "(B4) dL/dW1 = sum_t delta^1_t x_t^T": (trace.grads["0.weight"],
                                                np.einsum("tbi,tbj->ij", backward["delta"], x)),
        "(B4) dL/dW2 = sum_t delta^2_t (s^1_t)^T": (trace.grads["1.weight"],
                                                    np.einsum("tbi,tbj->ij", out_layer["delta"], hidden_spikes)),
        "(B5) dL/dtheta1 = -sum_t g_t sigma'_t": (trace.grads["0.theta"],
                                                  -(backward["g"] * sigma).sum(axis=(0, 1))),
    }
    _, grads = net.loss_and_grad(x, y)
    checks.update({f"step_through == loss_and_grad [{key}]": (trace.grads[key], grads[key]) for key in grads})
    worst = 0.0
    for name, (a, b) in checks.items():
        error = float(np.max(np.abs(a - b)))
        worst = max(worst, error)
        print(f"{name:45s} max abs error {error:.1e}")
    if worst > 1e-12:
        raise SystemExit("the trace does not reassemble the gradients")

    steps = np.arange(1, T + 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    top.plot(steps, forward["I"][:, 0, NEURON], "s-", label="I_t input current (L1)")
    top.plot(steps, forward["m"][:, 0, NEURON], "o-", label="m_t membrane before reset (L2)")
    top.plot(steps, forward["v"][:, 0, NEURON], "^--", label="v_t after reset (L4h)")
    top.axhline(THETA, color="k", ls=":", lw=1, label="threshold theta")
    fired = steps[forward["s"][:, 0, NEURON] > 0]
    top.vlines(fired, THETA, THETA + 0.3, color="C3", lw=3, label="spike s_t = 1 (L3)")
    top.set_ylabel("forward")
    top.set_title(f"Forward, hidden neuron {NEURON} (t = 1 .. {T})")
    top.legend(fontsize=8, loc="upper left", ncol=2)
    top.set_ylim(top.get_ylim()[0], top.get_ylim()[1] + 0.5)
    for key, marker, label in (("e", "s-", "e_t from the layer above (B6)"),
                               ("eps", "^--", "eps_t = dL/dv_t (B1)"),
                               ("g", "o-", "g_t = dL/ds_t total (B2h)"),
                               ("delta", "D-", "delta_t = dL/dm_t (B3h)")):
        bottom.plot(steps, backward[key][:, 0, NEURON], marker, label=label)
    bottom.axhline(0, color="0.6", lw=0.8)
    bottom.set_ylabel("backward")
    bottom.set_xlabel("time step t   (backward runs t = T .. 1)")
    bottom.set_title(f"Backward, same neuron; loss {trace.loss:.4f}, label {y[0]}")
    bottom.legend(fontsize=8, loc="best")
    bottom.set_xticks(steps)
    fig.suptitle("step_through: a 4-3-2 LIF network, T = 6, hard reset, atan surrogate")
    fig.tight_layout()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"saved {out}")
    if not args.no_show:
        plt.show()


if __name__ == "__main__":
    main()
