"""The stub generator: `assignments/LAB` is made from `reference/LAB`, never edited by hand.

In a reference file, each student-written region sits between `# BEGIN SOLUTION` and
`# END SOLUTION` lines inside a function. The region becomes a `TODO` that raises
`NotImplementedError`, named after the enclosing function; everything else (imports,
signatures, docstrings, support code, handouts) is copied unchanged.
"""

from __future__ import annotations

import ast
import difflib
import filecmp
import shutil
import tempfile
from pathlib import Path

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
SKIP_NAMES = {"__pycache__", ".pytest_cache", "figures", "runs"}


class MarkerError(ValueError):
    pass


def _enclosing_functions(tree: ast.AST) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    spans.append((child.lineno, child.end_lineno or child.lineno, name))
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return spans


def _function_at(spans: list[tuple[int, int, str]], line: int) -> str | None:
    inside = [span for span in spans if span[0] <= line <= span[1]]
    return max(inside, key=lambda span: span[0])[2] if inside else None


def written_functions(source: str, filename: str = "<source>") -> set[str]:
    """The qualified names ("Class.method", "function") of the functions students write in
    `source`: those holding a solution region (a reference file) or its TODO (a stub). The
    others (a given __init__, a support function) are not theirs to fix."""
    spans = _enclosing_functions(ast.parse(source, filename))
    names = set()
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN or stripped.startswith("# TODO: implement "):
            name = _function_at(spans, number)
            if name is not None:
                names.add(name)
    return names


def has_markers(source: str) -> bool:
    return any(line.strip() == BEGIN for line in source.splitlines())


def make_stub(source: str, filename: str = "<reference>") -> str:
    """Replace every solution region of `source` with a TODO that raises."""
    spans = _enclosing_functions(ast.parse(source, filename))
    lines = source.splitlines(keepends=True)
    output: list[str] = []
    start: int | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if start is not None:
                raise MarkerError(f"{filename}:{number}: nested {BEGIN}")
            start = number
            indent = line[: len(line) - len(line.lstrip())]
            name = _function_at(spans, number)
            if name is None:
                raise MarkerError(
                    f"{filename}:{number}: a solution region must be inside a function"
                )
            output.append(f"{indent}# TODO: implement {name}\n")
            output.append(f'{indent}raise NotImplementedError("{name} is not implemented yet")\n')
        elif stripped == END:
            if start is None:
                raise MarkerError(f"{filename}:{number}: {END} without {BEGIN}")
            start = None
        elif start is None:
            output.append(line)
    if start is not None:
        raise MarkerError(f"{filename}:{start}: {BEGIN} is never closed")
    stub = "".join(output)
    ast.parse(stub, filename)  # the stub must itself be valid Python
    return stub


def generate_lab(reference: Path, destination: Path) -> list[Path]:
    """Write the student version of one lab folder; returns the files written."""
    if destination.exists():
        shutil.rmtree(destination)
    written = []
    for path in sorted(reference.rglob("*")):
        relative = path.relative_to(reference)
        if any(part in SKIP_NAMES for part in relative.parts) or path.is_dir():
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".py":
            source = path.read_text(encoding="utf-8")
            target.write_text(make_stub(source, str(path)) if has_markers(source) else source,
                              encoding="utf-8")
        else:
            shutil.copyfile(path, target)
        written.append(target)
    return written


def generate(reference_root: Path, assignments_root: Path) -> None:
    for lab in sorted(p for p in reference_root.iterdir() if p.is_dir()):
        generate_lab(lab, assignments_root / lab.name)


def differences(reference_root: Path, assignments_root: Path) -> list[str]:
    """What regenerating would change in `assignments_root`, as readable lines."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch) / "assignments"
        generate(reference_root, fresh)
        problems = []
        fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
        committed = {
            p.relative_to(assignments_root)
            for p in assignments_root.rglob("*")
            if p.is_file() and not any(part in SKIP_NAMES for part in p.parts)
        } if assignments_root.exists() else set()
        for relative in sorted(fresh_files - committed):
            problems.append(f"missing from assignments/: {relative}")
        for relative in sorted(committed - fresh_files):
            problems.append(f"not generated from reference/: assignments/{relative}")
        for relative in sorted(fresh_files & committed):
            new, old = fresh / relative, assignments_root / relative
            if not filecmp.cmp(new, old, shallow=False):
                diff = difflib.unified_diff(
                    old.read_text().splitlines(), new.read_text().splitlines(),
                    f"assignments/{relative}", f"generated/{relative}", lineterm="", n=1,
                )
                problems.append("\n".join(list(diff)[:40]))
        return problems
