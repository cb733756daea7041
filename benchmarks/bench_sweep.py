"""Benchmark: N small Oja runs as one ``plasticity sweep`` on 2 workers against the same
N runs as sequential ``plasticity run`` processes (whole-process wall time each way).

Each run: Oja's rule, 10 Gaussian inputs -> 1 linear output, 10 s at dt = 1 ms on the
runtime device (10 000 steps), a record every 100 ms; runs differ by their seed. The
sequential way is what a shell loop does: one ``plasticity run`` process per run
(Python start, imports, config, Brian2 network, run, file) followed by one
``plasticity analyze`` process, since the sweep analyses every run too. The sweep way
is one ``plasticity sweep`` process (validation, local cluster start, N tasks that run
and analyse, the table).

Reported: both wall times and their ratio; the simulation time, Brian2's own measure
of each run's simulation loop as the worker reports it (``sim_s`` in the table: the
steps and the recorder's writes, not the network's construction); the sweep's per-run
overhead as the issue defines it, wall time / runs minus the mean simulation time, and
per worker, wall time x workers / runs minus the mean simulation time; where that goes:
on the worker, the network's construction, code objects and run file (``run_s`` -
``sim_s``) and the analysis (``wall_s`` - ``run_s``), and outside the tasks (process
and cluster start, the workers' imports, Dask's round trips, the table); and the
workers' resident memory after their first and last runs (``worker_rss_mb``).

The Cython cache is warmed first (one untimed run), so neither way pays compilation.

    python benchmarks/bench_sweep.py                 # 32 runs (several minutes)
    python benchmarks/bench_sweep.py --runs 8        # quicker
    python benchmarks/bench_sweep.py --sweep-only    # the sweep alone (no ratio)
"""

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

BASE = {
    "name": "bench_sweep_oja", "seed": 1,
    "network": {"model": "linear_rate", "n_pre": 10, "n_post": 1,
                "init": {"distribution": "uniform", "low": -0.3, "high": 0.3}},
    "inputs": {"kind": "gaussian", "spectrum": [4.0, 2.0, 1.0] + [0.5] * 7, "rotation": "random"},
    "rule": {"name": "oja", "eta": "0.3 Hz"},
    "simulation": {"duration": "10 s", "dt": "1 ms", "device": "runtime"},
    "record": {"every": "100 ms"},
}


def command():
    script = Path(sys.executable).with_name("plasticity")
    return [str(script)] if script.exists() else [sys.executable, "-m", "plasticity.cli"]


def timed(args, cwd):
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return time.perf_counter() - started, done.stdout.strip().splitlines()[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sweep-only", action="store_true",
                        help="skip the sequential processes (no ratio)")
    args = parser.parse_args()
    plasticity = command()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "base.toml").write_text(tomli_w.dumps(BASE))
        (tmp / "sweep.toml").write_text(tomli_w.dumps({
            "name": "bench", "base": "base.toml",
            "seeds": {"start": 1, "count": args.runs}}))
        # warm the Cython cache (and the OS file cache) once, untimed
        timed(plasticity + ["run", "base.toml", "--out", "warm", "-q", "--seed", "999"], tmp)

        sequential = time.perf_counter()
        for seed in range(1, 0 if args.sweep_only else args.runs + 1):
            _, path = timed(plasticity + ["run", "base.toml", "--out", "seq", "-q",
                                          "--seed", str(seed)], tmp)
            timed(plasticity + ["analyze", path], tmp)
        sequential = time.perf_counter() - sequential

        sweep, table = timed(plasticity + ["sweep", "sweep.toml", "--out", "swp", "-q",
                                           "--workers", str(args.workers)], tmp)
        with open(table, newline="") as handle:
            rows = [r for r in csv.DictReader(handle)]
    runs = {r["run"]: r for r in rows}
    assert len(runs) == args.runs and all(r["status"] == "complete" for r in runs.values())
    def mean(column):
        return statistics.mean(float(r[column]) for r in runs.values())

    sim_s, run_s, wall_s = mean("sim_s"), mean("run_s"), mean("wall_s")
    per_worker_run = sweep * args.workers / args.runs
    by_worker = {}
    for r in sorted(runs.values(), key=lambda r: int(r["run"])):
        by_worker.setdefault(r["worker_pid"], []).append(float(r["worker_rss_mb"]))
    print(f"runs: {args.runs}, workers: {args.workers}")
    if not args.sweep_only:
        print(f"sequential `plasticity run` + `plasticity analyze` processes: {sequential:.1f} s "
              f"({sequential / args.runs:.2f} s per run)")
    print(f"one `plasticity sweep`: {sweep:.1f} s ({sweep / args.runs:.2f} s per run)")
    if not args.sweep_only:
        print(f"ratio sweep / sequential: {sweep / sequential:.3f}")
    print(f"simulation time per run (Brian2's simulation loop, sim_s): {sim_s:.3f} s")
    print(f"per-run overhead, wall / runs - simulation: {sweep / args.runs - sim_s:.3f} s")
    print(f"per-run overhead per worker, wall x workers / runs - simulation: "
          f"{per_worker_run - sim_s:.3f} s, of which")
    print(f"  network, code objects, run file (run_s - sim_s): {run_s - sim_s:.3f} s")
    print(f"  analysis (wall_s - run_s): {wall_s - run_s:.3f} s")
    print(f"  outside the tasks (start, imports, Dask, table): {per_worker_run - wall_s:.3f} s")
    for pid, rss in by_worker.items():
        print(f"worker {pid}: {len(rss)} runs, RSS after first {rss[0]:.0f} MiB, after last {rss[-1]:.0f} MiB")


if __name__ == "__main__":
    main()
