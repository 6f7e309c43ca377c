"""Trusted side of the probe/verdict split: a handle on one implementation's worker process.

`Implementation.call("basics.softmax", x)` sends the request to the worker (see worker.py),
waits with a deadline, and returns the observation, or raises `CallFailed` with a sentence
that says what went wrong: the exception and where, a missing function, an import error,
a timeout, an exit, a crash. A worker that dies or overruns is killed with its whole process
group and a fresh one is started for the next call, so a failure costs only that call.

A call that runs out of time is stopped by the worker itself, which names the function of
the submission it was stuck in (see worker.py); the worker is only killed when that does not
work, a grace period after the limit. That function is put on a *leash* for every later call:
a submission whose functions all hang pays each test's full limit only once per function, and
a function that hangs on some inputs only still passes where it is quick.

A worker also dies with the thread that started it (Linux's parent-death signal), so that a
grading process killed from outside leaves no worker behind: call an `Implementation` from a
thread that lives as long as the grading (pytest's main thread does).
"""

from __future__ import annotations

import collections
import io
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from autograder.engine import sandbox as kernel
from autograder.engine import worker as wire

WORKER_SCRIPT = Path(wire.__file__).resolve()
STARTUP_TIMEOUT = 120.0
MAX_LEASHES = 64
MAX_CALLED = 1000  # functions noted per test (see Implementation.called)
# What an answer may hold, checked before it is decoded (bytes, tensors, pickled structure)
# and while it is (items, depth): the weights-only unpickler takes about 10 s per MiB of
# tiny objects, and an answer with shared sub-objects could expand to 2^40 items when walked.
MAX_PICKLE_BYTES = 4 * 2**20
MAX_TENSORS = 10_000
MAX_ITEMS = wire.MAX_OBJECTS
MAX_NESTING = wire.MAX_DEPTH + 4
SHARED_PLACES = ("/dev/shm", "/tmp", "/var/tmp")
MEMORY_POLL = 0.1  # seconds between two looks at a worker's memory where the grader watches it
# The variables that choose a CPU's numerics (torch's kernels, MKL's code path): a worker
# computes as the grading machine is set up, or as `Implementation(environment=...)` says
# (bench/crosscheck.py grades a submission under other numerics than the reference's).
NUMERICS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS")


class Unreadable(Exception):
    """An answer the trusted side refuses to decode or keep; the message says why."""


def check_plain(value: Any) -> None:
    """Walk a decoded answer, each occurrence of a shared sub-object counted again, and stop
    as soon as it holds more than MAX_ITEMS items or is nested deeper than MAX_NESTING: every
    later walk (comparing, hashing) is bounded by the same numbers. Only plain data passes:
    None, bool, int, float, str, dense CPU tensors, and lists, tuples and dicts of those."""
    stack, count = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_ITEMS:
            raise Unreadable(f"it holds more than {MAX_ITEMS} items")
        if depth > MAX_NESTING:
            raise Unreadable(f"it is nested more than {MAX_NESTING} levels deep")
        kind = type(item)
        if item is None or kind in (bool, int, float, str):
            continue
        if kind is torch.Tensor:
            if item.layout != torch.strided or item.device.type != "cpu" or item.is_quantized:
                raise Unreadable("it holds a tensor that is not a dense CPU tensor")
        elif kind in (list, tuple):
            stack.extend((element, depth + 1) for element in item)
        elif kind is dict:
            for key, element in item.items():
                if type(key) not in (str, int):
                    raise Unreadable("it has a dictionary key that is not a string or number")
                stack.append((element, depth + 1))
        else:
            raise Unreadable(f"it holds a {kind.__name__}")


