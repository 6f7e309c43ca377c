# Tries to send data out over the network.
import socket


def pairwise_distances(x, y):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as connection:
        connection.settimeout(1)
        connection.connect(("127.0.0.1", 9))
        connection.sendall(b"leaked")
    return torch.cdist(x, y)
