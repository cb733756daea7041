"""The minimal-condition metric and the canonical family against dense linear algebra
(docs/math.md §1–3)."""

import numpy as np
import pytest

from plasticity.analysis import (batch_metric_stats, canonical_metric, kappa_from_psi,
                                 min_condition_metric, random_admissible_metric)

DIMS = [2, 3, 5, 10, 37, 100, 250, 500]


def random_pair(rng, n, kind="any"):
    """A (update, gradient) pair with update·gradient < 0."""
    g = rng.standard_normal(n) * rng.uniform(0.1, 10)
    if kind == "near0":
        f = -g * rng.uniform(0.5, 2) + 1e-6 * rng.standard_normal(n)
    elif kind == "near90":
        u = rng.standard_normal(n)
        u -= (u @ g) / (g @ g) * g
        f = u - 1e-3 * g / np.linalg.norm(g) * np.linalg.norm(u)
    else:
        f = rng.standard_normal(n) * rng.uniform(0.1, 10)
        if f @ g > 0:
            f = -f
    return f, g


def sin_psi_dense(f, g):
    # the component of f̂ orthogonal to ĝ: accurate near 0 (unlike sqrt(1 − cos²))
    fh = f / np.linalg.norm(f)
    gh = g / np.linalg.norm(g)
    return np.linalg.norm(fh - (fh @ gh) * gh)


@pytest.mark.parametrize("n", DIMS)
@pytest.mark.parametrize("kind", ["any", "near0", "near90"])
def test_metric_against_dense(n, kind):
    rng = np.random.default_rng(n * 7 + len(kind))
    for _ in range(3 if n < 100 else 1):
        f, g = random_pair(rng, n, kind)
        M = min_condition_metric(f, g)
        D = M.dense()
        assert np.allclose(D, D.T)
        eig = np.linalg.eigvalsh(D)
        assert eig.min() > 0
        # maps −gradient to the update
        np.testing.assert_allclose(D @ (-g), f, rtol=1e-9, atol=1e-10 * np.linalg.norm(f))
        # κ = (1 + sin ψ)/(1 − sin ψ), against the dense eigenvalues
        s = sin_psi_dense(f, g)
        kappa_dense = eig.max() / eig.min()
        assert M.condition_number() == pytest.approx(kappa_dense, rel=1e-6)
        if kind != "near90":  # 1 − sin ψ loses digits in the dense formula near 90°
            assert M.condition_number() == pytest.approx((1 + s) / (1 - s), rel=1e-6)
        assert np.sin(M.psi) == pytest.approx(s, rel=1e-6, abs=1e-12)
        np.testing.assert_allclose(M.eigenvalues(), eig, rtol=1e-7, atol=1e-9 * eig.max())
        # matvec, inverse against dense algebra
        V = rng.standard_normal((n, 3))
        np.testing.assert_allclose(M.matvec(V), D @ V, rtol=1e-9, atol=1e-9 * np.abs(D @ V).max())
        np.testing.assert_allclose(M.matvec(V[:, 0]), D @ V[:, 0], rtol=1e-9,
                                   atol=1e-9 * np.abs(D @ V).max())
        Dinv = np.linalg.inv(D)
        scale = np.abs(Dinv).max()
        np.testing.assert_allclose(M.inverse_dense(), Dinv, atol=1e-7 * scale)
        np.testing.assert_allclose(M.inverse_matvec(V), Dinv @ V, atol=1e-7 * scale * np.abs(V).max())
        assert M.alpha == pytest.approx((f @ f) / -(f @ g), rel=1e-12)


@pytest.mark.parametrize("n", [2, 3, 8, 40, 120])
def test_canonical_family_never_better(n):
    rng = np.random.default_rng(100 + n)
    for _ in range(5):
        f, g = random_pair(rng, n)
        kappa = min_condition_metric(f, g).condition_number()
        for _ in range(4):
            for M in (random_admissible_metric(f, g, rng),
                      canonical_metric(f, g, _random_spd(rng, n))):
                eig = np.linalg.eigvalsh(M)
                assert eig.min() > 0
                np.testing.assert_allclose(M @ (-g), f, rtol=1e-7, atol=1e-8 * np.linalg.norm(f))
                assert eig.max() / eig.min() >= kappa * (1 - 1e-8)
        # the BFGS form from the identity reference is admissible too
        M = canonical_metric(f, g)
        np.testing.assert_allclose(M @ (-g), f, rtol=1e-7, atol=1e-8 * np.linalg.norm(f))


def _random_spd(rng, n):
    X = rng.standard_normal((n, n))
    return X @ X.T / n + 0.1 * np.eye(n)


def test_not_descent_raises_plain_message():
    g = np.array([1.0, 0.0])
    for f in (np.array([1.0, 1.0]), np.array([0.0, 1.0])):
        with pytest.raises(ValueError, match="not a strict descent direction"):
            min_condition_metric(f, g)
    with pytest.raises(ValueError, match="zero"):
        min_condition_metric(np.zeros(2), g)
    with pytest.raises(ValueError):
        canonical_metric(np.array([0.0, 1.0]), g)


def test_gradient_descent_is_kappa_one():
    g = np.array([1.0, -2.0, 3.0])
    M = min_condition_metric(-0.5 * g, g)
    assert M.psi == pytest.approx(0.0, abs=1e-12)
    assert M.condition_number() == pytest.approx(1.0)
    np.testing.assert_allclose(M.dense(), 0.5 * np.eye(3), atol=1e-12)


def test_large_n_is_matrix_free():
    rng = np.random.default_rng(3)
    n = 2_000_000
    f, g = random_pair(rng, n)
    M = min_condition_metric(f, g)
    v = rng.standard_normal(n)
    w = M.inverse_matvec(M.matvec(v))
    np.testing.assert_allclose(w, v, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(M.matvec(-g), f, rtol=1e-8, atol=1e-8 * np.abs(f).max())
    assert M.eigenvalues().shape == (n,)


def test_batch_stats_match_objects():
    rng = np.random.default_rng(5)
    F, G = [], []
    for _ in range(20):
        f, g = random_pair(rng, 7)
        F.append(f)
        G.append(g)
    F, G = np.array(F), np.array(G)
    F[3] = -F[3]          # ascent
    F[4] = 0.0            # fixed point
    s = batch_metric_stats(F, G)
    for k in range(20):
        if k == 4:
            assert not s["descent"][k]
            continue
        if F[k] @ G[k] < 0:
            M = min_condition_metric(F[k], G[k])
            assert s["descent"][k]
            assert s["psi"][k] == pytest.approx(M.psi, rel=1e-10)
            assert s["kappa_min"][k] == pytest.approx(M.condition_number(), rel=1e-10)
            assert s["alpha"][k] == pytest.approx(M.alpha, rel=1e-10)
        else:
            assert not s["descent"][k] and np.isinf(s["kappa_min"][k]) and np.isnan(s["alpha"][k])
    assert kappa_from_psi(np.pi / 3) == pytest.approx((1 + np.sin(np.pi / 3)) / (1 - np.sin(np.pi / 3)))
    assert kappa_from_psi(np.pi / 3) == pytest.approx(np.tan(np.pi / 4 + np.pi / 6) ** 2)
