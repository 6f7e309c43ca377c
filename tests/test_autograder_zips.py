"""The Gradescope autograder zip end to end (unpacked in a temporary /autograder, run by its own
`run_autograder`), and the otter-grader zip (run by `otter run`) giving the same scores on the
same submissions: a correct one, a partial one and a hostile one.

Both zips grade only the basics part, to keep this test short; the full lab is the same code.
Set AUTOGRADER_TEST_PYTHON to an interpreter other users can run (with the grader's packages)
to also exercise the switch to an unprivileged user when the tests run as root.
"""

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder import REPO_ROOT
from autograder.engine.results import part_totals, validate_results

pytestmark = pytest.mark.slow

SEED = 1234
GRADER_PYTHON = os.environ.get("AUTOGRADER_TEST_PYTHON", sys.executable)

HOSTILE = '''

def pairwise_distances(x, y):
    import os
    outcomes = []
    for path in ({hidden!r}, {reference!r}):
        try:
            with open(path) as handle:
                outcomes.append(f"read {{len(handle.read())}} bytes")
        except OSError as error:
            outcomes.append(f"blocked ({{type(error).__name__}})")
    raise RuntimeError(f"uid {{os.getuid()}}: " + "; ".join(outcomes))


_gather = gather_log_probs


def gather_log_probs(log_probs, labels):
    import json
    for results in ({results!r}, "results.json"):
        try:
            with open(results, "w") as handle:
                json.dump({{"score": 1000, "tests": []}}, handle)
        except OSError:
            pass
    return _gather(log_probs, labels)


def repeat_for_heads(x, heads):
    while True:
        pass


def max_pool(images, kernel):
    import os
    os._exit(3)
'''


def user_for_tests() -> str:
    """'nobody' when running as root with an interpreter that user can run; else ''."""
    if os.geteuid() != 0:
        return ""
    try:
        nobody = pwd.getpwnam("nobody")
        completed = subprocess.run([GRADER_PYTHON, "-c", "import torch"], user=nobody.pw_uid,
                                   group=nobody.pw_gid, extra_groups=[], cwd="/",
                                   capture_output=True, timeout=300)
    except (KeyError, OSError, subprocess.SubprocessError):
        return ""
    return "nobody" if completed.returncode == 0 else ""


def unpack(archive: Path, destination: Path) -> None:
    with zipfile.ZipFile(archive) as opened:
        for info in opened.infolist():
            target = destination / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(opened.read(info))
            if (info.external_attr >> 16) & stat.S_IXUSR:
                target.chmod(0o755)


