"""Reports: figures chosen from what a run holds, and self-contained HTML pages.

- :func:`write_run_report` (``plasticity report RUN.h5``): ``RUN.html`` beside the run,
  figures embedded as base64 PNG (or the PNG files alone, ``fmt="png"``);
- :func:`write_sweep_report` (``plasticity report SWEEP_DIR``): ``SWEEP_DIR/report.html``
  from the sweep's ``sweep.csv`` and its run files;
- :func:`write_compare_report` (``plasticity compare A.h5 B.h5 ...``): one page
  overlaying ψ, κ_min and the loss of several runs.

Nothing here imports Brian2 (the pages are built from the run files alone); matplotlib
runs with the Agg backend, so no display is needed.
"""

from .run_page import write_run_report
from .sweep_page import write_sweep_report
from .compare_page import write_compare_report

__all__ = ["write_run_report", "write_sweep_report", "write_compare_report"]
