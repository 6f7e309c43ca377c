"""Grade a folder of submissions: each in its own grading process, in parallel, one seed.

The reference is graded first at the batch's seed, which fills the reference cache, so every
submission after it reads the expected observations instead of recomputing them. A
submission whose grading crashes or overruns, or that holds nothing to grade, still gets its
rows, with the reason. The CSV has one row per student (a group submission one per member),
with what Gradescope's export says about them, and is rebuilt from `batch.json` in the output
folder, so that regrading one student (`--student`) updates their rows and keeps the rest.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from autograder.delivery.grade_process import grade_one
from autograder.delivery.gradescope_export import ExportMetadataError, read_export_metadata
from autograder.engine import results as report
from autograder.engine.labs import Lab

REFERENCE_TIMEOUT = 900.0  # the reference computes every expected observation: be generous
MANIFEST = "batch.json"


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


def grade_batch(
    lab: Lab,
    folder: Path,
    out: Path,
    *,
    jobs: int | None = None,
    seed: int | None = None,
    timeout: float = 900.0,
    parts: list[str] | None = None,
    student: str | None = None,
    due: datetime | None = None,
) -> tuple[Graded | None, list[Graded]]:
    """Grade the reference, then every submission; returns (the reference's row, the rows).
    With `student`, regrade only that student's submission into the batch already in `out`
    (at its seed unless `seed` is given); the reference's row is then None."""
    started = time.monotonic()
    submissions = find_submissions(folder)
    manifest_path = out / MANIFEST
    if student:
        if not manifest_path.is_file():
            raise BatchError(f"{out} holds no earlier batch to regrade into; grade the whole "
                             "folder first (leave out STUDENT), or give the OUT of that batch")
        manifest = json.loads(manifest_path.read_text())
        if manifest["lab"] != lab.name or manifest["parts"] != (parts or []):
            raise BatchError(f"the batch in {out} graded {manifest['lab']} "
                             f"(parts: {', '.join(manifest['parts']) or 'all'}); regrade with the "
                             "same lab and PARTS, or give another OUT")
        seed = manifest["seed"] if seed is None else seed
        due = due or (datetime.fromisoformat(manifest["due"]) if manifest.get("due") else None)
        todo = [choose(submissions, student)]
    else:
        seed = secrets.randbelow(2**31) if seed is None else seed
        manifest = {"lab": lab.name, "parts": parts or [], "seed": seed, "submissions": {}}
        todo = submissions
        if (out / "grades.csv").is_file():  # never lose a CSV a TA may already have used
            kept = out / f"grades-{time.strftime('%Y%m%d-%H%M%S')}.csv"
            (out / "grades.csv").rename(kept)
            print(f"The previous grades.csv is kept as {kept}", flush=True)
    manifest["due"] = due.isoformat() if due else None
    extra = [argument for part in parts or [] for argument in ("--part", part)]
    jobs = jobs or os.cpu_count() or 1
    out.mkdir(parents=True, exist_ok=True)

    reference_row = None
    if not student:
        print(f"Grading {len(todo)} submission(s) of {lab.name} with {jobs} parallel job(s), "
              f"seed {seed}; first the reference, which computes every expected output",
              flush=True)
        reference, problem = grade_one(
            lab, lab.reference_dir, out / "_reference.json", seed=seed,
            timeout=max(timeout, REFERENCE_TIMEOUT), extra=extra,
            progress=lambda line: print(f"  reference: {line}", flush=True))
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
    done = [0]
    lock = threading.Lock()

    def work(submission: Submission) -> None:
        entry = manifest["submissions"][submission.name]
        path = out / f"{entry['slug']}.json"
        begin = time.monotonic()
        try:
            results, problem = grade_one(lab, submission.path, path, seed=seed,
                                         timeout=timeout, extra=extra)
        except Exception as error:  # noqa: BLE001 - one submission never stops the batch
            results, problem = None, f"could not be graded ({type(error).__name__}: {error})"
        if results is not None and not problem:
            problem = nothing_to_grade(lab, results, parts)
        if results is None and path.exists():
            path.unlink()  # a stale file from an earlier run must not stand in for this one
        entry.update(problem=problem, seed=seed, seconds=round(time.monotonic() - begin, 1))
        with lock:
            done[0] += 1
            score = f"{results['score']:g}" if results else "-"
            print(f"  [{done[0]}/{len(todo)}] {submission.name}: {score} {problem}".rstrip(),
                  flush=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(work, todo))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    graded = collect(submissions, manifest, out)
    write_csv(graded, out / "grades.csv", due)
    for item in graded:
        names = "; ".join(p.name for p in item.submission.students) or item.submission.name
        slug = manifest["submissions"][item.submission.name]["slug"]
        (out / f"{slug}.md").write_text(report.format_feedback(
            item.results, title=f"{lab.title}: {names}", problem=item.problem))
    (out / "summary.txt").write_text(summary(graded, time.monotonic() - started,
                                             seed=manifest["seed"], due=due))
    return reference_row, [item for item in graded
                           if item.submission.name in {s.name for s in todo}]


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
