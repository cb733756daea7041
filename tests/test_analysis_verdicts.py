"""Verdicts on synthetic trajectories: Euler integration of each rule's expected drift
(no Brian2), and exact linear flows (docs/math.md §6, §8; the verdicts of docs/analysis.md)."""

import numpy as np
import pytest

from plasticity.analysis import (Layout, certify, choose_window, expected_drift, fit_constant_metric_arrays,
                                 fit_loss_combination, mean_value_gradient, quadratic_loss,
                                 rule_losses, window_drift)
from plasticity.analysis.synthetic import euler_trajectory, linear_trajectory
from plasticity.inputs import InputStats
from plasticity.rules import get_rule

N = 6


@pytest.fixture
def gaussian():
    rng = np.random.default_rng(0)
    return InputStats.gaussian(N, rng, spectrum=[4, 2, 1, 0.5, 0.5, 0.5], rotation="random")


def run_rule(rule_name, stats, w0, steps, dt=0.5, eta=0.01, layout=None, **extra):
    rule = get_rule(rule_name)
    params = rule.resolve({"eta": eta, **extra})
    layout = layout or Layout.dense_full(N, 1)
    t, W = euler_trajectory(rule, params, stats, layout, w0, dt, steps)
    f = expected_drift(rule, params, stats, layout, W)
    return t, W, f, layout


def certify_loss(loss, t, W, f):
    v, g = loss.value_and_grad(W)
    return certify(f, g, v, t, loss.name, "expected")


def test_hebbian_variance_is_gradient(gaussian):
    rng = np.random.default_rng(1)
    t, W, f, layout = run_rule("hebbian", gaussian, rng.uniform(-0.3, 0.3, N), 60)
    (loss,) = rule_losses("hebbian", gaussian, layout)
    cert = certify_loss(loss, t, W, f)
    assert cert.verdict == "gradient"
    assert cert.descent_fraction == 1.0
    assert np.degrees(cert.psi).max() < 1e-6
    assert cert.scalar_c == pytest.approx(0.01, rel=1e-9)   # M = ηI
    assert np.all(np.diff(cert.loss) < 0)


def test_oja_rayleigh_is_natural_not_plain(gaussian):
    rng = np.random.default_rng(2)
    t, W, f, layout = run_rule("oja", gaussian, rng.uniform(-0.3, 0.3, N), 400)
    losses = rule_losses("oja", gaussian, layout)
    rayleigh = next(loss for loss in losses if loss.name == "rayleigh")
    cert = certify_loss(rayleigh, t, W, f)
    assert cert.n_moving > 100
    assert np.all(cert.descent[cert.moving])           # descent on every moving record
    assert cert.verdict == "natural-gradient"
    assert cert.scalar_residual > 0.2                   # not a Euclidean gradient field
    assert cert.constant_residual > 0.2
    # it converges to the unit top eigenvector of C
    top = np.linalg.eigh(gaussian.covariance)[1][:, -1]
    assert abs(W[-1] @ top) == pytest.approx(1.0, abs=1e-3)
    # the loss combination of the candidates descends everywhere
    certs = [certify_loss(loss, t, W, f) for loss in losses]
    lp = fit_loss_combination(np.stack([c.fg for c in certs], 1), np.stack([c.g_norm for c in certs], 1),
                              certs[0].f_norm, certs[0].moving)
    assert lp["margin"] > 0 and np.all(lp["weights"] >= 0) and lp["weights"].sum() == pytest.approx(1)


def test_bcm_fast_threshold_is_gradient():
    rng = np.random.default_rng(3)
    patterns = 2.0 * np.eye(4, N) + 0.1
    stats = InputStats.from_patterns(patterns, transfer="relu")
    # state=None: θ = E[σ(y)²], the fast-threshold limit
    t, W, f, layout = run_rule("bcm", stats, rng.uniform(0.1, 0.4, N), 300, dt=0.5, eta=0.05)
    (loss,) = rule_losses("bcm", stats, layout)
    cert = certify_loss(loss, t, W, f)
    assert cert.verdict == "gradient"
    assert cert.n_moving > 20
    # selective: responds to one pattern
    responses = np.maximum(patterns @ W[-1], 0)
    assert np.sum(responses > 0.5 * responses.max()) == 1


def test_bcm_slow_threshold_state_is_used():
    rng = np.random.default_rng(4)
    stats = InputStats.from_patterns(2.0 * np.eye(4, N) + 0.1, transfer="relu")
    layout = Layout.dense_full(N, 1, state=("theta",))
    w0 = np.concatenate([rng.uniform(0.1, 0.4, N), [0.0]])
    t, W, f, _ = run_rule("bcm", stats, w0, 200, dt=0.5, eta=0.05, layout=layout, tau_theta=20.0)
    assert np.ptp(W[:, -1]) > 0          # θ moved
    fast = expected_drift(get_rule("bcm"), get_rule("bcm").resolve({"eta": 0.05}), stats,
                          Layout.dense_full(N, 1), W[:, :N])
    assert not np.allclose(f[:, :N], fast)


