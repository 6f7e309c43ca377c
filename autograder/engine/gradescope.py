"""Gradescope specifics: the "export submissions" metadata, the autograder zip (`setup.sh`,
`run_autograder` and the grader), and what `run_autograder` does on every submission."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autograder import REPO_ROOT
from autograder.engine import bundle
from autograder.engine import results as report
from autograder.engine.labs import Lab


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

GRADER_USER = "labs-student"
VENV = "/opt/labs-venv"
GRADING_TIMEOUT = 540.0  # under Gradescope's default 10 minutes, with room to write results
# Each worker's address-space limit. Grading lab1 peaks at about 0.65 GiB (PSS) for all
# processes together, a worker's address space at about 0.8 GiB, so a submission's worker at
# this limit and the rest still fit in a 3 GB Gradescope container: a memory blow-up meets
# this limit first, with a clear message, instead of the container's kill.
WORKER_MEMORY_GIB = 2.0

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, to build the grading image (Ubuntu 22.04 or later):
# Python 3.11+ in a virtual environment, PyTorch's CPU build, the pinned requirements, and
# the unprivileged user that runs submitted code. No conda, no browser.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
VENV={venv}
GRADER_USER={user}

apt-get update
if python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  apt-get install -y --no-install-recommends python3-venv
  python=python3
else
  apt-get install -y --no-install-recommends python3.11 python3.11-venv
  python=python3.11
fi
"$python" -m venv "$VENV"
"$VENV/bin/python" -m pip install --no-cache-dir --disable-pip-version-check \\
  --index-url {torch_index} torch=={torch}
"$VENV/bin/python" -m pip install --no-cache-dir --disable-pip-version-check \\
  -r /autograder/source/requirements.txt
chmod -R a+rX "$VENV"
id -u "$GRADER_USER" >/dev/null 2>&1 || \\
  useradd --system --no-create-home --shell /usr/sbin/nologin "$GRADER_USER"
# Fail the build now, not at the first submission, if the engine cannot load.
cd /autograder/source && "$VENV/bin/python" -c "import autograder.engine.plugin"
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this as root for every submission: it grades $root/submission and always
# leaves a valid $root/results/results.json. AUTOGRADER_ROOT (default /autograder) and
# AUTOGRADER_PYTHON let a test run the whole thing in a temporary folder.
root="${{AUTOGRADER_ROOT:-/autograder}}"
python="${{AUTOGRADER_PYTHON:-{venv}/bin/python}}"
cd "$root/source" && "$python" -m autograder run-gradescope {lab} --root "$root" {options}
if [ ! -s "$root/results/results.json" ]; then
  mkdir -p "$root/results"
  cat > "$root/results/results.json" <<'JSON'
{{"score": 0, "execution_time": 0, "stdout_visibility": "hidden", "tests": [],
 "output": "The grader could not start (not your fault; please tell the course staff)."}}
JSON
fi
exit 0
"""


def autograder_options(*, parts: list[str] | None, user: str, timeout: float,
                       memory_limit_gib: float) -> list[str]:
    options = ["--user", user, "--timeout", f"{timeout:g}",
               "--memory-limit-gib", f"{memory_limit_gib:g}"]
    for part in parts or []:
        options += ["--part", part]
    return options


def write_grader_source(lab: Lab, destination: Path) -> None:
    """What the grader needs at /autograder/source: engine, full grader, reference (whose
    support files are the ones students get), pytest settings and pinned requirements."""
    bundle.copy_engine(destination)
    bundle.copy_grader(lab, destination)
    bundle.copy_reference(lab, destination)
    bundle.copy_pyproject(destination)
    (destination / "requirements.txt").write_text(bundle.requirements_text(
        f"The grader's Python packages for {lab.name} (generated by the staff repository)."))


def build_autograder_zip(lab: Lab, destination: Path, *, parts: list[str] | None = None,
                         timeout: float = GRADING_TIMEOUT,
                         memory_limit_gib: float = WORKER_MEMORY_GIB) -> Path:
    """The Gradescope autograder zip for `lab`: setup.sh, run_autograder and the grader."""
    unknown = [part for part in parts or [] if part not in lab.parts]
    if unknown:
        raise ValueError(f"{lab.name} has no part {unknown[0]!r} (parts: {', '.join(lab.parts)})")
    torch, _ = bundle.pinned_requirements()
    options = autograder_options(parts=parts, user=GRADER_USER, timeout=timeout,
                                 memory_limit_gib=memory_limit_gib)
    with tempfile.TemporaryDirectory(prefix="autograder-zip-") as scratch:
        folder = Path(scratch)
        write_grader_source(lab, folder)
        (folder / "setup.sh").write_text(SETUP_SH.format(
            venv=VENV, user=GRADER_USER, torch=torch, torch_index=bundle.TORCH_CPU_INDEX))
        (folder / "run_autograder").write_text(RUN_AUTOGRADER.format(
            venv=VENV, lab=lab.name, options=" ".join(shlex.quote(o) for o in options)))
        bundle.zip_folder(folder, destination, executable=("setup.sh", "run_autograder"))
    return destination


