"""Hangs: the call that runs out of time names the student function it was stuck in, and later
calls to that function are stopped after the leash instead of costing their whole limit.

These tests drive `Implementation` directly on a small implementation folder, with short
limits; tests/test_hostile.py grades hanging submissions of lab 1 with the real CLI.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autograder.engine.runner import CallFailed, Implementation

LIMIT = 2.0
LEASH = 0.5

MODULE = '''
import time

def spin():
    while True:
        pass

def hangs_above_five(n):
    if n > 5:
        while True:
            pass
    return 2 * n

def calls_spin():
    return spin()

class Agent:
    def act(self, n):
        while n > 5:
            pass
        return n + 1

    @staticmethod
    def helper(n):
        while n > 5:
            pass
        return n - 1

def catches_everything():
    while True:
        try:
            spin()
        except BaseException:
            pass

def sleeps(seconds):
    time.sleep(seconds)
    return "done"

def stuck_in_c():
    return sum(range(10**13))  # one C call that holds the GIL: no signal handler runs
'''

OTHER = '''
from mod import hangs_above_five as imported

def use(n):
    return imported(n)
'''


@pytest.fixture
def implementation(tmp_path: Path):
    root = tmp_path / "impl"
    root.mkdir()
    (root / "mod.py").write_text(textwrap.dedent(MODULE))
    (root / "other.py").write_text(textwrap.dedent(OTHER))
    with Implementation(root, default_timeout=LIMIT, leash=LEASH) as implementation:
        yield implementation


def failure(implementation: Implementation, target: str, *args) -> CallFailed:
    with pytest.raises(CallFailed) as caught:
        implementation.call(target, *args)
    return caught.value


def test_a_hang_names_the_function_and_line_and_later_calls_get_the_leash(implementation):
    first = failure(implementation, "mod.hangs_above_five", 7)
    assert first.kind == "timeout"
    assert implementation.restarts == 0, "the worker stops a Python-level hang itself"
    assert "did not finish within 2 s" in str(first)
    assert ("running hangs_above_five (mod.py, line 10, in hangs_above_five: while True:)"
            in str(first)), first
    assert "every call to hangs_above_five is stopped after 0.5 s" in str(first)
    assert list(implementation.hangs) == ["mod:hangs_above_five"]

    # Quick inputs still pass: the leash costs only the calls that hang.
    assert implementation.call("mod.hangs_above_five", 3) == 6
    restarts = implementation.restarts
    again = failure(implementation, "mod.hangs_above_five", 9)
    assert again.kind == "leash", again
    assert "hangs_above_five ran for 0.5 s without finishing and was stopped" in str(again)
    assert "It ran out of time earlier in mod.hangs_above_five()" in str(again)
    assert implementation.restarts == restarts, "a leash stops the call, not the worker"
    assert implementation.call("mod.hangs_above_five", 1) == 2


def test_the_leash_follows_a_function_imported_into_another_module(implementation):
    failure(implementation, "mod.hangs_above_five", 7)
    assert implementation.call("other.use", 4) == 8
    through_import = failure(implementation, "other.use", 8)
    assert through_import.kind == "leash", through_import
    assert "other.py, line 5, in use" in str(through_import)


def test_methods_and_static_methods_are_named_by_their_class(implementation):
    act = failure(implementation, "mod.Agent.act", None, 7)  # unbound: self is None
    assert "running Agent.act (mod.py" in str(act), act
    assert implementation.call("mod.Agent.act", None, 2) == 3
    assert failure(implementation, "mod.Agent.act", None, 8).kind == "leash"

    helper = failure(implementation, "mod.Agent.helper", 7)
    assert "running Agent.helper (mod.py" in str(helper), helper
    assert implementation.call("mod.Agent.helper", 2) == 1
    assert failure(implementation, "mod.Agent.helper", 8).kind == "leash"
    assert set(implementation.hangs) == {"mod:Agent.act", "mod:Agent.helper"}


def test_the_innermost_function_is_blamed_not_its_caller(implementation):
    first = failure(implementation, "mod.calls_spin")
    assert "running spin (mod.py, line 5, in spin: while True:)" in str(first), first
    assert list(implementation.hangs) == ["mod:spin"]
    second = failure(implementation, "mod.calls_spin")
    assert second.kind == "leash"
    assert "mod.py, line 15, in calls_spin" in str(second)  # the traceback shows the path


def test_code_that_swallows_the_leash_and_the_limit_is_killed(implementation):
    failure(implementation, "mod.spin")
    swallowed = failure(implementation, "mod.catches_everything")
    assert swallowed.kind == "timeout", swallowed
    assert "did not finish within 2 s" in str(swallowed)
    assert implementation.restarts == 1, "the worker could not stop it: it was killed"
    assert implementation.call("mod.hangs_above_five", 1) == 2  # a fresh worker carries on


def test_a_hang_inside_one_c_call_is_killed_without_blaming_anyone(implementation):
    stuck = failure(implementation, "mod.stuck_in_c")
    assert stuck.kind == "timeout" and "did not finish within 2 s" in str(stuck)
    assert implementation.restarts == 1
    assert implementation.hangs == {}  # the watchdog needs the GIL too: no name, no leash
    assert implementation.call("mod.hangs_above_five", 1) == 2


@pytest.mark.slow
def test_a_call_that_finishes_after_the_watchdog_reported_is_not_a_hang(tmp_path):
    """The watchdog reports 1 s before a 10 s limit; a call that ends between the report and
    the limit passes, nobody gets a leash, and the report does not leak into the next call."""
    root = tmp_path / "impl"
    root.mkdir()
    (root / "mod.py").write_text(textwrap.dedent(MODULE))
    with Implementation(root, default_timeout=10.0, leash=LEASH) as implementation:
        assert implementation.call("mod.sleeps", 9.5) == "done"
        assert implementation.hangs == {}
        assert implementation.call("mod.hangs_above_five", 2) == 4


def test_a_progress_bar_costs_no_restart_and_a_thread_of_its_own_does(tmp_path):
    # tqdm starts a monitor thread with its first bar (disabled or not); the worker turns the
    # monitor off, so a training loop with a bar keeps its worker. A thread the code starts
    # itself still costs a restart.
    (tmp_path / "bars.py").write_text(textwrap.dedent('''
        import threading
        import time
        from tqdm.auto import tqdm

        def loop(n, progress):
            return sum(i for i in tqdm(range(n), disable=not progress))

        def leaves_a_thread():
            threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
            return 1
    '''))
    with Implementation(tmp_path, default_timeout=20) as implementation:
        assert implementation.call("bars.loop", 10, False) == 45
        assert implementation.call("bars.loop", 10, True) == 45
        assert implementation.restarts == 0, "a progress bar made the worker restart"
        assert implementation.call("bars.leaves_a_thread") == 1
        assert implementation.restarts == 1, "a thread left running must cost a restart"
