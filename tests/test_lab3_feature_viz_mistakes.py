"""Typical mistakes in lab 3's feature-visualisation part fail exactly the tests that cover them,
with a message that points at the fault; correct alternatives get full marks.

Each variant is the reference's feature_viz.py with passages changed the way a student might
write them, graded by the real CLI on the unit tests (the two outcome tests on the shipped CNN
show a working visualisation, not which piece is broken). Mistakes whose own tests differ share
a grading; the loss, the step and `visualise` call the pieces, so they fail with each of them.
(Drawing the two shifts with two calls of size 1 is no mistake: the CPU generator gives the
same numbers as one call of size 2.)
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import grade_variant

REFERENCE = REPO_ROOT / "reference" / "lab3" / "feature_viz.py"
UNITS = "not beats and not orientation"
CALLERS = ("visualisation_loss:", "optimisation_step:", "visualise:")

# grading: (-k expression, {case: (passage, mistake, display names of the tests that must fail
#           (substrings; the first carries the message), text the first one's output contains)})
MISTAKES = {
    "sum_sqrt_backward_unnormalised_swapped": (UNITS, {
        "channel_sum_not_mean": (
            "return selected.mean(dim=(-2, -1)) if selected.dim() == 3 else selected",
            "return selected.sum(dim=(-2, -1)) if selected.dim() == 3 else selected",
            ("channel_objective:", "top_examples:", *CALLERS), "channel_objective"),
        "l2_as_the_norm": (
            "return images.pow(2).sum(dim=(1, 2, 3))",
            "return images.pow(2).sum(dim=(1, 2, 3)).sqrt()",
            ("l2_penalty:", *CALLERS), "l2_penalty"),
        "irfft2_without_ortho": (
            'return torch.fft.irfft2(coefficients * scale, s=(h, w), norm="ortho")',
            "return torch.fft.irfft2(coefficients * scale, s=(h, w))",
            ("fourier_image:", *CALLERS), "fourier_image"),
        "gram_not_normalised": (
            "    grams = grams / norms.clamp_min(1e-12)[:, None, None]\n", "",
            ("diversity_penalty:", *CALLERS), "diversity_penalty"),
        "shifts_swapped": (
            "return torch.roll(images, shifts=(dy, dx), dims=(-2, -1))",
            "return torch.roll(images, shifts=(dx, dy), dims=(-2, -1))",
            ("random_jitter:", *CALLERS), "random_jitter"),
    }),
    "corner_ascending_squared_min_two_draws": (UNITS, {
        "centre_rounded_down": (
            "return selected[:, h // 2, w // 2]",
            "return selected[:, (h - 1) // 2, (w - 1) // 2]",
            ("neuron_objective:", *CALLERS), "neuron_objective"),
        "top_k_ascending": (
            "top = scores.topk(k)", "top = scores.topk(k, largest=False)",
            ("top_examples:",), "top_examples"),
        "tv_squared": (
            "vertical = (images[..., 1:, :] - images[..., :-1, :]).abs().sum(dim=(1, 2, 3))",
            "vertical = (images[..., 1:, :] - images[..., :-1, :]).pow(2).sum(dim=(1, 2, 3))",
            ("total_variation:", *CALLERS), "total_variation"),
        "frequency_floor_from_min": (
            "return 1.0 / frequency.clamp_min(1.0 / max(h, w)) ** decay_power",
            "return 1.0 / frequency.clamp_min(1.0 / min(h, w)) ** decay_power",
            ("fourier_scale:", "fourier_image:"), "fourier_scale"),
        "shifts_exclude_max_shift": (
            "dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()",
            "dy, dx = torch.randint(-max_shift, max_shift, (2,), generator=generator).tolist()",
            ("random_jitter:", *CALLERS), "random_jitter"),
    }),
    "penalties_on_the_jittered_images": ("loss or step or visualise", {
        "penalties_on_the_jittered_images": (
            "loss = loss + config.tv_weight * total_variation(images).mean()",
            "loss = loss + config.tv_weight * total_variation(jittered).mean()",
            CALLERS, "visualisation_loss"),
    }),
    "no_tanh": ("step or visualise", {
        "no_tanh": (
            "    images = torch.tanh(fourier_image(spectrum, config.size, config.size, "
            "config.decay_power))",
            "    images = fourier_image(spectrum, config.size, config.size, config.decay_power)",
            ("optimisation_step:", "visualise:"), "the loss returned by step 1"),
    }),
    "gradients_accumulate": ("step", {
        "gradients_accumulate": (
            "    optimizer.zero_grad()\n", "",
            ("optimisation_step:",), "after step 2"),
    }),
}

ALTERNATIVES = {
    "objectives_by_indexing": [
        ("    selected = activations[:, channel]\n"
         "    return selected.mean(dim=(-2, -1)) if selected.dim() == 3 else selected",
         "    if activations.dim() == 2:\n"
         "        return activations[:, channel]\n"
         "    return activations.flatten(2)[:, channel].sum(-1) / activations[0, 0].numel()"),
    ],
    "penalties_by_diff": [
        ("    vertical = (images[..., 1:, :] - images[..., :-1, :]).abs().sum(dim=(1, 2, 3))\n"
         "    horizontal = (images[..., :, 1:] - images[..., :, :-1]).abs().sum(dim=(1, 2, 3))\n"
         "    return vertical + horizontal",
         "    return (images.diff(dim=-2).abs().flatten(1).sum(1)\n"
         "            + images.diff(dim=-1).abs().flatten(1).sum(1))"),
        ("return images.pow(2).sum(dim=(1, 2, 3))", "return (images * images).flatten(1).sum(1)"),
    ],
    "diversity_over_pairs": [
        ("    similarity = torch.einsum(\"aij,bij->ab\", grams, grams)\n"
         "    batch = activations.shape[0]\n"
         "    return (similarity.sum() - similarity.diagonal().sum()) / batch",
         "    batch = activations.shape[0]\n"
         "    total = grams.new_zeros(())\n"
         "    for i in range(batch):\n"
         "        for j in range(batch):\n"
         "            if i != j:\n"
         "                total = total + (grams[i] * grams[j]).sum()\n"
         "    return total / batch"),
    ],
    "complex_spectrum_by_hand": [
        ("    coefficients = torch.view_as_complex(spectrum.contiguous())\n",
         "    coefficients = torch.complex(spectrum[..., 0], spectrum[..., 1])\n"),
        ("    f_y = torch.fft.fftfreq(h, dtype=dtype)[:, None]\n",
         "    f_y = torch.cat([torch.arange(0, (h - 1) // 2 + 1), torch.arange(-(h // 2), 0)])"
         ".to(dtype)[:, None] / h\n"),
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("grading", sorted(MISTAKES))
def test_feature_viz_mistakes_are_named(grading, grade, tmp_path):
    selection, mistakes = MISTAKES[grading]
    changes = [(passage, mistake) for passage, mistake, _, _ in mistakes.values()]
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab3", grading, changes,
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
def test_feature_viz_alternatives_get_full_marks(grade, tmp_path):
    changes = [change for variant in ALTERNATIVES.values() for change in variant]
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab3", "alternatives", changes)
    assert not graded.failed(), "\n".join(graded.output_of(name) for name in graded.failed())
