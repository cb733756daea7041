"""Does the simulation implement the rule's drift? A test on the logged increments
(docs/math.md §10; the concrete test is documented in docs/analysis.md).

Records ``w_k`` at times ``t_k``. If the simulation implements the expected drift
``f``, the increments ``d_k = w_{k+1} − w_k`` are ``∫ f(w(t)) dt`` plus noise of mean
zero, so the residuals

    r_k = d_k − (t_{k+1} − t_k) · ½ (f(w_k) + f(w_{k+1}))        (trapezoid rule)

have mean zero up to the trapezoid's error, O(Δ³ f''), and second-order noise terms,
both far below the noise of a record for the learning rates of this project.

The test, streamed record by record (O(n) work per record):

1. the residuals are cut into B consecutive batches of h records (the ``window``);
2. in batch b they are projected on p ≤ 2 directions fixed *before* the batch starts
   (predictable): the expected drift at the batch's first record, ``f(w_{bh})``, and
   the residual sum of the previous batch (orthogonalised). Given the past, the
   projected residuals of the batch then still have mean zero under the null
   hypothesis; a wrong learning rate biases them along the first direction, a wrong
   rule along the second (a bias that persists from one batch to the next);
3. in each batch, Hotelling's one-sample test of mean zero on the h projected
   residuals: ``T² = h āᵀ S⁻¹ ā`` (ā their mean, S their sample covariance), and
   ``(h − p) T² / (p (h − 1))`` has the F(p, h − p) distribution when the projected
   residuals of a batch are independent and Gaussian with a common covariance;
4. the B batch p-values are combined with Fisher's method:
   ``X = −2 Σ_b log p_b`` has the χ² distribution with 2B degrees of freedom (the
   ``statistic`` and ``dof`` of the JSON; ``fisher_p``). Fisher's combination of
   two-sided batch tests is strong against a bias confined to some batches, weak
   against a small bias that persists with the same sign over the whole run (it
   squares each batch's evidence, losing the sign);
5. so a second, coherent test: the residuals projected on each batch's drift
   direction are summed over the whole run, ``Z = Σ_b Σ_k a_k,1 / √(Σ_b h s²_b,1)``
   (s²_b,1 the within-batch sample variance), N(0, 1) under the null hypothesis by the
   martingale central limit theorem (``drift_z``, ``drift_p``, two-sided);
6. ``p_value = min(1, 2 min(fisher_p, drift_p))`` (Bonferroni over the two tests).

Null hypothesis: the residuals have mean zero given the past (the simulation's
increments follow the expected drift); assumptions: within a batch, the projected
residuals are independent and nearly Gaussian with a slowly varying covariance (each
record sums many simulation steps; consecutive residuals of a Markov simulation are
uncorrelated up to O(Δ ∂f) terms). Batches of different noise size are allowed (the
noise of Hebbian learning grows with ‖w‖). ``consistent`` is ``p_value ≥ ALPHA``.
``drift_ratio`` is an effect size: the logged displacement along the mean drift
direction over the integrated expected drift along it (1 when the simulation has the
claimed drift; 2 for a run whose weights moved with twice the learning rate).
"""

import math

import numpy as np
from scipy.stats import chi2, f as f_dist, norm as normal_dist

__all__ = ["ConsistencyTest", "consistency_test", "ALPHA", "TARGET_BATCHES", "MIN_BATCH"]

#: significance level of ``consistent``
ALPHA = 0.01
#: batches wanted over a run (fewer when batches would be shorter than MIN_BATCH)
TARGET_BATCHES = 64
#: residuals per batch, at least
MIN_BATCH = 10
#: batches, at least
MIN_BATCHES = 4


