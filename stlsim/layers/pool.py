"""MaxPool2d and AvgPool2d over spikes, per image and time step; no neurons, no parameters.

Windows of ``kernel_size`` move by ``stride`` (default: the kernel size) without
padding; rows and columns that do not fill a window are dropped (torch's floor mode).

Max pooling over spikes has ties everywhere (a window of 0/1 values usually holds
several equal maxima). The forward value does not depend on the choice, the gradient
does: stlsim routes each window's gradient to its FIRST maximal element in row-major
order (lowest row, then lowest column), as PyTorch's ``max_pool2d`` does. The forward
visits the window's elements in row-major order and replaces the running maximum only
when an element is strictly greater, which keeps exactly that element.

    max: y = x[first argmax],     dL/dx[first argmax] += dL/dy, 0 elsewhere in the window
    avg: y = mean(window),        dL/dx += dL/dy / (kh kw) on every element of the window

With the "numba" backend (``ctx.backend``) MaxPool2d runs the kernels of
``stlsim.kernels.conv_cpu`` instead, bitwise the same.
"""
from __future__ import annotations

import numpy as np

from .._checks import fail
from .base import Layer
from .conv import _pair, conv_input_size, conv_output_size

__all__ = ["MaxPool2d", "AvgPool2d"]


class _Pool2d(Layer):
    has_neurons = False

    def __init__(self, kernel_size, stride=None):
        owner = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", owner, 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", owner, 1)
        self.in_shape = self.out_shape = None

    def __repr__(self) -> str:
        k, s = self.kernel_size, self.stride
        text = f"{type(self).__name__}({k[0] if k[0] == k[1] else k}"
        if s != k:
            text += f", stride={s[0] if s[0] == s[1] else s}"
        return text + ")"

    def known_in_shape(self):
        return None

    def build(self, in_shape, position):
        shape = tuple(in_shape)
        if len(shape) != 3:
            raise fail(f"layers[{position}]", f"a layer taking inputs of shape {shape}",
                       f"{self!r}, which takes (C, H, W)", "Network")
        out = tuple(conv_output_size(n, k, s, 0) for n, k, s in zip(shape[1:], self.kernel_size, self.stride))
        if min(out) < 1:
            raise fail(f"layers[{position}]", f"a pooling window that fits its input {shape}",
                       repr(self), "Network")
        self.in_shape = shape
        self.out_shape = (shape[0],) + out

    def infer_in_shape(self, out_shape, position):
        if len(out_shape) != 3:
            return None
        return (out_shape[0],) + tuple(conv_input_size(n, k, s, 0) for n, k, s in
                                       zip(out_shape[1:], self.kernel_size, self.stride))

    def _offsets(self):
        """(ki, kj, slice rows, slice cols): where window element (ki, kj) sits in the input."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        _, h_out, w_out = self.out_shape
        for ki in range(kh):
            for kj in range(kw):
                yield ki, kj, slice(ki, ki + sh * (h_out - 1) + 1, sh), slice(kj, kj + sw * (w_out - 1) + 1, sw)


class MaxPool2d(_Pool2d):
    """Max pooling; the gradient goes to the first maximal element of each window
    in row-major order, as PyTorch (see the module docstring)."""

    def forward(self, x, params, ctx):
        kh, kw = self.kernel_size
        images = x.reshape((-1,) + self.in_shape[1:])
        index_type = np.int16 if kh * kw <= np.iinfo(np.int16).max else np.int64
        T, B = x.shape[:2]
        if ctx.backend == "numba":                 # the same on a compiled kernel (bitwise)
            from ..kernels import conv_cpu
            images = np.ascontiguousarray(images)
            out = np.empty((images.shape[0],) + self.out_shape[1:], dtype=x.dtype)
            first_max = np.empty(out.shape, dtype=index_type)
            conv_cpu.maxpool_forward(images, self.kernel_size, self.stride, out, first_max)
            return out.reshape((T, B) + self.out_shape), (first_max, True)
        out = first_max = None
        for ki, kj, rows, cols in self._offsets():          # window elements in row-major order
            candidate = images[:, rows, cols]
            if out is None:
                out = candidate.copy()
                first_max = np.zeros(out.shape, dtype=index_type)
                continue
            larger = candidate > out                          # strict: ties keep the first maximum
            np.copyto(out, candidate, where=larger)
            np.copyto(first_max, ki * kw + kj, where=larger)
        return out.reshape((T, B) + self.out_shape), (first_max, False)

    def backward(self, grad_out, cache, params, need_input_grad):
        if not need_input_grad:
            return {}, None
        first_max, compiled = cache
        kw = self.kernel_size[1]
        T, B = grad_out.shape[:2]
        _, h_out, w_out = self.out_shape
        grad = grad_out.reshape(-1, h_out, w_out)
        grad_x = np.zeros((grad.shape[0],) + self.in_shape[1:], dtype=grad_out.dtype)
        if compiled:
            from ..kernels import conv_cpu
            conv_cpu.maxpool_backward(np.ascontiguousarray(grad), first_max, self.kernel_size,
                                      self.stride, grad_x)
            return {}, grad_x.reshape((T, B) + self.in_shape)
        for ki, kj, rows, cols in self._offsets():
            grad_x[:, rows, cols] += np.where(first_max == ki * kw + kj, grad, 0)
        return {}, grad_x.reshape((T, B) + self.in_shape)


class AvgPool2d(_Pool2d):
    """Average pooling (the mean of each window; no padding)."""

    def forward(self, x, params, ctx):
        kh, kw = self.kernel_size
        channels, height, width = self.in_shape
        images = x.reshape(-1, height, width)
        out = None
        for ki, kj, rows, cols in self._offsets():
            out = images[:, rows, cols].copy() if out is None else out + images[:, rows, cols]
        out /= kh * kw
        T, B = x.shape[:2]
        return out.reshape((T, B) + self.out_shape), None

    def backward(self, grad_out, cache, params, need_input_grad):
        if not need_input_grad:
            return {}, None
        kh, kw = self.kernel_size
        T, B = grad_out.shape[:2]
        _, h_out, w_out = self.out_shape
        share = grad_out.reshape(-1, h_out, w_out) / (kh * kw)
        grad_x = np.zeros((share.shape[0],) + self.in_shape[1:], dtype=grad_out.dtype)
        for ki, kj, rows, cols in self._offsets():
            grad_x[:, rows, cols] += share
        return {}, grad_x.reshape((T, B) + self.in_shape)
