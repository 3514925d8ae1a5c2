# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 1: one LIF neuron
#
# What this shows, with the equations of [the model](../model.md):
#
# 1. One leaky integrate-and-fire (LIF) neuron, step by step, with the pure step function
#    `stlsim.neurons.lif_step`, which is the readable definition of (L2)-(L4):
#
#         (L1)  I_t = W s_t (+ b)            input current
#         (L2)  m_t = tau * v_{t-1} + I_t    membrane before reset, v_0 = 0
#         (L3)  s_t = H(m_t - theta)         spike, H(x) = 1 if x >= 0 else 0
#         (L4h) v_t = (1 - s_t) * m_t        hard reset
#         (L4s) v_t = m_t - s_t * theta      soft reset
#
# 2. The two resets side by side on the same input.
# 3. Spike AT threshold: H(0) = 1, and why it matters for round numbers.
# 4. The sub-threshold geometric sum, its closed form and the first spike time, and the
#    same neuron inside a `stlsim.Network`.
#
# `tau` is a decay FACTOR in [0, 1] (not a time constant): tau = 0 forgets everything
# between steps, tau = 1 is a perfect integrator. Time is counted in steps t = 1..T;
# membranes, currents and thresholds are in the same (arbitrary) units.

# %%
import matplotlib.pyplot as plt
import numpy as np

import stlsim
from stlsim.neurons import lif_step
from stlsim.surrogate import heaviside

print("stlsim", stlsim.__version__)

# %% [markdown]
# ## 1. One neuron, one synapse
#
# The neuron gets Bernoulli input spikes through one synapse of weight 0.8, so (L1) is
# `I_t = 0.8 * s_in_t`. `lif_step(I, v_prev, theta, neuron, spike_fn)` computes one step
# and returns `(m_t, s_t, v_t)`; the loop over time is ours, and the only state is
# `v`, passed in and out.

# %%
TAU, THETA, WEIGHT, T = 0.8, 1.0, 0.8, 30
rng = np.random.default_rng(0)
input_spikes = (rng.random(T) < 0.5).astype(np.float64)
current = WEIGHT * input_spikes                          # (L1), one synapse


def simulate(current, neuron, theta, spike_fn=heaviside):
    """Loop lif_step over time; return m_t, s_t, v_t as (T,) arrays."""
    m_all, s_all, v_all = [], [], []
    v = np.zeros(1)                                      # v_0 = 0
    for current_t in current:
        m, s, v = lif_step(np.array([current_t]), v, theta, neuron, spike_fn)   # (L2)-(L4)
        m_all.append(m[0])
        s_all.append(s[0])
        v_all.append(v[0])
    return np.array(m_all), np.array(s_all), np.array(v_all)


runs = {}
for reset in ("hard", "soft"):
    neuron = stlsim.LIF(tau=TAU, theta_init=THETA, reset=reset)
    runs[reset] = simulate(current, neuron, THETA)
    spike_steps = np.flatnonzero(runs[reset][1]) + 1
    print(f"{reset} reset: {len(spike_steps)} spikes, at t = {spike_steps.tolist()}")

# %% [markdown]
# The first few steps by hand, hard reset: check that every row obeys (L2)-(L4h).

# %%
m, s, v = runs["hard"]
v_prev = np.concatenate([[0.0], v[:-1]])
print(" t | I_t    tau*v_{t-1}  m_t     s_t  v_t")
for t in range(8):
    print(f"{t + 1:2d} | {current[t]:.2f}   {TAU * v_prev[t]:.4f}       {m[t]:.4f}  {s[t]:.0f}    {v[t]:.4f}")
assert np.allclose(m, TAU * v_prev + current)            # (L2)
assert np.array_equal(s, (m >= THETA).astype(float))     # (L3)
assert np.allclose(v, (1 - s) * m)                       # (L4h)

# %% [markdown]
# ## 2. Hard and soft reset
#
# After a spike the hard reset (L4h) sets the membrane to 0; the soft reset (L4s)
# subtracts theta and keeps the excess, so the same input makes the soft-reset neuron
# fire at least as often.

# %%
steps = np.arange(1, T + 1)
fig, axes = plt.subplots(3, 1, figsize=(9, 7.5), sharex=True,
                         gridspec_kw={"height_ratios": [1, 2, 2]})
axes[0].stem(steps, current, basefmt=" ")
axes[0].set_ylabel("input current I_t")
axes[0].set_title(f"Input: weight {WEIGHT} x Bernoulli(0.5) spikes")
for ax, reset, equation in ((axes[1], "hard", "v_t = (1 - s_t) m_t  (L4h)"),
                            (axes[2], "soft", "v_t = m_t - s_t theta  (L4s)")):
    m, s, v = runs[reset]
    ax.plot(steps, m, "o-", ms=4, label="m_t, membrane before reset (L2)")
    ax.plot(steps, v, "s", ms=4, mfc="none", color="0.4", label="v_t, membrane after reset (L4)")
    ax.axhline(THETA, color="k", ls="--", lw=1, label="threshold theta")
    ax.vlines(steps[s > 0], THETA, THETA + 0.4, color="C3", lw=2.5, label="spike s_t = 1 (L3)")
    ax.set_ylabel("membrane (units of theta)")
    ax.set_ylim(-0.1, 2.3)
    ax.set_title(f"{reset.capitalize()} reset, {equation}: {int(s.sum())} spikes")
    ax.legend(loc="upper left", fontsize=8, ncol=2)
axes[-1].set_xlabel("time step t")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Spike AT threshold: H(0) = 1
#
# stlsim fires when `m_t >= theta` (L3). With round numbers `m_t == theta` happens
# exactly: a perfect integrator (tau = 1) with two inputs of 0.5 reaches 1.0 at step 2,
# exactly at theta = 1, and fires. A convention with H(0) = 0 (fire only strictly above
# threshold, as snnTorch's code does; see the model, section 8) would not fire there.

