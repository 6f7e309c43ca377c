"""Issue 26: the batch regrade on a Dask cluster gives the pool's CSV. A real `dask scheduler`
and two `dask worker` processes on 127.0.0.1 (separate processes, a bounded lifetime, killed at
the end whatever happens) grade a small batch through the scheduler's tcp address while one
worker is killed in the middle of a grading; `make grade SCHEDULER=local` does the same on a
LocalCluster; an interrupted pool batch resumes without regrading what it finished.

Kept cheap (about a minute on two cores): three submissions, one part, three tests (-k), one
reference cache for every run, so each machine's reference grading is a cache hit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder import REPO_ROOT

pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")  # a dependency of distributed

SEED = "11"
NARROW = ["--part", "basics", "-k", "pairwise or one_hot or patchify"]
DASK = str(Path(sys.executable).with_name("dask"))
LIFETIME = "240s"  # the workers and scheduler stop by themselves even if cleanup failed


def make_submissions(folder: Path) -> Path:
    """A complete submission, a partial one, and a zip that does not open."""
    for name, source in (("complete", REPO_ROOT / "reference" / "lab1" / "basics.py"),
                         ("partial", REPO_ROOT / "examples" / "lab1" / "partial" / "basics.py")):
        (folder / name).mkdir(parents=True)
        (folder / name / "basics.py").write_text(source.read_text())
    (folder / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    return folder


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "AUTOGRADER_REFERENCE_CACHE": str(tmp_path / "cache")}


def batch(tmp_path: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "autograder", "batch", "lab1", str(tmp_path / "submissions"),
            "--out", str(out), "--jobs", "2", *NARROW, "--timeout", "120", *args]


def run(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=300, env=environment(tmp_path))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


def start(command: list[str], tmp_path: Path, log: str) -> subprocess.Popen:
    with open(tmp_path / log, "wb") as stream:
        return subprocess.Popen(command, cwd=tmp_path, stdout=stream, stderr=subprocess.STDOUT,
                                env=environment(tmp_path), start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


def gradings_under(pid: int) -> list[psutil.Process]:
    """The `python -m autograder grade` processes a worker started."""
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if "grade" in child.cmdline():
                found.append(child)
        except psutil.Error:
            pass
    return found


@pytest.mark.slow
def test_a_cluster_that_loses_a_worker_gives_the_pool_csv(tmp_path):
    make_submissions(tmp_path / "submissions")
    run(batch(tmp_path, tmp_path / "pool", "--seed", SEED), tmp_path)
    pool_csv = (tmp_path / "pool" / "grades.csv").read_text()
    assert pool_csv.count("\n") == 4 and ",11," in pool_csv

    # Interrupted after two of three: the batch resumes at its seed and grades the third only.
    manifest_path = tmp_path / "pool" / "batch.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["complete"] = False
    for key in ("seed", "problem", "seconds"):
        manifest["submissions"]["partial"].pop(key)
    manifest_path.write_text(json.dumps(manifest))
    (tmp_path / "pool" / "partial.json").unlink()
    resumed = run(batch(tmp_path, tmp_path / "pool"), tmp_path).stdout
    assert "Resuming the interrupted batch" in resumed and "2 of 3 submission(s)" in resumed
    assert "[1/1] partial" in resumed and "reference: " not in resumed
    assert (tmp_path / "pool" / "grades.csv").read_text() == pool_csv
    assert json.loads(manifest_path.read_text())["complete"] is True

    processes: list[subprocess.Popen] = []
    try:
        scheduler_file = tmp_path / "scheduler.json"
        processes.append(start([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                "--no-dashboard", "--scheduler-file", str(scheduler_file),
                                "--idle-timeout", LIFETIME], tmp_path, "scheduler.log"))
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        workers = [start([DASK, "worker", address, "--name", f"worker-{n}", "--nthreads", "1",
                          "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                          "--death-timeout", "30", "--lifetime", LIFETIME],
                         tmp_path, f"worker-{n}.log") for n in range(2)]
        processes += workers
        driver = start(batch(tmp_path, tmp_path / "cluster", "--seed", SEED,
                             "--scheduler", address), tmp_path, "driver.log")
        processes.append(driver)
        # Kill the first worker while it grades (its grading process started by the task).
        orphans: list[psutil.Process] = []
        deadline = time.monotonic() + 180
        while driver.poll() is None and time.monotonic() < deadline and not orphans:
            orphans = gradings_under(workers[0].pid)
            time.sleep(0.05)
        assert orphans, "the first worker never graded a submission"
        stop(workers[0])
        driver.wait(timeout=240)
        output = (tmp_path / "driver.log").read_text()
        assert driver.returncode == 0, output
        assert "cluster: 2 worker(s) on 1 machine(s)" in output
        assert (tmp_path / "cluster" / "grades.csv").read_text() == pool_csv, output
        # The killed worker's grading process died with it (no orphan grading on).
        time.sleep(1)
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans)
        hosts = {entry.get("host") for entry in
                 json.loads((tmp_path / "cluster" / "batch.json").read_text())
                 ["submissions"].values()}
        assert len(hosts) == 1 and None not in hosts
    finally:
        for process in reversed(processes):
            stop(process)

    local = tmp_path / "local"
    completed = subprocess.run(
        ["make", "grade", "lab1", f"PYTHON={sys.executable}",
         f"SUBMISSIONS={tmp_path / 'submissions'}", f"OUT={local}", "SCHEDULER=local",
         "JOBS=2", "PARTS=basics", "K=pairwise or one_hot or patchify", f"SEED={SEED}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=environment(tmp_path))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "on the Dask cluster local" in completed.stdout
    assert (local / "grades.csv").read_text() == pool_csv


def test_the_pool_retries_a_failed_grading_once(monkeypatch):
    """A grading that fails through no fault of the submission runs once more; a second
    failure is the submission's row (as `retries=1` does on the cluster)."""
    from autograder.delivery import batch as batch_module

    calls: list[str] = []

    def flaky_grading(task):
        calls.append(task.name)
        if task.name == "always" or calls.count(task.name) == 1:
            raise batch_module.GradingFailed("the grader stopped with exit code 1")
        return batch_module.Outcome(None, "", 0.0)

    monkeypatch.setattr(batch_module, "grade_task", flaky_grading)
    tasks = [batch_module.Task("lab1", name, name, "missing", b"", 1, 60.0)
             for name in ("once", "always")]
    outcomes = {task.name: outcome for task, outcome in batch_module.run_in_pool(tasks, 2)}
    assert sorted(calls) == ["always", "always", "once", "once"]
    assert isinstance(outcomes["once"], batch_module.Outcome)
    assert batch_module.why_not_graded(outcomes["always"]) == \
        "the grader stopped with exit code 1"


