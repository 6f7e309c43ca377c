# whole file: imports a package that is not installed
import torch
import jax_is_not_installed_here  # noqa: F401


def pairwise_distances(x, y):
    return torch.cdist(x, y)
