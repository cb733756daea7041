"""Window losses: losses that a drift decreases only over a window of time (docs/math.md §5).

For a drift ``f`` with flow ``φ_s`` and a performance measure ``ℓ`` that is not
monotone along the trajectory, the window loss

    L_T(w) = ∫₀ᵀ ℓ(φ_s(w)) ds

satisfies ``∇L_T(w)·f(w) = ℓ(φ_T(w)) − ℓ(w)``, so the drift is natural gradient
descent on ``L_T`` (docs/math.md §1) wherever ``ℓ`` has decreased after time ``T``.

Computation (:func:`window_losses`): forward sensitivities. Along with the state ``w``
the solver integrates the sensitivity matrix ``S = ∂φ_s/∂w`` (``Ṡ = J(φ_s) S``,
``S(0) = I``; ``J`` from the user's ``jacobian`` or central finite differences),
the running integral of ``ℓ`` and the running integral of ``Sᵀ∇ℓ``:

    L_T = ∫₀ᵀ ℓ(φ_s) ds,        ∇L_T = ∫₀ᵀ S(s)ᵀ ∇ℓ(φ_s) ds.

All records are integrated at once as one stacked ODE (so the drift may be batched),
and every window of a grid is read from a single integration (``t_eval``).

Accuracy: scipy's ``solve_ivp`` (RK45 by default; pass ``method="LSODA"`` or
``"Radau"`` for stiff drifts) with ``rtol = 1e-8``, ``atol = 1e-10`` by default. With
the analytic Jacobian the relative error of ``L_T`` and ``∇L_T`` is then ~1e-7 (the
tests check 1e-6 against the closed form of linear drifts and finite differences);
with finite-difference Jacobians (step ``ε^{1/3} max(1, |w_i|)``) add ~1e-9 relative
per unit time. Every result carries the residual of the identity
``∇L_T·f = ℓ(φ_T) − ℓ(w)`` (``identity_residual``), an end-to-end accuracy check;
descent verdicts whose margin is below it are not to be trusted.

Linear drifts ``f = A w`` with ``ℓ = ‖w‖²`` have the closed form ``L_T = wᵀ W_T w``,
``W_T = ∫₀ᵀ e^{Aᵀs} e^{As} ds`` (:func:`linear_window_matrix`): from the Lyapunov
identity ``AᵀW + WA = e^{AᵀT}e^{AT} − I`` when A is Hurwitz, else by Van Loan's block
exponential. Then ``∇L_T·f = ‖e^{AT}w‖² − ‖w‖²``: ``L_T`` is descended in every
direction iff ``‖e^{AT}‖₂ < 1``.

Reference: Shoji, Suzuki & Kozachkov, arXiv:2409.16422, and docs/math.md §5.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg import expm, solve_continuous_lyapunov

from ..systems.base import finite_difference_jacobian
from .metrics import batch_metric_stats

__all__ = ["as_batched_drift", "as_batched_loss", "finite_difference_jacobian", "window_losses",
           "window_loss", "linear_window_matrix", "linear_window_descent", "smallest_window",
           "WindowResult", "RTOL", "ATOL"]

#: default relative and absolute tolerances of the ODE solver
RTOL = 1e-8
ATOL = 1e-10


# ----------------------------------------------------------------------------------
# Normalising the user's callables

def as_batched_drift(drift, n):
    """A function ``(B, n) -> (B, n)`` from a drift that is either batched or a
    function of one vector ``(n,) -> (n,)`` (detected by comparing both on two rows)."""
    if getattr(drift, "_batched_drift", False):
        return drift
    rng = np.random.default_rng(12345)
    probe = rng.standard_normal((2, n)) * 0.1
    single = np.array([np.asarray(drift(row), float).reshape(n) for row in probe])
    batched = None
    try:
        out = np.asarray(drift(probe), float)
        if out.shape == (2, n) and np.allclose(out, single, rtol=1e-10, atol=1e-12):
            batched = True
    except Exception:  # noqa: BLE001 - a function of one vector only
        batched = False
    if batched:
        def f(W):
            return np.asarray(drift(np.asarray(W, float)), float)
    else:
        def f(W):
            W = np.asarray(W, float)
            return np.array([np.asarray(drift(row), float).reshape(n) for row in W]).reshape(W.shape)
    f._batched_drift = True
    return f


def as_batched_loss(ell):
    """A function ``(B, n) -> (values (B,), gradients (B, n))`` from a
    :class:`plasticity.analysis.losses.Loss` (``value_and_grad``) or a callable with
    the signature of a user loss (``--loss file.py:name``)."""
    function = ell.value_and_grad if hasattr(ell, "value_and_grad") else ell

    def loss(W):
        W = np.asarray(W, float)
        values, grads = function(W)
        return np.asarray(values, float).reshape(W.shape[0]), np.asarray(grads, float).reshape(W.shape)

    return loss


# ----------------------------------------------------------------------------------
# The window loss and its gradient

def window_losses(drift, ell, W, windows, jacobian=None, rtol=RTOL, atol=ATOL, method="RK45"):
    """Window losses ``L_T`` and gradients ``∇L_T`` at many points for many windows.

    Parameters
    ----------
    drift : callable
        ``f(w)``: ``(n,) -> (n,)`` or batched ``(B, n) -> (B, n)``.
    ell : callable or Loss
        The performance measure, ``(B, n) -> (values (B,), gradients (B, n))``.
    W : array_like, shape (B, n) or (n,)
        The points (e.g. the logged records).
    windows : array_like of float
        Window lengths T ≥ 0 (any order).
    jacobian : callable, optional
        ``(B, n) -> (B, n, n)``; central finite differences of ``drift`` otherwise.
    rtol, atol : float
        Tolerances of ``solve_ivp`` (see the module docstring for the accuracy).
    method : str
        ``solve_ivp`` method.

    Returns
    -------
    dict
        ``value`` (B, K) and ``gradient`` (B, K, n) of ``L_T`` for the K windows (in the
        given order), ``end_value`` (B, K) = ``ℓ(φ_T(w))``, ``start_value`` (B,) =
        ``ℓ(w)``, ``drift`` (B, n), ``state`` (B, K, n) = ``φ_T(w)``, and
        ``identity_residual`` (B, K) = ``|∇L_T·f − (ℓ(φ_T) − ℓ(w))|``.
    """
    W = np.atleast_2d(np.asarray(W, float))
    B, n = W.shape
    f = as_batched_drift(drift, n)
    loss = as_batched_loss(ell)
    jac = (lambda X: finite_difference_jacobian(f, X)) if jacobian is None else \
        (lambda X: np.asarray(jacobian(X), float).reshape(X.shape[0], n, n))
    windows = np.asarray(windows, float).reshape(-1)
    if np.any(windows < 0) or not np.all(np.isfinite(windows)):
        raise ValueError("window lengths must be finite and >= 0")
    T_max = float(windows.max()) if windows.size else 0.0
    width = n + n * n + 1 + n

    def unpack(y):
        Y = y.reshape(B, width)
        X = Y[:, :n]
        S = Y[:, n:n + n * n].reshape(B, n, n)
        return X, S

    def rhs(_t, y):
        X, S = unpack(y)
        F = f(X)
        J = jac(X)
        values, grads = loss(X)
        out = np.empty((B, width))
        out[:, :n] = F
        out[:, n:n + n * n] = (J @ S).reshape(B, n * n)
        out[:, n + n * n] = values
        out[:, n + n * n + 1:] = np.einsum("bij,bi->bj", S, grads)
        return out.reshape(-1)

    y0 = np.zeros((B, width))
    y0[:, :n] = W
    y0[:, n:n + n * n] = np.tile(np.eye(n).reshape(-1), (B, 1))
    f0 = f(W)
    start_value, _ = loss(W)
    result = {"value": np.zeros((B, windows.size)), "gradient": np.zeros((B, windows.size, n)),
              "end_value": np.tile(start_value[:, None], (1, windows.size)),
              "start_value": start_value, "drift": f0,
              "state": np.tile(W[:, None, :], (1, windows.size, 1))}
    positive = np.flatnonzero(windows > 0)
    if positive.size:
        times = np.unique(windows[positive])
        sol = solve_ivp(rhs, (0.0, T_max), y0.reshape(-1), method=method, t_eval=times,
                        rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"window loss integration failed: {sol.message}")
        Y = sol.y.T.reshape(times.size, B, width)       # (times, B, width)
        for k in positive:
            i = int(np.searchsorted(times, windows[k]))
            Yk = Y[i]
            result["state"][:, k] = Yk[:, :n]
            result["value"][:, k] = Yk[:, n + n * n]
            result["gradient"][:, k] = Yk[:, n + n * n + 1:]
            result["end_value"][:, k] = loss(Yk[:, :n])[0]
    fg = np.einsum("bkn,bn->bk", result["gradient"], f0)
    result["identity_residual"] = np.abs(fg - (result["end_value"] - start_value[:, None]))
    return result


def window_loss(drift, ell, w, T, jacobian=None, rtol=RTOL, atol=ATOL, method="RK45"):
    """``(L_T(w), ∇L_T(w))`` at one point ``w`` (n,) for one window ``T``."""
    out = window_losses(drift, ell, np.asarray(w, float)[None, :], [T], jacobian, rtol, atol, method)
    return float(out["value"][0, 0]), out["gradient"][0, 0]


# ----------------------------------------------------------------------------------
# Linear drifts: closed form

def linear_window_matrix(A, T, Q=None, method="auto"):
    """``W_T = ∫₀ᵀ e^{Aᵀs} Q e^{As} ds`` (``Q = I`` by default), so that for ``ẇ = Aw``
    and ``ℓ = wᵀQw`` the window loss is ``L_T(w) = wᵀ W_T w`` and ``∇L_T = 2 W_T w``.

    ``method``: ``"lyapunov"`` solves ``AᵀW + WA = e^{AᵀT} Q e^{AT} − Q`` (unique when
    no two eigenvalues of A sum to zero, e.g. A Hurwitz); ``"vanloan"`` reads it off
    the block exponential ``exp([[−Aᵀ, Q], [0, A]] T)`` (always valid); ``"auto"``
    uses Lyapunov when A is Hurwitz, else Van Loan.
    """
    A = np.asarray(A, float)
    n = A.shape[0]
    Q = np.eye(n) if Q is None else np.asarray(Q, float)
    E = expm(A * T)
    if method == "auto":
        method = "lyapunov" if np.max(np.linalg.eigvals(A).real) < 0 else "vanloan"
    if method == "lyapunov":
        # scipy solves a X + X aᴴ = q; with a = Aᵀ: AᵀX + XA = q
        Wt = solve_continuous_lyapunov(A.T, E.T @ Q @ E - Q)
    elif method == "vanloan":
        block = np.zeros((2 * n, 2 * n))
        block[:n, :n] = -A.T
        block[:n, n:] = Q
        block[n:, n:] = A
        F = expm(block * T)
        Wt = F[n:, n:].T @ F[:n, n:]
    else:
        raise ValueError(f"unknown method {method!r} (lyapunov, vanloan, auto)")
    return 0.5 * (Wt + Wt.T)


def linear_window_descent(A, T, directions=None, samples=20000, seed=0):
    """Descent of ``L_T = wᵀW_T w`` by ``ẇ = Aw`` over all directions.

    Returns a dict: ``norm_expAT`` = ``‖e^{AT}‖₂`` (descent everywhere iff < 1),
    ``descends_everywhere``, ``ascent_fraction`` (fraction of directions ``w`` on the
    unit sphere, sampled uniformly, or ``directions`` if given, where ``∇L_T·f ≥ 0``),
    ``worst_psi_deg`` and ``worst_kappa_min`` over those directions (for n = 2 an
    exact sweep of angles, else ``samples`` random directions).
    """
    A = np.asarray(A, float)
    n = A.shape[0]
    if directions is None:
        if n == 2:
            a = np.linspace(0, np.pi, samples, endpoint=False)
            directions = np.stack([np.cos(a), np.sin(a)], axis=1)
        else:
            directions = np.random.default_rng(seed).standard_normal((samples, n))
    X = np.asarray(directions, float)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    F = X @ A.T
    if T == 0:
        G = 2 * X
    else:
        G = 2 * X @ linear_window_matrix(A, T)
    stats = batch_metric_stats(F, G)
    psi = np.degrees(stats["psi"])
    norm = float(np.linalg.norm(expm(A * T), 2))
    return {"T": float(T), "norm_expAT": norm, "descends_everywhere": bool(norm < 1),
            "ascent_fraction": float(np.mean(~stats["descent"])),
            "worst_psi_deg": float(np.nanmax(psi)),
            "worst_kappa_min": float(np.max(stats["kappa_min"]))}


# ----------------------------------------------------------------------------------
# The smallest window that works on a trajectory

@dataclass
class WindowResult:
    """Result of :func:`smallest_window`.

    ``T``: the smallest window of the grid for which the drift descends ``L_T`` at
    every moving record (``None`` if none does). ``grid`` and ``descent_fraction``
    (per window: fraction of moving records with ``∇L_T·f < 0``). ``psi_deg``,
    ``kappa_min``, ``margin`` (``∇L_T·f``), ``value`` per record for the window
    reported (``T`` if found, else the grid's best window, ``T_reported``).
    ``moving``: records with non-zero drift (fixed points are counted apart).
    ``identity_residual``: largest ``|∇L_T·f − (ℓ(φ_T) − ℓ(w))|`` at that window.
    """

    T: float | None
    T_reported: float
    grid: np.ndarray
    descent_fraction: np.ndarray
    psi_deg: np.ndarray
    kappa_min: np.ndarray
    margin: np.ndarray
    value: np.ndarray
    moving: np.ndarray
    identity_residual: float
    records: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    def summary(self):
        def s(x):
            x = np.asarray(x, float)
            x = x[np.isfinite(x)]
            if x.size == 0:
                return {"median": None, "p95": None, "max": None}
            return {"median": float(np.median(x)), "p95": float(np.percentile(x, 95)),
                    "max": float(np.max(x))}

        ok = self.moving
        return {"window": self.T, "window_reported": self.T_reported,
                "grid": [float(t) for t in self.grid],
                "descent_fraction": [float(d) for d in self.descent_fraction],
                "records": int(self.moving.size), "moving": int(ok.sum()),
                "psi_deg": s(self.psi_deg[ok]), "kappa_min": s(self.kappa_min[ok]),
                "identity_residual": float(self.identity_residual)}


def smallest_window(drift, ell, trajectory, grid, jacobian=None, max_records=400, rtol=RTOL,
                    atol=ATOL, method="RK45", fixed_point_rtol=1e-9):
    """The smallest window ``T`` in ``grid`` for which ``drift`` descends ``L_T`` at
    every record of ``trajectory``, with ψ and κ_min per record.

    Parameters
    ----------
    drift, ell, jacobian : see :func:`window_losses`
    trajectory : array_like, shape (T, n)
        Logged states (records).
    grid : array_like of float
        Candidate windows (``T = 0`` means ``ℓ`` itself, with gradient ``∇ℓ``).
    max_records : int
        At most this many records (evenly spaced, first and last included) are used.
    fixed_point_rtol : float
        Records with ``‖f‖ ≤ fixed_point_rtol · max‖f‖`` are fixed points, counted apart.

    Returns
    -------
    WindowResult
    """
    X = np.atleast_2d(np.asarray(trajectory, float))
    idx = np.arange(X.shape[0])
    if X.shape[0] > max_records:
        idx = np.unique(np.linspace(0, X.shape[0] - 1, max_records).round().astype(int))
    X = X[idx]
    grid = np.sort(np.asarray(grid, float).reshape(-1))
    out = window_losses(drift, ell, X, np.maximum(grid, 0), jacobian, rtol, atol, method)
    F = out["drift"]
    fn = np.linalg.norm(F, axis=1)
    moving = fn > fixed_point_rtol * max(fn.max(), np.finfo(float).tiny)
    loss = as_batched_loss(ell)
    G0 = loss(X)[1]
    fractions = []
    for k, T in enumerate(grid):
        G = G0 if T == 0 else out["gradient"][:, k]
        margin = np.einsum("bn,bn->b", G, F)
        fractions.append(float(np.mean(margin[moving] < 0)) if moving.any() else 1.0)
    fractions = np.array(fractions)
    found = np.flatnonzero(fractions >= 1.0)
    k = int(found[0]) if found.size else int(np.argmax(fractions))
    T = float(grid[k]) if found.size else None
    G = G0 if grid[k] == 0 else out["gradient"][:, k]
    stats = batch_metric_stats(F, G)
    return WindowResult(T=T, T_reported=float(grid[k]), grid=grid, descent_fraction=fractions,
                        psi_deg=np.degrees(stats["psi"]), kappa_min=stats["kappa_min"],
                        margin=stats["fg"], value=out["value"][:, k] if grid[k] > 0 else loss(X)[0],
                        moving=moving, identity_residual=float(np.max(out["identity_residual"][:, k])),
                        records=idx)
