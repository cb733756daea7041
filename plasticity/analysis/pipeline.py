"""Certify a run file against losses: the work behind ``plasticity analyze``.

:func:`certify_run` streams the records of an opened run in chunks, computes the drift
(``given`` if the file has ``/drift``, else ``expected`` from the rule and the logged
input statistics, else ``window``), the gradient of each loss, and feeds one
:class:`~plasticity.analysis.certificate.Certifier` per loss. When the losses are the
rule's own candidates and there are several, the best non-negative combination
(linear programme, :func:`~plasticity.analysis.fitting.fit_loss_combination`) is
certified too, as loss ``combined``.

The certified vector is the synapse weights: the built-in losses do not depend on the
rule's slow state (e.g. BCM's θ), whose logged values are still passed to the rule's
drift. (Appending the state's drift would leave ``f·g`` unchanged but inflate ψ.)

:func:`analyze_file` returns the JSON document of DESIGN.md and stores the results in
the file's ``/analysis`` group; :func:`format_table` prints it.
"""

import numpy as np

from ..errors import BadInput
from .certificate import Certifier
from .drift import choose_window, expected_drift, window_drift
from .fitting import fit_loss_combination
from .losses import Loss, mean_value_gradient, resolve_loss, rule_losses
from .run_file import open_run, write_analysis

__all__ = ["certify_run", "analyze_file", "format_table", "drift_kind_for"]

DRIFT_KINDS = ("auto", "expected", "window", "given")


def drift_kind_for(run, requested="auto"):
    """The drift kind used for ``run`` (see module doc); BadInput if impossible."""
    if requested not in DRIFT_KINDS:
        raise BadInput(f"unknown drift {requested!r} (allowed: {', '.join(DRIFT_KINDS)})")
    expected_ok = run.rule is not None and run.has_stats
    if requested == "auto":
        if run.has_drift:
            return "given"
        return "expected" if expected_ok else "window"
    if requested == "given" and not run.has_drift:
        raise BadInput(f"{run.path}: has no /drift dataset")
    if requested == "expected" and not expected_ok:
        why = run.rule_error if run.rule is None else run.stats_error
        raise BadInput(f"{run.path}: the expected drift needs the rule and the input statistics ({why})")
    return requested


