"""Do two groups of runs give the same weight distribution (e.g. the same experiment
on two Brian2 devices, each over several seeds)?

The unit of comparison is the run: the weights of one run share its postsynaptic
neurons and its history, so they are not independent draws, and a test pooling them
(a KS test on all weights) would see a difference where there is only run-to-run
variation. Each run is summarised by its weight histogram (fractions per bin of
``[low, high]``, the weights clipped into it), and the two groups' mean histograms
are compared by

    D = Σ_b (ā_b − b̄_b)² / ((ā_b + b̄_b)/2 + ε)

(a chi²-like distance), against its exact permutation distribution: under the null
hypothesis (both groups' runs drawn from one distribution of runs) every split of the
runs into two groups of the same sizes is as likely (:func:`scipy.stats.permutation_test`,
all C(n₁ + n₂, n₁) splits). So the false-alarm rate is at most the level; with 5
runs per group the smallest p-value is 2/252 ≈ 0.008.
"""

from dataclasses import dataclass

import numpy as np

#: keeps bins empty in both groups from dividing by zero
_EPS = 1e-12


@dataclass(frozen=True)
class HistogramComparison:
    statistic: float
    pvalue: float
    #: mean histogram (fractions per bin) of each group
    first: np.ndarray
    second: np.ndarray
    edges: np.ndarray


def weight_histograms(runs, low, high, bins=10):
    """(runs, bins) fractions of each run's weights per bin of ``[low, high]``."""
    edges = np.linspace(low, high, bins + 1)
    out = []
    for weights in runs:
        w = np.clip(np.asarray(weights, float).ravel(), low, high)
        counts, _ = np.histogram(w, edges)
        out.append(counts / max(1, w.size))
    return np.array(out), edges


def _distance(a, b, axis):
    mean_a, mean_b = np.mean(a, axis=axis), np.mean(b, axis=axis)
    return np.sum((mean_a - mean_b) ** 2 / ((mean_a + mean_b) / 2 + _EPS), axis=-1)


def compare_weight_histograms(first, second, low, high, bins=10):
    """Permutation test that two groups of runs (lists of weight arrays) have the same
    distribution of weight histograms; see the module."""
    from scipy.stats import permutation_test

    if len(first) < 2 or len(second) < 2:
        raise ValueError("each group needs at least 2 runs")
    a, edges = weight_histograms(first, low, high, bins)
    b, _ = weight_histograms(second, low, high, bins)
    result = permutation_test((a, b), _distance, permutation_type="independent",
                              n_resamples=np.inf, vectorized=True, axis=0,
                              alternative="greater")
    return HistogramComparison(float(result.statistic), float(result.pvalue),
                               a.mean(axis=0), b.mean(axis=0), edges)
