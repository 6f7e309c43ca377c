"""Broken and hostile submissions: each ends with a valid results file, exactly the affected
tests failed, nothing undeserved, and a message that says what happened.

Each case is the reference's basics.py with a snippet from tests/hostile/lab1/ appended
(or the snippet alone), graded by the real CLI in its own process.
"""

import os
import stat
import zipfile
from pathlib import Path

import pytest

from autograder import REPO_ROOT
from autograder.engine.labs import load_lab
from bench import benchmarks
from tests.conftest import PLATFORM_NOTES, hostile_submission

EVERYTHING = ("basics: ",)
REFERENCE_BASICS = REPO_ROOT / "reference" / "lab1" / "basics.py"


def private_path(folder: str, stem: str, tmp_path: Path) -> Path:
    """A fixed place outside the grading (/tmp, /dev/shm) named for this test alone, so that
    cases graded at the same time (pytest -n) never see each other's files."""
    return Path(folder) / f"{stem}-{os.getpid()}-{tmp_path.name}"


def zip_slip(tmp_path: Path) -> Path:
    """Entries that climb out of the extraction folder, next to a correct basics.py."""
    path = tmp_path / "slip.zip"
    outside = private_path("/tmp", "hostile-zip-escape", tmp_path).name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"../../../../../../tmp/{outside}", "ESCAPED = True\n")
        archive.writestr(f"/tmp/{outside}", "ESCAPED = True\n")
        archive.write(REFERENCE_BASICS, "lab1/basics.py")
    return path


def zip_symlink(tmp_path: Path) -> Path:
    """basics.py is a symbolic link to the reference on the grading machine."""
    path = tmp_path / "symlink.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("basics.py")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, str(REFERENCE_BASICS))
    return path


def zip_bomb(tmp_path: Path) -> Path:
    """A 1 GiB basics.py that compresses to about 1 MB."""
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("basics.py", "w", force_zip64=True) as entry:
            block = b"#" * 2**20
            for _ in range(1024):
                entry.write(block)
    return path


def non_utf8_names(tmp_path: Path) -> Path:
    """File names that are not valid UTF-8, next to a correct basics.py."""
    path = tmp_path / "names.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("XXXX/notes.py", "x = 1\n")
        archive.write(REFERENCE_BASICS, "XXXX/basics.py")
    data = path.read_bytes().replace(b"XXXX", b"\xff\xfe\xfd\xfc")
    path.write_bytes(data)
    return path


def linked_zip(tmp_path: Path) -> Path:
    """A folder holding only an upload.zip that is a symbolic link to a zip of the reference
    (as a link to the staff's autograder zip would be)."""
    staff = tmp_path / "staff.zip"
    with zipfile.ZipFile(staff, "w") as archive:
        archive.write(REFERENCE_BASICS, "basics.py")
    folder = tmp_path / "linked-zip"
    folder.mkdir()
    (folder / "upload.zip").symlink_to(staff)
    return folder


def linked_folder(tmp_path: Path) -> Path:
    """basics.py inside a folder that is a symbolic link to the reference's folder."""
    folder = tmp_path / "linked-folder"
    folder.mkdir()
    (folder / "lab1").symlink_to(REFERENCE_BASICS.parent, target_is_directory=True)
    return folder


MISSING = "basics.py was not found in your submission"

