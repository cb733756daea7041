"""Benchmark: N small Oja runs as one ``plasticity sweep`` on 2 workers against the same
N runs as sequential ``plasticity run`` processes (whole-process wall time each way).

Each run: Oja's rule, 10 Gaussian inputs -> 1 linear output, 10 s at dt = 1 ms on the
runtime device (10 000 steps), a record every 100 ms; runs differ by their seed. The
sequential way is what a shell loop does: one ``plasticity run`` process per run
(Python start, imports, config, Brian2 network, run, file) followed by one
``plasticity analyze`` process, since the sweep analyses every run too. The sweep way
is one ``plasticity sweep`` process (validation, local cluster start, N tasks that run
and analyse, the table).

Reported: both wall times and their ratio; the sweep's per-run overhead, wall time x
workers / runs minus the mean simulation time measured inside the workers (``run_s``
in the table: the ``runner.run`` call); and the workers' resident memory after their
first and last runs (``worker_rss_mb``), to see whether it grows with the runs.

The Cython cache is warmed first (one untimed run), so neither way pays compilation.

    python benchmarks/bench_sweep.py                 # 32 runs (several minutes)
    python benchmarks/bench_sweep.py --runs 8        # quicker
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
        for seed in range(1, args.runs + 1):
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
    run_s = statistics.mean(float(r["run_s"]) for r in runs.values())
    wall_s = statistics.mean(float(r["wall_s"]) for r in runs.values())
    overhead = sweep * args.workers / args.runs - run_s
    by_worker = {}
    for r in sorted(runs.values(), key=lambda r: int(r["run"])):
        by_worker.setdefault(r["worker_pid"], []).append(float(r["worker_rss_mb"]))
    print(f"runs: {args.runs}, workers: {args.workers}")
    print(f"sequential `plasticity run` + `plasticity analyze` processes: {sequential:.1f} s "
          f"({sequential / args.runs:.2f} s per run)")
    print(f"one `plasticity sweep`: {sweep:.1f} s ({sweep / args.runs:.2f} s per run)")
    print(f"ratio sweep / sequential: {sweep / sequential:.3f}")
    print(f"inside the workers, per run: runner.run {run_s:.3f} s, run + analysis {wall_s:.3f} s")
    print(f"per-run overhead of the sweep (wall x workers / runs - run_s): {overhead:.3f} s")
    for pid, rss in by_worker.items():
        print(f"worker {pid}: {len(rss)} runs, RSS after first {rss[0]:.0f} MiB, after last {rss[-1]:.0f} MiB")


if __name__ == "__main__":
    main()
