"""The worker: the only process that runs student (or reference) code.

The trusted grading process starts it as

    python -I -S worker.py --impl DIR --probes DIR --scratch DIR --request-fd R --response-fd W \
        --site-packages DIR ...

and sends it requests ("call basics.softmax with these arguments"). For each request the
worker imports what is needed, runs it, turns the result into plain data (tensors, numbers,
strings and containers of them) and sends it back. It never sees expected values, tolerances
or the results file, and it imports nothing from the `autograder` package: `-I -S` keep the
repository off `sys.path` (even when it is installed in editable mode), so the
implementation folder and the installed third-party packages are all it can import.

Hangs: at a call's time limit a timer signal raises `TimeLimit` in it, and the worker
answers with the function of the implementation it was stuck in, taken from the traceback;
the worker goes on serving, so a hang costs no restart. Code that swallows the exception, or
that is stuck in one long C call, is killed by the trusted side a little later; for that case
a watchdog thread reports, shortly before the limit, which function the main thread is running
(a "stuck" event). The trusted side keeps the name, and every later request carries it as a
*leash*: the function is wrapped so that a call to it that runs longer than the leash raises
`LeashExpired`, instead of costing the test's whole limit again. A function that hung on some
inputs still passes the tests where it is quick.

Messages are length-prefixed `torch.save` payloads. The trusted side decodes them with
`torch.load(weights_only=True)`, which cannot execute code, so a hostile worker can at most
lie about its own result. The trusted side also owns every hard deadline: it kills the
worker's process group when a request overruns (the worker's own stop did not work) and starts
a fresh worker for the next one.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # Started with -I -S: no site-packages and no .pth files, so an editable install of this
    # repository is invisible. The grader passes the site-packages folders to use instead.
    for _index, _argument in enumerate(sys.argv[:-1]):
        if _argument == "--site-packages":
            sys.path.append(sys.argv[_index + 1])

import argparse  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import linecache  # noqa: E402
import os  # noqa: E402
import queue  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

try:
    import resource
except ImportError:  # Windows
    resource = None

HEADER = struct.Struct("!Q")
EXIT_LOST_CONNECTION = 70  # the worker's pipes to the grader were closed under it
MAX_MESSAGE_BYTES = 256 * 2**20
MAX_DEPTH = 32
MAX_OBJECTS = 200_000  # items in one message; the trusted side enforces it again
# The repository's tests make a Linux worker (and the trusted side, see runner.py) answer as
# another operating system does: "darwin" (setrlimit(RLIMIT_AS) refused, no prctl, no
# seccomp or Landlock) or "win32" (no `resource` module, no interval timers, no process
# groups, no inherited descriptors: the channel is the worker's standard input and output).
SIMULATE_PLATFORM = "AUTOGRADER_SIMULATE_PLATFORM"
PLATFORMS = ("darwin", "win32")


def platform_name() -> str:
    """The operating system to behave as: sys.platform, or the one simulated."""
    simulated = os.environ.get(SIMULATE_PLATFORM, "")
    return simulated if simulated in PLATFORMS else sys.platform


# Whether calls are stopped by an interval timer in the worker (SIGALRM); where there is none
# (Windows) the trusted side's deadline stops them, at the cost of a new worker.
_timers = hasattr(signal, "setitimer")


# ----------------------------------------------------------------------------- framing
# These helpers are shared with the trusted side, which imports this module.


def write_message(fd: int, payload: bytes) -> None:
    data = HEADER.pack(len(payload)) + payload
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_exactly(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def encode(obj: Any, save=torch.save) -> bytes:
    buffer = io.BytesIO()
    save(obj, buffer)
    return buffer.getvalue()


def decode(data: bytes) -> Any:
    """Decode a message without executing code (plain tensors and containers only)."""
    return torch.load(io.BytesIO(data), weights_only=True)


# ----------------------------------------------------------------------------- plain data


class UnsendableResult(Exception):
    pass


def to_plain(value: Any, where: str = "the result", depth: int = 0,
             count: list[int] | None = None) -> Any:
    """Convert a returned value to plain data, or explain why it cannot be sent back."""
    count = [0] if count is None else count
    count[0] += 1
    if count[0] > MAX_OBJECTS:
        raise UnsendableResult(f"the result holds more than {MAX_OBJECTS} items (numbers, "
                               "strings, tensors, lists...); return tensors instead of long "
                               "lists of numbers")
    if depth > MAX_DEPTH:
        raise UnsendableResult(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.is_meta or value.is_quantized:
            raise UnsendableResult(f"{where} is a sparse, meta or quantized tensor; return an "
                                   "ordinary (dense) tensor")
        tensor = value.detach()
        if type(tensor) is not torch.Tensor:
            tensor = torch.Tensor._make_subclass(torch.Tensor, tensor)
        tensor = tensor.cpu().clone()
        if type(tensor) is not torch.Tensor:
            raise UnsendableResult(f"{where} is a tensor subclass that cannot be sent back")
        return tensor
    module = type(value).__module__
    if module == "numpy" or module.startswith("numpy."):
        import numpy as np

        if isinstance(value, np.generic):
            return to_plain(value.item(), where, depth + 1, count)
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise UnsendableResult(f"{where} is a numpy array of Python objects")
            return torch.from_numpy(np.ascontiguousarray(value).copy())
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        items = [to_plain(item, f"{where}[{i}]", depth + 1, count)
                 for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        plain = {}
        for key, item in value.items():
            if type(key) not in (str, int):
                raise UnsendableResult(f"{where} has a dictionary key of type {type(key).__name__}")
            plain[key] = to_plain(item, f"{where}[{key!r}]", depth + 1, count)
        return plain
    raise UnsendableResult(
        f"{where} is a {type(value).__name__}; expected tensors, numpy arrays, numbers, "
        "strings, None, or lists/tuples/dicts of those"
    )


# ----------------------------------------------------------------------------- errors


def student_frames(exc: BaseException, impl: Path) -> list[traceback.FrameSummary]:
    frames = traceback.extract_tb(exc.__traceback__)
    root = str(impl)
    return [frame for frame in frames if frame.filename.startswith(root)]


def describe_exception(exc: BaseException, impl: Path) -> dict[str, Any]:
    stopped = stop_in_chain(exc)
    if isinstance(stopped, TimeLimit):
        stack = list(traceback.walk_tb(exc.__traceback__))
        answer = {"ok": False, "kind": "time_limit", "type": "TimeLimit",
                  "stuck": nameable_frame(reversed(stack), impl)}
        if any(frame.f_code.co_filename.startswith("<frozen importlib") for frame, _ in stack):
            answer["restart"] = "stopped in the middle of an import"
        return answer
    frames = student_frames(exc, impl)
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{Path(exc.filename).name}, line {exc.lineno}"
        if exc.text:
            where += f": {exc.text.strip()}"
    elif frames:
        last = frames[-1]
        where = f"{Path(last.filename).name}, line {last.lineno}, in {last.name}"
    lines = [
        f'  {Path(f.filename).name}, line {f.lineno}, in {f.name}: {(f.line or "").strip()}'
        for f in frames[-6:]
    ]
    if isinstance(stopped, LeashExpired):
        return {"ok": False, "kind": "leash", "type": "LeashExpired", "name": stopped.name,
                "message": str(stopped), "where": where, "traceback": "\n".join(lines)}
    if isinstance(exc, SystemExit):
        kind = "exit"
    elif isinstance(exc, NotImplementedError):
        kind = "not_implemented"
    elif isinstance(exc, MemoryError) or "can't allocate memory" in str(exc):
        kind = "memory"
    else:
        kind = "exception"
    return {
        "ok": False,
        "kind": kind,
        "type": type(exc).__name__,
        "message": str(exc)[:2000],
        "where": where,
        "traceback": "\n".join(lines),
    }


# ----------------------------------------------------------------------------- hangs


class LeashExpired(BaseException):
    """A function that hung in an earlier call ran past its leash. A BaseException, so that
    `except Exception` in the implementation does not swallow it."""

    def __init__(self, name: str, seconds: float):
        super().__init__(f"{name} ran for {seconds:g} s without finishing")
        self.name = name
        self.seconds = seconds


class TimeLimit(BaseException):
    """The requested call itself ran past its time limit."""


def stop_in_chain(exc: BaseException | None) -> BaseException | None:
    """The TimeLimit or LeashExpired behind an exception, if the implementation wrapped one
    in its own."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (TimeLimit, LeashExpired)):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


