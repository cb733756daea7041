"""Run an experiment on Brian2's ``cpp_standalone`` device, streaming the records.

Brian2's standalone device turns the network into a C++ program that runs on its own
and, by default, only hands its arrays back when it ends. Here the program streams
instead, so memory does not grow with the duration and a killed run keeps its records.
Rate and spiking networks are built by the same functions as on the runtime device
(:func:`~plasticity.sim.rate.build_rate_network`,
:func:`~plasticity.sim.spiking.build_spiking_network`) and give run files of the same
layout.

- a one-neuron ``recorder`` group runs at the very start of every time step
  (``when="start", order=-100``, before the inputs are drawn and the weights updated)
  and calls :data:`RECORD_CODE`, a user C++ function. On record steps (step ``k`` a
  multiple of ``every_steps``, and ``last_step``) it ``fwrite``s one record to a pipe
  the Python process gave it (file descriptor in ``$PLASTICITY_RECORD_FD``) and
  ``fflush``es it: ``t``, the weights (``S`` doubles), then for a rate network the
  rule's state (``n_post`` doubles per state variable), for a spiking network the
  cumulative spike counts of the pre- and postsynaptic neurons (int32, from
  SpikeMonitors; one array for a recurrent network) and, with ``record.spikes``, per
  population the spikes stored since the last record (an int64 count ``n``, ``n``
  times, ``n`` int32 indices; the monitor is cleared after each record, so its memory
  does not grow). So the record at time ``t`` is the state at the start of that step,
  exactly as on the runtime device. After the record at ``last_step`` the program
  ends itself (``_Exit(0)``: it writes no result arrays).
- Python launches the compiled program itself (not :meth:`device.run`, which blocks
  and changes the working directory), reads whole records from the pipe as they come,
  checks each (:func:`~plasticity.sim.session.check_finite`) and appends it to the
  :class:`~plasticity.io.RunFile` (which writes and flushes whole chunks), spiking
  rates as spike counts per record interval divided by its length (row 0 NaN), as on
  the runtime device. The pipe gives back-pressure: the program waits when Python is
  behind, and nothing grows on disk or in memory.
- Divergence (checked in Python) kills the program, the run ends ``diverged``;
  SIGINT/SIGTERM stops it, the run ends ``interrupted``. If the Python process is
  killed, the program gets SIGKILL too (``PR_SET_PDEATHSIG`` on Linux; elsewhere it
  dies of SIGPIPE at its next record).

One compiled program per model (no compilation per run): what changes between runs of
the same model is handed to the program when it starts, not compiled into it.

- the seed: the program seeds Brian2's random generators from ``$PLASTICITY_SEED``
  (code inserted before anything is drawn) instead of a seed written into ``main.cpp``;
- the duration: the network is compiled to run for :data:`MAX_DURATION`, and the
  recorder's ``every_steps`` and ``last_step`` are command-line values (Brian2's
  ``name.var=value`` arguments, applied just before the network runs);
- parameter values: the rule's numeric parameters and the neuron parameters of a
  spiking model are ``(shared, constant)`` variables of the groups whose code uses
  them (``shared_parameters``), not constants inlined in the code (only which of a
  spiking rule's time constants are equal is code: one name stands for all of them,
  so that the compiler computes their common decay once,
  :func:`~plasticity.sim.spiking.equal_time_constants`);
- initial values and other values set from Python: every single-value assignment
  Brian2 would write into ``main.cpp`` (:func:`_values_to_run_args`) becomes a
  command-line value; arrays (initial weights, potentials, synapse indices) are data
  files Brian2 loads at start, so their contents never enter the code.

Only what shapes the code (the model, the rule and its code-changing options such as
``bounds``, sizes, the topology generator, the record layout) is in the build folder's
key (:func:`model_key`). A random topology changes the number of synapses with the
seed, and so the size of Brian2's static arrays: then ``make`` recompiles the one file
that declares them.

Build folders: one per model and process slot, reused between runs
(``~/.cache/plasticity/standalone/<model hash>-<slot>``, or ``$PLASTICITY_CACHE``),
each held with an ``fcntl`` lock for the whole run, so two processes never share one.

Warm launch (rate networks): a built folder also keeps a launch record
(:data:`LAUNCH_RECORD`, written after a successful build): which of the program's
data files and command-line values receive which values of the run's
:class:`~plasticity.sim.rate.RatePlan`, the layout of a record, the command. A later
run of the same model then plans with NumPy (the same draws from the same seed), writes
the data files, and starts the program, without importing Brian2 or generating any
code; its run file is the one the full path writes. A missing or unreadable record, a
folder not marked built, a missing program, other versions, or a plan whose arrays
have other sizes (a random topology) take the full path, which builds and writes the
record again. Spiking networks always take the full path.
"""

