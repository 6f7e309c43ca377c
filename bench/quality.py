"""The quality figures of the suites, kept in the repository: docs/quality.md.

    python -m bench.quality                     the latest reports of make mutation, honesty,
                                                flaky, crosscheck
    python -m bench.quality build/mutation-x/lab2.md --commit 1a2b3c4

`make mutation`, `make honesty`, `make flaky` and `make crosscheck` write their reports to
build/ (not committed); this copies each report into docs/quality/ and rewrites
docs/quality.md, an index holding each report's summary (the mutation table, the
trivial-implementation table, the flakiness rates, the crosscheck table)
with the commit it was measured on and the date. The commit comes from the snapshot the
measurement graded (bench/snapshot.py writes it, with the files that differed from it), or from
--commit for a report made without one. A report replaces the earlier one of the same gate,
lab and parts; the others stay, each with its own commit, so the page says how old each figure
is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from pathlib import Path

from autograder import REPO_ROOT
from bench.snapshot import PROVENANCE

DOCS = REPO_ROOT / "docs"
FOLDER = DOCS / "quality"
INDEX = DOCS / "quality.md"
STATE = FOLDER / "index.json"
GATES = {  # the report's title -> (gate, the command that makes it)
    "Mutation score of": ("mutation", "make mutation"),
    "Trivial implementations of": ("honesty", "make honesty"),
    "Flakiness of": ("flaky", "make flaky"),
    "Crosscheck of": ("crosscheck", "make crosscheck"),
}
ORDER = ("mutation", "honesty", "flaky", "crosscheck")
DEFAULT_REPORTS = [REPO_ROOT / "build" / gate for gate in ORDER]


class ReportError(ValueError):
    pass


def describe(text: str) -> tuple[str, str, list[str]]:
    """(gate, lab, parts) of a report, from its title and tables."""
    title = text.splitlines()[0] if text else ""
    found = [(gate, match.group(1)) for prefix, (gate, _) in GATES.items()
             if (match := re.match(rf"# {prefix} (\w+)", title))]
    if not found:
        raise ReportError(f"not a report of make mutation, honesty, flaky or crosscheck: "
                          f"{title!r}")
    gate, lab = found[0]
    if gate in ("flaky", "crosscheck"):
        selected = re.search(r"Tests graded: parts ([\w, ]+?)(?: and -k|\.)", text)
        parts = sorted(p.strip() for p in selected.group(1).split(",")) if selected else ["all"]
    else:
        parts = sorted(re.findall(r"^## (\w+)$", text, flags=re.MULTILINE)) or ["all"]
    return gate, lab, parts


def summary(text: str) -> str:
    """The report's head: everything before its per-part sections and detailed lists."""
    kept = []
    for line in text.splitlines()[1:]:
        if line.startswith("## ") or line.startswith(("Statistical tests", "First failure",
                                                      "Seeds:")):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def provenance(report: Path, commit: str | None) -> str:
    if commit:
        return commit
    stamp = report.parent / "snapshot" / PROVENANCE
    if stamp.is_file():
        return stamp.read_text().strip()
    raise ReportError(f"{report}: no {PROVENANCE} in its snapshot (a report from before "
                      "snapshots recorded their commit); give the commit with --commit")


def publish(report: Path, commit: str | None = None, remark: str = "") -> str:
    text = report.read_text()
    gate, lab, parts = describe(text)
    name = f"{gate}-{lab}-{'-'.join(parts)}.md"
    FOLDER.mkdir(parents=True, exist_ok=True)
    measured = dt.datetime.fromtimestamp(report.stat().st_mtime, dt.UTC).strftime(
        "%Y-%m-%d %H:%M UTC")
    origin = provenance(report, commit)
    (FOLDER / name).write_text(f"<!-- measured on {origin}, {measured}; copied by "
                               f"python -m bench.quality -->\n{text}")
    state = json.loads(STATE.read_text()) if STATE.is_file() else {}
    state[name] = {"gate": gate, "lab": lab, "parts": parts, "commit": origin,
                   "measured": measured, "summary": summary(text), "remark": remark}
    STATE.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    render(state)
    return name


