"""Triplet STDP (Pfister & Gerstner 2006), all-to-all interactions.

Traces (each jumps by 1 at its neuron's spike): presynaptic ``r1`` (``tau_plus``),
``r2`` (``tau_x``); postsynaptic ``o1`` (``tau_minus``), ``o2`` (``tau_y``).

- presynaptic spike:  ``w −= o1 (A2⁻ d + A3⁻ r2)`` (then ``r1, r2 += 1``);
- postsynaptic spike: ``w += r1 (A2⁺ + A3⁺ o2)`` (then ``o1, o2 += 1``);

traces read *before* their own neuron's jump; ``w`` clipped to ``[0, w_max]``.
Defaults: the **minimal all-to-all visual-cortex model** (Pfister & Gerstner 2006,
Table 3): ``A2⁺ = 0``, ``A3⁺ = 6.5e-3``, ``A2⁻ = 7.1e-3``, ``A3⁻ = 0``,
``τ_y = 114 ms``, with ``τ₊ = 16.8 ms``, ``τ₋ = 33.7 ms`` (from Bi & Poo); ``τ_x``
(unused when ``A3⁻ = 0``) = 101 ms, the full model's value.

Sliding threshold (optional, ``rho_0 > 0``): the pair-depression amplitude becomes
``A2⁻ d`` with ``d = (ȳ/ρ₀)²``, ``ȳ`` the postsynaptic rate averaged over ``tau_avg``
(Pfister & Gerstner 2006, "BCM" section), so the threshold rate slides with ȳ².
With ``rho_0 = 0`` (default), ``d = 1``.

Rate-limit expected drift, independent Poisson pre/post at ``r_x``, ``r_y``
(docs/math.md §8 with the two extra amplitudes)::

    E[ẇ] = r_x r_y (A2⁺τ₊ + A3⁺ τ₊ τ_y r_y − A2⁻ d τ₋ − A3⁻ τ₋ τ_x r_x)

so with the minimal model: LTD below the threshold rate
``θ = A2⁻ τ₋ / (A3⁺ τ₊ τ_y)`` (19.2 Hz with the defaults), LTP above. In the sliding
version ``d ≈ (r_y/ρ₀)²`` in the adiabatic limit (ȳ ≈ r_y), which is what
:meth:`Triplet.drift` uses (``ȳ`` is not logged).

Candidate loss ``triplet_bcm``: with a linear rate neuron ``y = Σ_i w_i r_{x,i}`` the
minimal drift (``A3⁻ = 0``, fixed threshold) is exactly the Euclidean gradient of the
BCM-like objective ``Φ(y) = a y³/3 − b y²/2`` with ``a = A3⁺τ₊τ_y``,
``b = A2⁻τ₋ − A2⁺τ₊``: ``∂Φ/∂w_i = r_{x,i} y (a y − b)``. The loss is ``L = −Σ_post Φ``
(:func:`bcm_objective`). With ``A3⁻ > 0`` or a sliding threshold no loss is known
(as for BCM with a slow threshold).
"""

import numpy as np

from .base import Parameter, SpikingRule


