"""Parameter and seed sweeps: many runs of one config, on Dask, summarised in one table.

``plasticity sweep SWEEP.toml`` reads a sweep file (:mod:`.spec`), validates every
point's config, runs each point on a Dask worker (:mod:`.worker`: run, analyse, return
the summary) on a local cluster or an existing one (:mod:`.engine`), and appends one
row per run and loss to ``<out>/<name>/sweep.csv`` (:mod:`.table`). See docs/studies.md.
"""

from .engine import run_sweep
from .spec import Point, Sweep, SweepFile, load_sweep

__all__ = ["run_sweep", "load_sweep", "Sweep", "SweepFile", "Point"]
