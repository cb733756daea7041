"""Verdicts grounded in the simulation: the consistency test of the increments with the
expected drift (calibration and power), the sample-path certificate with error bars
(Holm correction, calibration, power, streaming), and the basis of each verdict."""

import json

import h5py
import numpy as np
import pytest

from plasticity.analysis import analyze_file, format_table
from plasticity.analysis.consistency import ConsistencyTest, consistency_test
from plasticity.io.layout import Layout
from plasticity.analysis.losses import make_loss, quadratic_loss
from plasticity.analysis.sample_path import SamplePath, holm, sample_path
from plasticity.analysis.synthetic import euler_sample_paths, write_run_file
from plasticity.inputs import InputStats
from plasticity.rules import get_rule

ETA = 0.05


def _oja_setup(n=6, seed=0):
    rng = np.random.default_rng(seed)
    stats = InputStats.gaussian(n, rng, spectrum=[3.0, 1.5, 1.0] + [0.5] * (n - 3), rotation="random")
    mixing = stats.mixing

    def draw(generator, R):
        return generator.standard_normal((R, n)) @ mixing.T
    return rng, stats, draw


def _oja_update(eta):
    """One sample of Oja's update, exactly as the Brian2 rate network does it per step."""
    def update(W, X):
        y = np.sum(W * X, 1, keepdims=True)
        return eta * y * (X - y * W)
    return update


def _hebbian_update(eta):
    def update(W, X):
        return eta * np.sum(W * X, 1, keepdims=True) * X
    return update


def _oja_drift(stats, W, eta=ETA):
    rule = get_rule("oja")
    T, n = W.shape
    return rule.drift(W[:, None, :], None, stats, rule.resolve({"eta": eta}))[0].reshape(T, n)


def _paths(update, stats_draw, R, seconds, seed, n=6):
    rng, stats, draw = stats_draw
    w0 = rng.uniform(-0.3, 0.3, (R, n))
    t, W = euler_sample_paths(update, draw, w0, 1e-3, int(seconds * 1000), 100,
                              np.random.default_rng(seed))
    return t, W, stats


# -- consistency ---------------------------------------------------------------------
def test_consistency_calibrated_on_200_simulated_seeds():
    """Rejection rate at the 1% level over 200 independent seeds of a small Oja run
    (the Brian2 update, one Gaussian sample per 1 ms step, records every 100 ms)."""
    t, W, stats = _paths(_oja_update(ETA), _oja_setup(), R=200, seconds=20, seed=11)
    p = np.array([consistency_test(t, W[r], _oja_drift(stats, W[r]))["p_value"] for r in range(len(W))])
    assert np.mean(p < 0.01) <= 0.04, np.sort(p)[:10]
    # not trivially conservative either: the p-values spread over (0, 1)
    assert 0.03 <= np.mean(p < 0.10) <= 0.18, np.mean(p < 0.10)
    assert 0.35 <= np.median(p) <= 0.65


@pytest.mark.parametrize("update", [_oja_update(2 * ETA), _hebbian_update(ETA)], ids=["2eta", "hebbian"])
def test_consistency_rejects_another_drift(tmp_path, update):
    """A file claiming Oja with η whose weights moved with 2η, or by Hebbian learning."""
    t, W, stats = _paths(update, _oja_setup(), R=1, seconds=20, seed=5)
    path = tmp_path / "claims_oja.h5"
    write_run_file(path, t, W[0], rule_name="oja", params={"eta": ETA}, stats=stats, n_pre=6, n_post=1)
    doc = analyze_file(path)
    cons = doc["consistency"]
    assert cons["p_value"] < 1e-3 and cons["consistent"] is False, cons
    assert "NOT consistent" in format_table(doc)


def test_consistency_accepts_the_right_drift_end_to_end(tmp_path):
    t, W, stats = _paths(_oja_update(ETA), _oja_setup(), R=1, seconds=20, seed=6)
    path = tmp_path / "oja.h5"
    write_run_file(path, t, W[0], rule_name="oja", params={"eta": ETA}, stats=stats, n_pre=6, n_post=1)
    cons = analyze_file(path)["consistency"]
    assert set(cons) >= {"statistic", "dof", "p_value", "consistent", "window"}
    assert cons["consistent"] is True and 0.8 < cons["drift_ratio"] < 1.2, cons


