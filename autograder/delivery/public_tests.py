"""Reduce a lab's test file (and its probes) to what the public tests need, for the release.

A lab's test file mixes public tests (`@pytest.mark.public`) and hidden ones. The student
release must carry the public tests without a line of hidden-test source, so the file is cut
down on its syntax tree: every hidden test goes, then every top-level definition (helper,
constant, fixture, import) that nothing kept still uses, until nothing changes. Comments sit
with the statement below them and leave with it. What stays is copied from the original text,
so the public tests read exactly as the staff wrote them.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field


class ReleaseError(ValueError):
    """A test file cannot be reduced safely; the message says what to change."""


@dataclass
class _Statement:
    node: ast.stmt
    first_line: int  # with decorators and the comments directly above it (1-based)
    defines: set[str] = field(default_factory=set)
    uses: set[str] = field(default_factory=set)
    root: bool = False  # kept whatever it uses (a public test, a hook, module-level code)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _is_public_mark(node: ast.AST) -> bool:
    name = _dotted(node)
    return name == "mark.public" or name.endswith(".mark.public")


def _is_fixture(node: ast.AST) -> bool:
    return _dotted(node).split(".")[-1] == "fixture"


def _autouse(decorator: ast.AST) -> bool:
    return isinstance(decorator, ast.Call) and any(
        keyword.arg == "autouse" and isinstance(keyword.value, ast.Constant)
        and keyword.value.value is True
        for keyword in decorator.keywords
    )


def _names_used(node: ast.AST) -> set[str]:
    """Every name a statement reads, plus the fixtures its functions ask for by parameter."""
    used = {child.id for child in ast.walk(node) if isinstance(child, ast.Name)}
    for child in ast.walk(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = child.args
            used |= {a.arg for a in [*arguments.posonlyargs, *arguments.args,
                                     *arguments.kwonlyargs]}
        if isinstance(child, ast.Call) and _dotted(child).endswith("usefixtures"):
            used |= {a.value for a in child.args if isinstance(a, ast.Constant)
                     and isinstance(a.value, str)}
    return used


def _names_defined(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    targets: list[ast.AST] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    return {child.id for target in targets for child in ast.walk(target)
            if isinstance(child, ast.Name)}


def _is_test_name(name: str) -> bool:
    return name.startswith("test")


def _test_visibility(node: ast.stmt, module_public: bool) -> str | None:
    """"public", "hidden", or None when the statement is not a test."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_test_name(node.name):
        public = module_public or any(_is_public_mark(d) for d in node.decorator_list)
        if not public and any(_is_public_mark(child) for d in node.decorator_list
                              for child in ast.walk(d)):
            raise ReleaseError(
                f"line {node.lineno}: {node.name} marks only some parameters public; mark the "
                "whole test public or split it into a public and a hidden test")
        return "public" if public else "hidden"
    if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
        if module_public or any(_is_public_mark(d) for d in node.decorator_list):
            return "public"
        methods = [item for item in node.body if isinstance(
            item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_test_name(item.name)]
        marked = [any(_is_public_mark(d) for d in m.decorator_list) for m in methods]
        if any(marked) and not all(marked):
            raise ReleaseError(
                f"line {node.lineno}: class {node.name} mixes public and hidden tests; mark the "
                "class public or move its public tests out of it")
        return "public" if methods and all(marked) else "hidden"
    return None


def _module_marked_public(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and "pytestmark" in _names_defined(node):
            return any(_is_public_mark(child) for child in ast.walk(node.value))
    return False


def _statements(tree: ast.Module, lines: list[str]) -> list[_Statement]:
    """Top-level statements, each with the comment lines directly above it."""
    body = list(tree.body)
    docstring = bool(body) and isinstance(body[0], ast.Expr) and isinstance(
        body[0].value, ast.Constant) and isinstance(body[0].value.value, str)
    statements = []
    previous_end = 0
    for index, node in enumerate(body):
        start = min([node.lineno, *[d.lineno for d in getattr(node, "decorator_list", [])]])
        first = start
        while first - 1 > previous_end and lines[first - 2].lstrip().startswith("#"):
            first -= 1
        statement = _Statement(node, first, _names_defined(node), _names_used(node))
        statement.root = index == 0 and docstring
        statements.append(statement)
        previous_end = node.end_lineno or node.lineno
    return statements


def _reduce(source: str, filename: str, keep: set[str] | None) -> str | None:
    """The source with only the roots and what they use; None when nothing is worth keeping.

    `keep` None: a test file (roots are the public tests). Otherwise a probe file (roots are
    the top-level functions named in `keep`)."""
    tree = ast.parse(source, filename)
    lines = source.splitlines(keepends=True)
    statements = _statements(tree, lines)
    module_public = _module_marked_public(tree)
    wanted = False
    for statement in statements:
        node = statement.node
        if keep is None:
            visibility = _test_visibility(node, module_public)
            if visibility is not None:
                statement.root = visibility == "public"
                wanted |= statement.root
                statement.defines = set()  # a test is never "used" by name
                continue
            decorators = getattr(node, "decorator_list", [])
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                node.name.startswith("pytest_")
                or any(_is_fixture(d) and _autouse(d) for d in decorators)
            ):
                statement.root = True
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in keep:
            statement.root = wanted = True
        if not statement.defines and not isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        ):
            statement.root = True  # module-level code (an `if`, a call): kept as it is
    if not wanted:
        return None

    kept = {id(s) for s in statements if s.root}
    while True:
        used = set().union(*(s.uses for s in statements if id(s) in kept))
        grown = kept | {id(s) for s in statements if s.defines & used}
        if grown == kept:
            break
        kept = grown

    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    pieces: list[str] = []
    previous: ast.stmt | None = None
    for statement in statements:
        if id(statement) not in kept:
            continue
        node = statement.node
        text = "".join(lines[statement.first_line - 1:node.end_lineno or node.lineno])
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not (
            isinstance(node, ast.ImportFrom) and node.module == "__future__"
        ):
            text = _pruned_import(node, used, text)
        if previous is not None:
            gap = lines[(previous.end_lineno or previous.lineno):statement.first_line - 1]
            blank = min(sum(1 for line in gap if not line.strip()), 2)
            if isinstance(node, definitions) or isinstance(previous, definitions):
                blank = 2
            pieces.append("\n" * blank)
        pieces.append(text if text.endswith("\n") else text + "\n")
        previous = node
    reduced = "".join(pieces)
    ast.parse(reduced, filename)
    return reduced


