"""Probes for lab2 part "transformer": run in the worker, next to the implementation's
transformer.py (and the support file hooks.py)."""

import hooks
import torch
import transformer
from torch import nn

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _module(name: str, config: dict, state: dict, dtype: str) -> nn.Module:
    """The implementation's module `name`, built from `config`, with weights `state` loaded
    strictly and cast to `dtype`."""
    module = getattr(transformer, name)(transformer.TransformerConfig(**config))
    module.to(DTYPES[dtype]).load_state_dict(state, strict=True)
    return module


def parameter_shapes(name: str, config: dict) -> dict:
    """{parameter name: shape} of module `name` (a class of transformer.py) built from
    `config`."""
    module = getattr(transformer, name)(transformer.TransformerConfig(**config))
    return {key: list(value.shape) for key, value in module.state_dict().items()}


def module_forward(name: str, config: dict, state: dict, x: torch.Tensor, dtype: str) -> dict:
    """The output of module `name` with weights `state` on input `x` (floats cast to `dtype`,
    tokens as they are), and every activation at its hook points, in the order they were
    seen (forward order)."""
    module = _module(name, config, state, dtype)
    if x.is_floating_point():
        x = x.to(DTYPES[dtype])
    with torch.no_grad():
        output, cache = hooks.run_with_cache(module, x)
    return {"output": output, "cache": cache}


def loss_with_gradient(logits: torch.Tensor, tokens: torch.Tensor) -> dict:
    """`next_token_loss(logits, tokens)` and its gradient with respect to the logits (None when
    the loss is not a tensor connected to them, so that nothing can backpropagate through it)."""
    logits = logits.clone().requires_grad_()
    loss = transformer.next_token_loss(logits, tokens)
    gradient = None
    if torch.is_tensor(loss) and loss.requires_grad and loss.numel() == 1:
        gradient = torch.autograd.grad(loss.sum(), logits, allow_unused=True)[0]
    return {"loss": loss.detach() if torch.is_tensor(loss) else loss, "gradient": gradient}


def _losses(losses) -> list[float]:
    """train's return value as floats, or a sentence saying what it returned instead."""
    if not isinstance(losses, (list, tuple)):
        raise TypeError(f"train returned a {type(losses).__name__}; return the list of every "
                        "step's loss as Python floats")
    return [float(loss) for loss in losses]


