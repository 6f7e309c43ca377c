"""Probes for lab3 part "preferences": run in the worker, next to the implementation's
preferences.py and the support files model.py and dialogue.py (unchanged). The assistant's
weights come from the test (the shipped checkpoint, read in the trusted process); every probe
builds the models it needs from them in the dtype asked for and returns plain tensors."""

from __future__ import annotations

import model as model_module
import preferences
import torch
import torch._dynamo  # noqa: F401

# The first torch.optim.Adam imports torch._dynamo (seconds on a busy machine): importing it
# here puts that cost in the worker's import time limit, not in the first training probe's.

PAIR_KEYS = ("chosen", "chosen_mask", "rejected", "rejected_mask")


def _assistant(config: dict, state: dict, dtype: torch.dtype) -> model_module.AssistantModel:
    assistant = model_module.AssistantModel(model_module.AssistantConfig(**config)).to(dtype)
    assistant.load_state_dict({name: tensor.to(dtype) for name, tensor in state.items()},
                              strict=True)
    return assistant.eval()


def _state(module: torch.nn.Module) -> dict:
    return {name: tensor.detach().cpu().clone() for name, tensor in module.state_dict().items()}


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _number(value):
    """A value the docstring promises as a Python float, passed on as it is when it is one and
    as its repr (cut short) when it is not: a tensor kept by a missing .item() must reach the
    test as what it is, not be turned into a float here."""
    return value if isinstance(value, float) else repr(value)[:120]


def make_pairs(config: dict, state: dict, n: int, seed: int) -> dict:
    """The given `make_pairs` on the assistant (float32): the data of the outcome tests."""
    return preferences.make_pairs(_assistant(config, state, torch.float32), n, _generator(seed))


def harmless_prompts(n: int, seed: int) -> torch.Tensor:
    return preferences.harmless_prompts(n, _generator(seed))


def reply_log_probs(config: dict, state: dict, tokens: torch.Tensor,
                    mask: torch.Tensor) -> dict:
    """The reply log-probabilities (float64) and their gradient with respect to the
    unembedding's bias (where the masking shows)."""
    assistant = _assistant(config, state, torch.float64)
    values = preferences.reply_log_probs(assistant, tokens, mask)
    values.sum().backward()
    return {"values": values.detach(), "grad_b_U": assistant.unembed.b_U.grad.detach().clone()}


def kl_per_token(config: dict, policy_state: dict, reference_state: dict,
                 tokens: torch.Tensor, mask: torch.Tensor) -> dict:
    policy = _assistant(config, policy_state, torch.float64)
    reference = _assistant(config, reference_state, torch.float64)
    value = preferences.kl_per_token(policy, reference, tokens, mask)
    value.backward()
    return {"value": value.detach(), "grad_b_U": policy.unembed.b_U.grad.detach().clone(),
            "reference_grad": reference.unembed.b_U.grad}


def bradley_terry_preferences(reward_a: torch.Tensor, reward_b: torch.Tensor,
                              seed: int) -> torch.Tensor:
    return preferences.bradley_terry_preferences(reward_a, reward_b, _generator(seed))


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> dict:
    chosen = chosen.clone().requires_grad_(True)
    loss = preferences.bradley_terry_loss(chosen, rejected)
    loss.backward()
    return {"loss": loss.detach(), "grad": chosen.grad}


def reward_model_scores(weights: torch.Tensor, tokens: torch.Tensor,
                        mask: torch.Tensor) -> torch.Tensor:
    reward_model = preferences.RewardModel(weights.shape[0]).to(weights.dtype)
    reward_model.load_state_dict({"weights": weights}, strict=True)
    with torch.no_grad():
        return reward_model(tokens, mask)


def train_reward_model(pairs: dict, d_vocab: int, steps: int, lr: float) -> dict:
    reward_model, losses = preferences.train_reward_model(pairs, d_vocab, steps, lr)
    return {"weights": reward_model.weights.detach().clone(),
            "losses": [_number(loss) for loss in losses]}


