"""Typical mistakes in lab 2's superposition part fail exactly the tests that cover them, with a
message that points at the fault; correct alternatives to the reference's code get full marks.

Each variant is the reference's superposition.py with passages changed the way a student might
write them, graded by the real CLI. Mistakes that fail different tests share one grading. The
trained-geometry test is left out: it shows a working model, not which piece is broken.
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_mistakes_named, grade_variant

REFERENCE = REPO_ROOT / "reference" / "lab2" / "superposition.py"
NOT_TRAINED = ("-k", "not trained_geometry")

# case: (passage in the reference, the mistake, display names of the tests that must fail
#        (substrings), text their output must contain)
MISTAKES = {
    "importance_not_applied": (
        "weighted = importance * (target - output).pow(2)",
        "weighted = (target - output).pow(2)",
        ("importance_weighted_loss: per instance", "train_step gives the reference's loss",
         "train_toy_model: a batch"),
        "importance_weighted_loss",
    ),
    "sparsity_as_the_probability_of_being_present": (
        "present = torch.rand(shape, generator=generator) >= sparsity.cpu()[:, None]",
        "present = torch.rand(shape, generator=generator) < sparsity.cpu()[:, None]",
        ("generate_batch uses the generator", "generate_batch: zeros with probability"),
        "sparsity",
    ),
}

# Correct code written differently from the reference: full marks.
ALTERNATIVES = {
    "forward_with_bmm": (
        '''        hidden = torch.einsum("khf,bkf->bkh", self.W, features)
        out = torch.einsum("khf,bkh->bkf", self.W, hidden)
        return torch.relu(out + self.b_final)''',
        '''        per_instance = features.transpose(0, 1)  # (k, b, f)
        hidden = torch.bmm(per_instance, self.W.transpose(1, 2))  # (k, b, h)
        out = torch.bmm(hidden, self.W).transpose(0, 1)  # (b, k, f)
        return torch.nn.functional.relu(out + self.b_final)''',
    ),
    "interference_from_unit_directions": (
        '''    gram = torch.einsum("khi,khj->kij", W, W)
    squared_norms = gram.diagonal(dim1=-2, dim2=-1)
    others = gram.pow(2).sum(dim=-1) - squared_norms.pow(2)
    return torch.where(squared_norms > 0, others / squared_norms.clamp_min(1e-300), 0.0)''',
        '''    norms = W.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, W / norms.clamp_min(1e-300), 0.0)
    projections = torch.einsum("khi,khj->kij", unit, W).pow(2)
    mask = 1 - torch.eye(W.shape[2], dtype=W.dtype)
    return (projections * mask).sum(dim=-1)''',
    ),
}


@pytest.mark.slow
def test_superposition_mistakes_are_named(grade, tmp_path):
    changes = [(passage, mistake) for passage, mistake, _, _ in MISTAKES.values()]
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab2", "mistakes", changes,
                           extra=NOT_TRAINED)
    assert_mistakes_named(graded, MISTAKES)


@pytest.mark.slow
def test_superposition_alternatives_get_full_marks(grade, tmp_path):
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab2", "alternatives",
                           list(ALTERNATIVES.values()), extra=NOT_TRAINED)
    assert not graded.failed(), "\n".join(graded.output_of(name) for name in graded.failed())
