"""Figures of a run (``plasticity report RUN.h5``), written next to the run as PNG.

- ``<run>_weights.png``: the weights over time (at most 50 synapses drawn);
- ``<run>_loss.png``: each certified loss over time;
- ``<run>_psi_kappa.png``: ψ (degrees) and κ_min (log scale) over time;
- ``<run>_metric_spectrum.png``: eigenvalues of the fitted constant metric of each
  certified loss (fitted only when n ≤ FULL_FIT_MAX_N; otherwise the figure says so).

The certificates are taken from the file's ``/analysis`` group; if it has none, the
run is analysed first (:func:`plasticity.analysis.pipeline.analyze_file`).
Matplotlib with the Agg backend: no display needed.
"""

from pathlib import Path

import numpy as np

from ..io.reader import open_run, read_analysis

__all__ = ["write_report"]


def _read_analysis(path):
    return read_analysis(path)


def write_report(path, out_dir=None, max_lines=50):
    """Write the figures of run file ``path``; returns the list of PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    out_dir = Path(out_dir) if out_dir else path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    analysis = _read_analysis(path)
    if not analysis:
        from .pipeline import analyze_file
        analyze_file(path, store=path.suffix != ".npz")
        analysis = _read_analysis(path)
    written = []

    with open_run(path) as run:
        step = max(1, run.n_synapses // max_lines)
        columns = []
        for a, b in run.chunks():
            columns.append(run.weights(a, b)[:, ::step])
        W = np.concatenate(columns)
        time = run.time
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(time, W, lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("weight")
    ax.set_title(f"{stem}: weights" + (f" (every {step}th synapse)" if step > 1 else ""))
    written.append(_save(fig, out_dir / f"{stem}_weights.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, a in analysis.items():
        if "loss" in a and np.any(np.isfinite(a["loss"])):
            ax.plot(a["time"], a["loss"], label=f"{name} ({a['verdict']})")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.set_title(f"{stem}: loss")
    written.append(_save(fig, out_dir / f"{stem}_loss.png"))

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for name, a in analysis.items():
        ax1.plot(a["time"], a["psi_deg"], lw=0.8, label=name)
        kappa = np.where(np.isfinite(a["kappa_min"]), a["kappa_min"], np.nan)
        ax2.semilogy(a["time"], kappa, lw=0.8, label=name)
    ax1.axhline(90, color="k", lw=0.5, ls="--")
    ax1.set_ylabel("ψ (degrees)")
    ax2.set_ylabel("κ_min")
    ax2.set_xlabel("time (s)")
    ax1.legend(fontsize=8)
    ax1.set_title(f"{stem}: angle to steepest descent and minimal condition number")
    written.append(_save(fig, out_dir / f"{stem}_psi_kappa.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    drew = False
    for name, a in analysis.items():
        M = a.get("constant_metric")
        if M is not None:
            vals = np.sort(np.linalg.eigvalsh(M))[::-1]
            ax.semilogy(np.arange(1, vals.size + 1), np.clip(vals, 1e-300, None), "o-", ms=3, label=name)
            drew = True
    if drew:
        ax.set_xlabel("index")
        ax.set_ylabel("eigenvalue of M")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no constant metric fitted (n too large or no descent)",
                ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"{stem}: spectrum of the fitted constant metric")
    written.append(_save(fig, out_dir / f"{stem}_metric_spectrum.png"))
    return written


def _save(fig, path):
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