# (name, seconds, deadline), outermost first; the name None stands for the call's own limit
_leash_stack: list[tuple[str | None, float, float]] = []


def _set_leash_timer() -> None:
    if _leash_stack:
        remaining = min(deadline for _, _, deadline in _leash_stack) - time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, max(remaining, 1e-3))
    else:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _on_leash_timer(signum: int, frame: Any) -> None:
    now = time.monotonic()
    for name, seconds, deadline in _leash_stack:
        if deadline <= now:
            if name is None:
                raise TimeLimit(f"ran past its time limit of {seconds:g} s")
            raise LeashExpired(name, seconds)
    _set_leash_timer()


class deadline:
    """Raise in the block after `seconds` (none if seconds is None): TimeLimit for the call's
    own limit (name None), LeashExpired(name) for a leash. All share one timer."""

    def __init__(self, name: str | None, seconds: float | None):
        self.name, self.seconds, self.entry = name, seconds, None

    def __enter__(self) -> None:
        if self.seconds and _timers:
            signal.signal(signal.SIGALRM, _on_leash_timer)  # the implementation may replace it
            self.entry = (self.name, self.seconds, time.monotonic() + self.seconds)
            _leash_stack.append(self.entry)
            _set_leash_timer()

    def __exit__(self, *exc_info: object) -> None:
        if self.entry in _leash_stack:
            _leash_stack.remove(self.entry)
            _set_leash_timer()


