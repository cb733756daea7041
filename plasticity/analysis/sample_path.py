"""Descent along the simulated path, window by window, with error bars (docs/math.md
§4 and §10; the concrete test is documented in docs/analysis.md).

The records are cut into K consecutive, non-overlapping windows of h records
(h increments each). For window j from ``w_a`` to ``w_b``:

- the displacement ``D = w_b − w_a = Σ_k d_k`` (the h increments ``d_k``);
- the mean-value gradient ``ḡ = ∫₀¹ ∇L(w_a + s D) ds`` (4-point Gauss–Legendre, as
  :func:`~plasticity.analysis.losses.mean_value_gradient`), so that
  ``ḡ·D = L(w_b) − L(w_a)``: the change of the loss over the window;
- its standard error from the increments' noise: the projected increments
  ``a_k = ḡ·d_k`` are treated as independent with a common mean (the drift part, slowly
  varying) and variance, so ``se = √(h · s²)`` with ``s²`` their sample variance, and
  ``ḡ·D / se`` is referred to Student's t with h − 1 degrees of freedom. A drift that
  changes inside the window only inflates ``s²``: the test is then conservative;
- the window is ``descent`` where ``ḡ·D`` is significantly negative, ``ascent`` where
  significantly positive, ``undecided`` otherwise. Each of the two families of K
  one-sided tests is corrected for multiple comparisons with Holm's step-down method
  at family-wise level ``ALPHA`` (the chance that any window is called ``ascent``
  when none ascends is at most ALPHA).

The windows are streamed: :class:`SamplePath` takes consecutive records chunk by
chunk; given a reader of single records, it reads each window's end ahead and keeps
O(n) numbers whatever h (else it keeps at most h records between chunks).
"""

import numpy as np
from scipy.stats import t as student_t

# 4-point Gauss–Legendre on [0, 1], as losses.mean_value_gradient (docs/math.md §4)
_x, _w = np.polynomial.legendre.leggauss(4)
_NODES, _WEIGHTS = 0.5 * (_x + 1.0), 0.5 * _w

__all__ = ["SamplePath", "sample_path", "holm", "sample_path_window", "ALPHA", "MIN_WINDOW",
           "TARGET_WINDOWS"]

#: family-wise level of the descent and of the ascent calls
ALPHA = 0.01
#: records per window, at least (the noise is estimated from the window's h increments)
MIN_WINDOW = 8
#: windows wanted over a run (the window is chosen as (T − 1) // TARGET_WINDOWS records)
TARGET_WINDOWS = 100


def sample_path_window(n_records, window=None):
    """Records per window: ``window`` (at least MIN_WINDOW) or about TARGET_WINDOWS
    windows over the run; None when the run has fewer than 2 windows of MIN_WINDOW."""
    if window is None:
        window = (n_records - 1) // TARGET_WINDOWS
    h = max(MIN_WINDOW, int(window))
    return h if (n_records - 1) // h >= 2 else None


def holm(p_values, alpha=ALPHA):
    """Holm's step-down rejections (bool array) of the hypotheses with ``p_values``."""
    p = np.asarray(p_values, float)
    K = p.size
    reject = np.zeros(K, bool)
    if K == 0:
        return reject
    order = np.argsort(p, kind="stable")
    thresholds = alpha / (K - np.arange(K))
    passed = p[order] <= thresholds
    stop = K if passed.all() else int(np.argmin(passed))
    reject[order[:stop]] = True
    return reject


