"""The pytest plugin: points and visibility markers, the grading fixtures, results.json.

Enabled for every pytest run in this repository (`addopts = -p autograder.engine.plugin`),
so `pytest autograder/lab1 --impl SUBMISSION` grades with every pytest habit intact
(`-k`, `-x`, `--lf`). It only writes a results file when `--results` is given.

Fixtures for a lab's tests (see docs/authoring.md): `student`, `reference`, `seed`, `rng`,
`np_rng`. The lab is the folder of the test file; the engine knows no lab by name.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from autograder import REPO_ROOT
from autograder.engine import results as report
from autograder.engine import sandbox
from autograder.engine.checks import GradingFailure
from autograder.engine.draws import PortableDraws
from autograder.engine.labs import Lab, lab_of
from autograder.engine.observations import (
    ReferenceObservations,
    ReferenceUnavailable,
    cache_key,
    sources_hash,
)
from autograder.engine.runner import NUMERICS, CallFailed, Implementation, platform_note
from autograder.engine.stubs import written_functions
from autograder.engine.submission import StagedSubmission, stage_submission

DEFAULT_VISIBILITY = "after_published"
# Seconds the submission's code may take over a whole lab (times --timeout-scale), worker
# starts and decoding included; then no more of it runs: the tests that ran keep their
# results, the rest fail saying why. DESIGN.md gives a hostile submission five minutes for the
# whole grading; the reference's own time (cached in a batch) comes on top.
TIME_BUDGET = 240.0
# "threads=2 ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE": the submission's worker computes
# with other numerics than the reference's (bench/crosscheck.py); names other than `threads`
# are runner.NUMERICS.
STUDENT_NUMERICS = "AUTOGRADER_STUDENT_NUMERICS"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("autograder", "grading a lab submission")
    group.addoption("--impl", help="submission to grade: a folder or a zip "
                    "(default: assignments/LAB)")
    group.addoption("--reference", help="reference folder run live (default: reference/LAB)")
    group.addoption("--snapshots", help="folder of stored expected observations "
                    "(the student release); used instead of the reference")
    group.addoption("--record-snapshots", help="also store the reference's observations here")
    group.addoption("--reference-cache",
                    default=os.environ.get("AUTOGRADER_REFERENCE_CACHE",
                                           str(REPO_ROOT / "build" / "cache")),
                    help="cache folder for live reference observations ('' to disable)")
    group.addoption("--results", help="write Gradescope-format results.json here")
    group.addoption("--seed", type=int, help="grading seed (default: drawn at random)")
    group.addoption("--public-only", action="store_true", help="run only the public tests")
    group.addoption("--timeout-scale", type=float, default=1.0,
                    help="multiply every per-call time limit (slow machines)")
    group.addoption("--memory-limit-gib", type=float, default=3.0,
                    help="address-space limit of each worker process")
    group.addoption("--run-as", help="run the submission's code as this unprivileged user "
                    "(the grader must be root); the reference still runs as the grader")
    group.addoption("--time-budget", type=float, default=TIME_BUDGET,
                    help="seconds (times --timeout-scale) the submission's code may take over "
                    "the whole grading; then no more of it runs")


# ----------------------------------------------------------------------------- handles


class StudentCode:
    """The `student` fixture: calls into the submission; failures fail the test."""

    def __init__(self, implementation: Implementation):
        self._implementation = implementation

    def call(self, target: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        try:
            return self._implementation.call(target, *args, timeout=timeout, **kwargs)
        except CallFailed as failure:
            raise GradingFailure(str(failure)) from None

    def probe(self, target: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        try:
            return self._implementation.probe(target, *args, timeout=timeout, **kwargs)
        except CallFailed as failure:
            raise GradingFailure(str(failure)) from None


@dataclass
class LabSession:
    lab: Lab
    staged: StagedSubmission
    student: Implementation
    reference: ReferenceObservations


@dataclass
class GradingState:
    config: pytest.Config
    seed: int
    started: float = field(default_factory=time.monotonic)
    labs: dict[str, LabSession] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    # test id -> the submission's functions its code ran: name -> called directly (see
    # Implementation.called)
    calls: dict[str, dict[str, bool]] = field(default_factory=dict)
    workdir: tempfile.TemporaryDirectory = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="grader-")
    )

    def option(self, name: str) -> Any:
        return self.config.getoption(name)

    def session_for(self, lab: Lab) -> LabSession:
        if lab.name not in self.labs:
            self.labs[lab.name] = self._open(lab)
        return self.labs[lab.name]

    def _open(self, lab: Lab) -> LabSession:
        scale = self.option("timeout_scale")
        memory = int(self.option("memory_limit_gib") * 2**30)
        source = Path(self.option("impl") or lab.assignments_dir)
        threads, numerics = student_numerics()
        staged = stage_submission(lab, source, Path(self.workdir.name) / lab.name)
        student = Implementation(
            staged.root,
            probes=lab.probes_dir,
            label="your code",
            timeout_scale=scale,
            memory_limit=memory,
            missing=staged.missing_reasons(),
            user=self.option("run_as") or None,
            record_calls=lab.parts,
            threads=threads,
            environment=numerics,
            protected=tuple(Path(path) for path in (
                REPO_ROOT, self.option("reference_cache"),
                Path(self.option("results")).parent if self.option("results") else "")
                if path),
        )
        student.budget = self.option("time_budget") * scale
        student.budget_note = (
            f"the time budget for your code ({student.budget:g} s for the whole lab) ran out "
            "before this test, spent in the tests before it (their messages say where)")
        snapshots = self.option("snapshots")
        if snapshots:
            reference = ReferenceObservations(  # a relative folder is the release root's
                snapshot_dir=self.config.rootpath / snapshots / lab.name,
                seed_hint=f"seed {self.seed}",
            )
        else:
            reference_dir = Path(self.option("reference") or lab.reference_dir)
            cache_root = self.option("reference_cache")
            cache_dir = None
            if cache_root:
                tag = sources_hash(reference_dir, lab.probes_dir)
                cache_dir = Path(cache_root) / "reference" / lab.name / tag
            record = self.option("record_snapshots")
            # A worker that could read a key file next to the cache gets a cache sealed with
            # a key that never leaves this process.
            exposed = not self.option("run_as") and sandbox.landlock_abi(sandbox.simulated()) < 1
            reference = ReferenceObservations(
                live=Implementation(
                    reference_dir,
                    probes=lab.probes_dir,
                    label="the reference",
                    # generous: a slow reference must never fail a student
                    timeout_scale=3.0 * scale,
                    memory_limit=memory,
                ),
                cache_dir=cache_dir,
                record_dir=Path(record) / lab.name if record else None,
                cache_key=cache_key(Path(cache_root), private=exposed) if cache_root else b"",
            )
        return LabSession(lab, staged, student, reference)

    def close(self) -> None:
        for session in self.labs.values():
            session.student.close()
            session.reference.close()
        self.workdir.cleanup()


def student_numerics() -> tuple[int, dict[str, str]]:
    """The submission's worker's thread count and numerics variables, from STUDENT_NUMERICS
    (1 and none when it is not set)."""
    threads, numerics = 1, {}
    for setting in os.environ.get(STUDENT_NUMERICS, "").split():
        name, _, value = setting.partition("=")
        if name == "threads" and value.isdigit() and int(value) > 0:
            threads = int(value)
        elif name in NUMERICS and value:
            numerics[name] = value
        else:
            raise pytest.UsageError(f"{STUDENT_NUMERICS}: {setting!r} is not threads=N or "
                                    f"one of {', '.join(NUMERICS)} with a value")
    return threads, numerics


def _state(config: pytest.Config) -> GradingState:
    return config.stash[STATE_KEY]


STATE_KEY = pytest.StashKey[GradingState]()


def pytest_configure(config: pytest.Config) -> None:
    seed = config.getoption("seed")
    if seed is None:
        seed = secrets.randbelow(2**31)
    config.stash[STATE_KEY] = GradingState(config=config, seed=seed)


def pytest_unconfigure(config: pytest.Config) -> None:
    if STATE_KEY in config.stash:
        config.stash[STATE_KEY].close()


# ----------------------------------------------------------------------------- collection


def _lab_of_item(item: pytest.Item) -> Lab | None:
    return lab_of(Path(item.path).parent)


def _part_of(item: pytest.Item) -> str:
    """The lab part a test belongs to: its file's name without `test_`."""
    return Path(item.path).stem.removeprefix("test_")


