"""Lab 3, part 1: learning from preferences -- a reward model, DPO, and RLHF with a KL penalty.

The assistant (`model.py`) answers harmless requests with replies of varying quality. A hidden
"human" judges them (`dialogue.true_reward`: +1 per different good word, -1 per different bad
word, -1 per repeated word) and, shown two replies to the same prompt, prefers one with the
Bradley-Terry probability sigmoid(r_a - r_b). From such pairs you
- train a reward model (a score per reply word, summed over the reply) with the Bradley-Terry
  loss, and measure how well it agrees with the hidden judgement;
- train the assistant directly on the pairs with DPO (Rafailov et al. 2023), whose loss is
  ln 2 when the policy is the reference and whose implicit reward is beta log pi / pi_ref;
- train it with REINFORCE on the reward model's score, with a KL penalty to the reference and
  a baseline, and see what happens to the *true* reward with and without the penalty.

A reply is a row of `tokens` (batch, seq) with a `reply_mask` (batch, seq) bool that is True on
the reply's tokens (its `<end>` included) and False on the prompt and the padding, as
`model.sample` returns them. Every function works in any float dtype: the grader runs them in
float64 on the same weights as the reference's.

    python preferences.py     pairs, a reward model, DPO and REINFORCE with and without the
                              KL penalty on the shipped assistant, with the numbers the
                              handout reports
"""

from __future__ import annotations

import torch
from dialogue import HARMLESS, TEMPLATES, request, true_reward
from model import AssistantModel, load_model, prompt_batch, sample
from torch import nn

# ----------------------------------------------------------------------------- log-probabilities


def reply_log_probs(model: nn.Module, tokens: torch.Tensor,
                    reply_mask: torch.Tensor) -> torch.Tensor:
    """log pi(reply | prompt) of each row: (batch,).

    tokens, reply_mask: (batch, seq). The model's logits at position t score token t + 1, so
    log pi(reply | prompt) = sum over t with reply_mask[t + 1] of
    log_softmax(logits[t])[tokens[t + 1]]. The prompt's tokens and the padding count for
    nothing (position 0 is never a reply token). Gradients flow to the model.
    Hint: `log_softmax(...).gather(-1, tokens[:, 1:, None])`.
    """
    # TODO: implement reply_log_probs
    raise NotImplementedError("reply_log_probs is not implemented yet")


def kl_per_token(policy: nn.Module, reference: nn.Module, tokens: torch.Tensor,
                 reply_mask: torch.Tensor) -> torch.Tensor:
    """The mean over reply tokens of KL(pi || pi_ref) of the next-token distributions: a scalar.

    For each position t that predicts a reply token (reply_mask[t + 1] True), the exact KL over
    the whole vocabulary, sum_v pi(v) (log pi(v) - log pi_ref(v)), of the two models'
    distributions after tokens[..t]; then the mean over all such positions of the batch (not
    per row). It is never negative and is 0 when the two models agree. Gradients flow to the
    policy only (compute the reference under `torch.no_grad()`).
    """
    # TODO: implement kl_per_token
    raise NotImplementedError("kl_per_token is not implemented yet")


# ----------------------------------------------------------------------------- the reward model


def bradley_terry_preferences(reward_a: torch.Tensor, reward_b: torch.Tensor,
                              generator: torch.Generator) -> torch.Tensor:
    """Which of two replies a Bradley-Terry judge prefers: (n,) bool, True where a is preferred.

    reward_a, reward_b: (n,) float. a is preferred with probability sigmoid(r_a - r_b): draw
    `u = torch.rand(n, generator=generator, dtype=reward_a.dtype)` once and prefer a where
    u < sigmoid(r_a - r_b).
    """
    # TODO: implement bradley_terry_preferences
    raise NotImplementedError("bradley_terry_preferences is not implemented yet")


