"""Run `python -m autograder ...` with the trusted side's view of the system made Windows-like:
what Windows lacks of `os`, `signal` and the POSIX-only modules is removed before the grader
is imported, so that grading code which uses one of them unguarded fails here as it would on
a student's Windows laptop. (The worker answers as Windows does through
AUTOGRADER_SIMULATE_PLATFORM=win32, which this sets too.) Usage, from the folder that holds
the `autograder` package: python tests/windows_shim.py grade lab1 SUBMISSION ..."""

import os
import runpy
import signal
import sys

WINDOWS_LACKS = {
    # (not getuid: libraries that see sys.platform "linux" call it, as they would not there)
    os: ("O_NOFOLLOW", "O_NONBLOCK", "killpg", "getpgid", "setsid", "sched_getaffinity"),
    signal: ("SIGALRM", "setitimer", "alarm", "ITIMER_REAL", "SIGXFSZ"),
}
POSIX_MODULES = ("resource", "fcntl", "pwd", "grp")

if __name__ == "__main__":
    os.environ["AUTOGRADER_SIMULATE_PLATFORM"] = "win32"
    for module, names in WINDOWS_LACKS.items():
        for name in names:
            if hasattr(module, name):
                delattr(module, name)
    for name in POSIX_MODULES:
        sys.modules[name] = None  # `import resource` raises ImportError, as on Windows
    sys.path[0] = os.getcwd()
    sys.argv = ["autograder", *sys.argv[1:]]
    runpy.run_module("autograder", run_name="__main__", alter_sys=True)
