"""Tests for lab 2, part "build a transformer" (transformer.py).

Modules are compared with the reference on the same weights, every parameter randomised
(LayerNorm scale and shift and every bias included, so a forgotten bias cannot hide behind a
zero), with weights and inputs in float64, at 1e-9: einsum vs matmul, rsqrt vs division by a
square root, a -inf mask vs a -1e5 one all agree to ~1e-14, while every real mistake (a
missing 1/sqrt(d_head), unbiased variance, the tanh GELU) misses by more than 1e-6. Every
activation a module passes through its hook points is compared too, in forward order, and a
failure names the first that differs. One test per module runs in float32, at 1e-4.

The training loop is tested on a stand-in bigram model (so that a broken Transformer costs
none of its points): a few steps from shared weights and batches match the reference, and a
full run on a Markov chain reaches the chain's entropy rate, the best loss any model can
reach, within a stated margin. Sampling: the filters exactly, greedy exactly, draws
statistically, and `generate` with a stand-in model and a recording sampler.
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.engine.checks import GradingFailure, assert_close, assert_dtype, check, fail

FLOAT64_RTOL, FLOAT64_ATOL = 1e-9, 1e-9
# float32 against the reference in float64: LayerNorm and softmax in float32 are accurate to a
# few 1e-7 relative; 1e-4 leaves room for any correct order of operations.
FLOAT32_RTOL, FLOAT32_ATOL = 1e-4, 1e-4
MASKED = -1e4  # a masked attention score is -inf or at most this
FALSE_FAILURE = 1e-6  # per statistical test, split over its checks with the union bound

# What to look at when an activation differs, by the end of its hook name.
HINTS = {
    "hook_embed": "Embed: row tokens[b, p] of W_E",
    "hook_pos_embed": "PosEmbed: W_pos[p] at position p, for every sequence of the batch",
    "hook_normalized": "LayerNorm: subtract the mean, divide by sqrt(biased variance + eps), "
                       "then * w + b; in a block it reads the residual stream before the "
                       "sub-layer (pre-LN)",
    "hook_q": "the queries: x W_Q + b_Q for every head",
    "hook_k": "the keys: x W_K + b_K for every head",
    "hook_v": "the values: x W_V + b_V for every head",
    "hook_attn_scores": "the scores: q . k / sqrt(d_head), with keys after the query masked "
                        "(a query sees its own position)",
    "hook_pattern": "the pattern: softmax of the scores over the key positions (the last "
                    "dimension)",
    "hook_z": "z: the pattern-weighted sum of the values over the key positions",
    "hook_resid_pre": "the block's input, unchanged (block 0 reads embed + pos_embed, block "
                      "i + 1 reads block i's output)",
    "hook_attn_out": "the attention output: sum over heads of z W_O, plus b_O",
    "hook_resid_mid": "the residual: resid_pre + attn(ln1(resid_pre))",
    "hook_pre": "the MLP's first layer: x W_in + b_in",
    "hook_post": "GELU of hook_pre (the exact GELU, x Phi(x), not ReLU or the tanh "
                 "approximation)",
    "hook_mlp_out": "the MLP output: post W_out + b_out",
    "hook_resid_post": "the residual: resid_mid + mlp(ln2(resid_mid)) (resid_pre + "
                       "attn(ln1(resid_pre)) without an MLP)",
}


def _size(rng: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(1, generator=rng))


def _shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _config(rng: torch.Generator, **fixed) -> dict:
    """A small random TransformerConfig as a dict; d_model need not be n_heads * d_head."""
    config = {
        "d_vocab": _size(rng, 5, 20), "n_ctx": _size(rng, 6, 12), "d_model": _size(rng, 8, 20),
        "n_heads": _size(rng, 1, 4), "d_head": _size(rng, 3, 8), "d_mlp": _size(rng, 8, 32),
        "n_layers": _size(rng, 1, 3), "layer_norm_eps": [1e-5, 1e-2][_size(rng, 0, 1)],
        "init_range": 0.02, "attn_only": False,
    }
    return {**config, **fixed}


def _state(reference, module: str, config: dict, rng: torch.Generator) -> dict:
    """Random float64 weights for every parameter of `module`: LayerNorm scales near 1, biases
    and shifts of size 0.3, embeddings of size 1, other weights scaled by 1/sqrt(fan in), so
    that activations stay of size 1 and attention patterns are far from one-hot."""
    shapes = reference.probe("transformer.parameter_shapes", module, config)
    state = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=rng, dtype=torch.float64)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "w":
            state[name] = 1 + 0.3 * noise
        elif leaf.startswith("b"):
            state[name] = 0.3 * noise
        elif leaf in ("W_E", "W_pos"):
            state[name] = noise
        else:
            state[name] = noise / math.sqrt(shape[-2])
    return state


TOKEN_INPUTS = {"Embed", "PosEmbed", "Transformer"}


def _input(module: str, config: dict, batch: int, pos: int, rng: torch.Generator):
    if module in TOKEN_INPUTS:
        return torch.randint(0, config["d_vocab"], (batch, pos), generator=rng)
    x = torch.randn(batch, pos, config["d_model"], generator=rng, dtype=torch.float64)
    # A different mean and spread at every position, so that LayerNorm has work to do.
    return 2 * x + torch.randn(batch, pos, 1, generator=rng, dtype=torch.float64)


def _hint(name: str) -> str:
    return HINTS.get(name.rsplit(".", 1)[-1], "")


def _masked_alike(name: str, got: torch.Tensor, want: torch.Tensor, what: str,
                  cache: dict | None = None):
    """Attention scores: keys after the query must be masked (-inf or <= -1e4); those entries
    are then set aside, so that a -inf mask and a large negative one compare equal. When the
    pattern of the same layer (in `cache`) gives those keys no weight, the model masks them
    after the hook: the message says so, rather than that the model sees the future."""
    if not name.endswith("hook_attn_scores") or got.shape != want.shape:
        return got, want
    later = torch.ones(want.shape[-2:], dtype=torch.bool).triu(diagonal=1)
    unmasked = later & ~(got.to(torch.float64) <= MASKED)
    if unmasked.any():
        b, h, i, j = (int(v) for v in unmasked.expand(got.shape).nonzero()[0])
        at = (f"{what}: {name}[{b}, {h}, {i}, {j}] = {float(got[b, h, i, j]):.4g} is the score "
              f"of key {j} for query {i}, a later position")
        pattern = (cache or {}).get(name.removesuffix("hook_attn_scores") + "hook_pattern")
        if torch.is_tensor(pattern) and pattern.shape == got.shape and bool(
                (pattern.to(torch.float64)[..., later] == 0).all()):
            fail(f"{at}, yet the pattern gives later keys no weight: the mask is applied after "
                 "the scores pass through hook_attn_scores. Pass the masked scores through the "
                 "hook (mask first, then hook_attn_scores, then the softmax): what the hook "
                 "shows, and what a hook that edits it changes, must be the scores the softmax "
                 "reads.")
        fail(f"{at}: mask it (-inf, or a large negative number such as -1e5) before the "
             "softmax, so that a token never sees the future.")
    return got.masked_fill(later, 0.0), want.masked_fill(later, 0.0)


def _compare_forward(got: dict, want: dict, *, what: str, dtype: torch.dtype, rtol: float,
                     atol: float, hooks: bool = True) -> None:
    """The output, and (with `hooks`) every hooked activation in the reference's forward
    order; the message names the first that differs."""
    check(isinstance(got, dict) and "output" in got, f"{what}: the probe got no output")
    output = got["output"]
    check(torch.is_tensor(output), f"{what}: returned a {type(output).__name__}, not a tensor")
    check(output.shape == want["output"].shape,
          f"{what}: expected output shape {_shape(want['output'].shape)}, got "
          f"{_shape(output.shape)}")
    assert_dtype(output, dtype, what)
    if hooks:
        cache = got["cache"]
        for name, expected in want["cache"].items():
            if name not in cache:
                fail(f"{what}: nothing passed through the hook point {name}. Pass the "
                     f"activation through it in forward ({_hint(name)}): the hooks are part of "
                     "the interface (run_with_cache and the induction part read them).")
            value, expected = _masked_alike(name, cache[name], expected, what, cache)
            try:
                assert_close(value, expected, rtol=rtol, atol=atol, what=name)
            except GradingFailure as failure:
                fail(f"{what}: the first activation that differs from the reference's (same "
                     f"weights, same input), in forward order, is {name}. Check {_hint(name)}. "
                     f"{failure}")
    try:
        assert_close(output, want["output"], rtol=rtol, atol=atol, what="the output")
    except GradingFailure as failure:
        last = f" (every hooked activation matches, so look after {list(want['cache'])[-1]})" \
            if hooks and want["cache"] else ""
        fail(f"{what}: {failure}{last}")


def _module_case(student, reference, module: str, config: dict, batch: int, pos: int,
                 rng: torch.Generator, dtype: str = "float64") -> None:
    """Student and reference `module` on the same random weights and input."""
    state = _state(reference, module, config, rng)
    x = _input(module, config, batch, pos, rng)
    what = (f"{module}.forward on {'tokens' if module in TOKEN_INPUTS else 'x'} "
            f"{_shape(x.shape)} in {dtype} (config {_describe(config)})")
    got = student.probe("transformer.module_forward", module, config, state, x, dtype)
    if dtype == "float64":
        want = reference.probe("transformer.module_forward", module, config, state, x, dtype)
        _compare_forward(got, want, what=what, dtype=torch.float64, rtol=FLOAT64_RTOL,
                         atol=FLOAT64_ATOL)
    else:
        want = reference.probe("transformer.module_forward", module, config, state, x,
                               "float64")
        _compare_forward(got, want, what=what, dtype=torch.float32, rtol=FLOAT32_RTOL,
                         atol=FLOAT32_ATOL, hooks=False)


def _describe(config: dict) -> str:
    keys = ["d_vocab", "n_ctx", "d_model", "n_heads", "d_head", "d_mlp", "n_layers",
            "layer_norm_eps", "attn_only"]
    return ", ".join(f"{key}={config[key]}" for key in keys)


# ----------------------------------------------------------------------------- modules


@pytest.mark.points(2)
@pytest.mark.public
def test_layer_norm(student, reference, rng):
    """LayerNorm matches the reference in float64 (random w and b; one position, and many)"""
    # Docstring (LayerNorm): "Normalise each position's vector over d_model, then scale by w and
    # shift by b"; (LayerNorm.forward) "x: (batch, pos, d_model) -> (batch, pos, d_model)", "the
    # *biased* variance (divide by d_model, not d_model - 1)": random w and b, eps 1e-5 or 1e-2.
    config = _config(rng)
    _module_case(student, reference, "LayerNorm", config, 1, 1, rng)
    _module_case(student, reference, "LayerNorm", config, _size(rng, 2, 4), _size(rng, 2, 9), rng)


@pytest.mark.points(1)
@pytest.mark.public
def test_embed(student, reference, rng):
    """Embed matches the reference"""
    # Docstring (Embed.forward): "tokens: (batch, pos) int64 -> (batch, pos, d_model)".
    config = _config(rng)
    _module_case(student, reference, "Embed", config, 1, 1, rng)
    _module_case(student, reference, "Embed", config, _size(rng, 2, 4), _size(rng, 2, 9), rng)


@pytest.mark.points(1)
@pytest.mark.public
def test_pos_embed(student, reference, rng):
    """PosEmbed matches the reference (one position, and the whole context)"""
    # Docstring (PosEmbed.forward): "tokens: (batch, pos) int64 with pos <= n_ctx": pos 1 and
    # pos = n_ctx.
    config = _config(rng)
    _module_case(student, reference, "PosEmbed", config, 1, 1, rng)
    _module_case(student, reference, "PosEmbed", config, _size(rng, 2, 4), config["n_ctx"], rng)


@pytest.mark.points(1)
@pytest.mark.public
def test_unembed(student, reference, rng):
    """Unembed matches the reference"""
    # Docstring (Unembed.forward): "x: (batch, pos, d_model) -> logits (batch, pos, d_vocab)".
    config = _config(rng)
    _module_case(student, reference, "Unembed", config, 1, 1, rng)
    _module_case(student, reference, "Unembed", config, _size(rng, 2, 4), _size(rng, 2, 9), rng)


@pytest.mark.points(3)
@pytest.mark.public
def test_attention(student, reference, rng):
    """Attention matches the reference: q, k, v, the masked scores, the pattern, z, the output"""
    # Docstring (Attention.forward): "x: (batch, pos, d_model) -> (batch, pos, d_model)", "for
    # every head: (batch, pos, n_heads, d_head)", "/ sqrt(d_head): (batch, n_heads, query_pos,
    # key_pos)", "set the scores of later keys (j > i) to -inf", "then pass them through
    # hook_attn_scores", "softmax of the scores over the key positions", "each row sums to 1,
    # with zeros above the diagonal", "through hook_z (batch, pos, n_heads, d_head)": every hook
    # compared in forward order, later keys masked to <= -1e4, pos 1 and 2 among the cases.
    config = _config(rng, n_heads=_size(rng, 2, 4))
    _module_case(student, reference, "Attention", config, _size(rng, 2, 3),
                 _size(rng, 3, config["n_ctx"]), rng)
    _module_case(student, reference, "Attention", config, 1, 1, rng)
    _module_case(student, reference, "Attention", _config(rng, n_heads=1), 1, 2, rng)


@pytest.mark.points(1)
@pytest.mark.public
def test_mlp(student, reference, rng):
    """MLP matches the reference (the exact GELU)"""
    # Docstring (MLP.forward): "x: (batch, pos, d_model) -> (batch, pos, d_model)".
    config = _config(rng)
    _module_case(student, reference, "MLP", config, 1, 1, rng)
    _module_case(student, reference, "MLP", config, _size(rng, 2, 4), _size(rng, 2, 9), rng)


@pytest.mark.points(2)
@pytest.mark.public
def test_transformer_block(student, reference, rng):
    """TransformerBlock matches the reference, with an MLP and attention-only"""
    # Docstring (TransformerBlock.forward): "resid_pre: (batch, pos, d_model) -> resid_post, the
    # same shape", "With self.attn_only there is no MLP": with an MLP, then attention-only.
    _module_case(student, reference, "TransformerBlock", _config(rng), _size(rng, 1, 3),
                 _size(rng, 2, 6), rng)
    _module_case(student, reference, "TransformerBlock", _config(rng, attn_only=True),
                 _size(rng, 1, 3), _size(rng, 2, 6), rng)


@pytest.mark.points(2)
@pytest.mark.public
def test_full_transformer(student, reference, rng):
    """Transformer matches the reference; a difference is traced to the first hook that differs"""
    # Docstring (Transformer.forward): "tokens: (batch, pos) int64, pos <= n_ctx -> logits (batch,
    # pos, d_vocab)", "goes through every block in order, then ln_final and unembed": 2 layers,
    # pos = n_ctx in case 2, hooks compared in forward order.
    config = _config(rng, n_layers=2)
    _module_case(student, reference, "Transformer", config, _size(rng, 2, 3),
                 _size(rng, 2, config["n_ctx"] - 1), rng)
    _module_case(student, reference, "Transformer", config, 1, config["n_ctx"], rng)


@pytest.mark.points(1)
def test_transformer_is_causal(student, reference, rng):
    """An attention-only Transformer matches the reference and no logit depends on later tokens"""
    # Docstring (Attention.forward): "A query may attend to its own position and earlier ones
    # only".
    config = _config(rng, attn_only=True)
    state = _state(reference, "Transformer", config, rng)
    pos = _size(rng, 4, config["n_ctx"])
    tokens = torch.randint(0, config["d_vocab"], (2, pos), generator=rng)
    cut = _size(rng, 1, pos - 1)
    changed = tokens.clone()
    changed[:, cut:] = (tokens[:, cut:] + torch.randint(1, config["d_vocab"], (2, pos - cut),
                                                        generator=rng)) % config["d_vocab"]
    what = f"Transformer.forward on tokens {_shape(tokens.shape)} (config {_describe(config)})"
    got = student.probe("transformer.module_forward", "Transformer", config, state, tokens,
                        "float64")
    want = reference.probe("transformer.module_forward", "Transformer", config, state, tokens,
                           "float64")
    _compare_forward(got, want, what=what, dtype=torch.float64, rtol=FLOAT64_RTOL,
                     atol=FLOAT64_ATOL)
    after = student.probe("transformer.module_forward", "Transformer", config, state, changed,
                          "float64")
    try:
        assert_close(after["output"][:, :cut], got["output"][:, :cut], rtol=FLOAT64_RTOL,
                     atol=FLOAT64_ATOL, what="the logits")
    except GradingFailure as failure:
        fail(f"{what}: changing the tokens from position {cut} on changed the logits at "
             f"earlier positions, so some position reads later tokens: mask the scores of keys "
             f"after the query. {failure}")


MODULES = ["LayerNorm", "Embed", "PosEmbed", "Attention", "MLP", "TransformerBlock", "Unembed",
           "Transformer"]


@pytest.mark.points(0.5)
@pytest.mark.parametrize("module", MODULES)
def test_module_in_float32(student, reference, rng, module):
    """{module} works in float32 (within 1e-4 of the reference in float64, output float32)"""
    config = _config(rng, attn_only=module == "Transformer" and bool(_size(rng, 0, 1)))
    _module_case(student, reference, module, config, _size(rng, 1, 4),
                 _size(rng, 1, config["n_ctx"]), rng, dtype="float32")


# ----------------------------------------------------------------------------- the loss


def _logits_and_tokens(rng: torch.Generator, batch: int, pos: int, scale: float):
    d_vocab = _size(rng, 3, 12)
    logits = scale * torch.randn(batch, pos, d_vocab, generator=rng, dtype=torch.float64)
    return logits, torch.randint(0, d_vocab, (batch, pos), generator=rng)


@pytest.mark.points(1)
@pytest.mark.public
def test_next_token_log_probs(student, reference, rng):
    """next_token_log_probs matches the reference (two positions; logits of size 1e4)"""
    # Docstring (next_token_log_probs): "logits: (batch, pos, d_vocab), the model's output on
    # tokens (batch, pos) int64", "Returns (batch, pos - 1)", "The last position has no next
    # token", "Must stay finite for logits as large as 1e4": pos 2 in case 2, size 1e4 in case 3.
    for batch, pos, scale in [(_size(rng, 2, 4), _size(rng, 3, 9), 3.0), (1, 2, 3.0),
                              (_size(rng, 2, 4), _size(rng, 3, 9), 1e4)]:
        logits, tokens = _logits_and_tokens(rng, batch, pos, scale)
        got = student.call("transformer.next_token_log_probs", logits, tokens)
        want = reference.call("transformer.next_token_log_probs", logits, tokens)
        assert_close(got, want, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL, dtype=torch.float64,
                     what=f"next_token_log_probs(logits {_shape(logits.shape)} of size "
                          f"{scale:g}, tokens {_shape(tokens.shape)})")


@pytest.mark.points(1)
@pytest.mark.public
def test_next_token_loss(student, reference, rng):
    """next_token_loss matches the reference: a scalar, and its gradient (logits of size 1e4 too)"""
    # Docstring (next_token_loss): "a scalar (0-dim) tensor".
    for batch, pos, scale in [(_size(rng, 2, 4), _size(rng, 3, 9), 3.0),
                              (_size(rng, 1, 3), _size(rng, 2, 9), 1e4)]:
        logits, tokens = _logits_and_tokens(rng, batch, pos, scale)
        got = student.probe("transformer.loss_with_gradient", logits, tokens)
        want = reference.probe("transformer.loss_with_gradient", logits, tokens)
        what = f"next_token_loss(logits {_shape(logits.shape)} of size {scale:g}, tokens)"
        loss = got["loss"]
        check(torch.is_tensor(loss) and loss.shape == (),
              f"{what}: return a scalar (0-dim) tensor, the mean over batch and positions")
        assert_close(loss, want["loss"], rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL,
                     dtype=torch.float64, what=what)
        # train backpropagates through the loss: its gradient is (softmax - one-hot) / count at
        # every position but the last, which only a loss computed from the logits has (the
        # same float64 tolerance: a reordered sum moves it by ~1e-16).
        check(got["gradient"] is not None,
              f"{what}: the loss has no gradient with respect to the logits; compute it from "
              "them with torch operations (no .item(), .detach() or new tensors), so that "
              "train can backpropagate through it.")
        assert_close(got["gradient"], want["gradient"], rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL,
                     dtype=torch.float64, what=f"the gradient of {what} with respect to the logits")


# ----------------------------------------------------------------------------- the language


def _transition(rng: torch.Generator, d_vocab: int) -> torch.Tensor:
    """A random irreducible, aperiodic chain with about half its transitions impossible."""
    weights = torch.rand(d_vocab, d_vocab, generator=rng, dtype=torch.float64)
    weights = weights * (torch.rand(d_vocab, d_vocab, generator=rng) < 0.5)
    tokens = torch.arange(d_vocab)
    weights[tokens, (tokens + 1) % d_vocab] += 0.5  # every token reachable
    weights[0, 0] += 0.5  # aperiodic
    return weights / weights.sum(dim=1, keepdim=True)


def _slow_transition(rng: torch.Generator, d_vocab: int, leak: float = 1e-4) -> torch.Tensor:
    """An irreducible, aperiodic chain that mixes slowly: two groups of tokens, each leaving for
    the other with probability about `leak` (its second eigenvalue is 1 - O(leak))."""
    half = d_vocab // 2
    weights = torch.rand(d_vocab, d_vocab, generator=rng, dtype=torch.float64) + 0.1
    weights[:half, half:] = 0.0
    weights[half:, :half] = 0.0
    weights[half - 1, half] = leak * weights[half - 1].sum()
    weights[-1, 0] = 3 * leak * weights[-1].sum()  # unequal leaks: pi is not uniform per group
    return weights / weights.sum(dim=1, keepdim=True)


@pytest.mark.points(1)
@pytest.mark.public
def test_stationary_distribution(student, reference, rng):
    """stationary_distribution matches the reference (2 tokens, more, a slowly mixing chain)"""
    # Docstring (stationary_distribution): "pi @ transition = pi, entries >= 0 summing to 1",
    # "transition: (d_vocab, d_vocab) float64, rows summing to 1, irreducible and aperiodic": 2
    # tokens, more, and a slowly mixing chain.
    # Docstring: "Returns float64, accurate to about 1e-10" for any irreducible, aperiodic
    # chain, checked at atol 1e-10. The random chains mix fast (second eigenvalue ~0.3), so a
    # fixed number of power iterations from a uniform start converges on them; the slowly
    # mixing chain (second eigenvalue 1 - gap, gap 4e-5 to 2e-4) leaves 10,000 power
    # iterations ~0.03 off, and power iteration stopped when pi changes by less than 1e-13 per
    # step is off by about 1e-13 / gap, 5e-10 to 2e-9. The tolerance from the conditioning: pi
    # moves by about |dP| / gap when the chain moves by dP, and a backward-stable method (the
    # eigenvector, a linear solve, least squares, repeated squaring) solves a chain within a
    # few u = 1.1e-16 of the given one, so it is within ~u / gap ~ 3e-12 of the exact pi on any
    # CPU and LAPACK. Measured on 3000 draws of the slow chain against a 40-digit solve: torch's
    # and numpy's eig 7e-12 at most, linear solve 1e-12, lstsq 2e-12, repeated squaring 8e-13,
    # and every one of them within 8e-12 of an eigenvector solve: 12 times inside 1e-10.
    cases = [(_transition(rng, 2), ""), (_transition(rng, _size(rng, 5, 16)), "")]
    slow = _slow_transition(rng, _size(rng, 6, 12))
    second = float(torch.linalg.eigvals(slow).abs().sort(descending=True).values[1])
    cases.append((slow, f" that mixes slowly (second eigenvalue {second:.6f}; a fixed number of "
                        "power iterations has not converged on it, and a change per step of "
                        f"d leaves pi about d / {1 - second:.1e} off: the docstring asks for "
                        "pi accurate to about 1e-10, so use the eigenvector or solve the "
                        "linear system)"))
    for transition, label in cases:
        d_vocab = transition.shape[0]
        got = student.call("transformer.stationary_distribution", transition)
        want = reference.call("transformer.stationary_distribution", transition)
        assert_close(got, want, rtol=0, atol=1e-10, dtype=torch.float64,
                     what=f"stationary_distribution(a ({d_vocab}, {d_vocab}) transition matrix"
                          f"{label})")


@pytest.mark.points(1)
@pytest.mark.public
def test_entropy_rate(student, reference, rng):
    """entropy_rate matches the reference on chains with impossible transitions (0 log 0)"""
    # Docstring (entropy_rate): "A float64 scalar (0-dim) tensor", "0 log 0 = 0: most entries of
    # P are 0": about half the transitions impossible; 2 tokens in case 1.
    for d_vocab in (2, _size(rng, 5, 16)):
        transition = _transition(rng, d_vocab)
        got = student.call("transformer.entropy_rate", transition)
        want = reference.call("transformer.entropy_rate", transition)
        what = (f"entropy_rate(a ({d_vocab}, {d_vocab}) transition matrix with "
                f"{int((transition == 0).sum())} zero entries)")
        check(torch.is_tensor(got) and got.shape == (), f"{what}: return a scalar (0-dim) tensor")
        assert_close(got, want, rtol=0, atol=1e-9, dtype=torch.float64, what=what)


# ----------------------------------------------------------------------------- training


@pytest.mark.points(1)
@pytest.mark.public
def test_train_matches_the_reference_step_by_step(student, reference, rng, seed):
    """train's losses and weights match the reference for a few steps from the same start"""
    # Docstring (train): "return the loss of every step, as floats", "make one optimiser", "then
    # for each of steps steps: tokens = batches(generator)", "Returns a list of steps Python
    # floats (loss.item()), the loss before each step": 4 steps from shared weights in float64.
    d_vocab = _size(rng, 4, 10)
    table = torch.randn(d_vocab, d_vocab, generator=rng, dtype=torch.float64)
    bias = torch.randn(d_vocab, generator=rng, dtype=torch.float64)
    options = {"steps": 4, "batch": _size(rng, 1, 4), "pos": _size(rng, 2, 8), "lr": 0.05,
               "weight_decay": 0.5, "seed": seed % 2**31}
    got = student.probe("transformer.train_steps", table, bias, timeout=20, **options)
    want = reference.probe("transformer.train_steps", table, bias, timeout=20, **options)
    what = (f"train(a bigram model, batches, steps=4, lr=0.05, weight_decay=0.5) on batches of "
            f"{_shape((options['batch'], options['pos']))} tokens, in float64")
    check(got["loss_types"] == ["float"] and len(got["losses"]) == options["steps"],
          f"{what} returned {len(got['losses'])} losses of type(s) {got['loss_types']}; "
          "return one Python float per step (loss.item()).")
    check(got["batch_calls"] == options["steps"] and got["given_generator"],
          f"{what} called batches {got['batch_calls']} times for 4 steps"
          f"{'' if got['given_generator'] else ', not always with the generator it was given'}"
          "; draw one fresh batch per step with batches(generator).")
    # float64 throughout: implementations differ by reordered sums (~1e-15), far below what
    # one missing or extra step, a wrong learning rate or weight decay changes (~1e-2).
    losses, expected = got["losses"], want["losses"]
    for step, (loss, wanted) in enumerate(zip(losses, expected, strict=True)):
        if abs(loss - wanted) > 1e-8 * (1 + abs(wanted)):
            hint = ("the loss before any update differs: is it next_token_loss(model(tokens), "
                    "tokens) on tokens = batches(generator)?" if step == 0 else
                    f"the losses agree up to step {step - 1}, so the update differs: one "
                    "AdamW(model.parameters(), lr=lr, weight_decay=weight_decay) for the whole "
                    "run, gradients cleared before each backward, one optimizer.step() per "
                    "step, and the loss recorded before the step")
            fail(f"{what}: at step {step} the loss is {loss:.10g}, the reference's "
                 f"{wanted:.10g}; {hint}.")
    assert_close(got["state"], want["state"], rtol=1e-7, atol=1e-9,
                 what=f"{what}: the weights after the last step")


