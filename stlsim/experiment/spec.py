"""The schema of a run: ONE option table, and ``RunSpec``, the run as a value.

Every option of ``stlsim train`` / ``compare`` / ``sweep`` that changes what is trained
is a row of ``OPTIONS``: its name, type, default, choices, help line, help group and the
part of the run it sets (``target``: ``"data"`` -> ``DataSpec``, ``"net"`` ->
``stlsim.train.NetConfig``, ``"train"`` -> ``stlsim.train.TrainConfig``). From this
one table come

* the command line's parsers (``stlsim.cli`` builds its argument groups from it),
* the types and checks of grid values (``stlsim.experiment.sweep.grid``),
* the flat, JSON-able options of a run (``RunSpec.options()``), which name a run in
  ``run.json``, in grid cells and in the hash of a sweep task's id,
* the defaults: ``RunSpec.from_options({})`` is what ``stlsim compare`` runs with no flags.

A default of ``None`` in the table means "the data set's default" (``dataset_defaults``):
the bundled digits train a 64-256-100 network for 30 epochs at T = 8, a user's ``.npz``
for about 50,000 samples with direct input, and so on.

    spec = RunSpec.from_options({"dataset": "digits", "epochs": 2})
    spec.options()["hidden"]          # [256]: the digits' default, filled in
    data = spec.data.load()           # the static or the event loader, by the data set's name
    netcfg, config = spec.net, spec.train
    spec.replace(lr=1e-2)             # another RunSpec
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from dataclasses import dataclass

from .._checks import fail

__all__ = ["Option", "OPTIONS", "GROUPS", "MODES", "SPIKING_MODES", "DataSpec", "RunSpec",
           "dataset_defaults", "dataset_key", "npz_epochs", "NPZ_SAMPLES_SEEN", "DATASET_DEFAULTS",
           "option", "coerce_option", "parse_bool", "parse_int_list"]

SPIKING_MODES = ("stl", "sl", "tl")              # stlsim.train.modes
MODES = (*SPIKING_MODES, "ann")                  # and the ReLU baseline of the same dense shape

# Help groups, in the order ``--help`` shows them.
GROUPS = {"data": "data", "network": "network", "training": "training", "execution": "execution"}


# ---------------------------------------------------------------------------- values --

def parse_int_list(text: str) -> list:
    """``"256"`` or ``"800,400"`` (also ``"128+128"``, the grid's spelling) -> [int, ...], each >= 1."""
    parts = [p.strip() for p in str(text).replace("+", ",").split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected positive integers joined by ',' or '+', got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"expected positive integers joined by ',' or '+', got {text!r}")
    return values


def parse_bool(text: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``), any case."""
    word = str(text).strip().lower()
    if word in ("true", "1", "yes", "on"):
        return True
    if word in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false (or on / off), got {text!r}")


_KIND_WORDS = {"int": "an integer", "float": "a real number", "str": "a string", "bool": "true or false",
               "int_list": "an integer or a non-empty list of integers (layer sizes)"}


@dataclass(frozen=True)
class Option:
    """One option of a run: the row of the table."""

    name: str                 # the Python name; the flag is --name-with-dashes
    kind: str                 # "int", "float", "str", "bool", "int_list"
    default: object           # None: the data set's default, or "not set"
    help: str
    group: str                # a key of GROUPS
    target: str               # "data", "net" or "train"
    choices: tuple | None = None
    low: float | None = None  # smallest allowed value (numbers; layer sizes of int_list)
    high: float | None = None  # largest allowed value (numbers)
    nullable: bool = False    # None is a value a user may give (e.g. theta_lr: "the lr")
    short: str | None = None  # a short flag, e.g. "-T"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, text: str, owner: str | None = "RunSpec", where: str | None = None):
        """A value from command-line or grid text (``"1e-3"``, ``"256,128"``, ``"true"``)."""
        if self.kind == "int_list":
            value = parse_int_list(text)
        elif self.kind == "bool":
            value = parse_bool(text)
        elif self.kind in ("int", "float"):
            cast = int if self.kind == "int" else float
            try:
                value = cast(str(text).strip())
            except ValueError:
                raise ValueError(f"expected {_KIND_WORDS[self.kind]}, got {text!r}") from None
        else:
            value = str(text)
        return self.check(value, owner, where, from_text=True)

    def check(self, value, owner: str | None = "RunSpec", where: str | None = None, from_text: bool = False):
        """``value`` typed and checked (Python values: a TOML grid, ``RunSpec.from_options``)."""
        where = where or f"option {self.name!r}"
        if value is None and (self.nullable or self.default is None):
            return None
        kind = self.kind
        if kind == "int_list":
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                value = [int(value)]
            if isinstance(value, tuple):
                value = list(value)
            if not (isinstance(value, list) and value and all(
                    isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
                raise fail(where, _KIND_WORDS[kind], f"{type(value).__name__} {value!r}", owner, TypeError)
            value = [int(v) for v in value]
            if min(value) < 1:
                raise fail(where, "layer sizes >= 1", repr(value), owner)
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise fail(where, "True or False", f"{type(value).__name__} {value!r}", owner, TypeError)
            return value
        if kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
                    kind == "int" and not isinstance(value, numbers.Integral)):
                raise fail(where, _KIND_WORDS[kind], f"{type(value).__name__} {value!r}", owner, TypeError)
            value = int(value) if kind == "int" else float(value)
            if kind == "float" and not math.isfinite(value):
                raise fail(where, "a finite real number", repr(value), owner)
            if self.low is not None and value < self.low:
                raise fail(where, f"a number >= {self.low:g}" if self.high is None else
                           f"a number in [{self.low:g}, {self.high:g}]", repr(value), owner)
            if self.high is not None and value > self.high:
                raise fail(where, f"a number <= {self.high:g}" if self.low is None else
                           f"a number in [{self.low:g}, {self.high:g}]", repr(value), owner)
        elif not isinstance(value, str):
            raise fail(where, "a string", f"{type(value).__name__} {value!r}", owner, TypeError)
        if self.choices is not None and value not in self.choices:
            raise fail(where, "one of " + ", ".join(repr(c) for c in self.choices), repr(value), owner)
        return value

    @property
    def shown_default(self) -> str:
        """The default as ``--help`` shows it."""
        if self.default is None:
            return "the data set's" if self.name in _DATASET_DEPENDENT else "not set"
        if isinstance(self.default, list):
            return ",".join(str(v) for v in self.default)
        return str(self.default).lower() if isinstance(self.default, bool) else str(self.default)


# The options whose default depends on the data set (DATASET_DEFAULTS).
_DATASET_DEPENDENT = ("hidden", "epochs", "timesteps", "theta_init", "init_gain", "encoding", "recurrent",
                      "adaptation", "population")

_DATASETS_HELP = ("digits | fashion-mnist[:DIR] | mnist[:DIR] | cifar10[:DIR] | PATH.npz | nmnist:DIR | "
                  "dvsgesture:DIR | shd:DIR | saccade-digits (synthetic events) | mnist1d-seq (MNIST-1D, one value "
                  "per step)")

OPTIONS = {o.name: o for o in [
    # data
    Option("dataset", "str", "digits", f"the data set: {_DATASETS_HELP}", "data", "data"),
    Option("train_subset", "int", None, "use only the first N training samples", "data", "data", low=1),
    Option("test_subset", "int", None, "use only the first N test samples", "data", "data", low=1),
    # network
    Option("arch", "str", "mlp", "mlp (dense; sizes from --hidden) or a preset of stlsim.architectures",
           "network", "net"),
    Option("hidden", "int_list", None, "hidden layer sizes of the mlp, e.g. 256 or 800,400", "network", "net"),
    Option("population", "int", None, "output neurons per class (the joint decision; 10 but on SHD); 1 = plain",
           "network",
           "net", low=1, short="-P"),
    Option("tau", "float", 0.5, "membrane decay per step, in [0, 1]", "network", "net", low=0.0),
    Option("theta_init", "float", None, "initial threshold of every neuron", "network", "net"),
    Option("init_gain", "float", None, "weight init bound = gain / sqrt(fan_in)", "network", "net"),
    Option("reset", "str", "hard", "reset after a spike: hard (to zero) or soft (subtract theta)", "network",
           "net", choices=("hard", "soft")),
    Option("detach_reset", "bool", False, "no gradient through the reset (as SpikingJelly's detach_reset)",
           "network", "net"),
    Option("surrogate", "str", "atan", "surrogate gradient: atan, sigmoid, rectangular, superspike, ...",
           "network", "net"),
    Option("surrogate_param", "float", None, "the surrogate's width or slope (default: its own)",
           "network", "net"),
    Option("threshold_sharing", "str", "neuron", "one threshold per neuron (per position in a conv layer), "
           "per conv channel, or one per layer", "network", "net", choices=("neuron", "channel", "layer")),
    Option("recurrent", "str", None, "recurrent connections of the hidden layers (mlp): none; all (all-to-all, "
           "V is N x N); one (one-to-one, V is N); the input current at t gets V s_{t-1}", "network", "net",
           choices=("none", "all", "one")),
    Option("adaptation", "bool", None, "adaptive thresholds in the hidden layers (LSNN / ALIF): theta + "
           "adapt_beta * a_t, a_{t+1} = adapt_rho * a_t + s_t", "network", "net"),
    Option("adapt_beta", "float", 0.09, "threshold rise per spike of an adaptive neuron (with --adaptation "
           "on; 0.09 is Bellec et al.'s 1.8 times 1 - rho at rho 0.95: their a_t rises by 1 - rho per spike)",
           "network", "net", low=0.0),
    Option("adapt_rho", "float", 0.95, "decay per step of the adaptation state, in [0, 1] (with --adaptation "
           "on)", "network", "net", low=0.0, high=1.0),
    Option("learn_adapt_beta", "bool", False, "train adapt_beta per neuron (a threshold parameter: STL and TL "
           "train it at the threshold lr, SL does not)", "network", "net"),
    Option("learn_adapt_rho", "bool", False, "train adapt_rho per neuron (a threshold parameter, as "
           "adapt_beta)", "network", "net"),
    Option("dtype", "str", "float32", "floating-point type of the network", "network", "net",
           choices=("float64", "float32")),
    # training
    Option("epochs", "int", None, "training epochs", "training", "train", low=1),
    Option("timesteps", "int", None, "time steps T per sample", "training", "train", low=1, short="-T"),
    Option("encoding", "str", None, "static inputs: rate (Bernoulli spikes) or direct (the analog values "
           "each step); event data sets are fed as their frames", "training", "train",
           choices=("rate", "direct")),
    Option("batch_size", "int", 50, "training batch size", "training", "train", low=1),
    Option("lr", "float", 1e-3, "learning rate", "training", "train", low=0.0),
    Option("theta_lr", "float", None, "threshold learning rate (default: --lr)", "training", "train", low=0.0,
           nullable=True),
    Option("weight_decay", "float", 1e-6, "weight decay factor (the paper's code: 1e-6, coupled)",
           "training", "train", low=0.0),
    Option("weight_decay_mode", "str", "coupled", "coupled: L2 added to the gradient before Adam (the paper's "
           "code); decoupled: AdamW, p -= lr * wd * p outside the adaptive step; none: no decay", "training",
           "train", choices=("coupled", "decoupled", "none")),
    Option("decay_thresholds", "bool", True, "decay thresholds (and trained decays) too, not only the "
           "synaptic parameters (the paper's code: true)", "training", "train"),
    Option("val_fraction", "float", 0.0, "share of the training data held out (per class, one fixed split "
           "for every mode and seed) to validate on after each epoch; 0 = none", "training", "train", low=0.0),
    Option("lr_decay", "float", 0.93, "learning rate factor per epoch", "training", "train", low=0.0),
    Option("optimizer", "str", "adam", "the optimizer", "training", "train", choices=("adam", "sgd")),
    Option("loss", "str", "mse_rate", "loss on the output firing rates", "training", "train",
           choices=("mse_rate", "ce_rate")),
    # execution
    Option("backend", "str", None, "numpy | numba | cuda (default: the network's)", "execution", "train"),
    Option("engine", "str", None, "clock, or event: work only where spikes are (faster at low input "
           "density)", "execution", "train", choices=("clock", "event")),
]}

# Options added after the first sweeps were recorded: at these values they are left out of a
# task's hash, so the task ids (and the skip-on-rerun) of earlier sweeps stay the same.
LATER_OPTIONS = {"threshold_sharing": "neuron", "detach_reset": False, "surrogate_param": None,
                 "weight_decay_mode": "coupled", "decay_thresholds": True, "val_fraction": 0.0,
                 "recurrent": "none", "adaptation": False, "adapt_beta": 0.09, "adapt_rho": 0.95,
                 "learn_adapt_beta": False, "learn_adapt_rho": False}


def option(name: str, owner: str = "RunSpec") -> Option:
    """The row of ``name`` (``-`` and ``_`` alike, a leading ``--`` or the short flag allowed)."""
    key = name.strip().lstrip("-").replace("-", "_")
    for opt in OPTIONS.values():
        if opt.short and name.strip() == opt.short or opt.short and key == opt.short.lstrip("-"):
            return opt
    if key not in OPTIONS:
        import difflib

        close = difflib.get_close_matches(key, list(OPTIONS), n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise fail("option", "an option of a run (" + ", ".join(OPTIONS) + ")", f"{name!r}{hint}", owner)
    return OPTIONS[key]


def coerce_option(name: str, value, owner: str = "RunSpec", from_text: bool = False, where=None):
    """``value`` of option ``name``, typed: parsed from text, or checked as a Python value."""
    opt = OPTIONS[name]
    if from_text and isinstance(value, str):
        try:
            return opt.parse(value, owner, where)
        except ValueError as err:
            if str(err).startswith("`"):
                raise
            raise fail(where or f"option {name!r}", _KIND_WORDS[opt.kind], repr(value), owner,
                       TypeError) from None
    return opt.check(value, owner, where)


# -------------------------------------------------------------------------- defaults --

# Per data set: small enough for 2 cores, as stated in the README.
_IMAGES = {"theta_init": 1.0, "init_gain": 4.0, "encoding": "rate"}
DATASET_DEFAULTS = {
    "digits": {"hidden": [256], "epochs": 30, "timesteps": 8, **_IMAGES},
    "fashion-mnist": {"hidden": [800], "epochs": 5, "timesteps": 4, **_IMAGES},
    "mnist": {"hidden": [800], "epochs": 5, "timesteps": 4, **_IMAGES},
    "cifar10": {"hidden": [1024], "epochs": 5, "timesteps": 8, **_IMAGES},
    "saccade-digits": {"hidden": [256], "epochs": 15, "timesteps": 20, **_IMAGES},
    "nmnist": {"hidden": [800], "epochs": 5, "timesteps": 20, **_IMAGES},
    "dvsgesture": {"hidden": [512], "epochs": 10, "timesteps": 20, **_IMAGES},
    # the standard SHD network: 700-128r-20, recurrent (all-to-all) and adaptive (Bellec et al. 2018;
    # Cramer et al. 2020 use 128 recurrent hidden neurons); one output neuron per class (population 1)
    "shd": {"hidden": [128], "epochs": 10, "timesteps": 100, **_IMAGES, "recurrent": "all", "adaptation": True,
            "population": 1},
    # MNIST-1D as a sequence: one analog value per step (T = 40), a recurrent hidden layer
    "mnist1d-seq": {"hidden": [128], "epochs": 10, "timesteps": 40, "theta_init": 1.0, "init_gain": 4.0,
                    "encoding": "direct", "recurrent": "all", "adaptation": False},
    # a user's own .npz: any features in [0, 1]; the analog values go straight in (direct), as rate
    # coding lost 4 points on the digits, 1.4 on Fashion-MNIST and 18 on MNIST-1D (docs/sweep.md);
    # epochs by size (None: see `dataset_defaults`)
    "npz": {"hidden": [800], "epochs": None, "timesteps": 4, "theta_init": 1.0, "init_gain": 4.0,
            "encoding": "direct"},
}
NPZ_SAMPLES_SEEN = 50_000      # an .npz trains for about this many samples: 5 to 30 epochs


def npz_epochs(n_train: int) -> int:
    """Epochs for an .npz of ``n_train`` training samples: enough to see ``NPZ_SAMPLES_SEEN``, 5 to 30."""
    return int(min(30, max(5, -(-NPZ_SAMPLES_SEEN // max(int(n_train), 1)))))


def dataset_key(dataset: str) -> str:
    """The name a data-set spec is known by: ``"fashion-mnist:/d"`` -> ``"fashion-mnist"``; ``"x.npz"`` -> ``"npz"``."""
    dataset = os.fspath(dataset)
    if dataset.lower().endswith(".npz"):
        return "npz"
    return dataset.split(":", 1)[0].lower()


_NPZ_SIZES: dict = {}      # (path, size, mtime) -> training samples: an .npz is opened once


def _npz_train_size(path: str):
    """Training samples of an .npz (its ``y_train``), or None when it cannot be read (the loader says why)."""
    import zipfile

    import numpy as np

    try:
        stat = os.stat(path)
    except OSError:
        return None
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _NPZ_SIZES:
        try:
            with np.load(path) as archive:
                _NPZ_SIZES[key] = int(archive["y_train"].shape[0])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None
    return _NPZ_SIZES[key]


_FEED_FORWARD = {"recurrent": "none", "adaptation": False, "population": 10}   # where a row says nothing


def dataset_defaults(dataset: str, train_subset=None, n_train=None) -> dict:
    """The defaults of a run on ``dataset`` (a copy); for an .npz the epochs follow its size
    (``n_train``, else read from the file's ``y_train``, at most ``train_subset``; 5 if it cannot be read)."""
    key = dataset_key(dataset)
    defaults = {**_FEED_FORWARD, **DATASET_DEFAULTS.get(key, DATASET_DEFAULTS["mnist"])}
    defaults["hidden"] = list(defaults["hidden"])
    if defaults["epochs"] is None:
        if n_train is None:
            n_train = _npz_train_size(dataset)
            if n_train is None:
                n_train = NPZ_SAMPLES_SEEN // 5
            if train_subset is not None:
                n_train = min(n_train, int(train_subset))
        defaults["epochs"] = npz_epochs(n_train)
    return defaults


# ---------------------------------------------------------------------- the run spec --

@dataclass(frozen=True)
class DataSpec:
    """Which data a run trains on: the data-set spec and the subsets; ``load()`` reads it."""

    dataset: str = "digits"
    train_subset: int | None = None
    test_subset: int | None = None

    @property
    def is_events(self) -> bool:
        """An event data set (N-MNIST, DVS128 Gesture, SHD, saccade digits) or a sequence set
        (``mnist1d-seq``): fed as its frames, one per step."""
        from ..data.event_datasets import is_event_spec

        return is_event_spec(self.dataset)

    def load(self, timesteps: int | None = None):
        """The ``stlsim.data.Dataset``: the event loader (binned into ``timesteps`` frames) or
        the static one, then the subsets; both splits must be non-empty."""
        if self.is_events:
            from ..data.event_datasets import load_event_dataset

            data = load_event_dataset(self.dataset, timesteps, self.train_subset, self.test_subset)
        else:
            from ..data import load_dataset

            data = load_dataset(self.dataset)
        if self.train_subset is not None or self.test_subset is not None:
            data = data.subset(self.train_subset, self.test_subset)
        if len(data.y_train) == 0 or len(data.y_test) == 0:
            raise ValueError(f"data set {data.name!r} has {len(data.y_train)} training and {len(data.y_test)} "
                             "test samples; both splits must be non-empty")
        return data


def _resolved(options: dict, owner: str, n_train=None) -> dict:
    """Every option of the table, typed, with the data set's defaults filled in."""
    opts = {}
    for name, value in options.items():
        if name == "gain_ratio":
            continue
        opts[option(name, owner).name] = value
    out = {name: OPTIONS[name].check(opts.get(name, opt.default), owner) for name, opt in OPTIONS.items()}
    defaults = dataset_defaults(out["dataset"], out["train_subset"], n_train)
    for name in _DATASET_DEPENDENT:
        if out[name] is None:
            out[name] = defaults[name]
    ratio = options.get("gain_ratio")
    if ratio is not None:       # the grid's derived axis r: init_gain = r * theta_init
        out["init_gain"] = float(ratio) * float(out["theta_init"])
    return out


@dataclass(frozen=True)
class RunSpec:
    """A run as a value: its data, network and training configuration.

    Build it with ``RunSpec.from_options(mapping)`` (option names of ``OPTIONS``; what is not
    given takes the table's default, then the data set's). ``options()`` is the flat, JSON-able
    form that names the run; ``replace(**options)`` gives another run.
    """

    data: DataSpec
    net: object           # stlsim.train.NetConfig
    train: object         # stlsim.train.TrainConfig

    @classmethod
    def from_options(cls, options: dict | None = None, *, mode: str = "stl", seed: int = 0,
                     owner: str = "RunSpec", n_train: int | None = None) -> RunSpec:
        """The run of ``options`` (names of ``OPTIONS``, ``-`` or ``_``; also ``gain_ratio``).

        ``n_train``: the training samples of the data actually loaded (an .npz's epochs follow it).
        """
        from ..train import NetConfig, TrainConfig

        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise fail("options", "a mapping of option names to values", f"{type(options).__name__}", owner,
                       TypeError)
        opts = _resolved(options, owner, n_train)
        parts = {"data": {}, "net": {}, "train": {}}
        for name, value in opts.items():
            parts[OPTIONS[name].target][name] = value
        netcfg = NetConfig(**parts["net"]).validate()
        config = TrainConfig(mode="sl" if mode == "ann" else mode, seed=seed, **parts["train"]).validate()
        return cls(DataSpec(**parts["data"]), netcfg, config)

    def options(self) -> dict:
        """Every option of the table (JSON-able: lists, numbers, strings, None)."""
        out = {}
        for name, opt in OPTIONS.items():
            source = {"data": self.data, "net": self.net, "train": self.train}[opt.target]
            value = getattr(source, name)
            out[name] = list(value) if isinstance(value, (list, tuple)) else value
        return json.loads(json.dumps(out))

    def replace(self, **options) -> RunSpec:
        """The same run with ``options`` changed (checked like ``from_options``)."""
        merged = self.options()
        merged.update(options)
        return RunSpec.from_options(merged, mode=self.train.mode, seed=self.train.seed)

    def load(self):
        """(data, netcfg, trainconfig): the data loaded. An event data set is fed as its binned
        frames: the training configuration then has ``encoding="frames"`` and the frames' T."""
        data = self.data.load(self.train.timesteps)
        train = self.train
        if self.data.is_events:
            train = dataclasses.replace(train, encoding="frames", timesteps=int(data.timesteps)).validate()
        return data, self.net, train
