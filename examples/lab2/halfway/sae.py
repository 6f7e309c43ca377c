# An example lab2 submission, as a student might hand it in halfway through the lab: some
# functions right, some with classic mistakes (l0 in float32, the fraction of variance unexplained
# over the uncentred sum of squares), some not done (resample_dead_latents). `make demo lab2`
# grades it next to the starter code and the reference.
"""Lab 2, part 4: sparse autoencoders (SAEs) on a toy model's hidden activations.

A toy model in superposition stores n sparse features as n directions in a space of fewer
dimensions. A sparse autoencoder learns an overcomplete, sparse code of those activations:

    latents = ReLU(W_enc (x - b_dec) + b_enc)          (d_sae,)
    x_hat   = W_dec latents + b_dec                    (d_in,)

with an L1 penalty on the latents and unit-norm decoder columns (so that the penalty cannot be
dodged by shrinking the latents and growing the decoder). Each decoder column W_dec[:, j] is
latent j's direction; when training works, they line up with the toy model's true feature
directions. A TopK SAE (Gao et al. 2024) keeps exactly the k largest pre-activations instead of
paying an L1 penalty. Latents that stop firing ("dead" latents) are resampled (Anthropic,
"Towards Monosemanticity", 2023).

    python sae.py [FOLDER]    trains ReLU+L1 and TopK SAEs on a toy model with 5 known
                              directions (about 20 s on a CPU), prints the metrics and writes
                              sae_*.png into FOLDER (default: images/)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

# ----------------------------------------------------------------------------- the model


class SAE(nn.Module):
    """A sparse autoencoder with `d_sae` latents on activations of size `d_in`.

    k = None: the ReLU encoder, trained with an L1 penalty. k = an int: the TopK encoder.

    Parameters (names and shapes are fixed; the grader loads weights into them):
        W_enc  (d_sae, d_in)   row j reads latent j from the input
        b_enc  (d_sae,)
        W_dec  (d_in, d_sae)   column j is latent j's direction, of unit norm
        b_dec  (d_in,)         the pre-encoder bias: subtracted before encoding, added back
                               after decoding
    """

    def __init__(self, d_in: int, d_sae: int, k: int | None = None) -> None:
        super().__init__()
        self.d_in, self.d_sae, self.k = d_in, d_sae, k
        W_dec = torch.randn(d_in, d_sae)
        self.W_enc = nn.Parameter(W_dec.T / W_dec.norm(dim=0)[:, None])
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(W_dec / W_dec.norm(dim=0))
        self.b_dec = nn.Parameter(torch.zeros(d_in))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, d_in). Returns the latents, (batch, d_sae).

        Pre-activations: (x - b_dec) @ W_enc^T + b_enc. With k = None the latents are their
        ReLU. With k set, only each row's k LARGEST pre-activations are kept, then the ReLU
        (so a kept value that is negative becomes 0): ReLU(TopK(pre)); the others are 0.
        Work in the dtype of the input (the grader also runs float64).
        Hint: `torch.topk(pre, k, dim=-1)` and `torch.zeros_like(pre).scatter(...)`.
        """
        pre = (x - self.b_dec) @ self.W_enc.T + self.b_enc
        if self.k is None:
            return torch.relu(pre)
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents: (batch, d_sae). Returns the reconstruction, (batch, d_in):
        latents @ W_dec^T + b_dec (every latent adds its direction, scaled)."""
        return latents @ self.W_dec.T + self.b_dec

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (reconstruction, latents) for x of shape (batch, d_in)."""
        latents = self.encode(x)
        return self.decode(latents), latents


def sae_loss(x: torch.Tensor, reconstruction: torch.Tensor, latents: torch.Tensor,
             l1_coefficient: float) -> torch.Tensor:
    """The training loss, a scalar: mean over the batch of ||x - reconstruction||^2 (summed over
    the d_in dimensions) plus l1_coefficient times the mean over the batch of the latents' L1
    norm ||latents||_1 (summed over the d_sae latents). TopK SAEs pass l1_coefficient = 0.

    x, reconstruction: (batch, d_in); latents: (batch, d_sae).
    """
    reconstruction_error = (x - reconstruction).pow(2).sum(dim=-1).mean()
    sparsity_penalty = latents.abs().sum(dim=-1).mean()
    return reconstruction_error + l1_coefficient * sparsity_penalty


# ----------------------------------------------------------------------------- training


