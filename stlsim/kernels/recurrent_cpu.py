"""Numba CPU kernels of a stateful layer: recurrence and adaptive thresholds.

The compiled twins of ``engines.clock.lif_forward_stateful`` and
``grad.bptt.lif_backward_stateful``: (L1r), (L3v), (L5a) and (B2r), (B10)-(B12) of
``docs/model.md`` Section 10, on top of the neuron options the feed-forward kernels of
``kernels.cpu`` implement (hard / soft / after-leak / no reset, ``detach_reset``, H(0),
gain, leak, reset and initial potentials, scalar or per-neuron tau). Array in, array out,
as ``kernels.cpu``: the caller (``engines.numba_backend``) decides what runs here and
allocates; a neuron is its ``NeuronSpec``, a surrogate its code and parameters
(``param``, ``param2``).

Layout: (T, B, N) arrays, C-contiguous, one float dtype; a Dense layer's neurons.

* ``forward``: spikes and membranes. The recurrent current of "all", V s_{t-1}, is
  summed over the neurons that spiked only (``s_{t-1, j} != 0``: a few percent of
  them in spiking mode), into the rows of V^T, in the loop over time of each sample.
* ``backward``: gamma_t = dL/dI_t, dL/dtheta, and the adaptation's dL/dbeta, dL/drho.
  The recurrent adjoint V^T gamma_{t+1} (B2r) is dense (sigma' is nowhere zero for most
  surrogates): one BLAS GEMM (B, N) x (N, N) per step, or, where the batch runs parallel
  on more than one thread, a fused loop.

Strategies (``STRATEGY``, "fused" or "blas", measured by ``benchmarks/recurrent_speed.py``
and ``docs/performance.md``; the backward's default "auto" picks by the thread count): "fused" runs each direction as one loop per sample over
time (parallel over the batch), the recurrent products written out in the loop;
"blas" runs the loop over time outside, one BLAS call per step for all samples (the
forward's V s_{t-1} and the backward's V^T gamma_{t+1}) and the neurons of every
sample after it. The default per direction is the faster one measured here.

(B13) dL/dV is not computed here: the caller runs it as one GEMM over all T*B rows after
the loop (``layers.Recurrence.grads``, the NumPy reference's own call).

Exactness: states between steps (v, s, a, theta_t, delta, alpha) are kept in arrays of
the storage dtype, as in ``kernels.cpu``; the membrane recursion has no float literal,
so in float32 it rounds like NumPy. The recurrent sum V s_{t-1} adds the same terms as
NumPy's BLAS in another order (sequentially over the presynaptic neurons): float64
agrees to ~1e-16 relative, float32 to ~1e-7; a spike could differ only where m_t lies
within that distance of theta_t.
"""
from __future__ import annotations

import numba
import numpy as np
from numba.extending import register_jitable

from . import cpu, scalar
from ._jit import prepare_cache, register_scalar
from .spec import NeuronSpec

__all__ = ["forward", "backward", "CALLS", "NONE", "ALL", "ONE", "REC_CODES", "STRATEGY"]

CALLS = cpu.CALLS                  # one counter with the feed-forward kernels
NONE, ALL, ONE = 0, 1, 2
REC_CODES = {None: NONE, "all": ALL, "one": ONE}
# The strategy of each direction (see the module doc); chosen by measurement
# (docs/performance.md). "auto": "fused" where it runs parallel over the batch on more
# than one thread (a BLAS call per step from the kernel then runs a second OpenBLAS,
# SciPy's, whose threads competed with NumPy's and Numba's: up to 4.6x slower), else
# "blas" (1.4-1.7x faster than the serial fused loop).
STRATEGY = {"forward": "fused", "backward": "auto"}

prepare_cache(__file__)
register_scalar()

_primitive = scalar.surrogate_primitive
_derivative = scalar.surrogate_derivative
_fires = scalar.fires
HARD, SOFT, AFTER_LEAK = scalar.HARD, scalar.SOFT, scalar.AFTER_LEAK


# --- one sample, one step: the neurons of a row -------------------------------------------

