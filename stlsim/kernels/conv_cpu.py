"""Numba CPU kernels of the convolutional layers: im2col, col2im, BatchNorm, max pooling.

Array in, array out, as ``kernels.cpu``: the layers (``stlsim.layers.conv``,
``layers.pool``) coerce and allocate, these functions only fill the arrays they are
given. The NumPy code of those layers is the definition; each kernel here computes the
same thing without the NumPy path's intermediate copies (the padded channels-last
input, the strided window copy, the transposes before and after the GEMM, the
BatchNorm temporaries). The GEMMs stay NumPy's (BLAS), on the same operands as the
reference, so the currents are bitwise those of the NumPy path:

* ``im2col``: rows (n Ho Wo, kh kw C) of an NCHW input, zero padding written in place,
  feature order (ki, kj, c) as ``layers.conv.im2col``: bitwise the reference's ``cols``.
* ``col2im_add``: the transposed gather, added straight into an NCHW gradient,
  contributions summed in the reference's order ((ki, kj) ascending): bitwise.
* ``bn_stats``, ``bn_apply``, ``bn_backward_sums``, ``bn_backward_apply``: BatchNorm per
  time step and channel (``layers.batchnorm``), reading the GEMM's channels-last output
  and writing NCHW (forward), reading NCHW and writing the channels-last delta matrix
  (backward). Sums run in float64 in a fixed order, so they round differently from
  NumPy's (within 1e-12 relative in float64, ~1e-6 in float32).
* ``maxpool_forward``, ``maxpool_backward``: first maximum in row-major order, as
  ``layers.pool.MaxPool2d``: bitwise.

Parallel loops run over images, planes or time steps, which are independent; every
reduction is serial inside one of them, so parallel equals serial bitwise.
"""
from __future__ import annotations

import numba
import numpy as np

from . import cpu  # noqa: F401  (threading layer and thread count set before any launch)
from ._jit import prepare_cache

__all__ = ["CALLS", "im2col", "col2im_add", "bn_stats", "bn_apply", "bn_backward_sums",
           "bn_backward_apply", "maxpool_forward", "maxpool_backward"]

CALLS = cpu.CALLS          # one counter for the whole numba backend ("conv:...")

prepare_cache(__file__)

_jit = numba.njit(cache=True, parallel=True, error_model="numpy")


# --- convolution -------------------------------------------------------------------------

@_jit
def _im2col(x, start, kh, kw, sh, sw, ph, pw, ho, wo, cols):
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    n = cols.shape[0] // (ho * wo)
    run = kw * channels                        # (kj, c) of one kernel row: contiguous below
    for i in numba.prange(n):
        image = start + i
        # the image padded and channels-last, (Hp, Wp, C), as the reference's x_pad
        padded = np.zeros((height + 2 * ph, width + 2 * pw, channels), dtype=cols.dtype)
        for c in range(channels):
            for r in range(height):
                for q in range(width):
                    padded[ph + r, pw + q, c] = x[image, c, r, q]
        flat = padded.reshape(height + 2 * ph, (width + 2 * pw) * channels)
        for oh in range(ho):
            for ow in range(wo):
                row = (i * ho + oh) * wo + ow
                first = ow * sw * channels
                for ki in range(kh):
                    source = flat[oh * sh + ki]
                    if run >= 16:                  # a slice copy (memcpy) pays off
                        cols[row, ki * run:(ki + 1) * run] = source[first:first + run]
                    else:
                        for j in range(run):
                            cols[row, ki * run + j] = source[first + j]


def im2col(x, start, kernel, stride, padding, out_hw, cols):
    """Fill ``cols`` (m Ho Wo, kh kw C) with the receptive fields of images
    ``start .. start + m`` of the NCHW input ``x`` (n, C, H, W); outside the input: 0."""
    CALLS["conv:im2col"] += 1
    _im2col(x, start, kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1],
            out_hw[0], out_hw[1], cols)


