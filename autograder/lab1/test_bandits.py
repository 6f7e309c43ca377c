"""Tests for lab 1, part "multi-armed bandits" (bandits.py).

The agents are random by design, so their choices are never compared draw by draw with the
reference. Deterministic pieces (value updates, the softmax policy, the gradient step, UCB on
constructed counts, the runner's bookkeeping) are compared with the reference; random choices
are judged statistically. Every statistical test states its false-failure probability (at
most 1e-6 per test, split over its checks with the union bound) and how it was computed.
Comments starting "Docstring:" name the sentence of bandits.py a check enforces.

Docstring (module): "write every function without a Python loop over runs or arms": not
checked as such; the figure tests give each agent 15 s (times the timeout scale) for 2000
runs x 1000 steps. "All randomness comes from the np.random.Generator the caller
hands in": same_choices_whatever_the_globals, in every test of a random choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
import torch

from autograder.engine.checks import assert_close, check, fail

FALSE_FAILURE = 1e-6  # per test, split evenly over the test's checks (union bound)

# float64 arithmetic; a different but equivalent order of operations (sum / count instead
# of the incremental mean, say) moves a result by a few ulps per step, far below this.
EXACT_RTOL, EXACT_ATOL = 1e-9, 1e-12


# ============================================================================ statistics


def gaussian_z(alpha: float) -> float:
    """z with P(|N(0, 1)| > z) = alpha."""
    return NormalDist().inv_cdf(1 - alpha / 2)


def bernstein_halfwidth(p: float, n: int, alpha: float) -> float:
    """t with P(|mean of n independent Bernoulli(p) - p| >= t) <= alpha.

    Bernstein's inequality for variables in [0, 1]: the probability is at most
    2 exp(-n t^2 / (2 p (1 - p) + 2 t / 3)); setting that to alpha and solving the quadratic
    n t^2 - (2/3) L t - 2 p (1 - p) L = 0, with L = ln(2 / alpha), gives t.
    """
    log_term = math.log(2 / alpha)
    linear, constant = (2 / 3) * log_term, 2 * p * (1 - p) * log_term
    return (linear + math.sqrt(linear**2 + 4 * n * constant)) / (2 * n)


def chi_square_interval(n: int, alpha: float) -> tuple[float, float]:
    """[low, high] holding a chi-square(n) variable with probability at least 1 - alpha.

    Laurent & Massart (2000), Lemma 1: P(S >= n + 2 sqrt(n x) + 2 x) <= exp(-x) and
    P(S <= n - 2 sqrt(n x)) <= exp(-x); with x = ln(2 / alpha) each tail is at most alpha / 2.
    """
    x = math.log(2 / alpha)
    return n - 2 * math.sqrt(n * x), n + 2 * math.sqrt(n * x) + 2 * x


def binomial_interval(n: int, p_low: float, p_high: float, alpha: float) -> tuple[int, int]:
    """Counts [low, high] holding Binomial(n, p) with probability >= 1 - alpha for every p in
    [p_low, p_high]: exact tails, the lower one at p_low and the upper one at p_high (the
    binomial grows stochastically with p), each at most alpha / 2."""

    def pmf(p: float) -> list[float]:
        return [
            math.exp(
                math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                + j * math.log(p) + (n - j) * math.log1p(-p)
            )
            for j in range(n + 1)
        ]

    lower_tail, low = 0.0, 0
    for j, mass in enumerate(pmf(p_low)):
        if lower_tail + mass > alpha / 2:
            low = j
            break
        lower_tail += mass
    upper_tail, high = 0.0, n
    for j, mass in reversed(list(enumerate(pmf(p_high)))):
        if upper_tail + mass > alpha / 2:
            high = j
            break
        upper_tail += mass
    return low, high


# ============================================================================ helpers


def tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def numpy(value: Any) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def short(array: np.ndarray) -> str:
    return np.array2string(np.asarray(array), precision=3, separator=", ", max_line_width=200)


def choices(value: Any, runs: int, k: int, what: str) -> np.ndarray:
    """The arms a probe sent back, checked here in the trusted process before any statistic:
    shape (runs,), integers, in 0 .. k - 1 (an empty or mis-shaped array would otherwise
    broadcast against anything)."""
    array = numpy(value)
    check(array.shape == (runs,), f"{what} returned an array of shape {array.shape}; expected "
          f"({runs},), one arm per run")
    check(np.issubdtype(array.dtype, np.integer), f"{what} returned {array.dtype} values; "
          "expected integer arm indices")
    outside = array[(array < 0) | (array >= k)]
    check(outside.size == 0, f"{what} returned arm {outside[:1].tolist()}; arms are numbered 0 "
          f"to {k - 1}")
    return array


def same_choices_whatever_the_globals(student, probe: str, args: tuple, first: np.ndarray,
                                      what: str) -> None:
    """Docstring (module): "All randomness comes from the np.random.Generator the caller hands
    in": the same generator seed with the global generators (numpy's, random's, torch's)
    seeded differently must give the same choices."""
    again = numpy(student.probe(probe, *args, global_seed=1))
    check(np.array_equal(again, first),
          f"{what}: two calls with generators seeded alike but the global generators "
          "(np.random, random, torch) seeded differently chose differently in "
          f"{int(np.sum(again != first)) if again.shape == first.shape else 'all'} runs. Draw "
          "every random number from the rng you are given, never from np.random.* or random.*.")


def distinct_values(np_rng: np.random.Generator, runs: int, k: int) -> np.ndarray:
    """Random action values whose largest entry in every row is unique."""
    ranks = np_rng.permuted(np.tile(np.arange(k, dtype=float), (runs, 1)), axis=1)
    return ranks + np_rng.uniform(0, 0.5, size=(runs, k))


# ============================================================================ the testbed


@pytest.mark.points(2)
@pytest.mark.public
def test_testbed_draws_values_rewards_and_drift(student, np_rng, seed):
    """Testbed: q* ~ N(mean, std^2), rewards q*(A) + N(0, 1), random-walk drift."""
    # Docstring (Testbed): "q_star has shape (runs, k)", "Pulling arm a in a run pays q_star[run,
    # a] plus N(0, 1) noise": 400 runs x 10 arms; the noise measured against q_star before the pull.
    # Docstring (Testbed.reset): "q_star[run, a] ~ N(q_star_mean, q_star_std**2), all
    # independent. Sets self.q_star to a float array of shape (runs, k)". (Testbed.pull):
    # "float of shape (runs,)", "reward[run] = q_star[run, actions[run]] + N(0, 1)
    # noise. Afterwards, if drift_std > 0, add independent N(0, drift_std**2) noise to every
    # entry of q_star": the noise is measured against q_star from before the pull, the drift
    # as the change of every entry during it, and drift_std = 0 must leave q_star fixed.
    runs, k, steps = 400, 10, 25
    mean = float(np.round(np_rng.uniform(-2, 4), 2))
    std = float(np.round(np_rng.uniform(0.5, 2), 2))
    drift = float(np.round(np_rng.uniform(0.01, 0.1), 3))
    setup = f"Testbed({runs}, {k}, q_star_mean={mean}, q_star_std={std}, drift_std={drift})"
    got = student.probe("bandits.testbed_samples", runs, k, mean, std, drift, steps, seed)
    q_star, noise, walk = (numpy(got[key]) for key in ("q_star", "noise", "drift"))
    check(q_star.shape == (runs, k) and noise.shape == (steps, runs)
          and walk.shape == (steps, runs, k),
          f"{setup}: q_star, the rewards or q_star after a pull have the wrong shape "
          f"({q_star.shape}, {noise.shape[1:]}, {walk.shape[1:]}); expected ({runs}, {k}), "
          f"({runs},) and ({runs}, {k})")

    # Twelve checks (six check_normal calls, two each), each given alpha = 1e-6 / 12: the
    # false-failure probability is at most 1e-6. (The differences of distinct pairs of
    # independent normals used below are themselves independent across runs.)
    # Means of independent normals are exactly normal (z from the normal quantile); sums of
    # squared standard normals are chi-square (interval from Laurent & Massart's bounds).
    alpha = FALSE_FAILURE / 12
    z = gaussian_z(alpha)

    def check_normal(samples: np.ndarray, centre: float, scale: float, what: str) -> None:
        n = samples.size
        sample_mean = float(samples.mean())
        allowed = z * scale / math.sqrt(n)
        check(
            abs(sample_mean - centre) <= allowed,
            f"{setup}: {what} should have mean {centre:g}; the mean of {n} of them is "
            f"{sample_mean:.4f} (a correct testbed stays within {centre:g} +- {allowed:.4f}).",
        )
        low, high = chi_square_interval(n, alpha)
        spread = float(np.sum((samples - centre) ** 2) / scale**2)
        check(
            low <= spread <= high,
            f"{setup}: {what} should have standard deviation {scale:g}; the {n} values have "
            f"root mean square deviation {scale * math.sqrt(spread / n):.4f} from {centre:g} "
            f"(a correct testbed gives {scale * math.sqrt(low / n):.4f} to "
            f"{scale * math.sqrt(high / n):.4f}).",
        )

    check_normal(q_star, mean, std, "after reset(rng), the true values q_star")
    check_normal(noise, 0.0, 1.0, "the reward noise, reward - q_star[action] (before the pull)")
    # "Afterwards" is tested at a drift as large as the noise: a reward read after the drift
    # carries it, reward - q_star[action] (before the pull) then has standard deviation
    # sqrt(2), far outside the interval; at the drift above (<= 0.1) it is sqrt(1.01).
    strong = student.probe("bandits.testbed_samples", runs, k, mean, std, 1.0, steps, seed)
    check_normal(numpy(strong["noise"]), 0.0, 1.0,
                 "with drift_std=1.0, the reward noise, reward - q_star[action] (before the "
                 "pull; the drift comes afterwards, once the reward is computed),")
    check_normal(walk, 0.0, drift, "the drift of q_star during one pull")
    # Docstring: "all independent" and "every entry of q_star takes an independent ... step":
    # the difference of two arms' values (or steps) in a run is N(0, 2 std^2) only when they
    # are independent; one draw shared by all arms of a run gives differences of 0.
    check_normal(q_star[:, 1] - q_star[:, 0], 0.0, std * math.sqrt(2),
                 "q_star[run, 1] - q_star[run, 0], a difference of two independent true values,")
    check_normal((walk[:, :, 1] - walk[:, :, 0]).reshape(-1), 0.0, drift * math.sqrt(2),
                 "the difference between two arms' drift steps in one pull")

    stationary = student.probe("bandits.testbed_samples", runs, k, mean, std, 0.0, 3, seed)
    moved = float(np.abs(numpy(stationary["drift"])).max())
    check(
        moved == 0.0,
        f"Testbed({runs}, {k}, drift_std=0.0): q_star changed by up to {moved:.3g} during a "
        "pull. A stationary testbed (drift_std = 0) must keep q_star fixed.",
    )


@pytest.mark.points(1)
@pytest.mark.public
def test_environment_passes_check_env(student, np_rng, seed):
    """BanditEnv passes gymnasium's check_env and reports the optimal arm."""
    # BanditEnv is given code; it is graded here through the Testbed the student wrote.
    # Docstring (BanditEnv): "Observation: always 0", "terminated and truncated are always
    # False", "info["optimal_action"] is the best arm at the moment the action was chosen"; the
    # rewards are q_star[action] + N(0, 1) noise (Testbed.pull) with the seed's own problem.
    # The probe sends the environment's true values and rewards back; every fact (same
    # problem after the same seed, another after another seed, the optimal arm, the noise) is
    # recomputed here from them. A testbed whose reset draws nothing fails "another seed".
    # Why doing nothing cannot pass: the rewards are judged as values. Every arm is pulled
    # `rounds` times, and the noise (reward - q_star[action] just before the pull, q_star
    # drawn from the seed with a mean drawn here) must be N(0, 1) and fresh at every pull: a
    # pull that pays a constant, or anything fixed by q_star, pays one arm the same noise
    # twice (or nearly, with drift 0.01), so the differences between two pulls of one arm
    # are far too small; one that ignores q_star is off by its mean.
    # Six checks (three per case) at alpha = 1e-6 / 6 each: false failure at most 1e-6.
    alpha = FALSE_FAILURE / 6
    z = gaussian_z(alpha)
    for drift in (0.0, 0.01):
        k = int(np_rng.integers(2, 12))
        mean = float(np.round(np_rng.uniform(-3, 3), 2))
        rounds = 2 * math.ceil(100 / k)  # at least 100 pairs of pulls of one arm
        setup = f"BanditEnv({k}, q_star_mean={mean}, drift_std={drift})"
        got = student.probe("bandits.check_environment", k, mean, drift, seed, rounds,
                            timeout=20)
        first, again, other = (numpy(q) for q in got["resets"])
        for q_star in (first, again, other):
            check(q_star.shape == (1, k) and np.isfinite(q_star).all(),
                  f"{setup}.reset: testbed.q_star is {short(q_star)}; expected {k} finite true "
                  f"values of shape (1, {k})")
        steps = k * rounds
        check(got["observation"] == 0 and got["step_observations"] == [0] * steps,
              f"{setup}: reset and step returned observations {got['observation']}, "
              f"{got['step_observations'][:k]}...; a bandit has a single observation, 0.")
        check(np.array_equal(first, again),
              f"{setup}.reset(seed={seed}) twice gave two different sets of true values "
              f"({short(first)}, {short(again)}). Draw them with the generator the environment "
              "passes to Testbed.reset (self.np_random).")
        check(not np.array_equal(first, other),
              f"{setup}.reset with seeds {seed} and {seed + 1} gave the same true values "
              f"{short(first)}: Testbed.reset must draw new values from the generator it gets.")
        check(got["reset_optimal"] == int(first.argmax()),
              f"{setup}.reset: info['optimal_action'] is {got['reset_optimal']}, but the "
              f"largest of q_star = {short(first)} is arm {int(first.argmax())}.")
        rewards = np.asarray(got["rewards"], dtype=float)
        check(len(got["before"]) == steps and rewards.shape == (steps,),
              f"{setup}: the probe made {steps} steps and got {rewards.shape} rewards")
        noise = np.empty(steps)
        for index in range(steps):
            action = index % k
            before = numpy(got["before"][index])
            check(before.shape == (1, k) and np.isfinite(before).all(),
                  f"{setup}: before pull {index + 1}, testbed.q_star is {short(before)}; "
                  f"expected {k} finite true values of shape (1, {k})")
            check(got["optimal"][index] == int(before.argmax()),
                  f"{setup}: info['optimal_action'] was {got['optimal'][index]} when arm "
                  f"{action} was pulled, but q_star was then {short(before)}.")
            noise[index] = rewards[index] - float(before[0, action])
            check(math.isfinite(noise[index]),
                  f"{setup}: pulling arm {action} with q_star[{action}] = "
                  f"{float(before[0, action]):.4f} paid {rewards[index]}; the reward is "
                  "q_star[action] plus N(0, 1) noise.")
        noise = noise.reshape(rounds, k)  # noise[r, a]: the r-th pull of arm a
        # Pulls 2j and 2j + 1 of an arm: independent N(0, 1) noises, so their difference over
        # sqrt(2) is N(0, 1), independent across the k * rounds / 2 disjoint pairs.
        pairs = ((noise[1::2] - noise[0::2]) / math.sqrt(2)).reshape(-1)
        low, high = chi_square_interval(pairs.size, alpha)
        spread = float(np.sum(pairs**2))
        check(
            low <= spread <= high,
            f"{setup}: pulling an arm again must pay fresh N(0, 1) noise. Arm 0 paid "
            f"{short(rewards[::k][:6])} in its first pulls (q_star[0] was "
            f"{float(numpy(got['before'][0])[0, 0]):.4f}); over {pairs.size} pairs of pulls of "
            "one arm, (noise of the second - noise of the first) / sqrt(2) has root mean "
            f"square {math.sqrt(spread / pairs.size):.4f} (a correct testbed gives "
            f"{math.sqrt(low / pairs.size):.4f} to {math.sqrt(high / pairs.size):.4f}). The "
            "reward is q_star[run, actions[run]] + rng.normal(...), drawn at every pull.",
        )
        flat = noise.reshape(-1)
        allowed = z / math.sqrt(flat.size)
        check(
            abs(float(flat.mean())) <= allowed,
            f"{setup}: the reward noise, reward - q_star[action] (before the pull), should have "
            f"mean 0; the mean of {flat.size} of them is {float(flat.mean()):.4f} (a correct "
            f"testbed stays within +- {allowed:.4f}). The reward is q_star[run, actions[run]] "
            "plus N(0, 1) noise.",
        )
        low, high = chi_square_interval(flat.size, alpha)
        spread = float(np.sum(flat**2))
        check(
            low <= spread <= high,
            f"{setup}: the reward noise, reward - q_star[action] (before the pull), should have "
            f"standard deviation 1; the {flat.size} values have root mean square "
            f"{math.sqrt(spread / flat.size):.4f} (a correct testbed gives "
            f"{math.sqrt(low / flat.size):.4f} to {math.sqrt(high / flat.size):.4f}).",
        )
        check(not any(got["ended"]), f"{setup}: an episode ended on its own")


