"""The drift estimated over seeds: ``plasticity analyze RUN1.h5 RUN2.h5 … --drift ensemble``.

N runs of one config that differ only in the seed, started from the same weights with
the same input statistics, differ only in the noise the simulation drew. At each
record time k the mean over seeds of the weight differences,

    F_k = mean_s (w^s_{k+h} − w^s_k) / (t_{k+h} − t_k),

estimates the expected drift ``E[Δw | w]/Δt`` along the mean path
``w̄_k = mean_s w^s_k`` with a noise √N smaller than one run's; its standard error
per component is the standard deviation over seeds divided by √N. The certificate is
run on ``F`` against the mean-value gradient of each loss over the segments
``w̄_k → w̄_{k+h}`` (docs/math.md §4), and its summary numbers get bootstrap intervals
over seeds: the seeds are resampled with replacement ``BOOTSTRAP`` times and the
certificate recomputed (percentile intervals at ``LEVEL``).

The mean path is close to a solution of the drift's ODE while the seeds stay close to
each other (the spread enters at second order, through the curvature of the drift);
the JSON reports that spread (``spread``: the median over records of the seeds' root
mean square distance to the mean path, relative to the mean path's norm).

Each record's ``F_k·ḡ_k`` is also tested against the spread over seeds of
``f^s_k·ḡ_k`` (t test, N − 1 degrees of freedom; Holm's correction over the records at
family level ALPHA): ``record_tests`` gives the fractions of records with significant
descent, significant ascent, and undecided, and ``not-descent`` is said only where an
ascent is significant (``undecided`` otherwise, the pointwise verdict kept in
``pointwise_verdict``).

Everything is held in memory (N × records × weights floats).
"""

import tomllib

import numpy as np

from ..errors import BadInput
from .certificate import Certifier
from .drift import choose_window, window_drift
from scipy.stats import t as student_t

from .losses import mean_value_gradient
from ..io.reader import open_run, read_input_arrays
from .sample_path import ALPHA, holm

__all__ = ["analyze_ensemble", "check_same_config", "BOOTSTRAP", "LEVEL"]

#: bootstrap resamples of the seeds
BOOTSTRAP = 200
#: level of the bootstrap intervals
LEVEL = 0.95


def _flatten(config, prefix=""):
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def check_same_config(runs):
    """BadInput naming the first config key (other than ``seed``) where a run differs
    from the first, or the first run lacking a config."""
    first = runs[0]
    reference = _flatten(first.config)
    if not reference:
        raise BadInput(f"{first.path}: has no /config: --drift ensemble needs runs of one config")
    for run in runs[1:]:
        other = _flatten(run.config)
        for key in sorted(set(reference) | set(other)):
            if key == "seed":
                continue
            if reference.get(key) != other.get(key):
                raise BadInput(f"{run.path}: config key {key!r} is {other.get(key)!r}, not "
                               f"{reference.get(key)!r} as in {first.path}; --drift ensemble needs "
                               "runs that differ only in the seed")


def _inputs(path):
    return read_input_arrays(path)


def _same_arrays(a, b):
    if set(a) != set(b):
        return False
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.shape != y.shape or not np.array_equal(x, y):
            return False
    return True


def _check_shared_start(runs, paths):
    first = runs[0]
    reference = _inputs(paths[0])
    w0 = first.weights(0, 1)
    for run, path in zip(runs[1:], paths[1:]):
        if run.n_records != first.n_records or not np.allclose(run.time, first.time):
            raise BadInput(f"{run.path}: its records (times) differ from {first.path}'s")
        if not _same_arrays(reference, _inputs(path)):
            raise BadInput(f"{run.path}: its input statistics (/inputs) differ from {first.path}'s "
                           "(the seed draws a random input rotation: set inputs.rotation = \"identity\")")
        if not np.allclose(run.weights(0, 1), w0, rtol=0, atol=1e-12):
            raise BadInput(f"{run.path}: its initial weights differ from {first.path}'s (the seed "
                           "draws them: set network.init.distribution = \"constant\"); the mean over "
                           "seeds estimates the drift only from a shared start")


def _certificate(time, W, h, losses, with_tests=False):
    """Certifiers of the ensemble drift of weights W (N, T, S) against each loss; with
    ``with_tests`` also, per loss, the record-wise tests of ``F·ḡ`` against the spread
    of the seeds' ``f_s·ḡ`` (t test with N − 1 degrees of freedom, Holm at ALPHA)."""
    mean = W.mean(axis=0)
    f, w0, w1 = window_drift(time, mean, h)
    # the mean of the seeds' window drifts is the window drift of the mean path
    out, tests = [], []
    N = W.shape[0]
    for loss in losses:
        gbar, v0, _ = mean_value_gradient(loss, w0, w1)
        cert = Certifier(mean.shape[1])
        cert.add(f, gbar, v0, time[:-h])
        out.append(cert)
        if with_tests:
            each = (W[:, h:] - W[:, :-h]) / (time[h:] - time[:-h])[None, :, None]
            proj = np.einsum("ntS,tS->nt", each, gbar)
            m, se = proj.mean(0), proj.std(0, ddof=1) / np.sqrt(N)
            with np.errstate(divide="ignore", invalid="ignore"):
                tstat = np.where(se > 0, m / np.where(se > 0, se, 1.0), np.sign(m) * np.inf)
            desc = holm(student_t.cdf(tstat, N - 1), ALPHA)
            asc = holm(student_t.sf(tstat, N - 1), ALPHA)
            K = tstat.size
            tests.append({"records": int(K), "descent_significant": float(desc.mean()),
                          "ascent_significant": float(asc.mean()),
                          "undecided": float(1.0 - desc.mean() - asc.mean()), "alpha": ALPHA,
                          "correction": "holm"})
    return out, f, mean, tests


