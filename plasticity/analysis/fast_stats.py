"""Input moments with the product ``W C`` computed once per chunk of records.

The drift of a rate rule and the gradients of its losses all need ``W C`` (Gaussian
inputs, MATH.md §8). :class:`plasticity.inputs.InputStats` recomputes it in every
``moment``/``cross`` call (Oja's drift alone calls three of them), and forms
``wᵀCw`` with a three-operand ``einsum`` that NumPy evaluates as a plain loop. For a
run of 10 000 weights this dominates the analysis, so :class:`SharedProductStats`
wraps an ``InputStats`` and evaluates the *same formulas* (Gaussian raw/partial
moments by the recursion ``E_k = m E_{k−1} + (k−1) s² E_{k−2}``, cross moments by
Stein's lemma ``E[x g(y)] = μ E[g] + C w E[g']``) with one BLAS product per chunk,
memoised for the array last seen. Pattern inputs are delegated unchanged.

The memo is keyed on the array's memory (address, shape, strides) and holds a
reference to it, so it is valid as long as arrays are not modified in place between
calls; the analysis pipeline never does, and calls :meth:`clear` at each chunk.
The tests check the results against ``InputStats`` itself.
"""

import numpy as np
from scipy.special import ndtr

__all__ = ["SharedProductStats", "product_with_covariance"]


def _key(W):
    return (W.__array_interface__["data"][0], W.shape, W.strides, W.dtype.str)


def product_with_covariance(stats, W):
    """``W @ stats.covariance`` as one 2-D BLAS call (memoised when ``stats`` is a
    :class:`SharedProductStats`)."""
    if isinstance(stats, SharedProductStats):
        return stats.product(W)
    n = W.shape[-1]
    return (W.reshape(-1, n) @ stats.covariance).reshape(W.shape)


class SharedProductStats:
    """An :class:`~plasticity.inputs.InputStats` whose Gaussian moments share ``W C``.

    Attribute access other than ``moment``, ``cross``, ``product`` and ``clear`` goes
    to the wrapped statistics (``kind``, ``mean``, ``covariance``, ``transfer``, …).
    """

    def __init__(self, stats):
        self.base = stats
        self.clear()

    def __getattr__(self, name):
        return getattr(self.base, name)

    def clear(self):
        """Forget the memoised products."""
        self._pkey = self._pW = self._WC = None
        self._mkey = self._mW = None
        self._moments = []

    def product(self, W):
        """``W C``, shape ``W.shape``."""
        W = np.asarray(W, float)
        key = _key(W)
        if key != self._pkey:
            n = W.shape[-1]
            self._WC = (W.reshape(-1, n) @ self.base.covariance).reshape(W.shape)
            self._pkey, self._pW = key, W
        return self._WC

    def _gaussian_moments(self, W, kmax):
        key = _key(W)
        if key == self._mkey and len(self._moments) > kmax:
            return self._moments
        m = W @ self.base.mean
        s2 = np.clip(np.sum(self.product(W) * W, -1), 0.0, None)
        out = []
        if self.base.transfer == "linear":
            out.append(np.ones_like(m))
            out.append(m.copy())
        else:
            s = np.sqrt(s2)
            positive = s > 0
            safe = np.where(positive, s, 1.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                # s = 0: y = m surely; P(y > 0) is 1 for m > 0, 0 for m <= 0
                z = np.where(positive, m / safe, np.where(m > 0, np.inf, -np.inf))
            Phi = ndtr(z)
            phi = np.where(positive, np.exp(-0.5 * np.where(positive, z, 0.0) ** 2) / np.sqrt(2 * np.pi), 0.0)
            out.append(Phi)
            out.append(m * Phi + s * phi)
        for k in range(2, max(kmax, 1) + 1):
            out.append(m * out[k - 1] + (k - 1) * s2 * out[k - 2])
        self._mkey, self._mW, self._moments = key, W, out
        return out

    def moment(self, W, k):
        """``E[σ(y)^k]``, shape ``W.shape[:-1]`` (as ``InputStats.moment``)."""
        if self.base.kind != "gaussian":
            return self.base.moment(W, k)
        if k == 0:                      # σ(y)^0 = 1 for both transfers
            return np.ones(np.shape(W)[:-1])
        return self._gaussian_moments(np.asarray(W, float), k)[k]

    def cross(self, W, k):
        """``E[x σ(y)^k]``, shape ``W.shape`` (as ``InputStats.cross``)."""
        if self.base.kind != "gaussian":
            return self.base.cross(W, k)
        W = np.asarray(W, float)
        if k == 0:                      # E[x]
            return np.broadcast_to(self.base.mean, W.shape).copy()
        moments = self._gaussian_moments(W, max(k, 1))
        result = moments[k][..., None] * self.base.mean
        if k >= 1:
            result = result + k * moments[k - 1][..., None] * self.product(W)
        return result
