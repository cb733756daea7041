"""Loss discovery: find a loss that a trajectory descends when none is given.

A loss is sought in a *family*, a linear span ``L_θ(w) = Σ_j θ_j ψ_j(w)`` of basis
functions ``ψ_j``. The drift ``f_k`` descends ``L_θ`` at record ``k`` when
``f_k·∇L_θ(w_k) = Σ_j θ_j c_kj < 0`` with ``c_kj = f_k·∇ψ_j(w_k)``: linear in θ. So
the whole trajectory enters the fit through the T × K matrix ``c`` (K basis
functions), computed while the file is streamed in chunks (:meth:`Run.chunks`):
O(T·n·K) time (O(T·n·K²) for the separable family's Gram matrices, K ≤ 6), O(n·K)
memory for the basis, plus the T × K matrix itself.

With the ``window`` drift of a smooth trajectory (weight differences over one record,
docs/math.md §4) the matching gradient is the mean-value gradient over the segment,
and then ``c_kj = (ψ_j(w_{k+1}) − ψ_j(w_k))/(t_{k+1} − t_k)`` exactly: only the values
of the basis functions at the records are needed. With a ``given`` drift (``/drift``)
``c_kj = f_k·∇ψ_j(w_k)``; for noisy paths see "Noise" below.

The fit (a linear programme, ``scipy.optimize.linprog``, as for the combination of a
rule's candidate losses in :func:`~plasticity.analysis.fitting.fit_loss_combination`):

1. each basis function is scaled by ``s_j``, the RMS norm of its gradient over the
   records, and each record's row by ``‖f_k‖ ρ_k`` (``ρ_k`` the RMS over j of
   ``‖∇ψ_j(w_k)‖/s_j``), so that margins compare across records and functions;
2. maximise the worst margin ``t = min_k −ĉ_k·θ̃`` over ``|θ̃_j| ≤ 1`` on the records of
   the *fitting half*;
3. which of the many descended losses to report: the least-squares gradient fit
   ``f_k ≈ −∇L_θ(w_k)`` (records weighted by ``1/‖f_k‖²``, from the K × K Gram
   matrices of the basis gradients accumulated in the same pass) when it descends at
   every fitting record; otherwise the coefficients closest to it (in ``Σ|θ̃_j − θ̃⁰_j|``)
   that keep at least ``KEEP`` (a quarter) of the best margin (a second LP). The
   max-margin θ alone is a vertex of the LP: it sets every coefficient the binding
   records do not constrain to ±1, and it does not recover a planted loss.

The records are split in two halves (:func:`_split`): for a trajectory that is smooth
at the record spacing, alternating blocks of records (even blocks fit, odd blocks are
held out); for a noisy sample path (window ``h > 1``), the first half fits and the
second half is held out. A loss is **found** when its margin on the fitting half is
positive and it is descended at every significant moving record of the held-out half
(held-out descent fraction 1). So a loss that only memorises the records it was fitted
on is not called found.

Noise: a window ``h > 1`` means the path is noisy at the record spacing (spikes,
random inputs; :func:`~plasticity.analysis.drift.choose_window`). The exact change of a
curved ψ over a window then contains the noise's own contribution (Itô:
``dψ = ∇ψ·dw + ½ dwᵀ∇²ψ dw``; for a random walk without drift, ``Σ_i (w_i − m)²``
grows on every window), so ``c_kj`` is taken as the Itô sum
``Σ_m ∇ψ_j(w_m)·(w_{m+1} − w_m) / Δt`` over the ``h`` single-record steps of the
window, whose noise has mean zero; its standard error is estimated from the spread
of the ``h`` terms. A record where no basis function changes by at least ``Z`` (2)
standard errors carries no information on which loss decreases: it constrains
neither the fit nor the held-out test (the JSON counts these records as
``insignificant_records``). With ``h = 1`` (a trajectory smooth at the record spacing)
or a given drift, every moving record counts, and ``c_kj`` is the exact change
``(ψ_j(w_{k+1}) − ψ_j(w_k))/Δt`` (the mean-value gradient, docs/math.md §4).

The families (:data:`FAMILIES`):

- ``separable``: ``L = Σ_i φ(w_i)``, the same φ for every weight, ``φ'`` a cubic
  polynomial of ``u = (w − mid)/half`` (``mid``, ``half``: centre and half-width of the
  range the weights visit), plus barrier terms ``−log(u + 1 + ε)`` and
  ``−log(1 + ε − u)`` at a bound where the data shows weights piling up (at least 1% of
  the weights of the last record within 10⁻³ of the range from the smallest or largest
  value the run visits);
- ``quadratic``: centred at the last fitting record ``w_ref`` (``x = w − w_ref``): the
  isotropic term ``½‖x‖²`` (or one such term per postsynaptic neuron: a block
  diagonal matrix), plus a low-rank part ``½ zᵀAz + bᵀz`` on ``z = Uᵀx``, where ``U``
  holds the mean direction ``1/√n``, the direction of motion at the end (so that
  the centre can lie beyond the last record) and the leading principal directions of the
  records ``x_k`` (one streamed pass of a randomised range finder: ``Σ_k x_k (x_kᵀΩ)``,
  O(n·r) memory). The matrix is diagonal plus low rank;
- ``rates``: for spiking run files with ``/rates``, objectives in the recorded firing
  rates, ``Σ_s w_s r_pre(s) Σ_p θ_p r_post(s)^p`` (p = 0, 1, 2) with the rates held at
  their values over each record interval (:class:`RatesFamily`);
- ``rule``: the rule's own candidate losses, when it has some.

Each found loss is then certified like any other (its ψ, κ_min, constant-metric
residual) under the name ``discovered:<family>``. A trajectory that returns to a state
it left (a rotation, a limit cycle) admits no loss (docs/math.md §7): over a closed
loop ``Σ_k c_kj ≈ 0`` for every j, so no θ has a positive margin everywhere.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import BadInput
from .drift import choose_window, window_for as _window_for
from .losses import Loss

__all__ = ["FAMILIES", "Discovery", "discover_losses", "SeparableFamily", "QuadraticFamily",
           "RatesFamily", "LossListFamily", "fit_margin", "Z", "KEEP"]

FAMILIES = ("separable", "quadratic", "rates", "rule")
#: records where no basis function changes by Z standard errors are not significant
Z = 2.0
#: when the least-squares fit does not descend everywhere, the closest coefficients
#: keeping this fraction of the best margin are reported
KEEP = 0.25
#: at most this many rows enter the LP (evenly spaced); all are checked afterwards
LP_MAX_ROWS = 4000
#: rank of the low-rank part of the quadratic family (the mean direction included)
RANK = 6
#: at most this many postsynaptic blocks get their own isotropic term
MAX_BLOCKS = 64


class TooFewRecords(BadInput):
    """The trajectory is too short for a fit and a held-out test."""


# -- families ----------------------------------------------------------------------
class SeparableFamily:
    """``Σ_i φ(w_i)`` with ``φ' ∈ span{1, u, u², u³}`` (``u = (w − mid)/half``) and
    optional barriers at the lower / upper bound (see module doc)."""

    name = "separable"
    EPS = 1e-2

    def __init__(self, lo, hi, lower_barrier=False, upper_barrier=False):
        self.mid = 0.5 * (lo + hi)
        self.half = 0.5 * (hi - lo) if hi > lo else 1.0
        self.lower_barrier = bool(lower_barrier)
        self.upper_barrier = bool(upper_barrier)
        self.names = ["u", "u^2/2", "u^3/3", "u^4/4"]
        if self.lower_barrier:
            self.names.append("-log(u+1+eps)")
        if self.upper_barrier:
            self.names.append("-log(1+eps-u)")
        self.K = len(self.names)

    def _u(self, w):
        return (np.asarray(w, float) - self.mid) / self.half

    def _phi(self, u, values=True, derivatives=True):
        """``(Φ_j(u), Φ_j'(u))`` for each basis function, lists of K arrays (B, n)
        (``None`` for the part not asked for; Φ_0' = 1 is returned as a scalar)."""
        u2 = u * u
        u3 = u2 * u
        vals = [u, 0.5 * u2, u3 / 3, 0.25 * u2 * u2] if values else None
        ders = [1.0, u, u2, u3] if derivatives else None
        e = self.EPS
        for on, a, sign in ((self.lower_barrier, u + 1 + e, -1.0), (self.upper_barrier, 1 + e - u, 1.0)):
            if not on:
                continue
            a = np.maximum(a, e * 1e-3)
            if values:
                vals.append(-np.log(a))
            if derivatives:
                ders.append(sign / a)
        return vals, ders

    def _derivatives(self, w):
        """``Φ_j'(u)`` as one array (B, K, n)."""
        u = self._u(w)
        _, ders = self._phi(u, values=False)
        D = np.empty((u.shape[0], self.K, u.shape[1]))
        for j, d in enumerate(ders):
            D[:, j] = d
        return D

    def values(self, w):
        vals, _ = self._phi(self._u(w), derivatives=False)
        return np.stack([v.sum(axis=1) for v in vals], axis=1)

    def directional(self, w, f):
        D = self._derivatives(w)
        return np.einsum("bki,bi->bk", D, f) / self.half

    def grad_norms(self, w):
        return self.grad_norms_and_gram(w)[0]

    def gram(self, w):
        return self.grad_norms_and_gram(w)[1]

    def grad_norms_and_gram(self, w):
        """Gradient norms (B, K) and per-record Gram matrices (B, K, K), from one
        evaluation of the basis."""
        D = self._derivatives(w)
        G = np.matmul(D, D.transpose(0, 2, 1)) / self.half ** 2
        return np.sqrt(np.einsum("bkk->bk", G)), G

    def function(self, theta):
        theta = np.asarray(theta, float)

        def loss(w):
            u = self._u(w)
            vals, ders = self._phi(u)
            v = sum(t * x.sum(axis=1) for t, x in zip(theta, vals))
            g = sum(t * d for t, d in zip(theta, ders)) / self.half
            return v, np.broadcast_to(g, u.shape).copy()

        return loss

    def describe(self):
        return {"mid": self.mid, "half": self.half, "eps": self.EPS,
                "features": "phi(w) = sum_j theta_j Phi_j(u), u = (w - mid)/half"}


class QuadraticFamily:
    """``½ Σ_b β_b ‖x_{G_b}‖² + ½ zᵀAz + bᵀz``, ``x = w − w_ref``, ``z = Uᵀx`` (module doc)."""

    name = "quadratic"

    def __init__(self, w_ref, U, groups=None):
        self.w_ref = np.asarray(w_ref, float)
        self.U = np.asarray(U, float)
        r = self.U.shape[1]
        self.groups = groups           # None (one isotropic term) or an int array (n,)
        self.n_groups = 1 if groups is None else int(groups.max()) + 1
        self.names = (["iso"] if groups is None else [f"block{b}" for b in range(self.n_groups)])
        self.pairs = [(a, b) for a in range(r) for b in range(a, r)]
        self.names += [f"z{a}z{b}" for a, b in self.pairs] + [f"z{a}" for a in range(r)]
        self.K = len(self.names)

    def _block_sums(self, p):
        """Sum of the (B, n) array ``p`` over each group: (B, n_groups)."""
        if self.groups is None:
            return p.sum(axis=1, keepdims=True)
        out = np.zeros((p.shape[0], self.n_groups))
        for b in range(self.n_groups):
            out[:, b] = p[:, self.groups == b].sum(axis=1)
        return out

    def values(self, w):
        x = np.asarray(w, float) - self.w_ref
        z = x @ self.U
        quad = [0.5 * z[:, a] ** 2 if a == b else z[:, a] * z[:, b] for a, b in self.pairs]
        return np.column_stack([0.5 * self._block_sums(x * x)] + quad + [z])

    def directional(self, w, f):
        x = np.asarray(w, float) - self.w_ref
        z = x @ self.U
        p = f @ self.U
        quad = [p[:, a] * z[:, a] if a == b else p[:, a] * z[:, b] + p[:, b] * z[:, a]
                for a, b in self.pairs]
        return np.column_stack([self._block_sums(f * x)] + quad + [p])

    def grad_norms(self, w):
        x = np.asarray(w, float) - self.w_ref
        z = x @ self.U
        quad = [np.abs(z[:, a]) if a == b else np.hypot(z[:, a], z[:, b]) for a, b in self.pairs]
        ones = np.ones((x.shape[0], self.U.shape[1]))
        return np.column_stack([np.sqrt(self._block_sums(x * x))] + quad + [ones])

    def gram(self, w):
        """Per-record Gram matrices of the basis gradients, in closed form: the
        low-rank gradients are ``U c`` for coefficient vectors ``c`` (U orthonormal),
        the block gradients ``x`` restricted to a block."""
        x = np.asarray(w, float) - self.w_ref
        z = x @ self.U
        B, r = z.shape
        coef = np.zeros((B, len(self.pairs) + r, r))
        for j, (a, b) in enumerate(self.pairs):
            coef[:, j, a] += z[:, b]
            if a != b:
                coef[:, j, b] += z[:, a]
        coef[:, len(self.pairs):, :] = np.eye(r)
        if self.groups is None:
            y = z[:, None, :]                                   # (B, 1, r): x·u_a
        else:
            y = np.stack([x[:, self.groups == g] @ self.U[self.groups == g]
                          for g in range(self.n_groups)], axis=1)
        nb = self.n_groups
        G = np.zeros((B, self.K, self.K))
        G[:, np.arange(nb), np.arange(nb)] = self._block_sums(x * x)
        cross = np.einsum("bgr,bjr->bgj", y, coef)
        G[:, :nb, nb:] = cross
        G[:, nb:, :nb] = np.transpose(cross, (0, 2, 1))
        G[:, nb:, nb:] = np.einsum("bjr,blr->bjl", coef, coef)
        return G

    def function(self, theta):
        theta = np.asarray(theta, float)
        nb, r = self.n_groups, self.U.shape[1]
        beta = theta[:nb]
        A = np.zeros((r, r))
        for t, (a, b) in zip(theta[nb:nb + len(self.pairs)], self.pairs):
            A[a, b] += t
            A[b, a] += t if a != b else 0.0
        lin = theta[nb + len(self.pairs):]
        scale = beta[0] if self.groups is None else beta[self.groups]

        def loss(w):
            x = np.asarray(w, float) - self.w_ref
            z = x @ self.U
            Az = z @ A
            v = 0.5 * (x * x * scale).sum(axis=1) + 0.5 * np.einsum("bi,bi->b", z, Az) + z @ lin
            g = x * scale + (Az + lin) @ self.U.T
            return v, g

        return loss

    def describe(self):
        return {"center": "last fitting record", "rank": int(self.U.shape[1]),
                "blocks": self.n_groups,
                "features": "x = w - w_ref; z = U^T x, U: mean direction + principal directions"}


class _BoundRates:
    """A :class:`RatesFamily` at the rates of B records: basis gradients ``D`` (B, K, n).
    (A plain class, not one made per call: a class object sits in a reference cycle
    and would keep its ``D`` — K records of n numbers each — until a garbage collection.)"""

    def __init__(self, family, D):
        self.name, self.K, self.names = family.name, family.K, family.names
        self.D = D

    def directional(self, w, f):
        return np.einsum("bki,bi->bk", self.D, f)

    def grad_norms_and_gram(self, w):
        G = np.matmul(self.D, self.D.transpose(0, 2, 1))
        return np.sqrt(np.einsum("bkk->bk", G)), G


class RatesFamily:
    """Objectives in the recorded firing rates (spiking run files with ``/rates``):
    ``L = Σ_s w_s r_pre(s) Σ_p θ_p r_post(s)^p``, p = 0, 1, 2, with the rates held at
    their measured values over each record interval — the form of the rate-based
    objectives of STDP (e.g. the triplet rule's BCM objective, whose gradient is
    ``−r_x y (a y − b)``). Unlike the other families its gradient depends on the record
    (through the rates), so it is evaluated through :meth:`bind`."""

    name = "rates"
    POWERS = (0, 1, 2)

    def __init__(self, pre, post, post_scale):
        self.pre = np.asarray(pre, int)
        self.post = np.asarray(post, int)
        self.post_scale = float(post_scale) if post_scale > 0 else 1.0
        self.names = [f"r_pre*(r_post/{self.post_scale:.3g} Hz)^{p}" for p in self.POWERS]
        self.K = len(self.names)

    def gradients(self, rates):
        """The basis gradients (B, K, n) at the rates of B record intervals."""
        r_pre = np.asarray(rates.pre, float)[:, self.pre]
        y = np.asarray(rates.post, float)[:, self.post] / self.post_scale
        return np.stack([r_pre * y ** p for p in self.POWERS], axis=1)

    def bind(self, rates, window=0):
        """The family at the rates of B records (``window = 0``), or averaged over
        windows of ``window`` consecutive single-record intervals (``rates`` then holds
        B + window − 1 intervals): the mean of the basis gradients over the steps of
        each window, as the window's change is their sum."""
        family = self
        D = family.gradients(rates)
        if window:
            D = np.nan_to_num(D)       # undefined intervals: their windows are left out anyway
            c = np.concatenate([np.zeros((1,) + D.shape[1:]), np.cumsum(D, axis=0)])
            D = (c[window:] - c[:-window]) / window

        return _BoundRates(family, D)

    def bind_steps(self, rates, increments, window):
        """:meth:`bind` with ``window`` for the B windows of ``rates`` (B + window − 1
        single-record intervals), and the basis directional changes of each single step
        ``increments`` (B + window − 1, n) as ``.steps``: the basis gradients are formed
        once and summed in place (K × (B + window) rows of n at most)."""
        D = self.gradients(rates)
        steps = np.einsum("bki,bi->bk", D, increments)
        np.nan_to_num(D, copy=False)     # undefined intervals: their windows are left out anyway
        np.cumsum(D, axis=0, out=D)
        windowed = D[window - 1:].copy()
        windowed[1:] -= D[:-window]
        windowed /= window
        del D
        bound = _BoundRates(self, windowed)
        bound.steps = steps
        return bound

    def function(self, theta):
        from .losses import RateLoss

        theta = np.asarray(theta, float)

        def builder(rates):
            g = np.einsum("k,bki->bi", theta, self.gradients(rates))

            def loss(w):
                w = np.asarray(w, float)
                return np.einsum("bi,bi->b", g, w), g.copy()
            return loss

        return builder

    def describe(self):
        return {"post_rate_scale_hz": self.post_scale,
                "features": "L = sum_s w_s r_pre(s) sum_p theta_p (r_post(s)/scale)^p, rates held "
                         "at their values over each record interval"}


class LossListFamily:
    """The span of given :class:`Loss` objects (the rule's own candidates)."""

    name = "rule"

    def __init__(self, losses):
        self.losses = list(losses)
        self.names = [loss.name for loss in self.losses]
        self.K = len(self.losses)

    def values(self, w):
        return np.column_stack([loss.value_and_grad(w)[0] for loss in self.losses])

    def directional(self, w, f):
        return np.column_stack([np.einsum("bi,bi->b", loss.value_and_grad(w)[1], f)
                                for loss in self.losses])

    def grad_norms(self, w):
        return np.column_stack([np.linalg.norm(loss.value_and_grad(w)[1], axis=1)
                                for loss in self.losses])

    def gram(self, w):
        D = np.stack([loss.value_and_grad(w)[1] for loss in self.losses], axis=1)
        return np.einsum("bkn,bln->bkl", D, D)

    def function(self, theta):
        def loss(w):
            v, g = 0.0, 0.0
            for t, item in zip(theta, self.losses):
                if t != 0:
                    vi, gi = item.value_and_grad(w)
                    v, g = v + t * vi, g + t * gi
            if np.isscalar(v):
                w = np.atleast_2d(w)
                return np.zeros(w.shape[0]), np.zeros_like(w)
            return v, g

        return loss

    def describe(self):
        return {"losses": self.names}


# -- the linear programme -----------------------------------------------------------
def fit_margin(C, keep=KEEP, target=None):
    """Coefficients of the basis with the best worst-case margin (module doc).

    Stage 1 maximises ``t = min_k −C_k·θ`` over ``|θ_j| ≤ 1``. When ``t > 0``: the
    target itself if its margin is positive on every row; else (stage 2) the
    coefficients closest (in ``Σ|θ_j − θ⁰_j|``) to ``target`` θ⁰ (the least
    squares gradient fit, scaled to ``max|θ⁰| = 1``; zero if not given: then the
    sparsest) among those with margin at least ``keep · t``.

    ``C``: (R, K), rows already normalised. Returns ``(theta (K,), best margin t)``."""
    from scipy.optimize import linprog

    R, K = C.shape
    if R == 0:
        return np.zeros(K), float("nan")
    if R > LP_MAX_ROWS:
        C = C[np.unique(np.linspace(0, R - 1, LP_MAX_ROWS).round().astype(int))]
    R = C.shape[0]
    # stage 1: variables (θ, t); minimise −t s.t. C θ + t ≤ 0
    c = np.zeros(K + 1)
    c[-1] = -1.0
    res = linprog(c, A_ub=np.hstack([C, np.ones((R, 1))]), b_ub=np.zeros(R),
                  bounds=[(-1.0, 1.0)] * K + [(None, None)], method="highs")
    if not res.success:
        return np.zeros(K), float("nan")
    theta, best = res.x[:K], float(res.x[-1])
    if best > 0:
        t0 = np.zeros(K) if target is None else np.asarray(target, float)
        top = np.max(np.abs(t0))
        t0 = t0 / top if top > 0 and np.all(np.isfinite(t0)) else np.zeros(K)
        if np.any(t0) and np.min(-C @ t0) > 0:
            return t0, best          # the target itself descends at every record
        # stage 2: variables (θ, e), e ≥ |θ − θ⁰|; minimise Σe s.t. Cθ ≤ −keep·t
        I = np.eye(K)
        A = np.vstack([np.hstack([C, np.zeros((R, K))]),
                       np.hstack([I, -I]), np.hstack([-I, -I])])
        rhs = np.concatenate([np.full(R, -keep * best), t0, -t0])
        res2 = linprog(np.concatenate([np.zeros(K), np.ones(K)]), A_ub=A, b_ub=rhs,
                       bounds=[(-1.0, 1.0)] * K + [(0.0, None)] * K, method="highs")
        if res2.success:
            theta = res2.x[:K]
    return theta, best


@dataclass
class Discovery:
    """The result of fitting one family (see :func:`discover_losses`)."""

    family: str
    names: list
    coefficients: np.ndarray
    fit_margin: float
    heldout_margin: float
    heldout_descent_fraction: float
    fit_records: int
    heldout_records: int
    insignificant_records: int
    found: bool
    loss: Loss
    basis: dict = field(default_factory=dict)
    margins: np.ndarray = None
    heldout: np.ndarray = None

    def summary(self):
        def num(x):
            return None if x is None or not np.isfinite(x) else float(x)
        return {"family": self.family, "found": bool(self.found),
                "coefficients": {n: float(c) for n, c in zip(self.names, self.coefficients)},
                "fit_margin": num(self.fit_margin), "heldout_margin": num(self.heldout_margin),
                "heldout_descent_fraction": num(self.heldout_descent_fraction),
                "fit_records": self.fit_records, "heldout_records": self.heldout_records,
                "insignificant_records": self.insignificant_records, "features": self.basis}


# -- streaming passes -----------------------------------------------------------------
def _scan(run, rank, end=None, seed=0):
    """One pass: the range of the weights and the randomised range finder
    ``Σ_k x_k (x_kᵀΩ)`` for the principal directions of records ``0 … end−1`` (the
    fitting records); whether record ``end − 1`` has weights piled up at either end of
    the range."""
    n = run.n_synapses
    T = run.n_records if end is None else int(end)
    w_ref = run.weights(T - 1, T)[0]
    # the direction of motion at the end: the centre may lie beyond the last record
    motion = w_ref - run.weights(max(0, T - 1 - max(1, T // 50)), T)[0]
    p = max(0, rank - 1)
    omega = np.random.default_rng(seed).standard_normal((n, p + 4)) if p else None
    sketch = np.zeros((n, p + 4)) if p else None
    lo, hi = np.inf, -np.inf
    for a, b in run.chunks():
        w = run.weights(a, b)
        lo, hi = min(lo, w.min()), max(hi, w.max())
        if p and a < T:
            w = w[:T - a]
            x = w - w_ref
            sketch += x.T @ (x @ omega)
    # weights pile up at a bound by the end of a run: judged on the last record
    tol = 1e-3 * (hi - lo)
    at_lo = np.count_nonzero(w_ref <= lo + tol) >= max(1, 0.01 * n)
    at_hi = np.count_nonzero(w_ref >= hi - tol) >= max(1, 0.01 * n)
    return dict(lo=float(lo), hi=float(hi), w_ref=w_ref, sketch=sketch, motion=motion,
                lower=bool(at_lo and hi > lo), upper=bool(at_hi and hi > lo))


def _basis_directions(sketch, motion, n, rank):
    """Orthonormal ``U`` (n, r): the mean direction, the direction of motion at the end,
    then the sketch's leading directions (each orthogonalised against the previous)."""
    columns = [np.full(n, 1.0 / np.sqrt(n))]

    def add(v):
        v = np.asarray(v, float)
        size = np.linalg.norm(v)
        for _ in range(2):                      # twice: orthogonal to round-off
            v = v - np.column_stack(columns) @ (np.column_stack(columns).T @ v)
        if size > 0 and np.linalg.norm(v) > 1e-8 * size and len(columns) < min(rank, n):
            columns.append(v / np.linalg.norm(v))

    add(motion)
    if sketch is not None and len(columns) < min(rank, n):
        B = np.column_stack(columns)
        S = sketch - B @ (B.T @ sketch)
        left, sv, _ = np.linalg.svd(S, full_matrices=False)   # leading directions first
        for v, sigma in zip(left.T, sv):
            if sigma > 1e-10 * max(sv[0], 1e-300):
                add(v)
    return np.column_stack(columns)


def _has_rates(run):
    """Whether the run logged firing rates (a spiking run file with ``/rates``)."""
    try:
        run.rates_for(0, min(2, run.n_records))
    except BadInput:
        return False
    return True


def _median(parts):
    """The median of the non-NaN values of the arrays ``parts`` (1.0 if none), from their
    distinct values and counts: memory of the distinct values (few for spike rates,
    counts over a record interval), not of all values."""
    values, counts = np.zeros(0), np.zeros(0)
    for x in parts:
        u, c = np.unique(x[~np.isnan(x)], return_counts=True)
        values, where = np.unique(np.concatenate([values, u]), return_inverse=True)
        counts = np.bincount(where, weights=np.concatenate([counts, c]), minlength=values.size)
    total = int(round(counts.sum()))
    if total == 0 or not np.isfinite(values).any():
        return 1.0
    cum = np.cumsum(counts)
    lower = values[np.searchsorted(cum, (total - 1) // 2, side="right")]
    upper = values[np.searchsorted(cum, total // 2, side="right")]
    return float(0.5 * (lower + upper)) if lower != upper else float(lower)


def _window_sums(steps, h):
    """Sums of ``h`` consecutive rows of ``steps`` (B + h − 1, K), and the largest over
    j of ``|sum| / SE``, SE its standard error estimated from the spread of the ``h``
    terms (``inf`` for ``h = 1``: no spread to estimate). Returns ``(sums (B, K), z (B,))``."""
    B = steps.shape[0] - h + 1
    c1 = np.concatenate([np.zeros((1, steps.shape[1])), np.cumsum(steps, axis=0)])
    s1 = c1[h:h + B] - c1[:B]
    if h <= 1:
        return s1, np.full(B, np.inf)
    c2 = np.concatenate([np.zeros((1, steps.shape[1])), np.cumsum(steps * steps, axis=0)])
    s2 = c2[h:h + B] - c2[:B]
    var = np.maximum(s2 - s1 * s1 / h, 0.0) / (h - 1)          # of one term
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(s1) / np.sqrt(var * h)
    ratio = np.where(np.isnan(ratio), 0.0, ratio)
    return s1, ratio.max(axis=1)


def _split(rows, n_records, h):
    """Which records fit (1), which are held out (0), which neither (−1).

    A trajectory smooth at the record spacing (``h ≤ 1``): alternating blocks of
    ``max(1, rows/20)`` records. A noisy sample path (``h > 1``): the first half fits,
    the second half is held out (windows that straddle the middle are left out). For
    noise, an interleaved split would not do: a random walk moves, on average, towards
    its own last record, so a loss centred there would be "descended" on every block;
    centred at the end of the first half, it is not on the second."""
    k = np.arange(rows)
    if h <= 1:
        block = max(1, rows // 20)
        return np.where((k // block) % 2 == 0, 1, 0).astype(np.int8)
    half = n_records // 2
    return np.where(k + h <= half, 1, np.where(k >= half, 0, -1)).astype(np.int8)


def _step_features(run, families, rated, chunk=None):
    """One pass over consecutive records: per family, the K directional changes
    ``∇ψ_j(w_m)·(w_{m+1} − w_m)`` of every single step m (T − 1 rows, K numbers each:
    O(T·K) memory), for the Itô sums of a noisy path and for the rates family (whose
    steps use the rates of interval m + 1); the rates family's steps with no rate are 0,
    and flagged."""
    steps = {fam.name: [] for fam in families}
    bad = {fam.name: [] for fam in rated}
    for start, stop in run.chunks(chunk, overlap=1):
        w = run.weights(start, stop + 1)
        d = np.diff(w, axis=0)                          # steps start … stop − 1
        for fam in families:
            if fam in rated:
                D = fam.gradients(run.rates_for(start + 1, stop + 1))
                part = np.einsum("bki,bi->bk", D, d)
                del D
                flag = ~np.all(np.isfinite(part), axis=1)
                part[flag] = 0.0
                bad[fam.name].append(flag)
            else:
                part = fam.directional(w[:-1], d)
            steps[fam.name].append(part)
    cat = np.concatenate
    return ({k: cat(v) for k, v in steps.items()}, {k: cat(v) for k, v in bad.items()})


def _features(run, families, kind, h, split, z, chunk=None):
    """Stream the records. Per family: the T' × K matrix ``c``, the gradient norms, the
    significance of each record (:func:`_window_z`) and the weighted Gram sums
    ``Σ_k (∇ψ_j·∇ψ_l)/‖f_k‖²`` over the significant records of the fitting half (one
    per octave of ‖f_k‖, see below); per record ``‖f_k‖``.

    With the window drift, the two ends of the windows are read as two streams of
    chunks (:func:`~plasticity.analysis.streams.window_ends`) and the sums over the h
    steps of a window come from single-step quantities (:func:`_step_features`) or
    running prefix sums (the rates family's mean gradients): memory of a chunk,
    whatever h."""
    from .streams import WindowSums, window_ends

    cols = {fam.name: [] for fam in families}
    norms = {fam.name: [] for fam in families}
    zscore = {fam.name: [] for fam in families}
    grams = {fam.name: {} for fam in families}
    f_norm = []
    # the least-squares right-hand side Σ_k f_k·∇ψ_j(w_k)/‖f_k‖², binned like the Gram
    # matrices (with the same gradients; the Itô sums of ``c`` are for the margins)
    rated = [fam for fam in families if isinstance(fam, RatesFamily)]
    window_sums, window_z, mean_gradients = {}, {}, {}
    if kind != "given":
        stepped = families if h > 1 else rated
        if stepped:
            steps, bad = _step_features(run, stepped, rated, chunk)
            for fam in stepped:
                # a noisy path: the Itô sum Σ_m ∇ψ(w_m)·(w_{m+1} − w_m) over the window,
                # whose noise has mean zero (the exact change of ψ would add the noise's
                # own ½ Σ Δwᵀ∇²ψ Δw); the rates family (linear in w at given rates):
                # the sum over single steps is exact
                sums, window_z[fam.name] = _window_sums(steps[fam.name], h)
                if fam.name in bad:
                    spoiled = _window_sums(bad[fam.name][:, None].astype(float), h)[0][:, 0] > 0
                    sums[spoiled] = np.nan
                window_sums[fam.name] = sums
            del steps
        for fam in rated:
            # the basis gradients averaged over the steps of each window (undefined
            # intervals count as 0: their windows are left out anyway)
            def rows(a, b, fam=fam):
                return np.nan_to_num(fam.gradients(run.rates_for(a + 1, b + 1)))
            mean_gradients[fam.name] = WindowSums(rows, h, chunk or run.chunk_size())
        parts = window_ends(run, h, chunk)
    else:
        parts = ((bounds, None) for bounds in run.chunks(chunk))
    for (start, stop), ends in parts:
        fit = split[start:stop] == 1
        bound = {}
        if kind == "given":
            for fam in rated:
                bound[fam.name] = fam.bind(run.rates_for(start, stop))
            w = run.weights(start, stop)
            f = run.read_drift(start, stop)
            fn = np.linalg.norm(f, axis=1)
            at = w
            dirs = {fam.name: bound.get(fam.name, fam).directional(w, f) for fam in families}
            zs = {fam.name: np.full(stop - start, np.inf) for fam in families}
        else:
            w0, w1 = ends
            for fam in rated:
                D = mean_gradients[fam.name].sums(start, stop)
                D /= h
                bound[fam.name] = _BoundRates(fam, D)
            dt = (run.time[start + h:stop + h] - run.time[start:stop])[:, None]
            f = (w1 - w0) / dt
            fn = np.linalg.norm(f, axis=1)
            # the least-squares fit and the row scales evaluate the basis gradients at
            # the midpoint of each window when the path is smooth (the mean-value
            # gradient of a quadratic), at its start when it is noisy: the increments
            # after w_k are independent of w_k, so f_k·∇ψ(w_k) carries no Itô term
            at = 0.5 * (w0 + w1) if h <= 1 else w0
            dirs, zs = {}, {}
            for fam in families:
                if fam.name in window_sums:
                    dirs[fam.name] = window_sums[fam.name][start:stop] / dt
                    zs[fam.name] = window_z[fam.name][start:stop]
                else:
                    dirs[fam.name] = (fam.values(w1) - fam.values(w0)) / dt   # exact: mean-value gradient
                    zs[fam.name] = np.full(stop - start, np.inf)
        for fam in families:
            use = fit & np.isfinite(fn) & (fn > 0) & (zs[fam.name] >= z)
            cols[fam.name].append(dirs[fam.name])
            zscore[fam.name].append(zs[fam.name])
            fam = bound.get(fam.name, fam)
            if hasattr(fam, "grad_norms_and_gram"):
                N, G = fam.grad_norms_and_gram(at)
                G = G[use]
            else:
                N = fam.grad_norms(at)
                G = fam.gram(at[use]) if use.any() else None
            norms[fam.name].append(N)
            if use.any():
                weight = 1.0 / fn[use] ** 2
                ok = np.all(np.isfinite(G), axis=(1, 2))
                # binned by the octave of ‖f_k‖: the records at rest (‖f‖ below
                # FIXED_POINT_RTOL × the largest, known only at the end) are left out then
                octave = np.floor(np.log2(fn[use][ok])).astype(int)
                part = weight[ok, None, None] * G[ok]
                rhs = weight[ok, None] * fam.directional(at, f)[use][ok]
                bins = grams[fam.name]
                for o in np.unique(octave):
                    sel = octave == o
                    A0, b0 = bins.get(int(o), (0.0, 0.0))
                    bins[int(o)] = (A0 + part[sel].sum(axis=0), b0 + rhs[sel].sum(axis=0))
        f_norm.append(fn)
    cat = np.concatenate
    return ({k: cat(v) for k, v in cols.items()}, {k: cat(v) for k, v in norms.items()},
            {k: cat(v) for k, v in zscore.items()}, grams, cat(f_norm))


def discover_losses(run, drift="auto", window=None, families=None, rule_losses=None,
                    rank=RANK, chunk=None, z=Z, keep=KEEP):
    """Fit each family of losses to an opened run (see module doc).

    Parameters
    ----------
    run : Run
    drift : {"auto", "given", "window"}
        ``auto``: the file's ``/drift`` if it has one, else ``window``.
    window : int, optional
        Window of the window drift (records); chosen from the data if None.
    families : sequence of str, optional
        Subset of :data:`FAMILIES` (default: all that apply).
    rule_losses : list of Loss, optional
        The ``rule`` family (skipped when empty).
    rank : int
        Rank of the low-rank part of the quadratic family.
    z : float
        Significance threshold of the window drift, in standard errors.

    Returns
    -------
    (list of Discovery, info dict)
        ``info``: ``drift``, ``window``, ``records``, ``moving``, ``split``, ``z``.
    """
    from .fitting import FIXED_POINT_RTOL

    if drift == "auto":
        kind = "given" if run.has_drift else "window"
    elif drift in ("given", "window"):
        kind = drift
        if kind == "given" and not run.has_drift:
            raise BadInput(f"{run.path}: has no /drift dataset")
    else:
        raise BadInput(f"loss discovery: drift {drift!r} not supported (use given or window)")
    h = _window_for(run, window) if kind == "window" else 0
    if run.n_records < h + 3:
        raise TooFewRecords(f"{run.path}: {run.n_records} records are too few to discover a loss "
                            f"(window {h})")
    wanted = FAMILIES if families is None else tuple(families)
    unknown = [f for f in wanted if f not in FAMILIES]
    if unknown:
        raise BadInput(f"unknown loss family {unknown[0]!r} (allowed: {', '.join(FAMILIES)})")
    T = run.n_records - h if kind == "window" else run.n_records
    split = _split(T, run.n_records, h)
    # the fitting records (and the quadratic's centre, the last of them) come first
    fit_end = run.n_records if h <= 1 else run.n_records // 2
    scan = _scan(run, rank if "quadratic" in wanted else 0, fit_end)
    fams = []
    if "separable" in wanted:
        fams.append(SeparableFamily(scan["lo"], scan["hi"], scan["lower"], scan["upper"]))
    if "quadratic" in wanted:
        U = _basis_directions(scan["sketch"], scan["motion"], run.n_synapses, rank)
        groups = None
        if 1 < run.n_post <= MAX_BLOCKS and run.source == "run":
            groups = np.asarray(run.post, int)
        fams.append(QuadraticFamily(scan["w_ref"], U, groups))
    if "rates" in wanted and _has_rates(run):
        scale = _median((np.asarray(run.rates_for(a, b).post, float).ravel() for a, b in run.chunks()))
        fams.append(RatesFamily(run.pre, run.post, scale))
    if "rule" in wanted and rule_losses:
        fams.append(LossListFamily(rule_losses))
    cols, norms, zscore, grams, f_norm = _features(run, fams, kind, h, split, z, chunk)
    finite = np.isfinite(f_norm)
    moving = finite & (f_norm > FIXED_POINT_RTOL * (f_norm[finite].max() if finite.any() else 0.0))
    fit_rows, held_rows = split == 1, split == 0
    info = {"drift": kind, "window": h if kind == "window" else None, "records": int(T),
            "moving": int(moving.sum()), "split": "alternate blocks" if h <= 1 else "first half / second half", "z": z}
    out = []
    for fam in fams:
        C, N = cols[fam.name], norms[fam.name]
        significant = moving & (zscore[fam.name] >= z)
        ok = significant & np.all(np.isfinite(C), axis=1) & np.all(np.isfinite(N), axis=1)
        scale = np.sqrt(np.mean(N[ok & fit_rows] ** 2, axis=0)) if (ok & fit_rows).any() else np.ones(fam.K)
        scale = np.where(scale > 0, scale, 1.0)
        rho = np.sqrt(np.mean((N / scale) ** 2, axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            Cn = C / scale / (f_norm * rho)[:, None]
        ok &= np.all(np.isfinite(Cn), axis=1)
        fit, held = ok & fit_rows, ok & held_rows
        # least squares f_k ≈ −∇L_θ(w_k), each record weighted by 1/‖f_k‖²
        # (in the scaled basis θ̃ = θ·s, whose Gram matrix is far better conditioned)
        rest = FIXED_POINT_RTOL * (f_norm[finite].max() if finite.any() else 0.0)
        kept = [Ab for o, Ab in grams[fam.name].items() if 2.0 ** o > rest]
        A = sum((Ab[0] for Ab in kept), np.zeros((fam.K, fam.K))) / np.outer(scale, scale)
        b = sum((Ab[1] for Ab in kept), np.zeros(fam.K)) / scale
        d = np.sqrt(np.clip(np.diag(A), 1e-300, None))
        theta_ls = np.linalg.lstsq(A / np.outer(d, d), -b / d, rcond=1e-12)[0] / d
        theta_s, best = fit_margin(Cn[fit], keep, target=theta_ls)
        margins = -Cn @ theta_s
        fit_m = float(np.min(margins[fit])) if fit.any() else float("nan")
        held_m = float(np.min(margins[held])) if held.any() else float("nan")
        held_frac = float(np.mean(margins[held] > 0)) if held.any() else float("nan")
        theta = theta_s / scale
        top = np.max(np.abs(theta)) if theta.size else 0.0
        if top > 0:
            theta = theta / top                 # a loss is defined up to a positive factor
        found = bool(fit.any() and held.any() and fit_m > 1e-9 and held_frac == 1.0)
        name = f"discovered:{fam.name}"
        if isinstance(fam, RatesFamily):
            from .losses import RateLoss
            loss = RateLoss(name, fam.function(theta), "rate objective fitted to the trajectory")
        else:
            loss = Loss(name, fam.function(theta), f"{fam.name} loss fitted to the trajectory")
        out.append(Discovery(fam.name, list(fam.names), theta, fit_m, held_m, held_frac,
                             int(fit.sum()), int(held.sum()), int((moving & ~significant).sum()),
                             found, loss, fam.describe(), margins, held_rows))
    return out, info


def discovery_certificates(run, certify_run, drift="auto", window=None, rule_losses=None):
    """Discover losses in an opened run and certify the ones found (the work of
    ``plasticity analyze`` on a trajectory with no loss given).

    Returns ``(certificates, section)``: one :class:`Certificate` per found loss, named
    ``discovered:<family>``, its summary extended with the fit (``family``,
    ``coefficients``, ``fit_margin``, ``heldout_margin``, ``heldout_descent_fraction``,
    ``basis``); ``section`` is the document's ``discovery`` entry: the drift and window
    used, how many records moved, every family tried and which were found.
    ``certify_run`` is the pipeline's certifier (passed in: the pipeline calls this).
    """
    kind = drift if drift in ("given", "window") else "auto"
    try:
        results, info = discover_losses(run, kind, window, rule_losses=rule_losses)
    except TooFewRecords as why:
        return [], {"skipped": str(why), "families": [], "found": []}
    certs = []
    for d in results:
        if not d.found:
            continue
        cert = certify_run(run, [d.loss], info["drift"], info["window"])[0]
        fit = d.summary()
        fit.pop("found")
        cert.extra.update(fit)
        certs.append(cert)
    section = dict(info)
    section["families"] = [d.summary() for d in results]
    section["found"] = [f"discovered:{d.family}" for d in results if d.found]
    return certs, section
