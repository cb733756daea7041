"""Config schema: every kind of bad input is exit code 2 with a one-line message naming
the key path (and the allowed values where there is a list), no traceback, and
nothing written. Each case runs the real ``plasticity`` command in a subprocess."""

import copy
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import BASE_CONFIG, EXPERIMENTS, files_under
from plasticity.config import load_config, parse_override
from plasticity.errors import ConfigError


def _set(path, value):
    def change(data):
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return change


def _delete(path):
    def change(data):
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
    return change


# (id, change to BASE_CONFIG (function) or raw file text (str), extra CLI args,
#  substrings the one-line message must contain)
BAD_CONFIGS = [
    ("unknown-top-level-key", _set("colour", "red"), [],
     ["colour", "unknown key", "allowed", "network", "simulation"]),
    ("unknown-nested-key", _set("network.n_inputs", 4), [],
     ["network.n_inputs", "unknown key", "n_pre"]),
    ("unknown-deep-key", _set("network.init.spread", 1.0), [],
     ["network.init.spread", "unknown key", "distribution"]),
    ("unknown-rule-parameter", _set("rule.tau_theta", "1 s"), [],
     ["rule.tau_theta", "unknown key", "oja", "eta"]),
    ("wrong-type-int", _set("network.n_pre", "four"), [], ["network.n_pre", "integer"]),
    ("wrong-type-fraction", _set("network.n_post", 1.5), [], ["network.n_post"]),
    ("wrong-type-list", _set("inputs.spectrum", "big"), [], ["inputs.spectrum"]),
    ("wrong-type-list-item", _set("inputs.spectrum", [3.0, "a", 0.5, 0.25]), [],
     ["inputs.spectrum.1"]),
    ("wrong-type-table", _set("simulation", "fast"), [], ["simulation"]),
    ("wrong-type-bool-quantity", _set("simulation.duration", True), [], ["simulation.duration"]),
    ("missing-model", _delete("network.model"), [], ["network.model", "missing"]),
    ("missing-rule-table", _delete("rule"), [], ["rule", "missing"]),
    ("missing-rule-name", _delete("rule.name"), [], ["rule.name", "missing"]),
    ("missing-duration", _delete("simulation.duration"), [], ["simulation.duration", "missing"]),
    ("missing-inputs-kind", _delete("inputs.kind"), [], ["inputs.kind", "missing"]),
    ("zero-duration", _set("simulation.duration", "0 s"), [], ["simulation.duration", "greater than 0"]),
    ("negative-duration", _set("simulation.duration", -1.0), [], ["simulation.duration"]),
    ("zero-dt", _set("simulation.dt", 0), [], ["simulation.dt", "greater than 0"]),
    ("negative-dt", _set("simulation.dt", "-0.1 ms"), [], ["simulation.dt"]),
    ("zero-eta", _set("rule.eta", 0), [], ["rule.eta", "> 0"]),
    ("negative-eta", _set("rule.eta", "-1 Hz"), [], ["rule.eta", "> 0"]),
    ("zero-record-every", _set("record.every", "0 ms"), [], ["record.every"]),
    ("zero-weight-bound", _set("simulation.weight_bound", 0), [], ["simulation.weight_bound"]),
    ("record-not-multiple-of-dt", _set("record.every", "2.5 ms"), [],
     ["record.every", "multiple", "simulation.dt"]),
    ("duration-not-multiple-of-dt", _set("simulation.duration", "0.5005 s"), [],
     ["simulation.duration", "multiple", "simulation.dt"]),
    ("record-longer-than-run", _set("record.every", "2 s"), [], ["record.every", "simulation.duration"]),
    ("unknown-rule", _set("rule.name", "hebb"), [],
     ["rule.name", "'hebb'", "allowed", "bcm", "covariance", "hebbian", "oja"]),
    ("unknown-model", _set("network.model", "izhikevich"), [],
     ["network.model", "'izhikevich'", "allowed", "linear_rate", "relu_rate"]),
    ("unknown-device", _set("simulation.device", "gpu"), [],
     ["simulation.device", "runtime", "cpp_standalone", "auto"]),
    ("unknown-input-kind", _set("inputs.kind", "noise"), [], ["inputs.kind", "gaussian", "patterns"]),
    ("unknown-init", _set("network.init.distribution", "lognormal"), [],
     ["network.init.distribution", "uniform", "normal", "constant"]),
    ("unknown-rotation", _set("inputs.rotation", "haar"), [], ["inputs.rotation", "identity", "random"]),
    ("unknown-topology", _set("network.topology.generator", "small_world_please"), [],
     ["network.topology.generator", "small_world_please"]),
    ("duration-in-hertz", _set("simulation.duration", "10 Hz"), [],
     ["simulation.duration", "rate", "s"]),
    ("eta-in-seconds", _set("rule.eta", "0.01 s"), [], ["rule.eta", "time", "Hz"]),
    ("unknown-unit", _set("simulation.dt", "1 fortnight"), [], ["simulation.dt", "fortnight"]),
    ("unreadable-quantity", _set("simulation.dt", "one ms"), [], ["simulation.dt", "one ms"]),
    ("n-pre-mismatch", _set("network.n_pre", 5), [], ["network.n_pre", "5"]),
    ("negative-eigenvalue", _set("inputs.spectrum", [3.0, -1.0, 0.5, 0.25]), [], ["inputs.spectrum.1"]),
    ("patterns-ragged", lambda d: d.update(inputs={"kind": "patterns", "patterns": [[1, 0, 0, 0], [0, 1]]}),
     [], ["inputs", "patterns"]),
    ("probabilities-count", lambda d: d.update(inputs={"kind": "patterns", "patterns": [[1, 0, 0, 0]],
                                                       "probabilities": [0.5, 0.5]}),
     [], ["inputs", "probabilities"]),
    ("mean-length", _set("inputs.mean", [1.0, 2.0]), [], ["inputs", "'mean'", "2 entries", "4 inputs"]),
    ("mean-with-patterns", lambda d: d.update(inputs={"kind": "patterns", "patterns": [[1, 0, 0, 0]],
                                                      "mean": [0, 0, 0, 0]}),
     [], ["inputs", "'mean'", "gaussian"]),
    ("infinite-duration", _set("simulation.duration", float("inf")), [], ["simulation.duration", "finite"]),
    ("nan-spectrum", _set("inputs.spectrum", [3.0, float("nan"), 0.5, 0.25]), [], ["inputs", "spectrum"]),
    ("seed-too-big", _set("seed", 2**40), [], ["seed", "4294967295"]),
    ("bad-name", _set("name", "my run/1"), [], ["name"]),
    ("negative-seed", _set("seed", -1), [], ["seed"]),
    ("invalid-toml", "name = \"x\"\n[network\nmodel = 1\n", [], ["config.toml", "TOML"]),
    ("not-utf8", b"\xff\xfe\x00bad".decode("latin-1"), [], ["config.toml"]),
    ("bad-set-syntax", None, ["--set", "rule.eta"], ["--set", "rule.eta", "key.path=value"]),
    ("bad-set-key", None, ["--set", "rule..eta=1"], ["--set", "rule..eta=1"]),
    ("set-into-a-value", None, ["--set", "rule.eta.x=1"], ["--set", "rule.eta", "not a table"]),
    ("set-unknown-key", None, ["--set", "simulation.durration=1"], ["simulation.durration", "unknown key"]),
    ("set-bad-value", None, ["--set", "network.n_pre=-4"], ["network.n_pre"]),
    ("bad-seed-option", None, ["--seed", "-3"], ["seed"]),
    ("non-integer-seed-option", None, ["--seed", "x"], ["--seed"]),
    ("unknown-option", None, ["--sed", "3"], ["--sed"]),
    ("out-is-a-file", None, ["--out", "config.toml/sub"], ["--out", "config.toml"]),
]


