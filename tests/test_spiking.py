"""Spiking path (issue 4), fast part: config errors of the new keys, the rules' drift
formulas and objective, the run file of a spiking run, and the rate-limit drift of
pair STDP against a simulation of independent Poisson pre/post spike trains."""

import copy

import h5py
import numpy as np
import pytest

from conftest import assert_run_rejected, run_in_process
from plasticity.cli import main
from plasticity.config import validate
from plasticity.rules import RULES, SpikeRates
from plasticity.rules.triplet import Triplet, bcm_objective

#: independent Poisson pre/post trains, pair STDP (soft bounds), 2 s
PAIR_CONFIG = {
    "name": "tiny_pair",
    "seed": 4,
    "network": {"model": "poisson_pair", "n_pre": 10, "n_post": 3,
                "init": {"distribution": "constant", "value": 0.25}},
    "inputs": {"kind": "poisson", "rates": "20 Hz", "post_rates": ["10 Hz", "20 Hz", "40 Hz"]},
    "rule": {"name": "stdp", "bounds": "soft", "w_max": 1.0, "A_plus": 0.01, "A_minus": 0.01},
    "simulation": {"duration": "2 s", "dt": "0.1 ms", "device": "runtime"},
    "record": {"every": "100 ms", "spikes": True},
}

LIF_CONFIG = {
    "name": "tiny_lif",
    "seed": 1,
    "network": {"model": "lif_poisson", "n_pre": 100, "n_post": 1,
                "init": {"distribution": "uniform", "low": 0.05, "high": 0.1}},
    "inputs": {"kind": "poisson", "rates": "15 Hz"},
    "rule": {"name": "stdp", "w_max": 0.1},
    "simulation": {"duration": "0.5 s", "dt": "0.1 ms", "device": "runtime"},
    "record": {"every": "50 ms"},
}


def _set(data, dotted, value):
    data = copy.deepcopy(data)
    node = data
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(keys[-1])
    else:
        node[keys[-1]] = value
    return data


_DELETE = object()

BAD = [
    # (base, key, value, text expected in the message)
    (LIF_CONFIG, "inputs.rates", _DELETE, "needs 'rates'"),
    (LIF_CONFIG, "inputs.rates", "-5 Hz", "inputs.rates"),
    (LIF_CONFIG, "inputs.rates", "15 ms", "inputs.rates"),
    (LIF_CONFIG, "inputs.spectrum", [1.0], "'spectrum' does not belong"),
    (LIF_CONFIG, "rule.bounds", "medium", "rule.bounds"),
    (LIF_CONFIG, "rule.A_plus", -0.1, "rule.A_plus"),
    (LIF_CONFIG, "rule.tau_plus", "3 mV", "rule.tau_plus"),
    (LIF_CONFIG, "rule.name", "oja", "rule.name"),
    (LIF_CONFIG, "network.params", {"tau_q": "1 ms"}, "network.params.tau_q"),
    (LIF_CONFIG, "network.params", {"tau_m": "5 mV"}, "network.params.tau_m"),
    (LIF_CONFIG, "network.params", {"tau_m": True}, "network.params.tau_m"),
    (LIF_CONFIG, "inputs.post_rates", "10 Hz", "inputs.post_rates"),
    (LIF_CONFIG, "record.spikez", True, "record.spikez"),
    (PAIR_CONFIG, "inputs.post_rates", _DELETE, "inputs.post_rates"),
    (PAIR_CONFIG, "inputs.post_rates", ["1 Hz", "2 Hz"], "inputs.post_rates"),
    (PAIR_CONFIG, "inputs.kind", "gaussian", "inputs"),
]


@pytest.mark.parametrize("base, key, value, expected", BAD,
                         ids=[f"{k}={v if v is not _DELETE else 'missing'}" for _, k, v, _ in BAD])
def test_bad_spiking_config_exits_2(base, key, value, expected, tmp_path, write_config, capsys):
    assert_run_rejected(write_config(_set(base, key, value)), tmp_path / "out", expected, capsys)


