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
# # Tutorial 3: BPTT by hand, step by step
#
# stlsim's backward pass is not autodiff: it is the recursion (B1)-(B6) derived in
# [the model](../model.md), section 4, written once in NumPy. `net.step_through(x, y)`
# runs it and keeps every intermediate array, so each equation can be checked on real
# numbers. What this tutorial shows, on a 2-layer network:
#
# 1. The forward quantities I, m, s, v (L1)-(L4) and the backward ones e, eps, g, delta
#    (B1)-(B3) of one hidden neuron at every step, as a table.
# 2. Each backward equation verified on the whole trace, both layers: the readout's
#    e^L, (B1), (B2h), (B3h), (B6), (B4).
# 3. The threshold gradient (B5) assembled term by term, `-g_t sigma'_t` for every step
#    and sample, and summed.
# 4. The same assembly in smooth mode, float64, checked against finite differences and
#    against the gradient `loss_and_grad` returns, for both resets.
#
# Notation (model, section 1): `e_t` is the gradient arriving at s_t from the layer
# above, `eps_t = dL/dv_t`, `g_t = dL/ds_t` in total (layer above and reset),
# `delta_t = dL/dm_t`, `sigma'_t = sigma'(m_t - theta)`.

# %%
import matplotlib.pyplot as plt
import numpy as np

import stlsim
from stlsim.grad.check import finite_difference_grads

np.set_printoptions(precision=5, suppress=True, linewidth=110)

# %% [markdown]
# ## The network
#
# 5 inputs, 4 hidden LIF neurons, 4 output neurons (2 classes, population P = 2),
# T = 8 steps, a batch of 2 samples, hard reset, atan surrogate, float64, and the NumPy
# reference backend (`step_through` always uses it).

# %%
T, B, TAU, THETA = 8, 2, 0.6, 1.0


def make_net(reset="hard"):
    return stlsim.Network([stlsim.Dense(5, 4, init_gain=2.5), stlsim.Dense(4, 4, init_gain=2.5)],
                          neuron=stlsim.LIF(tau=TAU, theta_init=THETA, reset=reset),
                          surrogate=stlsim.surrogate.ATan(2.0), population=2, seed=1,
                          dtype=np.float64, backend="numpy")


net = make_net()
rng = np.random.default_rng(0)
x = (rng.random((T, B, 5)) < 0.5).astype(np.float64)     # (T, B, 5) input spikes
y = np.array([0, 1])
trace = net.step_through(x, y)
print(f"loss = {trace.loss:.6f};  output rates r_b,c =\n{trace.rates};  labels {y}")
print("hidden spikes per neuron (both samples):", trace.forward[0]["s"].sum(axis=(0, 1)))
print("output spikes per neuron (both samples):", trace.forward[1]["s"].sum(axis=(0, 1)))

# %% [markdown]
# ## 1. Every quantity of one hidden neuron
#
# `trace.forward[l]` holds "I", "m", "s", "v" and `trace.backward[l]` holds "e", "eps",
# "g", "delta", each (T, B, N_l), for the l-th spiking layer. Read the forward columns
# top-down (t = 1..T) and the backward columns bottom-up: they are computed from t = T
# down to 1, starting from delta_{T+1} = 0.

# %%
NEURON, SAMPLE = 0, 0
fwd, bwd = trace.forward[0], trace.backward[0]
theta_hidden = trace.theta[0]
sigma = net.surrogate.derivative(fwd["m"] - theta_hidden)          # sigma'_t
print(f"hidden neuron {NEURON}, sample {SAMPLE}, theta = {theta_hidden[NEURON]}, tau = {TAU}, hard reset")
print(" t |     I_t      m_t  s_t      v_t | sigma'_t       e_t     eps_t       g_t   delta_t")
for t in range(T):
    f = [fwd[k][t, SAMPLE, NEURON] for k in ("I", "m", "s", "v")]
    b = [bwd[k][t, SAMPLE, NEURON] for k in ("e", "eps", "g", "delta")]
    print(f"{t + 1:2d} | {f[0]:7.4f} {f[1]:8.4f} {f[2]:4.0f} {f[3]:8.4f} | {sigma[t, SAMPLE, NEURON]:8.5f} "
          + " ".join(f"{value:9.5f}" for value in b))

