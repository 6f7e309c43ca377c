"""Lab 3, part "scaling": the Chinchilla law, its fit, the compute-optimal allocation, bootstrap
intervals and the emergence mirage.

Every input is drawn at grade time from the `rng` fixture: the true parameters and the design
of synthetic sweeps, their noise, the objective's parameters and delta, the budgets, the
bootstrap's generator seed, the per-token probabilities and the curves. The hidden fit of the
shipped sweep (`scaling_sweep.json`, loaded here with `json`, nothing executed) leaves out a
drawn few of its runs.

Tolerances. The law, the Huber loss, the objective, the allocation and the exact match are
closed forms in float64: each value is known to a few eps times the terms it is computed from
(logs of N and D of size <= 30, sums of <= 50 Huber terms), so the tolerances below sit three
or more orders above that and far below every mistake the handout warns about. The fit is an
optimisation: two correct fits from the same starts (other L-BFGS settings, another order of
operations in the objective) end at the same minimum only to the optimiser's tolerance, so
fitted parameters are compared at FIT_TOLERANCE, a hundred times the largest difference
measured between the reference and correct alternatives (tests/lab3_alternatives), and the
objective a fit reaches is judged by the verdict's own computation of the objective.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from autograder.engine.checks import assert_close, check, fail, observed
from autograder.engine.labs import load_lab

F64 = torch.float64
NAMES = ("a", "b", "e", "alpha", "beta")
DELTA = 1e-3  # Hoffmann et al.'s Huber delta
# Fitted parameters of two correct fits from the same starts agree to ~1e-5 (measured: the
# largest differences between the reference and the alternatives (tests/lab3_alternatives)
# over 20 drawn synthetic sweeps and 30 drawn subsets of the shipped sweep were 4.0e-5 in a
# and b, 3.9e-7 in e and 5.8e-6 in the exponents, the shipped sweep's being the least well
# conditioned); FIT_TOLERANCE is 50 to 130 times that, and the mistakes of the fit move
# them by more than 0.01.
FIT_TOLERANCE = {"a": 2e-3, "b": 2e-3, "e": 5e-5, "alpha": 5e-4, "beta": 5e-4}
# A fit recovers the truth of a synthetic sweep with log-normal noise of SIGMA: the
# reference's largest errors over 20 drawn sweeps were 0.013 in the exponents and 4.7% in E
# (E is the least determined: a small term next to two that fall). A draw is redone when the
# reference itself misses the truth by more than half of TRUTH_TOLERANCE or ends above the
# truth's objective (so that a fit equal to the reference's to FIT_TOLERANCE always passes:
# no false failure whatever the draw).
SIGMA = 0.003
TRUTH_TOLERANCE = {"alpha": 0.05, "beta": 0.05, "E": 0.15}  # E relative
# The shipped sweep's fitted E lands within ENTROPY_TOLERANCE nats of the language's entropy
# rate: the reference's E missed it by at most 0.0057 over 30 drawn subsets (0.001 on the
# whole sweep). A draw of left-out runs is redone when the reference misses by more than half.
ENTROPY_TOLERANCE = 0.03
SWEEP_LEFT_OUT = 3


def _f64(value) -> torch.Tensor:
    """A number (or a sequence of numbers) as float64: the checks would read a Python float as
    float32, whose rounding (6e-8 relative) is far above the tolerances here."""
    return torch.tensor(value, dtype=F64)


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng))


def _objective(params: torch.Tensor, N: torch.Tensor, D: torch.Tensor, L: torch.Tensor,
               delta: float) -> torch.Tensor:
    """The verdict's own Chinchilla objective (float64)."""
    a, b, e, alpha, beta = params.to(F64)
    predicted = torch.logsumexp(torch.stack([a - alpha * N.log(), b - beta * D.log(),
                                             e.expand(N.shape)]), dim=0)
    residual = predicted - L.log()
    return torch.where(residual.abs() <= delta, 0.5 * residual**2,
                       delta * (residual.abs() - 0.5 * delta)).sum()


def _law(N: torch.Tensor, D: torch.Tensor, truth: dict) -> torch.Tensor:
    return truth["E"] + truth["A"] / N**truth["alpha"] + truth["B"] / D**truth["beta"]


