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
# # Tutorial 5: event-driven vs clock-driven
#
# The clock engine (`engine="clock"`, the default) advances every neuron at every step:
# (L1) is a dense matrix product, (L2)-(L4) run on all T x B x N neurons. The event
# engine (`engine="event"`) simulates the same equations but does work only where
# something happens: it adds a weight column per input event, and lets a neuron's
# membrane decay *lazily* between the steps where it is touched
# ([the event engine](../event_engine.md)). What this tutorial shows:
#
# 1. The lazy leak on one neuron, against the clock engine's step-by-step membrane.
# 2. The same 700-128-20 network run both ways on sparse input: identical spikes,
#    membranes and gradients to round-off.
# 3. Where events pay: the work each engine does as the input density changes, counted
#    in operations (not timed here; measured times are on the engine's page).

# %%
import matplotlib.pyplot as plt
import numpy as np

import stlsim
from stlsim.grad.check import compare

# %% [markdown]
# ## 1. The lazy leak
#
# One neuron, tau = 0.5, theta = 1, hard reset, weight w = 0.75. Input events: step 2
# with value 1 and step 7 with value 21/16 (all numbers are exact in binary floating
# point). Events are given as a `SpikeEvents`: rows (t, i) with optional values;
# steps are 0-based in the array, 1-based in the text.
#
# Between two touches nothing but the leak acts, so the event engine keeps an *anchor*
# (a, v_a), the last step it touched the neuron and the membrane after it, and when
# input arrives at step t it computes
#
#     v_{t-1} = tau^(t-1-a) v_a       (one power instead of t-1-a multiplications)
#     m_t     = tau v_{t-1} + I_t     (L2), then (L3) and (L4) as usual

# %%
neuron = stlsim.LIF(tau=0.5, theta_init=1.0, reset="hard")
one = stlsim.Network([stlsim.Dense(1, 1)], neuron=neuron,
                     surrogate=stlsim.surrogate.Rectangular(1.0), dtype=np.float64)
one.params["0.weight"][:] = 0.75
events = np.array([[1, 0], [6, 0]])                       # (t, i), 0-based steps 1 and 6
ev = stlsim.SpikeEvents.from_events(events, T=8, input_shape=1, values=np.array([1.0, 21 / 16]))
clock = one.forward(ev, engine="clock")
event = one.forward(ev, engine="event")
m_clock, m_event = clock.membrane[0][:, 0, 0], event.membrane[0][:, 0, 0]
print("step t      :", list(range(1, 9)))
print("clock  m_t  :", m_clock.tolist())
print("event  m_t  :", m_event.tolist())
assert np.array_equal(m_clock, m_event) and np.array_equal(clock.spikes[0], event.spikes[0])

# The event engine's arithmetic at step 7, by hand: anchor (a, v_a) = (2, 0.75).
a, v_a, t, current = 2, 0.75, 7, 0.75 * 21 / 16
v_before = neuron.tau ** (t - 1 - a) * v_a                # lazy leak over 4 silent steps
m_7 = neuron.tau * v_before + current
print(f"step 7 by hand: v_6 = 0.5^4 * 0.75 = {v_before}, m_7 = 0.5 * v_6 + {current} = {m_7} >= 1: spike")
assert m_7 == m_event[6]

# %%
steps = np.arange(1, 9)
fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(steps, m_clock, "o-", color="C0", label="clock engine: m_t at every step")
touched = np.array([2, 7])
ax.plot(touched, m_event[touched - 1], "D", ms=12, mfc="none", color="C3",
        label="event engine: the only steps computed")
ax.plot([2, 6], [0.75, 0.75 * 0.5 ** 4], ":", color="C3", lw=1.5,
        label="lazy leak: v_6 = tau^4 v_2, one power")
ax.axhline(1.0, color="k", ls="--", lw=1, label="threshold theta")
ax.annotate("spike at t = 7", (7, m_event[6]), textcoords="offset points", xytext=(-95, -20))
ax.set_xlabel("time step t")
ax.set_ylabel("membrane m_t (units of theta)")
ax.set_title("One neuron, input events at t = 2 and t = 7")
ax.legend(fontsize=8, loc="center left")
fig.tight_layout()
plt.show()

# %% [markdown]
# The residue of step 2 (0.0234375 after the decay) is what carries step 7 over the
# threshold: the input of step 7 alone (0.984375) would not. The clock engine computed
# eight membranes; the event engine two.
#
# ## 2. The same network both ways
#
# A 700-128-20 network (SHD-sized input, 20 classes, P = 1), T = 100 steps, a batch of 8,
# input spikes at density 0.02 (each input neuron fires in 2 % of the steps), float64.

# %%
T, B, N_IN, N_HID, N_OUT = 100, 8, 700, 128, 20
net = stlsim.Network([stlsim.Dense(N_IN, N_HID, init_gain=4.0), stlsim.Dense(N_HID, N_OUT, init_gain=4.0)],
                     neuron=stlsim.LIF(tau=0.9, theta_init=1.0), surrogate="atan", seed=0,
                     dtype=np.float64)
