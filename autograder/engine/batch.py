"""Grade a folder of submissions: each in its own grading process, in parallel, one seed.

The reference is graded first at the batch's seed, which fills the reference cache, so every
submission after it reads the expected observations instead of recomputing them. A
submission whose grading crashes or overruns still gets its row, with the reason.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder import REPO_ROOT
from autograder.engine import results as report
from autograder.engine.labs import Lab

REFERENCE_TIMEOUT = 900.0  # the reference computes every expected observation: be generous


@dataclass
class Submission:
    name: str
    path: Path
    students: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)


@dataclass
class Graded:
    submission: Submission
    results: dict[str, Any] | None
    problem: str = ""
    seconds: float = 0.0


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "submission"


def find_submissions(folder: Path) -> list[Submission]:
    """Every zip and every folder directly inside `folder` is one submission. A Gradescope
    export (one folder per submission and `submission_metadata.yml`) may also sit one level
    down, as it does when the export's zip is unpacked."""
    from autograder.engine.gradescope import read_export_metadata

    inside = [entry for entry in folder.iterdir() if not entry.name.startswith((".", "_"))]
    if not (folder / "submission_metadata.yml").is_file() and len(inside) == 1 and (
        inside[0] / "submission_metadata.yml"
    ).is_file():
        folder = inside[0]
    metadata = read_export_metadata(folder)
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")) or entry.name == "submission_metadata.yml":
            continue
        if entry.is_dir() or entry.suffix.lower() == ".zip":
            people = metadata.get(entry.name, {})
            found.append(Submission(
                name=entry.name if entry.is_dir() else entry.stem,
                path=entry,
                students=people.get("names", []),
                emails=people.get("emails", []),
            ))
    return found


def grade_one(
    lab: Lab,
    source: Path,
    results_path: Path,
    *,
    seed: int,
    timeout: float,
    extra: list[str] | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """Grade in a separate process; returns (results, problem)."""
    command = [
        sys.executable, "-m", "autograder", "grade", lab.name, str(source),
        "--results", str(results_path), "--seed", str(seed), "--quiet", *(extra or []),
    ]
    log = results_path.with_suffix(".log")
    try:
        with open(log, "wb") as stream:
            completed = subprocess.run(
                command, stdout=stream, stderr=subprocess.STDOUT, timeout=timeout,
                cwd=REPO_ROOT, start_new_session=True,
            )
        problem = "" if completed.returncode == 0 else f"grader exit code {completed.returncode}"
    except subprocess.TimeoutExpired:
        problem = f"grading took longer than {timeout:g} s and was stopped"
    try:
        results = json.loads(results_path.read_text())
        if report.validate_results(results):
            return None, problem or "invalid results file"
        return results, problem
    except (OSError, ValueError):
        return None, problem or "no results file"


def grade_batch(
    lab: Lab,
    folder: Path,
    out: Path,
    *,
    jobs: int | None = None,
    seed: int | None = None,
    timeout: float = 900.0,
    parts: list[str] | None = None,
) -> tuple[Graded, list[Graded]]:
    """Grade the reference, then every submission; returns (the reference's row, the rows)."""
    seed = secrets.randbelow(2**31) if seed is None else seed
    extra = [argument for part in parts or [] for argument in ("--part", part)]
    jobs = jobs or os.cpu_count() or 1
    out.mkdir(parents=True, exist_ok=True)
    submissions = find_submissions(folder)
    started = time.monotonic()
    print(f"Grading {len(submissions)} submission(s) of {lab.name} with {jobs} parallel job(s), "
          f"seed {seed}", flush=True)
    reference, problem = grade_one(lab, lab.reference_dir, out / "_reference.json",
                                   seed=seed, timeout=max(timeout, REFERENCE_TIMEOUT), extra=extra)
    reference_row = Graded(Submission("(reference)", lab.reference_dir), reference, problem,
                           time.monotonic() - started)
    if reference is None or reference["score"] < sum(t["max_score"] for t in reference["tests"]):
        score = "no score" if reference is None else f"{reference['score']:g}"
        print(f"warning: the reference itself scored {score} ({problem or 'see _reference.json'})",
              file=sys.stderr)
    print(f"  reference outputs computed in {time.monotonic() - started:.1f} s", flush=True)

    paths: list[Path] = []
    for submission in submissions:  # one results file each, even when two names slug alike
        slug = _slug(submission.name)
        while out / f"{slug}.json" in paths:
            slug += "_"
        paths.append(out / f"{slug}.json")

    def work(submission: Submission, path: Path) -> Graded:
        begin = time.monotonic()
        try:
            results, problem = grade_one(lab, submission.path, path, seed=seed,
                                         timeout=timeout, extra=extra)
        except Exception as error:  # noqa: BLE001 - one submission never stops the batch
            results, problem = None, f"could not be graded ({type(error).__name__}: {error})"
        graded = Graded(submission, results, problem, time.monotonic() - begin)
        score = f"{results['score']:g}" if results else "-"
        print(f"  {submission.name}: {score} {problem}".rstrip(), flush=True)
        return graded

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        graded = list(pool.map(work, submissions, paths))
    write_csv(graded, out / "grades.csv")
    (out / "summary.txt").write_text(summary(graded, time.monotonic() - started))
    return reference_row, graded


def _test_names(graded: list[Graded]) -> list[str]:
    names: list[str] = []
    for item in graded:
        for test in (item.results or {}).get("tests", []):
            if test["name"] not in names:
                names.append(test["name"])
    return names


def write_csv(graded: list[Graded], path: Path) -> None:
    names = _test_names(graded)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["submission", "student", "email", "total", "max_score", "problem", *names])
        for item in graded:
            scores = {t["name"]: t["score"] for t in (item.results or {}).get("tests", [])}
            maximum = sum(t["max_score"] for t in (item.results or {}).get("tests", []))
            writer.writerow([
                item.submission.name,
                "; ".join(item.submission.students),
                "; ".join(item.submission.emails),
                item.results["score"] if item.results else 0,
                maximum,
                item.problem,
                *[scores.get(name, 0) for name in names],
            ])


def summary(graded: list[Graded], seconds: float) -> str:
    lines = [f"{len(graded)} submission(s) graded in {seconds:.1f} s"]
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
    problems = [item for item in graded if item.problem]
    if problems:
        lines.append("Submissions with grading problems:")
        lines.extend(f"  {item.submission.name}: {item.problem}" for item in problems)
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
        line = f"{item.submission.name:<{width}}  " + "  ".join(cells) + f"  {total:>10}"
        if item.problem:
            line += f"  ({item.problem})"
        lines.append(line)
    return "\n".join(lines)
