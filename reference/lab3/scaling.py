"""Lab 3, part "scaling": scaling laws and emergence.

Hoffmann et al. (2022, "Chinchilla") model the final loss of a language model with N
parameters trained on D tokens as

    L(N, D) = E + A / N^alpha + B / D^beta,

an irreducible loss E plus a term that falls with the model's size and one that falls with
the data. Their third approach fits the five numbers to the (N, D, L) of many training runs by
minimising a Huber loss on log L, with log-space parameters a = log A, b = log B, e = log E,
from a grid of starting points. Given the fit, a compute budget C = 6 N D (FLOPs) is best spent
on N_opt(C) and D_opt(C), both power laws of C.

You fit the law to a sweep of tiny transformers this repository trained on a Markov-chain
language (`scaling_sweep.py`, its results in `scaling_sweep.json`). Unlike a natural language,
its best possible loss is known exactly (the chain's entropy rate), so you can check the one
number no published scaling law can check: does the fitted E land on the floor?

The last functions look at "emergence" (Schaeffer et al. 2023): an answer of k tokens is
exactly right with probability p^k when each token is right with probability p, so a metric
that needs all k tokens jumps where the per-token probability rises smoothly.

Run `python scaling.py` to fit the shipped sweep, print the compute-optimal allocation and a
bootstrap interval for the exponents, and show the mirage.
"""

from __future__ import annotations

import itertools
import math
import time

import torch
from scaling_sweep import load_sweep

F64 = torch.float64
# The order of the parameters of `chinchilla_objective` and `fit_scaling_law`'s start points.
PARAMETER_NAMES = ("a", "b", "e", "alpha", "beta")


# ----------------------------------------------------------------------------- the law


def parametric_loss(N: torch.Tensor, D: torch.Tensor, E: float, A: float, B: float,
                    alpha: float, beta: float) -> torch.Tensor:
    """L(N, D) = E + A / N^alpha + B / D^beta, elementwise.

    N, D: float64 tensors of the same shape (or shapes that broadcast): parameters and
    training tokens. The other arguments are Python floats. Returns a float64 tensor of the
    broadcast shape.
    """
    # BEGIN SOLUTION
    return E + A / N**alpha + B / D**beta
    # END SOLUTION


def huber_loss(residual: torch.Tensor, delta: float) -> torch.Tensor:
    """The Huber loss of each residual r, elementwise (same shape and dtype as `residual`):

        r^2 / 2                   where |r| <= delta,
        delta * (|r| - delta / 2) where |r| >  delta.

    Quadratic near 0, linear (so robust to outliers) beyond delta; its two pieces meet with
    the same value and slope at |r| = delta. Must be differentiable with torch's autograd.
    """
    # BEGIN SOLUTION
    size = residual.abs()
    return torch.where(size <= delta, 0.5 * residual**2, delta * (size - 0.5 * delta))
    # END SOLUTION


def chinchilla_objective(params: torch.Tensor, N: torch.Tensor, D: torch.Tensor,
                         L: torch.Tensor, delta: float = 1e-3) -> torch.Tensor:
    """Hoffmann et al.'s objective: the sum over runs i of

        huber_loss(LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i, delta)

    params: float64 (5,), in the order of PARAMETER_NAMES: a, b, e, alpha, beta (so that
    A = exp(a), B = exp(b), E = exp(e)). N, D, L: float64 (runs,). LSE is the log of the sum
    of the exponentials of its three arguments: the log of the predicted loss E + A / N^alpha
    + B / D^beta, computed without overflow. Natural logarithms throughout. Returns a 0-dim
    float64 tensor through which autograd can reach `params` (the fit needs its gradient).
    Hint: torch.logsumexp over a stacked dimension; use your `huber_loss`.
    """
    # BEGIN SOLUTION
    a, b, e, alpha, beta = params
    terms = torch.stack([a - alpha * N.log(), b - beta * D.log(), e.expand(N.shape)])
    predicted = torch.logsumexp(terms, dim=0)
    return huber_loss(predicted - L.log(), delta).sum()
    # END SOLUTION


# ----------------------------------------------------------------------------- the fit


def starting_grid(a: tuple[float, ...] = (0.0, 5.0, 10.0), b: tuple[float, ...] = (0.0, 5.0, 10.0),
                  e: tuple[float, ...] = (-1.0, 0.0, 1.0), alpha: tuple[float, ...] = (0.5,),
                  beta: tuple[float, ...] = (0.5,)) -> torch.Tensor:
    """Every combination of the given values: float64 (starts, 5), columns a, b, e, alpha,
    beta. Hoffmann et al. used a in {0, 5, ..., 25}, b the same, e in {-1, -0.5, ..., 1} and
    alpha, beta in {0, 0.5, ..., 2} (4500 starts); the default here is smaller (27)."""
    return torch.tensor(list(itertools.product(a, b, e, alpha, beta)), dtype=F64)


