"""The ``"numba"`` backend: fused CPU kernels for the clock engine.

One kernel call runs a layer's whole LIF recursion (L2)-(L4) through time, another its
whole backward recursion (B1)-(B5); both are parallel over batch x neurons (``prange``
over independent lanes only, fixed-order reductions, so parallel equals serial
bitwise). The per-neuron math is ``stlsim.kernels.scalar``, shared with the CUDA
kernels. Matrix products stay with BLAS (NumPy), batched over time.

Two entry points:

* ``lif_forward`` / ``lif_backward``: the backend protocol of ``stlsim.engines``, same
  semantics as the NumPy reference (``engines.clock.lif_forward``,
  ``grad.bptt.lif_backward``); used for any network (conv, pooling, ...).
* ``fused_loss_and_grad``: a whole training step for Dense-only networks. Its
  intermediates (currents, membranes, spikes, adjoints) live in a per-thread workspace
  reused across calls (fresh multi-MB arrays cost page faults on every step); the
  membrane overwrites the currents in place, delta overwrites e in place, and each
  layer's products are single 2-D GEMMs over all T*B rows written into that workspace.
  Only the loss and the gradients leave it.

Threading: the parallel kernels use Numba's ``workqueue`` layer unless
``NUMBA_THREADING_LAYER`` says otherwise (the OpenMP layer's spinning idle threads
starved BLAS, 2-4x slower steps); ``stlsim.set_num_threads`` or ``STLSIM_NUM_THREADS``
set the thread count. Details and measurements: ``docs/performance.md``.
"""
from __future__ import annotations

import collections
import hashlib
import os
import pathlib

import numba
import numpy as np

from .. import _workspace as workspace
from . import scalar
from ._jit import register_scalar
from ._jit import surrogate_spec as _surrogate_spec

__all__ = ["lif_forward", "lif_backward", "fused_loss_and_grad", "CALLS", "NAME",
           "clear_workspace"]

NAME = "numba"

# How often each fast path ran (tests use it to prove the kernels, not a fallback, ran).
CALLS = collections.Counter()


# --- set-up: threading layer, thread count, cache hygiene ----------------------------------

def _configure_threading():
    if "NUMBA_THREADING_LAYER" not in os.environ:
        # workqueue threads sleep between launches; OpenMP's spin and starve BLAS.
        numba.config.THREADING_LAYER = "workqueue"


def _apply_num_threads() -> int:
    from . import _requested_threads, _threads_from_env
    n = _requested_threads if _requested_threads is not None else _threads_from_env()
    if n is not None:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return numba.get_num_threads()


def _drop_stale_cache():
    """Numba's cache tracks this file only; drop it when ``scalar.py`` changed (best effort)."""
    here = pathlib.Path(__file__).parent
    cache = here / "__pycache__"
    try:
        digest = hashlib.sha256((here / "scalar.py").read_bytes()).hexdigest()
        stamp = cache / "scalar.sha256"
        if stamp.exists() and stamp.read_text() == digest:
            return
        cache.mkdir(exist_ok=True)
        for path in list(cache.glob("cpu.*.nbi")) + list(cache.glob("cpu.*.nbc")):
            path.unlink()
        stamp.write_text(digest)
    except OSError:
        pass


_configure_threading()
_drop_stale_cache()
register_scalar()
_apply_num_threads()

_step_forward = scalar.lif_forward_step
_step_backward = scalar.lif_backward_step


# --- kernels ------------------------------------------------------------------------------
# A lane is one sample b and a block of neurons [lo, hi); lanes are independent, so
# ``prange`` over them is race-free and the result does not depend on the thread count.
# Arrays are (T, B, N); v, delta_next, theta_partial are (B, N) state in the storage dtype,
# so every step rounds exactly like the NumPy reference.
#
# Three things keep the inner loops vectorised (measured: 5-10x slower otherwise):
# * the surrogate code ``kind`` is a compile-time constant (one kernel per surrogate;
#   hard/smooth/detach stay arguments: LLVM unswitches those branches, not the 4-way one);
# * ``error_model="numpy"``: a division by zero gives inf/nan like NumPy instead of a
#   per-element ZeroDivisionError check;
# * inner loops run over 1-D slices from 0 (an index Numba can prove non-negative needs
#   no wraparound branch).