@pytest.mark.points(1)
def test_train_uses_its_device(student, reference, rng, seed):
    """train moves the model and each batch to the device it is given"""
    # Docstring (train): "Move the model to device", "move them to device": the meta device.
    got = student.probe("transformer.train_devices", 5, "meta", timeout=20)
    what = "train(model, batches, steps=2, device='meta')"
    check(got, f"{what} never ran the model on a batch.")
    check(got["parameters"] == ["meta"] and got["tokens"] == "meta",
          f"{what} ran the model with its parameters on {', '.join(got['parameters'])} and the "
          f"tokens on {got['tokens']}; move both to the device given (model.to(device), "
          "tokens.to(device)), so that training uses a GPU when asked.")
    # Where the model ran is the worker's report, and code that trains nothing can get it
    # right: the point also needs a loop that trains, two steps that move the weights. How
    # they move (the losses, the batches, the order of the updates) is the claim of
    # test_train_matches_the_reference_step_by_step, not of this test: a loop with no device
    # problem keeps this point whatever else is wrong with it.
    d_vocab = _size(rng, 4, 10)
    table = torch.randn(d_vocab, d_vocab, generator=rng, dtype=torch.float64)
    bias = torch.randn(d_vocab, generator=rng, dtype=torch.float64)
    options = {"steps": 2, "batch": 2, "pos": 4, "lr": 0.05, "weight_decay": 0.0,
               "seed": seed % 2**31}
    trained = student.probe("transformer.train_steps", table, bias, timeout=20, **options)
    state = trained["state"]
    moved = any(not torch.equal(state[name].cpu(), start)
                for name, start in (("table", table), ("bias", bias)) if name in state)
    check(moved, "train(a bigram model, batches, steps=2, device='cpu') left the model's "
          "weights where they started: the device point also needs a loop that trains (an "
          "optimizer.step() per step).")


