"""Command line: ``stlsim compare | train | bench | report | sweep | sweep-report | sweep-noise``.

``stlsim compare`` is the main job: STL, SL and TL trained side by side on the same
data, network and seeds (defaults: the bundled UCI digits, sized for a laptop).
"""
from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main"]


def _int_list(text):
    """Comma-separated positive integers ("256" or "800,400"); empty parts are an error."""
    parts = [v.strip() for v in text.split(",")]
    try:
        values = [int(v) for v in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _compare_modes(text):
    """``--modes`` of compare: distinct names of ``compare.COMPARE_MODES``, comma-separated."""
    from .compare import COMPARE_MODES

    modes = [m.strip() for m in text.split(",")]
    unknown = [m for m in modes if m not in COMPARE_MODES]
    if unknown or len(set(modes)) != len(modes):
        problem = f"unknown mode {unknown[0]!r}" if unknown else "a mode given twice"
        raise argparse.ArgumentTypeError(f"expected distinct modes among {', '.join(COMPARE_MODES)}, "
                                         f"comma-separated; got {text!r} ({problem})")
    return modes


def _override(text):
    field, sep, value = text.partition("=")
    if not sep or not field.strip():
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    return field.strip(), value.strip()


def _add_common(p: argparse.ArgumentParser):
    p.add_argument("--dataset", default="digits",
                   help="digits | fashion-mnist[:DIR] | mnist[:DIR] | cifar10[:DIR] | PATH.npz | "
                        "nmnist:DIR | dvsgesture:DIR | shd:DIR | saccade-digits (synthetic events) "
                        "(default: digits, bundled)")
    p.add_argument("--arch", default="mlp", help="mlp (dense; sizes from --hidden) or a preset of stlsim.architectures")
    p.add_argument("--hidden", type=_int_list, default=None, help="hidden layer sizes, e.g. 256 or 800,400 (mlp)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--timesteps", "-T", type=int, default=None)
    p.add_argument("--population", "-P", type=int, default=10, help="output neurons per class (GJDF); 1 = plain")
    p.add_argument("--encoding", choices=["rate", "direct"], default=None,
                   help="static inputs only (event data sets are fed as their frames); default: rate for the "
                        "named image data sets, direct for a .npz (docs/sweep.md: rate coding lost 1.4-18 points "
                        "on the npz data sets tried)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--theta-lr", type=float, default=None, help="threshold learning rate (default: --lr)")
    p.add_argument("--weight-decay", type=float, default=1e-6)
    p.add_argument("--lr-decay", type=float, default=0.93)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--loss", choices=["mse_rate", "ce_rate"], default="mse_rate")
    p.add_argument("--tau", type=float, default=0.5)
    p.add_argument("--theta-init", type=float, default=None)
    p.add_argument("--init-gain", type=float, default=None, help="weight init bound = gain / sqrt(fan_in)")
    p.add_argument("--reset", choices=["hard", "soft"], default="hard")
    p.add_argument("--surrogate", default="atan")
    p.add_argument("--threshold-sharing", choices=["neuron", "channel", "layer"], default="neuron",
                   help="one threshold per neuron (default; per position in a conv layer), per conv channel, "
                        "or one per layer")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float32")
    p.add_argument("--backend", default=None, help="numpy | numba | ... (default: the network's)")
    p.add_argument("--engine", choices=["clock", "event"], default=None,
                   help="clock, or event: work only where spikes are; faster at low input "
                        "density (docs/event_engine.md)")
    p.add_argument("--train-subset", type=int, default=None, help="use only the first N training samples")
    p.add_argument("--test-subset", type=int, default=None, help="use only the first N test samples")
    p.add_argument("--out", default=None, help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress output")


# Defaults per dataset: small enough for 2 cores, as stated in the README.
_DATASET_DEFAULTS = {
    "digits": {"hidden": [256], "epochs": 30, "timesteps": 8, "theta_init": 1.0, "init_gain": 4.0, "encoding": "rate"},
    "fashion-mnist": {"hidden": [800], "epochs": 5, "timesteps": 4, "theta_init": 1.0, "init_gain": 4.0, "encoding": "rate"},
    "mnist": {"hidden": [800], "epochs": 5, "timesteps": 4, "theta_init": 1.0, "init_gain": 4.0, "encoding": "rate"},
    "cifar10": {"hidden": [1024], "epochs": 5, "timesteps": 8, "theta_init": 1.0, "init_gain": 4.0, "encoding": "rate"},
    "saccade-digits": {"hidden": [256], "epochs": 15, "timesteps": 20, "theta_init": 1.0, "init_gain": 4.0, "encoding": "rate"},
    "nmnist": {"hidden": [800], "epochs": 5, "timesteps": 20, "theta_init": 1.0, "init_gain": 4.0, "encoding": "rate"},
    "dvsgesture": {"hidden": [512], "epochs": 10, "timesteps": 20, "theta_init": 1.0, "init_gain": 4.0, "encoding": "rate"},
    "shd": {"hidden": [256], "epochs": 10, "timesteps": 100, "theta_init": 1.0, "init_gain": 4.0, "encoding": "rate"},
    # a user's own .npz: any features in [0, 1]; the analog values go straight in (direct), as rate
    # coding lost 4 points on the digits, 1.4 on Fashion-MNIST and 18 on MNIST-1D (docs/sweep.md);
    # epochs by size (None: see `dataset_defaults`)
    "npz": {"hidden": [800], "epochs": None, "timesteps": 4, "theta_init": 1.0, "init_gain": 4.0, "encoding": "direct"},
}
NPZ_SAMPLES_SEEN = 50_000      # an .npz trains for about this many samples: 5 to 30 epochs


def npz_epochs(n_train: int) -> int:
    """Epochs for an .npz of ``n_train`` training samples: enough to see ``NPZ_SAMPLES_SEEN``, 5 to 30."""
    return int(min(30, max(5, -(-NPZ_SAMPLES_SEEN // max(int(n_train), 1)))))


def dataset_defaults(dataset: str, train_subset=None, n_train=None) -> dict:
    """The defaults of ``stlsim train`` / ``compare`` for ``dataset`` (a copy); for an .npz the epochs
    follow its size (``n_train``, else read from the file's ``y_train``; 5 if it cannot be read)."""
    key = dataset.split(":")[0] if not dataset.endswith(".npz") else "npz"
    defaults = dict(_DATASET_DEFAULTS.get(key, _DATASET_DEFAULTS["mnist"]))
    if defaults["epochs"] is None:
        if n_train is None:
            import zipfile

            import numpy as np

            try:
                with np.load(dataset) as archive:
                    n_train = int(archive["y_train"].shape[0])
            except (OSError, KeyError, ValueError, zipfile.BadZipFile):   # the loader says what is wrong
                n_train = NPZ_SAMPLES_SEEN // 5
            if train_subset is not None:
                n_train = min(n_train, int(train_subset))
        defaults["epochs"] = npz_epochs(n_train)
    return defaults


def _configs(args, mode="stl", seed=0):
    from .data import load_dataset
    from .data.event_datasets import is_event_spec, load_event_dataset
    from .train import NetConfig, TrainConfig

    for flag in ("epochs", "train_subset", "test_subset"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be a positive integer; got {value}")
    if is_event_spec(args.dataset):
        data = load_event_dataset(args.dataset, args.timesteps, args.train_subset, args.test_subset)
        args.encoding, args.timesteps = "frames", data.timesteps
    else:
        data = load_dataset(args.dataset)
    if args.train_subset is not None or args.test_subset is not None:
        data = data.subset(args.train_subset, args.test_subset)
    if len(data.y_train) == 0 or len(data.y_test) == 0:
        raise ValueError(f"data set {data.name!r} has {len(data.y_train)} training and {len(data.y_test)} "
                         "test samples; both splits must be non-empty")
    defaults = dataset_defaults(args.dataset, n_train=len(data.y_train))
    pick = lambda value, name: defaults[name] if value is None else value  # noqa: E731
    netcfg = NetConfig(arch=args.arch, hidden=pick(args.hidden, "hidden"), population=args.population,
                       tau=args.tau, theta_init=pick(args.theta_init, "theta_init"), reset=args.reset,
                       surrogate=args.surrogate, init_gain=pick(args.init_gain, "init_gain"), dtype=args.dtype,
                       threshold_sharing=getattr(args, "threshold_sharing", "neuron"))
    config = TrainConfig(mode=mode, epochs=pick(args.epochs, "epochs"), batch_size=args.batch_size,
                         timesteps=pick(args.timesteps, "timesteps"), encoding=pick(args.encoding, "encoding"), loss=args.loss,
                         optimizer=args.optimizer, lr=args.lr, theta_lr=args.theta_lr,
                         weight_decay=args.weight_decay, lr_decay=args.lr_decay, seed=seed, backend=args.backend,
                         engine=getattr(args, "engine", None))
    _apply_overrides(getattr(args, "override", None) or [], netcfg, config)
    return data, netcfg, config.validate()


def _apply_overrides(pairs, netcfg, config):
    """``--override FIELD=VALUE``: set the field (of the training or network config)."""
    import dataclasses
    import json

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


def cmd_compare(args) -> int:
    from ._io import path_component
    from .compare import format_table, run_comparison, usable_cores

    data, netcfg, config = _configs(args)
    out = args.out or os.path.join("runs", f"compare-{path_component(data.name)}")
    seeds = list(range(args.seeds))
    runs = len(args.modes) * len(seeds)
    workers = args.max_workers
    if workers is None:                # every usable core, or the runs of a cluster's scheduler
        workers = runs if args.scheduler != "local" else min(usable_cores(), runs)
    if workers > 1 and runs > 1 and args.scheduler == "local":
        from .sweep.runner import _dask_available

        if not _dask_available():
            print('stlsim compare: dask.distributed is not installed, so the runs train one after the other '
                  'on one core (pip install "stlsim[sweep]" to train them on every core)', flush=True)
            workers = 1
    where = f"on {min(workers, runs)} worker processes" if workers > 1 and runs > 1 else "here, one after the other"
    print(f"stlsim compare: {data.name} ({len(data.y_train)} train / {len(data.y_test)} test), "
          f"arch {netcfg.arch} {netcfg.hidden}, T={config.timesteps}, P={netcfg.population}, "
          f"{config.epochs} epochs, seeds {seeds}, modes {args.modes}, {runs} runs {where} -> {out}", flush=True)
    results = run_comparison(data, netcfg, config, modes=args.modes, seeds=seeds, out_dir=out,
                             progress=not args.quiet, max_workers=workers, scheduler=args.scheduler,
                             force=args.force)
    print()
    print(format_table(results))
    print(f"\nresults: {os.path.join(out, 'results.json')}; figures: "
          + ", ".join(os.path.join(out, f) for f in results["figures"].values()))
    return 130 if results["interrupted"] else 0


def cmd_train(args) -> int:
    from ._io import path_component
    from .train import build_network, train

    data, netcfg, config = _configs(args, mode=args.mode, seed=args.seed)
    out = args.out or os.path.join("runs", f"train-{path_component(data.name)}")
    os.makedirs(out, exist_ok=True)
    record = os.path.join(out, f"{args.mode}_seed{args.seed}.h5")
    _remove_stale_temp_files(record)
    net = build_network(netcfg, data.sample_shape, data.n_classes, seed=args.seed, backend=config.backend)
    override = [name for name, _ in args.override or []]
    if override and args.resume is None:
        raise ValueError("--override changes a resumed run; it needs --resume RECORD.h5")
    result = train(net, data, config, record_path=record, resume=args.resume, progress=not args.quiet,
                   netcfg=netcfg, override=override)
    acc = result.history["test_accuracy"]
    print(f"{args.mode.upper()} seed {args.seed}: final test accuracy "
          f"{acc[-1] if acc else float('nan'):.4f} in {result.wall_time:.1f}s; record: {record}")
    return 130 if result.interrupted else 0


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


def cmd_bench(args) -> int:
    try:
        from benchmarks.__main__ import main as bench_main
    except ImportError:
        print("stlsim bench: the benchmarks/ folder of the source tree is needed "
              "(run from a checkout: python -m benchmarks)", file=sys.stderr)
        return 2
    return bench_main(args.rest)


def cmd_report(args) -> int:
    from .report import write_report

    path = write_report(args.run_dir, args.out, baseline_dir=args.baseline, max_test=args.max_test,
                        noise=not args.no_noise, energy=not args.no_energy, decisions=not args.no_decisions,
                        dataset=args.dataset, backend=args.backend, log=None if args.quiet else print)
    print(f"report: {path}")
    return 0


def cmd_sweep(args) -> int:
    from .sweep.cli import run_from_args

    return run_from_args(args)


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


def cmd_sweep_noise(args) -> int:
    from .sweep.robustness import write_noise_report

    path = write_noise_report(args.sweep_dir, args.out, noise=args.noise, baseline=args.baseline,
                              acc_tol=args.acc_tol, rate_tol=args.rate_tol, min_accuracy=args.min_accuracy,
                              max_test=args.max_test, split=args.split, log=None if args.quiet else print)
    print(f"noise report: {path}")
    return 0


def cmd_sweep_report(args) -> int:
    from .sweep.report import write_sweep_report

    path = write_sweep_report(args.sweep_dir, args.out, baseline=args.baseline, epoch=args.epoch,
                              log=None if args.quiet else print)
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
    parser = argparse.ArgumentParser(prog="stlsim", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compare", help="train STL, SL and TL (and the ANN) side by side (the main job)")
    _add_common(p)
    p.add_argument("--seeds", type=_positive_int, default=3, help="number of seeds (0..K-1)")
    p.add_argument("--modes", type=_compare_modes, default=["stl", "sl", "tl"],
                   help="comma-separated, of stl (weights and thresholds), sl (weights), tl (thresholds), "
                        "ann (the ReLU network of the same dense shape; --arch mlp only) (default: stl,sl,tl)")
    p.add_argument("--max-workers", type=_positive_int, default=None,
                   help="train the runs on N Dask worker processes, one thread each (default: every usable "
                        "core, at most one per run; 1: here, one after the other; the results are the same "
                        "bit for bit)")
    p.add_argument("--scheduler", default="local", help="with more than one worker: local (an embedded "
                   "LocalCluster) or the address of a running Dask scheduler")
    p.add_argument("--force", action="store_true",
                   help="replace another run's files in --out (otherwise such a folder is refused)")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("train", help="train one learning mode")
    _add_common(p)
    p.add_argument("--mode", choices=["stl", "sl", "tl"], default="stl")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", default=None, help="continue from a record's checkpoint (of this same run)")
    p.add_argument("--override", type=_override, action="append", default=None, metavar="FIELD=VALUE",
                   help="with --resume: change FIELD of the recorded run (e.g. lr=1e-4); logged in the record")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("bench", help="run the benchmarks (source checkout)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("report", help="Markdown report of a compare run: claims, energy, noise, GJDF")
    p.add_argument("run_dir", help="directory written by `stlsim compare` (results.json + *.h5)")
    p.add_argument("--out", default=None, help="output directory (default: RUN_DIR)")
    p.add_argument("--max-test", type=int, default=1000, help="test samples for energy/noise/decisions")
    p.add_argument("--dataset", default=None, help="data set spec if results.json's cannot be reloaded")
    p.add_argument("--baseline", default=None, help="a compare run with --population 1 on the same data "
                   "and seeds: checks the GJDF gain of RUN_DIR's P over P = 1")
    p.add_argument("--backend", default=None, help="numpy | numba (default: the network's)")
    p.add_argument("--no-noise", action="store_true", help="skip the noise-robustness curves")
    p.add_argument("--no-energy", action="store_true", help="skip the SOP/energy counts")
    p.add_argument("--no-decisions", action="store_true", help="skip the GJDF decision ablations")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("sweep", help="a grid of train options x seeds x modes, on Dask or serially")
    _add_common(p)
    from .sweep.cli import add_sweep_options

    add_sweep_options(p)
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("sweep-report", help="paired STL-SL heat maps, forest plot and verdicts of a sweep")
    p.add_argument("sweep_dir", help="directory written by `stlsim sweep` (table.csv, sweep.json)")
    p.add_argument("--out", default=None, help="output directory (default: SWEEP_DIR/report)")
    p.add_argument("--baseline", default="sl", help="the mode STL is paired against (default: sl)")
    p.add_argument("--epoch", type=int, default=None, help="compare the test accuracies after this epoch "
                   "(default: the final ones)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_sweep_report)
    p = sub.add_parser("sweep-noise", help="noise robustness of a sweep's runs, STL vs SL at matched clean "
                       "accuracy and firing rate")
    p.add_argument("sweep_dir", help="directory written by `stlsim sweep` (its records are read)")
    p.add_argument("--out", default=None, help="output directory (default: SWEEP_DIR/report)")
    p.add_argument("--noise", type=_noise_spec, default=None, metavar='"KIND=L1,L2 ..."',
                   help="noise kinds and levels (default: gaussian=0.2,0.4 spike_delete=0.4 spike_insert=0.05)")
    p.add_argument("--baseline", default="sl", help="the mode STL is matched against (default: sl)")
    p.add_argument("--acc-tol", type=float, default=0.01, help="largest clean accuracy difference of a pair")
    p.add_argument("--rate-tol", type=float, default=0.10, help="largest relative hidden-rate difference")
    p.add_argument("--min-accuracy", type=float, default=0.5, help="leave out runs below this clean accuracy")
    p.add_argument("--max-test", type=_positive_int, default=None, help="first N test samples only")
    p.add_argument("--split", default=None, help="an axis whose values get a table each (default: theta_lr "
                   "when it is an axis; '' for one table)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_sweep_noise)
    p = sub.add_parser("check", help="stlsim's gradients of a NIR file, or against a peer's own importer")
    p.add_argument("model", help="a NIR file (HDF5), e.g. written by stlsim.nir.write or a peer's exporter")
    p.add_argument("--against", choices=["snntorch", "norse", "spikingjelly"], default=None,
                   help="import the file with that framework's own NIR importer and compare")
    p.add_argument("--dt", type=float, default=None, help="time step in seconds (default: the file's)")
    p.add_argument("--preset", default=None, help="a stlsim.conventions name for what NIR does not carry")
    p.add_argument("--timesteps", type=_positive_int, default=8)
    p.add_argument("--batch", type=_positive_int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_check)
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    commands = [i for i, a in enumerate(argv) if not a.startswith("-")]
    if commands and argv[commands[0]] == "bench":     # everything after `bench` is the benchmarks'
        args = parser.parse_args(argv[:commands[0] + 1])
        args.rest = argv[commands[0] + 1:]
    else:
        args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("STLSIM_DEBUG"))
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
