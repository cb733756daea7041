"""Experiment configs: TOML files validated (pydantic) before anything runs.

:func:`load_config` reads a file, applies ``--set key.path=value`` overrides and
returns the resolved experiment (quantities in SI floats, defaults filled in). Every
problem raises :class:`~plasticity.errors.ConfigError` with one line naming the file,
the key path and, where it helps, the allowed values.

- :mod:`.experiment`: rate and spiking experiments (:class:`Experiment`);
- :mod:`.dynamics`: ``kind = "dynamics"`` experiments (NumPy ODEs);
- :mod:`.models`: the model specs in ``models/``;
- :mod:`.loading`: files, ``--set``, validation;
- :mod:`.common`: the pieces they share.
"""

from .dynamics import DynamicsExperiment
from .experiment import Experiment
from .loading import apply_overrides, load_config, parse_override, read_toml, validate, validate_any
from .models import ModelSpec, available_models, load_model_spec

__all__ = ["Experiment", "DynamicsExperiment", "ModelSpec", "load_config", "validate", "validate_any",
           "apply_overrides", "parse_override", "read_toml", "available_models", "load_model_spec"]
