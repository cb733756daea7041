"""Do runs that differ only in a parameter value recompile anything (runtime device)?

Runs a config several times in this process, each with another ``rule.eta`` (and seed),
counting the compiled extension modules in Brian2's Cython cache before and after
each run, and timing each ``plasticity.sim.run`` call. Use a private cache folder
(``--cache``) so that other processes compiling at the same time do not change the
count; run the script twice on the same cache to see a fresh process with a warm cache.

    python benchmarks/check_recompile.py experiments/oja_pca.toml --cache /tmp/cy \\
        --set simulation.duration='"1 s"' --set simulation.device='"runtime"' --eta 0.5 0.7
    python benchmarks/check_recompile.py ... --eta 0.9 1.1      # second process, warm cache
"""

import argparse
import tempfile
import time
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--cache", required=True, help="Brian2 Cython cache folder to use")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--eta", nargs="+", type=float, required=True)
    args = parser.parse_args()

    import brian2

    brian2.prefs.codegen.runtime.cython.cache_dir = args.cache
    from plasticity.config import load_config
    from plasticity.sim import run

    cache = Path(args.cache)

    def modules():
        return len(list(cache.glob("*.so"))) if cache.exists() else 0

    with tempfile.TemporaryDirectory() as out:
        for i, eta in enumerate(args.eta):
            experiment = load_config(args.config, [*args.overrides, f"rule.eta={eta}"], seed=100 + i)
            before = modules()
            started = time.perf_counter()
            run(experiment, path=Path(out) / f"{i}.h5", progress=False)
            print(f"eta = {eta:g}: {time.perf_counter() - started:.2f} s, "
                  f"new compiled modules: {modules() - before}", flush=True)


if __name__ == "__main__":
    main()
