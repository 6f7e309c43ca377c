"""Each lab is worth 100 points, and its handout's table gives each part's share as the hidden
suites award it (a test added or re-weighted without the handout would change a grade
students were promised)."""

import ast
import re

import pytest

from autograder.engine.labs import available_labs, load_lab


def points_of(test_file) -> int:
    """The points a test file awards: points(N) per test, times its parametrized cases."""
    tree = ast.parse(test_file.read_text())
    constants = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                 for target in node.targets if isinstance(target, ast.Name)}

    def cases_in(argument: ast.expr) -> int:
        if isinstance(argument, ast.Name):
            argument = constants[argument.id]
        # plain literals, or range / list / tuple of them
        return len(eval(compile(ast.Expression(argument), str(test_file), "eval"),  # noqa: S307
                        {"__builtins__": {}, "range": range, "list": list, "tuple": tuple}))

    total = 0
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
            continue
        points, cases = 0, 1
        for decorator in node.decorator_list:
            if not isinstance(decorator, ast.Call):
                continue
            name = ast.unparse(decorator.func)
            if name.endswith("mark.points"):
                points = ast.literal_eval(decorator.args[0])
            elif name.endswith("mark.parametrize"):
                cases *= cases_in(decorator.args[1])
        total += points * cases
    return total


@pytest.mark.parametrize("lab_name", available_labs())
def test_the_handout_gives_each_part_its_points_and_the_lab_is_worth_100(lab_name):
    lab = load_lab(lab_name)
    handout = (lab.reference_dir / "README.md").read_text()
    awarded = {part: points_of(lab.test_file(part)) for part in lab.parts}
    stated = {}
    for part in lab.parts:
        row = re.search(rf"^\|[^|\n]*\| `{part}\.py` \| (\d+) \|$", handout, flags=re.MULTILINE)
        assert row, f"{lab_name}'s handout has no points row for {part}.py"
        stated[part] = int(row.group(1))
    assert awarded == stated, f"{lab_name}: the suites award {awarded}, the handout says {stated}"
    assert sum(awarded.values()) == 100, f"{lab_name} is worth {sum(awarded.values())} points"
