"""Each rule's expected drift (``rule.drift``, docs/math.md §8) and the moments it is built
from (``InputStats.moment/cross``) against

- the mean of many single-step updates, drawn in NumPy from the same inputs and
  applied with the rule's update formula written out here independently; and
- Brian2 itself: a run with a tiny learning rate (the weights barely move) whose mean
  weight change per unit time is the drift at the initial weights; the tolerance
  comes from the noise measured between records.

For every rule, both input kinds (Gaussian with a random rotation and a non-zero
mean; patterns) and both transfers (linear, relu)."""

import itertools

import h5py
import numpy as np
import pytest

from plasticity.config import validate
from plasticity.inputs import InputStats
from plasticity.io.codecs import read_input_stats
from plasticity.rules import RULES, get_rule

RATE_RULES = ("hebbian", "oja", "bcm", "covariance")
KINDS = ("gaussian", "patterns")
TRANSFERS = ("linear", "relu")

MEAN = [0.5, -0.3, 0.2, 0.1]
SPECTRUM = [2.0, 1.0, 0.5, 0.25]
PATTERNS = [[1.0, 0.2, 0.0, 0.5], [0.0, 1.0, 0.3, -0.2], [0.4, 0.0, 1.0, 0.1], [-0.3, 0.5, 0.2, 1.0]]
PROBABILITIES = [0.4, 0.3, 0.2, 0.1]
W0 = np.array([[0.6, -0.2, 0.4, 0.3], [-0.3, 0.5, 0.1, -0.4]])   # (n_post, n_pre)
PARAMS = {"hebbian": {"eta": 0.1}, "oja": {"eta": 0.1},
          "bcm": {"eta": 0.1, "tau_theta": 0.5, "theta_init": 0.0},
          "covariance": {"eta": 0.1, "tau_avg": 2.0}}
STATE = {"bcm": {"theta": np.array([0.7, 1.3])}, "covariance": {"ybar": np.array([0.2, -0.1])}}

COMBOS = list(itertools.product(RATE_RULES, KINDS, TRANSFERS))
IDS = ["-".join(c) for c in COMBOS]


def make_stats(kind, transfer, seed=0):
    if kind == "gaussian":
        return InputStats.gaussian(4, np.random.default_rng(seed), spectrum=SPECTRUM,
                                   rotation="random", mean=MEAN, transfer=transfer)
    return InputStats.from_patterns(PATTERNS, PROBABILITIES, transfer)


def draw(stats, n, rng):
    """``n`` input vectors, (n, n_pre)."""
    if stats.kind == "gaussian":
        return stats.mean + rng.standard_normal((n, stats.n)) @ stats.mixing.T
    return stats.patterns[rng.choice(len(stats.patterns), size=n, p=stats.probabilities)]


def single_step(rule, X, W, state, params, transfer):
    """Per-sample updates divided by dt: (N, n_post, n_pre) for w and (N, n_post) for
    each state variable, from the rule's update formula written out here."""
    y = X @ W.T
    if transfer == "relu":
        y = np.maximum(y, 0.0)
    x = X[:, None, :]
    yy = y[:, :, None]
    eta = params["eta"]
    if rule == "hebbian":
        return eta * yy * x, {}
    if rule == "oja":
        return eta * yy * (x - yy * W[None]), {}
    if rule == "bcm":
        theta = state["theta"]
        return (eta * x * yy * (yy - theta[None, :, None]),
                {"theta": (y ** 2 - theta) / params["tau_theta"]})
    if rule == "covariance":
        ybar = state["ybar"]
        xbar = X.mean(axis=0) * 0 + np.asarray(params["_xbar"])
        return (eta * (x - xbar) * (y - ybar)[:, :, None],
                {"ybar": (y - ybar) / params["tau_avg"]})
    raise ValueError(rule)


def assert_close_to_mean(samples, expected, sigmas=5.0, what=""):
    """``expected`` within ``sigmas`` standard errors of the mean of ``samples``."""
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    bad = np.abs(mean - expected) > sigmas * se + 1e-12
    assert not bad.any(), (f"{what}: drift {np.asarray(expected)[bad]} vs simulated mean "
                           f"{mean[bad]} ± {se[bad]}")


