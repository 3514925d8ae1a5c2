"""Dense (fully connected) layer: (L1) I_t = W s_t (+ b), with backward (B4), (B6)."""
from __future__ import annotations

import math

import numpy as np

from .._checks import check_int, check_real, fail
from .base import Layer, Recurrence

__all__ = ["Dense"]


class Dense(Layer):
    """Fully connected synapses followed by LIF neurons.

    ``weight`` has shape ``(out_features, in_features)`` like ``torch.nn.Linear``;
    initialised U(-g/sqrt(in), g/sqrt(in)) with ``init_gain`` g (g = 1 is torch's
    default). No bias by default, as in the paper's reference code.

    ``threshold_sharing`` is "neuron" (one theta per output neuron, the paper's
    choice) or "layer" (a single theta).

    ``recurrent`` feeds the layer's own spikes of the step before back into its current,
    (L1r) of ``docs/model.md`` Section 10: "all" adds ``V s_{t-1}`` with V of shape
    (out, out) (parameter ``"{i}.recurrent"``, initialised like ``weight`` with
    in_features = out_features), "one" adds ``V * s_{t-1}`` with V of shape (out,)
    (snnTorch's one-to-one recurrence), None (default) none. ``recurrent_bias=True``
    adds a bias b_rec at every step (``"{i}.recurrent_bias"``; snnTorch's all-to-all
    recurrence is a ``torch.nn.Linear`` with one). Recurrent layers run on the clock
    engine.
    """

    has_neurons = True

    def __init__(self, in_features: int, out_features: int, *, bias: bool = False,
                 threshold_sharing: str = "neuron", init_gain: float = 1.0,
                 theta_init: float | None = None, recurrent: str | None = None,
                 recurrent_bias: bool = False):
        self.in_features = check_int(in_features, "in_features", low=1, owner="Dense")
        self.out_features = check_int(out_features, "out_features", low=1, owner="Dense")
        if not isinstance(bias, (bool, np.bool_)):
            raise fail("bias", "True or False", repr(bias), "Dense", TypeError)
        self.bias = bool(bias)
        self.threshold_sharing = self._check_sharing(threshold_sharing, ("neuron", "layer"))
        self.init_gain = check_real(init_gain, "init_gain", low=0.0, owner="Dense")
        self.theta_init = None if theta_init is None else check_real(theta_init, "theta_init", owner="Dense")
        if recurrent not in (None, "all", "one"):
            raise fail("recurrent", 'None, "all" or "one"', repr(recurrent), "Dense")
        self.recurrent = recurrent
        if not isinstance(recurrent_bias, (bool, np.bool_)):
            raise fail("recurrent_bias", "True or False", repr(recurrent_bias), "Dense", TypeError)
        if recurrent_bias and recurrent is None:
            raise fail("recurrent_bias", 'False without recurrence (recurrent="all" or "one")',
                       "True", "Dense")
        self.recurrent_bias = bool(recurrent_bias)
        self.in_shape = (self.in_features,)
        self.out_shape = (self.out_features,)

    def __repr__(self) -> str:
        extra = ", bias=True" if self.bias else ""
        if self.threshold_sharing != "neuron":
            extra += f", threshold_sharing={self.threshold_sharing!r}"
        if self.recurrent is not None:
            extra += f", recurrent={self.recurrent!r}"
        if self.recurrent_bias:
            extra += ", recurrent_bias=True"
        return f"Dense({self.in_features}, {self.out_features}{extra})"

    def param_shapes(self) -> dict:
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.bias:
            shapes["bias"] = (self.out_features,)
        n = self.out_features
        if self.recurrent is not None:
            shapes["recurrent"] = (n, n) if self.recurrent == "all" else (n,)
        if self.recurrent_bias:
            shapes["recurrent_bias"] = (n,)
        shapes.update(super().param_shapes())
        return shapes

    def init_params(self, rng, dtype, theta_init):
        bound = self.init_gain / math.sqrt(self.in_features)
        params = {"weight": rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(dtype)}
        if self.bias:
            params["bias"] = rng.uniform(-bound, bound, self.out_features).astype(dtype)
        if self.recurrent is not None:                  # (L1r): fan-in = out_features
            n = self.out_features
            rec = self.init_gain / math.sqrt(n)
            shape = (n, n) if self.recurrent == "all" else (n,)
            params["recurrent"] = rng.uniform(-rec, rec, shape).astype(dtype)
            if self.recurrent_bias:
                params["recurrent_bias"] = rng.uniform(-rec, rec, n).astype(dtype)
        params.update(super().init_params(rng, dtype, theta_init))
        return params

    def recurrence(self, params):
        if self.recurrent is None:
            return None
        return Recurrence(self.recurrent, params["recurrent"], params.get("recurrent_bias"))

    def forward(self, x, params, ctx):
        # (L1) for all T steps at once: one GEMM of (T*B, in) x (in, out). (A 3-D ``@``
        # would run T separate GEMMs, several times slower.)
        current = (x.reshape(-1, x.shape[-1]) @ params["weight"].T).reshape(x.shape[:-1] + (self.out_features,))
        if self.bias:
            current += params["bias"]
        return current, x

    def backward(self, grad_current, cache, params, need_input_grad):
        x = cache
        n_in = x.shape[-1]
        grads = {"weight": grad_current.reshape(-1, self.out_features).T @ x.reshape(-1, n_in)}  # (B4)
        if self.bias:
            grads["bias"] = grad_current.reshape(-1, self.out_features).sum(axis=0)
        grad_x = None
        if need_input_grad:
            grad_x = (grad_current.reshape(-1, self.out_features) @ params["weight"]).reshape(x.shape)  # (B6)
        return grads, grad_x
