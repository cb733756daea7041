"""What each command imports, and how long the imports take (``python -X importtime``).

For ``plasticity --help``, ``plasticity run`` (the Oja case of ``bench_startup.py``,
warm build cache) and ``plasticity analyze`` (a small synthetic run file), run in a
fresh interpreter with ``-X importtime``: the sum of the top-level imports'
cumulative times, the biggest top-level imports, and which heavy libraries ended up
loaded. With ``--baseline DIR`` (an older source tree, put first on PYTHONPATH) both
trees are measured in alternation and the medians compared.

    python benchmarks/bench_imports.py --repeats 3 --baseline /tmp/old
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

HEAVY = ("brian2", "sympy", "matplotlib", "networkx", "scipy.optimize", "scipy.stats",
         "scipy.special", "pydantic", "h5py", "pytest")

PROBE = """
import json, sys
from plasticity.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps([m for m in %r if m in sys.modules]))
""" % (HEAVY,)


def measure(argv, env):
    # cwd: a folder without a plasticity package (``-c`` puts the cwd first on sys.path,
    # before PYTHONPATH, which would shadow the baseline tree)
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", PROBE, *argv], env=env,
                          capture_output=True, text=True, check=True, cwd=env["BENCH_CWD"])
    top = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\S+)$", line)   # top level
        if match:
            top[match[3]] = int(match[2]) / 1e6
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    return sum(top.values()), top, loaded


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", metavar="DIR")
    args = parser.parse_args()
    import bench_startup

    from plasticity.inputs import InputStats
    from plasticity.io.testing import write_run_file

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, PLASTICITY_CACHE=str(tmp / "cache"), BENCH_CWD=str(tmp))
        config = tmp / "case.toml"
        bench_startup.write_config(config, "auto")
        rng = np.random.default_rng(0)
        run_file = tmp / "small.h5"
        weights = 0.1 + 0.01 * np.cumsum(rng.standard_normal((50, 20)), axis=0)
        write_run_file(run_file, np.arange(50) * 0.1, weights, rule_name="oja",
                       params={"eta": 0.1}, stats=InputStats.gaussian(20, rng, spectrum=[1.0] * 20),
                       n_pre=20, n_post=1)
        commands = {"--help": ["--help"],
                    "run": ["run", str(config), "--out", str(tmp / "out"), "-q"],
                    "analyze": ["analyze", str(run_file)]}
        trees = {"current": env}
        if args.baseline:
            trees["baseline"] = dict(env, PYTHONPATH=str(Path(args.baseline).resolve()))
        for tree_env in trees.values():          # warm the build cache, the .pyc files
            measure(commands["run"], tree_env)
        results = {}
        for _ in range(args.repeats):
            for name, argv in commands.items():
                for tree, tree_env in trees.items():
                    results.setdefault((name, tree), []).append(measure(argv, tree_env))
    print(f"`python -X importtime`, sum of the top-level imports' cumulative times, median of "
          f"{args.repeats} (load average {os.getloadavg()[0]:.1f})\n")
    print("| command | tree | imports (s) | biggest top-level imports (s) | heavy libraries loaded |")
    print("|---|---|---|---|---|")
    for (name, tree), runs in results.items():
        total = statistics.median(r[0] for r in runs)
        top = runs[len(runs) // 2][1]
        biggest = ", ".join(f"{k} {v:.2f}" for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:4])
        print(f"| {name} | {tree} | {total:.2f} | {biggest} | {', '.join(runs[-1][2]) or '-'} |")


if __name__ == "__main__":
    main()
