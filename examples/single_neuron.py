"""One LIF neuron, step by step: membrane, threshold, spikes, hard vs soft reset.

What it shows (equations of docs/model.md):

1. One neuron (tau = 0.8, theta = 1) driven by a weighted Bernoulli input spike train,
   simulated twice with the pure step function ``lif_step`` of (L2)-(L4): with the
   hard reset (L4h, the membrane drops to 0 after a spike) and with the soft reset
   (L4s, theta is subtracted, the excess is kept, so it fires more often).
2. Beneath each, the surrogate derivative sigma'(m_t - theta) (atan, alpha = 2) that
   BPTT uses in place of dH/dm in (B3) and (B5): largest when the membrane is near the
   threshold, whether or not the neuron fires.
3. The sub-threshold response to a constant current I against its closed form, the
   geometric sum m_t = I (1 - tau^t) / (1 - tau): one current that saturates below
   theta (never fires) and one that crosses it at the predicted step.

Run:  python examples/single_neuron.py [--out PATH] [--no-show] [--quick]
"""
import argparse
import math
from pathlib import Path

import numpy as np

import stlsim
from stlsim.neurons import lif_step
from stlsim.surrogate import heaviside

TAU, THETA, WEIGHT, RATE = 0.8, 1.0, 0.8, 0.5


def simulate(current, neuron, theta):
    """Loop ``lif_step`` over time; return m_t, s_t, v_t as (T,) arrays."""
    membrane, spikes, after_reset = [], [], []
    v = np.zeros(1)                                                  # v_0 = 0
    for current_t in current:
        m, s, v = lif_step(np.array([current_t]), v, theta, neuron, heaviside)   # (L2)-(L4)
        membrane.append(m[0])
        spikes.append(s[0])
        after_reset.append(v[0])
    return np.array(membrane), np.array(spikes), np.array(after_reset)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "single_neuron.png"),
                        help="where to save the figure (PNG)")
    parser.add_argument("--no-show", action="store_true", help="save the figure, do not open a window")
    parser.add_argument("--quick", action="store_true", help="fewer time steps (for tests)")
    args = parser.parse_args(argv)

    import matplotlib
    if args.no_show:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = 25 if args.quick else 40
    rng = np.random.default_rng(0)
    input_spikes = (rng.random(T) < RATE).astype(np.float64)
    current = WEIGHT * input_spikes                                  # (L1), one synapse
    surrogate = stlsim.surrogate.ATan(2.0)
    steps = np.arange(1, T + 1)

    runs = {}
    for reset in ("hard", "soft"):
        neuron = stlsim.LIF(tau=TAU, theta_init=THETA, reset=reset)
        m, s, v = simulate(current, neuron, THETA)
        runs[reset] = (m, s, v, surrogate.derivative(m - THETA))     # sigma'(m_t - theta)
        print(f"{reset} reset: {int(s.sum())} spikes at t = {steps[s > 0].tolist()}")

    # Closed form of the sub-threshold response (both resets agree before a spike).
    sub = stlsim.LIF(tau=TAU, theta_init=THETA)
    closed = {}
    for level in (0.15, 0.3):
        m, s, _ = simulate(np.full(T, level), sub, THETA)
        geometric = level * (1 - TAU ** steps) / (1 - TAU)
        first = int(steps[s > 0][0]) if s.any() else None
        upto = T if first is None else first                         # exact until the first spike
        error = np.max(np.abs(m[:upto] - geometric[:upto]))
        if level / (1 - TAU) >= THETA:
            predicted = math.ceil(math.log(1 - THETA * (1 - TAU) / level) / math.log(TAU))
        else:
            predicted = None
        closed[level] = (m, geometric, first, predicted)
        print(f"I = {level}: max |m_t - I(1 - tau^t)/(1 - tau)| before the first spike = {error:.1e}; "
              f"first spike at t = {first} (closed form: {predicted})")
        if error > 1e-12 or first != predicted:
            raise SystemExit("closed form and simulation disagree")

    fig, axes = plt.subplots(6, 1, figsize=(9, 13),
                             gridspec_kw={"height_ratios": [1, 2.2, 1, 2.2, 1, 2.2]})
    axes[0].stem(steps, current, basefmt=" ")
    axes[0].set_ylabel("I_t")
    axes[0].set_title(f"Input current: weight {WEIGHT} x Bernoulli({RATE}) spikes")
    for row, reset in ((1, "hard"), (3, "soft")):
        m, s, v, grad = runs[reset]
        ax = axes[row]
        ax.plot(steps, m, "o-", ms=3, label="m_t (before reset)")
        ax.plot(steps, v, ".", color="0.5", label="v_t (after reset)")
        ax.axhline(THETA, color="k", ls="--", lw=1, label="threshold theta")
        ax.vlines(steps[s > 0], THETA, THETA + 0.4, color="C3", lw=2, label="spike s_t = 1")
        ax.set_ylabel("membrane")
        equation = "v_t = (1 - s_t) m_t" if reset == "hard" else "v_t = m_t - s_t theta"
        ax.set_title(f"{reset.capitalize()} reset, {equation}   ({int(s.sum())} spikes)")
        ax.legend(loc="upper left", fontsize=8, ncol=4)
        ax.set_ylim(-0.05, max(m.max(), THETA) + 0.8)
        axes[row + 1].bar(steps, grad, color="C2", width=0.6)
        axes[row + 1].set_ylabel("sigma'")
        axes[row + 1].set_title(f"Surrogate derivative sigma'(m_t - theta), atan alpha=2 ({reset} reset)",
                                fontsize=9)
    ax = axes[5]
    for level, color in ((0.15, "C0"), (0.3, "C1")):
        m, geometric, first, predicted = closed[level]
        upto = T if first is None else first
        ax.plot(steps, geometric, "-", color=color, lw=1,
                label=f"I = {level}: closed form I(1 - tau^t)/(1 - tau)")
        ax.plot(steps[:upto], m[:upto], "o", color=color, ms=4, mfc="none",
                label=f"I = {level}: simulated m_t" + (f", first spike t = {first}" if first else ", never fires"))
        if first:
            ax.axvline(first, color=color, ls=":", lw=1)
    ax.axhline(THETA, color="k", ls="--", lw=1, label="threshold theta")
    ax.set_ylim(0, THETA + 0.3)
    ax.set_title("Sub-threshold response to a constant current (hard reset)")
    ax.set_ylabel("m_t")
    ax.legend(loc="lower right", fontsize=8)
    for ax in axes:
        ax.set_xlim(0.3, T + 0.7)
    axes[-1].set_xlabel("time step t")
    fig.suptitle(f"One LIF neuron, tau = {TAU}, theta = {THETA}  (L2)-(L4)")
    fig.tight_layout()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"saved {out}")
    if not args.no_show:
        plt.show()


if __name__ == "__main__":
    main()
