"""Flatten and Reshape (no neurons, no parameters), and how a Network learns its shapes.

``resolve_shapes`` is what ``Network`` calls at construction: it fixes the input shape,
then passes shapes along the layers (``layer.build(shape)``), so convolution, pooling,
flatten and dropout layers need not be told their sizes.

The input shape comes from, in order: ``Network(input_shape=...)``; the first layer if
it fixes its own input (a Dense, or a Conv2d with ``input_size=``); else it is inferred
BACKWARDS from the first layer that fixes its input (usually the first Dense). Each
layer on the way back gives the smallest input that produces its output (a 2x2 pool
maps 7 back to 14, not 15; a k5 p2 convolution keeps the size), and a Flatten splits
its n features into the C channels of the nearest Conv2d before it and a SQUARE image
(n = C * h * h). This makes the answer unique; other inputs (non-square images, sizes
that a pool's floor rounds down) need an explicit ``input_shape``. When the inference
cannot decide, the error says so and asks for ``input_shape``.
"""
from __future__ import annotations

import math

import numpy as np

from .._checks import check_int, fail
from .base import Layer

__all__ = ["Flatten", "Reshape", "resolve_shapes", "infer_input_shape"]


def _optional_shape(shape, name, owner):
    if shape is None:
        return None
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    return tuple(check_int(n, name, low=1, owner=owner) for n in shape)


def _check_fixed(layer, in_shape, position):
    fixed = layer.known_in_shape()
    if fixed is not None and tuple(in_shape) != fixed:
        raise fail(f"layers[{position}]", f"a layer taking inputs of shape {tuple(in_shape)}",
                   f"{layer!r}", "Network")


class Flatten(Layer):
    """(T, B, *shape) -> (T, B, prod(shape)), in C order (channel, row, column) as torch.

    ``input_shape`` (optional) fixes the shape it takes, for a Flatten in first position.
    """

    has_neurons = False

    def __init__(self, input_shape=None):
        self.input_shape = _optional_shape(input_shape, "input_shape", "Flatten")
        self.in_shape = self.out_shape = None

    def __repr__(self) -> str:
        return "Flatten()" if self.input_shape is None else f"Flatten(input_shape={self.input_shape})"

    def known_in_shape(self):
        return self.input_shape

    def build(self, in_shape, position):
        _check_fixed(self, in_shape, position)
        self.in_shape = tuple(in_shape)
        self.out_shape = (int(np.prod(self.in_shape)),)

    def forward(self, x, params, ctx):
        return x.reshape(x.shape[:2] + self.out_shape), None

    def backward(self, grad_out, cache, params, need_input_grad):
        if not need_input_grad:
            return {}, None
        return {}, grad_out.reshape(grad_out.shape[:2] + self.in_shape)


class Reshape(Layer):
    """(T, B, *in_shape) -> (T, B, *shape), e.g. (28, 28) images -> (1, 28, 28) for Conv2d.

    ``input_shape`` (optional) fixes the shape it takes, for a Reshape in first position.
    """

    has_neurons = False

    def __init__(self, shape, input_shape=None):
        self.shape = _optional_shape(shape, "shape", "Reshape")
        self.input_shape = _optional_shape(input_shape, "input_shape", "Reshape")
        self.in_shape = None
        self.out_shape = self.shape

    def __repr__(self) -> str:
        extra = "" if self.input_shape is None else f", input_shape={self.input_shape}"
        return f"Reshape({self.shape}{extra})"

    def known_in_shape(self):
        return self.input_shape

    def build(self, in_shape, position):
        _check_fixed(self, in_shape, position)
        if int(np.prod(in_shape)) != int(np.prod(self.shape)):
            raise fail(f"layers[{position}]", f"a layer taking inputs of shape {tuple(in_shape)}",
                       f"{self!r}, which needs {int(np.prod(self.shape))} values", "Network")
        self.in_shape = tuple(in_shape)

    def forward(self, x, params, ctx):
        return x.reshape(x.shape[:2] + self.shape), None

    def backward(self, grad_out, cache, params, need_input_grad):
        if not need_input_grad:
            return {}, None
        return {}, grad_out.reshape(grad_out.shape[:2] + self.in_shape)


# ---------------------------------------------------------------------- shape wiring --
def _cannot_infer(why: str) -> Exception:
    return fail("input_shape", f"given ({why})", "None", "Network")


def _channels_before(layers, position):
    """Channel count entering ``layers[position]``: the nearest Conv2d's out_channels,
    looking back through channel-preserving pooling and dropout layers; or None."""
    from .conv import Conv2d
    from .dropout import Dropout
    from .pool import _Pool2d
    for layer in reversed(layers[:position]):
        if isinstance(layer, Conv2d):
            return layer.out_channels
        if not isinstance(layer, (_Pool2d, Dropout)):
            return None
    return None


def infer_input_shape(layers) -> tuple:
    """Infer the network input shape backwards from the first layer that fixes its input."""
    anchor = next((k for k, layer in enumerate(layers) if layer.known_in_shape() is not None), None)
    if anchor is None:
        raise _cannot_infer("no layer fixes its input size: add a Dense, or give the first "
                            "Conv2d an input_size")
    shape = tuple(layers[anchor].known_in_shape())
    for j in range(anchor - 1, -1, -1):
        layer = layers[j]
        if isinstance(layer, Flatten):
            channels = _channels_before(layers, j)
            if channels is None or len(shape) != 1:
                raise _cannot_infer(f"the shape entering Flatten at layers[{j}] is unknown: "
                                    "no Conv2d before it fixes its channel count")
            pixels, remainder = divmod(shape[0], channels)
            side = math.isqrt(pixels)
            if remainder or side * side != pixels:
                raise _cannot_infer(f"the {shape[0]} features leaving Flatten at layers[{j}] are not "
                                    f"{channels} channels of a square image")
            shape = (channels, side, side)
            continue
        previous = layer.infer_in_shape(shape, j)
        if previous is None:
            raise _cannot_infer(f"the input of layers[{j}] ({layer!r}) cannot be inferred from "
                                f"its output shape {shape}")
        shape = tuple(previous)
    return shape


def resolve_shapes(layers, input_shape=None) -> tuple:
    """Fix the input shape and ``build`` every layer in order. Returns the input shape."""
    if input_shape is None:
        input_shape = layers[0].known_in_shape()
        if input_shape is None:
            input_shape = infer_input_shape(layers)
    else:
        if isinstance(input_shape, (int, np.integer)):
            input_shape = (input_shape,)
        try:
            input_shape = tuple(input_shape)
        except TypeError:
            raise fail("input_shape", "a tuple of positive integers", repr(input_shape),
                       "Network", TypeError) from None
        if not input_shape or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                      and n >= 1 for n in input_shape):
            raise fail("input_shape", "a non-empty tuple of positive integers", repr(input_shape),
                       "Network")
        input_shape = tuple(int(n) for n in input_shape)
    shape = tuple(input_shape)
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):  # pragma: no cover - Network checks first
            raise fail(f"layers[{i}]", "a stlsim layer", type(layer).__name__, "Network", TypeError)
        layer.build(shape, i)
        shape = tuple(layer.out_shape)
    return tuple(input_shape)
