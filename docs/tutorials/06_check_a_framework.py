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
# # Tutorial 6: checking another framework's gradients with stlsim
#
# stlsim's BPTT is derived by hand and checked against finite differences, so it can
# serve as an oracle for the frameworks people train in. `stlsim.interop` converts a
# snnTorch, SpikingJelly or Norse model into a `stlsim.Network` with the same
# parameters and the peer's own neuron conventions ([the model](../model.md),
# section 8), runs both on the same input spikes, and compares every layer's spikes,
# every adjoint dL/ds_t and every parameter gradient. This tutorial:
#
# 1. converts a snnTorch model and reads the report;
# 2. injects a bug into the peer (a gradient off by one part in a million) and watches
#    the oracle name the parameter;
# 3. shows why the peer's conventions matter: the same weights under stlsim's own
#    default neuron give different spikes.

# %%
import matplotlib.pyplot as plt
import numpy as np
import snntorch as snn
import torch

import stlsim
import stlsim.interop as interop

torch.manual_seed(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. A snnTorch model and its report
#
# The usual snnTorch idiom: a `Sequential` with `init_hidden=True` neurons. Here the
# first layer has one learnable threshold and one learnable decay per neuron.

# %%
model = torch.nn.Sequential(
    torch.nn.Linear(20, 32),
    snn.Leaky(beta=torch.rand(32) * 0.5 + 0.4, threshold=torch.rand(32) + 0.5,
              learn_beta=True, learn_threshold=True, init_hidden=True),
    torch.nn.Linear(32, 10),
    snn.Leaky(beta=0.8, init_hidden=True, output=True),
)
with torch.no_grad():                   # a net that fires: stronger weights
    model[0].weight.mul_(3.0)
    model[2].weight.mul_(3.0)
x = (rng.random((25, 8, 20)) < 0.3).astype(np.float32)     # (T, B, inputs): input spikes

net = interop.from_snntorch(model, input_shape=(20,))
print(net)
print(net.neurons[0])

# %% [markdown]
# `from_snntorch` read snnTorch's conventions from the modules: the reset subtracts the
# threshold *after* the leak, using the previous step's spike, detached (its default
# `reset_delay=True`), and spikes need m > theta strictly (H(0) = 0). Now the comparison.
# snnTorch's spikes are float32, so it runs in float32 (relative tolerance 1e-5); the
# loss is a seeded random linear probe of the output spikes.

# %%
rep = interop.compare(model, x, seed=0)
print(rep)
assert rep.ok and rep.spikes_equal

# %% [markdown]
# Each row is one of the peer's parameters, with the stlsim parameter it maps to, the
# largest absolute difference, that difference relative to the parameter's largest
# gradient, and where it is. "smallest |m - theta|" says how close a membrane came to
# its threshold: a spike decided by less than the rounding of one operation would be a
# tie between two rounding orders, not a bug.
#
# ## 2. A bug the oracle catches
#
# A backward hook that scales one gradient by 1 + 1e-6 stands for a subtle bug in a
# framework. In float64 (SpikingJelly here) the oracle's tolerance is 1e-10.

# %%
from spikingjelly.activation_based import neuron, surrogate  # noqa: E402

sj_model = torch.nn.Sequential(
    torch.nn.Linear(20, 32), neuron.LIFNode(tau=2.0, step_mode="m"),
    torch.nn.Linear(32, 10), neuron.LIFNode(tau=2.0, step_mode="m",
                                            surrogate_function=surrogate.Sigmoid(alpha=4.0)),
).double()
with torch.no_grad():
    sj_model[0].weight.mul_(4.0)
    sj_model[2].weight.mul_(4.0)
x64 = x.astype(np.float64)
clean = interop.compare(sj_model, x64, seed=0)
print(clean)
assert clean.ok

sj_model[2].weight.register_hook(lambda grad: grad * (1 + 1e-6))
buggy = interop.compare(sj_model, x64, seed=0)
print(buggy)
assert not buggy.ok and buggy.worst == "2.weight"

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
names = [row.name for row in clean.rows]
pos = np.arange(len(names))
ax.bar(pos - 0.2, [max(r.relative, 1e-18) for r in clean.rows], 0.4, label="SpikingJelly as is")
ax.bar(pos + 0.2, [max(r.relative, 1e-18) for r in buggy.rows], 0.4,
       label="with a gradient scaled by 1 + 1e-6")
ax.axhline(clean.rtol, color="k", ls="--", lw=1, label=f"tolerance {clean.rtol:.0e}")
ax.set_yscale("log")
ax.set_xticks(pos, names)
ax.set_xlabel("SpikingJelly parameter")
ax.set_ylabel("relative gradient error\n(vs stlsim, float64)")
ax.set_title("The oracle names the parameter whose gradient is wrong")
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Why the conventions matter
#
# The same weights and thresholds under stlsim's default neuron (the paper's: hard
# reset, H(0) = 1, no input gain) instead of SpikingJelly's (input gain 1/tau_SJ) give
# other spikes: a hand-written converter that forgets one convention checks nothing.

# %%
converted = interop.from_spikingjelly(sj_model, input_shape=(20,))
paper = stlsim.Network(converted.layers, neuron=stlsim.LIF(tau=0.5, theta_init=1.0),
                       surrogate=converted.surrogate, backend="numpy")
paper.params = {k: v.copy() for k, v in converted.params.items()}
right = converted.forward(x64).spikes[0]
wrong = paper.forward(x64).spikes[0]
print(f"hidden spikes, SpikingJelly's neuron: {int(right.sum())}; the paper's: "
      f"{int(wrong.sum())}; steps x neurons x samples that differ: {int((right != wrong).sum())}")
assert (right != wrong).any()
