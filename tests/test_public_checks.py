"""A local check for every function (DESIGN.md): for every student-written function or method
of every lab part, the reference with that one function replaced by its stub fails some public
test, graded as the student release grades (`--public-only`, at the release's seed).

Grading one variant per function would cost a grading process each (about 5 s). Instead the
stubs are peeled off in rounds: grade the reference with every remaining function stubbed; each
public test that fails names, in its message, the stub that raised (its file and line), so that
function is caught by that test (the test reaches it with only that function stubbed, since
every stub it met before raised and would have ended the test) and is restored for the next
round, where the tests that stopped at it go on to the functions they call next. When a round
catches nothing new, the functions still stubbed are called by no public test. A part takes as
many rounds as its deepest chain of calls (two or three in lab 1).

A test counts only when its message names the stub: that is what a student sees, and it keeps
a test that failed for another reason (a time limit on a loaded machine) from passing for a
check. A round that catches nothing but has such failures is graded once more before the
functions left are reported.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autograder.delivery.release import RELEASE_SEED
from autograder.engine.labs import available_labs, load_lab
from bench.variants import run_suite, stubbed, student_functions

TIMEOUT_SCALE = 4.0  # time limits only matter when the machine is loaded; stubs fail fast


def _parts() -> list[tuple[str, str]]:
    return [(lab, part) for lab in available_labs() for part in load_lab(lab).parts]


PARTS = _parts()


def _raised_at(message: str, part: str) -> int | None:
    """The line of PART.py whose NotImplementedError failed a test, from the test's message."""
    found = re.search(rf"\b{re.escape(part)}\.py, line (\d+), in [\w<>]+ raises "
                      "NotImplementedError", message)
    return int(found.group(1)) if found else None


def public_checks(lab_name: str, part: str, folder: Path,
                  cache: Path) -> tuple[dict[str, str | None], dict[str, str]]:
    """Each student function of the part -> a public test that fails naming its stub, or None;
    and the public tests that failed in the last round without naming a stub, with their
    messages."""
    lab = load_lab(lab_name)
    source = (lab.reference_dir / f"{part}.py").read_text()
    functions = [function.name for function in student_functions(source)]
    caught: dict[str, str] = {}
    unexplained: dict[str, str] = {}
    retried = False
    for number in range(1, 2 * len(functions) + 2):  # bounded: each round catches one, or ends
        remaining = {function for function in functions if function not in caught}
        if not remaining:
            break
        text, raisers = stubbed(source, remaining)
        variant = folder / f"round-{number}"
        variant.mkdir(parents=True)
        (variant / f"{part}.py").write_text(text)
        run = run_suite(lab.name, part, variant, seed=RELEASE_SEED, cache=cache,
                        out=folder / "results", name=variant.name, public_only=True,
                        timeout_scale=TIMEOUT_SCALE)
        assert not run.problem, f"{lab.name}.{part}: grading {variant.name}: {run.problem}"
        unexplained = {}
        for case in sorted(run.failed):
            message = run.messages.get(case, "")
            function = raisers.get(_raised_at(message, part) or 0)
            if function is None:
                unexplained[case] = message
            else:
                caught.setdefault(function, case)
        if not remaining - caught.keys() or remaining & caught.keys():
            continue
        if not unexplained or retried:
            break
        retried = True  # a failure that names no stub: once more, in case the machine was slow
    return {function: caught.get(function) for function in functions}, unexplained


@pytest.mark.slow
@pytest.mark.parametrize(("lab_name", "part"), PARTS, ids=[f"{lab}-{part}" for lab, part in PARTS])
def test_every_student_function_has_a_public_check(lab_name, part, tmp_path, reference_cache):
    lab = load_lab(lab_name)
    reference = lab.reference_dir / f"{part}.py"
    if not reference.is_file():
        pytest.skip(f"reference/{lab_name}/{part}.py does not exist yet")
    if not lab.test_file(part).is_file():
        pytest.skip(f"{lab_name}.{part} has no tests yet")
    if not student_functions(reference.read_text()):
        pytest.skip(f"reference/{lab_name}/{part}.py has no solution regions yet")
    checks, unexplained = public_checks(lab_name, part, tmp_path, reference_cache)
    uncaught = [function for function, test in checks.items() if test is None]
    assert not uncaught, (
        f"{lab_name}.{part}: {len(uncaught)} of {len(checks)} student functions have no public "
        "test that fails when the function is left as its stub (DESIGN.md, \"A local check "
        "for every function\"). A student whose public tests all pass could have left these "
        "unwritten; add a @pytest.mark.public test to "
        f"autograder/{lab_name}/test_{part}.py that calls each of them:\n"
        + "\n".join(f"- {part}.{function}" for function in uncaught)
        + "".join(f"\n(With these stubbed, {case} failed without naming a stub, which a "
                  f"public test must do: {message[:300]})" for case, message in
                  unexplained.items())
    )
