"""Glue for the command line (``plasticity analyze``, ``plasticity report``).

The CLI module (``plasticity/cli.py``) calls :func:`analyze_command` and
:func:`report_command`; both raise :class:`plasticity.errors.BadInput` (exit 2) with a
one-line message on a bad file or loss, and return the text to print.
"""

import json

from .pipeline import analyze_file, format_table

__all__ = ["analyze_file", "format_table", "analyze_command", "report_command"]


def analyze_command(path, losses=None, as_json=False, drift="auto", window=None):
    """Text printed by ``plasticity analyze PATH [--loss ...] [--json]``: the table, or
    one JSON document (DESIGN.md); the results are stored in the file's ``/analysis``."""
    doc = analyze_file(path, loss_specs=losses or None, drift=drift, window=window)
    return json.dumps(doc) if as_json else format_table(doc)


def report_command(path, out_dir=None):
    """Write the figures of ``plasticity report PATH``; returns their paths, one a line."""
    from .report import write_report

    return "\n".join(str(p) for p in write_report(path, out_dir))
