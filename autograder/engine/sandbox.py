"""Kernel-enforced limits for the worker process (Linux x86_64; a no-op elsewhere).

Applied by the worker to itself after its own imports and before any student code runs:

- **Landlock** (Linux >= 5.13, no privileges needed): the file system becomes read-only
  except the worker's scratch folder and /dev/null, and only what the worker needs can be
  read at all (the Python installation, site-packages, system libraries, a few files of
  /etc, its own /proc entries, the implementation and the probes). The repository itself, so
  the reference, the hidden tests, the reference cache and the results file, is out of reach,
  even for a worker running as root; so are /etc/shadow, /dev/shm, /dev/pts, /tmp and the
  grader's /proc entries. Landlock also stops the worker from ptrace-ing processes outside its
  sandbox, and, from ABI 4, from using TCP; from ABI 6 it scopes signals and abstract Unix
  sockets to the sandbox.
- **seccomp** (every kernel the grader supports): no new processes (fork, vfork, clone
  without CLONE_THREAD; clone3 reports ENOSYS so that threads fall back to clone); no signal
  to any process but the worker itself (kill, tgkill, rt_sigqueueinfo only with the worker's
  own pid or process group; tkill and pidfd_send_signal never); no sockets (socket,
  socketpair), no ptrace, process_vm_*, pidfd_getfd, io_uring or AIO. A fork bomb gets EPERM,
  nothing can outlive the worker to rewrite results after grading, and nothing reaches the
  network or another grading even where Landlock is missing.
- `guard_channel` (seccomp, on the thread that runs student code and every thread it starts):
  the worker's answer socket can be neither written nor duplicated, so only the worker's own
  courier thread, started before, sends answers.

`apply` returns what it could put in place, and the grader reports it. Setting
AUTOGRADER_SIMULATE_SANDBOX (comma-separated: `no-landlock`, `no-signal-scope`) in the
grader's environment makes the worker behave as if the kernel lacked that feature (for the
repository's tests). This module is loaded by the worker by path; it imports nothing from
the package.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys
from collections.abc import Iterable, Sequence

SIMULATE_VARIABLE = "AUTOGRADER_SIMULATE_SANDBOX"
SIMULATIONS = ("no-landlock", "no-signal-scope")

SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
LANDLOCK_SCOPE_SIGNAL = 1 << 1
LANDLOCK_ACCESS_NET_TCP = 0b11  # bind and connect; no rule allows either

ACCESS_EXECUTE = 1 << 0
ACCESS_WRITE_FILE = 1 << 1
ACCESS_READ_FILE = 1 << 2
ACCESS_READ_DIR = 1 << 3
ACCESS_TRUNCATE = 1 << 14
ACCESS_IOCTL_DEV = 1 << 15
READ_ACCESS = ACCESS_EXECUTE | ACCESS_READ_FILE | ACCESS_READ_DIR
# The rights a rule on a file (not a folder) may carry.
FILE_ACCESS = ACCESS_EXECUTE | ACCESS_WRITE_FILE | ACCESS_READ_FILE | ACCESS_TRUNCATE \
    | ACCESS_IOCTL_DEV
# Access rights known to each Landlock ABI version (bit i of the mask = right 1 << i).
ABI_ACCESS_BITS = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16, 6: 16, 7: 16}

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
CLONE_THREAD = 0x00010000
EPERM, EACCES, ENOSYS = 1, 13, 38

# x86_64 system call numbers
NR = {
    "read": 0, "write": 1, "close": 3, "pread64": 17, "pwrite64": 18, "readv": 19,
    "writev": 20, "dup": 32, "dup2": 33, "sendfile": 40, "socket": 41, "sendto": 44,
    "sendmsg": 46, "socketpair": 53, "clone": 56, "fork": 57, "vfork": 58, "kill": 62,
    "fcntl": 72, "ptrace": 101, "rt_sigqueueinfo": 129, "tkill": 200, "io_setup": 206,
    "io_submit": 209, "tgkill": 234, "splice": 275, "tee": 276, "vmsplice": 278,
    "dup3": 292, "pwritev": 296, "rt_tgsigqueueinfo": 297, "sendmmsg": 307,
    "process_vm_readv": 310, "process_vm_writev": 311, "copy_file_range": 326,
    "pwritev2": 328, "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "pidfd_open": 434, "clone3": 435, "pidfd_getfd": 438,
}
NEVER = ("socket", "socketpair", "fork", "vfork", "tkill", "pidfd_send_signal", "pidfd_open",
         "pidfd_getfd", "ptrace", "process_vm_readv", "process_vm_writev", "io_setup",
         "io_submit", "io_uring_setup", "io_uring_enter", "io_uring_register")
# System calls that write to (or copy) the file descriptor in the given argument.
CHANNEL_WRITES = {"write": 0, "pwrite64": 0, "writev": 0, "pwritev": 0, "pwritev2": 0,
                  "sendto": 0, "sendmsg": 0, "sendmmsg": 0, "sendfile": 0, "splice": 2,
                  "tee": 1, "vmsplice": 0, "copy_file_range": 2, "dup": 0, "dup2": 0, "dup3": 0,
                  "fcntl": 0}

SYSTEM_READABLE = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/sys", "/opt",
                   "/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat",
                   "/proc/filesystems", "/proc/sys/kernel", "/proc/sys/vm")
ETC_READABLE = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd",
                "group", "nsswitch.conf", "host.conf", "os-release", "mime.types",
                "alternatives", "fonts", "matplotlibrc", "locale.alias", "debian_version",
                "python3", "python3.11", "python3.12", "python3.13")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/urandom", "/dev/random")


def simulated() -> set[str]:
    """The missing features to simulate, from the grader's environment."""
    value = os.environ.get(SIMULATE_VARIABLE, "")
    return {item.strip() for item in value.split(",") if item.strip() in SIMULATIONS}


