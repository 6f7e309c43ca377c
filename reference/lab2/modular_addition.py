"""Lab 2, part 5: reverse-engineering a grokked modular-addition transformer.

Nanda et al. (2023), "Progress measures for grokking via mechanistic interpretability".
The model (`grokking.py`, support code) was trained by this repository on 30% of all pairs
(a, b) to predict (a + b) mod 113; it memorised the training set first and generalised much
later. Here you find the algorithm it uses: it embeds a and b as waves cos(w a), sin(w a) of a
few key frequencies w = 2 pi k / p, multiplies them in its MLP, and reads off
cos(w (a + b - c)), which is largest at c = (a + b) mod p.

Run `python modular_addition.py` for the figures of the handout. `python modular_addition.py
train` repeats the training run that produced `checkpoints/modular_addition.pt`.
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


if __name__ == "__main__":
    main()
