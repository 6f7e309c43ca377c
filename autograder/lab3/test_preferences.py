"""Tests for lab 3, part "preferences" (preferences.py): reward model, DPO, REINFORCE with a KL
penalty, on the lab's assistant.

Functions and single steps are compared with the reference in float64 on the shipped weights
(loaded in float64 on both sides) and on replies, pairs and generators drawn at grade time.
Trainings are judged by outcomes on pairs the *given* `make_pairs` draws (from the reference's
worker), with numbers computed by the given support code, not by the submission's functions.

Tolerances. A reply log-probability is a sum of at most 11 log-softmax terms of size ~1-10;
float64 rounding of the logits (3 layers, sums of 64-256 products of O(1) terms) is ~1e-14
relative, so a correct implementation lands within ~1e-13 of the reference: rtol 1e-9 with an
absolute 1e-9 (a value may be a difference of terms, near 0) is a million times wider and still
a million times tighter than any mistake (a shifted position or a counted prompt token moves a
value by ~0.1-10). After an Adam step the weights differ from the start by ~lr per entry.
Adam's first update, lr g / (|g| + eps) with eps 1e-8, is sign-like where |g| >> eps but
amplifies a rounding error d of the gradient by up to lr / (4 eps) d where |g| ~ eps, and a
language model has such entries (near-cancelling sums). A gradient entry is a sum of terms
whose magnitudes add up to ~10-1000, so d ~ 1e-16 * that ~ 1e-14-1e-13: an update off by up to
~1e-6 lr. Measured, between the reference and the alternatives of
tests/test_lab3_preferences_mistakes.py (12 draws each): 1.8e-6 lr (REINFORCE, two steps),
4.5e-7 lr (DPO, three). So the steps' weights get atol 1e-4 lr (covering d up to 4e-12, 60
times the measured), with rtol 1e-7; a wrong gradient or a wrong lr moves entries by ~lr.
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.engine.checks import assert_close, check
from autograder.engine.labs import load_lab

EXACT = {"rtol": 1e-9, "atol": 1e-9}


def _step(lr: float) -> dict:
    """The tolerance of weights after Adam steps at learning rate lr (module docstring)."""
    return {"rtol": 1e-7, "atol": 1e-4 * lr}
PROMPT_LENGTH = 8          # every harmless request prompt (dialogue.REQUEST_PROMPT_LENGTH)
MAX_NEW = 10               # make_pairs' reply length

_CHECKPOINT: dict = {}


def _checkpoint() -> tuple[dict, dict]:
    """The shipped assistant (config, float16 state), read in the trusted process."""
    if not _CHECKPOINT:
        path = load_lab("lab3").support_dir / "checkpoints" / "assistant.pt"
        _CHECKPOINT.update(torch.load(path, weights_only=True))
    return _CHECKPOINT["config"], _CHECKPOINT["state"]


def _seed(rng: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=rng))


def _float(value, what: str) -> float:
    """A number the docstring promises as a Python float (the probes pass anything else on as
    its repr)."""
    check(isinstance(value, float), f"{what}: got {value}, not a Python float; return "
          "loss.item() (a tensor keeps its graph and is not what the docstring promises)")
    return value


def _perturbed(rng: torch.Generator, scale: float = 0.05) -> dict:
    """The checkpoint's weights plus noise of `scale` times each tensor's spread, in float64:
    a policy that differs from the reference."""
    _, state = _checkpoint()
    out = {}
    for name, tensor in state.items():
        tensor = tensor.double()
        spread = tensor.std() if tensor.numel() > 1 else torch.tensor(1.0, dtype=torch.float64)
        out[name] = tensor + scale * spread * torch.randn(tensor.shape, generator=rng,
                                                          dtype=torch.float64)
    return out


_PAIRS: dict = {}


def _pairs(reference, n: int, seed: int) -> dict:
    """Pairs from the given make_pairs (float32 assistant), computed once per (n, seed)."""
    key = (n, seed)
    if key not in _PAIRS:
        config, state = _checkpoint()
        _PAIRS[key] = reference.probe("preferences.make_pairs", config, state, n, seed,
                                      timeout=60)
    return _PAIRS[key]


def _replies(reference, rng: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n sampled replies (tokens, mask) of length 8 + 10, chosen and rejected of fresh pairs."""
    pairs = _pairs(reference, n, _seed(rng))
    tokens = torch.cat([pairs["chosen"], pairs["rejected"]])
    mask = torch.cat([pairs["chosen_mask"], pairs["rejected_mask"]])
    return tokens, mask


