"""Bad and hostile input through the command line: every case exits 2 with one line on
stderr naming the problem, no traceback, and nothing written (docs/reliability.md).

Configs (``plasticity run``), run files (``plasticity analyze`` / ``report``), users'
loss modules, a file still being written, and the ``/analysis`` group replaced as a
whole."""

import copy
import hashlib
import os
import socket
import subprocess
import sys

import h5py
import numpy as np
import pytest
import tomli_w

from conftest import BASE_CONFIG, dynamics_config
from plasticity.cli import main
from plasticity.inputs import InputStats
from plasticity.io import trust
from plasticity.io.testing import write_run_file

N_PRE, N_POST, T = 4, 1, 200


def _run_file(path, **changes):
    """A small Oja run file (a noisy trajectory towards the top eigenvector)."""
    rng = np.random.default_rng(0)
    stats = InputStats.gaussian(N_PRE, rng, spectrum=[4.0, 2.0, 1.0, 0.5])
    t = np.arange(T) * 0.01
    target = np.linalg.eigh(stats.covariance)[1][:, -1]
    target *= np.sign(target.sum())
    weights = target + np.exp(-t)[:, None] * rng.uniform(-0.3, 0.3, N_PRE)
    kwargs = dict(rule_name="oja", params={"eta": 0.05}, stats=stats, n_pre=N_PRE,
                  n_post=N_POST)
    kwargs.update(changes)
    return write_run_file(path, t, weights, **kwargs)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _rejected(capsys, args, expected, unchanged=()):
    """``main(args)`` exits 2, one line on stderr containing ``expected``, and the files
    ``unchanged`` are byte for byte as before."""
    before = {p: _digest(p) for p in unchanged}
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    assert expected.lower() in err.lower(), err
    for p, digest in before.items():
        assert _digest(p) == digest, f"{p} was written"
    return err


# -- configs -----------------------------------------------------------------------

def _with(section_key_values, base=None):
    data = copy.deepcopy(base or BASE_CONFIG)
    for path, value in section_key_values.items():
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
    return data


PATTERNS = {"inputs": {"kind": "patterns", "patterns": [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]],
                       "probabilities": [0.5, 0.5]}}
SPIKING = {"name": "spk", "seed": 1,
           "network": {"model": "lif_poisson", "n_pre": 10, "n_post": 1},
           "inputs": {"kind": "poisson", "rates": "10 Hz"},
           "rule": {"name": "stdp"},
           "simulation": {"duration": "1 s", "dt": "0.1 ms", "device": "runtime"},
           "record": {"every": "100 ms"}}

