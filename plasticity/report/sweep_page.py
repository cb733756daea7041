"""A sweep's page: ``plasticity report SWEEP_DIR`` → ``SWEEP_DIR/report.html``.

Read from the sweep's table ``sweep.csv`` (one row per run and loss; the columns
``run, seed, <each swept key>, status, message, file, wall_s, loss, verdict,
descent_fraction, psi_deg_median, kappa_min_median, stability_max_real``): every
column that is not one of the known ones is a swept key. The page shows

- the verdict over the grid (one or two swept keys: a phase diagram, colour = the
  verdict most seeds reach, the text = the fraction of seeds that reach it);
- ψ and κ_min against the first swept key (one line per value of the second), the
  median over seeds with the seeds' range as the interval;
- ``stability_max_real`` against the first swept key with its zero crossing;
- the table of runs, each linked to its own page (written beside each run file, unless
  a page newer than the run file is already there).
"""

import csv
import math
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ..errors import BadInput
from . import html as H
from .figures import _legend, _plain_log_ticks, _plt

__all__ = ["write_sweep_report", "read_sweep_table", "KNOWN_COLUMNS"]

KNOWN_COLUMNS = ("run", "seed", "status", "message", "file", "wall_s", "loss", "verdict",
                 "descent_fraction", "psi_deg_median", "kappa_min_median", "stability_max_real")

VERDICT_COLOURS = {"gradient": "#1b9e77", "natural-gradient-constant": "#66c2a5",
                   "natural-gradient": "#a6d96a", "not-descent": "#d73027",
                   "no-loss-exists": "#fdae61", "fixed-point": "#bbbbbb"}
OTHER_COLOUR = "#9e9ac8"


def _float(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return math.nan
    return value


def _sort_key(text):
    """Numeric value of a swept value (``"50 ms"`` → 0.05) for ordering; else its text."""
    from ..units import dimension_of, parse_quantity

    try:
        return (0, float(text), "")
    except ValueError:
        pass
    try:
        return (0, parse_quantity(text, dimension_of(text)), "")
    except (ValueError, KeyError):
        return (1, 0.0, str(text))


def read_sweep_table(directory):
    """``(rows, swept keys)`` of ``directory/sweep.csv``; BadInput if absent or unreadable."""
    directory = Path(directory)
    table = directory / "sweep.csv"
    if not directory.is_dir():
        raise BadInput(f"{directory}: not a folder")
    if not table.is_file():
        raise BadInput(f"{directory}: no sweep.csv (not a sweep folder; pass a run file or a folder "
                       "written by plasticity sweep)")
    try:
        with open(table, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = [dict(r) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BadInput(f"{table}: unreadable ({type(error).__name__})") from None
    missing = [c for c in ("verdict",) if c not in columns]
    if missing:
        raise BadInput(f"{table}: lacks the column {missing[0]!r}")
    keys = [c for c in columns if c not in KNOWN_COLUMNS]
    return rows, keys


def _values(rows, key):
    return sorted({r.get(key, "") for r in rows}, key=_sort_key)


def _phase_diagram(rows, keys, loss, name):
    plt = _plt()
    x_key = keys[0]
    xs = _values(rows, x_key)
    y_key = keys[1] if len(keys) > 1 else None
    ys = _values(rows, y_key) if y_key else [""]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 1.1 * len(xs)), max(2.2, 1.2 + 0.7 * len(ys))),
                           layout="constrained")
    fig.suptitle(f"verdict over the grid ({loss})\n{name}", fontsize=11)
    seen = set()
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            cell = [r["verdict"] for r in rows if r.get(x_key) == x and (not y_key or r.get(y_key) == y)]
            if not cell:
                continue
            verdict, count = Counter(cell).most_common(1)[0]
            seen.add(verdict)
            ax.add_patch(plt.Rectangle((i - 0.5, j - 0.5), 1, 1,
                                       color=VERDICT_COLOURS.get(verdict, OTHER_COLOUR)))
            ax.text(i, j, f"{count}/{len(cell)}", ha="center", va="center", fontsize=9)
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_ylim(-0.5, len(ys) - 0.5)
    ax.set_xticks(range(len(xs)), xs)
    ax.set_xlabel(x_key)
    if y_key:
        ax.set_yticks(range(len(ys)), ys)
        ax.set_ylabel(y_key)
    else:
        ax.set_yticks([])
    from matplotlib.patches import Patch

    handles = [Patch(color=VERDICT_COLOURS.get(v, OTHER_COLOUR), label=v) for v in sorted(seen)]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _series(rows, keys, column):
    """``{second-key value: (x labels, x positions, median, low, high)}`` over seeds."""
    x_key = keys[0]
    xs = _values(rows, x_key)
    groups = _values(rows, keys[1]) if len(keys) > 1 else [None]
    out = {}
    for g in groups:
        med, lo, hi = [], [], []
        for x in xs:
            v = np.array([_float(r.get(column)) for r in rows
                          if r.get(x_key) == x and (g is None or r.get(keys[1]) == g)])
            v = v[np.isfinite(v)]
            med.append(np.median(v) if v.size else np.nan)
            lo.append(v.min() if v.size else np.nan)
            hi.append(v.max() if v.size else np.nan)
        out[g] = (xs, np.array(med), np.array(lo), np.array(hi))
    return out


