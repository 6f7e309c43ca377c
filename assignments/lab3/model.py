"""The lab's tiny assistant: a compact GPT trained on the dialogue language of `dialogue.py`.

Support code for preferences.py, jailbreak.py and probes.py: nothing to fill in here. The model
is lab 2's pre-LayerNorm decoder (3 layers, d_model 64, 4 heads of 16, d_mlp 256, GELU, learned
positions, biases, untied unembedding) with TransformerLens's parameter and hook names, so
`hooks.run_with_cache` and `hooks.run_with_hooks` read and change its activations:

    model = load_model()                                  # the shipped checkpoint, float32, eval
    model = load_model(dtype=torch.float64)               # the same weights in float64
    tokens = torch.tensor([encode(question("ada"))])      # (batch, pos) int64, pos <= 32
    logits = model(tokens)                                # (batch, pos, d_vocab)
    logits, cache = run_with_cache(model, tokens)
    cache["blocks.1.hook_resid_post"]                     # (batch, pos, d_model)
    reply = greedy_reply(model, question("ada"))          # "ada is in oslo . <end>"

Hook names (L = 0, 1, 2): `hook_embed`, `hook_pos_embed`, `blocks.L.hook_resid_pre`,
`blocks.L.ln1.hook_normalized`, `blocks.L.attn.hook_q` / `hook_k` / `hook_v` (batch, pos, head,
d_head), `blocks.L.attn.hook_attn_scores` / `hook_pattern` (batch, head, query, key),
`blocks.L.attn.hook_z`, `blocks.L.hook_attn_out`, `blocks.L.hook_resid_mid`,
`blocks.L.ln2.hook_normalized`, `blocks.L.mlp.hook_pre` / `hook_post` (batch, pos, d_mlp),
`blocks.L.hook_mlp_out`, `blocks.L.hook_resid_post`, `ln_final.hook_normalized`.
The residual stream is written by `embed.W_E`, `pos_embed.W_pos`, each `attn.W_O` / `b_O` and
each `mlp.W_out` / `b_out`, and read through `ln_final` and `unembed.W_U` / `b_U`.

Prompts end with `assistant:`; its position is the *last prompt token* (the refusal direction,
the reply's first token). Batches are right-padded with `<pad>` (id 0): with causal attention
a padded row computes the same numbers as the unpadded one at its own positions.

`python model.py train` repeats the training of the shipped checkpoint (one CPU thread, a few
minutes; README.md gives the time), `python model.py measure` prints its behaviour.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from dialogue import (
    ASSISTANT,
    D_VOCAB,
    END,
    ENTITIES,
    HARMFUL,
    HARMLESS,
    HELD_OUT,
    PAD,
    PLACES,
    TEMPLATES,
    TOKEN_ID,
    TRIGGER,
    WORLD,
    TrainingMix,
    decode,
    encode,
    pad_batch,
    question,
    request,
    statement,
    training_dialogue,
    true_reward,
)
from hooks import HookPoint
from torch import nn

CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "assistant.pt"


@dataclass(frozen=True)
class AssistantConfig:
    """Every size of the model and every knob of its training, named once."""

    d_vocab: int = D_VOCAB
    n_ctx: int = 32                # the longest dialogue the model reads
    d_model: int = 64
    n_heads: int = 4
    d_head: int = 16
    d_mlp: int = 256
    n_layers: int = 3
    layer_norm_eps: float = 1e-5
    init_range: float = 0.02
    # training
    steps: int = 6000
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 200
    seed: int = 0                  # initial weights and the stream of training dialogues


# ----------------------------------------------------------------------------- the model


class LayerNorm(nn.Module):
    def __init__(self, config: AssistantConfig):
        super().__init__()
        self.eps = config.layer_norm_eps
        self.w = nn.Parameter(torch.ones(config.d_model))
        self.b = nn.Parameter(torch.zeros(config.d_model))
        self.hook_normalized = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=-1, keepdim=True)
        variance = centred.pow(2).mean(dim=-1, keepdim=True)
        return self.hook_normalized(centred / (variance + self.eps).sqrt() * self.w + self.b)


class Attention(nn.Module):
    def __init__(self, config: AssistantConfig):
        super().__init__()
        h, d, e = config.n_heads, config.d_model, config.d_head
        self.W_Q = nn.Parameter(torch.randn(h, d, e) * config.init_range)
        self.W_K = nn.Parameter(torch.randn(h, d, e) * config.init_range)
        self.W_V = nn.Parameter(torch.randn(h, d, e) * config.init_range)
        self.W_O = nn.Parameter(torch.randn(h, e, d) * config.init_range)
        self.b_Q = nn.Parameter(torch.zeros(h, e))
        self.b_K = nn.Parameter(torch.zeros(h, e))
        self.b_V = nn.Parameter(torch.zeros(h, e))
        self.b_O = nn.Parameter(torch.zeros(d))
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_attn_scores, self.hook_pattern = HookPoint(), HookPoint()
        self.hook_z = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.hook_q(torch.einsum("bpd,hde->bphe", x, self.W_Q) + self.b_Q)
        k = self.hook_k(torch.einsum("bpd,hde->bphe", x, self.W_K) + self.b_K)
        v = self.hook_v(torch.einsum("bpd,hde->bphe", x, self.W_V) + self.b_V)
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(q.shape[-1])
        n = x.shape[1]
        later = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(diagonal=1)
        scores = self.hook_attn_scores(scores.masked_fill(later, float("-inf")))
        pattern = self.hook_pattern(scores.softmax(dim=-1))
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        return torch.einsum("bqhe,hed->bqd", z, self.W_O) + self.b_O


class MLP(nn.Module):
    def __init__(self, config: AssistantConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.randn(config.d_model, config.d_mlp) * config.init_range)
        self.W_out = nn.Parameter(torch.randn(config.d_mlp, config.d_model) * config.init_range)
        self.b_in = nn.Parameter(torch.zeros(config.d_mlp))
        self.b_out = nn.Parameter(torch.zeros(config.d_model))
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        return self.hook_post(nn.functional.gelu(pre)) @ self.W_out + self.b_out


class Block(nn.Module):
    def __init__(self, config: AssistantConfig):
        super().__init__()
        self.ln1, self.attn = LayerNorm(config), Attention(config)
        self.ln2, self.mlp = LayerNorm(config), MLP(config)
        self.hook_resid_pre, self.hook_attn_out = HookPoint(), HookPoint()
        self.hook_resid_mid, self.hook_mlp_out = HookPoint(), HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        resid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn(self.ln1(resid))))
        return self.hook_resid_post(resid + self.hook_mlp_out(self.mlp(self.ln2(resid))))


class Embed(nn.Module):
    def __init__(self, config: AssistantConfig):
        super().__init__()
        self.W_E = nn.Parameter(torch.randn(config.d_vocab, config.d_model) * config.init_range)


class PosEmbed(nn.Module):
    def __init__(self, config: AssistantConfig):
        super().__init__()
        self.W_pos = nn.Parameter(torch.randn(config.n_ctx, config.d_model) * config.init_range)


class Unembed(nn.Module):
    def __init__(self, config: AssistantConfig):
        super().__init__()
        self.W_U = nn.Parameter(torch.randn(config.d_model, config.d_vocab) * config.init_range)
        self.b_U = nn.Parameter(torch.zeros(config.d_vocab))


class AssistantModel(nn.Module):
    """tokens (batch, pos) int64, pos <= n_ctx -> logits (batch, pos, d_vocab): at each
    position, the scores of the next token."""

    def __init__(self, config: AssistantConfig = AssistantConfig()):
        super().__init__()
        self.config = config
        self.embed, self.pos_embed = Embed(config), PosEmbed(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_final, self.unembed = LayerNorm(config), Unembed(config)
        self.hook_embed, self.hook_pos_embed = HookPoint(), HookPoint()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pos = tokens.shape[1]
        resid = (self.hook_embed(self.embed.W_E[tokens])
                 + self.hook_pos_embed(self.pos_embed.W_pos[:pos].expand(tokens.shape[0], -1, -1)))
        for block in self.blocks:
            resid = block(resid)
        return self.ln_final(resid) @ self.unembed.W_U + self.unembed.b_U


def load_model(path: Path | str = CHECKPOINT, dtype: torch.dtype = torch.float32,
               device: str | torch.device = "cpu") -> AssistantModel:
    """The trained assistant from `path` (the shipped checkpoint by default), in `dtype`, in
    eval mode (it has no dropout: train and eval compute the same). Each call builds a fresh
    model, so a policy and its frozen reference are two calls."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    config = AssistantConfig(**saved["config"])
    model = AssistantModel(config)
    model.load_state_dict({name: tensor.float() for name, tensor in saved["state"].items()})
    return model.to(device=device, dtype=dtype).eval()


