"""Plotting helpers for lab 1 (support code: nothing to write here).

The figures are drawn on `matplotlib.figure.Figure` objects and saved straight to PNG files,
so no window opens and no global matplotlib backend is changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def plot_bandit_curves(curves: Mapping[str, Any], title: str, path: str | Path) -> None:
    """Draw bandit experiments the way Sutton & Barto do, and save them as a PNG at `path`.

    curves: curve label -> an object with `average_reward` and `optimal_action`, float arrays
    of shape (steps,) (what `bandits.run_experiment` returns). Top panel: average reward per
    step; bottom panel: percent of runs that chose an optimal arm.
    """
    figure = Figure(figsize=(8, 7), layout="constrained")
    reward_axes, optimal_axes = figure.subplots(2, 1, sharex=True)
    for label, curve in curves.items():
        steps = range(1, len(curve.average_reward) + 1)
        reward_axes.plot(steps, curve.average_reward, linewidth=1, label=label)
        optimal_axes.plot(steps, 100 * curve.optimal_action, linewidth=1, label=label)
    reward_axes.set_ylabel("Average reward")
    optimal_axes.set_ylabel("% Optimal action")
    optimal_axes.set_xlabel("Steps")
    optimal_axes.set_ylim(0, 100)
    reward_axes.legend(loc="lower right")
    for axes in (reward_axes, optimal_axes):
        axes.grid(alpha=0.3)
    figure.suptitle(title)
    figure.savefig(path, dpi=100)


def plot_learning_curve(
    episode_end_steps: list[int],
    episode_returns: list[float],
    eval_steps: list[int],
    eval_returns: list[float],
    title: str,
    path: str | Path,
) -> Path:
    """Draw a DQN learning curve and save it as a PNG at `path` (folders are created).

    Training episodes' returns (epsilon-greedy, so noisy) are drawn as dots at the step each
    episode ended; greedy evaluations, when there are any, as a line. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.subplots()
    axes.plot(episode_end_steps, episode_returns, ".", markersize=3, alpha=0.4,
              label="training episode return")
    if eval_steps:
        axes.plot(eval_steps, eval_returns, "o-", linewidth=1.5, label="greedy evaluation return")
    axes.set_xlabel("Environment steps")
    axes.set_ylabel("Episode return")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    axes.set_title(title)
    figure.savefig(path, dpi=100)
    return path