def _numeric_axis(xs):
    keys = [_sort_key(x) for x in xs]
    if all(k[0] == 0 for k in keys):
        return np.array([k[1] for k in keys]), True
    return np.arange(len(xs), dtype=float), False


def _curves(rows, keys, loss, name):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    fig.suptitle(f"ψ and κ_min against {keys[0]} ({loss}; median over seeds, bars: their range)\n{name}",
                 fontsize=11)
    drew = False
    for ax, column, label in ((axes[0], "psi_deg_median", "ψ median over records (degrees)"),
                              (axes[1], "kappa_min_median", "κ_min median over records")):
        for c, (g, (xs, med, lo, hi)) in enumerate(_series(rows, keys, column).items()):
            if not np.any(np.isfinite(med)):
                continue
            x, numeric = _numeric_axis(xs)
            ax.errorbar(x, med, yerr=[med - lo, hi - med], marker="o", ms=4, capsize=3, color=f"C{c}",
                        label=f"{keys[1]} = {g}" if g is not None else None)
            if not numeric:
                ax.set_xticks(x, xs)
            drew = True
        ax.set_xlabel(_axis_label(rows, keys[0]))
        ax.set_ylabel(label)
        _legend(ax)
    axes[0].axhline(90, color="k", ls="--", lw=0.7)
    if np.all([np.nanmin(s[1]) > 0 for s in _series(rows, keys, "kappa_min_median").values()
               if np.any(np.isfinite(s[1]))]):
        axes[1].set_yscale("log")
        _plain_log_ticks(axes[1])
    return fig if drew else None


def _axis_label(rows, key):
    """``key (unit)``: values written with units are drawn in SI (``"50 ms"`` at 0.05 s)."""
    from ..units import dimension_of, unit_symbol

    for value in _values(rows, key):
        try:
            float(value)
            continue
        except ValueError:
            pass
        try:
            return f"{key} ({unit_symbol(dimension_of(value))})"
        except (ValueError, KeyError):
            return key
    return key


def _zero_crossings(x, y):
    out = []
    for k in range(len(x) - 1):
        if np.isfinite(y[k]) and np.isfinite(y[k + 1]) and y[k] * y[k + 1] < 0:
            out.append(x[k] - y[k] * (x[k + 1] - x[k]) / (y[k + 1] - y[k]))
        elif y[k] == 0:
            out.append(x[k])
    return out


def _stability(rows, keys, name):
    series = _series(rows, keys, "stability_max_real")
    if not any(np.any(np.isfinite(s[1])) for s in series.values()):
        return None, []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    fig.suptitle(f"linear stability against {keys[0]}: largest real part of the Jacobian's eigenvalues\n{name}",
                 fontsize=11)
    crossings = []
    for c, (g, (xs, med, lo, hi)) in enumerate(series.items()):
        x, numeric = _numeric_axis(xs)
        ax.errorbar(x, med, yerr=[med - lo, hi - med], marker="o", ms=4, capsize=3, color=f"C{c}",
                    label=f"{keys[1]} = {g}" if g is not None else None)
        if not numeric:
            ax.set_xticks(x, xs)
        for z in _zero_crossings(x, med) if numeric else []:
            ax.axvline(z, color=f"C{c}", ls=":", lw=1,
                       label=f"zero crossing ≈ {z:.4g}" + (f" ({keys[1]} = {g})" if g is not None else ""))
            crossings.append((g, z))
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel(_axis_label(rows, keys[0]))
    ax.set_ylabel("max Re λ (1/s)")
    _legend(ax)
    return fig, crossings


def _resolve(directory, file):
    if not file:
        return None
    p = Path(file)
    for candidate in ((p,) if p.is_absolute() else (directory / p, p)):
        if candidate.is_file():
            return candidate
    return None


