"""Other CPUs: grade the reference and the repository's correct alternatives with the numerics
changed; every part must keep full marks.

    python -m bench.crosscheck                         every lab, setting and way (about 40 min)
    python -m bench.crosscheck --lab lab1 --part basics --setting generic      a sample

A student's computer computes with other numerics than the machine that recorded the
snapshots and than Gradescope: other vector units (Apple silicon, ARM and older x86 CPUs run
torch's generic kernels, not its AVX2 ones), another BLAS path, another thread count. The
settings reproduce that on this machine:

- `generic`: torch's generic kernels (ATEN_CPU_CAPABILITY=default);
- `mkl-compatible`: MKL's compatible code path (MKL_CBWR=COMPATIBLE,
  MKL_ENABLE_INSTRUCTIONS=SSE4_2);
- `threads`: the worker computes with 2 threads instead of 1 (other reduction splits). Its
  time limits are 4 times longer: on a busy 2-core machine two threads per worker
  oversubscribe the cores, and a small network's forward pass waits for a descheduled thread
  (the CartPole training ran out of its limit); the setting checks numerics, not speed.

Each setting is applied two ways:

- `hidden` (the grader): only the submission's worker computes with the setting
  (plugin.STUDENT_NUMERICS); the reference runs live with the default numerics, as on
  Gradescope, so the tolerances alone must absorb the difference. Every test of the part runs.
- `public` (the student release): a release built with the default numerics, then the whole
  machine changed (the grading process and its worker) and the release's public tests run
  against the shipped snapshots: the draws must find their snapshots and the values pass. The
  starter code must still score 0 there.

Graded: each lab's reference, and for each part the correct alternatives of its
tests/test_*_mistakes.py (`ALTERNATIVES`, all in one submission, as those tests grade them).
The report (build/crosscheck/LAB.md) has one row per part; `python -m bench.quality` copies
it to docs/quality.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder import REPO_ROOT
from autograder.engine.labs import available_labs, load_lab
from autograder.engine.plugin import STUDENT_NUMERICS
from bench.snapshot import snapshot

DEFAULT_OUT = REPO_ROOT / "build" / "crosscheck"
# setting -> (the whole machine's environment, the submission worker's STUDENT_NUMERICS)
SETTINGS = {
    "generic": ({"ATEN_CPU_CAPABILITY": "default"}, "ATEN_CPU_CAPABILITY=default"),
    "mkl-compatible": ({"MKL_CBWR": "COMPATIBLE", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
                       "MKL_CBWR=COMPATIBLE MKL_ENABLE_INSTRUCTIONS=SSE4_2"),
    "threads": ({"OMP_NUM_THREADS": "2"}, "threads=2"),
}
SLOWER = {"threads": 4.0}  # a setting's time limits, times --timeout-scale (see above)
WAYS = ("hidden", "public")
DEMO = 'if __name__ == "__main__":\n    main()'  # where a file of alternatives is appended


@dataclass
class Submission:
    name: str  # "reference", "starter code", "alternatives of sae"
    folder: Path
    parts: list[str] | None  # None: every part of the lab
    full_marks: bool = True  # False: the starter code, which must score 0


@dataclass
class Grading:
    way: str
    setting: str
    submission: Submission
    scores: dict[str, list[float]] = field(default_factory=dict)  # part -> [score, max]
    failed: list[str] = field(default_factory=list)  # "test name: first line"
    problem: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        if self.problem or not self.scores:
            return False
        if self.submission.full_marks:
            return not self.failed
        return all(score == 0 for score, _ in self.scores.values())


# ============================================================================ what is graded


def _pairs(value: Any) -> list[tuple[str, str]]:
    """The (passage, replacement) pairs of a mistakes module's ALTERNATIVES, whatever its
    shape (a dict of pairs or of lists of pairs, a tuple of pairs)."""
    if isinstance(value, dict):
        return [pair for item in value.values() for pair in _pairs(item)]
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(item, str) for item in value):
        return [(value[0], value[1])]
    return [pair for item in value for pair in _pairs(item)]


def alternatives(lab: str, root: Path, folder: Path) -> list[Submission]:
    """One submission per part that tests/test_*_mistakes.py gives correct alternatives for:
    the reference's lab folder with that part's file changed by every alternative (a file of
    them is appended before the demo's `if __name__` block, its definitions replacing the
    reference's). The other files are the reference's, for the one allowed dependency between
    parts (the induction part trains the student's own Transformer)."""
    found = []
    for path in sorted((REPO_ROOT / "tests").glob("test_*_mistakes.py")):
        module = importlib.import_module(f"tests.{path.stem}")
        given, reference = getattr(module, "ALTERNATIVES", None), getattr(module, "REFERENCE", None)
        if given is None or reference is None or Path(reference).parent.name != lab:
            continue
        source = (root / "reference" / lab / Path(reference).name).read_text()
        if isinstance(given, Path):
            changes = [(DEMO, given.read_text() + "\n\n" + DEMO)]
        else:
            changes = _pairs(given)
        for passage, replacement in changes:
            if source.count(passage) != 1:
                raise SystemExit(f"{path.name}: the reference no longer contains {passage!r}")
            source = source.replace(passage, replacement)
        part = Path(reference).stem
        target = folder / f"alternatives-{part}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(root / "reference" / lab, target,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (target / Path(reference).name).write_text(source)
        found.append(Submission(f"alternatives of {part}", target, [part]))
    return found


# ============================================================================ the gradings


def grade(grading: Grading, lab: str, cwd: Path, results: Path, seed: int | None,
          parts: list[str] | None, timeout: float, timeout_scale: float) -> Grading:
    machine, student = SETTINGS[grading.setting]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env[STUDENT_NUMERICS] = student
    if grading.way == "public":
        env.update(machine)
    scale = timeout_scale * SLOWER.get(grading.setting, 1.0)
    command = [sys.executable, "-m", "autograder", "grade", lab, str(grading.submission.folder),
               "--results", str(results), "--timeout-scale", str(scale), "--quiet"]
    if grading.way == "hidden":
        command += ["--seed", str(seed), "--reference-cache", ""]
    for part in grading.submission.parts or parts or ():
        command += ["--part", part]
    started = time.monotonic()
    try:
        completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                                   timeout=timeout, start_new_session=True)
        if completed.returncode != 0:
            grading.problem = (f"grader exit code {completed.returncode}: "
                               f"{(completed.stdout + completed.stderr)[-300:]}")
    except subprocess.TimeoutExpired:
        grading.problem = f"grading took longer than {timeout:g} s"
    grading.seconds = time.monotonic() - started
    try:
        data = json.loads(results.read_text())
    except (OSError, ValueError):
        grading.problem = grading.problem or "no results file"
        return grading
    for test in data["tests"]:
        part = test["name"].split(":", 1)[0]
        totals = grading.scores.setdefault(part, [0.0, 0.0])
        totals[0] += test["score"]
        totals[1] += test["max_score"]
        if test["status"] != "passed":
            first = (test["output"].strip().splitlines() or [""])[0][:240]
            grading.failed.append(f"{test['name']}: {first}")
    return grading


def build_release(root: Path, lab: str, destination: Path) -> str:
    """The student release of `lab`, built from `root` with the default numerics; '' or why
    it failed."""
    env = {key: value for key, value in os.environ.items()
           if key not in {name for machine, _ in SETTINGS.values() for name in machine}
           and key != STUDENT_NUMERICS and not key.startswith("PYTEST_")}
    completed = subprocess.run([sys.executable, "-m", "autograder", "release", "--out",
                                str(destination), "--lab", lab], cwd=root, env=env,
                               capture_output=True, text=True, timeout=1800)
    if completed.returncode != 0:
        return (completed.stdout + completed.stderr)[-2000:]
    return ""


# ============================================================================ the report


def _cell(gradings: list[Grading], part: str) -> str:
    """'28/28' per submission graded on `part`, or what went wrong."""
    shown = []
    for grading in gradings:
        if grading.problem:
            shown.append(f"{grading.submission.name}: {grading.problem[:60]}")
            continue
        score, total = grading.scores.get(part, [None, None])
        if score is None:
            continue
        failed = any(name.startswith(f"{part}: ") for name in grading.failed)
        mark = " **FAIL**" if (failed if grading.submission.full_marks else score) else ""
        label = "starter " if not grading.submission.full_marks else (
            "alt. " if grading.submission.name.startswith("alternatives") else "")
        shown.append(f"{label}{score:g}/{total:g}{mark}")
    return ", ".join(shown) or "-"


def report(lab: str, parts: list[str], settings: list[str], gradings: list[Grading],
           seed: int, seconds: float, release_problem: str) -> tuple[str, bool]:
    ways = sorted({g.way for g in gradings}, key=WAYS.index)
    clean = all(g.ok for g in gradings) and not release_problem
    lines = [f"# Crosscheck of {lab}: other CPUs' numerics, the grade unchanged", "",
             f"{len(gradings)} gradings in {seconds / 60:.1f} min (hidden tests at seed "
             f"{seed}; public tests in a release built with the default numerics). "
             f"Tests graded: parts {', '.join(parts)}.", "",
             "Settings: " + "; ".join(f"`{name}` ({SETTINGS[name][1]})" for name in settings)
             + ". Hidden: only the submission's worker changed, the reference live with the "
             "default numerics. Public: the whole machine changed, against the shipped "
             "snapshots. Each cell: the reference's points, then the correct alternatives' "
             "(alt.), then the starter code's (public; it must score 0).", "",
             "| part | " + " | ".join(f"{way}: {setting}" for way in ways for setting in settings)
             + " |", "|---|" + "---|" * (len(ways) * len(settings))]
    for part in parts:
        cells = [_cell([g for g in gradings if g.way == way and g.setting == setting], part)
                 for way in ways for setting in settings]
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    lines.append("")
    if release_problem:
        lines += ["The release could not be built:", "", "```", release_problem, "```", ""]
    lines.append("Every grading kept full marks (the starter code 0)." if clean else
                 "Not every grading kept full marks: see the failures below.")
    failures = [g for g in gradings if not g.ok]
    if failures:
        lines += ["", "## Failures and problems", ""]
        for grading in failures:
            what = f"{grading.way}, {grading.setting}, {grading.submission.name}"
            if grading.problem:
                lines.append(f"- {what}: {grading.problem}")
            for failed in grading.failed if grading.submission.full_marks else ():
                lines.append(f"- {what}: {failed}")
            if not grading.submission.full_marks and not grading.problem:
                lines.append(f"- {what}: the starter code scored points")
    lines += ["", "## Time per grading", "", "| way | setting | submission | seconds |",
              "|---|---|---|---|"]
    lines += [f"| {g.way} | {g.setting} | {g.submission.name} | {g.seconds:.0f} |"
              for g in gradings]
    return "\n".join(lines) + "\n", clean


# ============================================================================ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", action="append", help="lab to grade (default: all)")
    parser.add_argument("--part", action="append", help="grade only these parts")
    parser.add_argument("--setting", action="append", choices=sorted(SETTINGS),
                        help="numerics to grade under (default: all)")
    parser.add_argument("--way", action="append", choices=WAYS,
                        help="hidden (the submission's worker) or public (the whole machine, "
                        "against a release's snapshots); default: both")
    parser.add_argument("--no-alternatives", action="store_true",
                        help="grade the reference (and the starter code) only")
    parser.add_argument("--jobs", type=int, default=2, help="gradings in parallel")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per grading")
    parser.add_argument("--timeout-scale", type=float, default=2.0,
                        help="multiplies every per-call time limit (generic kernels are slower)")
    parser.add_argument("--seed", type=int, help="the hidden tests' seed (default: drawn)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    settings = args.setting or list(SETTINGS)
    ways = [way for way in WAYS if way in (args.way or WAYS)]

    root = snapshot(args.out / "snapshot")  # one version of the code, whatever is edited
    status = 0
    for lab in args.lab or available_labs():
        started = time.monotonic()
        folder = args.out / lab
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        parts = [part for part in load_lab(lab).parts if not args.part or part in args.part]
        seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
        graded = [Submission("reference", root / "reference" / lab, parts)]
        if not args.no_alternatives:
            graded += [s for s in alternatives(lab, root, folder / "submissions")
                       if s.parts[0] in parts]
        release_problem = ""
        if "public" in ways:
            print(f"{lab}: building the release", flush=True)
            release_problem = build_release(root, lab, folder / "release")
        jobs = []
        for way in ways:
            if way == "public" and release_problem:
                continue
            cwd = root if way == "hidden" else folder / "release"
            extra = ([Submission("starter code", root / "assignments" / lab, parts,
                                 full_marks=False)] if way == "public" else [])
            for setting in settings:
                for submission in [*graded, *extra]:
                    jobs.append((Grading(way, setting, submission), cwd))

        def one(job: tuple[Grading, Path], lab: str = lab, folder: Path = folder,
                seed: int = seed, parts: list[str] = parts) -> Grading:
            grading, cwd = job
            slug = grading.submission.name.replace(" ", "-")
            name = f"{grading.way}-{grading.setting}-{slug}.json"
            return grade(grading, lab, cwd, folder / name, seed, parts, args.timeout,
                         args.timeout_scale)

        gradings = []
        print(f"{lab}: {len(jobs)} gradings, {args.jobs} at a time", flush=True)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for done, grading in enumerate(pool.map(one, jobs), start=1):
                gradings.append(grading)
                state = grading.problem or ("as expected" if grading.ok else
                                            f"{len(grading.failed)} failed")
                print(f"[{done}/{len(jobs)}] {grading.way} {grading.setting} "
                      f"{grading.submission.name}: {state} ({grading.seconds:.0f} s)", flush=True)
        text, clean = report(lab, parts, settings, gradings, seed, time.monotonic() - started,
                             release_problem)
        (args.out / f"{lab}.md").write_text(text)
        print()
        print(text)
        if not clean:
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
