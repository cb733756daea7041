"""Per-record certificates and their summary (docs/math.md §1, §3, §6).

For each record k with drift ``f_k`` and loss gradient ``g_k``:

- ``psi``: the angle between ``f_k`` and ``−g_k``; ``descent``: ``f_k·g_k < 0``, i.e.
  an SPD metric with ``f_k = −M_k g_k`` exists (docs/math.md §1);
- ``kappa_min = (1 + sin ψ)/(1 − sin ψ)``, the condition number of the best such
  metric, and its scale ``alpha = ‖f‖²/(−f·g)`` (docs/math.md §3);
- the loss value.

Records whose drift or gradient is not finite (e.g. the first record of a spiking run,
which has no rate yet) are "undefined" and left out. Records whose drift is zero up to ``FIXED_POINT_RTOL`` relative to the largest drift
of the trajectory are fixed points: counted apart, not as failures. The summary
(median / p95 / max of ψ in degrees over the moving records, and of κ_min over the
moving records that descend), the scalar and constant-metric fits and the verdict
are in :mod:`plasticity.analysis.fitting`.

:class:`Certifier` consumes records chunk by chunk (O(n) memory per record plus the
n × n fit statistics when ``n ≤ FULL_FIT_MAX_N``), so a long run is certified while
it is read. :func:`certify` does it for arrays in memory.

Reference: Shoji, Suzuki & Kozachkov, arXiv:2409.16422.
"""

import math

import numpy as np

from .fitting import (FIXED_POINT_RTOL, FULL_FIT_MAX_N, fit_constant_metric, fit_scalar_metric,
                      verdict)
from .metrics import batch_metric_stats
from .structured import StructuredMetricFit

__all__ = ["Certifier", "Certificate", "certify"]


def _finite_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _stats(values):
    values = np.asarray(values, float)
    if values.size == 0:
        return {"median": None, "p95": None, "max": None}
    return {"median": _finite_or_none(np.median(values)),
            "p95": _finite_or_none(np.percentile(values, 95)),
            "max": _finite_or_none(np.max(values))}


class Certifier:
    """Accumulates the certificate of a trajectory, chunk by chunk.

    Parameters
    ----------
    n : int
        Dimension of the records.
    fit_full : bool, optional
        Accumulate the n × n statistics of the constant-metric fit (default:
        ``n <= FULL_FIT_MAX_N``).
    fixed_point_rtol : float
    post : array_like of int (n,), optional
        Postsynaptic neuron of each coordinate (the blocks of the block-diagonal fit).

    Without the dense fit, the structured fits of :mod:`plasticity.analysis.structured`
    (diagonal, block-diagonal, low-rank plus diagonal) are accumulated instead.
    """

    def __init__(self, n, fit_full=None, fixed_point_rtol=FIXED_POINT_RTOL, post=None):
        self.n = int(n)
        self.fit_full = self.n <= FULL_FIT_MAX_N if fit_full is None else bool(fit_full)
        self.structured = None if self.fit_full else StructuredMetricFit(self.n, post=post)
        self.rtol = fixed_point_rtol
        self._parts = {k: [] for k in ("psi", "kappa_min", "alpha", "descent", "fg", "f_norm",
                                       "g_norm", "loss", "time")}
        self.ff = self.fg = self.gg = 0.0
        self.S = np.zeros((self.n, self.n)) if self.fit_full else None
        self.P = np.zeros((self.n, self.n)) if self.fit_full else None

    def add(self, drift, gradient, loss_values=None, time=None):
        """Add records: ``drift`` and ``gradient`` (B, n), ``loss_values`` (B,)."""
        F = np.asarray(drift, float)
        G = np.asarray(gradient, float)
        s = batch_metric_stats(F, G)
        for key in ("psi", "kappa_min", "alpha", "descent", "fg", "f_norm", "g_norm"):
            self._parts[key].append(s[key])
        B = F.shape[0]
        self._parts["loss"].append(np.full(B, np.nan) if loss_values is None else np.asarray(loss_values, float))
        self._parts["time"].append(np.full(B, np.nan) if time is None else np.asarray(time, float))
        ok = np.isfinite(s["fg"]) & np.isfinite(s["f_norm"]) & np.isfinite(s["g_norm"])
        if not ok.all():          # undefined records (e.g. no rate before the first one)
            F, G = F[ok], G[ok]
        self.ff += float(np.sum(s["f_norm"][ok] ** 2))
        self.fg += float(np.sum(s["fg"][ok]))
        self.gg += float(np.sum(s["g_norm"][ok] ** 2))
        if self.fit_full:
            self.S += G.T @ G
            self.P += F.T @ G
        if self.structured is not None:
            self.structured.add(F, G)

    def finish(self, loss_name="loss", drift_kind="expected"):
        """The :class:`Certificate` of everything added."""
        arrays = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in self._parts.items()}
        arrays["descent"] = arrays["descent"].astype(bool)
        fn = arrays["f_norm"]
        defined = np.isfinite(fn) & np.isfinite(arrays["g_norm"])
        fmax = fn[defined].max() if defined.any() else 0.0
        arrays["defined"] = defined
        arrays["moving"] = defined & (fn > self.rtol * fmax)
        c, scalar_res = fit_scalar_metric(self.ff, self.fg, self.gg)
        M = None
        const_res = None
        if self.fit_full:
            M, const_res = fit_constant_metric(self.S, self.P, self.ff)
        structured = self.structured.finish() if self.structured is not None else None
        return Certificate(arrays, loss_name, drift_kind, c, scalar_res, M, const_res, self.n,
                           structured=structured)


