"""Tests for lab 3, part "probes" (probes.py): detecting deception with linear probes.

Every function is compared with the reference in float64 on inputs drawn here at grade time:
activations with a common offset and unequal scales per dimension (so that a forgotten
centring or scaling shows), labels with both classes. Trainings (logistic regression and
CCS, full-batch Adam) are compared loss by loss from a shared start. Accuracy and AUROC are
exact rationals, so they are compared at 1e-12, and AUROC also against the rank formula
(Mann-Whitney, ties at their mean rank) computed here. The bootstrap interval is compared
exactly given the generator the docstring says how to use, on a statistic the probe supplies.

Outcomes are properties: on activations with a planted truth direction and a larger
distractor that both sides of a contrast pair share, CCS finds the truth without labels
(its exact population accuracy, computed here from its direction, above a measured
threshold).
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.engine.checks import assert_close, assert_finite, assert_shape, check, fail
from autograder.engine.labs import load_lab

F64 = torch.float64
# Values computed from a few sums of products of O(1-10) numbers: any order of operations
# agrees to ~1e-15 relative; 1e-9 leaves room for every correct formula and none of the
# mistakes (each misses by 1e-2 or more).
EXACT = {"rtol": 1e-9, "atol": 1e-12}
# Full-batch Adam in float64 from a shared start: a reordered sum moves a gradient by ~1e-16
# relative, and Adam's update m / (sqrt(v) + eps) is no more sensitive to a relative change of
# the gradient than 1:1, so after a few steps the weights agree to ~1e-14; 1e-7 is generous
# and a wrong loss or update misses by ~lr = 1e-2.
STEP = {"rtol": 1e-7, "atol": 1e-10}
# Accuracy and AUROC are ratios of integers (counts of pairs, or of half pairs) below 2^53:
# exact in float64 up to the final division's rounding.
RATIO = {"rtol": 0.0, "atol": 1e-12}


def _size(rng: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def _seed(rng: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=rng))


def _shape(shape: tuple) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _acts(rng: torch.Generator, n: int, d: int) -> torch.Tensor:
    """Activations with a common offset and a different scale per dimension."""
    offset = 3 * torch.randn(d, generator=rng, dtype=F64)
    scale = 0.5 + 2 * torch.rand(d, generator=rng, dtype=F64)
    return offset + scale * torch.randn(n, d, generator=rng, dtype=F64)


def _labels(rng: torch.Generator, n: int) -> torch.Tensor:
    """Bool labels with both classes present (at least two of each)."""
    labels = torch.rand(n, generator=rng) < 0.3 + 0.4 * torch.rand((), generator=rng)
    labels[:2], labels[2:4] = True, False
    return labels[torch.randperm(n, generator=rng)]


def _separated(rng: torch.Generator, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled activations whose classes differ along one random direction."""
    labels = _labels(rng, n)
    acts = _acts(rng, n, d)
    direction = torch.randn(d, generator=rng, dtype=F64)
    return acts + 1.5 * torch.where(labels, 1.0, -1.0)[:, None] * direction, labels


# ----------------------------------------------------------------------------- activations

_CHECKPOINT: dict = {}


def _checkpoint() -> tuple[dict, dict]:
    """The shipped assistant (config and weights), loaded in the trusted process without
    running any code, and sent to the probes."""
    if not _CHECKPOINT:
        path = load_lab("lab3").support_dir / "checkpoints" / "assistant.pt"
        _CHECKPOINT.update(torch.load(path, weights_only=True))
    return _CHECKPOINT["config"], _CHECKPOINT["state"]


def _statements(reference, n: int, persona: str, seed: int, answer: str | None = None) -> dict:
    """Statement prompts from the given `statements`, run by the reference."""
    return reference.probe("probes.statement_batch", n, persona, seed, answer)


def _activations(implementation, batch: dict, layers: list[int]) -> torch.Tensor:
    return implementation.probe("probes.activations", *_checkpoint(), batch["tokens"],
                                batch["last"], layers, timeout=20)


@pytest.mark.points(1)
@pytest.mark.public
def test_last_token_activations(student, reference, rng):
    """last_token_activations: the residual stream after each layer at each prompt's last token"""
    for layers in ([1], [2, 0]):
        n = _size(rng, 6, 12)
        batch = _statements(reference, n, "honest" if len(layers) == 1 else "liar", _seed(rng))
        what = (f"last_token_activations(the assistant in float64, tokens "
                f"{_shape(batch['tokens'].shape)} of statement prompts with suffixes of "
                f"different lengths, last {batch['last'].tolist()}, layers={layers})")
        got = _activations(student, batch, layers)
        want = _activations(reference, batch, layers)
        assert_shape(got, tuple(want.shape), f"{what} (n, len(layers), d_model)")
        # The same float64 forward pass: any correct indexing gives the same numbers.
        assert_close(got, want, **EXACT, dtype=F64,
                     what=f"{what}: out[i, j] is blocks.{{layers[j]}}.hook_resid_post of prompt "
                          "i at position last[i], in the order of `layers`")


