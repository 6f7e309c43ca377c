"""Each lab is worth 100 points, and its handout's table gives each part's share as the hidden
suites award it (a test added or re-weighted without the handout would change a grade
students were promised)."""

import re

import pytest

from autograder.delivery.release import points_by_part
from autograder.engine.labs import available_labs, load_lab

# Labs whose handout already lists parts that are not graded yet (they join lab.toml as they
# are built): the handout's table must still add up to 100, and each graded part must get
# exactly its row's points.
IN_PROGRESS = {"lab3"}
# Points a graded part of a lab in progress does not award yet, and why (its handout says so).
PENDING: dict[tuple[str, str], tuple[int, str]] = {}


@pytest.mark.parametrize("lab_name", available_labs())
def test_the_handout_gives_each_part_its_points_and_the_lab_is_worth_100(lab_name):
    lab = load_lab(lab_name)
    handout = (lab.reference_dir / "README.md").read_text()
    awarded = {part: int(sum(kinds.values())) for part, kinds in points_by_part(lab).items()}
    table = {part: int(points) for part, points in re.findall(
        r"^\|[^|\n]*\| `(\w+)\.py` \| (\d+) \|$", handout, flags=re.MULTILINE)}
    for part in lab.parts:
        assert part in table, f"{lab_name}'s handout has no points row for {part}.py"
    stated = {part: table[part] - PENDING.get((lab_name, part), (0, ""))[0] for part in lab.parts}
    assert awarded == stated, f"{lab_name}: the suites award {awarded}, the handout says {stated}"
    total = sum(table.values())
    assert total == 100, f"{lab_name}'s handout table adds up to {total}"
    if lab_name not in IN_PROGRESS:
        assert set(table) == set(lab.parts), f"{lab_name}: the handout's parts {sorted(table)}"
        assert sum(awarded.values()) == 100, f"{lab_name} is worth {sum(awarded.values())} points"