def _doubled(pairs: dict) -> dict:
    return {key: value.double() if value.is_floating_point() else value
            for key, value in pairs.items()}


# ----------------------------------------------------------------------------- log-probabilities


@pytest.mark.points(2)
@pytest.mark.public
def test_reply_log_probs(student, reference, rng):
    """reply_log_probs: log pi(reply | prompt) with the prompt and the padding masked (float64)"""
    config, state = _checkpoint()
    for _ in range(2):
        tokens, mask = _replies(reference, rng, 6)
        what = (f"reply_log_probs on {tokens.shape[0]} sampled replies (prompt of 8 tokens, "
                "reply up to 10, then padding) with the shipped weights in float64")
        got = student.probe("preferences.reply_log_probs", config, state, tokens, mask)
        want = reference.probe("preferences.reply_log_probs", config, state, tokens, mask)
        check(bool((got["values"] < 0).all()),
              f"{what}: every log-probability must be negative, got {got['values'].tolist()}")
        assert_close(got["values"], want["values"], **EXACT, what=what, dtype=torch.float64)
        assert_close(got["grad_b_U"], want["grad_b_U"], **EXACT, dtype=torch.float64,
                     what=f"{what}: the gradient of their sum with respect to unembed.b_U")


@pytest.mark.points(2)
@pytest.mark.public
def test_kl_per_token(student, reference, rng):
    """kl_per_token: the exact KL of the next-token distributions, mean over reply tokens"""
    config, state = _checkpoint()
    tokens, mask = _replies(reference, rng, 4)
    same = student.probe("preferences.kl_per_token", config, state, state, tokens, mask)
    check(abs(float(same["value"])) < 1e-12,
          f"kl_per_token(policy, reference, ...) with the policy equal to the reference must be "
          f"0, got {float(same['value']):.3g}")
    for _ in range(2):
        policy = _perturbed(rng)
        tokens, mask = _replies(reference, rng, 4)
        what = ("kl_per_token on 8 sampled replies, the policy the shipped weights plus 5% "
                "noise, in float64")
        got = student.probe("preferences.kl_per_token", config, policy, state, tokens, mask)
        want = reference.probe("preferences.kl_per_token", config, policy, state, tokens, mask)
        assert_close(got["value"], want["value"], **EXACT, what=what, dtype=torch.float64)
        assert_close(got["grad_b_U"], want["grad_b_U"], **EXACT, dtype=torch.float64,
                     what=f"{what}: its gradient with respect to the policy's unembed.b_U")
        check(got["reference_grad"] is None,
              f"{what}: the reference got a gradient; compute it under torch.no_grad()")


# ----------------------------------------------------------------------------- reward model


@pytest.mark.points(1)
@pytest.mark.public
def test_bradley_terry_preferences(student, reference, rng):
    """bradley_terry_preferences: a preferred where u < sigmoid(r_a - r_b), u from the generator"""
    for _ in range(2):
        n = int(torch.randint(50, 200, (1,), generator=rng))
        a = torch.randn(n, generator=rng, dtype=torch.float64) * 2
        b = torch.randn(n, generator=rng, dtype=torch.float64) * 2
        seed = _seed(rng)
        what = f"bradley_terry_preferences on {n} pairs of rewards ~ N(0, 4), generator seed {seed}"
        got = student.probe("preferences.bradley_terry_preferences", a, b, seed)
        want = reference.probe("preferences.bradley_terry_preferences", a, b, seed)
        check(isinstance(got, torch.Tensor) and got.dtype == torch.bool
              and got.shape == want.shape,
              f"{what}: expected a bool tensor of shape ({n},)")
        check(torch.equal(got, want),
              f"{what}: {int((got != want).sum())} of {n} choices differ from the reference's "
              "(draw u = torch.rand(n, generator=generator, dtype=reward_a.dtype) once and "
              "prefer a where u < sigmoid(r_a - r_b))")


