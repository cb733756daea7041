"""Measurement: several seeds as independent replicas inside one Brian2 network, against
the same seeds as sequential runs, on the runtime device.

The run: Oja's rule, 10 Gaussian inputs (random rotation) -> 1 linear output, 10 s at
dt = 1 ms (10 000 steps), as in ``bench_sweep.py``. For a rate model this small,
Brian2's cost is per time step (a Python call per code object and step), not per
synapse; N replicas in one network share those calls.

- sequential: for each of N seeds, the package's own runner
  (:func:`plasticity.sim.run`) builds the network and runs it, without the recorder
  (``_record=False``), so that both ways time the same thing: build + simulate.
- replicas: one network holding N independent copies: ``latent`` and ``inputs`` groups
  of N x 10 neurons, block-diagonal ``mixing`` synapses (replica r gets the mixing
  matrix, i.e. the input covariance, of seed r), N output neurons and N x 10 plastic
  synapses (replica r's initial weights drawn as the run of seed r draws them). The
  input noise of all replicas comes from Brian2's one random stream (seeded by the
  first seed), so a replica is a run with its seed's statistics, not the numbers of
  ``plasticity run --seed r``.

Reported: seconds per replica each way and their ratio, for N = 1, 4, 16, 64; and, as a
check that the replicas are independent correct runs, each one's final |cos| with its
own top input eigenvector (median over the replicas) and its weight norm (mean; Oja
converges to the unit top eigenvector), against the sequential runs'.

    python benchmarks/bench_replicas.py                  # N = 1, 4, 16, 64
    python benchmarks/bench_replicas.py --replicas 8 32
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tomli_w

sys.path.insert(0, str(Path(__file__).parent))
import bench_sweep  # noqa: E402

#: the small Oja run of bench_sweep.py
BASE = dict(bench_sweep.BASE, name="bench_replicas_oja")


def seed_parts(experiment):
    """What a run of ``experiment`` draws with NumPy, in the runner's order: the input
    statistics, the synapses and the initial weights."""
    from plasticity.sim.rate import initial_weights, make_stats, make_topology

    rng = np.random.default_rng(experiment.seed)
    stats = make_stats(experiment, rng)
    topology = make_topology(experiment, rng)
    return stats, initial_weights(experiment, len(topology.pre), rng)


def run_replicas(experiments):
    """One network of ``len(experiments)`` independent copies; the final weights (N, n)."""
    import brian2 as b2

    from plasticity.rules import get_rule
    from plasticity.sim.rate import parameter_namespace, start_runtime

    first = experiments[0]
    n, N = first.network.n_pre, len(experiments)
    rule = get_rule(first.rule.name)
    start_runtime(first)
    parts = [seed_parts(e) for e in experiments]
    mixing = np.zeros((N * n, N * n))
    for r, (stats, _) in enumerate(parts):
        mixing[r * n:(r + 1) * n, r * n:(r + 1) * n] = stats.mixing
    latent = b2.NeuronGroup(N * n, "z : 1", name="latent")
    latent.run_regularly("z = randn()", when="start", name="latent_draw")
    inputs = b2.NeuronGroup(N * n, "x = xbar + xmix : 1\nxmix : 1\nxbar : 1 (constant)",
                            name="inputs")
    inputs.xbar = np.concatenate([stats.mean for stats, _ in parts])
    mix = b2.Synapses(latent, inputs, "L : 1 (constant)\nxmix_post = L * z_pre : 1 (summed)",
                      name="mixing")
    rows, cols = np.nonzero(mixing)
    mix.connect(i=cols, j=rows)
    mix.L = mixing[rows, cols]
    mix.summed_updaters["xmix_post"].order = -2
    neurons = b2.NeuronGroup(N, "y = ysum : 1\nysum : 1", name="neurons")
    synapses = b2.Synapses(inputs, neurons, "w : 1\nysum_post = w * x_pre : 1 (summed)",
                           name="synapses",
                           namespace=parameter_namespace(rule, first.rule.params))
    synapses.connect(i=np.arange(N * n), j=np.repeat(np.arange(N), n))
    synapses.w = np.concatenate([w for _, w in parts])
    synapses.run_regularly(rule.synapse_update, when="synapses", order=0, name="plasticity")
    network = b2.Network(latent, inputs, mix, neurons, synapses)
    network.run(first.simulation.duration * b2.second, namespace={})
    return np.asarray(synapses.w_[:]).reshape(N, n), [stats for stats, _ in parts]


def run_sequential(experiments):
    """Each experiment through the package's runner (no recorder); final weights (N, n)."""
    import brian2 as b2

    from plasticity.sim import rate

    finals, all_stats = [], []
    for experiment in experiments:
        stats, w0 = seed_parts(experiment)
        rule = rate.get_rule(experiment.rule.name)
        rng = np.random.default_rng(experiment.seed)
        rate.start_runtime(experiment)
        parts = rate.build_rate_network(experiment, rule, experiment.rule.params, rng)
        assert np.array_equal(np.asarray(parts.synapses.w_[:]), w0)
        parts.network.run(experiment.simulation.duration * b2.second, namespace={})
        finals.append(np.asarray(parts.synapses.w_[:]).copy())
        all_stats.append(stats)
    return np.array(finals), all_stats


def alignment(finals, stats):
    """Per run: |cos| of the final weights with the top eigenvector, and their norm."""
    out = []
    for w, s in zip(finals, stats):
        vals, vecs = np.linalg.eigh(s.covariance)
        top = vecs[:, -1]
        norm = float(np.linalg.norm(w))
        out.append((abs(float(w @ top)) / norm, norm))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 4, 16, 64])
    args = parser.parse_args()
    from plasticity.config import load_config
    from plasticity.sim.brian import prepare_run_process

    prepare_run_process()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.toml"
        path.write_text(tomli_w.dumps(BASE))
        warm = [load_config(path, seed=999)]
        run_sequential(warm)            # compiles (or loads) the code objects, untimed
        run_replicas(warm)
        print("N | sequential s/run | replicas s/replica | ratio | "
              "|cos| seq (median) | |cos| rep (median) | norm seq (mean) | norm rep (mean)")
        for N in args.replicas:
            experiments = [load_config(path, seed=s) for s in range(1, N + 1)]
            started = time.perf_counter()
            seq, stats = run_sequential(experiments)
            sequential = (time.perf_counter() - started) / N
            started = time.perf_counter()
            rep, stats_r = run_replicas(experiments)
            replicas = (time.perf_counter() - started) / N
            a_seq, a_rep = alignment(seq, stats), alignment(rep, stats_r)
            print(f"{N} | {sequential:.3f} | {replicas:.4f} | {replicas / sequential:.3f} | "
                  f"{statistics.median(c for c, _ in a_seq):.4f} | "
                  f"{statistics.median(c for c, _ in a_rep):.4f} | "
                  f"{statistics.mean(m for _, m in a_seq):.4f} | "
                  f"{statistics.mean(m for _, m in a_rep):.4f}", flush=True)


if __name__ == "__main__":
    main()
