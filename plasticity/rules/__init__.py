"""The built-in plasticity rules, one module each. ``RULES`` maps a rule's config name
to an instance; :func:`get_rule` looks one up with a plain error."""

from .base import Choice, Parameter, Rule, SpikeRates, SpikingRule
from .bcm import BCM
from .covariance import Covariance
from .hebbian import Hebbian
from .oja import Oja
from .stdp import STDP
from .triplet import Triplet

RULES = {rule.name: rule for rule in (Hebbian(), Oja(), BCM(), Covariance(), STDP(), Triplet())}


def get_rule(name):
    """The rule called ``name``; ``KeyError`` with the allowed names otherwise."""
    try:
        return RULES[name]
    except KeyError:
        raise KeyError(f"unknown rule {name!r} (allowed: {', '.join(sorted(RULES))})") from None


__all__ = ["RULES", "Choice", "Parameter", "Rule", "SpikeRates", "SpikingRule", "get_rule"]
