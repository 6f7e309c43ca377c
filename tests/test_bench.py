"""The measuring tools in bench/: the submissions the benchmark generates, the flakiness
statistics, and the in-process harness that the engine's overhead is measured against."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import REPO_ROOT
from autograder.engine.labs import load_lab
from bench import benchmarks, flaky, handouts

LAB = load_lab("lab1")


def _todo_count(path: Path) -> int:
    return path.read_text().count("raise NotImplementedError(")


def test_hanging_submission_loops_wherever_the_stubs_raise(tmp_path):
    folder = benchmarks.hang_submission(LAB, tmp_path / "hang")
    for name in LAB.graded:
        text = (folder / name).read_text()
        tree = ast.parse(text)
        loops = [node for node in ast.walk(tree) if isinstance(node, ast.While)
                 and isinstance(node.test, ast.Constant) and node.test.value is True]
        assert len(loops) == _todo_count(LAB.assignments_dir / name) > 0, name
        assert "is not implemented yet" not in text


def test_mixed_submissions_hold_reference_stub_and_partial_files(tmp_path):
    folder = benchmarks.mixed_submissions(LAB, tmp_path / "mixed")
    submissions = sorted(folder.iterdir())
    assert len(submissions) == 20
    counts = []
    for submission in submissions:
        for name in LAB.graded:
            path = submission / name
            ast.parse(path.read_text())
            counts.append((_todo_count(path), _todo_count(LAB.assignments_dir / name)))
    assert any(todos == 0 for todos, _ in counts)
    assert any(todos == full for todos, full in counts)
    assert any(0 < todos < full for todos, full in counts)


def test_flakiness_statistics():
    assert flaky.binomial_tail(0, 50, 1e-6) == 1.0
    assert flaky.binomial_tail(1, 50, 1e-6) == pytest.approx(1 - (1 - 1e-6) ** 50)
    assert flaky.upper_bound(0, 50) == pytest.approx(1 - 0.05 ** (1 / 50), rel=1e-6)
    assert flaky.upper_bound(5, 50) > 0.1


def test_statistical_tests_are_recognised_with_their_stated_probability():
    tests = {test.function: test for test in flaky.collect("lab1")}
    assert tests["test_pairwise_distances"].stated is None
    statistical = [t for t in tests.values() if t.stated is not None]
    for test in statistical:
        assert 0 < test.stated <= 1e-6, test


def test_inprocess_harness_runs_a_lab_test_without_workers():
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", str(LAB.test_file("basics")), "-q",
         "-c", str(REPO_ROOT / "pyproject.toml"), "--rootdir", str(REPO_ROOT),
         "-p", "no:cacheprovider", "-p", "no:autograder.engine.plugin", "-p", "bench.inprocess",
         "--inprocess-impl", str(LAB.reference_dir), "-k", "pairwise or gather"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "2 passed" in completed.stdout


# ---------------------------------------------------------------------------- handout numbers

HANDOUTS = {lab: (REPO_ROOT / "reference" / lab / "README.md").read_text()
            for lab in handouts.CLAIMS}


def _agreeing(claim: handouts.Claim):
    """A measurement that agrees with the claim as the handout states it."""
    kind = claim.rule[0]
    if kind == "se":
        return {"mean": claim.stated, "se": 0.01}
    if kind == "below":
        return claim.stated / 2
    if kind in ("range", "range_factor"):
        return list(claim.stated)
    if kind == "ran":
        return True
    return claim.stated


def _claims(texts=None):
    texts = texts or HANDOUTS
    return [c for lab, text in texts.items() for c in handouts.CLAIMS[lab](text)]


def test_every_handout_number_is_found_with_a_row_of_its_own():
    claims = _claims()
    missing = [c.key for c in claims if c.text is None]
    assert not missing, f"the handouts no longer say: {missing}"
    keys = [c.key for c in claims]
    assert len(keys) == len(set(keys))
    prefixes = {key.split(".")[0] for key in keys}
    assert prefixes == {"basics", "bandits", "probes", "dqn", "transformer", "induction",
                        "superposition", "sae", "modular", "assistant", "preferences",
                        "jailbreak", "deception", "scaling", "feature_viz", "cnn"}
    # a row per number: the bandit table's 7 x 2 cells, the SAE table's 2 x 4, ...
    assert sum(k.startswith("bandits.") and k.endswith((".reward", ".optimal"))
               for k in keys) == 14
    assert sum(k.startswith(("sae.resampling.", "sae.no_resampling.")) for k in keys) == 8
    assert sum(k.startswith("superposition.") and k.endswith(".count") for k in keys) == 8
    stated = {c.key: c.stated for c in claims}
    assert stated["transformer.floor"] == pytest.approx(0.9112)
    assert stated["modular.keys"] == [15, 21, 29, 33, 47]
    assert stated["superposition.0.count"] == 2 and stated["superposition.7.count"] == 5
    assert stated["probes.command"][:2] == ["--env-id", "probes/Probe3-v0"]
    # lab 3: the jailbreak table's 5 x 2 cells, the probes table's 6 x 3 (one cell a range)
    assert sum(k.startswith("jailbreak.") and k.endswith((".harmful", ".harmless"))
               for k in keys) == 10
    assert sum(bool(re.fullmatch(r"deception\..*\.[012]", k)) for k in keys) == 21
    assert sum(bool(re.fullmatch(r"assistant\.(refusal_.*|complied_.*|where_[hl].*|"
                                 r"statement_[hl].*)", k)) for k in keys) == 9
    assert stated["scaling.E"] == pytest.approx(1.01843)
    assert stated["jailbreak.gcg"] == [6, 6, 0.61, 1.0]
    assert stated["deception.mass-mean liar accuracy.2"] == 0.0  # "**0.000**"
    assert stated["deception.liar accuracy high.0"] == pytest.approx(0.948)
    assert stated["scaling.boot_seconds"] == (82, 132)


def test_every_lab3_claim_quotes_the_handout_and_has_a_runner():
    text = handouts.flat(HANDOUTS["lab3"])
    claims = handouts.lab3_claims(HANDOUTS["lab3"])
    assert len(claims) > 140
    assert not [c.key for c in claims if c.text is None or c.text not in text]
    # a measured number's runner is the first part of its key (a failed runner's rows say why)
    assert not [c.key for c in _claims() if c.rule[0] != "not rerun"
                and c.key.split(".")[0] not in {*handouts.RUNNERS, "dqn"}]
    lab3 = [name for name, (lab, _) in handouts.RUNNERS.items() if lab == "lab3"]
    assert {c.key.split(".")[0] for c in claims} == set(lab3)
    not_rerun = [c for c in claims if c.rule[0] == "not rerun"]
    assert {c.key for c in not_rerun} >= {"assistant.train_seconds", "cnn.train_seconds",
                                           "scaling.sweep_seconds"}
    assert all(c.note.startswith("not rerun: ") for c in not_rerun)


def test_measurements_that_match_the_handout_agree():
    claims = _claims()
    measured = {c.key: _agreeing(c) for c in claims}
    verdicts = {c.key: row.agrees for c, row in zip(claims, handouts.rows(claims, measured),
                                                    strict=True)}
    not_rerun = {c.key for c in claims if c.rule[0] == "not rerun"}
    assert {"dqn.integration", "induction.seeds", "scaling.sweep_seconds"} <= not_rerun
    assert all(v is True for k, v in verdicts.items() if k not in not_rerun), verdicts
    assert all(verdicts[k] is None for k in not_rerun)  # listed, not rerun


@pytest.mark.parametrize("lab, old, new, key", [
    ("lab2", "entropy rate of **0.9112 nats**", "entropy rate of **0.9122 nats**",
     "transformer.floor"),
    ("lab2", "induction score of **0.69**", "induction score of **0.79**", "induction.score"),
    ("lab2", "392 of the 512 neurons", "391 of the 512 neurons", "modular.clustered"),
    # one table row covers the sweep's five sparsities from 0.861 up: five rows disagree
    ("lab2", "| about 0.86 and above | 5 |", "| about 0.86 and above | 4 |",
     tuple(f"superposition.{i}.count" for i in range(3, 8))),
    ("lab2", "| 0.95 | 0.012 | 0 | 5 of 5 |", "| 0.95 | 0.012 | 0 | 4 of 5 |",
     "sae.resampling.recovered"),
    ("lab1", "| 1.03 | 35.8% |", "| 1.13 | 35.8% |",
     "bandits.epsilon = 0 (greedy), sample averages.reward"),
    ("lab1", "(here Q(0) = 0.5, Q(1) = 1)", "(here Q(0) = 0.6, Q(1) = 1)", "probes.Probe3.q0"),
    ("lab1", "about 10 s in all", "about 30 s in all", "bandits.figures_seconds"),
    ("lab3", "(36 seen, 12 held out) | 100%, 100%", "(36 seen, 12 held out) | 100%, 90%",
     "assistant.refusal_harmful_held_out"),
    ("lab3", "true reward 2.08, KL 0.147", "true reward 2.18, KL 0.147",
     "preferences.dpo.true_reward"),
    ("lab3", "| none | 1.00 [0.76, 1.00] |", "| none | 1.00 [0.75, 1.00] |",
     "jailbreak.none.harmful"),
    ("lab3", "| 0.958 | 0.993 | 1.000 |", "| 0.958 | 0.983 | 1.000 |",
     "deception.mass-mean honest accuracy.1"),
    ("lab3", "| 0.895-0.948 |", "| 0.895-0.958 |", "deception.liar accuracy high.0"),
    ("lab3", "alpha [1.85, 4.82]", "alpha [1.75, 4.82]", "scaling.alpha_low"),
    # N_opt is given to four significant figures: 18980 is 1.898e4, +-5
    ("lab3", "18980 parameters", "18990 parameters", "scaling.N_opt.1e12"),
    ("lab3", "(82-132 s on the shared machine)", "(182-232 s on the shared machine)",
     "scaling.boot_seconds"),
    ("lab3", "at least 1.07 times", "at least 1.17 times", "feature_viz.min_ratio"),
    ("lab3", "it classifies 99.9% of 2000", "it classifies 98.9% of 2000", "cnn.accuracy"),
])
def test_a_changed_handout_number_disagrees(lab, old, new, key):
    claims = _claims()
    measured = {c.key: _agreeing(c) for c in claims}
    assert old in HANDOUTS[lab], "the test's handout sentence changed: update the test"
    edited = _claims({**HANDOUTS, lab: HANDOUTS[lab].replace(old, new)})
    rows = dict(zip((c.key for c in edited), handouts.rows(edited, measured), strict=True))
    keys = key if isinstance(key, tuple) else (key,)
    assert all(rows[k].agrees is False for k in keys), [rows[k] for k in keys]
    others = [k for k, row in rows.items() if row.agrees is False and k not in keys]
    assert not others, others


def test_a_handout_sentence_that_is_gone_disagrees():
    text = HANDOUTS["lab2"].replace("the chain itself scores", "the chain scores")
    claims = _claims({**HANDOUTS, "lab2": text})
    measured = {c.key: _agreeing(c) for c in _claims()}
    rows = dict(zip((c.key for c in claims), handouts.rows(claims, measured), strict=True))
    assert rows["transformer.chain"].agrees is False
    assert "not found" in rows["transformer.chain"].handout
    # lab 3: a setting of the table changed (the row no longer says what the script runs)
    text = HANDOUTS["lab3"].replace("DPO (60 steps of 32 pairs", "DPO (80 steps of 32 pairs")
    claims = _claims({**HANDOUTS, "lab3": text})
    rows = dict(zip((c.key for c in claims), handouts.rows(claims, measured), strict=True))
    assert rows["preferences.dpo.kl"].agrees is False
    assert "not found" in rows["preferences.dpo.kl"].handout


def test_a_changed_measurement_disagrees_and_a_failed_runner_says_why():
    claims = _claims()
    measured = {c.key: _agreeing(c) for c in claims}
    measured["transformer.loss"] += 0.002  # the handout says 0.926
    measured["bandits.UCB, c = 2.optimal"] = {"mean": 85.8 - 0.5, "se": 0.1}
    del measured["sae.topk1"]
    rows = dict(zip((c.key for c in claims),
                    handouts.rows(claims, measured, {"sae": "out of memory"}), strict=True))
    assert rows["transformer.loss"].agrees is False
    assert rows["bandits.UCB, c = 2.optimal"].agrees is False
    assert rows["sae.topk1"].agrees is False and "out of memory" in rows["sae.topk1"].measured
    del measured["modular.keys"]
    rows = dict(zip((c.key for c in claims), handouts.rows(claims, measured), strict=True))
    assert rows["modular.keys"].agrees is None  # not run at all: not measured, no verdict


def test_tolerance_of_stated_digits():
    assert handouts.half_unit("0.926") == pytest.approx(5e-4)
    assert handouts.half_unit("6e-8") == pytest.approx(5e-9)
    assert handouts.half_unit("12,300") == pytest.approx(0.5)
    assert handouts.number("2/5") == pytest.approx(0.4)
    assert handouts.number("12,300") == 12300


def test_handout_report_renders_with_the_training_sections_dqn_runs():
    claims = _claims()
    data = {"claims": [vars(c) for c in claims],
            "measured": {c.key: _agreeing(c) for c in claims if not c.key.startswith("dqn.")},
            "errors": {}, "cpu_seconds": 1.0}
    steps = [c for c in claims if c.key == "dqn.steps"][0].stated
    finals = [c for c in claims if c.key == "dqn.final"][0].stated
    times = [c for c in claims if c.key == "dqn.seconds"][0].stated
    runs = [{"seed": s, "reached_at": steps[s % 2], "cpu_seconds_to_target": times[s % 2],
             "final_eval_return": finals[s % 2]} for s in range(1, 6)]
    text = "\n".join(handouts.render(json.loads(json.dumps(data)), runs))
    assert "| **no** |" not in text, text
    runs[0]["reached_at"] = steps[1] + 2500
    text = "\n".join(handouts.render(json.loads(json.dumps(data)), runs))
    assert text.count("| **no** |") == 1


def _run_data(commit: str, **sections):
    machine = {"commit": commit, "date": "2026-11-30 10:00 UTC", "cpus": 2, "model": "x",
               "python": "3.11", "torch": "2.13.0", "load_before": (0.5, 0.5, 0.5),
               "load_after": (0.6, 0.6, 0.6)}
    return {"machine": machine, "note": "", "timeout_scale": 1, "repeat": 1, **sections}


def test_a_partial_bench_run_keeps_what_it_did_not_measure():
    first = benchmarks.merge(None, _run_data("commit aaa1111", grading={"lab1": ["old lab1"]},
                                             training={"dqn": "dqn run", "bandits": "bandits"}))
    second = benchmarks.merge(first, _run_data("commit bbb2222", grading={"lab2": ["lab2 run"]},
                                               training={"bandits": "new bandits"}))
    assert second["grading"] == {"lab1": ["old lab1"], "lab2": ["lab2 run"]}
    assert second["training"] == {"dqn": "dqn run", "bandits": "new bandits"}
    assert second["stamps"]["grading"]["lab1"]["commit"] == "commit aaa1111"
    assert second["stamps"]["grading"]["lab2"]["commit"] == "commit bbb2222"
    assert second["stamps"]["training"]["dqn"]["commit"] == "commit aaa1111"
    line = benchmarks._stamp_line(second, "grading")[0]
    assert "lab1: commit aaa1111" in line and "lab2: commit bbb2222" in line
    assert benchmarks._stamp_line(second, "batch") == []  # never measured: no stamp


def test_the_batch_table_gives_the_pool_and_the_cluster_with_its_overhead():
    run = {"seconds": 100.0, "cpu_seconds": 190.0, "peak_pss_mib": 900.0, "two_at_once": 0.9,
           "cache_files": 12, "reference_cache_files": 12, "submissions": 20}
    text = "\n".join(benchmarks._render_batch(
        {"lab1": {"pool": [run], "local_cluster": [{**run, "seconds": 110.0}]}}))
    assert "| lab1 | process pool | 1 | 100.0 s | 12.0 |" in text
    assert "| lab1 | Dask LocalCluster, 2 workers | 1 | 110.0 s | 10.9 |" in text
    assert "lab1: wall time +10% (+10.0 s), CPU time +0% (+0.0 s)" in text
