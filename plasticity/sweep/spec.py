"""Sweep files: which runs a sweep makes, validated before any of them starts.

A sweep file (TOML)::

    name = "oja_eta"                  # results go to <out>/<name>/
    base = "../oja_pca.toml"          # a run config, relative to this file
    seeds = [1, 2, 3]                 # or { start = 1, count = 8 }; default: the base's seed
    description = "..."               # optional

    [grid]                            # every combination of these config keys
    "rule.eta" = [0.1, 0.5]
    "simulation.duration" = ["10 s"]

    [zip]                             # keys whose lists advance together (one list
    "rule.tau_theta" = [0.1, 1.0]     # position = one combination), crossed with [grid]
    "simulation.duration" = ["50 s", "200 s"]

    [analysis]                        # what `plasticity analyze` does with each run
    loss = ["intrator_cooper"]        # default: the rule's candidate losses
    drift = "auto"                    # auto | expected | window | given
    window = 8                        # records, for the window drift (default: chosen)

A point is one combination of the grid and zip values and one seed; its config is the
base config with those keys set (as ``plasticity run --set key=value`` would) and its
seed. :func:`load_sweep` reads the file and resolves every point's config with
:func:`plasticity.config.load_config`, so a bad value anywhere stops the sweep before
anything runs, with one line naming the point's key and value.

A point's **identity** is a hash of its resolved config (which holds the seed): two
sweeps, or one sweep run twice, that produce the same config produce the same run, so
``--resume`` recognises it whatever the order or the other points.
"""

import hashlib
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import BadInput, ConfigError

__all__ = ["SweepFile", "Point", "Sweep", "load_sweep"]

_KEY = r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedRange(_Strict):
    start: int = Field(ge=0, le=2**32 - 1)
    count: int = Field(gt=0, le=100_000)


class Analysis(_Strict):
    loss: list[str] | None = None
    drift: Literal["auto", "expected", "window", "given"] = "auto"
    window: int | None = Field(None, gt=0)


SweptValues = Annotated[list[Any], Field(min_length=1)]


class SweepFile(_Strict):
    """The keys of a sweep file (see the module documentation)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    base: str
    description: str = ""
    seeds: list[Annotated[int, Field(ge=0, le=2**32 - 1)]] | SeedRange | None = None
    grid: dict[str, SweptValues] = {}
    zip: dict[str, SweptValues] = {}
    analysis: Analysis = Analysis()

    @field_validator("grid", "zip")
    @classmethod
    def _keys(cls, table):
        import re

        for key in table:
            if not re.match(_KEY, key):
                raise ValueError(f"{key!r} is not a config key path (e.g. \"rule.eta\")")
            if key in ("seed", "name"):
                raise ValueError(f"{key!r} cannot be swept here (seeds: the 'seeds' key; "
                                 "name: the sweep's)")
        return table

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds):
        if isinstance(seeds, list):
            if not seeds:
                raise ValueError("must not be empty")
            if len(set(seeds)) != len(seeds):
                raise ValueError(f"seeds repeat: {seeds}")
        return seeds

    @model_validator(mode="after")
    def _consistent(self):
        both = sorted(set(self.grid) & set(self.zip))
        if both:
            raise ValueError(f"{both[0]!r} is in both [grid] and [zip]")
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{k}: {len(v)}" for k, v in self.zip.items())
            raise ValueError(f"[zip] lists must have one length ({sizes})")
        return self

    @property
    def keys(self):
        """The swept keys, grid first, in file order."""
        return list(self.grid) + list(self.zip)


@dataclass(frozen=True)
class Point:
    """One run of a sweep."""

    index: int
    seed: int
    values: dict            # swept key -> value as written in the sweep file
    experiment: Any = field(compare=False, repr=False)
    identity: str = ""

    @property
    def file_name(self):
        return f"{self.index:04d}-s{self.seed}-{self.identity[:10]}.h5"


@dataclass
class Sweep:
    path: Path
    spec: SweepFile
    base: Path
    points: list

    @property
    def name(self):
        return self.spec.name

    @property
    def keys(self):
        return self.spec.keys

    def loss_specs(self):
        """``[analysis] loss`` with ``file.py:func`` paths made relative to the sweep file."""
        if self.spec.analysis.loss is None:
            return None
        out = []
        for spec in self.spec.analysis.loss:
            if ":" in spec and spec.split(":", 1)[0].endswith(".py"):
                file, func = spec.split(":", 1)
                spec = f"{(self.path.parent / file).resolve()}:{func}"
            out.append(spec)
        return out


def _toml_value(value):
    """``value`` as TOML text on one line, as the right-hand side of ``--set key=...``
    (arrays and tables inline: ``--set`` takes one line)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{tomli_w.dumps({k: 0}).split('=', 1)[0].strip()} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def identity_of(experiment):
    """Hash of a resolved config (seed included): a run's identity across sweeps."""
    return hashlib.sha1(("plasticity-sweep-1\n" + experiment.to_toml()).encode()).hexdigest()[:16]