def bradley_terry_loss(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> torch.Tensor:
    """The mean over pairs of -log sigmoid(s_chosen - s_rejected): a scalar.

    Stable for score differences of any size (1e4 gives 0, -1e4 gives 1e4, never inf).
    Hint: `torch.nn.functional.logsigmoid`.
    """
    # TODO: implement bradley_terry_loss
    raise NotImplementedError("bradley_terry_loss is not implemented yet")


class RewardModel(nn.Module):
    """A score per word of the vocabulary, summed over the reply's words.

    Parameter: `weights` (d_vocab,), starting at zeros. It sees which words a reply uses and
    how often, not their order: it cannot tell a word used once from one repeated.
    """

    def __init__(self, d_vocab: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(d_vocab))

    def forward(self, tokens: torch.Tensor, reply_mask: torch.Tensor) -> torch.Tensor:
        """tokens, reply_mask: (batch, seq) -> scores (batch,): sum over the reply's positions
        of weights[token] (the prompt and the padding score nothing)."""
        # TODO: implement RewardModel.forward
        raise NotImplementedError("RewardModel.forward is not implemented yet")


def train_reward_model(pairs: dict[str, torch.Tensor], d_vocab: int, steps: int = 300,
                       lr: float = 0.05) -> tuple[RewardModel, list[float]]:
    """A `RewardModel(d_vocab)` trained on every pair at once (full batch) with the
    Bradley-Terry loss: `torch.optim.Adam(model.parameters(), lr=lr)`, `steps` steps.

    pairs: "chosen", "chosen_mask", "rejected", "rejected_mask" (n, seq) as `make_pairs`
    returns them. Build the model in the pairs' float dtype: `RewardModel(d_vocab).to(dtype)`
    with dtype = pairs["reward_chosen"].dtype. Returns the model and the loss before each step
    (a list of Python floats).
    """
    # TODO: implement train_reward_model
    raise NotImplementedError("train_reward_model is not implemented yet")


# ----------------------------------------------------------------------------- DPO


def implicit_reward(policy_log_probs: torch.Tensor, reference_log_probs: torch.Tensor,
                    beta: float) -> torch.Tensor:
    """DPO's implicit reward of each reply, beta * (log pi(y|x) - log pi_ref(y|x)): (batch,)."""
    # TODO: implement implicit_reward
    raise NotImplementedError("implicit_reward is not implemented yet")


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             reference_chosen: torch.Tensor, reference_rejected: torch.Tensor,
             beta: float) -> torch.Tensor:
    """The DPO loss, a scalar: the mean over pairs of -log sigmoid(implicit reward of the
    chosen reply - implicit reward of the rejected one). Inputs: (batch,) reply
    log-probabilities under the policy and the reference. Exactly ln 2 when the policy is the
    reference; stable for any difference."""
    # TODO: implement dpo_loss
    raise NotImplementedError("dpo_loss is not implemented yet")


def dpo_step(policy: nn.Module, reference: nn.Module, optimizer: torch.optim.Optimizer,
             batch: dict[str, torch.Tensor], beta: float) -> float:
    """One DPO step on `batch` ("chosen", "chosen_mask", "rejected", "rejected_mask"): the
    reply log-probabilities under the policy (with gradients) and the reference (under
    `torch.no_grad()`), the loss, zero_grad, backward, step. Returns the loss as a Python
    float (`.item()`)."""
    # TODO: implement dpo_step
    raise NotImplementedError("dpo_step is not implemented yet")


def train_dpo(policy: nn.Module, reference: nn.Module, pairs: dict[str, torch.Tensor],
              steps: int, batch_size: int, lr: float, beta: float,
              generator: torch.Generator) -> list[float]:
    """`steps` DPO steps with `torch.optim.Adam(policy.parameters(), lr=lr)`. Each step's batch
    is `batch_size` pairs drawn with replacement:
    `index = torch.randint(n, (batch_size,), generator=generator)`, then each of the four
    tensors of `pairs` indexed by it. Returns the loss of every step."""
    # TODO: implement train_dpo
    raise NotImplementedError("train_dpo is not implemented yet")


# ----------------------------------------------------------------------------- REINFORCE