# ============================================================================ choosing arms


@pytest.mark.points(1)
@pytest.mark.public
def test_greedy_picks_the_largest_value(student, np_rng, seed):
    """greedy returns the arm with the largest value in every row."""
    # Docstring: "The arm with the largest value in every row"; "Returns an int array of
    # shape (runs,)" (choices() checks shape, dtype and range before anything else).
    # Docstring: "entries may be +inf": case 2 puts +inf at each row's maximum. Two cases.
    for case in range(2):
        runs, k = 50, int(np_rng.integers(3, 12))
        values = distinct_values(np_rng, runs, k)
        if case:
            values[np.arange(runs), values.argmax(axis=1)] = np.inf
        check_greedy_choices(student, values, seed)


def check_greedy_choices(student, values: np.ndarray, seed: int) -> None:
    runs, k = values.shape
    got = choices(student.probe("bandits.greedy_choices", tensor(values), seed), runs, k,
                  "greedy(values, rng)")
    want = values.argmax(axis=1)
    wrong = np.flatnonzero(got != want)
    if wrong.size:
        row = int(wrong[0])
        fail(
            f"greedy(values, rng) with values of shape ({runs}, {k}): in {wrong.size} row(s) "
            f"the chosen arm is not the largest. Row {row}: values {short(values[row])}, "
            f"expected arm {want[row]}, got arm {got[row]}."
        )


