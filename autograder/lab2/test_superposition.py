"""Tests for lab 2, part "superposition" (superposition.py): toy models of superposition.

Modules and losses are compared with the reference on the same randomised weights (every
parameter) in float64, where einsum vs matmul or another order of operations moves results by
~1e-15 relative and any wrong formula misses by orders of magnitude: rtol 1e-9. One float32
test checks the model in the dtype training uses. Batches are compared draw by draw (the
docstring fixes how the generator is used) and judged statistically. The trained geometry is a
property of the student's own training at grade time: how many features each sparsity keeps.
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.engine.checks import assert_close, assert_finite, assert_shape, check, fail

FALSE_FAILURE = 1e-6  # per statistical test, split evenly over its checks (union bound)
EXACT = {"rtol": 1e-9, "atol": 1e-12}


def _size(rng: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng))


def _shape(shape: tuple) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _seed(rng: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=rng))


def _state(rng: torch.Generator, n_instances: int, n_features: int, n_hidden: int,
           dtype: torch.dtype = torch.float64) -> dict:
    """Random weights for every parameter, the bias included."""
    return {"W": torch.randn(n_instances, n_hidden, n_features, generator=rng, dtype=dtype),
            "b_final": 0.3 * torch.randn(n_instances, n_features, generator=rng, dtype=dtype)}


def _features(rng: torch.Generator, batch: int, n_instances: int, n_features: int,
              dtype: torch.dtype = torch.float64) -> torch.Tensor:
    values = torch.rand(batch, n_instances, n_features, generator=rng, dtype=dtype)
    return values * (torch.rand(values.shape, generator=rng) < 0.6)


# ----------------------------------------------------------------------------- the data


@pytest.mark.points(1)
@pytest.mark.public
def test_feature_importance(student, reference, rng):
    """feature_importance is decay ** i"""
    # Docstring (feature_importance): "Returns float32 of shape (n_features,), starting at 1 for
    # feature 0": n_features from 1.
    for _ in range(2):
        n_features, decay = _size(rng, 1, 12), round(_uniform(rng, 0.5, 0.99), 3)
        what = f"feature_importance({n_features}, {decay})"
        got = student.call("superposition.feature_importance", n_features, decay)
        want = reference.call("superposition.feature_importance", n_features, decay)
        assert_close(got, want, rtol=1e-6, atol=0, what=what, dtype=torch.float32)


@pytest.mark.points(1)
@pytest.mark.public
def test_sparsity_sweep(student, reference, rng):
    """sparsity_sweep spaces densities geometrically from 1 down to lowest_density"""
    # Docstring (sparsity_sweep): "A feature's density is 1 - sparsity", "1 for instance 0,
    # lowest_density for the last one", "float32 of shape (n_instances,); n_instances >= 2".
    # Two instances is the promised edge case (exponents 0 and 1 only).
    for n_instances in (2, _size(rng, 3, 12)):
        lowest = round(_uniform(rng, 0.005, 0.5), 4)
        what = f"sparsity_sweep({n_instances}, lowest_density={lowest})"
        got = student.call("superposition.sparsity_sweep", n_instances, lowest)
        want = reference.call("superposition.sparsity_sweep", n_instances, lowest)
        assert_close(got, want, rtol=1e-6, atol=1e-7, what=what, dtype=torch.float32)


def _sparsity_case(rng: torch.Generator) -> torch.Tensor:
    """Random sparsities with the edge cases 0 (never zero) and 1 (always zero) included."""
    n_instances = _size(rng, 3, 6)
    sparsity = torch.rand(n_instances, generator=rng)
    sparsity[0], sparsity[-1] = 0.0, 1.0
    return sparsity[torch.randperm(n_instances, generator=rng)]


def _draws(seed: int, shape: tuple) -> torch.Tensor:
    """The presence draws of generate_batch with a generator seeded `seed`: its docstring fixes
    them as the second torch.rand of the batch's shape."""
    generator = torch.Generator().manual_seed(seed)
    torch.rand(shape, generator=generator)
    return torch.rand(shape, generator=generator)


