"""`python -m autograder`: grade a submission, regenerate the stubs.

    python -m autograder grade lab1 SUBMISSION --results results.json
    python -m autograder batch lab1 SUBMISSIONS_DIR --out OUT_DIR
    python -m autograder stubs [--check]
    python -m autograder submit lab1 [FOLDER_OR_ZIP] [--out ZIP]
    python -m autograder release [--out DIR]
    python -m autograder autograder-zip lab1 [--out ZIP]
    python -m autograder otter-zip lab1 [--out ZIP]
    python -m autograder run-gradescope lab1 --root /autograder    (inside run_autograder)

`grade` exits 0 whenever grading finished, whatever the score (with --fail-on-failure, as
`make test` runs it: 1 when a test failed, as pytest does); 1 when grading itself could not
run (a results file saying so is still written); 2 for a usage error.

In the student release (`autograder/release.json` present, no reference), `grade` runs the
public tests against the stored snapshots at the release's seed, whatever options are left out.
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
from autograder.engine.labs import Lab, UnknownLab, load_lab

RELEASE_SETTINGS = REPO_ROOT / "autograder" / "release.json"


def release_settings() -> dict | None:
    """The student release's settings (seed, snapshots folder, hidden points per part), or None
    in the staff repository."""
    if not RELEASE_SETTINGS.is_file():
        return None
    return json.loads(RELEASE_SETTINGS.read_text(encoding="utf-8"))


def _release_defaults(args: argparse.Namespace, release: dict) -> str:
    """Fill in what the release's grading needs; returns a usage error, or ''."""
    if args.seed is not None and args.seed != release["seed"]:
        return (f"the public tests' expected outputs are stored for seed {release['seed']} only; "
                "leave out --seed")
    if args.reference:
        return "the student release has no reference; its tests use the stored snapshots"
    args.seed = release["seed"]
    args.snapshots = args.snapshots or str(REPO_ROOT / release["snapshots"])
    args.public_only = True
    return ""


class Progress:
    """A pytest plugin that prints how far grading got, every EVERY seconds: long gradings
    (the batch's reference) show that they are moving."""

    EVERY = 10.0

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.total = self.done = 0

    def pytest_collection_finish(self, session: object) -> None:
        self.total = len(getattr(session, "items", []))

    def pytest_runtest_logfinish(self, nodeid: str, location: object) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last >= self.EVERY or self.done == self.total:
            self.last = now
            part = Path(nodeid.split("::")[0]).stem.removeprefix("test_")
            print(f"\nprogress: {self.done}/{self.total} tests ({part}), "
                  f"{now - self.started:.0f} s", flush=True)