def _read(path):
    from ..config import read_toml

    return read_toml(path, what="sweep file")


def _combinations(spec):
    grid = [[(key, v) for v in values] for key, values in spec.grid.items()]
    zipped = [dict(zip(spec.zip, row)) for row in zip(*spec.zip.values())] if spec.zip else [{}]
    for combo in itertools.product(*grid):
        for row in zipped:
            yield {**dict(combo), **row}


def load_sweep(path):
    """Read and validate a sweep file and every point's config: a :class:`Sweep`.

    Raises :class:`BadInput` (one line naming the file, key and value) on any problem.
    """
    from ..config import load_config

    path = Path(path)
    data = _read(path)
    try:
        spec = SweepFile.model_validate(data)
    except ValidationError as error:
        from ..config.common import describe_error, first_error

        raise BadInput(f"{path}: {describe_error(first_error(error), SweepFile)}") from None
    base = (path.parent / spec.base).resolve()
    if not base.is_file():
        raise BadInput(f"{path}: base: {spec.base!r} is not a file (looked for {base})")
    if spec.seeds is None:
        seeds = [load_config(base).seed]
    elif isinstance(spec.seeds, SeedRange):
        seeds = list(range(spec.seeds.start, spec.seeds.start + spec.seeds.count))
        if seeds[-1] > 2**32 - 1:
            raise BadInput(f"{path}: seeds: {spec.seeds.start} + {spec.seeds.count} exceeds 2**32 - 1")
    else:
        seeds = list(spec.seeds)
    points, seen = [], {}
    for values in _combinations(spec):
        overrides = [f"{key}={_toml_value(value)}" for key, value in values.items()]
        for seed in seeds:
            try:
                experiment = load_config(base, overrides, seed=seed)
            except ConfigError as error:
                raise BadInput(f"{path}: {_blame(str(error), values, seed, base)}") from None
            identity = identity_of(experiment)
            if identity in seen:
                raise BadInput(f"{path}: points {_describe(seen[identity])} and "
                               f"{_describe(values)} (seed {seed}) give the same config")
            seen[identity] = values
            points.append(Point(len(points), seed, dict(values), experiment, identity))
    return Sweep(path, spec, base, points)


def _describe(values):
    return ", ".join(f"{k} = {_toml_value(v)}" for k, v in values.items()) or "(base config)"


def _blame(message, values, seed, base):
    """A config error of one point, naming the swept key and value it is about."""
    prefix = f"{base}: "
    if message.startswith(prefix):
        message = message[len(prefix):]
    for key, value in values.items():
        if message.startswith(key + ":") or message.startswith(key + " "):
            return f"{key} = {_toml_value(value)}: {message[len(key) + 1:].strip()}"
    where = _describe(values)
    return f"point {where} (seed {seed}): {message} (base {base.name})"
