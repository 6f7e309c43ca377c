"""`make release`: the student repository has what students need and nothing of the staff's,
cites nothing it does not hold, and its commands work there: `make test` (narrowed with PART
and K, failing while a test fails), plain `pytest -k` / `--lf`, and `make submit`, on the
stubs and on the reference. The release is built for labs 1 and 2; lab 3, whose given code
holds lab 2's solutions (its transformer), is released on its own (the last tests)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile

import pytest

from autograder import REPO_ROOT
from autograder.delivery.public_tests import declared_tests, public_test_source
from autograder.delivery.release import find_dangling_references, find_leaks
from autograder.engine.labs import Lab, load_lab
from autograder.engine.stubs import BEGIN, END, generate_lab
from tests.conftest import PLATFORM_NOTES

LABS = ["lab1", "lab2"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    destination = tmp_path_factory.mktemp("release") / "student"
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "autograder", "release", "--out", str(destination),
         *[argument for lab in LABS for argument in ("--lab", lab)]],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    print(f"make release: {time.monotonic() - started:.1f} s")
    return destination


def make(release_dir, *args):
    """`make ARGS` in the release, with this interpreter (as `PYTHON=...` lets students do)."""
    started = time.monotonic()
    completed = subprocess.run(["make", *args, f"PYTHON={sys.executable}"], cwd=release_dir,
                               capture_output=True, text=True, timeout=600)
    print(f"make {' '.join(args)}: {time.monotonic() - started:.1f} s")
    return completed


def pytest_in(release_dir, *args):
    """Plain pytest in the release, as a student types it (the release's conftest.py loads the
    plugin; its pyproject.toml points pytest at its tests and snapshots)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=release_dir,
                          capture_output=True, text=True, timeout=600, env=env)


def solution_regions(lab):
    for path in sorted(lab.reference_dir.glob("*.py")):
        text = path.read_text()
        for match in re.finditer(rf"^[ \t]*{BEGIN}\n(.*?)^[ \t]*{END}$", text, re.M | re.S):
            yield path.name, match.group(1)


@pytest.mark.slow
def test_the_release_has_the_student_files_and_no_staff_ones(release, tmp_path):
    assert {p.name for p in release.iterdir()} >= {
        "README.md", "Makefile", "pyproject.toml", "requirements.txt", "assignments",
        "autograder", "snapshots"}
    assert not (release / "reference").exists()
    for name in LABS:
        lab = load_lab(name)
        generated = tmp_path / name
        generate_lab(lab.reference_dir, generated)
        shipped = release / "assignments" / name
        assert sorted(p.relative_to(shipped) for p in shipped.rglob("*")) == \
            sorted(p.relative_to(generated) for p in generated.rglob("*"))
        for path in generated.rglob("*"):
            if path.is_file():
                assert (shipped / path.relative_to(generated)).read_bytes() == path.read_bytes()
        assert list((release / "snapshots" / name).glob("*.pt"))
    labs = [load_lab(name) for name in LABS]
    assert find_leaks(release, labs) == []
    assert find_dangling_references(release, labs) == []


@pytest.mark.slow
def test_no_solution_region_and_no_hidden_test_is_in_the_release(release):
    def flat(text):
        return "\n".join(line.strip() for line in text.splitlines() if line.strip())

    files = [p for p in release.rglob("*") if p.is_file()
             and p.suffix not in (".pt", ".inputs", ".png")]
    texts = {p: p.read_text() for p in files}
    for name in LABS:
        lab = load_lab(name)
        stubs = flat("\n".join(p.read_text() for p in lab.assignments_dir.glob("*.py")))
        # A region whose text the stubs contain anyway (a line given elsewhere) reveals nothing.
        regions = [(file, flat(body)) for file, body in solution_regions(lab)
                   if flat(body) not in stubs]
        assert regions, "the reference has solution regions"
        for path, text in texts.items():
            for file_name, body in regions:
                assert body not in flat(text), f"{path} holds a solution region of {file_name}"
        for test_file in lab.tests_dir.glob("test_*.py"):
            declared = declared_tests(test_file.read_text())
            shipped = release / "autograder" / name / test_file.name
            public = {test for test, kind in declared.items() if kind == "public"}
            if shipped.exists():
                assert set(declared_tests(shipped.read_text())) == public
            for test, kind in declared.items():
                if kind == "hidden":
                    assert not any(f"def {test}(" in text for text in texts.values()), test


