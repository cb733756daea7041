"""Benchmark: the structured metric fits (plasticity.analysis.structured) at 10⁶ synapses.

Feeds ``--records`` synthetic records (drift ``f = −M g`` for a diagonal metric, and for
a diagonal plus rank-1 metric), one record at a time as a million-synapse run file is
read, with 10⁴ postsynaptic neurons of 100 synapses each, and reports each family's
residual, the CPU time and tracemalloc's peak memory.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_structured.py [--synapses 1000000] [--records 40]
"""

import argparse
import time
import tracemalloc

import numpy as np

from plasticity.analysis.structured import StructuredMetricFit


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--synapses", type=int, default=10**6)
    parser.add_argument("--records", type=int, default=40)
    args = parser.parse_args()
    n = args.synapses
    post = np.repeat(np.arange(n // 100), 100)
    rng = np.random.default_rng(0)
    d = rng.uniform(0.5, 2.0, n)
    u = rng.standard_normal(n)
    u *= n ** 0.25 / np.linalg.norm(u)     # ‖u u^T g‖ comparable with ‖D g‖
    print(f"{n} synapses, {args.records} records fed one at a time; record = {n * 8 / 2**20:.1f} MiB\n")
    print("| metric | diagonal | block_diagonal | low_rank_diagonal (rank) | chosen | CPU (s) | peak (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for label, rank_one in [("diagonal", False), ("diagonal + rank 1", True)]:
        tracemalloc.start()
        fit = StructuredMetricFit(n, post=post)
        started = time.process_time()
        for _ in range(args.records):
            g = rng.standard_normal((1, n))
            f = -g * d - ((g @ u)[:, None] * u if rank_one else 0.0)
            fit.add(f, g)
        out = fit.finish()
        cpu = time.process_time() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        fmt = lambda x: "-" if x is None else f"{x:.2g}"   # noqa: E731
        print(f"| {label} | {fmt(out['diagonal'])} | {fmt(out['block_diagonal'])} | "
              f"{fmt(out['low_rank_diagonal'])} ({out['rank']}) | {out['chosen']} | {cpu:.1f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
