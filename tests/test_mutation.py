"""Mutation testing (bench/mutation.py): the mutator itself, the lists of equivalent mutants
and known survivors, and a fixed random sample of mutants of one part that the hidden suites
must kill.

`make mutation` grades every mutant; the slow test here grades a small sample so that CI
notices when a change to a suite (or to the reference) lets plain mistakes through.
"""

import ast
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from autograder import REPO_ROOT
from autograder.engine.labs import available_labs, load_lab
from bench import mutation

REFERENCE = '''
import torch

LIMIT = 3 + 4


def scale(x, factor):
    """Outside the region: never mutated."""
    y = x * 2
    # BEGIN SOLUTION
    total = x.sum(dim=0) - y[1:]
    if factor > LIMIT:
        total = total / factor
    return torch.relu(total)
    # END SOLUTION
'''

SAMPLE_PER_PART = 1  # mutants of each sampled part (sampled_parts)
SAMPLE_SEED = 0
SEED = 1234  # the seed of tests/test_engine.py, whose reference observations are cached
# Tests that train (seconds to minutes each): left out here, and so is any sampled mutant that
# only they could kill ("not-run"); `make mutation` grades those with them.
TRAINING_TESTS = {("lab1", "dqn"): ("test_cartpole", "test_learns_probe",
                                    "test_target_network_is_synced",
                                    "test_train_stores_truncation"),
                  # trainings and attacks of a minute each; `make mutation` runs them
                  ("lab3", "preferences"): ("learns_the_hidden_preference",
                                            "learns_the_preference_with_bounded_kl",
                                            "improves_the_true_reward", "hacks_the_reward_model"),
                  ("lab3", "jailbreak"): ("test_gcg_beats_random_suffixes",)}


def test_mutants_change_only_the_solution_regions():
    mutants = mutation.mutants_of(REFERENCE, "lab", "part")
    assert len(mutants) > 10
    outside = "\n".join(ast.unparse(node) for node in ast.parse(REFERENCE).body[:2])
    kinds = set()
    for mutant in mutants:
        tree = ast.parse(mutant.source)
        assert "\n".join(ast.unparse(node) for node in tree.body[:2]) == outside
        function = tree.body[2]
        assert ast.unparse(function.body[1]) == "y = x * 2", mutant.key
        assert mutant.function == "scale"
        kinds.add(mutant.kind)
    assert {"operator", "comparison", "constant", "slice", "drop call", "drop keyword",
            "negate condition", "drop statement", "drop term", "rename"} <= kinds


def test_mutant_keys_are_unique_and_survive_edits_elsewhere():
    keys = [m.key for m in mutation.mutants_of(REFERENCE, "lab", "part")]
    assert len(keys) == len(set(keys))
    moved = "\n\ndef helper():\n    return 1 + 2\n\n" + REFERENCE
    assert [m.key for m in mutation.mutants_of(moved, "lab", "part")] == keys
    assert "scale: comparison: `factor > LIMIT` -> `factor >= LIMIT`" in keys


# A training loop, a convergence loop and float64 work: the readings of issue 23 (a statement
# moved across optimizer.step(), an iteration count, a cast to float32).
TRAINING = '''
import numpy as np
import torch


def train(model, optimizer, batches, tolerance):
    """The losses before each step, halved until below tolerance; float64."""
    # BEGIN SOLUTION
    losses = []
    for batch in batches:
        loss = model(batch).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    total = torch.tensor(losses, dtype=torch.float64)
    for _ in range(100):
        total = total / 2
        if total.abs().max() < tolerance:
            break
    count = 0
    while total.sum() > tolerance:
        total = total.double() / 2
        count += 1
    return total, np.float64(count)
    # END SOLUTION
'''
NEW_KINDS = ("move statement", "float32", "iteration count")


def new_mutants(source: str = TRAINING) -> dict[str, mutation.Mutant]:
    return {m.key: m for m in mutation.mutants_of(source, "lab", "part") if m.kind in NEW_KINDS}


