"""The engine end to end on lab1's basics part: reference, stubs, results file, CLI errors."""

import json
import subprocess
import sys

from autograder import REPO_ROOT
from autograder.engine.results import validate_results


def test_reference_gets_full_score(grade):
    graded = grade(REPO_ROOT / "reference" / "lab1")
    assert graded.returncode == 0
    assert graded.failed() == [], graded.output[-3000:]
    assert graded.results["score"] == sum(t["max_score"] for t in graded.tests) > 0


def test_stubs_get_zero_without_a_grader_traceback(grade):
    graded = grade(REPO_ROOT / "assignments" / "lab1")
    assert graded.returncode == 0
    assert graded.results["score"] == 0
    assert graded.passed() == []
    for test in graded.tests:
        assert "not implemented yet" in test["output"], test
        assert "internal error" not in test["output"]
    assert "Traceback (most recent call last)" not in graded.output


def test_exitfirst_stops_at_the_first_failing_test(grade):
    """`-x` (used by make mutation) grades until one test fails and lists only what ran."""
    graded = grade(REPO_ROOT / "assignments" / "lab1", extra=("-x",))
    assert graded.returncode == 0, graded.output[-2000:]
    assert len(graded.tests) == 1 and graded.failed() == [graded.tests[0]["name"]]


def test_results_have_the_gradescope_fields(grade):
    graded = grade(REPO_ROOT / "reference" / "lab1")
    results = graded.results
    assert set(results) >= {"score", "execution_time", "output", "stdout_visibility", "tests"}
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility"}
        assert test["visibility"] in {"visible", "after_published"}
    assert any(t["visibility"] == "visible" for t in results["tests"])
    assert any(t["visibility"] == "after_published" for t in results["tests"])
    assert "Grading seed: 1234" in results["output"]


def test_missing_file_and_bad_zip_are_reported(grade, tmp_path):
    bad = tmp_path / "upload.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    graded = grade(bad)
    assert graded.returncode == 0
    assert graded.results["score"] == 0
    assert "could not be opened as a zip" in graded.results["output"]
    assert "Missing files: basics.py" in graded.results["output"]
    assert all("basics.py was not found in your submission" in t["output"] for t in graded.tests)


def test_same_seed_same_inputs_different_seed_different_inputs(grade, tmp_path):
    """The grade-time seed decides the inputs: a hard-coded answer cannot pass."""
    folder = tmp_path / "records"
    first = grade(REPO_ROOT / "reference" / "lab1", seed=1,
                  extra=["--record-snapshots", str(folder / "a"), "-k", "pairwise"])
    again = grade(REPO_ROOT / "reference" / "lab1", seed=1,
                  extra=["--record-snapshots", str(folder / "b"), "-k", "pairwise"])
    other = grade(REPO_ROOT / "reference" / "lab1", seed=2,
                  extra=["--record-snapshots", str(folder / "c"), "-k", "pairwise"])
    assert len(first.tests) == len(again.tests) == len(other.tests) == 1

    def keys(name):
        return {p.name for p in (folder / name / "lab1").iterdir()}

    assert keys("a") == keys("b")
    assert keys("a").isdisjoint(keys("c"))


def test_cli_usage_errors_exit_2(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", "lab99", str(tmp_path), "--results",
         str(tmp_path / "r.json")], cwd=REPO_ROOT, capture_output=True, text=True)
    assert completed.returncode == 2
    assert "there is no lab called 'lab99'" in completed.stderr


def test_results_validation_catches_bad_fields():
    good = {"score": 1.0, "execution_time": 1, "output": "", "stdout_visibility": "hidden",
            "tests": [{"name": "t", "score": 1.0, "max_score": 1.0, "status": "passed",
                       "output": "", "visibility": "visible"}]}
    assert validate_results(good) == []
    bad = json.loads(json.dumps(good))
    bad["tests"][0].update(status="ok", visibility="secret", score=2.0)
    bad["score"] = 5
    problems = validate_results(bad)
    assert len(problems) == 4, problems


def test_submission_text_is_escaped_in_reports():
    from autograder.engine.results import clean, format_table, test_entry

    entry = test_entry(name="basics: \x1b[2Jname", score=0, max_score=1,
                       output="\x1b[31mred\x07 \ud800\n\tkept", visibility="visible", part="p")
    assert entry["name"] == "basics: \\x1b[2Jname"
    assert entry["output"] == "\\x1b[31mred\\x07 \\ud800\n\tkept"
    assert clean("\u202eevil") == "\\u202eevil"
    table = format_table({"score": 0, "execution_time": 1, "output": "", "tests": [
        {**entry, "tags": ["p"]}]}, title="t")
    table.encode("utf-8")  # no lone surrogate left to break the terminal


def test_answers_are_bounded_before_and_while_they_are_decoded():
    import pytest
    import torch

    from autograder.engine import worker as wire
    from autograder.engine.runner import Unreadable, decode_answer

    shared = [1.0]
    for _ in range(30):  # 2^30 leaves in a few hundred bytes
        shared = [shared, shared]
    with pytest.raises(Unreadable, match="more than 200000 items"):
        decode_answer(wire.encode(shared))
    with pytest.raises(Unreadable, match="tensors"):
        decode_answer(wire.encode([torch.zeros(1) for _ in range(10_001)]))
    with pytest.raises(Unreadable, match="MiB"):
        decode_answer(wire.encode(list(range(1_000_000))))
    with pytest.raises(Unreadable, match="not a message"):
        decode_answer(b"garbage")
    assert decode_answer(wire.encode({"a": [1, 2.5, "x", None]})) == {"a": [1, 2.5, "x", None]}


def test_a_cache_entry_that_does_not_verify_is_recomputed(tmp_path):
    from autograder.engine.observations import ReferenceObservations, cache_key

    class Live:
        calls = 0

        def call(self, target, *args, timeout=None, **kwargs):
            Live.calls += 1
            return [Live.calls]

    key = cache_key(tmp_path, private=False)
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600
    assert cache_key(tmp_path, private=False) == key != cache_key(tmp_path, private=True)
    reference = ReferenceObservations(live=Live(), cache_dir=tmp_path / "c", cache_key=key)
    assert reference.call("m.f", 1) == [1]
    assert reference.call("m.f", 1) == [1]  # from the cache
    (entry,) = (tmp_path / "c").iterdir()
    assert b"[1]" not in entry.read_bytes()
    entry.write_bytes(entry.read_bytes()[:-1] + b"\0")  # forged
    assert reference.call("m.f", 1) == [2]  # discarded and recomputed
    other = ReferenceObservations(live=Live(), cache_dir=tmp_path / "c", cache_key=b"k" * 32)
    assert other.call("m.f", 1) == [3]  # another key finds nothing
