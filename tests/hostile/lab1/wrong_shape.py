# Transposed result: (m, n) instead of (n, m).
def pairwise_distances(x, y):
    return torch.cdist(y, x)