rng = np.random.default_rng(0)
x = (rng.random((T, B, N_IN)) < 0.02).astype(np.float64)
ev = stlsim.SpikeEvents.from_dense(x)                      # the nonzeros of x
y = rng.integers(0, N_OUT, B)
print(f"{ev.index.size} input events of {x.size} entries (density {ev.index.size / x.size:.3f})")

rec_clock = net.forward(x, engine="clock")
rec_event = net.forward(ev, engine="event")
for l, name in enumerate(("hidden", "output")):
    same = np.array_equal(rec_clock.spikes[l], rec_event.spikes[l])
    diff = np.max(np.abs(rec_clock.membrane[l] - rec_event.membrane[l]))
    print(f"{name}: {int(rec_clock.spikes[l].sum())} spikes, identical: {same}; "
          f"max |m_clock - m_event| = {diff:.1e}; firing rate {rec_clock.firing_rates[l]:.3f}")
    assert same and diff < 1e-12

loss_clock, grads_clock = net.loss_and_grad(x, y, engine="clock")
loss_event, grads_event = net.loss_and_grad(ev, y, engine="event")
print(f"loss: clock {loss_clock:.12f}, event {loss_event:.12f}")
for key, row in compare(grads_clock, grads_event).items():
    print(f"  {key:9s} max relative gradient difference {row['max_rel']:.1e}")
    assert row["max_rel"] < 1e-10

# %% [markdown]
# Spikes are identical and membranes agree to a few ulp: after k silent steps the lazy
# `tau^k v_a` and the clock engine's k multiplications by tau differ by rounding only.
#
# ## 3. Where events pay
#
# Count the work of the first layer, the one that sees the input. The clock engine pays
# the dense product (L1) whatever the input: T B N_in N_hid multiply-adds. The event
# engine adds one weight column per event: (number of events) x N_hid adds. For the
# membrane update (L2)-(L4), a step of a sample with any input event visits every
# neuron of that sample (its column reaches them all), so the event engine updates
# N_hid membranes per (t, b) row that has at least one event, and none on silent rows
# (with a hard reset and theta > 0 no neuron can cross without input).

# %%
densities = np.logspace(-4, -0.5, 30)
rows = T * B
clock_adds = np.full_like(densities, T * B * N_IN * N_HID)
event_adds = densities * T * B * N_IN * N_HID                      # expected events x N_hid
busy_rows = 1 - (1 - densities) ** N_IN                            # P(a row has an event)
clock_updates = np.full_like(densities, rows * N_HID)
event_updates = busy_rows * rows * N_HID

# the same counts, measured on real inputs at a few densities
measured = []
for density in (1e-3, 0.005, 0.02, 0.1):
    sample = (rng.random((T, B, N_IN)) < density)
    events_here = int(sample.sum())
    rows_here = int(np.any(sample, axis=2).sum())
    measured.append((density, events_here * N_HID, rows_here * N_HID))
    print(f"density {density:<6}: {events_here:6d} events -> {events_here * N_HID:>10,d} adds "
          f"(clock {T * B * N_IN * N_HID:,d});  {rows_here:3d} of {rows} rows busy")

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
left.loglog(densities, clock_adds, "k-", label="clock: T B N_in N_hid (dense GEMM)")
left.loglog(densities, event_adds, "C3-", label="event: events x N_hid (expected)")
left.loglog([m[0] for m in measured], [m[1] for m in measured], "C3o", mfc="none", label="event, counted")
left.set_xlabel("input density (events per input neuron per step)")
left.set_ylabel("multiply-adds of layer 1 (L1)")
left.set_title("Synaptic input: events pay in proportion")
left.legend(fontsize=8)
right.semilogx(densities, clock_updates, "k--", label="clock: every neuron, every step")
right.semilogx(densities, event_updates, "C3-", label="event: rows with an event x N_hid (expected)")
right.semilogx([m[0] for m in measured], [m[2] for m in measured], "C3o", mfc="none", label="event, counted")
right.set_xlabel("input density (events per input neuron per step)")
right.set_ylabel("membrane updates of layer 1 (L2)-(L4)")
right.set_title(f"Neuron updates: saved only on silent steps (N_in = {N_IN})")
right.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Two regimes. The synaptic work falls in proportion to the density: at 2 % the event
# engine does 1/50 of the clock engine's multiply-adds. The neuron updates fall only when
# whole steps are silent: with 700 inputs, above a density of a few times 1/700 almost
# every step has *some* event, so the event engine updates every hidden neuron anyway,
# and its saving there is in the synaptic input alone. The deeper layers see the spikes of
# the layer below as their events, so a quiet hidden layer (firing rate a few %) pays
# the same way.
#
# Counting is not timing: a gathered add over a strided weight column costs more than a
# GEMM's multiply-add, so the measured crossover is at a much lower density than the
# 1:1 point of the left panel. The engine's page gives the measured times and the
# crossover ([event engine](../event_engine.md), [performance](../performance.md)).
#
# Tutorial 6, *checking another framework's gradients with stlsim*, is pending: it
# needs the gradient-oracle interface, which has not landed yet.
