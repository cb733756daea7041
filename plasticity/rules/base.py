"""What a plasticity rule is, in one place.

A rule is a small class holding:

- its **parameters** (:class:`Parameter`: dimension, default, constraint, doc);
- its **Brian2 code**: the per-step Euler update of each synapse's ``w`` (and of any
  plastic state of the postsynaptic neuron, e.g. BCM's threshold ``theta``), written
  as Brian2 abstract code with units. Inputs ``x_pre`` and rates ``y_post`` are
  neuron variables; parameters enter by name through the namespace;
- its **expected drift** ``f(W) = E[ΔW | W]/Δt`` as a NumPy function of the weights,
  the plastic state and the input statistics (docs/math.md §8);
- the names of its **candidate losses** (the analysis layer certifies against them).

Nothing here imports Brian2: the analysis layer uses the drift without it.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..units import parse_quantity, unit_symbol


@dataclass(frozen=True)
class Parameter:
    """A rule parameter: SI ``default``, its ``dimension`` (see :mod:`plasticity.units`),
    a ``constraint`` (``"positive"``, ``"nonnegative"`` or ``None``) and a ``doc``."""

    default: float
    dimension: str = "1"
    constraint: str | None = "positive"
    doc: str = ""

    @property
    def unit(self):
        return unit_symbol(self.dimension)

    def describe(self):
        """Default and meaning, for ``plasticity rules``."""
        unit = "" if self.unit == "1" else f" {self.unit}"
        return f"{self.default:g}{unit}  ({self.doc})"

    def parse(self, value):
        """SI float of a config value; ``ValueError`` if out of range."""
        number = parse_quantity(value, self.dimension)
        if not np.isfinite(number):
            raise ValueError(f"must be finite, got {value!r}")
        if self.constraint == "positive" and not number > 0:
            raise ValueError(f"must be > 0, got {value!r}")
        if self.constraint == "nonnegative" and not number >= 0:
            raise ValueError(f"must be >= 0, got {value!r}")
        return number


class Rule:
    """Base class of rate-based rules. Subclasses set the class attributes and
    implement :meth:`drift`.

    Shapes used by :meth:`drift`: ``W`` is ``(B, n_post, n_pre)`` for ``B`` records,
    each state variable is ``(B, n_post)``; the drift has the same shapes.
    """

    name: ClassVar[str]
    #: ``"rate"`` (per-step Euler update) or ``"spiking"`` (:class:`SpikingRule`)
    activity: ClassVar[str] = "rate"
    summary: ClassVar[str]
    reference: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Parameter]] = {
        "eta": Parameter(0.005, "rate", doc="learning rate, per second of simulated time"),
    }
    #: plastic state of each postsynaptic neuron: name -> dimension
    state: ClassVar[dict[str, str]] = {}
    #: the parameter holding each state variable's time constant (name -> parameter);
    #: a state faster than the record interval is slaved to its fixed point in the
    #: analysis (adiabatic elimination, :func:`plasticity.analysis.drift.slaved_state`)
    state_time_constants: ClassVar[dict[str, str]] = {}
    #: Euler update of ``w`` per time step (Brian2 abstract code, run on the synapses)
    synapse_update: ClassVar[str]
    #: Euler update of the postsynaptic state per time step (run on the post group)
    post_update: ClassVar[str] = ""
    #: names of the candidate losses (implemented in the analysis layer)
    losses: ClassVar[tuple[str, ...]] = ()

    def resolve(self, values):
        """Parameters in SI from a mapping of config values (defaults filled in).
        ``KeyError``/``ValueError`` name the offending key."""
        unknown = sorted(set(values) - set(self.parameters))
        if unknown:
            raise KeyError(unknown[0])
        resolved = {}
        for key, parameter in self.parameters.items():
            try:
                resolved[key] = parameter.parse(values.get(key, parameter.default))
            except ValueError as error:
                raise ValueError(f"{key}: {error}") from None
        return resolved

    def initial_state(self, params, n_post):
        """Initial value of each state variable, ``{name: (n_post,) array}``."""
        return {name: np.zeros(n_post) for name in self.state}

    def drift(self, W, state, stats, params):
        """Expected drift ``(dW, dstate)`` per unit time (docs/math.md §8).

        ``stats`` is an :class:`plasticity.inputs.InputStats` bound to the model's
        transfer function; it provides the moments ``E[σ(y)^k]`` and ``E[x σ(y)^k]``.
        """
        raise NotImplementedError

    def describe(self):
        """Plain-text description for ``plasticity rules``."""
        tag = "" if self.activity == "rate" else f"  [{self.activity}]"
        lines = [f"{self.name}: {self.summary}{tag}"]
        if self.reference:
            lines.append(f"    reference: {self.reference}")
        for key, p in self.parameters.items():
            lines.append(f"    {key} = {p.describe()}")
        if self.state:
            lines.append(f"    plastic state: {', '.join(self.state)}")
        lines.append(f"    losses: {', '.join(self.losses) or '(none known)'}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------
# Spiking (event-driven) rules

@dataclass(frozen=True)
class Choice:
    """A rule parameter taking one of a few string values (e.g. ``bounds``)."""

    default: str
    choices: tuple[str, ...]
    doc: str = ""
    dimension: ClassVar[str] = "choice"
    unit: ClassVar[str] = ""

    def describe(self):
        return f"{self.default!r}  (one of {', '.join(self.choices)}; {self.doc})"

    def parse(self, value):
        if not isinstance(value, str) or value not in self.choices:
            raise ValueError(f"must be one of {', '.join(map(repr, self.choices))}, got {value!r}")
        return value


@dataclass
class SpikeRates:
    """The "input statistics" of a spiking run: firing rates (Hz) of the presynaptic
    and postsynaptic neurons over each record interval, as logged in ``/rates/pre``
    (B, n_pre) and ``/rates/post`` (B, n_post). The rate-limit drift of a spiking rule
    (docs/math.md §8) is a function of these and the weights only."""

    pre: np.ndarray
    post: np.ndarray


class SpikingRule(Rule):
    """Base class of event-driven (spike-timing) rules.

    Instead of a per-step ``synapse_update`` a spiking rule gives Brian2 code run at
    each presynaptic spike (``on_pre``) and each postsynaptic spike (``on_post``), with
    the synaptic trace equations in ``synapse_equations`` (event-driven ODEs, e.g.
    ``dapre/dt = -apre/tau_plus : 1 (event-driven)``). Both act on the weight ``w``
    (dimensionless; for the conductance-based LIF models, in units of the leak
    conductance, as in Song et al. 2000). Postsynaptic plastic state (e.g. the
    sliding threshold's rate average) lives in ``post_equations`` (neuron ODEs) and
    ``post_spike`` (code run at each postsynaptic spike, on the neuron group).

    :meth:`drift` is the **rate-limit expected drift** for independent Poisson pre- and
    postsynaptic spike trains (no spike-timing correlations between them):
    ``W`` (B, n_post, n_pre), ``stats`` a :class:`SpikeRates` with ``pre`` (B, n_pre)
    and ``post`` (B, n_post) in Hz. In a simulated spiking network the postsynaptic
    neuron's own spikes are correlated with its inputs, so the measured drift adds
    correlation terms this formula leaves out (docs/math.md §8: "plus correlation terms").
    """

    activity: ClassVar[str] = "spiking"
    synapse_update: ClassVar[str] = ""
    #: extra Synapses equations (traces), Brian2 syntax with units
    synapse_equations: ClassVar[str] = ""
    #: code run on the synapse at each presynaptic / postsynaptic spike
    on_pre: ClassVar[str] = ""
    on_post: ClassVar[str] = ""
    #: extra equations of the postsynaptic NeuronGroup (plastic state) and reset code
    post_equations: ClassVar[str] = ""
    post_spike: ClassVar[str] = ""

    def synapse_drift(self, w, rates_pre, rates_post, params):
        """The rate-limit drift of each synapse from its own weight and the rates of
        its two neurons, all ``(B, S)`` in synapse order; ``None`` where the rule's
        drift is not such a pointwise function (then :meth:`drift` on the dense ``W``
        is used). A sparse network of 10⁴ neurons has 10⁶ synapses but 10⁸ entries in
        the dense ``W``: this form keeps the analysis O(S) per record."""
        return None

    def code(self, params):
        """``(synapse_equations, on_pre, on_post)`` for the given parameters (rules
        whose code depends on a :class:`Choice` override this)."""
        return self.synapse_equations, self.on_pre, self.on_post

    def post_code(self, params):
        """``(equations, spike code, initial values)`` added to the postsynaptic group."""
        return self.post_equations, self.post_spike, {}

    def numeric(self, params):
        """Parameters that enter Brian2 code (the :class:`Choice` ones left out)."""
        return {k: v for k, v in params.items()
                if not isinstance(self.parameters[k], Choice)}

