"""`make release`: the student repository, built from the staff repository.

What goes in: the generated assignments (stubs, handouts, support code), the engine, each
lab's test files reduced to their public tests (public_tests.py) with the probes those use,
the snapshots of the reference's observations for those tests at the release seed, and the
student's own README, Makefile, pyproject.toml and pinned requirements. What stays out: the
reference, the hidden tests, the reference cache, anything from which a hidden expected value
could be read. `find_leaks` checks the result, and the build fails if it finds anything.

The snapshots are recorded by running the release's own (reduced) tests from inside the
release folder on the staff reference, so they are exactly what `make test` there will ask
for, and the build fails unless the reference passes every public test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder import REPO_ROOT
from autograder.engine import bundle
from autograder.engine.labs import Lab, available_labs, load_lab
from autograder.engine.public_tests import (
    ReleaseError,
    declared_tests,
    probe_source,
    public_test_source,
    words,
)
from autograder.engine.stubs import BEGIN, END, SKIP_NAMES, has_markers, make_stub

RELEASE_SEED = 20250901
SNAPSHOTS = "snapshots"
TEXT_SUFFIXES = {".py", ".md", ".toml", ".json", ".txt", ".cfg", ".yml", ".yaml", ".sh", ""}
# Solution text counts as leaked when a line this long, or two consecutive lines this long
# together, appear in the release (and not in the stubs anyway).
LONG_LINE, PAIR = 40, 30


def reduce_lab_tests(lab: Lab, destination: Path) -> list[str]:
    """Write the lab's manifest, public tests and the probes they use; returns warnings."""
    warnings = []
    target = destination / "autograder" / lab.name
    (target / "probes").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(lab.tests_dir / "lab.toml", target / "lab.toml")
    kept_text = []
    parts = {lab.test_file(part) for part in lab.parts}
    for path in sorted(lab.tests_dir.glob("test_*.py")):
        if path not in parts:
            warnings.append(f"{path.relative_to(REPO_ROOT)} tests no graded file of lab.toml; "
                            "not shipped")
            continue
        reduced = public_test_source(path.read_text(), str(path))
        if reduced is None:
            warnings.append(f"{path.relative_to(REPO_ROOT)} has no public tests; not shipped")
            continue
        (target / path.name).write_text(reduced)
        kept_text.append(reduced)
    named = words("\n".join(kept_text))
    for part in lab.parts:
        path = lab.probes_dir / f"{part}.py"
        if not path.is_file():
            continue
        reduced = probe_source(path.read_text(), named, str(path))
        if reduced is not None:
            (target / "probes" / path.name).write_text(reduced)
    known = {"lab.toml", "probes", "__pycache__"}
    for path in sorted(lab.tests_dir.iterdir()):
        if path.name not in known and not path.name.startswith("test_"):
            warnings.append(f"{path.relative_to(REPO_ROOT)} is not shipped (only public tests, "
                            "their probes and lab.toml are)")
    (target / "interface.json").write_text(json.dumps(lab.required_names(), indent=2) + "\n")
    return warnings


def record_snapshots(lab: Lab, destination: Path, seed: int) -> dict:
    """Run the release's public tests on the staff reference from inside the release, storing
    every expected observation; returns the results (all tests must pass)."""
    with tempfile.TemporaryDirectory(prefix="release-") as scratch:
        results_path = Path(scratch) / "results.json"
        command = [
            sys.executable, "-m", "autograder", "grade", lab.name, str(lab.reference_dir),
            "--reference", str(lab.reference_dir), "--public-only", "--seed", str(seed),
            "--record-snapshots", str(destination / SNAPSHOTS), "--results", str(results_path),
            "--quiet",
        ]
        # No reference cache: every observation is computed, and nothing is left in the release.
        env = {**os.environ, "AUTOGRADER_REFERENCE_CACHE": "", "PYTHONDONTWRITEBYTECODE": "1"}
        completed = subprocess.run(command, cwd=destination, env=env, capture_output=True,
                                   text=True, timeout=1800)
        if not results_path.is_file():
            raise ReleaseError(f"recording the snapshots of {lab.name} failed:\n"
                               f"{(completed.stdout + completed.stderr)[-3000:]}")
        results = json.loads(results_path.read_text())
    failed = [test for test in results["tests"] if test["status"] != "passed"]
    if failed or not results["tests"]:
        details = "\n".join(f"- {t['name']}: {t['output'][:500]}" for t in failed)
        raise ReleaseError(f"the reference does not pass the public tests of {lab.name} in the "
                           f"release (seed {seed}):\n{details or 'no tests ran'}")
    return results


