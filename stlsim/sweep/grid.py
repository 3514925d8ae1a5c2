"""Sweep grids: which options of ``stlsim train`` vary, their values, and the tasks they make.

A grid maps option names of ``stlsim train`` (``theta_init``, ``init_gain``, ``timesteps``,
``surrogate``, ...; ``-`` and ``_`` are the same) to lists of values. Its tasks are the
Cartesian product of those lists, times seeds, times learning modes. Everything not in
the grid is fixed: the options given to ``stlsim sweep`` itself (those of ``stlsim
compare``), then a TOML file's ``[fixed]`` table, then the defaults of ``stlsim train``.

Two spellings of a grid::

    --grid "theta_init=1,2 init_gain=0.5,1,2,4,8 hidden=256,128+128"

    # grid.toml
    seeds = 3                      # or a list: [0, 1, 2]
    modes = ["stl", "sl"]
    [fixed]
    epochs = 5
    [grid]
    theta_init = [1.0, 2.0]
    gain_ratio = [1, 4, 16]        # derived: init_gain = gain_ratio * theta_init
    surrogate = ["atan", "rectangular"]

On the command line, list-valued options (``hidden``) write the layers of one value with
``+``. ``gain_ratio`` is the one derived axis: r = init_gain / theta_init, the ratio that
decides the initial firing (scaling a neuron's weights and threshold together leaves its
spikes unchanged, docs/model.md (L1)-(L4)); it cannot be combined with ``init_gain``.

A task's id is a hash of its fully resolved options (dataset defaults filled in), its mode
and its seed, so a task is recognised however the grid spelled it.
"""
from __future__ import annotations

import argparse
import difflib
import hashlib
import itertools
import json
import math
import numbers
import os
from dataclasses import dataclass

from .._checks import fail

__all__ = ["Task", "GridSpec", "train_options", "parse_grid_text", "load_grid_file", "make_grid", "expand",
           "task_id", "resolve_options", "DERIVED"]

DERIVED = ("gain_ratio",)
_NOT_OPTIONS = ("out", "quiet")     # options of `stlsim train` that do not change a run


def train_options() -> dict:
    """The options of ``stlsim train`` a grid may vary: name -> argparse action."""
    from .. import cli

    parser = argparse.ArgumentParser(add_help=False)
    cli._add_common(parser)
    return {a.dest: a for a in parser._actions if a.dest not in _NOT_OPTIONS and a.dest != "help"}


def _norm(name: str) -> str:
    return name.strip().replace("-", "_")


def _aliases(known) -> dict:
    """Every spelling of an option (``-T``, ``--timesteps``, ``timesteps``) -> its name."""
    table = {}
    for name, action in known.items():
        table[name] = name
        for flag in action.option_strings:
            table[_norm(flag.lstrip("-"))] = name
    return table


def _check_name(name: str, known, owner: str) -> str:
    name = _norm(name.strip().lstrip("-"))
    name = _aliases(known).get(name, name)
    if name in ("seed", "seeds", "mode", "modes"):
        raise fail(f"grid option {name!r}", "an option of `stlsim train` (seeds and modes have their own "
                   "settings: --seeds K / --modes stl,sl, or `seeds` / `modes` at a grid file's top level)",
                   repr(name), owner)
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise fail("grid option", "an option of `stlsim train` or 'gain_ratio'",
                   f"{name!r}{hint}", owner)
    return name


def _coerce(name: str, value, action, owner: str, from_text: bool):
    """One grid value of option ``name``, typed like ``stlsim train`` types it."""
    if name in DERIVED:
        kind = float
    else:
        kind = action.type
    where = f"grid value of {name!r}"
    if action is not None and action.nargs == 0:       # store_true flags
        raise fail(f"grid option {name!r}", "an option that takes a value", "a flag", owner)
    if getattr(kind, "__name__", "") == "_int_list":  # hidden: one list of layer sizes per value
        if from_text:
            parts = [p for p in str(value).split("+")]
            try:
                layers = [int(p) for p in parts]
            except ValueError:
                raise fail(where, "layer sizes joined by '+' (e.g. 256 or 128+128)", repr(value), owner,
                           TypeError) from None
        elif isinstance(value, bool):
            raise fail(where, "an integer or a list of integers", repr(value), owner, TypeError)
        elif isinstance(value, numbers.Integral):
            layers = [int(value)]
        elif isinstance(value, list) and value and all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
            layers = [int(v) for v in value]
        else:
            raise fail(where, "an integer or a non-empty list of integers", repr(value), owner, TypeError)
        if any(v < 1 for v in layers):
            raise fail(where, "layer sizes >= 1", repr(value), owner)
        return layers
    if kind in (float, int):
        if from_text:
            try:
                value = kind(value)
            except ValueError:
                word = "a real number" if kind is float else "an integer"
                raise fail(where, word, repr(value), owner, TypeError) from None
        elif isinstance(value, bool) or not isinstance(value, numbers.Real) or (
                kind is int and not isinstance(value, numbers.Integral)):
            word = "a real number" if kind is float else "an integer"
            raise fail(where, word, f"{type(value).__name__} {value!r}", owner, TypeError)
        value = kind(value)
        if kind is float and not math.isfinite(value):
            raise fail(where, "a finite real number", repr(value), owner)
    elif not isinstance(value, str):
        raise fail(where, "a string", f"{type(value).__name__} {value!r}", owner, TypeError)
    if action is not None and action.choices is not None and value not in action.choices:
        listed = ", ".join(repr(c) for c in action.choices)
        raise fail(where, f"one of {listed}", repr(value), owner)
    return value


