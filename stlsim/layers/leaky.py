"""LeakyIntegrator: a non-spiking membrane that filters its input currents over time.

The readout of Norse's ``LICell`` / ``LI`` / ``LILinearCell`` and the ``mem`` of snnTorch's
last ``Leaky`` (docs/model.md Section 9.6):

    J_t = alpha J_{t-1} + I_t,  J_0 = 0                                           (LI1)
    u_t = tau w_{t-1} + (1 - tau) v_leak + r J_t - [subtract] theta s~_{t-1}       (LI2)
    s~_t = H'(u_t - theta) held constant; w_t = (1 - s~_t) u_t [zero] or u_t      (LI3)

The output is u_t. The backward runs (BLI1)-(BLI2) in reverse time: no gradient passes
through s~ (the peers detach it). tau, r, v_leak, v_init, alpha, theta are constants of the
layer, except the ones named in ``learn`` ("tau", "theta"): those are parameters, one per
neuron, with the gradients (BLI3), tau clamped to [0, 1] in the forward as snnTorch's beta.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_bool, check_choice, check_real, fail
from .base import Layer

__all__ = ["LeakyIntegrator", "READOUT_RESETS"]

READOUT_RESETS = ("none", "subtract", "zero")


def _decay_value(value, name):
    """One finite number, or a finite array (one value per neuron)."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return check_real(float(array), name, owner="LeakyIntegrator")
    if not np.all(np.isfinite(array)):
        raise fail(name, "finite values", "non-finite values", "LeakyIntegrator")
    return array.copy()


