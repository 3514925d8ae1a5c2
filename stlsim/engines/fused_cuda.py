"""The device-resident training step of a Dense-only network (the ``"cuda"`` backend's ``fused``).

Currents, membranes, spikes and adjoints of every layer and step never leave the
device: x and the parameters go up once, the gradients come down once. Only the
output spikes come back for the loss (the rates are a few numbers per sample) and
dL/dr goes back down. ``forward`` is the forward half, for inference. Device buffers
come from the shared workspace (``stlsim._workspace``), so steps of one shape allocate
once.
"""
from __future__ import annotations

import numpy as np

from .. import _workspace as workspace
from ..kernels import cuda_gemm, cuda_neurons
from ..kernels.cuda_device import CALLS, cuda
from ..readout import loss_from_rates, population_rates
from ..neurons import neuron_of
from .backend import FusedResult, compiled_neuron, dense_only, neuron_spec, theta_per_neuron

__all__ = ["loss_and_grad", "forward"]


def _takes(layers, neuron) -> bool:
    """Every layer's neuron is one the CUDA kernels compile and none trains its decay."""
    return all(compiled_neuron(neuron_of(neuron, i)) and not neuron_of(neuron, i).learns
               for i in range(len(layers)))


def _buffer(name, shape, dtype):
    """A reusable device array (contents undefined)."""
    return workspace.buffer(("cuda", name), shape, dtype, cuda.device_array)


def spike_dtype(dtype, smooth):
    """The dtype spikes are stored in on the device: uint8, or ``dtype`` in smooth mode."""
    return np.dtype(dtype) if smooth else np.dtype(np.uint8)   # 0/1 spikes: one byte each


def _forward_on_device(layers, params_per_layer, x, neuron, spec, smooth):
    """(L1)-(L4) through every Dense layer; everything stays on the device.

    Returns per-layer lists (inputs, weights, thetas, membranes, spikes) of device
    arrays, 2-D with rows t * B + b.
    """
    T, B = x.shape[:2]
    rows = T * B
    dtype = np.dtype(x.dtype)
    stored_spikes = spike_dtype(dtype, smooth)
    if isinstance(x, np.ndarray):
        h = cuda.to_device(np.ascontiguousarray(x).reshape(rows, -1))         # upload x
    else:
        h = x.reshape(rows, -1)                                              # already there
    state = {"inputs": [], "weights": [], "thetas": [], "membranes": [], "spikes": [],
             "neurons": []}
    for i, (layer, params) in enumerate(zip(layers, params_per_layer)):
        n_out = layer.out_features
        weight = cuda.to_device(np.ascontiguousarray(params["weight"]))
        theta_host = theta_per_neuron(layer.expand_theta(params["theta"]), (n_out,), dtype)
        layer_neuron = neuron_spec(neuron_of(neuron, i), theta_host, dtype)
        theta = cuda.to_device(theta_host)
        bias = cuda.to_device(params["bias"]) if layer.bias else theta  # unread without bias
        membrane = _buffer(("m", i), (rows, n_out), dtype)
        cuda_gemm.matmul(h, weight, membrane, trans_b=True)              # (L1) I = s W^T
        spikes = _buffer(("s", i), (rows, n_out), stored_spikes)
        membrane_3d = membrane.reshape(T, B, n_out)
        cuda_neurons.forward(membrane_3d, bias, layer.bias, theta, membrane_3d,
                             spikes.reshape(T, B, n_out), layer_neuron, bool(smooth),
                             *spec)                                       # (L2)-(L4) in place
        state["neurons"].append(layer_neuron)
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


