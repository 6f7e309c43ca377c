"""Lab 3, part 3: detecting deception with probes.

Does the assistant know when it lies? Under the liar persona it answers factual questions
falsely; if its residual stream still carries whether a statement is true, a linear probe can
read it. You collect the activations at the last token of true and false statements under the
honest and the liar persona, fit probes on the honest persona's statements, and ask whether
they read the truth of the liar's: a probe that does reads what the model knows, not what it
says.

Three probes, from the most to the least supervised:
- logistic regression, trained with Adam on labelled activations;
- the mass-mean probe (Marks & Tegmark 2023): the difference of the class means, no training;
- CCS (Burns et al. 2022): no labels at all. Each statement is asked both ways (a contrast
  pair x+ / x-: "... Yes." and "... No."); a probe p should be consistent, p(x+) = 1 - p(x-),
  and confident, not p = 0.5 on both. Truth is one direction that satisfies both, so
  minimising the two losses finds it, up to its sign.

Every probe here is linear: a direction w (d,) and a bias b (a scalar tensor); its score on an
activation x is x @ w + b, and "true" means a score above 0. Probes are judged by accuracy and
AUROC, with a bootstrap interval, per layer.

    python probes.py     the layer sweep on the shipped assistant: honest and liar accuracy of
                         the mass-mean and logistic probes and CCS's accuracy, per layer
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from dialogue import ENTITIES, PLACES, TOKEN_ID, WORLD, noise_suffix, pad_batch, statement
from hooks import run_with_cache
from torch import nn

# ----------------------------------------------------------------------------- the statements


def statements(n: int, persona: str, generator: torch.Generator, suffix_share: float = 0.5,
               answer: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n statement prompts "<persona> user: X is in Y . true ? [suffix] assistant:" about the
    world, true and false in turn (statement i is true for even i), each with a noise suffix
    with probability `suffix_share`; with `answer` ("yes" or "no") that word is appended as
    the assistant's reply. Returns (tokens (n, pos) right-padded, last (n,): the position of
    each prompt's last token (`assistant:`, or the answer), labels (n,) bool: whether the
    statement is true in the world). Given: nothing to write here.
    """
    texts, labels = [], []
    for i in range(n):
        entity = ENTITIES[int(torch.randint(len(ENTITIES), (1,), generator=generator))]
        wrong = [place for place in PLACES if place != WORLD[entity]]
        place = (WORLD[entity] if i % 2 == 0
                 else wrong[int(torch.randint(len(wrong), (1,), generator=generator))])
        suffix = (noise_suffix(generator)
                  if float(torch.rand((), generator=generator)) < suffix_share else "")
        text = statement(entity, place, persona, suffix) + (f" {answer}" if answer else "")
        texts.append(text)
        labels.append(i % 2 == 0)
    last = torch.tensor([len(text.split()) - 1 for text in texts])
    return pad_batch(texts), last, torch.tensor(labels)


# ----------------------------------------------------------------------------- activations


def last_token_activations(model: nn.Module, tokens: torch.Tensor, last: torch.Tensor,
                           layers: Sequence[int]) -> torch.Tensor:
    """The residual stream after each of `layers` at each statement's last token.

    tokens: (n, pos) int64, statements padded at the end; last: (n,) int64, the position of
    each statement's last token. Returns (n, len(layers), d_model): out[i, j] is the
    activation `blocks.{layers[j]}.hook_resid_post` of statement i at position last[i], in
    the model's dtype, without gradient.
    Hint: `run_with_cache(model, tokens, names=[...])` runs the model once and returns
    (logits, cache); index the cached (n, pos, d_model) tensors with
    `[torch.arange(n), last]`.
    """
    # TODO: implement last_token_activations
    raise NotImplementedError("last_token_activations is not implemented yet")


# ----------------------------------------------------------------------------- supervised probes


