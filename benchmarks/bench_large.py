"""Benchmark: a million plastic synapses, ``experiments/ei_network_large.toml``.

10⁴ LIF neurons, ~1.56·10⁶ synapses of which ~10⁶ E→E STDP synapses, weights of all
of them every 100 ms, on cpp_standalone. Measured, in this order:

1. warm-up (untimed): one short ``plasticity run`` (compiles the model's program,
   which later runs reuse whatever their duration) and ``plain_ei_large.py`` at the
   full duration (a plain Brian2 script compiles its duration into ``main.cpp``);
2. time: wall clock and CPU time (user + system, the process and its children) of the
   whole ``plasticity run`` command (``python -m plasticity.cli run ...
   --device cpp_standalone -q``: start-up, graph, code generation, a ``make`` with
   nothing to do, the run streaming ~10⁶ weights per record to the HDF5 file) against
   the whole plain script (the same network, the same networkx graph, no recording,
   Brian2's own build and run), wall clock of each process, alternating, best of
   ``--repeats``;
3. while plasticity's timed run goes, the run file is opened every ``--poll`` seconds
   with the package's reader (:func:`plasticity.io.reader.read_summary`: status and
   records) and its last weight row read (h5py): the file must be readable while it
   grows. The writer holds HDF5's file lock, so this process reads with
   ``HDF5_USE_FILE_LOCKING=FALSE`` (the writer flushes after each record; without
   SWMR HDF5 does not promise a consistent view to a reader, so failed reads are
   counted and reported);
4. peak memory of plasticity's run at 1× and 2× the duration: the Python process
   (``VmHWM``) and the C++ program (sampled from /proc while it streams).

    .venv/bin/python benchmarks/bench_large.py                 # 10 s; ~10 min under load
    .venv/bin/python benchmarks/bench_large.py --duration 1    # a quick check
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# this process only reads the run file while another writes it: without HDF5's file
# lock (which the writer holds), set before h5py is imported; the children run without it
_LOCKING = os.environ.get("HDF5_USE_FILE_LOCKING")
os.environ["HDF5_USE_FILE_LOCKING"] = "FALSE"

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "experiments" / "ei_network_large.toml"
PLAIN = Path(__file__).resolve().parent / "plain_ei_large.py"

#: runs `plasticity run` in a child and prints its own peak memory and the program's
CHILD = """
import json, sys
from plasticity.cli import main
from plasticity.sim import standalone
code = main(sys.argv[1:])
peak = None
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
print(json.dumps({"code": code, "python_mib": peak,
                  "program_mib": standalone.run.last_timings.get("program_maxrss_mib"),
                  "build_s": standalone.run.last_timings.get("build"),
                  "program_s": standalone.run.last_timings.get("run")}), file=sys.stderr)
"""


def check_same_parameters():
    """The plain script's values are the resolved config's."""
    sys.path.insert(0, str(PLAIN.parent))
    import plain_ei_large as plain

    from plasticity.config import load_config
    from plasticity.rules import get_rule
    from plasticity.sim.spiking import model_params, rule_namespace

    exp = load_config(CONFIG)
    ours = {**model_params(exp), **rule_namespace(get_rule("stdp"), exp.rule.params)}
    for key, value in plain.PARAMS.items():
        assert abs(float(ours[key] - value)) <= 1e-12 * max(1.0, abs(float(value))), key
    assert (exp.network.n_pre, exp.network.topology.args["p"]) == (plain.N, plain.P)
    assert round(float(ours["frac_exc"]) * plain.N) == plain.N_EXC
    assert ours["n_ext"] == plain.N_EXT and float(ours["g_ext"]) == plain.G_EXT
    assert (exp.network.init.low, exp.network.init.high) == (plain.W_LOW, plain.W_HIGH)
    syn_eqs, on_pre, on_post = get_rule("stdp").code(exp.rule.params)
    assert ("w : 1\n" + syn_eqs, "g_ex_post += w\n" + on_pre, on_post) == (
        plain.STDP_EQS, plain.ON_PRE, plain.ON_POST)
    return exp


def children_cpu():
    """CPU seconds (user + system) of the finished child processes and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_plain(duration, build):
    started, cpu = time.perf_counter(), children_cpu()
    out = subprocess.run([sys.executable, str(PLAIN), str(duration), str(build)], check=True,
                         capture_output=True, text=True)
    wall = time.perf_counter() - started
    info = json.loads(out.stdout.strip().splitlines()[-1])
    info["cpu_s"] = children_cpu() - cpu
    return wall, info


def run_ours(duration, out_dir, env, poll=None):
    """Wall time of the whole command, its peaks, and the reads of the growing file."""
    args = [sys.executable, "-c", CHILD, "run", str(CONFIG), "--device", "cpp_standalone",
            "--set", f'simulation.duration="{duration} s"', "--out", str(out_dir), "-q"]
    reads = []
    started, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    stop = threading.Event()
    if poll:
        watcher = threading.Thread(target=watch, args=(Path(out_dir), poll, stop, reads, started))
        watcher.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    stop.set()
    if poll:
        watcher.join()
    if proc.returncode:
        raise RuntimeError(f"plasticity run failed ({proc.returncode}): {stderr[-2000:]}")
    info = json.loads(stderr.strip().splitlines()[-1])
    info["cpu_s"] = children_cpu() - cpu
    return wall, info, Path(stdout.strip().splitlines()[-1]), reads


