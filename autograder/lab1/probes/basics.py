"""Probes for lab1 part "basics": run in the worker, next to the implementation's basics.py."""

import basics
import torch


def numerical_gradient_of_known_function(x: torch.Tensor) -> dict:
    """The implementation's finite-difference gradient of sum(sin(x) * x^2), whether x was left
    unchanged, and how f was called: the shapes it was given, and the most entries of x that
    one call changed (central differences change exactly one)."""
    before = x.clone()
    shapes, changed = set(), [0]

    def f(t: torch.Tensor) -> torch.Tensor:
        shapes.add(tuple(t.shape))
        if t.numel() == before.numel():
            moved = (t.detach().reshape(-1) != before.reshape(-1)).sum()
            changed.append(int(moved))
        return (t.sin() * t.pow(2)).sum()

    grad = basics.numerical_gradient(f, x)
    return {"grad": grad, "input_unchanged": bool(torch.equal(x, before)),
            "call_shapes": sorted(list(shape) for shape in shapes),
            "most_entries_changed": max(changed)}


def mlp_parameter_shapes(d_in: int, d_hidden: int, d_out: int) -> dict:
    model = basics.MLP(d_in, d_hidden, d_out)
    return {name: list(tensor.shape) for name, tensor in model.state_dict().items()}


def mlp_forward(state: dict, x: torch.Tensor, d_in: int, d_hidden: int, d_out: int):
    model = basics.MLP(d_in, d_hidden, d_out)
    model.load_state_dict(state)
    with torch.no_grad():
        return model(x)


def train_mlp(
    state: dict, train_x, train_y, test_x, *, hidden: int, epochs: int, lr: float,
    batch_size: int, seed: int
) -> dict:
    """Train the implementation's MLP from given weights with its train_classifier."""
    torch.manual_seed(seed)
    model = basics.MLP(train_x.shape[1], hidden, int(train_y.max()) + 1)
    model.load_state_dict(state)
    losses = basics.train_classifier(
        model, train_x, train_y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed
    )
    with torch.no_grad():
        predictions = model(test_x).argmax(dim=-1)
    return {"losses": [float(loss) for loss in losses], "predictions": predictions,
            "loss_types": sorted({type(loss).__name__ for loss in losses})}


def mlp_initial_state(d_in: int, d_hidden: int, d_out: int, seed: int) -> dict:
    """A freshly initialised MLP's weights (PyTorch's default initialisation) at `seed`."""
    torch.manual_seed(seed)
    return basics.MLP(d_in, d_hidden, d_out).state_dict()
