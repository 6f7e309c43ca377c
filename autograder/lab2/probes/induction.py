"""Probes for lab2 part "induction": run in the worker, next to the implementation's
induction.py.

The head-finding and ablation probes run the implementation's functions on the grader's own
attention-only model (`AttentionOnly` below, with TransformerLens hook names and weights the
test builds), so that they do not depend on the submission's transformer.py. Only
`train_induction` uses the submission's `Transformer` and `train`; `trained_model_report`
reads the weights it produced in the implementation's `Transformer` (run on the reference).
"""

import math
import sys
import types
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import induction
import torch
from hooks import HookPoint
from torch import nn

# ----------------------------------------------------------------------------- the grader's model


class Attention(nn.Module):
    def __init__(self, n_heads: int, d_model: int, d_head: int):
        super().__init__()
        self.W_Q = nn.Parameter(torch.zeros(n_heads, d_model, d_head, dtype=torch.float64))
        self.W_K = nn.Parameter(torch.zeros(n_heads, d_model, d_head, dtype=torch.float64))
        self.W_V = nn.Parameter(torch.zeros(n_heads, d_model, d_head, dtype=torch.float64))
        self.W_O = nn.Parameter(torch.zeros(n_heads, d_head, d_model, dtype=torch.float64))
        self.hook_attn_scores = HookPoint()
        self.hook_pattern = HookPoint()
        self.hook_z = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.einsum("bpd,hde->bphe", x, self.W_Q)
        k = torch.einsum("bpd,hde->bphe", x, self.W_K)
        v = torch.einsum("bpd,hde->bphe", x, self.W_V)
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(self.W_Q.shape[-1])
        seq = x.shape[1]
        future = torch.ones(seq, seq, dtype=torch.bool).triu(1)
        scores = self.hook_attn_scores(scores.masked_fill(future, float("-inf")))
        pattern = self.hook_pattern(scores.softmax(dim=-1))
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        return torch.einsum("bqhe,hed->bqd", z, self.W_O)


class Block(nn.Module):
    def __init__(self, n_heads: int, d_model: int, d_head: int):
        super().__init__()
        self.attn = Attention(n_heads, d_model, d_head)
        self.hook_resid_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hook_resid_post(x + self.attn(x))


class AttentionOnly(nn.Module):
    """Two attention-only layers, no LayerNorm, float64: the weights say what every head does."""

    def __init__(self, state: dict):
        super().__init__()
        d_vocab, d_model = state["W_E"].shape
        n_heads, _, d_head = state["blocks.0.attn.W_Q"].shape
        self.W_E = nn.Parameter(torch.zeros(d_vocab, d_model, dtype=torch.float64))
        self.W_pos = nn.Parameter(torch.zeros_like(state["W_pos"], dtype=torch.float64))
        self.W_U = nn.Parameter(torch.zeros(d_model, d_vocab, dtype=torch.float64))
        self.blocks = nn.ModuleList(Block(n_heads, d_model, d_head) for _ in range(2))
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()
        self.load_state_dict(state)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.hook_embed(self.W_E[tokens]) + self.hook_pos_embed(self.W_pos[: tokens.shape[1]])
        for block in self.blocks:
            x = block(x)
        return x @ self.W_U


def _logits(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens)


# ----------------------------------------------------------------------------- probes


def repeated_tokens(batch: int, block_len: int, d_vocab: int, seed: int) -> dict:
    """The tokens, and the generator's next draw after the call (to see how it was used)."""
    generator = torch.Generator().manual_seed(seed)
    tokens = induction.repeated_tokens(batch, block_len, d_vocab, generator)
    return {"tokens": tokens, "next_draw": torch.randint(0, 2**30, (4,), generator=generator)}


def repeated_blocks(batch: int, n_ctx: int, d_vocab: int, seed: int, min_block: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    tokens = induction.repeated_blocks(batch, n_ctx, d_vocab, generator, min_block)
    return {"tokens": tokens, "next_draw": torch.randint(0, 2**30, (4,), generator=generator)}


def head_scores(state: dict, tokens: torch.Tensor) -> dict:
    return induction.head_scores(AttentionOnly(state), tokens)


def ablate_head(state: dict, tokens: torch.Tensor, layer: int, head: int) -> dict:
    """The ablated logits, and the model's logits after the call (a hook left in place, or a
    weight changed, shows there)."""
    model = AttentionOnly(state)
    ablated = induction.ablate_head(model, tokens, layer, head)
    return {"ablated": ablated, "after": _logits(model, tokens)}


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class RecordedConfig:
    """Stands in for transformer.py's TransformerConfig (same fields, same defaults)."""

    d_vocab: int = 64
    n_ctx: int = 64
    d_model: int = 64
    n_heads: int = 4
    d_head: int = 16
    d_mlp: int = 256
    n_layers: int = 2
    layer_norm_eps: float = 1e-5
    init_range: float = 0.02
    attn_only: bool = False


class RecordedTransformer(nn.Module):
    """Stands in for transformer.py's Transformer: remembers its config."""

    def __init__(self, config: RecordedConfig):
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.zeros(1))


