"""Tests for lab 3, part "feature_viz" (feature_viz.py): feature visualisation on a small CNN.

Every function is compared with the reference in float64: the objectives, the penalties and the
Fourier parametrisation on inputs drawn here at grade time; the top dataset examples, the loss,
optimisation steps and a short `visualise` on `cnn.FeatureCNN` with every parameter drawn here
(biases included). The jitter, the loss, the steps and `visualise` take a generator, and their
docstrings say exactly how they draw from it, so they are compared draw for draw, together
with the generator's next draws after the call.

Outcomes are properties of the shipped checkpoint, judged here with the grader's own copy of
cnn.py and the checkpoint (no submitted code): the submission's visualisation of a logit
(drawn at grade time, from a generator seed drawn at grade time) activates that logit more than
the best of 2000 grating images drawn here, and its Fourier power peaks at the orientation the
logit prefers.
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.engine.checks import assert_close, assert_finite, assert_shape, check, fail
from autograder.engine.labs import load_lab

F64 = torch.float64
# Values computed from O(1) inputs by a few sums and products (a mean over at most a few hundred
# positions, a small float64 CNN): another order of the same sums moves them by ~1e-14; every
# mistake moves them by 1e-3 or more.
EXACT = {"rtol": 1e-9, "atol": 1e-10}
# Adam on the Fourier coefficients, float64: a reordered sum moves the gradient by ~1e-15
# relative, and Adam's normalised update g / (sqrt(v) + eps) passes that on where |g| >> eps;
# it amplifies an absolute rounding d by up to lr / (4 eps) d only where |g| ~ eps = 1e-8, which
# these continuous gradients of size ~1e-3-1 seldom reach. Measured between the reference and
# the alternatives of tests/test_lab3_feature_viz_mistakes.py over 40 draws of three steps:
# at most 3% of this tolerance used (8.8e-11 on an entry of 4.5e-3). A wrong step misses by ~lr.
STEP = {"rtol": 1e-7, "atol": 1e-10}
LAYERS = ("conv1", "conv2", "logits")
CHANNELS = {"conv1": 8, "conv2": 16, "logits": 4}


def _size(rng: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def _seed(rng: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=rng))


def _shape(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return round(low + (high - low) * float(torch.rand((), generator=rng)), 4)


def _random_state(rng: torch.Generator) -> dict:
    """Weights for every parameter of `FeatureCNN`: entries of size 1 / sqrt(fan-in), biases
    of size 0.3 (a forgotten bias cannot pass by being zero)."""
    def randn(*shape: int, scale: float) -> torch.Tensor:
        return torch.randn(*shape, generator=rng, dtype=F64) * scale

    return {"conv1.weight": randn(8, 1, 5, 5, scale=0.2), "conv1.bias": randn(8, scale=0.3),
            "conv2.weight": randn(16, 8, 5, 5, scale=1 / math.sqrt(200)),
            "conv2.bias": randn(16, scale=0.3),
            "fc.weight": randn(4, 16, scale=0.25), "fc.bias": randn(4, scale=0.3)}


def _images(rng: torch.Generator, batch: int, size: int) -> torch.Tensor:
    return torch.randn(batch, 1, size, size, generator=rng, dtype=F64).clamp(-2, 2)


def _config(rng: torch.Generator, **fixed) -> dict:
    """A VisualisationConfig as a dict, every weight non-zero, so that each term counts."""
    layer = fixed.get("layer", LAYERS[_size(rng, 0, 2)])
    config = {"layer": layer, "channel": _size(rng, 0, CHANNELS[layer] - 1),
              "neuron": bool(_size(rng, 0, 1)), "batch": _size(rng, 2, 3),
              "size": 2 * _size(rng, 8, 12), "lr": _uniform(rng, 0.01, 0.05),
              "max_shift": _size(rng, 1, 3), "l2_weight": _uniform(rng, 0.01, 0.1),
              "tv_weight": _uniform(rng, 0.01, 0.1),
              "diversity_weight": _uniform(rng, 0.1, 1.0),
              "decay_power": _uniform(rng, 0.5, 1.5), "steps": 2}
    return {**config, **fixed}


def _activations(rng: torch.Generator, dims: int, even_h: bool = True) -> torch.Tensor:
    """Random activations (batch, units), or (batch, channels, h, w) with one even and one odd
    side (even h when `even_h`), so that a centre taken as (h - 1) // 2 or with h and w
    swapped is seen."""
    if dims == 2:
        return torch.randn(_size(rng, 2, 6), _size(rng, 3, 8), generator=rng, dtype=F64)
    even, odd = 2 * _size(rng, 1, 4), 2 * _size(rng, 1, 3) + 1
    h, w = (even, odd) if even_h else (odd, even)
    return torch.randn(_size(rng, 2, 6), _size(rng, 3, 8), h, w, generator=rng, dtype=F64)


# ----------------------------------------------------------------------------- objectives


@pytest.mark.points(1)
@pytest.mark.public
def test_channel_objective(student, reference, rng):
    """channel_objective: the channel's spatial mean per image (the unit itself for logits)"""
    for dims in (4, 2, 4):
        activations = _activations(rng, dims)
        channel = _size(rng, 0, activations.shape[1] - 1)
        what = f"channel_objective(activations {_shape(activations.shape)}, channel={channel})"
        got = student.call("feature_viz.channel_objective", activations, channel)
        want = reference.call("feature_viz.channel_objective", activations, channel)
        assert_shape(got, (activations.shape[0],), what)
        assert_close(got, want, **EXACT, what=what, dtype=F64)