def test_statements_move_across_the_optimiser_step():
    keys = new_mutants()
    moved = {key for key in keys if ": move statement: " in key}
    assert moved == {
        "train: move statement: `optimizer.zero_grad(); loss.backward()` -> "
        "`loss.backward(); optimizer.zero_grad()`",
        "train: move statement: `loss.backward(); optimizer.step()` -> "
        "`optimizer.step(); loss.backward()`",
        "train: move statement: `optimizer.step(); losses.append(loss.item())` -> "
        "`losses.append(loss.item()); optimizer.step()`",
    }  # zero_grad swapped with the forward pass changes nothing; loops are not moved
    body = ast.parse(keys["train: move statement: `loss.backward(); optimizer.step()` -> "
                          "`optimizer.step(); loss.backward()`"].source).body[2].body[2].body
    assert [ast.unparse(s) for s in body[1:4]] == [
        "optimizer.zero_grad()", "optimizer.step()", "loss.backward()"]


def test_a_step_in_a_branch_or_a_train_step_call_moves_too():
    source = TRAINING.replace("        loss.backward()\n        optimizer.step()\n",
                              "        if train_step(loss):\n            sync()\n")
    moved = {key for key in new_mutants(source) if ": move statement: " in key}
    assert ("train: move statement: `if train_step(loss): sync(); losses.append(loss.item())` "
            "-> `losses.append(loss.item()); if train_step(loss): sync()`") in moved


def test_float64_becomes_float32():
    floats = {key for key in new_mutants() if ": float32: " in key}
    assert floats == {
        "train: float32: `total = torch.tensor(losses, dtype=torch.float64)` -> "
        "`total = torch.tensor(losses, dtype=torch.float32)`",
        "train: float32: `total = total.double() / 2` -> `total = total.float() / 2`",
        "train: float32: `return (total, np.float64(count))` -> "
        "`return (total, np.float32(count))`",
    }


def test_loops_run_to_their_end_or_are_cut_short():
    keys = new_mutants()
    loops = {key for key in keys if ": iteration count: " in key}
    capped_while = ("train: iteration count: `while total.sum() > tolerance:` -> "
                    "`for _ in range(10): if not total.sum() > tolerance: break`")
    assert loops == {
        "train: iteration count: `if total.abs().max() < tolerance: break` -> "
        "`if total.abs().max() < tolerance: pass`",
        "train: iteration count: `range(100)` -> `range(min(100, 10))`",
        capped_while,
    }
    # The capped while loop stops after 10 rounds where the reference would never stop.
    namespace: dict = {}
    exec(compile(keys[capped_while].source, "mutant", "exec"), namespace)
    weight = torch.ones(1, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=0.1)
    total, count = namespace["train"](lambda b: weight * b, optimizer, [torch.ones(1)], -1.0)
    assert count == 10 and total.dtype == torch.float64


def test_new_mutant_keys_survive_edits_elsewhere():
    keys = list(new_mutants())
    assert len(keys) == len(set(keys)) == 9
    helper = ("\n\ndef warm_up(optimizer, loss):\n    loss.backward()\n    optimizer.step()\n"
              "    return torch.float64\n\n")
    edited = TRAINING.replace("import torch\n", "import torch\n" + helper).replace(
        "    # BEGIN SOLUTION\n", "    # BEGIN SOLUTION\n    tolerance = abs(tolerance)\n")
    assert list(new_mutants(edited)) == keys


