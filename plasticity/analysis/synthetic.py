"""Synthetic trajectories and run files without Brian2 (for tests and benchmarks).

:func:`euler_trajectory` integrates a rule's *expected* drift with explicit Euler
steps (the mean-field limit of the simulation); :func:`write_run_file`
(:mod:`plasticity.io.testing`) writes a run file that :func:`open_run` reads like one
written by the recorder.
"""

import numpy as np

from .drift import expected_drift
from ..io.testing import config_toml, write_run_file  # noqa: F401  (the writer the tests use)

__all__ = ["euler_trajectory", "linear_trajectory", "write_run_file", "config_toml"]


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