@pytest.mark.points(1)
@pytest.mark.public
def test_neuron_objective(student, reference, rng):
    """neuron_objective: the channel at the centre (h // 2, w // 2), odd and even sizes"""
    for dims, even_h in ((4, True), (2, True), (4, False)):
        activations = _activations(rng, dims, even_h)
        channel = _size(rng, 0, activations.shape[1] - 1)
        what = f"neuron_objective(activations {_shape(activations.shape)}, channel={channel})"
        got = student.call("feature_viz.neuron_objective", activations, channel)
        want = reference.call("feature_viz.neuron_objective", activations, channel)
        assert_shape(got, (activations.shape[0],), what)
        assert_close(got, want, rtol=0, atol=0, what=f"{what} (a selected entry: exact)",
                     dtype=F64)


@pytest.mark.points(1)
@pytest.mark.public
def test_top_examples(student, reference, rng):
    """top_examples: the k images with the largest channel objective, in decreasing order"""
    for layer in ("conv2", "logits"):
        state = _random_state(rng)
        images = _images(rng, _size(rng, 20, 60), 24)
        channel, k = _size(rng, 0, CHANNELS[layer] - 1), _size(rng, 2, 8)
        what = (f"top_examples(a FeatureCNN with random weights, images "
                f"{_shape(images.shape)}, layer={layer!r}, channel={channel}, k={k})")
        got = student.probe("feature_viz.top_examples", state, images, layer, channel, k)
        want = reference.probe("feature_viz.top_examples", state, images, layer, channel, k)
        assert_shape(got["values"], (k,), f"{what}: values")
        assert_shape(got["indices"], (k,), f"{what}: indices")
        # Continuous random images: two objectives within rounding of each other have
        # probability ~1e-12, so the indices are exact.
        assert_close(got["values"], want["values"], **EXACT, what=f"{what}: values", dtype=F64)
        assert_close(got["indices"].long(), want["indices"], rtol=0, atol=0,
                     what=f"{what}: indices")


# ----------------------------------------------------------------------------- penalties


@pytest.mark.points(1)
@pytest.mark.public
def test_l2_penalty(student, reference, rng):
    """l2_penalty: each image's sum of squared pixels"""
    for _ in range(2):
        size = _size(rng, 4, 12)
        images = torch.randn(_size(rng, 1, 5), 2, size, size, generator=rng, dtype=F64)
        what = f"l2_penalty(images {_shape(images.shape)})"
        got = student.call("feature_viz.l2_penalty", images)
        want = reference.call("feature_viz.l2_penalty", images)
        assert_shape(got, (images.shape[0],), what)
        # A sum of positive terms: relative rounding ~1e-15.
        assert_close(got, want, rtol=1e-9, atol=0, what=what, dtype=F64)


