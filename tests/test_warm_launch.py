"""Warm launch of a built cpp_standalone program (rate networks): a run of a model
whose build folder holds a launch record starts the program without Brian2, and its
run file is the one the full path (Brian2 generating the code) writes, bit for bit.
Anything the record cannot vouch for takes the full path.

One program is compiled for the whole module (the ``built`` fixture, through the
command line in a cache of its own); every other run reuses it."""

import json
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from plasticity.config import validate
from plasticity.sim import run, standalone

from conftest import BASE_CONFIG, cli_env, plasticity_command, wait_for_records

#: a small Oja network on diagonal Gaussian inputs (the case the launch record covers)
CONFIG = {**BASE_CONFIG, "name": "tiny_warm",
          "inputs": {**BASE_CONFIG["inputs"], "rotation": "identity"},
          "simulation": {**BASE_CONFIG["simulation"], "device": "cpp_standalone"}}

#: run-file attributes that are times or the writer's identity, not results
TIMINGS = {"created", "finished", "writer_pid", "wall_time", "build_time"}


def _config(**changes):
    data = json.loads(json.dumps(CONFIG))
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            data[section][name] = value
        else:
            data[section] = value
    return data


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A cache whose one build folder holds the compiled program of CONFIG's model."""
    import tomli_w

    root = tmp_path_factory.mktemp("warm")
    config = root / "config.toml"
    config.write_text(tomli_w.dumps(CONFIG))
    env = dict(cli_env(), PLASTICITY_CACHE=str(root / "cache"))
    done = subprocess.run(plasticity_command() + ["run", str(config), "--out", str(root / "out"),
                                                  "-q"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    folders = [p for p in (root / "cache" / "standalone").iterdir() if p.is_dir()]
    assert len(folders) == 1
    assert (folders[0] / standalone.LAUNCH_RECORD).is_file()
    return {"root": root, "cache": root / "cache", "folder": folders[0], "env": env}


@pytest.fixture
def cache(built, monkeypatch):
    monkeypatch.setenv("PLASTICITY_CACHE", str(built["cache"]))
    return built


def _run(data, out, build_dir=None):
    path = run(validate(data), out, progress=False, build_dir=build_dir)
    return path, dict(standalone.run.last_timings)


def _contents(path):
    with h5py.File(path, "r") as f:
        datasets = {}
        f.visititems(lambda name, obj: datasets.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: v for k, v in f.attrs.items() if k not in TIMINGS}
    return datasets, attrs


def _assert_same_file(first, second):
    data_a, attrs_a = _contents(first)
    data_b, attrs_b = _contents(second)
    assert sorted(data_a) == sorted(data_b)
    for name in data_a:
        assert np.asarray(data_a[name]).tobytes() == np.asarray(data_b[name]).tobytes(), name
    assert attrs_a.keys() == attrs_b.keys()
    for key in attrs_a:
        assert np.array_equal(np.asarray(attrs_a[key]), np.asarray(attrs_b[key])), key


def _cold(data, out, folder, build_dir=None):
    """The full path for ``data`` on the same program: without the launch record."""
    (folder / standalone.LAUNCH_RECORD).unlink()
    path, timings = _run(data, out, build_dir)
    assert timings["warm_launch"] is False
    assert (folder / standalone.LAUNCH_RECORD).is_file()     # written again by the build
    return path


@pytest.mark.parametrize("changes", [
    {"seed": 11},
    {"rule": {"name": "oja", "eta": "0.2 Hz"}},
    {"simulation__duration": "0.3 s", "record__every": "5 ms", "seed": 4},
    {"network__init": {"distribution": "normal", "mean": 0.1, "std": 0.2}},
], ids=["seed", "eta", "duration-and-interval", "initial-weights"])
def test_warm_run_equals_the_full_path_bit_for_bit(cache, tmp_path, changes):
    data = _config(**changes)
    warm, timings = _run(data, tmp_path / "warm")
    assert timings["warm_launch"] is True
    cold = _cold(data, tmp_path / "cold", cache["folder"])
    _assert_same_file(warm, cold)
    with h5py.File(warm, "r") as f:
        assert f.attrs["status"] == "complete"
        assert f.attrs["seed"] == data["seed"]
        assert not np.array_equal(f["weights"][0], f["weights"][-1])


def test_changed_values_take_effect_on_the_warm_path(cache, tmp_path):
    base, _ = _run(_config(), tmp_path / "a")
    seeded, _ = _run(_config(seed=11), tmp_path / "b")
    faster, _ = _run(_config(rule={"name": "oja", "eta": "0.2 Hz"}), tmp_path / "c")
    with h5py.File(base) as a, h5py.File(seeded) as b, h5py.File(faster) as c:
        assert not np.array_equal(a["weights"][0], b["weights"][0])          # other draws
        np.testing.assert_array_equal(a["weights"][0], c["weights"][0])      # same start
        assert not np.allclose(a["weights"][-1], c["weights"][-1])           # other eta


def test_warm_run_does_not_import_brian2(built, tmp_path):
    import tomli_w

    config = tmp_path / "seed.toml"
    config.write_text(tomli_w.dumps(_config(seed=21)))
    probe = ("import json, sys\nfrom plasticity.cli import main\ncode = main(sys.argv[1:])\n"
             "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n")
    done = subprocess.run([sys.executable, "-c", probe, "run", str(config), "--out",
                           str(tmp_path / "out"), "-q"], env=built["env"], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, done.stderr
    modules = {name.split(".")[0] for name in result["modules"]}
    assert not modules & {"brian2", "sympy"}
    assert "plasticity.sim.standalone" in result["modules"]     # it did run on the program
    (path,) = (tmp_path / "out").glob("*.h5")
    with h5py.File(path) as f:
        assert f.attrs["status"] == "complete" and f["time"].shape[0] == 51


def _garbage(folder):
    (folder / standalone.LAUNCH_RECORD).write_text("{not json")


def _missing(folder):
    (folder / standalone.LAUNCH_RECORD).unlink()


def _other_model(folder):
    record = json.loads((folder / standalone.LAUNCH_RECORD).read_text())
    record["model_key"] = "0" * 12
    (folder / standalone.LAUNCH_RECORD).write_text(json.dumps(record))


def _other_size(folder):
    record = json.loads((folder / standalone.LAUNCH_RECORD).read_text())
    record["arrays"][0][3] += 1
    (folder / standalone.LAUNCH_RECORD).write_text(json.dumps(record))


def _no_program(folder):
    (folder / "main").unlink()


@pytest.mark.parametrize("damage", [_garbage, _missing, _other_model, _other_size, _no_program],
                         ids=["garbage", "missing", "other-model", "other-size", "no-program"])
def test_unusable_launch_record_takes_the_full_path(cache, tmp_path, damage):
    folder = cache["folder"]
    data = _config(seed=7)
    warm, _ = _run(data, tmp_path / "warm")
    damage(folder)
    path, timings = _run(data, tmp_path / "cold")
    assert timings["warm_launch"] is False
    _assert_same_file(warm, path)
    assert (folder / "main").is_file()
    # the full path wrote a good record again: the next run is warm
    _, timings = _run(data, tmp_path / "again")
    assert timings["warm_launch"] is True


def test_record_needs_the_built_marker(built):
    folder = built["folder"]
    key = json.loads((folder / standalone.LAUNCH_RECORD).read_text())["model_key"]
    assert standalone._read_launch_record(folder, key) is not None
    assert standalone._read_launch_record(folder, "0" * 12) is None
    copy = built["root"] / "unmarked"
    copy.mkdir()
    for name in (standalone.LAUNCH_RECORD, "main"):
        (copy / name).write_bytes((folder / name).read_bytes())
    (copy / "main").chmod(0o755)
    assert standalone._read_launch_record(copy, key) is None


def _long(tmp_path):
    import tomli_w

    config = tmp_path / "long.toml"
    config.write_text(tomli_w.dumps(_config(simulation__duration="3000 s", record__every="1 ms")))
    return config


def _start(built, tmp_path, config):
    record = built["folder"] / standalone.LAUNCH_RECORD
    stamp = record.stat().st_mtime_ns
    process = subprocess.Popen(plasticity_command() + ["run", str(config), "-q"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=built["env"])
    return process, record, stamp


def test_killed_warm_run_leaves_a_readable_file(built, tmp_path):
    process, record, stamp = _start(built, tmp_path, _long(tmp_path))
    try:
        path = wait_for_records(tmp_path / "results", minimum=2, process=process, timeout=120)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert record.stat().st_mtime_ns == stamp          # warm: no build wrote the record
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] != "complete"
        records = f["time"].shape[0]
        assert records >= 1
        assert f["weights"].shape == (records, 8)
        assert np.all(np.diff(f["time"][()]) > 0)


def test_interrupted_warm_run_says_so(built, tmp_path):
    process, record, stamp = _start(built, tmp_path, _long(tmp_path))
    try:
        path = wait_for_records(tmp_path / "results", minimum=2, process=process, timeout=120)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert record.stat().st_mtime_ns == stamp
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "interrupted"
        assert f["time"].shape[0] >= 2


def test_patterns_and_rule_state_launch_warm(tmp_path, bcm_config):
    """BCM on patterns: the pattern inputs and the rule's state (theta) are handed to
    the program too; a changed seed and parameters give the full path's file."""
    build = tmp_path / "build"
    data = {**bcm_config, "simulation": {**bcm_config["simulation"], "device": "cpp_standalone"}}
    run(validate(data), tmp_path / "first", progress=False, build_dir=build)
    assert standalone.run.last_timings["warm_launch"] is False
    changed = {**data, "seed": data["seed"] + 3,
               "rule": {**data["rule"], "eta": "0.3 Hz", "theta_init": 0.02}}
    warm = run(validate(changed), tmp_path / "warm", progress=False, build_dir=build)
    assert standalone.run.last_timings["warm_launch"] is True
    cold = _cold(changed, tmp_path / "cold", build, build_dir=build)
    _assert_same_file(warm, cold)


def test_random_topology_with_another_synapse_count_takes_the_full_path(tmp_path):
    """A random topology: another seed may draw another number of synapses, which is
    compiled into the program: that run must be built, the same count launches warm."""
    from plasticity.sim.rate import make_stats, make_topology

    data = _config(network={**CONFIG["network"],
                            "topology": {"generator": "random_graph", "args": {"p": 0.5}}})

    def count(seed):
        experiment = validate({**data, "seed": seed})
        rng = np.random.default_rng(seed)
        make_stats(experiment, rng)          # drawn first, as by the plan
        return len(make_topology(experiment, rng).pre)

    first = count(data["seed"])
    other = next(s for s in range(100, 200) if count(s) != first)
    same = next(s for s in range(200, 300) if count(s) == first)
    build = tmp_path / "build"
    _run(data, tmp_path / "a", build)
    _, timings = _run({**data, "seed": same}, tmp_path / "b", build)
    assert timings["warm_launch"] is True
    path, timings = _run({**data, "seed": other}, tmp_path / "c", build)
    assert timings["warm_launch"] is False
    with h5py.File(path) as f:
        assert f["weights"].shape[1] == count(other)
