"""Lab 2, part 3: toy models of superposition (Elhage et al. 2022).

n sparse features x in [0, 1]^n are squeezed through m < n hidden dimensions and read back:

    h = W x,    x_hat = ReLU(W^T h + b)        W: (m, n), b: (n,)

trained to minimise the importance-weighted squared error sum_i I_i (x_i - x_hat_i)^2. When
features are dense the model keeps the m most important ones and drops the rest; when they
are sparse it packs more than m features into m dimensions (superposition), accepting some
interference because two features are rarely active together.

Many models ("instances") are trained at once: every tensor has a leading instance dimension,
and instance k sees features that are each zero with its own probability `sparsity[k]`.

    python superposition.py [FOLDER]    trains n = 5, m = 2 at ten sparsities (about 10 s on
                                        a CPU), prints how many features each represents and
                                        writes superposition_geometry.png and
                                        superposition_dimensionality.png into FOLDER
                                        (default: images/)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

# ----------------------------------------------------------------------------- the data


def feature_importance(n_features: int, decay: float) -> torch.Tensor:
    """How much each feature's reconstruction error counts in the loss: I_i = decay ** i.

    Returns float32 of shape (n_features,), starting at 1 for feature 0.
    Hint: `torch.arange`.
    """
    # BEGIN SOLUTION
    return decay ** torch.arange(n_features, dtype=torch.float32)
    # END SOLUTION


def sparsity_sweep(n_instances: int, lowest_density: float) -> torch.Tensor:
    """Sparsities for `n_instances` instances, from dense to sparse, geometrically spaced.

    A feature's density is 1 - sparsity, the probability that it is non-zero. Instance k gets
    density lowest_density ** (k / (n_instances - 1)): 1 for instance 0, `lowest_density`
    for the last one. Returns the sparsities, float32 of shape (n_instances,); n_instances >= 2.
    Hint: sparsity = 1 - density; `torch.linspace(0, 1, n_instances)` gives the exponents.
    """
    # BEGIN SOLUTION
    exponents = torch.linspace(0, 1, n_instances, dtype=torch.float64)
    return (1 - lowest_density**exponents).to(torch.float32)
    # END SOLUTION


def generate_batch(
    batch_size: int,
    sparsity: torch.Tensor,
    n_features: int,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """A batch of sparse features for every instance.

    sparsity: (n_instances,), the probability that a feature of that instance is ZERO.
    Returns float32 of shape (batch_size, n_instances, n_features), on `device`: each entry
    is 0 with probability sparsity[instance], otherwise uniform on [0, 1), all independent.
    Use `generator` (a CPU generator) exactly like this, so that your batches match the
    reference's draw for draw: first `values = torch.rand(shape, generator=generator)`, then
    `draws = torch.rand(shape, generator=generator)`; an entry is present (keeps its value)
    where its draw is >= its instance's sparsity. Then move the batch to `device`.
    Hint: `sparsity[:, None]` broadcasts over features (and the batch dimension in front).
    """
    # BEGIN SOLUTION
    shape = (batch_size, sparsity.shape[0], n_features)
    values = torch.rand(shape, generator=generator)
    present = torch.rand(shape, generator=generator) >= sparsity.cpu()[:, None]
    return (values * present).to(device)
    # END SOLUTION


# ----------------------------------------------------------------------------- the model


class ToyModel(nn.Module):
    """`n_instances` independent toy models x_hat = ReLU(W^T W x + b), evaluated together.

    Parameters (names and shapes are fixed; the grader loads weights into them):
        W        (n_instances, n_hidden, n_features)  column W[k, :, i] is feature i's
                                                       direction in instance k's hidden space
        b_final  (n_instances, n_features)
    """

    def __init__(self, n_instances: int, n_features: int, n_hidden: int) -> None:
        super().__init__()
        self.n_instances, self.n_features, self.n_hidden = n_instances, n_features, n_hidden
        self.W = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_instances, n_hidden,
                                                                 n_features)))
        self.b_final = nn.Parameter(torch.zeros(n_instances, n_features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (batch, n_instances, n_features). Returns x_hat, the same shape.

        For every instance k: h = W[k] x (shape (n_hidden,)), then x_hat = ReLU(W[k]^T h +
        b_final[k]). Work in the dtype of the inputs (the grader also runs float64).
        Hint: two `torch.einsum`s, e.g. "k h f, b k f -> b k h" then "k h f, b k h -> b k f".
        """
        # BEGIN SOLUTION
        hidden = torch.einsum("khf,bkf->bkh", self.W, features)
        out = torch.einsum("khf,bkh->bkf", self.W, hidden)
        return torch.relu(out + self.b_final)
        # END SOLUTION


