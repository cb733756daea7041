"""Window losses (docs/math.md §5): gradients, the closed form, the LTI example's numbers."""

import numpy as np
import pytest
from scipy.linalg import expm

from plasticity.analysis.window import (linear_window_descent, linear_window_matrix, smallest_window,
                                        window_loss, window_losses)

A = np.array([[-1.0, 10.0], [0.0, -2.0]])


def norm2(W):
    W = np.atleast_2d(W)
    return np.sum(W ** 2, axis=1), 2 * W


def test_expm_norms_match_math():
    expected = {0.1: 1.40, 0.5: 2.49, 1.0: 2.36, 2.0: 1.18, 3.0: 0.476}
    for T, value in expected.items():
        assert np.linalg.norm(expm(A * T), 2) == pytest.approx(value, abs=0.006)
        assert linear_window_descent(A, T, samples=2000)["descends_everywhere"] == (value < 1)


def test_norm_not_descended_everywhere():
    eig = np.linalg.eigvalsh(A + A.T)
    assert eig == pytest.approx([-13.05, 7.05], abs=0.01)
    res = linear_window_descent(A, 0.0)
    assert 0.35 < res["ascent_fraction"] < 0.45          # "~40% of directions"


def test_window_T3_descends_everywhere_T01_not():
    good = linear_window_descent(A, 3.0)
    bad = linear_window_descent(A, 0.1)
    assert good["ascent_fraction"] == 0 and bad["ascent_fraction"] > 0.1
    assert good["worst_psi_deg"] == pytest.approx(89.75, abs=0.05)
    assert 1e5 < good["worst_kappa_min"] < 4e5


def test_lyapunov_and_vanloan_agree_with_quadrature():
    T = 1.3
    s = np.linspace(0, T, 4001)
    integrand = np.array([expm(A.T * t) @ expm(A * t) for t in s])
    quad = np.trapezoid(integrand, s, axis=0) if hasattr(np, "trapezoid") else np.trapz(integrand, s, axis=0)
    for method in ("lyapunov", "vanloan"):
        assert np.allclose(linear_window_matrix(A, T, method=method), quad, rtol=1e-5, atol=1e-6)
    # unstable A: Van Loan only
    B = np.array([[0.2, 1.0], [0.0, -1.0]])
    WB = linear_window_matrix(B, 0.7)
    sB = np.linspace(0, 0.7, 2001)
    qB = np.array([expm(B.T * t) @ expm(B * t) for t in sB])
    qB = (np.trapezoid if hasattr(np, "trapezoid") else np.trapz)(qB, sB, axis=0)
    assert np.allclose(WB, qB, rtol=1e-5)


def test_sensitivities_match_closed_form_linear():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 2))
    out = window_losses(lambda w: A @ w, norm2, X, [0.5, 3.0], jacobian=lambda W: np.broadcast_to(A, (len(W), 2, 2)))
    for k, T in enumerate([0.5, 3.0]):
        Wt = linear_window_matrix(A, T)
        assert np.allclose(out["value"][:, k], np.einsum("bi,ij,bj->b", X, Wt, X), rtol=1e-6)
        assert np.allclose(out["gradient"][:, k], 2 * X @ Wt, rtol=1e-6, atol=1e-8)
    assert out["identity_residual"].max() < 1e-6


def test_gradient_matches_finite_differences_nonlinear():
    # a nonlinear drift (damped pendulum-like) and a non-quadratic measure; FD Jacobian
    def drift(w):
        return np.array([w[1], -np.sin(w[0]) - 0.3 * w[1] + 0.1 * w[0] * w[1]])

    def ell(W):
        W = np.atleast_2d(W)
        v = np.cos(W[:, 0]) * W[:, 1] ** 2 + W[:, 0] ** 4
        g = np.stack([-np.sin(W[:, 0]) * W[:, 1] ** 2 + 4 * W[:, 0] ** 3, 2 * np.cos(W[:, 0]) * W[:, 1]], 1)
        return v, g

    w = np.array([0.7, -0.4])
    T = 1.7
    value, grad = window_loss(drift, ell, w, T)
    h = 1e-5
    fd = np.array([(window_loss(drift, ell, w + h * e, T)[0] - window_loss(drift, ell, w - h * e, T)[0]) / (2 * h)
                   for e in np.eye(2)])
    assert np.allclose(grad, fd, rtol=1e-5, atol=1e-7)
    # ∇L_T·f = ℓ(φ_T) − ℓ(w)
    out = window_losses(drift, ell, w, [T])
    assert out["identity_residual"][0, 0] < 1e-7


def test_smallest_window_on_lti_trajectory():
    from scipy.integrate import solve_ivp

    t = np.linspace(0, 8, 201)
    traj = solve_ivp(lambda _t, w: A @ w, (0, 8), [0.0, 1.0], t_eval=t, rtol=1e-10, atol=1e-12).y.T
    drift = lambda W: np.atleast_2d(W) @ A.T  # noqa: E731 (batched)
    res = smallest_window(drift, norm2, traj, [0.0, 0.1, 3.0])
    assert res.descent_fraction[0] < 1 and res.descent_fraction[1] < 1    # ‖w‖², T = 0.1: no
    assert res.descent_fraction[2] == 1 and res.T == 3.0                  # T = 3: yes
    assert np.all(res.psi_deg[res.moving] < 90)
    assert np.allclose(res.kappa_min, (1 + np.sin(np.radians(res.psi_deg))) / (1 - np.sin(np.radians(res.psi_deg))),
                       rtol=1e-6)
