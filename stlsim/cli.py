"""Command line: ``stlsim compare | train | bench | report | sweep | sweep-report | sweep-noise | check``.

``stlsim compare`` is the main job: STL, SL and TL trained side by side on the same
data, network and seeds (defaults: the bundled UCI digits, sized for a laptop).

This module only parses text: its parsers are built from the option table of a run
(``stlsim.experiment.spec.OPTIONS``), argv becomes a ``RunSpec``, and the work is done by
``stlsim.experiment``. It owns printing and exit codes; nothing in ``stlsim`` imports it.
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys

__all__ = ["main", "build_parser"]

# Where --help points for the long forms: the installed docstrings (the docs/ site in a checkout).
DOCS = "python3 -m pydoc stlsim.experiment (or docs/ in a source checkout)"


class _Parser(argparse.ArgumentParser):
    """argparse with no abbreviations and a "did you mean" for an unknown option."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:      # said by the subcommand's parser, with its closest option
            parser = next((a.choices.get(getattr(parsed, "command", None)) for a in self._actions
                           if isinstance(a, argparse._SubParsersAction)), None) or self
            known = [s for a in parser._actions for s in a.option_strings]
            message = "unrecognized arguments: " + " ".join(extras)
            for word in extras:
                close = difflib.get_close_matches(word.split("=")[0], known, n=2, cutoff=0.6)
                if word.startswith("-") and close:
                    message += f" (did you mean {' or '.join(close)}?)"
                    break
            parser.error(message)
        return parsed


