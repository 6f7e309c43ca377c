"""Probes for lab1 part "basics": run in the worker, next to the implementation's basics.py.

What a probe reports about itself (a flag, a count) is a claim the submission could forge, so
the tests only use it next to a value that takes the work to produce: a gradient, a forward
pass, trained weights that the trusted side evaluates on points the worker never sees.
"""

import basics
import torch


def numerical_gradient_of_known_function(
    x: torch.Tensor, scale: torch.Tensor, frequency: torch.Tensor, curvature: torch.Tensor,
    centre: torch.Tensor,
) -> dict:
    """The implementation's finite-difference gradient of sum(scale * sin(frequency * x) * x^2
    + curvature / 2 * (x - centre)^2) (all four drawn by the test), x as it is after the call,
    and how f was called: the shapes it was given, and the most entries of x that one call
    changed (central differences change exactly one)."""
    before = x.clone()
    shapes, changed = set(), [0]

    def f(t: torch.Tensor) -> torch.Tensor:
        shapes.add(tuple(t.shape))
        if t.numel() == before.numel():
            moved = (t.detach().reshape(-1) != before.reshape(-1)).sum()
            changed.append(int(moved))
        return (scale * (frequency * t).sin() * t.pow(2)
                + curvature / 2 * (t - centre).pow(2)).sum()

    grad = basics.numerical_gradient(f, x)
    return {"grad": grad, "x_after": x.detach().clone(),
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


def mlp_shapes_and_forward(state: dict, x: torch.Tensor, d_in: int, d_hidden: int,
                           d_out: int) -> dict:
    """The MLP's parameter names and shapes and, when `state` fits them, its output on x."""
    model = basics.MLP(d_in, d_hidden, d_out)
    shapes = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    if shapes != {name: list(tensor.shape) for name, tensor in state.items()}:
        return {"shapes": shapes, "output": None}
    model.load_state_dict(state)
    with torch.no_grad():
        return {"shapes": shapes, "output": model(x)}


def train_mlp(
    state: dict, train_x, train_y, *, hidden: int, epochs: int, lr: float,
    batch_size: int, seed: int
) -> dict:
    """Train the implementation's MLP from given weights with its train_classifier; return the
    epoch losses and the trained weights (the test evaluates them on its own points)."""
    torch.manual_seed(seed)
    model = basics.MLP(train_x.shape[1], hidden, int(train_y.max()) + 1)
    model.load_state_dict(state)
    losses = basics.train_classifier(
        model, train_x, train_y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed
    )
    return {"losses": [float(loss) for loss in losses],
            "state": {name: t.detach().clone() for name, t in model.state_dict().items()},
            "loss_types": sorted({type(loss).__name__ for loss in losses})}


def train_mlp_variants(
    state: dict, train_x, train_y, *, hidden: int, epochs: int, lr: float,
    batch_size: int, seed: int
) -> dict:
    """(Run on the reference.) Epoch losses of three common wrong loops, with the
    implementation's MLP and cross_entropy, so that a failing loop can be named."""

    def run(variant: str) -> list[float]:
        model = basics.MLP(train_x.shape[1], hidden, int(train_y.max()) + 1)
        model.load_state_dict(state)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        history = []
        for _ in range(epochs):
            if variant == "reseeded":
                generator = torch.Generator().manual_seed(seed)
            if variant == "new_optimizer":
                optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            order = torch.randperm(len(train_x), generator=generator)
            losses = []
            for start in range(0, len(train_x), batch_size):
                batch = order[start : start + batch_size]
                loss = basics.cross_entropy(model(train_x[batch]), train_y[batch])
                if variant != "no_zero_grad":
                    optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            history.append(sum(losses) / len(losses))
        return history

    return {variant: run(variant) for variant in ("reseeded", "new_optimizer", "no_zero_grad")}


def mlp_initial_state(d_in: int, d_hidden: int, d_out: int, seed: int) -> dict:
    """A freshly initialised MLP's weights (PyTorch's default initialisation) at `seed`."""
    torch.manual_seed(seed)
    return basics.MLP(d_in, d_hidden, d_out).state_dict()