class SamplePath:
    """Window-by-window loss changes of a streamed trajectory, against several losses.

    Parameters
    ----------
    losses : list of Loss
    window : int
        Records per window (h ≥ 2).
    end : callable, optional
        ``end(k) -> (t_k, w_k)``, a reader of single records: windows are then streamed
        (each window's end read ahead, O(n) memory whatever h).
    n_records : int, optional
        Records of the trajectory (with ``end``: the windows that fit).
    """

    def __init__(self, losses, window, end=None, n_records=None):
        self.losses = list(losses)
        self.h = int(window)
        # streamed windows (``end`` given): ``end(k)`` reads record k, ``(t_k, w_k)``, so a
        # window's mean-value gradient is known from its first record on and its h
        # increments are projected as they pass: memory O(n), whatever h
        self._end = end
        self._n_records = n_records
        self._next = 0               # index of the next record added
        self._previous = None        # the record before it
        self._open = None            # the current window (streamed)
        self._tail_t = None          # records since the current window's start
        self._tail_w = None
        self._parts = {k: [] for k in ("t0", "t1")}
        self._per_loss = [{k: [] for k in ("change", "se", "loss0", "loss1")} for _ in self.losses]

    def _windows(self, t, w, losses):
        """Whole windows in consecutive records ``t`` (K h + 1,), ``w`` (K h + 1, n)."""
        h = self.h
        K = (t.size - 1) // h
        ends = np.arange(K + 1) * h
        w0, w1 = w[ends[:-1]], w[ends[1:]]
        D = w1 - w0
        d = np.diff(w[: K * h + 1], axis=0).reshape(K, h, -1)
        self._parts["t0"].append(t[ends[:-1]])
        self._parts["t1"].append(t[ends[1:]])
        # the 4 Gauss–Legendre nodes of every window and the K + 1 window ends in one
        # call per loss (one BLAS product instead of six small ones)
        points = np.concatenate([w0 + s * D for s in _NODES] + [w[ends]])
        for loss, out in zip(losses, self._per_loss):
            values, grads = loss.value_and_grad(points)
            gbar = np.einsum("j,jkn->kn", _WEIGHTS, grads[: 4 * K].reshape(4, K, -1))
            v = values[4 * K:]
            a = np.einsum("khn,kn->kh", d, gbar)
            out["change"].append(a.sum(1))
            out["se"].append(np.sqrt(h * a.var(axis=1, ddof=1)))
            out["loss0"].append(v[:-1])
            out["loss1"].append(v[1:])

    def _start_window(self, index, t0, w0, losses):
        """Open the window whose first record is ``index`` (its end read ahead)."""
        t1, w1 = self._end(index + self.h)
        w1 = np.asarray(w1, float)
        D = w1 - w0
        points = np.stack([w0 + s * D for s in _NODES] + [w0, w1])
        gradients, ends = [], []
        for loss in losses:
            values, grads = loss.value_and_grad(points)
            gradients.append(np.einsum("j,jn->n", _WEIGHTS, grads[:4]))
            ends.append(values[4:])
        self._open = {"index": index, "t": (float(t0), float(t1)), "gbar": gradients,
                      "ends": ends, "a": [[] for _ in losses]}

    def _close_window(self):
        window = self._open
        self._open = None
        self._parts["t0"].append(np.array([window["t"][0]]))
        self._parts["t1"].append(np.array([window["t"][1]]))
        for a, (v0, v1), out in zip(window["a"], window["ends"], self._per_loss):
            a = np.concatenate(a)
            out["change"].append(np.array([a.sum()]))
            out["se"].append(np.array([np.sqrt(self.h * a.var(ddof=1))]))
            out["loss0"].append(np.array([v0]))
            out["loss1"].append(np.array([v1]))

    def _add_streamed(self, t, w, losses):
        h = self.h
        first = self._next
        self._next += t.size
        if self._previous is not None:
            t = np.concatenate([[self._previous[0]], t])
            w = np.concatenate([self._previous[1][None], w])
            first -= 1
        self._previous = (t[-1], w[-1].copy())
        last_window = (self._n_records - 1) // h           # windows 0 … last_window − 1
        i = 0                                              # row of w: record first + i
        while i < t.size - 1 or (self._open is None and i < t.size):
            record = first + i
            if self._open is None:
                if record % h or record // h >= last_window:
                    i += 1
                    continue
                self._start_window(record, t[i], w[i], losses)
            window = self._open
            end = window["index"] + h                     # steps record … end − 1
            stop = min(end, first + t.size - 1)
            if stop <= record:
                break
            d = w[i + 1:stop - first + 1] - w[i:stop - first]
            for a, gbar in zip(window["a"], window["gbar"]):
                a.append(d @ gbar)
            i = stop - first
            if stop == end:
                self._close_window()

    def add(self, time, weights, losses=None):
        """Consecutive records ``time`` (B,), ``weights`` (B, n). ``losses`` replaces the
        losses for these records (rate losses bound to a chunk's rates)."""
        t = np.asarray(time, float)
        w = np.asarray(weights, float)
        losses = self.losses if losses is None else losses
        if self._end is not None:
            self._add_streamed(t, w, losses)
            return
        h = self.h
        if self._tail_t is not None and self._tail_t.size:
            need = h + 1 - self._tail_t.size         # records completing the pending window
            if t.size < need:
                self._tail_t = np.concatenate([self._tail_t, t])
                self._tail_w = np.concatenate([self._tail_w, w])
                return
            self._windows(np.concatenate([self._tail_t, t[:need]]),
                          np.concatenate([self._tail_w, w[:need]]), losses)
            t, w = t[need - 1:], w[need - 1:]        # the window's end starts the next one
        K = (t.size - 1) // h
        if K:
            self._windows(t[: K * h + 1], w[: K * h + 1], losses)
        rest = K * h
        self._tail_t = t[rest:].copy()
        self._tail_w = w[rest:].copy()

    def finish(self, alpha=ALPHA):
        """Per loss: a dict of the per-window arrays (``t0``, ``t1``, ``change``, ``se``,
        ``tstat``, ``p_descent``, ``p_ascent``, ``call`` with −1 descent, 0 undecided,
        +1 ascent) and the JSON summary under ``"summary"``."""
        t0 = np.concatenate(self._parts["t0"]) if self._parts["t0"] else np.zeros(0)
        t1 = np.concatenate(self._parts["t1"]) if self._parts["t1"] else np.zeros(0)
        out = []
        for parts in self._per_loss:
            arrays = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in parts.items()}
            out.append(classify(t0, t1, arrays, self.h, alpha))
        return out


