"""ReLU on a layer's output: y = max(x, 0), dL/dx = dL/dy * [x > 0].

Norse's conv example applies ``relu`` to spikes before its readout
(``norse/torch/models/conv.py``). On 0/1 spikes the forward is the identity, but torch's
ReLU passes no gradient where x = 0 (``threshold_backward``: ``grad * (x > 0)``), so the
gradient to a silent neuron is cut: the layer is kept rather than dropped. No neurons, no
parameters.
"""
from __future__ import annotations

import numpy as np

from .base import ShapePreserving

__all__ = ["ReLU"]


class ReLU(ShapePreserving):
    """ReLU(): max(x, 0) element-wise, with torch's derivative 1[x > 0]."""

    has_neurons = False

    def __repr__(self) -> str:
        return "ReLU()"

    def forward(self, x, params, ctx):
        positive = x > 0
        return np.where(positive, x, np.zeros((), dtype=x.dtype)), positive

    def backward(self, grad_out, cache, params, need_input_grad):
        if not need_input_grad:
            return {}, None
        return {}, grad_out * cache