# %% [markdown]
# The same backward columns as curves. `e_t` is what the layer above sends (B6); the
# reset path adds `-m_t eps_t` to it to make `g_t` (B2h): the credit a spike gets for
# resetting the membrane, large where m_t is large. `delta_t` (B3h) is `g_t` through the
# surrogate plus the leak path `eps_t (1 - s_t)`, which a spike cuts.

# %%
steps = np.arange(1, T + 1)
fig, ax = plt.subplots(figsize=(9, 4))
for key, marker, label in (("e", "s-", "e_t, from the layer above (B6)"),
                           ("eps", "^--", "eps_t = dL/dv_t (B1)"),
                           ("g", "o-", "g_t = dL/ds_t, total (B2h)"),
                           ("delta", "D-", "delta_t = dL/dm_t (B3h)")):
    ax.plot(steps, bwd[key][:, SAMPLE, NEURON], marker, label=label)
for k, t in enumerate(steps[fwd["s"][:, SAMPLE, NEURON] > 0]):
    ax.axvspan(t - 0.3, t + 0.3, color="C3", alpha=0.12, label="steps where the neuron fired" if k == 0 else None)
ax.axhline(0, color="0.6", lw=0.8)
ax.set_xticks(steps)
ax.set_xlabel("time step t   (the backward pass runs t = T .. 1)")
ax.set_ylabel("gradient of the loss (per unit of s, v or m)")
ax.set_title(f"Backward quantities, hidden neuron {NEURON}, sample {SAMPLE}")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Every backward equation, on the whole trace
#
# Each line below recomputes one equation of the model from the trace and prints the
# largest difference from what BPTT stored, over all steps, samples and neurons.
#
# - readout (model, section 7): `e^L_t = dL/dr_{b,c} / (T P)`, the same for every t
#   and p; for `mse_rate`, `dL/dr = 2 (r - onehot(y)) / (B C)`;
# - (B1) `eps_t = tau delta_{t+1}`, `eps_T = 0`;
# - (B2h) `g_t = e_t - m_t eps_t`;
# - (B3h) `delta_t = g_t sigma'_t + eps_t (1 - s_t)`;
# - (B6) `e^1_t = W2^T delta^2_t`;
# - (B4) `dL/dW = sum_{b,t} delta_t (s^{l-1}_t)^T`.

# %%
C, P = net.n_classes, net.population
W2 = net.params["1.weight"]
onehot = np.eye(C)[y]
grad_rates = 2 * (trace.rates - onehot) / (B * C)
e_out = np.repeat(grad_rates, P, axis=1)[None] / (T * P) * np.ones((T, 1, 1))
checks = {"readout  e^L_t = dL/dr / (T P)": (trace.backward[1]["e"], e_out)}
for l, name in ((0, "hidden"), (1, "output")):
    f, b = trace.forward[l], trace.backward[l]
    sig = net.surrogate.derivative(f["m"] - trace.theta[l])
    delta_next = np.concatenate([b["delta"][1:], np.zeros_like(b["delta"][:1])])   # delta_{T+1} = 0
    checks[f"(B1)  eps_t = tau delta_(t+1)       [{name}]"] = (b["eps"], TAU * delta_next)
    checks[f"(B2h) g_t = e_t - m_t eps_t         [{name}]"] = (b["g"], b["e"] - f["m"] * b["eps"])
    checks[f"(B3h) delta_t = g sigma' + eps(1-s) [{name}]"] = (b["delta"], b["g"] * sig + b["eps"] * (1 - f["s"]))