def _build_kernels(kind, parallel):
    """The forward and backward kernels for surrogate code ``kind``."""

    def forward(n_blocks, block, current, membrane, spikes, spikes_compact, v, theta, tau, hard,
                smooth, param):
        # ``spikes_compact``: a uint8 copy of the spikes (fused path), or a 0-size array.
        compact = spikes_compact.size > 0
        for lane in numba.prange(current.shape[1] * n_blocks):
            b = lane // n_blocks
            lo = (lane % n_blocks) * block
            hi = min(lo + block, current.shape[2])
            v_b = v[b, lo:hi]
            theta_b = theta[lo:hi]
            for i in range(v_b.shape[0]):
                v_b[i] = 0                                                # v_0 = 0
            for t in range(current.shape[0]):
                current_t = current[t, b, lo:hi]
                membrane_t = membrane[t, b, lo:hi]
                spikes_t = spikes[t, b, lo:hi]
                compact_t = spikes_compact[t, b, lo:hi] if compact else spikes_compact[0, 0, 0:0]
                for i in range(v_b.shape[0]):
                    m, s, v_new = _step_forward(current_t[i], v_b[i], theta_b[i], tau, hard,
                                                smooth, kind, param)      # (L2)-(L4)
                    membrane_t[i] = m
                    spikes_t[i] = s
                    if compact:
                        compact_t[i] = s
                    v_b[i] = v_new

    def backward(n_blocks, block, sum_blocks, sum_block, grad_spikes, membrane, spikes, theta,
                 grad_membrane, delta_next, theta_partial, grad_theta, tau, hard, detach, param):
        for lane in numba.prange(grad_spikes.shape[1] * n_blocks):
            b = lane // n_blocks
            lo = (lane % n_blocks) * block
            hi = min(lo + block, grad_spikes.shape[2])
            delta_next_b = delta_next[b, lo:hi]
            theta_partial_b = theta_partial[b, lo:hi]
            theta_b = theta[lo:hi]
            for i in range(theta_b.shape[0]):
                delta_next_b[i] = 0                                       # delta_{T+1} = 0
                theta_partial_b[i] = 0
            for t in range(grad_spikes.shape[0] - 1, -1, -1):
                e_t = grad_spikes[t, b, lo:hi]
                membrane_t = membrane[t, b, lo:hi]
                spikes_t = spikes[t, b, lo:hi]
                delta_t = grad_membrane[t, b, lo:hi]
                for i in range(theta_b.shape[0]):
                    delta, theta_term = _step_backward(e_t[i], delta_next_b[i], membrane_t[i],
                                                       spikes_t[i], theta_b[i], tau, hard,
                                                       detach, kind, param)  # (B1)-(B3)
                    delta_t[i] = delta
                    delta_next_b[i] = delta
                    theta_partial_b[i] -= theta_term                      # (B5) over t
        for lane in numba.prange(sum_blocks):                             # (B5) over b
            lo = lane * sum_block
            grad_theta_b = grad_theta[lo:min(lo + sum_block, grad_theta.shape[0])]
            for i in range(grad_theta_b.shape[0]):
                grad_theta_b[i] = 0
            for b in range(theta_partial.shape[0]):                       # fixed order
                row = theta_partial[b, lo:lo + grad_theta_b.shape[0]]
                for i in range(grad_theta_b.shape[0]):
                    grad_theta_b[i] += row[i]

    kernels = []
    for function in (forward, backward):
        # Numba names cache files after __qualname__; keep the 16 variants apart.
        function.__qualname__ = f"{function.__name__}_{kind}_{'parallel' if parallel else 'serial'}"
        kernels.append(numba.njit(parallel=parallel, cache=True, error_model="numpy")(function))
    return tuple(kernels)


# KERNELS[mode][kind] = (forward, backward); "serial" exists to test parallel == serial.
KERNELS = {mode: {kind: _build_kernels(kind, mode == "parallel")
                  for kind in scalar.SURROGATE_CODES.values()}
           for mode in ("parallel", "serial")}
_mode = "parallel"


# --- wrappers: coerce and allocate, then call a kernel --------------------------------------

