"""The backend protocol: what an engine may ask of the kernels that run the neurons.

A backend is one ``Backend`` object (``stlsim.engines.get_backend(name)`` returns it),
built by plain imports in its own module (``numpy_backend``, ``numba_backend``,
``cuda_backend``). Its fields are the whole protocol:

* ``lif_forward(current, theta, neuron, surrogate, smooth=False) -> (spikes, membrane)``:
  one layer's LIF neurons through time, (L2)-(L4) of ``docs/model.md``; arrays
  (T, B, *shape), ``membrane`` is m_t before reset. The definition is
  ``engines.clock.lif_forward``.
* ``lif_backward(grad_spikes, membrane, spikes, theta, neuron, surrogate)
  -> (grad_membrane, grad_theta)``: (B1)-(B3) and (B5) for that layer; the definition
  is ``grad.bptt.lif_backward``.
* ``fused``: None, or a whole training step for the networks it handles
  (``fused(layers, params_per_layer, x, labels, neuron, surrogate, population, loss,
  smooth) -> FusedResult | None``; None means "not this network": the caller then runs
  the layer-by-layer path). Same results as that path.
* ``lif_forward_stateful(current, theta, neuron, surrogate, smooth, recurrence)
  -> (spikes, membrane)`` and ``lif_backward_stateful(grad_spikes, membrane, spikes,
  theta, neuron, surrogate, trace=None, recurrence=None, current=None, **accumulators)
  -> (grad_current, grad_theta, recurrent_grads)``: optional (default None), a layer with
  recurrence or an adaptive threshold (Section 10); the definitions are
  ``engines.clock.lif_forward_stateful`` and ``grad.bptt.lif_backward_stateful``. A
  backend without them runs the NumPy reference for such a layer
  (``clock.backend_stateful_forward``, ``bptt.backend_stateful_backward``).
* ``calls``: a counter of what ran (tests use it to prove that a fast path, not a
  fallback, ran). Entry points count under their own names ("lif_forward",
  "fused_loss_and_grad", ...), kernels under "kernel:...", and a fallback to the NumPy
  reference under "fallback:numpy".

Fallbacks are decided here, in the engine layer, never inside a kernel: a backend's
``lif_forward`` runs the NumPy reference for a neuron model or surrogate its kernels
do not compile (``kernel_neuron`` is False, ``kernel_surrogate`` returns None).
"""
from __future__ import annotations

import collections
from typing import NamedTuple
from collections.abc import Callable

import numpy as np

from ..layers.dense import Dense

__all__ = ["Backend", "FusedResult", "kernel_surrogate", "kernel_neuron", "compiled_neuron",
           "compiled_spec", "dense_only", "neuron_spec", "theta_per_neuron"]


class FusedResult(NamedTuple):
    """What a fused training step returns: the loss, per-layer gradient dicts (local
    parameter names) and the (B, C) class rates."""

    loss: float
    grads: list
    rates: np.ndarray


class Backend(NamedTuple):
    """Kernels that run the neurons of the clock engine (see the module doc)."""

    name: str
    lif_forward: Callable
    lif_backward: Callable
    fused: Callable | None
    calls: collections.Counter
    lif_forward_stateful: Callable | None = None
    lif_backward_stateful: Callable | None = None

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, fused={'yes' if self.fused is not None else 'no'})"


_CODES = None


def kernel_surrogate(surrogate):
    """``(code, param, param2)`` of a built-in surrogate for the compiled kernels
    (``kernels.scalar.SURROGATE_CODES``; ``param2`` its second shape parameter, 0.0 for a
    one-parameter one), or None for one they do not know (a user-defined surrogate: the
    engine then runs the NumPy reference)."""
    global _CODES
    if _CODES is None:
        from .. import surrogate as surrogates
        from ..kernels import scalar                  # plain Python: no numba import
        _CODES = {type(surrogates.get(name)): code for name, code in scalar.SURROGATE_CODES.items()
                  if name in surrogates.NAMES}                # every surrogate the kernels have
    code = _CODES.get(type(surrogate))
    if code is None:
        return None
    return code, float(surrogate.value), float(0.0 if surrogate.second is None else surrogate.second)


