"""Flakiness: grade the reference many times with fresh seeds; does any test ever fail?

    python -m bench.flaky                  50 gradings of every lab's reference, 2 at a time
    python -m bench.flaky --runs 200 --lab lab1

Every grading draws a fresh grade-time seed, as a real grading does, and runs without the
reference cache, so each one computes the expected observations live. A correct submission
must pass every deterministic test every time; a statistical test may fail, but no more often
than the false-failure probability it states. The report lists every test that failed, with
its rate, and for each statistical test what its stated probability predicts for this many
runs, next to what was measured.

A test counts as statistical when it, or a helper of its module that it calls, mentions the
false-failure probability (`FALSE_FAILURE`, "false-failure"); the stated value is the module's
`FALSE_FAILURE` when there is one, otherwise the number in a "false-failure probability ...
at most X" comment.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

from autograder import REPO_ROOT
from autograder.engine.labs import available_labs
from bench.snapshot import snapshot

DEFAULT_OUT = REPO_ROOT / "build" / "flaky"
MENTION = re.compile(r"FALSE_FAILURE|false[- ]failure", re.IGNORECASE)
STATED = re.compile(
    r"false[- ]failure(?: probability)?[^.\n]*?(?:at most|<=|≤|below)\s*([0-9][0-9.]*e-?[0-9]+)",
    re.IGNORECASE,
)
DISAGREEMENT = 1e-3  # a measured count this unlikely under the stated probability disagrees


# ============================================================================ what the suite states


@dataclass
class TestInfo:
    name: str  # the display name in results.json
    function: str
    stated: float | None = None  # stated false-failure probability; None: deterministic


def _helpers(function: FunctionType, module: ModuleType, seen: set[str]) -> list[FunctionType]:
    """The module-level functions that `function` calls, transitively."""
    found = []
    for name in function.__code__.co_names:
        value = getattr(module, name, None)
        if isinstance(value, FunctionType) and value.__module__ == module.__name__ and (
            name not in seen
        ):
            seen.add(name)
            found.append(value)
            found.extend(_helpers(value, module, seen))
    return found


def stated_probability(function: FunctionType) -> float | None:
    module = sys.modules[function.__module__]
    sources = [inspect.getsource(f) for f in [function, *_helpers(function, module, set())]]
    if not any(MENTION.search(source) for source in sources):
        return None
    constant = getattr(module, "FALSE_FAILURE", None)
    if isinstance(constant, float):
        return constant
    for source in sources:
        match = STATED.search(source)
        if match:
            return float(match.group(1))
    return float("nan")  # statistical, but no number found


class _Collector:
    """A pytest plugin that records each collected test's display name and function."""

    def __init__(self) -> None:
        self.tests: list[TestInfo] = []

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        from autograder.engine.plugin import _display_name

        for item in items:
            part = Path(item.path).stem.removeprefix("test_")
            function = item.function
            self.tests.append(TestInfo(_display_name(item, part), function.__name__,
                                       stated_probability(function)))


def collect(lab_name: str, root: Path = REPO_ROOT) -> list[TestInfo]:
    """The lab's tests in the repository at `root` (the live one, or a snapshot)."""
    import pytest

    collector = _Collector()
    pytest.main([str(root / "autograder" / lab_name), "--collect-only", "-p", "no:terminal",
                 "-p", "no:cacheprovider", "-c", str(root / "pyproject.toml"),
                 "--rootdir", str(root)], plugins=[collector])
    return collector.tests


# ============================================================================ statistics


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    return min(1.0, sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1)))


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """Clopper-Pearson upper confidence bound on a rate after k failures in n runs."""
    if k >= n:
        return 1.0
    low, high = k / n, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        # P(X <= k | p = middle) falls as middle grows; the bound is where it hits 1 - confidence
        at_most_k = 1 - binomial_tail(k + 1, n, middle)
        low, high = (middle, high) if at_most_k > 1 - confidence else (low, middle)
    return high


# ============================================================================ the runs


@dataclass
class Run:
    seed: int
    failed: dict[str, str] = field(default_factory=dict)  # test name -> first line of output
    problem: str = ""
    seconds: float = 0.0
    names: list[str] = field(default_factory=list)


