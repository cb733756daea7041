"""BCM rule with a sliding threshold (Bienenstock, Cooper & Munro 1982).

``Δw = η x y (y − θ)``, ``τ_θ dθ/dt = y² − θ``. Drift
``f_w = η (E[x y²] − θ E[x y])``, ``f_θ = (E[y²] − θ)/τ_θ``.

With a fast threshold (``τ_θ → 0``, θ = E[y²]) the weight drift is ``η ∇Φ`` with the
Intrator–Cooper objective ``Φ = ⅓E[y³] − ¼(E[y²])²``, so BCM is exact Euclidean
gradient descent of ``L = −Φ`` (Intrator & Cooper 1992). With a slow threshold the
joint (w, θ) system can oscillate (Udeigwe, Munro & Ermentrout 2017), and then no
loss exists (docs/math.md §7). Needs non-Gaussian inputs (e.g. patterns) to become
selective: with zero-mean Gaussian inputs and linear neurons the odd moments vanish.
"""

import numpy as np

from .base import Parameter, Rule


class BCM(Rule):
    name = "bcm"
    summary = "Δw = η x y (y − θ), τ_θ θ' = y² − θ: selectivity to one input pattern"
    reference = ("E. Bienenstock, L. Cooper, P. Munro, J. Neurosci. 2:32 (1982); "
                 "N. Intrator, L. Cooper, Neural Networks 5:3 (1992)")
    parameters = {
        **Rule.parameters,
        "tau_theta": Parameter(0.05, "time", doc="time constant of the sliding threshold; small = fast-threshold regime"),
        "theta_init": Parameter(0.0, "1", "nonnegative", doc="initial threshold θ"),
    }
    state = {"theta": "1"}
    state_time_constants = {"theta": "tau_theta"}
    synapse_update = "w += eta * dt * x_pre * y_post * (y_post - theta_post)"
    post_update = "theta += dt * (y**2 - theta) / tau_theta"
    losses = ("intrator_cooper",)

    def initial_state(self, params, n_post):
        return {"theta": np.full(n_post, params["theta_init"])}

    def drift(self, W, state, stats, params):
        second = stats.moment(W, 2)
        theta = state["theta"] if state and "theta" in state else second
        dW = stats.cross(W, 2) - theta[..., None] * stats.cross(W, 1)
        dtheta = (second - theta) / params["tau_theta"]
        return params["eta"] * dW, {"theta": dtheta}


def intrator_cooper(W, stats):
    """The loss ``L = −(⅓E[σ(y)³] − ¼E[σ(y)²]²)`` summed over postsynaptic neurons, and
    its gradient, for dense ``W`` (B, n_post, n_pre): ``(values (B,), gradient (B,
    n_post, n_pre))``. Because σσ' = σ for linear and rectified neurons,
    ``∇⅓E[σ³] = E[xσ²]`` and ``∇¼E[σ²]² = E[σ²]E[xσ]``, so ``−∇L`` is the fast-threshold
    drift over η."""
    m2 = stats.moment(W, 2)
    value = -(stats.moment(W, 3) / 3.0 - 0.25 * m2 ** 2).sum(-1)
    grad = -(stats.cross(W, 2) - m2[..., None] * stats.cross(W, 1))
    return value, grad
