"""Structured constant-metric fits against the dense fit and explicit residuals."""

import numpy as np
import pytest

from plasticity.analysis import certify, fit_constant_metric_arrays
from plasticity.analysis.structured import StructuredMetricFit, fit_structured_arrays


def residual_of(M_apply, F, G):
    """Relative residual sqrt(Σ‖f + M g‖² / Σ‖f‖²), M given by its action on rows."""
    return np.sqrt(np.sum((F + M_apply(G)) ** 2) / np.sum(F ** 2))


def spd(rng, n, scale=1.0):
    A = rng.standard_normal((n, n))
    return scale * A @ A.T / n + np.eye(n)


@pytest.fixture
def data():
    rng = np.random.default_rng(11)
    n, T = 60, 300
    post = np.repeat(np.arange(3), 20)
    return rng, n, T, post, rng.standard_normal((T, n))


def test_each_family_recovers_its_own_metric_and_is_chosen(data):
    rng, n, T, post, G = data
    d = rng.uniform(0.5, 2.0, n)
    u = rng.standard_normal((n, 2))
    block = np.kron(np.eye(3), spd(rng, 20))
    cases = {"diagonal": np.diag(d), "low_rank_diagonal": np.diag(d) + u @ u.T,
             "block_diagonal": block}
    for family, M in cases.items():
        F = -G @ M
        out = fit_structured_arrays(F, G, post=post, chunk=7)
        assert out[family] < 1e-3, (family, out)
        assert out["chosen"] == family, (family, out)
    out = fit_structured_arrays(-G @ cases["low_rank_diagonal"], G, post=post)
    assert out["rank"] == 2
    # a dense metric with no structure fits none of them (the dense fit does)
    F = -G @ spd(rng, n, scale=3.0)
    out = fit_structured_arrays(F, G, post=post)
    assert out["chosen"] is None and min(out["diagonal"], out["block_diagonal"],
                                         out["low_rank_diagonal"]) > 0.1
    assert fit_constant_metric_arrays(F, G)[1] < 1e-6


def test_no_family_beats_the_dense_fit(data):
    rng, n, T, post, G = data
    for trial in range(3):
        M = np.diag(rng.uniform(0.5, 2.0, n)) + 0.3 * spd(rng, n)
        F = -G @ M + 0.5 * rng.standard_normal((T, n))
        dense = fit_constant_metric_arrays(F, G)[1]
        out = fit_structured_arrays(F, G, post=post, chunk=13)
        for family in ("diagonal", "block_diagonal", "low_rank_diagonal"):
            assert out[family] >= dense - 1e-9, (family, out[family], dense)
            assert out[family] <= 1.0 + 1e-12


def test_one_block_is_the_dense_fit(data):
    rng, n, T, _, G = data
    F = -G @ spd(rng, n) + 0.3 * rng.standard_normal((T, n))
    out = fit_structured_arrays(F, G, post=np.zeros(n, int), chunk=50)
    assert out["block_diagonal"] == pytest.approx(fit_constant_metric_arrays(F, G)[1], rel=1e-9)


def test_reported_residuals_are_those_of_the_metrics_found(data):
    rng, n, T, post, G = data
    M = np.diag(rng.uniform(0.5, 2.0, n)) + np.outer(*(2 * [rng.standard_normal(n)]))
    F = -G @ M + 0.4 * rng.standard_normal((T, n))
    fit = StructuredMetricFit(n, post=post)
    for start in range(0, T, 17):
        fit.add(F[start:start + 17], G[start:start + 17])
    m, residual = fit.fit_diagonal()
    assert residual == pytest.approx(residual_of(lambda X: X * m, F, G), rel=1e-9)
    # the diagonal fit is the per-coordinate least squares (non-negative here)
    best = -np.sum(F * G, axis=0) / np.sum(G * G, axis=0)
    np.testing.assert_allclose(m, np.clip(best, 0, None), rtol=1e-10)
    d, U, C, rank, residual = fit.fit_low_rank_diagonal()
    assert residual == pytest.approx(residual_of(lambda X: X * d + X @ U @ C @ U.T, F, G), rel=1e-9)
    assert np.all(np.linalg.eigvalsh(C) > 0) and np.all(d >= 0)
    blocks, residual = fit.fit_block_diagonal()
    dense = np.zeros((n, n))
    for index, B in zip(fit.blocks, blocks):
        dense[np.ix_(index, index)] = B
    assert residual == pytest.approx(residual_of(lambda X: X @ dense, F, G), rel=1e-9)


def test_big_blocks_are_not_fitted():
    rng = np.random.default_rng(1)
    G = rng.standard_normal((30, 250))
    out = fit_structured_arrays(-G * 2.0, G, post=np.zeros(250, int))
    assert out["block_diagonal"] is None and out["chosen"] == "diagonal"
    # small blocks, but too many numbers in all: not fitted either
    post = np.repeat(np.arange(5), 50)
    assert fit_structured_arrays(-G * 2.0, G, post=post)["block_diagonal"] is not None
    out = fit_structured_arrays(-G * 2.0, G, post=post, block_budget=5 * 50 ** 2 - 1)
    assert out["block_diagonal"] is None


def test_certificate_uses_the_structured_fit_beyond_the_dense_limit():
    rng = np.random.default_rng(5)
    n, T = 300, 120                 # n > FULL_FIT_MAX_N: no dense fit
    post = np.repeat(np.arange(10), 30)
    G = rng.standard_normal((T, n))
    d = rng.uniform(0.2, 5.0, n)    # far from cI: not plain gradient descent
    cert = certify(-G * d, G)
    doc = cert.summary()
    assert doc["constant_metric"] is None
    assert doc["structured_metric"]["chosen"] == "diagonal"
    assert doc["verdict"] == "natural-gradient-constant"
    # a metric with no structure: still descent, but no constant metric is found
    A = rng.standard_normal((n, n))
    M = A @ A.T / n + 0.05 * np.eye(n)
    cert = certify(-G @ M, G)
    doc = cert.summary()
    assert doc["descent_fraction"] == 1.0
    assert doc["structured_metric"]["chosen"] is None
    assert doc["verdict"] == "natural-gradient"
    # with the postsynaptic blocks known, a block-diagonal metric is found
    from plasticity.analysis.certificate import Certifier

    M = np.zeros((n, n))
    for j in range(10):
        index = np.flatnonzero(post == j)
        M[np.ix_(index, index)] = spd(rng, 30, scale=2.0)
    certifier = Certifier(n, post=post)
    certifier.add(-G @ M, G)
    doc = certifier.finish().summary()
    assert doc["structured_metric"]["chosen"] == "block_diagonal"
    assert doc["verdict"] == "natural-gradient-constant"


def test_small_runs_keep_the_dense_fit_only():
    rng = np.random.default_rng(2)
    G = rng.standard_normal((40, 12))
    doc = certify(-G @ spd(rng, 12), G).summary()
    assert doc["structured_metric"] is None and doc["constant_metric"] is not None
