"""The reference DQN on CartPole-v1: steps and seconds to a greedy return of 475, and the
pass rate of the grader's CartPole test.

    python -m bench.dqn_cartpole                      seeds 1-5, 50k steps, 2 processes
    python -m bench.dqn_cartpole --seeds 1-3 --plot reference/lab1/images/dqn_cartpole.png
    python -m bench.dqn_cartpole integration          the grading test's run on seeds 0-19

Default mode: every seed trains with the reference's DQNConfig (50k steps) and a greedy
evaluation of 10 episodes every --eval-every steps; the first evaluation with a mean return
of at least 475 gives the steps and seconds to 475 (the seconds exclude the evaluations
themselves, shown apart). DESIGN.md asks for 4 of 5 seeds within 50k steps. Each run ends
at its first success unless --full is given, which also reports the final evaluation.

`integration` repeats test_dqn.py::test_cartpole for each seed: the run the test makes (its
step budget and overrides), then the greedy evaluation the grader makes with the reference
(its episodes, its seeds), and counts how often the mean return reaches the test's threshold.

Every run is a process of its own with one torch thread (a small MLP runs fastest on one
core); --jobs of them run at once.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = REPO_ROOT / "reference" / "lab1"
TARGET_RETURN = 475.0


class _Reached(Exception):
    """Raised from inside the evaluation to end a run at its first success."""


def _import_reference() -> Any:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(REFERENCE))
    import dqn

    return dqn


def time_to_target(seed: int, eval_every: int, full: bool, plot: str | None) -> dict[str, Any]:
    """Train one seed; time every evaluation so that its cost can be taken out."""
    import dataclasses

    import numpy as np

    dqn = _import_reference()
    evaluate = dqn.evaluate
    log: dict[str, Any] = {"reached_at": None, "seconds_to_target": None, "eval_seconds": 0.0,
                           "cpu_seconds_to_target": None, "eval_cpu_seconds": 0.0}
    start, cpu_start = time.perf_counter(), time.process_time()
    steps_seen: list[int] = []

    def timed_evaluate(*args: Any, **kwargs: Any) -> list[float]:
        began, cpu_began = time.perf_counter(), time.process_time()
        returns = evaluate(*args, **kwargs)
        steps_seen.append((len(steps_seen) + 1) * eval_every)
        reached = log["reached_at"] is None and np.mean(returns) >= TARGET_RETURN
        if reached:  # training time so far: the evaluations before this one taken out
            log["reached_at"] = steps_seen[-1]
            log["seconds_to_target"] = began - start - log["eval_seconds"]
            log["cpu_seconds_to_target"] = cpu_began - cpu_start - log["eval_cpu_seconds"]
        log["eval_seconds"] += time.perf_counter() - began
        log["eval_cpu_seconds"] += time.process_time() - cpu_began
        if reached and not full:
            raise _Reached
        return returns

    dqn.evaluate = timed_evaluate
    config = dataclasses.replace(dqn.DQNConfig(), seed=seed, eval_frequency=eval_every)
    result = None
    try:
        result = dqn.train(config, "cpu")
    except _Reached:
        pass
    log["seconds"] = time.perf_counter() - start
    log["cpu_seconds"] = time.process_time() - cpu_start
    if result is not None:
        log["final_eval_return"] = result.eval_returns[-1]
        log["eval_returns"] = [round(r) for r in result.eval_returns]
        if plot:
            from plotting import plot_learning_curve

            plot_learning_curve(result.episode_end_steps, result.episode_returns,
                                result.eval_steps, result.eval_returns,
                                f"Reference DQN on CartPole-v1 (seed {seed})", plot)
    return {"seed": seed, **log}


def integration_run(seed: int) -> dict[str, Any]:
    """What test_cartpole does for one seed, with the reference as the student: the same probes
    with the same arguments; every checkpoint is evaluated, to show the margin."""
    sys.path.insert(0, str(REPO_ROOT))
    from autograder.lab1 import test_dqn

    _import_reference()  # the probes import `dqn`: here, the reference
    spec = importlib.util.spec_from_file_location(
        "dqn_probes", REPO_ROOT / "autograder" / "lab1" / "probes" / "dqn.py")
    probes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probes)
    cpu_start = time.process_time()
    trained = probes.train_cartpole({**test_dqn.CARTPOLE_RUN, "seed": seed})
    cpu_seconds = time.process_time() - cpu_start
    means = probes.best_greedy_return(trained["checkpoints"], test_dqn.CARTPOLE_RUN["hidden_dim"],
                                      test_dqn.CARTPOLE_EPISODES, seed + 1, float("inf"))
    means.reverse()  # in training order
    best = max(means)
    return {"seed": seed, "best_mean_return": best, "final_mean_return": means[-1],
            "passed": best >= test_dqn.CARTPOLE_THRESHOLD,
            "checkpoint_means": [round(m) for m in means],
            "train_seconds": round(trained["seconds"], 1),
            "train_cpu_seconds": round(cpu_seconds, 1)}


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(seed) for seed in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="target", choices=["target", "integration"])
    parser.add_argument("--seeds", help="e.g. 1-5 or 1,3,7 (default: 1-5, or 0-19 for "
                        "integration)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--full", action="store_true", help="train every run to the end")
    parser.add_argument("--plot", help="save the first seed's learning curve here (with --full)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        if args.mode == "integration":
            seeds = _seeds(args.seeds or "0-19")
            futures = [pool.submit(integration_run, seed) for seed in seeds]
        else:
            seeds = _seeds(args.seeds or "1-5")
            futures = [pool.submit(time_to_target, seed, args.eval_every, args.full or
                                   bool(args.plot), args.plot if i == 0 else None)
                       for i, seed in enumerate(seeds)]
        results = []
        for future in futures:
            results.append(future.result())
            print(json.dumps(results[-1]), flush=True)
    wall = time.perf_counter() - started
    if args.mode == "integration":
        passed = sum(r["passed"] for r in results)
        print(f"\nintegration test: the reference passes on {passed} of {len(results)} seeds; "
              f"wall {wall:.0f} s with {args.jobs} jobs")
    else:
        reached = [r for r in results if r["reached_at"] is not None]
        print(f"\n{len(reached)} of {len(results)} seeds reach a greedy return of "
              f"{TARGET_RETURN:g} within 50k steps; wall {wall:.0f} s with {args.jobs} jobs")
        for r in results:
            seconds, cpu = r["seconds_to_target"], r["cpu_seconds_to_target"]
            print(f"  seed {r['seed']}: steps {r['reached_at']}, seconds "
                  f"{seconds and round(seconds, 1)} (CPU {cpu and round(cpu, 1)}; "
                  f"+ {r['eval_seconds']:.1f} s of evaluation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
