"""The mean-field (expected) dynamics of a run: its joint drift, Jacobian, fixed
points, closed orbits and the quadratic Lyapunov loss of a stable fixed point.

A rate rule with logged input statistics, and a ``kind = "dynamics"`` run, have an
expected drift ``F(x)`` of the *joint* plastic state ``x = [weights, state]`` (e.g.
BCM's threshold θ with it). Everything here works on such a batched function
``F: (B, n) -> (B, n)``:

- :func:`joint_drift_of_run`: ``F`` of an opened run (``None`` where the drift is not
  a function of the state alone, e.g. spiking rules whose drift needs the measured
  rates);
- :func:`jacobian`: central finite differences, all ``2n`` evaluations in one batch
  (also what a linear-stability report needs);
- :func:`fixed_point`: the root of ``F`` nearest a starting point (scipy ``root``);
- :func:`integrate`: the mean-field trajectory from a record (scipy ``solve_ivp``);
- :func:`closed_orbit`: a periodic orbit by shooting (a fixed point of the
  return map, scipy ``least_squares``): the *proof* behind ``no-loss-exists`` on the
  mean-field basis — a loss that strictly decreases along the drift cannot come
  back to its value after one period;
- :func:`mean_field_recurrence`: the recurrence test on the integrated trajectory,
  confirmed by a closed orbit (a slowly damped spiral returns within any tolerance a
  finite run allows, but has no closed orbit: then no claim is made);
- :func:`weight_time_scale`: the weights' own time scale (fastest rate of the
  weight block of the Jacobian), against which a plastic state is called fast;
- :func:`lyapunov_loss`: ``V(x) = (x − x*)ᵀ P (x − x*)`` with ``JᵀP + PJ = −Q``
  (scipy ``solve_continuous_lyapunov``) at a stable fixed point, with the largest
  sublevel set on which the drift descends it (its region of validity).

Nothing here imports the simulation side.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg import solve_continuous_lyapunov
from scipy.optimize import least_squares, root

from .drift import SEPARATION  # noqa: F401  (re-exported: the time-scale criterion)
from .recurrence import apply_map, find_recurrence, whitening

__all__ = ["joint_drift_of_run", "jacobian", "fixed_point", "integrate", "closed_orbit",
           "mean_field_recurrence", "MeanFieldRecurrence", "weight_time_scale",
           "lyapunov_loss", "LyapunovLoss", "run_mean_field_recurrence", "lyapunov_certificate", "SEPARATION", "SHOOTING_MAX_N", "run_weight_time_scale"]

#: a plastic state is "fast" (slaved to its fixed point) when its time constant is
#: below this fraction of the weights' own fastest time scale
#: closed orbits are sought by shooting for joint states of at most this many components
SHOOTING_MAX_N = 40
#: at most this many points of the mean-field trajectory are kept for the recurrence test
MEAN_FIELD_POINTS = 4000


def _batched(drift):
    def F(X):
        X = np.atleast_2d(np.asarray(X, float))
        return np.asarray(drift(X), float).reshape(X.shape)
    return F


def joint_drift_of_run(run, system=None):
    """``(F, layout_size)``: the joint expected drift of an opened run, batched over
    rows of ``[weights, logged state]`` (the file's record layout), or ``(None, why)``.

    Dynamics runs: the system's drift. Rate rules with logged input statistics: the
    rule's ``drift`` with the logged state as state (every state variable the file
    logs enters, fast or slow: the mean field needs no adiabatic approximation).
    """
    if system is not None:
        return _batched(system.drift), None
    rule = run.rule
    if rule is None:
        return None, run.rule_error or "no rule"
    if rule.activity != "rate":
        return None, "a spiking rule's drift depends on the measured rates, not on the state alone"
    if run.stats is None:
        return None, run.stats_error or "no input statistics"
    missing = [name for name in rule.state if name not in run.state_names]
    if missing:
        return None, f"the state {', '.join(missing)} is not logged"
    from .drift import expected_drift

    stats = getattr(run.stats, "base", run.stats)
    layout = run.layout(with_state=True)
    params = run.params

    def F(X):
        X = np.atleast_2d(np.asarray(X, float))
        return expected_drift(rule, params, stats, layout, X)

    return F, None


def jacobian(drift, x, step=None):
    """``∂F/∂x`` at ``x`` (n,) by central differences (one batched call of ``2n`` rows).

    ``step``: per-component step (default ``1e-6 · max(1, |x_i|)``)."""
    x = np.asarray(x, float)
    n = x.size
    h = 1e-6 * np.maximum(1.0, np.abs(x)) if step is None else np.broadcast_to(step, (n,))
    E = np.diag(h)
    X = np.concatenate([x + E, x - E])
    Y = _batched(drift)(X)
    return ((Y[:n] - Y[n:]) / (2 * h[:, None])).T


def fixed_point(drift, x0, tol=1e-10):
    """The root of ``F`` found by scipy ``root`` (hybrid Powell) from ``x0``:
    ``(x*, converged)``; ``converged`` also requires ``‖F(x*)‖`` small against
    ``‖F(x0)‖``."""
    F = _batched(drift)
    x0 = np.asarray(x0, float)
    sol = root(lambda x: F(x[None])[0], x0, jac=lambda x: jacobian(F, x), method="hybr",
               tol=tol)
    x = np.asarray(sol.x, float)
    res = float(np.linalg.norm(F(x[None])[0]))
    scale = max(float(np.linalg.norm(F(x0[None])[0])), 1e-300)
    ok = bool(sol.success and np.all(np.isfinite(x)) and res <= 1e-6 * max(scale, 1.0))
    return x, ok


def integrate(drift, x0, time, rtol=1e-8, atol=1e-10, stiff=None):
    """The trajectory of ``ẋ = F(x)`` from ``x0`` at the times ``time`` (from
    ``time[0]``): ``(T, n)``. Stops early (returns the rows reached) if the solution
    blows up. ``stiff`` (default: ``n ≤ 200``) uses LSODA, which switches to a stiff
    method when a fast state variable needs it; otherwise RK45."""
    F = _batched(drift)
    time = np.asarray(time, float)
    x0 = np.asarray(x0, float)
    n = x0.size
    stiff = n <= 200 if stiff is None else stiff
    method = "LSODA" if stiff else "RK45"
    sol = solve_ivp(lambda _t, x: F(x[None])[0], (time[0], time[-1]), x0, t_eval=time,
                    method=method, rtol=rtol, atol=atol)
    return np.asarray(sol.y.T, float)


def _flow(F, x, duration, rtol=1e-9, atol=1e-11):
    sol = solve_ivp(lambda _t, z: F(z[None])[0], (0.0, duration), x, method="LSODA",
                    rtol=rtol, atol=atol, dense_output=False)
    return sol.y[:, -1]


@dataclass
class ClosedOrbit:
    """A periodic orbit of the drift: a point ``x`` on it, its ``period``, the return
    residual ``‖φ_T(x) − x‖`` and its ``diameter`` (both in the whitened metric of
    the trajectory it was found from)."""

    x: np.ndarray
    period: float
    residual: float
    diameter: float

    def summary(self):
        return {"period": float(self.period), "residual": float(self.residual),
                "diameter": float(self.diameter), "point": [float(v) for v in self.x]}


def closed_orbit(drift, x0, period, metric=None, min_diameter=1e-3, rtol=1e-7):
    """A periodic orbit through (a point near) ``x0`` with period near ``period``, by
    shooting: solve ``φ_T(x) = x`` with ``x`` on the hyperplane through ``x0`` normal
    to ``F(x0)`` (scipy ``least_squares``, unknowns ``x`` and ``T``).

    ``metric`` (n, n): the whitening map the residual and diameter are measured in
    (default identity). The orbit is accepted when its return residual is at most
    ``rtol`` times its diameter and the diameter is at least ``min_diameter`` (a
    focus is a "closed orbit" of diameter 0: a damped spiral's shooting ends there).
    Returns :class:`ClosedOrbit` or ``None``.
    """
    F = _batched(drift)
    x0 = np.asarray(x0, float)
    n = x0.size
    A = np.eye(n) if metric is None else np.asarray(metric, float)
    f0 = F(x0[None])[0]
    normal = A @ f0
    if not np.linalg.norm(normal) > 0 or not period > 0:
        return None
    normal /= np.linalg.norm(normal)

    def residual(z):
        x, T = z[:n], z[n]
        if not T > 0:
            return np.full(n + 1, 1e6)
        try:
            y = _flow(F, x, T)
        except Exception:                          # noqa: BLE001 - a failed shot is no orbit
            return np.full(n + 1, 1e6)
        return np.concatenate([A @ (y - x), [normal @ (A @ (x - x0))]])

    try:
        sol = least_squares(residual, np.concatenate([x0, [period]]), method="lm",
                            xtol=1e-12, ftol=1e-12, max_nfev=30 * (n + 2))
    except Exception:                              # noqa: BLE001
        return None
    x, T = sol.x[:n], float(sol.x[n])
    if not (T > 0 and np.all(np.isfinite(x))):
        return None
    # sample the orbit for its diameter
    ts = np.linspace(0.0, T, 200)
    orbit = solve_ivp(lambda _t, z: F(z[None])[0], (0.0, T), x, t_eval=ts, method="LSODA",
                      rtol=1e-10, atol=1e-12).y.T @ A.T
    if orbit.shape[0] < 2:
        return None
    diameter = 2.0 * float(np.max(np.linalg.norm(orbit - orbit.mean(axis=0), axis=1)))
    res = float(np.linalg.norm(A @ (_flow(F, x, T) - x)))
    if diameter < min_diameter or res > rtol * diameter:
        return None
    # the shot may close after several turns: report the prime period
    for k in (range(8, 1, -1) if T > 1.5 * period else ()):
        r = float(np.linalg.norm(A @ (_flow(F, x, T / k) - x)))
        if r <= rtol * diameter:
            T, res = T / k, r
            break
    return ClosedOrbit(x=x, period=T, residual=res, diameter=diameter)


@dataclass
class MeanFieldRecurrence:
    """Outcome of :func:`mean_field_recurrence`: the recurrence of the integrated
    trajectory (or None), whether a closed orbit confirms it, and the orbit."""

    recurrence: object = None
    orbit: ClosedOrbit | None = None
    checked: bool = False
    trajectory: np.ndarray | None = None
    time: np.ndarray | None = None
    notes: list = field(default_factory=list)

    @property
    def proof(self):
        return self.recurrence is not None and self.orbit is not None

    def summary(self):
        out = {"basis": "mean-field", "closed_orbit": None if self.orbit is None else self.orbit.summary(),
               "orbit_checked": self.checked}
        if self.notes:
            out["note"] = "; ".join(self.notes)
        return out


def mean_field_recurrence(drift, time, x0, max_points=MEAN_FIELD_POINTS, **options):
    """Integrate the joint drift from ``x0`` over ``time[0] … time[-1]`` (at
    ``max_points`` evenly spaced times) and test the trajectory for
    recurrence (whitened by its own covariance, so the answer does not depend on the
    units of the coordinates); confirm a recurrence by a closed orbit
    (:func:`closed_orbit`, states of at most ``SHOOTING_MAX_N`` components; larger
    states: by continuing the integration over ten periods and asking that the
    returns neither shrink nor drift). Returns :class:`MeanFieldRecurrence`; only
    ``proof`` (a recurrence and a closed orbit) supports ``no-loss-exists``."""
    time = np.asarray(time, float)
    # a fixed grid over the run, whatever the record interval: the answer must not
    # depend on how often the run was logged
    # (bounded memory for large states: at most about 64 MB of trajectory)
    points = int(min(max_points, max(200, (64 << 20) // (8 * max(1, np.size(x0))))))
    time = np.linspace(time[0], time[-1], points)
    X = integrate(drift, x0, time)
    t = time[:X.shape[0]]
    out = MeanFieldRecurrence(trajectory=X, time=t)
    if X.shape[0] < 3 or not np.all(np.isfinite(X)):
        out.notes.append("the mean-field trajectory could not be integrated over the run")
        return out
    rec = find_recurrence(X, t, **options)
    out.recurrence = rec
    if rec is None:
        return out
    A = whitening(X)
    period = rec.t_j - rec.t_i
    n = X.shape[1]
    out.checked = True
    if n <= SHOOTING_MAX_N:
        # shoot from the end of the run, where an attracting cycle is closest, with the
        # time of the first return to the section through it as the period guess (the
        # recurrence's own interval may be a near-return of the transient)
        first = _section_return(drift, X[-1], max(4.0 * period, t[-1] - t[0]))
        if first is not None:
            out.orbit = closed_orbit(drift, X[-1], first, metric=A)
        if out.orbit is None:
            out.orbit = closed_orbit(drift, X[rec.i], period, metric=A)
    else:
        out.orbit = _continued_orbit(drift, X[-1], period, A)
    if out.orbit is None:
        out.notes.append(f"the mean-field trajectory returns within tolerance (t = {rec.t_i:.4g} -> "
                         f"{rec.t_j:.4g}) but no closed orbit exists near it: a slowly damped or "
                         "growing spiral, not a proof")
    return out


def _section_return(drift, x, horizon):
    """Time of the first return of the flow from ``x`` to the hyperplane through ``x``
    normal to ``F(x)``, crossed in the same direction (``None`` within ``horizon``)."""
    F = _batched(drift)
    x = np.asarray(x, float)
    normal = F(x[None])[0]
    if not np.linalg.norm(normal) > 0:
        return None

    # the plane is shifted a hair behind x, so the start is not on it
    offset = 1e-6 * float(np.linalg.norm(normal)) * (1.0 + float(np.linalg.norm(x)))

    def section(_t, z):
        return float(normal @ (z - x)) + offset

    section.direction = 1.0
    try:
        sol = solve_ivp(lambda _t, z: F(z[None])[0], (0.0, horizon), x, method="LSODA",
                        rtol=1e-8, atol=1e-10, events=section)
    except Exception:                              # noqa: BLE001 - no guess, the caller falls back
        return None
    times = [float(v) for v in sol.t_events[0] if v > 0]
    return times[0] if times else None


def _continued_orbit(drift, x_end, period, A, turns=10):
    """Large states: integrate ``turns`` periods on from ``x_end`` and accept a closed
    orbit if the last return is within 1e-3 of the orbit's diameter and the diameter
    did not shrink by more than 1% over the last turns."""
    F = _batched(drift)
    ts = np.linspace(0.0, turns * period, turns * 100 + 1)
    try:
        Y = solve_ivp(lambda _t, z: F(z[None])[0], (0.0, ts[-1]), x_end, t_eval=ts, method="RK45",
                      rtol=1e-9, atol=1e-12).y.T
        Y = apply_map(Y, A)
    except Exception:                              # noqa: BLE001
        return None
    if Y.shape[0] < ts.size:
        return None
    per = 100
    last, before = Y[-per - 1:], Y[-2 * per - 1:-per]
    d_last = 2 * np.max(np.linalg.norm(last - last.mean(0), axis=1))
    d_before = 2 * np.max(np.linalg.norm(before - before.mean(0), axis=1))
    res = float(np.linalg.norm(Y[-1] - Y[-per - 1]))
    if d_last > 1e-3 and res <= 1e-3 * d_last and d_last >= 0.99 * d_before:
        if np.ndim(A) == 1:       # a diagonal map (large states): coordinates it drops are 0
            x = np.where(A != 0, Y[-1] / np.where(A != 0, A, 1.0), 0.0)
        else:
            x = np.linalg.lstsq(A, Y[-1], rcond=None)[0]
        return ClosedOrbit(x=x, period=period, residual=res, diameter=d_last)
    return None


def weight_time_scale(weight_drift, W, records=8):
    """The weights' own (fastest) time scale: ``1 / max_k ρ(J_k)`` where ``J_k`` is
    the Jacobian of the weight drift (the state held at its fixed point) at ``records``
    rows of ``W`` spread over the trajectory and ``ρ`` its spectral radius (dense for
    at most 200 weights; otherwise the largest Ritz value of a few Arnoldi steps).
    ``inf`` if the drift does not depend on the weights."""
    W = np.atleast_2d(np.asarray(W, float))
    rows = np.unique(np.linspace(0, W.shape[0] - 1, min(records, W.shape[0])).astype(int))
    rates = []
    for k in rows:
        w = W[k]
        if w.size <= 200:
            J = jacobian(weight_drift, w)
            rates.append(float(np.max(np.abs(np.linalg.eigvals(J)))))
        else:
            rates.append(_spectral_radius_matfree(weight_drift, w))
    # the fastest rate met: a state is called fast only if it is faster than the
    # weights everywhere along the run
    rate = float(np.max(rates)) if rates else 0.0
    return np.inf if not rate > 0 else 1.0 / rate


def _spectral_radius_matfree(drift, w, steps=20):
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigs

    F = _batched(drift)
    h = 1e-6 * max(1.0, float(np.max(np.abs(w))))

    def matvec(v):
        v = np.asarray(v, float).ravel()
        Y = F(np.stack([w + h * v, w - h * v]))
        return (Y[0] - Y[1]) / (2 * h)

    op = LinearOperator((w.size, w.size), matvec=matvec, dtype=float)
    try:
        vals = eigs(op, k=1, which="LM", maxiter=steps * 10, tol=1e-3, return_eigenvectors=False)
        return float(np.max(np.abs(vals)))
    except (ArpackNoConvergence, Exception):       # noqa: BLE001 - fall back to power iteration
        v = np.random.default_rng(0).standard_normal(w.size)
        rate = 0.0
        for _ in range(steps):
            u = matvec(v / np.linalg.norm(v))
            rate = float(np.linalg.norm(u))
            v = u if rate > 0 else v
        return rate


@dataclass
class LyapunovLoss:
    """The quadratic Lyapunov loss ``V(x) = (x − x*)ᵀ P (x − x*)`` of a stable fixed
    point ``x*`` (``JᵀP + PJ = −Q``), valid (strictly descended by the drift) on the
    sublevel set ``V ≤ level``; ``radius_min`` / ``radius_max`` are the semi-axes of
    that ellipsoid in the units of the state."""

    x_star: np.ndarray
    P: np.ndarray
    max_real: float
    level: float
    radius_min: float
    radius_max: float

    def __call__(self, X):
        X = np.atleast_2d(np.asarray(X, float))
        D = X - self.x_star
        PD = D @ self.P
        return np.einsum("ij,ij->i", D, PD), 2.0 * PD

    def inside(self, X):
        return self(X)[0] <= self.level

    def summary(self):
        return {"fixed_point": [float(v) for v in self.x_star], "max_real": float(self.max_real),
                "level": float(self.level), "radius_min": float(self.radius_min),
                "radius_max": float(self.radius_max)}


def lyapunov_loss(drift, x_star, J=None, Q=None, samples=400, levels=40, seed=0):
    """The quadratic Lyapunov loss of the stable fixed point ``x_star`` (see
    :class:`LyapunovLoss`), or ``None`` when the Jacobian has an eigenvalue with
    non-negative real part.

    Region of validity: ``V̇ = ∇V·F = −(x−x*)ᵀQ(x−x*) + O(‖x−x*‖³)`` is negative near
    ``x*``; the largest level ``c`` (on a geometric grid of ``levels`` values up to
    the first failure) such that ``∇V·F < 0`` at ``samples`` points on each of the
    ellipsoids ``V = c' ≤ c`` (random directions, reproducible with ``seed``). A
    sampled check, not a proof: it is stated as such in the docs.
    """
    F = _batched(drift)
    x_star = np.asarray(x_star, float)
    n = x_star.size
    J = jacobian(F, x_star) if J is None else np.asarray(J, float)
    eig = np.linalg.eigvals(J)
    max_real = float(np.max(eig.real))
    if not max_real < 0:
        return None
    Q = np.eye(n) if Q is None else np.asarray(Q, float)
    P = solve_continuous_lyapunov(J.T, -Q)
    P = 0.5 * (P + P.T)
    evals, evecs = np.linalg.eigh(P)
    if not np.all(evals > 0):
        return None
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((samples, n))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    # points with V = 1: x* + P^{-1/2} u
    shell = U @ (evecs / np.sqrt(evals)).T
    scale = max(1.0, float(np.max(np.abs(x_star))))
    # V at distance ~1e-4 scale .. ~1e2 scale
    c_grid = (np.geomspace(1e-4, 1e2, levels) * scale) ** 2 * float(np.min(evals))
    level = 0.0
    for c in c_grid:
        X = x_star + np.sqrt(c) * shell
        with np.errstate(all="ignore"):
            Vdot = np.einsum("ij,ij->i", 2.0 * (X - x_star) @ P, F(X))
        if not np.all(np.isfinite(Vdot)) or np.any(Vdot >= 0):
            break
        level = float(c)
    if level == 0.0:
        return None
    return LyapunovLoss(x_star=x_star, P=P, max_real=max_real, level=level,
                        radius_min=float(np.sqrt(level / evals.max())),
                        radius_max=float(np.sqrt(level / evals.min())))


#: the Lyapunov loss is built for joint states of at most this many components
LYAPUNOV_MAX_N = 200


def lyapunov_certificate(run, system=None, name="lyapunov_quadratic"):
    """Certify the joint expected drift of a run against the quadratic Lyapunov loss of
    the stable fixed point nearest its last record (:func:`lyapunov_loss`), on the
    records inside the loss's region of validity. For rules with a plastic state
    (BCM's θ, the covariance rule's ȳ), where the weights alone descend no loss while θ
    lags. Returns ``(Certificate or None, info dict or None)``; ``info`` says the fixed
    point, the largest real part of the Jacobian's eigenvalues, the region (level and
    semi-axes) and how many records lie in it, or why there is no such loss."""
    from .certificate import certify

    if system is None and not run.state_names:
        return None, None
    F, why = joint_drift_of_run(run, system)
    if F is None:
        return None, None
    size = run.layout(with_state=True).size if system is None else run.n_synapses
    if size > LYAPUNOV_MAX_N:
        return None, {"reason": f"joint state of {size} components (at most {LYAPUNOV_MAX_N})"}
    X = run.read(0, run.n_records) if system is None else run.weights(0, run.n_records)
    x_star, ok = fixed_point(F, X[-1])
    if not ok:
        return None, {"reason": "no fixed point of the joint drift found near the last record"}
    J = jacobian(F, x_star)
    max_real = float(np.max(np.linalg.eigvals(J).real))
    if not max_real < 0:
        return None, {"fixed_point": [float(v) for v in x_star], "max_real": max_real,
                      "reason": "the fixed point is not linearly stable"}
    V = lyapunov_loss(F, x_star, J)
    if V is None:
        return None, {"fixed_point": [float(v) for v in x_star], "max_real": max_real,
                      "reason": "no sublevel set of the quadratic loss is descended"}
    inside = V.inside(X)
    info = {**V.summary(), "records_in_region": int(inside.sum()), "records": int(X.shape[0])}
    if not inside.any():
        info["reason"] = "no record lies in the region of validity"
        return None, info
    values, grads = V(X[inside])
    cert = certify(F(X[inside]), grads, values, run.time[inside], name, "expected")
    cert.extra["region"] = info
    return cert, info


def run_mean_field_recurrence(run, system=None):
    """The recurrence test on the **mean field** (:mod:`~plasticity.analysis.meanfield`):
    the joint drift integrated from the first record over the run's times, a return
    confirmed by a closed orbit. ``(MeanFieldRecurrence, None)``, or ``(None, why)``
    when the run has no drift that is a function of its state."""
    F, why = joint_drift_of_run(run, system)
    if F is None:
        return None, why
    x0 = run.read(0, 1)[0] if system is None else run.weights(0, 1)[0]
    return mean_field_recurrence(F, run.time, x0), None


def run_weight_time_scale(run, records=8):
    """The weights' own time scale of a rate-rule run (seconds): the inverse spectral
    radius of the Jacobian of the adiabatic weight drift (state at its fixed point),
    the largest over ``records`` records spread over the run; ``None`` without a drift."""
    from .drift import expected_drift

    if run.rule is None or run.stats is None or run.rule.activity != "rate":
        return None
    layout = run.layout(with_state=False)
    stats = getattr(run.stats, "base", run.stats)
    rows = np.unique(np.linspace(0, run.n_records - 1, min(records, run.n_records)).astype(int))
    W = np.concatenate([run.weights(int(k), int(k) + 1) for k in rows])

    def F(X):
        return expected_drift(run.rule, run.params, stats, layout, np.atleast_2d(X))

    return weight_time_scale(F, W, records=records)
