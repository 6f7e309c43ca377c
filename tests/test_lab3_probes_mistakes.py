"""Typical mistakes in lab 3's probes part fail exactly the tests that cover them, with a
message that points at the fault; correct alternatives to the reference's code get full marks.

Each variant is the reference's probes.py with passages changed the way a student might write
them, graded by the real CLI on the unit tests (the outcome tests judge a whole pipeline on the
assistant, which only repeats the units' verdicts). Mistakes that fail different tests share a
grading.
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_each_mistake_fails_its_tests, grade_variant

REFERENCE = REPO_ROOT / "reference" / "lab3" / "probes.py"
UNITS = "not without_labels and not assistant and not liar"

# grading: (-k expression, points lost, {case: (passage, mistake, display names of the tests
#           that must fail (substrings), texts each of their outputs contains)})
MISTAKES = {
    "units": (UNITS, 10, {
        "mass_mean_the_wrong_way_round": (
            "w = mean_true - mean_false", "w = mean_false - mean_true",
            ("mass_mean_probe:", "layer_sweep:"), ("mass_mean_probe",)),
        "log_of_the_sigmoid": (
            "return -F.logsigmoid(signs * scores).mean()",
            "return -torch.log(torch.sigmoid(signs * scores)).mean()",
            ("logistic_loss:",), ("F.logsigmoid",)),
        "sample_standard_deviation": (
            "return centred / x.std(dim=0, correction=0)", "return centred / x.std(dim=0)",
            ("ccs_normalise:", "fit_ccs:"), ("ccs_normalise",)),
        "orient_flips_at_one_half": (
            "return (-w, -b) if agree < 0.5 else (w, b)",
            "return (-w, -b) if agree <= 0.5 else (w, b)",
            ("ccs_credence and orient_ccs",), ("exactly half",)),
        "ties_not_counted": (
            "return (wins + 0.5 * ties) / (positive.shape[0] * negative.shape[1])",
            "return wins / (positive.shape[0] * negative.shape[1])",
            ("auroc:",), ("a tie counts 1/2",)),
        "interval_at_alpha": (
            "q = torch.tensor([alpha / 2, 1 - alpha / 2]",
            "q = torch.tensor([alpha, 1 - alpha]",
            ("bootstrap_interval:",), ("alpha / 2",)),
        "residual_stream_before_the_block": (
            'names = [f"blocks.{layer}.hook_resid_post" for layer in layers]',
            'names = [f"blocks.{layer}.hook_resid_pre" for layer in layers]',
            ("last_token_activations:",), ("hook_resid_post",)),
    }),
    "units_again": (UNITS, 7, {
        "bias_decayed_too": (
            "loss = logistic_loss(acts @ w + b, labels) + weight_decay * (w ** 2).sum()",
            "loss = logistic_loss(acts @ w + b, labels) + weight_decay * ((w ** 2).sum() + b ** 2)",
            ("train_logistic_probe:",), ("train_logistic_probe(",)),
        "confidence_from_the_larger": (
            "confidence = torch.minimum(p_plus, p_minus).pow(2).mean()",
            "confidence = torch.maximum(p_plus, p_minus).pow(2).mean()",
            ("ccs_loss:", "train_ccs:", "fit_ccs:"), ("ccs_loss",)),
        "zero_scores_true": (
            "return ((scores > 0) == labels).to(torch.float64).mean()",
            "return ((scores >= 0) == labels).to(torch.float64).mean()",
            ("accuracy:",), ("three exact zeros",)),
    }),
    "summed_loss_and_raw_sides": (UNITS, 4, {
        "logistic_loss_summed": (
            "return -F.logsigmoid(signs * scores).mean()",
            "return -F.logsigmoid(signs * scores).sum()",
            ("logistic_loss:", "train_logistic_probe:"), ("logistic_loss",)),
        "ccs_on_raw_activations": (
            "x_plus, x_minus = ccs_normalise(x_plus), ccs_normalise(x_minus)\n    d = ",
            "d = ",
            ("fit_ccs:",), ("normalise each side",)),
    }),
    "bias_sign_and_gradients": (UNITS, 7, {
        "threshold_on_the_wrong_side": (
            "return w, -(w @ (mean_true + mean_false) / 2)",
            "return w, w @ (mean_true + mean_false) / 2",
            ("mass_mean_probe:", "layer_sweep:"), ("mass_mean_probe",)),
        "ccs_gradients_accumulate": (
            "torch.sigmoid(x_minus @ w + b))\n        optimizer.zero_grad()\n",
            "torch.sigmoid(x_minus @ w + b))\n",
            ("train_ccs:", "fit_ccs:"), ("train_ccs",)),
        # Found by make mutation: the probe used to detach whatever was returned.
        "logistic_probe_returned_still_trainable": (
            "        losses.append(loss.item())\n    return w.detach(), b.detach(), losses\n"
            "    # END SOLUTION\n\n\n# ------",
            "        losses.append(loss.item())\n    return w, b, losses\n"
            "    # END SOLUTION\n\n\n# ------",
            ("train_logistic_probe:",), ("still require grad",)),
    }),
}

ALTERNATIVES = [
    ("return -F.logsigmoid(signs * scores).mean()",
     "return F.binary_cross_entropy_with_logits(scores, labels.to(scores.dtype))"),
    ("    centred = x - x.mean(dim=0)\n    return centred / x.std(dim=0, correction=0)",
     "    centred = x - x.mean(dim=0, keepdim=True)\n"
     "    return centred / centred.pow(2).mean(dim=0).sqrt()"),
    ('''    positive, negative = scores[labels][:, None], scores[~labels][None, :]
    wins = (positive > negative).to(torch.float64).sum()
    ties = (positive == negative).to(torch.float64).sum()
    return (wins + 0.5 * ties) / (positive.shape[0] * negative.shape[1])''',
     '''    below = (scores[None, :] < scores[:, None]).to(torch.float64).sum(dim=1)
    tied = (scores[None, :] == scores[:, None]).to(torch.float64).sum(dim=1)
    ranks = below + (tied + 1) / 2  # mean ranks of ties, from 1
    n_true, n_false = int(labels.sum()), int((~labels).sum())
    return (ranks[labels].sum() - n_true * (n_true + 1) / 2) / (n_true * n_false)'''),
    ("    return torch.stack([cache[name][rows, last] for name in names], dim=1)",
     "    index = last[:, None, None].expand(-1, 1, cache[names[0]].shape[-1])\n"
     "    return torch.cat([cache[name].gather(1, index) for name in names], dim=1)"),
    ('''    mean_true, mean_false = acts[labels].mean(dim=0), acts[~labels].mean(dim=0)''',
     '''    weights = labels.to(acts.dtype)
    mean_true = (weights[:, None] * acts).sum(dim=0) / weights.sum()
    mean_false = ((1 - weights)[:, None] * acts).sum(dim=0) / (1 - weights).sum()'''),
]


@pytest.mark.slow
@pytest.mark.parametrize("grading", sorted(MISTAKES))
def test_probes_mistakes_are_named(grading, grade, tmp_path):
    selection, points, mistakes = MISTAKES[grading]
    changes = [(passage, mistake) for passage, mistake, _, _ in mistakes.values()]
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab3", grading, changes,
                           extra=("-k", selection))
    assert_each_mistake_fails_its_tests(
        graded, {case: (affected, messages)
                 for case, (_, _, affected, messages) in mistakes.items()}, points)


@pytest.mark.slow
def test_probes_alternatives_get_full_marks(grade, tmp_path):
    graded = grade_variant(grade, tmp_path, REFERENCE, "lab3", "alternatives", ALTERNATIVES)
    assert not graded.failed(), "\n".join(graded.output_of(name) for name in graded.failed())
    assert len(graded.passed()) == 16
