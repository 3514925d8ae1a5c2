"""Numba kernels of the event-driven engine (``stlsim.engines.event``).

All serial and deterministic (fixed loop orders, no ``prange``):

* ``dense_to_events`` / ``events_to_rows``: the nonzeros of a dense (rows, n) array as
  compressed rows (``ptr``, ``idx``, ``val``; row r = t * B + b holds the events of
  step t, sample b, in increasing neuron order), and back.
* ``dense_layer_forward``: one ``Dense`` layer and its LIF neurons through time, driven
  by input events: currents of a chunk of steps (``_direct_rows`` or ``_gather_rows``
  from W, ``_push_row`` from W.T, bit-identical), lazy leak, threshold tests only where a
  neuron can cross (``visit_fence``); optionally keeps the membranes the backward
  needs, or records dense I, m, s for a ``Record``.
* ``dense_layer_spikes``: the spikes alone (``record="spikes"``): ``_stepwise_spikes``
  (one tight pass per step, the lazy leak's state kept but no candidate lists) where
  most rows have input, else ``dense_layer_forward``; ``population_rates`` from them.
* ``dense_layer_backward``: (B1)-(B6) for that layer in reverse time, from the spike
  events and the kept membranes.

The bookkeeping is explained, with a worked example, in ``docs/event_engine.md``; the
per-neuron math is ``stlsim.kernels.scalar`` (shared with the clock engine's kernels).
Kernels never validate: ``stlsim.engines.event`` coerces and allocates first.
"""
from __future__ import annotations

import numba
import numpy as np

from . import scalar
from ._jit import prepare_cache, register_scalar

__all__ = ["dense_to_events", "dense_pairs_to_events", "events_to_rows", "dense_layer_forward", "dense_layer_backward",
           "visit_fence", "population_counts", "population_rates", "dense_layer_spikes"]


