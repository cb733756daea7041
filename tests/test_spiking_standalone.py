"""Spiking networks on cpp_standalone: the same run file as on the runtime device
(weights, rates per record interval, streamed spikes), one compiled program for runs
that differ in seed, duration, parameter values or initial values, and the same
weight distribution as the runtime device (Song et al. 2000, slow). The two-sample
test of weight histograms (plasticity.analysis.devices) gets its own calibration and
power tests on synthetic runs."""

import copy

import h5py
import numpy as np
import pytest

from conftest import EXPERIMENTS
from plasticity.analysis.devices import compare_weight_histograms
from plasticity.config import load_config, validate
from plasticity.sim import run

from test_spiking import LIF_CONFIG, PAIR_CONFIG


def _config(base, device, **changes):
    data = copy.deepcopy(base)
    data["simulation"]["device"] = device
    for dotted, value in changes.items():
        node = data
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return validate(data)


def _read(path):
    with h5py.File(path, "r") as f:
        datasets = {}
        f.visititems(lambda name, obj: datasets.__setitem__(name, obj.shape[1:])
                     if isinstance(obj, h5py.Dataset) else None)
        return {"attrs": dict(f.attrs), "datasets": datasets, "time": f["time"][()],
                "weights": f["weights"][()], "pre": f["rates/pre"][()],
                "post": f["rates/post"][()],
                "spikes": {p: (f[f"spikes/{p}/t"][()], f[f"spikes/{p}/i"][()])
                           for p in f.get("spikes", {})}}


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    """One build folder for the module: its first run compiles, later ones reuse it."""
    return tmp_path_factory.mktemp("standalone-build")


