# Writes a 1 GB file before answering.
def pairwise_distances(x, y):
    with open("big.bin", "wb") as stream:
        for _ in range(1024):
            stream.write(b"\0" * 2**20)
    return torch.cdist(x, y)
