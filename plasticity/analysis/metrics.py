"""Riemannian metrics that turn an update into natural gradient descent (docs/math.md §1–3).

Given an update (or drift) ``f`` and the gradient ``g = ∇L`` of a loss at the same
point, an SPD matrix ``M`` with ``f = −M g`` exists iff ``f·g < 0`` (docs/math.md §1).
Among all such matrices (the canonical family of docs/math.md §2), the one with the
smallest condition number is (docs/math.md §3)::

    M_opt = α (I + b̂ b̂ᵀ − â âᵀ),   a = −g, b = f, α = ‖b‖² / (aᵀb),

with eigenvalues ``α(1 − sin ψ)``, ``α(1 + sin ψ)`` (in span{a, b}) and ``α``
(multiplicity n − 2), so ``κ_min = (1 + sin ψ)/(1 − sin ψ)``, where ψ is the angle
between ``f`` and ``−g``. Everything here is O(n) per record: the n × n matrix is
formed only by :meth:`MinConditionMetric.dense` and :meth:`inverse_dense`.

Reference: L. Shoji, K. Suzuki, L. Kozachkov, "Is All Learning (Natural) Gradient
Descent?", arXiv:2409.16422 (2024).
"""

import numpy as np

__all__ = [
    "MinConditionMetric",
    "min_condition_metric",
    "canonical_metric",
    "random_admissible_metric",
    "angle",
    "batch_metric_stats",
    "kappa_from_psi",
]


def _as_vector(x, name):
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a vector, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has non-finite entries")
    return x