def _makefile(seed: int, torch: str) -> str:
    return f"""\
# The commands for the labs. `make help` lists them.
#
#   make test lab1        run lab1's public tests on your files in assignments/lab1
#   make submit lab1      check your lab1 files and write dist/lab1-submission.zip to upload
#
# On first use a virtual environment is made in .venv (PyTorch's CPU build first, then the
# pinned requirements). PYTHON=/path/to/python uses that interpreter as it is instead.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
ifdef PYTHON
PY := $(PYTHON)
ENV_STAMP :=
else
PY := $(VENV)/bin/python
ENV_STAMP := $(VENV)/.installed
endif

LABS := $(patsubst autograder/%/lab.toml,%,$(wildcard autograder/*/lab.toml))
# The public tests' inputs are fixed by this seed: the snapshots in {SNAPSHOTS}/ were recorded
# at it. (The grader draws fresh inputs, and runs more tests.)
RELEASE_SEED := {seed}

LAB_COMMANDS := test submit
ifneq ($(filter $(firstword $(MAKECMDGOALS)),$(LAB_COMMANDS)),)
LAB_ARG := $(word 2,$(MAKECMDGOALS))
ifneq ($(LAB_ARG),)
$(eval $(LAB_ARG):;@:)
endif
endif
LAB ?= $(LAB_ARG)
IMPL ?= assignments

.PHONY: help venv test submit clean

help:
\t@sed -n '2,5p' Makefile | sed 's/^# \\{{0,1\\}}//'
\t@echo "labs: $(LABS)"

$(VENV)/.installed: requirements.txt
\t@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
\t$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \\
\t  --index-url {bundle.TORCH_CPU_INDEX} torch=={torch}
\t$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
\t@touch $@

venv: $(ENV_STAMP)

# IMPL=assignments (default) or IMPL=path/to/folder-or.zip
test: $(ENV_STAMP)
\t@labs="$(or $(LAB),$(LABS))"; status=0; for lab in $$labs; do \\
\t  case "$(IMPL)" in assignments) impl="assignments/$$lab";; *) impl="$(IMPL)";; esac; \\
\t  $(PY) -m autograder grade $$lab "$$impl" --snapshots {SNAPSHOTS} --seed $(RELEASE_SEED) \\
\t    --public-only --results build/results/$$lab.json || status=$$?; \\
\tdone; exit $$status

submit: $(ENV_STAMP)
\t@test -n "$(LAB)" || {{ echo "usage: make submit lab1"; exit 2; }}
\t@case "$(IMPL)" in assignments) impl="assignments/$(LAB)";; *) impl="$(IMPL)";; esac; \\
\t  $(PY) -m autograder submit $(LAB) "$$impl" --out dist/$(LAB)-submission.zip \\
\t    $(if $(FORCE),--force,)

clean:
\trm -rf build dist
"""


def _readme(labs: list[Lab], seed: int) -> str:
    rows = "\n".join(f"| {lab.name} | {lab.title} | `assignments/{lab.name}/README.md` |"
                     for lab in labs)
    first = labs[0].name
    return f"""\
# AI-safety labs

The labs of a two-week course on empirical AI safety. You write the functions marked `TODO`
in `assignments/LAB/`; each lab's handout (its README) says what each function must do.

| lab | what it covers | handout |
|---|---|---|
{rows}

## Set-up

With Python 3.11+ and `make`:

```bash
make test {first}      # the first run makes a virtual environment in .venv (a few minutes)
```

It installs PyTorch's CPU build and the pinned versions in `requirements.txt`, the same ones
the grader uses. `PYTHON=/path/to/python make ...` uses an interpreter you prepared instead.
Everything runs on a CPU; nothing is downloaded once the environment exists.

## The two commands

- `make test {first}` runs {first}'s public tests on your files in `assignments/{first}` and
  prints what failed and why (`IMPL=path` tests another folder or zip).
- `make submit {first}` checks that your files import quickly and define every function and
  class the lab asks for, then writes `dist/{first}-submission.zip`: upload that to Gradescope.

## What the public tests tell you

The public tests are a part of the grader's tests. They run your code on inputs fixed by a
seed ({seed}) and compare it with the expected outputs stored in `{SNAPSHOTS}/`, with the same
tolerances and messages as the grader. On Gradescope, the grader also runs the hidden tests,
and draws fresh inputs for every test, so code that only reproduces the stored outputs fails
there. Passing every public test is a good sign, not a guarantee.

Your code runs in a separate process with a time and memory limit, as on the grader: keep
long work out of module level (put it under `if __name__ == "__main__":`).
"""


def _pyproject() -> str:
    return f"""\
[project]
name = "ai-safety-labs-student"
version = "0.1.0"
description = "The student repository of the AI-safety labs"
requires-python = ">=3.11"

{bundle.pytest_settings()}"""


def _code_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _fragments(lines: list[str]) -> set[str]:
    """Single long lines, and pairs of consecutive lines: a generic line alone
    (`for step in range(steps):`) proves nothing, two solution lines in a row do."""
    long_lines = {line for line in lines if len(line) >= LONG_LINE}
    pairs = {f"{a}\n{b}" for a, b in zip(lines, lines[1:], strict=False) if len(a) + len(b) >= PAIR}
    return long_lines | pairs


