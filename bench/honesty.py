"""No points for doing nothing: do the hidden suites fail trivial implementations?

    python -m bench.honesty                               every part of every lab, 2 jobs
    python -m bench.honesty --lab lab1 --part basics
    python -m bench.honesty --list --part basics          the replacements, no grading
    python -m bench.honesty --function softmax --skip test_cartpole

For every student-written function and method (a function holding a solution region), the
region is replaced by trivial code, one replacement at a time:

- returns None: `return None` (a function that gives a value);
- returns its first argument: `return x` (unless both are annotated with different types);
- zeros, ones, mean: the reference's own code, run on copies of the arguments (so that nothing
  else happens: no training, no generator advanced), with each value it returns replaced by one
  of the same structure, shape, dtype, device and `requires_grad`, holding zeros, ones, or the
  mean of each array (a uniform distribution where the answer is one, an average loss, ...);
- does nothing: `pass` (a procedure or method that gives no value).

The constants are computed from the reference's answer *at every call*, on the inputs the
hidden suite draws at grade time. A constant learned once from a representative call would
have the wrong shape on most of the suite's inputs (shapes are drawn too) and lose its points
to a shape check; a student's `return torch.zeros(len(x))` knows the shape from its inputs, and
so does this replacement: it is the strongest trivial answer, wrong only in its values.

The tests that call a function are those that fail when it raises NotImplementedError (its
stub, graded with the whole suite of its part); every one of them must fail with every
replacement. A test that passes is a finding: points for doing nothing. Findings that no fair
test can avoid are listed, with the reason, in bench/honesty_exceptions.toml, keyed by
`FUNCTION: REPLACEMENT: TEST`. The report goes to build/honesty/LAB.md (one row per function);
the exit status is 1 when there is a finding not listed there.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import shutil
import threading
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder import REPO_ROOT
from autograder.engine.labs import Lab, available_labs, load_lab
from bench.snapshot import snapshot
from bench.variants import (
    StudentFunction,
    SuiteRun,
    keyword_for,
    region_code,
    replace_regions,
    run_suite,
    stubbed,
    student_functions,
    write_variant,
)

EXCEPTIONS_FILE = Path(__file__).with_name("honesty_exceptions.toml")
DEFAULT_OUT = REPO_ROOT / "build" / "honesty"
KINDS = ("returns None", "returns its first argument", "zeros", "ones", "mean", "does nothing")
VALUE_KINDS = ("zeros", "ones", "mean")
NOT_APPLICABLE = "honesty: not applicable"  # raised by the mean of a value with no array in it
NUMBERS = {"int", "float"}
SCALARS = {"int", "float", "bool"}


def _honesty_trivial(value: Any, kind: str) -> Any:
    """`value` with every number replaced: zeros, ones, or each array's mean (kind "mean").

    Copied into the variants, where it runs next to the reference's code: self-contained.
    Structure, shapes, dtypes, devices and requires_grad are kept; tensors and arrays, numbers,
    lists, tuples (named too), dicts, dataclasses and nn.Modules (their parameters) are
    replaced, anything else is kept as it is.
    """
    import copy
    import dataclasses

    import numpy as np
    import torch

    found_array = []

    def constant(mean: float, is_bool: bool, is_integer: bool) -> float | int | bool:
        if kind == "zeros":
            return False if is_bool else 0
        if kind == "ones":
            return True if is_bool else 1
        return mean >= 0.5 if is_bool else (round(mean) if is_integer else mean)

    def tensor(t: torch.Tensor) -> torch.Tensor:
        if t.numel() > 1:
            found_array.append(t)
        mean = t.double().mean().item() if t.numel() else 0.0
        fill = constant(mean, t.dtype == torch.bool,
                        not (t.is_floating_point() or t.is_complex()))
        new = torch.full_like(t, fill) if t.numel() > 1 or kind != "mean" else torch.zeros_like(t)
        return new.requires_grad_() if t.requires_grad and new.is_floating_point() else new

    def array(a: np.ndarray) -> np.ndarray:
        if a.dtype == object:
            return np.array([visit(x) for x in a.ravel()], dtype=object).reshape(a.shape)
        if a.size > 1:
            found_array.append(a)
        mean = float(a.astype(np.float64).mean()) if a.size else 0.0
        fill = constant(mean, a.dtype == np.bool_, np.issubdtype(a.dtype, np.integer))
        return np.full_like(a, fill) if a.size > 1 or kind != "mean" else np.zeros_like(a)

    def visit(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return tensor(v)
        if isinstance(v, np.ndarray):
            return array(v)
        if isinstance(v, (bool, int, float, np.generic)) and not isinstance(v, (str, bytes)):
            return type(v)(0 if kind != "ones" else 1)
        if isinstance(v, list) and len(v) > 1 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v
        ):
            return [type(x)(y) for x, y in zip(v, array(np.array(v, dtype=float)), strict=True)]
        if isinstance(v, (list, tuple)):
            items = [visit(x) for x in v]
            if isinstance(v, list):
                return items
            return type(v)(*items) if hasattr(v, "_fields") else type(v)(items)
        if isinstance(v, dict):
            return type(v)((k, visit(x)) for k, x in v.items())
        if isinstance(v, torch.nn.Module):
            module = copy.deepcopy(v)
            with torch.no_grad():
                for parameter in module.parameters():
                    parameter.copy_(tensor(parameter))
            return module
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            new = copy.copy(v)
            for f in dataclasses.fields(v):
                object.__setattr__(new, f.name, visit(getattr(v, f.name)))
            return new
        return v

    result = visit(value)
    if kind == "mean" and not found_array:
        raise LookupError("honesty: not applicable (no array of more than one number, whose "
                          "mean would differ from the answer)")
    return result


# ============================================================================ replacements


@dataclass(frozen=True)
class Replacement:
    lab: str
    part: str
    function: str
    kind: str
    source: str = field(repr=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.function}: {self.kind}"


class _TrivialReturns(ast.NodeTransformer):
    """`return VALUE` -> `return _honesty_trivial(VALUE, KIND)`, outside nested definitions."""

    def __init__(self, kind: str):
        self.kind = kind

    def visit_Return(self, node: ast.Return) -> ast.Return:
        if node.value is None:
            return node
        call = ast.Call(ast.Name("_honesty_trivial", ast.Load()),
                        [node.value, ast.Constant(self.kind)], [])
        return ast.copy_location(ast.Return(call), node)

    def _leave(self, node: ast.AST) -> ast.AST:
        return node  # a function defined in the region: its returns are not the answer

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = _leave


def _first_argument_fits(function: StudentFunction) -> bool:
    """Returning the first argument is a candidate unless both types are written and differ
    (an int where a float is promised counts as fitting)."""
    if not function.parameters:
        return False
    given, promised = function.parameter_annotations[0], function.returns
    return given is None or promised is None or given == promised or {given, promised} <= NUMBERS


def _honesty_copies(values: tuple) -> tuple:
    """Deep copies of a call's arguments (together, so that an optimiser keeps pointing at its
    network's copy), or the arguments themselves where they cannot be copied."""
    import copy

    try:
        return copy.deepcopy(values)
    except Exception:  # noqa: BLE001 - an argument that cannot be copied is used as it is
        return values


