"""Lab 2, part "modular_addition": the Fourier algorithm of a grokked modular-addition model.

Every input is drawn at grade time from the `rng` fixture: the modulus p of the unit tests,
random functions, embeddings, logits and activations with a planted structure, the key
frequencies, the split, and the checkpoints along training. The hidden tests also run the
analysis on the checkpoint this repository trained (loaded here from the lab's support
folder with `torch.load(weights_only=True)`); its activations come from the reference's run
of the unchanged support model and are handed to the submission (the reference's own worker
uses its own run of them). Only what a test needs crosses a process boundary, and the final
model's 26 MB of neurons go to the submission a block at a time: lab 2 is graded within 1 GiB.

Tolerances: the analysis is specified in float64 on the same inputs, so results agree to
rounding (~1e-13 relative on sums of ~p^3 terms); 1e-9 leaves a margin of four orders for
einsum vs matmul or another order of summation, while every mistake the handout warns about
changes a value by more than 1e-3.
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.engine.checks import (
    assert_close,
    assert_dtype,
    assert_finite,
    assert_shape,
    check,
    fail,
)
from autograder.engine.labs import load_lab

PRIMES = (7, 11, 13, 17, 19, 23, 29)
# Properties of the shipped checkpoint that the reference's numbers show with a wide margin:
# its key frequencies' waves explain more than EXPLAINED_AT_LEAST of its centred logits (97%);
# at the end of training the restricted loss is within RESTRICTED_FACTOR of the loss on all
# pairs (0.25 times it) and the excluded loss more than EXCLUDED_FACTOR times the training
# loss (7e7 times).
EXPLAINED_AT_LEAST = 0.9
RESTRICTED_FACTOR = 10.0
EXCLUDED_FACTOR = 100.0
F64 = torch.float64
TIGHT = dict(rtol=1e-9, atol=1e-9)
NEURONS_PER_CALL = 32


def _primes(rng: torch.Generator, count: int = 2) -> list[int]:
    order = torch.randperm(len(PRIMES), generator=rng)[:count]
    return sorted(PRIMES[int(i)] for i in order)


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng))


def _basis(p: int) -> torch.Tensor:
    """The verdict's own Fourier basis (rows: constant, then cos and sin of k = 1..(p-1)/2)."""
    x = torch.arange(p, dtype=F64)
    rows = [torch.full((p,), p ** -0.5, dtype=F64)]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [(2 * math.pi * k * x / p).cos() * (2 / p) ** 0.5,
                 (2 * math.pi * k * x / p).sin() * (2 / p) ** 0.5]
    return torch.stack(rows)


def _row_name(p: int, row: int) -> str:
    if row == 0:
        return f"the constant 1/sqrt({p})"
    k = (row + 1) // 2
    return f"{'cos' if row % 2 else 'sin'}(2 pi {k} x / {p}) * sqrt(2/{p})"


