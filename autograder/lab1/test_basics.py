"""Lab 1, part "basics": tensors, einops, stable softmax, gradients, an MLP and its training.

Inputs (shapes and values) are drawn at grade time from the `rng` fixture, so every expected
value depends on numbers the submission only sees when it is called: producing it takes the
work. Each test checks two or more cases, edge cases (batch 1, a single channel or row of
patches, coinciding points) beside random ones, and the dtype the docstring names. Unless a
comment says otherwise, float32 results are compared with rtol 1e-5 / atol 1e-6 (or 1e-5 where
a sum of many terms can be reordered), loose enough for einsum vs matmul or another correct
order of operations, tight enough that any wrong formula fails by orders of magnitude.
`assert_close` checks shape, dtype and NaNs before any value, so an empty, mis-shaped or NaN
answer never passes. Comments starting "Docstring:" name the sentence a check enforces.
"""

import math

import pytest
import torch

from autograder.engine.checks import assert_close, assert_shape, check

F32 = torch.float32


def _size(rng: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def _shape(shape: tuple) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


# ----------------------------------------------------------------------------- broadcasting


@pytest.mark.points(2)
@pytest.mark.public
def test_pairwise_distances(student, reference, rng):
    """pairwise_distances matches the reference"""
    # Docstring (pairwise_distances): "x: (n, d), y: (m, d)": n != m in case 1, n = 1 in case 2.
    # Docstring: "(n, m) with out[i, j] = ||x[i] - y[j]||_2", float32 in, float32 out.
    # Case 1: random sizes, points far from the origin (offset 50, where sqrt(|x|^2 - 2 x.y +
    # |y|^2) loses ~1e-3 to cancellation while x - y stays exact to ~1e-6), and one row of y
    # equal to a row of x (a distance of exactly 0); case 2: a single row in x (n = 1).
    for case in range(2):
        n = 1 if case else _size(rng, 3, 9)
        m, d = _size(rng, 3, 9), _size(rng, 2, 6)
        offset = 0.0 if case else 50.0
        x = torch.randn(n, d, generator=rng) * 3 + offset
        y = torch.randn(m, d, generator=rng) * 3 + offset
        y[_size(rng, 0, m - 1)] = x[0]
        got = student.call("basics.pairwise_distances", x, y)
        want = reference.call("basics.pairwise_distances", x, y)
        assert_close(got, want, rtol=1e-5, atol=1e-5, dtype=F32,
                     what=f"pairwise_distances(x, y) for x {_shape(x.shape)}, y "
                          f"{_shape(y.shape)} (row 0 of x also appears in y)")


@pytest.mark.points(1)
@pytest.mark.public
def test_gather_log_probs(student, reference, rng):
    """gather_log_probs picks each row's label"""
    # Docstring (gather_log_probs): "log_probs: (batch, classes) float; labels: (batch,) int64 in
    # [0, classes)": labels drawn over all classes, batch 1 in case 2.
    # Docstring: "Returns (batch,) with out[i] = log_probs[i, labels[i]]"; batch 1 included
    # (where squeeze() without a dim returns a 0-dim tensor).
    for batch in (_size(rng, 4, 12), 1):
        classes = _size(rng, 3, 10)
        log_probs = torch.randn(batch, classes, generator=rng).log_softmax(-1)
        labels = torch.randint(0, classes, (batch,), generator=rng)
        got = student.call("basics.gather_log_probs", log_probs, labels)
        want = reference.call("basics.gather_log_probs", log_probs, labels)
        assert_close(got, want, rtol=0, atol=0, dtype=F32,
                     what=f"gather_log_probs(log_probs {_shape(log_probs.shape)}, labels)")


@pytest.mark.points(1)
@pytest.mark.public
def test_one_hot(student, reference, rng):
    """one_hot encodes labels of any shape as float32"""
    # Docstring: "labels: any shape ... Returns float32 of shape (*labels.shape, num_classes)":
    # a 2-D, a 1-D and a 0-dim label tensor.
    classes = _size(rng, 3, 9)
    cases = [torch.randint(0, classes, (_size(rng, 2, 5), _size(rng, 2, 5)), generator=rng),
             torch.randint(0, classes, (_size(rng, 1, 6),), generator=rng),
             torch.randint(0, classes, (), generator=rng)]
    for labels in cases:
        got = student.call("basics.one_hot", labels, classes)
        want = reference.call("basics.one_hot", labels, classes)
        assert_close(got, want, rtol=0, atol=0, dtype=F32,
                     what=f"one_hot(labels of shape {_shape(labels.shape)}, {classes})")


# ----------------------------------------------------------------------------- einops


@pytest.mark.points(2)
@pytest.mark.public
def test_patchify(student, reference, rng):
    """patchify orders patches and their contents as specified"""
    # Docstring (patchify): "with height and width divisible by patch": 1-3 rows of patches.
    # Docstring: "patches are ordered row by row ... flattened in (channel, row, column)
    # order". Case 1 has several channels and a non-square grid of patches (so that neither
    # order can be confused with another of the same shape); case 2 is batch 1 with a single
    # row of patches, the degenerate case a wrong grid order may still get right, so it is
    # never the only one.
    for case in range(2):
        patch = _size(rng, 2, 4)
        rows = 1 if case else _size(rng, 2, 3)
        columns = rows + _size(rng, 1, 2)
        batch, channels = (1, _size(rng, 1, 3)) if case else (2, _size(rng, 2, 3))
        images = torch.randn(batch, channels, patch * rows, patch * columns, generator=rng)
        got = student.call("basics.patchify", images, patch)
        want = reference.call("basics.patchify", images, patch)
        assert_close(got, want, rtol=0, atol=0, dtype=F32,
                     what=f"patchify(images {_shape(images.shape)}, patch={patch})")


@pytest.mark.points(1)
@pytest.mark.public
def test_max_pool(student, reference, rng):
    """max_pool takes the maximum over each window"""
    # Docstring (max_pool): "height and width divisible by kernel", "Returns (batch, channels,
    # height // kernel, width // kernel)": more columns of windows than rows.
    # At least two windows each way, and more columns of windows than rows: with a single
    # window, strided windows ("(k1 h)" for "(h k1)") pool the same entries, and with a square
    # grid of windows a transposed output has the expected shape. Case 2: batch 1, 1 channel.
    for case in range(2):
        kernel = _size(rng, 2, 3)
        rows = _size(rng, 2, 3)
        columns = rows + _size(rng, 1, 2)
        batch, channels = (1, 1) if case else (2, 3)
        images = torch.randn(batch, channels, kernel * rows, kernel * columns, generator=rng)
        got = student.call("basics.max_pool", images, kernel)
        want = reference.call("basics.max_pool", images, kernel)
        assert_close(got, want, rtol=0, atol=0, dtype=F32,
                     what=f"max_pool(images {_shape(images.shape)}, kernel={kernel})")


@pytest.mark.points(1)
@pytest.mark.public
def test_repeat_for_heads(student, reference, rng):
    """repeat_for_heads copies the tensor for every head"""
    # Docstring (repeat_for_heads): "its own copy of a (batch, seq, d) tensor".
    # Docstring: "(batch, heads, seq, d) with out[b, h] = x[b]"; batch >= 2 and heads >= 2
    # (a copy along the wrong axis has a different shape), then batch 1.
    for batch in (_size(rng, 2, 3), 1):
        heads = _size(rng, 2, 6)
        x = torch.randn(batch, _size(rng, 2, 7), _size(rng, 2, 5), generator=rng)
        got = student.call("basics.repeat_for_heads", x, heads)
        want = reference.call("basics.repeat_for_heads", x, heads)
        assert_close(got, want, rtol=0, atol=0, dtype=F32,
                     what=f"repeat_for_heads(x {_shape(x.shape)}, heads={heads})")


@pytest.mark.points(2)
@pytest.mark.public
def test_attention_scores(student, reference, rng):
    """attention_scores matches the reference, including the 1/sqrt(d_head) scale"""
    # Docstring (attention_scores): "queries: (batch, heads, q_len, d_head); keys: (batch, heads,
    # k_len, d_head)": k_len != q_len in case 1.
    # Docstring: "divided by sqrt(d_head)": d_head is never 1 (where the scale is 1), and
    # q_len != k_len in case 1, so that a transposed result has the wrong shape.
    for case in range(2):
        b, h = (2, _size(rng, 2, 4)) if case == 0 else (1, 1)
        q = _size(rng, 2, 8)
        k = q + _size(rng, 1, 3) if case == 0 else _size(rng, 1, 8)
        d = _size(rng, 4, 16)
        queries = torch.randn(b, h, q, d, generator=rng)
        keys = torch.randn(b, h, k, d, generator=rng)
        got = student.call("basics.attention_scores", queries, keys)
        want = reference.call("basics.attention_scores", queries, keys)
        assert_close(got, want, rtol=1e-5, atol=1e-5, dtype=F32,
                     what=f"attention_scores(queries {_shape(queries.shape)}, "
                          f"keys {_shape(keys.shape)})")


# ----------------------------------------------------------------------------- stable softmax

SOFTMAX_FAMILY = ["logsumexp", "log_softmax", "softmax"]


@pytest.mark.points(1)
@pytest.mark.public
@pytest.mark.parametrize("function", SOFTMAX_FAMILY)
def test_softmax_family_matches_reference(student, reference, rng, function):
    """{function} matches the reference on ordinary logits along a given dim"""
    # Docstring (logsumexp): "Returns x's shape with dim removed"; (log_softmax, softmax) "Same
    # shape as x": a 3-D x, reduced along a middle or the first dim.
    # Docstring (logsumexp, log_softmax, softmax): "along `dim`": never the last dim here, so
    # that ignoring `dim` (always using -1) fails; a 3-D input with a middle dim, where a reduced
    # dimension that is not kept (log_softmax without keepdim) cannot broadcast back. Two cases.
    for dim in ([-3, 0][_size(rng, 0, 1)], [-2, 1][_size(rng, 0, 1)]):
        x = torch.randn(_size(rng, 2, 6), _size(rng, 2, 6), _size(rng, 2, 6), generator=rng) * 3
        got = student.call(f"basics.{function}", x, dim=dim)
        want = reference.call(f"basics.{function}", x, dim=dim)
        assert_close(got, want, rtol=1e-5, atol=1e-5, dtype=F32,
                     what=f"{function}(x {_shape(x.shape)}, dim={dim})")


@pytest.mark.points(1)
@pytest.mark.public
@pytest.mark.parametrize("function", SOFTMAX_FAMILY)
def test_softmax_family_is_stable(student, reference, rng, function):
    """{function} stays finite and correct for logits of size 1e4"""
    # Docstring (and handout): "without overflow for logits as large as 1e4", along the
    # default dim -1 and along dim 0. exp(1e4) overflows float32, so without the max shift
    # the result holds inf or NaN. float32 at 1e4 has a spacing of ~1e-3, so values are
    # compared relative to their size (1e-5 of 1e4 is 0.1, far below a wrong shift's error).
    for dim in (-1, 0):
        x = torch.randn(_size(rng, 3, 8), _size(rng, 3, 8), generator=rng) * 1e4
        got = student.call(f"basics.{function}", x, dim=dim)
        want = reference.call(f"basics.{function}", x, dim=dim)
        assert_close(got, want, rtol=1e-5, atol=1e-5, dtype=F32,
                     what=f"{function}(x {_shape(x.shape)} with entries of size 1e4, dim={dim})")


@pytest.mark.points(2)
@pytest.mark.public
def test_cross_entropy(student, reference, rng):
    """cross_entropy matches the reference and returns a scalar"""
    # Docstring (cross_entropy): "logits: (batch, classes); labels: (batch,) int64": batch 1 in
    # case 2.
    # Docstring: "Returns a scalar (0-dim) tensor: the mean over the batch"; batch 1 included.
    for batch in (_size(rng, 4, 16), 1):
        classes = _size(rng, 2, 10)
        logits = torch.randn(batch, classes, generator=rng) * 4
        labels = torch.randint(0, classes, (batch,), generator=rng)
        got = student.call("basics.cross_entropy", logits, labels)
        want = reference.call("basics.cross_entropy", logits, labels)
        assert_shape(got, (), f"cross_entropy(logits {_shape(logits.shape)}, labels)")
        assert_close(got, want, rtol=1e-5, atol=1e-6, dtype=F32,
                     what=f"cross_entropy(logits {_shape(logits.shape)}, labels)")


@pytest.mark.points(1)
@pytest.mark.public
def test_cross_entropy_is_stable(student, reference, rng):
    """cross_entropy stays finite and correct for logits of size 1e4"""
    # Docstring: "Must stay finite for logits of 1e4". The loss itself is of size 1e4 for
    # wrong labels, float32 spacing ~1e-3 there: atol 1e-3 plus 1e-5 relative.
    for _ in range(2):
        batch, classes = _size(rng, 4, 16), _size(rng, 2, 10)
        logits = torch.randn(batch, classes, generator=rng) * 1e4
        labels = torch.randint(0, classes, (batch,), generator=rng)
        got = student.call("basics.cross_entropy", logits, labels)
        want = reference.call("basics.cross_entropy", logits, labels)
        assert_close(got, want, rtol=1e-5, atol=1e-3, dtype=F32,
                     what=f"cross_entropy(logits {_shape(logits.shape)} of size 1e4, labels)")


# ----------------------------------------------------------------------------- gradients


@pytest.mark.points(3)
@pytest.mark.public
def test_linear_cross_entropy_grads_match_autograd(student, rng):
    """linear_cross_entropy_grads agrees with autograd"""
    # Docstring (linear_cross_entropy_grads): "x: (batch, d_in); weight: (d_in, classes); bias:
    # (classes,); labels: (batch,)", "Returns (grad_weight (d_in, classes), grad_bias
    # (classes,))": a pair, each compared by shape and value with autograd's.
    # The expected gradients come from the verdict's own autograd, in the trusted process, on
    # inputs drawn here. float32 in, float32 out; a batch of 1 in case 2 (where forgetting
    # to divide by the batch size goes unnoticed). rtol 1e-4: the by-hand formula and
    # autograd sum the batch in different orders, ~1e-6 relative in float32.
    for batch in (_size(rng, 4, 16), 1):
        d_in, classes = _size(rng, 2, 8), _size(rng, 2, 6)
        x = torch.randn(batch, d_in, generator=rng)
        weight = torch.randn(d_in, classes, generator=rng, requires_grad=True)
        bias = torch.randn(classes, generator=rng, requires_grad=True)
        labels = torch.randint(0, classes, (batch,), generator=rng)
        got = student.call("basics.linear_cross_entropy_grads", x, weight.detach(),
                           bias.detach(), labels)
        torch.nn.functional.cross_entropy(x @ weight + bias, labels).backward()
        what = (f"linear_cross_entropy_grads(x {_shape(x.shape)}, weight "
                f"{_shape(weight.shape)}, ...)")
        check(isinstance(got, (tuple, list)) and len(got) == 2,
              f"{what}: expected a pair (grad_weight, grad_bias), got {type(got).__name__}")
        assert_close(got[0], weight.grad, rtol=1e-4, atol=1e-6, dtype=F32,
                     what=f"{what} grad_weight")
        assert_close(got[1], bias.grad, rtol=1e-4, atol=1e-6, dtype=F32, what=f"{what} grad_bias")


@pytest.mark.points(2)
@pytest.mark.public
def test_numerical_gradient(student, rng):
    """numerical_gradient approximates a known gradient and leaves x unchanged"""
    # Docstring (numerical_gradient): "Central finite-difference gradient of a scalar function",
    # "(f(x + eps * e_i) - f(x - eps * e_i)) / (2 * eps)": compared with the exact gradient at
    # 1e-6, on a function whose second derivative is large where its gradient is small.
    # f(x) = sum(a * sin(b * x) * x^2 + c / 2 * (x - x0)^2) with a, b, c and x0 drawn here
    # (c from 2000 to 4000, x0 within ~1e-3 of x, so the quadratic term adds a gradient
    # c (x - x0) of a few units and a second derivative of c); its exact gradient is computed
    # in the trusted process. The central difference with eps = 1e-6 in float64 is off by
    # eps^2 / 6 * |f'''| plus rounding: the quadratic term has f''' = 0 and the sine term
    # |f'''| <= a (b^3 x^2 + 6 b^2 |x| + 6 b) < 400 for |x| <= 4, so truncation < 1e-10;
    # rounding is ~n u |f| / eps for the n <= 16 terms of f (|f| < 100), 2e-7 at the very
    # worst and ~1e-9 in practice, and x +- eps itself rounds to ulp(x) ~ 4e-10 eps. Allowed:
    # 1e-6 + 1e-6 |f'|, of which a correct central difference (an explicit loop, or f
    # evaluated at x +- eps * rows of an identity) uses under 0.3% (1000 simulated draws);
    # other step sizes down to ~1e-4 pass too. A one-sided difference is off by
    # eps / 2 * f''(x): the sine term's |f''| <= a (b^2 x^2 + 4 b |x| + 2) < 150, so at least
    # 0.5e-6 * 1850 = 9e-4 at every entry, against an allowance of at most ~1e-4 (|f'| < 80):
    # 9 times over in the worst case, over 240 times in each of 1000 simulated draws (without
    # the quadratic term it passed about 1 grading in 8). "x left unchanged" is checked on
    # x's values sent back, in the same test as the gradient, never alone.
    # Docstring: "x: any shape": a 2-D x, then a 3-D one.
    eps = 1e-6  # numerical_gradient's default step
    for shape in ((_size(rng, 2, 4), _size(rng, 2, 4)), (2, _size(rng, 1, 3), 2)):
        x = torch.randn(*shape, generator=rng, dtype=torch.float64)
        a = torch.rand(*shape, generator=rng, dtype=torch.float64) + 0.5
        b = torch.rand(*shape, generator=rng, dtype=torch.float64) * 1.5 + 0.5
        c = torch.rand(*shape, generator=rng, dtype=torch.float64) * 2000 + 2000
        centre = x + 1e-3 * torch.randn(*shape, generator=rng, dtype=torch.float64)
        got = student.probe("basics.numerical_gradient_of_known_function", x, a, b, c, centre)
        exact = a * (b * (b * x).cos() * x.pow(2) + 2 * x * (b * x).sin()) + c * (x - centre)
        second = a * (2 * (b * x).sin() + 4 * b * x * (b * x).cos()
                      - b.pow(2) * x.pow(2) * (b * x).sin()) + c
        what = (f"numerical_gradient(sum(a * sin(b * x) * x**2 + c / 2 * (x - x0)**2), x of "
                f"shape {_shape(x.shape)}, c from 2000 to 4000)")
        grad = got["grad"]
        if torch.is_tensor(grad) and grad.shape == x.shape and grad.is_floating_point():
            # Name the one-sided difference: off by eps / 2 * f''(x) (or minus that) everywhere.
            residual = grad.double() - exact
            for sign in (1.0, -1.0):
                check(not torch.allclose(residual, sign * eps / 2 * second, rtol=0.05,
                                         atol=1e-6),
                      f"{what} is off by {'' if sign > 0 else '-'}eps / 2 * f''(x) at every "
                      f"entry (f'' is {float(second.min()):.0f} or more here, so "
                      f"{eps / 2 * float(second.min()):.1e} or more): that is a one-sided "
                      "difference, (f(x + eps * e_i) - f(x)) / eps or (f(x) - f(x - eps * e_i)) "
                      "/ eps. The docstring asks for the central difference (f(x + eps * e_i) - "
                      "f(x - eps * e_i)) / (2 * eps), whose error is about eps^2 / 6 * f'''(x).")
        assert_close(grad, exact, rtol=1e-6, atol=1e-6, dtype=torch.float64,
                     what=f"{what} (a central difference)")
        shapes = ", ".join(_shape(s) for s in got["call_shapes"])
        check(got["call_shapes"] == [list(x.shape)],
              f"{what} called f on tensors of shape {shapes}; evaluate f at x + eps * e_i and "
              f"x - eps * e_i, tensors of x's shape {_shape(x.shape)} (reshape your flat copy).")
        check(got["most_entries_changed"] == 1,
              f"{what}: one call of f saw {got['most_entries_changed']} entries of x changed at "
              "once; each evaluation must change entry i only. Put entry i back to its "
              "original value before moving on to entry i + 1.")
        # Docstring: "Do not modify x."
        assert_close(got["x_after"], x, rtol=0, atol=0,
                     what=f"{what}: x after the call (it must not change; work on a copy)")


# ----------------------------------------------------------------------------- the MLP


def _mlp_output(state: dict, x: torch.Tensor) -> torch.Tensor:
    """Linear -> ReLU -> Linear, computed here in the trusted process."""
    hidden = torch.relu(x @ state["hidden.weight"].T + state["hidden.bias"])
    return hidden @ state["output.weight"].T + state["output.bias"]


def _mlp_state(rng: torch.Generator, d_in: int, d_hidden: int, d_out: int) -> dict:
    # Biases are random too, so a forgotten bias cannot pass because it starts at zero.
    return {"hidden.weight": torch.randn(d_hidden, d_in, generator=rng),
            "hidden.bias": torch.randn(d_hidden, generator=rng),
            "output.weight": torch.randn(d_out, d_hidden, generator=rng),
            "output.bias": torch.randn(d_out, generator=rng)}


@pytest.mark.points(1)
@pytest.mark.public
def test_mlp_parameter_names(student, rng):
    """MLP has the parameter names and shapes of the interface and runs Linear-ReLU-Linear"""
    # The names are a fact the module could simply report, so they are checked together with
    # the output of the module with weights drawn here, computed in the trusted process.
    for _ in range(2):
        d_in, d_hidden, d_out = _size(rng, 2, 6), _size(rng, 4, 32), _size(rng, 2, 5)
        state = _mlp_state(rng, d_in, d_hidden, d_out)
        x = torch.randn(_size(rng, 1, 4), d_in, generator=rng)
        got = student.probe("basics.mlp_shapes_and_forward", state, x, d_in, d_hidden, d_out)
        want = {name: list(tensor.shape) for name, tensor in state.items()}
        check(isinstance(got, dict) and got.get("shapes") == want,
              f"MLP({d_in}, {d_hidden}, {d_out}).state_dict() should have exactly {want}, got "
              f"{got.get('shapes') if isinstance(got, dict) else got}")
        assert_close(got["output"], _mlp_output(state, x), rtol=1e-5, atol=1e-5, dtype=F32,
                     what=f"MLP({d_in}, {d_hidden}, {d_out}) on x {_shape(x.shape)} with given "
                          "weights (hidden -> ReLU -> output)")


@pytest.mark.points(2)
def test_mlp_forward(student, reference, rng):
    """MLP.forward with given weights matches the reference"""
    # Docstring: "x: (batch, d_in) -> logits (batch, d_out)"; batch 1 in case 2.
    for batch in (_size(rng, 3, 10), 1):
        d_in, d_hidden, d_out = _size(rng, 2, 6), _size(rng, 4, 32), _size(rng, 2, 5)
        state = _mlp_state(rng, d_in, d_hidden, d_out)
        x = torch.randn(batch, d_in, generator=rng)
        args = (state, x, d_in, d_hidden, d_out)
        got = student.probe("basics.mlp_forward", *args)
        want = reference.probe("basics.mlp_forward", *args)
        assert_close(got, want, rtol=1e-5, atol=1e-5, dtype=F32,
                     what=f"MLP({d_in}, {d_hidden}, {d_out}) on x {_shape(x.shape)} with given "
                          "weights")


def _spirals(reference, seed: int, n_per_class: int = 200):
    return reference.call("basics.make_spirals", n_per_class, seed=seed)


def _explain_epochs(got: list, want: list, variants: dict) -> str:
    """Which epoch diverges first, and which common slip the losses match, if any."""
    first = next((i for i, (g, w) in enumerate(zip(got, want, strict=False))
                  if abs(g - w) > 1e-4 * abs(w) + 1e-5), None)
    if first is None:
        return ""
    slips = {"reseeded": "re-creates (re-seeds) the generator every epoch: make one generator "
                         "before the loop over epochs",
             "new_optimizer": "builds a new Adam optimiser every epoch: Adam's running averages "
                              "must carry over, so make it once",
             "no_zero_grad": "never zeroes the gradients: call optimizer.zero_grad() before "
                             "each backward"}
    for name, losses in variants.items():
        if len(losses) == len(got) and all(abs(g - v) <= 1e-4 * abs(v) + 1e-5
                                           for g, v in zip(got, losses, strict=True)):
            return f" Your losses match a loop that {slips[name]}."
    if first == 0:
        return (" The first epoch already differs: look at the order of the examples "
                "(torch.randperm(n, generator=...)), the minibatches (the last may be "
                "smaller), zero_grad / backward / step, and the mean of the minibatch losses.")
    return (f" Epoch {first + 1} is the first to differ while the earlier ones match: what "
            "carries over between epochs (one generator, one optimiser) is the place to look.")


@pytest.mark.points(2)
def test_train_classifier_follows_the_specified_order(student, reference, seed, rng):
    """train_classifier's first epochs match the reference from the same weights"""
    # Docstring (train_classifier): "Returns a list of epochs floats": their type and number.
    # Docstring: "every example once in a random order drawn from torch.Generator().manual_seed
    # (seed) (one generator for the whole run), in minibatches of batch_size (the last one may
    # be smaller) ... the mean minibatch loss of each epoch". 600 examples: batch 50 divides
    # them evenly, a batch drawn from 61-79 never does. Adam on float32 reorders sums
    # differently across implementations; 1e-4 relative over 36 steps is far below the change
    # one misordered minibatch makes (~1e-2).
    train_x, train_y = _spirals(reference, seed % 1000)
    for batch_size in (50, _size(rng, 61, 79)):
        state = reference.probe("basics.mlp_initial_state", 2, 32, 3, seed % 1000)
        kwargs = dict(hidden=32, epochs=3, lr=1e-2, batch_size=batch_size, seed=seed % 1000)
        got = student.probe("basics.train_mlp", state, train_x, train_y, timeout=30, **kwargs)
        want = reference.probe("basics.train_mlp", state, train_x, train_y, timeout=30, **kwargs)
        check(got["loss_types"] == ["float"],
              f"train_classifier returned epoch losses of type {', '.join(got['loss_types'])}; "
              "return Python floats (loss.item()): keeping the loss tensors keeps every "
              "minibatch's computation graph alive.")
        what = ("epoch losses of train_classifier(MLP(2, 32, 3), spirals of 600 points, "
                f"epochs=3, lr=0.01, batch_size={batch_size}) from the same initial weights")
        check(len(got["losses"]) == 3, f"{what}: got {len(got['losses'])} losses, expected 3")
        variants = reference.probe("basics.train_mlp_variants", state, train_x, train_y,
                                   timeout=30, **kwargs)
        hint = _explain_epochs(got["losses"], want["losses"], variants)
        assert_close(got["losses"], want["losses"], rtol=1e-4, atol=1e-5, what=what + "." + hint)
        # The trained weights too: losses alone could come from a loop that reports without
        # stepping the model's own parameters.
        assert_close(got["state"], want["state"], rtol=1e-3, atol=1e-5,
                     what=f"the MLP's weights after {what}")


@pytest.mark.points(3)
@pytest.mark.public
def test_train_classifier_fits_spirals(student, reference, seed, rng):
    """train_classifier fits the spirals to at least 95% test accuracy"""
    # The test points are drawn here at a seed the worker never sees, and the accuracy is
    # computed here from the trained weights the probe returns, so the classifier cannot be
    # memorised or hand-written: it must be learned from the initial weights given.
    train_x, train_y = _spirals(reference, seed % 1000)
    test_x, test_y = _spirals(reference, 1000 + _size(rng, 0, 2**30))
    state = reference.probe("basics.mlp_initial_state", 2, 64, 3, seed % 1000)
    epochs = 60
    got = student.probe("basics.train_mlp", state, train_x, train_y, hidden=64,
                        epochs=epochs, lr=1e-2, batch_size=64, seed=seed % 1000, timeout=60)
    losses = got["losses"]
    check(len(losses) == epochs, f"train_classifier returned {len(losses)} losses for "
          f"{epochs} epochs; return one mean loss per epoch")
    check(all(math.isfinite(loss) for loss in losses),
          f"train_classifier returned non-finite epoch losses {losses[:5]}...")
    trained = got["state"]
    check(isinstance(trained, dict) and set(trained) == set(state),
          "the trained MLP's state_dict does not have the interface's parameters")
    start = (_mlp_output(state, test_x).argmax(-1) == test_y).float().mean().item()
    test_accuracy = (_mlp_output(trained, test_x).argmax(-1) == test_y).float().mean().item()
    check(test_accuracy >= 0.95,
          f"after {epochs} epochs (Adam, lr 0.01, batch 64) the MLP reaches {test_accuracy:.1%} "
          f"test accuracy on new spiral points (it started at {start:.1%}); at least 95% is "
          f"expected (the reference reaches 99%+). Epoch losses went from {losses[0]:.3f} to "
          f"{losses[-1]:.3f}.")
