"""Pair-based STDP with synaptic traces (Song, Miller & Abbott 2000; van Rossum,
Bi & Turrigiano 2000), all-to-all spike pairing.

Traces: ``apre`` jumps by 1 at each presynaptic spike and decays with ``tau_plus``;
``apost`` jumps by 1 at each postsynaptic spike and decays with ``tau_minus``.

- at a postsynaptic spike: ``w += A_plus · f₊(w) · apre`` (potentiation);
- at a presynaptic spike:  ``w −= A_minus · f₋(w) · apost`` (depression);

``bounds = "hard"`` (additive, Song et al. 2000): ``f₊ = f₋ = w_max`` and ``w`` is
clipped to ``[0, w_max]`` — the amplitudes are fractions of ``w_max`` (Song's
``A₊ = 0.005``, ``A₋/A₊ = 1.05``). ``bounds = "soft"`` (multiplicative, as van
Rossum et al. 2000 / Gütig et al. 2003 with μ = 1): ``f₊ = w_max − w``, ``f₋ = w``.

Rate-limit expected drift for independent Poisson pre/post spike trains at rates
``r_x``, ``r_y`` (docs/math.md §8; ``E[apre] = r_x τ₊`` at a post spike)::

    E[ẇ] = r_x r_y (A₊ τ₊ f₊(w) − A₋ τ₋ f₋(w))

hard bounds: ``r_x r_y w_max (A₊τ₊ − A₋τ₋)`` (clipped at the bounds; with Song's
parameters ``A₋τ₋ > A₊τ₊``: net depression, which the input–output spike
correlations, left out here, offset for the causally effective inputs).

Losses: none known. In the rate limit the additive drift does not depend on ``w``
(a constant field, i.e. the gradient of a linear function, only while no weight
sits at a bound); the spike-timing correlation terms that make the weight
distribution bimodal have no known objective (say so in reports).
"""

import numpy as np

from .base import Choice, Parameter, SpikingRule


class STDP(SpikingRule):
    name = "stdp"
    summary = "pair STDP with traces: additive (hard bounds) or multiplicative (soft bounds)"
    reference = ("S. Song, K. D. Miller, L. F. Abbott, Nat. Neurosci. 3:919 (2000); "
                 "M. C. W. van Rossum, G. Q. Bi, G. G. Turrigiano, J. Neurosci. 20:8812 (2000)")
    parameters = {
        "A_plus": Parameter(0.005, doc="potentiation per pair, as a fraction of w_max"),
        "A_minus": Parameter(0.00525, doc="depression per pair, as a fraction of w_max (Song: 1.05 A_plus)"),
        "tau_plus": Parameter(0.020, "time", doc="presynaptic trace time constant (potentiation window)"),
        "tau_minus": Parameter(0.020, "time", doc="postsynaptic trace time constant (depression window)"),
        "w_max": Parameter(0.015, doc="upper weight bound (g_max, in units of the leak conductance)"),
        "bounds": Choice("hard", ("hard", "soft"), doc="hard: additive, clipped to [0, w_max]; "
                                                       "soft: multiplicative"),
    }
    synapse_equations = ("dapre/dt = -apre / tau_plus : 1 (event-driven)\n"
                         "dapost/dt = -apost / tau_minus : 1 (event-driven)")
    losses = ()

    def code(self, params):
        if params["bounds"] == "hard":
            dep, pot = "w_max", "w_max"
        else:
            dep, pot = "w", "(w_max - w)"
        on_pre = f"apre += 1\nw = clip(w - A_minus * {dep} * apost, 0, w_max)"
        on_post = f"apost += 1\nw = clip(w + A_plus * {pot} * apre, 0, w_max)"
        return self.synapse_equations, on_pre, on_post

    def drift(self, W, state, stats, params):
        W = np.asarray(W, float)
        rx = np.asarray(stats.pre, float)[..., None, :]
        ry = np.asarray(stats.post, float)[..., :, None]
        return _pair_drift(W, rx, ry, params) * np.ones_like(W), {}

    def synapse_drift(self, w, rates_pre, rates_post, params):
        w = np.asarray(w, float)
        return _pair_drift(w, np.asarray(rates_pre, float), np.asarray(rates_post, float),
                           params) * np.ones_like(w)


def _pair_drift(w, rx, ry, params):
    """``r_x r_y (A₊ τ₊ f₊(w) − A₋ τ₋ f₋(w))`` for broadcastable ``w``, ``r_x``, ``r_y``."""
    wmax = params["w_max"]
    if params["bounds"] == "hard":
        fp = fm = wmax
    else:
        fp, fm = wmax - w, w
    return rx * ry * (params["A_plus"] * params["tau_plus"] * fp
                      - params["A_minus"] * params["tau_minus"] * fm)