import gc
import hashlib
import json
import os
import signal
import subprocess
import sys
import time as _time
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..rules import get_rule
from .brian import load_compiler_flag_checks, save_compiler_flag_checks
from .rate import build_rate_network, plan_rate_network
from .session import Progress, check_finite, finish, open_run_file, stop_on_signals

#: C++ of the recorder function; WRITES is filled in per network
RECORD_CODE = r"""
static FILE* _plasticity_out = NULL;
static double plasticity_record(const double t, const int32_t k, const int32_t every,
                                 const int32_t last)
{
    if (k % every != 0 && k != last)
        return 0.0;
    if (_plasticity_out == NULL) {
        const char* fd = getenv("PLASTICITY_RECORD_FD");
        _plasticity_out = fd ? fdopen(atoi(fd), "wb") : fopen("plasticity_records.bin", "wb");
        if (_plasticity_out == NULL) {
            fprintf(stderr, "plasticity: cannot open the record stream\n");
            exit(70);
        }
        setvbuf(_plasticity_out, NULL, _IOFBF, 1 << 20);  // few, large writes to the pipe
    }
    fwrite(&t, sizeof(double), 1, _plasticity_out);
WRITES
    if (fflush(_plasticity_out) != 0 || ferror(_plasticity_out))
        exit(71);  // reader gone
    if (k >= last)
        std::_Exit(0);  // the run's end: no result arrays to write
    return 0.0;
}
"""

#: C++ inserted at the start of ``main``: seed Brian2's random generators (one per
#: thread) from ``$PLASTICITY_SEED``, as ``brian2.seed(seed)`` would in the code
SEED_CODE = r"""
{
    const char* _plasticity_seed = getenv("PLASTICITY_SEED");
    if (_plasticity_seed != NULL)
        for (size_t _i = 0; _i < brian::_random_generators.size(); _i++)
            brian::_random_generators[_i].seed(strtoul(_plasticity_seed, NULL, 10) + _i);
}
"""

#: the duration the network is compiled for: the recorder ends the program at the
#: run's last step (``last_step``, a command-line value), so the duration is not code
MAX_DURATION = 1e8


def _cache_root():
    root = os.environ.get("PLASTICITY_CACHE")
    if root:
        return Path(root) / "standalone"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "plasticity" / "standalone"


