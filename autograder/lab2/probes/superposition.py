"""Probes for lab2 part "superposition": run in the worker, next to the implementation's
superposition.py. They build the implementation's ToyModel from given weights, run a piece of
it and return plain tensors and numbers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import superposition
import torch
import torch._dynamo  # noqa: F401

# The first torch.optim.Adam imports torch._dynamo, which takes seconds on a busy machine (7 s
# measured under load): importing it here puts that cost in the worker's import time limit,
# not in the time limit of the first probe that builds an optimizer.


def _model(state: dict, dtype: torch.dtype) -> superposition.ToyModel:
    n_instances, n_hidden, n_features = state["W"].shape
    model = superposition.ToyModel(n_instances, n_features, n_hidden).to(dtype)  # no rounding
    model.load_state_dict(state, strict=True)
    return model


def _weights(model: torch.nn.Module) -> dict:
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}


def parameter_shapes(n_instances: int, n_features: int, n_hidden: int) -> dict:
    model = superposition.ToyModel(n_instances, n_features, n_hidden)
    return {name: list(value.shape) for name, value in model.state_dict().items()}


def batch(batch_size: int, sparsity: torch.Tensor, n_features: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return superposition.generate_batch(batch_size, sparsity, n_features, generator)


def batch_device(batch_size: int, sparsity: torch.Tensor, n_features: int, seed: int,
                 device: str) -> dict:
    """Where generate_batch puts its batch, and its shape (for the meta device, which holds no
    data to send)."""
    generator = torch.Generator().manual_seed(seed)
    out = superposition.generate_batch(batch_size, sparsity, n_features, generator, device)
    if not isinstance(out, torch.Tensor):
        return {"device": None, "shape": None}
    return {"device": str(out.device), "shape": list(out.shape)}


def forward(state: dict, features: torch.Tensor) -> torch.Tensor:
    model = _model(state, features.dtype)
    with torch.no_grad():
        return model(features)


def _adam(model: torch.nn.Module, lr: float, moments: list[dict] | None) -> torch.optim.Adam:
    """Adam over (W, b_final), in that order, with the given first and second moments and
    step count for each parameter (None: a fresh optimiser)."""
    optimizer = torch.optim.Adam([model.W, model.b_final], lr=lr)
    if moments is not None:
        state = optimizer.state_dict()
        state["state"] = {index: {"step": torch.tensor(float(moment["step"])),
                                  "exp_avg": moment["exp_avg"].clone(),
                                  "exp_avg_sq": moment["exp_avg_sq"].clone()}
                          for index, moment in enumerate(moments)}
        optimizer.load_state_dict(state)
    return optimizer


def train_steps(state: dict, moments: list[dict], batches: list[torch.Tensor],
                importance: torch.Tensor, lr: float) -> dict:
    """train_step on each batch in turn, from the given weights and Adam state (float64)."""
    model = _model(state, torch.float64)
    optimizer = _adam(model, lr, moments)
    steps = []
    for features in batches:
        loss = superposition.train_step(model, optimizer, features, importance)
        steps.append({"loss": float(loss) if isinstance(loss, (int, float)) else None,
                      "loss_type": type(loss).__name__, **_weights(model)})
    return {"steps": steps}


@contextmanager
def _feeding(batches: list[torch.Tensor]) -> Iterator[list[dict]]:
    """Swap generate_batch for one that hands out `batches` in order and records its calls."""
    calls: list[dict] = []
    original = superposition.generate_batch

    def fake_generate_batch(batch_size: Any, sparsity: Any, n_features: Any, generator: Any,
                            device: Any = "cpu") -> torch.Tensor:
        calls.append({"batch_size": batch_size if isinstance(batch_size, int) else None,
                      "sparsity": torch.as_tensor(sparsity).detach().cpu().clone(),
                      "n_features": n_features if isinstance(n_features, int) else None,
                      "generator_passed_on": generator is given_generator[0],
                      "device": str(torch.device(device))})
        return batches[min(len(calls), len(batches)) - 1].to(device)

    given_generator: list[torch.Generator | None] = [None]
    superposition.generate_batch = fake_generate_batch
    try:
        yield calls, given_generator
    finally:
        superposition.generate_batch = original


def train_loop(state: dict, sparsity: torch.Tensor, importance: torch.Tensor,
               batches: list[torch.Tensor], batch_size: int, lr: float, device: str) -> dict:
    """train_toy_model from given float64 weights, with generate_batch replaced by a feeder of
    the given batches; returns its losses, the final weights, how it asked for batches and
    the devices it moved the model to."""
    model = _model(state, torch.float64)
    moved: list[str] = []
    original_to = model.to

    def recording_to(*args: Any, **kwargs: Any) -> Any:
        target = kwargs.get("device", args[0] if args else None)
        if isinstance(target, (str, torch.device)):
            moved.append(str(torch.device(target)))
        return original_to(*args, **kwargs)

    model.to = recording_to
    with _feeding(batches) as (calls, given_generator):
        generator = torch.Generator().manual_seed(0)
        given_generator[0] = generator
        losses = superposition.train_toy_model(
            model, sparsity, importance, steps=len(batches), batch_size=batch_size, lr=lr,
            generator=generator, device=device)
    return {"losses": [float(loss) for loss in losses] if isinstance(losses, list) else None,
            "weights": _weights(model), "calls": calls, "moved_to": moved}


def train_geometry(state: dict, sparsity: torch.Tensor, importance: torch.Tensor, steps: int,
                   batch_size: int, lr: float, seed: int) -> dict:
    """The implementation's own training (its generate_batch, loss and train_toy_model) from
    given float32 weights; returns the trained weights."""
    model = _model(state, torch.float32)
    generator = torch.Generator().manual_seed(seed)
    superposition.train_toy_model(model, sparsity, importance, steps=steps,
                                  batch_size=batch_size, lr=lr, generator=generator)
    return _weights(model)