def short_commit(origin: str) -> str:
    """'commit 1a2b3c4 plus uncommitted changes to ...' -> '1a2b3c4+' (the + marks changes)."""
    found = re.search(r"commit ([0-9a-f]{7,40})", origin)
    return (found.group(1) if found else origin) + ("+" if "uncommitted" in origin else "")


def overview(entries: list[tuple[str, dict]]) -> list[str]:
    """One table over every report of a gate: each part's row from its report's table, with
    the lab in front and the commit it was measured on behind (none for reports without a
    table, as flakiness reports). Reports whose tables have other columns (a crosscheck of
    fewer settings) get a table of their own."""
    tables: dict[str, list[str]] = {}  # header -> rows
    for _, entry in entries:
        table = [line for line in entry["summary"].splitlines() if line.startswith("|")]
        if len(table) < 3:
            continue
        tables.setdefault(table[0], []).extend(
            f"| {entry['lab']} {row} {short_commit(entry['commit'])} |" for row in table[2:])
    if not tables:
        return []
    lines = ["", "Every part at a glance (the sections below hold each report's summary):"]
    for header, rows in tables.items():
        columns = header.count("|") + 1
        lines += ["", f"| lab {header} commit |", "|" + "---|" * columns, *rows]
    return lines


def render(state: dict) -> None:
    lines = ["# Quality of the suites", "",
             "Written by `python -m bench.quality` from the reports of `make mutation`, "
             "`make honesty`, `make flaky` and `make crosscheck` (docs/quality/ holds each "
             "report in full); do not "
             "edit by hand. Each figure carries the commit it was measured on: a suite changed "
             "since then may score differently until the gate is run again.", "",
             "What each gate asks: mutation, at least 90% of the non-equivalent mutants of each "
             "part killed (equivalent mutants listed with their reasons in "
             "bench/equivalent_mutants.toml); honesty, no trivial implementation passes a test "
             "that calls it (exceptions with reasons in bench/honesty_exceptions.toml); "
             "flakiness, a correct submission fails no deterministic test and each statistical "
             "test no more often than its stated false-failure probability; crosscheck, the "
             "reference and the correct alternatives keep full marks (the starter code 0) with "
             "other CPUs' numerics, for the submission's worker against the live reference "
             "(hidden tests) and for the whole machine against a release's snapshots (public)."]
    titles = {"mutation": "Mutation scores", "honesty": "No points for doing nothing",
              "flaky": "Flakiness", "crosscheck": "Other CPUs (crosscheck)"}
    for gate in ORDER:
        entries = sorted((name, entry) for name, entry in state.items() if entry["gate"] == gate)
        if not entries:
            continue
        lines += ["", f"## {titles[gate]}", *overview(entries)]
        for name, entry in entries:
            parts = ", ".join(entry["parts"])
            lines += ["", f"### {entry['lab']}: {parts}", "",
                      f"Measured on {entry['commit']}, {entry['measured']} "
                      f"([full report](quality/{name})).", "",
                      *([entry["remark"], ""] if entry.get("remark") else []), entry["summary"]]
    INDEX.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="*", type=Path,
                        help="report files (default: build/{mutation,honesty,flaky,"
                        "crosscheck}/*.md)")
    parser.add_argument("--commit", help="the commit a report was measured on, when its "
                        "snapshot did not record it")
    parser.add_argument("--remark", default="", help="a sentence shown with the report's "
                        "summary (what it covers, what it does not)")
    args = parser.parse_args(argv)
    reports = args.reports or sorted(path for folder in DEFAULT_REPORTS if folder.is_dir()
                                     for path in folder.glob("*.md"))
    if not reports:
        print("no reports: run make mutation, make honesty or make flaky first")
        return 1
    for report in reports:
        try:
            print(f"{report} -> docs/quality/{publish(report, args.commit, args.remark)}")
        except ReportError as error:
            print(f"skipped: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
