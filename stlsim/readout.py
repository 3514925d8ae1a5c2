"""Population readout, rate losses and their gradients (``docs/model.md``, section 7),
and membrane readouts with losses on the membrane (section 9.6).

The output layer has C * P neurons; class c owns neurons c*P .. c*P + P - 1.
    r_{b,c} = 1/(T P) sum_t sum_{p<P} s^L_{t, b, c P + p}
All T steps and all P neurons vote jointly on each class (the paper's GJDF).

A ``MembraneReadout`` reads the output spikes through a weight layer and a
``LeakyIntegrator`` instead; ``loss_from_membrane`` is a loss on its membrane u (T, B, C).
"""
from __future__ import annotations

import numpy as np

from ._checks import check_choice, fail, seed_streams
from .layers.base import Context, Layer
from .layers.leaky import LeakyIntegrator

__all__ = ["LOSSES", "population_rates", "rates_backward", "loss_from_rates", "decide",
           "MEMBRANE_LOSSES", "MembraneReadout", "loss_from_membrane"]

LOSSES = ("mse_rate", "ce_rate")
MEMBRANE_LOSSES = ("ce_membrane_sum", "ce_membrane_max")


def population_rates(spikes: np.ndarray, population: int) -> np.ndarray:
    """Rates (B, C) from output spikes (T, B, C*P)."""
    T, B, N = spikes.shape
    return spikes.reshape(T, B, N // population, population).mean(axis=(0, 3))


def rates_backward(grad_rates: np.ndarray, T: int, population: int) -> np.ndarray:
    """dL/ds^L_t (T, B, C*P) from dL/dr (B, C): each spike carries 1/(T P) of its rate."""
    per_spike = np.repeat(grad_rates, population, axis=1) / (T * population)
    return np.broadcast_to(per_spike, (T,) + per_spike.shape).copy()


def _onehot(labels: np.ndarray, n_classes: int, dtype) -> np.ndarray:
    onehot = np.zeros((labels.size, n_classes), dtype=dtype)
    onehot[np.arange(labels.size), labels] = 1
    return onehot


def loss_from_rates(rates: np.ndarray, labels: np.ndarray, loss: str = "mse_rate"):
    """Return ``(L, dL/dr)`` for rates (B, C) and integer labels (B,).

    mse_rate: L = 1/(B C) sum_{b,c} (r_{b,c} - onehot(y_b)_c)^2   (the paper's loss)
    ce_rate:  L = 1/B sum_b -log softmax(r_b)_{y_b}
    """
    check_choice(loss, "loss", LOSSES)
    B, C = rates.shape
    target = _onehot(labels, C, rates.dtype)
    if loss == "mse_rate":
        diff = rates - target
        return float(np.sum(diff * diff) / (B * C)), (2.0 / (B * C)) * diff
    shifted = rates - rates.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_softmax = shifted - log_z
    value = -float(np.sum(log_softmax[np.arange(B), labels]) / B)
    return value, (np.exp(log_softmax) - target) / B


def decide(rates: np.ndarray) -> np.ndarray:
    """The decision: argmax_c r_{b,c} (first class on ties)."""
    return np.argmax(rates, axis=1)


# ----------------------------------------------------------- membrane readouts (9.6) --

def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def loss_from_membrane(membrane: np.ndarray, labels: np.ndarray, loss: str = "ce_membrane_sum"):
    """Return ``(L, dL/du)`` for a readout membrane u (T, B, C) and integer labels (B,).

    ce_membrane_sum (M1): L = sum_t 1/B sum_b -log softmax(u_{t,b})_{y_b}
    ce_membrane_max (M2): L = 1/B sum_b -log softmax(max_t u_{t,b})_{y_b}, the gradient to
    the first t of the maximum.
    """
    check_choice(loss, "loss", MEMBRANE_LOSSES)
    T, B, C = membrane.shape
    labels = np.asarray(labels)
    target = _onehot(labels, C, membrane.dtype)
    if loss == "ce_membrane_sum":
        log_p = _log_softmax(membrane)
        value = -float(np.sum(log_p[:, np.arange(B), labels]) / B)
        return value, (np.exp(log_p) - target) / B                            # (M1)
    first = np.argmax(membrane, axis=0)                                         # t*_{b,c}
    peak = np.take_along_axis(membrane, first[None], axis=0)[0]
    log_p = _log_softmax(peak)
    value = -float(np.sum(log_p[np.arange(B), labels]) / B)
    grad = np.zeros_like(membrane)
    np.put_along_axis(grad, first[None], ((np.exp(log_p) - target) / B)[None], axis=0)   # (M2)
    return value, grad


class MembraneReadout:
    """A weight layer on the last spiking layer's output and a ``LeakyIntegrator`` after it
    (docs/model.md Section 9.6): ``MembraneReadout([Dense(100, 10), LeakyIntegrator(0.9)],
    in_shape=(100,))``. Layers without neurons (``ReLU``, ``Flatten``) may come first.

    ``forward(spikes)`` -> ``(membrane, cache)``, spikes (T, B, *in_shape);
    ``backward(dL/du, cache)`` -> ``(grads, dL/d(spikes))``, grads keyed like ``params``
    (``"{k}.weight"`` for part k). The weight layer's own threshold is not used."""

    def __init__(self, layers, *, in_shape, seed=0, dtype=np.float64):
        layers = list(layers)
        owner = "MembraneReadout"
        if not layers or not isinstance(layers[-1], LeakyIntegrator):
            raise fail("layers[-1]", "a LeakyIntegrator", type(layers[-1]).__name__ if layers
                       else "no layer", owner, TypeError)
        weights = [k for k, layer in enumerate(layers) if isinstance(layer, Layer) and layer.has_neurons]
        if len(weights) != 1 or weights[0] != len(layers) - 2:
            raise fail("layers", "one weight layer (Dense or Conv2d) right before the "
                       "LeakyIntegrator, and only layers without neurons before it",
                       ", ".join(type(layer).__name__ for layer in layers), owner, TypeError)
        for k, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise fail(f"layers[{k}]", "a stlsim layer", type(layer).__name__, owner, TypeError)
        self.layers = layers
        shape = tuple(in_shape)
        for k, layer in enumerate(layers):
            layer.build(shape, k)
            shape = tuple(layer.out_shape)
        self.in_shape, self.out_shape = tuple(in_shape), shape
        self.dtype = np.dtype(dtype)
        (rng,) = seed_streams(seed, 1, "seed", owner)
        self.params = {f"{k}.{name}": value for k, layer in enumerate(layers)     # not the weight
                       for name, value in layer.init_params(rng, self.dtype, 0.0).items()  # layer's theta
                       if not (layer.has_neurons and name == "theta")}

    def __repr__(self) -> str:
        return f"MembraneReadout([{', '.join(repr(layer) for layer in self.layers)}])"

    def _local(self, k):
        prefix = f"{k}."
        return {name[len(prefix):]: value for name, value in self.params.items()
                if name.startswith(prefix)}

    def forward(self, spikes):
        x, caches = spikes, []
        ctx = Context(training=False)
        for k, layer in enumerate(self.layers):
            x, cache = layer.forward(x, self._local(k), ctx)
            caches.append(cache)
        return x, caches

    def backward(self, grad_membrane, caches):
        grads, grad = {}, grad_membrane
        for k in range(len(self.layers) - 1, -1, -1):             # (BLI1)-(BLI2), then (B4), (B6)
            local, grad = self.layers[k].backward(grad, caches[k], self._local(k), need_input_grad=True)
            grads.update({f"{k}.{name}": value for name, value in local.items()})
        return grads, grad
