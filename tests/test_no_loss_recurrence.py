"""Negative certificate: recurrence (docs/math.md §7)."""

import time

import numpy as np
from scipy.integrate import solve_ivp

from plasticity.analysis.recurrence import find_recurrence


def vdp(_t, z, mu=1.0):
    x, y = z
    return [y, mu * (1 - x * x) * y - x]


def test_found_on_limit_cycle():
    t = np.linspace(0, 60, 6000)
    X = solve_ivp(vdp, (0, 60), [0.5, 0.0], t_eval=t, rtol=1e-9, atol=1e-12).y.T
    rec = find_recurrence(X, t)
    assert rec is not None and rec.t_j > rec.t_i
    assert rec.distance <= 0.02 * rec.path
    assert rec.excursion > 1.0


def test_not_found_on_slow_monotone_approach():
    t = np.linspace(0, 200, 10000)
    X = np.stack([2 + np.exp(-0.01 * t), -1 + 3 * np.exp(-0.03 * t), 0.5 * np.exp(-0.02 * t)], 1)
    assert find_recurrence(X, t) is None
    # with tiny noise at the end (converged) still none
    X = X + 1e-7 * np.random.default_rng(0).standard_normal(X.shape)
    assert find_recurrence(X, t) is None
    # a strongly damped spiral is not a recurrence either
    Y = np.stack([np.exp(-0.3 * t) * np.cos(t), np.exp(-0.3 * t) * np.sin(t)], 1)
    assert find_recurrence(Y, t) is None


def test_fast_enough_for_1e4_records():
    t = np.linspace(0, 100, 10000)
    X = np.stack([np.cos(t), np.sin(t), 0.1 * np.cos(3 * t)], 1)
    start = time.perf_counter()
    assert find_recurrence(X, t) is not None
    assert find_recurrence(np.cumsum(np.ones((10000, 3)), axis=0), t) is None
    assert time.perf_counter() - start < 10.0