def classify(t0, t1, arrays, h, alpha=ALPHA):
    """Tests, Holm corrections and summary of the per-window ``change`` and ``se``."""
    change, se = arrays["change"], arrays["se"]
    K = change.size
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = np.where(se > 0, change / np.where(se > 0, se, 1.0),
                         np.where(change > 0, np.inf, np.where(change < 0, -np.inf, 0.0)))
    ok = np.isfinite(change) & ~np.isnan(tstat)
    dof = max(1, h - 1)
    p_desc = np.where(ok, student_t.cdf(tstat, dof), 1.0)
    p_asc = np.where(ok, student_t.sf(tstat, dof), 1.0)
    descent = holm(p_desc, alpha)
    ascent = holm(p_asc, alpha)
    call = np.zeros(K, np.int8)
    call[descent] = -1
    call[ascent] = 1
    interval = float(f"{np.median(t1 - t0):.6g}") if K else None     # no 12.799999999999997
    summary = {
        "window": int(h),
        "window_s": interval,
        "windows": int(K),
        "descent_significant": float(np.mean(call == -1)) if K else None,
        "ascent_significant": float(np.mean(call == 1)) if K else None,
        "undecided": float(np.mean(call == 0)) if K else None,
        "alpha": alpha,
        "correction": "holm",
    }
    return {"t0": t0, "t1": t1, "change": change, "se": se, "tstat": tstat, "p_descent": p_desc,
            "p_ascent": p_asc, "call": call, "loss0": arrays["loss0"], "loss1": arrays["loss1"],
            "summary": summary}


def sample_path(time, weights, losses, window=None, alpha=ALPHA):
    """The sample-path certificate of a trajectory in memory (list, one per loss)."""
    weights = np.asarray(weights, float)
    h = sample_path_window(weights.shape[0], window)
    if h is None:
        return None
    sp = SamplePath(losses, h)
    sp.add(time, weights)
    return sp.finish(alpha)


#: per-window arrays stored under /analysis/<loss>/ (``sample_path_<name>``)
STORED = ("t0", "t1", "change", "se", "tstat", "call")


def stored_arrays(results):
    """``{loss name: classify(...) dict}`` as the datasets stored beside each certificate:
    ``{loss: {"sample_path_<key>": array}}`` (``call``: −1 descent, 0 undecided, +1
    ascent), for :func:`plasticity.io.write_analysis`."""
    return {name: {f"sample_path_{key}": result[key] for key in STORED}
            for name, result in results.items()}

