"""Negative certificate: recurrence of a trajectory means no loss exists (docs/math.md §7).

A loss that decreases strictly along an autonomous drift cannot take the same value
twice, so a trajectory of that drift which returns to a state it visited after moving
away proves that the rule is not descent on *any* loss (verdict ``no-loss-exists``).

A logged trajectory never returns exactly; :func:`find_recurrence` looks for a pair
of records ``i < j`` such that, in the coordinates whitened by the trajectory's own
covariance (so the answer does not change when a coordinate is rescaled — a change of
units — or under any invertible linear change of coordinates):

1. **return**: ``‖w_j − w_i‖ ≤ tol · P(i, j)``, where ``P(i, j) = Σ_{i≤k<j} ‖w_{k+1} − w_k‖``
   is the path length travelled in between (default ``tol = 0.02``: back within 2% of
   the distance travelled);
2. **excursion**: in between it moved away, ``max_{i<k<j} ‖w_k − w_i‖ ≥ away · extent``
   and ``≥ ‖w_j − w_i‖ / tol``, where ``extent`` is the trajectory's diameter about its
   mean (default ``away = 0.05``). This rules out floating-point motion at rest;
3. **significance** (sample paths, when a ``noise`` model is given): the excursion is
   larger than noise alone would make it. Under the null hypothesis that the records
   move by noise only (independent increments of covariance ``Σ`` per record, estimated
   from second differences by :func:`noise_covariance`; a mean-reverting process moves
   less, so this bounds it), ``‖Σ^{-1/2}(w_k − w_i)‖² / (k − i)`` is χ² with ``rank Σ``
   degrees of freedom; the largest such statistic over the excursion must exceed the
   χ² quantile at ``level`` divided by the number of pairs tested (Bonferroni).

What (1)–(2) cannot do from a finite record: tell a limit cycle from a focus so weakly
damped that it loses less than about ``2π·tol`` (≈ 12%) of its (whitened) radius per
turn. Where the drift is known, :mod:`plasticity.analysis.meanfield` settles it: it
tests the integrated mean-field trajectory and confirms a return by a closed orbit.

Cost: the trajectory is resampled to at most ``max_points`` records evenly spaced
in arc length (path lengths stay those of the full trajectory), then pairwise
distances are scanned in row blocks: O(max_points²) time, O(block · max_points)
memory — about 0.1 s for T = 10⁴ records at the default 2000 points.
"""

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

__all__ = ["Recurrence", "NoiseModel", "find_recurrence", "whitening", "apply_map", "noise_covariance",
           "shortest_period", "run_noise_model", "TOL", "AWAY", "LEVEL", "FULL_WHITENING_MAX_N"]

TOL = 0.02
AWAY = 0.05
#: significance level of a return on a sample path (after the Bonferroni correction)
LEVEL = 1e-3
#: whiten by the full covariance up to this many coordinates; beyond, per coordinate
FULL_WHITENING_MAX_N = 256


@dataclass
class Recurrence:
    """A recurrence: records ``i < j`` (indices into the trajectory), their times,
    the return ``distance``, the ``path`` length in between, ``ratio = distance/path``
    and the ``excursion`` (largest distance from ``w_i`` in between), all in the
    whitened coordinates. On a sample path, ``significance`` holds the test of the
    excursion against the noise (statistic, degrees of freedom, p-value, level)."""

    i: int
    j: int
    t_i: float
    t_j: float
    distance: float
    path: float
    ratio: float
    excursion: float
    significance: dict | None = None

    def summary(self):
        out = {"verdict": "no-loss-exists", "i": self.i, "j": self.j, "t_i": self.t_i,
               "t_j": self.t_j, "distance": self.distance, "path": self.path,
               "ratio": self.ratio, "excursion": self.excursion}
        if self.significance is not None:
            out["significance"] = self.significance
        return out


