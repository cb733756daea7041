"""Benchmark: a sweep worker's resident memory against the number of runs it has done.

One ``plasticity sweep`` of N tiny Oja runs (10 Gaussian inputs -> 1 linear output,
1 s, or ``--duration``, at dt = 1 ms on the runtime device, a record every 10 ms; runs
differ by their seed) on a local cluster of 2 workers. Each row of the sweep table holds the worker's
process id and its resident set size after that run (``worker_pid``,
``worker_rss_mb``), in the order the runs finished; for each worker this prints the
resident memory after its 10th, 50th, 100th, ... run and the ratio late / early (after
its last run / after its 10th).

``--reference`` also runs the same sweep with Dask's statistical profiler left on in
the workers (what the sweep did before it turned it off; see
``plasticity.sweep.engine.LOCAL_WORKER_CONFIG``), after it, for comparison.

    python benchmarks/bench_sweep_memory.py                    # 200 runs (~100 per worker)
    python benchmarks/bench_sweep_memory.py --runs 100 --reference
    python benchmarks/bench_sweep_memory.py --runs 400 --duration "0.2 s"
"""

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

sys.path.insert(0, str(Path(__file__).parent))
import bench_sweep  # noqa: E402

#: the small Oja run of bench_sweep.py, shortened to 1 s with a record every 10 ms
BASE = dict(bench_sweep.BASE, name="bench_sweep_memory",
            simulation=dict(bench_sweep.BASE["simulation"], duration="1 s"),
            record={"every": "10 ms"})

#: the sweep through the command line's entry point, with the workers' Dask settings
#: replaced by the first argument (a Python literal)
SWEEP_WITH_SETTINGS = (
    "import ast, sys\n"
    "from plasticity.sweep import engine\n"
    "engine.LOCAL_WORKER_CONFIG = ast.literal_eval(sys.argv[1])\n"
    "from plasticity.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n")

MARKS = (1, 10, 25, 50, 100, 150, 200, 300, 400)


def sweep(tmp, out, workers, settings=None):
    args = ["sweep", "sweep.toml", "--out", out, "-q", "--workers", str(workers)]
    if settings is None:
        script = Path(sys.executable).with_name("plasticity")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "plasticity.cli"]
    else:
        command = [sys.executable, "-c", SWEEP_WITH_SETTINGS, repr(settings)]
    started = time.perf_counter()
    done = subprocess.run(command + args, cwd=tmp, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"sweep failed ({done.returncode}): {done.stderr[-2000:]}")
    wall = time.perf_counter() - started
    with open(tmp / done.stdout.strip().splitlines()[-1], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(r["status"] == "complete" for r in rows)
    by_worker, seen = {}, set()
    for r in rows:                       # in the order the runs finished
        if r["run"] in seen:             # one row per loss: the first is enough
            continue
        seen.add(r["run"])
        by_worker.setdefault(r["worker_pid"], []).append(float(r["worker_rss_mb"]))
    return wall, by_worker


def report(label, wall, by_worker):
    print(f"{label}: {wall:.1f} s", flush=True)
    for pid, rss in by_worker.items():
        marks = [m for m in MARKS if m <= len(rss)]
        at = ", ".join(f"run {m}: {rss[m - 1]:.1f}" for m in marks)
        early = rss[min(10, len(rss)) - 1]
        print(f"  worker {pid} ({len(rss)} runs) RSS MiB after {at}; "
              f"last / 10th = {rss[-1] / early:.4f} ({rss[-1] - early:+.1f} MiB, "
              f"{(rss[-1] - early) / max(1, len(rss) - 10):+.3f} MiB per run)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", default="1 s", help='simulated time per run ("1 s")')
    parser.add_argument("--reference", action="store_true",
                        help="also run with Dask's profiler on in the workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = dict(BASE, simulation=dict(BASE["simulation"], duration=args.duration))
        (tmp / "base.toml").write_text(tomli_w.dumps(base))
        (tmp / "sweep.toml").write_text(tomli_w.dumps({
            "name": "mem", "base": "base.toml", "seeds": {"start": 1, "count": args.runs}}))
        report("plasticity sweep (as shipped)", *sweep(tmp, "shipped", args.workers))
        if args.reference:
            report("same, Dask's profiler on in the workers",
                   *sweep(tmp, "profiler", args.workers,
                          {"distributed.worker.profile.enabled": True}))


if __name__ == "__main__":
    main()
