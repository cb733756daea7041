"""Run a sweep on Dask: a local cluster of worker processes, or an existing cluster.

:func:`run_sweep` submits one task per point (:func:`~plasticity.sweep.worker.run_point`:
run, analyse, return the rows), appends the rows to the table as tasks finish, and
returns the exit code:

- ``0``: every run ended (complete or diverged); ``1``: some run failed;
  ``130``: stopped by SIGINT/SIGTERM. (``2``, a bad sweep file, is raised before.)

Default engine: a ``distributed.LocalCluster`` on 127.0.0.1 with one process per worker
and one thread each (Brian2 keeps global state per process: one run at a time per
process), ``workers`` of them (default: the cores), no dashboard. With ``scheduler``
(``tcp://HOST:PORT``) the tasks go to that cluster instead (its workers must have this
package installed and see the output folder at the same path: a shared file system).

On SIGINT/SIGTERM: the tasks not started are cancelled; the running ones are stopped
at the end of their current step (``brian2.stop()`` on every worker) and return an
``interrupted`` row; any still running after :data:`STOP_GRACE_S` are abandoned (a
local cluster is shut down, killing them) and their files are marked ``interrupted``
here. The table then holds one row per run that finished or was interrupted.
"""

import os
import signal
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from ..errors import BadInput
from .table import ENDED, SweepTable
from .worker import brian2_plugin, mark_interrupted, request_stop, run_point

__all__ = ["run_sweep", "STOP_GRACE_S"]

#: seconds the running tasks get to stop and report after SIGINT/SIGTERM
STOP_GRACE_S = 15.0


#: Dask settings of the workers of a local cluster. Dask's statistical profiler samples
#: each worker's stack every 10 ms and keeps one call tree per second of the worker's
#: life (up to ``distributed.admin.low-level-log-length``, 1000): a worker's memory
#: then grows with its running time (≈ 0.35 MiB per 1 s Oja run, 1.8 MiB per 150 s BCM
#: run) for its first ~17 minutes. Nothing shows those trees (there is no dashboard),
#: so the workers started here do not sample.
LOCAL_WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


def _local_cluster(n_workers):
    import logging

    import dask
    from distributed import LocalCluster

    # the nannies hand the configuration current at their creation to their workers
    with dask.config.set(LOCAL_WORKER_CONFIG):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            host="127.0.0.1", dashboard_address=None,
                            silence_logs=logging.ERROR, worker_dashboard_address=None)


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt in the main thread, like SIGINT."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:   # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _progress(total, quiet, name):
    from tqdm import tqdm

    return tqdm(total=total, unit="run", desc=name, file=sys.stderr, disable=quiet,
                dynamic_ncols=True)


def plan(sweep, out, resume):
    """``(table, todo)``: the sweep table (header written, rows of ended runs kept when
    resuming) and the points still to run. BadInput when the table exists and
    ``resume`` is false."""
    folder = Path(out).resolve() / sweep.name
    table = SweepTable(folder / "sweep.csv", sweep.keys)
    if table.path.exists() and not resume:
        raise BadInput(f"{table.path} exists: pass --resume to run only the points without "
                       "a complete or diverged row, or choose another --out")
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"{folder} exists and is not a folder")
    rows = table.existing_rows() if resume else []
    ours = {p.identity for p in sweep.points}
    done = {r["identity"] for r in rows if r["status"] in ENDED and r["identity"] in ours}
    kept = [r for r in rows if r["status"] in ENDED]
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    table.start(kept)
    return table, [p for p in sweep.points if p.identity not in done]