def train_step(sae: SAE, optimizer: torch.optim.Optimizer, batch: torch.Tensor,
               l1_coefficient: float) -> float:
    """One gradient step on `batch` (batch, d_in); returns `sae_loss` before the step, a float.

    The decoder's columns must stay at unit norm. The standard recipe: after backward, remove
    from each column's gradient its component along the column (g_j -= (g_j . w_j) w_j, so
    that the step moves the column sideways, not along itself), take the optimizer step, then
    divide each column by its norm. Hint: do the two decoder updates under torch.no_grad().
    """
    reconstruction, latents = sae(batch)
    loss = sae_loss(batch, reconstruction, latents, l1_coefficient)
    optimizer.zero_grad()
    loss.backward()
    with torch.no_grad():
        columns, gradient = sae.W_dec, sae.W_dec.grad
        gradient -= (gradient * columns).sum(dim=0, keepdim=True) * columns
    optimizer.step()
    with torch.no_grad():
        sae.W_dec /= sae.W_dec.norm(dim=0, keepdim=True)
    return loss.item()


def dead_latents(fired: torch.Tensor, window: int) -> torch.Tensor:
    """Which latents are dead: those that fired in none of the last `window` steps.

    fired: (steps, d_sae) bool, fired[t, j] True when latent j was non-zero for some input of
    step t's batch (row -1 is the latest step). Returns (d_sae,) bool. With fewer than `window`
    steps recorded, no latent is dead yet (all False).
    """
    if fired.shape[0] < window:
        return torch.zeros(fired.shape[1], dtype=torch.bool, device=fired.device)
    return ~fired[-window:].any(dim=0)


def resample_dead_latents(sae: SAE, optimizer: torch.optim.Adam, dead: torch.Tensor,
                          inputs: torch.Tensor, generator: torch.Generator) -> None:
    """Give every dead latent a new direction, where the SAE reconstructs worst (in place).

    dead: (d_sae,) bool; inputs: (n, d_in), on the SAE's device. With no dead latent, change
    nothing and draw nothing. Otherwise:
    1. the squared reconstruction error of each input, ||x - reconstruction||^2, without grad;
    2. `torch.multinomial(errors.cpu(), number of dead latents, replacement=True,
       generator=generator)` picks one input per dead latent: the t-th pick goes to the t-th
       dead latent in increasing index order;
    3. for dead latent j with picked input x: d = (x - b_dec) / ||x - b_dec||; decoder column
       j becomes d; encoder row j becomes d times 0.2 times the mean norm of the ALIVE
       latents' encoder rows (1 if none is alive); b_enc[j] becomes 0;
    4. in the Adam optimizer, reset the state of what changed: exp_avg and exp_avg_sq of
       W_enc's row j, b_enc[j] and W_dec's column j become 0 (`optimizer.state[param]`).
    """
    # TODO: implement resample_dead_latents
    raise NotImplementedError("resample_dead_latents is not implemented yet")


def train_sae(
    sae: SAE,
    activations: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    l1_coefficient: float,
    generator: torch.Generator,
    resample_every: int = 0,
    window: int = 100,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, list]:
    """Train `sae` in place on `activations` (n, d_in) with Adam(lr) for `steps` steps.

    Move the SAE and the activations to `device`, then create the optimizer. Step t:
    1. the batch is `activations[torch.randint(n, (batch_size,), generator=generator)]` (draw
       the indices on the CPU, then index);
    2. record which latents fire on the batch (encode it under torch.no_grad() before the
       step), then `train_step` on it and record the loss;
    3. if resample_every > 0 and (t + 1) % resample_every == 0: find the `dead_latents` over
       the last `window` steps, record how many there are, and `resample_dead_latents` with
       all the activations and the same generator.
    Show a tqdm progress bar with `disable=not progress` and `mininterval=1.0`.
    Returns {"losses": one float per step, "dead": the number of dead latents found at each
    resampling (ints)}. Hint: keep the fired rows in a list; `torch.stack` it for
    `dead_latents`.
    """
    sae.to(device)
    activations = activations.to(device)
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    history: dict[str, list] = {"losses": [], "dead": []}
    fired = []
    for step in tqdm(range(steps), disable=not progress, mininterval=1.0, desc="SAE"):
        indices = torch.randint(len(activations), (batch_size,), generator=generator)
        batch = activations[indices.to(device)]
        with torch.no_grad():
            fired.append((sae.encode(batch) > 0).any(dim=0))
        history["losses"].append(train_step(sae, optimizer, batch, l1_coefficient))
        if resample_every > 0 and (step + 1) % resample_every == 0:
            dead = dead_latents(torch.stack(fired), window)
            history["dead"].append(int(dead.sum()))
            resample_dead_latents(sae, optimizer, dead, activations, generator)
    return history


