"""Variants of a reference file and how their part's suite grades them: the pieces that
bench/mutation.py, bench/honesty.py and tests/test_public_checks.py share.

A *student function* is a function or method that holds a `# BEGIN SOLUTION` region; its name
is the enclosing function's qualified name, as in the generator's stub (`MLP.forward`). A
variant replaces the regions of some of them (with the generator's stub, or with other code)
and leaves everything else as it is. `run_suite` grades a folder with a part's tests through
pytest and the engine's plugin (what `python -m autograder grade` runs), with a JUnit report,
so that every test case's outcome and message come back under pytest's own name
(`test_softmax_family_matches_reference[softmax]`), usable in a `-k` expression.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder import REPO_ROOT
from autograder.engine.stubs import BEGIN, END, _enclosing_functions, _function_at, make_stub


def write_variant(folder: Path, root: Path, lab: str, part: str, source: str) -> Path:
    """A submission folder: `source` as the part's file, beside the reference's other graded
    files of the lab, so that a part that imports another (induction uses transformer.py) is
    judged on its own code alone, as a student's complete submission would be."""
    import tomllib

    folder.mkdir(parents=True, exist_ok=True)
    manifest = tomllib.loads((root / "autograder" / lab / "lab.toml").read_text())
    for name in manifest.get("graded", []):
        if name != f"{part}.py" and (root / "reference" / lab / name).is_file():
            (folder / name).write_bytes((root / "reference" / lab / name).read_bytes())
    (folder / f"{part}.py").write_text(source)
    return folder


def solution_regions(source: str) -> list[tuple[int, int]]:
    """(first line, last line) of every region between the markers, 1-based, inclusive."""
    regions, start = [], None
    for number, line in enumerate(source.splitlines(), start=1):
        if line.strip() == BEGIN:
            start = number
        elif line.strip() == END and start is not None:
            regions.append((start, number))
            start = None
    return regions


@dataclass(frozen=True)
class StudentFunction:
    name: str  # qualified name, as in the stub's message: "MLP.forward"
    regions: tuple[tuple[int, int], ...]  # its solution regions, as by solution_regions
    parameters: tuple[str, ...]  # positional parameters, without a method's self / cls
    parameter_annotations: tuple[str | None, ...]
    returns: str | None  # the return annotation as written, if any
    gives_value: bool  # a region holds `return VALUE` (a function, not a procedure)
    names: tuple[str, ...] = ()  # every parameter's name, self and *args / **kwargs included


def own_nodes(statements: Sequence[ast.stmt]) -> Iterator[ast.AST]:
    """The nodes of this code, as ast.walk gives them, but not those of the functions, lambdas
    or classes it defines (their calls and returns are not this code's)."""
    stack: list[ast.AST] = list(statements)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _own_returns(statements: Sequence[ast.stmt]) -> list[ast.Return]:
    """The return statements of this code, not of the functions or classes defined in it."""
    return [node for node in own_nodes(statements) if isinstance(node, ast.Return)]


def region_code(source: str, region: tuple[int, int]) -> str:
    """The statements between a region's markers, dedented (parseable as a module)."""
    lines = source.splitlines(keepends=True)[region[0]:region[1] - 1]
    return textwrap.dedent("".join(lines))


def student_functions(source: str) -> list[StudentFunction]:
    """Every function of `source` that holds a solution region, in source order."""
    tree = ast.parse(source)
    spans = _enclosing_functions(tree)
    definitions = {(node.lineno, node.end_lineno): node for node in ast.walk(tree)
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    grouped: dict[str, list[tuple[int, int]]] = {}
    for region in solution_regions(source):
        name = _function_at(spans, region[0])
        if name is not None:
            grouped.setdefault(name, []).append(region)
    functions = []
    for name, regions in grouped.items():
        start, end = next((a, b) for a, b, n in spans if n == name)
        node = definitions[(start, end)]
        arguments = [*node.args.posonlyargs, *node.args.args]
        if "." in name and arguments and arguments[0].arg in ("self", "cls"):
            arguments = arguments[1:]
        returns = [r for region in regions
                   for r in _own_returns(ast.parse(region_code(source, region)).body)]
        gives_value = any(r.value is not None and not (
            isinstance(r.value, ast.Constant) and r.value.value is None) for r in returns)
        functions.append(StudentFunction(
            name, tuple(regions), tuple(a.arg for a in arguments),
            tuple(ast.unparse(a.annotation) if a.annotation else None for a in arguments),
            ast.unparse(node.returns) if node.returns else None, gives_value,
            tuple(a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)),
        ))
    return functions


def _marker_indent(source: str, region: tuple[int, int]) -> str:
    line = source.splitlines()[region[0] - 1]
    return line[: len(line) - len(line.lstrip())]


