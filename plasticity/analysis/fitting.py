"""Fitting a constant metric and a loss; the verdict (docs/math.md §6; the verdicts: docs/analysis.md).

Constant metric (docs/math.md §6): ``min_M Σ_k ‖f_k + M g_k‖²`` over SPD ``M``. With
``S = Σ g_k g_kᵀ`` and ``P = Σ f_k g_kᵀ`` the objective is
``J(M) = Σ‖f_k‖² + 2 tr(M P) + tr(M S M)``, so the symmetric stationary point solves
the Sylvester equation ``S M + M S = −(P + Pᵀ)`` (solved in the eigenbasis of ``S``;
directions that no gradient visits are left at zero). It is projected onto the SPD
cone (eigenvalues clipped at ``1e-10 × the largest``) and, if the projection moved
it, refined by projected gradient steps. The fit is computed from the n × n
sufficient statistics ``S`` and ``P``, accumulated record by record, so it needs
O(n²) memory: it is done only for ``n ≤ FULL_FIT_MAX_N`` (200); beyond, the scalar fit
``M = cI`` (``c = −Σ f·g / Σ ‖g‖²``) and the structured fits of
:mod:`plasticity.analysis.structured` (diagonal, block-diagonal, low-rank plus
diagonal; O(n) memory per record) are done, and the constant-metric entry is null.

The relative residual is ``r = sqrt(J(M) / Σ‖f_k‖²)``: 0 when one metric maps every
record's −gradient to its drift exactly, 1 for ``M = 0``. It weights the records by
the size of their drift (the least-squares problem of docs/math.md §6 as written).

Verdict (docs/analysis.md), over the moving records (``‖f_k‖ > FIXED_POINT_RTOL × max_k‖f_k‖``;
the others are fixed points, counted apart):

- ``not-descent``: some moving record has ``f·g ≥ 0`` (the descent fraction says how
  many);
- ``gradient``: the scalar fit has ``c > 0`` and ``r ≤ GRADIENT_TOL`` (0.05);
- ``natural-gradient-constant``: the full constant fit (or, above ``FULL_FIT_MAX_N``,
  a structured one) has ``r ≤ CONSTANT_TOL`` (0.05);
- ``natural-gradient``: descent everywhere, no constant metric fits (or n too large
  to fit one);
- ``fixed-point``: no record moves at all (nothing
  to certify).

Loss combination: the best non-negative combination ``Σ_j μ_j L_j`` of candidate
losses maximises the worst normalised descent margin ``min_k −f̂_k·Σ_j λ_j g_k^j/s_j``
over ``λ ≥ 0, Σλ = 1`` (a linear programme, ``scipy.optimize.linprog``), with
``s_j`` the RMS norm of loss j's gradient over the trajectory and ``μ_j = λ_j/s_j``.

Reference: Shoji, Suzuki & Kozachkov, arXiv:2409.16422.
"""

import numpy as np

__all__ = ["FULL_FIT_MAX_N", "GRADIENT_TOL", "CONSTANT_TOL", "FIXED_POINT_RTOL",
           "fit_scalar_metric", "fit_constant_metric", "fit_constant_metric_arrays",
           "fit_loss_combination", "verdict"]

#: largest dimension for which the full constant SPD metric is fitted
FULL_FIT_MAX_N = 200
#: relative residual below which M = cI fits: plain gradient descent
GRADIENT_TOL = 0.05
#: relative residual below which one constant SPD metric fits
CONSTANT_TOL = 0.05
#: records with ‖f‖ ≤ FIXED_POINT_RTOL × max‖f‖ are fixed points
FIXED_POINT_RTOL = 1e-6


def fit_scalar_metric(ff, fg, gg):
    """Best ``M = cI`` from the sums ``ff = Σ‖f‖²``, ``fg = Σ f·g``, ``gg = Σ‖g‖²``.

    Returns ``(c, relative_residual)``; ``c = −fg/gg``, clipped at 0 (a negative c is
    not a metric), residual ``sqrt((ff + 2c fg + c² gg)/ff)``.
    """
    if ff <= 0:
        return float("nan"), float("nan")
    c = max(0.0, -fg / gg) if gg > 0 else 0.0
    J = ff + 2 * c * fg + c * c * gg
    return float(c), float(np.sqrt(max(J, 0.0) / ff))


def _objective(M, S, P, ff):
    return ff + 2 * np.sum(M * P.T) + np.sum((M @ S) * M)


def _project_spd(M, floor=1e-10):
    vals, vecs = np.linalg.eigh(0.5 * (M + M.T))
    top = vals.max() if vals.size else 0.0
    if top <= 0:
        return None, vals
    clipped = np.clip(vals, floor * top, None)
    return (vecs * clipped) @ vecs.T, vals