def decode_answer(data: bytes) -> Any:
    """Decode a message from a worker within the limits above."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise Unreadable("it is not a message the grader can read") from None
    tensors = sum(1 for info in infos if "/data/" in info.filename)
    if tensors > MAX_TENSORS:
        raise Unreadable(f"it holds {tensors} tensors; at most {MAX_TENSORS} can be sent back")
    pickled = sum(info.file_size for info in infos if info.filename.endswith(".pkl"))
    if pickled > MAX_PICKLE_BYTES:
        raise Unreadable(f"its structure takes {pickled / 2**20:.1f} MiB; at most "
                         f"{MAX_PICKLE_BYTES // 2**20} MiB (return tensors instead of long "
                         "lists of numbers)")
    try:
        value = wire.decode(data)
    except Exception:  # noqa: BLE001 - anything that is not plain data
        raise Unreadable("it is not plain data") from None
    check_plain(value)
    return value
_FUNCTION_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@dataclass
class Hang:
    """Where a call was stuck when its time ran out, as the watchdog reported it."""

    function: str  # "module:Qual.name"
    file: str
    line: int
    code: str
    during: str  # the call that ran out of time

    @property
    def name(self) -> str:
        return self.function.partition(":")[2]

    @property
    def place(self) -> str:
        code = f": {self.code}" if self.code else ""
        return f"{self.file}, line {self.line}, in {self.name}{code}"

    @classmethod
    def from_event(cls, message: dict, during: str) -> Hang | None:
        """Check a report from the (untrusted) worker; None if it is not a plausible one."""
        function, line = message.get("function"), message.get("line")
        file, code = message.get("file"), message.get("code", "")
        if not (isinstance(function, str) and len(function) <= 200
                and _FUNCTION_NAME.fullmatch(function)):
            return None
        if not (isinstance(file, str) and 0 < len(file) <= 100 and "/" not in file):
            return None
        if type(line) is not int or not isinstance(code, str):
            return None
        code = "".join(c for c in code[:200] if c.isprintable())
        return cls(function, file, line, code, during)


def third_party_paths() -> list[str]:
    """The installed packages' folders, without this repository (editable installs put it on
    sys.path) or the current directory."""
    repository = Path(wire.__file__).resolve().parents[2]
    return [
        path for path in sys.path
        if ("site-packages" in path or "dist-packages" in path)
        and Path(path).is_dir() and Path(path).resolve() != repository
    ]


class CallFailed(Exception):
    """A call into an implementation failed; the message is written for the student."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class OutputTail:
    """Keeps the last `limit` bytes a worker printed, and the running total."""

    def __init__(self, limit: int = 64 * 1024):
        self.limit = limit
        self.total = 0
        self._buffer = bytearray()
        self._lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            self.total += len(chunk)
            self._buffer += chunk
            del self._buffer[: max(0, len(self._buffer) - self.limit)]

    def since(self, mark: int, limit: int = 2000) -> str:
        with self._lock:
            new = min(self.total - mark, len(self._buffer))
            text = bytes(self._buffer[len(self._buffer) - new :]).decode("utf-8", "replace")
            skipped = self.total - mark - len(text.encode("utf-8", "replace"))
        if len(text) > limit:
            skipped += len(text) - limit
            text = text[-limit:]
        if skipped > 0:
            text = f"[... {skipped} earlier characters not shown ...]\n{text}"
        return text


def _drain(stream, tail: OutputTail) -> None:
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            return
        tail.feed(chunk)


class Inbox:
    """What a worker sent on a pipe that cannot be waited on with select (Windows), read by
    a thread of its own: `take` waits for bytes until a deadline."""

    def __init__(self, stream):
        self._chunks: collections.deque[bytes] = collections.deque()
        self._condition = threading.Condition()
        self._closed = False
        threading.Thread(target=self._fill, args=(stream,), daemon=True).start()

    def _fill(self, stream) -> None:
        while True:
            try:
                chunk = stream.read1(1 << 20)
            except (OSError, ValueError):
                chunk = b""
            with self._condition:
                if chunk:
                    self._chunks.append(chunk)
                else:
                    self._closed = True
                self._condition.notify_all()
            if not chunk:
                return

    def take(self, size: int, timeout: float) -> bytes | str:
        """Up to `size` bytes; "timeout" when none came in time, "eof" when none will."""
        with self._condition:
            if not self._chunks and not self._closed:
                self._condition.wait(max(timeout, 0))
            if self._chunks:
                chunk = self._chunks.popleft()
                if len(chunk) > size:
                    self._chunks.appendleft(chunk[size:])
                    chunk = chunk[:size]
                return chunk
            return "eof" if self._closed else "timeout"


