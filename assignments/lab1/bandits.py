"""Lab 1, part 2: multi-armed bandits (Sutton & Barto, *Reinforcement Learning*, chapter 2).

Everything here works on many independent bandit problems ("runs") at once: the true values,
the agents' estimates and preferences are arrays of shape (runs, k), and one call to `act`
chooses an arm in every run. That is what makes 2000 runs x 1000 steps take seconds, not
minutes: write every function without a Python loop over runs or arms.

All randomness comes from the `np.random.Generator` the caller hands in (`rng`). Never use
`np.random.*` module functions or the `random` module: the tests seed the generator they pass.

    python bandits.py [FOLDER]     writes Figures 2.2-2.5 as PNGs into FOLDER (default figures/)
                                   and prints the numbers at the last step next to the book's
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

# ============================================================================ the testbed


class Testbed:
    """`runs` independent k-armed bandit problems, stepped together (S&B section 2.3).

    `q_star` has shape (runs, k): the true value of every arm in every run. Pulling arm `a` in
    a run pays q_star[run, a] plus N(0, 1) noise. With drift_std > 0 the problems are
    nonstationary (S&B exercise 2.5): after every pull, every entry of q_star takes an
    independent N(0, drift_std**2) random-walk step.
    """

    def __init__(
        self,
        runs: int,
        k: int = 10,
        *,
        q_star_mean: float = 0.0,
        q_star_std: float = 1.0,
        drift_std: float = 0.0,
    ) -> None:
        self.runs = runs
        self.k = k
        self.q_star_mean = q_star_mean
        self.q_star_std = q_star_std
        self.drift_std = drift_std
        self.q_star = np.zeros((runs, k))

    def reset(self, rng: np.random.Generator) -> None:
        """Draw new problems: q_star[run, a] ~ N(q_star_mean, q_star_std**2), all independent.

        Sets `self.q_star` to a float array of shape (runs, k).
        Hint: one call to `rng.normal` with `size=(self.runs, self.k)`.
        """
        # TODO: implement Testbed.reset
        raise NotImplementedError("Testbed.reset is not implemented yet")

    def optimal_arms(self) -> np.ndarray:
        """The best arm of every run right now, shape (runs,)."""
        return self.q_star.argmax(axis=1)

    def pull(self, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Pull arm actions[run] in every run and return the rewards, float of shape (runs,).

        reward[run] = q_star[run, actions[run]] + N(0, 1) noise. Afterwards, if drift_std > 0,
        add independent N(0, drift_std**2) noise to every entry of q_star.
        Hint: `self.q_star[np.arange(self.runs), actions]` picks one entry per row.
        """
        # TODO: implement Testbed.pull
        raise NotImplementedError("Testbed.pull is not implemented yet")


class BanditEnv(gym.Env):
    """One k-armed bandit as a gymnasium environment: a `Testbed` with a single run.

    Actions: `Discrete(k)`. Observation: always 0 (a bandit has a single state). Episodes never
    end on their own (terminated and truncated are always False); wrap the environment in
    `gymnasium.wrappers.TimeLimit` for episodes of fixed length. `info["optimal_action"]` is
    the best arm at the moment the action was chosen, so experiments can count optimal actions.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        k: int = 10,
        *,
        q_star_mean: float = 0.0,
        q_star_std: float = 1.0,
        drift_std: float = 0.0,
    ) -> None:
        self.testbed = Testbed(
            1, k, q_star_mean=q_star_mean, q_star_std=q_star_std, drift_std=drift_std
        )
        self.action_space = gym.spaces.Discrete(k)
        self.observation_space = gym.spaces.Discrete(1)

    @property
    def optimal_action(self) -> int:
        return int(self.testbed.optimal_arms()[0])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self.testbed.reset(self.np_random)
        return 0, {"optimal_action": self.optimal_action}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        info = {"optimal_action": self.optimal_action}
        reward = self.testbed.pull(np.array([action]), self.np_random)
        return 0, float(reward[0]), False, False, info


# ============================================================================ the agents


class Agent(Protocol):
    """What `run_experiment` needs from an agent: choose arms, then learn from the rewards."""

    def act(self, rng: np.random.Generator) -> np.ndarray: ...

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None: ...


def greedy(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The arm with the largest value in every row, ties broken uniformly at random.

    values: float array of shape (runs, k); entries may be +inf. Returns an int array of shape
    (runs,): in each row, every arm holding the row's maximum is equally likely to be chosen.
    Hint: `np.argmax` always returns the *first* maximum. Mark the maximal entries, then pick
    among them with random numbers drawn from `rng`.
    """
    # TODO: implement greedy
    raise NotImplementedError("greedy is not implemented yet")


