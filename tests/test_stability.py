"""Linear stability of the joint expected drift (plasticity.analysis.stability)."""

import tomllib

import numpy as np
import pytest

from conftest import EXPERIMENTS
from plasticity.analysis import Layout, analyze_file
from plasticity.analysis.stability import linear_stability
from plasticity.inputs import InputStats
from plasticity.rules import get_rule


def test_linear_system_eigenvalues_are_the_matrix_eigenvalues():
    rng = np.random.default_rng(4)
    n = 6
    A = rng.normal(size=(n, n)) - 0.5 * np.eye(n)       # complex pairs, mixed signs
    z_star = rng.normal(size=n)

    def drift(Z):
        return (Z - z_star) @ A.T

    out = linear_stability(drift, z_star + rng.normal(size=n))
    assert np.allclose(out["fixed_point"], z_star, atol=1e-9)
    expected = np.linalg.eigvals(A)
    got = np.array([complex(re, im) for re, im in out["eigenvalues"]])
    assert np.allclose(np.sort_complex(got), np.sort_complex(expected), atol=1e-6)
    lead = expected[np.argmax(expected.real)]
    assert out["max_real"] == pytest.approx(lead.real, abs=1e-6)
    assert out["max_imag"] == pytest.approx(abs(lead.imag), abs=1e-6)
    assert out["stable"] == bool(lead.real < 0)
    # a stable matrix is reported stable
    B = -A @ A.T - np.eye(n)
    out = linear_stability(lambda Z: Z @ B.T, rng.normal(size=n))
    assert out["stable"] and out["max_real"] < 0 and np.allclose(out["fixed_point"], 0, atol=1e-9)


def test_flat_directions_are_neutral_not_unstable():
    A = np.diag([-1.0, 0.0, -3.0])
    A[0, 2] = 2.0
    out = linear_stability(lambda Z: Z @ A.T, np.array([0.1, 0.5, -0.2]))
    assert out["stable"] and out["neutral"] == 1
    assert out["max_real"] == pytest.approx(-1.0, abs=1e-6) and out["max_imag"] == 0
    out = linear_stability(lambda Z: Z @ (-A).T, np.array([0.1, 0.5, -0.2]))
    assert not out["stable"] and out["max_real"] == pytest.approx(3.0, abs=1e-6)
    assert linear_stability(lambda Z: 0 * Z, np.ones(2))["max_real"] is None


def test_no_fixed_point_is_reported_as_none():
    out = linear_stability(lambda Z: np.ones_like(Z), np.zeros(3))
    assert out["fixed_point"] is None and out["stable"] is None and out["message"]


def _bcm_two_patterns(eta, tau_theta):
    """The joint (w1, w2, θ) expected drift of BCM on two orthogonal unit patterns
    (p = ½ each) with a rectified neuron: the selective fixed point is w = (2, 0),
    θ = 2; on its (w1, θ) block the trace is η − 1/τ_θ and the determinant η/τ_θ."""
    rule = get_rule("bcm")
    P = np.eye(2)
    p = np.array([0.5, 0.5])
    stats = InputStats("patterns", mean=p @ P, covariance=np.cov(P.T, aweights=p, bias=True),
                       transfer="relu", patterns=P, probabilities=p)
    params = rule.resolve({"eta": eta, "tau_theta": tau_theta, "theta_init": 0.0})
    layout = Layout.dense_full(2, 1, state=("theta",))
    from plasticity.analysis.drift import expected_drift

    return lambda Z: expected_drift(rule, params, stats, layout, Z, include_state=True)


@pytest.mark.parametrize("eta, tau_theta", [(1.0, 0.25), (1.0, 0.8), (2.0, 0.2)])
def test_bcm_fast_threshold_selective_fixed_point_is_stable(eta, tau_theta):
    assert eta * tau_theta < 1
    drift = _bcm_two_patterns(eta, tau_theta)
    out = linear_stability(drift, np.array([1.7, 0.05, 1.6]))
    assert np.allclose(out["fixed_point"][0], 2.0, atol=1e-6)
    assert np.allclose(out["fixed_point"][2], 2.0, atol=1e-6)
    # stable: the (w1, θ) pair decays; w2 sits where the rectified neuron ignores
    # pattern 2 (w2 ≤ 0: a flat, neutral direction) or decays (w2 > 0)
    assert out["stable"] and out["max_real"] < 0
    # the (w1, θ) pair: λ = tr/2 ± sqrt(tr²/4 − det)
    tr, det = eta - 1 / tau_theta, eta / tau_theta
    pair = np.roots([1.0, -tr, det])
    got = np.array([complex(re, im) for re, im in out["eigenvalues"]])
    for lam in pair:
        assert np.min(np.abs(got - lam)) < 1e-5


@pytest.mark.parametrize("eta, tau_theta", [(1.0, 1.2), (1.0, 1.5), (0.5, 4.0)])
def test_bcm_slow_threshold_fixed_point_is_unstable_hopf(eta, tau_theta):
    assert eta * tau_theta > 1
    drift = _bcm_two_patterns(eta, tau_theta)
    out = linear_stability(drift, np.array([1.0, 0.2, 3.0]), starts=[np.array([2.1, 0.0, 1.9])])
    assert np.allclose(out["fixed_point"], [2.0, out["fixed_point"][1], 2.0], atol=1e-6)
    tr, det = eta - 1 / tau_theta, eta / tau_theta
    assert not out["stable"]
    assert out["max_real"] == pytest.approx(tr / 2, rel=1e-5)
    assert out["max_imag"] == pytest.approx(np.sqrt(det - tr ** 2 / 4), rel=1e-5)


def _meanfield(tmp_path, tau_theta, duration=40.0):
    from conftest import dynamics_config
    from plasticity.config.dynamics import validate_dynamics
    from plasticity.sim import run

    data = dynamics_config("bcm_slow_meanfield", tau_theta=tau_theta, duration=duration,
                           record_every=0.1)
    return run(validate_dynamics(data, "bcm"), out_dir=tmp_path, progress=False)


def test_analyze_reports_stability_of_dynamics_runs(tmp_path):
    slow = analyze_file(_meanfield(tmp_path, 1.2), store=False)["stability"]
    fast = analyze_file(_meanfield(tmp_path, 0.5), store=False)["stability"]
    for st in (slow, fast):
        assert np.allclose(np.array(st["fixed_point"])[[0, 2]], [2.0, 2.0], atol=1e-6)
        assert st["labels"] == ["w1", "w2", "theta"]
    assert not slow["stable"] and slow["max_real"] == pytest.approx((1 - 1 / 1.2) / 2, rel=1e-4)
    assert fast["stable"] and fast["max_real"] < 0


def test_a_bare_trajectory_has_no_stability(tmp_path):
    from plasticity.analysis import open_run
    from plasticity.analysis.stability import run_stability

    t = np.linspace(0, 1, 50)
    path = tmp_path / "traj.npz"
    np.savez(path, time=t, weights=np.stack([np.exp(-t), np.exp(-2 * t)], axis=1))
    with open_run(path) as run:
        assert run_stability(run) is None
