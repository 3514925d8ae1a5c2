"""Backpropagation through time, hand-derived: (B1)-(B6) of ``docs/model.md``.

``lif_backward`` runs the statements of ``engines.clock.lif_forward`` in reverse
order, t = T..1, with the same names. ``run_backward`` chains layers from the loss
down to the input. The derivation is in ``docs/model.md``.
"""
from __future__ import annotations

import numpy as np

from ..neurons import LIF, after_reset, initial_spikes, neuron_of, synaptic_current, tau_like

__all__ = ["lif_backward", "run_backward", "decay_grads"]


def lif_backward(grad_spikes, membrane, spikes, theta, neuron: LIF, surrogate, trace=None,
                 grad_tau=None, current=None, grad_gain=None, grad_alpha=None):
    """Reverse-time recursion for one layer of LIF neurons; the NumPy reference.

    Parameters
    ----------
    grad_spikes : (T, B, *shape) e_t = dL/ds_t arriving from the layer above.
    membrane, spikes : (T, B, *shape) m_t and s_t from the forward pass.
    theta : (*shape) threshold per neuron.
    trace : optional dict; if given, receives arrays "eps", "g", "delta" (T, B, *shape)
        for the step-through view.
    grad_tau : optional array shaped like ``theta``; dL/dtau per neuron, summed over b
        and t (B7), is added into it (for a learnable or per-neuron decay).
    current : the layer's input currents I_t (T, B, *shape); needed for ``grad_gain``
        and ``grad_alpha``.
    grad_gain, grad_alpha : optional arrays shaped like ``theta``: dL/dr (B8) and
        dL/dalpha_syn (B9) per neuron are added into them.

    Returns ``(grad_current, grad_theta)``: dL/dI_t (T, B, *shape), the gradient w.r.t.
    the layer's input currents (= delta_t = dL/dm_t unless the input gain r != 1,
    (B3g), or a synapse filters the input, (B1s)); and dL/dtheta per neuron (*shape),
    summed over b and t (B5) but not yet over shared thresholds. With the default
    options these are exactly (B1)-(B5).
    """
    tau = tau_like(neuron, theta)
    reset = neuron.reset
    detach = neuron.detach_reset
    gain = neuron.input_gain
    if np.ndim(gain):
        gain = np.asarray(gain, dtype=np.asarray(theta).dtype).reshape(np.shape(theta))
    unit_gain = np.ndim(gain) == 0 and gain == 1.0
    grad_current = np.empty_like(grad_spikes)
    grad_theta = np.zeros_like(grad_spikes[0])
    delta_next = np.zeros_like(grad_spikes[0])                            # delta_{T+1} = 0
    if trace is not None:
        for key in ("eps", "g", "delta"):
            trace[key] = np.empty_like(grad_spikes)
    syn = None
    if grad_gain is not None or grad_alpha is not None:
        syn = synaptic_current(current, neuron)                           # J_t (L1s)
    zero_after_leak = reset == "zero_after_leak"
    s_0 = initial_spikes(neuron.v_init, theta, neuron)
    for t in range(grad_spikes.shape[0] - 1, -1, -1):
        m, s, e = membrane[t], spikes[t], grad_spikes[t]
        if zero_after_leak:                          # (B1z): m_{t+1} = (1 - s_t)(tau v_t + ...)
            grad_v = tau * (1 - s) * delta_next
        else:
            grad_v = tau * delta_next                                     # (B1) eps_t
        dS_dx = surrogate.derivative(m - theta)                           # sigma'(m_t - theta)
        if reset == "hard":
            if detach:
                g = e
            elif neuron.v_reset == 0.0:
                g = e - m * grad_v                                        # (B2h)
            else:
                g = e + (neuron.v_reset - m) * grad_v                     # (B2h) reset potential
            delta = g * dS_dx + grad_v * (1 - s)                          # (B3h)
            grad_theta -= g * dS_dx                                       # (B5)
        elif reset == "soft":
            g = e if detach else e - theta * grad_v                       # (B2s)
            delta = g * dS_dx + grad_v                                    # (B3s)
            grad_theta -= g * dS_dx + s * grad_v                          # (B5) soft: direct term
        else:                                                             # "none" and the after-leak resets
            g = e
            if reset == "subtract_after_leak" and not detach:
                g = e - theta * delta_next                                # (B2a)
            delta = g * dS_dx + grad_v                                    # (B3n)
            if reset == "subtract_after_leak":
                grad_theta -= g * dS_dx + s * delta_next                  # (B5), (B5a) direct
            else:
                grad_theta -= g * dS_dx                                   # (B5)
        delta_pre = delta                  # dL/d(tau v_{t-1} + (1 - tau) v_leak + r J_t)
        if zero_after_leak:
            s_prev = spikes[t - 1] if t > 0 else s_0
            delta_pre = (1 - s_prev) * delta                              # (B3z)
        grad_current[t] = delta_pre if unit_gain else gain * delta_pre    # (B3g) dL/dI_t
        if grad_tau is not None:
            v_prev = (after_reset(membrane[t - 1], spikes[t - 1], theta, neuron) if t > 0
                      else neuron.v_init)
            grad_tau += np.sum(delta_pre * (v_prev - neuron.v_leak), axis=0)  # (B7)
        if grad_gain is not None:
            grad_gain += np.sum(delta_pre * syn[t], axis=0)               # (B8) dL/dr
        if trace is not None:
            trace["eps"][t], trace["g"][t], trace["delta"][t] = grad_v, g, delta
        delta_next = delta
    if s_0 is not None and reset == "subtract_after_leak":
        grad_theta -= s_0 * delta_next                                    # (B5a) at t = 1
    if neuron.has_synapse:                                                # (B1s) reverse filter
        alpha = neuron.alpha_syn
        grad_syn_next = np.zeros_like(grad_spikes[0])
        for t in range(grad_spikes.shape[0] - 1, -1, -1):
            grad_syn = grad_current[t] + alpha * grad_syn_next            # dL/dJ_t = dL/dI_t
            if grad_alpha is not None and t > 0:
                grad_alpha += np.sum(grad_syn * syn[t - 1], axis=0)       # (B9)
            grad_current[t] = grad_syn
            grad_syn_next = grad_syn
    return grad_current, grad_theta.sum(axis=0)