@pytest.mark.points(1)
@pytest.mark.public
def test_bradley_terry_loss(student, reference, rng):
    """bradley_terry_loss: mean -log sigmoid(s_chosen - s_rejected), stable, with its gradient"""
    for _ in range(2):
        n = int(torch.randint(5, 40, (1,), generator=rng))
        chosen = torch.randn(n, generator=rng, dtype=torch.float64) * 3
        rejected = torch.randn(n, generator=rng, dtype=torch.float64) * 3
        chosen[0], rejected[0] = 1e4, -1e4          # a difference whose exp overflows
        chosen[1], rejected[1] = -1e4, 1e4
        what = f"bradley_terry_loss on {n} pairs (two with differences of +-2e4) in float64"
        got = student.probe("preferences.bradley_terry_loss", chosen, rejected)
        want = reference.probe("preferences.bradley_terry_loss", chosen, rejected)
        assert_close(got, want, **EXACT, what=what, dtype=torch.float64)


@pytest.mark.points(1)
@pytest.mark.public
def test_reward_model_forward(student, reference, rng):
    """RewardModel.forward: sum of weights[token] over the reply's tokens"""
    config, _ = _checkpoint()
    for _ in range(2):
        tokens, mask = _replies(reference, rng, 5)
        weights = torch.randn(config["d_vocab"], generator=rng, dtype=torch.float64)
        what = "RewardModel.forward on 10 sampled replies with random weights in float64"
        got = student.probe("preferences.reward_model_scores", weights, tokens, mask)
        want = reference.probe("preferences.reward_model_scores", weights, tokens, mask)
        assert_close(got, want, **EXACT, what=what, dtype=torch.float64)


@pytest.mark.points(1)
@pytest.mark.public
def test_train_reward_model_steps(student, reference, rng):
    """train_reward_model: a few full-batch Adam steps equal the reference's (float64)"""
    config, _ = _checkpoint()
    for _ in range(2):
        pairs = _doubled(_pairs(reference, 64, _seed(rng)))
        steps = int(torch.randint(2, 6, (1,), generator=rng))
        what = f"train_reward_model on 64 sampled pairs, {steps} steps of Adam(lr=0.05), float64"
        got = student.probe("preferences.train_reward_model", pairs, config["d_vocab"], steps,
                            0.05, timeout=30)
        want = reference.probe("preferences.train_reward_model", pairs, config["d_vocab"], steps,
                               0.05, timeout=30)
        losses = [_float(loss, f"{what}: the loss before step {step + 1}")
                  for step, loss in enumerate(got["losses"])]
        check(math.isclose(losses[0], math.log(2), abs_tol=1e-12),
              f"{what}: the first loss must be ln 2 = 0.6931 (all scores start at 0), got "
              f"{losses[0]:.6f}")
        assert_close(torch.tensor(losses, dtype=torch.float64),
                     torch.tensor(want["losses"], dtype=torch.float64), **EXACT,
                     what=f"{what}: the losses")
        assert_close(got["weights"], want["weights"], **_step(0.05), what=f"{what}: the weights")


# ----------------------------------------------------------------------------- DPO


def _log_probs(rng: torch.Generator, n: int) -> dict:
    return {key: -torch.rand(n, generator=rng, dtype=torch.float64) * 20
            for key in ("policy_chosen", "policy_rejected", "reference_chosen",
                        "reference_rejected")}


