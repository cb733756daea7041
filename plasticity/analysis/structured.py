"""Structured constant metrics, fitted in one pass with O(n) memory per record (docs/math.md §6).

The dense constant-metric fit (:mod:`plasticity.analysis.fitting`) needs the n × n
statistics ``S = Σ g gᵀ`` and ``P = Σ f gᵀ``: fine for a few hundred synapses,
impossible for 10⁴–10⁶. Here the same least-squares problem,
``min_M Σ_k ‖f_k + M g_k‖²``, is solved over three families of SPD metrics whose
statistics are small:

- ``diagonal``: ``M = diag(m)``. The problem separates by coordinate:
  ``m_i = −Σ f_i g_i / Σ g_i²`` (clipped at 0). Statistics: three vectors of length n.
- ``block_diagonal``: one dense block per postsynaptic neuron (the synapses onto one
  neuron may share a metric, different neurons do not). The problem separates by
  block; each block is the dense fit on its own ``S_j``, ``P_j``. Statistics
  ``Σ_j b_j²`` numbers for blocks of sizes ``b_j``: O(n · block) — done only when every
  block has at most ``BLOCK_MAX`` synapses and ``Σ_j b_j²`` is at most ``BLOCK_BUDGET``
  (so 10⁶ synapses in blocks of 100 are not fitted: 10⁸ numbers per statistic).
  Fitting them anyway, in float32 or one group of blocks per pass over the file, was
  judged not worth it: 0.75 GB of statistics (about 100 records of 10⁶ weights) or
  some 15 passes, and with about as many records as synapses per block (a 10 s run
  logged every 100 ms: 100 records, blocks of ~125) the family has nearly as many
  parameters as the data has numbers, so a small residual would show overfitting,
  not a constant metric.
- ``low_rank_diagonal``: ``M = D + U C Uᵀ`` with ``D`` diagonal, ``U`` an orthonormal
  ``n × r`` basis and ``C`` an ``r × r`` SPD matrix, the rank ``r`` chosen by the
  residual (the smallest that fits, at most ``RANK_MAX``). ``U`` is learnt from the
  first few records (the leading directions of their residual drift ``f + D g``
  once ``D`` and a low-rank part are fitted to those records alone); then every
  record adds to ``Uᵀ S``
  (r × n) and ``Uᵀ P U`` (r × r). With those, the objective of any ``(D, C)`` is exact,
  and ``D`` and ``C`` are fitted by alternating exact least-squares steps (``D`` given
  ``C`` coordinate-wise, ``C`` given ``D`` by the dense fit in r dimensions). Because
  ``U`` is fixed early, the residual reported is that of the metric found: an upper
  bound on the family's best, so a fit is never claimed that does not exist.

Each family reports its relative residual ``sqrt(J(M)/Σ‖f‖²)``, the quantity of the
dense fit, and so is comparable with it (and never below it: each family is a subset
of the SPD matrices). :meth:`StructuredMetricFit.finish` also names the simplest
family (fewest parameters) whose residual is at most ``CONSTANT_TOL`` (0.05): the
certificate then reads ``natural-gradient-constant`` for runs too large for the dense fit.

Memory: the diagonal statistics are 3 vectors of length n; the low-rank family keeps
``2 RANK_MAX`` vectors for ``U`` and ``Uᵀ S``, and holds the first ``BUFFER_RECORDS``
records (drift and gradient; exactly those, however the records are chunked) until
``U`` is chosen: a few times 16 records at that moment (measured: 0.7 GB peak for 10⁶ synapses, 40 records fed one at a time, 3.4 s
of CPU), then O(n) per record.
"""

import numpy as np

from .fitting import CONSTANT_TOL, FULL_FIT_MAX_N, _objective, fit_constant_metric

__all__ = ["StructuredMetricFit", "fit_structured_arrays", "BLOCK_MAX", "BLOCK_BUDGET", "RANK_MAX",
           "BUFFER_RECORDS", "FAMILIES"]

#: families, simplest first (ties in the parameter count go to the earlier one)
FAMILIES = ("diagonal", "low_rank_diagonal", "block_diagonal")
#: largest block (synapses onto one neuron) of the block-diagonal fit
BLOCK_MAX = FULL_FIT_MAX_N
#: most numbers in the block statistics (Σ b_j² each for S and P: 64 MiB each); more
#: synapses per neuron than that allows and the block-diagonal family is not fitted
BLOCK_BUDGET = 1 << 23
#: largest rank of the low-rank part
RANK_MAX = 8
#: records held to choose the low-rank basis U
BUFFER_RECORDS = 2 * RANK_MAX
#: the batched block refinement stops for a block once an iteration lowers its squared
#: relative residual by less than this
REFINE_RTOL = 1e-10
#: the alternation stops once a step lowers the squared relative residual by less
#: than this (each step costs a few passes over n × r arrays)
ALTERNATION_RTOL = 1e-10
#: alternations of the D and C steps of the low-rank fit
_ALTERNATIONS = 50


