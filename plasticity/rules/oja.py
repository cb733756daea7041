"""Oja's rule, ``Δw = η y (x − y w)`` (Oja 1982).

Drift ``f(W) = η (E[x y] − E[y²] w)``, for linear neurons ``η (Rw − (wᵀRw) w)`` with
``R = E[xxᵀ]``. Not a Euclidean gradient field (its Jacobian is not symmetric). For
linear neurons it never ascends the negative Rayleigh quotient ``−½ wᵀRw / wᵀw``
(Cauchy–Schwarz) nor the norm penalty ``(‖w‖² − 1)²``, but neither alone strictly:
on an eigenvector ray with ``‖w‖ ≠ 1`` the quotient's gradient is zero while the drift
is not, and on the unit sphere the penalty's is. Their sum (any positive weights) is
strictly descended wherever the drift is not zero: natural, not plain, gradient
descent. Converges to ± the unit top eigenvector of ``R`` (docs/math.md §8). For relu
neurons only the norm penalty is descended (the drift ascends the quotient at some
``w``), so only it is offered (:data:`plasticity.analysis.losses.PAIRINGS`).

E. Oja, "Simplified neuron model as a principal component analyzer",
J. Math. Biol. 15:267–273 (1982).
"""

from .base import Rule


class Oja(Rule):
    name = "oja"
    summary = "Δw = η y (x − y w): converges to the unit top eigenvector of C"
    reference = "E. Oja, J. Math. Biol. 15:267 (1982)"
    synapse_update = "w += eta * dt * y_post * (x_pre - y_post * w)"
    losses = ("rayleigh", "norm")

    def drift(self, W, state, stats, params):
        dW = stats.cross(W, 1) - stats.moment(W, 2)[..., None] * W
        return params["eta"] * dW, {}
