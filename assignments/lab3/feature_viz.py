"""Feature visualisation (Olah, Mordvintsev and Schubert, "Feature Visualization", Distill 2017).

What does a unit of a network respond to? Two answers, on the small CNN of `cnn.py`:
1. the dataset examples that activate it most (`top_examples`);
2. an image optimised to activate it (`visualise`): start from noise and follow the gradient
   of the unit's activation. Done naively this finds adversarial high-frequency noise; three
   tricks from the article make the image show the feature instead:
   - penalties on the image: its L2 norm and its total variation (`l2_penalty`,
     `total_variation`);
   - transformation robustness: the unit must fire on a randomly shifted copy of the image
     (`random_jitter`), so it cannot rely on one pixel-exact pattern;
   - a decorrelated parametrisation: optimise the image's Fourier coefficients, scaled by
     1 / frequency, instead of its pixels (`fourier_scale`, `fourier_image`), so that a gradient
     step changes low frequencies as readily as high ones.
   A batch of visualisations of one unit can be pushed apart with a diversity term
   (`diversity_penalty`) to show several facets of what it responds to.

Shapes: images are (batch, channels, h, w) (the CNN's images have one channel); a layer's
activations are (batch, channels, h, w) for a conv layer and (batch, units) for "logits".
Every function works in any float dtype (the grader runs them in float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import cnn
import torch


@dataclass
class VisualisationConfig:
    """What to visualise and how. The defaults visualise logit 0 (horizontal wave vectors,
    0 degrees) with the settings the handout's figures use."""

    layer: str = "logits"       # "conv1", "conv2" or "logits"
    channel: int = 0            # the channel (or logit) to maximise
    neuron: bool = False        # True: the channel's centre neuron; False: the channel mean
    batch: int = 1              # how many images to optimise together
    size: int = cnn.SIZE        # h = w = size
    steps: int = 64             # optimisation steps
    lr: float = 0.05            # Adam's learning rate, on the Fourier coefficients
    max_shift: int = 2          # jitter: shifts drawn from -max_shift..max_shift pixels
    l2_weight: float = 1e-3     # weight of the mean L2 penalty
    tv_weight: float = 1e-2     # weight of the mean total-variation penalty
    diversity_weight: float = 0.0  # weight of the diversity penalty (batch > 1)
    decay_power: float = 1.0    # the Fourier scale is 1 / frequency ** decay_power


# ----------------------------------------------------------------------------- objectives


def channel_objective(activations: torch.Tensor, channel: int) -> torch.Tensor:
    """The activation of one channel, per image: its mean over the spatial positions.

    activations: (batch, channels, h, w), or (batch, units) for the logits, where the
    channel's value is the unit itself. Returns (batch,).
    """
    # TODO: implement channel_objective
    raise NotImplementedError("channel_objective is not implemented yet")


def neuron_objective(activations: torch.Tensor, channel: int) -> torch.Tensor:
    """The activation of one neuron, per image: channel `channel` at the centre position
    (h // 2, w // 2). For (batch, units) activations it is the unit itself.

    activations: (batch, channels, h, w) or (batch, units). Returns (batch,).
    """
    # TODO: implement neuron_objective
    raise NotImplementedError("neuron_objective is not implemented yet")


