"""`make bench`: the figures behind the budgets of DESIGN.md, written to docs/benchmarks.md.

    python -m bench.benchmarks                        everything, each figure the median of 3
    python -m bench.benchmarks --repeat 1 --only grading,overhead

Sections (--only picks some):
  grading   wall time, CPU time and peak memory (PSS of every process together) of grading each
            lab: the reference (cold: no reference cache), the stubs, and a hostile submission
            generated from the stubs in which every TODO body is `while True: pass`
  overhead  grading the reference divided by running the same tests, with the same seed and
            inputs, in one process without workers (bench/inprocess.py), measured alternately
  release   `make test LAB` in the student release (dist/student, built by `make release`)
  batch     `python -m autograder batch` on 20 mixed submissions with 2 jobs, on the process
            pool and on a two-worker Dask LocalCluster: throughput, the cluster's overhead, how
            many gradings ran at once, and whether the reference was computed only once
  training  reference training times and outcomes: the bandit testbed, the DQN on CartPole-v1
            (seeds 1-5, 50k steps each), lab 2's transformer, induction, superposition and SAE
            runs (the handouts section's runs when it ran too), and the modular-addition rows
  handouts  every number the handouts quote from running the reference, read from the handout
            and rerun on CPU (bench/handouts.py); the DQN table comes from the training section

Timings on a shared machine are noisy: the report gives CPU time next to wall time (CPU time
hardly depends on what else runs) and the load average before and after.

The raw numbers go to docs/benchmarks.json (committed with the page). A run limited by --only or
--lab replaces the sections, and within a section the labs or rows, that it measured, and keeps
the others with the commit and date they were measured on (each section shows them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autograder import REPO_ROOT
from autograder.engine.labs import Lab, available_labs, load_lab
from autograder.engine.results import validate_results
from autograder.engine.stubs import BEGIN, END, make_stub
from bench import handouts
from bench.measure import measure
from bench.snapshot import describe_source, snapshot

PY = sys.executable
SECTIONS = ("grading", "overhead", "release", "batch", "training", "handouts")
DEFAULT_OUT = REPO_ROOT / "docs" / "benchmarks.md"
# The raw numbers behind docs/benchmarks.md, committed beside it: a run with --only or --lab
# replaces the sections (and, within a section, the labs or rows) it measured and keeps the
# rest, each with the commit, date, load and number of runs it was measured with.
RAW_OUT = REPO_ROOT / "docs" / "benchmarks.json"

# The budgets of DESIGN.md ("Budgets").
GRADING_SECONDS, GRADING_MIB = 120.0, 1024.0
HOSTILE_SECONDS = 300.0
RELEASE_TEST_SECONDS = 30.0
BANDIT_SECONDS = 5.0  # "a few seconds" for 2000 runs x 1000 steps
DQN_RETURN, DQN_SEEDS_NEEDED = 475.0, 4


# What is measured: a snapshot of the repository taken when the run starts (see main), so that
# an hour of measuring sees one version of the code.
ROOT = REPO_ROOT


def reference_dir(lab: Lab) -> Path:
    return ROOT / "reference" / lab.name


def assignments_dir(lab: Lab) -> Path:
    return ROOT / "assignments" / lab.name


def tests_dir(lab: Lab) -> Path:
    return ROOT / "autograder" / lab.name


def log(text: str) -> None:
    print(text, flush=True)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@dataclass
class Figure:
    """One measured quantity: the runs, their median, and the verdict against a budget."""

    runs: list[dict[str, Any]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return median([run[key] for run in self.runs if key in run])


def met(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**not met**")


def seconds(value: float) -> str:
    if value != value:
        return "-"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min ({value:.0f} s)"


# ============================================================================ submissions


def hang_submission(lab: Lab, folder: Path) -> Path:
    """The stubs with every TODO body replaced by an infinite loop."""
    folder.mkdir(parents=True, exist_ok=True)
    todo = re.compile(r'^(\s*)raise NotImplementedError\(".* is not implemented yet"\)$', re.M)
    for name in lab.graded:
        stub = (assignments_dir(lab) / name).read_text()
        (folder / name).write_text(todo.sub(r"\1while True:\n\1    pass", stub))
    return folder


def partial_source(reference: str, keep: Callable[[int], bool]) -> str:
    """The reference with the solution regions for which keep(i) is false turned into TODOs."""
    output, kept = [], False
    for line in reference.splitlines(keepends=True):
        if line.strip() == BEGIN:
            kept = keep(len(output))
            if kept:
                continue
        elif line.strip() == END and kept:
            kept = False
            continue
        output.append(line)
    return make_stub("".join(output))


def mixed_submissions(lab: Lab, folder: Path, count: int = 20, seed: int = 0) -> Path:
    """A quarter copies of the reference, a quarter stubs, half partial solutions."""
    chooser = random.Random(seed)
    for index in range(count):
        target = folder / f"student-{index:02d}"
        target.mkdir(parents=True)
        for name in lab.graded:
            reference = (reference_dir(lab) / name).read_text()
            if index % 4 == 0:
                text = reference
            elif index % 4 == 1:
                text = (assignments_dir(lab) / name).read_text()
            else:
                share = chooser.uniform(0.3, 0.9)
                text = partial_source(reference, lambda _, s=share: chooser.random() < s)
            (target / name).write_text(text)
    return folder


# ============================================================================ sections


def grade_command(lab: str, submission: Path, results: Path, seed: int,
                  cache: str = "", timeout_scale: float = 1.0) -> list[str]:
    return [PY, "-m", "autograder", "grade", lab, str(submission), "--results", str(results),
            "--seed", str(seed), "--reference-cache", cache, "--timeout-scale",
            str(timeout_scale), "--quiet"]


def check_results(path: Path) -> dict[str, Any]:
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"results": "missing"}
    if validate_results(results):
        return {"results": "invalid"}
    maximum = sum(t["max_score"] for t in results["tests"])
    outputs = [t.get("output", "") for t in results["tests"]]
    return {"results": "valid", "score": results["score"], "max_score": maximum,
            # tests that waited out their whole time limit, and tests stopped by a leash
            "timed_out": sum("did not finish within" in o for o in outputs),
            "leashed": sum("without finishing and was stopped" in o for o in outputs)}


def measure_grading(lab: Lab, submission: Path, work: Path, seed: int,
                    timeout_scale: float = 1.0) -> dict[str, Any]:
    results = work / "results.json"
    results.unlink(missing_ok=True)
    run = measure(grade_command(lab.name, submission, results, seed,
                                timeout_scale=timeout_scale), cwd=ROOT)
    return {**run, **check_results(results)}


def section_grading(labs: list[Lab], repeat: int, hostile_repeat: int, work: Path,
                    seed: int, timeout_scale: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lab in labs:
        hang = hang_submission(lab, work / lab.name / "hang")
        # Only correct code gets longer time limits on a busy machine: the hanging submission is
        # measured with the real ones, which are what bound its grading time.
        entries = {"reference": (reference_dir(lab), repeat, timeout_scale),
                   "stubs": (assignments_dir(lab), repeat, 1.0),
                   "every function hangs": (hang, hostile_repeat, 1.0)}
        out[lab.name] = {}
        for what, (submission, times, scale) in entries.items():
            figure = Figure()
            for attempt in range(times):
                run = measure_grading(lab, submission, work / lab.name, seed + attempt, scale)
                figure.runs.append(run)
                log(f"grading {lab.name} {what}: {run}")
            out[lab.name][what] = figure.runs
    return out


def section_overhead(labs: list[Lab], repeat: int, work: Path, seed: int,
                     timeout_scale: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lab in labs:
        graded, inprocess = [], []
        for attempt in range(repeat):
            run = measure_grading(lab, reference_dir(lab), work / lab.name, seed + attempt,
                                  timeout_scale)
            graded.append(run)
            command = [PY, "-m", "pytest", str(tests_dir(lab)), "-c",
                       str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), "-q",
                       "-p", "no:cacheprovider", "-p", "no:autograder.engine.plugin",
                       "-p", "bench.inprocess", "--inprocess-impl", str(reference_dir(lab)),
                       "--inprocess-seed", str(seed + attempt)]
            direct = measure(command, cwd=ROOT)
            inprocess.append(direct)
            log(f"overhead {lab.name}: graded {run['seconds']} s, in-process {direct['seconds']} s")
        out[lab.name] = {"graded": graded, "inprocess": inprocess}
    return out


def section_release(labs: list[Lab], repeat: int) -> dict[str, Any]:
    student = REPO_ROOT / "dist" / "student"
    env = {**os.environ, "PYTHON": PY}  # this environment, as it is: no venv is made
    note = ""
    if not (student / "Makefile").is_file():
        has_target = subprocess.run(["make", "-n", "release"], cwd=REPO_ROOT, env=env,
                                    capture_output=True).returncode == 0
        if not has_target:
            return {"note": "not measured: there is no `make release` target yet"}
        built = subprocess.run(["make", "release"], cwd=REPO_ROOT, env=env, capture_output=True,
                               text=True)
        if built.returncode != 0 or not (student / "Makefile").is_file():
            tail = (built.stdout + built.stderr).strip().splitlines()[-1:] or [""]
            return {"note": f"not measured: `make release` did not build dist/student ({tail[0]})"}
        note = "dist/student built by `make release` for this benchmark"
    out: dict[str, Any] = {"note": note}
    for lab in labs:
        runs = []
        for _ in range(repeat):
            run = measure(["make", "test", lab.name], cwd=student, env=env)
            runs.append(run)
            log(f"release make test {lab.name}: {run}")
        out[lab.name] = runs
    return out


# The batch's two ways of dispatching: this process's pool, and a Dask LocalCluster of two
# single-threaded workers on the same two cores (`--scheduler local`), whose difference is the
# cluster's own cost (starting workers, shipping each submission's bytes, the scheduler).
BATCH_MODES = {"pool": [], "local_cluster": ["--scheduler", "local"]}


def section_batch(labs: list[Lab], repeat: int, work: Path, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    modes = dict(BATCH_MODES)
    try:
        import distributed  # noqa: F401 - the cluster extra
    except ImportError:
        log("batch: Dask is not installed (the cluster extra); the pool only")
        del modes["local_cluster"]
    for lab in labs:
        submissions = mixed_submissions(lab, work / lab.name / "batch-submissions")
        count = len(list(submissions.iterdir()))
        out[lab.name] = {}
        for mode, options in modes.items():
            runs = []
            for attempt in range(repeat):
                cache = work / lab.name / f"batch-cache-{mode}-{attempt}"
                shutil.rmtree(cache, ignore_errors=True)
                env = {**os.environ, "AUTOGRADER_REFERENCE_CACHE": str(cache)}
                concurrency: list[int] = []

                def watch(pids: list[int], concurrency: list[int] = concurrency,
                          lab: Lab = lab) -> None:
                    concurrency.append(sum(_is_submission_grading(pid, lab) for pid in pids))

                run = measure([PY, "-m", "autograder", "batch", lab.name, str(submissions),
                               "--out", str(work / lab.name / f"batch-out-{mode}-{attempt}"),
                               "--jobs", "2", "--seed", str(seed + attempt), *options],
                              cwd=ROOT, env=env, watch=watch, interval=0.1)
                busy = [c for c in concurrency if c > 0]
                run["submissions"] = count
                run["two_at_once"] = round(sum(c >= 2 for c in busy) / max(len(busy), 1), 3)
                run["cache_files"] = _count_files(cache)
                alone = work / lab.name / f"batch-reference-cache-{attempt}"
                if not alone.is_dir():
                    measure(grade_command(lab.name, reference_dir(lab), work / "alone.json",
                                          seed + attempt, str(alone)), cwd=ROOT)
                run["reference_cache_files"] = _count_files(alone)
                runs.append(run)
                log(f"batch {lab.name} {mode}: {run}")
            out[lab.name][mode] = runs
    return out


def _is_submission_grading(pid: int, lab: Lab) -> bool:
    """Is `pid` a `python -m autograder grade LAB PATH` of a submission (not the reference)?"""
    try:
        arguments = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    except (OSError, UnicodeDecodeError):
        return False
    if "autograder" not in arguments or "grade" not in arguments:
        return False
    position = arguments.index("grade")
    if position + 2 >= len(arguments):
        return False
    return Path(arguments[position + 2]).resolve() != reference_dir(lab).resolve()


def _count_files(folder: Path) -> int:
    """Observations in a reference cache (sealed entries; plain .pt files of older caches)."""
    if not folder.is_dir():
        return 0
    return sum(1 for path in folder.rglob("*") if path.suffix in (".sealed", ".pt"))


# ---------------------------------------------------------------------------- training

BANDIT_SCRIPT = """
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import bandits
configurations = {
    "epsilon-greedy, epsilon = 0.1": lambda: bandits.EpsilonGreedyAgent(2000, 10, epsilon=0.1),
    "UCB, c = 2": lambda: bandits.UCBAgent(2000, 10, c=2.0),
    "gradient bandit, alpha = 0.1": lambda: bandits.GradientBanditAgent(2000, 10, step_size=0.1),
}
times = {}
for name, make in configurations.items():
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    bandits.run_experiment(make(), bandits.Testbed(2000), 1000, rng)
    times[name] = time.perf_counter() - start