class MemoryWatch:
    """Where the worker cannot limit its own address space (macOS refuses RLIMIT_AS; Windows
    has no `resource`), the trusted side looks at the resident memory of the worker and of
    any process it started, and stops it above the limit."""

    def __init__(self, pid: int, limit: int):
        import psutil

        self.limit = limit
        self._process = psutil.Process(pid)
        self._errors = (psutil.Error, OSError)

    def exceeded(self) -> bool:
        try:
            processes = [self._process, *self._process.children(recursive=True)]
            used = sum(process.memory_info().rss for process in processes)
        except self._errors:
            return False  # gone: the read that follows says how it ended
        return used > self.limit


def memory_watch(pid: int, limit: int) -> MemoryWatch | None:
    """A MemoryWatch where the worker has no address-space limit of its own (not Linux), None
    elsewhere, or where psutil is missing (the note then says so)."""
    if limit <= 0 or wire.platform_name() == "linux":
        return None
    try:
        return MemoryWatch(pid, limit)
    except ImportError:
        return None


def platform_note() -> str:
    """One line on what this operating system lacks of the worker's protections and what
    stands in for it; empty where nothing is missing (Linux on x86_64)."""
    system = wire.platform_name()
    if system == "darwin":
        return ("macOS: your code runs without the Linux sandbox and without an address-space "
                "limit; the grader watches its memory instead, and every time limit holds")
    if system == "win32":
        return ("Windows: your code runs without a sandbox and without limits of its own; the "
                "grader watches its memory and stops a call at its time limit (at the cost of "
                "a restart)")
    if kernel.landlock_abi(kernel.simulated()) < 1 and not kernel.seccomp_supported():
        return (f"{system} on {kernel.machine()}: your code runs without the grader's "
                "sandbox; time and memory limits hold")
    return ""


