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

import ast
import contextlib
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder import REPO_ROOT
from autograder.delivery import bundle
from autograder.delivery.public_tests import (
    ReleaseError,
    declared_tests,
    probe_source,
    public_test_source,
    words,
)
from autograder.engine.labs import Lab, available_labs, load_lab
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


MAKEFILE = """\
# The commands for the labs. `make help` lists them.
#
#   make test lab1                  run lab1's public tests on your files in assignments/lab1
#   make test lab1 PART=basics      only the tests of one part (basics.py, bandits.py, ...)
#   make test lab1 K=patchify       only the tests whose names match (pytest's -k expression)
#   make test lab1 IMPL=path        test another folder, or a zip, instead of assignments/lab1
#   make submit lab1                check your lab1 files and write dist/lab1-submission.zip
#   make clean                      delete build/ and dist/
#
# `make test` fails (non-zero exit status) while any test fails, as pytest does. pytest works
# too: `.venv/bin/pytest -k patchify`, `--lf` (the tests that failed last time), `-x`.
# The first command makes a virtual environment in .venv: PyTorch's CPU build, then the
# pinned requirements, with python3 (BASE_PYTHON=python3.12 names another). TORCH_INDEX=URL
# takes torch from another index (a CUDA build), and PYTHON=/path/to/python uses an
# interpreter you prepared instead of .venv.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BASE_PYTHON ?= python3
TORCH_INDEX ?= @TORCH_INDEX@
ifdef PYTHON
PY := $(PYTHON)
ENV_STAMP :=
else
PY := $(VENV)/bin/python
ENV_STAMP := $(VENV)/.installed
endif

LABS := $(patsubst autograder/%/lab.toml,%,$(wildcard autograder/*/lab.toml))

LAB_COMMANDS := test submit
ifneq ($(filter $(firstword $(MAKECMDGOALS)),$(LAB_COMMANDS)),)
LAB_ARG := $(word 2,$(MAKECMDGOALS))
ifneq ($(LAB_ARG),)
$(eval $(LAB_ARG):;@:)
endif
endif
LAB ?= $(LAB_ARG)
IMPL ?= assignments
NARROW := $(foreach part,$(PART),--part $(part)) $(if $(K),-k "$(K)",)

.PHONY: help venv test submit clean

help:
\t@awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' Makefile
\t@echo "labs: $(LABS)"

$(VENV)/.installed: requirements.txt
\t@test -x $(VENV)/bin/python || $(BASE_PYTHON) -c 'import sys; sys.exit(sys.version_info < \\
\t  (3, 11))' || { echo "$(BASE_PYTHON) is not Python 3.11 or newer: install one and run" \\
\t  "again with BASE_PYTHON=python3.12 (say)"; exit 1; }
\t@test -x $(VENV)/bin/python || $(BASE_PYTHON) -m venv $(VENV)
\t$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \\
\t  $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),) torch==@TORCH@
\t$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
\t@touch $@

venv: $(ENV_STAMP)

# The seed and the snapshots the public tests use are in autograder/release.json.
test: $(ENV_STAMP)
\t@labs="$(or $(LAB),$(LABS))"; status=0; for lab in $$labs; do \\
\t  case "$(IMPL)" in assignments) impl="assignments/$$lab";; *) impl="$(IMPL)";; esac; \\
\t  $(PY) -m autograder grade $$lab "$$impl" --results build/results/$$lab.json \\
\t    --fail-on-failure $(NARROW) || status=$$?; \\
\tdone; exit $$status

submit: $(ENV_STAMP)
\t@test -n "$(LAB)" || { echo "usage: make submit lab1"; exit 2; }
\t@case "$(IMPL)" in assignments) impl="assignments/$(LAB)";; *) impl="$(IMPL)";; esac; \\
\t  $(PY) -m autograder submit $(LAB) "$$impl" --out dist/$(LAB)-submission.zip \\
\t    $(if $(FORCE),--force,)

clean:
\trm -rf build dist
"""


def _makefile(torch: str) -> str:
    return MAKEFILE.replace("@TORCH_INDEX@", bundle.TORCH_CPU_INDEX).replace("@TORCH@", torch)


