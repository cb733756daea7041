"""Input statistics: what the inputs are (for the simulation) and their moments (for
the expected drift of each rule, docs/math.md §8). NumPy only.

Two kinds of rate input ``x ∈ R^n``:

- ``gaussian``: ``x = μ + L z`` with ``z ~ N(0, I)`` drawn each time step,
  ``C = L Lᵀ``. ``C`` is given by its ``spectrum`` and a ``rotation`` of its
  eigenvectors (``"identity"`` or a seeded ``"random"`` orthogonal matrix), or by the
  ``covariance`` matrix itself (``L`` is then its symmetric square root).
- ``patterns``: each time step one row ``p_k`` of a set of patterns is presented,
  chosen independently with probabilities ``π_k``.

A postsynaptic neuron responds with ``y = σ(w·x)``, ``σ`` linear or rectified
(``relu``). The drift of every rate rule is a combination of the moments
``E[σ(y)^k]`` and ``E[x σ(y)^k]``, which :class:`InputStats` computes exactly:

- patterns: finite sums over the rows;
- gaussian: ``y ~ N(m, s²)`` with ``m = w·μ``, ``s² = wᵀCw``. Linear σ: the raw
  moments ``E_k = m E_{k-1} + (k-1) s² E_{k-2}``. Rectified σ: the partial moments
  ``M_k = E[y^k 1{y>0}]``, ``M_0 = Φ(m/s)``, ``M_1 = mΦ(m/s) + sφ(m/s)``, then the same
  recursion. The cross moments follow from Stein's lemma,
  ``E[x g(y)] = μ E[g(y)] + C w E[g'(y)]``, which stays exact when ``s = 0``.
"""

import numpy as np

TRANSFERS = ("linear", "relu")


def transfer(y, kind):
    """``σ(y)`` for a transfer name."""
    return y if kind == "linear" else np.maximum(y, 0.0)


def random_rotation(n, rng):
    """A uniformly (Haar) distributed rotation of R^n (orthogonal, determinant +1).

    The QR decomposition of a Gaussian matrix, the signs of ``R``'s diagonal moved
    into ``Q`` (so ``Q`` is Haar on O(n)), then the first row divided by the
    determinant: the construction, and so the draws for a given ``rng``, of
    ``scipy.stats.special_ortho_group`` (SciPy ≥ 1.11), without importing
    ``scipy.stats`` (about a second of start-up) and independent of its version."""
    z = rng.normal(size=(n, n))
    q, r = np.linalg.qr(z)
    d = r.diagonal()
    q *= (d / abs(d))[np.newaxis, :]
    q[0, :] /= np.linalg.det(q)
    return q


