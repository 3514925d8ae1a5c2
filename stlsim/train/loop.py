"""The training loop: mini-batches, learning modes, evaluation, records, resume.

``train(net, data, config)`` trains one network in one learning mode and returns a
``RunResult``. Every random draw comes from a generator seeded from ``config.seed``:

* parameter init and dropout masks: the network's own (``Network(seed=...)``);
* shuffling: ``default_rng([seed, 2])``;
* input encoding of training batches: ``default_rng([seed, 3])``;
* input encoding of the test set at epoch e: ``default_rng([seed, 4, e])``;
* input encoding of the validation set at epoch e: ``default_rng([seed, 5, e])`` (only when
  ``config.val_fraction`` > 0: ``stlsim.train.config.validation_split`` holds out that share
  of the training data, the same samples for every mode and seed);

so a run reproduces from its seed, and a run resumed from a checkpoint reproduces
the uninterrupted one bit for bit (float64, NumPy backend).

A resume continues only the run its record holds: the learning mode, seed, training
configuration (all but ``epochs``, ``backend`` and ``eval_batch_size``), network
description, neuron conventions, dtype and optimizer state must all match, or ``train``
refuses, naming the first field that differs, unless that field is named in
``override`` (the record then logs the change). The record also holds its data set's
identity (name, sizes, a sha256 fingerprint of inputs and labels) and the engine it ran
on: a resume on other data is refused, on another engine unless ``override`` names it.

Ctrl-C, SIGTERM, SIGHUP and SIGQUIT set a flag that the loop checks between batches: the finished epochs
are saved and ``RunResult.interrupted`` is True. A save in progress is never cut short
(a second signal during it waits for the save to finish).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time

import numpy as np

from .._checks import fail
from .._io import say
from ..data.encoding import encode, shape_inputs
from ..readout import decide, loss_from_rates
from .config import ENCODINGS, NetConfig, RunResult, TrainConfig, build_network, validation_split
from .modes import trainable_names
from .optim import ExponentialDecay, decayed_names, make_optimizer
from .signals import interrupt_guard

__all__ = ["train", "evaluate", "theta_stats", "check_resume", "check_resume_data", "data_identity",
           "conventions_of", "RESUME_FREE",
           # defined in config.py and signals.py; kept importable from here
           "NetConfig", "TrainConfig", "RunResult", "build_network", "ENCODINGS", "interrupt_guard"]

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
    x = shape_inputs(net, x, config.encoding == "frames")
    n = x.shape[0]
    correct, loss_sum = 0, 0.0
    rate_sums = np.zeros(len(net.spiking_layers))
    for start in range(0, n, config.eval_batch_size):
        xb = x[start:start + config.eval_batch_size]
        yb = y[start:start + config.eval_batch_size]
        engine = config.engine or net.engine          # the event engine builds no dense m
        rec = net.forward(encode(xb, config.timesteps, config.encoding, rng, net.dtype), backend=backend,
                          engine=engine, record="spikes" if engine == "event" else "all")
        correct += int(np.sum(decide(rec.rates) == yb))
        loss_sum += loss_from_rates(rec.rates, yb, config.loss)[0] * len(yb)
        rate_sums += np.array(rec.firing_rates) * len(yb)
    return {"accuracy": correct / n, "loss": loss_sum / n, "firing_rate": (rate_sums / n).tolist()}


class Progress:
    """Progress of one run: on a terminal a live bar over all its batches (tqdm when installed)
    with the run's ETA; one line per epoch otherwise, through ``stlsim._io.say`` (the
    ``stlsim.train`` logger once logging is configured, stderr if not)."""

    def __init__(self, label: str, total: int, stream=None, enabled: bool = True, epochs: int = 1,
                 start_epoch: int = 0):
        self.label, self.total = label, total
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.live = enabled and getattr(self.stream, "isatty", lambda: False)()
        self.steps = max(total * max(epochs - start_epoch, 1), 1)       # batches this call will train
        self.done_steps = 0
        self.start = time.perf_counter()
        self.bar = None
        if self.live:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=self.steps, desc=label, file=self.stream, leave=False, dynamic_ncols=True)

    def eta(self) -> str:
        if not self.done_steps:
            return "eta ?"
        left = (time.perf_counter() - self.start) / self.done_steps * (self.steps - self.done_steps)
        return f"eta {left:.0f}s" if left < 120 else f"eta {left / 60:.1f} min"

    def update(self, done: int, text: str):
        self.done_steps += 1
        if not self.live:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(text, refresh=False)
            return
        width = 24
        filled = int(width * done / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} {text} {self.eta()}   ")
        self.stream.flush()

    def line(self, text: str):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(f"{self.label} {text}", file=self.stream)
            return
        if self.live:
            self.stream.write(f"\r{self.label} {text}\n")
            self.stream.flush()
            return
        say(f"{self.label} {text} ({self.eta()})", "stlsim.train")

    def close(self):
        if self.bar is not None:
            self.bar.close()


_HISTORY_SCALARS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr",
                    "epoch_time")


def _rng_state(gen) -> dict:
    return copy.deepcopy(gen.bit_generator.state)


def _set_rng_state(gen, state):
    gen.bit_generator.state = state


# TrainConfig fields a resume may change freely: how far to train and where to compute.
RESUME_FREE = ("epochs", "backend", "eval_batch_size", "engine")


def _normal(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _layers_part(architecture):
    return str(architecture).split(", neuron=")[0]


def _run_fields(config_dict: dict, network: dict | None, conventions: dict) -> list:
    """(field, value) pairs that define a run, in the order they are compared."""
    fields = [(k, config_dict.get(k)) for k in ("mode", "seed")]
    fields += [(k, config_dict.get(k)) for k in sorted(config_dict)
               if k not in ("mode", "seed") + RESUME_FREE]
    if network is not None and "repr" not in network:
        fields += [(f"network.{k}", network.get(k)) for k in sorted(network)]
    conv = dict(conventions)
    conv["architecture"] = _layers_part(conv.get("architecture"))
    fields += [(f"conventions.{k}", conv.get(k)) for k in sorted(conv)]
    return [(name, _normal(value)) for name, value in fields]


def _leaf(field_name: str) -> str:
    return field_name.rsplit(".", 1)[-1]


def check_resume(record: dict, source, config: TrainConfig, net, netcfg=None, override=()) -> list:
    """Refuse a record of another run; return the changes ``override`` allowed (logged).

    ``override``: names of fields (``lr``, ``mode``, ``tau``, ...) that may differ from the
    record; each change is returned as {field, recorded, requested, at_epoch}.
    """
    override = set(override or ())
    if not isinstance(record.get("config"), dict) or not isinstance(record.get("conventions"), dict):
        raise fail("resume", "a stlsim run record with its config and conventions",
                   f"the record {source} without them", "train")
    requested = _run_fields(dataclasses.asdict(config), dataclasses.asdict(netcfg) if netcfg else None,
                            conventions_of(net))
    known = {_leaf(name) for name, _ in requested} | set(RESUME_FREE)
    unknown = sorted(override - known)
    if unknown:
        raise fail("override", f"names of run fields ({', '.join(sorted(known))})", repr(unknown[0]), "train")
    # Fields added to stlsim after a record was written take their defaults there.
    network_recorded = isinstance(record.get("network"), dict) and "repr" not in record["network"]
    recorded_config = {**dataclasses.asdict(TrainConfig()), **record["config"]}
    recorded_network = {**dataclasses.asdict(NetConfig()), **record["network"]} if network_recorded else None
    recorded = dict(_run_fields(recorded_config, recorded_network, record["conventions"]))
    epoch = record["checkpoint"]["epoch"] if record.get("checkpoint") else 0
    changes = []
    for name, value in requested:
        if name.startswith("network.") and not network_recorded:
            continue
        if name.startswith("conventions.") and name[len("conventions."):] not in record["conventions"]:
            continue                     # a convention recorded only by later versions
        if recorded.get(name) == value:
            continue
        if _leaf(name) in override:
            changes.append({"field": name, "recorded": recorded.get(name), "requested": value, "at_epoch": epoch})
            continue
        hint = f" (to continue it anyway with the new value, pass --override {_leaf(name)}=VALUE)"
        raise fail("resume", f"a record of this run ({name} {value!r})",
                   f"the record {source} of another run, whose {name} is {recorded.get(name)!r}{hint}", "train")
    return changes


def data_identity(data) -> dict:
    """What a record keeps of its data set: name, sizes, classes, sample shape and a sha256
    fingerprint of the inputs and labels (another file of the same name and shape differs there)."""
    import hashlib

    h = hashlib.sha256()
    for key in ("x_train", "y_train", "x_test", "y_test"):
        arr = np.ascontiguousarray(getattr(data, key))
        h.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(memoryview(arr).cast("B"))
    return {"name": str(getattr(data, "name", "")), "n_train": int(len(data.y_train)),
            "n_test": int(len(data.y_test)), "n_classes": int(data.n_classes),
            "sample_shape": [int(v) for v in np.shape(data.x_train)[1:]], "fingerprint": "sha256:" + h.hexdigest()}


def check_resume_data(record: dict, source, identity: dict, engine: str, override=()):
    """Refuse to continue a record on other data or another engine; errors name the field."""
    recorded = record.get("data")
    if isinstance(recorded, dict):          # records written before stlsim kept it: nothing to check
        for key in ("name", "n_train", "n_test", "n_classes", "sample_shape", "fingerprint"):
            if key in recorded and _normal(recorded[key]) != _normal(identity[key]):
                what = "its inputs or labels differ" if key == "fingerprint" else f"its {key} is {recorded[key]!r}"
                raise fail("resume", f"a record of this run's data (data {key} {identity[key]!r})",
                           f"the record {source}, trained on other data ({what})", "train")
    if record.get("engine") not in (None, engine) and "engine" not in set(override or ()):
        raise fail("resume", f"a record of this run's engine ({engine!r})",
                   f"the record {source}, trained on the engine {record['engine']!r} (to continue it there, "
                   f"pass --override engine={engine})", "train")


def _restore_checkpoint(rec, source, net, optimizer, config):
    """Check a record's checkpoint against ``net`` and ``optimizer``, entry by entry."""
    ck = rec["checkpoint"]
    expected = set(net.params) | {f"buffer:{k}" for k in getattr(net, "buffers", {})}
    have = set(ck["params"])
    for key in sorted(expected ^ have):
        what = "is missing" if key in expected else "is not a parameter of this network"
        raise fail("resume", "a record of this network with every parameter",
                   f"the record {source} whose checkpoint entry {key!r} {what}", "train")
    for key, value in ck["params"].items():
        target = net.buffers[key[len("buffer:"):]] if key.startswith("buffer:") else net.params[key]
        if target.shape != np.shape(value):
            raise fail("resume", f"a record of this network ({key!r} of shape {target.shape})",
                       f"shape {np.shape(value)} in {source}", "train")
    fresh = optimizer.state_dict()
    state = ck["optimizer"]
    required = set(fresh)
    allowed = required | {f"{prefix}/{n}" for n in optimizer.names for prefix in ("m", "v", "buf")
                          if any(k.startswith(prefix + "/") for k in fresh) or prefix == "buf"}
    for key in sorted((required - set(state)) | (set(state) - allowed)):
        what = "is missing" if key in required else "does not belong to this optimizer"
        raise fail("resume", f"a record with {config.optimizer} optimizer state for these parameters",
                   f"the record {source} whose optimizer entry {key!r} {what}", "train")
    for key, value in state.items():
        if "/" in key:
            name = key.split("/", 1)[1]
            if np.shape(value) != net.params[name].shape:
                raise fail("resume", f"optimizer state {key!r} of shape {net.params[name].shape}",
                           f"shape {np.shape(value)} in {source}", "train")
    thetas = {k: v.shape for k, v in net.params.items() if k.endswith(".theta")}
    got = {k: np.shape(v) for k, v in rec["theta_init"].items()}
    if got != thetas:
        raise fail("resume", "a record whose theta_init matches this network's thresholds",
                   f"the record {source} with theta_init {sorted(got)}", "train")
    n = ck["history_length"]
    for key in _HISTORY_SCALARS + ("firing_rate", "theta_mean", "theta_std"):
        if key not in rec["history"] or len(rec["history"][key]) < n:
            raise fail("resume", f"a record with {n} epochs of history field {key!r}",
                       f"the record {source} without them", "train")
    for key, value in ck["params"].items():
        target = net.buffers[key[len("buffer:"):]] if key.startswith("buffer:") else net.params[key]
        target[...] = value
    optimizer.load_state_dict(state)