def _truth(rng: torch.Generator, N_min: float, D_min: float) -> dict:
    """Parameters whose model and data terms are each 0.3 to 2 times E at the smallest N, D."""
    E = _uniform(rng, 1.0, 3.0)
    alpha, beta = _uniform(rng, 0.2, 0.6), _uniform(rng, 0.2, 0.6)
    A = _uniform(rng, 0.3, 2.0) * E * N_min**alpha
    B = _uniform(rng, 0.3, 2.0) * E * D_min**beta
    return {"E": E, "A": A, "B": B, "alpha": alpha, "beta": beta,
            "a": math.log(A), "b": math.log(B), "e": math.log(E)}


def _synthetic_sweep(rng: torch.Generator, sizes: int, budgets: int,
                     sigma: float = SIGMA) -> tuple[torch.Tensor, ...]:
    """(N, D, L, truth): every pair of `sizes` model sizes and `budgets` token budgets, each
    spread over two to three decades, with log-normal noise of sigma on L."""
    N_min, D_min = 10 ** _uniform(rng, 5, 8), 10 ** _uniform(rng, 7, 10)
    sizes_ = N_min * torch.logspace(0, _uniform(rng, 2, 3), sizes, dtype=F64)
    budgets_ = D_min * torch.logspace(0, _uniform(rng, 2, 3), budgets, dtype=F64)
    N, D = sizes_.repeat_interleave(budgets), budgets_.repeat(sizes)
    truth = _truth(rng, N_min, D_min)
    L = _law(N, D, truth) * torch.exp(sigma * torch.randn(len(N), generator=rng, dtype=F64))
    return N, D, L, truth


def _starts(a: tuple[float, ...] = (0.0, 10.0), b: tuple[float, ...] = (0.0, 10.0),
            e: tuple[float, ...] = (0.0,)) -> torch.Tensor:
    """A small grid of start points (a, b, e, alpha = beta = 0.5)."""
    return torch.tensor([[a_, b_, e_, 0.5, 0.5] for a_ in a for b_ in b for e_ in e], dtype=F64)


# ----------------------------------------------------------------------------- the law


@pytest.mark.points(1)
@pytest.mark.public
def test_parametric_loss(student, reference, rng):
    """parametric_loss is E + A / N^alpha + B / D^beta on random sizes and parameters"""
    for _ in range(2):
        N, D, _, truth = _synthetic_sweep(rng, 3, 4)
        args = (truth["E"], truth["A"], truth["B"], truth["alpha"], truth["beta"])
        what = (f"parametric_loss(N, D, E={args[0]:.4g}, A={args[1]:.4g}, B={args[2]:.4g}, "
                f"alpha={args[3]:.4g}, beta={args[4]:.4g}) on {len(N)} runs")
        got = student.call("scaling.parametric_loss", N, D, *args)
        want = reference.call("scaling.parametric_loss", N, D, *args)
        observed(got, what, shape=N.shape, dtype=F64)
        # A power of N (size <= 1e11) to a float64 exponent is exact to ~1e-14 relative.
        assert_close(got, want, rtol=1e-10, atol=0.0, what=what, dtype=F64)
        assert_close(got, _law(N, D, truth), rtol=1e-10, atol=0.0, what=what, dtype=F64)


@pytest.mark.points(1)
@pytest.mark.public
def test_huber_loss(student, reference, rng):
    """huber_loss is quadratic within delta and linear beyond, on both sides of zero"""
    for delta in (DELTA, 10 ** _uniform(rng, -2, 0)):
        residual = torch.randn(40, generator=rng, dtype=F64) * 3 * delta
        residual[:4] = torch.tensor([delta, -delta, 0.0, 1e4 * delta], dtype=F64)
        what = f"huber_loss(residuals of size up to {residual.abs().max():.3g}, delta={delta:.3g})"
        got = student.call("scaling.huber_loss", residual, delta)
        want = reference.call("scaling.huber_loss", residual, delta)
        observed(got, what, shape=residual.shape, dtype=F64)
        inside = residual.abs() <= delta
        for mask, region, formula in [(inside, "|r| <= delta", "r^2 / 2"),
                                      (~inside, "|r| > delta", "delta * (|r| - delta / 2)")]:
            # Each value is a product of two or three float64 numbers: exact to 1e-15.
            assert_close(got[mask], want[mask], rtol=1e-12, atol=1e-300, dtype=F64,
                         what=f"{what} where {region} (expected {formula})")


