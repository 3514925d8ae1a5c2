"""numba.cuda kernels of the LIF neurons: one GPU thread per (sample b, neuron i).

Each thread runs that neuron's whole time recursion: (L2)-(L4) forward, (B1)-(B5)
backward (``docs/model.md``), with the per-neuron math of ``stlsim.kernels.scalar``
(the same functions the CPU kernels compile). Arrays are time-major ``(T, B, N)``
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
_step_forward = scalar.lif_forward_step
_step_backward = scalar.lif_backward_step


# --- kernels ---------------------------------------------------------------------------------
# v, delta_{t+1} and the threshold partial live in one-element local arrays of the
# storage dtype (registers after compilation), so that every step rounds to float32
# exactly where the NumPy reference does; a plain local variable would be promoted to
# float64 by the surrogate math.

@cuda.jit
def _lif_forward_kernel(current, bias, has_bias, theta, membrane, spikes, tau, hard, smooth,
                        kind, param):
    """(L2)-(L4) through time for neuron (b, i) = divmod(thread, N). ``membrane`` may be
    ``current`` itself (overwritten in place)."""
    lane = cuda.grid(1)
    n_neurons = current.shape[2]
    if lane >= current.shape[1] * n_neurons:
        return
    b = lane // n_neurons
    i = lane - b * n_neurons
    v = cuda.local.array(1, membrane.dtype)
    v[0] = 0                                                                # v_0 = 0
    for t in range(current.shape[0]):
        current_t = current[t, b, i]
        if has_bias:
            current_t += bias[i]                                            # (L1) + bias
        m, s, v_new = _step_forward(current_t, v[0], theta[i], tau, hard, smooth, kind,
                                    param)                                  # (L2)-(L4)
        membrane[t, b, i] = m
        spikes[t, b, i] = s
        v[0] = v_new


@cuda.jit
def _lif_backward_kernel(grad_spikes, membrane, spikes, theta, grad_membrane, theta_partial,
                         tau, hard, detach, kind, param):
    """(B1)-(B3) in reverse time for neuron (b, i); ``theta_partial[b, i]`` receives its
    (B5) sum over t. ``grad_membrane`` may be ``grad_spikes`` itself."""
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
    for t in range(grad_spikes.shape[0] - 1, -1, -1):
        delta, theta_term = _step_backward(grad_spikes[t, b, i], delta_next[0],
                                           membrane[t, b, i], spikes[t, b, i], theta[i],
                                           tau, hard, detach, kind, param)  # (B1)-(B3)
        grad_membrane[t, b, i] = delta
        delta_next[0] = delta
        grad_theta[0] -= theta_term                                         # (B5) over t
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

def forward(current, bias, has_bias, theta, membrane, spikes, tau, hard, smooth, kind, param):
    """(L2)-(L4) for device arrays (T, B, N); ``membrane`` may be ``current`` (in place);
    ``bias`` (N,) is added to the currents when ``has_bias``; ``tau`` of the dtype."""
    T, B, N = current.shape
    CALLS["kernel:lif_forward"] += 1
    _lif_forward_kernel[blocks(B * N), THREADS](current, bias, has_bias, theta, membrane, spikes,
                                                tau, hard, smooth, kind, param)


def backward(grad_spikes, membrane, spikes, theta, grad_membrane, theta_partial, tau, hard,
             detach, kind, param):
    """(B1)-(B3) in reverse time into ``grad_membrane`` (may be ``grad_spikes``), and each
    lane's (B5) sum over t into ``theta_partial`` (B, N)."""
    T, B, N = grad_spikes.shape
    CALLS["kernel:lif_backward"] += 1
    _lif_backward_kernel[blocks(B * N), THREADS](grad_spikes, membrane, spikes, theta,
                                                 grad_membrane, theta_partial, tau, hard, detach,
                                                 kind, param)


def column_sum(rows, out):
    """out[j] = sum over r of rows[r, j], in increasing r."""
    CALLS["kernel:column_sum"] += 1
    _column_sum_kernel[blocks(rows.shape[1]), THREADS](rows, out)


def spread_rates(grad_rates, population, denominator, grad_spikes):
    """e^L_t = dL/ds^L_t for every t from dL/dr (B, C): the readout's backward."""
    T, B, N = grad_spikes.shape
    CALLS["kernel:spread_rates"] += 1
    _spread_rates_kernel[blocks(B * N), THREADS](grad_rates, population, denominator, grad_spikes)
