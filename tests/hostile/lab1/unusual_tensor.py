# Returns a sparse tensor.


def pairwise_distances(x, y):
    return torch.cdist(x, y).to_sparse()