class LeakyIntegrator(Layer):
    """``LeakyIntegrator(tau, input_gain=1, v_leak=0, v_init=None, alpha=0, reset="none",
    theta=1, spike_at_threshold=False)``: (LI1)-(LI3) over the time axis. ``tau`` and
    ``input_gain`` may be arrays that broadcast over the layer's neurons; ``v_init``
    defaults to ``v_leak``."""

    has_neurons = False

    def __init__(self, tau, *, input_gain=1.0, v_leak: float = 0.0, v_init: float | None = None,
                 alpha: float = 0.0, reset: str = "none", theta: float = 1.0,
                 spike_at_threshold: bool = False, learn=()):
        self.tau = _decay_value(tau, "tau")
        self.input_gain = _decay_value(input_gain, "input_gain")
        self.v_leak = check_real(v_leak, "v_leak", owner="LeakyIntegrator")
        self.v_init = self.v_leak if v_init is None else check_real(v_init, "v_init",
                                                                    owner="LeakyIntegrator")
        self.alpha = check_real(alpha, "alpha", low=0.0, high=1.0, owner="LeakyIntegrator")
        self.reset = check_choice(reset, "reset", READOUT_RESETS, "LeakyIntegrator")
        self.theta = check_real(theta, "theta", owner="LeakyIntegrator")
        self.spike_at_threshold = check_bool(spike_at_threshold, "spike_at_threshold",
                                             "LeakyIntegrator")
        self.learn = tuple(check_choice(name, "learn", ("tau", "theta"), "LeakyIntegrator")
                           for name in learn)
        self.in_shape = self.out_shape = None

    def __repr__(self) -> str:
        tau = self.tau if np.ndim(self.tau) == 0 else f"array{np.shape(self.tau)}"
        return (f"LeakyIntegrator(tau={tau}, alpha={self.alpha}, reset={self.reset!r}"
                + (f", theta={self.theta}" if self.reset != "none" else "") + ")")

    def known_in_shape(self):
        return None

    def build(self, in_shape, position):
        for name in ("tau", "input_gain"):
            value = getattr(self, name)
            if np.ndim(value):
                try:
                    np.broadcast_to(value, tuple(in_shape))
                except ValueError:
                    raise fail(name, f"one value, or values that broadcast over the neurons "
                               f"{tuple(in_shape)}", f"shape {np.shape(value)}",
                               "LeakyIntegrator") from None
        self.in_shape = self.out_shape = tuple(in_shape)

    def infer_in_shape(self, out_shape, position):
        return tuple(out_shape)

    # --- trained tau, theta (BLI3) -------------------------------------------------------
    def param_shapes(self) -> dict:
        return {name: tuple(self.out_shape) for name in self.learn}

    def init_params(self, rng, dtype, theta_init):
        return {name: np.broadcast_to(np.asarray(getattr(self, name), dtype=dtype),
                                      self.out_shape).copy() for name in self.learn}

    def _values(self, params, dtype):
        """(tau, theta) of this call: the constants, or the trained values (tau clamped)."""
        tau = np.clip(params["tau"], 0, 1) if "tau" in self.learn else np.asarray(self.tau, dtype=dtype)
        theta = params["theta"] if "theta" in self.learn else dtype.type(self.theta)
        return tau, theta

    def _fires(self, u, theta):
        return (u >= theta) if self.spike_at_threshold else (u > theta)

    def forward(self, x, params, ctx):
        dtype = x.dtype
        tau, theta = self._values(params, dtype)
        gain = np.asarray(self.input_gain, dtype=dtype)
        leak = (1 - tau) * dtype.type(self.v_leak)
        alpha = dtype.type(self.alpha)
        u = np.empty_like(x)
        spikes = np.empty_like(x) if self.reset != "none" else None
        carried_before = np.empty_like(x) if "tau" in self.learn else None    # w_{t-1}
        current = np.zeros(x.shape[1:], dtype=dtype)
        carried = np.full(x.shape[1:], self.v_init, dtype=dtype)               # w_0 = v_init
        first = previous = self._fires(carried, theta).astype(dtype)          # s~_0 (subtract)
        for t in range(x.shape[0]):
            current = alpha * current + x[t] if self.alpha else x[t]          # (LI1)
            if carried_before is not None:
                carried_before[t] = carried
            u[t] = tau * carried + leak + gain * current                      # (LI2)
            if self.reset == "subtract":
                u[t] -= theta * previous                                      # (LI2) subtract
            carried = u[t]
            if spikes is not None:
                spikes[t] = previous = self._fires(u[t], theta).astype(dtype)  # (LI3), detached
                if self.reset == "zero":
                    carried = (1 - previous) * u[t]                           # (LI3) zero
        return u, (spikes, carried_before, first)

    def backward(self, grad_out, cache, params, need_input_grad):
        spikes, carried_before, first = cache
        dtype = grad_out.dtype
        tau, _ = self._values(params, dtype)
        gain = np.asarray(self.input_gain, dtype=dtype)
        alpha = dtype.type(self.alpha)
        grad_current = np.empty_like(grad_out)
        grads = {name: np.zeros(self.out_shape, dtype=dtype) for name in self.learn}
        delta = np.zeros(grad_out.shape[1:], dtype=dtype)                     # delta_{T+1} = 0
        grad_j_next = np.zeros(grad_out.shape[1:], dtype=dtype)
        for t in range(grad_out.shape[0] - 1, -1, -1):
            carry = tau * delta                                               # du_{t+1}/du_t
            if self.reset == "zero":
                carry = carry * (1 - spikes[t])
            delta = grad_out[t] + carry                                       # (BLI1)
            grad_j_next = gain * delta + alpha * grad_j_next                  # (BLI2)
            grad_current[t] = grad_j_next
            if "tau" in self.learn:                                           # (BLI3) tau
                grads["tau"] += np.sum(delta * (carried_before[t] - dtype.type(self.v_leak)), axis=0)
            if "theta" in self.learn and self.reset == "subtract":            # (BLI3) theta
                grads["theta"] -= np.sum(delta * (spikes[t - 1] if t > 0 else first), axis=0)
        if "tau" in self.learn:                       # the clamp passes no gradient outside [0, 1]
            grads["tau"] *= (params["tau"] >= 0) & (params["tau"] <= 1)
        return grads, (grad_current if need_input_grad else None)
