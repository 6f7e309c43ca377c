"""The grokked modular-addition model of Nanda et al. (2023), its data and its checkpoints.

Support code for `modular_addition.py`: nothing to fill in here. The model is the paper's
one-layer transformer (d_model 128, 4 heads of 32, d_mlp 512, ReLU, no LayerNorm, no biases)
reading the three tokens [a, b, =] and predicting (a + b) mod p at the last position. Its
activations carry TransformerLens's hook names (`blocks.0.mlp.hook_post`, ...), so
`hooks.run_with_cache` reads them.

    checkpoint = load_checkpoint()                  # the model this repository trained
    model = checkpoint.model()                      # the final weights, float32
    tokens, labels = all_pairs(checkpoint.config.p)  # all p^2 inputs, a-major order
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from hooks import HookPoint, run_with_cache
from torch import nn

CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "modular_addition.pt"


@dataclass(frozen=True)
class GrokkingConfig:
    """The paper's configuration; every knob of the training run, named once."""

    p: int = 113                  # the modulus; tokens 0..p-1 are numbers, token p is "="
    train_fraction: float = 0.3   # share of the p^2 pairs used for training
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    lr: float = 1e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    epochs: int = 20_000          # at most this many full-batch steps
    overtrain: float = 1.25       # stop at 1.25 x the epoch where test accuracy reached 99%
    seed: int = 0                 # the split, the initial weights
    init_std_scale: float = 0.8   # weights ~ N(0, (init_std_scale / sqrt(d_model))^2)

    @property
    def d_vocab(self) -> int:
        return self.p + 1


def all_pairs(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every input [a, b, =] (shape (p^2, 3), row a * p + b) and its label (a + b) mod p."""
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    tokens = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    return tokens, (a + b) % p


def train_test_split(p: int, train_fraction: float, seed: int) -> torch.Tensor:
    """The row indices (into `all_pairs(p)`) of the training set: a seeded random
    `train_fraction` of the p^2 pairs, sorted. The rest is the test set."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(p * p, generator=generator)
    return order[: int(round(train_fraction * p * p))].sort().values


class Attention(nn.Module):
    def __init__(self, config: GrokkingConfig):
        super().__init__()
        h, d, e = config.n_heads, config.d_model, config.d_head
        self.W_Q = nn.Parameter(torch.empty(h, d, e))
        self.W_K = nn.Parameter(torch.empty(h, d, e))
        self.W_V = nn.Parameter(torch.empty(h, d, e))
        self.W_O = nn.Parameter(torch.empty(h, e, d))
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_attn_scores, self.hook_pattern = HookPoint(), HookPoint()
        self.hook_z = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.hook_q(torch.einsum("bpd,hde->bphe", x, self.W_Q))
        k = self.hook_k(torch.einsum("bpd,hde->bphe", x, self.W_K))
        v = self.hook_v(torch.einsum("bpd,hde->bphe", x, self.W_V))
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(q.shape[-1])
        n = x.shape[1]
        future = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
        scores = self.hook_attn_scores(scores.masked_fill(future, float("-inf")))
        pattern = self.hook_pattern(scores.softmax(dim=-1))
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        return torch.einsum("bqhe,hed->bqd", z, self.W_O)


class MLP(nn.Module):
    def __init__(self, config: GrokkingConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(config.d_model, config.d_mlp))
        self.W_out = nn.Parameter(torch.empty(config.d_mlp, config.d_model))
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        post = self.hook_post(torch.relu(self.hook_pre(x @ self.W_in)))
        return post @ self.W_out


class Block(nn.Module):
    def __init__(self, config: GrokkingConfig):
        super().__init__()
        self.attn = Attention(config)
        self.mlp = MLP(config)
        self.hook_resid_pre, self.hook_attn_out = HookPoint(), HookPoint()
        self.hook_resid_mid, self.hook_mlp_out = HookPoint(), HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        resid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn(resid)))
        return self.hook_resid_post(resid + self.hook_mlp_out(self.mlp(resid)))


