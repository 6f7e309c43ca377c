"""Lab 2, part 5: reverse-engineering a grokked modular-addition transformer.

Nanda et al. (2023), "Progress measures for grokking via mechanistic interpretability".
The model (`grokking.py`, support code) was trained by this repository on 30% of all pairs
(a, b) to predict (a + b) mod 113; it memorised the training set first and generalised much
later. Here you find the algorithm it uses: it embeds a and b as waves cos(w a), sin(w a) of a
few key frequencies w = 2 pi k / p, multiplies them in its MLP, and reads off
cos(w (a + b - c)), which is largest at c = (a + b) mod p.

Run `python modular_addition.py` for the figures of the handout (into `images/`);
`python modular_addition.py train` repeats the training run that produced
`checkpoints/modular_addition.pt`.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import torch
from grokking import (
    CHECKPOINT,
    Checkpoint,
    GrokkingConfig,
    ModularAdditionModel,
    all_pairs,
    last_position,
    load_checkpoint,
    train_test_split,
)
from tqdm.auto import tqdm

# ----------------------------------------------------------------------------- training


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the last position's logits, computed in float64.

    logits: (batch, 3, p) (any float dtype); labels: (batch,) ints in [0, p).
    Returns a float64 scalar. Hint: cast to float64 before `log_softmax`; in float32 a loss
    near 1e-7 is lost to rounding, and late in training the losses get that small.
    """
    # BEGIN SOLUTION
    log_probs = logits[:, -1].to(torch.float64).log_softmax(dim=-1)
    return -log_probs.gather(-1, labels[:, None]).mean()
    # END SOLUTION


def train_step(model: ModularAdditionModel, optimizer: torch.optim.Optimizer,
               tokens: torch.Tensor, labels: torch.Tensor) -> float:
    """One full-batch step: the loss of `model` on (tokens, labels) with `loss_fn`, its
    gradient, and one step of `optimizer`. Returns the loss before the step, as a float.
    Hint: clear the gradients of the previous step first.
    """
    # BEGIN SOLUTION
    loss = loss_fn(model(tokens), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
    # END SOLUTION


@torch.no_grad()
def evaluate(model: ModularAdditionModel, tokens: torch.Tensor,
             labels: torch.Tensor) -> tuple[float, float]:
    """(loss, accuracy) of `model` on (tokens, labels)."""
    logits = model(tokens)
    accuracy = (logits[:, -1].argmax(dim=-1) == labels).double().mean().item()
    return loss_fn(logits, labels).item(), accuracy


def train(config: GrokkingConfig | None = None, device: str | torch.device = "cpu",
          snapshots: int = 10, log_every: int = 100) -> Checkpoint:
    """The paper's training run: full-batch AdamW on the seeded training split, with the loss
    and accuracy curves every `log_every` epochs. It stops `config.overtrain` times the epoch at
    which test accuracy first reached 99% (or after `config.epochs`), and keeps `snapshots`
    float16 copies of the weights spread evenly over the run."""
    config = config or GrokkingConfig()
    device = torch.device(device)
    tokens, labels = all_pairs(config.p)
    train_indices = train_test_split(config.p, config.train_fraction, config.seed)
    is_train = torch.zeros(config.p ** 2, dtype=torch.bool)
    is_train[train_indices] = True
    train_x, train_y = tokens[is_train].to(device), labels[is_train].to(device)
    test_x, test_y = tokens[~is_train].to(device), labels[~is_train].to(device)

    generator = torch.Generator().manual_seed(config.seed)
    model = ModularAdditionModel(config).initialise(generator).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay, betas=config.betas)
    logged_states, curves = [], {key: [] for key in
                                  ("epoch", "train_loss", "test_loss", "train_accuracy",
                                   "test_accuracy")}
    stop = config.epochs
    progress = tqdm(range(config.epochs), desc="training", mininterval=2.0)
    for epoch in progress:
        if epoch == stop:
            break
        if epoch % log_every == 0:
            logged_states.append({name: tensor.detach().to("cpu", torch.float16).clone()
                                  for name, tensor in model.state_dict().items()})
        train_loss = train_step(model, optimizer, train_x, train_y)
        if epoch % log_every == 0 or epoch == stop - 1:
            test_loss, test_accuracy = evaluate(model, test_x, test_y)
            _, train_accuracy = evaluate(model, train_x, train_y)
            for key, value in zip(curves, (epoch, train_loss, test_loss, train_accuracy,
                                           test_accuracy), strict=True):
                curves[key].append(value)
            progress.set_postfix(train_loss=f"{train_loss:.2e}", test_loss=f"{test_loss:.2e}",
                                 test_acc=f"{test_accuracy:.3f}")
            if test_accuracy >= 0.99 and stop == config.epochs:
                stop = min(config.epochs, math.ceil(config.overtrain * (epoch + 1) / log_every)
                           * log_every)
    progress.close()
    chosen = sorted({round(i * (len(logged_states) - 1) / (snapshots - 1))
                     for i in range(snapshots)})
    return Checkpoint(
        config=config, train_indices=train_indices,
        final_state={name: tensor.detach().cpu().clone()
                     for name, tensor in model.state_dict().items()},
        history_epochs=[i * log_every for i in chosen],
        history_states=[logged_states[i] for i in chosen],
        curves={key: torch.tensor(values, dtype=torch.int64 if key == "epoch"
                                  else torch.float64) for key, values in curves.items()})


