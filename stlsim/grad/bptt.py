"""Backpropagation through time, hand-derived: (B1)-(B6) of ``docs/model.md``.

``lif_backward`` runs the statements of ``engines.clock.lif_forward`` in reverse
order, t = T..1, with the same names. ``run_backward`` chains layers from the loss
down to the input. The derivation is in ``docs/model.md``.
"""
from __future__ import annotations

import numpy as np

from ..neurons import LIF

__all__ = ["lif_backward", "run_backward"]


def lif_backward(grad_spikes, membrane, spikes, theta, neuron: LIF, surrogate, trace=None):
    """Reverse-time recursion for one layer of LIF neurons; the NumPy reference.

    Parameters
    ----------
    grad_spikes : (T, B, *shape) e_t = dL/ds_t arriving from the layer above.
    membrane, spikes : (T, B, *shape) m_t and s_t from the forward pass.
    theta : (*shape) threshold per neuron.
    trace : optional dict; if given, receives arrays "eps", "g", "delta" (T, B, *shape)
        for the step-through view.

    Returns ``(grad_membrane, grad_theta)``: delta_t = dL/dm_t (T, B, *shape), the
    gradient w.r.t. the layer's input currents; and dL/dtheta per neuron (*shape),
    summed over b and t (B5) but not yet over shared thresholds.
    """
    tau = neuron.tau
    hard = neuron.reset == "hard"
    detach = neuron.detach_reset
    grad_membrane = np.empty_like(grad_spikes)
    grad_theta = np.zeros_like(grad_spikes[0])
    delta_next = np.zeros_like(grad_spikes[0])                            # delta_{T+1} = 0
    if trace is not None:
        for key in ("eps", "g", "delta"):
            trace[key] = np.empty_like(grad_spikes)
    for t in range(grad_spikes.shape[0] - 1, -1, -1):
        m, s, e = membrane[t], spikes[t], grad_spikes[t]
        grad_v = tau * delta_next                                         # (B1) eps_t
        dS_dx = surrogate.derivative(m - theta)                           # sigma'(m_t - theta)
        if hard:
            g = e if detach else e - m * grad_v                           # (B2h)
            delta = g * dS_dx + grad_v * (1 - s)                          # (B3h)
            grad_theta -= g * dS_dx                                       # (B5)
        else:
            g = e if detach else e - theta * grad_v                       # (B2s)
            delta = g * dS_dx + grad_v                                    # (B3s)
            grad_theta -= g * dS_dx + s * grad_v                          # (B5) soft: direct term
        grad_membrane[t] = delta
        if trace is not None:
            trace["eps"][t], trace["g"][t], trace["delta"][t] = grad_v, g, delta
        delta_next = delta
    return grad_membrane, grad_theta.sum(axis=0)


def run_backward(layers, params_per_layer, tape, grad_output, neuron, surrogate, backend,
                 traces=None):
    """Chain (B1)-(B6) from dL/d(output spikes) down to the first layer.

    Returns a list (per layer) of local-name gradient dicts. ``traces`` (optional
    list, per layer) receives the step-through quantities of the NumPy reference.
    """
    grads = [None] * len(layers)
    grad_h = grad_output                                                  # e^L_t
    for i in range(len(layers) - 1, -1, -1):
        layer, params = layers[i], params_per_layer[i]
        local = {}
        if layer.has_neurons:
            if traces is not None:
                traces[i] = {"e": grad_h}
                grad_current, grad_theta = lif_backward(
                    grad_h, tape.membrane[i], tape.spikes[i], tape.thetas[i], neuron, surrogate,
                    trace=traces[i])
            else:
                grad_current, grad_theta = backend.lif_backward(
                    grad_h, tape.membrane[i], tape.spikes[i], tape.thetas[i], neuron, surrogate)
            local["theta"] = layer.reduce_theta(grad_theta)               # (B5) shared sum
        else:
            grad_current = grad_h
        layer_grads, grad_h = layer.backward(grad_current, tape.caches[i], params,
                                             need_input_grad=i > 0)       # (B4), (B6)
        local.update(layer_grads)
        grads[i] = local
    return grads