class RandomAgent:
    """Chooses every arm with probability 1/k and learns nothing: the baseline to beat."""

    def __init__(self, runs: int, k: int) -> None:
        self.runs = runs
        self.k = k

    def act(self, rng: np.random.Generator) -> np.ndarray:
        """One arm per run, uniformly at random among all k. Returns int, shape (runs,)."""
        # TODO: implement RandomAgent.act
        raise NotImplementedError("RandomAgent.act is not implemented yet")

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        """A random agent ignores its rewards."""


class EpsilonGreedyAgent:
    """Action-value method with epsilon-greedy choices (S&B sections 2.2-2.6).

    State (fixed here; the tests read and set it):
      values: float (runs, k), the estimates Q(a); they start at `initial_value`
              (0 is realistic; 5 is optimistic for the standard testbed, S&B section 2.6).
      counts: int (runs, k), N(a), how many times each arm has been chosen.
    step_size=None estimates by sample averages; a number alpha uses that constant step size.
    """

    def __init__(
        self,
        runs: int,
        k: int,
        *,
        epsilon: float = 0.0,
        step_size: float | None = None,
        initial_value: float = 0.0,
    ) -> None:
        self.runs = runs
        self.k = k
        self.epsilon = epsilon
        self.step_size = step_size
        self.values = np.full((runs, k), float(initial_value))
        self.counts = np.zeros((runs, k), dtype=np.int64)

    def act(self, rng: np.random.Generator) -> np.ndarray:
        """Epsilon-greedy choice, independently in every run. Returns int, shape (runs,).

        With probability epsilon the run explores: an arm uniformly at random among all k
        (the greedy arm included). Otherwise it exploits: `greedy(self.values, rng)`.
        Hint: `rng.random(self.runs) < self.epsilon` says which runs explore.
        """
        # TODO: implement EpsilonGreedyAgent.act
        raise NotImplementedError("EpsilonGreedyAgent.act is not implemented yet")

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from one step: arm actions[run] paid rewards[run], both of shape (runs,).

        In every run, only the chosen arm A changes (S&B equations 2.3 and 2.5):
            N(A) <- N(A) + 1
            Q(A) <- Q(A) + step * (R - Q(A)),  step = 1 / N(A) (the new count) for sample
                                               averages, or step = step_size when it is set.
        Update `self.counts` and `self.values` in place.
        Hint: index with `(np.arange(self.runs), actions)` to touch one entry per row.
        """
        # TODO: implement EpsilonGreedyAgent.update
        raise NotImplementedError("EpsilonGreedyAgent.update is not implemented yet")


class UCBAgent(EpsilonGreedyAgent):
    """Upper-confidence-bound action selection (S&B section 2.7).

    Same state and same `update` as `EpsilonGreedyAgent` (sample averages by default); only
    the choice differs. `c` > 0 sets how much the agent explores.
    """

    def __init__(
        self,
        runs: int,
        k: int,
        *,
        c: float = 2.0,
        step_size: float | None = None,
        initial_value: float = 0.0,
    ) -> None:
        super().__init__(runs, k, epsilon=0.0, step_size=step_size, initial_value=initial_value)
        self.c = c

    def act(self, rng: np.random.Generator) -> np.ndarray:
        """In every run, the arm maximising Q(a) + c * sqrt(ln(t) / N(a)) (S&B equation 2.10).

        t is the number of the current step, counting from 1: t = counts.sum(axis=1) + 1.
        An arm never tried (N(a) = 0) counts as maximising, so all arms get tried first, in
        random order. Ties are broken at random. Returns int, shape (runs,).
        Hint: give untried arms the score +inf and hand the scores to `greedy`.
        """
        # TODO: implement UCBAgent.act
        raise NotImplementedError("UCBAgent.act is not implemented yet")


class GradientBanditAgent:
    """Gradient bandit: a softmax policy over learned preferences (S&B section 2.8).

    State (fixed here; the tests read and set it):
      preferences: float (runs, k), H(a); they start at 0, so the first choice is uniform.
      mean_reward: float (runs,), the average of all rewards received so far (the baseline).
      steps: int, how many updates have been made (the same in every run).
    With baseline=False the agent updates as if the baseline were always 0.
    """

    def __init__(
        self, runs: int, k: int, *, step_size: float = 0.1, baseline: bool = True
    ) -> None:
        self.runs = runs
        self.k = k
        self.step_size = step_size
        self.baseline = baseline
        self.preferences = np.zeros((runs, k))
        self.mean_reward = np.zeros(runs)
        self.steps = 0

    def policy(self) -> np.ndarray:
        """The action probabilities pi(a) = exp(H(a)) / sum_b exp(H(b)), row by row.

        Returns float, shape (runs, k); each row sums to 1, even for preferences like 1000.
        Hint: subtracting a row's maximum from its preferences leaves the softmax unchanged.
        """
        # TODO: implement GradientBanditAgent.policy
        raise NotImplementedError("GradientBanditAgent.policy is not implemented yet")

    def act(self, rng: np.random.Generator) -> np.ndarray:
        """Sample one arm per run from `self.policy()`. Returns int, shape (runs,).

        Hint: draw one uniform number per run and count how many cumulative probabilities
        (np.cumsum along the arms, leaving out the last, which is 1) lie below it.
        """
        # TODO: implement GradientBanditAgent.act
        raise NotImplementedError("GradientBanditAgent.act is not implemented yet")

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from one step (S&B equation 2.12); actions and rewards have shape (runs,).

        1. Fold this step's reward into the running average: steps <- steps + 1,
           mean_reward <- mean_reward + (R - mean_reward) / steps.
        2. For every arm a, with pi the policy from *before* this update:
               H(a) <- H(a) + step_size * (R - baseline) * (1[a == A] - pi(a)),
           where baseline is the new mean_reward (this reward included), or 0 when
           `self.baseline` is False.
        Hint: `np.eye(self.k)[actions]` is the one-hot (runs, k) array of 1[a == A].
        """
        # TODO: implement GradientBanditAgent.update
        raise NotImplementedError("GradientBanditAgent.update is not implemented yet")


