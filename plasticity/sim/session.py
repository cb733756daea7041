"""What every run path shares: where the file goes, progress, signals, the divergence
guard, the recorder loop of a Brian2 network and the ending of a run.

Each run path (:mod:`.rate`, :mod:`.spiking`, :mod:`.standalone`, :mod:`.dynamics`)
is a function ``run(experiment, options)`` taking :class:`RunOptions`; the dispatcher
:func:`plasticity.sim.run` picks one.
"""

import signal
import sys
import time as _time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Diverged, Interrupted, WriteFailed
from ..io import RunFile, new_run_path
from ..io.codecs import write_input_stats


@dataclass(frozen=True)
class RunOptions:
    """How to run: the run file (``path``, else a fresh file in ``out_dir``, default
    ``results/<name>/``), a progress bar on stderr, the cpp_standalone build folder
    (default: one per process slot in the user cache), and ``record`` (False only for
    benchmarks: run without the recorder, write no file)."""

    out_dir: str | Path | None = None
    path: str | Path | None = None
    progress: bool = True
    build_dir: str | Path | None = None
    record: bool = True

#: ``auto`` uses cpp_standalone when the run's work, steps × (synapses +
#: STEP_OVERHEAD_SYNAPSES), is at least this; below it the runtime device's cached
#: Cython code starts faster. The runtime device pays a fixed Python cost per code
#: object and step that cpp_standalone does not, while cpp_standalone pays a build
#: (seconds) per new model; benchmarks/bench_run.py measures both, and this threshold
#: sits between the warm and the cold break-even points it found.
STANDALONE_MIN_WORK = 1e8
#: the runtime device's fixed cost per step, in synapse-steps of standalone savings
#: (benchmarks/bench_run.py)
STEP_OVERHEAD_SYNAPSES = 900


#: spiking networks: ``auto`` uses cpp_standalone when steps × (synapses +
#: SPIKING_STEP_OVERHEAD_SYNAPSES) is at least SPIKING_STANDALONE_MIN_WORK. The runtime
#: device pays a fixed Python cost per step for each of a spiking network's dozen
#: code objects; benchmarks/bench_stdp.py measures both devices.
SPIKING_STANDALONE_MIN_WORK = 1e8
SPIKING_STEP_OVERHEAD_SYNAPSES = 5000


def choose_device(experiment, n_synapses=None):
    """The Brian2 device a run uses (``auto``: by the amount of work). ``n_synapses``
    defaults to the estimate's bound (:mod:`plasticity.sim.estimate`)."""
    device = experiment.simulation.device
    if device != "auto":
        return device
    if n_synapses is None:
        from .estimate import estimate

        n_synapses = estimate(experiment).synapses
    if experiment.network.spec.activity == "spiking":
        work = experiment.simulation.steps * (n_synapses + SPIKING_STEP_OVERHEAD_SYNAPSES)
        return "cpp_standalone" if work >= SPIKING_STANDALONE_MIN_WORK else "runtime"
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
def stop_on_signals(on_signal):
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


class Progress:
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


def close_open_run_files(message):
    """Close the run files this process left open as ``interrupted`` (a signal that
    came between creating a file and running)."""
    import sys as _sys

    writer = _sys.modules.get("plasticity.io.writer")
    if writer is not None:
        writer.close_open_files("interrupted", message)


def open_run_file(experiment, rule, parts, options, device, *, inputs=None, extra_sizes=None,
                  attrs=None):
    """Create the run file of a Brian2 experiment and write its metadata: the config
    and model spec, the synapses, and ``/inputs`` (``inputs(group)``, default the
    input statistics ``parts.stats``); ``extra_sizes`` and ``attrs`` as
    :class:`~plasticity.io.RunFile` takes them."""
    path = run_path(experiment, options.out_dir, options.path)
    state_sizes = {name: experiment.network.n_post for name in rule.state} if experiment.record.state else {}
    runfile = RunFile(path, len(parts.topology.pre), state_sizes, extra_sizes=extra_sizes)
    if inputs is None:
        def inputs(group):
            write_input_stats(group, parts.stats)
    runfile.write_metadata(config_toml=experiment.to_toml(), rule=rule.name,
                           model=experiment.network.model, seed=experiment.seed,
                           model_toml=experiment.network.spec.to_toml(),
                           pre=parts.topology.pre, post=parts.topology.post, inputs=inputs,
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
        try:
            problem = record(now)
        except WriteFailed as error:
            # the disk is full (or gone): stop at the first failed write
            outcome.update(status="failed", time=now, message=str(error))
            network.stop()
            return
        if problem:
            outcome.update(status="diverged", time=now, message=problem)
            network.stop()

    @b2.network_operation(dt=experiment.record.every * b2.second, when="start", order=-100,
                          name="recorder")
    def recorder(t):
        # runs before the step's updates: the record at time t is the state at t
        if outcome["status"] != "failed":
            check(float(t / b2.second))

    def on_signal(signum):
        outcome.update(status="interrupted", message=f"stopped by {signal.Signals(signum).name}")
        network.stop()

    network.add(recorder)
    started = _time.time()
    try:
        with stop_on_signals(on_signal):
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
    runfile.set_attrs({"wall_time": _time.time() - started})
    return outcome, float(network.t / b2.second)


def finish(runfile, rule, outcome, now):
    """Close ``runfile`` with the outcome's status; raise :class:`Diverged` or
    :class:`Interrupted` (the file kept) when the run did not complete."""
    status = outcome["status"] or "complete"
    runfile.close(status, outcome["message"])   # WriteFailed if the last write failed
    if status == "failed":
        raise WriteFailed(runfile.failure_message(), path=runfile.path)
    if status == "diverged":
        raise Diverged(f"run diverged at t = {outcome['time']:g} s under rule "
                       f"{rule.name!r}: {outcome['message']} (log kept: {runfile.path})",
                       time=outcome["time"], path=runfile.path)
    if status == "interrupted":
        raise Interrupted(f"run interrupted at t = {now:g} s ({outcome['message']}); "
                          f"records so far kept in {runfile.path}", time=now, path=runfile.path)
    return runfile.path
