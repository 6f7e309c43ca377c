"""Kernel-enforced limits for the worker process (Linux; a no-op elsewhere).

Applied by the worker to itself after its own imports and before any student code runs:

- **Landlock** (Linux >= 5.13, no privileges needed): the file system becomes read-only
  except the worker's scratch folder and /dev, and only the folders the worker needs can be
  read at all (the Python installation, site-packages, system libraries, the implementation
  and the probes). The repository itself, so the reference, the hidden tests, the reference
  cache and the results file, is out of reach, even for a worker running as root. Landlock
  also stops the worker from ptrace-ing or (ABI >= 6) signalling processes outside its
  sandbox, such as the grading process.
- **seccomp**: no new processes (fork, vfork, clone without CLONE_THREAD; clone3 reports
  ENOSYS so that threads fall back to clone). A fork bomb gets EPERM, and nothing can outlive
  the worker to rewrite results after grading.

Each measure is best effort: `apply` returns what it could put in place, and the grader
reports it. This module is loaded by the worker by path; it imports nothing from the package.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys
from collections.abc import Iterable

SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_SCOPE_SIGNAL = 1 << 1

ACCESS_EXECUTE = 1 << 0
ACCESS_WRITE_FILE = 1 << 1
ACCESS_READ_FILE = 1 << 2
ACCESS_READ_DIR = 1 << 3
READ_ACCESS = ACCESS_EXECUTE | ACCESS_READ_FILE | ACCESS_READ_DIR
# Access rights known to each Landlock ABI version (bit i of the mask = right 1 << i).
ABI_ACCESS_BITS = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16, 6: 16, 7: 16}

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
CLONE_THREAD = 0x00010000
NR_CLONE, NR_FORK, NR_VFORK, NR_CLONE3 = 56, 57, 58, 435
EPERM, ENOSYS = 1, 38

SYSTEM_READABLE = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys",
                   "/opt")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock(readable: Iterable[str], writable: Iterable[str]) -> str:
    """Restrict this process's file-system access; returns a description of what was done."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return "file-system sandbox unavailable on this platform"
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        return "file-system sandbox unavailable (no Landlock in this kernel)"
    handled = (1 << ABI_ACCESS_BITS.get(abi, 16)) - 1
    scoped = LANDLOCK_SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("QQQ", handled, 0, scoped) if abi >= 6 else (
        struct.pack("QQ", handled, 0) if abi >= 4 else struct.pack("Q", handled))
    buffer = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, buffer, len(attr), 0)
    if ruleset < 0:
        return f"file-system sandbox failed ({os.strerror(ctypes.get_errno())})"
    try:
        for paths, access in ((readable, READ_ACCESS), (writable, handled)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    # struct landlock_path_beneath_attr is packed: u64 access, s32 fd
                    directory = os.path.isdir(path)
                    allowed = access if directory else access & ~ACCESS_READ_DIR & handled
                    rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed, fd), 12)
                    libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH,
                                 rule, 0)
                finally:
                    os.close(fd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return "file-system sandbox failed (no_new_privs)"
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            return f"file-system sandbox failed ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(ruleset)
    return f"Landlock ABI {abi}" + (", signals scoped" if scoped else "")


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def forbid_new_processes() -> str:
    """Install a seccomp filter that lets threads be created but not processes."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return "process sandbox unavailable on this platform"
    ld_w_abs, jeq_k, jset_k, ret_k = 0x20, 0x15, 0x45, 0x06
    program = b"".join([
        _bpf(ld_w_abs, 0, 0, 4),                                    # 0: A = arch
        _bpf(jeq_k, 1, 0, AUDIT_ARCH_X86_64),                       # 1: x86_64 -> 3
        _bpf(ret_k, 0, 0, SECCOMP_RET_ERRNO | EPERM),               # 2: other ABIs: deny
        _bpf(ld_w_abs, 0, 0, 0),                                    # 3: A = syscall number
        _bpf(jeq_k, 5, 0, NR_FORK),                                 # 4: -> 10 (EPERM)
        _bpf(jeq_k, 4, 0, NR_VFORK),                                # 5: -> 10 (EPERM)
        _bpf(jeq_k, 4, 0, NR_CLONE3),                               # 6: -> 11 (ENOSYS)
        _bpf(jeq_k, 0, 4, NR_CLONE),                                # 7: clone -> 8, else 12
        _bpf(ld_w_abs, 0, 0, 16),                                   # 8: A = low word of flags
        _bpf(jset_k, 3, 0, CLONE_THREAD),                           # 9: a thread -> 13 (allow)
        _bpf(ret_k, 0, 0, SECCOMP_RET_ERRNO | EPERM),               # 10
        _bpf(ret_k, 0, 0, SECCOMP_RET_ERRNO | ENOSYS),              # 11
        _bpf(ret_k, 0, 0, SECCOMP_RET_ALLOW),                       # 12
        _bpf(ret_k, 0, 0, SECCOMP_RET_ALLOW),                       # 13
    ])
    count = len(program) // 8
    filters = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HxxxxxxQ", count, ctypes.addressof(filters))
    fprog_buffer = ctypes.create_string_buffer(fprog, len(fprog))
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return "process sandbox failed (no_new_privs)"
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER,
                  ctypes.c_void_p(ctypes.addressof(fprog_buffer)), 0, 0):
        return f"process sandbox failed ({os.strerror(ctypes.get_errno())})"
    return "no new processes"


def apply(readable: Iterable[str], writable: Iterable[str]) -> str:
    readable = [*SYSTEM_READABLE, sys.prefix, sys.base_prefix, *readable]
    return "; ".join([landlock(readable, ["/dev", *writable]), forbid_new_processes()])