LANGUAGE = {"d_vocab": 12, "branching": 3, "batch": 512, "pos": 16}
FULL_RUN = {"steps": 200, "batch": 64, "pos": 16, "lr": 0.05}
# The reference's bigram model ends 0.011-0.018 nats above the chain's entropy rate over 20
# chains (mean 0.014); a loop that does not learn stays above 1 nat.
FLOOR_MARGIN = 0.05


@pytest.mark.points(2)
def test_train_reaches_the_entropy_floor(student, reference, seed):
    """train, run in full on a Markov chain, gets within 0.05 nats of its entropy rate"""
    language = reference.probe("transformer.language", LANGUAGE["d_vocab"],
                               LANGUAGE["branching"], seed % 2**31, LANGUAGE["batch"],
                               LANGUAGE["pos"])
    transition, tokens = language["transition"], language["tokens"]
    got = student.probe("transformer.train_on_language", transition, language["start"], tokens,
                        seed=seed % 2**31 + 1, timeout=60, **FULL_RUN)
    what = (f"train(a bigram model, Markov-chain batches of {_shape((64, 16))}, steps=200, "
            "lr=0.05)")
    losses = got["losses"]
    check(len(losses) == FULL_RUN["steps"] and all(math.isfinite(loss) for loss in losses),
          f"{what} returned {len(losses)} losses (some not finite: "
          f"{not all(math.isfinite(loss) for loss in losses)}); expected 200 finite ones.")
    logits = got["logits"]
    check(torch.is_tensor(logits) and logits.shape == (*tokens.shape, LANGUAGE["d_vocab"]),
          f"{what}: the trained model's logits have the wrong shape")
    # The model's loss on fresh sequences minus the loss of the true chain on the same
    # sequences: the chain's expected loss is the entropy rate, and sharing the sequences
    # removes most of the sampling noise (its standard deviation is below 0.003 here).
    log_probs = logits.to(torch.float64).log_softmax(dim=-1)[:, :-1]
    model_loss = -log_probs.gather(-1, tokens[:, 1:, None]).mean().item()
    chain_loss = -transition[tokens[:, :-1], tokens[:, 1:]].log().mean().item()
    excess = model_loss - chain_loss
    check(excess <= FLOOR_MARGIN,
          f"{what}: the trained model's loss on fresh sequences is {model_loss:.4f} nats, "
          f"{excess:.4f} above the best possible ({chain_loss:.4f} on these sequences; the "
          f"entropy rate is {float(language['entropy_rate']):.4f}); at most {FLOOR_MARGIN} "
          f"above is expected. The training losses went from {losses[0]:.3f} to "
          f"{losses[-1]:.3f}.")


