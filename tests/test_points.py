"""Each lab is worth 100 points, and its handout's table gives each part's share as the hidden
suites award it (a test added or re-weighted without the handout would change a grade
students were promised)."""

import re

import pytest

from autograder.delivery.release import points_by_part
from autograder.engine.labs import available_labs, load_lab


@pytest.mark.parametrize("lab_name", available_labs())
def test_the_handout_gives_each_part_its_points_and_the_lab_is_worth_100(lab_name):
    lab = load_lab(lab_name)
    handout = (lab.reference_dir / "README.md").read_text()
    awarded = {part: int(sum(kinds.values())) for part, kinds in points_by_part(lab).items()}
    stated = {}
    for part in lab.parts:
        row = re.search(rf"^\|[^|\n]*\| `{part}\.py` \| (\d+) \|$", handout, flags=re.MULTILINE)
        assert row, f"{lab_name}'s handout has no points row for {part}.py"
        stated[part] = int(row.group(1))
    assert awarded == stated, f"{lab_name}: the suites award {awarded}, the handout says {stated}"
    assert sum(awarded.values()) == 100, f"{lab_name} is worth {sum(awarded.values())} points"
