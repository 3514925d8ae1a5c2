"""Numba CPU kernels of the clock engine: one layer of LIF neurons through time.

Array in, array out: the caller (``stlsim.engines.numba_backend``, the fused step in
``stlsim.engines.fused_cpu``) coerces and allocates; these functions only pick the
compiled kernel and run it into the arrays they are given. Nothing here knows about
layers, networks, neurons objects or surrogate objects: a neuron is the numbers
``tau``, ``hard``, ``detach``, a surrogate its code and its one or two shape parameters
(``param``, ``param2``; ``kernels.scalar``).

* ``forward``: (L2)-(L4) of ``docs/model.md`` for (T, B, N) currents.
* ``backward``: (B1)-(B3) in reverse time and the (B5) sum over t and b.

Both are parallel over lanes (one sample and a block of neurons; lanes are
independent, fixed-order reductions, so parallel equals serial bitwise). The
per-neuron math is ``kernels.scalar``, shared with the CUDA kernels.

Specialisation. Every option that selects code (``smooth``, ``hard``, ``detach``, the
surrogate code, the uint8 spike copy) is a compile-time constant of its kernel, one
kernel per combination, compiled on first use and cached on disk. As run-time
arguments they left a loop-invariant branch around the libm ``atan`` of smooth mode
inside the inner loop, which LLVM did not unswitch: the spiking forward then ran
without SIMD, an order of magnitude behind a plain loop (``benchmarks/kernel_speed.py``
compares the two). In the spiking forward the surrogate plays no part, so all
surrogates share one kernel.

Threading: the parallel kernels use Numba's ``workqueue`` layer unless
``NUMBA_THREADING_LAYER`` says otherwise (the OpenMP layer's spinning idle threads
starve BLAS); ``stlsim.set_num_threads`` or ``STLSIM_NUM_THREADS`` set the thread
count. Details: ``docs/performance.md``.
"""
from __future__ import annotations

import collections
import os
import sys

import numba
import numpy as np

from . import scalar
from ._jit import prepare_cache, register_scalar
from .spec import NeuronSpec

__all__ = ["forward", "backward", "NeuronSpec", "CALLS", "set_mode"]

# How often each kernel ran ("kernel:forward", "kernel:backward"); the backend that
# runs on these kernels counts its own entry points into the same counter.
CALLS = collections.Counter()


# --- set-up: threading layer, thread count, cache hygiene ----------------------------------

def _configure_threading():
    if "NUMBA_THREADING_LAYER" in os.environ:
        return
    # workqueue threads sleep between launches; OpenMP's spin and starve BLAS.
    numba.config.THREADING_LAYER = "workqueue"
    from numba.np.ufunc import parallel
    if getattr(parallel, "_is_initialized", False) and numba.threading_layer() != "workqueue":
        # Too late: something launched Numba's threads first (even numba.get_num_threads()
        # does). The layer cannot change now; the fused steps then run up to 2x slower.
        import warnings
        warnings.warn(f"Numba's threading layer was started ({numba.threading_layer()!r}) before "
                      "stlsim's kernels loaded, so stlsim cannot select 'workqueue'; its idle "
                      "threads may starve BLAS (slower training steps). Import or use stlsim "
                      "first, or set NUMBA_THREADING_LAYER (python3 -m pydoc stlsim.kernels.cpu: Threading).",
                      RuntimeWarning, stacklevel=3)