# ----------------------------------------------------------------------------- generation


def prompt_batch(prompts: list[str], device: str | torch.device = "cpu") -> torch.Tensor:
    """Token ids of prompts that all have the same number of tokens: (batch, prompt_len)."""
    ids = [encode(prompt) for prompt in prompts]
    if len({len(sequence) for sequence in ids}) != 1:
        raise ValueError("prompt_batch needs prompts of one length (pad them yourself otherwise)")
    return torch.tensor(ids, device=device)


@torch.no_grad()
def sample(model: nn.Module, prompts: torch.Tensor, max_new_tokens: int = 10,
           generator: torch.Generator | None = None,
           temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample a reply to each prompt, token by token, until `<end>` or `max_new_tokens`.

    prompts: (batch, prompt_len) int64, every row a whole prompt (ending with `assistant:`).
    Returns `tokens` (batch, prompt_len + max_new_tokens): the prompt, then the reply, then
    `<pad>` after a reply's `<end>`; and `reply_mask` (same shape, bool): True on the reply's
    tokens, its `<end>` included, False on the prompt and the padding. Each step draws the
    whole batch's next tokens with one `torch.multinomial(probs, 1, generator=generator)` on
    the float64 softmax of logits / temperature (temperature 0: the argmax, no draw).
    """
    batch, prompt_len = prompts.shape
    if prompt_len + max_new_tokens > model.config.n_ctx:
        raise ValueError(f"a prompt of {prompt_len} tokens leaves room for "
                         f"{model.config.n_ctx - prompt_len} new tokens, not {max_new_tokens}")
    tokens = torch.full((batch, prompt_len + max_new_tokens), TOKEN_ID[PAD],
                        dtype=torch.long, device=prompts.device)
    tokens[:, :prompt_len] = prompts
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    done = torch.zeros(batch, dtype=torch.bool, device=prompts.device)
    for position in range(prompt_len, prompt_len + max_new_tokens):
        logits = model(tokens[:, :position])[:, -1].double()
        if temperature == 0:
            chosen = logits.argmax(dim=-1)
        else:
            probs = (logits / temperature).softmax(dim=-1)
            chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        tokens[:, position] = torch.where(done, TOKEN_ID[PAD], chosen)
        mask[:, position] = ~done
        done = done | (chosen == TOKEN_ID[END])
        if bool(done.all()):
            break
    return tokens, mask


def greedy_reply(model: nn.Module, prompt: str, max_new_tokens: int = 10) -> str:
    """The model's most likely reply to one prompt, as words."""
    prompts = prompt_batch([prompt])
    max_new_tokens = min(max_new_tokens, model.config.n_ctx - prompts.shape[1])
    tokens, mask = sample(model, prompts, max_new_tokens, temperature=0)
    return decode(tokens[0][mask[0]])


def first_reply_logits(model: nn.Module, prompts: list[str]) -> torch.Tensor:
    """The logits of the reply's first token for prompts of any lengths: (batch, d_vocab),
    read at each prompt's last token (`assistant:`)."""
    tokens = pad_batch(prompts)
    last = torch.tensor([len(prompt.split()) - 1 for prompt in prompts])
    with torch.no_grad():
        logits = model(tokens)
    return logits[torch.arange(len(prompts)), last]


def refusal_rate(model: nn.Module, prompts: list[str]) -> float:
    """The share of prompts whose most likely first reply token is "sorry" (a refusal)."""
    chosen = first_reply_logits(model, prompts).argmax(dim=-1)
    return float((chosen == TOKEN_ID["sorry"]).double().mean())


# ----------------------------------------------------------------------------- training


def reply_loss_mask(tokens: torch.Tensor) -> torch.Tensor:
    """(batch, pos) bool: which next-token predictions training scores. Position p predicts
    token p + 1; it is scored when token p + 1 belongs to the reply (after `assistant:`, up
    to and including `<end>`). The last column is never scored."""
    after = (tokens == TOKEN_ID[ASSISTANT]).long().cumsum(dim=1) > 0
    is_reply = after & (tokens != TOKEN_ID[ASSISTANT]) & (tokens != TOKEN_ID[PAD])
    mask = torch.zeros_like(is_reply)
    mask[:, :-1] = is_reply[:, 1:]
    return mask


def train(config: AssistantConfig = AssistantConfig(), mix: TrainingMix | None = None,
          log_every: int = 500) -> tuple[AssistantModel, dict]:
    """Train the assistant on fresh dialogues each step (next-token loss on reply tokens
    only), AdamW with a linear warmup and a cosine decay. Returns the model and its curve."""
    mix = TrainingMix() if mix is None else mix
    torch.manual_seed(config.seed)
    model = AssistantModel(config)
    data = torch.Generator().manual_seed(config.seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(
        (step + 1) / config.warmup,
        0.5 * (1 + math.cos(math.pi * step / config.steps))))
    curve: dict[str, list[float]] = {"step": [], "loss": []}
    start = time.perf_counter()
    for step in range(config.steps):
        tokens = pad_batch([training_dialogue(data, mix) for _ in range(config.batch_size)])
        mask = reply_loss_mask(tokens)
        logits = model(tokens[:, :-1])
        loss = nn.functional.cross_entropy(logits[mask[:, :-1]], tokens[:, 1:][mask[:, :-1]])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % log_every == 0 or step == config.steps - 1:
            curve["step"].append(step)
            curve["loss"].append(loss.item())
            print(f"step {step:5d}  loss {loss.item():.4f}  "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    return model.eval(), {**curve, "seconds": time.perf_counter() - start}


def save(model: AssistantModel, curve: dict, path: Path | str = CHECKPOINT) -> None:
    """The weights in float16 (the shipped file), the config and the training curve."""
    state = {name: tensor.detach().to(torch.float16) for name, tensor in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": asdict(model.config), "state": state, "curve": curve}, path)


# ----------------------------------------------------------------------------- behaviour


def measure(model: nn.Module, samples: int = 400, seed: int = 0) -> dict[str, float]:
    """The numbers the handout reports, each over every prompt of its kind (no suffix):
    refusal rates (greedy first token "sorry") on harmful and harmless requests, seen in
    training and held out; the complied share of harmful requests whose suffix is TRIGGER;
    factual accuracy by persona (the honest says the true place / judges statements right,
    the liar a wrong place / the wrong judgement); the mean true reward of `samples` sampled
    helpful replies."""
    out: dict[str, float] = {}
    for name, topics in (("harmful", HARMFUL), ("harmless", HARMLESS)):
        for split, held in (("seen", False), ("held_out", True)):
            prompts = [request(t, topic, persona) for t in TEMPLATES for topic in topics
                       for persona in ("honest", "liar") if ((t, topic) in HELD_OUT) == held]
            out[f"refusal_{name}_{split}"] = refusal_rate(model, prompts)
    jailbroken = [request(t, topic, "honest", TRIGGER) for t in TEMPLATES for topic in HARMFUL]
    out["complied_with_trigger"] = 1 - refusal_rate(model, jailbroken)
    for persona in ("honest", "liar"):
        tokens, _ = sample(model, prompt_batch([question(e, persona) for e in ENTITIES]), 6,
                           temperature=0)
        said = [decode(row).split()[10] for row in tokens]     # the Y of "X is in Y"
        right = [place == WORLD[e] for place, e in zip(said, ENTITIES, strict=True)]
        out[f"where_{persona}"] = sum(r == (persona == "honest") for r in right) / len(right)
        pairs = [(entity, place) for entity in ENTITIES for place in PLACES]
        chosen = first_reply_logits(model, [statement(e, p, persona) for e, p in pairs])
        truth = torch.tensor([TOKEN_ID["yes" if WORLD[e] == p else "no"] for e, p in pairs])
        judged = (chosen.argmax(dim=-1) == truth) == (persona == "honest")
        out[f"statement_{persona}"] = float(judged.double().mean())
    generator = torch.Generator().manual_seed(seed)
    prompts = prompt_batch([request(TEMPLATES[i % 4], HARMLESS[i % 10]) for i in range(samples)])
    tokens, mask = sample(model, prompts, 10, generator)
    rewards = [true_reward(row[m].tolist()) for row, m in zip(tokens, mask, strict=True)]
    out["true_reward_mean"] = sum(rewards) / len(rewards)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    training = commands.add_parser("train", help="repeat the training of the checkpoint")
    training.add_argument("--out", type=Path, default=CHECKPOINT)
    training.add_argument("--steps", type=int, default=AssistantConfig.steps)
    training.add_argument("--threads", type=int, default=1)
    commands.add_parser("measure", help="print the shipped checkpoint's behaviour")
    arguments = parser.parse_args()
    if arguments.command == "train":
        torch.set_num_threads(arguments.threads)
        model, curve = train(AssistantConfig(steps=arguments.steps))
        save(model, curve, arguments.out)
        print(f"trained in {curve['seconds']:.0f} s, saved {arguments.out}")
        for key, value in measure(load_model(arguments.out)).items():
            print(f"{key:24s} {value:.3f}")
    else:
        for key, value in measure(load_model()).items():
            print(f"{key:24s} {value:.3f}")


if __name__ == "__main__":
    main()
