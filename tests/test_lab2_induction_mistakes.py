"""Typical mistakes in lab 2's induction part fail exactly the tests that cover them, with a
message that names the function; correct alternatives to the reference's code get full marks.

Each variant is the reference's induction.py with passages changed the way a student might
write them, graded by the real CLI with no transformer.py in the submission (the part's other
tests must not need one). Mistakes that fail different tests share one grading. The training
test is left out: it trains a model to show that the pieces work together, not which is broken.
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_mistakes_named, grade_variant

REFERENCE = REPO_ROOT / "reference" / "lab2" / "induction.py"
NOT_TRAINED = ("-k", "not trained")

INDUCTION_STRIPE = """    stripe = pattern.diagonal(-(block_len - 1), dim1=-2, dim2=-1)
    return stripe[..., 1:].mean(dim=(0, -1))"""
PLANTED = "head_scores and find_heads find the planted heads"
PLANTED_ABLATION = "ablate_head on the planted heads"

# case: (passage in the reference, the mistake, display names of the tests that must fail
#        (substrings), text their output must contain); one grading per group.
MISTAKES = {
    "separate": {
        "induction_score_read_at_the_duplicate_token": (
            INDUCTION_STRIPE,
            "    return pattern.diagonal(-block_len, dim1=-2, dim2=-1).mean(dim=(0, -1))",
            ("induction_scores matches", "scores of perfect induction", "head_scores matches",
             PLANTED),
            "induction_scores",
        ),
        "second_block_drawn_afresh": (
            "    return torch.cat([block, block], dim=1)",
            "    return torch.cat([block, torch.randint(0, d_vocab, (batch, block_len), "
            "generator=generator)], dim=1)",
            ("repeated_tokens repeats",),
            "repeated_tokens",
        ),
        "loss_of_the_current_token": (
            "    picked = log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)",
            "    picked = log_probs.gather(-1, tokens[:, :-1, None]).squeeze(-1)",
            ("loss_by_position matches",),
            "loss_by_position",
        ),
        "model_with_mlps": (
            "n_layers=run.n_layers, attn_only=True)",
            "n_layers=run.n_layers)",
            ("train_induction_model builds",),
            "attn_only",
        ),
    },
    "previous_token": {
        "previous_token_score_on_the_main_diagonal": (
            "    return pattern.diagonal(-1, dim1=-2, dim2=-1).mean(dim=(0, -1))",
            "    return pattern.diagonal(0, dim1=-2, dim2=-1)[..., 1:].mean(dim=(0, -1))",
            ("previous_token_scores matches", "scores of perfect induction",
             "head_scores matches", PLANTED),
            "previous_token_scores",
        ),
    },
    "stripe_and_ablation": {
        "induction_score_from_the_first_copy_too": (
            INDUCTION_STRIPE,
            "    stripe = pattern.diagonal(-(block_len - 1), dim1=-2, dim2=-1)\n"
            "    return stripe.mean(dim=(0, -1))",
            ("induction_scores matches", "scores of perfect induction", "head_scores matches"),
            "induction_scores",
        ),
        "ablation_always_in_layer_1": (
            'fwd_hooks=[(f"blocks.{layer}.attn.hook_z", silence)]',
            'fwd_hooks=[("blocks.1.attn.hook_z", silence)]',
            ("ablate_head matches", PLANTED_ABLATION),
            "ablate_head",
        ),
    },
}

# Correct code written differently from the reference: full marks.
ALTERNATIVES = {
    "induction_scores_by_indexing": (
        INDUCTION_STRIPE,
        """    queries = torch.arange(block_len, 2 * block_len)
    return pattern[..., queries, queries - block_len + 1].mean(dim=(0, -1))""",
    ),
    "previous_token_scores_by_a_loop": (
        "    return pattern.diagonal(-1, dim1=-2, dim2=-1).mean(dim=(0, -1))",
        "    seq = pattern.shape[-1]\n"
        "    return torch.stack([pattern[:, :, q, q - 1] for q in range(1, seq)], dim=-1)"
        ".mean(dim=(0, -1))",
    ),
    "repeated_tokens_by_repeat": (
        "    return torch.cat([block, block], dim=1)",
        "    return block.repeat(1, 2)",
    ),
    "loss_with_cross_entropy": (
        """    log_probs = logits[:, :-1].log_softmax(dim=-1)
    picked = log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)
    return -picked.mean(dim=0)""",
        """    losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2),
                                               tokens[:, 1:], reduction="none")
    return losses.mean(dim=0)""",
    ),
    "ablation_through_the_pattern": (
        """    def silence(z: torch.Tensor, _name: str) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = 0.0
        return z""",
        """    def silence(pattern: torch.Tensor, _name: str) -> torch.Tensor:
        return pattern * (torch.arange(pattern.shape[1]) != head)[:, None, None]""",
    ),
    "ablation_hook_on_the_pattern": (
        'f"blocks.{layer}.attn.hook_z", silence)',
        'f"blocks.{layer}.attn.hook_pattern", silence)',
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(MISTAKES))
def test_induction_mistakes_are_named(grade, tmp_path, group):
    mistakes = MISTAKES[group]
    changes = [(passage, mistake) for passage, mistake, _, _ in mistakes.values()]
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab2", group, changes, extra=NOT_TRAINED)
    assert_mistakes_named(graded, mistakes)


@pytest.mark.slow
def test_induction_alternatives_get_full_marks(grade, tmp_path):
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab2", "alternatives",
                           list(ALTERNATIVES.values()), extra=NOT_TRAINED)
    assert not graded.failed(), "\n".join(graded.output_of(name) for name in graded.failed())