def test_rate_model_rejects_spiking_rule_and_poisson_inputs(base_config):
    from plasticity.errors import ConfigError

    with pytest.raises(ConfigError, match="rule.name"):
        validate(_set(base_config, "rule", {"name": "stdp"}))
    with pytest.raises(ConfigError, match="inputs"):
        validate(_set(base_config, "inputs", {"kind": "poisson", "rates": "5 Hz"}))


def test_rules_lists_spiking_rules(capsys):
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    assert "stdp:" in out and "triplet:" in out and "bounds = 'hard'" in out
    assert RULES["triplet"].losses == ("triplet_bcm",)


def test_drift_formulas():
    rates = SpikeRates(pre=np.array([[10.0, 20.0]]), post=np.array([[30.0]]))
    W = np.array([[[0.2, 0.5]]])
    stdp = RULES["stdp"]
    p = stdp.resolve({"w_max": 1.0, "A_plus": 0.01, "A_minus": 0.02})
    dW, _ = stdp.drift(W, {}, rates, p)
    rxry = np.array([10.0, 20.0]) * 30.0
    np.testing.assert_allclose(dW[0, 0], rxry * (0.01 * 0.02 - 0.02 * 0.02))
    p_soft = {**p, "bounds": "soft"}
    dW, _ = stdp.drift(W, {}, rates, p_soft)
    np.testing.assert_allclose(dW[0, 0], rxry * (0.01 * 0.02 * (1 - W[0, 0]) - 0.02 * 0.02 * W[0, 0]))

    trip = RULES["triplet"]
    q = trip.resolve({})
    theta = Triplet.threshold(q)
    assert theta == pytest.approx(7.1e-3 * 33.7e-3 / (6.5e-3 * 16.8e-3 * 114e-3))
    assert 19.0 < theta < 19.4
    for ry, sign in ((theta * 0.9, -1), (theta * 1.1, 1)):
        dW, _ = trip.drift(W, {}, SpikeRates(np.array([[10.0, 20.0]]), np.array([[ry]])), q)
        assert np.all(np.sign(dW) == sign)


def test_triplet_objective_gradient_is_minus_drift():
    q = RULES["triplet"].resolve({})
    rng = np.random.default_rng(0)
    W = rng.uniform(0, 1, (3, 2, 5))
    rx = rng.uniform(5, 30, (3, 5))
    values, grad = bcm_objective(W, rx, q)
    eps = 1e-6
    for idx in [(0, 0, 0), (1, 1, 3), (2, 0, 4)]:
        Wp = W.copy()
        Wp[idx] += eps
        Wm = W.copy()
        Wm[idx] -= eps
        fd = (bcm_objective(Wp, rx, q)[0][idx[0]] - bcm_objective(Wm, rx, q)[0][idx[0]]) / (2 * eps)
        assert grad[idx] == pytest.approx(fd, rel=1e-5)
    # with y = W r_x (linear neuron), the rate-limit drift is minus the gradient
    y = np.einsum("bji,bi->bj", W, rx)
    dW, _ = RULES["triplet"].drift(W, {}, SpikeRates(rx, y), q)
    np.testing.assert_allclose(dW, -grad, rtol=1e-12)


