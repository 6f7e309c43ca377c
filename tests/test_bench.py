"""The measuring tools in bench/: the submissions the benchmark generates, the flakiness
statistics, and the in-process harness that the engine's overhead is measured against."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import REPO_ROOT
from autograder.engine.labs import load_lab
from bench import benchmarks, flaky

LAB = load_lab("lab1")


def _todo_count(path: Path) -> int:
    return path.read_text().count("raise NotImplementedError(")


def test_hanging_submission_loops_wherever_the_stubs_raise(tmp_path):
    folder = benchmarks.hang_submission(LAB, tmp_path / "hang")
    for name in LAB.graded:
        text = (folder / name).read_text()
        tree = ast.parse(text)
        loops = [node for node in ast.walk(tree) if isinstance(node, ast.While)
                 and isinstance(node.test, ast.Constant) and node.test.value is True]
        assert len(loops) == _todo_count(LAB.assignments_dir / name) > 0, name
        assert "is not implemented yet" not in text


def test_mixed_submissions_hold_reference_stub_and_partial_files(tmp_path):
    folder = benchmarks.mixed_submissions(LAB, tmp_path / "mixed")
    submissions = sorted(folder.iterdir())
    assert len(submissions) == 20
    counts = []
    for submission in submissions:
        for name in LAB.graded:
            path = submission / name
            ast.parse(path.read_text())
            counts.append((_todo_count(path), _todo_count(LAB.assignments_dir / name)))
    assert any(todos == 0 for todos, _ in counts)
    assert any(todos == full for todos, full in counts)
    assert any(0 < todos < full for todos, full in counts)


def test_flakiness_statistics():
    assert flaky.binomial_tail(0, 50, 1e-6) == 1.0
    assert flaky.binomial_tail(1, 50, 1e-6) == pytest.approx(1 - (1 - 1e-6) ** 50)
    assert flaky.upper_bound(0, 50) == pytest.approx(1 - 0.05 ** (1 / 50), rel=1e-6)
    assert flaky.upper_bound(5, 50) > 0.1


def test_statistical_tests_are_recognised_with_their_stated_probability():
    tests = {test.function: test for test in flaky.collect("lab1")}
    assert tests["test_pairwise_distances"].stated is None
    statistical = [t for t in tests.values() if t.stated is not None]
    for test in statistical:
        assert 0 < test.stated <= 1e-6, test


def test_inprocess_harness_runs_a_lab_test_without_workers():
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", str(LAB.test_file("basics")), "-q",
         "-c", str(REPO_ROOT / "pyproject.toml"), "--rootdir", str(REPO_ROOT),
         "-p", "no:cacheprovider", "-p", "no:autograder.engine.plugin", "-p", "bench.inprocess",
         "--inprocess-impl", str(LAB.reference_dir), "-k", "pairwise or gather"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "2 passed" in completed.stdout
