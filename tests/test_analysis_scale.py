"""The analysis at scale: what keeps ``plasticity analyze`` O(n) per record on sparse
networks of many synapses (speed and memory numbers: benchmarks/bench_analyze_large.py)."""

import tracemalloc

import numpy as np
import pytest

from plasticity.analysis import analyze_file
from plasticity.analysis.drift import expected_drift
from plasticity.analysis.fitting import fit_constant_metric
from plasticity.analysis.recurrence import NoiseModel, find_recurrence, whitening
from plasticity.analysis.structured import fit_constant_metric_batched, fit_structured_arrays
from plasticity.io import RunFile
from plasticity.io.layout import Layout
from plasticity.rules import RULES, SpikeRates


def test_batched_block_fits_are_the_dense_fits():
    rng = np.random.default_rng(3)
    S, P, ff = [], [], []
    for j in range(40):
        G = rng.standard_normal((12, 5))
        A = rng.standard_normal((5, 5))
        M = A @ A.T if j % 4 else -(A @ A.T)           # some blocks have no SPD fit
        F = -G @ M + (j % 3) * rng.standard_normal((12, 5))
        S.append(G.T @ G)
        P.append(F.T @ G)
        ff.append(float(np.sum(F * F)))
    ff[7] = 0.0
    M, residual = fit_constant_metric_batched(np.stack(S), np.stack(P), np.array(ff))
    for j in range(40):
        if ff[j] == 0:
            assert residual[j] == 0 and not M[j].any()
            continue
        Mj, rj = fit_constant_metric(S[j], P[j], ff[j])
        if Mj is None:
            assert residual[j] == 1.0 and not M[j].any()
            continue
        assert residual[j] == pytest.approx(rj, abs=1e-6)
        # the refinement stops once the residual has converged: the metric to 1e-3
        assert np.allclose(M[j], Mj, atol=1e-3 * np.abs(Mj).max())


def test_planted_block_metric_with_unequal_blocks_is_found():
    # 300 neurons of 2…6 synapses each: many small blocks of several sizes
    rng = np.random.default_rng(5)
    sizes = rng.integers(2, 7, 300)
    post = np.repeat(np.arange(sizes.size), sizes)
    n = post.size
    M = np.zeros((n, n))
    for j in range(sizes.size):
        index = np.flatnonzero(post == j)
        A = rng.standard_normal((index.size, index.size))
        M[np.ix_(index, index)] = A @ A.T / index.size + np.eye(index.size)
    G = rng.standard_normal((40, n))
    out = fit_structured_arrays(-G @ M, G, post=post, chunk=9)
    assert out["block_diagonal"] < 1e-3 and out["chosen"] == "block_diagonal"
    assert out["diagonal"] > 0.1 and out["low_rank_diagonal"] > 0.1


def test_spiking_drift_per_synapse_is_the_dense_one():
    rng = np.random.default_rng(0)
    n_pre, n_post, B = 9, 7, 4
    pairs = sorted({(int(i), int(j)) for i, j in zip(rng.integers(0, n_pre, 40), rng.integers(0, n_post, 40))})
    pre, post = np.array(pairs).T
    layout = Layout(pre, post, n_pre, n_post)
    rates = SpikeRates(rng.uniform(1, 20, (B, n_pre)), rng.uniform(1, 20, (B, n_post)))
    for name, options in [("stdp", {"bounds": "soft"}), ("stdp", {"bounds": "hard"}), ("triplet", {})]:
        rule = RULES[name]
        params = rule.resolve(options)
        w = rng.uniform(0, params["w_max"], (B, pre.size))
        W, _ = layout.dense(w)
        dW, _ = rule.drift(W, None, rates, params)
        assert np.allclose(expected_drift(rule, params, rates, layout, w), dW[:, post, pre]), name


def test_sparse_losses_are_the_dense_ones():
    """``norm`` and ``triplet_bcm`` per synapse on a sparse layout equal their dense
    forms (evaluated here on the all-to-all layout that holds the same synapses)."""
    from plasticity.analysis.losses import make_loss

    rng = np.random.default_rng(4)
    n_pre, n_post, B = 8, 6, 3
    pairs = sorted({(int(i), int(j)) for i, j in zip(rng.integers(0, n_pre, 30), rng.integers(0, n_post, 30))})
    pre, post = np.array(pairs).T
    sparse = Layout(pre, post, n_pre, n_post)
    full = Layout.dense_full(n_pre, n_post)
    assert not sparse.full and full.full
    w = rng.uniform(0, 0.5, (B, pre.size))
    W = np.zeros((B, n_post, n_pre))
    W[:, post, pre] = w
    at = post * n_pre + pre                      # the sparse synapses in the full order
    rates = SpikeRates(rng.uniform(1, 20, (B, n_pre)), rng.uniform(1, 20, (B, n_post)))
    params = RULES["triplet"].resolve({})
    for name in ("norm", "triplet_bcm"):
        loss_s = make_loss(name, None, sparse, "triplet", params)
        loss_f = make_loss(name, None, full, "triplet", params)
        if name == "triplet_bcm":
            loss_s, loss_f = loss_s.at(rates), loss_f.at(rates)
        v_s, g_s = loss_s.value_and_grad(w)
        v_f, g_f = loss_f.value_and_grad(W.reshape(B, -1))
        assert np.allclose(g_s, g_f[:, at]), name
        assert np.allclose(v_s, v_f), name


