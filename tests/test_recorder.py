"""The HDF5 run file: layout (README, "The run file"), one file per run even when
runs start at once, crash safety (SIGKILL, SIGINT of a real ``plasticity run``), and
the synapse order matching Brian2's ``synapses.i/j``."""

import signal
import tomllib

import h5py
import numpy as np
import pytest

from conftest import last_line, run_file_path, wait_for_records
from plasticity.config import load_config, validate
from plasticity.io import FORMAT, RunFile


def _run(cli, write_config, data, tmp_path, *args):
    result = cli("run", write_config(data).name, "-q", *args)
    assert result.returncode == 0, result.stderr
    return run_file_path(result, tmp_path)


def _common_layout(f, experiment):
    attrs = f.attrs
    assert attrs["format"] == FORMAT == "plasticity-run"
    assert int(attrs["format_version"]) >= 1
    assert attrs["status"] == "complete"
    assert attrs["rule"] == experiment.rule.name
    assert attrs["model"] == experiment.network.model
    assert attrs["seed"] == experiment.seed
    assert attrs["created"]
    for package in ("brian2", "numpy", "h5py"):
        assert package in attrs["versions"]
        assert attrs[f"version_{package}"]
    # /config: TOML that parses back to the resolved config
    text = f["config"][()]
    text = text.decode() if isinstance(text, bytes) else text
    assert tomllib.loads(text) == experiment.to_dict()
    assert validate(tomllib.loads(text)).to_dict() == experiment.to_dict()
    # /time: every record.every, from 0 to the duration inclusive
    T = int(round(experiment.simulation.duration / experiment.record.every)) + 1
    np.testing.assert_allclose(f["time"][()], np.arange(T) * experiment.record.every, atol=1e-9)
    assert f["time"].attrs["unit"] == "s"
    # /weights: (T, S), chunked along time, checksummed, extendable
    S = experiment.network.n_pre * experiment.network.n_post
    weights = f["weights"]
    assert weights.shape == (T, S)
    assert weights.chunks is not None and weights.chunks[1] == S
    assert weights.fletcher32
    assert weights.maxshape == (None, S)
    assert np.all(np.isfinite(weights[()]))
    # /synapses: all-to-all, one (pre, post) pair per column
    pre, post = f["synapses/pre"][()], f["synapses/post"][()]
    assert pre.shape == post.shape == (S,)
    assert sorted(zip(pre.tolist(), post.tolist())) == [
        (i, j) for i in range(experiment.network.n_pre) for j in range(experiment.network.n_post)]
    return T


def test_layout_bcm_patterns(cli, write_config, bcm_config, tmp_path):
    path = _run(cli, write_config, bcm_config, tmp_path)
    experiment = validate(bcm_config)
    with h5py.File(path, "r") as f:
        T = _common_layout(f, experiment)
        assert f["state/theta"].shape == (T, 2)
        assert f["state/theta"].chunks is not None
        np.testing.assert_allclose(f["state/theta"][0], 0.0)      # theta_init
        assert np.all(f["state/theta"][-1] > 0)
        inputs = f["inputs"]
        assert inputs.attrs["kind"] == "patterns"
        assert inputs.attrs["transfer"] == "relu"
        np.testing.assert_array_equal(inputs["patterns"][()], bcm_config["inputs"]["patterns"])
        np.testing.assert_allclose(inputs["probabilities"][()], [0.5, 0.3, 0.2])
        np.testing.assert_allclose(inputs["mean"][()], np.array([0.5, 0.3, 0.2]) @ np.array(
            bcm_config["inputs"]["patterns"]))


def test_layout_gaussian(cli, write_config, base_config, tmp_path):
    path = _run(cli, write_config, base_config, tmp_path)
    experiment = validate(base_config)
    with h5py.File(path, "r") as f:
        _common_layout(f, experiment)
        assert "state" not in f or len(f["state"]) == 0      # Oja has no extra state
        assert f["inputs"].attrs["kind"] == "gaussian"
        C = f["inputs/covariance"][()]
        np.testing.assert_allclose(C, C.T)
        np.testing.assert_allclose(np.linalg.eigvalsh(C), [0.25, 0.5, 1.0, 3.0])
        np.testing.assert_array_equal(f["inputs/mean"][()], np.zeros(4))