@pytest.mark.points(1)
@pytest.mark.public
def test_generate_batch_draws(student, reference, rng):
    """generate_batch uses the generator as its docstring says (values, then the draws)"""
    # Docstring (generate_batch): "Returns float32 of shape (batch_size, n_instances,
    # n_features), on device", "an entry is present (keeps its value) where its draw is >= its
    # instance's sparsity", "Then move the batch to device": sparsities 0 and 1, one equal to a
    # draw, and the meta device.
    for _ in range(2):
        sparsity = _sparsity_case(rng)
        batch_size, n_features, seed = _size(rng, 3, 40), _size(rng, 2, 7), _seed(rng)
        # One instance's sparsity equals one of its presence draws, which the docstring
        # fixes: "present where the draw is >= the sparsity" keeps that entry, ">" drops it.
        middle = int(((sparsity > 0) & (sparsity < 1)).nonzero()[0])
        sparsity[middle] = _draws(seed, (batch_size, len(sparsity), n_features))[0, middle, 0]
        what = (f"generate_batch({batch_size}, sparsity={sparsity.tolist()!r}, {n_features}, "
                f"torch.Generator().manual_seed({seed}))")
        got = student.probe("superposition.batch", batch_size, sparsity, n_features, seed)
        want = reference.probe("superposition.batch", batch_size, sparsity, n_features, seed)
        assert_close(got, want, rtol=0, atol=0, what=what, dtype=torch.float32)
    # The meta device holds shapes without data: a batch left on the CPU shows.
    got = student.probe("superposition.batch_device", 4, sparsity, n_features, seed, "meta")
    check(got == {"device": "meta", "shape": [4, len(sparsity), n_features]},
          f"generate_batch(4, sparsity, {n_features}, generator, device='meta') returned a batch "
          f"on {got.get('device')!r} of shape {got.get('shape')}; expected one on 'meta' of "
          f"shape [4, {len(sparsity)}, {n_features}] (draw on the CPU, then move the batch to "
          "`device`)")


def _hoeffding(n: int, alpha: float) -> float:
    """t with P(|mean of n independent variables in [0, 1] - their expectation| >= t) <= alpha:
    Hoeffding's inequality, 2 exp(-2 n t^2) = alpha."""
    return math.sqrt(math.log(2 / alpha) / (2 * n))


