"""Lab 3's scaling sweep: the shipped table is what `python scaling_sweep.py` writes (its
first run retrained here in about a second), its entropy rate is the chain's, students get the
same table, and the reference's fit lands on the floor as the handout says."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from autograder import REPO_ROOT

LAB = REPO_ROOT / "reference" / "lab3"
SHIPPED = LAB / "scaling_sweep.json"
STUDENT_COPY = REPO_ROOT / "assignments" / "lab3" / "scaling_sweep.json"


@pytest.fixture(scope="module")
def sweep_module():
    """scaling_sweep.py and scaling.py, imported from reference/lab3."""
    sys.path.insert(0, str(LAB))
    try:
        import scaling
        import scaling_sweep

        yield scaling_sweep, scaling
    finally:
        sys.path.remove(str(LAB))
        for name in ("scaling", "scaling_sweep"):
            sys.modules.pop(name, None)


def test_students_get_the_same_table():
    assert STUDENT_COPY.read_bytes() == SHIPPED.read_bytes()
    assert SHIPPED.stat().st_size < 2**14


def test_the_table_is_the_scripts(sweep_module):
    scaling_sweep, _ = sweep_module
    table = json.loads(SHIPPED.read_text())
    config = scaling_sweep.SweepConfig()
    assert table["config"] == json.loads(json.dumps(scaling_sweep.asdict(config)))
    transition = scaling_sweep.transition_matrix(config)
    assert table["entropy_rate"] == pytest.approx(scaling_sweep.entropy_rate(transition),
                                                  rel=1e-12)
    # Every (width, budget) once, N the model's parameter count, D the budget's tokens.
    assert [(run["width"], run["steps"]) for run in table["runs"]] == [
        (width, steps) for width in config.widths for steps in config.steps]
    for run in table["runs"]:
        model = scaling_sweep.TinyTransformer(config.vocab, run["width"], config.n_ctx)
        assert run["N"] == scaling_sweep.parameter_count(model)
        assert run["D"] == run["steps"] * config.tokens_per_step
        assert table["entropy_rate"] - 0.01 < run["loss"] < 4.2  # above the floor, below log 64
    # The first run again: the same seeds give the same loss (to float32 training rounding on
    # another CPU; its 128 steps take about a second).
    torch.set_num_threads(1)
    evaluation = scaling_sweep.sequences(
        transition, scaling_sweep.stationary(transition), config.eval_sequences, config.n_ctx,
        torch.Generator().manual_seed(config.language_seed + 1))
    first = table["runs"][0]
    again = scaling_sweep.train_run(config, transition, first["width"], first["steps"],
                                    evaluation, "cpu")
    assert again["loss"] == pytest.approx(first["loss"], abs=1e-3)


def test_the_fit_lands_on_the_floor(sweep_module):
    _, scaling = sweep_module
    sweep = scaling.load_sweep()
    # Four starts of the default grid that reach the best fit (the handout's, from 27 starts).
    fit = scaling.fit_scaling_law(sweep["N"], sweep["D"], sweep["L"],
                                  scaling.starting_grid(a=(5.0, 10.0), b=(5.0, 10.0), e=(0.0,)))
    assert abs(fit["E"] - sweep["entropy_rate"]) < 0.005
    assert fit["alpha"] == pytest.approx(3.15, abs=0.01)
    assert fit["beta"] == pytest.approx(1.61, abs=0.01)
