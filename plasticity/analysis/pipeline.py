"""Certify a run file against losses: the work behind ``plasticity analyze``.

:func:`certify_run` streams the records of an opened run in chunks, computes the drift
(``given`` if the file has ``/drift``, else ``expected`` from the rule and the logged
input statistics — ``window`` for spiking rules —, else ``window``), the gradient of each loss, and feeds one
:class:`~plasticity.analysis.certificate.Certifier` per loss. When the losses are the
rule's own candidates and there are several, the best non-negative combination
(linear programme, :func:`~plasticity.analysis.fitting.fit_loss_combination`) is
certified too, as loss ``combined``.

The certified vector is the synapse weights: the built-in losses do not depend on the
rule's slow state (e.g. BCM's θ), whose logged values are still passed to the rule's
drift. (Appending the state's drift would leave ``f·g`` unchanged but inflate ψ.)

Which drift and losses, by kind of file:

- rate rules (Brian2 runs): ``expected`` from the logged input statistics; the rule's
  candidate losses;
- spiking rules: ``window`` by default, the weight differences over ``window`` records
  (``window_s`` seconds, chosen from the data so that the displacement dominates the
  spike noise), with the rates averaged over the same record intervals; ``expected``
  (``--drift expected``) is the rate-limit drift at the rates logged over each record
  interval (the JSON then says ``rates_interval_s``). The rate losses
  (``triplet_bcm``) are bound to the rates of the same records / intervals. (Against
  ``triplet_bcm`` the expected drift is exactly minus its gradient, by construction.)
- ``kind = "dynamics"`` runs (:mod:`plasticity.systems`): ``/drift`` is the system's
  exact drift (reported as ``expected``), the losses are the system's own, and where
  the drift does not descend one of them the smallest window loss of
  :data:`~plasticity.analysis.no_loss.DEFAULT_GRID` is searched (docs/math.md §5; states
  of at most ``WINDOW_MAX_N`` components);
- minimal files (``/time``, ``/weights``, optional ``/drift``; or .npz): ``given``
  drift if present, else ``window``; losses from ``--loss``, or, without one (and for
  rules with no known loss), discovered (:mod:`~plasticity.analysis.discovery`).

Every trajectory is also tested for recurrence (docs/math.md §7,
:func:`~plasticity.analysis.recurrence.find_recurrence` on the logged plastic state,
weights and slow state): a recurrence turns every verdict into ``no-loss-exists`` (the
certificate's own verdict stays in ``descent_verdict``) and puts the two times in the
document's ``recurrence`` (``t_first``, ``t_return``).

:func:`analyze_file` returns the JSON document of ``plasticity analyze --json`` and stores the results in
the file's ``/analysis`` group; :func:`format_table` prints it.
"""

import numpy as np

from ..errors import BadInput
from .certificate import Certifier
from .drift import (choose_window, dynamics_system, expected_drift, slaved_state,
                    window_for as _window_for)
from .meanfield import run_weight_time_scale
from .fitting import fit_loss_combination
from .grounding import BASIS_TEXT, ConsistencyPass, SamplePathPass, attach_sample_path
from .losses import Loss, RateLoss, mean_value_gradient, resolve_loss, rule_losses
from .recurrence import find_recurrence
from ..io.reader import open_run, write_analysis
from .sample_path import stored_arrays
from .streams import prefetched as _prefetched, window_ends, window_rates

__all__ = ["certify_run", "analyze_file", "format_table", "drift_kind_for", "run_recurrence",
           "dynamics_system"]

DRIFT_KINDS = ("auto", "expected", "window", "given")
#: window losses are searched for dynamics states of at most this many components
WINDOW_MAX_N = 40
#: records (evenly spaced) used by the window-loss search
WINDOW_RECORDS = 200
#: the recurrence test reads the whole trajectory when it is at most this large (bytes);
#: beyond, it streams the step lengths and reads only the arc-length resampled records
RECURRENCE_BYTES = 64 << 20