@pytest.mark.points(2)
@pytest.mark.public
def test_greedy_breaks_ties_at_random(student, np_rng, seed):
    """greedy chooses uniformly among tied maxima (finite or +inf)."""
    # Docstring: "ties broken uniformly at random"; "in each row, every arm holding the row's
    # maximum is equally likely to be chosen" (each row on its own random numbers).
    runs, k, tied = 3000, 8, 3
    values = np_rng.normal(size=(runs, k))
    # The same arms are tied in every row, so that rows sharing one random draw would all
    # make the same choice and fail: each row must break its ties independently.
    arms = np.tile(np.sort(np_rng.choice(k, size=tied, replace=False)), (runs, 1))
    top = np.where(np_rng.random(runs) < 1 / 3, np.inf, values.max(axis=1) + 1.0)
    values[np.arange(runs)[:, None], arms] = top[:, None]
    got = choices(student.probe("bandits.greedy_choices", tensor(values), seed), runs, k,
                  "greedy(values, rng)")

    position = np.argmax(arms == got[:, None], axis=1)  # which of the tied arms was chosen
    outside = np.flatnonzero(~(arms == got[:, None]).any(axis=1))
    if outside.size:
        row = int(outside[0])
        fail(
            f"greedy(values, rng): in {outside.size} of {runs} rows the chosen arm does not "
            f"hold the row's maximum. Row {row}: values {short(values[row])}, got arm "
            f"{got[row]}; the maximum is held by arms {arms[row].tolist()}."
        )
    # Each row's choice is one of its 3 tied arms with probability 1/3 each, independently of
    # the other rows. Three checks (first, second, third tied arm), each with alpha = 1e-6/3
    # and Bernstein's half-width for n = 3000, p = 1/3 (about 0.05): false failure <= 1e-6.
    alpha = FALSE_FAILURE / tied
    for j in range(tied):
        share = float(np.mean(position == j))
        allowed = bernstein_halfwidth(1 / tied, runs, alpha)
        check(
            abs(share - 1 / tied) <= allowed,
            f"greedy(values, rng) on {runs} rows that each have {tied} arms tied for the "
            f"maximum: the {['first', 'second', 'third'][j]} tied arm (in index order) was "
            f"chosen in {100 * share:.1f}% of the rows; every tied arm should be chosen "
            f"{100 / tied:.1f}% +- {100 * allowed:.1f}% of the time. np.argmax always returns "
            "the first maximum: break ties at random with the generator, with separate random "
            "numbers for every row.",
        )
    same_choices_whatever_the_globals(student, "bandits.greedy_choices", (tensor(values), seed),
                                      got, "greedy(values, rng)")


@pytest.mark.points(1)
@pytest.mark.public
def test_random_agent_is_uniform(student, np_rng, seed):
    """RandomAgent chooses every arm with probability 1/k."""
    # Docstring (RandomAgent): "Chooses every arm with probability 1/k": k = 2, then k from 3-10.
    # Docstring: "One arm per run, uniformly at random among all k. Returns int, shape
    # (runs,)"; k = 2 is the edge where leaving out the last arm leaves a constant.
    # Two cases (k = 2 and k drawn from 3-10), each with k checks (one per arm) at alpha =
    # 1e-6 / (2 k) and Bernstein's half-width for n = 20000 runs and p = 1/k: false-failure
    # probability at most 1e-6 for the test.
    for k in (2, int(np_rng.integers(3, 11))):
        check_random_agent(student, 20000, k, seed)


def check_random_agent(student, runs: int, k: int, seed: int) -> None:
    got = choices(student.probe("bandits.random_agent_choices", runs, k, seed), runs, k,
                  f"RandomAgent({runs}, {k}).act")
    same_choices_whatever_the_globals(student, "bandits.random_agent_choices", (runs, k, seed),
                                      got, f"RandomAgent({runs}, {k}).act")
    allowed = bernstein_halfwidth(1 / k, runs, FALSE_FAILURE / (2 * k))
    shares = np.bincount(got, minlength=k) / runs
    worst = int(np.argmax(np.abs(shares - 1 / k)))
    check(
        abs(shares[worst] - 1 / k) <= allowed,
        f"RandomAgent({runs}, {k}).act: arm {worst} was chosen in {100 * shares[worst]:.1f}% "
        f"of the runs; each arm should get {100 / k:.1f}% +- {100 * allowed:.1f}%. All "
        f"shares: {short(100 * shares)}%.",
    )


def chosen_ranks(values: np.ndarray, choices: np.ndarray) -> np.ndarray:
    """0 for the greedy arm, 1 for the second-best, ... (values are distinct in each row)."""
    order = np.argsort(-values, axis=1)
    return np.argmax(order == choices[:, None], axis=1)