def _check_values(name, values, action, owner, from_text):
    if not isinstance(values, list):
        raise fail(f"grid option {name!r}", "a list of values", f"{type(values).__name__} {values!r}", owner,
                   TypeError)
    if not values:
        raise fail(f"grid option {name!r}", "a non-empty list of values", "an empty list", owner)
    out = [_coerce(name, v, action, owner, from_text) for v in values]
    if len({json.dumps(v) for v in out}) != len(out):
        raise fail(f"grid option {name!r}", "a list without repeated values", repr(values), owner)
    return out


@dataclass
class GridSpec:
    """A parsed grid: ``axes`` (ordered name -> values), ``fixed`` options, seeds and modes."""

    axes: dict
    fixed: dict
    seeds: list | None = None
    modes: list | None = None


def make_grid(axes: dict, fixed: dict | None = None, seeds=None, modes=None, owner: str = "stlsim sweep",
              from_text: bool = False) -> GridSpec:
    """Check and type a grid given as Python values (the TOML form)."""
    known = train_options()
    names = {}
    for raw, values in axes.items():
        name = raw if raw in DERIVED else _check_name(raw, known, owner)
        if name in names:
            raise fail("grid option", "named once", f"{raw!r} twice", owner)
        names[name] = _check_values(name, values, known.get(name), owner, from_text)
    if "gain_ratio" in names and "init_gain" in names:
        raise fail("grid", "either 'gain_ratio' or 'init_gain' (gain_ratio sets init_gain)", "both", owner)
    fixed_checked = {}
    for raw, value in (fixed or {}).items():
        name = raw if raw in DERIVED else _check_name(raw, known, owner)
        if name in names:
            raise fail(f"option {name!r}", "either fixed or in the grid", "both", owner)
        fixed_checked[name] = _coerce(name, value, known.get(name), owner, False)
    if seeds is not None:
        seeds = _check_seeds(seeds, owner)
    if modes is not None:
        modes = check_modes(modes, owner)
    return GridSpec(axes=names, fixed=fixed_checked, seeds=seeds, modes=modes)


def _check_seeds(seeds, owner):
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise fail("seeds", "a number of seeds >= 1 or a list of seeds", repr(seeds), owner)
        return list(range(int(seeds)))
    if (isinstance(seeds, list) and seeds and all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                                                  and s >= 0 for s in seeds)):
        if len(set(seeds)) != len(seeds):
            raise fail("seeds", "distinct seeds", repr(seeds), owner)
        return [int(s) for s in seeds]
    raise fail("seeds", "a number of seeds >= 1 or a non-empty list of integers >= 0", repr(seeds), owner,
               TypeError)


def check_modes(modes, owner: str = "stlsim sweep") -> list:
    """A non-empty list of distinct learning modes."""
    from ..train.modes import MODES

    MODES = (*MODES, "ann")          # the ReLU baseline of the same shape (stlsim.sweep.ann)
    if isinstance(modes, str):
        modes = [m.strip() for m in modes.split(",") if m.strip()]
    if not isinstance(modes, list) or not modes:
        raise fail("modes", f"a non-empty list of {', '.join(MODES)}", repr(modes), owner, TypeError)
    for m in modes:
        if m not in MODES:
            raise fail("modes", f"a list of {', '.join(repr(x) for x in MODES)}", repr(m), owner)
    if len(set(modes)) != len(modes):
        raise fail("modes", "distinct modes", repr(modes), owner)
    return list(modes)


def parse_grid_text(text: str, owner: str = "stlsim sweep") -> GridSpec:
    """``"theta_init=1,2 init_gain=0.5,1,2"`` -> GridSpec (values typed like ``stlsim train``)."""
    axes = {}
    for item in text.split():
        if "=" not in item:
            raise fail("--grid", "space-separated NAME=V1,V2,... items", repr(item), owner)
        name, _, values = item.partition("=")
        if not name.strip():
            raise fail("--grid", "space-separated NAME=V1,V2,... items", repr(item), owner)
        if _norm(name) in axes:
            raise fail("grid option", "named once", f"{name!r} twice", owner)
        axes[_norm(name)] = [v for v in values.split(",") if v.strip()]
    if not axes:
        raise fail("--grid", "at least one NAME=V1,V2,... item", repr(text), owner)
    return make_grid(axes, owner=owner, from_text=True)