# ----------------------------------------------------------------------------- metrics


def l0(latents: torch.Tensor) -> torch.Tensor:
    """The mean number of non-zero latents per input: a float64 scalar.
    latents: (batch, d_sae)."""
    return (latents != 0).sum(dim=-1).float().mean()


def fraction_of_variance_unexplained(x: torch.Tensor, reconstruction: torch.Tensor
                                     ) -> torch.Tensor:
    """FVU, a scalar: the sum over inputs and dimensions of (x - reconstruction)^2, divided by
    the sum over inputs and dimensions of (x - mean of x over the inputs)^2. 0 is a perfect
    reconstruction; 1 is no better than always predicting the mean input.
    x, reconstruction: (batch, d_in). Hint: the mean is per dimension, over the batch.
    """
    residual = (x - reconstruction).pow(2).sum()
    total = x.pow(2).sum()
    return residual / total


def dead_fraction(latents: torch.Tensor) -> torch.Tensor:
    """The fraction of the d_sae latents that are zero on every input: a float64 scalar.
    latents: (batch, d_sae)."""
    return (~(latents != 0).any(dim=0)).to(torch.float64).mean()


def best_cosines(W_dec: torch.Tensor, true_directions: torch.Tensor) -> torch.Tensor:
    """For each true direction, the largest cosine similarity with any decoder column.

    W_dec: (d_in, d_sae); true_directions: (d_in, n_true), not necessarily of unit norm.
    Returns (n_true,). A direction counts as recovered when its best cosine is above 0.99.
    Hint: normalise the columns of both, then one matrix product.
    """
    decoder = W_dec / W_dec.norm(dim=0, keepdim=True)
    true = true_directions / true_directions.norm(dim=0, keepdim=True)
    return (true.T @ decoder).amax(dim=-1)


# ----------------------------------------------------------------------------- the toy model


def toy_activations(true_directions: torch.Tensor, n: int, sparsity: float,
                    generator: torch.Generator) -> torch.Tensor:
    """The hidden activations h = W x of a toy model whose feature directions are the columns
    of `true_directions` (d_in, n_features): n inputs x, each feature zero with probability
    `sparsity`, else uniform on [0, 1). Returns (n, d_in)."""
    n_features = true_directions.shape[1]
    values = torch.rand(n, n_features, generator=generator)
    features = values * (torch.rand(n, n_features, generator=generator) >= sparsity)
    return features @ true_directions.T


def random_directions(d_in: int, n_features: int, generator: torch.Generator) -> torch.Tensor:
    """`n_features` random unit directions in d_in dimensions, as the columns of (d_in, n)."""
    directions = torch.randn(d_in, n_features, generator=generator)
    return directions / directions.norm(dim=0)


# ----------------------------------------------------------------------------- the figures


def plot_latent_density(latents: dict[str, torch.Tensor], path: str | Path) -> None:
    """Histogram of log10 of each latent's firing frequency, one series per SAE."""
    from matplotlib.figure import Figure  # here, not at the top: importing this file stays fast

    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axes = figure.subplots()
    for label, values in latents.items():
        density = (values > 0).double().mean(dim=0).clamp_min(1e-5).log10()
        axes.hist(density.numpy(), bins=20, range=(-5, 0), alpha=0.6, label=label)
    axes.set_xlabel("log10 of the latent's firing frequency (-5: dead)")
    axes.set_ylabel("latents")
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=100)


def plot_decoder_directions(decoders: dict[str, torch.Tensor], true_directions: torch.Tensor,
                            path: str | Path) -> None:
    """Cosine similarity between every true direction and every decoder column, per SAE."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4 * len(decoders), 3.4), layout="constrained")
    for axes, (label, W_dec) in zip(figure.subplots(1, len(decoders), squeeze=False)[0],
                                    decoders.items(), strict=True):
        true = true_directions / true_directions.norm(dim=0)
        cosines = true.T @ (W_dec / W_dec.norm(dim=0))
        image = axes.imshow(cosines.numpy(), vmin=-1, vmax=1, cmap="RdBu")
        axes.set_xlabel("decoder column (latent)")
        axes.set_ylabel("true direction")
        axes.set_title(f"{label}: {int((cosines.amax(dim=1) > 0.99).sum())} of "
                       f"{cosines.shape[0]} at cosine > 0.99", fontsize=9)
        figure.colorbar(image, ax=axes, shrink=0.8)
    figure.savefig(path, dpi=100)


def plot_sparsity_fidelity(points: dict[str, list[tuple[float, float]]],
                           path: str | Path) -> None:
    """L0 against FVU for each kind of SAE (one point per L1 coefficient or k)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 3.8), layout="constrained")
    axes = figure.subplots()
    for label, pairs in points.items():
        axes.plot([p[0] for p in pairs], [p[1] for p in pairs], marker="o", label=label)
    axes.set_xlabel("L0 (active latents per input)")
    axes.set_ylabel("fraction of variance unexplained")
    axes.set_yscale("log")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=100)