def _write_case(tmp_path, change):
    path = tmp_path / "config.toml"
    if isinstance(change, str):
        path.write_bytes(change.encode("latin-1"))
    else:
        data = copy.deepcopy(BASE_CONFIG)
        if change is not None:
            change(data)
        import tomli_w
        path.write_text(tomli_w.dumps(data))
    return path


def assert_bad_input(result, expected, tmp_path, before):
    message = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert len(message.splitlines()) == 1, f"not one line: {message!r}"
    assert message.startswith("plasticity: error:"), message
    for piece in expected:
        assert piece in message, f"{piece!r} not in {message!r}"
    assert files_under(tmp_path) == before, "bad input wrote something"


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """``plasticity run`` on every case of BAD_CONFIGS, several processes at once (each
    in its own folder); the tests below check one result each."""
    from concurrent.futures import ThreadPoolExecutor

    from conftest import cli_env, plasticity_command

    # folders made here, one thread: tmp_path_factory is not thread-safe
    folders = {case[0]: tmp_path_factory.mktemp(case[0]) for case in BAD_CONFIGS}

    def one(case):
        name, change, args, _ = case
        folder = folders[name]
        config = _write_case(folder, change)
        before = files_under(folder)
        result = subprocess.run(plasticity_command() + ["run", config.name, "-q", *args], cwd=folder,
                                capture_output=True, text=True, timeout=120, env=cli_env())
        return name, (result, folder, before)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, BAD_CONFIGS))


@pytest.mark.parametrize("expected", [case[3] for case in BAD_CONFIGS],
                         ids=[case[0] for case in BAD_CONFIGS])
def test_bad_config_run(expected, request, bad_runs):
    name = request.node.callspec.id
    result, folder, before = bad_runs[name]
    assert_bad_input(result, expected, folder, before)
    assert not (folder / "results").exists()


#: a sample of the cases through ``plasticity validate`` (same code path as ``run``)
VALIDATE_CASES = ["unknown-top-level-key", "unknown-rule-parameter", "wrong-type-int",
                  "missing-model", "zero-eta", "record-not-multiple-of-dt", "unknown-rule",
                  "unknown-model", "duration-in-hertz", "invalid-toml", "bad-set-syntax"]


