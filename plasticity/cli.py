"""The ``plasticity`` command: run, validate, rules, analyze, report.

Exit codes (README, "Running experiments"): 0 success; 2 bad input (one line naming the key, file or
value; no traceback; nothing written); 3 the run diverged (log kept); 130 interrupted
by SIGINT/SIGTERM (log kept); 1 anything else.
"""

import argparse
import json
import os
import sys

from .errors import BadInput, PlasticityError, RunStopped


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's own usage errors are bad input too: one line, exit 2
        self.exit(2, f"plasticity: error: {message}\n")


def _parser():
    parser = _Parser(prog="plasticity", description=(
        "Run plasticity rules as Brian2 simulations, stream the weights to HDF5, and "
        "certify each rule as (natural) gradient descent."))
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="run an experiment config, print the run file's path last")
    p.add_argument("config", help="experiment TOML file (see experiments/)")
    p.add_argument("--out", metavar="DIR", help="folder of the run file (default results/<name>/)")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config value, e.g. --set rule.eta=0.01 (repeatable)")
    p.add_argument("--device", choices=["runtime", "cpp_standalone", "auto"],
                   help="override simulation.device")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("validate", help="check a config; print the resolved config")
    p.add_argument("config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when valid")

    sub.add_parser("rules", help="list the rules, their parameters and losses")

    p = sub.add_parser("analyze", help="certify a run as (natural) gradient descent")
    p.add_argument("run", help="run file (.h5) or a minimal trajectory (.h5/.npz)")
    p.add_argument("--loss", action="append", default=None, metavar="NAME|FILE.py:FUNC",
                   help="loss to certify against (repeatable; default: the rule's candidates)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--drift", choices=["auto", "expected", "window", "given"], default="auto",
                   help="drift estimator: expected (rule + logged input statistics or rates), "
                        "window (weight differences), given (/drift); auto picks given, then "
                        "expected, then window")
    p.add_argument("--window", type=int, metavar="RECORDS",
                   help="window of the window estimator, in records (default: chosen from the data)")

    p = sub.add_parser("report", help="write figures (PNG) next to a run file")
    p.add_argument("run")
    return parser


def _version():
    from . import __version__

    return f"plasticity {__version__}"


def _cmd_run(args):
    from .config import load_config
    from .sim import results_dir, run

    experiment = load_config(args.config, args.overrides, seed=args.seed)
    if args.device and getattr(experiment, "kind", None) != "dynamics":
        experiment = load_config(args.config, [*args.overrides, f'simulation.device="{args.device}"'],
                                 seed=args.seed)
    if args.out is not None:
        _check_out_dir(args.out, "--out ")
    else:
        _check_out_dir(results_dir(experiment), "")
    if getattr(experiment, "kind", None) != "dynamics":
        from .sim.brian import prepare_run_process

        prepare_run_process()   # Brian2 without matplotlib, imports frozen for the gc (sim/brian.py)
    path = run(experiment, out_dir=args.out, progress=not args.quiet)
    print(path)
    return 0


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
    from .config import load_config

    experiment = load_config(args.config, args.overrides)
    if not args.quiet:
        print(f"# {args.config}: valid; resolved config (SI units):")
        print(experiment.to_toml(), end="")
    return 0


def _cmd_rules(args):
    from .rules import RULES

    print("\n\n".join(rule.describe() for rule in RULES.values()))
    return 0


def _cmd_analyze(args):
    from .analysis import analyze_file, format_table

    if args.window is not None and args.window < 1:
        raise BadInput(f"--window {args.window}: must be a positive number of records")
    document = analyze_file(args.run, args.loss, drift=args.drift, window=args.window)
    if args.json:
        print(json.dumps(document, indent=1))
    else:
        print(format_table(document))
    return 0


def _cmd_report(args):
    from .analysis.report import write_report

    for path in write_report(args.run):
        print(path)
    return 0


COMMANDS = {"run": _cmd_run, "validate": _cmd_validate, "rules": _cmd_rules,
            "analyze": _cmd_analyze, "report": _cmd_report}


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
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
    except KeyboardInterrupt:
        print("plasticity: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into `head` and the like: not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
