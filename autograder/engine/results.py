"""The one report writer: Gradescope-format results, their validation, and the score table."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
STATUSES = ("passed", "failed")
MAX_OUTPUT_CHARS = 8000
# In the last line of a failed test's message that names helpers failing their own tests
# (the plugin's cascade_pointers).
POINTER = ", which this test's code calls, fail"


# C0 controls but tab and newline, DEL and C1 controls, bidirectional overrides, and lone
# surrogates (which no terminal or file encoding accepts).
UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
                         "\ud800-\udfff]")


def clean(text: str) -> str:
    """`text` with every character that could act on a terminal or break an encoding written
    as an escape (\x1b, \u202e, \udc80), so that a submission's text is shown, never obeyed."""
    return UNPRINTABLE.sub(lambda match: ascii(match.group())[1:-1], str(text))


def clip(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 60] + f"\n[... {len(text) - limit + 60} more characters not shown]"


def test_entry(
    *, name: str, score: float, max_score: float, output: str, visibility: str, part: str
) -> dict[str, Any]:
    return {
        "name": clean(name),
        "score": float(score),
        "max_score": float(max_score),
        "status": "passed" if score >= max_score else "failed",
        "output": clip(clean(output)),
        "visibility": visibility,
        "tags": [part],
    }


def build_results(
    tests: list[dict[str, Any]], *, execution_time: float, output: str, extra: dict | None = None
) -> dict[str, Any]:
    return {
        "score": round(sum(test["score"] for test in tests), 4),
        "execution_time": int(round(execution_time)),
        "output": clip(clean(output)),
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": extra or {},
    }


def failed_results(reason: str, *, execution_time: float = 0.0) -> dict[str, Any]:
    """Results for a run in which grading itself could not happen."""
    return build_results([], execution_time=execution_time, output=f"Grading failed: {reason}")


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write atomically, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".json")
    with os.fdopen(handle, "w") as stream:
        json.dump(results, stream, indent=2)
        stream.write("\n")
    os.replace(temporary, path)


def validate_results(results: Any) -> list[str]:
    """Problems that would make Gradescope reject or misread the results; empty when valid."""
    problems = []
    if not isinstance(results, dict):
        return ["the results are not a JSON object"]
    for key, kind in (("score", (int, float)), ("execution_time", (int, float)),
                      ("output", str), ("tests", list)):
        if not isinstance(results.get(key), kind):
            problems.append(f"top-level {key!r} is missing or not a {kind}")
    if results.get("stdout_visibility") not in VISIBILITIES:
        problems.append("top-level 'stdout_visibility' is not a Gradescope visibility")
    tests = results.get("tests") if isinstance(results.get("tests"), list) else []
    for i, test in enumerate(tests):
        if not isinstance(test, dict):
            problems.append(f"tests[{i}] is not an object")
            continue
        for key, kind in (("name", str), ("score", (int, float)), ("max_score", (int, float)),
                          ("output", str)):
            if not isinstance(test.get(key), kind):
                problems.append(f"tests[{i}].{key} is missing or not a {kind}")
        if test.get("status") not in STATUSES:
            problems.append(f"tests[{i}].status is not passed/failed")
        if test.get("visibility") not in VISIBILITIES:
            problems.append(f"tests[{i}].visibility is not a Gradescope visibility")
        if isinstance(test.get("score"), (int, float)) and isinstance(
            test.get("max_score"), (int, float)
        ) and not 0 <= test["score"] <= test["max_score"]:
            problems.append(f"tests[{i}].score is outside [0, max_score]")
    if tests and isinstance(results.get("score"), (int, float)):
        total = sum(t.get("score", 0) for t in tests if isinstance(t, dict))
        if abs(total - results["score"]) > 1e-6:
            problems.append("top-level score is not the sum of the test scores")
    return problems


def part_totals(results: dict[str, Any]) -> dict[str, tuple[float, float]]:
    totals: dict[str, tuple[float, float]] = {}
    for test in results.get("tests", []):
        part = (test.get("tags") or ["?"])[0]
        score, maximum = totals.get(part, (0.0, 0.0))
        totals[part] = (score + test["score"], maximum + test["max_score"])
    return totals


