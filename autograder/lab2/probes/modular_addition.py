"""Probes for lab2 part "modular_addition": run in the worker, next to the implementation's
modular_addition.py and the support file grokking.py (the model, unchanged)."""

import ctypes
import gc

import grokking
import modular_addition
import torch


def _model(config: dict, state: dict, dtype: torch.dtype) -> grokking.ModularAdditionModel:
    config = {**config, "betas": tuple(config["betas"])}
    model = grokking.ModularAdditionModel(grokking.GrokkingConfig(**config))
    model.load_state_dict({name: tensor.to(dtype) for name, tensor in state.items()},
                          strict=True)
    return model.to(dtype)


def _give_back_freed_memory() -> None:
    """Return to the system what earlier calls of this worker freed (the buffers of a 26 MB
    answer, say): glibc keeps freed blocks under 32 MB for reuse, and the grading of a lab is
    budgeted at 1 GiB for all its processes together. Nothing happens where there is no glibc."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # no C library to load, or not glibc
        pass


def logits(config: dict, state: dict) -> torch.Tensor:
    """The support model with `state` on all p^2 inputs: the logits at the "=" position
    (float32, as the model runs), the same numbers as `grokking.last_position`'s, without its
    26 MB of neurons (computed 512 inputs at a time, as there)."""
    _give_back_freed_memory()
    model = _model(config, state, torch.float32)
    tokens, _ = grokking.all_pairs(model.config.p)
    result = torch.empty(len(tokens), model.config.p, dtype=model.W_U.dtype)
    with torch.no_grad():
        for start in range(0, len(tokens), 512):
            result[start:start + 512] = model(tokens[start:start + 512])[:, -1]
    return result


def neurons(config: dict, state: dict) -> torch.Tensor:
    """The support model with `state` on all p^2 inputs: the MLP neurons' activations at the
    "=" position (float32)."""
    return grokking.last_position(_model(config, state, torch.float32))[1]


def neuron_clusters(config: dict, state: dict) -> tuple:
    """`neuron_frequencies` on what `neurons` returns, in one call: for the reference, whose
    neurons then need not cross the process boundary again (26 MB at p = 113)."""
    _give_back_freed_memory()
    return modular_addition.neuron_frequencies(neurons(config, state))


def train_steps(config: dict, state: dict, moments: dict, step: int, tokens: torch.Tensor,
                labels: torch.Tensor, steps: int) -> dict:
    """`steps` calls of the implementation's train_step in float64, from the weights `state`
    and an AdamW state whose step count is `step` and whose (exp_avg, exp_avg_sq) are
    `moments[name]` for each parameter."""
    model = _model(config, state, torch.float64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"],
                                  weight_decay=config["weight_decay"],
                                  betas=tuple(config["betas"]))
    for name, parameter in model.named_parameters():
        exp_avg, exp_avg_sq = moments[name]
        optimizer.state[parameter] = {"step": torch.tensor(float(step)),
                                      "exp_avg": exp_avg.clone(),
                                      "exp_avg_sq": exp_avg_sq.clone()}
    losses = [modular_addition.train_step(model, optimizer, tokens, labels)
              for _ in range(steps)]
    return {"losses": [float(loss) for loss in losses],
            "loss_types": sorted({type(loss).__name__ for loss in losses}),
            "state": {name: tensor.detach() for name, tensor in model.state_dict().items()}}