def _check_objective(student, reference, params: torch.Tensor, N: torch.Tensor,
                     D: torch.Tensor, L: torch.Tensor, delta: float, what: str) -> None:
    got = student.probe("scaling.objective_with_gradient", params, N, D, L, delta)
    want = reference.probe("scaling.objective_with_gradient", params, N, D, L, delta)
    value = observed(got["value"], f"{what}: the value", shape=(), dtype=F64)
    # Each Huber term is delta * |r| at most; r, a log-sum-exp of terms of size <= ~30 minus
    # log L, is exact to ~1e-14, so the sum of n terms to n * delta * 1e-14: 1e-11 relative
    # to that leaves a margin of 1000 (and an objective of the same residuals as a mean, or
    # with log10, or without the 1/2, misses by more than 1e-3 of itself).
    scale = len(L) * delta * max(1.0, float(want["value"]) / (len(L) * delta))
    mean = float(want["value"]) / len(L)
    if float(want["value"]) > 0 and abs(float(value) - mean) <= 1e-9 * scale:
        fail(f"{what}: the value is the mean of the Huber terms over the runs; Hoffmann et "
             "al.'s objective is their sum.")
    assert_close(value, want["value"], rtol=0.0, atol=1e-11 * scale,
                 what=f"{what}: the value", dtype=F64)
    assert_close(value, _objective(params, N, D, L, delta), rtol=0.0, atol=1e-11 * scale,
                 what=f"{what}: the value", dtype=F64)
    check(got["gradient"] is not None,
          f"{what}: the objective is not connected to params through autograd (no gradient "
          "reached them): compute it with torch operations on params, without .item(), "
          ".detach(), numpy or a new tensor built from their values, so that L-BFGS can "
          "follow its gradient.")
    gradient = observed(got["gradient"], f"{what}: its gradient with respect to params",
                        shape=(5,), dtype=F64)
    # d/dparams sums n terms, each a Huber slope (<= delta) times a weight (<= log N ~ 30).
    assert_close(gradient, want["gradient"], rtol=0.0, atol=1e-10 * scale * 30, dtype=F64,
                 what=f"{what}: its gradient with respect to (a, b, e, alpha, beta)")


@pytest.mark.points(3)
@pytest.mark.public
def test_chinchilla_objective(student, reference, rng):
    """chinchilla_objective and its gradient: at the truth (residuals near delta) and far away"""
    for case in range(2):
        N, D, L, truth = _synthetic_sweep(rng, 4, 5, sigma=DELTA)
        near = torch.tensor([truth[name] for name in NAMES], dtype=F64)
        far = torch.tensor([_uniform(rng, 0, 10), _uniform(rng, 0, 10), _uniform(rng, -1, 1),
                            _uniform(rng, 0.1, 1), _uniform(rng, 0.1, 1)], dtype=F64)
        for params, where in [(near, "at the true parameters"), (far, "at random parameters")]:
            what = (f"chinchilla_objective(params, N, D, L, delta={DELTA:g}) on {len(L)} runs "
                    f"{where} (case {case + 1})")
            _check_objective(student, reference, params, N, D, L, DELTA, what)


@pytest.mark.points(2)
def test_chinchilla_objective_in_general(student, reference, rng):
    """chinchilla_objective with other deltas, other designs, and terms of size 700 (LSE)"""
    N, D, L, truth = _synthetic_sweep(rng, int(torch.randint(2, 7, (), generator=rng)),
                                      int(torch.randint(2, 7, (), generator=rng)), sigma=0.05)
    delta = 10 ** _uniform(rng, -4, -1)
    params = torch.tensor([truth[name] for name in NAMES], dtype=F64)
    params += 0.05 * torch.randn(5, generator=rng, dtype=F64)
    _check_objective(student, reference, params, N, D, L, delta,
                     f"chinchilla_objective(params, N, D, L, delta={delta:.3g}) on {len(L)} runs")
    # exp(750) overflows float64: only the log-sum-exp form gives the finite answer.
    large = torch.tensor([750.0 + _uniform(rng, 0, 10), 750.0 + _uniform(rng, 0, 10),
                          750.0, _uniform(rng, 0.1, 1), _uniform(rng, 0.1, 1)], dtype=F64)
    _check_objective(student, reference, large, N, D, L, delta,
                     f"chinchilla_objective(params with a, b, e near 750, N, D, L, "
                     f"delta={delta:.3g}): exp(750) overflows; compute the log of the sum of "
                     "exponentials with logsumexp")