def _pruned_import(node: ast.Import | ast.ImportFrom, used: set[str], text: str) -> str:
    aliases = [a for a in node.names if (a.asname or a.name).split(".")[0] in used]
    if len(aliases) == len(node.names):
        return text
    copy = ast.ImportFrom(node.module, aliases, node.level) if isinstance(
        node, ast.ImportFrom) else ast.Import(aliases)
    return ast.unparse(copy) + "\n"


def public_test_source(source: str, filename: str = "<tests>") -> str | None:
    """The test file reduced to its public tests and what they use; None when it has none."""
    return _reduce(source, filename, None)


def probe_source(source: str, wanted: set[str], filename: str = "<probes>") -> str | None:
    """The probe file reduced to the probe functions in `wanted` and what they use."""
    return _reduce(source, filename, wanted)


def words(text: str) -> set[str]:
    """Every identifier-like word of a text (for finding which probes a test file names)."""
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))


def declared_tests(source: str, filename: str = "<tests>") -> dict[str, str]:
    """Test name -> "public" or "hidden", for every top-level test of a file."""
    tree = ast.parse(source, filename)
    module_public = _module_marked_public(tree)
    names = {}
    for node in tree.body:
        visibility = _test_visibility(node, module_public)
        if visibility is not None:
            names[node.name] = visibility
    return names
