"""Conv2d: (L1) I_t = W * s_t (+ b), optional BatchNorm per time step, backward (B4), (B6).

The convolution (cross-correlation, as ``torch.nn.Conv2d``) runs for all T*B images at
once as im2col + one GEMM: every output pixel's receptive field is gathered into a row
of ``cols`` (feature order (ki, kj, c), channels innermost, read from a channels-last
padded copy of the input) and multiplied by the weight matrix (C_out, kh*kw*C_in):

    z[n, ho, wo, co] = sum_{ki, kj, c} x_pad[n, ho*sh + ki, wo*sw + kj, c] W[co, c, ki, kj]   (L1)

Backward, with delta = dL/dz (n = t, b runs over all steps and samples):

    dL/dW[co, c, ki, kj] = sum_{n, ho, wo} delta[n, co, ho, wo] x_pad[n, c, ho*sh + ki, wo*sw + kj]   (B4)
        = delta_matrix^T @ cols                  (correlation over b and t)
    dL/dx_pad[n, ho*sh + ki, wo*sw + kj, c] += sum_co delta[n, co, ho, wo] W[co, c, ki, kj]            (B6)
        = col2im(delta_matrix @ W_matrix)        (the transposed convolution)

``cols`` is never held for the whole batch: it is built in chunks of images (at most
``IM2COL_ELEMENTS`` entries) in the forward and rebuilt chunk by chunk in the backward.

This NumPy code is the reference. A call with the "numba" backend (``ctx.backend``) runs
``_forward_compiled`` / ``_backward_compiled``: the same GEMMs on the same operands, with
im2col, col2im and BatchNorm as the kernels of ``stlsim.kernels.conv_cpu`` (no padded
copy, no transposes; docs/performance.md, *Convolutional networks*).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import _workspace as workspace
from .._checks import check_int, check_real, fail
from .base import Layer
from .batchnorm import (batchnorm_backward, batchnorm_backward_channels_last, batchnorm_forward,
                        batchnorm_forward_channels_last)

__all__ = ["Conv2d", "conv_output_size", "conv_input_size"]

# Largest im2col chunk, in array entries (16 MiB in float32): big enough for efficient
# GEMMs, small enough to stay near the caches; conv128c5 on 200 images of 14x14 (a
# 500 MB im2col matrix in float32) is never held at once. Larger chunks gain nothing
# once the GEMM is compute-bound. Smaller ones (2 MiB, read back from the cache) made
# conv-small's step ~12% faster on one thread but up to ~1.7x slower with two threads on
# a loaded machine (more GEMM calls, each a handoff to OpenBLAS's threads; docs/performance.md).
IM2COL_ELEMENTS = 1 << 22


def _pair(value, name: str, owner: str, low: int) -> tuple:
    """An int or a pair of ints -> (int, int), each >= low."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise fail(name, "an integer or a pair of integers", repr(value), owner)
        return tuple(check_int(v, name, low=low, owner=owner) for v in value)
    v = check_int(value, name, low=low, owner=owner)
    return (v, v)


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """floor((size + 2 padding - kernel) / stride) + 1, as torch (0 if the kernel does not fit)."""
    span = size + 2 * padding - kernel
    return span // stride + 1 if span >= 0 else 0


def conv_input_size(out: int, kernel: int, stride: int, padding: int) -> int:
    """The smallest input size whose output is ``out`` (no rows dropped by the stride)."""
    return (out - 1) * stride + kernel - 2 * padding


def im2col(x_pad, kernel, stride, out_hw) -> np.ndarray:
    """Receptive fields of channels-last ``x_pad`` (n, Hp, Wp, C) as rows (n*Ho*Wo, kh*kw*C)."""
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
    windows = sliding_window_view(x_pad, (kh, kw), axis=(1, 2))     # (n, Hp-kh+1, Wp-kw+1, C, kh, kw)
    windows = windows[:, : sh * (ho - 1) + 1 : sh, : sw * (wo - 1) + 1 : sw]
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * x_pad.shape[3])  # copies


