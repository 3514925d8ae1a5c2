"""Backpropagation through time, hand-derived: (B1)-(B6) of ``docs/model.md``.

``lif_backward`` runs the statements of ``engines.clock.lif_forward`` in reverse
order, t = T..1, with the same names. ``run_backward`` chains layers from the loss
down to the input. The derivation is in ``docs/model.md``.
"""
from __future__ import annotations

import numpy as np

from .._checks import fail
from ..neurons import (LIF, NO_DELAY_RESETS, adaptation_arrays, adaptation_states, after_reset,
                       initial_spikes, neuron_of, nonzero, reset_carries, synaptic_current, tau_like)

__all__ = ["lif_backward", "lif_backward_stateful", "run_backward", "decay_grads"]


def lif_backward(grad_spikes, membrane, spikes, theta, neuron: LIF, surrogate, trace=None,
                 grad_tau=None, current=None, grad_gain=None, grad_alpha=None):
    """Reverse-time recursion for one layer of LIF neurons; the NumPy reference.

    Parameters
    ----------
    grad_spikes : numpy.ndarray
        (T, B, *shape) e_t = dL/ds_t arriving from the layer above.
    membrane, spikes : numpy.ndarray
        (T, B, *shape) m_t and s_t from the forward pass.
    theta : numpy.ndarray
        (*shape) threshold per neuron.
    neuron : LIF
        The layer's neuron.
    surrogate : stlsim.surrogate.Surrogate
        Its derivative is sigma'.
    trace : dict, optional
        If given, receives arrays "eps", "g", "delta" (T, B, *shape) for the step-through
        view.
    grad_tau : numpy.ndarray, optional
        Shaped like ``theta``; dL/dtau per neuron, summed over b and t (B7), is added into
        it (for a learnable or per-neuron decay).
    current : numpy.ndarray, optional
        The layer's input currents I_t (T, B, *shape); needed for ``grad_gain`` and
        ``grad_alpha``.
    grad_gain, grad_alpha : numpy.ndarray, optional
        Shaped like ``theta``: dL/dr (B8) and dL/dalpha_syn (B9) per neuron are added into
        them.

    Returns
    -------
    grad_current : numpy.ndarray
        dL/dI_t (T, B, *shape), the gradient w.r.t. the layer's input currents (= delta_t
        = dL/dm_t unless the input gain r != 1, (B3g), or a synapse filters the input,
        (B1s)).
    grad_theta : numpy.ndarray
        dL/dtheta per neuron (*shape), summed over b and t (B5) but not yet over shared
        thresholds. With the default options these are exactly (B1)-(B5).
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
    carries = (reset_carries(membrane, spikes, theta, neuron) if reset in NO_DELAY_RESETS
               else None)                                                 # q_t (L2i)
    carry_next = np.zeros_like(grad_spikes[0])
    for t in range(grad_spikes.shape[0] - 1, -1, -1):
        m, s, e = membrane[t], spikes[t], grad_spikes[t]
        if zero_after_leak:                          # (B1z): m_{t+1} = (1 - s_t)(tau v_t + ...)
            grad_v = tau * (1 - s) * delta_next
        elif reset == "zero_no_delay":               # (B1i): m_{t+1} = tau (1 - q_{t+1}) v_t + ...
            grad_v = tau * (1 - carry_next) * delta_next
        else:
            grad_v = tau * delta_next                                     # (B1) eps_t
        dS_dx = surrogate.derivative(m - theta)                           # sigma'(m_t - theta)
        if reset == "hard":
            if detach:
                g = e
            elif not nonzero(neuron.v_reset):
                g = e - m * grad_v                                        # (B2h)
            else:
                g = e + (neuron.v_reset - m) * grad_v                     # (B2h) reset potential
            delta = g * dS_dx + grad_v * (1 - s)                          # (B3h)
            grad_theta -= g * dS_dx                                       # (B5)
        elif reset == "soft":
            g = e if detach else e - theta * grad_v                       # (B2s)
            delta = g * dS_dx + grad_v                                    # (B3s)
            grad_theta -= g * dS_dx + s * grad_v                          # (B5) soft: direct term
        elif reset == "subtract_no_delay":
            q = carries[t]
            g = e - theta * grad_v                                        # (B2i) subtract
            delta = g * dS_dx + grad_v                                    # (B3i) subtract
            grad_theta -= (1 + q) * g * dS_dx + s * grad_v                # (B5i) subtract
        elif reset == "zero_no_delay":
            q = carries[t]
            g = e - m * grad_v                                            # (B2i) zero
            delta = g * dS_dx + (1 - s + q) * grad_v                      # (B3i) zero
            grad_theta -= g * dS_dx                                       # (B5i) zero
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
            if carries is None:
                v_prev = (after_reset(membrane[t - 1], spikes[t - 1], theta, neuron) if t > 0
                          else neuron.v_init)
            else:
                v_prev = (after_reset(membrane[t - 1], spikes[t - 1], theta, neuron,
                                      carries[t - 1]) if t > 0 else neuron.v_init)
                if reset == "zero_no_delay":
                    v_prev = (1 - carries[t]) * v_prev                    # (B7i) zero
            grad_tau += np.sum(delta_pre * (v_prev - neuron.v_leak), axis=0)  # (B7), (B7i)
        if grad_gain is not None:
            grad_gain += np.sum(delta_pre * syn[t], axis=0)               # (B8) dL/dr
        if trace is not None:
            trace["eps"][t], trace["g"][t], trace["delta"][t] = grad_v, g, delta
        delta_next = delta
        if carries is not None:
            carry_next = carries[t]
    if s_0 is not None and reset == "subtract_after_leak":
        grad_theta -= s_0 * delta_next                                    # (B5a) at t = 1
    if neuron.has_synapse:                                                # (B1s) reverse filter
        alpha = neuron.alpha_syn
        grad_syn_next = np.zeros_like(grad_spikes[0])
        for t in range(grad_spikes.shape[0] - 1, -1, -1):
            grad_syn = grad_current[t] + alpha * grad_syn_next            # dL/dJ_t = dL/dI_t
            if grad_alpha is not None and t > 0:
                grad_alpha += np.sum(grad_syn * syn[t - 1], axis=0)       # (B9), (B9n)
            grad_current[t] = grad_syn
            grad_syn_next = grad_syn
    return grad_current, grad_theta.sum(axis=0)


def lif_backward_stateful(grad_spikes, membrane, spikes, theta, neuron: LIF, surrogate, trace=None,
                          recurrence=None, current=None, grad_tau=None, grad_gain=None,
                          grad_alpha=None, grad_beta=None, grad_rho=None):
    """``lif_backward`` for a layer with state beyond the membrane: the recurrent current
    (L1r) and the adaptive threshold (L3v), (L5a); (B2r), (B10)-(B13) of ``docs/model.md``
    Section 10, on top of every option of Section 8.2.

    Arguments as ``lif_backward``, plus ``recurrence`` (the layer's ``Recurrence``, or
    None) and the accumulators ``grad_beta``, ``grad_rho`` (shaped like ``theta``) of a
    trained adaptation. ``current`` (the feed-forward I^in_t) is needed for ``grad_gain``
    and ``grad_alpha``. Returns ``(grad_current, grad_theta, recurrent_grads)``:
    gamma_t = dL/dI_t (T, B, *shape), dL/dtheta per neuron summed over b and t, and the
    dict of (B13) (empty without recurrence).
    """
    if neuron.reset in NO_DELAY_RESETS:
        raise fail("neuron.reset", "a reset other than 'subtract_no_delay' / 'zero_no_delay' in a "
                   "recurrent layer ((L2i), (L4i) are not derived for Section 10's layers)",
                   repr(neuron.reset), "lif_backward_stateful")
    theta = np.asarray(theta, dtype=grad_spikes.dtype)
    tau = tau_like(neuron, theta)
    reset, detach = neuron.reset, neuron.detach_reset
    gain = neuron.input_gain
    if np.ndim(gain):
        gain = np.asarray(gain, dtype=theta.dtype).reshape(theta.shape)
    beta, rho = adaptation_arrays(neuron, theta)
    adapt = None if beta is None else adaptation_states(spikes, rho)     # a_t (L5a)
    detach_adapt = beta is not None and neuron.adaptation.detach
    zero_after_leak = reset == "zero_after_leak"
    after_leak = reset == "subtract_after_leak"
    syn = None
    if grad_gain is not None or grad_alpha is not None:
        syn = _synaptic_states(current, spikes, neuron, recurrence)       # J_t (L1r), (L1s)
    s_0 = initial_spikes(neuron.v_init, theta, neuron)
    T = grad_spikes.shape[0]
    rows = grad_spikes.shape[1:2] + (-1,)                                 # (B, N) for R
    grad_current = np.empty_like(grad_spikes)
    grad_theta = np.zeros_like(grad_spikes[0])
    zero = np.zeros_like(grad_spikes[0])
    delta_next, gamma_next, alpha_next, grad_syn_next, drive_next = zero, zero, zero, zero, zero
    if trace is not None:
        for key in ("eps", "g", "delta"):
            trace[key] = np.empty_like(grad_spikes)

    def theta_at(t):                                                      # (L3v)
        return theta if adapt is None else theta + beta * adapt[t]

    for t in range(T - 1, -1, -1):
        m, s, e = membrane[t], spikes[t], grad_spikes[t]
        th = theta_at(t)
        if recurrence is not None and t < T - 1:                          # (B2r) R^T gamma_{t+1}
            e = e + recurrence.backward(gamma_next.reshape(rows)).reshape(e.shape)
        if adapt is not None and not detach_adapt:
            e = e + alpha_next                                            # (B2r) alpha_{t+1}
        grad_v = tau * (1 - s) * delta_next if zero_after_leak else tau * delta_next   # (B1)
        dS_dx = surrogate.derivative(m - th)                              # sigma'(m_t - theta_t)
        if reset == "hard":
            g = e if detach else e + (neuron.v_reset - m) * grad_v       # (B2h)
            delta = g * dS_dx + grad_v * (1 - s)                          # (B3h)
            vartheta = -g * dS_dx                                         # (B10)
        elif reset == "soft":
            g = e if detach else e - th * grad_v                          # (B2s)
            delta = g * dS_dx + grad_v                                    # (B3s)
            vartheta = -(g * dS_dx + s * grad_v)                          # (B10) soft
        else:                                                             # "none", after-leak
            g = e - th * delta_next if after_leak and not detach else e   # (B2a), (B2n)
            delta = g * dS_dx + grad_v                                    # (B3n)
            vartheta = -(g * dS_dx + s * delta_next) if after_leak else -g * dS_dx   # (B10)
        grad_theta += vartheta                                            # (B5)
        if adapt is not None:
            if grad_beta is not None:
                grad_beta += np.sum(adapt[t] * vartheta, axis=0)          # (B12) dL/dbeta
            if grad_rho is not None:
                grad_rho += np.sum(adapt[t] * alpha_next, axis=0)         # (B12) dL/drho
            alpha_next = beta * vartheta + rho * alpha_next               # (B11) alpha_t
        delta_pre = delta
        if zero_after_leak:
            delta_pre = (1 - (spikes[t - 1] if t > 0 else s_0)) * delta   # (B3z)
        drive = delta_pre if np.ndim(gain) == 0 and gain == 1.0 else gain * delta_pre  # (B3g)
        grad_j = drive_next if neuron.synapse_delay else drive           # (B1d): m_{t+1} reads J_t
        drive_next = drive
        if neuron.has_synapse:                                            # (B1s), in the loop
            grad_j = grad_j + neuron.alpha_syn * grad_syn_next
            if grad_alpha is not None and t > 0:
                grad_alpha += np.sum(grad_j * syn[t - 1], axis=0)         # (B9)
            grad_syn_next = grad_j
        grad_current[t] = grad_j                                          # gamma_t = dL/dI_t
        if grad_tau is not None:
            v_prev = (after_reset(membrane[t - 1], spikes[t - 1], theta_at(t - 1), neuron)
                      if t > 0 else neuron.v_init)
            grad_tau += np.sum(delta_pre * (v_prev - neuron.v_leak), axis=0)   # (B7)
        if grad_gain is not None:
            drive_in = syn[t] if not neuron.synapse_delay else (syn[t - 1] if t > 0 else 0.0)
            grad_gain += np.sum(delta_pre * drive_in, axis=0)             # (B8)
        if trace is not None:
            trace["eps"][t], trace["g"][t], trace["delta"][t] = grad_v, g, delta
        delta_next, gamma_next = delta, grad_j
    if s_0 is not None and after_leak:
        grad_theta -= s_0 * delta_next                                    # (B5a) at t = 1
    rec_grads = {} if recurrence is None else recurrence.grads(
        grad_current.reshape(grad_current.shape[:2] + (-1,)),
        spikes.reshape(spikes.shape[:2] + (-1,)))                         # (B13)
    return grad_current, grad_theta.sum(axis=0), rec_grads


def _synaptic_states(current, spikes, neuron, recurrence):
    """J_t (or I_t without a synapse) of a stateful layer, rebuilt from the feed-forward
    current and the layer's spikes: (L1r) then (L1s)."""
    total = current
    if recurrence is not None:
        flat = spikes.reshape(spikes.shape[:2] + (-1,))
        rec = np.zeros_like(flat)
        for t in range(1, spikes.shape[0]):
            rec[t] = recurrence.current(flat[t - 1])
        if recurrence.bias is not None:
            rec[0] = recurrence.bias
        total = current + rec.reshape(current.shape)
    return synaptic_current(total, neuron)


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
    if neuron.adaptive and neuron.adaptation.learn_beta:
        extra["grad_beta"] = np.zeros(np.shape(theta))
    if neuron.adaptive and neuron.adaptation.learn_rho:
        extra["grad_rho"] = np.zeros(np.shape(theta))
    return extra


def backend_stateful_backward(backend):
    """The backend's ``lif_backward_stateful`` when it has one and no trace is asked for,
    else the NumPy reference (counted as a fallback for a compiled backend)."""
    fn = getattr(backend, "lif_backward_stateful", None)
    if fn is not None:
        return fn
    if backend.name != "numpy":
        backend.calls["fallback:numpy"] += 1
    return lif_backward_stateful


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
            recurrence = layer.recurrence(params)
            if recurrence is not None or layer_neuron.stateful:  # Section 10
                if traces is not None:
                    traces[i] = {"e": grad_h}
                extra = decay_grads(layer_neuron, tape.thetas[i])
                stateful = (lif_backward_stateful if traces is not None
                            else backend_stateful_backward(backend))
                grad_current, grad_theta, rec_grads = stateful(
                    grad_h, tape.membrane[i], tape.spikes[i], tape.thetas[i], layer_neuron,
                    layer_surrogate, trace=None if traces is None else traces[i],
                    recurrence=recurrence, current=tape.currents[i], **extra)
                local.update(rec_grads)
                local.update({f"neuron:{name[5:]}": value for name, value in extra.items()})
            elif traces is not None or layer_neuron.learns:
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
