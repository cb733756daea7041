"""Benchmark: whole-process ``plasticity run`` of the Oja case against a plain NumPy script.

The case (as in ``bench_run.py``): Oja's rule, 10 000 Gaussian inputs (diagonal
covariance, variances ``linspace(2, 0.5)``) → 1 linear output, dt = 1 ms, 10 000 steps,
a record of the 10 000 weights every 10 steps (1 001 records, 80 MB of float64).

Both sides are timed as whole processes, start-up included, because that is what a
user waits for:

- ``plasticity run case.toml --out DIR -q`` (``device = "auto"``, which picks
  cpp_standalone for this much work; one untimed run first builds the program, so the
  timed runs find a warm build folder);
- ``python numpy_oja.py out.h5``: imports numpy and h5py, draws the inputs each step,
  ``y = w·x``, ``w += η dt y (x − y w)``, and writes each record into an HDF5 dataset
  with h5py: the plain vectorised loop a user would write.

The two are run in interleaved pairs (plasticity, NumPy, plasticity, NumPy, …) and the
ratio is the median of the per-pair ratios, so load from other jobs on a shared machine
hits both sides alike. Also timed: ``plasticity --help`` and ``python -c pass`` (the
interpreter's own start-up), each as the median of the same number of runs.

    python benchmarks/bench_startup.py              # 5 pairs (about a minute)
    python benchmarks/bench_startup.py --pairs 3 --device runtime
    # before/after in one run: a checkout of the old tree (e.g. `git archive REV | tar -x
    # -C /tmp/old`) goes first on PYTHONPATH; it is timed in the same interleaved rounds
    python benchmarks/bench_startup.py --baseline /tmp/old
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_run import DT, ETA, EVERY, N_PRE, SEED, STEPS  # noqa: E402  (the same case)

NUMPY_SCRIPT = f'''\
import sys

import h5py
import numpy as np

n, steps, every, dt, eta = {N_PRE}, {STEPS}, {EVERY}, {DT!r}, {ETA!r}
rng = np.random.default_rng({SEED})
sd = np.sqrt(np.linspace(2.0, 0.5, n))
w = rng.uniform(-0.01, 0.01, n)
with h5py.File(sys.argv[1], "w") as f:
    weights = f.create_dataset("weights", (steps // every + 1, n), dtype="f8")
    times = f.create_dataset("time", (steps // every + 1,), dtype="f8")
    for k in range(steps):
        if k % every == 0:
            weights[k // every] = w
            times[k // every] = k * dt
        x = sd * rng.standard_normal(n)
        y = w @ x
        w += eta * dt * y * (x - y * w)
    weights[-1] = w
    times[-1] = steps * dt
'''


def write_config(path, device):
    import tomli_w

    config = {
        "name": "bench_oja_startup", "seed": SEED,
        "network": {"model": "linear_rate", "n_pre": N_PRE, "n_post": 1,
                    "init": {"distribution": "uniform", "low": -0.01, "high": 0.01}},
        "inputs": {"kind": "gaussian", "spectrum": np.linspace(2.0, 0.5, N_PRE).tolist(),
                   "rotation": "identity"},
        "rule": {"name": "oja", "eta": ETA},
        "simulation": {"duration": STEPS * DT, "dt": DT, "device": device},
        "record": {"every": EVERY * DT},
    }
    path.write_bytes(tomli_w.dumps(config).encode())


def wall(command, env):
    """Wall-clock seconds of a whole process; its CPU seconds (user + system, with its
    own children: compiler, standalone program) go to CPU[command name]."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--device", default="auto", choices=["auto", "runtime", "cpp_standalone"])
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time `plasticity run` from this source tree (PYTHONPATH)")
    args = parser.parse_args()
    plasticity = [str(Path(sys.executable).parent / "plasticity")]   # the console script
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, PLASTICITY_CACHE=str(tmp / "cache"))
        config = tmp / "case.toml"
        write_config(config, args.device)
        script = tmp / "numpy_oja.py"
        script.write_text(NUMPY_SCRIPT)
        run_cmd = [*plasticity, "run", str(config), "--out", str(tmp / "out"), "-q"]
        warm = wall(run_cmd, env)      # builds the standalone program / warms Cython
        print(f"warm-up run (build): {warm:.2f} s", file=sys.stderr)
        old_env = None
        if args.baseline:
            old_env = dict(env, PYTHONPATH=str(Path(args.baseline).resolve()),
                           PLASTICITY_CACHE=str(tmp / "cache-baseline"))
            print(f"warm-up run, baseline: {wall(run_cmd, old_env):.2f} s", file=sys.stderr)
        ours, theirs, help_times, bare, old = [], [], [], [], []
        cpu = {"ours": [], "theirs": [], "old": []}
        for k in range(args.pairs):
            if old_env is not None:
                old.append(wall(run_cmd, old_env))
                cpu["old"].append(wall.cpu)
            ours.append(wall(run_cmd, env))
            cpu["ours"].append(wall.cpu)
            theirs.append(wall([sys.executable, str(script), str(tmp / f"np{k}.h5")], env))
            cpu["theirs"].append(wall.cpu)
            help_times.append(wall([*plasticity, "--help"], env))
            bare.append(wall([sys.executable, "-c", "pass"], env))
            print(f"pair {k}: plasticity {ours[-1]:.2f} s, numpy {theirs[-1]:.2f} s, "
                  f"--help {help_times[-1]:.2f} s", file=sys.stderr)
    ratios = [a / b for a, b in zip(ours, theirs)]
    old_ratios = [a / b for a, b in zip(old, theirs)]
    print(f"Oja, {N_PRE} synapses x {STEPS} steps, a record every {EVERY} steps, "
          f"device={args.device}; whole processes, {args.pairs} interleaved pairs; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| what | median (s) | all (s) |")
    print("|---|---|---|")
    rows = [("plasticity run", ours), ("NumPy + h5py script", theirs),
            ("plasticity --help", help_times), ("python -c pass", bare)]
    if old:
        rows.insert(1, (f"plasticity run, baseline ({args.baseline})", old))
    for name, times in rows:
        print(f"| {name} | {statistics.median(times):.2f} | "
              f"{', '.join(f'{t:.2f}' for t in times)} |")
    print(f"\nratio plasticity / NumPy: median of pairs **{statistics.median(ratios):.2f}** "
          f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)}; target <= 1.5)")
    if old:
        print(f"ratio baseline / NumPy: median of pairs **{statistics.median(old_ratios):.2f}** "
              f"(pairs: {', '.join(f'{r:.2f}' for r in old_ratios)})")
    # CPU time (user + system of the process and its children) is less sensitive to
    # other jobs than the wall clock; it counts the writer thread's work in full
    print("\nCPU seconds (user + system, children included), medians: "
          + ", ".join(f"{name} {statistics.median(times):.2f}"
                      for name, times in [("plasticity run", cpu["ours"]),
                                          ("baseline", cpu["old"]),
                                          ("NumPy script", cpu["theirs"])] if times)
          + f"; ratio plasticity / NumPy {statistics.median(a / b for a, b in zip(cpu['ours'], cpu['theirs'])):.2f}"
          + (f", baseline / NumPy {statistics.median(a / b for a, b in zip(cpu['old'], cpu['theirs'])):.2f}"
             if cpu["old"] else ""))


if __name__ == "__main__":
    main()
