"""Scale: graded spikes, y_t = c * s_t (docs/model.md 9.10, (G1), (G2)).

snnTorch's ``graded_spikes_factor`` multiplies a layer's output spikes by c
(``snntorch/_neurons/neurons.py`` ``fire``: ``spk = spk * self.graded_spikes_factor``)
while its reset reads the ungraded spike (``mem_reset``). As a layer after the spiking one:

    y_t = c s_t                                   (G1)
    dL/ds_t = c dL/dy_t,  dL/dc = sum_{t,b} dL/dy_t s_t     (G2)

No neurons; one parameter ``scale``, one value per neuron (shaped like the input).
"""
from __future__ import annotations

import numpy as np

from .base import ShapePreserving

__all__ = ["Scale"]


class Scale(ShapePreserving):
    """Scale(): y = scale * x element-wise, ``scale`` a parameter shaped like one sample
    (initialised to ones)."""

    has_neurons = False

    def __repr__(self) -> str:
        return "Scale()"

    def param_shapes(self) -> dict:
        return {"scale": tuple(self.out_shape)}

    def init_params(self, rng, dtype, theta_init):
        return {"scale": np.ones(self.out_shape, dtype=dtype)}

    def forward(self, x, params, ctx):
        return x * params["scale"], x                                     # (G1)

    def backward(self, grad_out, cache, params, need_input_grad):
        x = cache
        grads = {"scale": np.sum(grad_out * x, axis=(0, 1))}             # (G2)
        grad_x = grad_out * params["scale"] if need_input_grad else None
        return grads, grad_x
