"""The layout the folders promise: the grading core (`autograder/engine`) knows neither the labs
nor how grading is delivered, and delivery (`autograder/delivery`) uses the core without any
import circle. docs/architecture.md describes both; this keeps it true."""

import ast
from pathlib import Path

from autograder import REPO_ROOT

PACKAGE = REPO_ROOT / "autograder"


def imports_of(path: Path) -> set[str]:
    """The `autograder...` modules a file imports, at any depth (imports inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(name for name in names if name.startswith("autograder"))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("autograder"))
    return found


def modules(folder: str) -> dict[str, set[str]]:
    """Module name -> the modules of the same package it imports."""
    graph = {}
    for path in sorted((PACKAGE / folder).glob("*.py")):
        name = f"autograder.{folder}.{path.stem}"
        graph[name] = {m for m in imports_of(path) if m.count(".") == 2
                       and m.startswith(f"autograder.{folder}.") and m != name
                       and (PACKAGE / folder / f"{m.rsplit('.', 1)[1]}.py").is_file()}
    return graph


def test_the_core_imports_no_delivery_and_no_lab():
    labs = {path.name for path in PACKAGE.iterdir() if (path / "lab.toml").is_file()}
    assert labs, "no lab folder found under autograder/"
    for path in sorted((PACKAGE / "engine").glob("*.py")):
        wrong = sorted(m for m in imports_of(path)
                       if m.startswith("autograder.delivery")
                       or m.split(".")[1:2] and m.split(".")[1] in labs)
        assert not wrong, (f"autograder/engine/{path.name} imports {', '.join(wrong)}: the "
                           "grading core must not depend on delivery or on a lab")


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """An import circle of `graph` (module -> modules it imports), as a path, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, trail: list[str]) -> list[str] | None:
        state[name] = 1
        for other in sorted(graph.get(name, ())):
            if state.get(other) == 1:
                return trail[trail.index(other):] + [other]
            if other not in state and (circle := visit(other, trail + [other])):
                return circle
        state[name] = 2
        return None

    for name in graph:
        if name not in state and (circle := visit(name, [name])):
            return circle
    return None


def test_no_import_circles():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    for folder in ("engine", "delivery"):
        circle = find_circle(modules(folder))
        assert circle is None, "import circle: " + " -> ".join(circle)


def test_the_map_names_every_module():
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    for folder in ("engine", "delivery"):
        for path in sorted((PACKAGE / folder).glob("*.py")):
            if path.stem != "__init__":
                assert f"{folder}/{path.name}" in text, (
                    f"docs/architecture.md does not mention autograder/{folder}/{path.name}")