@pytest.mark.points(2)
@pytest.mark.public
def test_epsilon_greedy_explores_at_rate_epsilon(student, np_rng, seed):
    """EpsilonGreedyAgent explores with probability epsilon, uniformly over all arms."""
    # Docstring (EpsilonGreedyAgent.act): "Returns int, shape (runs,)": choices() checks both.
    # Docstring: "Epsilon-greedy choice, independently in every run"; "With probability
    # epsilon the run explores: an arm uniformly at random among all k (the greedy arm
    # included). Otherwise it exploits". (Exploiting through greedy, ties at random: the
    # figure tests' first step, where every estimate is tied.)
    runs, k = 20000, 10
    # epsilon stays below 0.3 so that exploring with probability 1 - epsilon (a common slip)
    # cannot look right: then the greedy arm would get epsilon + (1 - epsilon) / k instead.
    epsilon = float(np.round(np_rng.uniform(0.05, 0.3), 3))
    # Every row holds its own values (a random order of the arms), so a constant arm is the
    # greedy one in about 1/k of the rows only: the shares by rank below cannot be met
    # without choosing, in every row, that row's own greedy arm 1 - epsilon of the time.
    # Runs that share one exploring arm would spread evenly over the ranks here, but not over
    # the arms: arm_shares_when_not_greedy catches them.
    values = distinct_values(np_rng, runs, k)
    got = choices(student.probe("bandits.epsilon_greedy_choices", tensor(values), epsilon, seed),
                  runs, k, f"EpsilonGreedyAgent({runs}, {k}, epsilon={epsilon}).act")
    same_choices_whatever_the_globals(
        student, "bandits.epsilon_greedy_choices", (tensor(values), epsilon, seed), got,
        f"EpsilonGreedyAgent({runs}, {k}, epsilon={epsilon}).act")
    shares = np.bincount(chosen_ranks(values, got), minlength=k) / runs
    expected = np.full(k, epsilon / k)
    expected[0] += 1 - epsilon
    # 2k checks (greedy arm, second-best, ..., worst; then each arm where it is not the
    # greedy one), each with alpha = 1e-6 / (2k) and Bernstein's half-width at its own n and
    # p: false failure at most 1e-6.
    alpha = FALSE_FAILURE / (2 * k)
    setup = (f"EpsilonGreedyAgent({runs}, {k}, epsilon={epsilon}).act with distinct values "
             "in every run")
    greedy_allowed = bernstein_halfwidth(expected[0], runs, alpha)
    if abs(shares[0] - (epsilon + (1 - epsilon) / k)) <= greedy_allowed:
        slip = ("That is what exploring with probability 1 - epsilon gives: check which branch "
                "epsilon applies to (a run explores when rng.random() < epsilon).")
    elif abs(shares[0] - (1 - epsilon)) <= greedy_allowed:
        slip = ("That is what exploring among the other arms only gives: an exploring run "
                "picks any of the k arms, the greedy one included.")
    else:
        slip = ("A run explores when rng.random() < epsilon, and then picks any of the k arms; "
                "every run needs its own random numbers.")
    check(
        abs(shares[0] - expected[0]) <= greedy_allowed,
        f"{setup}: the greedy arm was chosen in {100 * shares[0]:.1f}% of the runs; it should "
        f"be 1 - epsilon + epsilon / k = {100 * expected[0]:.1f}% +- "
        f"{100 * greedy_allowed:.1f}%. {slip}",
    )
    for rank in range(1, k):
        allowed = bernstein_halfwidth(expected[rank], runs, alpha)
        check(
            abs(shares[rank] - expected[rank]) <= allowed,
            f"{setup}: the arm ranked {rank + 1} of {k} by value was chosen in "
            f"{100 * shares[rank]:.2f}% of the runs; exploring picks every arm with "
            f"probability 1/k, so each non-greedy arm should get epsilon / k = "
            f"{100 * expected[rank]:.2f}% +- {100 * allowed:.2f}% (each run needs its own "
            "random numbers).",
        )
    arm_shares_when_not_greedy(values, got, epsilon / k, alpha, setup)


def arm_shares_when_not_greedy(values: np.ndarray, got: np.ndarray, p: float, alpha: float,
                               setup: str) -> None:
    """Arm by arm, over the rows where it is not the greedy arm: chosen with probability p (an
    exploring run picks it with probability 1/k), independently in every row. k checks, each
    at `alpha`, Bernstein's half-width for that arm's number of rows. Runs that all explore
    with one shared arm give that arm epsilon instead of epsilon / k."""
    runs, k = values.shape
    greedy_arms = values.argmax(axis=1)
    for arm in range(k):
        rows = greedy_arms != arm
        n = int(rows.sum())
        share = float(np.mean(got[rows] == arm))
        allowed = bernstein_halfwidth(p, n, alpha)
        check(
            abs(share - p) <= allowed,
            f"{setup}: arm {arm} was chosen in {100 * share:.2f}% of the {n} runs where it is "
            f"not the greedy arm; an exploring run picks any of the k arms with probability "
            f"1/k, so it should be {100 * p:.2f}% +- {100 * allowed:.2f}%. Every run needs its "
            "own random numbers (one random arm for all exploring runs piles them onto it).",
        )


@pytest.mark.points(1)
def test_epsilon_zero_is_greedy_and_epsilon_one_is_uniform(student, np_rng, seed):
    """EpsilonGreedyAgent with epsilon 0 always exploits; with epsilon 1 it is uniform."""
    # Docstring: "With probability epsilon the run explores ... Otherwise it exploits", at
    # the two ends of the range.
    # Every row holds its own values (a random order of the arms): a constant arm is the
    # greedy one in about 1/k of the rows, so epsilon = 0 cannot be met without choosing each
    # row's own greedy arm. With epsilon = 1 both the ranks and the arms must be uniform (a
    # shared random arm would still look uniform over the ranks).
    runs, k = 20000, int(np_rng.integers(3, 11))
    values = distinct_values(np_rng, runs, k)
    never = choices(student.probe("bandits.epsilon_greedy_choices", tensor(values), 0.0, seed),
                    runs, k, f"EpsilonGreedyAgent({runs}, {k}, epsilon=0.0).act")
    wrong = int(np.sum(never != values.argmax(axis=1)))
    check(wrong == 0, f"EpsilonGreedyAgent({runs}, {k}, epsilon=0.0).act chose a non-greedy "
          f"arm in {wrong} of {runs} runs; with epsilon = 0 it must always exploit.")
    always = choices(student.probe("bandits.epsilon_greedy_choices", tensor(values), 1.0, seed),
                     runs, k, f"EpsilonGreedyAgent({runs}, {k}, epsilon=1.0).act")
    shares = np.bincount(chosen_ranks(values, always), minlength=k) / runs
    # 2k checks (k ranks, then k arms where they are not greedy), each with alpha = 1e-6 /
    # (2k), Bernstein at p = 1/k and its own n: <= 1e-6 in all.
    alpha = FALSE_FAILURE / (2 * k)
    allowed = bernstein_halfwidth(1 / k, runs, alpha)
    worst = int(np.argmax(np.abs(shares - 1 / k)))
    check(
        abs(shares[worst] - 1 / k) <= allowed,
        f"EpsilonGreedyAgent({runs}, {k}, epsilon=1.0).act: the arm ranked {worst + 1} by "
        f"value was chosen in {100 * shares[worst]:.1f}% of the runs; with epsilon = 1 every "
        f"arm should get {100 / k:.1f}% +- {100 * allowed:.1f}% (an exploring run picks any "
        "of the k arms, the greedy one included).",
    )
    arm_shares_when_not_greedy(values, always, 1 / k, alpha,
                               f"EpsilonGreedyAgent({runs}, {k}, epsilon=1.0).act")


# ============================================================================ learning values


def update_sequence(np_rng: np.random.Generator, steps: int, runs: int, k: int):
    actions = np_rng.integers(k, size=(steps, runs))
    rewards = np.round(np_rng.normal(1.0, 2.0, size=(steps, runs)), 2)
    return actions, rewards