def watch(folder, poll, stop, reads, started):
    """Read the run file as it grows: (seconds since start, status, records, last weights
    finite) per successful read, or (seconds, "error", message)."""
    import h5py

    from plasticity.io.reader import read_summary

    while not stop.wait(poll):
        files = list(folder.glob("*.h5"))
        if not files:
            continue
        try:
            summary = read_summary(files[0])
            rows = summary["records"] or 0
            with h5py.File(files[0], "r") as f:
                finite = bool(np.all(np.isfinite(f["weights"][rows - 1]))) if rows else None
            reads.append((time.perf_counter() - started, summary["status"], rows, finite))
        except Exception as error:        # a failed read is a result, reported
            reads.append((time.perf_counter() - started, "error", f"{type(error).__name__}: {error}"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="simulated seconds")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between file reads")
    parser.add_argument("--no-memory", action="store_true", help="skip the 2x-duration run")
    args = parser.parse_args()
    started = time.perf_counter()
    exp = check_same_parameters()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, PLASTICITY_CACHE=str(tmp / "cache"))
        env.pop("HDF5_USE_FILE_LOCKING")
        if _LOCKING is not None:
            env["HDF5_USE_FILE_LOCKING"] = _LOCKING
        # warm-up: compile both programs
        run_ours(min(0.2, args.duration), tmp / "warm", env)
        run_plain(args.duration, tmp / "plain-build")
        ours, plain, reads, infos, plain_infos = [], [], [], [], []
        for k in range(args.repeats):
            wall, info, path, seen = run_ours(args.duration, tmp / f"ours{k}", env, args.poll)
            ours.append(wall)
            infos.append(info)
            reads += seen
            wall, plain_info = run_plain(args.duration, tmp / "plain-build")
            plain.append(wall)
            plain_infos.append(plain_info)
            print(f"repeat {k}: plasticity {ours[-1]:.1f} s ({info}), plain {wall:.1f} s "
                  f"({plain_info})", file=sys.stderr, flush=True)
        double = None
        if not args.no_memory:
            _, double, _, _ = run_ours(2 * args.duration, tmp / "double", env)
            print(f"2x: {double}", file=sys.stderr)
    load_after = os.getloadavg()
    best_ours, best_plain = min(ours), min(plain)
    print(f"ei_network_large: 10⁴ LIF neurons, {plain_info['plastic_synapses']:,} plastic E→E "
          f"STDP synapses, {args.duration:g} s simulated, weights every 100 ms; "
          f"cpp_standalone, warm builds; best of {args.repeats}, wall clock of each process\n")
    print("| what | time | parts |")
    print("|---|---|---|")
    info = infos[ours.index(best_ours)]
    print(f"| `plasticity run` (HDF5 recorder) | {best_ours:.1f} s | build {info['build_s']:.1f} s, "
          f"program {info['program_s']:.1f} s |")
    print(f"| plain Brian2 script, no recording | {best_plain:.1f} s | graph "
          f"{plain_info['graph']:.1f} s, build {plain_info['build']:.1f} s, run "
          f"{plain_info['run']:.1f} s |")
    print(f"\nratio plasticity / plain: **{best_ours / best_plain:.3f}** (target ≤ 1.15); all: "
          f"plasticity {' '.join(f'{t:.1f}' for t in ours)}, plain {' '.join(f'{t:.1f}' for t in plain)}")
    cpu_ours = min(i["cpu_s"] for i in infos)
    cpu_plain = min(i["cpu_s"] for i in plain_infos)
    print(f"CPU time (user + system of each process and its children; less sensitive to the "
          f"load than the wall clock): plasticity {cpu_ours:.1f} s, plain {cpu_plain:.1f} s, "
          f"ratio **{cpu_ours / cpu_plain:.3f}**")
    if double:
        print(f"\n| peak memory (MiB) | {args.duration:g} s | {2 * args.duration:g} s | ratio |")
        print("|---|---|---|---|")
        for key, label in (("python_mib", "Python process"), ("program_mib", "C++ program")):
            one, two = info[key], double[key]
            print(f"| {label} | {one:.0f} | {two:.0f} | {two / one:.2f} |")
    good = [r for r in reads if r[1] != "error"]
    bad = [r for r in reads if r[1] == "error"]
    grew = [r[2] for r in good]
    print(f"\nfile read while the run went: {len(good)} reads succeeded, {len(bad)} failed; "
          f"records seen {grew[:1]}…{grew[-1:]} (statuses {sorted({r[1] for r in good})}); "
          f"last weight rows finite: {all(r[3] is not False for r in good)}"
          + (f"; failures: {bad[:3]}" if bad else ""))
    print(f"\nLoad average before/after: {load[0]:.1f} / {load_after[0]:.1f} "
          f"({len(os.sched_getaffinity(0))} CPUs); Python {platform.python_version()}; "
          f"whole script {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
