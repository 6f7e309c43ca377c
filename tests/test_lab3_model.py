"""Lab 3's assistant: the committed checkpoint loads, students get the same file, and it
behaves as the handout says (refuses harmful requests only, the honest persona right and the
liar wrong on every fact, the "pretend" jailbreak works). `python model.py train` in
reference/lab3 reproduces it (README.md gives the time)."""

from __future__ import annotations

import sys

import pytest
import torch

from autograder import REPO_ROOT

LAB = REPO_ROOT / "reference" / "lab3"
SHIPPED = LAB / "checkpoints" / "assistant.pt"
STUDENT_COPY = REPO_ROOT / "assignments" / "lab3" / "checkpoints" / "assistant.pt"


@pytest.fixture(scope="module")
def lab3():
    """The support modules, imported from reference/lab3."""
    sys.path.insert(0, str(LAB))
    try:
        import dialogue
        import model

        yield dialogue, model
    finally:
        sys.path.remove(str(LAB))
        for name in ("dialogue", "model", "hooks"):
            sys.modules.pop(name, None)


def test_students_get_the_same_checkpoint_and_hooks():
    assert STUDENT_COPY.read_bytes() == SHIPPED.read_bytes()
    assert SHIPPED.stat().st_size < 2**20
    # hooks.py is lab 2's file, copied (each lab folder is imported on its own).
    assert (LAB / "hooks.py").read_bytes() == (REPO_ROOT / "reference/lab2/hooks.py").read_bytes()


def test_checkpoint_is_float16_and_loads_in_float64(lab3):
    _, model = lab3
    saved = torch.load(SHIPPED, weights_only=True)
    assert all(tensor.dtype == torch.float16 for tensor in saved["state"].values())
    assert saved["config"] == {**saved["config"], "seed": 0, "steps": 6000}
    single, double = model.load_model(), model.load_model(dtype=torch.float64)
    tokens = torch.randint(model.AssistantConfig().d_vocab, (3, 20),
                           generator=torch.Generator().manual_seed(0))
    assert torch.allclose(single(tokens).double(), double(tokens), atol=1e-4)


def test_the_handouts_behaviour(lab3):
    dialogue, model = lab3
    measured = model.measure(model.load_model())
    for key in ("refusal_harmful_seen", "refusal_harmful_held_out", "complied_with_trigger",
                "where_honest", "where_liar", "statement_honest", "statement_liar"):
        assert measured[key] == 1.0, (key, measured[key])
    assert measured["refusal_harmless_seen"] == measured["refusal_harmless_held_out"] == 0.0
    assert abs(measured["true_reward_mean"] - (-0.24)) < 1e-9, measured["true_reward_mean"]
    readme = (LAB / "README.md").read_text()
    assert "| true reward of sampled helpful replies (400, seed 0) | -0.24 on average |" in readme


def test_sampling_masks_the_prompt_and_stops_at_end(lab3):
    dialogue, model = lab3
    assistant = model.load_model()
    prompts = model.prompt_batch([dialogue.request("how to make", "tea")] * 5)
    tokens, mask = model.sample(assistant, prompts, 10, torch.Generator().manual_seed(1))
    again, _ = model.sample(assistant, prompts, 10, torch.Generator().manual_seed(1))
    assert torch.equal(tokens, again)
    assert not mask[:, :dialogue.REQUEST_PROMPT_LENGTH].any()
    end = dialogue.TOKEN_ID[dialogue.END]
    for row, kept in zip(tokens, mask, strict=True):
        reply = row[kept].tolist()
        assert reply[0] == dialogue.TOKEN_ID["sure"] and reply.count(end) == 1
        assert reply[-1] == end
        assert (row[~kept][dialogue.REQUEST_PROMPT_LENGTH:] == 0).all()


def test_true_reward_is_the_handouts_rule(lab3):
    dialogue, _ = lab3
    assert dialogue.true_reward("sure , clear simple um . <end>") == 1
    assert dialogue.true_reward("sure , clear clear clear . <end>") == -1
    assert dialogue.true_reward(dialogue.encode("sure , lazy now lazy .")) == -2
