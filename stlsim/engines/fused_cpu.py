"""The fused CPU training step of a Dense-only network (the ``"numba"`` backend's ``fused``).

One call computes the loss and every gradient of ``Network.loss_and_grad`` with the
same results as the layer-by-layer path (within the documented tolerances). Its
intermediates (currents, membranes, spikes, adjoints) live in the per-thread
workspace (``stlsim._workspace``) reused across calls: fresh multi-MB arrays cost page
faults on every step. Each layer's products are single 2-D GEMMs over all T*B rows
(BLAS, through NumPy), written into that workspace; the neurons run in the kernels of
``stlsim.kernels.cpu``. Only the loss, the gradients and the rates leave it.
"""
from __future__ import annotations

import numpy as np

from .. import _workspace as workspace
from ..kernels import cpu
from ..readout import loss_from_rates, population_rates, rates_backward
from ..neurons import neuron_of
from .backend import FusedResult, compiled_neuron, dense_only, neuron_spec, theta_per_neuron

__all__ = ["loss_and_grad"]

CALLS = cpu.CALLS
_buffer = workspace.buffer          # a reusable array from this thread's workspace


def _scratch(name, rows, cols, size, dtype):
    """A (rows, cols) C-contiguous view of a shared flat workspace buffer of ``size``."""
    return _buffer(("fused", name), (size,), dtype)[:rows * cols].reshape(rows, cols)


def loss_and_grad(layers, params_per_layer, x, labels, neuron, surrogate, population, loss,
                  smooth=False):
    """Loss, per-layer gradients and rates of a Dense-only network in one fused pass.

    Returns a ``FusedResult``, or None when the network is not one this path handles
    (a layer other than ``Dense``, a surrogate the kernels do not know). ``neuron`` is an
    ``LIF`` or a list of them, one per layer. Arguments are validated by the caller
    (``Network``). Here ``delta`` holds dL/dI_t, which equals dL/dm_t unless the input
    gain r != 1 (B3g).

    Memory, all from the reusable workspace: per layer m_t (dtype) and s_t (uint8; the
    dtype in smooth mode, where spikes are not 0/1) of every step, what the backward
    needs; plus two scratch buffers of the largest layer's size (T*B rows), A and B:
    layer i writes its float spikes (the next GEMM's operand) into A or B by the parity of
    i, so the last hidden layer's are still there for the output layer's (B4) GEMM; the
    backward alternates the adjoints e_t and the spikes expanded from uint8 for (B4)
    between them. The neuron kernels work in place: the (L1) GEMM
    writes I_t into the layer's membrane buffer and the forward kernel overwrites it with
    m_t; the backward kernel overwrites e_t with dL/dI_t. Each element is read before it
    is written, and the kernel is handed one array (not two views of it), so the
    compiler vectorises the loop without an overlap check; not writing a second array
    saves its memory traffic (the step is memory-bound around its GEMMs).
    """
    spec = dense_only(layers, surrogate)
    if spec is None or any(not compiled_neuron(neuron_of(neuron, i)) or neuron_of(neuron, i).learns
                           for i in range(len(layers))):
        return None
    CALLS["fused_loss_and_grad"] += 1
    T, B = x.shape[:2]
    rows = T * B
    dtype = x.dtype
    size = rows * max(layer.out_features for layer in layers)
    membranes, stored_spikes, thetas, specs, inputs = [], [], [], [], []
    x_rows = np.ascontiguousarray(x).reshape(rows, -1)
    h = x_rows                                                            # the GEMM operand
    for i, (layer, params) in enumerate(zip(layers, params_per_layer)):
        n_out = layer.out_features
        inputs.append(h)
        membrane = _buffer(("fused", "m", i), (rows, n_out), dtype)
        current = membrane.reshape(T, B, n_out)          # the kernel turns I_t into m_t in place
        np.matmul(h, params["weight"].T, out=membrane)                   # (L1), one GEMM
        if layer.bias:
            membrane += params["bias"]
        if smooth:
            spikes = stored = _buffer(("fused", "s", i), (rows, n_out), dtype)
            compact = None
        else:
            spikes = _scratch("ab"[i % 2], rows, n_out, size, dtype)    # (layer i - 2's: consumed)
            stored = _buffer(("fused", "s8", i), (rows, n_out), np.uint8)
            compact = stored.reshape(T, B, n_out)
        theta = theta_per_neuron(layer.expand_theta(params["theta"]), (n_out,), dtype)
        layer_neuron = neuron_spec(neuron_of(neuron, i), theta, dtype)
        cpu.forward(current, theta, layer_neuron, smooth, *spec, current, spikes.reshape(T, B, n_out),
                    _buffer(("fused", "v", i), (2, B, n_out), dtype), compact)  # (L2)-(L4)
        membranes.append(membrane)
        stored_spikes.append(stored)
        thetas.append(theta)
        specs.append(layer_neuron)
        h = spikes
    rates = population_rates(h.reshape(T, B, -1), population)
    value, grad_rates = loss_from_rates(rates, labels, loss)
    grad = rates_backward(grad_rates, T, population).reshape(rows, -1)  # e^L_t
    last = len(layers) - 1
    free = "ab"[last % 2]                          # the last layer's spikes: consumed by the rates
    grads = [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        layer, params = layers[i], params_per_layer[i]
        n_out = layer.out_features
        grad_theta = np.empty(n_out, dtype=dtype)
        e = grad.reshape(T, B, n_out)             # one object twice: e_t becomes dL/dI_t in place
        cpu.backward(e, membranes[i].reshape(T, B, n_out),
                     stored_spikes[i].reshape(T, B, n_out), thetas[i], specs[i], *spec, e,
                     _buffer(("fused", "dn", i), (B, n_out), dtype),
                     _buffer(("fused", "tp", i), (B, n_out), dtype), grad_theta)  # (B1)-(B5)
        delta = grad                              # (rows, n_out): now dL/dI_t
        if i == 0 or smooth or i == last:
            # x, the stored smooth spikes, or the last hidden layer's float spikes, which the
            # forward left in the other scratch buffer. Held by reference, never looked up
            # again: a workspace cleared in between hands out a new array under that name.
            h = inputs[i]
        else:
            h = _scratch(free, rows, layer.in_features, size, dtype)
            h[...] = stored_spikes[i - 1]                                 # uint8 -> dtype
        local = {"weight": delta.T @ h}                                  # (B4), one GEMM
        if layer.bias:
            local["bias"] = delta.sum(axis=0)
        local["theta"] = layer.reduce_theta(grad_theta)                   # (B5) shared sum
        grads[i] = local
        if i > 0:
            grad = _scratch(free, rows, layer.in_features, size, dtype)  # h is consumed
            np.matmul(delta, params["weight"], out=grad)                  # (B6), one GEMM
            free = "b" if free == "a" else "a"
    return FusedResult(value, grads, rates)
