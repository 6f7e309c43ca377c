"""Probes for lab2 part "sae": run in the worker, next to the implementation's sae.py. They
build the implementation's SAE from given weights, run a piece of it and return plain tensors.

The decoder is read through `decode`: decode(e_j) - decode(0) is latent j's direction, whether
the implementation stores unit columns in W_dec or normalises W_dec inside decode."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sae as sae_module
import torch
import torch._dynamo  # noqa: F401

# The first torch.optim.Adam imports torch._dynamo, which takes seconds on a busy machine (7 s
# measured under load): importing it here puts that cost in the worker's import time limit,
# not in the time limit of the first probe that builds an optimizer.

NAMES = ("W_enc", "b_enc", "W_dec", "b_dec")  # registration order: Adam's parameter order


def _sae(state: dict, k: int | None, dtype: torch.dtype) -> sae_module.SAE:
    d_in, d_sae = state["W_dec"].shape
    model = sae_module.SAE(d_in, d_sae, k).to(dtype)  # before loading: no float32 rounding
    model.load_state_dict(state, strict=True)
    return model


def _observed(model: sae_module.SAE) -> dict:
    """The parameters as the model uses them: W_dec read through decode."""
    with torch.no_grad():
        eye = torch.eye(model.d_sae, dtype=model.b_dec.dtype, device=model.b_dec.device)
        zero = torch.zeros(1, model.d_sae, dtype=eye.dtype, device=eye.device)
        decoder = (model.decode(eye) - model.decode(zero)).T
    observed = {name: getattr(model, name).detach().cpu().clone()
                for name in ("W_enc", "b_enc", "b_dec")}
    return {**observed, "decoder": decoder.cpu()}


def _non_finite(model: sae_module.SAE) -> list[str]:
    return [name for name in NAMES
            if not bool(torch.isfinite(getattr(model, name).detach()).all())]


@contextlib.contextmanager
def _finite_boundaries(model: sae_module.SAE) -> Iterator[None]:
    """While train_sae runs, each call it makes to train_step and resample_dead_latents (looked
    up in the module's globals, as the docstring's loop calls them) checks that the SAE's
    weights are finite after it. The first call to leave a NaN or inf in weights that were
    finite before is named in a ValueError; otherwise the next function trips over the NaN
    with a message about itself (torch.multinomial: "invalid multinomial distribution")."""
    originals = {name: getattr(sae_module, name, None)
                 for name in ("train_step", "resample_dead_latents")}
    calls = dict.fromkeys(originals, 0)

    def guarded(name: str, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            before = _non_finite(model)
            result = function(*args, **kwargs)
            after = [weight for weight in _non_finite(model) if weight not in before]
            if after:
                raise ValueError(
                    f"train_sae's call number {calls[name]} of {name} left NaN or inf in the "
                    f"SAE's {', '.join(after)}, finite before it: the fault is in {name} (a "
                    "division by a norm of 0? some inputs are all zeros)")
            return result
        return call

    for name, function in originals.items():
        if callable(function):
            setattr(sae_module, name, guarded(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            if callable(function):
                setattr(sae_module, name, function)


def _adam(model: sae_module.SAE, lr: float, moments: dict | None) -> torch.optim.Adam:
    adam = torch.optim.Adam(model.parameters(), lr=lr)
    if moments is not None:
        state = adam.state_dict()
        state["state"] = {index: {"step": torch.tensor(float(moments[name]["step"])),
                                  "exp_avg": moments[name]["exp_avg"].clone(),
                                  "exp_avg_sq": moments[name]["exp_avg_sq"].clone()}
                          for index, name in enumerate(NAMES)}
        adam.load_state_dict(state)
    return adam


def _moments(model: sae_module.SAE, optimizer: torch.optim.Adam) -> dict:
    result = {}
    for name in NAMES:
        state = optimizer.state.get(getattr(model, name), {})
        result[name] = {moment: state[moment].detach().cpu().clone() if moment in state else None
                        for moment in ("exp_avg", "exp_avg_sq")}
    return result


def parameter_shapes(d_in: int, d_sae: int, k: int | None) -> dict:
    model = sae_module.SAE(d_in, d_sae, k)
    return {name: list(value.shape) for name, value in model.state_dict().items()}


def encode(state: dict, k: int | None, x: torch.Tensor) -> torch.Tensor:
    model = _sae(state, k, x.dtype)
    with torch.no_grad():
        return model.encode(x)


def decode(state: dict, latents: torch.Tensor) -> torch.Tensor:
    model = _sae(state, None, latents.dtype)
    with torch.no_grad():
        return model.decode(latents)


def train_steps(state: dict, k: int | None, moments: dict, batches: list[torch.Tensor],
                l1_coefficient: float, lr: float) -> dict:
    """train_step on each batch in turn, from the given weights and Adam state (float64)."""
    model = _sae(state, k, torch.float64)
    optimizer = _adam(model, lr, moments)
    steps = []
    for batch in batches:
        loss = sae_module.train_step(model, optimizer, batch, l1_coefficient)
        steps.append({"loss": float(loss) if isinstance(loss, (int, float)) else None,
                      "loss_type": type(loss).__name__, **_observed(model)})
    return {"steps": steps}


def resample(state: dict, moments: dict, dead: torch.Tensor, inputs: torch.Tensor,
             seed: int) -> dict:
    """resample_dead_latents from given weights and Adam state (float64); the parameters and
    the Adam moments afterwards."""
    model = _sae(state, None, torch.float64)
    optimizer = _adam(model, 1e-3, moments)
    generator = torch.Generator().manual_seed(seed)
    sae_module.resample_dead_latents(model, optimizer, dead, inputs, generator)
    return {**_observed(model), "moments": _moments(model, optimizer),
            "next_draw": float(torch.rand((), generator=generator))}


def train_loop(state: dict, k: int | None, activations: torch.Tensor, options: dict,
               seed: int, device: str) -> dict:
    """train_sae from given float64 weights; its history, the final parameters and the devices
    the SAE was moved to."""
    model = _sae(state, k, torch.float64)
    moved: list[str] = []
    original_to = model.to

    def recording_to(*args: Any, **kwargs: Any) -> Any:
        target = kwargs.get("device", args[0] if args else None)
        if isinstance(target, (str, torch.device)):
            moved.append(str(torch.device(target)))
        return original_to(*args, **kwargs)

    model.to = recording_to
    generator = torch.Generator().manual_seed(seed)
    with _finite_boundaries(model):
        history = sae_module.train_sae(model, activations, generator=generator,
                                       device=device, **options)
    losses = history.get("losses") if isinstance(history, dict) else None
    dead = history.get("dead") if isinstance(history, dict) else None
    return {"losses": [float(loss) for loss in losses] if isinstance(losses, list) else None,
            "loss_types": sorted({type(loss).__name__ for loss in losses})
            if isinstance(losses, list) else None,
            "dead": [int(count) for count in dead] if isinstance(dead, list) else None,
            "dead_types": sorted({type(count).__name__ for count in dead})
            if isinstance(dead, list) else None,
            **_observed(model), "moved_to": moved}


def train_outcome(states: list[dict], k: int | None, activations: torch.Tensor, options: dict,
                  seeds: list[int]) -> list[dict]:
    """The implementation's own training of one SAE per (float32 weights, seed): the trained
    parameters, the latents its encode gives on the activations and the numbers of dead
    latents that train_sae reports."""
    results = []
    for state, seed in zip(states, seeds, strict=True):
        model = _sae(state, k, torch.float32)
        generator = torch.Generator().manual_seed(seed)
        with _finite_boundaries(model):
            history = sae_module.train_sae(model, activations, generator=generator, **options)
        with torch.no_grad():
            latents = model.encode(activations)
        dead = history.get("dead") if isinstance(history, dict) else None
        results.append({**_observed(model), "latents": latents,
                        "dead": [int(count) for count in dead] if isinstance(dead, list)
                        else None})
    return results