def test_linear_drift_constant_metric():
    """ẇ = A(w − w*), A = VΛV⁻¹ real negative: M = VVᵀ, H = −V⁻ᵀΛV⁻¹ (docs/math.md §6)."""
    V = np.array([[1.0, 0.5, 0.2], [0.0, 1.0, 0.7], [0.3, 0.0, 1.0]])
    lam = np.array([-1.0, -2.0, -0.5])
    Vi = np.linalg.inv(V)
    A = V @ np.diag(lam) @ Vi
    H = -Vi.T @ np.diag(lam) @ Vi
    ws = np.array([1.0, -1.0, 0.5])
    t, W, F = linear_trajectory(A, ws, ws + np.array([1.0, 2.0, -1.0]), 0.05, 200)
    loss = quadratic_loss(H, ws)
    v, g = loss.value_and_grad(W)
    cert = certify(F, g, v, t)
    assert cert.verdict == "natural-gradient-constant"
    assert cert.scalar_residual > 0.2
    M = cert.constant_metric
    target = V @ V.T
    np.testing.assert_allclose(M / np.linalg.norm(M), target / np.linalg.norm(target), atol=1e-6)
    # several trajectories fitted at once give the same M
    F2, G2 = [F], [g]
    rng = np.random.default_rng(0)
    for _ in range(3):
        _, W2, Fk = linear_trajectory(A, ws, ws + rng.standard_normal(3), 0.05, 50)
        F2.append(Fk)
        G2.append(loss.grad(W2))
    M2, res = fit_constant_metric_arrays(np.concatenate(F2), np.concatenate(G2))
    assert res < 1e-6
    np.testing.assert_allclose(M2, target, rtol=1e-6, atol=1e-8)


def test_spiral_is_not_constant():
    """Complex eigenvalues: descent on ‖w‖² but no constant metric (docs/math.md §6)."""
    A = np.array([[-0.2, 1.0], [-1.0, -0.2]])
    t, W, F = linear_trajectory(A, np.zeros(2), np.array([1.0, 0.0]), 0.05, 400)
    loss = quadratic_loss(np.eye(2), np.zeros(2))
    cert = certify(F, loss.grad(W), loss.value(W), t)
    assert cert.verdict == "natural-gradient"
    assert cert.constant_residual > 0.5


def test_not_descent_and_fixed_points():
    A = np.array([[0.0, 1.0], [-1.0, 0.0]])     # rotation: f·∇‖w‖² = 0
    t, W, F = linear_trajectory(A, np.zeros(2), np.array([1.0, 0.0]), 0.1, 50)
    loss = quadratic_loss(np.eye(2), np.zeros(2))
    cert = certify(F, loss.grad(W), loss.value(W), t)
    assert cert.verdict == "not-descent"
    # ascent on half the records
    F2 = F.copy()
    F2[::2] = -loss.grad(W)[::2]
    F2[1::2] = loss.grad(W)[1::2]
    F2[:5] = 0.0                                 # fixed points, counted apart
    cert = certify(F2, loss.grad(W), loss.value(W), t)
    assert cert.fixed_points == 5
    assert cert.verdict == "not-descent"
    assert cert.descent_fraction == pytest.approx(
        np.mean([k % 2 == 0 for k in range(5, len(t))]))
    summary = cert.summary()
    assert summary["fixed_points"] == 5 and summary["psi_deg"]["max"] == pytest.approx(180.0)


def test_window_drift_with_mean_value_gradient(gaussian):
    rng = np.random.default_rng(5)
    t, W, _, layout = run_rule("hebbian", gaussian, rng.uniform(-0.3, 0.3, N), 60, dt=0.1)
    h = choose_window(t, W)
    assert h == 1                                 # deterministic trajectory
    f, w0, w1 = window_drift(t, W, h)
    (loss,) = rule_losses("hebbian", gaussian, layout)
    gbar, v0, v1 = mean_value_gradient(loss, w0, w1)
    cert = certify(f, gbar, v0, t[:-h], "variance", "window")
    assert cert.verdict == "gradient"
    assert np.all(cert.descent) and np.all(v1 < v0)


def test_choose_window_on_noisy_trajectory():
    rng = np.random.default_rng(6)
    T, n = 2000, 20
    t = np.arange(T) * 0.01
    drift = np.full(n, 1.0)
    W = t[:, None] * drift + np.cumsum(0.05 * rng.standard_normal((T, n)), axis=0)
    h = choose_window(t, W)
    assert 4 <= h <= 200
