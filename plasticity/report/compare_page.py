"""Several runs on one page: ``plasticity compare A.h5 B.h5 ...``.

Each run's ``/analysis`` (analysed first when missing) gives ψ(t), κ_min(t) and the
loss of each certified loss; the page overlays the runs, one row per loss name that
at least one run certified, and tabulates every run's verdicts.
"""

import os
from pathlib import Path

import numpy as np

from ..errors import BadInput
from . import html as H
from .figures import _kappa_axis, _legend, _plt
from .run_page import ensure_analysis, verdict_rows, verdict_table

__all__ = ["write_compare_report"]


def _labels(datas):
    labels = [f"{d.name}" + (f" s{d.seed}" if d.seed is not None else "") for d in datas]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({d.path.stem[-12:]})" for label, d in zip(labels, datas)]
    if len(set(labels)) < len(labels):
        labels = [f"{label} #{i + 1}" for i, label in enumerate(labels)]
    return labels


def write_compare_report(paths, out=None):
    """Write the comparison page of run files ``paths``; return its path."""
    if len(paths) < 1:
        raise BadInput("compare: give at least one run file")
    datas, problems = [], []
    for p in paths:
        data, error = ensure_analysis(Path(p))
        datas.append(data)
        if error:
            problems.append(f"{p}: {error}")
    labels = _labels(datas)
    out = Path(out) if out else Path("compare.html")
    out = out.resolve() if out.parent.exists() else out
    if out.exists() and out.is_dir():
        out = out / "compare.html"
    if not out.parent.exists():
        raise BadInput(f"--out {out}: folder {out.parent} does not exist")
    names = list(dict.fromkeys(n for d in datas for n, a in d.analysis.items() if "psi_deg" in a))
    body = [f"<h1>Comparison of {len(datas)} run{'s' if len(datas) > 1 else ''}</h1>",
            '<p class="lead">' + H.esc("; ".join(f"{label}: {d.path}" for label, d in zip(labels, datas))) + "</p>"]
    rows = []
    for label, d in zip(labels, datas):
        page = d.path.with_suffix(".html")            # the run's own page when it has one
        href = os.path.relpath(page if page.exists() else d.path, out.parent.resolve())
        for row in verdict_rows(d.analysis_doc):
            rows.append([H.Raw(f'<a href="{H.esc(href)}">{H.esc(label)}</a>'), *row])
    body.append("<h2>Verdicts</h2>")
    if rows:
        body.append(verdict_table(rows, lead=("run",)))
    else:
        body.append("<p>No run has a certified loss.</p>")
    if problems:
        body.append("<ul>" + "".join(f"<li>{H.esc(p)}</li>" for p in problems) + "</ul>")
    if names:
        plt = _plt()
        fig, axes = plt.subplots(len(names), 3, figsize=(13, 2.9 * len(names)), layout="constrained",
                                 squeeze=False)
        fig.suptitle("loss, ψ and κ_min over time, runs overlaid\n" + ", ".join(dict.fromkeys(d.name for d in datas)),
                     fontsize=11)
        for r, name in enumerate(names):
            ax_loss, ax_psi, ax_kappa = axes[r]
            drawn, kappas = [], []
            for c, (label, d) in enumerate(zip(labels, datas)):
                a = d.analysis.get(name)
                if a is None or "psi_deg" not in a:
                    continue
                t = np.asarray(a["time"], float)
                colour = f"C{c % 10}"
                loss = np.asarray(a.get("loss", np.full_like(t, np.nan)), float)
                if np.any(np.isfinite(loss)):
                    ax_loss.plot(t, loss, lw=1, color=colour, label=label)
                ax_psi.plot(t, a["psi_deg"], lw=0.9, color=colour, label=label)
                kappa = np.asarray(a.get("kappa_min", np.full_like(t, np.nan)), float)
                kappa = np.where(np.isfinite(kappa) & (kappa > 0), kappa, np.nan)
                if np.any(np.isfinite(kappa)):
                    ax_kappa.semilogy(t, kappa, lw=0.9, color=colour, label=label)
                    kappas.append(kappa)
                drawn.append(label)
            ax_loss.set_ylabel(f"{name}\nloss", fontsize=9)
            ax_psi.axhline(90, color="k", ls="--", lw=0.7)
            ax_psi.set_ylim(0, 180)
            ax_psi.set_ylabel("ψ (degrees)")
            ax_kappa.set_ylabel("κ_min")
            if kappas:
                _kappa_axis(ax_kappa, np.concatenate(kappas))
            # one run in this row: its name in the title (a legend needs several lines)
            ax_psi.set_title(name if len(drawn) > 1 else f"{name}: {drawn[0]}", fontsize=10)
            _legend(ax_psi)
            if r == len(names) - 1:
                for ax in axes[r]:
                    ax.set_xlabel("time (s)")
        body.append("<h2>Over time</h2>" + H.figure_html(
            "Loss, ψ and κ_min, runs overlaid",
            "One row per loss; one colour per run. ψ above the dashed 90° line is ascent; κ_min is "
            "drawn where the record descends.", H.png_bytes(fig), "overlay"))
    else:
        body.append("<p>No per-record certificate to overlay (no run has /analysis arrays).</p>")
    return H.write_atomic(out, H.page("Comparison of runs", "".join(body)))