def test_consistency_streaming_equals_in_memory():
    t, W, stats = _paths(_oja_update(ETA), _oja_setup(), R=1, seconds=10, seed=2)
    w, f = W[0], _oja_drift(stats, W[0])
    whole = consistency_test(t, w, f)
    test = ConsistencyTest(w.shape[1], w.shape[0])
    for a, b in [(0, 7), (7, 8), (8, 50), (50, 101)]:
        test.add(t[a:b], w[a:b], f[a:b])
    parts = test.finish()
    assert parts["statistic"] == pytest.approx(whole["statistic"], rel=1e-10)
    assert parts["p_value"] == pytest.approx(whole["p_value"], rel=1e-8)


def test_consistency_needs_enough_records():
    t = np.arange(20.0)
    assert consistency_test(t, np.zeros((20, 3)), np.zeros((20, 3))) is None


# -- sample path -----------------------------------------------------------------------
def test_holm_against_its_definition():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.uniform(0, 0.02, rng.integers(1, 12))
        K = p.size
        order = np.argsort(p)
        expect = np.zeros(K, bool)
        for i, j in enumerate(order):
            if p[j] > 0.01 / (K - i):
                break
            expect[j] = True
        assert np.array_equal(holm(p, 0.01), expect)


def _noisy_gradient_flow(sign, T=801, n=5, sigma=0.02, seed=0):
    """Records of ``w' = sign · H w`` (descent of ½wᵀHw for sign −1) plus noise."""
    rng = np.random.default_rng(seed)
    H = np.diag(np.linspace(0.5, 2.0, n))
    w = np.full(n, 2.0 if sign < 0 else 0.05)
    out = [w.copy()]
    dt = 0.01
    for _ in range(T - 1):
        w = w + dt * sign * (H @ w) + sigma * np.sqrt(dt) * rng.standard_normal(n)
        out.append(w.copy())
    return np.arange(T) * dt, np.array(out), quadratic_loss(H, np.zeros(n))


def test_sample_path_descent_ascent_and_noise():
    t, W, loss = _noisy_gradient_flow(-1)
    (down,) = sample_path(t, W, [loss])
    assert down["summary"]["descent_significant"] >= 0.2
    assert down["summary"]["ascent_significant"] == 0
    t, W, loss = _noisy_gradient_flow(+1)
    (up,) = sample_path(t, W, [loss])
    assert up["summary"]["ascent_significant"] > 0.3 and up["summary"]["descent_significant"] == 0
    # the change per window is the loss change (mean-value gradient, exact for a quadratic)
    assert np.allclose(up["change"], up["loss1"] - up["loss0"], rtol=1e-8, atol=1e-12)


def test_sample_path_false_ascent_rate_on_pure_noise():
    """Random walks with no drift: Holm at family level 1% calls an ascent window in at
    most ~1% of the runs (here ≤ 4% of 150)."""
    rng = np.random.default_rng(1)
    loss = quadratic_loss(np.eye(4), np.zeros(4))
    hits = 0
    for _ in range(150):
        W = np.cumsum(rng.standard_normal((401, 4)), axis=0) * 0.01 + 1.0
        (r,) = sample_path(np.arange(401.0), W, [loss])
        hits += r["summary"]["ascent_significant"] > 0
    assert hits <= 6, hits


def test_sample_path_streaming_equals_in_memory():
    t, W, loss = _noisy_gradient_flow(-1, T=403)
    (whole,) = sample_path(t, W, [loss], window=10)
    sp = SamplePath([loss], 10)
    for a, b in [(0, 3), (3, 25), (25, 26), (26, 200), (200, 403)]:
        sp.add(t[a:b], W[a:b])
    (parts,) = sp.finish()
    assert np.allclose(parts["change"], whole["change"]) and np.allclose(parts["se"], whole["se"])
    assert np.array_equal(parts["call"], whole["call"])
    assert parts["summary"]["windows"] == 40