@dataclass
class NoiseModel:
    """The noise of a sample path: ``whiten`` (n, n) maps a record to coordinates in
    which the increments of one record have identity covariance (rank ``dof``);
    ``records_per_point`` is how many raw records each trajectory point averages
    (block means), ``level`` the significance level of a return."""

    whiten: np.ndarray      # (n, n), or (n,) for a diagonal map
    dof: int
    records_per_point: float = 1.0
    level: float = LEVEL
    noise_free: bool = False

    @classmethod
    def from_records(cls, records, records_per_point=1.0, level=LEVEL):
        Sigma = noise_covariance(records)
        return cls.from_covariance(Sigma, np.asarray(records, float), records_per_point, level)

    @classmethod
    def from_covariance(cls, Sigma, records=None, records_per_point=1.0, level=LEVEL):
        """From the per-record noise covariance: ``(n, n)``, or its diagonal ``(n,)``
        (then ``whiten`` is the diagonal ``(n,)`` too: no n × n matrix for large n)."""
        Sigma = np.asarray(Sigma, float)
        scale = 0.0
        if records is not None and len(records):
            scale = float(np.max(np.var(records, axis=0)))
        if Sigma.ndim == 1:
            top = float(Sigma.max()) if Sigma.size else 0.0
            if not top > 1e-24 * max(scale, 1e-300):
                return cls(np.ones(Sigma.size), Sigma.size, records_per_point, level, noise_free=True)
            keep = Sigma > 1e-10 * top
            # as below: coordinates without noise get the smallest noise kept
            floor = float(Sigma[keep].min())
            return cls(1.0 / np.sqrt(np.where(keep, Sigma, floor)), int(Sigma.size),
                       records_per_point, level)
        vals, vecs = np.linalg.eigh(0.5 * (Sigma + Sigma.T))
        top = float(vals.max()) if vals.size else 0.0
        if not top > 1e-24 * max(scale, 1e-300):
            return cls(np.eye(Sigma.shape[0]), Sigma.shape[0], records_per_point, level, noise_free=True)
        keep = vals > 1e-10 * top
        B = (vecs[:, keep] / np.sqrt(vals[keep])).T
        # a rank-deficient noise: directions without noise get the smallest noise kept
        # (a conservative choice: they are not allowed to make a return significant alone)
        if not keep.all():
            floor = float(vals[keep].min())
            B = np.concatenate([B, (vecs[:, ~keep] / np.sqrt(floor)).T])
        return cls(B, int(Sigma.shape[0]), records_per_point, level)


def noise_covariance(records):
    """Per-record noise covariance ``Σ`` of a sample path from its second differences,
    ``d_k = w_{k+1} − 2w_k + w_{k−1}``: for independent increments of covariance ``Σ``
    plus a smooth drift, ``E[d dᵀ] ≈ 2Σ`` (the drift enters only through its curvature).
    Full ``(n, n)`` up to ``FULL_WHITENING_MAX_N`` coordinates, else the diagonal (n,)."""
    X = np.asarray(records, float)
    if X.shape[0] < 3:
        return np.zeros(X.shape[1])
    d = X[2:] - 2 * X[1:-1] + X[:-2]
    if X.shape[1] <= FULL_WHITENING_MAX_N:
        return (d.T @ d) / (2.0 * d.shape[0])
    return np.einsum("ij,ij->j", d, d) / (2.0 * d.shape[0])


def apply_map(X, A):
    """``X Aᵀ`` for a map ``A`` given as a matrix (m, n) or as a diagonal (n,)."""
    A = np.asarray(A, float)
    return X * A if A.ndim == 1 else X @ A.T


def whitening(X, max_full=FULL_WHITENING_MAX_N):
    """The map ``A`` (n, n) that whitens the trajectory ``X`` (T, n) by its covariance
    (``cov(X Aᵀ) = I`` on the directions it spans; directions it does not span are
    dropped to zero). For more than ``max_full`` coordinates, per-coordinate scaling by
    the standard deviation (invariant to units, not to rotations), returned as the
    diagonal ``(n,)`` (apply with :func:`apply_map`)."""
    X = np.asarray(X, float)
    n = X.shape[1]
    if n > max_full:
        sd = X.std(axis=0)
        inv = np.where(sd > 1e-12 * max(float(sd.max()), 1e-300), 1.0 / np.where(sd > 0, sd, 1.0), 0.0)
        return inv
    C = np.cov(X, rowvar=False).reshape(n, n)
    vals, vecs = np.linalg.eigh(C)
    top = float(vals.max()) if vals.size else 0.0
    if not top > 0:
        return np.eye(n)
    keep = vals > 1e-12 * top
    A = np.zeros((n, n))
    A[:keep.sum()] = (vecs[:, keep] / np.sqrt(vals[keep])).T
    return A