def kill_tree(popen: subprocess.Popen) -> None:
    """Kill a worker and everything it started: its process group where there are process
    groups, else the process and its descendants as psutil finds them (Windows)."""
    if wire.platform_name() != "win32" and hasattr(os, "killpg"):
        try:
            os.killpg(popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    try:
        import psutil

        children = psutil.Process(popen.pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - psutil missing, or the worker already gone
        children = []
    for child in children:
        try:
            child.kill()
        except Exception:  # noqa: BLE001 - gone in the meantime
            pass
    try:
        popen.kill()
    except OSError:
        pass


@dataclass
class _Process:
    popen: subprocess.Popen
    request_fd: int
    response_fd: int
    scratch: tempfile.TemporaryDirectory
    uid: int
    output: OutputTail = field(default_factory=OutputTail)
    inbox: Inbox | None = None  # answers, where they are read by a thread (Windows)
    memory: MemoryWatch | None = None
    # Where nothing keeps the worker out of /dev/shm (no Landlock, the grader's own user):
    # what was there when it started, to remove what it added (see remove_new_shared_memory).
    shm_before: tuple[float, set[str]] | None = None


def reachable_by(uid: int, gid: int, path: Path) -> bool:
    """Whether a user (with no supplementary groups) can reach `path`: every folder on the
    way searchable by it."""
    path = Path(path).absolute()
    for folder in (path, *path.parents):
        try:
            info = os.stat(folder)
        except OSError:
            return False
        if uid == 0:
            continue
        bit = 0o100 if info.st_uid == uid else 0o010 if info.st_gid == gid else 0o001
        if stat.S_ISDIR(info.st_mode) and not info.st_mode & bit:
            return False
    return True


def _own_uid() -> int:
    """This process's user id; -1 where there are none (Windows)."""
    return os.getuid() if hasattr(os, "getuid") else -1


def clean_shared_places(uid: int) -> None:
    """Remove what the submission's own user left in the world-writable places (/dev/shm,
    /tmp, /var/tmp), so that nothing passes from one submission to the next. Only for a
    worker running as a user of its own (never the grader's); links are removed, never
    followed."""
    if uid == _own_uid():
        return
    for place in SHARED_PLACES:
        _remove_owned(place, uid)


def _remove_owned(place: str, uid: int, keep: Any = lambda entry, info: False) -> None:
    """Remove the entries of `place` that `uid` owns, except those `keep(entry, info)`
    spares; links are removed, never followed."""
    try:
        entries = list(os.scandir(place))
    except OSError:
        return
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if info.st_uid != uid or keep(entry, info):
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            continue


def shared_memory_snapshot() -> tuple[float, set[str]] | None:
    """When and what /dev/shm held, before a worker that runs as the grader's own user
    starts where Landlock does not keep it out; None where there is no /dev/shm."""
    try:
        return time.time(), set(os.listdir(SHARED_PLACES[0]))
    except OSError:
        return None


def remove_new_shared_memory(snapshot: tuple[float, set[str]]) -> None:
    """Remove what appeared in /dev/shm since `snapshot`, owned by this user and made after
    it: memory a worker left there (a file in /dev/shm is RAM) would outlive the grading.
    The grader itself puts nothing there while a worker runs (its workers may not start
    processes, so torch never shares tensors through it). Links are removed, never followed."""
    started, before = snapshot
    _remove_owned(SHARED_PLACES[0], _own_uid(),
                  keep=lambda entry, info: entry.name in before or info.st_ctime < started - 1)


def describe_exit(returncode: int | None, memory_limit: int) -> str:
    if returncode is None or returncode == wire.EXIT_LOST_CONNECTION:
        return "closed its connection to the grader (does your code close file descriptors?)"
    if returncode < 0:
        sig = -returncode
        if sig == getattr(signal, "SIGKILL", None):
            return (
                "was killed (SIGKILL): most likely out of memory "
                f"(the limit is {memory_limit / 2**30:.1f} GiB)"
            )
        if sig == signal.SIGSEGV:
            return "crashed with a segmentation fault"
        return f"was killed by signal {signal.Signals(sig).name}"
    return f"exited with code {returncode} (does your code call sys.exit, os._exit or exit?)"


class Implementation:
    """One implementation folder (a student's staged submission, or the reference)."""

    def __init__(
        self,
        root: Path,
        *,
        probes: Path | None = None,
        label: str = "your code",
        default_timeout: float = 5.0,
        import_timeout: float = 20.0,
        leash: float = 2.0,
        timeout_scale: float = 1.0,
        memory_limit: int = 3 * 2**30,
        threads: int = 1,
        missing: dict[str, str] | None = None,
        sandbox: bool = True,
        user: str | int | None = None,
        protected: tuple[Path, ...] = (),
        record_calls: tuple[str, ...] = (),
        environment: dict[str, str] | None = None,
    ):
        self.root = Path(root).resolve()
        self.probes = Path(probes).resolve() if probes else None
        self.label = label
        self.default_timeout = default_timeout
        self.import_timeout = import_timeout * timeout_scale
        self.timeout_scale = timeout_scale
        # A function that once ran out of time gets this long per call from then on.
        self.leash = leash * timeout_scale
        self.hangs: dict[str, Hang] = {}
        self.context = ""  # what is being graded now ("the test ..."), for messages
        self.memory_limit = memory_limit
        self.threads = threads
        # NUMERICS variables for the worker, over the grading process's own
        self.environment = {name: value for name, value in (environment or {}).items()
                            if name in NUMERICS}
        # module name -> why it cannot be used (missing from the submission, failed to import)
        self.broken: dict[str, str] = dict(missing or {})
        self.use_sandbox = sandbox
        # Run the worker as this unprivileged user (a name or uid; the grader must be root).
        self.user = user
        # Folders the worker's user must not reach where Landlock is missing (checked).
        self.protected = protected
        self._user_copies: tempfile.TemporaryDirectory | None = None
        self.sandbox = "not started"  # what the worker reported it could enforce
        self._process: _Process | None = None
        self.restarts = 0
        # Seconds all calls together may take (the lab's time budget); None: no budget.
        self.budget: float | None = None
        self.spent = 0.0  # seconds spent in calls so far, worker starts included
        self.budget_note = ""  # what to say when the budget ran out
        # The modules (graded files) whose functions the worker records calls to, and what
        # it reported: "module:Qual.name" -> called directly (from the probe or the request)
        # at least once, in the order first called. Updated in place; whoever grades a test
        # gives it a fresh dict first. The worker's word: good for a hint, never a verdict.
        self.record_calls = tuple(record_calls)
        self.called: dict[str, bool] = {}

    # ------------------------------------------------------------------ public API
    def call(self, target: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call `module.function(*args, **kwargs)` in the worker and return the result."""
        return self._request("call", target, args, kwargs, timeout)

    def probe(self, target: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call the probe `part.function` from the lab's probes folder in the worker."""
        return self._request("probe", target, args, kwargs, timeout)

    def names(self, module: str, *, timeout: float | None = None) -> dict[str, str]:
        """Import `module` in the worker; its public names, each "class", "function" or
        "value"."""
        return self._request("names", module, (), {}, timeout)

    def close(self) -> None:
        if self._process is not None:
            self._kill(self._process)
            self._process = None
        if self._user_copies is not None:
            self._user_copies.cleanup()
            self._user_copies = None

    def __enter__(self) -> Implementation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ process management
    def _copies_for_user(self) -> tuple[Path, Path, Path | None, dict[str, Any]]:
        """The worker script, implementation and probes copied where the worker's user can
        read them (and nothing else of the grader's), and the Popen arguments that switch to
        that user. Supplementary groups are dropped, so root's groups grant nothing."""
        import pwd

        entry = pwd.getpwuid(self.user) if isinstance(self.user, int) else pwd.getpwnam(self.user)
        if os.geteuid() != 0:
            raise CallFailed(f"running code as user {entry.pw_name} needs a grader running as "
                             "root", "crash")
        if kernel.landlock_abi(kernel.simulated()) < 1:
            exposed = [str(path) for path in self.protected
                       if reachable_by(entry.pw_uid, entry.pw_gid, Path(path))]
            if exposed:
                raise CallFailed(
                    f"not graded: this kernel has no Landlock, so the submission's user "
                    f"{entry.pw_name} must not be able to reach the grader's files, but it can "
                    f"reach {', '.join(exposed)} (make them mode 0700, owned by the grader)",
                    "crash")
        if self._user_copies is None:
            self._user_copies = tempfile.TemporaryDirectory(prefix="grader-user-")
            base = Path(self._user_copies.name)
            skip = shutil.ignore_patterns("__pycache__")
            shutil.copytree(self.root, base / "code", ignore=skip)
            if self.probes:
                shutil.copytree(self.probes, base / "probes", ignore=skip)
            (base / "engine").mkdir()
            for script in (WORKER_SCRIPT, WORKER_SCRIPT.with_name("sandbox.py")):
                if script.is_file():
                    shutil.copyfile(script, base / "engine" / script.name)
            for folder, _, files in os.walk(base):
                os.chmod(folder, 0o755)
                for name in files:
                    os.chmod(os.path.join(folder, name), 0o644)
        base = Path(self._user_copies.name)
        switch = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        probes = base / "probes" if self.probes else None
        return base / "engine" / WORKER_SCRIPT.name, base / "code", probes, switch

    def _start(self) -> _Process:
        worker_script, root, probes, switch = WORKER_SCRIPT, self.root, self.probes, {}
        if self.user is not None:
            worker_script, root, probes, switch = self._copies_for_user()
        # Windows cannot hand descriptors to a child: there the channel is the worker's
        # standard input and output, and what it prints comes on its error stream.
        stdio = wire.platform_name() == "win32"
        if not stdio:
            request_read, request_write = os.pipe()
            # A socket, not a pipe: a pipe could be reopened for writing through
            # /proc/self/fd, and the worker's student threads may not write to this one
            # (sandbox.guard_channel).
            response_socket, worker_socket = socket.socketpair()
            response_read, response_write = response_socket.detach(), worker_socket.detach()
        scratch = tempfile.TemporaryDirectory(
            prefix="grader-worker-", dir=root.parent if switch else None)
        if switch:
            os.chown(scratch.name, switch["user"], switch["group"])
        command = [
            sys.executable,
            "-I",
            "-S",
            str(worker_script),
            "--impl",
            str(root),
            "--scratch",
            scratch.name,
            *(["--stdio-channel"] if stdio else [
                "--request-fd", str(request_read), "--response-fd", str(response_write)]),
            "--memory-limit",
            str(self.memory_limit),
            "--threads",
            str(self.threads),
        ]
        if probes:
            command += ["--probes", str(probes)]
        for folder in third_party_paths():
            command += ["--site-packages", folder]
        if not self.use_sandbox:
            command.append("--no-sandbox")
        if self.record_calls:
            command += ["--record-calls", ",".join(self.record_calls)]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": scratch.name,
            "TMPDIR": scratch.name,
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": str(self.threads),
            "MKL_NUM_THREADS": str(self.threads),
            "MALLOC_ARENA_MAX": "2",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TQDM_DISABLE": "1",
        }
        for variable in (kernel.SIMULATE_VARIABLE, wire.SIMULATE_PLATFORM, *NUMERICS):
            if os.environ.get(variable):
                env[variable] = os.environ[variable]
        env.update(self.environment)
        for name in ("SYSTEMROOT", "SystemRoot"):  # Windows needs it to start Python at all
            if os.environ.get(name):
                env[name] = os.environ[name]
        shm_before = None
        if (self.user is None and wire.platform_name() == "linux"
                and kernel.landlock_abi(kernel.simulated()) < 1):
            shm_before = shared_memory_snapshot()
        if stdio:
            popen = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd=scratch.name, env=env, **switch)
            request_write, response_read = popen.stdin.fileno(), popen.stdout.fileno()
            printed = popen.stderr
        else:
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(request_read, response_write),
                cwd=scratch.name,
                env=env,
                start_new_session=True,
                **switch,
            )
            os.close(request_read)
            os.close(response_write)
            printed = popen.stdout
        uid = switch.get("user", _own_uid())
        process = _Process(popen, request_write, response_read, scratch, uid,
                           inbox=Inbox(popen.stdout) if stdio else None,
                           memory=memory_watch(popen.pid, self.memory_limit),
                           shm_before=shm_before)
        threading.Thread(target=_drain, args=(printed, process.output), daemon=True).start()
        message = self._read(process, time.monotonic() + STARTUP_TIMEOUT)
        if isinstance(message, Unreadable):
            message = f"an unreadable first message ({message})"
        if not isinstance(message, dict) or message.get("event") != "ready":
            output = process.output.since(0)
            self._kill(process)
            raise CallFailed(f"the grading worker could not start: {message}\n{output}", "crash")
        self.sandbox = str(message.get("sandbox", ""))
        return process

    def _kill(self, process: _Process) -> None:
        kill_tree(process.popen)
        process.popen.wait()
        if process.inbox is not None:  # the channel is the worker's stdin and stdout
            for stream in (process.popen.stdin, process.popen.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        for fd in () if process.inbox is not None else (process.request_fd, process.response_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        process.scratch.cleanup()
        if self.user is not None:
            clean_shared_places(process.uid)
        elif process.shm_before is not None:
            remove_new_shared_memory(process.shm_before)

    def _read(self, process: _Process, deadline: float) -> Any:
        """Read one message; returns "timeout" or "eof" when none comes, Unreadable when
        what came may not be decoded."""
        header = self._read_exactly(process, wire.HEADER.size, deadline)
        if isinstance(header, str):
            return header
        (size,) = wire.HEADER.unpack(header)
        if size > wire.MAX_MESSAGE_BYTES:
            return Unreadable(f"it announced {size} bytes; at most {wire.MAX_MESSAGE_BYTES}")
        data = self._read_exactly(process, size, deadline)
        if isinstance(data, str):
            return data
        try:
            return decode_answer(data)
        except Unreadable as problem:
            return problem

    @staticmethod
    def _read_exactly(process: _Process, size: int, deadline: float) -> bytes | str:
        """`size` bytes, or "timeout", "eof", or "memory" (the worker went over its memory
        limit where the grader watches it: it is killed)."""
        chunks = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            if process.memory is not None:
                if process.memory.exceeded():
                    kill_tree(process.popen)
                    return "memory"
                remaining = min(remaining, MEMORY_POLL)
            if process.inbox is not None:
                chunk = process.inbox.take(size, remaining)
                if chunk == "timeout":
                    continue
            else:
                ready, _, _ = select.select([process.response_fd], [], [], remaining)
                if not ready:
                    continue
                chunk = os.read(process.response_fd, min(size, 1 << 20))
            if not chunk or chunk == "eof":
                return "eof"
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    # ------------------------------------------------------------------ one request
    def _request(
        self, kind: str, target: str, args: tuple, kwargs: dict, timeout: float | None
    ) -> Any:
        started = time.monotonic()
        try:
            return self._request_once(kind, target, args, kwargs, timeout)
        finally:
            self.spent += time.monotonic() - started

    def _request_once(
        self, kind: str, target: str, args: tuple, kwargs: dict, timeout: float | None
    ) -> Any:
        timeout = (self.default_timeout if timeout is None else timeout) * self.timeout_scale
        module = target.partition(".")[0]
        shown = {"call": f"{target}()", "names": f"{module}.py"}.get(
            kind, f"{module}.py (probe {target})")
        if module in self.broken:
            raise CallFailed(f"{shown} could not run: {self.broken[module]}", "broken")
        budget = None if self.budget is None else self.budget - self.spent
        if budget is not None and budget <= 0.5:
            raise CallFailed(f"{shown} was not run: {self.budget_note}", "budget")
        if budget is not None and budget < timeout:
            timeout = budget
        if self._process is None or self._process.popen.poll() is not None:
            if self._process is not None:
                self._kill(self._process)
                self.restarts += 1
            self._process = self._start()
        process = self._process
        mark = process.output.total
        request = {"kind": kind, "target": target, "args": list(args), "kwargs": kwargs,
                   "limit": timeout, "leashes": {name: self.leash for name in self.hangs}}
        try:
            wire.write_message(process.request_fd, wire.encode(request))
        except OSError:
            self.close()
            raise CallFailed(f"{shown}: the worker process died before the call", "crash") from None

        phase, current_module, limit, hang = "start", module, timeout, None
        # Events move the deadline, but never past this one: two imports (the module and
        # its probes) and the call with its grace. A worker that sends events of its own
        # cannot keep itself running.
        # The worker stops the call at `timeout` itself; the grace is for code that keeps
        # it from doing so.
        grace = min(2.0, max(0.5, 0.2 * timeout))
        start = time.monotonic()
        hard = start + 2 * self.import_timeout + timeout + grace
        if budget is not None:
            hard = min(hard, start + budget + grace)
        deadline, imports, running = start + timeout, 0, False
        while True:
            message = self._read(process, deadline)
            if isinstance(message, dict) and "event" in message:
                if message["event"] == "importing" and imports < 2 and not running:
                    imports += 1
                    phase, current_module = "import", str(message.get("module"))[:200]
                    limit = min(self.import_timeout, hard - time.monotonic())
                    deadline = min(time.monotonic() + self.import_timeout, hard)
                elif message["event"] == "running" and not running:
                    phase, running = "run", True
                    deadline, limit = min(time.monotonic() + timeout + grace, hard), timeout
                elif message["event"] == "stuck" and phase == "run":
                    hang = Hang.from_event(message, self.context or shown)
                continue
            break

        if isinstance(message, dict) and "called" in message:
            self._note_calls(message["called"])
        if isinstance(message, dict) and message.get("restart"):
            self.close()
            self.restarts += 1
        if isinstance(message, dict) and message.get("ok") is True:
            return message.get("value")
        output = process.output.since(mark)
        if isinstance(message, dict) and message.get("kind") == "time_limit":
            stuck = message.get("stuck")
            if isinstance(stuck, dict):
                hang = Hang.from_event(stuck, self.context or shown) or hang
            text = f"{shown} {self._out_of_time(limit, hang)}"
            if output.strip():
                text += f"\nYour code printed:\n{output}"
            raise CallFailed(text, "timeout")
        if isinstance(message, dict):
            raise CallFailed(self._explain(shown, message, output), str(message.get("kind")))

        # The worker overran, died or talked nonsense: it is killed and replaced next time.
        returncode = None
        if message == "eof":  # give a dying worker a moment to report how it ended
            try:
                returncode = process.popen.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self.close()
        self.restarts += 1
        if message == "timeout":
            what = f"did not finish within {limit:g} s"
            if phase == "import":
                what = (
                    f"importing {current_module}.py did not finish within {limit:g} s "
                    "(is there an infinite loop or long work at module level? "
                    "Put it under `if __name__ == \"__main__\":`)"
                )
                self.broken[module] = what
            elif phase == "run":
                what = self._out_of_time(limit, hang)
            text, kind = f"{shown} {what}", "timeout"
        elif message == "memory":
            text = (f"{shown} used more than {self.memory_limit / 2**30:.1f} GiB of memory "
                    "and was stopped")
            kind = "memory"
        elif message == "eof":
            ending = describe_exit(returncode, self.memory_limit)
            text = f"{shown}: the process running your code {ending}"
            if phase == "import":
                self.broken[module] = f"importing {current_module}.py killed the process"
            kind = "crash"
        else:
            why = f" ({message})" if isinstance(message, Unreadable) else ""
            text = f"{shown}: the worker sent back a message that could not be read{why}"
            kind = "garbled"
        if output.strip():
            text += f"\nLast output:\n{output}"
        raise CallFailed(text, kind)

    def _note_calls(self, called: Any) -> None:
        """Add the worker's record of the functions a call ran to `self.called`, keeping
        only well-formed entries (the worker caps it at 100 names)."""
        if type(called) is not list:
            return
        for entry in called[:wire.MAX_RECORDED]:
            if not (type(entry) is list and len(entry) == 2 and type(entry[0]) is str
                    and type(entry[1]) is bool and len(entry[0]) <= wire.MAX_NAME
                    and _FUNCTION_NAME.fullmatch(entry[0])):
                continue
            name, direct = entry
            if name in self.called:
                self.called[name] = self.called[name] or direct
            elif len(self.called) < MAX_CALLED:
                self.called[name] = direct

    def _out_of_time(self, limit: float, hang: Hang | None) -> str:
        """What to say of a call that ran out of time; puts the function on a leash."""
        what = f"did not finish within {limit:g} s (an infinite loop, or much slower than needed?)"
        if hang is not None:
            what += f". When it was stopped it was running {hang.name} ({hang.place})"
            if (hang.function not in self.hangs and len(self.hangs) < MAX_LEASHES
                    and wire.platform_name() != "win32"):  # no timer there to hold a leash
                self.hangs[hang.function] = hang
                what += f". From now on every call to {hang.name} is stopped after {self.leash:g} s"
        return what

    def _explain(self, shown: str, message: dict, output: str) -> str:
        kind = message.get("kind")
        where = f" ({message['where']})" if message.get("where") else ""
        error = f"{message.get('type')}: {message.get('message', '')}".rstrip(": ")
        if message.get("phase") == "import":
            module = shown.partition(".")[0].partition("(")[0]
            if message.get("type") == "SyntaxError":
                reason = f"{module}.py has a syntax error{where}: {message.get('message')}"
            else:
                reason = f"importing {module}.py raised {error}{where}"
            self.broken[module.partition(".")[0]] = reason
            text = f"{shown} could not run: {reason}"
        elif kind == "missing":
            text = (
                f"{shown}: `{message.get('name')}` is not defined in your file "
                "(was it renamed or deleted?)"
            )
        elif kind == "not_implemented":
            origin = message.get("where") or "your code"
            return f"{shown}: not implemented yet ({origin} raises NotImplementedError)"
        elif kind == "leash":
            hang = self.hangs.get(str(message.get("name")))
            name = hang.name if hang else str(message.get("name")).partition(":")[2]
            earlier = f" in {hang.during} (at {hang.place})" if hang else ""
            text = (
                f"{shown}: {name} ran for {self.leash:g} s without finishing and was stopped. "
                f"It ran out of time earlier{earlier}, so from then on each call to it gets "
                f"{self.leash:g} s"
            )
        elif kind == "exit":
            text = f"{shown} called sys.exit({message.get('message')}){where}; remove that call"
        elif kind == "memory":
            text = (
                f"{shown} ran out of memory (limit {self.memory_limit / 2**30:.1f} GiB): "
                f"{error}{where}"
            )
        elif kind == "result":
            text = f"{shown} returned something that cannot be graded: {message.get('message')}"
        else:
            text = f"{shown} raised {error}{where}"
            if message.get("type") == "PermissionError":
                text += (". Submitted code runs in a sandbox: it may not start processes, signal "
                         "other processes, or use files outside its working folder")
        if message.get("traceback"):
            text += f"\nTraceback (your code, most recent call last):\n{message['traceback']}"
        if output.strip():
            text += f"\nYour code printed:\n{output}"
        return text
