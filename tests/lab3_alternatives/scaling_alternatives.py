# Appended to reference/lab3/scaling.py (its definitions win), this is a submission that
# computes every graded function another correct way. It must score full marks.
# ruff: noqa: F821  (the names it builds on are defined by the reference it is appended to)

import math


def parametric_loss(N, D, E, A, B, alpha, beta):
    """Powers as exponentials of logs."""
    return E + torch.exp(math.log(A) - alpha * N.log()) + torch.exp(math.log(B) - beta * D.log())


def huber_loss(residual, delta):
    """torch's own Huber loss."""
    return torch.nn.functional.huber_loss(residual, torch.zeros_like(residual),
                                          reduction="none", delta=delta)


def chinchilla_objective(params, N, D, L, delta=1e-3):
    """Log-sum-exp written out with its maximum, the runs summed with a dot product."""
    terms = torch.stack([params[0] - params[3] * N.log(), params[1] - params[4] * D.log(),
                         params[2] * torch.ones_like(N)], dim=1)
    top = terms.amax(dim=1, keepdim=True).detach()
    predicted = top[:, 0] + (terms - top).exp().sum(dim=1).log()
    return torch.ones_like(L) @ huber_loss(predicted - torch.log(L), delta)


def fit_scaling_law(N, D, L, starts, delta=1e-3):
    """Other L-BFGS settings (a longer history, tighter tolerances, several step calls), and
    the best kept by a sort."""
    def descend(start):
        params = torch.nn.Parameter(start.clone())
        optimizer = torch.optim.LBFGS([params], lr=1, max_iter=400, tolerance_grad=1e-14,
                                      tolerance_change=1e-16, history_size=50,
                                      line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            value = chinchilla_objective(params, N, D, L, delta)
            value.backward()
            return value

        for _ in range(3):
            optimizer.step(closure)
        return float(chinchilla_objective(params.detach(), N, D, L, delta)), params.detach()

    ends = sorted((descend(start) for start in starts), key=lambda end: end[0])
    ends = [end for end in ends if math.isfinite(end[0])]
    value, best = ends[0]
    a, b, e, alpha, beta = best.tolist()
    return {"a": a, "b": b, "e": e, "alpha": alpha, "beta": beta, "E": math.exp(e),
            "A": math.exp(a), "B": math.exp(b), "objective": value}


def compute_optimal_allocation(C, A, B, alpha, beta):
    """In logs: N_opt from the first-order condition, D_opt from the budget."""
    log_G = (math.log(alpha * A) - math.log(beta * B)) / (alpha + beta)
    N_opt = torch.exp(log_G + beta / (alpha + beta) * torch.log(C / 6))
    return N_opt, C / (6 * N_opt)


def exact_match(token_probs):
    """A loop over the tokens."""
    result = torch.ones(token_probs.shape[:-1], dtype=token_probs.dtype)
    for i in range(token_probs.shape[-1]):
        result = result * token_probs[..., i]
    return result


def steepest_rise(x, y):
    """torch.diff, the first maximum by a Python loop."""
    slopes = (torch.diff(y) / torch.diff(x)).tolist()
    i = slopes.index(max(slopes))
    return slopes[i], 0.5 * float(x[i]) + 0.5 * float(x[i + 1])
