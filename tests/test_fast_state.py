"""A plastic state faster than the records (BCM's θ with a small τ_θ) enters the
expected drift at its fixed point, θ = E[y²] (adiabatic limit); a slow one enters
with its logged value. And a run file is flushed by wall time, not only by chunk."""

import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from plasticity.analysis.drift import slaved_state
from plasticity.io.layout import Layout
from plasticity.analysis.pipeline import analyze_file
from plasticity.analysis.synthetic import euler_trajectory, write_run_file
from plasticity.inputs import InputStats
from plasticity.rules import get_rule

PATTERNS = [[1.0, 1.0, 0.3, 0.0, 0.0, 0.0],
            [0.0, 0.3, 1.0, 1.0, 0.3, 0.0],
            [0.0, 0.0, 0.0, 0.3, 1.0, 1.0]]


def _bcm_file(tmp_path, tau_theta, theta_noise=0.3):
    """A BCM trajectory integrated in the fast-threshold limit, logged with a θ that
    is a noisy version of E[y²] (as a short low-pass filter of y² would be)."""
    rule = get_rule("bcm")
    params = rule.resolve({"eta": 0.2, "tau_theta": tau_theta})
    stats = InputStats.from_patterns(PATTERNS, transfer="relu")
    layout = Layout.dense_full(6, 1)
    w0 = np.random.default_rng(0).uniform(0.05, 0.25, 6)
    t, W = euler_trajectory(rule, params, stats, layout, w0, dt=0.01, steps=3000, every=10)
    second = stats.moment(W[:, None, :], 2)              # E[y²] per record, (T, 1)
    noise = np.random.default_rng(1).normal(0.0, theta_noise, second.shape)
    theta = second * (1 + noise)
    path = tmp_path / f"bcm_{tau_theta}.h5"
    write_run_file(path, t, W, rule_name="bcm", params=params, stats=stats, n_pre=6, n_post=1,
                   state={"theta": theta}, model="relu_rate")
    return path


def test_slaved_state_compares_time_constant_with_the_weights_time_scale():
    # fast means ten times faster than the weights move; the record interval plays no part
    bcm = get_rule("bcm")
    assert slaved_state(bcm, {"tau_theta": 0.05}, 1.0) == ("theta",)
    assert slaved_state(bcm, {"tau_theta": 0.5}, 1.0) == ()
    assert slaved_state(bcm, {"tau_theta": 0.5}, 10.0) == ("theta",)
    assert slaved_state(get_rule("oja"), {"eta": 1.0}, 1.0) == ()


def test_fast_threshold_is_certified_in_the_adiabatic_limit(tmp_path):
    doc = analyze_file(str(_bcm_file(tmp_path, tau_theta=0.01)), store=False)
    (result,) = [r for r in doc["results"] if r["loss"] == "intrator_cooper"]
    assert result["state"] == {"theta": "adiabatic"}
    assert result["verdict"] == "gradient"
    assert result["psi_deg"]["max"] < 1e-6


def test_slow_threshold_uses_the_logged_value(tmp_path):
    # same trajectory, but τ_θ longer than the record interval: the noisy logged θ is
    # used, and the drift it gives is no longer the Intrator-Cooper gradient
    doc = analyze_file(str(_bcm_file(tmp_path, tau_theta=1.0)), store=False)
    (result,) = [r for r in doc["results"] if r["loss"] == "intrator_cooper"]
    assert "state" not in result
    assert result["verdict"] != "gradient"
    assert result["psi_deg"]["max"] > 1.0


@pytest.mark.parametrize("flush_seconds, expected", [(0.0, 3), (1e9, 0)])
def test_records_reach_disk_by_wall_time(tmp_path, flush_seconds, expected):
    """A writer killed (SIGKILL) before its chunk is full keeps the records that
    FLUSH_SECONDS had it flush; with an endless interval it keeps none."""
    path = tmp_path / "run.h5"
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from plasticity.io import writer as recorder
        recorder.FLUSH_SECONDS = {flush_seconds!r}
        f = recorder.RunFile({str(path)!r}, 4, chunk=1000)
        for k in range(3):
            f.append(0.1 * k, np.full(4, float(k)))
        f.wait()                 # what was handed to the writer thread is on disk
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == -9, result.stderr
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "running"
        assert f["time"].shape[0] == expected
        if expected:
            np.testing.assert_array_equal(f["weights"][:, 0], [0.0, 1.0, 2.0])
