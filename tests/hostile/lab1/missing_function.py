# pairwise_distances was deleted (or renamed).
del pairwise_distances
