"""A private copy of what grading reads, so that a measurement that runs for an hour grades one
version of the code even while people keep editing the repository.

Commands run with the copy as their working directory (`python -m autograder ...`) import the
copy's `autograder` (and `bench`) package, whose REPO_ROOT is the copy: its engine, its tests
and probes, its reference and its stubs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from autograder import REPO_ROOT

COPIED = ("autograder", "bench", "reference", "assignments", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "figures", "runs")


def snapshot(destination: Path, source: Path = REPO_ROOT) -> Path:
    """Copy the graded code of `source` into `destination` (replacing it); returns it."""
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    for name in COPIED:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, destination / name, ignore=IGNORED)
        elif path.is_file():
            shutil.copy2(path, destination / name)
    return destination