class InputStats:
    """Statistics of the inputs and the neuron's transfer; computes drift moments.

    Attributes: ``kind`` (``"gaussian"`` or ``"patterns"``), ``mean`` (n,),
    ``covariance`` (n, n), ``patterns`` (K, n) and ``probabilities`` (K,) for patterns,
    ``mixing`` (n, n) with ``covariance = mixing @ mixing.T`` for gaussian inputs (or
    ``None`` when the covariance is diagonal and ``scale`` suffices), ``transfer``.

    A diagonal covariance may be given as its ``variances`` alone: then nothing of size
    n² is stored or computed (``covariance`` is built only when asked for), which is
    what lets 10⁴ inputs run in megabytes rather than gigabytes.
    """

    def __init__(self, kind, mean, covariance=None, transfer="linear", patterns=None,
                 probabilities=None, mixing=None, variances=None):
        if (covariance is None) == (variances is None):
            raise ValueError("give exactly one of covariance and variances")
        self.kind = kind
        self.mean = np.asarray(mean, float)
        self.transfer = transfer
        self.patterns = patterns
        self.probabilities = probabilities
        self.mixing = mixing
        self._covariance = None if covariance is None else np.asarray(covariance, float)
        self.variances = None if variances is None else np.asarray(variances, float)

    def __repr__(self):
        return f"InputStats(kind={self.kind!r}, n={self.n}, transfer={self.transfer!r})"

    @property
    def n(self):
        return self.mean.shape[0]

    @property
    def covariance(self):
        """The covariance matrix ``C`` (n, n)."""
        if self._covariance is None:
            self._covariance = np.diag(self.variances)
        return self._covariance

    @property
    def diagonal(self):
        """Whether ``C`` is diagonal (then ``variances`` holds it)."""
        if self.variances is None:
            c = self._covariance
            if np.count_nonzero(c) == np.count_nonzero(np.diagonal(c)):
                self.variances = np.diagonal(c).copy()
        return self.variances is not None

    @property
    def scale(self):
        """Standard deviation of each input."""
        return np.sqrt(self.variances if self.diagonal else np.diagonal(self.covariance))

    def product(self, W):
        """``W C`` for weights ``W`` (..., n): O(n) per row when ``C`` is diagonal,
        otherwise one 2-D BLAS product."""
        W = np.asarray(W, float)
        if self.diagonal:
            return W * self.variances
        n = W.shape[-1]
        return (W.reshape(-1, n) @ self.covariance).reshape(W.shape)

    # -- construction --------------------------------------------------------------
    @classmethod
    def gaussian(cls, n, rng, spectrum=None, rotation="identity", covariance=None,
                 mean=None, transfer="linear"):
        mean = np.zeros(n) if mean is None else np.asarray(mean, float)
        if covariance is not None:
            C = np.asarray(covariance, float)
            vals, vecs = np.linalg.eigh(C)
            mixing = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
        else:
            lam = np.asarray(spectrum, float)
            if rotation == "identity":
                return cls("gaussian", mean, transfer=transfer, variances=lam)
            Q = random_rotation(n, rng) if n > 1 else np.eye(1)
            mixing = Q * np.sqrt(lam)
            C = (Q * lam) @ Q.T
        C = 0.5 * (C + C.T)
        return cls("gaussian", mean, C, transfer, mixing=mixing)

    @classmethod
    def from_patterns(cls, patterns, probabilities=None, transfer="linear"):
        P = np.asarray(patterns, float)
        K = P.shape[0]
        p = np.full(K, 1.0 / K) if probabilities is None else np.asarray(probabilities, float)
        p = p / p.sum()
        mean = p @ P
        centred = P - mean
        C = (centred * p[:, None]).T @ centred
        return cls("patterns", mean, C, transfer, patterns=P, probabilities=p)

    # -- moments of the response ----------------------------------------------------
    def _gaussian_moments(self, W, kmax):
        """Moments ``E[σ(y)^k]`` for k = 0..kmax, each (..., n_post)."""
        m = W @ self.mean
        s2 = np.clip(np.sum(self.product(W) * W, axis=-1), 0.0, None)
        out = []
        if self.transfer == "linear":
            out.append(np.ones_like(m))
            if kmax >= 1:
                out.append(m.copy())
        else:
            s = np.sqrt(s2)
            with np.errstate(divide="ignore", invalid="ignore"):
                # s = 0: y = m surely; P(y > 0) is 1 for m > 0 and 0 for m <= 0 (not 0 * inf)
                z = np.where(s > 0, m / np.where(s > 0, s, 1.0), np.where(m > 0, np.inf, -np.inf))
            from scipy.special import ndtr   # here, not at the top: a run never needs it

            Phi = ndtr(z)
            phi = np.where(s > 0, np.exp(-0.5 * np.where(s > 0, z, 0.0) ** 2) / np.sqrt(2 * np.pi), 0.0)
            out.append(Phi)
            if kmax >= 1:
                out.append(m * Phi + s * phi)
        for k in range(2, kmax + 1):
            out.append(m * out[k - 1] + (k - 1) * s2 * out[k - 2])
        return out

    def moment(self, W, k):
        """``E[σ(y)^k]`` for every record and postsynaptic neuron, shape ``W.shape[:-1]``
        (``k = 0`` gives 1 for both transfers, as ``σ(y)^0 = 1``)."""
        W = np.asarray(W, float)
        if k == 0:
            return np.ones(W.shape[:-1])
        if self.kind == "patterns":
            Y = transfer(np.einsum("...ji,ki->...kj", W, self.patterns), self.transfer)
            return np.einsum("k,...kj->...j", self.probabilities, Y ** k)
        return self._gaussian_moments(W, k)[k]

    def cross(self, W, k):
        """``E[x σ(y)^k]`` for every record and postsynaptic neuron, shape ``W.shape``
        (``k = 0`` gives the input mean)."""
        W = np.asarray(W, float)
        if k == 0:
            return np.broadcast_to(self.mean, W.shape).copy()
        if self.kind == "patterns":
            Y = transfer(np.einsum("...ji,ki->...kj", W, self.patterns), self.transfer)
            return np.einsum("k,...kj,ki->...ji", self.probabilities, Y ** k, self.patterns)
        moments = self._gaussian_moments(W, max(k, 1))
        # Stein's lemma: E[x g(y)] = μ E[g] + C w E[g'], g = σ^k, E[g'] = k E[σ^(k-1) σ'];
        # for both transfers σ^(k-1)σ' has the moment of order k-1 (relu: M_0 = P(y > 0)).
        result = moments[k][..., None] * self.mean
        if k >= 1:
            result = result + k * moments[k - 1][..., None] * self.product(W)
        return result