class Certificate:
    """The certificate of a trajectory against one loss.

    Attributes
    ----------
    psi, kappa_min, alpha, descent, moving, loss, time, f_norm, g_norm, fg : ndarray (T,)
        Per record.
    scalar_c, scalar_residual : float
        Best ``M = cI`` and its relative residual.
    constant_metric : ndarray (n, n) or None
        Fitted constant SPD metric (None when n > FULL_FIT_MAX_N or no fit exists).
    constant_residual : float or None
    structured : dict or None
        The structured fits (:meth:`StructuredMetricFit.finish`), when the dense one
        was not done; its best residual stands in for ``constant_residual`` in the
        verdict.
    verdict : str
    """

    def __init__(self, arrays, loss_name, drift_kind, scalar_c, scalar_residual, constant_metric,
                 constant_residual, n, structured=None):
        self.__dict__.update(arrays)
        self.loss_name = loss_name
        self.drift_kind = drift_kind
        self.scalar_c = scalar_c
        self.scalar_residual = scalar_residual
        self.constant_metric = constant_metric
        self.constant_residual = constant_residual
        self.n = n
        self.structured = structured
        moving = self.moving
        self.n_moving = int(moving.sum())
        self.undefined = int((~self.defined).sum())
        self.fixed_points = int((~moving).sum()) - self.undefined
        self.descent_fraction = float(self.descent[moving].mean()) if self.n_moving else float("nan")
        fitted = constant_residual
        if fitted is None and structured is not None:
            found = [structured[name] for name in ("diagonal", "block_diagonal", "low_rank_diagonal")
                     if structured.get(name) is not None]
            fitted = min(found) if found else None
        self.verdict = verdict(self.descent_fraction, scalar_residual, scalar_c, fitted,
                               self.n_moving)
        self.extra = {}

    @property
    def records(self):
        return int(self.psi.size)

    @property
    def psi_deg(self):
        return np.degrees(self.psi)

    @property
    def euclidean(self):
        return bool(self.verdict == "gradient")

    def summary(self):
        """One entry of ``results`` in the JSON document of ``plasticity analyze --json`` (plain Python types)."""
        moving = self.moving
        good = moving & self.descent
        doc = {
            "loss": self.loss_name,
            "drift": self.drift_kind,
            "records": self.records,
            "moving_records": self.n_moving,
            "fixed_points": self.fixed_points,
            "undefined_records": self.undefined,
            "descent_fraction": _finite_or_none(self.descent_fraction),
            "psi_deg": _stats(self.psi_deg[moving]),
            "kappa_min": _stats(self.kappa_min[good]),
            "alpha": _stats(self.alpha[good]),
            "scalar_metric": {"c": _finite_or_none(self.scalar_c),
                              "relative_residual": _finite_or_none(self.scalar_residual)},
            "constant_metric": ({"relative_residual": _finite_or_none(self.constant_residual),
                                 "n": self.n} if self.constant_residual is not None else None),
            "structured_metric": (None if self.structured is None else {
                "relative_residual": {name: _finite_or_none(self.structured[name])
                                      if self.structured[name] is not None else None
                                      for name in ("diagonal", "block_diagonal", "low_rank_diagonal")},
                "rank": self.structured["rank"], "chosen": self.structured["chosen"],
                "block_diagonal_skipped": self.structured.get("block_diagonal_skipped")}),
            "euclidean": self.euclidean,
            "verdict": self.verdict,
        }
        doc.update(self.extra)
        return doc


def certify(drift, gradient, loss_values=None, time=None, loss_name="loss", drift_kind="given",
            fit_full=None):
    """Certify a trajectory held in memory.

    Parameters
    ----------
    drift, gradient : ndarray (T, n)
        Drift ``f_k`` and loss gradient ``g_k`` at each record (for window drifts,
        the mean-value gradient of the segment, docs/math.md §4).
    loss_values : ndarray (T,), optional

    Returns
    -------
    Certificate
    """
    drift = np.atleast_2d(np.asarray(drift, float))
    gradient = np.atleast_2d(np.asarray(gradient, float))
    certifier = Certifier(drift.shape[1], fit_full=fit_full)
    certifier.add(drift, gradient, loss_values, time)
    return certifier.finish(loss_name, drift_kind)