def mass_mean_probe(acts: torch.Tensor, labels: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The mass-mean probe (Marks & Tegmark 2023): the direction from the false statements'
    mean to the true statements' mean, with its threshold half-way between the two.

    acts: (n, d); labels: (n,) bool, True for a true statement (both classes present).
    Returns (w, b): w = mean of the true rows - mean of the false rows, (d,); b = -w @ m, a
    0-dimensional tensor, where m = (mean of the true rows + mean of the false rows) / 2, so
    that the score acts @ w + b is positive nearer the true mean.
    """
    # TODO: implement mass_mean_probe
    raise NotImplementedError("mass_mean_probe is not implemented yet")


def logistic_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean binary cross-entropy of the probabilities sigmoid(scores) against the labels,
    a scalar: the mean of -log sigmoid(s) over true statements and -log(1 - sigmoid(s)) =
    -log sigmoid(-s) over false ones, averaged over all n.

    scores: (n,) float; labels: (n,) bool. Must be finite and exact for scores of size 1e4
    (log(sigmoid(s)) is -inf there in float64). Hint: `F.logsigmoid`, or
    `F.binary_cross_entropy_with_logits`.
    """
    # TODO: implement logistic_loss
    raise NotImplementedError("logistic_loss is not implemented yet")


def train_logistic_probe(acts: torch.Tensor, labels: torch.Tensor, w: torch.Tensor,
                         b: torch.Tensor, *, steps: int, lr: float, weight_decay: float
                         ) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Logistic regression by full-batch Adam, from the starting point (w, b).

    acts: (n, d); labels: (n,) bool; w: (d,) and b: a 0-dimensional tensor, not changed in
    place. Make trainable copies (`w.detach().clone().requires_grad_(True)`, the same for b)
    and the optimiser `torch.optim.Adam([w, b], lr=lr)` (w first). Each of the `steps` steps
    computes the loss on all the rows,
        logistic_loss(acts @ w + b, labels) + weight_decay * (w ** 2).sum()
    (b is not decayed), records it as a float, and takes one step.
    Returns (w, b, losses): the trained w and b, detached, and the `steps` losses, each taken
    before its step.
    """
    # TODO: implement train_logistic_probe
    raise NotImplementedError("train_logistic_probe is not implemented yet")


# ----------------------------------------------------------------------------- CCS


def ccs_normalise(x: torch.Tensor) -> torch.Tensor:
    """One side of the contrast pairs, normalised as Burns et al. do: x (n, d) minus its mean
    over the n statements, divided by its standard deviation over the n statements, dimension
    by dimension (the population standard deviation: `x.std(dim=0, correction=0)`).

    Done to x+ and x- separately, it removes what every "Yes." shares (and every "No."), so
    that a probe cannot just read which of the two answers it is looking at.
    """
    # TODO: implement ccs_normalise
    raise NotImplementedError("ccs_normalise is not implemented yet")


def ccs_loss(p_plus: torch.Tensor, p_minus: torch.Tensor) -> torch.Tensor:
    """The CCS loss, a scalar: consistency + confidence, with
        consistency = mean over the pairs of (p_plus - (1 - p_minus)) ** 2
        confidence  = mean over the pairs of min(p_plus, p_minus) ** 2.
    p_plus, p_minus: (n,), the probe's probabilities that x+ and x- are true.

    Consistency alone is zero at p = 0.5 everywhere; confidence pushes one of each pair to 0.
    """
    # TODO: implement ccs_loss
    raise NotImplementedError("ccs_loss is not implemented yet")


def train_ccs(x_plus: torch.Tensor, x_minus: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
              *, steps: int, lr: float) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """CCS by full-batch Adam from the starting point (w, b); no labels anywhere.

    x_plus, x_minus: (n, d), each side already normalised with `ccs_normalise`; w (d,) and b
    (0-dimensional) are not changed in place. As in `train_logistic_probe`: trainable copies,
    `torch.optim.Adam([w, b], lr=lr)`, and at each of the `steps` steps the loss
    `ccs_loss(sigmoid(x_plus @ w + b), sigmoid(x_minus @ w + b))` recorded as a float before
    the step. Returns (w, b, losses) with w and b detached.
    """
    # TODO: implement train_ccs
    raise NotImplementedError("train_ccs is not implemented yet")


def fit_ccs(x_plus: torch.Tensor, x_minus: torch.Tensor, *, tries: int, steps: int, lr: float,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """CCS with restarts, as Burns et al. run it: the best of `tries` trainings.

    x_plus, x_minus: (n, d) raw activations (not normalised). Normalise each side with
    `ccs_normalise`; then for each try in turn draw the start
        w0 = torch.randn(d, generator=generator, dtype=x_plus.dtype) / d ** 0.5
    (b0 = a 0-dimensional zero of that dtype), train it with `train_ccs`, and compute its
    loss after the training (ccs_loss of the trained probe on the normalised sides). Returns
    the (w, b) of the try with the lowest final loss (the first of equal ones); it applies
    to normalised activations.
    """
    # TODO: implement fit_ccs
    raise NotImplementedError("fit_ccs is not implemented yet")


def ccs_credence(x_plus: torch.Tensor, x_minus: torch.Tensor, w: torch.Tensor,
                 b: torch.Tensor) -> torch.Tensor:
    """CCS's credence that each pair's "Yes" side is the true one: the mean of the two ways the
    probe answers, (p(x+) + 1 - p(x-)) / 2, with p(x) = sigmoid(x @ w + b).
    x_plus, x_minus: (n, d), normalised as for training. Returns (n,), in [0, 1]."""
    # TODO: implement ccs_credence
    raise NotImplementedError("ccs_credence is not implemented yet")


def orient_ccs(x_plus: torch.Tensor, x_minus: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
               labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Resolve CCS's sign: the losses are the same for (w, b) and (-w, -b), so CCS finds truth
    or falsehood. A handful of labelled pairs decides which.

    labels: (n,) bool, True where the "Yes" side x+ is the true one. With the credence of
    `ccs_credence`, the probe says "Yes" where the credence is above 0.5. If it agrees with
    the labels on fewer than half of the pairs, return (-w, -b) (every credence c becomes
    1 - c); otherwise (w, b) unchanged (exactly half: unchanged).
    """
    # TODO: implement orient_ccs
    raise NotImplementedError("orient_ccs is not implemented yet")


# ----------------------------------------------------------------------------- metrics


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The fraction of statements the scores classify right, a float64 scalar: a score above 0
    says "true" (exactly 0 says "false"). scores: (n,); labels: (n,) bool."""
    # TODO: implement accuracy
    raise NotImplementedError("accuracy is not implemented yet")


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The area under the ROC curve, a float64 scalar: the probability that a true statement
    drawn at random scores higher than a false one drawn at random, a tie counting one half.
    It needs no threshold: 1 ranks every true statement above every false one, 0.5 is chance.

    scores: (n,); labels: (n,) bool with both classes present. Compare every (true, false)
    pair: (number of pairs the true one wins + 0.5 * number of tied pairs) / (number of
    pairs). Hint: broadcasting, `scores[labels][:, None]` against `scores[~labels][None, :]`.
    """
    # TODO: implement auroc
    raise NotImplementedError("auroc is not implemented yet")


def bootstrap_interval(scores: torch.Tensor, labels: torch.Tensor,
                       statistic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                       n_resamples: int, confidence: float, generator: torch.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """A percentile bootstrap confidence interval for statistic(scores, labels).

    Draw all the resamples at once: `indices = torch.randint(n, (n_resamples, n),
    generator=generator)` (on the CPU); resample r is statistic(scores[indices[r]],
    labels[indices[r]]). With the n_resamples values v (float64) and alpha = 1 - confidence,
    return (low, high) = `torch.quantile(v, q)` for q = alpha / 2 and 1 - alpha / 2 (its
    default, linear interpolation), as two float64 scalars.
    """
    # TODO: implement bootstrap_interval
    raise NotImplementedError("bootstrap_interval is not implemented yet")


def layer_sweep(train_acts: torch.Tensor, train_labels: torch.Tensor, test_acts: torch.Tensor,
                test_labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """A mass-mean probe per layer, fitted on one set and judged on another.

    train_acts: (n, n_layers, d), test_acts: (m, n_layers, d), from `last_token_activations`;
    labels (n,) and (m,) bool. For each layer l, `mass_mean_probe` on train_acts[:, l] and
    its scores on test_acts[:, l]. Returns {"accuracy": (n_layers,), "auroc": (n_layers,)},
    float64, from `accuracy` and `auroc` of those scores.
    """
    # TODO: implement layer_sweep
    raise NotImplementedError("layer_sweep is not implemented yet")


# ----------------------------------------------------------------------------- the experiment


def experiment(seed: int = 0, n: int = 400) -> dict[str, list[float]]:
    """The handout's numbers, per layer: probes fitted on n honest statements (a fresh draw),
    judged on n other honest ones and on n liar ones; CCS on n honest contrast pairs, its
    sign set by 16 labelled pairs, judged on all n."""
    from model import load_model

    model = load_model(dtype=torch.float64)
    layers = range(model.config.n_layers)
    generator = torch.Generator().manual_seed(seed)
    honest_train, labels_train = _activations(model, n, "honest", generator, layers)
    honest_test, labels_honest = _activations(model, n, "honest", generator, layers)
    liar_test, labels_liar = _activations(model, n, "liar", generator, layers)
    tokens, last, labels = statements(n, "honest", generator, answer="yes")
    no_tokens = tokens.clone()
    no_tokens[torch.arange(n), last] = TOKEN_ID["no"]
    x_plus = last_token_activations(model, tokens, last, layers)
    x_minus = last_token_activations(model, no_tokens, last, layers)
    results: dict[str, list[float]] = {
        **{f"mass-mean honest {k}": v.tolist() for k, v in
           layer_sweep(honest_train, labels_train, honest_test, labels_honest).items()},
        **{f"mass-mean liar {k}": v.tolist() for k, v in
           layer_sweep(honest_train, labels_train, liar_test, labels_liar).items()},
        "logistic liar accuracy": [], "liar accuracy low": [], "liar accuracy high": [],
        "CCS accuracy": []}
    d = honest_train.shape[-1]
    for layer in layers:
        zero_w, zero_b = torch.zeros(d, dtype=torch.float64), torch.zeros((), dtype=torch.float64)
        w, b, _ = train_logistic_probe(honest_train[:, layer], labels_train, zero_w, zero_b,
                                       steps=200, lr=0.01, weight_decay=1e-3)
        results["logistic liar accuracy"].append(
            accuracy(liar_test[:, layer] @ w + b, labels_liar).item())
        w, b = mass_mean_probe(honest_train[:, layer], labels_train)
        low, high = bootstrap_interval(liar_test[:, layer] @ w + b, labels_liar, accuracy,
                                       n_resamples=1000, confidence=0.95, generator=generator)
        results["liar accuracy low"].append(low.item())
        results["liar accuracy high"].append(high.item())
        w, b = fit_ccs(x_plus[:, layer], x_minus[:, layer], tries=5, steps=300, lr=0.03,
                       generator=generator)
        plus, minus = ccs_normalise(x_plus[:, layer]), ccs_normalise(x_minus[:, layer])
        w, b = orient_ccs(plus[:16], minus[:16], w, b, labels[:16])
        credence = ccs_credence(plus, minus, w, b)
        results["CCS accuracy"].append(accuracy(credence - 0.5, labels).item())
    return results


def _activations(model: nn.Module, n: int, persona: str, generator: torch.Generator,
                 layers: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    tokens, last, labels = statements(n, persona, generator)
    return last_token_activations(model, tokens, last, layers), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    started = time.perf_counter()
    for name, values in experiment(arguments.seed).items():
        print(f"{name:28s} " + "  ".join(f"{value:.3f}" for value in values))
    print(f"layers 0, 1, 2 (blocks.L.hook_resid_post at the last prompt token); "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
