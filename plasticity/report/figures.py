"""The figures of one run, chosen from what it holds.

:func:`run_figures` returns ``(figures, skipped)``: each figure a :class:`Figure`
(a key for the file name, a heading, a caption and the matplotlib figure), and for
each figure that does not apply or lacks its data, one line saying why (the page
lists them instead of drawing empty axes).

Titles name what is drawn, then the experiment, rule and seed on a second line;
axes carry units; a legend appears only where several lines are drawn.
"""

from dataclasses import dataclass

import numpy as np

#: at most this many lines drawn one by one (else: mean and percentile bands)
MAX_LINES = 10
#: neurons drawn in a raster
RASTER_NEURONS = 60
#: seconds of spikes in each raster window
RASTER_WINDOW = 1.0

DESCENT_COLOUR = "#2ca02c"
ASCENT_COLOUR = "#d62728"
STILL_COLOUR = "#bbbbbb"


@dataclass
class Figure:
    key: str
    heading: str
    caption: str
    fig: object


def _cap(text):
    """First letter upper-case, the rest as written (``BCM`` stays ``BCM``)."""
    return text[:1].upper() + text[1:]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _new(data, what, ncols=1, nrows=1, width=8.0, height=3.4, **kw):
    plt = _plt()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height * nrows), layout="constrained",
                             squeeze=False, **kw)
    fig.suptitle(f"{what}\n{data.title_tag}", fontsize=11)
    return fig, axes


def _legend(ax, **kw):
    """A legend only where several lines are drawn; beside the axes when it is long
    (so it never hides the data)."""
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) > 4 and "loc" not in kw:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, **kw)
    elif len(labels) > 1:
        ax.legend(fontsize=8, **kw)


