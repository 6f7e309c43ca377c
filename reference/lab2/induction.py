"""Lab 2, part 2: induction heads.

An induction head completes patterns: having seen "... A B ... A", it predicts "B". It needs
two heads in two layers: a previous-token head (layer 0) writes "the token before me was A"
into each position, and the induction head (layer 1) looks for the position whose previous
token is the current token and copies the token found there. On a block of random tokens
repeated twice, the second copy then becomes predictable, and its loss drops.

You train your own attention-only `Transformer` (from transformer.py) on repeated blocks,
measure every head's induction and previous-token scores from its attention pattern, find
the two heads, and zero-ablate the induction head to watch the second-half loss rise.

Run `python induction.py` to train the model (about half a minute on a CPU), print the scores
and draw the figures into images/.

Only `train_induction_model` (and the `__main__` block) uses transformer.py, and it imports it
when called: the rest of this file is graded without your transformer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from hooks import run_with_cache, run_with_hooks
from torch import nn


@dataclass(frozen=True)
class InductionRun:
    """The training run: a 2-layer attention-only model on random blocks repeated to fill
    the context. Every knob is named once; `python induction.py` uses these defaults."""

    d_vocab: int = 64
    n_ctx: int = 64
    d_model: int = 64
    n_heads: int = 4        # d_head = d_model // n_heads
    n_layers: int = 2
    min_block: int = 4      # block lengths are drawn from min_block .. n_ctx // 2
    batch_size: int = 32
    steps: int = 500
    lr: float = 3e-3
    seed: int = 0           # `python induction.py`'s initial weights and batches


# ----------------------------------------------------------------------------------------
# Repeated random tokens
# ----------------------------------------------------------------------------------------


def repeated_tokens(batch: int, block_len: int, d_vocab: int,
                    generator: torch.Generator) -> torch.Tensor:
    """A block of random tokens followed by the same block again, for every sequence.

    Returns int64 (batch, 2 * block_len) with out[:, block_len:] == out[:, :block_len].
    Use the generator exactly once: the block is
    `torch.randint(0, d_vocab, (batch, block_len), generator=generator)`
    (the grader draws the same block and compares). Hint: `torch.cat` along dim 1.
    """
    # BEGIN SOLUTION
    block = torch.randint(0, d_vocab, (batch, block_len), generator=generator)
    return torch.cat([block, block], dim=1)
    # END SOLUTION


def repeated_blocks(batch: int, n_ctx: int, d_vocab: int, generator: torch.Generator,
                    min_block: int = 4) -> torch.Tensor:
    """Training data: one random block per sequence, repeated to fill the context.

    Returns int64 (batch, n_ctx) with out[:, t] == out[:, t % block_len] for every t. Use the
    generator exactly twice, in this order: the block length (one length for the whole batch)
    `int(torch.randint(min_block, n_ctx // 2 + 1, (1,), generator=generator))`, then the
    blocks `torch.randint(0, d_vocab, (batch, block_len), generator=generator)`.
    The length changes from batch to batch, so that the model cannot learn "copy the token
    from n_ctx // 2 positions back" and has to learn induction. Hint: `Tensor.repeat`, then
    cut to n_ctx.
    """
    # BEGIN SOLUTION
    block_len = int(torch.randint(min_block, n_ctx // 2 + 1, (1,), generator=generator))
    block = torch.randint(0, d_vocab, (batch, block_len), generator=generator)
    copies = -(-n_ctx // block_len)
    return block.repeat(1, copies)[:, :n_ctx]
    # END SOLUTION


# ----------------------------------------------------------------------------------------
# Scores from attention patterns
# ----------------------------------------------------------------------------------------


def induction_scores(pattern: torch.Tensor) -> torch.Tensor:
    """How much each head attends, from the second copy of a repeated block, to the token
    right after the same token's first occurrence.

    pattern: (batch, heads, 2 * block_len, 2 * block_len), the attention of one layer on
    `repeated_tokens` (query, then key). The query at position q >= block_len holds the same
    token as position q - block_len, so an induction head attends to q - block_len + 1.
    Returns (heads,) in the pattern's dtype: pattern[b, h, q, q - block_len + 1] averaged over
    the batch and the block_len queries q = block_len .. 2 * block_len - 1.
    Hint: `torch.diagonal(pattern, offset, dim1=-2, dim2=-1)` takes a stripe below the diagonal;
    check which queries it starts from.
    """
    # BEGIN SOLUTION
    block_len = pattern.shape[-1] // 2
    # The stripe q -> q - block_len + 1 starts at query block_len - 1, which is not repeated.
    stripe = pattern.diagonal(-(block_len - 1), dim1=-2, dim2=-1)
    return stripe[..., 1:].mean(dim=(0, -1))
    # END SOLUTION


def previous_token_scores(pattern: torch.Tensor) -> torch.Tensor:
    """How much each head attends to the token just before the query.

    pattern: (batch, heads, seq, seq), query then key. Returns (heads,) in the pattern's
    dtype: pattern[b, h, q, q - 1] averaged over the batch and the queries q = 1 .. seq - 1
    (position 0 has no previous token). Hint: a diagonal again.
    """
    # BEGIN SOLUTION
    return pattern.diagonal(-1, dim1=-2, dim2=-1).mean(dim=(0, -1))
    # END SOLUTION


def head_scores(model: nn.Module, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """The induction and previous-token scores of every head of every layer.

    model: any model with TransformerLens hook names (your `Transformer`, or the grader's),
    whose layers are `model.blocks`; tokens: (batch, 2 * block_len) from `repeated_tokens`.
    Returns {"induction": (n_layers, n_heads), "previous_token": (n_layers, n_heads)}, row i
    from layer i's pattern `blocks.{i}.attn.hook_pattern`. Run the model once, without
    gradients. Hint: `run_with_cache(model, tokens)` from hooks.py.
    """
    # BEGIN SOLUTION
    with torch.no_grad():
        _, cache = run_with_cache(model, tokens)
    patterns = [cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(len(model.blocks))]
    return {"induction": torch.stack([induction_scores(p) for p in patterns]),
            "previous_token": torch.stack([previous_token_scores(p) for p in patterns])}
    # END SOLUTION


def find_heads(scores: dict[str, torch.Tensor]) -> tuple[int, int]:
    """The previous-token head of layer 0 and the induction head of layer 1.

    scores: as returned by `head_scores`. Returns (previous_token_head, induction_head): the
    index of the layer-0 head with the highest previous-token score and of the layer-1 head
    with the highest induction score, as Python ints.
    """
    # BEGIN SOLUTION
    return (int(scores["previous_token"][0].argmax()), int(scores["induction"][1].argmax()))
    # END SOLUTION


# ----------------------------------------------------------------------------------------
# Loss by position and ablation
# ----------------------------------------------------------------------------------------


def loss_by_position(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The next-token loss at each position, averaged over the batch.

    logits: (batch, seq, d_vocab); tokens: (batch, seq) int64. Returns (seq - 1,) in the
    logits' dtype: out[t] = mean over the batch of -log softmax(logits[:, t])[tokens[:, t + 1]].
    On repeated tokens an induction head makes out[t] small for t >= block_len. Compute it
    here (log_softmax, then gather) rather than with transformer.py, so that this part is
    graded on its own.
    """
    # BEGIN SOLUTION
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    picked = log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)
    return -picked.mean(dim=0)
    # END SOLUTION


