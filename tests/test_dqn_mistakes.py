"""The DQN bugs that RL code gets silently wrong fail exactly the tests that cover them, with a
message that names the piece.

Each case is the reference's dqn.py with one passage changed the way a student might get it
wrong, graded by the real CLI on the unit and probe tests (the CartPole run is left out to
keep this quick: it is there to show a working agent, not to find bugs).
"""

import pytest

from autograder import REPO_ROOT
from tests.conftest import grade_mistake

REFERENCE = REPO_ROOT / "reference" / "lab1" / "dqn.py"
TD_TARGET = "return batch.rewards + gamma * (1.0 - batch.terminated) * next_q"

# case: (passage in the reference, the mistake, display names of the tests that must fail
#        (substrings), text their output must contain)
CASES = {
    "no_one_minus_terminated": (
        TD_TARGET,
        "return batch.rewards + gamma * next_q",
        ("td_target bootstraps unless terminated", "train_step gives the reference's loss",
         *(f"probe environment {probe}'s" for probe in (1, 2, 3, 4, 5))),
        "td_target",
    ),
    "bootstrapping_cut_at_truncation_in_td_target": (
        TD_TARGET,
        "return batch.rewards + gamma * (1.0 - torch.maximum(batch.terminated, "
        "batch.truncated)) * next_q",
        ("td_target bootstraps unless terminated", "train_step gives the reference's loss",
         "probe environment 6's"),
        "td_target",
    ),
    "truncation_stored_as_termination": (
        "buffer.add(obs, action, float(reward), next_obs, terminated, truncated)",
        "buffer.add(obs, action, float(reward), next_obs, terminated or truncated, truncated)",
        ("probe environment 6's", "stores truncated transitions as truncated"),
        "terminated",
    ),
    "target_network_never_synced": (
        "                sync_target(q_network, target_network)  # algorithm\n",
        "                pass\n",
        ("probe environment 3's", "probe environment 6's", "train syncs the target network",
         "syncs on schedule"),
        "sync",
    ),
    "gradient_into_the_target_network": (
        "    with torch.no_grad():\n        next_q = target_network(batch.next_observations)"
        ".max(dim=1).values\n        return",
        "    if True:\n        next_q = target_network(batch.next_observations)"
        ".max(dim=1).values\n        return",
        ("no gradient can flow", "sends no gradient into the target network"),
        "torch.no_grad()",
    ),
    "schedule_over_the_whole_run": (
        "duration = exploration_fraction * total_timesteps",
        "duration = total_timesteps",
        ("linear_schedule decays", "train explores with the schedule's epsilon"),
        "linear_schedule",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_dqn_mistake_is_named(case, grade, tmp_path):
    grade_mistake(grade, tmp_path, REFERENCE, case, *CASES[case], part="dqn",
                  extra=("-k", "not cartpole"))
