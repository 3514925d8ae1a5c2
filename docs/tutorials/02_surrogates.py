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
# # Tutorial 2: surrogate gradients and smooth mode
#
# A spike is `s_t = H(m_t - theta)` (L3). The derivative of the step H is zero
# everywhere except at 0, where it does not exist, so the true gradient of a spiking
# network's loss with respect to a weight or a threshold is zero almost everywhere: the
# loss is a staircase. BPTT therefore replaces `dH/dx` by a *surrogate* `sigma'(x)`
# ([the model](../model.md), section 5).
#
# In stlsim every surrogate is a pair `(P, P')`: a smooth stand-in `P` for H, and its
# exact derivative `P' = sigma'`. What this tutorial shows:
#
# 1. `P` and `P'` of the four surrogates, and a finite-difference check that `P'` really
#    is the derivative of `P`.
# 2. The loss of a small network as one weight moves, in *spiking mode* (a staircase:
#    finite differences give 0 or a jump) and in *smooth mode* (the forward uses
#    `s_t = P(m_t - theta)`: a smooth curve whose slope BPTT computes exactly).
# 3. That the spiking-mode BPTT value is a pseudo-gradient: useful for learning, but not
#    the slope of anything you can plot.

# %%
import matplotlib.pyplot as plt
import numpy as np

import stlsim

# %% [markdown]
# ## 1. The four surrogates
#
# Each class holds one shape parameter (`alpha`, `width` or `beta`); `primitive(x)` is P,
# `derivative(x)` is `P' = sigma'`, `spike(x, smooth)` is what the forward uses.

# %%
surrogates = [stlsim.surrogate.ATan(2.0), stlsim.surrogate.Sigmoid(4.0),
              stlsim.surrogate.Rectangular(1.0), stlsim.surrogate.SuperSpike(10.0)]
x = np.linspace(-2, 2, 801)
h = 1e-6
for sg in surrogates:
    # central difference of P, away from the kinks of the piecewise ones
    away = np.abs(np.abs(x) - (sg.value / 2 if sg.name == "rectangular" else 0)) > 1e-3
    numeric = (sg.primitive(x + h) - sg.primitive(x - h)) / (2 * h)
    error = np.max(np.abs(numeric - sg.derivative(x))[away])
    rise = float(sg.primitive(1e6) - sg.primitive(-1e6))        # = the integral of P' over the line
    print(f"{sg!r:24s} max |dP/dx (finite diff.) - P'| = {error:.1e};  P(0) = {float(sg.primitive(0.0)):.2f};"
          f"  P(+inf) - P(-inf) = {rise:.3f}")
    assert error < 1e-6

# %%
fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
top.plot(x, stlsim.surrogate.heaviside(x), "k-", lw=2.5, label="H(x), the spike (L3), H(0) = 1")
for sg in surrogates:
    top.plot(x, sg.primitive(x), label=f"P(x): {sg!r}")
    bottom.plot(x, sg.derivative(x), label=f"P'(x) = sigma'(x): {sg!r}")
top.set_ylabel("spike value s")
top.set_title("Primitives P: smooth stand-ins for the step H (used by smooth mode)")
top.legend(fontsize=8, loc="upper left")
bottom.set_ylabel("ds/dx (per unit of membrane)")
bottom.set_xlabel("x = m_t - theta (membrane minus threshold)")
bottom.set_title("Derivatives P' = sigma': what BPTT uses in place of dH/dx in (B3) and (B5)")
bottom.legend(fontsize=8, loc="upper left")
fig.tight_layout()
plt.show()

# %% [markdown]
# All four have P(0) = 1/2, but they are not equally "delta-like". atan, sigmoid and
# rectangular rise from 0 to 1, so their P' integrates to 1 like the Dirac delta they
# stand in for (atan's heavy tails put a tenth of it outside [-2, 2]). SuperSpike's P
# only rises from 1/2 - 1/beta to 1/2 + 1/beta: its P' integrates to 2/beta = 0.2 at
# beta = 10, a smaller gradient scale that the learning rate must make up for. The
# rectangular surrogate is zero outside `|x| < width/2`: a neuron whose membrane stays
# far from threshold gets no gradient at all.
#
# ## 2. The loss as one weight moves
#
# A 6-5-4 network (two classes, population P = 2) with analog input, T = 10 steps, in
# float64. We scan one input weight `W1[0, 0]` and evaluate the loss in both modes.

# %%
net = stlsim.Network([stlsim.Dense(6, 5, init_gain=2.0), stlsim.Dense(5, 4, init_gain=2.0)],
                     neuron=stlsim.LIF(tau=0.7, theta_init=0.6, reset="hard"),
                     surrogate=stlsim.surrogate.ATan(2.0), population=2, seed=4,
                     dtype=np.float64, backend="numpy")
rng = np.random.default_rng(1)
x_in = rng.random((10, 4, 6))                            # (T, B, inputs), analog input
y = np.array([0, 1, 1, 0])
key, index = "0.weight", (0, 0)
w0 = float(net.params[key][index])
grid = w0 + np.linspace(-1.5, 1.5, 301)