# ----------------------------------------------------------------------------- the fit


def _check_fit(got, N: torch.Tensor, D: torch.Tensor, L: torch.Tensor, delta: float,
               what: str) -> torch.Tensor:
    """The fit's own consistency; returns its (a, b, e, alpha, beta)."""
    check(isinstance(got, dict), f"{what}: expected a dict, got a {type(got).__name__}")
    missing = [key for key in (*NAMES, "E", "A", "B", "objective") if key not in got]
    check(not missing, f"{what}: the result has no key(s) {missing}")
    check(not got["_not_plain"], f"{what}: {', '.join(got['_not_plain'])} should be plain "
          "Python floats (.item(), .tolist() or float())")
    check(not got["_starts_changed"], f"{what}: the starts were changed in place; start each "
          "run from a fresh start.clone().requires_grad_(True)")
    params = torch.tensor([got[name] for name in NAMES], dtype=F64)
    observed(params, f"{what}: the fitted (a, b, e, alpha, beta)")
    for big, small in [("A", "a"), ("B", "b"), ("E", "e")]:
        assert_close(_f64(got[big]), _f64(math.exp(got[small])), rtol=1e-9, atol=0.0,
                     what=f"{what}[{big!r}] (must be exp({small}) = {math.exp(got[small]):.6g})")
    own = _objective(params, N, D, L, delta)
    assert_close(_f64(got["objective"]), own, rtol=1e-9, atol=1e-15,
                 what=f"{what}['objective'] (the objective at the fitted parameters)")
    return params


def _compare_fits(got: dict, want: dict, what: str) -> None:
    for name, tolerance in FIT_TOLERANCE.items():
        if abs(got[name] - want[name]) > tolerance:
            fail(f"{what}: fitted {name} = {got[name]:.6g}, the reference's fit from the same "
                 f"starts gives {want[name]:.6g} (allowed difference {tolerance:g}); your "
                 f"objective there is {got['objective']:.6g}, the reference's "
                 f"{want['objective']:.6g}. Run L-BFGS from every start as the docstring says "
                 "and keep the end point with the lowest objective.")


@pytest.mark.points(3)
@pytest.mark.public
def test_fit_recovers_known_parameters(student, reference, rng):
    """fit_scaling_law recovers the parameters of two synthetic noisy sweeps"""
    starts = _starts()
    for case in range(2):
        for _ in range(5):  # redraw in the rare case that the reference itself misses
            N, D, L, truth = _synthetic_sweep(rng, 5, 5)
            want = reference.probe("scaling.fit", N, D, L, starts, DELTA, timeout=60)
            errors = {"alpha": abs(want["alpha"] - truth["alpha"]),
                      "beta": abs(want["beta"] - truth["beta"]),
                      "E": abs(want["E"] / truth["E"] - 1)}
            true_objective = float(_objective(_f64([truth[n] for n in NAMES]), N, D,
                                              L, DELTA))
            if (all(errors[key] <= TRUTH_TOLERANCE[key] / 2 for key in errors)
                    and want["objective"] <= true_objective):
                break
        what = (f"fit_scaling_law on 25 synthetic runs (case {case + 1}: true E {truth['E']:.4g},"
                f" alpha {truth['alpha']:.4g}, beta {truth['beta']:.4g}) from {len(starts)} starts")
        got = student.probe("scaling.fit", N, D, L, starts, DELTA, timeout=60)
        _check_fit(got, N, D, L, DELTA, what)
        check(got["objective"] <= true_objective * (1 + 1e-9),
              f"{what}: the fit's objective {got['objective']:.6g} is above the objective at the "
              f"true parameters, {true_objective:.6g}: the minimisation stopped early or kept a "
              "worse start.")
        for key in ("alpha", "beta"):
            check(abs(got[key] - truth[key]) <= TRUTH_TOLERANCE[key],
                  f"{what}: fitted {key} = {got[key]:.4g}, true {truth[key]:.4g}")
        check(abs(got["E"] / truth["E"] - 1) <= TRUTH_TOLERANCE["E"],
              f"{what}: fitted E = {got['E']:.4g}, true {truth['E']:.4g}")
        _compare_fits(got, want, what)