def _kappa_axis(ax, values):
    """Limits of a log κ_min axis: at least a factor 2.25 wide, so that κ_min = 1 up to
    rounding is drawn as a flat line at 1, not as magnified noise."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        return
    lo, hi = values.min(), values.max()
    middle = np.sqrt(lo * hi)
    lo, hi = min(lo, middle / 1.5), max(hi, middle * 1.5)
    ax.set_ylim(lo / 1.05, hi * 1.05)
    if hi / lo < 100:
        _plain_log_ticks(ax)


def _plain_log_ticks(ax):
    """Log-scale y ticks written as plain numbers (2, 3, 10) rather than 2×10⁰."""
    from matplotlib.ticker import FuncFormatter

    formatter = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(formatter)
    ax.yaxis.set_minor_formatter(formatter)


def _weight_matrix(data):
    """(T, n_post, n_pre) of all records, or None when the weights were not kept whole."""
    W = data.weights_all
    if W is None:
        return None
    M = np.full((W.shape[0], data.n_post, data.n_pre), np.nan)
    M[:, data.post, data.pre] = W
    return M


def _component_name(data, k):
    if data.labels and k < len(data.labels):
        return data.labels[k]
    if data.n_post == 1 or data.kind != "run":
        return f"w[{data.pre[k]}]"
    return f"w[{data.post[k]}←{data.pre[k]}]"


def weights_over_time(data):
    t = data.time
    dynamics = data.is_dynamics
    what = "state over time" if dynamics else "weights over time"
    fig, axes = _new(data, what)
    ax = axes[0, 0]
    S = data.n_synapses
    if data.weights_all is not None and S <= MAX_LINES:
        for k in range(S):
            ax.plot(t, data.weights_all[:, k], lw=1, label=_component_name(data, k))
        caption = f"Every {'component' if dynamics else 'synapse'} ({S})."
        if data.kind == "run" and not dynamics and data.n_post > 1:
            caption += " w[j←i]: the synapse from input i onto neuron j."
    else:
        s = data.summary
        ax.fill_between(t, s["p05"], s["p95"], color="C0", alpha=0.18, lw=0, label="5–95th percentile")
        ax.fill_between(t, s["p25"], s["p75"], color="C0", alpha=0.35, lw=0, label="25–75th percentile")
        ax.plot(t, s["mean"], color="C0", lw=1.6, label="mean")
        for j in range(data.sample.shape[1]):
            ax.plot(t, data.sample[:, j], color="0.35", lw=0.5, alpha=0.7,
                    label=f"{data.sample.shape[1]} sampled {'components' if dynamics else 'synapses'}"
                    if j == 0 else None)
        caption = (f"{S} {'components' if dynamics else 'synapses'}: the mean and percentile bands "
                   f"over all of them at each record, and {data.sample.shape[1]} drawn at random.")
    bound = (data.params or {}).get("w_max")
    top = np.nanmax(data.summary["p95"]) if data.summary else np.nan
    # the bound is drawn when the weights come near it (else it squeezes them flat)
    if bound is not None and not dynamics and np.isfinite(top) and top > 0.5 * bound:
        ax.axhline(bound, color="k", ls=":", lw=0.8, label=f"w_max = {bound:g}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("state component" if dynamics else "weight w (dimensionless)")
    _legend(ax)
    if data.finite_records < len(t):
        caption += f" The weights stop being finite at t = {t[data.finite_records]:.4g} s."
    return Figure("weights", _cap(what), caption, fig)


def weight_histogram(data):
    if data.first is None or data.last is None:
        return "weight histogram: fewer than one record"
    dynamics = data.is_dynamics
    noun = "component" if dynamics else "weight"
    S = data.n_synapses
    if S < 16:
        what = f"initial and final {noun}s"
        fig, axes = _new(data, what)
        ax = axes[0, 0]
        x = np.arange(S)
        ax.bar(x - 0.2, data.first, 0.4, label=f"t = {data.time[0]:.3g} s (initial)")
        ax.bar(x + 0.2, data.last, 0.4, label=f"t = {data.time[-1]:.3g} s (final)")
        ax.set_xticks(x, [_component_name(data, k) for k in range(S)], rotation=45 if S > 6 else 0,
                      fontsize=8)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel(f"{noun} (dimensionless)")
        _legend(ax)
        return Figure("weight_bars", _cap(what), f"Each of the {S} {noun}s at the first and "
                      "the last record.", fig)
    finite = [r for r in (data.first, data.middle, data.last) if r is not None]
    lo = min(np.nanmin(r) for r in finite)
    hi = max(np.nanmax(r) for r in finite)
    if not np.isfinite(lo) or not np.isfinite(hi):
        return "weight histogram: the weights are not finite"
    if hi <= lo:
        hi = lo + 1.0
    bins = np.linspace(lo, hi, 41)
    if data.is_spiking:
        what = "weight histogram at the start, middle and end"
        fig, axes = _new(data, what, ncols=3, width=9.5, sharey=True)
        rows = ((data.first, 0), (data.middle, len(data.time) // 2), (data.last, len(data.time) - 1))
        for ax, (row, k) in zip(axes[0], rows):
            ax.hist(row, bins=bins, color="C0")
            ax.set_title(f"t = {data.time[k]:.3g} s", fontsize=10)
            ax.set_xlabel("weight w")
        axes[0, 0].set_ylabel("synapses")
        caption = f"All {S} weights at three records."
        if data.rule_name == "stdp" and (data.config.get("rule") or {}).get("bounds", "hard") == "hard":
            caption += (" Additive STDP with hard bounds pushes them towards 0 and w_max: the "
                        "histogram becomes U-shaped (bimodal) as the run goes on.")
        return Figure("weight_histograms", _cap(what), caption, fig)
    what = f"initial and final {noun} histogram"
    fig, axes = _new(data, what)
    ax = axes[0, 0]
    ax.hist(data.first, bins=bins, histtype="stepfilled", alpha=0.45, label=f"initial (t = {data.time[0]:.3g} s)")
    ax.hist(data.last, bins=bins, histtype="stepfilled", alpha=0.45, label=f"final (t = {data.time[-1]:.3g} s)")
    ax.set_xlabel(f"{noun} (dimensionless)")
    ax.set_ylabel("count")
    _legend(ax)
    return Figure("weight_histogram", _cap(what), f"All {S} {noun}s at the first and the last record.", fig)


def eigenvector_alignment(data):
    if data.rule_name not in ("oja", "hebbian", "covariance"):
        return None
    stats = data.stats
    if stats is None or getattr(stats, "kind", None) != "gaussian":
        return "alignment with the top eigenvector: no Gaussian input statistics in the file"
    M = _weight_matrix(data)
    if M is None:
        return "alignment with the top eigenvector: too many records × synapses to read whole"
    C = np.asarray(stats.covariance, float)
    mean = np.asarray(stats.mean, float)
    # Oja and Hebbian learn the second moment E[xxᵀ]; the covariance rule the covariance
    target = C if data.rule_name == "covariance" else C + np.outer(mean, mean)
    values, vectors = np.linalg.eigh(target)
    top, lam1 = vectors[:, -1], values[-1]
    t = data.time
    norms = np.linalg.norm(M, axis=2)                            # (T, n_post)
    with np.errstate(all="ignore"):
        cos = np.abs(M @ top) / norms
    what = "alignment with the top eigenvector and weight norm"
    fig, axes = _new(data, what, ncols=2, width=10)
    ax1, ax2 = axes[0]
    for j in range(data.n_post):
        label = f"neuron {j}" if data.n_post > 1 else None
        ax1.plot(t, cos[:, j], lw=1, color=f"C{j % 10}", label=label)
        ax2.plot(t, norms[:, j], lw=1, color=f"C{j % 10}", label=label)
    ax1.axhline(1.0, color="k", ls="--", lw=0.8, label="limit: 1")
    ax1.set_ylim(0, 1.05)
    ax1.set_xlabel("time (s)")
    ax1.set_ylabel("|cos(w, e₁)|")
    ax1.set_title("direction", fontsize=10)
    eta = (data.params or {}).get("eta")
    if data.rule_name == "oja":
        ax2.axhline(1.0, color="k", ls="--", lw=0.8, label="limit: ‖w‖ = 1")
        limit = "Oja's rule converges to ± the unit top eigenvector e₁: |cos| → 1 and ‖w‖ → 1."
    else:
        if eta is not None:
            start = np.abs(M[0] @ top)                          # (n_post,)
            for j in range(data.n_post):
                ax2.plot(t, start[j] * np.exp(eta * lam1 * (t - t[0])), color="k", ls="--", lw=0.8,
                         label="growth of the e₁ component, exp(η λ₁ t)" if j == 0 else None)
        ax2.set_yscale("log")
        limit = ("Hebbian growth is unbounded: the component along e₁ grows as exp(η λ₁ t) and "
                 "outgrows the others, so |cos| → 1 while ‖w‖ → ∞.")
    ax2.set_xlabel("time (s)")
    ax2.set_ylabel("‖w‖ (dimensionless)")
    ax2.set_title("norm", fontsize=10)
    _legend(ax1)
    _legend(ax2)
    caption = (f"e₁: the top eigenvector of the input {'covariance' if data.rule_name == 'covariance' else 'second moment E[xxᵀ]'} "
               f"(eigenvalue λ₁ = {lam1:.3g}). {limit} Final |cos| = "
               + ", ".join(f"{c:.4f}" for c in cos[-1]) + ".")
    return Figure("eigenvector", _cap(what), caption, fig)


def _transfer(y, kind):
    if kind in ("relu", "rectified", "rectified_linear"):
        return np.maximum(y, 0.0)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-y))
    return y


def bcm_selectivity(data):
    if data.rule_name != "bcm":
        return None
    stats = data.stats
    if stats is None or getattr(stats, "patterns", None) is None:
        return "BCM responses to each pattern: the inputs are not patterns"
    M = _weight_matrix(data)
    if M is None:
        return "BCM responses: too many records × synapses to read whole"
    P = np.asarray(stats.patterns, float)
    p = np.asarray(stats.probabilities if stats.probabilities is not None else
                   np.full(len(P), 1.0 / len(P)), float)
    Y = _transfer(np.einsum("tjn,kn->tjk", M, P), getattr(stats, "transfer", "linear"))  # (T, n_post, K)
    t = data.time
    theta = data.state.get("theta")
    figures = []
    neurons = range(min(data.n_post, 3))
    for j in neurons:
        tag = f" (neuron {j})" if data.n_post > 1 else ""
        what = f"BCM: responses to each pattern, threshold and selectivity{tag}"
        fig, axes = _new(data, what, ncols=3, width=12, height=3.6)
        ax1, ax2, ax3 = axes[0]
        for k in range(P.shape[0]):
            ax1.plot(t, Y[:, j, k], lw=1, label=f"pattern {k} (p = {p[k]:.2g})")
        ax1.set_xlabel("time (s)")
        ax1.set_ylabel("response y (dimensionless)")
        ax1.set_title("response to each pattern", fontsize=10)
        _legend(ax1)
        second = Y[:, j, :] ** 2 @ p
        ax2.plot(t, second, lw=1, color="C1", label="E[y²] over the patterns")
        if theta is not None:
            ax2.plot(t, theta[:, j], lw=1, color="C0", label="θ (sliding threshold)")
        ax2.set_xlabel("time (s)")
        ax2.set_ylabel("θ, E[y²] (dimensionless)")
        ax2.set_title("threshold", fontsize=10)
        _legend(ax2)
        with np.errstate(all="ignore"):
            peak = Y[:, j, :].max(axis=1)
            selectivity = np.where(peak > 0, 1.0 - (Y[:, j, :] @ p) / peak, np.nan)
        ax3.plot(t, selectivity, lw=1, color="C2")
        ax3.set_ylim(0, 1.02)
        ax3.set_xlabel("time (s)")
        ax3.set_ylabel("selectivity 1 − E[y]/max y")
        ax3.set_title("selectivity", fontsize=10)
        winner = int(np.argmax(Y[-1, j, :]))
        caption = ("Final responses: " + ", ".join(f"{v:.3g}" for v in Y[-1, j, :])
                   + f"; the neuron prefers pattern {winner}. Selectivity 1 − E[y]/max y "
                   f"(0: equal responses, 1 − p: responds to one pattern only) ends at "
                   f"{selectivity[-1]:.3f}. θ relaxes towards E[y²] with time constant τ_θ = "
                   f"{(data.params or {}).get('tau_theta', float('nan')):.3g} s: it tracks E[y²] when "
                   "τ_θ is short against the weights' time scale, and lags (and can oscillate) when not.")
        figures.append(Figure(f"bcm{j}", _cap(what), caption, fig))
    return figures


def raster(data):
    if not data.spikes:
        if data.is_spiking:
            return "raster: no spikes in the file (record.spikes = false)"
        return None
    populations = list(data.spikes)
    t_end = float(data.time[-1]) if len(data.time) else 0.0
    width = min(RASTER_WINDOW, max(t_end / 2, 1e-3))
    windows = [(float(data.time[0]), float(data.time[0]) + width), (t_end - width, t_end)]
    what = "spike raster at the start and the end"
    fig, axes = _new(data, what, ncols=2, nrows=len(populations), width=10, height=2.8)
    rng = np.random.default_rng(0)
    notes = []
    for r, population in enumerate(populations):
        ts, idx = data.spikes[population]
        n = int(idx.max()) + 1 if idx.size else 0
        chosen = np.sort(rng.choice(n, size=RASTER_NEURONS, replace=False)) if n > RASTER_NEURONS else np.arange(n)
        row_of = np.full(max(n, 1), -1)
        row_of[chosen] = np.arange(chosen.size)
        for c, (a, b) in enumerate(windows):
            ax = axes[r, c]
            sel = (ts >= a) & (ts < b) & (row_of[idx] >= 0) if n else np.zeros(0, bool)
            ax.plot(ts[sel], row_of[idx[sel]], "|", ms=3, color="k", mew=0.6)
            ax.set_xlim(a, b)
            ax.set_ylim(-1, max(chosen.size, 1))
            ax.set_ylabel(f"{population[:-1] if population.endswith('s') else population} index")
            if r == 0:
                ax.set_title(("start" if c == 0 else "end") + f": {a:.3g}–{b:.3g} s", fontsize=10)
            if r == len(populations) - 1:
                ax.set_xlabel("time (s)")
        if n > RASTER_NEURONS:
            notes.append(f"{RASTER_NEURONS} of {n} {population}")
        if population in data.spikes_truncated:
            notes.append(f"{population}: the first {ts.size} of {data.spikes_truncated[population]} spikes read")
    caption = (f"Windows of {width:.3g} s at the start and the end of the run"
               + (f" ({'; '.join(notes)} drawn)" if notes else "") + ".")
    return Figure("raster", _cap(what), caption, fig)


def rates(data):
    if data.rates_pre is None and data.rates_post is None:
        if data.is_spiking:
            return "input and output rates: no /rates in the file"
        return None
    t = data.time
    what = "input and output firing rates"
    panels = [(data.rates_pre, "inputs"), (data.rates_post, "outputs")]
    if (data.rates_pre is not None and data.rates_post is not None
            and data.rates_pre.shape == data.rates_post.shape
            and np.array_equal(data.rates_pre, data.rates_post, equal_nan=True)):
        # a recurrent network: the inputs of the plastic synapses are its own neurons
        what, panels = "firing rates of the network's neurons", [(data.rates_post, "neurons")]
    fig, axes = _new(data, what, ncols=len(panels), width=5 * len(panels) + 0.5)
    for ax, (R, name) in zip(axes[0], panels):
        if R is None or R.shape[1] == 0:
            ax.set_visible(False)
            continue
        if R.shape[1] <= MAX_LINES:
            for j in range(R.shape[1]):
                ax.plot(t, R[:, j], lw=1, label=f"{'input' if name == 'inputs' else 'neuron'} {j}")
            _legend(ax)
        else:
            with np.errstate(all="ignore"):
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    lo, mid, hi = np.nanpercentile(R, [5, 50, 95], axis=1)
                    mean = np.nanmean(R, axis=1)
            ax.fill_between(t, lo, hi, color="C0", alpha=0.25, lw=0, label="5–95th percentile")
            ax.plot(t, mean, color="C0", lw=1.4, label="mean")
            _legend(ax)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("rate (Hz)")
        ax.set_title(f"{name} ({R.shape[1]})", fontsize=10)
    interval = np.median(np.diff(t)) if len(t) > 1 else float("nan")
    caption = (f"Spike counts over each record interval ({interval:.3g} s) divided by its length. "
               f"Mean output rate over the last half: "
               f"{np.nanmean(data.rates_post[len(t) // 2:]) if data.rates_post is not None else float('nan'):.3g} Hz.")
    return Figure("rates", _cap(what), caption, fig)


def triplet_threshold(data):
    if data.rule_name != "triplet":
        return None
    if data.rates_post is None or data.rates_pre is None:
        return "triplet dw/dt against the post rate: no /rates in the file"
    M = _weight_matrix(data)
    if M is None:
        return "triplet dw/dt against the post rate: too many records × synapses to read whole"
    params = data.params or {}
    t = data.time
    ry = np.nanmean(data.rates_post[1:], axis=0)                 # (n_post,)
    rx = float(np.nanmean(data.rates_pre[1:]))
    w_max = params.get("w_max", np.inf)
    slopes = []
    for j in range(data.n_post):
        w = np.nanmean(M[:, j, :], axis=1)
        # fit the slope only while no synapse of the neuron sits at a bound
        free = np.all((M[:, j, :] > 0) & (M[:, j, :] < w_max), axis=1)
        stop = int(np.argmin(free)) if not free.all() else len(t)
        stop = max(stop, 2)
        slopes.append(np.polyfit(t[:stop], w[:stop], 1)[0])
    slopes = np.array(slopes)
    grid = np.linspace(0.0, max(ry.max() * 1.1, 1.0), 200)
    a = params["A3_plus"] * params["tau_plus"] * params["tau_y"]
    d = (grid / params["rho_0"]) ** 2 if params.get("rho_0", 0) > 0 else 1.0
    predicted = rx * grid * (params["A2_plus"] * params["tau_plus"] + a * grid
                             - params["A2_minus"] * d * params["tau_minus"]
                             - params["A3_minus"] * params["tau_minus"] * params["tau_x"] * rx)
    what = "triplet rule: weight change against the postsynaptic rate"
    fig, axes = _new(data, what)
    ax = axes[0, 0]
    ax.plot(grid, predicted, color="k", lw=1, label=f"expected drift at r_x = {rx:.3g} Hz")
    ax.plot(ry, slopes, "o", color="C3", label="measured (slope of the mean weight)")
    ax.axhline(0, color="0.5", lw=0.5)
    caption = ("Each point: one postsynaptic neuron, its mean rate over the run and the slope "
               "of its mean weight (fitted while no weight sits at a bound). ")
    if params.get("rho_0", 0) == 0:
        from ..rules.triplet import Triplet

        theta = Triplet.threshold(params)
        ax.axvline(theta, color="C0", ls="--", lw=1, label=f"threshold {theta:.3g} Hz")
        caption += f"Predicted threshold: {theta:.3g} Hz (LTD below, LTP above)."
    ax.set_xlabel("postsynaptic rate r_y (Hz)")
    ax.set_ylabel("dw/dt (1/s)")
    _legend(ax)
    return Figure("triplet", _cap(what), caption, fig)


def _shade(ax, t, descent, moving):
    """Shade each record interval: descent (green), not descent (red), not moving (grey)."""
    if len(t) < 2:
        return
    edges = np.concatenate([[t[0]], (t[1:] + t[:-1]) / 2, [t[-1]]])
    kind = np.where(moving == 0, 2, np.where(descent == 1, 0, 1))
    colours = (DESCENT_COLOUR, ASCENT_COLOUR, STILL_COLOUR)
    start = 0
    for k in range(1, len(kind) + 1):
        if k == len(kind) or kind[k] != kind[start]:
            ax.axvspan(edges[start], edges[k], color=colours[kind[start]], alpha=0.12, lw=0)
            start = k


def analysis_panels(data):
    if not data.analysis:
        if data.analysis_doc is not None:
            return "certificate over time: no loss was certified (the rule has no known loss)"
        return "certificate over time: the file holds no /analysis and could not be analysed"
    out = []
    names = [n for n, a in data.analysis.items() if "psi_deg" in a and "time" in a]
    if not names:
        return "certificate over time: /analysis holds no per-record ψ"
    what = "certificate over time: loss, ψ and κ_min"
    fig, axes = _new(data, what, ncols=3, nrows=len(names), width=12, height=2.7)
    for r, name in enumerate(names):
        a = data.analysis[name]
        t = np.asarray(a["time"], float)
        descent = np.asarray(a.get("descent", np.ones_like(t)))
        moving = np.asarray(a.get("moving", np.ones_like(t)))
        verdict = a["attrs"].get("verdict", "")
        ax_loss, ax_psi, ax_kappa = axes[r]
        loss = np.asarray(a.get("loss", np.full_like(t, np.nan)), float)
        if np.any(np.isfinite(loss)):
            ax_loss.plot(t, loss, lw=1, color="C0")
        else:
            ax_loss.text(0.5, 0.5, "loss values not stored", ha="center", va="center",
                         transform=ax_loss.transAxes, fontsize=9)
        ax_loss.set_ylabel(f"{name}\nloss", fontsize=9)
        ax_psi.plot(t, a["psi_deg"], lw=0.8, color="C1")
        ax_psi.axhline(90, color="k", ls="--", lw=0.7)
        ax_psi.set_ylim(0, 180)
        ax_psi.set_ylabel("ψ (degrees)")
        kappa = np.asarray(a.get("kappa_min", np.full_like(t, np.nan)), float)
        kappa = np.where(np.isfinite(kappa) & (kappa > 0), kappa, np.nan)
        if np.any(np.isfinite(kappa)):
            ax_kappa.semilogy(t, kappa, lw=0.8, color="C2")
            _kappa_axis(ax_kappa, kappa)
        else:
            ax_kappa.text(0.5, 0.5, "no descending record", ha="center", va="center",
                          transform=ax_kappa.transAxes, fontsize=9)
        ax_kappa.set_ylabel("κ_min")
        for ax in (ax_loss, ax_psi, ax_kappa):
            _shade(ax, t, descent, moving)
        ax_psi.set_title(f"{name}: {verdict}", fontsize=10)
        if r == len(names) - 1:
            for ax in axes[r]:
                ax.set_xlabel("time (s)")
    caption = ("One row per certified loss. Background: green where the record descends the "
               "loss (ψ < 90°), red where it does not, grey where the drift is negligible. "
               "The dashed line is ψ = 90°; κ_min = (1 + sin ψ)/(1 − sin ψ) is drawn where the "
               "record descends.")
    out.append(Figure("certificate", _cap(what), caption, fig))
    sample = _sample_path(data, names)
    if sample is not None:
        out.append(sample)
    spectrum = _metric_spectrum(data, names)
    out.append(spectrum)
    return out


def _sample_path(data, names):
    rows = []
    for name in names:
        a = data.analysis[name]
        arrays = {k[len("sample_path_"):]: np.asarray(v, float) for k, v in a.items()
                  if k.startswith("sample_path_") and isinstance(v, np.ndarray) and v.ndim == 1
                  and v.dtype.kind in "fiub"}
        x = arrays.pop("time", None)
        arrays = {k: v for k, v in arrays.items() if v.size and np.any(np.isfinite(v))}
        if arrays:
            rows.append((name, x, arrays))
    if not rows:
        return None
    what = "along the path: windows of the simulated weight changes"
    fig, axes = _new(data, what, nrows=len(rows), width=9, height=2.8)
    for (name, x, arrays), ax in zip(rows, axes[:, 0]):
        for key, v in arrays.items():
            xs = x if x is not None and x.size == v.size else np.arange(v.size)
            ax.plot(xs, v, lw=1, marker="." if v.size < 60 else None, label=key.replace("_", " "))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("time (s)" if x is not None else "window")
        ax.set_ylabel("per window")
        _legend(ax)
    return Figure("sample_path", _cap(what), "The per-window statistics stored by "
                  "`plasticity analyze` for the sample path (the weight changes the simulation made).",
                  fig)


def _metric_spectrum(data, names):
    fitted = [(n, data.analysis[n]["constant_metric"]) for n in names
              if isinstance(data.analysis[n].get("constant_metric"), np.ndarray)
              and data.analysis[n]["constant_metric"].ndim == 2]
    if not fitted:
        return "spectrum of the constant metric: none was fitted (more than 200 weights, or no loss descended)"
    what = "spectrum of the fitted constant metric"
    fig, axes = _new(data, what, width=7)
    ax = axes[0, 0]
    for name, M in fitted:
        values = np.sort(np.linalg.eigvalsh((M + M.T) / 2))[::-1]
        positive = np.where(values > 0, values, np.nan)
        ax.semilogy(np.arange(1, values.size + 1), positive, "o-", ms=3, label=name)
    ax.set_xlabel("eigenvalue index")
    ax.set_ylabel("eigenvalue of M (1/s)")
    _legend(ax)
    return Figure("metric_spectrum", _cap(what),
                  "Eigenvalues of the constant SPD metric M that best maps minus the gradient "
                  "onto the drift (all equal: plain gradient descent; non-positive ones are not drawn).", fig)


def phase_portrait(data):
    """The trajectory in the plane of two components when it recurs (or is a 2-3 component
    dynamics state): the eye sees the loop that no loss allows."""
    doc = data.analysis_doc or {}
    rec = doc.get("recurrence")
    small = data.weights_all is not None and data.n_synapses <= 4
    if not small or not (rec or data.is_dynamics or "theta" in data.state):
        return None
    W = data.weights_all
    t = data.time
    columns = [(W[:, k], _component_name(data, k)) for k in range(W.shape[1])]
    if "theta" in data.state:
        columns.append((data.state["theta"][:, 0], "θ"))
    if len(columns) < 2:
        return None
    # the plane of the two components that move most over the second half (where a
    # limit cycle or a return shows), in their original order
    late = len(t) // 2
    spread = [np.nanstd(c[late:]) for c, _ in columns]
    first, second = sorted(np.argsort(spread)[-2:])
    (x, xl), (y, yl) = columns[first], columns[second]
    what = "trajectory in the state plane"
    fig, axes = _new(data, what, width=6, height=4.2)
    ax = axes[0, 0]
    points = ax.scatter(x, y, c=t, s=3, cmap="viridis")
    ax.plot(x, y, lw=0.4, color="0.6", zorder=0)
    fig.colorbar(points, ax=ax, label="time (s)")
    caption = f"{yl} against {xl}, coloured by time."
    if rec:
        for key, marker, label in (("t_first", "s", "first visit"), ("t_return", "*", "return")):
            k = int(np.argmin(np.abs(t - rec[key])))
            ax.plot(x[k], y[k], marker, color="C3", ms=9, label=f"{label} (t = {rec[key]:.3g} s)")
        caption += " The marked return closes a loop: no loss decreases along it."
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    _legend(ax)
    return Figure("phase", _cap(what), caption, fig)


FIGURES = (weights_over_time, weight_histogram, eigenvector_alignment, bcm_selectivity,
           raster, rates, triplet_threshold, phase_portrait, analysis_panels)


def run_figures(data):
    """``(list of Figure, list of str)``: the figures that apply, and why the others are
    left out (only those that would apply to this kind of run)."""
    figures, skipped = [], []
    for make in FIGURES:
        result = make(data)
        for item in result if isinstance(result, list) else [result]:
            if item is None:
                continue
            if isinstance(item, str):
                skipped.append(item)
            else:
                figures.append(item)
    return figures, skipped
