"""Typical mistakes in lab 3's jailbreak part fail exactly the tests that cover them, with a
message that names the function; correct alternatives to the reference's code get full marks.

Each variant is the reference's jailbreak.py with passages changed the way a student might
write them, graded by the real CLI on the unit tests (the outcome tests on the trained model
show that the pieces work together, not which is broken). Mistakes that fail different tests
share one grading. A test that fails because a function it calls from inside the submission
is wrong carries the engine's line naming that function, so the message to look for is the
broken function's name.
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_mistakes_named, grade_variant

REFERENCE = REPO_ROOT / "reference" / "lab3" / "jailbreak.py"
UNITS = ("-k", "not beats_random and not makes_harmless_requests_refused")

# grading: {case: (passage in the reference, the mistake, display names of the tests that must
#           fail (substrings), text their output must contain)}
MISTAKES = {
    "reading_and_scoring": {
        "activation_at_the_padded_end": (
            "    return torch.stack([cache[name][rows, last] for name in names])",
            "    return torch.stack([cache[name][:, -1] for name in names])",
            ("last_token_resid reads",), "last_token_resid"),
        "harmless_minus_harmful": (
            "    return harmful.mean(dim=1) - harmless.mean(dim=1)",
            "    return harmless.mean(dim=1) - harmful.mean(dim=1)",
            ("refusal_directions is",), "refusal_directions"),
        "log_probability_not_log_odds": (
            "    return at_last[:, REFUSAL_TOKEN] - others.logsumexp(dim=-1)",
            "    return at_last.log_softmax(dim=-1)[:, REFUSAL_TOKEN]",
            ("refusal_score is", "select_layer ablates"), "refusal_score"),
        "normal_approximation_interval": (
            "    return (centre - half) / scale, (centre + half) / scale",
            "    half = z * math.sqrt(p * (1 - p) / trials)\n"
            "    return p - half, p + half",
            ("wilson_interval matches",), "wilson_interval"),
        "added_direction_normalised": (
            "        return resid + direction\n",
            "        return resid + direction / direction.norm()\n",
            ("added_logits adds",), "added_logits"),
        "orthogonalised_in_place": (
            "    new = copy.deepcopy(model)",
            "    new = model",
            ("orthogonalised_model's weights",), "left as it was"),
        "most_positive_gradients": (
            "    return (-masked).topk(k, dim=-1).indices",
            "    return gradients.masked_fill(~allowed, -math.inf).topk(k, dim=-1).indices",
            ("top_k_substitutions picks", "one gcg_step"), "top_k_substitutions"),
    },
    "projection_and_loss": {
        "projection_on_the_unnormalised_direction": (
            "    unit = direction / direction.norm()\n"
            "    return x - (x @ unit)[..., None] * unit",
            "    unit = direction\n"
            "    return x - (x @ unit)[..., None] * unit",
            ("project_out removes", "ablated_logits projects", "orthogonalised_model's weights",
             "select_layer ablates"), "project_out"),
        "target_predicted_one_position_late": (
            "    logits = model(tokens[:, :-1])[:, prompt_len - 1:]",
            "    logits = model(tokens)[:, prompt_len:]",
            ("target_loss is", "token_gradients is", "one gcg_step"), "target_loss"),
        "stream_before_the_block": (
            '    names = [f"blocks.{layer}.hook_resid_post" for layer in range(len(model.blocks))]',
            '    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(len(model.blocks))]',
            ("last_token_resid reads",), "last_token_resid"),
    },
    "sampling_and_writes": {
        "choices_drawn_before_positions": (
            "    positions = torch.randint(0, m, (batch,), generator=generator)\n"
            "    choices = torch.randint(0, k, (batch,), generator=generator)",
            "    choices = torch.randint(0, k, (batch,), generator=generator)\n"
            "    positions = torch.randint(0, m, (batch,), generator=generator)",
            # gcg_step's best candidate often survives the swap (the draws differ, the winning
            # substitution is among both batches), so only sample_candidates' test must fail.
            ("sample_candidates draws",), "sample_candidates"),
        "embeddings_not_ablated": (
            '    hooks_ = [("hook_embed", ablate_and_set), ("hook_pos_embed", ablate)]',
            "    hooks_ = []",
            ("ablated_logits projects", "select_layer ablates"), "ablated_logits"),
        "orthogonalised_without_biases": (
            "        writers += [block.attn.W_O, block.attn.b_O, block.mlp.W_out, block.mlp.b_out]",
            "        writers += [block.attn.W_O, block.mlp.W_out]",
            ("orthogonalised_model's weights",), "orthogonalised_model"),
        "highest_loss_kept": (
            "    best = int(losses.argmin())",
            "    best = int(losses.argmax())",
            ("one gcg_step",), "the best candidate"),
    },
}

# Correct code written differently from the reference: full marks.
ALTERNATIVES = [
    # Ablating the residual stream itself (Arditi et al.'s hooks) instead of each write to it.
    ('    hooks_ = [("hook_embed", ablate_and_set), ("hook_pos_embed", ablate)]\n'
     "    for layer in range(len(model.blocks)):\n"
     '        hooks_ += [(f"blocks.{layer}.hook_attn_out", ablate),\n'
     '                   (f"blocks.{layer}.hook_mlp_out", ablate)]',
     '    hooks_ = [(f"blocks.{layer}.{point}", ablate_and_set)\n'
     "              for layer in range(len(model.blocks))\n"
     '              for point in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")]'),
    # A projection matrix.
    ("    unit = direction / direction.norm()\n"
     "    return x - (x @ unit)[..., None] * unit",
     "    unit = direction / direction.norm()\n"
     "    eye = torch.eye(len(unit), dtype=unit.dtype)\n"
     "    return x @ (eye - torch.outer(unit, unit))"),
    # The log-odds from log-probabilities.
    ("    others = at_last.clone()\n"
     "    others[:, REFUSAL_TOKEN] = -math.inf\n"
     "    return at_last[:, REFUSAL_TOKEN] - others.logsumexp(dim=-1)",
     "    log_probs = at_last.log_softmax(dim=-1)\n"
     "    keep = torch.ones(log_probs.shape[-1], dtype=torch.bool)\n"
     "    keep[REFUSAL_TOKEN] = False\n"
     "    return log_probs[:, REFUSAL_TOKEN] - log_probs[:, keep].logsumexp(dim=-1)"),
    # The one-hot of the whole prompt, and the suffix's rows of its gradient.
    ("    one_hot = nn.functional.one_hot(suffix, model.embed.W_E.shape[0])"
     ".to(model.embed.W_E.dtype)\n"
     "    one_hot.requires_grad_(True)\n"
     "    start = len(prefix)\n"
     "\n"
     "    def embed_suffix(embeddings: torch.Tensor, _name: str) -> torch.Tensor:\n"
     "        embeddings = embeddings.clone()\n"
     "        embeddings[:, start:start + len(suffix)] = one_hot @ model.embed.W_E\n"
     "        return embeddings\n"
     "\n"
     "    prompt = torch.cat([prefix, suffix, post])[None]\n"
     "    with torch.enable_grad(), hooks(model, [(\"hook_embed\", embed_suffix)]):\n"
     "        loss = target_loss(model, prompt, target).sum()\n"
     "        (gradient,) = torch.autograd.grad(loss, one_hot)\n"
     "    return gradient",
     "    prompt = torch.cat([prefix, suffix, post])\n"
     "    W_E = model.embed.W_E\n"
     "    one_hot = torch.zeros(len(prompt), W_E.shape[0], dtype=W_E.dtype)\n"
     "    one_hot[torch.arange(len(prompt)), prompt] = 1.0\n"
     "    one_hot.requires_grad_(True)\n"
     "\n"
     "    def embed_all(embeddings, _name):\n"
     "        return torch.cat([(one_hot @ W_E)[None], embeddings[:, len(prompt):]], dim=1)\n"
     "\n"
     "    with torch.enable_grad(), hooks(model, [(\"hook_embed\", embed_all)]):\n"
     "        loss = target_loss(model, prompt[None], target).sum()\n"
     "        gradient = torch.autograd.grad(loss, one_hot)[0]\n"
     "    return gradient[len(prefix):len(prefix) + len(suffix)]"),
    # z from torch's normal quantile.
    ("    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)",
     "    z = float(torch.special.ndtri(torch.tensor(1 - (1 - confidence) / 2,\n"
     "                                              dtype=torch.float64)))"),
]


@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(MISTAKES))
def test_jailbreak_mistakes_are_named(grade, tmp_path, group):
    mistakes = MISTAKES[group]
    changes = [(passage, mistake) for passage, mistake, _, _ in mistakes.values()]
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab3", group, changes, extra=UNITS)
    assert_mistakes_named(graded, mistakes)


@pytest.mark.slow
def test_jailbreak_alternatives_get_full_marks(grade, tmp_path):
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab3", "alternatives", ALTERNATIVES,
                           extra=UNITS)
    assert not graded.failed(), "\n".join(graded.output_of(name) for name in graded.failed())
