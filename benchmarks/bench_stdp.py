"""Benchmark: Song, Miller & Abbott (2000), 1000 Poisson inputs -> 1 LIF neuron, 100 s.

The experiment ``experiments/stdp_song2000.toml`` (1000 Poisson inputs at 15 Hz onto
one conductance-based LIF neuron, additive STDP clipped to [0, g_max], dt = 0.1 ms, a
weight record every 100 ms) run two ways in one process, runtime device (Cython):

- ``plasticity``: ``plasticity.config.load_config`` + ``plasticity.sim.run``
  (``progress=False``): builds the network from the model spec and the rule, streams
  the weights and the per-interval pre/post firing rates to an HDF5 file (``RunFile``);
- ``brian2``: the same network written directly in Brian2 (the equations and the
  on_pre/on_post code copied from ``models/lif_poisson.toml`` / ``plasticity.sim.spiking``
  and ``plasticity.rules.stdp``), with a
  ``StateMonitor(synapses, 'w', record=np.arange(1000), dt=record_every)`` keeping the
  weights in memory (its last record is read back at the end, without copying
  the others).

Brian2's Cython cache is warmed first by a short run of each (untimed). Times are the
wall clock of the whole call (build network, run, recorder / monitor), best of
``--repeats``, the two ways alternating. The Brian2 network has no SpikeMonitor (the
issue's baseline: the network plus the weights' StateMonitor), while ours also logs
the pre/post firing rates of each record interval. Peak memory of each is measured in
a child process for 1x and 5x the duration (``VmHWM``, i.e. the child's own
``ru_maxrss``: see :func:`peak_rss_mib`; the two ways' children run side by side, so
their times are not reported): ours must stay flat, Brian2's StateMonitor grows with
the number of records.

    .venv/bin/python benchmarks/bench_stdp.py            # 100 s; a few minutes
    .venv/bin/python benchmarks/bench_stdp.py --quick    # 10 s and 50 s, 1 repeat

``--devices 5`` instead runs the experiment through plasticity on both devices, runtime
and cpp_standalone, for seeds 1-5 (:func:`device_comparison`): the speed-up of
standalone and a permutation test of the two devices' final weight histograms.

    .venv/bin/python benchmarks/bench_stdp.py --devices 5          # 100 s per run
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "experiments" / "stdp_song2000.toml"
N_PRE = 1000

# models/lif_poisson.toml with the experiment's [network.params]; the stdp rule's
# parameters from the experiment's [rule] (checked against the resolved config below)
MODEL = dict(tau_m="10*ms", V_rest="-74*mV", V_reset="-60*mV", V_th="-54*mV", E_ex="0*mV",
             E_in="-70*mV", tau_ex="5*ms", tau_in="5*ms", refractory="0*ms")
RULE = dict(A_plus=0.01, A_minus=0.0105, tau_plus="20*ms", tau_minus="20*ms", w_max=0.01)
RATE = 15.0         # Hz
DT = 1e-4           # s
EVERY = 0.1         # s, record interval
W_LOW, W_HIGH = 0.0, 0.01
SEED = 1

# plasticity.sim.spiking.LIF_EQS
LIF_EQS = """
dv/dt = (V_rest - v + g_ex * (E_ex - v) + g_in * (E_in - v)) / tau_m : volt (unless refractory)
dg_ex/dt = -g_ex / tau_ex : 1
dg_in/dt = -g_in / tau_in : 1
"""
# plasticity.rules.stdp.STDP, bounds = "hard"
SYN_EQS = """w : 1
dapre/dt = -apre / tau_plus : 1 (event-driven)
dapost/dt = -apost / tau_minus : 1 (event-driven)"""
ON_PRE = """g_ex_post += w
apre += 1
w = clip(w - A_minus * w_max * apost, 0, w_max)"""
ON_POST = """apost += 1
w = clip(w + A_plus * w_max * apre, 0, w_max)"""


def experiment(duration, device="runtime", seed=None):
    from plasticity.config import load_config

    return load_config(CONFIG, [f'simulation.duration="{duration} s"',
                                f'simulation.device="{device}"'], seed=seed)


def check_same_parameters():
    """The hard-coded Brian2 network uses the resolved config's values."""
    import brian2 as b2

    from plasticity.rules import get_rule
    from plasticity.sim.spiking import model_params, rule_namespace

    exp = experiment(1.0)
    ours = {**model_params(exp), **rule_namespace(get_rule("stdp"), exp.rule.params)}
    theirs = {k: eval(v, vars(b2)) if isinstance(v, str) else v
              for k, v in {**MODEL, **RULE}.items()}
    for key, value in theirs.items():
        assert abs(float(ours[key] - value)) <= 1e-12 * max(1.0, abs(float(value))), key
    assert exp.network.n_pre == N_PRE and exp.network.n_post == 1
    assert np.isclose(exp.simulation.dt, DT) and np.isclose(exp.record.every, EVERY)
    assert np.allclose(exp.inputs.rates, RATE)
    assert (exp.network.init.low, exp.network.init.high) == (W_LOW, W_HIGH)


