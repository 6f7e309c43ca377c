# sys.exit(0) inside a function.
import sys


def pairwise_distances(x, y):
    sys.exit(0)