@pytest.mark.points(2)
@pytest.mark.public
def test_dpo_loss_and_implicit_reward(student, reference, rng):
    """implicit_reward and dpo_loss: ln 2 when the policy is the reference; values and grads"""
    for _ in range(2):
        n = int(torch.randint(4, 30, (1,), generator=rng))
        beta = float(torch.empty(1).uniform_(0.05, 1.0, generator=rng))
        logps = _log_probs(rng, n)
        same = {**logps, "policy_chosen": logps["reference_chosen"],
                "policy_rejected": logps["reference_rejected"]}
        what = f"dpo_loss on {n} pairs with beta {beta:.3f} in float64"
        got = student.probe("preferences.dpo_loss", same, beta)
        check(abs(float(got["loss"]) - math.log(2)) < 1e-12,
              f"{what}, the policy's log-probabilities equal to the reference's: the loss must be "
              f"ln 2 = 0.693147, got {float(got['loss']):.6f}")
        got = student.probe("preferences.dpo_loss", logps, beta)
        want = reference.probe("preferences.dpo_loss", logps, beta)
        assert_close(got, want, **EXACT, what=what, dtype=torch.float64)
        what = f"implicit_reward on {n} replies with beta {beta:.3f}"
        got = student.probe("preferences.implicit_reward", logps["policy_chosen"],
                            logps["reference_chosen"], beta)
        want = reference.probe("preferences.implicit_reward", logps["policy_chosen"],
                               logps["reference_chosen"], beta)
        assert_close(got, want, **EXACT, what=what, dtype=torch.float64)


def _batch(pairs: dict) -> dict:
    return {key: pairs[key] for key in ("chosen", "chosen_mask", "rejected", "rejected_mask")}


@pytest.mark.points(2)
@pytest.mark.public
def test_dpo_step(student, reference, rng):
    """dpo_step: one step from the shipped weights equals the reference's (float64)"""
    config, state = _checkpoint()
    for _ in range(2):
        batch = _batch(_pairs(reference, 8, _seed(rng)))
        what = "dpo_step on 8 sampled pairs from the shipped weights, beta 0.5, Adam(lr=1e-3)"
        got = student.probe("preferences.dpo_step", config, state, batch, 0.5, 1e-3, timeout=30)
        want = reference.probe("preferences.dpo_step", config, state, batch, 0.5, 1e-3,
                               timeout=30)
        loss = _float(got["loss"], f"{what}: the loss returned")
        check(abs(loss - math.log(2)) < 1e-9,
              f"{what}: the policy starts as the reference, so the loss returned must be ln 2 = "
              f"0.693147, got {loss:.6f}")
        check(not got["reference_changed"], f"{what}: the reference's weights changed; only the "
              "policy is trained (compute the reference under torch.no_grad())")
        assert_close(got["state"], want["state"], **_step(1e-3),
                     what=f"{what}: the policy's weights after the step")


@pytest.mark.points(1)
@pytest.mark.public
def test_train_dpo_steps(student, reference, rng):
    """train_dpo: three steps with batches drawn from the generator equal the reference's"""
    config, state = _checkpoint()
    pairs = _batch(_pairs(reference, 32, _seed(rng)))
    for _ in range(2):
        seed = _seed(rng)
        # lr 2e-3, not Adam's default 1e-3, so that an optimiser built without lr= shows.
        what = (f"train_dpo on 32 sampled pairs, 3 steps of batch 4, lr 2e-3, beta 0.5, "
                f"generator seed {seed}, float64")
        got = student.probe("preferences.train_dpo", config, state, pairs, 3, 4, 2e-3, 0.5,
                            seed, "float64", timeout=60)
        want = reference.probe("preferences.train_dpo", config, state, pairs, 3, 4, 2e-3, 0.5,
                               seed, "float64", timeout=60)
        assert_close(got["losses"], want["losses"], **_step(2e-3), what=f"{what}: the losses")
        assert_close(got["state"], want["state"], **_step(2e-3),
                     what=f"{what}: the policy's weights")


# ----------------------------------------------------------------------------- REINFORCE


