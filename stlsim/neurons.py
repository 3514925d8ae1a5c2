"""The LIF neuron of ``docs/model.md``: parameters and one pure time step.

``lif_step`` is the readable definition of (L2)-(L4); the engines loop over time
and the BPTT in ``stlsim.grad.bptt`` runs the same statements backwards.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import check_choice, check_real, fail

__all__ = ["LIF", "RESETS", "lif_step"]

RESETS = ("hard", "soft")


@dataclass(frozen=True)
class LIF:
    """Leaky integrate-and-fire neurons with a decay FACTOR ``tau`` in [0, 1].

    Parameters
    ----------
    tau : float
        Membrane decay factor of (L2), ``m_t = tau * v_{t-1} + I_t``. Default 0.5.
    theta_init : float
        Initial value of every threshold (L3). Default 2.0 (the paper's). Any finite
        value is legal, <= 0 included (such a neuron may fire without input).
    reset : {"hard", "soft"}
        (L4h) ``v_t = (1 - s_t) m_t`` or (L4s) ``v_t = m_t - s_t theta``.
    detach_reset : bool
        If True, s_t inside the reset is a constant for the gradient
        (B2 uses ``g_t = e_t``); theta in (L4s) keeps its direct gradient.
    """

    tau: float = 0.5
    theta_init: float = 2.0
    reset: str = "hard"
    detach_reset: bool = False

    def __post_init__(self):
        object.__setattr__(self, "tau", check_real(self.tau, "tau", low=0.0, high=1.0, owner="LIF"))
        object.__setattr__(self, "theta_init", check_real(self.theta_init, "theta_init", owner="LIF"))
        check_choice(self.reset, "reset", RESETS, owner="LIF")
        if not isinstance(self.detach_reset, (bool, np.bool_)):
            raise fail("detach_reset", "True or False", repr(self.detach_reset), "LIF", TypeError)
        object.__setattr__(self, "detach_reset", bool(self.detach_reset))


def lif_step(current, v_prev, theta, neuron: LIF, spike_fn):
    """One LIF time step; pure, state in and out.

    Returns ``(m, s, v)``: membrane before reset, spikes (0/1, or P(m - theta) in
    smooth mode, whatever ``spike_fn`` computes) and membrane after reset.
    """
    m = neuron.tau * v_prev + current            # (L2)
    s = spike_fn(m - theta)                      # (L3)
    if neuron.reset == "hard":
        v = (1 - s) * m                          # (L4h)
    else:
        v = m - s * theta                        # (L4s)
    return m, s, v