def load_grid_file(path, owner: str = "stlsim sweep") -> GridSpec:
    """Read a TOML grid file (module docstring)."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    if not os.path.isfile(path):
        raise FileNotFoundError(f"grid file {path!r} does not exist")
    with open(path, "rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise fail(f"grid file {path!r}", "valid TOML", f"a parse error ({err})", owner) from None
    unknown = set(doc) - {"grid", "fixed", "seeds", "modes"}
    if unknown:
        raise fail(f"grid file {path!r}", "the keys grid, fixed, seeds, modes", ", ".join(sorted(unknown)), owner)
    grid = doc.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise fail(f"grid file {path!r}", "a non-empty [grid] table", repr(grid), owner)
    return make_grid(grid, doc.get("fixed", {}), doc.get("seeds"), doc.get("modes"), owner=owner)


@dataclass(frozen=True)
class Task:
    """One training run: resolved options, mode and seed; ``cell`` is its grid point."""

    id: str
    options: tuple        # sorted (name, value) pairs, values JSON-able
    cell: tuple           # (axis, value) pairs in grid order
    mode: str
    seed: int

    @property
    def option_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.options}


def resolve_options(options: dict) -> dict:
    """Fill the dataset-dependent defaults of ``stlsim train`` and apply ``gain_ratio``."""
    from .. import cli

    opts = dict(options)
    defaults = cli.dataset_defaults(opts["dataset"], opts.get("train_subset"))
    for name in ("hidden", "epochs", "timesteps", "theta_init", "init_gain", "encoding"):
        if opts.get(name) is None:
            opts[name] = defaults[name]
    ratio = opts.pop("gain_ratio", None)
    if ratio is not None:
        opts["init_gain"] = float(ratio) * float(opts["theta_init"])
    opts["hidden"] = [int(h) for h in opts["hidden"]]
    for name in ("theta_init", "init_gain", "lr", "tau", "weight_decay", "lr_decay"):
        opts[name] = float(opts[name])
    if opts.get("theta_lr") is not None:
        opts["theta_lr"] = float(opts["theta_lr"])
    return opts


# Options added to `stlsim train` after the first sweeps were recorded: at their default they
# are left out of the hash, so the task ids (and the skip-on-rerun) of earlier sweeps stay.
_LATER_OPTIONS = {"threshold_sharing": "neuron"}


def task_id(options: dict, mode: str, seed: int) -> str:
    """Hash of a task's resolved options, mode and seed (hex, 16 characters)."""
    options = {k: v for k, v in options.items() if k not in _LATER_OPTIONS or v != _LATER_OPTIONS[k]}
    blob = json.dumps({"options": options, "mode": mode, "seed": int(seed)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def expand(spec: GridSpec, base: dict, seeds, modes) -> list:
    """Tasks of ``spec`` on top of ``base`` (every train option): cells x seeds x modes."""
    names = list(spec.axes)
    tasks, seen = [], set()
    for values in itertools.product(*(spec.axes[n] for n in names)):
        cell = tuple(zip(names, values))
        options = dict(base)
        options.update(spec.fixed)
        options.update(dict(cell))
        resolved = resolve_options(options)
        for seed in seeds:
            for mode in modes:
                tid = task_id(resolved, mode, seed)
                if tid in seen:
                    continue
                seen.add(tid)
                frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in resolved.items()))
                cell_frozen = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in cell)
                tasks.append(Task(id=tid, options=frozen, cell=cell_frozen, mode=mode, seed=int(seed)))
    return tasks


def preflight(tasks, owner: str = "stlsim sweep"):
    """Check every distinct configuration before any task runs (no data is loaded)."""
    import stlsim

    from ..neurons import LIF
    from ..train import TrainConfig

    seen = set()
    for task in tasks:
        opts = task.option_dict
        key = json.dumps(opts, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        where = " ".join(f"{k}={v}" for k, v in task.cell)
        try:
            if opts["epochs"] < 1:
                raise fail("epochs", "at least 1 for a sweep", repr(opts["epochs"]), owner)
            if task.mode == "ann" and opts["arch"] != "mlp":
                raise fail("arch", "'mlp' for the ANN baseline (mode 'ann')", repr(opts["arch"]), owner)
            TrainConfig(mode="sl" if task.mode == "ann" else task.mode, epochs=opts["epochs"], batch_size=opts["batch_size"],
                        timesteps=opts["timesteps"], encoding=opts["encoding"], loss=opts["loss"],
                        optimizer=opts["optimizer"], lr=opts["lr"], theta_lr=opts["theta_lr"],
                        weight_decay=opts["weight_decay"], lr_decay=opts["lr_decay"], seed=task.seed,
                        backend=opts["backend"]).validate()
            LIF(tau=opts["tau"], theta_init=opts["theta_init"], reset=opts["reset"])
            stlsim.surrogate.get(opts["surrogate"], None, owner)
            if not opts["init_gain"] > 0:
                raise fail("init_gain", "a positive number", repr(opts["init_gain"]), owner)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{err} (grid cell {where or 'fixed options'})") from None
