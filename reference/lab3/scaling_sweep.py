"""The scaling sweep: tiny transformers of several widths trained for several token budgets
on a Markov-chain language whose best possible loss is known exactly.

Support code for `scaling.py`: nothing to fill in here. The repository ran it once and ships
its results, `scaling_sweep.json` (every run's parameter count N, tokens D and final loss L,
plus the language's entropy rate); `load_sweep()` reads them. To run the sweep again
(about 17 minutes on one CPU thread; see the handout):

    python scaling_sweep.py --threads 1

The language: a seeded Markov chain over `VOCAB` tokens in which each token has `BRANCHING`
possible successors with random probabilities. Sequences start from the chain's stationary
distribution, so every next-token prediction is conditioned on a previous token and the
chain's entropy rate H = -sum_i pi_i sum_j P_ij log P_ij is the best loss any model can reach.
A model of width d can only write logits of rank d, so narrow models cannot represent the
chain (a capacity floor that falls with N), and every run sees D fresh tokens, never one twice
(a data term that falls with D). Each run has its own cosine schedule, decayed over its own
budget, as in Hoffmann et al. (2022).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

RESULTS = Path(__file__).resolve().parent / "scaling_sweep.json"


@dataclass(frozen=True)
class SweepConfig:
    """Every knob of the sweep, named once."""

    language_seed: int = 3
    vocab: int = 64               # tokens of the Markov chain
    branching: int = 4            # possible successors of each token
    n_ctx: int = 32               # sequence length
    batch: int = 16               # sequences per step: 512 tokens per step
    widths: tuple[int, ...] = (4, 8, 16, 32, 64)                 # d_model of the runs
    steps: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096, 8192)  # budgets, in steps
    lr: float = 1e-2              # AdamW peak learning rate
    warmup_fraction: float = 0.05
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.0
    eval_sequences: int = 1024    # fresh sequences every run is evaluated on (the same ones)
    init_seed: int = 0            # each run's weights and batches: init_seed + width

    @property
    def tokens_per_step(self) -> int:
        return self.batch * self.n_ctx


# ----------------------------------------------------------------------------- the language


def transition_matrix(config: SweepConfig) -> torch.Tensor:
    """The chain (vocab, vocab), float64: row i is the distribution of the token after i.
    Token i's successors are i + 1 (so that every token is reachable), i itself for token 0
    (so that the chain is aperiodic) and random others, with Exp(1)-distributed weights."""
    generator = torch.Generator().manual_seed(config.language_seed)
    vocab = config.vocab
    transition = torch.zeros(vocab, vocab, dtype=torch.float64)
    for token in range(vocab):
        others = torch.randperm(vocab, generator=generator).tolist()
        successors = list(dict.fromkeys([(token + 1) % vocab, *([0] if token == 0 else []),
                                         *others]))[:config.branching]
        weights = -torch.rand(len(successors), generator=generator, dtype=torch.float64).log()
        transition[token, successors] = weights / weights.sum()
    return transition


def stationary(transition: torch.Tensor) -> torch.Tensor:
    """pi with pi @ transition = pi, summing to 1 (the left eigenvector for eigenvalue 1)."""
    eigenvalues, eigenvectors = torch.linalg.eig(transition.T)
    vector = eigenvectors[:, (eigenvalues - 1).abs().argmin()].real
    return vector / vector.sum()


def entropy_rate(transition: torch.Tensor) -> float:
    """H = -sum_i pi_i sum_j P_ij log P_ij in nats: the loss floor of the language."""
    return float(stationary(transition) @ -torch.xlogy(transition, transition).sum(dim=-1))


def sequences(transition: torch.Tensor, start: torch.Tensor, batch: int, length: int,
              generator: torch.Generator) -> torch.Tensor:
    """(batch, length) int64 sequences of the chain, the first token drawn from `start`."""
    tokens = torch.empty(batch, length, dtype=torch.int64)
    tokens[:, 0] = torch.multinomial(start.expand(batch, -1), 1, generator=generator)[:, 0]
    for position in range(1, length):
        rows = transition[tokens[:, position - 1]]
        tokens[:, position] = torch.multinomial(rows, 1, generator=generator)[:, 0]
    return tokens


# ----------------------------------------------------------------------------- the model


class Block(nn.Module):
    """A pre-LN transformer block: causal multi-head attention, then a GELU MLP."""

    def __init__(self, d_model: int, n_heads: int, n_ctx: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(),
                                 nn.Linear(4 * d_model, d_model))
        mask = torch.triu(torch.ones(n_ctx, n_ctx, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        normed = self.ln1(x)
        x = x + self.attn(normed, normed, normed, attn_mask=self.mask[:n, :n],
                          need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    """Token and position embeddings, one block, a final LayerNorm and the unembedding."""

    def __init__(self, vocab: int, d_model: int, n_ctx: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos_embed = nn.Embedding(n_ctx, d_model)
        self.block = Block(d_model, max(1, d_model // 16), n_ctx)
        self.ln_final = nn.LayerNorm(d_model)
        self.unembed = nn.Linear(d_model, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.embed(tokens) + self.pos_embed(positions)
        return self.unembed(self.ln_final(self.block(x)))


def parameter_count(model: nn.Module) -> int:
    """N: every parameter of the model, embeddings included (as Hoffmann et al. count)."""
    return sum(parameter.numel() for parameter in model.parameters())


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting tokens[:, 1:] from the logits at the positions before."""
    log_probs = logits[:, :-1].double().log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None]).mean()