def _supported() -> bool:
    return sys.platform == "linux" and platform.machine() == "x86_64"


def seccomp_supported() -> bool:
    """Whether `confine_process` can work here (its filters are written for Linux x86_64)."""
    return _supported()


def machine() -> str:
    return platform.machine()


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi(simulate: Iterable[str] = ()) -> int:
    """The Landlock ABI version this kernel offers (0: none). Restricts nothing."""
    if not _supported() or "no-landlock" in simulate:
        return 0
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    return max(int(libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0,
                                LANDLOCK_CREATE_RULESET_VERSION)), 0)


def landlock(readable: Iterable[str], writable: Iterable[str],
             simulate: Iterable[str] = ()) -> str:
    """Restrict this process's file-system access; returns a description of what was done."""
    if not _supported():
        return "file-system sandbox unavailable on this platform"
    abi = landlock_abi(simulate)
    if abi < 1:
        return "file-system sandbox unavailable (no Landlock in this kernel)"
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    handled = (1 << ABI_ACCESS_BITS.get(abi, 16)) - 1
    scoped = 0
    if abi >= 6 and "no-signal-scope" not in simulate:
        scoped = LANDLOCK_SCOPE_SIGNAL | LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
    network = LANDLOCK_ACCESS_NET_TCP if abi >= 4 else 0
    attr = struct.pack("QQQ", handled, network, scoped) if abi >= 6 else (
        struct.pack("QQ", handled, network) if abi >= 4 else struct.pack("Q", handled))
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
                    allowed = access & handled if directory else access & FILE_ACCESS & handled
                    rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed, fd), 12)
                    if libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH,
                                    rule, 0) != 0:
                        return (f"file-system sandbox failed for {path} "
                                f"({os.strerror(ctypes.get_errno())})")
                finally:
                    os.close(fd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return "file-system sandbox failed (no_new_privs)"
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            return f"file-system sandbox failed ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(ruleset)
    done = [f"Landlock ABI {abi}"]
    if network:
        done.append("no TCP")
    if scoped:
        done.append("signals scoped")
    return ", ".join(done)


# ----------------------------------------------------------------------------- seccomp

LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def _low_word(argument: int) -> int:
    """Offset of the low 32 bits of a system call's argument in struct seccomp_data."""
    return 16 + 8 * argument


def _deny(nr: int, errno: int) -> list[bytes]:
    return [_bpf(LD_W_ABS, 0, 0, 0), _bpf(JEQ_K, 0, 1, nr),
            _bpf(RET_K, 0, 0, SECCOMP_RET_ERRNO | errno)]


def _if_argument(nr: int, argument: int, values: Sequence[int], allow: bool) -> list[bytes]:
    """For system call `nr`: allow it when the argument's low 32 bits are one of `values`
    and deny it (EPERM) otherwise (allow=True), or the reverse (allow=False)."""
    matched = SECCOMP_RET_ALLOW if allow else SECCOMP_RET_ERRNO | EPERM
    other = SECCOMP_RET_ERRNO | EPERM if allow else SECCOMP_RET_ALLOW
    count = len(values)
    block = [_bpf(LD_W_ABS, 0, 0, 0), _bpf(JEQ_K, 0, count + 3, nr),
             _bpf(LD_W_ABS, 0, 0, _low_word(argument))]
    block += [_bpf(JEQ_K, count - i, 0, value & 0xFFFFFFFF) for i, value in enumerate(values)]
    return block + [_bpf(RET_K, 0, 0, other), _bpf(RET_K, 0, 0, matched)]


def _install(blocks: list[bytes]) -> str:
    program = b"".join([
        _bpf(LD_W_ABS, 0, 0, 4),                                    # A = arch
        _bpf(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        _bpf(RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),               # other ABIs: deny
        _bpf(LD_W_ABS, 0, 0, 0),
        _bpf(JGE_K, 0, 1, X32_SYSCALL_BIT),
        _bpf(RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),               # x32 system calls: deny
        *blocks,
        _bpf(RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ])
    filters = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(filters))
    fprog_buffer = ctypes.create_string_buffer(fprog, len(fprog))
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return "no_new_privs"
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER,
                  ctypes.c_void_p(ctypes.addressof(fprog_buffer)), 0, 0):
        return os.strerror(ctypes.get_errno())
    return ""


def confine_process() -> str:
    """Threads but no processes; signals only to the worker itself; no sockets or tracing."""
    if not _supported():
        return "process sandbox unavailable on this platform"
    pid = os.getpid()
    blocks = [b"".join(_deny(NR[name], EPERM)) for name in NEVER]
    blocks.append(b"".join(_deny(NR["clone3"], ENOSYS)))
    blocks.append(b"".join([                                        # clone: threads only
        _bpf(LD_W_ABS, 0, 0, 0), _bpf(JEQ_K, 0, 3, NR["clone"]),
        _bpf(LD_W_ABS, 0, 0, _low_word(0)), _bpf(JSET_K, 1, 0, CLONE_THREAD),
        _bpf(RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
        _bpf(LD_W_ABS, 0, 0, 0),  # a thread: go on with A = the system call number
    ]))
    # kill(0) is the worker's own process group: it leads one of its own.
    blocks.append(b"".join(_if_argument(NR["kill"], 0, (pid, 0, -pid), allow=True)))
    for name in ("tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
        blocks.append(b"".join(_if_argument(NR[name], 0, (pid,), allow=True)))
    problem = _install(blocks)
    if problem:
        return f"process sandbox failed ({problem})"
    return "no new processes, no signals out, no sockets"


def guard_channel(fds: Sequence[int]) -> str:
    """From this thread on (and in threads it starts), `fds` cannot be written to or
    duplicated; reading stays allowed."""
    if not _supported():
        return ""
    blocks = [b"".join(_if_argument(NR[name], argument, tuple(fds), allow=False))
              for name, argument in CHANNEL_WRITES.items()]
    problem = _install(blocks)
    return f"answer channel unguarded ({problem})" if problem else "answer channel guarded"


def apply(readable: Iterable[str], writable: Iterable[str]) -> str:
    simulate = simulated()
    etc = [os.path.join("/etc", name) for name in ETC_READABLE]
    readable = [*SYSTEM_READABLE, *etc, sys.prefix, sys.base_prefix, *readable]
    done = [landlock([*readable, *DEVICES], ["/dev/null", *writable], simulate),
            confine_process()]
    if simulate:
        done.append(f"simulated: {', '.join(sorted(simulate))}")
    return "; ".join(done)