def _helper_source() -> str:
    """The helpers' code without annotations: a file without `from __future__ import
    annotations` would evaluate them, and may not import what they name."""
    tree = ast.parse(inspect.getsource(_honesty_copies) + "\n\n"
                     + inspect.getsource(_honesty_trivial))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            node.returns = None
        elif isinstance(node, ast.arg):
            node.annotation = None
    return ast.unparse(tree) + "\n"


def replacements_of(source: str, lab: str, part: str,
                    functions: set[str] | None = None) -> list[Replacement]:
    """Every trivial replacement of every student function of one reference file."""
    helper = _helper_source()
    found = []
    for function in student_functions(source):
        if functions is not None and function.name not in functions:
            continue
        kinds = (["returns None", "returns its first argument", *VALUE_KINDS]
                 if function.gives_value else ["does nothing"])
        if function.gives_value and not _first_argument_fits(function):
            kinds.remove("returns its first argument")
        if function.returns in SCALARS:  # the mean of one number is the answer
            kinds.remove("mean")
        for kind in kinds:
            bodies = {}
            for region in function.regions:
                if kind == "returns None":
                    bodies[region] = "return None"
                elif kind == "returns its first argument":
                    bodies[region] = f"return {function.parameters[0]}"
                elif kind == "does nothing":
                    bodies[region] = "pass"
                else:
                    tree = _TrivialReturns(kind).visit(ast.parse(region_code(source, region)))
                    names = ", ".join(function.names)
                    # The answer is computed on copies of the arguments: nothing else happens
                    # (a training loop trains nothing, a generator is not advanced).
                    bodies[region] = (f"({names},) = _honesty_copies(({names},))\n"
                                      if names else "") + ast.unparse(
                                          ast.fix_missing_locations(tree))
            text, _ = replace_regions(source, bodies)
            if kind in VALUE_KINDS:
                text = f"{text.rstrip()}\n\n\n{helper}"
            label = (f"returns its first argument ({function.parameters[0]})"
                     if kind == "returns its first argument" else kind)
            found.append(Replacement(lab, part, function.name, label, text))
    return found