def grade(lab: str, seed: int, results: Path, timeout: float, timeout_scale: float = 1.0,
          root: Path = REPO_ROOT, parts: list[str] | None = None, keyword: str = "") -> Run:
    command = [sys.executable, "-m", "autograder", "grade", lab, str(root / "reference" / lab),
               "--results", str(results), "--seed", str(seed), "--reference-cache", "",
               "--timeout-scale", str(timeout_scale), "--quiet"]
    for part in parts or ():
        command += ["--part", part]
    if keyword:
        command += ["-k", keyword]
    started = time.monotonic()
    problem = ""
    try:
        completed = subprocess.run(command, cwd=root, capture_output=True, timeout=timeout,
                                   start_new_session=True)
        if completed.returncode != 0:
            problem = f"grader exit code {completed.returncode}"
    except subprocess.TimeoutExpired:
        problem = f"grading took longer than {timeout:g} s"
    run = read_run(results, seed)
    run.problem = problem or run.problem
    run.seconds = time.monotonic() - started
    if problem or run.problem:
        results.with_suffix(".problem").write_text(run.problem)
    return run


def read_run(results: Path, seed: int) -> Run:
    run = Run(seed)
    try:
        data = json.loads(results.read_text())
    except (OSError, ValueError):
        run.problem = "no results file"
        return run
    problem = results.with_suffix(".problem")
    run.problem = problem.read_text() if problem.is_file() else ""
    run.seconds = float(data.get("execution_time", 0))
    run.names = [t["name"] for t in data["tests"]]
    run.failed = {t["name"]: (t["output"].strip().splitlines() or [""])[0][:300]
                  for t in data["tests"] if t["status"] != "passed"}
    return run


