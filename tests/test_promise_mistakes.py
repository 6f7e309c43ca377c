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
    numerical_gradient       "Central finite-difference     a term of curvature 2000-4000
                             gradient"                      (one-sided: 4e-4 off or more)
    evaluate                 "ties go to the lowest action" a Q-network whose actions tie
    EpsilonGreedyAgent       "counts: int (runs, k)"        the dtype after each update
    GradientBanditAgent      "steps: int"                   its type after the update
    sample_next_token        "apply top_k_filter ..., then  probabilities 0.5, 0.3, 0.2 with
                             top_p_filter"                  top_k 2 and top_p 0.52-0.6
    stationary_distribution  "accurate to about 1e-10"      atol 1e-10 on the slow chain
    induction_scores,        "Returns (heads,) in the       a float32 pattern
    previous_token_scores    pattern's dtype"
    loss_by_position         "in the logits' dtype"         float32 logits
    train_sae                "one float per step"           the losses' types
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
    "top_p_applied_before_top_k": (
        "transformer.py",
        [("    if top_k is not None:\n        logits = top_k_filter(logits, top_k)\n"
          "    if top_p is not None:\n        logits = top_p_filter(logits, top_p)\n",
          "    if top_p is not None:\n        logits = top_p_filter(logits, top_p)\n"
          "    if top_k is not None:\n        logits = top_k_filter(logits, top_k)\n")],
        ("sample_next_token: greedy",), ("top_k_filter first, then top_p_filter",),
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

# The same parts again, for mistakes in functions (or tests) the first grading's mistakes
# already touch.
LAB2_PRECISION: dict[str, Mistake] = {
    # Power iteration until pi stops changing by 1e-13: the error is the change divided by
    # 1 - (second eigenvalue), about 1e-9 on the slowly mixing chain.
    "stationary_by_power_iteration_until_the_change_is_small": (
        "transformer.py",
        [("    eigenvalues, eigenvectors = torch.linalg.eig(transition.T)\n"
          "    vector = eigenvectors[:, (eigenvalues - 1).abs().argmin()].real\n"
          "    return vector / vector.sum()\n",
          "    pi = torch.full((transition.shape[0],), 1.0 / transition.shape[0],\n"
          "                    dtype=transition.dtype)\n"
          "    while True:\n"
          "        new = pi @ transition\n"
          "        if (new - pi).abs().max() < 1e-13:\n"
          "            return new\n"
          "        pi = new\n")],
        ("stationary_distribution matches",), ("mixes slowly", "accurate to about 1e-10"),
    ),
    "scores_averaged_in_float64": (
        "induction.py",
        [("    return stripe[..., 1:].mean(dim=(0, -1))\n",
          "    return stripe[..., 1:].double().mean(dim=(0, -1))\n"),
         ("    return pattern.diagonal(-1, dim1=-2, dim2=-1).mean(dim=(0, -1))\n",
          "    return pattern.diagonal(-1, dim1=-2, dim2=-1).double().mean(dim=(0, -1))\n")],
        ("induction_scores matches", "previous_token_scores matches"),
        ("float32 pattern", "in the pattern's dtype"),
    ),
    "loss_by_position_in_float64": (
        "induction.py",
        [("    log_probs = logits[:, :-1].log_softmax(dim=-1)\n",
          "    log_probs = logits[:, :-1].double().log_softmax(dim=-1)\n")],
        ("loss_by_position matches",), ("float32 logits", "in the logits' dtype"),
    ),
    # The loss before the step from the forward pass that finds the fired latents: the same
    # value as train_step's, but a 0-dim tensor.
    "train_sae_records_loss_tensors": (
        "sae.py",
        [("        with torch.no_grad():\n"
          "            fired.append((sae.encode(batch) > 0).any(dim=0))\n"
          "        history[\"losses\"].append(train_step(sae, optimizer, batch, l1_coefficient))\n",
          "        with torch.no_grad():\n"
          "            reconstruction, latents = sae(batch)\n"
          "            fired.append((latents > 0).any(dim=0))\n"
          "            history[\"losses\"].append(sae_loss(batch, reconstruction, latents,\n"
          "                                               l1_coefficient))\n"
          "        train_step(sae, optimizer, batch, l1_coefficient)\n")],
        ("train_sae: batches drawn",), ("one float per step", "Tensor"),
    ),
}

BASICS: dict[str, Mistake] = {
    "numerical_gradient_by_forward_differences": (
        "basics.py",
        [("        flat[i] = original - eps\n"
          "        minus = f(flat.reshape(x.shape)).item()\n"
          "        flat[i] = original\n"
          "        grad[i] = (plus - minus) / (2 * eps)\n",
          "        flat[i] = original\n"
          "        minus = f(flat.reshape(x.shape)).item()\n"
          "        grad[i] = (plus - minus) / eps\n")],
        ("numerical_gradient approximates",), ("one-sided difference", "central difference"),
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

BANDIT_TYPES: dict[str, Mistake] = {
    # One-hot rows added to the counts (the gradient bandit's hint) make them floats.
    "counts_turned_into_floats": (
        "bandits.py",
        [("        self.counts[rows, actions] += 1\n",
          "        self.counts = self.counts + np.eye(self.k)[actions]\n")],
        ("keeps the sample average",), ("counts: int (runs, k)", "float64"),
    ),
    "steps_counted_as_a_float": (
        "bandits.py",
        [("        self.steps += 1\n", "        self.steps += 1.0\n")],
        ("update with the average-reward baseline", "update without a baseline"),
        ("steps: int", "float"),
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
    # Ties broken at random (with a generator seeded from `seed`), as the bandits' greedy does.
    "evaluate_breaks_ties_at_random": (
        "dqn.py",
        [("    env = make_env(env_id)\n    returns = []\n",
          "    env = make_env(env_id)\n    returns = []\n"
          "    rng = np.random.default_rng(seed)\n"),
         ("            obs, reward, terminated, truncated, _ = env.step("
          "int(q_values.argmax(dim=1).item()))\n",
          "            q = q_values[0].cpu().numpy()\n"
          "            action = int(rng.choice(np.flatnonzero(q == q.max())))\n"
          "            obs, reward, terminated, truncated, _ = env.step(action)\n")],
        ("evaluate plays greedy episodes",), ("Q-values tie", "ties go to the lowest action"),
    ),
}

# Found by make mutation's float32 operator: a precision promise of the modular-addition part.
MODULAR: dict[str, Mistake] = {
    "key_frequencies_powers_in_float32": (
        "modular_addition.py",
        [("    power = norms.to(torch.float64).pow(2)\n",
          "    power = norms.to(torch.float32).pow(2)\n")],
        ("key_frequencies picks",), ("1e-9 larger", "compare the powers in float64"),
    ),
}

# grading: (lab, parts, -k selection, mistakes, points lost: the failing tests' points, the
# grading seed). Seeds at which the mistakes kept full marks under the old tests: 2 for the
# forward difference (it passed test_numerical_gradient about 1 grading in 8), 1 for the
# power iteration stopped at a change of 1e-13 (6.8e-10 off there, inside the old atol 1e-9;
# about 1 grading in 4).
GRADINGS = {
    "lab2": ("lab2", ("transformer", "sae"),
             "stationary or entropy or filter or train_sae_loop or latent_metric "
             "or sample_next_token", LAB2, 5, 1234),
    "lab2-precision": ("lab2", ("transformer", "induction", "sae"),
                       "stationary or scores_match or loss_by_position or train_sae_loop",
                       LAB2_PRECISION, 5, 1),
    "basics": ("lab1", ("basics",), "numerical_gradient", BASICS, 2, 2),
    "bandits": ("lab1", ("bandits",), "not figure", BANDITS, 3, 1234),
    "bandit-types": ("lab1", ("bandits",), "sample_average or gradient_bandit_update",
                     BANDIT_TYPES, 5, 1234),
    "dqn": ("lab1", ("dqn",), "not cartpole and not learns_probe", DQN, 3, 1234),
    "modular": ("lab2", ("modular_addition",), "key_frequencies", MODULAR, 1, 1234),
}


@pytest.mark.slow
@pytest.mark.parametrize("grading", sorted(GRADINGS))
def test_promises_at_their_boundaries(grading, grade, tmp_path):
    lab, parts, selection, mistakes, points, seed = GRADINGS[grading]
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
    graded = grade(folder, lab, parts=parts, seed=seed, timeout_scale=2.0,
                   extra=("-k", selection))
    assert graded.returncode == 0, graded.output[-2000:]
    assert_each_mistake_fails_its_tests(
        graded, {name: (fragments, messages) for name, (_, _, fragments, messages)
                 in mistakes.items()}, points)
