"""The generalized joint decision framework (GJDF) and its ablations.

The network's own decision (``docs/model.md``, section 7) is the GJDF with every vote
counted: the C*P output neurons form C populations of P; all P neurons of a class and
all T steps vote jointly,

    r_{b,c} = 1/(T P) sum_t sum_{p<P} s^L_{t,b,cP+p},      decision = argmax_c r_{b,c}.

``joint_decision`` makes each part of that an option, to measure what it contributes:

* ``neurons=k`` (1 <= k <= P): only the first k neurons of each class population vote
  (k = 1: one neuron per class, as a plain readout of the same trained network).
* ``window=k`` (1 <= k <= T): only the last k time steps vote (k = 1: decide from the
  final step alone; k = T: all steps).
* ``vote="rate"`` (default): sum spikes over the window and the voting neurons, argmax.
  ``vote="step"``: cumulative per-step votes. At each step in the window, every class
  holding that step's maximal population spike count gets one vote (a step with no
  output spike abstains); the class with most votes wins, ties broken by the total
  spike count, then by the lowest class index.

Ties of ``argmax`` go to the lowest class index (``stlsim.readout.decide``).

Training with P = 1 (the plain readout) or P > 1 is a training-time choice
(``NetConfig.population``); the accuracy gain of the GJDF is P > 1 versus P = 1 trained
on the same data with the same seeds (``validation/claims.py``).
"""
from __future__ import annotations

import numpy as np

from .._checks import check_array, check_choice, check_int, fail

__all__ = ["joint_decision", "decision_accuracy", "decision_rules", "VOTES"]

VOTES = ("rate", "step")


def joint_decision(spikes, population: int, *, neurons: int | None = None, window: int | None = None,
                   vote: str = "rate") -> np.ndarray:
    """Class decisions (B,) from output spikes (T, B, C*P); options in the module docstring."""
    owner = "joint_decision"
    spikes = check_array(spikes, "spikes", ndim=3, owner=owner)
    T, B, N = spikes.shape
    population = check_int(population, "population", low=1, owner=owner)
    if N % population:
        raise fail("population", f"a divisor of the {N} output neurons", repr(population), owner)
    neurons = population if neurons is None else check_int(neurons, "neurons", low=1, high=population,
                                                            owner=owner)
    window = T if window is None else check_int(window, "window", low=1, high=T, owner=owner)
    vote = check_choice(vote, "vote", VOTES, owner)
    counts = spikes[T - window:].reshape(window, B, N // population, population)[..., :neurons]
    counts = (counts != 0).sum(axis=3, dtype=np.int64)                 # (window, B, C) spikes per class
    total = counts.sum(axis=0)                                         # (B, C)
    if vote == "rate":
        return np.argmax(total, axis=1)
    step_max = counts.max(axis=2, keepdims=True)
    votes = ((counts == step_max) & (step_max > 0)).sum(axis=0)        # (B, C) steps won per class
    return np.argmax(votes * (window * neurons + 1) + total, axis=1)   # votes first, then spike count


def decision_rules(timesteps: int, population: int) -> dict:
    """The standard ablations: name -> ``joint_decision`` keyword arguments."""
    rules = {"joint (all P neurons, all T steps)": {},
             "last step only": {"window": 1},
             "step votes": {"vote": "step"}}
    if population > 1:
        rules["one neuron per class"] = {"neurons": 1}
        rules["one neuron, last step"] = {"neurons": 1, "window": 1}
    if timesteps < 2:
        rules.pop("last step only")
    return rules


def decision_accuracy(net, x, y, *, timesteps: int, encoding: str = "rate", seed: int = 0,
                      rules: dict | None = None, batch_size: int = 500, backend=None) -> dict:
    """Accuracy of ``net`` on images ``x`` under each decision rule (same spikes for all).

    ``rules``: name -> ``joint_decision`` keyword arguments (default ``decision_rules``).
    """
    from ..data.encoding import encode
    from ..data.encoding import shape_inputs

    owner = "decision_accuracy"
    timesteps = check_int(timesteps, "timesteps", low=1, owner=owner)
    rules = decision_rules(timesteps, net.population) if rules is None else dict(rules)
    x = shape_inputs(net, np.asarray(x))
    y = np.asarray(y)
    rng = np.random.default_rng([seed, 6])
    correct = {name: 0 for name in rules}
    for start in range(0, len(y), batch_size):
        inputs = encode(x[start:start + batch_size], timesteps, encoding, rng, net.dtype)
        out = net.forward(inputs, backend=backend).spikes[-1]
        out = out.reshape(out.shape[0], out.shape[1], -1)
        for name, kwargs in rules.items():
            pred = joint_decision(out, net.population, **kwargs)
            correct[name] += int(np.sum(pred == y[start:start + batch_size]))
    return {name: c / len(y) for name, c in correct.items()}
