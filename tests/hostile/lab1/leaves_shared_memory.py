# Leaves a file in /dev/shm (memory that would outlive the grading) and answers correctly.
# Where Landlock keeps the worker out, the write fails quietly; where it does not, the
# grader must remove the file when the worker ends.
_correct_pairwise_distances = pairwise_distances


def pairwise_distances(x, y):
    try:
        with open("/dev/shm/hostile-leftover", "wb") as stream:
            stream.write(b"\0" * 2**20)
    except OSError:
        pass
    return _correct_pairwise_distances(x, y)