@pytest.mark.points(1)
def test_generate_batch_statistics(student, rng, seed):
    """generate_batch: zeros with probability sparsity, uniform values, independent instances"""
    # Docstring (generate_batch): "sparsity: (n_instances,), the probability that a feature of
    # that instance is ZERO", "each entry is 0 with probability sparsity[instance], otherwise
    # uniform on [0, 1), all independent": zero shares, both-zero shares of neighbours, the mean.
    # Sparsities in [0.6, 0.9]: a batch that keeps features with probability `sparsity`
    # (the reverse of the definition) is off by >= 0.2, and one that shares the draws between
    # instances has both-zero rates min(S_a, S_b) instead of S_a S_b, off by >= 0.06.
    n_instances, n_features, batch_size = 4, 5, 5000
    sparsity = 0.6 + 0.3 * torch.rand(n_instances, generator=rng)
    setup = (f"generate_batch({batch_size}, sparsity={[round(s, 3) for s in sparsity.tolist()]},"
             f" {n_features}, generator)")
    got = student.probe("superposition.batch", batch_size, sparsity, n_features, seed % 2**31)
    assert_shape(got, (batch_size, n_instances, n_features), setup)
    assert_finite(got, setup)
    check(bool(((got >= 0) & (got <= 1)).all()),
          f"{setup}: values outside [0, 1] (from {got.min().item():.3g} to "
          f"{got.max().item():.3g}); present features are uniform on [0, 1)")
    # 4 zero shares, 3 both-zero shares of neighbouring instances and 1 mean of the present
    # values: 8 checks, each Hoeffding at alpha = 1e-6 / 8, so the false-failure probability
    # is at most 1e-6. With n = 25000 entries per instance, t = 0.018.
    alpha = FALSE_FAILURE / 8
    zero = (got == 0).double()
    n = batch_size * n_features
    t = _hoeffding(n, alpha)
    for k in range(n_instances):
        share = zero[:, k].mean().item()
        check(abs(share - sparsity[k].item()) <= t,
              f"{setup}: in instance {k} a share {share:.3f} of the features is zero; its "
              f"sparsity is {sparsity[k].item():.3f}, the probability of being ZERO (a correct "
              f"batch is within {t:.3f} of it). Keep an entry where its draw is >= sparsity.")
    for k in range(n_instances - 1):
        both = (zero[:, k] * zero[:, k + 1]).mean().item()
        expected = sparsity[k].item() * sparsity[k + 1].item()
        check(abs(both - expected) <= t,
              f"{setup}: instances {k} and {k + 1} are both zero at {both:.3f} of the "
              f"positions; independent draws give {expected:.3f} (within {t:.3f}). Draw "
              "every instance's features separately, with the full shape (batch, instances, "
              "features).")
    present = got[got != 0].double()
    if present.numel():
        t_values = _hoeffding(present.numel(), alpha)
        mean = present.mean().item()
        check(abs(mean - 0.5) <= t_values,
              f"{setup}: the non-zero values have mean {mean:.3f}; uniform on [0, 1) gives "
              f"0.5 (within {t_values:.3f}).")


# ----------------------------------------------------------------------------- the model


@pytest.mark.points(1)
@pytest.mark.public
def test_toy_model_forward(student, reference, rng):
    """ToyModel.forward matches the reference in float64 on random weights and biases"""
    # Docstring (ToyModel): "W (n_instances, n_hidden, n_features)", "b_final (n_instances,
    # n_features)"; (ToyModel.forward) "features: (batch, n_instances, n_features)", "Returns
    # x_hat, the same shape", "then x_hat = ReLU(W[k]^T h + b_final[k])", "Work in the dtype of
    # the inputs": the given __init__'s shapes, then random W and b_final in float64.
    shapes = student.probe("superposition.parameter_shapes", 3, 5, 2)
    check(shapes == {"W": [3, 2, 5], "b_final": [3, 5]},
          f"ToyModel(n_instances=3, n_features=5, n_hidden=2) should have the parameters "
          f"W (3, 2, 5) and b_final (3, 5) (the given __init__), got {shapes}")
    for _ in range(2):
        n_instances, n_features, n_hidden = _size(rng, 1, 5), _size(rng, 2, 8), _size(rng, 1, 4)
        state = _state(rng, n_instances, n_features, n_hidden)
        features = _features(rng, _size(rng, 2, 16), n_instances, n_features)
        what = (f"ToyModel({n_instances}, {n_features}, {n_hidden}).forward(features "
                f"{_shape(features.shape)}) in float64 with random W and b_final")
        got = student.probe("superposition.forward", state, features)
        want = reference.probe("superposition.forward", state, features)
        assert_close(got, want, **EXACT, what=what, dtype=torch.float64)


@pytest.mark.points(1)
def test_toy_model_forward_float32(student, reference, rng):
    """ToyModel.forward also works in float32"""
    # Docstring (ToyModel.forward): "Work in the dtype of the inputs": float32.
    n_instances, n_features, n_hidden = _size(rng, 2, 6), _size(rng, 3, 10), _size(rng, 1, 4)
    state = _state(rng, n_instances, n_features, n_hidden, torch.float32)
    features = _features(rng, _size(rng, 8, 32), n_instances, n_features, torch.float32)
    got = student.probe("superposition.forward", state, features)
    want = reference.probe("superposition.forward", state, features)
    # float32 rounding of sums of a few products: ~1e-7 relative, far inside 1e-4.
    assert_close(got, want, rtol=1e-4, atol=1e-5, dtype=torch.float32,
                 what=f"ToyModel({n_instances}, {n_features}, {n_hidden}).forward(features "
                      f"{_shape(features.shape)}) in float32")


