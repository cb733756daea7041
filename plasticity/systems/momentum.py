"""Heavy-ball momentum on a quadratic: its energy is flat where the velocity
vanishes, so it is not descended strictly, while a window loss is."""

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from .base import Matrix, System, SystemParams, _square


class MomentumConfig(SystemParams):
    system: Literal["momentum"]
    H: Matrix
    gamma: float = Field(0.5, ge=0)
    w_star: list[float] | None = None

    @model_validator(mode="after")
    def _check(self):
        H = _square("H", self.H)
        if not np.allclose(H, H.T) or np.linalg.eigvalsh(H).min() <= 0:
            raise ValueError("'H' must be symmetric positive definite")
        n = H.shape[0]
        if self.w_star is not None and len(self.w_star) != n:
            raise ValueError(f"'w_star' has {len(self.w_star)} entries, H is {n} × {n}")
        if self.w0 is None or len(self.w0) != 2 * n:
            raise ValueError(f"'w0' must give (w, v): {2 * n} entries")
        return self


class Momentum(System):
    name = "momentum"

    def __init__(self, H, gamma, w_star=None, w0=None):
        self.H = np.asarray(H, float)
        self.d = self.H.shape[0]
        self.gamma = float(gamma)
        self.w_star = np.zeros(self.d) if w_star is None else np.asarray(w_star, float)
        self.w0 = np.asarray(w0, float)
        self.labels = [f"w{i + 1}" for i in range(self.d)] + [f"v{i + 1}" for i in range(self.d)]
        n = 2 * self.d
        self.A = np.zeros((n, n))
        self.A[:self.d, self.d:] = np.eye(self.d)
        self.A[self.d:, :self.d] = -self.H
        self.A[self.d:, self.d:] = -self.gamma * np.eye(self.d)

    def drift(self, W):
        W = np.atleast_2d(np.asarray(W, float))
        X = W.copy()
        X[:, :self.d] -= self.w_star
        return X @ self.A.T

    def jacobian(self, W):
        W = np.atleast_2d(W)
        return np.broadcast_to(self.A, (W.shape[0],) + self.A.shape).copy()

    @property
    def losses(self):
        d, H, ws = self.d, self.H, self.w_star

        def objective(W):
            W = np.atleast_2d(np.asarray(W, float))
            x = W[:, :d] - ws
            Hx = x @ H
            grads = np.zeros_like(W)
            grads[:, :d] = Hx
            return 0.5 * np.einsum("ij,ij->i", x, Hx), grads

        def energy(W):
            W = np.atleast_2d(np.asarray(W, float))
            values, grads = objective(W)
            v = W[:, d:]
            grads[:, d:] = v
            return values + 0.5 * np.einsum("ij,ij->i", v, v), grads

        return {"energy": energy, "objective": objective}
