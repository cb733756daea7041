"""The ``plasticity`` command: run, validate, rules, analyze, report, compare.

Exit codes (README, "Running experiments"): 0 success; 2 bad input (one line naming the key, file or
value; no traceback; nothing written); 3 the run diverged (log kept); 130 interrupted
by SIGINT/SIGTERM (log kept); 1 anything else.
"""

import signal
import sys
import time

#: a SIGINT/SIGTERM that came while this module was still loading (:func:`main` ends
#: the command with it)
_EARLY_SIGNAL = []


def _note_signal(signum, frame):
    _EARLY_SIGNAL.append(signal.Signals(signum).name)


try:   # as early as the command allows: nothing slow has been imported yet
    signal.signal(signal.SIGTERM, _note_signal)
    signal.signal(signal.SIGINT, _note_signal)
except ValueError:   # imported outside the main thread
    pass

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

from .errors import BadInput, PlasticityError, RunStopped  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's own usage errors are bad input too: one line, exit 2
        self.exit(2, f"plasticity: error: {message}\n")


def _parser():
    parser = _Parser(prog="plasticity", description=(
        "Run plasticity rules as Brian2 simulations, stream the weights to HDF5, and "
        "certify each rule as (natural) gradient descent."),
        epilog="Typical use: plasticity run experiments/oja_pca.toml, then plasticity analyze "
               "RUN.h5 and plasticity report RUN.h5. 'plasticity COMMAND --help' documents each "
               "command. Exit codes: 0 done, 2 bad input, 3 diverged, 130 interrupted, 1 other.")
    parser.add_argument("--version", action="version", version=_version(),
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    set_help = ("override a config value, e.g. --set rule.eta=0.01 or --set "
                "simulation.duration='\"5 s\"' (TOML value; a bare word is a string; repeatable)")

    p = sub.add_parser("run", help="run an experiment config, print the run file's path last",
                       description="Run an experiment config; the run file's path is the last "
                                   "line of stdout (also after exit 3 or 130); a one-line summary "
                                   "(device, records, wall time) goes to stderr.")
    p.add_argument("config", help="experiment TOML file (see experiments/)")
    p.add_argument("--out", metavar="DIR", help="folder of the run file (default results/<name>/)")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help=set_help)
    p.add_argument("--device", choices=["runtime", "cpp_standalone", "auto"],
                   help="override simulation.device")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar, no summary line, no compile notice")
    p.add_argument("--force", action="store_true",
                   help="run even when the estimate says the run will not fit this machine's "
                        "memory or the folder's free space")

    p = sub.add_parser("validate", help="check a config; print the resolved config with units",
                       description="Check a config without running it and print the resolved "
                                   "config (defaults filled in, quantities with units) and the "
                                   "size of the run it describes.")
    p.add_argument("config", help="experiment TOML file")
    p.add_argument("--seed", type=int, help="override the config's seed (as in run)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help=set_help)
    p.add_argument("--toml", action="store_true",
                   help="print the resolved config as TOML in SI units (what a run file stores)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when valid")

    sub.add_parser("rules", help="list the rules, their parameters and losses",
                   description="List the built-in rules with their parameters (defaults, units) "
                               "and the losses the analysis certifies them against.")

    p = sub.add_parser("analyze", help="certify a run as (natural) gradient descent",
                       description="Certify a run file (or a minimal trajectory) against losses; "
                                   "prints a table (or JSON) and stores the results in the file's "
                                   "/analysis group. Several run files (one config, different "
                                   "seeds) with --drift ensemble.")
    p.add_argument("run", nargs="*", help="run file (.h5) or a minimal trajectory (.h5/.npz); "
                   "several run files with --drift ensemble")
    p.add_argument("--loss", action="append", default=None, metavar="NAME|FILE.py:FUNC",
                   help="loss to certify against (repeatable; default: the rule's candidates)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--drift", choices=["auto", "expected", "window", "given", "ensemble"], default="auto",
                   help="drift estimator: expected (rule + logged input statistics or rates), "
                        "window (weight differences), given (/drift), ensemble (mean over the "
                        "seeds of several runs); auto picks given, then expected, then window")
    p.add_argument("--window", type=int, metavar="RECORDS",
                   help="window of the window estimator, in records (default: chosen from the data)")
    p.add_argument("--explain", action="store_true",
                   help="print what each verdict and column means (with a run: after its table)")

    p = sub.add_parser("report", help="write one HTML page of a run (or of a sweep folder)",
                       description="RUN.h5: write RUN.html beside it (figures embedded, opens "
                                   "offline). SWEEP_DIR (a folder with sweep.csv): write "
                                   "SWEEP_DIR/report.html and each run's page. The written path "
                                   "is the last line of stdout.")
    p.add_argument("run", metavar="RUN.h5|SWEEP_DIR", help="run file, minimal trajectory, or sweep folder")
    p.add_argument("--format", choices=["html", "png"], default="html",
                   help="html (default): one self-contained page; png: the figures as PNG files "
                        "beside the run, no page")
    p.add_argument("--loss", action="append", default=None, metavar="NAME|FILE.py:FUNC",
                   help="certify against this loss first (needed for a trajectory without a rule; "
                        "repeatable)")

    p = sub.add_parser("compare", help="one HTML page overlaying several runs",
                       description="Overlay ψ(t), κ_min(t) and the loss of several runs on one "
                                   "page, with their verdicts; prints the page's path last.")
    p.add_argument("runs", nargs="+", metavar="RUN.h5", help="run files")
    p.add_argument("--out", metavar="FILE.html", default="compare.html",
                   help="the page to write (default compare.html in the current folder)")
    p = sub.add_parser("sweep", help="run and analyse a parameter/seed sweep on Dask; "
                                     "print the table's path last")
    p.add_argument("sweep", help="sweep TOML file (see docs/studies.md)")
    p.add_argument("--out", metavar="DIR", default="results",
                   help="the table and runs go to DIR/<name>/ (default results/)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local worker processes (default: the cores)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="use the Dask cluster at ADDRESS (tcp://HOST:PORT) instead of local workers")
    p.add_argument("--resume", action="store_true",
                   help="run only the points without a complete or diverged row in the table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser, sub


def _version():
    from . import __version__

    return f"plasticity {__version__}"


def _cmd_run(args):
    from .config import load_config
    from .sim import results_dir, run

    experiment = _load(args.config, args.overrides, args.seed)
    if args.device and getattr(experiment, "kind", None) != "dynamics":
        experiment = _load(args.config, [*args.overrides, f'simulation.device="{args.device}"'],
                           args.seed)
    if args.out is not None:
        _check_out_dir(args.out, "--out ")
    else:
        _check_out_dir(results_dir(experiment), "")
    from .sim.estimate import check_fits

    check_fits(experiment, results_dir(experiment, args.out), force=args.force)

    warm = _launches_warm(experiment)
    if getattr(experiment, "kind", None) != "dynamics" and not warm:
        from .sim.brian import prepare_run_process

        prepare_run_process()   # Brian2 without matplotlib, imports frozen for the gc (sim/brian.py)
    if not args.quiet and not warm:
        from .sim.compile_notice import install

        install()
    started = time.monotonic()
    path = run(experiment, out_dir=args.out, progress=not args.quiet)
    if not args.quiet:
        print(_run_summary(path, time.monotonic() - started), file=sys.stderr)
    print(path)
    return 0


def _launches_warm(experiment):
    """Whether the run will start an already built cpp_standalone program without
    Brian2 (sim/standalone.py, "Warm launch"): then Brian2 is not imported up front."""
    if getattr(experiment, "kind", None) == "dynamics":
        return False
    from .sim import runner_for

    runner = runner_for(experiment)
    return bool(getattr(runner, "warm_launch_ready", lambda _: False)(experiment))


def _run_summary(path, wall):
    """One line on a finished run: device, records, wall time."""
    from .io.reader import read_summary

    info = {k: ("?" if v is None else v) for k, v in read_summary(path).items()}
    return (f"plasticity: {info['status']}: device {info['device']}, {info['records']} records, "
            f"wall time {wall:.1f} s")


def _load(config, overrides, seed=None):
    """load_config, with errors caused by a --set value named as --set (not the file)."""
    from .config import load_config
    from .errors import ConfigError

    try:
        return load_config(config, overrides, seed=seed)
    except ConfigError as error:
        if not overrides:
            raise
        load_config(config, (), seed=seed)          # the file alone: its own errors name it
        message = str(error)
        prefix = f"{config}: "
        if message.startswith(prefix):
            message = message[len(prefix):]
        if message.startswith("--set"):
            raise
        named = message.split(":", 1)[0]
        blamed = [text for text in overrides
                  if named.startswith(text.split("=", 1)[0].strip()) or f"'{text.split('=', 1)[0].strip()}" in message]
        if not blamed and len(overrides) == 1:
            blamed = list(overrides)
        if blamed:
            raise ConfigError(f"--set {blamed[-1]}: {message}") from None
        raise ConfigError(f"--set: {message}") from None


def _check_out_dir(out, label):
    """The run's folder (``--out`` or ``results/<name>``) must be a folder, or a path
    where one can be made: checked before the run starts, so bad input writes nothing."""
    from pathlib import Path

    path = Path(out)
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise BadInput(f"{label}{out}: {parent} exists and is not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise BadInput(f"{label}{out}: {parent} is not writable")
            return


def _cmd_validate(args):
    import tomllib

    from .report.config_text import config_text

    experiment = _load(args.config, args.overrides, args.seed)
    if args.quiet:
        return 0
    if args.toml:
        print(f"# {args.config}: valid; resolved config (SI units):")
        print(experiment.to_toml(), end="")
        return 0
    resolved = tomllib.loads(experiment.to_toml())
    print(f"{args.config}: valid. Resolved config (defaults filled in):")
    network = getattr(experiment, "network", None)
    spec = tomllib.loads(network.spec.to_toml()) if network is not None else None
    print(config_text(resolved, spec))
    from .sim.estimate import estimate

    print("estimate (before running; `plasticity run` refuses what cannot fit):")
    for line in estimate(experiment).lines():
        print(f"  {line}")
    return 0


def _cmd_rules(args):
    from .rules import RULES

    print("\n\n".join(rule.describe() for rule in RULES.values()))
    return 0


def _cmd_analyze(args):
    from .analysis import analyze_file, format_table

    from .report.words import explain_text, legend_line

    if not args.run:
        if args.explain:
            print(explain_text())
            return 0
        raise BadInput("analyze: give a run file (or --explain alone for the verdicts' meaning)")
    if args.window is not None and args.window < 1:
        raise BadInput(f"--window {args.window}: must be a positive number of records")
    if args.drift == "ensemble":
        from .analysis.ensemble import analyze_ensemble

        document = analyze_ensemble(args.run, args.loss, window=args.window)
    elif len(args.run) > 1:
        raise BadInput(f"{len(args.run)} run files given: several files are analysed together "
                       "only with --drift ensemble (runs of one config with different seeds)")
    else:
        document = analyze_file(args.run[0], args.loss, drift=args.drift, window=args.window)
    if args.json:
        print(json.dumps(document, indent=1))
    else:
        lines = format_table(document).split("\n")
        if document.get("results"):
            # the legend goes right under the table's rows (before the notes)
            header = next((i for i, line in enumerate(lines) if line.startswith("loss ")), len(lines))
            end = next((i for i in range(header, len(lines)) if not lines[i].strip()), len(lines))
            lines.insert(end, legend_line())
        print("\n".join(lines))
        if args.explain:
            print()
            print(explain_text())
    return 0


def _cmd_report(args):
    from pathlib import Path

    from .report import write_run_report, write_sweep_report

    target = Path(args.run)
    if target.is_dir():
        if args.format != "html" or args.loss:
            raise BadInput(f"{target}: a sweep folder takes neither --format png nor --loss")
        print(write_sweep_report(target))
        return 0
    for path in write_run_report(target, fmt=args.format, losses=args.loss):
        print(path)
    return 0


def _cmd_sweep(args):
    from .sweep import load_sweep, run_sweep

    if args.workers is not None and args.workers < 1:
        raise BadInput(f"--workers {args.workers}: must be at least 1")
    if args.scheduler is not None and args.workers is not None:
        raise BadInput("--workers sets the local cluster's size: not with --scheduler")
    _check_out_dir(args.out, "--out ")
    sweep = load_sweep(args.sweep)
    table, code = run_sweep(sweep, out=args.out, workers=args.workers, scheduler=args.scheduler,
                            resume=args.resume, quiet=args.quiet)
    print(table)
    return code


def _cmd_compare(args):
    from .report import write_compare_report

    print(write_compare_report(args.runs, out=args.out))
    return 0


COMMANDS = {"run": _cmd_run, "validate": _cmd_validate, "rules": _cmd_rules,
            "analyze": _cmd_analyze, "report": _cmd_report, "compare": _cmd_compare,
            "sweep": _cmd_sweep}


def _interrupt(signum, frame):
    """SIGTERM as SIGINT: a KeyboardInterrupt wherever the program is (a run installs
    its own handlers, which stop it at the end of a step, once its file is open)."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv=None):
    # before any slow import (Brian2 takes a second or more): a SIGTERM that early
    # ends the command cleanly too, with exit code 130 and a message
    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _interrupt)
    except ValueError:   # not the main thread (tests calling main in a thread)
        pass
    parser, _ = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return _dispatch(args)
    finally:
        # the command is over (its file closed): a signal now must not turn a finished
        # command into a killed one while the interpreter shuts down; called from
        # Python (argv given), the caller's handlers come back
        for sig, handler in previous.items():
            signal.signal(sig, _note_signal if argv is None else handler)


def _dispatch(args):
    try:
        if _EARLY_SIGNAL:
            raise KeyboardInterrupt(_EARLY_SIGNAL.pop())
        return COMMANDS[args.command](args)
    except BadInput as error:
        print(f"plasticity: error: {error}", file=sys.stderr)
        return 2
    except RunStopped as error:
        # the run file is kept: its path stays the last line of stdout
        print(f"plasticity: {error}", file=sys.stderr)
        if error.path:
            print(error.path)
        return error.exit_code
    except PlasticityError as error:
        print(f"plasticity: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as error:
        by = f" by {error.args[0]}" if error.args else ""
        if "plasticity.sim.session" in sys.modules:
            from .sim.session import close_open_run_files

            close_open_run_files(f"stopped{by or ' by SIGINT'}")
        print(f"plasticity: interrupted{by}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into `head` and the like: not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
