"""Learning rules given as NumPy ODEs, logged like Brian2 runs (experiment ``kind = "dynamics"``).

The analysis layer works on any trajectory, so the examples of the paper the project
rests on (MATH.md §5–7) are run here without Brian2: a learning rule is an ODE
``ẇ = f(w)`` in NumPy, integrated with fixed-step RK4 (``dt``), and logged to the
HDF5 layout of DESIGN.md by :class:`plasticity.recorder.RunFile`, plus a ``/drift``
dataset (T, n) holding the exact drift ``f(w)`` at each record.

Config (TOML)::

    kind = "dynamics"
    name = "lti_nonnormal"
    seed = 0
    description = "..."

    [dynamics]
    system = "linear"              # linear | feedback_alignment | momentum | bcm_slow
    A = [[-1.0, 10.0], [0.0, -2.0]]    # the system's own parameters (see below)
    w0 = [0.0, 1.0]                # initial state (the full plastic vector)
    duration = 6.0                 # seconds (or "6 s"); time is in the system's units
    dt = 0.001
    record_every = 0.01

Systems and their parameters (every key is checked; unknown keys are errors):

- ``linear``: ``ẇ = A(w − w*)``; ``A`` (n × n), ``w_star`` (default 0).
  Performance measure ``norm2 = ‖w − w*‖²``.
- ``feedback_alignment``: a two-layer linear network ``ŷ = W₂W₁x`` regressing a
  teacher ``y = T x`` (x with covariance Σ) by gradient flow in which the backward pass
  uses a fixed random matrix ``B`` instead of ``W₂ᵀ`` (Lillicrap et al. 2016):
  ``Ẇ₁ = −η B E Σ``, ``Ẇ₂ = −η E Σ W₁ᵀ``, ``E = W₂W₁ − T``. State: the flattened
  ``(W₁, W₂)`` (row-major). Parameters ``n_in``, ``n_hidden``, ``n_out``, ``eta``,
  ``init_scale``, ``input_spectrum`` (Σ diagonal; default identity), optional
  ``teacher`` and ``feedback`` matrices (else seeded Gaussian). Loss ``task =
  ½ tr(EΣEᵀ)``; with ``backprop = true`` the true gradient flow (B = W₂ᵀ).
- ``momentum``: heavy ball on ``½(w−w*)ᵀH(w−w*)``: ``ẇ = v``, ``v̇ = −γv − H(w − w*)``;
  state ``(w, v)``; ``H`` (SPD), ``gamma``, ``w_star``. Measures ``energy =
  ½‖v‖² + ½(w−w*)ᵀH(w−w*)`` and ``objective = ½(w−w*)ᵀH(w−w*)``.
- ``bcm_slow``: the mean-field BCM rule with pattern inputs and a slow threshold,
  ``ẇ = η E[x y (y − θ)]``, ``τ_θ θ̇ = E[y²] − θ``, ``y = σ(w·x)``; state ``(w, θ)``;
  ``patterns``, ``probabilities``, ``transfer`` (relu | linear), ``eta``,
  ``tau_theta``. Measure ``intrator_cooper = −(⅓E[y³] − ¼E[y²]²)`` (of w only).

:func:`load_dynamics_config` validates a config dict; :func:`run` writes the run file;
:func:`system_from_config` / :func:`system_from_file` give the system object (drift,
Jacobian, losses) for the analysis (window losses need the drift function).
"""

import time as _time
import tomllib
from typing import Annotated, Literal, Union

import numpy as np
import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .config import _is_multiple, _quantity, check_patterns, describe_error
from .errors import ConfigError, Diverged, Interrupted
from .recorder import RunFile
from .runner import _Progress, run_path

__all__ = ["DynamicsExperiment", "load_dynamics_config", "run", "make_system", "system_from_config",
           "system_from_file", "SYSTEMS", "LinearSystem", "FeedbackAlignment", "Momentum", "BCMSlow",
           "integrate"]


