"""Probes for lab3 part "scaling": run in the worker, next to the implementation's scaling.py
(and the support file scaling_sweep.py)."""

import scaling
import torch


def objective_with_gradient(params: torch.Tensor, N: torch.Tensor, D: torch.Tensor,
                            L: torch.Tensor, delta: float) -> dict:
    """`chinchilla_objective` at `params` and its gradient with respect to them (None when the
    value is not a tensor connected to them, so that nothing can backpropagate through it)."""
    params = params.clone().requires_grad_()
    value = scaling.chinchilla_objective(params, N, D, L, delta)
    gradient = None
    if torch.is_tensor(value) and value.requires_grad and value.numel() == 1:
        gradient = torch.autograd.grad(value.sum(), params, allow_unused=True)[0]
    return {"value": value.detach() if torch.is_tensor(value) else value, "gradient": gradient}


def fit(N: torch.Tensor, D: torch.Tensor, L: torch.Tensor, starts: torch.Tensor,
        delta: float) -> dict:
    """`fit_scaling_law`'s result, its values as floats (a tensor value is converted, and
    named under "_not_plain"), and "_starts_changed": whether `starts` was changed in place."""
    given = starts.clone()
    fitted = scaling.fit_scaling_law(N, D, L, starts, delta)
    if not isinstance(fitted, dict):
        raise TypeError(f"fit_scaling_law returned a {type(fitted).__name__}; return a dict "
                        "of floats")
    out = {str(key): float(value) for key, value in fitted.items()}
    out["_not_plain"] = sorted(f"{key} ({type(value).__name__})" for key, value in fitted.items()
                               if not isinstance(value, float))
    out["_starts_changed"] = not torch.equal(starts.detach(), given)
    return out


def bootstrap(N: torch.Tensor, D: torch.Tensor, L: torch.Tensor, starts: torch.Tensor,
              n_boot: int, seed: int, level: float, delta: float) -> dict:
    """`bootstrap_exponents` with a generator seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return scaling.bootstrap_exponents(N, D, L, starts, n_boot, generator, level, delta)
