"""A failed write (a full disk) stops the run at once, leaves a file that says
``failed`` and holds exactly the records written before the failure, and never crashes
the process: the writer's error path with an injected error (always runs), with a real
HDF5 write error from a file that refuses to grow (always runs), and a real run on a
small tmpfs (where this test may mount one)."""

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import plasticity_command, cli_env
from plasticity.errors import BadInput, WriteFailed
from plasticity.io import RunFile, open_run
import plasticity.io.writer as writer_module

REAL_FILE = h5py.File


def _fill(runfile, rng, limit=100_000):
    """Append records until a write fails; the records appended, in order."""
    appended = []
    with pytest.raises(WriteFailed) as failure:
        for k in range(limit):
            w = rng.standard_normal(runfile.n_synapses)
            runfile.append(k * 1e-3, w)
            appended.append(w)
    return appended, failure.value


def _check_failed_file(path, appended):
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "failed"
        records = int(f.attrs["records"])
        assert "no space left on device" in f.attrs["message"]
        assert f["time"].shape[0] == records
    with open_run(path) as run:
        assert run.n_records == records
        np.testing.assert_array_equal(run.weights(), np.array(appended[:records]))
    return records


def test_injected_write_error_stops_the_run_and_keeps_what_was_written(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    runfile = RunFile(path, 5, chunk=10)
    runfile.write_metadata(config_toml="x = 1", rule="oja", model="linear_rate", seed=1,
                           pre=np.arange(5), post=np.zeros(5))
    real_write = RunFile._write
    calls = []

    def failing_write(self, start, times, rows, spikes):
        calls.append(start)
        if len(calls) == 3:   # the third chunk hits a full disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, start, times, rows, spikes)

    monkeypatch.setattr(RunFile, "_write", failing_write)
    appended, error = _fill(runfile, np.random.default_rng(0))
    assert "no space left on device" in str(error) and str(tmp_path) in str(error)
    assert len(calls) == 3          # nothing was handed over after the failure
    # every later write is refused too, and close() reports the failure
    with pytest.raises(WriteFailed):
        runfile.append(1.0, np.zeros(5))
    with pytest.raises(WriteFailed):
        runfile.close("complete")
    assert _check_failed_file(path, appended) == 20


class _SmallDisk(io.FileIO):
    """A file that refuses to grow past ``limit`` bytes, as a full disk does."""

    limit = 0

    def write(self, data):
        if self.tell() + len(data) > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)

    def truncate(self, size=None):
        if size is not None and size > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().truncate(size)


@pytest.mark.parametrize("limit", [2_500_000, 4_000_000, 9_000_000])
@pytest.mark.parametrize("check_first", [True, False])
def test_real_hdf5_write_error_is_seen_and_the_file_stays_readable(tmp_path, monkeypatch, limit,
                                                                   check_first):
    """The disk fills up (a file that refuses to grow, through h5py's file-object
    driver): the writer sees it before HDF5 does (``check_first``) or from HDF5 itself
    (another process took the space between the check and the write); either way the
    run stops, the file is closed as failed and never claims a record it lacks."""
    path = tmp_path / "run.h5"
    handles = []

    def small_disk_file(name, mode, **kwargs):
        handle = _SmallDisk(name, "x+b" if mode == "x" else "r+b")
        handle.limit = limit
        handles.append(handle)
        return REAL_FILE(handle, mode if mode != "x" else "w", **kwargs)

    monkeypatch.setattr(writer_module.h5py, "File", small_disk_file)
    real_release = writer_module._Reserve.release

    def release(self):
        # the space held back by the writer is free again on this "disk"
        for handle in handles:
            handle.limit += self.size
        real_release(self)

    monkeypatch.setattr(writer_module._Reserve, "release", release)
    if check_first:
        # the writer checks the free space before each chunk (as it does on a disk
        # that fills up): HDF5 never starts a write it cannot finish
        monkeypatch.setattr(writer_module, "free_bytes",
                            lambda folder: max(0, handles[0].limit - os.path.getsize(path)))
    runfile = RunFile(path, 64)
    runfile.write_metadata(config_toml="x = 1", rule="oja", model="linear_rate", seed=1,
                           pre=np.arange(64), post=np.zeros(64))
    appended, error = _fill(runfile, np.random.default_rng(1))
    assert "no space left on device" in str(error), repr(runfile.failed)
    runfile.close("failed", "ignored: the write error is the message")
    for handle in handles:
        handle.close()
    monkeypatch.undo()
    if check_first:
        records = _check_failed_file(path, appended)
        assert 0 < records < len(appended)
        return
    # HDF5 failed half-way through a write: what the file claims must still be true
    try:
        with open_run(path) as run:
            records = run.n_records
            weights = run.weights()
    except BadInput:
        return   # refused as unreadable: not a wrong answer
    good = np.array(appended[:records])
    assert records <= len(appended)
    np.testing.assert_array_equal(weights, good)


