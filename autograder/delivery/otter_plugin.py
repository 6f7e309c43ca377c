"""The otter-grader path: an otter autograder zip whose plugin runs this repository's pytest
suites, for courses that already grade with otter on Gradescope.

Otter executes "the submission" in a Jupyter kernel and then runs its own test files. Here the
submission is a set of Python files, so:

- the zip ships a one-cell notebook in `files/`, which otter copies next to the submission and
  picks as the file to execute (a notebook wins over several `.py` files), and
  `before_execution` empties it, so that no student code ever runs in otter's kernel;
- otter's own `tests/` holds one placeholder (otter requires a test file defining
  `OK_FORMAT`); its result is dropped;
- `after_grading` grades the submission folder exactly as the Gradescope zip's
  `run_autograder` does (`python -m autograder run-gradescope`, run from the grader copy in the
  zip, student code in isolated workers) and replaces otter's results with ours: one otter
  test file per lab part, one case per test, public tests as public cases.

This module imports otter, so only the otter path imports it (at `otter generate` time and
at grading time, where the zip's root, `/autograder/source`, is on `sys.path`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from otter.plugins import AbstractOtterPlugin
from otter.test_files import GradingResults
from otter.test_files.abstract_test import TestCase, TestCaseResult, TestFile

from autograder.delivery import bundle
from autograder.delivery.gradescope import GRADING_TIMEOUT, WORKER_MEMORY_GIB, write_grader_source
from autograder.engine import results as report
from autograder.engine.labs import Lab

PLUGIN = f"{__name__}.PytestSuites"
NOTEBOOK = "grade-with-pytest.ipynb"
PLACEHOLDER_TEST = '''\
"""Placeholder: otter needs a test file; the lab is graded by the PytestSuites plugin."""

OK_FORMAT = False

name = "pytest-suites"
points = 0
'''


def _python_notebook(cells: list[Any]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


class PartResults(TestFile):
    """One lab part's pytest results, shaped as an otter test file (one case per test)."""

    @classmethod
    def from_file(cls, path: str) -> PartResults:
        raise NotImplementedError("built from pytest results, not read from a file")

    @classmethod
    def from_metadata(cls, s: Any, path: str) -> PartResults:
        raise NotImplementedError("built from pytest results, not read from notebook metadata")

    def run(self, global_environment: dict[str, Any]) -> None:
        raise NotImplementedError("the tests already ran under pytest")


def to_otter(results: dict[str, Any]) -> list[PartResults]:
    """Our results.json as otter test files, grouped by part, in the order of the tests."""
    parts: dict[str, PartResults] = {}
    for test in results.get("tests", []):
        part = (test.get("tags") or ["tests"])[0]
        case = TestCase(name=test["name"], body="", hidden=test["visibility"] != "visible",
                        points=test["max_score"], success_message=None, failure_message=None)
        if part not in parts:
            parts[part] = PartResults(part, part, [], all_or_nothing=False)
        parts[part].test_cases.append(case)
        parts[part].test_case_results.append(TestCaseResult(
            test_case=case, message=test["output"], passed=test["status"] == "passed"))
    return list(parts.values())


class PytestSuites(AbstractOtterPlugin):
    """Config (in otter_config.json): lab (required), parts, timeout, memory_limit_gib,
    user (run student code as this user when grading as root; off by default, since otter's
    Python lives under /root, which other users cannot enter), seed (tests only)."""

    def before_grading(self, config: Any) -> None:
        self.autograder_dir = Path(config.autograder_dir).resolve()

    def before_execution(self, submission: Any) -> nbformat.NotebookNode:
        return _python_notebook([])  # nothing of the student's runs in otter's kernel

    def after_grading(self, results: GradingResults) -> None:
        ours = self._grade()
        results.clear_results()
        for part in to_otter(ours):
            results.results[part.name] = part
        results.set_output(ours.get("output", ""))

    def _grade(self) -> dict[str, Any]:
        config = self.plugin_config or {}
        root = getattr(self, "autograder_dir", Path(self.submission_path).resolve().parents[1])
        with tempfile.TemporaryDirectory(prefix="otter-pytest-") as scratch:
            results_path = Path(scratch) / "results.json"
            command = [sys.executable, "-m", "autograder", "run-gradescope", config["lab"],
                       "--root", str(root), "--results", str(results_path),
                       "--user", str(config.get("user", "")),
                       "--timeout", str(config.get("timeout", GRADING_TIMEOUT)),
                       "--memory-limit-gib", str(config.get("memory_limit_gib", WORKER_MEMORY_GIB))]
            for part in config.get("parts") or []:
                command += ["--part", part]
            if config.get("seed") is not None:
                command += ["--seed", str(config["seed"])]
            # From the grader copy in the zip: its engine, hidden tests and reference.
            completed = subprocess.run(command, cwd=root / "source", check=False)
            try:
                return json.loads(results_path.read_text())
            except (OSError, ValueError):
                return report.failed_results(
                    f"the grader could not run (exit code {completed.returncode}); this is "
                    "not your fault, please tell the course staff")


def build_otter_zip(lab: Lab, destination: Path, *, parts: list[str] | None = None,
                    seed: int | None = None, user: str = "") -> Path:
    """Run `otter generate` with this plugin, then add the grader at the zip's root."""
    import zipfile

    config = {"lab": lab.name, "parts": list(parts or []), "user": user}
    if seed is not None:
        config["seed"] = seed
    otter_config = {
        "lang": "python",
        "plugins": [{PLUGIN: config}],
        # One Gradescope entry per part, shown once grades are published, plus the public
        # tests' outcomes at once (otter has no per-test visibility).
        "show_hidden": True,
        "force_public_test_summary": True,
        "show_stdout": False,
    }
    destination = destination.resolve()
    with tempfile.TemporaryDirectory(prefix="otter-zip-") as scratch:
        work = Path(scratch)
        (work / "tests").mkdir()
        (work / "tests" / "pytest_suites.py").write_text(PLACEHOLDER_TEST)
        (work / "otter_config.json").write_text(json.dumps(otter_config, indent=2))
        torch, pins = bundle.pinned_requirements()
        (work / "requirements.txt").write_text("\n".join(
            [f"--extra-index-url {bundle.TORCH_CPU_INDEX}", f"torch=={torch}", *pins]) + "\n")
        nbformat.write(_python_notebook([nbformat.v4.new_code_cell(
            "# Graded by the lab's pytest suites (otter plugin PytestSuites).")]),
            work / NOTEBOOK)
        generated = work / "otter.zip"
        completed = subprocess.run(
            [sys.executable, "-m", "otter", "generate", "--tests-dir", "tests", "--output-path",
             str(generated), "--config", "otter_config.json", "--requirements",
             "requirements.txt", "--no-environment", "--python-version", "3.11", NOTEBOOK],
            cwd=work, capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"otter generate failed:\n{completed.stdout}{completed.stderr}")
        source = work / "source"
        write_grader_source(lab, source)
        (source / "requirements.txt").unlink()  # otter's own requirements.txt is at the root
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.with_name(destination.name + ".tmp")
        with zipfile.ZipFile(generated) as original, \
                zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for info in original.infolist():
                archive.writestr(info, original.read(info))
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(source).as_posix())
        temporary.replace(destination)
    return destination
