"""Input moments with the product ``W C`` and the Gaussian moments computed once per
chunk of records.

The drift of a rate rule and the gradients of its losses all need ``W C`` and the
moments of ``y`` (Gaussian inputs, MATH.md §8); Oja's drift alone asks for three of
them. :class:`SharedProductStats` is an :class:`~plasticity.inputs.InputStats` that
memoises :meth:`product` and the Gaussian moments for the array last seen, so a
chunk of records pays for one BLAS product however many moments the drift and the
losses ask for. The formulas are InputStats' own.

The memo is keyed on the array's memory (address, shape, strides) and holds a
reference to it, so it is valid as long as arrays are not modified in place between
calls; the analysis pipeline never does, and calls :meth:`clear` at each chunk.
"""

import numpy as np

from ..inputs import InputStats

__all__ = ["SharedProductStats"]


def _key(W):
    return (W.__array_interface__["data"][0], W.shape, W.strides, W.dtype.str)


class SharedProductStats(InputStats):
    """An :class:`~plasticity.inputs.InputStats` whose moments share one ``W C``.

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