def format_table(results: dict[str, Any], *, title: str, failures: bool = True,
                 by_part: bool = True) -> str:
    tests = results.get("tests", [])
    maximum = sum(test["max_score"] for test in tests)
    width = max([len(test["name"]) for test in tests] + [20])
    width = min(width, 78)
    lines = [f"{title}: {results['score']:g} / {maximum:g} points "
             f"({results['execution_time']} s)"]
    for test in tests:
        mark = "PASS" if test["status"] == "passed" else "FAIL"
        name = test["name"] if len(test["name"]) <= width else test["name"][: width - 3] + "..."
        lines.append(f"  {mark}  {name:<{width}}  {test['score']:>5g} / {test['max_score']:g}")
    totals = part_totals(results)
    if by_part and len(totals) > 1:
        lines.append("  by part: " + ", ".join(
            f"{part} {score:g}/{top:g}" for part, (score, top) in totals.items()))
    if results.get("output"):
        lines.append("")
        lines.append(results["output"].rstrip())
    if failures:
        failed = [test for test in tests if test["status"] == "failed"]
        if failed:
            lines.append("")
            lines.append("What failed:")
        for test in failed:
            lines_of = test["output"].strip().splitlines()
            first = lines_of[:8]
            if len(lines_of) > 8 and POINTER in lines_of[-1]:  # "fix X first" stays in view
                first.append(lines_of[-1])
            lines.append(f"- {test['name']}")
            lines.extend(f"    {line}" for line in first)
    return "\n".join(lines)


def public_score_lines(results: dict[str, Any], hidden_points: dict[str, float] | None) -> str:
    """What a public-tests-only score means, one line per part: "public tests: 14/14 points
    of basics; the hidden tests (18 more points) check the same functions on other inputs"."""
    lines = []
    for part, (score, top) in part_totals(results).items():
        line = f"public tests: {score:g}/{top:g} points of {part}"
        hidden = (hidden_points or {}).get(part)
        if hidden:
            line += (f"; the hidden tests ({hidden:g} more points) check the same functions on "
                     "other inputs")
        lines.append(line)
    return "\n".join(lines)


def all_tests_score_line(results: dict[str, Any]) -> str:
    seed = results.get("extra_data", {}).get("seed")
    totals = ", ".join(f"{part} {score:g}/{top:g}"
                       for part, (score, top) in part_totals(results).items())
    return f"public and hidden tests{f' at seed {seed}' if seed is not None else ''}: {totals}"


def _fenced(text: str) -> str:
    """`text` as a Markdown code block that nothing inside it can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def format_feedback(results: dict[str, Any] | None, *, title: str, problem: str = "") -> str:
    """A student's feedback as Markdown, to send as it is: the score per part, every failed test
    with its message, and the grader's notes."""
    lines = [f"# {title}", ""]
    if problem:
        lines += [f"**This submission could not be graded completely:** {problem}", ""]
    if not results:
        return "\n".join(lines)
    tests = results.get("tests", [])
    maximum = sum(test["max_score"] for test in tests)
    lines += [f"**Score: {results['score']:g} / {maximum:g}**", "", "| part | score |", "|---|---|"]
    lines += [f"| {part} | {score:g} / {top:g} |"
              for part, (score, top) in part_totals(results).items()]
    failed = [test for test in tests if test["status"] != "passed"]
    lines += ["", f"## Failed tests ({len(failed)} of {len(tests)})" if failed
              else "## Every test passed", ""]
    for test in failed:
        lines += [f"### {test['name']} ({test['score']:g} / {test['max_score']:g})", "",
                  _fenced(test["output"] or "failed"), ""]
    notes = [line for line in results.get("output", "").splitlines()
             if not line.startswith("Sandbox:")]  # grader detail, not for students
    if notes:
        lines += ["## Notes from the grader", "", _fenced("\n".join(notes)), ""]
    return "\n".join(lines)
