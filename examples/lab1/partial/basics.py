"""An example lab1 submission, as a student might hand it in halfway through the lab.

Some functions are right, some have the classic bugs (a missing square root, a missing
1/sqrt(d) scale, a softmax that overflows, a gradient not divided by the batch size), one is
not done yet. `make demo` grades it next to the starter code and the reference.
"""

import math

import einops
import torch
from torch import nn


def pairwise_distances(x, y):
    return (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)  # forgot the square root


def gather_log_probs(log_probs, labels):
    return log_probs[torch.arange(len(labels)), labels]


def one_hot(labels, num_classes):
    return torch.nn.functional.one_hot(labels, num_classes).float()


def patchify(images, patch):
    return einops.rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch, p2=patch)


def max_pool(images, kernel):
    return einops.reduce(images, "b c (h k1) (w k2) -> b c h w", "max", k1=kernel, k2=kernel)


def repeat_for_heads(x, heads):
    return einops.repeat(x, "b s d -> b h s d", h=heads)


def attention_scores(queries, keys):
    return einops.einsum(queries, keys, "b h q d, b h k d -> b h q k")  # no 1/sqrt(d_head)


def logsumexp(x, dim=-1):
    return x.exp().sum(dim).log()  # overflows for large logits


def log_softmax(x, dim=-1):
    return x - logsumexp(x, dim).unsqueeze(dim)


def softmax(x, dim=-1):
    return x.exp() / x.exp().sum(dim, keepdim=True)


def cross_entropy(logits, labels):
    return -gather_log_probs(log_softmax(logits), labels).mean()


def linear_cross_entropy_grads(x, weight, bias, labels):
    logits = x @ weight + bias
    grad_logits = softmax(logits) - one_hot(labels, logits.shape[-1])  # not divided by batch
    return x.T @ grad_logits, grad_logits.sum(0)


def numerical_gradient(f, x, eps=1e-6):
    raise NotImplementedError("numerical_gradient is not implemented yet")


class MLP(nn.Module):
    def __init__(self, d_in, d_hidden, d_out):
        super().__init__()
        self.hidden = nn.Linear(d_in, d_hidden)
        self.output = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.output(torch.relu(self.hidden(x)))


def train_classifier(model, inputs, labels, *, epochs, lr, batch_size, seed):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(inputs))  # ignores the seed: a different order
        losses = []
        for start in range(0, len(inputs), batch_size):
            batch = order[start : start + batch_size]
            loss = torch.nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history.append(sum(losses) / len(losses))
    return history


print(f"(this example prints at import; math.pi is {math.pi:.2f})")
