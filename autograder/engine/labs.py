"""Where a lab's pieces live, read from its manifest `autograder/LAB/lab.toml`."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from autograder import REPO_ROOT

LABS_DIR = REPO_ROOT / "autograder"


class UnknownLab(LookupError):
    pass


@dataclass(frozen=True)
class Lab:
    name: str
    title: str
    graded: tuple[str, ...]
    support: tuple[str, ...]
    tests_dir: Path

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(Path(name).stem for name in self.graded)

    @property
    def probes_dir(self) -> Path:
        return self.tests_dir / "probes"

    @property
    def reference_dir(self) -> Path:
        return REPO_ROOT / "reference" / self.name

    @property
    def assignments_dir(self) -> Path:
        return REPO_ROOT / "assignments" / self.name

    @property
    def support_dir(self) -> Path:
        """Where the unchanged support files are taken from when a submission is staged."""
        return self.assignments_dir if self.assignments_dir.is_dir() else self.reference_dir

    def test_file(self, part: str) -> Path:
        return self.tests_dir / f"test_{part}.py"

    def support_module(self, name: str) -> ModuleType:
        """One of the lab's support files (`support`), the grader's own copy, imported in the
        calling process once (for a trusted test's own computations: never submitted code)."""
        if name not in self.support:
            raise ValueError(f"{name} is not a support file of {self.name}")
        key = f"_{self.name}_support_{Path(name).stem}"
        if key not in sys.modules:
            spec = importlib.util.spec_from_file_location(key, self.support_dir / name)
            module = importlib.util.module_from_spec(spec)
            sys.modules[key] = module  # a dataclass of the module looks itself up there
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[key]
                raise
        return sys.modules[key]

    @property
    def interface_file(self) -> Path:
        """Written into the student release, where the reference is absent."""
        return self.tests_dir / "interface.json"

    def required_names(self) -> dict[str, dict[str, str]]:
        """Graded file -> {name: "function" or "class"}: the public top-level definitions of
        its generated stub, which a submission must keep."""
        if self.interface_file.is_file():
            return json.loads(self.interface_file.read_text(encoding="utf-8"))
        from autograder.engine.stubs import make_stub

        required = {}
        for name in self.graded:
            path = self.reference_dir / name
            tree = ast.parse(make_stub(path.read_text(encoding="utf-8"), str(path)), str(path))
            required[name] = {
                node.name: "class" if isinstance(node, ast.ClassDef) else "function"
                for node in tree.body
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and not node.name.startswith("_")
            }
        return required


def available_labs() -> list[str]:
    return sorted(path.parent.name for path in LABS_DIR.glob("*/lab.toml"))


def load_lab(name: str) -> Lab:
    manifest = LABS_DIR / name / "lab.toml"
    if not manifest.is_file():
        known = ", ".join(available_labs()) or "none"
        raise UnknownLab(f"there is no lab called {name!r} (labs: {known})")
    data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    return Lab(
        name=name,
        title=data.get("title", name),
        graded=tuple(data["graded"]),
        support=tuple(data.get("support", ())),
        tests_dir=manifest.parent,
    )


def lab_of(path: Path) -> Lab | None:
    """The lab whose test folder holds `path`, if any."""
    for folder in [path, *path.parents]:
        if (folder / "lab.toml").is_file() and folder.parent == LABS_DIR:
            return load_lab(folder.name)
    return None
