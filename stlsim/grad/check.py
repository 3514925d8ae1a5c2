"""Gradient checking: central finite differences in smooth mode, and comparisons.

In smooth mode (forward uses the surrogate primitive P instead of H) the BPTT of
``stlsim.grad.bptt`` is the exact gradient of the loss, so float64 central
differences check it entry by entry.

``detach_reset=True`` is not the gradient of the forward function itself: it is the
gradient of the function in which the spikes inside the reset (L4) are held at the
values of the unperturbed run. ``finite_difference_grads`` builds exactly that
function (``reset_spikes`` frozen from the base run), so detached gradients are
checked as strictly as attached ones. ``Adaptation(detach=True)`` holds the spikes of
(L5a) the same way.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_int, check_real

__all__ = ["finite_difference_grads", "compare", "max_relative_error"]


def finite_difference_grads(net, x, y, *, loss="mse_rate", keys=None, step=None,
                            max_entries=None, seed=0, training=False) -> dict:
    """Fourth-order central differences of the smooth-mode loss w.r.t. ``net.params``.

    f'(p) ~ (f(p - 2h) - 8 f(p - h) + 8 f(p + h) - f(p + 2h)) / (12 h): the truncation
    error is O(h^4), so a larger h keeps round-off small. ``step=None`` picks
    h = 5e-4 for the smooth surrogates (atan, sigmoid) and h = 1e-4 for the piecewise
    ones (rectangular, superspike), whose kinks a wide stencil may straddle.

    Parameters
    ----------
    net : stlsim.Network
        The network; its parameters are perturbed in place and restored.
    x, y : numpy.ndarray
        Input (T, B, *input_shape) and labels (B,).
    loss : str, default "mse_rate"
        As for ``Network.loss``.
    keys : list of str, optional
        Parameter names to check (default: all).
    step : float, optional
        Finite-difference step h.
    max_entries : int, optional
        If given, check at most this many randomly chosen entries per parameter (others
        are NaN in the result).
    seed : int, default 0
        Seed of the choice of entries.
    training : bool, default False
        Evaluate the loss in training mode (BatchNorm batch statistics, dropout). Every
        evaluation then replays ``net.rng`` from its state at this call, so all see the
        same dropout masks; ``net.rng`` and ``net.buffers`` are restored at the end.
        Compare with ``loss_and_grad(..., training=True)`` run from that same state.

    Returns
    -------
    dict of str to numpy.ndarray
        Arrays shaped like the parameters.
    """
    if step is None:
        step = 1e-4 if net.surrogate.name in ("rectangular", "superspike") else 5e-4
    step = check_real(step, "step", low=0.0, low_open=True, owner="finite_difference_grads")
    if max_entries is not None:
        max_entries = check_int(max_entries, "max_entries", low=1, owner="finite_difference_grads")
    keys = list(net.params) if keys is None else list(keys)
    training = bool(training)
    rng_state = net.rng.bit_generator.state
    saved_buffers = {key: value.copy() for key, value in net.buffers.items()}
    reset_spikes = None
    if any(n.detach_reset or (n.adaptive and n.adaptation.detach) for n in net.neurons):
        _, _, tape, _, _, _ = net._forward(x, smooth=True, backend="numpy", engine="clock",
                                           training=training)
        reset_spikes = [None if s is None else s.copy() for s in tape.spikes]

    def value():
        net.rng.bit_generator.state = rng_state      # the same dropout masks every time
        return net.loss(x, y, loss=loss, smooth=True, backend="numpy", engine="clock",
                        training=training, reset_spikes=reset_spikes)

    rng = np.random.default_rng(seed)
    result = {}
    for key in keys:
        param = net.params[key]
        flat = param.reshape(-1)
        estimate = np.full(flat.size, np.nan)
        entries = np.arange(flat.size)
        if max_entries is not None and flat.size > max_entries:
            entries = np.sort(rng.choice(flat.size, max_entries, replace=False))
        for j in entries:
            saved = flat[j]
            f = {}
            for k in (-2, -1, 1, 2):
                flat[j] = saved + k * step
                f[k] = value()
            flat[j] = saved
            estimate[j] = (f[-2] - 8 * f[-1] + 8 * f[1] - f[2]) / (12 * step)
        result[key] = estimate.reshape(param.shape)
    net.rng.bit_generator.state = rng_state
    for key, value in saved_buffers.items():
        net.buffers[key][...] = value
    return result


def max_relative_error(a, b, floor=None) -> float:
    """max |a - b| / max(|a|, |b|, floor) over entries where both are defined.

    ``floor`` defaults to 1e-5 + 1e-4 times the tensor's largest magnitude. Entries
    far below it (often exact zeros, e.g. under a rectangular surrogate) are judged
    against the floor rather than against themselves: there the float64 round-off of
    a finite difference (~1e-12 for a loss of order 1) would dominate. With the
    default floor, ``max_rel <= 1e-6`` means every entry agrees to 1e-6 relative or,
    for entries below ~1e-5, to ~1e-11 absolute.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    if not ok.any():
        return 0.0
    a, b = a[ok], b[ok]
    if floor is None:
        floor = 1e-5 + 1e-4 * max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    floor = max(floor, np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)))


def compare(grads_a: dict, grads_b: dict, floor=None) -> dict:
    """Per-parameter max absolute and relative errors between two gradient dicts."""
    table = {}
    for key in grads_a:
        a = np.asarray(grads_a[key], dtype=np.float64)
        b = np.asarray(grads_b[key], dtype=np.float64)
        ok = ~(np.isnan(a) | np.isnan(b))
        abs_err = float(np.max(np.abs(a[ok] - b[ok]))) if ok.any() else 0.0
        table[key] = {"max_abs": abs_err, "max_rel": max_relative_error(a, b, floor),
                      "scale": float(np.max(np.abs(a[ok]))) if ok.any() else 0.0}
    return table