# ----------------------------------------------------------------------------- sampling


def _filter_case(student, reference, function: str, logits: torch.Tensor, argument,
                 label: str) -> None:
    described = f"logits {_shape(logits.shape)}{' ' + label if label else ''}"
    what = f"{function}({described}, {argument:.6g})"
    got = student.probe("transformer.filter_logits", function, logits, argument)
    want = reference.probe("transformer.filter_logits", function, logits, argument)
    check(not got["input_changed"], f"{what} changed its input; return a new tensor "
          "(masked_fill, not masked_fill_).")
    output = got["output"]
    check(torch.is_tensor(output) and output.shape == logits.shape,
          f"{what}: return a tensor of the logits' shape {_shape(logits.shape)}")
    kept, wanted = ~output.isneginf(), ~want["output"].isneginf()
    if not torch.equal(kept, wanted):
        row = int((kept != wanted).any(dim=-1).nonzero()[0])
        fail(f"{what}: in row {row} it keeps tokens {kept[row].nonzero().flatten().tolist()}, "
             f"the reference keeps {wanted[row].nonzero().flatten().tolist()} (logits "
             f"{[round(v, 4) for v in logits[row].tolist()]}).")
    assert_close(output, want["output"], rtol=0, atol=0, dtype=logits.dtype,
                 what=f"{what} (kept logits must be unchanged)")


