"""Writing the HDF5 run file while the run goes on (the layout: README, "The run file").

:class:`RunFile` creates the file exclusively (two runs never share one), writes the
metadata first, then appends records in whole chunks: a buffer of ``chunk`` records
is kept in memory, written as one compressed HDF5 chunk and flushed, so memory does
not grow with the duration and a run killed at any moment leaves a file holding every
flushed record. The ``status`` attribute is ``running`` until :meth:`RunFile.close`
sets the final one (``complete``, ``interrupted``, ``diverged`` or ``failed``).

The default HDF5 file format (superblock v0) is used on purpose: newer superblocks
mark a file as "open for writing" and refuse to open it after a crash.
"""

import datetime
import os
import platform
import queue
import socket
import threading
from time import monotonic
from pathlib import Path

import h5py
import numpy as np

FORMAT = "plasticity-run"
FORMAT_VERSION = 1
STATUSES = ("running", "complete", "diverged", "interrupted", "failed")

#: target size of one chunk of /weights, bytes
CHUNK_BYTES = 1 << 20
#: at most this many seconds (wall clock) between flushes, so a killed run loses at
#: most this much of its log even when a chunk takes longer than that to fill
FLUSH_SECONDS = 2.0


def versions():
    """Versions of the libraries a run depends on."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for package in ("plasticity", "brian2", "numpy", "scipy", "h5py", "networkx"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return out


def new_run_path(directory, seed):
    """A fresh ``<directory>/<run-id>.h5`` path: time stamp, seed, host and pid, so
    runs started at once (even on several machines sharing a disk) never collide; the
    file is created exclusively anyway."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    host = socket.gethostname().split(".")[0][:16] or "host"
    return Path(directory) / f"{stamp}-s{seed}-{host}-{os.getpid()}.h5"


