"""Lab 1, part "basics": tensors, einops, stable softmax, gradients, an MLP and its training.

Inputs (shapes and values) are drawn at grade time from the `rng` fixture. Unless a comment
says otherwise, float32 results are compared with rtol 1e-5 / atol 1e-6 (or 1e-5 where a
sum of many terms can be reordered), loose enough for einsum vs matmul or another correct
order of operations, tight enough that any wrong formula fails by orders of magnitude.
"""

import pytest
import torch

from autograder.engine.checks import assert_close, assert_shape, check


def _size(rng: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def _shape(shape: tuple) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


# ----------------------------------------------------------------------------- broadcasting


@pytest.mark.points(2)
@pytest.mark.public
def test_pairwise_distances(student, reference, rng):
    """pairwise_distances matches the reference"""
    n, m, d = _size(rng, 3, 9), _size(rng, 3, 9), _size(rng, 2, 6)
    x, y = torch.randn(n, d, generator=rng), torch.randn(m, d, generator=rng)
    got = student.call("basics.pairwise_distances", x, y)
    want = reference.call("basics.pairwise_distances", x, y)
    assert_close(got, want, rtol=1e-5, atol=1e-5,
                 what=f"pairwise_distances(x, y) for x {_shape(x.shape)}, y {_shape(y.shape)}")


@pytest.mark.points(1)
@pytest.mark.public
def test_gather_log_probs(student, reference, rng):
    """gather_log_probs picks each row's label"""
    batch, classes = _size(rng, 4, 12), _size(rng, 3, 10)
    log_probs = torch.randn(batch, classes, generator=rng).log_softmax(-1)
    labels = torch.randint(0, classes, (batch,), generator=rng)
    got = student.call("basics.gather_log_probs", log_probs, labels)
    want = reference.call("basics.gather_log_probs", log_probs, labels)
    assert_close(got, want, rtol=0, atol=0,
                 what=f"gather_log_probs(log_probs {_shape(log_probs.shape)}, labels)")


@pytest.mark.points(1)
def test_one_hot(student, reference, rng):
    """one_hot encodes labels of any shape"""
    classes = _size(rng, 3, 9)
    labels = torch.randint(0, classes, (_size(rng, 2, 5), _size(rng, 2, 5)), generator=rng)
    got = student.call("basics.one_hot", labels, classes)
    want = reference.call("basics.one_hot", labels, classes)
    assert_close(got, want, rtol=0, atol=0,
                 what=f"one_hot(labels of shape {_shape(labels.shape)}, {classes})")


# ----------------------------------------------------------------------------- einops


@pytest.mark.points(2)
@pytest.mark.public
def test_patchify(student, reference, rng):
    """patchify orders patches and their contents as specified"""
    patch = _size(rng, 2, 4)
    images = torch.randn(2, _size(rng, 1, 3), patch * _size(rng, 1, 3), patch * _size(rng, 2, 3),
                         generator=rng)
    got = student.call("basics.patchify", images, patch)
    want = reference.call("basics.patchify", images, patch)
    assert_close(got, want, rtol=0, atol=0,
                 what=f"patchify(images {_shape(images.shape)}, patch={patch})")


@pytest.mark.points(1)
def test_max_pool(student, reference, rng):
    """max_pool takes the maximum over each window"""
    kernel = _size(rng, 2, 3)
    # At least two windows each way, and more columns of windows than rows: with a single
    # window, strided windows ("(k1 h)" for "(h k1)") pool the same entries, and with a square
    # grid of windows a transposed output has the expected shape.
    rows = _size(rng, 2, 3)
    columns = rows + _size(rng, 1, 2)
    images = torch.randn(2, 3, kernel * rows, kernel * columns, generator=rng)
    got = student.call("basics.max_pool", images, kernel)
    want = reference.call("basics.max_pool", images, kernel)
    assert_close(got, want, rtol=0, atol=0,
                 what=f"max_pool(images {_shape(images.shape)}, kernel={kernel})")


@pytest.mark.points(1)
def test_repeat_for_heads(student, reference, rng):
    """repeat_for_heads copies the tensor for every head"""
    heads = _size(rng, 2, 6)
    x = torch.randn(2, _size(rng, 2, 7), _size(rng, 2, 5), generator=rng)
    got = student.call("basics.repeat_for_heads", x, heads)
    want = reference.call("basics.repeat_for_heads", x, heads)
    assert_close(got, want, rtol=0, atol=0,
                 what=f"repeat_for_heads(x {_shape(x.shape)}, heads={heads})")


@pytest.mark.points(2)
def test_attention_scores(student, reference, rng):
    """attention_scores matches the reference, including the 1/sqrt(d_head) scale"""
    b, h, q, k, d = 2, _size(rng, 1, 4), _size(rng, 2, 8), _size(rng, 2, 8), _size(rng, 4, 16)
    queries = torch.randn(b, h, q, d, generator=rng)
    keys = torch.randn(b, h, k, d, generator=rng)
    got = student.call("basics.attention_scores", queries, keys)
    want = reference.call("basics.attention_scores", queries, keys)
    assert_close(got, want, rtol=1e-5, atol=1e-5,
                 what=f"attention_scores(queries {_shape(queries.shape)}, "
                      f"keys {_shape(keys.shape)})")


# ----------------------------------------------------------------------------- stable softmax

SOFTMAX_FAMILY = ["logsumexp", "log_softmax", "softmax"]


@pytest.mark.points(1)
@pytest.mark.public
@pytest.mark.parametrize("function", SOFTMAX_FAMILY)
def test_softmax_family_matches_reference(student, reference, rng, function):
    """{function} matches the reference on ordinary logits along a random dim"""
    x = torch.randn(_size(rng, 2, 6), _size(rng, 2, 6), _size(rng, 2, 6), generator=rng) * 3
    # Never the last dim, so that ignoring `dim` (always using -1) fails; the last dim is
    # exercised by the stability test below.
    dim = [-3, -2, 0, 1][_size(rng, 0, 3)]
    got = student.call(f"basics.{function}", x, dim=dim)
    want = reference.call(f"basics.{function}", x, dim=dim)
    assert_close(got, want, rtol=1e-5, atol=1e-5,
                 what=f"{function}(x {_shape(x.shape)}, dim={dim})")


@pytest.mark.points(1)
@pytest.mark.parametrize("function", SOFTMAX_FAMILY)
def test_softmax_family_is_stable(student, reference, rng, function):
    """{function} stays finite and correct for logits of size 1e4"""
    x = torch.randn(_size(rng, 3, 8), _size(rng, 3, 8), generator=rng) * 1e4
    got = student.call(f"basics.{function}", x, dim=-1)
    want = reference.call(f"basics.{function}", x, dim=-1)
    # float32 at 1e4 has a spacing of ~1e-3, so logsumexp is compared relative to its size.
    assert_close(got, want, rtol=1e-5, atol=1e-5,
                 what=f"{function}(x {_shape(x.shape)} with entries of size 1e4, dim=-1)")


@pytest.mark.points(2)
@pytest.mark.public
def test_cross_entropy(student, reference, rng):
    """cross_entropy matches the reference and returns a scalar"""
    batch, classes = _size(rng, 4, 16), _size(rng, 2, 10)
    logits = torch.randn(batch, classes, generator=rng) * 4
    labels = torch.randint(0, classes, (batch,), generator=rng)
    got = student.call("basics.cross_entropy", logits, labels)
    want = reference.call("basics.cross_entropy", logits, labels)
    assert_shape(got, (), f"cross_entropy(logits {_shape(logits.shape)}, labels)")
    assert_close(got, want, rtol=1e-5, atol=1e-6,
                 what=f"cross_entropy(logits {_shape(logits.shape)}, labels)")


@pytest.mark.points(1)
def test_cross_entropy_is_stable(student, reference, rng):
    """cross_entropy stays finite and correct for logits of size 1e4"""
    batch, classes = _size(rng, 4, 16), _size(rng, 2, 10)
    logits = torch.randn(batch, classes, generator=rng) * 1e4
    labels = torch.randint(0, classes, (batch,), generator=rng)
    got = student.call("basics.cross_entropy", logits, labels)
    want = reference.call("basics.cross_entropy", logits, labels)
    assert_close(got, want, rtol=1e-5, atol=1e-3,
                 what=f"cross_entropy(logits {_shape(logits.shape)} of size 1e4, labels)")


# ----------------------------------------------------------------------------- gradients


@pytest.mark.points(3)
def test_linear_cross_entropy_grads_match_autograd(student, rng):
    """linear_cross_entropy_grads agrees with autograd"""
    batch, d_in, classes = _size(rng, 4, 16), _size(rng, 2, 8), _size(rng, 2, 6)
    x = torch.randn(batch, d_in, generator=rng)
    weight = torch.randn(d_in, classes, generator=rng, requires_grad=True)
    bias = torch.randn(classes, generator=rng, requires_grad=True)
    labels = torch.randint(0, classes, (batch,), generator=rng)
    got = student.call("basics.linear_cross_entropy_grads", x, weight.detach(), bias.detach(),
                       labels)
    # The verdict's own autograd, in the trusted process.
    torch.nn.functional.cross_entropy(x @ weight + bias, labels).backward()
    what = f"linear_cross_entropy_grads(x {_shape(x.shape)}, weight {_shape(weight.shape)}, ...)"
    check(isinstance(got, (tuple, list)) and len(got) == 2,
          f"{what}: expected a pair (grad_weight, grad_bias), got {type(got).__name__}")
    assert_close(got[0], weight.grad, rtol=1e-4, atol=1e-6, what=f"{what} grad_weight")
    assert_close(got[1], bias.grad, rtol=1e-4, atol=1e-6, what=f"{what} grad_bias")


@pytest.mark.points(2)
def test_numerical_gradient(student, rng):
    """numerical_gradient approximates a known gradient and leaves x unchanged"""
    x = torch.randn(_size(rng, 2, 4), _size(rng, 2, 4), generator=rng, dtype=torch.float64)
    got = student.probe("basics.numerical_gradient_of_known_function", x)
    # d/dx sum(sin(x) x^2) = cos(x) x^2 + 2 x sin(x). Central differences with eps = 1e-6 in
    # float64 are accurate to ~1e-9 here; 1e-6 leaves room for other step sizes.
    exact = x.cos() * x.pow(2) + 2 * x * x.sin()
    what = f"numerical_gradient(sum(sin(x) * x**2), x of shape {_shape(x.shape)})"
    shapes = ", ".join(_shape(shape) for shape in got["call_shapes"])
    check(got["call_shapes"] == [list(x.shape)],
          f"{what} called f on tensors of shape {shapes}; evaluate f at x + eps * e_i and "
          f"x - eps * e_i, tensors of x's shape {_shape(x.shape)} (reshape your flat copy).")
    check(got["most_entries_changed"] == 1,
          f"{what}: one call of f saw {got['most_entries_changed']} entries of x changed at once; "
          "each evaluation must change entry i only. Put entry i back to its original value "
          "before moving on to entry i + 1.")
    assert_close(got["grad"], exact, rtol=1e-6, atol=1e-6, what=what)
    check(got["input_unchanged"], f"{what} modified x; work on a copy")


# ----------------------------------------------------------------------------- the MLP


@pytest.mark.points(1)
@pytest.mark.public
def test_mlp_parameter_names(student, reference):
    """MLP has the parameter names and shapes of the interface"""
    got = student.probe("basics.mlp_parameter_shapes", 3, 16, 4)
    want = reference.probe("basics.mlp_parameter_shapes", 3, 16, 4)
    check(isinstance(got, dict) and got == want,
          f"MLP(3, 16, 4).state_dict() should have exactly {want}, got {got}")


@pytest.mark.points(2)
def test_mlp_forward(student, reference, rng):
    """MLP.forward with given weights matches the reference"""
    d_in, d_hidden, d_out = _size(rng, 2, 6), _size(rng, 4, 32), _size(rng, 2, 5)
    shapes = reference.probe("basics.mlp_parameter_shapes", d_in, d_hidden, d_out)
    state = {name: torch.randn(shape, generator=rng) for name, shape in shapes.items()}
    x = torch.randn(_size(rng, 3, 10), d_in, generator=rng)
    args = (state, x, d_in, d_hidden, d_out)
    got = student.probe("basics.mlp_forward", *args)
    want = reference.probe("basics.mlp_forward", *args)
    assert_close(got, want, rtol=1e-5, atol=1e-5,
                 what=f"MLP({d_in}, {d_hidden}, {d_out}) on x {_shape(x.shape)} with given weights")


def _spirals(reference, seed):
    train_x, train_y = reference.call("basics.make_spirals", 200, seed=seed)
    test_x, test_y = reference.call("basics.make_spirals", 200, seed=seed + 1)
    return train_x, train_y, test_x, test_y


@pytest.mark.points(2)
def test_train_classifier_follows_the_specified_order(student, reference, seed):
    """train_classifier's first epochs match the reference from the same weights"""
    train_x, train_y, test_x, _ = _spirals(reference, seed % 1000)
    state = reference.probe("basics.mlp_initial_state", 2, 32, 3, seed % 1000)
    kwargs = dict(hidden=32, epochs=3, lr=1e-2, batch_size=50, seed=seed % 1000)
    got = student.probe("basics.train_mlp", state, train_x, train_y, test_x, timeout=30,
                        **kwargs)
    want = reference.probe("basics.train_mlp", state, train_x, train_y, test_x, timeout=30,
                           **kwargs)
    check(got["loss_types"] == ["float"],
          f"train_classifier returned epoch losses of type {', '.join(got['loss_types'])}; "
          "return Python floats (loss.item()): keeping the loss tensors keeps every minibatch's "
          "computation graph alive.")
    # Adam on float32 reorders sums differently across implementations; 1e-4 relative over
    # 36 steps is far below the change one misordered minibatch makes (~1e-2).
    assert_close(got["losses"], want["losses"], rtol=1e-4, atol=1e-5,
                 what="epoch losses of train_classifier(MLP(2, 32, 3), spirals, epochs=3, "
                      "lr=0.01, batch_size=50) from the same initial weights")


@pytest.mark.points(3)
@pytest.mark.public
def test_train_classifier_fits_spirals(student, reference, seed):
    """train_classifier fits the spirals to at least 95% test accuracy"""
    train_x, train_y, test_x, test_y = _spirals(reference, seed % 1000)
    state = reference.probe("basics.mlp_initial_state", 2, 64, 3, seed % 1000)
    epochs = 60
    got = student.probe("basics.train_mlp", state, train_x, train_y, test_x, hidden=64,
                        epochs=epochs, lr=1e-2, batch_size=64, seed=seed % 1000, timeout=60)
    losses = got["losses"]
    check(len(losses) == epochs, f"train_classifier returned {len(losses)} losses for "
          f"{epochs} epochs; return one mean loss per epoch")
    test_accuracy = (got["predictions"] == test_y).float().mean().item()
    check(test_accuracy >= 0.95,
          f"after {epochs} epochs (Adam, lr 0.01, batch 64) the MLP reaches {test_accuracy:.1%} "
          f"test accuracy on the spirals; at least 95% is expected (the reference reaches "
          f"99%+). Epoch losses went from {losses[0]:.3f} to {losses[-1]:.3f}.")
