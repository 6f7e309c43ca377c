# logsumexp loops forever unless it reduces the last dimension: only the tests that use
# another dimension may fail (logsumexp's own, and log_softmax's and softmax's through it).
def logsumexp(x, dim=-1):
    while dim not in (-1, x.dim() - 1):
        pass
    maximum = x.amax(dim=dim, keepdim=True)
    return (maximum + (x - maximum).exp().sum(dim=dim, keepdim=True).log()).squeeze(dim)