def reinforce_loss(policy: nn.Module, reference: nn.Module, reward_model: nn.Module,
                   tokens: torch.Tensor, reply_mask: torch.Tensor,
                   kl_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The REINFORCE loss of sampled replies, with a KL penalty and a baseline.

    For each row: the return R = reward_model(tokens, reply_mask) - kl_coef * (log pi(reply) -
    log pi_ref(reply)), the reply log-probabilities from `reply_log_probs`; R carries no
    gradient (detach it). The baseline b is the mean of R over the batch; the loss is
    -mean((R - b) * log pi(reply)), with gradients through log pi(reply) only.
    Returns the loss and {"score": mean reward-model score, "kl": mean of log pi - log pi_ref
    per row (the sampled KL of a whole reply)}, as Python floats (`.item()`).
    """
    # TODO: implement reinforce_loss
    raise NotImplementedError("reinforce_loss is not implemented yet")


def reinforce_step(policy: nn.Module, reference: nn.Module, reward_model: nn.Module,
                   optimizer: torch.optim.Optimizer, prompts: torch.Tensor, kl_coef: float,
                   generator: torch.Generator, max_new_tokens: int = 12) -> dict[str, float]:
    """One REINFORCE step: sample one reply per row of `prompts` from the policy with
    `model.sample(policy, prompts, max_new_tokens, generator)`, then `reinforce_loss`,
    zero_grad, backward, step. Returns the loss's statistics with "loss" added, all Python
    floats."""
    # TODO: implement reinforce_step
    raise NotImplementedError("reinforce_step is not implemented yet")


def train_reinforce(policy: nn.Module, reference: nn.Module, reward_model: nn.Module,
                    prompts: torch.Tensor, steps: int, lr: float, kl_coef: float,
                    generator: torch.Generator,
                    max_new_tokens: int = 12) -> dict[str, list[float]]:
    """`steps` REINFORCE steps on `prompts` (the whole batch each step) with
    `torch.optim.Adam(policy.parameters(), lr=lr)`. Returns each step's statistics as lists:
    {"score": [...], "kl": [...], "loss": [...]}."""
    # TODO: implement train_reinforce
    raise NotImplementedError("train_reinforce is not implemented yet")


# ----------------------------------------------------------------------------- given: data


def harmless_prompts(n: int, generator: torch.Generator) -> torch.Tensor:
    """n harmless request prompts (honest persona, no suffix), each (template, topic) drawn
    uniformly: (n, 8) token ids."""
    template = torch.randint(len(TEMPLATES), (n,), generator=generator).tolist()
    topic = torch.randint(len(HARMLESS), (n,), generator=generator).tolist()
    return prompt_batch([request(TEMPLATES[i], HARMLESS[j])
                         for i, j in zip(template, topic, strict=True)])


def true_rewards(tokens: torch.Tensor, reply_mask: torch.Tensor) -> torch.Tensor:
    """The hidden judgement `dialogue.true_reward` of each reply: (batch,) float64."""
    return torch.tensor([true_reward(row[mask].tolist())
                         for row, mask in zip(tokens, reply_mask, strict=True)],
                        dtype=torch.float64)


def make_pairs(model: AssistantModel, n: int, generator: torch.Generator,
               max_new_tokens: int = 10) -> dict[str, torch.Tensor]:
    """n preference pairs: two replies sampled from `model` to each of n harmless prompts, the
    preferred one chosen by `bradley_terry_preferences` on their true rewards. Returns
    "chosen", "chosen_mask", "rejected", "rejected_mask" (n, 8 + max_new_tokens) and
    "reward_chosen", "reward_rejected" (n,) float64 (the true rewards)."""
    prompts = harmless_prompts(n, generator)
    tokens, mask = sample(model, torch.cat([prompts, prompts]), max_new_tokens, generator)
    rewards = true_rewards(tokens, mask)
    a_first = bradley_terry_preferences(rewards[:n], rewards[n:], generator)
    first, second = torch.arange(n), torch.arange(n, 2 * n)
    chosen, rejected = torch.where(a_first, first, second), torch.where(a_first, second, first)
    return {"chosen": tokens[chosen], "chosen_mask": mask[chosen],
            "rejected": tokens[rejected], "rejected_mask": mask[rejected],
            "reward_chosen": rewards[chosen], "reward_rejected": rewards[rejected]}


def main() -> None:
    """The handout's story on one seed, with the graded tests' settings but one: the
    REINFORCE runs here keep the reward model's weight on <end> as the pairs left it (the
    graded runs set it to 0; see the handout)."""
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    reference = load_model()
    train, test = make_pairs(reference, 256, generator), make_pairs(reference, 256, generator)
    reward_model, losses = train_reward_model(train, reference.config.d_vocab, 200, 0.05)
    with torch.no_grad():
        margin = (reward_model(test["chosen"], test["chosen_mask"])
                  - reward_model(test["rejected"], test["rejected_mask"]))
    truth = test["reward_chosen"] - test["reward_rejected"]
    agree = ((margin > 0) == (truth > 0))[truth != 0].double().mean()
    print(f"reward model: loss {losses[0]:.3f} -> {losses[-1]:.3f}, orders {agree:.1%} of the "
          "held-out pairs whose true rewards differ as the true reward does")
    prompts = harmless_prompts(512, generator)
    tokens, mask = sample(reference, prompts, 12, generator)
    print(f"the shipped assistant: true reward {true_rewards(tokens, mask).mean():.2f}")
    policy = load_model()
    train_dpo(policy, reference, train, 60, 32, 5e-4, 1.0, generator)
    tokens, mask = sample(policy, prompts, 12, generator)
    print(f"after DPO: true reward {true_rewards(tokens, mask).mean():.2f}, KL "
          f"{kl_per_token(policy, reference, tokens, mask).item():.3f} nats per token")
    for kl_coef in (1.0, 0.0):
        policy = load_model()
        history = train_reinforce(policy, reference, reward_model, prompts[:64], 60, 3e-3,
                                  kl_coef, generator)
        tokens, mask = sample(policy, prompts, 12, generator)
        print(f"REINFORCE, kl_coef {kl_coef}: reward-model score {history['score'][0]:.2f} -> "
              f"{history['score'][-1]:.2f}, true reward {true_rewards(tokens, mask).mean():.2f}, "
              f"KL {kl_per_token(policy, reference, tokens, mask).item():.3f} nats per token")


if __name__ == "__main__":
    main()
