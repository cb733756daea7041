"""``kind = "dynamics"`` experiments: a learning rule given as a NumPy ODE
(:mod:`plasticity.systems`), run and recorded like a Brian2 experiment.

The run and record keys are spelt as in every other experiment::

    kind = "dynamics"
    name = "lti_nonnormal"
    [dynamics]                 # the system and its own parameters (plasticity.systems)
    system = "linear"
    A = [[-1.0, 10.0], [0.0, -2.0]]
    w0 = [0.0, 1.0]
    [simulation]
    duration = "6 s"
    dt = "1 ms"
    weight_bound = 1e6         # |w| above this stops the run as diverged
    [record]
    every = "10 ms"
"""

from typing import Annotated, Literal

import tomli_w
from pydantic import AfterValidator, Field, ValidationError, model_validator

from ..errors import ConfigError
from ..systems import SYSTEMS, SystemConfig, make_system
from .common import Strict, Time, check_name, check_steps, describe_error, first_error, is_multiple


class DynamicsSimulation(Strict):
    duration: Time
    dt: Time = 1e-3
    #: |w| above this stops the run as diverged (exit code 3)
    weight_bound: float = Field(1e6, gt=0, allow_inf_nan=False)

    @property
    def steps(self):
        return int(round(self.duration / self.dt))


class DynamicsRecord(Strict):
    every: Time = 1e-2


class DynamicsExperiment(Strict):
    """A resolved ``kind = "dynamics"`` experiment."""

    kind: Literal["dynamics"]
    name: Annotated[str, AfterValidator(check_name)] = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    description: str = ""
    dynamics: SystemConfig
    simulation: DynamicsSimulation
    record: DynamicsRecord = DynamicsRecord()

    @model_validator(mode="after")
    def _steps(self):
        check_steps(self.simulation.duration, self.simulation.dt, self.record.every)
        return self

    @property
    def steps(self):
        """Numbers of integration steps: in the whole run, and between two records."""
        return self.simulation.steps, int(round(self.record.every / self.simulation.dt))

    def system(self):
        """The :class:`plasticity.systems.System` (random matrices from the seed)."""
        return make_system(self.dynamics, self.seed)

    def to_dict(self):
        return self.model_dump(mode="python", exclude_none=True)

    def to_toml(self):
        return tomli_w.dumps(self.to_dict())


def validate_dynamics(data, source="config"):
    """Validate a config dict with ``kind = "dynamics"``: a :class:`DynamicsExperiment`,
    or :class:`~plasticity.errors.ConfigError` with one line naming the key."""
    try:
        return DynamicsExperiment.model_validate(data)
    except ValidationError as error:
        first = first_error(error)
        loc = first["loc"]
        # drop the discriminator tag pydantic inserts into the location
        if len(loc) >= 2 and loc[0] == "dynamics" and loc[1] in SYSTEMS:
            first["loc"] = (loc[0], *loc[2:])
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            first["msg"] = f"'system' must be one of {', '.join(SYSTEMS)}"
        raise ConfigError(f"{source}: {describe_error(first, DynamicsExperiment)}") from None