def importance_weighted_loss(
    output: torch.Tensor, target: torch.Tensor, importance: torch.Tensor
) -> torch.Tensor:
    """Each instance's loss: mean over the batch of sum_i I_i (target_i - output_i)^2.

    output, target: (batch, n_instances, n_features); importance: (n_features,) or
    (n_instances, n_features). Returns (n_instances,): one loss per instance (training
    minimises their sum, which trains every instance on its own loss).
    Hint: broadcast `importance` against the squared error, then reduce.
    """
    # BEGIN SOLUTION
    weighted = importance * (target - output).pow(2)
    return weighted.sum(dim=-1).mean(dim=0)
    # END SOLUTION


# ----------------------------------------------------------------------------- training


def train_step(
    model: ToyModel, optimizer: torch.optim.Optimizer, batch: torch.Tensor,
    importance: torch.Tensor,
) -> float:
    """One gradient step on `batch` (batch, n_instances, n_features): the model reconstructs
    the batch, the loss is the SUM over instances of `importance_weighted_loss`, then backward
    and one step of `optimizer`. Returns that summed loss before the step, as a float.
    Hint: clear the previous step's gradients first.
    """
    # BEGIN SOLUTION
    loss = importance_weighted_loss(model(batch), batch, importance).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
    # END SOLUTION


