"""Synthetic trajectories and run files without Brian2 (for tests and benchmarks).

:func:`euler_trajectory` integrates a rule's *expected* drift with explicit Euler
steps (the mean-field limit of the simulation); :func:`write_run_file`
(:mod:`plasticity.io.testing`) writes a run file that :func:`open_run` reads like one
written by the recorder.
"""

import numpy as np

from .drift import expected_drift
from ..io.testing import config_toml, write_run_file  # noqa: F401  (the writer the tests use)

__all__ = ["euler_trajectory", "euler_sample_paths", "linear_trajectory", "write_run_file",
           "config_toml"]


def euler_trajectory(rule, params, stats, layout, w0, dt, steps, every=1):
    """Euler integration of the expected drift of ``rule``.

    Parameters
    ----------
    layout : Layout
        Includes the rule's state names to integrate them too (e.g. BCM's θ), or none
        (then the rule gets ``state=None``: BCM's fast threshold).
    w0 : ndarray (layout.size,)
    dt : float
    steps : int
    every : int
        Record every ``every`` steps.

    Returns
    -------
    (time (T,), records (T, layout.size))
    """
    w = np.asarray(w0, float)[None, :].copy()
    times, records = [0.0], [w[0].copy()]
    for step in range(1, steps + 1):
        w = w + dt * expected_drift(rule, params, stats, layout, w)
        if step % every == 0:
            times.append(step * dt)
            records.append(w[0].copy())
    return np.array(times), np.array(records)


def euler_sample_paths(update, draw, w0, dt, steps, every, rng):
    """Stochastic Euler simulation of independent replicas, one input sample per step,
    as the Brian2 rate networks do it (``w += dt · update(w, x)``).

    Parameters
    ----------
    update : callable
        ``update(W, X)`` with weights ``W`` (R, n) and inputs ``X`` (R, n_pre) returns
        ``dW/dt`` (R, n) for one sample (e.g. Oja: ``η y (x − y w)``, ``y = w·x``).
    draw : callable
        ``draw(rng, R)`` returns one input sample per replica, (R, n_pre).
    w0 : ndarray (R, n)
    dt : float
    steps : int
    every : int
        Record every ``every`` steps (the first record is ``w0``).
    rng : numpy.random.Generator

    Returns
    -------
    (time (T,), records (R, T, n))
    """
    W = np.array(w0, float)
    R = W.shape[0]
    records = [W.copy()]
    for step in range(1, steps + 1):
        W += dt * update(W, draw(rng, R))
        if step % every == 0:
            records.append(W.copy())
    time = np.arange(len(records)) * every * dt
    return time, np.stack(records, axis=1)


def linear_trajectory(A, w_star, w0, dt, steps):
    """Exact flow of ``ẇ = A(w − w*)`` sampled every ``dt``: ``(time, weights, drift)``."""
    from scipy.linalg import expm

    A = np.asarray(A, float)
    E = expm(A * dt)
    d = np.asarray(w0, float) - w_star
    out = [d]
    for _ in range(steps):
        d = E @ d
        out.append(d)
    D = np.array(out)
    return np.arange(steps + 1) * dt, D + w_star, D @ A.T
