"""No points for doing nothing (bench/honesty.py): the trivial replacements themselves, the list
of exceptions, and a fixed sample of student functions of one part whose trivial replacements
must fail every test that calls them.

`make honesty` judges every function; the slow test here judges a small sample so that CI
notices when a change to a suite (or to the reference) starts giving points for doing nothing.
"""

from __future__ import annotations

import random
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder.engine.labs import load_lab
from bench import honesty
from bench.variants import student_functions
from tests.test_mutation import SEED, TRAINING_TESTS, sampled_parts

REFERENCE = '''
import torch


def scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Outside the region: kept."""
    y = x * 2
    # BEGIN SOLUTION
    def helper(v):
        return v + 1
    if factor > 3:
        return helper(y) / factor
    return y * factor
    # END SOLUTION


class Counter:
    def __init__(self):
        self.count = 0

    def add(self, amount: int) -> None:
        # BEGIN SOLUTION
        self.count += amount
        # END SOLUTION
'''

SAMPLE_PER_PART = 1
SAMPLE_SEED = 0


def _namespace(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "variant.py", "exec"), namespace)  # noqa: S102 - our own variant
    return namespace


def test_replacements_change_only_the_regions_and_do_what_they_say():
    found = {r.key: r for r in honesty.replacements_of(REFERENCE, "lab", "part")}
    assert set(found) == {
        "scale: returns None", "scale: returns its first argument (x)", "scale: zeros",
        "scale: ones", "scale: mean", "Counter.add: does nothing",
    }
    x = torch.arange(6.0).reshape(2, 3)
    right = _namespace(REFERENCE)["scale"](x, 5.0)
    for key, replacement in found.items():
        assert '"""Outside the region: kept."""\n    y = x * 2\n' in replacement.source, key
        assert replacement.source.count("# BEGIN SOLUTION") == 1, key  # the other function's
        if key in ("scale: zeros", "scale: ones", "scale: mean"):  # a nested def's return: kept
            assert "return v + 1" in replacement.source, key
        namespace = _namespace(replacement.source)
        if key.startswith("Counter"):
            counter = namespace["Counter"]()
            counter.add(3)
            assert counter.count == 0
            continue
        got = namespace["scale"](x, 5.0)
        if key == "scale: returns None":
            assert got is None
        elif key.startswith("scale: returns its first"):
            assert got is x
        else:
            assert got.shape == right.shape and got.dtype == right.dtype, key
            fill = {"scale: zeros": 0.0, "scale: ones": 1.0}.get(key, right.mean().item())
            assert torch.allclose(got, torch.full_like(right, fill)), key


def test_trivial_values_are_computed_without_side_effects():
    source = (
        "def train(model: list, steps: int) -> list:\n"
        "    # BEGIN SOLUTION\n"
        "    model.extend(range(steps))\n"
        "    return [float(len(model))] * steps\n"
        "    # END SOLUTION\n"
    )
    for replacement in honesty.replacements_of(source, "lab", "part"):
        model = [7]
        result = _namespace(replacement.source)["train"](model, 3)
        assert model == [7], f"{replacement.key} trained the model"
        if replacement.kind == "zeros":
            assert result == [0.0, 0.0, 0.0]


def test_the_first_argument_is_returned_only_where_its_type_fits():
    source = REFERENCE.replace("def scale(x: torch.Tensor,", "def scale(x: list,")
    keys = {r.key for r in honesty.replacements_of(source, "lab", "part")}
    assert "scale: returns its first argument (x)" not in keys
    assert "scale: zeros" in keys


@dataclass
class _Result:
    network: torch.nn.Module
    losses: list
    name: str