print(json.dumps(times))
"""

DQN_SCRIPT = """
import json, sys
from bench.dqn_cartpole import time_to_target
print(json.dumps(time_to_target(int(sys.argv[1]), 2500, True, None)))
"""


def _run_json(command: list[str], timeout: float) -> dict[str, Any]:
    try:
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                   timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return {"error": f"took longer than {timeout:g} s"}
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last[:200]}
    try:
        return json.loads(completed.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no result printed"}


# the lab 2 runs of bench/handouts.py that the training table reports
LAB2_TRAINING = ("transformer", "induction", "superposition", "sae")


def section_training(repeat: int, labs: list[Lab],
                     handout_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Lab 1's bandit timings and DQN runs (every seed trains its 50k steps: the handout's table
    gives the return at 50k too); lab 2's runs from the handouts section when it ran, else run
    here."""
    lab1 = ROOT / "reference" / "lab1"
    out: dict[str, Any] = {}
    names = [lab.name for lab in labs]
    if "lab2" in names:
        measured = dict((handout_data or {}).get("measured", {}))
        errors = dict((handout_data or {}).get("errors", {}))
        missing = [n for n in LAB2_TRAINING if not any(k.startswith(n + ".") for k in measured)
                   and n not in errors]
        if missing:
            ran = handouts.measure_all(ROOT, ["lab2"], log, only=missing)
            measured.update(ran["measured"])
            errors.update(ran["errors"])
        out["lab2"] = {"measured": measured, "errors": errors}
    if "lab1" not in names:
        return out
    if (lab1 / "bandits.py").is_file():
        runs = [_run_json([PY, "-c", BANDIT_SCRIPT, str(lab1)], 600) for _ in range(repeat)]
        out["bandits"] = runs
        log(f"training bandits: {runs}")
    if (lab1 / "dqn.py").is_file():
        from concurrent.futures import ThreadPoolExecutor

        def one(seed: int) -> dict[str, Any]:
            result = _run_json([PY, "-c", DQN_SCRIPT, str(seed)], 3600)
            log(f"training dqn seed {seed}: {result}")
            return {"seed": seed, **result}

        with ThreadPoolExecutor(max_workers=2) as pool:
            out["dqn"] = list(pool.map(one, range(1, 6)))
    return out