def test_analyze_reports_sample_path_and_stores_windows(tmp_path):
    t, W, stats = _paths(_oja_update(ETA), _oja_setup(), R=1, seconds=30, seed=8)
    path = tmp_path / "oja.h5"
    write_run_file(path, t, W[0], rule_name="oja", params={"eta": ETA}, stats=stats, n_pre=6, n_post=1)
    doc = analyze_file(path)
    for r in doc["results"]:
        assert r["basis"] == "expectation"
        sp = r["sample_path"]
        assert sp["windows"] >= 2 and sp["ascent_significant"] == 0
        assert sp["descent_significant"] + sp["ascent_significant"] + sp["undecided"] == pytest.approx(1)
    assert "(in expectation)" in format_table(doc) and "along the path, rayleigh" in format_table(doc)
    with h5py.File(path, "r") as f:
        g = f["analysis/rayleigh"]
        calls = g["sample_path_call"][()]
        assert calls.size == doc["results"][0]["sample_path"]["windows"]
        assert set(np.unique(calls)) <= {-1, 0, 1}
        assert json.loads(f["analysis"].attrs["document"])["consistency"] is not None


def test_window_drift_not_descent_needs_significant_ascent(tmp_path):
    """Near a fixed point the window drift points every which way; without a window of
    significant ascent the verdict is ``undecided``, not ``not-descent``."""
    rng = np.random.default_rng(4)
    n = 3
    W = 0.01 * rng.standard_normal((600, n))          # noise around the minimum of ½‖w‖²
    np.savez(tmp_path / "noise.npz", time=np.arange(600.0), weights=W)
    loss_file = tmp_path / "loss.py"
    loss_file.write_text("import numpy as np\n"
                         "def half_norm(w):\n    return 0.5 * np.sum(w * w, 1), w\n")
    doc = analyze_file(tmp_path / "noise.npz", [f"{loss_file}:half_norm"], drift="window", window=8)
    (r,) = doc["results"]
    assert r["basis"] == "sample-path"
    assert r["sample_path"]["ascent_significant"] == 0
    assert r["descent_fraction"] < 1 and r["verdict"] == "undecided"
    assert r["pointwise_verdict"] == "not-descent"
    assert "(along the path)" in format_table(doc)


# -- real Brian2 runs ------------------------------------------------------------------
OJA_SMALL = ['simulation.device="runtime"', 'simulation.duration="10 s"', 'network.n_pre=6',
             'inputs.spectrum=[3.0, 1.5, 1.0, 0.5, 0.5, 0.5]', 'rule.eta="0.05 Hz"']


@pytest.mark.slow
def test_consistency_on_brian2_runs(tmp_path):
    """Ten seeds of a small Oja run simulated by Brian2: at most one rejection at 1%
    (P(≥ 2 of 10) = 0.4% for a calibrated test); the same files, relabelled as having
    half the learning rate they ran with, are all rejected."""
    from plasticity.config import load_config
    from plasticity.sim import run

    from conftest import EXPERIMENTS

    p_values, ratios = [], []
    for seed in range(1, 11):
        experiment = load_config(EXPERIMENTS / "oja_pca.toml", OJA_SMALL, seed=seed)
        path = run(experiment, out_dir=tmp_path / str(seed), progress=False)
        cons = analyze_file(path, store=False, recurrence=False)["consistency"]
        p_values.append(cons["p_value"])
        ratios.append(cons["drift_ratio"])
        if seed <= 3:
            with h5py.File(path, "r+") as f:
                text = f["config"][()]
                text = text.decode() if isinstance(text, bytes) else str(text)
                del f["config"]
                f["config"] = text.replace("eta = 0.05", "eta = 0.025")
            lie = analyze_file(path, store=False, recurrence=False)["consistency"]
            print("relabelled eta/2: p =", lie["p_value"], "drift ratio", lie["drift_ratio"])
            assert lie["p_value"] < 1e-3 and 1.8 < lie["drift_ratio"] < 2.2, lie
    print("Brian2 consistency p-values:", [f"{p:.3g}" for p in p_values], "drift ratios:",
          [f"{r:.3f}" for r in ratios])
    assert sum(p < 0.01 for p in p_values) <= 1, p_values
    assert all(0.8 < r < 1.2 for r in ratios), ratios


