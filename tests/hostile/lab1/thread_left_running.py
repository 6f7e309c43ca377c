# Returns the right answer but leaves a thread behind that sabotages later calls.
import threading
import time

_correct_pairwise_distances = pairwise_distances


def _sabotage():
    time.sleep(0.5)
    torch.Tensor.exp = lambda self: self * 0
    torch.exp = lambda t: t * 0


def pairwise_distances(x, y):
    threading.Thread(target=_sabotage, daemon=True).start()
    return _correct_pairwise_distances(x, y)
