"""Writing the HDF5 run file while the run goes on (the layout: README, "The run file").

:class:`RunFile` creates the file exclusively (two runs never share one), writes the
metadata first, then appends records in whole chunks: a buffer of ``chunk`` records
is kept in memory, written as one compressed HDF5 chunk and flushed, so memory does
not grow with the duration and a run killed at any moment leaves a file holding every
flushed record. The ``status`` attribute is ``running`` until :meth:`RunFile.close`
sets the final one (``complete``, ``interrupted``, ``diverged`` or ``failed``).

The default HDF5 file format (superblock v0) is used on purpose: newer superblocks
mark a file as "open for writing" and refuse to open it after a crash.

A failed write (a full disk, a lost network share) stops the run at once: the writer
thread writes through dataset handles it keeps open and flushes the file after every
chunk, so HDF5 reports the error there (not later, while discarding objects), and
:meth:`RunFile.append` raises :class:`~plasticity.errors.WriteFailed` in the simulating
thread. :meth:`RunFile.close` then cuts every dataset back to the records that were
flushed before the failure, so the file claims (``records``) only what it holds.
"""

import datetime
import os
import platform
import queue
import socket
import sys
import threading
import weakref
from time import monotonic
from pathlib import Path

import h5py
import numpy as np

from ..errors import WriteFailed

FORMAT = "plasticity-run"
FORMAT_VERSION = 1
STATUSES = ("running", "complete", "diverged", "interrupted", "failed")

#: target size of one chunk of /weights, bytes
CHUNK_BYTES = 1 << 20
#: at most this many seconds (wall clock) between flushes, so a killed run loses at
#: most this much of its log even when a chunk takes longer than that to fill
FLUSH_SECONDS = 2.0
#: HDF5 filters of the per-record datasets, by the name ``RunFile(compression=...)``
#: takes. ``"none"`` is the default: float64 weights barely compress (lzf + shuffle
#: saved 4 % of an Oja run's weights, 77.9 of 80 MB) while compressing them took
#: about 1 s of CPU per 80 MB, more than writing them; and any HDF5 reader opens an
#: uncompressed file without a filter plugin. Readers read every variant alike.
COMPRESSION = {
    "none": {},
    "lzf": dict(compression="lzf", shuffle=True),
    "gzip": dict(compression="gzip", compression_opts=1, shuffle=True),
}


def versions():
    """Versions of the libraries a run depends on."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for package in ("plasticity", "brian2", "numpy", "scipy", "h5py", "networkx"):
        # an imported package's own __version__ (a lookup in the installed
        # distributions scans site-packages: ~10 ms each)
        loaded = getattr(sys.modules.get(package), "__version__", None)
        if isinstance(loaded, str):
            out[package] = loaded
            continue
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
    stays bounded: a simulation faster than the disk waits for it. The first error of
    a job is kept in ``failed`` (the simulating thread checks it before every hand-over)
    and every later job is skipped, so nothing is written after a gap.
    """

    def __init__(self):
        self.jobs = queue.Queue(maxsize=1)
        self.failed = None
        self.thread = threading.Thread(target=self._loop, name="plasticity-writer", daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                if self.failed is None:
                    job()
            except BaseException as error:  # reported in the simulating thread
                self.failed = error
            finally:
                self.jobs.task_done()

    def stop(self):
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join()


#: disk space held back for closing a file after a failed write, beyond one chunk of
#: records: HDF5's pending metadata (chunk index, object headers, attributes)
RESERVE_EXTRA_BYTES = 256 << 10


#: the run files of this process still open (closed by :func:`close_open_files` when
#: the process is stopped where no run path could close its own)
_OPEN = weakref.WeakSet()


def close_open_files(status, message):
    """Close every run file this process still has open with ``status``; for a process
    stopped (SIGINT/SIGTERM) between creating a file and running."""
    for runfile in list(_OPEN):
        try:
            runfile.close(status, message)
        except Exception:  # noqa: BLE001 - closing as well as it can
            pass


#: room left for HDF5's own metadata when a chunk of records is written
METADATA_MARGIN_BYTES = 64 << 10


def free_bytes(folder):
    """Bytes free to this user in the file system of ``folder``, or None if unknown."""
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


class _Reserve:
    """Disk space held back on the run file's file system while the run goes on, so
    that a file can still be closed properly after the disk filled up: a temporary
    file, unlinked at once (the kernel frees its blocks when it is closed, also when
    the process is killed), with ``size`` bytes allocated. :meth:`release` frees them.
    """

    def __init__(self, folder, size):
        import tempfile

        self.size = int(size)
        self.fd = None
        fd, name = tempfile.mkstemp(prefix=".plasticity-reserve-", dir=folder)
        os.unlink(name)
        try:
            try:
                os.posix_fallocate(fd, 0, self.size)
            except OSError as error:
                if error.errno not in (95, 22):   # EOPNOTSUPP, EINVAL: write instead
                    raise
                block = b"\0" * (1 << 16)
                for _ in range(0, self.size, len(block)):
                    os.write(fd, block)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self):
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


