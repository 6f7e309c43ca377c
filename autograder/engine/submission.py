"""The one loader of submissions: a folder or a zip in, a staged implementation folder out.

Only the lab's graded files are taken from a submission, wherever they sit in it (an
enclosing folder, `__MACOSX` debris and extra files are all fine); the support files come
from the course's own copy. Nothing is extracted by the zip's own paths, so `../` entries,
absolute paths, symlinks and zip bombs cannot write anywhere: each graded file is read,
with a size limit, and written under its own name. Symbolic links are refused at every
level: the submission itself, every folder inside it (never descended into) and every file
(checked with lstat and opened with O_NOFOLLOW), so a link to the course's files is never
graded as the student's work.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from autograder.engine.labs import Lab

MAX_FILE_BYTES = 5 * 2**20
# Windows has no O_NOFOLLOW or O_NONBLOCK (and needs O_BINARY): there the lstat check before
# opening is what keeps links out.
NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
READ_FLAGS = os.O_RDONLY | NO_FOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
MAX_ZIP_BYTES = 100 * 2**20


@dataclass
class StagedSubmission:
    root: Path
    found: dict[str, str] = field(default_factory=dict)  # graded file -> where it was found
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def missing_reasons(self) -> dict[str, str]:
        """Module name -> why it cannot be imported, for the worker handle."""
        return {
            Path(name).stem: f"{name} was not found in your submission" for name in self.missing
        }


def _ignored(parts: tuple[str, ...]) -> bool:
    return any(
        part == "__MACOSX" or (part.startswith(".") and part not in (".", ".."))
        for part in parts
    )


def _pick(candidates: list[str], name: str, notes: list[str]) -> str:
    candidates.sort(key=lambda path: (path.count("/"), path))
    if len(candidates) > 1:
        notes.append(f"{name} appears {len(candidates)} times; graded {candidates[0]}")
    return candidates[0]


def _read_regular(path: Path, limit: int) -> bytes | str:
    """Up to `limit` + 1 bytes of a regular file that is not a symbolic link, or why not."""
    try:
        if not NO_FOLLOW and path.is_symlink():
            raise OSError("a symbolic link")
        descriptor = os.open(path, READ_FLAGS)
    except OSError as exc:
        return "is a symbolic link" if path.is_symlink() else f"could not be read ({exc})"
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return "is not a regular file"
        return stream.read(limit + 1)


def _from_zip(lab: Lab, source: Path, staged: StagedSubmission) -> None:
    data = _read_regular(source, MAX_ZIP_BYTES)
    if isinstance(data, str) or len(data) > MAX_ZIP_BYTES:
        why = data if isinstance(data, str) else f"is larger than {MAX_ZIP_BYTES // 2**20} MiB"
        staged.notes.append(f"{source.name} {why}; not graded")
        return
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        staged.notes.append(f"{source.name} could not be opened as a zip file ({exc})")
        return
    with archive:
        candidates: dict[str, list[str]] = {name: [] for name in lab.graded}
        infos = {}
        for info in archive.infolist():
            path = PurePosixPath(info.filename.replace("\\", "/"))
            if info.is_dir() or _ignored(path.parts):
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                if path.name in candidates:
                    staged.notes.append(f"{info.filename} is a symbolic link; ignored")
                continue
            if path.name in candidates:
                candidates[path.name].append(str(path))
                infos[str(path)] = info
        for name, paths in candidates.items():
            if not paths:
                continue
            chosen = _pick(paths, name, staged.notes)
            info = infos[chosen]
            if info.file_size > MAX_FILE_BYTES:
                staged.notes.append(f"{chosen} is larger than {MAX_FILE_BYTES // 2**20} MiB")
                continue
            try:
                with archive.open(info) as handle:
                    data = handle.read(MAX_FILE_BYTES + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                staged.notes.append(f"{chosen} could not be read from the zip ({exc})")
                continue
            if len(data) > MAX_FILE_BYTES:
                staged.notes.append(f"{chosen} is larger than {MAX_FILE_BYTES // 2**20} MiB")
                continue
            (staged.root / name).write_bytes(data)
            staged.found[name] = chosen


def _files(source: Path, staged: StagedSubmission) -> Iterator[Path]:
    """Every file under `source`, relative to it, without entering linked folders."""
    for folder, folders, files in os.walk(source, followlinks=False):
        here = Path(folder)
        for name in sorted(folders):
            if (here / name).is_symlink():
                staged.notes.append(f"{(here / name).relative_to(source)} is a symbolic link; "
                                    "ignored")
        folders[:] = sorted(name for name in folders if not (here / name).is_symlink())
        for name in sorted(files):
            yield (here / name).relative_to(source)


def _from_folder(lab: Lab, source: Path, staged: StagedSubmission) -> None:
    candidates: dict[str, list[str]] = {name: [] for name in lab.graded}
    for relative in _files(source, staged):
        if relative.name not in candidates or _ignored(relative.parts[:-1]):
            continue
        if (source / relative).is_symlink():
            staged.notes.append(f"{relative} is a symbolic link; ignored")
            continue
        candidates[relative.name].append(relative.as_posix())
    for name, paths in candidates.items():
        if not paths:
            continue
        chosen = _pick(paths, name, staged.notes)
        data = _read_regular(source / chosen, MAX_FILE_BYTES)
        if isinstance(data, str):
            staged.notes.append(f"{chosen} {data}; ignored")
            continue
        if len(data) > MAX_FILE_BYTES:
            staged.notes.append(f"{chosen} is larger than {MAX_FILE_BYTES // 2**20} MiB")
            continue
        (staged.root / name).write_bytes(data)
        staged.found[name] = chosen


def stage_submission(lab: Lab, source: Path, destination: Path) -> StagedSubmission:
    """Copy the graded files of `source` and the lab's support files into `destination`."""
    source = Path(source)
    destination.mkdir(parents=True, exist_ok=True)
    staged = StagedSubmission(root=destination)
    for name in lab.support:
        shutil.copyfile(lab.support_dir / name, destination / name)
    if source.is_symlink():
        staged.notes.append(f"{source.name} is a symbolic link; not graded")
    elif source.is_dir():
        _from_folder(lab, source, staged)
        uploads = [path for path in source.iterdir() if path.suffix.lower() == ".zip"]
        if not staged.found and len(uploads) == 1:  # a folder holding the uploaded zip
            _from_zip(lab, uploads[0], staged)
    elif source.is_file():
        _from_zip(lab, source, staged)
    else:
        staged.notes.append(f"{source} does not exist")
    staged.missing = [name for name in lab.graded if name not in staged.found]
    return staged