def _test_id(item: pytest.Item) -> str:
    """Stable across checkouts: the path inside the lab folder and the test's name."""
    return f"{Path(item.path).name}::{item.name}"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    public_only = config.getoption("public_only")
    kept, dropped = [], []
    for item in items:
        if _lab_of_item(item) is None:
            kept.append(item)
            continue
        if item.get_closest_marker("points") is None:
            raise pytest.UsageError(f"{item.nodeid} has no @pytest.mark.points(n) marker")
        if public_only and item.get_closest_marker("public") is None:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


# ----------------------------------------------------------------------------- fixtures


def _lab_session(request: pytest.FixtureRequest) -> LabSession:
    lab = _lab_of_item(request.node)
    if lab is None:
        raise pytest.UsageError(f"{request.node.nodeid} is not inside a lab folder")
    return _state(request.config).session_for(lab)


@pytest.fixture
def student(request: pytest.FixtureRequest) -> StudentCode:
    implementation = _lab_session(request).student
    # Named in messages about a function that ran out of time in this test.
    implementation.context = f'the test "{_display_name(request.node, _part_of(request.node))}"'
    # What the submission's code runs in this test, for the hint "fix X first".
    implementation.called = _state(request.config).calls.setdefault(request.node.nodeid, {})
    return StudentCode(implementation)