def _guard_openmp_wait_policy():
    """PyTorch's OpenMP threads (libgomp) spin after each of torch's parallel regions
    and take the cores from stlsim's Numba and BLAS threads: on 2 cores the 784-800-10
    training step went from 13.8 to 20.2-20.8 ms in a process where torch had run
    (``benchmarks/torch_interference.py``). An OpenMP runtime reads OMP_WAIT_POLICY
    when it starts, so: when stlsim's kernels load before torch, stlsim sets
    OMP_WAIT_POLICY=PASSIVE for the torch loaded later (its threads then sleep between
    regions); when torch came first with more than one thread, it is too late, and
    stlsim warns. Not when OMP_WAIT_POLICY is set already, or STLSIM_OMP_GUARD=0."""
    if os.environ.get("STLSIM_OMP_GUARD", "1") == "0" or "OMP_WAIT_POLICY" in os.environ:
        return
    torch = sys.modules.get("torch")
    if torch is None:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return
    try:
        threads = int(torch.get_num_threads())
    except Exception:  # a partial or stub torch module
        return
    if threads > 1:
        import warnings
        warnings.warn("torch was imported before stlsim's kernels loaded, without "
                      "OMP_WAIT_POLICY: torch's OpenMP threads spin after each torch call and "
                      "can slow stlsim's steps by up to 1.5x. Set OMP_WAIT_POLICY=PASSIVE before "
                      "Python starts, or load stlsim's kernels first (stlsim.get_num_threads()), "
                      "or torch.set_num_threads(1) (python3 -m pydoc stlsim.kernels.cpu; STLSIM_OMP_GUARD=0 "
                      "silences this).", RuntimeWarning, stacklevel=3)


def _apply_num_threads() -> int:
    from . import _requested_threads, _threads_from_env
    n = _requested_threads if _requested_threads is not None else _threads_from_env()
    if n is not None:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return numba.get_num_threads()


_configure_threading()
_guard_openmp_wait_policy()
prepare_cache(__file__)
register_scalar()
_apply_num_threads()

_step_forward = scalar.lif_forward_step_general
_step_backward = scalar.lif_backward_step_general


# --- kernels ------------------------------------------------------------------------------
# A lane is one sample b and a block of neurons [lo, hi). Arrays are (T, B, N); v,
# s_prev, delta_next, theta_partial are (B, N) state in the storage dtype, so every step
# rounds exactly like the NumPy reference. Besides the compile-time options, two things
# keep the inner loops vectorised: ``error_model="numpy"`` (a division by zero gives
# inf/nan like NumPy instead of a per-element check) and inner loops over 1-D slices
# from 0 (an index Numba can prove non-negative needs no wraparound branch).

def _build_forward(kind, smooth, compact, reset, strict, has_leak, has_gain,
                   has_reset_potential, per_tau, inplace, parallel):
    after_leak = reset == scalar.AFTER_LEAK

    def forward(n_blocks, block, current, membrane, spikes, spikes_compact, v, s_prev, theta,
                tau, leak, gain, v_reset, v_init, s_init, param, param2):
        for lane in numba.prange(current.shape[1] * n_blocks):
            b = lane // n_blocks
            lo = (lane % n_blocks) * block
            hi = min(lo + block, current.shape[2])
            v_b = v[b, lo:hi]
            s_b = s_prev[b, lo:hi]
            theta_b = theta[lo:hi]
            tau_b = tau[lo:hi]
            leak_b = leak[lo:hi]
            s_init_b = s_init[lo:hi]
            for i in range(v_b.shape[0]):
                v_b[i] = v_init                                           # v_0
                if after_leak:
                    s_b[i] = s_init_b[i]                                  # s_0 (L2a)
            tau_0 = tau[0]
            for t in range(current.shape[0]):
                membrane_t = membrane[t, b, lo:hi]
                current_t = membrane_t if inplace else current[t, b, lo:hi]
                spikes_t = spikes[t, b, lo:hi]
                compact_t = spikes_compact[t, b, lo:hi] if compact else spikes_compact[0, 0, 0:0]
                for i in range(v_b.shape[0]):
                    m, s, v_new = _step_forward(
                        current_t[i], v_b[i], s_b[i], theta_b[i],
                        tau_b[i] if per_tau else tau_0, leak_b[i], gain, v_reset, reset,
                        strict, has_leak, has_gain, has_reset_potential, smooth, kind,
                        param, param2)                                    # (L2)-(L4)
                    membrane_t[i] = m
                    spikes_t[i] = s
                    if compact:
                        compact_t[i] = s
                    if after_leak:
                        s_b[i] = s
                    v_b[i] = v_new

    forward.__qualname__ = (f"forward_k{kind}_{'smooth' if smooth else 'spiking'}_r{reset}"
                            f"{'_strict' if strict else ''}{'_leak' if has_leak else ''}"
                            f"{'_gain' if has_gain else ''}{'_vreset' if has_reset_potential else ''}"
                            f"{'_pertau' if per_tau else ''}_{'u8' if compact else 'f'}_"
                            f"{'parallel' if parallel else 'serial'}")
    return numba.njit(parallel=parallel, cache=True, error_model="numpy")(forward)