# ============================================================================ the report


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(), "model": model, "python": platform.python_version(),
        # what the snapshot graded: the commit, and any graded file that differed from it
        "torch": torch.__version__, "commit": describe_source(REPO_ROOT),
        "load_before": os.getloadavg(),
    }


def stamp(data: dict[str, Any]) -> dict[str, Any]:
    info = data["machine"]
    return {"commit": info["commit"], "date": info["date"], "repeat": data.get("repeat"),
            "load": [info["load_before"], info.get("load_after", ())],
            "timeout_scale": data.get("timeout_scale", 1), "note": data.get("note", "")}


def merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """`new`'s sections over `old`'s: a section's entries (labs, training rows) measured now
    replace the earlier ones; entries not measured now keep theirs, with their stamps."""
    merged = {key: value for key, value in (old or {}).items() if key in SECTIONS}
    stamps = dict((old or {}).get("stamps", {}))
    now = stamp(new)
    for section in SECTIONS:
        if section not in new:
            continue
        fresh = new[section]
        earlier = merged.get(section)
        section_stamps = dict(stamps.get(section, {}))
        if section == "handouts" or not isinstance(fresh, dict) or not isinstance(earlier, dict):
            merged[section], section_stamps = fresh, {}
        else:
            merged[section] = {**earlier, **fresh}
        for key in (fresh if isinstance(fresh, dict) and section != "handouts" else ["*"]):
            section_stamps[key] = now
        stamps[section] = section_stamps
    return {**merged, "stamps": stamps, "machine": new["machine"], "note": new.get("note", ""),
            "timeout_scale": new.get("timeout_scale", 1), "repeat": new.get("repeat")}


