"""The ``"cuda"`` backend: numba.cuda kernels for the clock engine.

One GPU thread per (sample b, neuron i) runs that neuron's whole time recursion:
(L2)-(L4) forward, (B1)-(B5) backward, with the per-neuron math of
``stlsim.kernels.scalar`` (the same functions the CPU kernels compile). Arrays are
time-major ``(T, B, N)``; thread ``b * N + i`` touches element ``[t, b, i]``, so at
each step a warp reads and writes consecutive addresses (coalesced). Spikes are
stored as ``uint8`` (``float`` only in smooth mode, where they are P(m - theta)).

Threshold gradients (B5) are reduced without atomics: each thread writes its own
partial sum over t into a (B, N) array, then a second kernel sums it over b in a
fixed order, one thread per neuron. Matrix products (L1), (B4), (B6) run on the
device through CuPy's cuBLAS when CuPy imports (zero-copy: CuPy wraps the Numba
arrays through ``__cuda_array_interface__``), else through the tiled shared-memory
GEMM below. ``info()`` says which, and on what device.

Entry points (same protocol as ``stlsim.kernels.cpu``):

* ``lif_forward`` / ``lif_backward``: the per-layer backend protocol of
  ``stlsim.engines`` (NumPy arrays in and out, one upload and one download per
  call); they serve any network (conv, pooling, ...).
* ``fused_loss_and_grad``: a whole training step for Dense-only networks with the
  data on the device from the input upload to the gradient download: currents,
  membranes, spikes and adjoints of every layer and step never leave it. Only the
  output spikes come back for the loss (the rates are a few numbers per sample) and
  dL/dr goes back down. ``fused_forward`` is the forward half, for inference.

Importing this module imports ``numba.cuda`` and raises the standard stlsim error
(``RuntimeError``) when it cannot run: numba-cuda missing, or no GPU visible.
``NUMBA_ENABLE_CUDASIM=1`` (set before Numba is imported) runs every kernel in
Numba's CUDA simulator instead, on the CPU; the tests do that. Design, determinism
and the GPU benchmark: ``docs/cuda.md``.
"""
from __future__ import annotations

import collections
import os
import sys
import threading

import numpy as np

from .._checks import check_choice, fail
from . import scalar

__all__ = ["lif_forward", "lif_backward", "fused_loss_and_grad", "fused_forward", "info",
           "set_gemm", "clear_workspace", "CALLS", "NAME", "GEMMS"]

NAME = "cuda"
GEMMS = ("auto", "cupy", "numba-tiled")

# Kernel launches by name, and calls of the entry points (tests use it to prove the
# CUDA path ran rather than a fallback).
CALLS = collections.Counter()


def _unavailable(reason: str) -> Exception:
    return fail("backend", "a backend this machine can run", f"'cuda' {reason}", None, RuntimeError)


try:
    from numba import cuda
except Exception as err:  # numba-cuda not installed, or broken against this numba
    raise _unavailable(f"without an importable numba.cuda ({type(err).__name__}: {err}); install "
                       "the cuda extra: pip install 'stlsim[cuda]'") from None


def _simulating() -> bool:
    config = getattr(cuda, "config", None)          # numba-cuda's own config module
    if config is None or not hasattr(config, "ENABLE_CUDASIM"):
        from numba.core import config
    return bool(config.ENABLE_CUDASIM)


SIMULATOR = _simulating()
if not SIMULATOR and not cuda.is_available():
    raise _unavailable("with no CUDA GPU visible to numba.cuda (NUMBA_ENABLE_CUDASIM=1 runs "
                       "Numba's CUDA simulator instead)")


def _lock_simulator_shared_arrays():
    """Make the simulator's ``cuda.shared.array`` safe for the block's threads.

    Numba's simulator runs each thread of a block as a Python thread, and its static
    ``cuda.shared.array`` looks the block's array up by call site and creates it when
    absent, without a lock. Two threads reaching the declaration together can both
    find it absent and each create one: part of the block then fills and reads a
    different tile, and the GEMM comes out wrong (rarely; more often on a loaded
    machine). Here the look-up and creation run under one lock.
    """
    from numba.cuda.simulator import kernelapi
    shared = kernelapi.FakeCUDAShared
    if getattr(shared.array, "locked_by_stlsim", False):
        return
    original = shared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:     # dynamic shared memory: nothing to race
            return original(self, shape, dtype, alignment)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)   # one array per call site
        with lock:
            if key not in self._allocations:
                # np.empty of the dtype (numba or NumPy), as the original allocates
                self._allocations[key] = kernelapi.FakeCUDALocal().array(shape, dtype)
            return self._allocations[key]

    array.locked_by_stlsim = True
    shared.array = array


