"""Each command imports only what it needs (what is loaded, never how long it takes:
timings are in benchmarks/bench_startup.py)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import cli_env

#: run ``plasticity.cli.main(argv)`` in a fresh interpreter, then print the names of
#: the loaded modules as one JSON line (after whatever the command printed)
PROBE = """
import json, sys
from plasticity.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded_modules(*argv, cwd):
    done = subprocess.run([sys.executable, "-c", PROBE, *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=cli_env())
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, None), done.stderr
    return set(result["modules"])


def packages(modules):
    return {name.split(".")[0] for name in modules}


def test_help_imports_no_heavy_library(tmp_path):
    modules = loaded_modules("--help", cwd=tmp_path)
    heavy = packages(modules) & {"brian2", "matplotlib", "networkx", "scipy", "sympy", "pydantic",
                                 "h5py"}
    assert not heavy


def test_analyze_imports_neither_brian2_nor_matplotlib(tmp_path):
    from plasticity.inputs import InputStats
    from plasticity.io.testing import write_run_file

    rng = np.random.default_rng(0)
    stats = InputStats.gaussian(3, rng, spectrum=[2.0, 1.0, 0.5])
    weights = 0.1 + 0.01 * np.cumsum(rng.standard_normal((20, 3)), axis=0)
    path = tmp_path / "run.h5"
    write_run_file(path, np.arange(20) * 0.1, weights, rule_name="oja", params={"eta": 0.1},
                   stats=stats, n_pre=3, n_post=1)
    modules = loaded_modules("analyze", path, "--json", cwd=tmp_path)
    assert "plasticity.analysis" in modules          # the command did run
    assert not packages(modules) & {"brian2", "matplotlib", "networkx"}


def test_run_imports_no_matplotlib_networkx_or_scipy_optimize(tmp_path, write_config, base_config):
    # base_config: a rate network on the runtime device with a random rotation of the
    # inputs' covariance (the case that used to need scipy.stats)
    config = write_config(base_config)
    modules = loaded_modules("run", config, "--out", tmp_path / "out", "-q", cwd=tmp_path)
    assert "brian2" in modules and list((tmp_path / "out").glob("*.h5"))
    assert not packages(modules) & {"matplotlib", "networkx", "pylab"}
    assert not {"scipy.optimize", "scipy.stats"} & modules


@pytest.mark.slow
def test_run_of_the_shipped_oja_config_imports_no_plotting_graph_or_optimizer(tmp_path):
    # experiments/oja_pca.toml as shipped: device "auto", which picks cpp_standalone
    # for its 2·10⁵ steps (the first run in a fresh cache compiles the program; a
    # later one launches it without Brian2)
    from pathlib import Path

    config = Path(__file__).parents[1] / "experiments" / "oja_pca.toml"
    modules = loaded_modules("run", config, "--out", tmp_path / "out", "-q", cwd=tmp_path)
    assert list((tmp_path / "out").glob("*.h5"))
    assert "plasticity.sim.standalone" in modules
    assert not packages(modules) & {"matplotlib", "networkx", "pylab", "pytest"}
    assert not {"scipy.optimize", "scipy.stats"} & modules


def test_brian2_templates_are_compiled_once_across_processes(tmp_path):
    # the first process compiles Brian2's main.cpp template and stores it; a second
    # process with the same folder loads it without compiling
    script = """
import sys
import jinja2
from plasticity.sim.brian import cache_brian2_templates, import_brian2
import_brian2()
compiled = []
real = jinja2.Environment.compile
jinja2.Environment.compile = lambda self, source, name=None, *a, **k: (
    compiled.append(name), real(self, source, name, *a, **k))[1]
cache_brian2_templates(sys.argv[1])
from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject
CPPStandaloneCodeObject.templater.main
print(",".join(str(name) for name in compiled))
"""
    folder = tmp_path / "templates"
    runs = [subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True,
                           text=True, timeout=300, env=cli_env(), cwd=tmp_path) for _ in range(2)]
    for done in runs:
        assert done.returncode == 0, done.stderr[-2000:]
    first, second = (done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
                     for done in runs)
    assert "main.cpp" in first
    assert "main.cpp" not in second
    assert any(folder.iterdir())