@pytest.mark.points(1)
@pytest.mark.public
def test_top_k_filter(student, reference, rng):
    """top_k_filter keeps the k largest logits (all ties at the k-th; every token if k > d_vocab)"""
    # Docstring (top_k_filter): "Keep the k largest logits of each row", "logits: (batch,
    # d_vocab)", "Returns a new tensor of the same shape and dtype (do not modify logits)", "a tie
    # at the k-th place keeps every tied token", "k >= d_vocab keeps every token": integer
    # logits with ties, k = 1, k = d_vocab + 2.
    d_vocab = _size(rng, 6, 12)
    logits = 2 * torch.randn(3, d_vocab, generator=rng)
    _filter_case(student, reference, "top_k_filter", logits, _size(rng, 2, d_vocab - 1), "")
    _filter_case(student, reference, "top_k_filter", logits, 1, "")
    ties = torch.randint(0, 4, (4, 8), generator=rng).float()
    _filter_case(student, reference, "top_k_filter", ties, 3, "with ties")
    _filter_case(student, reference, "top_k_filter", logits, d_vocab + 2, "")


def _nucleus_p(rng: torch.Generator, logits: torch.Tensor, low: float, high: float) -> float:
    """A p in [low, high] at least 1e-6 from every row's cumulative sorted probabilities, so
    that rounding cannot decide which tokens are kept."""
    cumulative = logits.to(torch.float64).softmax(dim=-1).sort(dim=-1, descending=True)
    sums = cumulative.values.cumsum(dim=-1).flatten()
    while True:
        p = _uniform(rng, low, high)
        if (sums - p).abs().min() > 1e-6:
            return p


