"""Lab 1, part 1: PyTorch basics.

Tensors without loops (broadcasting, indexing, gather), einops, numerically stable
softmax and cross-entropy, a backward pass by hand checked against autograd, and a small
MLP trained on a synthetic data set. Run `python basics.py` to train the MLP on spirals.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import einops
import torch
from torch import nn

# ----------------------------------------------------------------------------------------
# Broadcasting and indexing
# ----------------------------------------------------------------------------------------


def pairwise_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distance between every row of `x` and every row of `y`.

    x: (n, d), y: (m, d). Returns (n, m) with out[i, j] = ||x[i] - y[j]||_2.
    No Python loops. Hint: give x and y singleton dimensions so that x - y broadcasts
    to (n, m, d).
    """
    # TODO: implement pairwise_distances
    raise NotImplementedError("pairwise_distances is not implemented yet")


def gather_log_probs(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pick, in each row, the log-probability of that row's label.

    log_probs: (batch, classes) float; labels: (batch,) int64 in [0, classes).
    Returns (batch,) with out[i] = log_probs[i, labels[i]].
    Hint: `torch.gather` along dim 1 with labels of shape (batch, 1), or advanced indexing.
    """
    # TODO: implement gather_log_probs
    raise NotImplementedError("gather_log_probs is not implemented yet")


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot encode integer labels.

    labels: any shape, int64 in [0, num_classes). Returns float32 of shape
    (*labels.shape, num_classes) with a 1 at each label's index and 0 elsewhere.
    Hint: compare `labels[..., None]` with `torch.arange(num_classes)`.
    """
    # TODO: implement one_hot
    raise NotImplementedError("one_hot is not implemented yet")


# ----------------------------------------------------------------------------------------
# einops
# ----------------------------------------------------------------------------------------


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut images into non-overlapping square patches, as a vision transformer does.

    images: (batch, channels, height, width) with height and width divisible by `patch`.
    Returns (batch, num_patches, channels * patch * patch); patches are ordered row by row
    (left to right, then top to bottom) and each patch is flattened in (channel, row, column)
    order. Hint: one `einops.rearrange` with the pattern
    "b c (h p1) (w p2) -> b (h w) (c p1 p2)".
    """
    # TODO: implement patchify
    raise NotImplementedError("patchify is not implemented yet")


def max_pool(images: torch.Tensor, kernel: int) -> torch.Tensor:
    """Max-pool each channel over non-overlapping `kernel` x `kernel` windows.

    images: (batch, channels, height, width), height and width divisible by `kernel`.
    Returns (batch, channels, height // kernel, width // kernel). Hint: `einops.reduce`.
    """
    # TODO: implement max_pool
    raise NotImplementedError("max_pool is not implemented yet")


def repeat_for_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Give every attention head its own copy of a (batch, seq, d) tensor.

    Returns (batch, heads, seq, d) with out[b, h] = x[b] for every h. Hint: `einops.repeat`.
    """
    # TODO: implement repeat_for_heads
    raise NotImplementedError("repeat_for_heads is not implemented yet")


def attention_scores(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Scaled dot products between every query and every key, per batch and head.

    queries: (batch, heads, q_len, d_head); keys: (batch, heads, k_len, d_head).
    Returns (batch, heads, q_len, k_len) with out[b, h, i, j] = q[b, h, i] . k[b, h, j]
    divided by sqrt(d_head). Hint: `einops.einsum` or `torch.einsum`.
    """
    # TODO: implement attention_scores
    raise NotImplementedError("attention_scores is not implemented yet")


# ----------------------------------------------------------------------------------------
# Numerically stable softmax and cross-entropy (do not call torch's versions)
# ----------------------------------------------------------------------------------------


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(sum(exp(x))) along `dim`, without overflow for logits as large as 1e4.

    Returns x's shape with `dim` removed. Hint: with m the maximum along `dim`,
    logsumexp(x) = m + log(sum(exp(x - m))).
    """
    # TODO: implement logsumexp
    raise NotImplementedError("logsumexp is not implemented yet")


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(softmax(x)) along `dim`, stable for large logits. Same shape as x.

    Hint: x - logsumexp(x), with the reduced dimension kept so that it broadcasts.
    """
    # TODO: implement log_softmax
    raise NotImplementedError("log_softmax is not implemented yet")


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax along `dim`, stable for large logits: entries along `dim` sum to 1.

    Same shape as x. Hint: exponentiate the log-softmax, or subtract the maximum first.
    """
    # TODO: implement softmax
    raise NotImplementedError("softmax is not implemented yet")


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy loss of class logits against integer labels.

    logits: (batch, classes); labels: (batch,) int64. Returns a scalar (0-dim) tensor:
    the mean over the batch of -log softmax(logits)[i, labels[i]]. Must stay finite for
    logits of 1e4. Hint: use your log_softmax and gather_log_probs.
    """
    # TODO: implement cross_entropy
    raise NotImplementedError("cross_entropy is not implemented yet")


# ----------------------------------------------------------------------------------------
# Gradients by hand, and a finite-difference check
# ----------------------------------------------------------------------------------------


def linear_cross_entropy_grads(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of cross_entropy(x @ weight + bias, labels) with respect to weight and bias.

    x: (batch, d_in); weight: (d_in, classes); bias: (classes,); labels: (batch,).
    Returns (grad_weight (d_in, classes), grad_bias (classes,)), computed by hand, without
    autograd. Hint: the gradient of the mean loss with respect to the logits is
    (softmax(logits) - one_hot(labels)) / batch.
    """
    # TODO: implement linear_cross_entropy_grads
    raise NotImplementedError("linear_cross_entropy_grads is not implemented yet")


def numerical_gradient(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Central finite-difference gradient of a scalar function f at x.

    x: any shape (use float64 for accuracy). Returns a tensor shaped like x whose entry i is
    (f(x + eps * e_i) - f(x - eps * e_i)) / (2 * eps), with e_i the i-th unit tensor.
    Do not modify x. Hint: loop over `x.numel()` entries of a flattened copy.
    """
    # TODO: implement numerical_gradient
    raise NotImplementedError("numerical_gradient is not implemented yet")


# ----------------------------------------------------------------------------------------
# A small MLP and its training loop
# ----------------------------------------------------------------------------------------


class MLP(nn.Module):
    """Two-layer perceptron: Linear -> ReLU -> Linear.

    The parameter names are part of the interface (the grader loads weights into your
    module): `self.hidden = nn.Linear(d_in, d_hidden)` and
    `self.output = nn.Linear(d_hidden, d_out)`.
    """

    def __init__(self, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        # TODO: implement MLP.__init__
        raise NotImplementedError("MLP.__init__ is not implemented yet")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, d_in) -> logits (batch, d_out)."""
        # TODO: implement MLP.forward
        raise NotImplementedError("MLP.forward is not implemented yet")


def make_spirals(
    n_per_class: int, n_classes: int = 3, noise: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interleaved 2-D spirals, one arm per class: inputs (n, 2) float32, labels (n,) int64."""
    generator = torch.Generator().manual_seed(seed)
    radius = torch.linspace(0.05, 1.0, n_per_class).repeat(n_classes)
    labels = torch.arange(n_classes).repeat_interleave(n_per_class)
    angle = radius * 4.0 + labels * (2 * math.pi / n_classes)
    angle = angle + noise * torch.randn(angle.shape, generator=generator)
    inputs = torch.stack([radius * angle.sin(), radius * angle.cos()], dim=1)
    return inputs.float(), labels


def train_classifier(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> list[float]:
    """Train `model` with Adam(lr) on minibatches and your `cross_entropy`; return epoch losses.

    Each epoch visits every example once in a random order drawn from
    `torch.Generator().manual_seed(seed)` (one generator for the whole run), in minibatches of
    `batch_size` (the last one may be smaller). Returns a list of `epochs` floats: the mean
    minibatch loss of each epoch. Hint: `torch.randperm(n, generator=...)`, then
    zero_grad / backward / step for each minibatch.
    """
    # TODO: implement train_classifier
    raise NotImplementedError("train_classifier is not implemented yet")


def accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of inputs whose highest logit is at the right label."""
    with torch.no_grad():
        return (model(inputs).argmax(dim=-1) == labels).float().mean().item()


if __name__ == "__main__":
    torch.set_num_threads(1)  # a small MLP trains fastest on one core: threads only add overhead
    torch.manual_seed(0)
    train_x, train_y = make_spirals(300, seed=0)
    test_x, test_y = make_spirals(300, seed=1)
    model = MLP(2, 64, 3)
    history = train_classifier(model, train_x, train_y, epochs=200, lr=1e-2, batch_size=64, seed=0)
    print(f"loss {history[0]:.3f} -> {history[-1]:.3f}")
    print(f"train accuracy {accuracy(model, train_x, train_y):.1%}, "
          f"test accuracy {accuracy(model, test_x, test_y):.1%}")
