"""numba.cuda kernels of the LIF neurons: one GPU thread per (sample b, neuron i).

Each thread runs that neuron's whole time recursion: (L2)-(L4) forward, (B1)-(B5)
backward, with the options of ``docs/model.md`` Section 8 (the synapse aside), by the
per-neuron math of ``stlsim.kernels.scalar`` (the same general step the CPU kernels
compile; options are run-time arguments here: a warp takes one branch). Arrays are time-major ``(T, B, N)``
device arrays; thread ``b * N + i`` touches element ``[t, b, i]``, so at each step a
warp reads and writes consecutive addresses (coalesced). Spikes are ``uint8`` (the
float dtype only in smooth mode, where they are P(m - theta)).

Threshold gradients (B5) are reduced without atomics: each thread writes its own
partial sum over t into a (B, N) array, then ``column_sum`` sums it over b in a fixed
order, one thread per neuron. Array in, array out: the callers (``stlsim.engines.
cuda_backend``, ``stlsim.engines.fused_cuda``) upload, allocate and download.

No ``cache=True`` on these kernels: compiling them is a one-off of a few seconds per
process. No ``fastmath`` (reference results depend on them).
"""
from __future__ import annotations

from . import scalar
from ._jit import register_scalar
from .cuda_device import CALLS, THREADS, blocks, cuda

__all__ = ["forward", "backward", "column_sum", "spread_rates"]

register_scalar()          # the scalar functions become callable from CUDA kernels
_step_forward = scalar.lif_forward_step_general
_step_backward = scalar.lif_backward_step_general


# --- kernels ---------------------------------------------------------------------------------
# v, delta_{t+1} and the threshold partial live in one-element local arrays of the
# storage dtype (registers after compilation), so that every step rounds to float32
# exactly where the NumPy reference does; a plain local variable would be promoted to
# float64 by the surrogate math.

@cuda.jit
def _lif_forward_kernel(current, bias, has_bias, theta, membrane, spikes, tau, leak, s_init, gain,
                        v_reset, v_init, reset, strict, has_leak, has_gain, has_reset_potential,
                        per_tau, smooth, kind, param, param2):
    """(L2)-(L4) and docs/model.md Section 8's options through time for neuron (b, i) =
    divmod(thread, N). ``membrane`` may be ``current`` itself (overwritten in place)."""
    lane = cuda.grid(1)
    n_neurons = current.shape[2]
    if lane >= current.shape[1] * n_neurons:
        return
    b = lane // n_neurons
    i = lane - b * n_neurons
    v = cuda.local.array(1, membrane.dtype)
    s_prev = cuda.local.array(1, membrane.dtype)
    v[0] = v_init                                                           # v_0
    s_prev[0] = s_init[i] if reset == scalar.AFTER_LEAK else 0              # s_0 (L2a)
    tau_i = tau[i] if per_tau else tau[0]
    leak_i = leak[i] if has_leak else leak[0]
    for t in range(current.shape[0]):
        current_t = current[t, b, i]
        if has_bias:
            current_t += bias[i]                                            # (L1) + bias
        m, s, v_new = _step_forward(current_t, v[0], s_prev[0], theta[i], tau_i, leak_i, gain,
                                    v_reset, reset, strict, has_leak, has_gain,
                                    has_reset_potential, smooth, kind, param,
                                    param2)                                 # (L2)-(L4)
        membrane[t, b, i] = m
        spikes[t, b, i] = s
        v[0] = v_new
        s_prev[0] = s


@cuda.jit
def _lif_backward_kernel(grad_spikes, membrane, spikes, theta, grad_membrane, theta_partial,
                         tau, s_init, gain, v_reset, reset, detach, has_gain, has_reset_potential,
                         per_tau, kind, param, param2):
    """(B1)-(B3) in reverse time for neuron (b, i); ``grad_membrane`` receives dL/dI_t and
    may be ``grad_spikes`` itself; ``theta_partial[b, i]`` its (B5) sum over t."""
    lane = cuda.grid(1)
    n_neurons = grad_spikes.shape[2]
    if lane >= grad_spikes.shape[1] * n_neurons:
        return
    b = lane // n_neurons
    i = lane - b * n_neurons
    delta_next = cuda.local.array(1, grad_membrane.dtype)
    grad_theta = cuda.local.array(1, grad_membrane.dtype)
    delta_next[0] = 0                                                       # delta_{T+1} = 0
    grad_theta[0] = 0
    tau_i = tau[i] if per_tau else tau[0]
    for t in range(grad_spikes.shape[0] - 1, -1, -1):
        delta, grad_current, theta_term = _step_backward(
            grad_spikes[t, b, i], delta_next[0], membrane[t, b, i], spikes[t, b, i], theta[i],
            tau_i, gain, v_reset, reset, detach, has_gain, has_reset_potential, kind,
            param, param2)                                                  # (B1)-(B3)
        grad_membrane[t, b, i] = grad_current
        delta_next[0] = delta
        grad_theta[0] -= theta_term                                         # (B5) over t
    if reset == scalar.AFTER_LEAK:
        grad_theta[0] -= s_init[i] * delta_next[0]                          # (B5a) at t = 1
    theta_partial[b, i] = grad_theta[0]