@pytest.fixture
def reference(request: pytest.FixtureRequest) -> ReferenceObservations:
    return _lab_session(request).reference


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    session_seed = _state(request.config).seed
    digest = hashlib.sha256(f"{session_seed}:{_test_id(request.node)}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


@pytest.fixture
def rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def np_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A lab's test draws its normal samples the same on every CPU (draws.py), so that the
    snapshots recorded on one machine are found on another."""
    if _lab_of_item(item) is None:
        yield
        return
    with PortableDraws():
        yield


# ----------------------------------------------------------------------------- reporting


def _display_name(item: pytest.Item, part: str) -> str:
    doc = getattr(item, "function", None).__doc__ if hasattr(item, "function") else None
    title = doc.strip().splitlines()[0].rstrip(".") if doc and doc.strip() else item.name
    if hasattr(item, "callspec"):
        # A docstring may name the parameters ("{function} is stable"); otherwise add the id.
        formatted = title.format_map(item.callspec.params) if "{" in title else title
        title = formatted if formatted != title else f"{title} [{item.callspec.id}]"
    return f"{part}: {title}"


def _explain(excinfo: pytest.ExceptionInfo, phase: str) -> str:
    error = excinfo.value
    if isinstance(error, GradingFailure):
        return str(error)
    if isinstance(error, ReferenceUnavailable):
        return f"Grading problem (not your fault; please tell the course staff): {error}"
    if isinstance(error, CallFailed):
        return str(error)
    if excinfo.typename == "Failed" and phase == "call":  # pytest.fail(...)
        return str(error)
    where = f" during {phase}" if phase != "call" else ""
    return (
        f"The grader hit an internal error{where} (not your fault; please tell the course "
        f"staff): {excinfo.typename}: {error}"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    lab = _lab_of_item(item)
    if lab is None:
        return
    result = outcome.get_result()
    state = _state(item.config)
    key = item.nodeid
    if key not in state.records:
        part = _part_of(item)
        points = float(item.get_closest_marker("points").args[0])
        visibility_marker = item.get_closest_marker("visibility")
        if visibility_marker is not None:
            visibility = visibility_marker.args[0]
        elif item.get_closest_marker("public") is not None:
            visibility = "visible"
        else:
            visibility = DEFAULT_VISIBILITY
        state.records[key] = {
            "name": _display_name(item, part),
            "part": part,
            "max_score": points,
            "visibility": visibility,
            "passed": None,
            "output": "",
        }
        state.order.append(key)
    record = state.records[key]
    if result.skipped:
        reason = result.longrepr[2] if isinstance(result.longrepr, tuple) else str(result.longrepr)
        record["passed"] = False
        record["output"] = f"Skipped: {reason}"
    elif result.failed:
        record["passed"] = False
        if not record["output"]:
            record["output"] = _explain(call.excinfo, call.when) if call.excinfo else "failed"
    elif call.when == "call" and record["passed"] is None:
        record["passed"] = True
    if result.failed and call.excinfo is not None:
        result.longrepr = record["output"] if call.excinfo.errisinstance(
            (GradingFailure, CallFailed)
        ) else result.longrepr


MAX_POINTED = 3  # helpers named in one "fix X first" line


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def cascade_pointers(records: dict[str, dict[str, Any]],
                     calls: dict[str, dict[str, bool]],
                     written: set[str] | None = None) -> dict[str, str]:
    """Test id -> a line for its message when it failed and its code called (not directly)
    functions of the submission that fail their own tests: a function fails its own tests
    when a failed test called it directly (from the test's own call or probe, not from inside
    another function of the submission). At most three are named, in the order first called;
    of several, the line says to fix first those that fail a test of their own where no
    other function is to blame (logsumexp rather than the log_softmax built on it). With
    `written` ("module:Qual.name" of the functions students write), only those are named: a
    given __init__ that a failing test called is not for the student to fix. The call
    record is the worker's word, so a forged one changes at most this hint, never a verdict
    or a score."""
    failed = [key for key, record in records.items() if record["passed"] is False]
    owners: dict[str, list[str]] = {}  # function -> the failed tests that called it directly
    for key in failed:
        for name, direct in calls.get(key, {}).items():
            if direct:
                owners.setdefault(name, []).append(key)
    helpers = {key: [name for name, direct in calls.get(key, {}).items()
                     if not direct and name in owners
                     and (written is None or name in written)] for key in failed}
    def behind(name: str, seen: set[str]) -> list[str]:
        """The functions to fix first for `name`: itself when one of its failed tests has no
        helper to blame, else those behind the helpers its failed tests name."""
        if any(not helpers[owner] for owner in owners[name]):
            return [name]
        found: list[str] = []
        for owner in owners[name]:
            for helper in helpers[owner]:
                if helper not in seen:
                    seen.add(helper)
                    found += [n for n in behind(helper, seen) if n not in found]
        return found

    pointers = {}
    for key, names in helpers.items():
        roots = [name for name in names if any(not helpers[owner] for owner in owners[name])]
        if names and not roots:  # every helper named fails because of another function
            deeper: list[str] = []
            for name in names:
                deeper += [n for n in behind(name, set(names)) if n not in deeper]
            if deeper:
                shown = [name.partition(":")[2] for name in names[:MAX_POINTED]]
                first = [name.partition(":")[2] for name in deeper[:MAX_POINTED]]
                verb = "fails its own tests" if len(shown) == 1 else "fail their own tests"
                pointers[key] = (f"{_names(shown)}, which this test's code calls, {verb}, "
                                 f"and those tests point at {_names(first)}: fix "
                                 f"{_names(first)} first.")
                continue
        if len(names) > MAX_POINTED:  # the roots are named first, in the order called
            kept = set(roots[:MAX_POINTED])
            kept.update([name for name in names if name not in kept][:MAX_POINTED - len(kept)])
            names = [name for name in names if name in kept]
        roots = [name.partition(":")[2] for name in roots if name in names]
        shown = [name.partition(":")[2] for name in names]
        if len(shown) == 1:
            pointers[key] = (f"{shown[0]}, which this test's code calls, fails its own "
                             f"tests: fix {shown[0]} first.")
        elif shown:
            pointers[key] = (f"{_names(shown)}, which this test's code calls, fail their own "
                             f"tests: fix {_names(roots) if roots else 'them'} first.")
    return pointers


def _written(state: GradingState) -> set[str]:
    """"module:Qual.name" of the functions students write, in every lab graded: from the
    files students start from (the stubs' TODOs, or the reference's solution regions)."""
    names = set()
    for session in state.labs.values():
        for part in session.lab.parts:
            path = session.lab.support_dir / f"{part}.py"
            if path.is_file():
                names.update(f"{part}:{name}" for name in written_functions(path.read_text()))
    return names


def _with_pointer(output: str, pointer: str | None) -> str:
    """`output` with the pointer as its last line, kept whole when the output is clipped."""
    if not pointer:
        return output
    body = report.clip(report.clean(output).rstrip(),
                       report.MAX_OUTPUT_CHARS - len(pointer) - 1)
    return f"{body}\n{pointer}"


def collected_results(config: pytest.Config) -> dict[str, Any]:
    state = _state(config)
    pointers = cascade_pointers(state.records, state.calls, _written(state))
    tests = []
    for key in state.order:
        record = state.records[key]
        score = record["max_score"] if record["passed"] else 0.0
        output = record["output"] or ("Passed." if record["passed"] else "")
        tests.append(
            report.test_entry(
                name=record["name"],
                score=score,
                max_score=record["max_score"],
                output=_with_pointer(output, pointers.get(key)),
                visibility=record["visibility"],
                part=record["part"],
            )
        )
    notes = []
    for session in state.labs.values():
        staged = session.staged
        found = ", ".join(f"{name} (from {where})" for name, where in staged.found.items())
        notes.append(f"{session.lab.title}")
        notes.append(f"Graded files: {found or 'none'}")
        if staged.missing:
            notes.append(f"Missing files: {', '.join(staged.missing)} (their tests score 0)")
        notes.extend(f"Note: {note}" for note in staged.notes)
        for hang in session.student.hangs.values():
            notes.append(f"Ran out of time: {hang.name} ({hang.place}), in {hang.during}; "
                         f"later calls to it were stopped after {session.student.leash:g} s")
        if not config.getoption("public_only"):  # staff and grader detail, not for students
            notes.append(f"Sandbox: {session.student.sandbox}")
    if platform_note():
        notes.append(f"Note: {platform_note()}")
    notes.append(f"Grading seed: {state.seed}")
    files = {name: {"found": session.staged.found, "missing": session.staged.missing,
                    "notes": session.staged.notes} for name, session in state.labs.items()}
    return report.build_results(
        tests,
        execution_time=time.monotonic() - state.started,
        output="\n".join(notes),
        extra={"seed": state.seed, "labs": sorted(state.labs), "files": files},
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("results")
    if not path:
        return
    state = _state(session.config)
    for lab_session in state.labs.values():  # no student code runs once results are final
        lab_session.student.close()
    report.write_results(Path(path), collected_results(session.config))