def forward(layers, params_per_layer, x, neuron, surrogate, smooth=False):
    """Spikes and membranes (m_t before reset) of every layer of a Dense-only network,
    computed on the device with one upload (x, parameters) and one download.

    Returns ``(spikes, membranes)``, lists of (T, B, N_l) arrays of ``x``'s dtype, or
    None when the network is not one this path handles. Arguments as validated by
    ``Network``; ``x`` may also be a C-contiguous CUDA array (no upload then).
    """
    spec = dense_only(layers, surrogate)
    if spec is None or not _takes(layers, neuron):
        return None
    CALLS["fused_forward"] += 1
    x = _input(x)
    T, B = x.shape[:2]
    state = _forward_on_device(layers, params_per_layer, x, neuron, spec, smooth)
    spikes = [s.copy_to_host().astype(x.dtype, copy=False).reshape(T, B, -1)
              for s in state["spikes"]]
    membranes = [m.copy_to_host().reshape(T, B, -1) for m in state["membranes"]]
    return spikes, membranes


def loss_and_grad(layers, params_per_layer, x, labels, neuron, surrogate, population, loss,
                  smooth=False):
    """Loss, per-layer gradients and rates of a Dense-only network, on the device.

    Returns a ``FusedResult``, or None when the network is not one this path handles
    (a layer other than ``Dense``, an unknown surrogate); the caller then takes the
    per-layer path. Arguments are validated by the caller; called directly, ``x`` may
    also be a C-contiguous CUDA array of the parameters' dtype (no upload then; see
    ``benchmarks/gpu_bench.py``).
    """
    spec = dense_only(layers, surrogate)
    if spec is None or not _takes(layers, neuron):
        return None
    CALLS["fused_loss_and_grad"] += 1
    x = _input(x)
    T, B = x.shape[:2]
    rows = T * B
    dtype = np.dtype(x.dtype)
    state = _forward_on_device(layers, params_per_layer, x, neuron, spec, smooth)
    # The readout on the host: C * P output spikes per (t, b) come back, dL/dr goes down.
    output = state["spikes"][-1].copy_to_host().astype(dtype, copy=False)
    rates = population_rates(output.reshape(T, B, -1), population)
    value, grad_rates = loss_from_rates(rates, labels, loss)
    n_out = layers[-1].out_features
    grad = _buffer(("e", len(layers) - 1), (rows, n_out), dtype)
    cuda_neurons.spread_rates(cuda.to_device(np.ascontiguousarray(grad_rates, dtype=dtype)),
                              population, dtype.type(T * population),
                              grad.reshape(T, B, n_out))                  # e^L
    device_grads = []
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        n_out = layer.out_features
        theta_partial = _buffer(("tp", i), (B, n_out), dtype)
        view = grad.reshape(T, B, n_out)
        cuda_neurons.backward(view, state["membranes"][i].reshape(T, B, n_out),
                              state["spikes"][i].reshape(T, B, n_out), state["thetas"][i], view,
                              theta_partial, state["neurons"][i],
                              *spec)                                      # (B1)-(B3), dL/dI over e
        local = {"theta": cuda.device_array(n_out, dtype=dtype)}
        cuda_neurons.column_sum(theta_partial, local["theta"])            # (B5) over b
        local["weight"] = cuda.device_array(state["weights"][i].shape, dtype=dtype)
        cuda_gemm.matmul(grad, state["inputs"][i], local["weight"], trans_a=True)  # (B4)
        if layer.bias:
            local["bias"] = cuda.device_array(n_out, dtype=dtype)
            cuda_neurons.column_sum(grad, local["bias"])                  # (B4) bias: over t, b
        device_grads.append((i, local))
        if i > 0:
            below = _buffer(("e", i - 1), (rows, layer.in_features), dtype)
            cuda_gemm.matmul(grad, state["weights"][i], below)            # (B6) e = delta W
            grad = below
    grads = [None] * len(layers)                                         # download at the end
    for i, local in device_grads:
        grads[i] = {name: array.copy_to_host() for name, array in local.items()}
        grads[i]["theta"] = layers[i].reduce_theta(grads[i]["theta"])   # (B5) shared sum
    return FusedResult(value, grads, rates)