def model_key(experiment, record=True):
    """Hash of what shapes the generated code: not the name, seed, duration, record
    interval, initial values, nor the values of the parameters passed to the program
    when it starts (the rule's numeric parameters, the neuron parameters of a spiking
    model)."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__
    from .spiking import FIXED_PARAMS, LIF_PARAMS, equal_time_constants

    rule = get_rule(experiment.rule.name)
    data = experiment.to_dict()
    for key in ("name", "seed", "description"):
        data.pop(key, None)
    # rate rules: every parameter is a number (build_rate_network, shared_parameters)
    run_time = (set(rule.numeric(experiment.rule.params)) if hasattr(rule, "numeric")
                else set(rule.parameters))
    data["rule"] = {k: v for k, v in data["rule"].items() if k not in run_time}
    data["simulation"] = {k: v for k, v in data["simulation"].items()
                          if k not in ("duration", "weight_bound", "device")}
    data["record"] = {k: v for k, v in data["record"].items() if k != "every" or not record}
    network = {k: v for k, v in data["network"].items() if k != "init"}
    if experiment.network.spec.activity == "spiking":
        network["params"] = {k: v for k, v in network.get("params", {}).items()
                             if k not in LIF_PARAMS + FIXED_PARAMS}
        # which of the rule's time constants are equal shapes the code, not their values
        data["equal_time_constants"] = equal_time_constants(rule, experiment.rule.params)
    data["network"] = network
    # the installed Brian2's version without importing it (a warm launch never does)
    try:
        brian2_version = version("brian2")
    except PackageNotFoundError:     # a source checkout on the path, not installed
        import brian2

        brian2_version = brian2.__version__
    data["_versions"] = [__version__, brian2_version, sys.version, bool(record)]
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class _BuildDir:
    """A build folder held with an exclusive lock (released by :meth:`release`)."""

    def __init__(self, experiment, build_dir=None, record=True):
        self.lock = None
        self.key = model_key(experiment, record)
        if build_dir is not None:
            self.path = Path(build_dir).resolve()
            self.path.mkdir(parents=True, exist_ok=True)
            return
        import fcntl

        root = _cache_root()
        root.mkdir(parents=True, exist_ok=True)
        key = self.key
        for slot in range(1000):
            path = root / f"{key}-{slot}"
            handle = open(root / f"{key}-{slot}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self.lock, self.path = handle, path
            path.mkdir(exist_ok=True)
            return
        raise RuntimeError(f"no free standalone build slot under {root}")

    def release(self):
        if self.lock is not None:
            self.lock.close()   # closing the file drops the flock
            self.lock = None


#: written into a build folder after its program was built completely; a folder without
#: it (a build killed half-way leaves object files that look up to date) is cleaned first
BUILT_MARKER = ".plasticity-built"
#: the launch record of a built folder (see the module's "Warm launch"): written after
#: the build, removed when a build starts
LAUNCH_RECORD = ".plasticity-launch.json"


def _build(device, folder):
    """Generate the code with Brian2, then compile it with ``make`` in a process group
    of its own: stopped as a whole (make and its compilers) when the run is stopped or
    fails, killed with the Python process (make gets SIGKILL when Python dies and
    starts no further compiler). The slot is marked built only after make succeeded."""
    import brian2 as b2

    marker = folder.path / BUILT_MARKER
    (folder.path / LAUNCH_RECORD).unlink(missing_ok=True)
    complete = marker.exists()
    if complete:
        marker.unlink()
    device.build(directory=str(folder.path), compile=False, run=False, with_output=False,
                 clean=False)
    make = b2.prefs.devices.cpp_standalone.make_cmd_unix
    args = " ".join(b2.prefs.devices.cpp_standalone.extra_make_args_unix)
    command = f"{make} {args}" if complete else f"{make} clean >/dev/null 2>&1; {make} {args}"
    log = folder.path / "make.log"
    with open(log, "wb") as output:
        proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=folder.path, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent)
    try:
        code = proc.wait()
    except BaseException:
        _stop_group(proc)
        raise
    if code != 0:
        detail = log.read_text(errors="replace").strip()[-1500:]
        raise RuntimeError(f"compiling the standalone program in {folder.path} failed (make exit "
                           f"code {code}): {detail}")
    marker.write_text("built\n")


def _stop_group(proc):
    """Stop a process and everything in its process group (make and its compilers)."""
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait)
            # make is gone; its compilers may take a moment more
            os.killpg(proc.pid, signal.SIGKILL)
        except (subprocess.TimeoutExpired, ProcessLookupError, PermissionError):
            continue
        break


def _die_with_parent():
    """preexec_fn: the program gets SIGKILL when the Python process dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _values_to_run_args(device):
    """Turn the single-value assignments queued for ``main.cpp`` into command-line
    values (``group.var=value``), so that changed values (parameters, initial values)
    leave the code unchanged. Removes them from Brian2's queue; an earlier single value
    of a variable later set from an array is dropped (the array wins, as in the code).
    Only variables the program can set from its command line are moved, and only
    finite numbers; assignments after the network run stay in the code."""
    names = _array_variables(device)
    args = {}
    kept = []
    running = False
    for entry in device.main_queue:
        func, payload = entry
        if func == "run_network":
            running = True
        var = names.get(payload[0]) if func in ("set_by_constant", "set_by_single_value",
                                                 "set_by_array") and not running else None
        settable = var is not None and not var.read_only and hasattr(var.owner, "name")
        if settable and func == "set_by_array":
            args.pop(var, None)
        elif settable and func == "set_by_constant":
            value = _number(payload[1])
            if value is not None:
                args.pop(var, None)
                args[var] = value
                continue
        elif settable and func == "set_by_single_value" and payload[1] == 0 and var.size == 1:
            value = _number(payload[2])
            if value is not None:
                args.pop(var, None)
                args[var] = value
                continue
        kept.append(entry)
    device.main_queue[:] = kept
    return [f"{var.owner.name}.{var.name}={value}" for var, value in args.items()]


