"""plasticity sweep: sweep files, the Dask engine, the table, failures, SIGINT and --resume."""

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import tomli_w

from conftest import BASE_CONFIG, last_line, plasticity_command, cli_env
from plasticity.errors import BadInput
from plasticity.sweep import load_sweep

#: a stable and an unstable linear system (no Brian2): the second leaves its bound
LINEAR_BASE = {
    "kind": "dynamics", "name": "lin", "seed": 0,
    "dynamics": {"system": "linear", "A": [[-1.0, 10.0], [0.0, -2.0]], "w0": [0.0, 1.0]},
    "simulation": {"duration": 4.0, "dt": 0.01, "weight_bound": 50.0},
    "record": {"every": 0.05},
}


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(tomli_w.dumps(data))
    return path


def read_table(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def sweep_cli(*args, cwd, timeout=300):
    return subprocess.run(plasticity_command() + ["sweep", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=cli_env())


# ---------------------------------------------------------------------------------
# The sweep file

def test_points_are_the_grid_times_zip_times_seeds(tmp_path):
    write(tmp_path, "base.toml", BASE_CONFIG)
    path = write(tmp_path, "s.toml", {
        "name": "s", "base": "base.toml", "seeds": {"start": 5, "count": 2},
        "grid": {"rule.eta": [0.1, 0.2, 0.3]},
        "zip": {"simulation.duration": ["0.2 s", "0.3 s"], "record.every": ["10 ms", "20 ms"]}})
    sweep = load_sweep(path)
    assert len(sweep.points) == 3 * 2 * 2
    assert sweep.keys == ["rule.eta", "simulation.duration", "record.every"]
    combos = {(p.values["rule.eta"], p.values["simulation.duration"], p.values["record.every"], p.seed)
              for p in sweep.points}
    assert len(combos) == 12
    assert {c[1:3] for c in combos} == {("0.2 s", "10 ms"), ("0.3 s", "20 ms")}   # zipped
    for p in sweep.points:
        assert p.experiment.rule.params["eta"] == p.values["rule.eta"]
        assert p.experiment.seed == p.seed
    # identity: the resolved config; the same point in another sweep file is the same run
    again = load_sweep(write(tmp_path, "t.toml", {
        "name": "t", "base": "base.toml", "seeds": [6], "grid": {"rule.eta": [0.2]},
        "zip": {"simulation.duration": ["0.3 s"], "record.every": ["0.02 s"]}}))
    match = [p for p in sweep.points if p.values["rule.eta"] == 0.2 and p.seed == 6
             and p.values["simulation.duration"] == "0.3 s"]
    assert again.points[0].identity == match[0].identity
    assert len({p.identity for p in sweep.points}) == 12


@pytest.mark.parametrize("change, expected", [
    ({"grid": {"rule.eta": [0.1, -1.0]}}, "rule.eta = -1.0: "),
    ({"grid": {"rule.nope": [1]}}, "rule.nope = 1: "),
    ({"grid": {"simulation.duration": ["1 parsec"]}}, 'simulation.duration = "1 parsec"'),
    ({"zip": {"record.every": ["10 ms", "20 ms"], "simulation.duration": ["1 s"]}}, "[zip] lists must have one length"),
    ({"zip": {"rule.eta": [0.2]}}, "'rule.eta' is in both [grid] and [zip]"),
    ({"grid": {"rule.eta": []}}, "grid.rule.eta"),
    ({"grid": {"seed": [1, 2]}}, "'seed' cannot be swept"),
    ({"base": "missing.toml"}, "base: 'missing.toml' is not a file"),
    ({"seeds": [1, 1]}, "seeds repeat"),
    ({"colour": "red"}, "colour: unknown key"),
])
def test_bad_sweep_files_exit_2_naming_the_key_and_nothing_runs(tmp_path, change, expected):
    write(tmp_path, "base.toml", BASE_CONFIG)
    path = write(tmp_path, "bad.toml", {"name": "bad", "base": "base.toml", "seeds": [1],
                                        "grid": {"rule.eta": [0.1]}, **change})
    with pytest.raises(BadInput) as info:
        load_sweep(path)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_bad_sweep_file_through_the_cli(tmp_path):
    write(tmp_path, "base.toml", BASE_CONFIG)
    path = write(tmp_path, "bad.toml", {"name": "bad", "base": "base.toml",
                                        "grid": {"rule.eta": [0.1, "fast"]}})
    done = sweep_cli(path, "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and 'rule.eta = "fast"' in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------
# Running: a local cluster of 2 workers

def test_dynamics_sweep_on_a_local_cluster_rows_statuses_and_a_diverged_point(tmp_path):
    write(tmp_path, "base.toml", LINEAR_BASE)
    path = write(tmp_path, "lin.toml", {
        "name": "lin", "base": "base.toml", "seeds": [0, 1],
        "grid": {"dynamics.A": [[[-1.0, 10.0], [0.0, -2.0]], [[-1.0, 0.0], [0.0, 1.5]]]}})
    done = sweep_cli(path, "--out", "out", "--workers", "2", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    table = Path(last_line(done.stdout))
    assert table == (tmp_path / "out" / "lin" / "sweep.csv").resolve()
    rows = read_table(table)
    by_run = {}
    for row in rows:
        by_run.setdefault(int(row["run"]), []).append(row)
    assert sorted(by_run) == [0, 1, 2, 3]
    for run, group in by_run.items():
        row = group[0]
        assert (table.parent / row["file"]).exists()
        stable_system = row["dynamics.A"].startswith("[[-1.0, 10.0]")
        if stable_system:
            assert row["status"] == "complete" and row["loss"] == "norm2"
            assert row["verdict"] == "not-descent" and float(row["window_T"]) > 0
            assert row["stable"] == "True" and float(row["stability_max_real"]) == pytest.approx(-1.0, abs=1e-6)
        else:
            assert row["status"] == "diverged" and "bound" in row["message"]
            with h5py.File(table.parent / row["file"]) as f:
                assert f.attrs["status"] == "diverged"
        assert {r["seed"] for r in group} == {row["seed"]}
        assert row["sim_s"] == ""         # no Brian2 network ran
    assert {r["status"] for r in rows} == {"complete", "diverged"}
    # the same sweep again: refused without --resume, nothing to run with it
    again = sweep_cli(path, "--out", "out", "-q", cwd=tmp_path)
    assert again.returncode == 2 and "--resume" in again.stderr
    again = sweep_cli(path, "--out", "out", "-q", "--resume", cwd=tmp_path)
    assert again.returncode == 0 and "nothing to run" in again.stderr
    assert read_table(table) == rows


@pytest.mark.slow
def test_brian2_sweep_on_a_local_cluster(tmp_path):
    base = dict(BASE_CONFIG, simulation={"duration": "0.3 s", "dt": "1 ms", "device": "runtime"})
    write(tmp_path, "base.toml", base)
    path = write(tmp_path, "oja.toml", {
        "name": "oja", "base": "base.toml", "seeds": [1, 2],
        "grid": {"rule.eta": [0.05, 0.2], "simulation.weight_bound": [1000.0, 0.01]},
        "analysis": {"loss": ["rayleigh"]}})
    done = sweep_cli(path, "--out", "out", "--workers", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "8/8" in done.stderr           # the progress bar over runs, on stderr
    rows = read_table(last_line(done.stdout))
    assert len(rows) == 8 and sorted(int(r["run"]) for r in rows) == list(range(8))
    for row in rows:
        if row["simulation.weight_bound"] == "0.01":
            # the initial weights (uniform in ±0.3) already exceed the bound
            assert row["status"] == "diverged", row
        else:
            assert row["status"] == "complete" and row["loss"] == "rayleigh"
            assert row["verdict"] and float(row["psi_deg_median"]) >= 0
            assert row["stability_max_real"] != ""
            # Brian2's simulation loop is part of the run, the run part of the task
            assert 0 < float(row["sim_s"]) <= float(row["run_s"]) <= float(row["wall_s"])
    assert len({r["worker_pid"] for r in rows}) == 2


def test_workers_of_a_local_cluster_run_no_statistical_profiler():
    """Dask's profiler keeps a call tree per second of a worker's life: the workers the
    sweep starts must not run it (their memory would grow with their running time)."""
    from distributed import Client

    from plasticity.sweep.engine import _local_cluster

    cluster = _local_cluster(1)
    try:
        with Client(cluster) as client:
            callbacks = client.run(lambda dask_worker: sorted(dask_worker.periodic_callbacks))
            histories = client.run(lambda dask_worker: len(dask_worker.profile_history))
    finally:
        cluster.close()
    assert len(callbacks) == 1
    for names in callbacks.values():
        assert "heartbeat" in names and not any("profile" in name for name in names)
    assert list(histories.values()) == [0]


# ---------------------------------------------------------------------------------
# A real scheduler and two workers, started here

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sweep_on_an_existing_scheduler(tmp_path):
    dask = str(Path(sys.executable).with_name("dask"))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=tmp_path)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1",
                                           "--no-dashboard", "--host", "127.0.0.1"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          cwd=tmp_path))
        from distributed import Client

        deadline = time.monotonic() + 90
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(2, timeout=60)
                    pids = set(client.run(os.getpid).values())
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        base = dict(BASE_CONFIG, simulation={"duration": "0.2 s", "dt": "1 ms", "device": "runtime"})
        write(tmp_path, "base.toml", base)
        path = write(tmp_path, "oja.toml", {
            "name": "oja", "base": "base.toml", "seeds": [1, 2, 3],
            "grid": {"simulation.weight_bound": [1000.0, 0.01]}, "analysis": {"loss": ["rayleigh"]}})
        done = sweep_cli(path, "--out", tmp_path / "out", "--scheduler", address, "-q", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        rows = read_table(last_line(done.stdout))
        assert len(rows) == 6
        assert {r["status"] for r in rows} == {"complete", "diverged"}
        assert {int(r["worker_pid"]) for r in rows} <= pids      # ran on those workers
        # the cluster is still up and was not shut down by the sweep
        with Client(address, timeout="5s") as client:
            assert len(client.scheduler_info()["workers"]) == 2
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_unreachable_scheduler_is_bad_input(tmp_path):
    write(tmp_path, "base.toml", LINEAR_BASE)
    path = write(tmp_path, "lin.toml", {"name": "lin", "base": "base.toml"})
    done = sweep_cli(path, "--out", "out", "--scheduler", f"tcp://127.0.0.1:{_free_port()}",
                     cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "--scheduler" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------
# SIGINT in the middle, then --resume

@pytest.mark.slow
def test_sigint_mid_sweep_then_resume_runs_every_point_exactly_once(tmp_path):
    base = dict(BASE_CONFIG, simulation={"duration": "4 s", "dt": "1 ms", "device": "runtime"},
                record={"every": "50 ms"})
    write(tmp_path, "base.toml", base)
    path = write(tmp_path, "oja.toml", {"name": "oja", "base": "base.toml",
                                        "seeds": {"start": 1, "count": 8},
                                        "analysis": {"loss": ["rayleigh"]}})
    process = subprocess.Popen(plasticity_command() + ["sweep", str(path), "--out", "out",
                                                       "--workers", "2", "-q"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=cli_env())
    table = tmp_path / "out" / "oja" / "sweep.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if table.exists() and len(read_table(table)) >= 1:
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert Path(last_line(out)) == table.resolve()
    first = read_table(table)
    statuses = [r["status"] for r in first]
    assert 1 <= statuses.count("complete") < 8
    # the runs that were going on: an interrupted row each, their files say so
    for row in first:
        if row["status"] == "interrupted":
            with h5py.File(table.parent / row["file"]) as f:
                assert f.attrs["status"] == "interrupted"
    files = {r["identity"]: (table.parent / r["file"]).stat().st_mtime_ns
             for r in first if r["status"] == "complete"}

    done = sweep_cli(path, "--out", "out", "--workers", "2", "--resume", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = read_table(table)
    sweep = load_sweep(path)
    assert sorted(r["identity"] for r in rows) == sorted(p.identity for p in sweep.points)
    assert {r["status"] for r in rows} == {"complete"}
    for identity, mtime in files.items():      # what was complete was not run again
        row = next(r for r in rows if r["identity"] == identity)
        assert (table.parent / row["file"]).stat().st_mtime_ns == mtime
    again = sweep_cli(path, "--out", "out", "--resume", "-q", cwd=tmp_path)
    assert again.returncode == 0 and read_table(table) == rows


def test_a_failed_run_is_a_row_and_the_sweep_exits_1(tmp_path):
    write(tmp_path, "base.toml", LINEAR_BASE)
    path = write(tmp_path, "lin.toml", {"name": "lin", "base": "base.toml", "seeds": [0, 1],
                                        "analysis": {"loss": ["no_such_loss"]}})
    done = sweep_cli(path, "--out", "out", "--workers", "1", "-q", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    rows = read_table(last_line(done.stdout))
    assert len(rows) == 2 and {r["status"] for r in rows} == {"failed"}
    assert all("no_such_loss" in r["message"] and r["file"] for r in rows)


def test_resume_reads_a_table_written_before_the_sim_s_column(tmp_path):
    from plasticity.sweep.table import SweepTable

    table = SweepTable(tmp_path / "sweep.csv", ["rule.eta"])
    old_columns = [c for c in table.columns if c != "sim_s"]
    row = {c: "" for c in old_columns}
    row.update(run="0", identity="abc", seed="1", status="complete", **{"rule.eta": "0.1"})
    with open(table.path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, old_columns)
        writer.writeheader()
        writer.writerow(row)
    rows = table.existing_rows()
    assert [r["identity"] for r in rows] == ["abc"]
    table.start(rows)                       # rewritten with today's header
    with open(table.path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == table.columns
        assert [(r["identity"], r["sim_s"]) for r in reader] == [("abc", "")]
    # a table of another sweep (a column missing that was always there) is still refused
    with open(table.path, "w", newline="") as handle:
        csv.writer(handle).writerow([c for c in table.columns if c != "seed"])
    with pytest.raises(BadInput, match="columns are not those of this sweep"):
        table.existing_rows()
