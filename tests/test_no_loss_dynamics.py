"""Dynamics experiments (kind = "dynamics"): config, integration, the run file layout."""

import tomllib

import h5py
import numpy as np
import pytest

from conftest import assert_run_rejected, dynamics_config
from plasticity.errors import ConfigError
from plasticity.analysis import open_run
from plasticity.analysis.pipeline import dynamics_system
from plasticity.config.dynamics import validate_dynamics as load_dynamics_config
from plasticity.sim import run


def small(name, **changes):
    return dynamics_config(name, **changes)


def system_from_config(cfg):
    return cfg.system()


def system_from_file(path):
    with open_run(path) as opened:
        return dynamics_system(opened)


@pytest.mark.parametrize("name", ["lti_nonnormal", "feedback_alignment", "momentum", "bcm_slow_meanfield"])
def test_shipped_configs_validate(name):
    cfg = load_dynamics_config(small(name), name)
    system = system_from_config(cfg)
    F = system.drift(system.w0[None])
    assert F.shape == (1, system.n)
    for loss in system.losses.values():
        v, g = loss(system.w0[None])
        assert v.shape == (1,) and g.shape == (1, system.n)


def test_config_errors_name_the_key():
    data = small("lti_nonnormal")
    data["dynamics"]["Aa"] = 1
    with pytest.raises(ConfigError, match="dynamics.Aa: unknown key"):
        load_dynamics_config(data, "x.toml")
    data = small("lti_nonnormal", system="spiral")
    with pytest.raises(ConfigError, match="system"):
        load_dynamics_config(data, "x.toml")
    with pytest.raises(ConfigError, match="w0"):
        load_dynamics_config(small("momentum", w0=[1.0, 0.0]), "x.toml")
    with pytest.raises(ConfigError, match="multiple"):
        load_dynamics_config(small("lti_nonnormal", record_every=0.0015), "x.toml")



@pytest.mark.parametrize("changes, expected", [
    ({"Aa": 1}, "dynamics.Aa: unknown key"),
    ({"duration": -1}, "simulation.duration"),
    ({"record_every": 0.0015}, "multiple"),
])
def test_bad_dynamics_config_exits_2_and_writes_nothing(tmp_path, write_config, capsys,
                                                        changes, expected):
    config = write_config(small("lti_nonnormal", **changes))
    assert_run_rejected(config, tmp_path / "out", expected, capsys)


def test_runner_writes_layout(tmp_path):
    cfg = load_dynamics_config(small("lti_nonnormal", duration=1.0, record_every=0.1), "lti")
    path = run(cfg, out_dir=tmp_path)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "plasticity-run" and f.attrs["status"] == "complete"
        assert f.attrs["rule"] == "linear" and f.attrs["model"] == "dynamics"
        t, W, F = f["time"][()], f["weights"][()], f["drift"][()]
        assert t.shape == (11,) and W.shape == (11, 2) and F.shape == (11, 2)
        assert np.allclose(t, np.linspace(0, 1, 11))
        A = np.array([[-1.0, 10.0], [0.0, -2.0]])
        assert np.allclose(F, W @ A.T)
        from scipy.linalg import expm
        assert np.allclose(W[-1], expm(A) @ [0.0, 1.0], rtol=1e-9, atol=1e-12)   # RK4, dt = 1e-3
        config = tomllib.loads(f["config"][()].decode())
        assert config["kind"] == "dynamics" and config["dynamics"]["system"] == "linear"
        assert list(f["synapses/pre"][()]) == [0, 1]
    assert system_from_file(path).name == "linear"


def test_feedback_alignment_drift_is_descent_with_backprop():
    cfg = load_dynamics_config(small("feedback_alignment", backprop=True), "fa")
    system = system_from_config(cfg)
    W = system.w0[None] + 0.3 * np.random.default_rng(0).standard_normal((4, system.n))
    F = system.drift(W)
    _, G = system.losses["task"](W)
    assert np.allclose(F, -system.eta * G)
    # gradient of the task loss against finite differences
    h = 1e-6
    w = W[0]
    fd = np.array([(system.losses["task"]((w + h * e)[None])[0][0] - system.losses["task"]((w - h * e)[None])[0][0]) / (2 * h)
                   for e in np.eye(system.n)])
    assert np.allclose(G[0], fd, rtol=1e-5, atol=1e-8)


def test_bcm_slow_loss_gradient_and_momentum_energy():
    system = system_from_config(load_dynamics_config(small("bcm_slow_meanfield"), "bcm"))
    w = np.array([1.3, 0.4, 0.9])
    loss = system.losses["intrator_cooper"]
    h = 1e-6
    fd = np.array([(loss((w + h * e)[None])[0][0] - loss((w - h * e)[None])[0][0]) / (2 * h) for e in np.eye(3)])
    assert np.allclose(loss(w[None])[1][0], fd, atol=1e-7)
    mom = system_from_config(load_dynamics_config(small("momentum"), "m"))
    W = np.random.default_rng(0).standard_normal((5, 4))
    _, G = mom.losses["energy"](W)
    # dE/dt = −γ‖v‖²
    assert np.allclose(np.einsum("ij,ij->i", mom.drift(W), G), -mom.gamma * np.sum(W[:, 2:] ** 2, 1))


def test_analysis_of_dynamics_runs(tmp_path):
    from plasticity.analysis.no_loss import analyze_no_loss

    cfg = load_dynamics_config(small("bcm_slow_meanfield", duration=60.0, record_every=0.1), "bcm")
    path = run(cfg, out_dir=tmp_path)
    system = system_from_file(path)
    with h5py.File(path, "r") as f:
        t, W, F = f["time"][()], f["weights"][()], f["drift"][()]
    doc = analyze_no_loss(t, W, F, system.losses, grid=(0.5, 2.0))
    assert doc["verdict"] == "no-loss-exists" and doc["recurrence"]["t_j"] > doc["recurrence"]["t_i"]
    assert not doc["quadratic_fit"]["exists"]
    mom = system_from_config(load_dynamics_config(small("momentum", duration=10.0), "m"))
    path = run(load_dynamics_config(small("momentum", duration=10.0), "m"), out_dir=tmp_path)
    with h5py.File(path, "r") as f:
        t, W, F = f["time"][()], f["weights"][()], f["drift"][()]
    doc = analyze_no_loss(t, W, F, {"energy": mom.losses["energy"]}, drift_function=mom.drift,
                          jacobian=mom.jacobian, grid=(0.1, 1.0), window_records=50)
    energy = doc["results"][0]
    assert energy["certificate"]["verdict"] == "not-descent"        # zero velocity at the start
    assert energy["window"]["window"] == 0.1 and doc["recurrence"] is None