def _array_variables(device):
    """``{array name: variable}`` of the arrays the device declares (static and dynamic):
    how the entries of Brian2's ``main_queue`` name the variables they set."""
    names = {name: var for var, name in device.arrays.items()}
    names.update({name: var for var, name in device.dynamic_arrays.items()})
    return names


def _number(value):
    """``value`` (a number, or the C++ text of one) as command-line text, or None."""
    if isinstance(value, (bool, np.bool_)) or value in ("true", "false"):
        return "1" if value in (True, "true") else "0"
    if isinstance(value, str):
        value = value.replace(" ", "")      # Brian2 renders negative numbers as "- 0.054"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(number):
        return None
    if float(number).is_integer() and isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(number)


def _prepare_device(experiment):
    """Select a fresh cpp_standalone device, seeded from ``$PLASTICITY_SEED``."""
    import brian2 as b2

    b2.set_device("cpp_standalone", build_on_run=False)
    device = b2.get_device()
    device.reinit()
    # objects of an earlier run still alive (reference cycles) would make Brian2
    # rename this run's code objects (``..._1``) and so recompile everything
    gc.collect()
    device.activate(build_on_run=False)
    b2.defaultclock.dt = experiment.simulation.dt * b2.second
    device.insert_code("main", SEED_CODE)
    return device


def _recorder(device, writes):
    """The one-neuron group whose ``run_regularly`` calls the C++ recorder with the
    C++ lines ``writes`` (after ``t``)."""
    import brian2 as b2

    code = RECORD_CODE.replace("WRITES", "\n".join(writes))

    def plasticity_record(t, k, every, last):  # pragma: no cover - C++ only
        raise NotImplementedError("the plasticity recorder runs on cpp_standalone only")

    func = b2.Function(plasticity_record, arg_units=[b2.second, 1, 1, 1], return_unit=1,
                       arg_types=["float", "integer", "integer", "integer"],
                       return_type="float", stateless=False)
    func.implementations.add_implementation(
        "cpp", {"support_code": code}, name="plasticity_record",
        compiler_kwds={"headers": ["<cstdio>", "<cstdlib>"]})
    recorder = b2.NeuronGroup(1, "k : integer\nsink : 1\nevery_steps : integer (constant)\n"
                                 "last_step : integer (constant)", name="recorder",
                              namespace={"plasticity_record": func})
    recorder.run_regularly("sink = plasticity_record(t, k, every_steps, last_step)\n"
                           "k += 1", when="start", order=-100, name="recorder_write")
    return recorder


def _write_doubles(device, var, count):
    name = device.get_array_name(var, access_data=False)
    if name.startswith("_dynamic"):
        # the size read at run time: a random topology's synapse count is no code
        return (f"    fwrite(&brian::{name}[0], sizeof(double), brian::{name}.size(), "
                f"_plasticity_out);")
    return f"    fwrite(brian::{name}, sizeof(double), {count}, _plasticity_out);"


def _write_counts(device, monitor):
    name = device.get_array_name(monitor.variables["count"])
    return f"    fwrite(brian::{name}, sizeof(int32_t), {len(monitor.source)}, _plasticity_out);"


def _write_spikes(device, monitor):
    """C++: the monitor's spikes since the last record (int64 n, n times, n int32
    indices), then the monitor cleared."""
    t = device.get_array_name(monitor.variables["t"], access_data=False)
    i = device.get_array_name(monitor.variables["i"], access_data=False)
    n = device.get_array_name(monitor.variables["N"])
    return (f"    {{ const int64_t _n = brian::{t}.size();\n"
            f"      fwrite(&_n, sizeof(int64_t), 1, _plasticity_out);\n"
            f"      if (_n > 0) {{ fwrite(&brian::{t}[0], sizeof(double), _n, _plasticity_out);\n"
            f"                   fwrite(&brian::{i}[0], sizeof(int32_t), _n, _plasticity_out); }}\n"
            f"      brian::{t}.clear(); brian::{i}.clear(); brian::{n}[0] = 0; }}")


class _Layout:
    """How to read one record of the stream: fixed blocks (name, dtype, count) after
    ``t``, then the spikes of ``populations`` (variable length)."""

    def __init__(self, blocks, populations=()):
        self.blocks = blocks
        self.populations = list(populations)
        self.fixed_bytes = 8 + sum(np.dtype(dtype).itemsize * count for _, dtype, count in blocks)

    def split(self, raw):
        """t and the fixed blocks of a record (views into ``raw``)."""
        out, offset = {}, 8
        for name, dtype, count in self.blocks:
            size = np.dtype(dtype).itemsize * count
            out[name] = np.frombuffer(raw, dtype, count, offset)
            offset += size
        return float(np.frombuffer(raw, np.float64, 1, 0)[0]), out


