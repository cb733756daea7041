"""Pieces shared by every experiment schema: the strict base model, quantities with
units, and the one-line error text of a validation failure."""

import difflib
import math
from pydantic import BaseModel, ConfigDict

from ..units import quantity_type

Time = quantity_type("time")
Rate = quantity_type("rate")


class Strict(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True, allow_inf_nan=False)


class Record(Strict):
    """``[record]``: what is logged, and how often."""

    every: Time = 1e-2
    #: also record the rule's plastic state (e.g. BCM's theta)
    state: bool = True
    #: spiking models: also stream spike times to /spikes/<population>/{t, i}
    spikes: bool = False


#: the most time steps a run may have: step counts are exact integers up to here (and
#: a run this long would take days); more is a config error, not a silent overflow
MAX_STEPS = 10**12


#: the longest experiment name: it becomes a folder name (results/<name>/)
MAX_NAME_LENGTH = 100


def check_name(name):
    """An experiment ``name`` is a plain folder name: letters, digits, ``_ . -``, at
    most :data:`MAX_NAME_LENGTH` characters, not ``.`` or ``..``."""
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{len(name)} characters, at most {MAX_NAME_LENGTH} (it names the "
                         "results folder)")
    if set(name) <= {"."}:
        raise ValueError(f"{name!r} is not a folder name (it names the results folder)")
    return name


def is_multiple(value, step):
    """Whether ``value`` is a whole number of ``step``: to 1e-9 of a step (what float
    division of two decimal quantities leaves), so a value that would be rounded to a
    whole number of steps, like 1.0000001 ms in steps of 1 ms, is not one."""
    ratio = value / step
    if not math.isfinite(ratio) or ratio > MAX_STEPS:
        return False
    return abs(ratio - round(ratio)) < max(1e-9, 1e-14 * ratio)


def check_steps(duration, dt, every):
    """The run keys' step counts: ``simulation.duration`` and ``record.every`` whole
    numbers of ``simulation.dt``, at most :data:`MAX_STEPS` steps. Raises ValueError
    naming the key."""
    steps = duration / dt
    if not math.isfinite(steps) or steps > MAX_STEPS:
        raise ValueError(f"simulation.dt: {dt:g} s gives {steps:.3g} steps for simulation.duration "
                         f"= {duration:g} s, more than the {MAX_STEPS:.0e} a run can take")
    if not is_multiple(every, dt):
        raise ValueError(f"record.every: {every!r} s is not a whole multiple of simulation.dt "
                         f"= {dt!r} s")
    if not is_multiple(duration, dt):
        raise ValueError(f"simulation.duration: {duration!r} s is not a whole multiple of "
                         f"simulation.dt = {dt!r} s")
    if every > duration:
        raise ValueError(f"record.every: {every:g} s is longer than simulation.duration "
                         f"= {duration:g} s")


def flat(value):
    """The numbers of a (nested) list, or nothing for None."""
    if value is None:
        return
    for item in value:
        if isinstance(item, list):
            yield from flat(item)
        else:
            yield item


def all_finite(value):
    return all(math.isfinite(v) for v in flat(value))


def first_error(error):
    """The error to report of a pydantic ``ValidationError``: an unknown key first (a
    misspelt key or section also explains the "missing" error of the right one)."""
    errors = error.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    return dict((unknown or errors)[0])


def describe_error(first, model):
    """One line from the first error (a dict of ``ValidationError.errors()``) of
    validating ``model``: the key path, what is wrong, the allowed values where there is
    a list of them."""
    # pydantic names the members of a union (``function-after[...]``, ``list[...]``)
    # in the location: not keys a user wrote
    loc = [str(part) for part in first["loc"] if not (isinstance(part, str) and "[" in part)]
    key = ".".join(loc)
    kind, msg = first["type"], first["msg"]
    if kind == "extra_forbidden":
        allowed = fields_at(loc[:-1], model)
        if len(loc) == 1 and isinstance(first.get("input"), dict):
            close = difflib.get_close_matches(loc[0], allowed, n=1)
            hint = f", did you mean '{close[0]}'?" if close else f" (allowed: {', '.join(allowed)})"
            return f"unknown section '{loc[0]}'{hint}"
        close = difflib.get_close_matches(loc[-1], allowed, n=1)
        hint = (f" (did you mean '{close[0]}'? allowed: {', '.join(allowed)})" if close
                else f" (allowed: {', '.join(allowed)})" if allowed else "")
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


def fields_at(loc, model):
    """The keys allowed at ``loc`` (a key path) of ``model``."""
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