# -- NumPy Monte Carlo ----------------------------------------------------------

@pytest.mark.parametrize("rule_name, kind, transfer", COMBOS, ids=IDS)
def test_drift_matches_mean_single_step_update(rule_name, kind, transfer):
    rng = np.random.default_rng(42)
    stats = make_stats(kind, transfer)
    rule = get_rule(rule_name)
    params = {**PARAMS[rule_name], "_xbar": stats.mean}
    state = STATE.get(rule_name, {})
    X = draw(stats, 400_000, rng)
    dW_samples, dstate_samples = single_step(rule_name, X, W0, state, params, transfer)
    batched_state = {name: value[None] for name, value in state.items()}
    dW, dstate = rule.drift(W0[None], batched_state, stats, PARAMS[rule_name])
    assert dW.shape == (1,) + W0.shape
    assert_close_to_mean(dW_samples, dW[0], what=f"{rule_name} w")
    for name, samples in dstate_samples.items():
        assert dstate[name].shape == (1, 2)
        assert_close_to_mean(samples, dstate[name][0], what=f"{rule_name} {name}")


def test_drift_is_batched():
    """B records at once give the same as one at a time."""
    stats = make_stats("gaussian", "relu")
    Ws = np.stack([W0, 0.5 * W0, -W0])
    for name in RATE_RULES:
        rule = RULES[name]
        state = {k: np.stack([v, 2 * v, v]) for k, v in STATE.get(name, {}).items()}
        dW, dstate = rule.drift(Ws, state, stats, PARAMS[name])
        for b in range(3):
            one, one_state = rule.drift(Ws[b:b + 1], {k: v[b:b + 1] for k, v in state.items()},
                                        stats, PARAMS[name])
            np.testing.assert_allclose(dW[b], one[0])
            for k in one_state:
                np.testing.assert_allclose(dstate[k][b], one_state[k][0])


def test_bcm_fast_threshold_uses_second_moment():
    stats = make_stats("patterns", "relu")
    bcm = RULES["bcm"]
    fast, _ = bcm.drift(W0[None], None, stats, PARAMS["bcm"])
    theta = stats.moment(W0[None], 2)
    slow, dtheta = bcm.drift(W0[None], {"theta": theta}, stats, PARAMS["bcm"])
    np.testing.assert_allclose(fast, slow)
    np.testing.assert_allclose(dtheta["theta"], 0.0, atol=1e-12)


@pytest.mark.parametrize("kind, transfer", list(itertools.product(KINDS, TRANSFERS)))
def test_moments_match_monte_carlo(kind, transfer):
    rng = np.random.default_rng(7)
    stats = make_stats(kind, transfer)
    X = draw(stats, 400_000, rng)
    Y = X @ W0.T
    if transfer == "relu":
        Y = np.maximum(Y, 0.0)
    for k in range(4):
        assert_close_to_mean(Y ** k, stats.moment(W0[None], k)[0], what=f"E[y^{k}]")
        cross = (Y ** k)[:, :, None] * X[:, None, :]
        assert_close_to_mean(cross, stats.cross(W0[None], k)[0], what=f"E[x y^{k}]")


def test_gaussian_statistics():
    stats = make_stats("gaussian", "linear", seed=3)
    np.testing.assert_allclose(np.linalg.eigvalsh(stats.covariance), sorted(SPECTRUM))
    np.testing.assert_allclose(stats.mixing @ stats.mixing.T, stats.covariance, atol=1e-12)
    np.testing.assert_allclose(stats.mean, MEAN)
    # a seeded random rotation: the same seed, the same matrix; not the identity
    np.testing.assert_array_equal(make_stats("gaussian", "linear", seed=3).covariance, stats.covariance)
    assert not np.allclose(stats.covariance, np.diag(np.diag(stats.covariance)))
    explicit = InputStats.gaussian(4, None, covariance=stats.covariance, mean=MEAN)
    np.testing.assert_allclose(explicit.mixing @ explicit.mixing.T, stats.covariance, atol=1e-12)


