"""Expected observations: the reference run live (with a cache), or stored snapshots.

An observation is keyed by what was asked (`call` or `probe`, the target, the arguments), so
the same input gives the same key on the grader and in the student release. A snapshot also
keeps the arguments it was recorded for (`KEY.inputs`): on another CPU a test's draws are the
same (draws.py), but an input the test computes from them (a softmax, a matrix product) may
differ in its last bits and so in its key; such an input finds the snapshot recorded for the
nearest arguments of the same call, when they differ by no more than a few units in the last
place (`near`). The live cache
sits in a folder named after a hash of the reference and probe sources, so editing either
invalidates it; a batch regrade at one seed computes each reference observation once.

Every cache entry is sealed with a secret key the worker never sees: its file name is a keyed
hash of the observation's key, its content encrypted and authenticated, so a worker that can
reach the cache (no Landlock, same user) can neither find an expected observation in it nor
plant one; an entry that does not verify is discarded and recomputed. The key lives in the
cache folder (mode 0600) when workers cannot read that folder, and only in the grading
process's memory otherwise (see `cache_key`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import torch

from autograder.engine import worker as wire
from autograder.engine.runner import CallFailed, Implementation


class ReferenceUnavailable(RuntimeError):
    """The expected observation could not be produced; not the student's fault."""


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        if tensor.dtype == torch.bool:
            tensor = tensor.to(torch.uint8)
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__[0]}{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or isinstance(value, (bool, int, float, str)):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    else:
        module = type(value).__module__
        if module.startswith("numpy"):
            _feed(digest, torch.as_tensor(value))
        else:
            raise TypeError(f"cannot fingerprint an argument of type {type(value).__name__}")


def observation_key(kind: str, target: str, args: tuple, kwargs: dict) -> str:
    digest = hashlib.sha256(f"{kind}:{target}".encode())
    _feed(digest, list(args))
    _feed(digest, kwargs)
    return digest.hexdigest()[:32]


def plain_arguments(value: Any) -> Any:
    """`value` (a call's arguments) as data a snapshot can store: numpy values become tensors."""
    if isinstance(value, dict):
        return {key: plain_arguments(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_arguments(item) for item in value)
    if type(value).__module__.startswith("numpy"):
        return torch.as_tensor(value)
    return value


# Two arguments are the same input computed by another CPU's kernels when they differ by at
# most this many units in the last place of their dtype, taken at the tensor's largest entry:
# a softmax or a matrix product of the same draws differs by a few; another draw by about 2**23
# (float32) or 2**52 (float64) such units.
NEAR_ULPS = 64


def near(local: Any, recorded: Any) -> bool:
    """Whether `local` arguments are `recorded` ones up to the last bits of computed floats."""
    if isinstance(recorded, torch.Tensor):
        if not isinstance(local, torch.Tensor) or (local.shape, local.dtype) != (
                recorded.shape, recorded.dtype):
            return False
        if not recorded.is_floating_point():
            return torch.equal(local, recorded)
        finite = recorded.isfinite()
        if not torch.equal(finite, local.isfinite()) or not torch.equal(
                local[~finite], recorded[~finite]):
            return False
        if not finite.any():
            return True
        difference = (local[finite] - recorded[finite]).abs().max()
        scale = recorded[finite].abs().max()
        return bool(difference <= NEAR_ULPS * torch.finfo(recorded.dtype).eps * scale)
    if isinstance(recorded, dict):
        return (isinstance(local, dict) and local.keys() == recorded.keys()
                and all(near(local[key], recorded[key]) for key in recorded))
    if isinstance(recorded, (list, tuple)):
        return (type(local) is type(recorded) and len(local) == len(recorded)
                and all(near(a, b) for a, b in zip(local, recorded, strict=True)))
    if isinstance(recorded, float) and type(local) is float:
        scale = NEAR_ULPS * torch.finfo(torch.float64).eps * abs(recorded)
        return abs(local - recorded) <= scale
    return type(local) is type(recorded) and local == recorded


def sources_hash(*folders: Path) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.py")):
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


TAG_BYTES = 32
MISSING = object()


NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows, where links need privileges
BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def cache_key(cache_root: Path, *, private: bool) -> bytes:
    """The key that seals `cache_root`'s entries: a fresh one that never leaves this process
    when `private` (the worker could read a key file), else the folder's key file, made
    readable by its owner only."""
    if private:
        return secrets.token_bytes(32)
    path = Path(cache_root) / "key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_FOLLOW | BINARY,
                             0o600)
    except FileExistsError:
        descriptor = -1
    if descriptor >= 0:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(secrets.token_bytes(32))
    descriptor = os.open(path, os.O_RDONLY | NO_FOLLOW | BINARY)
    with os.fdopen(descriptor, "rb") as stream:
        key = stream.read(64)
    if len(key) != 32:  # a key written at the same moment, or damaged: use none of it
        return secrets.token_bytes(32)
    return key


def _keystream(key: bytes, name: str, size: int) -> bytes:
    return hashlib.shake_256(key + name.encode()).digest(size)


def _seal(key: bytes, name: str, payload: bytes) -> bytes:
    stream = _keystream(key, name, len(payload))
    cipher = (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        len(payload), "little")
    return hmac.new(key, name.encode() + cipher, hashlib.sha256).digest() + cipher


def _unseal(key: bytes, name: str, sealed: bytes) -> bytes | None:
    tag, cipher = sealed[:TAG_BYTES], sealed[TAG_BYTES:]
    expected = hmac.new(key, name.encode() + cipher, hashlib.sha256).digest()
    if len(tag) != TAG_BYTES or not hmac.compare_digest(tag, expected):
        return None
    stream = _keystream(key, name, len(cipher))
    return (int.from_bytes(cipher, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        len(cipher), "little")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    os.replace(temporary, path)


def _store(path: Path, value: Any) -> None:
    _write(path, wire.encode(value))


def _load(path: Path) -> Any:
    return wire.decode(path.read_bytes())


class ReferenceObservations:
    """The `reference` fixture: `.call` and `.probe` as on an Implementation, giving expected
    observations."""

    def __init__(
        self,
        *,
        live: Implementation | None = None,
        cache_dir: Path | None = None,
        snapshot_dir: Path | None = None,
        record_dir: Path | None = None,
        seed_hint: str = "",
        cache_key: bytes = b"",
    ):
        self.live = live
        self.cache_dir = cache_dir
        self.cache_key = cache_key or secrets.token_bytes(32)
        self.snapshot_dir = snapshot_dir
        self.record_dir = record_dir
        self.seed_hint = seed_hint
        self._recorded: list[tuple[str, dict]] | None = None  # the snapshots' arguments

    def call(self, target: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return self._observe("call", target, args, kwargs, timeout)

    def probe(self, target: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return self._observe("probe", target, args, kwargs, timeout)

    def _observe(self, kind: str, target: str, args: tuple, kwargs: dict, timeout: float | None):
        key = observation_key(kind, target, args, kwargs)
        if self.snapshot_dir is not None:
            path = self.snapshot_dir / f"{key}.pt"
            if not path.is_file():
                path = self._nearest(kind, target, plain_arguments([list(args), kwargs]))
            if path is None:
                raise ReferenceUnavailable(
                    f"there is no stored expected output for {target} on this input. Snapshots "
                    f"exist for the public tests at {self.seed_hint or 'the release seed'}; "
                    "run `make test` without changing the seed."
                )
            return _load(path)
        if self.live is None:
            raise ReferenceUnavailable("neither the reference nor snapshots are available")
        name = hmac.new(self.cache_key, key.encode(), hashlib.sha256).hexdigest()[:32]
        cached = self.cache_dir / f"{name}.sealed" if self.cache_dir else None
        value = self._cached(cached, name) if cached is not None else MISSING
        if value is MISSING:
            call = self.live.call if kind == "call" else self.live.probe
            try:
                value = call(target, *args, timeout=timeout, **kwargs)
            except CallFailed as failure:
                raise ReferenceUnavailable(f"the reference failed: {failure}") from None
            if cached is not None:
                _write(cached, _seal(self.cache_key, name, wire.encode(value)))
        if self.record_dir is not None:
            _store(self.record_dir / f"{key}.pt", value)
            _store(self.record_dir / f"{key}.inputs", {
                "kind": kind, "target": target,
                "arguments": plain_arguments([list(args), kwargs])})
        return value

    def _nearest(self, kind: str, target: str, arguments: list) -> Path | None:
        """The snapshot of the same call recorded for arguments `near` these, if any."""
        if self._recorded is None:
            self._recorded = []
            for path in sorted(self.snapshot_dir.glob("*.inputs")):
                try:
                    self._recorded.append((path.stem, _load(path)))
                except Exception:  # an unreadable record matches nothing
                    continue
        for key, recorded in self._recorded:
            if ((recorded.get("kind"), recorded.get("target")) == (kind, target)
                    and near(arguments, recorded.get("arguments"))):
                path = self.snapshot_dir / f"{key}.pt"
                if path.is_file():
                    return path
        return None

    def _cached(self, path: Path, name: str) -> Any:
        """The sealed entry's value; MISSING when there is none, or it does not verify (then
        it is discarded)."""
        try:
            sealed = path.read_bytes()
        except OSError:
            return MISSING
        payload = _unseal(self.cache_key, name, sealed)
        if payload is None:
            path.unlink(missing_ok=True)
            return MISSING
        return wire.decode(payload)

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