@pytest.mark.points(2)
@pytest.mark.public
def test_reinforce_loss(student, reference, rng):
    """reinforce_loss: (R - mean R) log pi with R = score - kl_coef (log pi - log pi_ref)"""
    config, state = _checkpoint()
    for _ in range(2):
        policy = _perturbed(rng)
        tokens, mask = _replies(reference, rng, 6)
        weights = torch.randn(config["d_vocab"], generator=rng, dtype=torch.float64)
        kl_coef = float(torch.empty(1).uniform_(0.1, 1.0, generator=rng))
        what = (f"reinforce_loss on 12 sampled replies, kl_coef {kl_coef:.3f}, the policy the "
                "shipped weights plus 5% noise, a random reward model, float64")
        got = student.probe("preferences.reinforce_loss", config, policy, state, weights,
                            tokens, mask, kl_coef)
        want = reference.probe("preferences.reinforce_loss", config, policy, state, weights,
                               tokens, mask, kl_coef)
        for key in ("score", "kl"):
            assert_close(_float(got[key], f"{what}: the statistic {key!r}"), want[key], **EXACT,
                         what=f"{what}: the statistic {key!r}")
        assert_close(got["loss"], want["loss"], **EXACT, what=f"{what}: the loss")
        for key in ("grad_b_U", "grad_W_E"):
            assert_close(got[key], want[key], **EXACT,
                         what=f"{what}: the loss's gradient ({key[5:]})")


@pytest.mark.points(2)
@pytest.mark.public
def test_reinforce_step(student, reference, rng):
    """reinforce_step: one step (samples from the generator) equals the reference's"""
    config, state = _checkpoint()
    for start in ("the shipped weights", "the shipped weights plus 5% noise"):
        # From a policy that differs from the reference, replies sampled from the reference
        # instead of the policy give other tokens.
        policy = state if start == "the shipped weights" else _perturbed(rng)
        prompts = reference.probe("preferences.harmless_prompts", 8, _seed(rng))
        weights = torch.randn(config["d_vocab"], generator=rng, dtype=torch.float64)
        seed = _seed(rng)
        what = (f"reinforce_step on 8 prompts (max_new_tokens=5), the policy {start}, the "
                f"reference the shipped weights, kl_coef 0.2, lr 1e-3, generator seed {seed}, "
                "float64")
        got = student.probe("preferences.reinforce_step", config, policy, state, weights,
                            prompts, 0.2, 1e-3, seed, timeout=30)
        want = reference.probe("preferences.reinforce_step", config, policy, state, weights,
                               prompts, 0.2, 1e-3, seed, timeout=30)
        for key in ("loss", "score", "kl"):
            _float(got["stats"][key], f"{what}: the statistic {key!r} returned")
        assert_close(got["stats"], want["stats"], **EXACT,
                     what=f"{what}: the statistics returned (sample with model.sample(policy, "
                     "prompts, max_new_tokens, generator) first)")
        assert_close(got["state"], want["state"], **_step(1e-3),
                     what=f"{what}: the policy's weights")


@pytest.mark.points(1)
@pytest.mark.public
def test_train_reinforce_steps(student, reference, rng):
    """train_reinforce: two steps on one batch of prompts equal the reference's (float64)"""
    config, state = _checkpoint()
    for _ in range(2):
        prompts = reference.probe("preferences.harmless_prompts", 6, _seed(rng))
        weights = torch.randn(config["d_vocab"], generator=rng, dtype=torch.float64)
        seed = _seed(rng)
        # lr 2e-3, not Adam's default 1e-3, so that an optimiser built without lr= shows.
        what = (f"train_reinforce on 6 prompts, 2 steps, kl_coef 0.2, lr 2e-3, generator seed "
                f"{seed}, float64")
        got = student.probe("preferences.train_reinforce", config, state, weights, prompts, 2,
                            2e-3, 0.2, seed, "float64", timeout=60)
        want = reference.probe("preferences.train_reinforce", config, state, weights, prompts,
                               2, 2e-3, 0.2, seed, "float64", timeout=60)
        for key in ("score", "kl"):
            assert_close(got[key], want[key], **_step(2e-3), what=f"{what}: the history's {key!r}")
        assert_close(got["state"], want["state"], **_step(2e-3),
                     what=f"{what}: the policy's weights")


# ----------------------------------------------------------------------------- outcomes
#
# The data: pairs from the given make_pairs on the shipped assistant (two sampled replies per
# harmless prompt, the preferred one drawn with Bradley-Terry probabilities from the true
# reward), at seeds drawn at grade time. Each number below is computed here, in the trusted
# process, from what the submission's training returned (weights, log-probabilities on
# held-out pairs, replies sampled with the given sampler).

