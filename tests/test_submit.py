"""`make submit`: the checks a student's files get before the zip is written."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from autograder import REPO_ROOT
from autograder.delivery.submit import check_submission, submit, unfinished_functions
from autograder.engine.labs import load_lab


@pytest.mark.slow
def test_starter_code_passes_and_the_zip_holds_exactly_the_graded_files(tmp_path):
    lab = load_lab("lab1")
    out = tmp_path / "lab1-submission.zip"
    completed = subprocess.run(
        [sys.executable, "-m", "autograder", "submit", "lab1", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == sorted(lab.graded)
        for name in lab.graded:
            assert archive.read(name) == (lab.assignments_dir / name).read_bytes()
    assert f"Wrote {out}" in completed.stdout
    for name in lab.graded:
        assert name in completed.stdout
    # A warning, not a refusal: the starter code's TODOs are listed, file by file.
    assert "function(s) still raise NotImplementedError" in completed.stdout
    assert "  basics.py: pairwise_distances, " in completed.stdout
    assert "MLP.__init__, MLP.forward" in completed.stdout


@pytest.mark.slow
def test_each_problem_gets_its_own_sentence_and_no_zip(tmp_path):
    lab = load_lab("lab1")
    folder = tmp_path / "work"
    shutil.copytree(lab.reference_dir, folder)
    basics = folder / "basics.py"
    basics.write_text(basics.read_text().replace("def softmax(", "def soft_max(")
                      .replace("class MLP(", "MLP = 3\n\n\nclass Perceptron("))
    (folder / "bandits.py").write_text("while True:\n    pass\n")
    result = check_submission(lab, folder, import_timeout=3)
    problems = "\n".join(result.problems)
    assert "basics.py does not define softmax (a function the lab asks for)" in problems
    assert "basics.py defines MLP, but as a plain value where the lab asks for a class" in problems
    assert "importing bandits.py did not finish within 3 s" in problems
    assert "if __name__ == \"__main__\"" in problems



def test_missing_files_are_named_and_no_zip_is_written(tmp_path, capsys):
    out = tmp_path / "lab1-submission.zip"
    assert submit(load_lab("lab1"), tmp_path / "nothing-here", out) == 1
    printed = capsys.readouterr().out
    assert "basics.py is missing: it should be in" in printed
    assert "No zip was written" in printed
    assert not out.exists()


@pytest.mark.slow
def test_a_syntax_error_names_the_line(tmp_path):
    lab = load_lab("lab1")
    folder = tmp_path / "work"
    shutil.copytree(lab.reference_dir, folder)
    (folder / "basics.py").write_text("import torch\n\ndef broken(:\n    pass\n")
    result = check_submission(lab, folder)
    assert any("basics.py has a syntax error (basics.py, line 3" in p for p in result.problems), \
        result.problems
    assert not any("bandits.py" in p for p in result.problems), result.problems


def test_functions_that_still_raise_not_implemented_error_are_named():
    source = """
def done(x):
    return x


def todo(x):
    # TODO: implement todo
    raise NotImplementedError("todo is not implemented yet")


def started(x):
    y = x + 1
    raise NotImplementedError


def finished_with_dead_code(x):
    return x
    raise NotImplementedError


def guarded(x):
    if x < 0:
        raise NotImplementedError("negative x")
    return x


class Model:
    def __init__(self):
        raise NotImplementedError("Model.__init__ is not implemented yet")

    def forward(self, x):
        return x
"""
    assert unfinished_functions(source) == ["todo", "started", "Model.__init__"]
    assert unfinished_functions("def broken(:\n") == []


def test_the_zip_is_the_same_bytes_whatever_system_writes_it(tmp_path, monkeypatch):
    """A Windows checkout (CRLF line endings, zipfile's 'made on' system 0) and a macOS one
    give the zip a Linux one gives: the upload does not depend on the student's computer."""
    from autograder.delivery.submit import write_zip

    files = {"basics.py": b"import torch\n\n\ndef f(x):\n    return x\n", "dqn.py": b"x = 1\n"}
    write_zip(files, tmp_path / "linux.zip")
    monkeypatch.setattr(sys, "platform", "win32")
    write_zip({name: data.replace(b"\n", b"\r\n") for name, data in files.items()},
              tmp_path / "windows.zip")
    assert (tmp_path / "windows.zip").read_bytes() == (tmp_path / "linux.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "windows.zip") as archive:
        assert archive.namelist() == ["basics.py", "dqn.py"]
        assert archive.read("basics.py") == files["basics.py"]
