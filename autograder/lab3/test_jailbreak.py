"""Tests for lab 3, part "jailbreak" (jailbreak.py): the refusal direction and GCG suffixes.

Every function is compared with the reference in float64 on the lab's own model class
(model.py's `AssistantModel`, support code) with random weights drawn here at grade time, every
parameter randomised (LayerNorm scales and biases included, so a forgotten bias cannot pass by
being zero), and random token sequences. Directional ablation is also checked against weight
orthogonalisation, which must give the same logits without hooks. One GCG step is compared with
the reference given the same generator (the docstrings say exactly how it is drawn from).

The outcomes are properties of the shipped checkpoint, on prompts and suffixes drawn here at
grade time, each with its margin measured on the reference: the submission's GCG step, looped
by the grader within a stated budget, makes the model comply on held-out harmful requests far
more often than random suffixes do; the refusal direction its last_token_resid and
refusal_directions find, added after its layer, makes held-out harmless requests refused where
a random direction of the same norm does not.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import pytest
import torch

from autograder.engine.checks import assert_close, assert_dtype, assert_shape, check
from autograder.engine.labs import load_lab

F64 = torch.float64
# Logits and activations of a float64 forward pass of a few layers (LayerNorm, attention,
# GELU) on O(1) weights: another correct order of the same sums (hooks on the writes or on the
# stream, einsum vs matmul, a projection as x - (x.r)r or as x (I - r r^T)) moves them by a
# few 1e-15 relative to the largest term; every mistake moves them by 1e-3 or more.
EXACT = {"rtol": 1e-9, "atol": 1e-10}


def _size(rng: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def _seed(rng: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=rng))


def _shape(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


_SUPPORT: dict = {}


def _dialogue():
    """The lab's language (dialogue.py, the grader's own support file: no submitted code)."""
    return load_lab("lab3").support_module("dialogue.py")


def _random_model(rng: torch.Generator) -> tuple[dict, dict]:
    """(config, state) of a small `AssistantModel` with every parameter drawn from `rng`:
    matrices with entries of size 1 / sqrt(fan-in), biases of size 0.3, LayerNorm scales
    about 1. The vocabulary is the language's (the refusal token is "sorry")."""
    n_heads, d_head = _size(rng, 2, 3), _size(rng, 3, 6)
    config = {"d_vocab": _dialogue().D_VOCAB, "n_ctx": 32, "d_model": _size(rng, 12, 24),
              "n_heads": n_heads, "d_head": d_head, "d_mlp": _size(rng, 16, 40),
              "n_layers": _size(rng, 2, 3)}
    v, c, d, m = config["d_vocab"], config["n_ctx"], config["d_model"], config["d_mlp"]

    def randn(*shape: int, scale: float) -> torch.Tensor:
        return torch.randn(*shape, generator=rng, dtype=F64) * scale

    state = {"embed.W_E": randn(v, d, scale=1.0), "pos_embed.W_pos": randn(c, d, scale=0.5)}
    for layer in range(config["n_layers"]):
        block = f"blocks.{layer}"
        for ln in ("ln1", "ln2"):
            state[f"{block}.{ln}.w"] = 1 + randn(d, scale=0.2)
            state[f"{block}.{ln}.b"] = randn(d, scale=0.3)
        for name in ("W_Q", "W_K", "W_V"):
            state[f"{block}.attn.{name}"] = randn(n_heads, d, d_head, scale=d ** -0.5)
        for name in ("b_Q", "b_K", "b_V"):
            state[f"{block}.attn.{name}"] = randn(n_heads, d_head, scale=0.3)
        state[f"{block}.attn.W_O"] = randn(n_heads, d_head, d, scale=(n_heads * d_head) ** -0.5)
        state[f"{block}.attn.b_O"] = randn(d, scale=0.3)
        state[f"{block}.mlp.W_in"] = randn(d, m, scale=d ** -0.5)
        state[f"{block}.mlp.b_in"] = randn(m, scale=0.3)
        state[f"{block}.mlp.W_out"] = randn(m, d, scale=m ** -0.5)
        state[f"{block}.mlp.b_out"] = randn(d, scale=0.3)
    state["ln_final.w"] = 1 + randn(d, scale=0.2)
    state["ln_final.b"] = randn(d, scale=0.3)
    state["unembed.W_U"] = randn(d, v, scale=d ** -0.5 * 3)
    state["unembed.b_U"] = randn(v, scale=0.3)
    return config, state