def drift_kind_for(run, requested="auto"):
    """The drift kind used for ``run`` (see module doc); BadInput if impossible."""
    if requested not in DRIFT_KINDS:
        raise BadInput(f"unknown drift {requested!r} (allowed: {', '.join(DRIFT_KINDS)})")
    expected_ok = run.rule is not None and run.has_stats
    if requested == "auto":
        if run.has_drift:
            return "given"
        if run.rule is not None and run.rule.activity == "spiking":
            # event-driven rules: the rate-limit formula is what the rate losses are
            # built from (ψ ≡ 0 by construction), so by default certify what the
            # weights actually did, over windows of many spikes
            return "window"
        return "expected" if expected_ok else "window"
    if requested == "given" and not run.has_drift:
        raise BadInput(f"{run.path}: has no /drift dataset")
    if requested == "expected" and not expected_ok:
        why = run.rule_error if run.rule is None else run.stats_error
        raise BadInput(f"{run.path}: the expected drift needs the rule and the input statistics ({why})")
    return requested


def _system_losses(run, system, names=None):
    found = system.losses
    if names is not None:
        missing = [n for n in names if n not in found]
        if missing:
            return None
        found = {n: found[n] for n in names}
    return [Loss(name, fn, f"loss {name!r} of the dynamics system {system.name!r}")
            for name, fn in found.items()]


def _losses_for(run, loss_specs, system=None):
    layout = run.layout(with_state=False)
    if loss_specs:
        out = []
        for spec in loss_specs:
            own = None
            if system is not None and isinstance(spec, str) and spec in system.losses:
                own = _system_losses(run, system, [spec])[0]
            out.append(own or resolve_loss(spec, run.stats, layout, run.rule_name, run.params))
        return out, False
    if system is not None:
        losses = _system_losses(run, system)
        if not losses:
            raise BadInput(f"{run.path}: dynamics system {system.name!r} has no loss; pass --loss")
        return losses, True
    if run.rule is None or not run.rule.losses:
        # no loss known: losses are discovered (analyze_file) and the recurrence test runs
        return [], False
    return rule_losses(run.rule_name, run.stats, layout, run.params), True