def explain_value_mismatch(
    got: dict[str, Any], want: dict[str, Any], actions: np.ndarray, rewards: np.ndarray,
    setup: str, rule: str,
) -> None:
    """Fail with the first step and run where the values or counts go wrong."""
    got_values, want_values = numpy(got["values"]), numpy(want["values"])
    got_counts, want_counts = numpy(got["counts"]), numpy(want["counts"])
    steps, runs = actions.shape
    if got_values.shape != want_values.shape or got_counts.shape != want_counts.shape:
        fail(f"{setup}: after each update, values and counts should have shape "
             f"{want_values.shape[1:]}; got {got_values.shape[1:]} and {got_counts.shape[1:]}.")
    for step in range(steps):
        for run in range(runs):
            arm = int(actions[step, run])
            history = rewards[: step + 1, run][actions[: step + 1, run] == arm]
            if not np.array_equal(got_counts[step, run], want_counts[step, run]):
                fail(
                    f"{setup}: after update {step + 1}, counts[{run}] is "
                    f"{got_counts[step, run].tolist()}; expected "
                    f"{want_counts[step, run].tolist()}. Add 1 to the count of the chosen arm "
                    "(only that one) in every run."
                )
            close = np.allclose(got_values[step, run], want_values[step, run],
                                rtol=EXACT_RTOL, atol=EXACT_ATOL)
            if not close:
                fail(
                    f"{setup}: after update {step + 1}, values[{run}] is "
                    f"{short(got_values[step, run])}; expected "
                    f"{short(want_values[step, run])}. In run {run}, arm {arm} has now been "
                    f"paid {short(history)}. {rule}"
                )


@pytest.mark.points(2)
@pytest.mark.public
def test_sample_average_update(student, reference, np_rng):
    """EpsilonGreedyAgent.update keeps the sample average of each arm's rewards."""
    # Docstring (EpsilonGreedyAgent.update): "both of shape (runs,)": 5 runs, 15 updates.
    # Docstring (EpsilonGreedyAgent): "counts: int (runs, k), N(a), how many times each arm has
    # been chosen": read after every update.
    # Docstring: "In every run, only the chosen arm A changes ... N(A) <- N(A) + 1 ... Q(A) <-
    # Q(A) + step * (R - Q(A)), step = 1 / N(A) (the new count) for sample averages". Values and
    # counts are read after every update. ("Update self.counts and self.values in place" is
    # advice: the grader reads agent.values and agent.counts, so a reassigned array passes.)
    steps, runs, k = 15, 5, 4
    actions, rewards = update_sequence(np_rng, steps, runs, k)
    args = (tensor(actions), tensor(rewards), k, None, 0.0)
    got = student.probe("bandits.value_updates", *args)
    want = reference.probe("bandits.value_updates", *args)
    explain_value_mismatch(
        got, want, actions, rewards,
        f"EpsilonGreedyAgent({runs}, {k}, step_size=None).update on a fixed sequence",
        "With sample averages Q(A) is the mean of the rewards arm A has been paid: after "
        "adding 1 to N(A), Q(A) += (R - Q(A)) / N(A), with this arm's own count N(A).",
    )
    # Docstring (EpsilonGreedyAgent): "counts: int (runs, k)": the dtype after every update, by
    # name, next to the counts' values compared above (the probe casts those to int64).
    dtypes = [str(dtype) for dtype in got["count_dtypes"]]
    check(all(dtype.startswith(("int", "uint")) for dtype in dtypes),
          f"EpsilonGreedyAgent({runs}, {k}, step_size=None).update: after an update counts "
          f"holds {', '.join(dtypes)} values; the docstring says counts: int (runs, k) "
          "(increment the chosen entries in place by the integer 1; adding a float, or a "
          "one-hot row of floats, makes counts float)")


@pytest.mark.points(2)
def test_constant_step_size_update_from_optimistic_values(student, reference, np_rng):
    """EpsilonGreedyAgent.update with a constant step size, from optimistic initial values."""
    # Docstring (EpsilonGreedyAgent): "values: float (runs, k), the estimates Q(a); they start at
    # initial_value": initial values drawn from 2-6.
    # Docstring: "or step = step_size when it is set"; class docstring: the estimates "start
    # at initial_value".
    steps, runs, k = 15, 5, 4
    step_size = float(np.round(np_rng.uniform(0.05, 0.5), 3))
    initial = float(np.round(np_rng.uniform(2.0, 6.0), 2))
    actions, rewards = update_sequence(np_rng, steps, runs, k)
    args = (tensor(actions), tensor(rewards), k, step_size, initial)
    got = student.probe("bandits.value_updates", *args)
    want = reference.probe("bandits.value_updates", *args)
    explain_value_mismatch(
        got, want, actions, rewards,
        f"EpsilonGreedyAgent({runs}, {k}, step_size={step_size}, initial_value={initial})"
        ".update on a fixed sequence",
        f"With a constant step size Q(A) += {step_size} * (R - Q(A)), starting from "
        f"Q = {initial} (not 0), whatever the count.",
    )


# ============================================================================ UCB


def ucb_scores(values: np.ndarray, counts: np.ndarray, c: float, t: np.ndarray) -> np.ndarray:
    return values + c * np.sqrt(np.log(t)[:, None] / counts)


def ucb_cases(np_rng: np.random.Generator, runs: int, k: int, c: float):
    """Values and counts (all arms tried) for UCB, in random order:

    - clear-cut rows (80%): the choice is the same for t - 1, t and t + 1, with a margin of
      1e-3; about half of them choose differently when the log is left out of the bonus;
    - rows that need t exactly (20%): two arms whose scores cross between t and t - 1 (or
      t + 1), all others far behind; the margin at t is at least 1e-7, far above rounding.
    """
    clear_runs = runs - runs // 5
    values_rows, counts_rows = [], []
    with_log_differs = 0
    while len(values_rows) < clear_runs:
        values = np_rng.normal(size=(4 * runs, k))
        counts = np_rng.integers(1, 60, size=(4 * runs, k))
        t = counts.sum(axis=1) + 1
        choices = [ucb_scores(values, counts, c, t + d) for d in (-1, 0, 1)]
        ordered = np.sort(choices[1], axis=1)
        clear = (ordered[:, -1] - ordered[:, -2] > 1e-3) & np.all(
            [scores.argmax(axis=1) == choices[1].argmax(axis=1) for scores in choices], axis=0
        )
        no_log = (values + c * np.sqrt(t[:, None] / counts)).argmax(axis=1)
        differs = no_log != choices[1].argmax(axis=1)
        for row in np.flatnonzero(clear):
            if differs[row] or with_log_differs >= clear_runs // 2:
                values_rows.append(values[row])
                counts_rows.append(counts[row])
                with_log_differs += int(differs[row])
            if len(values_rows) == clear_runs:
                break

    def bonus(t: int, n: int) -> float:
        return c * math.sqrt(math.log(t) / n)

    while len(values_rows) < runs:
        counts = np_rng.integers(1, 60, size=k)
        first, second = np_rng.choice(k, size=2, replace=False)
        if abs(int(counts[first]) - int(counts[second])) < 5:
            continue
        t = int(counts.sum()) + 1
        other = t - 1 if len(values_rows) % 2 else t + 1
        gap_now = bonus(t, counts[first]) - bonus(t, counts[second])
        gap_other = bonus(other, counts[first]) - bonus(other, counts[second])
        if abs(gap_now - gap_other) < 2e-7:
            continue
        values = np_rng.normal(size=k) - 20.0  # far behind: every bonus is below 20
        values[first] = np_rng.normal()
        # first - second scores: gap - (Q_second - Q_first), which changes sign between t and
        # the other t when Q_second - Q_first lies halfway between the two gaps.
        values[second] = values[first] + (gap_now + gap_other) / 2
        values_rows.append(values)
        counts_rows.append(counts)
    order = np_rng.permutation(runs)
    return np.array(values_rows)[order], np.array(counts_rows)[order]


