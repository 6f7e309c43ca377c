"""`make release`: the student repository has what students need and nothing of the staff's,
and its `make test` / `make submit` work there on the stubs and on the reference."""

import json
import re
import shutil
import subprocess
import sys
import time
import zipfile

import pytest

from autograder import REPO_ROOT
from autograder.engine.labs import available_labs, load_lab
from autograder.engine.public_tests import declared_tests
from autograder.engine.release import find_leaks
from autograder.engine.stubs import BEGIN, END, generate_lab

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    destination = tmp_path_factory.mktemp("release") / "student"
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "autograder", "release", "--out", str(destination)],
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


def solution_regions(lab):
    for path in sorted(lab.reference_dir.glob("*.py")):
        text = path.read_text()
        for match in re.finditer(rf"^[ \t]*{BEGIN}\n(.*?)^[ \t]*{END}$", text, re.M | re.S):
            yield path.name, match.group(1)


def test_the_release_has_the_student_files_and_no_staff_ones(release, tmp_path):
    assert {p.name for p in release.iterdir()} >= {
        "README.md", "Makefile", "pyproject.toml", "requirements.txt", "assignments",
        "autograder", "snapshots"}
    assert not (release / "reference").exists()
    for name in available_labs():
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
    assert find_leaks(release, [load_lab(name) for name in available_labs()]) == []


def test_no_solution_region_and_no_hidden_test_is_in_the_release(release):
    def flat(text):
        return "\n".join(line.strip() for line in text.splitlines() if line.strip())

    files = [p for p in release.rglob("*") if p.is_file() and p.suffix not in (".pt", ".png")]
    texts = {p: p.read_text() for p in files}
    for name in available_labs():
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


def test_make_test_runs_the_public_tests_on_the_stubs(release):
    completed = make(release, "test", "lab1")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads((release / "build" / "results" / "lab1.json").read_text())
    assert results["tests"] and results["score"] == 0
    for test in results["tests"]:
        assert test["visibility"] == "visible"
        assert "not implemented yet" in test["output"], test
    assert "internal error" not in completed.stdout


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
