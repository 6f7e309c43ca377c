"""Probes for the multi-armed bandits part (run in the worker, next to the submission).

Each probe builds the submission's objects from plain data (tensors, lists, numbers), runs
them, and returns plain data. Generators are made here from the seed the test sends, so the
tests never compare random draws one by one: they judge the returned choices statistically
or against properties. The end-to-end probe runs the agents on its own testbed and loop, so
a mistake in `Testbed` or `run_experiment` does not also cost the agents' tests.
"""

from __future__ import annotations

from typing import Any

import bandits
import numpy as np


def _floats(values: Any) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _ints(values: Any) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _choices(result: Any, runs: int, k: int, who: str) -> np.ndarray:
    """The arms an agent returned, checked so that a wrong type fails with a clear sentence."""
    actions = np.asarray(result)
    if actions.shape != (runs,):
        raise ValueError(f"{who} returned shape {actions.shape}; expected ({runs},), one arm "
                         "per run")
    if not np.issubdtype(actions.dtype, np.integer):
        raise TypeError(f"{who} returned {actions.dtype} values; expected integer arm indices")
    outside = actions[(actions < 0) | (actions >= k)]
    if outside.size:
        raise ValueError(f"{who} returned arm {outside[0]}; arms are numbered 0 to {k - 1}")
    return actions


# ----------------------------------------------------------------------------- the testbed