@pytest.mark.points(2)
@pytest.mark.public
def test_ucb_choice_on_constructed_counts(student, reference, np_rng, seed):
    """UCBAgent.act maximises Q(a) + c sqrt(ln t / N(a))."""
    # Docstring (UCBAgent): "c > 0 sets how much the agent explores": c drawn from 0.5-3.
    # Docstring (UCBAgent.act): "Returns int, shape (runs,)": choices() checks both.
    # Docstring: "the arm maximising Q(a) + c * sqrt(ln(t) / N(a))"; "t is the number of the
    # current step, counting from 1: t = counts.sum(axis=1) + 1" (a fifth of the rows choose
    # differently with t - 1 or t + 1); "Returns int, shape (runs,)".
    runs, k = 200, 6
    c = float(np.round(np_rng.uniform(0.5, 3.0), 2))
    values, counts = ucb_cases(np_rng, runs, k, c)
    args = (tensor(values), tensor(counts), c, seed)
    got = choices(student.probe("bandits.ucb_choices", *args), runs, k,
                  f"UCBAgent({runs}, {k}, c={c}).act")
    want = numpy(reference.probe("bandits.ucb_choices", *args))
    wrong = np.flatnonzero(got != want)
    if wrong.size:
        row = int(wrong[0])
        steps = counts.sum(axis=1)
        t = int(steps[row] + 1)
        scores = ucb_scores(values[row : row + 1], counts[row : row + 1], c, np.array([t]))[0]
        no_log = (values + c * np.sqrt((steps + 1)[:, None] / counts)).argmax(axis=1)
        off_in_t = [
            ucb_scores(values, counts, c, steps + 1 + shift).argmax(axis=1)
            for shift in (-2, -1, 1, 2)
        ]
        hint = ""
        if np.array_equal(got, no_log):
            hint = (" Your choices match the bonus c * sqrt(t / N(a)): the bonus needs the "
                    "natural log of t, c * sqrt(ln(t) / N(a)).")
        elif any(np.array_equal(got, choices) for choices in off_in_t):
            hint = (" Your choices match a t that is off by one or two: t is the number of the "
                    "current step, counting from 1, so t = N.sum() + 1.")
        fail(
            f"UCBAgent({runs}, {k}, c={c}).act with values and counts set: {wrong.size} of "
            f"{runs} choices differ from the expected. Row {row}: Q = {short(values[row])}, "
            f"N = {counts[row].tolist()}, t = N.sum() + 1 = {t}; the scores "
            f"Q + c * sqrt(ln(t) / N) are {short(scores)}, so the choice is arm {want[row]}; "
            f"got arm {got[row]}.{hint}"
        )