# case: (names of the tests that must fail (substrings), text their output must contain,
#        how to build the submission: a snippet in tests/hostile/lab1/ unless a function)
CASES = {
    "syntax_error": (EVERYTHING, "basics.py has a syntax error (basics.py, line 5"),
    "import_error": (EVERYTHING, "importing basics.py raised RuntimeError: this file crashes"),
    "missing_function": (("pairwise_distances",), "`pairwise_distances` is not defined"),
    "wrong_shape": (("pairwise_distances",), "expected shape"),
    "nan_output": (("basics: softmax ", "linear_cross_entropy_grads"), "NaN"),
    "loop_at_import": (EVERYTHING, "importing basics.py did not finish within 20 s"),
    "loop_in_function": (("pairwise_distances",), "did not finish within 5 s"),
    "hangs_on_some_inputs": (("logsumexp matches", "log_softmax matches", "softmax matches",
                              "logsumexp stays finite", "softmax stays finite"),
                             "in logsumexp: while dim not in"),
    "sys_exit": (("pairwise_distances",), "called sys.exit(0)"),
    "os_exit": (("pairwise_distances",), "exited with code 0"),
    "huge_output": ((), ""),
    "fake_comparisons": (("pairwise_distances",), "differ from the expected result"),
    "import_grader": (("pairwise_distances",), "could not find the reference"),
    "writes_results": (("pairwise_distances",), "differ from the expected result"),
    "fork_bomb": (("pairwise_distances",), "may not start processes"),
    "memory_bomb": (("pairwise_distances",), "ran out of memory"),
    "memory_hog": (("pairwise_distances",), " of memory"),
    "thread_left_running": ((), ""),
    "signal_alarm": ((), ""),
    "ignores_signals": (("pairwise_distances",), "did not finish within 5 s"),
    "atexit_results": (("pairwise_distances",), "differ from the expected result"),
    "deletes_grader_files": (("pairwise_distances",), "differ from the expected result"),
    "reads_hidden_tests": (("pairwise_distances",), "PermissionError"),
    "gc_walk": (("pairwise_distances",), "differ from the expected result"),
    "stack_walk": (("pairwise_distances",), "differ from the expected result"),
    "tensor_subclass": (("pairwise_distances",), "differ from the expected result"),
    "equal_to_everything": (("pairwise_distances",), "cannot be graded"),
    "writes_huge_file": (("pairwise_distances",), "File too large"),
    "many_threads": ((), ""),
    "missing_package": (EVERYTHING, "No module named 'jax_is_not_installed_here'"),
    "closes_file_descriptors": (("pairwise_distances",), "closed its connection"),
    "segfault": (("pairwise_distances",), "segmentation fault"),
    "tampers_with_serialisation": (("pairwise_distances",), "differ from the expected result"),
    "zip_slip": ((), "", zip_slip),
    "zip_symlink": (EVERYTHING, MISSING, zip_symlink),
    "zip_bomb": (EVERYTHING, MISSING, zip_bomb),
    "non_utf8_names": ((), "", non_utf8_names),
    # issue 16: forging answers, signals, network, secrets, costly answers, deadlines, the
    # report, links
    "forges_answers": (("pairwise_distances",), "sent answers of its own"),
    "writes_to_channel": (("pairwise_distances",), "differ from the expected result"),
    "signals_others": (("pairwise_distances",), "PermissionError"),
    "opens_socket": (("pairwise_distances",), "PermissionError"),
    "reads_secrets": (("pairwise_distances",), "PermissionError"),
    "shared_answer": (("pairwise_distances",), "could not be read (it holds more than"),
    "extends_deadline": (("pairwise_distances",), "did not finish within 5 s"),
    "terminal_escapes": (("pairwise_distances",), "ValueError: \\x1b[2J\\x1b[31mall"),
    "empty_output": (("pairwise_distances",), "expected shape"),
    "unusual_tensor": (("pairwise_distances",), "sparse, meta or quantized"),
    "leaves_shared_memory": ((), ""),
    "linked_zip": (EVERYTHING, MISSING, linked_zip),
    "linked_folder": (EVERYTHING, MISSING, linked_folder),
}
# The kernel features whose absence each case is also graded under (simulated).
SIMULATED = {"signals_others": "no-signal-scope", "opens_socket": "no-signal-scope",
             "forges_answers": "no-landlock", "writes_to_channel": "no-landlock",
             "shared_answer": "no-landlock", "extends_deadline": "no-landlock",
             "leaves_shared_memory": "no-landlock"}
# Cases also graded with the worker and the trusted side answering as another operating system
# does (worker.SIMULATE_PLATFORM): macOS without RLIMIT_AS, Windows without `resource`, timers,
# process groups or inherited descriptors. Memory, time and the channel must still hold.
SIMULATED_PLATFORMS = [("memory_hog", "darwin"), ("memory_hog", "win32"),
                       ("loop_in_function", "win32"), ("sys_exit", "win32"),
                       ("huge_output", "win32"), ("forges_answers", "win32")]


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES) + [f"{case}@{missing}"
                                                  for case, missing in SIMULATED.items()]
                         + [f"{case}@{system}" for case, system in SIMULATED_PLATFORMS])
def test_hostile_submission(case, grade, tmp_path, monkeypatch):
    case, _, missing = case.partition("@")
    system = missing if missing in PLATFORM_NOTES else ""
    if system:
        monkeypatch.setenv("AUTOGRADER_SIMULATE_PLATFORM", system)
        missing = ""
    elif missing:
        monkeypatch.setenv("AUTOGRADER_SIMULATE_SANDBOX", missing)
    affected, message, *builder = CASES[case]
    outside = private_path("/tmp", "hostile-zip-escape", tmp_path)
    leftover = private_path("/dev/shm", "hostile-leftover", tmp_path)
    protected = sorted(REPO_ROOT.glob("autograder/lab1/test_*.py"))
    submission = builder[0](tmp_path) if builder else hostile_submission(tmp_path, case)
    for source in [] if builder else submission.glob("*.py"):  # snippets name the leftover
        source.write_text(source.read_text().replace("/dev/shm/hostile-leftover", str(leftover)))
    # Filling memory takes time (about 0.7 s per 512 MiB on an idle machine, several times that
    # on a busy one): a lower limit and a longer time limit let the memory limit act first.
    hog = case == "memory_hog"
    # The two classifier-training tests (half of a basics grading's time) are left out: no
    # snippet changes what they call, and the 15 tests left still show that the tests after
    # the one a snippet breaks keep their points. The same case again under a simulated system
    # or sandbox grades the first three tests: the one the snippets break and two after it.
    selection = ("pairwise_distances or gather_log_probs or one_hot" if missing or system
                 else "not train_classifier")
    graded = grade(submission, extra=("-k", selection,
                                      *(("--memory-limit-gib", "1.5") if hog else ())),
                   timeout_scale=6.0 if hog else 1.0)
    assert graded.returncode == 0, graded.output[-2000:]
    assert "Traceback" not in graded.output.replace("Traceback (your code", ""), graded.output

    expected_failures = {
        t["name"] for t in graded.tests if any(fragment in t["name"] for fragment in affected)
    }
    assert set(graded.failed()) == expected_failures, (
        f"failed: {sorted(graded.failed())}\nexpected: {sorted(expected_failures)}"
    )
    deserved = sum(t["max_score"] for t in graded.tests if t["name"] not in expected_failures)
    assert graded.results["score"] == deserved
    for test in graded.tests:
        if test["name"] in expected_failures:
            assert message in test["output"], f"{test['name']}: {test['output']}"
        assert len(test["output"]) <= 8000
    assert not outside.exists(), "a zip entry was written outside the staging folder"
    assert all(path.is_file() for path in protected), "grader files were deleted"
    assert not leftover.exists(), "a file was left in /dev/shm"
    assert "\x1b" not in graded.output, "a submission's terminal escape was printed raw"
    if missing:
        assert f"simulated: {missing}" in graded.results["output"]
    if system:
        assert PLATFORM_NOTES[system] in graded.results["output"], graded.results["output"]