def certify_run(run, losses, drift="auto", window=None, chunk=None, prefetch=True, passes=()):
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
    passes : sequence
        Further streaming passes over the same records (:mod:`.grounding`): each
        gets ``feed(time, weights, drift, losses)`` with consecutive records (drift None
        for the window estimator), and ``start(kind, h)`` first.

    Returns
    -------
    list of Certificate
    """
    kind = drift_kind_for(run, drift)
    S = run.n_synapses
    certifiers = [Certifier(S, post=run.post) for _ in losses]
    h = 0
    if kind == "window":
        h = _window_for(run, window)
        if run.n_records < h + 1:
            raise BadInput(f"{run.path}: {run.n_records} records are too few for a window of {h}")
    # state much faster than the weights sits at its fixed point (adiabatic elimination)
    has_state = kind == "expected" and bool(getattr(run.rule, "state_time_constants", None))
    time_scale = run_weight_time_scale(run) if has_state else None
    slaved = slaved_state(run.rule, run.params, time_scale) if has_state else ()
    kept = tuple(name for name in run.state_names if name not in slaved)
    layout = run.layout(with_state=kept)
    rate_bound = any(isinstance(loss, RateLoss) for loss in losses)
    if rate_bound and run.source != "run":
        raise BadInput(f"{run.path}: rate losses need a spiking run's /rates")

    # the window drift's rates, the means over each window's record intervals, are
    # summed on two streams (memory of a chunk, whatever h)
    window_means = window_rates(run, h, chunk or run.chunk_size()) if rate_bound and kind == "window" else None

    def bind(start, stop):
        if not rate_bound:
            return losses
        rates = window_means.rates(start, stop) if window_means else run.rates_for(start, stop)
        return [loss.at(rates) if isinstance(loss, RateLoss) else loss for loss in losses]

    def load(bounds):
        start, stop = bounds
        if kind == "expected":
            return run.read(start, stop, with_state=kept), None
        return run.weights(start, stop), run.read_drift(start, stop)

    for p in passes:
        p.start(kind, h)
    if kind == "window":
        # the two ends of each window, w_k and w_{k+h}, as two streams of chunks
        chunk_losses = losses
        for (start, stop), (w0, w1) in window_ends(run, h, chunk, prefetch):
            t = run.time[start:stop]
            if hasattr(run.stats, "clear"):
                run.stats.clear()
            chunk_losses = bind(start, stop)
            f = (w1 - w0) / (run.time[start + h:stop + h] - t)[:, None]
            for loss, cert in zip(chunk_losses, certifiers):
                gbar, v0, _ = mean_value_gradient(loss, w0, w1)
                cert.add(f, gbar, v0, t)
            for p in passes:
                p.feed(t, w0, None, chunk_losses)
        # the passes see every record once: the last h ones end windows only
        size = chunk or run.chunk_size()
        for start in range(run.n_records - h, run.n_records, size) if passes else ():
            stop = min(start + size, run.n_records)
            w = run.weights(start, stop)
            for p in passes:
                p.feed(run.time[start:stop], w, None, chunk_losses)
    for (start, stop), (w, given) in ([] if kind == "window" else
                                      _prefetched(list(run.chunks(chunk)), load, prefetch)):
        t = run.time[start:stop]
        if hasattr(run.stats, "clear"):
            run.stats.clear()
        chunk_losses = bind(start, stop)
        if kind == "expected":
            stats = run.stats_for(start, stop)
            f = expected_drift(run.rule, run.params, stats, layout, w, include_state=False)[:, :S]
            w = w[:, :S]
        else:
            f = given
        for loss, cert in zip(chunk_losses, certifiers):
            values, g = loss.value_and_grad(w)
            cert.add(f, g, values, t)
        for p in passes:
            p.feed(t, w, f, chunk_losses)
    # a dynamics run's /drift is the system's exact drift: "expected" in the JSON's terms
    label = "expected" if (kind == "given" and run.is_dynamics) else kind
    spiking = run.rule is not None and run.rule.activity == "spiking"
    out = []
    for loss, cert in zip(losses, certifiers):
        c = cert.finish(loss.name, label)
        if slaved:
            # how each state variable entered the drift: its logged value, or its fixed point
            c.extra["state"] = {name: "adiabatic" if name in slaved else "logged"
                                for name in run.state_names}
        if time_scale is not None:
            c.extra["weight_time_scale_s"] = time_scale
        if isinstance(loss, RateLoss):
            # the rates are imposed/measured, not functions of w: the per-record loss is
            # built from the same rates as the drift, so agreement is by construction
            c.extra["caveat"] = (
                f"{loss.name} is rebuilt at each record from the logged rates (not a fixed "
                "function of w); its gradient is minus the rate-limit drift by construction, so "
                "the verdict shows agreement with the rate formula, not descent of one loss")
        if kind == "window":
            c.extra["window"] = h
            interval = run.record_interval
            c.extra["window_s"] = None if interval is None else h * interval
        elif kind == "expected" and spiking:
            # the rate-limit drift at the rates measured over each record interval
            c.extra["rates_interval_s"] = run.record_interval
        out.append(c)
    return out


def _block_means(run, h):
    """Means of consecutive blocks of ``h`` records of the plastic state, chunk by chunk
    (a block that straddles chunks is carried as its running sum: memory of a chunk,
    whatever h)."""
    total, count = None, 0
    for start, stop in run.chunks():
        w = run.read(start, stop)
        means = []
        if count:
            take = w[:h - count]
            total += take.sum(axis=0)
            count += len(take)
            w = w[len(take):]
            if count == h:
                means.append(total / h)
                total, count = None, 0
        m = (len(w) // h) * h
        if m:
            means.extend(w[:m].reshape(-1, h, w.shape[1]).mean(axis=1))
        if len(w) > m:
            total, count = w[m:].sum(axis=0), len(w) - m
        if means:
            yield np.array(means)


def run_recurrence(run, smooth=None, level=None, **options):
    """:func:`~plasticity.analysis.recurrence.find_recurrence` on an opened run's plastic
    state (weights, then the logged slow state such as BCM's θ), as a **sample path**.

    A noisy sample path (random input presentations, spikes) "returns" by chance, and
    its path length is inflated by the noise; so the records are first averaged over
    blocks of ``smooth`` records, by default the window of the ``window`` drift
    estimator (:func:`~plasticity.analysis.drift.choose_window`), but never more than an
    eighth of the shortest period the data shows
    (:func:`~plasticity.analysis.recurrence.shortest_period`), so an oscillation is
    not averaged away. A return then counts only when its excursion is significant
    against the noise estimated from the records' second differences, at ``level``
    (:class:`~plasticity.analysis.recurrence.NoiseModel`). Small trajectories are tested
    whole; larger ones are resampled to at most 2000 records evenly spaced in arc length.
    Returns ``(Recurrence or None, smooth)``."""
    from .recurrence import LEVEL, run_noise_model, shortest_period

    level = LEVEL if level is None else level
    size = run.layout(with_state=True).size
    T = run.n_records
    if T < 3:
        return None, 1
    step = max(1, size // 256)
    sample = np.concatenate([run.read(a, b)[:, ::step].copy() for a, b in run.chunks()])
    if smooth is None:
        smooth = choose_window(run.time, sample)
        period = shortest_period(run.time, sample)
        interval = run.record_interval
        if period is not None and interval:
            smooth = min(smooth, max(1, int(period / (8.0 * interval))))
    h = max(1, int(smooth))
    nb = T // h
    if nb < 3:
        return None, h
    noise = run_noise_model(run, h, level)
    tb = run.time[:nb * h].reshape(nb, h).mean(axis=1)
    if nb * size * 8 <= RECURRENCE_BYTES:
        return find_recurrence(np.concatenate(list(_block_means(run, h))), tb, noise=noise,
                               **options), h
    steps, previous = [], None
    for w in _block_means(run, h):
        if previous is not None:
            w = np.concatenate([previous, w])
        steps.append(np.linalg.norm(np.diff(w, axis=0), axis=1))
        previous = w[-1:]
    s = np.concatenate([[0.0], np.concatenate(steps)])
    points = int(min(options.pop("max_points", 2000), max(3, RECURRENCE_BYTES // (8 * size))))
    idx = np.unique(np.minimum(np.searchsorted(s, np.linspace(0.0, s[-1], points)), nb - 1))
    rows, offset = [], 0
    for w in _block_means(run, h):
        local = idx[(idx >= offset) & (idx < offset + len(w))] - offset
        rows.append(w[local])
        offset += len(w)
    return find_recurrence(np.concatenate(rows), tb[idx], max_points=points, noise=noise,
                           **options), h


def _window_losses(run, system, certs):
    """Smallest window loss (docs/math.md §5) for each system loss the drift does not
    descend everywhere: ``{loss name: WindowResult.summary()}``."""
    from .no_loss import DEFAULT_GRID
    from .window import smallest_window

    out = {}
    todo = [c for c in certs if c.descent_fraction is not None and c.descent_fraction < 1.0]
    if not todo or system.n > WINDOW_MAX_N:
        return out
    W = run.weights(0, run.n_records)
    for cert in todo:
        ell = system.losses.get(cert.loss_name)
        if ell is None:
            continue
        result = smallest_window(system.drift, ell, W, DEFAULT_GRID, jacobian=system.jacobian,
                                 max_records=WINDOW_RECORDS)
        out[cert.loss_name] = result.summary()
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


def _recurrence(run, system):
    """The recurrence test on the mean field where the run has a drift that is a function
    of its state (basis ``mean-field``: a return confirmed by a closed orbit is a proof),
    else on the logged sample path (basis ``sample-path``: a return significant against
    the noise, a statistical claim). ``(Recurrence or None, JSON dict or None, note)``."""
    from .meanfield import run_mean_field_recurrence

    mean_field, _ = run_mean_field_recurrence(run, system)
    if mean_field is not None:
        rec = mean_field.recurrence if mean_field.proof else None
        note = "; ".join(mean_field.notes) or None
        if rec is None:
            return None, None, note
        # distances are in the coordinates whitened by the trajectory's covariance
        doc = {"basis": "mean-field", "t_first": rec.t_i, "t_return": rec.t_j,
               "distance": rec.distance, "path": rec.path, "ratio": rec.ratio,
               "excursion": rec.excursion, "closed_orbit": mean_field.orbit.summary()}
        return rec, doc, note
    rec, smooth = run_recurrence(run)
    if rec is None:
        return None, None, None
    # i, j index the (block-averaged) trajectory the test ran on
    doc = {"basis": "sample-path", "t_first": rec.t_i, "t_return": rec.t_j,
           "distance": rec.distance, "path": rec.path, "ratio": rec.ratio,
           "excursion": rec.excursion, "smoothing_records": smooth,
           "significance": rec.significance}
    return rec, doc, None


def analyze_file(path, loss_specs=None, drift="auto", window=None, store=True, combine=True,
                 recurrence=True, window_losses=True, discover=True, stability=True):
    """Certify a run file; the JSON document of ``analyze --json`` as a dict.

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
    recurrence : bool
        Test the trajectory for recurrence (verdict ``no-loss-exists``).
    window_losses : bool
        For dynamics runs, search the smallest window loss where a loss is not descended.
    discover : bool
        When no loss is given and the file names none, search the families of
        :mod:`~plasticity.analysis.discovery` (document entry ``discovery``; each loss
        found is certified as ``discovered:<family>``).
    stability : bool
        Linear stability of the joint expected drift (weights and plastic state) at
        the fixed point the run ends up at (:mod:`.stability`; ``None`` where the drift
        is not known).

    Returns
    -------
    dict
        ``{"run", "rule", "model", "status", "records", "weights", "recurrence",
        "results": [...]}``; each result as :meth:`Certificate.summary`, plus
        ``window_loss`` (dynamics runs) and, on recurrence, ``descent_verdict`` and
        ``recurrence``.

    Raises
    ------
    BadInput
        Missing, corrupt or foreign file; a loss that needs what the file lacks.
    """
    with open_run(path) as run:
        system = dynamics_system(run) if run.is_dynamics else None
        losses, from_rule = _losses_for(run, loss_specs, system)
        if run.n_records < 2 and not run.has_drift:
            raise BadInput(f"{run.path}: only {run.n_records} record(s); need at least 2")
        consistency = ConsistencyPass(run)
        paths = [SamplePathPass(run, losses, window)]
        certs = certify_run(run, losses, drift, window, passes=[consistency, paths[0]]) if losses else []
        if combine and from_rule and len(losses) >= 2:
            fg = np.stack([c.fg for c in certs], axis=1)
            gn = np.stack([c.g_norm for c in certs], axis=1)
            lp = fit_loss_combination(fg, gn, certs[0].f_norm, certs[0].moving)
            combo = combined_loss(losses, lp["weights"])
            paths.append(SamplePathPass(run, [combo], window))
            cert = certify_run(run, [combo], drift, certs[0].extra.get("window", window),
                               passes=[paths[-1]])[0]
            cert.extra["combination"] = {loss.name: float(mu) for loss, mu in zip(losses, lp["weights"])}
            cert.extra["worst_margin"] = lp["margin"]
            certs.append(cert)
        path_arrays = attach_sample_path(certs, [r for p in paths for r in p.results()]) if certs else {}
        if consistency.test is None and run.rule is not None and run.has_stats and not run.is_dynamics:
            # the certified drift was not the rule's expected drift (spiking rules: the
            # window drift), or there was no loss: test the increments against it anyway
            certify_run(run, [], "expected", passes=[consistency])
        section = None
        if not losses and discover:
            from .discovery import discovery_certificates
            found, section = discovery_certificates(run, certify_run, drift, window)
            certs.extend(found)
        rec, rec_doc, rec_note = _recurrence(run, system) if recurrence else (None, None, None)
        if rec is not None:
            for cert in certs:
                cert.extra["descent_verdict"] = cert.verdict
                cert.extra["recurrence"] = {"t_first": rec.t_i, "t_return": rec.t_j,
                                            "basis": rec_doc["basis"]}
                cert.verdict = "no-loss-exists"
        elif system is None and from_rule and run.state_names:
            # plastic state: the joint drift near a stable fixed point descends the
            # quadratic Lyapunov loss of its Jacobian, in a stated region
            from .meanfield import lyapunov_certificate

            cert, _ = lyapunov_certificate(run)
            if cert is not None:
                certs.append(cert)
        elif system is not None and window_losses:
            for name, summary in _window_losses(run, system, certs).items():
                for cert in certs:
                    if cert.loss_name == name:
                        cert.extra["window_loss"] = summary
        doc = {
            "run": str(path),
            "rule": run.rule_name,
            "model": run.model,
            "status": run.status,
            "records": run.n_records,
            "weights": run.n_synapses,
            "recurrence": rec_doc,
            "consistency": consistency.result(),
            "results": [c.summary() for c in certs],
        }
        if section is not None:
            doc["discovery"] = section
        if stability:
            from .stability import run_stability
            doc["stability"] = run_stability(run)
        if rec is not None:
            doc["verdict"] = "no-loss-exists"
        if rec_note:
            doc["recurrence_note"] = rec_note
        if not losses:
            who = (f"rule {run.rule_name!r} has no known loss for this model and these inputs"
                   if run.rule else run.rule_error)
            searched = "losses were searched for (discovery) and " if discover else ""
            doc["note"] = (f"{who}: {searched}the recurrence test was run; pass --loss "
                           "path/to/module.py:name to certify your own")
    if store:
        doc["stored"] = write_analysis(path, certs, doc, arrays=stored_arrays(path_arrays))
    return doc


def _discovery_lines(section):
    """Lines of the table for the ``discovery`` entry: each family tried, its result."""
    if not section:
        return []
    if "skipped" in section:
        return [f"loss discovery skipped: {section['skipped']}"]
    how = section["drift"] + (f" (window {section['window']} records)" if section.get("window") else "")
    lines = [f"loss discovery: drift {how}, {section['records']} records ({section['moving']} moving); "
             f"each family fitted on one half of the records ({section['split']}), tested on the other"]
    for fam in section["families"]:
        state = "FOUND" if fam["found"] else "none"
        lines.append(f"  {fam['family']:<10} {state:<5} fit margin {_fmt(fam['fit_margin'])} on "
                     f"{fam['fit_records']} records; held-out descent "
                     f"{_fmt(fam['heldout_descent_fraction'], '.3f')} (margin {_fmt(fam['heldout_margin'])}) "
                     f"on {fam['heldout_records']}; {fam['insignificant_records']} not significant")
    if (section.get("window") or 0) > 1 and section["found"]:
        lines.append("  (noisy path: discovery sums ∇L·Δw over single records and counts the records where "
                     "the change is significant; the certificate rows above use the exact change over each "
                     "window at every record, noise included)")
    return lines


def _fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


def _basis_text(result, doc):
    basis = result.get("basis")
    if basis is None:
        return ""
    return " (" + BASIS_TEXT[basis].format(n=doc.get("seeds", "N")) + ")"


def _structured_cell(structured):
    """The best structured fit (n too large for the dense one): residual (family)."""
    if not structured:
        return "n/a"
    found = {k: v for k, v in structured["relative_residual"].items() if v is not None}
    if not found:
        return "n/a"
    family = structured["chosen"] or min(found, key=found.get)
    return f"{_fmt(found[family], '.3f')} ({family})"


def format_table(doc):
    """A readable table of an :func:`analyze_file` document."""
    lines = [f"run:    {doc['run']}" + (f"  (+ {doc['seeds'] - 1} more seeds; spread "
                                            f"{doc['spread']:.3g})" if doc.get("seeds") else ""),
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
            _fmt(const["relative_residual"], ".3f") if const else _structured_cell(r.get("structured_metric")),
            r["verdict"] + _basis_text(r, doc),
        ))
    if rows:
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for row in rows:
            lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    notes = []
    cons = doc.get("consistency")
    if cons is not None:
        if "per_seed_p" in cons:
            detail = (f"Bonferroni over {len(cons['per_seed_p'])} runs, per run p = "
                      + ", ".join(f"{p:.2g}" for p in cons["per_seed_p"]))
            ratio = ""
        else:
            ratio = "" if cons.get("drift_ratio") is None else f", drift ratio {cons['drift_ratio']:.3g}"
            detail = (f"Fisher X = {cons['statistic']:.3g} on {cons['dof']} dof over {cons['batches']} "
                      f"batches of {cons['window']} records, drift z = {cons['drift_z']:.3g}")
        notes.append(f"consistency of the increments with the rule's expected drift: "
                     f"{'consistent' if cons['consistent'] else 'NOT consistent'} (p = {cons['p_value']:.3g}: "
                     f"{detail}{ratio})")
    for r in doc["results"]:
        sp = r.get("sample_path")
        if sp is not None and sp.get("windows"):
            secs = "" if sp.get("window_s") is None else f" = {sp['window_s']:.3g} s"
            notes.append(f"along the path, {r['loss']}: {sp['windows']} windows of {sp['window']} records"
                         f"{secs}: descent {sp['descent_significant']:.2f}, ascent "
                         f"{sp['ascent_significant']:.2f}, undecided {sp['undecided']:.2f} "
                         f"(Holm, family level {sp['alpha']:g})")
        if "pointwise_verdict" in r:
            notes.append(f"{r['loss']}: the drift estimate is not descent at some records, but no "
                         "ascent is significant (window or record): undecided (noise), not a contradiction")
    for r in doc["results"]:
        if r["drift"] == "ensemble":
            b = r["bootstrap"]

            def ci(key, spec=".3g"):
                return "-" if b.get(key) is None else "[" + ", ".join(format(x, spec) for x in b[key]) + "]"
            notes.append(f"over {r['seeds']} seeds, {r['loss']}: drift = mean over seeds of the weight "
                         f"differences over {r['window']} records ({r['window_s']:.3g} s), median relative "
                         f"standard error {r['drift_relative_se']['median']:.3g}; {b['level']:.0%} bootstrap "
                         f"intervals ({b['resamples']} resamples of the seeds): descent {ci('descent_fraction')}, "
                         f"median psi_deg {ci('psi_deg_median')}, median kappa_min {ci('kappa_min_median')}")
        elif "window" in r:
            secs = f" = {r['window_s']:.3g} s" if r.get("window_s") is not None else ""
            notes.append(f"drift of {r['loss']}: window estimator, weight differences over "
                         f"{r['window']} record{'' if r['window'] == 1 else 's'}{secs} (mean-value gradient over each segment)")
        elif r.get("rates_interval_s") is not None:
            notes.append(f"drift of {r['loss']}: expected (rate-limit formula at the rates logged "
                         f"over each {r['rates_interval_s']:.3g} s record interval)")
        adiabatic = [name for name, how in (r.get("state") or {}).items() if how == "adiabatic"]
        if adiabatic:
            notes.append(f"drift of {r['loss']}: {', '.join(adiabatic)} relaxes more than ten times faster "
                         f"than the weights move ({_fmt(r.get('weight_time_scale_s'))} s), so it is set "
                         "to its fixed point (adiabatic limit)")
        if r.get("caveat"):
            notes.append(f"caveat ({r['loss']}): {r['caveat']}")
        if "combination" in r:
            combo = " + ".join(f"{v:.3g}·{k}" for k, v in r["combination"].items())
            notes.append(f"combined = {combo}  (worst normalised margin {r['worst_margin']:.3g})")
        region = r.get("region")
        if region is not None:
            fp = ", ".join(f"{v:.3g}" for v in region["fixed_point"])
            notes.append(f"{r['loss']}: (x - x*)^T P (x - x*) of the joint state (weights and "
                         f"plastic state) at the stable fixed point x* = ({fp}), Jacobian max real "
                         f"part {region['max_real']:.3g}; valid (descended, sampled check) within "
                         f"semi-axes {region['radius_min']:.3g}…{region['radius_max']:.3g} of x*; "
                         f"{region['records_in_region']}/{region['records']} records inside, certified there")
        wl = r.get("window_loss")
        if wl is not None:
            if wl["window"] is not None:
                notes.append(f"window loss of {r['loss']}: descended at every moving record from "
                             f"T = {wl['window']:g} (grid {wl['grid'][0]:g}…{wl['grid'][-1]:g}); "
                             f"psi_deg med/max {_fmt(wl['psi_deg']['median'])}/{_fmt(wl['psi_deg']['max'])}, "
                             f"kappa_min med/max {_fmt(wl['kappa_min']['median'])}/{_fmt(wl['kappa_min']['max'])}")
            else:
                best = max(wl["descent_fraction"])
                notes.append(f"window loss of {r['loss']}: no T in the grid {wl['grid'][0]:g}…"
                             f"{wl['grid'][-1]:g} works (best descent fraction {best:.4g} at "
                             f"T = {wl['window_reported']:g})")
    if doc.get("note"):
        notes.append(doc["note"])
    notes.extend(_discovery_lines(doc.get("discovery")))
    st = doc.get("stability")
    if st is not None:
        if st["fixed_point"] is None:
            notes.append(f"stability: {st.get('message', 'no fixed point found')}")
        else:
            lead = ("every eigenvalue neutral" if st["max_real"] is None else
                    f"leading eigenvalue {st['max_real']:.4g} ± {st['max_imag']:.4g}i")
            neutral = f", {st['neutral']} neutral" if st.get("neutral") else ""
            notes.append(f"stability: fixed point at distance {st['distance']:.3g} from the last record; "
                         f"{lead}{neutral} -> {'stable' if st['stable'] else 'unstable'}")
    rec = doc.get("recurrence")
    if rec is None and (not doc["results"] or doc.get("discovery")):
        notes.append("recurrence: none found")
    if rec is not None:
        basis = rec.get("basis")
        where = {"mean-field": "the mean-field (expected-drift) trajectory from the first record",
                 "sample-path": "the logged sample path"}.get(basis, "the trajectory")
        notes.append(f"recurrence on {where}: the state at t = {rec['t_return']:.4g} returns to that at "
                     f"t = {rec['t_first']:.4g} (whitened distance {rec['distance']:.3g} after a path of "
                     f"{rec['path']:.3g}): no loss decreases along this trajectory -> no-loss-exists")
        orbit = rec.get("closed_orbit")
        if orbit:
            notes.append(f"  a proof: the drift has a closed orbit of period {orbit['period']:.4g} "
                         f"(return residual {orbit['residual']:.2g} of its diameter {orbit['diameter']:.3g})")
        sig = rec.get("significance")
        if sig:
            p = sig["p_value"]
            notes.append(f"  a statistical claim: the excursion is significant against the noise of the "
                         f"records, p = {p:.2g} (Bonferroni over {sig.get('pairs', 1)} pairs) <= {sig['level']:g}")
    if doc.get("recurrence_note"):
        notes.append(f"recurrence: {doc['recurrence_note']}")
    if notes:
        if rows:
            lines.append("")
        lines.extend(notes)
    return "\n".join(lines)