def plasticity_run(duration, out, device="runtime", seed=None):
    """The experiment through plasticity; returns (final weights, post-synaptic rate in Hz)."""
    import h5py

    from plasticity.sim import run

    path = run(experiment(duration, device, seed), out_dir=out, progress=False)
    with h5py.File(path, "r") as f:
        post = f["rates/post"][1:, 0]
        assert f.attrs["status"] == "complete" and f["weights"].shape == (
            round(duration / EVERY) + 1, N_PRE)
        w = f["weights"][-1]
    return w, float(np.mean(post))


def brian2_run(duration):
    """The same network written directly in Brian2, a StateMonitor on the weights."""
    import brian2 as b2

    b2.set_device("runtime")
    b2.prefs.codegen.target = "cython"
    b2.defaultclock.dt = DT * b2.second
    b2.seed(SEED)
    ns = {k: eval(v, vars(b2)) if isinstance(v, str) else v for k, v in {**MODEL, **RULE}.items()}
    inputs = b2.PoissonGroup(N_PRE, rates=RATE * b2.Hz)
    neuron = b2.NeuronGroup(1, LIF_EQS, threshold="v > V_th", reset="v = V_reset",
                            refractory="refractory", method="euler", namespace=ns)
    neuron.v = ns["V_rest"]
    synapses = b2.Synapses(inputs, neuron, SYN_EQS, on_pre=ON_PRE, on_post=ON_POST,
                           namespace=ns)
    synapses.connect()
    synapses.w = np.random.default_rng(SEED).uniform(W_LOW, W_HIGH, N_PRE)
    weights = b2.StateMonitor(synapses, "w", record=np.arange(N_PRE), dt=EVERY * b2.second)
    net = b2.Network(inputs, neuron, synapses, weights)
    net.run(duration * b2.second)
    w = weights.w_                      # (1000, records), a view: everything is in memory
    assert w.shape == (N_PRE, round(duration / EVERY))
    return w[:, -1].copy(), float("nan")       # (no spike monitor: the post rate is not measured)


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def child_code(which, duration):
    return (
        "import json, resource, sys, tempfile\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import bench_stdp as b\n"
        "with tempfile.TemporaryDirectory() as out:\n"
        + (f"    b.plasticity_run({duration!r}, out)\n" if which == "plasticity"
           else f"    b.brian2_run({duration!r})\n")
        + "print(json.dumps(b.peak_rss_mib()))\n")