def test_trivial_values_keep_structure_shape_dtype_and_gradient():
    Pair = namedtuple("Pair", "a b")
    value = Pair(torch.tensor([[1.0, 3.0]], requires_grad=True), np.array([1, 2, 6]))
    zeros = honesty._honesty_trivial(value, "zeros")
    assert isinstance(zeros, Pair) and zeros.a.requires_grad and zeros.a.shape == (1, 2)
    assert zeros.b.dtype == value.b.dtype and not zeros.b.any()
    mean = honesty._honesty_trivial(value, "mean")
    assert torch.equal(mean.a.detach(), torch.full((1, 2), 2.0))
    assert mean.b.tolist() == [3, 3, 3]
    flags = honesty._honesty_trivial(torch.tensor([True, False, True]), "mean")
    assert flags.dtype == torch.bool and flags.all()
    result = _Result(torch.nn.Linear(2, 3), [1.0, 2.0], "kept")
    ones = honesty._honesty_trivial(result, "ones")
    assert ones.name == "kept" and ones.losses == [1.0, 1.0]
    assert all(bool((p == 1).all()) for p in ones.network.parameters())
    assert not all(bool((p == 1).all()) for p in result.network.parameters())  # a copy
    assert honesty._honesty_trivial(7, "ones") == 1 and honesty._honesty_trivial(2.5, "zeros") == 0


def test_the_mean_of_a_single_number_is_not_applicable():
    with pytest.raises(LookupError, match=honesty.NOT_APPLICABLE):
        honesty._honesty_trivial((torch.tensor(2.0), 3.0), "mean")


def test_the_helper_runs_in_a_file_that_imports_nothing_it_names():
    namespace = _namespace(honesty._helper_source())
    assert namespace["_honesty_trivial"]([1.0, 3.0], "mean") == [2.0, 2.0]


def test_every_exception_names_a_replacement_and_has_a_reason():
    for lab_name, parts in honesty.load_exceptions().items():
        lab = load_lab(lab_name)
        for part, listed in parts.items():
            source = (lab.reference_dir / f"{part}.py").read_text()
            keys = {r.key for r in honesty.replacements_of(source, lab_name, part)}
            tests = lab.test_file(part).read_text()
            for key, reason in listed.items():
                replacement, _, test = key.rpartition(": ")
                assert replacement in keys and f"def {test.split('[')[0]}(" in tests, (
                    f"{lab_name}.{part}: `{key}` of bench/honesty_exceptions.toml names no "
                    "replacement and test (`python -m bench.honesty --list`): fix or remove it"
                )
                assert len(reason.strip()) > 10, f"{key}: give the reason"


def _sample() -> list[tuple[str, str, list[str]]]:
    """(lab, part, the sampled functions) for the sampled part (sampled_parts)."""
    chosen = []
    for lab_name, part in sampled_parts("honesty"):
        path = load_lab(lab_name).reference_dir / f"{part}.py"
        if path.is_file():
            names = sorted(f.name for f in student_functions(path.read_text()))
            picked = random.Random(f"{SAMPLE_SEED}:{part}").sample(
                names, min(SAMPLE_PER_PART, len(names)))
            chosen.append((lab_name, part, picked))
    return chosen


@pytest.mark.slow
def test_a_sample_of_trivial_implementations_scores_nothing(tmp_path: Path,
                                                           reference_cache: Path):
    """A fixed sample of functions of one part: each trivial replacement fails every
    test that calls the function, or the test is listed with a reason."""
    exceptions = honesty.load_exceptions()
    work = []
    for lab_name, part, functions in _sample():
        lab = load_lab(lab_name)
        run = honesty.PartHonesty(
            lab, part, seed=SEED, out=tmp_path, cache=reference_cache,
            exceptions=exceptions.get(lab_name, {}).get(part, {}), timeout_scale=2.0,
            skip=TRAINING_TESTS.get((lab_name, part), ()),
        )
        found = honesty.replacements_of(run.source, lab_name, part, set(functions))
        work += [(run, function, [r for r in found if r.function == function])
                 for function in functions]
    # The reference is not graded first (as `make honesty` does) to save a grading per part.
    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(pool.map(lambda item: (item[0].part, item[0].judge(*item[1:])), work))
    problems = [f"{part}.{line}" for part, verdict in verdicts
                for line in honesty.findings([verdict])]
    assert not problems, (
        "trivial implementations that keep points (DESIGN.md, \"No points for doing nothing\"): "
        "make each such test also check a value that only the work produces, or list the test "
        "with the reason in bench/honesty_exceptions.toml:\n" + "\n".join(problems)
    )
