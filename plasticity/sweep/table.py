"""The sweep table, ``<out>/<name>/sweep.csv``: one row per run and loss.

Rows are appended (and flushed to disk) as each run finishes, so a sweep killed at any
moment keeps every row written, and the file always reads with ``pandas.read_csv`` or
``csv.DictReader``. Columns, in order: ``run`` (the point's index in the sweep),
``identity`` (hash of its resolved config), ``seed``, one column per swept key (named
as in the sweep file, holding the value as written there), then ``status``,
``message``, ``file`` (relative to the table), ``wall_s`` (run + analysis on the
worker), ``run_s`` (the run alone), ``sim_s`` (of which Brian2's simulation loop, as
Brian2 measures it; empty for NumPy runs), ``worker_pid``, ``worker_rss_mb``, and the
analysis:
``loss``, ``verdict``, ``descent_fraction``, ``psi_deg_median``,
``kappa_min_median``, ``stability_max_real``, ``stability_max_imag``, ``stable``,
``recurrence`` and ``window_T`` (the smallest window loss, dynamics runs).
"""

import csv
import json
import os
from pathlib import Path

from ..errors import BadInput
from .worker import METRIC_COLUMNS

__all__ = ["columns", "SweepTable", "ENDED"]

#: statuses of a run that ended by itself: --resume does not run these points again
#: (a diverged run diverges again with the same config and seed)
ENDED = ("complete", "diverged")

RUN_COLUMNS = ("status", "message", "file", "wall_s", "run_s", "sim_s", "worker_pid",
               "worker_rss_mb")

#: columns added after the first release of the table: a table written before one of
#: them was added still resumes, its rows keep an empty cell there
LATER_COLUMNS = ("sim_s",)


def columns(keys):
    return ["run", "identity", "seed", *keys, *RUN_COLUMNS, *METRIC_COLUMNS]


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


class SweepTable:
    """Append-only CSV writer of a sweep's rows."""

    def __init__(self, path, keys):
        self.path = Path(path)
        self.keys = list(keys)
        self.columns = columns(keys)

    def existing_rows(self):
        """The rows already in the file (``[]`` if there is none); BadInput when its
        columns are not this sweep's."""
        if not self.path.exists():
            return []
        with open(self.path, newline="") as handle:
            reader = csv.DictReader(handle)
            if not self._readable(reader.fieldnames or []):
                raise BadInput(f"{self.path}: its columns are not those of this sweep "
                               f"(swept keys {', '.join(self.keys) or 'none'}); use another --out")
            return list(reader)

    def _readable(self, fieldnames):
        """Whether a table with these columns is this sweep's: the same columns in the
        same order, some of the :data:`LATER_COLUMNS` possibly missing."""
        missing = set(self.columns) - set(fieldnames)
        return (missing <= set(LATER_COLUMNS)
                and fieldnames == [c for c in self.columns if c not in missing])

    def start(self, keep_rows=()):
        """(Re)write the file with its header and ``keep_rows`` (atomically: a
        temporary file renamed over the old one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, self.columns)
            writer.writeheader()
            writer.writerows(keep_rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def append(self, rows, values):
        """Append the rows of one run (``values``: its swept key values)."""
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, self.columns, extrasaction="ignore")
            for row in rows:
                writer.writerow({k: _cell(v) for k, v in {**row, **values}.items()})
            handle.flush()
            os.fsync(handle.fileno())
