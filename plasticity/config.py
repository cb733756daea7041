"""Experiment configs: TOML files validated against a schema (pydantic).

:func:`load_config` reads a file, applies ``--set key.path=value`` overrides and
returns a resolved :class:`Experiment` (quantities in SI floats, rule parameters with
their defaults filled in). Every problem raises :class:`~plasticity.errors.ConfigError`
with one line naming the file, the key path and, where it helps, the allowed values.
The keys are documented in the README and in ``experiments/*.toml``.
"""

import math
import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import tomli_w
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError,
                      field_validator, model_validator)

from .errors import ConfigError
from .rules import RULES
from .units import dimension_of, parse_quantity

#: where the model specs live (``models/`` at the top of the repository)
MODELS_DIR = Path(os.environ.get("PLASTICITY_MODELS", Path(__file__).resolve().parents[1] / "models"))


def _quantity(dimension):
    return BeforeValidator(lambda value: parse_quantity(value, dimension))


Time = Annotated[float, _quantity("time"), Field(gt=0, allow_inf_nan=False)]
Rate = Annotated[float, _quantity("rate"), Field(gt=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


def available_models():
    """Names of the model specs in ``models/``."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.toml"))


def load_model_spec(name):
    """The TOML spec of model ``name`` as a dict."""
    path = MODELS_DIR / f"{name}.toml"
    with open(path, "rb") as handle:
        return tomllib.load(handle)


class Init(_Strict):
    """Initial weights: ``uniform`` in [low, high], ``normal`` (mean, std) or ``constant``."""

    distribution: Literal["uniform", "normal", "constant"] = "uniform"
    low: float = 0.0
    high: float = 0.1
    mean: float = 0.0
    std: float = Field(0.1, ge=0)
    value: float = 0.1

    @model_validator(mode="after")
    def _ordered(self):
        if self.distribution == "uniform" and not self.low <= self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class Topology(_Strict):
    """Feed-forward connectivity as a networkx graph: ``generator`` is a function of
    ``networkx.bipartite`` (called with ``n_pre, n_post, **args``) or of ``networkx``
    (a graph on ``n_pre == n_post`` nodes, edge ``(i, j)`` connecting input ``i`` to
    output ``j``). Seeded from the experiment's seed when the generator takes one."""

    generator: str = "complete_bipartite_graph"
    args: dict[str, Any] = {}

    @field_validator("generator")
    @classmethod
    def _known_generator(cls, name):
        import networkx as nx

        for module in (nx.bipartite, nx):
            if not name.startswith("_") and callable(getattr(module, name, None)):
                return name
        raise ValueError(f"unknown networkx generator {name!r} (e.g. complete_bipartite_graph, "
                         f"random_graph, gnmk_random_graph; or a networkx graph generator)")


class Network(_Strict):
    model: str
    n_pre: int = Field(gt=0)
    n_post: int = Field(1, gt=0)
    topology: Topology = Topology()
    init: Init = Init()
    #: spiking models: override values of the model spec's [params] table
    params: dict[str, Any] = {}

    @field_validator("model")
    @classmethod
    def _known_model(cls, name):
        models = available_models()
        if name not in models:
            raise ValueError(f"unknown model {name!r} (allowed: {', '.join(models)})")
        return name

    @property
    def spec(self):
        return load_model_spec(self.model)


#: the keys of gaussian/patterns rate inputs (also the modulation of Poisson inputs)
_RATE_INPUT_KEYS = ("spectrum", "covariance", "mean", "patterns", "probabilities")


def check_patterns(patterns, probabilities):
    """``patterns`` rows of one length; ``probabilities`` (optional) one per row, not
    all zero. Raises ValueError (also used by the ``bcm_slow`` dynamics system)."""
    if len({len(row) for row in patterns}) != 1:
        raise ValueError("all 'patterns' rows must have the same length")
    if probabilities is not None:
        if len(probabilities) != len(patterns):
            raise ValueError(f"'probabilities' has {len(probabilities)} entries "
                             f"for {len(patterns)} patterns")
        if not sum(probabilities) > 0:
            raise ValueError("'probabilities' must not all be zero")


class Inputs(_Strict):
    kind: Literal["gaussian", "patterns", "poisson"]
    #: kind = "poisson": presynaptic firing rate(s), one for all or one per input
    rates: Rate | list[Rate] | None = None
    #: kind = "poisson" with a model whose postsynaptic neurons are Poisson too
    #: (``poisson_pair``): their rate(s), one for all or one per neuron
    post_rates: Rate | list[Rate] | None = None
    spectrum: list[Annotated[float, Field(ge=0)]] | None = None
    rotation: Literal["identity", "random"] = "identity"
    covariance: list[list[float]] | None = None
    mean: list[float] | None = None
    patterns: list[list[float]] | None = None
    probabilities: list[Annotated[float, Field(ge=0)]] | None = None
    #: kind = "poisson": modulate the Poisson rates by rate-model inputs x(t) (drawn as
    #: for kind = modulation, from the keys above), rate_i = max(0, rates_i + gain·x_i),
    #: each x held for modulation_interval
    modulation: Literal["patterns", "gaussian"] | None = None
    gain: Rate | None = None
    modulation_interval: Time | None = None

    @model_validator(mode="after")
    def _consistent(self):
        if self.kind == "poisson":
            if self.rates is None:
                raise ValueError("kind = \"poisson\" needs 'rates' (e.g. rates = \"15 Hz\")")
            if self.modulation is None:
                others = [k for k in (*_RATE_INPUT_KEYS, "gain", "modulation_interval")
                          if getattr(self, k) is not None]
                if others:
                    raise ValueError(f"'{others[0]}' does not belong to kind = \"poisson\" "
                                     f"without 'modulation' (\"patterns\" or \"gaussian\")")
                return self
            for key, example in (("gain", "10 Hz"), ("modulation_interval", "20 ms")):
                if getattr(self, key) is None:
                    raise ValueError(f"'modulation' needs '{key}' (e.g. {key} = \"{example}\")")
            self._check_rate_keys(self.modulation, prefix="modulation = ")
            if isinstance(self.rates, list) and len(self.rates) != self._rate_size(self.modulation):
                raise ValueError(f"'rates' has {len(self.rates)} entries for "
                                 f"{self._rate_size(self.modulation)} modulated inputs")
            return self
        for key in ("modulation", "gain", "modulation_interval"):
            if getattr(self, key) is not None:
                raise ValueError(f"'{key}' belongs to kind = \"poisson\"")
        if self.rates is not None or self.post_rates is not None:
            raise ValueError("'rates'/'post_rates' belong to kind = \"poisson\"")
        self._check_rate_keys(self.kind)
        return self

    def _check_rate_keys(self, kind, prefix="kind = "):
        """The keys of gaussian/patterns inputs (of a rate model, or of the modulation
        of Poisson inputs)."""
        for key in ("spectrum", "covariance", "mean", "patterns"):
            if not all(math.isfinite(v) for v in _flat(getattr(self, key))):
                raise ValueError(f"'{key}' must be finite (no inf or nan)")
        if kind == "gaussian":
            if (self.spectrum is None) == (self.covariance is None):
                raise ValueError("gaussian inputs need exactly one of 'spectrum' or 'covariance'")
            if self.patterns is not None or self.probabilities is not None:
                raise ValueError(f"'patterns'/'probabilities' belong to {prefix}\"patterns\"")
            if self.covariance is not None:
                C = np.asarray(self.covariance, float)
                if C.ndim != 2 or C.shape[0] != C.shape[1]:
                    raise ValueError("'covariance' must be a square matrix")
                if not np.allclose(C, C.T):
                    raise ValueError("'covariance' must be symmetric")
                if np.linalg.eigvalsh(C).min() < -1e-12 * max(1.0, abs(C).max()):
                    raise ValueError("'covariance' must be positive semi-definite")
            if self.mean is not None and len(self.mean) != self.size:
                raise ValueError(f"'mean' has {len(self.mean)} entries for {self.size} inputs")
        else:
            if not self.patterns or not self.patterns[0]:
                raise ValueError(f"{prefix}\"patterns\" needs 'patterns' (a list of rows)")
            if self.mean is not None:
                raise ValueError(f"'mean' belongs to {prefix}\"gaussian\" (the mean of patterns "
                                 "follows from 'patterns' and 'probabilities')")
            if self.spectrum is not None or self.covariance is not None:
                raise ValueError(f"'spectrum'/'covariance' belong to {prefix}\"gaussian\"")
            check_patterns(self.patterns, self.probabilities)

    def _rate_size(self, kind):
        if kind == "gaussian":
            return len(self.spectrum) if self.spectrum is not None else len(self.covariance)
        return len(self.patterns[0])

    @property
    def size(self):
        """Number of inputs this section describes (``None``: any number)."""
        if self.kind == "poisson":
            if self.modulation is not None:
                return self._rate_size(self.modulation)
            return len(self.rates) if isinstance(self.rates, list) else None
        if self.spectrum is not None:
            return len(self.spectrum)
        if self.covariance is not None:
            return len(self.covariance)
        return len(self.patterns[0])


class RuleConfig(_Strict):
    """``name`` plus the rule's own parameters (see ``plasticity rules``)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @field_validator("name")
    @classmethod
    def _known_rule(cls, name):
        if name not in RULES:
            raise ValueError(f"unknown rule {name!r} (allowed: {', '.join(sorted(RULES))})")
        return name

    @property
    def values(self):
        """The rule parameters as given (without ``name``)."""
        return dict(self.model_extra or {})

    @property
    def params(self):
        """The rule's parameters in SI, defaults filled in."""
        return RULES[self.name].resolve(self.values)


class Simulation(_Strict):
    duration: Time
    dt: Time = 1e-3
    device: Literal["runtime", "cpp_standalone", "auto"] = "auto"
    #: |w| above this stops the run as diverged (exit code 3)
    weight_bound: float = Field(1e3, gt=0)

    @property
    def steps(self):
        return int(round(self.duration / self.dt))


class Record(_Strict):
    every: Time = 1e-2
    #: also record the rule's plastic state (e.g. BCM's theta)
    state: bool = True
    #: spiking models: also stream spike times to /spikes/<population>/{t, i}
    spikes: bool = False


class Experiment(_Strict):
    """A resolved experiment: what :func:`plasticity.runner.run` needs, and nothing else."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(0, ge=0, le=2**32 - 1)   # Brian2/NumPy legacy seeds are 32 bit
    description: str = ""
    network: Network
    inputs: Inputs
    rule: RuleConfig
    simulation: Simulation
    record: Record = Record()

    @model_validator(mode="after")
    def _cross_checks(self):
        _check_spiking(self)
        if self.inputs.size is not None and self.inputs.size != self.network.n_pre:
            raise ValueError(f"inputs: {self.inputs.size} inputs described but network.n_pre = "
                             f"{self.network.n_pre}")
        dt, every, duration = self.simulation.dt, self.record.every, self.simulation.duration
        if not _is_multiple(every, dt):
            raise ValueError(f"record.every: {every:g} s is not a multiple of simulation.dt = {dt:g} s")
        if not _is_multiple(duration, dt):
            raise ValueError(f"simulation.duration: {duration:g} s is not a multiple of "
                             f"simulation.dt = {dt:g} s")
        if every > duration:
            raise ValueError(f"record.every: {every:g} s is longer than simulation.duration "
                             f"= {duration:g} s")
        return self

    @property
    def rule_params(self):
        return self.rule.params

    def to_dict(self):
        """Plain dict of the resolved config (quantities in SI, rule defaults filled in)."""
        data = self.model_dump(mode="python", exclude_none=True)
        data["rule"] = {"name": self.rule.name, **self.rule.params}
        return data

    def to_toml(self):
        """The resolved config as TOML text (what is stored in a run file)."""
        return tomli_w.dumps(self.to_dict())


def _check_spiking(experiment):
    """Cross-checks of the spiking keys: model kind vs rule kind vs input kind, the
    model parameter overrides, the post rates."""
    spec = experiment.network.spec
    model_kind = spec.get("kind", "rate")
    rule = RULES[experiment.rule.name]
    rule_kind = getattr(rule, "kind", "rate")
    net = experiment.network
    if rule_kind != model_kind:
        allowed = sorted(n for n, r in RULES.items() if getattr(r, "kind", "rate") == model_kind)
        raise ValueError(f"rule.name: {rule.name!r} is a {rule_kind} rule but model {net.model!r} "
                         f"is a {model_kind} model (allowed: {', '.join(allowed)})")
    if model_kind == "spiking" and experiment.simulation.device == "cpp_standalone":
        raise ValueError("simulation.device: spiking models run on the runtime device only "
                         "(allowed: runtime, auto)")
    if model_kind == "spiking" and experiment.inputs.kind != "poisson":
        raise ValueError(f"inputs.kind: spiking model {net.model!r} needs kind = \"poisson\"")
    if model_kind != "spiking" and experiment.inputs.kind == "poisson":
        raise ValueError(f"inputs.kind: \"poisson\" needs a spiking model (network.model = "
                         f"{net.model!r} is a {model_kind} model)")
    if net.params:
        known = spec.get("params", {})
        for key, value in net.params.items():
            if key not in known:
                raise ValueError(f"network.params.{key}: unknown parameter of model {net.model!r} "
                                 f"(allowed: {', '.join(known) or 'none'})")
            if type(value) is not type(known[key]) and not (
                    isinstance(value, (int, float)) and isinstance(known[key], (int, float))):
                raise ValueError(f"network.params.{key}: expected a value like {known[key]!r}, got {value!r}")
            if isinstance(known[key], str):
                try:
                    parse_quantity(value, dimension_of(known[key]))
                except ValueError as error:
                    raise ValueError(f"network.params.{key}: {error}") from None
    inputs = experiment.inputs
    if inputs.modulation is not None:
        if spec.get("recurrent", False):
            raise ValueError(f"inputs.modulation: model {net.model!r} takes a constant external "
                             f"drive (modulation needs a model with a Poisson input population)")
        interval, dt = inputs.modulation_interval, experiment.simulation.dt
        if not _is_multiple(interval, dt):
            raise ValueError(f"inputs.modulation_interval: {interval:g} s is not a multiple of "
                             f"simulation.dt = {dt:g} s")
    post = experiment.inputs.post_rates
    if post is not None:
        if spec.get("neuron") != "poisson":
            raise ValueError(f"inputs.post_rates: model {net.model!r} makes its own postsynaptic "
                             f"spikes (post_rates needs a model with neuron = \"poisson\")")
        if isinstance(post, list) and len(post) != net.n_post:
            raise ValueError(f"inputs.post_rates: {len(post)} rates for network.n_post = {net.n_post}")
    elif spec.get("neuron") == "poisson":
        raise ValueError(f"inputs.post_rates: missing (model {net.model!r} has Poisson "
                         f"postsynaptic neurons)")


def _flat(value):
    """The numbers of a (nested) list, or nothing for None."""
    if value is None:
        return
    for item in value:
        if isinstance(item, list):
            yield from _flat(item)
        else:
            yield item


def _is_multiple(value, step):
    ratio = value / step
    return abs(ratio - round(ratio)) < 1e-6 * max(1.0, ratio)


# ----------------------------------------------------------------------------------
# Reading, overriding, validating

_SET = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)=(.*)$", re.S)


def parse_override(text):
    """``"rule.eta=0.01"`` -> ``(["rule", "eta"], 0.01)``. The value is read as a TOML
    value (number, string, array, boolean), else kept as a plain string."""
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


def read_toml(path):
    """The TOML file at ``path`` as a dict, or :class:`ConfigError`."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (TOML) file") from None


def validate(data, source="config"):
    """Validate a config dict; return the :class:`Experiment` or raise ConfigError."""
    try:
        experiment = Experiment.model_validate(data)
        _check_rule(experiment)
        return experiment
    except ValidationError as error:
        raise ConfigError(f"{source}: {_describe(error)}") from None
    except _RuleError as error:
        raise ConfigError(f"{source}: {error}") from None


class _RuleError(Exception):
    pass


def _check_rule(experiment):
    rule = RULES[experiment.rule.name]
    try:
        rule.resolve(experiment.rule.values)
    except KeyError as error:
        key = error.args[0]
        raise _RuleError(f"rule.{key}: unknown key for rule {rule.name!r} "
                         f"(allowed: name, {', '.join(rule.parameters)})") from None
    except ValueError as error:
        raise _RuleError(f"rule.{error}") from None


def load_config(path, overrides=(), seed=None):
    """Read, override and validate the config at ``path``: the resolved Experiment."""
    data = apply_overrides(read_toml(path), overrides)
    if seed is not None:
        data["seed"] = seed
    if data.get("kind") == "dynamics":
        # a learning rule given as a NumPy ODE/map, no Brian2 (plasticity.dynamics)
        from .dynamics import load_dynamics_config

        return load_dynamics_config(data, source=str(path))
    return validate(data, source=str(path))


def _describe(error):
    """One line from a pydantic ValidationError of an :class:`Experiment`."""
    errors = error.errors()
    # a misspelt section is both missing and unknown: name the misspelling first
    for e in errors:
        loc = [str(part) for part in e["loc"]]
        if e["type"] == "extra_forbidden" and difflib.get_close_matches(loc[-1], _fields_at(loc[:-1], Experiment), n=1):
            return describe_error(e, Experiment)
    return describe_error(errors[0], Experiment)


def describe_error(first, model):
    """One line from the first error (a dict of ``ValidationError.errors()``) of
    validating ``model``: the key path, what is wrong, the allowed values where there is
    a list of them."""
    loc = [str(part) for part in first["loc"]]
    key = ".".join(loc)
    kind, msg = first["type"], first["msg"]
    if kind == "extra_forbidden":
        allowed = _fields_at(loc[:-1], model)
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        close = difflib.get_close_matches(loc[-1], allowed, n=1)
        if close:
            # a misspelt table or key: name it and the one that was probably meant
            what = "section" if isinstance(first.get("input"), dict) else "key"
            return f"unknown {what} '{key}', did you mean '{'.'.join([*loc[:-1], close[0]])}'?{hint}"
        return f"{key}: unknown key{hint}"
    if kind == "missing":
        return f"{key}: missing required key"
    given = first.get("input")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    elif kind != "model_type" and not isinstance(given, dict) and given is not None:
        msg = f"{msg} (got {given!r})"
    if not loc:
        return msg
    return f"{key}: {msg}"


def _fields_at(loc, model):
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def experiment_steps(experiment):
    """Numbers of steps: total, per record."""
    sim = experiment.simulation
    return sim.steps, int(round(experiment.record.every / sim.dt))


__all__ = ["Experiment", "load_config", "validate", "apply_overrides", "parse_override",
           "available_models", "load_model_spec", "MODELS_DIR"]