@contextmanager
def _recording_transformer(calls: list):
    """transformer.py replaced by recorders, whether induction.py imports it inside a function
    or at the top: `train` draws the batches its arguments ask for and trains nothing."""

    def train(model, batches, *, steps, lr=1e-3, weight_decay=0.0, generator, device="cpu",
              progress=True):
        tokens = [batches(generator) for _ in range(steps)]
        losses = [float(t.double().mean()) for t in tokens]
        calls.append({"model": model, "steps": steps, "lr": lr, "weight_decay": weight_decay,
                      "device": device, "progress": progress, "tokens": tokens,
                      "losses": losses})
        return losses

    fake = types.ModuleType("transformer")
    fake.Transformer, fake.TransformerConfig, fake.train = (RecordedTransformer, RecordedConfig,
                                                            train)
    saved_module = sys.modules.get("transformer")
    saved = {name: getattr(induction, name) for name in ("Transformer", "TransformerConfig",
                                                         "train") if hasattr(induction, name)}
    sys.modules["transformer"] = fake
    for name in saved:
        setattr(induction, name, getattr(fake, name))
    try:
        yield
    finally:
        if saved_module is None:
            sys.modules.pop("transformer", None)
        else:
            sys.modules["transformer"] = saved_module
        for name, value in saved.items():
            setattr(induction, name, value)


def train_induction_plumbing(run: dict, seed: int, device: str, progress: bool) -> dict:
    """What train_induction_model asked of transformer.py: the config it built, the arguments
    it gave `train`, the batches those produced, and what it returned."""
    calls: list = []
    with _recording_transformer(calls):
        result = induction.train_induction_model(induction.InductionRun(**run),
                                                 torch.Generator().manual_seed(seed),
                                                 device=device, progress=progress)
    observation = {"train_calls": len(calls)}
    if len(calls) == 1:
        call = calls[0]
        model = call["model"]
        observation.update(
            config=asdict(model.config) if isinstance(model, RecordedTransformer) else None,
            steps=call["steps"], lr=call["lr"], weight_decay=call["weight_decay"],
            device=call["device"], progress=call["progress"],
            batches=torch.stack(call["tokens"]) if call["tokens"] else torch.zeros(0),
            returned_model_trained=(isinstance(result, (tuple, list)) and len(result) == 2
                                    and result[0] is model),
            returned_losses=(list(result[1]) if isinstance(result, (tuple, list))
                             and len(result) == 2 else None),
            train_losses=call["losses"])
    return observation


def train_induction(run: dict, seed: int) -> dict:
    """Train the implementation's own attention-only Transformer with its own trainer."""
    torch.manual_seed(seed)
    model, losses = induction.train_induction_model(induction.InductionRun(**run),
                                                    torch.Generator().manual_seed(seed),
                                                    progress=False)
    return {"state": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
            "losses": [float(loss) for loss in losses]}


def trained_model_report(state: dict, run: dict, tokens: torch.Tensor) -> dict:
    """Head scores and loss by position of given weights in this implementation's own
    attention-only Transformer (the test runs it on the reference)."""
    from transformer import Transformer, TransformerConfig

    config = TransformerConfig(d_vocab=run["d_vocab"], n_ctx=run["n_ctx"],
                               d_model=run["d_model"], n_heads=run["n_heads"],
                               d_head=run["d_model"] // run["n_heads"], n_layers=run["n_layers"],
                               attn_only=True)
    model = Transformer(config).double()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    wrong = sorted(name for name in expected if name in state
                   and tuple(state[name].shape) != tuple(expected[name].shape))
    if missing or wrong:
        return {"missing": missing, "wrong_shape": wrong}
    model.load_state_dict({name: state[name].double() for name in expected})
    with torch.no_grad():
        logits = model(tokens)
    return {"scores": induction.head_scores(model, tokens),
            "loss_by_position": induction.loss_by_position(logits, tokens)}