@register_jitable(inline="always")
def _forward_row(cur, rec, mem, spk, v, s_prev, a, th_prev, theta, tau, leak, gain, v_reset,
                 rec_bias, beta, rho, one, kind, param, param2, smooth, reset, rec_kind, adaptive,
                 strict, has_leak, has_gain, has_reset_potential, per_tau, has_bias):
    """(L1r), (L3v), (L2g)/(L2a), (L3)/(L3'), (L4*), (L5a) for the N neurons of one
    sample at one step. ``rec`` holds V s_{t-1} ("all"; zeros at t = 1) or s_{t-1}
    ("one"); ``mem``, ``spk`` receive m_t and s_t; ``v``, ``s_prev``, ``a``,
    ``th_prev`` are the states, updated in place."""
    after_leak = reset == AFTER_LEAK
    tau_0 = tau[0]
    for i in range(cur.shape[0]):
        i_t = cur[i]
        if rec_kind == ALL:
            r = rec[i] + rec_bias[i] if has_bias else rec[i]              # (L1r) V s + b
            i_t = i_t + r
        elif rec_kind == ONE:
            r = rec[i] * rec_bias[i + cur.shape[0]]                       # V * s (packed)
            if has_bias:
                r = r + rec_bias[i]
            i_t = i_t + r
        th = theta[i] + beta[i] * a[i] if adaptive else theta[i]         # (L3v) theta_t
        m = (tau[i] if per_tau else tau_0) * v[i]                         # (L2)
        if has_leak:
            m = m + leak[i]                                               # (L2g)
        if has_gain:
            m = m + gain * i_t
        else:
            m = m + i_t
        if after_leak:
            m = m - s_prev[i] * th_prev[i]                                # (L2a) theta_{t-1}
        mem[i] = m
        if smooth:
            spk[i] = _primitive(kind, m - th, param, param2)
        else:
            spk[i] = _fires(m - th, strict)                               # (L3), (L3')
        s = spk[i]                                                        # rounded to dtype
        if reset == HARD:
            v_new = (one - s) * m                                         # (L4h)
            if has_reset_potential:
                v_new = v_new + s * v_reset
        elif reset == SOFT:
            v_new = m - s * th                                            # (L4s) theta_t
        else:
            v_new = m                                                     # (L4n), (L2a)
        v[i] = v_new
        if after_leak:
            s_prev[i] = s
            th_prev[i] = th
        if adaptive:
            a[i] = rho[i] * a[i] + s                                      # (L5a) a_{t+1}


@register_jitable(inline="always")
def _backward_row(e_t, rec, mem, spk, adapt, grad_cur, delta_next, alpha_next, theta_part,
                  beta_part, rho_part, vt, theta, tau, gain, v_reset, beta, rho, one, last, kind,
                  param, param2, reset, rec_kind, adaptive, detach, detach_adapt, has_gain,
                  per_tau):
    """(B2r), (B1)-(B3), (B10)-(B12) for the N neurons of one sample at one step, reverse
    time. ``rec`` holds R^T(gamma_{t+1}) (B2r); ``last``: t = T (no step after); ``vt``
    a row of scratch (vartheta_t).

    Two loops: the second takes the sums of (B5), (B12) and the recursion (B11). In one
    loop, the three more arrays written kept LLVM from vectorising it (7x slower)."""
    after_leak = reset == AFTER_LEAK
    tau_0 = tau[0]
    for i in range(e_t.shape[0]):
        e = e_t[i]
        if rec_kind != NONE and not last:
            e = e + rec[i]                                                # (B2r) R^T gamma
        if adaptive and not detach_adapt:
            e = e + alpha_next[i]                                         # (B2r) alpha_{t+1}
        m = mem[i]
        s = spk[i]
        dn = delta_next[i]
        grad_v = (tau[i] if per_tau else tau_0) * dn                      # (B1) eps_t
        th = theta[i] + beta[i] * adapt[i] if adaptive else theta[i]     # (L3v)
        ds = _derivative(kind, m - th, param, param2)                     # sigma'(m - theta_t)
        if reset == HARD:
            g = e if detach else e + (v_reset - m) * grad_v               # (B2h)
            gs = g * ds
            delta = gs + grad_v * (one - s)                               # (B3h)
            vartheta = -gs                                                # (B10)
        elif reset == SOFT:
            g = e if detach else e - th * grad_v                          # (B2s)
            gs = g * ds
            delta = gs + grad_v                                           # (B3s)
            vartheta = -(gs + s * grad_v)                                 # (B10) soft
        else:
            g = e - th * dn if after_leak and not detach else e           # (B2a), (B2n)
            gs = g * ds
            delta = gs + grad_v                                           # (B3n)
            vartheta = -(gs + s * dn) if after_leak else -gs              # (B10)
        vt[i] = vartheta
        grad_cur[i] = gain * delta if has_gain else delta                 # (B3g) gamma_t
        delta_next[i] = delta
    for i in range(e_t.shape[0]):
        theta_part[i] += vt[i]                                            # (B5)
    if adaptive:
        for i in range(e_t.shape[0]):
            beta_part[i] += adapt[i] * vt[i]                              # (B12) dL/dbeta
        for i in range(e_t.shape[0]):
            an = alpha_next[i]
            rho_part[i] += adapt[i] * an                                  # (B12) dL/drho
            alpha_next[i] = beta[i] * vt[i] + rho[i] * an                 # (B11) alpha_t


