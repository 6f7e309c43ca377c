"""The transformer mistakes students make lose points with a message that names the step, and
other correct implementations (batched matmuls, a -1e5 mask, rsqrt LayerNorm, a Gumbel-max
sampler, ...) keep full marks.

Each grading is the reference's transformer.py with a few passages changed the way a student
might get them wrong, graded by the real CLI on the tests named by `-k` (the float32 and
training tests are left out to keep this quick; `-k` also matches the file name, so never
"transformer" alone). Mistakes share a grading where the tests
that show them differ, or where the composite tests name the first one in forward order.
"""

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_each_mistake_fails_its_tests, grade_variant

REFERENCE = REPO_ROOT / "reference" / "lab2" / "transformer.py"
ALTERNATIVES = REPO_ROOT / "tests" / "lab2_alternatives" / "transformer_alternatives.py"

# Display names of the tests (fragments).
LAYER_NORM = "LayerNorm matches"
ATTENTION = "Attention matches"
MLP = "MLP matches"
BLOCK = "TransformerBlock matches"
TRANSFORMER = "Transformer matches"
CAUSAL = "attention-only Transformer matches"
TOP_P = "top_p_filter keeps"
SAMPLE = "sample_next_token:"

SCORES = 'scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(q.shape[-1])'
ATTN_RESIDUAL = "resid = resid + self.hook_attn_out(self.attn(self.ln1(resid)))"

# name: ([(passage, replacement), ...], display-name fragments of the tests it fails, texts
#        their messages must all contain)
Mistake = tuple[list[tuple[str, str]], tuple[str, ...], tuple[str, ...]]

MISTAKES: dict[str, Mistake] = {
    "unbiased_variance": (
        [("variance = centred.pow(2).mean(dim=-1, keepdim=True)",
          "variance = x.var(dim=-1, keepdim=True)")],
        (LAYER_NORM,), ("is hook_normalized",),
    ),
    "relu_for_gelu": (
        [("post = self.hook_post(nn.functional.gelu(pre))",
          "post = self.hook_post(torch.relu(pre))")],
        (MLP,), ("is hook_post. Check GELU",),
    ),
    "no_one_over_sqrt_d_head": (
        [(SCORES, 'scores = torch.einsum("bqhe,bkhe->bhqk", q, k)')],
        (ATTENTION,), ("is hook_attn_scores. Check the scores: q . k / sqrt(d_head)",),
    ),
    # The filter's own test names the tokens kept; the sampler's, the frequency that is off.
    "top_p_drops_the_token_that_crosses_p": (
        [("before >= p", "before + sorted_probs >= p")],
        (TOP_P,), ("the reference keeps",),
    ),
    "top_p_drops_the_token_that_crosses_p (seen by the sampler)": (
        [], (SAMPLE,), ("came up with frequency",),
    ),
    "mask_hides_the_token_itself": (
        [("triu(diagonal=1)", "triu(diagonal=0)")],
        (ATTENTION,), ("is hook_attn_scores",),
    ),
    "temperature_after_softmax": (
        [("    logits = logits / temperature\n", ""),
         ("torch.multinomial(logits.softmax(dim=-1), 1,",
          "torch.multinomial(logits.softmax(dim=-1) / temperature, 1,")],
        (SAMPLE,), ("divide the logits by the temperature before the softmax",),
    ),
    "mask_lets_the_next_token_through": (
        [("triu(diagonal=1)", "triu(diagonal=2)")],
        (ATTENTION,), ("a later position",),
    ),
    # TRANSFORMER also names the attention-only model's test (CAUSAL).
    "post_ln": (
        [(ATTN_RESIDUAL, "resid = self.ln1(resid + self.hook_attn_out(self.attn(resid)))")],
        (BLOCK, TRANSFORMER), ("ln1.hook_normalized",),
    ),
    "post_ln (in the whole model)": (
        [], (TRANSFORMER, CAUSAL), ("is blocks.0.ln1.hook_normalized",),
    ),
    "softmax_over_the_queries": (
        [("pattern = self.hook_pattern(scores.softmax(dim=-1))",
          "pattern = self.hook_pattern(scores.softmax(dim=-2))")],
        (ATTENTION,), ("is hook_pattern. Check the pattern: softmax of the scores over the key",),
    ),
    "attention_residual_missing": (
        [(ATTN_RESIDUAL, "resid = self.hook_attn_out(self.attn(self.ln1(resid)))")],
        (BLOCK,), ("is hook_resid_mid. Check the residual: resid_pre + attn(ln1(resid_pre))",),
    ),
    "position_embedding_never_added": (
        [("resid = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed("
          "self.pos_embed(tokens))", "resid = self.hook_embed(self.embed(tokens))")],
        (TRANSFORMER, CAUSAL), ("nothing passed through the hook point hook_pos_embed",),
    ),
}

# Gradings: the mistakes put together in one file, the tests run (-k) and the points lost
# (LayerNorm 2, MLP 1, Attention 3, TransformerBlock 2, Transformer 2, the causal model 1,
# top_p_filter 1, sample_next_token 1).
GRADINGS = {
    "one_per_unit_test": (
        ["unbiased_variance", "relu_for_gelu", "no_one_over_sqrt_d_head",
         "top_p_drops_the_token_that_crosses_p",
         "top_p_drops_the_token_that_crosses_p (seen by the sampler)"],
        "(layer_norm or mlp or attention or top_p or sample_next) and not float32", 8,
    ),
    "mask_and_temperature": (
        ["mask_hides_the_token_itself", "temperature_after_softmax"],
        "(attention or sample_next) and not float32", 4,
    ),
    # Post-LN shows before the attention scores in forward order: the Block and Transformer
    # tests name ln1, the Attention test (no LayerNorm) the unmasked later key.
    "mask_and_post_ln": (
        ["mask_lets_the_next_token_through", "post_ln", "post_ln (in the whole model)"],
        "(attention or transformer_block or full_transformer or transformer_is_causal) "
        "and not float32", 8,
    ),
    "softmax_axis": (["softmax_over_the_queries"], "attention and not float32", 3),
    "residual_and_position": (
        ["attention_residual_missing", "position_embedding_never_added"],
        "(transformer_block or full_transformer or transformer_is_causal) and not float32", 5,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("grading", sorted(GRADINGS))
def test_transformer_mistakes_are_named(grading, grade, tmp_path):
    names, selection, points = GRADINGS[grading]
    mistakes = {name: MISTAKES[name] for name in names}
    changes = [change for name in names for change in MISTAKES[name][0]]
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab2", grading, changes,
                           extra=("-k", selection))
    assert_each_mistake_fails_its_tests(
        graded, {name: (fragments, messages) for name, (_, fragments, messages)
                 in mistakes.items()}, points)


@pytest.mark.slow
def test_alternative_implementations_score_full_marks(grade, tmp_path):
    # Appended before the demo's `if __name__` block: its definitions replace the reference's.
    main = 'if __name__ == "__main__":\n    main()'
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab2", "alternatives",
                           [(main, ALTERNATIVES.read_text() + "\n\n" + main)])
    failed = {t["name"]: t["output"] for t in graded.tests if t["status"] == "failed"}
    assert not failed, failed
    assert graded.results["score"] == 30
