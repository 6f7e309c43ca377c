"""Reducing a test file to its public tests: no hidden source survives, the public tests read
as written, and every lab's files reduce cleanly."""

import ast

import pytest

from autograder.delivery.public_tests import (
    ReleaseError,
    declared_tests,
    probe_source,
    public_test_source,
    words,
)
from autograder.engine.labs import available_labs, load_lab

MIXED = '''"""Tests of a made-up part."""

import math
import os
from statistics import NormalDist, mean

import pytest

from autograder.engine.checks import check

SHARED = [1, 2, 3]
HIDDEN_ONLY = {"secret": 42}


def shared_helper(x):
    return math.sqrt(x)


def hidden_helper(x):
    # the tolerance argument for the hidden test
    return NormalDist().inv_cdf(x) + HIDDEN_ONLY["secret"]


@pytest.fixture
def public_fixture():
    return 1


@pytest.fixture
def hidden_fixture():
    return os.getcwd()


@pytest.mark.points(1)
@pytest.mark.public
@pytest.mark.parametrize("value", SHARED)
def test_public(student, public_fixture, value):
    """The public test."""
    check(shared_helper(value) > 0, "positive")  # a comment that stays


# ----------------------------------------------------------------- hidden section
# why the hidden test uses 0.999
@pytest.mark.points(2)
def test_hidden(student, hidden_fixture):
    """The hidden test."""
    check(hidden_helper(0.999) > mean(SHARED), "hidden threshold 0.999")
'''


def test_hidden_tests_and_what_only_they_use_are_dropped():
    reduced = public_test_source(MIXED)
    assert reduced is not None
    tree = ast.parse(reduced)
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert defined == {"shared_helper", "public_fixture", "test_public"}
    for gone in ("test_hidden", "hidden_helper", "hidden_fixture", "HIDDEN_ONLY", "0.999",
                 "import os", "NormalDist", "mean", "hidden section", "tolerance argument"):
        assert gone not in reduced, gone
    for kept in ('"""Tests of a made-up part."""', "import math", "SHARED = [1, 2, 3]",
                 "import pytest", "from autograder.engine.checks import check",
                 '    check(shared_helper(value) > 0, "positive")  # a comment that stays'):
        assert kept in reduced, kept
    assert declared_tests(reduced) == {"test_public": "public"}
    assert declared_tests(MIXED) == {"test_public": "public", "test_hidden": "hidden"}


def test_a_file_without_public_tests_is_not_shipped():
    assert public_test_source(MIXED.replace("@pytest.mark.public\n", "")) is None


def test_module_level_public_mark_keeps_every_test():
    source = MIXED.replace("SHARED = [1, 2, 3]",
                           "pytestmark = pytest.mark.public\nSHARED = [1, 2, 3]")
    assert set(declared_tests(public_test_source(source))) == {"test_public", "test_hidden"}


@pytest.mark.parametrize("source, problem", [
    ("import pytest\n\n@pytest.mark.parametrize('x', [1, pytest.param(2, marks=pytest.mark.public)"
     "])\ndef test_x(x):\n    pass\n", "marks only some parameters public"),
    ("import pytest\n\nclass TestMixed:\n    @pytest.mark.public\n    def test_a(self):\n"
     "        pass\n\n    def test_b(self):\n        pass\n", "mixes public and hidden tests"),
])
def test_ambiguous_visibility_is_refused(source, problem):
    with pytest.raises(ReleaseError, match=problem):
        public_test_source(source)


def test_probes_keep_only_what_the_public_tests_name():
    probes = '''import basics
import torch


def _helper(x):
    return torch.as_tensor(x)


def used_probe(x):
    return _helper(basics.f(x))


def hidden_probe(x):
    return basics.g(x)
'''
    reduced = probe_source(probes, words('student.probe("part.used_probe", 1)'))
    assert "def used_probe" in reduced and "def _helper" in reduced
    assert "hidden_probe" not in reduced and "basics.g" not in reduced
    assert probe_source(probes, {"something_else"}) is None


@pytest.mark.parametrize("lab", available_labs())
def test_every_lab_test_file_reduces_to_exactly_its_public_tests(lab):
    for path in sorted(load_lab(lab).tests_dir.glob("test_*.py")):
        source = path.read_text()
        public = {name for name, kind in declared_tests(source).items() if kind == "public"}
        reduced = public_test_source(source, str(path))
        if reduced is None:
            assert not public
            continue
        assert set(declared_tests(reduced)) == public, path.name
        for name, kind in declared_tests(source).items():
            if kind == "hidden":
                assert f"def {name}(" not in reduced, f"{path.name}: {name}"