def _window_for(run, window):
    if window is not None:
        return int(window)
    # choose from a column subsample of the records (bounded memory)
    step = max(1, run.n_synapses // 256)
    parts = [run.weights(a, b)[:, ::step] for a, b in run.chunks()]
    return choose_window(run.time, np.concatenate(parts))


def _losses_for(run, loss_specs):
    layout = run.layout(with_state=False)
    if loss_specs:
        return [resolve_loss(spec, run.stats, layout, run.rule_name) for spec in loss_specs], False
    if run.rule is None:
        raise BadInput(f"{run.path}: {run.rule_error}, so there are no candidate losses; "
                       "pass --loss path/to/module.py:name")
    if not run.rule.losses:
        raise BadInput(f"{run.path}: rule {run.rule_name!r} has no known loss; pass --loss")
    return rule_losses(run.rule_name, run.stats, layout), True


def _prefetched(bounds, load, prefetch):
    """Yield ``(bounds, load(bounds))``, reading the next chunk in a thread while the
    current one is processed (HDF5 decompression overlaps the BLAS work)."""
    if not prefetch or len(bounds) < 2:
        for b in bounds:
            yield b, load(b)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(load, bounds[0])
        for i, b in enumerate(bounds):
            data = future.result()
            if i + 1 < len(bounds):
                future = pool.submit(load, bounds[i + 1])
            yield b, data


def certify_run(run, losses, drift="auto", window=None, chunk=None, prefetch=True):
    """Certificates of an opened run against each loss.

    Parameters
    ----------
    run : Run
    losses : list of Loss
    drift : {"auto", "expected", "window", "given"}
    window : int, optional
        Window (records) of the ``window`` drift; chosen from the data if None.
    chunk : int, optional
        Records per chunk (default: about CHUNK_BYTES of weights).
    prefetch : bool
        Read the next chunk in a background thread.

    Returns
    -------
    list of Certificate
    """
    kind = drift_kind_for(run, drift)
    S = run.n_synapses
    certifiers = [Certifier(S) for _ in losses]
    h = 0
    if kind == "window":
        h = _window_for(run, window)
        if run.n_records < h + 1:
            raise BadInput(f"{run.path}: {run.n_records} records are too few for a window of {h}")
    layout = run.layout(with_state=True)

    def load(bounds):
        start, stop = bounds
        if kind == "expected":
            return run.read(start, stop), None
        if kind == "given":
            return run.weights(start, stop), run.read_drift(start, stop)
        return run.weights(start, stop + h), None

    for (start, stop), (w, given) in _prefetched(list(run.chunks(chunk, overlap=h)), load, prefetch):
        t = run.time[start:stop]
        if hasattr(run.stats, "clear"):
            run.stats.clear()
        if kind == "expected":
            stats = run.stats_for(start, stop)
            f = expected_drift(run.rule, run.params, stats, layout, w, include_state=False)[:, :S]
            w = w[:, :S]
            for loss, cert in zip(losses, certifiers):
                values, g = loss.value_and_grad(w)
                cert.add(f, g, values, t)
        elif kind == "given":
            for loss, cert in zip(losses, certifiers):
                values, g = loss.value_and_grad(w)
                cert.add(given, g, values, t)
        else:
            f, w0, w1 = window_drift(run.time[start:stop + h], w, h)
            for loss, cert in zip(losses, certifiers):
                gbar, v0, _ = mean_value_gradient(loss, w0, w1)
                cert.add(f, gbar, v0, t)
    out = []
    for loss, cert in zip(losses, certifiers):
        c = cert.finish(loss.name, kind)
        if kind == "window":
            c.extra["window"] = h
        out.append(c)
    return out


def combined_loss(losses, weights):
    """``Σ_j μ_j L_j`` as a :class:`Loss` named ``combined``."""
    def function(w):
        total_v = 0.0
        total_g = 0.0
        for loss, mu in zip(losses, weights):
            if mu == 0:
                continue
            v, g = loss.value_and_grad(w)
            total_v = total_v + mu * v
            total_g = total_g + mu * g
        return total_v, total_g
    text = " + ".join(f"{mu:.4g}·{loss.name}" for loss, mu in zip(losses, weights))
    return Loss("combined", function, text)


def analyze_file(path, loss_specs=None, drift="auto", window=None, store=True, combine=True):
    """Certify a run file; the JSON document of DESIGN.md as a dict.

    Parameters
    ----------
    path : str or Path
        A run file, a minimal HDF5 (``/time``, ``/weights``, optional ``/drift``) or .npz.
    loss_specs : list of (str or Loss), optional
        Built-in loss names or ``path/to/module.py:name``; default: the rule's
        candidate losses (plus their best combination when there are several).
    drift : {"auto", "expected", "window", "given"}
    window : int, optional
    store : bool
        Write ``/analysis/<loss>/`` into the file (HDF5 only).
    combine : bool
        Certify the LP combination of the rule's candidate losses as well.

    Returns
    -------
    dict
        ``{"run", "rule", "status", "records", "weights", "results": [...]}``; each
        result as :meth:`Certificate.summary`.

    Raises
    ------
    BadInput
        Missing, corrupt or foreign file; a loss that needs what the file lacks.
    """
    with open_run(path) as run:
        losses, from_rule = _losses_for(run, loss_specs)
        if run.n_records < 2 and not run.has_drift:
            raise BadInput(f"{run.path}: only {run.n_records} record(s); need at least 2")
        certs = certify_run(run, losses, drift, window)
        if combine and from_rule and len(losses) >= 2:
            fg = np.stack([c.fg for c in certs], axis=1)
            gn = np.stack([c.g_norm for c in certs], axis=1)
            lp = fit_loss_combination(fg, gn, certs[0].f_norm, certs[0].moving)
            combo = combined_loss(losses, lp["weights"])
            cert = certify_run(run, [combo], drift, certs[0].extra.get("window", window))[0]
            cert.extra["combination"] = {loss.name: float(mu) for loss, mu in zip(losses, lp["weights"])}
            cert.extra["worst_margin"] = lp["margin"]
            certs.append(cert)
        doc = {
            "run": str(path),
            "rule": run.rule_name,
            "status": run.status,
            "records": run.n_records,
            "weights": run.n_synapses,
            "results": [c.summary() for c in certs],
        }
    if store:
        doc["stored"] = write_analysis(path, certs, doc)
    return doc


def _fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


def format_table(doc):
    """A readable table of an :func:`analyze_file` document."""
    lines = [f"run:    {doc['run']}",
             f"rule:   {doc.get('rule') or '-'}   status: {doc.get('status') or '-'}   "
             f"records: {doc.get('records')}   weights: {doc.get('weights')}", ""]
    header = ("loss", "drift", "moving", "descent", "psi_deg med/p95/max", "kappa_min med/p95/max",
              "resid cI", "resid M", "verdict")
    rows = []
    for r in doc["results"]:
        psi = r["psi_deg"]
        kap = r["kappa_min"]
        const = r.get("constant_metric")
        rows.append((
            r["loss"], r["drift"] + (f"(h={r['window']})" if "window" in r else ""),
            f"{r['moving_records']}/{r['records']}",
            _fmt(r["descent_fraction"], ".3f"),
            "/".join(_fmt(psi[k], ".3g") for k in ("median", "p95", "max")),
            "/".join(_fmt(kap[k], ".3g") for k in ("median", "p95", "max")),
            _fmt(r["scalar_metric"]["relative_residual"], ".3f"),
            _fmt(const["relative_residual"], ".3f") if const else "n/a",
            r["verdict"],
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
    for r in doc["results"]:
        if "combination" in r:
            combo = " + ".join(f"{v:.3g}·{k}" for k, v in r["combination"].items())
            lines.append(f"\ncombined = {combo}  (worst normalised margin {r['worst_margin']:.3g})")
    return "\n".join(lines)
