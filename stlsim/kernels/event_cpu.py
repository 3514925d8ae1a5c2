"""Numba kernels of the event-driven engine (``stlsim.engines.event``).

Three kernels, all serial and deterministic (fixed loop orders, no ``prange``):

* ``dense_to_events``: the nonzeros of a dense (rows, n) array as compressed rows
  (``ptr``, ``idx``, ``val``): row r = t * B + b holds the events of step t, sample b,
  in increasing neuron order.
* ``dense_layer_forward``: one ``Dense`` layer and its LIF neurons through time, driven
  by input events; lazy leak, threshold tests only where a neuron can cross.
* ``dense_layer_backward``: (B1)-(B6) for that layer in reverse time, from the spike
  events and the membrane values the forward kept.

The bookkeeping is explained, with a worked example, in ``docs/event_engine.md``; the
per-neuron math is ``stlsim.kernels.scalar`` (shared with the clock engine's kernels).
Kernels never validate: ``stlsim.engines.event`` coerces and allocates first.
"""
from __future__ import annotations

import hashlib
import pathlib

import numba
import numpy as np

from . import scalar
from ._jit import register_scalar

__all__ = ["dense_to_events", "dense_layer_forward", "dense_layer_backward"]


def _drop_stale_cache():
    """Numba's cache tracks this file only; drop it when ``scalar.py`` changed (best effort)."""
    here = pathlib.Path(__file__).parent
    cache = here / "__pycache__"
    try:
        digest = hashlib.sha256((here / "scalar.py").read_bytes()).hexdigest()
        stamp = cache / "event_cpu.scalar.sha256"
        if stamp.exists() and stamp.read_text() == digest:
            return
        cache.mkdir(exist_ok=True)
        for path in list(cache.glob("event_cpu.*.nbi")) + list(cache.glob("event_cpu.*.nbc")):
            path.unlink()
        stamp.write_text(digest)
    except OSError:
        pass


_drop_stale_cache()
register_scalar()

_step_forward = scalar.lif_forward_step
_step_backward = scalar.lif_backward_step


@numba.njit(cache=True)
def _grow(array, needed):
    """``array`` itself if it holds ``needed`` entries, else a copy twice as large."""
    if needed <= array.shape[0]:
        return array
    bigger = np.empty(max(needed, 2 * array.shape[0]), dtype=array.dtype)
    bigger[:array.shape[0]] = array
    return bigger


@numba.njit(cache=True)
def dense_to_events(x):
    """Nonzeros of ``x`` (rows, n) as compressed rows ``(ptr, idx, val)``."""
    rows, n = x.shape
    ptr = np.zeros(rows + 1, dtype=np.int64)
    for r in range(rows):
        count = 0
        for j in range(n):
            if x[r, j] != 0:
                count += 1
        ptr[r + 1] = ptr[r] + count
    idx = np.empty(ptr[rows], dtype=np.int32)
    val = np.empty(ptr[rows], dtype=x.dtype)
    k = 0
    for r in range(rows):
        for j in range(n):
            if x[r, j] != 0:
                idx[k] = j
                val[k] = x[r, j]
                k += 1
    return ptr, idx, val


@numba.njit(cache=True)
def _accumulate(current, first, stop, in_idx, in_val, unit_values, weight, weight_t,
                transposed, bias, has_bias):
    """(L1) I = sum over this row's events of weight column * value (+ bias)."""
    N = current.shape[0]
    current[:] = 0.0
    for e in range(first, stop):
        j = in_idx[e]
        if transposed:
            column = weight_t[j]
            if unit_values:
                for i in range(N):
                    current[i] += column[i]
            else:
                value = in_val[e]
                for i in range(N):
                    current[i] += column[i] * value
        elif unit_values:
            for i in range(N):
                current[i] += weight[i, j]
        else:
            value = in_val[e]
            for i in range(N):
                current[i] += weight[i, j] * value
    if has_bias:
        for i in range(N):
            current[i] += bias[i]


