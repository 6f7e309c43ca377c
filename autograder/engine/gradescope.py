"""Gradescope specifics: the "export submissions" metadata (and, later, the autograder zip)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_export_metadata(folder: Path) -> dict[str, dict[str, list[str]]]:
    """Folder name -> {"names": [...], "emails": [...]} from `submission_metadata.yml`.

    Gradescope writes one entry per submission folder, keyed by the folder's name, with a
    `:submitters` list of `{":name": ..., ":email": ..., ":sid": ...}` (Ruby-style keys).
    Returns an empty mapping when the file is absent or unreadable.
    """
    path = Path(folder) / "submission_metadata.yml"
    if not path.is_file():
        return {}
    import yaml

    try:
        data: Any = yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError:
        return {}
    people: dict[str, dict[str, list[str]]] = {}
    for name, entry in (data or {}).items() if isinstance(data, dict) else []:
        submitters = entry.get(":submitters", []) if isinstance(entry, dict) else []
        people[str(name)] = {
            "names": [str(s.get(":name", "")) for s in submitters if isinstance(s, dict)],
            "emails": [str(s.get(":email", "")) for s in submitters if isinstance(s, dict)],
        }
    return people
