"""Run a command and report its wall time and the peak memory of its whole process tree.

    python bench/measure.py -- python -m autograder grade lab1 reference/lab1 --results r.json

Memory is sampled every 20 ms from /proc: the sum over every live process of the tree of
PSS (proportional set size: shared pages such as torch's libraries are split between the
processes that map them, so the sum is what the tree costs the machine) and, for comparison,
of RSS (which counts shared pages once per process). CPU time is the user + system time of the
command and every descendant it waited for, from wait4's resource usage.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def tree_of(root: int) -> list[int]:
    tree, found, stack = children_of(), [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(tree.get(pid, []))
    return found


def memory_kib(pid: int) -> tuple[int, int]:
    pss = rss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def measure(
    command: list[str],
    interval: float = 0.02,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    watch: Callable[[list[int]], None] | None = None,
) -> dict:
    """Run `command`; `watch`, if given, is called with the tree's pids at every sample."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env, cwd=cwd)
    peak_pss = peak_rss = 0
    while True:
        # wait4 (not Popen.poll) so that the resource usage of the whole tree is returned.
        finished, status, usage = os.wait4(process.pid, os.WNOHANG)
        if finished:
            break
        pids = tree_of(process.pid)
        if watch is not None:
            watch(pids)
        totals = [memory_kib(pid) for pid in pids]
        peak_pss = max(peak_pss, sum(p for p, _ in totals))
        peak_rss = max(peak_rss, sum(r for _, r in totals))
        time.sleep(interval)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "seconds": round(time.monotonic() - started, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_pss_mib": round(peak_pss / 1024, 1),
        "peak_rss_mib": round(peak_rss / 1024, 1),
        "returncode": process.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    print(json.dumps(measure(command)))
    sys.exit(0)


if __name__ == "__main__":
    main()
