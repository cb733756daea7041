"""Quadratic losses from the Lyapunov equation and from a trajectory (LP); linear factorisation."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from plasticity.analysis.linear import factor_linear_drift, fit_linear_drift
from plasticity.analysis.lyapunov import fit_quadratic_loss, local_quadratic_loss

C = np.diag([3.0, 1.5, 0.5])


def oja(w):
    w = np.atleast_2d(w)
    Cw = w @ C
    return Cw - np.einsum("ij,ij->i", w, Cw)[:, None] * w


def trajectory(f, w0, T, n=300):
    t = np.linspace(0, T, n)
    sol = solve_ivp(lambda _t, w: f(w[None])[0], (0, T), w0, t_eval=t, rtol=1e-10, atol=1e-12)
    return sol.y.T


def test_lyapunov_local_loss_oja():
    w_star = np.array([1.0, 0.0, 0.0])
    loc = local_quadratic_loss(drift=oja, w_star=w_star)
    A = loc.A
    assert np.allclose(A.T @ loc.P + loc.P @ A, -np.eye(3), atol=1e-6)
    assert np.all(np.linalg.eigvalsh(loc.P) > 0)
    # descends the true drift near the fixed point
    rng = np.random.default_rng(1)
    X = w_star + 0.01 * rng.standard_normal((50, 3))
    _, G = loc(X)
    assert np.all(np.einsum("ij,ij->i", oja(X), G) < 0)
    with pytest.raises(ValueError, match="Hurwitz"):
        local_quadratic_loss(np.array([[0.0, 1.0], [-1.0, 0.0]]))


def test_lp_finds_loss_for_oja_near_fixed_point():
    W = trajectory(oja, [0.9, 0.25, -0.2], 10.0)
    F = oja(W)
    fit = fit_quadratic_loss(W, F)
    assert fit.exists and fit.margin > 0
    _, G = fit(W)
    moving = np.linalg.norm(F, axis=1) > 1e-9 * np.linalg.norm(F, axis=1).max()
    assert np.all(np.einsum("ij,ij->i", F, G)[moving] < 0)
    assert isinstance(fit.positive_definite, bool)


def test_lp_reports_none_for_rotation():
    R = np.array([[0.0, -1.0], [1.0, 0.0]])
    a = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    W = np.stack([np.cos(a), np.sin(a)], 1) * 1.3
    fit = fit_quadratic_loss(W, W @ R.T)
    assert not fit.exists and fit.margin <= 1e-9
    # 3-d skew rotation too
    R3 = np.array([[0.0, -2.0, 1.0], [2.0, 0.0, -0.5], [-1.0, 0.5, 0.0]])
    W3 = trajectory(lambda w: np.atleast_2d(w) @ R3.T, [1.0, 0.2, -0.3], 2 * np.pi / np.sqrt(4 + 1 + 0.25), 400)
    assert not fit_quadratic_loss(W3, W3 @ R3.T).exists


def test_linear_factorisation_reproduces_A():
    rng = np.random.default_rng(3)
    V = rng.standard_normal((4, 4))
    lam = np.array([-0.5, -1.0, -2.0, -4.0])
    A = V @ np.diag(lam) @ np.linalg.inv(V)
    fac = factor_linear_drift(A)
    assert fac.exists and fac.positive_definite and fac.stable
    assert np.allclose(-fac.M @ fac.H, A, atol=1e-9)
    assert np.all(np.linalg.eigvalsh(fac.M) > 0) and np.all(np.linalg.eigvalsh(fac.H) > 0)
    nonnormal = factor_linear_drift(np.array([[-1.0, 10.0], [0.0, -2.0]]))
    assert nonnormal.exists and np.allclose(-nonnormal.M @ nonnormal.H, [[-1, 10], [0, -2]])


def test_linear_factorisation_refuses():
    spiral = factor_linear_drift(np.array([[-0.1, -1.0], [1.0, -0.1]]))
    assert not spiral.exists and "complex" in spiral.reason
    jordan = factor_linear_drift(np.array([[-1.0, 1.0], [0.0, -1.0]]))
    assert not jordan.exists and "diagonalizable" in jordan.reason
    unstable = factor_linear_drift(np.array([[1.0, 0.0], [0.0, -2.0]]))
    assert unstable.exists and not unstable.positive_definite and "unstable" in unstable.reason


def test_fit_linear_drift():
    A = np.array([[-1.0, 10.0], [0.0, -2.0]])
    w_star = np.array([0.5, -1.0])
    W = np.random.default_rng(0).standard_normal((30, 2))
    A_fit, ws, res = fit_linear_drift(W, (W - w_star) @ A.T)
    assert np.allclose(A_fit, A) and np.allclose(ws, w_star) and res < 1e-10
