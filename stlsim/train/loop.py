"""The training loop: mini-batches, learning modes, evaluation, records, resume.

``train(net, data, config)`` trains one network in one learning mode and returns a
``RunResult``. Every random draw comes from a generator seeded from ``config.seed``:

* parameter init and dropout masks: the network's own (``Network(seed=...)``);
* shuffling: ``default_rng([seed, 2])``;
* input encoding of training batches: ``default_rng([seed, 3])``;
* input encoding of the test set at epoch e: ``default_rng([seed, 4, e])``.

so a run reproduces from its seed, and a run resumed from a checkpoint reproduces
the uninterrupted one bit for bit (float64, NumPy backend).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .._checks import check_choice, check_int, check_real, fail
from ..data.encoding import encode
from ..neurons import LIF
from ..readout import decide, loss_from_rates
from .modes import MODES, trainable_names
from .optim import ExponentialDecay, make_optimizer

__all__ = ["NetConfig", "TrainConfig", "RunResult", "build_network", "train", "evaluate",
           "ENCODINGS"]

ENCODINGS = ("rate", "direct", "frames")


@dataclass
class NetConfig:
    """How to build a network for a dataset (JSON-serialisable; stored in records)."""

    arch: str = "mlp"
    hidden: list = field(default_factory=lambda: [256])
    population: int = 10
    tau: float = 0.5
    theta_init: float = 2.0
    reset: str = "hard"
    detach_reset: bool = False
    surrogate: str = "atan"
    surrogate_param: float | None = None
    init_gain: float = 1.0
    dtype: str = "float64"


@dataclass
class TrainConfig:
    """Training hyper-parameters; defaults are the paper's reference code's (spec)."""

    mode: str = "stl"
    epochs: int = 20
    batch_size: int = 50
    timesteps: int = 4
    encoding: str = "rate"
    loss: str = "mse_rate"
    optimizer: str = "adam"
    lr: float = 1e-3
    theta_lr: float | None = None
    weight_decay: float = 1e-6
    lr_decay: float = 0.93
    momentum: float = 0.9
    seed: int = 0
    backend: str | None = None
    eval_batch_size: int = 500

    def validate(self):
        check_choice(self.mode, "mode", MODES, "TrainConfig")
        check_int(self.epochs, "epochs", low=0, owner="TrainConfig")
        check_int(self.batch_size, "batch_size", low=1, owner="TrainConfig")
        check_int(self.timesteps, "timesteps", low=1, owner="TrainConfig")
        check_choice(self.encoding, "encoding", ENCODINGS, "TrainConfig")
        check_choice(self.loss, "loss", ("mse_rate", "ce_rate"), "TrainConfig")
        check_choice(self.optimizer, "optimizer", ("adam", "sgd"), "TrainConfig")
        check_real(self.lr, "lr", low=0.0, owner="TrainConfig")
        if self.theta_lr is not None:
            check_real(self.theta_lr, "theta_lr", low=0.0, owner="TrainConfig")
        check_real(self.weight_decay, "weight_decay", low=0.0, owner="TrainConfig")
        check_real(self.lr_decay, "lr_decay", low=0.0, high=1.0, owner="TrainConfig")
        check_int(self.seed, "seed", low=0, owner="TrainConfig")
        check_int(self.eval_batch_size, "eval_batch_size", low=1, owner="TrainConfig")
        return self


@dataclass
class RunResult:
    """What ``train`` returns."""

    mode: str
    seed: int
    history: dict
    wall_time: float
    interrupted: bool
    theta_init: dict
    record_path: str | None = None


def build_network(netcfg: NetConfig, input_shape, n_classes: int, seed: int, backend=None):
    """Build the ``Network`` that ``netcfg`` describes for inputs of ``input_shape``."""
    import stlsim

    neuron = LIF(tau=netcfg.tau, theta_init=netcfg.theta_init, reset=netcfg.reset,
                 detach_reset=netcfg.detach_reset)
    surrogate = stlsim.surrogate.get(netcfg.surrogate, netcfg.surrogate_param)
    n_out = n_classes * netcfg.population
    if netcfg.arch == "mlp":
        sizes = [int(np.prod(input_shape))] + [int(h) for h in netcfg.hidden] + [n_out]
        layers = [stlsim.Dense(a, b, init_gain=netcfg.init_gain) for a, b in zip(sizes[:-1], sizes[1:])]
    else:
        try:
            from .. import architectures
        except ImportError:  # pragma: no cover - convolutional presets not installed
            raise fail("arch", "'mlp'", repr(netcfg.arch), "NetConfig") from None
        layers = architectures.build(netcfg.arch, input_shape=tuple(input_shape), n_classes=n_classes,
                                     population=netcfg.population)
    kwargs = {} if backend is None else {"backend": backend}
    return stlsim.Network(layers, neuron=neuron, surrogate=surrogate, population=netcfg.population,
                          seed=seed, dtype=np.dtype(netcfg.dtype), **kwargs)


def _shape_inputs(net, x, frames: bool = False):
    """Flatten images (per frame, for frame data) for a network whose first layer is dense."""
    lead = 2 if frames else 1
    if len(net.input_shape) == 1 and x.ndim > lead + 1:
        return x.reshape(x.shape[:lead] + (-1,))
    return x


def theta_stats(net) -> tuple:
    """Per spiking layer: mean and std of its thresholds."""
    means, stds = [], []
    for i in net.spiking_layers:
        theta = net.params[f"{i}.theta"]
        means.append(float(np.mean(theta)))
        stds.append(float(np.std(theta)))
    return means, stds


def evaluate(net, x, y, config: TrainConfig, rng, backend=None):
    """Test accuracy, loss and per-layer firing rates (mean spikes per neuron per step)."""
    x = _shape_inputs(net, x, config.encoding == "frames")
    n = x.shape[0]
    correct, loss_sum = 0, 0.0
    rate_sums = np.zeros(len(net.spiking_layers))
    for start in range(0, n, config.eval_batch_size):
        xb = x[start:start + config.eval_batch_size]
        yb = y[start:start + config.eval_batch_size]
        rec = net.forward(encode(xb, config.timesteps, config.encoding, rng, net.dtype), backend=backend)
        correct += int(np.sum(decide(rec.rates) == yb))
        loss_sum += loss_from_rates(rec.rates, yb, config.loss)[0] * len(yb)
        rate_sums += np.array(rec.firing_rates) * len(yb)
    return {"accuracy": correct / n, "loss": loss_sum / n, "firing_rate": (rate_sums / n).tolist()}


class Progress:
    """A minimal progress bar: live on a terminal, one line per epoch otherwise."""

    def __init__(self, label: str, total: int, stream=None, enabled: bool = True):
        self.label, self.total = label, total
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.live = enabled and getattr(self.stream, "isatty", lambda: False)()
        self.start = time.perf_counter()

    def update(self, done: int, text: str):
        if not self.live:
            return
        width = 24
        filled = int(width * done / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} {text}   ")
        self.stream.flush()

    def line(self, text: str):
        if not self.enabled:
            return
        if self.live:
            self.stream.write("\r")
        self.stream.write(f"{self.label} {text}\n")
        self.stream.flush()


_HISTORY_SCALARS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr",
                    "epoch_time")


def _rng_state(gen) -> dict:
    return copy.deepcopy(gen.bit_generator.state)


def _set_rng_state(gen, state):
    gen.bit_generator.state = state


def train(net, data, config: TrainConfig, *, record_path=None, resume=None, progress: bool = True,
          label: str | None = None, netcfg: NetConfig | None = None) -> RunResult:
    """Train ``net`` on ``data`` (a ``stlsim.data.Dataset``) in ``config.mode``.

    Writes the run record to ``record_path`` after every epoch (atomically) if given.
    ``resume``: path of a record to continue from its checkpoint. Ctrl-C stops after
    saving the finished epochs (``RunResult.interrupted`` is then True).
    """
    config.validate()
    names = trainable_names(net, config.mode)
    lr_per_param = None
    if config.theta_lr is not None:
        lr_per_param = {n: config.theta_lr for n in names if n.endswith(".theta")}
    optimizer = make_optimizer(config.optimizer, net.params, names, lr=config.lr,
                               weight_decay=config.weight_decay, lr_per_param=lr_per_param,
                               momentum=config.momentum)
    schedule = ExponentialDecay(optimizer, config.lr_decay)
    shuffle_rng = np.random.default_rng([config.seed, 2])
    encode_rng = np.random.default_rng([config.seed, 3])
    theta_init = {k: v.copy() for k, v in net.params.items() if k.endswith(".theta")}
    history = {k: [] for k in _HISTORY_SCALARS}
    layer_fields = {"firing_rate": [], "theta_mean": [], "theta_std": []}
    start_epoch = 0
    if resume is not None:
        from .records import load_record

        rec = load_record(resume)
        ck = rec["checkpoint"]
        if ck is None:
            raise fail("resume", "a record with a checkpoint", f"{resume} without one")
        for key, value in ck["params"].items():
            if key.startswith("buffer:"):            # BatchNorm running estimates
                name = key[len("buffer:"):]
                if name not in net.buffers or net.buffers[name].shape != np.shape(value):
                    raise fail("resume", f"a record of this network (buffer {name!r})",
                               f"shape {np.shape(value)}", "train")
                net.buffers[name][...] = value
                continue
            if key not in net.params or net.params[key].shape != np.shape(value):
                raise fail("resume", f"a record of this network (parameter {key!r})",
                           f"shape {np.shape(value)}", "train")
            net.params[key][...] = value
        optimizer.load_state_dict(ck["optimizer"])
        _set_rng_state(shuffle_rng, ck["rng"]["shuffle"])
        _set_rng_state(encode_rng, ck["rng"]["encode"])
        _set_rng_state(net.rng, ck["rng"]["network"])
        theta_init = {k: np.asarray(v) for k, v in rec["theta_init"].items()}
        n = ck["history_length"]
        for key in history:
            history[key] = list(rec["history"][key][:n])
        for key in layer_fields:
            layer_fields[key] = [list(row) for row in rec["history"][key][:n]]
        start_epoch = ck["epoch"]

    frames = config.encoding == "frames"
    x_train = _shape_inputs(net, data.x_train, frames)
    x_test = _shape_inputs(net, data.x_test, frames)
    n_batches = -(-x_train.shape[0] // config.batch_size)
    label = label or f"{config.mode.upper()} seed {config.seed}"
    bar = Progress(label, n_batches, enabled=progress)
    started = time.perf_counter()
    interrupted = False
    checkpoint = None

    def snapshot(epoch):
        state = {k: v.copy() for k, v in net.params.items()}
        state.update({f"buffer:{k}": v.copy() for k, v in getattr(net, "buffers", {}).items()})
        return {"epoch": epoch, "history_length": len(history["epoch"]),
                "params": state,
                "optimizer": {k: np.array(v, copy=True) for k, v in optimizer.state_dict().items()},
                "rng": {"shuffle": _rng_state(shuffle_rng), "encode": _rng_state(encode_rng),
                        "network": _rng_state(net.rng)}}

    def save():
        if record_path is None:
            return
        from .records import save_record

        full_history = dict(history)
        full_history.update(layer_fields)
        save_record(record_path, config=dataclasses.asdict(config),
                    network=dataclasses.asdict(netcfg) if netcfg else {"repr": repr(net)},
                    conventions=conventions_of(net), history=full_history,
                    params={**net.params, **{f"buffer:{k}": v for k, v in getattr(net, "buffers", {}).items()}},
                    theta_init=theta_init, checkpoint=checkpoint,
                    interrupted=interrupted)

    checkpoint = snapshot(start_epoch)
    try:
        for epoch in range(start_epoch, config.epochs):
            schedule.set_epoch(epoch)
            t0 = time.perf_counter()
            order = shuffle_rng.permutation(x_train.shape[0])
            loss_sum, correct, seen = 0.0, 0, 0
            for k in range(n_batches):
                idx = order[k * config.batch_size:(k + 1) * config.batch_size]
                xb = encode(x_train[idx], config.timesteps, config.encoding, encode_rng, net.dtype)
                yb = data.y_train[idx]
                loss, grads, rates = net.loss_and_grad(xb, yb, loss=config.loss, backend=config.backend,
                                                       training=True, return_rates=True)
                if not np.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss} at epoch {epoch + 1}, batch {k + 1}")
                optimizer.step(grads)
                loss_sum += loss * len(idx)
                correct += int(np.sum(decide(rates) == yb))
                seen += len(idx)
                bar.update(k + 1, f"epoch {epoch + 1}/{config.epochs} loss {loss_sum / seen:.4f} "
                                  f"acc {correct / seen:.3f}")
            test = evaluate(net, x_test, data.y_test, config, np.random.default_rng([config.seed, 4, epoch]),
                            backend=config.backend)
            means, stds = theta_stats(net)
            history["epoch"].append(epoch + 1)
            history["train_loss"].append(loss_sum / seen)
            history["train_accuracy"].append(correct / seen)
            history["test_loss"].append(test["loss"])
            history["test_accuracy"].append(test["accuracy"])
            history["lr"].append(optimizer.lr)
            history["epoch_time"].append(time.perf_counter() - t0)
            layer_fields["firing_rate"].append(test["firing_rate"])
            layer_fields["theta_mean"].append(means)
            layer_fields["theta_std"].append(stds)
            rates = " ".join(f"{r:.3f}" for r in test["firing_rate"])
            bar.line(f"epoch {epoch + 1}/{config.epochs}: train loss {loss_sum / seen:.4f} "
                     f"acc {correct / seen:.3f} | test acc {test['accuracy']:.3f} | rates {rates} "
                     f"| {time.perf_counter() - t0:.1f}s")
            checkpoint = snapshot(epoch + 1)
            save()
    except KeyboardInterrupt:
        interrupted = True
        bar.line("interrupted: saving the finished epochs")
        save()
    full_history = dict(history)
    full_history.update(layer_fields)
    return RunResult(mode=config.mode, seed=config.seed, history=full_history,
                     wall_time=time.perf_counter() - started, interrupted=interrupted,
                     theta_init=theta_init, record_path=None if record_path is None else str(record_path))


def conventions_of(net) -> dict:
    """The conventions a record must carry to be interpreted."""
    return {"tau": net.neuron.tau, "theta_init": net.neuron.theta_init, "reset": net.neuron.reset,
            "detach_reset": net.neuron.detach_reset, "heaviside_at_zero": 1,
            "surrogate": net.surrogate.name, "surrogate_params": net.surrogate.params,
            "population": net.population, "n_classes": net.n_classes, "dtype": net.dtype.name,
            "layout": "time-major (T, B, ...)", "architecture": repr(net)}


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