class _Bigram(nn.Module):
    """A stand-in model for the training tests, so that they need no Transformer: the logits
    at each position are a learned function of that position's token."""

    def __init__(self, table: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.table = nn.Parameter(table.clone())
        self.bias = nn.Parameter(bias.clone())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table[tokens] + self.bias


def train_steps(table: torch.Tensor, bias: torch.Tensor, *, steps: int, batch: int, pos: int,
                lr: float, weight_decay: float, seed: int) -> dict:
    """A few steps of the implementation's `train` on a bigram model with the given weights
    (float64), on uniformly random tokens that the batch function draws from the generator it
    is given."""
    model = _Bigram(table, bias)
    calls = []

    def batches(generator: torch.Generator) -> torch.Tensor:
        calls.append(generator)
        return torch.randint(0, table.shape[0], (batch, pos), generator=generator)

    generator = torch.Generator().manual_seed(seed)
    losses = transformer.train(model, batches, steps=steps, lr=lr, weight_decay=weight_decay,
                               generator=generator, device="cpu", progress=False)
    return {"losses": _losses(losses),
            "loss_types": sorted({type(loss).__name__ for loss in losses}),
            "batch_calls": len(calls),
            "given_generator": all(g is generator for g in calls),
            "state": {key: value.detach() for key, value in model.state_dict().items()}}


class _Stop(Exception):
    """Raised from the first forward pass, once the devices are recorded."""


def train_devices(d_vocab: int, device: str) -> dict:
    """Where the implementation's `train(..., device=device)` puts the model's parameters and
    the tokens of the first forward pass (training stops there)."""
    model = _Bigram(torch.zeros(d_vocab, d_vocab), torch.zeros(d_vocab))
    seen = {}

    def record(module: nn.Module, args: tuple) -> None:
        seen["tokens"] = str(args[0].device) if args and torch.is_tensor(args[0]) else "none"
        seen["parameters"] = sorted({str(p.device) for p in module.parameters()})
        raise _Stop

    model.register_forward_pre_hook(record)

    def batches(generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, d_vocab, (2, 4), generator=generator)

    try:
        transformer.train(model, batches, steps=2, generator=torch.Generator().manual_seed(0),
                          device=device, progress=False)
    except _Stop:
        pass
    return seen


def train_on_language(transition: torch.Tensor, start: torch.Tensor, eval_tokens: torch.Tensor,
                      *, steps: int, batch: int, pos: int, lr: float, seed: int) -> dict:
    """The implementation's `train` run in full (progress bar on) on a bigram model that
    starts at zero, on sequences of the Markov chain `transition`; then the trained model's
    logits on `eval_tokens`."""
    d_vocab = transition.shape[0]
    model = _Bigram(torch.zeros(d_vocab, d_vocab), torch.zeros(d_vocab))

    def batches(generator: torch.Generator) -> torch.Tensor:
        return transformer.markov_sequences(transition, start, batch, pos, generator)

    losses = transformer.train(model, batches, steps=steps, lr=lr,
                               generator=torch.Generator().manual_seed(seed), device="cpu")
    model.cpu()
    with torch.no_grad():
        logits = model(eval_tokens)
    return {"losses": _losses(losses), "logits": logits}


def language(d_vocab: int, branching: int, seed: int, batch: int, pos: int) -> dict:
    """A Markov chain drawn at `seed`, its stationary distribution, entropy rate, and `batch`
    sequences of length `pos` from it."""
    generator = torch.Generator().manual_seed(seed)
    transition = transformer.random_transition_matrix(d_vocab, branching, generator)
    start = transformer.stationary_distribution(transition)
    return {"transition": transition, "start": start,
            "entropy_rate": transformer.entropy_rate(transition),
            "tokens": transformer.markov_sequences(transition, start, batch, pos, generator)}


def filter_logits(function: str, logits: torch.Tensor, argument: float) -> dict:
    """`function(logits, argument)` (top_k_filter or top_p_filter), and the logits afterwards
    (a filter must not change its input)."""
    original = logits.clone()
    output = getattr(transformer, function)(logits, argument)
    return {"output": output, "input_changed": not torch.equal(logits, original)}


def sample_draws(logits: torch.Tensor, seed: int, options: dict) -> dict:
    """sample_next_token on `logits` twice from generators seeded alike, with the global
    random number generators seeded differently before each call."""
    draws = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        generator = torch.Generator().manual_seed(seed)
        draws.append(transformer.sample_next_token(logits, generator, **options))
    return {"first": draws[0], "second": draws[1]}


class _StandInModel(nn.Module):
    """A small model for testing `generate` on its own: the logits at each position depend on
    that token, on the first token the model was given and on the position."""

    def __init__(self, n_ctx: int, weights: dict):
        super().__init__()
        self.config = transformer.TransformerConfig(d_vocab=weights["token"].shape[0],
                                                    n_ctx=n_ctx)
        self.token = nn.Parameter(weights["token"])
        self.first = nn.Parameter(weights["first"])
        self.position = nn.Parameter(weights["position"])
        self.lengths = []

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.lengths.append(tokens.shape[1])
        positions = torch.arange(tokens.shape[1]) % self.position.shape[0]
        return self.token[tokens] + self.first[tokens[:, :1]] + self.position[positions]


def generate_with_recorded_sampler(n_ctx: int, weights: dict, prompt: torch.Tensor,
                                   max_new_tokens: int, options: dict) -> dict:
    """`generate` on a stand-in model, with `sample_next_token` replaced by a recorder that
    picks each row's second most likely token: the tokens, the lengths the model was run on,
    and the logits and options each sampler call got."""
    model = _StandInModel(n_ctx, weights)
    generator = torch.Generator().manual_seed(0)
    calls = []

    def recorder(logits, generator_given, temperature=1.0, top_k=None, top_p=None):
        calls.append({"logits": logits.detach().clone(), "temperature": float(temperature),
                      "top_k": top_k, "top_p": top_p,
                      "generator": generator_given is generator})
        return logits.argsort(dim=-1, descending=True)[:, 1]

    real = transformer.sample_next_token
    transformer.sample_next_token = recorder
    try:
        tokens = transformer.generate(model, prompt, max_new_tokens, generator, **options)
    finally:
        transformer.sample_next_token = real
    return {"tokens": tokens, "lengths": model.lengths, "calls": calls}