_SWEEP: dict = {}


def _sweep() -> dict:
    """The shipped sweep's table, read as JSON in the trusted process."""
    if not _SWEEP:
        path = load_lab("lab3").support_dir / "scaling_sweep.json"
        _SWEEP.update(json.loads(path.read_text()))
    return _SWEEP


@pytest.mark.points(3)
def test_fit_of_the_shipped_sweep(student, reference, rng):
    """fit_scaling_law on the shipped sweep (a few runs left out) lands E on the entropy rate"""
    runs, floor = _sweep()["runs"], _sweep()["entropy_rate"]
    starts = _starts()
    for _ in range(5):  # redraw in the rare case that the reference itself misses the floor
        kept = torch.randperm(len(runs), generator=rng)[SWEEP_LEFT_OUT:].sort().values
        N = torch.tensor([float(runs[i]["N"]) for i in kept], dtype=F64)
        D = torch.tensor([float(runs[i]["D"]) for i in kept], dtype=F64)
        L = torch.tensor([runs[i]["loss"] for i in kept], dtype=F64)
        want = reference.probe("scaling.fit", N, D, L, starts, DELTA, timeout=60)
        if abs(want["E"] - floor) <= ENTROPY_TOLERANCE / 2:
            break
    what = (f"fit_scaling_law on the shipped sweep without {SWEEP_LEFT_OUT} of its runs "
            f"({len(L)} runs) from {len(starts)} starts")
    got = student.probe("scaling.fit", N, D, L, starts, DELTA, timeout=60)
    _check_fit(got, N, D, L, DELTA, what)
    check(abs(got["E"] - floor) <= ENTROPY_TOLERANCE,
          f"{what}: fitted E = {got['E']:.4f}, but the language's entropy rate (its best "
          f"possible loss) is {floor:.4f}")
    _compare_fits(got, want, what)


# ----------------------------------------------------------------------------- compute-optimal


@pytest.mark.points(2)
@pytest.mark.public
def test_compute_optimal_allocation(student, reference, rng):
    """compute_optimal_allocation: the closed form, 6 N D = C, and no better N on the budget"""
    for _ in range(2):
        truth = _truth(rng, 10 ** _uniform(rng, 6, 9), 10 ** _uniform(rng, 8, 11))
        C = torch.logspace(_uniform(rng, 15, 18), _uniform(rng, 21, 25), 7, dtype=F64)
        args = (truth["A"], truth["B"], truth["alpha"], truth["beta"])
        what = (f"compute_optimal_allocation(C from {C[0]:.3g} to {C[-1]:.3g}, A={args[0]:.4g}, "
                f"B={args[1]:.4g}, alpha={args[2]:.4g}, beta={args[3]:.4g})")
        got = student.call("scaling.compute_optimal_allocation", C, *args)
        want = reference.call("scaling.compute_optimal_allocation", C, *args)
        check(isinstance(got, (tuple, list)) and len(got) == 2,
              f"{what}: expected a pair (N_opt, D_opt), got {type(got).__name__}")
        N_opt = observed(got[0], f"{what}: N_opt", shape=C.shape, dtype=F64)
        D_opt = observed(got[1], f"{what}: D_opt", shape=C.shape, dtype=F64)
        # Powers of C / 6 (<= 1e25) to exponents < 1: exact to ~1e-14 relative.
        assert_close(6 * N_opt * D_opt, C, rtol=1e-10, atol=0.0,
                     what=f"{what}: 6 N_opt D_opt (must be the budget C)")
        assert_close(N_opt, want[0], rtol=1e-10, atol=0.0, what=f"{what}: N_opt", dtype=F64)
        assert_close(D_opt, want[1], rtol=1e-10, atol=0.0, what=f"{what}: D_opt", dtype=F64)
        # The verdict's own check: on the budget, N_opt (1 +- 1%) gives a higher loss.
        for factor in (0.99, 1.01):
            N_other = N_opt * factor
            worse = _law(N_other, C / (6 * N_other), truth) > _law(N_opt, D_opt, truth)
            check(bool(worse.all()), f"{what}: {factor} * N_opt on the same budget has a lower "
                  "loss, so N_opt is not the optimum")