BAD_CONFIGS = {
    "name-dotdot": (_with({"name": ".."}), [], "name"),
    "name-too-long": (_with({"name": "a" * 300}), [], "at most 100"),
    "init-bound-inf": (_with({"network.init.high": float("inf")}), [], "network.init.high"),
    "probabilities-inf": (_with({**{"inputs": PATTERNS["inputs"]},
                                 "inputs.probabilities": [float("inf"), 0.5]}), [], "probabilities"),
    "probabilities-sum": (_with({**{"inputs": PATTERNS["inputs"]},
                                 "inputs.probabilities": [0.3, 0.3]}), [], "sum to 0.6"),
    "record-every-rounds": (_with({"record.every": "1.0000001 ms"}), [], "record.every"),
    "dt-too-small": (_with({"simulation.dt": "1e-30 s", "record.every": "1e-30 s"}), [],
                     "simulation.dt"),
    "dt-1e-20": (_with({"simulation.dt": "1e-20 s"}), [], "simulation.dt"),
    "set-newline": (_with({}), ["--set", "rule.eta=0.1\nsimulation.duration=9"], "line break"),
    "misspelt-section": ({**{k: v for k, v in BASE_CONFIG.items() if k != "simulation"},
                          "simulaton": BASE_CONFIG["simulation"]}, [], "simulaton"),
    "tau-m-zero": (_with({"network.params": {"tau_m": "0 ms"}}, SPIKING), [], "tau_m"),
    "negative-rate": (_with({"inputs.rates": "-5 Hz"}, SPIKING), [], "inputs.rates"),
    "dynamics-duration-inf": (dynamics_config("lti_nonnormal", duration=float("inf")), [],
                              "simulation.duration"),
    "dynamics-seed-2-70": ({**dynamics_config("lti_nonnormal"), "seed": 2**70}, [], "seed"),
    "dynamics-too-big": (dynamics_config("feedback_alignment", n_hidden=10**9), [], "memory"),
    "too-many-synapses": (_with({"network.n_pre": 100_000, "network.n_post": 100_000,
                                 "inputs": {"kind": "gaussian", "spectrum": [1.0] * 100_000}}), [],
                          "memory"),
    "random-rotation-too-big": (_with({"network.n_pre": 200_000,
                                       "inputs": {"kind": "gaussian", "spectrum": [1.0] * 200_000,
                                                  "rotation": "random"}}), [], "memory"),
    "duration-1e12": (_with({"simulation.duration": "1e12 s"}), [], "simulation.dt"),
    "networkx-failure": (_with({"network.topology": {"generator": "random_graph",
                                                     "args": {"q": 0.5}}}), [],
                         "missing 1 required positional argument: 'p'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_one_line_exit_2_nothing_written(case, tmp_path, capsys):
    data, extra, expected = BAD_CONFIGS[case]
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps(data))
    out = tmp_path / "out"
    _rejected(capsys, ["run", config, "--out", out, "-q", *extra], expected)
    assert not out.exists() or not any(out.iterdir())


def test_unreadable_configs(tmp_path, capsys):
    loop = tmp_path / "loop.toml"
    loop.symlink_to(loop)
    _rejected(capsys, ["run", loop, "--out", tmp_path / "o", "-q"], "symlink loop")
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 3000 + "]" * 3000 + "\n")
    _rejected(capsys, ["validate", deep], "nested too deeply")
    if os.geteuid() != 0:   # root reads anything
        locked = tmp_path / "locked.toml"
        locked.write_text(tomli_w.dumps(BASE_CONFIG))
        locked.chmod(0)
        _rejected(capsys, ["validate", locked], "permission denied")
    assert not (tmp_path / "o").exists()


def test_validate_prints_the_estimate(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps(BASE_CONFIG))
    assert main(["validate", str(config)]) == 0
    out = capsys.readouterr().out
    for word in ("synapses: 8", "steps: 500", "records: 51", "memory:", "file:"):
        assert word in out, out


def test_force_overrides_the_resource_limits(tmp_path, capsys, monkeypatch):
    """A run refused for memory runs with --force (the limit is made tiny here)."""
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps(BASE_CONFIG))
    import plasticity.sim.estimate as estimate

    monkeypatch.setattr(estimate, "available_memory", lambda: 1 << 20)
    _rejected(capsys, ["run", config, "--out", tmp_path / "a", "-q"], "--force")
    assert main(["run", str(config), "--out", str(tmp_path / "b"), "-q", "--force"]) == 0
    assert len(list((tmp_path / "b").glob("*.h5"))) == 1


# -- run files ---------------------------------------------------------------------