def decay_grads(neuron: LIF, theta) -> dict:
    """Zeroed accumulators for the trained neuron parameters of a layer (keyword
    arguments of ``lif_backward``): dL/dtau, dL/dr when the gain is tied to tau, and
    dL/dalpha_syn, each shaped like ``theta``."""
    extra = {}
    if neuron.learn_tau:
        extra["grad_tau"] = np.zeros(np.shape(theta))
        if neuron.tie_gain:
            extra["grad_gain"] = np.zeros(np.shape(theta))
    if neuron.learn_alpha_syn:
        extra["grad_alpha"] = np.zeros(np.shape(theta))
    return extra


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
            layer_neuron = neuron_of(neuron, i)
            layer_surrogate = neuron_of(surrogate, i)            # one per layer, or shared
            if traces is not None or layer_neuron.learns:
                if traces is not None:
                    traces[i] = {"e": grad_h}
                elif backend.name != "numpy":          # the kernels give no decay gradients
                    backend.calls["fallback:numpy"] += 1
                extra = decay_grads(layer_neuron, tape.thetas[i])
                grad_current, grad_theta = lif_backward(
                    grad_h, tape.membrane[i], tape.spikes[i], tape.thetas[i], layer_neuron,
                    layer_surrogate, trace=None if traces is None else traces[i],
                    current=tape.currents[i], **extra)
                local.update({f"neuron:{name[5:]}": value for name, value in extra.items()})
            else:
                grad_current, grad_theta = backend.lif_backward(
                    grad_h, tape.membrane[i], tape.spikes[i], tape.thetas[i], layer_neuron,
                    layer_surrogate)
            local["theta"] = layer.reduce_theta(grad_theta)               # (B5) shared sum
        else:
            grad_current = grad_h
        layer_grads, grad_h = layer.backward(grad_current, tape.caches[i], params,
                                             need_input_grad=i > 0)       # (B4), (B6)
        local.update(layer_grads)
        grads[i] = local
    return grads
