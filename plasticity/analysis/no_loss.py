"""When no loss is known: one call that combines the certificate with window losses,
a fitted quadratic loss and the recurrence test (docs/math.md §5–7).

:func:`analyze_no_loss` takes a trajectory (times, records, drifts), the candidate
losses (name → batched ``(T, n) -> (values, gradients)``) and, optionally, the drift
function (needed for window losses). For each loss it reports the certificate of
:func:`plasticity.analysis.certificate.certify`; where the drift does not descend the
loss everywhere and a drift function is given, the smallest window ``T`` of ``grid``
for which it descends the window loss (:func:`~plasticity.analysis.window.smallest_window`).
For the trajectory as a whole: a quadratic loss fitted by LP
(:func:`~plasticity.analysis.lyapunov.fit_quadratic_loss`) and the recurrence test; a
recurrence overrides every verdict with ``no-loss-exists``. The recurrence test runs on

- the **mean field** when ``drift_function`` is given: the drift integrated from the
  first record, a return confirmed by a closed orbit
  (:func:`~plasticity.analysis.meanfield.mean_field_recurrence`; basis
  ``"mean-field"``, a proof up to the integration's accuracy);
- otherwise the **sample path** ``weights``, where a return counts only when its
  excursion is significant against the noise estimated from the records
  (:class:`~plasticity.analysis.recurrence.NoiseModel`; basis ``"sample-path"``, a
  statistical claim at ``level``).
"""

import numpy as np

from .certificate import certify
from .lyapunov import MAX_FIT_DIMENSION, fit_quadratic_loss
from .meanfield import mean_field_recurrence
from .recurrence import LEVEL, NoiseModel, find_recurrence
from .window import smallest_window

__all__ = ["analyze_no_loss", "DEFAULT_GRID"]

DEFAULT_GRID = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0)


def analyze_no_loss(time, weights, drifts, losses, drift_function=None, jacobian=None, grid=DEFAULT_GRID,
                    window_records=200, window_max_n=40, level=LEVEL):
    """The extended analysis of one trajectory (see the module doc). Returns a dict
    ``{"results": [per loss], "quadratic_fit": ..., "recurrence": ..., "verdict": ...}``;
    window results (``WindowResult``) are in ``"window"`` of each loss entry (their
    ``summary()`` is JSON-ready; the objects are under ``"_window"``)."""
    time = np.asarray(time, float)
    W = np.asarray(weights, float)
    F = np.asarray(drifts, float)
    note = None
    if drift_function is not None:
        mean_field = mean_field_recurrence(drift_function, time, W[0])
        rec = mean_field.recurrence if mean_field.proof else None
        note = "; ".join(mean_field.notes) or None
        basis = {"basis": "mean-field", "closed_orbit": mean_field.orbit.summary() if rec else None}
    else:
        rec = find_recurrence(W, time, noise=NoiseModel.from_records(W, level=level))
        basis = {"basis": "sample-path"}
    out = {"results": [], "recurrence": {**rec.summary(), **basis} if rec else None,
           "recurrence_note": note}
    for name, loss in losses.items():
        values, grads = loss(W)
        cert = certify(F, grads, values, time, name).summary()
        entry = {"loss": name, "certificate": cert, "window": None, "_window": None}
        needs_window = cert.get("descent_fraction", 1.0) < 1.0
        if needs_window and drift_function is not None and W.shape[1] <= window_max_n:
            result = smallest_window(drift_function, loss, W, grid, jacobian=jacobian,
                                     max_records=window_records)
            entry["window"] = result.summary()
            entry["_window"] = result
        verdict = cert.get("verdict")
        if rec is not None:
            verdict = "no-loss-exists"
        elif entry["window"] is not None and entry["window"]["window"] is not None:
            verdict = f"window-descent (T = {entry['window']['window']:g})"
        entry["verdict"] = verdict
        out["results"].append(entry)
    if W.shape[1] <= MAX_FIT_DIMENSION:
        fit = fit_quadratic_loss(W, F)
        out["quadratic_fit"] = fit.summary()
        out["_quadratic_fit"] = fit
    else:
        out["quadratic_fit"] = None
    out["verdict"] = "no-loss-exists" if rec is not None else None
    return out