# ============================================================================ experiments


@dataclass
class Curves:
    """What one experiment measured at every step, averaged over the runs."""

    average_reward: np.ndarray  # float, shape (steps,)
    optimal_action: np.ndarray  # float, shape (steps,): fraction of runs that chose a best arm


def run_experiment(
    agent: Agent, testbed: Testbed, steps: int, rng: np.random.Generator
) -> Curves:
    """Run `agent` on all of `testbed`'s runs at once for `steps` steps.

    First reset the testbed with `rng` (new problems). Then at every step: the agent chooses
    one arm per run (`agent.act(rng)`), the testbed pays the rewards (`testbed.pull(actions,
    rng)`), and the agent learns from them (`agent.update(actions, rewards)`). Record the mean
    reward over the runs and the fraction of runs whose arm was optimal *when it was chosen*
    (ask `testbed.optimal_arms()` before pulling: a drifting testbed changes afterwards).
    Returns Curves with two float arrays of shape (steps,).
    Hint: the only Python loop is the one over steps.
    """
    # TODO: implement run_experiment
    raise NotImplementedError("run_experiment is not implemented yet")


# ---------------------------------------------------------------------------- the figures
# Plumbing from here on: which agents each of the book's figures compares, and the script.

AgentFactory = Callable[[int, int], Agent]  # (runs, k) -> a fresh agent


@dataclass(frozen=True)
class BookFigure:
    title: str
    agents: dict[str, AgentFactory]  # curve label -> factory
    q_star_mean: float = 0.0  # Figure 2.5 shifts the true values up by 4


