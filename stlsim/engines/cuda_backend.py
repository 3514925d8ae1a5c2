"""The ``"cuda"`` backend: numba.cuda kernels for the clock engine (``docs/cuda.md``).

* ``lif_forward`` / ``lif_backward``: the backend protocol (``engines.backend``), NumPy
  arrays in and out, one upload and one download per call; they serve any network
  (conv, pooling, ...). The neurons run in ``kernels.cuda_neurons``.
* ``fused``: the device-resident training step of a Dense-only network
  (``engines.fused_cuda``): data on the device from the input upload to the gradient
  download. ``Network.loss_and_grad`` runs it once per step.

Importing this module imports ``numba.cuda`` and raises the standard stlsim error
(``RuntimeError``) when it cannot run (``kernels.cuda_device``). A surrogate the
kernels do not know runs on the NumPy reference, counted as "fallback:numpy".
"""
from __future__ import annotations

import numpy as np

from .. import _workspace as workspace
from ..grad import bptt
from ..kernels import cuda_gemm, cuda_neurons
from ..kernels.cuda_device import CALLS, SIMULATOR, cuda, device_name
from . import clock, fused_cuda
from .backend import Backend, compiled_spec, neuron_spec, theta_per_neuron
from .fused_cuda import spike_dtype as _spike_dtype

__all__ = ["BACKEND", "lif_forward", "lif_backward", "info", "set_gemm", "clear_workspace",
           "CALLS", "GEMMS"]

GEMMS = cuda_gemm.GEMMS
set_gemm = cuda_gemm.set_gemm


def lif_forward(current, theta, neuron, surrogate, smooth=False):
    """CUDA twin of ``engines.clock.lif_forward``: returns ``(spikes, membrane)``."""
    spec = compiled_spec(neuron, surrogate)
    if spec is None:
        CALLS["fallback:numpy"] += 1
        return clock.lif_forward(current, theta, neuron, surrogate, smooth)
    CALLS["lif_forward"] += 1
    shape = current.shape
    T, B = shape[:2]
    flat = np.ascontiguousarray(current).reshape(T, B, -1)
    theta_flat = theta_per_neuron(theta, shape[2:], flat.dtype)
    device_current = cuda.to_device(flat)
    device_spikes = cuda.device_array(flat.shape, dtype=_spike_dtype(flat.dtype, smooth))
    device_theta = cuda.to_device(theta_flat)
    cuda_neurons.forward(device_current, device_theta, False, device_theta, device_current,
                         device_spikes, neuron_spec(neuron, theta_flat, flat.dtype), bool(smooth),
                         *spec)                                           # membrane in place
    spikes = device_spikes.copy_to_host().astype(flat.dtype, copy=False)
    return spikes.reshape(shape), device_current.copy_to_host().reshape(shape)


def lif_backward(grad_spikes, membrane, spikes, theta, neuron, surrogate):
    """CUDA twin of ``grad.bptt.lif_backward``: returns ``(grad_membrane, grad_theta)``."""
    spec = compiled_spec(neuron, surrogate)
    if spec is None:
        CALLS["fallback:numpy"] += 1
        return bptt.lif_backward(grad_spikes, membrane, spikes, theta, neuron, surrogate)
    CALLS["lif_backward"] += 1
    shape = grad_spikes.shape
    T, B = shape[:2]
    dtype = grad_spikes.dtype
    grad, m, s = (cuda.to_device(np.ascontiguousarray(a, dtype=dtype).reshape(T, B, -1))
                  for a in (grad_spikes, membrane, spikes))
    N = grad.shape[2]
    theta_partial = cuda.device_array((B, N), dtype=dtype)
    grad_theta = cuda.device_array(N, dtype=dtype)
    theta_flat = theta_per_neuron(theta, shape[2:], dtype)
    cuda_neurons.backward(grad, m, s, cuda.to_device(theta_flat), grad, theta_partial,
                          neuron_spec(neuron, theta_flat, dtype), *spec)  # dL/dI over e in place
    cuda_neurons.column_sum(theta_partial, grad_theta)                    # (B5) over b
    return grad.copy_to_host().reshape(shape), grad_theta.copy_to_host().reshape(shape[2:])


def clear_workspace():
    """Free the reusable buffers of this thread (device and host)."""
    workspace.clear()


def info() -> dict:
    """Where the CUDA backend runs: device, simulator or not, which GEMM, launch counts."""
    name, capability = device_name()
    try:
        from importlib.metadata import version
        numba_cuda = version("numba-cuda")
    except Exception:  # the numba.cuda built into older Numba releases
        numba_cuda = None
    return {"backend": "cuda", "device": name, "simulator": SIMULATOR,
            "compute_capability": capability, "gemm": cuda_gemm.choice(),
            "numba_cuda": numba_cuda,
            "numba_cuda_implementation": getattr(cuda, "implementation", None),
            "cupy": cuda_gemm.cupy_version(), "calls": dict(CALLS)}


BACKEND = Backend(name="cuda", lif_forward=lif_forward, lif_backward=lif_backward,
                  fused=fused_cuda.loss_and_grad, calls=CALLS)