# ----------------------------------------------------------------------------------
# One W C per chunk of records

def _key(W):
    return (W.__array_interface__["data"][0], W.shape, W.strides, W.dtype.str)


class SharedProductStats(InputStats):
    """An :class:`InputStats` whose moments share one ``W C``.

    The drift of a rate rule and the gradients of its losses all need ``W C`` and the
    moments of ``y``; Oja's drift alone asks for three of them. This class memoises
    :meth:`product` and the Gaussian moments for the array last seen, so a chunk of
    records pays for one BLAS product however many moments are asked for. The memo is
    keyed on the array's memory (address, shape, strides) and holds a reference to it,
    so it is valid as long as arrays are not modified in place between calls; the
    analysis never does, and calls :meth:`clear` at each chunk.

    ``SharedProductStats(stats)`` copies ``stats``; ``base`` is the original.
    """

    def __init__(self, stats):
        self.__dict__.update(stats.__dict__)
        self.base = stats
        self.clear()

    def clear(self):
        """Forget the memoised product and moments."""
        self._memo = {}

    def _memoised(self, name, W, compute):
        key = _key(W)
        hit = self._memo.get(name)
        if hit is not None and hit[0] == key:
            return hit[2]
        value = compute()
        self._memo[name] = (key, W, value)   # W kept alive so its address stays unique
        return value

    def product(self, W):
        W = np.asarray(W, float)
        return self._memoised("product", W, lambda: InputStats.product(self, W))

    def _gaussian_moments(self, W, kmax):
        # compute up to order 3 at once: every built-in rule and loss needs at most that
        order = max(kmax, 3)
        out = self._memoised(("moments", order), W, lambda: InputStats._gaussian_moments(self, W, order))
        return out


def check_patterns(patterns, probabilities):
    """``patterns`` rows of one length; ``probabilities`` (optional) one per row,
    finite, not all zero. Raises ValueError (a config validator's message)."""
    if len({len(row) for row in patterns}) != 1:
        raise ValueError("all 'patterns' rows must have the same length")
    if probabilities is not None:
        if len(probabilities) != len(patterns):
            raise ValueError(f"'probabilities' has {len(probabilities)} entries "
                             f"for {len(patterns)} patterns")
        if not all(np.isfinite(probabilities)):
            raise ValueError("'probabilities' must be finite")
        if not sum(probabilities) > 0:
            raise ValueError("'probabilities' must not all be zero")
        total = float(np.sum(probabilities))
        if abs(total - 1.0) > 1e-9:
            # refused rather than normalised behind the user's back (the stored config
            # would show numbers the run did not use)
            raise ValueError(f"'probabilities' sum to {total:g}, not 1")