@_jit
def _col2im_add(grad_cols, start, kh, kw, sh, sw, ph, pw, ho, wo, grad_x):
    channels, height, width = grad_x.shape[1], grad_x.shape[2], grad_x.shape[3]
    n = grad_cols.shape[0] // (ho * wo)
    for i in numba.prange(n):
        image = start + i
        # accumulate channels-last and padded, (Hp, Wp, C), as the reference's grad_x_pad
        padded = np.zeros((height + 2 * ph, width + 2 * pw, channels), dtype=grad_x.dtype)
        for ki in range(kh):                   # the reference's order of the additions
            for kj in range(kw):
                c0 = (ki * kw + kj) * channels
                for oh in range(ho):
                    for ow in range(wo):
                        row = (i * ho + oh) * wo + ow
                        target = padded[oh * sh + ki, ow * sw + kj]
                        for c in range(channels):
                            target[c] += grad_cols[row, c0 + c]
        for c in range(channels):
            for r in range(height):
                for q in range(width):
                    grad_x[image, c, r, q] += padded[ph + r, pw + q, c]


def col2im_add(grad_cols, start, kernel, stride, padding, out_hw, grad_x):
    """Add rows (m Ho Wo, kh kw C) back onto images ``start .. start + m`` of the NCHW
    gradient ``grad_x`` (n, C, H, W); entries that fall on the padding are dropped."""
    CALLS["conv:col2im"] += 1
    _col2im_add(grad_cols, start, kernel[0], kernel[1], stride[0], stride[1], padding[0],
                padding[1], out_hw[0], out_hw[1], grad_x)


# --- BatchNorm per time step ----------------------------------------------------------------
# z is the GEMM's output, channels-last (T, B, P, C) with P = Ho Wo pixels; the currents
# and z_hat are NCHW (T, B, C, P). Statistics are per (t, c) over b and p.

@_jit
def _bn_stats(z, bias, mean, var):
    T, B, P, C = z.shape
    count = B * P
    for t in numba.prange(T):
        total = np.zeros(C)
        for b in range(B):
            for p in range(P):
                for c in range(C):
                    total[c] += z[t, b, p, c] + bias[c]
        for c in range(C):
            mean[t, c] = total[c] / count                      # rounded as stored
        square = np.zeros(C)
        for b in range(B):
            for p in range(P):
                for c in range(C):
                    d = (z[t, b, p, c] + bias[c]) - mean[t, c]
                    square[c] += d * d
        for c in range(C):
            var[t, c] = square[c] / count                      # biased


def bn_stats(z, bias, mean, var):
    """Per step and channel: ``mean`` (T, C) and the biased ``var`` (T, C) of ``z + bias``."""
    CALLS["conv:bn_stats"] += 1
    _bn_stats(z, bias, mean, var)


# Pixels per block of ``_bn_apply``: a block of channels-last rows (64 C values) stays in
# the L1 cache while each channel's run of 64 NCHW outputs is written contiguously.
# Writing all C channels of one pixel at a time instead (C output streams P apart) ran
# the layer-1 apply of conv-small ~2.5x slower (docs/performance.md).
BN_PIXEL_BLOCK = 64


@_jit
def _bn_apply(z, bias, mean, inv_std, weight, shift, z_hat, current):
    T, B, P, C = z.shape
    for tb in numba.prange(T * B):
        t, b = tb // B, tb % B
        for first in range(0, P, BN_PIXEL_BLOCK):
            last = min(P, first + BN_PIXEL_BLOCK)
            for c in range(C):
                for p in range(first, last):
                    h = ((z[t, b, p, c] + bias[c]) - mean[t, c]) * inv_std[t, c]
                    z_hat[t, b, c, p] = h
                    current[t, b, c, p] = h * weight[c] + shift[c]


def bn_apply(z, bias, mean, inv_std, weight, shift, z_hat, current):
    """z_hat = (z + bias - mean) inv_std and current = weight z_hat + shift, NCHW."""
    CALLS["conv:bn_apply"] += 1
    _bn_apply(z, bias, mean, inv_std, weight, shift, z_hat, current)


