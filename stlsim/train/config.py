"""What a training run is: the network's and the training's configuration, and the factory.

``NetConfig`` and ``TrainConfig`` are plain, JSON-serialisable dataclasses (records store
them); their defaults are what ``stlsim compare`` runs with no flags on the bundled digits
(``stlsim.experiment.spec`` is the option table of a run and fills the data set's defaults).
``build_network`` builds the ``Network`` a ``NetConfig`` describes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._checks import check_choice, check_int, check_real, fail
from ..neurons import LIF, Adaptation
from .modes import MODES
from .optim import WEIGHT_DECAY_MODES

__all__ = ["ENCODINGS", "NetConfig", "TrainConfig", "RunResult", "build_network", "validation_split",
           "VALIDATION_SPLIT_SEED"]

ENCODINGS = ("rate", "direct", "frames")
VALIDATION_SPLIT_SEED = 25     # the validation split's own seed: the same split for every mode and seed


@dataclass
class NetConfig:
    """How to build a network for a dataset (JSON-serialisable; stored in records).

    The defaults are those of ``stlsim compare`` with no flags (the bundled digits;
    ``stlsim.experiment.spec`` holds the option table they come from).
    """

    arch: str = "mlp"
    hidden: list = field(default_factory=lambda: [256])
    population: int = 10
    tau: float = 0.5
    theta_init: float = 1.0
    reset: str = "hard"
    detach_reset: bool = False
    surrogate: str = "atan"
    surrogate_param: float | None = None
    init_gain: float = 4.0
    dtype: str = "float32"
    threshold_sharing: str = "neuron"
    recurrent: str = "none"          # hidden layers: "none", "all" (V: N x N) or "one" (V: N)
    adaptation: bool = False         # adaptive thresholds in the hidden layers (docs/model.md Section 10)
    adapt_beta: float = 0.09
    adapt_rho: float = 0.95
    learn_adapt_beta: bool = False
    learn_adapt_rho: bool = False

    def validate(self):
        """Check the fields a network is built from (``build_network`` calls this)."""
        if not isinstance(self.arch, str) or not self.arch:
            raise fail("arch", "a non-empty string", repr(self.arch), "NetConfig", TypeError)
        hidden = self.hidden
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (list, tuple)):
            raise fail("hidden", "a list of positive layer sizes such as [256]",
                       f"{type(hidden).__name__} {hidden!r}", "NetConfig", TypeError)
        for i, size in enumerate(hidden):
            check_int(size, f"hidden[{i}]", low=1, owner="NetConfig")
        check_int(self.population, "population", low=1, owner="NetConfig")
        check_real(self.tau, "tau", low=0.0, high=1.0, owner="NetConfig")
        check_real(self.theta_init, "theta_init", owner="NetConfig")
        check_real(self.init_gain, "init_gain", low=0.0, low_open=True, owner="NetConfig")
        if not isinstance(self.detach_reset, bool):
            raise fail("detach_reset", "True or False", repr(self.detach_reset), "NetConfig", TypeError)
        check_choice(self.dtype, "dtype", ("float32", "float64"), "NetConfig")
        check_choice(self.threshold_sharing, "threshold_sharing", ("neuron", "channel", "layer"), "NetConfig")
        if self.arch == "mlp" and self.threshold_sharing == "channel":
            raise fail("threshold_sharing", "'neuron' or 'layer' for the dense 'mlp' (a dense layer has no "
                       "channels; 'channel' needs a convolutional arch)", repr(self.threshold_sharing), "NetConfig")
        check_choice(self.recurrent, "recurrent", ("none", "all", "one"), "NetConfig")
        for name in ("adaptation", "learn_adapt_beta", "learn_adapt_rho"):
            if not isinstance(getattr(self, name), bool):
                raise fail(name, "True or False", repr(getattr(self, name)), "NetConfig", TypeError)
        check_real(self.adapt_beta, "adapt_beta", low=0.0, owner="NetConfig")
        check_real(self.adapt_rho, "adapt_rho", low=0.0, high=1.0, owner="NetConfig")
        if self.arch != "mlp" and (self.recurrent != "none" or self.adaptation):
            raise fail("arch", "'mlp' for recurrent or adaptive hidden layers (the dense network; "
                       "the convolutional presets have neither)", repr(self.arch), "NetConfig")
        if not self.hidden and (self.recurrent != "none" or self.adaptation):
            raise fail("hidden", "at least one hidden layer for recurrent or adaptive hidden layers",
                       repr(self.hidden), "NetConfig")
        if not self.adaptation:
            changed = [f"{name}={getattr(self, name)!r}" for name, default in _ADAPTATION_DEFAULTS.items()
                       if getattr(self, name) != default]
            if changed:
                raise fail("adaptation", "True (on) where the adaptation is set (" + ", ".join(changed) +
                           "): without it these settings would change nothing", repr(self.adaptation),
                           "NetConfig")
        return self

    def hidden_neuron(self) -> LIF:
        """The LIF of the hidden layers: the output layer's, plus the adaptation when it is on."""
        adaptation = None
        if self.adaptation:
            adaptation = Adaptation(beta=float(self.adapt_beta), rho=float(self.adapt_rho),
                                    learn_beta=self.learn_adapt_beta, learn_rho=self.learn_adapt_rho)
        return LIF(tau=self.tau, theta_init=self.theta_init, reset=self.reset, detach_reset=self.detach_reset,
                   adaptation=adaptation)