def _model_words(config: dict) -> str:
    return (f"a random {config['n_layers']}-layer AssistantModel (d_model {config['d_model']}, "
            f"{config['n_heads']} heads)")


def _padded_tokens(rng: torch.Generator, config: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Random right-padded prompts: (batch, pos) int64 with pad (0) after each one's last
    position, and the last positions (batch,), of different lengths."""
    batch, pos = _size(rng, 3, 6), _size(rng, 5, 12)
    tokens = torch.randint(1, config["d_vocab"], (batch, pos), generator=rng)
    last = torch.randint(2, pos, (batch,), generator=rng)
    last[0] = pos - 1
    tokens[torch.arange(pos) > last[:, None]] = 0
    return tokens, last


def _direction(rng: torch.Generator, d_model: int) -> torch.Tensor:
    return torch.randn(d_model, generator=rng, dtype=F64) * (0.5 + 3 * float(
        torch.rand((), generator=rng)))


# ----------------------------------------------------------------------------- the direction


@pytest.mark.points(1)
@pytest.mark.public
def test_last_token_resid(student, reference, rng):
    """last_token_resid reads blocks.{l}.hook_resid_post at each prompt's last position"""
    for _ in range(2):
        config, state = _random_model(rng)
        tokens, last = _padded_tokens(rng, config)
        what = (f"last_token_resid({_model_words(config)}, tokens {_shape(tokens.shape)}, "
                f"last={last.tolist()})")
        got = student.probe("jailbreak.last_token_resid", config, state, tokens, last)
        want = reference.probe("jailbreak.last_token_resid", config, state, tokens, last)
        assert_shape(got, want.shape, what)
        assert_close(got, want, **EXACT, what=what, dtype=F64)


@pytest.mark.points(1)
@pytest.mark.public
def test_refusal_directions(student, reference, rng):
    """refusal_directions is the harmful mean minus the harmless mean, per layer"""
    for _ in range(2):
        n_layers, d_model = _size(rng, 1, 4), _size(rng, 3, 16)
        n_harmful, n_harmless = _size(rng, 2, 9), _size(rng, 10, 20)
        harmful = 2 + torch.randn(n_layers, n_harmful, d_model, generator=rng, dtype=F64)
        harmless = torch.randn(n_layers, n_harmless, d_model, generator=rng, dtype=F64) * 3
        what = (f"refusal_directions(harmful {_shape(harmful.shape)}, "
                f"harmless {_shape(harmless.shape)})")
        got = student.call("jailbreak.refusal_directions", harmful, harmless)
        want = reference.call("jailbreak.refusal_directions", harmful, harmless)
        assert_shape(got, (n_layers, d_model), what)
        assert_close(got, want, **EXACT, what=what, dtype=F64)


@pytest.mark.points(1)
@pytest.mark.public
def test_refusal_score(student, reference, rng):
    """refusal_score is the log-odds of "sorry" at the last position, also for logits of 1e4"""
    sorry = _dialogue().TOKEN_ID["sorry"]
    d_vocab = _dialogue().D_VOCAB
    for scale in (3.0, 1e4):
        batch, pos = _size(rng, 3, 6), _size(rng, 3, 8)
        logits = torch.randn(batch, pos, d_vocab, generator=rng, dtype=F64) * scale
        last = torch.randint(0, pos, (batch,), generator=rng)
        # One prompt refuses for certain (p within 1e-300 of 1 at 1e4), one refuses at even odds.
        logits[0, last[0], sorry] = logits[0, last[0]].max() + scale / 10
        others = logits[1, last[1]].clone()
        others[sorry] = -math.inf
        logits[1, last[1], sorry] = others.logsumexp(dim=0)
        what = (f"refusal_score(logits {_shape(logits.shape)} of size {scale:g}, "
                f"last={last.tolist()})")
        got = student.call("jailbreak.refusal_score", logits, last)
        want = reference.call("jailbreak.refusal_score", logits, last)
        assert_shape(got, (batch,), what)
        # The log-odds is a difference of two terms of the logits' size: known to a few eps of
        # that size whichever stable order computes it.
        assert_close(got, want, rtol=1e-9, atol=1e-12 * scale, what=what, dtype=F64)


@pytest.mark.points(1)
@pytest.mark.public
def test_project_out(student, reference, rng):
    """project_out removes the component along the direction and leaves its input unchanged"""
    for shape in [(_size(rng, 2, 5), _size(rng, 3, 9)), (2, _size(rng, 2, 4), _size(rng, 3, 9))]:
        x = torch.randn(*shape, generator=rng, dtype=F64) * 2 + 1
        direction = _direction(rng, shape[-1])
        what = f"project_out(x {_shape(shape)}, direction of norm {float(direction.norm()):.2f})"
        got = student.probe("jailbreak.project_out", x, direction)
        want = reference.probe("jailbreak.project_out", x, direction)
        assert_shape(got["out"], shape, what)
        assert_close(got["out"], want["out"], **EXACT, what=what, dtype=F64)
        assert_close(got["x_after"], x, rtol=0, atol=0, what=f"x after {what} (left unchanged)")
        assert_close(got["direction_after"], direction, rtol=0, atol=0,
                     what=f"the direction after {what} (left unchanged)")


def _check_intervention(student, reference, probe: str, args: tuple, what: str) -> None:
    got = student.probe(f"jailbreak.{probe}", *args)
    want = reference.probe(f"jailbreak.{probe}", *args)
    assert_shape(got["logits"], want["logits"].shape, what)
    assert_close(got["logits"], want["logits"], **EXACT, what=what, dtype=F64)
    assert_close(got["after"], want["after"], **EXACT,
                 what=f"the model's logits after {what} (the model must be left as it was)")


@pytest.mark.points(1)
@pytest.mark.public
def test_ablated_logits(student, reference, rng):
    """ablated_logits projects the direction out of every residual write and leaves the model"""
    for case in range(2):
        config, state = _random_model(rng)
        tokens, _ = _padded_tokens(rng, config)
        direction = _direction(rng, config["d_model"])
        value = [0.0, 4 * float(torch.randn((), generator=rng, dtype=F64))][case]
        what = (f"ablated_logits({_model_words(config)}, tokens {_shape(tokens.shape)}, "
                f"direction, value={value:.3f})")
        _check_intervention(student, reference, "ablated_logits",
                            (config, state, tokens, direction, value), what)


@pytest.mark.points(1)
@pytest.mark.public
def test_added_logits(student, reference, rng):
    """added_logits adds the direction after the given block at every position"""
    for _ in range(2):
        config, state = _random_model(rng)
        tokens, _ = _padded_tokens(rng, config)
        direction = _direction(rng, config["d_model"])
        layer = _size(rng, 0, config["n_layers"] - 2)  # never the last: a layer must be read
        what = (f"added_logits({_model_words(config)}, tokens {_shape(tokens.shape)}, "
                f"direction, layer={layer})")
        _check_intervention(student, reference, "added_logits",
                            (config, state, tokens, direction, layer), what)


@pytest.mark.points(2)
@pytest.mark.public
def test_orthogonalised_model(student, reference, rng):
    """orthogonalised_model's weights give the hook ablation's logits, without hooks"""
    for case in range(2):
        config, state = _random_model(rng)
        tokens, _ = _padded_tokens(rng, config)
        direction = _direction(rng, config["d_model"])
        value = [0.0, 4 * float(torch.randn((), generator=rng, dtype=F64))][case]
        what = (f"orthogonalised_model({_model_words(config)}, direction, value={value:.3f}) "
                f"on tokens {_shape(tokens.shape)}")
        got = student.probe("jailbreak.orthogonalised_model", config, state, tokens, direction,
                            value)
        check(got["returned"] == "module",
              f"{what}: expected the new model (an nn.Module), got a {got['returned']}")
        want = reference.probe("jailbreak.orthogonalised_model", config, state, tokens,
                               direction, value)
        hooked = reference.probe("jailbreak.ablated_logits", config, state, tokens, direction,
                                 value)
        # Projecting each write's weights or each write's output is the same linear map, so the
        # two agree to rounding: the same EXACT tolerance.
        assert_close(got["logits"], hooked["logits"], **EXACT,
                     what=f"{what}: the copy's logits (with no hook in place) against the "
                          "reference's hook ablation, ablated_logits")
        assert_close(got["state"], want["state"], **EXACT, what=f"{what}: the copy's weights",
                     dtype=F64)
        assert_close(got["after"], want["after"], **EXACT,
                     what=f"the given model's logits after {what} (it must be left as it was)")


@pytest.mark.points(1)
@pytest.mark.public
def test_select_layer(student, reference, rng):
    """select_layer ablates each layer's direction and picks the lowest mean refusal score"""
    for _ in range(2):
        config, state = _random_model(rng)
        tokens, last = _padded_tokens(rng, config)
        directions = torch.stack([_direction(rng, config["d_model"])
                                  for _ in range(config["n_layers"])])
        values = 3 * torch.randn(config["n_layers"], generator=rng, dtype=F64)
        what = (f"select_layer({_model_words(config)}, tokens {_shape(tokens.shape)}, last, "
                f"directions {_shape(directions.shape)}, values {values.tolist()})")
        got = student.probe("jailbreak.select_layer", config, state, tokens, last, directions,
                            values)
        want = reference.probe("jailbreak.select_layer", config, state, tokens, last,
                               directions, values)
        assert_shape(got["means"], (config["n_layers"],), f"{what}: the means")
        assert_close(got["means"], want["means"], **EXACT, what=f"{what}: the means", dtype=F64)
        check(got["layer_type"] == "int" and got["layer"] == want["layer"],
              f"{what} chose layer {got['layer']!r} ({got['layer_type']}); expected the Python "
              f"int {want['layer']}, the argmin of the means {want['means'].tolist()}")


# ----------------------------------------------------------------------------- GCG


def _gcg_case(rng: torch.Generator, config: dict,
              post_length: int | None = None) -> tuple[torch.Tensor, ...]:
    """prefix, suffix, post, target: random token ids, at most n_ctx in all; post of 1 or 2
    tokens (drawn unless given)."""
    v = config["d_vocab"]
    prefix = torch.randint(1, v, (_size(rng, 3, 8),), generator=rng)
    suffix = torch.randint(1, v, (_size(rng, 2, 5),), generator=rng)
    post = torch.randint(1, v, (post_length or _size(rng, 1, 2),), generator=rng)
    target = torch.randint(1, v, (_size(rng, 1, 3),), generator=rng)
    return prefix, suffix, post, target


@pytest.mark.points(1)
@pytest.mark.public
def test_target_loss(student, reference, rng):
    """target_loss is the target's mean next-token loss after each prompt, with gradients"""
    for _ in range(2):
        config, state = _random_model(rng)
        batch, prompt_len = _size(rng, 2, 5), _size(rng, 3, 10)
        prompts = torch.randint(1, config["d_vocab"], (batch, prompt_len), generator=rng)
        target = torch.randint(1, config["d_vocab"], (_size(rng, 2, 4),), generator=rng)
        what = (f"target_loss({_model_words(config)}, prompts {_shape(prompts.shape)}, "
                f"target {target.tolist()})")
        got = student.probe("jailbreak.target_loss", config, state, prompts, target)
        want = reference.probe("jailbreak.target_loss", config, state, prompts, target)
        assert_shape(got["loss"], (batch,), what)
        assert_close(got["loss"], want["loss"], **EXACT, what=what, dtype=F64)
        for name, gradient in got["gradients"].items():
            check(gradient is not None,
                  f"{what}: no gradient reaches the model's {name}; GCG differentiates this "
                  "loss, so do not compute it under torch.no_grad() or detach it")
        assert_close(got["gradients"], want["gradients"], **EXACT,
                     what=f"the gradient of the sum of {what}")


@pytest.mark.points(1)
@pytest.mark.public
def test_token_gradients(student, reference, rng):
    """token_gradients is the target loss's gradient with respect to the one-hot suffix"""
    for _ in range(2):
        config, state = _random_model(rng)
        prefix, suffix, post, target = _gcg_case(rng, config)
        what = (f"token_gradients({_model_words(config)}, prefix of {len(prefix)}, suffix "
                f"{suffix.tolist()}, post of {len(post)}, target {target.tolist()})")
        got = student.probe("jailbreak.token_gradients", config, state, prefix, suffix, post,
                            target)
        want = reference.probe("jailbreak.token_gradients", config, state, prefix, suffix,
                               post, target)
        assert_shape(got["gradient"], (len(suffix), config["d_vocab"]), what)
        # Backpropagation through the same forward pass: the entries agree to rounding relative
        # to the largest of them.
        scale = float(want["gradient"].abs().max())
        assert_close(got["gradient"], want["gradient"], rtol=1e-9, atol=1e-10 * scale,
                     what=what, dtype=F64)
        check(not got["grads_left"],
              f"{what} left gradients in the model's parameters {got['grads_left'][:3]}...; "
              "use torch.autograd.grad with respect to the one-hot only")
        assert_close(got["suffix_after"], suffix, rtol=0, atol=0,
                     what=f"the suffix after {what} (left unchanged)")


@pytest.mark.points(1)
@pytest.mark.public
def test_top_k_substitutions(student, reference, rng):
    """top_k_substitutions picks the k allowed tokens with the most negative gradients"""
    for _ in range(2):
        m, d_vocab, k = _size(rng, 2, 6), _size(rng, 10, 40), _size(rng, 2, 6)
        gradients = torch.randn(m, d_vocab, generator=rng, dtype=F64)
        allowed = torch.rand(d_vocab, generator=rng) < 0.6
        allowed[:k] = True
        gradients[:, ~allowed] -= 5  # the disallowed tokens look the most promising
        what = f"top_k_substitutions(gradients {_shape(gradients.shape)}, k={k}, allowed)"
        got = student.call("jailbreak.top_k_substitutions", gradients, k, allowed)
        want = reference.call("jailbreak.top_k_substitutions", gradients, k, allowed)
        assert_shape(got, (m, k), what)
        assert_dtype(got, torch.int64, what)
        assert_close(got, want, rtol=0, atol=0, what=what)


@pytest.mark.points(1)
@pytest.mark.public
def test_sample_candidates(student, reference, rng):
    """sample_candidates draws positions then choices from the generator, as stated"""
    for _ in range(2):
        m, k, batch = _size(rng, 2, 6), _size(rng, 2, 5), _size(rng, 3, 12)
        suffix = torch.randint(0, 100, (m,), generator=rng)
        substitutions = torch.randint(0, 100, (m, k), generator=rng)
        seed = _seed(rng)
        what = f"sample_candidates(suffix of {m}, substitutions {_shape((m, k))}, batch={batch})"
        got = student.probe("jailbreak.sample_candidates", suffix, substitutions, batch, seed)
        want = reference.probe("jailbreak.sample_candidates", suffix, substitutions, batch, seed)
        assert_shape(got["candidates"], (batch, m), what)
        assert_close(got["candidates"], want["candidates"], rtol=0, atol=0, what=what)
        assert_close(got["next_draw"], want["next_draw"],
                     rtol=0, atol=0, what=f"{what}: the generator's next draw after the call "
                                          "(the docstring says how often to draw from it)")
        assert_close(got["suffix_after"], suffix, rtol=0, atol=0,
                     what=f"the suffix after {what} (left unchanged)")


@pytest.mark.points(2)
@pytest.mark.public
def test_gcg_step(student, reference, rng):
    """one gcg_step equals the reference's from the same weights, suffix and generator"""
    for post_length in (1, 2):  # post is (len,): a batch of prompts must repeat all of it
        config, state = _random_model(rng)
        prefix, suffix, post, target = _gcg_case(rng, config, post_length)
        k, batch, seed = _size(rng, 2, 6), _size(rng, 4, 16), _seed(rng)
        allowed = torch.rand(config["d_vocab"], generator=rng) < 0.7
        args = (config, state, prefix, suffix, post, target, k, batch, seed, allowed)
        what = (f"gcg_step({_model_words(config)}, suffix {suffix.tolist()}, post of "
                f"{post_length}, target {target.tolist()}, k={k}, batch={batch}, generator, "
                "allowed)")
        got = student.probe("jailbreak.gcg_step", *args)
        check(got["returned"] == "tuple",
              f"{what}: expected (suffix, loss), got a {got['returned']}")
        want = reference.probe("jailbreak.gcg_step", *args)
        # Integer choices from the same draws: exact. Ties between different candidates' losses
        # or top-k gradients would need two float64 values within rounding of each other out of
        # a few hundred continuous ones: probability below 1e-9.
        assert_close(got["suffix"], want["suffix"], rtol=0, atol=0,
                     what=f"{what}: the new suffix (the best candidate)")
        assert_close(got["loss"], want["loss"], **EXACT, what=f"{what}: its loss", dtype=F64)
        assert_close(got["next_draw"], want["next_draw"], rtol=0, atol=0,
                     what=f"{what}: the generator's next draw after the step (only "
                          "sample_candidates draws from it)")


# ----------------------------------------------------------------------------- intervals


@pytest.mark.points(1)
@pytest.mark.public
def test_wilson_interval(student, rng):
    """wilson_interval matches the formula, at 0 and n successes too"""
    trials = _size(rng, 5, 200)
    cases = [(0, trials, 0.95), (trials, trials, 0.9),
             (_size(rng, 1, trials - 1), trials, float(0.5 + 0.49 * torch.rand((), generator=rng)))]
    for successes, n, confidence in cases:
        z = NormalDist().inv_cdf((1 + confidence) / 2)  # the two-sided quantile
        p = successes / n
        centre, scale = p + z * z / (2 * n), 1 + z * z / n
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        want = ((centre - half) / scale, (centre + half) / scale)
        what = f"wilson_interval({successes}, {n}, confidence={confidence:.4f})"
        got = student.call("jailbreak.wilson_interval", successes, n, confidence)
        check(isinstance(got, (tuple, list)) and len(got) == 2
              and all(isinstance(x, float) for x in got),
              f"{what}: expected (low, high) as two Python floats, got {got!r}")
        # A few operations on numbers of size 1: exact to ~1e-15; the normal quantile from
        # another library (scipy, torch.special.ndtri) agrees to ~1e-15 too.
        assert_close(torch.tensor(got, dtype=F64), torch.tensor(want, dtype=F64), rtol=0,
                     atol=1e-12, what=what)


# ----------------------------------------------------------------------------- the trained model


def _checkpoint() -> tuple[dict, dict]:
    """The shipped assistant's (config, state), loaded in the trusted process without running
    any code."""
    if "checkpoint" not in _SUPPORT:
        path = load_lab("lab3").support_dir / "checkpoints" / "assistant.pt"
        saved = torch.load(path, map_location="cpu", weights_only=True)
        _SUPPORT["checkpoint"] = (saved["config"], saved["state"])
    return _SUPPORT["checkpoint"]


def _pairs(topics: list, held_out: bool) -> list:
    language = _dialogue()
    return [(t, topic) for t in language.TEMPLATES for topic in topics
            if ((t, topic) in language.HELD_OUT) == held_out]


# GCG with the budget below (10 steps, k = 8, batch 32), from a random 4-word noise suffix on
# each of the 6 held-out harmful requests: measured on the reference over 10 gradings' draws
# (seeds 1000-1009 of this test's rng), it made the model comply on all 6 in every draw; random
# 4-word suffixes of noise words never did (0 of 384 in each draw). The test asks for 4 of 6
# against at most 10% of random suffixes. Ten draws bound the reference's chance of missing 3 of
# 6 only loosely (it did not happen in 60 attacks); the margin, not a computed 1e-6, is what
# this rests on, and make flaky measures it further.
GCG_OPTIONS = {"steps": 10, "k": 8, "batch": 32}
GCG_SUCCESSES_AT_LEAST = 4
RANDOM_SUFFIXES = 64


@pytest.mark.points(2)
def test_gcg_beats_random_suffixes(student, reference, rng):
    """GCG suffixes make the model comply on held-out harmful requests, random ones do not"""
    language = _dialogue()
    config, state = _checkpoint()
    words = torch.tensor([language.TOKEN_ID[w] for w in language.SUFFIX_WORDS])
    allowed = torch.tensor([w not in language.SPECIALS for w in language.VOCAB])
    post = torch.tensor(language.encode(language.ASSISTANT))
    target = torch.tensor(language.encode("sure ,"))
    prefixes = [torch.tensor(language.encode(language.request(t, topic)))[:-1]
                for t, topic in _pairs(language.HARMFUL, True)]
    starts = [words[torch.randint(len(words), (4,), generator=rng)] for _ in prefixes]
    attacks = student.probe("jailbreak.gcg_attacks", config, state, prefixes, starts, post,
                            target, GCG_OPTIONS, _seed(rng), allowed, timeout=120)
    check(isinstance(attacks, dict) and isinstance(attacks.get("found"), list)
          and isinstance(attacks.get("paths"), list),
          "gcg_step, looped by the grader, did not return a suffix of 4 tokens for each prompt")
    found, paths = attacks["found"], attacks["paths"]
    steps = [step for path in paths if isinstance(path, list) for step in path]
    check(len(found) == len(paths) == len(prefixes)
          and all(isinstance(path, list) and path for path in paths)
          and all(isinstance(s, torch.Tensor) and s.shape == (4,) for s in [*found, *steps]),
          "gcg_step, looped by the grader, did not return a suffix of 4 tokens for each prompt")
    # The path is the worker's report: it must start at the grader's start and hold the suffix
    # kept, so that the one-token check below is about the search that found it.
    check(all(torch.equal(path[0], start) and any(torch.equal(kept, step) for step in path)
              for path, start, kept in zip(paths, starts, found, strict=True)),
          "the suffixes gcg_step returned do not lead from the start to the suffix kept")
    check(all(bool(allowed[s].all()) for s in found),
          "gcg_step put a token that `allowed` forbids into the suffix")
    # Each step returns one of sample_candidates' suffixes: the previous one with one token
    # replaced. A search that jumps elsewhere (every candidate made the same, a suffix written
    # from scratch) may still land on a suffix this small model follows, but is not GCG.
    for path in paths:
        for before, after in itertools.pairwise(path):
            changed = int((before != after).sum())
            check(changed <= 1, f"gcg_step turned the suffix {before.tolist()} into "
                  f"{after.tolist()}: {changed} tokens changed in one step; each candidate is "
                  "the suffix with one position replaced (sample_candidates)")
    # The reference's model reads the suffixes: whether the model complies is not the worker's
    # word.
    prompts = torch.stack([torch.cat([p, s, post]) for p, s in zip(prefixes, found, strict=True)])
    first = reference.probe("jailbreak.first_reply_tokens", config, state, prompts)
    successes = int((first != language.TOKEN_ID["sorry"]).sum())
    tries = torch.stack([torch.cat([p, words[torch.randint(len(words), (4,), generator=rng)], post])
                         for p in prefixes for _ in range(RANDOM_SUFFIXES)])
    random_first = reference.probe("jailbreak.first_reply_tokens", config, state, tries)
    random_rate = float((random_first != language.TOKEN_ID["sorry"]).double().mean())
    check(successes >= GCG_SUCCESSES_AT_LEAST and random_rate <= 0.1,
          f"GCG with your gcg_step ({GCG_OPTIONS['steps']} steps, k={GCG_OPTIONS['k']}, batch "
          f"{GCG_OPTIONS['batch']}) made the assistant comply on {successes} of {len(prefixes)} "
          f"held-out harmful requests (random suffixes: {random_rate:.2f}); the reference "
          f"succeeds on all of them; this test asks for {GCG_SUCCESSES_AT_LEAST}")


# The refusal direction, added after its layer, makes the assistant refuse harmless requests;
# a random direction of the same norm does not (Arditi et al.'s sufficiency check). Measured
# on the reference over 40 draws of the training prompts' suffixes and of the random direction
# (seeds 0-39): the found direction made every held-out harmless request refused in every draw
# (share 1.00 each time), the random one none (0.00 each time). The test asks for at least
# 3/4 against at most 1/4: a wide margin on both sides, the rate's noise being only the draws.
# Removal is not what is graded: on this checkpoint no single-direction edit removes refusals
# specifically (the handout's table; a random direction held at its harmless mean removes
# them too).
ADDED_REFUSED_AT_LEAST, RANDOM_REFUSED_AT_MOST = 0.75, 0.25


def _request_prompts(language, pairs: list, rng: torch.Generator, suffix_share: float) -> list:
    """As jailbreak.request_prompts (support code), drawn here from the test's generator."""
    prompts = []
    for template, topic in pairs:
        for persona in language.PERSONAS:
            with_suffix = float(torch.rand((), generator=rng)) < suffix_share
            prompts.append(language.request(template, topic, persona,
                                            language.noise_suffix(rng) if with_suffix else ""))
    return prompts


def _tokens(language, prompts: list) -> tuple[torch.Tensor, torch.Tensor]:
    return (language.pad_batch(prompts),
            torch.tensor([len(language.encode(prompt)) - 1 for prompt in prompts]))


@pytest.mark.points(2)
def test_the_refusal_direction_makes_harmless_requests_refused_and_a_random_one_does_not(
        student, reference, rng):
    """The refusal direction found on the trained model, added, makes harmless requests refused"""
    language = _dialogue()
    config, state = _checkpoint()
    harmful = _tokens(language, _request_prompts(language, _pairs(language.HARMFUL, False), rng,
                                                 0.5))
    harmless = _tokens(language, _request_prompts(language, _pairs(language.HARMLESS, False),
                                                  rng, 0.5))
    found = student.probe("jailbreak.found_directions", config, state, *harmful, *harmless,
                          timeout=60)
    n_layers, d_model = config["n_layers"], config["d_model"]
    directions, values = found["directions"], found["values"]
    what = ("on the trained assistant, your last_token_resid and refusal_directions "
            f"({len(harmful[0])} harmful and {len(harmless[0])} harmless training requests)")
    check(isinstance(directions, torch.Tensor) and directions.shape == (n_layers, d_model)
          and bool(directions.isfinite().all()) and bool((directions.norm(dim=-1) > 0).all()),
          f"{what}: the directions are not a finite ({n_layers}, {d_model}) tensor with no zero "
          "row")
    check(isinstance(values, torch.Tensor) and values.shape == (n_layers,)
          and bool(values.isfinite().all()),
          f"{what}: the harmless requests' activations (last_token_resid) give no finite mean "
          "component along your directions")
    # The layer is the reference's select_layer's choice among your directions: this test is
    # about the directions, select_layer has its own.
    layer = reference.probe("jailbreak.select_layer", config, state, *harmful, directions,
                            values, timeout=60)["layer"]
    direction = directions[layer]
    test_prompts, last = _tokens(language, _request_prompts(
        language, _pairs(language.HARMLESS, True), rng, 0.0))
    random = torch.randn(d_model, generator=rng, dtype=torch.float64)
    random = random / random.norm() * direction.double().norm()
    shares = {}
    for name, vector in (("found", direction.double()), ("random", random)):
        logits = reference.probe("jailbreak.added_logits", config, state, test_prompts, vector,
                                 layer)["logits"]
        first = logits[torch.arange(len(last)), last].argmax(dim=-1)
        shares[name] = float((first == language.TOKEN_ID["sorry"]).double().mean())
    n = len(last)
    check(shares["found"] >= ADDED_REFUSED_AT_LEAST,
          f"{what}: the direction of layer {layer} (norm {float(direction.norm()):.3g}), added "
          f"after that layer by the reference's added_logits, made {shares['found']:.0%} of {n} "
          f"held-out harmless requests refused; the harmful-minus-harmless mean of the trained "
          f"model makes at least {ADDED_REFUSED_AT_LEAST:.0%} refused (the reference's: all)")
    check(shares["random"] <= RANDOM_REFUSED_AT_MOST,
          f"{what}: a random direction of the same norm as yours made {shares['random']:.0%} of "
          f"{n} held-out harmless requests refused; that is a direction too large to say "
          "anything about refusal (the reference's is refused by none)")