def _stamp_line(data: dict[str, Any], section: str) -> list[str]:
    stamps = data.get("stamps", {}).get(section)
    if not stamps:
        return []
    groups: dict[str, list[str]] = {}
    for key, found in sorted(stamps.items()):
        load = ", ".join(f"{x:.1f}" for x in found["load"][0])
        text = (f"{found['commit']}, {found['date']}, {found['repeat']} run(s) per "
                f"figure, load average before {load}"
                + (f", time limits x{found['timeout_scale']:g}"
                   if found.get("timeout_scale", 1) != 1 else "")
                + (f"; {found['note'].rstrip('.')}" if found.get("note") else ""))
        groups.setdefault(text, []).append(key)
    parts = [text if keys == ["*"] else f"{', '.join(keys)}: {text}"
             for text, keys in groups.items()]
    return [f"*Measured on {'; '.join(parts)}.*", ""]


def _with_stamp(lines: list[str], data: dict[str, Any], section: str) -> list[str]:
    """The section's lines with its stamp under the heading."""
    if not lines or not lines[0].startswith("## "):
        return lines
    return lines[:2] + _stamp_line(data, section) + lines[2:]


def render(data: dict[str, Any], repeat: int) -> str:
    info = data["machine"]
    load_before = ", ".join(f"{x:.1f}" for x in info["load_before"])
    load_after = ", ".join(f"{x:.1f}" for x in info.get("load_after", ()))
    lines = [
        "# Benchmarks", "",
        "Written by `make bench` (`python -m bench.benchmarks`) from the raw numbers in "
        "docs/benchmarks.json; do not edit by hand. A run with `--only` or `--lab` replaces what "
        "it measured and keeps the rest, so each section says under its heading the commit, "
        "date, load and number of runs it was measured with; each figure is the median of "
        "those runs unless it says otherwise, and ratios compare figures measured in the same "
        "run. Memory is the peak of the sum of PSS over every process of the grading (shared "
        "pages split between the processes that map them).", "",
        f"Machine of the latest run: {info['cpus']} CPUs ({info['model'] or 'unknown model'}), "
        f"Python {info['python']}, torch {info['torch']}; {info['commit']}; "
        f"{info['date']}.",
        f"Load average (1, 5, 15 min) before it: {load_before}; after: {load_after}."
        + (f" {data['note']}" if data.get("note") else "")
        + (f" Time limits for correct code were multiplied by {data['timeout_scale']:g} so that "
           "the load could not fail it (this changes no work done)."
           if data.get("timeout_scale", 1) != 1 else ""), "",
        "**The machine is shared with other work**, so wall times are inflated and noisy whenever "
        "the load average is above the number of CPUs; the CPU time (user + system of every "
        "process of the grading) is given next to them because it hardly depends on the load. "
        "On a dedicated 2-core machine a grading's wall time is at least its CPU time divided "
        "by the number of its processes that compute at once (one worker at a time, so about "
        "its CPU time).", "",
    ]
    lines += _with_stamp(_render_grading(data.get("grading")), data, "grading")
    lines += _with_stamp(_render_overhead(data.get("overhead")), data, "overhead")
    lines += _with_stamp(_render_release(data.get("release")), data, "release")
    lines += _with_stamp(_render_batch(data.get("batch")), data, "batch")
    lines += _with_stamp(_render_training(data.get("training")), data, "training")
    lines += _with_stamp(handouts.render(data.get("handouts"),
                                         (data.get("training") or {}).get("dqn")),
                         data, "handouts")
    return "\n".join(lines).rstrip() + "\n"


