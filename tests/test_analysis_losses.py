"""Built-in losses: analytic gradients against finite differences, the drift identities
of docs/math.md §8, the mean-value gradient (§4), and users' losses."""

import zlib

import numpy as np
import pytest

from plasticity.analysis import (Layout, Loss, expected_drift, load_user_loss, make_loss,
                                 mean_value_gradient, quadratic_loss, rule_losses)
from plasticity.errors import BadInput
from plasticity.inputs import InputStats
from plasticity.rules import get_rule

N_PRE, N_POST = 5, 2


def make_stats(kind, transfer, rng):
    if kind == "gaussian":
        return InputStats.gaussian(N_PRE, rng, spectrum=[3, 2, 1, 0.5, 0.25], rotation="random",
                                   mean=rng.normal(0, 0.5, N_PRE), transfer=transfer)
    patterns = rng.uniform(0, 1, (4, N_PRE))
    return InputStats.from_patterns(patterns, rng.uniform(0.5, 1, 4), transfer=transfer)


def layouts(rng):
    full = Layout.dense_full(N_PRE, N_POST)
    # Brian2's pre-major order
    pre, post = np.divmod(np.arange(N_PRE * N_POST), N_POST)
    premajor = Layout(pre, post, N_PRE, N_POST)
    # sparse, shuffled
    keep = rng.permutation(N_PRE * N_POST)[:7]
    sparse = Layout(full.pre[keep], full.post[keep], N_PRE, N_POST)
    return [full, premajor, sparse]


def fd_gradient(loss, w, eps=1e-6):
    grad = np.zeros_like(w)
    for i in range(w.shape[1]):
        e = np.zeros(w.shape[1])
        e[i] = eps
        grad[:, i] = (loss.value(w + e) - loss.value(w - e)) / (2 * eps)
    return grad


CASES = [(k, t) for k in ("gaussian", "patterns") for t in ("linear", "relu")]


@pytest.mark.parametrize("kind,transfer", CASES)
@pytest.mark.parametrize("name,rule", [("variance", "hebbian"), ("variance", "covariance"),
                                       ("rayleigh", "oja"), ("norm", "oja"),
                                       ("intrator_cooper", "bcm")])
def test_gradient_matches_finite_differences(kind, transfer, name, rule):
    rng = np.random.default_rng(zlib.crc32(f"{kind}{transfer}{name}{rule}".encode()))
    stats = make_stats(kind, transfer, rng)
    for layout in layouts(rng):
        loss = make_loss(name, stats, layout, rule)
        w = rng.uniform(-0.8, 1.0, (3, layout.size))
        values, grads = loss.value_and_grad(w)
        assert values.shape == (3,) and grads.shape == w.shape
        fd = fd_gradient(loss, w)
        np.testing.assert_allclose(grads, fd, rtol=1e-5, atol=1e-6 * max(1, np.abs(fd).max()))


@pytest.mark.parametrize("kind,transfer", CASES)
def test_drift_identities(kind, transfer):
    """Hebbian and fast-threshold BCM drifts are −η ∇L exactly (docs/math.md §8); the
    covariance rule too for linear neurons; Oja's drift descends rayleigh and norm."""
    rng = np.random.default_rng(11)
    stats = make_stats(kind, transfer, rng)
    layout = Layout.dense_full(N_PRE, N_POST)
    w = rng.uniform(-0.5, 1.0, (6, layout.size))
    for rule_name in ("hebbian", "bcm", "covariance"):
        if rule_name == "covariance" and transfer == "relu":
            continue
        rule = get_rule(rule_name)
        params = rule.resolve({"eta": 0.02})
        f = expected_drift(rule, params, stats, layout, w)
        (loss,) = rule_losses(rule_name, stats, layout)
        np.testing.assert_allclose(f, -0.02 * loss.grad(w), rtol=1e-10, atol=1e-12)
    if transfer == "linear":
        rule = get_rule("oja")
        f = expected_drift(rule, rule.resolve({}), stats, layout, w)
        for loss in rule_losses("oja", stats, layout):
            assert np.all(np.einsum("ij,ij->i", f, loss.grad(w)) <= 1e-12)


