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

from .. import _workspace as workspace
from .._checks import check_choice, check_int, check_real, fail
from .base import Layer

__all__ = ["batchnorm_forward", "batchnorm_backward", "batchnorm_forward_channels_last",
           "batchnorm_backward_channels_last", "BatchNorm", "BN_STATISTICS"]

BN_STATISTICS = ("per_step", "pooled")


def _stat_axes(ndim: int) -> tuple:
    """Axes a statistic runs over for (T, B, C, *spatial): B and spatial, not T or C."""
    return (1,) + tuple(range(3, ndim))


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """(C,) -> shape broadcastable against (T, B, C, *spatial)."""
    return v.reshape((1, 1, -1) + (1,) * (ndim - 3))


def check_batch_values(n: int) -> int:
    """Training statistics need more than one value per channel and step."""
    if n < 2:
        raise fail("x", "a batch with more than one value per channel for BatchNorm in training",
                   f"{n} value per channel and time step", "Conv2d")
    return n


def update_running(running_mean, running_var, mean, var, momentum: float, n: int):
    """The running estimates, updated in place once per step t = 1..T from the (T, C)
    batch statistics ``mean`` and biased ``var`` of ``n`` values each."""
    unbiased = n / (n - 1)
    for t in range(mean.shape[0]):                                       # one update per step
        running_mean *= 1 - momentum
        running_mean += momentum * mean[t]
        running_var *= 1 - momentum
        running_var += momentum * (var[t] * unbiased)


