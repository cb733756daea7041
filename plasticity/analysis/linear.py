"""Constant metric and quadratic loss of a linear drift (docs/math.md §6).

A linear drift ``f(w) = A(w − w*)`` is natural gradient descent with one constant SPD
metric ``M`` on the quadratic loss ``½(w − w*)ᵀH(w − w*)`` (``A = −MH``) iff ``A`` is
diagonalizable with real eigenvalues. Then, with ``A = VΛV⁻¹``:

    M = V Vᵀ  (SPD),      H = −V⁻ᵀ Λ V⁻¹  (symmetric),      −MH = VΛV⁻¹ = A,

and ``H ≻ 0`` iff every eigenvalue is negative (A stable). The factorisation is not
unique (any rescaling of the eigenvectors gives another); this one normalises the
columns of V to unit length. When it does not exist, :func:`factor_linear_drift` says
why: complex eigenvalues (stable spirals need a state-dependent metric), a defective
(non-diagonalizable) A, or — when it exists but H is not positive definite — an
unstable or marginal direction.

:func:`fit_linear_drift` estimates ``A`` and ``w*`` from records and drifts by least
squares, so a logged trajectory of a linear rule can be factored.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["LinearFactorization", "factor_linear_drift", "fit_linear_drift"]


@dataclass
class LinearFactorization:
    """Result of :func:`factor_linear_drift`.

    ``exists``: ``A = −MH`` with M SPD and H symmetric. ``M``, ``H``, ``V`` (unit
    columns), ``eigenvalues`` (of A, sorted ascending by real part), ``stable`` (all
    eigenvalues < 0), ``positive_definite`` (H ≻ 0, i.e. the loss has a minimum at
    w*), ``residual`` (``‖A + MH‖/‖A‖``), ``condition_V`` and ``reason`` (why not, or
    a caveat; empty when all is well).
    """

    exists: bool
    M: np.ndarray | None
    H: np.ndarray | None
    V: np.ndarray | None
    eigenvalues: np.ndarray
    stable: bool
    positive_definite: bool
    residual: float
    condition_V: float
    reason: str


def factor_linear_drift(A, imag_tol=1e-9, cond_max=1e10):
    """Factor ``A = −MH`` (docs/math.md §6), or say why not.

    Parameters
    ----------
    A : array_like (n, n)
    imag_tol : float
        Eigenvalues with ``|Im λ| > imag_tol · max(1, ‖A‖)`` are complex.
    cond_max : float
        An eigenvector matrix with condition number above this means A is (numerically)
        not diagonalizable.
    """
    A = np.asarray(A, float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be square, got shape {A.shape}")
    scale = max(1.0, float(np.linalg.norm(A, 2)))
    lam, V = np.linalg.eig(A)
    order = np.argsort(lam.real)
    lam, V = lam[order], V[:, order]
    stable = bool(np.all(lam.real < 0))
    if np.any(np.abs(lam.imag) > imag_tol * scale):
        pair = lam[np.argmax(np.abs(lam.imag))]
        return LinearFactorization(False, None, None, None, lam, stable, False, np.nan, np.nan,
                                   f"complex eigenvalues (e.g. {pair.real:.4g} ± {abs(pair.imag):.4g}i): "
                                   "rotation; no constant metric and quadratic loss (a stable "
                                   "spiral needs a state-dependent metric)")
    lam, V = lam.real, V.real
    V = V / np.linalg.norm(V, axis=0, keepdims=True)
    cond = float(np.linalg.cond(V))
    if not np.isfinite(cond) or cond > cond_max:
        return LinearFactorization(False, None, None, None, lam, stable, False, np.nan, cond,
                                   f"not diagonalizable (eigenvector matrix condition number "
                                   f"{cond:.3g}): a Jordan block; no constant metric")
    Vinv = np.linalg.inv(V)
    M = V @ V.T
    H = -Vinv.T @ np.diag(lam) @ Vinv
    M, H = 0.5 * (M + M.T), 0.5 * (H + H.T)
    residual = float(np.linalg.norm(A + M @ H) / max(np.linalg.norm(A), np.finfo(float).tiny))
    pd = bool(np.all(lam < 0))
    reason = ""
    if not pd:
        if np.any(lam > 0):
            reason = ("A has positive eigenvalues (unstable): the factorisation exists but H is "
                      "indefinite, so the 'loss' has a saddle, not a minimum, at w*")
        else:
            reason = ("A has a zero eigenvalue: H is singular (a line of fixed points)")
    return LinearFactorization(True, M, H, V, lam, stable, pd, residual, cond, reason)


def fit_linear_drift(weights, drifts):
    """Least-squares fit ``f ≈ A w + c`` over records; returns ``(A, w_star, residual)``
    with ``w* = −A⁻¹c`` (``None`` if A is singular) and the relative residual
    ``‖F − (WAᵀ + c)‖/‖F‖``."""
    W = np.atleast_2d(np.asarray(weights, float))
    F = np.atleast_2d(np.asarray(drifts, float))
    X = np.hstack([W, np.ones((W.shape[0], 1))])
    coef, *_ = np.linalg.lstsq(X, F, rcond=None)
    A = coef[:-1].T
    c = coef[-1]
    residual = float(np.linalg.norm(F - X @ coef) / max(np.linalg.norm(F), np.finfo(float).tiny))
    try:
        w_star = -np.linalg.solve(A, c)
    except np.linalg.LinAlgError:
        w_star = None
    return A, w_star, residual