def grade(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        lab = load_lab(args.lab)
    except UnknownLab as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    release = release_settings()
    if release is not None:
        problem = _release_defaults(args, release)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    if args.part:
        unknown = [part for part in args.part if part not in lab.parts]
        if unknown:
            print(f"error: {lab.name} has no part {unknown[0]!r} (parts: {', '.join(lab.parts)})",
                  file=sys.stderr)
            return 2
        targets = [str(lab.test_file(part)) for part in args.part]
    else:  # in the lab's order of parts, so that tables read like the handout
        targets = [str(lab.test_file(part)) for part in lab.parts
                   if lab.test_file(part).is_file()]
    results_path = Path(args.results or REPO_ROOT / "build" / "results" / f"{lab.name}.json")
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
    pytest_args += ["-v", "--tb=short"] if args.verbose else [
        "-qq", "--tb=no", "--no-header", "-rN", "-p", "no:warnings"]
    for option in ("seed", "snapshots", "reference", "record_snapshots", "reference_cache"):
        value = getattr(args, option)
        if value is not None:
            pytest_args += [f"--{option.replace('_', '-')}", str(value)]
    if args.public_only:
        pytest_args.append("--public-only")
    if args.run_as:
        pytest_args += ["--run-as", args.run_as]
    if args.memory_limit_gib is not None:
        pytest_args += ["--memory-limit-gib", str(args.memory_limit_gib)]
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.exitfirst:
        pytest_args.append("--exitfirst")
    if args.time_budget is not None:
        pytest_args += ["--time-budget", str(args.time_budget)]

    exit_code = pytest.main(pytest_args, plugins=[Progress()] if args.progress else [])
    if not results_path.is_file():
        reason = f"the test run stopped before writing results (pytest exit code {int(exit_code)})"
        report.write_results(results_path, report.failed_results(
            reason, execution_time=time.monotonic() - started))
        print(f"error: grading could not run: {reason}", file=sys.stderr)
        return 1
    results = json.loads(results_path.read_text(encoding="utf-8"))
    if not results["tests"]:
        print("error: no tests were run", file=sys.stderr)
        return 1
    if not args.quiet:
        print()
        print(report.format_table(results, title=f"{lab.name} ({args.submission})",
                                  by_part=False))
        print()
        if args.public_only:
            hidden = (release or {}).get("hidden_points", {}).get(lab.name)
            print(report.public_score_lines(results, hidden))
        else:
            print(report.all_tests_score_line(results))
        print(f"Results written to {results_path}")
    failed = any(test["status"] != "passed" for test in results["tests"])
    return 1 if failed and args.fail_on_failure else 0


def batch(args: argparse.Namespace) -> int:
    from autograder.delivery.batch import BatchError, format_scores, grade_batch
    from autograder.delivery.gradescope_export import parse_time

    try:
        lab = load_lab(args.lab)
    except UnknownLab as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    folder = Path(args.submissions)
    if folder.is_file() and folder.suffix.lower() == ".zip":
        print(f"error: {folder} is a zip; unzip it first (`unzip {folder} -d DIR`) and give DIR",
              file=sys.stderr)
        return 2
    if not folder.is_dir():
        print(f"error: {folder} is not a folder of submissions", file=sys.stderr)
        return 2
    unknown = [part for part in args.part or [] if part not in lab.parts]
    if unknown:
        print(f"error: {lab.name} has no part {unknown[0]!r} (parts: {', '.join(lab.parts)})",
              file=sys.stderr)
        return 2
    from autograder.engine import sandbox

    if sandbox.landlock_abi(sandbox.simulated()) < 1 and not args.unsandboxed:
        print(UNSANDBOXED_RISK, file=sys.stderr)
        return 2
    try:
        due = parse_time(args.due) if args.due else None
    except ValueError as error:
        print(f"error: the due time {args.due!r} cannot be read ({error}); write it as "
              "2025-09-15 23:59 -07:00", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        reference, graded = grade_batch(lab, folder, out, jobs=args.jobs, seed=args.seed,
                                        timeout=args.timeout, parts=args.part,
                                        keyword=args.keyword, student=args.student, due=due,
                                        scheduler=args.scheduler, unsandboxed=args.unsandboxed)
    except BatchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print()
    print(format_scores([row for row in (reference, *graded) if row is not None]))
    print()
    print((out / "summary.txt").read_text().rstrip())
    print(f"\nCSV (one row per student): {out / 'grades.csv'}; per-submission results (.json), "
          f"feedback to send (.md) and logs: {out}/")
    return 0


UNSANDBOXED_RISK = """\
error: this kernel offers no Landlock (Linux 5.13 or later with Landlock enabled; many Docker
setups and older kernels lack it), so submitted code would run with your own rights on the
file system. A submission could then read your files and the hidden tests, change other
submissions and their results, and leave files in /tmp and /dev/shm for the next one. Still
blocked by seccomp: new processes, signals to other processes, sockets, ptrace; the reference
cache is sealed with a key only the grading process holds, so it cannot be read or forged.
Grade on a machine (or VM) whose kernel has Landlock, or pass --unsandboxed to accept this."""


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


def _lab(name: str) -> Lab | None:
    try:
        return load_lab(name)
    except UnknownLab as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def submit(args: argparse.Namespace) -> int:
    from autograder.delivery.submit import submit as check_and_zip

    lab = _lab(args.lab)
    if lab is None:
        return 2
    source = Path(args.source) if args.source else lab.assignments_dir
    out = Path(args.out) if args.out else REPO_ROOT / "dist" / f"{lab.name}-submission.zip"
    return check_and_zip(lab, source, out, force=args.force)


def release(args: argparse.Namespace) -> int:
    from autograder.delivery.release import RELEASE_SEED, ReleaseError, build_release

    seed = RELEASE_SEED if args.seed is None else args.seed
    try:
        warnings = build_release(Path(args.out), labs=args.lab, seed=seed)
    except (ReleaseError, UnknownLab) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def autograder_zip(args: argparse.Namespace) -> int:
    lab = _lab(args.lab)
    if lab is None:
        return 2
    kind = "otter-autograder" if args.otter else "autograder"
    out = Path(args.out) if args.out else REPO_ROOT / "dist" / f"{lab.name}-{kind}.zip"
    try:
        if args.otter:
            from autograder.delivery.otter_plugin import build_otter_zip

            build_otter_zip(lab, out, parts=args.part, seed=args.seed)
        else:
            from autograder.delivery.gradescope import build_autograder_zip

            build_autograder_zip(lab, out, parts=args.part)
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0


def run_gradescope(args: argparse.Namespace) -> int:
    import os

    from autograder.delivery.gradescope import run_on_gradescope

    lab = _lab(args.lab)
    root = Path(args.root)
    results = Path(args.results) if args.results else None
    if lab is None:
        report.write_results(results or root / "results" / "results.json",
                             report.failed_results(f"the autograder has no lab {args.lab}"))
        return 0
    seed = args.seed
    if seed is None and os.environ.get("AUTOGRADER_SEED"):
        seed = int(os.environ["AUTOGRADER_SEED"])
    user = os.environ.get("AUTOGRADER_USER", args.user)
    return run_on_gradescope(lab, root, results_path=results, user=user, seed=seed,
                             parts=args.part, timeout=args.timeout,
                             memory_limit_gib=args.memory_limit_gib)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder",
                                     description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    g = commands.add_parser("grade", help="grade one submission")
    g.add_argument("lab")
    g.add_argument("submission", help="a folder or a zip")
    g.add_argument("--results", help="where to write results.json "
                   "(default: build/results/LAB.json)")
    g.add_argument("--part", action="append", help="grade only this part (repeatable)")
    g.add_argument("--seed", type=int, help="grading seed (default: random)")
    g.add_argument("--snapshots", help="expected observations folder (student release)")
    g.add_argument("--reference", help="reference folder (default: reference/LAB)")
    g.add_argument("--record-snapshots", help="store the reference's observations here")
    g.add_argument("--reference-cache", help="reference cache folder ('' disables the cache)")
    g.add_argument("--public-only", action="store_true", help="run only the public tests")
    g.add_argument("--timeout-scale", type=float, default=1.0)
    g.add_argument("--memory-limit-gib", type=float, help="address-space limit per worker")
    g.add_argument("--run-as", help="run the submission as this unprivileged user (needs root)")
    g.add_argument("-k", dest="keyword", help="pytest -k expression")
    g.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failing "
                   "test (the results list only the tests that ran; for tools that only ask "
                   "whether anything fails)")
    g.add_argument("--fail-on-failure", action="store_true", help="exit 1 when a test fails, "
                   "as pytest does (what `make test` runs)")
    g.add_argument("--time-budget", type=float, help="seconds (times --timeout-scale) the "
                   "submission's code may take over the whole grading (default 240)")
    g.add_argument("-v", "--verbose", action="store_true", help="show pytest's own report")
    g.add_argument("-q", "--quiet", action="store_true", help="print no table")
    g.add_argument("--progress", action="store_true", help="print how far grading got every "
                   f"{Progress.EVERY:g} s (lines starting with 'progress: ')")
    g.set_defaults(run=grade)

    b = commands.add_parser("batch", help="grade a folder of submissions into a CSV")
    b.add_argument("lab")
    b.add_argument("submissions", help="folder of zips / folders / a Gradescope export")
    b.add_argument("--out", required=True, help="folder for grades.csv and per-submission results")
    b.add_argument("--jobs", type=int, help="parallel submissions (default: CPU count)")
    b.add_argument("--seed", type=int, help="grading seed for the whole batch (default: random)")
    b.add_argument("--timeout", type=float, default=900.0, help="seconds per submission")
    b.add_argument("--part", action="append", help="grade only this part (repeatable)")
    b.add_argument("-k", dest="keyword", help="grade only the tests this pytest -k expression "
                   "selects")
    b.add_argument("--scheduler", help="grade on a Dask cluster: its scheduler's address "
                   "(tcp://host:8786), or 'local' for one on this machine with --jobs workers "
                   "(needs the cluster extra; default: a process pool on this machine)")
    b.add_argument("--unsandboxed", action="store_true", help="grade even though this kernel "
                   "has no Landlock (submitted code can then use your files: see the error)")
    b.add_argument("--student", help="regrade only this submission (a folder name, or a "
                   "student's name, email or sid) into the batch already in --out, at its seed "
                   "unless --seed is given")
    b.add_argument("--due", help="the due time, with its zone (2025-09-15 23:59 -07:00): "
                   "fills the CSV's lateness column")
    b.set_defaults(run=batch)

    s = commands.add_parser("stubs", help="regenerate assignments/ from reference/")
    s.add_argument("--check", action="store_true", help="only report differences")
    s.set_defaults(run=generate_stubs)

    u = commands.add_parser("submit", help="check a lab's files and zip them for upload")
    u.add_argument("lab")
    u.add_argument("source", nargs="?", help="folder or zip (default: assignments/LAB)")
    u.add_argument("--out", help="the zip to write (default: dist/LAB-submission.zip)")
    u.add_argument("--force", action="store_true", help="write the zip despite problems")
    u.set_defaults(run=submit)

    r = commands.add_parser("release", help="build the student repository")
    r.add_argument("--out", default=str(REPO_ROOT / "dist" / "student"))
    r.add_argument("--lab", action="append", help="only this lab (repeatable; default: all)")
    r.add_argument("--seed", type=int, default=None, help="the public tests' seed")
    r.set_defaults(run=release)

    for name, otter in (("autograder-zip", False), ("otter-zip", True)):
        z = commands.add_parser(name, help=("the otter-grader" if otter else "the Gradescope")
                                + " autograder zip of a lab")
        z.add_argument("lab")
        z.add_argument("--out", help="default: dist/LAB-autograder.zip "
                       "(dist/LAB-otter-autograder.zip for otter)")
        z.add_argument("--part", action="append", help="grade only this part (repeatable)")
        if otter:
            z.add_argument("--seed", type=int, help="fixed grading seed (for tests only)")
        z.set_defaults(run=autograder_zip, otter=otter, seed=None)

    gs = commands.add_parser("run-gradescope", help="grade ROOT/submission into "
                             "ROOT/results/results.json (what run_autograder calls)")
    gs.add_argument("lab")
    gs.add_argument("--root", default="/autograder")
    gs.add_argument("--results", help="default: ROOT/results/results.json")
    gs.add_argument("--user", default="", help="run the submission as this unprivileged user "
                    "when running as root (AUTOGRADER_USER overrides)")
    gs.add_argument("--seed", type=int, help="default: AUTOGRADER_SEED, else random")
    gs.add_argument("--part", action="append")
    gs.add_argument("--timeout", type=float, default=540.0, help="seconds for the whole grading")
    gs.add_argument("--memory-limit-gib", type=float, default=2.0, help="per worker")
    gs.set_defaults(run=run_gradescope)

    args = parser.parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # a Windows pipe's code page cannot print every
        if hasattr(stream, "reconfigure"):   # character a message may hold: escape, not crash
            stream.reconfigure(errors="backslashreplace")
    return args.run(args)