def report(lab: str, runs: list[Run], tests: list[TestInfo], seconds: float,
           timeout_scale: float = 1.0, selection: str = "") -> tuple[str, bool]:
    n = len(runs)
    graded_names = {name for run in runs for name in run.names}
    if graded_names:  # only the tests that were graded (--part, -k)
        tests = [test for test in tests if test.name in graded_names]
    failures = Counter(name for run in runs for name in run.failed)
    info = {test.name: test for test in tests}
    graded = [run for run in runs if not run.problem]
    lines = [f"# Flakiness of {lab}: the reference graded {n} times with fresh seeds", "",
             f"{n} gradings ({len(graded)} completed) in {seconds:.0f} s; seeds drawn at random "
             "and listed at the end. No reference cache: every grading computed the expected "
             "observations live."
             + (f" Time limits were multiplied by {timeout_scale:g}." if timeout_scale != 1
                else "") + (f" Tests graded: {selection}." if selection else ""), ""]
    clean = not failures and len(graded) == n
    if failures:
        lines += ["| test | failed | rate | 95% upper bound | stated | P(this many or more "
                  "\\| stated) | verdict |", "|---|---|---|---|---|---|---|"]
        for name, count in failures.most_common():
            test = info.get(name)
            stated = test.stated if test else None
            if stated is None:
                expected, verdict = "deterministic", "FLAKY (a correct submission must pass)"
                tail = "0"
            else:
                tail_value = binomial_tail(count, n, stated) if stated == stated else float("nan")
                tail = f"{tail_value:.2g}"
                expected = f"{stated:g}"
                verdict = ("disagrees with the stated probability"
                           if tail_value < DISAGREEMENT else "consistent")
            lines.append(f"| {name} | {count}/{n} | {count / n:.1%} | "
                         f"{upper_bound(count, n):.1%} | {expected} | {tail} | {verdict} |")
        lines.append("")
        lines.append("First failure of each:")
        for name in failures:
            run = next(run for run in runs if name in run.failed)
            lines.append(f"- {name} (seed {run.seed}): {run.failed[name]}")
    else:
        lines.append(f"No test failed in {n} gradings: the measured failure rate of every test "
                     f"is 0, with a 95% upper bound of {upper_bound(0, n):.1%} (at most "
                     f"{-math.log(0.05) / n:.1%}, the 'rule of three').")
    statistical = [t for t in tests if t.stated is not None]
    if statistical:
        lines += ["", "Statistical tests and what their stated false-failure probability "
                  f"implies for {n} runs (expected false failures n p; probability of at least "
                  "one, 1 - (1 - p)^n):", "",
                  "| test | stated p | expected in n runs | P(at least one) | measured |",
                  "|---|---|---|---|---|"]
        total = 0.0
        for test in statistical:
            p = test.stated
            if p != p:
                lines.append(f"| {test.name} | not found | - | - | {failures.get(test.name, 0)}"
                             f"/{n} |")
                continue
            total += p
            lines.append(f"| {test.name} | {p:g} | {n * p:.2g} | {1 - (1 - p) ** n:.2g} | "
                         f"{failures.get(test.name, 0)}/{n} |")
        lines += ["", f"All statistical tests together (union bound): at most {n * total:.2g} "
                  f"expected false failures in {n} gradings, so seeing none is what a correct "
                  f"suite predicts; a single one would have probability at most "
                  f"{min(1.0, n * total):.2g}. Measuring rates as small as the stated ones "
                  f"directly would take about {math.ceil(3 / max(total, 1e-12)):,} gradings, so "
                  "this run checks that nothing fails far more often than stated."]
    deterministic = [t for t in tests if t.stated is None]
    lines += ["", f"Deterministic tests: {len(deterministic)}; statistical tests: "
              f"{len(statistical)}. Median grading time {_median([r.seconds for r in runs]):.0f} "
              "s."]
    problems = [run for run in runs if run.problem]
    if problems:
        lines.append("Gradings that did not complete:")
        lines += [f"- seed {run.seed}: {run.problem}" for run in problems]
    lines += ["", "Seeds: " + ", ".join(str(run.seed) for run in runs)]
    return "\n".join(lines) + "\n", clean


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", action="append", help="lab to grade (default: all)")
    parser.add_argument("--runs", type=int, default=50, help="gradings per lab")
    parser.add_argument("--jobs", type=int, default=2, help="gradings in parallel")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per grading")
    parser.add_argument("--timeout-scale", type=float, default=1.0,
                        help="multiplies every per-call time limit (a busy machine)")
    parser.add_argument("--part", action="append", help="grade only these parts")
    parser.add_argument("-k", dest="keyword", default="", help="grade only the tests that "
                        "pytest's -k selects (e.g. 'not cartpole')")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in --out: same snapshot of the code, "
                        "and the gradings already done count")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # the gradings run in the snapshot's folder

    status = 0
    # Grade one version of the code from start to end, whatever is edited meanwhile.
    root = args.out / "snapshot"
    if not (args.resume and root.is_dir()):
        snapshot(root)
    for lab in args.lab or available_labs():
        tests = collect(lab, root)
        folder = args.out / lab
        if not args.resume:
            shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        seeds_file = folder / "seeds.json"
        if args.resume and seeds_file.is_file():
            seeds = json.loads(seeds_file.read_text())
        else:
            seeds = [secrets.randbelow(2**31) for _ in range(args.runs)]
            seeds_file.write_text(json.dumps(seeds))
        started = time.monotonic()
        done = 0

        def one(index_seed: tuple[int, int], lab: str = lab, folder: Path = folder) -> Run:
            index, seed = index_seed
            results = folder / f"run-{index:03d}.json"
            if args.resume and results.is_file():
                return read_run(results, seed)
            return grade(lab, seed, results, args.timeout, args.timeout_scale, root,
                         args.part, args.keyword)

        runs = []
        print(f"{lab}: grading the reference {args.runs} times, {args.jobs} at a time", flush=True)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for run in pool.map(one, enumerate(seeds)):
                done += 1
                runs.append(run)
                state = run.problem or (f"{len(run.failed)} failed: {sorted(run.failed)}"
                                        if run.failed else "all passed")
                print(f"[{done}/{args.runs}] seed {run.seed}: {state} ({run.seconds:.0f} s)",
                      flush=True)
        selection = " and ".join(filter(None, [
            args.part and "parts " + ", ".join(args.part),
            args.keyword and f"-k {args.keyword!r}"]))
        text, clean = report(lab, runs, tests, time.monotonic() - started, args.timeout_scale,
                             selection)
        (args.out / f"{lab}.md").write_text(text)
        print()
        print(text)
        if not clean:
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
