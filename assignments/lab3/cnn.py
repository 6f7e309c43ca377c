"""The feature-visualisation part's model and images: a small CNN trained on oriented gratings.

Support code, given to you unchanged. An image is one grey channel of 24 x 24 pixels in
[-1, 1]: a grating cos(2 pi (x cos(theta) + y sin(theta)) / period + phase) seen through a
round window of one of three radii at a random place, with random contrast and pixel noise.
Its class is the grating's orientation theta: 0, 45, 90 or 135 degrees (the direction of the
wave vector, x to the right and y down). The CNN classifies the orientation:

    conv1  1 -> 8 channels, 5 x 5, padding 2, ReLU, 2 x 2 average pool    (8, 12, 12)
    conv2  8 -> 16 channels, 5 x 5, padding 2, ReLU, 2 x 2 average pool   (16, 6, 6)
    logits the spatial mean of conv2, then a linear map to the 4 classes  (4,)

`model.activations(images)` returns each of them by name ("conv1", "conv2", "logits"), so
logit c is a unit that prefers orientation ORIENTATIONS[c].

`python cnn.py train` repeats the training of the shipped checkpoint (seed 0); `python cnn.py`
prints its accuracy on fresh images.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from torch import nn

SIZE = 24
ORIENTATIONS = (0.0, 45.0, 90.0, 135.0)  # degrees; class c is ORIENTATIONS[c]
PERIODS = (4.0, 6.0, 8.0)                # pixels
RADII = (5.0, 8.0, 12.0)                 # the window's radius, pixels
NOISE = 0.15                             # standard deviation of the pixel noise
CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "feature_cnn.pt"
LAYERS = ("conv1", "conv2", "logits")


def make_images(n: int, generator: torch.Generator,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` grating images (n, 1, SIZE, SIZE) in [-1, 1] and their classes (n,), from
    `generator` alone (the same generator state gives the same images)."""
    labels = torch.randint(0, len(ORIENTATIONS), (n,), generator=generator)
    period = torch.tensor(PERIODS, dtype=torch.float64)[
        torch.randint(0, len(PERIODS), (n,), generator=generator)]
    radius = torch.tensor(RADII, dtype=torch.float64)[
        torch.randint(0, len(RADII), (n,), generator=generator)]
    phase = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    contrast = 0.5 + 0.5 * torch.rand(n, generator=generator, dtype=torch.float64)
    centre = SIZE * torch.rand(n, 2, generator=generator, dtype=torch.float64)
    noise = NOISE * torch.randn(n, SIZE, SIZE, generator=generator, dtype=torch.float64)

    theta = torch.deg2rad(torch.tensor(ORIENTATIONS, dtype=torch.float64)[labels])
    coordinate = torch.arange(SIZE, dtype=torch.float64)
    y, x = coordinate[None, :, None], coordinate[None, None, :]
    along = x * theta.cos()[:, None, None] + y * theta.sin()[:, None, None]
    grating = torch.cos(2 * math.pi * along / period[:, None, None] + phase[:, None, None])
    distance = ((y - centre[:, 0, None, None]) ** 2 + (x - centre[:, 1, None, None]) ** 2).sqrt()
    window = torch.sigmoid(radius[:, None, None] - distance)   # a soft-edged disc
    images = (contrast[:, None, None] * window * grating + noise).clamp(-1, 1)
    return images[:, None].to(dtype), labels


class FeatureCNN(nn.Module):
    """The orientation classifier. Parameters: conv1.weight (8, 1, 5, 5), conv1.bias (8,),
    conv2.weight (16, 8, 5, 5), conv2.bias (16,), fc.weight (4, 16), fc.bias (4,)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5, padding=2)
        self.conv2 = nn.Conv2d(8, 16, 5, padding=2)
        self.fc = nn.Linear(16, len(ORIENTATIONS))

    def activations(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (batch, 1, h, w) -> {"conv1": (batch, 8, h/2, w/2), "conv2": (batch, 16, h/4,
        w/4), "logits": (batch, 4)}; the conv layers after their ReLU and pooling."""
        conv1 = nn.functional.avg_pool2d(torch.relu(self.conv1(images)), 2)
        conv2 = nn.functional.avg_pool2d(torch.relu(self.conv2(conv1)), 2)
        return {"conv1": conv1, "conv2": conv2, "logits": self.fc(conv2.mean(dim=(-2, -1)))}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.activations(images)["logits"]


def load_model(path: Path | str = CHECKPOINT, dtype: torch.dtype = torch.float32,
               state: dict | None = None) -> FeatureCNN:
    """The trained CNN from `path` (the shipped checkpoint by default), or from the weights
    `state` when given, in `dtype`, in eval mode, its parameters frozen (requires_grad False:
    a visualisation optimises the image, never the model)."""
    if state is None:
        state = torch.load(path, map_location="cpu", weights_only=True)["state"]
    model = FeatureCNN().to(dtype)
    model.load_state_dict({name: tensor.to(dtype) for name, tensor in state.items()})
    return model.eval().requires_grad_(False)


def train(seed: int = 0, steps: int = 1500, batch: int = 64,
          lr: float = 3e-3) -> tuple[FeatureCNN, dict]:
    """Adam on fresh images every step (cross-entropy), then the accuracy on 2000 new ones."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = FeatureCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    for step in range(steps):
        images, labels = make_images(batch, generator)
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    return model.eval(), {"seed": seed, "steps": steps, "seconds": seconds,
                          "accuracy": accuracy(model, seed + 1)}


@torch.no_grad()
def accuracy(model: nn.Module, seed: int, n: int = 2000) -> float:
    """The share of `n` fresh images (drawn from `seed`) whose orientation the model gets."""
    images, labels = make_images(n, torch.Generator().manual_seed(seed))
    return float((model(images).argmax(dim=-1) == labels).double().mean())


def save(model: FeatureCNN, record: dict, path: Path | str = CHECKPOINT) -> None:
    """The weights in float16 (about 8 KB) and the training record."""
    state = {name: tensor.detach().to(torch.float16) for name, tensor in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": state, "record": record}, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    training = commands.add_parser("train", help="repeat the training of the checkpoint")
    training.add_argument("--out", type=Path, default=CHECKPOINT)
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    path = CHECKPOINT
    if arguments.command == "train":
        torch.set_num_threads(arguments.threads)
        model, record = train(arguments.seed)
        path = arguments.out
        save(model, record, path)
        print(f"trained in {record['seconds']:.0f} s, saved {path}")
    print(f"accuracy on 2000 fresh images: {accuracy(load_model(path), seed=12345):.4f}")


if __name__ == "__main__":
    main()