def leashed(function: Any, name: str, seconds: float) -> Any:
    """`function`, stopped with LeashExpired(name) when a call runs longer than `seconds`."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with deadline(name, seconds):
            return function(*args, **kwargs)

    wrapper.__grader_leash__ = name
    return wrapper


def implementation_modules(impl: Path) -> list[types.ModuleType]:
    root = str(impl) + os.sep
    return [
        module for module in list(sys.modules.values())
        if isinstance(getattr(module, "__file__", None), str) and module.__file__.startswith(root)
    ]


def apply_leashes(impl: Path, leashes: dict[str, float]) -> None:
    """Wrap each named function ("module:Qual.name") of the implementation, where it is
    defined and wherever another of its modules imported it."""
    modules = implementation_modules(impl)
    for name, seconds in leashes.items():
        module_name, _, qualname = name.partition(":")
        owner: Any = sys.modules.get(module_name)
        if owner not in modules:
            continue
        *path, attribute = qualname.split(".")
        for part in path:
            owner = vars(owner).get(part) if isinstance(owner, (type, types.ModuleType)) else None
        if not isinstance(owner, (type, types.ModuleType)):
            continue
        raw = vars(owner).get(attribute)
        if isinstance(raw, (staticmethod, classmethod)):
            function = raw.__func__
        elif isinstance(raw, types.FunctionType):
            function = raw
        else:
            continue
        if getattr(function, "__grader_leash__", None):
            continue  # already wrapped in this worker
        wrapper = leashed(function, name, float(seconds))
        setattr(owner, attribute, type(raw)(wrapper) if function is not raw else wrapper)
        if isinstance(owner, types.ModuleType):
            for module in modules:
                for key, value in list(vars(module).items()):
                    if value is raw:
                        setattr(module, key, wrapper)


# ----------------------------------------------------------------------------- who called what

MAX_RECORDED = 100  # names sent back per request
MAX_NAME = 200  # characters of each


class CallRecorder:
    """Which functions of the graded modules one request ran, for the hint "fix X first".

    Every plain function defined in a graded module, and every plain function in the
    `__dict__` of a class defined there (`forward`, `__init__`), is replaced by a thin wrapper
    that notes its name ("module:Qual.name") and whether it was called *directly* (from code
    that is not the submission's: the request itself, a probe, torch calling `forward`) or
    only from inside another recorded function. staticmethod, classmethod and property
    objects, lambdas and anything that is not a plain Python function are left alone, and
    whatever cannot be replaced is skipped: the module keeps working either way.

    The record is a claim of the submission's process (its code can reach and rewrite it);
    the trusted side uses it only for a hint appended to a failed test's message, never for
    a verdict or a score."""

    def __init__(self, impl: Path, modules: set[str]):
        self.root = str(impl) + os.sep
        self.modules = modules
        self.done: set[str] = set()
        self.wrappers: dict[int, Any] = {}  # id(original) -> its wrapper
        self.originals: list[Any] = []  # keeps each original alive, so ids stay unique
        self.calls: dict[str, bool] = {}  # name -> called directly at least once
        self.depth = [0]

    def wrap(self, function: types.FunctionType, name: str) -> Any:
        known = self.wrappers.get(id(function))
        if known is not None:
            return known
        calls, depth = self.calls, self.depth

        @functools.wraps(function)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            outer = depth[0]
            if outer == 0:
                calls[name] = True
            elif name not in calls:
                calls[name] = False
            depth[0] = outer + 1
            try:
                return function(*args, **kwargs)
            finally:
                depth[0] = outer

        recorded.__grader_recorded__ = name
        self.wrappers[id(function)] = recorded
        self.originals.append(function)
        return recorded

    def _wrappable(self, value: Any, module: str) -> bool:
        return (type(value) is types.FunctionType and value.__module__ == module
                and "<" not in value.__qualname__
                and not getattr(value, "__grader_recorded__", None)
                and not getattr(value, "__grader_leash__", None))

    def instrument(self, others: list[Any]) -> None:
        """Wrap the functions of every graded module imported since the last call, and point
        the names that other graded modules and `others` (the probes) bound to them at the
        wrappers."""
        fresh = []
        for module_name in self.modules - self.done:
            module = sys.modules.get(module_name)
            file = getattr(module, "__file__", None)
            if not (isinstance(module, types.ModuleType) and isinstance(file, str)
                    and file.startswith(self.root)):
                continue
            self.done.add(module_name)
            fresh.append(module)
            for key, value in list(vars(module).items()):
                try:
                    if self._wrappable(value, module_name):
                        name = f"{module_name}:{value.__qualname__}"[:MAX_NAME]
                        setattr(module, key, self.wrap(value, name))
                    elif isinstance(value, type) and value.__module__ == module_name:
                        self._instrument_class(value, module_name)
                except Exception:  # noqa: BLE001 - a module or class that refuses: skip it
                    continue
        if not fresh:
            return
        for module in [*(sys.modules.get(name) for name in self.done), *others]:
            if not isinstance(module, types.ModuleType):
                continue
            try:
                for key, value in list(vars(module).items()):
                    wrapper = self.wrappers.get(id(value))
                    if wrapper is not None and wrapper.__wrapped__ is value:
                        setattr(module, key, wrapper)
            except Exception:  # noqa: BLE001
                continue

    def _instrument_class(self, cls: type, module_name: str) -> None:
        for key, value in list(vars(cls).items()):
            if self._wrappable(value, module_name):
                name = f"{module_name}:{cls.__qualname__}.{key}"[:MAX_NAME]
                try:
                    setattr(cls, key, self.wrap(value, name))
                except Exception:  # noqa: BLE001 - a metaclass that refuses
                    continue

    def start(self) -> None:
        self.calls.clear()
        self.depth[0] = 0

    def record(self, dict_: type = dict, str_: type = str) -> list[list[Any]]:
        """The request's record as plain data, bounded (the submission may have rewritten
        it: only a real dict of real strings is read)."""
        calls = self.calls
        if type(calls) is not dict_:
            return []
        return [[key[:MAX_NAME], value is True] for key, value in list(calls.items())[:MAX_RECORDED]
                if type(key) is str_]


class Watchdog:
    """Reports, shortly before a call's time limit, which function of the implementation the
    main thread is running. It needs the GIL: code stuck inside one C call that never releases
    it (a huge `sum(range(...))`) goes unreported, and the call simply times out."""

    def __init__(self, impl: Path, report: Any):
        self.impl = impl
        self._report = report
        self._main = threading.main_thread().ident
        self._frames = sys._current_frames  # taken out of sys before student code runs
        self._condition = threading.Condition()
        self._deadline: float | None = None
        threading.Thread(target=self._run, name="grader-watchdog", daemon=True).start()

    def arm(self, seconds: float) -> None:
        with self._condition:
            self._deadline = time.monotonic() + seconds
            self._condition.notify()

    def disarm(self) -> None:
        # Holding the condition's lock while reporting means that once this returns, no
        # report about the finished call can follow its response.
        with self._condition:
            self._deadline = None

    def _run(self) -> None:
        while True:
            with self._condition:
                if self._deadline is None:
                    self._condition.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._condition.wait(remaining)
                    continue
                self._deadline = None
                where = self.where()
                if where:
                    try:
                        self._report({"event": "stuck", **where})
                    except OSError:
                        return

    def where(self) -> dict[str, Any] | None:
        """Where the main thread is, as `nameable_frame` says."""
        frames, frame = [], self._frames().get(self._main)
        while frame is not None:
            frames.append((frame, frame.f_lineno))
            frame = frame.f_back
        return nameable_frame(frames, self.impl)


def nameable_frame(frames: Any, impl: Path) -> dict[str, Any] | None:
    """Of (frame, line) pairs, innermost first: the first that runs a function of the
    implementation that can be named from its module (not a lambda, a nested function or
    module code), as "module:Qual.name" with its file, line and source line."""
    root = str(impl) + os.sep
    for frame, lineno in frames:
        code = frame.f_code
        if code.co_filename.startswith(root) and "<" not in code.co_qualname:
            relative = Path(code.co_filename[len(root):])
            module = ".".join(relative.with_suffix("").parts)
            line = linecache.getline(code.co_filename, lineno).strip()
            return {"function": f"{module}:{code.co_qualname}", "file": relative.name,
                    "line": lineno, "code": line[:200]}
    return None


# ----------------------------------------------------------------------------- the loop


class Worker:
    """Answers requests on the main thread, where student code runs. It never touches the
    answer channel: each answer goes, as bytes, to the courier thread (see `courier`)."""

    def __init__(self, impl: Path, probes: Path | None, post: Any, forwarded: Any,
                 recorded: set[str] | None = None):
        self.impl = impl
        self.probes = probes
        # The graded modules whose functions' calls are recorded (none for the reference).
        self.recorder = CallRecorder(impl, recorded) if recorded else None
        # Keep our own references: student code may replace torch.save and friends.
        self._save = torch.save
        self._post = post
        self._forwarded = forwarded  # a lock the courier releases once it sent a "sync" event
        self._probe_modules: dict[str, Any] = {}
        self.watchdog = Watchdog(impl, self.send)

    def send(self, message: dict[str, Any], sync: bool = False) -> None:
        """An event (importing, running, stuck): the trusted side only uses it for messages
        and never lets it move a deadline past the request's absolute one. With `sync`, wait
        (a second at most) until the courier has sent it: code that then holds the GIL in one
        long C call would keep the courier from ever sending it."""
        if not sync:
            self._post(("event", encode(message, self._save)))
            return
        owned = self._forwarded.acquire(timeout=1.0)
        self._post(("sync", encode(message, self._save)))
        if owned and self._forwarded.acquire(timeout=1.0):
            self._forwarded.release()

    def load_probe_module(self, part: str) -> Any:
        if part not in self._probe_modules:
            path = self.probes / f"{part}.py" if self.probes else None
            if path is None or not path.is_file():
                raise LookupError(f"no probe file for part {part!r}")
            spec = importlib.util.spec_from_file_location(f"_grader_probes_{part}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._probe_modules[part] = module
        return self._probe_modules[part]

    def import_target_module(self, request: dict[str, Any]) -> Any:
        module_name = request["target"].partition(".")[0]
        module = None
        if (self.impl / f"{module_name}.py").is_file():
            self.send({"event": "importing", "module": module_name}, sync=True)
            module = importlib.import_module(module_name)
        elif request["kind"] in ("call", "names"):
            raise ModuleNotFoundError(f"no file {module_name}.py")
        if request["kind"] == "probe":
            self.send({"event": "importing", "module": f"probes/{module_name}"}, sync=True)
            module = self.load_probe_module(module_name)
        if self.recorder is not None:  # before any request of the submission's code runs
            self.recorder.instrument(list(self._probe_modules.values()))
        return module

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            module = self.import_target_module(request)
        except BaseException as exc:  # noqa: BLE001 - anything a student file does at import
            return {**describe_exception(exc, self.impl), "phase": "import"}
        if request["kind"] == "names":
            return {"ok": True, "value": defined_names(module)}
        try:
            apply_leashes(self.impl, request.get("leashes") or {})
        except Exception:  # noqa: BLE001 - a module the implementation broke; no leash then
            pass
        function = module
        for name in request["target"].partition(".")[2].split("."):
            if not hasattr(function, name):
                return {"ok": False, "kind": "missing", "type": "AttributeError", "name": name}
            function = getattr(function, name)
        self.send({"event": "running"}, sync=True)
        limit = request.get("limit")
        if limit:  # report where the call is a little before its limit, in case it cannot
            self.watchdog.arm(max(limit - min(1.0, 0.1 * limit), 0.05))  # be interrupted
        called = {}
        if self.recorder is not None:
            self.recorder.start()
        try:
            with deadline(None, limit):
                result = function(*request["args"], **request["kwargs"])
        except BaseException as exc:  # noqa: BLE001 - sys.exit included, on purpose
            response = describe_exception(exc, self.impl)
        else:
            response = None
        finally:
            self.watchdog.disarm()
            flush_stdio()
            if self.recorder is not None:
                try:
                    called = {"called": self.recorder.record()}
                except Exception:  # noqa: BLE001 - a record the submission broke: none
                    pass
        if response is not None:
            return {**response, **called}
        try:
            return {"ok": True, "value": to_plain(result), **called}
        except UnsendableResult as exc:
            return {"ok": False, "kind": "result", "type": "UnsendableResult",
                    "message": str(exc), **called}

    def answer(self, data: bytes) -> bytes:
        """The encoded response to one encoded request."""
        try:
            request = decode(data)
        except Exception as exc:  # noqa: BLE001 - student code may have broken torch.load
            request, response = None, {"ok": False, "kind": "result", "type": type(exc).__name__,
                                       "message": f"the request could not be read: {exc}"[:2000]}
        if request is not None:
            threads_before = threading.active_count()
            response = self.handle(request)
            if threading.active_count() > threads_before:
                # Threads the call left running could change later calls: start afresh.
                response["restart"] = "the call left threads running"
        if cancel_timers():
            response["restart"] = "the call left a timer (signal.alarm / setitimer) set"
        try:
            payload = encode(response, self._save)
        except BaseException as exc:  # noqa: BLE001
            payload = encode({"ok": False, "kind": "result", "type": type(exc).__name__,
                              "message": f"the result could not be serialised: {exc}"[:2000]},
                             self._save)
        if len(payload) > MAX_MESSAGE_BYTES:
            payload = encode({"ok": False, "kind": "result", "type": "ResultTooLarge",
                              "message": f"the result is {len(payload) / 2**20:.0f} MiB; "
                              f"at most {MAX_MESSAGE_BYTES // 2**20} MiB can be sent back"},
                             self._save)
        return payload


TAMPERED = {"ok": False, "kind": "result", "type": "ChannelTampering",
            "message": "the call sent answers of its own through the grader's channel",
            "restart": "the call tampered with the grader's channel"}


def courier(request_fd: int, response_fd: int, inbox_put: Any, outbox_get: Any,
            outbox_empty: Any, main_frame: Any, park_line: int, frames: Any,
            tampered: bytes, forwarded: Any) -> None:
    """The thread that owns the answer channel. Student code never runs in it: it looks up
    no global name and calls no Python function once started, only the C functions it
    captured first, so replacing a function or a module attribute does not reach it; and the
    threads that run student code cannot write to the channel (sandbox.guard_channel). It
    sends the first message (ready), passes each request to the main thread, forwards events,
    and sends the answer once the main thread is back where it waits for the next request
    (`main_frame` at `park_line`): exactly one answer must be waiting then, or the call
    handed over answers of its own and gets `tampered` instead. After a "sync" event it
    releases `forwarded` (see Worker.send)."""
    read, write, pack, unpack, size = os.read, os.write, HEADER.pack, HEADER.unpack, HEADER.size
    sleep, monotonic, wanted = time.sleep, time.monotonic, threading.main_thread().ident
    exit_, lost, min_, len_, type_ = os._exit, EXIT_LOST_CONNECTION, min, len, type
    tuple_, bytes_, str_, join, unlocked = tuple, bytes, str, b"".join, RuntimeError
    answer = outbox_get()[1]  # ready
    while True:
        data = pack(len_(answer)) + answer
        try:
            while data:
                data = data[write(response_fd, data):]
        except OSError:
            exit_(lost)
        chunks, need, header = [], size, True
        while need:
            chunk = read(request_fd, min_(need, 1 << 20))
            if not chunk:
                inbox_put(None)
                return
            chunks.append(chunk)
            need -= len_(chunk)
            if header and not need:
                (need,), chunks, header = unpack(join(chunks)), [], False
        inbox_put(join(chunks))
        while True:
            item = outbox_get()
            if not (type_(item) is tuple_ and len_(item) == 2 and type_(item[0]) is str_
                    and type_(item[1]) is bytes_):
                answer = tampered
            elif item[0] == "event" or item[0] == "sync":
                if len_(item[1]) <= 65536:
                    data = pack(len_(item[1])) + item[1]
                    try:
                        while data:
                            data = data[write(response_fd, data):]
                    except OSError:
                        exit_(lost)
                if item[0] == "sync":
                    try:
                        forwarded()
                    except unlocked:  # not held: a "sync" the worker did not send
                        pass
                continue
            else:
                answer = item[1] if item[0] == "done" else tampered
            waited = monotonic()
            while True:  # until the main thread waits for the next request
                frame = frames().get(wanted)
                if frame is main_frame and frame.f_lineno == park_line:
                    break
                if monotonic() - waited > 3600:
                    exit_(lost)
                sleep(0.0005)
            frame = None
            while not outbox_empty():
                extra = outbox_get()
                if not (type_(extra) is tuple_ and len_(extra) == 2 and type_(extra[0]) is str_
                        and (extra[0] == "event" or extra[0] == "sync")):
                    answer = tampered
            break


def serve(impl: Path, probes: Path | None, request_fd: int, response_fd: int,
          sandbox: str, guard: Any, recorded: set[str] | None = None) -> None:
    """The main thread: start the courier, close the channel to this thread (and to every
    thread started from now on, the watchdog and student threads included), then run each
    request the courier hands over."""
    inbox, outbox, forwarded = queue.SimpleQueue(), queue.SimpleQueue(), threading.Lock()
    tampered = encode(TAMPERED)
    threading.Thread(target=courier, name="grader-courier", daemon=True, args=(
        request_fd, response_fd, inbox.put, outbox.get, outbox.empty, sys._getframe(),
        park_line(), sys._current_frames, tampered, forwarded.release)).start()
    guarded = guard([request_fd, response_fd]) if guard else ""
    release = memory_releaser()
    worker = Worker(impl, probes, outbox.put, forwarded, recorded)
    del sys._current_frames  # student code gets no view of the courier's frames
    answer, inbox_get, outbox_put = worker.answer, inbox.get, outbox.put
    outbox_put(("event", encode({"event": "ready", "pid": os.getpid(),
                                 "sandbox": "; ".join(filter(None, [sandbox, guarded]))})))
    while True:
        data = inbox_get()  # park_line(): where the courier expects this thread to wait
        if data is None:
            return
        outbox_put(("done", answer(data)))
        release()


def memory_releaser() -> Any:
    """A function that hands the memory a call freed back to the system. glibc keeps freed
    blocks (a training's tensors) in its arenas, so without it a worker stays at the peak of
    its heaviest call for the rest of the grading, and lab 3's gradings went past DESIGN.md's
    1 GiB for all processes together (make bench: 1422 MiB, 865 MiB with it). malloc_trim(0)
    returns the free pages. The courier sends the answer once this thread is back where it
    waits, so the trim counts in the call's time: about 0.03 ms after a light call, 10-20 ms
    after one that freed 160 MB. Where there is no glibc (macOS, Windows, musl) it does
    nothing."""
    import ctypes

    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


def park_line() -> int:
    """The line of `serve` where the main thread waits for the next request."""
    import dis

    return next(instruction.positions.lineno for instruction in dis.get_instructions(serve)
                if instruction.opname == "LOAD_FAST" and instruction.argval == "inbox_get")


def defined_names(module: Any) -> dict[str, str]:
    """The module's public names and what each is: "class", "function" or "value"."""
    kinds = {}
    for name, value in list(vars(module).items()):
        if type(name) is not str or name.startswith("_"):
            continue
        if isinstance(value, type):
            kinds[name] = "class"
        elif callable(value):
            kinds[name] = "function"
        else:
            kinds[name] = "value"
    return kinds


def cancel_timers() -> bool:
    """Cancel alarms and interval timers a call left behind; True if there were any."""
    if not _timers:
        return False
    pending = signal.alarm(0) > 0
    for timer in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
        pending = signal.setitimer(timer, 0)[0] > 0 or pending
    return pending


def flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a student may have replaced or closed them
            pass


def limit_resources(memory_bytes: int, file_bytes: int, system: str) -> list[str]:
    """Put the memory, file-size and core-dump limits in place; returns what could not be,
    one phrase each. macOS refuses an address-space limit (setrlimit answers EINVAL, which
    Python raises as ValueError) and Windows has no `resource` module: there the trusted side
    watches the worker's memory instead (runner.MemoryWatch)."""
    if resource is None or system == "win32":
        return ["no memory or file-size limit in the worker (no `resource` module): the grader "
                "watches its memory"]
    missing = []
    if memory_bytes > 0:
        try:
            if system == "darwin":
                raise ValueError("current limit exceeds maximum limit")
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        except (ValueError, OSError):
            missing.append("no address-space limit (this system refuses RLIMIT_AS): the grader "
                           "watches the worker's memory")
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Writing past the file-size limit then fails with an OSError instead of killing us.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return missing


def die_with_parent(system: str) -> list[str]:
    """Have Linux kill this process when the grading process that started it dies, so that a
    grader stopped from outside (a batch timeout, say) leaves no busy worker behind. Returns
    what could not be put in place."""
    parent = os.getppid()
    try:
        import ctypes

        if system != "linux":
            raise AttributeError("prctl")
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the trusted side's kill still applies
        return ["the worker does not die with the grader (no prctl): the grader stops it "
                "when grading ends"]
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    return []


def channel_from_stdio() -> tuple[int, int]:
    """Where descriptors cannot be handed to a child (Windows), the grader talks to the worker
    through its standard input and output: keep those two as the channel, and point the
    standard descriptors elsewhere (input: nothing; output: the error stream, which the
    grader shows as the code's output) so that student prints cannot reach the channel."""
    request_fd, response_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    if hasattr(os, "set_blocking"):
        os.set_blocking(request_fd, True)
    return request_fd, response_fd


def quiet_library_threads() -> None:
    """A call that leaves a thread running costs a restart (a thread could change later
    calls). tqdm starts a monitor thread with its first progress bar, even a disabled one, so
    every training call in a fresh worker looked like that and cost a new worker (a Python
    start and a torch import) each time. Its monitor (which only shortens the refresh of
    stalled bars) is turned off before any submitted code runs; a thread the code starts
    itself still means a restart."""
    try:
        from tqdm import std
    except ImportError:
        return
    std.tqdm.monitor_interval = 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", type=Path, required=True)
    parser.add_argument("--probes", type=Path)
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--request-fd", type=int)
    parser.add_argument("--response-fd", type=int)
    parser.add_argument("--stdio-channel", action="store_true",
                        help="requests on standard input, answers on standard output")
    parser.add_argument("--memory-limit", type=int, default=0)
    parser.add_argument("--file-limit", type=int, default=256 * 2**20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--site-packages", action="append", default=[])
    parser.add_argument("--no-sandbox", action="store_true")
    parser.add_argument("--record-calls", default="",
                        help="comma-separated graded modules whose functions' calls are "
                        "recorded for the trusted side's hints")
    args = parser.parse_args(argv)

    global _timers
    system = platform_name()
    if system != sys.platform:  # simulated: as the repository's tests ask
        _timers = _timers and system != "win32"
        if system == "darwin":  # (a Linux that calls itself win32 cannot import subprocess)
            import sysconfig

            sysconfig.get_config_vars()  # its data module is named after the real platform
            sys.platform = system
    if args.stdio_channel:
        args.request_fd, args.response_fd = channel_from_stdio()
    missing = die_with_parent(system) + limit_resources(args.memory_limit, args.file_limit,
                                                        system)
    if not _timers:
        missing.append("no timer signals: a call that runs out of time costs a new worker")
    torch.set_num_threads(args.threads)
    quiet_library_threads()
    impl = args.impl.resolve()
    sys.path.insert(0, str(impl))
    os.chdir(args.scratch)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - student code must not wait for input
    sandbox, guard = "no sandbox", None
    if system == "win32":
        sandbox = "file-system and process sandbox unavailable on this platform"
    elif not args.no_sandbox:
        spec = importlib.util.spec_from_file_location(
            "_grader_sandbox", Path(__file__).with_name("sandbox.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        readable = [str(impl), *args.site_packages]
        if args.probes:
            readable.append(str(args.probes.resolve()))
        sandbox = module.apply(readable, [str(args.scratch.resolve())])
        guard = module.guard_channel
    if missing:
        sandbox = "; ".join([sandbox, *missing])
    recorded = {name for name in args.record_calls.split(",") if name}
    serve(impl, args.probes, args.request_fd, args.response_fd, sandbox, guard, recorded)


if __name__ == "__main__":
    main()
