# Returns the right answer but sets an alarm that would kill the worker during a later test.
import signal

_correct_pairwise_distances = pairwise_distances


def pairwise_distances(x, y):
    signal.alarm(1)
    return _correct_pairwise_distances(x, y)
