# A softmax that produces NaN.
def softmax(x, dim=-1):
    return x * float("nan")
