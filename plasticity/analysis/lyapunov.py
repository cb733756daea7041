"""Quadratic losses from Lyapunov equations and from a logged trajectory (docs/math.md §6).

- :func:`local_quadratic_loss`: near a stable fixed point ``w*`` with Jacobian ``A``
  (Hurwitz), ``AᵀP + PA = −Q`` (``Q ≻ 0``, identity by default) has a unique SPD
  solution and ``L(w) = ½(w − w*)ᵀP(w − w*)`` is a local Lyapunov function: the
  linearised drift ``A(w − w*)`` has ``∇L·f = −½(w−w*)ᵀQ(w−w*) < 0``.
- :func:`fit_quadratic_loss`: a quadratic loss ``L(w) = ½wᵀHw + bᵀw`` (or
  ``½(w−c)ᵀH(w−c)`` for a given centre ``c``) fitted to a whole trajectory so that the
  drift descends it at every record: a linear programme on the entries of H (and b)
  that maximises the worst margin

      m = min_k  −f_k·(H w_k + b) / (‖f_k‖ s_k),    s_k = ‖w_k − w_ref‖ + ε,

  subject to the normalisation ``|H_ij| ≤ 1``, ``|b_i| ≤ 1`` (the constraints are
  homogeneous, so some bound is needed; ``w_ref`` is the centre, or the last record;
  the scale ``s_k`` only weighs records against each other, it never changes the sign
  of a margin, hence never whether a loss exists). ``m > 0``: a loss exists and is
  returned; ``m ≤ 0``: no quadratic loss is descended at every record. H need not be
  positive definite for the drift to descend it along the trajectory; whether it is
  is reported (``positive_definite``).

A recurrent trajectory (a closed orbit) admits no loss at all (docs/math.md §7): e.g. for a
rotation ``ẇ = Rw`` (R skew) sampled over a full turn, ``Σ_k f_k·∇L(w_k) = 0`` for every
quadratic L, so the best margin is 0.
"""

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_continuous_lyapunov
from scipy.optimize import linprog

__all__ = ["local_quadratic_loss", "LocalQuadraticLoss", "fit_quadratic_loss", "QuadraticFit",
           "MAX_FIT_DIMENSION"]

#: the LP has n(n+1)/2 + n variables; beyond this dimension it is refused
MAX_FIT_DIMENSION = 60


def _quadratic_function(H, b, c=None):
    """The batched loss ``(T, n) -> (values, gradients)`` of ``½wᵀHw + bᵀw`` (or of
    ``½(w−c)ᵀH(w−c)``)."""
    H = np.asarray(H, float)
    b = np.zeros(H.shape[0]) if b is None else np.asarray(b, float)
    c = None if c is None else np.asarray(c, float)

    def function(w):
        w = np.atleast_2d(np.asarray(w, float))
        x = w - c if c is not None else w
        Hx = x @ H
        values = 0.5 * np.einsum("ij,ij->i", x, Hx) + x @ b
        return values, Hx + b

    return function


@dataclass
class LocalQuadraticLoss:
    """``L(w) = ½(w − w*)ᵀP(w − w*)`` from ``AᵀP + PA = −Q``.

    Attributes: ``P`` (SPD), ``w_star``, ``A`` (the Jacobian used), ``Q``,
    ``eigenvalues_A``; call it on ``(T, n)`` records for ``(values, gradients)``.
    """

    P: np.ndarray
    w_star: np.ndarray
    A: np.ndarray
    Q: np.ndarray
    eigenvalues_A: np.ndarray

    def __call__(self, w):
        return _quadratic_function(self.P, None, self.w_star)(w)


