"""A resolved config (SI numbers) shown with its units, compactly.

:func:`config_rows` flattens the config into ``(key, value text)`` rows: quantities
with a readable unit prefix (``0.05`` s → ``50 ms``), arrays on one line (long ones
shortened), empty values left out. Units come from what each key is: the rule's
parameter dimensions, the model spec's ``[params]``, and the simulation keys.
Used by the run page and by ``plasticity validate``.
"""

import os
import tomllib
from pathlib import Path

import numpy as np

from ..units import dimension_of, unit_symbol

#: config keys in seconds or hertz whatever the experiment
_TIME_KEYS = {"simulation.duration", "simulation.dt", "record.every", "inputs.modulation_interval",
              "dynamics.tau_theta"}
_RATE_KEYS = {"inputs.rates", "inputs.post_rates", "inputs.gain", "inputs.rate"}
_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))
#: arrays longer than this are shown as their first values and their length
MAX_ITEMS = 8


def _model_units(spec):
    """Units of a model spec's ``[params]`` (the spec as stored in the run file)."""
    out = {}
    for key, value in ((spec or {}).get("params") or {}).items():
        if isinstance(value, str):
            try:
                out[key] = unit_symbol(dimension_of(value))
            except (ValueError, KeyError):
                pass
    return out


def units_for(config, model_spec=None):
    """``{dotted key: unit symbol}`` for the keys of ``config`` whose unit is known
    (``model_spec``: the run's stored ``/model_spec``, for ``network.params``)."""
    units = {k: "s" for k in _TIME_KEYS} | {k: "Hz" for k in _RATE_KEYS}
    rule = (config.get("rule") or {}).get("name")
    try:
        from ..rules import RULES

        for name, parameter in getattr(RULES.get(rule), "parameters", {}).items():
            if parameter.unit != "1":
                units[f"rule.{name}"] = parameter.unit
    except ImportError:
        pass
    for name, unit in _model_units(model_spec).items():
        if unit != "1":
            units[f"network.params.{name}"] = unit
    return units


def format_quantity(value, unit):
    """``0.05, "s"`` → ``"50 ms"``; plain numbers without a unit as ``%g``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if not unit or unit == "1":
        return f"{value:g}"
    magnitude = abs(value)
    if magnitude == 0 or not np.isfinite(magnitude):
        return f"{value:g} {unit}"
    for scale, prefix in _PREFIXES:
        if magnitude >= scale * 0.9999:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def format_value(value, unit=None):
    if isinstance(value, bool):
        return "true" if value else "false"           # as TOML writes it
    if isinstance(value, list):
        flat = np.asarray(value, dtype=object).ravel().tolist() if value and isinstance(value[0], list) else value
        shape = np.shape(value) if value and isinstance(value[0], list) else None
        items = [format_value(v, unit) for v in flat[:MAX_ITEMS]]
        more = f", … ({len(flat)} values{f', shape {shape}' if shape else ''})" if len(flat) > MAX_ITEMS else ""
        if shape and len(flat) <= MAX_ITEMS:
            rows = ["[" + ", ".join(format_value(v, unit) for v in row) + "]" for row in value]
            return "[" + ", ".join(rows) + "]"
        return "[" + ", ".join(items) + more + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return value
    return format_quantity(value, unit)


#: keys of network.init that each distribution uses (the others are defaults it ignores)
_INIT_KEYS = {"uniform": {"low", "high"}, "normal": {"mean", "std"}, "constant": {"value"}}


def _irrelevant(dotted, config):
    """Defaults that do not affect this config (left out of the compact listing)."""
    init = ((config.get("network") or {}).get("init") or {})
    if dotted.startswith("network.init.") and dotted != "network.init.distribution":
        used = _INIT_KEYS.get(init.get("distribution"))
        return used is not None and dotted.rsplit(".", 1)[1] not in used
    inputs = config.get("inputs") or {}
    if dotted == "inputs.rotation":
        return "spectrum" not in inputs
    return False


def config_rows(config, model_spec=None):
    """``[(dotted key, value text)]`` of a resolved config, empty values and defaults that
    do not apply (e.g. the bounds of a uniform init under a constant one) left out."""
    units = units_for(config, model_spec)
    rows = []

    def walk(prefix, node):
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict) and dotted not in ("network.topology.args",):
                walk(dotted + ".", value)
                continue
            if value in ("", None) or value == [] or value == {} or _irrelevant(dotted, config):
                continue
            rows.append((dotted, format_value(value, units.get(dotted))))

    walk("", config)
    return rows


def config_text(config, model_spec=None):
    """``config_rows`` as aligned ``key = value`` lines (for ``plasticity validate``)."""
    rows = config_rows(config, model_spec)
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