def ablate_head(model: nn.Module, tokens: torch.Tensor, layer: int, head: int) -> torch.Tensor:
    """The model's logits with one head zero-ablated.

    Runs `model(tokens)` with head `head` of layer `layer` silenced: its output
    `blocks.{layer}.attn.hook_z`, of shape (batch, pos, head, d_head), set to zero for that
    head only, at every position. Returns the logits (batch, seq, d_vocab), computed without
    gradients; the model is left as it was. Hint: `run_with_hooks` from hooks.py, with a hook
    that returns a modified copy of z.
    """
    # BEGIN SOLUTION
    def silence(z: torch.Tensor, _name: str) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = 0.0
        return z

    with torch.no_grad():
        return run_with_hooks(model, tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", silence)])
    # END SOLUTION


# ----------------------------------------------------------------------------------------
# Training the attention-only model
# ----------------------------------------------------------------------------------------


def train_induction_model(run: InductionRun, generator: torch.Generator, device: str = "cpu",
                          progress: bool = True) -> tuple[nn.Module, list[float]]:
    """Build your attention-only `Transformer` for `run` and train it on repeated blocks.

    The model: `TransformerConfig(d_vocab, n_ctx, d_model, n_heads, d_head=d_model // n_heads,
    n_layers, attn_only=True)` from `run` (other fields at their defaults). Train it with
    transformer.py's `train` for `run.steps` steps at learning rate `run.lr`, with
    `generator`, `device` and `progress` passed on, on batches
    `repeated_blocks(run.batch_size, run.n_ctx, run.d_vocab, g, run.min_block)` where `g` is
    the generator `train` hands to the batch function. Returns (model, losses).
    Import from transformer.py inside this function (as the first line does), not at the top
    of the file: then the rest of this part is graded even while transformer.py is unfinished.
    """
    from transformer import Transformer, TransformerConfig, train

    # BEGIN SOLUTION
    config = TransformerConfig(d_vocab=run.d_vocab, n_ctx=run.n_ctx, d_model=run.d_model,
                               n_heads=run.n_heads, d_head=run.d_model // run.n_heads,
                               n_layers=run.n_layers, attn_only=True)
    model = Transformer(config)

    def batches(g: torch.Generator) -> torch.Tensor:
        return repeated_blocks(run.batch_size, run.n_ctx, run.d_vocab, g, run.min_block)

    losses = train(model, batches, steps=run.steps, lr=run.lr, generator=generator,
                   device=device, progress=progress)
    return model, losses
    # END SOLUTION


# ----------------------------------------------------------------------------------------
# Figures (support code: nothing to write below)
# ----------------------------------------------------------------------------------------

IMAGES = Path(__file__).resolve().parent / "images"


def plot_patterns(model: nn.Module, tokens: torch.Tensor, heads: list[tuple[int, int]],
                  path: Path) -> None:
    """The attention pattern of each (layer, head) on the first sequence of `tokens`."""
    import matplotlib.pyplot as plt

    with torch.no_grad():
        _, cache = run_with_cache(model, tokens[:1])
    figure, axes = plt.subplots(1, len(heads), figsize=(5 * len(heads), 4.5))
    for axis, (layer, head) in zip(axes, heads, strict=True):
        image = axis.imshow(cache[f"blocks.{layer}.attn.hook_pattern"][0, head].cpu(),
                            cmap="Blues", vmin=0, vmax=1)
        axis.set(title=f"head {layer}.{head}", xlabel="key position", ylabel="query position")
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def plot_losses(curves: dict[str, torch.Tensor], block_len: int, path: Path) -> None:
    """Loss by position on repeated tokens, one curve per label."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for label, curve in curves.items():
        axis.plot(range(1, len(curve) + 1), curve.cpu(), label=label)
    axis.axvline(block_len, color="grey", linestyle=":", label="second copy starts")
    axis.set(xlabel="position of the predicted token", ylabel="loss (nats)",
             title="Next-token loss on a repeated random block")
    axis.legend()
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def copy_only_loss(run: InductionRun) -> float:
    """The training loss of a model that is uniform until the block repeats and certain from
    then on: L * log(d_vocab) / (n_ctx - 1) averaged over the block lengths L. (The first
    token of the second copy cannot be predicted without knowing L; a model can beat this line
    a little by guessing where blocks end.)"""
    lengths = torch.arange(run.min_block, run.n_ctx // 2 + 1, dtype=torch.float64)
    return float(lengths.mean() * math.log(run.d_vocab) / (run.n_ctx - 1))


def plot_training(losses: list[float], run: InductionRun, path: Path) -> None:
    import matplotlib.pyplot as plt

    window = 25  # each batch has its own block length, so single losses jump around
    smooth = torch.tensor(losses).unfold(0, window, 1).mean(dim=1)
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(losses, alpha=0.3, label="training loss")
    axis.plot(range(window - 1, len(losses)), smooth, label=f"mean of the last {window} steps")
    axis.axhline(math.log(run.d_vocab), color="grey", linestyle=":",
                 label="uniform guess, log(d_vocab)")
    axis.axhline(copy_only_loss(run), color="black", linestyle="--",
                 label="uniform on the first copy, perfect after it")
    axis.legend(loc="lower left")
    axis.set(xlabel="step", ylabel="training loss (nats)",
             title="Training on repeated blocks: the drop is the induction head forming")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


if __name__ == "__main__":
    import time

    run = InductionRun()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(1)  # a model this small trains fastest on one CPU thread
    torch.manual_seed(run.seed)
    started = time.perf_counter()
    model, losses = train_induction_model(run, torch.Generator().manual_seed(run.seed), device)
    print(f"trained {run.steps} steps on {device} in {time.perf_counter() - started:.1f} s; "
          f"final loss {sum(losses[-20:]) / 20:.3f} (uniform on the first copy, perfect after "
          f"it: {copy_only_loss(run):.3f})")

    block_len = run.n_ctx // 2
    tokens = repeated_tokens(100, block_len, run.d_vocab, torch.Generator().manual_seed(1))
    scores = head_scores(model.cpu(), tokens)
    for name, table in scores.items():
        print(f"{name} scores (rows: layers, columns: heads):\n{table.numpy().round(2)}")
    previous_head, induction_head = find_heads(scores)
    print(f"previous-token head 0.{previous_head}, induction head 1.{induction_head} "
          f"(induction score {scores['induction'][1, induction_head]:.2f})")

    with torch.no_grad():
        curves = {"trained model": loss_by_position(model(tokens), tokens)}
    for layer, head in [(1, induction_head), (0, previous_head)]:
        ablated = ablate_head(model, tokens, layer, head)
        curves[f"head {layer}.{head} ablated"] = loss_by_position(ablated, tokens)
    print(f"loss on the first copy {curves['trained model'][:block_len - 1].mean():.2f} nats; "
          "on the second copy: " + ", ".join(f"{label} {curve[block_len:].mean():.2f}"
                                              for label, curve in curves.items()))

    IMAGES.mkdir(exist_ok=True)
    plot_patterns(model, tokens, [(0, previous_head), (1, induction_head)],
                  IMAGES / "induction_patterns.png")
    plot_losses(curves, block_len, IMAGES / "induction_loss_by_position.png")
    plot_training(losses, run, IMAGES / "induction_training.png")
