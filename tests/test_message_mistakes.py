"""Messages that point at the real fault (issue 23), graded end to end: each mistake fails
exactly the tests of the claim it breaks, with a message about that claim.

- Losses recorded after the optimizer step: the step-by-step test fails; the device test,
  whose claim is only where the model and the batches go, keeps its point.
- The attention scores passed through hook_attn_scores before the mask: the model still never
  sees the future, and the message says that the hook comes after the mask.
- A resampling direction normalised from the input itself (x / ||x||, not x - b_dec): the toy
  data of the trained SAE tests holds all-zero inputs, whose direction is NaN. The message
  names resample_dead_latents, whose call left the NaN, not the next function to trip over
  it (torch.multinomial's "invalid multinomial distribution" inside train_sae).
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_each_mistake_fails_its_tests, variant_folder

TRANSFORMER = REPO_ROOT / "reference" / "lab2" / "transformer.py"
SAE = REPO_ROOT / "reference" / "lab2" / "sae.py"

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


@pytest.mark.slow
def test_a_nan_left_by_resampling_is_blamed_on_resampling(grade, tmp_path):
    # At seed 1 the TopK training's first resampling picks an all-zero input (seeds 2, 3, 7
    # and 8 too; 4 to 6 pick none); before the check the test failed with torch.multinomial's
    # "invalid multinomial distribution (encountering probability entry < 0)".
    changes = [("        directions = inputs[picks] - sae.b_dec\n",
                "        directions = inputs[picks]\n")]
    graded = grade(variant_folder(tmp_path, SAE, "nan", changes), "lab2", parts=("sae",),
                   seed=1, timeout_scale=2.0, extra=("-k", "trained"))
    assert graded.returncode == 0, graded.output[-2000:]
    outputs = " ".join(test["output"] for test in graded.tests if test["status"] != "passed")
    assert "call number 1 of resample_dead_latents left NaN or inf" in outputs, outputs[:2000]
    assert "multinomial" not in outputs, outputs[:2000]