def run(experiment, options):
    """Run a rate or spiking experiment on cpp_standalone; return the run file's path.

    ``options.record = False`` (benchmarks only) runs the program without the recorder
    for the experiment's duration and writes no file; it returns ``None``.
    """
    rule = get_rule(experiment.rule.name)
    params = experiment.rule.params
    rng = np.random.default_rng(experiment.seed)
    record = options.record
    sim = experiment.simulation
    spiking = experiment.network.spec.activity == "spiking"
    n_steps, every_steps = experiment.steps
    if n_steps >= 2**31 - 1:
        raise ConfigError(f"simulation.duration: {n_steps:,} steps of simulation.dt; "
                          f"cpp_standalone counts at most {2**31 - 2:,}")
    if record and not spiking:
        launched = _warm_run(experiment, rule, options)
        if launched is not _NOT_WARM:
            return launched
    import brian2 as b2

    n_pre, n_post = experiment.network.n_pre, experiment.network.n_post
    folder = _BuildDir(experiment, options.build_dir, record)
    timings = {}
    try:
        device = _prepare_device(experiment)
        if spiking:
            from .spiking import build_spiking_network

            parts = build_spiking_network(experiment, rule, params, rng,
                                          record_spikes=experiment.record.spikes and record,
                                          count_with_monitors=True, shared_parameters=True)
        else:
            parts = build_rate_network(experiment, rule, params, rng, shared_parameters=True)
        n_syn = len(parts.topology.pre)
        run_args = []
        if record:
            weights = parts.synapses.variables["w"]
            writes = [_write_doubles(device, weights, n_syn)]
            if spiking:
                pre_monitor, post_monitor = parts.count_monitors
                recurrent = pre_monitor is post_monitor
                writes.append(_write_counts(device, pre_monitor))
                blocks = [("weights", np.float64, n_syn), ("pre", np.int32, n_pre)]
                if not recurrent:
                    writes.append(_write_counts(device, post_monitor))
                    blocks.append(("post", np.int32, n_post))
                populations = list(parts.populations.items())
                writes += [_write_spikes(device, monitor) for _, monitor in populations]
                layout = _Layout(blocks, [name for name, _ in populations])
            else:
                state_names = list(rule.state) if experiment.record.state else []
                writes += [_write_doubles(device, parts.neurons.variables[name], n_post)
                           for name in state_names]
                layout = _Layout([("weights", np.float64, n_syn)]
                                 + [(name, np.float64, n_post) for name in state_names])
            parts.network.add(_recorder(device, writes))
            run_args += [f"recorder.every_steps={every_steps}", f"recorder.last_step={n_steps}"]
            # the recorder ends the program after the record at last_step
            duration = MAX_DURATION
        else:
            duration = sim.duration
        parts.network.run(duration * b2.second, namespace={})
        run_args = _values_to_run_args(device) + run_args
        started = _time.time()
        load_compiler_flag_checks(_cache_root())
        _build(device, folder)
        save_compiler_flag_checks(_cache_root())
        timings["build"] = _time.time() - started
        command = _command(device, folder.path) + run_args
        env = dict(os.environ, **_program_environment(device),
                   PLASTICITY_SEED=str(experiment.seed))
        if record and not spiking:
            _save_launch_record(folder, device, parts.plan, run_args, layout,
                                _recorder_values(n_steps, every_steps))
        timings["warm_launch"] = False

        if not record:
            started = _time.time()
            subprocess.run(command, cwd=folder.path, env=env, check=True,
                           stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent)
            timings["run"] = _time.time() - started
            run.last_timings = timings
            return None

        if spiking:
            from .spiking import open_spiking_run_file

            runfile = open_spiking_run_file(experiment, rule, parts, options, "cpp_standalone")
            handle = _SpikingRecords(runfile, n_pre, n_post, sim.weight_bound)
        else:
            runfile = open_run_file(experiment, rule, parts, options, "cpp_standalone")
            handle = _RateRecords(runfile, sim.weight_bound)
        return _stream_to_file(experiment, rule, options, runfile, handle, command, folder.path,
                               env, layout, timings)
    finally:
        folder.release()
        try:
            b2.get_device().reinit()
        finally:
            b2.set_device("runtime")


