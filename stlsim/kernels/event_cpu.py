"""Numba kernels of the event-driven engine (``stlsim.engines.event``).

Three kernels, all serial and deterministic (fixed loop orders, no ``prange``):

* ``dense_to_events``: the nonzeros of a dense (rows, n) array as compressed rows
  (``ptr``, ``idx``, ``val``): row r = t * B + b holds the events of step t, sample b,
  in increasing neuron order.
* ``dense_layer_forward``: one ``Dense`` layer and its LIF neurons through time, driven
  by input events; lazy leak, threshold tests only where a neuron can cross; optionally
  keeps the membranes the backward needs, or records dense I, m, s for a ``Record``.
* ``dense_layer_backward``: (B1)-(B6) for that layer in reverse time, from the spike
  events and the kept membranes.

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
_heaviside = scalar.heaviside
_reset = scalar.reset


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
            count += x[r, j] != 0                   # branch-free: vectorizes
        ptr[r + 1] = ptr[r] + count
    idx = np.empty(ptr[rows], dtype=np.int32)
    val = np.empty(ptr[rows], dtype=x.dtype)
    for r in range(rows):
        if ptr[r + 1] == ptr[r]:
            continue
        k = ptr[r]
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
def dense_layer_forward(T, B, in_ptr, in_idx, in_val, unit_values, weight, weight_t,
                        transposed, bias, has_bias, theta, floor, keep, half_width, tau,
                        tau_pow, hard, record, rec_current, rec_membrane, rec_spikes):
    """(L1)-(L4) of one Dense layer, event-driven. Returns the compressed spike rows
    ``(spk_ptr, spk_idx)`` and kept membranes ``(m_ptr, m_idx, m_val)``.

    State per neuron: a = ``anchor``, the last step at which it received input or
    spiked, and v_a = ``v_anchor``, its membrane after that step. In between only the
    leak acted, so at a later step t, v_{t-1} = tau^(t-1-a) v_a (lazy leak), followed
    by the ordinary step (L2)-(L4). For t - 1 = a that is exactly the clock engine's
    arithmetic, and the numbers never depend on which silent steps were visited.

    A neuron is visited at step t when its sample receives input (an event or a bias
    reaches every neuron of a Dense layer) or when it is a *candidate*: without input
    its next membrane u = tau^(t+1-a) v_a is above ``floor[i]`` (or below zero while
    ``floor[i] < 0``). The floor says what must not be missed (docs/event_engine.md):
    crossings (just below theta; -inf for theta <= 0), the surrogate's support
    (theta - width/2), or everything (-inf: every neuron at every step).
    ``keep``: 0 no membrane, 1 m where |m - theta| < half_width (compressed rows), 2
    every m (dense ``m_val`` of T * B * N; floor must be -inf). ``record`` (floor -inf)
    also writes dense I, m and s.
    """
    N = theta.shape[0]
    dtype = tau_pow.dtype
    v_anchor = np.zeros((B, N), dtype=dtype)                          # v_0 = 0
    anchor = np.full((B, N), -1, dtype=np.int64)
    candidates = np.empty((2, B, N), dtype=np.int32)
    n_candidates = np.zeros((2, B), dtype=np.int64)
    for b in range(B):                                # at t = 0 the silent membrane is 0
        for i in range(N):
            if 0.0 > floor[i]:
                candidates[0, b, n_candidates[0, b]] = i
                n_candidates[0, b] += 1
    membrane = np.zeros(N, dtype=dtype)
    spk_ptr = np.zeros(T * B + 1, dtype=np.int64)
    spk_idx = np.empty(max(16, in_ptr[T * B] // 4), dtype=np.int32)
    m_ptr = np.zeros(T * B + 1, dtype=np.int64)
    m_idx = np.empty(max(16, in_ptr[T * B]) if keep == 1 else 0, dtype=np.int32)
    m_val = np.empty(T * B * N if keep == 2 else (max(16, in_ptr[T * B]) if keep == 1 else 0),
                     dtype=dtype)
    n_spikes = 0
    n_kept = 0
    for t in range(T):
        now, after = t % 2, (t + 1) % 2
        for b in range(B):
            r = t * B + b
            first, stop = in_ptr[r], in_ptr[r + 1]
            if n_spikes + N > spk_idx.shape[0]:
                spk_idx = _grow(spk_idx, n_spikes + N)
            if keep == 1 and n_kept + N > m_idx.shape[0]:
                m_idx = _grow(m_idx, n_kept + N)
                m_val = _grow(m_val, n_kept + N)
            v_b, anchor_b, theirs = v_anchor[b], anchor[b], candidates[after, b]
            n_next = 0
            if stop > first or has_bias:
                # Every neuron of the sample gets input: simple passes over all of them.
                _accumulate(membrane, first, stop, in_idx, in_val, unit_values, weight,
                            weight_t, transposed, bias, has_bias)            # (L1) I_t
                if record:
                    rec_current[t, b, :] = membrane
                for i in range(N):
                    v_prev = tau_pow[t - 1 - anchor_b[i]] * v_b[i]           # lazy leak
                    membrane[i] = tau * v_prev + membrane[i]                 # (L2)
                for i in range(N):
                    if membrane[i] >= theta[i]:                              # (L3)
                        spk_idx[n_spikes] = i
                        n_spikes += 1
                if keep == 1:
                    for i in range(N):
                        if abs(membrane[i] - theta[i]) < half_width:         # sigma' != 0
                            m_idx[n_kept] = i
                            m_val[n_kept] = membrane[i]
                            n_kept += 1
                elif keep == 2:
                    m_val[r * N:(r + 1) * N] = membrane
                for i in range(N):
                    m = membrane[i]
                    v_b[i] = _reset(m, _heaviside(m - theta[i]), theta[i], hard)   # (L4)
                    anchor_b[i] = t
                for i in range(N):
                    u = tau * v_b[i]                       # next membrane without input
                    if u > floor[i] or (floor[i] < 0.0 and u < 0.0):
                        theirs[n_next] = i
                        n_next += 1
                if record:
                    rec_membrane[t, b, :] = membrane
                    for e in range(spk_ptr[r], n_spikes):
                        rec_spikes[t, b, spk_idx[e]] = 1
            else:
                # No input: only the candidates can cross or enter the support.
                todo = candidates[now, b]
                for c in range(n_candidates[now, b]):
                    i = todo[c]
                    v_prev = tau_pow[t - 1 - anchor_b[i]] * v_b[i]           # lazy leak
                    m, s, v_new = _step_forward(0.0, v_prev, theta[i], tau, hard,
                                                False, 0, 0.0)               # (L2)-(L4)
                    if s != 0:
                        spk_idx[n_spikes] = i
                        n_spikes += 1
                        v_b[i] = v_new                     # a spike moves the anchor
                        anchor_b[i] = t
                    if keep == 1 and abs(m - theta[i]) < half_width:
                        m_idx[n_kept] = i
                        m_val[n_kept] = m
                        n_kept += 1
                    elif keep == 2:
                        m_val[r * N + i] = m
                    if record:
                        rec_membrane[t, b, i] = m
                        rec_spikes[t, b, i] = s
                    u = tau * (tau_pow[t - anchor_b[i]] * v_b[i])
                    if u > floor[i] or (floor[i] < 0.0 and u < 0.0):
                        theirs[n_next] = i
                        n_next += 1
            n_candidates[after, b] = n_next
            spk_ptr[r + 1] = n_spikes
            m_ptr[r + 1] = n_kept
    if keep == 2:
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
