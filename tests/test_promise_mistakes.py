"""Docstring promises that the graded inputs used to leave unreached (issue 23) are now drawn:
each mistake below kept full marks before its test drew an input at the promise's boundary,
and now fails exactly that test, with a message that names the promise.

Each grading is the reference with passages changed the way a student writes them (several
files of one lab at once when their tests are disjoint), graded by the real CLI on the tests
named in its -k selection.

    stationary_distribution  "accurate to about 1e-10"      a slowly mixing chain
    top_p_filter             "the token that makes the sum  four equal logits: the sums are
                             reach p is kept"               exactly 1/4, 1/2, 3/4
    train_sae                "encode it under no_grad()     a first step that switches a latent
                             before the step"               off
    l0                       "a float64 scalar"             the dtype, by name
    train (DQN)              "the true next observation"    truncated 0 -> 1 transitions
    Testbed.pull             "Afterwards ... drift"         drift_std = 1
    GradientBanditAgent      "mean_reward: the average of   mean_reward compared without the
                             all rewards received so far"   baseline too
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_each_mistake_fails_its_tests

# name: (file, [(passage, replacement), ...], display-name fragments of the tests it fails,
#        texts their messages must all contain)
Mistake = tuple[str, list[tuple[str, str]], tuple[str, ...], tuple[str, ...]]

LAB2: dict[str, Mistake] = {
    "stationary_by_a_fixed_number_of_power_iterations": (
        "transformer.py",
        [("    eigenvalues, eigenvectors = torch.linalg.eig(transition.T)\n"
          "    vector = eigenvectors[:, (eigenvalues - 1).abs().argmin()].real\n"
          "    return vector / vector.sum()\n",
          "    pi = torch.full((transition.shape[0],), 1.0 / transition.shape[0],\n"
          "                    dtype=transition.dtype)\n"
          "    for _ in range(10_000):\n"
          "        pi = pi @ transition\n"
          "    return pi\n")],
        ("stationary_distribution matches",), ("mixes slowly", "power iterations"),
    ),
    "top_p_keeps_a_token_whose_sum_before_it_equals_p": (
        "transformer.py",
        [("before >= p", "before > p")],
        ("top_p_filter keeps",), ("exactly", "the last one kept"),
    ),
    "fired_latents_recorded_after_the_step": (
        "sae.py",
        [("        with torch.no_grad():\n"
          "            fired.append((sae.encode(batch) > 0).any(dim=0))\n"
          "        history[\"losses\"].append(train_step(sae, optimizer, batch, l1_coefficient))\n",
          "        history[\"losses\"].append(train_step(sae, optimizer, batch, l1_coefficient))\n"
          "        with torch.no_grad():\n"
          "            fired.append((sae.encode(batch) > 0).any(dim=0))\n")],
        ("train_sae: batches drawn",), ("first step removes", "before its step"),
    ),
    "l0_in_float32": (
        "sae.py",
        [("return (latents != 0).sum(dim=-1).to(torch.float64).mean()",
          "return (latents != 0).sum(dim=-1).float().mean()")],
        ("l0 matches",), ("dtype float32", "float64"),
    ),
}

REWARD = ("        rewards = self.q_star[np.arange(self.runs), actions]"
          " + rng.normal(size=self.runs)\n")
BANDITS: dict[str, Mistake] = {
    "drift_before_the_reward": (
        "bandits.py",
        [(REWARD + "        if self.drift_std > 0:\n"
          "            self.q_star = self.q_star + rng.normal(0.0, self.drift_std, "
          "size=self.q_star.shape)\n",
          "        if self.drift_std > 0:\n"
          "            self.q_star = self.q_star + rng.normal(0.0, self.drift_std, "
          "size=self.q_star.shape)\n" + REWARD)],
        ("Testbed: q*",), ("drift_std=1.0", "the drift comes afterwards"),
    ),
    "mean_reward_kept_only_with_the_baseline": (
        "bandits.py",
        [("        self.mean_reward += (rewards - self.mean_reward) / self.steps\n",
          "        if self.baseline:\n"
          "            self.mean_reward += (rewards - self.mean_reward) / self.steps\n")],
        ("update without a baseline",), ("mean_reward after the update", "baseline=False"),
    ),
}

DQN: dict[str, Mistake] = {
    # The transition stored after the reset, as old gym vector environments gave it: next_obs
    # of an episode's last step is the next episode's first observation.
    "transition_stored_after_the_reset": (
        "dqn.py",
        [("        buffer.add(obs, action, float(reward), next_obs, terminated, truncated)"
          "  # algorithm\n        obs = next_obs  # algorithm\n", ""),
         ("            obs, _ = env.reset()  # algorithm\n",
          "            next_obs, _ = env.reset()  # algorithm\n"
          "        buffer.add(obs, action, float(reward), next_obs, terminated, truncated)\n"
          "        obs = next_obs\n")],
        ("stores truncated transitions as truncated",), ("next observation", "before env.reset()"),
    ),
}

# grading: (lab, parts, -k selection, mistakes, points lost: the failing tests' points)
GRADINGS = {
    "lab2": ("lab2", ("transformer", "sae"),
             "stationary or entropy or filter or train_sae_loop or latent_metric", LAB2, 4),
    "bandits": ("lab1", ("bandits",), "not figure", BANDITS, 3),
    "dqn": ("lab1", ("dqn",), "not cartpole and not learns_probe", DQN, 1),
}


@pytest.mark.slow
@pytest.mark.parametrize("grading", sorted(GRADINGS))
def test_promises_at_their_boundaries(grading, grade, tmp_path):
    lab, parts, selection, mistakes, points = GRADINGS[grading]
    folder = tmp_path / f"submission-{grading}"
    folder.mkdir()
    sources: dict[str, str] = {}
    for file, changes, _, _ in mistakes.values():
        source = sources.get(file, (REPO_ROOT / "reference" / lab / file).read_text())
        for passage, replacement in changes:
            assert source.count(passage) == 1, f"the reference no longer contains: {passage!r}"
            source = source.replace(passage, replacement)
        sources[file] = source
    for file, source in sources.items():
        (folder / file).write_text(source)
    graded = grade(folder, lab, parts=parts, timeout_scale=2.0, extra=("-k", selection))
    assert graded.returncode == 0, graded.output[-2000:]
    assert_each_mistake_fails_its_tests(
        graded, {name: (fragments, messages) for name, (_, _, fragments, messages)
                 in mistakes.items()}, points)
