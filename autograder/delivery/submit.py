"""`make submit LAB`: check a lab's files the way the grader will load them, then zip them.

The files are staged by the one loader of submissions, each graded file is imported in a
worker process with a time limit (so long work at import time shows up here, not on the
grader), and the names the lab asks for (the public top-level functions and classes of the
generated stubs) must be defined. Only then is the zip written, with exactly the graded files.
"""

from __future__ import annotations

import ast
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from autograder.engine.labs import Lab
from autograder.engine.runner import CallFailed, Implementation
from autograder.engine.submission import stage_submission

IMPORT_TIMEOUT = 10.0


@dataclass
class SubmissionCheck:
    files: dict[str, bytes] = field(default_factory=dict)  # graded file -> its contents
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unfinished: dict[str, list[str]] = field(default_factory=dict)  # file -> functions


def _raises_not_implemented(body: list[ast.stmt]) -> bool:
    """Whether a function body reaches a `raise NotImplementedError` before any `return`."""
    for statement in body:
        if isinstance(statement, ast.Return):
            return False
        if isinstance(statement, ast.Raise) and statement.exc is not None:
            error = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
            if isinstance(error, ast.Name) and error.id == "NotImplementedError":
                return True
    return False


def unfinished_functions(source: str) -> list[str]:
    """The functions and methods of a file that still raise NotImplementedError (as the
    starter code's TODOs do), read from its syntax tree: nothing is run."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    found = []
    for node in tree.body:
        if isinstance(node, functions) and _raises_not_implemented(node.body):
            found.append(node.name)
        elif isinstance(node, ast.ClassDef):
            found.extend(f"{node.name}.{item.name}" for item in node.body
                         if isinstance(item, functions) and _raises_not_implemented(item.body))
    return found


def _article(kind: str) -> str:
    return {"class": "a class", "function": "a function"}.get(kind, "a plain value")


def check_submission(lab: Lab, source: Path, *, import_timeout: float = IMPORT_TIMEOUT
                     ) -> SubmissionCheck:
    """Stage `source` (a folder or a zip), import each graded file, compare the names."""
    result = SubmissionCheck()
    required = lab.required_names()
    with tempfile.TemporaryDirectory(prefix="submit-") as scratch:
        staged = stage_submission(lab, Path(source), Path(scratch) / "staged")
        result.notes.extend(staged.notes)
        for name in staged.missing:
            result.problems.append(
                f"{name} is missing: it should be in {source} (the lab's graded files are "
                f"{', '.join(lab.graded)})")
        with Implementation(staged.root, label="your code", import_timeout=import_timeout
                            ) as worker:
            for name in lab.graded:
                if name in staged.missing:
                    continue
                result.files[name] = (staged.root / name).read_bytes()
                unfinished = unfinished_functions(result.files[name].decode(errors="replace"))
                if unfinished:
                    result.unfinished[name] = unfinished
                try:
                    defined = worker.names(Path(name).stem)
                except CallFailed as failure:
                    result.problems.append(str(failure))
                    continue
                for wanted, kind in required.get(name, {}).items():
                    if wanted not in defined:
                        result.problems.append(
                            f"{name} does not define {wanted} ({_article(kind)} the lab asks "
                            "for); was it renamed or deleted? Keep the name from the starter "
                            "code, even if you have not finished it")
                    elif defined[wanted] != kind:
                        result.problems.append(
                            f"{name} defines {wanted}, but as {_article(defined[wanted])} "
                            f"where the lab asks for {_article(kind)}")
    return result


def write_zip(files: dict[str, bytes], destination: Path) -> None:
    """The zip to upload, byte for byte the same whatever system writes it: the graded files
    only (no folder, no `.DS_Store` or `__MACOSX/`), sorted, with a fixed date, mode and
    "made on" system (zipfile writes 0 on Windows, 3 elsewhere), Windows line endings turned
    into plain newlines (Python reads both alike), stored uncompressed (zlib builds compress
    differently; the files are small)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_suffix(".zip.tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as archive:
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, data.replace(b"\r\n", b"\n"))
    temporary.replace(destination)


def submit(lab: Lab, source: Path, destination: Path, *, force: bool = False) -> int:
    """Check, print what was found, write the zip; the exit code for the command line."""
    print(f"Checking {lab.name} in {source} ...", flush=True)
    result = check_submission(lab, source)
    for note in result.notes:
        print(f"  note: {note}")
    if result.unfinished:
        count = sum(len(names) for names in result.unfinished.values())
        print(f"\nwarning: {count} function(s) still raise NotImplementedError, as the starter "
              "code does (their tests score 0; this alone does not stop the zip):")
        for name, functions in sorted(result.unfinished.items()):
            print(f"  {name}: {', '.join(functions)}")
    if result.problems:
        print(f"\n{len(result.problems)} problem(s) found:")
        for problem in result.problems:
            lines = problem.splitlines()
            print(f"  - {lines[0]}")
            for line in lines[1:12]:
                print(f"      {line}")
        if not force or not result.files:
            print(f"\nNo zip was written. Fix the problems above and run `make submit {lab.name}` "
                  "again" + ("" if not result.files else
                             f" (or `make submit {lab.name} FORCE=1` to write it anyway)") + ".")
            return 1
    write_zip(result.files, destination)
    print(f"\nWrote {destination} with:")
    for name, data in sorted(result.files.items()):
        print(f"  {name:<24} {len(data):>8} bytes")
    if not result.problems:
        print("Every file imports and defines what the lab asks for.")
    print(f"Upload {destination.name} to the {lab.name} assignment on Gradescope.")
    return 1 if result.problems else 0
