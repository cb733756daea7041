"""Oja's rule, ``Δw = η y (x − y w)`` (Oja 1982).

Drift ``f(W) = η (E[x y] − E[y²] w)``, for linear neurons ``η (Cw − (wᵀCw) w)``. Not
a Euclidean gradient field (its Jacobian is not symmetric), but it decreases the
negative Rayleigh quotient ``−½ wᵀCw / wᵀw`` and the norm penalty
``(‖w‖² − 1)²`` wherever it moves: natural, not plain, gradient descent. Converges to
± the unit top eigenvector of ``C`` (docs/math.md §8).

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
