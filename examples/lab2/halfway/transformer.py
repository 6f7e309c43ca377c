# An example lab2 submission, as a student might hand it in halfway through the lab: some
# functions right, some with classic mistakes (the unbiased variance in LayerNorm, the attention
# scores scaled by 1/sqrt(d_model), not 1/sqrt(d_head), top_p_filter that also keeps a token whose
# probabilities before it add up to exactly p), some not done (sample_next_token, generate). `make
# demo lab2` grades it next to the starter code and the reference.
"""Lab 2, part 1: build a transformer, train it on a language with a known floor, sample from it.

A GPT-2-style decoder, one short class per idea, with TransformerLens's parameter and hook
names (so `hooks.run_with_cache(model, tokens)` gives `blocks.0.attn.hook_pattern`, ...).
Each `__init__` is given: it fixes the parameter names and shapes (the grader loads the same
weights into your modules and the reference's) and the hook points. You write the `forward`
methods, the loss, the training loop and the sampling functions.

The training data is a Markov chain over a small vocabulary: each token is followed by one of
a few successors with fixed probabilities. Its entropy rate is the best loss any model can
reach, so you can see how close your transformer gets to perfect.

Run `python transformer.py` to train a small model on it and plot the loss against that floor
(`images/transformer_loss.png`), then sample from the trained model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from hooks import HookPoint
from torch import nn
from tqdm.auto import tqdm


@dataclass(frozen=True)
class TransformerConfig:
    """Every size of the model, named once (TransformerLens's names)."""

    d_vocab: int = 64
    n_ctx: int = 64                # the longest sequence the model reads
    d_model: int = 64              # width of the residual stream
    n_heads: int = 4
    d_head: int = 16
    d_mlp: int = 256
    n_layers: int = 2
    layer_norm_eps: float = 1e-5
    init_range: float = 0.02       # weights start as N(0, init_range^2)
    attn_only: bool = False        # blocks are ln1 + attention only (no ln2, no MLP)


# ----------------------------------------------------------------------------- modules


class LayerNorm(nn.Module):
    """Normalise each position's vector over d_model, then scale by `w` and shift by `b`.

    Parameters: `w` (d_model,) (starts at ones), `b` (d_model,) (starts at zeros).
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.eps = config.layer_norm_eps
        self.w = nn.Parameter(torch.ones(config.d_model))
        self.b = nn.Parameter(torch.zeros(config.d_model))
        self.hook_normalized = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, pos, d_model) -> (batch, pos, d_model).

        out = (x - mean) / sqrt(var + eps) * w + b, with the mean and the *biased* variance
        (divide by d_model, not d_model - 1) over the last dimension. Pass the result through
        `self.hook_normalized`. Hint: `x.var(dim=-1, unbiased=False, keepdim=True)`.
        """
        centred = x - x.mean(dim=-1, keepdim=True)
        variance = x.var(dim=-1, keepdim=True)
        return self.hook_normalized(centred / (variance + self.eps).sqrt() * self.w + self.b)


class Embed(nn.Module):
    """Token embedding. Parameter: `W_E` (d_vocab, d_model)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(config.d_vocab, config.d_model))
        nn.init.normal_(self.W_E, std=config.init_range)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (batch, pos) int64 -> (batch, pos, d_model): row `tokens[b, p]` of W_E.

        Hint: index W_E with the tokens.
        """
        return self.W_E[tokens]


class PosEmbed(nn.Module):
    """Learned position embedding. Parameter: `W_pos` (n_ctx, d_model)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(config.n_ctx, config.d_model))
        nn.init.normal_(self.W_pos, std=config.init_range)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (batch, pos) int64 with pos <= n_ctx -> (batch, pos, d_model).

        out[b, p] = W_pos[p] for every sequence b: it depends on positions, not on the token
        values. Hint: the first `pos` rows of W_pos, expanded over the batch.
        """
        batch, pos = tokens.shape
        return self.W_pos[:pos].expand(batch, pos, -1)


class Attention(nn.Module):
    """Causal multi-head self-attention.

    Parameters: `W_Q`, `W_K`, `W_V` (n_heads, d_model, d_head); `b_Q`, `b_K`, `b_V`
    (n_heads, d_head); `W_O` (n_heads, d_head, d_model); `b_O` (d_model,).
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        h, d, e = config.n_heads, config.d_model, config.d_head
        self.W_Q = nn.Parameter(torch.empty(h, d, e))
        self.W_K = nn.Parameter(torch.empty(h, d, e))
        self.W_V = nn.Parameter(torch.empty(h, d, e))
        self.W_O = nn.Parameter(torch.empty(h, e, d))
        for weight in (self.W_Q, self.W_K, self.W_V, self.W_O):
            nn.init.normal_(weight, std=config.init_range)
        self.b_Q = nn.Parameter(torch.zeros(h, e))
        self.b_K = nn.Parameter(torch.zeros(h, e))
        self.b_V = nn.Parameter(torch.zeros(h, e))
        self.b_O = nn.Parameter(torch.zeros(d))
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_attn_scores, self.hook_pattern = HookPoint(), HookPoint()
        self.hook_z = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, pos, d_model) -> (batch, pos, d_model).

        1. q, k, v = x W_Q + b_Q, ... for every head: (batch, pos, n_heads, d_head), through
           `hook_q`, `hook_k`, `hook_v`.
        2. scores[b, h, i, j] = q[b, i, h] . k[b, j, h] / sqrt(d_head): (batch, n_heads,
           query_pos, key_pos). A query may attend to its own position and earlier ones only:
           set the scores of later keys (j > i) to -inf (or a large negative number such as
           -1e5), then pass them through `hook_attn_scores`.
        3. pattern = softmax of the scores over the key positions, through `hook_pattern`:
           each row sums to 1, with zeros above the diagonal.
        4. z[b, i, h] = sum_j pattern[b, h, i, j] v[b, j, h], through `hook_z`
           (batch, pos, n_heads, d_head); the output is sum_h z[b, i, h] W_O[h] + b_O.
        Hint: `torch.einsum("bpd,hde->bphe", x, self.W_Q)`; `torch.triu(..., diagonal=1)`
        marks the later keys.
        """
        q = self.hook_q(torch.einsum("bpd,hde->bphe", x, self.W_Q) + self.b_Q)
        k = self.hook_k(torch.einsum("bpd,hde->bphe", x, self.W_K) + self.b_K)
        v = self.hook_v(torch.einsum("bpd,hde->bphe", x, self.W_V) + self.b_V)
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(x.shape[-1])
        pos = x.shape[1]
        later = torch.ones(pos, pos, dtype=torch.bool, device=x.device).triu(diagonal=1)
        scores = self.hook_attn_scores(scores.masked_fill(later, float("-inf")))
        pattern = self.hook_pattern(scores.softmax(dim=-1))
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        return torch.einsum("bqhe,hed->bqd", z, self.W_O) + self.b_O


class MLP(nn.Module):
    """Parameters: `W_in` (d_model, d_mlp), `b_in` (d_mlp,), `W_out` (d_mlp, d_model),
    `b_out` (d_model,)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(config.d_model, config.d_mlp))
        self.W_out = nn.Parameter(torch.empty(config.d_mlp, config.d_model))
        for weight in (self.W_in, self.W_out):
            nn.init.normal_(weight, std=config.init_range)
        self.b_in = nn.Parameter(torch.zeros(config.d_mlp))
        self.b_out = nn.Parameter(torch.zeros(config.d_model))
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, pos, d_model) -> (batch, pos, d_model).

        pre = x W_in + b_in through `hook_pre`; post = GELU(pre) through `hook_post`; the
        output is post W_out + b_out. GELU is the exact one, x * Phi(x) with Phi the standard
        normal CDF (`torch.nn.functional.gelu` with its default approximate="none"), not the
        tanh approximation.
        """
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        post = self.hook_post(nn.functional.gelu(pre))
        return post @ self.W_out + self.b_out


class TransformerBlock(nn.Module):
    """A pre-LN residual block: ln1 -> attn, and (unless config.attn_only) ln2 -> mlp."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.attn_only = config.attn_only
        self.ln1 = LayerNorm(config)
        self.attn = Attention(config)
        self.hook_resid_pre, self.hook_attn_out = HookPoint(), HookPoint()
        self.hook_resid_post = HookPoint()
        if not config.attn_only:
            self.ln2 = LayerNorm(config)
            self.mlp = MLP(config)
            self.hook_resid_mid, self.hook_mlp_out = HookPoint(), HookPoint()

    def forward(self, resid_pre: torch.Tensor) -> torch.Tensor:
        """resid_pre: (batch, pos, d_model) -> resid_post, the same shape.

        Each sub-layer reads a LayerNorm of the residual stream and *adds* its output to it:
            resid_mid = resid_pre + attn(ln1(resid_pre))
            resid_post = resid_mid + mlp(ln2(resid_mid))
        Pass resid_pre, the attention output, resid_mid, the MLP output and resid_post through
        `hook_resid_pre`, `hook_attn_out`, `hook_resid_mid`, `hook_mlp_out`, `hook_resid_post`.
        With `self.attn_only` there is no MLP (and no ln2, resid_mid or mlp_out):
        resid_post = resid_pre + attn(ln1(resid_pre)).
        """
        resid = self.hook_resid_pre(resid_pre)
        resid = resid + self.hook_attn_out(self.attn(self.ln1(resid)))
        if self.attn_only:
            return self.hook_resid_post(resid)
        resid = self.hook_resid_mid(resid)
        return self.hook_resid_post(resid + self.hook_mlp_out(self.mlp(self.ln2(resid))))


class Unembed(nn.Module):
    """Parameters: `W_U` (d_model, d_vocab), `b_U` (d_vocab,)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(config.d_model, config.d_vocab))
        nn.init.normal_(self.W_U, std=config.init_range)
        self.b_U = nn.Parameter(torch.zeros(config.d_vocab))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, pos, d_model) -> logits (batch, pos, d_vocab) = x W_U + b_U."""
        return x @ self.W_U + self.b_U


class Transformer(nn.Module):
    """The whole decoder: embed + pos_embed, n_layers blocks, ln_final, unembed.

    Submodules: `embed`, `pos_embed`, `blocks` (an nn.ModuleList), `ln_final`, `unembed`, so
    the parameters are `embed.W_E`, `pos_embed.W_pos`, `blocks.0.attn.W_Q`, ...,
    `ln_final.w`, `unembed.W_U`.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.embed = Embed(config)
        self.pos_embed = PosEmbed(config)
        self.blocks = nn.ModuleList([TransformerBlock(config) for _ in range(config.n_layers)])
        self.ln_final = LayerNorm(config)
        self.unembed = Unembed(config)
        self.hook_embed, self.hook_pos_embed = HookPoint(), HookPoint()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (batch, pos) int64, pos <= n_ctx -> logits (batch, pos, d_vocab).

        The residual stream starts as embed(tokens) + pos_embed(tokens) (through `hook_embed`
        and `hook_pos_embed`), goes through every block in order, then ln_final and unembed.
        """
        resid = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(tokens))
        for block in self.blocks:
            resid = block(resid)
        return self.unembed(self.ln_final(resid))


# ----------------------------------------------------------------------------- the loss


def next_token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The log-probability the model gives each actual next token.

    logits: (batch, pos, d_vocab), the model's output on tokens (batch, pos) int64.
    Returns (batch, pos - 1): out[b, p] = log_softmax(logits[b, p])[tokens[b, p + 1]]. The
    last position has no next token. Must stay finite for logits as large as 1e4.
    Hint: `log_softmax`, then `gather` along the vocabulary with tokens[:, 1:].
    """
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The mean over batch and positions of -next_token_log_probs: a scalar (0-dim) tensor."""
    return -next_token_log_probs(logits, tokens).mean()


# ----------------------------------------------------------------------------- the language


def random_transition_matrix(d_vocab: int, branching: int,
                             generator: torch.Generator) -> torch.Tensor:
    """A seeded Markov chain over `d_vocab` tokens: (d_vocab, d_vocab) float64, row i the
    distribution of the token after i. Each token has `branching` possible successors: i + 1
    (mod d_vocab), so that every token is reachable, and others drawn at random (token 0 also
    its own, so that the chain is aperiodic), with random probabilities."""
    transition = torch.zeros(d_vocab, d_vocab, dtype=torch.float64)
    for token in range(d_vocab):
        others = [t for t in torch.randperm(d_vocab, generator=generator).tolist()
                  if t != (token + 1) % d_vocab]
        successors = [(token + 1) % d_vocab, *([0] if token == 0 else []), *others]
        successors = list(dict.fromkeys(successors))[:branching]
        weights = -torch.rand(len(successors), generator=generator, dtype=torch.float64).log()
        transition[token, successors] = weights / weights.sum()
    return transition


def markov_sequences(transition: torch.Tensor, start: torch.Tensor, batch: int, pos: int,
                     generator: torch.Generator) -> torch.Tensor:
    """(batch, pos) int64 sequences of the chain: the first token drawn from `start`
    (d_vocab,), each next one from the row of `transition` of the token before it."""
    tokens = torch.empty(batch, pos, dtype=torch.int64)
    tokens[:, 0] = torch.multinomial(start.expand(batch, -1), 1, generator=generator)[:, 0]
    for p in range(1, pos):
        tokens[:, p] = torch.multinomial(transition[tokens[:, p - 1]], 1, generator=generator)[:, 0]
    return tokens


def stationary_distribution(transition: torch.Tensor) -> torch.Tensor:
    """The distribution pi (d_vocab,) that one step of the chain leaves unchanged:
    pi @ transition = pi, entries >= 0 summing to 1.

    transition: (d_vocab, d_vocab) float64, rows summing to 1, irreducible and aperiodic (as
    those of `random_transition_matrix` are), so pi is unique. Returns float64, accurate to
    about 1e-10. Hint: pi is the left eigenvector of `transition` for eigenvalue 1
    (`torch.linalg.eig(transition.T)`, take the real part and normalise), or solve the linear
    system pi (transition - I) = 0 with sum(pi) = 1.
    """
    eigenvalues, eigenvectors = torch.linalg.eig(transition.T)
    vector = eigenvectors[:, (eigenvalues - 1).abs().argmin()].real
    return vector / vector.sum()


def entropy_rate(transition: torch.Tensor) -> torch.Tensor:
    """The chain's entropy rate in nats: the best mean next-token loss any model can reach on
    its sequences. A float64 scalar (0-dim) tensor.

    H = -sum_i pi_i sum_j P_ij log P_ij, with pi your `stationary_distribution(transition)`
    and 0 log 0 = 0: most entries of P are 0, and they must not turn the sum into NaN.
    Hint: `torch.xlogy(P, P)` is P log P with 0 where P is 0.
    """
    row_entropies = -torch.xlogy(transition, transition).sum(dim=-1)
    return stationary_distribution(transition) @ row_entropies


# ----------------------------------------------------------------------------- training


def train(model: nn.Module, batches: Callable[[torch.Generator], torch.Tensor], *, steps: int,
          lr: float = 1e-3, weight_decay: float = 0.0, generator: torch.Generator,
          device: str | torch.device = "cpu", progress: bool = True) -> list[float]:
    """Train `model` on next-token prediction and return the loss of every step, as floats.

    Move the model to `device`, make one optimiser
    `torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)`, then for each of
    `steps` steps: tokens = batches(generator) (int64 (batch, pos); move them to `device`),
    the `next_token_loss` of model(tokens), backward, one optimiser step. Show a tqdm progress
    bar over the steps when `progress` (with `mininterval=1` and the loss as its postfix).
    Returns a list of `steps` Python floats (loss.item()), the loss before each step.
    Hint: clear the previous step's gradients first.
    """
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    bar = tqdm(range(steps), disable=not progress, mininterval=1, desc="training")
    for _ in bar:
        tokens = batches(generator).to(device)
        loss = next_token_loss(model(tokens), tokens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    return losses


# ----------------------------------------------------------------------------- sampling


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row and set the others to -inf.

    logits: (batch, d_vocab). Returns a new tensor of the same shape and dtype (do not modify
    `logits`). A token is kept when its logit is >= the k-th largest logit of its row, so a tie
    at the k-th place keeps every tied token; k >= d_vocab keeps every token.
    Hint: `torch.topk(logits, k).values[:, -1:]` is each row's k-th largest logit.
    """
    k = min(k, logits.shape[-1])
    kth_largest = torch.topk(logits, k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probabilities add
    up to at least p, and set the other logits to -inf.

    logits: (batch, d_vocab), possibly with -inf entries already; 0 < p < 1. Sort each row's
    probabilities softmax(logits) from the largest; keep tokens while the probability of the
    tokens before them is still < p. So the token that makes the sum reach p is kept, and the
    most likely token is always kept. Returns a new tensor of the same shape and dtype.
    Must work for logits as large as 1e4. Hint: `torch.sort(..., descending=True)`,
    `cumsum`, then `scatter` the sorted mask back to the original order.
    """
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    sorted_probs = sorted_logits.softmax(dim=-1)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs
    remove = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, before > p)
    return logits.masked_fill(remove, float("-inf"))


def sample_next_token(logits: torch.Tensor, generator: torch.Generator, temperature: float = 1.0,
                      top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """One token per row: logits (batch, d_vocab) -> (batch,) int64.

    temperature 0 is greedy: each row's argmax (the first one on ties). Otherwise, in this
    order: divide the logits by the temperature, apply `top_k_filter` if top_k is given, then
    `top_p_filter` if top_p is given, and draw one token from the softmax of what is left,
    independently for each row. Every random number comes from `generator` (the same
    generator state gives the same tokens). Hint: `torch.multinomial(probs, 1,
    generator=generator)`.
    """
    # TODO: implement sample_next_token
    raise NotImplementedError("sample_next_token is not implemented yet")


@torch.no_grad()
def generate(model: nn.Module, prompt: torch.Tensor, max_new_tokens: int,
             generator: torch.Generator, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None) -> torch.Tensor:
    """Extend `prompt` (batch, pos) int64 by `max_new_tokens` tokens, one at a time.

    At each step run the model on the last `model.config.n_ctx` tokens at most (the model reads
    no more), take the logits of the last position, and choose the next token with
    `sample_next_token(logits, generator, temperature, top_k, top_p)`.
    Returns (batch, pos + max_new_tokens): the prompt followed by the new tokens.
    """
    # TODO: implement generate
    raise NotImplementedError("generate is not implemented yet")


# ----------------------------------------------------------------------------- the demo

LANGUAGE_SEED = 2
LANGUAGE = {"d_vocab": 16, "branching": 3}
DEMO_CONFIG = TransformerConfig(d_vocab=16, n_ctx=32, d_model=32, n_heads=2, d_head=16,
                                d_mlp=64, n_layers=1)
DEMO_TRAINING = {"steps": 600, "batch": 32, "lr": 3e-3}


def plot_loss(losses: list[float], floor: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot(losses, label="training loss")
    axes.axhline(floor, color="black", linestyle="--", label=f"entropy rate {floor:.3f} nats")
    axes.set(xlabel="step", ylabel="next-token loss (nats)", ylim=(floor - 0.2, losses[0] + 0.1),
             title="A transformer learns a Markov chain")
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(LANGUAGE_SEED)
    generator = torch.Generator().manual_seed(LANGUAGE_SEED)
    transition = random_transition_matrix(**LANGUAGE, generator=generator)
    start = stationary_distribution(transition)
    floor = entropy_rate(transition).item()
    model = Transformer(DEMO_CONFIG)
    batch, pos = DEMO_TRAINING["batch"], DEMO_CONFIG.n_ctx

    def batches(g: torch.Generator) -> torch.Tensor:
        return markov_sequences(transition, start, batch, pos, g)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    began = time.perf_counter()
    losses = train(model, batches, steps=DEMO_TRAINING["steps"], lr=DEMO_TRAINING["lr"],
                   generator=generator, device=device)
    seconds = time.perf_counter() - began
    fresh = markov_sequences(transition, start, 512, pos, generator)
    with torch.no_grad():
        loss = next_token_loss(model(fresh.to(device)).double().cpu(), fresh).item()
    chain_loss = -transition[fresh[:, :-1], fresh[:, 1:]].log().mean().item()
    print(f"entropy rate (the floor) {floor:.4f} nats; after {len(losses)} steps "
          f"({seconds:.1f} s on {device}) the loss on 512 fresh sequences is {loss:.4f} "
          f"(the chain itself scores {chain_loss:.4f} on them)")
    plot_loss(losses, floor, Path(__file__).resolve().parent / "images" / "transformer_loss.png")
    model.cpu()
    prompt = markov_sequences(transition, start, 3, 4, generator)
    for name, options in [("greedy", {"temperature": 0.0}), ("T = 1", {}),
                          ("T = 1, top-p 0.9", {"top_p": 0.9})]:
        sampled = generate(model, prompt, 12, generator, **options)
        print(f"{name:>17}: " + " | ".join(" ".join(map(str, row.tolist())) for row in sampled))


if __name__ == "__main__":
    main()