# ----------------------------------------------------------------------------- the experiment


def train_and_measure(activations: torch.Tensor, true_directions: torch.Tensor, *,
                      k: int | None, l1_coefficient: float, resample_every: int,
                      seed: int, device: str, d_sae: int = 5) -> dict:
    """Train one SAE from seeded weights and measure it on all the activations."""
    torch.manual_seed(seed)
    sae = SAE(activations.shape[1], d_sae, k)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # two latents start dead: they never fire until resampled
        sae.b_enc[:2] = -10.0
    history = train_sae(sae, activations, steps=650, batch_size=128, lr=0.02,
                        l1_coefficient=l1_coefficient, generator=generator,
                        resample_every=resample_every, window=50, device=device)
    with torch.no_grad():
        reconstruction, latents = sae(activations.to(device))
    latents, W_dec = latents.cpu(), sae.W_dec.detach().cpu()
    return {"latents": latents, "W_dec": W_dec, "dead_found": history["dead"],
            "L0": l0(latents).item(), "dead_fraction": dead_fraction(latents).item(),
            "FVU": fraction_of_variance_unexplained(activations, reconstruction.cpu()).item(),
            "recovered": int((best_cosines(W_dec, true_directions) > 0.99).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default="images", help="where the PNGs go")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator().manual_seed(args.seed)
    true_directions = random_directions(6, 5, generator)
    activations = toy_activations(true_directions, 4000, 0.8, generator)
    started = time.perf_counter()
    runs = {"ReLU + L1, resampling": {"k": None, "l1_coefficient": 0.1, "resample_every": 100},
            "ReLU + L1, no resampling": {"k": None, "l1_coefficient": 0.1, "resample_every": 0}}
    results = {label: train_and_measure(activations, true_directions, seed=args.seed,
                                        device=device, **run) for label, run in runs.items()}
    for label, result in results.items():
        print(f"{label}: L0 {result['L0']:.2f}, FVU {result['FVU']:.4f}, dead fraction "
              f"{result['dead_fraction']:.2f}, {result['recovered']} of 5 true directions at "
              f"cosine > 0.99 (dead latents found at each resampling: {result['dead_found']})")
    # Sparsity against fidelity: ReLU + L1 across L1 coefficients, TopK across k, on more
    # latents than true directions so that the two can be compared at matched L0.
    frontier: dict[str, list[tuple[float, float]]] = {"ReLU + L1": [], "TopK": []}
    for l1_coefficient in (0.3, 0.1, 0.03, 0.01):
        result = train_and_measure(activations, true_directions, k=None, d_sae=10,
                                   l1_coefficient=l1_coefficient, resample_every=100,
                                   seed=args.seed, device=device)
        frontier["ReLU + L1"].append((result["L0"], result["FVU"]))
    for k in (1, 2, 3, 4):
        result = train_and_measure(activations, true_directions, k=k, d_sae=10,
                                   l1_coefficient=0.0, resample_every=100, seed=args.seed,
                                   device=device)
        frontier["TopK"].append((result["L0"], result["FVU"]))
    for label, pairs in frontier.items():
        print(f"{label}: " + ", ".join(f"L0 {a:.2f} FVU {b:.4f}" for a, b in pairs))
    print(f"trained {len(runs) + 8} SAEs in {time.perf_counter() - started:.1f} s on {device}")
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    plot_latent_density({label: r["latents"] for label, r in results.items()},
                        folder / "sae_latent_density.png")
    plot_decoder_directions({label: r["W_dec"] for label, r in results.items()},
                            true_directions, folder / "sae_decoder_directions.png")
    plot_sparsity_fidelity(frontier, folder / "sae_sparsity_fidelity.png")
    print(f"wrote sae_latent_density.png, sae_decoder_directions.png and "
          f"sae_sparsity_fidelity.png into {folder}")


if __name__ == "__main__":
    main()
