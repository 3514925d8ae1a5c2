"""What the compiled kernels are told about a layer's neurons: numbers, not objects.

NumPy only (no Numba): the engines build a ``NeuronSpec`` from an ``LIF``
(``stlsim.engines.backend.neuron_spec``) without importing the kernels.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["NeuronSpec"]


class NeuronSpec(NamedTuple):
    """A layer's neurons as the kernels take them: numbers and per-neuron arrays in the
    storage dtype (``stlsim.engines.backend.neuron_spec`` builds it from an ``LIF``)."""

    tau: np.ndarray          # (N,) decay factors (all equal unless ``per_tau``)
    leak: np.ndarray         # (N,) (1 - tau) v_leak, rounded as the NumPy reference does
    gain: object             # r, the input gain (a dtype scalar)
    v_reset: object          # the hard reset's potential
    v_init: object           # v_0
    s_init: np.ndarray       # (N,) s_0 of the after-leak reset (zeros otherwise)
    reset: int               # scalar.HARD, SOFT, NO_RESET or AFTER_LEAK
    strict: bool             # H(0) = 0
    detach: bool
    has_leak: bool
    has_gain: bool
    has_reset_potential: bool
    per_tau: bool

    def forward_options(self):
        return (self.reset, self.strict, self.has_leak, self.has_gain,
                self.has_reset_potential, self.per_tau)

    def backward_options(self):
        return (self.reset, self.detach, self.has_gain, self.has_reset_potential, self.per_tau)
