"""Plain Hebbian learning, ``Δw = η y x`` (Hebb 1949).

Drift ``f(W) = η E[x σ(y)]``; for linear neurons ``η C w``, the Euclidean gradient of
``½ E[y²]`` (so of ``½ wᵀCw`` for zero-mean inputs): exact gradient *ascent* of the
output variance, i.e. descent of the loss ``variance = −½ E[y²]`` (docs/math.md §8). The
weights grow without bound, which the divergence guard catches.
"""

from .base import Rule


class Hebbian(Rule):
    name = "hebbian"
    summary = "Δw = η y x: grows along the top principal component, without bound"
    reference = "D. O. Hebb, The Organization of Behavior (1949)"
    synapse_update = "w += eta * dt * y_post * x_pre"
    losses = ("variance",)

    def drift(self, W, state, stats, params):
        return params["eta"] * stats.cross(W, 1), {}
