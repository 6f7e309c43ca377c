# Asks for 64 threads; the answers stay right.
torch.set_num_threads(64)