def implicit_reward(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> torch.Tensor:
    return preferences.implicit_reward(policy, reference, beta)


def dpo_loss(logps: dict, beta: float) -> dict:
    policy_chosen = logps["policy_chosen"].clone().requires_grad_(True)
    policy_rejected = logps["policy_rejected"].clone().requires_grad_(True)
    loss = preferences.dpo_loss(policy_chosen, policy_rejected, logps["reference_chosen"],
                                logps["reference_rejected"], beta)
    loss.backward()
    return {"loss": loss.detach(), "grad_chosen": policy_chosen.grad,
            "grad_rejected": policy_rejected.grad}


def dpo_step(config: dict, state: dict, batch: dict, beta: float, lr: float) -> dict:
    """One dpo_step in float64 from the checkpoint (policy = reference) with Adam."""
    policy = _assistant(config, state, torch.float64)
    reference = _assistant(config, state, torch.float64)
    adam = torch.optim.Adam(policy.parameters(), lr=lr)
    loss = preferences.dpo_step(policy, reference, adam, batch, beta)
    return {"loss": _number(loss), "state": _state(policy),
            "reference_changed": any(not torch.equal(a, b.to(torch.float64)) for a, b in
                                     zip(_state(reference).values(), state.values(),
                                         strict=True))}


def train_dpo(config: dict, state: dict, pairs: dict, steps: int, batch_size: int, lr: float,
              beta: float, seed: int, dtype_name: str) -> dict:
    """train_dpo from the checkpoint in `dtype_name` ("float32" or "float64"): the losses and
    the trained policy's weights (judged by `outcome_numbers`, in the reference's worker)."""
    dtype = getattr(torch, dtype_name)
    policy = _assistant(config, state, dtype)
    reference = _assistant(config, state, dtype)
    losses = preferences.train_dpo(policy, reference, pairs, steps, batch_size, lr, beta,
                                   _generator(seed))
    return {"losses": torch.tensor(losses, dtype=torch.float64), "state": _state(policy)}


def outcome_numbers(config: dict, policy_state: dict, reference_state: dict,
                    test_pairs: dict | None, prompts: torch.Tensor | None,
                    sample_seed: int) -> dict:
    """What the outcome tests judge a trained policy (float32 weights) by, computed in the
    reference's worker with the *given* support code (model.sample) and the reference's own
    definitions written out here, so that the outcome does not rest on the student's
    functions: with `test_pairs`, the policy's and the reference's reply log-probabilities on
    them; with `prompts`, replies sampled from the policy and its KL per reply token to the
    reference."""
    policy = _assistant(config, policy_state, torch.float32)
    reference = _assistant(config, reference_state, torch.float32)
    out: dict = {}
    with torch.no_grad():
        if test_pairs is not None:
            for key in ("chosen", "rejected"):
                for name, network in (("policy", policy), ("reference", reference)):
                    tokens, mask = test_pairs[key], test_pairs[f"{key}_mask"]
                    logp = network(tokens)[:, :-1].double().log_softmax(dim=-1)
                    taken = logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)
                    out[f"{name}_{key}"] = (taken * mask[:, 1:]).sum(dim=-1)
        if prompts is not None:
            tokens, mask = model_module.sample(policy, prompts, 12, _generator(sample_seed))
            log_pi = policy(tokens)[:, :-1].double().log_softmax(dim=-1)
            log_ref = reference(tokens)[:, :-1].double().log_softmax(dim=-1)
            kl = (log_pi.exp() * (log_pi - log_ref)).sum(dim=-1)
            out["samples"], out["samples_mask"] = tokens, mask
            out["kl_per_token"] = kl[mask[:, 1:]].mean()
    return out


def reinforce_loss(config: dict, policy_state: dict, reference_state: dict,
                   reward_weights: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor,
                   kl_coef: float) -> dict:
    policy = _assistant(config, policy_state, torch.float64)
    reference = _assistant(config, reference_state, torch.float64)
    reward_model = preferences.RewardModel(reward_weights.shape[0]).to(torch.float64)
    reward_model.load_state_dict({"weights": reward_weights})
    loss, stats = preferences.reinforce_loss(policy, reference, reward_model, tokens, mask,
                                             kl_coef)
    loss.backward()
    return {"loss": loss.detach(), "score": _number(stats["score"]),
            "kl": _number(stats["kl"]),
            "grad_b_U": policy.unembed.b_U.grad.detach().clone(),
            "grad_W_E": policy.embed.W_E.grad.detach().clone()}


def reinforce_step(config: dict, policy_state: dict, reference_state: dict,
                   reward_weights: torch.Tensor, prompts: torch.Tensor, kl_coef: float,
                   lr: float, seed: int) -> dict:
    """One reinforce_step in float64 with Adam, replies of at most 5 tokens."""
    policy = _assistant(config, policy_state, torch.float64)
    reference = _assistant(config, reference_state, torch.float64)
    reward_model = preferences.RewardModel(reward_weights.shape[0]).to(torch.float64)
    reward_model.load_state_dict({"weights": reward_weights})
    adam = torch.optim.Adam(policy.parameters(), lr=lr)
    stats = preferences.reinforce_step(policy, reference, reward_model, adam, prompts,
                                       kl_coef, _generator(seed), max_new_tokens=5)
    return {"stats": {key: _number(stats[key]) for key in ("loss", "score", "kl")},
            "state": _state(policy)}


def train_reinforce(config: dict, state: dict, reward_weights: torch.Tensor,
                    prompts: torch.Tensor, steps: int, lr: float, kl_coef: float, seed: int,
                    dtype_name: str) -> dict:
    """train_reinforce from the checkpoint in `dtype_name`: each step's statistics and the
    trained policy's weights (judged by `outcome_numbers`, in the reference's worker)."""
    dtype = getattr(torch, dtype_name)
    policy = _assistant(config, state, dtype)
    reference = _assistant(config, state, dtype)
    reward_model = preferences.RewardModel(reward_weights.shape[0]).to(dtype)
    reward_model.load_state_dict({"weights": reward_weights.to(dtype)})
    history = preferences.train_reinforce(policy, reference, reward_model, prompts, steps, lr,
                                          kl_coef, _generator(seed))
    out = {key: torch.tensor(history[key], dtype=torch.float64) for key in ("score", "kl")}
    return {**out, "state": _state(policy)}