checks["(B6)  e^1_t = W2^T delta^2_t"] = (trace.backward[0]["e"], trace.backward[1]["delta"] @ W2)
checks["(B4)  dL/dW1 = sum delta^1 x^T"] = (trace.grads["0.weight"],
                                            np.einsum("tbi,tbj->ij", trace.backward[0]["delta"], x))
checks["(B4)  dL/dW2 = sum delta^2 (s^1)^T"] = (trace.grads["1.weight"],
                                                np.einsum("tbi,tbj->ij", trace.backward[1]["delta"],
                                                          trace.forward[0]["s"]))
for name, (stored, recomputed) in checks.items():
    error = float(np.max(np.abs(stored - recomputed)))
    print(f"{name:45s} max abs difference {error:.1e}")
    assert error < 1e-14

# %% [markdown]
# ## 3. The threshold gradient, term by term
#
# theta enters (L3) at every step and sample. Its only path to the loss under a hard
# reset is through `x_t = m_t - theta`, whose single child is s_t, so
#
#     dL/dtheta = - sum_{b,t} g_t sigma'_t                      (B5), hard reset
#
# The table lists the term `-g_t sigma'_t` of every step for our hidden neuron, for
# both samples, and the running sum, which ends at the gradient BPTT returned.

# %%
terms = -bwd["g"] * sigma                                         # (T, B, N): one term per step and sample
print(f"hidden neuron {NEURON}: terms -g_t sigma'_t")
print(" t |  sample 0    sample 1 | running sum")
running = 0.0
for t in range(T):
    running += terms[t, :, NEURON].sum()
    print(f"{t + 1:2d} | {terms[t, 0, NEURON]: .6f}  {terms[t, 1, NEURON]: .6f} | {running: .8f}")
assembled = terms.sum(axis=(0, 1))
print(f"assembled dL/dtheta (all hidden neurons): {assembled}")
print(f"returned  dL/dtheta (trace.grads)       : {trace.grads['0.theta']}")
print(f"returned  dL/dtheta (loss_and_grad)     : {net.loss_and_grad(x, y)[1]['0.theta']}")
assert np.allclose(assembled, trace.grads["0.theta"], rtol=1e-13, atol=1e-16)

# %% [markdown]
# Note what the sum is *not*: it is not `-sum_t delta_t`. Raising theta by h acts on
# s_t like lowering m_t by h at every step, but it does not move the membrane itself,
# so the leak and reset paths (the `eps_t (1 - s_t)` part of delta) are missing from
# the threshold's gradient.

# %%
print("-sum_t delta_t (NOT the threshold gradient):", -bwd["delta"].sum(axis=(0, 1)))

# %% [markdown]
# ### Where the threshold gradient comes from, step by step
#
# Top: the membrane of the neuron, its threshold and spikes, per sample. Bottom: the
# terms `-g_t sigma'_t`, stacked over the two samples, and their running sum.

# %%
steps = np.arange(1, T + 1)
fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
for sample, color in ((0, "C0"), (1, "C1")):
    m, s = fwd["m"][:, sample, NEURON], fwd["s"][:, sample, NEURON]
    top.plot(steps, m, "o-", color=color, label=f"m_t, sample {sample}")
    top.plot(steps[s > 0], m[s > 0], "*", color="C3", ms=14,
             label="spike s_t = 1" if sample == 0 else None)
top.axhline(theta_hidden[NEURON], color="k", ls="--", lw=1, label="threshold theta")
top.set_ylabel("membrane m_t (units of theta)")
top.set_title(f"Forward: hidden neuron {NEURON}, hard reset, tau = {TAU}")
top.legend(fontsize=8, ncol=2)
bottom.bar(steps - 0.2, terms[:, 0, NEURON], width=0.4, color="C0", label="-g_t sigma'_t, sample 0")
bottom.bar(steps + 0.2, terms[:, 1, NEURON], width=0.4, color="C1", label="-g_t sigma'_t, sample 1")
bottom.plot(steps, np.cumsum(terms[:, :, NEURON].sum(axis=1)), "k.-", label="running sum over t and b")
bottom.axhline(trace.grads["0.theta"][NEURON], color="C3", ls=":",
               label=f"dL/dtheta returned by BPTT = {trace.grads['0.theta'][NEURON]:.2e}")
