"""Run an experiment on Brian2's ``cpp_standalone`` device, streaming the records.

Brian2's standalone device turns the network into a C++ program that runs on its own
and, by default, only hands its arrays back when it ends. Here the program streams
instead, so memory does not grow with the duration and a killed run keeps its records:

- a one-neuron ``recorder`` group runs at the very start of every time step
  (``when="start", order=-100``, before the inputs are drawn and the weights updated)
  and calls :data:`RECORD_CODE`, a user C++ function. On record steps (step ``k`` a
  multiple of ``record.every / dt``, and the last step) it ``fwrite``s one record,
  ``[t, w (S doubles), state (n_post doubles per state variable)]``, to a pipe the
  Python process gave it (file descriptor in ``$PLASTICITY_RECORD_FD``) and
  ``fflush``es it. So the record at time ``t`` is the state at the start of that
  step, exactly as on the runtime device. The network runs for ``duration + dt`` so
  the record at ``t = duration`` comes from the same code; the updates of that extra
  step are never seen.
- Python launches the compiled program itself (not :meth:`device.run`, which blocks
  and changes the working directory), reads whole records from the pipe as they come,
  checks each (:func:`~plasticity.sim.session.check_finite`) and appends it to the
  :class:`~plasticity.io.RunFile` (which writes and flushes whole chunks). The
  pipe gives back-pressure: the program waits when Python is behind, and nothing
  grows on disk or in memory.
- Divergence (checked in Python) kills the program, the run ends ``diverged``;
  SIGINT/SIGTERM stops it, the run ends ``interrupted``. If the Python process is
  killed, the program gets SIGKILL too (``PR_SET_PDEATHSIG`` on Linux; elsewhere it
  dies of SIGPIPE at its next record).

Build folders: one per model and process slot, reused between runs
(``~/.cache/plasticity/standalone/<model hash>-<slot>``, or ``$PLASTICITY_CACHE``),
each held with an ``fcntl`` lock for the whole run, so two processes never share one
while a warm build (``make`` only recompiles what changed: usually ``main.cpp``, which
holds the seed and the duration) takes a few seconds.
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

from ..rules import get_rule
from .brian import load_compiler_flag_checks, save_compiler_flag_checks
from .rate import build_rate_network
from .session import Progress, check_finite, finish, open_run_file, stop_on_signals

#: C++ of the recorder function; WEIGHTS and STATE_WRITES are filled in per network
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
    }
    fwrite(&t, sizeof(double), 1, _plasticity_out);
    fwrite(&brian::WEIGHTS[0], sizeof(double), brian::WEIGHTS.size(), _plasticity_out);
STATE_WRITES
    if (fflush(_plasticity_out) != 0 || ferror(_plasticity_out))
        exit(71);  // reader gone
    return 0.0;
}
"""


def _cache_root():
    root = os.environ.get("PLASTICITY_CACHE")
    if root:
        return Path(root) / "standalone"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "plasticity" / "standalone"


def model_key(experiment, record=True):
    """Hash of what shapes the generated code (not seed, name, duration or init)."""
    import brian2

    from .. import __version__

    data = experiment.to_dict()
    for key in ("name", "seed", "description"):
        data.pop(key, None)
    data["simulation"] = {k: v for k, v in data["simulation"].items() if k != "duration"}
    data["network"] = {k: v for k, v in data["network"].items() if k != "init"}
    data["_versions"] = [__version__, brian2.__version__, sys.version, bool(record)]
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class _BuildDir:
    """A build folder held with an exclusive lock (released by :meth:`release`)."""

    def __init__(self, experiment, build_dir=None, record=True):
        self.lock = None
        if build_dir is not None:
            self.path = Path(build_dir).resolve()
            self.path.mkdir(parents=True, exist_ok=True)
            return
        import fcntl

        root = _cache_root()
        root.mkdir(parents=True, exist_ok=True)
        key = model_key(experiment, record)
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


def _build(device, folder):
    """Generate the code with Brian2, then compile it with ``make`` in a process group
    of its own: stopped as a whole (make and its compilers) when the run is stopped or
    fails, killed with the Python process (make gets SIGKILL when Python dies and
    starts no further compiler). The slot is marked built only after make succeeded."""
    import brian2 as b2

    marker = folder.path / BUILT_MARKER
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