def load_exceptions(path: Path = EXCEPTIONS_FILE) -> dict[str, dict[str, dict[str, str]]]:
    """lab -> part -> "FUNCTION: REPLACEMENT: TEST" -> why that test may pass."""
    return tomllib.loads(path.read_text()) if path.is_file() else {}


# ============================================================================ grading


@dataclass
class Outcome:
    replacement: Replacement
    passed: list[str] = field(default_factory=list)  # calling tests it passed: findings
    excused: dict[str, str] = field(default_factory=dict)  # ... listed as exceptions, why
    not_applicable: bool = False
    problem: str = ""
    seconds: float = 0.0

    @property
    def status(self) -> str:
        if self.problem:
            return "problem"
        if self.passed:
            return "passes"
        if self.not_applicable:
            return "n/a"
        return "excused" if self.excused else "fails"


@dataclass
class FunctionVerdict:
    function: str
    callers: list[str]  # tests (pytest's names) that fail when the function is a stub
    outcomes: list[Outcome]
    problem: str = ""


class PartHonesty:
    """Grades the trivial replacements of one part's functions with its suite."""

    def __init__(self, lab: Lab, part: str, *, seed: int, out: Path, cache: Path,
                 exceptions: dict[str, str], timeout_scale: float = 2.0,
                 skip: tuple[str, ...] = (), root: Path = REPO_ROOT):
        self.lab, self.part, self.seed, self.root = lab, part, seed, root
        self.out, self.cache = out / lab.name / part, cache
        self.exceptions = exceptions
        self.timeout_scale = timeout_scale
        self.skip = skip
        self.keyword = "not (" + " or ".join(skip) + ")" if skip else None
        self.passing: set[str] | None = None  # tests that pass on the reference, once graded
        self.reference: SuiteRun | None = None
        self.source = (root / "reference" / lab.name / f"{part}.py").read_text()
        self._numbers = iter(range(1, 10**6))
        self._lock = threading.Lock()

    def _run(self, source: str, name: str, keyword: str | None) -> SuiteRun:
        with self._lock:
            folder = self.out / f"{next(self._numbers):04d}-{name}"
        write_variant(folder, self.root, self.lab.name, self.part, source)
        return run_suite(self.lab.name, self.part, folder, seed=self.seed, cache=self.cache,
                         out=folder, name="results", keyword=keyword,
                         timeout_scale=self.timeout_scale, root=self.root)

    def prepare(self) -> SuiteRun:
        shutil.rmtree(self.out, ignore_errors=True)
        self.reference = run_suite(self.lab.name, self.part,
                                   self.root / "reference" / self.lab.name, seed=self.seed,
                                   cache=self.cache, out=self.out, name="reference",
                                   keyword=self.keyword, timeout_scale=self.timeout_scale,
                                   root=self.root)
        self.passing = self.reference.passed
        return self.reference

    def judge(self, function: str, replacements: list[Replacement]) -> FunctionVerdict:
        text, _ = stubbed(self.source, {function})
        stub = self._run(text, f"{_slug(function)}-stub", self.keyword)
        # Without the reference's grading, a test failing on the stub is taken to call the
        # function: one that fails on the reference too can only fail its replacements.
        callers = sorted(stub.failed & self.passing if self.passing is not None
                         else stub.failed)
        verdict = FunctionVerdict(function, callers, [], stub.problem)
        if not callers:
            return verdict
        keyword = keyword_for(callers)
        for replacement in replacements:
            run = self._run(replacement.source, f"{_slug(function)}-{_slug(replacement.kind)}",
                            keyword)
            outcome = Outcome(replacement, problem=run.problem, seconds=run.seconds)
            for test in callers:
                if run.outcomes.get(test) == "passed":
                    reason = self.exceptions.get(f"{replacement.key}: {test}")
                    if reason:
                        outcome.excused[test] = reason
                    else:
                        outcome.passed.append(test)
            failures = [run.messages.get(test, "") for test in callers
                        if run.outcomes.get(test) == "failed"]
            outcome.not_applicable = bool(failures) and all(
                NOT_APPLICABLE in message for message in failures)
            if not outcome.problem and any(test not in run.outcomes for test in callers):
                outcome.problem = "some tests that call the function did not run"
            verdict.outcomes.append(outcome)
        return verdict


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:40]