def _readme(labs: list[Lab], seed: int, points: dict[str, dict[str, dict[str, float]]],
            torch: str) -> str:
    rows = "\n".join(f"| {lab.name} | {lab.title} | `assignments/{lab.name}/README.md` |"
                     for lab in labs)
    first = labs[0]
    part = first.parts[0]
    public, hidden = (points[first.name].get(part, {}).get(kind, 0)
                      for kind in ("public", "hidden"))
    return f"""\
# AI-safety labs

The labs of a two-week course on empirical AI safety. You write the functions marked `TODO`
in `assignments/LAB/`; each lab's handout (its README) says what each function must do.

| lab | what it covers | handout |
|---|---|---|
{rows}

## Set-up

With Python 3.11 to 3.13 and `make`:

```bash
make test {first.name}      # the first run makes a virtual environment in .venv (a few minutes)
```

It installs PyTorch's CPU build and the pinned versions in `requirements.txt`, the same ones
the grader uses: about 250 MB to download and 1 GB on disk, a few minutes on a home
connection. `PYTHON=/path/to/python make ...` uses an interpreter you prepared instead,
and `TORCH_INDEX=URL` takes torch from another index (say, a CUDA build for your GPU).
Everything runs on a CPU; nothing is downloaded once the environment exists.

### On your computer

| system | set up and test |
|---|---|
| Linux (x86_64 or ARM) | `make test {first.name}` |
| macOS (Apple silicon or Intel) | `make test {first.name}` |
| Windows | the four PowerShell commands below (no make needed) |
| no Python at hand | Google Colab, below |

Linux needs Python 3.11+ with venv and make (`sudo apt install python3-venv make` on Debian
and Ubuntu). macOS needs Python 3.11+ from python.org or Homebrew (`brew install
python@3.12`) and make, which comes with the command-line tools (`xcode-select --install`);
the `python3` those tools bring is too old (3.9), so with Homebrew's run the first
`make test {first.name} BASE_PYTHON=python3.12` (the Makefile says so if it finds an older
one). Windows needs Python 3.11+ from python.org, which brings the
`py` launcher.

On Windows, in PowerShell, from this folder:

```
py -3.12 -m venv .venv
.venv\\Scripts\\python -m pip install --extra-index-url {bundle.TORCH_CPU_INDEX} torch=={torch}
.venv\\Scripts\\python -m pip install -r requirements.txt
.venv\\Scripts\\python -m autograder grade {first.name} assignments\\{first.name} --fail-on-failure
```

The last command is `make test {first.name}`; add `--part {part}` for `PART={part}` and
`-k name` for `K=name`. `make submit {first.name}` is
`.venv\\Scripts\\python -m autograder submit {first.name} assignments\\{first.name}
--out dist\\{first.name}-submission.zip` (one line).
WSL (Ubuntu on Windows) works too, with the Linux commands, but is not needed.

On Google Colab, in a notebook's cells: `!git clone URL-OF-THIS-REPOSITORY labs`, then
`%cd labs`, `!pip install -q -r requirements.txt` (Colab already has PyTorch) and
`!python -m autograder grade {first.name} assignments/{first.name}`; edit the files in Colab's
file browser, and download `dist/{first.name}-submission.zip` after `!python -m autograder
submit {first.name} assignments/{first.name} --out dist/{first.name}-submission.zip`.

The grader keeps its time limits everywhere. Off Linux on x86_64 it cannot sandbox your code
the way Gradescope does (macOS has no address-space limit, Windows no resource limits or
process groups); `make test` then says so in one line ("Note: ...") and watches your code's
memory itself. The grades come from Gradescope, where every protection is in force. A zip
from `make submit` holds the same bytes whichever system wrote it.

## The commands

- `make test {first.name}` runs {first.name}'s public tests on your files in
  `assignments/{first.name}` and prints what failed and why.
- `make test {first.name} PART={part}` runs only the tests of one part (`{part}.py`);
  `make test {first.name} K=name` only the tests whose names match (pytest's `-k` expression,
  such as `K="softmax and not stable"`); `IMPL=path` tests another folder, or a zip.
- `make submit {first.name}` checks that your files import quickly and define every function
  and class the lab asks for, lists the functions that still raise `NotImplementedError`,
  then writes `dist/{first.name}-submission.zip`: upload that to Gradescope.
- `make help` lists these.

`make test` ends with one line per part, such as "public tests: {public:g}/{public:g} points
of {part}; the hidden tests ({hidden:g} more points) check the same functions on other
inputs", and fails (a non-zero exit status) while any test fails, as pytest does. So on the
starter code it prints every test as failed, with "not implemented yet", and fails.

pytest works here as everywhere: `.venv/bin/pytest -k patchify` runs one test,
`.venv/bin/pytest --lf` the ones that failed last time, `-x` stops at the first failure.
(With the environment activated, `source .venv/bin/activate`, plain `pytest` does.)

## What the public tests tell you

The public tests are a part of the grader's tests. They run your code on inputs fixed by a
seed ({seed}) and compare it with the expected outputs stored in `{SNAPSHOTS}/`, with the same
tolerances and messages as the grader. On Gradescope, the grader also runs the hidden tests,
and draws fresh inputs for every test, so code that only reproduces the stored outputs fails
there. Passing every public test is a good sign, not a guarantee.

Your code runs in a separate process with a time and memory limit, as on the grader: keep
long work out of module level (put it under `if __name__ == "__main__":`).
"""


