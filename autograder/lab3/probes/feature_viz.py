"""Probes for lab3 part "feature_viz": run in the worker, next to the implementation's
feature_viz.py (and the support file cnn.py). They build the CNN from weights the test sends,
run a piece of the part and return plain tensors and numbers."""

from __future__ import annotations

import cnn
import feature_viz
import torch
import torch._dynamo  # noqa: F401

# The first torch.optim.Adam imports torch._dynamo, which takes seconds on a busy machine:
# importing it here puts that cost in the worker's import time limit, not in a probe's.


def _model(state: dict, dtype: torch.dtype) -> cnn.FeatureCNN:
    return cnn.load_model(state=state, dtype=dtype)


def _config(config: dict) -> feature_viz.VisualisationConfig:
    return feature_viz.VisualisationConfig(**config)


def top_examples(state: dict, images: torch.Tensor, layer: str, channel: int, k: int) -> dict:
    values, indices = feature_viz.top_examples(_model(state, images.dtype), images, layer,
                                               channel, k)
    return {"values": values, "indices": indices}


def random_jitter(images: torch.Tensor, max_shift: int, seed: int) -> dict:
    """The jittered images, the input afterwards, and the generator's next draws."""
    generator = torch.Generator().manual_seed(seed)
    source = images.clone().requires_grad_()
    jittered = feature_viz.random_jitter(source, max_shift, generator)
    gradient = None
    if torch.is_tensor(jittered) and jittered.requires_grad:
        weights = torch.arange(jittered.numel(), dtype=images.dtype).reshape(jittered.shape)
        gradient = torch.autograd.grad((jittered * weights).sum(), source)[0]
    return {"jittered": jittered.detach() if torch.is_tensor(jittered) else jittered,
            "gradient": gradient, "input_after": source.detach(),
            "next_draw": torch.randint(0, 2**30, (4,), generator=generator)}


def visualisation_loss(state: dict, images: torch.Tensor, config: dict, seed: int) -> dict:
    """The loss, its gradient with respect to the images, and the generator's next draws."""
    generator = torch.Generator().manual_seed(seed)
    source = images.clone().requires_grad_()
    loss = feature_viz.visualisation_loss(_model(state, images.dtype), source, _config(config),
                                          generator)
    gradient = None
    if torch.is_tensor(loss) and loss.requires_grad and loss.numel() == 1:
        gradient = torch.autograd.grad(loss, source)[0]
    return {"loss": loss.detach() if torch.is_tensor(loss) else loss, "gradient": gradient,
            "next_draw": torch.randint(0, 2**30, (4,), generator=generator)}


def optimisation_steps(state: dict, spectrum: torch.Tensor, config: dict, seed: int,
                       steps: int) -> dict:
    """`steps` optimisation_steps with one Adam and one generator: the losses returned, the
    spectrum after each step, and the generator's next draws."""
    generator = torch.Generator().manual_seed(seed)
    model = _model(state, spectrum.dtype)
    parameter = spectrum.clone().requires_grad_()
    optimizer = torch.optim.Adam([parameter], lr=config["lr"])
    losses, spectra = [], []
    for _ in range(steps):
        loss = feature_viz.optimisation_step(model, parameter, optimizer, _config(config),
                                             generator)
        # The docstring promises a Python float: anything else (a tensor, None) is shown to
        # the test as its repr, cut short.
        losses.append(loss if isinstance(loss, float) else repr(loss)[:120])
        spectra.append(parameter.detach().clone())
    return {"losses": losses, "spectra": spectra,
            "next_draw": torch.randint(0, 2**30, (4,), generator=generator)}


def visualise(state: dict, config: dict, seed: int, dtype_name: str = "float64") -> dict:
    """The images `visualise` returns for a generator seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    dtype = getattr(torch, dtype_name)
    images = feature_viz.visualise(_model(state, dtype), _config(config), generator, dtype)
    return {"images": images.detach() if torch.is_tensor(images) else images,
            "next_draw": torch.randint(0, 2**30, (4,), generator=generator)}
