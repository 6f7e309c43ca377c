"""Typical mistakes in lab 3's preferences part fail exactly the tests that cover them, with a
message that names the function; correct alternatives to the reference's code get full marks.

Each variant is the reference's preferences.py with passages changed the way a student might
write them, graded by the real CLI on the unit tests (the outcome tests train for tens of
steps and show that the pieces work together, not which is broken). Mistakes that fail
different tests share one grading. reply_log_probs feeds dpo_step, train_dpo and the three
REINFORCE tests, RewardModel feeds train_reward_model and the REINFORCE tests, dpo_loss feeds
dpo_step and train_dpo: a group holds at most one mistake on each of these chains. A test that
fails because a function it calls from inside the submission is wrong carries the engine's
line naming that function, so the message to look for is the broken function's name.
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_mistakes_named, grade_variant

REFERENCE = REPO_ROOT / "reference" / "lab3" / "preferences.py"
UNITS = ("-k", "not (learns or improves or hacks)")

# The tests that call reply_log_probs, directly or through dpo_step and reinforce_loss.
LOG_PROB_TESTS = ("reply_log_probs: log pi", "dpo_step: one step", "train_dpo: three steps",
                  "reinforce_loss: (R", "reinforce_step: one step", "train_reinforce: two steps")
DPO_TESTS = ("implicit_reward and dpo_loss", "dpo_step: one step", "train_dpo: three steps")
REINFORCE_TESTS = ("reinforce_loss: (R", "reinforce_step: one step",
                   "train_reinforce: two steps")

# grading: {case: (passage in the reference, the mistake, display names of the tests that must
#           fail (substrings), text their output must contain)}
MISTAKES = {
    "log_probabilities_and_judges": {
        "logits_scored_against_their_own_token": (
            "    log_probs = model(tokens)[:, :-1].log_softmax(dim=-1)\n"
            "    taken = log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)\n"
            "    return (taken * reply_mask[:, 1:]).sum(dim=-1)",
            "    log_probs = model(tokens).log_softmax(dim=-1)\n"
            "    taken = log_probs.gather(-1, tokens[:, :, None]).squeeze(-1)\n"
            "    return (taken * reply_mask).sum(dim=-1)",
            LOG_PROB_TESTS, "reply_log_probs"),
        "kl_of_the_reference_to_the_policy": (
            "    kl = (log_pi.exp() * (log_pi - log_ref)).sum(dim=-1)",
            "    kl = (log_ref.exp() * (log_ref - log_pi)).sum(dim=-1)",
            ("kl_per_token: the exact",), "kl_per_token"),
        "a_preferred_where_u_is_above": (
            "    return u < torch.sigmoid(reward_a - reward_b)",
            "    return u > torch.sigmoid(reward_a - reward_b)",
            ("bradley_terry_preferences: a preferred",), "bradley_terry_preferences"),
        "log_of_the_sigmoid": (
            "    return -nn.functional.logsigmoid(chosen_scores - rejected_scores).mean()",
            "    return -torch.log(torch.sigmoid(chosen_scores - rejected_scores)).mean()",
            ("bradley_terry_loss: mean",), "infinite"),
        "reward_model_gradients_cleared_before_the_step": (
            "        optimizer.zero_grad()\n"
            "        loss.backward()\n"
            "        optimizer.step()\n"
            "        losses.append(loss.item())",
            "        loss.backward()\n"
            "        optimizer.zero_grad()\n"
            "        optimizer.step()\n"
            "        losses.append(loss.item())",
            ("train_reward_model: a few",), "train_reward_model"),
    },
    "masks_and_averages": {
        "prompt_and_padding_counted": (
            "    return (taken * reply_mask[:, 1:]).sum(dim=-1)",
            "    return taken.sum(dim=-1)",
            LOG_PROB_TESTS, "reply_log_probs"),
        "kl_averaged_per_reply_then_over_replies": (
            "    return kl[scored].mean()",
            "    return ((kl * scored).sum(dim=-1) / scored.sum(dim=-1)).mean()",
            ("kl_per_token: the exact",), "kl_per_token"),
        "u_drawn_in_float32": (
            "    u = torch.rand(reward_a.shape[0], generator=generator, dtype=reward_a.dtype)",
            "    u = torch.rand(reward_a.shape[0], generator=generator)",
            ("bradley_terry_preferences: a preferred",), "bradley_terry_preferences"),
    },
    "scores_and_references": {
        "reference_kl_with_gradients": (
            "    with torch.no_grad():\n"
            "        log_ref = reference(tokens)[:, :-1].log_softmax(dim=-1)\n",
            "    log_ref = reference(tokens)[:, :-1].log_softmax(dim=-1)\n",
            ("kl_per_token: the exact",), "torch.no_grad()"),
        "reward_model_scores_the_prompt": (
            "        return (self.weights[tokens] * reply_mask).sum(dim=-1)",
            "        return self.weights[tokens].sum(dim=-1)",
            ("RewardModel.forward: sum", "train_reward_model: a few", *REINFORCE_TESTS),
            "RewardModel.forward"),
        "dpo_without_the_reference": (
            "    margin = (implicit_reward(policy_chosen, reference_chosen, beta)\n"
            "              - implicit_reward(policy_rejected, reference_rejected, beta))\n",
            "    margin = beta * (policy_chosen - policy_rejected)\n",
            DPO_TESTS, "dpo_loss"),
    },
    "shifts_scales_and_baselines": {
        "kl_mask_not_shifted": (
            "    scored = reply_mask[:, 1:]",
            "    scored = reply_mask[:, :-1]",
            ("kl_per_token: the exact",), "kl_per_token"),
        "beta_outside_the_log_sigmoid": (
            "    margin = (implicit_reward(policy_chosen, reference_chosen, beta)\n"
            "              - implicit_reward(policy_rejected, reference_rejected, beta))\n"
            "    return -nn.functional.logsigmoid(margin).mean()",
            "    margin = ((policy_chosen - reference_chosen)\n"
            "              - (policy_rejected - reference_rejected))\n"
            "    return -beta * nn.functional.logsigmoid(margin).mean()",
            DPO_TESTS, "dpo_loss"),
        "reinforce_without_the_baseline": (
            "    advantage = returns - returns.mean()",
            "    advantage = returns",
            REINFORCE_TESTS, "reinforce_loss"),
    },
    # Each found by a review: no unit test failed them before the test started one step from
    # a policy that differs from the reference, and asked for replies cut at 5 tokens.
    "sampled_from_the_reference": {
        "replies_sampled_from_the_reference": (
            "    tokens, reply_mask = sample(policy, prompts, max_new_tokens, generator)",
            "    tokens, reply_mask = sample(reference, prompts, max_new_tokens, generator)",
            # train_reinforce's second step samples from a policy one step (lr 2e-3) away from
            # the reference: at the repository's grading seed some reply differs.
            ("reinforce_step: one step", "train_reinforce: two steps"), "reinforce"),
        # Found by make mutation: the probes used to turn a returned tensor into a float.
        "dpo_step_returns_the_loss_tensor": (
            "    return loss.item()\n",
            "    return loss\n",
            ("dpo_step: one step",), "not a Python float"),
        "reward_model_losses_kept_as_tensors": (
            "        losses.append(loss.item())\n    return model, losses",
            "        losses.append(loss)\n    return model, losses",
            ("train_reward_model: a few",), "not a Python float"),
    },
    "reply_length_fixed": {
        "max_new_tokens_ignored": (
            "    tokens, reply_mask = sample(policy, prompts, max_new_tokens, generator)",
            "    tokens, reply_mask = sample(policy, prompts, 12, generator)",
            ("reinforce_step: one step",), "reinforce_step"),
        # Found by make mutation: the step tests trained at Adam's default lr, 1e-3.
        "dpo_optimiser_without_the_learning_rate": (
            "    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)\n    n = ",
            "    optimizer = torch.optim.Adam(policy.parameters())\n    n = ",
            ("train_dpo: three steps",), "train_dpo"),
    },
}

# Correct code written differently from the reference: full marks.
ALTERNATIVES = [
    # The reply's log-probabilities as minus the per-token cross-entropy.
    ("    log_probs = model(tokens)[:, :-1].log_softmax(dim=-1)\n"
     "    taken = log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)\n"
     "    return (taken * reply_mask[:, 1:]).sum(dim=-1)",
     "    logits = model(tokens)[:, :-1]\n"
     "    nll = nn.functional.cross_entropy(logits.transpose(1, 2), tokens[:, 1:],\n"
     '                                      reduction="none")\n'
     "    return -(nll * reply_mask[:, 1:]).sum(dim=-1)"),
    # torch's kl_div with log-probabilities on both sides (its target is the policy).
    ("    kl = (log_pi.exp() * (log_pi - log_ref)).sum(dim=-1)",
     '    kl = nn.functional.kl_div(log_ref, log_pi, reduction="none", log_target=True)'
     ".sum(dim=-1)"),
    # -log sigmoid(x) = softplus(-x).
    ("    return -nn.functional.logsigmoid(chosen_scores - rejected_scores).mean()",
     "    return nn.functional.softplus(rejected_scores - chosen_scores).mean()"),
    # The reward model as word counts times the weights.
    ("        return (self.weights[tokens] * reply_mask).sum(dim=-1)",
     "        counts = torch.zeros(tokens.shape[0], self.weights.shape[0],\n"
     "                             dtype=self.weights.dtype)\n"
     "        counts.scatter_add_(1, tokens, reply_mask.to(self.weights.dtype))\n"
     "        return counts @ self.weights"),
    # DPO's logits as the policy's margin minus the reference's, beta applied once.
    ("    margin = (implicit_reward(policy_chosen, reference_chosen, beta)\n"
     "              - implicit_reward(policy_rejected, reference_rejected, beta))\n"
     "    return -nn.functional.logsigmoid(margin).mean()",
     "    logits = (policy_chosen - policy_rejected) - (reference_chosen - reference_rejected)\n"
     "    return -nn.functional.logsigmoid(beta * logits).mean()"),
]


@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(MISTAKES))
def test_preferences_mistakes_are_named(grade, tmp_path, group):
    mistakes = MISTAKES[group]
    changes = [(passage, mistake) for passage, mistake, _, _ in mistakes.values()]
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab3", group, changes, extra=UNITS)
    assert_mistakes_named(graded, mistakes)


@pytest.mark.slow
def test_preferences_alternatives_get_full_marks(grade, tmp_path):
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab3", "alternatives", ALTERNATIVES,
                           extra=UNITS)
    assert not graded.failed(), "\n".join(graded.output_of(name) for name in graded.failed())