@register_jitable(inline="always")
def _adaptation_states(spikes, rho, adapt, b, acc):
    """a_t of sample b (L5a): a_1 = 0, a_{t+1} = rho a_t + s_t, into ``adapt``."""
    for i in range(acc.shape[0]):
        acc[i] = 0
    for t in range(spikes.shape[0]):
        s_t = spikes[t, b]
        a_t = adapt[t, b]
        for i in range(acc.shape[0]):
            a_t[i] = acc[i]
            acc[i] = rho[i] * acc[i] + s_t[i]


# --- kernels ------------------------------------------------------------------------------

def _build_forward(strategy, kind, smooth, reset, rec_kind, adaptive, parallel):
    after_leak = reset == AFTER_LEAK

    def init(v, s_prev, a, th_prev, rec, theta, v_init, s_init):
        for i in range(theta.shape[0]):
            v[i] = v_init                                                 # v_0
            s_prev[i] = s_init[i] if after_leak else 0                    # s_0 (L2a)
            a[i] = 0                                                      # a_1 = 0
            th_prev[i] = theta[i]                                         # theta_0
            rec[i] = 0                                                    # V s_0 = 0

    init = register_jitable(init)

    def forward_fused(current, membrane, spikes, theta, tau, leak, gain, v_reset, v_init,
                      s_init, rec_t, rec_bias, beta, rho, one, param, param2, strict,
                      has_leak, has_gain, has_reset_potential, per_tau, has_bias, v_state, s_state,
                      a_state, th_state, rec_state):
        T, B, N = current.shape
        for b in numba.prange(B):
            v, s_prev, a = v_state[b], s_state[b], a_state[b]
            th_prev, rec = th_state[b], rec_state[b]
            init(v, s_prev, a, th_prev, rec, theta, v_init, s_init)
            for t in range(T):
                if t > 0 and rec_kind == ALL:                             # V s_{t-1}: spiking rows
                    for i in range(N):
                        rec[i] = 0
                    s_last = spikes[t - 1, b]
                    for j in range(N):
                        s_j = s_last[j]
                        if s_j != 0:
                            row = rec_t[j]                                # V[:, j]
                            for i in range(N):
                                rec[i] += s_j * row[i]
                elif t > 0 and rec_kind == ONE:
                    s_last = spikes[t - 1, b]
                    for i in range(N):
                        rec[i] = s_last[i]
                _forward_row(current[t, b], rec, membrane[t, b], spikes[t, b], v, s_prev, a,
                             th_prev, theta, tau, leak, gain, v_reset, rec_bias, beta, rho, one,
                             kind, param, param2, smooth, reset, rec_kind, adaptive, strict,
                             has_leak,
                             has_gain, has_reset_potential, per_tau, has_bias)

    def forward_blas(current, membrane, spikes, theta, tau, leak, gain, v_reset, v_init,
                     s_init, rec_t, rec_bias, beta, rho, one, param, param2, strict,
                     has_leak, has_gain, has_reset_potential, per_tau, has_bias, v_state, s_state,
                     a_state, th_state, rec_state):
        T, B, N = current.shape
        for b in range(B):
            init(v_state[b], s_state[b], a_state[b], th_state[b], rec_state[b], theta, v_init,
                 s_init)
        rec_all = rec_state
        for t in range(T):
            if t > 0 and rec_kind == ALL:
                np.dot(spikes[t - 1], rec_t, rec_all)                     # (B, N) V s_{t-1}
            elif t > 0 and rec_kind == ONE:
                rec_all[:, :] = spikes[t - 1]
            for b in range(B):
                _forward_row(current[t, b], rec_all[b], membrane[t, b], spikes[t, b],
                             v_state[b], s_state[b], a_state[b], th_state[b], theta, tau,
                             leak, gain, v_reset, rec_bias, beta, rho, one, kind, param, param2,
                             smooth,
                             reset, rec_kind, adaptive, strict, has_leak, has_gain,
                             has_reset_potential, per_tau, has_bias)

    kernel = forward_fused if strategy == "fused" else forward_blas
    kernel.__qualname__ = (f"forward_{strategy}_k{kind}_{'smooth' if smooth else 'spiking'}"
                           f"_r{reset}_rec{rec_kind}{'_adapt' if adaptive else ''}_"
                           f"{'parallel' if parallel else 'serial'}")
    return numba.njit(parallel=parallel, cache=True, error_model="numpy")(kernel)