def replace_regions(source: str, bodies: Mapping[tuple[int, int], str]) -> tuple[str, dict]:
    """`source` with each region (markers included) replaced by its body, indented like the
    marker; and the line where each replaced region's body starts in the result."""
    lines = source.splitlines(keepends=True)
    output: list[str] = []
    starts: dict[tuple[int, int], int] = {}
    position = 0
    for region in sorted(bodies):
        output += lines[position:region[0] - 1]
        starts[region] = len(output) + 1
        indent = _marker_indent(source, region)
        output += [f"{indent}{line}\n" if line.strip() else "\n"
                   for line in bodies[region].rstrip("\n").split("\n")]
        position = region[1]
    output += lines[position:]
    return "".join(output), starts


def stubbed(source: str, names: Collection[str]) -> tuple[str, dict[int, str]]:
    """The reference with the named functions' regions replaced by the generator's stub (the
    TODO and `raise NotImplementedError`, exactly as in assignments/), and which function
    raises at each line of the result."""
    stub_lines = make_stub(source).splitlines(keepends=True)
    bodies: dict[tuple[int, int], str] = {}
    owner: dict[tuple[int, int], str] = {}
    removed = 0  # lines the stub has fewer than the reference before the current region
    for function in student_functions(source):
        for region in function.regions:
            owner[region] = function.name
    for region in solution_regions(source):
        start = region[0] - 1 - removed
        if owner.get(region) in names:
            bodies[region] = textwrap.dedent("".join(stub_lines[start:start + 2]))
        removed += region[1] - region[0] + 1 - 2
    text, starts = replace_regions(source, bodies)
    return text, {starts[region] + 1: owner[region] for region in bodies}


# ============================================================================ grading


@dataclass
class SuiteRun:
    """How a part's suite graded one implementation, per test case (pytest's name)."""

    outcomes: dict[str, str] = field(default_factory=dict)  # passed, failed or skipped
    messages: dict[str, str] = field(default_factory=dict)  # a failed case's message
    durations: dict[str, float] = field(default_factory=dict)
    results: dict[str, Any] | None = None  # the results.json the grading wrote
    problem: str = ""  # why grading did not finish normally, if it did not
    seconds: float = 0.0

    @property
    def failed(self) -> set[str]:
        return {case for case, outcome in self.outcomes.items() if outcome != "passed"}

    @property
    def passed(self) -> set[str]:
        return {case for case, outcome in self.outcomes.items() if outcome == "passed"}


def keyword_for(cases: Collection[str]) -> str:
    """A pytest -k expression selecting the test functions of these cases (every parameter of
    each, and any test whose name contains one's: a superset, never fewer)."""
    return " or ".join(sorted({case.split("[")[0] for case in cases}))


def run_suite(lab: str, part: str, impl: Path, *, seed: int, cache: Path, out: Path,
              name: str, keyword: str | None = None, public_only: bool = False,
              exitfirst: bool = False, timeout_scale: float = 1.0, root: Path = REPO_ROOT,
              timeout: float = 3600.0, reuse: bool = False) -> SuiteRun:
    """Grade `impl` with the part's tests of the repository at `root`, in a process of its own,
    writing `out/NAME.json` (results) and `out/NAME.xml` (JUnit); with `reuse`, read an
    earlier run's files instead when they are there."""
    out.mkdir(parents=True, exist_ok=True)
    results, junit = out / f"{name}.json", out / f"{name}.xml"
    command = [sys.executable, "-m", "pytest", str(root / "autograder" / lab / f"test_{part}.py"),
               "-c", str(root / "pyproject.toml"), "--rootdir", str(root),
               "-p", "no:cacheprovider", "-qq", "--tb=no", "-p", "no:warnings",
               "--impl", str(impl), "--seed", str(seed), "--reference-cache", str(cache),
               "--results", str(results), "--timeout-scale", str(timeout_scale),
               "--junitxml", str(junit)]
    if keyword:
        command += ["-k", keyword]
    if public_only:
        command.append("--public-only")
    if exitfirst:
        command.append("--exitfirst")
    started = time.monotonic()
    run = SuiteRun()
    if not (reuse and results.is_file() and junit.is_file()):
        for stale in (results, junit):
            stale.unlink(missing_ok=True)
        try:
            completed = subprocess.run(command, cwd=root, capture_output=True, timeout=timeout,
                                       start_new_session=True)
            if completed.returncode not in (0, 1, 5):  # all passed, some failed, none selected
                run.problem = (f"pytest exit code {completed.returncode}: "
                               + completed.stdout.decode(errors="replace")[-300:])
        except subprocess.TimeoutExpired:
            run.problem = f"grading took longer than {timeout:g} s"
    run.seconds = time.monotonic() - started
    if junit.is_file():
        for case in ElementTree.parse(junit).iter("testcase"):
            test = case.get("name", "")
            run.durations[test] = float(case.get("time", 0))
            trouble = [child for child in case if child.tag in ("failure", "error", "skipped")]
            run.outcomes[test] = "passed" if not trouble else (
                "skipped" if trouble[0].tag == "skipped" else "failed")
            if trouble:
                run.messages[test] = trouble[0].get("message") or trouble[0].text or ""
    elif not run.problem:
        run.problem = "no JUnit report was written"
    try:
        run.results = json.loads(results.read_text())
    except (OSError, ValueError):
        run.problem = run.problem or "no results file was written"
    return run