def run_parts(runs: list[PartHonesty], replacements: dict[str, list[Replacement]], jobs: int,
              log: Callable[[str], None] = print) -> dict[str, list[FunctionVerdict]]:
    """Judge every function of every part, `jobs` functions at a time."""
    work = []
    for run in runs:
        by_function: dict[str, list[Replacement]] = {}
        for replacement in replacements[run.part]:
            by_function.setdefault(replacement.function, []).append(replacement)
        work += [(run, function, found) for function, found in by_function.items()]
    verdicts: dict[str, list[FunctionVerdict]] = {run.part: [] for run in runs}

    def judge(item: tuple[PartHonesty, str, list[Replacement]]) -> tuple[str, FunctionVerdict]:
        run, function, found = item
        return run.part, run.judge(function, found)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for done, (part, verdict) in enumerate(pool.map(judge, work), start=1):
            summary = ", ".join(f"{o.replacement.kind}: {o.status}" for o in verdict.outcomes)
            log(f"[{done}/{len(work)}] {part}.{verdict.function} ({len(verdict.callers)} tests "
                f"call it): {summary or verdict.problem or 'no test calls it'}")
            verdicts[part].append(verdict)
    return verdicts


# ============================================================================ the report


def findings(verdicts: list[FunctionVerdict]) -> list[str]:
    """One line per problem: a trivial replacement that passed a test calling the function, a
    function no test calls, a grading that did not finish."""
    lines = []
    for verdict in verdicts:
        if verdict.problem:
            lines.append(f"{verdict.function}: grading its stub failed: {verdict.problem}")
        elif not verdict.callers:
            lines.append(f"{verdict.function}: no test fails when it is left as its stub")
        for outcome in verdict.outcomes:
            for test in outcome.passed:
                lines.append(f"{verdict.function}: {outcome.replacement.kind}: passes {test}")
            if outcome.problem:
                lines.append(f"{verdict.function}: {outcome.replacement.kind}: grading "
                             f"failed: {outcome.problem}")
    return lines


def report(lab: str, runs: list[PartHonesty], verdicts: dict[str, list[FunctionVerdict]],
           stale: list[str]) -> str:
    lines = [f"# Trivial implementations of {lab} (seed {runs[0].seed if runs else '-'})", "",
             "Each student function's region is replaced by trivial code; every test that "
             "fails when the function is left as its stub (the tests that call it) must fail "
             "with it too. *passes TEST*: a finding, points for doing nothing. *n/a*: the "
             "function's values have no array whose mean differs from the answer. *excused*: "
             "listed, with its reason, in bench/honesty_exceptions.toml.", "",
             "| part | functions | replacements | fail every calling test | findings |",
             "|---|---|---|---|---|"]
    for run in runs:
        outcomes = [o for v in verdicts[run.part] for o in v.outcomes]
        lines.append(f"| {run.part} | {len(verdicts[run.part])} | {len(outcomes)} "
                     f"| {sum(o.status in ('fails', 'n/a', 'excused') for o in outcomes)} "
                     f"| {len(findings(verdicts[run.part]))} |")
    for run in runs:
        lines += ["", f"## {run.part}", ""]
        if run.reference is not None and run.reference.failed:
            lines += ["Tests that fail on the reference at this seed (ignored): "
                      + ", ".join(sorted(run.reference.failed)), ""]
        if run.skip:
            lines += [f"Tests left out (-k): {', '.join(run.skip)}", ""]
        lines += ["| function | tests that call it | " + " | ".join(KINDS) + " |",
                  "|---|---|" + "---|" * len(KINDS)]
        for verdict in sorted(verdicts[run.part], key=lambda v: v.function):
            cells = {kind: "" for kind in KINDS}
            for outcome in verdict.outcomes:
                kind = next(k for k in KINDS if outcome.replacement.kind.startswith(k))
                text = outcome.status
                if outcome.passed:
                    text = "**passes " + ", ".join(outcome.passed) + "**"
                elif outcome.excused:
                    text = "excused (" + ", ".join(outcome.excused) + ")"
                cells[kind] = text
            callers = str(len(verdict.callers)) if verdict.callers else "**none**"
            lines.append(f"| {verdict.function} | {callers} | "
                         + " | ".join(cells[k] or "-" for k in KINDS) + " |")
        found = findings(verdicts[run.part])
        lines += ["", f"Findings ({len(found)}):" if found else "No findings."]
        lines += [f"- {line}" for line in found]
    if stale:
        lines += ["", "Entries of bench/honesty_exceptions.toml that match no replacement and "
                  "test any more (remove them):"]
        lines += [f"- {key}" for key in stale]
    return "\n".join(lines) + "\n"