def _build_backward(strategy, kind, reset, rec_kind, adaptive, parallel):

    def backward_fused(grad_spikes, membrane, spikes, theta, grad_current, tau, gain, v_reset,
                       s_init, rec_w, beta, rho, one, param, param2, detach, detach_adapt,
                       has_gain, per_tau, adapt, delta_state, alpha_state, rec_state, vt_state,
                       theta_part, beta_part, rho_part):
        T, B, N = grad_spikes.shape
        for b in numba.prange(B):
            delta_next, alpha_next, rec = delta_state[b], alpha_state[b], rec_state[b]
            for i in range(N):
                delta_next[i] = 0                                         # delta_{T+1} = 0
                alpha_next[i] = 0                                         # alpha_{T+1} = 0
                theta_part[b, i] = 0
                beta_part[b, i] = 0
                rho_part[b, i] = 0
            if adaptive:
                _adaptation_states(spikes, rho, adapt, b, rec)
            for t in range(T - 1, -1, -1):
                last = t == T - 1
                if rec_kind == ALL and not last:                          # V^T gamma_{t+1}
                    for i in range(N):
                        rec[i] = 0
                    g_next = grad_current[t + 1, b]
                    for k in range(N):
                        g_k = g_next[k]
                        if g_k != 0:
                            row = rec_w[k]
                            for i in range(N):
                                rec[i] += g_k * row[i]
                elif rec_kind == ONE and not last:                        # V * gamma_{t+1}
                    g_next = grad_current[t + 1, b]
                    w = rec_w[0]
                    for i in range(N):
                        rec[i] = g_next[i] * w[i]
                a_t = adapt[t, b] if adaptive else rec
                _backward_row(grad_spikes[t, b], rec, membrane[t, b], spikes[t, b], a_t,
                              grad_current[t, b], delta_next, alpha_next, theta_part[b],
                              beta_part[b], rho_part[b], vt_state[b], theta, tau, gain, v_reset, beta, rho,
                              one, last, kind, param, param2, reset, rec_kind, adaptive,
                              detach, detach_adapt, has_gain, per_tau)
            if reset == AFTER_LEAK:
                for i in range(N):
                    theta_part[b, i] -= s_init[i] * delta_next[i]         # (B5a) at t = 1

    def backward_blas(grad_spikes, membrane, spikes, theta, grad_current, tau, gain, v_reset,
                      s_init, rec_w, beta, rho, one, param, param2, detach, detach_adapt,
                      has_gain, per_tau, adapt, delta_state, alpha_state, rec_state, vt_state,
                      theta_part, beta_part, rho_part):
        T, B, N = grad_spikes.shape
        for b in range(B):
            for i in range(N):
                delta_state[b, i] = 0
                alpha_state[b, i] = 0
                theta_part[b, i] = 0
                beta_part[b, i] = 0
                rho_part[b, i] = 0
            if adaptive:
                _adaptation_states(spikes, rho, adapt, b, rec_state[b])
        rec_all = rec_state
        for t in range(T - 1, -1, -1):
            last = t == T - 1
            if rec_kind == ALL and not last:
                np.dot(grad_current[t + 1], rec_w, rec_all)               # (B, N) V^T gamma
            elif rec_kind == ONE and not last:
                w = rec_w[0]
                for b in range(B):
                    g_next = grad_current[t + 1, b]
                    rec = rec_all[b]
                    for i in range(N):
                        rec[i] = g_next[i] * w[i]                         # V * gamma_{t+1}
            for b in range(B):
                a_t = adapt[t, b] if adaptive else rec_all[b]
                _backward_row(grad_spikes[t, b], rec_all[b], membrane[t, b], spikes[t, b], a_t,
                              grad_current[t, b], delta_state[b], alpha_state[b], theta_part[b],
                              beta_part[b], rho_part[b], vt_state[b], theta, tau, gain, v_reset, beta, rho,
                              one, last, kind, param, param2, reset, rec_kind, adaptive,
                              detach, detach_adapt, has_gain, per_tau)
        if reset == AFTER_LEAK:
            for b in range(B):
                for i in range(N):
                    theta_part[b, i] -= s_init[i] * delta_state[b, i]     # (B5a) at t = 1

    kernel = backward_fused if strategy == "fused" else backward_blas
    kernel.__qualname__ = (f"backward_{strategy}_k{kind}_r{reset}_rec{rec_kind}"
                           f"{'_adapt' if adaptive else ''}_{'parallel' if parallel else 'serial'}")
    return numba.njit(parallel=parallel, cache=True, error_model="numpy")(kernel)


