"""Messages that point at the real fault (issue 23), graded end to end: each mistake fails
exactly the tests of the claim it breaks, with a message about that claim.

- Losses recorded after the optimizer step: the step-by-step test fails; the device test,
  whose claim is only where the model and the batches go, keeps its point.
- The attention scores passed through hook_attn_scores before the mask: the model still never
  sees the future, and the message says that the hook comes after the mask.
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_each_mistake_fails_its_tests, variant_folder

TRANSFORMER = REPO_ROOT / "reference" / "lab2" / "transformer.py"

# name: ([(passage, replacement), ...], display-name fragments of the tests it fails, texts
#        their messages must all contain)
MISTAKES = {
    "losses_recorded_after_the_step": (
        [("        losses.append(loss.item())\n",
          "        losses.append(next_token_loss(model(tokens), tokens).item())\n")],
        ("train's losses and weights match",), ("the loss before any update differs",),
    ),
    "scores_hooked_before_the_mask": (
        [('scores = self.hook_attn_scores(scores.masked_fill(later, float("-inf")))',
          'scores = self.hook_attn_scores(scores).masked_fill(later, float("-inf"))')],
        ("Attention matches", "TransformerBlock matches", "Transformer matches"),
        ("the mask is applied after the scores pass through hook_attn_scores",),
    ),
}
SELECTION = "(attention or block or full_transformer or causal or train) and not entropy_floor"
# Attention 3, TransformerBlock 2, Transformer 2, the attention-only Transformer 1 and the
# step-by-step training test 1.
POINTS = 9


@pytest.mark.slow
def test_messages_name_the_claim_that_fails(grade, tmp_path):
    changes = [change for replacements, _, _ in MISTAKES.values() for change in replacements]
    graded = grade(variant_folder(tmp_path, TRANSFORMER, "messages", changes), "lab2",
                   parts=("transformer",), timeout_scale=2.0, extra=("-k", SELECTION))
    assert graded.returncode == 0, graded.output[-2000:]
    assert "train moves the model and each batch" in " ".join(graded.passed())
    assert_each_mistake_fails_its_tests(
        graded, {name: (fragments, messages) for name, (_, fragments, messages)
                 in MISTAKES.items()}, POINTS)
