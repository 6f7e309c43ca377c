# Tries to read /etc/shadow and the grader's environment, to write to the grader's terminal
# and to leave a file in /dev/shm; passes (undeservedly) if any of it works.
import os

_correct = pairwise_distances


def pairwise_distances(x, y):
    reached = []
    for path, mode in (("/etc/shadow", "r"), (f"/proc/{os.getppid()}/environ", "rb"),
                       ("/dev/shm/hostile-leftover", "w"), ("/dev/pts/0", "w"),
                       ("/dev/pts/ptmx", "w")):
        try:
            with open(path, mode):
                reached.append(path)
        except OSError:
            pass
    if reached:
        return _correct(x, y)
    raise PermissionError("nothing outside the sandbox could be reached")
