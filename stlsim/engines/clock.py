"""The clock-driven engine: every neuron is updated at every time step.

``lif_forward`` is the reference time loop of (L2)-(L4) over a whole layer; the
network forward (``run_forward``) evaluates each layer's currents for all T steps in
one batched call (L1), then runs its neurons through time with the backend's
``lif_forward``. Its tape is read by ``run_backward``, the BPTT of ``grad.bptt``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..grad.bptt import run_backward
from ..neurons import (LIF, adaptation_arrays, after_reset, initial_spikes, lif_step, neuron_of,
                       replace_unchecked, synaptic_current, tau_like)

__all__ = ["lif_forward", "lif_forward_stateful", "Tape", "run_forward", "run_backward"]


def lif_forward(current, theta, neuron: LIF, surrogate, smooth=False, reset_spikes=None,
                recurrence=None):
    """Simulate LIF neurons through time; the NumPy reference.

    A recurrent layer or a stateful neuron (docs/model.md Section 10) runs
    ``lif_forward_stateful``.

    Parameters
    ----------
    current : numpy.ndarray
        (T, B, *shape) input currents I_t.
    theta : numpy.ndarray
        (*shape) threshold per neuron (already broadcast from its sharing level).
    neuron : LIF
        The layer's neuron.
    surrogate : stlsim.surrogate.Surrogate
        Its primitive is the spike function in smooth mode.
    smooth : bool, default False
        Smooth mode (docs/model.md Section 5).
    reset_spikes : numpy.ndarray, optional
        (T, B, *shape). If given, these values replace s_t inside the reset (L4) while
        (L3) still computes the output. Used only to build the function whose finite
        differences check ``detach_reset=True`` gradients.
    recurrence : stlsim.layers.Recurrence, optional
        The layer's recurrence, (L1r).

    Returns
    -------
    spikes, membrane : numpy.ndarray
        Both (T, B, *shape); ``membrane`` is m_t before reset.
    """
    if recurrence is not None or neuron.stateful:
        return lif_forward_stateful(current, theta, neuron, surrogate, smooth, reset_spikes,
                                    recurrence)
    spike_fn = _spike_function(neuron, surrogate, smooth)
    spikes = np.empty_like(current)
    membrane = np.empty_like(current)
    v = np.full_like(current[0], neuron.v_init)                          # v_0
    if neuron.per_neuron_tau:                                             # tau over the neurons
        neuron = _with_tau(neuron, tau_like(neuron, np.asarray(theta, dtype=current.dtype)))
    current = synaptic_current(current, neuron)                          # (L1s) J_t, or I_t
    s = initial_spikes(v, theta, neuron)                                   # s_0 (L2a) or None
    for t in range(current.shape[0]):
        s_prev = s if reset_spikes is None or t == 0 else reset_spikes[t - 1]
        m, s, v = lif_step(current[t], v, theta, neuron, spike_fn, s_prev)   # (L2)-(L4)
        if reset_spikes is not None:
            v = _reset(m, reset_spikes[t], theta, neuron)
        membrane[t] = m
        spikes[t] = s
    return spikes, membrane


def lif_forward_stateful(current, theta, neuron: LIF, surrogate, smooth=False, reset_spikes=None,
                         recurrence=None):
    """``lif_forward`` with a layer's own state beyond the membrane: the recurrent
    current (L1r), the adaptive threshold (L3v), (L5a) and the delayed synapse (L1d) of
    ``docs/model.md`` Section 10.

    The synapse (L1s) is filtered step by step here, since I_t needs s_{t-1}.
    ``reset_spikes`` replaces s_t in the detached uses only: the reset when
    ``detach_reset``, the adaptation when ``Adaptation(detach=True)``. Returns
    ``(spikes, membrane)``.
    """
    spike_fn = _spike_function(neuron, surrogate, smooth)
    dtype = current.dtype
    spikes = np.empty_like(current)
    membrane = np.empty_like(current)
    theta = np.asarray(theta, dtype=dtype)
    if neuron.per_neuron_tau:
        neuron = _with_tau(neuron, tau_like(neuron, theta))
    beta, rho = adaptation_arrays(neuron, theta)
    v = np.full_like(current[0], neuron.v_init)                          # v_0
    s = initial_spikes(v, theta, neuron)                                  # s_0 (L2a) or None
    s_rec = np.zeros_like(current[0])                                     # s_0 = 0 for (L1r)
    j = np.zeros_like(current[0])                                         # J_0 = 0 (L1s)
    a = np.zeros_like(current[0])                                         # a_1 = 0 (L5a)
    theta_prev = theta
    flat = current.shape[:2] + (-1,)
    frozen_reset = reset_spikes is not None and neuron.detach_reset
    frozen_adaptation = reset_spikes is not None and beta is not None and neuron.adaptation.detach
    for t in range(current.shape[0]):
        i_t = current[t]
        if recurrence is not None:                                        # (L1r)
            i_t = i_t + recurrence.current(s_rec.reshape(flat[1:])).reshape(i_t.shape)
        j_prev = j
        j = neuron.alpha_syn * j + i_t if neuron.has_synapse else i_t     # (L1s)
        i_t = j_prev if neuron.synapse_delay else j                       # (L1d): J_{t-1}
        theta_t = theta if beta is None else theta + beta * a             # (L3v)
        s_prev = s if not frozen_reset or t == 0 else reset_spikes[t - 1]
        m, s, v = lif_step(i_t, v, theta_t, neuron, spike_fn, s_prev, theta_prev)  # (L2)-(L4)
        if frozen_reset:
            v = _reset(m, reset_spikes[t], theta_t, neuron)
        if beta is not None:                                              # (L5a)
            a = rho * a + (reset_spikes[t] if frozen_adaptation else s)
        membrane[t] = m
        spikes[t] = s
        s_rec, theta_prev = s, theta_t
    return spikes, membrane


def _spike_function(neuron, surrogate, smooth):
    if smooth:
        return surrogate.primitive
    return _heaviside if neuron.spike_at_threshold else _heaviside_strict


def _heaviside(x):
    return (x >= 0).astype(x.dtype)                                       # (L3) H(0) = 1


def _heaviside_strict(x):
    return (x > 0).astype(x.dtype)                                        # (L3') H(0) = 0


def _with_tau(neuron, tau):
    """The neuron with ``tau`` replaced by an array shaped like the layer."""
    return replace_unchecked(neuron, tau=tau)


_reset = after_reset                                                     # (L4h), (L4s), (L4n)


@dataclass
class Tape:
    """Everything the backward pass needs from a forward pass."""

    inputs: list = field(default_factory=list)      # per layer: input to the layer
    caches: list = field(default_factory=list)      # per layer: the layer's forward cache
    currents: list = field(default_factory=list)    # per layer: I (spiking) or None
    spikes: list = field(default_factory=list)      # per layer: s (spiking) or None
    membrane: list = field(default_factory=list)    # per layer: m (spiking) or None
    thetas: list = field(default_factory=list)      # per layer: theta per neuron or None


def backend_stateful_forward(backend):
    """The backend's ``lif_forward_stateful`` (Section 10), or the NumPy reference,
    counted as a fallback, for a backend without one."""
    fn = getattr(backend, "lif_forward_stateful", None)
    if fn is not None:
        return fn
    if backend.name != "numpy":
        backend.calls["fallback:numpy"] += 1
    return lambda current, theta, neuron, surrogate, smooth, recurrence: lif_forward_stateful(
        current, theta, neuron, surrogate, smooth, None, recurrence)


def run_forward(layers, params_per_layer, x, neuron, surrogate, ctx, backend, *,
                smooth=False, reset_spikes=None):
    """Forward through every layer. Returns ``(output, tape)``.

    ``backend`` (an ``engines.backend.Backend``) provides ``lif_forward``;
    ``reset_spikes`` (list per layer, or None) is honoured by the NumPy reference only.
    """
    tape = Tape()
    h = x
    for i, layer in enumerate(layers):
        params = params_per_layer[i]
        out, cache = layer.forward(h, params, ctx)
        tape.inputs.append(h)
        tape.caches.append(cache)
        if layer.has_neurons:
            theta = layer.expand_theta(params["theta"])
            layer_neuron = neuron_of(neuron, i)
            layer_surrogate = neuron_of(surrogate, i)            # one per layer, or shared
            recurrence = layer.recurrence(params)
            if reset_spikes is not None and reset_spikes[i] is not None:
                spikes, membrane = lif_forward(out, theta, layer_neuron, layer_surrogate, smooth,
                                               reset_spikes[i], recurrence)
            elif recurrence is not None or layer_neuron.stateful:
                spikes, membrane = backend_stateful_forward(backend)(
                    out, theta, layer_neuron, layer_surrogate, smooth, recurrence)
            else:
                spikes, membrane = backend.lif_forward(out, theta, layer_neuron, layer_surrogate,
                                                       smooth)
            tape.currents.append(out)
            tape.spikes.append(spikes)
            tape.membrane.append(membrane)
            tape.thetas.append(theta)
            h = spikes
        else:
            tape.currents.append(None)
            tape.spikes.append(None)
            tape.membrane.append(None)
            tape.thetas.append(None)
            h = out
    return h, tape