@numba.njit(cache=True)
def _update_everyone(r, N, source, v_b, theta, tau, hard, spk_idx, n_spikes, m_val):
    """(L2)-(L4) for every neuron of one sample at one step (row r); keeps every m."""
    for i in range(N):
        m, s, v_new = _step_forward(source[i], v_b[i], theta[i], tau, hard, False, 0, 0.0)
        spk_idx[n_spikes] = i                          # written always, counted if s = 1
        n_spikes += s != 0
        m_val[r * N + i] = m
        v_b[i] = v_new
    return n_spikes


@numba.njit(cache=True)
def _update_some(t, todo, n_todo, source, v_b, last_b, theta, floor, half_width, tau, tau_pow,
                 hard, spk_idx, n_spikes, m_idx, m_val, n_kept, theirs, record, m_now):
    """(L2)-(L4) for the neurons ``todo[:n_todo]`` of one sample at step t, lazy leak.

    Returns the new counts of spikes, kept membranes and next-step candidates
    (``theirs``). Arrays have room for ``n_todo`` more entries. With ``record``,
    ``m_now[i]`` receives every updated membrane.
    """
    n_next = 0
    for c in range(n_todo):
        i = todo[c]
        v_prev = tau_pow[t - 1 - last_b[i]] * v_b[i]   # lazy leak: v_{t-1} = tau^k v_last
        m, s, v_new = _step_forward(source[i], v_prev, theta[i], tau, hard,
                                    False, 0, 0.0)       # (L2)-(L4)
        spk_idx[n_spikes] = i
        n_spikes += s != 0
        m_idx[n_kept] = i
        m_val[n_kept] = m
        n_kept += abs(m - theta[i]) < half_width        # sigma'(m - theta) != 0
        if record:
            m_now[i] = m
        v_b[i] = v_new
        last_b[i] = t
        u = tau * v_b[i]                                 # m_{t+1} if no input comes
        theirs[n_next] = i
        n_next += u > floor[i] or (floor[i] < 0.0 and u < 0.0)
    return n_spikes, n_kept, n_next


@numba.njit(cache=True)
def _record_silent(rec_membrane, b, i, first, stop, v, tau):
    """Dense record of silent steps q in [first, stop): m_q = tau v_{q-1}, I = 0, s = 0."""
    for q in range(first, stop):
        v = tau * v
        rec_membrane[q, b, i] = v


