"""Gradescope's "export submissions" zip: who submitted each folder, when, and the score
Gradescope gave, read from its `submission_metadata.yml` (used by the batch regrade)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class ExportMetadataError(ValueError):
    """submission_metadata.yml is there but cannot be read; the message says what to do."""


def _timestamp(value: Any) -> datetime | None:
    """`:created_at`, which YAML reads as a datetime ("2023-12-02 02:52:07.938335000 Z")."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value.strip():
        try:
            return parse_time(value)
        except ValueError:
            return None
    return None


def parse_time(text: str) -> datetime:
    """A time with its zone: "2025-09-15 23:59 -07:00", "2025-09-15T23:59:00Z", ... A time
    without a zone raises ValueError, since submission times carry theirs."""
    cleaned = re.sub(r"\s+(Z|[+-]\d\d:?\d\d)$", r"\1", text.strip()).replace(" Z", "Z")
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", cleaned)  # Gradescope writes nanoseconds
    moment = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; write it as 2025-09-15 23:59 -07:00")
    return moment


def read_export_metadata(folder: Path) -> dict[str, dict[str, Any]]:
    """Folder name -> {"submitters": [{"name", "email", "sid"}], "created_at": datetime or
    None, "score": Gradescope's score or None}, from an export's `submission_metadata.yml`.

    Gradescope's "export submissions" zip holds one folder per submission, named
    `submission_<id>`, and this file, keyed by those names, with Ruby-style keys:
    `:submitters` (a list of `:name`, `:sid`, `:email`; a group lists every member),
    `:created_at` (the submission time, with its zone), `:score`, `:status`, `:results` (the
    autograder's results.json) and `:history` (earlier submissions). Returns an empty
    mapping when there is no such file; raises ExportMetadataError when it cannot be read.
    """
    path = Path(folder) / "submission_metadata.yml"
    if not path.is_file():
        return {}
    import yaml

    try:
        data: Any = yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError as error:
        raise ExportMetadataError(
            f"{path} is not valid YAML ({str(error).splitlines()[0]}); download the export "
            "again, or grade without names (move the file away)") from None
    if not isinstance(data, dict):
        raise ExportMetadataError(f"{path} does not map submission folders to submitters; is "
                                  "it from Gradescope's \"Export Submissions\"?")
    entries: dict[str, dict[str, Any]] = {}
    for name, entry in data.items():
        entry = entry if isinstance(entry, dict) else {}
        submitters = entry.get(":submitters") or []
        score = entry.get(":score")
        entries[str(name)] = {
            "submitters": [{key: str(person.get(f":{key}") or "")
                            for key in ("name", "email", "sid")}
                           for person in submitters if isinstance(person, dict)],
            "created_at": _timestamp(entry.get(":created_at")),
            "score": float(score) if isinstance(score, (int, float)) else None,
        }
    return entries


# ----------------------------------------------------------------------------- the autograder zip
