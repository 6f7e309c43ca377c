"""Typical mistakes in the bandits part fail exactly the tests that cover them, with a message
that points at the fault.

Each case is the reference's bandits.py with one passage changed the way a student might
get it wrong, graded by the real CLI (the unit tests only; the end-to-end runs are left out
to keep this quick).
"""

import pytest

from autograder import REPO_ROOT
from tests.conftest import grade_mistake

REFERENCE = REPO_ROOT / "reference" / "lab1" / "bandits.py"

# case: (passage in the reference, the mistake, display names of the tests that must fail
#        (substrings), text their output must contain)
CASES = {
    "epsilon_on_the_wrong_branch": (
        "return np.where(explore, random_arms, greedy(self.values, rng))",
        "return np.where(explore, greedy(self.values, rng), random_arms)",
        ("explores with probability epsilon", "with epsilon 0 always exploits"),
        "epsilon",
    ),
    "ucb_bonus_without_the_log": (
        "bonus = self.c * np.sqrt(np.log(t) / self.counts)",
        "bonus = self.c * np.sqrt(t / self.counts)",
        ("UCBAgent.act maximises",),
        "the bonus needs the natural log of t",
    ),
    "sample_average_over_all_pulls": (
        "step = 1.0 / self.counts[rows, actions]",
        "step = 1.0 / self.counts.sum(axis=1)",
        ("keeps the sample average",),
        "with this arm's own count N(A)",
    ),
    "gradient_bandit_ignores_its_baseline": (
        "baseline = self.mean_reward if self.baseline else np.zeros(self.runs)",
        "baseline = np.zeros(self.runs)",
        ("update with the average-reward baseline",),
        "ignores the baseline although baseline=True",
    ),
    "argmax_without_random_tie_breaking": (
        "return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)",
        "return values.argmax(axis=1)",
        ("uniformly among tied maxima",),
        "np.argmax always returns the first maximum",
    ),
    "exploring_skips_the_greedy_arm": (
        "random_arms = rng.integers(self.k, size=self.runs)",
        "random_arms = (self.values.argmax(axis=1) + rng.integers(1, self.k, size=self.runs))"
        " % self.k",
        ("explores with probability epsilon", "with epsilon 0 always exploits"),
        "picks any of the k arms",
    ),
    "optimal_arms_asked_after_the_pull": (
        "        best = testbed.optimal_arms()\n        rewards = testbed.pull(actions, rng)",
        "        rewards = testbed.pull(actions, rng)\n        best = testbed.optimal_arms()",
        ("run_experiment returns",),
        "counts the best arms after the pull",
    ),
    "softmax_without_subtracting_the_maximum": (
        "shifted = np.exp(self.preferences - self.preferences.max(axis=1, keepdims=True))",
        "shifted = np.exp(self.preferences)",
        ("policy is the softmax",),
        "NaN",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_bandits_mistake_is_named(case, grade, tmp_path):
    grade_mistake(grade, tmp_path, REFERENCE, case, *CASES[case], part="bandits",
                  extra=("-k", "not figure"))