@pytest.mark.slow
def test_make_test_runs_the_public_tests_on_the_stubs_and_fails(release):
    started = time.monotonic()
    completed = make(release, "test", "lab1")
    seconds = time.monotonic() - started
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0, output  # every test fails on the starter code
    results = json.loads((release / "build" / "results" / "lab1.json").read_text())
    assert results["tests"] and results["score"] == 0
    for test in results["tests"]:
        assert test["visibility"] == "visible"
        assert "not implemented yet" in test["output"], test
    assert "internal error" not in output and "Sandbox" not in output
    settings = json.loads((release / "autograder" / "release.json").read_text())
    for part in load_lab("lab1").parts:
        hidden = settings["hidden_points"]["lab1"][part]
        assert re.search(rf"public tests: 0/\d+ points of {part}; the hidden tests "
                         rf"\({hidden:g} more points\) check the same functions on other inputs",
                         output), output[-2000:]
    print(f"release make test lab1 (starter code): {seconds:.1f} s (budget 30 s)")


@pytest.mark.slow
def test_one_test_at_a_time_with_make_and_with_pytest(release, tmp_path):
    completed = make(release, "test", "lab1", "PART=basics", "K=patchify")
    assert completed.returncode != 0
    results = json.loads((release / "build" / "results" / "lab1.json").read_text())
    assert [t["name"] for t in results["tests"]] == [
        t["name"] for t in results["tests"] if "patchify" in t["name"]] and \
        len(results["tests"]) == 1, results["tests"]

    copy = tmp_path / "student"  # a cache of its own for --lf
    shutil.copytree(release, copy, ignore=shutil.ignore_patterns("build"))
    completed = pytest_in(copy, "-k", "patchify")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "1 failed, " in completed.stdout and " deselected" in completed.stdout
    assert "patchify(): not implemented yet" in completed.stdout
    completed = pytest_in(copy, "--lf", "-q")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "1 failed" in completed.stdout and "test_patchify" in completed.stdout

    graded = subprocess.run([sys.executable, "-m", "autograder", "grade", "lab1",
                             "assignments/lab1", "--seed", "5"], cwd=release,
                            capture_output=True, text=True, timeout=300)
    assert graded.returncode == 2
    assert "stored for seed" in graded.stderr and "leave out --seed" in graded.stderr


@pytest.mark.slow
def test_the_release_documents_its_commands(release):
    shown = subprocess.run(["make", "help"], cwd=release, capture_output=True, text=True)
    for command in ("make test lab1 PART=basics", "make test lab1 K=patchify", "make submit lab1",
                    "pytest -k patchify", "--lf", "TORCH_INDEX"):
        assert command in shown.stdout, command
    readme = (release / "README.md").read_text()
    for command in ("make test lab1 PART=", "K=name", "make submit lab1", "pytest -k patchify",
                    "pytest --lf", "NotImplementedError", "non-zero exit status"):
        assert command in readme, command


STAFF_TESTS = """\
import pytest


@pytest.mark.points(1)
@pytest.mark.public
def test_softmax(student):
    # Large logits are exercised by the stability test below.
    pass


@pytest.mark.points(1)
def test_softmax_is_stable(student):
    pass


@pytest.mark.points(1)
@pytest.mark.public
def test_log_softmax(student):
    pass


@pytest.mark.points(1)
@pytest.mark.public
def test_cross_entropy(student):
    # As in the log_softmax test above.
    pass
"""


def test_citations_of_what_the_release_lacks_are_found(tmp_path):
    staff = tmp_path / "staff"
    staff.mkdir()
    (staff / "test_basics.py").write_text(STAFF_TESTS)
    lab = Lab(name="lab1", title="Lab 1", graded=("basics.py",), support=(), tests_dir=staff)
    release = tmp_path / "student"
    (release / "assignments" / "lab1").mkdir(parents=True)
    (release / "autograder" / "lab1").mkdir(parents=True)
    (release / "Makefile").write_text("help:\n\ttrue\ntest:\n\ttrue\n")
    (release / "README.md").write_text("Run `make test lab1`; make each function work.\n")
    (release / "assignments" / "lab1" / "dqn.py").write_text("")
    (release / "assignments" / "lab1" / "README.md").write_text(
        "Run `python dqn.py` and `python -m bench.dqn_cartpole --seeds 1-5`.\n\n"
        "```bash\nmake bench\n```\n\nAs `test_softmax_is_stable` checks.\n")
    (release / "autograder" / "lab1" / "test_basics.py").write_text(
        public_test_source(STAFF_TESTS))
    problems = "\n".join(find_dangling_references(release, [lab]))
    assert "cites `python -m bench.dqn_cartpole`" in problems
    assert "cites `make bench`" in problems
    assert "names the hidden test test_softmax_is_stable" in problems
    assert "'Large logits are exercised by the stability test below.' points at " \
        "test_softmax_is_stable, a hidden test" in problems
    assert "log_softmax test above" not in problems  # test_log_softmax ships
    assert "dqn.py" not in problems and "make test" not in problems
    assert "make each" not in problems  # prose, not a command