def _blocking(batch, n_neurons):
    """Neurons per lane: whole rows when the batch alone feeds every thread."""
    threads = numba.get_num_threads() if _mode == "parallel" else 1
    if batch >= 4 * threads:
        return 1, n_neurons
    block = max(16, -(-n_neurons // (4 * threads)))
    block = -(-block // 16) * 16
    return -(-n_neurons // block), block


def _theta_per_neuron(theta, shape, dtype):
    return np.ascontiguousarray(np.broadcast_to(theta, shape), dtype=dtype).reshape(-1)


_NO_COMPACT = np.zeros((1, 1, 0), dtype=np.uint8)


def _run_forward(current, membrane, spikes, v, theta, neuron, spec, smooth, compact=None):
    T, B, N = current.shape
    n_blocks, block = _blocking(B, N)
    kind, param = spec
    compact = _NO_COMPACT if compact is None else compact
    KERNELS[_mode][kind][0](n_blocks, block, current, membrane, spikes, compact, v, theta,
                            current.dtype.type(neuron.tau), neuron.reset == "hard",
                            bool(smooth), param)


def _run_backward(grad_spikes, membrane, spikes, theta, grad_membrane, delta_next,
                  theta_partial, grad_theta, neuron, spec):
    T, B, N = grad_spikes.shape
    n_blocks, block = _blocking(B, N)
    sum_blocks, sum_block = _blocking(1, N)      # the reduction over b: lanes of neurons
    kind, param = spec
    KERNELS[_mode][kind][1](n_blocks, block, sum_blocks, sum_block, grad_spikes, membrane,
                            spikes, theta, grad_membrane, delta_next, theta_partial, grad_theta,
                            grad_spikes.dtype.type(neuron.tau), neuron.reset == "hard",
                            neuron.detach_reset, param)


def lif_forward(current, theta, neuron, surrogate, smooth=False):
    """Numba twin of ``engines.clock.lif_forward``: returns ``(spikes, membrane)``."""
    spec = _surrogate_spec(surrogate)
    if spec is None:
        from ..engines.clock import lif_forward as reference
        return reference(current, theta, neuron, surrogate, smooth)
    CALLS["lif_forward"] += 1
    shape = current.shape
    T, B = shape[:2]
    flat = np.ascontiguousarray(current).reshape(T, B, -1)
    membrane = np.empty_like(flat)
    spikes = np.empty_like(flat)
    v = np.empty(flat.shape[1:], dtype=flat.dtype)
    _run_forward(flat, membrane, spikes, v, _theta_per_neuron(theta, shape[2:], flat.dtype),
                 neuron, spec, smooth)
    return spikes.reshape(shape), membrane.reshape(shape)


def lif_backward(grad_spikes, membrane, spikes, theta, neuron, surrogate):
    """Numba twin of ``grad.bptt.lif_backward``: returns ``(grad_membrane, grad_theta)``."""
    spec = _surrogate_spec(surrogate)
    if spec is None:
        from ..grad.bptt import lif_backward as reference
        return reference(grad_spikes, membrane, spikes, theta, neuron, surrogate)
    CALLS["lif_backward"] += 1
    shape = grad_spikes.shape
    T, B = shape[:2]
    dtype = grad_spikes.dtype
    flat = [np.ascontiguousarray(a).reshape(T, B, -1) for a in (grad_spikes, membrane, spikes)]
    N = flat[0].shape[2]
    grad_membrane = np.empty_like(flat[0])
    grad_theta = np.empty(N, dtype=dtype)
    _run_backward(flat[0], flat[1], flat[2], _theta_per_neuron(theta, shape[2:], dtype),
                  grad_membrane, np.empty((B, N), dtype), np.empty((B, N), dtype), grad_theta,
                  neuron, spec)
    return grad_membrane.reshape(shape), grad_theta.reshape(shape[2:])


# --- the fused training step for Dense-only networks ------------------------------------------

_buffer = workspace.buffer          # a reusable array from this thread's workspace


def clear_workspace():
    """Free this thread's reusable buffers (they are rebuilt on the next call)."""
    workspace.clear()


def _scratch(name, rows, cols, size, dtype):
    """A (rows, cols) C-contiguous view of a shared flat workspace buffer of ``size``."""
    return _buffer(name, (size,), dtype)[:rows * cols].reshape(rows, cols)


def fused_loss_and_grad(layers, params_per_layer, x, labels, neuron, surrogate, population,
                        loss, smooth=False):
    """Loss and per-layer gradients of a Dense-only network in one fused pass.

    Same results as ``Network.loss_and_grad`` on the NumPy reference (within the
    documented tolerances). Returns ``(loss, grads_per_layer, rates)``, or None when the network
    is not one this path handles (a layer other than ``Dense``, an unknown surrogate);
    the caller then falls back to the per-layer path. Arguments are validated by the
    caller.

    Memory, all from the reusable workspace: per layer m_t (dtype) and s_t (uint8; the
    dtype in smooth mode, where spikes are not 0/1) of every step, what the backward
    needs; plus two scratch buffers of the largest layer's size (T*B rows): A holds the
    currents, then the deltas; B holds the float spikes that the next GEMM reads, then the
    adjoints e_t. Kernels never write an array they read (in-place variants were 8-30x
    slower: the loops no longer vectorise).
    """
    from ..layers.dense import Dense
    from ..readout import loss_from_rates, population_rates, rates_backward
    spec = _surrogate_spec(surrogate)
    if spec is None or not all(type(layer) is Dense for layer in layers):
        return None
    CALLS["fused_loss_and_grad"] += 1
    T, B = x.shape[:2]
    rows = T * B
    dtype = x.dtype
    size = rows * max(layer.out_features for layer in layers)
    membranes, stored_spikes, thetas = [], [], []
    x_rows = np.ascontiguousarray(x).reshape(rows, -1)
    h = x_rows                                                            # the GEMM operand
    for i, (layer, params) in enumerate(zip(layers, params_per_layer)):
        n_out = layer.out_features
        current = _scratch("a", rows, n_out, size, dtype)
        np.matmul(h, params["weight"].T, out=current)                    # (L1), one GEMM
        if layer.bias:
            current += params["bias"]
        membrane = _buffer(("m", i), (rows, n_out), dtype)
        if smooth:
            spikes = stored = _buffer(("s", i), (rows, n_out), dtype)
            compact = None
        else:
            spikes = _scratch("b", rows, n_out, size, dtype)             # h is consumed
            stored = _buffer(("s8", i), (rows, n_out), np.uint8)
            compact = stored.reshape(T, B, n_out)
        theta = _theta_per_neuron(layer.expand_theta(params["theta"]), (n_out,), dtype)
        _run_forward(current.reshape(T, B, n_out), membrane.reshape(T, B, n_out),
                     spikes.reshape(T, B, n_out), _buffer(("v", i), (B, n_out), dtype), theta,
                     neuron, spec, smooth, compact)                       # (L2)-(L4)
        membranes.append(membrane)
        stored_spikes.append(stored)
        thetas.append(theta)
        h = spikes
    rates = population_rates(h.reshape(T, B, -1), population)
    value, grad_rates = loss_from_rates(rates, labels, loss)
    grad = rates_backward(grad_rates, T, population).reshape(rows, -1)  # e^L_t
    grads = [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        layer, params = layers[i], params_per_layer[i]
        n_out = layer.out_features
        grad_theta = np.empty(n_out, dtype=dtype)
        delta = _scratch("a", rows, n_out, size, dtype)
        _run_backward(grad.reshape(T, B, n_out), membranes[i].reshape(T, B, n_out),
                      stored_spikes[i].reshape(T, B, n_out), thetas[i], delta.reshape(T, B, n_out),
                      _buffer(("dn", i), (B, n_out), dtype), _buffer(("tp", i), (B, n_out), dtype),
                      grad_theta, neuron, spec)                           # (B1)-(B5)
        if i == 0:
            h = x_rows
        elif smooth:
            h = stored_spikes[i - 1]
        else:
            h = _scratch("b", rows, layer.in_features, size, dtype)     # e is consumed
            h[...] = stored_spikes[i - 1]                                 # uint8 -> dtype
        local = {"weight": delta.T @ h}                                  # (B4), one GEMM
        if layer.bias:
            local["bias"] = delta.sum(axis=0)
        local["theta"] = layer.reduce_theta(grad_theta)                   # (B5) shared sum
        grads[i] = local
        if i > 0:
            grad = _scratch("b", rows, layer.in_features, size, dtype)  # h is consumed
            np.matmul(delta, params["weight"], out=grad)                  # (B6), one GEMM
    return value, grads, rates
