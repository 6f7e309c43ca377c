"""Typical mistakes in lab 2's SAE part fail exactly the tests that cover them, with a message
that points at the fault; correct alternatives to the reference's code get full marks.

Each variant is the reference's sae.py with passages changed the way a student might write
them, graded by the real CLI on the unit tests (the loop and the trained outcomes show a
working SAE, not which piece is broken). Mistakes that fail different tests share a grading;
the first test a mistake names must carry its message, the others must fail.
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import grade_variant

REFERENCE = REPO_ROOT / "reference" / "lab2" / "sae.py"
UNITS = "not trained and not loop"
# Resampling's picks follow the reconstruction errors: a broken encoder or decoder moves them on
# all but about 1 seed in 1000 (see _resample_case), so gradings of those mistakes leave the
# resampling test out rather than count on its failure.
UNITS_BUT_RESAMPLING = "not trained and not loop and not resample"

# grading: (-k expression, {case: (passage, mistake, display names of the tests that must fail
#           (substrings; the first carries the message), text the first one's output contains)})
MISTAKES = {
    "loss_topk_fvu_resample_encoder": (UNITS, {
        "l1_on_the_reconstruction": (
            "sparsity_penalty = latents.abs().sum(dim=-1).mean()",
            "sparsity_penalty = reconstruction.abs().sum(dim=-1).mean()",
            ("sae_loss:", "train_step:"), "sae_loss"),
        "topk_keeps_the_smallest": (
            "top = pre.topk(self.k, dim=-1)",
            "top = pre.topk(self.k, dim=-1, largest=False)",
            ("SAE.encode (k set)", "also work in float32"), "k="),
        "fvu_over_the_uncentred_sum": (
            "total = (x - x.mean(dim=0, keepdim=True)).pow(2).sum()",
            "total = x.pow(2).sum()",
            ("fraction_of_variance_unexplained:",), "fraction_of_variance_unexplained"),
        "resampling_leaves_the_encoder": (
            "        sae.W_enc[dead_indices] = 0.2 * scale * directions\n", "",
            ("resample_dead_latents:",), "encoder row"),
    }),
    "pre_encoder_bias_not_subtracted": (UNITS_BUT_RESAMPLING, {
        "pre_encoder_bias_not_subtracted": (
            "pre = (x - self.b_dec) @ self.W_enc.T + self.b_enc",
            "pre = x @ self.W_enc.T + self.b_enc",
            ("SAE.encode (k = None)", "SAE.encode (k set)", "also work in float32",
             "train_step:"), "b_dec is subtracted"),
    }),
    "decode_and_topk_relu": (UNITS_BUT_RESAMPLING, {
        "pre_encoder_bias_not_added_back": (
            "return latents @ self.W_dec.T + self.b_dec", "return latents @ self.W_dec.T",
            ("SAE.decode:", "also work in float32", "train_step:"), "b_dec is added back"),
        "topk_without_the_relu": (
            "torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))",
            "torch.zeros_like(pre).scatter(-1, top.indices, top.values)",
            ("SAE.encode (k set)",), "ReLU"),
    }),
    "renormalisation_and_optimiser_state": ("resample or train_step", {
        "decoder_never_renormalised": (
            "        sae.W_dec /= sae.W_dec.norm(dim=0, keepdim=True)\n", "        pass\n",
            ("train_step:",), "unit norm"),
        "resampling_leaves_the_optimiser_state": (
            "                state[moment][index] = 0.0", "                pass",
            ("resample_dead_latents:",), "reset the optimizer state"),
    }),
}

ALTERNATIVES = {
    "decoder_normalised_in_decode": [
        ("return latents @ self.W_dec.T + self.b_dec",
         "return latents @ (self.W_dec / self.W_dec.norm(dim=0, keepdim=True)).T + self.b_dec"),
        ('''    with torch.no_grad():
        columns, gradient = sae.W_dec, sae.W_dec.grad
        gradient -= (gradient * columns).sum(dim=0, keepdim=True) * columns
    optimizer.step()
    with torch.no_grad():
        sae.W_dec /= sae.W_dec.norm(dim=0, keepdim=True)
''', "    optimizer.step()\n"),
    ],
    "resampling_with_masks": [
        ('''        sae.W_dec[:, dead_indices] = directions.T
        sae.W_enc[dead_indices] = 0.2 * scale * directions
        sae.b_enc[dead_indices] = 0.0''',
         '''        slot = (dead.cumsum(0) - 1).clamp_min(0)  # latent j takes the slot-th pick
        spread = directions[slot]  # (d_sae, d_in)
        sae.W_dec.copy_(torch.where(dead[None, :], spread.T, sae.W_dec))
        sae.W_enc.copy_(torch.where(dead[:, None], 0.2 * scale * spread, sae.W_enc))
        sae.b_enc.copy_(torch.where(dead, 0.0, sae.b_enc))'''),
    ],
    "fvu_from_var": [
        ("    total = (x - x.mean(dim=0, keepdim=True)).pow(2).sum()\n",
         "    total = x.var(dim=0, unbiased=False).sum() * x.shape[0]\n"),
    ],
    "encode_with_einsum": [
        ("pre = (x - self.b_dec) @ self.W_enc.T + self.b_enc",
         'pre = torch.einsum("bi,si->bs", x - self.b_dec, self.W_enc) + self.b_enc'),
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("grading", sorted(MISTAKES))
def test_sae_mistakes_are_named(grading, grade, tmp_path):
    selection, mistakes = MISTAKES[grading]
    changes = [(passage, mistake) for passage, mistake, _, _ in mistakes.values()]
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab2", grading, changes,
                           extra=("-k", selection))
    names = [test["name"] for test in graded.tests]
    expected = set()
    for case, (_, _, affected, message) in mistakes.items():
        unmatched = [fragment for fragment in affected if not any(fragment in n for n in names)]
        assert not unmatched, f"{case}: no test's name contains {unmatched}"
        expected |= {n for n in names if any(fragment in n for fragment in affected)}
        output = graded.output_of(affected[0])
        assert message in output, f"{case}: {output}"
    assert set(graded.failed()) == expected, (
        f"failed: {sorted(graded.failed())}\nexpected: {sorted(expected)}")


@pytest.mark.slow
def test_sae_alternatives_get_full_marks(grade, tmp_path):
    changes = [change for variant in ALTERNATIVES.values() for change in variant]
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab2", "alternatives", changes)
    assert not graded.failed(), "\n".join(graded.output_of(name) for name in graded.failed())