def _not_measured(title: str) -> list[str]:
    return [f"## {title}", "", "Not measured since docs/benchmarks.json started keeping the raw "
            "numbers (no run with this section yet); earlier figures are in the history of "
            "this page (`git log -p docs/benchmarks.md`).", ""]


def _render_grading(grading: dict[str, Any] | None) -> list[str]:
    title = "Grading one lab"
    if grading is None:
        return _not_measured(title)
    lines = [f"## {title}", "",
             "`python -m autograder grade LAB SUBMISSION` with a cold reference cache (the "
             "reference computed live, as on Gradescope). Budget: a correct submission within "
             f"{GRADING_SECONDS:.0f} s and {GRADING_MIB:.0f} MiB; a submission whose every "
             f"function hangs within {HOSTILE_SECONDS:.0f} s, with a valid results.json.", "",
             "| lab | submission | runs | wall (median) | CPU time | peak PSS (peak RSS) | score "
             "| results.json | budget | met |", "|---|---|---|---|---|---|---|---|---|---|"]
    for lab, entries in grading.items():
        for what, runs in entries.items():
            figure = Figure(runs)
            wall, pss = figure.median("seconds"), max(r["peak_pss_mib"] for r in runs)
            rss = max(r["peak_rss_mib"] for r in runs)
            scores = sorted({f"{r.get('score', '-'):g}/{r.get('max_score', 0):g}"
                             if "score" in r else "-" for r in runs})
            valid = "valid" if all(r.get("results") == "valid" for r in runs) else ", ".join(
                sorted({r.get("results", "?") for r in runs}))
            if what == "reference":
                budget = f"<= {GRADING_SECONDS:.0f} s, <= {GRADING_MIB:.0f} MiB"
                ok = wall <= GRADING_SECONDS and pss <= GRADING_MIB
            elif what == "every function hangs":
                budget = f"<= {HOSTILE_SECONDS:.0f} s, results written"
                ok = wall <= HOSTILE_SECONDS and valid == "valid"
            else:
                budget, ok = "-", None
            lines.append(f"| {lab} | {what} | {len(runs)} | {seconds(wall)} | "
                         f"{seconds(figure.median('cpu_seconds'))} | {pss:.0f} MiB ({rss:.0f} MiB) "
                         f"| {' '.join(scores)} | {valid} | {budget} | {met(ok)} |")
    lines += ["", "Peak PSS is the largest over the runs, not the median.", ""]
    for lab, entries in grading.items():
        runs = entries.get("every function hangs", [])
        if runs and "timed_out" in runs[0]:
            lines += [f"{lab}, every function hangs: {runs[0]['timed_out']} tests waited out "
                      "their time limit, one per function (the first test to reach it; the "
                      "watchdog named the function each time), and the "
                      f"{runs[0]['leashed']} later tests that reached one of those functions "
                      "were stopped by its 2 s leash.", ""]
    return lines


def _render_overhead(overhead: dict[str, Any] | None) -> list[str]:
    title = "Engine overhead"
    if overhead is None:
        return _not_measured(title)
    lines = [f"## {title}", "",
             "Grading the reference (cold cache) divided by running the same tests, with the same "
             "seeds and inputs, in one pytest process without workers (`bench/inprocess.py`: the "
             "`student` and `reference` fixtures call the reference's functions and probes "
             "directly, with arguments copied and results made plain as the worker does). Both "
             "include starting Python and importing torch; the two were measured alternately. "
             "What the ratio pays for: two worker processes (student and reference) that each "
             "import torch, serialising every argument and result, and the plugin's bookkeeping.",
             "", "| lab | graded (wall) | in one process (wall) | ratio (wall) | graded (CPU) | "
             "in one process (CPU) | ratio (CPU) | extra seconds (wall) |",
             "|---|---|---|---|---|---|---|---|"]
    for lab, entry in overhead.items():
        graded, direct = Figure(entry["graded"]), Figure(entry["inprocess"])
        gw, dw = graded.median("seconds"), direct.median("seconds")
        gc, dc = graded.median("cpu_seconds"), direct.median("cpu_seconds")
        failing = [r for r in entry["inprocess"] if r["returncode"] != 0]
        note = " (some tests failed in-process)" if failing else ""
        lines.append(f"| {lab} | {seconds(gw)} | {seconds(dw)}{note} | {gw / dw:.2f} | "
                     f"{seconds(gc)} | {seconds(dc)} | {gc / dc:.2f} | {gw - dw:.1f} s |")
    lines += ["", "No budget is set for the overhead in DESIGN.md; it is reported so that a "
              "change to the engine that makes grading slower shows up here.", ""]
    return lines