# -- ensembles over seeds ------------------------------------------------------------
def _ensemble_files(tmp_path, N=8, eta_of=lambda s: ETA, w0_of=None, seconds=10):
    rng, stats, draw = _oja_setup()
    w0 = rng.uniform(-0.3, 0.3, (1, 6))
    paths = []
    for s in range(N):
        start = w0 if w0_of is None else w0_of(s)
        t, W = euler_sample_paths(_oja_update(ETA), draw, start, 1e-3, seconds * 1000, 100,
                                  np.random.default_rng(100 + s))
        path = tmp_path / f"seed{s}.h5"
        write_run_file(path, t, W[0], rule_name="oja", params={"eta": eta_of(s)}, stats=stats,
                       n_pre=6, n_post=1, seed=s + 1)
        paths.append(path)
    return paths


def test_ensemble_over_seeds(tmp_path, cli):
    paths = _ensemble_files(tmp_path)
    result = cli("analyze", *paths, "--drift", "ensemble", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["seeds"] == 8
    assert doc["consistency"]["consistent"] and len(doc["consistency"]["per_seed_p"]) == 8
    by = {r["loss"]: r for r in doc["results"]}
    r = by["rayleigh"]
    assert r["basis"] == "ensemble" and r["drift"] == "ensemble"
    assert r["verdict"] in ("natural-gradient", "undecided")
    assert r["record_tests"]["ascent_significant"] == 0
    assert r["record_tests"]["descent_significant"] > 0.1
    b = r["bootstrap"]
    assert b["resamples"] == 200
    for key in ("descent_fraction", "psi_deg_median", "kappa_min_median"):
        lo, hi = b[key]
        assert lo <= hi
    assert 0.5 <= b["descent_fraction"][0]
    table = cli("analyze", *paths, "--drift", "ensemble")
    assert table.returncode == 0 and "(over 8 seeds)" in table.stdout


def test_ensemble_refuses_other_configs_and_single_files(tmp_path, cli):
    paths = _ensemble_files(tmp_path, N=3, eta_of=lambda s: ETA * (1 + s), seconds=2)
    result = cli("analyze", *paths, "--drift", "ensemble")
    assert result.returncode == 2 and "rule.eta" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = cli("analyze", *paths)
    assert result.returncode == 2 and "--drift ensemble" in result.stderr
    result = cli("analyze", paths[0], "--drift", "ensemble")
    assert result.returncode == 2 and "at least 2" in result.stderr


def test_ensemble_needs_a_shared_start(tmp_path, cli):
    paths = _ensemble_files(tmp_path, N=2, seconds=2, w0_of=lambda s: np.full((1, 6), 0.1 + 0.1 * s))
    result = cli("analyze", *paths, "--drift", "ensemble")
    assert result.returncode == 2 and "initial weights" in result.stderr


PAIR_STDP = {
    "name": "pair_consistency", "seed": 1,
    "network": {"model": "poisson_pair", "n_pre": 20, "n_post": 3,
                "init": {"distribution": "constant", "value": 0.1}},
    "inputs": {"kind": "poisson", "rates": "20 Hz", "post_rates": ["10 Hz", "20 Hz", "40 Hz"]},
    "rule": {"name": "stdp", "bounds": "soft", "w_max": 1.0, "A_plus": 0.01, "A_minus": 0.01},
    "simulation": {"duration": "30 s", "dt": "0.1 ms", "device": "auto"},
    "record": {"every": "100 ms"},
}


@pytest.mark.slow
def test_pair_stdp_rate_limit_drift_consistency(tmp_path, write_config):
    """Independent Poisson pre/post trains (Brian2): the increments of pair STDP follow
    its rate-limit drift at the logged rates; a file claiming a 25% larger A_minus does not."""
    from plasticity.config import load_config
    from plasticity.sim import run

    path = run(load_config(write_config(PAIR_STDP)), out_dir=tmp_path, progress=False)
    cons = analyze_file(path, store=False, recurrence=False)["consistency"]
    assert cons["consistent"] and 0.8 < cons["drift_ratio"] < 1.2, cons
    with h5py.File(path, "r+") as f:
        text = f["config"][()]
        text = text.decode() if isinstance(text, bytes) else str(text)
        del f["config"]
        f["config"] = text.replace("A_minus = 0.01", "A_minus = 0.0125")
    lie = analyze_file(path, store=False, recurrence=False)["consistency"]
    assert lie["p_value"] < 1e-3, lie
