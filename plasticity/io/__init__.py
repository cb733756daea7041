"""The run file: its format, written and read in one place.

- :mod:`.writer`: :class:`RunFile`, the streaming writer a simulation appends to;
- :mod:`.reader`: :func:`open_run` / :class:`Run`, the reader the analysis uses (run
  files, minimal HDF5 trajectories and ``.npz`` files), and :func:`write_analysis`;
- :mod:`.codecs`: the ``/inputs`` and ``/analysis`` groups;
- :mod:`.layout`: the flattened plastic vector of a record and its dense form.

The layout is described in the README ("The run file"). Nothing outside this package
reads or writes HDF5 run files directly.
"""

from .layout import Layout
from .reader import Run, open_run, write_analysis
from .writer import FORMAT, FORMAT_VERSION, STATUSES, RunFile, new_run_path, versions

__all__ = ["RunFile", "new_run_path", "versions", "FORMAT", "FORMAT_VERSION", "STATUSES", "Run",
           "open_run", "write_analysis", "Layout"]
