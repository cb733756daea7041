"""The shipped experiments do what the rules are known for (docs/math.md §8), on the runtime
device: Oja finds ± the unit top eigenvector of the input covariance, BCM becomes
selective to one pattern, Hebbian grows along the top principal component."""

import tomllib

import h5py
import numpy as np
import pytest

from conftest import EXPERIMENTS, run_file_path
from plasticity.config import load_config
from plasticity.sim import run

RUNTIME = ['simulation.device="runtime"']


def _run_experiment(name, tmp_path, *overrides, seed=None):
    experiment = load_config(EXPERIMENTS / f"{name}.toml", RUNTIME + list(overrides), seed=seed)
    path = run(experiment, out_dir=tmp_path, progress=False)
    return h5py.File(path, "r")


def _top_eigenvector(C):
    values, vectors = np.linalg.eigh(C)
    return vectors[:, -1], values


def test_oja_experiment_via_cli(cli, tmp_path):
    """``plasticity run experiments/oja_pca.toml``: ± the unit top eigenvector."""
    result = cli("run", EXPERIMENTS / "oja_pca.toml", "-q", "--set", RUNTIME[0])
    assert result.returncode == 0, result.stderr
    path = run_file_path(result, tmp_path)
    assert path.parent.name == "oja_pca" and path.parent.parent.name == "results"
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "complete"
        w = f["weights"][-1]
        top, _ = _top_eigenvector(f["inputs/covariance"][()])
    cosine = abs(w @ top) / np.linalg.norm(w)
    assert cosine > 0.99, cosine
    assert abs(np.linalg.norm(w) - 1) < 0.05, np.linalg.norm(w)


@pytest.mark.parametrize("seed", [2, 3])
def test_oja_other_seeds(seed, tmp_path):
    with _run_experiment("oja_pca", tmp_path, seed=seed) as f:
        W = f["weights"][()]
        top, _ = _top_eigenvector(f["inputs/covariance"][()])
    w = W[-1]
    assert abs(w @ top) / np.linalg.norm(w) > 0.99
    assert abs(np.linalg.norm(w) - 1) < 0.05
    # it got there: the start was far from it
    assert abs(W[0] @ top) / np.linalg.norm(W[0]) < 0.99


def pattern_responses(f, record=-1):
    patterns = f["inputs/patterns"][()]
    return np.maximum(patterns @ f["weights"][record], 0.0), f["inputs/probabilities"][()]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_bcm_becomes_selective(seed, tmp_path):
    with _run_experiment("bcm_selectivity", tmp_path, seed=seed) as f:
        assert f.attrs["status"] == "complete"
        y, p = pattern_responses(f)
        y0, _ = pattern_responses(f, 0)
        theta = f["state/theta"][()]
    preferred = int(np.argmax(y))
    others = np.delete(y, preferred)
    # at the start every pattern drives the neuron about equally
    assert y0.min() > 0.3 * y0.max()
    # at the end: one pattern, near the selective fixed point y = 1/p, the others ~0
    assert y[preferred] > 0.6 / p[preferred], y
    assert others.max() < 0.1 * y[preferred], y
    # the threshold followed E[y²] = p y_pref² ≈ 1/p (within its fluctuations)
    late = theta[len(theta) // 2:, 0].mean()
    assert 0.5 / p[preferred] < late < 1.5 / p[preferred], late


def test_hebbian_experiment_grows_along_top_pc(tmp_path):
    with _run_experiment("hebbian_variance", tmp_path) as f:
        assert f.attrs["status"] == "complete"
        W = f["weights"][()]
        top, values = _top_eigenvector(f["inputs/covariance"][()])
        eta = tomllib.loads(f["config"][()].decode())["rule"]["eta"]
        duration = f["time"][-1]
    w0, w = W[0], W[-1]
    assert abs(w @ top) / np.linalg.norm(w) > 0.99
    # the top component grew as exp(η λ₁ t) (noise aside), well past the others
    growth = abs(w @ top) / abs(w0 @ top)
    expected = np.exp(eta * values[-1] * duration)
    assert 0.5 * expected < growth < 2 * expected, (growth, expected)
    assert np.linalg.norm(w) > 20 * np.linalg.norm(w0)
