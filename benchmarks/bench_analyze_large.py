"""Benchmark: whole-process ``plasticity analyze`` on a million-synapse spiking run file.

Writes run files in the recorder's own format (:class:`plasticity.io.RunFile`): 10⁴
neurons, each the target of ``--per-post`` random presynaptic neurons (10⁶ plastic
soft-bound pair-STDP synapses, ``rule = "stdp"``), one record every 100 ms, with
``/rates/pre`` and ``/rates/post`` per record interval. The weights follow the
rule's rate-limit drift at Poisson-sampled rates plus spike noise (a synthetic stand-in
for a Brian2 run of that size: the analysis reads the same datasets). Then it runs
``plasticity analyze FILE --json`` in a child process, without a loss (recurrence,
loss discovery, consistency test) and with a loss (``--loss`` a user module, a quadratic
around the drift's fixed point), at ``--records`` and at ten times as many, and
reports the wall time and the child's peak resident memory (``wait4``) against one
record's bytes (n · 8).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_analyze_large.py [--per-post 100]
        [--records 101] [--long 1001] [--keep DIR] [--reference OLD_SOURCE]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from plasticity.io import RunFile

#: soft-bound pair STDP (as experiments/ei_network_stdp.toml)
PARAMS = {"A_plus": 0.01, "A_minus": 0.0105, "tau_plus": 0.02, "tau_minus": 0.02, "w_max": 0.04}


def config_text(neurons, per_post, every):
    rule = "\n".join(f"{k} = {v!r}" for k, v in PARAMS.items())
    return textwrap.dedent(f"""\
        name = "stdp_million"
        seed = 1

        [network]
        model = "ei_network"
        n_pre = {neurons}
        n_post = {neurons}

        [rule]
        name = "stdp"
        bounds = "soft"
        """) + rule + f"\n\n[record]\nevery = {every!r}\n"


def fixed_point():
    """The soft-bound drift's fixed point w* (independent of the rates)."""
    p, m = PARAMS["A_plus"] * PARAMS["tau_plus"], PARAMS["A_minus"] * PARAMS["tau_minus"]
    return p * PARAMS["w_max"] / (p + m)


def generate(path, neurons=10_000, per_post=100, records=101, every=0.1, seed=0):
    """A run file of ``neurons × per_post`` synapses and ``records`` records."""
    rng = np.random.default_rng(seed)
    post = np.repeat(np.arange(neurons), per_post)
    pre = rng.integers(0, neurons, post.size)
    order = np.lexsort((post, pre))                  # Brian2's order: by presynaptic neuron
    pre, post = pre[order], post[order]
    S = pre.size
    base = rng.uniform(2.0, 20.0, neurons)           # each neuron's mean rate (Hz)
    w = rng.uniform(0.0, PARAMS["w_max"], S)
    p, m = PARAMS["A_plus"] * PARAMS["tau_plus"], PARAMS["A_minus"] * PARAMS["tau_minus"]
    run = RunFile(path, S, extra_sizes={"rates/pre": neurons, "rates/post": neurons})
    run.write_metadata(config_toml=config_text(neurons, per_post, every), rule="stdp",
                       model="ei_network", seed=1, pre=pre, post=post,
                       attrs={"device": "synthetic", "n_pre": neurons, "n_post": neurons,
                              "kind": "spiking", "record_every": every})
    nan = np.full(neurons, np.nan)
    run.append(0.0, w, extra={"rates/pre": nan, "rates/post": nan})
    for k in range(1, records):
        rates = rng.poisson(base * every) / every
        rx, ry = rates[pre], rates[post]
        drift = rx * ry * (p * (PARAMS["w_max"] - w) - m * w)
        noise = 0.5 * np.sqrt(rx * ry) * every * PARAMS["A_plus"] * PARAMS["w_max"]
        w = np.clip(w + every * drift + noise * rng.standard_normal(S), 0.0, PARAMS["w_max"])
        run.append(k * every, w, extra={"rates/pre": rates, "rates/post": rates})
    run.close("complete")
    return path


LOSS_MODULE = """\
import numpy as np
W_STAR = {w_star!r}


def quadratic(w):
    d = np.asarray(w, float) - W_STAR
    return 0.5 * np.einsum("ks,ks->k", d, d), d
"""


def analyze(path, extra=(), source=None):
    """``plasticity analyze path --json`` in a child: (wall s, CPU s, peak RSS bytes,
    document). CPU time and peak are the child's own (``wait4``): on a loaded machine
    the CPU time is the comparable number. ``source``: the folder of another version
    of the package to run instead (put first on ``PYTHONPATH``)."""
    command = [sys.executable, "-c", "from plasticity.cli import main; main()", "analyze",
               str(path), "--json", *extra]
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = os.pathsep.join([str(source)] + env.get("PYTHONPATH", "").split(os.pathsep)).rstrip(os.pathsep)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        # run from the source folder: a child's sys.path starts with its working folder
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=source)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"analyze failed ({child.returncode}): {err.read().decode()[-2000:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return wall, cpu, usage.ru_maxrss * 1024, json.loads(out.read())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--neurons", type=int, default=10_000)
    parser.add_argument("--per-post", type=int, default=100)
    parser.add_argument("--records", type=int, default=101)
    parser.add_argument("--long", type=int, default=1001, help="records of the long file (0: skip)")
    parser.add_argument("--keep", help="folder for the run files (default: a temporary one)")
    parser.add_argument("--only-generate", action="store_true")
    parser.add_argument("--documents", action="store_true", help="keep each JSON document in the folder")
    parser.add_argument("--losses", default="none,quadratic", help="which analyses: none, quadratic")
    parser.add_argument("--reference", help="folder of another version of the package (e.g. a "
                        "`git archive` of an earlier commit): each analysis also runs with it, "
                        "interleaved, and the rows say which")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench_analyze_large_"))
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [args.records] + ([args.long] if args.long else [])
    files = {}
    for T in sizes:
        path = folder / f"stdp_{args.neurons}x{args.per_post}_{T}.h5"
        if not path.exists():
            started = time.perf_counter()
            generate(path, args.neurons, args.per_post, T)
            print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
        files[T] = path.resolve()
    if args.only_generate:
        return
    loss = (folder / "quadratic_loss.py").resolve()
    loss.write_text(LOSS_MODULE.format(w_star=fixed_point()))
    record = args.neurons * args.per_post * 8
    print(f"\none record: {record / 2**20:.1f} MiB; load {os.getloadavg()[0]:.2f}\n")
    print("| records | loss | wall (s) | CPU (s) | peak RSS (MiB) | peak / record | verdicts |")
    print("|---|---|---|---|---|---|---|")
    for T in sizes:
        runs = {"none": ("none (discovery)", ()), "quadratic": ("quadratic (user)", ("--loss", f"{loss}:quadratic"))}
        for label, extra in [runs[k] for k in args.losses.split(",")]:
            versions = [("", None)] + ([(" [reference]", Path(args.reference).resolve())] if args.reference else [])
            for version, source in versions:
                wall, cpu, peak, doc = analyze(files[T], extra, source)
                verdicts = ", ".join(f"{r['loss']}: {r['verdict']}" for r in doc["results"]) or "-"
                print(f"| {T} | {label}{version} | {wall:.0f} | {cpu:.0f} | {peak / 2**20:.0f} | "
                      f"{peak / record:.0f} | {verdicts} |  (load {os.getloadavg()[0]:.1f})", flush=True)
                if args.documents:
                    name = f"analyze_{T}_{'loss' if extra else 'none'}{'_reference' if source else ''}.json"
                    (folder / name).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
