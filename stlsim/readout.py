"""Population readout, rate losses and their gradients (``docs/model.md``, section 7).

The output layer has C * P neurons; class c owns neurons c*P .. c*P + P - 1.
    r_{b,c} = 1/(T P) sum_t sum_{p<P} s^L_{t, b, c P + p}
All T steps and all P neurons vote jointly on each class (the paper's GJDF).
"""
from __future__ import annotations

import numpy as np

from ._checks import check_choice

__all__ = ["LOSSES", "population_rates", "rates_backward", "loss_from_rates", "decide"]

LOSSES = ("mse_rate", "ce_rate")


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
