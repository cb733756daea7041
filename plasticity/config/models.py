"""Model specs: the TOML files that say what a network's neurons are.

The shipped specs live in the repository's top-level ``models/`` folder, which is also
installed with the package (as ``plasticity.models``), so a regular ``pip install .``
finds them from any working directory. A user's own specs go in folders listed in the
environment variable ``PLASTICITY_MODELS`` (separated like ``PATH``); those are searched
first, so a user's ``linear_rate.toml`` there replaces the shipped one.

Every spec is validated once (:class:`ModelSpec`) with the same one-line errors as
experiment configs, and the resolved spec is stored in each run file beside
``/config``.
"""

import os
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import ValidationError, model_validator

from ..errors import ConfigError
from ..units import dimension_of
from .common import Strict, describe_error, first_error

MODELS_ENV = "PLASTICITY_MODELS"


class ModelSpec(Strict):
    """A network model: rate neurons (``activity = "rate"``, with a ``transfer``) or
    spiking ones (``activity = "spiking"``, with a ``neuron`` type and ``[params]``).

    In the TOML file the activity is spelt ``kind`` (``kind = "rate"``)."""

    name: str
    #: spelt ``kind`` in the spec file
    activity: Literal["rate", "spiking"] = "rate"
    description: str = ""
    #: rate models: y = σ(w·x)
    transfer: Literal["linear", "relu"] = "linear"
    #: spiking models: the postsynaptic neurons
    neuron: Literal["lif", "poisson"] | None = None
    #: spiking models: a recurrent network (n_pre = n_post neurons) rather than a
    #: feed-forward input population
    recurrent: bool = False
    #: spiking models: parameter values (strings with units, or numbers); experiments
    #: override them in [network.params]
    params: dict[str, Any] = {}

    @model_validator(mode="after")
    def _consistent(self):
        if self.activity == "spiking" and self.neuron is None:
            raise ValueError("spiking models need 'neuron' (lif or poisson)")
        if self.activity == "rate" and (self.neuron is not None or self.params or self.recurrent):
            raise ValueError("'neuron', 'params' and 'recurrent' belong to spiking models "
                             "(kind = \"spiking\")")
        for key, value in self.params.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(f"params.{key}: expected a number or a quantity string, "
                                 f"got {value!r}")
            if isinstance(value, str):
                try:
                    dimension_of(value)
                except ValueError as error:
                    raise ValueError(f"params.{key}: {error}") from None
        return self

    def to_toml(self):
        data = self.model_dump(mode="python", exclude_none=True)
        data["kind"] = data.pop("activity")
        return tomli_w.dumps(data)


def model_dirs():
    """Folders searched for ``<name>.toml``, in order: ``$PLASTICITY_MODELS``, then
    the shipped models."""
    dirs = [Path(p) for p in os.environ.get(MODELS_ENV, "").split(os.pathsep) if p]
    dirs.append(Path(str(resources.files("plasticity.models"))))
    return dirs


def available_models():
    """Names of the model specs found in :func:`model_dirs`."""
    names = set()
    for folder in model_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.toml"))
    return sorted(names)


def find_model(name):
    """The path of model ``name``'s spec, or None."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    for folder in model_dirs():
        path = folder / f"{name}.toml"
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=64)
def _load(path, mtime):
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not a readable TOML model spec "
                          f"({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
    if "kind" in data:
        data["activity"] = data.pop("kind")
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as error:
        first = first_error(error)
        first["loc"] = tuple("kind" if part == "activity" else part for part in first["loc"])
        raise ConfigError(f"{path}: {describe_error(first, ModelSpec)}") from None


def load_model_spec(name):
    """The validated :class:`ModelSpec` of model ``name`` (ConfigError if unknown or
    invalid)."""
    path = find_model(name)
    if path is None:
        raise ConfigError(f"network.model: unknown model {name!r} "
                          f"(allowed: {', '.join(available_models())})")
    return _load(str(path), path.stat().st_mtime_ns)