def fit_constant_metric(S, P, ff, refine=100):
    """Constant SPD metric from the sufficient statistics (see module doc).

    Parameters
    ----------
    S : ndarray (n, n)
        ``Σ_k g_k g_kᵀ``.
    P : ndarray (n, n)
        ``Σ_k f_k g_kᵀ``.
    ff : float
        ``Σ_k ‖f_k‖²``.
    refine : int
        Projected-gradient iterations after the SPD projection (if it clipped).

    Returns
    -------
    (M, relative_residual)
        ``M`` SPD (n, n), or ``(None, 1.0)`` when no positive direction exists.
    """
    S = 0.5 * (np.asarray(S, float) + np.asarray(S, float).T)
    P = np.asarray(P, float)
    if ff <= 0:
        return None, float("nan")
    d, Q = np.linalg.eigh(S)
    d = np.clip(d, 0.0, None)
    R = Q.T @ (P + P.T) @ Q
    denom = d[:, None] + d[None, :]
    tol = 1e-12 * max(d.max(), 1e-300)
    X = np.where(denom > tol, -R / np.where(denom > tol, denom, 1.0), 0.0)
    M0 = Q @ X @ Q.T
    M, vals = _project_spd(M0)
    if M is None:
        return None, 1.0
    if refine and np.any(vals < 1e-10 * vals.max()):
        step = 1.0 / (2.0 * max(d.max(), 1e-300))
        best, best_J = M, _objective(M, S, P, ff)
        for _ in range(refine):
            grad = 2 * 0.5 * (P + P.T) + S @ M + M @ S
            candidate, _ = _project_spd(M - step * grad)
            if candidate is None:
                break
            M = candidate
            J = _objective(M, S, P, ff)
            if J < best_J:
                best, best_J = M, J
        M = best
    J = _objective(M, S, P, ff)
    return M, float(np.sqrt(max(J, 0.0) / ff))


def fit_constant_metric_arrays(drift, gradient):
    """:func:`fit_constant_metric` on in-memory arrays ``drift``, ``gradient`` (T, n)."""
    F = np.asarray(drift, float)
    G = np.asarray(gradient, float)
    return fit_constant_metric(G.T @ G, F.T @ G, float(np.sum(F * F)))


def fit_loss_combination(fg, g_norm, f_norm, moving=None):
    """Best non-negative combination of candidate losses (linear programme).

    Parameters
    ----------
    fg : ndarray (T, J)
        ``f_k · g_k^j`` for each record k and candidate loss j.
    g_norm : ndarray (T, J)
        ``‖g_k^j‖``.
    f_norm : ndarray (T,)
        ``‖f_k‖``.
    moving : ndarray of bool (T,), optional
        Records to constrain (default: ``f_norm > 0``).

    Returns
    -------
    dict
        ``weights`` (μ_j, the coefficients of the losses, normalised to sum 1),
        ``margin`` (the worst normalised margin; > 0 means the combination descends
        on every moving record), ``lambda`` (the LP variables).
    """
    from scipy.optimize import linprog

    fg = np.asarray(fg, float)
    g_norm = np.asarray(g_norm, float)
    f_norm = np.asarray(f_norm, float)
    if moving is None:
        moving = f_norm > 0
    T, J = fg.shape
    scale = np.sqrt(np.mean(g_norm[moving] ** 2, axis=0)) if moving.any() else np.ones(J)
    scale = np.where(scale > 0, scale, 1.0)
    C = -fg[moving] / (f_norm[moving, None] * scale[None, :])
    C = np.nan_to_num(C)
    # variables (λ_1..λ_J, t): minimise −t s.t. t − C λ ≤ 0, Σλ = 1, λ ≥ 0
    c = np.zeros(J + 1)
    c[-1] = -1.0
    A_ub = np.hstack([-C, np.ones((C.shape[0], 1))])
    b_ub = np.zeros(C.shape[0])
    A_eq = np.hstack([np.ones((1, J)), np.zeros((1, 1))])
    bounds = [(0, None)] * J + [(None, None)]
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[1.0], bounds=bounds, method="highs")
    if not res.success:
        lam = np.full(J, 1.0 / J)
        margin = float(np.min(C @ lam)) if C.size else float("nan")
    else:
        lam = res.x[:J]
        margin = float(res.x[-1])
    mu = lam / scale
    mu = mu / mu.sum()
    return {"weights": mu, "margin": margin, "lambda": lam}


def verdict(descent_fraction, scalar_residual, scalar_c, constant_residual, n_moving):
    """The verdict from the certificate's numbers (thresholds above)."""
    if n_moving == 0:
        return "fixed-point"
    if descent_fraction < 1.0:
        return "not-descent"
    if scalar_c is not None and scalar_c > 0 and scalar_residual <= GRADIENT_TOL:
        return "gradient"
    if constant_residual is not None and np.isfinite(constant_residual) and constant_residual <= CONSTANT_TOL:
        return "natural-gradient-constant"
    return "natural-gradient"