@numba.njit(cache=True)
def dense_layer_forward(T, B, in_ptr, in_idx, in_val, unit_values, weight, weight_t,
                        transposed, bias, has_bias, theta, floor, keep_all, half_width, tau,
                        tau_pow, hard, record, rec_current, rec_membrane, rec_spikes):
    """(L1)-(L4) of one Dense layer, event-driven. Returns the compressed spike rows
    ``(spk_ptr, spk_idx)`` and kept membranes ``(m_ptr, m_idx, m_val)``.

    A neuron is *updated* at step t when it receives input (any input event of its
    sample, or a bias) or when it is a *candidate*: a neuron whose membrane, decaying
    without input, may reach the region ``> floor[i]`` where it can cross theta or lies
    inside the surrogate's support (the rule is derived in docs/event_engine.md).
    Updates of non-candidates apply the leak lazily: v_{t-1} = tau^k v_last after k
    silent steps. ``m`` is kept where ``|m - theta| < half_width``.

    ``keep_all`` (surrogates with sigma' != 0 everywhere): every neuron is updated at
    every step and ``m_val`` is the dense (T * B * N) membrane (``m_idx`` empty).
    With ``record``, dense I, m and s are also written (silent steps filled by the
    clock engine's repeated multiplication). Recording changes no arithmetic.
    """
    N = theta.shape[0]
    dtype = tau_pow.dtype
    v = np.zeros((B, N), dtype=dtype)                                     # v_0 = 0
    last = np.full((B, N), -1, dtype=np.int64)                            # step of v
    candidates = np.empty((2, B, N), dtype=np.int32)
    n_candidates = np.zeros((2, B), dtype=np.int64)
    if not keep_all:
        for b in range(B):                            # at t = 0 the silent membrane is 0
            for i in range(N):
                if 0.0 > floor[i]:
                    candidates[0, b, n_candidates[0, b]] = i
                    n_candidates[0, b] += 1
    everyone = np.arange(N).astype(np.int32)
    current = np.zeros(N, dtype=dtype)
    no_current = np.zeros(N, dtype=dtype)
    m_now = np.zeros(N, dtype=dtype)
    spk_ptr = np.zeros(T * B + 1, dtype=np.int64)
    spk_idx = np.empty(max(16, in_ptr[T * B] // 4), dtype=np.int32)
    m_ptr = np.zeros(T * B + 1 if not keep_all else 1, dtype=np.int64)
    m_idx = np.empty(0 if keep_all else max(16, in_ptr[T * B]), dtype=np.int32)
    m_val = np.empty(T * B * N if keep_all else max(16, in_ptr[T * B]), dtype=dtype)
    n_spikes = 0
    n_kept = 0
    for t in range(T):
        now, after = t % 2, (t + 1) % 2
        for b in range(B):
            r = t * B + b
            first, stop = in_ptr[r], in_ptr[r + 1]
            event_step = stop > first or has_bias
            if event_step:               # (L1) every neuron of the sample gets input
                _accumulate(current, first, stop, in_idx, in_val, unit_values, weight,
                            weight_t, transposed, bias, has_bias)
                if record:
                    rec_current[t, b, :] = current
            source = current if event_step else no_current
            spk_idx = _grow(spk_idx, n_spikes + N)
            if keep_all:
                n_spikes = _update_everyone(r, N, source, v[b], theta, tau, hard, spk_idx,
                                            n_spikes, m_val)
                spk_ptr[r + 1] = n_spikes
                if record:
                    rec_membrane[t, b, :] = m_val[r * N:(r + 1) * N]
                    for e in range(spk_ptr[r], n_spikes):
                        rec_spikes[t, b, spk_idx[e]] = 1
                continue
            todo = everyone if event_step else candidates[now, b]
            n_todo = N if event_step else n_candidates[now, b]
            if record:
                for c in range(n_todo):
                    i = todo[c]
                    _record_silent(rec_membrane, b, i, last[b, i] + 1, t, v[b, i], tau)
            m_idx = _grow(m_idx, n_kept + n_todo)
            m_val = _grow(m_val, n_kept + n_todo)
            n_spikes, n_kept, n_candidates[after, b] = _update_some(
                t, todo, n_todo, source, v[b], last[b], theta, floor, half_width, tau,
                tau_pow, hard, spk_idx, n_spikes, m_idx, m_val, n_kept, candidates[after, b],
                record, m_now)
            spk_ptr[r + 1] = n_spikes
            m_ptr[r + 1] = n_kept
            if record:
                for c in range(n_todo):
                    rec_membrane[t, b, todo[c]] = m_now[todo[c]]
                for e in range(spk_ptr[r], n_spikes):
                    rec_spikes[t, b, spk_idx[e]] = 1
    if record and not keep_all:                        # silent steps after the last update
        for b in range(B):
            for i in range(N):
                _record_silent(rec_membrane, b, i, last[b, i] + 1, T, v[b, i], tau)
    if keep_all:
        n_kept = T * B * N
    return spk_ptr, spk_idx[:n_spikes], m_ptr, m_idx[:n_kept], m_val[:n_kept]


@numba.njit(cache=True)
def dense_layer_backward(T, B, tau, hard, detach, kind, param, theta, all_kept, e_dense, e_kept,
                         m_ptr, m_idx, m_val, spk_ptr, spk_idx, in_ptr, in_idx, in_val,
                         unit_values, transposed, grad_weight, grad_weight_t, has_bias,
                         grad_bias, weight, below, below_ptr, below_idx, e_below, grad_input):
    """(B1)-(B6) of one Dense layer in reverse time; accumulates into the given arrays.

    Kept membranes (sigma' != 0 there) get the full step of ``scalar.lif_backward_step``;
    everywhere else (B1)-(B3) reduce to delta_t = tau delta_{t+1} (no spike) or to the
    spike terms below. ``all_kept``: every membrane was kept (dense ``m_val``) and e is
    the dense ``e_dense`` (T, B, N); otherwise e is ``e_kept``, aligned with the kept
    entries (e only matters where sigma' != 0). ``below``: 0 no input gradient; 1 e of
    the event layer below at its kept entries (``below_ptr``, ``below_idx`` ->
    ``e_below``); 2 dense (T, B, n_in) ``grad_input``.
    Returns dL/dtheta per sample and neuron, (B, N), summed over t.
    """
    N = theta.shape[0]
    dtype = m_val.dtype
    delta = np.zeros((2, B, N), dtype=dtype)                               # delta_{T+1} = 0
    grad_theta = np.zeros((B, N), dtype=dtype)
    spiking = np.zeros(N, dtype=np.int8)
    done = np.zeros(N, dtype=np.int8)
    for t in range(T - 1, -1, -1):
        later, now = (t + 1) % 2, t % 2
        for b in range(B):
            r = t * B + b
            delta_next = delta[later, b]
            d = delta[now, b]
            theta_b = grad_theta[b]
            for e in range(spk_ptr[r], spk_ptr[r + 1]):
                spiking[spk_idx[e]] = 1
            if all_kept:
                e_row = e_dense[t, b]
                for i in range(N):
                    delta_i, theta_term = _step_backward(
                        e_row[i], delta_next[i], m_val[r * N + i], float(spiking[i]),
                        theta[i], tau, hard, detach, kind, param)        # (B1)-(B3)
                    d[i] = delta_i
                    theta_b[i] -= theta_term                             # (B5)
                for e in range(spk_ptr[r], spk_ptr[r + 1]):
                    spiking[spk_idx[e]] = 0
            else:
                for i in range(N):
                    d[i] = tau * delta_next[i]         # (B1)-(B3) where sigma' = 0, s = 0
                for p in range(m_ptr[r], m_ptr[r + 1]):
                    i = m_idx[p]
                    delta_i, theta_term = _step_backward(
                        e_kept[p], delta_next[i], m_val[p], float(spiking[i]), theta[i],
                        tau, hard, detach, kind, param)                  # (B1)-(B3)
                    d[i] = delta_i
                    theta_b[i] -= theta_term                             # (B5)
                    done[i] = 1
                for e in range(spk_ptr[r], spk_ptr[r + 1]):
                    i = spk_idx[e]
                    if done[i] == 0:                   # a spike where sigma' = 0
                        if hard:
                            d[i] = 0.0                 # (B3h) with s = 1
                        else:
                            theta_b[i] -= d[i]         # (B5) soft: s * eps
                    spiking[i] = 0
                for p in range(m_ptr[r], m_ptr[r + 1]):
                    done[m_idx[p]] = 0
            if has_bias:
                for i in range(N):
                    grad_bias[i] += d[i]                                 # (B4) bias
            for e in range(in_ptr[r], in_ptr[r + 1]):                    # (B4)
                j = in_idx[e]
                if transposed:
                    row = grad_weight_t[j]
                    if unit_values:
                        for i in range(N):
                            row[i] += d[i]
                    else:
                        value = in_val[e]
                        for i in range(N):
                            row[i] += d[i] * value
                elif unit_values:
                    for i in range(N):
                        grad_weight[i, j] += d[i]
                else:
                    value = in_val[e]
                    for i in range(N):
                        grad_weight[i, j] += d[i] * value
            if below == 1:                                               # (B6)
                first, stop = below_ptr[r], below_ptr[r + 1]
                if stop > first:
                    for k in range(N):
                        if d[k] != 0.0:
                            for p in range(first, stop):
                                e_below[p] += weight[k, below_idx[p]] * d[k]
            elif below == 2:                                             # (B6)
                out = grad_input[t, b]
                for k in range(N):
                    if d[k] != 0.0:
                        w_k = weight[k]
                        for j in range(out.shape[0]):
                            out[j] += d[k] * w_k[j]
    return grad_theta
