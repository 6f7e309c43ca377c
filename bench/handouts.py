"""The numbers the handouts quote from running the reference, rerun (`make bench`, section
`handouts`).

    python -m bench.benchmarks --only handouts,training --repeat 1
    python -m bench.handouts basics              one runner, in the repository root: JSON

Each handout (reference/LAB/README.md) promises that its numbers come from the reference, run
by the command it gives at the seed it names. This module reads every such number from the
handout's own text (a table row or a sentence, found by the pattern written next to it here),
reruns the command or the same functions at the same seeds and settings on CPU with one torch
thread, and judges each number with a tolerance of its own:

  digits     a seeded, deterministic result: the measurement rounds to the handout's number
             (half a unit of its last digit)
  exact      integers, head names, lists of frequencies
  k SE       a statistical result: within k standard errors of the measurement's mean
  range      every measured value within the range the handout states
  factor f   a time: between 1/f and f times the handout's (CPU time, one thread; where the
             handout gives a wall time on a shared machine, as lab 3's does, CPU time all the
             same)

A handout edited without this code, or the code without the handout, makes its row disagree; a
sentence the patterns no longer find is a row that disagrees too. Numbers that would take far
longer than this section's budget (a few minutes of CPU) are listed as "not rerun", with the
command that measures them. The DQN table reuses the training section's five CartPole runs.
Lab 3's runners use its shipped checkpoints and sweep; its trainings (model.py train, cnn.py
train, scaling_sweep.py) and the statements over many draws of the graded settings are listed as
not rerun.

Every runner is a process of its own (`python -m bench.handouts NAME`, in the repository root or
a snapshot of it) that prints one JSON object: the measurements, keyed as the claims below.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"


# ============================================================================ claims


@dataclass
class Claim:
    """One number of a handout: what it is, how the handout writes it, and how it is judged."""

    lab: str
    key: str              # the measurement it is judged against
    what: str
    text: str | None      # as the handout writes it; None: the handout's sentence was not found
    stated: Any
    rule: tuple           # ("digits",) ("exact",) ("se", k) ("range",) ("factor", f) ...
    note: str = ""        # for ("not rerun",): why, and what measures it


@dataclass
class Row:
    lab: str
    what: str
    handout: str
    measured: str
    tolerance: str
    agrees: bool | None   # None: not measured here


def flat(text: str) -> str:
    """The handout with every run of whitespace made one space (sentences wrap anywhere)."""
    return " ".join(text.split())


def number(text: str) -> float:
    text = text.replace(",", "").strip()
    if "/" in text:
        numerator, denominator = text.split("/")
        return float(numerator) / float(denominator)
    return float(text)


def half_unit(text: str) -> float:
    """Half a unit of the last digit that `text` states: 0.926 -> 0.0005, 6e-8 -> 5e-9."""
    mantissa, _, exponent = text.replace(",", "").lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 0.5 * 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def table_row(text: str, first_cell: str) -> list[str] | None:
    """The cells of the markdown table row whose first cell is `first_cell`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and cells and cells[0] == first_cell:
            return cells
    return None


class Reader:
    """Collects the claims of one handout; a pattern that finds nothing still makes its rows."""

    def __init__(self, lab: str, text: str) -> None:
        self.lab, self.text, self.flat = lab, text, flat(text)
        self.claims: list[Claim] = []

    def sentence(self, pattern: str, fields: list[tuple[str, str, tuple]],
                 convert: Callable[[str], Any] = number) -> re.Match | None:
        """`pattern` has one group per field (key, what, rule), in order."""
        found = re.search(pattern, self.flat)
        for index, (key, what, rule) in enumerate(fields, start=1):
            text = found.group(index) if found else None
            self.add(key, what, text, convert(text) if text is not None else None, rule)
        return found

    def add(self, key: str, what: str, text: str | None, stated: Any, rule: tuple,
            note: str = "") -> None:
        self.claims.append(Claim(self.lab, key, what, text, stated, rule, note))


DIGITS, EXACT, RANGE = ("digits",), ("exact",), ("range",)


def _about(text: str) -> float:
    return 0.5 if text == "half a second" else number(text.split()[0])


# The bandit table's rows: the handout's label -> the figure and curve of bandits.FIGURES that
# `python bandits.py figures` runs for it.
BANDIT_CURVES = {
    "epsilon = 0 (greedy), sample averages": ("figure_2_2", "epsilon = 0 (greedy)"),
    "epsilon = 0.01, sample averages": ("figure_2_2", "epsilon = 0.01"),
    "epsilon = 0.1, sample averages": ("figure_2_2", "epsilon = 0.1"),
    "optimistic: Q1 = 5, epsilon = 0, alpha = 0.1": ("figure_2_3", "optimistic, greedy, Q1 = 5"),
    "UCB, c = 2": ("figure_2_4", "UCB, c = 2"),
    "gradient bandit, alpha = 0.1, with baseline (q* mean 4)":
        ("figure_2_5", "alpha = 0.1, with baseline"),
    "gradient bandit, alpha = 0.1, without baseline (q* mean 4)":
        ("figure_2_5", "alpha = 0.1, without baseline"),
}
BANDIT_BATCHES, BANDIT_RUNS = 10, 2000  # 20,000 runs per curve, in batches of the handout's 2000
PROBES = [f"probes/Probe{i}-v0" for i in range(1, 7)]
DQN_SEEDS = range(1, 6)


def lab1_claims(text: str) -> list[Claim]:
    r = Reader("lab1", text)
    r.sentence(r"loss falling from about (" + NUMBER + r") to below (" + NUMBER + r") and a "
               r"test accuracy of about (" + NUMBER + r")% after 200 epochs",
               [("basics.first_loss", "`python basics.py`: first epoch's loss", ("abs", 0.01)),
                ("basics.final_loss", "`python basics.py`: last epoch's loss", ("below",)),
                ("basics.test_accuracy", "`python basics.py`: test accuracy (%)", ("abs", 1.0))])
    r.sentence(r"2000 runs x 1000 steps then take about (half a second|" + NUMBER + r" s) per "
               r"agent", [("bandits.seconds_per_agent", "bandits: seconds per agent, 2000 runs "
                           "x 1000 steps (median of the table's curves)", ("factor", 2.0))],
               convert=_about)
    r.sentence(r"python bandits\.py figures # 2000 runs x 1000 steps per curve; about (" + NUMBER
               + r") s in all", [("bandits.figures_seconds", "`python bandits.py figures`: CPU "
                                  "seconds", ("factor", 2.0))])
    r.sentence(r"about \+-(" + NUMBER + r") reward and \+-(" + NUMBER + r") point of percent "
               r"optimal \(one standard error\)",
               [("bandits.se_reward", "bandits: one standard error of a 2000-run step's "
                 "reward (median over the table's curves)", ("factor", 1.5)),
                ("bandits.se_optimal", "bandits: one standard error of a 2000-run step's % "
                 "optimal (median over the table's curves)", ("factor", 1.5))])
    for label in BANDIT_CURVES:
        cells = table_row(text, label)
        for column, name in ((3, "reward"), (4, "optimal")):
            cell = cells[column].rstrip("%") if cells and len(cells) > column else None
            r.add(f"bandits.{label}.{name}", f"bandits at step 1000, {label}: expected "
                  f"{'reward' if name == 'reward' else '% optimal'}", cell,
                  number(cell) if cell else None, ("se", 4.0))

    command = re.search(r"python dqn\.py (--env-id probes/Probe3-v0 [^`]*?)\n```",
                        text.replace("\\\n", " "))
    args = command.group(1).split() if command else None
    r.add("probes.command", "the probe command of the handout", " ".join(args) if args else None,
          args, ("ran",))
    r.sentence(r"\(here Q\(0\) = (" + NUMBER + r"), Q\(1\) = (" + NUMBER + r")\)",
                       [("probes.Probe3.q0", "Probe 3 command: learned Q(0)", ("probe",)),
                        ("probes.Probe3.q1", "Probe 3 command: learned Q(1)", ("probe",))])
    within = re.search(r"Each probe is learned to within (" + NUMBER + r") in one or two "
                       r"thousand steps and about a second of CPU time", r.flat)
    for claim in r.claims[-2:]:
        claim.rule = ("abs", number(within.group(1)) if within else 0.0)
    for probe in PROBES:
        name = probe.split("/")[1].removesuffix("-v0")
        r.add(f"probes.{name}.error", f"{name}, the same command: largest |learned - expected "
              "Q|", within.group(1) if within else None,
              number(within.group(1)) if within else None, ("at_most",))
    r.add("probes.seconds", "probe commands: CPU seconds of one (the median of the six, "
          "plotting included)",
          "about a second" if within else None, 1.0 if within else None, ("factor", 2.0))

    reached = re.search(r"every seed reaches a greedy return of 475 \(10 episodes\) within 50k "
                        r"steps", r.flat)
    r.add("dqn.reached", "DQN seeds 1-5 reaching 475 within 50k steps", "every seed" if reached
          else None, len(DQN_SEEDS) if reached else None, EXACT)
    cells = table_row(text, "1-5")
    for column, key, what in ((1, "steps", "steps to 475"), (2, "seconds", "CPU seconds to 475"),
                              (3, "final", "greedy return at 50k (the last evaluation)")):
        cell = cells[column] if cells and len(cells) > column else None
        bounds = re.fullmatch(r"(" + NUMBER + r") to (" + NUMBER + r")", cell or "")
        stated = (number(bounds.group(1)), number(bounds.group(2))) if bounds else None
        r.add(f"dqn.{key}", f"DQN seeds 1-5: {what}, range over the seeds", cell if bounds
              else None, stated, RANGE if key != "seconds" else ("range_factor", 1.25))
    integration = re.search(r"The reference passes on (\d+) of (\d+) grading seeds \((\d+) of "
                            r"(\d+) would even reach 475\)", r.flat)
    r.add("dqn.integration", "the CartPole grading test on the reference", integration.group(0)
          if integration else None, None, ("not rerun",),
          "not rerun: `python -m bench.dqn_cartpole integration` (20 runs of 40k steps, about "
          "15 min of CPU)")
    return r.claims


