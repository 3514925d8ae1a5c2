"""``stlsim sweep``: the options beyond those of ``stlsim compare``, and the command itself."""
from __future__ import annotations

import argparse
import os
import sys

from .._checks import fail

__all__ = ["add_sweep_options", "run_from_args"]


def add_sweep_options(p: argparse.ArgumentParser):
    p.add_argument("--grid", default=None,
                   help='options to vary: "theta_init=1,2 init_gain=0.5,1,2,4,8" (list options: hidden=256,128+128)')
    p.add_argument("--grid-file", default=None, help="a TOML grid file ([grid], [fixed], seeds, modes; docs/sweep.md)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds 0..K-1 (default: the grid file's, else 3)")
    p.add_argument("--modes", default=None, help="learning modes, e.g. stl,sl (default: the grid file's, else stl,sl)")
    p.add_argument("--max-workers", type=int, default=None, help="at most N worker processes (default: one per core)")
    p.add_argument("--scheduler", default="local",
                   help="local (an embedded Dask LocalCluster, the default), serial (no Dask), "
                        "or the address of a running Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--dry-run", action="store_true", help="list the tasks and stop")


def run_from_args(args) -> int:
    from .grid import expand, load_grid_file, make_grid, parse_grid_text, preflight, train_options
    from .runner import run_sweep

    owner = "stlsim sweep"
    if args.grid is None and args.grid_file is None:
        raise fail("--grid or --grid-file", "given", "neither", owner)
    known = train_options()
    file_spec = load_grid_file(args.grid_file, owner) if args.grid_file else None
    text_spec = parse_grid_text(args.grid, owner) if args.grid else None
    axes = {}
    for spec in (file_spec, text_spec):
        for name, values in (spec.axes if spec else {}).items():
            if name in axes:
                raise fail(f"grid option {name!r}", "in --grid or in the grid file", "in both", owner)
            axes[name] = values
    # The fixed part: explicit command-line options beat the grid file's [fixed], which beats the defaults.
    base = {name: getattr(args, name) for name in known}
    explicit = {name for name, action in known.items() if getattr(args, name) != action.default}
    fixed = {k: v for k, v in (file_spec.fixed if file_spec else {}).items() if k not in explicit}
    clash = sorted(explicit & set(axes))
    if clash:
        raise fail(f"option {clash[0]!r}", "either fixed (--" + clash[0].replace("_", "-") + ") or in the grid",
                   "both", owner)
    spec = make_grid(axes, fixed, owner=owner)
    if args.seeds is not None:
        if args.seeds < 1:
            raise fail("--seeds", "an integer >= 1", repr(args.seeds), owner)
        seeds = list(range(args.seeds))
    else:
        seeds = file_spec.seeds if file_spec and file_spec.seeds else [0, 1, 2]
    from .grid import check_modes

    modes = check_modes(args.modes, owner) if args.modes else (
        file_spec.modes if file_spec and file_spec.modes else ["stl", "sl"])
    tasks = expand(spec, base, seeds, modes)
    preflight(tasks, owner)
    out = args.out or os.path.join("runs", f"sweep-{args.dataset.split(':')[0]}")
    n_cells = len(tasks) // max(len(seeds) * len(modes), 1)
    print(f"stlsim sweep: {n_cells} cell(s) x {len(seeds)} seed(s) x {len(modes)} mode(s) = {len(tasks)} "
          f"task(s) over {', '.join(spec.axes)} -> {out}", flush=True)
    if args.dry_run:
        for t in tasks:
            print(f"  {t.id} {t.mode} seed {t.seed} " + " ".join(f"{k}={v}" for k, v in t.cell))
        return 0
    meta = {"schema_version": 1, "command": ["stlsim", *sys.argv[1:]] if sys.argv else [],
            "axes": [[k, v] for k, v in spec.axes.items()], "fixed": {**spec.fixed, **{k: base[k] for k in explicit}},
            "seeds": seeds, "modes": modes}
    log = None if args.quiet else (lambda text: print(text, flush=True))
    summary = run_sweep(tasks, out, scheduler=args.scheduler, max_workers=args.max_workers, meta=meta, log=log)
    if summary["interrupted"]:
        return 130
    return 0 if summary["ok"] == summary["tasks"] else 1
