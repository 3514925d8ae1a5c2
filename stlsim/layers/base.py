"""The layer protocol every stlsim layer follows.

A layer maps a whole time-major input ``x`` of shape ``(T, B, *in_shape)`` to
``(T, B, *out_shape)`` in one call (batched over time, so a dense layer is one
GEMM), and its ``backward`` returns the parameter gradients and the input gradient.
Layers with ``has_neurons = True`` produce input *currents* I_t (L1) for LIF
neurons that the engine then simulates; the others (pooling, flatten, dropout)
act on spikes directly.

Parameters are plain numpy arrays owned by ``Network.params`` and passed in; a layer
object holds only its configuration (no state between calls).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .._checks import check_choice, fail

__all__ = ["Layer", "ShapePreserving", "Context", "Recurrence", "THRESHOLD_SHARING"]

THRESHOLD_SHARING = ("neuron", "channel", "layer")


@dataclass
class Context:
    """What a forward call needs beyond inputs and parameters."""

    training: bool = False
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    # The backend of the call: with "numba", Conv2d and MaxPool2d run the compiled
    # kernels of ``kernels.conv_cpu`` (same results); their NumPy code is the reference.
    backend: str = "numpy"


class Recurrence(NamedTuple):
    """A layer's own spikes of the step before, fed back into its current: (L1r) of
    ``docs/model.md`` Section 10, ``I_t = I^in_t + R(s_{t-1}) + b_rec``.

    ``kind`` is "all" (``weight`` (N, N): ``R(s) = V s``) or "one" (``weight`` (N,):
    ``R(s) = V * s``); ``bias`` is b_rec (N,) or None. Spikes are (B, N) rows.
    """

    kind: str
    weight: np.ndarray
    bias: np.ndarray | None = None

    def current(self, s):
        """R(s) + b_rec for the spikes ``s`` (B, N) of the step before (L1r)."""
        out = s @ self.weight.T if self.kind == "all" else s * self.weight
        return out if self.bias is None else out + self.bias

    def backward(self, gamma):
        """R^T(gamma): the recurrent part of dL/ds_{t-1} from gamma_t = dL/dI_t (B2r)."""
        return gamma @ self.weight if self.kind == "all" else gamma * self.weight

    def grads(self, gamma, spikes) -> dict:
        """(B13) dL/dV and dL/db_rec from gamma (T, B, N) and the spikes (T, B, N)."""
        n = gamma.shape[-1]
        g, s = gamma[1:].reshape(-1, n), spikes[:-1].reshape(-1, n)
        out = {"recurrent": g.T @ s if self.kind == "all" else np.sum(g * s, axis=0)}
        if self.bias is not None:
            out["recurrent_bias"] = gamma.reshape(-1, n).sum(axis=0)
        return out


class Layer(ABC):
    """Base class. Subclasses set ``in_shape``, ``out_shape``, ``has_neurons``."""

    has_neurons = False
    threshold_sharing = "neuron"
    theta_init = None  # None: take the network neuron's theta_init
    in_shape: tuple = ()
    out_shape: tuple = ()

    # --- parameters ------------------------------------------------------------------
    def param_shapes(self) -> dict:
        """Local parameter names -> shapes (``theta`` included for spiking layers)."""
        return {"theta": self.theta_shape()} if self.has_neurons else {}

    def init_params(self, rng: np.random.Generator, dtype, theta_init: float) -> dict:
        """Fresh parameters (local names). Spiking layers fill ``theta`` with ``theta_init``."""
        if not self.has_neurons:
            return {}
        value = theta_init if self.theta_init is None else self.theta_init
        return {"theta": np.full(self.theta_shape(), value, dtype=dtype)}

    def synaptic_params(self) -> tuple:
        """Names of the parameters an SL/STL optimizer trains (all but ``theta``)."""
        return tuple(k for k in self.param_shapes() if k != "theta")

    # --- thresholds (B5): sharing levels ---------------------------------------------
    def _check_sharing(self, sharing, allowed=THRESHOLD_SHARING):
        return check_choice(sharing, "threshold_sharing", allowed, owner=type(self).__name__)

    def theta_shape(self) -> tuple:
        if self.threshold_sharing == "neuron":
            return tuple(self.out_shape)
        if self.threshold_sharing == "channel":
            return (self.out_shape[0],)
        return ()

    def expand_theta(self, theta: np.ndarray) -> np.ndarray:
        """Broadcast a shared threshold to one value per neuron, shape ``out_shape``."""
        if self.threshold_sharing == "channel":
            theta = theta.reshape((-1,) + (1,) * (len(self.out_shape) - 1))
        return np.broadcast_to(theta, self.out_shape)

    def reduce_theta(self, grad_per_neuron: np.ndarray) -> np.ndarray:
        """Sum a per-neuron threshold gradient ``(*out_shape)`` over shared neurons (B5)."""
        if self.threshold_sharing == "neuron":
            return grad_per_neuron
        if self.threshold_sharing == "channel":
            return grad_per_neuron.reshape(self.out_shape[0], -1).sum(axis=1)
        return np.asarray(grad_per_neuron.sum())

    def recurrence(self, params: dict):
        """The layer's ``Recurrence`` built from its parameters, or None (feed-forward)."""
        return None

    # --- compute -----------------------------------------------------------------------
    @abstractmethod
    def forward(self, x: np.ndarray, params: dict, ctx: Context):
        """Return ``(output, cache)`` for time-major ``x`` of shape (T, B, *in_shape)."""

    @abstractmethod
    def backward(self, grad_out: np.ndarray, cache, params: dict, need_input_grad: bool):
        """Return ``(grads, grad_x)``: local parameter gradients and dL/dx (or None)."""

    # --- state that is not a parameter (BatchNorm running estimates) --------------------
    def init_buffers(self, dtype) -> dict:
        """Fresh non-trainable state (local names), e.g. BatchNorm running estimates.

        ``Network`` keeps them in ``net.buffers`` and passes them to ``forward`` in the
        same dict as the parameters; a training-mode forward may update them in place.
        """
        return {}

    # --- wiring ------------------------------------------------------------------------
    def known_in_shape(self):
        """The input shape the layer fixes by itself (Dense: (in_features,)), else None."""
        return tuple(self.in_shape) if self.in_shape is not None else None

    def build(self, in_shape: tuple, position: int):
        """Learn (or check) the input shape; set ``in_shape`` and ``out_shape``.

        Called by ``Network`` on every layer in order, with the previous layer's
        ``out_shape``. The default checks a fixed ``in_shape``.
        """
        self.check_input_shape(in_shape, position)

    def infer_in_shape(self, out_shape: tuple, position: int):
        """The smallest input shape giving ``out_shape`` (for input-shape inference),
        or None if the layer cannot tell."""
        return None

    def check_input_shape(self, shape: tuple, position: int):
        if tuple(shape) != tuple(self.in_shape):
            raise fail(f"layers[{position}]", f"a layer taking inputs of shape {tuple(shape)}",
                       f"{type(self).__name__} with in_shape {tuple(self.in_shape)}", "Network")

    def describe(self) -> str:
        return repr(self)


class ShapePreserving(Layer):
    """A layer whose output has its input's shape, learned from the layer before (ReLU,
    Scale, Dropout): the wiring they share."""

    in_shape = out_shape = None

    def known_in_shape(self):
        return None

    def build(self, in_shape, position):
        self.in_shape = self.out_shape = tuple(in_shape)

    def infer_in_shape(self, out_shape, position):
        return tuple(out_shape)
