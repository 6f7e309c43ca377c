"""`make grade`: a Gradescope "export submissions" folder (tests/fixtures/gradescope_export, in
the shape of a real export) graded in parallel into a CSV with one row per student; a second
run with `--student` regrades one submission into the same CSV."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import REPO_ROOT
from autograder.delivery.batch import BatchError, choose, find_submissions
from autograder.delivery.gradescope_export import read_export_metadata

EXPORT = Path(__file__).parent / "fixtures" / "gradescope_export"
GROUP, LATE, BROKEN, SLOW = (f"submission_{n}" for n in (216975964, 216996427, 217362225,
                                                         217191681))

# Every function sleeps just under its time limit: the submission's grading overruns the
# batch's per-submission limit and is stopped.
SLOW_CODE = """

import time as _time

for _name, _value in list(globals().items()):
    if not _name.startswith("_") and callable(_value):
        globals()[_name] = lambda *args, **kwargs: _time.sleep(9)
"""


def make_export(root: Path) -> Path:
    """The export as Gradescope's zip unpacks: one `assignment_<id>_export` folder inside."""
    export = root / "assignment_7_export"
    export.mkdir(parents=True)
    shutil.copyfile(EXPORT / "submission_metadata.yml", export / "submission_metadata.yml")
    reference = (REPO_ROOT / "reference" / "lab1" / "basics.py").read_text()
    partial = (REPO_ROOT / "examples" / "lab1" / "partial" / "basics.py").read_text()
    for name, relative, text in ((GROUP, "basics.py", partial),
                                 (LATE, "assignments/lab1/basics.py", reference),  # nested
                                 (SLOW, "basics.py", reference + SLOW_CODE)):
        (export / name / relative).parent.mkdir(parents=True)
        (export / name / relative).write_text(text)
    (export / BROKEN).mkdir()
    (export / BROKEN / "lab1-submission.zip").write_bytes(b"PK\x03\x04 not really a zip")
    return export


