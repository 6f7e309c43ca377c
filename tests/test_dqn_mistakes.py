"""Mistakes students make in the DQN part fail exactly the tests that cover them, cost the
points those tests carry, and the message names the function to fix.

Each case is the reference's dqn.py with passages changed the way a student writes them (not
operator flips), graded by the real CLI without the CartPole run (it is there to show a
working agent, not to find bugs). Mistakes whose tests are disjoint share a grading. The
probe trainings are what a grading costs (the reference's answers are cached, the
submission's are not), so each grading runs only the trainings its mistakes can reach, plus
every unit test: the first grading, whose eleven mistakes touch neither probes 1, 2, 4 nor 5,
leaves those out; the others keep probe 3 or probe 6 where their mistakes show. The hidden
probe tests run `train` with the grader's helpers, so a mistake in a helper costs only that
helper's tests (the terminal and truncated gradings show it): only the public probe-4 test
runs the submission's own helpers.
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_each_mistake_fails_its_tests, variant_folder

REFERENCE = REPO_ROOT / "reference" / "lab1" / "dqn.py"
TD_TARGET = "return batch.rewards + gamma * (1.0 - batch.terminated) * next_q"

# name: ([(passage, replacement), ...], display-name fragments of the tests it fails, texts
#        their messages must all contain: the function at fault, and the hint where there is one)
Mistake = tuple[list[tuple[str, str]], tuple[str, ...], tuple[str, ...]]

INDEPENDENT: dict[str, Mistake] = {
    "qnetwork_without_the_second_relu": (
        [("hidden = F.relu(self.fc2(F.relu(self.fc1(obs))))",
          "hidden = self.fc2(F.relu(self.fc1(obs)))")],
        ("QNetwork has the layers", "QNetwork.forward computes"), ("QNetwork(",),
    ),
    "next_index_that_never_wraps": (
        [("        i = self.next_index\n", "        i = self.next_index % self.capacity\n"),
         ("        self.next_index = (i + 1) % self.capacity\n", "        self.next_index += 1\n")],
        ("ReplayBuffer.add fills slots",), ("calls to add", "next_index is", "wraps around"),
    ),
    "sample_without_replacement": (
        [("indices = rng.integers(0, len(self), size=batch_size)",
          "indices = rng.choice(len(self), size=batch_size, replace=False)")],
        ("ReplayBuffer.sample returns",), ("in sample",),
    ),
    # The slope formula divides by zero when there is no exploration phase.
    "schedule_as_a_clipped_slope": (
        [("    duration = exploration_fraction * total_timesteps\n"
          "    if step >= duration:\n        return end_e\n"
          "    return start_e + (end_e - start_e) * step / duration",
          "    slope = (end_e - start_e) / (exploration_fraction * total_timesteps)\n"
          "    return max(end_e, start_e + slope * step)")],
        ("linear_schedule decays",), ("in linear_schedule", "ZeroDivisionError"),
    ),
    "exploring_with_np_random": (
        [("        return int(rng.integers(num_actions))\n",
          "        return int(np.random.randint(num_actions))\n")],
        ("epsilon_greedy explores uniformly",), ("epsilon_greedy", "rng you are given"),
    ),
    "td_target_without_no_grad": (
        [("    with torch.no_grad():\n        next_q = target_network(batch.next_observations)"
          ".max(dim=1).values\n        return",
          "    if True:\n        next_q = target_network(batch.next_observations)"
          ".max(dim=1).values\n        return")],
        ("no gradient can flow", "sends no gradient into the target network"),
        ("torch.no_grad()",),
    ),
    "sync_target_shares_the_tensors": (
        [("    # BEGIN SOLUTION\n    target_network.load_state_dict(q_network.state_dict())\n",
          "    # BEGIN SOLUTION\n"
          "    for target, online in zip(target_network.parameters(), q_network.parameters()):\n"
          "        target.data = online.data\n")],
        ("sync_target copies",), ("sync_target", "share tensors"),
    ),
    "evaluate_seeds_only_the_first_episode": (
        [("        obs, _ = env.reset(seed=seed + episode)",
          "        obs, _ = env.reset(seed=seed) if episode == 0 else env.reset()")],
        ("evaluate plays greedy episodes",), ("evaluate(q_network", "seed=seed + i"),
    ),
    "episode_return_never_reset": (
        [("            episode_return = 0.0\n            obs, _ = env.reset()",
          "            obs, _ = env.reset()")],
        ("logs its episodes",), ("result.episode_returns", "start every episode from 0"),
    ),
    "one_batch_for_all_gradient_steps": (
        [("                for _ in range(config.gradient_steps):\n"
          "                    batch = buffer.sample(config.batch_size, rng)  # algorithm\n",
          "                batch = buffer.sample(config.batch_size, rng)  # algorithm\n"
          "                for _ in range(config.gradient_steps):\n")],
        ("takes gradient_steps steps",), ("buffer.sample", "a new batch for each"),
    ),
    # Probe 6 is only truncated: stored as terminated, its value is cut to ~1.67 / 2.
    "truncation_stored_as_termination": (
        [("buffer.add(obs, action, float(reward), next_obs, terminated, truncated)",
          "buffer.add(obs, action, float(reward), next_obs, terminated or truncated, truncated)")],
        ("probe environment 6's", "stores truncated transitions as truncated"),
        ("`terminated`", "buffer"),
    ),
}

TERMINAL: dict[str, Mistake] = {
    # Cascades into train_step's tests (train_step calls td_target), not into the hidden
    # probe trainings (they run train with the grader's helpers); every message names
    # td_target.
    "no_one_minus_terminated": (
        [(TD_TARGET, "return batch.rewards + gamma * next_q")],
        ("td_target bootstraps unless terminated", "no gradient can flow",
         "train_step gives the reference's loss", "sends no gradient into the target network"),
        ("td_target",),
    ),
    # Only linear_schedule's own test: the loop's tests run train with the grader's schedule.
    "schedule_over_the_whole_run": (
        [("duration = exploration_fraction * total_timesteps", "duration = total_timesteps")],
        ("linear_schedule decays",), ("linear_schedule",),
    ),
    "evaluate_reseeds_every_episode_alike": (
        [("        obs, _ = env.reset(seed=seed + episode)",
          "        obs, _ = env.reset(seed=seed)")],
        ("evaluate plays greedy episodes",), ("evaluate(q_network", "seed=seed + i"),
    ),
    "learning_starts_one_step_late": (
        [("        if step >= config.learning_starts:",
          "        if step > config.learning_starts:")],
        ("takes gradient_steps steps",), ("called train_step at steps", "step >= learning_starts"),
    ),
}

UNSYNCED: dict[str, Mistake] = {
    # Probe 4 never bootstraps, so the public probe-4 test sees it in the target network's
    # values, not in the learned ones.
    "target_network_never_synced": (
        [("                sync_target(q_network, target_network)  # algorithm\n",
          "                pass\n")],
        ("probe environment 6's", "train syncs the target network",
         "stores truncated transitions as truncated", "takes gradient_steps steps",
         "with your other functions, learns probe 4"),
        ("sync",),
    ),
    "mean_squared_error_for_huber": (
        [("loss = F.smooth_l1_loss(q_taken, targets)", "loss = F.mse_loss(q_taken, targets)")],
        ("train_step gives the reference's loss", "sends no gradient into the target network"),
        ("train_step",),
    ),
}

TRUNCATED: dict[str, Mistake] = {
    "bootstrapping_cut_at_truncation_in_td_target": (
        [(TD_TARGET, "return batch.rewards + gamma * (1.0 - torch.maximum(batch.terminated, "
          "batch.truncated)) * next_q")],
        ("td_target bootstraps unless terminated", "no gradient can flow",
         "train_step gives the reference's loss", "sends no gradient into the target network"),
        ("td_target",),
    ),
}

# grading: (the tests it runs, its mistakes, the points they lose: the sum of the failing
# tests' points, stated so that a mistake that starts failing an extra test is noticed)
GRADINGS: dict[str, tuple[str, dict[str, Mistake], int]] = {
    "independent": ("not cartpole and (not learns_probe or 3 or 6)", INDEPENDENT, 21),
    "terminal": ("not cartpole and not learns_probe", TERMINAL, 13),
    "unsynced": ("not cartpole and (not learns_probe or 6 or train_learns)", UNSYNCED, 9),
    "truncated": ("not cartpole and not learns_probe and not bookkeeping", TRUNCATED, 8),
}


@pytest.mark.slow
@pytest.mark.parametrize("grading", sorted(GRADINGS))
def test_mistakes_each_fail_their_own_tests(grading, grade, tmp_path):
    """Each mistake fails exactly its tests, each message naming the function (and the slip
    where the test recognises it); the points lost are those tests' points."""
    selection, mistakes, points = GRADINGS[grading]
    changes = [change for replacements, _, _ in mistakes.values() for change in replacements]
    graded = grade(variant_folder(tmp_path, REFERENCE, grading, changes), parts=("dqn",),
                   timeout_scale=2.0, extra=("-k", selection))
    assert graded.returncode == 0, graded.output[-2000:]
    assert_each_mistake_fails_its_tests(
        graded, {name: (fragments, messages) for name, (_, fragments, messages)
                 in mistakes.items()}, points)
