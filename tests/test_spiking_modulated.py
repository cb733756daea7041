"""Poisson inputs whose rates are modulated by the rate models' inputs (issue 4, item 1):
``inputs.modulation = "patterns" | "gaussian"``, rate_i(t) = max(0, rates + gain·x_i(t))
with x drawn as in the rate models and held for ``modulation_interval``. Short runs:
the measured input rates follow the modulation, bad configs exit 2, /inputs holds the
modulation statistics."""

import copy

import h5py
import numpy as np
import pytest

from conftest import assert_run_rejected
from plasticity.config import validate
from plasticity.inputs import InputStats
from plasticity.io.codecs import read_input_stats
from plasticity.sim import run

N = 40
HALF = N // 2
#: two patterns on disjoint halves, shown with probabilities 0.3 / 0.7
PATTERNS = [[1.0] * HALF + [0.0] * HALF, [0.0] * HALF + [1.0] * HALF]

#: independent Poisson post neurons (poisson_pair): only the input side matters here;
#: one record per modulation interval, so each row of /rates/pre is one presentation
PATTERN_CONFIG = {
    "name": "modulated_patterns",
    "seed": 5,
    "network": {"model": "poisson_pair", "n_pre": N, "n_post": 1,
                "init": {"distribution": "constant", "value": 0.5}},
    "inputs": {"kind": "poisson", "rates": "5 Hz", "post_rates": "10 Hz",
               "modulation": "patterns", "patterns": PATTERNS, "probabilities": [0.3, 0.7],
               "gain": "50 Hz", "modulation_interval": "20 ms"},
    "rule": {"name": "stdp", "bounds": "soft", "w_max": 1.0},
    "simulation": {"duration": "6 s", "dt": "0.1 ms", "device": "runtime"},
    "record": {"every": "20 ms"},
}


def _with(data, **inputs):
    data = copy.deepcopy(data)
    for key, value in inputs.items():
        if value is None:
            data["inputs"].pop(key, None)
        else:
            data["inputs"][key] = value
    return data


@pytest.fixture(scope="module")
def pattern_run(tmp_path_factory):
    path = run(validate(PATTERN_CONFIG), tmp_path_factory.mktemp("patterns"), progress=False)
    with h5py.File(path, "r") as f:
        rates = f["rates/pre"][1:]
    return path, rates


def test_pattern_modulated_rates_follow_the_presented_pattern(pattern_run):
    _, rates = pattern_run
    first, second = rates[:, :HALF].mean(axis=1), rates[:, HALF:].mean(axis=1)
    shown_first = first > second
    # each row is one presentation: one half at 5 + 50 = 55 Hz, the other at 5 Hz, never
    # both high (a pattern held for exactly one record interval)
    assert np.mean((first > 30) & (second > 30)) < 0.02
    active = np.concatenate([rates[shown_first, :HALF].ravel(), rates[~shown_first, HALF:].ravel()])
    inactive = np.concatenate([rates[shown_first, HALF:].ravel(), rates[~shown_first, :HALF].ravel()])
    assert active.mean() == pytest.approx(55.0, rel=0.08)
    assert inactive.mean() == pytest.approx(5.0, rel=0.2)
    # pattern 0 is shown with probability 0.3 (300 presentations: s.e. 0.026)
    assert shown_first.mean() == pytest.approx(0.3, abs=0.1)
    # over the whole run each input's rate correlates with its pattern membership
    membership = np.r_[np.ones(HALF), np.zeros(HALF)]
    per_row = np.array([np.corrcoef(row, membership)[0, 1] for row in rates])
    assert np.all(np.sign(per_row) == np.where(shown_first, 1, -1))
    mean_rate = rates.mean(axis=0)
    expected = 5.0 + 50.0 * (0.3 * membership + 0.7 * (1 - membership))
    assert np.abs(mean_rate - expected).max() < 0.35 * 50.0
    assert np.corrcoef(mean_rate, expected)[0, 1] > 0.9


