"""`make grade`: a Gradescope "export submissions" folder graded in parallel into a CSV, with
a row for every submission, the one that overran included."""

import csv
import json
import os
import subprocess
import sys
import zipfile

import pytest

from autograder import REPO_ROOT

pytestmark = pytest.mark.slow

METADATA = """\
submission_001:
  :submitters:
  - :name: Slow Coach
    :email: slow@example.edu
    :sid: '1001'
  :created_at: 2025-09-01 10:00:00.000000000 -07:00
  :score: 0.0
submission_002:
  :submitters:
  - :name: Ada Lovelace
    :email: ada@example.edu
    :sid: '1002'
  :score: 0.0
submission_003:
  :submitters:
  - :name: Alan Turing
    :email: alan@example.edu
    :sid: '1003'
  - :name: Grace Hopper
    :email: grace@example.edu
    :sid: '1004'
  :score: 0.0
submission_004:
  :submitters:
  - :name: Zip Uploader
    :email: zip@example.edu
    :sid: '1005'
  :score: 0.0
"""

# Every function sleeps just under its time limit: the submission's grading overruns the
# batch's per-submission limit and is stopped.
SLOW = """

import time as _time

for _name, _value in list(globals().items()):
    if not _name.startswith("_") and callable(_value):
        globals()[_name] = lambda *args, **kwargs: _time.sleep(9)
"""


def test_export_layout_is_graded_into_a_csv_with_a_row_each(tmp_path):
    reference = (REPO_ROOT / "reference" / "lab1" / "basics.py").read_text()
    export = tmp_path / "download" / "assignment_7_export"
    for number in range(1, 5):
        (export / f"submission_00{number}").mkdir(parents=True)
    (export / "submission_metadata.yml").write_text(METADATA)
    (export / "submission_001" / "basics.py").write_text(reference + SLOW)
    (export / "submission_002" / "basics.py").write_text(reference)
    (export / "submission_003" / "basics.py").write_text(
        (REPO_ROOT / "examples" / "lab1" / "partial" / "basics.py").read_text())
    with zipfile.ZipFile(export / "submission_004" / "lab1-submission.zip", "w") as archive:
        archive.writestr("basics.py", reference)

    out = tmp_path / "grades"
    env = {**os.environ, "AUTOGRADER_REFERENCE_CACHE": str(tmp_path / "cache")}
    completed = subprocess.run(
        [sys.executable, "-m", "autograder", "batch", "lab1", str(tmp_path / "download"),
         "--out", str(out), "--seed", "7", "--jobs", "2", "--part", "basics", "--timeout", "60"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert completed.returncode == 0, completed.stdout + completed.stderr

    with open(out / "grades.csv") as stream:
        rows = {row["submission"]: row for row in csv.DictReader(stream)}
    assert set(rows) == {f"submission_00{n}" for n in range(1, 5)}
    full = float(rows["submission_002"]["max_score"])
    assert full > 0
    assert rows["submission_002"]["student"] == "Ada Lovelace"
    assert rows["submission_002"]["email"] == "ada@example.edu"
    assert float(rows["submission_002"]["total"]) == full
    assert rows["submission_003"]["student"] == "Alan Turing; Grace Hopper"
    assert rows["submission_003"]["email"] == "alan@example.edu; grace@example.edu"
    assert 0 < float(rows["submission_003"]["total"]) < full
    assert float(rows["submission_004"]["total"]) == full  # the uploaded zip inside the folder
    slow = rows["submission_001"]
    assert slow["student"] == "Slow Coach" and float(slow["total"]) == 0
    assert "grading took longer than 60 s and was stopped" in slow["problem"]
    test_columns = [c for c in rows["submission_002"] if c.startswith("basics: ")]
    assert len(test_columns) >= 10
    assert sum(float(rows["submission_003"][c]) for c in test_columns) == \
        float(rows["submission_003"]["total"])

    for name in ("submission_002", "submission_003", "submission_004"):
        results = json.loads((out / f"{name}.json").read_text())
        assert results["extra_data"]["seed"] == 7
    summary = (out / "summary.txt").read_text()
    assert "4 submission(s) graded" in summary
    assert "Score histogram" in summary and "Tests failed most often:" in summary
    assert "submission_001: grading took longer than 60 s" in summary