def train_toy_model(
    model: ToyModel,
    sparsity: torch.Tensor,
    importance: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> list[float]:
    """Train `model` in place with Adam(lr) for `steps` steps; return the list of losses.

    Move the model and `importance` to `device`. Each step draws a fresh batch with
    `generate_batch(batch_size, sparsity, model.n_features, generator, device)` and takes
    one `train_step` on it. Show a tqdm progress bar over the steps, with
    `disable=not progress` and `mininterval=1.0` (the grader trains with it off).
    Hint: create the optimizer after moving the model.
    """
    # BEGIN SOLUTION
    model.to(device)
    importance = importance.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in tqdm(range(steps), disable=not progress, mininterval=1.0, desc="toy models"):
        batch = generate_batch(batch_size, sparsity, model.n_features, generator, device)
        losses.append(train_step(model, optimizer, batch, importance))
    return losses
    # END SOLUTION


# ----------------------------------------------------------------------------- measurements


def feature_norms(W: torch.Tensor) -> torch.Tensor:
    """||W_i||, the length of each feature's direction: a feature is "represented" when its
    norm is near 1 and dropped when near 0.

    W: (n_instances, n_hidden, n_features). Returns (n_instances, n_features).
    """
    # BEGIN SOLUTION
    return W.norm(dim=1)
    # END SOLUTION


def interference(W: torch.Tensor) -> torch.Tensor:
    """How much the other features project onto each feature's direction:
    sum over j != i of (W_i_hat . W_j)^2, where W_i_hat = W_i / ||W_i|| is feature i's unit
    direction (W_i is column i). A feature whose column is zero has interference 0.

    W: (n_instances, n_hidden, n_features). Returns (n_instances, n_features).
    Hint: the Gram matrix W^T W holds every W_i . W_j.
    """
    # BEGIN SOLUTION
    gram = torch.einsum("khi,khj->kij", W, W)
    squared_norms = gram.diagonal(dim1=-2, dim2=-1)
    others = gram.pow(2).sum(dim=-1) - squared_norms.pow(2)
    return torch.where(squared_norms > 0, others / squared_norms.clamp_min(1e-300), 0.0)
    # END SOLUTION


def feature_dimensionality(W: torch.Tensor) -> torch.Tensor:
    """Each feature's share of a hidden dimension (Elhage et al. 2022):

        D_i = ||W_i||^2 / sum over j (including i) of (W_i_hat . W_j)^2

    with W_i_hat = W_i / ||W_i||. A feature alone in its dimension has D = 1, each of an
    antipodal pair 1/2, each corner of a pentagon in two dimensions 2/5. A feature whose
    column is zero has D = 0.

    W: (n_instances, n_hidden, n_features). Returns (n_instances, n_features).
    Hint: (W_i_hat . W_j)^2 = (W_i . W_j)^2 / ||W_i||^2, so D_i = ||W_i||^4 / sum_j (W_i . W_j)^2.
    """
    # BEGIN SOLUTION
    gram = torch.einsum("khi,khj->kij", W, W)
    squared_norms = gram.diagonal(dim1=-2, dim2=-1)
    overlaps = gram.pow(2).sum(dim=-1)
    return torch.where(squared_norms > 0, squared_norms.pow(2) / overlaps.clamp_min(1e-300), 0.0)
    # END SOLUTION


# ----------------------------------------------------------------------------- the figures


def plot_geometry(W: torch.Tensor, sparsity: torch.Tensor, importance: torch.Tensor,
                  path: str | Path) -> None:
    """Draw every instance's 2-D feature directions W[k, :, i], one panel per instance, one
    colour per feature (legend: its importance), and save the figure as a PNG at `path`."""
    from matplotlib.figure import Figure  # here, not at the top: importing this file stays fast

    W = W.detach().cpu()
    figure = Figure(figsize=(2.2 * W.shape[0], 2.8), layout="constrained")
    axes_row = figure.subplots(1, W.shape[0], squeeze=False)[0]
    for k, axes in enumerate(axes_row):
        for i, weight in enumerate(importance.tolist()):
            x, y = W[k, 0, i].item(), W[k, 1, i].item()
            axes.plot([0, x], [0, y], color=f"C{i}", linewidth=2, label=f"I = {weight:.2f}")
            axes.scatter([x], [y], color=f"C{i}", s=18)
        axes.set_xlim(-1.5, 1.5)
        axes.set_ylim(-1.5, 1.5)
        axes.set_aspect("equal")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(f"S = {sparsity[k].item():.3f}", fontsize=9)
    axes_row[0].legend(fontsize=6, loc="lower left")
    figure.suptitle("Feature directions W_i in the 2 hidden dimensions (n = 5, m = 2)")
    figure.savefig(path, dpi=100)


def plot_dimensionality(W: torch.Tensor, sparsity: torch.Tensor, path: str | Path) -> None:
    """Feature norms ||W_i|| and dimensionalities D_i against the density 1 - S of each
    instance, with the dimensions per feature m / ||W||_F^2 as a line; saved at `path`."""
    from matplotlib.figure import Figure

    W = W.detach().cpu()
    density = (1 - sparsity).cpu()
    norms, dims = feature_norms(W), feature_dimensionality(W)
    per_feature = W.shape[1] / W.pow(2).sum(dim=(1, 2))
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    norm_axes, dim_axes = figure.subplots(1, 2)
    for i in range(W.shape[2]):
        norm_axes.plot(density, norms[:, i], marker="o", markersize=3, label=f"feature {i}")
        dim_axes.scatter(density, dims[:, i], s=14)
    dim_axes.plot(density, per_feature, color="black", linewidth=1, label="m / ||W||_F^2")
    for axes, label in ((norm_axes, "||W_i||"), (dim_axes, "D_i")):
        axes.set_xscale("log")
        axes.set_xlabel("feature density 1 - S")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    dim_axes.set_yticks([0, 0.4, 0.5, 2 / 3, 1])
    figure.suptitle("Which features the model represents, and how much room each gets")
    figure.savefig(path, dpi=100)


def best_of_each_sparsity(model: ToyModel, sparsity: torch.Tensor, importance: torch.Tensor,
                          copies: int, generator: torch.Generator) -> list[int]:
    """The instance with the lowest loss on a fresh batch among each run of `copies`
    consecutive instances (the instances trained at the same sparsity)."""
    device = model.W.device
    with torch.no_grad():
        batch = generate_batch(10_000, sparsity, model.n_features, generator, device)
        losses = importance_weighted_loss(model(batch), batch, importance.to(device)).cpu()
    return [start + int(losses[start:start + copies].argmin())
            for start in range(0, len(losses), copies)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default="images", help="where the PNGs go")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    n_features, n_hidden, n_sparsities, copies = 5, 2, 8, 4
    importance = feature_importance(n_features, 0.9)
    # Four instances per sparsity: one of them may settle in a worse arrangement (a local
    # minimum), so each panel shows the one with the lowest loss.
    sparsity = sparsity_sweep(n_sparsities, lowest_density=0.01).repeat_interleave(copies)
    model = ToyModel(n_sparsities * copies, n_features, n_hidden)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.perf_counter()
    train_toy_model(model, sparsity, importance, steps=args.steps, batch_size=512, lr=2e-2,
                    generator=generator, device=device, progress=True)
    seconds = time.perf_counter() - started
    print(f"trained {len(sparsity)} instances for {args.steps} steps in {seconds:.1f} s "
          f"on {device}")
    best = best_of_each_sparsity(model, sparsity, importance, copies, generator)
    W, sparsity = model.W.detach().cpu()[best], sparsity[best]
    represented = (feature_norms(W) > 0.5).sum(dim=-1)
    for k in range(n_sparsities):
        dims = ", ".join(f"{d:.2f}" for d in feature_dimensionality(W)[k].tolist())
        print(f"S = {sparsity[k].item():.3f}: {int(represented[k])} features with norm > 0.5; "
              f"D_i = {dims}")
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    plot_geometry(W, sparsity, importance, folder / "superposition_geometry.png")
    plot_dimensionality(W, sparsity, folder / "superposition_dimensionality.png")
    print(f"wrote {folder / 'superposition_geometry.png'} and "
          f"{folder / 'superposition_dimensionality.png'}")


if __name__ == "__main__":
    main()