def peak_rss_mib():
    """This process's peak resident set size (MiB): ``VmHWM`` of /proc/self/status, the
    high-water mark of this process's own memory since its ``exec``. (``ru_maxrss``
    would do elsewhere, but Linux carries it over ``exec`` from the forking parent, so a
    child of this 400 MB benchmark would report at least the parent's peak.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_memories(duration):
    """Peak RSS (MiB) of a child process per way, the two running side by side."""
    procs = {which: subprocess.Popen([sys.executable, "-c", child_code(which, duration)],
                                     stdout=subprocess.PIPE, text=True)
             for which in ("plasticity", "brian2")}
    out = {}
    for which, proc in procs.items():
        stdout, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"{which} memory child failed ({proc.returncode})")
        out[which] = json.loads(stdout.strip().splitlines()[-1])
    return out


def histogram(w):
    """Fractions of weights in the bottom / top tenth of [0, w_max]."""
    w = np.asarray(w) / RULE["w_max"]
    return float(np.mean(w < 0.1)), float(np.mean(w > 0.9))


def device_comparison(duration, seeds):
    """The experiment through plasticity on both devices, seeds 1..``seeds``, the
    devices alternating: wall time of each ``plasticity.sim.run`` call (warm: the
    standalone program compiled and the Cython cache filled by a short untimed run of
    each), the final weight histograms compared over seeds
    (:func:`plasticity.analysis.devices.compare_weight_histograms`)."""
    import os

    from plasticity.analysis.devices import compare_weight_histograms

    devices = ("runtime", "cpp_standalone")
    load = os.getloadavg()[0]
    times = {d: [] for d in devices}
    final = {d: [] for d in devices}
    rates = {d: [] for d in devices}
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            plasticity_run(0.5, tmp, device)
        for seed in range(1, seeds + 1):
            for device in devices:
                seconds, (w, rate) = timed(plasticity_run, duration, tmp, device, seed)
                times[device].append(seconds)
                final[device].append(w)
                rates[device].append(rate)
                print(f"{device:15s} seed {seed}: {seconds:.2f} s (post rate {rate:.1f} Hz, "
                      f"bottom/top tenth {histogram(w)})", file=sys.stderr, flush=True)
    result = compare_weight_histograms(final["runtime"], final["cpp_standalone"], 0, RULE["w_max"])
    ratios = np.array(times["runtime"]) / np.array(times["cpp_standalone"])
    print(f"Song et al. 2000 on both devices: {duration:g} s simulated, seeds 1-{seeds}, "
          f"the devices alternating, wall clock of each `plasticity.sim.run` call (warm); "
          f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after\n")
    print("| device | time per run (median) | all | post rate (mean) | weights < 0.1 / > 0.9 g_max "
          "(mean over seeds) |")
    print("|---|---|---|---|---|")
    for device in devices:
        lo_hi = np.mean([histogram(w) for w in final[device]], axis=0)
        print(f"| {device} | {np.median(times[device]):.2f} s | "
              f"{' '.join(f'{t:.1f}' for t in times[device])} | {np.mean(rates[device]):.1f} Hz | "
              f"{lo_hi[0]:.2f} / {lo_hi[1]:.2f} |")
    print(f"\nspeed-up runtime / standalone per seed: {' '.join(f'{r:.2f}' for r in ratios)}; "
          f"median **{np.median(ratios):.2f}×** (target ≥ 3)")
    print(f"weight histograms (10 bins of [0, g_max]) runtime vs standalone, permutation test "
          f"over the {seeds}+{seeds} runs: D = {result.statistic:.4f}, p = {result.pvalue:.3f}; "
          f"mean histograms runtime {np.round(result.first, 2).tolist()}, standalone "
          f"{np.round(result.second, 2).tolist()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s (memory: 10 s and 50 s), 1 repeat")
    parser.add_argument("--duration", type=float, help="simulated seconds (default 100; quick 10)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--factor", type=int, default=5, help="memory: 1x and this x the duration")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--devices", type=int, metavar="SEEDS",
                        help="instead: runtime vs cpp_standalone over this many seeds")
    args = parser.parse_args()
    if args.devices:
        device_comparison(args.duration or 100.0, args.devices)
        return
    duration = args.duration or (10.0 if args.quick else 100.0)
    repeats = 1 if args.quick else args.repeats
    started = time.perf_counter()
    check_same_parameters()
    import brian2
    import h5py

    times = {"plasticity": [], "brian2": []}
    outcome = {}
    with tempfile.TemporaryDirectory() as tmp:
        # warm Brian2's Cython cache (untimed)
        plasticity_run(0.5, tmp)
        brian2_run(0.5)
        for _ in range(repeats):
            for which, fn, fargs in (("plasticity", plasticity_run, (duration, tmp)),
                                     ("brian2", brian2_run, (duration,))):
                seconds, outcome[which] = timed(fn, *fargs)
                times[which].append(seconds)
                print(f"{which:10s} {duration:g} s: {seconds:.2f} s "
                      f"(post rate {outcome[which][1]:.1f} Hz)", file=sys.stderr)
    memory = {}
    if not args.no_memory:
        for factor in (1, args.factor):
            memory[factor] = child_memories(duration * factor)
            print(f"memory {factor}x: {memory[factor]}", file=sys.stderr)

    ours, theirs = min(times["plasticity"]), min(times["brian2"])
    steps = round(duration / DT)
    print(f"Song et al. 2000: {N_PRE} Poisson inputs at {RATE:g} Hz -> 1 conductance LIF "
          f"neuron, additive STDP, {duration:g} s simulated ({steps} steps of {DT * 1e3:g} ms), "
          f"weights recorded every {EVERY * 1e3:g} ms ({round(duration / EVERY)} records); "
          f"runtime device, warm Cython cache; best of {repeats}, wall clock of the whole "
          f"call\n")
    print("| what | time | per step | post rate | weights < 0.1 g_max / > 0.9 g_max |")
    print("|---|---|---|---|---|")
    for which, label in (("plasticity", "plasticity (`runner.run`, HDF5 recorder)"),
                         ("brian2", "Brian2 directly (StateMonitor)")):
        t = min(times[which])
        lo, hi = histogram(outcome[which][0])
        rate = outcome[which][1]
        rate = f"{rate:.1f} Hz" if rate == rate else "(not recorded)"
        print(f"| {label} | {t:.2f} s | {1e6 * t / steps:.1f} µs | {rate} "
              f"| {lo:.2f} / {hi:.2f} |")
    print(f"\nratio plasticity / Brian2: **{ours / theirs:.3f}** (target ≤ 1.1); all times: "
          + ", ".join(f"{k} " + " ".join(f"{t:.2f}" for t in v) for k, v in times.items()))
    if memory:
        f = args.factor
        print(f"\n| peak RSS (MiB, child process) | {duration:g} s (1×) | {duration * f:g} s "
              f"({f}×) | ratio |")
        print("|---|---|---|---|")
        for which in ("plasticity", "brian2"):
            one, many = memory[1][which], memory[f][which]
            print(f"| {which} | {one:.0f} | {many:.0f} | {many / one:.2f} |")
    print(f"\nMachine: {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} CPUs, "
          f"Python {platform.python_version()}, NumPy {np.__version__}, "
          f"Brian2 {brian2.__version__}, h5py {h5py.__version__}; "
          f"whole script {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