def _build_backward(kind, reset, detach, has_gain, has_reset_potential, per_tau, inplace, parallel):
    after_leak = reset == scalar.AFTER_LEAK

    def backward(n_blocks, block, sum_blocks, sum_block, grad_spikes, membrane, spikes, theta,
                 grad_membrane, delta_next, theta_partial, grad_theta, tau, gain, v_reset,
                 s_init, param, param2):
        for lane in numba.prange(grad_spikes.shape[1] * n_blocks):
            b = lane // n_blocks
            lo = (lane % n_blocks) * block
            hi = min(lo + block, grad_spikes.shape[2])
            delta_next_b = delta_next[b, lo:hi]
            theta_partial_b = theta_partial[b, lo:hi]
            theta_b = theta[lo:hi]
            tau_b = tau[lo:hi]
            tau_0 = tau[0]
            for i in range(theta_b.shape[0]):
                delta_next_b[i] = 0                                       # delta_{T+1} = 0
                theta_partial_b[i] = 0
            for t in range(grad_spikes.shape[0] - 1, -1, -1):
                grad_current_t = grad_membrane[t, b, lo:hi]
                e_t = grad_current_t if inplace else grad_spikes[t, b, lo:hi]
                membrane_t = membrane[t, b, lo:hi]
                spikes_t = spikes[t, b, lo:hi]
                for i in range(theta_b.shape[0]):
                    delta, grad_current, theta_term = _step_backward(
                        e_t[i], delta_next_b[i], membrane_t[i], spikes_t[i], theta_b[i],
                        tau_b[i] if per_tau else tau_0, gain, v_reset, reset, detach,
                        has_gain, has_reset_potential, kind, param, param2)  # (B1)-(B3)
                    grad_current_t[i] = grad_current
                    delta_next_b[i] = delta
                    theta_partial_b[i] -= theta_term                      # (B5) over t
            if after_leak:
                s_init_b = s_init[lo:hi]
                for i in range(theta_b.shape[0]):
                    theta_partial_b[i] -= s_init_b[i] * delta_next_b[i]   # (B5a) at t = 1
        for lane in numba.prange(sum_blocks):                             # (B5) over b
            lo = lane * sum_block
            grad_theta_b = grad_theta[lo:min(lo + sum_block, grad_theta.shape[0])]
            for i in range(grad_theta_b.shape[0]):
                grad_theta_b[i] = 0
            for b in range(theta_partial.shape[0]):                       # fixed order
                row = theta_partial[b, lo:lo + grad_theta_b.shape[0]]
                for i in range(grad_theta_b.shape[0]):
                    grad_theta_b[i] += row[i]

    backward.__qualname__ = (f"backward_k{kind}_r{reset}{'_detach' if detach else ''}"
                             f"{'_gain' if has_gain else ''}{'_vreset' if has_reset_potential else ''}"
                             f"{'_pertau' if per_tau else ''}_"
                             f"{'parallel' if parallel else 'serial'}")
    return numba.njit(parallel=parallel, cache=True, error_model="numpy")(backward)


_KERNELS = {}
_mode = "parallel"          # "serial" exists to test that parallel equals serial
# Below this many (t, b, i) elements a layer runs on the serial kernel: launching the
# parallel one costs more than the work (a 10-neuron output layer at T*B = 1024).
# Parallel equals serial bitwise, so this never changes a number.
PARALLEL_MIN_ELEMENTS = 65536


def set_mode(mode: str) -> str:
    """Run the "parallel" (default) or "serial" kernels; returns the previous mode."""
    global _mode
    previous, _mode = _mode, mode
    return previous