def test_kind_filter_keeps_only_those_kinds(capsys):
    mutants = {"part": mutation.mutants_of(TRAINING, "lab", "part")}
    assert mutation.of_kinds(mutants, None) == mutants
    chosen = mutation.of_kinds(mutants, ["float32", "iteration count"])["part"]
    assert {m.kind for m in chosen} == {"float32", "iteration count"} and len(chosen) == 6
    assert mutation.main(["--list", "--lab", "lab1", "--part", "basics",
                          "--kind", "move statement"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(": move statement: " in line for line in lines)
    with pytest.raises(SystemExit):
        mutation.main(["--list", "--kind", "no such kind"])


def test_a_survivors_run_carries_the_earlier_kills_of_mutants_that_still_exist():
    mutants = {"part": mutation.mutants_of(REFERENCE, "lab", "part")}
    first, second, third, fourth = (m.key for m in mutants["part"][:4])
    earlier = {"part": [
        {"key": first, "status": "killed", "killers": ["test_a"], "note": "", "seconds": 1.0},
        {"key": second, "status": "survived", "killers": [], "note": "", "seconds": 1.0},
        {"key": third, "status": "equivalent-but-killed", "killers": ["test_b"], "note": "",
         "seconds": 1.0},
        {"key": "scale: gone: `a` -> `b`", "status": "killed", "killers": ["test_c"],
         "note": "", "seconds": 1.0},
        {"key": fourth, "status": "equivalent", "killers": [], "note": "", "seconds": 1.0}]}
    # The third is no longer listed as equivalent: a plain kill now.
    carried = mutation.carried_kills(earlier, mutants, {"part": {fourth: "reason"}})
    assert [(v.mutant.key, v.status, v.killers) for v in carried["part"]] == [
        (first, "killed", ["test_a"]), (third, "killed", ["test_b"])]
    # Survivors and equivalents are graded again; a kill of a mutant that is gone is dropped.
    score = mutation.score(carried["part"])
    assert score["killed"] == 2 and score["total"] == 2


@pytest.mark.parametrize("listing", ["equivalent_mutants", "known_survivors"])
def test_every_listed_mutant_exists_and_has_a_reason(listing):
    listed_mutants = mutation.load_equivalents(Path(mutation.__file__).with_name(f"{listing}.toml"))
    for lab_name, parts in listed_mutants.items():
        lab = load_lab(lab_name)
        mutants = mutation.lab_mutants(lab, [p for p in parts if p in lab.parts])
        for part, listed in parts.items():
            keys = {m.key for m in mutants.get(part, [])}
            for key, reason in listed.items():
                assert key in keys, (
                    f"{lab_name}.{part}: the mutant `{key}` of bench/{listing}.toml no longer "
                    "exists; remove it or update its key (`python -m bench.mutation --list`)"
                )
                assert len(reason.strip()) > 10, f"{key}: give the reason"


def sampled_parts(gate: str) -> list[tuple[str, str]]:
    """One part of one lab, drawn once for all from a fixed seed (`gate` names the gate, so
    that honesty and mutation sample different parts): what make check grades of the gate, to
    keep CI within its time; `make mutation` and `make honesty` grade every part of every
    lab."""
    parts = []
    for lab_name in available_labs():
        lab = load_lab(lab_name)
        parts += [(lab_name, part) for part in sorted(lab.parts) if lab.test_file(part).is_file()]
    return [random.Random(gate).choice(parts)]


@pytest.mark.slow
def test_a_sample_of_mutants_is_killed(tmp_path: Path, reference_cache: Path):
    """A fixed random sample of mutants of one part: each is killed, or listed with a
    reason."""
    equivalents, known = mutation.load_equivalents(), mutation.load_known_survivors()
    runs, mutants = [], {}
    for lab_name, part in sampled_parts("mutation"):
        lab = load_lab(lab_name)
        found = mutation.lab_mutants(lab, [part])[part]
        mutants[part] = mutation.sample(found, SAMPLE_PER_PART, SAMPLE_SEED)
        runs.append(mutation.PartRun(
            lab, part, seed=SEED, out=tmp_path, cache=reference_cache,
            equivalents=equivalents.get(lab_name, {}).get(part, {}),
            long_test_seconds=float("inf"), long_budget=0,
            skip=TRAINING_TESTS.get((lab_name, part), ()),
            known=known.get(lab_name, {}).get(part, {}), log=lambda _: None,
        ))
    with ThreadPoolExecutor(max_workers=2) as pool:
        references = list(pool.map(lambda run: run.prepare(), runs))
    for run, reference in zip(runs, references, strict=True):
        assert not reference.failed, f"the reference fails {run.part} tests: {reference.failed}"
    verdicts = mutation.run_parts(runs, mutants, jobs=2, log=lambda _: None)
    problems = [
        f"{part}: {v.mutant.key} ({v.status}{': ' + v.note if v.note else ''})"
        for part, found in verdicts.items() for v in found
        if v.status not in ("killed", "equivalent", "known", "not-run")
    ]
    assert not problems, (
        "mutants that the hidden suite does not kill: add a test that does, or list them with "
        "the reason in bench/equivalent_mutants.toml (no test can kill them) or "
        "bench/known_survivors.toml (the test that would):\n" + "\n".join(problems)
    )


def test_a_variant_folder_holds_the_other_graded_files_of_the_reference(tmp_path):
    # induction.py imports transformer.py: a mutant of induction alone must still find it,
    # or every test that trains a model fails for a reason that is not the mutant.
    from bench.variants import write_variant

    folder = write_variant(tmp_path / "v", REPO_ROOT, "lab2", "induction", "# the variant\n")
    lab = load_lab("lab2")
    assert (folder / "induction.py").read_text() == "# the variant\n"
    for name in lab.graded:
        if name != "induction.py":
            assert (folder / name).read_bytes() == (lab.reference_dir / name).read_bytes()
