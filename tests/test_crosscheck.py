"""make crosscheck: a narrow sample of the gate (lab 1's basics under torch's generic kernels,
hidden and public), and the correct alternatives it grades still apply to the reference."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autograder import REPO_ROOT
from autograder.engine.labs import available_labs
from bench import crosscheck


@pytest.mark.parametrize("lab", available_labs())
def test_the_alternatives_apply_to_the_reference(lab, tmp_path):
    found = crosscheck.alternatives(lab, REPO_ROOT, tmp_path)
    for submission in found:
        name = f"{submission.parts[0]}.py"
        changed = (submission.folder / name).read_text()
        assert changed != (REPO_ROOT / "reference" / lab / name).read_text()
    if lab == "lab2":
        assert {s.parts[0] for s in found} >= {"transformer", "induction", "superposition",
                                               "sae", "modular_addition"}


@pytest.mark.slow
def test_basics_keeps_full_marks_under_the_generic_kernels(tmp_path):
    """The reference's basics under ATEN_CPU_CAPABILITY=default: its worker against the live
    reference, and the whole machine against a release's snapshots (the starter code 0)."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.crosscheck", "--lab", "lab1", "--part", "basics",
         "--setting", "generic", "--no-alternatives", "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    report = (tmp_path / "lab1.md").read_text() if (tmp_path / "lab1.md").is_file() else ""
    assert completed.returncode == 0, report or completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "Every grading kept full marks (the starter code 0)." in report
    row = next(line for line in report.splitlines() if line.startswith("| basics |"))
    assert "starter 0/" in row and "FAIL" not in row, row


def test_the_report_marks_the_failing_part_and_make_quality_reads_it(tmp_path):
    from bench import quality

    reference = crosscheck.Submission("reference", tmp_path, None)
    starter = crosscheck.Submission("starter code", tmp_path, None, full_marks=False)
    passed = crosscheck.Grading("hidden", "generic", reference,
                                scores={"basics": [32, 32], "dqn": [38, 38]})
    failed = crosscheck.Grading("public", "generic", reference,
                                scores={"basics": [28, 28], "dqn": [20, 23]},
                                failed=["dqn: td_target matches: 1 of 8 values differ"])
    zero = crosscheck.Grading("public", "generic", starter,
                              scores={"basics": [0, 28], "dqn": [0, 23]})
    text, clean = crosscheck.report("lab1", ["basics", "dqn"], ["generic"],
                                    [passed, failed, zero], 1, 60.0, "")
    assert not clean
    assert "| basics | 32/32 | 28/28, starter 0/28 |" in text
    assert "| dqn | 38/38 | 20/23 **FAIL**, starter 0/23 |" in text
    assert "- public, generic, reference: dqn: td_target matches" in text
    assert quality.describe(text) == ("crosscheck", "lab1", ["basics", "dqn"])
    assert "| dqn | 38/38 |" in quality.summary(text)
