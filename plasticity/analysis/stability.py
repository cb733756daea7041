"""Linear stability of the expected dynamics near the end of a run.

A rule's expected drift moves the whole plastic state: the weights and, for rules with
a slow variable, that variable too (BCM's threshold: ``θ̇ = (E[y²] − θ)/τ_θ``). Whether
the state the run approaches is an attractor is a property of this **joint** drift
``F(z)``, ``z = (w, state)``, not of the weight drift alone: BCM's selective fixed
point is the same for every τ_θ, but it is stable only while the threshold is fast
enough (for two patterns and a rectified neuron, while ``η·τ_θ < 1``; beyond, a pair of
complex eigenvalues crosses the imaginary axis, a Hopf bifurcation, and (w, θ)
oscillates).

:func:`run_stability` finds the zero of ``F`` where the run ends up: SciPy's ``root``
is started from the last record, from the mean of the last half of the records and
from a few records spread over that half, and of the zeros found the one nearest that
mean is kept. The mean rather than the
last record: a converged run sits at its fixed point either way (and the mean averages
out the noise of random inputs), but on a limit cycle the last record may lie closer
to another zero of the drift (BCM's silent state w = 0, θ = 0) than to the unstable
fixed point the cycle winds around, which is where the mean lies. Then the Jacobian
there, by central finite differences, and its eigenvalues. This needs a run whose
drift is known: rate rules
with logged input statistics (the rule's expected drift, with every logged state
variable) and ``kind = "dynamics"`` runs (the system's drift). Spiking rules and bare
trajectories get ``None``.

The result (the ``"stability"`` entry of ``plasticity analyze --json``)::

    {"fixed_point": [...] or None, "max_real": float or None, "max_imag": float or None,
     "stable": bool, "neutral": int, "residual": float, "distance": float,
     "eigenvalues": [[re, im], ...], "labels": [...]}

``max_real`` is the largest real part of the eigenvalues that are not neutral,
``max_imag`` the imaginary part (≥ 0) of that leading eigenvalue (non-zero: the state
spirals in or out). An eigenvalue is **neutral** when its real part is within
``NEUTRAL_RTOL`` times the largest modulus of zero: a rectified neuron's weight from an
input that never drives it is such a direction (the drift is flat there: it neither
grows nor decays), and the central differences that straddle the rectifier's kink
leave an error of the order of their step there, hence the loose tolerance. ``stable``
means no eigenvalue has a real part above that band (the neutral ones are counted in
``neutral``; ``max_real`` is ``None`` when every eigenvalue is neutral). ``distance``
is measured from the last record.
"""

import numpy as np

__all__ = ["linear_stability", "run_stability", "NEUTRAL_RTOL", "STABILITY_MAX_N"]

#: eigenvalues with |Re λ| ≤ NEUTRAL_RTOL · max|λ| count as neutral (not unstable)
NEUTRAL_RTOL = 1e-4
#: states with more components than this are not analysed (dense Jacobian, root finding)
STABILITY_MAX_N = 400
#: records of the last half of a run used as extra starting points of the root search
TAIL_STARTS = 8
#: a root is accepted when |F(z*)|_∞ ≤ ROOT_RTOL · (1 + |J|_∞ · |z*|_∞)
ROOT_RTOL = 1e-8


def _no_fixed_point(message):
    return {"fixed_point": None, "max_real": None, "max_imag": None, "stable": None,
            "message": message}