# %%
integrator = stlsim.LIF(tau=1.0, theta_init=1.0, reset="hard")
half_steps = np.array([0.5, 0.5, 0.0, 0.5, 0.5, 0.0])
m, s, _ = simulate(half_steps, integrator, 1.0)
m_strict, s_strict, _ = simulate(half_steps, integrator, 1.0,
                                 spike_fn=lambda x: (x > 0).astype(np.float64))
print("m_t, H(0) = 1  :", m.tolist())
print("m_t, H(0) = 0  :", m_strict.tolist())
print("s_t, H(0) = 1  :", s.tolist(), "  (stlsim)")
print("s_t, H(0) = 0  :", s_strict.tolist(), "  (fire only above threshold)")
assert s[1] == 1 and s_strict[1] == 0

# %% [markdown]
# ## 4. Below threshold: a geometric sum
#
# Until its first spike a neuron is never reset, so `v_{t-1} = m_{t-1}` and (L2) unrolls to
#
#     m_t = sum_{k=1..t} tau^(t-k) I_k
#     constant I:  m_t = I (1 - tau^t) / (1 - tau)       (tau < 1)
#
# which approaches `I / (1 - tau)`. With constant I the first spike is the smallest t
# with `I (1 - tau^t) / (1 - tau) >= theta`, that is
# `t* = ceil( log(1 - theta (1 - tau) / I) / log(tau) )`, and a current below the
# *rheobase* `I = theta (1 - tau)` never fires.

# %%
tau, theta, T_long = 0.8, 1.0, 40
neuron = stlsim.LIF(tau=tau, theta_init=theta)
steps_long = np.arange(1, T_long + 1)
rheobase = theta * (1 - tau)
print(f"rheobase theta (1 - tau) = {rheobase:.3f}")


def first_spike(level):
    """First spike step of the simulated neuron under constant current (None: never)."""
    _, s, _ = simulate(np.full(T_long, level), neuron, theta)
    return int(np.argmax(s)) + 1 if s.any() else None


def first_spike_closed_form(level):
    if level < rheobase:
        return None
    return int(np.ceil(np.log(1 - theta * (1 - tau) / level) / np.log(tau)))


levels = [0.15, 0.3]
for level in levels:
    m, s, _ = simulate(np.full(T_long, level), neuron, theta)
    geometric = level * (1 - tau ** steps_long) / (1 - tau)
    upto = first_spike(level) or T_long                    # exact until the first spike
    error = np.max(np.abs(m[:upto] - geometric[:upto]))
    print(f"I = {level}: max |m_t - closed form| before the first spike = {error:.1e}, "
          f"first spike t = {first_spike(level)} (closed form {first_spike_closed_form(level)})")
    assert error < 1e-12 and first_spike(level) == first_spike_closed_form(level)

currents = np.linspace(0.205, 1.2, 60)
simulated = [first_spike(level) for level in currents]
predicted = [first_spike_closed_form(level) for level in currents]
assert simulated == predicted

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for level, color in zip(levels, ("C0", "C1")):
    m, _, _ = simulate(np.full(T_long, level), neuron, theta)
    upto = first_spike(level) or T_long
    geometric = level * (1 - tau ** steps_long) / (1 - tau)
    left.plot(steps_long, geometric, "-", color=color, lw=1,
              label=f"I = {level}: closed form I (1 - tau^t) / (1 - tau)")
    left.plot(steps_long[:upto], m[:upto], "o", color=color, ms=4, mfc="none",
              label=f"I = {level}: simulated m_t" + (f", fires at t = {upto}" if upto < T_long else ", never fires"))
left.axhline(theta, color="k", ls="--", lw=1, label="threshold theta")
left.set_ylim(0, 1.4)
left.set_xlabel("time step t")
left.set_ylabel("membrane m_t (units of theta)")
left.set_title(f"Constant current, tau = {tau}: sub-threshold response")
left.legend(fontsize=8, loc="lower right")
right.plot(currents, simulated, "o", ms=4, mfc="none", label="simulated (first t with s_t = 1)")
right.step(currents, predicted, where="post", color="C3", lw=1, label="closed form t*")
right.axvline(rheobase, color="0.5", ls=":", label=f"rheobase theta (1 - tau) = {rheobase:.2f}")
right.set_yscale("log")
right.set_xlabel("constant input current I (units of theta)")
right.set_ylabel("first spike time step t*")
right.set_title("Time to first spike")
right.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. The same neuron inside a Network
#
# A `Network` of one `Dense(1, 1)` layer runs the same (L1)-(L4) for whole batches,
# time-major `(T, B, inputs)`. With weight 1 and no bias its membrane is the one
# computed above, to the last bit.

# %%
net = stlsim.Network([stlsim.Dense(1, 1, bias=False)], neuron=neuron, backend="numpy")
net.params["0.weight"][:] = 1.0
x = np.full((T_long, 1, 1), 0.3)                         # (T, B = 1, 1 input)
rec = net.forward(x)
m_loop, s_loop, _ = simulate(np.full(T_long, 0.3), neuron, theta)
print("Network spikes at t =", (np.flatnonzero(rec.spikes[0][:, 0, 0]) + 1).tolist())
assert np.array_equal(rec.membrane[0][:, 0, 0], m_loop)
assert np.array_equal(rec.spikes[0][:, 0, 0], s_loop)

# %% [markdown]
# Next: [tutorial 2](02_surrogates.py), the surrogate gradients that let BPTT train a
# neuron whose spike function has no useful derivative.