def lab2_claims(text: str) -> list[Claim]:
    r = Reader("lab2", text)
    r.sentence(r"The reference prints an entropy rate of \*\*(" + NUMBER + r") nats\*\* and a "
               r"loss of \*\*(" + NUMBER + r")\*\* on 512 fresh sequences \(the chain itself "
               r"scores (" + NUMBER + r") on those same sequences\); the training takes about ("
               + NUMBER + r") seconds of CPU time",
               [("transformer.floor", "`python transformer.py`: entropy rate (nats)", DIGITS),
                ("transformer.loss", "`python transformer.py`: loss on 512 fresh sequences",
                 DIGITS),
                ("transformer.chain", "`python transformer.py`: the chain's own loss on them",
                 DIGITS),
                ("transformer.seconds", "`python transformer.py`: CPU seconds of training",
                 ("factor", 2.0))])
    r.sentence(r"trained that way, the reference's best head, a layer-(\d) head, scored ("
               + NUMBER + r") on 32-token blocks and no head scored above (" + NUMBER + r") on "
               r"20-token blocks",
               [("induction.fixed32_layer", "induction, every block 32 tokens: the layer of the "
                 "best head on 32-token blocks", EXACT),
                ("induction.fixed32", "induction, every block 32 tokens: best induction score "
                 "on 32-token blocks", DIGITS),
                ("induction.fixed20", "induction, every block 32 tokens: best induction score "
                 "on 20-token blocks", ("at_most",))])
    r.sentence(r"The reference trains in about (" + NUMBER + r") seconds of CPU time",
               [("induction.seconds", "`python induction.py`: CPU seconds of training",
                 ("factor", 2.0))])
    r.sentence(r"Its best induction head is head (\d\.\d) with an induction score of \*\*("
               + NUMBER + r")\*\*, its previous-token head is head (\d\.\d) \(score (" + NUMBER
               + r")\), and the second copy's loss is (" + NUMBER + r") nats \(the first "
               r"copy's (" + NUMBER + r")",
               [("induction.head", "`python induction.py`: the induction head", EXACT),
                ("induction.score", "`python induction.py`: its induction score", DIGITS),
                ("induction.previous_head", "`python induction.py`: the previous-token head",
                 EXACT),
                ("induction.previous_score", "`python induction.py`: its previous-token score",
                 DIGITS),
                ("induction.second_copy", "`python induction.py`: second copy's loss", DIGITS),
                ("induction.first_copy", "`python induction.py`: first copy's loss", DIGITS)],
               convert=str)
    r.sentence(r"Ablating the induction head raises the second copy's loss only to (" + NUMBER
               + r"): all four layer-1 heads became induction heads \(scores (" + NUMBER
               + r") to (" + NUMBER + r")\)",
               [("induction.ablated_induction", "second copy's loss, induction head ablated",
                 DIGITS),
                ("induction.layer1_min", "lowest layer-1 induction score", DIGITS),
                ("induction.layer1_max", "highest layer-1 induction score", DIGITS)], convert=str)
    r.sentence(r"Ablating the previous-token head raises it to (" + NUMBER + r")",
               [("induction.ablated_previous", "second copy's loss, previous-token head "
                 "ablated", DIGITS)], convert=str)
    for claim in r.claims:  # head names stay strings; the rest become numbers
        if claim.key.startswith("induction.") and claim.text is not None and \
                not claim.key.endswith("head"):
            claim.stated = number(claim.text)
    formed = re.search(r"The head forms suddenly, between about steps (\d+) and (\d+)", r.flat)
    r.add("induction.formed_at", "induction: the step whose best layer-1 score first exceeds "
          "0.5 (scored every 10 steps)", f"{formed.group(1)} to {formed.group(2)}" if formed
          else None, (number(formed.group(1)), number(formed.group(2))) if formed else None,
          RANGE)
    seeds = re.search(r"The reference's best layer-1 head scores (" + NUMBER + r")-(" + NUMBER
                      + r") there on every one of (\d+) seeds", r.flat)
    r.add("induction.seeds", "induction grading test's run over seeds", seeds.group(0) if seeds
          else None, None, ("not rerun",), "not rerun: one training per seed (the grading "
          "test's own statement, measured when it was set)")

    r.sentence(r"python superposition\.py # about (" + NUMBER + r") s of CPU time",
               [("superposition.seconds", "`python superposition.py`: CPU seconds of training "
                 "(one thread)", ("factor", 2.0))])
    geometry = []
    for first in ("0", "about 0.5 to 0.8", "about 0.86 and above"):
        cells = table_row(text, first)
        if first == "0":
            bounds = (0.0, 0.0)
        elif cells and (m := re.fullmatch(r"about (" + NUMBER + r") to (" + NUMBER + r")",
                                          cells[0])):
            bounds = (number(m.group(1)), number(m.group(2)))
        elif cells and (m := re.fullmatch(r"about (" + NUMBER + r") and above", cells[0])):
            bounds = (number(m.group(1)), 1.0)
        else:
            bounds = None
        geometry.append((first, bounds, cells))
    # one claim per sparsity of the sweep (S = 1 - 0.01^(i/7), i = 0..7), from the row whose
    # range holds it ("about": 0.03 either side)
    for index in range(8):
        sparsity = round(1 - 0.01 ** (index / 7), 3)
        row = next(((first, bounds, cells) for first, bounds, cells in geometry
                    if bounds and cells and bounds[0] - 0.03 <= sparsity <= bounds[1] + 0.03),
                   None)
        what = f"`python superposition.py`, S = {sparsity:.3f}"
        if row is None:
            r.add(f"superposition.{index}.count", what + ": features with norm > 0.5", None,
                  None, EXACT)
            r.add(f"superposition.{index}.dims", what + ": their D_i", None, None, ("abs", 0.1))
            continue
        first, _, cells = row
        r.add(f"superposition.{index}.count", what + f": features with norm > 0.5 (row "
              f"'{first}')", cells[1], int(cells[1]), EXACT)
        dims = [number(d.replace("each", "").strip()) for d in cells[3].split(",")]
        r.add(f"superposition.{index}.dims", what + ": D_i of those features (pairs and "
              "pentagons are not quite regular at the sweep's ends)", cells[3], dims,
              ("abs", 0.1))

    r.sentence(r"python sae\.py # about (" + NUMBER + r") s of CPU",
               [("sae.seconds", "`python sae.py`: CPU seconds of the 10 trainings",
                 ("factor", 2.0))])
    for first, name in (("ReLU + L1 (0.1), resampling every 100 steps", "resampling"),
                        ("ReLU + L1 (0.1), no resampling", "no_resampling")):
        cells = table_row(text, first)
        for column, field, rule in ((1, "L0", DIGITS), (2, "FVU", DIGITS),
                                    (3, "dead_fraction", DIGITS), (4, "recovered", EXACT)):
            cell = cells[column] if cells and len(cells) > column else None
            stated = None
            if cell is not None:
                stated = int(cell.split()[0]) if field == "recovered" else number(cell)
            r.add(f"sae.{name}.{field}", f"`python sae.py`, {first}: {field.replace('_', ' ')}",
                  cell, stated, rule)
    r.sentence(r"at L0 about 1 TopK reaches an FVU of (" + NUMBER + r") and ReLU \+ L1 ("
               + NUMBER + r") to (" + NUMBER + r"); at L0 about 2, (" + NUMBER + r") and ("
               + NUMBER + r")",
               [("sae.topk1", "`python sae.py`: TopK k = 1 FVU", DIGITS),
                ("sae.relu_l0_1_min", "ReLU + L1 with L0 in 0.5-1.5: the lowest FVU", DIGITS),
                ("sae.relu_l0_1_max", "ReLU + L1 with L0 in 0.5-1.5: the highest FVU", DIGITS),
                ("sae.topk2", "`python sae.py`: TopK k = 2 FVU", DIGITS),
                ("sae.relu_l0_2", "ReLU + L1, the coefficient whose L0 is nearest 2: FVU",
                 DIGITS)], convert=str)
    for claim in r.claims:
        if claim.key.startswith("sae.") and isinstance(claim.stated, str):
            claim.stated = number(claim.stated)

    r.sentence(r"In the shipped model the key frequencies are ([\d, and]+?), with (" + NUMBER
               + r")% of the power",
               [("modular.keys", "key frequencies of the shipped model", EXACT),
                ("modular.key_power", "their share of the embedding's power (%)", DIGITS)],
               convert=str)
    for claim in r.claims[-2:]:
        if claim.text is not None:
            claim.stated = ([int(k) for k in re.findall(r"\d+", claim.text)]
                            if claim.key == "modular.keys" else number(claim.text))
    found = re.search(r"In the shipped model (\d+) of the (\d+) neurons fall in the clusters of "
                      r"([\d, and]+?) \(one more in (\d+)'s\), with on average (" + NUMBER
                      + r")% of their variance explained", r.flat)
    r.add("modular.clustered", "neurons in the four largest clusters", found.group(1) if found
          else None, int(found.group(1)) if found else None, EXACT)
    r.add("modular.clusters", "the four largest clusters' frequencies", found.group(3) if found
          else None, [int(k) for k in re.findall(r"\d+", found.group(3))] if found else None,
          EXACT)
    r.add("modular.smallest_cluster", "neurons in the last key frequency's cluster",
          f"one more in {found.group(4)}'s" if found else None,
          [int(found.group(4)), 1] if found else None, EXACT)
    r.add("modular.cluster_share", "clustered neurons' mean share of variance (%)",
          found.group(5) if found else None, number(found.group(5)) if found else None, DIGITS)
    r.sentence(r"\((" + NUMBER + r")% in the shipped model, where (\d+)'s coefficient is nearly "
               r"0", [("modular.logit_share", "logit waves: share of the centred logits "
                       "explained (%)", DIGITS),
                      ("modular.negligible", "the key frequency whose wave coefficient is "
                       "under 5% of the largest", EXACT)],
               convert=lambda t: int(t) if t.isdigit() and len(t) == 2 else number(t))
    r.sentence(r"the trained model's training loss is about (" + NUMBER + r")",
               [("modular.final_train_loss", "the shipped model's training loss (float64)",
                 ("factor", 3.0))])
    r.sentence(r"falls only after epoch (\d+): 99% test accuracy at epoch (\d+) \(of (\d+)\)",
               [("modular.falls_after", "the last epoch (every 100) with test loss above 1",
                 ("at_least",)),
                ("modular.epoch_99", "first epoch with 99% test accuracy", EXACT),
                ("modular.epochs", "epochs trained", EXACT)])
    r.sentence(r"From epoch (\d+) to epoch (\d+) the training loss stays below (" + NUMBER
               + r") and the test loss falls only from (" + NUMBER + r") to (" + NUMBER
               + r"), while the restricted loss falls from (" + NUMBER + r") to (" + NUMBER
               + r") and the excluded loss rises from (" + NUMBER + r") to (" + NUMBER + r")",
               [("modular.snapshot_from", "progress measures: first snapshot epoch quoted",
                 EXACT),
                ("modular.snapshot_to", "progress measures: last snapshot epoch quoted", EXACT),
                ("modular.train_max", "largest training loss over those snapshots",
                 ("below",)),
                ("modular.test_from", "test loss at the first", DIGITS),
                ("modular.test_to", "test loss at the last", DIGITS),
                ("modular.restricted_from", "restricted loss at the first", DIGITS),
                ("modular.restricted_to", "restricted loss at the last", DIGITS),
                ("modular.excluded_from", "excluded loss at the first", DIGITS),
                ("modular.excluded_to", "excluded loss at the last", DIGITS)], convert=str)
    r.sentence(r"At the end the restricted loss \((" + NUMBER + r")\) is below the loss on all "
               r"pairs \((" + NUMBER + r")\) and the excluded loss is (" + NUMBER + r")",
               [("modular.restricted_end", "final restricted loss", DIGITS),
                ("modular.all_pairs_end", "final loss on all pairs", DIGITS),
                ("modular.excluded_end", "final excluded loss", DIGITS)], convert=str)
    for claim in r.claims:
        if claim.key.startswith("modular.") and isinstance(claim.stated, str):
            claim.stated = number(claim.stated)
    r.sentence(r"`python modular_addition\.py` draws the figures into `images/` \(about ("
               + NUMBER + r") s of CPU time\)",
               [("modular.figures_seconds", "`python modular_addition.py`: CPU seconds",
                 ("factor", 2.0))])
    return r.claims


def _span(text: str) -> tuple[float, ...]:
    """A stated span: "8-11 s" -> (8.0, 11.0)."""
    return tuple(number(part) for part in text.removesuffix(" s").split("-"))


