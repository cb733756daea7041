"""Covariance rule, ``Δw = η (x − x̄)(y − ȳ)`` (Sejnowski 1977).

``x̄`` is the known mean of the inputs; ``ȳ`` a running average of the output,
``τ_avg dȳ/dt = y − ȳ``. Since ``E[x − x̄] = 0`` the drift does not depend on ``ȳ``:
``f_w = η (E[x y] − x̄ E[y])``, for linear neurons ``η C w`` with ``C`` the input
covariance: as Hebbian learning, on the centred inputs (docs/math.md §8), the exact
gradient of ``−½ Var y``. For relu neurons ``f_w = η Cov(x, σ(y))`` is not the gradient
of ``−½ Var σ(y)``; with Gaussian inputs it is ``η P(y > 0) C w`` (Stein's lemma),
natural gradient of ``−½ wᵀCw`` (loss ``input_variance``). Which candidate is offered
for which model and inputs: :data:`plasticity.analysis.losses.PAIRINGS`.
"""


from .base import Parameter, Rule


class Covariance(Rule):
    name = "covariance"
    summary = "Δw = η (x − x̄)(y − ȳ): Hebbian learning of the input covariance"
    reference = "T. J. Sejnowski, J. Math. Biol. 4:303 (1977)"
    parameters = {
        **Rule.parameters,
        "tau_avg": Parameter(1.0, "time", doc="time constant of the running average ȳ"),
    }
    state = {"ybar": "1"}
    state_time_constants = {"ybar": "tau_avg"}
    synapse_update = "w += eta * dt * (x_pre - xbar_pre) * (y_post - ybar_post)"
    post_update = "ybar += dt * (y - ybar) / tau_avg"
    losses = ("variance", "input_variance")

    def drift(self, W, state, stats, params):
        first = stats.moment(W, 1)
        dW = stats.cross(W, 1) - first[..., None] * stats.mean
        ybar = state["ybar"] if state and "ybar" in state else first
        return params["eta"] * dW, {"ybar": (first - ybar) / params["tau_avg"]}