@pytest.mark.parametrize("transfer", TRANSFERS)
@pytest.mark.parametrize("m", [1.5, 0.0, -1.5])
def test_gaussian_moments_when_the_output_has_no_variance(transfer, m):
    """s² = wᵀCw = 0: y = m surely (including w = 0), finite exact moments."""
    mean = np.array([m, 0.0, 0.0])
    stats = InputStats.gaussian(3, np.random.default_rng(0), spectrum=[0.0, 1.0, 2.0],
                                rotation="identity", mean=mean, transfer=transfer)
    W = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])       # C w = 0 for both neurons
    y = np.array([m, 0.0])
    sigma = y if transfer == "linear" else np.maximum(y, 0.0)
    for k in range(4):
        moment = stats.moment(W, k)[0]
        cross = stats.cross(W, k)[0]
        assert np.all(np.isfinite(moment)) and np.all(np.isfinite(cross)), (k, moment, cross)
        expected = sigma ** k                    # σ(y)^0 = 1, also where σ(y) = 0
        np.testing.assert_allclose(moment, expected, atol=1e-12)
        np.testing.assert_allclose(cross, expected[:, None] * mean[None, :], atol=1e-12)
    for name in RATE_RULES:
        dW, _ = RULES[name].drift(W, {k: v[None] for k, v in STATE.get(name, {}).items()},
                                  stats, PARAMS[name])
        assert np.all(np.isfinite(dW)), name


# -- Brian2 ---------------------------------------------------------------------

def brian_config(rule_name, kind, transfer):
    data = {
        "name": "drift", "seed": 5,
        "network": {"model": f"{transfer}_rate", "n_pre": 4, "n_post": 2,
                    "init": {"distribution": "normal", "mean": 0.2, "std": 0.5}},
        "rule": {"name": rule_name, "eta": 1e-6},
        "simulation": {"duration": "10 s", "dt": "1 ms", "device": "runtime"},
        "record": {"every": "5 ms"},
    }
    if kind == "gaussian":
        data["inputs"] = {"kind": "gaussian", "spectrum": SPECTRUM, "rotation": "random",
                          "mean": MEAN}
    else:
        data["inputs"] = {"kind": "patterns", "patterns": PATTERNS,
                          "probabilities": PROBABILITIES}
    if rule_name == "bcm":      # a threshold that stays put, so the drift is at theta_init
        data["rule"].update(tau_theta="1e9 s", theta_init=0.8)
    if rule_name == "covariance":
        data["rule"].update(tau_avg="1e9 s")
    return validate(data)


@pytest.mark.parametrize("rule_name, kind, transfer", COMBOS, ids=IDS)
def test_brian2_mean_update_matches_drift(rule_name, kind, transfer, tmp_path):
    """With η tiny the weights stay at W0, so the record-to-record weight changes are
    i.i.d. samples whose mean (per unit time) is the drift at W0."""
    from plasticity.sim import run

    experiment = brian_config(rule_name, kind, transfer)
    path = run(experiment, out_dir=tmp_path, progress=False)
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "complete"
        stats = read_input_stats(f["inputs"])
        if kind == "gaussian":      # the stored statistics are the simulated ones
            assert not np.allclose(f["inputs/covariance"][()], np.diag(SPECTRUM))
        time, weights = f["time"][()], f["weights"][()]
        pre, post = f["synapses/pre"][()], f["synapses/post"][()]
        state = {name: f[f"state/{name}"][()] for name in f.get("state", {})}
    params = experiment.rule.params
    # (T, S) -> (T, n_post, n_pre)
    W = np.zeros((len(time), 2, 4))
    W[:, post, pre] = weights
    W_start = W[0]
    increments = np.diff(W, axis=0) / np.diff(time)[:, None, None]     # (R, 2, 4)
    start_state = {name: values[0][None] for name, values in state.items()}
    dW, dstate = get_rule(rule_name).drift(W_start[None], start_state, stats, params)
    # drift at W0 (the weights moved by ~1e-5, far below the noise)
    assert np.abs(W[-1] - W[0]).max() < 1e-3
    assert_close_to_mean(increments, dW[0], what=f"brian2 {rule_name} w")
    for name, values in state.items():
        rates = np.diff(values, axis=0) / np.diff(time)[:, None]
        assert_close_to_mean(rates, dstate[name][0], what=f"brian2 {rule_name} {name}")
