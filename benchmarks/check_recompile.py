"""Do runs that differ only in parameter values, seeds or durations recompile anything?

Runs a config several times in this process, each with another value of one
parameter (``--param``, default ``rule.eta``), another seed and, with ``--durations``,
another duration. Before and after each run it counts what was compiled: the Cython
extension modules in Brian2's cache (runtime device) and the object files and
programs rebuilt in the standalone build folders (cpp_standalone; the modification
times of ``*.o`` and ``main`` under ``$PLASTICITY_CACHE``), and it times each
``plasticity.sim.run`` call. Use private folders (``--cache``) so that other processes
compiling at the same time do not change the counts; run the script twice on the same
cache to see a fresh process with a warm cache.

    python benchmarks/check_recompile.py experiments/oja_pca.toml --cache /tmp/cy \\
        --set simulation.duration='"1 s"' --set simulation.device='"runtime"' --values 0.5 0.7
    python benchmarks/check_recompile.py experiments/stdp_song2000.toml --cache /tmp/sa \\
        --set simulation.device='"cpp_standalone"' --param rule.A_plus \\
        --values 0.01 0.012 0.008 --durations 2 3 1
"""

import argparse
import os
import tempfile
import time
from pathlib import Path


def compiled_files(cache):
    """{path: mtime} of what compiling leaves: Cython modules, object files, programs."""
    found = {}
    if cache.exists():
        for pattern in ("**/*.so", "**/*.o", "**/main"):
            for path in cache.glob(pattern):
                found[path] = path.stat().st_mtime_ns
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--cache", required=True,
                        help="private folder for Brian2's Cython cache and the standalone builds")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--param", default="rule.eta", help="the config key to vary")
    parser.add_argument("--values", "--eta", dest="values", nargs="+", type=float, required=True)
    parser.add_argument("--durations", nargs="+", type=float,
                        help="simulated seconds of each run (default: the config's)")
    args = parser.parse_args()
    cache = Path(args.cache).resolve()
    os.environ["PLASTICITY_CACHE"] = str(cache)

    import brian2

    brian2.prefs.codegen.runtime.cython.cache_dir = str(cache / "cython")
    from plasticity.config import load_config
    from plasticity.sim import run

    rebuilt_total = 0
    with tempfile.TemporaryDirectory() as out:
        for i, value in enumerate(args.values):
            overrides = [*args.overrides, f"{args.param}={value}"]
            if args.durations:
                overrides.append(f'simulation.duration="{args.durations[i % len(args.durations)]} s"')
            experiment = load_config(args.config, overrides, seed=100 + i)
            before = compiled_files(cache)
            started = time.perf_counter()
            run(experiment, path=Path(out) / f"{i}.h5", progress=False)
            seconds = time.perf_counter() - started
            after = compiled_files(cache)
            rebuilt = sorted(str(p.relative_to(cache)) for p, m in after.items() if before.get(p) != m)
            if i:
                rebuilt_total += len(rebuilt)
            print(f"{args.param} = {value:g}, seed {100 + i}, duration "
                  f"{experiment.simulation.duration:g} s: {seconds:.2f} s, compiled: "
                  f"{len(rebuilt)} {rebuilt[:6] if rebuilt else ''}", flush=True)
    print(f"files compiled after the first run: {rebuilt_total}")


if __name__ == "__main__":
    main()
