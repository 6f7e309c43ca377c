# Writes a forged, well-framed answer (the correct one) to every open file descriptor, also
# through duplicates, then returns a wrong answer.
import io
import os
import struct

_correct = pairwise_distances


def pairwise_distances(x, y):
    buffer = io.BytesIO()
    torch.save({"ok": True, "value": _correct(x, y)}, buffer)
    message = struct.pack("!Q", len(buffer.getvalue())) + buffer.getvalue()
    for fd in range(3, 64):
        for target in (fd, "dup"):
            try:
                os.write(os.dup(fd) if target == "dup" else fd, message)
            except OSError:
                pass
    return torch.ones(x.shape[0], y.shape[0])