CONFTEST = '''\
"""Loads the grading plugin, so that plain `pytest` (`pytest -k patchify`, `pytest --lf`) runs
the public tests from here, with the options in pyproject.toml."""

pytest_plugins = ["autograder.engine.plugin"]
'''


def _pyproject(grading_options: str = "") -> str:
    """The release's pyproject.toml: pytest runs the release's own tests (the plugin comes from
    conftest.py), with `grading_options` (snapshots, seed, public tests only) once recorded."""
    settings = bundle.pytest_settings()
    for old, new in (('addopts = "-p autograder.engine.plugin"', f'addopts = "{grading_options}"'),
                     ('testpaths = ["tests"]', 'testpaths = ["autograder"]')):
        if old not in settings:
            raise ReleaseError(f"pyproject.toml's pytest settings no longer contain {old!r}; "
                               "update release._pyproject")
        settings = settings.replace(old, new)
    return f"""\
[project]
name = "ai-safety-labs-student"
version = "0.1.0"
description = "The student repository of the AI-safety labs"
requires-python = ">=3.11"

{settings}"""


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


class _PointsCollector:
    """A pytest plugin that sums the points of the collected tests per part and visibility."""

    def __init__(self) -> None:
        self.points: dict[str, dict[str, float]] = {}

    def pytest_collection_modifyitems(self, items: list) -> None:
        for item in items:
            part = Path(item.path).stem.removeprefix("test_")
            kind = "public" if item.get_closest_marker("public") is not None else "hidden"
            marker = item.get_closest_marker("points")
            totals = self.points.setdefault(part, {"public": 0.0, "hidden": 0.0})
            totals[kind] += float(marker.args[0]) if marker is not None else 0.0


def points_by_part(lab: Lab) -> dict[str, dict[str, float]]:
    """Part -> {"public": points, "hidden": points} of the staff suite, by collecting it."""
    import pytest

    files = [str(lab.test_file(part)) for part in lab.parts if lab.test_file(part).is_file()]
    if not files:
        return {}
    collector = _PointsCollector()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        code = pytest.main([*files, "-c", str(REPO_ROOT / "pyproject.toml"), "--rootdir",
                            str(REPO_ROOT), "--collect-only", "-qq", "-p", "no:cacheprovider"],
                           plugins=[collector])
    if code != 0:
        raise ReleaseError(f"the tests of {lab.name} could not be collected (pytest exit code "
                           f"{int(code)}); run `pytest {' '.join(files)} --collect-only`")
    return collector.points


