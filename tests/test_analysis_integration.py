"""`plasticity analyze` on every kind of trajectory: spiking runs (the triplet rule's
built-in rate loss, the drift estimator and its window), recurrence (`no-loss-exists`),
dynamics runs (their own losses, `/drift`, window losses) and trajectories from
elsewhere (minimal HDF5 / .npz with a user's loss; bad inputs exit 2). No Brian2: run
files are synthetic or written by a kind = "dynamics" experiment."""

import hashlib
import json
import subprocess
import sys
import tomllib

import h5py
import numpy as np
import pytest

from conftest import EXPERIMENTS, ROOT, dynamics_config
from plasticity.config.dynamics import validate_dynamics
from plasticity.sim import run
from plasticity.analysis import Layout, analyze_file, format_table
from plasticity.analysis.synthetic import euler_trajectory, write_run_file
from plasticity.cli import main
from plasticity.inputs import InputStats
from plasticity.rules import SpikeRates, get_rule



def analyze_cli(capsys, *args):
    """``plasticity analyze ARGS --json`` in process: (exit code, document or stderr)."""
    code = main(["analyze", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


# -- spiking: the triplet rule's built-in loss ------------------------------------------

def triplet_run(path, T=40, noise=0.02, seed=0):
    """A triplet run file: 4 inputs at 10 Hz onto 3 neurons at 5, 12 and 35 Hz (below and
    above the 19.2 Hz threshold); weights follow the rate-limit drift plus spike noise."""
    rule = get_rule("triplet")
    params = rule.resolve({})
    n_pre, n_post = 4, 3
    layout = Layout.dense_full(n_pre, n_post)
    rng = np.random.default_rng(seed)
    rates_pre = np.full((T, n_pre), 10.0) + rng.normal(0, 0.3, (T, n_pre))
    rates_post = np.array([5.0, 12.0, 35.0]) + rng.normal(0, 0.3, (T, n_post))
    rates_pre[0] = rates_post[0] = np.nan          # no interval before the first record
    t = np.arange(T) * 1.0
    w = np.full(layout.size, 2.0)
    weights = [w.copy()]
    for k in range(1, T):
        dW, _ = rule.drift(layout.dense(w[None])[0], None,
                           SpikeRates(rates_pre[k][None], rates_post[k][None]), params)
        w = w + layout.flat(dW)[0] + rng.normal(0, noise, w.size)
        weights.append(w.copy())
    write_run_file(path, t, np.array(weights), rule_name="triplet", params={}, stats=None,
                   n_pre=n_pre, n_post=n_post, model="poisson_pair")
    with h5py.File(path, "r+") as f:
        f["rates/pre"] = rates_pre
        f["rates/post"] = rates_post
        del f["config"]
        f["config"] = '[rule]\nname = "triplet"\n[network]\nn_pre = 4\nn_post = 3\n'
    return path


def test_triplet_builtin_loss_window_drift(tmp_path, capsys):
    path = triplet_run(tmp_path / "triplet.h5")
    code, doc = analyze_cli(capsys, path)                 # no --loss
    assert code == 0
    (r,) = doc["results"]
    assert r["loss"] == "triplet_bcm"
    # event-driven rule: drift estimated from weight differences, window reported
    assert r["drift"] == "window" and r["window"] >= 1 and r["window_s"] == pytest.approx(r["window"])
    assert r["descent_fraction"] == 1.0
    assert r["verdict"] in ("gradient", "natural-gradient", "natural-gradient-constant")
    assert doc["recurrence"] is None
    text = format_table(doc)
    assert "window estimator" in text and f"{r['window']} record" in text


def test_triplet_expected_drift_is_minus_the_gradient(tmp_path):
    path = triplet_run(tmp_path / "triplet.h5")
    doc = analyze_file(path, drift="expected")
    (r,) = doc["results"]
    assert r["drift"] == "expected" and r["rates_interval_s"] == pytest.approx(1.0)
    assert r["undefined_records"] == 1                   # record 0 has no rates
    assert r["verdict"] == "gradient" and r["psi_deg"]["max"] < 1e-6
    assert "rate-limit formula" in format_table(doc)


def test_triplet_loss_by_name_and_without_rates(tmp_path):
    path = triplet_run(tmp_path / "triplet.h5")
    assert analyze_file(path, ["triplet_bcm"], store=False)["results"][0]["loss"] == "triplet_bcm"
    with h5py.File(path, "r+") as f:
        del f["rates"]
    from plasticity.errors import BadInput
    with pytest.raises(BadInput, match="rates"):
        analyze_file(path, store=False)


# -- recurrence: no-loss-exists -----------------------------------------------------------

def dynamics_run(tmp_path, name, **overrides):
    experiment = validate_dynamics(dynamics_config(name, **overrides))
    return run(experiment, out_dir=tmp_path / name)


def test_limit_cycle_gives_no_loss_exists(tmp_path, capsys):
    path = dynamics_run(tmp_path, "bcm_slow_meanfield", duration=40.0)
    code, doc = analyze_cli(capsys, path)
    assert code == 0
    rec = doc["recurrence"]
    assert rec is not None and 0 < rec["t_first"] < rec["t_return"] <= 40.0
    assert rec["ratio"] < 0.02
    assert doc["verdict"] == "no-loss-exists"
    (r,) = doc["results"]
    assert r["verdict"] == "no-loss-exists" and r["descent_verdict"] == "not-descent"
    assert r["recurrence"] == {"t_first": rec["t_first"], "t_return": rec["t_return"],
                               "basis": "mean-field"}
    assert rec["basis"] == "mean-field" and rec["closed_orbit"]["period"] > 0
    with h5py.File(path, "r") as f:                       # stored with the verdict
        assert f["analysis/intrator_cooper"].attrs["verdict"] == "no-loss-exists"


def test_converging_oja_does_not_recur(tmp_path):
    rng = np.random.default_rng(0)
    stats = InputStats.gaussian(6, rng, spectrum=[4, 2, 1, 0.5, 0.5, 0.5], rotation="random")
    rule = get_rule("oja")
    params = rule.resolve({"eta": 0.01})
    layout = Layout.dense_full(6, 1)
    t, W = euler_trajectory(rule, params, stats, layout, rng.uniform(0.05, 0.3, 6), 0.5, 400)
    path = tmp_path / "oja.h5"
    write_run_file(path, t, W, rule_name="oja", params=params, stats=stats, n_pre=6, n_post=1)
    doc = analyze_file(path)
    assert doc["recurrence"] is None and "verdict" not in doc
    assert {r["verdict"] for r in doc["results"]} == {"natural-gradient"}


def test_noise_around_a_fixed_point_does_not_recur(tmp_path):
    """A stochastic path jittering at its fixed point returns by chance; the test runs on
    block means over the drift estimator's window and finds nothing."""
    rng = np.random.default_rng(3)
    T = 600
    t = np.arange(T) * 0.1
    mean = np.exp(-t / 5.0)[:, None] * np.array([1.0, -2.0, 0.5])
    W = mean + rng.normal(0, 0.05, (T, 3))
    np.savez(tmp_path / "noisy.npz", time=t, weights=W)
    module = tmp_path / "half.py"
    module.write_text("import numpy as np\ndef half(w):\n    return 0.5 * np.sum(w * w, 1), w\n")
    doc = analyze_file(tmp_path / "noisy.npz", [f"{module}:half"])
    assert doc["recurrence"] is None


# -- dynamics runs: their own losses, /drift, window losses (docs/no_loss.md) ---------------

def test_dynamics_experiments_verdicts(tmp_path, capsys):
    lti = dynamics_run(tmp_path, "lti_nonnormal")
    code, doc = analyze_cli(capsys, lti)
    assert code == 0 and doc["model"] == "dynamics" and doc["recurrence"] is None
    (r,) = doc["results"]
    assert r["loss"] == "norm2" and r["drift"] == "expected" and r["verdict"] == "not-descent"
    assert r["window_loss"]["window"] == 2.5            # docs/no_loss.md: smallest T on the grid
    assert r["window_loss"]["descent_fraction"][r["window_loss"]["grid"].index(0.1)] < 1.0

    mom = dynamics_run(tmp_path, "momentum")
    code, doc = analyze_cli(capsys, mom)
    by = {r["loss"]: r for r in doc["results"]}
    assert by["energy"]["verdict"] == "not-descent" and by["energy"]["window_loss"]["window"] == 0.05
    assert by["objective"]["verdict"] == "not-descent" and by["objective"]["window_loss"]["window"] is None

    fa = dynamics_run(tmp_path, "feedback_alignment")
    code, doc = analyze_cli(capsys, fa)
    (r,) = doc["results"]
    assert r["loss"] == "task" and r["descent_fraction"] == 1.0 and r["verdict"] == "natural-gradient"
    assert "window_loss" not in r


def test_dynamics_loss_by_name(tmp_path):
    path = dynamics_run(tmp_path, "momentum", duration=2.0)
    doc = analyze_file(path, ["energy"], window_losses=False, store=False)
    assert [r["loss"] for r in doc["results"]] == ["energy"]


# -- trajectories from elsewhere -------------------------------------------------------------

LOSS_MODULE = ("import numpy as np\n"
               "def half(w):\n"
               "    return 0.5 * np.sum(w * w, 1), w\n")


def decay(T=100, n=3):
    t = np.arange(T) * 0.05
    W = np.exp(-t)[:, None] * np.linspace(1.0, 2.0, n)
    return t, W


def test_external_npz_and_minimal_hdf5(tmp_path, capsys):
    module = tmp_path / "loss.py"
    module.write_text(LOSS_MODULE)
    t, W = decay()
    np.savez(tmp_path / "traj.npz", time=t, weights=W)
    code, doc = analyze_cli(capsys, tmp_path / "traj.npz", "--loss", f"{module}:half")
    assert code == 0 and doc["stored"] is False
    (r,) = doc["results"]
    assert r["drift"] == "window" and r["window"] == 1 and r["verdict"] == "gradient"
    with h5py.File(tmp_path / "traj.h5", "w") as f:
        f["time"] = t
        f["weights"] = W
        f["drift"] = -W
    code, doc = analyze_cli(capsys, tmp_path / "traj.h5", "--loss", f"{module}:half")
    assert code == 0 and doc["results"][0]["drift"] == "given"
    assert doc["results"][0]["verdict"] == "gradient"
    with h5py.File(tmp_path / "traj.h5", "r") as f:
        assert f["analysis/half"].attrs["verdict"] == "gradient"
    # the window estimator on request, with its window
    code, doc = analyze_cli(capsys, tmp_path / "traj.h5", "--loss", f"{module}:half",
                            "--drift", "window", "--window", "2")
    assert doc["results"][0]["drift"] == "window" and doc["results"][0]["window"] == 2


def bad_inputs(tmp_path):
    t, W = decay()
    out = {}
    p = tmp_path / "no_weights.h5"
    with h5py.File(p, "w") as f:
        f["time"] = t
    out[p] = "without /time and /weights"
    p = tmp_path / "mismatch.h5"
    with h5py.File(p, "w") as f:
        f["time"] = t[:-1]
        f["weights"] = W
    out[p] = "time has 99 records, weights 100"
    p = tmp_path / "drift_mismatch.h5"
    with h5py.File(p, "w") as f:
        f["time"] = t
        f["weights"] = W
        f["drift"] = W[:, :2]
    out[p] = "drift has shape"
    p = tmp_path / "mismatch.npz"
    np.savez(p, time=t, weights=W[:50])
    out[p] = "time has 100 records, weights 50"
    p = tmp_path / "notes.h5"
    p.write_text("not an hdf5 file\n")
    out[p] = "not an HDF5 file"
    p = tmp_path / "no_time.npz"
    np.savez(p, weights=W)
    out[p] = "lacks the array 'time'"
    p = tmp_path / "strings.npz"
    np.savez(p, time=t, weights=np.array(["a"] * 100))
    out[p] = "not numeric"
    p = tmp_path / "broken.npz"
    p.write_bytes(b"PK\x03\x04 truncated")
    out[p] = "cannot read as .npz"
    return out


def test_bad_external_inputs_exit_2_one_line_nothing_written(tmp_path, capsys):
    module = tmp_path / "loss.py"
    module.write_text(LOSS_MODULE)
    for path, message in bad_inputs(tmp_path).items():
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        code, err = analyze_cli(capsys, path, "--loss", f"{module}:half")
        assert code == 2, (path, err)
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, (path, err)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before, path
    # a bad window and a loss returning the wrong shapes
    t, W = decay()
    np.savez(tmp_path / "ok.npz", time=t, weights=W)
    code, err = analyze_cli(capsys, tmp_path / "ok.npz", "--loss", f"{module}:half", "--window", "0")
    assert code == 2 and "--window" in err
    (tmp_path / "wrong.py").write_text("import numpy as np\ndef f(w):\n    return w, w\n")
    code, err = analyze_cli(capsys, tmp_path / "ok.npz", "--loss", f"{tmp_path / 'wrong.py'}:f")
    assert code == 2 and "returned shapes" in err and err.count("\n") == 1


def test_readme_example_runs(tmp_path):
    """examples/external_trajectory.py + examples/quadratic_loss.py, as in the README."""
    out = tmp_path / "external.npz"
    subprocess.run([sys.executable, str(ROOT / "examples" / "external_trajectory.py"), str(out)],
                   check=True, capture_output=True)
    doc = analyze_file(out, [f"{ROOT / 'examples' / 'quadratic_loss.py'}:quadratic"])
    (r,) = doc["results"]
    assert r["descent_fraction"] == 1.0 and r["verdict"] == "natural-gradient-constant"


def test_stdp_without_loss_runs_discovery_and_recurrence(tmp_path, capsys):
    T, n_pre = 30, 5
    t = np.arange(T) * 1.0
    weights = np.linspace(0.1, 0.2, T)[:, None] * np.ones(n_pre)
    path = tmp_path / "stdp.h5"
    write_run_file(path, t, weights, rule_name="stdp", params={}, stats=None, n_pre=n_pre, n_post=1)
    code, doc = analyze_cli(capsys, path)
    assert code == 0 and doc["recurrence"] is None
    assert "no known loss" in doc["note"]
    # every weight grows at the same rate: −Σw is descended (the separable family finds it)
    assert "discovered:separable" in doc["discovery"]["found"]
    assert {r["loss"] for r in doc["results"]} == set(doc["discovery"]["found"])