def _student_fragments(lab: Lab) -> set[str]:
    """The fragments of everything students get anyway: the generated stubs and handouts."""
    fragments: set[str] = set()
    for path in sorted(lab.reference_dir.rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES and not SKIP_NAMES & set(path.parts):
            text = path.read_text(errors="replace")
            if path.suffix == ".py" and has_markers(text):
                text = make_stub(text, str(path))
            fragments |= _fragments(_code_lines(text))
    return fragments


def _solution_fragments(lab: Lab, stubs: set[str]) -> dict[str, str]:
    """Fragments of the reference's solution regions that the stubs do not contain anyway:
    fragment -> where it comes from."""
    secret = {}
    for path in sorted(lab.reference_dir.glob("*.py")):
        region: list[str] = []
        start = 0
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip() == BEGIN:
                region, start = [], number
            elif line.strip() == END:
                for fragment in _fragments(_code_lines("\n".join(region))) - stubs:
                    secret[fragment] = f"reference/{lab.name}/{path.name}:{start}"
                start = 0
            elif start:
                region.append(line)
    return secret


def _hidden_tests(lab: Lab) -> dict[str, str]:
    hidden = {}
    for path in sorted(lab.tests_dir.glob("test_*.py")):
        for name, visibility in declared_tests(path.read_text(), str(path)).items():
            if visibility == "hidden":
                hidden[name] = path.name
    return hidden


def find_leaks(release: Path, labs: list[Lab]) -> list[str]:
    """Everything in `release` that should not be there: reference or cache folders, solution
    lines, hidden tests; empty when the release is clean."""
    problems = []
    files = sorted(path for path in release.rglob("*") if path.is_file())
    for path in files:
        relative = path.relative_to(release)
        if relative.parts[0] in ("reference", "build") or "cache" in relative.parts[0]:
            problems.append(f"{relative}: a staff folder")
        if path.suffix == ".pt" and relative.parts[0] != SNAPSHOTS:
            problems.append(f"{relative}: stored observations outside {SNAPSHOTS}/")
    texts = {path.relative_to(release): path.read_text(errors="replace")
             for path in files if path.suffix in TEXT_SUFFIXES}
    for lab in labs:
        secret = _solution_fragments(lab, _student_fragments(lab))
        hidden = _hidden_tests(lab)
        for relative, text in texts.items():
            for fragment in sorted(_fragments(_code_lines(text)) & secret.keys()):
                shown = fragment.replace("\n", " / ")
                problems.append(f"{relative}: solution text from {secret[fragment]}: {shown}")
            if relative.suffix == ".py":
                for name, origin in hidden.items():
                    if f"def {name}(" in text:
                        problems.append(f"{relative}: the hidden test {name} from {origin}")
    return problems


def build_release(destination: Path, *, labs: list[str] | None = None,
                  seed: int = RELEASE_SEED) -> list[str]:
    """Build the student repository in `destination` (replaced); returns warnings."""
    started = time.monotonic()
    chosen = [load_lab(name) for name in (labs or available_labs())]
    destination = destination.resolve()
    if destination == REPO_ROOT or REPO_ROOT.is_relative_to(destination):
        raise ReleaseError(f"refusing to replace {destination}")
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    warnings = []
    bundle.copy_engine(destination)
    for lab in chosen:
        bundle.write_assignments(lab, destination)
        warnings.extend(reduce_lab_tests(lab, destination))
    torch, _ = bundle.pinned_requirements()
    (destination / "requirements.txt").write_text(bundle.requirements_text(
        "The versions the grader uses (generated by the staff's `make release`)."))
    (destination / "Makefile").write_text(_makefile(seed, torch))
    (destination / "README.md").write_text(_readme(chosen, seed))
    (destination / "pyproject.toml").write_text(_pyproject())
    (destination / ".gitignore").write_text(".venv/\nbuild/\ndist/\n__pycache__/\n*.pyc\n"
                                            ".pytest_cache/\n")
    for lab in chosen:
        results = record_snapshots(lab, destination, seed)
        print(f"  {lab.name}: {len(results['tests'])} public tests, "
              f"{len(list((destination / SNAPSHOTS / lab.name).glob('*.pt')))} snapshots",
              flush=True)
    for leftover in [*destination.rglob("__pycache__"), destination / "build"]:
        shutil.rmtree(leftover, ignore_errors=True)
    leaks = find_leaks(destination, chosen)
    if leaks:
        raise ReleaseError("the release would leak staff material:\n" + "\n".join(leaks))
    print(f"Student release written to {destination} in {time.monotonic() - started:.0f} s",
          flush=True)
    return warnings