TRAIN_PAIRS, TEST_PAIRS = 256, 256
RM_STEPS, RM_LR = 200, 0.05
DPO = {"steps": 60, "batch_size": 32, "lr": 5e-4, "beta": 1.0}
RL = {"steps": 60, "lr": 3e-3, "prompts": 64}
RL_KL_COEF = 1.0
EVAL_PROMPTS = 512
# Outcome thresholds, from the reference's runs of these exact settings (float32, one thread)
# over fresh draws of the pairs, prompts and generators (the ranges below are the
# worst seen). Each threshold sits far from the reference's worst case, and far from what a
# policy that was not trained scores (accuracy 0.5 or less, gain 0, KL 0), so a correct
# submission fails only through a draw much worse than any measured.
# - Reward model, 16 draws: held-out ordering accuracy 0.84-0.97, Spearman 0.87-0.95.
# - DPO, 23 draws: implicit-reward accuracy 0.72-0.81, true-reward gain 1.9-2.7, KL 0.11-0.27
#   nats per token. (At lr 1e-3 and beta 0.5, 9 of the same 23 draws drifted beyond KL 1, up
#   to 10.6, one with the true reward falling: the reason for the gentler settings.)
# - REINFORCE with kl_coef 1.0, the reward model's <end> at 0 (see _reinforce), 21 draws (the
#   grading seed at which <end>'s weight had sunk the reference included): true-reward gain
#   2.1-3.3, KL 0.11-0.27.
# - REINFORCE without the penalty, 12 draws: the reward model's score up by 10.8-44.6 (last 5
#   steps against the first 5); in 9 the true reward fell by 8.1-10.0 with a KL of 9.7-11.6, in
#   3 it stayed near 0 with a KL of 29.7-29.8 and every reply at the 12-token limit: reward
#   hacking (the policy repeats the word the reward model likes most; the bag-of-words reward
#   model cannot see repeats, the hidden judge punishes each one).
RM_ACCURACY, RM_SPEARMAN = 0.75, 0.7
DPO_ACCURACY, DPO_GAIN, DPO_MAX_KL = 0.6, 1.0, 1.0
RL_GAIN, RL_MAX_KL = 1.0, 0.6
HACK_SCORE_GAIN, HACK_TRUE_DROP, HACK_MIN_KL = 4.0, 3.0, 3.0


def _dialogue():
    """The grader's own dialogue.py (no submitted code)."""
    return load_lab("lab3").support_module("dialogue.py")