def _typed(parse, what: str):
    """An argparse ``type`` from a parser that raises ValueError (its message becomes argparse's)."""
    def convert(text):
        try:
            return parse(text)
        except (ValueError, TypeError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    convert.__name__ = what
    return convert


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _modes(text):
    """``--modes``: distinct names of ``stlsim.experiment.spec.MODES``, comma-separated."""
    from .experiment.spec import MODES

    modes = [m.strip() for m in text.split(",")]
    unknown = [m for m in modes if m not in MODES]
    if unknown or len(set(modes)) != len(modes):
        problem = f"unknown mode {unknown[0]!r}" if unknown else "a mode given twice"
        raise argparse.ArgumentTypeError(f"expected distinct modes among {', '.join(MODES)}, "
                                         f"comma-separated; got {text!r} ({problem})")
    return modes


def _override(text):
    field, sep, value = text.partition("=")
    if not sep or not field.strip():
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    return field.strip(), value.strip()


def _noise_spec(text: str) -> dict:
    """``"gaussian=0.2,0.4 spike_delete=0.4"`` -> {kind: levels}."""
    spec = {}
    for item in text.split():
        kind, sep, values = item.partition("=")
        if not sep or not values:
            raise argparse.ArgumentTypeError(f"expected KIND=LEVEL[,LEVEL...] items, got {item!r}")
        try:
            spec[kind.strip()] = tuple(float(v) for v in values.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"noise levels must be numbers, got {item!r}") from None
    if not spec:
        raise argparse.ArgumentTypeError("expected at least one KIND=LEVELS item")
    return spec


# ------------------------------------------------------------------------ the parsers --

def _add_run_options(p: argparse.ArgumentParser) -> dict:
    """One argument group per group of the option table; every default shown. Returns the groups."""
    from .experiment.spec import GROUPS, OPTIONS

    groups = {key: p.add_argument_group(f"{title} options") for key, title in GROUPS.items()}
    for opt in OPTIONS.values():
        flags = [opt.flag] + ([opt.short] if opt.short else [])
        metavar = "{" + ",".join(opt.choices) + "}" if opt.choices else (
            "{true,false}" if opt.kind == "bool" else opt.name.upper())

        def parse(text, opt=opt):
            return opt.parse(text, owner=None, where=opt.flag)

        groups[opt.group].add_argument(*flags, dest=opt.name, type=_typed(parse, opt.kind), default=None,
                                       metavar=metavar, help=f"{opt.help} (default: {opt.shown_default})")
    return groups


def _add_output(p, default_out: str, quiet: bool = True):
    g = p.add_argument_group("output options")
    g.add_argument("--out", default=None, help=f"output directory (default: {default_out})")
    if quiet:
        g.add_argument("--quiet", action="store_true", help="no progress output (default: off)")
    return g


def _add_execution(p, what: str):
    g = p.add_argument_group("execution options")
    g.add_argument("--max-workers", type=_positive_int, default=None,
                   help=f"run the {what} on at most N Dask worker processes, one thread each (default: every "
                        "usable core, at most one per run; 1: here, one after the other). Every run trains with "
                        "one BLAS and one Numba thread wherever it runs, so the results are the same bit for bit")
    g.add_argument("--scheduler", default="local",
                   help="local (an embedded Dask LocalCluster), serial (this process, no Dask), or the address "
                        "of a running Dask scheduler, e.g. tcp://host:8786 (default: local)")
    return g


def _add_figure_options(group):
    group.add_argument("--fig-format", choices=["png", "pdf", "svg"], default="png",
                       help="file format of the figures (default: png)")
    group.add_argument("--dpi", type=_positive_int, default=None,
                       help="resolution of PNG figures (default: the plot functions', 150; 300 for print)")


def _sub(sub, name, help_text, description=None):
    p = sub.add_parser(name, help=help_text, description=description or help_text, allow_abbrev=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.__class__ = _Parser
    # --debug after the subcommand too; SUPPRESS keeps the main parser's value when it is not given here
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback of an error (default: off)")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The ``stlsim`` parser: one subparser per command."""
    from . import __version__

    parser = _Parser(prog="stlsim", description=__doc__.split("\n\n")[0],
                     epilog=f"Documentation: {DOCS}.")
    parser.add_argument("--version", action="version", version=f"stlsim {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error (default: off)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _sub(sub, "compare", "train STL, SL and TL (and the ANN) side by side (the main job)")
    g = p.add_argument_group("comparison options")
    g.add_argument("--seeds", type=_positive_int, default=3, help="number of seeds, 0..K-1 (default: 3)")
    g.add_argument("--modes", type=_modes, default=["stl", "sl", "tl"],
                   help="comma-separated, of stl (weights and thresholds), sl (weights), tl (thresholds), "
                        "ann (the ReLU network of the same dense shape; --arch mlp only) (default: stl,sl,tl)")
    _add_run_options(p)
    _add_execution(p, "runs")
    out = _add_output(p, "runs/compare-<data set>")
    _add_figure_options(out)
    out.add_argument("--force", action="store_true",
                     help="replace another run's files in --out (otherwise such a folder is refused) (default: off)")
    p.set_defaults(func=cmd_compare)

    p = _sub(sub, "train", "train one learning mode")
    g = p.add_argument_group("run options")
    g.add_argument("--mode", choices=["stl", "sl", "tl"], default="stl", help="learning mode (default: stl)")
    g.add_argument("--seed", type=int, default=0, help="the run's seed (default: 0)")
    g.add_argument("--resume", default=None, help="continue from a record's checkpoint (of this same run)")
    g.add_argument("--override", type=_override, action="append", default=None, metavar="FIELD=VALUE",
                   help="with --resume: change FIELD of the recorded run (e.g. lr=1e-4); logged in the record")
    _add_run_options(p)
    out = _add_output(p, "runs/train-<data set>")
    out.add_argument("--force", action="store_true", help="write into a folder of another command's run (a "
                     "compare or sweep folder), or one whose lock names a live process that is no stlsim run "
                     "(default: off)")
    p.set_defaults(func=cmd_train)

    p = _sub(sub, "bench", "run the benchmarks (a source checkout's benchmarks/ folder)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of python -m benchmarks")
    p.set_defaults(func=cmd_bench)

    p = _sub(sub, "report", "Markdown report of a compare run: claims, energy, noise, GJDF")
    p.add_argument("run_dir", help="directory written by `stlsim compare` (results.json + *.h5)")
    p.add_argument("--max-test", type=_positive_int, default=1000,
                   help="test samples for energy/noise/decisions (default: 1000)")
    p.add_argument("--dataset", default=None, help="data set spec if results.json's cannot be reloaded")
    p.add_argument("--baseline", default=None, help="a compare run with --population 1 on the same data "
                   "and seeds: checks the GJDF gain of RUN_DIR's P over P = 1")
    p.add_argument("--backend", default=None, help="numpy | numba (default: the network's)")
    p.add_argument("--no-noise", action="store_true", help="skip the noise-robustness curves")
    p.add_argument("--no-energy", action="store_true", help="skip the SOP/energy counts")
    p.add_argument("--no-decisions", action="store_true", help="skip the GJDF decision ablations")
    _add_figure_options(_add_output(p, "RUN_DIR"))
    p.set_defaults(func=cmd_report)

    p = _sub(sub, "sweep", "a grid of run options x seeds x modes, on Dask or serially")
    g = p.add_argument_group("grid options")
    g.add_argument("--grid", default=None,
                   help='options to vary: "theta_init=1,2 init_gain=0.5,1,2,4,8" (list options: hidden=256,128+128)')
    g.add_argument("--grid-file", default=None, help="a TOML grid file ([grid], [fixed], seeds, modes)")
    g.add_argument("--tune", default=None, metavar='"NAME=V1,V2 ..."',
                   help='values tried for every cell, mode and seed, e.g. "lr=1e-3,3e-3,1e-2"; the one '
                   "with the best validation accuracy is reported (needs --val-fraction > 0)")
    g.add_argument("--seeds", type=_positive_int, default=None,
                   help="number of seeds 0..K-1 (default: the grid file's, else 3)")
    g.add_argument("--modes", type=_modes, default=None,
                   help="learning modes, e.g. stl,sl (default: the grid file's, else stl,sl)")
    g.add_argument("--dry-run", action="store_true", help="list the tasks and stop")
    g.add_argument("--max-tasks", type=_positive_int, default=None,
                   help="refuse a grid of more tasks than this (default: 10000)")
    _add_run_options(p)
    _add_execution(p, "tasks")
    out = _add_output(p, "runs/sweep-<data set>")
    out.add_argument("--force", action="store_true", help="replace another sweep in --out (its table and "
                     "sweep.json; otherwise such a folder is refused) (default: off)")
    p.set_defaults(func=cmd_sweep)

    p = _sub(sub, "sweep-report", "paired STL-SL heat maps, forest plot and verdicts of a sweep")
    p.add_argument("sweep_dir", nargs="+", help="directory written by `stlsim sweep` (table.csv, sweep.json); "
                   "several: one report, each task and cell counted once")
    p.add_argument("--baseline", default="sl", help="the mode STL is paired against (default: sl)")
    p.add_argument("--epoch", type=_positive_int, default=None, help="compare the test accuracies after this "
                   "epoch (default: the final ones)")
    _add_output(p, "SWEEP_DIR/report")
    p.set_defaults(func=cmd_sweep_report)

    p = _sub(sub, "sweep-noise", "noise robustness of a sweep's runs, STL vs SL at matched clean accuracy "
             "and firing rate")
    p.add_argument("sweep_dir", help="directory written by `stlsim sweep` (its records are read)")
    p.add_argument("--noise", type=_noise_spec, default=None, metavar='"KIND=L1,L2 ..."',
                   help="noise kinds and levels (default: gaussian=0.2,0.4 spike_delete=0.4 spike_insert=0.05)")
    p.add_argument("--baseline", default="sl", help="the mode STL is matched against (default: sl)")
    p.add_argument("--acc-tol", type=float, default=0.01,
                   help="largest clean accuracy difference of a pair (default: 0.01)")
    p.add_argument("--rate-tol", type=float, default=0.10,
                   help="largest relative hidden-rate difference (default: 0.1)")
    p.add_argument("--min-accuracy", type=float, default=0.5,
                   help="leave out runs below this clean accuracy (default: 0.5)")
    p.add_argument("--max-test", type=_positive_int, default=None, help="first N test samples only (default: all)")
    p.add_argument("--split", default=None, help="an axis whose values get a table each (default: theta_lr "
                   "when it is an axis; '' for one table)")
    _add_output(p, "SWEEP_DIR/report")
    p.set_defaults(func=cmd_sweep_noise)

    p = _sub(sub, "check", "stlsim's gradients of a NIR file, or the oracle (stlsim.interop.compare) "
             "on a peer's own import of it")
    p.add_argument("model", help="a NIR file (HDF5), e.g. written by stlsim.nir.write or a peer's exporter")
    p.add_argument("--against", choices=["snntorch", "norse", "spikingjelly"], default=None,
                   help="import the file with that framework's own NIR importer, compare its spikes and "
                        "gradients with its stlsim twin, and the twin with stlsim's read of the file "
                        "(default: none)")
    p.add_argument("--dt", type=float, default=None, help="time step in seconds (default: the file's)")
    p.add_argument("--preset", default=None, help="a stlsim.conventions name for what NIR does not carry")
    p.add_argument("--timesteps", type=_positive_int, default=8, help="time steps (default: 8)")
    p.add_argument("--batch", type=_positive_int, default=4, help="batch size (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the input and probe (default: 0)")
    p.set_defaults(func=cmd_check)
    return parser


# ---------------------------------------------------------------------------- commands --

def _given(args) -> dict:
    """The run options given on the command line (name -> typed value)."""
    from .experiment.spec import OPTIONS

    return {name: getattr(args, name) for name in OPTIONS if getattr(args, name, None) is not None}


def _log(args):
    return None if getattr(args, "quiet", False) else _print


def _print(text):
    print(text, flush=True)


def cmd_compare(args) -> int:
    from ._io import path_component
    from .experiment.compare import format_table, run_comparison
    from .experiment.executor import Executor
    from .experiment.spec import RunSpec

    data, netcfg, config = RunSpec.from_options(_given(args), owner="stlsim compare").load()
    out = args.out or os.path.join("runs", f"compare-{path_component(data.name)}")
    seeds = list(range(args.seeds))
    runs = len(args.modes) * len(seeds)
    executor = Executor(args.scheduler, args.max_workers, n_jobs=runs, log=_print, owner="stlsim compare")
    where = executor.where
    print(f"stlsim compare: {data.name} ({len(data.y_train)} train / {len(data.y_test)} test), "
          f"arch {netcfg.arch} {netcfg.hidden}, T={config.timesteps}, P={netcfg.population}, "
          f"{config.epochs} epochs, seeds {seeds}, modes {args.modes}, {runs} runs {where} -> {out}", flush=True)
    results = run_comparison(data, netcfg, config, modes=args.modes, seeds=seeds, out_dir=out,
                             progress=not args.quiet, log=_log(args), max_workers=executor.workers,
                             scheduler=args.scheduler, force=args.force, fig_format=args.fig_format, dpi=args.dpi)
    print()
    print(format_table(results))
    print(f"\nresults: {os.path.join(out, 'results.json')}; figures: "
          + ", ".join(os.path.join(out, f) for f in results["figures"].values()))
    return 130 if results["interrupted"] else 0


def cmd_train(args) -> int:
    from ._io import claim_folder, path_component
    from .experiment.spec import RunSpec
    from .train import build_network, train

    data, netcfg, config = RunSpec.from_options(_given(args), mode=args.mode, seed=args.seed,
                                                owner="stlsim train").load()
    out = args.out or os.path.join("runs", f"train-{path_component(data.name)}")
    override = [name for name, _ in args.override or []]
    if override:
        netcfg, config = _apply_overrides(args.override, netcfg, config)
    if override and args.resume is None:
        raise ValueError("--override changes a resumed run; it needs --resume RECORD.h5")
    if args.resume is not None:
        _check_not_finished(args.resume, config.epochs)
    os.makedirs(out, exist_ok=True)
    _refuse_other_commands_folder(out, args.force)
    record = os.path.join(out, f"{args.mode}_seed{args.seed}.h5")
    with claim_folder(out, "stlsim train", args.force):
        _remove_stale_temp_files(record)
        net = build_network(netcfg, data.sample_shape, data.n_classes, seed=args.seed, backend=config.backend)
        result = train(net, data, config, record_path=record, resume=args.resume, progress=not args.quiet,
                       netcfg=netcfg, override=override)
    acc = result.history["test_accuracy"]
    print(f"{args.mode.upper()} seed {args.seed}: final test accuracy "
          f"{acc[-1] if acc else float('nan'):.4f} in {result.wall_time:.1f}s; record: {record}")
    return 130 if result.interrupted else 0


def _refuse_other_commands_folder(out, force: bool):
    """A folder holding a compare or sweep run is that run's: `train` does not write there."""
    from ._checks import fail

    for name, command in (("run.json", "compare"), ("results.json", "compare"), ("sweep.json", "sweep")):
        if os.path.isfile(os.path.join(out, name)) and not force:
            raise fail("--out", "a folder of `stlsim train` runs", f"{out!r}, which holds the {name} of a "
                       f"`stlsim {command}` run (its records would be overwritten); choose another --out, or "
                       "pass --force", "stlsim train")


def _check_not_finished(resume, epochs: int):
    """A finished record is not resumed into nothing: --epochs must go beyond its epochs."""
    from ._checks import fail
    from .train.records import load_record

    rec = load_record(resume)
    done = rec["checkpoint"]["epoch"] if rec.get("checkpoint") else None
    if done is not None and done >= epochs:
        raise fail("--epochs", f"more than the {done} epoch(s) the record {resume!r} already holds (to resume "
                   "is to train further)", repr(epochs), "stlsim train")


def _apply_overrides(pairs, netcfg, config):
    """``--override FIELD=VALUE``: the configs with FIELD set (of the training or network config)."""
    import dataclasses
    import json

    netcfg, config = dataclasses.replace(netcfg), dataclasses.replace(config)
    for name, text in pairs:
        targets = [c for c in (config, netcfg) if name in {f.name for f in dataclasses.fields(c)}]
        if not targets:
            fields = sorted({f.name for c in (config, netcfg) for f in dataclasses.fields(c)})
            raise ValueError(f"--override {name}={text}: {name!r} is not a field of the run "
                             f"(one of {', '.join(fields)})")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        current = getattr(targets[0], name)
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        for target in targets:
            setattr(target, name, value)
    return netcfg, config.validate()


def _remove_stale_temp_files(path, older_than_s: float = 600.0):
    """Remove temp files of ``path`` left by a killed save (none younger than ``older_than_s``)."""
    import glob
    import time

    pattern = os.path.join(os.path.dirname(path) or ".", "." + glob.escape(os.path.basename(path)) + ".*.tmp")
    for name in glob.glob(pattern):
        try:
            if time.time() - os.path.getmtime(name) > older_than_s:
                os.remove(name)
        except OSError:
            pass


_BENCH_ABSENT = ("stlsim bench runs the benchmarks of a source checkout (its benchmarks/ folder: implementations "
                 "side by side, ratios printed, results in benchmarks/results/*.json), which is not here. Run "
                 "`stlsim bench` or `python -m benchmarks` from a clone of the repository (the sdist ships it too).")


def cmd_bench(args) -> int:
    try:
        from benchmarks.__main__ import main as bench_main
    except ImportError:
        if {"-h", "--help"} & set(args.rest):       # the help is an answer, not an error
            print(_BENCH_ABSENT)
            return 0
        print(f"stlsim bench: error: {_BENCH_ABSENT}", file=sys.stderr)
        return 2
    return bench_main(args.rest)


def cmd_report(args) -> int:
    from .experiment.report import write_report

    path = write_report(args.run_dir, args.out, baseline_dir=args.baseline, max_test=args.max_test,
                        noise=not args.no_noise, energy=not args.no_energy, decisions=not args.no_decisions,
                        dataset=args.dataset, backend=args.backend, log=_log(args), fig_format=args.fig_format,
                        dpi=args.dpi)
    print(f"report: {path}")
    return 0


def cmd_sweep(args) -> int:
    from ._checks import fail
    from ._io import path_component
    from .experiment.spec import OPTIONS, dataset_key
    from .experiment.sweep.grid import (MAX_TASKS, check_modes, check_size, expand, load_grid_file, make_grid,
                                        parse_grid_text, preflight)
    from .experiment.sweep.runner import run_sweep

    owner = "stlsim sweep"
    if args.grid is None and args.grid_file is None:
        raise fail("--grid or --grid-file", "given", "neither", owner)
    file_spec = load_grid_file(args.grid_file, owner) if args.grid_file else None
    text_spec = parse_grid_text(args.grid, owner) if args.grid is not None else None
    axes = {}
    for spec in (file_spec, text_spec):
        for name, values in (spec.axes if spec else {}).items():
            if name in axes:
                raise fail(f"grid option {name!r}", "in --grid or in the grid file", "in both", owner)
            axes[name] = values
    # The fixed part: explicit command-line options beat the grid file's [fixed], which beats the defaults.
    explicit = _given(args)
    base = {name: opt.default for name, opt in OPTIONS.items()}
    base.update(explicit)
    fixed = {k: v for k, v in (file_spec.fixed if file_spec else {}).items() if k not in explicit}
    clash = sorted(set(explicit) & set(axes))
    if clash:
        raise fail(f"option {clash[0]!r}", "either fixed (--" + clash[0].replace("_", "-") + ") or in the grid",
                   "both", owner)
    spec = make_grid(axes, fixed, owner=owner)
    if args.seeds is not None:
        seeds = list(range(args.seeds))
    else:
        seeds = file_spec.seeds if file_spec and file_spec.seeds else [0, 1, 2]
    modes = check_modes(args.modes, owner) if args.modes else (
        file_spec.modes if file_spec and file_spec.modes else ["stl", "sl"])
    tune = _tune_values(args, owner)
    limit = MAX_TASKS if args.max_tasks is None else args.max_tasks
    n_tasks = check_size(spec, seeds, modes, None, owner)
    for values in (tune or {}).values():           # every tuning value is a run of its own
        n_tasks *= len(values)
    if n_tasks > limit:
        raise fail("grid", f"at most {limit} tasks (--max-tasks; raise it to run a larger sweep)",
                   f"{n_tasks} tasks, the tuning values included", owner)
    tasks = _expand_tuned(spec, tune, base, seeds, modes, owner) if tune else expand(spec, base, seeds, modes)
    preflight(tasks, owner)
    dataset = str(explicit.get("dataset", fixed.get("dataset", base["dataset"])))
    out = args.out or os.path.join("runs", f"sweep-{path_component(dataset_key(dataset))}")
    n_cells = len({t.cell for t in tasks})
    print(f"stlsim sweep: {n_cells} cell(s) x {len(seeds)} seed(s) x {len(modes)} mode(s) = {len(tasks)} "
          f"task(s) over {', '.join(spec.axes)} -> {out}", flush=True)
    if args.dry_run:
        for t in tasks:
            print(f"  {t.id} {t.mode} seed {t.seed} " + " ".join(f"{k}={v}" for k, v in t.cell)
                  + "".join(f" (tune {k}={t.option_dict[k]})" for k in tune))
        return 0
    meta = {"schema_version": 1, "command": ["stlsim", *sys.argv[1:]] if sys.argv else [],
            "axes": [[k, v] for k, v in spec.axes.items()], "fixed": {**spec.fixed, **explicit},
            "seeds": seeds, "modes": modes}
    if tune:
        meta["tune"] = [[k, v] for k, v in tune.items()]
    summary = run_sweep(tasks, out, scheduler=args.scheduler, max_workers=args.max_workers, meta=meta,
                        log=_log(args), force=args.force)
    if tune:
        from .experiment.sweep.tune import write_tuned

        print(f"tuned: {write_tuned(out)}", flush=True)
    if summary["interrupted"]:
        return 130
    return 0 if summary["ok"] == summary["tasks"] else 1


def _tune_values(args, owner) -> dict:
    """``--tune`` parsed (``stlsim.experiment.sweep.tune``); {} without it."""
    if not getattr(args, "tune", None):
        return {}
    from .experiment.sweep.tune import parse_tune_text

    return parse_tune_text(args.tune, owner)


def _expand_tuned(spec, tune, base, seeds, modes, owner):
    from .experiment.sweep.tune import expand_tuned

    return expand_tuned(spec, tune, base, seeds, modes, owner)


def cmd_sweep_noise(args) -> int:
    from .experiment.sweep.robustness import write_noise_report

    path = write_noise_report(args.sweep_dir, args.out, noise=args.noise, baseline=args.baseline,
                              acc_tol=args.acc_tol, rate_tol=args.rate_tol, min_accuracy=args.min_accuracy,
                              max_test=args.max_test, split=args.split, log=_log(args))
    print(f"noise report: {path}")
    return 0


def cmd_sweep_report(args) -> int:
    from .experiment.sweep.report import write_sweep_report

    dirs = args.sweep_dir if isinstance(args.sweep_dir, list) else [args.sweep_dir]
    path = write_sweep_report(dirs if len(dirs) > 1 else dirs[0], args.out, baseline=args.baseline, epoch=args.epoch,
                              log=_log(args))
    print(f"sweep report: {path}")
    return 0


def cmd_check(args) -> int:
    from .nir import check

    options = {} if args.preset is None else {"preset": args.preset}
    report = check(args.model, against=args.against, dt=args.dt, timesteps=args.timesteps,
                   batch=args.batch, seed=args.seed, **options)
    print(report)
    return 0 if report.ok else 1


def main(argv=None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    commands = [i for i, a in enumerate(argv) if not a.startswith("-")]
    if commands and argv[commands[0]] == "bench":     # everything after `bench` is the benchmarks'
        args = parser.parse_args(argv[:commands[0] + 1])
        args.rest = argv[commands[0] + 1:]
    else:
        args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("STLSIM_DEBUG"))
    _setup_logging(quiet=getattr(args, "quiet", False), debug=debug)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - one line per error; the traceback with --debug
        if debug:
            raise
        print(f"stlsim {args.command}: error: {_describe(err)}", file=sys.stderr)
        return 2


def _setup_logging(quiet: bool, debug: bool):
    """The library's messages (logger "stlsim") as plain lines on stderr; a handler set up
    before (an embedding program) is left as it is."""
    import logging

    class StderrLines(logging.Handler):
        """Writes to whatever sys.stderr is when a line is emitted (redirections included)."""

        def emit(self, record):
            try:
                sys.stderr.write(self.format(record) + "\n")
                sys.stderr.flush()
            except Exception:  # noqa: BLE001 - logging's own policy for a failed write
                self.handleError(record)

    logger = logging.getLogger("stlsim")
    if not logger.handlers:
        logger.addHandler(StderrLines())
        logger.propagate = False
    logger.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)


# Errors that a user's input or the system explains; anything else is reported as unexpected.
_USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError, FloatingPointError, ImportError, LookupError,
                EOFError)


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        text = f"{err.strerror}: {err.filename!r}" if err.filename else str(err)
    else:
        text = str(err) or type(err).__name__
    if isinstance(err, ImportError) and not str(err):
        text = f"a needed module is missing ({err.name})"
    if not isinstance(err, _USER_ERRORS):
        text = f"unexpected {type(err).__name__}: {text} (rerun with --debug for the traceback)"
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
