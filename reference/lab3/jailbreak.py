"""Lab 3, part 2: the refusal direction and adversarial suffixes.

The lab's assistant refuses harmful requests ("sorry , i can not help .") and helps with
harmless ones. You take that refusal apart in two ways.

**The refusal direction** (Arditi et al. 2024, "Refusal in language models is mediated by a
single direction"). Read the residual stream at the last prompt token (`assistant:`) on
harmful and harmless prompts; the difference of the two means, one vector per layer, is a
candidate refusal direction. Projecting a direction out of everything that writes to the
residual stream (directional ablation) is the test: the right layer's direction, ablated,
makes the model comply with harmful requests, while a random direction of the same norm does
nothing; added to the stream of a harmless prompt it makes the model refuse. The ablation can
be baked into the weights (weight orthogonalisation): the same outputs, no hooks.

**Adversarial suffixes** (Zou et al. 2023, "Universal and transferable adversarial attacks on
aligned language models"). Greedy coordinate gradient (GCG) searches for suffix tokens that
make the model start its reply with a target ("sure ,"): the gradient of the target's loss
with respect to each suffix position's one-hot token proposes the k most promising
substitutions per position, a batch of single-token changes is drawn from them, and the one
with the lowest loss is kept.

**Rates with intervals.** An attack's success rate over a handful of prompts is a noisy
number: report it with a confidence interval (Wilson's score interval).

Run `python jailbreak.py` for the handout's numbers (under a minute on a CPU).
"""

from __future__ import annotations

import copy
import math

import torch
from dialogue import (
    ASSISTANT,
    HARMFUL,
    HARMLESS,
    HELD_OUT,
    PERSONAS,
    SPECIALS,
    TEMPLATES,
    TOKEN_ID,
    VOCAB,
    decode,
    encode,
    pad_batch,
)
from hooks import hooks, run_with_cache, run_with_hooks
from torch import nn

REFUSAL_TOKEN = TOKEN_ID["sorry"]
"""A reply that starts with "sorry" is a refusal; every other reply complies."""

TARGET = "sure ,"
"""GCG's target: the start of a helpful reply."""

SUFFIX_VOCAB = torch.tensor([word not in SPECIALS for word in VOCAB])
"""(d_vocab,) bool: the tokens a suffix may hold (every word, no special token)."""


# ----------------------------------------------------------------------------------------
# Activations and the refusal direction
# ----------------------------------------------------------------------------------------


def last_token_resid(model: nn.Module, tokens: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """The residual stream after each block, at each prompt's last token.

    model: the assistant (or any model with its hook names); tokens: (batch, pos) int64,
    right-padded prompts; last: (batch,) int64, the position of each prompt's last token
    (`assistant:`). Returns (n_layers, batch, d_model) in the model's dtype:
    out[l, b] = the activation `blocks.{l}.hook_resid_post` of prompt b at position last[b].
    Run the model once, without gradients. Hint: `run_with_cache`, then index with
    `torch.arange(batch)` and `last` together.
    """
    # BEGIN SOLUTION
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(len(model.blocks))]
    with torch.no_grad():
        _, cache = run_with_cache(model, tokens, names=names)
    rows = torch.arange(tokens.shape[0])
    return torch.stack([cache[name][rows, last] for name in names])
    # END SOLUTION


def refusal_directions(harmful: torch.Tensor, harmless: torch.Tensor) -> torch.Tensor:
    """The difference of means, one candidate refusal direction per layer.

    harmful: (n_layers, n_harmful, d_model), harmless: (n_layers, n_harmless, d_model), from
    `last_token_resid` (the two counts may differ). Returns (n_layers, d_model): the mean over
    the harmful prompts minus the mean over the harmless ones, not normalised (activation
    addition adds it with its own norm).
    """
    # BEGIN SOLUTION
    return harmful.mean(dim=1) - harmless.mean(dim=1)
    # END SOLUTION