def batch(root: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUTOGRADER_REFERENCE_CACHE": str(root / "cache")}
    # 40 s per submission: a basics grading takes 5-11 s on this 2-core machine under the test
    # suite's load (the hostile cases' gradings, measured); the slow one takes far longer.
    return subprocess.run(
        [sys.executable, "-m", "autograder", "batch", "lab1", str(root / "download"),
         "--out", str(out), "--jobs", "2", "--part", "basics", "--timeout", "40", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env=env)


def rows_of(out: Path) -> list[dict[str, str]]:
    with open(out / "grades.csv") as stream:
        return list(csv.DictReader(stream))


def test_the_metadata_reader_takes_every_submitter_time_and_score():
    metadata = read_export_metadata(EXPORT)
    assert [p["sid"] for p in metadata[GROUP]["submitters"]] == ["06758767", "06754968"]
    assert metadata[GROUP]["submitters"][1] == {
        "name": "Grace Hopper", "email": "grace@example.edu", "sid": "06754968"}
    assert metadata[GROUP]["score"] == 10.0
    assert metadata[LATE]["created_at"].isoformat() == "2025-09-16T08:59:59.089605+00:00"


def test_a_student_is_found_by_name_email_sid_or_folder(tmp_path):
    submissions = find_submissions(make_export(tmp_path))
    for wanted in ("Grace Hopper", "grace@example.edu", "06754968", GROUP, "grace"):
        assert choose(submissions, wanted).name == GROUP
    with pytest.raises(BatchError, match="no submission is from 'Nobody'"):
        choose(submissions, "Nobody")
    with pytest.raises(BatchError, match=r"matches \d+ submissions"):
        choose(submissions, "a")  # part of several names


@pytest.mark.slow
def test_an_export_gives_a_row_per_student_and_one_student_is_regraded_in_place(tmp_path):
    make_export(tmp_path / "download")
    out = tmp_path / "grades"
    completed = batch(tmp_path, out, "--seed", "7", "--due", "2025-09-16 00:00 -07:00")
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "reference: " in output and " tests (basics), " in output  # progress on the way

    rows = rows_of(out)
    by_sid = {row["sid"]: row for row in rows}
    assert len(rows) == 5 and set(by_sid) == {"06758767", "06754968", "06828527", "06433975",
                                              "06755156"}
    alan, grace, ada = by_sid["06758767"], by_sid["06754968"], by_sid["06828527"]
    full = float(ada["max_score"])
    assert full > 0 and all(row["seed"] == "7" for row in rows)
    # The group's two members: one row each, the same submission and scores.
    assert (alan["name"], grace["name"], grace["email"]) == ("Alan Turing", "Grace Hopper",
                                                             "grace@example.edu")
    assert alan["submission"] == grace["submission"] == GROUP
    assert alan["total"] == grace["total"] and 0 < float(alan["total"]) < full
    assert float(alan["difference"]) == float(alan["total"]) - 10.0
    assert alan["gradescope_score"] == "10"
    # Complete, nested two folders down, and late by two hours less a second.
    assert float(ada["total"]) == full and ada["problem"] == ""
    assert ada["lateness"] == "1:59:59" and alan["lateness"] == "0:00:00"
    assert ada["submitted_at"] == "2025-09-16T08:59:59.089605+00:00"
    assert float(ada["difference"]) == full
    # A zip that does not open, and a submission that overruns: each says why.
    broken = by_sid["06433975"]
    assert broken["problem"].startswith("nothing to grade: lab1-submission.zip could not be "
                                        "opened as a zip file"), broken
    assert "grading took longer than 40 s and was stopped" in by_sid["06755156"]["problem"]
    tests = [column for column in ada if column.startswith("basics: ")]
    assert len(tests) >= 10
    assert sum(float(alan[column]) for column in tests) == float(alan["total"])

    summary = (out / "summary.txt").read_text()
    assert "4 submission(s), 5 student(s); seed 7" in summary
    assert f"{BROKEN}: nothing to grade: lab1-submission.zip" in summary
    assert f"{SLOW}: grading took longer than 40 s" in summary
    assert f"1 late submission(s)\n  {LATE}: 1:59:59 late" in summary
    assert "Scores that differ from Gradescope's" in summary
    feedback = (out / f"{GROUP}.md").read_text()
    assert feedback.startswith("# Lab 1") and "Alan Turing; Grace Hopper" in feedback
    assert "| basics |" in feedback and "## Failed tests" in feedback
    assert json.loads((out / f"{LATE}.json").read_text())["extra_data"]["seed"] == 7

    # The group fixes nothing but asks for a regrade: only their rows change (here: the seed
    # they were graded at), the others stay, and the CSV is not replaced by a one-row file.
    completed = batch(tmp_path, out, "--student", "grace@example.edu", "--seed", "8")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    again = {row["sid"]: row for row in rows_of(out)}
    assert len(again) == 5
    assert again["06758767"]["seed"] == again["06754968"]["seed"] == "8"
    for sid in ("06828527", "06433975", "06755156"):
        assert again[sid] == by_sid[sid]
    assert again["06828527"]["lateness"] == "1:59:59"  # the due time is remembered
    assert f"Regraded at another seed: {GROUP} (seed 8)" in (out / "summary.txt").read_text()


def test_a_submission_listed_without_its_folder_still_gets_a_row(tmp_path):
    export = make_export(tmp_path)
    shutil.rmtree(export / LATE)
    (export / "stray.txt").write_text("not a submission")
    submissions = {s.name: s for s in find_submissions(tmp_path)}
    assert set(submissions) == {GROUP, LATE, BROKEN, SLOW}
    assert not submissions[LATE].path.exists()
    assert [p.name for p in submissions[LATE].students] == ["Ada Lovelace"]


def test_a_regrade_needs_an_earlier_batch(tmp_path):
    make_export(tmp_path / "download")
    completed = batch(tmp_path, tmp_path / "nothing-yet", "--student", "Ada Lovelace")
    assert completed.returncode == 2
    assert "holds no earlier batch to regrade into" in completed.stderr
    assert "Traceback" not in completed.stderr


BATCH_HOSTILE = '''

_correct_pairwise_distances = pairwise_distances


def pairwise_distances(x, y):
    import os
    import pathlib
    import signal
    reached = []
    for attempt in (lambda: os.kill(os.getppid(), signal.SIGSTOP),
                    lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGSTOP),
                    lambda: pathlib.Path({cache!r}, "planted").write_text("forged"),
                    lambda: pathlib.Path("/dev/shm/batch-leftover").write_text("state")):
        try:
            attempt()
            reached.append(attempt)
        except OSError:
            pass
    if reached:
        return _correct_pairwise_distances(x, y)
    raise PermissionError("nothing outside the sandbox could be reached")
'''


@pytest.mark.slow
def test_a_hostile_submission_changes_nothing_for_an_honest_one_next_to_it(tmp_path,
                                                                          monkeypatch):
    """Issue 16: in one batch, a submission that signals the grading processes and writes to
    the reference cache and /dev/shm gets nothing for it, and the honest copy of the reference
    next to it gets full marks. Without Landlock the batch refuses to run unless told."""
    download = tmp_path / "download"
    reference = (REPO_ROOT / "reference" / "lab1" / "basics.py").read_text()
    hostile = reference + BATCH_HOSTILE.format(cache=str(tmp_path / "cache"))
    for name, text in (("honest", reference), ("hostile", hostile)):
        (download / name).mkdir(parents=True)
        (download / name / "basics.py").write_text(text)
    Path("/dev/shm/batch-leftover").unlink(missing_ok=True)

    monkeypatch.setenv("AUTOGRADER_SIMULATE_SANDBOX", "no-landlock")
    refused = batch(tmp_path, tmp_path / "refused")
    assert refused.returncode == 2 and "--unsandboxed" in refused.stderr, refused.stderr
    monkeypatch.delenv("AUTOGRADER_SIMULATE_SANDBOX")

    completed = batch(tmp_path, tmp_path / "out")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = {name: json.loads((tmp_path / "out" / f"{name}.json").read_text())
               for name in ("honest", "hostile")}
    honest, bad = results["honest"], results["hostile"]
    assert honest["score"] == sum(t["max_score"] for t in honest["tests"]) > 0
    failed = [t for t in bad["tests"] if t["status"] == "failed"]
    assert [t["name"] for t in failed] == ["basics: pairwise_distances matches the reference"]
    assert "PermissionError" in failed[0]["output"]
    assert not (tmp_path / "cache" / "planted").exists()
    assert not Path("/dev/shm/batch-leftover").exists()
