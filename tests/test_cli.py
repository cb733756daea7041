"""The ``plasticity`` command end to end (real subprocesses, runtime device):
overrides and --seed reach the run file, ``rules`` lists the rules, the divergence
guard's exit code 3, and reproducibility for a seed."""

import tomllib

import h5py
import numpy as np
import pytest

from conftest import EXPERIMENTS, last_line, run_file_path


def test_rules_lists_the_rate_rules(cli):
    result = cli("rules")
    assert result.returncode == 0, result.stderr
    headers = [line.split(":")[0] for line in result.stdout.splitlines()
               if line and not line.startswith(" ")]
    for name in ("hebbian", "oja", "bcm", "covariance"):
        assert name in headers, result.stdout
    # parameters with defaults and units, and the candidate losses
    assert "tau_theta = 0.05 s" in result.stdout
    assert "eta = 0.005 Hz" in result.stdout
    assert "losses: rayleigh, norm" in result.stdout


def test_run_with_set_and_seed(cli, write_config, base_config, results_dir, tmp_path):
    config = write_config(base_config)
    result = cli("run", config.name, "-q", "--seed", "7", "--set", "rule.eta=0.02",
                 "--set", 'simulation.duration="0.2 s"', "--set", "network.n_post=1")
    assert result.returncode == 0, result.stderr
    path = run_file_path(result, tmp_path)
    # the default folder is results/<name>/ relative to the working directory
    assert path.resolve().parent == (results_dir / "tiny").resolve()
    with h5py.File(path, "r") as f:
        assert f.attrs["seed"] == 7
        assert f.attrs["status"] == "complete"
        resolved = tomllib.loads(f["config"][()].decode())
        assert resolved["seed"] == 7
        assert resolved["rule"]["eta"] == 0.02
        assert resolved["network"]["n_post"] == 1
        assert f["time"][-1] == pytest.approx(0.2)
        assert f["weights"].shape == (21, 4)


def test_run_prints_path_last_and_out(cli, write_config, base_config, tmp_path):
    config = write_config(base_config)
    result = cli("run", config.name, "--out", "elsewhere/deeper")   # with the progress bar
    assert result.returncode == 0, result.stderr
    path = tmp_path / last_line(result.stdout)
    assert path.parent == tmp_path / "elsewhere" / "deeper"
    assert path.suffix == ".h5" and path.exists()
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_divergence_exit_3(cli, write_config, tmp_path):
    data = {
        "name": "blowup", "seed": 1,
        "network": {"model": "linear_rate", "n_pre": 3},
        "inputs": {"kind": "gaussian", "spectrum": [4.0, 1.0, 1.0]},
        "rule": {"name": "hebbian", "eta": "20 Hz"},
        "simulation": {"duration": "5 s", "device": "runtime", "weight_bound": 10.0},
        "record": {"every": "5 ms"},
    }
    result = cli("run", write_config(data).name, "-q")
    assert result.returncode == 3, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "Traceback" not in result.stderr
    assert "diverged at t = " in message and "'hebbian'" in message
    assert "weight_bound" in message
    path = run_file_path(result, tmp_path)
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "diverged"
        time = f["time"][()]
        weights = f["weights"][()]
        stopped = float(message.split("t = ")[1].split(" s")[0])
    # stopped early, every record up to the divergence kept, the last one out of bounds
    assert 0 < time[-1] < 5.0
    assert time[-1] == pytest.approx(stopped)
    assert len(weights) == len(time) and len(time) > 1
    assert np.abs(weights[-1]).max() > 10.0
    assert np.abs(weights[:-1]).max() <= 10.0


def test_hebbian_experiment_longer_run_diverges(cli, tmp_path):
    result = cli("run", EXPERIMENTS / "hebbian_variance.toml", "-q", "--out", "out",
                 "--set", 'simulation.device="runtime"', "--set", 'simulation.duration="400 s"')
    assert result.returncode == 3, result.stderr
    assert "hebbian" in result.stderr
    with h5py.File(run_file_path(result, tmp_path), "r") as f:
        assert f.attrs["status"] == "diverged"


def _weights(cli, config, tmp_path, *args):
    result = cli("run", config.name, "-q", "--out", "out", *args)
    assert result.returncode == 0, result.stderr
    with h5py.File(run_file_path(result, tmp_path), "r") as f:
        return f["weights"][()], f["state/theta"][()] if "state" in f else None


def test_same_seed_same_numbers(cli, write_config, bcm_config, tmp_path):
    config = write_config(bcm_config)
    w1, theta1 = _weights(cli, config, tmp_path)
    w2, theta2 = _weights(cli, config, tmp_path)
    w3, _ = _weights(cli, config, tmp_path, "--seed", "5")
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(theta1, theta2)
    assert w1.shape == w3.shape
    assert not np.allclose(w1[0], w3[0])        # initial weights differ
    assert not np.allclose(w1[-1], w3[-1])