def linear_stability(drift, last, starts=(), labels=None, reference=None):
    """Fixed point of ``drift`` nearest ``reference`` (default ``last``) and the
    eigenvalues of its Jacobian.

    Parameters
    ----------
    drift : callable
        Batched drift ``(B, n) -> (B, n)``.
    last : array_like (n,)
        The state the search starts from and measures distances to (the last record).
    starts : sequence of array_like (n,)
        Further starting points (e.g. the mean of the last records).
    labels : list of str, optional
        Names of the state components (stored with the result).
    reference : array_like (n,), optional
        Of the zeros found, the one nearest this point is kept (default ``last``).

    Returns
    -------
    dict
        See the module documentation; ``fixed_point`` is ``None`` (and so are
        ``max_real``, ``max_imag``, ``stable``) when no start converges.
    """
    from scipy.optimize import root

    from .window import finite_difference_jacobian

    last = np.asarray(last, float).ravel()
    reference = last if reference is None else np.asarray(reference, float).ravel()

    def F(z):
        return drift(z[None, :])[0]

    def jac(z):
        return finite_difference_jacobian(drift, z[None, :])[0]

    found = []
    for start in (last, *starts):
        start = np.asarray(start, float).ravel()
        if not np.all(np.isfinite(start)):
            continue
        with np.errstate(all="ignore"):
            sol = root(F, start, jac=jac, method="hybr")
        z = sol.x
        if not np.all(np.isfinite(z)):
            continue
        J = jac(z)
        residual = float(np.max(np.abs(F(z))))
        scale = 1.0 + np.max(np.abs(J)) * max(1.0, float(np.max(np.abs(z))))
        if np.all(np.isfinite(J)) and residual <= ROOT_RTOL * scale:
            found.append((float(np.linalg.norm(z - reference)), z, J, residual))
    if not found:
        return _no_fixed_point("no fixed point of the drift found from the last records")
    _, z, J, residual = min(found, key=lambda item: item[0])
    eig = np.linalg.eigvals(J)
    band = NEUTRAL_RTOL * max(float(np.max(np.abs(eig))), np.finfo(float).tiny)
    neutral = np.abs(eig.real) <= band
    lead = int(np.argmax(np.where(neutral, -np.inf, eig.real))) if not neutral.all() else None
    order = np.argsort(-eig.real)
    out = {
        "fixed_point": [float(v) for v in z],
        "max_real": None if lead is None else float(eig.real[lead]),
        "max_imag": None if lead is None else float(abs(eig.imag[lead])),
        "stable": bool(np.all(eig.real <= band)),
        "neutral": int(np.sum(neutral)),
        "residual": residual,
        "distance": float(np.linalg.norm(z - last)),
        "eigenvalues": [[float(eig.real[i]), float(eig.imag[i])] for i in order],
    }
    if labels is not None:
        out["labels"] = list(labels)
    return out


def _joint_drift(run):
    """``(drift, labels)`` of the joint state of an opened run, or ``(None, reason)``."""
    if run.is_dynamics:
        from .drift import dynamics_system

        system = dynamics_system(run)
        return system.drift, list(getattr(system, "labels", []))
    rule = run.rule
    if rule is None or rule.activity != "rate" or run.stats is None:
        return None, "no expected drift (needs a rate rule and logged input statistics)"
    from .drift import expected_drift

    layout = run.layout(with_state=True)
    stats = getattr(run.stats, "base", run.stats)   # plain moments: no memo keyed by address

    def drift(z):
        return expected_drift(rule, run.params, stats, layout, z, include_state=True)

    labels = [f"w[{p}->{q}]" for p, q in zip(run.pre, run.post)]
    labels += [f"{name}[{j}]" for name in layout.state for j in range(run.n_post)]
    return drift, labels


def run_stability(run):
    """:func:`linear_stability` of an opened run's joint expected drift, started from
    the last record, from the mean of the last half of the records and from
    ``TAIL_STARTS`` records spread over that half, keeping the zero nearest the mean;
    ``None`` when the run's drift is not known (spiking rules, bare trajectories)."""
    drift, labels = _joint_drift(run)
    if drift is None:
        return None
    T = run.n_records
    if T < 1:
        return None
    first = run.read(T - 1, T)[0]
    if first.size > STABILITY_MAX_N:
        return _no_fixed_point(f"state of {first.size} components: more than "
                              f"{STABILITY_MAX_N}, not analysed")
    tail = run.read(T // 2, T)
    centre = tail.mean(axis=0)
    picks = np.unique(np.linspace(0, len(tail) - 1, TAIL_STARTS).astype(int))
    return linear_stability(drift, first, starts=[centre, *tail[picks]], labels=labels,
                            reference=centre)
