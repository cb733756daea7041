"""Rate and spiking experiments: the schema of an experiment config (pydantic).

Every key is documented in the README ("Config keys") and in ``experiments/*.toml``.
Cross-checks between sections (a spiking rule needs a spiking model and Poisson
inputs, the record interval is a whole number of steps, ...) are made here, so a bad
config fails before anything is built.
"""

from typing import Annotated, Any, Literal

import numpy as np
import tomli_w
from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from ..inputs import check_patterns
from ..rules import RULES
from ..units import dimension_of, parse_quantity
from .common import check_name, Rate, Record, Strict, Time, all_finite, check_steps, is_multiple
from .models import available_models, load_model_spec

class Init(Strict):
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


class Topology(Strict):
    """Feed-forward connectivity as a networkx graph: ``generator`` is a function of
    ``networkx.bipartite`` (called with ``n_pre, n_post, **args``) or of ``networkx``
    (a graph on ``n_pre == n_post`` nodes, edge ``(i, j)`` connecting input ``i`` to
    output ``j``). Seeded from the experiment's seed when the generator takes one."""

    generator: str = "complete_bipartite_graph"
    args: dict[str, Any] = {}

    @field_validator("generator")
    @classmethod
    def _known_generator(cls, name):
        if name == "complete_bipartite_graph":   # the default: no need to import networkx
            return name
        import networkx as nx

        for module in (nx.bipartite, nx):
            if not name.startswith("_") and callable(getattr(module, name, None)):
                return name
        raise ValueError(f"unknown networkx generator {name!r} (e.g. complete_bipartite_graph, "
                         f"random_graph, gnmk_random_graph; or a networkx graph generator)")


class Network(Strict):
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
        if name not in available_models():
            raise ValueError(f"unknown model {name!r} (allowed: {', '.join(available_models())})")
        return name

    @property
    def spec(self):
        """The validated :class:`~plasticity.config.models.ModelSpec`."""
        return load_model_spec(self.model)


#: the keys of gaussian/patterns rate inputs (also the modulation of Poisson inputs)
_RATE_INPUT_KEYS = ("spectrum", "covariance", "mean", "patterns", "probabilities")


class Inputs(Strict):
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
            if not all_finite(getattr(self, key)):
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


class RuleConfig(Strict):
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


class Simulation(Strict):
    duration: Time
    dt: Time = 1e-3
    device: Literal["runtime", "cpp_standalone", "auto"] = "auto"
    #: |w| above this stops the run as diverged (exit code 3)
    weight_bound: float = Field(1e3, gt=0)

    @property
    def steps(self):
        return int(round(self.duration / self.dt))


class Experiment(Strict):
    """A resolved rate or spiking experiment: what :func:`plasticity.sim.run` needs."""

    name: Annotated[str, AfterValidator(check_name)] = Field(pattern=r"^[A-Za-z0-9_.-]+$")
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
        check_steps(self.simulation.duration, self.simulation.dt, self.record.every)
        return self

    def to_dict(self):
        """Plain dict of the resolved config (quantities in SI, rule defaults filled in)."""
        data = self.model_dump(mode="python", exclude_none=True)
        data["rule"] = {"name": self.rule.name, **self.rule.params}
        return data

    def to_toml(self):
        """The resolved config as TOML text (what is stored in a run file)."""
        return tomli_w.dumps(self.to_dict())

    @property
    def steps(self):
        """Numbers of time steps: in the whole run, and between two records."""
        sim = self.simulation
        return sim.steps, int(round(self.record.every / sim.dt))


def _check_spiking(experiment):
    """Cross-checks of the spiking keys: model kind vs rule kind vs input kind, the
    model parameter overrides, the post rates."""
    spec = experiment.network.spec
    model_kind = spec.activity
    rule = RULES[experiment.rule.name]
    rule_kind = rule.activity
    net = experiment.network
    if rule_kind != model_kind:
        allowed = sorted(n for n, r in RULES.items() if r.activity == model_kind)
        raise ValueError(f"rule.name: {rule.name!r} is a {rule_kind} rule but model {net.model!r} "
                         f"is a {model_kind} model (allowed: {', '.join(allowed)})")
    if model_kind == "spiking" and experiment.inputs.kind != "poisson":
        raise ValueError(f"inputs.kind: spiking model {net.model!r} needs kind = \"poisson\"")
    if model_kind != "spiking" and experiment.inputs.kind == "poisson":
        raise ValueError(f"inputs.kind: \"poisson\" needs a spiking model (network.model = "
                         f"{net.model!r} is a {model_kind} model)")
    if net.params:
        known = spec.params
        for key, value in net.params.items():
            if key not in known:
                raise ValueError(f"network.params.{key}: unknown parameter of model {net.model!r} "
                                 f"(allowed: {', '.join(known) or 'none'})")
            if type(value) is not type(known[key]) and not (
                    isinstance(value, (int, float)) and isinstance(known[key], (int, float))):
                raise ValueError(f"network.params.{key}: expected a value like {known[key]!r}, got {value!r}")
            if isinstance(known[key], str):
                try:
                    quantity = parse_quantity(value, dimension_of(known[key]))
                except ValueError as error:
                    raise ValueError(f"network.params.{key}: {error}") from None
                if key.startswith("tau") and not quantity > 0:
                    raise ValueError(f"network.params.{key}: a time constant must be > 0, "
                                     f"got {value!r}")
    inputs = experiment.inputs
    if inputs.modulation is not None:
        if spec.recurrent:
            raise ValueError(f"inputs.modulation: model {net.model!r} takes a constant external "
                             f"drive (modulation needs a model with a Poisson input population)")
        interval, dt = inputs.modulation_interval, experiment.simulation.dt
        if not is_multiple(interval, dt):
            raise ValueError(f"inputs.modulation_interval: {interval:g} s is not a multiple of "
                             f"simulation.dt = {dt:g} s")
    post = experiment.inputs.post_rates
    if post is not None:
        if spec.neuron != "poisson":
            raise ValueError(f"inputs.post_rates: model {net.model!r} makes its own postsynaptic "
                             f"spikes (post_rates needs a model with neuron = \"poisson\")")
        if isinstance(post, list) and len(post) != net.n_post:
            raise ValueError(f"inputs.post_rates: {len(post)} rates for network.n_post = {net.n_post}")
    elif spec.neuron == "poisson":
        raise ValueError(f"inputs.post_rates: missing (model {net.model!r} has Poisson "
                         f"postsynaptic neurons)")