def shortest_period(time, X, components=3, prominence=10.0):
    """The shortest period the data shows: for the leading principal components of the
    linearly detrended records, the frequency of the periodogram's highest peak (at
    least two cycles in the record, power at least ``prominence`` times the median);
    ``1/f`` of the highest such frequency, or ``None``."""
    from scipy.signal import periodogram

    t = np.asarray(time, float)
    X = np.asarray(X, float)
    T = X.shape[0]
    if T < 16:
        return None
    dt = float(np.median(np.diff(t)))
    if not dt > 0:
        return None
    s = np.arange(T, dtype=float)
    D = X - X.mean(axis=0)
    slope = (s - s.mean()) @ D / np.sum((s - s.mean()) ** 2)
    D = D - np.outer(s - s.mean(), slope)
    if X.shape[1] > components:
        _, _, Vt = np.linalg.svd(D[:: max(1, T // 2000)], full_matrices=False)
        D = D @ Vt[:components].T
    freqs, power = periodogram(D, fs=1.0 / dt, axis=0, detrend=False)
    ok = freqs >= 2.0 / (T * dt)
    best = None
    for c in range(power.shape[1]):
        p = power[ok, c]
        if p.size < 3 or not np.max(p) > 0:
            continue
        k = int(np.argmax(p))
        if p[k] >= prominence * np.median(p):
            f = float(freqs[ok][k])
            best = f if best is None else max(best, f)
    return None if best is None else 1.0 / best


def find_recurrence(trajectory, time=None, tol=TOL, away=AWAY, max_points=2000, block=256,
                    metric="trajectory", noise=None):
    """The first recurrence of ``trajectory`` (T, n), or ``None`` (see module doc).

    Parameters
    ----------
    trajectory : array_like (T, n)
    time : array_like (T,), optional
        Times of the records (default: their indices).
    tol : float
        Return tolerance relative to the path length in between.
    away : float
        Smallest excursion, relative to the trajectory's extent.
    max_points : int
        Resampling size (evenly in arc length).
    block : int
        Rows of the distance matrix computed at once.
    metric : "trajectory", None or array (n, n)
        Coordinates of the test: whitened by the trajectory's covariance (default,
        :func:`whitening`), the raw coordinates (None), or ``X Aᵀ`` for a given ``A``.
    noise : NoiseModel, optional
        For a sample path: a return counts only when its excursion is significant
        against this noise (condition 3 of the module doc).

    Returns
    -------
    Recurrence or None
        For the earliest ``i`` with a recurrence, the ``j`` of its first return
        episode with the smallest ratio.
    """
    X0 = np.atleast_2d(np.asarray(trajectory, float))
    if X0.shape[0] < 3:
        return None
    if not np.all(np.isfinite(X0)):
        raise ValueError("trajectory has non-finite entries")
    if isinstance(metric, str):
        A = whitening(X0)
    else:
        A = None if metric is None else np.asarray(metric, float)
    X = X0 if A is None else apply_map(X0, A)
    t = np.arange(X.shape[0], dtype=float) if time is None else np.asarray(time, float)
    steps = np.linalg.norm(np.diff(X, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(steps)])
    extent = 2.0 * float(np.max(np.linalg.norm(X - X.mean(axis=0), axis=1)))
    if not extent > 0 or not s[-1] > 0:
        return None
    if X.shape[0] > max_points:
        targets = np.linspace(0.0, s[-1], max_points)
        idx = np.unique(np.minimum(np.searchsorted(s, targets), X.shape[0] - 1))
    else:
        idx = np.arange(X.shape[0])
    Y = X[idx]
    sy = s[idx]
    N = Y.shape[0]
    centre = Y.mean(axis=0)
    Y = Y - centre          # better conditioned squared-distance identity
    sq = np.einsum("ij,ij->i", Y, Y)
    check_noise = noise is not None and not noise.noise_free
    if check_noise:
        Z = apply_map(X0[idx], noise.whiten)
        Z = Z - Z.mean(axis=0)
        zq = np.einsum("ij,ij->i", Z, Z)
        pairs = max(1, N * (N - 1) // 2)
        critical = float(chi2.isf(noise.level / pairs, noise.dof))
    for start in range(0, N, block):
        rows = np.arange(start, min(N, start + block))
        # only the columns j >= start can be later than a row of this block (the rest
        # would be masked to zero), so the block is its upper triangle's strip
        cols = np.arange(start, N)
        # ‖a − b‖² = ‖a‖² + ‖b‖² − 2a·b: O(b·N) memory whatever n is
        D = np.sqrt(np.maximum(sq[rows, None] + sq[None, cols] - 2.0 * Y[rows] @ Y[cols].T, 0.0))
        P = sy[None, cols] - sy[rows, None]
        later = cols[None, :] > rows[:, None]
        close = later & (D <= tol * P) & (P > 0)
        if not close.any():      # no return in this block, whatever the excursions
            continue
        D_masked = np.where(later, D, 0.0)
        excursion = np.maximum.accumulate(D_masked, axis=1)               # max over i..j
        ok = close & (excursion >= away * extent) & (excursion * tol >= D)
        if check_noise and ok.any():
            Dz2 = np.maximum(zq[rows, None] + zq[None, cols] - 2.0 * Z[rows] @ Z[cols].T, 0.0)
            gap = (idx[None, cols] - idx[rows, None]) * noise.records_per_point
            with np.errstate(divide="ignore", invalid="ignore"):
                stat = np.where(later & (gap > 0), Dz2 / gap, 0.0)
            stat_max = np.maximum.accumulate(stat, axis=1)
            ok &= stat_max >= critical
        hit = np.flatnonzero(ok.any(axis=1))
        if hit.size == 0:
            continue
        r = int(hit[0])
        row_ok = ok[r]
        js = np.flatnonzero(row_ok)
        # first return episode: the first run of consecutive valid j
        breaks = np.flatnonzero(np.diff(js) > 1)
        episode = js[:breaks[0] + 1] if breaks.size else js
        ratio = D[r, episode] / P[r, episode]
        j_col = int(episode[np.argmin(ratio)])       # column of the strip
        j_local = start + j_col                      # index into the resampled points
        i_full, j_full = int(idx[rows[r]]), int(idx[j_local])
        dist = float(np.linalg.norm(X[j_full] - X[i_full]))
        path = float(s[j_full] - s[i_full])
        exc = float(np.max(np.linalg.norm(X[i_full:j_full + 1] - X[i_full], axis=1)))
        significance = None
        if noise is not None:
            if noise.noise_free:
                significance = {"statistic": None, "dof": noise.dof, "p_value": 0.0,
                                "level": noise.level, "noise": "none measurable"}
            else:
                value = float(stat_max[r, j_col])
                pairs = max(1, N * (N - 1) // 2)
                p_value = float(min(1.0, pairs * chi2.sf(value, noise.dof)))
                significance = {"statistic": value, "dof": noise.dof, "p_value": p_value,
                                "level": noise.level, "pairs": pairs,
                                "noise": "second differences of the records"}
        return Recurrence(i=i_full, j=j_full, t_i=float(t[i_full]), t_j=float(t[j_full]),
                          distance=dist, path=path, ratio=dist / path, excursion=exc,
                          significance=significance)
    return None


def run_noise_model(run, h=1, level=LEVEL):
    """The per-record noise of the run's plastic state (second differences, streamed
    chunk by chunk; the full covariance for small states, the diagonal otherwise)."""
    size = run.layout(with_state=True).size
    full = size <= FULL_WHITENING_MAX_N
    acc = np.zeros((size, size)) if full else np.zeros(size)
    count, var_acc, tail = 0, np.zeros(size), None
    for start, stop in run.chunks():
        w = run.read(start, stop)
        var_acc = np.maximum(var_acc, np.var(w, axis=0))
        if tail is not None:
            w = np.concatenate([tail, w])
        if len(w) >= 3:
            d = w[2:] - 2 * w[1:-1] + w[:-2]
            acc += d.T @ d if full else np.einsum("ij,ij->j", d, d)
            count += len(d)
        tail = w[-2:]
    Sigma = acc / (2.0 * max(count, 1))
    model = NoiseModel.from_covariance(Sigma, None, records_per_point=h, level=level)
    if not model.noise_free and float(np.max(np.diag(Sigma) if full else Sigma)) <= 1e-24 * max(float(var_acc.max()), 1e-300):
        model.noise_free = True
    return model