def fit_scaling_law(N: torch.Tensor, D: torch.Tensor, L: torch.Tensor, starts: torch.Tensor,
                    delta: float = 1e-3) -> dict[str, float]:
    """Fit L(N, D) to the runs as in Hoffmann et al.'s third approach.

    N, D, L: float64 (runs,). starts: float64 (starts, 5), start points in the order of
    PARAMETER_NAMES. From each start, minimise `chinchilla_objective` with
    `torch.optim.LBFGS([params], lr=1, max_iter=1000, tolerance_grad=1e-12,
    tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")` (one call of
    `step`, with a closure that zeroes the gradient, computes the objective, backpropagates and
    returns it). Keep the end point with the lowest objective (skip any whose objective is
    not finite). Returns plain floats: {"a", "b", "e", "alpha", "beta"} of the best end point,
    "E", "A", "B" (the exponentials of e, a, b) and "objective" (its objective).
    Hint: start each run from a fresh `start.clone().requires_grad_(True)`.
    """
    # BEGIN SOLUTION
    def descend(start: torch.Tensor) -> tuple[float, torch.Tensor]:
        params = start.clone().requires_grad_(True)
        optimizer = torch.optim.LBFGS([params], lr=1, max_iter=1000, tolerance_grad=1e-12,
                                      tolerance_change=1e-14, history_size=20,
                                      line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            value = chinchilla_objective(params, N, D, L, delta)
            value.backward()
            return value

        optimizer.step(closure)
        with torch.no_grad():
            return chinchilla_objective(params, N, D, L, delta).item(), params.detach()

    ends = [descend(start) for start in starts]
    best_value, best = min((end for end in ends if math.isfinite(end[0])), key=lambda end: end[0])
    fitted = dict(zip(PARAMETER_NAMES, best.tolist(), strict=True))
    fitted.update(E=math.exp(fitted["e"]), A=math.exp(fitted["a"]), B=math.exp(fitted["b"]),
                  objective=best_value)
    return fitted
    # END SOLUTION


# ----------------------------------------------------------------------------- compute-optimal


def compute_optimal_allocation(C: torch.Tensor, A: float, B: float, alpha: float,
                               beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The N and D that minimise L(N, D) under the compute budget C = 6 N D.

    C: float64 tensor of budgets (FLOPs), any shape. Returns (N_opt, D_opt), float64 tensors of
    C's shape:

        G = (alpha A / (beta B))^(1 / (alpha + beta)),
        N_opt = G (C / 6)^(beta / (alpha + beta)),  D_opt = (C / 6)^(alpha / (alpha + beta)) / G,

    so that 6 N_opt D_opt = C. (E does not move the optimum.)
    """
    # BEGIN SOLUTION
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    N_opt = G * (C / 6) ** (beta / (alpha + beta))
    D_opt = (C / 6) ** (alpha / (alpha + beta)) / G
    return N_opt, D_opt
    # END SOLUTION


# ----------------------------------------------------------------------------- uncertainty


def bootstrap_exponents(N: torch.Tensor, D: torch.Tensor, L: torch.Tensor, starts: torch.Tensor,
                        n_boot: int, generator: torch.Generator, level: float = 0.95,
                        delta: float = 1e-3) -> dict[str, torch.Tensor]:
    """A percentile bootstrap interval for the exponents alpha and beta.

    For each of `n_boot` replicates, draw the runs with replacement:
    `indices = torch.randint(len(L), (len(L),), generator=generator)` (one call per
    replicate, in order), and fit the law to N[indices], D[indices], L[indices] with your
    `fit_scaling_law(..., starts, delta)`. The interval of each exponent is
    `torch.quantile(values, q)` for q = ((1 - level) / 2, (1 + level) / 2) over its n_boot
    fitted values. Returns {"indices": int64 (n_boot, runs), "alpha": float64 (n_boot,),
    "beta": float64 (n_boot,), "interval": float64 (2, 2)}; the interval's rows are alpha
    and beta, its columns the low and the high end.
    """
    # BEGIN SOLUTION
    runs = len(L)
    indices = torch.stack([torch.randint(runs, (runs,), generator=generator)
                           for _ in range(n_boot)])
    fits = [fit_scaling_law(N[rows], D[rows], L[rows], starts, delta) for rows in indices]
    alphas = torch.tensor([fit["alpha"] for fit in fits], dtype=F64)
    betas = torch.tensor([fit["beta"] for fit in fits], dtype=F64)
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=F64)
    interval = torch.stack([torch.quantile(alphas, q), torch.quantile(betas, q)])
    return {"indices": indices, "alpha": alphas, "beta": betas, "interval": interval}
    # END SOLUTION


# ----------------------------------------------------------------------------- emergence


def exact_match(token_probs: torch.Tensor) -> torch.Tensor:
    """The probability that an answer of k tokens is exactly right, when its tokens are right
    independently with the probabilities in the last dimension.

    token_probs: float64 (..., k), each entry in [0, 1]. Returns float64 (...,): the product
    over the last dimension (p^k when all k are equal to p).
    """
    # BEGIN SOLUTION
    return token_probs.prod(dim=-1)
    # END SOLUTION


def steepest_rise(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Where a curve rises fastest, from its samples.

    x: float64 (points,), strictly increasing (not necessarily evenly spaced); y: float64
    (points,). The slope between neighbouring samples is (y[i+1] - y[i]) / (x[i+1] - x[i]).
    Returns (the largest of those slopes, the midpoint (x[i] + x[i+1]) / 2 of its interval)
    as Python floats; on a tie, the first such interval.
    """
    # BEGIN SOLUTION
    slopes = (y[1:] - y[:-1]) / (x[1:] - x[:-1])
    i = int(slopes.argmax())
    return float(slopes[i]), float((x[i] + x[i + 1]) / 2)
    # END SOLUTION


# ----------------------------------------------------------------------------- the demo


def main() -> None:
    torch.set_num_threads(1)
    sweep = load_sweep()
    N, D, L = sweep["N"], sweep["D"], sweep["L"]
    began = time.perf_counter()
    fit = fit_scaling_law(N, D, L, starting_grid())
    print(f"fit of {len(L)} runs ({time.perf_counter() - began:.1f} s): E {fit['E']:.4f} "
          f"(the language's entropy rate: {sweep['entropy_rate']:.4f}), A {fit['A']:.4g}, "
          f"alpha {fit['alpha']:.3f}, B {fit['B']:.4g}, beta {fit['beta']:.3f}")
    C = torch.tensor([1e9, 1e10, 1e11, 1e12], dtype=F64)
    N_opt, D_opt = compute_optimal_allocation(C, fit["A"], fit["B"], fit["alpha"], fit["beta"])
    for c, n, d in zip(C.tolist(), N_opt.tolist(), D_opt.tolist(), strict=True):
        print(f"C = {c:.0e} FLOPs: N_opt {n:10.4g}, D_opt {d:10.4g} ({d / n:.3g} tokens per "
              "parameter)")
    began = time.perf_counter()
    boot = bootstrap_exponents(N, D, L, starting_grid(a=(0.0, 5.0), b=(5.0, 10.0), e=(0.0,)),
                               n_boot=100, generator=torch.Generator().manual_seed(0))
    (alpha_low, alpha_high), (beta_low, beta_high) = boot["interval"].tolist()
    print(f"95% bootstrap intervals ({time.perf_counter() - began:.1f} s): alpha "
          f"[{alpha_low:.3f}, {alpha_high:.3f}], beta [{beta_low:.3f}, {beta_high:.3f}]")
    # The mirage: take Chinchilla's model term as a per-token loss, A / N^alpha with A 406.4 and
    # alpha 0.34: the per-token probability exp(-A / N^alpha) rises smoothly over decades of
    # N, and so does the expected number of wrong tokens in an answer of 10; the exact match
    # of the whole answer, its 10th power, stays near 0 and then shoots up.
    k = 10
    log_N = torch.linspace(4, 12, 9, dtype=F64)
    per_token = torch.exp(-406.4 / 10 ** (0.34 * log_N))
    answer = exact_match(per_token[:, None].expand(-1, k))
    for name, row in [("log10 N", log_N), ("per-token p", per_token),
                      (f"wrong tokens of {k}", k * (1 - per_token)),
                      (f"exact match of {k}", answer)]:
        print(f"{name:>18}: " + " ".join(f"{value:5.2f}" for value in row.tolist()))
    p = torch.linspace(0, 1, 101, dtype=F64)
    slope, at = steepest_rise(p, exact_match(p[:, None].expand(-1, k)))
    print(f"against the per-token p, the exact match rises at most {slope:.2f} times as fast "
          f"(at p = {at:.3f}; {k} at p = 1)")


if __name__ == "__main__":
    main()