def _stream_to_file(experiment, rule, options, runfile, handle, command, cwd, env, layout,
                    timings):
    """Run the program, its records into ``runfile`` through ``handle``; end the file
    with the run's outcome (:func:`~plasticity.sim.session.finish`)."""
    sim = experiment.simulation
    try:
        outcome = _stream(command, cwd, env, layout, handle,
                          Progress(sim.duration, options.progress, experiment.name),
                          sim, timings)
    except BaseException as error:
        runfile.close("failed", f"{type(error).__name__}: {error}")
        raise
    timings["total_run"] = timings.get("run", 0.0)
    runfile.set_attrs({"wall_time": timings.get("run", 0.0), "build_time": timings["build"]})
    run.last_timings = timings
    return finish(runfile, rule, outcome, outcome["time"])


#: :func:`_warm_run`'s answer where the full path must run
_NOT_WARM = object()


def _launch_versions():
    """What the program and the plan's draws depend on besides the model key."""
    from .. import __version__

    return {"plasticity": __version__, "python": sys.version, "numpy": np.__version__}


def _save_launch_record(folder, device, plan, run_args, layout, recorder_values):
    """Write the folder's launch record after a build (see the module's "Warm launch"),
    if every value the program receives is one of the plan's (checked against what
    Brian2 wrote for this run, value for value); otherwise write none, and later runs of
    this model take the full path."""
    import brian2 as b2

    values = {**plan.program_values(), **recorder_values}
    names = _array_variables(device)
    arrays = []
    for func, payload in device.main_queue:
        if func == "run_network":
            break
        if func not in ("set_by_array", "set_by_constant", "set_by_single_value"):
            continue
        var = names.get(payload[0])
        if var is None:
            return
        if func != "set_by_array":
            if not isinstance(var.owner, b2.Clock):   # dt: part of the model key
                return
            continue
        key = f"{var.owner.name}.{var.name}"
        data = device.static_arrays.get(payload[1])
        planned = _planned_array(values.get(key), data.dtype, data.size) if data is not None else None
        if planned is None or not np.array_equal(planned, data.reshape(-1)):
            return
        arrays.append([payload[1], key, data.dtype.str, int(data.size)])
    args = []
    for arg in run_args:
        key, text = arg.split("=", 1)
        planned = _planned_number(values.get(key))
        if planned is None or float(planned) != float(text):
            return
        args.append(key)
    record = {"model_key": folder.key, "versions": _launch_versions(), "arrays": arrays,
              "args": args, "run_cmd": _run_cmd(), "env": _program_environment(device),
              "blocks": [[name, np.dtype(dtype).str, int(count)]
                         for name, dtype, count in layout.blocks]}
    try:
        text = json.dumps(record)
    except (TypeError, ValueError):
        return
    path = folder.path / LAUNCH_RECORD
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)     # never half a record
    except OSError:
        temporary.unlink(missing_ok=True)   # no record: later runs take the full path


def _recorder_values(n_steps, every_steps):
    return {"recorder.every_steps": int(every_steps), "recorder.last_step": int(n_steps)}


def _planned_array(value, dtype, size):
    """``value`` as a flat array of ``dtype`` and ``size``, or None (another size, or
    values the dtype does not hold)."""
    if value is None:
        return None
    data = np.asarray(value).reshape(-1)
    if data.size != size:
        return None
    converted = data.astype(dtype)
    if not np.array_equal(converted, data):
        return None
    return converted


def _planned_number(value):
    """A single planned value as command-line text (as :func:`_number`), or None."""
    if value is None:
        return None
    data = np.asarray(value)
    if data.size != 1:
        return None
    return _number(data.reshape(-1)[0].item() if data.ndim else data.item())