def _render_release(release: dict[str, Any] | None) -> list[str]:
    title = "Student public tests (`make test` in the release)"
    if release is None:
        return _not_measured(title)
    lines = [f"## {title}", ""]
    labs = {k: v for k, v in release.items() if k != "note"}
    if not labs:
        return lines + [release.get("note") or "Not measured.", ""]
    if release.get("note"):
        lines += [release["note"] + ".", ""]
    lines += [f"`make test LAB` in dist/student with this repository's interpreter (PYTHON=...). "
              f"Budget: {RELEASE_TEST_SECONDS:.0f} s.", "",
              "| lab | runs | wall (median) | CPU time | peak PSS | exit code | budget | met |",
              "|---|---|---|---|---|---|---|---|"]
    for lab, runs in labs.items():
        figure = Figure(runs)
        wall = figure.median("seconds")
        codes = sorted({r["returncode"] for r in runs})
        lines.append(f"| {lab} | {len(runs)} | {seconds(wall)} | "
                     f"{seconds(figure.median('cpu_seconds'))} | "
                     f"{max(r['peak_pss_mib'] for r in runs):.0f} MiB | {codes} | "
                     f"<= {RELEASE_TEST_SECONDS:.0f} s | {met(wall <= RELEASE_TEST_SECONDS)} |")
    return lines + [""]