def test_a_task_that_kills_its_workers_is_given_up_and_the_others_are_graded(tmp_path):
    """Dask gives a task up (KilledWorker) once more workers died running it than the
    scheduler's allowed-failures: its row says it could not be graded; a task that raised is
    retried once. One worker taking one task at a time, so no innocent task shares a death."""
    import dask
    from distributed import Client, LocalCluster

    from autograder.delivery import cluster
    from autograder.delivery.batch import why_not_graded

    counter = tmp_path / "attempts"

    def grading(name):
        if name == "killer":
            os._exit(1)  # the whole worker process, as an out-of-memory kill would
        if name == "raises-once":
            with open(counter, "a") as stream:
                stream.write("x")
            if counter.read_text() == "x":
                raise RuntimeError("disk full")
        return f"graded {name}"

    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0}):
        client = Client(LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                     dashboard_address=None))
        outcomes = dict(cluster.run(client, grading, ["first", "killer", "raises-once", "last"],
                                    retries=1))
    assert outcomes["first"] == "graded first" and outcomes["last"] == "graded last"
    assert outcomes["raises-once"] == "graded raises-once" and counter.read_text() == "xx"
    assert why_not_graded(outcomes["killer"]) == ("could not be graded (GradingLost: every "
                                                  "worker that graded it died, 1 in turn)")
