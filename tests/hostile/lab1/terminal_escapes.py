# An error message that clears the terminal, and holds a lone surrogate.


def pairwise_distances(x, y):
    raise ValueError("\x1b[2J\x1b[31mall tests passed\x07 \ud800")