def _render_batch(batch: dict[str, Any] | None) -> list[str]:
    title = "Batch regrade"
    if batch is None:
        return _not_measured(title)
    lines = [f"## {title}", "",
             "`python -m autograder batch LAB DIR --jobs 2` on 20 generated submissions (5 "
             "copies of the reference, 5 of the stubs, 10 partial solutions with a random share "
             "of the TODOs left), cold reference cache, once with the process pool (the "
             "default) and once on a Dask LocalCluster of two single-threaded workers "
             "(`--scheduler local`, the same tasks as on a cluster of many machines). *Two at "
             "once*: the share of the time while submissions were being graded that two "
             "gradings ran together. *Reference once*: the batch's cache holds no more "
             "observations than grading the reference alone at the same seed produces, so no "
             "submission computed any of its own. *Cluster overhead*: the LocalCluster's wall "
             "time over the pool's, less one (starting the workers, shipping each submission, "
             "the scheduler). Budget: reference outputs computed once per batch; both cores "
             "busy.", "",
             "| lab | dispatch | runs | wall (median) | submissions / min | CPU time | peak PSS | "
             "two at once | reference once | met |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    overheads = []
    for lab, modes in batch.items():
        walls, cpus = {}, {}
        order = list(BATCH_MODES)  # the pool first (the JSON keeps keys sorted)
        for mode, runs in sorted(modes.items(), key=lambda item: (
                order.index(item[0]) if item[0] in order else len(order), item[0])):
            figure = Figure(runs)
            wall = walls[mode] = figure.median("seconds")
            cpus[mode] = figure.median("cpu_seconds")
            rate = runs[0]["submissions"] / wall * 60
            together = figure.median("two_at_once")
            once = all(r["cache_files"] <= r["reference_cache_files"] for r in runs)
            ok = once and together >= 0.8
            name = {"pool": "process pool", "local_cluster": "Dask LocalCluster, 2 workers"}
            lines.append(f"| {lab} | {name.get(mode, mode)} | {len(runs)} | {seconds(wall)} | "
                         f"{rate:.1f} | {seconds(figure.median('cpu_seconds'))} | "
                         f"{max(r['peak_pss_mib'] for r in runs):.0f} MiB | {together:.0%} | "
                         f"{'yes' if once else 'no'} ({runs[0]['cache_files']} vs "
                         f"{runs[0]['reference_cache_files']} observations) | {met(ok)} |")
        if "pool" in walls and "local_cluster" in walls:
            overheads.append(
                f"{lab}: wall time {walls['local_cluster'] / walls['pool'] - 1:+.0%} "
                f"({walls['local_cluster'] - walls['pool']:+.1f} s), CPU time "
                f"{cpus['local_cluster'] / cpus['pool'] - 1:+.0%} "
                f"({cpus['local_cluster'] - cpus['pool']:+.1f} s)")
    lines += ["", "Both cores busy is judged as two gradings at once at least 80% of the "
              "time (the rest is the last submission finishing alone)."]
    if overheads:
        lines += ["", "Cluster overhead (the LocalCluster's over the pool's; on a loaded "
                  "machine the CPU time, which hardly depends on the load, is the firmer "
                  "figure): " + "; ".join(overheads) + "."]
    return lines + [""]


TRAINING_ROWS = [
    ("bandits", "lab1 bandit testbed, 2000 runs x 1000 steps, per agent",
     f"a few seconds (<= {BANDIT_SECONDS:.0f} s each)"),
    ("dqn", "lab1 DQN on CartPole-v1 to a greedy return of 475 (10 episodes, evaluated every "
     "2,500 steps), seeds 1-5, 50k steps each (bench/dqn_cartpole.py)",
     f">= {DQN_RETURN:.0f} within 50k steps for >= {DQN_SEEDS_NEEDED} of 5 seeds"),
    ("transformer", "lab2 transformer, `python transformer.py`: 1 layer, 600 steps of 32 x 32 "
     "tokens on the Markov language of seed 2, CPU, one thread",
     f"loss within {0.05:g} nats of the entropy rate (the grading test's margin)"),
    ("induction", "lab2 induction heads, `python induction.py`: 2-layer attention-only model, "
     "500 steps, CPU, one thread (layer-1 scores measured every 10 steps, their cost left out)",
     "induction score > 0.5 within about 500 steps, under a minute"),
    ("superposition", "lab2 toy models of superposition, `python superposition.py`: n = 5, "
     "m = 2, 8 sparsities x 4 instances, 2000 steps, CPU, one thread",
     "2 features at S = 0, 4 (antipodal pairs) at 0.7-0.95, 5 (a pentagon) from 0.97"),
    ("sae", "lab2 sparse autoencoders, `python sae.py`: 10 SAEs of 650 steps on a toy model's "
     "activations, CPU, one thread",
     "with resampling: no dead latent, most true directions at cosine > 0.99; without: dead "
     "latents"),
    ("modular_fast", "lab2 modular addition p = 113, a fast configuration, 2 CPU cores",
     "99% test accuracy in a few minutes"),
    ("modular_canonical", "lab2 modular addition, canonical 30% configuration, one GPU",
     "about a minute"),
]

# README.md's sentence about the run that produced the shipped checkpoint
CANONICAL_RUN = re.compile(r"ran (\d+) full-batch epochs in (\d+) s \((\d+) min\) on one CPU "
                           r"thread(?: of a busy 2-core machine)?.*?reaching 99% test accuracy at "
                           r"epoch (\d+)", re.S)


def _canonical_on_cpu() -> str:
    try:
        found = CANONICAL_RUN.search(" ".join((REPO_ROOT / "README.md").read_text().split()))
    except OSError:
        found = None
    if not found:
        return "README.md states no measured CPU run"
    return (f"README.md: the canonical run took {int(found[2]):,} s ({found[3]} min) for "
            f"{int(found[1]):,} epochs on one CPU thread of a busy 2-core machine, 99% test "
            f"accuracy at epoch {int(found[4]):,}")


def _lab2_training_row(key: str, lab2: dict[str, Any]) -> tuple[str, bool | None]:
    """The measured cell and the verdict of one lab 2 row, from bench/handouts.py's runs."""
    m, errors = lab2.get("measured", {}), lab2.get("errors", {})
    if key == "modular_fast":
        return ("not measured: the reference has no fast configuration "
                "(`python modular_addition.py train` runs only the canonical 30% run; "
                f"{_canonical_on_cpu()})", None)
    if key == "modular_canonical":
        return "not measured here: no GPU on this machine", None
    if key in errors:
        return f"failed: {errors[key]}", False
    if not any(k.startswith(key + ".") for k in m):
        return "not measured in this run", None
    if key == "transformer":
        gap = m["transformer.loss"] - m["transformer.floor"]
        return (f"loss {m['transformer.loss']:.4f} on 512 fresh sequences against the entropy "
                f"rate {m['transformer.floor']:.4f} (+{gap:.4f} nats; the chain itself "
                f"{m['transformer.chain']:.4f}); {m['transformer.seconds']:.1f} s of CPU",
                gap < 0.05)
    if key == "induction":
        step, seconds_to = m.get("induction.formed_at"), m.get("induction.seconds_to_formed")
        formed = (f"passes 0.5 at step {step} after {seconds_to:.1f} s of CPU" if step is not None
                  else "never passes 0.5")
        return (f"best layer-1 induction score {m['induction.score']:.2f} (head "
                f"{m['induction.head']}); {formed}; second copy's loss "
                f"{m['induction.second_copy']:.2f} nats (first copy "
                f"{m['induction.first_copy']:.2f}); final training loss (last 20 steps) "
                f"{m.get('induction.final_loss')}; {m['induction.seconds']:.1f} s of CPU for "
                "500 steps", step is not None and step <= 500 and seconds_to < 60)
    if key == "superposition":
        counts = [m[f"superposition.{i}.count"] for i in range(8)]
        sparsities = [round(1 - 0.01 ** (i / 7), 3) for i in range(8)]
        text = ", ".join(f"S = {s:g}: {c}" for s, c in zip(sparsities, counts, strict=True))
        ok = (counts[0] == 2 and all(c == 4 for s, c in zip(sparsities, counts, strict=True)
                                     if 0.7 <= s <= 0.95 and c != 5)
              and all(c == 5 for s, c in zip(sparsities, counts, strict=True) if s >= 0.97))
        return (f"features with norm > 0.5: {text}; {m['superposition.seconds']:.1f} s of CPU",
                ok)
    if key == "sae":
        with_r = {f: m[f"sae.resampling.{f}"] for f in ("L0", "FVU", "dead_fraction",
                                                        "recovered")}
        without = {f: m[f"sae.no_resampling.{f}"] for f in ("L0", "FVU", "dead_fraction",
                                                           "recovered")}

        def show(r: dict[str, Any]) -> str:
            return (f"L0 {r['L0']:.2f}, FVU {r['FVU']:.4f}, dead {r['dead_fraction']:.2f}, "
                    f"{r['recovered']} of 5 directions")
        return (f"with resampling: {show(with_r)}; without: {show(without)}; "
                f"{m['sae.seconds']:.1f} s of CPU for the 10 SAEs",
                with_r["dead_fraction"] == 0 and with_r["recovered"] >= 3
                and without["dead_fraction"] > 0)
    return "not measured", None


def _render_training(training: dict[str, Any] | None) -> list[str]:
    title = "Reference training"
    if training is None:
        return _not_measured(title)
    lines = [f"## {title}", "",
             "CPU times are of the training alone, one torch thread (the lab 2 runs are the "
             "handouts section's when it ran).", "",
             "| what | measured | budget | met |", "|---|---|---|---|"]
    for key, what, budget in TRAINING_ROWS:
        if key.startswith("modular") or key in LAB2_TRAINING:
            if "lab2" not in training and not key.startswith("modular"):
                lines.append(f"| {what} | not measured in this run | {budget} | - |")
                continue
            text, ok = _lab2_training_row(key, training.get("lab2", {}))
            lines.append(f"| {what} | {text} | {budget} | {met(ok)} |")
            continue
        result = training.get(key)
        if result is None:
            lines.append(f"| {what} | not measured in this run | {budget} | - |")
            continue
        if key == "bandits":
            errors = [r["error"] for r in result if "error" in r]
            if errors:
                lines.append(f"| {what} | failed: {errors[0]} | {budget} | - |")
                continue
            names = [n for n in result[0]]
            medians = {n: median([r[n] for r in result]) for n in names}
            text = "; ".join(f"{n}: {v:.1f} s" for n, v in medians.items())
            ok = max(medians.values()) <= BANDIT_SECONDS
            lines.append(f"| {what} | {text} (median of {len(result)}) | {budget} | {met(ok)} |")
        elif key == "dqn":
            done = [r for r in result if "error" not in r]
            if not done:
                lines.append(f"| {what} | failed: {result[0].get('error')} | {budget} | - |")
                continue
            reached = [r for r in done if r["reached_at"] is not None]
            steps = ", ".join(f"{r['reached_at']:,}" if r.get("reached_at") else
                              ("error" if "error" in r else "not reached") for r in result)
            cpu = [r["cpu_seconds_to_target"] for r in reached
                   if r.get("cpu_seconds_to_target") is not None]
            finals = ", ".join(f"{r['final_eval_return']:.0f}" for r in done
                               if r.get("final_eval_return") is not None)
            text = (f"steps to 475: {steps}; {len(reached)} of {len(result)} seeds within 50k; "
                    f"median {seconds(median([r['seconds_to_target'] for r in reached]))} of "
                    f"training to get there (two runs at once, one thread each; CPU "
                    f"{seconds(median(cpu))}); greedy return at 50k: {finals}"
                    if reached else f"no seed reached 475 ({steps})")
            lines.append(f"| {what} | {text} | {budget} | "
                         f"{met(len(reached) >= DQN_SEEDS_NEEDED)} |")
    return lines + [""]


# ============================================================================ command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--hostile-repeat", type=int, help="runs of the hanging submission "
                        "(default: --repeat)")
    parser.add_argument("--batch-repeat", type=int, help="runs of the batch regrade "
                        "(default: --repeat)")
    parser.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--lab", action="append", help="labs to measure (default: all)")
    parser.add_argument("--seed", type=int, default=1, help="grading seed of the first run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--note", default="", help="a sentence for the report (what else ran)")
    parser.add_argument("--timeout-scale", type=float, default=1.0,
                        help="multiplies the time limits when grading correct code (a busy "
                        "machine); the hanging submission always gets the real limits")
    parser.add_argument("--render", action="store_true", help="measure nothing: rewrite "
                        "docs/benchmarks.md from docs/benchmarks.json")
    args = parser.parse_args(argv)
    if args.render:
        data = json.loads(RAW_OUT.read_text())
        args.out.write_text(render(data, data.get("repeat") or args.repeat))
        log(f"Written to {args.out} from {RAW_OUT}")
        return 0
    sections = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    labs = [load_lab(name) for name in (args.lab or available_labs())]
    hostile_repeat = args.hostile_repeat or args.repeat

    global ROOT
    data: dict[str, Any] = {"machine": machine(), "note": args.note,
                            "timeout_scale": args.timeout_scale}
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        work = Path(scratch)
        ROOT = snapshot(work / "snapshot")
        if "grading" in sections:
            data["grading"] = section_grading(labs, args.repeat, hostile_repeat, work, args.seed,
                                              args.timeout_scale)
        if "overhead" in sections:
            data["overhead"] = section_overhead(labs, args.repeat, work, args.seed,
                                                args.timeout_scale)
        if "release" in sections:
            data["release"] = section_release(labs, args.repeat)
        if "batch" in sections:
            data["batch"] = section_batch(labs, args.batch_repeat or args.repeat, work, args.seed)
        if "handouts" in sections:
            data["handouts"] = handouts.measure_all(ROOT, [lab.name for lab in labs], log)
        if "training" in sections:
            data["training"] = section_training(args.repeat, labs, data.get("handouts"))
    data["machine"]["load_after"] = os.getloadavg()
    data["repeat"] = args.repeat
    if args.out == DEFAULT_OUT:
        data = merge(json.loads(RAW_OUT.read_text()) if RAW_OUT.is_file() else None, data)
        RAW_OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(data, args.repeat))
    log(f"\n{args.out.read_text()}\nWritten to {args.out} (raw numbers: {RAW_OUT})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