COMMAND = re.compile(r"\bpython3? +(-m +)?([\w./-]+)")
MAKE_TARGET = re.compile(r"\bmake +([a-z][\w-]*)")
POSITIONAL = re.compile(r"\btests? +(below|above)\b|\b(below|above) +tests?\b", re.I)


def _code_in_markdown(text: str) -> str:
    """The commands of a Markdown text: its fenced blocks and `inline code`, one per line. A
    block marked `text` shows what a program reads or prints (a dialogue such as "how to make
    bread ?"), not a command."""
    blocks = [body for kind, body in re.findall(r"^```([^\n]*)\n(.*?)^```", text, re.M | re.S)
              if kind.strip() != "text"]
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    return "\n".join([*blocks, *re.findall(r"`([^`\n]+)`", prose)])


def _makefile_targets(text: str) -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, re.M))


def _stripped_neighbours(staff: Path, shipped: str, relative: Path) -> list[str]:
    """Comments of a shipped test file that point at "the test below/above" where, in the
    staff file, the nearest test that way is hidden: the release stripped what they cite."""
    source = staff.read_text()
    visibility = declared_tests(source, str(staff))
    tests = [(node.lineno, node.end_lineno or node.lineno, node.name)
             for node in ast.parse(source).body if getattr(node, "name", None) in visibility]
    problems = []
    for number, line in enumerate(source.splitlines(), start=1):
        comment = line.split("#", 1)[1] if "#" in line else ""
        match = POSITIONAL.search(comment)
        if not match or line.strip() not in shipped:
            continue
        below = "below" in match.group(0).lower()
        nearest = [name for start, end, name in tests
                   if (start > number if below else end < number)]
        cited = (nearest[0] if below else nearest[-1]) if nearest else None
        if cited is not None and visibility[cited] == "hidden":
            problems.append(f"{relative}: {comment.strip()!r} points at {cited}, a hidden test "
                            "the release strips; say what that test checks instead")
    return problems


# `python -m` modules every Python (or the release's environment) has, never staff tools.
TOOLS_OF_PYTHON = {"pip", "venv", "pytest"}


def find_dangling_references(release: Path, labs: list[Lab]) -> list[str]:
    """What the release's handouts and public tests cite that the release does not hold: a
    `python -m` module or `python file.py` outside it (a staff tool), a `make` target its
    Makefile lacks, a test that was stripped (by name, or by position: "the test below")."""
    problems = []
    targets = _makefile_targets((release / "Makefile").read_text())
    hidden = {name: origin for lab in labs for name, origin in _hidden_tests(lab).items()}
    handouts = [release / "README.md", *sorted((release / "assignments").rglob("*.md"))]
    for path in handouts:
        folders = [release, path.parent]
        text = _code_in_markdown(path.read_text(errors="replace"))
        relative = path.relative_to(release)
        for module, name in COMMAND.findall(text):
            if module and name in TOOLS_OF_PYTHON:
                continue
            if module:
                candidates = [name.replace(".", "/") + suffix for suffix in (".py", "/__init__.py")]
            elif name.endswith(".py"):
                candidates = [name]
            else:
                continue
            if not any((folder / candidate).is_file() for folder in folders
                       for candidate in candidates):
                problems.append(f"{relative} cites `python {module}{name}`, which the release "
                                "does not hold (a staff tool?): give students a command they can "
                                "run, or say where the number comes from without one")
        for target in MAKE_TARGET.findall(text):
            if target not in targets:
                problems.append(f"{relative} cites `make {target}`, which the student Makefile "
                                "does not have")
        for name in sorted(set(re.findall(r"\btest_\w+", text)) & hidden.keys()):
            problems.append(f"{relative} names the hidden test {name} ({hidden[name]})")
    for lab in labs:
        for path in sorted((release / "autograder" / lab.name).glob("test_*.py")):
            problems.extend(_stripped_neighbours(lab.tests_dir / path.name, path.read_text(),
                                                 path.relative_to(release)))
    return problems


def _shipped_as_is(release: Path, relative: Path) -> bool:
    """A support file of a lab (a model checkpoint) that assignments/ holds byte for byte."""
    staff_copy = REPO_ROOT / relative
    return (relative.parts[0] == "assignments" and staff_copy.is_file()
            and filecmp.cmp(release / relative, staff_copy, shallow=False))