@pytest.mark.points(1)
@pytest.mark.public
def test_importance_weighted_loss(student, reference, rng):
    """importance_weighted_loss: per instance, batch mean of the importance-weighted sum"""
    # Docstring (importance_weighted_loss): "mean over the batch of sum_i I_i (target_i -
    # output_i)^2", "importance: (n_features,) or (n_instances, n_features)", "Returns
    # (n_instances,)": both shapes of importance.
    for per_instance in (False, True):  # importance (n_features,) and (n_instances, n_features)
        batch, n_instances, n_features = _size(rng, 2, 20), _size(rng, 1, 6), _size(rng, 2, 8)
        output = torch.rand(batch, n_instances, n_features, generator=rng, dtype=torch.float64)
        target = _features(rng, batch, n_instances, n_features)
        shape = (n_instances, n_features) if per_instance else (n_features,)
        importance = 0.1 + torch.rand(shape, generator=rng, dtype=torch.float64)
        what = (f"importance_weighted_loss(output {_shape(output.shape)}, target, importance "
                f"{_shape(importance.shape)})")
        got = student.call("superposition.importance_weighted_loss", output, target, importance)
        want = reference.call("superposition.importance_weighted_loss", output, target,
                              importance)
        assert_shape(got, (n_instances,), what)
        assert_close(got, want, **EXACT, what=what, dtype=torch.float64)


# ----------------------------------------------------------------------------- training


def _moments(rng: torch.Generator, state: dict) -> list[dict]:
    """A used Adam state for (W, b_final): a step count and positive second moments."""
    steps = _size(rng, 3, 50)
    return [{"step": steps, "exp_avg": 0.01 * torch.randn(value.shape, generator=rng,
                                                          dtype=torch.float64),
             "exp_avg_sq": 1e-4 * torch.rand(value.shape, generator=rng, dtype=torch.float64)}
            for value in (state["W"], state["b_final"])]


@pytest.mark.points(1)
@pytest.mark.public
def test_train_step(student, reference, rng):
    """train_step gives the reference's loss and weights over two steps from a shared Adam state"""
    # Docstring (train_step): "the loss is the SUM over instances of importance_weighted_loss,
    # then backward and one step of optimizer", "Returns that summed loss before the step, as a
    # float": two steps, the loss type and value and the weights after each.
    n_instances, n_features, n_hidden = _size(rng, 2, 5), _size(rng, 3, 7), _size(rng, 1, 3)
    state = _state(rng, n_instances, n_features, n_hidden)
    moments = _moments(rng, state)
    batches = [_features(rng, _size(rng, 8, 24), n_instances, n_features) for _ in range(2)]
    importance = 0.5 + torch.rand(n_features, generator=rng, dtype=torch.float64)
    lr = 1e-2
    got = student.probe("superposition.train_steps", state, moments, batches, importance, lr)
    want = reference.probe("superposition.train_steps", state, moments, batches, importance, lr)
    for step, (got_step, want_step) in enumerate(zip(got["steps"], want["steps"], strict=True),
                                                 start=1):
        what = (f"train_step number {step} (ToyModel({n_instances}, {n_features}, {n_hidden}) "
                f"in float64, Adam lr {lr} with a used state, batch "
                f"{_shape(batches[step - 1].shape)})")
        check(got_step["loss_type"] == "float",
              f"{what} returned a {got_step['loss_type']}; expected the loss as a Python float "
              "(loss.item())")
        if abs(got_step["loss"] - want_step["loss"]) > 1e-9 * abs(want_step["loss"]):
            fail(f"{what} returned the loss {got_step['loss']:.8g}; expected "
                 f"{want_step['loss']:.8g}, the SUM over instances of importance_weighted_loss "
                 "of the model's output against the batch, before the step")
        # Float64 Adam: a reordered sum moves a gradient by ~1e-15 relative; a wrong step
        # moves weights by ~lr = 1e-2.
        for name in ("W", "b_final"):
            assert_close(got_step[name], want_step[name], rtol=1e-7, atol=1e-10,
                         what=f"{what}: {name} after the step (if the loss matches, look at "
                              "zero_grad, backward and step)", dtype=torch.float64)


