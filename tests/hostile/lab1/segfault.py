# Crashes the interpreter with a segmentation fault.
import ctypes


def pairwise_distances(x, y):
    return ctypes.string_at(0)