@pytest.mark.points(1)
@pytest.mark.public
def test_top_p_filter(student, reference, rng):
    """top_p_filter keeps the smallest set reaching p, including the token that crosses p"""
    # Docstring (top_p_filter): "keep the smallest set of most likely tokens whose probabilities
    # add up to at least p", "possibly with -inf entries already; 0 < p < 1", "Returns a new
    # tensor of the same shape and dtype", "Must work for logits as large as 1e4": -inf entries,
    # p = 1e-3, logits of size 1e4, and sums that reach p exactly (_exact_nucleus_case).
    logits = 1.5 * torch.randn(4, _size(rng, 6, 12), generator=rng, dtype=torch.float64)
    _filter_case(student, reference, "top_p_filter", logits, _nucleus_p(rng, logits, 0.3, 0.95),
                 "")
    filtered = logits.clone()
    filtered[:, :2] = float("-inf")
    _filter_case(student, reference, "top_p_filter", filtered,
                 _nucleus_p(rng, filtered, 0.3, 0.95), "with -inf entries")
    _filter_case(student, reference, "top_p_filter", logits, 1e-3, "")
    huge = 1e4 * torch.randn(3, 8, generator=rng)
    _filter_case(student, reference, "top_p_filter", huge, _uniform(rng, 0.5, 0.95),
                 "of size 1e4")
    _exact_nucleus_case(student, reference)


