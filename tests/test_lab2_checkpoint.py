"""The committed modular-addition checkpoint: it loads, it is the canonical run, and it grokked.

`python modular_addition.py train` in reference/lab2 reproduces it (README.md gives the time).
"""

from __future__ import annotations

import sys
from dataclasses import asdict

import pytest
import torch

from autograder import REPO_ROOT

LAB = REPO_ROOT / "reference" / "lab2"
SHIPPED = LAB / "checkpoints" / "modular_addition.pt"
STUDENT_COPY = REPO_ROOT / "assignments" / "lab2" / "checkpoints" / "modular_addition.pt"


@pytest.fixture(scope="module")
def lab2():
    """The support module and the reference of the part, imported from reference/lab2."""
    sys.path.insert(0, str(LAB))
    try:
        import grokking
        import modular_addition

        yield grokking, modular_addition
    finally:
        sys.path.remove(str(LAB))
        for name in ("grokking", "modular_addition", "hooks"):
            sys.modules.pop(name, None)


def test_students_get_the_same_checkpoint():
    assert STUDENT_COPY.read_bytes() == SHIPPED.read_bytes()
    assert SHIPPED.stat().st_size < 8 * 2**20


@pytest.mark.slow
def test_checkpoint_is_the_grokked_canonical_run(lab2):
    grokking, modular_addition = lab2
    checkpoint = grokking.load_checkpoint(SHIPPED)
    assert asdict(checkpoint.config) == asdict(grokking.GrokkingConfig())
    assert torch.equal(checkpoint.train_indices, grokking.train_test_split(113, 0.3, 0))
    assert len(checkpoint.history_states) == 10
    assert checkpoint.history_epochs == sorted(set(checkpoint.history_epochs))
    assert all(tensor.dtype == torch.float16 for state in checkpoint.history_states
               for tensor in state.values())

    logits, _ = grokking.last_position(checkpoint.model())
    labels = grokking.all_pairs(113)[1]
    _, test = checkpoint.split()
    accuracy = (logits[test].argmax(dim=-1) == labels[test]).double().mean().item()
    assert accuracy >= 0.99, f"test accuracy {accuracy:.4f}"
    assert float(checkpoint.curves["test_accuracy"][-1]) >= 0.99

    # A handful of frequencies carry 90% of the embedding's power.
    norms = modular_addition.embedding_frequency_norms(checkpoint.final_state["W_E"])
    keys = modular_addition.key_frequencies(norms)
    assert 2 <= len(keys) <= 8, keys
