"""The cpp_standalone device: same file layout as runtime, reproducible, streamed
(a run killed mid-way keeps its records), divergence and SIGINT handled, and the
``auto`` choice. The first test to build a model compiles it (a few seconds); later
runs of the same model reuse the build folder."""

import signal

import h5py
import numpy as np
import pytest

from plasticity.config import validate
from plasticity.errors import Diverged
from plasticity.sim import choose_device, run

from conftest import BASE_CONFIG, BCM_CONFIG, wait_for_records


def _experiment(config, device, **changes):
    data = {**config, "simulation": {**config["simulation"], "device": device}}
    for key, value in changes.items():
        section, name = key.split("__")
        data[section] = {**data[section], name: value}
    return validate(data)


def _read(path):
    with h5py.File(path, "r") as f:
        datasets = {}
        f.visititems(lambda name, obj: datasets.__setitem__(name, obj.shape)
                     if isinstance(obj, h5py.Dataset) else None)
        return {"attrs": dict(f.attrs), "datasets": datasets,
                "time": f["time"][()], "weights": f["weights"][()],
                "state": {k: f["state"][k][()] for k in f.get("state", {})}}


def test_same_layout_as_runtime(tmp_path, bcm_config):
    runtime = _read(run(_experiment(bcm_config, "runtime"), tmp_path / "rt", progress=False))
    standalone = _read(run(_experiment(bcm_config, "cpp_standalone"), tmp_path / "sa",
                           progress=False))
    assert standalone["attrs"]["status"] == "complete"
    assert standalone["attrs"]["device"] == "cpp_standalone"
    assert standalone["datasets"] == runtime["datasets"]
    assert set(runtime["attrs"]) <= set(standalone["attrs"])
    # records at 0, every, ..., duration: the state at the start of each step
    np.testing.assert_allclose(standalone["time"], np.arange(51) * 0.01, atol=1e-12)
    np.testing.assert_array_equal(standalone["time"], runtime["time"])
    np.testing.assert_array_equal(standalone["weights"][0], runtime["weights"][0])
    np.testing.assert_array_equal(standalone["state"]["theta"][0], runtime["state"]["theta"][0])
    assert np.all(np.isfinite(standalone["weights"]))
    assert not np.array_equal(standalone["weights"][-1], standalone["weights"][0])


def test_same_seed_same_numbers(tmp_path, bcm_config):
    first = _read(run(_experiment(bcm_config, "cpp_standalone"), tmp_path, progress=False))
    again = _read(run(_experiment(bcm_config, "cpp_standalone"), tmp_path, progress=False))
    np.testing.assert_array_equal(first["weights"], again["weights"])
    np.testing.assert_array_equal(first["state"]["theta"], again["state"]["theta"])
    other = _read(run(_experiment({**bcm_config, "seed": bcm_config["seed"] + 1},
                                  "cpp_standalone"), tmp_path, progress=False))
    assert not np.array_equal(first["weights"][-1], other["weights"][-1])


def test_divergence_keeps_the_log(tmp_path, base_config):
    config = {**base_config, "rule": {"name": "hebbian", "eta": "1 Hz"}}
    experiment = _experiment(config, "cpp_standalone", simulation__duration="50 s",
                             simulation__weight_bound=5.0)
    with pytest.raises(Diverged) as caught:
        run(experiment, tmp_path, progress=False)
    data = _read(caught.value.path)
    assert data["attrs"]["status"] == "diverged"
    assert np.abs(data["weights"][-1]).max() > 5.0
    assert np.abs(data["weights"][:-1]).max() <= 5.0
    assert data["time"][-1] == pytest.approx(caught.value.time)
    assert data["time"][-1] < 50


def _long_config(write_config, base_config):
    # about a minute of records (one per step): still running when killed
    config = {**base_config, "name": "long_standalone",
              "simulation": {**base_config["simulation"], "duration": "3000 s",
                             "device": "cpp_standalone"},
              "record": {"every": "1 ms"}}
    return write_config(config)


def test_sigkill_leaves_a_readable_file(start_cli, write_config, base_config, tmp_path):
    process = start_cli("run", _long_config(write_config, base_config), "-q")
    path = wait_for_records(tmp_path / "results", minimum=1, process=process, timeout=120)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] != "complete"
        records = f["time"].shape[0]
        assert records >= 1
        assert f["weights"].shape == (records, 8)
        assert np.all(np.diff(f["time"][()]) > 0)


def test_sigint_ends_as_interrupted(start_cli, write_config, base_config, tmp_path):
    process = start_cli("run", _long_config(write_config, base_config), "-q")
    path = wait_for_records(tmp_path / "results", minimum=1, process=process, timeout=120)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert out.strip().splitlines()[-1].endswith(path.name)
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "interrupted"
        assert f["time"].shape[0] >= 1


def test_auto_picks_standalone_for_long_runs():
    short = _experiment(BASE_CONFIG, "auto")
    long = _experiment(BASE_CONFIG, "auto", simulation__duration="2000 s")
    big = _experiment(BCM_CONFIG, "auto")
    assert choose_device(short, 8) == "runtime"
    assert choose_device(long, 8) == "cpp_standalone"
    assert choose_device(big, 8) == "runtime"
    assert choose_device(_experiment(BASE_CONFIG, "runtime", simulation__duration="2000 s"),
                         8) == "runtime"
    assert choose_device(_experiment(BASE_CONFIG, "cpp_standalone"), 8) == "cpp_standalone"


def test_changed_values_compile_nothing(tmp_path, bcm_config):
    """Another seed, eta, tau_theta and duration: the program of the first run is
    reused as it is (no object file or program rebuilt), and the values take effect."""
    build = tmp_path / "build"
    first = _read(run(_experiment(bcm_config, "cpp_standalone"), tmp_path / "a",
                      progress=False, build_dir=build))
    built = {p.name: p.stat().st_mtime_ns for p in build.rglob("*") if p.suffix == ".o" or p.name == "main"}
    changed = {**bcm_config, "seed": bcm_config["seed"] + 5,
               "rule": {**bcm_config["rule"], "eta": "0.3 Hz", "tau_theta": "20 ms"}}
    other = _read(run(_experiment(changed, "cpp_standalone", simulation__duration="0.3 s"),
                      tmp_path / "b", progress=False, build_dir=build))
    assert {p.name: p.stat().st_mtime_ns for p in build.rglob("*")
            if p.suffix == ".o" or p.name == "main"} == built
    assert len(other["time"]) == 31
    # the same seed with only eta changed: another trajectory from the same start
    faster = _read(run(_experiment({**bcm_config, "rule": {**bcm_config["rule"], "eta": "0.3 Hz"}},
                                   "cpp_standalone"), tmp_path / "c", progress=False,
                       build_dir=build))
    np.testing.assert_array_equal(faster["weights"][0], first["weights"][0])
    assert not np.allclose(faster["weights"][-1], first["weights"][-1])


def test_auto_rule_for_spiking_models():
    from plasticity.config import load_config

    from conftest import EXPERIMENTS

    song = EXPERIMENTS / "stdp_song2000.toml"
    assert choose_device(load_config(song)) == "cpp_standalone"            # 100 s
    assert choose_device(load_config(song, ['simulation.duration="1 s"'])) == "runtime"
    assert choose_device(load_config(EXPERIMENTS / "ei_network_large.toml")) == "cpp_standalone"