# ----------------------------------------------------------------------------- one run


def learning_rate(step: int, steps: int, config: SweepConfig) -> float:
    """Linear warmup, then cosine decay to `final_lr_fraction` of the peak at the last step."""
    warmup = max(1, round(config.warmup_fraction * steps))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    floor = config.final_lr_fraction
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_run(config: SweepConfig, transition: torch.Tensor, width: int, steps: int,
              evaluation: torch.Tensor, device: str) -> dict:
    """Train one model of `width` for `steps` steps of fresh data; its loss on `evaluation`."""
    torch.manual_seed(config.init_seed + width)
    generator = torch.Generator().manual_seed(config.init_seed + width)
    start = stationary(transition)
    model = TinyTransformer(config.vocab, width, config.n_ctx).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    began = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, config)
        tokens = sequences(transition, start, config.batch, config.n_ctx, generator).to(device)
        loss = next_token_loss(model(tokens), tokens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - began
    with torch.no_grad():
        losses = [next_token_loss(model(chunk.to(device)), chunk).item()
                  for chunk in evaluation.split(256)]
    return {"width": width, "N": parameter_count(model), "steps": steps,
            "D": steps * config.tokens_per_step, "loss": sum(losses) / len(losses),
            "seconds": round(seconds, 2)}


def run_sweep(config: SweepConfig, path: Path, device: str) -> dict:
    """Every (width, budget) run, smallest first; the table is rewritten after each run."""
    transition = transition_matrix(config)
    evaluation = sequences(transition, stationary(transition), config.eval_sequences,
                           config.n_ctx, torch.Generator().manual_seed(config.language_seed + 1))
    chain_loss = -transition[evaluation[:, :-1], evaluation[:, 1:]].log().mean().item()
    results = {"config": asdict(config), "entropy_rate": entropy_rate(transition),
               "chain_loss_on_evaluation": chain_loss, "device": device, "runs": []}
    began = time.perf_counter()
    for width in config.widths:
        for steps in config.steps:
            run = train_run(config, transition, width, steps, evaluation, device)
            results["runs"].append(run)
            results["total_seconds"] = round(time.perf_counter() - began, 1)
            path.write_text(json.dumps(results, indent=1) + "\n")
            print(f"width {width:3d}  N {run['N']:7d}  D {run['D']:9d}  loss {run['loss']:.4f}"
                  f"  ({run['seconds']:.1f} s)", flush=True)
    print(f"entropy rate {results['entropy_rate']:.4f} nats; the chain itself scores "
          f"{chain_loss:.4f} on the evaluation set; {results['total_seconds']:.0f} s in all")
    return results


def load_sweep(path: Path = RESULTS) -> dict:
    """The shipped sweep: {"N", "D", "L"} float64 tensors (one entry per run), the language's
    "entropy_rate" (a float), and the raw table under "runs"."""
    table = json.loads(path.read_text())
    runs = table["runs"]
    return {"N": torch.tensor([float(run["N"]) for run in runs], dtype=torch.float64),
            "D": torch.tensor([float(run["D"]) for run in runs], dtype=torch.float64),
            "L": torch.tensor([run["loss"] for run in runs], dtype=torch.float64),
            "entropy_rate": table["entropy_rate"], "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the table goes")
    parser.add_argument("--quick", action="store_true",
                        help="two widths, two short budgets: a smoke test of the script")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    config = SweepConfig()
    if arguments.quick:
        config = SweepConfig(widths=(4, 64), steps=(64, 256), eval_sequences=256)
    run_sweep(config, arguments.out, arguments.device)


if __name__ == "__main__":
    main()
