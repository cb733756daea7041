"""The HDF5 run file (layout: DESIGN.md, "HDF5 run file"), written while the run goes on.

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
import socket
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
        # weights (benchmarks/RESULTS.md); built into h5py (other HDF5 readers need the
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

    # -- metadata ------------------------------------------------------------------
    def write_metadata(self, *, config_toml, rule, model, seed, pre, post, stats=None,
                       attrs=None):
        """Config, versions, seed, synapse indices and input statistics."""
        f = self.file
        f.attrs["rule"] = rule
        f.attrs["model"] = model
        f.attrs["seed"] = int(seed)
        for key, value in versions().items():
            f.attrs[f"version_{key}"] = value
        f.attrs["versions"] = ", ".join(f"{k} {v}" for k, v in versions().items())
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        f["config"] = config_toml
        f["synapses/pre"] = np.asarray(pre, dtype="i8")
        f["synapses/post"] = np.asarray(post, dtype="i8")
        if stats is not None:
            stats.to_hdf5(f.create_group("inputs"))
        f.flush()

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

    def append_block(self, times, weights, state=None):
        """Append many records at once (``weights`` shape (R, S))."""
        for r, t in enumerate(times):
            self.append(t, weights[r], {name: state[name][r] for name in self.state_sizes})

    def flush(self):
        """Write the buffered records and flush the file to disk."""
        k = self._buffered
        if k:
            f = self.file
            start = self.records
            # data first, time (the record count readers trust) last
            f["weights"].resize(start + k, axis=0)
            f["weights"][start:start + k] = self._weights[:k]
            for name in self.state_sizes:
                f[f"state/{name}"].resize(start + k, axis=0)
                f[f"state/{name}"][start:start + k] = self._state[name][:k]
            for name in self.extra_sizes:
                f[name].resize(start + k, axis=0)
                f[name][start:start + k] = self._extra[name][:k]
            f["time"].resize(start + k, axis=0)
            f["time"][start:start + k] = self._time[:k]
            self.records += k
            self._buffered = 0
        if self._spikes:
            self._flush_spikes()
        self.file.flush()
        self._last_flush = monotonic()

    # -- spike times (spiking runs) ---------------------------------------------------
    def append_spikes(self, population, t, i):
        """Buffer spike times ``t`` (s) and neuron indices ``i`` of ``population``;
        written to ``/spikes/<population>/{t, i}`` with the next chunk of records."""
        buffer = self._spikes.setdefault(population, ([], []))
        buffer[0].append(np.asarray(t, "f8"))
        buffer[1].append(np.asarray(i, "i4"))

    def _flush_spikes(self):
        f = self.file
        for population, (ts, idx) in self._spikes.items():
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
            ts.clear()
            idx.clear()

    def close(self, status, message=None):
        """Flush, set the final ``status`` (and a ``message``), close."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if self.file is None:
            return
        try:
            self.flush()
            self.file.attrs["status"] = status
            self.file.attrs["records"] = self.records
            self.file.attrs["finished"] = datetime.datetime.now().astimezone().isoformat()
            if message:
                self.file.attrs["message"] = message
        finally:
            self.file.close()
            self.file = None

    def discard(self):
        """Close and delete the file (bad input found after it was created)."""
        if self.file is not None:
            self.file.close()
            self.file = None
        self.path.unlink(missing_ok=True)
