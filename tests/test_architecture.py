"""The package's layers: imports go one way (config → sim → io → analysis → report,
with rules, inputs and systems below both sides), there is no import cycle, and every
rule in the registry honours the rule contract."""

import ast
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from plasticity.rules import RULES

PACKAGE = Path(__file__).resolve().parents[1] / "plasticity"

#: what each layer may import (besides itself and the package's own ``__init__``,
#: which holds the version)
ALLOWED = {
    "units": set(),
    "errors": set(),
    "rules": {"units"},
    "inputs": set(),
    "systems": {"rules", "inputs", "units"},
    "io": {"rules", "inputs", "errors"},
    "config": {"rules", "systems", "inputs", "units", "errors"},
    "sim": {"config", "io", "systems", "rules", "inputs", "units", "errors"},
    "analysis": {"io", "systems", "rules", "inputs", "units", "errors"},
    "cli": {"config", "sim", "io", "analysis", "sweep", "report", "rules", "errors"},
    "report": {"analysis", "io", "rules", "inputs", "units", "errors"},
    "runner": {"sim"},
    "sweep": {"config", "sim", "analysis", "io", "errors"},           # the old import path of ``run``, kept for users
    "__init__": set(),
}
#: imports that run back up the layers, each with the reason it is there
BACK_UP = {}


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path):
    """Every ``plasticity.*`` module imported anywhere in ``path`` (also inside
    functions), resolved to absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("plasticity"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("plasticity"):
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    found.add(candidate if _exists(candidate) else target)
    found.discard(name)
    return found


def _exists(name):
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").exists() or (PACKAGE / rel / "__init__.py").exists()


def layer(name):
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph():
    g = nx.DiGraph()
    for path in PACKAGE.rglob("*.py"):
        source = module_name(path)
        g.add_node(source)
        for target in imports(path):
            g.add_edge(source, target)
    return g


def test_no_import_cycle():
    g = graph()
    # a package's __init__ that re-exports its own modules is not a cycle of the code
    g.remove_edges_from([(a, b) for a, b in list(g.edges) if b.startswith(a + ".")])
    cycles = list(nx.simple_cycles(g))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_layers_import_one_way():
    wrong = []
    for a, b in graph().edges:
        la, lb = layer(a), layer(b)
        if la != lb and lb != "__init__" and lb not in ALLOWED[la] and (a, b) not in BACK_UP:
            wrong.append(f"{a} -> {b}")
    assert not wrong, "imports against the flow: " + ", ".join(sorted(wrong))


def test_layer_graph_is_acyclic():
    g = nx.DiGraph()
    for a, b in graph().edges:
        if layer(a) != layer(b):
            g.add_edge(layer(a), layer(b))
    assert nx.is_directed_acyclic_graph(g), list(nx.simple_cycles(g))


def test_only_io_touches_hdf5_files():
    """One owner of the run-file format: no module outside ``plasticity.io`` imports
    h5py (reports, sweeps, the analysis and the CLI read and write through it)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if module_name(path).startswith("plasticity.io"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "h5py" for n in names):
                offenders.append(module_name(path))
    assert not offenders, offenders


# ----------------------------------------------------------------------------------
# The rule contract, over the registry

@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_contract(name):
    from plasticity.analysis.losses import LOSSES, RULE_VARIANTS
    from plasticity.inputs import InputStats
    from plasticity.rules import SpikeRates

    rule = RULES[name]
    assert rule.name == name and rule.summary
    assert rule.activity in ("rate", "spiking")
    # parameters declared, with defaults that parse to themselves
    params = rule.resolve({})
    assert set(params) == set(rule.parameters)
    for key, parameter in rule.parameters.items():
        assert parameter.doc, f"{name}.{key} has no doc"
    for state, parameter in rule.state_time_constants.items():
        assert state in rule.state and parameter in rule.parameters
    # the drift is finite and has the shapes of W and the state
    rng = np.random.default_rng(0)
    n_pre, n_post, B = 3, 2, 4
    W = rng.uniform(0.1, 0.5, (B, n_post, n_pre))
    state = {s: rng.uniform(0.1, 0.5, (B, n_post)) for s in rule.state}
    if rule.activity == "rate":
        stats = InputStats.from_patterns(np.eye(n_pre) + 0.1, None, "relu")
    else:
        stats = SpikeRates(rng.uniform(5, 20, (B, n_pre)), rng.uniform(5, 20, (B, n_post)))
    dW, dstate = rule.drift(W, state, stats, params)
    assert dW.shape == W.shape and np.all(np.isfinite(dW))
    for s, value in (dstate or {}).items():
        assert value.shape == (B, n_post) and np.all(np.isfinite(value))
    # every candidate loss resolves to a built-in (or a rule-specific) loss
    from plasticity.analysis.losses import make_loss
    from plasticity.io import Layout

    layout = Layout.dense_full(n_pre, n_post)
    for loss_name in rule.losses:
        assert loss_name in LOSSES or (name, loss_name) in RULE_VARIANTS or loss_name == f"{name}_bcm", loss_name
        if rule.activity == "rate":
            loss = make_loss(loss_name, stats, layout, name, params)
            values, grads = loss.value_and_grad(W.reshape(B, -1))
            assert values.shape == (B,) and np.all(np.isfinite(grads))


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_brian2_code_compiles(name):
    """The rule's Brian2 statements build and run, with units, in the network the
    simulation side builds for it (numpy code generation: no compiler needed)."""
    b2 = pytest.importorskip("brian2")
    from plasticity.config import validate

    rule = RULES[name]
    if rule.activity == "rate":
        from plasticity.sim.rate import build_rate_network as build

        data = {"name": "contract", "network": {"model": "relu_rate", "n_pre": 3, "n_post": 2},
                "inputs": {"kind": "patterns", "patterns": [[1.0, 0.2, 0.0], [0.0, 1.0, 0.5]]}}
    else:
        from plasticity.sim.spiking import build_spiking_network as build

        data = {"name": "contract", "network": {"model": "poisson_pair", "n_pre": 3, "n_post": 2},
                "inputs": {"kind": "poisson", "rates": "20 Hz", "post_rates": "20 Hz"}}
    experiment = validate({**data, "rule": {"name": name},
                           "simulation": {"duration": "10 ms", "device": "runtime"}})
    b2.set_device("runtime")
    b2.prefs.codegen.target = "numpy"
    try:
        b2.defaultclock.dt = experiment.simulation.dt * b2.second
        parts = build(experiment, rule, experiment.rule.params, np.random.default_rng(0))
        parts.network.run(2 * b2.defaultclock.dt, namespace={})
        assert np.all(np.isfinite(parts.synapses.w_[:]))
    finally:
        b2.prefs.codegen.target = "cython"
