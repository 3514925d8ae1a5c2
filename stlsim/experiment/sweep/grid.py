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

import hashlib
import itertools
import json
import numbers
import os
from dataclasses import dataclass

from ..._checks import fail
from ..spec import LATER_OPTIONS, MODES, OPTIONS, RunSpec, coerce_option, option

__all__ = ["Task", "GridSpec", "train_options", "parse_grid_text", "load_grid_file", "make_grid", "expand",
           "task_id", "resolve_options", "check_modes", "preflight", "DERIVED"]

DERIVED = ("gain_ratio",)


def train_options() -> dict:
    """The options a grid may vary: name -> ``stlsim.experiment.spec.Option`` (the one option table)."""
    return dict(OPTIONS)


def _norm(name: str) -> str:
    return name.strip().replace("-", "_")


def _check_name(name: str, owner: str) -> str:
    raw = name.strip()
    if _norm(raw.lstrip("-")) in ("seed", "seeds", "mode", "modes"):
        raise fail(f"grid option {_norm(raw.lstrip('-'))!r}", "an option of `stlsim train` (seeds and modes have "
                   "their own settings: --seeds K / --modes stl,sl, or `seeds` / `modes` at a grid file's top level)",
                   repr(_norm(raw.lstrip("-"))), owner)
    if _norm(raw.lstrip("-")) in DERIVED:
        return _norm(raw.lstrip("-"))
    try:
        return option(raw, owner).name
    except ValueError:
        import difflib

        key = _norm(raw.lstrip("-"))
        close = difflib.get_close_matches(key, list(OPTIONS) + list(DERIVED), n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise fail("grid option", "an option of `stlsim train` or 'gain_ratio'", f"{key!r}{hint}", owner) from None


def _coerce(name: str, value, owner: str, from_text: bool):
    """One grid value of option ``name``, typed like ``stlsim train`` types it."""
    where = f"grid value of {name!r}"
    if name in DERIVED:
        if from_text:
            try:
                value = float(value)
            except ValueError:
                raise fail(where, "a real number", repr(value), owner, TypeError) from None
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise fail(where, "a real number", f"{type(value).__name__} {value!r}", owner, TypeError)
        value = float(value)
        if not value == value or value in (float("inf"), float("-inf")):
            raise fail(where, "a finite real number", repr(value), owner)
        return value
    return coerce_option(name, value, owner, from_text=from_text, where=where)


def _check_values(name, values, owner, from_text):
    if not isinstance(values, list):
        raise fail(f"grid option {name!r}", "a list of values", f"{type(values).__name__} {values!r}", owner,
                   TypeError)
    if not values:
        raise fail(f"grid option {name!r}", "a non-empty list of values", "an empty list", owner)
    out = [_coerce(name, v, owner, from_text) for v in values]
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
    names = {}
    for raw, values in axes.items():
        name = _check_name(raw, owner)
        if name in names:
            raise fail("grid option", "named once", f"{raw!r} twice", owner)
        names[name] = _check_values(name, values, owner, from_text)
    if "gain_ratio" in names and "init_gain" in names:
        raise fail("grid", "either 'gain_ratio' or 'init_gain' (gain_ratio sets init_gain)", "both", owner)
    fixed_checked = {}
    for raw, value in (fixed or {}).items():
        name = _check_name(raw, owner)
        if name in names:
            raise fail(f"option {name!r}", "either fixed or in the grid", "both", owner)
        fixed_checked[name] = _coerce(name, value, owner, False)
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
    """A non-empty list of distinct learning modes (the ReLU baseline "ann" included)."""
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
    """Every option of a run, typed, with the data set's defaults filled in and ``gain_ratio`` applied."""
    return RunSpec.from_options(options, owner="stlsim sweep").options()


def task_id(options: dict, mode: str, seed: int) -> str:
    """Hash of a task's resolved options, mode and seed (hex, 16 characters)."""
    options = {k: v for k, v in options.items() if k not in LATER_OPTIONS or v != LATER_OPTIONS[k]}
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
        try:
            resolved = resolve_options(options)
        except (ValueError, TypeError) as err:
            where = " ".join(f"{k}={v}" for k, v in cell)
            raise type(err)(f"{err} (grid cell {where or 'fixed options'})") from None
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


# Tasks a sweep runs at most unless told otherwise (``--max-tasks``): a grid of 10**6 cells is a typo
# more often than a plan, and expanding it alone takes minutes.
MAX_TASKS = 10_000


def check_size(spec: GridSpec, seeds, modes, max_tasks: int | None = MAX_TASKS, owner: str = "stlsim sweep") -> int:
    """The number of tasks of ``spec`` x seeds x modes, refused above ``max_tasks`` before any is built."""
    if not spec.axes:
        raise fail("grid", "at least one option to vary (NAME=V1,V2,...)", "no axis", owner)
    cells = 1
    for values in spec.axes.values():
        cells *= len(values)
    n = cells * len(seeds) * len(modes)
    if max_tasks is not None and n > max_tasks:
        raise fail("grid", f"at most {max_tasks} tasks (--max-tasks; raise it to run a larger sweep)",
                   f"{cells} cell(s) x {len(seeds)} seed(s) x {len(modes)} mode(s) = {n} tasks", owner)
    return n


def _check_dataset_name(spec: str, owner: str):
    """A data-set spec that can be loaded: a known name, an event set, or an existing .npz file."""
    from ...data.event_datasets import is_event_spec

    name, _, directory = str(spec).partition(":")
    if str(spec).lower().endswith(".npz"):
        if not os.path.isfile(spec):
            raise fail("dataset", "an existing .npz file", f"{spec!r}, which does not exist", owner)
        return
    if is_event_spec(spec):
        return
    if name.lower() == "digits" and not directory or name.lower() in ("fashion-mnist", "mnist", "cifar10"):
        if directory and not os.path.isdir(directory):
            raise fail("dataset", f"{name}:DIR with an existing folder DIR", f"{spec!r}", owner)
        return
    raise fail("dataset", "'digits', 'fashion-mnist[:DIR]', 'mnist[:DIR]', 'cifar10[:DIR]', an event data "
               "set or a path to an .npz file", repr(spec), owner)


def preflight(tasks, owner: str = "stlsim sweep"):
    """Check every distinct configuration before any task runs (no data is loaded)."""
    import stlsim

    from ...neurons import LIF

    seen = set()
    for task in tasks:
        opts = task.option_dict
        key = json.dumps(opts, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        where = " ".join(f"{k}={v}" for k, v in task.cell)
        try:
            if task.mode == "ann" and opts["arch"] != "mlp":
                raise fail("arch", "'mlp' for the ANN baseline (mode 'ann')", repr(opts["arch"]), owner)
            if opts["arch"] != "mlp":
                from ... import architectures

                if opts["arch"] not in architectures.names():
                    raise fail("arch", f"'mlp' or one of {', '.join(architectures.names())}", repr(opts["arch"]),
                               owner)
            _check_dataset_name(opts["dataset"], owner)
            spec = RunSpec.from_options(opts, mode=task.mode, seed=task.seed, owner=owner)
            LIF(tau=spec.net.tau, theta_init=spec.net.theta_init, reset=spec.net.reset,
                detach_reset=spec.net.detach_reset)
            stlsim.surrogate.get(spec.net.surrogate, spec.net.surrogate_param, owner)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{err} (grid cell {where or 'fixed options'})") from None
