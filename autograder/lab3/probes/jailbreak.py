"""Probes for lab3 part "jailbreak": run in the worker, next to the implementation's
jailbreak.py and the support files model.py, dialogue.py and hooks.py.

Every probe builds the assistant (model.py's `AssistantModel`, support code) from a config
and weights the test hands it, in float64: random weights drawn at grade time for the unit
tests, the shipped checkpoint's weights for the outcome tests. A generator crosses the process
boundary as a seed, and each probe that hands one out reports its next draw afterwards, so
the test sees how often it was used.
"""

from __future__ import annotations

import jailbreak
import torch
from model import AssistantConfig, AssistantModel


def _model(config: dict, state: dict) -> AssistantModel:
    model = AssistantModel(AssistantConfig(**config)).to(torch.float64)
    model.load_state_dict({name: tensor.to(torch.float64) for name, tensor in state.items()},
                          strict=True)
    return model.eval()


def _plain(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    return value


def _logits(model: AssistantModel, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens)


def _next_draw(generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2**30, (4,), generator=generator)


# ----------------------------------------------------------------------------- the direction


def last_token_resid(config: dict, state: dict, tokens: torch.Tensor,
                     last: torch.Tensor) -> object:
    return _plain(jailbreak.last_token_resid(_model(config, state), tokens, last))


def project_out(x: torch.Tensor, direction: torch.Tensor) -> dict:
    """The projection, and x and the direction after the call (left unchanged?)."""
    x_in, direction_in = x.clone(), direction.clone()
    out = jailbreak.project_out(x_in, direction_in)
    return {"out": _plain(out), "x_after": x_in, "direction_after": direction_in}


def ablated_logits(config: dict, state: dict, tokens: torch.Tensor, direction: torch.Tensor,
                   value: float) -> dict:
    """The ablated logits, and the model's logits after the call (a hook left in place or a
    weight changed shows there)."""
    model = _model(config, state)
    out = jailbreak.ablated_logits(model, tokens, direction, value)
    return {"logits": _plain(out), "after": _logits(model, tokens)}


def added_logits(config: dict, state: dict, tokens: torch.Tensor, direction: torch.Tensor,
                 layer: int) -> dict:
    model = _model(config, state)
    out = jailbreak.added_logits(model, tokens, direction, layer)
    return {"logits": _plain(out), "after": _logits(model, tokens)}


def orthogonalised_model(config: dict, state: dict, tokens: torch.Tensor,
                         direction: torch.Tensor, value: float) -> dict:
    """The logits of the orthogonalised copy (run here, with no hook of the implementation's
    in place), of the given model after the call, and the copy's weights."""
    model = _model(config, state)
    new = jailbreak.orthogonalised_model(model, direction, value)
    if not isinstance(new, torch.nn.Module):
        return {"returned": type(new).__name__}
    for point in new.modules():  # hooks left on the copy would do the work, not its weights
        point._forward_hooks.clear()
        point._forward_pre_hooks.clear()
    return {"returned": "module", "logits": _logits(new, tokens),
            "after": _logits(model, tokens),
            "state": {name: _plain(tensor) for name, tensor in new.state_dict().items()}}


def select_layer(config: dict, state: dict, tokens: torch.Tensor, last: torch.Tensor,
                 directions: torch.Tensor, values: torch.Tensor) -> dict:
    layer, means = jailbreak.select_layer(_model(config, state), tokens, last, directions,
                                          values)
    return {"layer": layer, "layer_type": type(layer).__name__, "means": _plain(means)}


# ----------------------------------------------------------------------------- GCG


def target_loss(config: dict, state: dict, prompts: torch.Tensor, target: torch.Tensor) -> dict:
    """The losses, and the gradient of their sum with respect to the unembedding and the
    embedding (None when no gradient flows)."""
    model = _model(config, state)
    loss = jailbreak.target_loss(model, prompts, target)
    gradients = {"W_U": None, "W_E": None}
    if isinstance(loss, torch.Tensor) and loss.requires_grad:
        got = torch.autograd.grad(loss.sum(), [model.unembed.W_U, model.embed.W_E],
                                  allow_unused=True)
        gradients = dict(zip(gradients, got, strict=True))
    return {"loss": _plain(loss), "gradients": gradients}


def token_gradients(config: dict, state: dict, prefix: torch.Tensor, suffix: torch.Tensor,
                    post: torch.Tensor, target: torch.Tensor) -> dict:
    """The gradient, the names of the model's parameters left holding a .grad, and whether
    the suffix was left unchanged."""
    model = _model(config, state)
    suffix_in = suffix.clone()
    gradient = jailbreak.token_gradients(model, prefix, suffix_in, post, target)
    return {"gradient": _plain(gradient),
            "grads_left": sorted(name for name, p in model.named_parameters()
                                 if p.grad is not None and bool(p.grad.abs().sum() > 0)),
            "suffix_after": suffix_in}


def sample_candidates(suffix: torch.Tensor, substitutions: torch.Tensor, batch: int,
                      seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    suffix_in = suffix.clone()
    out = jailbreak.sample_candidates(suffix_in, substitutions, batch, generator)
    return {"candidates": _plain(out), "suffix_after": suffix_in,
            "next_draw": _next_draw(generator)}


def gcg_step(config: dict, state: dict, prefix: torch.Tensor, suffix: torch.Tensor,
             post: torch.Tensor, target: torch.Tensor, k: int, batch: int, seed: int,
             allowed: torch.Tensor) -> dict:
    generator = torch.Generator().manual_seed(seed)
    result = jailbreak.gcg_step(_model(config, state), prefix, suffix.clone(), post, target, k,
                                batch, generator, allowed)
    if not isinstance(result, tuple) or len(result) != 2:
        return {"returned": type(result).__name__}
    new, loss = result
    return {"returned": "tuple", "suffix": _plain(new), "loss": _plain(loss),
            "next_draw": _next_draw(generator)}


# ----------------------------------------------------------------------------- outcomes


def gcg_attacks(config: dict, state: dict, prefixes: list[torch.Tensor],
                starts: list[torch.Tensor], post: torch.Tensor, target: torch.Tensor,
                options: dict, seed: int, allowed: torch.Tensor) -> dict:
    """For each prompt, up to options["steps"] steps of the implementation's gcg_step (one
    generator for all), stopping once the kept suffix makes the target's first token the most
    likely reply; the suffix with the lowest loss seen ("found") and every suffix the steps
    returned, from the start on ("paths": a GCG step changes one token at most). The loop is
    the grader's (the same as jailbreak.gcg_attack), so only gcg_step is the
    implementation's."""
    model = _model(config, state)
    generator = torch.Generator().manual_seed(seed)
    found, paths = [], []
    for prefix, suffix in zip(prefixes, starts, strict=True):
        best, best_loss = suffix, float("inf")
        path = [_plain(suffix)]
        for _ in range(options["steps"]):
            suffix, loss = jailbreak.gcg_step(model, prefix, suffix, post, target, options["k"],
                                              options["batch"], generator, allowed)
            path.append(_plain(suffix))
            if float(loss) < best_loss:
                best, best_loss = suffix, float(loss)
            first = _logits(model, torch.cat([prefix, best, post])[None])[0, -1].argmax()
            if int(first) == int(target[0]):
                break
        found.append(_plain(best))
        paths.append(path)
    return {"found": found, "paths": paths}


def first_reply_tokens(config: dict, state: dict, prompts: torch.Tensor) -> object:
    """The model's most likely first reply token after each whole prompt (batch, len)."""
    return _logits(_model(config, state), prompts)[:, -1].argmax(dim=-1)


# ----------------------------------------------------------------------------- the trained model


def found_directions(config: dict, state: dict, harmful: torch.Tensor,
                     harmful_last: torch.Tensor, harmless: torch.Tensor,
                     harmless_last: torch.Tensor) -> dict:
    """The implementation's candidate directions on the trained model (last_token_resid, then
    refusal_directions), and the harmless prompts' mean component along each (computed here,
    as the support code's held_values does): what select_layer needs, which the grader runs
    with the reference's code."""
    model = _model(config, state)
    acts_harmless = jailbreak.last_token_resid(model, harmless, harmless_last)
    directions = jailbreak.refusal_directions(
        jailbreak.last_token_resid(model, harmful, harmful_last), acts_harmless)
    values = (acts_harmless.mean(dim=1) * directions).sum(dim=-1) / directions.norm(dim=-1)
    return {"directions": _plain(directions), "values": _plain(values)}