def find_leaks(release: Path, labs: list[Lab]) -> list[str]:
    """Everything in `release` that should not be there: reference or cache folders, solution
    lines, hidden tests; empty when the release is clean."""
    problems = []
    files = sorted(path for path in release.rglob("*") if path.is_file())
    for path in files:
        relative = path.relative_to(release)
        if relative.parts[0] in ("reference", "build") or "cache" in relative.parts[0]:
            problems.append(f"{relative}: a staff folder")
        if (path.suffix == ".pt" and relative.parts[0] != SNAPSHOTS
                and not _shipped_as_is(release, relative)):
            problems.append(f"{relative}: stored observations outside {SNAPSHOTS}/")
    texts = {path.relative_to(release): path.read_text(errors="replace")
             for path in files if path.suffix in TEXT_SUFFIXES}
    crossed: set[tuple[str, str]] = set()
    for lab in labs:
        secret = _solution_fragments(lab, _student_fragments(lab))
        hidden = _hidden_tests(lab)
        for relative, text in texts.items():
            for fragment in sorted(_fragments(_code_lines(text)) & secret.keys()):
                shown = fragment.replace("\n", " / ")
                problems.append(f"{relative}: solution text from {secret[fragment]}: {shown}")
                if relative.parts[0] == "assignments" and relative.parts[1] != lab.name:
                    crossed.add((relative.parts[1], lab.name))
            if relative.suffix == ".py":
                for name, origin in hidden.items():
                    if f"def {name}(" in text:
                        problems.append(f"{relative}: the hidden test {name} from {origin}")
    for later, earlier in sorted(crossed):
        problems.append(
            f"{later}'s given code holds {earlier}'s solutions (above): publish {later} once "
            f"{earlier} is due, in a release of its own labs (`make release {later}`)")
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
    points = {lab.name: points_by_part(lab) for lab in chosen}
    (destination / "requirements.txt").write_text(bundle.requirements_text(
        "The versions the grader uses (generated by the staff's `make release`)."))
    (destination / "Makefile").write_text(_makefile(torch))
    (destination / "README.md").write_text(_readme(chosen, seed, points, torch))
    (destination / "conftest.py").write_text(CONFTEST)
    (destination / "pyproject.toml").write_text(_pyproject())
    (destination / ".gitignore").write_text(".venv/\nbuild/\ndist/\n__pycache__/\n*.pyc\n"
                                            ".pytest_cache/\n")
    for lab in chosen:
        results = record_snapshots(lab, destination, seed)
        print(f"  {lab.name}: {len(results['tests'])} public tests, "
              f"{len(list((destination / SNAPSHOTS / lab.name).glob('*.pt')))} snapshots",
              flush=True)
    # Only now, with the snapshots recorded from the reference, does grading in the release
    # default to them: `make test`, `python -m autograder grade` and plain `pytest` alike.
    (destination / "pyproject.toml").write_text(
        _pyproject(f"--snapshots {SNAPSHOTS} --seed {seed} --public-only"))
    settings = {"seed": seed, "snapshots": SNAPSHOTS,
                "hidden_points": {name: {part: kinds["hidden"] for part, kinds in parts.items()}
                                  for name, parts in points.items()}}
    (destination / "autograder" / "release.json").write_text(json.dumps(settings, indent=2) + "\n")
    for leftover in [*destination.rglob("__pycache__"), *destination.rglob(".pytest_cache"),
                     destination / "build"]:
        shutil.rmtree(leftover, ignore_errors=True)
    leaks = find_leaks(destination, chosen)
    if leaks:
        raise ReleaseError("the release would leak staff material:\n" + "\n".join(leaks))
    dangling = find_dangling_references(destination, chosen)
    if dangling:
        raise ReleaseError("the release cites what it does not hold:\n" + "\n".join(dangling))
    print(f"Student release written to {destination} in {time.monotonic() - started:.0f} s",
          flush=True)
    return warnings
