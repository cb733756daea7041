"""Shared fixtures: small configs, a temporary results folder, and the ``plasticity``
command run as a real subprocess (cwd = the test's tmp_path, so the default
``results/<name>/`` lands there)."""

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import tomli_w

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"


def plasticity_command():
    """The installed console script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("plasticity")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "plasticity.cli"]


#: a small, fast Oja run on the runtime device (0.5 s of simulated time)
BASE_CONFIG = {
    "name": "tiny",
    "seed": 3,
    "network": {"model": "linear_rate", "n_pre": 4, "n_post": 2,
                "init": {"distribution": "uniform", "low": -0.3, "high": 0.3}},
    "inputs": {"kind": "gaussian", "spectrum": [3.0, 1.0, 0.5, 0.25], "rotation": "random"},
    "rule": {"name": "oja", "eta": "0.05 Hz"},
    "simulation": {"duration": "0.5 s", "dt": "1 ms", "device": "runtime"},
    "record": {"every": "10 ms"},
}

#: BCM on patterns with rectified neurons: has /state/theta and /inputs/patterns
BCM_CONFIG = {
    "name": "tiny_bcm",
    "seed": 2,
    "network": {"model": "relu_rate", "n_pre": 3, "n_post": 2,
                "init": {"distribution": "uniform", "low": 0.05, "high": 0.25}},
    "inputs": {"kind": "patterns", "patterns": [[1.0, 0.2, 0.0], [0.0, 1.0, 0.2], [0.2, 0.0, 1.0]],
               "probabilities": [0.5, 0.3, 0.2]},
    "rule": {"name": "bcm", "eta": "0.1 Hz", "tau_theta": "50 ms"},
    "simulation": {"duration": "0.5 s", "dt": "1 ms", "device": "runtime"},
    "record": {"every": "10 ms"},
}


#: keys of a dynamics config that sit in [simulation] / [record], not in [dynamics]
_RUN_KEYS = {"duration": ("simulation", "duration"), "dt": ("simulation", "dt"),
             "weight_bound": ("simulation", "weight_bound"), "record_every": ("record", "every")}


def dynamics_config(name, **changes):
    """A shipped ``kind = "dynamics"`` config as a dict, with ``changes`` applied: the
    run keys (``duration``, ``dt``, ``weight_bound``, ``record_every``) to their
    sections, the rest to ``[dynamics]``."""
    import tomllib

    data = tomllib.loads((EXPERIMENTS / f"{name}.toml").read_text())
    for key, value in changes.items():
        if key in _RUN_KEYS:
            section, field = _RUN_KEYS[key]
            data.setdefault(section, {})[field] = value
        else:
            data["dynamics"][key] = value
    return data


@pytest.fixture
def base_config():
    """A fresh deep copy of :data:`BASE_CONFIG` to modify."""
    return copy.deepcopy(BASE_CONFIG)


@pytest.fixture
def bcm_config():
    return copy.deepcopy(BCM_CONFIG)


@pytest.fixture
def results_dir(tmp_path):
    """Where runs started with cwd = tmp_path put their files by default."""
    return tmp_path / "results"


@pytest.fixture
def write_config(tmp_path):
    """``write_config(data, name="config.toml")`` -> path of a TOML file in tmp_path."""

    def write(data, name="config.toml"):
        path = tmp_path / name
        path.write_text(tomli_w.dumps(data) if isinstance(data, dict) else data)
        return path

    return write


@pytest.fixture
def cli(tmp_path):
    """``cli("run", cfg, ..., timeout=120)`` runs the ``plasticity`` command in tmp_path
    and returns the CompletedProcess (text mode)."""

    def run(*args, timeout=180, cwd=None):
        return subprocess.run(plasticity_command() + [str(a) for a in args], cwd=cwd or tmp_path,
                              capture_output=True, text=True, timeout=timeout,
                              env=cli_env())

    return run


@pytest.fixture
def start_cli(tmp_path):
    """``start_cli("run", cfg, ...)`` starts the command (Popen, text pipes) in tmp_path;
    the processes still running at the end of the test are killed."""
    started = []

    def start(*args, cwd=None):
        process = subprocess.Popen(plasticity_command() + [str(a) for a in args],
                                   cwd=cwd or tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=cli_env())
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def cli_env():
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_file_path(completed, cwd):
    """The run file named by the last stdout line of a finished ``plasticity run``."""
    path = Path(last_line(completed.stdout))
    return path if path.is_absolute() else Path(cwd) / path


def wait_for_records(directory, minimum=1, timeout=120, process=None):
    """Poll ``directory`` until one ``*.h5`` file in it holds ``minimum`` records
    (read without file locking while the writer has it open); return its path."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended early (rc {process.returncode}): "
                                 f"{process.stderr.read()}")
        for path in Path(directory).glob("**/*.h5"):
            try:
                with h5py.File(path, "r", locking=False) as f:
                    if "time" in f and f["time"].shape[0] >= minimum:
                        return path
            except Exception:  # noqa: BLE001 - caught mid-write: read again
                pass
        time.sleep(0.1)
    raise AssertionError(f"no run file with {minimum} records under {directory} after {timeout} s")


def files_under(path):
    path = Path(path)
    return sorted(p.relative_to(path) for p in path.rglob("*")) if path.exists() else []


def run_in_process(args, out):
    """``plasticity run *args --out out -q`` in this process; it must succeed. Returns
    the one run file it wrote under ``out``."""
    from plasticity.cli import main

    assert main(["run", *map(str, args), "--out", str(out), "-q"]) == 0
    (path,) = Path(out).glob("*.h5")
    return path


def assert_run_rejected(config_path, out, expected, capsys):
    """``plasticity run config_path --out out`` (in process) exits 2 with a one-line
    message containing ``expected``, no traceback, and writes nothing under ``out``."""
    from plasticity.cli import main

    code = main(["run", str(config_path), "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err and "\n" not in err.strip() and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