@pytest.mark.slow
def test_make_test_passes_the_reference_and_make_submit_zips_it(release, tmp_path):
    copy = tmp_path / "student"
    shutil.copytree(release, copy, ignore=shutil.ignore_patterns("build"))
    lab = load_lab("lab1")
    for name in lab.graded:
        shutil.copyfile(lab.reference_dir / name, copy / "assignments" / "lab1" / name)
    completed = make(copy, "test", "lab1")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads((copy / "build" / "results" / "lab1.json").read_text())
    assert [t["name"] for t in results["tests"] if t["status"] != "passed"] == []
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) > 0

    completed = make(copy, "submit", "lab1")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with zipfile.ZipFile(copy / "dist" / "lab1-submission.zip") as archive:
        assert sorted(archive.namelist()) == sorted(lab.graded)


def grade_in_release(release_dir, lab_name: str, folder, results, system: str = "") -> dict:
    """`grade` run in a release on `folder`; with `system` ("darwin" or "win32"), the grader
    and its worker answer as that system does (for Windows, the grading process also runs
    under tests/windows_shim.py) and the report must say so in one line. No traceback of the
    grader's may show."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    if system:
        env["AUTOGRADER_SIMULATE_PLATFORM"] = system
    grader = [str(REPO_ROOT / "tests" / "windows_shim.py")] if system == "win32" else \
        ["-m", "autograder"]
    completed = subprocess.run(
        [sys.executable, *grader, "grade", lab_name, str(folder), "--results", str(results)],
        cwd=release_dir, capture_output=True, text=True, timeout=600, env=env)
    output = completed.stdout + completed.stderr
    assert results.is_file(), output[-3000:]
    assert "Traceback" not in output.replace("Traceback (your code", ""), output[-3000:]
    if system:
        assert PLATFORM_NOTES[system] in output, output[-3000:]
    return json.loads(results.read_text())


def reference_copy(lab_name: str, tmp_path):
    """A folder holding the reference's graded files of a lab (a submission of them)."""
    lab = load_lab(lab_name)
    folder = tmp_path / f"{lab_name}-reference"
    folder.mkdir()
    for file in lab.graded:
        shutil.copyfile(lab.reference_dir / file, folder / file)
    return folder


def assert_full_public_marks(results: dict, what: str) -> None:
    assert [t["name"] for t in results["tests"] if t["status"] != "passed"] == [], what
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) > 0, what


@pytest.mark.slow
@pytest.mark.parametrize("system", ["darwin", "win32"])
def test_the_release_grades_as_on_macos_and_on_windows(release, tmp_path, system):
    """With the grader and its worker answering as macOS does (setrlimit(RLIMIT_AS) refused,
    no prctl, no seccomp or Landlock) or as Windows does (no `resource`, no timer signals, no
    process groups, the channel on standard input and output; and for the grading process,
    tests/windows_shim.py takes away what Windows lacks of os, signal and the POSIX modules),
    every lab's reference gets full public marks and the starter code 0, with one line saying
    what is missing."""
    for name in LABS:
        results = grade_in_release(release, name, reference_copy(name, tmp_path),
                                   tmp_path / f"{name}-reference.json", system)
        assert_full_public_marks(results, name)
    starter = grade_in_release(release, "lab1", release / "assignments" / "lab1",
                               tmp_path / "lab1-starter.json", system)
    assert starter["tests"] and starter["score"] == 0


@pytest.mark.slow
def test_lab3_is_released_on_its_own_and_grades_on_every_system(tmp_path):
    """Lab 3's given model.py is lab 2's transformer, solutions and all: next to lab 2 its
    release is a leak, with that reason; lab 3's own release gives its reference full public
    marks where the grader answers as macOS and as Windows do, and the starter code 0."""
    destination = tmp_path / "lab3-release"
    built = subprocess.run(
        [sys.executable, "-m", "autograder", "release", "--out", str(destination), "--lab",
         "lab3"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert built.returncode == 0, built.stdout + built.stderr
    lab2, lab3 = load_lab("lab2"), load_lab("lab3")
    assert find_leaks(destination, [lab3]) == []
    assert find_dangling_references(destination, [lab3]) == []
    # The same files judged as part of a release that also publishes lab 2 (what `make
    # release` of every lab would build):
    problems = find_leaks(destination, [lab2, lab3])
    assert any(line.startswith("assignments/lab3/model.py: solution text from "
                               "reference/lab2/transformer.py") for line in problems), problems
    assert problems[-1] == ("lab3's given code holds lab2's solutions (above): publish lab3 once "
                            "lab2 is due, in a release of its own labs (`make release lab3`)")

    solved = reference_copy("lab3", tmp_path)
    for system in ("darwin", "win32"):
        assert_full_public_marks(grade_in_release(destination, "lab3", solved,
                                                  tmp_path / f"{system}.json", system), system)
    starter = grade_in_release(destination, "lab3", destination / "assignments" / "lab3",
                               tmp_path / "starter.json")
    assert starter["tests"] and starter["score"] == 0
