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
    # BEGIN SOLUTION
    difference = x[:, None, :] - y[None, :, :]
    return difference.pow(2).sum(dim=-1).sqrt()
    # END SOLUTION


def gather_log_probs(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pick, in each row, the log-probability of that row's label.

    log_probs: (batch, classes) float; labels: (batch,) int64 in [0, classes).
    Returns (batch,) with out[i] = log_probs[i, labels[i]].
    Hint: `torch.gather` along dim 1 with labels of shape (batch, 1), or advanced indexing.
    """
    # BEGIN SOLUTION
    return log_probs.gather(1, labels[:, None]).squeeze(1)
    # END SOLUTION


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot encode integer labels.

    labels: any shape, int64 in [0, num_classes). Returns float32 of shape
    (*labels.shape, num_classes) with a 1 at each label's index and 0 elsewhere.
    Hint: compare `labels[..., None]` with `torch.arange(num_classes)`.
    """
    # BEGIN SOLUTION
    return (labels[..., None] == torch.arange(num_classes, device=labels.device)).float()
    # END SOLUTION


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
    # BEGIN SOLUTION
    return einops.rearrange(images, "b c (h p1) (w p2) -> b (h w) (c p1 p2)", p1=patch, p2=patch)
    # END SOLUTION


def max_pool(images: torch.Tensor, kernel: int) -> torch.Tensor:
    """Max-pool each channel over non-overlapping `kernel` x `kernel` windows.

    images: (batch, channels, height, width), height and width divisible by `kernel`.
    Returns (batch, channels, height // kernel, width // kernel). Hint: `einops.reduce`.
    """
    # BEGIN SOLUTION
    return einops.reduce(images, "b c (h k1) (w k2) -> b c h w", "max", k1=kernel, k2=kernel)
    # END SOLUTION


def repeat_for_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Give every attention head its own copy of a (batch, seq, d) tensor.

    Returns (batch, heads, seq, d) with out[b, h] = x[b] for every h. Hint: `einops.repeat`.
    """
    # BEGIN SOLUTION
    return einops.repeat(x, "b s d -> b h s d", h=heads)
    # END SOLUTION


def attention_scores(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Scaled dot products between every query and every key, per batch and head.

    queries: (batch, heads, q_len, d_head); keys: (batch, heads, k_len, d_head).
    Returns (batch, heads, q_len, k_len) with out[b, h, i, j] = q[b, h, i] . k[b, h, j]
    divided by sqrt(d_head). Hint: `einops.einsum` or `torch.einsum`.
    """
    # BEGIN SOLUTION
    scores = einops.einsum(queries, keys, "b h q d, b h k d -> b h q k")
    return scores / math.sqrt(queries.shape[-1])
    # END SOLUTION


# ----------------------------------------------------------------------------------------
# Numerically stable softmax and cross-entropy (do not call torch's versions)
# ----------------------------------------------------------------------------------------


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(sum(exp(x))) along `dim`, without overflow for logits as large as 1e4.

    Returns x's shape with `dim` removed. Hint: with m the maximum along `dim`,
    logsumexp(x) = m + log(sum(exp(x - m))).
    """
    # BEGIN SOLUTION
    maximum = x.amax(dim=dim, keepdim=True)
    return (maximum + (x - maximum).exp().sum(dim=dim, keepdim=True).log()).squeeze(dim)
    # END SOLUTION


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(softmax(x)) along `dim`, stable for large logits. Same shape as x.

    Hint: x - logsumexp(x), with the reduced dimension kept so that it broadcasts.
    """
    # BEGIN SOLUTION
    return x - logsumexp(x, dim=dim).unsqueeze(dim)
    # END SOLUTION


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax along `dim`, stable for large logits: entries along `dim` sum to 1.

    Same shape as x. Hint: exponentiate the log-softmax, or subtract the maximum first.
    """
    # BEGIN SOLUTION
    return log_softmax(x, dim=dim).exp()
    # END SOLUTION


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy loss of class logits against integer labels.

    logits: (batch, classes); labels: (batch,) int64. Returns a scalar (0-dim) tensor:
    the mean over the batch of -log softmax(logits)[i, labels[i]]. Must stay finite for
    logits of 1e4. Hint: use your log_softmax and gather_log_probs.
    """
    # BEGIN SOLUTION
    return -gather_log_probs(log_softmax(logits, dim=-1), labels).mean()
    # END SOLUTION


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
    # BEGIN SOLUTION
    logits = x @ weight + bias
    grad_logits = (softmax(logits) - one_hot(labels, logits.shape[-1])) / x.shape[0]
    return x.T @ grad_logits, grad_logits.sum(dim=0)
    # END SOLUTION


def numerical_gradient(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Central finite-difference gradient of a scalar function f at x.

    x: any shape (use float64 for accuracy). Returns a tensor shaped like x whose entry i is
    (f(x + eps * e_i) - f(x - eps * e_i)) / (2 * eps), with e_i the i-th unit tensor.
    Do not modify x. Hint: loop over `x.numel()` entries of a flattened copy.
    """
    # BEGIN SOLUTION
    flat = x.detach().clone().reshape(-1)
    grad = torch.zeros_like(flat)
    for i in range(flat.numel()):
        original = flat[i].item()
        flat[i] = original + eps
        plus = f(flat.reshape(x.shape)).item()
        flat[i] = original - eps
        minus = f(flat.reshape(x.shape)).item()
        flat[i] = original
        grad[i] = (plus - minus) / (2 * eps)
    return grad.reshape(x.shape)
    # END SOLUTION


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
        # BEGIN SOLUTION
        self.hidden = nn.Linear(d_in, d_hidden)
        self.output = nn.Linear(d_hidden, d_out)
        # END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, d_in) -> logits (batch, d_out)."""
        # BEGIN SOLUTION
        return self.output(torch.relu(self.hidden(x)))
        # END SOLUTION


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
    # BEGIN SOLUTION
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        losses = []
        for start in range(0, len(inputs), batch_size):
            batch = order[start : start + batch_size]
            loss = cross_entropy(model(inputs[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history.append(sum(losses) / len(losses))
    return history
    # END SOLUTION


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