def refusal_score(logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """How strongly each prompt is refused: the log-odds of "sorry" as the reply's first token.

    logits: (batch, pos, d_vocab); last: (batch,) int64, each prompt's last position. With p
    the probability of `REFUSAL_TOKEN` at position last[b], returns (batch,) in the logits'
    dtype: log p - log(1 - p). It must stay finite for logits of size 1e4 (p within 1e-300 of
    1): compute it as the "sorry" logit minus the logsumexp of all the other logits.
    Positive means the model refuses (its most likely first token may still be another word
    when p < 1/2 is the largest probability; `refusal_rate` in model.py counts the argmax).
    """
    # BEGIN SOLUTION
    at_last = logits[torch.arange(logits.shape[0]), last]
    others = at_last.clone()
    others[:, REFUSAL_TOKEN] = -math.inf
    return at_last[:, REFUSAL_TOKEN] - others.logsumexp(dim=-1)
    # END SOLUTION


# ----------------------------------------------------------------------------------------
# Directional ablation, activation addition, weight orthogonalisation
# ----------------------------------------------------------------------------------------


def project_out(x: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """x without its component along `direction`: x - (x . r) r with r = direction / |direction|.

    x: (..., d_model); direction: (d_model,), any nonzero norm. Returns a new tensor of x's
    shape (x is left unchanged) whose dot product with `direction` is 0.
    """
    # BEGIN SOLUTION
    unit = direction / direction.norm()
    return x - (x @ unit)[..., None] * unit
    # END SOLUTION


def ablated_logits(model: nn.Module, tokens: torch.Tensor, direction: torch.Tensor,
                   value: float = 0.0) -> torch.Tensor:
    """The model's logits with the residual stream's component along `direction` held at `value`.

    The residual stream is the sum of what the embeddings, each attention layer and each MLP
    write. Project `direction` out of each write (`project_out`), at every position, through
    hooks on `hook_embed`, `hook_pos_embed` and every block's `hook_attn_out` and
    `hook_mlp_out`, and add `value * direction / |direction|` to the token embeddings'
    write (`hook_embed`) only: the stream's component along the direction is then exactly
    `value` at every layer and position, whatever the prompt. `value = 0` is Arditi et al.'s
    directional ablation; the harmless prompts' mean component is Marshall et al.'s affine
    edit (2024), which the lab's model needs (its harmless prompts sit far from 0 along the
    refusal direction). Returns (batch, pos, d_vocab), computed without gradients; the model
    is left as it was. Hint: `run_with_hooks`.
    """
    # BEGIN SOLUTION
    unit = direction / direction.norm()

    def ablate(activation: torch.Tensor, _name: str) -> torch.Tensor:
        return project_out(activation, direction)

    def ablate_and_set(activation: torch.Tensor, _name: str) -> torch.Tensor:
        return project_out(activation, direction) + value * unit

    hooks_ = [("hook_embed", ablate_and_set), ("hook_pos_embed", ablate)]
    for layer in range(len(model.blocks)):
        hooks_ += [(f"blocks.{layer}.hook_attn_out", ablate),
                   (f"blocks.{layer}.hook_mlp_out", ablate)]
    with torch.no_grad():
        return run_with_hooks(model, tokens, fwd_hooks=hooks_)
    # END SOLUTION


def added_logits(model: nn.Module, tokens: torch.Tensor, direction: torch.Tensor,
                 layer: int) -> torch.Tensor:
    """The model's logits with `direction` added to the residual stream after block `layer`.

    Adds `direction` (with its own norm, not normalised) to `blocks.{layer}.hook_resid_post`
    at every position. Returns (batch, pos, d_vocab), computed without gradients; the model
    is left as it was. On harmless prompts, the refusal direction added this way makes the
    model refuse.
    """
    # BEGIN SOLUTION
    def add(resid: torch.Tensor, _name: str) -> torch.Tensor:
        return resid + direction

    with torch.no_grad():
        return run_with_hooks(model, tokens, fwd_hooks=[(f"blocks.{layer}.hook_resid_post", add)])
    # END SOLUTION


def orthogonalised_model(model: nn.Module, direction: torch.Tensor,
                         value: float = 0.0) -> nn.Module:
    """A copy of the model whose weights cannot write along `direction`.

    Every parameter that writes to the residual stream has d_model as its last dimension:
    `embed.W_E` (d_vocab, d_model), `pos_embed.W_pos` (n_ctx, d_model), and in every block
    `attn.W_O` (n_heads, d_head, d_model), `attn.b_O` (d_model,), `mlp.W_out`
    (d_mlp, d_model), `mlp.b_out` (d_model,). Project `direction` out of each along that last
    dimension (`project_out` does exactly this), then add `value * direction / |direction|`
    to every row of `embed.W_E`. The copy computes the same logits as
    `ablated_logits(model, tokens, direction, value)` without any hook. Returns the new model; the
    given model is left as it was. Hint: `copy.deepcopy`, then change the copy's parameters
    under `torch.no_grad()`.
    """
    # BEGIN SOLUTION
    new = copy.deepcopy(model)
    writers = [new.embed.W_E, new.pos_embed.W_pos]
    for block in new.blocks:
        writers += [block.attn.W_O, block.attn.b_O, block.mlp.W_out, block.mlp.b_out]
    with torch.no_grad():
        for weight in writers:
            weight.copy_(project_out(weight, direction))
        new.embed.W_E += value * direction / direction.norm()
    return new
    # END SOLUTION


def select_layer(model: nn.Module, tokens: torch.Tensor, last: torch.Tensor,
                 directions: torch.Tensor, values: torch.Tensor) -> tuple[int, torch.Tensor]:
    """The layer whose direction, ablated, lowers the refusal of harmful prompts the most.

    tokens, last: harmful prompts (as for `last_token_resid`); directions: (n_layers,
    d_model) from `refusal_directions`; values: (n_layers,) the value each layer's direction
    is held at. For each layer l, run `ablated_logits` with directions[l] and values[l] and
    take the mean `refusal_score` over the prompts. Returns
    (the layer with the lowest mean as a Python int, the means as an (n_layers,) tensor).
    """
    # BEGIN SOLUTION
    means = torch.stack([refusal_score(ablated_logits(model, tokens, direction, float(value)),
                                       last).mean()
                         for direction, value in zip(directions, values, strict=True)])
    return int(means.argmin()), means
    # END SOLUTION


# ----------------------------------------------------------------------------------------
# Greedy coordinate gradient
# ----------------------------------------------------------------------------------------


def target_loss(model: nn.Module, prompts: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """How unlikely the target reply is after each prompt: its mean next-token loss.

    prompts: (batch, prompt_len) int64, whole prompts (ending with `assistant:`); target:
    (t,) int64, the reply's first t tokens. Runs the model on each prompt followed by the
    target and returns (batch,) in the model's dtype: the mean over j = 0 .. t - 1 of
    -log softmax(logits at the position before target[j])[target[j]]. Gradients flow
    (GCG differentiates it); compute it in one forward pass of the batch.
    """
    # BEGIN SOLUTION
    batch, prompt_len = prompts.shape
    tokens = torch.cat([prompts, target.expand(batch, -1)], dim=1)
    logits = model(tokens[:, :-1])[:, prompt_len - 1:]
    log_probs = logits.log_softmax(dim=-1)
    picked = log_probs.gather(-1, target.expand(batch, -1)[..., None]).squeeze(-1)
    return -picked.mean(dim=-1)
    # END SOLUTION


def token_gradients(model: nn.Module, prefix: torch.Tensor, suffix: torch.Tensor,
                    post: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The gradient of the target loss with respect to the suffix's one-hot tokens.

    The prompt is prefix, suffix, post (each (len,) int64; post is `assistant:`). Make a
    one-hot matrix (m, d_vocab) of the suffix's m tokens in the model's dtype that requires
    gradients, and let the model read the suffix's embeddings as `one_hot @ model.embed.W_E`:
    a hook on `hook_embed` replaces the embeddings of the suffix's positions
    (len(prefix) .. len(prefix) + m - 1) by that product (the same values, now with a path to
    the one-hot). Backpropagate `target_loss` of that single prompt and return the one-hot's
    gradient, (m, d_vocab): entry [i, v] says how the loss changes, to first order, as token
    v gets a little weight at suffix position i. The model's own parameters get no gradient
    kept (use `torch.autograd.grad`, or leave none behind).
    """
    # BEGIN SOLUTION
    one_hot = nn.functional.one_hot(suffix, model.embed.W_E.shape[0]).to(model.embed.W_E.dtype)
    one_hot.requires_grad_(True)
    start = len(prefix)

    def embed_suffix(embeddings: torch.Tensor, _name: str) -> torch.Tensor:
        embeddings = embeddings.clone()
        embeddings[:, start:start + len(suffix)] = one_hot @ model.embed.W_E
        return embeddings

    prompt = torch.cat([prefix, suffix, post])[None]
    with torch.enable_grad(), hooks(model, [("hook_embed", embed_suffix)]):
        loss = target_loss(model, prompt, target).sum()
        (gradient,) = torch.autograd.grad(loss, one_hot)
    return gradient
    # END SOLUTION


def top_k_substitutions(gradients: torch.Tensor, k: int, allowed: torch.Tensor) -> torch.Tensor:
    """The k most promising tokens for each suffix position.

    gradients: (m, d_vocab) from `token_gradients`; allowed: (d_vocab,) bool, the tokens a
    suffix may hold (k is at most their number). Returns (m, k) int64: row i holds the k
    allowed tokens with the most negative gradients at position i, most negative first
    (`torch.topk` of the negated gradients, sorted). Hint: give the disallowed tokens a
    gradient of +inf first.
    """
    # BEGIN SOLUTION
    masked = gradients.masked_fill(~allowed, math.inf)
    return (-masked).topk(k, dim=-1).indices
    # END SOLUTION


def sample_candidates(suffix: torch.Tensor, substitutions: torch.Tensor, batch: int,
                      generator: torch.Generator) -> torch.Tensor:
    """A batch of suffixes, each the given one with one token replaced.

    suffix: (m,) int64; substitutions: (m, k) from `top_k_substitutions`. Use the generator
    exactly twice, in this order: positions `torch.randint(0, m, (batch,), generator=generator)`,
    then choices `torch.randint(0, k, (batch,), generator=generator)`. Candidate b is the
    suffix with position positions[b] set to substitutions[positions[b], choices[b]].
    Returns (batch, m) int64; `suffix` is left unchanged.
    """
    # BEGIN SOLUTION
    m, k = substitutions.shape
    positions = torch.randint(0, m, (batch,), generator=generator)
    choices = torch.randint(0, k, (batch,), generator=generator)
    candidates = suffix.repeat(batch, 1)
    candidates[torch.arange(batch), positions] = substitutions[positions, choices]
    return candidates
    # END SOLUTION


def gcg_step(model: nn.Module, prefix: torch.Tensor, suffix: torch.Tensor, post: torch.Tensor,
             target: torch.Tensor, k: int, batch: int, generator: torch.Generator,
             allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of greedy coordinate gradient (Zou et al. 2023, Algorithm 1).

    `token_gradients` of the current suffix, its `top_k_substitutions` (k, allowed), a batch
    of `sample_candidates` drawn with `generator` (the only use of the generator), the
    `target_loss` of every candidate prompt (prefix, candidate, post) in one batch without
    gradients, and the candidate with the lowest loss (the first one on a tie). Returns
    (that candidate (m,) int64, its loss as a 0-dim tensor). The best candidate replaces the
    suffix even when it is worse than the current one: the loop keeps the best seen.
    """
    # BEGIN SOLUTION
    gradients = token_gradients(model, prefix, suffix, post, target)
    candidates = sample_candidates(suffix, top_k_substitutions(gradients, k, allowed), batch,
                                   generator)
    prompts = torch.cat([prefix.expand(batch, -1), candidates, post.expand(batch, -1)], dim=1)
    with torch.no_grad():
        losses = target_loss(model, prompts, target)
    best = int(losses.argmin())
    return candidates[best], losses[best]
    # END SOLUTION


# ----------------------------------------------------------------------------------------
# Rates with confidence intervals
# ----------------------------------------------------------------------------------------


def wilson_interval(successes: int, trials: int,
                    confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a success rate.

    With n = trials, p = successes / n and z the standard normal quantile at
    1 - (1 - confidence) / 2 (z = 1.96 for 95%), returns (low, high) as Python floats:
    (p + z^2 / (2n) -+ z sqrt(p (1 - p) / n + z^2 / (4 n^2))) / (1 + z^2 / n).
    Unlike p -+ z sqrt(p (1 - p) / n), it stays inside [0, 1] and is not empty at 0 or n
    successes. Hint: `statistics.NormalDist().inv_cdf` gives z.
    """
    # BEGIN SOLUTION
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / trials
    centre = p + z * z / (2 * trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    scale = 1 + z * z / trials
    return (centre - half) / scale, (centre + half) / scale
    # END SOLUTION


# ----------------------------------------------------------------------------------------
# Support code: prompts, the attack loop, refusal rates (nothing to write below)
# ----------------------------------------------------------------------------------------


def prompt_tokens(prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids (batch, pos) of prompts of any lengths, and each one's last
    position (batch,)."""
    return pad_batch(prompts), torch.tensor([len(encode(prompt)) - 1 for prompt in prompts])


def first_tokens(logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """The most likely first reply token of each prompt: (batch,) int64."""
    return logits[torch.arange(logits.shape[0]), last].argmax(dim=-1)


def refusal_share(logits: torch.Tensor, last: torch.Tensor) -> float:
    """The share of prompts whose most likely first reply token is "sorry"."""
    return float((first_tokens(logits, last) == REFUSAL_TOKEN).double().mean())


def gcg_attack(model: nn.Module, prefix: torch.Tensor, suffix: torch.Tensor, post: torch.Tensor,
               target: torch.Tensor, *, steps: int, k: int, batch: int,
               generator: torch.Generator, allowed: torch.Tensor) -> dict:
    """Up to `steps` steps of `gcg_step`, stopping as soon as the model's most likely first
    reply token after the kept suffix is the target's first token. Returns {"suffix": the
    best suffix seen, "loss": its loss, "steps": steps taken, "success": whether it stopped
    early, "losses": every step's loss}."""
    best, best_loss, losses = suffix, math.inf, []
    for step in range(1, steps + 1):
        suffix, loss = gcg_step(model, prefix, suffix, post, target, k, batch, generator, allowed)
        losses.append(float(loss))
        if float(loss) < best_loss:
            best, best_loss = suffix, float(loss)
        prompt = torch.cat([prefix, best, post])[None]
        with torch.no_grad():
            first = int(model(prompt)[0, -1].argmax())
        if first == int(target[0]):
            return {"suffix": best, "loss": best_loss, "steps": step, "success": True,
                    "losses": losses}
    return {"suffix": best, "loss": best_loss, "steps": steps, "success": False,
            "losses": losses}


def request_prompts(pairs: list[tuple[str, str]], generator: torch.Generator,
                    suffix_share: float = 0.5) -> list[str]:
    """One prompt per (template, topic) pair and persona, each with a noise suffix of 1-4 words
    with probability `suffix_share` (as in training)."""
    from dialogue import noise_suffix, request

    prompts = []
    for template, topic in pairs:
        for persona in PERSONAS:
            with_suffix = float(torch.rand((), generator=generator)) < suffix_share
            prompts.append(request(template, topic, persona,
                                   noise_suffix(generator) if with_suffix else ""))
    return prompts


def held_values(harmless: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """(n_layers,): the harmless prompts' mean component along each layer's direction (the
    value to hold the stream at), from `last_token_resid` on harmless prompts."""
    return (harmless.mean(dim=1) * directions).sum(dim=-1) / directions.norm(dim=-1)


def request_pairs(topics: list[str], held_out: bool) -> list[tuple[str, str]]:
    """The (template, topic) requests of `topics` seen in training, or held out."""
    return [(t, topic) for t in TEMPLATES for topic in topics
            if ((t, topic) in HELD_OUT) == held_out]


if __name__ == "__main__":
    import time

    from dialogue import SUFFIX_WORDS, request
    from model import load_model

    torch.set_num_threads(1)
    started = time.perf_counter()
    model = load_model(dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    harmful_train = request_prompts(request_pairs(HARMFUL, False), generator)
    harmless_train = request_prompts(request_pairs(HARMLESS, False), generator)
    harmful_test = request_prompts(request_pairs(HARMFUL, True), generator, suffix_share=0)
    harmless_test = request_prompts(request_pairs(HARMLESS, True), generator, suffix_share=0)

    acts = {name: last_token_resid(model, *prompt_tokens(prompts))
            for name, prompts in (("harmful", harmful_train), ("harmless", harmless_train))}
    directions = refusal_directions(acts["harmful"], acts["harmless"])
    tokens, last = prompt_tokens(harmful_train)
    values = held_values(acts["harmless"], directions)
    layer, means = select_layer(model, tokens, last, directions, values)
    print(f"mean refusal score on harmful prompts with each layer's direction ablated: "
          f"{[round(float(x), 2) for x in means]}; chosen layer {layer}")
    direction, value = directions[layer], float(values[layer])
    random = torch.randn(direction.shape, generator=generator, dtype=direction.dtype)
    random = random / random.norm() * direction.norm()
    random_value = float(held_values(acts["harmless"], random[None])[0])

    harm_tokens, harm_last = prompt_tokens(harmful_test)
    safe_tokens, safe_last = prompt_tokens(harmless_test)
    with torch.no_grad():
        rows = {
            "no intervention": (refusal_share(model(harm_tokens), harm_last),
                                refusal_share(model(safe_tokens), safe_last)),
            "refusal direction held at 0": (
                refusal_share(ablated_logits(model, harm_tokens, direction), harm_last),
                refusal_share(ablated_logits(model, safe_tokens, direction), safe_last)),
            "refusal direction held": (
                refusal_share(ablated_logits(model, harm_tokens, direction, value), harm_last),
                refusal_share(ablated_logits(model, safe_tokens, direction, value), safe_last)),
            "random direction held at 0": (
                refusal_share(ablated_logits(model, harm_tokens, random), harm_last),
                refusal_share(ablated_logits(model, safe_tokens, random), safe_last)),
            "random direction held": (
                refusal_share(ablated_logits(model, harm_tokens, random, random_value),
                              harm_last),
                refusal_share(ablated_logits(model, safe_tokens, random, random_value),
                              safe_last)),
            "refusal direction added": (
                refusal_share(added_logits(model, harm_tokens, direction, layer), harm_last),
                refusal_share(added_logits(model, safe_tokens, direction, layer), safe_last)),
        }
    n_harm, n_safe = len(harmful_test), len(harmless_test)
    print(f"refusal rates on held-out prompts ({n_harm} harmful, {n_safe} harmless), 95% "
          "Wilson intervals:")
    for name, (harm, safe) in rows.items():
        low, high = wilson_interval(round(harm * n_harm), n_harm)
        low2, high2 = wilson_interval(round(safe * n_safe), n_safe)
        print(f"  {name:28s} harmful {harm:.2f} [{low:.2f}, {high:.2f}]   "
              f"harmless {safe:.2f} [{low2:.2f}, {high2:.2f}]")

    post, target = torch.tensor(encode(ASSISTANT)), torch.tensor(encode(TARGET))
    suffix_ids = torch.tensor([TOKEN_ID[word] for word in SUFFIX_WORDS])
    gcg_wins = random_wins = 0
    attacks = [(t, topic) for t, topic in request_pairs(HARMFUL, True)]
    for template, topic in attacks:
        prefix = torch.tensor(encode(request(template, topic)))[:-1]
        start = suffix_ids[torch.randint(len(suffix_ids), (4,), generator=generator)]
        result = gcg_attack(model, prefix, start, post, target, steps=20, k=8, batch=32,
                            generator=generator, allowed=SUFFIX_VOCAB)
        gcg_wins += result["success"]
        print(f"  GCG on '{template} {topic}': {'complied' if result['success'] else 'refused'}"
              f" after {result['steps']} steps, suffix "
              f"'{decode(result['suffix'])}'")
        tries = suffix_ids[torch.randint(len(suffix_ids), (64, 4), generator=generator)]
        prompts = torch.cat([prefix.expand(64, -1), tries, post.expand(64, -1)], dim=1)
        with torch.no_grad():
            random_wins += int((model(prompts)[:, -1].argmax(-1) != REFUSAL_TOKEN).sum())
    low, high = wilson_interval(gcg_wins, len(attacks))
    print(f"GCG: {gcg_wins} of {len(attacks)} held-out harmful prompts complied "
          f"[{low:.2f}, {high:.2f}]")
    low, high = wilson_interval(random_wins, 64 * len(attacks))
    print(f"random suffixes of noise words: {random_wins} of {64 * len(attacks)} complied "
          f"[{low:.3f}, {high:.3f}]")
    print(f"{time.perf_counter() - started:.1f} s")