@pytest.mark.points(1)
@pytest.mark.public
def test_train_toy_model_loop(student, reference, rng):
    """train_toy_model: a batch from generate_batch on the device and a train_step, each step"""
    # Docstring (train_toy_model): "Each step draws a fresh batch with generate_batch(batch_size,
    # sparsity, model.n_features, generator, device) and takes one train_step on it".
    n_instances, n_features, n_hidden = _size(rng, 2, 4), _size(rng, 3, 6), 2
    state = _state(rng, n_instances, n_features, n_hidden)
    sparsity = torch.rand(n_instances, generator=rng)
    importance = 0.5 + torch.rand(n_features, generator=rng, dtype=torch.float64)
    batch_size, steps, lr = _size(rng, 8, 16), _size(rng, 3, 5), 0.02
    batches = [_features(rng, batch_size, n_instances, n_features) for _ in range(steps)]
    # "cpu:0" is the CPU under a name a hard-coded "cpu" does not give: it shows whether the
    # loop moves the model to its `device` and hands the device on to generate_batch.
    args = (state, sparsity, importance, batches, batch_size, lr, "cpu:0")
    got = student.probe("superposition.train_loop", *args, timeout=20)
    want = reference.probe("superposition.train_loop", *args, timeout=20)
    what = (f"train_toy_model(ToyModel({n_instances}, {n_features}, {n_hidden}) in float64, "
            f"steps={steps}, batch_size={batch_size}, lr={lr}, device='cpu:0')")
    calls = got["calls"]
    check(len(calls) == steps, f"{what} called generate_batch {len(calls)} times; expected "
          f"once per step ({steps})")
    for call in calls:
        check(call["batch_size"] == batch_size and call["n_features"] == n_features
              and torch.equal(call["sparsity"], sparsity),
              f"{what} called generate_batch with batch_size={call['batch_size']}, "
              f"n_features={call['n_features']} and sparsity {call['sparsity'].tolist()}; "
              f"expected ({batch_size}, the sparsity it was given, model.n_features = "
              f"{n_features})")
        check(call["generator_passed_on"], f"{what} did not pass its `generator` to "
              "generate_batch")
        check(call["device"] == "cpu:0", f"{what} asked generate_batch for batches on "
              f"{call['device']!r}; pass the `device` it was given on")
    check("cpu:0" in got["moved_to"], f"{what} did not move the model to its `device` "
          f"(model.to(device)); it moved it to {got['moved_to']}")
    check(got["losses"] is not None, f"{what} did not return a list of losses")
    assert_close(got["losses"], want["losses"], rtol=1e-9, atol=1e-12,
                 what=f"{what}: the losses, one per step (train_step's return values; if the "
                      "tests of train_step or importance_weighted_loss fail too, fix those "
                      "first)")
    for name in ("W", "b_final"):
        assert_close(got["weights"][name], want["weights"][name], rtol=1e-7, atol=1e-10,
                     what=f"{what}: {name} after training (if the tests of train_step or "
                          "importance_weighted_loss fail too, fix those first)",
                     dtype=torch.float64)


# ----------------------------------------------------------------------------- measurements


