"""Physical quantities in configs: ``"20 s"``, ``"0.1 ms"``, ``"15 Hz"`` or SI numbers.

A tiny parser on purpose: validating a config must not import Brian2 (seconds of
start-up), and the analysis layer must not depend on it at all. Values are converted
to plain floats in SI base units; the dimension is checked against what the key
expects.
"""

import re

# unit symbol -> (scale to SI, dimension name)
_BASE = {
    "s": (1.0, "time"),
    "second": (1.0, "time"),
    "Hz": (1.0, "rate"),
    "hertz": (1.0, "rate"),
    "V": (1.0, "voltage"),
    "volt": (1.0, "voltage"),
    "A": (1.0, "current"),
    "amp": (1.0, "current"),
    "S": (1.0, "conductance"),
    "siemens": (1.0, "conductance"),
    "F": (1.0, "capacitance"),
    "farad": (1.0, "capacitance"),
    "ohm": (1.0, "resistance"),
    "1": (1.0, "1"),
}
_PREFIX = {"p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "m": 1e-3, "c": 1e-2,
           "k": 1e3, "M": 1e6, "G": 1e9}
_UNIT_OF_DIMENSION = {"time": "s", "rate": "Hz", "voltage": "V", "current": "A",
                      "conductance": "S", "capacitance": "F", "resistance": "ohm",
                      "1": "1"}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*(?:\*\s*)?([A-Za-zµ]*)\s*$")


def _unit(symbol):
    if symbol in _BASE:
        return _BASE[symbol]
    if len(symbol) > 1 and symbol[0] in _PREFIX and symbol[1:] in _BASE:
        scale, dim = _BASE[symbol[1:]]
        return _PREFIX[symbol[0]] * scale, dim
    raise ValueError(f"unknown unit {symbol!r}")


def parse_quantity(value, dimension="1"):
    """Return ``value`` as a float in SI base units, checking its ``dimension``.

    ``value`` is a number (already SI) or a string such as ``"0.1 ms"``.
    ``dimension`` is one of ``time``, ``rate``, ``voltage``, ``current``,
    ``conductance``, ``capacitance``, ``resistance`` or ``"1"`` (dimensionless).
    Raises ``ValueError`` with a plain message otherwise.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a quantity, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a number or a string like '20 s', got {value!r}")
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"cannot read {value!r} as a quantity (e.g. '20 s', '0.1 ms', '15 Hz')")
    number, symbol = match.groups()
    if not symbol:
        return float(number)
    scale, dim = _unit(symbol)
    if dim != dimension:
        expected = _UNIT_OF_DIMENSION.get(dimension, dimension)
        raise ValueError(f"{value!r} is a {dim}, expected a quantity in {expected}")
    return float(number) * scale


def dimension_of(text):
    """The dimension of a quantity string (``"20 ms"`` -> ``"time"``, ``"3"`` -> ``"1"``),
    e.g. of a model-spec value."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"cannot read {text!r} as a quantity")
    symbol = match.group(2)
    return _unit(symbol)[1] if symbol else "1"


def unit_symbol(dimension):
    """The SI unit symbol of a dimension name (``"time"`` -> ``"s"``)."""
    return _UNIT_OF_DIMENSION[dimension]


def quantity_type(dimension, **constraints):
    """A pydantic field type for a quantity of ``dimension``: ``"20 ms"``-style strings
    or SI numbers, read into an SI float; finite and > 0 unless ``constraints`` (pydantic
    ``Field`` keywords) say otherwise."""
    from typing import Annotated

    from pydantic import BeforeValidator, Field

    limits = constraints or {"gt": 0}
    return Annotated[float, BeforeValidator(lambda value: parse_quantity(value, dimension)),
                     Field(allow_inf_nan=False, **limits)]
