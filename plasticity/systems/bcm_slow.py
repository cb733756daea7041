"""The mean-field BCM rule with a slow sliding threshold: the drift of
:class:`plasticity.rules.BCM` with pattern inputs, integrated as an ODE of (w, θ)."""

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from ..inputs import InputStats, check_patterns
from ..rules.bcm import BCM, intrator_cooper
from ..units import quantity_type
from .base import Matrix, NonNegative, System, SystemParams

Time = quantity_type("time")


class BCMSlowConfig(SystemParams):
    system: Literal["bcm_slow"]
    patterns: Matrix
    probabilities: list[NonNegative] | None = None
    transfer: Literal["relu", "linear"] = "relu"
    eta: float = Field(1.0, gt=0)
    tau_theta: Time = 1.0

    @model_validator(mode="after")
    def _check(self):
        check_patterns(self.patterns, self.probabilities)
        n = len(self.patterns[0])
        if self.w0 is None or len(self.w0) != n + 1:
            raise ValueError(f"'w0' must give (w, theta): {n + 1} entries")
        return self


class BCMSlow(System):
    """(w, θ) of one BCM neuron under pattern inputs: the weight drift and the
    threshold's relaxation are those of :class:`plasticity.rules.BCM` (its ``drift``,
    with the patterns' exact moments), and the loss is the rule's Intrator–Cooper
    objective (:func:`plasticity.rules.bcm.intrator_cooper`), of w only."""

    name = "bcm_slow"

    def __init__(self, patterns, probabilities, transfer, eta, tau_theta, w0):
        self.stats = InputStats.from_patterns(patterns, probabilities, transfer)
        self.d = self.stats.n
        self.params = {"eta": float(eta), "tau_theta": float(tau_theta)}
        self.eta, self.tau = self.params["eta"], self.params["tau_theta"]
        self.transfer = transfer
        self.w0 = np.asarray(w0, float)
        self.labels = [f"w{i + 1}" for i in range(self.d)] + ["theta"]

    def drift(self, W):
        W = np.atleast_2d(np.asarray(W, float))
        dW, dstate = BCM().drift(W[:, None, :self.d], {"theta": W[:, self.d:self.d + 1]},
                                 self.stats, self.params)
        return np.concatenate([dW[:, 0, :], dstate["theta"]], axis=1)

    @property
    def losses(self):
        def loss(W):
            W = np.atleast_2d(np.asarray(W, float))
            values, grad = intrator_cooper(W[:, None, :self.d], self.stats)
            grads = np.zeros_like(W)
            grads[:, :self.d] = grad[:, 0, :]
            return values, grads

        return {"intrator_cooper": loss}