_ADAPTATION_DEFAULTS = {"adapt_beta": 0.09, "adapt_rho": 0.95, "learn_adapt_beta": False, "learn_adapt_rho": False}


@dataclass
class TrainConfig:
    """Training hyper-parameters: the defaults of ``stlsim compare`` with no flags (the bundled
    digits: 30 epochs at T = 8, rate coding), the optimizer settings of the paper's code."""

    mode: str = "stl"
    epochs: int = 30
    batch_size: int = 50
    timesteps: int = 8
    encoding: str = "rate"
    loss: str = "mse_rate"
    optimizer: str = "adam"
    lr: float = 1e-3
    theta_lr: float | None = None
    weight_decay: float = 1e-6
    weight_decay_mode: str = "coupled"  # "coupled" (L2 in the gradient, the paper's), "decoupled" (AdamW), "none"
    decay_thresholds: bool = True       # decay thresholds and trained decays too (the paper's code does)
    val_fraction: float = 0.0           # share of the training data held out for validation (0: none)
    lr_decay: float = 0.93
    momentum: float = 0.9
    seed: int = 0
    backend: str | None = None
    eval_batch_size: int = 500
    engine: str | None = None           # "clock" or "event" (default: the network's)

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
        check_choice(self.weight_decay_mode, "weight_decay_mode", WEIGHT_DECAY_MODES, "TrainConfig")
        if not isinstance(self.decay_thresholds, bool):
            raise fail("decay_thresholds", "True or False", repr(self.decay_thresholds), "TrainConfig", TypeError)
        check_real(self.val_fraction, "val_fraction", low=0.0, high=1.0, high_open=True, owner="TrainConfig")
        check_real(self.lr_decay, "lr_decay", low=0.0, high=1.0, owner="TrainConfig")
        check_int(self.seed, "seed", low=0, owner="TrainConfig")
        check_int(self.eval_batch_size, "eval_batch_size", low=1, owner="TrainConfig")
        if self.engine is not None:
            from ..engines import ENGINES
            check_choice(self.engine, "engine", tuple(ENGINES), "TrainConfig")
        return self


def validation_split(data, fraction: float):
    """``(train_data, x_val, y_val)``: ``fraction`` of ``data``'s training samples held out, per class.

    The split depends only on the training labels, ``fraction`` and ``VALIDATION_SPLIT_SEED``
    (never on a run's seed or mode), so every arm of a comparison trains on the same samples
    and is validated on the same held-out ones. In each class, ``round(fraction * n_class)``
    samples are drawn; the rest keep their order. The test split is untouched.
    """
    import dataclasses

    fraction = check_real(fraction, "val_fraction", low=0.0, high=1.0, high_open=True, owner="validation_split")
    y = np.asarray(data.y_train)
    rng = np.random.default_rng(VALIDATION_SPLIT_SEED)
    held = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        where = np.flatnonzero(y == label)
        k = int(round(fraction * len(where)))
        held[rng.permutation(where)[:k]] = True
    if not held.any() or held.all():
        raise fail("val_fraction", f"a share that leaves both a validation and a training sample of the "
                   f"{len(y)} training samples", repr(fraction), "validation_split")
    rest = dataclasses.replace(data, x_train=data.x_train[~held], y_train=y[~held])
    return rest, data.x_train[held], y[held]


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

    if isinstance(netcfg, NetConfig):
        netcfg.validate()
    neuron = LIF(tau=netcfg.tau, theta_init=netcfg.theta_init, reset=netcfg.reset,
                 detach_reset=netcfg.detach_reset)
    surrogate = stlsim.surrogate.get(netcfg.surrogate, netcfg.surrogate_param)
    n_out = n_classes * netcfg.population
    if netcfg.arch == "mlp":
        sizes = [int(np.prod(input_shape))] + [int(h) for h in netcfg.hidden] + [n_out]
        recurrent = getattr(netcfg, "recurrent", "none")
        recurrent = None if recurrent in (None, "none") else recurrent
        layers = [stlsim.Dense(a, b, init_gain=netcfg.init_gain, threshold_sharing=netcfg.threshold_sharing,
                               recurrent=recurrent if k < len(sizes) - 2 else None)
                  for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
        if getattr(netcfg, "adaptation", False):       # the hidden layers adapt, the output layer does not
            neuron = [netcfg.hidden_neuron()] * (len(layers) - 1) + [neuron]
    else:
        try:
            from .. import architectures
        except ImportError:  # pragma: no cover - convolutional presets not installed
            raise fail("arch", "'mlp'", repr(netcfg.arch), "NetConfig") from None
        layers = architectures.build(netcfg.arch, input_shape=tuple(input_shape), n_classes=n_classes,
                                     population=netcfg.population, threshold_sharing=netcfg.threshold_sharing)
    kwargs = {} if backend is None else {"backend": backend}
    return stlsim.Network(layers, neuron=neuron, surrogate=surrogate, population=netcfg.population,
                          seed=seed, dtype=np.dtype(netcfg.dtype), **kwargs)