def stale_exceptions(lab: str, verdicts: dict[str, list[FunctionVerdict]],
                     exceptions: dict[str, dict[str, dict[str, str]]]) -> list[str]:
    """Listed exceptions of the graded parts that no graded replacement used."""
    used = {f"{part}: {key}" for part, found in verdicts.items() for v in found
            for o in v.outcomes for key in (f"{o.replacement.key}: {t}" for t in o.excused)}
    graded = {(part, v.function) for part, found in verdicts.items() for v in found}
    return sorted(f"{part}: {key}" for part, listed in exceptions.get(lab, {}).items()
                  for key in listed if f"{part}: {key}" not in used
                  and (part, key.split(":")[0]) in graded)


# ============================================================================ command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", action="append", help="lab to check (default: all)")
    parser.add_argument("--part", action="append", help="part to check (default: all)")
    parser.add_argument("--function", action="append",
                        help="only this student function, as `MLP.forward` (repeatable)")
    parser.add_argument("--skip", action="append", default=[],
                        help="leave out the tests whose names contain this (repeatable), for "
                        "example a long training test")
    parser.add_argument("--seed", type=int, default=1, help="grading seed of every variant")
    parser.add_argument("--jobs", type=int, default=2, help="functions judged in parallel")
    parser.add_argument("--timeout-scale", type=float, default=2.0,
                        help="multiplies every time limit (a busy machine)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--list", action="store_true", help="list the replacements and stop")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # the gradings run in the snapshot's folder

    exceptions = load_exceptions()
    chosen = set(args.function) if args.function else None
    status = 0
    for lab_name in args.lab or available_labs():
        lab = load_lab(lab_name)
        parts = [p for p in (args.part or lab.parts) if p in lab.parts
                 and lab.test_file(p).is_file() and (lab.reference_dir / f"{p}.py").is_file()]
        if args.list:
            for part in parts:
                source = (lab.reference_dir / f"{part}.py").read_text()
                for replacement in replacements_of(source, lab.name, part, chosen):
                    print(f"{lab.name}.{part}\t{replacement.key}")
            continue
        # Grade one version of the code from start to end, whatever is edited meanwhile.
        root = snapshot(args.out / "snapshot")
        runs = [PartHonesty(lab, part, seed=args.seed, out=args.out, cache=args.out / "cache",
                            exceptions=exceptions.get(lab.name, {}).get(part, {}),
                            timeout_scale=args.timeout_scale, skip=tuple(args.skip), root=root)
                for part in parts]
        replacements = {run.part: replacements_of(run.source, lab.name, run.part, chosen)
                        for run in runs}
        started = time.monotonic()
        for run in runs:
            reference = run.prepare()
            print(f"{lab.name}.{run.part}: {len(replacements[run.part])} replacements; "
                  f"reference graded in {reference.seconds:.0f} s"
                  + (f", failing: {sorted(reference.failed)}" if reference.failed else ""),
                  flush=True)
        verdicts = run_parts(runs, replacements, args.jobs,
                             log=lambda line: print(line, flush=True))
        stale = [] if chosen or args.skip else stale_exceptions(lab.name, verdicts, exceptions)
        text = report(lab.name, runs, verdicts, stale)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{lab.name}.md").write_text(text)
        print()
        print(text)
        print(f"Report: {os.path.relpath(args.out / f'{lab.name}.md')} "
              f"({time.monotonic() - started:.0f} s)")
        if any(findings(v) for v in verdicts.values()):
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
