"""Broken and hostile submissions: each ends with a valid results file, exactly the affected
tests failed, nothing undeserved, and a message that says what happened.

Each case is the reference's basics.py with a snippet from tests/hostile/lab1/ appended
(or the snippet alone), graded by the real CLI in its own process.
"""

import pytest

from tests.conftest import hostile_submission

EVERYTHING = ("basics: ",)

# case: (names of the tests that must fail (substrings), text their output must contain)
CASES = {
    "syntax_error": (EVERYTHING, "basics.py has a syntax error (basics.py, line 5"),
    "import_error": (EVERYTHING, "importing basics.py raised RuntimeError: this file crashes"),
    "missing_function": (("pairwise_distances",), "`pairwise_distances` is not defined"),
    "wrong_shape": (("pairwise_distances",), "expected shape"),
    "nan_output": (("basics: softmax ", "linear_cross_entropy_grads"), "NaN"),
    "loop_at_import": (EVERYTHING, "importing basics.py did not finish within 10 s"),
    "loop_in_function": (("pairwise_distances",), "did not finish within 5 s"),
    "sys_exit": (("pairwise_distances",), "called sys.exit(0)"),
    "os_exit": (("pairwise_distances",), "exited with code 0"),
    "huge_output": ((), ""),
    "fake_comparisons": (("pairwise_distances",), "differ from the expected result"),
    "import_grader": (("pairwise_distances",), "could not find the reference"),
    "writes_results": (("pairwise_distances",), "differ from the expected result"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_submission(case, grade, tmp_path):
    affected, message = CASES[case]
    graded = grade(hostile_submission(tmp_path, case))
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
