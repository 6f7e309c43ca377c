"""Named activations, the way TransformerLens names them, without depending on it.

A model puts a `HookPoint` wherever an activation is worth looking at, as an attribute whose
name starts with `hook_`. The module tree then gives every hook point its TransformerLens
name: `hook_embed`, `blocks.0.attn.hook_pattern`, `blocks.1.hook_resid_post`, ...

    >>> import torch
    >>> from transformer import Transformer, TransformerConfig
    >>> model = Transformer(TransformerConfig(n_heads=4, n_layers=2, init_range=0.5))
    >>> tokens = torch.randint(0, 64, (2, 10))
    >>> logits, cache = run_with_cache(model, tokens)
    >>> cache["blocks.0.attn.hook_pattern"].shape   # (batch, heads, query, key)
    torch.Size([2, 4, 10, 10])
    >>> cache["blocks.1.attn.hook_z"].shape         # (batch, pos, head, d_head)
    torch.Size([2, 10, 4, 16])
    >>> def zero_head(z, name):                     # ablate head 3 of layer 1
    ...     z = z.clone()
    ...     z[:, :, 3] = 0                          # the head is the third dimension of z
    ...     return z
    >>> ablated = run_with_hooks(model, tokens, fwd_hooks=[("blocks.1.attn.hook_z", zero_head)])
    >>> torch.allclose(ablated, logits, atol=1e-6)  # the head mattered
    False

Zeroing head 3's z is zeroing what head 3 writes: the same logits as with its W_O set to 0.

    >>> with torch.no_grad():
    ...     model.blocks[1].attn.W_O[3] = 0
    >>> torch.allclose(ablated, model(tokens), atol=1e-6)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager

import torch
from torch import nn

HookFunction = Callable[[torch.Tensor, str], "torch.Tensor | None"]


class HookPoint(nn.Module):
    """The identity, with a place to read or replace the activation that passes through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """Every hook point of `model`, by its name in the module tree."""
    return {name: module for name, module in model.named_modules()
            if isinstance(module, HookPoint)}


@contextmanager
def hooks(model: nn.Module, fwd_hooks: Iterable[tuple[str, HookFunction]]):
    """Within the block, each `(name, function)` sees the activation at hook point `name` as
    `function(activation, name)`; a tensor it returns replaces the activation."""
    points = hook_points(model)
    handles = []
    try:
        for name, function in fwd_hooks:
            if name not in points:
                raise KeyError(f"the model has no hook point {name!r} "
                               f"(it has: {', '.join(points) or 'none'})")
            handles.append(points[name].register_forward_hook(
                lambda _module, _inputs, output, function=function, name=name:
                    function(output, name)))
        yield model
    finally:
        for handle in handles:
            handle.remove()


def run_with_hooks(model: nn.Module, *args, fwd_hooks: Iterable[tuple[str, HookFunction]],
                   **kwargs):
    """`model(*args, **kwargs)` with the hooks of `fwd_hooks` in place (see `hooks`)."""
    with hooks(model, fwd_hooks):
        return model(*args, **kwargs)


def run_with_cache(model: nn.Module, *args, names: Iterable[str] | None = None, **kwargs):
    """`model(*args, **kwargs)` and a dict of the (detached) activation at every hook point,
    or at the hook points named in `names`."""
    wanted = list(hook_points(model)) if names is None else list(names)
    cache: dict[str, torch.Tensor] = {}

    def store(activation: torch.Tensor, name: str) -> None:
        cache[name] = activation.detach()

    with hooks(model, [(name, store) for name in wanted]):
        output = model(*args, **kwargs)
    return output, cache
