"""The drift ``f(w) = E[Δw | w]/Δt`` at logged records (docs/math.md notation, §4).

Three ways to get it, named as in the JSON document of ``plasticity analyze --json``:

- ``expected``: exactly, from the rule's ``drift(W, state, stats, params)`` and the
  logged input statistics (:func:`expected_drift`);
- ``window``: from weight differences over a window of ``h`` records,
  ``f_k = (w_{k+h} − w_k)/(t_{k+h} − t_k)`` (:func:`window_drift`), with ``h`` chosen
  from the data (:func:`choose_window`) unless given. The matching gradient is the
  mean-value gradient over the same segment (docs/math.md §4,
  :func:`plasticity.analysis.losses.mean_value_gradient`), so that descent of a
  record is exactly ``L(w_{k+h}) < L(w_k)``;
- ``given``: a ``/drift`` dataset supplied with the trajectory.
"""

import numpy as np

from ..errors import BadInput

__all__ = ["expected_drift", "window_drift", "choose_window", "slaved_state",
           "SEPARATION"]


#: a plastic state is fast (slaved to its fixed point) when its time constant is below
#: this fraction of the weights' own time scale
SEPARATION = 0.1


def slaved_state(rule, params, weight_time_scale):
    """Names of the rule's state variables that relax much faster than the weights move:
    time constant below ``SEPARATION`` (0.1) times ``weight_time_scale``, the weights'
    own fastest time scale (:func:`plasticity.analysis.meanfield.weight_time_scale`;
    :func:`run_weight_time_scale` for a run).

    Such a variable (e.g. BCM's θ with ``tau_theta`` = 50 ms while the weights move on
    a scale of seconds) is a fast variable: on the time scale of the weights it sits at
    its fixed point (θ = E[y²]), and its logged value is one noisy sample of a low-pass
    filter. The expected drift of the weights is then the adiabatic limit, with the
    state at its fixed point: the rule's ``drift`` is called without that state
    (Tikhonov's theorem; for BCM, Intrator & Cooper 1992's fast-threshold objective).
    The record interval plays no part: logging more or less often does not change which
    variables are fast.
    """
    if rule is None or weight_time_scale is None or not weight_time_scale > 0:
        return ()
    taus = getattr(rule, "state_time_constants", {})
    return tuple(name for name, key in taus.items()
                 if key in (params or {}) and params[key] < SEPARATION * weight_time_scale)


def expected_drift(rule, params, stats, layout, w, include_state=None):
    """Expected drift of ``rule`` at the flattened records ``w`` (B, layout.size).

    Parameters
    ----------
    rule : plasticity.rules.Rule
    params : dict
        The rule's parameters in SI (``rule.resolve`` output).
    stats : InputStats
    layout : Layout
        If ``layout.state`` names the rule's state variables, their logged values are
        passed to the rule (e.g. BCM's θ); otherwise the rule gets ``state=None``
        (for BCM: the fast-threshold limit θ = E[σ(y)²]).
    w : ndarray, shape (B, layout.size)
    include_state : bool, optional
        Whether the state part of the drift fills the state entries of the result
        (default: yes when the layout has state entries).

    Returns
    -------
    ndarray, shape (B, layout.size)
    """
    if not layout.state and hasattr(stats, "pre") and hasattr(rule, "synapse_drift"):
        # spiking rules: per synapse, from the rates of its two neurons (O(S), where the
        # dense W of a sparse network would be n_post × n_pre)
        pre_rates, post_rates = np.asarray(stats.pre, float), np.asarray(stats.post, float)
        S = layout.n_synapses
        f = rule.synapse_drift(np.asarray(w, float)[:, :S], pre_rates[..., layout.pre],
                               post_rates[..., layout.post], params)
        if f is not None:
            return f
    W, state = layout.dense(w)
    dW, dstate = rule.drift(W, state or None, stats, params)
    if include_state is False:
        dstate = None
    return layout.flat(dW, dstate)


def window_drift(time, weights, window):
    """``f_k = (w_{k+h} − w_k)/(t_{k+h} − t_k)`` for k = 0 … T−h−1.

    Returns ``(f, start, end)``: the drift (T−h, n) and the segment end points
    ``w_k`` and ``w_{k+h}``.
    """
    time = np.asarray(time, float)
    weights = np.asarray(weights, float)
    h = int(window)
    if h < 1 or h >= len(time):
        raise ValueError(f"window of {h} records does not fit a trajectory of {len(time)}")
    start = weights[:-h]
    end = weights[h:]
    dt = (time[h:] - time[:-h])[:, None]
    return (end - start) / dt, start, end


def choose_window(time, weights, snr=3.0, max_fraction=0.1):
    """Smallest window ``h`` (a power of two) over which the drift displacement
    dominates the noise of single steps.

    The local per-step noise is estimated from second differences,
    ``r_k = ‖w_{k+1} − 2w_k + w_{k−1}‖/√2`` (``≈ σ√n`` for independent increments of
    standard deviation σ per component; for a smooth trajectory it is the tiny
    curvature term instead), the displacement over ``h`` steps from
    ``‖w_{k+h} − w_k‖``; the first ``h`` with median ratio
    ``‖w_{k+h} − w_k‖ / (r_k √h) ≥ snr`` wins, capped at ``max_fraction`` of the
    records (at least 1). A deterministic trajectory gets ``h = 1``. Local estimates
    keep the choice right when the scale of the weights changes along the run.
    """
    weights = np.asarray(weights, float)
    T = weights.shape[0]
    if T < 4:
        return 1
    noise = np.linalg.norm(weights[2:] - 2 * weights[1:-1] + weights[:-2], axis=1) / np.sqrt(2.0)
    cap = max(1, int(max_fraction * T))
    h = 1
    while True:
        m = min(T - h, noise.size)
        disp = np.linalg.norm(weights[h:h + m] - weights[:m], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(noise[:m] > 0, disp / (noise[:m] * np.sqrt(h)), np.inf)
        if np.median(ratio) >= snr or 2 * h > cap:
            return h
        h *= 2


def dynamics_system(run):
    """The :class:`plasticity.systems.System` of a dynamics run (from its ``/config``)."""
    from ..systems import system_from_section

    try:
        return system_from_section(run.config["dynamics"], run.config.get("seed", 0))
    except Exception as error:   # ConfigError and anything a damaged config raises
        raise BadInput(f"{run.path}: dynamics /config unusable ({str(error).splitlines()[0]})") from None


def window_for(run, window):
    """The window (records) of the window drift estimator: ``window`` if given, else
    chosen from a column subsample of the records (bounded memory)."""
    if window is not None:
        return int(window)
    step = max(1, run.n_synapses // 256)
    # copies: a strided view would keep each whole chunk alive (memory ∝ records)
    parts = [run.weights(a, b)[:, ::step].copy() for a, b in run.chunks()]
    return choose_window(run.time, np.concatenate(parts))