def _diagonal_fit(a, b, extra=0.0):
    """``m_i = −(b_i + extra_i)/a_i`` clipped at 0 (0 where no gradient visits i)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(a > 0, -(b + extra) / np.where(a > 0, a, 1.0), 0.0)
    return np.clip(m, 0.0, None)


def _objective_batched(M, S, P, ff):
    return ff + 2 * np.einsum("jab,jba->j", M, P) + np.einsum("jab,jab->j", M @ S, M)


def _project_spd_batched(M, floor=1e-10):
    vals, vecs = np.linalg.eigh(0.5 * (M + np.swapaxes(M, 1, 2)))
    top = vals.max(axis=1)
    clipped = np.clip(vals, floor * np.maximum(top, 0.0)[:, None], None)
    return (vecs * clipped[:, None, :]) @ np.swapaxes(vecs, 1, 2), vals, top > 0


def fit_constant_metric_batched(S, P, ff, refine=100):
    """:func:`~plasticity.analysis.fitting.fit_constant_metric` on a stack of problems
    of one size, ``S``, ``P`` (J, b, b) and ``ff`` (J,), as one batched computation
    (the same steps, each on all blocks at once). Returns ``(M (J, b, b),
    relative_residual (J,))``; a block with no positive direction gets ``M = 0`` and
    residual 1, one with ``ff = 0`` (no drift) ``M = 0`` and residual 0."""
    S = np.asarray(S, float)
    S = 0.5 * (S + np.swapaxes(S, 1, 2))
    P = np.asarray(P, float)
    ff = np.asarray(ff, float)
    d, Q = np.linalg.eigh(S)
    d = np.clip(d, 0.0, None)
    Qt = np.swapaxes(Q, 1, 2)
    R = Qt @ (P + np.swapaxes(P, 1, 2)) @ Q
    denom = d[:, :, None] + d[:, None, :]
    tol = 1e-12 * np.maximum(d.max(axis=1), 1e-300)[:, None, None]
    X = np.where(denom > tol, -R / np.where(denom > tol, denom, 1.0), 0.0)
    M, vals, positive = _project_spd_batched(Q @ X @ Qt)
    M[~positive] = 0.0
    top = vals.max(axis=1)
    todo = np.flatnonzero(positive & np.any(vals < 1e-10 * top[:, None], axis=1)) if refine else []
    if len(todo):
        Sr, Pr, ffr, Mr = S[todo], P[todo], ff[todo], M[todo]
        step = 1.0 / (2.0 * np.maximum(d[todo].max(axis=1), 1e-300))[:, None, None]
        best, best_J = Mr.copy(), _objective_batched(Mr, Sr, Pr, ffr)
        live = np.ones(len(todo), bool)
        sym_P = Pr + np.swapaxes(Pr, 1, 2)
        for _ in range(refine):
            grad = sym_P + Sr @ Mr + Mr @ Sr
            candidate, _, ok = _project_spd_batched(Mr - step * grad)
            live &= ok          # a block stops where the projection finds no positive direction
            if not live.any():
                break
            Mr = np.where(live[:, None, None], candidate, Mr)
            J = _objective_batched(Mr, Sr, Pr, ffr)
            better = live & (J < best_J)
            # steps of 1/(2 λ_max(S)) decrease J monotonically: a block whose squared
            # relative residual moved by less than REFINE_RTOL has converged
            live &= better & (best_J - J > REFINE_RTOL * ffr)
            best[better] = Mr[better]
            best_J = np.where(better, J, best_J)
        M[todo] = best
    J = _objective_batched(M, S, P, ff)
    with np.errstate(divide="ignore", invalid="ignore"):
        residual = np.where(ff > 0, np.sqrt(np.maximum(J, 0.0) / np.where(ff > 0, ff, 1.0)), 0.0)
    residual = np.where(positive | (ff <= 0), residual, 1.0)
    M[ff <= 0] = 0.0
    return M, residual


class StructuredMetricFit:
    """Accumulates the statistics of the structured fits, chunk by chunk.

    Parameters
    ----------
    n : int
        Dimension of the records (synapses).
    post : array_like of int (n,), optional
        Postsynaptic neuron of each coordinate: the blocks of the block-diagonal fit
        (no block-diagonal fit without it, or when a block exceeds ``block_max``).
    rank_max, block_max, block_budget, buffer_records : int
        See the module constants.
    """

    def __init__(self, n, post=None, rank_max=RANK_MAX, block_max=BLOCK_MAX,
                 block_budget=BLOCK_BUDGET, buffer_records=None):
        self.n = int(n)
        self.rank_max = int(rank_max)
        self.buffer_records = max(1, int(buffer_records or 2 * self.rank_max))
        self.a = np.zeros(self.n)      # Σ g_i²
        self.b = np.zeros(self.n)      # Σ f_i g_i
        self.fsq = np.zeros(self.n)    # Σ f_i²
        self.records = 0
        self._buffer = None             # (drift, gradient) of the first records, filled in place
        self._buffered = 0
        self.U = None                   # low-rank basis (n, r), chosen from the buffer
        self.US = None                  # Uᵀ S (r, n)
        self.Q = None                   # Uᵀ P U (r, r)
        self.blocks = None
        #: why the block-diagonal family is not fitted (None when it is)
        self.block_skipped = "no postsynaptic neuron per coordinate" if post is None else None
        if post is not None:
            post = np.asarray(post, dtype=np.intp)
            if post.shape != (self.n,):
                raise ValueError(f"post must have {self.n} entries, got {post.shape}")
            order = np.argsort(post, kind="stable")
            sizes = np.bincount(post)
            sizes = sizes[sizes > 0]
            numbers = int(np.sum(sizes ** 2))
            if sizes.size and sizes.max() > block_max:
                self.block_skipped = f"a block of {int(sizes.max())} synapses (at most {block_max})"
            elif numbers > block_budget:
                self.block_skipped = (f"{sizes.size} blocks: the block metric would have {numbers:.3g} "
                                      f"entries (at most {block_budget:.3g})")
            if sizes.size and sizes.max() <= block_max and numbers <= block_budget:
                self.blocks = np.split(order, np.cumsum(sizes)[:-1])
                self._equal = bool(np.all(sizes == sizes[0]))
                self._order = order
                self.block_S = [np.zeros((len(i), len(i))) for i in self.blocks]
                self.block_P = [np.zeros((len(i), len(i))) for i in self.blocks]

    def add(self, drift, gradient):
        """Add records: ``drift`` and ``gradient`` (B, n), finite rows only."""
        F = np.asarray(drift, float)
        G = np.asarray(gradient, float)
        if F.shape[0] == 0:
            return
        self.records += F.shape[0]
        self.a += np.einsum("ki,ki->i", G, G)
        self.b += np.einsum("ki,ki->i", F, G)
        self.fsq += np.einsum("ki,ki->i", F, F)
        if self.blocks is not None:
            self._add_blocks(F, G)
        if self.rank_max <= 0:
            return
        if self.U is None:
            # exactly the first buffer_records records choose U, whatever the chunks
            if self._buffer is None:
                self._buffer = (np.empty((self.buffer_records, self.n)),
                                np.empty((self.buffer_records, self.n)))
            take = self.buffer_records - self._buffered
            rows = min(take, F.shape[0])
            self._buffer[0][self._buffered:self._buffered + rows] = F[:rows]
            self._buffer[1][self._buffered:self._buffered + rows] = G[:rows]
            self._buffered += rows
            if take > F.shape[0]:
                return
            self._choose_basis()
            F, G = F[take:], G[take:]
            if F.shape[0] == 0:
                return
        self._add_low_rank(F, G)

    def _add_blocks(self, F, G):
        if self._equal:
            # every neuron has the same number of synapses: one batched product
            size = len(self.blocks[0])
            Fb = F[:, self._order].reshape(F.shape[0], -1, size)
            Gb = G[:, self._order].reshape(G.shape[0], -1, size)
            S = np.einsum("kjp,kjq->jpq", Gb, Gb)
            P = np.einsum("kjp,kjq->jpq", Fb, Gb)
            for j in range(len(self.blocks)):
                self.block_S[j] += S[j]
                self.block_P[j] += P[j]
            return
        for j, index in enumerate(self.blocks):
            Gj, Fj = G[:, index], F[:, index]
            self.block_S[j] += Gj.T @ Gj
            self.block_P[j] += Fj.T @ Gj

    def _choose_basis(self, iterations=30):
        """U: the leading directions of the buffered records' residual drift
        ``f + D g``, with ``D`` and the low-rank part fitted to the buffer by
        alternation (a diagonal fit alone would leave its own error in the residual).
        The directions come from the small Gram matrix ``R Rᵀ`` of the m buffered
        residuals (m × m), not from an SVD of the n × m matrix."""
        F, G = (x[:self._buffered] for x in self._buffer)
        self._buffer, self._buffered = None, 0
        a = np.einsum("ki,ki->i", G, G)
        b = np.einsum("ki,ki->i", F, G)
        f_sq = float(np.einsum("ki,ki->", F, F))
        # Σ_k g_ki (U C Uᵀ g_k)_i, the low-rank part's share in the diagonal fit, as
        # Σ_a U_ia (Gᵀ H C)_ia: n × r numbers, not another m × n array
        extra = np.zeros(self.n)
        U = np.zeros((self.n, 0))
        d_before = None
        for _ in range(iterations):
            d = _diagonal_fit(a, b, extra)
            if d_before is not None and np.max(np.abs(d - d_before)) <= 1e-12 * max(np.max(d), 1e-300):
                break
            d_before = d
            R = G * d                           # what the diagonal part leaves: f + D g
            R += F
            vals, vecs = np.linalg.eigh(R @ R.T)
            order = np.argsort(vals)[::-1]
            vals, vecs = vals[order], vecs[:, order]
            if not vals.size or vals[0] <= 0:
                break
            keep = (vals > 1e-20 * vals[0])[:self.rank_max].nonzero()[0]
            U = (R.T @ vecs[:, keep]) / np.sqrt(vals[keep])      # orthonormal columns
            RU = R @ U                          # Uᵀ(f_k + D g_k)
            del R
            H = G @ U
            residual_sq = f_sq + 2 * d @ b + (d * d) @ a          # Σ ‖f + D g‖² on the buffer
            C, _ = fit_constant_metric(H.T @ H, RU.T @ H, residual_sq)
            if C is None:
                break
            extra = np.einsum("ia,ia->i", U, G.T @ (H @ C))
        self.U = U
        r = self.U.shape[1]
        self.US = np.zeros((r, self.n))
        self.Q = np.zeros((r, r))
        self._add_low_rank(F, G)

    def _add_low_rank(self, F, G):
        if self.U.shape[1] == 0:
            return
        H = G @ self.U                  # h_k = Uᵀ g_k
        self.US += H.T @ G
        self.Q += (F @ self.U).T @ H

    # -- the fits -----------------------------------------------------------------
    @property
    def ff(self):
        return float(self.fsq.sum())

    def _residual(self, J):
        return float(np.sqrt(max(J, 0.0) / self.ff))

    def fit_diagonal(self):
        """``(m, relative_residual)`` of the diagonal family."""
        m = _diagonal_fit(self.a, self.b)
        J = self.ff + 2 * m @ self.b + (m * m) @ self.a
        return m, self._residual(J)

    def fit_block_diagonal(self):
        """``(blocks, relative_residual)``: the dense block of each postsynaptic
        neuron (coordinates ``self.blocks[j]``), or ``(None, None)`` when not fitted.
        Blocks of one size are fitted together (:func:`fit_constant_metric_batched`):
        10⁴ neurons are 10⁴ small fits, too many for one Python call each."""
        if self.blocks is None:
            return None, None
        sizes = np.array([len(index) for index in self.blocks])
        ff = np.array([float(self.fsq[index].sum()) for index in self.blocks])
        metrics = [None] * len(self.blocks)
        J = 0.0
        for size in np.unique(sizes):
            which = np.flatnonzero(sizes == size)
            S = np.stack([self.block_S[j] for j in which])
            P = np.stack([self.block_P[j] for j in which])
            M, residual = fit_constant_metric_batched(S, P, ff[which])
            for j, Mj in zip(which, M):
                metrics[j] = Mj
            J += float(np.sum(np.where(ff[which] > 0, residual ** 2 * ff[which], 0.0)))
        return metrics, self._residual(J)

    def _fit_low_rank_in(self, V):
        """Alternating fit of ``(D, C)`` with the basis ``U V`` (V: r × q orthonormal)."""
        U = self.U @ V
        US = V.T @ self.US
        Q = V.T @ self.Q @ V
        H = US @ U
        d = _diagonal_fit(self.a, self.b)
        best = (np.inf, d, np.zeros((V.shape[1],) * 2))
        for _ in range(_ALTERNATIONS):
            Pt = Q + (U * d[:, None]).T @ US.T        # Σ (Uᵀ(f + D g)) (Uᵀ g)ᵀ
            ff_d = self.ff + 2 * d @ self.b + (d * d) @ self.a
            C, _ = fit_constant_metric(H, Pt, ff_d) if ff_d > 0 else (None, 0.0)
            if C is None:
                C = np.zeros_like(H)
            J = _objective(C, H, Pt, ff_d)
            if J < best[0]:
                improvement = best[0] - J
                best = (J, d, C)
                if improvement <= ALTERNATION_RTOL * self.ff:
                    break
            else:
                break
            # D given C: Σ_k g_i (U C h_k)_i = Σ_a (U C)_ia (Uᵀ S)_ai
            d = _diagonal_fit(self.a, self.b, np.einsum("ia,ai->i", U @ C, US))
        J, d, C = best
        return d, U, C, self._residual(J)

    def fit_low_rank_diagonal(self, tol=CONSTANT_TOL):
        """``(d, U, C, rank, relative_residual)`` of ``M = diag(d) + U C Uᵀ``: the
        smallest rank whose residual is at most ``tol``, else the largest."""
        if self.U is None and self._buffered:
            self._choose_basis()
        if self.U is None or self.U.shape[1] == 0:
            m, residual = self.fit_diagonal()
            return m, np.zeros((self.n, 0)), np.zeros((0, 0)), 0, residual
        m, residual = self.fit_diagonal()
        if residual <= tol:                   # rank 0 suffices
            return m, np.zeros((self.n, 0)), np.zeros((0, 0)), 0, residual
        r = self.U.shape[1]
        d, U, C, residual = self._fit_low_rank_in(np.eye(r))
        found = (d, U, C, r, residual)
        if residual > tol:
            # a smaller rank in the same basis is a subset of this family: it cannot fit
            # either (each try is up to _ALTERNATIONS passes over n × r arrays)
            return found
        # the rank: the leading eigenvectors of the full-rank C span the candidates
        vals, vecs = np.linalg.eigh(C)
        vecs = vecs[:, np.argsort(vals)[::-1]]
        for q in range(1, r):
            dq, Uq, Cq, res_q = self._fit_low_rank_in(vecs[:, :q])
            if res_q <= tol:
                return dq, Uq, Cq, q, res_q
        return found

    def finish(self, tol=CONSTANT_TOL):
        """Residuals of every family, and the simplest that fits.

        Returns a dict: ``diagonal``, ``block_diagonal`` (None when not fitted) and
        ``low_rank_diagonal`` relative residuals, ``rank`` (of the low-rank part),
        ``parameters`` per family, and ``chosen`` (None when no family fits).
        """
        if self.ff <= 0:
            return {"diagonal": None, "block_diagonal": None, "low_rank_diagonal": None,
                    "rank": None, "parameters": {}, "chosen": None}
        _, diag_res = self.fit_diagonal()
        _, block_res = self.fit_block_diagonal()
        _, _, _, rank, low_res = self.fit_low_rank_diagonal(tol)
        parameters = {"diagonal": self.n, "low_rank_diagonal": self.n * (rank + 1) + rank * (rank + 1) // 2}
        residuals = {"diagonal": diag_res, "low_rank_diagonal": low_res}
        if block_res is not None:
            parameters["block_diagonal"] = sum(len(i) * (len(i) + 1) // 2 for i in self.blocks)
            residuals["block_diagonal"] = block_res
        fitting = [name for name in FAMILIES if name in residuals and residuals[name] <= tol]
        chosen = min(fitting, key=lambda name: (parameters[name], FAMILIES.index(name))) if fitting else None
        return {"diagonal": diag_res, "block_diagonal": block_res, "low_rank_diagonal": low_res,
                "rank": rank, "parameters": parameters, "chosen": chosen,
                "block_diagonal_skipped": self.block_skipped}


def fit_structured_arrays(drift, gradient, post=None, chunk=None, **options):
    """:meth:`StructuredMetricFit.finish` for in-memory arrays ``drift``, ``gradient``
    (T, n), fed in chunks of ``chunk`` records (default: all at once)."""
    F = np.atleast_2d(np.asarray(drift, float))
    G = np.atleast_2d(np.asarray(gradient, float))
    fit = StructuredMetricFit(F.shape[1], post=post, **options)
    step = chunk or F.shape[0]
    for start in range(0, F.shape[0], step):
        fit.add(F[start:start + step], G[start:start + step])
    return fit.finish()
