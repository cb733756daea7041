"""Feedback alignment (Lillicrap et al. 2016): a two-layer linear network trained with
a fixed random feedback matrix instead of the transposed forward weights."""

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from .base import Matrix, NonNegative, System, SystemParams


class FeedbackAlignmentConfig(SystemParams):
    system: Literal["feedback_alignment"]
    n_in: int = Field(5, gt=0)
    n_hidden: int = Field(4, gt=0)
    n_out: int = Field(3, gt=0)
    eta: float = Field(1.0, gt=0)
    init_scale: float = Field(0.01, ge=0)
    input_spectrum: list[NonNegative] | None = None
    teacher: Matrix | None = None
    feedback: Matrix | None = None
    backprop: bool = False

    @model_validator(mode="after")
    def _check(self):
        if self.input_spectrum is not None and len(self.input_spectrum) != self.n_in:
            raise ValueError(f"'input_spectrum' has {len(self.input_spectrum)} entries, n_in = {self.n_in}")
        if self.teacher is not None and np.shape(self.teacher) != (self.n_out, self.n_in):
            raise ValueError(f"'teacher' must be n_out × n_in = {self.n_out} × {self.n_in}")
        if self.feedback is not None and np.shape(self.feedback) != (self.n_hidden, self.n_out):
            raise ValueError(f"'feedback' must be n_hidden × n_out = {self.n_hidden} × {self.n_out}")
        n = self.n_hidden * self.n_in + self.n_out * self.n_hidden
        if self.w0 is not None and len(self.w0) != n:
            raise ValueError(f"'w0' has {len(self.w0)} entries; (W1, W2) has {n}")
        return self


class FeedbackAlignment(System):
    name = "feedback_alignment"

    def __init__(self, n_in, n_hidden, n_out, eta, teacher, feedback, sigma, w0, backprop=False):
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out
        self.eta = float(eta)
        self.T = np.asarray(teacher, float)
        self.B = np.asarray(feedback, float)
        self.Sigma = np.asarray(sigma, float)
        self.backprop = bool(backprop)
        self.w0 = np.asarray(w0, float)
        self.k1 = n_hidden * n_in
        self.labels = ([f"W1[{i},{j}]" for i in range(n_hidden) for j in range(n_in)]
                       + [f"W2[{i},{j}]" for i in range(n_out) for j in range(n_hidden)])

    def split(self, W):
        W = np.atleast_2d(np.asarray(W, float))
        W1 = W[:, :self.k1].reshape(-1, self.n_hidden, self.n_in)
        W2 = W[:, self.k1:].reshape(-1, self.n_out, self.n_hidden)
        return W1, W2

    def join(self, W1, W2):
        return np.concatenate([W1.reshape(W1.shape[0], -1), W2.reshape(W2.shape[0], -1)], axis=1)

    def error(self, W):
        W1, W2 = self.split(W)
        return W1, W2, W2 @ W1 - self.T

    def drift(self, W):
        W1, W2, E = self.error(W)
        ES = E @ self.Sigma
        back = np.swapaxes(W2, 1, 2) if self.backprop else self.B
        return -self.eta * self.join(back @ ES, ES @ np.swapaxes(W1, 1, 2))

    def alignment(self, W):
        """Cosine between W₂ᵀ and the feedback B, per record (FA's alignment)."""
        _, W2 = self.split(W)
        Wt = np.swapaxes(W2, 1, 2).reshape(W2.shape[0], -1)
        b = self.B.reshape(-1)
        return Wt @ b / (np.linalg.norm(Wt, axis=1) * np.linalg.norm(b) + 1e-300)

    @property
    def losses(self):
        def task(W):
            W1, W2, E = self.error(W)
            ES = E @ self.Sigma
            values = 0.5 * np.einsum("bij,bij->b", ES, E)
            grads = self.join(np.swapaxes(W2, 1, 2) @ ES, ES @ np.swapaxes(W1, 1, 2))
            return values, grads

        return {"task": task}
