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


def _sparse_stdp_file(path, records, neurons=400, per_post=10, seed=0, noise=2e-5,
                      name="sparse"):
    """A spiking run file of a sparse network (soft-bound pair STDP), as the recorder
    writes it: weights drift to their fixed point at Poisson-sampled rates."""
    rng = np.random.default_rng(seed)
    post = np.repeat(np.arange(neurons), per_post)
    pre = rng.integers(0, neurons, post.size)
    params = RULES["stdp"].resolve({"bounds": "soft", "w_max": 0.04, "A_plus": 0.01, "A_minus": 0.0105})
    config = (f'name = "{name}"\nseed = 1\n\n[network]\nmodel = "ei_network"\nn_pre = {neurons}\n'
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
        w = np.clip(w + 0.1 * f + noise * rng.standard_normal(w.size), 0, 0.04)
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


def _noisy_stdp_file(path, records, neurons=60, per_post=5, noise=2e-4, seed=0):
    """:func:`_sparse_stdp_file` with spike noise that dominates the drift over single
    records, so that the data choose a window of many records (h grows with T)."""
    return _sparse_stdp_file(path, records, neurons, per_post, seed, noise=noise, name="noisy")


def test_window_passes_in_two_streams_are_the_in_memory_computation(tmp_path):
    """Chunks of 2 records (each window's ends read as two streams, window sums from
    running prefix sums) against the whole trajectory in memory."""
    from plasticity.analysis.certificate import certify
    from plasticity.analysis.discovery import discover_losses
    from plasticity.analysis.drift import window_for
    from plasticity.analysis.losses import Loss, mean_value_gradient
    from plasticity.analysis.pipeline import _block_means, certify_run
    from plasticity.analysis.sample_path import SamplePath, sample_path
    from plasticity.analysis.streams import window_rates
    from plasticity.io import open_run

    path = _noisy_stdp_file(tmp_path / "noisy.h5", 240)
    with open_run(path) as run:
        T = run.n_records
        h = window_for(run, None)
        assert h >= 8                     # a window of many records: what is being tested
        sums = window_rates(run, h, chunk=3)
        streamed = [sums.rates(a, min(a + 2, T - h)) for a in range(0, T - h, 2)]
        whole = run.rates_for(0, T - h, h)
        assert np.allclose(np.concatenate([r.post for r in streamed]), whole.post, rtol=1e-12)
        assert np.allclose(np.concatenate([r.pre for r in streamed]), whole.pre, rtol=1e-12)

        results, _ = discover_losses(run, chunk=2)
        reference, _ = discover_losses(run, chunk=T)
        assert [d.family for d in results] == [d.family for d in reference]
        for d, e in zip(results, reference):
            assert d.found == e.found
            assert np.allclose(d.coefficients, e.coefficients, rtol=1e-7, atol=1e-12), d.family
            assert np.allclose(d.margins, e.margins, rtol=1e-7, atol=1e-12, equal_nan=True), d.family
        rates = next(d.loss for d in results if d.family == "rates")
        separable = next(d.loss for d in results if d.family == "separable")

        W = run.weights(0, T)
        quadratic = Loss("q", lambda w: (0.5 * np.sum((w - 0.02) ** 2, axis=1), w - 0.02), "quadratic")
        certs = certify_run(run, [quadratic, separable, rates], "window", h, chunk=2)
        f = (W[h:] - W[:-h]) / (run.time[h:] - run.time[:-h])[:, None]
        for cert, loss in zip(certs, [quadratic, separable, rates.at(whole)]):
            gbar, v0, _ = mean_value_gradient(loss, W[:-h], W[h:])
            expected = certify(f, gbar, v0, run.time[:T - h])
            assert np.allclose(cert.psi, expected.psi, rtol=1e-9, atol=1e-12, equal_nan=True)
            assert np.allclose(cert.loss, expected.loss, rtol=1e-9, equal_nan=True)
            assert cert.verdict == expected.verdict

        # the sample path: each window's end read ahead, against the windows in memory
        window = 2 * h
        streamed = SamplePath([quadratic], window, end=lambda k: (run.time[k], W[k]), n_records=T)
        for a in range(0, T, 3):
            streamed.add(run.time[a:a + 3], W[a:a + 3])
        got, = streamed.finish()
        want, = sample_path(run.time, W, [quadratic], window)
        for key in ("t0", "t1", "change", "se", "loss0", "loss1", "call"):
            assert np.allclose(got[key], want[key], rtol=1e-9, atol=1e-15), key

        # block means that straddle chunks, carried as running sums
        means = np.concatenate(list(_block_means(run, 7)))
        nb = T // 7
        assert np.allclose(means, W[:nb * 7].reshape(nb, 7, -1).mean(axis=1), rtol=1e-12)


@pytest.mark.slow
def test_analyze_memory_is_flat_in_the_records_when_the_window_grows(tmp_path, monkeypatch):
    """A noisy path: the data choose a window of h = T/10 records, 8 at T = 100 and 32
    at T = 400. The window passes read the two ends of each window as two streams of
    chunks, so the peak stays about the same (reading ``chunk + h`` consecutive records
    made it grow with h: O(n · h))."""
    from plasticity.analysis.drift import window_for
    from plasticity.io import open_run
    from plasticity.io.reader import Run

    monkeypatch.setattr(Run, "chunk_size", lambda self, width=None, target_bytes=None: 2)
    peaks, windows = {}, {}
    for T in (100, 400):
        path = _noisy_stdp_file(tmp_path / f"noisy{T}.h5", T, neurons=2000, per_post=10, noise=1e-3)
        with open_run(path) as run:
            windows[T] = window_for(run, None)
        tracemalloc.start()
        doc = analyze_file(path, store=False)
        peaks[T] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert doc["records"] == T and doc["results"]
    assert windows[400] >= 4 * windows[100] >= 32, windows
    assert peaks[400] < 1.3 * peaks[100], (peaks, windows)