def _hostile(tmp_path, kind):
    """A file built to be refused; returns (path, expected words)."""
    path = tmp_path / f"{kind}.h5"
    if kind == "external-storage":
        secret = tmp_path / "passwd"
        secret.write_bytes(np.arange(T * N_PRE, dtype="f8").tobytes())
        with h5py.File(path, "w") as f:
            f["time"] = np.arange(T) * 0.01
            f.create_dataset("weights", shape=(T, N_PRE), dtype="f8",
                             external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
        return path, "external files"
    if kind == "external-link":
        other = _run_file(tmp_path / "other.h5")
        with h5py.File(path, "w") as f:
            f["time"] = np.arange(T) * 0.01
            f["weights"] = h5py.ExternalLink(str(other), "/weights")
        return path, "external link"
    if kind == "virtual":
        other = _run_file(tmp_path / "other.h5")
        layout = h5py.VirtualLayout(shape=(T, N_PRE), dtype="f8")
        layout[:] = h5py.VirtualSource(str(other), "weights", shape=(T, N_PRE))
        with h5py.File(path, "w") as f:
            f["time"] = np.arange(T) * 0.01
            f.create_virtual_dataset("weights", layout)
        return path, "virtual dataset"
    if kind == "huge-declared":
        with h5py.File(path, "w") as f:
            f["time"] = np.arange(200) * 0.01
            f.create_dataset("weights", shape=(200, 10**10), dtype="f8", chunks=(1, 10**6))
        return path, "declares shape"
    if kind == "config-n-post":
        _run_file(path)
        with h5py.File(path, "r+") as f:
            del f["config"]
            f["config"] = (f'name = "x"\n[network]\nmodel = "linear_rate"\nn_pre = {N_PRE}\n'
                           f'n_post = 100000000000\n[rule]\nname = "oja"\neta = 0.05\n')
        return path, "n_pre × n_post"
    if kind == "complex-weights":
        with h5py.File(path, "w") as f:
            f["time"] = np.arange(T) * 0.01
            f["weights"] = np.ones((T, N_PRE)) * (1 + 1j)
        return path, "not real numbers"
    if kind == "string-weights":
        with h5py.File(path, "w") as f:
            f["time"] = np.arange(T) * 0.01
            f["weights"] = np.full((T, N_PRE), b"0.5")
        return path, "not real numbers"
    if kind == "nan-drift":
        with h5py.File(path, "w") as f:
            f["time"] = np.arange(T) * 0.01
            f["weights"] = np.ones((T, N_PRE))
            drift = np.zeros((T, N_PRE))
            drift[7, 2] = np.nan
            f["drift"] = drift
        return path, "/drift has non-finite values (first at record 7)"
    if kind == "all-nan-drift":
        with h5py.File(path, "w") as f:
            f["time"] = np.arange(T) * 0.01
            f["weights"] = np.ones((T, N_PRE))
            f["drift"] = np.full((T, N_PRE), np.nan)
        return path, "/drift has non-finite values (first at record 0)"
    if kind == "nan-covariance":
        _run_file(path)
        with h5py.File(path, "r+") as f:
            f["inputs/covariance"][1, 1] = np.nan
        return path, "/inputs/covariance has non-finite"
    if kind == "huge-weights":
        _run_file(path)
        with h5py.File(path, "r+") as f:
            f["weights"][...] = 1e300
        return path, "too large"
    if kind == "not-hdf5":
        path.write_text("hello\n")
        return path, "not an HDF5 file"
    if kind == "missing":
        return path, "no such file"
    if kind == "fifo":
        os.mkfifo(path)
        return path, "not a regular file"
    if kind == "analysis-dataset":
        _run_file(path)
        with h5py.File(path, "r+") as f:
            f["analysis"] = np.zeros(3)
        return path, "/analysis is not a group"
    raise ValueError(kind)


HOSTILE = ["external-storage", "external-link", "virtual", "huge-declared", "config-n-post",
           "complex-weights", "string-weights", "nan-drift", "all-nan-drift", "nan-covariance",
           "huge-weights", "not-hdf5", "missing", "fifo"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_file_is_refused_by_analyze_and_report(kind, tmp_path, capsys):
    path, expected = _hostile(tmp_path, kind)
    unchanged = [path] if path.is_file() else []
    _rejected(capsys, ["analyze", path, "--drift", "given" if "drift" in kind else "auto"],
              expected, unchanged)
    _rejected(capsys, ["report", path], expected if kind != "nan-drift" and kind != "all-nan-drift"
              else "non-finite", unchanged)
    assert not list(tmp_path.glob("*.png"))


def test_report_refuses_an_analysis_dataset(tmp_path, capsys):
    path, expected = _hostile(tmp_path, "analysis-dataset")
    _rejected(capsys, ["report", path], expected, [path])


def test_zip_bomb_npz_is_refused_before_unpacking(tmp_path, capsys, monkeypatch):
    """Members are checked in the zip directory: a member that unpacks past the limit
    is refused without being read (the limit is lowered so the test file stays small)."""
    monkeypatch.setattr(trust, "array_limit", lambda: 1 << 20)
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, time=np.arange(10.0), weights=np.zeros((100_000, 4)))
    assert path.stat().st_size < 50_000
    _rejected(capsys, ["analyze", path], "unpack to", [path])


def test_complex_npz_is_refused(tmp_path, capsys):
    path = tmp_path / "c.npz"
    np.savez(path, time=np.arange(10.0), weights=np.ones((10, 3)) * 1j)
    _rejected(capsys, ["analyze", path], "not real numbers", [path])


# -- users' losses -------------------------------------------------------------------

BAD_LOSSES = {
    "returns-none": ("def loss(w):\n    return None\n", "must return (values, gradients)"),
    "returns-scalar": ("def loss(w):\n    return 1.0\n", "must return (values, gradients)"),
    "returns-3-tuple": ("def loss(w):\n    return w[:, 0], w, w\n", "got tuple of 3"),
    "returns-strings": ("def loss(w):\n    return ['a'] * len(w), w\n", "not real numbers"),
    "returns-nan": ("import numpy as np\ndef loss(w):\n    return np.full(len(w), np.nan), w\n",
                    "non-finite values"),
    "calls-exit": ("import sys\ndef loss(w):\n    sys.exit(3)\n", "sys.exit(3)"),
    "exits-on-import": ("import sys\nsys.exit(0)\n", "sys.exit(0)"),
}


@pytest.mark.parametrize("case", sorted(BAD_LOSSES))
def test_bad_user_loss_is_one_line_exit_2(case, tmp_path, capsys):
    source, expected = BAD_LOSSES[case]
    module = tmp_path / "my_loss.py"
    module.write_text(source)
    path = _run_file(tmp_path / "run.h5")
    _rejected(capsys, ["analyze", path, "--loss", f"{module}:loss"], expected, [path])


# -- a file still being written, /analysis replaced as a whole -------------------------

def test_a_running_file_is_refused_while_its_run_lives(tmp_path, capsys):
    path = _run_file(tmp_path / "run.h5", status="running")
    with h5py.File(path, "r+") as f:
        f.attrs["writer_host"] = socket.gethostname()
        f.attrs["writer_pid"] = os.getpid()          # alive: this process
    _rejected(capsys, ["analyze", path], "still being written", [path])
    # its writer gone (a killed run): analysed, but never written to
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    with h5py.File(path, "r+") as f:
        f.attrs["writer_pid"] = int(dead)
    before = _digest(path)
    assert main(["analyze", str(path)]) == 0
    capsys.readouterr()
    assert _digest(path) == before


def test_a_locked_file_says_locked_not_corrupt(tmp_path, capsys):
    path = _run_file(tmp_path / "run.h5")
    holder = subprocess.Popen([sys.executable, "-c",
                               "import h5py, sys, time\n"
                               f"f = h5py.File({str(path)!r}, 'r+', locking=True)\n"
                               "print('open', flush=True)\ntime.sleep(60)\n"],
                              stdout=subprocess.PIPE, text=True,
                              env={k: v for k, v in os.environ.items() if k != "HDF5_USE_FILE_LOCKING"})
    try:
        assert holder.stdout.readline().strip() == "open"
        err = _rejected(capsys, ["analyze", path], "locked by another process")
        assert "corrupt" not in err
    finally:
        holder.kill()
        holder.wait()


def test_analysis_is_replaced_whole_and_rewrites_do_not_grow_the_file(tmp_path, capsys):
    path = _run_file(tmp_path / "run.h5")
    assert main(["analyze", str(path)]) == 0
    with h5py.File(path, "r") as f:
        first = set(f["analysis"])
    assert {"rayleigh", "norm"} <= first
    sizes = []
    for _ in range(5):
        assert main(["analyze", str(path)]) == 0
        sizes.append(path.stat().st_size)
    assert max(sizes) == min(sizes), sizes
    # a later analysis with one loss leaves exactly that loss
    assert main(["analyze", str(path), "--loss", "rayleigh"]) == 0
    capsys.readouterr()
    with h5py.File(path, "r") as f:
        assert set(f["analysis"]) == {"rayleigh"}
        assert f["analysis"].attrs["complete"]