@pytest.mark.parametrize("change, args, expected",
                         [case[1:] for case in BAD_CONFIGS if case[0] in VALIDATE_CASES],
                         ids=[case[0] for case in BAD_CONFIGS if case[0] in VALIDATE_CASES])
def test_bad_config_validate(change, args, expected, tmp_path, cli):
    config = _write_case(tmp_path, change)
    before = files_under(tmp_path)
    result = cli("validate", config.name, *args)
    assert_bad_input(result, expected, tmp_path, before)


@pytest.mark.parametrize("command", ["run", "validate"])
def test_missing_config_file(command, tmp_path, cli):
    result = cli(command, "no_such.toml")
    assert_bad_input(result, ["no_such.toml", "no such config file"], tmp_path, [])


def test_config_is_a_directory(tmp_path, cli):
    (tmp_path / "adir").mkdir()
    result = cli("run", "adir")
    assert_bad_input(result, ["adir", "directory"], tmp_path, [tmp_path.joinpath("adir").relative_to(tmp_path)])


def test_results_folder_is_a_file(tmp_path, cli, write_config):
    config = write_config(BASE_CONFIG)
    (tmp_path / "results").write_text("not a folder")
    before = files_under(tmp_path)
    result = cli("run", config.name, "-q")
    assert_bad_input(result, ["results/tiny", "not a folder"], tmp_path, before)


def test_validate_prints_resolved_config(tmp_path, cli, write_config):
    config = write_config(BASE_CONFIG)
    result = cli("validate", config.name, "--set", "rule.eta=0.25", "--toml")
    assert result.returncode == 0, result.stderr
    resolved = tomllib.loads(result.stdout)
    assert resolved["rule"] == {"name": "oja", "eta": 0.25}
    assert resolved["simulation"]["duration"] == 0.5
    assert resolved["simulation"]["dt"] == 0.001
    assert resolved["record"]["every"] == 0.01
    assert files_under(tmp_path) == [config.relative_to(tmp_path)]
    quiet = cli("validate", config.name, "-q")
    assert quiet.returncode == 0 and quiet.stdout == ""


SHIPPED = sorted(p.stem for p in Path(EXPERIMENTS).glob("*.toml"))


def test_the_three_foundation_experiments_are_shipped():
    assert {"oja_pca", "hebbian_variance", "bcm_selectivity"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_experiments_validate(name):
    experiment = load_config(Path(EXPERIMENTS) / f"{name}.toml")
    assert experiment.name == name
    if getattr(experiment, "kind", None) != "dynamics":
        assert experiment.simulation.steps > 0


# -- in-process: the parts the CLI relies on ----------------------------------------

def test_quantities_are_si(write_config):
    data = copy.deepcopy(BASE_CONFIG)
    data["simulation"].update(duration="1500 ms", dt="0.5 ms")
    data["record"]["every"] = 0.002
    experiment = load_config(write_config(data))
    assert experiment.simulation.duration == pytest.approx(1.5)
    assert experiment.simulation.dt == pytest.approx(5e-4)
    assert experiment.record.every == pytest.approx(2e-3)
    assert experiment.rule.params["eta"] == pytest.approx(0.05)


def test_resolved_toml_round_trips(write_config, bcm_config):
    experiment = load_config(write_config(bcm_config))
    again = load_config(write_config(experiment.to_toml(), "again.toml"))
    assert again.to_dict() == experiment.to_dict()
    assert again.rule.params == {"eta": 0.1, "tau_theta": 0.05, "theta_init": 0.0}


@pytest.mark.parametrize("text, keys, value", [
    ("rule.eta=0.01", ["rule", "eta"], 0.01),
    ("simulation.duration=\"2 s\"", ["simulation", "duration"], "2 s"),
    ("simulation.device=runtime", ["simulation", "device"], "runtime"),
    ("inputs.spectrum=[1, 2]", ["inputs", "spectrum"], [1, 2]),
    ("record.state=false", ["record", "state"], False),
])
def test_parse_override(text, keys, value):
    assert parse_override(text) == (keys, value)


def test_overrides_and_seed(write_config):
    path = write_config(BASE_CONFIG)
    experiment = load_config(path, ["rule.eta=0.2", "network.init.distribution=constant",
                                    "simulation.duration=\"2 s\""], seed=11)
    assert experiment.rule.params["eta"] == 0.2
    assert experiment.network.init.distribution == "constant"
    assert experiment.simulation.duration == 2.0
    assert experiment.seed == 11
    with pytest.raises(ConfigError, match="rule.eta"):
        load_config(path, ["rule.eta=-1"])


def test_misspelt_section_is_named(tmp_path, base_config, write_config, capsys):
    from conftest import assert_run_rejected

    base_config["simulaton"] = base_config.pop("simulation")
    assert_run_rejected(write_config(base_config), tmp_path / "out",
                        "unknown section 'simulaton', did you mean 'simulation'?", capsys)


def test_misspelt_key_suggests_the_right_one(tmp_path, base_config, write_config, capsys):
    from conftest import assert_run_rejected

    base_config["record"]["evry"] = "10 ms"
    assert_run_rejected(write_config(base_config), tmp_path / "out",
                        "record.evry: unknown key (did you mean 'every'?", capsys)