def run(experiment, options):
    """Run a rate experiment on cpp_standalone; return the run file's path.

    ``options.record = False`` (benchmarks only) runs the program without the recorder
    and writes no file; it returns ``None``.
    """
    import brian2 as b2

    rule = get_rule(experiment.rule.name)
    params = experiment.rule.params
    rng = np.random.default_rng(experiment.seed)
    record = options.record
    sim = experiment.simulation
    n_steps, every_steps = experiment.steps
    folder = _BuildDir(experiment, options.build_dir, record)
    timings = {}
    try:
        b2.set_device("cpp_standalone", build_on_run=False)
        device = b2.get_device()
        device.reinit()
        # objects of an earlier run still alive (reference cycles) would make Brian2
        # rename this run's code objects (``..._1``) and so recompile everything
        gc.collect()
        device.activate(build_on_run=False)
        b2.defaultclock.dt = sim.dt * b2.second
        b2.seed(experiment.seed)
        parts = build_rate_network(experiment, rule, params, rng)
        state_names = list(rule.state) if experiment.record.state else []
        n_post = experiment.network.n_post
        n_syn = len(parts.topology.pre)

        if record:
            weights_name = device.get_array_name(parts.synapses.variables["w"], access_data=False)
            state_lines = "\n".join(
                f"    fwrite(brian::{device.get_array_name(parts.neurons.variables[name])}, "
                f"sizeof(double), {n_post}, _plasticity_out);" for name in state_names)
            code = RECORD_CODE.replace("WEIGHTS", weights_name).replace("STATE_WRITES", state_lines)

            def plasticity_record(t, k, every, last):  # pragma: no cover - C++ only
                raise NotImplementedError("the plasticity recorder runs on cpp_standalone only")

            func = b2.Function(plasticity_record, arg_units=[b2.second, 1, 1, 1], return_unit=1,
                               arg_types=["float", "integer", "integer", "integer"],
                               return_type="float", stateless=False)
            func.implementations.add_implementation(
                "cpp", {"support_code": code}, name="plasticity_record",
                compiler_kwds={"headers": ["<cstdio>", "<cstdlib>"]})
            recorder = b2.NeuronGroup(1, "k : integer\nsink : 1", name="recorder",
                                      namespace={"plasticity_record": func,
                                                 "every_steps": every_steps,
                                                 "last_step": n_steps})
            recorder.run_regularly("sink = plasticity_record(t, k, every_steps, last_step)\n"
                                   "k += 1", when="start", order=-100, name="recorder_write")
            parts.network.add(recorder)
        # one step more than the duration: its start writes the record at t = duration
        parts.network.run((n_steps + 1) * sim.dt * b2.second if record else sim.duration * b2.second,
                          namespace={})
        started = _time.time()
        load_compiler_flag_checks(_cache_root())
        _build(device, folder)
        save_compiler_flag_checks(_cache_root())
        timings["build"] = _time.time() - started
        command = _command(device, folder.path)
        env = _environment(device)

        if not record:
            started = _time.time()
            subprocess.run(command, cwd=folder.path, env=env, check=True,
                           stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent)
            timings["run"] = _time.time() - started
            run.last_timings = timings
            return None

        runfile = open_run_file(experiment, rule, parts, options, "cpp_standalone")
        try:
            outcome = _stream(command, folder.path, env, runfile, experiment, state_names,
                              n_syn, n_post, Progress(sim.duration, options.progress, experiment.name),
                              timings)
        except BaseException as error:
            runfile.close("failed", f"{type(error).__name__}: {error}")
            raise
        timings["total_run"] = timings.get("run", 0.0)
        runfile.set_attrs({"wall_time": timings.get("run", 0.0), "build_time": timings["build"]})
        run.last_timings = timings
        return finish(runfile, rule, outcome, outcome["time"])
    finally:
        folder.release()
        try:
            b2.get_device().reinit()
        finally:
            b2.set_device("runtime")


run.last_timings = {}


def _command(device, directory):
    import brian2 as b2

    if os.name == "nt":  # pragma: no cover
        return [str(Path(directory) / "main.exe"), "--results_dir", device.results_dir]
    run_cmd = b2.prefs.devices.cpp_standalone.run_cmd_unix
    run_cmd = [run_cmd] if isinstance(run_cmd, str) else list(run_cmd)
    results = os.path.join(str(directory), "results", "")
    os.makedirs(results, exist_ok=True)
    return run_cmd + ["--results_dir", results]


def _environment(device):
    import brian2 as b2

    env = dict(os.environ)
    env.update(b2.prefs["devices.cpp_standalone.run_environment_variables"])
    env.update(device.run_environment_variables)
    return env


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


def _stream(command, cwd, env, runfile, experiment, state_names, n_syn, n_post, bar, timings):
    """Launch the program, append its records to ``runfile`` as they come."""
    sim = experiment.simulation
    record_doubles = 1 + n_syn + n_post * len(state_names)
    record_bytes = 8 * record_doubles
    outcome = {"status": None, "message": None, "time": 0.0}
    read_fd, write_fd = os.pipe()
    try:
        import fcntl

        fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, 1 << 20)  # room for a few records (Linux)
    except Exception:
        pass
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

    buffer = np.empty(record_doubles)
    view = memoryview(buffer).cast("B")
    # views into the buffer: each record read overwrites what they show
    weights = buffer[1:1 + n_syn]
    state = {name: buffer[1 + n_syn + j * n_post:1 + n_syn + (j + 1) * n_post]
             for j, name in enumerate(state_names)}
    filled = 0
    sampled = _time.monotonic()
    try:
        with stop_on_signals(on_signal), os.fdopen(read_fd, "rb", buffering=0) as stream:
            while True:
                got = stream.readinto(view[filled:])
                if not got:
                    break
                filled += got
                if filled < record_bytes:
                    continue
                filled = 0
                if outcome["status"] is not None:
                    continue  # stopping: drain the pipe, keep nothing more
                t = float(buffer[0])
                problem = check_finite(weights, state, sim.weight_bound)
                runfile.append(t, weights, state)
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