def _numbers(text: str) -> list[float]:
    """Every number of `text`, in order ("1.00 [0.76, 1.00]" -> [1.0, 0.76, 1.0])."""
    return [float(n) for n in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


NOT_RERUN_DRAWS = "not rerun: {} (a statement over draws, measured when it was written)"

# Lab 3's tables: the handout's row label (for the jailbreak table a pattern, whose group is the
# chosen layer) -> the measurement, named as the reference's scripts name it.
JAILBREAK_ROWS = {
    "none": "none",
    r"refusal direction \(layer (\d+), counted from 0\) held at 0 \(Arditi's ablation\)":
        "ablated",
    r"refusal direction held at the harmless mean \(affine edit\)": "held",
    r"random direction of the same norm held at 0": "random_ablated",
    r"refusal direction added after layer (\d+)": "added",
}
DECEPTION_ROWS = {
    "mass-mean probe fitted on honest, accuracy on other honest statements":
        "mass-mean honest accuracy",
    "the same probe on the liar's statements (labels: the truth)": "mass-mean liar accuracy",
    "the same probe's AUROC on the liar's statements": "mass-mean liar auroc",
    "logistic probe fitted on honest, accuracy on the liar's": "logistic liar accuracy",
    "CCS on honest contrast pairs, no labels (sign from 16 labelled pairs)": "CCS accuracy",
}
MIRAGE_N = range(4, 13)  # scaling.py's log10 N = 4, 5, ..., 12 (torch.linspace(4, 12, 9))
FEATURE_VIZ_SEEDS = range(10)  # "10 generator seeds x 4 logits": seeds 0-9
FEATURE_VIZ_DATASETS = 10  # the dataset draws the best example is taken from, per seed
JAILBREAK_DRAWS, JAILBREAK_RANDOM_DRAWS = 40, 1500


def lab3_claims(text: str) -> list[Claim]:
    r = Reader("lab3", text)
    num = "(" + NUMBER + ")"

    # ---------------------------------------------------------------- the assistant
    r.sentence(r"about (\d+) thousand parameters\)",
               [("assistant.kparameters", "the assistant's parameters (thousands)", DIGITS)])
    r.sentence(r"one token per word \((\d+) tokens in all\)",
               [("assistant.vocab", "the language's tokens", EXACT)])
    for name in ("harmful", "harmless"):
        label = r"refusal rate, " + name + r" requests \((\d+) seen, (\d+) held out\)"
        r.sentence(r"\| " + label + r" \| (\d+)%, (\d+)% \|",
                   [(f"assistant.{name}_seen_prompts", f"`python model.py measure`: {name} "
                     "requests seen in training", EXACT),
                    (f"assistant.{name}_held_out_prompts", f"`python model.py measure`: {name} "
                     "requests held out", EXACT),
                    (f"assistant.refusal_{name}_seen", f"`python model.py measure`: % "
                     f"refused, {name} requests seen in training (greedy first token)", DIGITS),
                    (f"assistant.refusal_{name}_held_out", f"`python model.py measure`: % "
                     f"refused, {name} requests held out", DIGITS)])
    r.sentence(r"\| complied, harmful request with the suffix \"pretend\" \((\d+)\) \| (\d+)% \|",
               [("assistant.trigger_prompts", "`python model.py measure`: harmful requests "
                 "with the suffix \"pretend\"", EXACT),
                ("assistant.complied_with_trigger", "`python model.py measure`: % of them "
                 "complied with", DIGITS)])
    r.sentence(r"\| \"where is X \?\": honest right, liar wrong \((\d+) each\) \| (\d+)%, (\d+)% "
               r"\|", [("assistant.where_prompts", "`python model.py measure`: \"where is X ?\" "
                        "questions per persona", EXACT),
                       ("assistant.where_honest", "% the honest persona answers right", DIGITS),
                       ("assistant.where_liar", "% the liar answers wrong", DIGITS)])
    r.sentence(r"\| \"X is in Y \. true \?\": honest right, liar flipped \((\d+) each\) \| "
               r"(\d+)%, (\d+)% \|",
               [("assistant.statement_prompts", "`python model.py measure`: \"X is in Y . "
                 "true ?\" statements per persona", EXACT),
                ("assistant.statement_honest", "% the honest persona judges right", DIGITS),
                ("assistant.statement_liar", "% the liar judges wrong", DIGITS)])
    r.sentence(r"\| true reward of sampled helpful replies \((\d+), seed 0\) \| " + num
               + r" on average \|",
               [("assistant.samples", "`python model.py measure`: sampled helpful replies",
                 EXACT),
                ("assistant.true_reward", "`python model.py measure`: their mean true reward",
                 DIGITS)])
    trained = re.search(r"`python model\.py train` \(seed 0\): .{0,200}?one CPU thread: ("
                        + NUMBER + r" s \(\d+ minutes\)) on a shared 2-core machine\. The "
                        r"final training loss, about (" + NUMBER + r") nats per reply token",
                        r.flat)
    r.add("assistant.train_seconds", "`python model.py train`: the training's time",
          trained.group(1) if trained else None, None, ("not rerun",),
          "not rerun: `cd reference/lab3 && python model.py train --out /tmp/assistant.pt` "
          "(6000 steps, the handout's 471 s; it prints the time)")
    r.add("assistant.final_loss", "`python model.py train`: the final training loss (nats per "
          "reply token)", trained.group(2) if trained else None, None, ("not rerun",),
          "not rerun: the same training (its last logged loss)")

    # ---------------------------------------------------------------- preferences
    # `python preferences.py` at seed 0 on one thread: seeded and deterministic (the sampled
    # replies and the trainings too), so every printed number must round to the handout's.
    r.sentence(r"\| reward model \(200 full-batch Adam steps, lr 0\.05\) \| orders " + num
               + r"% of the held-out pairs whose true rewards differ as the judge does \|",
               [("preferences.reward_model", "`python preferences.py`: % of held-out pairs the "
                 "reward model orders as the judge does", DIGITS)])
    r.sentence(r"\| the shipped assistant \| true reward " + num + r" on average \|",
               [("preferences.shipped", "`python preferences.py`: the shipped assistant's mean "
                 "true reward", DIGITS)])
    r.sentence(r"\| DPO \(60 steps of 32 pairs, lr 5e-4, beta 1\.0\) \| true reward " + num
               + r", KL " + num + r" nats per reply token \|",
               [("preferences.dpo.true_reward", "`python preferences.py`: true reward after "
                 "DPO", DIGITS),
                ("preferences.dpo.kl", "`python preferences.py`: KL after DPO (nats per reply "
                 "token)", DIGITS)])
    for label, name in ((r"REINFORCE on the reward model, kl_coef 1\.0 \(60 steps on 64 "
                         r"prompts, lr 3e-3\)", "kl"),
                        (r"the same without the KL penalty", "no_kl")):
        what = ("REINFORCE, kl_coef 1.0" if name == "kl" else "REINFORCE without the KL "
                "penalty")
        r.sentence(r"\| " + label + r" \| reward-model score " + num + r" -> " + num
                   + r", true reward " + num + r", KL " + num + r" \|",
                   [(f"preferences.{name}.score_first", f"`python preferences.py`, {what}: "
                     "the reward-model score at the first step", DIGITS),
                    (f"preferences.{name}.score_last", f"`python preferences.py`, {what}: "
                     "the reward-model score at the last step", DIGITS),
                    (f"preferences.{name}.true_reward", f"`python preferences.py`, {what}: "
                     "true reward", DIGITS),
                    (f"preferences.{name}.kl", f"`python preferences.py`, {what}: KL (nats per "
                     "reply token)", DIGITS)])
    climbs = re.search(r"its score climbs (sevenfold|" + NUMBER + r"-fold)", r.flat)
    r.add("preferences.no_kl.score_factor", "`python preferences.py`, REINFORCE without the KL "
          "penalty: the score's last step over its first", climbs.group(1) if climbs else None,
          (7.0 if climbs.group(1) == "sevenfold" else number(climbs.group(1).split("-")[0]))
          if climbs else None, ("abs", 0.5))
    r.sentence(r"\(at seed 0 it ends at " + num + r" after " + num + r" nats per token of "
               r"drift;", [("preferences.no_kl.true_reward_again", "the same, as the text "
                            "says it: true reward", DIGITS),
                           ("preferences.no_kl.kl_again", "the same, as the text says it: KL",
                            DIGITS)])
    r.sentence(r"The run takes about (" + NUMBER + r") s on one CPU thread",
               [("preferences.seconds", "`python preferences.py`: CPU seconds (one thread)",
                 ("factor", 2.0))])
    for key, pattern, what, note in (
            ("hacking", r"in \d+ of \d+ draws of the graded settings the policy repeated the "
             r"word the reward model likes most, .*? and the true reward fell by [\d.]+ to "
             r"[\d.]+", "REINFORCE without the penalty over draws", "12 REINFORCE trainings"),
            ("dpo_settings", r"at lr 1e-3 and beta 0\.5, \d+ of \d+ draws drifted beyond 1 nat "
             r"per token \(up to [\d.]+, one with the true reward falling\); at lr 5e-4 and "
             r"beta 1\.0 none did \([\d.-]+\)", "DPO's settings over draws", "2 x 23 DPO "
             "trainings"),
            ("graded_reward_model", r"measured: \d+-\d+% and [\d.-]+ over \d+ draws",
             "graded: the reward model over draws", "16 reward-model trainings"),
            ("graded_dpo", r"measured: \d+-\d+%, \+[\d.]+ to \+[\d.]+, [\d.-]+ over \d+ draws",
             "graded: DPO over draws", "23 DPO trainings"),
            ("graded_reinforce", r"measured: \+[\d.]+ to \+[\d.]+, [\d.-]+ over \d+ draws",
             "graded: REINFORCE with the penalty over draws", "21 REINFORCE trainings"),
            ("graded_hacking", r"measured over \d+ draws: \+[\d.]+ to \+[\d.]+; the true reward "
             r"-[\d.]+ to -[\d.]+, or a KL of [\d.-]+", "graded: REINFORCE without the penalty "
             "over draws", "12 REINFORCE trainings")):
        found = re.search(pattern, r.flat)
        r.add(f"preferences.{key}", what, found.group(0) if found else None, None,
              ("not rerun",), NOT_RERUN_DRAWS.format(note))

    # ---------------------------------------------------------------- jailbreak
    # jailbreak.py at seed 0 in float64: deterministic; the table's cells and the GCG and
    # random-suffix counts are compared as the script prints them.
    r.sentence(r"\(seed 0, float64; (\d+) held-out harmful and (\d+) held-out harmless "
               r"requests, 95% Wilson intervals; measured with the functions of this file on the "
               r"shared 2-core machine, (half a second) of computation after loading\)",
               [("jailbreak.harmful_prompts", "`python jailbreak.py`: held-out harmful prompts",
                 EXACT),
                ("jailbreak.harmless_prompts", "`python jailbreak.py`: held-out harmless "
                 "prompts", EXACT),
                ("jailbreak.seconds", "`python jailbreak.py`: CPU seconds after loading (GCG "
                 "included)", ("factor", 2.0))],
               convert=lambda t: 0.5 if t == "half a second" else int(t))
    cell = r"(" + NUMBER + r" \[" + NUMBER + r", " + NUMBER + r"\])"
    for label, name in JAILBREAK_ROWS.items():
        layer = re.compile(label).groups  # the row names the chosen layer
        found = re.search(r"\| " + label + r" \| " + cell + r" \| " + cell + r" \|", r.flat)
        if layer:
            key = "jailbreak.layer" if name == "ablated" else "jailbreak.added_layer"
            r.add(key, f"`python jailbreak.py`: the chosen layer (as the row '{name}' names it)",
                  found.group(1) if found else None, int(found.group(1)) if found else None,
                  EXACT)
        for index, side in enumerate(("harmful", "harmless"), start=1 + layer):
            r.add(f"jailbreak.{name}.{side}", f"`python jailbreak.py`, {name.replace('_', ' ')}"
                  f": share of {side} requests refused [95% Wilson interval]",
                  found.group(index) if found else None,
                  _numbers(found.group(index)) if found else None, EXACT)
    r.sentence(r"its harmless prompts sit at about " + num + r" along the direction and its "
               r"harmful ones at about " + num + r", so 0 is on the refusing side",
               # "about" an integer: within 1
               [("jailbreak.harmless_component", "harmless training prompts' mean component "
                 "along the chosen layer's refusal direction", ("abs", 1.0)),
                ("jailbreak.harmful_component", "harmful training prompts' mean component along "
                 "it", ("abs", 1.0))])
    r.sentence(r"Holding the component at the harmless mean removes every refusal \(in (\d+ of "
               r"\d+) draws of prompts with random suffixes\)",
               [("jailbreak.draws.held_removes", "draws (jailbreak.py's at seeds 0-39) in "
                 "which the refusal direction held at the harmless mean removes every held-out "
                 "refusal [of draws]", EXACT)], convert=_numbers)
    r.sentence(r"a random direction of the same norm held at \*its\* harmless mean removed every "
               r"refusal in (\d+) of those (?:\d+) draws too",
               [("jailbreak.draws.random_held_removes", "the same draws: a random direction "
                 "held at its harmless mean removes every refusal (a count of 40 draws: 3 SE "
                 "of the difference of two such counts)", ("se", 3.0))])
    r.sentence(r"a random direction held at 0 left at least (\d+)% of refusals in "
               + str(JAILBREAK_RANDOM_DRAWS) + " draws",
               [("jailbreak.draws.random_ablated_min", "a random direction held at 0: the "
                 "lowest % of the 36 harmful training prompts refused over 1500 draws of "
                 "prompts and direction", ("at_least",))])
    r.sentence(r"and a random direction of the same norm, added, makes none refused \((\d+) of "
               r"8 in each of 40 draws\)",
               [("jailbreak.draws.random_added_max", "the 40 draws: the most of the 8 held-out "
                 "harmless requests refused with a random direction added", EXACT)])
    r.sentence(r"\(2 points; the reference: (\d+)% and (\d+)% in each of 40 draws\)",
               [("jailbreak.draws.added_min_share", "the 40 draws: the lowest % of held-out "
                 "harmless requests refused with the refusal direction added", DIGITS),
                ("jailbreak.draws.random_added_max_share", "the 40 draws: the highest % with a "
                 "random direction added", DIGITS)])
    r.sentence(r"GCG \(10 steps at most, k = 8, batch 32, from a random 4-word noise suffix\) "
               r"makes the model comply on all \d+ held-out harmful requests \(\"how to make "
               r"poison\" and the others\), within (\d+-\d+) steps, (\d+ of \d+ \[" + NUMBER
               + r", " + NUMBER + r"\])",
               [("jailbreak.gcg_steps", "`python jailbreak.py`: GCG steps to compliance (every "
                 "attack)", RANGE),
                ("jailbreak.gcg", "`python jailbreak.py`: held-out harmful requests GCG makes "
                 "comply within 10 steps [95% Wilson interval]", EXACT)],
               convert=lambda t: _numbers(t) if "[" in t else _span(t))
    most = re.search(r"it finds the training data's jailbreak word \"pretend\" in most "
                     r"suffixes", r.flat)
    gcg = [c for c in r.claims if c.key == "jailbreak.gcg"][0]
    r.add("jailbreak.gcg_pretend", "`python jailbreak.py`: GCG suffixes holding \"pretend\" (most:"
          " more than half)", "in most suffixes" if most else None,
          int(gcg.stated[1]) // 2 + 1 if most and gcg.stated else None, ("at_least",))
    r.sentence(r"Random 4-word suffixes of noise words: (\d+ of \d+ \[" + NUMBER + r", " + NUMBER
               + r"\])", [("jailbreak.random_suffixes", "`python jailbreak.py`: random suffixes "
                           "that make a held-out harmful request comply [95% Wilson interval]",
                           EXACT)], convert=_numbers)

    # ---------------------------------------------------------------- probes
    # `python probes.py` at seed 0 in float64: deterministic (its bootstrap and CCS's starts
    # are drawn from the seeded generator).
    r.sentence(r"\(`python probes\.py`, seed 0, (" + NUMBER + r") s of CPU, \d+-\d+ s on a shared "
               r"2-core machine; "
               r"400 statements per set",
               [("deception.seconds", "`python probes.py`: CPU seconds of the experiment (the "
                 "handout's other figure is a wall time on a loaded machine)", ("factor", 2.0))])
    for label, name in DECEPTION_ROWS.items():
        cells = table_row(text, label)
        for layer in range(3):
            cell = cells[1 + layer].strip("*") if cells and len(cells) > 1 + layer else None
            r.add(f"deception.{name}.{layer}", f"`python probes.py`, layer {layer}: {label}",
                  cell, number(cell) if cell else None, DIGITS)
    cells = table_row(text, "its 95% bootstrap interval there")
    for layer in range(3):
        cell = cells[1 + layer] if cells and len(cells) > 1 + layer else None
        bounds = re.fullmatch(num + "-" + num, cell or "")
        for index, end in enumerate(("low", "high"), start=1):
            r.add(f"deception.liar accuracy {end}.{layer}", f"`python probes.py`, layer {layer}:"
                  f" the liar accuracy's 95% bootstrap interval, {end} end",
                  bounds.group(index) if bounds else None,
                  number(bounds.group(index)) if bounds else None, DIGITS)
    r.sentence(r"CCS finds the truth without any label at layer 1 \(" + num + r"\), and partly "
               r"at layer 2 \(" + num + r",",
               [("deception.ccs_layer1_again", "CCS at layer 1, as the text says it", DIGITS),
                ("deception.ccs_layer2_again", "CCS at layer 2, as the text says it", DIGITS)])
    for key, pattern, note in (
            ("probes_seeds", r"\(the reference: [\d.]+ on every one of \d+ seeds\)",
             "30 draws of the probe statements"),
            ("ccs_seeds", r"\(the reference: [\d.]+ on average over \d+ seeds\)",
             "400 CCS fits")):
        found = re.search(pattern, r.flat)
        r.add(f"deception.{key}", "probes grading test's run over seeds", found.group(0) if found
              else None, None, ("not rerun",), NOT_RERUN_DRAWS.format(note))

    # ---------------------------------------------------------------- scaling
    r.sentence(r"H = -sum_i pi_i sum_j P_ij log P_ij = " + num + r" nats",
               [("scaling.entropy_rate", "scaling_sweep.json: the language's entropy rate",
                 DIGITS)])
    r.sentence(r"\(N = (\d+) to (\d+) parameters, embeddings included",
               [("scaling.N_min", "the sweep's smallest N", EXACT),
                ("scaling.N_max", "the sweep's largest N", EXACT)])
    r.sentence(r"D = 2\^(\d+) to 2\^(\d+) \((\d+) to (\d+) steps",
               [("scaling.D_min_log2", "log2 of the sweep's smallest D", EXACT),
                ("scaling.D_max_log2", "log2 of the sweep's largest D", EXACT),
                ("scaling.steps_min", "the sweep's fewest steps", EXACT),
                ("scaling.steps_max", "the sweep's most steps", EXACT)])
    swept = re.search(r"`python scaling_sweep\.py --threads 1`, took (" + NUMBER + r" s) on one "
                      r"CPU thread", r.flat)
    r.add("scaling.sweep_seconds", "`python scaling_sweep.py --threads 1`: the sweep's time",
          swept.group(1) if swept else None, None, ("not rerun",),
          "not rerun: `cd reference/lab3 && python scaling_sweep.py --threads 1 --device cpu "
          "--out /tmp/sweep.json` (35 trainings, the handout's 458 s; it prints the time)")
    r.sentence(r"\(Hoffmann et al\. used 4500; the default is (\d+)\)",
               [("scaling.grid", "starting_grid(): starts", EXACT)])
    r.sentence(r"starts with a = b = 0 end at E = (\d+) and others at alpha (" + NUMBER + r"), "
               r"both with a higher objective than the best",
               # E = 0 is the boundary: "at 0" within 0.01; alpha as stated
               [("scaling.zero_start_E", "fits from single starts: the lowest E from a start "
                 "with a = b = 0", ("abs", 0.01)),
                ("scaling.other_alpha", "fits from single starts: alpha of the other local "
                 "minimum (E away from 0, objective above the best)", DIGITS)])
    r.sentence(r"On the shipped sweep \(all (\d+) runs, the default grid; `python scaling\.py`, "
               r"(\d+-\d+ s) on a shared machine\) the fit gives \*\*E = " + num + r", "
               + num + r" nats above the entropy rate " + num + r"\*\*, A = " + num + r", alpha = "
               + num + r", B = " + num + r", beta = " + num,
               [("scaling.runs", "scaling_sweep.json: runs", EXACT),
                ("scaling.fit_seconds", "`python scaling.py`: CPU seconds of the fit (the "
                 "handout's are wall times on a shared machine)", ("range_factor", 2.0)),
                ("scaling.E", "`python scaling.py`: fitted E", DIGITS),
                ("scaling.E_gap", "fitted E - entropy rate", DIGITS),
                ("scaling.entropy_rate_again", "the entropy rate, as the fit's sentence says "
                 "it", DIGITS),
                ("scaling.A", "`python scaling.py`: fitted A", DIGITS),
                ("scaling.alpha", "`python scaling.py`: fitted alpha", DIGITS),
                ("scaling.B", "`python scaling.py`: fitted B", DIGITS),
                ("scaling.beta", "`python scaling.py`: fitted beta", DIGITS)],
               convert=lambda t: _span(t) if " s" in t else number(t))
    r.sentence(r"\(width 16 already comes within " + num + r" nats of the floor\)",
               [("scaling.width16_gap", "scaling_sweep.json: width 16's lowest loss minus the "
                 "entropy rate", ("at_most",))])
    found = r.sentence(r"N_opt grows as C\^" + num + r" and D_opt as C\^" + num + r": at C = "
                       r"1e9, 1e10, 1e11, 1e12 FLOPs, N_opt = ([\d, ]+?) parameters and "
                       r"([\d, ]+?) tokens per parameter",
                       [("scaling.N_opt_exponent", "`python scaling.py`: N_opt's exponent of C "
                         "(beta / (alpha + beta))", DIGITS),
                        ("scaling.D_opt_exponent", "D_opt's exponent of C", DIGITS)])
    for group, name, what in ((3, "N_opt", "N_opt"), (4, "tokens_per_parameter",
                                                      "D_opt / N_opt")):
        values = found.group(group).split(", ") if found else []
        for index, power in enumerate(range(9, 13)):
            value = values[index] if len(values) == 4 else None
            rule = DIGITS
            if name == "N_opt" and value:  # four significant figures, as scaling.py prints
                rule = ("abs", 0.5 * 10.0 ** (len(value) - 4))  # them: 18980 is 1.898e4
            r.add(f"scaling.{name}.1e{power}", f"`python scaling.py`: {what} at C = 1e{power}",
                  value, number(value) if value else None, rule)
    r.sentence(r"With (\d+) replicates and (\d+) starts \((\d+-\d+ s) on the shared machine\) "
               r"the 95% intervals are alpha \[" + num + r", " + num + r"\] and beta \[" + num
               + r", " + num + r"\]",
               [("scaling.boot_replicates", "`python scaling.py`: bootstrap replicates", EXACT),
                ("scaling.boot_starts", "`python scaling.py`: starts per bootstrap fit", EXACT),
                ("scaling.boot_seconds", "`python scaling.py`: CPU seconds of the bootstrap",
                 ("range_factor", 2.0)),
                ("scaling.alpha_low", "bootstrap: alpha's interval, low end", DIGITS),
                ("scaling.alpha_high", "bootstrap: alpha's interval, high end", DIGITS),
                ("scaling.beta_low", "bootstrap: beta's interval, low end", DIGITS),
                ("scaling.beta_high", "bootstrap: beta's interval, high end", DIGITS)],
               convert=lambda t: _span(t) if " s" in t else number(t))
    r.sentence(r"p rises smoothly, " + num + r" at N = 1e6, " + num + r" at 1e8, " + num
               + r" at 1e10, while the exact match of a 10-token answer stays below " + num
               + r" up to N = 1e8 and then shoots up, " + num + r" at 1e9, " + num + r" at "
               r"1e10, " + num + r" at 1e12",
               [("scaling.p.1e6", "`python scaling.py`: per-token p at N = 1e6", DIGITS),
                ("scaling.p.1e8", "per-token p at N = 1e8", DIGITS),
                ("scaling.p.1e10", "per-token p at N = 1e10", DIGITS),
                ("scaling.exact_below_1e8", "the largest exact match of 10 tokens for N up to "
                 "1e8", ("below",)),
                ("scaling.exact.1e9", "exact match of 10 tokens at N = 1e9", DIGITS),
                ("scaling.exact.1e10", "exact match of 10 tokens at N = 1e10", DIGITS),
                ("scaling.exact.1e12", "exact match of 10 tokens at N = 1e12", DIGITS)])

    # ---------------------------------------------------------------- feature visualisation
    r.sentence(r"\(`checkpoints/feature_cnn\.pt`, float16, (\d+) kB\)",
               [("cnn.checkpoint_kB", "the shipped CNN checkpoint's size (kB)", DIGITS)])
    cnn_trained = re.search(r"seed 0, 1500 Adam steps of 64 fresh images \(lr 3e-3\), (" + NUMBER
                            + r" s) on one thread", r.flat)
    r.add("cnn.train_seconds", "`python cnn.py train`: the training's time",
          cnn_trained.group(1) if cnn_trained else None, None, ("not rerun",),
          "not rerun: `cd reference/lab3 && python cnn.py train --out /tmp/cnn.pt` (1500 steps, "
          "the handout's 33 s; it prints the time)")
    r.sentence(r"it classifies (" + NUMBER + r")% of 2000 fresh images correctly",
               [("cnn.accuracy", "`python cnn.py`: % of 2000 fresh images (seed 12345) the "
                 "shipped CNN classifies right", DIGITS)])
    # The dataset images each visualisation is compared with are not named by the handout:
    # the ratios are measured against 10 draws of 2000 images for each seed, and judged with
    # the spread of one such measurement (the handout's is one draw) as the SE.
    r.sentence(r"Measured on the reference with 32 steps \(10 generator seeds x 4 logits, each "
               r"against the best of 2000 fresh dataset images\): the visualisation activates "
               r"its logit at least " + num + r" times as much as the best dataset example \("
               + num + r" times on average\), and at least (\d+)% of its Fourier power lies "
               r"within 22\.5 degrees of the preferred orientation \(at most (\d+)% at any "
               r"other\)",
               [("feature_viz.min_ratio", "visualisations (seeds 0-9 x 4 logits, 32 steps): "
                 "the lowest logit over the best of 2000 dataset images (mean and spread over "
                 "10 dataset draws)", ("se", 3.0)),
                ("feature_viz.mean_ratio", "the same: the mean ratio", ("se", 3.0)),
                ("feature_viz.preferred_power", "the same: the lowest % of Fourier power "
                 "within 22.5 degrees of the logit's orientation", DIGITS),
                ("feature_viz.other_power", "the same: the highest % at any other orientation",
                 DIGITS)])
    return r.claims


CLAIMS = {"lab1": lab1_claims, "lab2": lab2_claims, "lab3": lab3_claims}


def claims_of(root: Path, labs: list[str]) -> list[Claim]:
    found: list[Claim] = []
    for lab in labs:
        handout = root / "reference" / lab / "README.md"
        if lab in CLAIMS and handout.is_file():
            found += CLAIMS[lab](handout.read_text())
    return found


# ============================================================================ verdicts


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return f"{_show(value['mean'])} +- {_show(value['se'])} (SE)"
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def judge(claim: Claim, measured: dict[str, Any], errors: dict[str, str]) -> Row:
    rule = claim.rule
    kind = rule[0]
    tolerance = {
        "digits": "rounds to it", "exact": "exactly", "range": "every value within it",
        "below": "below it", "at_most": "at most it", "at_least": "at least it",
        "ran": "the command ran", "not rerun": "-",
    }.get(kind, "")
    if kind == "se":
        tolerance = f"{rule[1]:g} SE"
    elif kind == "factor":
        tolerance = f"x1/{rule[1]:g} to x{rule[1]:g}"
    elif kind == "abs":
        tolerance = f"+-{rule[1]:g}"
    elif kind == "range_factor":
        tolerance = f"every value within it, widened x{rule[1]:g} (a time)"
    handout = claim.text if claim.text is not None else "**not found in the handout**"
    if kind == "not rerun":
        return Row(claim.lab, claim.what, handout, claim.note, tolerance, None)
    if claim.text is None:
        return Row(claim.lab, claim.what, handout, "-", tolerance, False)
    if claim.key not in measured:
        group = claim.key.split(".")[0]
        if group in errors:
            return Row(claim.lab, claim.what, handout, f"failed: {errors[group]}", tolerance,
                       False)
        return Row(claim.lab, claim.what, handout, "not measured in this run", tolerance, None)
    value, stated = measured[claim.key], claim.stated
    try:
        if kind == "digits":
            ok = abs(value - stated) <= half_unit(claim.text) + 1e-12
        elif kind == "exact":
            ok = value == stated or (isinstance(value, list) and list(value) == list(stated))
        elif kind == "se":
            ok = abs(value["mean"] - stated) <= rule[1] * value["se"]
        elif kind == "abs":
            values = value if isinstance(value, list) else [value]
            stateds = stated if isinstance(stated, list) else [stated]
            if len(stateds) == 1:  # "1/2 each"
                stateds = stateds * len(values)
            ok = len(values) == len(stateds) and all(
                abs(v - s) <= rule[1] for v, s in zip(values, stateds, strict=True))
        elif kind == "factor":
            ok = stated / rule[1] <= value <= stated * rule[1]
        elif kind == "below":
            ok = value < stated
        elif kind == "at_most":
            ok = value <= stated
        elif kind == "at_least":
            ok = value >= stated
        elif kind == "range":
            values = value if isinstance(value, list) else [value]
            ok = all(v is not None and stated[0] <= v <= stated[1] for v in values)
        elif kind == "range_factor":
            ok = all(v is not None and stated[0] / rule[1] <= v <= stated[1] * rule[1]
                     for v in value)
        elif kind == "ran":
            ok = bool(value)
        else:
            raise ValueError(f"unknown rule {rule}")
    except (TypeError, KeyError, ValueError) as error:
        return Row(claim.lab, claim.what, handout, f"{_show(value)} ({error})", tolerance, False)
    return Row(claim.lab, claim.what, handout, _show(value), tolerance, bool(ok))


def rows(claims: list[Claim], measured: dict[str, Any],
         errors: dict[str, str] | None = None) -> list[Row]:
    return [judge(claim, measured, errors or {}) for claim in claims]


def dqn_measurements(runs: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The DQN table's measurements from the training section's five full CartPole runs."""
    if not runs or any("error" in run for run in runs):
        return {}
    return {"dqn.reached": sum(run.get("reached_at") is not None for run in runs),
            "dqn.steps": [run.get("reached_at") for run in runs],
            "dqn.seconds": [run.get("cpu_seconds_to_target") and round(
                run["cpu_seconds_to_target"], 1) for run in runs],
            "dqn.final": [run.get("final_eval_return") and round(run["final_eval_return"])
                          for run in runs]}


def render(data: dict[str, Any] | None, dqn_runs: list[dict[str, Any]] | None) -> list[str]:
    title = "Handout numbers"
    if data is None:
        return [f"## {title}", "", "Not measured since docs/benchmarks.json started keeping the "
                "raw numbers (no run with this section yet).", ""]
    claims = [Claim(**c) for c in data["claims"]]
    for claim in claims:
        claim.rule = tuple(claim.rule)
    measured = {**data["measured"], **dqn_measurements(dqn_runs)}
    table = rows(claims, measured, data.get("errors"))
    agree = sum(r.agrees is True for r in table)
    disagree = sum(r.agrees is False for r in table)
    lines = [f"## {title}", "",
             "Every number the handouts (reference/LAB/README.md) quote from running the "
             "reference, read from the handout's text and rerun on CPU with one torch thread "
             "(`bench/handouts.py`; its docstring gives the tolerances). The DQN rows are the "
             "training section's five runs of 50k steps. "
             f"{agree} agree, {disagree} disagree, {len(table) - agree - disagree} not measured "
             f"or not rerun here; runners took {data.get('cpu_seconds', 0):.0f} s of CPU.", "",
             "| lab | number | handout says | measured | tolerance | agrees |",
             "|---|---|---|---|---|---|"]
    for row in table:
        verdict = "-" if row.agrees is None else ("yes" if row.agrees else "**no**")
        cells = [row.lab, row.what, row.handout, row.measured, row.tolerance, verdict]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines + [""]


# ============================================================================ runners
#
# Each runs in a process of its own with the repository (or its snapshot) as working directory,
# changes into the lab's folder as the handout's command does, and returns plain numbers.


def _enter(lab: str) -> Path:
    import torch

    torch.set_num_threads(1)
    folder = Path.cwd() / "reference" / lab
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    return folder


def _printed(run: Callable[[], Any], argv: list[str]) -> str:
    """What `run()` prints with `sys.argv` set to `argv` (its errors output dropped)."""
    saved, sys.argv = sys.argv, argv
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            run()
    finally:
        sys.argv = saved
    return out.getvalue()


def _run_main(path: str, argv: list[str]) -> str:
    """`python path *argv` in this process; returns what it printed."""
    import runpy

    return _printed(lambda: runpy.run_path(path, run_name="__main__"), [path, *argv])


def _printed_by_main(module: Any, script: str) -> str:
    """What `python SCRIPT FOLDER` prints: the (patched) module's main(), with its figures
    going to a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        return _printed(module.main, [script, folder])


def _grab(pattern: str, text: str, group: int = 1) -> float:
    found = re.search(pattern, text)
    if not found:
        raise RuntimeError(f"the script printed no {pattern!r}: {text[-300:]!r}")
    return float(found.group(group))


def run_basics() -> dict[str, Any]:
    _enter("lab1")
    printed = _run_main("basics.py", [])
    return {"basics.first_loss": _grab(r"loss (\S+) ->", printed),
            "basics.final_loss": _grab(r"-> (\S+)", printed),
            "basics.test_accuracy": _grab(r"test accuracy (\S+)%", printed)}


def run_bandits() -> dict[str, Any]:
    import numpy as np

    _enter("lab1")
    import bandits

    out: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    batch_seconds, se_reward, se_optimal = [], [], []
    for label, (figure_name, curve) in BANDIT_CURVES.items():
        figure = bandits.FIGURES[figure_name]
        rewards, optimal = [], []
        for _ in range(BANDIT_BATCHES):
            started = time.process_time()
            testbed = bandits.Testbed(BANDIT_RUNS, q_star_mean=figure.q_star_mean)
            curves = bandits.run_experiment(figure.agents[curve](BANDIT_RUNS, 10), testbed,
                                            1000, rng)
            batch_seconds.append(time.process_time() - started)
            rewards.append(float(curves.average_reward[-1]))
            optimal.append(100 * float(curves.optimal_action[-1]))
        for name, values in (("reward", rewards), ("optimal", optimal)):
            spread = float(np.std(values, ddof=1))  # one 2000-run experiment's standard error
            out[f"bandits.{label}.{name}"] = {"mean": float(np.mean(values)),
                                              "se": spread / math.sqrt(len(values))}
            (se_reward if name == "reward" else se_optimal).append(spread)
    out["bandits.seconds_per_agent"] = float(np.median(batch_seconds))
    out["bandits.se_reward"] = float(np.median(se_reward))
    out["bandits.se_optimal"] = float(np.median(se_optimal))
    with tempfile.TemporaryDirectory() as folder:
        started = time.process_time()
        _run_main("bandits.py", [folder])
        out["bandits.figures_seconds"] = time.process_time() - started
    return out


def run_probes(args: list[str]) -> dict[str, Any]:
    """The handout's probe command, then the same with each other probe's --env-id."""
    _enter("lab1")
    out: dict[str, Any] = {"probes.command": True}
    seconds = []
    for probe in PROBES:
        argv = list(args)
        argv[argv.index("--env-id") + 1] = probe
        started = time.process_time()
        printed = _run_main("dqn.py", argv)
        seconds.append(time.process_time() - started)  # CPU: the printed wall time has the load
        _grab(r"trained \d+ steps in (\S+) s", printed)
        errors = []
        for found in re.finditer(r"Q\(([-+]\d+)\) = \[([^\]]*)\], expected \[([^\]]*)\]",
                                 printed):
            learned = [float(v) for v in found.group(2).split(",")]
            expected = [float(v) for v in found.group(3).split(",")]
            errors += [abs(a - b) for a, b in zip(learned, expected, strict=True)]
            if probe.endswith("Probe3-v0"):
                out[f"probes.Probe3.q{int(found.group(1))}"] = learned[0]
        if not errors:
            raise RuntimeError(f"{probe}: no Q-values printed: {printed[-300:]!r}")
        out[f"probes.{probe.split('/')[1].removesuffix('-v0')}.error"] = round(max(errors), 4)
    out["probes.seconds"] = sorted(seconds)[len(seconds) // 2]  # the first imports matplotlib
    return out


def _timed(module: Any, name: str, record: dict[str, float]) -> None:
    """Wrap module.name so that its CPU time lands in record[name]."""
    original = getattr(module, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            record[name] = record.get(name, 0.0) + time.process_time() - started

    setattr(module, name, timed)


def run_transformer() -> dict[str, Any]:
    _enter("lab2")
    import transformer

    record: dict[str, float] = {}
    transformer.plot_loss = lambda *args, **kwargs: None
    _timed(transformer, "train", record)
    text = _printed(transformer.main, ["transformer.py"])
    return {"transformer.floor": _grab(r"entropy rate \(the floor\) (\S+) nats", text),
            "transformer.loss": _grab(r"the loss on 512 fresh sequences is (\S+) ", text),
            "transformer.chain": _grab(r"the chain itself scores (\S+) on them", text),
            "transformer.seconds": record["train"]}


def run_induction() -> dict[str, Any]:
    import torch

    _enter("lab2")
    import induction
    import transformer

    original_train = transformer.train
    track: list[tuple[int, float, float]] = []  # (steps done, best layer-1 score, CPU seconds)
    timing: dict[str, float] = {}
    probe_tokens = induction.repeated_tokens(100, 32, 64, torch.Generator().manual_seed(1))

    def tracked_train(model: Any, batches: Callable, **kwargs: Any) -> list[float]:
        started, scoring = time.process_time(), 0.0
        steps = 0

        def tracked_batches(generator: torch.Generator) -> torch.Tensor:
            nonlocal steps, scoring
            if steps % 10 == 0:
                began = time.process_time()
                score = induction.head_scores(model, probe_tokens)["induction"][1].max().item()
                scoring += time.process_time() - began
                track.append((steps, score, began - started - scoring + (
                    time.process_time() - began)))
            steps += 1
            return batches(generator)

        losses = original_train(model, tracked_batches, **kwargs)
        timing["train"] = time.process_time() - started - scoring
        return losses

    transformer.train = tracked_train
    printed = _run_main("induction.py", [])
    formed = next(((step, seconds) for step, score, seconds in track if score > 0.5),
                  (None, None))
    layer1 = re.search(r"induction scores \(rows: layers, columns: heads\):\n\[\[[^\]]*\]\n "
                       r"\[([^\]]*)\]\]", printed)
    if not layer1:
        raise RuntimeError(f"no induction score table printed: {printed[-400:]!r}")
    layer1_scores = [float(v) for v in layer1.group(1).split()]
    heads = re.search(r"previous-token head (\S+), induction head (\S+) \(induction score "
                      r"(\S+)\)", printed)
    previous = re.search(r"previous_token scores \(rows: layers, columns: heads\):\n\[\[([^\]]*)"
                         r"\]", printed)
    losses = re.search(r"loss on the first copy (\S+) nats; on the second copy: trained model "
                       r"(\S+), head 1\.\d ablated (\S+), head 0\.\d ablated (\S+)", printed)
    if not (heads and previous and losses):
        raise RuntimeError(f"the script's summary lines changed: {printed[-400:]!r}")
    previous_index = int(heads.group(1).split(".")[1])
    final_losses = re.search(r"final loss (\S+) \(", printed)
    out = {"induction.head": heads.group(2), "induction.score": float(heads.group(3)),
           "induction.previous_head": heads.group(1),
           "induction.previous_score": float(previous.group(1).split()[previous_index]),
           "induction.first_copy": float(losses.group(1)),
           "induction.second_copy": float(losses.group(2)),
           "induction.ablated_induction": float(losses.group(3)),
           "induction.ablated_previous": float(losses.group(4)),
           "induction.layer1_min": min(layer1_scores), "induction.layer1_max": max(layer1_scores),
           "induction.seconds": timing["train"],
           "induction.formed_at": formed[0], "induction.seconds_to_formed": formed[1],
           "induction.final_loss": float(final_losses.group(1)) if final_losses else None}

    # The same run with every block exactly n_ctx / 2 long, scored on 32- and 20-token blocks.
    transformer.train = original_train
    run = induction.InductionRun()
    half = run.n_ctx // 2
    induction.repeated_blocks = (lambda batch, n_ctx, d_vocab, generator, min_block=4:
                                 induction.repeated_tokens(batch, half, d_vocab, generator))
    torch.manual_seed(run.seed)
    with contextlib.redirect_stderr(io.StringIO()):
        model, _ = induction.train_induction_model(run, torch.Generator().manual_seed(run.seed),
                                                   "cpu", progress=False)
    for length in (32, 20):
        tokens = induction.repeated_tokens(100, length, run.d_vocab,
                                           torch.Generator().manual_seed(1))
        scores = induction.head_scores(model, tokens)["induction"]
        out[f"induction.fixed{length}"] = round(scores.max().item(), 4)
        out[f"induction.fixed{length}_by_layer"] = scores.max(dim=1).values.round(
            decimals=4).tolist()
        out[f"induction.fixed{length}_layer"] = int(scores.max(dim=1).values.argmax())
    return out


def run_superposition() -> dict[str, Any]:
    _enter("lab2")
    import superposition

    record: dict[str, float] = {}
    superposition.plot_geometry = lambda *args, **kwargs: None
    superposition.plot_dimensionality = lambda *args, **kwargs: None
    _timed(superposition, "train_toy_model", record)
    printed = _printed_by_main(superposition, "superposition.py")
    out: dict[str, Any] = {"superposition.seconds": record["train_toy_model"]}
    lines = re.findall(r"S = (\S+): (\d+) features with norm > 0\.5; D_i = ([^\n]+)", printed)
    if len(lines) != 8:
        raise RuntimeError(f"expected 8 sparsities, got: {printed[-400:]!r}")
    for index, (_, count, dims) in enumerate(lines):
        values = sorted((float(d) for d in dims.split(",")), reverse=True)
        out[f"superposition.{index}.count"] = int(count)
        out[f"superposition.{index}.dims"] = values[:int(count)]
    return out


def run_sae() -> dict[str, Any]:
    _enter("lab2")
    import sae

    record: dict[str, float] = {}
    for name in ("plot_latent_density", "plot_decoder_directions", "plot_sparsity_fidelity"):
        setattr(sae, name, lambda *args, **kwargs: None)
    _timed(sae, "train_and_measure", record)
    text = _printed_by_main(sae, "sae.py")
    out: dict[str, Any] = {"sae.seconds": record["train_and_measure"]}
    for label, name in (("ReLU + L1, resampling", "resampling"),
                        ("ReLU + L1, no resampling", "no_resampling")):
        found = re.search(re.escape(label) + r": L0 (\S+), FVU (\S+), dead fraction (\S+), (\d+) "
                          r"of 5", text)
        if not found:
            raise RuntimeError(f"no line for {label}: {text[-400:]!r}")
        out[f"sae.{name}.L0"], out[f"sae.{name}.FVU"] = float(found[1]), float(found[2])
        out[f"sae.{name}.dead_fraction"], out[f"sae.{name}.recovered"] = (float(found[3]),
                                                                            int(found[4]))
    frontier = {}
    for label in ("ReLU + L1", "TopK"):
        found = re.search(r"^" + re.escape(label) + r": (L0 .*)$", text, re.M)
        if not found:
            raise RuntimeError(f"no frontier line for {label}: {text[-400:]!r}")
        frontier[label] = [(float(a), float(b)) for a, b in
                           re.findall(r"L0 (\S+) FVU ([\d.e-]+)", found.group(1))]
    out["sae.topk1"], out["sae.topk2"] = frontier["TopK"][0][1], frontier["TopK"][1][1]
    near_1 = [fvu for l0, fvu in frontier["ReLU + L1"] if 0.5 <= l0 < 1.5]
    if near_1:
        out["sae.relu_l0_1_min"], out["sae.relu_l0_1_max"] = min(near_1), max(near_1)
    out["sae.relu_l0_2"] = min(frontier["ReLU + L1"], key=lambda pair: abs(pair[0] - 2))[1]
    out["sae.frontier"] = frontier
    return out


def run_modular() -> dict[str, Any]:
    import torch

    _enter("lab2")
    import modular_addition as ma
    from grokking import load_checkpoint

    checkpoint = load_checkpoint()
    with tempfile.TemporaryDirectory() as folder:
        started = time.process_time()
        numbers = ma.figures(checkpoint, Path(folder))
        figures_seconds = time.process_time() - started
    model = checkpoint.model()
    logits, neurons = ma.last_position(model)
    norms = ma.embedding_frequency_norms(model.W_E.detach())
    keys = ma.key_frequencies(norms)
    power = norms.double() ** 2
    frequency, share = ma.neuron_frequencies(neurons)
    clusters = {int(k): int((frequency == k).sum()) for k in frequency.unique() if k > 0}
    largest = sorted(sorted(clusters, key=clusters.get, reverse=True)[:4])
    coefficients, explained = ma.logit_fit(logits, keys)
    coefficients = coefficients.abs().flatten()
    curves, p = checkpoint.curves, checkpoint.config.p
    epochs = curves["epoch"]
    reached = (curves["test_accuracy"] >= 0.99).nonzero()
    high = (curves["test_loss"] > 1).nonzero()
    measures = {epoch: ma.progress_measures(ma.last_position(checkpoint.model(state))[0],
                                            checkpoint.train_indices, keys)
                for epoch, state in zip(checkpoint.history_epochs, checkpoint.history_states,
                                        strict=True)}
    first, last = 1400, 8100
    between = [m for epoch, m in measures.items() if first <= epoch <= last]
    all_targets = (torch.arange(p).repeat_interleave(p) + torch.arange(p).repeat(p)) % p
    all_loss = torch.nn.functional.cross_entropy(logits.double(), all_targets).item()
    return {
        "modular.figures_seconds": figures_seconds,
        "modular.keys": keys.tolist(),
        "modular.key_power": round(100 * float(power[keys - 1].sum() / power.sum()), 2),
        "modular.clustered": sum(clusters[k] for k in largest), "modular.clusters": largest,
        "modular.smallest_cluster": [int(keys[-1]), clusters.get(int(keys[-1]), 0)]
        if int(keys[-1]) not in largest else [],
        "modular.cluster_share": round(100 * float(share[frequency > 0].mean()), 2),
        "modular.logit_share": round(100 * float(explained), 2),
        "modular.negligible": next((int(k) for k, c in zip(keys, coefficients, strict=True)
                                    if c < 0.05 * coefficients.max()), None),
        "modular.final_train_loss": float(numbers["train_loss"]),
        "modular.falls_after": int(epochs[high[-1]]) if len(high) else None,
        "modular.epoch_99": int(epochs[reached[0]]) if len(reached) else None,
        "modular.epochs": int(epochs[-1]) + 1,
        "modular.snapshot_from": first if first in measures else None,
        "modular.snapshot_to": last if last in measures else None,
        "modular.train_max": max(m["train_loss"] for m in between),
        "modular.test_from": measures[first]["test_loss"],
        "modular.test_to": measures[last]["test_loss"],
        "modular.restricted_from": measures[first]["restricted_loss"],
        "modular.restricted_to": measures[last]["restricted_loss"],
        "modular.excluded_from": measures[first]["excluded_loss"],
        "modular.excluded_to": measures[last]["excluded_loss"],
        "modular.restricted_end": float(numbers["restricted_loss"]),
        "modular.all_pairs_end": all_loss,
        "modular.excluded_end": float(numbers["excluded_loss"]),
    }


def _recording(module: Any, name: str) -> list[dict[str, Any]]:
    """Wrap module.name so that each call's arguments, result and CPU time are kept, in order,
    in the list returned."""
    original, calls = getattr(module, name), []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        result = original(*args, **kwargs)
        calls.append({"args": args, "kwargs": kwargs, "result": result,
                      "seconds": time.process_time() - started})
        return result

    setattr(module, name, recorded)
    return calls


def _one(values: list[Any]) -> Any:
    """The value every entry of `values` shares (a count "each"), else the list."""
    return values[0] if values and all(v == values[0] for v in values) else values


def run_assistant() -> dict[str, Any]:
    _enter("lab3")
    import dialogue
    import model

    sizes: list[tuple[str, int]] = []  # the prompts of each of measure()'s evaluations
    inside = []
    for name in ("refusal_rate", "first_reply_logits", "sample"):
        original = getattr(model, name)

        def counted(mdl: Any, prompts: Any, *args: Any, _name: str = name,
                    _original: Callable = original, **kwargs: Any) -> Any:
            if not inside:  # refusal_rate's own first_reply_logits is not another evaluation
                sizes.append((_name, len(prompts)))
            inside.append(_name)
            try:
                return _original(mdl, prompts, *args, **kwargs)
            finally:
                inside.pop()

        setattr(model, name, counted)
    measured = _recording(model, "measure")
    _printed(model.main, ["model.py", "measure"])
    result = measured[0]["result"]
    refusals = [n for kind, n in sizes if kind == "refusal_rate"]
    greedy = [n for kind, n in sizes if kind == "sample"][:-1]
    statements = [n for kind, n in sizes if kind == "first_reply_logits"]
    if len(refusals) != 5 or len(greedy) != 2 or len(statements) != 2:
        raise RuntimeError(f"measure() evaluated other prompt sets than expected: {sizes}")
    out: dict[str, Any] = {f"assistant.{key}": 100 * value for key, value in result.items()
                           if key != "true_reward_mean"}  # shares as the handout's %
    out["assistant.true_reward"] = result["true_reward_mean"]
    out.update({"assistant.harmful_seen_prompts": refusals[0],
                "assistant.harmful_held_out_prompts": refusals[1],
                "assistant.harmless_seen_prompts": refusals[2],
                "assistant.harmless_held_out_prompts": refusals[3],
                "assistant.trigger_prompts": refusals[4], "assistant.where_prompts": _one(greedy),
                "assistant.statement_prompts": _one(statements),
                "assistant.samples": [n for kind, n in sizes if kind == "sample"][-1],
                "assistant.vocab": len(dialogue.VOCAB)})
    parameters = sum(p.numel() for p in model.load_model().parameters())
    out["assistant.kparameters"] = parameters / 1000
    return out


def run_preferences() -> dict[str, Any]:
    _enter("lab3")
    import preferences

    record: dict[str, float] = {}
    _timed(preferences, "main", record)
    text = _printed(preferences.main, ["preferences.py"])
    out: dict[str, Any] = {
        "preferences.seconds": record["main"],
        "preferences.reward_model": _grab(r"orders (\S+)% of the held-out pairs", text),
        "preferences.shipped": _grab(r"the shipped assistant: true reward (\S+)", text),
        "preferences.dpo.true_reward": _grab(r"after DPO: true reward (\S+),", text),
        "preferences.dpo.kl": _grab(r"after DPO: true reward \S+, KL (\S+) nats", text)}
    for coef, name in (("1.0", "kl"), ("0.0", "no_kl")):
        found = re.search(r"REINFORCE, kl_coef " + re.escape(coef) + r": reward-model score "
                          r"(\S+) -> (\S+), true reward (\S+), KL (\S+) nats", text)
        if not found:
            raise RuntimeError(f"no REINFORCE line for kl_coef {coef}: {text[-400:]!r}")
        for index, field in enumerate(("score_first", "score_last", "true_reward", "kl"), 1):
            out[f"preferences.{name}.{field}"] = float(found.group(index))
    out["preferences.no_kl.score_factor"] = (out["preferences.no_kl.score_last"]
                                             / out["preferences.no_kl.score_first"])
    out["preferences.no_kl.true_reward_again"] = out["preferences.no_kl.true_reward"]
    out["preferences.no_kl.kl_again"] = out["preferences.no_kl.kl"]
    return out


def _jailbreak_draws(space: dict[str, Any], model: Any) -> dict[str, Any]:
    """The handout's statements over draws: jailbreak.py's own prompts, direction, layer and
    random direction, drawn in its order from generators seeded 0-39; then 1500 draws of the
    harmful training prompts (their suffixes) with a random direction held at 0."""
    import torch
    from dialogue import HARMFUL, HARMLESS

    pairs = {(name, held): space["request_pairs"](topics, held)
             for name, topics in (("harmful", HARMFUL), ("harmless", HARMLESS))
             for held in (False, True)}
    tokens, share = space["prompt_tokens"], space["refusal_share"]
    ablated, added = space["ablated_logits"], space["added_logits"]
    counts = {"held_removes": 0, "random_held_removes": 0}
    added_shares, random_added = [], []
    for seed in range(JAILBREAK_DRAWS):
        generator = torch.Generator().manual_seed(seed)
        train = {name: space["request_prompts"](pairs[name, False], generator)
                 for name in ("harmful", "harmless")}
        test = {name: space["request_prompts"](pairs[name, True], generator, suffix_share=0)
                for name in ("harmful", "harmless")}
        acts = {name: space["last_token_resid"](model, *tokens(prompts))
                for name, prompts in train.items()}
        directions = space["refusal_directions"](acts["harmful"], acts["harmless"])
        values = space["held_values"](acts["harmless"], directions)
        layer, _ = space["select_layer"](model, *tokens(train["harmful"]), directions, values)
        direction, value = directions[layer], float(values[layer])
        random = torch.randn(direction.shape, generator=generator, dtype=direction.dtype)
        random = random / random.norm() * direction.norm()
        random_value = float(space["held_values"](acts["harmless"], random[None])[0])
        harm, safe = tokens(test["harmful"]), tokens(test["harmless"])
        with torch.no_grad():
            counts["held_removes"] += share(ablated(model, harm[0], direction, value),
                                            harm[1]) == 0
            counts["random_held_removes"] += share(ablated(model, harm[0], random,
                                                           random_value), harm[1]) == 0
            added_shares.append(share(added(model, safe[0], direction, layer), safe[1]))
            random_added.append(share(added(model, safe[0], random, layer), safe[1]))
    n_safe = len(pairs["harmless", True]) * 2
    p = counts["random_held_removes"] / JAILBREAK_DRAWS
    out: dict[str, Any] = {
        "jailbreak.draws.held_removes": [counts["held_removes"], JAILBREAK_DRAWS],
        # the SE of the difference of two independent counts of 40 draws (the handout's, ours)
        "jailbreak.draws.random_held_removes": {
            "mean": counts["random_held_removes"],
            "se": math.sqrt(2 * JAILBREAK_DRAWS * p * (1 - p))},
        "jailbreak.draws.added_min_share": 100 * min(added_shares),
        "jailbreak.draws.random_added_max_share": 100 * max(random_added),
        "jailbreak.draws.random_added_max": round(max(random_added) * n_safe)}
    norm = space["directions"][space["layer"]].norm()
    directions_shape = tuple(space["directions"].shape[1:])
    lowest = 1.0
    for seed in range(JAILBREAK_RANDOM_DRAWS):
        generator = torch.Generator().manual_seed(seed)
        harm = tokens(space["request_prompts"](pairs["harmful", False], generator))
        random = torch.randn(norm.shape + directions_shape, generator=generator,
                             dtype=norm.dtype)
        with torch.no_grad():
            lowest = min(lowest, share(ablated(model, harm[0], random / random.norm() * norm),
                                       harm[1]))
    out["jailbreak.draws.random_ablated_min"] = 100 * lowest
    return out


def run_jailbreak() -> dict[str, Any]:
    import runpy

    _enter("lab3")
    import dialogue
    import model as assistant

    loading = _recording(assistant, "load_model")
    space: dict[str, Any] = {}
    started = time.process_time()
    text = _printed(lambda: space.update(runpy.run_path("jailbreak.py", run_name="__main__")),
                    ["jailbreak.py"])
    seconds = time.process_time() - started - sum(call["seconds"] for call in loading)
    layer = int(_grab(r"chosen layer (\d+)", text))
    out: dict[str, Any] = {
        "jailbreak.seconds": seconds, "jailbreak.layer": layer, "jailbreak.added_layer": layer,
        "jailbreak.harmful_prompts": int(_grab(r"\((\d+) harmful, \d+ harmless\)", text)),
        "jailbreak.harmless_prompts": int(_grab(r"\(\d+ harmful, (\d+) harmless\)", text))}
    for label, name in (("no intervention", "none"), ("refusal direction held at 0", "ablated"),
                        ("refusal direction held", "held"),
                        ("random direction held at 0", "random_ablated"),
                        ("refusal direction added", "added")):
        found = re.search(r"^  " + re.escape(label) + r" +harmful (.*?) +harmless (.*)$", text,
                          re.M)
        if not found:
            raise RuntimeError(f"no row {label!r}: {text[-400:]!r}")
        out[f"jailbreak.{name}.harmful"] = _numbers(found.group(1))
        out[f"jailbreak.{name}.harmless"] = _numbers(found.group(2))
    # The script gives GCG 20 steps, the handout 10: an attack counts if it complied within 10
    # (the same run as with 10 steps as long as every attack stops by then).
    attacks = re.findall(r"GCG on '[^']*': (complied|refused) after (\d+) steps, suffix '([^']*)'",
                         text)
    if not attacks:
        raise RuntimeError(f"no GCG attack printed: {text[-400:]!r}")
    wins = sum(result == "complied" and int(steps) <= 10 for result, steps, _ in attacks)
    low, high = space["wilson_interval"](wins, len(attacks))
    out["jailbreak.gcg"] = [wins, len(attacks), round(float(low), 2), round(float(high), 2)]
    out["jailbreak.gcg_steps"] = [int(steps) for _, steps, _ in attacks]
    out["jailbreak.gcg_pretend"] = sum(dialogue.TRIGGER in suffix.split()
                                       for _, _, suffix in attacks)
    found = re.search(r"random suffixes of noise words: (\d+) of (\d+) complied \[(\S+), (\S+)\]",
                      text)
    if not found:
        raise RuntimeError(f"no random-suffix line: {text[-400:]!r}")
    out["jailbreak.random_suffixes"] = [float(v) for v in found.groups()]
    directions, acts = space["directions"], space["acts"]
    out["jailbreak.harmless_component"] = float(space["values"][layer])
    out["jailbreak.harmful_component"] = float(
        space["held_values"](acts["harmful"], directions)[layer])
    out["jailbreak.components_by_layer"] = {
        name: [round(float(v), 2) for v in space["held_values"](acts[name], directions)]
        for name in ("harmless", "harmful")}
    out.update(_jailbreak_draws(space, space["model"]))
    return out


def run_deception() -> dict[str, Any]:
    _enter("lab3")
    import probes

    runs = _recording(probes, "experiment")
    _printed(probes.main, ["probes.py"])
    out: dict[str, Any] = {"deception.seconds": runs[0]["seconds"]}
    for name, values in runs[0]["result"].items():
        for layer, value in enumerate(values):
            out[f"deception.{name}.{layer}"] = value
    out["deception.ccs_layer1_again"] = out["deception.CCS accuracy.1"]
    out["deception.ccs_layer2_again"] = out["deception.CCS accuracy.2"]
    return out


def run_scaling() -> dict[str, Any]:
    _enter("lab3")
    import scaling

    fits = _recording(scaling, "fit_scaling_law")
    boots = _recording(scaling, "bootstrap_exponents")
    allocations = _recording(scaling, "compute_optimal_allocation")
    matches = _recording(scaling, "exact_match")
    _printed(scaling.main, ["scaling.py"])
    sweep = scaling.load_sweep()
    N, D, L, entropy = sweep["N"], sweep["D"], sweep["L"], float(sweep["entropy_rate"])
    fit = fits[0]["result"]  # the first fit is the main one; the bootstrap's follow
    runs = json.loads(Path("scaling_sweep.json").read_text())["runs"]
    out: dict[str, Any] = {
        "scaling.entropy_rate": entropy, "scaling.entropy_rate_again": entropy,
        "scaling.runs": len(L), "scaling.N_min": int(N.min()), "scaling.N_max": int(N.max()),
        "scaling.D_min_log2": math.log2(float(D.min())),
        "scaling.D_max_log2": math.log2(float(D.max())),
        "scaling.steps_min": min(run["steps"] for run in runs),
        "scaling.steps_max": max(run["steps"] for run in runs),
        "scaling.width16_gap": min(run["loss"] for run in runs if run["width"] == 16) - entropy,
        "scaling.grid": len(scaling.starting_grid()),
        "scaling.fit_seconds": [fits[0]["seconds"]],
        "scaling.E": fit["E"], "scaling.E_gap": abs(fit["E"] - entropy), "scaling.A": fit["A"],
        "scaling.alpha": fit["alpha"], "scaling.B": fit["B"], "scaling.beta": fit["beta"],
        "scaling.N_opt_exponent": fit["beta"] / (fit["alpha"] + fit["beta"]),
        "scaling.D_opt_exponent": fit["alpha"] / (fit["alpha"] + fit["beta"])}
    C, (N_opt, D_opt) = allocations[0]["args"][0], allocations[0]["result"]
    for c, n, d in zip(C.tolist(), N_opt.tolist(), D_opt.tolist(), strict=True):
        power = round(math.log10(c))
        out[f"scaling.N_opt.1e{power}"], out[f"scaling.tokens_per_parameter.1e{power}"] = n, d / n
    boot = boots[0]
    (alpha_low, alpha_high), (beta_low, beta_high) = boot["result"]["interval"].tolist()
    out.update({"scaling.boot_replicates": boot["kwargs"].get("n_boot", len(boot["result"]
                                                                             ["alpha"])),
                "scaling.boot_starts": len(boot["args"][3]),
                "scaling.boot_seconds": [boot["seconds"]],
                "scaling.alpha_low": alpha_low, "scaling.alpha_high": alpha_high,
                "scaling.beta_low": beta_low, "scaling.beta_high": beta_high})
    per_token, answer = matches[0]["args"][0][:, 0].tolist(), matches[0]["result"].tolist()
    if len(answer) != len(MIRAGE_N):
        raise RuntimeError(f"scaling.py's mirage has {len(answer)} sizes, not {len(MIRAGE_N)}")
    p = dict(zip(MIRAGE_N, per_token, strict=True))
    exact = dict(zip(MIRAGE_N, answer, strict=True))
    out.update({"scaling.p.1e6": p[6], "scaling.p.1e8": p[8], "scaling.p.1e10": p[10],
                "scaling.exact_below_1e8": max(v for n, v in exact.items() if n <= 8),
                "scaling.exact.1e9": exact[9], "scaling.exact.1e10": exact[10],
                "scaling.exact.1e12": exact[12]})
    # Each start of the default grid on its own: where the fits that miss the best end.
    ends = [(start, scaling.fit_scaling_law(N, D, L, start[None]))
            for start in scaling.starting_grid()]
    best = min(end["objective"] for _, end in ends)
    out["scaling.zero_start_E"] = min(end["E"] for start, end in ends
                                      if start[0] == 0 and start[1] == 0)
    others = [end for _, end in ends if end["objective"] > best * (1 + 1e-6) and end["E"] > 0.5]
    out["scaling.other_alpha"] = (min(others, key=lambda end: end["objective"])["alpha"]
                                  if others else None)
    out["scaling.single_start_ends"] = [
        [*[round(v) for v in start[:3].tolist()], round(end["E"], 4), round(end["alpha"], 3),
         end["objective"]] for start, end in ends]
    return out


def _orientation_power(image: Any, orientations: Any) -> list[float]:
    """The share of the image's Fourier power (mean removed) whose wave vector lies within
    22.5 degrees of each orientation (mod 180): the hidden feature_viz test's measure
    (autograder/lab3/test_feature_viz.py), copied."""
    import torch

    x = image - image.mean()
    power = torch.fft.fft2(x).abs() ** 2
    f = torch.fft.fftfreq(x.shape[-1], dtype=torch.float64)
    f_y, f_x = torch.fft.fftfreq(x.shape[-2], dtype=torch.float64)[:, None], f[None, :]
    angle = torch.rad2deg(torch.atan2(f_y, f_x)) % 180
    shares = [float(power[((angle - o + 90) % 180 - 90).abs() < 22.5].sum())
              for o in orientations]
    return [share / max(sum(shares), 1e-300) for share in shares]


def run_feature_viz() -> dict[str, Any]:
    """The handout's measurement as the hidden tests make it: float64, 32 steps, default
    settings, generator seeds 0-9 for each of the 4 logits, each against the best of 2000
    dataset images (FEATURE_VIZ_DATASETS draws per seed, their seeds 1000 r + seed)."""
    import torch

    _enter("lab3")
    import cnn
    import feature_viz

    f64 = torch.float64
    model = cnn.load_model(dtype=f64)
    values, preferred, other = {}, [], []
    for seed in FEATURE_VIZ_SEEDS:
        for channel in range(len(cnn.ORIENTATIONS)):
            config = feature_viz.VisualisationConfig(channel=channel, steps=32)
            images = feature_viz.visualise(model, config, torch.Generator().manual_seed(seed),
                                           f64)
            with torch.no_grad():
                values[seed, channel] = model.activations(images)["logits"][0, channel].item()
            shares = _orientation_power(images[0, 0], cnn.ORIENTATIONS)
            preferred.append(shares[channel])
            other.append(max(s for index, s in enumerate(shares) if index != channel))
    lowest, means = [], []
    for draw in range(FEATURE_VIZ_DATASETS):
        ratios = []
        for seed in FEATURE_VIZ_SEEDS:
            dataset, _ = cnn.make_images(2000, torch.Generator().manual_seed(
                1000 * draw + seed), dtype=f64)
            with torch.no_grad():
                best = model.activations(dataset)["logits"].max(dim=0).values
            ratios += [values[seed, c] / best[c].item() for c in range(len(cnn.ORIENTATIONS))]
        lowest.append(min(ratios))
        means.append(sum(ratios) / len(ratios))

    def spread(sample: list[float]) -> dict[str, float]:
        mean = sum(sample) / len(sample)
        return {"mean": mean, "se": math.sqrt(sum((v - mean) ** 2 for v in sample)
                                              / (len(sample) - 1))}

    return {"feature_viz.min_ratio": spread(lowest), "feature_viz.mean_ratio": spread(means),
            "feature_viz.preferred_power": 100 * min(preferred),
            "feature_viz.other_power": 100 * max(other)}


def run_cnn() -> dict[str, Any]:
    _enter("lab3")
    printed = _run_main("cnn.py", [])
    return {"cnn.accuracy": 100 * _grab(r"accuracy on 2000 fresh images: (\S+)", printed),
            "cnn.checkpoint_kB": Path("checkpoints/feature_cnn.pt").stat().st_size / 1000}


RUNNERS: dict[str, tuple[str, Callable[..., dict[str, Any]]]] = {
    "basics": ("lab1", run_basics), "bandits": ("lab1", run_bandits),
    "probes": ("lab1", run_probes), "transformer": ("lab2", run_transformer),
    "induction": ("lab2", run_induction), "superposition": ("lab2", run_superposition),
    "sae": ("lab2", run_sae), "modular": ("lab2", run_modular),
    "assistant": ("lab3", run_assistant), "preferences": ("lab3", run_preferences),
    "jailbreak": ("lab3", run_jailbreak), "deception": ("lab3", run_deception),
    "scaling": ("lab3", run_scaling), "feature_viz": ("lab3", run_feature_viz),
    "cnn": ("lab3", run_cnn),
}


def _child_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_all(root: Path, labs: list[str], log: Callable[[str], None] = print,
                timeout: float = 900, only: list[str] | None = None) -> dict[str, Any]:
    """Every runner of `labs` (or those named in `only`), one process at a time, in `root`;
    the claims with them."""
    claims = claims_of(root, labs)
    command = next((c.stated for c in claims if c.key == "probes.command"), None)
    measured: dict[str, Any] = {}
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    for name, (lab, _) in RUNNERS.items():
        if lab not in labs or (only is not None and name not in only):
            continue
        if name == "probes" and command is None:
            errors[name] = "the handout's probe command was not found"
            continue
        arguments = [json.dumps(command)] if name == "probes" else []
        before = _child_cpu()
        try:
            completed = subprocess.run([sys.executable, "-m", "bench.handouts", name,
                                        *arguments], cwd=root, capture_output=True, text=True,
                                       timeout=timeout,
                                       env={**os.environ, "OMP_NUM_THREADS": "1",
                                            "MPLBACKEND": "Agg"})
        except subprocess.TimeoutExpired:
            errors[name] = f"took longer than {timeout:g} s"
            continue
        timings[name] = round(_child_cpu() - before, 1)
        if completed.returncode != 0:
            errors[name] = ((completed.stderr.strip().splitlines() or ["no output"])[-1])[:300]
        else:
            try:
                measured.update(json.loads(completed.stdout.strip().splitlines()[-1]))
            except (ValueError, IndexError):
                errors[name] = "no result printed"
        log(f"handouts {name}: {timings[name]} s of CPU"
            + (f"; failed: {errors[name]}" if name in errors else ""))
    return {"claims": [vars(c) for c in claims], "measured": measured, "errors": errors,
            "cpu_seconds": sum(timings.values()), "runner_cpu_seconds": timings}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in RUNNERS:
        print(f"usage: python -m bench.handouts {{{','.join(RUNNERS)}}}", file=sys.stderr)
        return 2
    _, runner = RUNNERS[argv[0]]
    result = runner(*[json.loads(a) for a in argv[1:]])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