if SIMULATOR:
    _lock_simulator_shared_arrays()

from ._jit import register_scalar  # noqa: E402  (imports numba; after the checks above)
from ._jit import surrogate_spec as _surrogate_spec  # noqa: E402

register_scalar()          # the scalar functions become callable from CUDA kernels
_step_forward = scalar.lif_forward_step
_step_backward = scalar.lif_backward_step

TILE = 16            # GEMM tile edge: TILE x TILE threads per block, one output element each
TILE_ROW = TILE + 1  # a tile row in shared memory: one padding column against bank conflicts
# Threads per block of the neuron kernels. Numba's simulator runs each thread of a block
# as a Python thread, so there the blocks are smaller (the kernels are the same).
THREADS = 32 if SIMULATOR else 128

# No ``cache=True`` on these kernels: Numba's cache is keyed on this file only, so an
# edit of ``scalar.py`` would leave stale kernels behind; compiling them is a one-off
# of a few seconds per process. No ``fastmath`` (reference results depend on them).


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


@cuda.jit
def _gemm_kernel(a, b, c, trans_a, trans_b):
    """c = op(a) @ op(b), op(x) = x.T where flagged: the GEMM used without CuPy.

    Block (TILE x TILE) computes one tile of c, thread (ty, tx) one element, marching
    over the inner dimension a tile at a time through shared memory. Each load is
    coalesced (consecutive tx read consecutive addresses; transposed operands are
    stored transposed into the tile, padded by one column against bank conflicts).
    The sum over k runs in increasing k: deterministic. ``a`` may be uint8 spikes.
    """
    a_tile = cuda.shared.array((TILE, TILE_ROW), c.dtype)
    b_tile = cuda.shared.array((TILE, TILE_ROW), c.dtype)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row0 = cuda.blockIdx.y * TILE
    col0 = cuda.blockIdx.x * TILE
    n_rows = c.shape[0]
    n_cols = c.shape[1]
    depth = a.shape[0] if trans_a else a.shape[1]
    total = cuda.local.array(1, c.dtype)
    total[0] = 0
    for k0 in range(0, depth, TILE):
        if trans_a:           # a is (depth, n_rows): tile[r, k] = a[k0 + k, row0 + r]
            k = k0 + ty
            r = row0 + tx
            a_tile[tx, ty] = a[k, r] if (k < depth and r < n_rows) else 0
        else:                 # a is (n_rows, depth)
            k = k0 + tx
            r = row0 + ty
            a_tile[ty, tx] = a[r, k] if (k < depth and r < n_rows) else 0
        if trans_b:           # b is (n_cols, depth): tile[k, col] = b[col0 + col, k0 + k]
            k = k0 + tx
            col = col0 + ty
            b_tile[tx, ty] = b[col, k] if (k < depth and col < n_cols) else 0
        else:                 # b is (depth, n_cols)
            k = k0 + ty
            col = col0 + tx
            b_tile[ty, tx] = b[k, col] if (k < depth and col < n_cols) else 0
        cuda.syncthreads()
        for k in range(TILE):
            total[0] += a_tile[ty, k] * b_tile[k, tx]
        cuda.syncthreads()
    if row0 + ty < n_rows and col0 + tx < n_cols:
        c[row0 + ty, col0 + tx] = total[0]


# --- launches --------------------------------------------------------------------------------