FIGURES: dict[str, BookFigure] = {
    "figure_2_2": BookFigure(
        "Figure 2.2: greedy and epsilon-greedy, sample averages",
        {
            "epsilon = 0 (greedy)": lambda runs, k: EpsilonGreedyAgent(runs, k, epsilon=0.0),
            "epsilon = 0.01": lambda runs, k: EpsilonGreedyAgent(runs, k, epsilon=0.01),
            "epsilon = 0.1": lambda runs, k: EpsilonGreedyAgent(runs, k, epsilon=0.1),
        },
    ),
    "figure_2_3": BookFigure(
        "Figure 2.3: optimistic initial values, constant step size 0.1",
        {
            "optimistic, greedy, Q1 = 5": lambda runs, k: EpsilonGreedyAgent(
                runs, k, epsilon=0.0, step_size=0.1, initial_value=5.0
            ),
            "realistic, epsilon = 0.1, Q1 = 0": lambda runs, k: EpsilonGreedyAgent(
                runs, k, epsilon=0.1, step_size=0.1, initial_value=0.0
            ),
        },
    ),
    "figure_2_4": BookFigure(
        "Figure 2.4: UCB and epsilon-greedy, sample averages",
        {
            "UCB, c = 2": lambda runs, k: UCBAgent(runs, k, c=2.0),
            "epsilon-greedy, epsilon = 0.1": lambda runs, k: EpsilonGreedyAgent(
                runs, k, epsilon=0.1
            ),
        },
    ),
    "figure_2_5": BookFigure(
        "Figure 2.5: gradient bandit, true values shifted by +4",
        {
            "alpha = 0.1, with baseline": lambda runs, k: GradientBanditAgent(
                runs, k, step_size=0.1, baseline=True
            ),
            "alpha = 0.4, with baseline": lambda runs, k: GradientBanditAgent(
                runs, k, step_size=0.4, baseline=True
            ),
            "alpha = 0.1, without baseline": lambda runs, k: GradientBanditAgent(
                runs, k, step_size=0.1, baseline=False
            ),
            "alpha = 0.4, without baseline": lambda runs, k: GradientBanditAgent(
                runs, k, step_size=0.4, baseline=False
            ),
        },
        q_star_mean=4.0,
    ),
}

# (average reward, fraction of optimal actions) at step 1000 of 2000 runs, read off the book's
# figures; None where the book shows no curve. One 2000-run experiment lands within about
# 0.03 reward and 1 point of percent optimal (one standard error) of its expectation; the
# expectations (README) differ from these by up to 0.06 reward (epsilon = 0.01) and 2 points.
PUBLISHED: dict[str, tuple[float | None, float]] = {
    "epsilon = 0 (greedy)": (1.00, 0.34),
    "epsilon = 0.01": (1.26, 0.59),
    "epsilon = 0.1": (1.33, 0.80),
    "optimistic, greedy, Q1 = 5": (1.48, 0.86),
    "UCB, c = 2": (1.47, 0.86),
    "alpha = 0.1, with baseline": (None, 0.84),
    "alpha = 0.1, without baseline": (None, 0.50),
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Reproduce Sutton & Barto Figures 2.2-2.5.")
    parser.add_argument("folder", nargs="?", default="figures", help="where the PNGs go")
    parser.add_argument("--runs", type=int, default=2000, help="independent bandit problems")
    parser.add_argument("--steps", type=int, default=1000, help="steps in every run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the one generator used")
    args = parser.parse_args()

    from plotting import plot_bandit_curves  # matplotlib is only needed for the figures

    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    print(f"{'curve':34} {'reward':>7} {'book':>5} {'% optimal':>10} {'book':>5}   seconds")
    for name, figure in FIGURES.items():
        curves = {}
        for label, make_agent in figure.agents.items():
            start = time.perf_counter()
            testbed = Testbed(args.runs, q_star_mean=figure.q_star_mean)
            curves[label] = run_experiment(make_agent(args.runs, 10), testbed, args.steps, rng)
            seconds = time.perf_counter() - start
            reward, optimal = curves[label].average_reward[-1], curves[label].optimal_action[-1]
            book_reward, book_optimal = PUBLISHED.get(label, (None, None))
            print(
                f"{label:34} {reward:7.2f} {_show(book_reward, 1):>5} "
                f"{100 * optimal:9.0f}% {_show(book_optimal, 100):>5}   {seconds:.2f}"
            )
        path = folder / f"{name}.png"
        plot_bandit_curves(curves, figure.title, path)
        print(f"wrote {path}")


def _show(value: float | None, scale: float) -> str:
    if value is None:
        return "-"
    return f"{scale * value:.0f}%" if scale == 100 else f"{value:.2f}"


if __name__ == "__main__":
    main()