def kernel_neuron(neuron) -> bool:
    """True if ``neuron`` (one LIF shared by every layer) has only the paper's options
    (``LIF.is_paper_form``), the form the event kernels implement; the Numba CPU and CUDA
    kernels implement more (``compiled_neuron``)."""
    return not isinstance(neuron, (list, tuple)) and neuron.is_paper_form


def compiled_neuron(neuron) -> bool:
    """Whether the Numba CPU and CUDA kernels implement ``neuron`` (one layer's LIF): every
    option of docs/model.md Section 8 but the synapse (L1s), a per-neuron gain (a gain
    tied to a per-neuron decay), per-neuron v_leak, v_reset or v_init ((L2g), (L4h)) and
    the immediate and after-leak zero resets ((L2i), (L4i), (L2z)). The backward of a
    trained decay or synapse runs on the NumPy reference (``grad.bptt.run_backward``)."""
    return (not neuron.has_synapse and np.ndim(neuron.input_gain) == 0
            and not neuron.per_neuron_values       # v_leak, v_reset, v_init per neuron: NumPy
            and neuron.reset not in ("zero_after_leak",   # (L2z), (L2i), (L4i): the NumPy
                                     "subtract_no_delay",  # reference only
                                     "zero_no_delay")
            and not neuron.stateful)                     # Section 10: lif_forward_stateful


def compiled_spec(neuron, surrogate):
    """``kernel_surrogate(surrogate)`` when the Numba and CUDA kernels implement both the
    neuron and the surrogate (``compiled_neuron``), else None: the per-layer backends'
    one test for running their kernels or the NumPy reference."""
    spec = kernel_surrogate(surrogate)
    return spec if spec is not None and compiled_neuron(neuron) else None


def dense_only(layers, surrogate):
    """``kernel_surrogate(surrogate)`` if every layer is a plain ``Dense`` (what the fused
    steps take), else None."""
    spec = kernel_surrogate(surrogate)
    if spec is None or not all(type(layer) is Dense and layer.recurrent is None
                               for layer in layers):
        return None
    return spec


def neuron_spec(neuron, theta, dtype):
    """The ``kernels.spec.NeuronSpec`` of a layer's neurons: ``theta`` is the layer's
    thresholds per neuron (any shape), ``dtype`` the storage dtype. Every number is
    rounded as the NumPy reference rounds it (``neurons.lif_step``)."""
    from ..kernels import scalar
    from ..kernels.spec import NeuronSpec
    from ..neurons import initial_spikes, tau_like
    dtype = np.dtype(dtype)
    theta = np.asarray(theta, dtype=dtype)
    tau = tau_like(neuron, theta)
    if neuron.per_neuron_tau:
        tau_flat = np.ascontiguousarray(tau, dtype=dtype).reshape(-1)
    else:
        tau_flat = np.full(1, tau, dtype=dtype)
    has_leak = neuron.v_leak != 0.0
    leak = (np.ascontiguousarray(np.broadcast_to(np.asarray((1 - tau) * neuron.v_leak), theta.shape),
                                 dtype=dtype).reshape(-1) if has_leak else np.zeros(1, dtype))
    s_init = initial_spikes(dtype.type(neuron.v_init), theta, neuron)
    s_init = (np.zeros(1, dtype) if s_init is None
              else np.ascontiguousarray(s_init, dtype=dtype).reshape(-1))
    return NeuronSpec(tau=tau_flat, leak=leak, gain=dtype.type(neuron.input_gain),
                      v_reset=dtype.type(neuron.v_reset), v_init=dtype.type(neuron.v_init),
                      s_init=s_init, reset=scalar.RESET_CODES[neuron.reset],
                      strict=not neuron.spike_at_threshold, detach=neuron.detach_reset,
                      has_leak=has_leak, has_gain=neuron.input_gain != 1.0,
                      has_reset_potential=neuron.reset == "hard" and neuron.v_reset != 0.0,
                      per_tau=neuron.per_neuron_tau)


def theta_per_neuron(theta, shape, dtype) -> np.ndarray:
    """Thresholds broadcast to one per neuron of ``shape``, flat and contiguous."""
    return np.ascontiguousarray(np.broadcast_to(theta, shape), dtype=dtype).reshape(-1)