prepare_cache(__file__)
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
def dense_to_events(x, bits, magnitude):
    """Nonzeros of ``x`` (rows, n) as compressed rows ``(ptr, idx, val, unit)``.

    One pass: ``bits`` is ``x`` viewed as unsigned integers of its width and
    ``magnitude`` (one entry, that type) masks off the sign bit, so a block of eight
    entries is all zero (+0 or -0) when the OR of their masked bits is; most of a sparse
    row is skipped eight entries per test. The outputs grow as they fill (a separate
    counting pass read ``x`` twice: ~40 % more time at 0.5 % density).
    ``unit``: every nonzero is 1. ``dense_pairs_to_events``: the same for float32 rows
    of even length, read as 64-bit words.
    """
    rows, n = x.shape
    mask = magnitude[0]
    ptr = np.zeros(rows + 1, dtype=np.int64)
    idx = np.empty(16 + rows * n // 64, dtype=np.int32)
    val = np.empty(idx.shape[0], dtype=x.dtype)
    unit = True
    full = n - n % 8
    k = 0
    for r in range(rows):
        if k + n > idx.shape[0]:                      # room for a full row
            idx = _grow(idx, k + n)
            val = _grow(val, k + n)
        row, row_bits = x[r], bits[r]
        for j0 in range(0, full, 8):
            block = row_bits[j0] & mask
            for j in range(j0 + 1, j0 + 8):             # fixed length: unrolled
                block |= row_bits[j] & mask
            if block != 0:
                for j in range(j0, j0 + 8):
                    if row[j] != 0:
                        idx[k] = j
                        val[k] = row[j]
                        unit &= row[j] == 1
                        k += 1
        for j in range(full, n):
            if row[j] != 0:
                idx[k] = j
                val[k] = row[j]
                unit &= row[j] == 1
                k += 1
        ptr[r + 1] = k
    return ptr, idx[:k].copy(), val[:k].copy(), unit


@numba.njit(cache=True)
def dense_pairs_to_events(x, pairs, magnitude):
    """``dense_to_events`` for float32 rows of even length: ``pairs`` is ``x`` viewed
    as 64-bit words (two entries each) and ``magnitude`` masks off both sign bits, so
    a block of eight entries is four words (~25 % less time at 0.5 % density)."""
    rows, n = x.shape
    mask = magnitude[0]
    ptr = np.zeros(rows + 1, dtype=np.int64)
    idx = np.empty(16 + rows * n // 64, dtype=np.int32)
    val = np.empty(idx.shape[0], dtype=x.dtype)
    unit = True
    half = n // 2
    full = half - half % 4
    k = 0
    for r in range(rows):
        if k + n > idx.shape[0]:                      # room for a full row
            idx = _grow(idx, k + n)
            val = _grow(val, k + n)
        row, row_pairs = x[r], pairs[r]
        for q0 in range(0, full, 4):
            block = (row_pairs[q0] | row_pairs[q0 + 1] | row_pairs[q0 + 2]
                     | row_pairs[q0 + 3]) & mask
            if block != 0:
                for j in range(2 * q0, 2 * q0 + 8):
                    if row[j] != 0:
                        idx[k] = j
                        val[k] = row[j]
                        unit &= row[j] == 1
                        k += 1
        for j in range(2 * full, n):
            if row[j] != 0:
                idx[k] = j
                val[k] = row[j]
                unit &= row[j] == 1
                k += 1
        ptr[r + 1] = k
    return ptr, idx[:k].copy(), val[:k].copy(), unit


@numba.njit(cache=True)
def events_to_rows(ptr, idx, val, unit, out):
    """Write compressed rows of events into the zeroed dense (rows, n) ``out``."""
    for r in range(ptr.shape[0] - 1):
        for e in range(ptr[r], ptr[r + 1]):
            out[r, idx[e]] = 1 if unit else val[e]


@numba.njit(cache=True)
def population_counts(ptr, idx, T, B, n_classes, population):
    """Spikes per sample and class, (B, n_classes) int64, from compressed rows of
    output spikes: neuron i counts for class i // population."""
    counts = np.zeros((B, n_classes), dtype=np.int64)
    for t in range(T):
        for b in range(B):
            r = t * B + b
            for e in range(ptr[r], ptr[r + 1]):
                counts[b, idx[e] // population] += 1
    return counts


@numba.njit(cache=True)
def population_rates(ptr, idx, T, B, n_classes, population, like):
    """Rates (B, n_classes) in the dtype of ``like`` from compressed rows of output
    spikes: each ``population_counts`` count over T * population, divided in float64
    and rounded once to the dtype (what NumPy's ``true_divide`` of the counts, held
    exactly in the dtype, by an integer count does; ``engines.event.SpikesPlan.rates``)."""
    counts = population_counts(ptr, idx, T, B, n_classes, population)
    rates = np.empty((B, n_classes), dtype=like.dtype)
    total = float(T * population)
    for b in range(B):
        for c in range(n_classes):
            rates[b, c] = float(counts[b, c]) / total
    return rates


@numba.njit(cache=True)
def _push_row(row, first, stop, in_idx, in_val, unit_values, weight_t):
    """(L1) for one row: the sum of the rows of W.T of its events first..stop-1 (zero
    without events). Called right before the row's neurons run, so they read it from L1."""
    N = row.shape[0]
    zero = row.dtype.type(0)
    if stop == first:
        row[:] = zero
        return
    # The first row is added to 0 as it is copied (the same sums as zeroing the row and
    # adding every row: one pass fewer over the currents).
    column = weight_t[in_idx[first]]
    if unit_values:
        for i in range(N):
            row[i] = zero + column[i]
    else:
        value = in_val[first]
        for i in range(N):
            row[i] = zero + column[i] * value
    for e in range(first + 1, stop):
        column = weight_t[in_idx[e]]
        if unit_values:
            for i in range(N):
                row[i] += column[i]
        else:
            value = in_val[e]
            for i in range(N):
                row[i] += column[i] * value


@numba.njit(cache=True)
def _gather_rows(current, r0, r1, in_ptr, in_idx, in_val, unit_values, weight, zero_empty):
    """(L1) for rows r0..r1-1 from W itself, without a transposed copy of all of W.

    A strided column W[:, j] touches one cache line per target neuron, spread over the
    whole matrix. Here W is taken eight rows (neurons) at a time: the columns that the
    chunk's events use are copied, front to back (a stream the hardware prefetches),
    into a small (columns, 8) block that stays in L1; then each event adds one
    contiguous 8-vector of it into eight sums in registers. The same products, added in
    the same order (event by event, from 0), as ``_push_row``: bit-identical. Rows
    without events are skipped, or zeroed when ``zero_empty`` (a bias makes them inputs).
    """
    N, n_in = weight.shape
    zero = current.dtype.type(0)          # sums in the storage dtype, as in _push_row
    first_event, stop_event = in_ptr[r0], in_ptr[r1]
    active = np.empty(r1 - r0, dtype=np.int64)
    n_active = 0
    for r in range(r0, r1):
        if in_ptr[r + 1] > in_ptr[r] or zero_empty:
            active[n_active] = r
            n_active += 1
    # The columns in use, in increasing order, and each event's position among them.
    position = np.full(n_in, -1, dtype=np.int64)
    for e in range(first_event, stop_event):
        position[in_idx[e]] = 0
    used = np.empty(n_in, dtype=np.int64)
    n_used = 0
    for j in range(n_in):
        if position[j] == 0:
            position[j] = n_used
            used[n_used] = j
            n_used += 1
    slot = np.empty(stop_event - first_event, dtype=np.int64)
    for e in range(first_event, stop_event):
        slot[e - first_event] = position[in_idx[e]]
    block = np.empty((n_used, 8), dtype=weight.dtype)
    full = N - N % 8
    for i0 in range(0, full, 8):
        w0, w1, w2, w3 = weight[i0], weight[i0 + 1], weight[i0 + 2], weight[i0 + 3]
        w4, w5, w6, w7 = weight[i0 + 4], weight[i0 + 5], weight[i0 + 6], weight[i0 + 7]
        for u in range(n_used):                       # block[u] = W[i0:i0 + 8, used[u]]
            j = used[u]
            block[u, 0], block[u, 1], block[u, 2], block[u, 3] = w0[j], w1[j], w2[j], w3[j]
            block[u, 4], block[u, 5], block[u, 6], block[u, 7] = w4[j], w5[j], w6[j], w7[j]
        for a in range(n_active):
            r = active[a]
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
            if unit_values:
                for e in range(in_ptr[r], in_ptr[r + 1]):
                    u = slot[e - first_event]
                    a0 += block[u, 0]
                    a1 += block[u, 1]
                    a2 += block[u, 2]
                    a3 += block[u, 3]
                    a4 += block[u, 4]
                    a5 += block[u, 5]
                    a6 += block[u, 6]
                    a7 += block[u, 7]
            else:
                for e in range(in_ptr[r], in_ptr[r + 1]):
                    u, value = slot[e - first_event], in_val[e]
                    a0 += block[u, 0] * value
                    a1 += block[u, 1] * value
                    a2 += block[u, 2] * value
                    a3 += block[u, 3] * value
                    a4 += block[u, 4] * value
                    a5 += block[u, 5] * value
                    a6 += block[u, 6] * value
                    a7 += block[u, 7] * value
            row = current[r - r0]
            row[i0], row[i0 + 1], row[i0 + 2], row[i0 + 3] = a0, a1, a2, a3
            row[i0 + 4], row[i0 + 5], row[i0 + 6], row[i0 + 7] = a4, a5, a6, a7
    for i in range(full, N):                          # the last N % 8 neurons
        w = weight[i]
        for a in range(n_active):
            r = active[a]
            acc = zero
            for e in range(in_ptr[r], in_ptr[r + 1]):
                acc += w[in_idx[e]] if unit_values else w[in_idx[e]] * in_val[e]
            current[r - r0, i] = acc


@numba.njit(cache=True)
def _direct_rows(current, r0, r1, in_ptr, in_idx, in_val, unit_values, weight, zero_empty):
    """(L1) for rows r0..r1-1 from W itself, reading each event's weights where they lie.

    Eight rows of W (eight neurons) at a time; for each row with events, each event adds
    W[i0:i0 + 8, j] into eight sums in registers. No copy and no column bookkeeping:
    the cheapest way when few events share a column and W stays in cache between calls
    (``_gather_rows`` reads W front to back instead, which the hardware prefetches
    better when W has been evicted). The same products, added in the same order (event
    by event, from 0), as ``_gather_rows`` and ``_push_row``: bit-identical.
    """
    N = weight.shape[0]
    zero = current.dtype.type(0)
    full = N - N % 8
    for i0 in range(0, full, 8):
        w0, w1, w2, w3 = weight[i0], weight[i0 + 1], weight[i0 + 2], weight[i0 + 3]
        w4, w5, w6, w7 = weight[i0 + 4], weight[i0 + 5], weight[i0 + 6], weight[i0 + 7]
        for r in range(r0, r1):
            first, stop = in_ptr[r], in_ptr[r + 1]
            if stop == first and not zero_empty:
                continue
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
            if unit_values:
                for e in range(first, stop):
                    j = in_idx[e]
                    a0 += w0[j]
                    a1 += w1[j]
                    a2 += w2[j]
                    a3 += w3[j]
                    a4 += w4[j]
                    a5 += w5[j]
                    a6 += w6[j]
                    a7 += w7[j]
            else:
                for e in range(first, stop):
                    j, value = in_idx[e], in_val[e]
                    a0 += w0[j] * value
                    a1 += w1[j] * value
                    a2 += w2[j] * value
                    a3 += w3[j] * value
                    a4 += w4[j] * value
                    a5 += w5[j] * value
                    a6 += w6[j] * value
                    a7 += w7[j] * value
            row = current[r - r0]
            row[i0], row[i0 + 1], row[i0 + 2], row[i0 + 3] = a0, a1, a2, a3
            row[i0 + 4], row[i0 + 5], row[i0 + 6], row[i0 + 7] = a4, a5, a6, a7
    for i in range(full, N):                          # the last N % 8 neurons
        w = weight[i]
        for r in range(r0, r1):
            first, stop = in_ptr[r], in_ptr[r + 1]
            if stop == first and not zero_empty:
                continue
            acc = zero
            for e in range(first, stop):
                acc += w[in_idx[e]] if unit_values else w[in_idx[e]] * in_val[e]
            current[r - r0, i] = acc


CROSSING, SUPPORT, EVERYTHING = 0, 1, 2


@numba.njit(cache=True)
def visit_fence(theta, visit, half_width, eps):
    """Per neuron, the value its next silent membrane u must reach (u >= fence) for
    the neuron to be visited at a step without input (docs/event_engine.md).

    CROSSING: theta itself (u >= theta fires) where theta > 0. SUPPORT: theta -
    width/2 minus a rounding margin of 16 eps (|theta| + width/2), so that a membrane
    decaying into the support of a rectangular surrogate is visited and kept.
    EVERYTHING, and theta <= 0 in every mode: -inf, every neuron at every step (a
    membrane decaying up towards 0 reaches theta <= 0 after a number of silent steps
    a one-step look-ahead cannot see; with SUPPORT, a support reaching below 0 holds
    every decaying membrane).
    """
    N = theta.shape[0]
    fence = np.empty(N, dtype=np.float64)
    for i in range(N):
        th = float(theta[i])
        if visit == CROSSING:
            fence[i] = th
        elif visit == SUPPORT:
            fence[i] = th - half_width - 16.0 * eps * (abs(th) + half_width)
        else:
            fence[i] = -np.inf
        if th <= 0.0 or fence[i] < 0.0:
            fence[i] = -np.inf
    return fence


@numba.njit(cache=True)
def _input_row_membranes(membrane, row, bias, has_bias, v_b, anchor_b, full_at, late, t,
                         theta, tau, tau_pow, hard, fence, keep, half_width):
    """(L1)-(L4) for every neuron of a sample at a step with input (vectorizable).

    Writes m_t into ``membrane`` and v_t into ``v_b``; returns whether any neuron needs a
    closer look (a spike, a kept membrane, or a candidate for the next step), so that
    the common row with none of these costs one pass. Lazy leak: a neuron's anchor is
    max(``anchor_b[i]``, ``full_at``), where ``full_at`` is the last step at which every
    neuron of the sample was visited; after a visit at t - 1, tau^0 v = v exactly.
    ``late``: some neuron spiked without input after ``full_at`` (its own anchor is
    later); otherwise every neuron's anchor is ``full_at`` and the leak is one factor.
    """
    N = membrane.shape[0]
    # A flag OR-ed over the row, not a count: an OR of comparison masks stays in vector
    # registers, where a count widened every lane to int64 (~15 % of the step).
    hits = False
    fast = full_at == t - 1
    if not late and not has_bias and keep != 1:
        # The common case, as branch-free loops that vectorize (same arithmetic: the
        # factor is tau^0 = 1 after a step with input, exactly).
        # Everything in the storage dtype: s in {0, 1} as a float64 (``_heaviside``)
        # made float32 rows run mixed-width, 2.7x slower; the values are the same (one
        # rounding of (1 - s) m or m - s theta), and tau * v is the product the second
        # pass and the candidates test.
        factor = tau_pow[t - 1 - full_at]                                    # lazy leak
        one, zero = membrane.dtype.type(1), membrane.dtype.type(0)
        if hard:
            for i in range(N):
                m = tau * (factor * v_b[i]) + row[i]                         # (L2)
                membrane[i] = m
                spike = m - theta[i] >= zero                                 # (L3) H(0) = 1
                s = one if spike else zero
                v = (one - s) * m                                            # (L4h)
                v_b[i] = v
                hits |= spike | (tau * v >= fence[i])
        else:
            for i in range(N):
                m = tau * (factor * v_b[i]) + row[i]                         # (L2)
                membrane[i] = m
                spike = m - theta[i] >= zero                                 # (L3) H(0) = 1
                s = one if spike else zero
                v = m - s * theta[i]                                         # (L4s)
                v_b[i] = v
                hits |= spike | (tau * v >= fence[i])
        return hits
    for i in range(N):
        current = row[i] + bias[i] if has_bias else row[i]                   # (L1)
        if fast:
            v_prev = v_b[i]
        else:
            v_prev = tau_pow[t - 1 - max(anchor_b[i], full_at)] * v_b[i]     # lazy leak
        m = tau * v_prev + current                                           # (L2)
        membrane[i] = m
        s = _heaviside(m - theta[i])                                         # (L3)
        if hard:
            v = (1 - s) * m                                                  # (L4h)
        else:
            v = m - s * theta[i]                                             # (L4s)
        v_b[i] = v
        hits |= (s != 0) | (tau * v >= fence[i]) | ((keep == 1) & (abs(m - theta[i]) < half_width))
    return hits


@numba.njit(cache=True)
def dense_layer_forward(T, B, in_ptr, in_idx, in_val, unit_values, weight, weight_t,
                        transposed, bias, has_bias, theta, visit, keep, half_width, tau,
                        tau_pow, hard, record, rec_current, rec_membrane, rec_spikes,
                        current, eps, direct_ratio, m_dense):
    """(L1)-(L4) of one Dense layer, event-driven. Returns the compressed spike rows
    ``(spk_ptr, spk_idx)`` and kept membranes ``(m_ptr, m_idx, m_val)``.

    State per neuron: its anchor a, the last step at which it received input or
    spiked, and v_a = ``v_anchor``, its membrane after that step. In between only the
    leak acted, so at a later step t, v_{t-1} = tau^(t-1-a) v_a (lazy leak), followed
    by the ordinary step (L2)-(L4). For t - 1 = a that is exactly the clock engine's
    arithmetic, and the numbers never depend on which silent steps were visited.
    a = max(``anchor[b, i]``, ``full_at[b]``): a step with input visits every neuron of
    the sample, so it moves one number, not N.

    A neuron is visited at step t when its sample receives input (an event or a bias
    reaches every neuron of a Dense layer) or when it is a *candidate*: without input
    its next membrane u = tau^(t+1-a) v_a is >= its ``fence`` (``visit_fence``), which
    says what must not be missed (docs/event_engine.md): ``visit`` = CROSSING (u >=
    theta can fire), SUPPORT (also |u - theta| < width/2, where sigma' != 0) or
    EVERYTHING (every neuron at every step).
    ``keep``: 0 no membrane, 1 m where |m - theta| < half_width (compressed rows), 2
    every m (written into ``m_dense``, T * B * N entries, returned as ``m_val``;
    ``visit`` must be EVERYTHING). ``record``
    (EVERYTHING too) also writes dense I, m and s. ``current`` is scratch space of shape (steps * B, N)
    for the currents of a chunk of ``steps`` steps (contents undefined on entry);
    ``eps`` the machine epsilon of the storage dtype (``visit_fence``);
    ``direct_ratio``: a chunk with at most that many events per input neuron reads W
    where the events point (``_direct_rows``), a busier one gathers (``_gather_rows``).

    Work is done a chunk of steps at a time: first the currents (L1) of every row with
    input (``_push_row`` on W.T when ``transposed``, row by row, else ``_direct_rows`` or
    ``_gather_rows`` on W), then
    one vectorizable pass over the neurons of each such row (``_input_row_membranes``),
    a second one only where it found something, and the candidates of the other rows.
    """
    N = theta.shape[0]
    dtype = tau_pow.dtype
    fence = visit_fence(theta, visit, half_width, eps)
    # When every neuron is visited at every step (EVERYTHING, or no finite fence left)
    # no candidate lists are kept: a row with input then looks only for spikes and kept
    # membranes (``hit_fence`` = +inf), and a row without input visits all N in order.
    every = True
    for i in range(N):
        if fence[i] != -np.inf:
            every = False
            break
    hit_fence = np.full(N, np.inf) if every else fence
    # The same fences in the storage dtype, rounded down, for the vectorized first pass
    # of a row with input (a float64 compare there made float32 rows mixed-width): it
    # can only report more hits, and a hit just sends the row to the exact second pass.
    row_fence = np.empty(N, dtype=dtype)
    for i in range(N):
        f = dtype.type(hit_fence[i])
        if f > hit_fence[i]:
            f = np.nextafter(f, dtype.type(-np.inf))
        row_fence[i] = f
    v_anchor = np.zeros((B, N), dtype=dtype)                          # v_0 = 0
    anchor = np.full((B, N), -1, dtype=np.int64)
    full_at = np.full(B, -1, dtype=np.int64)
    late = np.zeros(B, dtype=np.bool_)                # an anchor later than full_at[b]
    candidates = np.empty((2, B, N), dtype=np.int32)
    n_candidates = np.zeros((2, B), dtype=np.int64)
    for b in range(B):                                # at t = 0 the silent membrane is 0
        for i in range(N):
            if 0.0 >= fence[i]:
                candidates[0, b, n_candidates[0, b]] = i
                n_candidates[0, b] += 1
    steps_per_chunk = current.shape[0] // B
    membrane = np.empty(N, dtype=dtype)
    spk_ptr = np.zeros(T * B + 1, dtype=np.int64)
    spk_idx = np.empty(max(16, in_ptr[T * B] // 4), dtype=np.int32)
    m_ptr = np.zeros(T * B + 1, dtype=np.int64)
    m_idx = np.empty(max(16, in_ptr[T * B]) if keep == 1 else 0, dtype=np.int32)
    if keep == 2:
        m_val = m_dense
    else:
        m_val = np.empty(max(16, in_ptr[T * B]) if keep == 1 else 0, dtype=dtype)
    n_spikes = 0
    n_kept = 0
    for t0 in range(0, T, steps_per_chunk):
        t1 = min(T, t0 + steps_per_chunk)
        r0, r1 = t0 * B, t1 * B
        if in_ptr[r1] > in_ptr[r0] or has_bias:                          # (L1) I_t
            if transposed:
                pass                        # row by row below (``_push_row``)
            elif in_ptr[r1] - in_ptr[r0] <= direct_ratio * weight.shape[1]:
                _direct_rows(current, r0, r1, in_ptr, in_idx, in_val, unit_values, weight,
                             has_bias)
            else:
                _gather_rows(current, r0, r1, in_ptr, in_idx, in_val, unit_values, weight,
                             has_bias)
        for t in range(t0, t1):
            now, after = t % 2, (t + 1) % 2
            for b in range(B):
                r = t * B + b
                if n_spikes + N > spk_idx.shape[0]:
                    spk_idx = _grow(spk_idx, n_spikes + N)
                if keep == 1 and n_kept + N > m_idx.shape[0]:
                    m_idx = _grow(m_idx, n_kept + N)
                    m_val = _grow(m_val, n_kept + N)
                v_b, anchor_b, theirs = v_anchor[b], anchor[b], candidates[after, b]
                n_next = 0
                if in_ptr[r + 1] > in_ptr[r] or has_bias:
                    # Every neuron of the sample gets input.
                    if transposed:
                        # One row per sample, reused at every step: it stays in L1 (a
                        # row per step walked through the whole scratch array).
                        row = current[b]
                        _push_row(row, in_ptr[r], in_ptr[r + 1], in_idx, in_val, unit_values,
                                  weight_t)
                    else:
                        row = current[r - r0]
                    hits = _input_row_membranes(membrane, row, bias, has_bias, v_b, anchor_b,
                                                full_at[b], late[b], t, theta, tau, tau_pow,
                                                hard, row_fence, keep, half_width)
                    full_at[b] = t
                    late[b] = False
                    if hits:
                        for i in range(N):
                            m = membrane[i]
                            if m - theta[i] >= 0:                            # (L3)
                                spk_idx[n_spikes] = i
                                n_spikes += 1
                            if keep == 1 and abs(m - theta[i]) < half_width:  # sigma' != 0
                                m_idx[n_kept] = i
                                m_val[n_kept] = m
                                n_kept += 1
                            if tau * v_b[i] >= hit_fence[i]:   # next membrane, no input
                                theirs[n_next] = i
                                n_next += 1
                    if keep == 2:
                        m_val[r * N:(r + 1) * N] = membrane
                    if record:
                        for i in range(N):
                            m = membrane[i]
                            rec_current[t, b, i] = row[i] + bias[i] if has_bias else row[i]
                            rec_membrane[t, b, i] = m
                            rec_spikes[t, b, i] = _heaviside(m - theta[i])
                else:
                    # No input: only the candidates can cross or enter the support.
                    todo = candidates[now, b]
                    for c in range(N if every else n_candidates[now, b]):
                        i = c if every else todo[c]
                        a = max(anchor_b[i], full_at[b])
                        v_prev = tau_pow[t - 1 - a] * v_b[i]                 # lazy leak
                        m, s, v_new = _step_forward(0.0, v_prev, theta[i], tau, hard,
                                                    False, 0, 0.0)           # (L2)-(L4)
                        if s != 0:
                            spk_idx[n_spikes] = i
                            n_spikes += 1
                            v_b[i] = v_new                 # a spike moves the anchor
                            anchor_b[i] = a = t
                            late[b] = True
                        if keep == 1 and abs(m - theta[i]) < half_width:
                            m_idx[n_kept] = i
                            m_val[n_kept] = m
                            n_kept += 1
                        elif keep == 2:
                            m_val[r * N + i] = m
                        if record:
                            rec_membrane[t, b, i] = m
                            rec_spikes[t, b, i] = s
                        if not every and tau * (tau_pow[t - a] * v_b[i]) >= fence[i]:
                            theirs[n_next] = i
                            n_next += 1
                n_candidates[after, b] = n_next
                spk_ptr[r + 1] = n_spikes
                m_ptr[r + 1] = n_kept
    if keep == 2:
        n_kept = T * B * N
    return spk_ptr, spk_idx[:n_spikes], m_ptr, m_idx[:n_kept], m_val[:n_kept]


@numba.njit(cache=True)
def dense_layer_spikes(T, B, in_ptr, in_idx, in_val, unit_values, weight, weight_t, bias,
                       has_bias, theta, half_width, tau, tau_pow, hard, current, eps,
                       stepwise_ratio):
    """The spike rows ``(spk_ptr, spk_idx)`` of one Dense layer pushing rows of
    ``weight_t`` (what ``record="spikes"`` needs), and whether ``_stepwise_spikes``
    computed them: it does when at least ``stepwise_ratio`` of the T * B rows have
    input (every row with a bias; 0: always, inf: never); otherwise
    ``dense_layer_forward`` visiting CROSSING, keeping and recording nothing. The same
    spikes either way, bit for bit (``tests/test_event_stepwise.py``)."""
    rows_with_input = T * B
    if not has_bias:
        rows_with_input = 0
        for r in range(T * B):
            if in_ptr[r + 1] > in_ptr[r]:
                rows_with_input += 1
    if rows_with_input >= stepwise_ratio * (T * B):
        spk_ptr, spk_idx = _stepwise_spikes(T, B, in_ptr, in_idx, in_val, unit_values, weight_t,
                                            bias, has_bias, theta, half_width, tau, tau_pow,
                                            hard, current)
        return spk_ptr, spk_idx, True
    dtype = tau_pow.dtype
    empty3 = np.zeros((0, 0, 0), dtype=dtype)
    empty1 = np.zeros(0, dtype=dtype)
    spk_ptr, spk_idx, _, _, _ = dense_layer_forward(
        T, B, in_ptr, in_idx, in_val, unit_values, weight, weight_t, True, bias, has_bias,
        theta, CROSSING, 0, half_width, tau, tau_pow, hard, False, empty3, empty3, empty3,
        current, eps, 1.0, empty1)
    return spk_ptr, spk_idx, False


@numba.njit(cache=True)
def _stepwise_spikes(T, B, in_ptr, in_idx, in_val, unit_values, weight_t, bias, has_bias,
                     theta, half_width, tau, tau_pow, hard, current):
    """``dense_layer_forward``'s spikes (visit CROSSING, nothing kept or recorded) for
    input that reaches most steps: the same numbers, without the candidate lists.

    The same state (a sample's ``full_at``, a neuron's anchor and v_a, ``late``) and
    the same arithmetic as ``dense_layer_forward``. A row with input, right after one
    (``full_at`` = t - 1, so tau^0 = 1, and nothing ``late``), is one tight pass, the
    plain clock loop's (L2)-(L4) fused with the spike test; any other row with input
    is ``_input_row_membranes``. A row without input visits every neuron (no fences
    to keep up, so a row with input costs no candidate test): one vectorizable pass
    tests whether any lazily leaked membrane crosses, and only then the exact visit
    of ``dense_layer_forward``. Costs a pass per row without input where the
    candidate lists cost almost nothing: ``dense_layer_spikes`` picks.
    """
    N = theta.shape[0]
    dtype = tau_pow.dtype
    one, zero = dtype.type(1), dtype.type(0)
    no_fence = np.full(N, np.inf, dtype=dtype)     # _input_row_membranes: spikes only
    v_anchor = np.zeros((B, N), dtype=dtype)                          # v_0 = 0
    anchor = np.full((B, N), -1, dtype=np.int64)
    full_at = np.full(B, -1, dtype=np.int64)
    late = np.zeros(B, dtype=np.bool_)
    membrane = np.empty(N, dtype=dtype)
    spk_ptr = np.zeros(T * B + 1, dtype=np.int64)
    spk_idx = np.empty(max(16, in_ptr[T * B] // 4), dtype=np.int32)
    n_spikes = 0
    for t in range(T):
        for b in range(B):
            r = t * B + b
            if n_spikes + N > spk_idx.shape[0]:
                spk_idx = _grow(spk_idx, n_spikes + N)
            v_b, anchor_b = v_anchor[b], anchor[b]
            if in_ptr[r + 1] > in_ptr[r] or has_bias:
                row = current[b]
                _push_row(row, in_ptr[r], in_ptr[r + 1], in_idx, in_val, unit_values,
                          weight_t)                                          # (L1)
                if full_at[b] == t - 1 and not late[b] and not has_bias:
                    # dense_layer_forward's vectorized pass with tau^0 = 1 (exactly
                    # v), minus the fence; m stays in ``membrane`` for the spike list.
                    fired = False
                    if hard:
                        for i in range(N):
                            m = tau * v_b[i] + row[i]                        # (L2)
                            membrane[i] = m
                            spike = m - theta[i] >= zero                     # (L3) H(0) = 1
                            s = one if spike else zero
                            v_b[i] = (one - s) * m                           # (L4h)
                            fired |= spike
                    else:
                        for i in range(N):
                            m = tau * v_b[i] + row[i]                        # (L2)
                            membrane[i] = m
                            spike = m - theta[i] >= zero                     # (L3) H(0) = 1
                            s = one if spike else zero
                            v_b[i] = m - s * theta[i]                        # (L4s)
                            fired |= spike
                else:
                    fired = _input_row_membranes(membrane, row, bias, has_bias, v_b, anchor_b,
                                                 full_at[b], late[b], t, theta, tau, tau_pow,
                                                 hard, no_fence, 0, half_width)
                full_at[b] = t
                late[b] = False
                if fired:
                    for i in range(N):
                        if membrane[i] - theta[i] >= 0:                      # (L3)
                            spk_idx[n_spikes] = i
                            n_spikes += 1
            else:
                if not late[b]:
                    # Every anchor is full_at: one factor; a crossing is rare, look first.
                    factor = tau_pow[t - 1 - full_at[b]]                     # lazy leak
                    fired = False
                    for i in range(N):
                        fired |= tau * (factor * v_b[i]) - theta[i] >= zero   # (L2), (L3)
                else:
                    fired = True
                if fired:                                 # dense_layer_forward's visit
                    for i in range(N):
                        a = max(anchor_b[i], full_at[b])
                        v_prev = tau_pow[t - 1 - a] * v_b[i]                 # lazy leak
                        m, s, v_new = _step_forward(0.0, v_prev, theta[i], tau, hard,
                                                    False, 0, 0.0)           # (L2)-(L4)
                        if s != 0:
                            spk_idx[n_spikes] = i
                            n_spikes += 1
                            v_b[i] = v_new                 # a spike moves the anchor
                            anchor_b[i] = t
                            late[b] = True
            spk_ptr[r + 1] = n_spikes
    return spk_ptr, spk_idx[:n_spikes]


_ATAN, _SIGMOID = scalar.ATAN, scalar.SIGMOID


@numba.njit(cache=True, inline="always")
def _kept_row(d, theta_b, e_row, delta_next, m_row, spiking, theta, tau, hard, detach, kind,
              param, param2):
    """(B1)-(B3), (B5) for every neuron of a row whose membranes were all kept."""
    for i in range(d.shape[0]):
        delta_i, theta_term = _step_backward(
            e_row[i], delta_next[i], m_row[i], float(spiking[i]), theta[i], tau, hard,
            detach, kind, param, param2)                                 # (B1)-(B3)
        d[i] = delta_i
        theta_b[i] -= theta_term                                         # (B5)


@numba.njit(cache=True)
def dense_layer_backward(T, B, tau, hard, detach, kind, param, param2, theta, all_kept, e_dense,
                         e_kept, m_ptr, m_idx, m_val, spk_ptr, spk_idx, in_ptr, in_idx, in_val,
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
                # One loop per surrogate code, so that the compiler sees a constant
                # code and can vectorize the row (same arithmetic).
                e_row, m_row = e_dense[t, b], m_val[r * N:(r + 1) * N]
                if kind == _ATAN:
                    _kept_row(d, theta_b, e_row, delta_next, m_row, spiking, theta, tau,
                              hard, detach, _ATAN, param, param2)
                elif kind == _SIGMOID:
                    _kept_row(d, theta_b, e_row, delta_next, m_row, spiking, theta, tau,
                              hard, detach, _SIGMOID, param, param2)
                else:
                    _kept_row(d, theta_b, e_row, delta_next, m_row, spiking, theta, tau,
                              hard, detach, kind, param, param2)
                for e in range(spk_ptr[r], spk_ptr[r + 1]):
                    spiking[spk_idx[e]] = 0
            else:
                for i in range(N):
                    d[i] = tau * delta_next[i]         # (B1)-(B3) where sigma' = 0, s = 0
                for p in range(m_ptr[r], m_ptr[r + 1]):
                    i = m_idx[p]
                    delta_i, theta_term = _step_backward(
                        e_kept[p], delta_next[i], m_val[p], float(spiking[i]), theta[i],
                        tau, hard, detach, kind, param, param2)          # (B1)-(B3)
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
