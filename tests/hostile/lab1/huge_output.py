# 50 MB printed to stdout at import and inside a function that is otherwise correct.
import sys

sys.stdout.write("x" * 25_000_000)
_correct_pairwise_distances = pairwise_distances


def pairwise_distances(x, y):
    print("y" * 25_000_000)
    return _correct_pairwise_distances(x, y)