def _read_launch_record(path, key):
    """The launch record of a build folder, or None where a warm launch must not be
    tried: the folder not marked built, no program, no record or an unreadable one,
    another model (a build folder given by the caller may have held one), other
    versions."""
    path = Path(path)
    if not (path / BUILT_MARKER).exists():
        return None
    try:
        record = json.loads((path / LAUNCH_RECORD).read_text())
        program = path / record["run_cmd"][0]
        if not (program.is_file() and os.access(program, os.X_OK)):
            return None
        if record["model_key"] != key or record["versions"] != _launch_versions():
            return None
        # well formed (a hand-edited or truncated record raises here)
        for static, planned, dtype, size in record["arrays"]:
            np.dtype(dtype), int(size), str(static), str(planned)
        for name, dtype, count in record["blocks"]:
            np.dtype(dtype), int(count), str(name)
        if not (isinstance(record["args"], list) and isinstance(record["env"], dict)):
            return None
        return record
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def warm_launch_ready(experiment):
    """Whether :func:`run` would most likely launch this experiment warm (a rate network
    whose build folder in the cache, first slot, has a launch record): the command line
    then does not prepare Brian2's import. A cheap look; :func:`run` decides for itself."""
    if experiment.network.spec.activity == "spiking":
        return False
    key = model_key(experiment, True)
    return _read_launch_record(_cache_root() / f"{key}-0", key) is not None


def _warm_run(experiment, rule, options):
    """Run a rate experiment by launching the program already built for its model (see
    the module's "Warm launch"); the run file's path, or :data:`_NOT_WARM` where the
    folder's program cannot take this run (then nothing was written)."""
    n_steps, every_steps = experiment.steps
    folder = _BuildDir(experiment, options.build_dir, True)
    try:
        record = _read_launch_record(folder.path, folder.key)
        if record is None:
            return _NOT_WARM
        plan = plan_rate_network(experiment, rule, experiment.rule.params,
                                 np.random.default_rng(experiment.seed))
        values = {**plan.program_values(), **_recorder_values(n_steps, every_steps)}
        arrays = []
        for static, key, dtype, size in record["arrays"]:
            data = _planned_array(values.get(key), np.dtype(dtype), int(size))
            if data is None:
                return _NOT_WARM     # e.g. a random topology with another synapse count
            arrays.append((static, data))
        run_args = []
        for key in record["args"]:
            text = _planned_number(values.get(key))
            if text is None:
                return _NOT_WARM
            run_args.append(f"{key}={text}")
        for static, data in arrays:
            data.tofile(folder.path / "static_arrays" / static)
        command = _program_command(record["run_cmd"], folder.path) + run_args
        env = dict(os.environ, **record["env"], PLASTICITY_SEED=str(experiment.seed))
        layout = _Layout([(name, np.dtype(dtype), int(count))
                          for name, dtype, count in record["blocks"]])
        timings = {"build": 0.0, "warm_launch": True}
        runfile = open_run_file(experiment, rule, plan, options, "cpp_standalone")
        handle = _RateRecords(runfile, experiment.simulation.weight_bound)
        return _stream_to_file(experiment, rule, options, runfile, handle, command, folder.path,
                               env, layout, timings)
    finally:
        folder.release()


class _RateRecords:
    """Appends the records of a rate network to its run file."""

    def __init__(self, runfile, bound):
        self.runfile, self.bound = runfile, bound

    def __call__(self, t, blocks, spikes):
        weights = blocks.pop("weights")
        problem = check_finite(weights, blocks, self.bound)
        self.runfile.append(t, weights, blocks)
        return problem


class _SpikingRecords:
    """Appends the records of a spiking network: rates from the spike counts of each
    record interval, the streamed spikes."""

    def __init__(self, runfile, n_pre, n_post, bound):
        from .spiking import IntervalRates

        self.runfile, self.bound = runfile, bound
        self.interval_rates = IntervalRates(n_pre, n_post)

    def __call__(self, t, blocks, spikes):
        weights = blocks["weights"]
        pre = blocks["pre"].astype(float)
        post = blocks["post"].astype(float) if "post" in blocks else pre
        rates = self.interval_rates(t, pre, post)
        for population, (times, indices) in spikes.items():
            self.runfile.append_spikes(population, times, indices)
        problem = check_finite(weights, {}, self.bound)
        self.runfile.append(t, weights, None, rates)
        return problem


run.last_timings = {}


def _command(device, directory):
    if os.name == "nt":  # pragma: no cover
        return [str(Path(directory) / "main.exe"), "--results_dir", device.results_dir]
    return _program_command(_run_cmd(), directory)


def _run_cmd():
    """Brian2's command that starts the built program, as a list."""
    import brian2 as b2

    run_cmd = b2.prefs.devices.cpp_standalone.run_cmd_unix
    return [run_cmd] if isinstance(run_cmd, str) else list(run_cmd)


