"""Typical mistakes in lab 3's scaling part fail exactly the tests that cover them, with a
message that points at the fault; correct alternatives to the reference's code get full marks.

Each variant is the reference's scaling.py with passages changed the way a student might write
them, graded by the real CLI on the tests that `-k` selects. Mistakes that fail different tests
share a grading. The objective's mistakes are graded without the fits (a wrong objective moves
every fit, which would only repeat the objective's verdict), the fit's and the bootstrap's
with them.
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_each_mistake_fails_its_tests, grade_variant

REFERENCE = REPO_ROOT / "reference" / "lab3" / "scaling.py"
ALTERNATIVES = REPO_ROOT / "tests" / "lab3_alternatives" / "scaling_alternatives.py"
UNITS = "not fit and not bootstrap"
FITS = "fit or bootstrap or in_general"

OBJECTIVE = "return huber_loss(predicted - L.log(), delta).sum()"
N_OPT = "N_opt = G * (C / 6) ** (beta / (alpha + beta))"

# grading: (-k expression, points lost, {case: (passage, mistake, display names of the tests
#           that must fail (substrings), texts each of their outputs contains)})
MISTAKES = {
    "units": (UNITS, 10, {
        "exponents_swapped_in_the_law": (
            "return E + A / N**alpha + B / D**beta", "return E + A / N**beta + B / D**alpha",
            ("parametric_loss is",), ("parametric_loss(",)),
        "huber_without_the_half": (
            "0.5 * residual**2, delta", "residual**2, delta",
            ("huber_loss is", "chinchilla_objective and"), ("huber_loss",)),
        "exact_match_as_the_mean": (
            "return token_probs.prod(dim=-1)", "return token_probs.mean(dim=-1)",
            ("exact_match multiplies", "exact match of k tokens"), ("exact_match",)),
        # Found by make mutation, as the next grading's: the probes converted what came back.
        "rise_returned_as_tensors": (
            "return float(slopes[i]), float((x[i] + x[i + 1]) / 2)",
            "return slopes[i], (x[i] + x[i + 1]) / 2",
            ("steepest_rise on",), ("Python floats",)),
        "allocation_ratio_inverted": (
            "G = (alpha * A / (beta * B))", "G = (beta * B / (alpha * A))",
            ("compute_optimal_allocation:",), ("N_opt",)),
    }),
    "units_again": (UNITS, 9, {
        "objective_averaged": (
            OBJECTIVE, OBJECTIVE.replace(".sum()", ".mean()"),
            ("chinchilla_objective and", "chinchilla_objective with"), ("their sum",)),
        "rise_at_the_left_end": (
            "return float(slopes[i]), float((x[i] + x[i + 1]) / 2)",
            "return float(slopes[i]), float(x[i])",
            ("steepest_rise on", "exact match of k tokens"), ("steepest_rise",)),
        "budget_without_the_six": (
            N_OPT, N_OPT.replace("(C / 6)", "C"),
            ("compute_optimal_allocation:",), ("6 N_opt D_opt",)),
    }),
    "fit_bootstrap_and_overflow": (FITS, 10, {
        "E_left_in_log_space": (
            'fitted.update(E=math.exp(fitted["e"])', 'fitted.update(E=fitted["e"]',
            ("fit_scaling_law recovers", "fit_scaling_law on the shipped"), ("exp(e)",)),
        "resampled_without_replacement": (
            "torch.randint(runs, (runs,), generator=generator)",
            "torch.randperm(runs, generator=generator)",
            ("bootstrap_exponents:",), ("with replacement",)),
        "log_of_a_sum_of_exponentials": (
            "predicted = torch.logsumexp(terms, dim=0)",
            "predicted = terms.exp().sum(dim=0).log()",
            ("chinchilla_objective with",), ("logsumexp",)),
    }),
    "quantiles": ("bootstrap", 2, {
        "interval_at_the_wrong_quantiles": (
            "q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=F64)",
            "q = torch.tensor([1 - level, level], dtype=F64)",
            ("bootstrap_exponents:",), ("['interval']",)),
    }),
    "first_start_kept": ("shipped", 3, {
        "first_start_kept": (
            "min((end for end in ends if math.isfinite(end[0])), key=lambda end: end[0])",
            "ends[0]",
            ("fit_scaling_law on the shipped",), ("entropy rate",)),
    }),
    "starts_trained_in_place": ("shipped", 3, {
        "starts_trained_in_place": (
            "params = start.clone().requires_grad_(True)",
            "params = start.requires_grad_(True)",
            ("fit_scaling_law on the shipped",), ("in place",)),
    }),
    "log_base_ten": ("chinchilla_objective", 5, {
        "log_base_ten": (
            "b - beta * D.log(), e.expand", "b - beta * D.log10(), e.expand",
            ("chinchilla_objective and", "chinchilla_objective with"), ("the value",)),
    }),
}


@pytest.mark.slow
@pytest.mark.parametrize("grading", sorted(MISTAKES))
def test_scaling_mistakes_are_named(grading, grade, tmp_path):
    selection, points, mistakes = MISTAKES[grading]
    changes = [(passage, mistake) for passage, mistake, _, _ in mistakes.values()]
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab3", grading, changes,
                           extra=("-k", selection))
    assert_each_mistake_fails_its_tests(
        graded, {case: (affected, messages)
                 for case, (_, _, affected, messages) in mistakes.items()}, points)


@pytest.mark.slow
def test_scaling_alternatives_get_full_marks(grade, tmp_path):
    folder = tmp_path / "alternatives"
    folder.mkdir()
    (folder / "scaling.py").write_text(REFERENCE.read_text() + "\n" + ALTERNATIVES.read_text())
    graded = grade(folder, "lab3", parts=("scaling",), timeout_scale=4.0)
    assert graded.returncode == 0, graded.output[-2000:]
    assert not graded.failed(), "\n".join(graded.output_of(name) for name in graded.failed())
    assert len(graded.passed()) == 11