# ----------------------------------------------------------------------------- on Gradescope


def _user_ids(user: str) -> tuple[int, int] | None:
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _ensure_user(user: str) -> str:
    """Create the unprivileged user when setup.sh did not (the otter path); '' on success."""
    if _user_ids(user) is not None:
        return ""
    completed = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
        capture_output=True, text=True)
    if completed.returncode != 0 or _user_ids(user) is None:
        return f"the unprivileged user {user} does not exist and could not be created " \
               f"({completed.stderr.strip() or completed.returncode})"
    return ""


def _user_cannot_run_python(user: str) -> str:
    """Why `user` cannot run this interpreter with torch; '' when it can."""
    uid, gid = _user_ids(user)
    try:
        completed = subprocess.run(
            [sys.executable, "-I", "-c", "import torch"], user=uid, group=gid, extra_groups=[],
            cwd="/", capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as error:
        return f"{user} cannot run {sys.executable}: {error}"
    if completed.returncode != 0:
        return f"{user} cannot import torch with {sys.executable}: {completed.stderr[-500:]}"
    return ""


def _kill_processes_of(uid: int) -> None:
    """Anything the submission's user left running (there should be nothing)."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uids = next(line for line in status.read_text().splitlines()
                        if line.startswith("Uid:")).split()[1:]
            if int(uids[0]) == uid:
                os.kill(int(status.parent.name), signal.SIGKILL)
        except (OSError, StopIteration, ValueError):
            continue


def run_on_gradescope(lab: Lab, root: Path, *, results_path: Path | None = None,
                      user: str = "", seed: int | None = None, parts: list[str] | None = None,
                      timeout: float = GRADING_TIMEOUT,
                      memory_limit_gib: float = WORKER_MEMORY_GIB) -> int:
    """Grade `root`/submission into `root`/results/results.json, as Gradescope expects.

    As root with `user`: the grader folder and results become unreadable to everyone else,
    and the submission's code runs as `user`; the reference and the verdicts stay with the
    trusted grading process. The results file is written whatever happens."""
    started = time.monotonic()
    results_path = results_path or root / "results" / "results.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        notes = []
        extra = ["--memory-limit-gib", f"{memory_limit_gib:g}"]
        for part in parts or []:
            extra += ["--part", part]
        if user and os.geteuid() == 0:
            problem = _ensure_user(user) or _user_cannot_run_python(user)
            if problem:
                raise RuntimeError(problem)
            if REPO_ROOT == (root / "source").resolve():  # never lock a staff checkout
                for private in (REPO_ROOT, results_path.parent):
                    os.chmod(private, 0o700)
            extra += ["--run-as", user]
        elif user:
            notes.append(f"not running as root: submitted code runs as this user, not {user}")
        seed = secrets.randbelow(2**31) if seed is None else seed
        from autograder.engine.batch import grade_one

        results, problem = grade_one(lab, root / "submission", results_path, seed=seed,
                                     timeout=timeout, extra=extra)
        log = results_path.with_suffix(".log")
        if log.is_file():
            print(log.read_text(errors="replace")[-20000:])
            log.unlink()
        if results is None:
            raise RuntimeError(problem)
        if problem or notes:
            results["output"] = report.clip("\n".join(
                [results["output"], *(f"Note: {n}" for n in notes),
                 *([f"Grading problem (not your fault; please tell the course staff): "
                    f"{problem}"] if problem else [])]))
            report.write_results(results_path, results)
    except BaseException as error:  # noqa: BLE001 - results.json must be written regardless
        print(f"grading failed: {type(error).__name__}: {error}", file=sys.stderr)
        report.write_results(results_path, report.failed_results(
            f"{error} (this is not your fault; please tell the course staff)",
            execution_time=time.monotonic() - started))
    finally:
        if user and os.geteuid() == 0 and _user_ids(user) is not None:
            _kill_processes_of(_user_ids(user)[0])
    return 0