class RunFile:
    """A run file being written.

    ``RunFile(path, n_synapses, state_sizes, chunk=None)`` creates the file (error if it
    exists). Use :meth:`write_metadata` once, :meth:`append` for each record, then
    :meth:`close` with the final status.
    """

    def __init__(self, path, n_synapses, state_sizes=None, chunk=None, extra_sizes=None,
                 compression="none"):
        if compression not in COMPRESSION:
            raise ValueError(f"compression must be one of {sorted(COMPRESSION)}, got {compression!r}")
        self.compression = compression
        # extra_sizes: {dataset path: width} of other per-record data (e.g. the firing
        # rates "rates/pre" of spiking runs), appended with ``append(..., extra=)``
        self.extra_sizes = dict(extra_sizes or {})
        self._spikes = {}
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WriteFailed(describe_write_error(self.path, error), path=None) from None
        self.n_synapses = int(n_synapses)
        self.state_sizes = dict(state_sizes or {})
        row_bytes = 8 * max(1, self.n_synapses + sum(self.state_sizes.values()))
        self.chunk = int(chunk or max(1, min(4096, CHUNK_BYTES // row_bytes)))
        self.file = None
        self._writer = None
        self._datasets = {}
        self.records = 0
        #: records known to be on disk (written and flushed by the writer thread)
        self.written = 0
        self._time = np.empty(self.chunk)
        self._weights = np.empty((self.chunk, self.n_synapses))
        self._state = {name: np.empty((self.chunk, size)) for name, size in self.state_sizes.items()}
        self._extra = {name: np.empty((self.chunk, size)) for name, size in self.extra_sizes.items()}
        self._buffered = 0
        self._last_flush = monotonic()
        self._reserve = None
        reserve = row_bytes * self.chunk + RESERVE_EXTRA_BYTES
        try:
            self._reserve = _Reserve(self.path.parent, reserve)
            self.file = h5py.File(self.path, "x")
        except FileExistsError:
            self._release_reserve()
            raise
        except OSError as error:
            self._release_reserve()
            raise WriteFailed(describe_write_error(self.path.parent, error), path=None) from None
        try:
            self._create_layout()
        except Exception as error:
            # not even the empty layout fits: nothing worth keeping
            self._abandon()
            raise WriteFailed(describe_write_error(self.path, error), path=None) from None
        self._writer = _Writer()
        _OPEN.add(self)

    def _create_layout(self):
        f = self.file
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["status"] = "running"
        f.attrs["created"] = datetime.datetime.now().astimezone().isoformat()
        # who writes it: a reader finding status "running" can tell a live run (refused:
        # still being written) from a killed one
        f.attrs["writer_host"] = socket.gethostname()
        f.attrs["writer_pid"] = os.getpid()
        # fletcher32 (cheap next to compression): a chunk damaged by a write that failed
        # half-way is an error when read, not silently wrong numbers
        compression = dict(COMPRESSION[self.compression], fletcher32=True)
        d = self._datasets
        d["time"] = f.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8",
                                     chunks=(max(self.chunk, 64),))
        d["time"].attrs["unit"] = "s"
        d["weights"] = f.create_dataset("weights", shape=(0, self.n_synapses),
                                        maxshape=(None, self.n_synapses), dtype="f8",
                                        chunks=(self.chunk, max(1, self.n_synapses)), **compression)
        for name, size in self.state_sizes.items():
            d[f"state/{name}"] = f.create_dataset(f"state/{name}", shape=(0, size), maxshape=(None, size),
                                                  dtype="f8", chunks=(self.chunk, max(1, size)),
                                                  **compression)
        for name, size in self.extra_sizes.items():
            d[name] = f.create_dataset(name, shape=(0, size), maxshape=(None, size), dtype="f8",
                                       chunks=(self.chunk, max(1, size)), **compression)
        self._good = {name: 0 for name in d}
        f.flush()

    def _abandon(self):
        """Close and remove a file whose layout could not even be written."""
        if self._writer is not None:
            self._writer.stop()
        self._release_reserve()
        self._close_file()
        try:
            self.path.unlink()
        except OSError:
            pass

    # -- metadata ------------------------------------------------------------------
    def write_metadata(self, *, config_toml, rule, model, seed, pre, post, model_toml=None,
                       inputs=None, attrs=None):
        """Config (and the model spec), versions, seed, synapse indices and the inputs:
        ``inputs(group)`` writes ``/inputs`` (a codec of :mod:`plasticity.io.codecs`).
        A file whose metadata cannot be written is removed (:class:`WriteFailed`)."""
        try:
            self._write_metadata(config_toml, rule, model, seed, pre, post, model_toml, inputs, attrs)
        except OSError as error:
            self._abandon()
            raise WriteFailed(describe_write_error(self.path, error), path=None) from None

    def _write_metadata(self, config_toml, rule, model, seed, pre, post, model_toml, inputs, attrs):
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
        if self.failed is not None:
            return   # the file is closed as failed; nothing more goes in
        try:
            node = self.file[path]
            for key, value in attrs.items():
                node.attrs[key] = value
        except OSError as error:
            self._writer.failed = error
            raise WriteFailed(self.failure_message(), path=self.path) from None

    # -- records -------------------------------------------------------------------
    def append(self, time, weights, state=None, extra=None):
        """Buffer one record; a full buffer is written as one chunk and flushed, and so
        is a partial one after ``FLUSH_SECONDS`` of wall time. Raises
        :class:`WriteFailed` once a write has failed."""
        self.check()
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
        self.check()
        self._writer.jobs.put(lambda: self._write(start, times, rows, spikes))

    def wait(self):
        """Block until everything flushed so far is on disk; :class:`WriteFailed` if a
        write failed."""
        self._writer.jobs.join()
        self.check()

    @property
    def failed(self):
        """The error of the first failed write, or None."""
        return self._writer.failed if self._writer is not None else None

    def check(self):
        """Raise :class:`WriteFailed` if a write has failed (once it has, every later
        call raises: the run must stop)."""
        error = self.failed
        if error is not None:
            raise WriteFailed(self.failure_message(), path=self.path)

    def failure_message(self):
        """One line: what failed, where, and what the file keeps."""
        return (f"{describe_write_error(self.path.parent, self.failed)}; the run stopped, "
                f"{self.written} records kept in {self.path} (status failed)")

    def _write(self, start, times, rows, spikes):
        """(writer thread) Append ``rows`` at record ``start``, then the spikes, flush."""
        # through the handles kept open (a temporary f[name] would be closed at once,
        # and HDF5 would report a failed write of its cached chunks only then, where
        # nobody can see it); the flush makes a write error an exception here
        f, d = self.file, self._datasets
        k = times.shape[0]
        # a disk that cannot take the chunk (uncompressed, so this errs on the safe
        # side) stops the run here, before HDF5 starts a write it cannot finish: a
        # write failing half-way may leave HDF5's metadata inconsistent
        need = (times.nbytes + sum(v.nbytes for v in rows.values()) + METADATA_MARGIN_BYTES
                + sum(12 * sum(map(len, ts)) for ts, _ in spikes.values()))
        free = free_bytes(self.path.parent)
        if free is not None and free < need:
            raise OSError(28, f"No space left on device ({free} bytes free, the next chunk "
                              f"needs up to {need})")
        if k:
            # data first, time (the record count readers trust) last
            for name, values in rows.items():
                d[name].resize(start + k, axis=0)
                d[name][start:start + k] = values
            d["time"].resize(start + k, axis=0)
            d["time"][start:start + k] = times
        if spikes:
            self._write_spikes(spikes)
        f.flush()
        # what is on disk now: a later failed write is cut back to this
        self._good = {name: data.shape[0] for name, data in d.items()}
        self.written = start + k

    # -- spike times (spiking runs) ---------------------------------------------------
    def append_spikes(self, population, t, i):
        """Buffer spike times ``t`` (s) and neuron indices ``i`` of ``population``;
        written to ``/spikes/<population>/{t, i}`` with the next chunk of records."""
        buffer = self._spikes.setdefault(population, ([], []))
        buffer[0].append(np.asarray(t, "f8"))
        buffer[1].append(np.asarray(i, "i4"))

    def _write_spikes(self, spikes):
        f, d = self.file, self._datasets
        for population, (ts, idx) in spikes.items():
            key = f"spikes/{population}"
            if f"{key}/t" not in d:
                for name, dtype in (("t", "f8"), ("i", "i4")):
                    d[f"{key}/{name}"] = f.create_dataset(
                        f"{key}/{name}", shape=(0,), maxshape=(None,), dtype=dtype,
                        chunks=(1 << 16,), compression="gzip", compression_opts=1, shuffle=True)
                d[f"{key}/t"].attrs["unit"] = "s"
                self._good[f"{key}/t"] = self._good[f"{key}/i"] = 0
            if not ts:
                continue
            t, i = np.concatenate(ts), np.concatenate(idx)
            n0 = d[f"{key}/t"].shape[0]
            for name, data in (("i", i), ("t", t)):
                d[f"{key}/{name}"].resize(n0 + data.size, axis=0)
                d[f"{key}/{name}"][n0:] = data

    def close(self, status, message=None):
        """Flush, set the final ``status`` (and a ``message``), close.

        After a failed write the status is ``failed`` with the write error as the
        message, whatever was asked, every dataset is cut back to the records flushed
        before the failure and ``records`` says how many; :class:`WriteFailed` is raised
        (after closing) unless ``failed`` was the status asked for."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if self.file is None:
            return
        try:
            if self.failed is None:
                self.flush()
                self.wait()
        except WriteFailed:
            pass
        finally:
            self._writer.stop()
        asked = status
        failed = self.failed is not None
        if failed:
            status, message = "failed", self.failure_message()
            # the space held back since the start lets the cut-back file be closed
            self._release_reserve()
        try:
            if failed:
                self._cut_back()
            attrs = self.file.attrs
            attrs["status"] = status
            attrs["records"] = self.written
            attrs["finished"] = datetime.datetime.now().astimezone().isoformat()
            if message:
                attrs["message"] = message
            self.file.flush()
        except Exception as error:  # the disk is full: keep what it holds
            if not failed:
                self._writer.failed = error
                failed = True
        finally:
            self._close_file()
            self._release_reserve()
        if failed and asked != "failed":
            raise WriteFailed(self.failure_message(), path=self.path)

    def _cut_back(self):
        """Shrink every dataset to what the last successful flush put on disk (this
        also drops the chunks HDF5 still holds in its cache for the failed write)."""
        # /time first: it bounds what readers take
        for name, data in sorted(self._datasets.items(), key=lambda item: item[0] != "time"):
            good = self._good.get(name, 0)
            try:
                if data.shape[0] != good:
                    data.resize(good, axis=0)
            except Exception:  # noqa: BLE001 - e.g. the chunk index never got the lost
                # chunk; /time (readers take the shortest dataset) and
                # ``records`` still bound what is read
                pass

    def _release_reserve(self):
        if self._reserve is not None:
            reserve, self._reserve = self._reserve, None
            reserve.release()

    def _close_file(self):
        _OPEN.discard(self)
        f, self.file = self.file, None
        self._datasets = {}
        if f is None:
            return
        try:
            f.close()
        except Exception:  # noqa: BLE001 - nothing more can be saved
            pass


def describe_write_error(where, error):
    """One line for a failed write: ``cannot write <where>: no space left on device``."""
    text = str(error)
    errno = getattr(error, "errno", None)
    if errno == 28 or "No space left" in text or "errno = 28" in text:
        reason = "no space left on device"
    elif errno == 122 or "Disk quota exceeded" in text or "errno = 122" in text:
        reason = "disk quota exceeded"
    elif errno == 13 or "Permission denied" in text:
        reason = "permission denied"
    else:
        reason = (text.splitlines()[0] if text else type(error).__name__)[:200]
    return f"cannot write {where}: {reason}"


def mark_status(path, status, message, only_if=("running", "complete")):
    """Set the ``status`` (and ``message``) of a closed run file whose status is one of
    ``only_if`` (e.g. a run that a sweep stopped: ``brian2.stop()`` ends a network as if
    it had completed). Returns whether the file could be opened."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    try:
        with h5py.File(path, "r+") as f:
            current = f.attrs.get("status")
            current = current.decode() if isinstance(current, bytes) else current
            if current in only_if:
                f.attrs["status"] = status
                f.attrs["message"] = message
            return True
    except (OSError, KeyError):
        return False