def test_modulated_run_file_has_modulation_stats(pattern_run):
    path, _ = pattern_run
    with h5py.File(path, "r") as f:
        assert f.attrs["kind"] == "spiking"
        group = f["inputs"]
        attrs = dict(group.attrs)
        assert attrs["kind"] == "patterns" and attrs["modulation"] == "patterns"
        assert bool(attrs["poisson"])
        assert attrs["gain"] == pytest.approx(50.0)
        assert attrs["interval"] == pytest.approx(0.02)
        assert attrs["baseline"] == pytest.approx(5.0)
        np.testing.assert_allclose(group["rates"][()], 5.0)
        np.testing.assert_allclose(group["patterns"][()], PATTERNS)
        np.testing.assert_allclose(group["probabilities"][()], [0.3, 0.7])
        stats = read_input_stats(group)
    assert stats.n == N
    np.testing.assert_allclose(stats.mean, [0.3] * HALF + [0.7] * HALF)


def test_gaussian_modulation_correlates_the_inputs_of_one_block(tmp_path):
    # inputs 0-9 share one Gaussian x (covariance block of ones), inputs 10-19 have x = 0:
    # the first block's rates move together across records, the second's do not
    n = 20
    C = np.zeros((n, n))
    C[:10, :10] = 1.0
    data = _with(PATTERN_CONFIG, modulation="gaussian", patterns=None, probabilities=None,
                 covariance=C.tolist(), rates="20 Hz", gain="15 Hz",
                 modulation_interval="100 ms")
    data["network"]["n_pre"] = n
    data["simulation"]["duration"] = "8 s"
    data["record"]["every"] = "100 ms"
    path = run(validate(data), tmp_path, progress=False)
    with h5py.File(path, "r") as f:
        rates = f["rates/pre"][1:]
        assert f["inputs"].attrs["kind"] == "gaussian"
        np.testing.assert_allclose(f["inputs/covariance"][()], C, atol=1e-12)
    r_corr = np.corrcoef(rates[:, :5].mean(1), rates[:, 5:10].mean(1))[0, 1]
    r_ind = np.corrcoef(rates[:, 10:15].mean(1), rates[:, 15:].mean(1))[0, 1]
    assert r_corr > 0.5, r_corr
    assert abs(r_ind) < 0.4, r_ind
    # E[max(0, 20 + 15 x)] ≈ 20.2 Hz for the modulated block; 20 Hz for the constant one
    assert rates[:, :10].mean() == pytest.approx(20.2, rel=0.15)
    assert rates[:, 10:].mean() == pytest.approx(20.0, rel=0.1)
    assert rates[:, :10].mean(1).std() > 2 * rates[:, 10:].mean(1).std()


BAD = [
    # (changes to PATTERN_CONFIG's inputs, text the one-line message must contain)
    ({"patterns": None, "probabilities": None}, "'patterns'"),
    ({"modulation": "sinusoid"}, "inputs.modulation"),
    ({"gain": None}, "'gain'"),
    ({"modulation_interval": None}, "'modulation_interval'"),
    ({"modulation": None}, "'patterns' does not belong"),
    ({"modulation": None, "patterns": None, "probabilities": None}, "'gain' does not belong"),
    ({"modulation": "gaussian"}, "'spectrum' or 'covariance'"),
    ({"modulation_interval": "0.25 ms"}, "inputs.modulation_interval"),
    ({"gain": "5 mV"}, "inputs.gain"),
    ({"rates": ["5 Hz"] * 3}, "'rates'"),
]


@pytest.mark.parametrize("changes, expected", BAD, ids=[e for _, e in BAD])
def test_bad_modulation_config_exits_2(changes, expected, tmp_path, write_config, capsys):
    assert_run_rejected(write_config(_with(PATTERN_CONFIG, **changes)), tmp_path / "out", expected,
                        capsys)


def test_modulation_on_rate_inputs_is_rejected(base_config):
    from plasticity.errors import ConfigError

    data = copy.deepcopy(base_config)
    data["inputs"]["modulation"] = "gaussian"
    with pytest.raises(ConfigError, match="'modulation' belongs to kind"):
        validate(data)