# ----------------------------------------------------------------------------- supervised probes


@pytest.mark.points(1)
@pytest.mark.public
def test_mass_mean_probe(student, reference, rng):
    """mass_mean_probe: the difference of the class means and the threshold half-way"""
    for _ in range(2):
        n, d = _size(rng, 8, 40), _size(rng, 2, 12)
        acts, labels = _acts(rng, n, d), _labels(rng, n)
        what = (f"mass_mean_probe(acts {_shape(acts.shape)}, labels with {int(labels.sum())} "
                f"true of {n}) in float64")
        got = student.call("probes.mass_mean_probe", acts, labels)
        want = reference.call("probes.mass_mean_probe", acts, labels)
        check(isinstance(got, tuple) and len(got) == 2, f"{what}: expected a tuple (w, b)")
        assert_shape(got[0], (d,), f"{what}: w")
        assert_close(got[0], want[0], **EXACT, what=f"{what}: w (mean of the true rows minus "
                     "mean of the false rows)", dtype=F64)
        assert_shape(got[1], (), f"{what}: b")
        # b = -w @ m is a sum of d products of size |w_i m_i|, known to ~1e-16 of their sum.
        scale = float((want[0].abs() * acts.abs().max(dim=0).values).sum())
        assert_close(got[1], want[1], rtol=0.0, atol=1e-12 * scale, dtype=F64,
                     what=f"{what}: b (minus w @ the midpoint of the two means)")


@pytest.mark.points(1)
@pytest.mark.public
def test_logistic_loss(student, reference, rng):
    """logistic_loss: the mean binary cross-entropy of sigmoid(scores), finite at 1e4"""
    for size in (1.0, 1e4):
        n = _size(rng, 6, 30)
        scores = size * torch.randn(n, generator=rng, dtype=F64)
        labels = _labels(rng, n)
        what = f"logistic_loss(scores {_shape(scores.shape)} of size {size:g}, labels)"
        got = student.call("probes.logistic_loss", scores, labels)
        want = reference.call("probes.logistic_loss", scores, labels)
        assert_shape(got, (), what)
        assert_finite(got, f"{what} (log(sigmoid(s)) is -inf for s = -1e4: use F.logsigmoid)")
        # softplus with a threshold (F.softplus returns s itself above 20) is off by at most
        # log1p(exp(-20)) = 2.1e-9 per term: allowed. Wrong signs or sums miss by > 1e-2.
        assert_close(got, want, rtol=1e-9, atol=1e-8, what=what, dtype=F64)


