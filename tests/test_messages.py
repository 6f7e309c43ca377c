"""Messages that point at the real fault (issue 23): fast checks of the pieces, no grading.

- a one-line summary of two values that differ shows enough digits to tell them apart, and
  the dtypes when they differ;
- the "fix X first" pointer names only functions students write, never a given __init__;
- attention scores passed through hook_attn_scores before the mask (the model still masks
  them) are told apart from a model that sees the future.
"""

from __future__ import annotations

import pytest
import torch

from autograder import REPO_ROOT
from autograder.engine.checks import GradingFailure, assert_close
from autograder.engine.plugin import cascade_pointers
from autograder.engine.stubs import make_stub, written_functions


def _message(got, want, **options) -> str:
    with pytest.raises(GradingFailure) as failure:
        assert_close(got, want, what="x", **options)
    return str(failure.value)


def test_a_summary_shows_the_digits_that_differ():
    message = _message(torch.tensor(0.0290690012, dtype=torch.float64),
                       torch.tensor(0.0290690049, dtype=torch.float64), rtol=1e-9, atol=0)
    assert "got 0.029069001, expected 0.029069005" in message, message
    assert "dtype" not in message and "float" not in message.split("allowed")[1], message
    # Six digits still where they suffice.
    assert "got 1.5, expected 2.5" in _message(torch.tensor(1.5), torch.tensor(2.5))


def test_a_summary_names_the_dtypes_when_they_differ():
    # l0 in float32: 2.6 rounded to float32 against 2.6 in float64.
    message = _message(torch.tensor(2.6, dtype=torch.float32),
                       torch.tensor(2.6, dtype=torch.float64), rtol=1e-9, atol=1e-12)
    got, want = message.split("got ")[1].split(" (")[0].split(", expected ")
    assert got != want, message
    assert "The result is float32, the expected result float64." in message, message


def test_the_pointer_names_only_what_students_write():
    records = {key: {"passed": False} for key in ("init", "forward", "train")}
    calls = {
        "init": {"m:Model.__init__": True},
        "forward": {"m:Model.__init__": True, "m:Model.forward": True},
        "train": {"m:train": True, "m:Model.__init__": False, "m:Model.forward": False},
    }
    assert cascade_pointers(records, calls)["train"].startswith(
        "Model.__init__ and Model.forward")
    pointers = cascade_pointers(records, calls, {"m:Model.forward", "m:train"})
    assert pointers == {"train": "Model.forward, which this test's code calls, fails its own "
                                 "tests: fix Model.forward first."}


def test_written_functions_are_read_from_the_reference_and_from_its_stub():
    source = (REPO_ROOT / "reference" / "lab2" / "sae.py").read_text()
    written = written_functions(source)
    assert {"SAE.encode", "SAE.decode", "train_step", "train_sae", "l0"} <= written
    assert "SAE.__init__" not in written
    assert written_functions(make_stub(source)) == written


def test_scores_hooked_before_the_mask_are_told_from_a_model_that_sees_the_future():
    from autograder.lab2.test_transformer import _masked_alike

    scores = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    masked = scores.masked_fill(torch.ones(3, 3, dtype=torch.bool).triu(1), float("-inf"))
    name = "blocks.0.attn.hook_attn_scores"
    causal = {"blocks.0.attn.hook_pattern": masked.softmax(dim=-1)}
    with pytest.raises(GradingFailure, match="the mask is applied after the scores pass"):
        _masked_alike(name, scores, masked, "Attention.forward", causal)
    leaking = {"blocks.0.attn.hook_pattern": scores.softmax(dim=-1)}
    with pytest.raises(GradingFailure, match="so that a token never sees the future"):
        _masked_alike(name, scores, masked, "Attention.forward", leaking)


def test_the_pointer_follows_a_helper_to_the_function_behind_it():
    # A TopK encoder mistake: encode fails its own test; train_step's test fails because of
    # encode (its pointer says so); the trained test calls encode directly (its probe reads
    # the latents) and train_step from inside train_sae: it must reach encode too.
    records = {key: {"passed": False} for key in ("encode", "train_step", "trained")}
    calls = {
        "encode": {"sae:SAE.encode": True},
        "train_step": {"sae:train_step": True, "sae:SAE.encode": False},
        "trained": {"sae:train_sae": True, "sae:SAE.encode": True, "sae:train_step": False},
    }
    pointers = cascade_pointers(records, calls)
    assert pointers["train_step"].endswith("fix SAE.encode first.")
    assert pointers["trained"] == (
        "train_step, which this test's code calls, fails its own tests, and those tests "
        "point at SAE.encode: fix SAE.encode first.")
