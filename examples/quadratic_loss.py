"""A user's loss for ``plasticity analyze --loss examples/quadratic_loss.py:quadratic``.

The signature ``plasticity analyze`` expects (README, "Analysing trajectories from other simulators"): a function taking the weights
of many records at once, an array of shape (T, n), and returning ``(values, gradients)``
of shapes (T,) and (T, n). Here the regression loss of
``examples/external_trajectory.py``: ``L(w) = ½ (w − w*)ᵀ H (w − w*)``.
"""

import numpy as np

#: curvature (the input covariance of the regression) and the optimum
H = np.diag([4.0, 2.0, 1.0, 0.5, 0.25])
W_STAR = np.array([1.0, -1.0, 0.5, 2.0, -0.5])


def quadratic(w):
    d = np.asarray(w, float) - W_STAR      # (T, n)
    Hd = d @ H                             # H is symmetric
    return 0.5 * np.sum(d * Hd, axis=1), Hd
