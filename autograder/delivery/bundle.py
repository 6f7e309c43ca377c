"""The pieces the repository delivers are assembled here: the engine, a lab's grader, the
reference, pinned requirements, and zips that keep executable bits.

Used by the student release (release.py) and the two autograder zips (gradescope.py,
otter_plugin.py), so that all three copy the same files the same way.
"""

from __future__ import annotations

import re
import shutil
import stat
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from autograder import REPO_ROOT
from autograder.engine.labs import Lab
from autograder.engine.stubs import SKIP_NAMES, generate_lab

PACKAGES = ("engine", "delivery")  # the grading core, and what delivers it (the command line)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
ZIP_DATE = (2020, 1, 1, 0, 0, 0)
PROJECT = "ai-safety-labs"


def _ignore(_folder: str, names: list[str]) -> set[str]:
    return {name for name in names if name in SKIP_NAMES or name.endswith((".pyc", ".pyo"))}


def copy_engine(destination: Path) -> None:
    """The `autograder` package without any lab: what runs the tests, and its command line."""
    package = destination / "autograder"
    for name in ("__init__.py", "__main__.py"):
        package.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / "autograder" / name, package / name)
    for folder in PACKAGES:
        (package / folder).mkdir(parents=True, exist_ok=True)
        for path in sorted((REPO_ROOT / "autograder" / folder).glob("*.py")):
            shutil.copyfile(path, package / folder / path.name)


def copy_grader(lab: Lab, destination: Path) -> None:
    """The lab's complete grader (manifest, hidden tests, probes): for autograder zips only."""
    shutil.copytree(lab.tests_dir, destination / "autograder" / lab.name, ignore=_ignore)


def copy_reference(lab: Lab, destination: Path) -> None:
    shutil.copytree(lab.reference_dir, destination / "reference" / lab.name, ignore=_ignore)


def write_assignments(lab: Lab, destination: Path) -> None:
    """The student files, generated afresh from the reference (stubs, handout, support)."""
    generate_lab(lab.reference_dir, destination / "assignments" / lab.name)


def copy_pyproject(destination: Path) -> None:
    shutil.copyfile(REPO_ROOT / "pyproject.toml", destination / "pyproject.toml")


def pytest_settings() -> str:
    """The `[tool.pytest.ini_options]` table of the staff pyproject, as text."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    match = re.search(r"^\[tool\.pytest\.ini_options\]\n.*?(?=^\[|\Z)", text, re.S | re.M)
    if match is None:
        raise RuntimeError("pyproject.toml has no [tool.pytest.ini_options] table")
    return match.group(0).rstrip() + "\n"


def _requirement_names(distribution: str) -> list[str]:
    from packaging.requirements import Requirement

    names = []
    for line in metadata.requires(distribution) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names


def pinned_requirements() -> tuple[str, list[str]]:
    """(torch's version, `name==version` for every other package the project needs, its
    dependencies included), as installed in the running environment.

    torch is installed separately from its CPU index; a local label (`+cpu`) is dropped, since
    `==2.13.0` matches the CPU build there.
    """
    from packaging.utils import canonicalize_name

    wanted = _requirement_names(PROJECT)
    if not wanted:
        raise RuntimeError(f"{PROJECT} is not installed with its dependencies in {sys.prefix}")
    seen: dict[str, str] = {}
    while wanted:
        name = canonicalize_name(wanted.pop())
        if name in seen:
            continue
        try:
            seen[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise RuntimeError(f"{name} is needed but not installed in {sys.prefix}") from None
        wanted.extend(_requirement_names(name))
    torch = seen.pop("torch").split("+")[0]
    return torch, [f"{name}=={version}" for name, version in sorted(seen.items())]


def requirements_text(header: str) -> str:
    torch, pins = pinned_requirements()
    lines = [f"# {line}" if line else "#" for line in header.strip().splitlines()]
    lines.append(f"# torch=={torch} is installed first, from {TORCH_CPU_INDEX}")
    return "\n".join([*lines, *pins]) + "\n"


def zip_folder(folder: Path, destination: Path, *, executable: tuple[str, ...] = ()) -> None:
    """Zip `folder`'s contents at the zip's root, in a stable order with fixed dates; the
    files named in `executable` get mode 0755, the rest 0644."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_dir() or any(part in SKIP_NAMES for part in path.parts):
                continue
            name = path.relative_to(folder).as_posix()
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            mode = 0o755 if name in executable else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    temporary.replace(destination)