bottom.axhline(0, color="0.6", lw=0.8)
bottom.set_ylabel("contribution to dL/dtheta (per unit theta)")
bottom.set_xlabel("time step t")
bottom.set_title("Backward: the threshold gradient (B5), term by term")
bottom.legend(fontsize=8)
bottom.set_xticks(steps)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. The same in smooth mode: checked against finite differences
#
# In spiking mode the terms above are built on a surrogate, so no finite difference can
# check them (tutorial 2). In smooth mode, `s_t = P(m_t - theta)` is a real number and
# (B1)-(B6) are just the chain rule: the assembled threshold gradient must equal the
# float64 finite-difference derivative of the loss. We do it for both resets; the soft
# reset adds the direct term of `v_t = m_t - s_t theta`:
#
#     dL/dtheta = - sum_{b,t} g_t sigma'_t - sum_{b,t} s_t eps_t   (B5), soft reset


# %%
def assemble_theta_grad(trace, l, reset):
    """(B5) from the step-through trace of spiking layer l."""
    f, b = trace.forward[l], trace.backward[l]
    sig = net.surrogate.derivative(f["m"] - trace.theta[l])
    terms = -b["g"] * sig
    if reset == "soft":
        terms = terms - f["s"] * b["eps"]
    return terms.sum(axis=(0, 1))


rows = []
for reset in ("hard", "soft"):
    net = make_net(reset)
    smooth_trace = net.step_through(x, y, smooth=True)
    _, returned = net.loss_and_grad(x, y, smooth=True)
    numeric = finite_difference_grads(net, x, y, keys=["0.theta", "1.theta"])
    for l, key in ((0, "0.theta"), (1, "1.theta")):
        assembled = assemble_theta_grad(smooth_trace, l, reset)
        scale = np.max(np.abs(numeric[key]))
        err_fd = np.max(np.abs(assembled - numeric[key])) / scale
        err_returned = np.max(np.abs(assembled - returned[key])) / scale
        rows.append((reset, key, assembled, numeric[key], err_fd, err_returned))
        print(f"{reset} reset, {key}:\n  assembled        {assembled}\n  finite difference {numeric[key]}"
              f"\n  relative error vs finite differences {err_fd:.1e}, vs loss_and_grad {err_returned:.1e}")
        assert err_fd < 1e-7 and err_returned < 1e-12

# %%
fig, ax = plt.subplots(figsize=(6.5, 5))
for (reset, key, assembled, numeric, _, _), marker in zip(rows, ("o", "s", "^", "D")):
    ax.plot(numeric, assembled, marker, ms=8, mfc="none", label=f"{reset} reset, {key} (layer {int(key[0]) + 1})")
lims = np.array([min(r[3].min() for r in rows), max(r[3].max() for r in rows)])
lims = lims + np.array([-0.1, 0.1]) * np.ptp(lims)
ax.plot(lims, lims, "k-", lw=0.8, label="y = x")
ax.set_xlabel("dL/dtheta by finite differences (smooth mode, float64)")
ax.set_ylabel("dL/dtheta assembled from step_through (B5)")
ax.set_title("Threshold gradients: assembled term by term vs finite differences")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Every threshold gradient assembled from the trace agrees with finite differences to
# about 1e-12 relative and with `loss_and_grad` to round-off. The weights are checked the
# same way in the test suite ([validation](../validation.md)).
#
# Next: [tutorial 4](04_thresholds.py) trains these thresholds.