def _frequencies(rng: torch.Generator, p: int, low: int, high: int) -> torch.Tensor:
    count = int(torch.randint(low, high + 1, (), generator=rng))
    return (torch.randperm((p - 1) // 2, generator=rng)[:count] + 1).sort().values


# ----------------------------------------------------------------------------- the Fourier basis


def _check_basis(got, p: int) -> None:
    what = f"fourier_basis({p})"
    check(isinstance(got, torch.Tensor), f"{what}: returned a {type(got).__name__}, "
          "expected a tensor")
    check(got.dim() == 2 and got.shape[1] == p,
          f"{what}: expected shape ({p}, {p}), got {tuple(got.shape)}")
    check(got.shape[0] == p,
          f"{what}: expected {p} rows (the constant, then cos and sin for each frequency "
          f"k = 1, ..., {(p - 1) // 2}), got {got.shape[0]} rows. Count the frequencies: "
          f"(p - 1) / 2 = {(p - 1) // 2} of them, starting at k = 1.")
    assert_close(got, got, what=what, dtype=F64)
    assert_finite(got, what)
    want = _basis(p)
    for row in range(p):
        if torch.allclose(got[row], want[row], rtol=0, atol=1e-12):
            continue
        norm = got[row].norm().item()
        same = [other for other in range(p)
                if torch.allclose(got[row], want[other], rtol=0, atol=1e-9)]
        direction = [other for other in range(p) if norm > 0 and torch.allclose(
            got[row] / norm, want[other], rtol=0, atol=1e-9)]
        if same:
            hint = f"it is what row {same[0]} should be: {_row_name(p, same[0])}"
        elif direction:
            hint = (f"it has norm {norm:.6g} and the direction of {_row_name(p, direction[0])}"
                    "; every row must have norm 1")
        else:
            hint = f"largest difference {(got[row] - want[row]).abs().max().item():.3g}"
        fail(f"{what}: row {row} should be {_row_name(p, row)}; {hint}.")
    gram = got @ got.T
    assert_close(gram, torch.eye(p, dtype=F64), rtol=0, atol=1e-9,
                 what=f"{what} @ {what}.T (the rows must be orthonormal)")


@pytest.mark.points(2)
@pytest.mark.public
def test_fourier_basis(student, rng):
    """fourier_basis is the orthonormal constant, cos, sin basis for two moduli"""
    # Docstring (fourier_basis): "Returns a float64 tensor of shape (p, p)", "Row 0 is the
    # constant 1 / sqrt(p)": every row checked by name, p = 3 included.
    for p in (*_primes(rng), 3):
        _check_basis(student.call("modular_addition.fourier_basis", p), p)


@pytest.mark.points(2)
@pytest.mark.public
def test_fourier_2d(student, reference, rng):
    """fourier_2d matches the reference and keeps the sum of squares (an orthonormal basis)"""
    # Docstring (fourier_2d): "The coefficients of functions of (a, b) in the 2-D Fourier basis",
    # "values: (p, p, n)", "Returns float64 (p, p, n)": float32 values in, n from 1 to 5.
    for p in _primes(rng):
        values = torch.randn(p, p, int(torch.randint(1, 6, (), generator=rng)), generator=rng)
        what = f"fourier_2d(values of shape {tuple(values.shape)})"
        got = student.call("modular_addition.fourier_2d", values)
        want = reference.call("modular_addition.fourier_2d", values)
        assert_close(got, want, **TIGHT, what=what, dtype=F64)
        # The verdict's own check: an orthonormal change of basis keeps the sum of squares.
        assert_close(got.pow(2).sum(dim=(0, 1)), values.double().pow(2).sum(dim=(0, 1)),
                     **TIGHT, what=f"{what}: the sum of squares of each function's coefficients")


# ----------------------------------------------------------------------------- the embedding


def _random_embedding(rng: torch.Generator, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """W_E (p + 1, d) of a few planted frequencies plus noise, and those frequencies."""
    d = int(torch.randint(4, 17, (), generator=rng))
    keys = _frequencies(rng, p, 1, 3)
    coefficients = torch.randn(p, d, generator=rng, dtype=F64) * 0.1
    for k in keys:
        coefficients[2 * k - 1: 2 * k + 1] += torch.randn(2, d, generator=rng, dtype=F64)
    number_rows = _basis(p).T @ coefficients
    return torch.cat([number_rows, torch.randn(1, d, generator=rng, dtype=F64) * 5]).float(), keys


@pytest.mark.points(1)
@pytest.mark.public
def test_embedding_frequency_norms(student, reference, rng):
    """embedding_frequency_norms matches the reference on random embeddings"""
    # Docstring (embedding_frequency_norms): "rows 0..p-1 embed the numbers, row p the", "for
    # k = 1, ..., (p - 1) / 2 (at index k - 1)", "Returns float64 of shape ((p - 1) / 2,)": the
    # row of the equals token is 5 times larger than the others; float32 in.
    for p in _primes(rng):
        W_E, _ = _random_embedding(rng, p)
        what = f"embedding_frequency_norms(W_E of shape {tuple(W_E.shape)})"
        got = student.call("modular_addition.embedding_frequency_norms", W_E)
        want = reference.call("modular_addition.embedding_frequency_norms", W_E)
        assert_close(got, want, rtol=1e-9, atol=1e-9, what=what, dtype=F64)


def _check_keys(got, want: torch.Tensor, what: str) -> None:
    check(isinstance(got, torch.Tensor), f"{what}: returned a {type(got).__name__}, expected "
          "an int64 tensor of frequencies")
    check(got.dtype == torch.int64, f"{what}: returned dtype {got.dtype}, expected int64")
    got_set, want_set = sorted(got.flatten().tolist()), want.tolist()
    if got_set == [k - 1 for k in want_set] or got_set == [k + 1 for k in want_set]:
        fail(f"{what}: expected the frequencies {want_set}, got {got_set}: off by one. Return "
             "the frequencies k themselves (k - 1 is the index into norms).")
    check(got_set == want_set, f"{what}: expected the frequencies {want_set}, got {got_set}")
    check(got.tolist() == want_set, f"{what}: sort the frequencies increasingly")


@pytest.mark.points(1)
@pytest.mark.public
def test_key_frequencies(student, reference, rng):
    """key_frequencies picks the strongest frequencies that carry the asked share of the power"""
    # Docstring (key_frequencies): "norms: ((p - 1) / 2,)", "The power of frequency k is
    # norms[k - 1] ** 2", "until their power adds up to at least share of the total", "sorted
    # increasingly, as an int64 tensor": the last case reaches the share exactly.
    for p in _primes(rng):
        share = round(_uniform(rng, 0.6, 0.95), 3)
        norms = torch.rand((p - 1) // 2, generator=rng, dtype=F64) * 0.3
        keys = _frequencies(rng, p, 1, 4)
        norms[keys - 1] += 1 + torch.rand(len(keys), generator=rng, dtype=F64)
        what = f"key_frequencies(norms of {len(norms)} frequencies, share={share})"
        got = student.call("modular_addition.key_frequencies", norms, share=share)
        want = reference.call("modular_addition.key_frequencies", norms, share=share)
        _check_keys(got, want, what)
    # "until their power adds up to at least `share`": powers 4, 4, 4, 1, 1, 1, 1 (in a drawn
    # order) reach 3/4 of their total, 16, with the first three exactly (every sum is exact), so
    # those three are the answer and a fourth is one too many.
    norms = torch.tensor([2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0], dtype=F64)
    order = torch.randperm(len(norms), generator=rng)
    norms = norms[order]
    what = "key_frequencies(norms 2, 2, 2, 1, 1, 1, 1 in some order, share=0.75)"
    got = student.call("modular_addition.key_frequencies", norms, share=0.75)
    want = reference.call("modular_addition.key_frequencies", norms, share=0.75)
    _check_keys(got, want, f"{what}: the three strongest carry exactly 0.75 of the power")
    # "in order of decreasing power", on float64 norms: two norms 1e-9 apart (powers 2e-9
    # apart: far above float64's resolution, below float32's), in both orders, at a share the
    # stronger reaches alone. Powers rounded to float32 tie, and a tie is broken by position:
    # wrong in one of the two orders. (Frequencies 1 and 4, so that the wrong one is not the
    # right one off by one.)
    for stronger in (0, 3):
        norms = torch.tensor([1.0, 0.1, 0.1, 1.0, 0.1], dtype=F64)
        norms[stronger] += 1e-9
        what = (f"key_frequencies(norms {norms.tolist()}, share=0.4): frequency "
                f"{stronger + 1}'s norm is 1e-9 larger, so it alone is the answer")
        got = student.call("modular_addition.key_frequencies", norms, share=0.4)
        want = reference.call("modular_addition.key_frequencies", norms, share=0.4)
        _check_keys(got, want, f"{what} (compare the powers in float64)")


# ----------------------------------------------------------------------------- the neurons


def _planted_neurons(rng: torch.Generator, p: int) -> torch.Tensor:
    """Activations (p^2, n) of neurons built in the 2-D Fourier basis: each of most neurons
    spreads its power over the eight terms of one frequency and puts its single largest
    coefficient on another frequency; two neurons split their power between two frequencies;
    one never fires."""
    n, half = 12, (p - 1) // 2
    coefficients = torch.randn(p, p, n, generator=rng, dtype=F64) * 0.01
    coefficients[0, 0] = torch.randn(n, generator=rng, dtype=F64)
    for m in range(n - 1):
        k, other = (torch.randperm(half, generator=rng)[:2] + 1).tolist()
        terms = [0, 2 * k - 1, 2 * k]
        size = 1.0 if m < n - 3 else 0.75
        signs = torch.randint(0, 2, (3, 3), generator=rng).to(F64) * 2 - 1
        block = signs * size * (1 + 0.1 * torch.rand(3, 3, generator=rng, dtype=F64))
        for i, row in enumerate(terms):
            for j, column in enumerate(terms):
                if (row, column) != (0, 0):
                    coefficients[row, column, m] = block[i, j]
        trap = 1.5 if m < n - 3 else 2.0
        coefficients[2 * other - 1, 2 * other, m] = trap
    basis = _basis(p)
    values = torch.einsum("ia,jb,ijn->abn", basis, basis, coefficients).reshape(p * p, n)
    values[:, -1] = 0.0
    return values.float()


def _check_clusters(got, want, what: str) -> None:
    check(isinstance(got, (tuple, list)) and len(got) == 2,
          f"{what}: expected a pair (frequency, share), got {type(got).__name__}")
    got_frequency, got_share = got
    want_frequency, want_share = want
    assert_close(got_frequency, want_frequency.double(), rtol=0, atol=0.5,
                 what=f"{what} frequency", dtype=torch.int64)
    assert_close(got_share, want_share, **TIGHT, what=f"{what} share", dtype=F64)


def _clusters_agree(got, want, what: str) -> None:
    """Compare the clusters, and when the labels differ say whether the partition is the
    same (a labelling mistake) or not."""
    check(isinstance(got, (tuple, list)) and len(got) == 2,
          f"{what}: expected a pair (frequency, share), got {type(got).__name__}")
    assert_shape(got[0], want[0].shape, f"{what} frequency")
    if not torch.equal(torch.as_tensor(got[0]).long(), want[0]):
        pairs = set(zip(got[0].tolist(), want[0].tolist(), strict=True))
        relabelled = len(pairs) == len({g for g, _ in pairs}) == len({w for _, w in pairs})
        wrong = int((torch.as_tensor(got[0]).long() != want[0]).sum())
        first = int((torch.as_tensor(got[0]).long() != want[0]).nonzero()[0])
        detail = (" The clusters group the same neurons, but label them differently: label "
                  "each neuron with its frequency k (1, ..., (p - 1) / 2), 0 for none."
                  if relabelled else "")
        fail(f"{what}: {wrong} of {len(want[0])} neurons get another frequency than expected; "
             f"the first is neuron {first}: expected {int(want[0][first])} (share "
             f"{float(want[1][first]):.3f}), got {int(got[0][first])}.{detail} A neuron's "
             "frequency is the one whose terms (cos and sin of k a, of k b, and their products)"
             " have the largest sum of squares, not the one with the largest single term.")
    _check_clusters(got, want, what)


@pytest.mark.points(2)
@pytest.mark.public
def test_neuron_frequencies(student, reference, rng):
    """neuron_frequencies clusters planted neurons by frequency, with a neuron that never fires"""
    # Docstring (neuron_frequencies): "activations: (p * p, n)", "Write them in the 2-D Fourier
    # basis", "except the constant (0, 0)", "Frequency k's terms are the coefficients (i, j)",
    # "Returns (frequency, share): int64 and float64, both (n,)", "A neuron that never fires
    # (variance 0) gets frequency 0 and share 0": planted neurons with a large constant term, a
    # largest single coefficient on another frequency, two split neurons and a dead one.
    for p in _primes(rng):
        activations = _planted_neurons(rng, p)
        threshold = round(_uniform(rng, 0.5, 0.65), 3)
        what = (f"neuron_frequencies(activations of shape {tuple(activations.shape)}, "
                f"threshold={threshold})")
        got = student.call("modular_addition.neuron_frequencies", activations,
                           threshold=threshold)
        want = reference.call("modular_addition.neuron_frequencies", activations,
                              threshold=threshold)
        _clusters_agree(got, want, what)


# ----------------------------------------------------------------------------- the logits


def _waves_plus_noise(rng: torch.Generator, p: int, keys: torch.Tensor) -> torch.Tensor:
    """Logits (p^2, p): waves cos(w_k (a + b - c)) of the key frequencies, a bias per answer
    c, an offset per input (a, b), and noise."""
    x = torch.arange(p, dtype=F64)
    a_plus_b_minus_c = x[:, None, None] + x[None, :, None] - x[None, None, :]
    logits = torch.randn(p, p, p, generator=rng, dtype=F64)
    for k in keys:
        logits += 5 * _uniform(rng, 0.5, 1.5) * (2 * math.pi * int(k) * a_plus_b_minus_c / p).cos()
    logits += 3 * torch.randn(p, generator=rng, dtype=F64)
    logits += 3 * torch.randn(p, p, 1, generator=rng, dtype=F64)
    return logits.reshape(p * p, p).float()


@pytest.mark.points(1)
@pytest.mark.public
def test_logit_fit(student, reference, rng):
    """logit_fit gives the reference's wave coefficients and explained share"""
    # Docstring (logit_fit): "The logits as a sum of waves", "logits: (p * p, p)", "frequencies:
    # (K,) int64", "First centre the logits over c", "Returns (coefficients, explained): float64
    # (K,)": waves plus an offset per input (which centring removes); float32 logits in.
    for p in _primes(rng):
        keys = _frequencies(rng, p, 1, 3)
        logits = _waves_plus_noise(rng, p, keys)
        fitted = _frequencies(rng, p, 1, 3)
        for frequencies in (keys, fitted):
            what = f"logit_fit(logits of shape {tuple(logits.shape)}, {frequencies.tolist()})"
            got = student.call("modular_addition.logit_fit", logits, frequencies)
            want = reference.call("modular_addition.logit_fit", logits, frequencies)
            check(isinstance(got, (tuple, list)) and len(got) == 2,
                  f"{what}: expected a pair (coefficients, explained)")
            assert_close(got[0], want[0], **TIGHT, what=f"{what} coefficients", dtype=F64)
            check(isinstance(got[1], float), f"{what}: explained must be a float, got "
                  f"{type(got[1]).__name__}")
            assert_close(got[1], want[1], **TIGHT, what=f"{what} explained")


def _centred(logits: torch.Tensor) -> torch.Tensor:
    return logits - logits.mean(dim=-1, keepdim=True)


@pytest.mark.points(1)
@pytest.mark.public
@pytest.mark.parametrize("function", ["restricted_logits", "excluded_logits"])
def test_ablated_logits(student, reference, rng, function):
    """{function} matches the reference up to a constant per input"""
    # Docstring (restricted_logits): "logits: (p * p, p) as in logit_fit", "the logits are a
    # function of (a, b)", "Keep its projection onto the span of the constant", "Returns float64
    # (p * p, p)"; (excluded_logits) "logits: (p * p, p); frequencies: (K,) int64": a bias per
    # answer c (kept by one, not removed by the other) shows after each row is centred.
    for p in _primes(rng):
        keys = _frequencies(rng, p, 1, 3)
        logits = _waves_plus_noise(rng, p, keys)
        what = f"{function}(logits of shape {tuple(logits.shape)}, {keys.tolist()})"
        got = student.call(f"modular_addition.{function}", logits, keys)
        want = reference.call(f"modular_addition.{function}", logits, keys)
        check(isinstance(got, torch.Tensor), f"{what}: returned a {type(got).__name__}, "
              "expected a tensor")
        assert_shape(got, want.shape, what)
        assert_dtype(got, F64, what)
        # Softmax ignores a constant added to all the logits of one input, so compare the
        # logits centred over the answers c.
        assert_close(_centred(got), _centred(want), **TIGHT,
                     what=f"{what}, each row centred (the constant per input ignored); the "
                          "constant over (a, b) of each answer c is "
                          f"{'kept' if function == 'restricted_logits' else 'not removed'}")


def _random_split(rng: torch.Generator, p: int) -> torch.Tensor:
    return torch.randperm(p * p, generator=rng)[: int(0.3 * p * p)].sort().values


def _check_measures(got, want: dict, what: str) -> None:
    check(isinstance(got, dict), f"{what}: expected a dict, got {type(got).__name__}")
    for key in want:
        check(key in got, f"{what}: the result has no key {key!r}")
        check(isinstance(got[key], float), f"{what}[{key!r}] must be a float, got "
              f"{type(got[key]).__name__}")
        assert_close(got[key], want[key], **TIGHT, what=f"{what}[{key!r}]")


@pytest.mark.points(1)
@pytest.mark.public
def test_progress_measures(student, reference, rng):
    """progress_measures gives the reference's four losses on random logits and a random split"""
    # Docstring (progress_measures): "logits: (p * p, p) of one checkpoint on all pairs", "Returns
    # a dict of float64 cross-entropies, as floats": float32 logits in, a random 30% split.
    for p in _primes(rng):
        keys = _frequencies(rng, p, 1, 3)
        logits = _waves_plus_noise(rng, p, keys) * 0.5
        train = _random_split(rng, p)
        what = f"progress_measures(logits of shape {tuple(logits.shape)}, 30% split, " \
               f"{keys.tolist()})"
        got = student.call("modular_addition.progress_measures", logits, train, keys)
        want = reference.call("modular_addition.progress_measures", logits, train, keys)
        _check_measures(got, want, what)


# ----------------------------------------------------------------------------- training


@pytest.mark.points(1)
@pytest.mark.public
def test_loss_fn(student, reference, rng):
    """loss_fn matches the reference, also for a confident model whose loss float32 loses"""
    # Docstring (loss_fn): "Mean cross-entropy of the last position's logits, computed in
    # float64", "logits: (batch, 3, p) (any float dtype)", "Returns a float64 scalar": float32
    # logits with a loss near 1e-10; float64 logits reach it through train_step below.
    for p in _primes(rng):
        batch = int(torch.randint(4, 20, (), generator=rng))
        labels = torch.randint(0, p, (batch,), generator=rng)
        ordinary = torch.randn(batch, 3, p, generator=rng) * 3
        confident = torch.randn(batch, 3, p, generator=rng)
        confident[torch.arange(batch), -1, labels] += 25  # loss about p e^-25: 1e-10
        for name, logits in (("random", ordinary), ("confident", confident)):
            what = f"loss_fn({name} float32 logits of shape {tuple(logits.shape)}, labels)"
            got = student.call("modular_addition.loss_fn", logits, labels)
            want = reference.call("modular_addition.loss_fn", logits, labels)
            assert_shape(got, (), what)
            # Each row's loss is logsumexp(z) - z_label, a difference of terms as large as the
            # row's largest logit (about 28 here): in float64 any order of operations (log_softmax,
            # logsumexp minus the label's logit, another CPU's exp and log) knows it only to a
            # few eps times that size, 6e-15, while the confident loss is about 1e-10. So the
            # tolerance is absolute at 16 eps times the largest logit, 1e-13, besides 1e-9
            # relative; float32 arithmetic gives a confident loss as 0, or misses it by 1e-6.
            scale = float(logits[:, -1].abs().max())
            assert_close(got, want, rtol=1e-9, atol=16 * torch.finfo(F64).eps * scale,
                         what=what, dtype=F64)


def _small_config(p: int) -> dict:
    return dict(p=p, train_fraction=0.5, d_model=16, n_heads=2, d_head=8, d_mlp=32, lr=1e-3,
                weight_decay=1.0, betas=[0.9, 0.98], epochs=1, overtrain=1.25, seed=0,
                init_std_scale=0.8)


_PARAMETER_SHAPES = {
    "W_E": ("vocab", "d_model"), "W_pos": (3, "d_model"),
    "blocks.0.attn.W_Q": ("n_heads", "d_model", "d_head"),
    "blocks.0.attn.W_K": ("n_heads", "d_model", "d_head"),
    "blocks.0.attn.W_V": ("n_heads", "d_model", "d_head"),
    "blocks.0.attn.W_O": ("n_heads", "d_head", "d_model"),
    "blocks.0.mlp.W_in": ("d_model", "d_mlp"), "blocks.0.mlp.W_out": ("d_mlp", "d_model"),
    "W_U": ("d_model", "p"),
}


@pytest.mark.points(2)
@pytest.mark.public
def test_train_step(student, reference, rng):
    """train_step takes the reference's AdamW steps from shared weights and optimiser state"""
    # Docstring (train_step): "One full-batch step", "Returns the loss before the step, as a
    # float": 3 steps from a given AdamW state; the losses and the weights are compared.
    for p in _primes(rng):
        config = _small_config(p)
        sizes = {**config, "vocab": p + 1}
        state = {name: torch.randn(*(sizes[s] if isinstance(s, str) else s for s in shape),
                                   generator=rng, dtype=F64) * 0.3
                 for name, shape in _PARAMETER_SHAPES.items()}
        moments = {name: [torch.randn(t.shape, generator=rng, dtype=F64) * 1e-3,
                          torch.rand(t.shape, generator=rng, dtype=F64) * 1e-5 + 1e-6]
                   for name, t in state.items()}
        step = int(torch.randint(5, 50, (), generator=rng))
        rows = _random_split(rng, p)
        a, b = rows // p, rows % p
        tokens = torch.stack([a, b, torch.full_like(a, p)], dim=1)
        labels = (a + b) % p
        args = (config, state, moments, step, tokens, labels, 3)
        what = (f"3 calls of train_step on a 1-layer model (p = {p}, d_model 16) in float64 "
                f"from given weights and AdamW state (step {step})")
        got = student.probe("modular_addition.train_steps", *args, timeout=20)
        want = reference.probe("modular_addition.train_steps", *args, timeout=20)
        check(got["loss_types"] == ["float"],
              f"{what}: train_step returned {', '.join(got['loss_types'])}; return the loss "
              "before the step as a Python float (loss.item())")
        # float64 throughout: einsum vs matmul and a reordered mean differ by ~1e-16; each
        # AdamW step divides by sqrt(exp_avg_sq) >= 1e-3, so weights agree to ~1e-12.
        assert_close(got["losses"], want["losses"], rtol=1e-10, atol=0,
                     what=f"{what}: the losses returned")
        assert_close(got["state"], want["state"], rtol=1e-9, atol=1e-11,
                     what=f"{what}: the weights after the steps")


# ----------------------------------------------------------------------------- the checkpoint

_CHECKPOINT: dict = {}


def _checkpoint() -> dict:
    """The shipped checkpoint, loaded in the trusted process without running any code."""
    if not _CHECKPOINT:
        path = load_lab("lab2").support_dir / "checkpoints" / "modular_addition.pt"
        _CHECKPOINT.update(torch.load(path, weights_only=True))
    return _CHECKPOINT


def _logits(reference, state: dict) -> torch.Tensor:
    """The logits of the support model with `state` on all pairs, from the reference's worker.
    The final weights' (asked by two tests) are kept; others are not."""
    if state is not _checkpoint()["final_state"]:
        return reference.probe("modular_addition.logits", _checkpoint()["config"], state,
                               timeout=60)
    if "_final_logits" not in _CHECKPOINT:
        _CHECKPOINT["_final_logits"] = reference.probe(
            "modular_addition.logits", _checkpoint()["config"], state, timeout=60)
    return _CHECKPOINT["_final_logits"]


def _checkpoint_keys(reference) -> torch.Tensor:
    """The key frequencies of the shipped model, as the reference finds them now."""
    norms = reference.call("modular_addition.embedding_frequency_norms",
                           _checkpoint()["final_state"]["W_E"])
    return reference.call("modular_addition.key_frequencies", norms)


@pytest.mark.points(1)
def test_embedding_of_the_checkpoint(student, reference, rng):
    """embedding_frequency_norms and key_frequencies find the trained model's key frequencies"""
    W_E = _checkpoint()["final_state"]["W_E"]
    what = f"embedding_frequency_norms(the trained W_E, shape {tuple(W_E.shape)})"
    got = student.call("modular_addition.embedding_frequency_norms", W_E)
    want = reference.call("modular_addition.embedding_frequency_norms", W_E)
    assert_close(got, want, **TIGHT, what=what, dtype=F64)
    for share in (0.9, round(_uniform(rng, 0.75, 0.95), 3)):
        what = f"key_frequencies(the trained embedding's norms, share={share})"
        got = student.call("modular_addition.key_frequencies", want, share=share)
        _check_keys(got, reference.call("modular_addition.key_frequencies", want,
                                        share=share), what)


@pytest.mark.points(1)
def test_neuron_clusters_of_the_checkpoint(student, reference):
    """neuron_frequencies clusters the trained model's neurons as the reference does"""
    config, state = _checkpoint()["config"], _checkpoint()["final_state"]
    neurons = reference.probe("modular_addition.neurons", config, state, timeout=60)
    what = (f"neuron_frequencies(the trained model's neurons, shape {tuple(neurons.shape)}, "
            f"given {NEURONS_PER_CALL} at a time)")
    # Each neuron is clustered on its own, so every neuron is judged whether the function
    # sees all of them at once or a block at a time; blocks of 1.6 MB keep the memory of the
    # grading small (the whole lab within its 1 GiB).
    frequency, share = [], []
    for block in neurons.split(NEURONS_PER_CALL, dim=1):
        got = student.call("modular_addition.neuron_frequencies", block.contiguous(),
                           timeout=20)
        check(isinstance(got, (tuple, list)) and len(got) == 2,
              f"{what}: expected a pair (frequency, share), got {type(got).__name__}")
        assert_shape(got[0], (block.shape[1],), f"{what} frequency")
        assert_shape(got[1], (block.shape[1],), f"{what} share")
        frequency.append(torch.as_tensor(got[0]))
        share.append(torch.as_tensor(got[1]))
    del neurons, block  # 26 MB; the reference's worker recomputes the same neurons itself
    want = reference.probe("modular_addition.neuron_clusters", config, state, timeout=60)
    _clusters_agree((torch.cat(frequency), torch.cat(share)), want, what)


@pytest.mark.points(1)
def test_logit_fit_of_the_checkpoint(student, reference):
    """logit_fit explains most of the trained model's logits with its key frequencies"""
    logits = _logits(reference, _checkpoint()["final_state"])
    keys = _checkpoint_keys(reference)
    what = f"logit_fit(the trained model's logits, key frequencies {keys.tolist()})"
    got = student.call("modular_addition.logit_fit", logits, keys, timeout=20)
    want = reference.call("modular_addition.logit_fit", logits, keys, timeout=20)
    check(isinstance(got, (tuple, list)) and len(got) == 2,
          f"{what}: expected a pair (coefficients, explained)")
    assert_close(got[0], want[0], **TIGHT, what=f"{what} coefficients", dtype=F64)
    assert_close(got[1], want[1], **TIGHT, what=f"{what} explained")
    check(got[1] > EXPLAINED_AT_LEAST,
          f"{what}: the waves explain {got[1]:.1%} of the centred logits; the trained model's "
          f"logits are mostly these waves (more than {EXPLAINED_AT_LEAST:.0%})")


def _loss_at(curves: dict, epoch: int, key: str) -> float:
    return float(curves[key][int((curves["epoch"] <= epoch).nonzero()[-1])])


@pytest.mark.points(2)
def test_progress_measures_along_training(student, reference, rng):
    """progress_measures along training: restricted falls, excluded rises, then test loss falls"""
    checkpoint = _checkpoint()
    keys = _checkpoint_keys(reference)
    epochs, curves = list(checkpoint["history_epochs"]), checkpoint["curves"]
    # The memorised snapshot: the first with a training loss below 1e-2; the circuit-forming
    # one: the last whose test accuracy is still below a half; one more drawn at random.
    memorised = next(i for i, epoch in enumerate(epochs)
                     if _loss_at(curves, epoch, "train_loss") < 1e-2)
    forming = max(i for i, epoch in enumerate(epochs)
                  if _loss_at(curves, epoch, "test_accuracy") < 0.5)
    others = [i for i in range(1, len(epochs)) if i not in (memorised, forming)]
    drawn = others[int(torch.randint(len(others), (), generator=rng))]
    chosen = sorted({memorised, forming, drawn})
    states = [(f"epoch {epochs[i]}", checkpoint["history_states"][i]) for i in chosen]
    states.append(("the final weights", checkpoint["final_state"]))
    measures = {}
    for name, state in states:
        logits = _logits(reference, state)
        what = f"progress_measures(the logits at {name}, the shipped split, {keys.tolist()})"
        args = (logits, checkpoint["train_indices"].long(), keys)
        got = student.call("modular_addition.progress_measures", *args, timeout=20)
        _check_measures(got, reference.call("modular_addition.progress_measures", *args,
                                            timeout=20), what)
        measures[name] = got
    early, late = measures[f"epoch {epochs[memorised]}"], measures[f"epoch {epochs[forming]}"]
    final = measures["the final weights"]
    check(late["restricted_loss"] < early["restricted_loss"]
          and late["excluded_loss"] > early["excluded_loss"]
          and late["test_loss"] > 1.0,
          f"from epoch {epochs[memorised]} to epoch {epochs[forming]}, while the test loss is "
          f"still {late['test_loss']:.3g}, the restricted loss should fall (got "
          f"{early['restricted_loss']:.3g} -> {late['restricted_loss']:.3g}) and the excluded "
          f"loss rise (got {early['excluded_loss']:.3g} -> {late['excluded_loss']:.3g})")
    full = (final["train_loss"] * len(checkpoint["train_indices"])
            + final["test_loss"] * (logits.shape[0] - len(checkpoint["train_indices"]))
            ) / logits.shape[0]
    check(final["restricted_loss"] < RESTRICTED_FACTOR * full,
          f"with the final weights the restricted loss is {final['restricted_loss']:.3g}, "
          f"expected within {RESTRICTED_FACTOR:g} times the loss on all pairs ({full:.3g}): "
          "the key frequencies alone should do the model's job")
    check(final["excluded_loss"] > EXCLUDED_FACTOR * final["train_loss"],
          f"with the final weights the excluded loss is {final['excluded_loss']:.3g}, expected "
          f"more than {EXCLUDED_FACTOR:g} times the training loss ({final['train_loss']:.3g})")