def test_a_disk_too_full_for_the_layout_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"

    def small_disk_file(name, mode, **kwargs):
        handle = _SmallDisk(name, "x+b")
        handle.limit = 1000
        return REAL_FILE(handle, "w", **kwargs)

    monkeypatch.setattr(writer_module.h5py, "File", small_disk_file)
    # through h5py's file-object driver the error that surfaces is sometimes a follow-up
    # of the refused write (h5py looks up the object's methods with the error pending);
    # the message of a real full disk is tested on a tmpfs (test_run_on_a_full_disk)
    with pytest.raises(WriteFailed, match="cannot write"):
        runfile = RunFile(path, 64)
        runfile.write_metadata(config_toml="x = 1" * 1000, rule="oja", model="linear_rate",
                               seed=1, pre=np.arange(64), post=np.zeros(64))
    assert not path.exists()


BIG = """
name = "big"
seed = 1
[network]
model = "linear_rate"
n_pre = 200
n_post = 2
[inputs]
kind = "gaussian"
spectrum = [{spectrum}]
[rule]
name = "oja"
eta = "0.01 Hz"
[simulation]
duration = "2 s"
dt = "1 ms"
device = "runtime"
[record]
every = "1 ms"
"""


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MB tmpfs mounted in tmp_path (skipped where mounting is not permitted)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow
def test_run_on_a_full_disk(tmp_path, small_tmpfs):
    config = tmp_path / "big.toml"
    config.write_text(BIG.format(spectrum=", ".join(["1.0"] * 200)))

    def run(*args):
        return subprocess.run(plasticity_command() + ["run", str(config), "-q", *map(str, args)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env=cli_env())

    # refused before any work: the estimate does not fit the free space
    refused = run("--out", small_tmpfs / "r")
    assert refused.returncode == 2, refused.stderr
    assert "free" in refused.stderr and "\n" not in refused.stderr.strip()
    assert not (small_tmpfs / "r").exists() or not any((small_tmpfs / "r").iterdir())
    # forced: it fails at the first failed write, with one line and a readable file
    failed = run("--out", small_tmpfs / "r", "--force")
    assert failed.returncode == 1, failed.stderr
    line = failed.stderr.strip()
    assert "\n" not in line and "no space left on device" in line and str(small_tmpfs / "r") in line
    assert failed.stdout.strip() == ""
    (path,) = (small_tmpfs / "r").glob("*.h5")
    reference = run("--out", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr
    with h5py.File(path, "r") as f, h5py.File(Path(reference.stdout.split()[-1]), "r") as ref:
        assert f.attrs["status"] == "failed"
        records = int(f.attrs["records"])
        assert 0 < records < ref["time"].shape[0]
        assert f["time"].shape[0] == records
        np.testing.assert_array_equal(f["weights"][:records], ref["weights"][:records])


@pytest.mark.parametrize("compression, filter_name", [("none", None), ("lzf", "lzf"), ("gzip", "gzip")])
def test_every_compression_reads_back_the_same_records(tmp_path, compression, filter_name):
    # the default writes uncompressed records; files written compressed (the default of
    # earlier versions was lzf) read back identically through the same reader
    path = tmp_path / f"{compression}.h5"
    runfile = RunFile(path, 7, {"theta": 1}, chunk=4, compression=compression)
    runfile.write_metadata(config_toml="x = 1", rule="oja", model="linear_rate", seed=1,
                           pre=np.arange(7), post=np.zeros(7))
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((11, 7))
    for k, row in enumerate(rows):
        runfile.append(0.1 * k, row, {"theta": np.full(1, k)})
    runfile.close("complete")
    with h5py.File(path, "r") as f:
        assert f["weights"].compression == filter_name
        assert f["weights"].fletcher32
    with open_run(path) as run:
        np.testing.assert_array_equal(run.weights(), rows)


def test_an_unknown_compression_is_refused(tmp_path):
    with pytest.raises(ValueError, match="compression"):
        RunFile(tmp_path / "x.h5", 3, compression="zstd")
    assert not (tmp_path / "x.h5").exists()


def test_a_large_diagonal_covariance_reads_back_dense(tmp_path):
    # above DIAGONAL_BLOCK inputs only the diagonal chunks are written; readers of the
    # dataset see the full matrix (zeros off the diagonal blocks), the reader the variances
    from plasticity.inputs import InputStats
    from plasticity.io.codecs import DIAGONAL_BLOCK, read_input_stats, write_input_stats

    n = DIAGONAL_BLOCK + 77
    stats = InputStats.gaussian(n, np.random.default_rng(1), spectrum=np.linspace(2.0, 0.5, n),
                                rotation="identity")
    with h5py.File(tmp_path / "inputs.h5", "w") as f:
        write_input_stats(f.create_group("inputs"), stats)
    with h5py.File(tmp_path / "inputs.h5", "r") as f:
        np.testing.assert_array_equal(f["inputs/covariance"][()], np.diag(stats.variances))
        np.testing.assert_array_equal(read_input_stats(f["inputs"]).variances, stats.variances)