@_jit
def _bn_backward_sums(grad_current, z_hat, sum_grad, sum_grad_z_hat):
    T, B, C, P = grad_current.shape
    for t in numba.prange(T):
        for c in range(C):
            g_total = 0.0
            gz_total = 0.0
            for b in range(B):
                for p in range(P):
                    g = grad_current[t, b, c, p]
                    g_total += g
                    gz_total += g * z_hat[t, b, c, p]
            sum_grad[t, c] = g_total
            sum_grad_z_hat[t, c] = gz_total


def bn_backward_sums(grad_current, z_hat, sum_grad, sum_grad_z_hat):
    """Per step and channel, in float64: sum dL/dI and sum dL/dI z_hat over b and pixels."""
    CALLS["conv:bn_backward"] += 1
    _bn_backward_sums(grad_current, z_hat, sum_grad, sum_grad_z_hat)


@_jit
def _bn_backward_apply(grad_current, z_hat, weight, inv_std, mean_g_hat, mean_g_hat_z_hat, grad_z):
    T, B, C, P = grad_current.shape
    for tb in numba.prange(T * B):
        t, b = tb // B, tb % B
        for c in range(C):
            for p in range(P):
                g_hat = grad_current[t, b, c, p] * weight[c]
                grad_z[t, b, p, c] = (g_hat - mean_g_hat[t, c]
                                      - z_hat[t, b, c, p] * mean_g_hat_z_hat[t, c]) * inv_std[t, c]


def bn_backward_apply(grad_current, z_hat, weight, inv_std, mean_g_hat, mean_g_hat_z_hat, grad_z):
    """dL/dz, channels-last (T, B, P, C): (g_hat - mean(g_hat) - z_hat mean(g_hat z_hat))
    inv_std with g_hat = weight dL/dI (eval: both means 0)."""
    _bn_backward_apply(grad_current, z_hat, weight, inv_std, mean_g_hat, mean_g_hat_z_hat, grad_z)


# --- max pooling ------------------------------------------------------------------------------

@_jit
def _maxpool_forward(x, kh, kw, sh, sw, out, first_max):
    planes, ho, wo = out.shape
    for n in numba.prange(planes):
        for oh in range(ho):
            for ow in range(wo):
                best = x[n, oh * sh, ow * sw]
                where = 0
                for ki in range(kh):               # row-major; strict: ties keep the first
                    for kj in range(kw):
                        value = x[n, oh * sh + ki, ow * sw + kj]
                        if value > best:
                            best = value
                            where = ki * kw + kj
                out[n, oh, ow] = best
                first_max[n, oh, ow] = where


def maxpool_forward(x, kernel, stride, out, first_max):
    """Window maxima of the planes ``x`` (n, H, W) into ``out`` (n, Ho, Wo) and the
    row-major index of each window's first maximum into ``first_max``."""
    CALLS["conv:maxpool_forward"] += 1
    _maxpool_forward(x, kernel[0], kernel[1], stride[0], stride[1], out, first_max)


@_jit
def _maxpool_backward(grad_out, first_max, kh, kw, sh, sw, grad_x):
    planes, ho, wo = grad_out.shape
    disjoint = sh >= kh and sw >= kw
    for n in numba.prange(planes):
        if disjoint:                               # one term per input: order is moot
            for oh in range(ho):
                for ow in range(wo):
                    k = first_max[n, oh, ow]
                    grad_x[n, oh * sh + k // kw, ow * sw + k % kw] += grad_out[n, oh, ow]
            continue
        for ki in range(kh):                       # the reference's order of the additions
            for kj in range(kw):
                k = ki * kw + kj
                for oh in range(ho):
                    for ow in range(wo):
                        if first_max[n, oh, ow] == k:
                            grad_x[n, oh * sh + ki, ow * sw + kj] += grad_out[n, oh, ow]


def maxpool_backward(grad_out, first_max, kernel, stride, grad_x):
    """Route each window's gradient to its first maximum; ``grad_x`` (n, H, W) starts at 0."""
    CALLS["conv:maxpool_backward"] += 1
    _maxpool_backward(grad_out, first_max, kernel[0], kernel[1], stride[0], stride[1], grad_x)
