"""Probes for lab3 part "probes": run in the worker, next to the implementation's probes.py.

This file is loaded under its own module name (the worker names probe files
`_grader_probes_PART`), so `import probes` below is the implementation's probes.py, not this
file. The probes hand the implementation what cannot cross the process boundary (a
generator, a statistic to bootstrap) and return plain tensors and numbers.
"""

from __future__ import annotations

import model as model_module
import probes as probes_module
import torch
import torch._dynamo  # noqa: F401

# The first torch.optim.Adam imports torch._dynamo, which takes seconds on a busy machine:
# importing it here puts that cost in the worker's import time limit, not in the time limit of
# the first probe that builds an optimizer.


def _plain(value: object) -> object:
    """A tensor detached and on the CPU; anything else as it is (checked by the test)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    return value


def _assistant(config: dict, state: dict) -> torch.nn.Module:
    """The support model with the shipped weights (float16 -> float32, as model.load_model
    reads them), in float64."""
    assistant = model_module.AssistantModel(model_module.AssistantConfig(**config))
    assistant.load_state_dict({name: tensor.to(torch.float32) for name, tensor in state.items()},
                              strict=True)
    return assistant.to(torch.float64).eval()


def statement_batch(n: int, persona: str, seed: int, answer: str | None = None) -> dict:
    """The given `statements` with a generator seeded `seed` (asked of the reference only)."""
    generator = torch.Generator().manual_seed(seed)
    tokens, last, labels = probes_module.statements(n, persona, generator, answer=answer)
    return {"tokens": tokens, "last": last, "labels": labels}


def activations(config: dict, state: dict, tokens: torch.Tensor, last: torch.Tensor,
                layers: list[int]) -> torch.Tensor:
    """last_token_activations of the shipped assistant in float64."""
    with torch.no_grad():
        return _plain(probes_module.last_token_activations(_assistant(config, state), tokens,
                                                           last, layers))


def train_logistic(acts: torch.Tensor, labels: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                   options: dict, start_requires_grad: bool = False) -> dict:
    """train_logistic_probe from (w, b) (leaves that require grad, if asked); its results and
    the start afterwards (unchanged?)."""
    w_in, b_in = _start(w, b, start_requires_grad)
    result = probes_module.train_logistic_probe(acts, labels, w_in, b_in, **options)
    return _training(result, w_in, b_in)


def train_ccs(x_plus: torch.Tensor, x_minus: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
              options: dict, start_requires_grad: bool = False) -> dict:
    """train_ccs from (w, b) (leaves that require grad, if asked); its results and the start
    afterwards."""
    w_in, b_in = _start(w, b, start_requires_grad)
    result = probes_module.train_ccs(x_plus, x_minus, w_in, b_in, **options)
    return _training(result, w_in, b_in)


def _start(w: torch.Tensor, b: torch.Tensor,
           requires_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return w.clone().requires_grad_(requires_grad), b.clone().requires_grad_(requires_grad)


def _training(result: object, w_in: torch.Tensor, b_in: torch.Tensor) -> dict:
    if not isinstance(result, tuple) or len(result) != 3:
        return {"returned": type(result).__name__}
    w, b, losses = result
    return {"returned": "tuple", "w": _plain(w), "b": _plain(b),
            "still_require_grad": [name for name, value in (("w", w), ("b", b))
                                   if isinstance(value, torch.Tensor) and value.requires_grad],
            "losses": [float(loss) for loss in losses] if isinstance(losses, list) else None,
            "loss_types": sorted({type(loss).__name__ for loss in losses})
            if isinstance(losses, list) else None,
            "start_w": w_in.detach(), "start_b": b_in.detach()}


def fit_ccs(x_plus: torch.Tensor, x_minus: torch.Tensor, options: dict, seed: int) -> dict:
    """fit_ccs with a generator seeded `seed`; the probe and the generator's next draw."""
    generator = torch.Generator().manual_seed(seed)
    w, b = probes_module.fit_ccs(x_plus, x_minus, generator=generator, **options)
    return {"w": _plain(w), "b": _plain(b),
            "next_draw": float(torch.rand((), generator=generator))}


def _accuracy_of_signs(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The statistic the bootstrap tests resample: this file's own, so that the interval
    depends on bootstrap_interval alone."""
    agree = (scores > 0) == labels
    return agree.sum(dtype=torch.float64) / len(labels)


def _mean_score_of_true(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A statistic whose value differs between almost any two resamples (no ties)."""
    return (scores * labels).sum() / labels.sum().clamp_min(1)


def _accuracy_in_float32(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A statistic in float32, as many a library's is: the docstring's values v are float64."""
    return ((scores > 0) == labels).to(torch.float32).mean()


STATISTICS = {"accuracy": _accuracy_of_signs, "mean_score_of_true": _mean_score_of_true,
              "accuracy in float32": _accuracy_in_float32}


def bootstrap(scores: torch.Tensor, labels: torch.Tensor, statistic: str, options: dict,
              seed: int) -> dict:
    """bootstrap_interval with a generator seeded `seed` and one of STATISTICS."""
    generator = torch.Generator().manual_seed(seed)
    result = probes_module.bootstrap_interval(scores, labels, STATISTICS[statistic],
                                              generator=generator, **options)
    if not isinstance(result, tuple) or len(result) != 2:
        return {"returned": type(result).__name__}
    return {"returned": "tuple", "low": _plain(result[0]), "high": _plain(result[1]),
            "next_draw": float(torch.rand((), generator=generator))}
