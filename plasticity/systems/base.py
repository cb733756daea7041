"""What a learning rule given as an ODE is: the base class of the NumPy systems, their
shared parameter schema, a finite-difference Jacobian and a fixed-step integrator."""

from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class SystemParams(BaseModel):
    """The ``[dynamics]`` section of a ``kind = "dynamics"`` experiment: ``system``,
    the initial state ``w0`` and the system's own parameters. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    w0: list[float] | None = None


Matrix = list[list[float]]
NonNegative = Annotated[float, Field(ge=0)]


def _square(name, M):
    M = np.asarray(M, float)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.size == 0:
        raise ValueError(f"'{name}' must be a square matrix")
    if not np.all(np.isfinite(M)):
        raise ValueError(f"'{name}' has non-finite entries")
    return M



def finite_difference_jacobian(drift, W):
    """Jacobians ``∂f/∂w`` at each row of ``W`` (B, n), shape (B, n, n), by central
    differences with step ``ε^{1/3} max(1, |w_i|)`` (relative error ~1e-10 for smooth
    drifts). ``drift`` must be batched."""
    W = np.asarray(W, float)
    B, n = W.shape
    h = np.finfo(float).eps ** (1 / 3) * np.maximum(1.0, np.abs(W))  # (B, n)
    E = np.eye(n)
    plus = W[:, None, :] + h[:, :, None] * E[None]     # (B, n, n): row j perturbed in coord j
    minus = W[:, None, :] - h[:, :, None] * E[None]
    Fp = drift(plus.reshape(B * n, n)).reshape(B, n, n)
    Fm = drift(minus.reshape(B * n, n)).reshape(B, n, n)
    # Fp[b, j, :] = f(w + h_j e_j): column j of the Jacobian
    return ((Fp - Fm) / (2 * h[:, :, None])).transpose(0, 2, 1)


class System:
    """A learning rule as an ODE. ``drift(W)`` and ``jacobian(W)`` are batched over
    rows (B, n); ``losses`` maps names to batched ``(B, n) -> (values, gradients)``;
    ``labels`` names the state components; ``w0`` is the initial state."""

    name = "system"
    labels: list
    w0: np.ndarray

    @property
    def n(self):
        return self.w0.size

    def drift(self, W):
        raise NotImplementedError

    def jacobian(self, W):
        return finite_difference_jacobian(self.drift, np.atleast_2d(W))

    @property
    def losses(self):
        return {}


def integrate(system, w0, dt, steps, every, bound=np.inf):
    """Fixed-step RK4 from ``w0``: yields ``(step, w)`` every ``every`` steps (step 0
    first); stops early (yielding the offending state) on non-finite or
    ``|w| > bound``."""
    w = np.asarray(w0, float).copy()
    f = system.drift
    yield 0, w.copy()
    for step in range(1, steps + 1):
        x = w[None, :]
        k1 = f(x)
        k2 = f(x + 0.5 * dt * k1)
        k3 = f(x + 0.5 * dt * k2)
        k4 = f(x + dt * k3)
        w = w + (dt / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)[0]
        bad = not np.all(np.isfinite(w)) or np.max(np.abs(w)) > bound
        if step % every == 0 or step == steps or bad:
            yield step, w.copy()
        if bad:
            return
