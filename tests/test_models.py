"""Model specs: found in the installed package and in the user's folders
(``PLASTICITY_MODELS``), validated once with one-line errors, stored in run files."""

import h5py
import pytest
import tomllib

from conftest import assert_run_rejected, run_in_process
from plasticity.config import available_models, load_model_spec
from plasticity.errors import ConfigError


def test_shipped_models_validate():
    names = available_models()
    assert {"linear_rate", "relu_rate", "lif_poisson", "ei_network", "poisson_pair"} <= set(names)
    for name in names:
        spec = load_model_spec(name)
        assert spec.name == name
        assert tomllib.loads(spec.to_toml())["kind"] == spec.activity


def test_user_model_folder_is_searched_first(tmp_path, monkeypatch, base_config, write_config, capsys):
    folder = tmp_path / "my_models"
    folder.mkdir()
    (folder / "steep_relu.toml").write_text('name = "steep_relu"\nkind = "rate"\ntransfer = "relu"\n')
    monkeypatch.setenv("PLASTICITY_MODELS", str(folder))
    assert "steep_relu" in available_models()
    base_config["network"]["model"] = "steep_relu"
    path = run_in_process([write_config(base_config)], tmp_path / "out")
    with h5py.File(path, "r") as f:
        stored = tomllib.loads(f["model_spec"][()].decode())
        assert stored == {"name": "steep_relu", "kind": "rate", "description": "",
                          "transfer": "relu", "recurrent": False, "params": {}}
        assert f["inputs"].attrs["transfer"] == "relu"


@pytest.mark.parametrize("text, expected", [
    ('name = "bad"\nkind = "rate"\ntransfer = "tanh"\n', "transfer"),
    ('name = "bad"\nkind = "spiking"\n', "neuron"),
    ('name = "bad"\nkind = "rate"\ntransfre = "relu"\n', "transfre: unknown key"),
    ('name = "bad"\nkind = "spiking"\nneuron = "lif"\n[params]\ntau_m = "20 parsecs"\n', "params.tau_m"),
    ('name = "bad\nkind = ', "not a readable TOML model spec"),
])
def test_bad_user_model_exits_2_with_one_line(tmp_path, monkeypatch, base_config, write_config, capsys,
                                             text, expected):
    folder = tmp_path / "my_models"
    folder.mkdir()
    (folder / "bad.toml").write_text(text)
    monkeypatch.setenv("PLASTICITY_MODELS", str(folder))
    with pytest.raises(ConfigError, match="bad.toml"):
        load_model_spec("bad")
    base_config["network"]["model"] = "bad"
    assert_run_rejected(write_config(base_config), tmp_path / "out", expected, capsys)


def test_unknown_model_lists_the_known_ones(base_config, write_config, tmp_path, capsys):
    base_config["network"]["model"] = "linear_rat"
    assert_run_rejected(write_config(base_config), tmp_path / "out", "unknown model 'linear_rat'", capsys)