def angle(u, v):
    """Angle between the rows of ``u`` and ``v`` (radians), accurate near 0 and π/2.

    Uses ``ψ = 2 arcsin(‖û − v̂‖ / 2)``, which, unlike ``arccos(û·v̂)``, keeps full
    relative precision for small angles. Rows with a zero vector give NaN.
    """
    u = np.asarray(u, float)
    v = np.asarray(v, float)
    nu = np.linalg.norm(u, axis=-1, keepdims=True)
    nv = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        chord = np.linalg.norm(u / nu - v / nv, axis=-1)
        return 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def kappa_from_psi(psi):
    """``κ_min(ψ) = (1 + sin ψ)/(1 − sin ψ) = ((1 + sin ψ)/cos ψ)²`` (docs/math.md §3).

    The second form avoids the cancellation of ``1 − sin ψ`` near 90°. ``inf`` for
    ψ ≥ 90° (no metric exists), NaN for NaN.
    """
    psi = np.asarray(psi, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.cos(psi)
        k = ((1.0 + np.sin(psi)) / c) ** 2
    return np.where(psi >= np.pi / 2, np.inf, k)


class MinConditionMetric:
    """The SPD metric ``M`` of smallest condition number with ``update = −M gradient``.

    Never stores an n × n matrix: ``M v = α (v + b̂ (b̂·v) − â (â·v))`` costs O(n)
    (docs/math.md §3). Build it with :func:`min_condition_metric`.

    Attributes
    ----------
    psi : float
        Angle ψ (radians) between the update and the steepest-descent direction −g.
    alpha : float
        Scale ``α = ‖f‖² / (−f·g)``: the step of plain gradient descent when ψ = 0.
    n : int
        Dimension.
    """

    def __init__(self, update, gradient):
        b = _as_vector(update, "update")
        a = -_as_vector(gradient, "gradient")
        if a.shape != b.shape:
            raise ValueError(f"update and gradient differ in shape: {b.shape} vs {a.shape}")
        ab = float(a @ b)
        if not ab > 0:
            if not np.any(b):
                raise ValueError("the update is zero (a fixed point): every SPD metric "
                                 "maps the gradient to it, none is singled out")
            raise ValueError(f"update·gradient = {-ab:.6g} >= 0: the update is not a strict "
                             "descent direction, so no SPD metric maps -gradient to it "
                             "(docs/math.md §1)")
        na = np.linalg.norm(a)
        nb = np.linalg.norm(b)
        self.n = a.shape[0]
        self._a = a / na
        self._b = b / nb
        self.cos_psi = ab / (na * nb)
        self.psi = float(angle(self._b, self._a))
        self.sin_psi = float(np.sin(self.psi))
        self.alpha = nb * nb / ab

    # -- the metric -------------------------------------------------------------
    def matvec(self, v):
        """``M v = α (v + b̂ (b̂·v) − â (â·v))``; ``v`` of shape (n,) or (n, k)."""
        v = np.asarray(v, float)
        return self.alpha * (v + np.multiply.outer(self._b, self._b @ v)
                             - np.multiply.outer(self._a, self._a @ v))

    def dense(self):
        """The n × n matrix ``α (I + b̂ b̂ᵀ − â âᵀ)`` (for small n and for tests)."""
        return self.alpha * (np.eye(self.n) + np.outer(self._b, self._b) - np.outer(self._a, self._a))

    def eigenvalues(self):
        """All n eigenvalues, ascending: ``α(1 − sin ψ)``, ``α`` (n − 2 times),
        ``α(1 + sin ψ)``. For n = 1 just ``α``."""
        if self.n == 1:
            return np.array([self.alpha])
        # α(1 − sin ψ) = α cos²ψ / (1 + sin ψ), without cancellation near 90°
        low = self.alpha * self.cos_psi ** 2 / (1.0 + self.sin_psi)
        return np.concatenate([[low], np.full(self.n - 2, self.alpha), [self.alpha * (1.0 + self.sin_psi)]])

    def condition_number(self):
        """``κ_min = (1 + sin ψ)/(1 − sin ψ)``, the smallest over all admissible
        metrics (Kantorovich, docs/math.md §3)."""
        return 1.0 if self.n == 1 else float(kappa_from_psi(self.psi))

    # -- its inverse, the Riemannian metric G = M⁻¹ ------------------------------
    def inverse_matvec(self, v):
        """``M⁻¹ v = (1/α)[v − (â (b̂·v) + b̂ (â·v))/cos ψ + 2 â (â·v)/cos²ψ]``."""
        v = np.asarray(v, float)
        c = self.cos_psi
        av = self._a @ v
        bv = self._b @ v
        return (v - (np.multiply.outer(self._a, bv) + np.multiply.outer(self._b, av)) / c
                + 2.0 * np.multiply.outer(self._a, av) / c ** 2) / self.alpha

    def inverse_dense(self):
        """The n × n matrix ``G = M⁻¹`` (for small n and for tests)."""
        return self.inverse_matvec(np.eye(self.n))

    def __repr__(self):
        return (f"MinConditionMetric(n={self.n}, psi={np.degrees(self.psi):.4g} deg, "
                f"alpha={self.alpha:.4g}, kappa={self.condition_number():.4g})")


def min_condition_metric(update, gradient):
    """The metric of smallest condition number making ``update`` natural gradient
    descent: ``update = −M gradient`` with ``M`` SPD (docs/math.md §3).

    Parameters
    ----------
    update : array_like, shape (n,)
        The update or drift ``f``.
    gradient : array_like, shape (n,)
        The loss gradient ``g`` at the same point.

    Returns
    -------
    MinConditionMetric
        Matrix-free: ``matvec``, ``dense``, ``eigenvalues``, ``condition_number``,
        ``psi`` (radians), ``alpha``, ``inverse_matvec``, ``inverse_dense``.

    Raises
    ------
    ValueError
        If ``update·gradient >= 0`` (no SPD metric exists, docs/math.md §1).
    """
    return MinConditionMetric(update, gradient)


def canonical_metric(update, gradient, reference=None):
    """Member of the canonical family built from a reference metric (BFGS form,
    docs/math.md §2)::

        M = M₀ − M₀ a aᵀ M₀ / (aᵀ M₀ a) + b bᵀ / (bᵀ a),   a = −g, b = f.

    Admissible (SPD with ``M a = b``) for every SPD ``M₀`` when ``aᵀb > 0``.

    Parameters
    ----------
    update, gradient : array_like, shape (n,)
    reference : array_like, shape (n, n), optional
        SPD reference ``M₀``; the identity by default.

    Returns
    -------
    ndarray, shape (n, n)
    """
    b = _as_vector(update, "update")
    a = -_as_vector(gradient, "gradient")
    ab = float(a @ b)
    if not ab > 0:
        raise ValueError(f"update·gradient = {-ab:.6g} >= 0: no SPD metric maps -gradient "
                         "to the update (docs/math.md §1)")
    M0 = np.eye(a.size) if reference is None else np.asarray(reference, float)
    Ma = M0 @ a
    M = M0 - np.outer(Ma, Ma) / (a @ Ma) + np.outer(b, b) / ab
    return 0.5 * (M + M.T)


def random_admissible_metric(update, gradient, rng):
    """A random member ``M = b bᵀ/(bᵀa) + Π B Π`` of the canonical family (docs/math.md §2),
    with ``B`` a random SPD matrix and ``Π = I − â âᵀ``, so ``P = Π B Π ⪰ 0`` has null
    space exactly span{a}. Dense; for tests."""
    b = _as_vector(update, "update")
    a = -_as_vector(gradient, "gradient")
    n = a.size
    X = rng.standard_normal((n, n))
    B = X @ X.T / n + rng.uniform(0.01, 1.0) * np.eye(n)
    ah = a / np.linalg.norm(a)
    Pi = np.eye(n) - np.outer(ah, ah)
    M = np.outer(b, b) / (a @ b) + Pi @ B @ Pi
    return 0.5 * (M + M.T)


def batch_metric_stats(drift, gradient):
    """ψ, κ_min, α and the descent flag for every record at once (vectorised, O(nT)).

    Parameters
    ----------
    drift, gradient : ndarray, shape (T, n)

    Returns
    -------
    dict of (T,) arrays
        ``psi`` (radians; NaN where ``f`` or ``g`` is zero), ``kappa_min`` (``inf``
        where ψ ≥ 90°), ``alpha`` (NaN where no metric exists), ``descent``
        (``f·g < 0``), ``fg`` (``f·g``), ``f_norm``, ``g_norm``.
    """
    F = np.asarray(drift, float)
    G = np.asarray(gradient, float)
    fg = np.einsum("ij,ij->i", F, G)
    ff = np.einsum("ij,ij->i", F, F)
    gg = np.einsum("ij,ij->i", G, G)
    psi = angle(F, -G)
    descent = fg < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(descent, ff / -fg, np.nan)
    kappa = kappa_from_psi(psi)
    return {"psi": psi, "kappa_min": kappa, "alpha": alpha, "descent": descent, "fg": fg,
            "f_norm": np.sqrt(ff), "g_norm": np.sqrt(gg)}