def test_spiking_run_file_layout(tmp_path, write_config):
    run = run_in_process([write_config(PAIR_CONFIG)], tmp_path / "out")
    with h5py.File(run) as f:
        assert f.attrs["status"] == "complete" and f.attrs["kind"] == "spiking"
        assert f.attrs["rule"] == "stdp" and f.attrs["model"] == "poisson_pair"
        T = f["time"].shape[0]
        assert T == 21 and f["weights"].shape == (T, 30)
        assert f["rates/pre"].shape == (T, 10) and f["rates/post"].shape == (T, 3)
        assert np.all(np.isnan(f["rates/pre"][0])) and np.all(np.isfinite(f["rates/pre"][1:]))
        post_rates = f["rates/post"][1:].mean(axis=0)
        np.testing.assert_allclose(post_rates, [10, 20, 40], rtol=0.6)
        # the streamed spikes agree with the rates
        for pop, rates in (("inputs", f["rates/pre"]), ("neurons", f["rates/post"])):
            t, i = f[f"spikes/{pop}/t"][()], f[f"spikes/{pop}/i"][()]
            assert t.shape == i.shape and np.all(np.diff(t) >= 0) and t.max() <= 2.0
            counts = np.bincount(i, minlength=rates.shape[1])
            np.testing.assert_allclose(counts, np.nansum(rates[()], axis=0) * 0.1, atol=1e-6)
        np.testing.assert_allclose(f["inputs/rates"][()], 20.0)
        assert "config" in f and f["synapses/pre"].shape == (30,)


def test_lif_run_fires_and_clips(tmp_path, write_config):
    run = run_in_process([write_config(LIF_CONFIG)], tmp_path / "out")
    with h5py.File(run) as f:
        w = f["weights"][()]
        assert np.all((w >= 0) & (w <= 0.1))
        assert np.any(w[-1] != w[0])
        assert np.nansum(f["rates/post"][()]) > 0


def _drift_check(rule_name, params, n_post, post_rate, tmp_path, write_config, duration="10 s",
                 n_pre=20, init=0.25, seed=5):
    """Simulate independent Poisson trains; return (measured, predicted, standard error)
    of the mean drift per synapse, over n_post independent postsynaptic neurons."""
    data = copy.deepcopy(PAIR_CONFIG)
    data.update(seed=seed)
    data["network"].update(n_pre=n_pre, n_post=n_post, init={"distribution": "constant", "value": init})
    data["inputs"]["post_rates"] = f"{post_rate} Hz"
    data["rule"] = {"name": rule_name, **params}
    data["simulation"]["duration"] = duration
    data["record"] = {"every": "500 ms"}
    run = run_in_process([write_config(data)], tmp_path / f"out_{rule_name}")
    rule = RULES[rule_name]
    resolved = rule.resolve(params)
    with h5py.File(run) as f:
        t = f["time"][()]
        w = f["weights"][()]
        post = f["synapses/post"][()]
        pre = f["synapses/pre"][()]
        rates = SpikeRates(f["rates/pre"][1:], f["rates/post"][1:])
    # per interval: the formula at the interval's measured rates and starting weights
    W = np.zeros((len(t) - 1, n_post, n_pre))
    W[:, post, pre] = w[:-1]
    dW, _ = rule.drift(W, {}, rates, resolved)
    predicted = (dW[:, post, pre] * np.diff(t)[:, None]).sum(0) / (t[-1] - t[0])
    measured = (w[-1] - w[0]) / (t[-1] - t[0])
    per_neuron_m = np.array([measured[post == j].mean() for j in range(n_post)])
    per_neuron_p = np.array([predicted[post == j].mean() for j in range(n_post)])
    diff = per_neuron_m - per_neuron_p
    return per_neuron_m.mean(), per_neuron_p.mean(), diff.std(ddof=1) / np.sqrt(n_post)


def test_pair_stdp_drift_matches_rate_limit(tmp_path, write_config):
    """Soft-bound pair STDP, independent Poisson trains: the mean weight change per unit
    time agrees with r_x r_y (A+ tau+ (w_max - w) - A- tau- w) within 4 standard errors
    (measured over 6 independent postsynaptic neurons) and 10 %."""
    m, p, se = _drift_check("stdp", {"bounds": "soft", "w_max": 1.0, "A_plus": 0.01,
                                     "A_minus": 0.01}, 6, 30, tmp_path, write_config)
    assert p > 0
    assert abs(m - p) < max(4 * se, 0.02 * abs(p)), (m, p, se)
    assert abs(m - p) < 0.1 * abs(p), (m, p, se)
