"""Certify plasticity rules as (natural) gradient descent (docs/math.md; Shoji, Suzuki
& Kozachkov, "Is All Learning (Natural) Gradient Descent?", arXiv:2409.16422).

NumPy, SciPy and h5py only: this package never imports Brian2 or the simulation side;
it reads run files through :mod:`plasticity.io`, so it analyses trajectories from any
simulator.

Typical use::

    from plasticity.analysis import open_run, analyze_file, min_condition_metric
    doc = analyze_file("results/oja_pca/run.h5")            # the JSON document of `analyze --json`
    with open_run("results/oja_pca/run.h5") as run:
        w = run.weights(0, 10)                               # records 0..9, (10, S)
        cert = certify_run(run, rule_losses(run.rule_name, run.stats,
                                            run.layout(with_state=False)))[0]
    M = min_condition_metric(update, gradient)               # metric at one record

Modules (sections of docs/math.md): :mod:`.metrics` (§1–3), :mod:`.losses` (§8),
:mod:`.drift` (§4), :mod:`.certificate`, :mod:`.fitting` (§6 and the verdict),
:mod:`.window` (§5), :mod:`.recurrence` (§7), :mod:`.pipeline`, :mod:`.report`.
"""

from .certificate import Certificate, Certifier, certify
from .drift import choose_window, expected_drift, window_drift
from .fitting import (CONSTANT_TOL, FIXED_POINT_RTOL, FULL_FIT_MAX_N, GRADIENT_TOL,
                      fit_constant_metric, fit_constant_metric_arrays, fit_loss_combination,
                      fit_scalar_metric, verdict)
from .losses import (LOSSES, Loss, load_user_loss, make_loss, mean_value_gradient,
                     quadratic_loss, resolve_loss, rule_losses)
from .metrics import (MinConditionMetric, batch_metric_stats, canonical_metric, kappa_from_psi,
                      min_condition_metric, random_admissible_metric)
from .pipeline import analyze_file, certify_run, drift_kind_for, format_table
from ..io import Layout, Run, open_run, write_analysis


def metric_at(run, k, loss, drift="auto"):
    """The minimal-condition metric of record ``k`` of an opened run against ``loss``
    (:class:`MinConditionMetric`; ValueError where the drift does not descend)."""
    kind = drift_kind_for(run, drift)
    S = run.n_synapses
    if kind == "expected":
        w = run.read(k, k + 1)
        cert_drift = expected_drift(run.rule, run.params, run.stats, run.layout(), w)[:, :S]
        g = loss.value_and_grad(w[:, :S])[1]
    elif kind == "given":
        cert_drift = run.read_drift(k, k + 1)
        g = loss.value_and_grad(run.weights(k, k + 1))[1]
    else:
        w = run.weights(k, k + 2)
        cert_drift, w0, w1 = window_drift(run.time[k:k + 2], w, 1)
        g = mean_value_gradient(loss, w0, w1)[0]
    return min_condition_metric(cert_drift[0], g[0])


__all__ = [
    "Certificate", "Certifier", "certify", "certify_run", "analyze_file", "format_table",
    "choose_window", "expected_drift", "window_drift",
    "CONSTANT_TOL", "FIXED_POINT_RTOL", "FULL_FIT_MAX_N", "GRADIENT_TOL",
    "fit_constant_metric", "fit_constant_metric_arrays", "fit_loss_combination",
    "fit_scalar_metric", "verdict", "Layout",
    "LOSSES", "Loss", "load_user_loss", "make_loss", "mean_value_gradient", "quadratic_loss",
    "resolve_loss", "rule_losses",
    "MinConditionMetric", "batch_metric_stats", "canonical_metric", "kappa_from_psi",
    "min_condition_metric", "random_admissible_metric",
    "Run", "open_run", "write_analysis", "metric_at",
]
