"""Benchmark: Oja, 10 000 inputs -> 1 output, 10 000 steps of dt, a record every 10 steps.

Runs the same work three ways in one process and prints a Markdown table:

- ``plasticity.sim.run`` on the runtime device (Brian2 + Cython, code cache warm:
  a first, untimed run of a short version warms it);
- ``plasticity.sim.run`` on cpp_standalone: first with an empty build cache (the
  one-time build), then warm (the number that counts);
- a plain vectorised NumPy loop (``numpy.random.Generator`` draws the inputs each
  step, ``y = w @ x``, ``w += eta dt y (x - y w)``), recording into an HDF5 file with
  the same :class:`plasticity.io.RunFile` writer the runs use.

Times are wall-clock of the whole call (network construction, warm build, run,
writing the file). "no recorder" runs use the private ``_record=False`` flag of
:func:`plasticity.sim.run`. Peak memory: each device is run for 1x and 10x the
duration in a child process, which reports its own peak resident memory (Python) and
the standalone program (``VmHWM`` of each, from ``/proc``).

    python benchmarks/bench_run.py            # the whole table (a few minutes)
    python benchmarks/bench_run.py --quick    # fewer repeats, no 10x memory runs
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_PRE = 10_000
STEPS = 10_000
DT = 1e-3
EVERY = 10
ETA = 0.01
SEED = 7


def experiment(device, steps=STEPS):
    from plasticity.config import validate

    spectrum = np.linspace(2.0, 0.5, N_PRE).tolist()
    return validate({
        "name": "bench_oja", "seed": SEED,
        "network": {"model": "linear_rate", "n_pre": N_PRE, "n_post": 1,
                    "init": {"distribution": "uniform", "low": -0.01, "high": 0.01}},
        "inputs": {"kind": "gaussian", "spectrum": spectrum, "rotation": "identity"},
        "rule": {"name": "oja", "eta": ETA},
        "simulation": {"duration": steps * DT, "dt": DT, "device": device},
        "record": {"every": EVERY * DT},
    })


def numpy_run(exp, path, record=True):
    """The same model as a plain vectorised NumPy loop; records through RunFile."""
    from plasticity.sim.rate import initial_weights, make_stats, make_topology
    from plasticity.io import RunFile

    rng = np.random.default_rng(exp.seed)
    stats = make_stats(exp, rng)
    make_topology(exp, rng)
    w = initial_weights(exp, N_PRE, rng)
    sd, mean = stats.scale, stats.mean
    steps = exp.simulation.steps
    rate = ETA * DT
    runfile = RunFile(path, N_PRE) if record else None
    x = np.empty(N_PRE)
    for k in range(steps):
        if record and k % EVERY == 0:
            runfile.append(k * DT, w)
        rng.standard_normal(N_PRE, out=x)
        x *= sd
        x += mean
        y = w @ x
        w += (rate * y) * (x - y * w)
    if record:
        runfile.append(steps * DT, w)
        runfile.close("complete")
    return w


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def plasticity_run(device, out, record=True, steps=STEPS):
    from plasticity.sim import run

    return run(experiment(device, steps), out_dir=out, progress=False, _record=record)


def child_memory(device, steps):
    """Peak RSS (MiB) of a child process running ``device`` for ``steps`` steps."""
    code = (
        "import json, resource, sys, tempfile\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import bench_run as b\n"
        "with tempfile.TemporaryDirectory() as out:\n"
        f"    b.plasticity_run({device!r}, out, steps={steps})\n"
        # VmHWM: this process's own peak. Not ru_maxrss: Linux carries it over exec
        # from the forking parent, so it reported this benchmark's own RSS at the fork
        "r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "try:\n"
        "    r = [int(l.split()[1]) / 1024 for l in open('/proc/self/status')\n"
        "         if l.startswith('VmHWM:')][0]\n"
        "except (OSError, IndexError):\n"
        "    pass\n"
        "from plasticity.sim import standalone\n"
        "c = standalone.run.last_timings.get('program_maxrss_mib', 0.0)\n"
        "print(json.dumps([r, c]))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def best(times):
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, no 10x memory runs")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # standalone: a cold build first, in an empty cache
        os.environ["PLASTICITY_CACHE"] = str(tmp / "cache")
        from plasticity.sim import standalone

        cold = timed(plasticity_run, "cpp_standalone", tmp / "out")
        build_cold = standalone.run.last_timings["build"]
        # runtime: warm Brian2's Cython cache with a short run
        plasticity_run("runtime", tmp / "out", steps=100)

        results = {}
        for name, fn in [
            ("numpy", lambda r: timed(numpy_run, experiment("runtime"),
                                      tmp / f"np-{time.time_ns()}.h5", record=r)),
            ("cpp_standalone", lambda r: timed(plasticity_run, "cpp_standalone", tmp / "out", r)),
            ("runtime", lambda r: timed(plasticity_run, "runtime", tmp / "out", r)),
        ]:
            for record in (True, False):
                results[name, record] = best([fn(record) for _ in range(repeats)])
                print(f"{name:15s} record={record!s:5s} {results[name, record]:.3f} s",
                      file=sys.stderr)
        build_warm = standalone.run.last_timings["build"]

        memory = {}
        for device in ("cpp_standalone", "runtime"):
            for factor in ((1,) if args.quick else (1, 10)):
                memory[device, factor] = child_memory(device, STEPS * factor)
                print(f"memory {device} {factor}x: {memory[device, factor]}", file=sys.stderr)

    base = results["numpy", True]
    print(f"Oja, {N_PRE} inputs -> 1 output, {STEPS} steps, record every {EVERY} steps "
          f"(best of {repeats}; wall-clock of the whole call)\n")
    print("| what | with recorder | without | recording cost | per step | vs NumPy (recorded) |")
    print("|---|---|---|---|---|---|")
    for name in ("numpy", "cpp_standalone", "runtime"):
        w, wo = results[name, True], results[name, False]
        print(f"| {name} | {w:.2f} s | {wo:.2f} s | {w / wo:.2f}x | {1e6 * w / STEPS:.0f} µs "
              f"| {w / base:.2f} |")
    print(f"\ncpp_standalone one-time build (empty cache): {build_cold:.1f} s "
          f"(whole first call {cold:.1f} s); warm build (make finds nothing to do): "
          f"{build_warm:.2f} s")
    print("\n| peak RSS (MiB) | 1x duration | 10x duration | ratio |")
    print("|---|---|---|---|")
    for device in ("cpp_standalone", "runtime"):
        one = memory[device, 1]
        ten = memory.get((device, 10))
        py = f"{device} (Python)"
        if ten:
            print(f"| {py} | {one[0]:.0f} | {ten[0]:.0f} | {ten[0] / one[0]:.2f} |")
            if device == "cpp_standalone":
                print(f"| {device} (C++ program) | {one[1]:.0f} | {ten[1]:.0f} | "
                      f"{ten[1] / one[1]:.2f} |")
        else:
            print(f"| {py} | {one[0]:.0f} | - | - |")


if __name__ == "__main__":
    main()
