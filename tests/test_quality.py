"""bench/quality.py: the gates' reports copied into docs/ with the commit they were measured on."""

import pytest

from bench import quality
from bench.snapshot import PROVENANCE, snapshot

MUTATION = """# Mutation score of lab2 (seed 1)

Killed: a test that passes on the reference fails on the mutant.

| part | mutants | killed | not killed | equivalent | not run | score | target |
|---|---|---|---|---|---|---|---|
| sae | 10 | 9 | 1 | 0 | 0 | 90.0% | 90% met |

## sae

Survivors (1):
- SAE.encode: dropped call: x.relu()
"""

FLAKY = """# Flakiness of lab2: the reference graded 20 times with fresh seeds

20 gradings (20 completed) in 300 s; seeds drawn at random. Tests graded: parts sae, superposition.

No test failed in 20 gradings.

Statistical tests and what their stated false-failure probability implies for 20 runs:
"""


@pytest.fixture
def docs(tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "FOLDER", tmp_path / "quality")
    monkeypatch.setattr(quality, "INDEX", tmp_path / "quality.md")
    monkeypatch.setattr(quality, "STATE", tmp_path / "quality" / "index.json")
    return tmp_path


def test_reports_are_recognised():
    assert quality.describe(MUTATION) == ("mutation", "lab2", ["sae"])
    assert quality.describe(FLAKY) == ("flaky", "lab2", ["sae", "superposition"])
    with pytest.raises(quality.ReportError):
        quality.describe("# Something else\n")


def test_publish_keeps_each_figure_with_its_commit(docs, tmp_path):
    report = tmp_path / "build" / "lab2.md"
    report.parent.mkdir()
    report.write_text(MUTATION)
    with pytest.raises(quality.ReportError, match="--commit"):
        quality.publish(report)  # no snapshot beside it, no commit given
    (report.parent / "snapshot").mkdir()
    (report.parent / "snapshot" / PROVENANCE).write_text("commit abc1234\n")
    assert quality.publish(report) == "mutation-lab2-sae.md"
    flaky = tmp_path / "flaky.md"
    flaky.write_text(FLAKY)
    quality.publish(flaky, commit="commit def5678")
    index = (docs / "quality.md").read_text()
    assert "| sae | 10 | 9 | 1 | 0 | 0 | 90.0% | 90% met |" in index
    assert "Survivors" not in index  # the details stay in the full report
    assert "Measured on commit abc1234" in index and "Measured on commit def5678" in index
    assert "No test failed in 20 gradings." in index
    # the overview: one row per part over every report of the gate, with its commit
    assert ("| lab | part | mutants | killed | not killed | equivalent | not run | score "
            "| target | commit |") in index
    assert "| lab2 | sae | 10 | 9 | 1 | 0 | 0 | 90.0% | 90% met | abc1234 |" in index
    assert (docs / "quality" / "mutation-lab2-sae.md").read_text().count("Survivors (1)") == 1
    # a newer report of the same gate, lab and parts replaces the older one
    report.write_text(MUTATION.replace("| 9 | 1 |", "| 10 | 0 |").replace("90.0%", "100.0%"))
    quality.publish(report, commit="commit 9999999")
    index = (docs / "quality.md").read_text()
    assert "100.0%" in index and "90.0%" not in index and "abc1234" not in index


def test_snapshots_record_their_commit(tmp_path):
    copy = snapshot(tmp_path / "copy")
    assert (copy / PROVENANCE).read_text().startswith(("commit ", "an unknown commit"))
