"""A regular (non-editable) install works from any folder: the package and its model
specs are installed, nothing is looked up relative to the source tree."""

import os
import subprocess
import sys

import pytest

from conftest import EXPERIMENTS, ROOT


@pytest.mark.slow
def test_regular_install_runs_and_analyzes_from_elsewhere(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                            "--target", str(target), str(ROOT)],
                           capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    assert (target / "plasticity" / "models" / "linear_rate.toml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("PLASTICITY_MODELS", None)
    command = [sys.executable, "-m", "plasticity.cli"]
    where = subprocess.run([sys.executable, "-c", "import plasticity; print(plasticity.__file__)"],
                           capture_output=True, text=True, cwd=elsewhere, env=env)
    assert where.stdout.strip().startswith(str(target)), where.stdout
    run = subprocess.run(command + ["run", str(EXPERIMENTS / "oja_pca.toml"), "--out", str(tmp_path / "x"),
                                    "-q", "--set", 'simulation.duration="2 s"',
                                    "--set", 'simulation.device="runtime"'],
                         capture_output=True, text=True, cwd=elsewhere, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    path = run.stdout.strip().splitlines()[-1]
    assert path.endswith(".h5") and os.path.exists(path)
    analyze = subprocess.run(command + ["analyze", path, "--json"], capture_output=True, text=True,
                             cwd=elsewhere, env=env)
    assert analyze.returncode == 0, analyze.stderr[-2000:]
    assert '"verdict"' in analyze.stdout
