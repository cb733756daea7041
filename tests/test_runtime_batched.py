"""The batched steps of rate networks (plasticity.sim.rate): on the runtime device
diagonal Gaussian inputs drawn by numpy.random.Generator in one call and the output
sum of all-to-all synapses as a matrix product; on cpp_standalone that sum as a dot
product per output. Each against what Brian2's own objects compute."""

import h5py
import numpy as np
import pytest

import plasticity.sim.rate as rate
from plasticity.config import validate
from plasticity.sim import run


def _weights(path):
    with h5py.File(path, "r") as f:
        return f["weights"][()], {k: f["state"][k][()] for k in f.get("state", {})}


def _diagonal(config, **network):
    return {**config, "network": {**config["network"], **network},
            "inputs": {"kind": "gaussian", "spectrum": [3.0, 1.0, 0.5, 0.25][:config["network"]["n_pre"]],
                       "rotation": "identity"}}


@pytest.mark.parametrize("kind", ["patterns", "diagonal"])
def test_matrix_sum_gives_the_summed_variable(tmp_path, monkeypatch, bcm_config, base_config, kind):
    # the same run with Brian2's summed variable (is_all_to_all forced false) and with
    # the matrix product: the same inputs, so the same weights and state up to the
    # order of the floating-point additions
    config = bcm_config if kind == "patterns" else _diagonal(base_config)
    experiment = validate(config)
    used = []
    real = rate.matrix_sum
    monkeypatch.setattr(rate, "matrix_sum", lambda *a: used.append(1) or real(*a))
    batched = _weights(run(experiment, tmp_path / "a", progress=False))
    assert used == [1]
    monkeypatch.setattr(rate, "is_all_to_all", lambda *a: False)
    summed = _weights(run(experiment, tmp_path / "b", progress=False))
    assert len(used) == 1
    np.testing.assert_allclose(batched[0], summed[0], rtol=1e-12, atol=1e-14)
    for name in summed[1]:
        np.testing.assert_allclose(batched[1][name], summed[1][name], rtol=1e-12, atol=1e-14)
    # the run moved the weights: equal trajectories are not two frozen ones
    assert np.ptp(summed[0], axis=0).max() > 1e-3


@pytest.mark.slow
def test_standalone_matrix_sum_gives_the_summed_variable(tmp_path, monkeypatch, bcm_config):
    # patterns inputs (drawn by Brian2's rand(), the same in both builds), BCM with
    # its postsynaptic threshold: the whole trajectory with and without the dot product
    config = {**bcm_config, "simulation": {**bcm_config["simulation"], "device": "cpp_standalone"}}
    experiment = validate(config)
    used = []
    real = rate.standalone_matrix_sum
    monkeypatch.setattr(rate, "standalone_matrix_sum", lambda *a: used.append(1) or real(*a))
    batched = _weights(run(experiment, tmp_path / "a", progress=False, build_dir=tmp_path / "build_a"))
    assert used == [1]
    monkeypatch.setattr(rate, "is_all_to_all", lambda *a: False)
    summed = _weights(run(experiment, tmp_path / "b", progress=False, build_dir=tmp_path / "build_b"))
    assert len(used) == 1
    np.testing.assert_allclose(batched[0], summed[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(batched[1]["theta"], summed[1]["theta"], rtol=1e-12, atol=1e-14)
    assert np.ptp(summed[0], axis=0).max() > 1e-3


def test_all_to_all_is_recognised():
    pre, post = np.repeat(np.arange(3), 2), np.tile(np.arange(2), 3)
    assert rate.is_all_to_all(rate.Topology(pre, post), 3, 2)
    assert not rate.is_all_to_all(rate.Topology(pre[::-1].copy(), post), 3, 2)
    assert not rate.is_all_to_all(rate.Topology(pre[:-1], post[:-1]), 3, 2)
    assert not rate.is_all_to_all(rate.Topology(np.tile(np.arange(3), 2), np.repeat(np.arange(2), 3)), 3, 2)


def test_numpy_input_draws_are_seeded_and_have_the_configured_moments():
    import brian2 as b2

    from plasticity.inputs import InputStats

    b2.set_device("runtime")
    stats = InputStats.gaussian(3, np.random.default_rng(0), spectrum=[4.0, 1.0, 0.25],
                                rotation="identity", mean=[1.0, 0.0, -2.0])
    samples = []
    for seed in (5, 5, 6):
        group = b2.NeuronGroup(3, "x : 1\nxbar : 1 (constant)\nsd : 1 (constant)")
        draw = rate.numpy_input_draw(group, stats, rate.input_generator(seed))
        monitor = b2.StateMonitor(group, "x", record=True, when="end")
        b2.Network(group, draw, monitor).run(4000 * b2.defaultclock.dt, namespace={})
        samples.append(np.array(monitor.x).T)
    np.testing.assert_array_equal(samples[0], samples[1])
    assert not np.array_equal(samples[0], samples[2])
    x = samples[0]
    n = x.shape[0]
    # each input's mean and variance within 5 standard errors of the configured ones
    assert np.all(np.abs(x.mean(axis=0) - [1.0, 0.0, -2.0]) < 5 * np.sqrt([4.0, 1.0, 0.25] / np.array(n)))
    assert np.all(np.abs(x.var(axis=0) / [4.0, 1.0, 0.25] - 1) < 5 * np.sqrt(2 / n))
    # a fresh draw every step: consecutive values uncorrelated
    lag = [np.corrcoef(x[1:, j], x[:-1, j])[0, 1] for j in range(3)]
    assert np.all(np.abs(lag) < 5 / np.sqrt(n))
