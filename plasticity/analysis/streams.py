"""Window quantities of a run read in memory bounded by a chunk, whatever the window.

The ``window`` drift and the statistics built on it (docs/math.md §4) pair each record
``k`` with record ``k + h``, ``h`` the window chosen from the data, which grows with
the length of a noisy run. Reading ``chunk + h`` consecutive records at once would
make memory O(n · h). Instead the two ends of the windows are read as two streams of
chunks, records ``[a, b)`` and ``[a + h, b + h)`` (:func:`window_chunks`, each record is
read twice), and sums over the ``h`` steps of a window are differences of running
prefix sums kept on the two streams (:class:`WindowSums`): no pass holds more than a
chunk of each stream.
"""

import numpy as np

from ..rules import SpikeRates

__all__ = ["prefetched", "window_chunks", "window_ends", "WindowSums", "window_rates"]


def prefetched(bounds, load, prefetch):
    """Yield ``(bounds, load(bounds))``, reading the next chunk in a thread while the
    current one is processed (HDF5 decompression overlaps the BLAS work)."""
    if not prefetch or len(bounds) < 2:
        for b in bounds:
            yield b, load(b)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(load, bounds[0])
        for i, b in enumerate(bounds):
            data = future.result()
            if i + 1 < len(bounds):
                future = pool.submit(load, bounds[i + 1])
            yield b, data


def window_chunks(run, h, chunk=None):
    """``(a, b)`` of consecutive chunks of window starts ``k = 0 … T − h − 1``, at most
    ``chunk`` records each (default :meth:`Run.chunk_size`, independent of ``h``)."""
    size = chunk or run.chunk_size()
    last = run.n_records - h
    for start in range(0, max(last, 0), size):
        yield start, min(start + size, last)


def window_ends(run, h, chunk=None, prefetch=True):
    """Yield ``((a, b), (w_a…w_{b−1}, w_{a+h}…w_{b+h−1}))``: the start and end records of
    the windows starting in each chunk, read as two streams (the next chunk of both is
    read in a thread while the current one is processed)."""
    def load(bounds):
        a, b = bounds
        return run.weights(a, b), run.weights(a + h, b + h)

    yield from prefetched(list(window_chunks(run, h, chunk)), load, prefetch)


class WindowSums:
    """``Σ_{i=k}^{k+h−1} x_i`` for consecutive window starts ``k``, where ``rows(a, b)``
    returns the rows ``x_a … x_{b−1}`` (B, …) of a sequence.

    Two running prefix sums ``P_j = Σ_{i<j} x_i`` advance in order, one at the window
    starts (rows ``[a, b)``), one at the window ends (rows ``[a + h, b + h)``), and the
    sums are ``P_{k+h} − P_k``: memory of two chunks of rows, whatever ``h``. With
    ``track_nan``, non-finite entries count as zero in the sums and make the window
    sums that contain them NaN (a count of them runs beside the sums).
    """

    def __init__(self, rows, h, chunk=1, track_nan=False):
        self.rows = rows
        self.h = int(h)
        self.chunk = max(1, int(chunk))
        self.track_nan = bool(track_nan)
        self._back = None           # [position, Σ x before it, count of NaNs before it]
        self._front = None

    def _advance(self, state, a, b, inclusive=False, keep=True):
        """Prefix sums of rows ``[a, b)`` of the stream at ``state``, exclusive
        (``Σ_{i<j}``) or ``inclusive`` (``Σ_{i≤j}``), and NaN counts likewise."""
        if state[0] != a:
            raise ValueError(f"window sums are read in order: rows {a}… after {state[0]}")
        x = np.array(self.rows(a, b), float)
        bad = None
        if self.track_nan:
            bad = ~np.isfinite(x)
            x[bad] = 0.0
            bad = np.cumsum(bad, axis=0, dtype=np.int64)
        c = np.cumsum(x, axis=0, out=x)
        before = state[1], state[2]
        state[1] = state[1] + c[-1]
        if bad is not None:
            state[2] = state[2] + bad[-1]
        state[0] = b
        if not keep:
            return None, None
        return (self._shift(before[0], c, inclusive),
                None if bad is None else self._shift(before[1], bad, inclusive))

    @staticmethod
    def _shift(total, c, inclusive):
        if inclusive:
            return np.add(total, c, out=c)
        P = np.empty_like(c)
        P[0] = total
        np.add(total, c[:-1], out=P[1:])
        return P

    def sums(self, a, b):
        """The window sums for the starts ``k = a … b − 1`` (consecutive calls continue
        where the last one stopped): ``Σ_{i≤k+h−1} x_i − Σ_{i<k} x_i``, so the rows read
        are ``x_a … x_{b+h−2}``, never beyond the last window's."""
        if self._back is None:
            if a != 0:
                raise ValueError("window sums start at window 0")
            self._back = [0, 0.0, 0]
            self._front = [0, 0.0, 0]
            for start in range(0, self.h - 1, self.chunk):   # rows before the first window's last
                self._advance(self._front, start, min(start + self.chunk, self.h - 1), keep=False)
        start_sums, start_nan = self._advance(self._back, a, b)
        out, end_nan = self._advance(self._front, a + self.h - 1, b + self.h - 1, inclusive=True)
        out -= start_sums
        if self.track_nan:
            out[end_nan - start_nan > 0] = np.nan
        return out


def window_rates(run, h, chunk=1):
    """:class:`WindowSums` of the logged firing rates: ``.rates(a, b)`` is the
    :class:`~plasticity.rules.SpikeRates` of windows ``a … b − 1``, the mean of the rows
    ``k + 1 … k + h`` (the record intervals covered by ``w_{k+h} − w_k``), as
    ``run.rates_for(a, b, h)`` but read in two streams of chunks."""
    n_pre = None

    def rows(a, b):
        nonlocal n_pre
        r = run.rates_for(a + 1, b + 1)
        pre, post = np.asarray(r.pre, float), np.asarray(r.post, float)
        n_pre = pre.shape[1]
        return np.concatenate([pre, post], axis=1)

    sums = WindowSums(rows, h, chunk, track_nan=True)

    def rates(a, b):
        mean = sums.sums(a, b) / h
        return SpikeRates(mean[:, :n_pre], mean[:, n_pre:])

    sums.rates = rates
    return sums