Time = Annotated[float, _quantity("time"), Field(gt=0)]
Matrix = list[list[float]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Common(_Strict):
    w0: list[float] | None = None
    duration: Time
    dt: Time = 1e-3
    record_every: Time = 1e-2
    #: |w| above this stops the run as diverged (exit code 3)
    bound: float = Field(1e6, gt=0)


def _square(name, M):
    M = np.asarray(M, float)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.size == 0:
        raise ValueError(f"'{name}' must be a square matrix")
    if not np.all(np.isfinite(M)):
        raise ValueError(f"'{name}' has non-finite entries")
    return M


class LinearConfig(_Common):
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


class FeedbackAlignmentConfig(_Common):
    system: Literal["feedback_alignment"]
    n_in: int = Field(5, gt=0)
    n_hidden: int = Field(4, gt=0)
    n_out: int = Field(3, gt=0)
    eta: float = Field(1.0, gt=0)
    init_scale: float = Field(0.01, ge=0)
    input_spectrum: list[Annotated[float, Field(ge=0)]] | None = None
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


class MomentumConfig(_Common):
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


class BCMSlowConfig(_Common):
    system: Literal["bcm_slow"]
    patterns: Matrix
    probabilities: list[Annotated[float, Field(ge=0)]] | None = None
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


SystemConfig = Annotated[Union[LinearConfig, FeedbackAlignmentConfig, MomentumConfig, BCMSlowConfig],
                         Field(discriminator="system")]


class DynamicsExperiment(_Strict):
    """A resolved ``kind = "dynamics"`` experiment."""

    kind: Literal["dynamics"]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(0, ge=0)
    description: str = ""
    dynamics: SystemConfig

    @model_validator(mode="after")
    def _steps(self):
        d = self.dynamics
        for key, value in (("record_every", d.record_every), ("duration", d.duration)):
            if not _is_multiple(value, d.dt):
                raise ValueError(f"dynamics.{key}: {value:g} is not a multiple of dynamics.dt = {d.dt:g}")
        if d.record_every > d.duration:
            raise ValueError(f"dynamics.record_every: {d.record_every:g} is longer than "
                             f"dynamics.duration = {d.duration:g}")
        return self

    def to_dict(self):
        return self.model_dump(mode="python", exclude_none=True)

    def to_toml(self):
        return tomli_w.dumps(self.to_dict())


def load_dynamics_config(data, source="config"):
    """Validate a config dict with ``kind = "dynamics"``: a :class:`DynamicsExperiment`,
    or :class:`~plasticity.errors.ConfigError` with one line naming the key."""
    try:
        return DynamicsExperiment.model_validate(data)
    except ValidationError as error:
        first = dict(error.errors()[0])
        loc = first["loc"]
        # drop the discriminator tag pydantic inserts into the location
        if len(loc) >= 2 and loc[0] == "dynamics" and loc[1] in SYSTEMS:
            first["loc"] = (loc[0], *loc[2:])
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            first["msg"] = f"'system' must be one of {', '.join(SYSTEMS)}"
        raise ConfigError(f"{source}: {describe_error(first, DynamicsExperiment)}") from None


# ----------------------------------------------------------------------------------
# The systems: drift (batched), Jacobian, performance measures

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
        from .analysis.window import finite_difference_jacobian

        return finite_difference_jacobian(self.drift, np.atleast_2d(W))

    @property
    def losses(self):
        return {}


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


class BCMSlow(System):
    name = "bcm_slow"

    def __init__(self, patterns, probabilities, transfer, eta, tau_theta, w0):
        self.P = np.asarray(patterns, float)
        K, self.d = self.P.shape
        p = np.full(K, 1.0 / K) if probabilities is None else np.asarray(probabilities, float)
        self.p = p / p.sum()
        self.transfer = transfer
        self.eta = float(eta)
        self.tau = float(tau_theta)
        self.w0 = np.asarray(w0, float)
        self.labels = [f"w{i + 1}" for i in range(self.d)] + ["theta"]

    def _y(self, W):
        u = np.atleast_2d(W)[:, :self.d] @ self.P.T                  # (B, K)
        return np.maximum(u, 0.0) if self.transfer == "relu" else u

    def drift(self, W):
        W = np.atleast_2d(np.asarray(W, float))
        y = self._y(W)
        theta = W[:, self.d:self.d + 1]
        dw = self.eta * ((self.p * y * (y - theta)) @ self.P)
        dtheta = ((y ** 2) @ self.p - theta[:, 0]) / self.tau
        return np.concatenate([dw, dtheta[:, None]], axis=1)

    @property
    def losses(self):
        def intrator_cooper(W):
            W = np.atleast_2d(np.asarray(W, float))
            y = self._y(W)
            m2 = (y ** 2) @ self.p
            m3 = (y ** 3) @ self.p
            xy2 = (self.p * y ** 2) @ self.P
            # σσ' = σ for both transfers, so d/dw ⅓E[σ³] = E[x σ²] and
            # d/dw ¼E[σ²]² = E[σ²] E[x σ]
            xy = (self.p * y) @ self.P
            grads = np.zeros_like(W)
            grads[:, :self.d] = -(xy2 - m2[:, None] * xy)
            return -(m3 / 3 - m2 ** 2 / 4), grads

        return {"intrator_cooper": intrator_cooper}


SYSTEMS = ("linear", "feedback_alignment", "momentum", "bcm_slow")


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


def system_from_config(experiment):
    """The system of a :class:`DynamicsExperiment`."""
    return make_system(experiment.dynamics, experiment.seed)


def system_from_file(path):
    """The system of a dynamics run file (from its stored ``/config``)."""
    import h5py

    with h5py.File(path, "r") as f:
        text = f["config"][()]
    text = text.decode() if isinstance(text, bytes) else str(text)
    return system_from_config(load_dynamics_config(tomllib.loads(text), source=str(path)))


# ----------------------------------------------------------------------------------
# Integration and the run file

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


def run(experiment, out_dir=None, path=None, progress=False):
    """Integrate a :class:`DynamicsExperiment` and write its run file; return the path.

    The file has the DESIGN.md layout: root attrs ``rule`` = the system name, ``model``
    = ``"dynamics"``, ``status``; ``/config`` (resolved TOML), ``/time``,
    ``/weights`` (T, n): the full state; ``/synapses/pre`` = 0..n−1, ``/synapses/post``
    = 0 (one "neuron" holding the vector); ``/drift`` (T, n): the exact drift at each
    record; attrs ``labels`` (names of the components), ``n_pre`` = n, ``n_post`` = 1,
    ``dt``, ``record_every``. Raises :class:`~plasticity.errors.Diverged` (file kept,
    status ``diverged``) when the state leaves ``dynamics.bound``.
    """
    cfg = experiment.dynamics
    system = system_from_config(experiment)
    n = system.n
    runfile = RunFile(run_path(experiment, out_dir, path), n, extra_sizes={"drift": n})
    runfile.write_metadata(config_toml=experiment.to_toml(), rule=system.name, model="dynamics",
                           seed=experiment.seed, pre=np.arange(n), post=np.zeros(n, int),
                           attrs={"device": "numpy", "n_pre": n, "n_post": 1, "dt": cfg.dt,
                                  "record_every": cfg.record_every, "kind": "dynamics",
                                  "labels": np.array(system.labels, dtype="S")})
    steps = int(round(cfg.duration / cfg.dt))
    every = int(round(cfg.record_every / cfg.dt))
    started = _time.time()
    times, states = [], []
    status, message = "complete", None
    last_time = None

    def write_block():
        if not times:
            return
        W = np.array(states)
        F = system.drift(W)      # the exact drift at each record, one call per block
        for t, w, drift in zip(times, W, F):
            runfile.append(t, w, extra={"drift": drift})
        runfile.flush()
        times.clear()
        states.clear()

    bar = _Progress(cfg.duration, progress, experiment.name)
    try:
        for step, w in integrate(system, system.w0, cfg.dt, steps, every, cfg.bound):
            times.append(step * cfg.dt)
            states.append(w)
            last_time = step * cfg.dt
            if not np.all(np.isfinite(w)) or np.max(np.abs(w)) > cfg.bound:
                status = "diverged"
                message = (f"|w| exceeds dynamics.bound = {cfg.bound:g}" if np.all(np.isfinite(w))
                           else "non-finite state")
                break
            if len(times) >= runfile.chunk:
                write_block()
            bar.update_to(step * cfg.dt)
        write_block()
    except KeyboardInterrupt:
        write_block()
        runfile.close("interrupted", "stopped by SIGINT")
        raise Interrupted(f"run interrupted; records so far kept in {runfile.path}",
                          path=runfile.path) from None
    except BaseException as error:
        runfile.close("failed", f"{type(error).__name__}: {error}")
        raise
    finally:
        bar.close()
    runfile.file.attrs["wall_time"] = _time.time() - started
    runfile.close(status, message)
    if status == "diverged":
        raise Diverged(f"run diverged under system {system.name!r}: {message} (log kept: {runfile.path})",
                       time=last_time, path=runfile.path)
    return runfile.path
