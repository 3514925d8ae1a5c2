"""Learning modes of the STL-SNN paper (Sun et al., IEEE TCDS 2024): which parameters an optimizer updates.

* ``stl``: synaptic parameters (weights, biases, BatchNorm affine) AND thresholds.
* ``sl``:  synaptic parameters only; thresholds stay at their init.
* ``tl``:  thresholds only; every synaptic parameter stays at its random init.

A decay or synapse the neuron model trains (``LIF(learn_tau=...)``, ``learn_alpha_syn``)
is trained in every mode: the model asked for it. A trained adaptive threshold
(``Adaptation(learn_beta=..., learn_rho=...)``, docs/model.md Section 10) belongs with the
thresholds: trained by ``stl`` and ``tl`` at the threshold learning rate, fixed by ``sl``.
Recurrent weights are synaptic.
"""
from __future__ import annotations

from .._checks import check_choice

__all__ = ["MODES", "trainable_names"]

MODES = ("stl", "sl", "tl")


def trainable_names(net, mode: str) -> list:
    """Names in ``net.params`` that ``mode`` trains."""
    mode = check_choice(mode, "mode", MODES)
    groups = net.param_groups()
    decay = groups.get("decay", [])             # trained decays/synapses: asked for, so trained
    if mode == "stl":
        return groups["synaptic"] + groups["threshold"] + decay
    if mode == "sl":
        return groups["synaptic"] + decay
    return groups["threshold"] + decay