@pytest.mark.points(1)
def test_ucb_tries_untried_arms_first(student, np_rng, seed):
    """UCBAgent.act chooses an arm never tried (N(a) = 0) while there is one."""
    # Docstring: "An arm never tried (N(a) = 0) counts as maximising, so all arms get tried
    # first" (rows with untried arms, and the first step, t = 1, where nothing is tried).
    runs, k = 500, 6
    c = float(np.round(np_rng.uniform(0.5, 3.0), 2))
    values = np_rng.normal(size=(runs, k)) + np.where(np_rng.random((runs, k)) < 0.5, 3.0, 0.0)
    counts = np_rng.integers(1, 60, size=(runs, k))
    counts[np_rng.random((runs, k)) < 0.3] = 0
    counts[: runs // 10] = 0  # the very first step: nothing tried, t = 1
    got = choices(student.probe("bandits.ucb_choices", tensor(values), tensor(counts), c, seed),
                  runs, k, f"UCBAgent({runs}, {k}, c={c}).act")
    wrong = np.flatnonzero(
        (counts == 0).any(axis=1) & (counts[np.arange(runs), got] != 0)
    )
    if wrong.size:
        row = int(wrong[0])
        fail(
            f"UCBAgent({runs}, {k}, c={c}).act: in {wrong.size} row(s) an arm that was never "
            f"tried was passed over. Row {row}: Q = {short(values[row])}, "
            f"N = {counts[row].tolist()}; got arm {got[row]}, but arms "
            f"{np.flatnonzero(counts[row] == 0).tolist()} have N = 0 and count as maximising "
            "(give them the score +inf)."
        )
    # Docstring: "all arms get tried first, in random order. Ties are broken at random": at
    # the very first step (nothing tried) every arm is equally likely, whatever Q holds. k
    # checks at alpha = 1e-6 / k, Bernstein at p = 1/k, n = 6000: false failure <= 1e-6.
    first_runs = 6000
    first_values = np_rng.normal(size=(first_runs, k))
    first = choices(student.probe("bandits.ucb_choices", tensor(first_values),
                                  tensor(np.zeros((first_runs, k), dtype=np.int64)), c, seed),
                    first_runs, k, f"UCBAgent({first_runs}, {k}, c={c}).act")
    shares = np.bincount(first, minlength=k) / first_runs
    allowed = bernstein_halfwidth(1 / k, first_runs, FALSE_FAILURE / k)
    worst = int(np.argmax(np.abs(shares - 1 / k)))
    check(abs(shares[worst] - 1 / k) <= allowed,
          f"UCBAgent({first_runs}, {k}, c={c}).act at the first step (N = 0 for every arm): arm "
          f"{worst} was chosen in {100 * shares[worst]:.1f}% of the runs; untried arms are tried "
          f"in random order, so each should get {100 / k:.1f}% +- {100 * allowed:.1f}%: give "
          "untried arms the score +inf (at t = 1, ln(t) / N is 0 / 0) and hand the scores to "
          "greedy, which breaks ties at random.")


# ============================================================================ gradient bandit


def softmax(preferences: np.ndarray) -> np.ndarray:
    shifted = np.exp(preferences - preferences.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@pytest.mark.points(1)
@pytest.mark.public
def test_gradient_bandit_policy_is_a_stable_softmax(student, reference, np_rng):
    """GradientBanditAgent.policy is the softmax of the preferences, stable for large ones."""
    # Docstring: "pi(a) = exp(H(a)) / sum_b exp(H(b)), row by row. Returns float, shape
    # (runs, k); each row sums to 1, even for preferences like 1000".
    runs, k = 8, int(np_rng.integers(3, 11))
    preferences = np_rng.normal(0.0, 3.0, size=(runs, k))
    preferences[-3] += 1000.0
    preferences[-2] -= 1000.0
    preferences[-1, : k // 2] += 1000.0  # a spread of 1000 within the row
    got = student.probe("bandits.gradient_policy", tensor(preferences))
    want = reference.probe("bandits.gradient_policy", tensor(preferences))
    assert_close(
        got, want, rtol=EXACT_RTOL, atol=EXACT_ATOL,
        what=f"GradientBanditAgent({runs}, {k}).policy() for preferences of shape ({runs}, "
        f"{k}) (the last three rows: shifted by +1000, by -1000, and +1000 on half the arms; "
        "subtract each row's maximum before exp)",
    )


@pytest.mark.points(1)
@pytest.mark.public
def test_gradient_bandit_samples_from_its_policy(student, np_rng, seed):
    """GradientBanditAgent.act samples each arm with probability pi(a)."""
    # Docstring: "Sample one arm per run from self.policy(). Returns int, shape (runs,)";
    # every row holds the same preferences, so runs sharing one draw pile onto one arm.
    runs, k = 20000, 5
    preferences = np.tile(np_rng.normal(0.0, 1.0, size=k), (runs, 1))
    got = choices(student.probe("bandits.gradient_choices", tensor(preferences), seed), runs, k,
                  f"GradientBanditAgent({runs}, {k}).act")
    same_choices_whatever_the_globals(student, "bandits.gradient_choices",
                                      (tensor(preferences), seed), got,
                                      f"GradientBanditAgent({runs}, {k}).act")
    pi = softmax(preferences[0])
    shares = np.bincount(got, minlength=k) / runs
    # k checks, each with alpha = 1e-6 / k and Bernstein's half-width for n = 20000 at
    # p = pi(a): false-failure probability at most 1e-6.
    for arm in range(k):
        allowed = bernstein_halfwidth(pi[arm], runs, FALSE_FAILURE / k)
        check(
            abs(shares[arm] - pi[arm]) <= allowed,
            f"GradientBanditAgent({runs}, {k}).act with every row's preferences "
            f"{short(preferences[0])}: arm {arm} was chosen in {100 * shares[arm]:.2f}% of the "
            f"runs; the policy gives it {100 * pi[arm]:.2f}% +- {100 * allowed:.2f}%. All "
            f"shares: {short(100 * shares)}%, policy: {short(100 * pi)}%.",
        )


def gradient_case(np_rng: np.random.Generator, runs: int, k: int) -> dict[str, Any]:
    return {
        "preferences": np_rng.normal(0.0, 1.0, size=(runs, k)),
        "mean_reward": np_rng.normal(3.0, 1.0, size=runs),
        "steps": int(np_rng.integers(1, 50)),
        "actions": np_rng.integers(k, size=runs),
        "rewards": np_rng.normal(4.0, 1.5, size=runs),
        "step_size": float(np.round(np_rng.uniform(0.05, 0.5), 3)),
    }


def gradient_args(case: dict[str, Any], baseline: bool) -> tuple:
    return (
        tensor(case["preferences"]), tensor(case["mean_reward"]), case["steps"],
        tensor(case["actions"]), tensor(case["rewards"]), case["step_size"], baseline,
    )


def check_gradient_step(student, reference, case: dict[str, Any], baseline: bool) -> None:
    # Docstring (GradientBanditAgent): "mean_reward: float (runs,), the average of all rewards
    # received so far", "steps: int, how many updates have been made": both read after one
    # update.
    runs, k = case["preferences"].shape
    got = student.probe("bandits.gradient_update", *gradient_args(case, baseline))
    want = reference.probe("bandits.gradient_update", *gradient_args(case, baseline))
    setup = (
        f"GradientBanditAgent({runs}, {k}, step_size={case['step_size']}, "
        f"baseline={baseline}).update from a state with steps = {case['steps']}"
    )
    check(got["steps"] == want["steps"], f"{setup}: steps is {got['steps']} after one update; "
          f"expected {want['steps']}.")
    # Docstring (GradientBanditAgent): "steps: int": its type after the update, by name (a
    # Python int or a numpy integer), next to its value above.
    check(str(got["steps_type"]).startswith(("int", "uint")),
          f"{setup}: steps is a {got['steps_type']} after the update; the docstring says "
          "steps: int, how many updates have been made (steps += 1)")
    # Class docstring: "mean_reward: ... the average of all rewards received so far", with or
    # without the baseline (baseline=False only stops the update from subtracting it).
    assert_close(
        got["mean_reward"], want["mean_reward"], rtol=EXACT_RTOL, atol=EXACT_ATOL,
        what=f"{setup}: mean_reward after the update (the running average of all rewards, "
        "mean_reward += (R - mean_reward) / steps with the new steps, also when "
        "baseline=False)",
    )
    got_h, want_h = numpy(got["preferences"]), numpy(want["preferences"])
    if got_h.shape == want_h.shape and not np.allclose(
        got_h, want_h, rtol=EXACT_RTOL, atol=EXACT_ATOL
    ):
        # Name the likely slip before the generic difference.
        pi = softmax(case["preferences"])
        one_hot = np.eye(k)[case["actions"]]
        old_mean = case["mean_reward"]
        new_mean = old_mean + (case["rewards"] - old_mean) / (case["steps"] + 1)
        if baseline:
            variants = {
                "ignores the baseline although baseline=True (it uses R, not R - mean_reward)":
                    np.zeros(runs),
                "uses mean_reward from before this step's reward was folded in": old_mean,
            }
        else:
            variants = {"subtracts a baseline although baseline=False": new_mean}
            variants["subtracts a baseline (the old mean_reward) although baseline=False"] = (
                old_mean
            )
        for slip, used in variants.items():
            guess = case["preferences"] + case["step_size"] * (
                (case["rewards"] - used)[:, None] * (one_hot - pi)
            )
            if np.allclose(got_h, guess, rtol=1e-6, atol=1e-9):
                fail(f"{setup}: the new preferences match an update that {slip}. "
                     "H(a) += step_size * (R - baseline) * (1[a == A] - pi(a)), where the "
                     "baseline is the updated mean_reward (or 0 when baseline=False).")
    assert_close(
        got["preferences"], want["preferences"], rtol=EXACT_RTOL, atol=EXACT_ATOL,
        what=f"{setup}: preferences after the update, "
        "H(a) += step_size * (R - baseline) * (1[a == A] - pi(a)) with pi before the update",
    )


@pytest.mark.points(2)
@pytest.mark.public
def test_gradient_bandit_update_with_baseline(student, reference, np_rng):
    """GradientBanditAgent.update with the average-reward baseline, on a constructed step."""
    # Docstring (GradientBanditAgent.update): "actions and rewards have shape (runs,)", "with pi the
    # policy from *before* this update", "where baseline is the new mean_reward (this reward
    # included)": steps > 0 in the state, so the old and the new mean_reward differ.
    # Docstring: "steps <- steps + 1, mean_reward <- mean_reward + (R - mean_reward) /
    # steps"; "H(a) <- H(a) + step_size * (R - baseline) * (1[a == A] - pi(a))" with "pi the
    # policy from *before* this update" and "baseline the new mean_reward (this reward
    # included)"; state constructed with steps > 0, so the order of the two updates shows.
    check_gradient_step(student, reference, gradient_case(np_rng, 6, 5), baseline=True)


@pytest.mark.points(1)
def test_gradient_bandit_update_without_baseline(student, reference, np_rng):
    """GradientBanditAgent.update without a baseline, on a constructed step."""
    # Docstring: "or 0 when self.baseline is False"; class docstring: "With baseline=False
    # the agent updates as if the baseline were always 0".
    check_gradient_step(student, reference, gradient_case(np_rng, 6, 5), baseline=False)


# ============================================================================ the runner


@pytest.mark.points(2)
@pytest.mark.public
def test_runner_records_reward_and_optimal_actions(student, reference, np_rng, seed):
    """run_experiment returns per-step average reward and fraction of optimal actions."""
    # Docstring: "First reset the testbed with rng"; "at every step: the agent chooses ...,
    # the testbed pays ..., and the agent learns from them"; "Record the mean reward over the
    # runs and the fraction of runs whose arm was optimal *when it was chosen* (ask
    # testbed.optimal_arms() before pulling ...)"; "Returns Curves with two float arrays of shape
    # (steps,)". A scripted agent and testbed count the calls and script the rewards.
    steps, runs, k = 6, 5, 3
    actions = np_rng.integers(k, size=(steps, runs))
    rewards = np.round(np_rng.normal(size=(steps, runs, k)), 2)
    optimal = np_rng.integers(k, size=(steps, runs))  # the best arms change after every pull
    args = (tensor(actions), tensor(rewards), tensor(optimal), seed)
    got = student.probe("bandits.runner_on_script", *args)
    want = reference.probe("bandits.runner_on_script", *args)
    setup = (f"run_experiment(agent, testbed, steps={steps}, rng) with a scripted agent and a "
             f"testbed of {runs} runs whose best arms change after every pull")
    check(got["resets"] == 1, f"{setup}: testbed.reset(rng) was called {got['resets']} "
          "time(s); call it once, before the first step.")
    check(got["pulls"] == steps and got["updates"] == steps,
          f"{setup}: {got['pulls']} pulls and {got['updates']} agent updates; expected one of "
          f"each per step ({steps}).")
    assert_close(got["seen_rewards"], want["seen_rewards"], rtol=0, atol=0,
                 what=f"{setup}: the rewards handed to agent.update")
    assert_close(got["average_reward"], want["average_reward"], rtol=EXACT_RTOL,
                 atol=EXACT_ATOL, what=f"{setup}: Curves.average_reward, the mean reward over "
                 "the runs at every step")
    got_optimal = numpy(got["optimal_action"])
    after_pull = np.mean(actions == optimal[np.minimum(np.arange(steps) + 1, steps - 1)], axis=1)
    if got_optimal.shape == (steps,) and np.allclose(got_optimal, after_pull) and not (
        np.allclose(after_pull, numpy(want["optimal_action"]))
    ):
        fail(f"{setup}: Curves.optimal_action counts the best arms after the pull. Ask "
             "testbed.optimal_arms() before testbed.pull(...): a drifting testbed changes "
             "when it is pulled.")
    assert_close(got["optimal_action"], want["optimal_action"], rtol=EXACT_RTOL,
                 atol=EXACT_ATOL, what=f"{setup}: Curves.optimal_action, the fraction of runs "
                 "whose chosen arm was a best arm at every step")


# ============================================================================ end to end
#
# Each configuration runs 2000 fresh standard testbeds for 1000 steps, on the grader's own
# testbed and loop (so only the agents are judged), and is compared at step 1000 with the
# expectation measured from 200,000 runs of the reference. The book's values, read off its
# figures, are shown for comparison: the percentages agree within 2 points, the rewards
# within 0.04 except epsilon = 0.01 (1.32 here, 1.26 read off the book; an independent
# plain-Python simulation also gives 1.32).
RUNS, STEPS = 2000, 1000


@dataclass(frozen=True)
class Expected:
    agent: str  # what the configuration exercises, for the message
    book_reward: float | None  # read off the book's figure (None: the book shows no curve)
    book_optimal: float
    value: float  # E[q*(A) at step 1000], averaged over runs; the same as E[reward]
    value_se: float  # standard error of that constant (200,000 runs)
    value_sd: float  # standard deviation of one run's q*(A) at step 1000
    optimal: float  # probability that A at step 1000 is the optimal arm
    optimal_se: float  # standard error of that constant


# Measured with the reference on 200,000 runs per configuration (the probe's own loop).
EXPECTED = {
    "epsilon = 0 (greedy)": Expected(
        "EpsilonGreedyAgent(epsilon=0) with sample averages",
        1.00, 0.34, 1.0318, 0.0014, 0.606, 0.3579, 0.0011),
    "epsilon = 0.01": Expected(
        "EpsilonGreedyAgent(epsilon=0.01) with sample averages",
        1.26, 0.59, 1.3218, 0.0015, 0.652, 0.6017, 0.0011),
    "epsilon = 0.1": Expected(
        "EpsilonGreedyAgent(epsilon=0.1) with sample averages",
        1.33, 0.80, 1.3687, 0.0018, 0.796, 0.7992, 0.0009),
    "optimistic, greedy, Q1 = 5": Expected(
        "EpsilonGreedyAgent(epsilon=0, step_size=0.1, initial_value=5)",
        1.48, 0.86, 1.5021, 0.0014, 0.623, 0.8595, 0.0008),
    "UCB, c = 2": Expected(
        "UCBAgent(c=2) with sample averages",
        1.47, 0.86, 1.4921, 0.0014, 0.641, 0.8579, 0.0008),
    "gradient bandit, alpha = 0.1, with baseline": Expected(
        "GradientBanditAgent(step_size=0.1, baseline=True), true values with mean 4",
        None, 0.84, 5.5029, 0.0014, 0.612, 0.8520, 0.0008),
    "gradient bandit, alpha = 0.1, without baseline": Expected(
        "GradientBanditAgent(step_size=0.1, baseline=False), true values with mean 4",
        None, 0.50, 5.2075, 0.0016, 0.707, 0.4892, 0.0011),
}


def check_final_step(student, np_rng: np.random.Generator, seed: int, names: list[str]) -> None:
    # The true values are drawn here, at grade time, and only the arms the agent chose come
    # back: what they are worth and whether they were optimal is computed here. The arms at
    # step 1 are checked too (nothing is known yet, so every correct agent chooses uniformly:
    # worth N(mean, 1) on average, optimal 1 time in k), so the curve must rise from there:
    # choices that know the best arm from the start fail.
    q_stars = {name: np_rng.normal(4.0 if "gradient" in name else 0.0, 1.0, size=(RUNS, 10))
               for name in names}
    got = student.probe("bandits.choices_along_the_way", names,
                        {name: tensor(q) for name, q in q_stars.items()}, STEPS, [1, STEPS],
                        seed, timeout=15 * len(names))
    # Four checks per configuration, each at alpha = 1e-6 / (4 * len(names)): false failure
    # at most 1e-6 per test. The constants themselves carry a standard error (200,000 runs);
    # the bands are widened by 5 of those (a 5-sigma error in a constant has probability
    # below 6e-7).
    alpha = FALSE_FAILURE / (4 * len(names))
    # chosen_value is a mean over 2000 independent runs of a light-tailed variable: the normal
    # approximation is used, at a level ten times stricter than needed (alpha / 10), to cover
    # its error in the far tail.
    z = gaussian_z(alpha / 10)
    rows = np.arange(RUNS)
    for name in names:
        want, q_star = EXPECTED[name], q_stars[name]
        check(isinstance(got, dict) and isinstance(got.get(name), list)
              and len(got[name]) == 2, f"{name}: the probe sent back no choices")
        first, last = (choices(actions, RUNS, 10, f"{name} ({want.agent}).act")
                       for actions in got[name])
        mean = 4.0 if "gradient" in name else 0.0
        first_value = float(q_star[rows, first].mean())
        allowed = z / math.sqrt(RUNS)  # each chosen value is N(mean, 1), independently
        first_optimal = int(np.sum(first == q_star.argmax(axis=1)))
        low, high = binomial_interval(RUNS, 0.1, 0.1, alpha)
        check(abs(first_value - mean) <= allowed and low <= first_optimal <= high,
              f"{name} ({want.agent}), {RUNS} runs: at step 1, before anything is learned, the "
              f"chosen arms' true values averaged {first_value:.3f} and {first_optimal} runs "
              f"chose the optimal arm; an agent that knows nothing yet gives {mean:g} +- "
              f"{allowed:.3f} and {low} to {high} (one in k = 10). Start from the initial "
              "estimates and break ties at random.")
        chosen_value = float(q_star[rows, last].mean())
        allowed = z * want.value_sd / math.sqrt(RUNS) + 5 * want.value_se
        book = f" (the book: {want.book_reward:.2f})" if want.book_reward is not None else ""
        check(
            abs(chosen_value - want.value) <= allowed,
            f"{name} ({want.agent}), {RUNS} runs: at step {STEPS} the chosen arms' true values "
            f"averaged {chosen_value:.3f}; a correct agent gives {want.value:.3f} +- "
            f"{allowed:.3f}{book}.",
        )
        low, high = binomial_interval(
            RUNS, want.optimal - 5 * want.optimal_se, want.optimal + 5 * want.optimal_se, alpha
        )
        count = int(np.sum(last == q_star.argmax(axis=1)))
        check(
            low <= count <= high,
            f"{name} ({want.agent}), {RUNS} runs: at step {STEPS} "
            f"{100 * count / RUNS:.1f}% of the runs chose the optimal arm; a "
            f"correct agent gives {100 * low / RUNS:.1f}% to {100 * high / RUNS:.1f}% (expected "
            f"{100 * want.optimal:.1f}%, the book: {100 * want.book_optimal:.0f}%).",
        )


@pytest.mark.points(2)
def test_figure_2_2_greedy_and_epsilon_greedy(student, np_rng, seed):
    """Figure 2.2: epsilon = 0, 0.01, 0.1 reach the book's reward and % optimal at step 1000."""
    check_final_step(student, np_rng, seed,
                     ["epsilon = 0 (greedy)", "epsilon = 0.01", "epsilon = 0.1"])


@pytest.mark.points(1)
def test_figure_2_3_optimistic_initial_values(student, np_rng, seed):
    """Figure 2.3: optimistic greedy (Q1 = 5, alpha = 0.1) reaches the book's numbers."""
    check_final_step(student, np_rng, seed, ["optimistic, greedy, Q1 = 5"])


@pytest.mark.points(1)
def test_figure_2_4_ucb(student, np_rng, seed):
    """Figure 2.4: UCB with c = 2 reaches the book's numbers at step 1000."""
    check_final_step(student, np_rng, seed, ["UCB, c = 2"])


@pytest.mark.points(2)
def test_figure_2_5_gradient_bandit(student, np_rng, seed):
    """Figure 2.5: the gradient bandit with and without baseline (alpha = 0.1, q* + 4)."""
    # Docstring (GradientBanditAgent): "they start at 0, so the first choice is uniform": the
    # choices at step 1 (check_final_step) must be uniform over the 10 arms.
    check_final_step(student, np_rng, seed, [
        "gradient bandit, alpha = 0.1, with baseline",
        "gradient bandit, alpha = 0.1, without baseline",
    ])