def local_quadratic_loss(A=None, w_star=None, Q=None, drift=None):
    """The local quadratic loss of a stable fixed point (docs/math.md §6).

    Parameters
    ----------
    A : array_like (n, n), optional
        The Jacobian of the drift at ``w_star``. If omitted, computed from ``drift``
        by central finite differences.
    w_star : array_like (n,)
        The fixed point (zeros by default when ``A`` is given).
    Q : array_like (n, n), optional
        SPD right-hand side (identity by default).
    drift : callable, optional
        ``f(w)`` (single or batched), used when ``A`` is not given.

    Raises ``ValueError`` when A is not Hurwitz (no SPD solution: the fixed point is
    not asymptotically stable, so no local quadratic Lyapunov function exists).
    """
    if A is None:
        if drift is None or w_star is None:
            raise ValueError("give the Jacobian A, or the drift and the fixed point w_star")
        from .window import as_batched_drift, finite_difference_jacobian

        w_star = np.asarray(w_star, float)
        f = as_batched_drift(drift, w_star.size)
        A = finite_difference_jacobian(f, w_star[None, :])[0]
    A = np.asarray(A, float)
    n = A.shape[0]
    w_star = np.zeros(n) if w_star is None else np.asarray(w_star, float)
    Q = np.eye(n) if Q is None else np.asarray(Q, float)
    eig = np.linalg.eigvals(A)
    if not np.max(eig.real) < 0:
        raise ValueError(f"the Jacobian is not Hurwitz (largest real part of an eigenvalue "
                         f"{np.max(eig.real):.4g} >= 0): no quadratic Lyapunov loss at this point")
    # scipy solves a X + X aᴴ = q; with a = Aᵀ, q = −Q: AᵀP + PA = −Q
    P = solve_continuous_lyapunov(A.T, -Q)
    P = 0.5 * (P + P.T)
    return LocalQuadraticLoss(P=P, w_star=w_star, A=A, Q=Q, eigenvalues_A=eig)


@dataclass
class QuadraticFit:
    """Result of :func:`fit_quadratic_loss`.

    ``exists``: a quadratic loss is descended at every moving record (``margin > tol``).
    ``margin``: the worst normalised margin ``min_k −f̂_k·g_k / s_k`` (> 0 iff it exists).
    ``H`` (symmetric), ``b`` (zeros when a centre was given), ``center`` (the given
    centre, or ``−H⁻¹b`` when H is invertible, else ``None``), ``positive_definite``,
    ``eigenvalues_H``, ``margins`` (per record, NaN at fixed points), ``moving``,
    ``status`` (the LP's message). Call it on ``(T, n)`` for ``(values, gradients)``.
    """

    exists: bool
    margin: float
    H: np.ndarray
    b: np.ndarray
    center: np.ndarray | None
    positive_definite: bool
    eigenvalues_H: np.ndarray
    margins: np.ndarray
    moving: np.ndarray
    status: str

    def __call__(self, w):
        return _quadratic_function(self.H, self.b)(w)

    def summary(self):
        return {"exists": bool(self.exists), "margin": float(self.margin),
                "positive_definite": bool(self.positive_definite),
                "eigenvalues_H": [float(x) for x in self.eigenvalues_H],
                "records": int(self.moving.size), "moving": int(self.moving.sum())}