def _weights_with_a_dead_feature(rng: torch.Generator) -> torch.Tensor:
    n_instances, n_hidden, n_features = _size(rng, 1, 4), _size(rng, 2, 4), _size(rng, 3, 7)
    W = torch.randn(n_instances, n_hidden, n_features, generator=rng, dtype=torch.float64)
    W[0, :, _size(rng, 0, n_features - 1)] = 0.0  # the promised edge case: a zero column
    return W


@pytest.mark.points(1)
@pytest.mark.public
@pytest.mark.parametrize("function", ["feature_norms", "interference", "feature_dimensionality"])
def test_measurement(student, reference, rng, function):
    """{function} matches the reference in float64, a feature with a zero column included"""
    # Docstring (feature_norms): "the length of each feature's direction"; (interference) "sum
    # over j != i of (W_i_hat . W_j)^2", "A feature whose column is zero has interference 0";
    # (feature_dimensionality) "D_i = ||W_i||^2 / sum over j (including i)", "A feature whose
    # column is zero has D = 0"; (feature_norms, interference, feature_dimensionality) "W:
    # (n_instances, n_hidden, n_features)", "Returns (n_instances, n_features)": W[0] has a zero
    # column.
    for _ in range(2):
        W = _weights_with_a_dead_feature(rng)
        what = f"{function}(W {_shape(W.shape)}) in float64, W[0] with a zero column"
        got = student.call(f"superposition.{function}", W)
        want = reference.call(f"superposition.{function}", W)
        assert_shape(got, (W.shape[0], W.shape[2]), what)
        assert_finite(got, what)
        assert_close(got, want, **EXACT, what=what, dtype=torch.float64)


def _rotation(rng: torch.Generator) -> torch.Tensor:
    angle = _uniform(rng, 0, 2 * math.pi)
    return torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]],
                        dtype=torch.float64)


@pytest.mark.points(1)
def test_dimensionality_of_known_geometries(student, rng):
    """feature_dimensionality: 1 for a lone feature, 1/2 in an antipodal pair, 2/5 in a pentagon"""
    # Docstring (feature_dimensionality): "A feature alone in its dimension has D = 1, each of an
    # antipodal pair 1/2, each corner of a pentagon in two dimensions 2/5": rotated, scaled and
    # permuted; the unused features are zero columns.
    # Three instances in 2 dims with 5 features each, rotated, scaled and permuted at random:
    # two orthogonal lone features (D = 1, 1, 0, 0, 0), two antipodal pairs of equal length
    # within each pair (1/2 x 4, 0), a regular pentagon of equal lengths (2/5 x 5).
    angles = [[0.0, math.pi / 2], [0.0, math.pi, math.pi / 2, 3 * math.pi / 2],
              [2 * math.pi * i / 5 for i in range(5)]]
    lengths = [[_uniform(rng, 0.3, 2), _uniform(rng, 0.3, 2)],
               [(a := _uniform(rng, 0.3, 2)), a, (b := _uniform(rng, 0.3, 2)), b],
               [_uniform(rng, 0.3, 2)] * 5]
    expected = [[1.0, 1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5, 0.0], [0.4] * 5]
    W = torch.zeros(3, 2, 5, dtype=torch.float64)
    for k in range(3):
        for i, (angle, length) in enumerate(zip(angles[k], lengths[k], strict=True)):
            W[k, :, i] = length * torch.tensor([math.cos(angle), math.sin(angle)],
                                               dtype=torch.float64)
        W[k] = _rotation(rng) @ W[k]
    order = torch.randperm(5, generator=rng)
    W, want = W[:, :, order], torch.tensor(expected, dtype=torch.float64)[:, order]
    got = student.call("superposition.feature_dimensionality", W)
    what = ("feature_dimensionality(W) for W (3, 2, 5) holding two lone orthogonal features, "
            "two antipodal pairs and a pentagon (unused features are zero columns)")
    assert_shape(got, (3, 5), what)
    assert_close(got, want, rtol=0, atol=1e-9, what=what, dtype=torch.float64)


