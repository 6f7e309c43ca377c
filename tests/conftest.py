"""Helpers for the repository's own tests: grade a submission the way a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import REPO_ROOT
from autograder.engine.results import validate_results

HOSTILE = Path(__file__).parent / "hostile"
# The line a report opens with where the grader answers as macOS or as Windows does
# (AUTOGRADER_SIMULATE_PLATFORM).
PLATFORM_NOTES = {"darwin": "Note: macOS: ", "win32": "Note: Windows: "}


class Grading:
    def __init__(self, results: dict, output: str, returncode: int):
        self.results = results
        self.output = output
        self.returncode = returncode

    @property
    def tests(self) -> list[dict]:
        return self.results["tests"]

    def failed(self) -> list[str]:
        return [t["name"] for t in self.tests if t["status"] == "failed"]

    def passed(self) -> list[str]:
        return [t["name"] for t in self.tests if t["status"] == "passed"]

    def output_of(self, fragment: str) -> str:
        return "\n".join(t["output"] for t in self.tests if fragment in t["name"])


@pytest.fixture(scope="session")
def reference_cache(tmp_path_factory) -> Path:
    """One reference cache for the whole session: repeated gradings at one seed reuse it."""
    return tmp_path_factory.mktemp("reference-cache")


@pytest.fixture
def grade(tmp_path, reference_cache):
    """Grade `submission` with the real CLI in a separate process; check the results file."""

    def run(submission: Path, lab: str = "lab1", *, parts=("basics",), seed: int = 1234,
            timeout_scale: float = 1.0, extra=()) -> Grading:
        results_path = tmp_path / f"results-{len(list(tmp_path.iterdir()))}.json"
        command = [sys.executable, "-m", "autograder", "grade", lab, str(submission),
                   "--results", str(results_path), "--seed", str(seed),
                   "--timeout-scale", str(timeout_scale), *extra]
        for part in parts:
            command += ["--part", part]
        env = {**os.environ, "AUTOGRADER_REFERENCE_CACHE": str(reference_cache)}
        completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                                   timeout=600, env=env)
        output = completed.stdout + completed.stderr
        assert results_path.is_file(), f"no results file was written:\n{output[-3000:]}"
        results = json.loads(results_path.read_text())
        problems = validate_results(results)
        assert not problems, f"invalid results file: {problems}"
        return Grading(results, output, completed.returncode)

    return run


def hostile_submission(tmp_path: Path, case: str, lab: str = "lab1", part: str = "basics") -> Path:
    """The reference's file with a hostile snippet appended (its definitions win), or the
    snippet alone when it starts with `# whole file`."""
    snippet = (HOSTILE / lab / f"{case}.py").read_text()
    folder = tmp_path / f"submission-{case}"
    folder.mkdir()
    if snippet.startswith("# whole file"):
        text = snippet
    else:
        text = (REPO_ROOT / "reference" / lab / f"{part}.py").read_text() + "\n\n" + snippet
    (folder / f"{part}.py").write_text(text)
    return folder


def grade_mistake(grade, tmp_path: Path, reference: Path, case: str, passage: str, mistake: str,
                  affected: tuple[str, ...], message: str, part: str, extra=()) -> None:
    """Grade the reference file with `passage` replaced by `mistake`; exactly the tests whose
    display names contain one of `affected` must fail, each with `message` in its output."""
    source = reference.read_text()
    assert source.count(passage) == 1, f"the reference no longer contains: {passage!r}"
    submission = tmp_path / f"submission-{case}"
    submission.mkdir()
    (submission / reference.name).write_text(source.replace(passage, mistake))

    graded = grade(submission, parts=(part,), timeout_scale=1.0, extra=extra)
    assert graded.returncode == 0, graded.output[-2000:]
    expected = {t["name"] for t in graded.tests if any(f in t["name"] for f in affected)}
    names = [t["name"] for t in graded.tests]
    unmatched = [f for f in affected if not any(f in name for name in names)]
    assert not unmatched, f"no test's name contains {unmatched}"
    assert set(graded.failed()) == expected, (
        f"failed: {sorted(graded.failed())}\nexpected: {sorted(expected)}"
    )
    for test in graded.tests:
        if test["name"] in expected:
            assert message in test["output"], f"{test['name']}: {test['output']}"


def variant_folder(tmp_path: Path, reference: Path, name: str,
                   changes: list[tuple[str, str]]) -> Path:
    """A submission folder holding the reference file with each (passage, replacement) of
    `changes` applied; every passage must occur exactly once."""
    source = reference.read_text()
    for passage, replacement in changes:
        assert source.count(passage) == 1, f"the reference no longer contains: {passage!r}"
        source = source.replace(passage, replacement)
    folder = tmp_path / f"submission-{name}"
    folder.mkdir()
    (folder / reference.name).write_text(source)
    return folder


def grade_variant(grade, tmp_path: Path, reference: Path, lab: str, name: str,
                  changes: list[tuple[str, str]], extra=()):
    """Grade the reference file of `lab` with each (passage, replacement) of `changes` applied."""
    graded = grade(variant_folder(tmp_path, reference, name, changes), lab,
                   parts=(reference.stem,), timeout_scale=4.0, extra=extra)
    assert graded.returncode == 0, graded.output[-2000:]
    return graded


def assert_each_mistake_fails_its_tests(graded, mistakes: dict, points: int) -> None:
    """`mistakes` maps a name to (fragments, messages): every test whose name contains one of
    the fragments fails with every message in its output, no other test fails, and the points
    lost are those tests' points, `points` in all (stated, so that a mistake that starts to
    fail one more test is noticed)."""
    expected = set()
    for name, (fragments, messages) in mistakes.items():
        for fragment in fragments:
            failing = [t for t in graded.tests if fragment in t["name"]]
            assert failing, f"{name}: no test's name contains {fragment!r}"
            for test in failing:
                assert test["status"] == "failed", f"{name}: {test['name']} passed"
                missing = [m for m in messages if m not in test["output"]]
                assert not missing, f"{name}: {test['name']}: no {missing} in {test['output']}"
                expected.add(test["name"])
    assert set(graded.failed()) == expected, (
        f"failed: {sorted(graded.failed())}\nexpected: {sorted(expected)}")
    lost = sum(t["max_score"] - t["score"] for t in graded.tests)
    assert lost == sum(t["max_score"] for t in graded.tests if t["name"] in expected)
    assert lost == points, sorted(graded.failed())


def assert_mistakes_named(graded, mistakes: dict) -> None:
    """Exactly the tests each mistake names fail, each with the mistake's text in its output."""
    names = [test["name"] for test in graded.tests]
    expected = set()
    for case, (_, _, affected, message) in mistakes.items():
        unmatched = [fragment for fragment in affected if not any(fragment in n for n in names)]
        assert not unmatched, f"{case}: no test's name contains {unmatched}"
        for test in graded.tests:
            if any(fragment in test["name"] for fragment in affected):
                expected.add(test["name"])
                assert message in test["output"], f"{case}: {test['name']}: {test['output']}"
    assert set(graded.failed()) == expected, (
        f"failed: {sorted(graded.failed())}\nexpected: {sorted(expected)}")