class ConsistencyTest:
    """Accumulates the residuals of consecutive records, chunk by chunk.

    Parameters
    ----------
    n : int
        Components tested (the synapse weights).
    n_records : int
        Records of the run (fixes the batches before the first chunk arrives).
    batch : int, optional
        Residuals per batch (default: about TARGET_BATCHES batches, at least MIN_BATCH).
    """

    def __init__(self, n, n_records, batch=None):
        m = int(n_records) - 1                      # residuals
        self.n = int(n)
        self.h = max(MIN_BATCH, int(batch) if batch else m // TARGET_BATCHES)
        self.B = m // self.h
        self.p_values = []
        self.drift_sum = np.zeros(self.n)           # Σ Δt·½(f_k + f_{k+1}) over used residuals
        self.disp_sum = np.zeros(self.n)            # Σ d_k over used residuals
        self.f_sum = np.zeros(self.n)               # Σ f(w_k): the mean drift direction
        self._k = 0                                  # index of the next residual
        self._last = None                            # (t, w, f) of the last record seen
        self._U = None                               # directions of the current batch
        self._previous = None                        # residual sum of the previous batch
        self._current = np.zeros(self.n)             # residual sum of the current batch
        self._a = []                                 # projected residuals of the current batch
        self._along_sum = 0.0                        # Σ of the residuals along each batch's drift
        self._along_var = 0.0                        # and the estimate of its variance

    def _directions(self, f_start):
        cols = []
        for v in (f_start, self._previous):
            if v is None:
                continue
            v = np.array(v, float)
            for u in cols:
                v -= (u @ v) * u
            norm = np.linalg.norm(v)
            if norm > 1e-12 * (1.0 + np.linalg.norm(f_start)) and np.isfinite(norm):
                cols.append(v / norm)
        return np.array(cols).T if cols else None

    def _close_batch(self):
        a = np.concatenate(self._a) if self._a else np.zeros((0, 0))
        self._a = []
        self._previous = self._current
        self._current = np.zeros(self.n)
        h, p = a.shape if a.ndim == 2 else (0, 0)
        if p == 0 or h < p + 2:
            return
        # along the batch's drift direction: the sum and its variance, for the coherent test
        self._along_sum += float(a[:, 0].sum())
        self._along_var += float(h * a[:, 0].var(ddof=1))
        mean = a.mean(0)
        S = np.atleast_2d(np.cov(a, rowvar=False))
        try:
            T2 = h * float(mean @ np.linalg.solve(S, mean))
        except np.linalg.LinAlgError:
            return
        if not np.isfinite(T2):
            return
        self.p_values.append(float(f_dist.sf((h - p) * T2 / (p * (h - 1)), p, h - p)))

    def _accumulate(self, r, integral, d, f_left):
        """Residuals r (m, n) with global indices self._k …, and f at their left records."""
        m = r.shape[0]
        i = 0
        while i < m:
            k = self._k
            b = k // self.h
            if b >= self.B:
                self._k += m - i
                return
            if k % self.h == 0:
                self._U = self._directions(f_left[i])
            take = min(m - i, (b + 1) * self.h - k)
            seg = r[i:i + take]
            ok = np.isfinite(seg).all(axis=1)
            if not ok.all():
                # undefined drift (a spiking run's first record has no rate yet): left out
                seg = seg[ok]
            if self._U is not None:
                self._a.append(seg @ self._U)
            self._current += seg.sum(0)
            self.drift_sum += integral[i:i + take][ok].sum(0)
            self.disp_sum += d[i:i + take][ok].sum(0)
            self._k += take
            i += take
            if self._k % self.h == 0:
                self._close_batch()

    def add(self, time, weights, drift):
        """Consecutive records: ``time`` (B,), ``weights`` and expected ``drift`` (B, n)."""
        t = np.asarray(time, float)
        w = np.asarray(weights, float)
        f = np.asarray(drift, float)
        if t.size == 0:
            return
        if self._last is not None:                  # the residual across the chunk boundary
            t0, w0, f0 = self._last
            d = (w[0] - w0)[None]
            integral = ((t[0] - t0) * 0.5 * (f0 + f[0]))[None]
            self._accumulate(d - integral, integral, d, f0[None])
        if t.size > 1:
            d = w[1:] - w[:-1]
            integral = np.diff(t)[:, None] * 0.5 * (f[1:] + f[:-1])
            self._accumulate(d - integral, integral, d, f[:-1])
        self.f_sum += np.where(np.isfinite(f), f, 0.0).sum(0)
        self._last = (t[-1], w[-1].copy(), f[-1].copy())

    def finish(self):
        """The result as a dict (the JSON ``consistency`` entry), or None when the run has
        fewer than MIN_BATCHES batches of residuals."""
        p = np.clip(np.asarray(self.p_values, float), 1e-300, 1.0)
        if p.size < MIN_BATCHES:
            return None
        X = float(-2.0 * np.sum(np.log(p)))
        dof = 2 * int(p.size)
        p_fisher = float(chi2.sf(X, dof))
        z = self._along_sum / math.sqrt(self._along_var) if self._along_var > 0 else 0.0
        p_drift = float(2.0 * normal_dist.sf(abs(z)))
        p_value = min(1.0, 2.0 * min(p_fisher, p_drift))          # Bonferroni over the two tests
        ratio = None
        norm = np.linalg.norm(self.f_sum)
        if norm > 0 and math.isfinite(norm):
            along = float(self.drift_sum @ self.f_sum) / norm
            if along != 0 and math.isfinite(along):
                ratio = float(self.disp_sum @ self.f_sum) / norm / along
        return {"statistic": X, "dof": dof, "p_value": p_value, "consistent": bool(p_value >= ALPHA),
                "window": int(self.h), "batches": int(p.size), "fisher_p": p_fisher,
                "drift_z": float(z), "drift_p": p_drift, "min_batch_p": float(p.min()),
                "drift_ratio": ratio,
                "method": "Hotelling test of zero mean per batch on residuals projected on the "
                          "batch's predictable directions, Fisher combination; and a z test of "
                          "their sum along the drift; Bonferroni over the two; trapezoid integral "
                          "of the expected drift"}


def consistency_test(time, weights, drift, batch=None):
    """The test on arrays in memory: ``time`` (T,), ``weights`` and ``drift`` (T, n)."""
    weights = np.asarray(weights, float)
    test = ConsistencyTest(weights.shape[1], weights.shape[0], batch)
    test.add(time, weights, drift)
    return test.finish()