def _kernel(key, build):
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = build(*key[1:])
    return kernel


def _parallel(n_elements) -> bool:
    return _mode == "parallel" and n_elements >= PARALLEL_MIN_ELEMENTS


def _blocking(batch, n_neurons, parallel):
    """Neurons per lane: whole rows when the batch alone feeds every thread."""
    threads = numba.get_num_threads() if parallel else 1
    if batch >= 4 * threads:
        return 1, n_neurons
    block = max(16, -(-n_neurons // (4 * threads)))
    block = -(-block // 16) * 16
    return -(-n_neurons // block), block


_NO_COMPACT = np.zeros((1, 1, 0), dtype=np.uint8)


# --- entry points: choose the kernel, run it into the caller's arrays ----------------------

def forward(current, theta, neuron: NeuronSpec, smooth, kind, param, param2, membrane, spikes,
            scratch, spikes_compact=None):
    """(L2)-(L4) (and Section 8's options) through time, into ``membrane`` and ``spikes``.

    ``current``, ``membrane``, ``spikes``: C-contiguous (T, B, N) of one float dtype;
    ``theta``: (N,) per neuron; ``scratch``: (2, B, N) of that dtype (v and the previous
    spikes); ``spikes_compact``: optional (T, B, N) uint8 that also receives the spikes
    (the fused step keeps those for its backward). ``membrane`` may be ``current`` itself
    (the same object): I_t is then overwritten with m_t, element by element after it is
    read, and the kernel compiled for that case sees one array, so it vectorises without
    an overlap check (the fused step does this). ``kind``, ``param``, ``param2``: the
    surrogate (read in smooth mode only, where s_t = P(m_t - theta)); its parameters are
    run-time arguments (``kernels.scalar.two_parameter_primitive`` says why).
    """
    T, B, N = current.shape
    parallel = _parallel(current.size)
    n_blocks, block = _blocking(B, N, parallel)
    compact = spikes_compact is not None
    smooth = bool(smooth)
    inplace = current is membrane
    key = ("forward", kind if smooth else -1, smooth, compact) + neuron.forward_options() + (
        inplace, parallel)
    CALLS["kernel:forward"] += 1
    _kernel(key, _build_forward)(n_blocks, block, current, membrane, spikes,
                                 spikes_compact if compact else _NO_COMPACT, scratch[0],
                                 scratch[1], theta, neuron.tau, neuron.leak, neuron.gain,
                                 neuron.v_reset, neuron.v_init, neuron.s_init, param, param2)


def backward(grad_spikes, membrane, spikes, theta, neuron: NeuronSpec, kind, param, param2,
             grad_current, delta_next, theta_partial, grad_theta):
    """(B1)-(B3) in reverse time into ``grad_current`` (dL/dI_t = r delta_t), and (B5)
    into ``grad_theta``.

    ``grad_spikes``, ``membrane``, ``spikes`` (float or uint8), ``grad_current``:
    C-contiguous (T, B, N); ``theta``, ``grad_theta``: (N,); ``delta_next``,
    ``theta_partial``: (B, N) scratch. ``grad_theta`` is the sum over t and b.
    ``grad_current`` may be ``grad_spikes`` itself: e_t is then overwritten with dL/dI_t
    (as in ``forward``).
    """
    T, B, N = grad_spikes.shape
    parallel = _parallel(grad_spikes.size)
    n_blocks, block = _blocking(B, N, parallel)
    sum_blocks, sum_block = _blocking(1, N, parallel)   # the reduction over b: lanes of neurons
    inplace = grad_spikes is grad_current
    key = ("backward", kind) + neuron.backward_options() + (inplace, parallel)
    CALLS["kernel:backward"] += 1
    _kernel(key, _build_backward)(n_blocks, block, sum_blocks, sum_block, grad_spikes, membrane,
                                  spikes, theta, grad_current, delta_next, theta_partial,
                                  grad_theta, neuron.tau, neuron.gain, neuron.v_reset,
                                  neuron.s_init, param, param2)
