# whole file: a syntax error on line 5
import torch


def pairwise_distances(x, y)
    return torch.cdist(x, y)