# ----------------------------------------------------------------------------- the Fourier basis


def fourier_basis(p: int) -> torch.Tensor:
    """The orthonormal Fourier basis of functions on Z_p (p odd), one basis vector per row.

    Returns a float64 tensor of shape (p, p). Row 0 is the constant 1 / sqrt(p); for each
    frequency k = 1, ..., (p - 1) / 2, row 2k - 1 is cos(2 pi k x / p) and row 2k is
    sin(2 pi k x / p) (x = 0, ..., p - 1 along the columns), each scaled to unit norm.
    Hint: a cos or sin row of a frequency k >= 1 has squared norm p / 2.
    """
    # BEGIN SOLUTION
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64)]
    for k in range(1, (p - 1) // 2 + 1):
        angle = 2 * math.pi * k * x / p
        rows += [angle.cos() * math.sqrt(2 / p), angle.sin() * math.sqrt(2 / p)]
    return torch.stack(rows)
    # END SOLUTION


def fourier_2d(values: torch.Tensor) -> torch.Tensor:
    """The coefficients of functions of (a, b) in the 2-D Fourier basis.

    values: (p, p, n): n functions f(a, b) on Z_p x Z_p. Returns float64 (p, p, n) with
    coefficients[i, j, m] = sum over a, b of basis[i, a] * basis[j, b] * values[a, b, m],
    where basis = fourier_basis(p): entry (i, j) belongs to the product of basis vector i in a
    and basis vector j in b, so (0, 0) is the constant and (2k - 1, 0) is cos(2 pi k a / p).
    Hint: apply the 1-D basis along one axis, then along the other. (A single einsum over
    three operands may build a p^4 intermediate: 1.3 GB at p = 113.)
    """
    # BEGIN SOLUTION
    basis = fourier_basis(values.shape[0])
    along_b = torch.einsum("jb,abn->ajn", basis, values.to(torch.float64))
    return torch.einsum("ia,ajn->ijn", basis, along_b)
    # END SOLUTION


# ----------------------------------------------------------------------------- the embedding


def embedding_frequency_norms(W_E: torch.Tensor) -> torch.Tensor:
    """How strongly the embedding uses each frequency.

    W_E: (p + 1, d_model): rows 0..p-1 embed the numbers, row p the "=" token (left out).
    Write the number embeddings in the Fourier basis (basis @ W_E[:p], one row per basis
    vector) and return, for k = 1, ..., (p - 1) / 2 (at index k - 1), the norm of frequency k:
    sqrt(|cos row|^2 + |sin row|^2), the Euclidean norms of rows 2k - 1 and 2k combined.
    Returns float64 of shape ((p - 1) / 2,).
    """
    # BEGIN SOLUTION
    p = W_E.shape[0] - 1
    power = (fourier_basis(p) @ W_E[:p].to(torch.float64)).pow(2).sum(dim=-1)
    return (power[1::2] + power[2::2]).sqrt()
    # END SOLUTION


def key_frequencies(norms: torch.Tensor, share: float = 0.9) -> torch.Tensor:
    """The few frequencies that carry most of the power.

    norms: ((p - 1) / 2,), as from `embedding_frequency_norms` (entry k - 1 for frequency k).
    The power of frequency k is norms[k - 1] ** 2. Take frequencies in order of decreasing
    power until their power adds up to at least `share` of the total; return those
    frequencies k (1-based, not indices), sorted increasingly, as an int64 tensor.
    """
    # BEGIN SOLUTION
    power = norms.to(torch.float64).pow(2)
    order = power.argsort(descending=True)
    enough = power[order].cumsum(dim=0) >= share * power.sum()
    count = int(enough.nonzero()[0]) + 1
    return (order[:count] + 1).sort().values
    # END SOLUTION


# ----------------------------------------------------------------------------- the neurons


def neuron_frequencies(activations: torch.Tensor,
                       threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster the MLP neurons by the frequency that explains their activations.

    activations: (p * p, n): neuron m's activation on input [a, b, =] in row a * p + b.
    Write them in the 2-D Fourier basis (`fourier_2d`). A neuron's variance is the sum of its
    squared coefficients except the constant (0, 0). Frequency k's terms are the coefficients
    (i, j) with i and j in {0, 2k - 1, 2k}, except (0, 0): cos and sin of k a, of k b, and
    their four products. The share of k is the sum of those terms' squares over the variance.
    Returns (frequency, share): int64 and float64, both (n,). share[m] is neuron m's largest
    share; frequency[m] is the k that has it if that share exceeds `threshold`, else 0 (a share
    exactly at the threshold is left open: `>` and `>=` are both accepted). A
    neuron that never fires (variance 0) gets frequency 0 and share 0. The shares of different
    frequencies add up to at most 1, so for threshold >= 0.5 at most one can exceed it.
    """
    # BEGIN SOLUTION
    p, n = math.isqrt(activations.shape[0]), activations.shape[1]
    frequencies, shares_of_best = [], []
    # 64 neurons at a time: their float64 coefficients take 6.5 MB at p = 113 (512: 52 MB).
    for chunk in activations.reshape(p, p, n).split(64, dim=-1):
        squares = fourier_2d(chunk).pow(2)
        variance = squares.sum(dim=(0, 1)) - squares[0, 0]
        shares = []
        for k in range(1, (p - 1) // 2 + 1):
            terms = [0, 2 * k - 1, 2 * k]
            shares.append(squares[terms][:, terms].sum(dim=(0, 1)) - squares[0, 0])
        shares = torch.stack(shares) / variance.clamp_min(torch.finfo(torch.float64).tiny)
        share, best = shares.max(dim=0)
        share = torch.where(variance > 0, share, torch.zeros_like(share))
        frequencies.append(torch.where(share > threshold, best + 1, torch.zeros_like(best)))
        shares_of_best.append(share)
    return torch.cat(frequencies), torch.cat(shares_of_best)
    # END SOLUTION


# ----------------------------------------------------------------------------- the logits


def logit_fit(logits: torch.Tensor, frequencies: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The logits as a sum of waves cos(w (a + b - c)), w = 2 pi k / p, one per key frequency.

    logits: (p * p, p): the logit of answer c for input [a, b, =] in row a * p + b, column c.
    frequencies: (K,) int64, the key frequencies k. First centre the logits over c (subtract
    each row's mean: softmax ignores it). Returns (coefficients, explained): float64 (K,) with
    the least-squares coefficient of cos(w_k (a + b - c)) for each k, and the share of the
    centred logits' sum of squares that the fitted sum of waves explains, a float.
    Hint: the waves of different k are orthogonal over all (a, b, c), each with squared norm
    p^3 / 2, so every coefficient is one inner product.
    """
    # BEGIN SOLUTION
    p = logits.shape[1]
    centred = logits.to(torch.float64).reshape(p, p, p)
    centred = centred - centred.mean(dim=-1, keepdim=True)
    x = torch.arange(p, dtype=torch.float64)
    s = x[:, None, None] + x[None, :, None] - x[None, None, :]
    waves = []
    for k in frequencies:  # one (p, p, p) wave at a time, computed in place: 11 MB at p = 113
        wave = torch.mul(s, 2 * math.pi * int(k)).div_(p).cos_()
        waves.append(wave.mul_(centred).sum())
    coefficients = torch.stack(waves) / (p ** 3 / 2)
    explained = coefficients.pow(2).sum() * (p ** 3 / 2) / centred.pow(2).sum()
    return coefficients, explained.item()
    # END SOLUTION


def restricted_logits(logits: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """The logits with only the key frequencies' directions kept, plus the constant.

    logits: (p * p, p) as in `logit_fit`; frequencies: (K,) int64. For each answer c, the
    logits are a function of (a, b) (column c, row a * p + b). Keep its projection onto the
    span of the constant and cos(w_k (a + b)), sin(w_k (a + b)) for every key k (w_k = 2 pi k /
    p); these directions are orthogonal over the p^2 pairs. Returns float64 (p * p, p).
    """
    # BEGIN SOLUTION
    p = logits.shape[1]
    logits = logits.to(torch.float64)
    x = torch.arange(p, dtype=torch.float64)
    total = (x[:, None] + x[None, :]).flatten()
    directions = []
    for k in frequencies:
        angle = 2 * math.pi * int(k) * total / p
        directions += [angle.cos(), angle.sin()]
    directions = torch.stack(directions) * math.sqrt(2) / p  # unit norm over the p^2 pairs
    return logits.mean(dim=0, keepdim=True) + directions.T @ (directions @ logits)
    # END SOLUTION


def excluded_logits(logits: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """The logits with the key frequencies' directions removed.

    logits: (p * p, p); frequencies: (K,) int64. For each answer c, subtract from column c its
    projection onto cos(w_k (a + b)) and sin(w_k (a + b)) for every key k; the constant stays
    (it is no key frequency's direction). Returns float64 (p * p, p).
    Hint: `restricted_logits` kept these directions and the constant.
    """
    # BEGIN SOLUTION
    logits = logits.to(torch.float64)
    kept = restricted_logits(logits, frequencies) - logits.mean(dim=0, keepdim=True)
    return logits - kept
    # END SOLUTION


def progress_measures(logits: torch.Tensor, train_indices: torch.Tensor,
                      frequencies: torch.Tensor) -> dict[str, float]:
    """The losses that tell how far a checkpoint is along the way to the Fourier algorithm.

    logits: (p * p, p) of one checkpoint on all pairs (row a * p + b, label (a + b) mod p);
    train_indices: the rows of the training set (the others are the test set); frequencies:
    the key frequencies. Returns a dict of float64 cross-entropies, as floats:
    "train_loss" and "test_loss" of the logits on the training and the test rows;
    "restricted_loss": of `restricted_logits` on all p^2 rows;
    "excluded_loss": of `excluded_logits` on the training rows.
    Hint: `loss_fn` wants (batch, 3, p); `x[:, None]` gives it a position axis.
    """
    # BEGIN SOLUTION
    p = logits.shape[1]
    labels = all_pairs(p)[1]
    is_train = torch.zeros(p * p, dtype=torch.bool)
    is_train[train_indices] = True

    def loss(values: torch.Tensor, rows: torch.Tensor) -> float:
        return loss_fn(values[rows][:, None], labels[rows]).item()

    every = torch.ones(p * p, dtype=torch.bool)
    return {"train_loss": loss(logits, is_train), "test_loss": loss(logits, ~is_train),
            "restricted_loss": loss(restricted_logits(logits, frequencies), every),
            "excluded_loss": loss(excluded_logits(logits, frequencies), is_train)}
    # END SOLUTION


# ----------------------------------------------------------------------------- the figures

IMAGES = Path(__file__).resolve().parent / "images"


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # matplotlib is only needed for the figures

    return Figure(figsize=(width, height), layout="constrained")


def figures(checkpoint: Checkpoint, folder: Path = IMAGES) -> dict[str, float]:
    """Draw the handout's five figures from `checkpoint` into `folder`; returns the numbers
    the handout quotes."""
    folder.mkdir(parents=True, exist_ok=True)
    p, curves = checkpoint.config.p, checkpoint.curves
    model = checkpoint.model()
    logits, neurons = last_position(model)
    norms = embedding_frequency_norms(model.W_E.detach())
    keys = key_frequencies(norms)
    frequency, share = neuron_frequencies(neurons)
    _, explained = logit_fit(logits, keys)

    figure = _figure(7, 4)
    axes = figure.subplots()
    for key, label in (("train_loss", "train"), ("test_loss", "test")):
        axes.plot(curves["epoch"], curves[key], label=label)
    axes.set(yscale="log", xlabel="epoch", ylabel="cross-entropy",
             title=f"Grokking: (a + b) mod {p}, {checkpoint.config.train_fraction:.0%} "
                   "of the pairs for training")
    axes.legend()
    figure.savefig(folder / "modular_addition_grokking.png", dpi=100)

    figure = _figure(7, 3.5)
    axes = figure.subplots()
    axes.bar(torch.arange(1, len(norms) + 1), norms)
    axes.set(xlabel="frequency k", ylabel="norm in the embedding",
             title=f"Embedding in the Fourier basis; key frequencies {keys.tolist()}")
    figure.savefig(folder / "modular_addition_embedding.png", dpi=100)

    figure = _figure(12, 2.8)
    order = share.argsort(descending=True)  # the best-explained neuron of each key frequency
    shown = [int(order[frequency[order] == k][0]) for k in keys[:5] if (frequency == k).any()]
    shown = shown or order[:4].tolist()
    for axes, neuron in zip(figure.subplots(1, len(shown), squeeze=False)[0], shown,
                            strict=True):
        corner = p // 2  # a quarter of the (a, b) square shows the waves
        axes.imshow(neurons[:, neuron].reshape(p, p)[:corner, :corner], cmap="viridis",
                    origin="lower")
        axes.set(title=f"neuron {neuron}: k = {int(frequency[neuron])}", xlabel="b",
                 ylabel="a")
    figure.savefig(folder / "modular_addition_neurons.png", dpi=100)

    figure = _figure(7, 3.5)
    axes = figure.subplots()
    axes.scatter(frequency, share, s=8, alpha=0.5)
    axes.set(xlabel="neuron's frequency (0: none above the threshold)",
             ylabel="share of its variance",
             title=f"{int((frequency > 0).sum())} of {len(frequency)} neurons in "
                   f"{len(frequency[frequency > 0].unique())} frequency clusters")
    figure.savefig(folder / "modular_addition_clusters.png", dpi=100)

    measures = [progress_measures(last_position(checkpoint.model(state))[0],
                                  checkpoint.train_indices, keys)
                for state in checkpoint.history_states]
    figure = _figure(7, 4)
    axes = figure.subplots()
    for key in measures[0]:
        axes.plot(checkpoint.history_epochs, [m[key] for m in measures], marker="o",
                  label=key.replace("_", " "))
    axes.set(yscale="log", xlabel="epoch", ylabel="cross-entropy",
             title="Progress measures along training")
    axes.legend()
    figure.savefig(folder / "modular_addition_progress.png", dpi=100)
    final = progress_measures(logits, checkpoint.train_indices, keys)
    return {"key_frequencies": keys.tolist(), "logits_explained": explained,
            "clustered_neurons": int((frequency > 0).sum()), **final}


def _train_command(arguments: argparse.Namespace) -> None:
    torch.set_num_threads(arguments.threads)
    config = replace(GrokkingConfig(), **{key: value for key, value in
                                          (("epochs", arguments.epochs),
                                           ("seed", arguments.seed)) if value is not None})
    start = time.perf_counter()
    checkpoint = train(config, device=arguments.device)
    seconds = time.perf_counter() - start
    checkpoint.save(arguments.out)
    curves = checkpoint.curves
    reached = (curves["test_accuracy"] >= 0.99).nonzero()
    first = int(curves["epoch"][reached[0]]) if len(reached) else None
    print(f"trained {int(curves['epoch'][-1]) + 1} epochs in {seconds:.0f} s on "
          f"{arguments.device}: "
          f"final test accuracy {curves['test_accuracy'][-1]:.4f}, test loss "
          f"{curves['test_loss'][-1]:.2e}; test accuracy first >= 99% at epoch {first}; "
          f"wrote {arguments.out} ({arguments.out.stat().st_size / 2**20:.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    training = commands.add_parser("train", help="repeat the training run of the checkpoint")
    training.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    training.add_argument("--epochs", type=int, default=None)
    training.add_argument("--seed", type=int, default=None)
    training.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    training.add_argument("--out", type=Path, default=CHECKPOINT)
    arguments = parser.parse_args()
    if arguments.command == "train":
        _train_command(arguments)
    else:
        start = time.perf_counter()
        numbers = figures(load_checkpoint())
        print(f"figures written to {IMAGES} in {time.perf_counter() - start:.0f} s: {numbers}")


if __name__ == "__main__":
    main()
