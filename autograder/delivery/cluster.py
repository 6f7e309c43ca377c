"""The batch's gradings on a Dask cluster (`make grade ... SCHEDULER=tcp://host:8786`, or
`SCHEDULER=local` for a `LocalCluster` on this machine): the same `batch.grade_task`, the same
results, written by the same `batch.grade_batch`; only the dispatch differs from the pool.

Dask (the `cluster` extra) is imported here only, and this module only when a scheduler is
asked for. What Dask does and does not do for us:

- `pure=False`: Dask would otherwise key a task by its function and arguments and hand back
  a result it still holds (a regrade after a test changed would return the old score).
- No per-task time limit in Dask: the grading process's own wall-clock limit applies
  (`grade_one`), as in the pool.
- A worker lost mid-grading (killed, its machine gone): the scheduler gives its tasks to
  other workers. A task that was running on `distributed.scheduler.allowed-failures` + 1
  workers (default 3 + 1) as each died is given up with `KilledWorker`: a submission that
  kills its worker is not retried forever, and gets a "could not be graded" row.
- `retries=1`: a task that raised (`GradingFailed`: the grader did not run, through no fault
  of the submission) runs once more, possibly elsewhere; the pool does the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

INSTALL = ("Dask is not installed: `.venv/bin/pip install -e '.[cluster]'` (or `pip install "
           "distributed`), on this machine and on every worker")


class ClusterError(ValueError):
    """No cluster to grade on; the message says what to do."""


class GradingLost(RuntimeError):
    """The task's workers died while grading it, too many times to try again."""


def connect(scheduler: str, workers: int) -> Any:
    """A `distributed.Client` of the scheduler at `scheduler` ("tcp://host:port"), or of a new
    LocalCluster of `workers` workers, one thread each, for "local"."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError(INSTALL) from None
    if scheduler == "local":
        return Client(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None))
    if "://" not in scheduler:
        raise ClusterError(f"--scheduler {scheduler!r}: give the scheduler's address as "
                           "tcp://HOST:PORT (as `dask scheduler` prints it), or 'local'")
    try:
        return Client(scheduler, timeout="30s")
    except OSError as error:
        raise ClusterError(f"no Dask scheduler answers at {scheduler} ({error}); start one with "
                           "`dask scheduler` and workers with `dask worker ADDRESS` (README.md, "
                           "the TA section)") from None


def run(client: Any, function: Callable[[Any], Any], tasks: list[Any], *,
        retries: int) -> Iterator[tuple[Any, Any]]:
    """`function(task)` for each task on the cluster; (task, its result or the error it ended
    with) as each finishes. Closes the client (and a local cluster) at the end."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    local = client.cluster  # None for a cluster started elsewhere
    try:
        workers = client.scheduler_info().get("workers", {})
        hosts = {info.get("host") for info in workers.values()}
        print(f"  cluster: {len(workers)} worker(s) on {len(hosts)} machine(s), scheduler "
              f"{client.scheduler.address}", flush=True)
        if not workers:
            print("  cluster: no worker yet; the gradings wait for one (`dask worker "
                  f"{client.scheduler.address}` on a machine with this checkout)", flush=True)
        futures = client.map(function, tasks, pure=False, retries=retries)
        by_key = {future.key: task for future, task in zip(futures, tasks, strict=True)}
        for future in as_completed(futures):
            task = by_key[future.key]
            try:
                outcome = future.result()
            except KilledWorker as error:
                outcome = GradingLost(f"every worker that graded it died, "
                                      f"{error.allowed_failures + 1} in turn")
            except Exception as error:  # noqa: BLE001 - the submission's row says why
                outcome = error
            future.release()
            yield task, outcome
    finally:
        client.close()
        if local is not None:
            local.close()
        sys.stdout.flush()
