"""Grading one submission in a child process (`python -m autograder grade`), with a wall-clock
limit that stops the whole process group, and its results.json read back and validated: what
the batch regrade and Gradescope's `run_autograder` both do for each submission."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autograder import REPO_ROOT
from autograder.engine import results as report
from autograder.engine.labs import Lab

PROGRESS = re.compile(r"progress: (.*)$")

# Linux: the grading process is killed when the thread that started it dies with its process
# (a Dask worker killed mid-grading), instead of grading on as an orphan nobody waits for; its
# own worker's watchdog then stops the submission's code (engine/worker.py).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def grade_one(
    lab: Lab,
    source: Path,
    results_path: Path,
    *,
    seed: int,
    timeout: float,
    extra: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """Grade in a separate process; returns (results, problem). With `progress`, the grading
    reports how far it got every few seconds, and `progress` receives each report; `env` adds
    to (or replaces some of) this process's environment variables."""
    command = [
        sys.executable, "-m", "autograder", "grade", lab.name, str(source),
        "--results", str(results_path), "--seed", str(seed), "--quiet", *(extra or []),
        *(["--progress"] if progress else []),
    ]
    log = results_path.with_suffix(".log")
    with open(log, "wb") as stream:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   cwd=REPO_ROOT, start_new_session=True,
                                   env={**os.environ, **env} if env else None,
                                   preexec_fn=_die_with_parent if _LIBC is not None else None)

        def copy() -> None:
            for line in process.stdout:
                stream.write(line)
                match = PROGRESS.search(line.decode(errors="replace").rstrip())
                if match and progress:
                    progress(match.group(1))

        reader = threading.Thread(target=copy, daemon=True)
        reader.start()
        try:
            returncode = process.wait(timeout=timeout)
            problem = "" if returncode == 0 else f"the grader stopped with exit code {returncode}"
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):  # its whole session: the workers too
                os.killpg(process.pid, signal.SIGKILL)
            process.kill()
            process.wait()
            problem = f"grading took longer than {timeout:g} s and was stopped"
        reader.join(timeout=10)
    try:
        results = json.loads(results_path.read_text())
        if report.validate_results(results):
            return None, problem or "invalid results file"
        return results, problem
    except (OSError, ValueError):
        return None, problem or "no results file"