def _consistency(runs):
    """The consistency test of each run (rate rules with input statistics), combined over
    the N runs with Bonferroni's correction: ``p_value = min(1, N · min_s p_s)``."""
    from .grounding import ConsistencyPass
    from .pipeline import certify_run

    results = []
    for run in runs:
        if run.rule is None or not run.has_stats:
            return None
        test = ConsistencyPass(run)
        certify_run(run, [], "expected", passes=[test])
        results.append(test.result())
    if any(r is None for r in results):
        return None
    p = min(1.0, len(results) * min(r["p_value"] for r in results))
    return {"p_value": p, "consistent": bool(p >= 0.01), "per_seed_p": [r["p_value"] for r in results],
            "drift_ratio": [r["drift_ratio"] for r in results], "window": results[0]["window"],
            "method": "the test of each run (see plasticity analyze RUN), Bonferroni over the runs"}


def _median_or_nan(x):
    x = np.asarray(x, float)
    return float(np.median(x)) if x.size else float("nan")


def analyze_ensemble(paths, loss_specs=None, window=None, bootstrap=BOOTSTRAP, seed=0):
    """The JSON document of ``plasticity analyze RUN1 RUN2 … --drift ensemble``.

    Raises
    ------
    BadInput
        Fewer than 2 files; configs that differ in more than the seed; different
        records, input statistics or initial weights.
    """
    from .pipeline import _losses_for

    paths = [str(p) for p in paths]
    if len(paths) < 2:
        raise BadInput("--drift ensemble needs at least 2 run files (one per seed)")
    runs = [open_run(p) for p in paths]
    try:
        for run in runs:
            if run.source != "run":
                raise BadInput(f"{run.path}: not a run file of this project (no /config)")
        check_same_config(runs)
        _check_shared_start(runs, paths)
        first = runs[0]
        losses, _ = _losses_for(first, loss_specs)
        if not losses:
            raise BadInput(f"{first.path}: rule {first.rule_name!r} has no known loss; pass --loss")
        W = np.stack([run.weights(0, run.n_records) for run in runs])
        consistency = _consistency(runs)
        time = np.asarray(first.time, float)
        seeds = [run.config.get("seed") for run in runs]
        rule, model, status = first.rule_name, first.model, [run.status for run in runs]
    finally:
        for run in runs:
            run.close()
    N, T, S = W.shape
    if len(set(seeds)) < N:
        raise BadInput(f"the {N} runs have only {len(set(seeds))} different seeds")
    h = int(window) if window else choose_window(time, W.mean(axis=0))
    if T < h + 2:
        raise BadInput(f"{paths[0]}: {T} records are too few for a window of {h}")
    certifiers, F, mean, tests = _certificate(time, W, h, losses, with_tests=True)
    certs = [c.finish(loss.name, "ensemble") for c, loss in zip(certifiers, losses)]
    # standard error of the ensemble drift, per record: ‖sd over seeds‖ / √N against ‖F‖
    each = (W[:, h:] - W[:, :-h]) / (time[h:] - time[:-h])[None, :, None]
    se = np.linalg.norm(each.std(axis=0, ddof=1), axis=1) / np.sqrt(N)
    fn = np.linalg.norm(F, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_se = np.where(fn > 0, se / fn, np.inf)
    spread = np.linalg.norm(W - mean[None], axis=2).mean(axis=0) / np.maximum(np.linalg.norm(mean, axis=1), 1e-300)
    # bootstrap over seeds
    rng = np.random.default_rng(seed)
    boot = {c.loss_name: {"descent_fraction": [], "psi_deg_median": [], "kappa_min_median": []}
            for c in certs}
    for _ in range(int(bootstrap)):
        pick = rng.integers(0, N, N)
        resampled = _certificate(time, W[pick], h, losses)[0]
        for c, loss in zip(resampled, losses):
            cert = c.finish(loss.name, "ensemble")
            b = boot[loss.name]
            good = cert.moving & cert.descent
            b["descent_fraction"].append(cert.descent_fraction)
            b["psi_deg_median"].append(_median_or_nan(cert.psi_deg[cert.moving]))
            b["kappa_min_median"].append(_median_or_nan(cert.kappa_min[good]))
    lo, hi = 100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2
    results = []
    for cert, test in zip(certs, tests):
        cert.extra["basis"] = "ensemble"
        cert.extra["record_tests"] = test
        if cert.verdict == "not-descent" and test["ascent_significant"] == 0:
            # not-descent only where an ascent is resolved above the seeds' spread
            cert.extra["pointwise_verdict"] = cert.verdict
            cert.verdict = "undecided"
        cert.extra["seeds"] = N
        cert.extra["window"] = h
        cert.extra["window_s"] = float(f"{np.median(time[h:] - time[:-h]):.6g}")
        intervals = {}
        for key, values in boot[cert.loss_name].items():
            v = np.asarray(values, float)
            v = v[np.isfinite(v)]
            intervals[key] = [float(np.percentile(v, lo)), float(np.percentile(v, hi))] if v.size else None
        cert.extra["bootstrap"] = {"resamples": int(bootstrap), "level": LEVEL, **intervals}
        cert.extra["drift_relative_se"] = {"median": float(np.median(rel_se)),
                                           "p95": float(np.percentile(rel_se, 95))}
        results.append(cert.summary())
    return {"runs": paths, "run": paths[0], "rule": rule, "model": model, "status": status[0],
            "statuses": status, "seeds": N, "seed_values": seeds, "records": T, "weights": S,
            "spread": float(np.median(spread)), "recurrence": None, "consistency": consistency,
            "results": results}
