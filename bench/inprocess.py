"""A pytest plugin that runs a lab's tests without worker processes: the engine's baseline.

    python -m pytest autograder/lab1 -p no:autograder.engine.plugin -p bench.inprocess \
        --inprocess-impl reference/lab1 --inprocess-seed 1

It replaces the engine's plugin. The `student` and `reference` fixtures call the
implementation's functions and probes directly in this process: no isolation, no
serialisation, no timeouts and no reference cache. Arguments are deep-copied and results
turned into plain data, as the worker does, so the tests see what they see when graded.
`seed`, `rng` and `np_rng` are derived exactly as the engine derives them, so every test draws
the same inputs. bench/benchmarks.py times this against real grading to measure what the
isolation costs.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from autograder.engine.plugin import _test_id
from autograder.engine.worker import to_plain


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("inprocess", "run a lab's tests in one process (benchmark)")
    group.addoption("--inprocess-impl", required=True, help="implementation folder")
    group.addoption("--inprocess-seed", type=int, default=1, help="session seed")


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(1)  # as in the worker, so only the isolation differs


class InProcess:
    """`call` and `probe` as on the engine's handles, run right here."""

    def __init__(self, root: Path, probes: Path):
        self.root, self.probes = root.resolve(), probes
        self._probe_modules: dict[str, ModuleType] = {}
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))

    def _run(self, function: Any, args: tuple, kwargs: dict) -> Any:
        args, kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
        return to_plain(function(*args, **kwargs))

    def call(self, target: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        module_name, _, path = target.partition(".")
        function: Any = importlib.import_module(module_name)
        for name in path.split("."):
            function = getattr(function, name)
        return self._run(function, args, kwargs)

    def probe(self, target: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        part, _, name = target.partition(".")
        if part not in self._probe_modules:
            spec = importlib.util.spec_from_file_location(f"_bench_probes_{part}",
                                                          self.probes / f"{part}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._probe_modules[part] = module
        return self._run(getattr(self._probe_modules[part], name), args, kwargs)


_HANDLES: dict[Path, InProcess] = {}


def _handle(request: pytest.FixtureRequest) -> InProcess:
    probes = Path(request.node.path).parent / "probes"
    if probes not in _HANDLES:
        _HANDLES[probes] = InProcess(Path(request.config.getoption("inprocess_impl")), probes)
    return _HANDLES[probes]


@pytest.fixture
def student(request: pytest.FixtureRequest) -> InProcess:
    return _handle(request)


@pytest.fixture
def reference(request: pytest.FixtureRequest) -> InProcess:
    return _handle(request)


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    session_seed = request.config.getoption("inprocess_seed")
    digest = hashlib.sha256(f"{session_seed}:{_test_id(request.node)}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


@pytest.fixture
def rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def np_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)
