"""The modular-addition mistakes the handout warns about lose points with a message that points
at them, and correct alternatives keep full marks.

Each case is the reference's modular_addition.py with one passage changed, graded by the real
CLI on the tests that `-k` selects (the affected ones and a neighbour that must still pass).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder import REPO_ROOT
from tests.conftest import grade_variant

REFERENCE = REPO_ROOT / "reference" / "lab2" / "modular_addition.py"
BASIS_ROWS = "rows += [angle.cos() * math.sqrt(2 / p), angle.sin() * math.sqrt(2 / p)]"
FREQUENCIES = "for k in range(1, (p - 1) // 2 + 1):\n        angle"
RESTRICTED = "return logits.mean(dim=0, keepdim=True) + directions.T @ (directions @ logits)"
EXCLUDED_KEPT = "kept = restricted_logits(logits, frequencies) - logits.mean(dim=0, keepdim=True)"
BASIS_TESTS = "fourier or embedding or neuron"

# case: (passage, mistake, -k expression, display names of the tests that must fail
#        (substrings), text the output of the first of them must contain)
CASES = {
    "basis_not_normalised": (
        BASIS_ROWS, "rows += [angle.cos(), angle.sin()]", BASIS_TESTS,
        ("fourier_basis is", "fourier_2d matches", "embedding_frequency_norms matches",
         "neuron_frequencies clusters", "find the trained model's", "trained model's neurons"),
        "norm",
    ),
    "frequencies_from_k_plus_one": (
        "angle = 2 * math.pi * k * x / p\n        rows",
        "angle = 2 * math.pi * (k + 1) * x / p\n        rows", BASIS_TESTS,
        ("fourier_basis is", "fourier_2d matches", "embedding_frequency_norms matches",
         "neuron_frequencies clusters", "find the trained model's", "trained model's neurons"),
        "should be cos(2 pi 1 x",
    ),
    "one_frequency_too_many": (
        FREQUENCIES, "for k in range(1, p // 2 + 2):\n        angle", "fourier",
        ("fourier_basis is", "fourier_2d matches"),
        "(p - 1) / 2",
    ),
    "cos_and_sin_swapped": (
        BASIS_ROWS,
        "rows += [angle.sin() * math.sqrt(2 / p), angle.cos() * math.sqrt(2 / p)]",
        BASIS_TESTS, ("fourier_basis is", "fourier_2d matches"),
        "it is what row 2 should be: sin",
    ),
    "constant_dropped_from_restricted_logits": (
        RESTRICTED, "return directions.T @ (directions @ logits)", "ablated or progress",
        ("restricted_logits matches", "excluded_logits matches", "progress_measures gives",
         "progress_measures along"),
        "of each answer c is",
    ),
    "constant_removed_from_excluded_logits": (
        EXCLUDED_KEPT, "kept = restricted_logits(logits, frequencies)", "ablated or progress",
        ("excluded_logits matches", "progress_measures gives", "progress_measures along"),
        "excluded",
    ),
    "restricted_loss_on_the_test_split": (
        '"restricted_loss": loss(restricted_logits(logits, frequencies), every)',
        '"restricted_loss": loss(restricted_logits(logits, frequencies), ~is_train)',
        "ablated or progress", ("progress_measures gives", "progress_measures along"),
        "['restricted_loss']",
    ),
    "neuron_frequency_by_largest_coefficient": (
        "shares.append(squares[terms][:, terms].sum(dim=(0, 1)) - squares[0, 0])",
        "shares.append(squares[terms][:, terms].flatten(0, 1)[1:].amax(dim=0))",
        "neuron", ("neuron_frequencies clusters", "trained model's neurons"),
        "not the one with the largest single term",
    ),
}

# Correct alternatives, all in one submission: a basis normalised by dividing by its norm,
# the 2-D transform by matmul, clusters by thresholding (allowed for threshold >= 0.5), the
# excluded logits computed on their own, the loss as logsumexp minus the label's logit (in
# float64, as the docstring asks: it differs from log_softmax's in the last bits of a loss of
# 1e-10, which the loss test's tolerance must accept).
ALTERNATIVES = (
    ("rows = [torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64)]",
     "rows = [torch.ones(p, dtype=torch.float64)]"),
    (BASIS_ROWS, "rows += [angle.cos(), angle.sin()]"),
    ("    return torch.stack(rows)\n",
     "    basis = torch.stack(rows)\n    return basis / basis.norm(dim=1, keepdim=True)\n"),
    ('    along_b = torch.einsum("jb,abn->ajn", basis, values.to(torch.float64))\n'
     '    return torch.einsum("ia,ajn->ijn", basis, along_b)\n',
     "    values = values.to(torch.float64).permute(2, 0, 1)\n"
     "    return (basis @ values @ basis.T).permute(1, 2, 0)\n"),
    ("        frequencies.append(torch.where(share > threshold, best + 1, "
     "torch.zeros_like(best)))\n",
     "        frequency = torch.zeros_like(best)\n"
     "        for k, row in enumerate(shares, start=1):\n"
     "            frequency[row > threshold] = k\n"
     "        frequencies.append(frequency)\n"),
    ("    kept = restricted_logits(logits, frequencies) - logits.mean(dim=0, keepdim=True)\n"
     "    return logits - kept\n",
     "    p = logits.shape[1]\n"
     "    x = torch.arange(p, dtype=torch.float64)\n"
     "    total = (x[:, None] + x[None, :]).flatten()\n"
     "    for k in frequencies:\n"
     "        for wave in ((2 * math.pi * int(k) * total / p).cos(),\n"
     "                     (2 * math.pi * int(k) * total / p).sin()):\n"
     "            logits = logits - torch.outer(wave, wave @ logits) / wave.dot(wave)\n"
     "    return logits\n"),
    ("    log_probs = logits[:, -1].to(torch.float64).log_softmax(dim=-1)\n"
     "    return -log_probs.gather(-1, labels[:, None]).mean()\n",
     "    last = logits[:, -1].to(torch.float64)\n"
     "    return (last.logsumexp(dim=-1) - last.gather(-1, labels[:, None])[:, 0]).mean()\n"),
)


def _graded(grade, tmp_path: Path, name: str, changes, expression: str):
    return grade_variant(grade, tmp_path, REFERENCE, "lab2", name, list(changes),
                         extra=("-k", expression))


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_modular_addition_mistake_is_named(case, grade, tmp_path):
    passage, mistake, expression, affected, message = CASES[case]
    graded = _graded(grade, tmp_path, case, [(passage, mistake)], expression)
    names = [test["name"] for test in graded.tests]
    unmatched = [f for f in affected if not any(f in name for name in names)]
    assert not unmatched, f"no test's name contains {unmatched}: {names}"
    expected = {name for name in names if any(f in name for f in affected)}
    assert set(graded.failed()) == expected, (
        f"failed: {sorted(graded.failed())}\nexpected: {sorted(expected)}")
    # The first affected test is the one that points at the mistake.
    first = next(test for test in graded.tests if affected[0] in test["name"])
    assert message in first["output"], f"{first['name']}: {first['output']}"


@pytest.mark.slow
def test_modular_addition_alternatives_get_full_marks(grade, tmp_path):
    graded = _graded(grade, tmp_path, "alternatives", ALTERNATIVES,
                     "fourier or embedding or neuron or ablated or progress or loss_fn")
    assert graded.failed() == [], [
        (test["name"], test["output"]) for test in graded.tests if test["status"] == "failed"]
    assert len(graded.passed()) >= 8