@cuda.jit
def _column_sum_kernel(rows, out):
    """out[j] = sum_r rows[r, j], r in increasing order: a fixed-order reduction (one
    thread per column; no atomics), so results do not depend on scheduling."""
    j = cuda.grid(1)
    if j >= rows.shape[1]:
        return
    total = cuda.local.array(1, out.dtype)
    total[0] = 0
    for r in range(rows.shape[0]):
        total[0] += rows[r, j]
    out[j] = total[0]


@cuda.jit
def _spread_rates_kernel(grad_rates, population, denominator, grad_spikes):
    """e^L_t = dL/ds^L_t: each output spike carries 1/(T P) of its class rate's gradient."""
    lane = cuda.grid(1)
    n_neurons = grad_spikes.shape[2]
    if lane >= grad_spikes.shape[1] * n_neurons:
        return
    b = lane // n_neurons
    i = lane - b * n_neurons
    value = grad_rates[b, i // population] / denominator
    for t in range(grad_spikes.shape[0]):
        grad_spikes[t, b, i] = value


# --- launches --------------------------------------------------------------------------------

def forward(current, bias, has_bias, theta, membrane, spikes, neuron, smooth, kind, param,
            param2):
    """(L2)-(L4) for device arrays (T, B, N); ``membrane`` may be ``current`` (in place);
    ``bias`` (N,) is added to the currents when ``has_bias``; ``neuron`` a
    ``kernels.spec.NeuronSpec`` (its arrays uploaded here); ``kind``, ``param``, ``param2``
    the surrogate (``engines.backend.kernel_surrogate``)."""
    T, B, N = current.shape
    CALLS["kernel:lif_forward"] += 1
    _lif_forward_kernel[blocks(B * N), THREADS](
        current, bias, has_bias, theta, membrane, spikes, cuda.to_device(neuron.tau),
        cuda.to_device(neuron.leak), cuda.to_device(neuron.s_init), neuron.gain, neuron.v_reset,
        neuron.v_init, neuron.reset, neuron.strict, neuron.has_leak, neuron.has_gain,
        neuron.has_reset_potential, neuron.per_tau, smooth, kind, param, param2)


def backward(grad_spikes, membrane, spikes, theta, grad_membrane, theta_partial, neuron, kind,
             param, param2):
    """(B1)-(B3) in reverse time into ``grad_membrane`` (dL/dI_t; may be ``grad_spikes``),
    and each lane's (B5) sum over t into ``theta_partial`` (B, N)."""
    T, B, N = grad_spikes.shape
    CALLS["kernel:lif_backward"] += 1
    _lif_backward_kernel[blocks(B * N), THREADS](
        grad_spikes, membrane, spikes, theta, grad_membrane, theta_partial,
        cuda.to_device(neuron.tau), cuda.to_device(neuron.s_init), neuron.gain, neuron.v_reset,
        neuron.reset, neuron.detach, neuron.has_gain, neuron.has_reset_potential,
        neuron.per_tau, kind, param, param2)


def column_sum(rows, out):
    """out[j] = sum over r of rows[r, j], in increasing r."""
    CALLS["kernel:column_sum"] += 1
    _column_sum_kernel[blocks(rows.shape[1]), THREADS](rows, out)


def spread_rates(grad_rates, population, denominator, grad_spikes):
    """e^L_t = dL/ds^L_t for every t from dL/dr (B, C): the readout's backward."""
    T, B, N = grad_spikes.shape
    CALLS["kernel:spread_rates"] += 1
    _spread_rates_kernel[blocks(B * N), THREADS](grad_rates, population, denominator, grad_spikes)