@torch.no_grad()
def top_examples(model: cnn.FeatureCNN, images: torch.Tensor, layer: str, channel: int,
                 k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k dataset images that activate a channel most (its channel objective).

    images: (n, 1, h, w). Returns (values, indices), both (k,), values in decreasing order:
    values[i] is the channel objective of images[indices[i]].
    Hint: `model.activations(images)[layer]` gives the layer; then torch.topk.
    """
    # TODO: implement top_examples
    raise NotImplementedError("top_examples is not implemented yet")


# ----------------------------------------------------------------------------- penalties


def l2_penalty(images: torch.Tensor) -> torch.Tensor:
    """The squared L2 norm of each image: the sum of its squared pixel values.

    images: (batch, channels, h, w). Returns (batch,).
    """
    # TODO: implement l2_penalty
    raise NotImplementedError("l2_penalty is not implemented yet")


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """The (anisotropic) total variation of each image, as in Lucid and
    tf.image.total_variation: the sum of the absolute differences between vertically
    neighbouring pixels plus that between horizontally neighbouring pixels, over every
    channel (no wrap-around: an h x w image has (h - 1) w vertical pairs).

    images: (batch, channels, h, w). Returns (batch,).
    """
    # TODO: implement total_variation
    raise NotImplementedError("total_variation is not implemented yet")


def diversity_penalty(activations: torch.Tensor) -> torch.Tensor:
    """Lucid's diversity objective: how alike the images of a batch are, in style.

    For each image b, flatten its activations to A_b (channels, positions) (a (batch, units)
    layer has one position) and take its Gram matrix G_b = A_b A_b^T, divided by its
    Frobenius norm (an all-zero Gram matrix stays zero). The penalty is the sum over ordered
    pairs b != b' of <G_b, G_b'> (the sum of the entrywise products), divided by the batch size.
    Minimising it pushes the images' styles apart; one image alone gives 0.

    activations: (batch, channels, h, w) or (batch, units). Returns a scalar.
    """
    # TODO: implement diversity_penalty
    raise NotImplementedError("diversity_penalty is not implemented yet")


# ----------------------------------------------------------------------------- parametrisation


def fourier_scale(h: int, w: int, decay_power: float = 1.0,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The scale of each coefficient of an h x w image's real 2-D spectrum (as torch.fft.rfft2
    lays it out): 1 / max(f, 1 / max(h, w)) ** decay_power, where f = sqrt(f_y^2 + f_x^2) is
    the frequency in cycles per pixel, f_y = torch.fft.fftfreq(h) along the rows and
    f_x = torch.fft.rfftfreq(w) along the columns. The floor 1 / max(h, w) keeps the constant
    term finite.

    Returns (h, w // 2 + 1) in `dtype`.
    """
    # TODO: implement fourier_scale
    raise NotImplementedError("fourier_scale is not implemented yet")


def fourier_image(spectrum: torch.Tensor, h: int, w: int,
                  decay_power: float = 1.0) -> torch.Tensor:
    """The image of a decorrelated Fourier parametrisation (Lucid's fft_image, without its
    constant 1/4).

    spectrum: (batch, channels, h, w // 2 + 1, 2), real: the real and imaginary parts of the
    coefficients. Scale each coefficient by `fourier_scale(h, w, decay_power)` and invert with
    torch.fft.irfft2(..., s=(h, w), norm="ortho"). Returns (batch, channels, h, w) in the
    spectrum's dtype. Hint: torch.view_as_complex turns the last axis into complex numbers.
    """
    # TODO: implement fourier_image
    raise NotImplementedError("fourier_image is not implemented yet")


def random_jitter(images: torch.Tensor, max_shift: int,
                  generator: torch.Generator) -> torch.Tensor:
    """Shift the whole batch by a random number of pixels, wrapping around (torch.roll).

    Draw both shifts with ONE call, `torch.randint(-max_shift, max_shift + 1, (2,),
    generator=generator)`: the first is the shift along the rows (dim -2, positive moves the
    content down), the second along the columns (dim -1, positive moves it right). Draw
    nothing else from the generator. Returns a new tensor of the images' shape; the gradient
    flows back through it.

    images: (batch, channels, h, w).
    """
    # TODO: implement random_jitter
    raise NotImplementedError("random_jitter is not implemented yet")


# ----------------------------------------------------------------------------- optimisation


def visualisation_loss(model: cnn.FeatureCNN, images: torch.Tensor,
                       config: VisualisationConfig, generator: torch.Generator) -> torch.Tensor:
    """The loss that `visualise` minimises, for a batch of images (batch, 1, h, w):

        - mean over the batch of the objective on random_jitter(images, config.max_shift,
          generator)'s activations at config.layer (neuron_objective if config.neuron, else
          channel_objective, of config.channel)
        + config.l2_weight * mean of l2_penalty(images)
        + config.tv_weight * mean of total_variation(images)
        + config.diversity_weight * diversity_penalty of the same jittered activations.

    The penalties are taken on the images before the jitter. Jitter once, so exactly one
    draw from the generator. Returns a scalar.
    """
    # TODO: implement visualisation_loss
    raise NotImplementedError("visualisation_loss is not implemented yet")


def optimisation_step(model: cnn.FeatureCNN, spectrum: torch.Tensor,
                      optimizer: torch.optim.Optimizer, config: VisualisationConfig,
                      generator: torch.Generator) -> float:
    """One step of activation maximisation: the images torch.tanh(fourier_image(spectrum,
    config.size, config.size, config.decay_power)) (the tanh keeps pixels in the dataset's
    range [-1, 1], as Lucid's sigmoid keeps colours valid), their visualisation_loss, then
    zero the gradients, backpropagate and step `optimizer` (which holds `spectrum`).

    spectrum: (batch, 1, size, size // 2 + 1, 2), a leaf with requires_grad. Returns the
    loss before the step as a Python float.
    """
    # TODO: implement optimisation_step
    raise NotImplementedError("optimisation_step is not implemented yet")


def visualise(model: cnn.FeatureCNN, config: VisualisationConfig,
              generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Activation maximisation from noise: config.batch images of one unit.

    Start from spectrum = 0.01 * torch.randn((config.batch, 1, config.size,
    config.size // 2 + 1, 2), generator=generator, dtype=dtype) (that draw first), make it a
    leaf that requires grad, build torch.optim.Adam([spectrum], lr=config.lr) and take
    config.steps optimisation_steps with the same generator. Returns the final images
    torch.tanh(fourier_image(spectrum, ...)) (batch, 1, size, size), detached.
    """
    # TODO: implement visualise
    raise NotImplementedError("visualise is not implemented yet")


if __name__ == "__main__":
    model = cnn.load_model()
    for channel, orientation in enumerate(cnn.ORIENTATIONS):
        image = visualise(model, VisualisationConfig(channel=channel),
                          torch.Generator().manual_seed(channel))
        value = channel_objective(model.activations(image)["logits"], channel).item()
        print(f"logit {channel} ({orientation:5.1f} degrees): visualisation {value:.2f}")
