"""The ``"numba"`` backend: the compiled CPU kernels of ``stlsim.kernels.cpu``.

* ``lif_forward`` / ``lif_backward``: the backend protocol (``engines.backend``), same
  results as the NumPy reference; they serve any network (conv, pooling, ...). Each
  coerces and allocates, then runs one kernel over the whole layer and all T steps.
* ``fused``: the whole training step of a Dense-only network (``engines.fused_cpu``).
* ``lif_forward_stateful`` / ``lif_backward_stateful``: a layer with recurrence or an
  adaptive threshold (``docs/model.md`` Section 10), on the kernels of
  ``stlsim.kernels.recurrent_cpu``; same results as ``engines.clock.lif_forward_stateful``
  and ``grad.bptt.lif_backward_stateful``.

The kernels implement the neuron options of ``docs/model.md`` Section 8 but the
synapse; a neuron or surrogate they do not compile runs on the NumPy reference (counted
as "fallback:numpy"), and so does the backward of a trained decay or synapse (a trained
adaptation, beta and rho, runs compiled).
Importing this module imports Numba.
"""
from __future__ import annotations

import numpy as np

from ..grad import bptt
from ..kernels import cpu, recurrent_cpu
from ..neurons import adaptation_arrays
from . import clock, fused_cpu
from .backend import Backend, compiled_spec, kernel_surrogate, neuron_spec, theta_per_neuron

__all__ = ["BACKEND", "lif_forward", "lif_backward", "lif_forward_stateful",
           "lif_backward_stateful"]

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


def stateful_spec(neuron, surrogate):
    """``kernel_surrogate(surrogate)`` when ``kernels.recurrent_cpu`` implements the
    neuron of a stateful layer, else None: every option of ``compiled_neuron`` plus the
    adaptation; not the synapse (L1s), the delayed synapse (L1d), a per-neuron gain, or
    (L2z)."""
    spec = kernel_surrogate(surrogate)
    if (spec is None or neuron.has_synapse or neuron.synapse_delay
            or np.ndim(neuron.input_gain) != 0
            or neuron.reset in ("zero_after_leak", "subtract_no_delay", "zero_no_delay")):
        return None
    return spec


def _recurrence_arrays(recurrence):
    if recurrence is None:
        return recurrent_cpu.NONE, None, None
    return recurrent_cpu.REC_CODES[recurrence.kind], recurrence.weight, recurrence.bias


def _flat_adaptation(neuron, theta, dtype):
    beta, rho = adaptation_arrays(neuron, theta)
    if beta is None:
        return None, None, False
    return (np.ascontiguousarray(beta, dtype=dtype).reshape(-1),
            np.ascontiguousarray(rho, dtype=dtype).reshape(-1), neuron.adaptation.detach)


def lif_forward_stateful(current, theta, neuron, surrogate, smooth=False, recurrence=None):
    """Numba twin of ``engines.clock.lif_forward_stateful`` (no ``reset_spikes``):
    returns ``(spikes, membrane)``."""
    spec = stateful_spec(neuron, surrogate)
    if spec is None:
        CALLS["fallback:numpy"] += 1
        return clock.lif_forward_stateful(current, theta, neuron, surrogate, smooth, None,
                                          recurrence)
    CALLS["lif_forward_stateful"] += 1
    shape = current.shape
    T, B = shape[:2]
    flat = np.ascontiguousarray(current).reshape(T, B, -1)
    dtype = flat.dtype
    theta = np.broadcast_to(np.asarray(theta, dtype=dtype), shape[2:])
    beta, rho, _ = _flat_adaptation(neuron, theta, dtype)
    membrane = np.empty_like(flat)
    spikes = np.empty_like(flat)
    recurrent_cpu.forward(flat, theta_per_neuron(theta, shape[2:], dtype),
                          neuron_spec(neuron, theta, dtype), smooth, *spec,
                          *_recurrence_arrays(recurrence), beta, rho, membrane, spikes)
    return spikes.reshape(shape), membrane.reshape(shape)


def lif_backward_stateful(grad_spikes, membrane, spikes, theta, neuron, surrogate, trace=None,
                          recurrence=None, current=None, grad_tau=None, grad_gain=None,
                          grad_alpha=None, grad_beta=None, grad_rho=None):
    """Numba twin of ``grad.bptt.lif_backward_stateful``: returns ``(grad_current,
    grad_theta, recurrent_grads)``, (B13) as one GEMM after the loop. A trace, a trained
    decay or synapse (``grad_tau``, ``grad_gain``, ``grad_alpha``) run the reference."""
    spec = stateful_spec(neuron, surrogate)
    if (spec is None or trace is not None or grad_tau is not None or grad_gain is not None
            or grad_alpha is not None):
        CALLS["fallback:numpy"] += 1
        return bptt.lif_backward_stateful(
            grad_spikes, membrane, spikes, theta, neuron, surrogate, trace, recurrence,
            current, grad_tau, grad_gain, grad_alpha, grad_beta, grad_rho)
    CALLS["lif_backward_stateful"] += 1
    shape = grad_spikes.shape
    T, B = shape[:2]
    dtype = grad_spikes.dtype
    theta = np.broadcast_to(np.asarray(theta, dtype=dtype), shape[2:])
    flat = [np.ascontiguousarray(a, dtype=dtype).reshape(T, B, -1)
            for a in (grad_spikes, membrane, spikes)]
    N = flat[0].shape[2]
    beta, rho, detach_adapt = _flat_adaptation(neuron, theta, dtype)
    rec_kind, weight, _ = _recurrence_arrays(recurrence)
    grad_current = np.empty_like(flat[0])
    grad_theta = np.empty(N, dtype=dtype)
    shaped = [None if g is None else g.reshape(-1) for g in (grad_beta, grad_rho)]
    recurrent_cpu.backward(flat[0], flat[1], flat[2], theta_per_neuron(theta, shape[2:], dtype),
                           neuron_spec(neuron, theta, dtype), *spec, rec_kind, weight, beta,
                           rho, detach_adapt, grad_current, grad_theta, *shaped)
    rec_grads = {} if recurrence is None else recurrence.grads(grad_current, flat[2])  # (B13)
    return grad_current.reshape(shape), grad_theta.reshape(shape[2:]), rec_grads


BACKEND = Backend(name="numba", lif_forward=lif_forward, lif_backward=lif_backward,
                  fused=fused_cpu.loss_and_grad, calls=CALLS,
                  lif_forward_stateful=lif_forward_stateful,
                  lif_backward_stateful=lif_backward_stateful)
