"""Run an experiment: a plain function from a resolved config to a run file.

:func:`run` is what the CLI calls and what a sweep would call in a worker process: it
takes an :class:`~plasticity.config.Experiment`, builds the Brian2 network, streams the
records to a fresh HDF5 file and returns the file's path. Everything it needs (seed,
device, build directory) comes from the config and its arguments, nothing from global
state left by an earlier call.
"""

import signal
import sys
import time as _time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import Diverged, Interrupted
from .recorder import RunFile, new_run_path
from .rules import get_rule

#: ``auto`` uses cpp_standalone when the run's work, steps × (synapses +
#: STEP_OVERHEAD_SYNAPSES), is at least this; below it the runtime device's cached
#: Cython code starts faster. Measured on a 2-core VM (benchmarks/RESULTS.md, Oja rate
#: network): runtime ≈ 25 µs per step + 41 ns per synapse-step, cpp_standalone ≈ 13 ns
#: per synapse-step and ~1 µs per step, so standalone saves ≈ 28 ns per synapse-step
#: and ≈ 25 µs (≈ 900 synapse-steps) per step. Its build costs ≈ 1.5 s when only the
#: seed or duration changed (main.cpp recompiled), 4–8 s for a new model, ~0.02 s
#: for an identical rerun. Break-even: ≈ 5e7 work (warm) to ≈ 2e8 (cold): 1e8 between.
STANDALONE_MIN_WORK = 1e8
#: the runtime device's fixed cost per step, in synapse-steps of standalone savings
STEP_OVERHEAD_SYNAPSES = 900


def choose_device(experiment, n_synapses):
    """The Brian2 device a run uses (``auto``: by the amount of work)."""
    device = experiment.simulation.device
    if device != "auto":
        return device
    work = experiment.simulation.steps * (n_synapses + STEP_OVERHEAD_SYNAPSES)
    return "cpp_standalone" if work >= STANDALONE_MIN_WORK else "runtime"


def results_dir(experiment, out_dir=None):
    """The folder of a run's file: ``out_dir``, default ``results/<name>/``."""
    return Path(out_dir) if out_dir is not None else Path("results") / experiment.name


def run_path(experiment, out_dir=None, path=None):
    """The run file to write: ``path`` if given, else a fresh file in
    :func:`results_dir`."""
    if path is not None:
        return Path(path)
    return new_run_path(results_dir(experiment, out_dir), experiment.seed)