# ----------------------------------------------------------------------------- uncertainty


@pytest.mark.points(2)
@pytest.mark.public
def test_bootstrap_exponents(student, reference, rng):
    """bootstrap_exponents: the resampled runs, their fits and the percentile interval"""
    starts = _starts(a=(0.0, 10.0), b=(5.0,))
    for case in range(2):
        N, D, L, _ = _synthetic_sweep(rng, 4, 4)
        seed = int(torch.randint(2**31, (), generator=rng))
        n_boot = int(torch.randint(3, 5, (), generator=rng))
        level = (0.95, 0.8)[case]
        what = (f"bootstrap_exponents(16 runs, {len(starts)} starts, n_boot={n_boot}, "
                f"torch.Generator().manual_seed({seed}), level={level})")
        got = student.probe("scaling.bootstrap", N, D, L, starts, n_boot, seed, level, DELTA,
                            timeout=90)
        want = reference.probe("scaling.bootstrap", N, D, L, starts, n_boot, seed, level,
                               DELTA, timeout=90)
        check(isinstance(got, dict), f"{what}: expected a dict, got a {type(got).__name__}")
        missing = [key for key in ("indices", "alpha", "beta", "interval") if key not in got]
        check(not missing, f"{what}: the result has no key(s) {missing}")
        indices = observed(got["indices"], f"{what}['indices']", shape=(n_boot, 16),
                           dtype=torch.int64)
        if not torch.equal(indices, want["indices"]):
            if all(len(row.unique()) == 16 for row in indices):
                fail(f"{what}['indices']: every replicate holds each run once: draw the runs "
                     "with replacement (torch.randint), not a permutation")
            fail(f"{what}['indices']: the resampled runs differ from the reference's: one "
                 "torch.randint(len(L), (len(L),), generator=generator) per replicate, in order")
        alphas = observed(got["alpha"], f"{what}['alpha']", shape=(n_boot,), dtype=F64)
        betas = observed(got["beta"], f"{what}['beta']", shape=(n_boot,), dtype=F64)
        assert_close(alphas, want["alpha"], rtol=0.0, atol=FIT_TOLERANCE["alpha"],
                     what=f"{what}['alpha'] (each replicate's fitted alpha)", dtype=F64)
        assert_close(betas, want["beta"], rtol=0.0, atol=FIT_TOLERANCE["beta"],
                     what=f"{what}['beta'] (each replicate's fitted beta)", dtype=F64)
        interval = observed(got["interval"], f"{what}['interval']", shape=(2, 2), dtype=F64)
        tail = (1 - level) / 2
        q = torch.tensor([tail, 1 - tail], dtype=F64)
        own = torch.stack([torch.quantile(alphas, q), torch.quantile(betas, q)])
        assert_close(interval, own, rtol=1e-12, atol=1e-12, dtype=F64,
                     what=f"{what}['interval'] (rows alpha, beta; columns the "
                          f"{q[0]:.3g} and {q[1]:.3g} quantiles of your fitted values)")


# ----------------------------------------------------------------------------- emergence


@pytest.mark.points(1)
@pytest.mark.public
def test_exact_match(student, reference, rng):
    """exact_match multiplies the per-token probabilities of each answer"""
    for _ in range(2):
        k = int(torch.randint(2, 9, (), generator=rng))
        token_probs = torch.rand(3, 5, k, generator=rng, dtype=F64) ** 0.3
        token_probs[0, 0] = 0.9
        what = f"exact_match(token_probs of shape {tuple(token_probs.shape)})"
        got = student.call("scaling.exact_match", token_probs)
        want = reference.call("scaling.exact_match", token_probs)
        observed(got, what, shape=token_probs.shape[:-1], dtype=F64)
        assert_close(got, want, rtol=1e-12, atol=0.0, what=what, dtype=F64)
        assert_close(got[0, 0], _f64(0.9**k), rtol=1e-12, atol=0.0, dtype=F64,
                     what=f"{what} for {k} tokens each right with probability 0.9 (0.9^{k})")