@pytest.mark.points(1)
@pytest.mark.public
def test_total_variation(student, reference, rng):
    """total_variation: absolute differences of vertical and horizontal neighbours, summed"""
    for _ in range(2):
        h, w = _size(rng, 3, 12), _size(rng, 3, 12)
        images = torch.randn(_size(rng, 1, 5), _size(rng, 1, 3), h, w, generator=rng, dtype=F64)
        what = f"total_variation(images {_shape(images.shape)}) (non-square, several channels)"
        got = student.call("feature_viz.total_variation", images)
        want = reference.call("feature_viz.total_variation", images)
        assert_shape(got, (images.shape[0],), what)
        # Each difference of two pixels is exact to eps times the pixels; the sum of their
        # absolute values is then known to ~eps times the sum of |pixels| of the image: an
        # absolute 1e-12 of that (4 orders above eps), whatever the difference's size.
        scale = float(images.abs().sum(dim=(1, 2, 3)).max())
        assert_close(got, want, rtol=1e-9, atol=1e-12 * scale, what=what, dtype=F64)


@pytest.mark.points(1)
@pytest.mark.public
def test_diversity_penalty(student, reference, rng):
    """diversity_penalty: the summed cosines of the images' Gram matrices over ordered pairs"""
    for dims in (4, 2):
        activations = _activations(rng, dims).abs()
        what = f"diversity_penalty(activations {_shape(activations.shape)})"
        got = student.call("feature_viz.diversity_penalty", activations)
        want = reference.call("feature_viz.diversity_penalty", activations)
        assert_shape(got, (), what)
        # Cosines in [-1, 1], at most 36 of them: rounding ~1e-14 absolute.
        assert_close(got, want, rtol=1e-9, atol=1e-10, what=what, dtype=F64)


# ----------------------------------------------------------------------------- parametrisation


