"""Independent JAX reference for the STL-SNN model (the equations of ``docs/model.md``).

Shares no code with ``validation.references.torch_model`` or stlsim: the forward pass
(L1)-(L4) is written in ``jax.numpy`` with ``lax.scan`` over time, the spike
nonlinearity is a ``jax.custom_vjp`` (forward H with H(0) = 1, or the smooth
primitive P; backward the spec's sigma'), and ``jax.grad`` gives the gradient.
Float64 is switched on at import.
"""
from __future__ import annotations

import functools

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

DEFAULT_PARAM = {"atan": 2.0, "sigmoid": 4.0, "rectangular": 1.0, "superspike": 10.0}


def _primitive(kind, c, x):
    if kind == "atan":
        return jnp.arctan(jnp.pi * c * x / 2) / jnp.pi + 0.5
    if kind == "sigmoid":
        return jax.nn.sigmoid(c * x)
    if kind == "rectangular":
        return jnp.clip(x / c + 0.5, 0.0, 1.0)
    if kind == "superspike":
        return 0.5 + jnp.sign(x) * (1 - 1 / (1 + c * jnp.abs(x))) / c
    raise ValueError(kind)


def _sigma_prime(kind, c, x):
    if kind == "atan":
        return (c / 2) / (1 + (jnp.pi * c * x / 2) ** 2)
    if kind == "sigmoid":
        g = jax.nn.sigmoid(c * x)
        return c * g * (1 - g)
    if kind == "rectangular":
        return jnp.where(jnp.abs(x) < c / 2, 1.0 / c, 0.0).astype(x.dtype)
    if kind == "superspike":
        return 1 / (1 + c * jnp.abs(x)) ** 2
    raise ValueError(kind)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def spike(kind, c, smooth, x):
    if smooth:
        return _primitive(kind, c, x)
    return jnp.where(x >= 0, 1.0, 0.0).astype(x.dtype)


def _spike_fwd(kind, c, smooth, x):
    return spike(kind, c, smooth, x), x


def _spike_bwd(kind, c, smooth, x, cotangent):
    return (cotangent * _sigma_prime(kind, c, x),)


spike.defvjp(_spike_fwd, _spike_bwd)


def _lif_layer(current, theta, tau, reset, detach_reset, kind, c, smooth):
    """current: (T, B, N). Returns spikes, membranes (both (T, B, N))."""

    def step(v, current_t):
        m = tau * v + current_t
        s = spike(kind, c, smooth, m - theta)
        s_r = jax.lax.stop_gradient(s) if detach_reset else s
        v_next = (1 - s_r) * m if reset == "hard" else m - s_r * theta
        return v_next, (s, m)

    _, (s, m) = jax.lax.scan(step, jnp.zeros_like(current[0]), current)
    return s, m


def _model(params, x, cfg):
    tau, reset, detach, kind, c, smooth, population, n_layers = cfg
    h = x
    spikes, membranes = [], []
    for l in range(n_layers):
        current = jnp.einsum("tbi,oi->tbo", h, params[f"{l}.weight"])
        if f"{l}.bias" in params:
            current = current + params[f"{l}.bias"]
        h, m = _lif_layer(current, params[f"{l}.theta"], tau, reset, detach, kind, c, smooth)
        spikes.append(h)
        membranes.append(m)
    T, B, n = h.shape
    rates = h.reshape(T, B, n // population, population).mean(axis=(0, 3))
    return spikes, membranes, rates


def _loss(params, x, y, cfg, loss):
    _, _, rates = _model(params, x, cfg)
    B, C = rates.shape
    if loss == "mse_rate":
        return jnp.sum((rates - jax.nn.one_hot(y, C, dtype=rates.dtype)) ** 2) / (B * C)
    if loss == "ce_rate":
        logp = jax.nn.log_softmax(rates, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
    raise ValueError(loss)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _value_grad_and_record(params, x, y, cfg, loss):
    value, grads = jax.value_and_grad(_loss)(params, x, y, cfg, loss)
    spikes, membranes, rates = _model(params, x, cfg)
    return value, grads, spikes, membranes, rates


def run(params, x, y, *, tau=0.5, reset="hard", detach_reset=False, surrogate="atan",
        surrogate_param=None, population=1, loss="mse_rate", smooth=False, dtype=np.float64):
    """Same signature and return dict as ``validation.references.torch_model.run``."""
    c = DEFAULT_PARAM[surrogate] if surrogate_param is None else float(surrogate_param)
    n_layers = len([k for k in params if k.endswith(".weight")])
    cfg = (float(tau), reset, bool(detach_reset), surrogate, c, bool(smooth), int(population), n_layers)
    jparams = {k: jnp.asarray(np.asarray(v), dtype=dtype) for k, v in params.items()}
    value, grads, spikes, membranes, rates = _value_grad_and_record(
        jparams, jnp.asarray(np.asarray(x), dtype=dtype), jnp.asarray(np.asarray(y), dtype=jnp.int32),
        cfg, loss)
    def f64(a):
        return np.asarray(a, dtype=np.float64)
    return {
        "loss": float(value),
        "grads": {k: f64(g) for k, g in grads.items()},
        "spikes": [f64(s) for s in spikes],
        "membranes": [f64(m) for m in membranes],
        "rates": f64(rates),
    }


def loss_and_grad(params, x, y, **kw):
    out = run(params, x, y, **kw)
    return out["loss"], out["grads"]