class _Writer:
    """One background thread that owns the HDF5 writes while a run goes on.

    Writing a chunk (compression, HDF5 I/O) releases the GIL, so it overlaps with the
    simulation instead of adding to it. At most one job waits in the queue, so memory
    stays bounded: a simulation faster than the disk waits for it.
    """

    def __init__(self):
        self.jobs = queue.Queue(maxsize=1)
        self.error = None
        self.thread = threading.Thread(target=self._loop, name="plasticity-writer", daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                if self.error is None:
                    job()
            except BaseException as error:  # re-raised in the simulating thread
                self.error = error
            finally:
                self.jobs.task_done()

    def submit(self, job):
        self.check()
        self.jobs.put(job)

    def wait(self):
        """Block until every submitted job is written; raise a writer error."""
        self.jobs.join()
        self.check()

    def check(self):
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def stop(self):
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join()


class RunFile:
    """A run file being written.

    ``RunFile(path, n_synapses, state_sizes, chunk=None)`` creates the file (error if it
    exists). Use :meth:`write_metadata` once, :meth:`append` for each record, then
    :meth:`close` with the final status.
    """

    def __init__(self, path, n_synapses, state_sizes=None, chunk=None, extra_sizes=None):
        # extra_sizes: {dataset path: width} of other per-record data (e.g. the firing
        # rates "rates/pre" of spiking runs), appended with ``append(..., extra=)``
        self.extra_sizes = dict(extra_sizes or {})
        self._spikes = {}
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.n_synapses = int(n_synapses)
        self.state_sizes = dict(state_sizes or {})
        row_bytes = 8 * max(1, self.n_synapses + sum(self.state_sizes.values()))
        self.chunk = int(chunk or max(1, min(4096, CHUNK_BYTES // row_bytes)))
        self.file = h5py.File(self.path, "x")
        self.file.attrs["format"] = FORMAT
        self.file.attrs["format_version"] = FORMAT_VERSION
        self.file.attrs["status"] = "running"
        self.file.attrs["created"] = datetime.datetime.now().astimezone().isoformat()
        self.records = 0
        self._time = np.empty(self.chunk)
        self._weights = np.empty((self.chunk, self.n_synapses))
        self._state = {name: np.empty((self.chunk, size)) for name, size in self.state_sizes.items()}
        self._buffered = 0
        self._last_flush = monotonic()
        # lzf + shuffle: ~2x faster than gzip level 1 at about the same ratio on float64
        # weights; built into h5py (other HDF5 readers need the
        # lzf filter plugin)
        compression = dict(compression="lzf", shuffle=True)
        f = self.file
        f.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8",
                         chunks=(max(self.chunk, 64),))
        f["time"].attrs["unit"] = "s"
        f.create_dataset("weights", shape=(0, self.n_synapses), maxshape=(None, self.n_synapses),
                         dtype="f8", chunks=(self.chunk, max(1, self.n_synapses)), **compression)
        for name, size in self.state_sizes.items():
            f.create_dataset(f"state/{name}", shape=(0, size), maxshape=(None, size), dtype="f8",
                             chunks=(self.chunk, max(1, size)), **compression)
        self._extra = {name: np.empty((self.chunk, size)) for name, size in self.extra_sizes.items()}
        for name, size in self.extra_sizes.items():
            f.create_dataset(name, shape=(0, size), maxshape=(None, size), dtype="f8",
                             chunks=(self.chunk, max(1, size)), **compression)
        f.flush()
        self._writer = _Writer()

    # -- metadata ------------------------------------------------------------------
    def write_metadata(self, *, config_toml, rule, model, seed, pre, post, model_toml=None,
                       inputs=None, attrs=None):
        """Config (and the model spec), versions, seed, synapse indices and the inputs:
        ``inputs(group)`` writes ``/inputs`` (a codec of :mod:`plasticity.io.codecs`)."""
        f = self.file
        f.attrs["rule"] = rule
        f.attrs["model"] = model
        f.attrs["seed"] = int(seed)
        found = versions()
        for key, value in found.items():
            f.attrs[f"version_{key}"] = value
        f.attrs["versions"] = ", ".join(f"{k} {v}" for k, v in found.items())
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        f["config"] = config_toml
        if model_toml is not None:
            f["model_spec"] = model_toml
        f["synapses/pre"] = np.asarray(pre, dtype="i8")
        f["synapses/post"] = np.asarray(post, dtype="i8")
        if inputs is not None:
            inputs(f.create_group("inputs"))
        f.flush()

    def set_attrs(self, attrs, path="/"):
        """Attributes of the root (or of the dataset or group at ``path``)."""
        node = self.file[path]
        for key, value in attrs.items():
            node.attrs[key] = value

    # -- records -------------------------------------------------------------------
    def append(self, time, weights, state=None, extra=None):
        """Buffer one record; a full buffer is written as one chunk and flushed, and so
        is a partial one after ``FLUSH_SECONDS`` of wall time."""
        k = self._buffered
        self._time[k] = time
        self._weights[k] = weights
        for name in self.state_sizes:
            self._state[name][k] = state[name]
        for name in self.extra_sizes:
            self._extra[name][k] = extra[name]
        self._buffered += 1
        if self._buffered == self.chunk or monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self):
        """Hand the buffered records (and spikes) to the writer thread, which writes
        them and flushes the file to disk; :meth:`wait` blocks until it has."""
        k = self._buffered
        start = self.records
        rows = {"weights": self._weights[:k].copy()}
        rows.update({f"state/{name}": self._state[name][:k].copy() for name in self.state_sizes})
        rows.update({name: self._extra[name][:k].copy() for name in self.extra_sizes})
        times = self._time[:k].copy()
        spikes = {population: (list(ts), list(idx)) for population, (ts, idx) in self._spikes.items()}
        for ts, idx in self._spikes.values():
            ts.clear()
            idx.clear()
        self.records += k
        self._buffered = 0
        self._last_flush = monotonic()
        self._writer.submit(lambda: self._write(start, times, rows, spikes))

    def wait(self):
        """Block until everything flushed so far is on disk."""
        self._writer.wait()

    def _write(self, start, times, rows, spikes):
        """(writer thread) Append ``rows`` at record ``start``, then the spikes, flush."""
        f = self.file
        k = times.shape[0]
        if k:
            # data first, time (the record count readers trust) last
            for name, values in rows.items():
                f[name].resize(start + k, axis=0)
                f[name][start:start + k] = values
            f["time"].resize(start + k, axis=0)
            f["time"][start:start + k] = times
        if spikes:
            self._write_spikes(spikes)
        f.flush()

    # -- spike times (spiking runs) ---------------------------------------------------
    def append_spikes(self, population, t, i):
        """Buffer spike times ``t`` (s) and neuron indices ``i`` of ``population``;
        written to ``/spikes/<population>/{t, i}`` with the next chunk of records."""
        buffer = self._spikes.setdefault(population, ([], []))
        buffer[0].append(np.asarray(t, "f8"))
        buffer[1].append(np.asarray(i, "i4"))

    def _write_spikes(self, spikes):
        f = self.file
        for population, (ts, idx) in spikes.items():
            if f"spikes/{population}/t" not in f:
                for name, dtype in (("t", "f8"), ("i", "i4")):
                    f.create_dataset(f"spikes/{population}/{name}", shape=(0,), maxshape=(None,),
                                     dtype=dtype, chunks=(1 << 16,), compression="gzip",
                                     compression_opts=1, shuffle=True)
                f[f"spikes/{population}/t"].attrs["unit"] = "s"
            if not ts:
                continue
            t, i = np.concatenate(ts), np.concatenate(idx)
            n0 = f[f"spikes/{population}/t"].shape[0]
            for name, data in (("i", i), ("t", t)):
                f[f"spikes/{population}/{name}"].resize(n0 + data.size, axis=0)
                f[f"spikes/{population}/{name}"][n0:] = data

    def close(self, status, message=None):
        """Flush, set the final ``status`` (and a ``message``), close."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if self.file is None:
            return
        try:
            self.flush()
            self._writer.wait()
            self.file.attrs["status"] = status
            self.file.attrs["records"] = self.records
            self.file.attrs["finished"] = datetime.datetime.now().astimezone().isoformat()
            if message:
                self.file.attrs["message"] = message
        finally:
            self._writer.stop()
            self.file.close()
            self.file = None