def fit_quadratic_loss(weights, drifts, center=None, tol=1e-9, fixed_point_rtol=1e-9,
                       max_records=2000):
    """Fit a quadratic loss that the drift descends at every record (LP, see module doc).

    Parameters
    ----------
    weights, drifts : array_like, shape (T, n)
        The records ``w_k`` and the drift ``f_k`` at each.
    center : array_like (n,), optional
        Fit ``½(w−c)ᵀH(w−c)`` with this centre (no linear term); by default the
        linear term ``b`` is free (``½wᵀHw + bᵀw``).
    tol : float
        A margin above ``tol`` counts as existence.
    fixed_point_rtol : float
        Records with ``‖f_k‖ ≤ fixed_point_rtol · max‖f‖`` are fixed points (skipped).
    max_records : int
        At most this many records (evenly spaced) enter the LP.

    Returns
    -------
    QuadraticFit
    """
    Wfull = np.atleast_2d(np.asarray(weights, float))
    Ffull = np.atleast_2d(np.asarray(drifts, float))
    if Wfull.shape != Ffull.shape:
        raise ValueError(f"weights {Wfull.shape} and drifts {Ffull.shape} differ in shape")
    T, n = Wfull.shape
    if n > MAX_FIT_DIMENSION:
        raise ValueError(f"n = {n} > {MAX_FIT_DIMENSION}: the LP on the n(n+1)/2 entries of H "
                         "would be too large; fit a subspace or use a window/Lyapunov loss")
    fn_full = np.linalg.norm(Ffull, axis=1)
    moving_full = fn_full > fixed_point_rtol * max(fn_full.max(), np.finfo(float).tiny)
    idx = np.flatnonzero(moving_full)
    if idx.size > max_records:
        idx = idx[np.unique(np.linspace(0, idx.size - 1, max_records).round().astype(int))]
    W, F = Wfull[idx], Ffull[idx]
    free_b = center is None
    ref = Wfull[-1] if center is None else np.asarray(center, float)
    X = W - ref if not free_b else W
    scale = np.linalg.norm(W - ref, axis=1)
    scale = scale + 1e-12 * max(scale.max(), 1.0) if scale.size else scale
    Fh = F / np.linalg.norm(F, axis=1, keepdims=True)
    iu, ju = np.triu_indices(n)
    # f·Hx = Σ_{i≤j} H_ij (f_i x_j + f_j x_i) for i<j, f_i x_i for i = j
    coeff_H = Fh[:, iu] * X[:, ju] + np.where(iu != ju, 1.0, 0.0) * Fh[:, ju] * X[:, iu]
    blocks = [coeff_H]
    if free_b:
        blocks.append(Fh)
    coeff = np.hstack(blocks) / scale[:, None]          # row k: f̂_k·g_k / s_k
    nvar = coeff.shape[1]
    # variables: (θ, t); maximise t s.t. coeff θ + t ≤ 0, |θ| ≤ 1
    c = np.zeros(nvar + 1)
    c[-1] = -1.0
    A_ub = np.hstack([coeff, np.ones((coeff.shape[0], 1))])
    b_ub = np.zeros(coeff.shape[0])
    bounds = [(-1.0, 1.0)] * nvar + [(None, None)]
    if coeff.shape[0] == 0:
        raise ValueError("no moving records: every record is a fixed point")
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if not res.success:
        raise RuntimeError(f"LP failed: {res.message}")
    theta = res.x[:-1]
    H = np.zeros((n, n))
    H[iu, ju] = theta[:iu.size]
    H = H + np.triu(H, 1).T
    b = theta[iu.size:] if free_b else np.zeros(n)
    margin = float(res.x[-1])
    # margins on all moving records (the LP may have used a subsample)
    Xall = Wfull - ref if not free_b else Wfull
    sall = np.linalg.norm(Wfull - ref, axis=1) + 1e-12 * max(scale.max(), 1.0)
    G = Xall @ H + b
    with np.errstate(invalid="ignore", divide="ignore"):
        margins = -np.einsum("ij,ij->i", Ffull, G) / (fn_full * sall)
    margins[~moving_full] = np.nan
    if np.any(moving_full):
        margin = float(min(margin, np.nanmin(margins)))
    eig = np.linalg.eigvalsh(H)
    if free_b:
        try:
            centre = -np.linalg.solve(H, b) if abs(eig).min() > 1e-9 * max(abs(eig).max(), 1e-300) else None
        except np.linalg.LinAlgError:
            centre = None
        fit_b = b
    else:
        centre = ref
        fit_b = -H @ ref          # ½(w−c)ᵀH(w−c) = ½wᵀHw − (Hc)ᵀw + const
    return QuadraticFit(exists=bool(margin > tol), margin=margin, H=H, b=fit_b, center=centre,
                        positive_definite=bool(eig.min() > 0), eigenvalues_H=eig, margins=margins,
                        moving=moving_full, status=str(res.message))