def _start(rng: torch.Generator, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    return (0.3 * torch.randn(d, generator=rng, dtype=F64),
            0.3 * torch.randn((), generator=rng, dtype=F64))


def _compare_training(got: dict, want: dict, start: tuple, what: str, function: str) -> None:
    check(got["returned"] == "tuple", f"{what} returned a {got['returned']}; expected a tuple "
          "(w, b, losses)")
    check(got["losses"] is not None, f"{what}: losses should be a list of floats")
    check(got["loss_types"] in ([], ["float"]),
          f"{what}: the losses are {', '.join(got['loss_types'])}; expected Python floats "
          "(loss.item())")
    check(len(got["losses"]) == len(want["losses"]),
          f"{what}: {len(got['losses'])} losses; expected one per step, "
          f"{len(want['losses'])}")
    for step, (g, w) in enumerate(zip(got["losses"], want["losses"], strict=True), start=1):
        if not abs(g - w) <= STEP["atol"] + STEP["rtol"] * abs(w):
            fail(f"{what}: the loss before step {step} is {g:.10g}; expected {w:.10g}"
                 + (" (the first loss is that of the start: the loss formula differs)"
                    if step == 1 else " (the steps differ: Adam([w, b], lr) on that loss)"))
    assert_shape(got["w"], tuple(want["w"].shape), f"{what}: w")
    assert_shape(got["b"], (), f"{what}: b")
    check(not got["still_require_grad"],
          f"{what}: the returned {' and '.join(got['still_require_grad'])} still require grad; "
          "return them detached (w.detach(), b.detach())")
    assert_close(got["w"], want["w"], **STEP, what=f"{what}: the trained w", dtype=F64)
    assert_close(got["b"], want["b"], **STEP, what=f"{what}: the trained b", dtype=F64)
    # Asserted with the trained weights, which a function that does nothing misses.
    assert_close(got["start_w"], start[0], rtol=0.0, atol=0.0,
                 what=f"{what}: the starting w afterwards ({function} must not change its "
                      "arguments in place: train a clone)")
    assert_close(got["start_b"], start[1], rtol=0.0, atol=0.0,
                 what=f"{what}: the starting b afterwards (train a clone)")


@pytest.mark.points(2)
@pytest.mark.public
def test_train_logistic_probe(student, reference, rng):
    """train_logistic_probe: full-batch Adam from a shared start, loss by loss"""
    # The second start is given as leaves that require grad (a probe trained before, say):
    # the trainable copies must be detached from them, as the docstring's recipe does.
    for weight_decay, grad in ((0.0, False),
                               (round(0.05 + 0.2 * float(torch.rand((), generator=rng)), 3), True)):
        n, d = _size(rng, 20, 60), _size(rng, 3, 10)
        acts, labels = _separated(rng, n, d)
        start = _start(rng, d)
        options = {"steps": _size(rng, 4, 8), "lr": 0.02, "weight_decay": weight_decay}
        what = (f"train_logistic_probe(acts {_shape(acts.shape)}, labels, w, b"
                f"{' (both requiring grad)' if grad else ''}, "
                f"{', '.join(f'{k}={v}' for k, v in options.items())}) in float64")
        got = student.probe("probes.train_logistic", acts, labels, *start, options, grad,
                            timeout=10)
        want = reference.probe("probes.train_logistic", acts, labels, *start, options, grad,
                               timeout=10)
        _compare_training(got, want, start, what, "train_logistic_probe")


# ----------------------------------------------------------------------------- CCS


def _contrast_parts(rng: torch.Generator, n: int, d: int, signal: float = 1.0,
                    distractor: float = 3.0) -> dict:
    """Contrast pairs x+ ("... yes") and x- ("... no") with a truth direction t and a larger
    distractor u that both sides share, and the parts they are made of.

    label_i: whether the "yes" side of pair i is true. x+_i = c+ + s_i t + z_i u + noise and
    x-_i = c- - s_i t + z_i u + noise, with s_i = +1 when label_i, else -1; z_i = +-
    `distractor` with equal chances (a feature of the statement that both answers share, as
    two-clustered as the truth and larger); c+ and c- are each side's offset (what "yes" and
    "no" add); noise N(0, 1) per dimension. The truth is the one direction on which the two
    sides disagree.
    """
    labels = _labels(rng, n)
    signs = torch.where(labels, 1.0, -1.0).to(F64)[:, None]
    t = torch.randn(d, generator=rng, dtype=F64)
    t = signal * t / t.norm()
    u = torch.randn(d, generator=rng, dtype=F64)
    u = u / u.norm()
    shared = distractor * torch.where(torch.rand(n, 1, generator=rng) < 0.5, 1.0, -1.0) * u
    offsets = 3 * torch.randn(2, d, generator=rng, dtype=F64)
    x_plus = offsets[0] + signs * t + shared + torch.randn(n, d, generator=rng, dtype=F64)
    x_minus = offsets[1] - signs * t + shared + torch.randn(n, d, generator=rng, dtype=F64)
    return {"x_plus": x_plus, "x_minus": x_minus, "labels": labels, "t": t, "u": u,
            "offsets": offsets, "distractor": distractor}


def _contrast(rng: torch.Generator, n: int, d: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    parts = _contrast_parts(rng, n, d)
    return parts["x_plus"], parts["x_minus"], parts["labels"]


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(dim=0)) / x.std(dim=0, correction=0)


def _ccs_loss_of(fit: dict, x_plus: torch.Tensor, x_minus: torch.Tensor) -> float:
    """The CCS loss of a returned probe (w, b) on the normalised sides, computed here."""
    w, b = fit["w"].to(F64), torch.as_tensor(fit["b"], dtype=F64)
    p_plus = torch.sigmoid(_normalise(x_plus.to(F64)) @ w + b)
    p_minus = torch.sigmoid(_normalise(x_minus.to(F64)) @ w + b)
    consistency = (p_plus - (1 - p_minus)).pow(2).mean()
    return float(consistency + torch.minimum(p_plus, p_minus).pow(2).mean())


@pytest.mark.points(1)
@pytest.mark.public
def test_ccs_normalise(student, reference, rng):
    """ccs_normalise: minus the mean, divided by the population standard deviation, per dimension"""
    for _ in range(2):
        x = _acts(rng, _size(rng, 5, 30), _size(rng, 2, 10))
        what = f"ccs_normalise(x {_shape(x.shape)}) in float64"
        got = student.call("probes.ccs_normalise", x)
        want = reference.call("probes.ccs_normalise", x)
        assert_shape(got, tuple(x.shape), what)
        assert_close(got, want, **EXACT, what=f"{what} (x - its mean over the rows, divided by "
                     "x.std(dim=0, correction=0))", dtype=F64)


@pytest.mark.points(1)
@pytest.mark.public
def test_ccs_loss(student, reference, rng):
    """ccs_loss: consistency (p+ - (1 - p-))^2 plus confidence min(p+, p-)^2, both averaged"""
    n = _size(rng, 5, 30)
    p_plus = torch.rand(n, generator=rng, dtype=F64)
    # Random pairs (both terms non-zero), then consistent pairs (consistency exactly 0, so the
    # confidence term is seen alone).
    cases = [(p_plus, torch.rand(n, generator=rng, dtype=F64), "random probabilities"),
             (p_plus, 1 - p_plus, "p_minus = 1 - p_plus (consistency 0)")]
    for plus, minus, label in cases:
        what = f"ccs_loss(p_plus {_shape(plus.shape)}, p_minus) with {label}"
        got = student.call("probes.ccs_loss", plus, minus)
        want = reference.call("probes.ccs_loss", plus, minus)
        assert_shape(got, (), what)
        assert_close(got, want, **EXACT, what=what, dtype=F64)


@pytest.mark.points(2)
@pytest.mark.public
def test_train_ccs(student, reference, rng):
    """train_ccs: full-batch Adam on the CCS loss from a shared start, loss by loss"""
    for grad in (False, True):  # the second start requires grad (train_logistic_probe's test)
        n, d = _size(rng, 20, 60), _size(rng, 3, 10)
        x_plus, x_minus, _ = _contrast(rng, n, d)
        x_plus, x_minus = _normalise(x_plus), _normalise(x_minus)
        start = _start(rng, d)
        options = {"steps": _size(rng, 4, 8), "lr": 0.02}
        what = (f"train_ccs(normalised x_plus, x_minus {_shape(x_plus.shape)}, w, b"
                f"{' (both requiring grad)' if grad else ''}, "
                f"{', '.join(f'{k}={v}' for k, v in options.items())}) in float64")
        got = student.probe("probes.train_ccs", x_plus, x_minus, *start, options, grad,
                            timeout=10)
        want = reference.probe("probes.train_ccs", x_plus, x_minus, *start, options, grad,
                               timeout=10)
        _compare_training(got, want, start, what, "train_ccs")


@pytest.mark.points(1)
@pytest.mark.public
def test_fit_ccs(student, reference, rng):
    """fit_ccs: each side normalised, starts drawn with the generator, the lowest final loss kept"""
    # Few steps from 6-8 starts: the tries end apart, so the choice among them shows. A
    # selection by another criterion (the loss without a sigmoid, or the last try kept) picked
    # another try in 25-27 of 30 draws (22 of 30 with 3-5 tries, where two draws let such a
    # mistake through 1 time in 9); three draws here.
    for _ in range(3):
        n, d = _size(rng, 20, 50), _size(rng, 3, 8)
        x_plus, x_minus, _ = _contrast(rng, n, d)
        options = {"tries": _size(rng, 6, 8), "steps": _size(rng, 3, 6), "lr": 0.05}
        seed = _seed(rng)
        what = (f"fit_ccs(x_plus, x_minus {_shape(x_plus.shape)}, "
                f"{', '.join(f'{k}={v}' for k, v in options.items())}, generator seeded "
                f"{seed}) in float64")
        got = student.probe("probes.fit_ccs", x_plus, x_minus, options, seed, timeout=10)
        want = reference.probe("probes.fit_ccs", x_plus, x_minus, options, seed, timeout=10)
        check(abs(got["next_draw"] - want["next_draw"]) < 1e-12,
              f"{what}: the generator is not where it should be afterwards: draw each try's "
              "start once, torch.randn(d, generator=generator, dtype=...), and nothing else")
        assert_shape(got["w"], (d,), f"{what}: w")
        assert_close(got["w"], want["w"], **STEP, dtype=F64,
                     what=f"{what}: w (normalise each side with ccs_normalise, train every "
                          "try with train_ccs and keep the one whose loss after training is "
                          "lowest)")
        assert_close(got["b"], want["b"], **STEP, dtype=F64, what=f"{what}: b")


@pytest.mark.points(1)
@pytest.mark.public
def test_ccs_credence_and_orient(student, reference, rng):
    """ccs_credence and orient_ccs: the mean of both answers; the sign flipped on disagreement"""
    n, d = 2 * _size(rng, 5, 15), _size(rng, 3, 8)
    x_plus, x_minus, _ = _contrast(rng, n, d)
    x_plus, x_minus = _normalise(x_plus), _normalise(x_minus)
    w, b = _start(rng, d)
    # A probe that says "Yes" on most pairs (w's sign chosen so; drawn again at exactly half),
    # so that orient_ccs reading the labels' majority instead of the agreement is seen.
    while True:
        yes = int(((x_plus - x_minus) @ w > 0).sum())
        if 2 * yes != n:
            break
        w, b = _start(rng, d)
    if 2 * yes < n:
        w = -w
    what = f"ccs_credence(x_plus, x_minus {_shape(x_plus.shape)}, w, b) in float64"
    got = student.call("probes.ccs_credence", x_plus, x_minus, w, b)
    want = reference.call("probes.ccs_credence", x_plus, x_minus, w, b)
    assert_shape(got, (n,), what)
    assert_close(got, want, **EXACT, what=f"{what} ((p(x+) + 1 - p(x-)) / 2)", dtype=F64)
    says_yes = want > 0.5
    agreeing = says_yes.clone()
    agreeing[0] = ~agreeing[0]
    half = torch.zeros(n, dtype=torch.bool)
    half[torch.randperm(n, generator=rng)[: n // 2]] = True
    # Labels that mostly agree with the probe (unchanged), mostly disagree (flipped), agree on
    # exactly half of the pairs (unchanged: only "fewer than half" flips). The one-sided cases
    # come together, so that a function that never or always flips fails.
    cases = [(agreeing, False, "labels agreeing with the probe on all pairs but one"),
             (~agreeing, True, "labels disagreeing with the probe on all pairs but one"),
             (torch.where(half, says_yes, ~says_yes), False,
              "labels agreeing with the probe on exactly half of the pairs")]
    for case_labels, flipped, label in cases:
        what = f"orient_ccs(x_plus, x_minus {_shape(x_plus.shape)}, w, b, {label})"
        got = student.call("probes.orient_ccs", x_plus, x_minus, w, b, case_labels)
        check(isinstance(got, tuple) and len(got) == 2, f"{what}: expected a tuple (w, b)")
        sign = -1.0 if flipped else 1.0
        assert_close(got[0], sign * w, rtol=0.0, atol=0.0, dtype=F64,
                     what=f"{what}: w (expected {'-w' if flipped else 'w unchanged'})")
        assert_close(got[1], sign * b, rtol=0.0, atol=0.0, dtype=F64,
                     what=f"{what}: b (expected {'-b' if flipped else 'b unchanged'})")


# ----------------------------------------------------------------------------- metrics


@pytest.mark.points(1)
@pytest.mark.public
def test_accuracy(student, reference, rng):
    """accuracy: the fraction classified right, a score of exactly 0 saying "false\""""
    for _ in range(2):
        n = _size(rng, 8, 40)
        scores = torch.randn(n, generator=rng, dtype=F64)
        scores[torch.randperm(n, generator=rng)[:3]] = 0.0  # exactly 0: "false"
        labels = _labels(rng, n)
        what = f"accuracy(scores {_shape(scores.shape)} with three exact zeros, labels)"
        got = student.call("probes.accuracy", scores, labels)
        want = reference.call("probes.accuracy", scores, labels)
        assert_shape(got, (), what)
        assert_close(got, want, **RATIO, what=what, dtype=F64)


def _rank_auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The Mann-Whitney form: (sum of the true statements' ranks - n1 (n1 + 1) / 2) / (n1 n0),
    with tied scores at their mean rank. Every term is a half-integer: exact in float64."""
    below = (scores[None, :] < scores[:, None]).sum(dim=1).to(F64)
    tied = (scores[None, :] == scores[:, None]).sum(dim=1).to(F64)
    ranks = below + (tied + 1) / 2
    n1, n0 = int(labels.sum()), int((~labels).sum())
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


@pytest.mark.points(1)
@pytest.mark.public
def test_auroc(student, reference, rng):
    """auroc: pairs won plus half the ties, over all (true, false) pairs; also the rank formula"""
    for grid in (0.0, 0.5):
        n = _size(rng, 10, 50)
        labels = _labels(rng, n)
        scores = torch.randn(n, generator=rng, dtype=F64) + 0.7 * labels
        if grid:  # scores on a coarse grid: many ties, between and within the classes
            scores = (scores / grid).round() * grid
        what = (f"auroc(scores {_shape(scores.shape)}{' on a grid of 0.5 (ties)' if grid else ''}"
                f", labels with {int(labels.sum())} true)")
        got = student.call("probes.auroc", scores, labels)
        want = reference.call("probes.auroc", scores, labels)
        assert_shape(got, (), what)
        ranked = _rank_auroc(scores, labels)
        check(abs(float(want) - ranked) < 1e-12, f"the reference's {what} disagrees with the "
              "rank formula: a grader bug")
        assert_close(got, want, **RATIO, dtype=F64,
                     what=f"{what} (the rank formula gives {ranked:.12g}; a tie counts 1/2)")


@pytest.mark.points(2)
@pytest.mark.public
def test_bootstrap_interval(student, reference, rng):
    """bootstrap_interval: all resamples drawn at once with the generator, percentile interval"""
    for statistic, confidence in (("accuracy", 0.95), ("mean_score_of_true", 0.9),
                                  ("accuracy in float32", 0.8)):
        n = _size(rng, 15, 40)
        labels = _labels(rng, n)
        scores = torch.randn(n, generator=rng, dtype=F64) + 0.5 * labels
        options = {"n_resamples": _size(rng, 50, 200), "confidence": confidence}
        seed = _seed(rng)
        what = (f"bootstrap_interval(scores {_shape(scores.shape)}, labels, {statistic}, "
                f"n_resamples={options['n_resamples']}, confidence={confidence}, generator "
                f"seeded {seed})")
        got = student.probe("probes.bootstrap", scores, labels, statistic, options, seed)
        want = reference.probe("probes.bootstrap", scores, labels, statistic, options, seed)
        check(got["returned"] == "tuple", f"{what} returned a {got['returned']}; expected a "
              "tuple (low, high)")
        check(abs(got["next_draw"] - want["next_draw"]) < 1e-12,
              f"{what}: the generator is not where it should be afterwards: draw once, "
              "torch.randint(n, (n_resamples, n), generator=generator)")
        for name in ("low", "high"):
            assert_shape(got[name], (), f"{what}: {name}")
            # Quantiles of the same values, by the same interpolation: exact.
            assert_close(got[name], want[name], **EXACT, dtype=F64,
                         what=f"{what}: {name} (torch.quantile of the resampled values, as "
                              "float64, at alpha / 2 and 1 - alpha / 2)")


@pytest.mark.points(1)
@pytest.mark.public
def test_layer_sweep(student, reference, rng):
    """layer_sweep: a mass-mean probe per layer, its accuracy and AUROC on another set"""
    for _ in range(2):
        layers, d = _size(rng, 2, 4), _size(rng, 3, 8)
        n, m = _size(rng, 12, 30), _size(rng, 12, 30)
        train = [_separated(rng, n, d) for _ in range(layers)]
        labels = train[0][1]
        train_acts = torch.stack([_acts(rng, n, d) + 2.0 * (layer + 1) / layers
                                  * torch.where(labels, 1.0, -1.0)[:, None]
                                  for layer in range(layers)], dim=1)
        test_labels = _labels(rng, m)
        test_acts = torch.stack([_acts(rng, m, d) + 2.0 * (layer + 1) / layers
                                 * torch.where(test_labels, 1.0, -1.0)[:, None]
                                 for layer in range(layers)], dim=1)
        what = (f"layer_sweep(train_acts {_shape(train_acts.shape)}, labels, test_acts "
                f"{_shape(test_acts.shape)}, labels)")
        got = student.call("probes.layer_sweep", train_acts, labels, test_acts, test_labels)
        want = reference.call("probes.layer_sweep", train_acts, labels, test_acts, test_labels)
        check(isinstance(got, dict), f"{what}: expected a dict with 'accuracy' and 'auroc'")
        for name in ("accuracy", "auroc"):
            check(name in got, f"{what}: no key {name!r}")
            assert_shape(got[name], (layers,), f"{what}[{name!r}]")
            # Scores from a probe known to ~1e-15: a score within that of 0 or of another
            # score could change the count; the scores drawn here are never that close.
            assert_close(got[name], want[name], **RATIO, dtype=F64, what=f"{what}[{name!r}]")


# ----------------------------------------------------------------------------- outcomes

# CCS on contrast pairs with a planted truth direction (norm SIGNAL) and a distractor that both
# sides share (+-DISTRACTOR along u, two clusters like the truth's, and larger), in D
# dimensions with unit noise: N pairs to fit on. The distractor is the activations' largest
# direction of variance, and a clustering would find it; CCS, which never sees a label, must
# not. Its direction is judged by its exact population accuracy, computed here, so the verdict
# has no sampling error of its own: on normalised activations the credence is above 0.5
# exactly where w @ (x~+ - x~-) > 0, whatever b, and given the label's sign s and the
# distractor's z = +-1 that is
#     K + s (a + c) @ t + z DISTRACTOR (a - c) @ u + a @ e+ - c @ e-,   a = w / sd+, c = w / sd-
# with sd+- the standard deviations ccs_normalise divides by and K = a @ (c+ - mean+) -
# c @ (c- - mean-) (the fitting data's means): a Gaussian of standard deviation
# sqrt(|a|^2 + |c|^2) around each of four centres. The balanced accuracy is the mean of their
# four Phi's, taken up to sign (CCS's sign is not identified without labels).
N, D, SIGNAL, DISTRACTOR = 300, 100, 2.5, 4.0
CCS_OPTIONS = {"tries": 3, "steps": 200, "lr": 0.05}
# The truth direction reaches Phi(sqrt(2) SIGNAL) = 0.9998, the distractor's 0.5. Any direction
# w used on both sides cancels the distractor and reads the truth through its share of t: in
# D = 10 dimensions an arbitrary direction (all ones, or random) classified at least 0.9 in
# 16% of 400 draws (40% over 3 attempts), so a ccs_normalise that returns ones passed (make
# honesty); in D = 100, in none of 400. The reference's accuracy at D = 100 on 1300 seeds
# (0.4 s each; 300, then seeds 1000-1999 drawn as this test draws them): mean 0.991, 1% quantile
# 0.955, minimum 0.913; none below the threshold 0.90, so the rate of a correct fit below it is
# at most 3/1300 = 2.3e-3 (95% confidence, the rule of three). The test fits up to ATTEMPTS
# times on independent data and seeds and passes at the first fit above the threshold: a
# correct submission fails with probability at most (2.3e-3)^3 = 1.2e-8. At
# D = 10, a CCS that normalises both sides together or not at all (mean 0.64 over 40 seeds,
# highest 0.91) or has no confidence term (mean 0.74) mostly failed.
CCS_THRESHOLD = 0.90
ATTEMPTS = 3


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _population_accuracy(w: torch.Tensor, parts: dict) -> float:
    """The balanced accuracy, up to sign, of CCS's direction w on the population that
    `_contrast_parts` draws from, normalised with the fitting data's statistics."""
    x_plus, x_minus = parts["x_plus"], parts["x_minus"]
    a = w / x_plus.std(dim=0, correction=0)
    c = w / x_minus.std(dim=0, correction=0)
    offset_plus, offset_minus = parts["offsets"]
    shift = float(a @ (offset_plus - x_plus.mean(dim=0))
                  - c @ (offset_minus - x_minus.mean(dim=0)))
    signal = float((a + c) @ parts["t"])
    shared = float((a - c) @ parts["u"]) * parts["distractor"]
    spread = math.sqrt(float(a @ a + c @ c))
    balanced = sum(_phi((signal + shift + z * shared) / spread)
                   + _phi((signal - shift - z * shared) / spread) for z in (1.0, -1.0)) / 4
    return max(balanced, 1 - balanced)


@pytest.mark.points(1)
def test_ccs_finds_the_truth_without_labels(student, rng, seed):
    """fit_ccs finds a planted truth direction without labels, past a larger shared distractor"""
    what = (f"fit_ccs on {N} contrast pairs in {D} dimensions (unit noise, a truth direction of "
            f"norm {SIGNAL} on which the two sides disagree, two clusters +-{DISTRACTOR} along "
            "a direction both sides share), "
            f"{', '.join(f'{k}={v}' for k, v in CCS_OPTIONS.items())}")
    outcomes = []
    for attempt in range(ATTEMPTS):
        parts = _contrast_parts(rng, N, D, SIGNAL, DISTRACTOR)
        got = student.probe("probes.fit_ccs", parts["x_plus"], parts["x_minus"], CCS_OPTIONS,
                            (seed + 7919 * attempt) % 2**31, timeout=30)
        assert_shape(got["w"], (D,), f"{what}: w")
        assert_finite(got["w"], f"{what}: w")
        w = got["w"].to(F64)
        check(float(w.norm()) > 0, f"{what}: w is zero")
        found = _population_accuracy(w, parts)
        if found >= CCS_THRESHOLD:
            return
        cosine = abs(float(w @ parts["t"] / (w.norm() * parts["t"].norm())))
        outcomes.append(f"{found:.3f} (|cosine| with the truth {cosine:.2f})")
    fail(f"{what}: in {ATTEMPTS} fits on fresh data, the directions found classify "
         f"{', '.join(outcomes)} of the population right, up to sign; a correct CCS reaches "
         f"more than {CCS_THRESHOLD} (0.9998 is the best possible, 0.5 chance) in 999 fits of "
         "1000. Check ccs_normalise (each side on its own), ccs_loss and train_ccs first.")


# ----------------------------------------------------------------------------- the assistant

# Probes on the shipped assistant, at layer 1 (blocks.1.hook_resid_post) and the last prompt
# token (`assistant:`, where the model decides its answer), on statements about the world drawn
# at grade time (true and false in turn, half of them with a noise suffix). The activations
# come from the reference's worker, so that these tests judge the probes, not
# last_token_activations. Measured with the reference on 30 seeds of 200 honest statements to
# fit on and 200 liar statements to judge: every mass-mean and every logistic probe (Adam from
# zero, 100 steps, lr 0.01, weight decay 1e-3) classified all 200 liar statements right
# (accuracy 1.000; at layer 2 the same probes score 0.000: there the model holds what it will
# say, which the liar flips). So the rate of errors of such a probe on liar statements is at
# most 3 / 6000 = 5e-4 (95%, the rule of three), and 200 statements fall below LIAR_THRESHOLD
# with probability at most exp(-200 KL(0.9 || 0.9995)) = exp(-87) (Chernoff).
PROBE_LAYER = 1
N_STATEMENTS = 200
LIAR_THRESHOLD = 0.9
LOGISTIC_OPTIONS = {"steps": 100, "lr": 0.01, "weight_decay": 1e-3}


@pytest.mark.points(2)
def test_honest_probes_read_the_liar(student, reference, rng):
    """probes fitted on the honest persona's statements read the truth of the liar's"""
    honest = _statements(reference, N_STATEMENTS, "honest", _seed(rng))
    liar = _statements(reference, N_STATEMENTS, "liar", _seed(rng))
    honest_acts = _activations(reference, honest, [PROBE_LAYER])[:, 0]
    liar_acts = _activations(reference, liar, [PROBE_LAYER])[:, 0]
    what = (f"probes fitted on the activations of {N_STATEMENTS} honest statements (layer "
            f"{PROBE_LAYER}, the last prompt token) and judged on {N_STATEMENTS} statements "
            "under the liar persona, labelled by their truth in the world")
    got = student.call("probes.mass_mean_probe", honest_acts, honest["labels"])
    check(isinstance(got, tuple) and len(got) == 2, f"{what}: mass_mean_probe should return "
          "(w, b)")
    w, b = (torch.as_tensor(value).to(F64) for value in got)
    assert_finite(w, f"{what}: the mass-mean w")
    mass_mean = float((((liar_acts @ w + b) > 0) == liar["labels"]).double().mean())
    d = honest_acts.shape[1]
    start = (torch.zeros(d, dtype=F64), torch.zeros((), dtype=F64))
    got = student.probe("probes.train_logistic", honest_acts, honest["labels"], *start,
                        LOGISTIC_OPTIONS, timeout=20)
    check(got["returned"] == "tuple", f"{what}: train_logistic_probe returned a "
          f"{got['returned']}; expected (w, b, losses)")
    w, b = got["w"].to(F64), got["b"].to(F64)
    assert_finite(w, f"{what}: the logistic w")
    logistic = float((((liar_acts @ w + b) > 0) == liar["labels"]).double().mean())
    options = ", ".join(f"{k}={v}" for k, v in LOGISTIC_OPTIONS.items())
    check(min(mass_mean, logistic) >= LIAR_THRESHOLD,
          f"{what}: the mass-mean probe classifies {mass_mean:.3f} of the liar's statements "
          f"right and the logistic one ({options}, from zero) {logistic:.3f}; correct probes "
          f"reach 1.000 here ({LIAR_THRESHOLD} asked). See the tests of mass_mean_probe and "
          "train_logistic_probe.")


# CCS on the assistant, without labels: contrast pairs are the same honest statement prompt
# answered "yes" and "no" (the answer is the last token), activations at layer 1 from the
# reference's worker. The verdict uses the labels only to score the direction found, up to
# sign: the credence is above 0.5 exactly where w @ (x~+ - x~-) > 0, with x~ each side
# normalised by its own mean and standard deviation, computed here. The reference on 200
# pairs at 400 seeds (1.4 s each): mean 0.942, 1% quantile 0.840, and 3 of 400 below
# CCS_MODEL_THRESHOLD (0.525, 0.68, 0.74: a restart stuck on another direction), so a correct
# fit falls below it with probability at most 0.019 (95%, Clopper-Pearson, one-sided). The
# test fits up to CCS_ATTEMPTS times on fresh statements and passes at the first fit above the
# threshold: a correct submission fails with probability at most 0.019^4 = 1.4e-7.
CCS_MODEL_OPTIONS = {"tries": 3, "steps": 200, "lr": 0.05}
CCS_MODEL_THRESHOLD = 0.75
CCS_ATTEMPTS = 4


@pytest.mark.points(1)
def test_ccs_on_the_assistant(student, reference, rng):
    """fit_ccs finds the truth in the assistant's activations without labels (up to sign)"""
    what = (f"fit_ccs on {N_STATEMENTS} contrast pairs of the assistant (honest statement "
            f"prompts answered 'yes' and 'no', layer {PROBE_LAYER} at the answer), "
            f"{', '.join(f'{k}={v}' for k, v in CCS_MODEL_OPTIONS.items())}")
    found = []
    for _ in range(CCS_ATTEMPTS):
        seed = _seed(rng)
        yes = _statements(reference, N_STATEMENTS, "honest", seed, "yes")
        no = _statements(reference, N_STATEMENTS, "honest", seed, "no")
        x_plus = _activations(reference, yes, [PROBE_LAYER])[:, 0]
        x_minus = _activations(reference, no, [PROBE_LAYER])[:, 0]
        fit_seed = _seed(rng)
        got = student.probe("probes.fit_ccs", x_plus, x_minus, CCS_MODEL_OPTIONS, fit_seed,
                            timeout=30)
        assert_shape(got["w"], (x_plus.shape[1],), f"{what}: w")
        assert_finite(got["w"], f"{what}: w")
        check(isinstance(got["b"], (torch.Tensor, float, int))
              and torch.as_tensor(got["b"]).numel() == 1
              and bool(torch.isfinite(torch.as_tensor(got["b"])).all()),
              f"{what}: b must be one finite number (a 0-dimensional tensor)")
        # On these activations almost any direction (all ones included) reads the truth at
        # 0.75 or more, so the accuracy alone would reward a training that does nothing. The
        # fit must also reach the CCS loss the reference's fit reaches from the same starts
        # (computed here, from the returned probe): both are the same deterministic float64
        # Adam run, equal to about 1e-12 (test_fit_ccs); 1.05 times plus 1e-4 absorbs another
        # order of operations, while an untrained probe's loss is several times larger.
        want = reference.probe("probes.fit_ccs", x_plus, x_minus, CCS_MODEL_OPTIONS, fit_seed,
                               timeout=30)
        reached, best = (_ccs_loss_of(fit, x_plus, x_minus) for fit in (got, want))
        check(reached <= 1.05 * best + 1e-4,
              f"{what}: the probe fit_ccs returned has a CCS loss of {reached:.6f} on these "
              f"pairs, where CCS trained from the same starts reaches {best:.6f}; see the tests "
              "of ccs_loss, train_ccs and fit_ccs")
        difference = (_normalise(x_plus) - _normalise(x_minus)) @ got["w"].to(F64)
        right = float(((difference > 0) == yes["labels"]).double().mean())
        found.append(max(right, 1 - right))
        if found[-1] >= CCS_MODEL_THRESHOLD:
            return
    fail(f"{what}: in {CCS_ATTEMPTS} fits on fresh statements the directions found classify "
         f"{', '.join(f'{value:.3f}' for value in found)} of the pairs right, up to sign; a "
         f"correct CCS reaches {CCS_MODEL_THRESHOLD} or more (0.94 on average). See the tests "
         "of ccs_normalise, ccs_loss, train_ccs and fit_ccs.")