def batchnorm_forward(z, weight, bias, running_mean, running_var, *, training: bool,
                      momentum: float, eps: float):
    """Normalise currents ``z`` (T, B, C, *spatial) per time step and channel.

    In training mode ``running_mean`` and ``running_var`` ((C,) arrays) are updated in
    place. Returns ``(I, cache)``.
    """
    axes = _stat_axes(z.ndim)
    if training:
        n = check_batch_values(z.size // (z.shape[0] * z.shape[2]))
        mean = z.mean(axis=axes, keepdims=True)                              # (T, 1, C, 1, 1)
        centred = z - mean
        var = np.mean(centred * centred, axis=axes, keepdims=True)           # biased
        update_running(running_mean, running_var, mean.reshape(z.shape[0], -1),
                       var.reshape(z.shape[0], -1), momentum, n)
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


def batchnorm_forward_channels_last(z, shift, weight, bias, running_mean, running_var, *,
                                    training: bool, momentum: float, eps: float):
    """``batchnorm_forward`` of ``z + shift`` for a convolution's channels-last output
    ``z`` (T, B, P, C) (P pixels, ``shift`` the conv bias (C,) or zeros), on the compiled
    kernels (``kernels.conv_cpu``; imports Numba). Returns the currents (T, B, C, P) and
    a cache in ``batchnorm_forward``'s layout over (T, B, C, P)."""
    from ..kernels import conv_cpu
    T, B, P, C = z.shape
    dtype = z.dtype
    if training:
        n = check_batch_values(B * P)
        mean, var = np.empty((T, C), dtype), np.empty((T, C), dtype)
        conv_cpu.bn_stats(z, shift, mean, var)
        update_running(running_mean, running_var, mean, var, momentum, n)
    else:
        mean = np.broadcast_to(running_mean, (T, C))
        var = np.broadcast_to(running_var, (T, C))
    inv_std = np.ascontiguousarray(1.0 / np.sqrt(var + eps))
    z_hat, current = np.empty((T, B, C, P), dtype), np.empty((T, B, C, P), dtype)
    conv_cpu.bn_apply(z, shift, np.ascontiguousarray(mean), inv_std, weight, bias, z_hat, current)
    return current, (z_hat, inv_std.reshape(T, 1, C, 1), training)


def batchnorm_backward_channels_last(grad_current, cache, weight):
    """``batchnorm_backward`` on the compiled kernels, for ``grad_current`` (T, B, C, P)
    and the cache of ``batchnorm_forward_channels_last``; dL/dz comes back channels-last
    (T, B, P, C), the layout of the convolution's GEMM, in a workspace array (valid until
    the next call)."""
    from ..kernels import conv_cpu
    z_hat, inv_std, training = cache
    T, B, C, P = grad_current.shape
    dtype = grad_current.dtype
    sum_grad, sum_grad_z_hat = np.empty((T, C)), np.empty((T, C))
    conv_cpu.bn_backward_sums(grad_current, z_hat, sum_grad, sum_grad_z_hat)
    if training:                                    # mean(g_hat), mean(g_hat z_hat) per (t, c)
        mean_g_hat = (weight * (sum_grad / (B * P))).astype(dtype)
        mean_g_hat_z_hat = (weight * (sum_grad_z_hat / (B * P))).astype(dtype)
    else:
        mean_g_hat = mean_g_hat_z_hat = np.zeros((T, C), dtype)
    grad_z = workspace.buffer("batchnorm:grad_z", (T, B, P, C), dtype)       # scratch of the caller
    conv_cpu.bn_backward_apply(grad_current, z_hat, weight, inv_std.reshape(T, C),
                               mean_g_hat, mean_g_hat_z_hat, grad_z)
    grad_weight = sum_grad_z_hat.sum(axis=0).astype(dtype)
    grad_bias = sum_grad.sum(axis=0).astype(dtype)
    return grad_z, grad_weight, grad_bias


class BatchNorm(Layer):
    """``BatchNorm(num_features, statistics="per_step")``: BatchNorm on a layer's currents as
    a part of a ``SynapseBlock`` (after a Dense: torch's BatchNorm1d; after a Conv2d:
    BatchNorm2d). ``statistics`` (docs/model.md 9.8):

    - "per_step": each step t normalised with its own batch statistics, the running
      estimates updated once per step (a peer that calls the model once per step);
    - "pooled": the statistics of all T steps and the batch together, updated once per
      call (SpikingJelly's multi-step ``layer.BatchNorm1d/2d``: ``seq_to_ann_forward`` folds
      T into the batch), (BN1p).

    In eval both use the running estimates. ``mode``: None follows the call's ``training``,
    "train" or "eval" fixes it. Parameters ``weight``, ``bias`` (gamma, beta); buffers
    ``running_mean``, ``running_var``."""

    has_neurons = False

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1,
                 statistics: str = "per_step", mode: str | None = None):
        owner = "BatchNorm"
        self.num_features = check_int(num_features, "num_features", low=1, owner=owner)
        self.eps = check_real(eps, "eps", low=0.0, low_open=True, owner=owner)
        self.momentum = check_real(momentum, "momentum", low=0.0, high=1.0, owner=owner)
        self.statistics = check_choice(statistics, "statistics", BN_STATISTICS, owner)
        # None: follow the call's training flag; "train" / "eval": fixed (a peer module in
        # eval beside others in training)
        self.mode = None if mode is None else check_choice(mode, "mode", ("train", "eval"), owner)
        self.in_shape = self.out_shape = None

    def __repr__(self) -> str:
        return f"BatchNorm({self.num_features}, statistics={self.statistics!r})"

    def known_in_shape(self):
        return None

    def build(self, in_shape, position):
        if not in_shape or in_shape[0] != self.num_features:
            raise fail(f"layers[{position}]", f"inputs with {self.num_features} channels first",
                       f"shape {tuple(in_shape)}", "BatchNorm")
        self.in_shape = self.out_shape = tuple(in_shape)

    def infer_in_shape(self, out_shape, position):
        return tuple(out_shape)

    def param_shapes(self) -> dict:
        return {"weight": (self.num_features,), "bias": (self.num_features,)}

    def init_params(self, rng, dtype, theta_init):
        return {"weight": np.ones(self.num_features, dtype=dtype),
                "bias": np.zeros(self.num_features, dtype=dtype)}

    def init_buffers(self, dtype) -> dict:
        return {"running_mean": np.zeros(self.num_features, dtype=dtype),
                "running_var": np.ones(self.num_features, dtype=dtype)}

    def _fold(self, x):
        """(T, B, C, ...) as one step of batch T B when the statistics pool time (BN1p)."""
        return x.reshape((1, -1) + x.shape[2:]) if self.statistics == "pooled" else x

    def forward(self, x, params, ctx):
        current, cache = batchnorm_forward(
            self._fold(x), params["weight"], params["bias"], params["running_mean"],
            params["running_var"], training=ctx.training if self.mode is None else self.mode == "train",
            momentum=self.momentum, eps=self.eps)
        return current.reshape(x.shape), (cache, x.shape)

    def backward(self, grad_out, cache, params, need_input_grad):
        bn_cache, shape = cache
        grad_z, grad_weight, grad_bias = batchnorm_backward(self._fold(grad_out), bn_cache,
                                                            params["weight"])
        return {"weight": grad_weight, "bias": grad_bias}, grad_z.reshape(shape)