class ModularAdditionModel(nn.Module):
    """tokens (batch, 3) -> logits (batch, 3, p). Parameters: `W_E` (p + 1, d_model),
    `W_pos` (3, d_model), `blocks.0.attn.W_Q/W_K/W_V` (heads, d_model, d_head),
    `blocks.0.attn.W_O` (heads, d_head, d_model), `blocks.0.mlp.W_in` (d_model, d_mlp),
    `blocks.0.mlp.W_out` (d_mlp, d_model), `W_U` (d_model, p)."""

    def __init__(self, config: GrokkingConfig):
        super().__init__()
        self.config = config
        self.W_E = nn.Parameter(torch.empty(config.d_vocab, config.d_model))
        self.W_pos = nn.Parameter(torch.empty(3, config.d_model))
        self.blocks = nn.ModuleList([Block(config)])
        self.W_U = nn.Parameter(torch.empty(config.d_model, config.p))
        self.hook_embed, self.hook_pos_embed = HookPoint(), HookPoint()

    def initialise(self, generator: torch.Generator) -> ModularAdditionModel:
        std = self.config.init_std_scale / math.sqrt(self.config.d_model)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
        return self

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        embed = self.hook_embed(self.W_E[tokens])
        resid = embed + self.hook_pos_embed(self.W_pos[: tokens.shape[1]])
        for block in self.blocks:
            resid = block(resid)
        return resid @ self.W_U


@torch.no_grad()
def last_position(model: ModularAdditionModel,
                  chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """The model on all p^2 inputs (`all_pairs` order), read at the "=" position: the logits
    (p^2, p) and the MLP neurons' activations `blocks.0.mlp.hook_post` (p^2, d_mlp). The
    inputs go through `chunk` at a time, and each chunk's last position is copied into the
    result, which keeps the memory small."""
    tokens, _ = all_pairs(model.config.p)
    tokens = tokens.to(model.W_E.device)
    logits = torch.empty(len(tokens), model.config.p, dtype=model.W_U.dtype,
                         device=tokens.device)
    neurons = torch.empty(len(tokens), model.config.d_mlp, dtype=model.W_U.dtype,
                          device=tokens.device)
    for start in range(0, len(tokens), chunk):  # no autograd: the decorator turns it off
        output, cache = run_with_cache(model, tokens[start:start + chunk],
                                       names=["blocks.0.mlp.hook_post"])
        logits[start:start + chunk] = output[:, -1]
        neurons[start:start + chunk] = cache["blocks.0.mlp.hook_post"][:, -1]
        del output, cache
    return logits, neurons


@dataclass(frozen=True)
class Checkpoint:
    """What the training run saved: its config, the training split, the final weights,
    weights along training (`history_epochs`, `history_states`, float16) and the loss and
    accuracy curves (`curves`: epoch, train_loss, test_loss, train_accuracy, test_accuracy)."""

    config: GrokkingConfig
    train_indices: torch.Tensor
    final_state: dict[str, torch.Tensor]
    history_epochs: list[int]
    history_states: list[dict[str, torch.Tensor]]
    curves: dict[str, torch.Tensor]

    def model(self, state: dict[str, torch.Tensor] | None = None,
              dtype: torch.dtype = torch.float32) -> ModularAdditionModel:
        model = ModularAdditionModel(self.config)
        model.load_state_dict({name: tensor.to(dtype) for name, tensor in
                               (state or self.final_state).items()}, strict=True)
        return model.to(dtype)

    def split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(train_indices, test_indices) into `all_pairs(p)`."""
        is_train = torch.zeros(self.config.p ** 2, dtype=torch.bool)
        is_train[self.train_indices] = True
        return self.train_indices, (~is_train).nonzero().flatten()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {key: list(value) if isinstance(value, tuple) else value
                  for key, value in asdict(self.config).items()}
        torch.save({"config": config, "train_indices": self.train_indices.to(torch.int32),
                    "final_state": self.final_state, "history_epochs": self.history_epochs,
                    "history_states": self.history_states, "curves": self.curves}, path)


def load_checkpoint(path: Path = CHECKPOINT) -> Checkpoint:
    data = torch.load(path, weights_only=True)
    config = dict(data["config"])
    config["betas"] = tuple(config["betas"])
    return Checkpoint(config=GrokkingConfig(**config),
                      train_indices=data["train_indices"].long(),
                      final_state=data["final_state"], history_epochs=list(data["history_epochs"]),
                      history_states=list(data["history_states"]), curves=data["curves"])