@pytest.mark.slow
def test_a_function_that_hangs_on_some_inputs_costs_one_time_limit(grade, tmp_path):
    """The first test that hangs in logsumexp waits out its limit and names the line; the two
    after it that reach logsumexp through log_softmax are stopped by the leash, and the tests
    where logsumexp is quick pass (the case above checks the exact set)."""
    graded = grade(hostile_submission(tmp_path, "hangs_on_some_inputs"))
    first = graded.output_of("logsumexp matches")
    assert "did not finish within 5 s" in first
    assert "From now on every call to logsumexp is stopped after 2 s" in first
    for name in ("log_softmax matches", "basics: softmax matches"):
        output = graded.output_of(name)
        assert "logsumexp ran for 2 s without finishing and was stopped" in output, output
        assert 'ran out of time earlier in the test "basics: logsumexp matches' in output
    assert "Ran out of time: logsumexp (basics.py, line" in graded.results["output"]


@pytest.mark.slow
def test_every_function_hangs_each_pays_its_limit_once(grade, tmp_path):
    """DESIGN.md's hostile budget: the stubs with every TODO an infinite loop. Each function
    times out once; every later test that reaches it fails on the leash instead. The softmax
    family and cross-entropy tests (5 functions, 9 tests that reach them again and again) show
    it; `make bench` grades the whole lab this way for the budget's figure."""
    graded = grade(benchmarks.hang_submission(load_lab("lab1"), tmp_path / "hang"),
                   extra=("-k", "softmax_family or cross_entropy"))
    assert graded.returncode == 0, graded.output[-2000:]
    assert graded.passed() == [] and graded.results["score"] == 0
    timed_out, leashed = [], []
    for test in graded.tests:
        if "did not finish within" in test["output"]:
            timed_out.append(test["output"].split("it was running ")[1].split(" (")[0])
        elif "time budget for your code" not in test["output"]:  # the lab's budget ran out
            assert "without finishing and was stopped" in test["output"], test
            leashed.append(test["name"])
    assert len(timed_out) == len(set(timed_out)), f"a function timed out twice: {timed_out}"
    assert leashed, "no test reused a leash"
    for name in timed_out:
        assert f"Ran out of time: {name} (basics.py" in graded.results["output"]


SLOW = """
import functools as _functools
import time as _time
import types as _types


def _slow(function):
    @_functools.wraps(function)
    def wrapper(*args, **kwargs):
        _time.sleep(4.6)  # just under every call's 5 s limit
        return function(*args, **kwargs)
    return wrapper


for _name, _value in list(globals().items()):
    if isinstance(_value, _types.FunctionType) and not _name.startswith("_"):
        globals()[_name] = _slow(_value)
"""


@pytest.mark.slow
def test_code_that_sleeps_under_every_limit_stays_within_the_budget(grade, tmp_path):
    """Each call stays just under its limit; the lab's budget (30 s here) stops the grading
    of student code, and the results list every test, those that ran with their verdict."""
    folder = tmp_path / "slow"
    folder.mkdir()
    (folder / "basics.py").write_text(REFERENCE_BASICS.read_text() + SLOW)
    graded = grade(folder, extra=("--time-budget", "30"))
    assert graded.returncode == 0, graded.output[-2000:]
    everything = grade(REFERENCE_BASICS.parent, extra=("-k", "not cartpole"))
    assert len(graded.tests) == len(everything.tests)
    assert graded.passed(), "no test ran before the budget ran out"
    budget = "time budget for your code (30 s for the whole lab) ran out"
    stopped = [t for t in graded.tests if budget in t["output"]]
    assert stopped and all(t["status"] == "failed" for t in stopped)
    assert graded.results["execution_time"] <= 30 + 60  # the reference's time on top


def test_there_are_at_least_thirty_hostile_cases():
    assert len(CASES) >= 30
