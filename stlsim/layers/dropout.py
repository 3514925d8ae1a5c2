"""Dropout with a fresh mask per time step (inverted scaling, as ``torch.nn.Dropout``).

In training (``ctx.training``) every element of every time step is kept with
probability 1 - p and scaled by 1/(1 - p), zeroed otherwise:

    y_t = x_t * mask_t / (1 - p),   mask_t ~ Bernoulli(1 - p), independent over t, b, i
    dL/dx_t = dL/dy_t * mask_t / (1 - p)

The masks are drawn from ``ctx.rng`` (the network's seeded generator) before any
kernel runs, so a run is reproducible from ``Network(seed=...)``. In evaluation the
layer is the identity and draws nothing. No neurons, no parameters.

``Dropout(p, masks=...)`` replays given scaled masks (0 or 1/(1 - p), broadcast against
(T, B, *shape)) in training instead of drawing: the oracle hands it a peer's own masks
(docs/model.md 9.9), one per step (torch's Dropout called per step) or one for all steps
(SpikingJelly's ``layer.Dropout``, shape (1, B, *shape)).
"""
from __future__ import annotations

import numpy as np

from .._checks import check_real, fail
from .base import ShapePreserving

__all__ = ["Dropout"]


class Dropout(ShapePreserving):
    """Dropout(p): zero each input with probability p during training only."""

    has_neurons = False

    def __init__(self, p: float = 0.5, *, masks=None):
        self.p = check_real(p, "p", low=0.0, high=1.0, high_open=True, owner="Dropout")
        self.masks = None if masks is None else np.asarray(masks)
        self.in_shape = self.out_shape = None

    def __repr__(self) -> str:
        return f"Dropout({self.p}{', masks replayed' if self.masks is not None else ''})"

    def forward(self, x, params, ctx):
        if not ctx.training or self.p == 0.0:
            return x, None
        if self.masks is not None:                              # given masks, replayed
            try:
                scaled_mask = np.broadcast_to(self.masks.astype(x.dtype), x.shape)
            except ValueError:
                raise fail("masks", f"scaled masks that broadcast against the input {x.shape}",
                           f"shape {self.masks.shape}", "Dropout") from None
            return x * scaled_mask, scaled_mask
        keep = ctx.rng.random(x.shape) >= self.p                # one draw per t, b and element
        scaled_mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * scaled_mask, scaled_mask

    def backward(self, grad_out, cache, params, need_input_grad):
        if not need_input_grad:
            return {}, None
        scaled_mask = cache
        return {}, (grad_out if scaled_mask is None else grad_out * scaled_mask)