def scan(smooth):
    values = []
    for w in grid:
        net.params[key][index] = w
        values.append(net.loss(x_in, y, smooth=smooth))
    net.params[key][index] = w0
    return np.array(values)


loss_spiking, loss_smooth = scan(False), scan(True)
value_spiking, grads_spiking = net.loss_and_grad(x_in, y)
value_smooth, grads_smooth = net.loss_and_grad(x_in, y, smooth=True)
print(f"distinct loss values on the spiking-mode scan: {len(np.unique(loss_spiking))} of {len(grid)} points")

# %% [markdown]
# In smooth mode, BPTT is the exact gradient: check it against a central difference.
# In spiking mode a central difference with a small step sees a flat stair (0), while
# BPTT returns the surrogate value.

# %%
eps = 1e-5


def central(smooth):
    net.params[key][index] = w0 + eps
    up = net.loss(x_in, y, smooth=smooth)
    net.params[key][index] = w0 - eps
    down = net.loss(x_in, y, smooth=smooth)
    net.params[key][index] = w0
    return (up - down) / (2 * eps)


fd_smooth, fd_spiking = central(True), central(False)
print(f"smooth mode : BPTT {grads_smooth[key][index]: .8f}   finite difference {fd_smooth: .8f}")
print(f"spiking mode: BPTT {grads_spiking[key][index]: .8f}   finite difference {fd_spiking: .8f}")
assert abs(grads_smooth[key][index] - fd_smooth) < 1e-7 * max(1.0, abs(fd_smooth))
assert fd_spiking == 0.0

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
span = np.linspace(-0.25, 0.25, 3)
left.plot(grid, loss_spiking, "-", drawstyle="steps-mid", color="C0", label="spiking-mode loss")
left.plot(w0 + span, value_spiking + grads_spiking[key][index] * span, "r-", lw=2,
          label="slope of the BPTT surrogate gradient")
left.plot([w0], [value_spiking], "ko", label="current weight")
left.set_title("Spiking mode: a staircase, pseudo-gradient")
right.plot(grid, loss_smooth, "-", color="C1", label="smooth-mode loss (s_t = P(m_t - theta))")
right.plot(w0 + span, value_smooth + grads_smooth[key][index] * span, "r-", lw=2,
           label="tangent from BPTT (exact here)")
right.plot([w0], [value_smooth], "ko", label="current weight")
right.set_title("Smooth mode: BPTT is the true derivative")
for ax in (left, right):
    ax.set_xlabel("weight W1[0, 0]")
    ax.set_ylabel("loss (mse_rate, dimensionless)")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Every parameter at once
#
# `stlsim.grad.check.finite_difference_grads` takes fourth-order central differences
# of the smooth-mode loss for every entry of every parameter; `compare` reports the
# largest relative error per tensor. This is how the test suite checks BPTT
# ([validation](../validation.md)), for every surrogate, here on a fresh 6-5-4 network:

# %%
from stlsim.grad.check import compare, finite_difference_grads

for sg in surrogates:
    check_net = stlsim.Network([stlsim.Dense(6, 5), stlsim.Dense(5, 4)],
                               neuron=stlsim.LIF(tau=0.7, theta_init=0.6, reset="hard"),
                               surrogate=sg, population=2, seed=3, dtype=np.float64, backend="numpy")
    _, grads = check_net.loss_and_grad(x_in, y, smooth=True)
    table = compare(grads, finite_difference_grads(check_net, x_in, y))
    worst = max(row["max_rel"] for row in table.values())
    print(f"{sg!r:24s} worst relative error over {len(table)} tensors: {worst:.1e}")
    assert worst < 1e-6

# %% [markdown]
# A caution about the piecewise surrogates. The rectangular P' jumps at `|x| = width/2`,
# and a finite-difference stencil (it reaches 2h on either side) that straddles the jump
# measures the jump, not the slope. The scanned network of section 2 has one membrane
# about 1e-4 from that kink: with the default step h = 1e-4 the check fails there, with a
# smaller step it passes. It is the finite difference that fails, not BPTT.

# %%
net.surrogate = stlsim.surrogate.Rectangular(1.0)
_, grads = net.loss_and_grad(x_in, y, smooth=True)
smooth_record = net.forward(x_in, smooth=True)
closest = min(np.min(np.abs(np.abs(m - 0.6) - 0.5)) for m in smooth_record.membrane)
print(f"closest |m_t - theta| to the kink width/2 = 0.5: {closest:.1e}")
for step in (1e-4, 1e-5):
    table = compare(grads, finite_difference_grads(net, x_in, y, step=step))
    print(f"step h = {step:.0e}: worst relative error {max(row['max_rel'] for row in table.values()):.1e}")
assert max(row["max_rel"] for row in table.values()) < 1e-6
net.surrogate = surrogates[0]

# %% [markdown]
# Smooth mode is a tool for checking, not for training: it changes the forward
# (spikes become real numbers in (0, 1)). In spiking mode the same recursion runs with
# 0/1 spikes, and its result is checked against other implementations of the same
# recursion (PyTorch and JAX models in the tests) instead.
#
# Next: [tutorial 3](03_bptt_by_hand.py) opens the recursion step by step.
