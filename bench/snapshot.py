"""A private copy of what grading reads, so that a measurement that runs for an hour grades one
version of the code even while people keep editing the repository.

Commands run with the copy as their working directory (`python -m autograder ...`) import the
copy's `autograder` (and `bench`) package, whose REPO_ROOT is the copy: its engine, its tests
and probes, its reference and its stubs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from autograder import REPO_ROOT

COPIED = ("autograder", "bench", "reference", "assignments", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "figures", "runs")
PROVENANCE = "PROVENANCE"  # the commit copied, and the copied files that differed from it


def describe_source(source: Path = REPO_ROOT) -> str:
    """"commit 1a2b3c4" or "commit 1a2b3c4 plus uncommitted changes to N files (a, b, ...)",
    for what `snapshot` copies; "an unknown commit" outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=source, capture_output=True, text=True,
                              check=True).stdout.rstrip()

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        changed = git("status", "--porcelain", "--", *COPIED).splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit"
    if not changed:
        return f"commit {commit}"
    names = [line[3:] for line in changed]
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return (f"commit {commit} plus uncommitted changes to {len(names)} "
            f"file{'' if len(names) == 1 else 's'} ({shown})")


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
    (destination / PROVENANCE).write_text(describe_source(source) + "\n")
    return destination