def _exact_nucleus_case(student, reference) -> None:
    """Docstring: "keep tokens while the probability of the tokens before them is still < p.
    So the token that makes the sum reach p is kept". The two readings of "crosses" (stop when
    the sum before a token is > p, or >= p) differ only where a cumulative probability equals p
    exactly, which random logits never give. Equal logits do, in any dtype and any order of
    operations: softmax gives exactly 1/4 each, and the sums 1/4, 1/2, 3/4 are exact. Which of
    the tied tokens are kept is not specified, so only how many is compared."""
    for dtype in (torch.float64, torch.float32):
        logits = torch.full((2, 6), float("-inf"), dtype=dtype)
        logits[:, :4] = 0.0
        logits[1, :4] = 2.5
        for p in (0.5, 0.75):
            what = (f"top_p_filter(logits {_shape(logits.shape)} {str(dtype)[6:]} with four equal "
                    f"finite logits per row (probabilities exactly 0.25 each), {p})")
            got = student.probe("transformer.filter_logits", "top_p_filter", logits, p)
            want = reference.probe("transformer.filter_logits", "top_p_filter", logits, p)
            output = got["output"]
            check(torch.is_tensor(output) and output.shape == logits.shape,
                  f"{what}: return a tensor of the logits' shape {_shape(logits.shape)}")
            kept = (~output.isneginf()).sum(dim=-1).tolist()
            wanted = (~want["output"].isneginf()).sum(dim=-1).tolist()
            check(kept == wanted,
                  f"{what}: keeps {kept} tokens per row, the reference {wanted}. The sum of the "
                  f"probabilities reaches p = {p} exactly at token {wanted[0]}: that token is "
                  "the last one kept (keep a token while the sum of the probabilities before it "
                  "is < p; stop at the first whose sum before it is >= p).")
            check(bool((~output.isneginf())[:, 4:].logical_not().all()),
                  f"{what}: keeps a token whose logit is -inf")


def _draws(student, logits: torch.Tensor, seed: int, options: dict, what: str) -> torch.Tensor:
    got = student.probe("transformer.sample_draws", logits, seed, options)
    first = got["first"]
    check(torch.is_tensor(first) and first.shape == (logits.shape[0],),
          f"{what}: return one token per row, shape ({logits.shape[0]},)")
    assert_dtype(first, torch.int64, what)
    check(torch.equal(first, got["second"]),
          f"{what}: two calls with generators in the same state gave different tokens (the "
          "global random seed differed between them); draw every random number from the "
          "generator argument.")
    return first


