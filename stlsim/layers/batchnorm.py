"""BatchNorm applied per time step to a layer's input currents, forward and backward.

The paper puts BatchNorm after each convolution, on the currents I_t before the LIF
neurons, and applies it to every time step separately (the reference code calls
``F.batch_norm`` once per t with one shared module). For currents z of shape
(T, B, C, H, W) and each step t and channel c:

    training:  mu_tc = mean_{b,h,w} z_t,      var_tc = mean_{b,h,w} (z_t - mu_tc)^2   (biased)
    eval:      mu_tc = running_mean_c,        var_tc = running_var_c
    z_hat = (z_t - mu_tc) / sqrt(var_tc + eps)
    I_t   = gamma_c * z_hat + beta_c           gamma = "bn_weight", beta = "bn_bias"

gamma and beta are shared by all steps. In training the running estimates are updated
once per time step, in order t = 1..T, exactly as the T successive calls of torch's
BatchNorm2d (momentum 0.1) in the reference code do:

    running_mean <- (1 - momentum) running_mean + momentum mu_tc
    running_var  <- (1 - momentum) running_var  + momentum var_tc * n / (n - 1)     (unbiased)

with n = B H W. They are state, not parameters: ``Network.buffers`` holds them.

Backward (training: mu and var depend on z; eval: they are constants), per t and c,
with sums over b, h, w and n = B H W:

    dL/dgamma = sum_{t,b,h,w} dL/dI * z_hat          dL/dbeta = sum_{t,b,h,w} dL/dI
    g_hat = gamma dL/dI
    training: dL/dz = (g_hat - mean(g_hat) - z_hat mean(g_hat z_hat)) / sqrt(var + eps)
    eval:     dL/dz = g_hat / sqrt(var + eps)
"""
from __future__ import annotations

import numpy as np

from .._checks import fail

__all__ = ["batchnorm_forward", "batchnorm_backward"]


def _stat_axes(ndim: int) -> tuple:
    """Axes a statistic runs over for (T, B, C, *spatial): B and spatial, not T or C."""
    return (1,) + tuple(range(3, ndim))


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """(C,) -> shape broadcastable against (T, B, C, *spatial)."""
    return v.reshape((1, 1, -1) + (1,) * (ndim - 3))


def batchnorm_forward(z, weight, bias, running_mean, running_var, *, training: bool,
                      momentum: float, eps: float):
    """Normalise currents ``z`` (T, B, C, *spatial) per time step and channel.

    In training mode ``running_mean`` and ``running_var`` ((C,) arrays) are updated in
    place. Returns ``(I, cache)``.
    """
    axes = _stat_axes(z.ndim)
    if training:
        n = z.size // (z.shape[0] * z.shape[2])
        if n < 2:
            raise fail("x", "a batch with more than one value per channel for BatchNorm in training",
                       f"{n} value per channel and time step", "Conv2d")
        mean = z.mean(axis=axes, keepdims=True)                              # (T, 1, C, 1, 1)
        centred = z - mean
        var = np.mean(centred * centred, axis=axes, keepdims=True)           # biased
        unbiased = n / (n - 1)
        for t in range(z.shape[0]):                                          # one update per step
            running_mean *= 1 - momentum
            running_mean += momentum * mean[t].reshape(-1)
            running_var *= 1 - momentum
            running_var += momentum * (var[t].reshape(-1) * unbiased)
    else:
        centred = z - _per_channel(running_mean, z.ndim)
        var = _per_channel(running_var, z.ndim)
    inv_std = 1.0 / np.sqrt(var + eps)
    z_hat = centred * inv_std
    current = z_hat * _per_channel(weight, z.ndim) + _per_channel(bias, z.ndim)
    return current, (z_hat, inv_std, training)


def batchnorm_backward(grad_current, cache, weight):
    """Returns ``(grad_z, grad_weight, grad_bias)`` for the forward's ``cache``."""
    z_hat, inv_std, training = cache
    ndim = grad_current.ndim
    axes = _stat_axes(ndim)
    all_but_channel = (0,) + axes
    grad_weight = np.sum(grad_current * z_hat, axis=all_but_channel)
    grad_bias = np.sum(grad_current, axis=all_but_channel)
    g_hat = grad_current * _per_channel(weight, ndim)
    if training:
        grad_z = (g_hat - g_hat.mean(axis=axes, keepdims=True)
                  - z_hat * np.mean(g_hat * z_hat, axis=axes, keepdims=True)) * inv_std
    else:
        grad_z = g_hat * inv_std
    return grad_z, grad_weight, grad_bias
