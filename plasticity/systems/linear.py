"""``ẇ = A(w − w*)``: a linear system (e.g. a non-normal one whose ‖w‖² is not
descended although every trajectory converges; docs/no_loss.md)."""

from typing import Literal

import numpy as np
from pydantic import model_validator

from .base import Matrix, System, SystemParams, _square


class LinearConfig(SystemParams):
    system: Literal["linear"]
    A: Matrix
    w_star: list[float] | None = None

    @model_validator(mode="after")
    def _check(self):
        n = _square("A", self.A).shape[0]
        for key in ("w_star", "w0"):
            value = getattr(self, key)
            if value is not None and len(value) != n:
                raise ValueError(f"'{key}' has {len(value)} entries, A is {n} × {n}")
        if self.w0 is None:
            raise ValueError("'w0' is required for system = \"linear\"")
        return self


class LinearSystem(System):
    name = "linear"

    def __init__(self, A, w_star=None, w0=None):
        self.A = np.asarray(A, float)
        n = self.A.shape[0]
        self.w_star = np.zeros(n) if w_star is None else np.asarray(w_star, float)
        self.w0 = np.zeros(n) if w0 is None else np.asarray(w0, float)
        self.labels = [f"w{i + 1}" for i in range(n)]

    def drift(self, W):
        return (np.asarray(W, float) - self.w_star) @ self.A.T

    def jacobian(self, W):
        W = np.atleast_2d(W)
        return np.broadcast_to(self.A, (W.shape[0],) + self.A.shape).copy()

    @property
    def losses(self):
        ws = self.w_star

        def norm2(W):
            X = np.atleast_2d(W) - ws
            return np.einsum("ij,ij->i", X, X), 2 * X

        return {"norm2": norm2}