def _check_gradients(grads: dict, names, epoch: int, batch: int):
    for name in names:
        g = grads.get(name)
        if g is not None and not np.all(np.isfinite(g)):
            n_bad = int(np.size(g) - np.count_nonzero(np.isfinite(g)))
            raise FloatingPointError(f"the gradient of {name!r} has {n_bad} non-finite values at epoch "
                                     f"{epoch + 1}, batch {batch + 1}; training stopped before using it")


def _validation_part(data, config, history):
    """(training data without the held-out part, x_val, y_val) when ``config.val_fraction`` > 0,
    adding ``val_accuracy`` and ``val_loss`` to ``history``; else None."""
    if not config.val_fraction:
        return None
    history["val_accuracy"], history["val_loss"] = [], []
    return validation_split(data, config.val_fraction)


def _validate_epoch(net, validation, config, epoch, history):
    """Validation accuracy and loss after ``epoch`` (encoder draws: ``default_rng([seed, 5, epoch])``)."""
    if validation is None:
        return
    val = evaluate(net, validation[1], validation[2], config, np.random.default_rng([config.seed, 5, epoch]),
                   backend=config.backend)
    history["val_accuracy"].append(val["accuracy"])
    history["val_loss"].append(val["loss"])


def train(net, data, config: TrainConfig, *, record_path=None, resume=None, progress: bool = True,
          label: str | None = None, netcfg: NetConfig | None = None, override=()) -> RunResult:
    """Train ``net`` on ``data`` (a ``stlsim.data.Dataset``) in ``config.mode``.

    Writes the run record to ``record_path`` after every epoch (atomically) if given.
    ``resume``: path of a record to continue from its checkpoint; it must hold this run
    (see the module docstring) except for the fields named in ``override``. Ctrl-C or
    SIGTERM stops between batches after saving the finished epochs
    (``RunResult.interrupted`` is then True). A non-finite loss or gradient raises
    ``FloatingPointError`` before the optimizer uses it.
    """
    config.validate()
    names = trainable_names(net, config.mode)
    lr_per_param = None
    if config.theta_lr is not None:
        thresholds = set(net.param_groups()["threshold"])    # theta, and a trained adaptation
        lr_per_param = {n: config.theta_lr for n in names if n in thresholds}
    optimizer = make_optimizer(config.optimizer, net.params, names, lr=config.lr,
                               weight_decay=config.weight_decay, lr_per_param=lr_per_param,
                               momentum=config.momentum, weight_decay_mode=config.weight_decay_mode,
                               decay_names=decayed_names(net, names, config.decay_thresholds))
    schedule = ExponentialDecay(optimizer, config.lr_decay)
    shuffle_rng = np.random.default_rng([config.seed, 2])
    encode_rng = np.random.default_rng([config.seed, 3])
    theta_init = {k: v.copy() for k, v in net.params.items() if k.endswith(".theta")}
    history = {k: [] for k in _HISTORY_SCALARS}
    validation = _validation_part(data, config, history)      # None unless val_fraction > 0
    if validation is not None:
        data = validation[0]
    layer_fields = {"firing_rate": [], "theta_mean": [], "theta_std": []}
    start_epoch = 0
    overrides_log = []
    identity = data_identity(data)
    engine = config.engine or net.engine
    if resume is not None:
        from .records import load_record

        rec = load_record(resume)
        ck = rec["checkpoint"]
        if ck is None:
            raise fail("resume", "a record with a checkpoint", f"{resume} without one")
        changes = check_resume(rec, resume, config, net, netcfg, override)
        check_resume_data(rec, resume, identity, engine, override)
        _restore_checkpoint(rec, resume, net, optimizer, config)
        overrides_log = list(rec.get("overrides", [])) + changes
        _set_rng_state(shuffle_rng, ck["rng"]["shuffle"])
        _set_rng_state(encode_rng, ck["rng"]["encode"])
        _set_rng_state(net.rng, ck["rng"]["network"])
        theta_init = {k: np.asarray(v) for k, v in rec["theta_init"].items()}
        n = ck["history_length"]
        for key in history:
            history[key] = list(rec["history"].get(key, [])[:n])
        for key in layer_fields:
            layer_fields[key] = [list(row) for row in rec["history"][key][:n]]
        start_epoch = ck["epoch"]

    for split in ("train", "test"):
        if len(getattr(data, f"y_{split}")) == 0:
            raise fail("data", f"a data set with at least one {split}ing sample",
                       f"an empty {split} split ({getattr(data, 'name', 'data')!r})", "train")
    frames = config.encoding == "frames"
    x_train = shape_inputs(net, data.x_train, frames)
    x_test = shape_inputs(net, data.x_test, frames)
    n_batches = -(-x_train.shape[0] // config.batch_size)
    label = label or f"{config.mode.upper()} seed {config.seed}"
    bar = Progress(label, n_batches, enabled=progress, epochs=config.epochs, start_epoch=start_epoch)
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
                    interrupted=interrupted, overrides=overrides_log, data=identity, engine=engine)

    checkpoint = snapshot(start_epoch)
    with interrupt_guard() as signals:
        try:
            for epoch in range(start_epoch, config.epochs):
                schedule.set_epoch(epoch)
                t0 = time.perf_counter()
                order = shuffle_rng.permutation(x_train.shape[0])
                loss_sum, correct, seen = 0.0, 0, 0
                for k in range(n_batches):
                    signals.check()
                    idx = order[k * config.batch_size:(k + 1) * config.batch_size]
                    xb = encode(x_train[idx], config.timesteps, config.encoding, encode_rng, net.dtype)
                    yb = data.y_train[idx]
                    loss, grads, rates = net.loss_and_grad(xb, yb, loss=config.loss, backend=config.backend,
                                                           engine=config.engine, training=True,
                                                           return_rates=True)
                    if not np.isfinite(loss):
                        raise FloatingPointError(f"loss became {loss} at epoch {epoch + 1}, batch {k + 1}")
                    _check_gradients(grads, names, epoch, k)
                    optimizer.step(grads)
                    loss_sum += loss * len(idx)
                    correct += int(np.sum(decide(rates) == yb))
                    seen += len(idx)
                    bar.update(k + 1, f"epoch {epoch + 1}/{config.epochs} loss {loss_sum / seen:.4f} "
                                      f"acc {correct / seen:.3f}")
                test = evaluate(net, x_test, data.y_test, config,
                                np.random.default_rng([config.seed, 4, epoch]), backend=config.backend)
                means, stds = theta_stats(net)
                _validate_epoch(net, validation, config, epoch, history)
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
                with signals.protect():
                    save()
        except KeyboardInterrupt:
            interrupted = True
            with signals.protect():          # a second Ctrl-C must not cut this save short
                bar.line("interrupted: saving the finished epochs")
                save()
        finally:
            bar.close()
    full_history = dict(history)
    full_history.update(layer_fields)
    return RunResult(mode=config.mode, seed=config.seed, history=full_history,
                     wall_time=time.perf_counter() - started, interrupted=interrupted,
                     theta_init=theta_init, record_path=None if record_path is None else str(record_path))

def conventions_of(net) -> dict:
    """The conventions a record must carry to be interpreted."""
    neuron = net.neuron
    out = {"tau": neuron.tau if not neuron.per_neuron_tau else neuron.tau.tolist(),
           "theta_init": neuron.theta_init, "reset": neuron.reset,
           "detach_reset": neuron.detach_reset,
           "heaviside_at_zero": int(neuron.spike_at_threshold),
           "surrogate": net.surrogate.name, "surrogate_params": net.surrogate.params,
           "population": net.population, "n_classes": net.n_classes, "dtype": net.dtype.name,
           "layout": "time-major (T, B, ...)", "architecture": repr(net)}
    neurons = getattr(net, "neurons", [neuron])
    if any(not n.is_paper_form for n in neurons) or any(n != neuron for n in neurons):
        out["neurons"] = [n.settings() for n in neurons]     # docs/model.md section 8
    return out


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
