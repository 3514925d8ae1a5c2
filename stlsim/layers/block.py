"""SynapseBlock: a weight layer and the non-spiking layers after it, feeding one set of neurons.

The peers' tutorials put pooling (and dropout) between a convolution and its neurons,
``Conv2d -> MaxPool2d -> Leaky`` (snnTorch tutorial 7). A ``SynapseBlock`` is that
sequence as one stlsim layer with neurons: its currents are

    I_t = f_n( ... f_2( W * s^{l-1}_t ) ... )            docs/model.md (L1b)

where W * s is the weight layer's (L1) (with its BatchNorm, if any) and f_2..f_n are
pooling, flatten or dropout layers. The backward is each part's own backward in reverse
order (chain rule, (B4b)): dL/dI_t arrives from the neurons (B3g), passes down through
f_n', ..., f_2' to the weight layer, whose (B4) gives dL/dW and (B6) dL/ds^{l-1}.

Parameters and buffers of part k are named ``"{k}.{name}"`` (``"0.weight"``,
``"0.bn_weight"``); ``theta`` is the block's, shaped like the block's output.
"""
from __future__ import annotations

from .._checks import fail
from .base import Layer

__all__ = ["SynapseBlock"]


class SynapseBlock(Layer):
    """``SynapseBlock([Conv2d(...), MaxPool2d(2)])``: the first layer makes currents (a
    Dense or Conv2d), the others (pooling, Flatten, Dropout) transform them before the
    neurons. ``threshold_sharing`` as for Conv2d/Dense, over the block's output."""

    has_neurons = True

    def __init__(self, layers, *, threshold_sharing: str = "neuron", theta_init=None):
        layers = list(layers)
        if not layers or not isinstance(layers[0], Layer) or not layers[0].has_neurons:
            raise fail("layers[0]", "a layer that makes currents (Dense or Conv2d)",
                       type(layers[0]).__name__ if layers else "no layer", "SynapseBlock", TypeError)
        for k, layer in enumerate(layers[1:], start=1):
            if not isinstance(layer, Layer) or layer.has_neurons:
                raise fail(f"layers[{k}]", "a layer without neurons (pooling, Flatten, Dropout)",
                           type(layer).__name__, "SynapseBlock", TypeError)
        self.parts = layers
        self.threshold_sharing = self._check_sharing(threshold_sharing)
        self.theta_init = theta_init
        self.in_shape = self.out_shape = None

    def __repr__(self) -> str:
        return f"SynapseBlock([{', '.join(repr(p) for p in self.parts)}])"

    # --- shapes ------------------------------------------------------------------------
    def known_in_shape(self):
        return self.parts[0].known_in_shape()

    def build(self, in_shape, position):
        shape = tuple(in_shape)
        for part in self.parts:
            part.build(shape, position)
            shape = tuple(part.out_shape)
        self.in_shape = tuple(in_shape)
        self.out_shape = shape

    def infer_in_shape(self, out_shape, position):
        shape = tuple(out_shape)
        for part in reversed(self.parts):
            shape = part.infer_in_shape(shape, position)
            if shape is None:
                return None
        return shape

    # --- parameters --------------------------------------------------------------------
    def _prefixed(self, per_part):
        return {f"{k}.{name}": value for k, values in enumerate(per_part)
                for name, value in values.items() if name != "theta"}

    def param_shapes(self) -> dict:
        shapes = self._prefixed([part.param_shapes() for part in self.parts])
        shapes["theta"] = self.theta_shape()
        return shapes

    def init_params(self, rng, dtype, theta_init):
        params = self._prefixed([part.init_params(rng, dtype, theta_init) for part in self.parts])
        params.update(Layer.init_params(self, rng, dtype, theta_init))
        return params

    def init_buffers(self, dtype) -> dict:
        return self._prefixed([part.init_buffers(dtype) for part in self.parts])

    def _part_params(self, params, k):
        prefix = f"{k}."
        return {name[len(prefix):]: value for name, value in params.items() if name.startswith(prefix)}

    # --- compute -----------------------------------------------------------------------
    def forward(self, x, params, ctx):
        caches = []
        for k, part in enumerate(self.parts):                      # (L1b)
            x, cache = part.forward(x, self._part_params(params, k), ctx)
            caches.append(cache)
        return x, caches

    def backward(self, grad_current, cache, params, need_input_grad):
        grads, grad = {}, grad_current
        for k in range(len(self.parts) - 1, -1, -1):               # (B4b): the parts in reverse
            part_grads, grad = self.parts[k].backward(grad, cache[k], self._part_params(params, k),
                                                      need_input_grad=need_input_grad or k > 0)
            grads.update({f"{k}.{name}": value for name, value in part_grads.items()})
        return grads, grad