_KERNELS = {}


def _kernel(key, build):
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = build(*key[1:])
    return kernel


def _parallel(strategy, batch, n_elements) -> bool:
    """Lanes are samples: the fused loops run parallel over the batch when it has more
    than one sample and enough work (``kernels.cpu``'s threshold and mode)."""
    return strategy == "fused" and batch > 1 and cpu._parallel(n_elements)


def _states(count, B, N, dtype):
    """``count`` separate (B, N) arrays of state. Separate allocations, not rows of one
    array: two rows of one array written in the same loop are one object to LLVM, at a
    distance it cannot tell, and the loop is not vectorised (4-10x slower)."""
    return [np.empty((B, N), dtype) for _ in range(count)]


def _vector(value, n, dtype):
    return np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype=dtype), (n,)))


# --- entry points -------------------------------------------------------------------------

def forward(current, theta, neuron: NeuronSpec, smooth, kind, param, param2, rec_kind, rec_weight,
            rec_bias, beta, rho, membrane, spikes, strategy=None):
    """(L1r), (L3v), (L5a) with (L2)-(L4) through time, into ``membrane`` and ``spikes``.

    ``current``, ``membrane``, ``spikes``: C-contiguous (T, B, N) of one float dtype,
    ``current`` the feed-forward I^in_t; ``theta``: (N,). ``rec_kind``: NONE, ALL or ONE;
    ``rec_weight``: V ((N, N) for ALL, (N,) for ONE, ignored for NONE); ``rec_bias``:
    (N,) or None. ``beta``, ``rho``: (N,) for an adaptive neuron, else None.
    ``strategy``: "fused" or "blas" (default ``STRATEGY["forward"]``).
    """
    T, B, N = current.shape
    dtype = current.dtype
    strategy = strategy or STRATEGY["forward"]
    adaptive = beta is not None
    smooth = bool(smooth)
    has_bias = rec_bias is not None
    if rec_kind == ALL:
        rec_t = np.ascontiguousarray(np.asarray(rec_weight, dtype=dtype).T)   # rows: V[:, j]
        bias = _vector(rec_bias, N, dtype) if has_bias else np.zeros(1, dtype)
    elif rec_kind == ONE:
        rec_t = np.zeros((1, 1), dtype)
        bias = np.concatenate([_vector(rec_bias if has_bias else 0, N, dtype),
                               _vector(rec_weight, N, dtype)])                 # [b_rec, V]
    else:
        rec_t, bias = np.zeros((1, 1), dtype), np.zeros(1, dtype)
    beta_v = _vector(beta, N, dtype) if adaptive else np.zeros(1, dtype)
    rho_v = _vector(rho, N, dtype) if adaptive else np.zeros(1, dtype)
    parallel = _parallel(strategy, B, current.size)
    key = ("forward", strategy, kind if smooth else -1, smooth, neuron.reset, rec_kind, adaptive,
           parallel)
    CALLS["kernel:forward_stateful"] += 1
    _kernel(key, _build_forward)(
        current, membrane, spikes, theta, neuron.tau, neuron.leak, neuron.gain, neuron.v_reset,
        neuron.v_init, neuron.s_init, rec_t, bias, beta_v, rho_v, dtype.type(1), param, param2,
        neuron.strict, neuron.has_leak, neuron.has_gain, neuron.has_reset_potential,
        neuron.per_tau, has_bias, *_states(5, B, N, dtype))


