"""Mistakes students make in the basics part fail exactly the tests that cover them, cost the
points those tests carry, and the message names the function to fix.

Each case is the reference's basics.py with passages changed the way a student writes them
(not operator flips). Mistakes that touch different functions and cannot affect each other's
tests share one grading, to keep this quick; a mistake whose effect cascades into the
functions built on it (log_softmax, the MLP) gets a grading of its own.
"""

from __future__ import annotations

import pytest

from autograder import REPO_ROOT
from tests.conftest import assert_each_mistake_fails_its_tests, variant_folder

REFERENCE = REPO_ROOT / "reference" / "lab1" / "basics.py"

# name: ([(passage, replacement), ...], display-name fragments of the tests it fails, the text
#        their messages must contain: the function at fault)
Mistake = tuple[list[tuple[str, str]], tuple[str, ...], str]

INDEPENDENT: dict[str, Mistake] = {
    "pairwise_distances_by_the_expanded_square": (
        [("    difference = x[:, None, :] - y[None, :, :]\n"
          "    return difference.pow(2).sum(dim=-1).sqrt()",
          "    squared = x.pow(2).sum(-1)[:, None] + y.pow(2).sum(-1)[None, :] - 2 * x @ y.T\n"
          "    return squared.sqrt()")],
        ("pairwise_distances matches",), "pairwise_distances",
    ),
    "gather_squeezes_every_dimension": (
        [("return log_probs.gather(1, labels[:, None]).squeeze(1)",
          "return log_probs.gather(1, labels[:, None]).squeeze()")],
        ("gather_log_probs picks",), "gather_log_probs",
    ),
    "one_hot_returns_booleans_as_int64": (
        [("return (labels[..., None] == torch.arange(num_classes, device=labels.device)).float()",
          "return (labels[..., None] == torch.arange(num_classes)).long()")],
        ("one_hot encodes",), "int64",
    ),
    "patchify_flattens_channels_last": (
        [('"b c (h p1) (w p2) -> b (h w) (c p1 p2)", p1=patch',
          '"b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch')],
        ("patchify orders",), "patchify",
    ),
    "max_pool_with_strided_windows": (
        [('"b c (h k1) (w k2) -> b c h w", "max"', '"b c (k1 h) (k2 w) -> b c h w", "max"')],
        ("max_pool takes",), "max_pool",
    ),
    "repeat_tiles_the_batch": (
        [('return einops.repeat(x, "b s d -> b h s d", h=heads)',
          "return x.repeat(heads, 1, 1).reshape(x.shape[0], heads, *x.shape[1:])")],
        ("repeat_for_heads copies",), "repeat_for_heads",
    ),
    "attention_without_the_scale": (
        [("    return scores / math.sqrt(queries.shape[-1])", "    return scores")],
        ("attention_scores matches",), "attention_scores",
    ),
    "softmax_without_the_max_shift": (
        [("    return log_softmax(x, dim=dim).exp()",
          "    return x.exp() / x.exp().sum(dim=dim, keepdim=True)")],
        ("basics: softmax stays finite",), "softmax(x",
    ),
    "gradient_of_the_sum_not_the_mean": (
        [("grad_logits = (softmax(logits) - one_hot(labels, logits.shape[-1])) / x.shape[0]",
          "grad_logits = softmax(logits) - one_hot(labels, logits.shape[-1])")],
        ("linear_cross_entropy_grads agrees",), "linear_cross_entropy_grads",
    ),
    "numerical_gradient_never_puts_the_entry_back": (
        [("flat = x.detach().clone().reshape(-1)", "flat = x.detach().reshape(-1)"),
         ("        flat[i] = original\n        grad[i]", "        grad[i]")],
        ("numerical_gradient approximates",), "numerical_gradient",
    ),
    "generator_reseeded_every_epoch": (
        [("    generator = torch.Generator().manual_seed(seed)\n    optimizer",
          "    optimizer"),
         ("        order = torch.randperm(len(inputs), generator=generator)",
          "        generator = torch.Generator().manual_seed(seed)\n"
          "        order = torch.randperm(len(inputs), generator=generator)")],
        ("first epochs match",), "re-seeds) the generator every epoch",
    ),
}

CASCADING: dict[str, Mistake] = {
    # Everything built on log_softmax fails too; its own tests name it.
    "log_softmax_without_keepdim": (
        [("    return x - logsumexp(x, dim=dim).unsqueeze(dim)",
          "    return x - logsumexp(x, dim=dim)")],
        ("log_softmax matches", "log_softmax stays finite"), "log_softmax",
    ),
    "mlp_without_the_relu": (
        [("        return self.output(torch.relu(self.hidden(x)))",
          "        return self.output(self.hidden(x))")],
        ("MLP has the parameter names", "MLP.forward with given weights"), "MLP",
    ),
}


def _submission(tmp_path, name: str, mistakes: list[Mistake]):
    changes = [change for replacements, _, _ in mistakes for change in replacements]
    return variant_folder(tmp_path, REFERENCE, name, changes)


@pytest.mark.slow
def test_independent_mistakes_each_fail_their_own_tests(grade, tmp_path):
    """Eleven mistakes in one file: exactly their tests fail, each naming the function, and
    the points lost are those tests' points."""
    graded = grade(_submission(tmp_path, "independent", list(INDEPENDENT.values())),
                   parts=("basics",), timeout_scale=2.0)
    assert graded.returncode == 0, graded.output[-2000:]
    assert_each_mistake_fails_its_tests(
        graded, {name: (fragments, (message,)) for name, (_, fragments, message)
                 in INDEPENDENT.items()}, 18)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASCADING))
def test_cascading_mistake_names_its_function(case, grade, tmp_path):
    _, fragments, message = CASCADING[case]
    graded = grade(_submission(tmp_path, case, [CASCADING[case]]), parts=("basics",),
                   timeout_scale=2.0)
    assert graded.returncode == 0, graded.output[-2000:]
    for fragment in fragments:
        tests = [t for t in graded.tests if fragment in t["name"]]
        assert tests and all(t["status"] == "failed" for t in tests), fragment
        assert all(message in t["output"] for t in tests), [t["output"] for t in tests]
    lost = sum(t["max_score"] - t["score"] for t in graded.tests)
    # log_softmax: its two tests, softmax's two, cross_entropy's two and the stable one,
    # the gradient (softmax) and both training tests. The MLP: its two tests and training.
    assert lost == {"log_softmax_without_keepdim": 15, "mlp_without_the_relu": 8}[case], (
        sorted(graded.failed()))
