"""Mistakes students make in the bandits part fail exactly the tests that cover them, cost the
points those tests carry, and the message names the function to fix.

Each case is the reference's bandits.py with passages changed the way a student writes them
(not operator flips), graded by the real CLI on the unit tests (the figure runs are left out
to keep this quick). Mistakes whose tests are disjoint share a grading: seventeen mistakes in
two gradings, since no two of a grading can affect each other's tests.
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_each_mistake_fails_its_tests, variant_folder

REFERENCE = REPO_ROOT / "reference" / "lab1" / "bandits.py"

# name: ([(passage, replacement), ...], display-name fragments of the tests it fails, texts
#        their messages must all contain: the function at fault, and the hint where there is one)
Mistake = tuple[list[tuple[str, str]], tuple[str, ...], tuple[str, ...]]

EPSILON_GREEDY_ACT = (
    "        explore = rng.random(self.runs) < self.epsilon\n"
    "        random_arms = rng.integers(self.k, size=self.runs)\n"
    "        return np.where(explore, random_arms, greedy(self.values, rng))"
)
GRADIENT_UPDATE = (
    "        pi = self.policy()\n"
    "        self.steps += 1\n"
    "        self.mean_reward += (rewards - self.mean_reward) / self.steps\n"
    "        baseline = self.mean_reward if self.baseline else np.zeros(self.runs)\n"
    "        one_hot = np.eye(self.k)[actions]\n"
    "        advantage = (rewards - baseline)[:, None]\n"
    "        self.preferences += self.step_size * advantage * (one_hot - pi)\n"
)
POLICY = "shifted = np.exp(self.preferences - self.preferences.max(axis=1, keepdims=True))"

FIRST: dict[str, Mistake] = {
    "reset_forgets_q_star_std": (
        [("rng.normal(self.q_star_mean, self.q_star_std, size=(self.runs, self.k))",
          "rng.normal(self.q_star_mean, size=(self.runs, self.k))")],
        ("Testbed: q*",), ("Testbed(", "after reset(rng)", "standard deviation"),
    ),
    # greedy breaks no ties: UCB's first step (every arm untried, all +inf) fails too, and
    # its message sends the student to greedy.
    "greedy_by_np_argmax": (
        [("return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)",
          "return values.argmax(axis=1)")],
        ("greedy chooses uniformly among tied maxima", "chooses an arm never tried"),
        ("greedy",),
    ),
    "random_agent_never_picks_the_last_arm": (
        [("        return rng.integers(self.k, size=self.runs)\n",
          "        return rng.integers(0, self.k - 1, size=self.runs)\n")],
        ("RandomAgent chooses every arm",), ("RandomAgent(", ").act"),
    ),
    "one_exploration_draw_for_all_runs": (
        [(EPSILON_GREEDY_ACT,
          "        if rng.random() < self.epsilon:\n"
          "            return rng.integers(self.k, size=self.runs)\n"
          "        return greedy(self.values, rng)")],
        ("EpsilonGreedyAgent explores with probability epsilon",),
        ("EpsilonGreedyAgent(", ").act", "every run needs its own random numbers"),
    ),
    "sample_average_over_all_pulls": (
        [("step = 1.0 / self.counts[rows, actions]", "step = 1.0 / self.counts.sum(axis=1)")],
        ("keeps the sample average",),
        ("EpsilonGreedyAgent(", ").update", "with this arm's own count N(A)"),
    ),
    "ucb_bonus_without_the_log": (
        [("bonus = self.c * np.sqrt(np.log(t) / self.counts)",
          "bonus = self.c * np.sqrt(t / self.counts)")],
        ("UCBAgent.act maximises",), ("UCBAgent(", ").act", "natural log of t"),
    ),
    "softmax_without_subtracting_the_maximum": (
        [(POLICY, "shifted = np.exp(self.preferences)")],
        ("policy is the softmax",), ("GradientBanditAgent(", ").policy()", "NaN"),
    ),
    "one_uniform_draw_for_all_runs": (
        [("return (rng.random((self.runs, 1)) >= cumulative).sum(axis=1)",
          "return (rng.random() >= cumulative).sum(axis=1)")],
        ("samples each arm with probability",), ("GradientBanditAgent(", ").act"),
    ),
    "gradient_bandit_ignores_its_baseline": (
        [("baseline = self.mean_reward if self.baseline else np.zeros(self.runs)",
          "baseline = np.zeros(self.runs)")],
        ("update with the average-reward baseline",),
        ("GradientBanditAgent(", ").update", "ignores the baseline although baseline=True"),
    ),
    "optimal_arms_asked_after_the_pull": (
        [("        best = testbed.optimal_arms()\n        rewards = testbed.pull(actions, rng)",
          "        rewards = testbed.pull(actions, rng)\n        best = testbed.optimal_arms()")],
        ("run_experiment returns",), ("run_experiment(", "counts the best arms after the pull"),
    ),
}

SECOND: dict[str, Mistake] = {
    "one_drift_step_per_run": (
        [("rng.normal(0.0, self.drift_std, size=self.q_star.shape)",
          "rng.normal(0.0, self.drift_std, size=(self.runs, 1))")],
        ("Testbed: q*",), ("Testbed(", "drift"),
    ),
    "epsilon_on_the_wrong_branch": (
        [("return np.where(explore, random_arms, greedy(self.values, rng))",
          "return np.where(explore, greedy(self.values, rng), random_arms)")],
        ("EpsilonGreedyAgent explores with probability epsilon", "with epsilon 0 always exploits"),
        ("EpsilonGreedyAgent(", ").act"),
    ),
    # Two slips in UCBAgent.act that touch different tests: without the +inf for untried arms
    # the first step (t = 1, ln t = 0, 0 / 0) is all NaN; a t counted from 0 moves close calls.
    "ucb_untried_arms_not_given_inf": (
        [("scores = np.where(self.counts == 0, np.inf, self.values + bonus)",
          "scores = self.values + bonus")],
        ("chooses an arm never tried",), ("UCBAgent(", ").act", "score +inf"),
    ),
    "ucb_counts_steps_from_zero": (
        [("t = self.counts.sum(axis=1, keepdims=True) + 1",
          "t = self.counts.sum(axis=1, keepdims=True)")],
        ("UCBAgent.act maximises",), ("UCBAgent(", ").act", "off by one"),
    ),
    "softmax_shifted_by_the_largest_preference_of_all_runs": (
        [(POLICY, "shifted = np.exp(self.preferences - self.preferences.max())")],
        ("policy is the softmax",), ("GradientBanditAgent(", ").policy()"),
    ),
    "baseline_before_the_reward_is_folded_in": (
        [(GRADIENT_UPDATE,
          "        pi = self.policy()\n"
          "        baseline = self.mean_reward if self.baseline else np.zeros(self.runs)\n"
          "        one_hot = np.eye(self.k)[actions]\n"
          "        advantage = (rewards - baseline)[:, None]\n"
          "        self.preferences += self.step_size * advantage * (one_hot - pi)\n"
          "        self.steps += 1\n"
          "        self.mean_reward += (rewards - self.mean_reward) / self.steps\n")],
        ("update with the average-reward baseline",),
        ("GradientBanditAgent(", ").update", "mean_reward from before this step's reward"),
    ),
    "run_experiment_never_resets_the_testbed": (
        [("    testbed.reset(rng)\n    average_reward = np.zeros(steps)",
          "    average_reward = np.zeros(steps)")],
        ("run_experiment returns",), ("run_experiment(", "testbed.reset(rng) was called 0"),
    ),
}

# The points each grading loses: the sum of its failing tests' points, stated so that a test
# whose points change, or a mistake that starts to fail an extra test, is noticed.
LOST = {"first": 18, "second": 13}


@pytest.mark.slow
@pytest.mark.parametrize("grading", ["first", "second"])
def test_mistakes_each_fail_their_own_tests(grading, grade, tmp_path):
    """Each mistake fails exactly its tests, each message naming the function (and the slip
    where the test recognises it); the points lost are those tests' points."""
    mistakes = {"first": FIRST, "second": SECOND}[grading]
    changes = [change for replacements, _, _ in mistakes.values() for change in replacements]
    graded = grade(variant_folder(tmp_path, REFERENCE, grading, changes), parts=("bandits",),
                   timeout_scale=2.0, extra=("-k", "not figure"))
    assert graded.returncode == 0, graded.output[-2000:]
    assert_each_mistake_fails_its_tests(
        graded, {name: (fragments, messages) for name, (_, fragments, messages)
                 in mistakes.items()}, LOST[grading])