@pytest.mark.points(1)
@pytest.mark.public
def test_fourier_scale(student, reference, rng):
    """fourier_scale: 1 / max(frequency, 1 / max(h, w)) ** decay_power, even and odd sizes"""
    for h, w in ((2 * _size(rng, 3, 8), 2 * _size(rng, 9, 12) + 1),
                 (2 * _size(rng, 9, 12) + 1, 2 * _size(rng, 3, 8))):
        decay_power = _uniform(rng, 0.5, 2.0)
        what = f"fourier_scale({h}, {w}, decay_power={decay_power}) (float64 by default)"
        got = student.call("feature_viz.fourier_scale", h, w, decay_power)
        want = reference.call("feature_viz.fourier_scale", h, w, decay_power)
        assert_shape(got, (h, w // 2 + 1), what)
        # sqrt, a maximum, a power and a division: a few ulps.
        assert_close(got, want, rtol=1e-9, atol=0, what=what, dtype=F64)


@pytest.mark.points(1)
@pytest.mark.public
def test_fourier_image(student, reference, rng):
    """fourier_image: the scaled coefficients through irfft2 (norm "ortho"), even and odd sizes"""
    for h, w in ((2 * _size(rng, 3, 8), 2 * _size(rng, 9, 12) + 1),
                 (2 * _size(rng, 3, 8) + 1, 2 * _size(rng, 9, 12))):
        batch, channels = _size(rng, 1, 3), _size(rng, 1, 3)
        spectrum = torch.randn(batch, channels, h, w // 2 + 1, 2, generator=rng, dtype=F64)
        decay_power = _uniform(rng, 0.5, 1.5)
        what = (f"fourier_image(spectrum {_shape(spectrum.shape)}, h={h}, w={w}, "
                f"decay_power={decay_power})")
        got = student.call("feature_viz.fourier_image", spectrum, h, w, decay_power)
        want = reference.call("feature_viz.fourier_image", spectrum, h, w, decay_power)
        assert_shape(got, (batch, channels, h, w), what)
        # Each pixel is a sum of mixed-sign terms: an FFT's rounding error is ~eps log2(hw)
        # times the L2 norm of its input (Parseval, with the orthonormal scaling), so the
        # tolerance is absolute at 1e-10 of the scaled coefficients' norm (~5 orders above).
        scale = max(h, w) ** decay_power * float(spectrum.norm())
        assert_close(got, want, rtol=0, atol=1e-10 * scale, what=what, dtype=F64)
    # "in the spectrum's dtype": a float32 spectrum gives float32 pixels (a scale built in
    # float64 would promote the product to complex128). Against the exact (float64) image the
    # float32 rounding is ~6e-8 log2(hw) of the same norm; 1e-5 leaves a margin of ~20.
    h, w = 2 * _size(rng, 3, 8), 2 * _size(rng, 3, 8) + 1
    spectrum = torch.randn(2, 1, h, w // 2 + 1, 2, generator=rng, dtype=F64)
    decay_power = _uniform(rng, 0.5, 1.5)
    what = (f"fourier_image(float32 spectrum {_shape(spectrum.shape)}, h={h}, w={w}, "
            f"decay_power={decay_power})")
    got = student.call("feature_viz.fourier_image", spectrum.float(), h, w, decay_power)
    want = reference.call("feature_viz.fourier_image", spectrum, h, w, decay_power)
    assert_shape(got, (2, 1, h, w), what)
    scale = max(h, w) ** decay_power * float(spectrum.norm())
    assert_close(got, want, rtol=0, atol=1e-5 * scale, what=what, dtype=torch.float32)


@pytest.mark.points(1)
@pytest.mark.public
def test_random_jitter(student, rng):
    """random_jitter: one draw of two shifts, torch.roll over the last two dims, a gradient"""
    for _ in range(2):
        images = _images(rng, _size(rng, 1, 4), _size(rng, 6, 12))
        max_shift = _size(rng, 1, 3)
        seed = _seed(rng)
        generator = torch.Generator().manual_seed(seed)
        shifts = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
        # Both shifts non-zero and different: each axis and their order are seen.
        while shifts[0] == 0 or shifts[1] == 0 or shifts[0] == shifts[1]:
            seed = _seed(rng)
            generator = torch.Generator().manual_seed(seed)
            shifts = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
        what = (f"random_jitter(images {_shape(images.shape)}, max_shift={max_shift}, "
                f"generator) whose draw gives the shifts {shifts}")
        got = student.probe("feature_viz.random_jitter", images, max_shift, seed)
        assert_shape(got["jittered"], tuple(images.shape), what)
        want = torch.roll(images, shifts=tuple(shifts), dims=(-2, -1))
        assert_close(got["jittered"], want, rtol=0, atol=0, what=what)
        check(got["gradient"] is not None,
              f"{what}: no gradient flows back to the images; use differentiable tensor ops")
        weights = torch.arange(images.numel(), dtype=F64).reshape(images.shape)
        assert_close(got["gradient"], torch.roll(weights, shifts=(-shifts[0], -shifts[1]),
                                                 dims=(-2, -1)), rtol=0, atol=0,
                     what=f"{what}: the gradient with respect to the images")
        assert_close(got["input_after"], images, rtol=0, atol=0,
                     what=f"the images after {what} (left unchanged)")
        assert_close(got["next_draw"], torch.randint(0, 2**30, (4,), generator=generator),
                     rtol=0, atol=0, what=f"{what}: the generator's next draw after the call "
                                          "(draw both shifts with one call, nothing else)")


# ----------------------------------------------------------------------------- optimisation


@pytest.mark.points(1)
@pytest.mark.public
def test_visualisation_loss(student, reference, rng):
    """visualisation_loss: minus the jittered objective plus the three weighted penalties"""
    for layer, neuron in (("conv2", False), ("conv1", True)):
        config = _config(rng, layer=layer, neuron=neuron)
        state = _random_state(rng)
        images = torch.tanh(_images(rng, config["batch"], config["size"]))
        seed = _seed(rng)
        what = f"visualisation_loss(a random FeatureCNN, images {_shape(images.shape)}, {config})"
        got = student.probe("feature_viz.visualisation_loss", state, images, config, seed)
        want = reference.probe("feature_viz.visualisation_loss", state, images, config, seed)
        assert_shape(got["loss"], (), what)
        # A difference of terms of size up to ~1e2 (the objective and the penalties): rounding
        # ~1e-13 absolute whatever the loss's own size.
        assert_close(got["loss"], want["loss"], rtol=1e-9, atol=1e-9, what=what, dtype=F64)
        check(got["gradient"] is not None,
              f"{what}: the loss does not depend on the images through differentiable ops")
        scale = float(want["gradient"].abs().max())
        assert_close(got["gradient"], want["gradient"], rtol=1e-9, atol=1e-9 * scale,
                     what=f"{what}: its gradient with respect to the images", dtype=F64)
        assert_close(got["next_draw"], want["next_draw"], rtol=0, atol=0,
                     what=f"{what}: the generator's next draw after the call (jitter once)")


@pytest.mark.points(2)
@pytest.mark.public
def test_optimisation_step(student, reference, rng):
    """optimisation_step: the reference's losses and coefficients over three steps"""
    for layer, neuron in (("conv2", False), ("conv1", True)):
        config = _config(rng, layer=layer, neuron=neuron)
        state = _random_state(rng)
        size = config["size"]
        spectrum = 0.3 * torch.randn(config["batch"], 1, size, size // 2 + 1, 2, generator=rng,
                                     dtype=F64)
        seed = _seed(rng)
        what = f"optimisation_step (3 steps, one Adam, one generator) with {config}"
        args = (state, spectrum, config, seed, 3)
        got = student.probe("feature_viz.optimisation_steps", *args)
        want = reference.probe("feature_viz.optimisation_steps", *args)
        for step in range(3):
            loss = got["losses"][step]
            check(isinstance(loss, float),
                  f"{what}: step {step + 1} returned {loss!r}; return loss.item()")
            assert_close(torch.tensor(loss, dtype=F64),
                         torch.tensor(want["losses"][step], dtype=F64), rtol=1e-9, atol=1e-9,
                         what=f"{what}: the loss returned by step {step + 1}")
            assert_close(got["spectra"][step], want["spectra"][step], **STEP, dtype=F64,
                         what=f"{what}: the coefficients after step {step + 1}")
        assert_close(got["next_draw"], want["next_draw"], rtol=0, atol=0,
                     what=f"{what}: the generator's next draw (one jitter per step)")


@pytest.mark.points(1)
@pytest.mark.public
def test_visualise(student, reference, rng):
    """visualise: the reference's images after a few steps from the same generator"""
    for batch, layer in ((1, "conv2"), (2, "logits")):
        config = _config(rng, batch=batch, layer=layer, neuron=False, steps=_size(rng, 2, 4))
        state = _random_state(rng)
        seed = _seed(rng)
        what = f"visualise(a random FeatureCNN, {config}, generator) in float64"
        got = student.probe("feature_viz.visualise", state, config, seed)
        want = reference.probe("feature_viz.visualise", state, config, seed)
        assert_shape(got["images"], (batch, 1, config["size"], config["size"]), what)
        assert_close(got["images"], want["images"], **STEP, what=what, dtype=F64)
        assert_close(got["next_draw"], want["next_draw"], rtol=0, atol=0,
                     what=f"{what}: the generator's next draw (the start, then one per step)")


# ----------------------------------------------------------------------------- the checkpoint

_SUPPORT: dict = {}


def _cnn():
    """cnn.py and the shipped weights, the grader's own copies (no submitted code)."""
    if "cnn" not in _SUPPORT:
        lab = load_lab("lab3")
        module, support = lab.support_module("cnn.py"), lab.support_dir
        saved = torch.load(support / "checkpoints" / "feature_cnn.pt", map_location="cpu",
                           weights_only=True)
        _SUPPORT["cnn"] = module
        _SUPPORT["state"] = {name: tensor.to(F64) for name, tensor in saved["state"].items()}
    return _SUPPORT["cnn"], _SUPPORT["state"]


# The outcome run: the handout's default settings for 32 steps (0.2 s on the reference).
OUTCOME = {"layer": "logits", "neuron": False, "batch": 1, "steps": 32}


def _visualisation(student, reference, rng) -> tuple[int, torch.Tensor, str]:
    """The submission's 32-step visualisation of a logit of the shipped CNN, checked first to
    start as the reference's does: the first two steps of the same run agree to STEP (a
    visualisation without a penalty or without the jitter can still beat the dataset, so the
    outcome is never awarded without the work)."""
    cnn, state = _cnn()
    channel, seed = _size(rng, 0, 3), _seed(rng)
    config = {**OUTCOME, "channel": channel}
    start = {**config, "steps": 2}
    got = student.probe("feature_viz.visualise", state, start, seed)["images"]
    want = reference.probe("feature_viz.visualise", state, start, seed)["images"]
    assert_shape(got, tuple(want.shape), f"visualise(the shipped CNN, {start})")
    assert_close(got, want, **STEP, dtype=F64,
                 what=f"visualise(the shipped CNN, {start}, a generator seeded {seed}): the "
                      "first two steps of the outcome run")
    what = (f"visualise(the shipped CNN, logit {channel} ({cnn.ORIENTATIONS[channel]:g} "
            f"degrees), 32 steps, default settings, a generator seeded {seed})")
    images = student.probe("feature_viz.visualise", state, config, seed, timeout=30)["images"]
    assert_shape(images, (1, 1, cnn.SIZE, cnn.SIZE), what)
    assert_finite(images, what)
    check(bool((images.abs() <= 1).all()),
          f"{what}: pixels up to {images.abs().max().item():.3g}; the tanh keeps them in [-1, 1]")
    return channel, images.to(F64), what


@pytest.mark.points(1)
def test_visualisation_beats_the_dataset(student, reference, rng):
    """visualise: the image activates its logit more than the best of 2000 dataset images"""
    channel, images, what = _visualisation(student, reference, rng)
    cnn, state = _cnn()
    model = cnn.load_model(state=state, dtype=F64)
    dataset, _ = cnn.make_images(2000, torch.Generator().manual_seed(_seed(rng)), dtype=F64)
    with torch.no_grad():
        # In chunks of 200: the whole set's float64 activations at once took about 500 MiB of
        # the grading process, past DESIGN.md's 1 GiB for a lab's grading (make bench).
        best = max(model.activations(chunk)["logits"][:, channel].max().item()
                   for chunk in dataset.split(200))
        value = model.activations(images)["logits"][0, channel].item()
    # Measured on the reference (10 seeds x 4 logits, each against its own 2000 images): the
    # visualisation's activation is at least 1.07 times the best example's (1.29 on average).
    check(value > best,
          f"{what}: the image's logit is {value:.2f}, below the best of 2000 dataset images "
          f"({best:.2f}); the reference's is about 1.3 times the best")


def _orientation_power(image: torch.Tensor, orientations) -> list[float]:
    """The share of the image's Fourier power (mean removed) whose wave vector lies within
    22.5 degrees of each orientation (mod 180)."""
    x = image - image.mean()
    power = torch.fft.fft2(x).abs() ** 2
    f = torch.fft.fftfreq(x.shape[-1], dtype=F64)
    f_y, f_x = torch.fft.fftfreq(x.shape[-2], dtype=F64)[:, None], f[None, :]
    angle = torch.rad2deg(torch.atan2(f_y, f_x)) % 180
    shares = [float(power[((angle - o + 90) % 180 - 90).abs() < 22.5].sum()) for o in orientations]
    return [share / max(sum(shares), 1e-300) for share in shares]


@pytest.mark.points(1)
def test_visualisation_orientation(student, reference, rng):
    """visualise: the image's Fourier power peaks at the orientation its logit prefers"""
    channel, images, what = _visualisation(student, reference, rng)
    cnn, _ = _cnn()
    shares = _orientation_power(images[0, 0], cnn.ORIENTATIONS)
    # Measured on the reference (10 seeds x 4 logits): the preferred orientation holds at least
    # 0.73 of the power, every other at most 0.16. A do-nothing image has no power at all.
    if images.std() < 1e-3:
        fail(f"{what}: the image is flat (standard deviation {images.std().item():.2g})")
    described = ", ".join(f"{o:g}: {s:.2f}" for o, s in zip(cnn.ORIENTATIONS, shares,
                                                            strict=True))
    check(shares[channel] >= 0.5,
          f"{what}: {shares[channel]:.2f} of its Fourier power lies within 22.5 degrees of "
          f"{cnn.ORIENTATIONS[channel]:g} degrees (by orientation: {described}); the "
          "reference's holds about 0.8")
