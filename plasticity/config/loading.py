"""Reading a config file, applying ``--set`` overrides and validating the result."""

import re
import tomllib
from pathlib import Path

from pydantic import ValidationError

from ..errors import ConfigError, os_error_reason
from ..rules import RULES
from .common import describe_error, first_error
from .experiment import Experiment

_SET = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)=(.*)$", re.S)


def parse_override(text):
    """``"rule.eta=0.01"`` -> ``(["rule", "eta"], 0.01)``. The value is read as a TOML
    value (number, string, array, boolean), else kept as a plain string."""
    if "\n" in text or "\r" in text:
        raise ConfigError(f"--set {text!r}: contains a line break (one key.path=value per --set)")
    match = _SET.match(text.strip())
    if not match:
        raise ConfigError(f"--set {text!r}: expected key.path=value, e.g. rule.eta=0.01")
    path, raw = match.groups()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path.split("."), value


def apply_overrides(data, overrides):
    """Set each ``key.path=value`` of ``overrides`` in the nested dict ``data``."""
    for text in overrides or ():
        keys, value = parse_override(text)
        node = data
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {'.'.join(keys[:depth + 1])} is not a table")
            node = child
        node[keys[-1]] = value
    return data


def read_toml(path, what="config file"):
    """The TOML file at ``path`` as a dict, or :class:`ConfigError` (``what`` the file
    is, for the message)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a {what}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (TOML) file") from None
    except RecursionError:
        raise ConfigError(f"{path}: arrays or tables nested too deeply") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied (not readable)") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config: {os_error_reason(error)}") from None


def validate(data, source="config"):
    """Validate a rate/spiking config dict; the :class:`Experiment` or ConfigError."""
    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: {describe_error(first_error(error), Experiment)}") from None
    rule = RULES[experiment.rule.name]
    try:
        rule.resolve(experiment.rule.values)
    except KeyError as error:
        raise ConfigError(f"{source}: rule.{error.args[0]}: unknown key for rule {rule.name!r} "
                          f"(allowed: name, {', '.join(rule.parameters)})") from None
    except ValueError as error:
        raise ConfigError(f"{source}: rule.{error}") from None
    return experiment


def validate_any(data, source="config"):
    """Validate a config dict of any experiment kind (``kind = "dynamics"`` or a
    rate/spiking experiment)."""
    if data.get("kind") == "dynamics":
        from .dynamics import validate_dynamics

        return validate_dynamics(data, source=source)
    return validate(data, source=source)


def load_config(path, overrides=(), seed=None):
    """Read, override and validate the config at ``path``: the resolved experiment
    (:class:`Experiment`, or :class:`DynamicsExperiment` for ``kind = "dynamics"``)."""
    data = apply_overrides(read_toml(path), overrides)
    if seed is not None:
        data["seed"] = seed
    return validate_any(data, source=str(path))
