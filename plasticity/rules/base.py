"""What a plasticity rule is, in one place.

A rule is a small class holding:

- its **parameters** (:class:`Parameter`: dimension, default, constraint, doc);
- its **Brian2 code**: the per-step Euler update of each synapse's ``w`` (and of any
  plastic state of the postsynaptic neuron, e.g. BCM's threshold ``theta``), written
  as Brian2 abstract code with units. Inputs ``x_pre`` and rates ``y_post`` are
  neuron variables; parameters enter by name through the namespace;
- its **expected drift** ``f(W) = E[ΔW | W]/Δt`` as a NumPy function of the weights,
  the plastic state and the input statistics (MATH.md §8);
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
    summary: ClassVar[str]
    reference: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Parameter]] = {
        "eta": Parameter(0.005, "rate", doc="learning rate, per second of simulated time"),
    }
    #: plastic state of each postsynaptic neuron: name -> dimension
    state: ClassVar[dict[str, str]] = {}
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
        """Expected drift ``(dW, dstate)`` per unit time (MATH.md §8).

        ``stats`` is an :class:`plasticity.inputs.InputStats` bound to the model's
        transfer function; it provides the moments ``E[σ(y)^k]`` and ``E[x σ(y)^k]``.
        """
        raise NotImplementedError

    def describe(self):
        """Plain-text description for ``plasticity rules``."""
        lines = [f"{self.name}: {self.summary}"]
        if self.reference:
            lines.append(f"    reference: {self.reference}")
        for key, p in self.parameters.items():
            unit = "" if p.unit == "1" else f" {p.unit}"
            lines.append(f"    {key} = {p.default:g}{unit}  ({p.doc})")
        if self.state:
            lines.append(f"    plastic state: {', '.join(self.state)}")
        lines.append(f"    losses: {', '.join(self.losses) or '(none known)'}")
        return "\n".join(lines)