@contextmanager
def _stop_on_signals(on_signal):
    """Turn SIGINT/SIGTERM into a clean stop at the end of the current step."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda signum, frame: on_signal(signum))
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Progress:
    """tqdm progress in simulated seconds, on stderr, quiet when asked."""

    def __init__(self, total, enabled, desc):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=round(total, 6), unit="s sim", desc=desc, file=sys.stderr,
                            dynamic_ncols=True, leave=False,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.3g}/{total:.3g} s "
                                       "[{elapsed}<{remaining}, {rate_fmt}]")

    def update_to(self, t):
        if self.bar is not None:
            # tqdm redraws at most every mininterval, so this is cheap per record
            self.bar.update(round(t, 6) - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def check_finite(weights, state, bound):
    """``None`` if the record is fine, else a short reason."""
    if not np.all(np.isfinite(weights)):
        return "non-finite weights"
    biggest = np.max(np.abs(weights)) if weights.size else 0.0
    if biggest > bound:
        return f"|w| = {biggest:.4g} exceeds simulation.weight_bound = {bound:g}"
    for name, values in (state or {}).items():
        if not np.all(np.isfinite(values)):
            return f"non-finite {name}"
    return None


def run(experiment, out_dir=None, *, path=None, progress=True, build_dir=None, _record=True):
    """Run ``experiment`` and return the path of its HDF5 run file.

    Parameters
    ----------
    experiment : plasticity.config.Experiment
        A resolved config (see :func:`plasticity.config.load_config`).
    out_dir : path, optional
        Folder of the run file (default ``results/<name>/``).
    path : path, optional
        The run file itself (must not exist).
    progress : bool
        Show a progress bar on stderr.
    build_dir : path, optional
        cpp_standalone build folder (default: one per process under the user cache).

    Raises :class:`~plasticity.errors.Diverged` (file kept, status ``diverged``) and
    :class:`Interrupted` (status ``interrupted``).

    ``_record=False`` (private, for the benchmark only) runs without the recorder and
    writes no file; it returns ``None``.
    """
    if getattr(experiment, "kind", None) == "dynamics":
        from . import dynamics

        return dynamics.run(experiment, out_dir, path=path, progress=progress)
    import brian2 as b2

    from .network import build_rate_network

    if experiment.network.spec.get("kind", "rate") == "spiking":
        from . import spiking    # Poisson inputs, LIF neurons, event-driven rules

        return spiking.run(experiment, out_dir, path=path, progress=progress, build_dir=build_dir)

    rule = get_rule(experiment.rule.name)
    params = experiment.rule.params
    rng = np.random.default_rng(experiment.seed)

    # decide the device before creating any Brian2 object
    n_synapses_guess = experiment.network.n_pre * experiment.network.n_post
    device = choose_device(experiment, n_synapses_guess)
    if device == "cpp_standalone":
        from . import standalone

        return standalone.run(experiment, rule, params, rng, out_dir=out_dir, path=path,
                              progress=progress, build_dir=build_dir, record=_record)

    b2.set_device("runtime")
    b2.prefs.codegen.target = "cython"
    b2.defaultclock.dt = experiment.simulation.dt * b2.second
    b2.seed(experiment.seed)
    parts = build_rate_network(experiment, rule, params, rng)
    if not _record:
        parts.network.run(experiment.simulation.duration * b2.second, namespace={})
        return None
    return _run_runtime(experiment, rule, params, parts, out_dir, path, progress)


def open_run_file(experiment, rule, parts, out_dir, path, device, *, stats=None, extra_sizes=None,
                  attrs=None):
    """Create the run file of an experiment and write its metadata (input statistics
    ``stats``, default ``parts.stats``; ``extra_sizes`` and ``attrs`` as
    :class:`~plasticity.recorder.RunFile` takes them)."""
    path = run_path(experiment, out_dir, path)
    state_sizes = {name: experiment.network.n_post for name in rule.state} if experiment.record.state else {}
    runfile = RunFile(path, len(parts.topology.pre), state_sizes, extra_sizes=extra_sizes)
    runfile.write_metadata(config_toml=experiment.to_toml(), rule=rule.name,
                           model=experiment.network.model, seed=experiment.seed,
                           pre=parts.topology.pre, post=parts.topology.post,
                           stats=parts.stats if stats is None else stats,
                           attrs={"device": device, "n_pre": experiment.network.n_pre,
                                  "n_post": experiment.network.n_post,
                                  "dt": experiment.simulation.dt,
                                  "record_every": experiment.record.every, **(attrs or {})})
    return runfile


def drive(experiment, network, record, runfile, bar):
    """Run a Brian2 ``network`` for the experiment's duration, calling ``record(t)``
    at t = 0, every, 2·every, … (before that step's updates) and once at the end.

    ``record`` appends a record to ``runfile`` and returns ``None`` or the reason the
    run diverged. SIGINT/SIGTERM stop the run at the end of the current step. Returns
    ``(outcome, now)``: ``outcome`` holds ``status`` (None when the run completed),
    ``message`` and ``time``; ``now`` is the simulated time reached. On an exception
    the file is closed as ``failed`` (``interrupted`` for a KeyboardInterrupt).
    """
    import brian2 as b2

    outcome = {"status": None, "message": None, "time": None}

    def check(now):
        problem = record(now)
        if problem:
            outcome.update(status="diverged", time=now, message=problem)
            network.stop()

    @b2.network_operation(dt=experiment.record.every * b2.second, when="start", order=-100,
                          name="recorder")
    def recorder(t):
        # runs before the step's updates: the record at time t is the state at t
        check(float(t / b2.second))

    def on_signal(signum):
        outcome.update(status="interrupted", message=f"stopped by {signal.Signals(signum).name}")
        network.stop()

    network.add(recorder)
    started = _time.time()
    try:
        with _stop_on_signals(on_signal):
            network.run(experiment.simulation.duration * b2.second, namespace={})
        if outcome["status"] is None:
            check(float(network.t / b2.second))      # the state at the end of the run
    except BaseException as error:
        bar.close()
        if isinstance(error, KeyboardInterrupt):  # a SIGINT before the handler was set
            runfile.close("interrupted", "stopped by SIGINT")
        else:
            runfile.close("failed", f"{type(error).__name__}: {error}")
        raise
    bar.close()
    runfile.file.attrs["wall_time"] = _time.time() - started
    return outcome, float(network.t / b2.second)


def finish(runfile, rule, outcome, now):
    """Close ``runfile`` with the outcome's status; raise :class:`Diverged` or
    :class:`Interrupted` (the file kept) when the run did not complete."""
    status = outcome["status"] or "complete"
    runfile.close(status, outcome["message"])
    if status == "diverged":
        raise Diverged(f"run diverged at t = {outcome['time']:g} s under rule "
                       f"{rule.name!r}: {outcome['message']} (log kept: {runfile.path})",
                       time=outcome["time"], path=runfile.path)
    if status == "interrupted":
        raise Interrupted(f"run interrupted at t = {now:g} s ({outcome['message']}); "
                          f"records so far kept in {runfile.path}", time=now, path=runfile.path)
    return runfile.path


def _run_runtime(experiment, rule, params, parts, out_dir, path, progress):
    sim = experiment.simulation
    runfile = open_run_file(experiment, rule, parts, out_dir, path, "runtime")
    synapses, neurons = parts.synapses, parts.neurons
    state_names = list(runfile.state_sizes)
    bar = _Progress(sim.duration, progress, experiment.name)

    def record(t):
        w = np.asarray(synapses.w_[:])
        state = {name: np.asarray(getattr(neurons, name + "_")[:]) for name in state_names}
        problem = check_finite(w, state, sim.weight_bound)
        runfile.append(t, w, state)
        bar.update_to(t)
        return problem

    outcome, now = drive(experiment, parts.network, record, runfile, bar)
    return finish(runfile, rule, outcome, now)