def col2im_add(grad_x_pad, grad_cols, kernel, stride, out_hw):
    """Scatter-add rows (n*Ho*Wo, kh*kw*C) back onto channels-last ``grad_x_pad`` (n, Hp, Wp, C)."""
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
    n, channels = grad_x_pad.shape[0], grad_x_pad.shape[3]
    grad_cols = grad_cols.reshape(n, ho, wo, kh, kw, channels)
    for ki in range(kh):
        for kj in range(kw):
            grad_x_pad[:, ki : ki + sh * (ho - 1) + 1 : sh, kj : kj + sw * (wo - 1) + 1 : sw, :] += \
                grad_cols[:, :, :, ki, kj, :]


class Conv2d(Layer):
    """2-D convolution synapses followed by LIF neurons.

    ``weight`` has shape (C_out, C_in, kh, kw), like ``torch.nn.Conv2d.weight``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    kernel_size, stride, padding : int or (int, int)
        As ``torch.nn.Conv2d`` (zero padding).
    bias : bool, default False
        Add a learnable bias per output channel (False: as the paper).
    batchnorm : bool, default False
        Apply BatchNorm per time step to the currents before the neurons (parameters
        ``bn_weight``, ``bn_bias``; running estimates in ``Network.buffers``; see
        ``stlsim.layers.batchnorm``).
    threshold_sharing : {"neuron", "channel", "layer"}, default "neuron"
        theta of shape (C_out, H_out, W_out) (the paper's choice), (C_out,) or ().
    init_gain : float, default 1.0
        Weights ~ U(-g/sqrt(fan_in), g/sqrt(fan_in)), fan_in = C_in*kh*kw (g = 1 is
        torch's default bound).
    theta_init : float, optional
        Overrides the network neuron's theta_init for this layer.
    input_size : (int, int), optional
        (H, W) of the input. Usually left out: ``Network`` passes shapes along the layers,
        or infers the input size (see ``docs/conv.md``).
    bn_momentum, bn_eps : float, default 0.1 and 1e-5
        BatchNorm's running-estimate momentum and epsilon (torch's).
    """

    has_neurons = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, *,
                 bias: bool = False, batchnorm: bool = False, threshold_sharing: str = "neuron",
                 init_gain: float = 1.0, theta_init: float | None = None, input_size=None,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        owner = "Conv2d"
        self.in_channels = check_int(in_channels, "in_channels", low=1, owner=owner)
        self.out_channels = check_int(out_channels, "out_channels", low=1, owner=owner)
        self.kernel_size = _pair(kernel_size, "kernel_size", owner, 1)
        self.stride = _pair(stride, "stride", owner, 1)
        self.padding = _pair(padding, "padding", owner, 0)
        for name, flag in (("bias", bias), ("batchnorm", batchnorm)):
            if not isinstance(flag, (bool, np.bool_)):
                raise fail(name, "True or False", repr(flag), owner, TypeError)
        self.bias, self.batchnorm = bool(bias), bool(batchnorm)
        self.threshold_sharing = self._check_sharing(threshold_sharing)
        self.init_gain = check_real(init_gain, "init_gain", low=0.0, owner=owner)
        self.theta_init = None if theta_init is None else check_real(theta_init, "theta_init", owner=owner)
        self.bn_momentum = check_real(bn_momentum, "bn_momentum", low=0.0, high=1.0, owner=owner)
        self.bn_eps = check_real(bn_eps, "bn_eps", low=0.0, low_open=True, owner=owner)
        self.input_size = None if input_size is None else _pair(input_size, "input_size", owner, 1)
        self.in_shape = self.out_shape = None
        if self.input_size is not None:
            self.build((self.in_channels,) + self.input_size, None)

    def __repr__(self) -> str:
        k, s, p = self.kernel_size, self.stride, self.padding
        text = f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={k[0] if k[0] == k[1] else k}"
        if s != (1, 1):
            text += f", stride={s[0] if s[0] == s[1] else s}"
        if p != (0, 0):
            text += f", padding={p[0] if p[0] == p[1] else p}"
        if self.bias:
            text += ", bias=True"
        if self.batchnorm:
            text += ", batchnorm=True"
        if self.threshold_sharing != "neuron":
            text += f", threshold_sharing={self.threshold_sharing!r}"
        return text + ")"

    # --- shapes ------------------------------------------------------------------------
    def known_in_shape(self):
        return None if self.input_size is None else (self.in_channels,) + self.input_size

    def build(self, in_shape, position):
        where, owner = ("input_size", "Conv2d") if position is None else (f"layers[{position}]", "Network")
        shape = tuple(in_shape)
        if len(shape) != 3 or shape[0] != self.in_channels:
            raise fail(where, f"a layer taking inputs of shape {shape}",
                       f"{self!r}, which takes ({self.in_channels}, H, W)", owner)
        if self.input_size is not None and shape[1:] != self.input_size:
            raise fail(where, f"a layer taking inputs of shape {shape}",
                       f"{self!r} with input_size={self.input_size}", owner)
        out = tuple(conv_output_size(n, k, s, p) for n, k, s, p in
                    zip(shape[1:], self.kernel_size, self.stride, self.padding))
        if min(out) < 1:
            raise fail(where, f"a convolution whose {self.kernel_size} kernel fits its padded input",
                       f"{self!r} on inputs of shape {shape}", owner)
        self.in_shape = shape
        self.out_shape = (self.out_channels,) + out

    def infer_in_shape(self, out_shape, position):
        if len(out_shape) != 3 or out_shape[0] != self.out_channels:
            return None
        size = tuple(conv_input_size(n, k, s, p) for n, k, s, p in
                     zip(out_shape[1:], self.kernel_size, self.stride, self.padding))
        return (self.in_channels,) + size if min(size) >= 1 else None

    # --- parameters --------------------------------------------------------------------
    def param_shapes(self) -> dict:
        kh, kw = self.kernel_size
        shapes = {"weight": (self.out_channels, self.in_channels, kh, kw)}
        if self.bias:
            shapes["bias"] = (self.out_channels,)
        if self.batchnorm:
            shapes["bn_weight"] = (self.out_channels,)
            shapes["bn_bias"] = (self.out_channels,)
        shapes.update(super().param_shapes())
        return shapes

    def init_params(self, rng, dtype, theta_init):
        kh, kw = self.kernel_size
        bound = self.init_gain / math.sqrt(self.in_channels * kh * kw)
        params = {"weight": rng.uniform(-bound, bound, (self.out_channels, self.in_channels, kh, kw)).astype(dtype)}
        if self.bias:
            params["bias"] = rng.uniform(-bound, bound, self.out_channels).astype(dtype)
        if self.batchnorm:
            params["bn_weight"] = np.ones(self.out_channels, dtype=dtype)
            params["bn_bias"] = np.zeros(self.out_channels, dtype=dtype)
        params.update(super().init_params(rng, dtype, theta_init))
        return params

    def init_buffers(self, dtype) -> dict:
        if not self.batchnorm:
            return {}
        return {"bn_running_mean": np.zeros(self.out_channels, dtype=dtype),
                "bn_running_var": np.ones(self.out_channels, dtype=dtype)}

    # --- compute -----------------------------------------------------------------------
    def _chunk(self) -> int:
        """Images per im2col chunk."""
        _, h_out, w_out = self.out_shape
        row = h_out * w_out * self.kernel_size[0] * self.kernel_size[1] * self.in_channels
        return max(1, IM2COL_ELEMENTS // row)

    def _weight_matrix(self, weight):
        # (C_out, C_in, kh, kw) -> (C_out, kh*kw*C_in), the feature order of im2col's rows.
        return weight.transpose(0, 2, 3, 1).reshape(self.out_channels, -1)

    def forward(self, x, params, ctx):
        if ctx.backend == "numba":
            return self._forward_compiled(x, params, ctx)
        T, B = x.shape[:2]
        n_images = T * B
        channels, height, width = self.in_shape
        (ph, pw) = self.padding
        _, h_out, w_out = self.out_shape
        x_pad = np.zeros((n_images, height + 2 * ph, width + 2 * pw, channels), dtype=x.dtype)
        x_pad[:, ph:ph + height, pw:pw + width, :] = x.reshape(n_images, channels, height, width).transpose(0, 2, 3, 1)
        weight_matrix = self._weight_matrix(params["weight"])
        z = np.empty((n_images, h_out, w_out, self.out_channels), dtype=x.dtype)
        step = self._chunk()
        for start in range(0, n_images, step):
            stop = min(start + step, n_images)
            cols = im2col(x_pad[start:stop], self.kernel_size, self.stride, (h_out, w_out))
            np.matmul(cols, weight_matrix.T, out=z[start:stop].reshape(-1, self.out_channels))   # (L1)
        current = np.ascontiguousarray(z.transpose(0, 3, 1, 2)).reshape((T, B) + self.out_shape)
        if self.bias:
            current += params["bias"].reshape(-1, 1, 1)
        bn_cache = None
        if self.batchnorm:
            current, bn_cache = batchnorm_forward(
                current, params["bn_weight"], params["bn_bias"], params["bn_running_mean"],
                params["bn_running_var"], training=ctx.training, momentum=self.bn_momentum,
                eps=self.bn_eps)
        return current, (x_pad, bn_cache)

    def backward(self, grad_current, cache, params, need_input_grad):
        if isinstance(cache[0], str):                  # ("compiled", ...) from _forward_compiled
            return self._backward_compiled(grad_current, cache, params, need_input_grad)
        x_pad, bn_cache = cache
        T, B = grad_current.shape[:2]
        n_images = T * B
        grads = {}
        if self.batchnorm:
            grad_current, grads["bn_weight"], grads["bn_bias"] = batchnorm_backward(
                grad_current, bn_cache, params["bn_weight"])
        if self.bias:
            grads["bias"] = grad_current.sum(axis=(0, 1, 3, 4))
        _, h_out, w_out = self.out_shape
        # delta as a matrix (n*Ho*Wo, C_out), rows in im2col's order.
        grad_z = np.ascontiguousarray(
            grad_current.reshape(n_images, self.out_channels, h_out, w_out).transpose(0, 2, 3, 1)
        ).reshape(-1, self.out_channels)
        weight_matrix = self._weight_matrix(params["weight"])
        grad_weight = np.zeros_like(weight_matrix)           # (C_out, kh*kw*C_in)
        # BLAS (OpenBLAS) runs this product markedly faster with the longer side of the
        # result as its rows: (K, C_out) when K = kh*kw*C_in >= C_out, else (C_out, K).
        long_rows = weight_matrix.shape[1] >= self.out_channels
        grad_x_pad = np.zeros_like(x_pad) if need_input_grad else None
        rows_per_image = h_out * w_out
        step = self._chunk()
        for start in range(0, n_images, step):
            stop = min(start + step, n_images)
            grad_rows = grad_z[start * rows_per_image:stop * rows_per_image]
            cols = im2col(x_pad[start:stop], self.kernel_size, self.stride, (h_out, w_out))
            if long_rows:
                grad_weight += (cols.T @ grad_rows).T                               # (B4)
            else:
                grad_weight += grad_rows.T @ cols                                   # (B4)
            if need_input_grad:
                col2im_add(grad_x_pad[start:stop], grad_rows @ weight_matrix,      # (B6)
                           self.kernel_size, self.stride, (h_out, w_out))
        kh, kw = self.kernel_size
        grads["weight"] = np.ascontiguousarray(
            grad_weight.reshape(self.out_channels, kh, kw, self.in_channels).transpose(0, 3, 1, 2))
        grad_x = None
        if need_input_grad:
            channels, height, width = self.in_shape
            ph, pw = self.padding
            grad_x = np.ascontiguousarray(
                grad_x_pad[:, ph:ph + height, pw:pw + width, :].transpose(0, 3, 1, 2)
            ).reshape((T, B) + self.in_shape)
        return grads, grad_x

    # --- the same on the compiled kernels (backend "numba") --------------------------------
    # What ``forward`` and ``backward`` compute, on the same GEMMs (bitwise the same
    # currents), without their copies: im2col reads the NCHW input (no padded
    # channels-last copy), col2im adds into the NCHW input gradient, and BatchNorm reads the
    # GEMM's channels-last output and writes NCHW currents (backward: the reverse), so no
    # transpose is left around the GEMMs. Scratch arrays (im2col chunks, the GEMM's output,
    # delta) come from the per-thread workspace: fresh, their page faults cost as much as
    # filling them.

    def _forward_compiled(self, x, params, ctx):
        from ..kernels import conv_cpu
        T, B = x.shape[:2]
        n_images = T * B
        images = np.ascontiguousarray(x).reshape((n_images,) + self.in_shape)
        _, h_out, w_out = self.out_shape
        pixels = h_out * w_out
        weight_t = self._weight_matrix(params["weight"]).T
        z = workspace.buffer("conv:z", (n_images * pixels, self.out_channels), x.dtype)
        step = self._chunk()
        buffer = workspace.buffer("conv:cols", (min(step, n_images) * pixels, weight_t.shape[0]), x.dtype)
        for start in range(0, n_images, step):
            stop = min(start + step, n_images)
            cols = buffer[: (stop - start) * pixels]
            conv_cpu.im2col(images, start, self.kernel_size, self.stride, self.padding, (h_out, w_out), cols)
            np.matmul(cols, weight_t, out=z[start * pixels:stop * pixels])                    # (L1)
        if not self.batchnorm:
            # a copy always (z is workspace scratch; with one channel or one pixel the
            # transpose is contiguous already and ascontiguousarray would return z itself)
            current = z.reshape(n_images, pixels, self.out_channels).transpose(0, 2, 1).copy()
            current = current.reshape((T, B) + self.out_shape)
            if self.bias:
                current += params["bias"].reshape(-1, 1, 1)
            return current, ("compiled", images, None)
        shift = params["bias"] if self.bias else np.zeros(self.out_channels, dtype=x.dtype)
        current, bn_cache = batchnorm_forward_channels_last(
            z.reshape(T, B, pixels, self.out_channels), shift, params["bn_weight"], params["bn_bias"],
            params["bn_running_mean"], params["bn_running_var"], training=ctx.training,
            momentum=self.bn_momentum, eps=self.bn_eps)
        return current.reshape((T, B) + self.out_shape), ("compiled", images, bn_cache)

    def _backward_compiled(self, grad_current, cache, params, need_input_grad):
        from ..kernels import conv_cpu
        _, images, bn_cache = cache
        T, B = grad_current.shape[:2]
        n_images = T * B
        _, h_out, w_out = self.out_shape
        pixels = h_out * w_out
        grads = {}
        if self.batchnorm:
            grad_z, grads["bn_weight"], grads["bn_bias"] = batchnorm_backward_channels_last(
                np.ascontiguousarray(grad_current).reshape(T, B, self.out_channels, pixels), bn_cache,
                params["bn_weight"])
            grad_z = grad_z.reshape(-1, self.out_channels)
        else:
            grad_z = np.ascontiguousarray(
                grad_current.reshape(n_images, self.out_channels, pixels).transpose(0, 2, 1)
            ).reshape(-1, self.out_channels)
        if self.bias:
            grads["bias"] = grad_z.sum(axis=0)
        weight_matrix = self._weight_matrix(params["weight"])
        grad_weight = np.zeros_like(weight_matrix)           # (C_out, kh*kw*C_in)
        long_rows = weight_matrix.shape[1] >= self.out_channels      # as ``backward``
        grad_x = np.zeros((n_images,) + self.in_shape, dtype=grad_current.dtype) if need_input_grad else None
        step = self._chunk()
        buffer = workspace.buffer("conv:cols", (min(step, n_images) * pixels, weight_matrix.shape[1]),
                                  grad_current.dtype)
        grad_buffer = workspace.buffer("conv:grad_cols", buffer.shape, buffer.dtype) if need_input_grad else None
        for start in range(0, n_images, step):
            stop = min(start + step, n_images)
            grad_rows = grad_z[start * pixels:stop * pixels]
            cols = buffer[: (stop - start) * pixels]
            conv_cpu.im2col(images, start, self.kernel_size, self.stride, self.padding, (h_out, w_out), cols)
            if long_rows:
                grad_weight += (cols.T @ grad_rows).T                               # (B4)
            else:
                grad_weight += grad_rows.T @ cols                                   # (B4)
            if need_input_grad:
                grad_cols = grad_buffer[: (stop - start) * pixels]
                np.matmul(grad_rows, weight_matrix, out=grad_cols)                  # (B6)
                conv_cpu.col2im_add(grad_cols, start, self.kernel_size, self.stride, self.padding,
                                    (h_out, w_out), grad_x)
        kh, kw = self.kernel_size
        grads["weight"] = np.ascontiguousarray(
            grad_weight.reshape(self.out_channels, kh, kw, self.in_channels).transpose(0, 3, 1, 2))
        return grads, None if grad_x is None else grad_x.reshape((T, B) + self.in_shape)