def test_mean_value_gradient_is_exact():
    rng = np.random.default_rng(2)
    stats = make_stats("gaussian", "linear", rng)
    layout = Layout.dense_full(N_PRE, N_POST)
    for name in ("intrator_cooper", "rayleigh", "norm"):
        loss = make_loss(name, stats, layout)
        w0 = rng.uniform(-1, 1, (4, layout.size))
        w1 = w0 + 0.05 * rng.standard_normal(w0.shape)
        gbar, v0, v1 = mean_value_gradient(loss, w0, w1)
        np.testing.assert_allclose(np.einsum("ij,ij->i", gbar, w1 - w0), v1 - v0, rtol=1e-8, atol=1e-12)


def test_quadratic_loss():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((4, 4))
    H = X @ X.T
    ws = rng.standard_normal(4)
    loss = quadratic_loss(H, ws)
    w = rng.standard_normal((3, 4))
    np.testing.assert_allclose(loss.grad(w), fd_gradient(loss, w), rtol=1e-6, atol=1e-7)
    assert loss.value(ws) == pytest.approx(0.0)


def test_missing_stats_and_unknown_names():
    layout = Layout.dense_full(3, 1)
    with pytest.raises(BadInput, match="needs the input statistics"):
        make_loss("rayleigh", None, layout)
    with pytest.raises(BadInput, match="unknown loss 'nope'"):
        make_loss("nope", None, layout)
    assert make_loss("norm", None, layout).value(np.ones(3)) == pytest.approx(4.0)


USER_MODULE = '''
import numpy as np
from plasticity.analysis import Loss

def sq(w):
    return 0.5 * np.sum(w * w, axis=1), w

def bad_shape(w):
    return np.zeros(3), w

def boom(w):
    raise RuntimeError("kaput\\nsecond line")

as_object = Loss("half_norm", sq)
not_callable = 3
'''


def test_user_losses(tmp_path):
    module = tmp_path / "mylosses.py"
    module.write_text(USER_MODULE)
    loss = load_user_loss(f"{module}:sq")
    v, g = loss.value_and_grad(np.ones((2, 3)))
    np.testing.assert_allclose(v, [1.5, 1.5])
    assert load_user_loss(f"{module}:as_object").name == "half_norm"
    with pytest.raises(BadInput, match="returned shapes"):
        load_user_loss(f"{module}:bad_shape").value_and_grad(np.ones((2, 3)))
    cases = {f"{module}:missing": "defines no 'missing'",
             f"{module}:not_callable": "not callable",
             f"{tmp_path / 'nofile.py'}:sq": "no such file",
             "justaname:": "expected"}
    for spec, message in cases.items():
        with pytest.raises(BadInput, match=message) as info:
            load_user_loss(spec)
        assert "\n" not in str(info.value)
    with pytest.raises(BadInput, match="raised RuntimeError: kaput$"):
        load_user_loss(f"{module}:boom").value_and_grad(np.ones((2, 3)))
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    with pytest.raises(BadInput, match="importing") as info:
        load_user_loss(f"{broken}:f")
    assert "\n" not in str(info.value)


def test_loss_single_vector():
    loss = Loss("sq", lambda w: (0.5 * np.sum(w * w, 1), w))
    v, g = loss.value_and_grad(np.array([3.0, 4.0]))
    assert v == pytest.approx(12.5) and g.shape == (2,)


@pytest.mark.parametrize("transfer", ["linear", "relu"])
def test_shared_product_stats_match_input_stats(transfer):
    from plasticity.inputs import SharedProductStats

    rng = np.random.default_rng(9)
    stats = make_stats("gaussian", transfer, rng)
    fast = SharedProductStats(stats)
    W = rng.uniform(-1, 1, (4, N_POST, N_PRE))
    W[0, 0] = 0.0                                  # s = 0 edge case
    for k in range(4):
        np.testing.assert_allclose(fast.moment(W, k), stats.moment(W, k), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(fast.cross(W, k), stats.cross(W, k), rtol=1e-12, atol=1e-14)
    # memo follows the array, not a stale value
    W2 = W + 0.5
    np.testing.assert_allclose(fast.cross(W2, 1), stats.cross(W2, 1), rtol=1e-12)
    assert fast.kind == "gaussian" and fast.n == N_PRE
    layout = Layout.dense_full(N_PRE, N_POST)
    w = W.reshape(4, -1)
    for name in ("rayleigh", "variance", "intrator_cooper"):
        v1, g1 = make_loss(name, stats, layout).value_and_grad(w)
        v2, g2 = make_loss(name, fast, layout).value_and_grad(w[1:])
        np.testing.assert_allclose(v2, v1[1:], rtol=1e-12)
        np.testing.assert_allclose(g2, g1[1:], rtol=1e-10, atol=1e-14)