def _compiled(folder):
    """Modification times of the program and its object files."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()
            if p.suffix == ".o" or p.name == "main"}


def test_same_run_file_as_runtime(tmp_path, build_dir):
    spikes = {"record__spikes": True}
    runtime = _read(run(_config(LIF_CONFIG, "runtime", **spikes), tmp_path / "rt", progress=False))
    standalone = _read(run(_config(LIF_CONFIG, "cpp_standalone", **spikes), tmp_path / "sa",
                           progress=False, build_dir=build_dir))
    assert standalone["attrs"]["status"] == "complete"
    assert standalone["attrs"]["device"] == "cpp_standalone"
    assert standalone["attrs"]["kind"] == "spiking"
    # the same datasets with the same row shapes (lengths: spike counts differ)
    assert standalone["datasets"] == runtime["datasets"]
    assert set(runtime["attrs"]) <= set(standalone["attrs"])
    np.testing.assert_allclose(standalone["time"], runtime["time"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(standalone["weights"][0], runtime["weights"][0])
    assert np.isnan(standalone["pre"][0]).all() and np.isnan(standalone["post"][0]).all()
    # 100 inputs at 15 Hz: the mean input rate over 0.5 s near 15 Hz (sd ~0.55 Hz)
    assert abs(np.mean(standalone["pre"][1:]) - 15) < 3
    assert not np.array_equal(standalone["weights"][-1], standalone["weights"][0])
    # the rates are the streamed spikes counted per record interval
    times = standalone["time"]
    for population, rates in (("inputs", standalone["pre"]), ("neurons", standalone["post"])):
        t, i = standalone["spikes"][population]
        assert t.size and np.all(np.diff(t) >= 0)
        for k in (1, 5, len(times) - 1):
            inside = (t >= times[k - 1] - 1e-9) & (t < times[k] - 1e-9)
            counts = np.bincount(i[inside], minlength=rates.shape[1])
            np.testing.assert_allclose(counts / (times[k] - times[k - 1]), rates[k])


def test_changed_values_reuse_the_program(tmp_path, build_dir):
    """Seed, duration, rule parameters, neuron parameters and initial weights are
    handed to the program when it starts: no file is compiled again, and each value
    takes effect."""
    first = _read(run(_config(LIF_CONFIG, "cpp_standalone"), tmp_path / "a", progress=False,
                      build_dir=build_dir))
    built = _compiled(build_dir)
    assert "main" in built
    # next to no plasticity: the weights stay at their (other) initial values
    frozen = _read(run(_config(LIF_CONFIG, "cpp_standalone", seed=7, rule__A_plus=1e-9,
                               rule__A_minus=1e-9, simulation__duration="0.3 s",
                               network__init={"distribution": "constant", "value": 0.07}),
                       tmp_path / "b", progress=False, build_dir=build_dir))
    assert _compiled(build_dir) == built
    assert len(frozen["time"]) == 7                      # 0.3 s every 50 ms
    np.testing.assert_allclose(frozen["weights"], 0.07, rtol=0, atol=1e-8)
    assert not np.array_equal(frozen["pre"][1:], first["pre"][1:7])     # another seed
    # a neuron parameter: a threshold far above the drive silences the neuron
    silent = _read(run(_config(LIF_CONFIG, "cpp_standalone",
                               network__params={"V_th": "10 mV"}),
                       tmp_path / "c", progress=False, build_dir=build_dir))
    assert _compiled(build_dir) == built
    assert np.all(silent["post"][1:] == 0) and np.any(first["post"][1:] > 0)
    # and the same seed gives the same numbers
    again = _read(run(_config(LIF_CONFIG, "cpp_standalone"), tmp_path / "d", progress=False,
                      build_dir=build_dir))
    np.testing.assert_array_equal(again["weights"], first["weights"])
    np.testing.assert_array_equal(again["post"], first["post"])


# --- the two-sample test of weight histograms -------------------------------------

def _synthetic_runs(rng, n_runs, top_fraction, n_weights=1000):
    """Runs of U-shaped weights in [0, 1]: a run-level random share of the weights near
    1 (around ``top_fraction``), the rest near 0, as additive STDP leaves them."""
    runs = []
    for _ in range(n_runs):
        share = np.clip(rng.normal(top_fraction, 0.05), 0.01, 0.99)
        top = rng.random(n_weights) < share
        runs.append(np.where(top, 1 - rng.beta(1, 8, n_weights), rng.beta(1, 8, n_weights)))
    return runs


def test_histogram_test_false_alarm_rate():
    """Both groups from one distribution of runs: at level 0.05 the test rejects in
    at most ~5% of 300 repetitions (exact permutation test; binomial sd 1.3%)."""
    rng = np.random.default_rng(11)
    rejections = sum(compare_weight_histograms(_synthetic_runs(rng, 5, 0.4),
                                               _synthetic_runs(rng, 5, 0.4), 0, 1).pvalue < 0.05
                     for _ in range(300))
    assert rejections / 300 <= 0.05 + 3 * 0.013


def test_histogram_test_power():
    """Groups whose share of strong weights differs by 0.15 (3 run-to-run sd): the
    test rejects at level 0.05 in at least 80% of 100 repetitions."""
    rng = np.random.default_rng(12)
    rejections = sum(compare_weight_histograms(_synthetic_runs(rng, 5, 0.35),
                                               _synthetic_runs(rng, 5, 0.5), 0, 1).pvalue < 0.05
                     for _ in range(100))
    assert rejections >= 80


SONG = EXPERIMENTS / "stdp_song2000.toml"


@pytest.mark.slow
def test_song2000_same_weight_histogram_on_both_devices(tmp_path):
    """Song et al. 2000 (20 s, 5 seeds per device): the final weight histograms of the
    runtime and standalone devices do not differ (permutation test over runs, level
    0.01), and on both the weights have left the uniform start for the bounds: the two
    end bins hold more than 0.24 of the weights (uniform: 0.2, standard error of the
    mean over 5 runs ≈ 0.006; measured 0.28 at 20 s, 0.44 at 100 s)."""
    w_max = 0.01
    weights = {}
    for device in ("runtime", "cpp_standalone"):
        weights[device] = []
        for seed in range(1, 6):
            experiment = load_config(SONG, ['simulation.duration="20 s"', 'record.every="1 s"',
                                            f'simulation.device="{device}"'], seed=seed)
            with h5py.File(run(experiment, tmp_path / device, progress=False), "r") as f:
                weights[device].append(f["weights"][-1])
    result = compare_weight_histograms(weights["runtime"], weights["cpp_standalone"], 0, w_max)
    assert result.pvalue > 0.01, result
    for mean in (result.first, result.second):
        # the end bins gained weights (uniform start: 0.1 each)
        assert mean[0] + mean[-1] > 0.24, mean


def test_single_values_become_command_line_values():
    """What Brian2 would write into main.cpp as single values goes to the command line;
    a later array assignment of the same variable wins, as in the code; code-shaping
    assignments (array data) stay."""
    import brian2 as b2

    from plasticity.sim.standalone import _values_to_run_args

    b2.set_device("cpp_standalone", build_on_run=False)
    device = b2.get_device()
    device.reinit()
    device.activate(build_on_run=False)
    try:
        group = b2.NeuronGroup(3, "v : volt\nu : 1\ntau : second (shared, constant)", name="cells")
        group.v = -70 * b2.mV                  # overwritten by the array below
        group.v = np.array([-1.0, -2.0, -3.0]) * b2.mV
        group.u = 0.5
        group.tau = 20 * b2.ms
        group.u = -0.25                        # the last single value wins
        b2.Network(group).run(1 * b2.ms, namespace={})
        args = _values_to_run_args(device)
        assert "cells.u=-0.25" in args and "cells.tau=0.02" in args
        assert not any(a.startswith("cells.v=") for a in args)
        queued = [func for func, _ in device.main_queue]
        assert "set_by_array" in queued and "set_by_constant" not in queued
    finally:
        device.reinit()
        b2.set_device("runtime")


# --- equal time constants: one name in the code --------------------------------------

def test_equal_time_constants():
    from plasticity.rules import get_rule
    from plasticity.sim.spiking import equal_time_constants

    stdp, triplet = get_rule("stdp"), get_rule("triplet")
    params = stdp.resolve({"tau_plus": 0.02, "tau_minus": 0.02})
    assert equal_time_constants(stdp, params) == {"tau_minus": "tau_plus"}
    assert equal_time_constants(stdp, stdp.resolve({"tau_minus": 0.03})) == {}
    same = triplet.resolve({"tau_plus": 0.1, "tau_minus": 0.05, "tau_x": 0.1, "tau_y": 0.05})
    assert equal_time_constants(triplet, same) == {"tau_x": "tau_plus", "tau_y": "tau_minus"}


@pytest.mark.parametrize("tau_minus", [0.03, 0.01])
def test_equal_time_constants_give_the_same_weights(tau_minus):
    """The code with equal time constants named once (shared parameters) gives the
    weights of the code with the constants inlined, each by its own name; unequal ones
    keep their names. poisson_pair's neurons fire whatever the weights, so both runs
    see the same spikes (runtime device, NumPy target: nothing to compile)."""
    import gc

    import brian2 as b2

    from plasticity.rules import get_rule
    from plasticity.sim.rate import start_runtime
    from plasticity.sim.spiking import build_spiking_network

    experiment = _config(PAIR_CONFIG, "runtime", rule__tau_plus=0.03, rule__tau_minus=tau_minus)
    rule = get_rule("stdp")
    weights, code = [], []
    for shared in (False, True):
        start_runtime(experiment)
        b2.prefs.codegen.target = "numpy"
        try:
            parts = build_spiking_network(experiment, rule, experiment.rule.params,
                                          np.random.default_rng(experiment.seed),
                                          shared_parameters=shared)
            parts.network.run(2 * b2.second, namespace={})
            weights.append(np.array(parts.synapses.w_[:]))
            code.append(parts.synapses.pre.code + parts.synapses.post.code
                        + str(parts.synapses.event_driven))
        finally:
            b2.prefs.codegen.target = "cython"
            del parts
            gc.collect()
    assert not np.allclose(weights[0], 0.25)         # the weights moved
    np.testing.assert_allclose(weights[1], weights[0], rtol=1e-12, atol=0)
    assert ("tau_minus" in code[1]) == (tau_minus != 0.03) and "tau_minus" in code[0]


def test_build_key_has_which_time_constants_are_equal():
    from plasticity.sim.standalone import model_key

    def key(tau_plus, tau_minus):
        return model_key(_config(LIF_CONFIG, "cpp_standalone", rule__tau_plus=tau_plus,
                                 rule__tau_minus=tau_minus))

    assert key(0.02, 0.02) == key(0.03, 0.03)
    assert key(0.02, 0.03) == key(0.02, 0.04) != key(0.02, 0.02)
