"""The ``"numba"`` backend: the compiled CPU kernels of ``stlsim.kernels.cpu``.

* ``lif_forward`` / ``lif_backward``: the backend protocol (``engines.backend``), same
  results as the NumPy reference; they serve any network (conv, pooling, ...). Each
  coerces and allocates, then runs one kernel over the whole layer and all T steps.
* ``fused``: the whole training step of a Dense-only network (``engines.fused_cpu``).

The kernels implement the neuron options of ``docs/model.md`` Section 8 but the
synapse; a neuron or surrogate they do not compile runs on the NumPy reference (counted
as "fallback:numpy"), and so does the backward of a trained decay or synapse.
Importing this module imports Numba.
"""
from __future__ import annotations

import numpy as np

from ..grad import bptt
from ..kernels import cpu
from . import clock, fused_cpu
from .backend import Backend, compiled_spec, neuron_spec, theta_per_neuron

__all__ = ["BACKEND", "lif_forward", "lif_backward"]

CALLS = cpu.CALLS


def lif_forward(current, theta, neuron, surrogate, smooth=False):
    """Numba twin of ``engines.clock.lif_forward``: returns ``(spikes, membrane)``."""
    spec = compiled_spec(neuron, surrogate)
    if spec is None:
        CALLS["fallback:numpy"] += 1
        return clock.lif_forward(current, theta, neuron, surrogate, smooth)
    CALLS["lif_forward"] += 1
    shape = current.shape
    T, B = shape[:2]
    flat = np.ascontiguousarray(current).reshape(T, B, -1)
    dtype = flat.dtype
    theta = np.broadcast_to(np.asarray(theta, dtype=dtype), shape[2:])
    membrane = np.empty_like(flat)
    spikes = np.empty_like(flat)
    cpu.forward(flat, theta_per_neuron(theta, shape[2:], dtype),
                neuron_spec(neuron, theta, dtype), smooth, *spec, membrane, spikes,
                np.empty((2,) + flat.shape[1:], dtype=dtype))            # (L2)-(L4)
    return spikes.reshape(shape), membrane.reshape(shape)


def lif_backward(grad_spikes, membrane, spikes, theta, neuron, surrogate):
    """Numba twin of ``grad.bptt.lif_backward``: returns ``(grad_current, grad_theta)``."""
    spec = compiled_spec(neuron, surrogate)
    if spec is None:
        CALLS["fallback:numpy"] += 1
        return bptt.lif_backward(grad_spikes, membrane, spikes, theta, neuron, surrogate)
    CALLS["lif_backward"] += 1
    shape = grad_spikes.shape
    T, B = shape[:2]
    dtype = grad_spikes.dtype
    theta = np.broadcast_to(np.asarray(theta, dtype=dtype), shape[2:])
    flat = [np.ascontiguousarray(a).reshape(T, B, -1) for a in (grad_spikes, membrane, spikes)]
    N = flat[0].shape[2]
    grad_current = np.empty_like(flat[0])
    grad_theta = np.empty(N, dtype=dtype)
    cpu.backward(flat[0], flat[1], flat[2], theta_per_neuron(theta, shape[2:], dtype),
                 neuron_spec(neuron, theta, dtype), *spec, grad_current,
                 np.empty((B, N), dtype), np.empty((B, N), dtype), grad_theta)  # (B1)-(B5)
    return grad_current.reshape(shape), grad_theta.reshape(shape[2:])


BACKEND = Backend(name="numba", lif_forward=lif_forward, lif_backward=lif_backward,
                  fused=fused_cpu.loss_and_grad, calls=CALLS)