def test_run_imports_networkx_when_the_topology_needs_it(tmp_path, write_config, base_config):
    base_config["network"]["topology"] = {"generator": "random_graph", "args": {"p": 0.6}}
    config = write_config(base_config)
    modules = loaded_modules("run", config, "--out", tmp_path / "out", "-q", cwd=tmp_path)
    assert "networkx" in modules and list((tmp_path / "out").glob("*.h5"))


def test_import_brian2_keeps_matplotlib_out_and_importable():
    code = """
import sys
from plasticity.sim.brian import import_brian2
b2 = import_brian2()
assert "matplotlib" not in sys.modules and "pylab" not in sys.modules, "matplotlib loaded"
assert abs(float((3 * b2.ms) / b2.second) - 0.003) < 1e-15      # units work
group = b2.NeuronGroup(2, "v : 1")
assert import_brian2() is b2                                      # imported once
import matplotlib                                                 # still importable after
import pylab
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "ok", done.stderr


def test_import_brian2_leaves_an_earlier_matplotlib_alone():
    code = """
import sys
import matplotlib
from plasticity.sim.brian import import_brian2
b2 = import_brian2()
assert sys.modules["matplotlib"] is matplotlib
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("n_pre,n_post", [(1, 1), (4, 3), (7, 1), (2, 5)])
def test_all_to_all_topology_matches_networkx(n_pre, n_post):
    import networkx as nx

    from plasticity.config import validate
    from plasticity.sim.rate import make_topology

    experiment = validate({
        "name": "t", "seed": 1,
        "network": {"model": "linear_rate", "n_pre": n_pre, "n_post": n_post},
        "inputs": {"kind": "gaussian", "spectrum": [1.0] * n_pre},
        "rule": {"name": "oja", "eta": 0.1},
        "simulation": {"duration": 0.01, "dt": 0.001, "device": "runtime"},
    })
    rng = np.random.default_rng(5)
    topology = make_topology(experiment, rng)
    graph = nx.bipartite.complete_bipartite_graph(n_pre, n_post)
    edges = sorted({(u, v - n_pre) for u, v in graph.edges()})
    assert list(zip(topology.pre.tolist(), topology.post.tolist())) == edges
    # the random stream advances as before (one seed drawn for the generator)
    reference = np.random.default_rng(5)
    reference.integers(2**31)
    assert rng.integers(2**31) == reference.integers(2**31)


@pytest.mark.parametrize("n", [2, 3, 10, 40])
def test_random_rotation_is_scipys_special_ortho_group(n):
    from scipy.stats import special_ortho_group

    from plasticity.inputs import random_rotation

    for seed in range(3):
        Q = random_rotation(n, np.random.default_rng(seed))
        np.testing.assert_allclose(Q @ Q.T, np.eye(n), atol=1e-12)
        assert np.linalg.det(Q) == pytest.approx(1.0)
        # the same draws as SciPy's sampler, so seeded runs keep their inputs
        reference = special_ortho_group.rvs(n, random_state=np.random.default_rng(seed))
        np.testing.assert_allclose(Q, reference, rtol=0, atol=1e-12)


def test_compiler_flag_checks_are_kept_across_processes(tmp_path):
    import shutil

    from brian2.codegen import cpp_prefs

    from plasticity.sim.brian import load_compiler_flag_checks, save_compiler_flag_checks

    compiler = next((c for c in ("c++", "g++", "cc") if shutil.which(c)), None)
    if compiler is None:
        pytest.skip("no C++ compiler")
    known = cpp_prefs._compiler_flag_compatibility
    saved = dict(known)
    try:
        known.clear()
        known[(compiler, "-O3")] = True
        known[(compiler, "-fno-such-flag")] = False
        save_compiler_flag_checks(tmp_path)
        known.clear()
        load_compiler_flag_checks(tmp_path)
        assert known == {(compiler, "-O3"): True, (compiler, "-fno-such-flag"): False}
        # another compiler binary (size or mtime changed): asked again, not trusted
        path = tmp_path / "compiler_flags.json"
        rows = json.loads(path.read_text())
        for row in rows:
            row[1] = [row[1][0] + 1, row[1][1]]
        path.write_text(json.dumps(rows))
        known.clear()
        load_compiler_flag_checks(tmp_path)
        assert known == {}
        path.write_text("not json")          # a damaged file is ignored
        load_compiler_flag_checks(tmp_path)
        assert known == {}
    finally:
        known.clear()
        known.update(saved)