def backward(grad_spikes, membrane, spikes, theta, neuron: NeuronSpec, kind, param, param2,
             rec_kind, rec_weight, beta, rho, detach_adapt, grad_current, grad_theta, grad_beta=None,
             grad_rho=None, strategy=None):
    """(B2r), (B1)-(B3), (B10)-(B12) in reverse time into ``grad_current`` (gamma_t =
    dL/dI_t) and ``grad_theta`` (N,), the sum over t and b; dL/dbeta and dL/drho summed
    over t and b are *added* into ``grad_beta``, ``grad_rho`` (N,) when given (any float
    dtype; the NumPy reference's accumulators are float64).

    ``grad_spikes``, ``membrane``, ``spikes``, ``grad_current``: C-contiguous (T, B, N);
    ``rec_weight``: V as in ``forward``; ``beta``, ``rho``: (N,) or None;
    ``detach_adapt``: ``Adaptation(detach=True)`` (no alpha term in (B2r)).
    ``strategy``: "fused", "blas" or "auto" (default ``STRATEGY["backward"]``).
    """
    T, B, N = grad_spikes.shape
    dtype = grad_spikes.dtype
    strategy = strategy or STRATEGY["backward"]
    if strategy == "auto":                      # fused where it runs parallel, else BLAS
        threads = numba.get_num_threads()
        strategy = "fused" if threads > 1 and _parallel("fused", B, grad_spikes.size) else "blas"
    adaptive = beta is not None
    if rec_kind == ALL:
        rec_w = np.ascontiguousarray(rec_weight, dtype=dtype)                 # V: gamma @ V
    elif rec_kind == ONE:
        rec_w = _vector(rec_weight, N, dtype).reshape(1, N)
    else:
        rec_w = np.zeros((1, N), dtype)
    beta_v = _vector(beta, N, dtype) if adaptive else np.zeros(1, dtype)
    rho_v = _vector(rho, N, dtype) if adaptive else np.zeros(1, dtype)
    adapt = np.empty((T, B, N) if adaptive else (1, 1, 1), dtype)
    parts = np.empty((B, N), dtype)
    beta_part = np.empty((B, N), np.float64)
    rho_part = np.empty((B, N), np.float64)
    parallel = _parallel(strategy, B, grad_spikes.size)
    key = ("backward", strategy, kind, neuron.reset, rec_kind, adaptive, parallel)
    CALLS["kernel:backward_stateful"] += 1
    _kernel(key, _build_backward)(
        grad_spikes, membrane, spikes, theta, grad_current, neuron.tau, neuron.gain,
        neuron.v_reset, neuron.s_init, rec_w, beta_v, rho_v, dtype.type(1), param, param2,
        neuron.detach, bool(detach_adapt), neuron.has_gain, neuron.per_tau, adapt,
        *_states(4, B, N, dtype), parts, beta_part, rho_part)
    np.sum(parts, axis=0, out=grad_theta)                                 # (B5) over b
    if grad_beta is not None:
        grad_beta += beta_part.sum(axis=0)                                # (B12)
    if grad_rho is not None:
        grad_rho += rho_part.sum(axis=0)
