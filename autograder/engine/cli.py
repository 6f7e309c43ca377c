"""`python -m autograder`: grade a submission, regenerate the stubs.

    python -m autograder grade lab1 SUBMISSION --results results.json
    python -m autograder batch lab1 SUBMISSIONS_DIR --out OUT_DIR
    python -m autograder stubs [--check]

`grade` exits 0 whenever grading finished, whatever the score; 1 when grading itself could
not run (a results file saying so is still written); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from autograder import REPO_ROOT
from autograder.engine import results as report
from autograder.engine import stubs
from autograder.engine.labs import UnknownLab, load_lab


def grade(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        lab = load_lab(args.lab)
    except UnknownLab as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.part:
        unknown = [part for part in args.part if part not in lab.parts]
        if unknown:
            print(f"error: {lab.name} has no part {unknown[0]!r} (parts: {', '.join(lab.parts)})",
                  file=sys.stderr)
            return 2
        targets = [str(lab.test_file(part)) for part in args.part]
    else:
        targets = [str(lab.tests_dir)]
    results_path = Path(args.results)
    if results_path.exists():
        results_path.unlink()

    import pytest

    pytest_args = [
        *targets,
        "-c", str(REPO_ROOT / "pyproject.toml"),
        "--rootdir", str(REPO_ROOT),
        "-p", "no:cacheprovider",
        "--impl", str(Path(args.submission).resolve()),
        "--results", str(results_path),
        "--timeout-scale", str(args.timeout_scale),
    ]
    pytest_args += ["-v", "--tb=short"] if args.verbose else ["-qq", "--tb=no", "--no-header",
                                                             "-p", "no:warnings"]
    for option in ("seed", "snapshots", "reference", "record_snapshots", "reference_cache"):
        value = getattr(args, option)
        if value is not None:
            pytest_args += [f"--{option.replace('_', '-')}", str(value)]
    if args.public_only:
        pytest_args.append("--public-only")
    if args.keyword:
        pytest_args += ["-k", args.keyword]

    exit_code = pytest.main(pytest_args)
    if not results_path.is_file():
        reason = f"the test run stopped before writing results (pytest exit code {int(exit_code)})"
        report.write_results(results_path, report.failed_results(
            reason, execution_time=time.monotonic() - started))
        print(f"error: grading could not run: {reason}", file=sys.stderr)
        return 1
    results = json.loads(results_path.read_text())
    if not results["tests"]:
        print("error: no tests were run", file=sys.stderr)
        return 1
    if not args.quiet:
        print()
        print(report.format_table(results, title=f"{lab.name} ({args.submission})"))
        print(f"\nResults written to {results_path}")
    return 0


def batch(args: argparse.Namespace) -> int:
    from autograder.engine.batch import format_scores, grade_batch

    try:
        lab = load_lab(args.lab)
    except UnknownLab as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    folder = Path(args.submissions)
    if not folder.is_dir():
        print(f"error: {folder} is not a folder of submissions", file=sys.stderr)
        return 2
    out = Path(args.out)
    reference, graded = grade_batch(lab, folder, out, jobs=args.jobs, seed=args.seed,
                                    timeout=args.timeout)
    print()
    print(format_scores([reference, *graded]))
    print()
    print((out / "summary.txt").read_text().rstrip())
    print(f"\nCSV: {out / 'grades.csv'}; per-submission results and logs: {out}/")
    return 0


def generate_stubs(args: argparse.Namespace) -> int:
    reference, assignments = REPO_ROOT / "reference", REPO_ROOT / "assignments"
    if args.check:
        problems = stubs.differences(reference, assignments)
        for problem in problems:
            print(problem)
        if problems:
            print("assignments/ is out of date: run `make stubs` and commit the result",
                  file=sys.stderr)
            return 1
        print("assignments/ matches reference/")
        return 0
    stubs.generate(reference, assignments)
    print(f"regenerated {assignments.relative_to(REPO_ROOT)}/ from reference/")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder",
                                     description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    g = commands.add_parser("grade", help="grade one submission")
    g.add_argument("lab")
    g.add_argument("submission", help="a folder or a zip")
    g.add_argument("--results", required=True, help="where to write results.json")
    g.add_argument("--part", action="append", help="grade only this part (repeatable)")
    g.add_argument("--seed", type=int, help="grading seed (default: random)")
    g.add_argument("--snapshots", help="expected observations folder (student release)")
    g.add_argument("--reference", help="reference folder (default: reference/LAB)")
    g.add_argument("--record-snapshots", help="store the reference's observations here")
    g.add_argument("--reference-cache", help="reference cache folder ('' disables the cache)")
    g.add_argument("--public-only", action="store_true", help="run only the public tests")
    g.add_argument("--timeout-scale", type=float, default=1.0)
    g.add_argument("-k", dest="keyword", help="pytest -k expression")
    g.add_argument("-v", "--verbose", action="store_true", help="show pytest's own report")
    g.add_argument("-q", "--quiet", action="store_true", help="print no table")
    g.set_defaults(run=grade)

    b = commands.add_parser("batch", help="grade a folder of submissions into a CSV")
    b.add_argument("lab")
    b.add_argument("submissions", help="folder of zips / folders / a Gradescope export")
    b.add_argument("--out", required=True, help="folder for grades.csv and per-submission results")
    b.add_argument("--jobs", type=int, help="parallel submissions (default: CPU count)")
    b.add_argument("--seed", type=int, help="grading seed for the whole batch (default: random)")
    b.add_argument("--timeout", type=float, default=900.0, help="seconds per submission")
    b.set_defaults(run=batch)

    s = commands.add_parser("stubs", help="regenerate assignments/ from reference/")
    s.add_argument("--check", action="store_true", help="only report differences")
    s.set_defaults(run=generate_stubs)

    args = parser.parse_args(argv)
    return args.run(args)
