"""The ANN baseline of a sweep (mode "ann"): the same dense shape with ReLU units instead of LIF.

What the spiking constraint costs is read against this: the same layer sizes (input, the
``hidden`` layers, ``n_classes * population`` outputs), the same weight init
U(-g/sqrt(fan_in), g/sqrt(fan_in)) with ``init_gain`` g, the same optimiser, learning-rate
schedule, weight decay, batch size, data order (``default_rng([seed, 2])``, as
``stlsim.train``) and loss. The differences, stated:

* input: the analog pixel values, once (no encoding, no time steps); event frames are
  averaged over their time bins;
* hidden units: h = max(0, W x); no thresholds, no biases (as the SNN's dense layers);
* output "rate": r_c = mean over the population of sigmoid(o), in (0, 1) like a firing rate,
  so the SNN's losses (``readout.loss_from_rates``: mse_rate, ce_rate) apply unchanged;
  the decision is argmax_c r_c;
* dense architectures only (``arch = "mlp"``).

The backward pass is written out below the forward, layer by layer (plain NumPy).
"""
from __future__ import annotations

import math
import time

import numpy as np

from .._checks import fail
from ..readout import decide, loss_from_rates

__all__ = ["train_ann", "ann_macs_per_sample"]


def _init(sizes, gain, seed, dtype):
    rng = np.random.default_rng([seed, 8])
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = gain / math.sqrt(n_in)
        params[f"{i}.weight"] = rng.uniform(-bound, bound, (n_out, n_in)).astype(dtype)
    return params


def _forward(params, x, n_layers, n_classes, population):
    acts = [x]
    h = x
    for i in range(n_layers):
        z = h @ params[f"{i}.weight"].T
        h = np.maximum(z, 0) if i < n_layers - 1 else z
        acts.append(h)
    sig = 1.0 / (1.0 + np.exp(-acts[-1]))
    rates = sig.reshape(x.shape[0], n_classes, population).mean(axis=2)
    return rates, acts, sig


def _backward(params, acts, sig, grad_rates, n_layers, population):
    B = grad_rates.shape[0]
    grad_o = np.repeat(grad_rates, population, axis=1).reshape(B, -1) / population * sig * (1 - sig)
    grads = {}
    g = grad_o
    for i in reversed(range(n_layers)):
        grads[f"{i}.weight"] = g.T @ acts[i]
        if i:
            g = (g @ params[f"{i}.weight"]) * (acts[i] > 0)      # ReLU'
    return grads


def _flat(x, frames):
    if frames:
        x = x.mean(axis=1)
    return x.reshape(x.shape[0], -1)


def ann_macs_per_sample(sizes) -> int:
    return int(sum(a * b for a, b in zip(sizes[:-1], sizes[1:])))


def train_ann(data, netcfg, config, *, record_path=None):
    """Train the ANN baseline; return (history, params, sizes, wall time). Writes a run record."""
    from ..train.optim import ExponentialDecay, make_optimizer

    if netcfg.arch != "mlp":
        raise fail("arch", "'mlp' for the ANN baseline", repr(netcfg.arch), "stlsim sweep")
    dtype = np.dtype(netcfg.dtype)
    frames = config.encoding == "frames"
    validation = None
    if config.val_fraction:          # the same held-out samples as the spiking runs
        from .config import validation_split

        data, x_val, y_val = validation_split(data, config.val_fraction)
        validation = (_flat(x_val, frames).astype(dtype), y_val)
    x_train = _flat(data.x_train, frames).astype(dtype)
    x_test = _flat(data.x_test, frames).astype(dtype)
    sizes = [x_train.shape[1]] + [int(h) for h in netcfg.hidden] + [data.n_classes * netcfg.population]
    n_layers = len(sizes) - 1
    params = _init(sizes, netcfg.init_gain, config.seed, dtype)
    optimizer = make_optimizer(config.optimizer, params, list(params), lr=config.lr,
                               weight_decay=config.weight_decay, momentum=config.momentum,
                               weight_decay_mode=config.weight_decay_mode)
    schedule = ExponentialDecay(optimizer, config.lr_decay)
    shuffle_rng = np.random.default_rng([config.seed, 2])
    history = {k: [] for k in ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr",
                               "epoch_time")}
    if validation is not None:
        history["val_accuracy"], history["val_loss"] = [], []
    n = x_train.shape[0]
    n_batches = -(-n // config.batch_size)
    started = time.perf_counter()
    for epoch in range(config.epochs):
        schedule.set_epoch(epoch)
        t0 = time.perf_counter()
        order = shuffle_rng.permutation(n)
        loss_sum, correct = 0.0, 0
        for k in range(n_batches):
            idx = order[k * config.batch_size:(k + 1) * config.batch_size]
            rates, acts, sig = _forward(params, x_train[idx], n_layers, data.n_classes, netcfg.population)
            loss, grad_rates = loss_from_rates(rates, data.y_train[idx], config.loss)
            if not np.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at epoch {epoch + 1}, batch {k + 1}")
            optimizer.step(_backward(params, acts, sig, grad_rates, n_layers, netcfg.population))
            loss_sum += loss * len(idx)
            correct += int(np.sum(decide(rates) == data.y_train[idx]))
        rates, _, _ = _forward(params, x_test, n_layers, data.n_classes, netcfg.population)
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(loss_sum / n)
        history["train_accuracy"].append(correct / n)
        history["test_loss"].append(loss_from_rates(rates, data.y_test, config.loss)[0])
        history["test_accuracy"].append(float(np.mean(decide(rates) == data.y_test)))
        history["lr"].append(optimizer.lr)
        history["epoch_time"].append(time.perf_counter() - t0)
        if validation is not None:
            rates, _, _ = _forward(params, validation[0], n_layers, data.n_classes, netcfg.population)
            history["val_accuracy"].append(float(np.mean(decide(rates) == validation[1])))
            history["val_loss"].append(loss_from_rates(rates, validation[1], config.loss)[0])
    wall = time.perf_counter() - started
    if record_path is not None:
        import dataclasses

        from ..train.records import save_record

        save_record(record_path, config={**dataclasses.asdict(config), "mode": "ann"},
                    network=dataclasses.asdict(netcfg),
                    conventions={"model": "ReLU ANN baseline (stlsim.train.ann)", "layers": sizes,
                                 "output": "mean over the population of sigmoid(o)", "dtype": dtype.name},
                    history=history, params=params, theta_init={}, checkpoint=None, interrupted=False)
    return history, params, sizes, wall
