"""Grade a folder of submissions: each in its own grading process, in parallel, one seed.

The reference is graded first at the batch's seed, which fills the reference cache, so every
submission after it reads the expected observations instead of recomputing them. A
submission whose grading crashes or overruns, or that holds nothing to grade, still gets its
rows, with the reason. The CSV has one row per student (a group submission one per member),
with what Gradescope's export says about them, and is rebuilt from `batch.json` in the output
folder, so that regrading one student (`--student`) updates their rows and keeps the rest.

Each grading is a `Task` that carries the submission's bytes and runs `grade_task` wherever it
is sent: a thread of this process's pool (the default), or a Dask worker on another machine
(`--scheduler`, `delivery/cluster.py`). Only the dispatch differs: the results come back to
`grade_batch`, which writes them (results, log, feedback, `batch.json`, the CSV and summary)
as they arrive, so an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import secrets
import socket
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from autograder import REPO_ROOT
from autograder.delivery.grade_process import grade_one
from autograder.delivery.gradescope_export import ExportMetadataError, read_export_metadata
from autograder.engine import results as report
from autograder.engine.labs import Lab, load_lab

REFERENCE_TIMEOUT = 900.0  # the reference computes every expected observation: be generous
MANIFEST = "batch.json"
# Every grading process runs torch with one thread: on a machine grading one submission per
# core, more threads per grading only compete (the submission's own worker has one already).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# A grading that fails through no fault of the submission (the grader stopped without
# grading, a worker's disk full...) is run once more, on the pool or on the cluster alike.
RETRIES = 1
CSV_EVERY = 5.0  # seconds between rewrites of the CSV and summary while the batch runs


class BatchError(ValueError):
    """The batch cannot run as asked; the message says what to do."""


@dataclass
class Student:
    name: str = ""
    email: str = ""
    sid: str = ""


@dataclass
class Submission:
    name: str
    path: Path
    students: list[Student] = field(default_factory=list)
    submitted_at: datetime | None = None
    gradescope_score: float | None = None


@dataclass
class Graded:
    submission: Submission
    results: dict[str, Any] | None
    problem: str = ""
    seconds: float = 0.0
    seed: int | None = None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "submission"


def export_root(folder: Path) -> Path:
    """`folder`, or the export folder inside it when `folder` is where the export's zip was
    unpacked (Gradescope's zip holds one folder, `assignment_<id>_export`)."""
    inside = [entry for entry in folder.iterdir() if not entry.name.startswith((".", "_"))]
    if not (folder / "submission_metadata.yml").is_file() and len(inside) == 1 and (
        inside[0] / "submission_metadata.yml"
    ).is_file():
        return inside[0]
    return folder


def find_submissions(folder: Path) -> list[Submission]:
    """Every zip and every folder directly inside `folder` is one submission; with a
    Gradescope export's `submission_metadata.yml`, its submitters, time and score go with it
    (and a submission it lists whose folder is missing is one too, graded as empty)."""
    folder = export_root(folder)
    try:
        metadata = read_export_metadata(folder)
    except ExportMetadataError as error:
        raise BatchError(str(error)) from None
    found = []
    entries = {entry.name: entry for entry in folder.iterdir()}
    for name in metadata:  # listed but absent: a row that says so, not a student left out
        entries.setdefault(name, folder / name)
    for entry in sorted(entries.values()):
        if entry.name.startswith((".", "_")) or entry.name == "submission_metadata.yml":
            continue
        if entry.is_symlink():  # a link could point at anything on this machine
            print(f"warning: {report.clean(entry.name)} is a symbolic link; not graded",
                  file=sys.stderr)
            continue
        if entry.is_dir() or entry.suffix.lower() == ".zip" or not entry.exists():
            about = metadata.get(entry.name, {})
            found.append(Submission(
                name=entry.name if entry.is_dir() else entry.stem,
                path=entry,
                students=[Student(**person) for person in about.get("submitters", [])],
                submitted_at=about.get("created_at"),
                gradescope_score=about.get("score"),
            ))
    return found


def _matches(submission: Submission, wanted: str) -> bool:
    wanted = wanted.strip().lower()
    keys = [submission.name, submission.path.name]
    for student in submission.students:
        keys += [student.name, student.email, student.sid]
    return any(wanted == key.lower() for key in keys if key)


def choose(submissions: list[Submission], wanted: str) -> Submission:
    """The one submission whose folder name, or a submitter's name, email or sid, is
    `wanted` (exactly, or else as part of a name)."""
    chosen = [s for s in submissions if _matches(s, wanted)] or [
        s for s in submissions
        if any(wanted.lower() in student.name.lower() for student in s.students)]
    if len(chosen) == 1:
        return chosen[0]
    if not chosen:
        raise BatchError(f"no submission is from {wanted!r}: give a submission folder's name, "
                         "or a student's name, email or sid as submission_metadata.yml has it")
    names = ", ".join(f"{s.name} ({'; '.join(p.name for p in s.students) or 'no names'})"
                      for s in chosen)
    raise BatchError(f"{wanted!r} matches {len(chosen)} submissions ({names}); give a "
                     "student's email or sid, or the submission folder's name")


def nothing_to_grade(lab: Lab, results: dict[str, Any], parts: list[str] | None) -> str:
    """Why a graded submission held none of the files of the parts graded ('' if it held some):
    an empty folder, a zip that would not open, files under other names."""
    files = results.get("extra_data", {}).get("files", {}).get(lab.name)
    if not files:
        return ""
    wanted = [name for name in lab.graded if Path(name).stem in (parts or lab.parts)]
    if any(name in files.get("found", {}) for name in wanted):
        return ""
    return "nothing to grade: " + ("; ".join(files.get("notes", [])) or
                                   f"none of {', '.join(wanted)} is in it")


def _lateness(submitted: datetime | None, due: datetime | None) -> str:
    """Gradescope's "H:MM:SS" past the due time, 0:00:00 when on time; '' when unknown."""
    if submitted is None or due is None:
        return ""
    late = max(submitted - due, timedelta(0))
    hours, rest = divmod(int(late.total_seconds()), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class GradingFailed(RuntimeError):
    """The grading stopped through no fault of the submission (the grader could not run, or
    wrote no results): retried once, then the submission's row says why."""


@dataclass(frozen=True)
class Task:
    """One grading, complete enough to run on any machine with the same checkout and
    environment: the submission travels as bytes (a folder as a tar archive, a zip as it is),
    so no folder of submissions or results needs to be shared."""

    lab: str
    name: str
    filename: str  # the folder's or zip's own name, kept: a note about a bad zip names it
    kind: str  # "folder", "zip" or "missing"
    data: bytes
    seed: int
    timeout: float
    extra: tuple[str, ...] = ()
    unsandboxed: bool = False


@dataclass(frozen=True)
class Outcome:
    """What a task sends back: the results file as the grader wrote it, and its log."""

    results: str | None
    problem: str
    seconds: float
    log: bytes = b""
    host: str = ""


def pack(submission: Submission) -> tuple[str, bytes]:
    """(kind, bytes) of a submission. Links inside a folder travel as links (not what they
    point at), and the grader refuses them on the worker as it would here."""
    path = submission.path
    if path.is_dir():
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(path, arcname=".", recursive=True)
        return "folder", buffer.getvalue()
    if path.is_file():
        return "zip", path.read_bytes()
    return "missing", b""


def unpack(task: Task, into: Path) -> Path:
    """The submission as it was, under its own name inside `into`."""
    into.mkdir(parents=True, exist_ok=True)
    target = into / task.filename
    if task.kind == "folder":
        target.mkdir()
        with tarfile.open(fileobj=io.BytesIO(task.data), mode="r:gz") as archive:
            archive.extractall(target, filter="tar")  # nothing outside target
    elif task.kind == "zip":
        target.write_bytes(task.data)
    return target


def cache_root() -> Path | None:
    """This machine's reference cache (what the grading process uses; None: disabled)."""
    root = os.environ.get("AUTOGRADER_REFERENCE_CACHE", str(REPO_ROOT / "build" / "cache"))
    return Path(root) if root else None


def _reference_marker(lab: Lab, seed: int, extra: Iterable[str]) -> Path | None:
    """The file that says this machine's cache holds the reference's observations for this
    batch (lab, seed, parts and -k, and the sources of the reference, tests and probes)."""
    root = cache_root()
    if root is None:
        return None
    digest = hashlib.sha256(json.dumps([lab.name, seed, list(extra)]).encode())
    for folder in (lab.reference_dir, lab.tests_dir):
        for path in sorted(folder.rglob("*.py")):
            digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return root / "batch-references" / f"{lab.name}-{digest.hexdigest()[:16]}.done"


@contextlib.contextmanager
def _machine_lock(path: Path) -> Iterator[None]:
    """One holder at a time among the processes of this machine (nothing where flock is
    missing: at worst two workers there compute the same reference observations)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as stream:
        fcntl.flock(stream, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(stream, fcntl.LOCK_UN)


def grade_reference(lab: Lab, seed: int, extra: Iterable[str], results_path: Path, *,
                    timeout: float, again: bool = True,
                    progress: Any = None) -> tuple[dict[str, Any] | None, str] | None:
    """Grade the reference at the batch's seed, filling this machine's reference cache, unless
    (`again=False`) a grading on this machine already did: then None. Processes of one machine
    take turns, so a machine computes the reference's observations once per batch."""
    marker = _reference_marker(lab, seed, extra)
    with _machine_lock(marker.with_suffix(".lock")) if marker else contextlib.nullcontext():
        if marker is not None and marker.is_file() and not again:
            return None
        graded = grade_one(lab, lab.reference_dir, results_path, seed=seed, timeout=timeout,
                           extra=list(extra), progress=progress, env=ONE_THREAD)
        if marker is not None and graded[0] is not None and not graded[1]:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(f"{lab.name} reference graded at seed {seed}\n")
        return graded


def grade_task(task: Task) -> Outcome:
    """Grade one submission in its own grading process (the wall-clock limit and sandbox of
    `grade_one`), after the reference if this machine has not graded it for this batch. Runs
    in a pool thread or on a Dask worker; raises GradingFailed when the grading did not run."""
    lab = load_lab(task.lab)
    from autograder.engine import sandbox

    if sandbox.landlock_abi(sandbox.simulated()) < 1 and not task.unsandboxed:
        raise GradingFailed(f"{socket.gethostname()} offers no Landlock: submitted code would "
                            "run unsandboxed there (grade with --unsandboxed to accept this)")
    with tempfile.TemporaryDirectory(prefix="autograder-task-") as scratch:
        folder = Path(scratch)
        grade_reference(lab, task.seed, task.extra, folder / "reference.json",
                        timeout=max(task.timeout, REFERENCE_TIMEOUT), again=False)
        source = unpack(task, folder / "submission")
        results_path = folder / "results.json"
        begin = time.monotonic()
        results, problem = grade_one(lab, source, results_path, seed=task.seed,
                                     timeout=task.timeout, extra=list(task.extra),
                                     env=ONE_THREAD)
        seconds = round(time.monotonic() - begin, 1)
        log = results_path.with_suffix(".log")
        log_bytes = log.read_bytes() if log.is_file() else b""
        overran = problem.startswith("grading took longer")  # the submission's doing
        if not overran and (results is None or problem):
            raise GradingFailed(problem)
        return Outcome(results_path.read_text() if results is not None else None, problem,
                       seconds, log_bytes, socket.gethostname())


def run_in_pool(tasks: list[Task], jobs: int) -> Iterator[tuple[Task, Outcome | BaseException]]:
    """Each task in a thread of this process (its grading in a child process), `jobs` at a
    time; (task, outcome or the error it raised) as each finishes, a failed one retried once."""
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        running: dict[Future, tuple[Task, int]] = {
            pool.submit(grade_task, task): (task, 0) for task in tasks}
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task, tries = running.pop(future)
                error = future.exception()
                if error is not None and tries < RETRIES:
                    running[pool.submit(grade_task, task)] = (task, tries + 1)
                    continue
                yield task, future.result() if error is None else error
    finally:  # interrupted (Ctrl-C): start no more gradings; batch.json has what finished
        pool.shutdown(wait=True, cancel_futures=True)


def why_not_graded(error: BaseException) -> str:
    if isinstance(error, GradingFailed) and str(error):
        return str(error)
    return f"could not be graded ({type(error).__name__}: {error})"


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def grade_batch(
    lab: Lab,
    folder: Path,
    out: Path,
    *,
    jobs: int | None = None,
    seed: int | None = None,
    timeout: float = 900.0,
    parts: list[str] | None = None,
    keyword: str | None = None,
    student: str | None = None,
    due: datetime | None = None,
    scheduler: str | None = None,
    unsandboxed: bool = False,
) -> tuple[Graded | None, list[Graded]]:
    """Grade the reference, then every submission; returns (the reference's row, the rows).
    With `student`, regrade only that student's submission into the batch already in `out`
    (at its seed unless `seed` is given); the reference's row is then None. A batch in `out`
    that was interrupted resumes (its seed, the submissions it had not graded) unless `seed`
    asks for another. `scheduler` ("tcp://host:port", or "local" for a Dask cluster on this
    machine) sends the gradings to a Dask cluster instead of this process's pool."""
    started = time.monotonic()
    submissions = find_submissions(folder)
    manifest_path = out / MANIFEST
    earlier = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    same_batch = earlier is not None and earlier["lab"] == lab.name and \
        earlier["parts"] == (parts or []) and earlier.get("keyword") == keyword
    resumed = False
    if student:
        if earlier is None:
            raise BatchError(f"{out} holds no earlier batch to regrade into; grade the whole "
                             "folder first (leave out STUDENT), or give the OUT of that batch")
        if not same_batch:
            raise BatchError(f"the batch in {out} graded {earlier['lab']} "
                             f"(parts: {', '.join(earlier['parts']) or 'all'}"
                             f"{'; -k ' + earlier['keyword'] if earlier.get('keyword') else ''})"
                             "; regrade with the same lab and PARTS, or give another OUT")
        manifest = earlier
        seed = manifest["seed"] if seed is None else seed
        due = due or (datetime.fromisoformat(manifest["due"]) if manifest.get("due") else None)
        todo = [choose(submissions, student)]
    elif same_batch and not earlier.get("complete", True) and seed in (None, earlier["seed"]):
        manifest, seed, resumed = earlier, earlier["seed"], True
        due = due or (datetime.fromisoformat(manifest["due"]) if manifest.get("due") else None)
        todo = [s for s in submissions  # graded: at the batch's seed, or regraded at another
                if "seed" not in manifest["submissions"].get(s.name, {})]
        print(f"Resuming the interrupted batch in {out} at seed {seed}: "
              f"{len(submissions) - len(todo)} of {len(submissions)} submission(s) already "
              "graded", flush=True)
    else:
        seed = secrets.randbelow(2**31) if seed is None else seed
        manifest = {"lab": lab.name, "parts": parts or [], "keyword": keyword, "seed": seed,
                    "submissions": {}}
        todo = submissions
        if (out / "grades.csv").is_file():  # never lose a CSV a TA may already have used
            kept = out / f"grades-{time.strftime('%Y%m%d-%H%M%S')}.csv"
            (out / "grades.csv").rename(kept)
            print(f"The previous grades.csv is kept as {kept}", flush=True)
    manifest["due"] = due.isoformat() if due else None
    extra = [argument for part in parts or [] for argument in ("--part", part)]
    extra += ["-k", keyword] if keyword else []
    jobs = jobs or os.cpu_count() or 1
    out.mkdir(parents=True, exist_ok=True)
    client = None
    if scheduler:  # before the reference: a wrong address is told at once
        from autograder.delivery import cluster

        try:
            client = cluster.connect(scheduler, jobs)
        except cluster.ClusterError as error:
            raise BatchError(str(error)) from None

    reference_row = None
    if not student:
        where = f"on the Dask cluster {scheduler}" if scheduler else \
            f"with {jobs} parallel job(s)"
        first = "the reference, unless this machine graded it for this batch already" \
            if resumed else "the reference, which computes every expected output"
        print(f"Grading {len(todo)} submission(s) of {lab.name} {where}, seed {seed}; first "
              f"{first}", flush=True)
        graded_reference = grade_reference(
            lab, seed, extra, out / "_reference.json", timeout=max(timeout, REFERENCE_TIMEOUT),
            again=not resumed, progress=lambda line: print(f"  reference: {line}", flush=True))
        if graded_reference is None:  # resumed, and this machine's cache holds it already
            kept_reference = out / "_reference.json"
            graded_reference = (json.loads(kept_reference.read_text())
                                if kept_reference.is_file() else None, "")
        reference, problem = graded_reference
        reference_row = Graded(Submission("(reference)", lab.reference_dir), reference, problem,
                               time.monotonic() - started, seed)
        if reference is None or reference["score"] < sum(t["max_score"]
                                                         for t in reference["tests"]):
            score = "no score" if reference is None else f"{reference['score']:g}"
            print(f"warning: the reference itself scored {score} "
                  f"({problem or 'see _reference.json'})", file=sys.stderr)
        print(f"  reference outputs computed in {time.monotonic() - started:.1f} s", flush=True)
    else:
        print(f"Regrading {todo[0].name} of {lab.name} at seed {seed} into {out}", flush=True)

    slugs = {entry["slug"] for entry in manifest["submissions"].values()}
    for submission in todo:  # one results file each, even when two names slug alike
        if submission.name not in manifest["submissions"]:
            slug = _slug(submission.name)
            while slug in slugs:
                slug += "_"
            slugs.add(slug)
            manifest["submissions"][submission.name] = {"slug": slug}
    if not student:  # a regrade of one student leaves the batch as complete as it was
        manifest["complete"] = False
    _write_atomically(manifest_path, json.dumps(manifest, indent=2) + "\n")
    rows = {item.submission.name: item for item in collect(submissions, manifest, out)}
    by_name = {submission.name: submission for submission in submissions}

    def write_tables() -> None:
        graded = [rows[s.name] for s in submissions if s.name in rows]
        write_csv(graded, out / "grades.csv", due)
        (out / "summary.txt").write_text(summary(graded, time.monotonic() - started,
                                                 seed=manifest["seed"], due=due))

    def record(task: Task, outcome: Outcome | BaseException) -> Graded:
        """The one writer of a graded submission: wherever it was graded, its files and row."""
        submission = by_name[task.name]
        entry = manifest["submissions"][task.name]
        path = out / f"{entry['slug']}.json"
        if isinstance(outcome, Outcome):
            results = json.loads(outcome.results) if outcome.results is not None else None
            problem, seconds = outcome.problem, outcome.seconds
            path.with_suffix(".log").write_bytes(outcome.log)
        else:
            results, problem, seconds = None, why_not_graded(outcome), 0.0
        if results is not None and not problem:
            problem = nothing_to_grade(lab, results, parts)
        if results is not None:
            _write_atomically(path, outcome.results)
        elif path.exists():
            path.unlink()  # a stale file from an earlier run must not stand in for this one
        entry.update(problem=problem, seed=seed, seconds=seconds)
        if isinstance(outcome, Outcome) and scheduler:
            entry["host"] = outcome.host
        _write_atomically(manifest_path, json.dumps(manifest, indent=2) + "\n")
        item = rows[task.name] = Graded(submission, results, problem, seconds, seed)
        names = "; ".join(p.name for p in submission.students) or submission.name
        (out / f"{entry['slug']}.md").write_text(report.format_feedback(
            results, title=f"{lab.title}: {names}", problem=problem))
        return item

    tasks = []
    for submission in todo:
        kind, data = pack(submission)
        tasks.append(Task(lab.name, submission.name, submission.path.name, kind, data, seed,
                          timeout, tuple(extra), unsandboxed))
    if client is not None:
        from autograder.delivery import cluster

        finishing = cluster.run(client, grade_task, tasks, retries=RETRIES)
    else:
        finishing = run_in_pool(tasks, jobs)
    from tqdm import tqdm

    last_tables = time.monotonic()
    with tqdm(total=len(tasks), unit="submission", desc="graded", file=sys.stderr,
              disable=None, dynamic_ncols=True) as bar:
        for count, (task, outcome) in enumerate(finishing, start=1):
            item = record(task, outcome)
            bar.update(1)
            score = f"{item.results['score']:g}" if item.results else "-"
            bar.write(f"  [{count}/{len(tasks)}] {task.name}: {score} {item.problem}".rstrip(),
                      file=sys.stdout)
            sys.stdout.flush()
            if time.monotonic() - last_tables >= CSV_EVERY:
                write_tables()
                last_tables = time.monotonic()
    if not student:
        manifest["complete"] = True
    _write_atomically(manifest_path, json.dumps(manifest, indent=2) + "\n")
    write_tables()
    todo_names = {s.name for s in todo}
    return reference_row, [rows[s.name] for s in submissions
                           if s.name in rows and s.name in todo_names]


def collect(submissions: list[Submission], manifest: dict[str, Any], out: Path) -> list[Graded]:
    """The batch's rows as they stand: each submission the manifest knows, with its results
    file; a submission in the folder that was never graded is left out."""
    graded = []
    for submission in submissions:
        entry = manifest["submissions"].get(submission.name)
        if entry is None or "seed" not in entry:
            continue
        path = out / f"{entry['slug']}.json"
        results = json.loads(path.read_text()) if path.is_file() else None
        graded.append(Graded(submission, results, entry.get("problem", ""),
                             entry.get("seconds", 0.0), entry["seed"]))
    return graded


def _test_names(graded: list[Graded]) -> list[str]:
    names: list[str] = []
    for item in graded:
        for test in (item.results or {}).get("tests", []):
            if test["name"] not in names:
                names.append(test["name"])
    return names


def _number(value: float | None) -> str:
    return "" if value is None else f"{round(value, 4):g}"


def write_csv(graded: list[Graded], path: Path, due: datetime | None = None) -> None:
    """One row per student (a submission without names gets one row), then one column per
    test. `difference` is our total minus Gradescope's score, where the export gives one."""
    names = _test_names(graded)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["submission", "sid", "name", "email", "submitted_at", "lateness",
                         "total", "max_score", "gradescope_score", "difference", "problem",
                         "seed", *map(report.clean, names)])
        for item in graded:
            tests = (item.results or {}).get("tests", [])
            scores = {t["name"]: t["score"] for t in tests}
            total = item.results["score"] if item.results else 0.0
            ours = item.submission
            difference = None if ours.gradescope_score is None else \
                total - ours.gradescope_score
            for person in ours.students or [Student()]:
                writer.writerow([  # names from folders and exports: shown, never obeyed
                    *map(report.clean, (ours.name, person.sid, person.name, person.email)),
                    ours.submitted_at.isoformat() if ours.submitted_at else "",
                    _lateness(ours.submitted_at, due),
                    _number(total), _number(sum(t["max_score"] for t in tests)),
                    _number(ours.gradescope_score), _number(difference),
                    report.clean(item.problem), item.seed,
                    *[_number(scores.get(name, 0.0)) for name in names],
                ])


def summary(graded: list[Graded], seconds: float, *, seed: int,
            due: datetime | None = None) -> str:
    students = sum(len(item.submission.students) or 1 for item in graded)
    lines = [f"{len(graded)} submission(s), {students} student(s); seed {seed}; "
             f"this run took {seconds:.1f} s"]
    other_seeds = [item for item in graded if item.seed != seed]
    if other_seeds:
        lines.append("Regraded at another seed: " + ", ".join(
            f"{item.submission.name} (seed {item.seed})" for item in other_seeds))
    scored = [item for item in graded if item.results]
    if scored:
        maximum = max(sum(t["max_score"] for t in item.results["tests"]) for item in scored) or 1
        buckets = Counter(min(int(10 * item.results["score"] / maximum), 9) for item in scored)
        lines.append("Score histogram (percent of the maximum):")
        for bucket in range(10):
            count = buckets.get(bucket, 0)
            lines.append(f"  {bucket * 10:>3}-{bucket * 10 + 9 if bucket < 9 else 100:<3} "
                         f"{'#' * count} {count}")
        failures = Counter(
            test["name"] for item in scored for test in item.results["tests"]
            if test["status"] == "failed"
        )
        if failures:
            lines.append("Tests failed most often:")
            lines.extend(f"  {count:>4}  {name}" for name, count in failures.most_common(10))
    changed = [item for item in graded if item.submission.gradescope_score is not None
               and abs((item.results or {}).get("score", 0.0)
                       - item.submission.gradescope_score) > 1e-6]
    if changed:
        lines.append("Scores that differ from Gradescope's (ours / Gradescope's):")
        lines.extend(f"  {item.submission.name}: {_number((item.results or {}).get('score', 0.0))}"
                     f" / {_number(item.submission.gradescope_score)}" for item in changed)
    if due is not None:
        late = [item for item in graded
                if _lateness(item.submission.submitted_at, due) not in ("", "0:00:00")]
        lines.append(f"Due {due.isoformat()}: {len(late)} late submission(s)" + "".join(
            f"\n  {item.submission.name}: "
            f"{_lateness(item.submission.submitted_at, due)} late" for item in late))
    problems = [item for item in graded if item.problem]
    if problems:
        lines.append("Submissions with grading problems:")
        lines.extend(report.clean(f"  {item.submission.name}: {item.problem}")
                     for item in problems)
    return "\n".join(lines) + "\n"


def format_scores(graded: list[Graded]) -> str:
    """A compact table: one row per submission, one column per part."""
    parts: list[str] = []
    for item in graded:
        for part in report.part_totals(item.results or {}):
            if part not in parts:
                parts.append(part)
    width = max([len(item.submission.name) for item in graded] + [10])
    header = f"{'submission':<{width}}  " + "  ".join(f"{p:>10}" for p in parts) + "       total"
    lines = [header, "-" * len(header)]
    for item in graded:
        totals = report.part_totals(item.results or {})
        cells = [f"{totals[p][0]:>4g} / {totals[p][1]:<3g}" if p in totals else f"{'-':>10}"
                 for p in parts]
        if item.results:
            maximum = sum(t["max_score"] for t in item.results["tests"])
            total = f"{item.results['score']:g} / {maximum:g}"
        else:
            total = "not graded"
        line = f"{report.clean(item.submission.name):<{width}}  " + "  ".join(cells) \
            + f"  {total:>10}"
        if item.problem:
            line += f"  ({item.problem})"
        lines.append(line)
    return "\n".join(lines)