def _program_command(run_cmd, directory):
    """``run_cmd`` with the program's results folder in ``directory`` (created)."""
    results = os.path.join(str(directory), "results", "")
    os.makedirs(results, exist_ok=True)
    return run_cmd + ["--results_dir", results]


def _program_environment(device):
    """The environment variables Brian2 sets for the program (besides the process's)."""
    import brian2 as b2

    return {**b2.prefs["devices.cpp_standalone.run_environment_variables"],
            **device.run_environment_variables}


def _peak_memory(pid):
    """Peak resident memory (MiB) of a running process, from /proc (Linux), or None."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


#: the largest pipe buffer asked for (bytes)
PIPE_BYTES_MAX = 64 << 20


def _widen_pipe(fd, record_bytes):
    """Give the pipe room for two records (at most :data:`PIPE_BYTES_MAX`, at least
    1 MiB; Linux): then the program hands a whole record over and simulates on while
    Python reads it, instead of waiting for Python to be scheduled once per pipe-full
    (on a loaded machine that waiting made a 10⁶-synapse run twice as slow). Above
    ``/proc/sys/fs/pipe-max-size`` only a privileged process gets its size; smaller
    sizes are tried in turn."""
    try:
        import fcntl

        size = min(PIPE_BYTES_MAX, max(1 << 20, 2 * record_bytes))
        while size >= 1 << 20:
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
                return size
            except OSError:
                size //= 2
    except (ImportError, AttributeError):
        pass
    return None


def _read_exact(stream, view):
    """Fill ``view`` from ``stream``; False if the stream ended first (a part of a
    record left at the end is dropped)."""
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:])
        if not got:
            return False
        filled += got
    return True


def _stream(command, cwd, env, layout, handle, bar, sim, timings):
    """Launch the program; hand each record to ``handle(t, blocks, spikes)`` (which
    appends it to the run file and returns None or the reason the run diverged)."""
    outcome = {"status": None, "message": None, "time": 0.0}
    read_fd, write_fd = os.pipe()
    _widen_pipe(read_fd, layout.fixed_bytes)
    env = dict(env, PLASTICITY_RECORD_FD=str(write_fd))
    stderr_path = Path(cwd) / "results" / "stderr.txt"
    started = _time.time()
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(command, cwd=cwd, env=env, pass_fds=(write_fd,),
                                stdout=subprocess.DEVNULL, stderr=stderr,
                                preexec_fn=_die_with_parent)
    os.close(write_fd)

    def on_signal(signum):
        if outcome["status"] is None:
            outcome.update(status="interrupted", message=f"stopped by {signal.Signals(signum).name}")
        if proc.poll() is None:
            proc.terminate()

    raw = bytearray(layout.fixed_bytes)
    view = memoryview(raw)
    count = bytearray(8)
    sampled = _time.monotonic()
    try:
        with stop_on_signals(on_signal), os.fdopen(read_fd, "rb", buffering=1 << 16) as stream:
            while _read_exact(stream, view):
                spikes = {}
                complete = True
                for population in layout.populations:
                    if not _read_exact(stream, memoryview(count)):
                        complete = False
                        break
                    n = int(np.frombuffer(count, np.int64)[0])
                    data = bytearray(12 * n)
                    if not _read_exact(stream, memoryview(data)):
                        complete = False
                        break
                    spikes[population] = (np.frombuffer(data, np.float64, n, 0),
                                          np.frombuffer(data, np.int32, n, 8 * n))
                if not complete:
                    break
                if outcome["status"] is not None:
                    continue  # stopping: drain the pipe, keep nothing more
                t, blocks = layout.split(raw)
                problem = handle(t, blocks, spikes)
                outcome["time"] = t
                bar.update_to(t)
                now = _time.monotonic()
                if now - sampled > 0.25 or t >= sim.duration - 0.5 * sim.dt:
                    # the program's peak memory, for the benchmark
                    sampled, peak = now, _peak_memory(proc.pid)
                    if peak is not None:
                        timings["program_maxrss_mib"] = peak
                if problem:
                    outcome.update(status="diverged", message=problem)
                    proc.kill()
        returncode = proc.wait()
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    finally:
        bar.close()
    timings["run"] = _time.time() - started
    if outcome["status"] is None and returncode != 0:
        detail = stderr_path.read_text(errors="replace").strip()[-2000:]
        raise RuntimeError(f"the standalone program {command[0]} in {cwd} failed with exit "
                           f"code {returncode}" + (f": {detail}" if detail else ""))
    return outcome