def _true_rewards(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """dialogue.true_reward of each reply, from the grader's own dialogue.py."""
    judge = _dialogue().true_reward
    return torch.tensor([judge(row[kept].tolist()) for row, kept in zip(tokens, mask, strict=True)],
                        dtype=torch.float64)


def _spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rank correlation with ties given their average rank."""
    def ranks(v: torch.Tensor) -> torch.Tensor:
        order = v.argsort()
        r = torch.empty_like(v)
        r[order] = torch.arange(len(v), dtype=v.dtype)
        for value in v.unique():
            tied = v == value
            r[tied] = r[tied].mean()
        return r
    a, b = ranks(x.double()), ranks(y.double())
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def _scores(weights: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (weights.double()[tokens] * mask).sum(dim=-1)


def _trained_weights(trained: dict, state: dict, what: str) -> dict:
    """The policy's weights a training returned, checked before the reference's worker loads
    them: the checkpoint's names and shapes, finite float32 values."""
    got = trained.get("state") if isinstance(trained, dict) else None
    check(isinstance(got, dict) and set(got) == set(state)
          and all(isinstance(got[name], torch.Tensor) and got[name].shape == state[name].shape
                  for name in state),
          f"{what}: the trained policy does not have the assistant's parameters")
    check(all(bool(got[name].isfinite().all()) for name in state),
          f"{what}: the trained policy's weights are not finite (NaN or inf)")
    return {name: tensor.float() for name, tensor in got.items()}


def _two_sets_of_pairs(reference, rng) -> tuple[dict, dict]:
    return (_pairs(reference, TRAIN_PAIRS, _seed(rng)),
            _pairs(reference, TEST_PAIRS, _seed(rng)))


@pytest.mark.points(2)
def test_reward_model_learns_the_hidden_preference(student, reference, rng):
    """train_reward_model: on held-out pairs the reward model ranks replies as the human does"""
    config, _ = _checkpoint()
    train, test = _two_sets_of_pairs(reference, rng)
    got = student.probe("preferences.train_reward_model", _doubled(train), config["d_vocab"],
                        RM_STEPS, RM_LR, timeout=60)
    weights = got["weights"]
    what = (f"the reward model of train_reward_model ({TRAIN_PAIRS} sampled pairs, {RM_STEPS} "
            f"steps, lr {RM_LR}) on {TEST_PAIRS} held-out pairs")
    chosen = _scores(weights, test["chosen"], test["chosen_mask"])
    rejected = _scores(weights, test["rejected"], test["rejected_mask"])
    truth = test["reward_chosen"] - test["reward_rejected"]
    differ = truth != 0
    accuracy = float(((chosen - rejected > 0) == (truth > 0))[differ].double().mean())
    check(accuracy >= RM_ACCURACY,
          f"{what}: it orders {accuracy:.1%} of the pairs whose true rewards differ as the true "
          f"reward does; a trained reward model orders at least {RM_ACCURACY:.0%}")
    tokens = torch.cat([test["chosen"], test["rejected"]])
    mask = torch.cat([test["chosen_mask"], test["rejected_mask"]])
    rho = _spearman(_scores(weights, tokens, mask),
                    torch.cat([test["reward_chosen"], test["reward_rejected"]]))
    check(rho >= RM_SPEARMAN,
          f"{what}: the rank correlation of its scores with the true rewards of the "
          f"{len(tokens)} replies is {rho:.3f}; a trained reward model reaches {RM_SPEARMAN}")


@pytest.mark.points(3)
def test_dpo_learns_the_preference_with_bounded_kl(student, reference, rng):
    """train_dpo: the implicit reward orders held-out pairs, samples improve, the KL stays small"""
    config, state = _checkpoint()
    train, test = _two_sets_of_pairs(reference, rng)
    prompts = reference.probe("preferences.harmless_prompts", EVAL_PROMPTS, _seed(rng))
    sample_seed = _seed(rng)
    trained = student.probe("preferences.train_dpo", config, state, _batch(train),
                            DPO["steps"], DPO["batch_size"], DPO["lr"], DPO["beta"], _seed(rng),
                            "float32", timeout=120)
    what = (f"train_dpo ({DPO['steps']} steps of {DPO['batch_size']} pairs from {TRAIN_PAIRS}, "
            f"lr {DPO['lr']}, beta {DPO['beta']}) from the shipped assistant")
    got = reference.probe("preferences.outcome_numbers", config,
                          _trained_weights(trained, state, what), state, _batch(test), prompts,
                          sample_seed, timeout=60)
    margin = ((got["policy_chosen"] - got["reference_chosen"])
              - (got["policy_rejected"] - got["reference_rejected"]))
    accuracy = float((margin > 0).double().mean())
    check(accuracy >= DPO_ACCURACY,
          f"{what}: its implicit reward prefers the human's choice on {accuracy:.1%} of "
          f"{TEST_PAIRS} held-out pairs; a trained policy reaches {DPO_ACCURACY:.0%}")
    before = reference.probe("preferences.outcome_numbers", config, state, state, None, prompts,
                             sample_seed, timeout=60)
    rewards = _true_rewards(got["samples"], got["samples_mask"]).mean().item()
    baseline = _true_rewards(before["samples"], before["samples_mask"]).mean().item()
    check(rewards >= baseline + DPO_GAIN,
          f"{what}: the true reward of its replies to {EVAL_PROMPTS} prompts is {rewards:.2f} on "
          f"average, the shipped assistant's {baseline:.2f}; DPO raises it by at least "
          f"{DPO_GAIN}")
    kl = float(got["kl_per_token"])
    check(kl <= DPO_MAX_KL,
          f"{what}: the KL to the reference is {kl:.3f} nats per reply token, more than "
          f"{DPO_MAX_KL}: DPO's reference term keeps the policy near the reference")


def _reinforce(student, reference, rng, kl_coef: float) -> tuple[dict, float, str]:
    config, state = _checkpoint()
    train, _ = _two_sets_of_pairs(reference, rng)
    weights = reference.probe("preferences.train_reward_model", _doubled(train),
                              config["d_vocab"], RM_STEPS, RM_LR, timeout=60)["weights"]
    # <end>'s weight is not identified by the pairs: a finished reply holds exactly one <end>,
    # so it cancels from every pair of finished replies, and only the few cut off at the
    # length limit set it, anywhere from -2.4 to +4.9 over the draws measured. At +4.9 the
    # policy learns to end at once (2-token replies, KL 10.9, the true reward's gain 0.2: the
    # reference failed this test at one grading seed in about 12). The policy's reward model
    # scores <end> 0.
    weights = weights.clone()
    weights[_dialogue().TOKEN_ID["<end>"]] = 0.0
    prompts = reference.probe("preferences.harmless_prompts", RL["prompts"], _seed(rng))
    eval_prompts = reference.probe("preferences.harmless_prompts", EVAL_PROMPTS, _seed(rng))
    sample_seed = _seed(rng)
    what = (f"train_reinforce ({RL['steps']} steps on {RL['prompts']} prompts, lr {RL['lr']}, "
            f"kl_coef {kl_coef}) from the shipped assistant with the reference's reward model")
    trained = student.probe("preferences.train_reinforce", config, state, weights, prompts,
                            RL["steps"], RL["lr"], kl_coef, _seed(rng), "float32", timeout=120)
    got = reference.probe("preferences.outcome_numbers", config,
                          _trained_weights(trained, state, what), state, None, eval_prompts,
                          sample_seed, timeout=60)
    got["score"] = trained["score"]
    before = reference.probe("preferences.outcome_numbers", config, state, state, None,
                             eval_prompts, sample_seed, timeout=60)
    baseline = _true_rewards(before["samples"], before["samples_mask"]).mean().item()
    return got, baseline, what


@pytest.mark.points(1)
def test_reinforce_with_the_kl_penalty_improves_the_true_reward(student, reference, rng):
    """train_reinforce with a KL penalty: the true reward rises and the KL stays bounded"""
    got, baseline, what = _reinforce(student, reference, rng, RL_KL_COEF)
    rewards = _true_rewards(got["samples"], got["samples_mask"]).mean().item()
    check(rewards >= baseline + RL_GAIN,
          f"{what}: the true reward of its replies is {rewards:.2f} on average, the shipped "
          f"assistant's {baseline:.2f}; with the penalty it rises by at least {RL_GAIN}")
    kl = float(got["kl_per_token"])
    check(kl <= RL_MAX_KL, f"{what}: the KL to the reference is {kl:.3f} nats per reply token, "
          f"more than {RL_MAX_KL}: is the penalty subtracted from the return?")


@pytest.mark.points(1)
def test_reinforce_without_the_kl_penalty_hacks_the_reward_model(student, reference, rng):
    """train_reinforce without a KL penalty: the reward-model score rises, the true reward falls"""
    got, baseline, what = _reinforce(student, reference, rng, 0.0)
    first, last = got["score"][:5].mean().item(), got["score"][-5:].mean().item()
    check(last >= first + HACK_SCORE_GAIN,
          f"{what}: the reward model's score went from {first:.2f} (first 5 steps) to "
          f"{last:.2f} (last 5); REINFORCE raises it by at least {HACK_SCORE_GAIN}")
    rewards = _true_rewards(got["samples"], got["samples_mask"]).mean().item()
    kl = float(got["kl_per_token"])
    check(rewards <= baseline - HACK_TRUE_DROP or kl >= HACK_MIN_KL,
          f"{what}: the true reward of its replies is {rewards:.2f} on average (the shipped "
          f"assistant's {baseline:.2f}) and the KL {kl:.3f} nats per token; without the penalty "
          f"the policy should exploit the reward model (true reward down by {HACK_TRUE_DROP} or "
          f"KL above {HACK_MIN_KL})")
