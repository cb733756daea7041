"""Learning rules given as NumPy ODEs (``kind = "dynamics"`` experiments).

The analysis works on any trajectory, so classic examples where a loss is hard to find
run here without Brian2: a learning rule is an ODE ``ẇ = f(w)`` in NumPy, integrated
with fixed-step RK4 by :mod:`plasticity.sim.dynamics` and logged in the usual run-file
layout plus a ``/drift`` dataset. The analysis rebuilds the system from the stored
config (:func:`system_from_section`) for window losses and the mean-field trajectory.

Systems (one module each; every key is checked, unknown keys are errors):

- ``linear`` (:mod:`.linear`): ``ẇ = A(w − w*)``; ``A`` (n × n), ``w_star`` (default
  0). Loss ``norm2 = ‖w − w*‖²``.
- ``feedback_alignment`` (:mod:`.feedback_alignment`): a two-layer linear network
  ``ŷ = W₂W₁x`` regressing a teacher ``y = T x`` (x with covariance Σ) by gradient flow
  whose backward pass uses a fixed random ``B`` instead of ``W₂ᵀ``:
  ``Ẇ₁ = −η B E Σ``, ``Ẇ₂ = −η E Σ W₁ᵀ``, ``E = W₂W₁ − T``. State: flattened
  ``(W₁, W₂)``. Parameters ``n_in``, ``n_hidden``, ``n_out``, ``eta``, ``init_scale``,
  ``input_spectrum``, optional ``teacher`` and ``feedback``. Loss ``task = ½ tr(EΣEᵀ)``;
  ``backprop = true`` gives the true gradient flow.
- ``momentum`` (:mod:`.momentum`): heavy ball on ``½(w−w*)ᵀH(w−w*)``: state ``(w, v)``;
  ``H`` (SPD), ``gamma``, ``w_star``. Losses ``energy`` and ``objective``.
- ``bcm_slow`` (:mod:`.bcm_slow`): the BCM rule's expected drift with pattern inputs and
  a slow threshold, state ``(w, θ)``; ``patterns``, ``probabilities``, ``transfer``,
  ``eta``, ``tau_theta``. Loss ``intrator_cooper`` (of w only).
"""

from typing import Annotated, Union

import numpy as np
from pydantic import Field, TypeAdapter

from .base import System, SystemParams, finite_difference_jacobian, integrate
from .bcm_slow import BCMSlow, BCMSlowConfig
from .feedback_alignment import FeedbackAlignment, FeedbackAlignmentConfig
from .linear import LinearConfig, LinearSystem
from .momentum import Momentum, MomentumConfig

__all__ = ["System", "SystemParams", "SystemConfig", "SYSTEMS", "LinearSystem", "FeedbackAlignment",
           "Momentum", "BCMSlow", "make_system", "system_from_section", "integrate",
           "finite_difference_jacobian"]

SYSTEMS = ("linear", "feedback_alignment", "momentum", "bcm_slow")

SystemConfig = Annotated[Union[LinearConfig, FeedbackAlignmentConfig, MomentumConfig, BCMSlowConfig],
                         Field(discriminator="system")]


def make_system(cfg, seed=0):
    """The :class:`System` of a ``[dynamics]`` config (random matrices from ``seed``)."""
    rng = np.random.default_rng(seed)
    if cfg.system == "linear":
        return LinearSystem(cfg.A, cfg.w_star, cfg.w0)
    if cfg.system == "momentum":
        return Momentum(cfg.H, cfg.gamma, cfg.w_star, cfg.w0)
    if cfg.system == "bcm_slow":
        return BCMSlow(cfg.patterns, cfg.probabilities, cfg.transfer, cfg.eta, cfg.tau_theta, cfg.w0)
    # feedback alignment: teacher, feedback, initial weights drawn in a fixed order
    n_in, h, n_out = cfg.n_in, cfg.n_hidden, cfg.n_out
    teacher = rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
    feedback = rng.standard_normal((h, n_out)) / np.sqrt(n_out)
    W1 = rng.standard_normal((h, n_in)) * cfg.init_scale
    W2 = rng.standard_normal((n_out, h)) * cfg.init_scale
    if cfg.teacher is not None:
        teacher = np.asarray(cfg.teacher, float)
    if cfg.feedback is not None:
        feedback = np.asarray(cfg.feedback, float)
    w0 = np.concatenate([W1.ravel(), W2.ravel()]) if cfg.w0 is None else np.asarray(cfg.w0, float)
    sigma = np.eye(n_in) if cfg.input_spectrum is None else np.diag(cfg.input_spectrum)
    return FeedbackAlignment(n_in, h, n_out, cfg.eta, teacher, feedback, sigma, w0, cfg.backprop)


#: keys of ``[dynamics]`` in files written before the run and record keys were
#: spelt as in every other experiment (``[simulation]``, ``[record]``)
_OLD_KEYS = ("duration", "dt", "record_every", "bound")


def system_from_section(section, seed=0):
    """The :class:`System` of a ``[dynamics]`` section (a dict, e.g. from a run file's
    stored ``/config``); ``pydantic.ValidationError`` if it is not valid."""
    section = {k: v for k, v in dict(section).items() if k not in _OLD_KEYS}
    return make_system(TypeAdapter(SystemConfig).validate_python(section), seed)