def build_zip(command: str, lab: str, out: Path, *options: str) -> None:
    """`python -m autograder autograder-zip|otter-zip LAB OPTIONS --out OUT`, checked."""
    completed = subprocess.run(
        [sys.executable, "-m", "autograder", command, lab, *options, "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def install(archive: Path, root: Path) -> None:
    """The autograder zip unpacked into ROOT/source and run_autograder copied to ROOT, as
    Gradescope sets up /autograder."""
    unpack(archive, root / "source")
    shutil.copyfile(root / "source" / "run_autograder", root / "run_autograder")
    (root / "run_autograder").chmod(0o755)


def run_gradescope(root: Path, submission: Path, workspace: Path, user: str,
                   **env: str) -> dict:
    """`run_autograder` in ROOT with SUBMISSION's files as ROOT/submission (the earlier
    submission and results removed); its results.json. `env` adds to the environment."""
    shutil.rmtree(root / "submission", ignore_errors=True)
    shutil.rmtree(root / "results", ignore_errors=True)
    shutil.copytree(submission, root / "submission")
    environment = {**os.environ, "AUTOGRADER_ROOT": str(root),
                   "AUTOGRADER_PYTHON": GRADER_PYTHON, "AUTOGRADER_SEED": str(SEED),
                   "AUTOGRADER_USER": user,
                   "AUTOGRADER_REFERENCE_CACHE": str(workspace / "cache"), **env}
    completed = subprocess.run([str(root / "run_autograder")], cwd=root, env=environment,
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads((root / "results" / "results.json").read_text())


def run_otter(archive: Path, upload: Path, out: Path, workspace: Path) -> dict:
    """`otter run` of the otter zip ARCHIVE on the zip UPLOAD into OUT; its results.json."""
    otter = Path(sys.executable).with_name("otter")
    out.mkdir(parents=True)
    completed = subprocess.run(
        [str(otter), "run", "-a", str(archive), "-o", str(out), "--no-logo", str(upload)],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "AUTOGRADER_REFERENCE_CACHE": str(workspace / "cache")})
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads((out / "results.json").read_text())


def otter_part_totals(results: dict) -> dict:
    """{part: (score, max_score)} of otter's results, as part_totals gives ours."""
    return {t["name"]: (t["score"], t["max_score"]) for t in results["tests"] if "score" in t}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    base = tmp_path_factory.mktemp("zips")
    (base / "cache").mkdir()
    return base


@pytest.fixture(scope="module")
def submissions(workspace):
    """name -> folder with the graded files (the zip a student uploads has them at its root)."""
    reference = REPO_ROOT / "reference" / "lab1"
    root = workspace / "gradescope" / "autograder"
    folders = {}
    for name in ("correct", "partial", "hostile"):
        folder = workspace / "submissions" / name
        folder.mkdir(parents=True)
        shutil.copyfile(reference / "basics.py", folder / "basics.py")
        folders[name] = folder
    shutil.copyfile(REPO_ROOT / "examples" / "lab1" / "partial" / "basics.py",
                    folders["partial"] / "basics.py")
    with open(folders["hostile"] / "basics.py", "a") as stream:
        stream.write(HOSTILE.format(
            hidden=str(root / "source" / "autograder" / "lab1" / "test_basics.py"),
            reference=str(root / "source" / "reference" / "lab1" / "basics.py"),
            results=str(root / "results" / "results.json")))
    for folder in folders.values():
        with zipfile.ZipFile(folder.with_suffix(".zip"), "w") as archive:
            archive.write(folder / "basics.py", "basics.py")
    return folders


@pytest.fixture(scope="module")
def gradescope(workspace, submissions):
    """Unpack the autograder zip as Gradescope does and run `run_autograder` on each
    submission; returns (results by submission name, the user student code ran as)."""
    archive = workspace / "lab1-autograder.zip"
    build_zip("autograder-zip", "lab1", archive, "--part", "basics")
    with zipfile.ZipFile(archive) as opened:
        names = opened.namelist()
    assert {"setup.sh", "run_autograder"} <= set(names)
    assert not any(name.startswith(("tests/", "build/", "dist/")) for name in names)

    root = workspace / "gradescope" / "autograder"
    install(archive, root)
    user = user_for_tests()
    results = {name: run_gradescope(root, folder, workspace, user)
               for name, folder in submissions.items()}
    return results, user


def check_gradescope_fields(results: dict) -> None:
    assert validate_results(results) == []
    assert isinstance(results["score"], float)
    assert isinstance(results["execution_time"], int) and results["execution_time"] >= 0
    assert f"Grading seed: {SEED}" in results["output"]
    assert results["stdout_visibility"] == "hidden"
    assert results["tests"]
    for test in results["tests"]:
        assert test["name"].startswith("basics: ")
        assert 0 <= test["score"] <= test["max_score"]
        assert test["status"] == ("passed" if test["score"] == test["max_score"] else "failed")
        assert isinstance(test["output"], str) and test["output"]
        assert test["visibility"] in ("visible", "after_published")
    assert any(t["visibility"] == "visible" for t in results["tests"])
    assert any(t["visibility"] == "after_published" for t in results["tests"])
    assert results["score"] == sum(t["score"] for t in results["tests"])


def test_correct_submission_gets_full_marks(gradescope):
    correct = gradescope[0]["correct"]
    check_gradescope_fields(correct)
    assert [t["name"] for t in correct["tests"] if t["status"] == "failed"] == []
    assert correct["score"] == sum(t["max_score"] for t in correct["tests"])


def test_partial_submission_gets_what_local_grading_gives(gradescope, grade):
    partial = gradescope[0]["partial"]
    check_gradescope_fields(partial)
    local = grade(REPO_ROOT / "examples" / "lab1" / "partial", seed=SEED, timeout_scale=1.0)
    assert 0 < partial["score"] < sum(t["max_score"] for t in partial["tests"])
    assert [(t["name"], t["score"]) for t in partial["tests"]] == \
        [(t["name"], t["score"]) for t in local.tests]


def test_hostile_submission_changes_nothing_it_should_not(gradescope):
    hostile, user = gradescope[0]["hostile"], gradescope[1]
    check_gradescope_fields(hostile)
    outputs = {t["name"]: t for t in hostile["tests"]}
    failed = {name for name, t in outputs.items() if t["status"] == "failed"}
    assert failed == {"basics: pairwise_distances matches the reference",
                      "basics: repeat_for_heads copies the tensor for every head",
                      "basics: max_pool takes the maximum over each window"}
    assert hostile["score"] == sum(t["max_score"] for t in hostile["tests"]) - 4
    assert outputs["basics: gather_log_probs picks each row's label"]["status"] == "passed"
    assert "did not finish within 5 s" in outputs[
        "basics: repeat_for_heads copies the tensor for every head"]["output"]
    assert "exited with code 3" in outputs[
        "basics: max_pool takes the maximum over each window"]["output"]
    read = outputs["basics: pairwise_distances matches the reference"]["output"]
    assert "read " not in read.split("RuntimeError")[1].split("(basics.py")[0], read
    if user:  # the hidden tests and the reference are out of the student user's reach
        uid = pwd.getpwnam(user).pw_uid
        assert f"uid {uid}: blocked (PermissionError); blocked (PermissionError)" in read


def test_results_are_written_even_when_grading_cannot_run(workspace, submissions):
    root = workspace / "broken" / "autograder"
    unpack(workspace / "lab1-autograder.zip", root / "source")
    shutil.copytree(submissions["correct"], root / "submission")
    run = str(root / "source" / "run_autograder")
    base = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_USER": ""}

    subprocess.run([run], env={**base, "AUTOGRADER_PYTHON": str(root / "no-such-python")},
                   capture_output=True, timeout=60, check=True)
    results = json.loads((root / "results" / "results.json").read_text())
    assert validate_results(results) == [] and results["score"] == 0
    assert "could not start" in results["output"]

    (root / "results" / "results.json").unlink()
    (root / "source" / "autograder" / "lab1" / "test_basics.py").write_text("def broken(:\n")
    subprocess.run([run], env={**base, "AUTOGRADER_PYTHON": GRADER_PYTHON},
                   capture_output=True, timeout=300, check=True)
    results = json.loads((root / "results" / "results.json").read_text())
    assert validate_results(results) == [] and results["score"] == 0
    assert "Grading" in results["output"] and "please tell the course staff" in results["output"]


def test_otter_gives_the_same_scores(workspace, submissions, gradescope):
    pytest.importorskip("otter")
    archive = workspace / "lab1-otter.zip"
    build_zip("otter-zip", "lab1", archive, "--part", "basics", "--seed", str(SEED))
    for name in ("partial", "hostile"):  # the correct one adds time and nothing new here
        otter_results = run_otter(archive, submissions[name].with_suffix(".zip"),
                                  workspace / "otter" / name, workspace)
        ours = gradescope[0][name]
        parts = {t["name"]: t for t in otter_results["tests"] if "score" in t}
        assert otter_part_totals(otter_results) == part_totals(ours), name
        assert sum(t["score"] for t in parts.values()) == ours["score"]
        public = next(t for t in otter_results["tests"] if t["name"] == "Public Tests")
        failed_public = [t["name"] for t in ours["tests"]
                         if t["visibility"] == "visible" and t["status"] == "failed"]
        assert (public["status"] == "passed") == (not failed_public)
        for test in failed_public:
            assert test in public["output"]


ISSUE_16 = '''

_correct = pairwise_distances


def pairwise_distances(x, y):
    import os
    import socket
    reached = []
    for attempt in (lambda: os.kill(os.getppid(), 0),
                    lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM),
                    lambda: open(f"/proc/{os.getppid()}/environ", "rb").read(),
                    lambda: open("/dev/shm/gradescope-leftover", "w").close()):
        try:
            attempt()
            reached.append(attempt)
        except OSError:
            pass
    if reached:
        return _correct(x, y)
    raise PermissionError("nothing outside the sandbox could be reached")
'''


def test_no_signal_socket_secret_or_leftover_on_the_gradescope_path(workspace, gradescope):
    """Issue 16 on the Gradescope path, with signal scoping unavailable (simulated), and with
    Landlock unavailable too (simulated) when student code can run as its own user: signals,
    sockets, the grader's environment and /dev/shm stay out of reach."""
    root = workspace / "gradescope" / "autograder"
    user = gradescope[1]
    missing = "no-signal-scope,no-landlock" if user else "no-signal-scope"
    submission = workspace / "submissions" / "issue-16"
    submission.mkdir()
    reference = (REPO_ROOT / "reference" / "lab1" / "basics.py").read_text()
    (submission / "basics.py").write_text(reference + ISSUE_16)
    Path("/dev/shm/gradescope-leftover").unlink(missing_ok=True)
    results = run_gradescope(root, submission, workspace, user,
                             AUTOGRADER_SIMULATE_SANDBOX=missing)
    check_gradescope_fields(results)
    assert f"simulated: {', '.join(sorted(missing.split(',')))}" in results["output"]
    failed = [t for t in results["tests"] if t["status"] == "failed"]
    assert [t["name"] for t in failed] == ["basics: pairwise_distances matches the reference"]
    assert "PermissionError" in failed[0]["output"]
    assert not Path("/dev/shm/gradescope-leftover").exists()


def test_lab3_zips_carry_its_support_files_and_checkpoints(workspace):
    """Lab 3's parts read support files and checkpoints on both sides (the shipped assistant,
    dialogue.py): its Gradescope zip must carry them. The deception probes part, graded on the
    reference's probes.py through `run_autograder` and through `otter run`: full marks both
    ways, the same points."""
    root = workspace / "lab3" / "autograder"
    archive, otter_archive = workspace / "lab3-autograder.zip", workspace / "lab3-otter.zip"
    build_zip("autograder-zip", "lab3", archive, "--part", "probes")
    build_zip("otter-zip", "lab3", otter_archive, "--part", "probes", "--seed", str(SEED))
    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
    assert any(name.endswith(".pt") and "/lab3/" in name for name in names), sorted(names)
    install(archive, root)
    submission = workspace / "lab3" / "submission"
    submission.mkdir()
    shutil.copyfile(REPO_ROOT / "reference" / "lab3" / "probes.py", submission / "probes.py")
    results = run_gradescope(root, submission, workspace, user_for_tests())
    assert validate_results(results) == []
    failed = [t["name"] + ": " + t["output"][:300] for t in results["tests"]
              if t["status"] != "passed"]
    assert not failed, failed
    assert results["tests"] and all(t["name"].startswith("probes: ") for t in results["tests"])
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) == 20

    pytest.importorskip("otter")
    with zipfile.ZipFile(submission.with_suffix(".zip"), "w") as upload:
        upload.write(submission / "probes.py", "probes.py")
    otter_results = run_otter(otter_archive, submission.with_suffix(".zip"),
                              workspace / "lab3" / "otter", workspace)
    assert otter_part_totals(otter_results) == part_totals(results)