def _pair(got, what: str) -> torch.Tensor:
    """steepest_rise's (slope, midpoint) as a float64 pair."""
    check(isinstance(got, (tuple, list)) and len(got) == 2
          and all(isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1)
                  for v in got),
          f"{what}: expected a pair of numbers (slope, midpoint), got {got!r:.200}")
    return _f64([float(v) for v in got])


@pytest.mark.points(1)
@pytest.mark.public
def test_steepest_rise(student, reference, rng):
    """steepest_rise on unevenly spaced samples, and the first of two equal slopes"""
    for _ in range(2):
        x = torch.rand(12, generator=rng, dtype=F64).add(0.1).cumsum(0)
        y = torch.randn(12, generator=rng, dtype=F64)
        what = f"steepest_rise(x, y) on {len(x)} unevenly spaced points"
        got = student.call("scaling.steepest_rise", x, y)
        want = reference.call("scaling.steepest_rise", x, y)
        check(not isinstance(got, (tuple, list)) or all(isinstance(v, float) for v in got),
              f"{what}: returned {got!r:.200}; the slope and the midpoint should be Python "
              "floats (float(...))")
        assert_close(_pair(got, what), _f64(want), rtol=1e-12, atol=1e-12,
                     what=f"{what}: (slope, midpoint)")
    # Slopes 1, 2, 0, 2 (exact in binary): the first 2, from x = 1 to 2, at its midpoint 1.5.
    x = torch.tensor([0.0, 1.0, 2.0, 3.0, 3.5], dtype=F64)
    y = torch.tensor([0.0, 1.0, 3.0, 3.0, 4.0], dtype=F64)
    what = "steepest_rise(x = [0, 1, 2, 3, 3.5], y = [0, 1, 3, 3, 4])"
    got = _pair(student.call("scaling.steepest_rise", x, y), what)
    assert_close(got, _f64((2.0, 1.5)), rtol=0.0, atol=1e-12,
                 what="steepest_rise(x = [0, 1, 2, 3, 3.5], y = [0, 1, 3, 3, 4]): two slopes of "
                      "2; the first, at the midpoint 1.5 of [1, 2]")


@pytest.mark.points(1)
def test_the_mirage(student, rng):
    """exact match of k tokens rises k times as steeply as a per-token probability ramping to 1"""
    k = int(torch.randint(3, 13, (), generator=rng))
    steps = int(torch.randint(100, 400, (), generator=rng))
    start = int(torch.randint(20, 60, (), generator=rng))
    h = _uniform(rng, 0.01, 0.1)
    x = torch.arange(start + steps + 40, dtype=F64) * h
    per_token = ((torch.arange(len(x), dtype=F64) - start) / steps).clamp(0, 1)
    what = (f"the mirage: per-token probability rising linearly from 0 to 1 over x in "
            f"[{start * h:.3g}, {(start + steps) * h:.3g}], answers of k = {k} tokens")
    answer = observed(student.call("scaling.exact_match", per_token[:, None].expand(-1, k)),
                      f"{what}: exact_match", shape=x.shape, dtype=F64)
    assert_close(answer, per_token**k, rtol=1e-12, atol=1e-300, what=f"{what}: exact_match",
                 dtype=F64)
    token_slope, _ = _pair(student.call("scaling.steepest_rise", x, per_token),
                           f"{what}: steepest_rise of the per-token probability")
    answer_slope, at = _pair(student.call("scaling.steepest_rise", x, answer),
                             f"{what}: steepest_rise of the exact match")
    assert_close(token_slope, _f64(1 / (steps * h)), rtol=1e-9, atol=0.0,
                 what=f"{what}: steepest_rise of the per-token probability")
    # The last step of the ramp raises p from 1 - 1/steps to 1, and p^k by
    # 1 - (1 - 1/steps)^k: between k (1 - 1/steps)^(k - 1) and k times the per-token rise.
    ratio = float(answer_slope) / float(token_slope)
    low = k * (1 - 1 / steps) ** (k - 1)
    check(low * (1 - 1e-9) <= ratio <= k * (1 + 1e-9),
          f"{what}: the exact match's steepest rise is {ratio:.4g} times the per-token one; "
          f"expected between {low:.4g} and {k}")
    assert_close(at, _f64((start + steps - 0.5) * h), rtol=1e-9, atol=0.0,
                 what=f"{what}: steepest_rise of the exact match: where it rises fastest (the "
                      "midpoint of the ramp's last step)")