def run_sweep(sweep, out="results", workers=None, scheduler=None, resume=False, quiet=False,
              log=None):
    """Run ``sweep`` (:class:`~plasticity.sweep.spec.Sweep`); ``(table path, exit code)``."""
    log = log or (lambda text: print(text, file=sys.stderr))
    table, todo = plan(sweep, out, resume)
    folder = table.path.parent
    if not todo:
        log(f"plasticity sweep: nothing to run ({len(sweep.points)} points already in {table.path})")
        return table.path, _exit_code(table)
    token = uuid.uuid4().hex
    analysis = {"loss": sweep.loss_specs(), "drift": sweep.spec.analysis.drift,
                "window": sweep.spec.analysis.window}
    tasks = {}
    for point in todo:
        path = folder / "runs" / point.file_name
        if path.exists():
            path.unlink()     # what an interrupted or failed earlier attempt left
        tasks[point.identity] = {
            "token": token, "index": point.index, "identity": point.identity,
            "seed": point.seed, "experiment": point.experiment, "path": str(path),
            "file": str(path.relative_to(folder)), "analysis": analysis}
    values = {p.identity: p.values for p in todo}

    from distributed import Client, as_completed

    cluster = None
    interrupted = False
    bar = _progress(len(todo), quiet, sweep.name)
    with _sigterm_as_interrupt():
        try:
            if scheduler:
                try:
                    client = Client(scheduler, timeout="10s")
                except (OSError, TimeoutError) as error:
                    raise BadInput(f"--scheduler {scheduler}: cannot connect ({error})") from None
            else:
                n = workers or os.cpu_count() or 1
                cluster = _local_cluster(min(n, len(todo)))
                client = Client(cluster)
            if any(getattr(p.experiment, "kind", None) != "dynamics" for p in todo):
                client.register_plugin(brian2_plugin())
            futures = {client.submit(run_point, task,
                                     pure=False): identity for identity, task in tasks.items()}
            pending = set(futures.values())
            try:
                for future in as_completed(list(futures)):
                    identity = futures.pop(future)
                    table.append(_rows_of(future, tasks[identity]), values[identity])
                    future.release()    # the worker can forget the result now
                    pending.discard(identity)
                    bar.update(1)
            except KeyboardInterrupt:
                interrupted = True
                bar.close()
                log("plasticity sweep: interrupted; stopping the running runs")
                _stop(client, futures, token, table, tasks, values, pending, log)
            finally:
                try:
                    client.close(timeout=5)
                except Exception:
                    pass
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            if cluster is not None:
                try:
                    cluster.close(timeout=10)
                except Exception:
                    pass
    if interrupted:
        # files of runs killed with the cluster, or left running elsewhere
        _mark_leftovers(tasks, values, table)
        return table.path, 130
    return table.path, _exit_code(table)


def _rows_of(future, task):
    """The rows a finished future returned, or a ``failed`` row (worker died...)."""
    try:
        return future.result()
    except Exception as error:
        return [{"run": task["index"], "identity": task["identity"], "seed": task["seed"],
                 "status": "failed",
                 "message": f"task lost: {type(error).__name__}: {error}".splitlines()[0],
                 "file": task["file"] if os.path.exists(task["path"]) else ""}]


def _stop(client, futures, token, table, tasks, values, pending, log):
    """Cancel what has not started, stop what runs, write the rows that come back."""
    from distributed import wait

    running = [f for f in futures if futures[f] in pending]
    try:
        processing = {key for keys in client.processing().values() for key in keys}
    except Exception:
        processing = {f.key for f in running}
    waiting = [f for f in running if f.key not in processing]
    started = [f for f in running if f.key in processing]
    client.cancel(waiting)
    for future in waiting:
        pending.discard(futures[future])
    try:
        client.run(request_stop, token, wait=True)
    except Exception:
        pass
    deadline = time.monotonic() + STOP_GRACE_S
    try:
        wait(started, timeout=max(0.1, deadline - time.monotonic()))
    except Exception:
        pass
    for future in started:
        if future.done():
            identity = futures[future]
            table.append(_rows_of(future, tasks[identity]), values[identity])
            pending.discard(identity)
    client.cancel(started)


def _mark_leftovers(tasks, values, table):
    """Rows (and file status) for the runs that were going on and did not report."""
    rows = {r["identity"] for r in table.existing_rows()}
    for identity, task in tasks.items():
        if identity in rows:
            continue
        if os.path.exists(task["path"]):
            message = "sweep stopped (SIGINT/SIGTERM) while this run was going on"
            mark_interrupted(task["path"], message)
            table.append([{"run": task["index"], "identity": identity, "seed": task["seed"],
                           "status": "interrupted", "message": message, "file": task["file"]}],
                         values[identity])


def _exit_code(table):
    rows = table.existing_rows()
    return 1 if any(r["status"] == "failed" for r in rows) else 0