@pytest.mark.points(1)
@pytest.mark.public
def test_sample_next_token(student, reference, rng, seed):
    """sample_next_token: greedy exactly; draws from the tempered, filtered softmax"""
    # Docstring (sample_next_token): "One token per row: logits (batch, d_vocab) -> (batch,)
    # int64", "temperature 0 is greedy: each row's argmax (the first one on ties)", "divide the
    # logits by the temperature": ties at temperature 0, temperature 2 before top_p.
    ties = torch.randint(0, 3, (6, 7), generator=rng).float()
    what = f"sample_next_token(logits {_shape(ties.shape)} with ties, temperature=0)"
    got = _draws(student, ties, seed, {"temperature": 0.0}, what)
    assert_close(got, reference.call("transformer.sample_next_token", ties, None, 0.0),
                 rtol=0, atol=0, what=what)

    huge = 1e4 * torch.randn(5, 9, generator=rng)
    while (huge.topk(2, dim=-1).values.diff(dim=-1) > -50).any():
        huge = 1e4 * torch.randn(5, 9, generator=rng)
    what = "sample_next_token(logits (5, 9) of size 1e4, temperature=1)"
    got = _draws(student, huge, seed, {}, what)
    # Each row's largest logit leads by more than 50: any other token has probability < 1e-21.
    assert_close(got, huge.argmax(dim=-1), rtol=0, atol=0,
                 what=f"{what} (each row's largest logit has probability 1)")

    # Each case draws n tokens from one row repeated; a token's frequency is checked against
    # its probability p: by Hoeffding, P(|freq - p| > t) <= 2 exp(-2 n t^2) per token, and
    # with the union bound over the 2 cases x d_vocab tokens, t below keeps the chance that
    # a correct sampler fails under FALSE_FAILURE.
    n, d_vocab = 20_000, 8
    t = math.sqrt(math.log(2 * 2 * d_vocab / FALSE_FAILURE) / (2 * n))
    row = 1.5 * torch.randn(d_vocab, generator=rng, dtype=torch.float64)
    for options in ({"temperature": 0.5, "top_k": 4},
                    {"temperature": 2.0, "top_p": _nucleus_p(rng, row[None] / 2.0, 0.5, 0.8)}):
        described = ", ".join(f"{key}={value:.3g}" for key, value in options.items())
        what = f"sample_next_token(logits ({n}, {d_vocab}), the same row repeated, {described})"
        scaled = row[None] / options["temperature"]
        if "top_k" in options:
            scaled = reference.call("transformer.top_k_filter", scaled, options["top_k"])
        else:
            scaled = reference.call("transformer.top_p_filter", scaled, options["top_p"])
        probs = scaled[0].softmax(dim=-1)
        draws = _draws(student, row.expand(n, d_vocab).clone(), seed, options, what)
        frequencies = torch.bincount(draws.clamp(0, d_vocab - 1), minlength=d_vocab) / n
        impossible = (probs == 0) & (frequencies > 0)
        check(not impossible.any(),
              f"{what} drew token(s) {impossible.nonzero().flatten().tolist()}, which the "
              f"filters remove (probabilities {[round(p, 3) for p in probs.tolist()]}).")
        worst = int((frequencies - probs).abs().argmax())
        check((frequencies - probs).abs().max() <= t,
              f"{what}: token {worst} came up with frequency {frequencies[worst]:.3f}, its "
              f"probability is {probs[worst]:.3f} (more than {t:.3f} apart; a correct sampler "
              f"does this with probability below {FALSE_FAILURE:g}). Frequencies "
              f"{[round(f, 3) for f in frequencies.tolist()]}, probabilities "
              f"{[round(p, 3) for p in probs.tolist()]}: divide the logits by the temperature "
              "before the softmax and the filters.")

    # A filter that leaves one token per row ("draw one token from the softmax of what is
    # left"): that token, whatever the temperature.
    plain = torch.randn(4, 6, generator=rng)
    what = "sample_next_token(logits (4, 6), temperature=1.5, top_k=1)"
    got = _draws(student, plain, seed, {"temperature": 1.5, "top_k": 1}, what)
    assert_close(got, plain.argmax(dim=-1), rtol=0, atol=0,
                 what=f"{what} (top_k=1 leaves each row's largest logit alone)")

    # Docstring (sample_next_token): "apply top_k_filter if top_k is given, then top_p_filter
    # if top_p is given": rows whose probabilities after the temperature are 0.5, 0.3 and 0.2
    # (in a random order per row, shifted by a random constant), with top_k = 2 and top_p
    # drawn from 0.52 to 0.6. In the stated order top_k leaves 0.625 and 0.375, and top_p then
    # keeps the first only (the second's sum before it, 0.625, reaches p): every row draws its
    # most likely token, whatever the generator gives. In the other order (or with both masks
    # taken from the same logits) top_p keeps two tokens (0.5 < p <= 0.8), top_k keeps both,
    # and each row draws the second with probability 0.375: all 64 rows draw the first with a
    # chance of 0.625^64 = 1e-13. The margins (0.02 and more) dwarf float32 rounding.
    rows = 64
    temperature = float(torch.rand((), generator=rng)) * 1.5 + 0.5
    top_p = round(float(torch.rand((), generator=rng)) * 0.08 + 0.52, 3)
    order = torch.stack([torch.randperm(3, generator=rng) for _ in range(rows)])
    log_probs = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64).log()[order]
    shift = 3 * torch.randn(rows, 1, generator=rng, dtype=torch.float64)
    logits = (temperature * (log_probs + shift)).float()
    options = {"temperature": temperature, "top_k": 2, "top_p": top_p}
    what = (f"sample_next_token(logits ({rows}, 3) with probabilities 0.5, 0.3 and 0.2 after "
            f"the temperature, temperature={temperature:.3g}, top_k=2, top_p={top_p:g})")
    got = _draws(student, logits, seed, options, what)
    assert_close(got, logits.argmax(dim=-1), rtol=0, atol=0,
                 what=f"{what} (apply top_k_filter first, then top_p_filter to what it leaves: "
                      "top_k keeps 0.625 and 0.375, and top_p then keeps only the most likely "
                      "token, whatever the draw)")


@pytest.mark.points(1)
@pytest.mark.public
def test_generate(student, reference, rng):
    """generate feeds the last n_ctx tokens and appends what sample_next_token picks"""
    # Docstring (generate): "Extend prompt (batch, pos) int64 by max_new_tokens tokens", "run the
    # model on the last model.config.n_ctx tokens at most", "Returns (batch, pos +
    # max_new_tokens)": a prompt longer than n_ctx in case 2.
    d_vocab, n_ctx = _size(rng, 5, 10), _size(rng, 4, 6)
    weights = {key: torch.randn(rows, d_vocab, generator=rng)
               for key, rows in (("token", d_vocab), ("first", d_vocab), ("position", n_ctx))}
    cases = [(torch.randint(0, d_vocab, (2, n_ctx - 2), generator=rng), 4,
              {"temperature": 0.7, "top_k": 3, "top_p": 0.9}),
             (torch.randint(0, d_vocab, (1, n_ctx + 2), generator=rng), 2,
              {"temperature": 0.0})]
    for prompt, new, options in cases:
        what = (f"generate(model with n_ctx={n_ctx}, prompt {_shape(prompt.shape)}, "
                f"max_new_tokens={new}, {', '.join(f'{k}={v}' for k, v in options.items())})")
        got = student.probe("transformer.generate_with_recorded_sampler", n_ctx, weights,
                            prompt, new, options)
        want = reference.probe("transformer.generate_with_recorded_sampler", n_ctx, weights,
                               prompt, new, options)
        check(len(got["calls"]) == new,
              f"{what} called sample_next_token {len(got['calls'])} times; call it once for "
              "each new token.")
        check(got["lengths"] == want["lengths"],
              f"{what} ran the model on sequences of lengths {got['lengths']}, expected "
              f"{want['lengths']}: give it the last n_ctx tokens at most, the new ones "
              "included.")
        for step, (call, expected) in enumerate(zip(got["calls"], want["calls"], strict=True)):
            for key in ("temperature", "top_k", "top_p", "generator"):
                check(call[key] == expected[key],
                      f"{what}: sample_next_token's call {step} got {key}={call[key]!r}, "
                      f"expected {expected[key]!r} (for the generator: the one generate got).")
            assert_close(call["logits"], expected["logits"], rtol=1e-6, atol=1e-6,
                         what=f"{what}: the logits given to sample_next_token at step {step} "
                              "(the last position's)")
        assert_close(got["tokens"], want["tokens"], rtol=0, atol=0, dtype=torch.int64,
                     what=f"{what}: the tokens returned (the prompt, then each token "
                          "sample_next_token returned)")