def write_sweep_report(directory, run_pages=True):
    """Write ``directory/report.html`` (and each run's page); return its path."""
    from .run_page import write_run_report

    directory = Path(directory)
    rows, keys = read_sweep_table(directory)
    name = directory.name
    body = [f"<h1>Sweep {H.esc(name)}</h1>",
            f'<p class="lead">{len({r.get("run") or r.get("file") for r in rows})} runs, '
            f"{len(rows)} rows of {H.esc(str(directory / 'sweep.csv'))}; swept: "
            f"{H.esc(', '.join(keys) or 'nothing but the seed')}.</p>"]
    statuses = Counter(r.get("status", "") for r in {(r.get("run"), r.get("file")): r for r in rows}.values())
    body.append("<p>Status of the runs: " + H.esc(", ".join(f"{v} {k or '–'}" for k, v in statuses.items()))
                + ".</p>")
    losses = [l for l in dict.fromkeys(r.get("loss", "") for r in rows)]
    left_out = []
    for loss in losses:
        sub = [r for r in rows if r.get("loss", "") == loss and r.get("verdict")]
        title = loss or "(no loss)"
        body.append(f"<h2>Loss {H.esc(title)}</h2>")
        if not sub:
            left_out.append(f"{title}: no run reached a verdict")
            continue
        if 1 <= len(keys) <= 2:
            fig = _phase_diagram(sub, keys, title, name)
            body.append(H.figure_html(f"Verdict over the grid ({title})",
                                      "Colour: the verdict most seeds reach in each cell; text: how many "
                                      "seeds reach it, of the seeds run there.",
                                      H.png_bytes(fig), f"phase-{title}"))
        else:
            left_out.append(f"phase diagram ({title}): drawn for one or two swept keys, this sweep has {len(keys)}")
        if keys:
            fig = _curves(sub, keys, title, name)
            if fig is not None:
                body.append(H.figure_html(f"ψ and κ_min against {keys[0]} ({title})",
                                          "Median over the seeds of each run's median ψ and κ_min; the "
                                          "bars span the seeds (min to max).", H.png_bytes(fig), f"curves-{title}"))
            else:
                left_out.append(f"ψ and κ_min ({title}): no numbers in the table")
    if keys:
        per_run = list({(r.get("run"), r.get("file")): r for r in rows}.values())
        fig, crossings = _stability(per_run, keys, name)
        if fig is not None:
            label = _axis_label(per_run, keys[0])
            unit = f" {label[label.rindex('(') + 1:-1]}" if label.endswith(")") else ""
            text = ("; ".join(f"≈ {z:.4g}{unit}" + (f" at {keys[1]} = {g}" if g is not None else "") for g, z in crossings)
                    if crossings else "none between the swept values")
            body.append("<h2>Linear stability</h2>" + H.figure_html(
                f"stability_max_real against {keys[0]}",
                f"Largest real part of the eigenvalues of the drift's Jacobian at the fixed point "
                f"(median over seeds, bars their range). Above 0 the fixed point is unstable. "
                f"Zero crossing: {text}.", H.png_bytes(fig), "stability"))
        else:
            left_out.append("stability: the table has no stability_max_real values")
    else:
        left_out.append("figures against the swept values: the sweep varies only the seed")
    # the runs, each linked to its page
    pages = {}
    table_rows = []
    for r in rows:
        path = _resolve(directory, r.get("file"))
        link = "–"
        if path is not None and run_pages:
            if path not in pages:
                existing = path.with_suffix(".html")
                try:
                    # a page newer than its run file is up to date: reused, not redrawn
                    if existing.exists() and existing.stat().st_mtime >= path.stat().st_mtime:
                        pages[path] = existing
                    else:
                        pages[path] = write_run_report(path)[-1]
                except BadInput as error:
                    pages[path] = None
                    left_out.append(f"page of {path.name}: {error}")
            if pages[path] is not None:
                href = os.path.relpath(pages[path], directory)
                link = H.Raw(f'<a href="{H.esc(href)}">{H.esc(path.stem[:28])}</a>')
        elif r.get("file"):
            link = f"{r.get('file')} (missing)"
        table_rows.append([r.get("run", ""), r.get("seed", ""), *[r.get(k, "") for k in keys],
                           r.get("status", ""), r.get("loss", ""), H.verdict_badge(r.get("verdict")),
                           _fmt(r.get("descent_fraction")), _fmt(r.get("psi_deg_median")),
                           _fmt(r.get("kappa_min_median")), _fmt(r.get("stability_max_real")), link])
    body.append("<h2>Runs</h2>")
    headers = ["run", "seed", *keys, "status", "loss", "verdict", "descent fraction", "ψ median (°)",
               "κ_min median", "max Re λ", "page"]
    n0 = 2 + len(keys) + 3
    body.append(H.table(headers, table_rows, numeric=tuple(range(n0, n0 + 4))))
    if left_out:
        body.append("<h3>Left out</h3><ul>" + "".join(f"<li>{H.esc(s)}</li>" for s in left_out) + "</ul>")
    return H.write_atomic(directory / "report.html", H.page(f"Sweep {name}", "".join(body)))


def _fmt(text):
    value = _float(text)
    return "–" if not math.isfinite(value) else f"{value:.4g}"
