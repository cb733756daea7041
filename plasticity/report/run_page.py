"""One run's page: ``plasticity report RUN.h5`` → ``RUN.html`` beside the run.

The certificate is read from the file's ``/analysis`` group (the document that
``plasticity analyze`` stored); a file without one is analysed first (and the results
stored, so the page and ``analyze --json`` show the same numbers). The page holds, in
this order: what the run is and its verdict in words, the verdict table, the
consistency and recurrence results, the figures, the config with units, the versions,
and the figures left out with the reason.
"""

import os
from pathlib import Path

import numpy as np

from ..errors import BadInput
from . import html as H
from .config_text import config_rows, format_quantity
from .data import load_run_data
from .figures import run_figures
from .words import BASIS_MEANING, VERDICT_MEANING, consistency_sentence, result_sentence

__all__ = ["write_run_report", "ensure_analysis", "verdict_rows"]


def ensure_analysis(path, losses=None):
    """The run's data with its ``/analysis`` (analysing it first if needed), and the
    reason when it cannot be analysed (or None)."""
    data = load_run_data(path)
    if data.analysis_doc is not None and not losses:
        return data, None
    from ..analysis import analyze_file

    store = data.kind != "npz" and os.access(path, os.W_OK)
    try:
        doc = analyze_file(path, loss_specs=losses or None, store=store)
    except BadInput as error:
        # a complete run that cannot be analysed is a bad file (refused, exit 2); a run
        # that stopped early (diverged, failed, interrupted) still gets its page
        if losses or data.status in (None, "complete"):
            raise
        return data, str(error)
    if not store:
        # an .npz or a read-only file: the summary only, no per-record arrays to draw
        data.analysis_doc = doc
        return data, None
    if data.kind == "npz":
        data.analysis_doc = doc
        return data, None
    return load_run_data(path), None


def _num(x, spec=".3g"):
    return "–" if x is None else format(x, spec)


def verdict_rows(doc):
    """Rows of the verdict table from the analyze document (the numbers of
    ``plasticity analyze --json``), with the basis column (second) always present."""
    rows = []
    for r in (doc or {}).get("results", []):
        psi, kappa = r.get("psi_deg") or {}, r.get("kappa_min") or {}
        const = r.get("constant_metric")
        rows.append([r.get("loss"), BASIS_MEANING.get(r.get("basis"), r.get("basis") or "–").split(" (")[0],
                     r.get("drift", "–"), f"{r.get('moving_records')}/{r.get('records')}",
                     _num(r.get("descent_fraction"), ".4g"),
                     " / ".join(_num(psi.get(k), ".4g") for k in ("median", "p95", "max")),
                     " / ".join(_num(kappa.get(k), ".4g") for k in ("median", "p95", "max")),
                     _num((r.get("scalar_metric") or {}).get("relative_residual"), ".4g"),
                     _num(const.get("relative_residual"), ".4g") if const else "n/a",
                     H.verdict_badge(r.get("verdict"))])
    return rows


VERDICT_HEADERS = ["loss", "basis", "drift", "moving / records", "descent fraction",
                   "ψ (°) median / p95 / max", "κ_min median / p95 / max", "resid cI", "resid M",
                   "verdict"]


def verdict_table(rows, lead=()):
    """The verdict table (``id="verdicts"``); ``lead`` headers of columns put before
    each row's own. The basis column is dropped when no result names one."""
    headers = list(VERDICT_HEADERS)
    if all(row[len(lead) + 1] == "–" for row in rows):
        rows = [row[:len(lead) + 1] + row[len(lead) + 2:] for row in rows]
        headers.remove("basis")
    headers = [*lead, *headers]
    first = headers.index("moving / records")
    return H.table(headers, rows, numeric=tuple(range(first, first + 6))).replace(
        "<table>", '<table id="verdicts">', 1)


def _facts(data):
    a = data.attrs
    t = data.time
    rows = [("file", str(data.path)), ("status", H.Raw(
        f'<span class="status-{H.esc(data.status)}">{H.esc(data.status or "–")}</span>'))]
    if data.message:
        rows.append(("message", data.message))
    rows += [("rule", data.rule_name or "–"), ("model", data.model or "–"),
             ("seed", data.seed if data.seed is not None else "–")]
    if a.get("device"):
        rows.append(("device", a["device"]))
    rows.append(("records", f"{len(t)}, t = {t[0]:.4g} … {t[-1]:.4g} s"
                 + (f", every {np.median(np.diff(t)):.4g} s" if len(t) > 1 else "")))
    rows.append(("weights" if not data.is_dynamics else "state components",
                 f"{data.n_synapses}" + (f" ({data.n_pre} inputs → {data.n_post} neuron{'s' if data.n_post > 1 else ''})"
                                         if data.kind == "run" and not data.is_dynamics else "")))
    for key, label in (("wall_time", "wall time"), ("build_time", "build time")):
        if isinstance(a.get(key), (int, float)):
            rows.append((label, format_quantity(float(a[key]), "s")))
    for key in ("created", "finished"):
        if a.get(key):
            rows.append((key, a[key]))
    return H.kv_table(rows)