def test_runs_started_at_once_get_their_own_files(start_cli, write_config, base_config, tmp_path):
    config = write_config(base_config)
    processes = [start_cli("run", config.name, "-q", "--out", "same") for _ in range(3)]
    outputs = [process.communicate(timeout=180) for process in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [err for _, err in outputs]
    paths = {last_line(out) for out, _ in outputs}
    assert len(paths) == 3
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == sorted(
        p.split("/")[-1] for p in paths)
    for path in paths:
        with h5py.File(tmp_path / path, "r") as f:
            assert f.attrs["status"] == "complete"


def test_runfile_refuses_an_existing_file(tmp_path):
    path = tmp_path / "taken.h5"
    path.write_bytes(b"")
    with pytest.raises(FileExistsError):
        RunFile(path, 3)


def test_runfile_streams_in_chunks(tmp_path):
    """Records reach the file chunk by chunk; the buffer never holds more than a chunk."""
    runfile = RunFile(tmp_path / "r.h5", 5, {"theta": 2}, chunk=4)
    for r in range(10):
        runfile.append(r * 0.1, np.full(5, r), {"theta": np.full(2, -r)})
        runfile.wait()                       # the writer thread has written what it got
        assert runfile.file["time"].shape[0] == 4 * ((r + 1) // 4)
        assert runfile.file["weights"].shape[0] == 4 * ((r + 1) // 4)
        assert runfile._weights.shape == (4, 5)
    runfile.close("complete")
    with h5py.File(runfile.path, "r") as f:
        assert f.attrs["status"] == "complete" and f.attrs["records"] == 10
        np.testing.assert_array_equal(f["weights"][:, 0], np.arange(10))
        np.testing.assert_array_equal(f["state/theta"][:, 1], -np.arange(10))


# -- crash safety ---------------------------------------------------------------

def _long_config(base_config):
    """Long enough to be killed mid-way: records every step, so chunks flush often."""
    base_config["simulation"]["duration"] = "2000 s"
    base_config["record"]["every"] = "1 ms"
    base_config["network"]["n_post"] = 1
    return base_config


def test_sigkill_leaves_a_readable_file(start_cli, write_config, base_config, tmp_path):
    config = write_config(_long_config(base_config))
    process = start_cli("run", config.name, "-q", "--out", "out")
    wait_for_records(tmp_path / "out", minimum=1, process=process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    (path,) = (tmp_path / "out").glob("*.h5")
    with h5py.File(path, "r") as f:     # opens normally, no recovery needed
        records = f["time"].shape[0]
        assert records >= 1
        assert f.attrs["status"] != "complete"
        assert f["weights"].shape[0] >= records
        assert np.all(np.isfinite(f["weights"][:records]))
        assert np.all(np.diff(f["time"][()]) > 0)
        assert "config" in f and "synapses/pre" in f


def test_sigint_stops_cleanly(start_cli, write_config, base_config, tmp_path):
    config = write_config(_long_config(base_config))
    process = start_cli("run", config.name, "-q", "--out", "out")
    path = wait_for_records(tmp_path / "out", minimum=1, process=process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err
    assert last_line(out) == f"out/{path.name}"
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "interrupted"
        records = f["time"].shape[0]
        assert records >= 1 and f.attrs["records"] == records
        assert f["weights"].shape == (records, 4)
        assert 0 < f["time"][-1] < 2000


# -- synapse order ------------------------------------------------------------------

def test_synapse_order_matches_brian2(cli, write_config, base_config, tmp_path):
    """The columns of /weights are Brian2's synapses, in the order of synapses.i/j,
    also for a sparse random topology."""
    import brian2 as b2

    from plasticity.sim.rate import build_rate_network
    from plasticity.rules import get_rule

    base_config["network"].update(n_pre=6, n_post=3, topology={
        "generator": "random_graph", "args": {"p": 0.5}})
    base_config["inputs"]["spectrum"] = [3.0, 2.0, 1.0, 0.5, 0.5, 0.25]
    base_config["simulation"]["duration"] = "0.1 s"
    config = write_config(base_config)
    experiment = load_config(config)
    b2.set_device("runtime")
    b2.BrianLogger.suppress_name("unused_brian_object")   # built, never run
    rng = np.random.default_rng(experiment.seed)
    parts = build_rate_network(experiment, get_rule("oja"), experiment.rule.params, rng)
    i, j = np.asarray(parts.synapses.i[:]), np.asarray(parts.synapses.j[:])
    w0 = np.asarray(parts.synapses.w_[:])
    assert 0 < len(i) < 18
    np.testing.assert_array_equal(i, parts.topology.pre)
    np.testing.assert_array_equal(j, parts.topology.post)

    path = _run(cli, write_config, base_config, tmp_path)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["synapses/pre"][()], i)
        np.testing.assert_array_equal(f["synapses/post"][()], j)
        np.testing.assert_array_equal(f["weights"][0], w0)     # record 0: the initial weights