# ----------------------------------------------------------------------------- trained geometry

# n = 5 features, m = 2 dims, importance 0.9^i (Elhage et al. 2022): the model keeps 2 features
# when they are dense, two antipodal pairs at middle sparsity and a pentagon when sparse.
# COPIES instances train at each sparsity and the one with the lowest loss (recomputed here)
# counts, as in the paper's figures: one instance in a few settles in a worse arrangement.
# Measured with the reference (1000 steps, batch 256, lr 0.02, middle S in [0.7, 0.8], high
# S in [0.98, 0.99]): 2 / 4 / 5 on 40 of 40 seeds; at S >= 0.83 the pentagon can already win.
GEOMETRY = {"steps": 1000, "batch_size": 256, "lr": 0.02}
COPIES = 4
REPRESENTED = 0.5  # a feature is represented when ||W_i|| > 0.5 (trained norms are ~0 or ~1)


def _trusted_losses(weights: dict, sparsity: torch.Tensor, importance: torch.Tensor,
                    rng: torch.Generator) -> torch.Tensor:
    """Each instance's loss on 20000 fresh inputs, computed here in float64."""
    W, b = weights["W"].double(), weights["b_final"].double()
    shape = (20_000, len(sparsity), W.shape[2])
    x = torch.rand(shape, generator=rng, dtype=torch.float64)
    x = x * (torch.rand(shape, generator=rng, dtype=torch.float64) >= sparsity[:, None])
    hidden = torch.einsum("khf,bkf->bkh", W, x)
    out = torch.relu(torch.einsum("khf,bkh->bkf", W, hidden) + b)
    return (importance.double() * (x - out) ** 2).sum(-1).mean(0)


@pytest.mark.points(2)
def test_trained_geometry(student, rng, seed):
    """trained n = 5, m = 2 models keep 2 features when dense, 4 at middle and 5 at high sparsity"""
    levels = [0.0, round(_uniform(rng, 0.7, 0.8), 3), round(_uniform(rng, 0.98, 0.99), 3)]
    expected = [2, 4, 5]
    sparsity = torch.tensor(levels, dtype=torch.float64).repeat_interleave(COPIES)
    importance = 0.9 ** torch.arange(5, dtype=torch.float32)
    n = len(sparsity)
    state = {"W": math.sqrt(2 / 7) * torch.randn(n, 2, 5, generator=rng),  # Xavier normal
             "b_final": torch.zeros(n, 5)}
    what = (f"train_toy_model on ToyModel({n}, 5, 2) ({COPIES} instances at each sparsity "
            f"{levels}, importance 0.9^i, steps={GEOMETRY['steps']}, "
            f"batch_size={GEOMETRY['batch_size']}, lr={GEOMETRY['lr']})")
    got = student.probe("superposition.train_geometry", state, sparsity.float(), importance,
                        **GEOMETRY, seed=seed % 2**31, timeout=60)
    for name, shape in (("W", (n, 2, 5)), ("b_final", (n, 5))):
        assert_shape(got[name], shape, f"{what}: {name}")
        assert_finite(got[name], f"{what}: {name}")
    losses = _trusted_losses(got, sparsity, importance, rng)
    norms = got["W"].double().norm(dim=1)
    for level, (s, count) in enumerate(zip(levels, expected, strict=True)):
        copies = range(level * COPIES, (level + 1) * COPIES)
        best = min(copies, key=lambda k: losses[k].item())
        represented = int((norms[best] > REPRESENTED).sum())
        if represented != count:
            fail(f"{what}: at sparsity {s} the best instance (loss {losses[best].item():.4f}) "
                 f"represents {represented} features (norm > {REPRESENTED}); a correct "
                 f"training gives {count}. Its feature norms: "
                 f"{[round(v, 2) for v in norms[best].tolist()]}; the losses of the "
                 f"{COPIES} instances: {[round(losses[k].item(), 4) for k in copies]}.")