def _blocks(n):
    return max(1, -(-n // THREADS))


def _launch_forward(current, bias, has_bias, theta, membrane, spikes, neuron, spec, smooth):
    T, B, N = current.shape
    kind, param = spec
    CALLS["kernel:lif_forward"] += 1
    _lif_forward_kernel[_blocks(B * N), THREADS](
        current, bias, has_bias, theta, membrane, spikes, membrane.dtype.type(neuron.tau),
        neuron.reset == "hard", bool(smooth), kind, param)


def _launch_backward(grad_spikes, membrane, spikes, theta, grad_membrane, theta_partial, neuron,
                     spec):
    T, B, N = grad_spikes.shape
    kind, param = spec
    CALLS["kernel:lif_backward"] += 1
    _lif_backward_kernel[_blocks(B * N), THREADS](
        grad_spikes, membrane, spikes, theta, grad_membrane, theta_partial,
        grad_membrane.dtype.type(neuron.tau), neuron.reset == "hard", neuron.detach_reset,
        kind, param)


def _column_sum(rows, out):
    CALLS["kernel:column_sum"] += 1
    _column_sum_kernel[_blocks(rows.shape[1]), THREADS](rows, out)


_cupy = None
_gemm_requested = check_choice(os.environ.get("STLSIM_CUDA_GEMM") or "auto", "STLSIM_CUDA_GEMM",
                               GEMMS, "environment")


def _load_cupy():
    """CuPy, or None when it is absent (or unusable: under the simulator)."""
    global _cupy
    if _cupy is None:
        _cupy = False
        if not SIMULATOR:
            try:
                import cupy
                _cupy = cupy
            except Exception:  # not installed, or no matching CUDA runtime
                pass
    return _cupy or None


def set_gemm(name: str) -> str:
    """Choose the GEMM: "auto" (CuPy's cuBLAS if CuPy imports, else the tiled numba.cuda
    kernel), "cupy" or "numba-tiled". Returns the one now in use. The environment
    variable ``STLSIM_CUDA_GEMM`` sets the same at import."""
    global _gemm_requested
    check_choice(name, "name", GEMMS, "set_gemm")
    if name == "cupy" and _load_cupy() is None:
        raise _no_cupy("name", "set_gemm")
    _gemm_requested = name
    return _gemm_choice()


def _no_cupy(name, owner):
    return fail(name, "'auto' or 'numba-tiled' here", "'cupy' without an importable CuPy"
                + (" (the simulator cannot run CuPy)" if SIMULATOR else ""), owner)


def _gemm_choice() -> str:
    if _gemm_requested == "numba-tiled":
        return "numba-tiled"
    if _load_cupy() is not None:
        return "cupy"
    if _gemm_requested == "cupy":                  # asked for by STLSIM_CUDA_GEMM
        raise _no_cupy("STLSIM_CUDA_GEMM", "environment")
    return "numba-tiled"


def _matmul(a, b, out, trans_a=False, trans_b=False):
    """out = op(a) @ op(b) on the device; ``a`` may hold uint8 spikes."""
    if _gemm_choice() == "cupy":
        cupy = _cupy
        CALLS["gemm:cupy"] += 1
        out_view = cupy.asarray(out)
        # uint8 spikes become floats first: cuBLAS multiplies floats only.
        a_view, b_view = (cupy.asarray(m).astype(out_view.dtype, copy=False) for m in (a, b))
        cupy.matmul(a_view.T if trans_a else a_view, b_view.T if trans_b else b_view, out=out_view)
        return
    CALLS["gemm:numba-tiled"] += 1
    n_rows, n_cols = out.shape
    _gemm_kernel[(-(-n_cols // TILE), -(-n_rows // TILE)), (TILE, TILE)](a, b, out, trans_a,
                                                                         trans_b)


# --- wrappers: coerce and allocate, then launch ------------------------------------------------

def _theta_per_neuron(theta, shape, dtype):
    return np.ascontiguousarray(np.broadcast_to(theta, shape), dtype=dtype).reshape(-1)


def _spike_dtype(dtype, smooth):
    return np.dtype(dtype) if smooth else np.dtype(np.uint8)   # 0/1 spikes: one byte each


def lif_forward(current, theta, neuron, surrogate, smooth=False):
    """CUDA twin of ``engines.clock.lif_forward``: returns ``(spikes, membrane)``.

    A surrogate the kernels don't know (a user-defined one) runs on the NumPy
    reference instead, counted in ``CALLS["fallback:numpy"]``.
    """
    spec = _surrogate_spec(surrogate)
    if spec is None:
        CALLS["fallback:numpy"] += 1
        from ..engines.clock import lif_forward as reference
        return reference(current, theta, neuron, surrogate, smooth)
    CALLS["lif_forward"] += 1
    shape = current.shape
    T, B = shape[:2]
    flat = np.ascontiguousarray(current).reshape(T, B, -1)
    device_current = cuda.to_device(flat)
    device_spikes = cuda.device_array(flat.shape, dtype=_spike_dtype(flat.dtype, smooth))
    device_theta = cuda.to_device(_theta_per_neuron(theta, shape[2:], flat.dtype))
    _launch_forward(device_current, device_theta, False, device_theta, device_current,
                    device_spikes, neuron, spec, smooth)                  # membrane in place
    spikes = device_spikes.copy_to_host().astype(flat.dtype, copy=False)
    return spikes.reshape(shape), device_current.copy_to_host().reshape(shape)


def lif_backward(grad_spikes, membrane, spikes, theta, neuron, surrogate):
    """CUDA twin of ``grad.bptt.lif_backward``: returns ``(grad_membrane, grad_theta)``."""
    spec = _surrogate_spec(surrogate)
    if spec is None:
        CALLS["fallback:numpy"] += 1
        from ..grad.bptt import lif_backward as reference
        return reference(grad_spikes, membrane, spikes, theta, neuron, surrogate)
    CALLS["lif_backward"] += 1
    shape = grad_spikes.shape
    T, B = shape[:2]
    dtype = grad_spikes.dtype
    grad, m, s = (cuda.to_device(np.ascontiguousarray(a, dtype=dtype).reshape(T, B, -1))
                  for a in (grad_spikes, membrane, spikes))
    N = grad.shape[2]
    theta_partial = cuda.device_array((B, N), dtype=dtype)
    grad_theta = cuda.device_array(N, dtype=dtype)
    _launch_backward(grad, m, s, cuda.to_device(_theta_per_neuron(theta, shape[2:], dtype)),
                     grad, theta_partial, neuron, spec)                   # delta over e in place
    _column_sum(theta_partial, grad_theta)                                # (B5) over b
    return grad.copy_to_host().reshape(shape), grad_theta.copy_to_host().reshape(shape[2:])


# --- the device-resident path for Dense-only networks ------------------------------------------

_workspace = {}
_MAX_BUFFERS = 64


def _buffer(name, shape, dtype):
    """A reusable device array (contents undefined): steps of the same shape allocate once."""
    key = (name, tuple(shape), np.dtype(dtype).str)
    array = _workspace.get(key)
    if array is None:
        if len(_workspace) >= _MAX_BUFFERS:
            _workspace.clear()
        array = _workspace[key] = cuda.device_array(shape, dtype=dtype)
    return array


def clear_workspace():
    """Free the reusable device buffers (they are rebuilt on the next call)."""
    _workspace.clear()


def _handles(layers, surrogate):
    from ..layers.dense import Dense
    spec = _surrogate_spec(surrogate)
    if spec is None or not all(type(layer) is Dense for layer in layers):
        return None
    return spec


def _forward_on_device(layers, params_per_layer, x, neuron, spec, smooth):
    """(L1)-(L4) through every Dense layer; everything stays on the device.

    Returns per-layer lists (inputs, weights, thetas, membranes, spikes) of device
    arrays, 2-D with rows t * B + b.
    """
    T, B = x.shape[:2]
    rows = T * B
    dtype = x.dtype
    spike_dtype = _spike_dtype(dtype, smooth)
    if isinstance(x, np.ndarray):
        h = cuda.to_device(np.ascontiguousarray(x).reshape(rows, -1))         # upload x
    else:
        h = x.reshape(rows, -1)                                              # already there
    state = {"inputs": [], "weights": [], "thetas": [], "membranes": [], "spikes": []}
    for i, (layer, params) in enumerate(zip(layers, params_per_layer)):
        n_out = layer.out_features
        weight = cuda.to_device(np.ascontiguousarray(params["weight"]))
        theta = cuda.to_device(_theta_per_neuron(layer.expand_theta(params["theta"]), (n_out,),
                                                 dtype))
        bias = cuda.to_device(params["bias"]) if layer.bias else theta  # unread without bias
        membrane = _buffer(("m", i), (rows, n_out), dtype)
        _matmul(h, weight, membrane, trans_b=True)                      # (L1) I = s W^T
        spikes = _buffer(("s", i), (rows, n_out), spike_dtype)
        membrane_3d = membrane.reshape(T, B, n_out)
        _launch_forward(membrane_3d, bias, layer.bias, theta, membrane_3d,
                        spikes.reshape(T, B, n_out), neuron, spec, smooth)   # (L2)-(L4) in place
        for key, value in zip(state, (h, weight, theta, membrane, spikes)):
            state[key].append(value)
        h = spikes
    return state


def _input(x):
    """A NumPy array as it is (uploaded later), or a CUDA array (a Numba device array, or
    anything with ``__cuda_array_interface__``: CuPy, a torch CUDA tensor) as a C-contiguous
    Numba view, so that a caller whose data already lives on the GPU skips the upload."""
    if isinstance(x, np.ndarray) or hasattr(x, "copy_to_host"):
        return x
    return cuda.as_cuda_array(x)


def fused_forward(layers, params_per_layer, x, neuron, surrogate, smooth=False):
    """Spikes and membranes (m_t before reset) of every layer of a Dense-only network,
    computed on the device with one upload (x, parameters) and one download.

    Returns ``(spikes, membranes)``, lists of (T, B, N_l) arrays of ``x``'s dtype, or
    None when the network is not one this path handles. Arguments as validated by
    ``Network``; ``x`` may also be a C-contiguous CUDA array (no upload then).
    """
    spec = _handles(layers, surrogate)
    if spec is None:
        return None
    CALLS["fused_forward"] += 1
    x = _input(x)
    T, B = x.shape[:2]
    state = _forward_on_device(layers, params_per_layer, x, neuron, spec, smooth)
    spikes = [s.copy_to_host().astype(x.dtype, copy=False).reshape(T, B, -1)
              for s in state["spikes"]]
    membranes = [m.copy_to_host().reshape(T, B, -1) for m in state["membranes"]]
    return spikes, membranes


def fused_loss_and_grad(layers, params_per_layer, x, labels, neuron, surrogate, population,
                        loss, smooth=False):
    """Loss and per-layer gradients of a Dense-only network, on the device.

    The ``fused_loss_and_grad`` hook of the backend protocol (``Network.loss_and_grad``
    uses it; see ``stlsim.engines``). Returns ``(loss, grads_per_layer)``, or None when
    the network is not one this path handles (a layer other than ``Dense``, an unknown
    surrogate); the caller then takes the per-layer path. Arguments are validated by
    the caller; called directly, ``x`` may also be a C-contiguous CUDA array of the
    parameters' dtype (no upload then; see ``benchmarks/gpu_bench.py``).
    """
    from ..readout import loss_from_rates, population_rates
    spec = _handles(layers, surrogate)
    if spec is None:
        return None
    CALLS["fused_loss_and_grad"] += 1
    x = _input(x)
    T, B = x.shape[:2]
    rows = T * B
    dtype = x.dtype
    state = _forward_on_device(layers, params_per_layer, x, neuron, spec, smooth)
    # The readout on the host: C * P output spikes per (t, b) come back, dL/dr goes down.
    output = state["spikes"][-1].copy_to_host().astype(dtype, copy=False)
    rates = population_rates(output.reshape(T, B, -1), population)
    value, grad_rates = loss_from_rates(rates, labels, loss)
    n_out = layers[-1].out_features
    grad = _buffer(("e", len(layers) - 1), (rows, n_out), dtype)
    CALLS["kernel:spread_rates"] += 1
    _spread_rates_kernel[_blocks(B * n_out), THREADS](
        cuda.to_device(np.ascontiguousarray(grad_rates, dtype=dtype)), population,
        dtype.type(T * population), grad.reshape(T, B, n_out))          # e^L
    device_grads = []
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        n_out = layer.out_features
        theta_partial = _buffer(("tp", i), (B, n_out), dtype)
        view = grad.reshape(T, B, n_out)
        _launch_backward(view, state["membranes"][i].reshape(T, B, n_out),
                         state["spikes"][i].reshape(T, B, n_out), state["thetas"][i], view,
                         theta_partial, neuron, spec)                   # (B1)-(B3), delta over e
        local = {"theta": cuda.device_array(n_out, dtype=dtype)}
        _column_sum(theta_partial, local["theta"])                      # (B5) over b
        local["weight"] = cuda.device_array(state["weights"][i].shape, dtype=dtype)
        _matmul(grad, state["inputs"][i], local["weight"], trans_a=True)  # (B4) delta^T s
        if layer.bias:
            local["bias"] = cuda.device_array(n_out, dtype=dtype)
            _column_sum(grad, local["bias"])                            # (B4) bias: over t, b
        device_grads.append((i, local))
        if i > 0:
            below = _buffer(("e", i - 1), (rows, layer.in_features), dtype)
            _matmul(grad, state["weights"][i], below)                   # (B6) e = delta W
            grad = below
    grads = [None] * len(layers)                                         # download at the end
    for i, local in device_grads:
        grads[i] = {name: array.copy_to_host() for name, array in local.items()}
        grads[i]["theta"] = layers[i].reduce_theta(grads[i]["theta"])   # (B5) shared sum
    return value, grads


# --- what runs where ---------------------------------------------------------------------------

def info() -> dict:
    """Where the CUDA backend runs: device, simulator or not, which GEMM, launch counts."""
    device = cuda.get_current_device()
    if SIMULATOR:
        name, capability = "simulator", None
    else:
        name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
        capability = tuple(int(c) for c in device.compute_capability)
    cupy = _load_cupy()
    try:
        from importlib.metadata import version
        numba_cuda = version("numba-cuda")
    except Exception:  # the numba.cuda built into older Numba releases
        numba_cuda = None
    return {"backend": NAME, "device": name, "simulator": SIMULATOR,
            "compute_capability": capability, "gemm": _gemm_choice(),
            "numba_cuda": numba_cuda, "numba_cuda_implementation": getattr(cuda, "implementation", None),
            "cupy": getattr(cupy, "__version__", None), "calls": dict(CALLS)}
