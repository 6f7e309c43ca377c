"""The stub generator, and that assignments/ is what it generates from reference/."""

import ast
import tomllib

import pytest

from autograder import REPO_ROOT
from autograder.engine import stubs
from autograder.engine.labs import available_labs, load_lab

REFERENCE = '''
def add(a, b):
    """Add two numbers."""
    # BEGIN SOLUTION
    return a + b
    # END SOLUTION


class Model:
    def __init__(self):
        self.ready = True
        # BEGIN SOLUTION
        self.weight = 1
        # END SOLUTION
'''


def test_regions_become_todos_named_after_their_function():
    stub = stubs.make_stub(REFERENCE)
    assert "return a + b" not in stub and "self.weight" not in stub
    assert '"""Add two numbers."""' in stub
    assert 'raise NotImplementedError("add is not implemented yet")' in stub
    assert '        raise NotImplementedError("Model.__init__ is not implemented yet")' in stub
    assert "self.ready = True" in stub
    ast.parse(stub)


@pytest.mark.parametrize("source, problem", [
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "never closed"),
    ("def f():\n    # END SOLUTION\n    return 1\n", "without"),
    ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    pass\n    # END SOLUTION\n",
     "nested"),
    ("# BEGIN SOLUTION\nX = 1\n# END SOLUTION\n", "inside a function"),
])
def test_bad_markers_are_reported(source, problem):
    with pytest.raises(stubs.MarkerError, match=problem):
        stubs.make_stub(source)


def test_assignments_are_generated_from_reference():
    problems = stubs.differences(REPO_ROOT / "reference", REPO_ROOT / "assignments")
    assert not problems, "run `make stubs`:\n" + "\n".join(problems)


@pytest.mark.parametrize("lab", available_labs())
def test_manifest_lists_exactly_the_files_with_solution_regions(lab):
    manifest = load_lab(lab)
    marked = sorted(
        path.name for path in (REPO_ROOT / "reference" / lab).glob("*.py")
        if stubs.has_markers(path.read_text())
    )
    assert sorted(manifest.graded) == marked
    for name in manifest.support:
        assert (REPO_ROOT / "reference" / lab / name).is_file()
    for part in manifest.parts:
        assert manifest.test_file(part).is_file(), f"no hidden tests for {lab}/{part}"
    tomllib.loads((manifest.tests_dir / "lab.toml").read_text())