def testbed_samples(
    runs: int, k: int, q_star_mean: float, q_star_std: float, drift_std: float, steps: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Reset a Testbed, then pull random arms: the true values, the reward noise, the drift."""
    rng = np.random.default_rng(seed)
    arm_rng = np.random.default_rng(seed + 1)
    testbed = bandits.Testbed(
        runs, k, q_star_mean=q_star_mean, q_star_std=q_star_std, drift_std=drift_std
    )
    testbed.reset(rng)
    initial = _floats(testbed.q_star)
    if initial.shape != (runs, k):
        raise ValueError(f"after Testbed.reset, q_star has shape {initial.shape}; "
                         f"expected ({runs}, {k})")
    noise, drift = [], []
    for _ in range(steps):
        before = _floats(testbed.q_star)
        actions = arm_rng.integers(k, size=runs)
        rewards = np.asarray(testbed.pull(actions, rng))
        if rewards.shape != (runs,):
            raise ValueError(f"Testbed.pull returned shape {rewards.shape}; expected ({runs},)")
        noise.append(rewards - before[np.arange(runs), actions])
        drift.append(_floats(testbed.q_star) - before)
    return {"q_star": initial, "noise": np.stack(noise), "drift": np.stack(drift)}


def check_environment(
    k: int, q_star_mean: float, drift_std: float, seed: int, rounds: int = 1
) -> dict[str, Any]:
    """gymnasium's check_env on a BanditEnv, then what it does, as data for the test to judge:
    q_star after reset(seed), after reset(seed) again and after reset(seed + 1), the info of
    the first reset, and `rounds` rounds of one step with each arm (arm 0, 1, ..., k - 1, then
    again): for each step q_star before it, the reward, observation and info."""
    from gymnasium.utils.env_checker import check_env

    env = bandits.BanditEnv(k, q_star_mean=q_star_mean, drift_std=drift_std)
    check_env(env, skip_render_check=True)
    resets, first_info = [], None
    for reset_seed in (seed, seed, seed + 1, seed):
        observation, info = env.reset(seed=reset_seed)
        first_info = info if first_info is None else first_info
        resets.append(_floats(env.testbed.q_star))
    before, rewards, observations, optimal, ended = [], [], [], [], []
    for action in list(range(k)) * rounds:
        before.append(_floats(env.testbed.q_star))
        step_observation, reward, terminated, truncated, info = env.step(action)
        rewards.append(float(reward))
        observations.append(int(step_observation))
        optimal.append(int(info["optimal_action"]))
        ended.append(bool(terminated or truncated))
    return {
        "observation": int(observation), "reset_optimal": int(first_info["optimal_action"]),
        "resets": resets[:3], "before": before, "rewards": rewards,
        "step_observations": observations, "optimal": optimal, "ended": ended,
    }


# ----------------------------------------------------------------------------- choices


def _reseed_globals(global_seed: int) -> None:
    """Seed the global generators (numpy's legacy one, `random`, torch): a function that must
    draw from the generator it is given makes the same choices whatever these hold."""
    import random

    import torch

    np.random.seed(global_seed)
    random.seed(global_seed)
    torch.manual_seed(global_seed)


def greedy_choices(values: Any, seed: int, global_seed: int = 0) -> np.ndarray:
    _reseed_globals(global_seed)
    values = _floats(values)
    result = bandits.greedy(values, np.random.default_rng(seed))
    return _choices(result, *values.shape, "greedy(values, rng)")


def random_agent_choices(runs: int, k: int, seed: int, global_seed: int = 0) -> np.ndarray:
    _reseed_globals(global_seed)
    agent = bandits.RandomAgent(runs, k)
    return _choices(agent.act(np.random.default_rng(seed)), runs, k, "RandomAgent.act")


def epsilon_greedy_choices(
    values: Any, epsilon: float, seed: int, global_seed: int = 0
) -> np.ndarray:
    _reseed_globals(global_seed)
    values = _floats(values)
    runs, k = values.shape
    agent = bandits.EpsilonGreedyAgent(runs, k, epsilon=epsilon)
    agent.values = values
    return _choices(agent.act(np.random.default_rng(seed)), runs, k, "EpsilonGreedyAgent.act")


def ucb_choices(values: Any, counts: Any, c: float, seed: int) -> np.ndarray:
    values = _floats(values)
    runs, k = values.shape
    agent = bandits.UCBAgent(runs, k, c=c)
    agent.values = values
    agent.counts = _ints(counts)
    return _choices(agent.act(np.random.default_rng(seed)), runs, k, "UCBAgent.act")


def gradient_choices(preferences: Any, seed: int, global_seed: int = 0) -> np.ndarray:
    _reseed_globals(global_seed)
    preferences = _floats(preferences)
    runs, k = preferences.shape
    agent = bandits.GradientBanditAgent(runs, k)
    agent.preferences = preferences
    return _choices(
        agent.act(np.random.default_rng(seed)), runs, k, "GradientBanditAgent.act"
    )


# ----------------------------------------------------------------------------- learning


def value_updates(
    actions: Any, rewards: Any, k: int, step_size: float | None, initial_value: float
) -> dict[str, np.ndarray]:
    """Feed EpsilonGreedyAgent.update a fixed sequence; its values and counts after each step."""
    actions, rewards = _ints(actions), _floats(rewards)
    runs = actions.shape[1]
    agent = bandits.EpsilonGreedyAgent(
        runs, k, epsilon=0.0, step_size=step_size, initial_value=initial_value
    )
    values, counts, count_dtypes = [], [], set()
    for step_actions, step_rewards in zip(actions, rewards, strict=True):
        agent.update(step_actions, step_rewards)
        values.append(_floats(agent.values))
        counts.append(_ints(agent.counts))
        count_dtypes.add(str(np.asarray(agent.counts).dtype))
    return {"values": np.stack(values), "counts": np.stack(counts),
            "count_dtypes": sorted(count_dtypes)}


def gradient_policy(preferences: Any) -> np.ndarray:
    preferences = _floats(preferences)
    agent = bandits.GradientBanditAgent(*preferences.shape)
    agent.preferences = preferences
    return _floats(agent.policy())


def gradient_update(
    preferences: Any, mean_reward: Any, steps: int, actions: Any, rewards: Any,
    step_size: float, baseline: bool,
) -> dict[str, Any]:
    """One GradientBanditAgent.update from a constructed state; the state afterwards."""
    preferences = _floats(preferences)
    agent = bandits.GradientBanditAgent(
        *preferences.shape, step_size=step_size, baseline=baseline
    )
    agent.preferences = preferences
    agent.mean_reward = _floats(mean_reward)
    agent.steps = steps
    agent.update(_ints(actions), _floats(rewards))
    return {
        "preferences": _floats(agent.preferences),
        "mean_reward": _floats(agent.mean_reward),
        "steps": int(agent.steps),
        "steps_type": type(agent.steps).__name__,
    }


# ----------------------------------------------------------------------------- the runner


class _ScriptedAgent:
    """Plays a fixed table of arms and records what it is told."""

    def __init__(self, actions: np.ndarray):
        self.actions = actions
        self.step = 0
        self.seen_actions: list[np.ndarray] = []
        self.seen_rewards: list[np.ndarray] = []

    def act(self, rng: np.random.Generator) -> np.ndarray:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"run_experiment called agent.act with {type(rng).__name__}; "
                            "pass it the np.random.Generator run_experiment was given")
        return self.actions[min(self.step, len(self.actions) - 1)].copy()

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        self.seen_actions.append(_ints(actions))
        self.seen_rewards.append(_floats(rewards))
        self.step += 1


class _ScriptedTestbed:
    """Pays fixed rewards; its best arms change after every pull, like a drifting testbed."""

    def __init__(self, rewards: np.ndarray, optimal: np.ndarray):
        self.rewards = rewards  # (steps, runs, k)
        self.optimal = optimal  # (steps, runs)
        self.runs = rewards.shape[1]
        self.k = rewards.shape[2]
        self.step = 0
        self.resets = 0

    def reset(self, rng: np.random.Generator) -> None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"run_experiment called testbed.reset with {type(rng).__name__}; "
                            "pass it the np.random.Generator run_experiment was given")
        self.resets += 1
        self.step = 0

    def optimal_arms(self) -> np.ndarray:
        return self.optimal[min(self.step, len(self.optimal) - 1)].copy()

    def pull(self, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"run_experiment called testbed.pull with {type(rng).__name__}; "
                            "pass it the np.random.Generator run_experiment was given")
        row = self.rewards[min(self.step, len(self.rewards) - 1)]
        self.step += 1
        return row[np.arange(self.runs), _ints(actions)]


def runner_on_script(actions: Any, rewards: Any, optimal: Any, seed: int) -> dict[str, Any]:
    """run_experiment with a scripted agent and testbed: the curves and what the agent saw."""
    actions, rewards, optimal = _ints(actions), _floats(rewards), _ints(optimal)
    agent = _ScriptedAgent(actions)
    testbed = _ScriptedTestbed(rewards, optimal)
    curves = bandits.run_experiment(agent, testbed, len(actions), np.random.default_rng(seed))
    return {
        "average_reward": _floats(curves.average_reward),
        "optimal_action": _floats(curves.optimal_action),
        "resets": testbed.resets,
        "pulls": testbed.step,
        "updates": len(agent.seen_actions),
        "seen_actions": np.stack(agent.seen_actions) if agent.seen_actions else _ints([]),
        "seen_rewards": np.stack(agent.seen_rewards) if agent.seen_rewards else _floats([]),
    }


# ----------------------------------------------------------------------------- end to end

# name -> (agent factory, mean of the true values): the configurations of S&B Figures 2.2-2.5
_CONFIGURATIONS = {
    "epsilon = 0 (greedy)": (lambda runs, k: bandits.EpsilonGreedyAgent(runs, k), 0.0),
    "epsilon = 0.01": (lambda runs, k: bandits.EpsilonGreedyAgent(runs, k, epsilon=0.01), 0.0),
    "epsilon = 0.1": (lambda runs, k: bandits.EpsilonGreedyAgent(runs, k, epsilon=0.1), 0.0),
    "optimistic, greedy, Q1 = 5": (
        lambda runs, k: bandits.EpsilonGreedyAgent(
            runs, k, epsilon=0.0, step_size=0.1, initial_value=5.0
        ),
        0.0,
    ),
    "UCB, c = 2": (lambda runs, k: bandits.UCBAgent(runs, k, c=2.0), 0.0),
    "gradient bandit, alpha = 0.1, with baseline": (
        lambda runs, k: bandits.GradientBanditAgent(runs, k, step_size=0.1, baseline=True),
        4.0,
    ),
    "gradient bandit, alpha = 0.1, without baseline": (
        lambda runs, k: bandits.GradientBanditAgent(runs, k, step_size=0.1, baseline=False),
        4.0,
    ),
}


def choices_along_the_way(
    names: list[str], q_stars: dict[str, Any], steps: int, record: list[int], seed: int
) -> dict[str, list[np.ndarray]]:
    """Each named agent on the true values the test drew (runs x k); the arms it chose at the
    steps in `record` (counting from 1). The test computes what those choices are worth."""
    rng = np.random.default_rng(seed)
    choices = {}
    for name in names:
        make_agent, _ = _CONFIGURATIONS[name]
        q_star = _floats(q_stars[name])
        runs, k = q_star.shape
        rows = np.arange(runs)
        agent = make_agent(runs, k)
        choices[name] = []
        for step in range(1, steps + 1):
            actions = _choices(agent.act(rng), runs, k, f"{type(agent).__name__}.act")
            rewards = q_star[rows, actions] + rng.normal(size=runs)
            agent.update(actions, rewards)
            if step in record:
                choices[name].append(actions)
    return choices