def test_diagonal_whitening_is_a_vector_and_means_the_diagonal_matrix():
    rng = np.random.default_rng(2)
    n = 300
    phase = np.linspace(0, 4 * np.pi, 400)           # two turns of a circle in 300 dimensions
    X = (np.outer(np.cos(phase), rng.standard_normal(n)) + np.outer(np.sin(phase), rng.standard_normal(n))
         + 0.01 * rng.standard_normal((400, n)) * rng.uniform(0.1, 3.0, n))
    A = whitening(X)
    assert A.shape == (n,)
    noise = NoiseModel.from_records(X)
    assert noise.whiten.shape == (n,)
    d = np.diff(X, 2, axis=0)
    assert np.allclose(noise.whiten, 1 / np.sqrt(np.einsum("ij,ij->j", d, d) / (2 * d.shape[0])))
    # the same answer as the explicit diagonal matrices
    found = find_recurrence(X, noise=noise)
    explicit = find_recurrence(X, metric=np.diag(A), noise=NoiseModel(np.diag(noise.whiten), n))
    assert found is not None and explicit is not None
    assert (found.i, found.j) == (explicit.i, explicit.j)
    assert found.distance == pytest.approx(explicit.distance)
    assert found.significance["statistic"] == pytest.approx(explicit.significance["statistic"])


def _sparse_stdp_file(path, records, neurons=400, per_post=10, seed=0):
    """A spiking run file of a sparse network (soft-bound pair STDP), as the recorder
    writes it: weights drift to their fixed point at Poisson-sampled rates."""
    rng = np.random.default_rng(seed)
    post = np.repeat(np.arange(neurons), per_post)
    pre = rng.integers(0, neurons, post.size)
    params = RULES["stdp"].resolve({"bounds": "soft", "w_max": 0.04, "A_plus": 0.01, "A_minus": 0.0105})
    config = (f'name = "sparse"\nseed = 1\n\n[network]\nmodel = "ei_network"\nn_pre = {neurons}\n'
              f'n_post = {neurons}\n\n[rule]\nname = "stdp"\nbounds = "soft"\nw_max = 0.04\n'
              'A_plus = 0.01\nA_minus = 0.0105\n')
    run = RunFile(path, post.size, extra_sizes={"rates/pre": neurons, "rates/post": neurons})
    run.write_metadata(config_toml=config, rule="stdp", model="ei_network", seed=1, pre=pre, post=post)
    w = rng.uniform(0, 0.04, post.size)
    nan = np.full(neurons, np.nan)
    run.append(0.0, w, extra={"rates/pre": nan, "rates/post": nan})
    base = rng.uniform(2, 20, neurons)
    layout = Layout(pre, post, neurons, neurons)
    for k in range(1, records):
        r = rng.poisson(base * 0.1) / 0.1
        f = expected_drift(RULES["stdp"], params, SpikeRates(r[None], r[None]), layout, w[None])[0]
        w = np.clip(w + 0.1 * f + 2e-5 * rng.standard_normal(w.size), 0, 0.04)
        run.append(0.1 * k, w, extra={"rates/pre": r, "rates/post": r})
    run.close("complete")
    return path


@pytest.mark.slow
def test_analyze_memory_does_not_grow_with_the_records(tmp_path):
    """The whole analysis (no loss: consistency, discovery, recurrence; and with a loss)
    streams the records: its peak Python memory at 4× the records stays about the same
    (an O(n·T) buffer would quadruple it)."""
    peaks = {}
    # 4·10⁴ synapses: a chunk of records (CHUNK_BYTES) is a few records, far fewer than T
    # (blocks of 10 synapses: the block-diagonal statistics, O(n · block), stay small)
    for T in (50, 200):
        path = _sparse_stdp_file(tmp_path / f"run{T}.h5", T, neurons=4000, per_post=10)
        tracemalloc.start()
        doc = analyze_file(path, store=False)
        peaks[T] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert doc["records"] == T and doc["results"]
    assert peaks[200] < 1.5 * peaks[50], peaks