def _words(data, doc, analysis_error):
    items = []
    if data.description:
        items.append(f"What this run is: {data.description}.")
    if analysis_error:
        items.append(f"Not certified: {analysis_error}.")
    for r in (doc or {}).get("results", []):
        items.append(result_sentence(r, data.rule_name))
    described = {name: text for name, text in data.loss_descriptions.items()
                 if text and any(r.get("loss") == name for r in (doc or {}).get("results", []))}
    if described:
        items.append("The losses: " + "; ".join(f"{k} = {v}" for k, v in described.items())
                     + ("; combined = the best non-negative combination of them"
                        if any(r.get("loss") == "combined" for r in doc["results"]) else "") + ".")
    bases = [b for b in BASIS_MEANING if any(r.get("basis") == b for r in (doc or {}).get("results", []))]
    if bases:
        items.append("Bases: " + "; ".join(f"{BASIS_MEANING[b].split(' (')[0]} = "
                                           f"{BASIS_MEANING[b].split(' (', 1)[1].rstrip(')')}"
                                           for b in bases) + ".")
    if doc and doc.get("note"):
        items.append(doc["note"][:1].upper() + doc["note"][1:] + ".")
    rec = (doc or {}).get("recurrence")
    if doc and not rec and not doc.get("results"):
        items.append("No recurrence was found.")
    text = consistency_sentence((doc or {}).get("consistency"))
    if text:
        items.append(text)
    if data.status and data.status != "complete":
        items.append(f"The run did not complete (status {data.status}"
                     + (f": {data.message}" if data.message else "") + "); the records it left are shown.")
    return "<ul class=\"words\">" + "".join(f"<li>{H.esc(s)}</li>" for s in items) + "</ul>"


def _consistency_html(doc):
    c = (doc or {}).get("consistency")
    if not isinstance(c, dict):
        return ""
    rows = [(k, _num(v, ".4g") if isinstance(v, float) else str(v)) for k, v in c.items()]
    return ("<h3>Is the simulation the rule? (consistency of the increments with the expected drift)</h3>"
            f"<p>{H.esc(consistency_sentence(c))}</p>" + H.kv_table(rows))


def _recurrence_html(doc):
    rec = (doc or {}).get("recurrence")
    if not isinstance(rec, dict):
        return ""
    rows = [(k, _num(v, ".4g") if isinstance(v, (int, float)) else str(v)) for k, v in rec.items()]
    return ("<h3>Recurrence</h3><p>The state returns close to where it was after a long path: "
            "no loss can decrease along such a trajectory (verdict no-loss-exists).</p>"
            + H.kv_table(rows))


def _versions(data):
    if data.versions:
        return H.table(["package", "version"], sorted(data.versions.items()))
    text = data.attrs.get("versions")
    return f"<p>{H.esc(text)}</p>" if text else "<p>No versions recorded in the file.</p>"


def _explanations(doc):
    used = sorted({r.get("verdict") for r in (doc or {}).get("results", [])} - {None})
    if not used:
        return ""
    return ("<p class=\"small\">" + "<br>".join(
        f"<b>{H.esc(v)}</b>: {H.esc(VERDICT_MEANING.get(v, ''))}." for v in used) + "</p>")


def write_run_report(path, fmt="html", losses=None, out=None):
    """Write the page of run file ``path``; return the written paths (the page last).

    ``fmt="png"`` writes the figures as ``<run>_<figure>.png`` beside the run instead.
    ``losses`` (names or ``FILE.py:FUNC``) certifies against those losses first (needed
    for a minimal file without a rule)."""
    if fmt not in ("html", "png"):
        raise BadInput(f"--format {fmt}: allowed html, png")
    path = Path(path)
    data, analysis_error = ensure_analysis(path, losses)
    doc = data.analysis_doc
    figures, skipped = run_figures(data)
    stem = path.with_suffix("")
    if fmt == "png":
        written = []
        for f in figures:
            target = Path(f"{stem}_{f.key}.png")
            try:
                target.write_bytes(H.png_bytes(f.fig))
            except OSError as error:
                raise BadInput(f"{target}: cannot write ({error.strerror or type(error).__name__})") from None
            written.append(target)
        return written
    title = f"{data.name} — {data.rule_name or 'trajectory'}" + (f", seed {data.seed}" if data.seed is not None else "")
    nav = "".join(f'<a href="#{H.esc(f.key)}">{H.esc(f.heading)}</a>' for f in figures)
    body = [f"<h1>{H.esc(title)}</h1>",
            f'<p class="lead">{H.esc(data.description or str(path.name))}</p>',
            "<h2>In words</h2>", _words(data, doc, analysis_error),
            "<h2>Run</h2>", _facts(data)]
    rows = verdict_rows(doc)
    body.append("<h2>Verdict</h2>")
    if rows:
        body.append(verdict_table(rows))
        body.append(_explanations(doc))
        body.append('<p class="small">descent fraction: share of the moving records where the drift '
                    "goes downhill; ψ: angle between the drift and steepest descent; κ_min: condition "
                    "number of the best metric, (1 + sin ψ)/(1 − sin ψ); resid cI / resid M: misfit of "
                    "one scalar / one constant metric (≤ 0.05 fits).</p>")
    else:
        body.append(f"<p>{H.esc(analysis_error or (doc or {}).get('note') or 'No loss was certified.')}</p>")
    body.append(_recurrence_html(doc))
    body.append(_consistency_html(doc))
    body.append(f"<h2>Figures</h2><nav>{nav}</nav>")
    for f in figures:
        body.append(H.figure_html(f.heading, f.caption, H.png_bytes(f.fig), f.key))
    if skipped:
        body.append("<h3>Figures left out</h3><ul>" + "".join(f"<li>{H.esc(s)}</li>" for s in skipped) + "</ul>")
    if data.config:
        body.append("<h2>Config (resolved, with units)</h2>")
        body.append(H.table(["key", "value"], [(k, H.Raw(f"<span class=\"mono\">{H.esc(v)}</span>"))
                                               for k, v in config_rows(data.config, data.model_spec)]))
    body.append("<h2>Versions</h2>" + _versions(data))
    target = Path(out) if out else Path(f"{stem}.html")
    return [H.write_atomic(target, H.page(title, "".join(body)))]
