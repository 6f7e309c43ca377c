"""The hint "fix X first": a failed test whose code called, from inside the submission, a
function that fails its own tests ends its message with a line naming that function.

The worker records which functions of the graded files each call ran (directly, from the
test's call or probe, or only from inside another of the submission's functions); the
trusted side turns the record into the hint once every test ran. The record is the worker's
word: it may change a hint, never a verdict or a score.
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
import torch

from autograder import REPO_ROOT
from autograder.engine import worker as wire
from autograder.engine.plugin import _with_pointer, cascade_pointers
from autograder.engine.results import MAX_OUTPUT_CHARS, POINTER, format_table
from autograder.engine.runner import Implementation
from tests.conftest import variant_folder

REFERENCE = REPO_ROOT / "reference" / "lab1" / "basics.py"
# The softmax family, cross-entropy and the gradient built on softmax: quick to grade.
SOFTMAX_TESTS = ("-k", "softmax_family or cross_entropy")

# A realistic mistake: the maximum taken without keepdim, so it does not broadcast back.
LOGSUMEXP_DROPS_KEEPDIM = [(
    "    maximum = x.amax(dim=dim, keepdim=True)\n"
    "    return (maximum + (x - maximum).exp().sum(dim=dim, keepdim=True).log()).squeeze(dim)",
    "    maximum = x.amax(dim=dim)\n"
    "    return maximum + (x - maximum).exp().sum(dim=dim).log()")]
CROSS_ENTROPY_SUMS = [("return -gather_log_probs(log_softmax(logits, dim=-1), labels).mean()",
                       "return -gather_log_probs(log_softmax(logits, dim=-1), labels).sum()")]

# Python's class machinery around the functions the worker wraps: a dataclass, a
# staticmethod, a classmethod, a property, a cached function, a subclass of a student's own
# nn.Module with zero-argument super(), and a function imported under another name.
STRUCTURES = '''

import dataclasses
import functools


@dataclasses.dataclass(frozen=True)
class _Reduction:
    dim: int

    def maximum(self, x):
        return x.amax(dim=self.dim, keepdim=True)


class _Stable:
    @staticmethod
    def shifted(x, maximum):
        return x - maximum

    @classmethod
    def make(cls):
        return cls()

    @property
    def squeeze(self):
        return True


@functools.lru_cache(maxsize=None)
def _unused(n):
    return n


def logsumexp(x, dim=-1):
    reduction = _Reduction(dim)
    assert reduction == _Reduction(dim) and "_Reduction" in repr(reduction)
    maximum = reduction.maximum(x)
    stable = _Stable.make()
    total = (maximum + _Stable.shifted(x, maximum).exp().sum(dim=dim, keepdim=True).log())
    return total.squeeze(dim) if stable.squeeze else total


_log_softmax = log_softmax


def softmax(x, dim=-1):
    return _log_softmax(x, dim=dim).exp()


class _Base(nn.Module):
    def __init__(self, d_in, d_hidden):
        super().__init__()
        self.hidden = nn.Linear(d_in, d_hidden)

    def forward(self, x):
        return torch.relu(self.hidden(x))


class MLP(_Base):
    def __init__(self, d_in, d_hidden, d_out):
        super().__init__(d_in, d_hidden)
        self.output = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.output(super().forward(x))
'''


# ----------------------------------------------------------------------------- the hint itself


def _records(**passed):
    return {key: {"passed": value} for key, value in passed.items()}


def test_a_helper_that_fails_its_own_tests_is_named_in_the_tests_built_on_it():
    records = _records(lse=False, log_softmax=False, ce=False, gather=True, train=False,
                       other=False)
    calls = {
        "lse": {"b:logsumexp": True},
        "log_softmax": {"b:log_softmax": True, "b:logsumexp": False},
        "ce": {"b:cross_entropy": True, "b:log_softmax": False, "b:gather": False,
               "b:logsumexp": False},
        "gather": {"b:gather": True},
        "train": {"b:MLP.__init__": True, "b:train": True, "b:MLP.forward": False,
                  "b:cross_entropy": False, "b:log_softmax": False, "b:logsumexp": False},
        # fails on its own: called logsumexp directly too, and a passing helper
        "other": {"b:other": True, "b:logsumexp": True, "b:gather": False},
    }
    pointers = cascade_pointers(records, calls)
    assert pointers == {
        "log_softmax": "logsumexp, which this test's code calls, fails its own tests: "
                       "fix logsumexp first.",
        "ce": "log_softmax and logsumexp, which this test's code calls, fail their own "
              "tests: fix logsumexp first.",
        # at most three, the one to fix first kept
        "train": "cross_entropy, log_softmax and logsumexp, which this test's code calls, "
                 "fail their own tests: fix logsumexp first.",
    }
    assert all(POINTER in line for line in pointers.values())
    # nothing failed on its own: every helper passes, so no hint
    assert cascade_pointers(_records(ce=False, gather=True),
                            {"ce": {"b:ce": True, "b:gather": False},
                             "gather": {"b:gather": True}}) == {}


def test_the_hint_survives_clipping_and_shows_in_the_table():
    pointer = "logsumexp, which this test's code calls, fails its own tests: fix logsumexp first."
    long = "\n".join(f"line {i} " + "x" * 100 for i in range(200))
    output = _with_pointer(long, pointer)
    assert output.endswith("\n" + pointer) and len(output) <= MAX_OUTPUT_CHARS
    assert _with_pointer("short", None) == "short"
    table = format_table({"score": 0, "execution_time": 1, "output": "", "tests": [
        {"name": "basics: t", "score": 0, "max_score": 1, "status": "failed",
         "output": output, "visibility": "visible", "tags": ["basics"]}]}, title="t")
    assert table.rstrip().endswith(pointer)


# ----------------------------------------------------------------------------- the worker's record


@pytest.fixture
def student_module(tmp_path):
    """Import a small graded module and a probe-like module from a temporary folder."""
    names = []

    def load(source: str, name: str = "graded_mod", probe: str | None = None):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        sys.path.insert(0, str(tmp_path))
        names.append(name)
        module = importlib.import_module(name)
        others = []
        if probe:
            (tmp_path / "probe_mod.py").write_text(textwrap.dedent(probe))
            names.append("probe_mod")
            others.append(importlib.import_module("probe_mod"))
        recorder = wire.CallRecorder(tmp_path, {name})
        recorder.instrument(others)
        return module, recorder, others

    yield load
    sys.path.remove(str(tmp_path))
    for name in names:
        sys.modules.pop(name, None)


def test_the_worker_records_direct_and_indirect_calls(student_module):
    module, recorder, (probe,) = student_module('''
        import dataclasses
        import torch
        from torch import nn

        def helper(x):
            return x + 1

        def top(x):
            return helper(x) * 2

        def recursive(n):
            return 0 if n == 0 else recursive(n - 1)

        class Tools:
            @staticmethod
            def static(x):
                return helper(x)

            @classmethod
            def make(cls):
                return cls()

            @property
            def value(self):
                return 3

        @dataclasses.dataclass
        class Point:
            x: int

            def norm(self):
                return abs(self.x)

        class Inner(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(2, 2)

            def forward(self, x):
                return self.linear(x)

        class Outer(nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = Inner()

            def forward(self, x):
                return torch.relu(self.inner(x))
        ''', probe='''
        from graded_mod import helper as imported_helper

        def run(x):
            return imported_helper(x)
        ''')
    # what is left alone stays the very same object, and still works
    assert isinstance(vars(module.Tools)["static"], staticmethod)
    assert isinstance(vars(module.Tools)["make"], classmethod)
    assert isinstance(vars(module.Tools)["value"], property)
    assert module.Tools.make().value == 3
    assert module.Point(-2) == module.Point(-2) and module.Point(-2).norm() == 2
    assert "Point(x=-2)" in repr(module.Point(-2))
    model = module.Outer()
    assert set(model.state_dict()) == {"inner.linear.weight", "inner.linear.bias"}
    model.load_state_dict(module.Outer().state_dict(), strict=True)
    assert model(torch.ones(1, 2)).shape == (1, 2)
    assert module.top.__name__ == "top" and module.top.__wrapped__.__name__ == "top"

    def calls_of(function, *args):
        recorder.start()
        function(*args)
        return recorder.record()

    assert calls_of(module.top, 1) == [["graded_mod:top", True], ["graded_mod:helper", False]]
    assert calls_of(module.helper, 1) == [["graded_mod:helper", True]]
    assert calls_of(probe.run, 1) == [["graded_mod:helper", True]]  # from-imported: replaced
    assert calls_of(module.Tools.static, 1) == [["graded_mod:helper", True]]  # not recorded
    assert calls_of(module.recursive, 3) == [["graded_mod:recursive", True]]
    assert calls_of(model, torch.ones(1, 2)) == [["graded_mod:Outer.forward", True],
                                                 ["graded_mod:Inner.forward", False]]
    assert calls_of(module.Outer) == [["graded_mod:Outer.__init__", True],
                                      ["graded_mod:Inner.__init__", False]]
    assert ["graded_mod:Point.__init__", True] in calls_of(module.Point, 1)
    # an exception still unwinds the depth
    recorder.start()
    with pytest.raises(TypeError):
        module.top("a")
    assert recorder.depth == [0]
    # instrumenting again wraps nothing twice
    recorder.done.clear()
    recorder.instrument([probe])
    assert not hasattr(module.top.__wrapped__, "__wrapped__")


def test_the_record_is_bounded_and_a_forged_one_is_filtered(student_module):
    _, recorder, _ = student_module("def f():\n    return 1\n")
    recorder.start()
    for i in range(500):
        recorder.calls[f"graded_mod:f{i}" + "x" * 300] = True
    recorder.calls[1] = True
    record = recorder.record()
    assert len(record) == wire.MAX_RECORDED and all(len(name) <= wire.MAX_NAME
                                                     for name, _ in record)
    recorder.calls = "not a dict"
    assert recorder.record() == []

    implementation = Implementation(REPO_ROOT)  # no process is started
    implementation._note_calls([["basics:logsumexp", False], ["basics:logsumexp", True],
                                ["not a name!", True], ["basics:f", "yes"], [1, True],
                                ["basics:" + "g" * 300, True], "junk"])
    implementation._note_calls({"basics:x": True})
    assert implementation.called == {"basics:logsumexp": True}


# ----------------------------------------------------------------------------- graded end to end


def _tests(graded, fragment):
    tests = [t for t in graded.tests if fragment in t["name"]]
    assert tests, fragment
    return tests


@pytest.mark.slow
def test_a_wrong_logsumexp_is_named_in_the_tests_built_on_it(grade, tmp_path):
    folder = variant_folder(tmp_path, REFERENCE, "logsumexp", LOGSUMEXP_DROPS_KEEPDIM)
    graded = grade(folder, extra=SOFTMAX_TESTS)
    assert graded.returncode == 0, graded.output[-2000:]
    assert len(graded.tests) == 9 and graded.passed() == [], graded.failed()
    for test in _tests(graded, "logsumexp"):  # its own tests: no hint
        assert POINTER not in test["output"], test["output"]
    for test in _tests(graded, "log_softmax"):
        assert test["output"].endswith("\nlogsumexp, which this test's code calls, fails its "
                                       "own tests: fix logsumexp first."), test["output"]
    for fragment in ("cross_entropy matches", "cross_entropy stays", "softmax matches",
                     "softmax stays"):
        for test in _tests(graded, f"basics: {fragment}"):
            assert test["output"].endswith("\nlog_softmax and logsumexp, which this test's "
                                           "code calls, fail their own tests: fix logsumexp "
                                           "first."), test["output"]
    grads = _tests(graded, "linear_cross_entropy_grads")[0]["output"].splitlines()[-1]
    assert grads.startswith("softmax, log_softmax and logsumexp, which") and grads.endswith(
        "fix logsumexp first."), grads


@pytest.mark.slow
def test_a_mistake_in_the_last_function_points_nowhere_else(grade, tmp_path):
    folder = variant_folder(tmp_path, REFERENCE, "cross-entropy", CROSS_ENTROPY_SUMS)
    graded = grade(folder, extra=SOFTMAX_TESTS)
    assert graded.returncode == 0, graded.output[-2000:]
    assert {name.split(": ")[1] for name in graded.failed()} == {
        "cross_entropy matches the reference and returns a scalar",
        "cross_entropy stays finite and correct for logits of size 1e4"}
    assert not [t["name"] for t in graded.tests if POINTER in t["output"]]


@pytest.mark.slow
def test_class_machinery_in_a_submission_is_graded_as_before(grade, tmp_path):
    """A correct submission built from dataclasses, static and class methods, properties, an
    nn.Module hierarchy and renamed imports keeps full marks, and gets no hint."""
    folder = variant_folder(tmp_path, REFERENCE, "structures", [])
    (folder / "basics.py").write_text((folder / "basics.py").read_text() + STRUCTURES)
    graded = grade(folder, extra=("-k", "softmax_family or cross_entropy or mlp"))
    assert graded.returncode == 0, graded.output[-2000:]
    assert len(graded.tests) == 11 and graded.failed() == [], graded.output[-3000:]
    assert not [t["name"] for t in graded.tests if POINTER in t["output"]]


@pytest.mark.slow
def test_a_forged_record_changes_no_score(grade, tmp_path):
    """Code that finds the worker's recorder and fills it with junk gets the marks it earns."""
    folder = variant_folder(tmp_path, REFERENCE, "forged", [])
    (folder / "basics.py").write_text((folder / "basics.py").read_text() + '''

import gc

_real_pairwise_distances = pairwise_distances


def pairwise_distances(x, y):
    for item in gc.get_objects():
        if type(item).__name__ == "CallRecorder":
            for i in range(5000):
                item.calls["basics:" + "f" * i] = True
            item.calls[object()] = object()
    return _real_pairwise_distances(x, y)
''')
    graded = grade(folder, extra=("-k", "pairwise or gather"))
    assert graded.returncode == 0, graded.output[-2000:]
    assert len(graded.tests) == 2 and graded.failed() == [], graded.output[-3000:]
