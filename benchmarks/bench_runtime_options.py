"""Benchmark: ways of running the Oja case on Brian2's runtime device, against NumPy.

The case of ``bench_run.py`` (Oja, 10 000 Gaussian inputs → 1 linear output, dt = 1 ms),
``--steps`` steps (2 000 by default), no recorder, in this process (Cython cache warmed
by a first untimed pass of each). Each way is timed over all steps but the first, a
separate ``Network.run`` that generates and loads the code objects (network
construction and code generation excluded: they are paid once per run), interleaved with the plain
NumPy loop of ``bench_run.py`` (``bench_run.numpy_run(record=False)``), median of
``--repeat`` rounds:

- ``Brian2 objects (before)``: the network as ``plasticity.sim.rate`` built it before
  the NumPy steps: three code objects per step (``inputs_draw`` with Brian2's
  ``randn()``, the summed ``ysum``, the rule's update);
- ``numpy inputs``: the inputs drawn by one ``network_operation`` with
  ``numpy.random.Generator.standard_normal`` (the ziggurat) written into ``x``; the
  sum and the update stay Cython code objects;
- ``numpy inputs + matrix sum``: the same operation also computes ``ysum = x · W``
  (all-to-all synapses in Brian2's (pre, post) order are a ``(n_pre, n_post)`` matrix,
  a view of ``w``), replacing the summed-variable code object; the update stays Cython;
- ``shipped``: what ``plasticity.sim.rate`` builds now, the previous way made part of
  the network construction (one operation drawing the inputs, one computing the sum);
- ``one operation``: a single ``network_operation`` per step does the draw, the sum
  (``np.bincount`` over the synapses' post indices) and the update (Oja's statement,
  evaluated with NumPy on gathered ``x_pre`` / ``y_post``), i.e. no Brian2 code object
  at all: the bound of what batching in one Python call can give;
- ``no objects``: the network with every object made inactive: Brian2's own cost per
  step (clock, scheduling) with nothing to run.

    python benchmarks/bench_runtime_options.py --steps 2000 --repeat 3
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import bench_run  # noqa: E402


def build(steps, brian2_only=True):
    """The network of ``plasticity.sim.rate.build_rate_network``; with ``brian2_only``
    as it was built before the NumPy steps (every step a Brian2 code object: the
    network cpp_standalone gets, without its C++-only functions)."""
    import brian2 as b2

    from plasticity.rules import get_rule
    from plasticity.sim import rate

    exp = bench_run.experiment("runtime", steps)
    rate.start_runtime(exp)
    rule = get_rule(exp.rule.name)
    saved = rate._standalone, rate.normal_draw, rate.standalone_matrix_sum
    if brian2_only:
        rate._standalone = lambda: True
        rate.normal_draw = lambda: ("randn()", None)
        rate.standalone_matrix_sum = lambda *args: None
    try:
        parts = rate.build_rate_network(exp, rule, exp.rule.params, np.random.default_rng(exp.seed))
    finally:
        rate._standalone, rate.normal_draw, rate.standalone_matrix_sum = saved
    return b2, exp, parts


def objects_named(parts, *names):
    found = {}
    for obj in parts.network.objects:
        for sub in [obj, *obj.contained_objects]:
            if sub.name in names:
                found[sub.name] = sub
    summed = parts.synapses.summed_updaters.get("ysum_post")
    if summed is not None and "summed" in names:
        found["summed"] = summed
    return found


def way_brian2_objects(steps):
    b2, exp, parts = build(steps)
    return parts.network, steps * exp.simulation.dt * b2.second


def way_shipped(steps):
    b2, exp, parts = build(steps, brian2_only=False)
    return parts.network, steps * exp.simulation.dt * b2.second


def way_numpy_inputs(steps):
    b2, exp, parts = build(steps)
    objects_named(parts, "inputs_draw")["inputs_draw"].active = False
    inputs = parts.network["inputs"]
    x = inputs.variables["x"].get_value()
    sd, mean = parts.stats.scale, parts.stats.mean
    rng = np.random.default_rng(exp.seed)

    @b2.network_operation(when="start", order=0)
    def draw():
        rng.standard_normal(out=x)
        np.multiply(x, sd, out=x)
        np.add(x, mean, out=x)

    parts.network.add(draw)
    return parts.network, steps * exp.simulation.dt * b2.second


def way_numpy_inputs_and_sum(steps):
    b2, exp, parts = build(steps)
    for obj in objects_named(parts, "inputs_draw", "summed").values():
        obj.active = False
    x = parts.network["inputs"].variables["x"].get_value()
    ysum = parts.neurons.variables["ysum"].get_value()
    w = parts.synapses.variables["w"].get_value()
    n_post = len(ysum)
    matrix = w.reshape(-1, n_post)      # all-to-all, synapses in (pre, post) order: a view
    sd, mean = parts.stats.scale, parts.stats.mean
    rng = np.random.default_rng(exp.seed)

    @b2.network_operation(when="start", order=0)
    def draw_and_sum():
        rng.standard_normal(out=x)
        np.multiply(x, sd, out=x)
        np.add(x, mean, out=x)
        np.dot(x, matrix, out=ysum)

    parts.network.add(draw_and_sum)
    return parts.network, steps * exp.simulation.dt * b2.second


def way_one_operation(steps):
    b2, exp, parts = build(steps)
    for obj in objects_named(parts, "inputs_draw", "plasticity", "summed").values():
        obj.active = False
    x = parts.network["inputs"].variables["x"].get_value()
    ysum = parts.neurons.variables["ysum"].get_value()
    w = parts.synapses.variables["w"].get_value()
    pre, post = parts.topology.pre, parts.topology.post
    n_post = len(ysum)
    sd, mean = parts.stats.scale, parts.stats.mean
    rate = exp.rule.params["eta"] * exp.simulation.dt
    rng = np.random.default_rng(exp.seed)

    @b2.network_operation(when="start", order=0)
    def step():
        rng.standard_normal(out=x)
        np.multiply(x, sd, out=x)
        np.add(x, mean, out=x)
        x_pre = x[pre]
        ysum[:] = np.bincount(post, w * x_pre, minlength=n_post)
        y_post = ysum[post]
        np.add(w, rate * y_post * (x_pre - y_post * w), out=w)

    parts.network.add(step)
    return parts.network, steps * exp.simulation.dt * b2.second


def way_no_objects(steps):
    b2, exp, parts = build(steps)
    for obj in objects_named(parts, "inputs_draw", "plasticity", "summed").values():
        obj.active = False
    return parts.network, steps * exp.simulation.dt * b2.second


WAYS = {"Brian2 objects (before)": way_brian2_objects, "numpy inputs": way_numpy_inputs,
        "numpy inputs + matrix sum": way_numpy_inputs_and_sum,
        "shipped (plasticity.sim.rate)": way_shipped,
        "one operation": way_one_operation, "no objects": way_no_objects}


def run_way(make, steps):
    network, duration = make(steps)
    # one step first: code generation and loading the compiled objects (the same for
    # every way, and paid once per run) stay out of the per-step comparison
    network.run(duration / steps, namespace={})
    started = time.perf_counter()
    network.run(duration - duration / steps, namespace={})
    return time.perf_counter() - started


def run_numpy(steps):
    exp = bench_run.experiment("runtime", steps - 1)
    started = time.perf_counter()
    bench_run.numpy_run(exp, None, record=False)
    return time.perf_counter() - started


def main():
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from plasticity.sim.brian import import_brian2

    import_brian2()
    for make in WAYS.values():      # warm the Cython cache
        run_way(make, 10)
    times = {name: [] for name in ["numpy", *WAYS]}
    ratios = {name: [] for name in WAYS}
    for _ in range(args.repeat):
        for name, make in WAYS.items():
            reference = run_numpy(args.steps)
            times["numpy"].append(reference)
            times[name].append(run_way(make, args.steps))
            ratios[name].append(times[name][-1] / reference)
    print(f"Oja, {bench_run.N_PRE} synapses, {args.steps} steps, runtime device, no recorder; "
          f"median of {args.repeat}; load average {os.getloadavg()[0]:.1f}\n")
    print("| way | median (s) | per step | vs NumPy (median of paired ratios) |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        ratio = f"{statistics.median(ratios[name]):.2f}" if name in ratios else "1.00"
        print(f"| {name} | {median:.3f} | {1e6 * median / args.steps:.0f} µs | {ratio} |")


if __name__ == "__main__":
    main()
