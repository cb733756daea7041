"""The network of experiments/ei_network_large.toml as a plain Brian2 script on
cpp_standalone, with no recording: the reference of benchmarks/bench_large.py.

10⁴ conductance-based LIF neurons (8000 E, 2000 I), a directed Erdős–Rényi graph
(networkx ``fast_gnp_random_graph``, p = 0.0156, drawn as plasticity draws it: the
seed from ``numpy.random.default_rng(1)``, self-loops dropped), soft-bound pair STDP on
the ~10⁶ E→E synapses, fixed E→I, I→E and I→I synapses, 200 external Poisson inputs
at 10 Hz per neuron (PoissonInput). The values are the resolved config's
(bench_large.py checks them). Prints a JSON line of wall times (s): graph, build
(code generation and ``make``), run (the program), total.

    python benchmarks/plain_ei_large.py DURATION_S BUILD_DIR
"""

import json
import sys
import time

started = time.perf_counter()
import brian2 as b2  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

N, N_EXC, P, SEED = 10000, 8000, 0.0156, 1
PARAMS = dict(tau_m=20 * b2.ms, V_rest=-70 * b2.mV, V_reset=-60 * b2.mV, V_th=-54 * b2.mV,
              E_ex=0 * b2.mV, E_in=-80 * b2.mV, tau_ex=5 * b2.ms, tau_in=10 * b2.ms,
              refractory=2 * b2.ms, g_ei=0.00384, g_ie=0.0129, g_ii=0.0129,
              A_plus=0.01, A_minus=0.0105, tau_plus=20 * b2.ms, tau_minus=20 * b2.ms,
              w_max=0.00512)
N_EXT, RATE_EXT, G_EXT = 200, 10 * b2.Hz, 0.03
W_LOW, W_HIGH = 0.0, 0.00512

LIF_EQS = """
dv/dt = (V_rest - v + g_ex * (E_ex - v) + g_in * (E_in - v)) / tau_m : volt (unless refractory)
dg_ex/dt = -g_ex / tau_ex : 1
dg_in/dt = -g_in / tau_in : 1
"""
STDP_EQS = """w : 1
dapre/dt = -apre / tau_plus : 1 (event-driven)
dapost/dt = -apost / tau_minus : 1 (event-driven)"""
ON_PRE = "g_ex_post += w\napre += 1\nw = clip(w - A_minus * w * apost, 0, w_max)"
ON_POST = "apost += 1\nw = clip(w + A_plus * (w_max - w) * apre, 0, w_max)"


def graph(rng):
    """Edges (pre, post) of the directed graph, sorted, without self-loops."""
    g = nx.fast_gnp_random_graph(N, P, seed=int(rng.integers(2**31)), directed=True)
    pairs = np.array(list(g.edges()), dtype=np.int64)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    keys = np.unique(pairs[:, 0] * N + pairs[:, 1])
    return keys // N, keys % N


def main():
    duration, directory = float(sys.argv[1]), sys.argv[2]
    times = {}
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    pre, post = graph(rng)
    times["graph"] = time.perf_counter() - t0
    b2.set_device("cpp_standalone", directory=directory, build_on_run=False)
    b2.defaultclock.dt = 0.1 * b2.ms
    b2.seed(SEED)
    neurons = b2.NeuronGroup(N, LIF_EQS, threshold="v > V_th", reset="v = V_reset",
                             refractory="refractory", method="euler", namespace=PARAMS)
    neurons.v = PARAMS["V_reset"] + rng.uniform(0, 1, N) * (PARAMS["V_th"] - PARAMS["V_reset"])
    drive = b2.PoissonInput(neurons, "g_ex", N=N_EXT, rate=RATE_EXT, weight=G_EXT)
    ee = (pre < N_EXC) & (post < N_EXC)
    stdp = b2.Synapses(neurons, neurons, STDP_EQS, on_pre=ON_PRE, on_post=ON_POST,
                       namespace=PARAMS)
    stdp.connect(i=pre[ee], j=post[ee])
    stdp.w = rng.uniform(W_LOW, W_HIGH, int(ee.sum()))
    fixed = []
    for mask, code in (((pre < N_EXC) & (post >= N_EXC), "g_ex_post += g_ei"),
                       ((pre >= N_EXC) & (post < N_EXC), "g_in_post += g_ie"),
                       ((pre >= N_EXC) & (post >= N_EXC), "g_in_post += g_ii")):
        s = b2.Synapses(neurons, neurons, on_pre=code, namespace=PARAMS)
        s.connect(i=pre[mask], j=post[mask])
        fixed.append(s)
    net = b2.Network(neurons, drive, stdp, *fixed)
    net.run(duration * b2.second)
    t0 = time.perf_counter()
    device = b2.get_device()
    device.build(directory=directory, compile=True, run=False, with_output=False, clean=False)
    times["build"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    device.run(directory=directory, with_output=False)
    times["run"] = time.perf_counter() - t0
    times["plastic_synapses"] = int(ee.sum())
    times["total"] = time.perf_counter() - started
    print(json.dumps(times))


if __name__ == "__main__":
    main()