class Triplet(SpikingRule):
    name = "triplet"
    summary = "triplet STDP, all-to-all (minimal visual-cortex model): BCM-like rate dependence"
    reference = "J.-P. Pfister, W. Gerstner, J. Neurosci. 26:9673 (2006)"
    parameters = {
        "A2_plus": Parameter(0.0, constraint="nonnegative", doc="pair potentiation amplitude"),
        "A3_plus": Parameter(6.5e-3, constraint="nonnegative", doc="triplet potentiation amplitude"),
        "A2_minus": Parameter(7.1e-3, constraint="nonnegative", doc="pair depression amplitude"),
        "A3_minus": Parameter(0.0, constraint="nonnegative", doc="triplet depression amplitude"),
        "tau_plus": Parameter(0.0168, "time", doc="presynaptic pair trace r1"),
        "tau_minus": Parameter(0.0337, "time", doc="postsynaptic pair trace o1"),
        "tau_x": Parameter(0.101, "time", doc="presynaptic triplet trace r2"),
        "tau_y": Parameter(0.114, "time", doc="postsynaptic triplet trace o2"),
        "w_max": Parameter(1.0, doc="upper weight bound (w clipped to [0, w_max])"),
        "rho_0": Parameter(0.0, "rate", "nonnegative",
                           doc="sliding threshold: A2_minus × (ȳ/rho_0)²; 0 = fixed threshold"),
        "tau_avg": Parameter(1.0, "time", doc="time constant of the postsynaptic rate average ȳ"),
    }
    synapse_equations = ("dr1/dt = -r1 / tau_plus : 1 (event-driven)\n"
                         "dr2/dt = -r2 / tau_x : 1 (event-driven)\n"
                         "do1/dt = -o1 / tau_minus : 1 (event-driven)\n"
                         "do2/dt = -o2 / tau_y : 1 (event-driven)")
    on_pre = ("w = clip(w - o1 * (A2_minus * dep_post + A3_minus * r2), 0, w_max)\n"
              "r1 += 1\nr2 += 1")
    on_post = ("w = clip(w + r1 * (A2_plus + A3_plus * o2), 0, w_max)\n"
               "o1 += 1\no2 += 1")
    losses = ("triplet_bcm",)

    def post_code(self, params):
        """``(equations, spike code, initial values)`` of the postsynaptic group."""
        if params["rho_0"] > 0:
            return ("dybar/dt = -ybar / tau_avg : Hz\ndep = (ybar / rho_0)**2 : 1",
                    "ybar += 1 / tau_avg", {"ybar": params["rho_0"]})
        return "dep : 1", "", {"dep": 1.0}

    @staticmethod
    def threshold(params):
        """Threshold post rate (Hz) of the fixed-threshold rule with ``r_x``-independent
        terms only: ``(A2⁻τ₋ − A2⁺τ₊) / (A3⁺τ₊τ_y)``."""
        return ((params["A2_minus"] * params["tau_minus"] - params["A2_plus"] * params["tau_plus"])
                / (params["A3_plus"] * params["tau_plus"] * params["tau_y"]))

    def drift(self, W, state, stats, params):
        W = np.asarray(W, float)
        rx = np.asarray(stats.pre, float)[..., None, :]
        ry = np.asarray(stats.post, float)[..., :, None]
        return _triplet_drift(rx, ry, params) * np.ones_like(W), {}

    def synapse_drift(self, w, rates_pre, rates_post, params):
        return _triplet_drift(np.asarray(rates_pre, float), np.asarray(rates_post, float),
                              params) * np.ones_like(np.asarray(w, float))


def _triplet_drift(rx, ry, params):
    """The rate-limit drift for broadcastable ``r_x``, ``r_y`` (it does not depend on w)."""
    dep = (ry / params["rho_0"]) ** 2 if params["rho_0"] > 0 else 1.0
    return rx * ry * (params["A2_plus"] * params["tau_plus"]
                      + params["A3_plus"] * params["tau_plus"] * params["tau_y"] * ry
                      - params["A2_minus"] * dep * params["tau_minus"]
                      - params["A3_minus"] * params["tau_minus"] * params["tau_x"] * rx)


def bcm_objective(W, rates_pre, params, rates_post=None):
    """The triplet rule's BCM-like loss ``L = −Σ_j Φ(y_j)``, ``Φ(y) = a y³/3 − b y²/2``,
    and its gradient, for records ``W`` (B, n_post, n_pre) and presynaptic rates
    ``rates_pre`` (B, n_pre) or (n_pre,).

    ``y = W r_x`` (a linear rate neuron) unless ``rates_post`` (B, n_post) is given:
    then ``y`` is the measured rate and the gradient ``−r_x y (a y − b)`` is the
    loss's gradient with ``y`` held at its measured value (the form in which the
    rate-limit drift equals minus it exactly). Returns ``(values (B,), grad like W)``.
    """
    W = np.asarray(W, float)
    rx = np.broadcast_to(np.asarray(rates_pre, float), W.shape[:-2] + W.shape[-1:])
    a = params["A3_plus"] * params["tau_plus"] * params["tau_y"]
    b = params["A2_minus"] * params["tau_minus"] - params["A2_plus"] * params["tau_plus"]
    y = np.einsum("...ji,...i->...j", W, rx) if rates_post is None else np.asarray(rates_post, float)
    phi = a * y ** 3 / 3 - b * y ** 2 / 2
    grad = -(y * (a * y - b))[..., :, None] * rx[..., None, :]
    return -phi.sum(axis=-1), grad
