"""Tests for lab 1, part "deep Q-learning" (dqn.py).

RL is tested where it is deterministic. The schedule, the buffer, the TD target, one training
step, the target sync and greedy evaluation are compared with the reference on inputs drawn
at grade time (weights, batches, seeds). Epsilon-greedy is judged statistically. Learning is
judged on the probe environments, whose Q-values are known exactly, and on one CartPole run
with a step budget, whose trained network the reference evaluates greedily. Comments starting
"Docstring:" name the sentence of dqn.py a check enforces.
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.engine.checks import assert_close, assert_dtype, check, fail

FALSE_FAILURE = 1e-6  # per statistical test, split over its checks with the union bound

# float32 networks: another correct order of operations (mse_loss vs a manual mean, `@` vs
# nn.Linear) moves results by a few float32 ulps, far below these.
FLOAT_RTOL, FLOAT_ATOL = 1e-5, 1e-6


def _size(rng: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(1, generator=rng))


def _weights(rng: torch.Generator, sizes: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) pairs of an MLP with these layer sizes, PyTorch's default scale."""
    pairs = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False):
        bound = 1 / math.sqrt(fan_in)
        pairs.append(((torch.rand(fan_out, fan_in, generator=rng) * 2 - 1) * bound,
                      (torch.rand(fan_out, generator=rng) * 2 - 1) * bound))
    return pairs


def _flags(rng: torch.Generator, n: int, p: float) -> torch.Tensor:
    return (torch.rand(n, generator=rng) < p).float()


def _transitions(rng: torch.Generator, n: int, obs_dim: int, num_actions: int) -> dict:
    """n distinct random transitions (observations are continuous, so no two coincide)."""
    return {
        "observations": torch.randn(n, obs_dim, generator=rng),
        "actions": torch.randint(0, num_actions, (n,), generator=rng),
        "rewards": torch.randn(n, generator=rng),
        "next_observations": torch.randn(n, obs_dim, generator=rng),
        "terminated": _flags(rng, n, 0.3),
        "truncated": _flags(rng, n, 0.3),
    }


def _batch(rng: torch.Generator, size: int, obs_dim: int, num_actions: int) -> dict:
    """A batch as ReplayBatch holds it, with every (terminated, truncated) combination present."""
    batch = _transitions(rng, size, obs_dim, num_actions)
    batch["terminated"][:4] = torch.tensor([0.0, 1.0, 0.0, 1.0])
    batch["truncated"][:4] = torch.tensor([0.0, 0.0, 1.0, 1.0])
    return batch


def _round(values) -> list:
    return [round(float(v), 4) for v in values]


# ============================================================================ the Q-network


def _qnetwork_weights(rng: torch.Generator, obs_dim: int, actions: int, hidden: int) -> dict:
    pairs = _weights(rng, [obs_dim, hidden, hidden, actions])
    return {f"{layer}.{kind}": tensor for layer, pair in zip(("fc1", "fc2", "head"), pairs,
                                                             strict=True)
            for kind, tensor in zip(("weight", "bias"), pair, strict=True)}


def _qnetwork_output(weights: dict, obs: torch.Tensor) -> torch.Tensor:
    """fc1 -> ReLU -> fc2 -> ReLU -> head, computed here in the trusted process."""
    hidden = torch.relu(obs @ weights["fc1.weight"].T + weights["fc1.bias"])
    hidden = torch.relu(hidden @ weights["fc2.weight"].T + weights["fc2.bias"])
    return hidden @ weights["head.weight"].T + weights["head.bias"]


def _mlp_output(weights: list, obs: torch.Tensor) -> torch.Tensor:
    """The probes' MLP (Linear layers with ReLUs between), computed here."""
    out = obs
    for index, (weight, bias) in enumerate(weights):
        out = out @ weight.T + bias
        if index < len(weights) - 1:
            out = torch.relu(out)
    return out


@pytest.mark.points(1)
@pytest.mark.public
def test_qnetwork_parameters(student, rng):
    """QNetwork has the layers fc1, fc2 and head with the specified shapes"""
    # Docstring: "Layers, with these exact attribute names ... fc1: nn.Linear(obs_dim,
    # hidden_dim), then ReLU ... fc2: nn.Linear(hidden_dim, hidden_dim), then ReLU ... head:
    # nn.Linear(hidden_dim, num_actions), no activation"; batch 1 here.
    obs_dim, actions, hidden = _size(rng, 2, 6), _size(rng, 2, 5), _size(rng, 8, 24)
    weights = _qnetwork_weights(rng, obs_dim, actions, hidden)
    obs = torch.randn(1, obs_dim, generator=rng)
    got = student.probe("dqn.qnetwork", obs_dim, actions, hidden, weights, obs)
    want = {name: list(tensor.shape) for name, tensor in weights.items()}
    check(got["shapes"] == want,
          f"QNetwork({obs_dim}, {actions}, hidden_dim={hidden}) has the parameters "
          f"{got['shapes']}; expected exactly {want} (attributes fc1, fc2 and head, each an "
          "nn.Linear). The grader loads weights by these names.")
    # The names are a fact the module could simply report: the same test checks the output
    # of the module loaded with the weights drawn here, computed in this process.
    check(got["q_values"] is not None and got["q_values"]["tensor"] is not None,
          f"QNetwork({obs_dim}, {actions}, hidden_dim={hidden}) returned no Q-values")
    assert_close(got["q_values"]["tensor"], _qnetwork_output(weights, obs), rtol=FLOAT_RTOL,
                 atol=FLOAT_ATOL, dtype=torch.float32,
                 what=f"QNetwork({obs_dim}, {actions}, hidden_dim={hidden}) with given weights "
                 "on one observation")


@pytest.mark.points(2)
@pytest.mark.public
def test_qnetwork_forward(student, reference, rng):
    """QNetwork.forward computes fc1 -> ReLU -> fc2 -> ReLU -> head"""
    obs_dim, actions, hidden = _size(rng, 2, 6), _size(rng, 2, 5), _size(rng, 8, 24)
    weights = _qnetwork_weights(rng, obs_dim, actions, hidden)
    # Docstring: "obs: (batch, obs_dim) float32. Returns Q-values of shape (batch,
    # num_actions)"; Q-values can be negative (no activation on head). Batch 1 edge in the
    # parameter test above.
    obs = torch.randn(_size(rng, 3, 9), obs_dim, generator=rng) * 2
    got = student.probe("dqn.qnetwork", obs_dim, actions, hidden, weights, obs)
    want = reference.probe("dqn.qnetwork", obs_dim, actions, hidden, weights, obs)
    check(got["q_values"] is not None,
          "QNetwork's parameters do not have the specified names and shapes, so weights could "
          "not be loaded into it (see the test of its parameters)")
    what = f"QNetwork({obs_dim}, {actions}, hidden_dim={hidden})(obs of shape {tuple(obs.shape)})"
    check(got["q_values"]["tensor"] is not None,
          f"{what} returned a {got['q_values'].get('type')}, expected a tensor")
    assert_close(got["q_values"]["tensor"], want["q_values"]["tensor"], rtol=FLOAT_RTOL,
                 atol=FLOAT_ATOL, dtype=torch.float32, what=what)


# ============================================================================ the replay buffer

BUFFER_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated",
                 "truncated")


@pytest.mark.points(3)
@pytest.mark.public
def test_replay_buffer_wraps_around(student, reference, rng):
    """ReplayBuffer.add fills slots in order and overwrites the oldest once full"""
    # Docstring (ReplayBuffer): "the k-th transition added (counting from 0) lives in slot
    # k % capacity". (add): "Store one transition in slot self.next_index, then advance
    # next_index and size. next_index wraps around to 0 after capacity - 1; size stops growing
    # at capacity": len() after every add, next_index at the end, and every field of every
    # slot (truncated included: "truncated is stored").
    capacity, obs_dim = _size(rng, 4, 9), _size(rng, 2, 5)
    adds = capacity + _size(rng, 2, capacity + 2)
    transitions = _transitions(rng, adds, obs_dim, 3)
    got = student.probe("dqn.buffer_after_adds", capacity, obs_dim, transitions)
    want = reference.probe("dqn.buffer_after_adds", capacity, obs_dim, transitions)
    where = f"a ReplayBuffer of capacity {capacity} after {adds} calls to add"
    for count, (length, expected) in enumerate(zip(got["lengths"], want["lengths"],
                                                   strict=True), start=1):
        check(length == expected,
              f"len(buffer) is {length} after {count} calls to add on a buffer of capacity "
              f"{capacity}; expected {expected} (size grows by one per add, up to capacity)")
    check(got["next_index"] == want["next_index"],
          f"{where}: next_index is {got['next_index']}, expected {want['next_index']} "
          f"({adds} % {capacity}): it wraps around to 0 after capacity - 1")
    for slot in range(capacity):
        expected_row = (adds - 1) - ((adds - 1 - slot) % capacity)  # the last add into `slot`
        for name in BUFFER_FIELDS:
            got_value = got["arrays"][name][slot]
            if not torch.equal(got_value.to(torch.float64),
                               want["arrays"][name][slot].to(torch.float64)):
                holds = [i for i in range(adds) if torch.equal(
                    transitions[name][i].to(torch.float64), got_value.to(torch.float64))]
                found = (f"the value of transition {holds[0]}" if holds else
                         "a value that was never added")
                fail(f"{where}: slot {slot} of `{name}` holds {found}; it should hold "
                     f"transition {expected_row} (transitions are numbered from 0, the k-th "
                     "goes to slot k % capacity, and later ones overwrite earlier ones)")


@pytest.mark.points(2)
@pytest.mark.public
def test_replay_buffer_sample(student, reference, rng, seed):
    """ReplayBuffer.sample returns stored transitions with the specified shapes and dtypes"""
    # Docstring: "Draw batch_size stored transitions uniformly, with replacement. Draw the
    # slots with exactly one call, rng.integers(0, len(self), size=batch_size)": every row is
    # one whole stored transition, and the draws are those of the reference's generator.
    # Two cases: a buffer that has wrapped around, and one sampled before it is full (only
    # the filled slots may be drawn: rng.integers(0, len(self))).
    capacity = _size(rng, 6, 12)
    for adds in (capacity + _size(rng, 1, capacity), _size(rng, 2, capacity - 2)):
        check_buffer_sample(student, reference, rng, seed, capacity, adds)


def check_buffer_sample(student, reference, rng, seed, capacity: int, adds: int) -> None:
    obs_dim = _size(rng, 2, 5)
    batch_size = _size(rng, 16, 40)
    transitions = _transitions(rng, adds, obs_dim, 4)
    got = student.probe("dqn.buffer_samples", capacity, obs_dim, transitions, batch_size,
                        seed % 2**32, 2)
    want = reference.probe("dqn.buffer_samples", capacity, obs_dim, transitions, batch_size,
                           seed % 2**32, 2)
    where = (f"buffer.sample({batch_size}, rng) on a buffer of capacity {capacity} after "
             f"{adds} adds")
    stored = range(max(adds - capacity, 0), adds)
    for got_batch, want_batch in zip(got["batches"], want["batches"], strict=True):
        for name in BUFFER_FIELDS:
            tensor = got_batch[name]["tensor"]
            check(tensor is not None,
                  f"{where}: batch.{name} is a {got_batch[name].get('type')}, expected a "
                  "torch.Tensor")
            expected = want_batch[name]
            check(tuple(tensor.shape) == tuple(expected["tensor"].shape),
                  f"{where}: batch.{name} has shape {tuple(tensor.shape)}, expected "
                  f"{tuple(expected['tensor'].shape)}")
            # Docstring (ReplayBatch): observations float32, actions int64, rewards,
            # terminated, truncated float32; read off the tensor itself.
            assert_dtype(tensor, expected["tensor"].dtype, f"{where}: batch.{name}")
        for row in range(batch_size):
            matches = [i for i in stored if all(
                torch.equal(got_batch[name]["tensor"][row].to(torch.float64),
                            transitions[name][i].to(torch.float64)) for name in BUFFER_FIELDS)]
            check(matches,
                  f"{where}: row {row} of the batch is not one of the stored transitions "
                  f"(the last {min(capacity, adds)} added): either its fields come from "
                  "different transitions, or it is an overwritten or empty slot")
    for draw, (got_batch, want_batch) in enumerate(zip(got["batches"], want["batches"],
                                                       strict=True), start=1):
        same = all(torch.equal(got_batch[name]["tensor"], want_batch[name]["tensor"])
                   for name in BUFFER_FIELDS)
        check(same and got["next_draw"] == want["next_draw"],
              f"{where}: draw {draw} holds valid transitions but not the ones the same "
              "generator gives the reference: draw the slots with exactly one call, "
              "rng.integers(0, len(self), size=batch_size), and no other use of rng")
    # Docstring: "return them as a ReplayBatch of tensors on `self.device`": a buffer made
    # with device="meta" (every machine has it) must return meta tensors.
    check(got["meta_devices"] == ["meta"] * len(BUFFER_FIELDS),
          f"{where}, for a buffer made with device='meta': the batch's tensors are on "
          f"{got['meta_devices']}; put them on self.device (torch.as_tensor(..., "
          "device=self.device))")


# ============================================================================ exploration


@pytest.mark.points(2)
@pytest.mark.public
def test_linear_schedule(student, reference, rng):
    """linear_schedule decays over exploration_fraction * total_timesteps, then stays flat"""
    # Docstring (linear_schedule): "Epsilon at environment step step (counting from 0)": step 0 is
    # the first step asked.
    # Docstring: "Epsilon falls linearly from start_e at step 0 to end_e at step
    # exploration_fraction * total_timesteps, and stays at end_e from then on (so with
    # exploration_fraction 0 it is end_e from step 0)": steps inside and after the decay,
    # then fraction 0, then the docstring's example.
    total = _size(rng, 1000, 50_000)
    fraction = _uniform(rng, 0.1, 0.6)
    start_e, end_e = _uniform(rng, 0.8, 1.0), _uniform(rng, 0.01, 0.1)
    decay_end = fraction * total
    steps = [0, int(decay_end * 0.25), int(decay_end * 0.5), int(decay_end * 0.9),
             int(decay_end) + 1, int((decay_end + total) / 2), total - 1]
    got = student.probe("dqn.schedule", steps, start_e, end_e, fraction, total)
    want = reference.probe("dqn.schedule", steps, start_e, end_e, fraction, total)
    # Length and finiteness first: a NaN compares false with everything.
    check(len(got) == len(steps) and all(math.isfinite(e) for e in got),
          f"linear_schedule at steps {steps} returned {got}; expected finite numbers")
    for step, got_e, want_e in zip(steps, got, want, strict=True):
        if abs(got_e - want_e) > 1e-6 + 1e-6 * abs(want_e):
            hint = ""
            over_all_steps = start_e + (end_e - start_e) * step / total
            if step < decay_end and abs(got_e - over_all_steps) < 1e-6:
                hint = (" That is a decay over all of total_timesteps: epsilon must reach "
                        "end_e at step exploration_fraction * total_timesteps.")
            fail(f"linear_schedule(step={step}, start_e={start_e:.4f}, end_e={end_e:.4f}, "
                 f"exploration_fraction={fraction:.4f}, total_timesteps={total}) returned "
                 f"{got_e:.6f}; expected {want_e:.6f} (the decay ends at step "
                 f"{decay_end:.1f}).{hint}")
    # No exploration phase at all: epsilon is end_e from the first step.
    flat = [0, 1, total - 1]
    got = student.probe("dqn.schedule", flat, start_e, end_e, 0.0, total)
    want = reference.probe("dqn.schedule", flat, start_e, end_e, 0.0, total)
    assert_close(got, want, rtol=1e-6, atol=1e-6,
                 what=f"linear_schedule(step, start_e={start_e:.4f}, end_e={end_e:.4f}, "
                 f"exploration_fraction=0, total_timesteps={total}) at steps {flat} (no decay "
                 "phase: end_e from step 0)")
    # Docstring: "Example: start_e 1.0, end_e 0.1, fraction 0.5, total 1000: step 250 ->
    # 0.55, step 700 -> 0.1."
    got = student.probe("dqn.schedule", [250, 700], 1.0, 0.1, 0.5, 1000)
    assert_close(got, [0.55, 0.1], rtol=1e-6, atol=1e-6,
                 what="linear_schedule(step, 1.0, 0.1, 0.5, 1000) at steps [250, 700] (the "
                 "docstring's example)")


def hoeffding_halfwidth(n: int, alpha: float) -> float:
    """t with P(|mean of n independent Bernoulli(p) - p| >= t) <= alpha, for every p.

    Hoeffding's inequality: the probability is at most 2 exp(-2 n t^2); solve for t.
    """
    return math.sqrt(math.log(2 / alpha) / (2 * n))


def _actions(got: dict, count: int, num_actions: int, what: str) -> list[int]:
    check(got["actions"] is not None, f"{what} {got['bad']}; expected a Python int between 0 "
          f"and {num_actions - 1}")
    actions = got["actions"]
    check(isinstance(actions, list) and len(actions) == count
          and all(isinstance(a, int) and 0 <= a < num_actions for a in actions),
          f"{what}: expected {count} actions between 0 and {num_actions - 1}")
    return actions


@pytest.mark.points(1)
@pytest.mark.public
def test_epsilon_greedy_exploits(student, rng, seed):
    """epsilon_greedy with epsilon = 0 always takes the greedy action"""
    # Docstring (epsilon_greedy): "(shape obs_shape, not batched)": the probe passes one
    # observation of shape (obs_dim,) at a time.
    # Docstring: "otherwise the greedy action argmax_a Q(obs, a)", for one observation
    # "(shape obs_shape, not batched)".
    # A network with weights drawn here and a different observation at every call: the
    # greedy action (argmax_a Q(obs, a)) is computed here, so it takes running the network.
    # Docstring: "Returns a Python int".
    for _ in range(2):
        obs_dim, actions = _size(rng, 2, 5), _size(rng, 2, 6)
        weights = _weights(rng, [obs_dim, 16, actions])
        observations = torch.randn(200, obs_dim, generator=rng) * 2
        got = student.probe("dqn.epsilon_greedy_actions", weights, observations, 0.0,
                            seed % 2**32)
        what = f"epsilon_greedy(q_network, obs, 0.0, {actions}, rng)"
        chosen = _actions(got, 200, actions, what)
        want = _mlp_output(weights, observations).argmax(dim=1).tolist()
        wrong = [i for i in range(200) if chosen[i] != want[i]]
        if wrong:
            q_values = _round(_mlp_output(weights, observations)[wrong[0]])
            fail(f"{what} chose a non-greedy action for {len(wrong)} of 200 observations; the "
                 f"first: Q(obs) = {q_values}, chose {chosen[wrong[0]]}. With epsilon = 0 it "
                 "must always take argmax_a Q(obs, a).")


@pytest.mark.points(2)
@pytest.mark.public
def test_epsilon_greedy_explores(student, rng, seed):
    """epsilon_greedy explores uniformly over all actions with probability epsilon"""
    # Docstring: "With probability epsilon, a uniformly random action in 0 .. num_actions - 1
    # (any of them, the greedy one included)".
    obs_dim, actions = 3, _size(rng, 2, 4)
    weights = _weights(rng, [obs_dim, 16, actions])
    obs = torch.randn(1, obs_dim, generator=rng)
    greedy = int(_mlp_output(weights, obs).argmax())
    calls = 20_000
    observations = obs.expand(calls, obs_dim).contiguous()
    # 2 * actions checks (every action's frequency, at epsilon = 1 and at the drawn epsilon),
    # each with alpha = 1e-6 / (2 * actions) and Hoeffding's half-width: at most 8 checks, so
    # t <= sqrt(ln(2 * 8 / 1e-6) / 40000) = 0.0204. False-failure probability <= 1e-6.
    # epsilon in [0.25, 0.4] keeps the common slips far outside the band: exploring only
    # among the non-greedy actions moves the greedy frequency by epsilon / k >= 0.0625, and
    # exploring with probability 1 - epsilon moves it by |1 - 2 epsilon| (1 - 1/k) >= 0.1.
    half_width = hoeffding_halfwidth(calls, FALSE_FAILURE / (2 * actions))
    epsilon = _uniform(rng, 0.25, 0.4)
    for eps in (1.0, epsilon):
        call_seed = (seed + int(eps * 1000)) % 2**32
        got = student.probe("dqn.epsilon_greedy_actions", weights, observations, eps,
                            call_seed, timeout=30)
        what = f"epsilon_greedy(q_network, obs, {eps:.3f}, {actions}, rng)"
        chosen = _actions(got, calls, actions, what)
        counts = [chosen.count(a) for a in range(actions)]
        expected = [eps / actions + (1 - eps) * (a == greedy) for a in range(actions)]
        frequencies = [count / calls for count in counts]
        for action in range(actions):
            if abs(frequencies[action] - expected[action]) > half_width:
                fail(f"epsilon_greedy with epsilon = {eps:.3f}, {actions} actions and "
                     f"Q-values {_round(_mlp_output(weights, obs)[0])} (greedy action {greedy}) "
                     f"chose the actions with frequencies {_round(frequencies)} in {calls} "
                     f"calls; expected about {_round(expected)} (each within "
                     f"{half_width:.3f}): with probability epsilon a uniformly random action "
                     "among all of them (the greedy one included), otherwise the greedy one. "
                     "This check fails a correct implementation with probability below 1e-6.")
    # Docstring: "Use `rng` for all randomness": the same generator seed with the global
    # generators seeded differently gives the same actions.
    again = student.probe("dqn.epsilon_greedy_actions", weights, observations[:2000], epsilon,
                          call_seed, global_seed=1, timeout=30)
    check(again["actions"] == chosen[:2000],
          "epsilon_greedy: two runs with generators seeded alike but the global generators "
          "(np.random, random, torch) seeded differently chose different actions: draw every "
          "random number from the rng you are given.")


# ============================================================================ learning


def _describe_target_rows(batch: dict, got: torch.Tensor, want: torch.Tensor) -> str:
    kinds = {(0.0, 0.0): "ordinary", (1.0, 0.0): "terminated", (0.0, 1.0): "truncated",
             (1.0, 1.0): "terminated and truncated"}
    wrong = (got - want).abs() > 1e-5 + 1e-5 * want.abs()
    rows = wrong.nonzero().flatten().tolist()
    kind_of = {row: kinds[(float(batch["terminated"][row]), float(batch["truncated"][row]))]
               for row in rows}
    first = rows[0]
    message = (f"{len(rows)} of {len(want)} targets differ from the expected ones; the first "
               f"is row {first}, a {kind_of[first]} transition with reward "
               f"{float(batch['rewards'][first]):.4f}: got {float(got[first]):.5f}, expected "
               f"{float(want[first]):.5f}.")
    wrong_kinds = set(kind_of.values())
    if wrong_kinds <= {"truncated"}:
        message += (" Only truncated transitions are wrong: a truncated episode was cut by a "
                    "time limit, its state still has a future, so the target must still "
                    "bootstrap. Use only `terminated`, never `truncated`, to stop it.")
    elif wrong_kinds <= {"terminated", "terminated and truncated"}:
        message += (" Only terminated transitions are wrong: after termination nothing "
                    "follows, so the target is just the reward. Multiply the bootstrap term "
                    "by (1 - terminated).")
    return message


@pytest.mark.points(3)
@pytest.mark.public
def test_td_target(student, reference, rng):
    """td_target bootstraps unless terminated (truncated transitions still bootstrap)"""
    # Docstring: "y = r + gamma * (1 - terminated) * max_a' Q_target(s', a'), shape (B,)";
    # "A terminated transition ... no bootstrap. A truncated one ... *does* bootstrap": the
    # batch holds all four (terminated, truncated) combinations.
    obs_dim, actions, size = _size(rng, 2, 5), _size(rng, 2, 4), _size(rng, 8, 16)
    weights = _weights(rng, [obs_dim, 16, actions])
    batch = _batch(rng, size, obs_dim, actions)
    gamma = _uniform(rng, 0.8, 0.99)
    got = student.probe("dqn.td_target", weights, batch, gamma)
    want = reference.probe("dqn.td_target", weights, batch, gamma)
    what = f"td_target(target_network, batch of {size}, gamma={gamma:.4f})"
    check(got["target"]["tensor"] is not None,
          f"{what} returned a {got['target'].get('type')}, expected a tensor")
    tensor, expected = got["target"]["tensor"], want["target"]["tensor"]
    check(tuple(tensor.shape) == tuple(expected.shape),
          f"{what} returned shape {tuple(tensor.shape)}, expected {tuple(expected.shape)}: one "
          "target per transition")
    close = ((tensor.double() - expected.double()).abs()
             <= 1e-5 + 1e-5 * expected.double().abs()).all()
    if not close:
        fail(f"{what}: " + _describe_target_rows(batch, tensor.double(), expected.double()))


@pytest.mark.points(1)
def test_td_target_has_no_gradient(student, rng):
    """td_target returns a target that no gradient can flow through"""
    # Docstring: "No gradient may flow into the target network".
    # "No gradient" is what code that computes nothing satisfies too, so it is asserted with
    # the target's values, computed here from the weights and batch drawn here. The gradient
    # is judged from data: a backward pass through the returned target must leave no
    # gradient in the target network, whose parameters must be as given.
    obs_dim, actions = _size(rng, 2, 5), _size(rng, 2, 4)
    weights = _weights(rng, [obs_dim, 16, actions])
    batch = _batch(rng, 8, obs_dim, actions)
    gamma = _uniform(rng, 0.8, 0.99)
    got = student.probe("dqn.td_target", weights, batch, gamma)
    what = f"td_target(target_network, batch of 8, gamma={gamma:.4f})"
    check(got["target"]["tensor"] is not None,
          f"{what} returned a {got['target'].get('type')}, expected a tensor")
    next_q = _mlp_output(weights, batch["next_observations"]).max(dim=1).values
    want = batch["rewards"] + gamma * (1 - batch["terminated"]) * next_q
    assert_close(got["target"]["tensor"], want, rtol=FLOAT_RTOL, atol=1e-5,
                 dtype=torch.float32, what=what)
    with_gradient = [g for g in got["gradients"] if g is not None and bool((g != 0).any())]
    check(not with_gradient,
          f"{what} returned a tensor that gradients flow through into the target network: "
          "the target network would learn from the loss. Compute it under torch.no_grad() "
          "(or .detach() it).")
    flat = [w for pair in weights for w in pair]
    check(len(got["parameters"]) == len(flat) and all(
        torch.equal(a, b) for a, b in zip(got["parameters"], flat, strict=True)),
          f"{what} changed the target network's parameters; it must only read them")


def _train_step_case(rng: torch.Generator) -> tuple:
    obs_dim, actions = _size(rng, 2, 5), _size(rng, 2, 4)
    online = _weights(rng, [obs_dim, 16, 16, actions])
    target = _weights(rng, [obs_dim, 16, 16, actions])
    batches = [_batch(rng, _size(rng, 16, 32), obs_dim, actions) for _ in range(2)]
    return online, target, batches, _uniform(rng, 0.8, 0.99)


@pytest.mark.points(3)
@pytest.mark.public
def test_train_step(student, reference, rng):
    """train_step gives the reference's loss and updated weights over two steps"""
    # Docstring (train_step): "returns the loss as a Python float": its type is checked; rewards
    # N(0, 1) put TD errors on both sides of 1, where huber and the squared error part.
    # Docstring: "loss = mean over the batch of huber(Q(s, a) - y)" with "Q(s, a) the
    # q_network's value of the action taken" and "y = td_target(...)"; "Zero the gradients,
    # backward, optimizer.step()" (two steps: gradients left over from step 1 change step 2);
    # "returns the loss as a Python float".
    online, target, batches, gamma = _train_step_case(rng)
    learning_rate = 1e-2
    got = student.probe("dqn.train_steps", online, target, batches, gamma, learning_rate)
    want = reference.probe("dqn.train_steps", online, target, batches, gamma, learning_rate)
    names = [f"{layer}.{kind}" for layer in range(3) for kind in ("weight", "bias")]
    for step, (got_step, want_step) in enumerate(zip(got["steps"], want["steps"], strict=True),
                                                 start=1):
        what = (f"train_step number {step} (Adam, lr {learning_rate}, gamma {gamma:.4f}, "
                f"batch of {len(batches[step - 1]['actions'])})")
        check(got_step["loss"] is not None and got_step["loss_type"] == "float",
              f"{what} returned a {got_step['loss_type']}; expected the loss as a Python float "
              "(loss.item(): a tensor would keep the step's autograd graph alive)")
        if abs(got_step["loss"] - want_step["loss"]) > 1e-4 * abs(want_step["loss"]) + 1e-6:
            fail(f"{what} returned the loss {got_step['loss']:.6f}; expected "
                 f"{want_step['loss']:.6f}: the mean over the batch of the Huber loss "
                 "(F.smooth_l1_loss) between Q(s, a), the q_network's value of the action "
                 "taken, and y = td_target(...) computed before the update. (train_step "
                 "uses your td_target: if the TD-target test fails too, fix that first.)")
        # Adam divides by the gradient's running scale, so a float32 reordering of the loss
        # moves weights by ~1e-7 relative; 1e-4 of lr is far above that, far below lr.
        for index, (got_w, want_w) in enumerate(zip(got_step["online"], want_step["online"],
                                                    strict=True)):
            assert_close(got_w, want_w, rtol=1e-4, atol=1e-4 * learning_rate,
                         what=f"{what}: q_network's parameter {names[index]} after the update "
                         "(if the loss matches, look at zero_grad, backward and step)")


@pytest.mark.points(1)
def test_train_step_leaves_target_alone(student, reference, rng):
    """train_step sends no gradient into the target network and does not change it"""
    # Docstring: "Only the q_network learns: the target network gets no gradient".
    # A train_step that does nothing leaves the target alone too, so the same test requires
    # the step's loss and the q_network's new weights (values only the work produces).
    online, target, batches, gamma = _train_step_case(rng)
    got = student.probe("dqn.train_steps", online, target, batches, gamma, 1e-2)
    want = reference.probe("dqn.train_steps", online, target, batches, gamma, 1e-2)
    flat_target = [w for pair in target for w in pair]
    for number, (step, want_step) in enumerate(zip(got["steps"], want["steps"], strict=True),
                                               start=1):
        what = f"train_step number {number}"
        check(step["loss"] is not None, f"{what} returned a {step['loss_type']}, not the loss")
        assert_close(step["loss"], want_step["loss"], rtol=1e-4, atol=1e-6,
                     what=f"{what}: the loss (train_step uses your td_target: if the TD-target "
                     "tests fail too, fix those first)")
        assert_close(step["online"], want_step["online"], rtol=1e-4, atol=1e-6,
                     what=f"{what}: q_network's parameters after the update")
        with_gradient = [i for i, g in enumerate(step["target_gradients"])
                         if g is not None and bool((g != 0).any())]
        check(not with_gradient,
              "after train_step the target network's parameters have gradients: the TD "
              "target was computed with autograd on. Compute it under torch.no_grad() (or "
              "detach it) so that only q_network learns.")
        check(all(torch.equal(a, b) for a, b in zip(step["target"], flat_target, strict=True)),
              "train_step changed the target network's parameters; only sync_target may")


@pytest.mark.points(1)
@pytest.mark.public
def test_sync_target(student, rng):
    """sync_target copies q_network's values into target_network, without sharing tensors"""
    # Docstring: "Copy every parameter of q_network into target_network"; "Afterwards the two
    # networks compute the same function, but training q_network further must not change
    # target_network (copy values, do not share tensors)".
    # Judged from the target network's Q-values at observations drawn here, compared with
    # q_network's computed here: "copied" is never taken on the worker's word.
    for _ in range(2):
        obs_dim, actions = _size(rng, 2, 5), _size(rng, 2, 4)
        online = _weights(rng, [obs_dim, 16, actions])
        target = _weights(rng, [obs_dim, 16, actions])
        observations = torch.randn(5, obs_dim, generator=rng)
        got = student.probe("dqn.sync", online, target, observations)
        want = _mlp_output(online, observations)
        assert_close(got["after_sync"], want, rtol=FLOAT_RTOL, atol=FLOAT_ATOL,
                     what="the target network's Q-values after sync_target(q_network, "
                     "target_network), compared with q_network's: copy the parameters into "
                     "target_network (load_state_dict); rebinding the name inside the function "
                     "does not change the caller's network")
        assert_close(got["after_online_change"], want, rtol=FLOAT_RTOL, atol=FLOAT_ATOL,
                     what="the target network's Q-values after sync_target and then a change "
                     "to q_network's parameters: the two share tensors. Copy the values "
                     "(load_state_dict) instead.")


# ============================================================================ evaluation


@pytest.mark.points(2)
@pytest.mark.public
def test_evaluate(student, reference, rng, seed):
    """evaluate plays greedy episodes seeded seed, seed + 1, ... and returns their returns"""
    # Docstring: "The undiscounted return of num_episodes greedy episodes (epsilon = 0), in
    # order"; "start episode i with env.reset(seed=seed + i) and play until it terminates or
    # is truncated, always taking argmax_a Q(obs, a)" (CartPole truncates at 500; the linear
    # policy reaches it).
    # A linear policy that pushes the cart towards where the pole falls (long episodes), a
    # random MLP (short ones) and a probe whose observation is random.
    # Docstring: "(torch's argmax, so ties go to the lowest action)": a fourth network, random
    # layers under a head with zero weights and one bias for both actions, so Q(obs, 0) ==
    # Q(obs, 1) exactly (0 * h sums to exactly 0) in every state. Action 0 every step ends a
    # CartPole episode in 8 to 11 steps; a random tie-break plays a random policy (22 steps
    # on average), whose return equals it in 3% of episodes (2000 measured), so it matches
    # all of 3 or more episodes with a chance of about 3e-5 or less.
    falling = torch.tensor([0.0, 0.0, 3.0, 1.0]) + 0.3 * torch.randn(4, generator=rng)
    cases = [("CartPole-v1", [(torch.stack([-falling, falling]), torch.zeros(2))], ""),
             ("CartPole-v1", _weights(rng, [4, 16, 2]), ""),
             ("probes/Probe5-v0", _weights(rng, [1, 8, 2]), "")]
    episodes = _size(rng, 3, 6)
    tied = _weights(rng, [4, 16, 16, 2])
    tied[-1] = (torch.zeros(2, 16), tied[-1][1][:1].expand(2).clone())
    cases.append(("CartPole-v1", tied, ": a Q-network whose two actions' Q-values tie in every "
                  "state (zero head weights, equal biases); the docstring asks for torch's "
                  "argmax, so ties go to the lowest action, 0"))
    for env_id, weights, label in cases:
        episode_seed = seed % 2**31
        got = student.probe("dqn.evaluate", weights, env_id, episodes, episode_seed)
        want = reference.probe("dqn.evaluate", weights, env_id, episodes, episode_seed)
        what = (f"evaluate(q_network, {env_id!r}, num_episodes={episodes}, seed={episode_seed})"
                f"{label}")
        check(isinstance(got, list) and len(got) == len(want),
              f"{what} returned {got!r}; expected a list of {len(want)} returns")
        assert_close([float(r) for r in got], want, rtol=0, atol=1e-6,
                     what=f"{what} (the greedy returns, in order: start episode i with "
                     "env.reset(seed=seed + i) and always take the argmax action)")


# ============================================================================ probe environments

# Each probe is learned with a small budget; the overrides keep it to about a second. The
# tolerance, 0.1 on Q-values of size 1 to 2, is loose for a correct agent and tight for every
# bug each probe is there to catch. Measured with these settings: the reference (train alone,
# grading seeds 0-4, all six probes; probe 4 with its own helpers and epsilon 1, seeds 0-6)
# ends within 3e-7 |scale| of the table, with the target network exactly equal to q_network
# (once the fit is exact the gradients vanish, and nothing moves after the last sync), so the
# tolerance and the sync check have a margin of five orders of magnitude. These are trainings
# from the grading seed, not draws compared statistically: a seed learns the probe or it does
# not, and every seed we tried does.
# The hidden probe tests judge `train` alone: the probe runs it with the grader's own QNetwork,
# buffer, schedule, epsilon_greedy, td_target, train_step and sync_target (see the probe they
# name), so a trivial helper can neither pass nor fail them (each helper is judged by its own
# tests, and a broken one costs only those). The public probe-4 test runs the submission's
# own helpers, so that a local run shows the pieces working together.
PROBE_TOLERANCE = 0.1
PROBE_RUN = {"learning_starts": 64, "batch_size": 32, "hidden_dim": 32, "learning_rate": 3e-3,
             "train_frequency": 4, "gradient_steps": 2, "target_network_frequency": 50,
             "exploration_fraction": 0.5, "eval_frequency": 0}
PROBES = {
    # id: (total_timesteps, gamma, {observation: expected Q-values}, what a failure means)
    1: (1000, 0.99, {0.0: [1.0]},
        "the network cannot fit a constant: once step >= learning_starts, take gradient steps, "
        "each on a batch sampled from the buffer and passed to train_step with the q_network, "
        "target_network and optimizer of the setup"),
    2: (1000, 0.99, {-1.0: [-1.0], 1.0: [1.0]},
        "the Q-values do not depend on the observation: store the observation the action was "
        "taken in, move on to next_obs, and start each episode from the observation reset "
        "gives"),
    3: (2000, 0.5, {0.0: [0.5], 1.0: [1.0]},
        "Q(0) should be gamma * Q(1): pass config.gamma to train_step, store the true next "
        "observation, and sync the target network every target_network_frequency steps"),
    4: (1000, 0.99, {0.0: [-1.0, 1.0]},
        "each action should get its own reward: store the action taken with its reward"),
    5: (2000, 0.99, {0.0: [1.0, -1.0], 1.0: [-1.0, 1.0]},
        "the Q-values should depend on both the observation and the action: store each step's "
        "observation, action and reward together"),
    6: (2000, 0.5, {0.0: [2.0]},
        "Probe 6 never terminates; it is truncated every 5 steps, so Q(0) = 1 / (1 - gamma) = "
        "2. About 1.67 is what bootstrapping cut at truncation gives: store `terminated` and "
        "`truncated` separately in the buffer, each the environment's own flag. Much lower "
        "values mean the bootstrap does not propagate: is the target network synced?"),
}
# Added to a failure's explanation when the run used the submission's own helpers.
OWN_HELPERS = ("This run uses your QNetwork, ReplayBuffer, epsilon_greedy, td_target, "
               "train_step and sync_target (with epsilon 1 at every step): if one of their "
               "tests fails, fix that first; here, check too that train_step picks Q(s, a) of "
               "the action taken (gather along the action dimension)")


def _reward_scale(seed: int) -> float:
    """The probe's reward scale, drawn at grade time: +-[1, 2], so the documented table has to
    be learned from the rewards, not remembered (every Q-value is multiplied by it)."""
    draw = torch.Generator().manual_seed(seed % 2**62 + 7)
    magnitude = 1 + float(torch.rand(1, generator=draw))
    return magnitude if float(torch.rand(1, generator=draw)) < 0.5 else -magnitude


PROBE_CURVE_EVERY = 50  # q_network's Q-values are recorded every 50 steps (evaluate's calls)


def _train_probe(student, probe: int, seed: int, probe_name: str) -> tuple[dict, dict, float]:
    """Train on the probe with `probe_name`: the hidden tests' probe runs `train` alone (with
    the grader's helpers), "dqn.train_on_probe" the submission's own helpers too."""
    steps, gamma, table, _ = PROBES[probe]
    scale = _reward_scale(seed)
    overrides = {**PROBE_RUN, "total_timesteps": steps, "gamma": gamma, "seed": seed % 2**31,
                 "eval_frequency": PROBE_CURVE_EVERY}
    got = student.probe(probe_name, f"probes/Probe{probe}-v0", overrides, list(table), scale,
                        timeout=60)
    return got, overrides, scale


def _check_learned(got: dict, probe: int, scale: float, overrides: dict,
                   own_helpers: bool = False) -> None:
    """The Q-values learned on a probe whose rewards were scaled by `scale`: finite, of the
    right shape, within PROBE_TOLERANCE * |scale| of the table, and learned: they moved from
    where the network started (the first point of the curve, before learning starts) by at
    least a quarter of the largest |Q| (a correct agent starts within ~0.4 of 0 and moves by
    at least 0.9 |scale| - 0.4 >= 0.5; a fixed table does not move)."""
    _, gamma, table, meaning = PROBES[probe]
    if own_helpers:
        meaning = f"{meaning}. {OWN_HELPERS}"
    expected = torch.tensor(list(table.values())) * scale
    what = (f"train on probes/Probe{probe}-v0 with rewards scaled by {scale:.3f} for "
            f"{overrides['total_timesteps']} steps (gamma {gamma}, seed {overrides['seed']})")
    learned = got["q_network"]
    assert_close(learned, learned.nan_to_num(), rtol=0, atol=0,
                 what=f"{what}: the learned Q-values")  # shape and NaN first
    check(tuple(learned.shape) == tuple(expected.shape),
          f"after {what} the Q-network gives shape {tuple(learned.shape)} for {len(table)} "
          f"observations; expected {tuple(expected.shape)}")
    tolerance = PROBE_TOLERANCE * abs(scale)
    error = (learned - expected).abs()
    if not bool((error <= tolerance).all()):
        rows = ", ".join(f"Q({obs:+g}) = {_round(q)} (expected {_round(e)})"
                         for obs, q, e in zip(table, learned.tolist(), expected.tolist(),
                                              strict=True))
        largest_return = float(expected.abs().max())
        if float(learned.abs().max()) > largest_return + 0.5 * abs(scale):
            where = ("the (1 - terminated) factor in td_target, and the " if own_helpers
                     else "the ")
            meaning = (f"no Q-value can exceed {largest_return:g} here, so the target keeps "
                       f"bootstrapping past the end of the episode: check {where}`terminated` "
                       f"flag train stores with each transition. Otherwise: {meaning}")
        fail(f"{what} learned {rows}; each should be within {tolerance:.3f}. What this probe "
             f"checks: {meaning}.")
    curve = got["curve"]
    check(isinstance(curve, list) and len(curve) >= 1
          and tuple(curve[0].shape) == tuple(expected.shape),
          f"{what}: train did not call evaluate every eval_frequency = {PROBE_CURVE_EVERY} steps")
    moved = float((learned - curve[0]).abs().max())
    check(moved >= 0.25 * float(expected.abs().max()),
          f"{what}: the Q-values at step {PROBE_CURVE_EVERY}, before learning starts, were "
          f"{_round(curve[0].flatten())}, and they moved by only {moved:.3f} since: the values "
          "must be learned by the network train builds, from the rewards it sees.")


@pytest.mark.points(1)
@pytest.mark.parametrize("probe", [1, 2, 3, 4, 5, 6])
def test_learns_probe(student, seed, probe):
    """train learns probe environment {probe}'s Q-values"""
    # Docstring (train), steps 1-4 as a whole: a loop that explores, stores, resets, trains
    # and syncs as specified learns each probe's Q-values; PROBES says what each one isolates.
    got, overrides, scale = _train_probe(student, probe, seed, "dqn.train_alone_on_probe")
    _check_learned(got, probe, scale, overrides)


@pytest.mark.points(1)
@pytest.mark.public
def test_train_learns_probe_4(student, seed):
    """train, with your other functions, learns probe 4 (rewards -1 and +1 times a drawn scale)"""
    # The cheap local check of train (about a second): probe 4 at two reward scales, with the
    # submission's own QNetwork, buffer, epsilon_greedy, td_target, train_step and sync_target
    # (linear_schedule is replaced by epsilon 1 at every step: the probe's Q-values do not
    # depend on the policy, and the schedule has its own test). Every one of those functions
    # shapes a number judged here: the learned Q-values (network, buffer, both actions
    # explored, the TD target, the gradient step) and the target network's agreement with
    # them after the last sync (sync_target: probe 4's episodes last one step, so its targets
    # never bootstrap and would not show a missing sync).
    for offset in (0, 1):
        got, overrides, scale = _train_probe(student, 4, seed + offset, "dqn.train_on_probe")
        _check_learned(got, 4, scale, overrides, own_helpers=True)
        _check_synced(got, 4, scale, overrides)


def _check_synced(got: dict, probe: int, scale: float, overrides: dict) -> None:
    """The target network's Q-values agree with the learned q_network's within
    PROBE_TOLERANCE * |scale|: once a probe is learned, q_network moves by much less than that
    between two syncs, while a target network that is never synced keeps the initial values
    (at least 0.5 |scale| away, see _check_learned)."""
    online, target = got["q_network"], got["target_network"]
    assert_close(target, target.nan_to_num(), rtol=0, atol=0, what="the target's Q-values")
    gap = float((online - target).abs().max()) if online.shape == target.shape else math.inf
    check(gap <= PROBE_TOLERANCE * abs(scale),
          f"after train on probes/Probe{probe}-v0 the target network's Q-values "
          f"{_round(target.flatten())} are {gap:.3f} away from q_network's "
          f"{_round(online.flatten())}: call sync_target every target_network_frequency steps "
          f"(here {overrides['target_network_frequency']}) once learning has started, and copy "
          "every parameter of q_network into target_network")


@pytest.mark.points(1)
def test_target_network_is_synced(student, seed):
    """train syncs the target network: after training on probe 3 it agrees with q_network"""
    # Docstring (train), step 4: "every config.target_network_frequency steps ... call
    # sync_target".
    # Asserted with the learned values (a network that learned nothing could report two
    # equal tables): q_network must have learned probe 3, and the target must agree with it.
    got, overrides, scale = _train_probe(student, 3, seed, "dqn.train_alone_on_probe")
    _check_learned(got, 3, scale, overrides)
    _check_synced(got, 3, scale, overrides)


@pytest.mark.points(1)
def test_train_stores_truncation(student, seed):
    """train stores truncated transitions as truncated, not terminated, one per env step"""
    # Docstring (train), step 2: "add the transition to the buffer with its own terminated
    # and truncated flags and the true next observation"; step 3: "if the episode ended ...
    # env.reset()".
    # The flags come with the rewards stored (the drawn scale at every step) and with the
    # value learned on probe 6, which only correct flags give.
    got, overrides, scale = _train_probe(student, 6, seed, "dqn.train_alone_on_probe")
    steps = overrides["total_timesteps"]
    terminated, truncated = got["buffer_terminated"], got["buffer_truncated"]
    check(len(terminated) == steps and len(truncated) == steps,
          f"after train on probes/Probe6-v0 for {steps} steps the buffer holds {len(terminated)} "
          f"transitions; expected {steps}, one per environment step")
    assert_close(got["buffer_rewards"], torch.full((steps,), scale), rtol=1e-6, atol=1e-6,
                 what=f"the rewards train stored on probes/Probe6-v0 (every reward is {scale:.4f})")
    check(float(terminated.sum()) == 0,
          f"train stored {int(terminated.sum())} transitions as terminated on Probe 6, which "
          "never terminates (it is only truncated by its time limit): pass the environment's "
          "own `terminated` flag to buffer.add, not `terminated or truncated`")
    want_truncated = torch.tensor([float(i % 5 == 4) for i in range(steps)])
    check(torch.equal(truncated.float(), want_truncated),
          f"train stored {int(truncated.sum())} truncated transitions in {steps} steps of Probe "
          f"6, which truncates at every fifth step: expected {steps // 5}, at steps 4, 9, 14, "
          "... Reset the environment as soon as an episode ends, and store each step's own "
          "flags (with a vector environment, do not store the step that autoreset spends on "
          "resetting)")
    _check_next_observations(student, seed)
    _check_learned(got, 6, scale, overrides)


def _check_next_observations(student, seed: int) -> None:
    """Docstring (train), step 2: "... and the true next observation". Probe 6's observation
    is always 0, so a transition stored after env.reset() (next_obs the next episode's first
    observation, as old gym vector environments gave it) looks the same there; on Probe 3 cut
    by a time limit of one step every transition is 0 -> 1, truncated, and the reset gives 0.
    No learning (learning_starts above the steps): only what is stored is read."""
    steps = 20
    overrides = {**PROBE_RUN, "total_timesteps": steps, "learning_starts": 1000,
                 "seed": seed % 2**31, "eval_frequency": 0}
    got = student.probe("dqn.train_alone_on_cut_probe", overrides, timeout=60)
    what = (f"train on probes/Probe3-v0 cut by a time limit of 1 step for {steps} steps (every "
            "transition goes from observation 0 to observation 1, truncated there)")
    observations = got["buffer_observations"].reshape(-1)
    next_observations = got["buffer_next_observations"].reshape(-1)
    check(len(next_observations) == steps,
          f"{what}: the buffer holds {len(next_observations)} transitions; expected {steps}")
    wrong = int((next_observations != 1.0).sum())
    check(wrong == 0,
          f"{what}: {wrong} of the {steps} transitions stored a next observation other than 1 "
          f"(first few: {next_observations[:5].tolist()}). A truncated transition keeps the "
          "next observation env.step returned: it bootstraps from it. Add the transition to the "
          "buffer before env.reset(), not the observation the reset returns.")
    check(bool((observations == 0.0).all()),
          f"{what}: stored observations {observations[:5].tolist()}...; every transition "
          "starts at observation 0 (after env.reset(), obs is the reset's observation)")


@pytest.mark.points(1)
def test_train_bookkeeping(student, reference, rng, seed):
    """train explores with the schedule's epsilon, logs its episodes and its evaluations"""
    # Docstring (train): "at each global step (0, 1, ..., total_timesteps - 1)": epsilon_greedy
    # once per step, with the schedule's value at steps 0 to total - 1.
    # Docstring (train), step 1: "epsilon = linear_schedule(step, ...); action =
    # epsilon_greedy(...)"; step 2: "add the reward to the episode's return"; step 3: "append
    # its return to result.episode_returns and step to result.episode_end_steps"; step 5:
    # "append step + 1 to result.eval_steps and the mean of evaluate(...) with
    # config.eval_episodes episodes and seed config.seed + 10_000 to result.eval_returns".
    # "Advance the progress bar ... once per step": not graded (progress is off in grading).
    # Why doing nothing cannot pass: the probe runs train with the grader's QNetwork, buffer,
    # linear_schedule and recorders for epsilon_greedy, train_step, sync_target and evaluate
    # (probes/dqn.py, train_bookkeeping), so no other function of the submission takes part,
    # and every number judged here is one train itself computes from inputs drawn here: the
    # epsilon it passes at each step (schedule drawn here), the episode returns and ends of
    # Probe 6 (reward scale drawn here), and the evaluate calls and means (returns drawn here).
    every, evaluations, episodes = _size(rng, 100, 200), _size(rng, 2, 4), _size(rng, 2, 5)
    total = every * evaluations
    schedule = {"start_e": _uniform(rng, 0.8, 1.0), "end_e": _uniform(rng, 0.01, 0.1),
                "exploration_fraction": _uniform(rng, 0.2, 0.6)}
    overrides = {**PROBE_RUN, **schedule, "total_timesteps": total, "eval_frequency": every,
                 "eval_episodes": episodes, "seed": seed % 2**31}
    # Probe 6: reward +scale every step (scale drawn here), truncated every 5 steps. The
    # returns the grader's evaluate gives are drawn here too, so every logged number is one
    # the loop has to compute from what it was given.
    scale = _reward_scale(seed)
    eval_returns = [round(_uniform(rng, -50, 50), 3) for _ in range(evaluations)]
    got = student.probe("dqn.train_bookkeeping", "probes/Probe6-v0", overrides, eval_returns,
                        scale, timeout=60)
    what = (f"train on probes/Probe6-v0 for {total} steps (start_e={schedule['start_e']:.4f}, "
            f"end_e={schedule['end_e']:.4f}, exploration_fraction="
            f"{schedule['exploration_fraction']:.4f}, eval_frequency={every}, eval_episodes="
            f"{episodes}, seed={overrides['seed']})")

    want_eps = reference.probe("dqn.schedule", list(range(total)), schedule["start_e"],
                               schedule["end_e"], schedule["exploration_fraction"], total)
    check(len(got["epsilons"]) == total,
          f"{what} called epsilon_greedy {len(got['epsilons'])} times; expected {total}, once "
          "per environment step")
    wrong = [step for step in range(total)
             if abs(got["epsilons"][step] - want_eps[step]) > 1e-6 + 1e-6 * want_eps[step]]
    if wrong:
        step = wrong[0]
        fail(f"{what} passed epsilon = {got['epsilons'][step]:.6f} to epsilon_greedy at step "
             f"{step}; expected linear_schedule(step={step}, start_e, end_e, "
             f"exploration_fraction, total_timesteps) = {want_eps[step]:.6f} ({len(wrong)} "
             "steps differ). Here train runs with the grader's own linear_schedule, so check "
             "the arguments train passes to linear_schedule (from the config) and that "
             "epsilon_greedy gets its result")

    episodes_done = total // 5
    want_ends = [5 * k + 4 for k in range(episodes_done)]
    check(got["episode_end_steps"] == want_ends,
          f"{what} logged result.episode_end_steps = {_head(got['episode_end_steps'])}; expected "
          f"{_head(want_ends)} (the step at which each 5-step episode ended)")
    wrong = [k for k, value in enumerate(got["episode_returns"])
             if not abs(value - 5 * scale) <= 1e-6]
    check(len(got["episode_returns"]) == episodes_done and not wrong,
          f"{what} logged result.episode_returns = {_head(got['episode_returns'])}; expected "
          f"{episodes_done} returns of {5 * scale:.4f} (five rewards of {scale:.4f} per "
          "episode): add each reward to the episode's return, and start every episode from 0")

    want_call = {"env_id": "probes/Probe6Scaled-v0", "num_episodes": episodes,
                 "seed": overrides["seed"] + 10_000, "device": "cpu"}
    want_steps = [every * (k + 1) for k in range(evaluations)]
    check(len(got["calls"]) == evaluations,
          f"{what} called evaluate {len(got['calls'])} times; expected {evaluations}, after "
          f"steps {want_steps} (when (step + 1) % eval_frequency == 0)")
    for call in got["calls"]:
        check(call == want_call,
              f"{what} called evaluate(q_network, env_id={call['env_id']!r}, num_episodes="
              f"{call['num_episodes']!r}, seed={call['seed']!r}, device={call['device']!r}); "
              f"expected env_id={want_call['env_id']!r}, num_episodes={episodes} "
              f"(config.eval_episodes), seed={want_call['seed']} (config.seed + 10_000) and "
              "the device train was given")
    check(got["eval_steps"] == want_steps,
          f"{what} logged result.eval_steps = {got['eval_steps']}; expected {want_steps} "
          "(step + 1 at each evaluation)")
    # The grader's evaluate returned r_k, r_k + 1, ..., r_k + episodes - 1 at its k-th call.
    want_returns = [eval_returns[k] + (episodes - 1) / 2 for k in range(evaluations)]
    assert_close(got["eval_returns"], want_returns, rtol=0, atol=1e-6,
                 what=f"{what}: result.eval_returns (the mean of the returns that each call "
                 "to evaluate gave)")
    # DQNConfig: eval_frequency "(0: never)", its default: no evaluation, no error.
    never = {**overrides, "total_timesteps": every, "eval_frequency": 0}
    got = student.probe("dqn.train_bookkeeping", "probes/Probe6-v0", never, eval_returns,
                        scale, timeout=60)
    check(not got["calls"] and not got["eval_steps"],
          f"train on probes/Probe6-v0 for {every} steps with eval_frequency=0 called evaluate "
          f"{len(got['calls'])} times and logged eval_steps {got['eval_steps']}; 0 means never "
          "evaluate")


@pytest.mark.points(1)
def test_train_updates_on_schedule(student, rng, seed):
    """train takes gradient_steps steps every train_frequency steps, syncs on schedule"""
    # Docstring (train), step 4: "once step >= config.learning_starts: every
    # config.train_frequency steps (step % train_frequency == 0) take config.gradient_steps
    # gradient steps, each on a fresh batch sampled with rng and passed to train_step; then,
    # every config.target_network_frequency steps ..., call sync_target".
    # Why doing nothing cannot pass: train runs with the grader's QNetwork, buffer and
    # linear_schedule and with recorders for the functions it calls (probes/dqn.py,
    # train_bookkeeping), so the verdict depends on train alone, and it is judged on values
    # only the loop's own logic produces for the timing drawn here: the steps at which it calls
    # train_step and sync_target, the batch size and gamma it passes, and which batch each
    # train_step gets (the grader's buffer tags its k-th batch with k, so "a fresh batch per
    # gradient step" is read from the batches themselves).
    total = _size(rng, 300, 600)
    train_frequency = _size(rng, 3, 7)
    # learning_starts a multiple of train_frequency: the first training step is at the boundary
    timing = {"learning_starts": train_frequency * _size(rng, 10, 20),
              "train_frequency": train_frequency,
              "gradient_steps": _size(rng, 2, 3), "target_network_frequency": _size(rng, 20, 60),
              "batch_size": _size(rng, 8, 32), "gamma": _uniform(rng, 0.5, 0.9)}
    overrides = {**PROBE_RUN, **timing, "total_timesteps": total, "eval_frequency": 1,
                 "seed": seed % 2**31}
    got = student.probe("dqn.train_bookkeeping", "probes/Probe6-v0", overrides, [0.0], 1.0,
                        timeout=60)
    what = (f"train on probes/Probe6-v0 for {total} steps with "
            + ", ".join(f"{name}={value:.4g}" for name, value in timing.items()))
    check(len(got["epsilons"]) == total,
          f"{what} called epsilon_greedy {len(got['epsilons'])} times; expected {total}, once "
          "at the start of every step (the grader uses those calls to tell the steps apart)")
    learning = range(timing["learning_starts"], total)
    want_updates = [[step, timing["batch_size"], timing["gamma"]] for step in learning
                    if step % timing["train_frequency"] == 0
                    for _ in range(timing["gradient_steps"])]
    got_steps = [update[0] for update in got["updates"]]
    want_steps = [step for step, _, _ in want_updates]
    check(got_steps == want_steps,
          f"{what} called train_step at steps {_head(got_steps)}; expected {_head(want_steps)}:"
          " once step >= learning_starts, gradient_steps calls at every step with step % "
          "train_frequency == 0")
    for count, ((step, size, gamma, tag), _) in enumerate(zip(got["updates"], want_updates,
                                                              strict=True), start=1):
        check(size == timing["batch_size"] and abs(gamma - timing["gamma"]) < 1e-9,
              f"{what} called train_step at step {step} with a batch of {size} and gamma "
              f"{gamma:.4g}; expected batch_size {timing['batch_size']} and gamma "
              f"{timing['gamma']:.4g} from the config")
        # Docstring (train): "each on a fresh batch sampled with `rng`": the k-th train_step
        # gets the k-th batch buffer.sample returned (tagged k), one sample per gradient step.
        check(tag == count,
              f"{what}: train_step call {count} (at step {step}) got the batch from "
              f"buffer.sample call {tag:g}, not a batch freshly returned by buffer.sample "
              f"(call {count}): sample a new batch for each of the gradient_steps steps")
    check(got["draws"] == len(want_updates),
          f"{what} called buffer.sample {got['draws']} times for {len(want_updates)} "
          "train_step calls; expected one buffer.sample call per gradient step")
    want_syncs = [step for step in learning if step % timing["target_network_frequency"] == 0]
    check(got["syncs"] == want_syncs,
          f"{what} called sync_target at steps {_head(got['syncs'])}; expected "
          f"{_head(want_syncs)}: once step >= learning_starts, at every step with step % "
          "target_network_frequency == 0")
    check(len(got["calls"]) == total,
          f"{what} and eval_frequency=1 called evaluate {len(got['calls'])} times; expected "
          f"{total}, after every step")


def _head(values: list, count: int = 8) -> str:
    shown = ", ".join(str(v) for v in values[:count])
    return f"[{shown}{', ...' if len(values) > count else ''}] ({len(values)} values)"


# ============================================================================ CartPole

# The student's loop trains for CARTPOLE_STEPS steps in the worker with the default DQNConfig;
# its calls to evaluate (every CHECKPOINT_EVERY steps) only record the weights, and the
# reference then evaluates those checkpoints and the final weights greedily, the last first,
# for CARTPOLE_EPISODES episodes each. The test passes when one of them reaches
# CARTPOLE_THRESHOLD: DQN on CartPole oscillates, and "reaches a good policy within the
# budget" is what the reference does reliably (on REFERENCE_PASS_RATE of the grading seeds we
# measured with `python -m bench.dqn_cartpole integration`).
CARTPOLE_STEPS = 40_000
CHECKPOINT_EVERY = 2_500
CARTPOLE_THRESHOLD = 300.0
CARTPOLE_EPISODES = 10
CARTPOLE_RUN = {"env_id": "CartPole-v1", "total_timesteps": CARTPOLE_STEPS,
                "eval_frequency": CHECKPOINT_EVERY, "eval_episodes": 1, "hidden_dim": 256}
# One run per seed is not enough: make flaky found a seed (1555074198) where the reference
# peaked at 246 within 40k steps, 1 of the 30 seeds measured. The test gives a second run on
# another seed when the first falls short: for runs that fail independently at the measured
# 1 in 30, both fail about 1 time in 900 (at the 95% upper bound of that measurement, about 1
# in 6 per run, 1 in 36).
REFERENCE_PASS_RATE = ("29 of 30 seeds in one run (grading seeds 0-19, 19 of 20 even at 475; "
                       "make flaky's 10 seeds, one short)")
CARTPOLE_SECOND_SEED = 7919  # the second run's seed: the grading seed plus this


@pytest.mark.points(3)
def test_cartpole(student, reference, seed):
    """train reaches a greedy return of 300 on CartPole-v1 within 40k steps"""
    # Docstring (DQNConfig): "The defaults solve CartPole-v1"; (module) "about a minute on a
    # laptop": each run has 120 s (times the timeout scale). A second run, on another seed,
    # only when the first falls short (see REFERENCE_PASS_RATE).
    scores = []
    for run_seed in (seed % 2**31, (seed + CARTPOLE_SECOND_SEED) % 2**31):
        got = student.probe("dqn.train_cartpole", {**CARTPOLE_RUN, "seed": run_seed},
                            timeout=120)
        checkpoints = got["checkpoints"]
        hidden = _check_cartpole_weights(checkpoints[-1])
        means = reference.probe("dqn.best_greedy_return", checkpoints, hidden,
                                CARTPOLE_EPISODES, run_seed + 1, CARTPOLE_THRESHOLD, timeout=90)
        scores.append(f"seed {run_seed}: {[round(m) for m in means[::-1]]}")
        if max(means) >= CARTPOLE_THRESHOLD:
            break
    check(max(means) >= CARTPOLE_THRESHOLD,
          f"train on CartPole-v1 for {CARTPOLE_STEPS} steps (the default DQNConfig otherwise) "
          f"never reached a greedy mean return of {CARTPOLE_THRESHOLD:g} over "
          f"{CARTPOLE_EPISODES} episodes in two runs: the networks it had after every "
          f"{CHECKPOINT_EVERY} steps and at the end scored {'; '.join(scores)} (the grader "
          "records them when train calls evaluate). The reference reaches it on almost every "
          "seed. If the probe tests pass, look at the loop: the schedule, when training "
          "starts, gradient_steps per training phase, how often you sync, and resetting after "
          "terminated or truncated.")
    # The learning, not only its end: the network train started from (recorded at its first
    # epsilon_greedy call) must have changed. (Its own score is not a fair check: a random
    # QNetwork's greedy policy balances the pole now and then, 349 at one seed we measured.)
    initial = got["initial"]
    check(isinstance(initial, dict) and set(initial) == set(checkpoints[-1]),
          "train never called epsilon_greedy with its q_network, so the grader could not see "
          "the network it started from")
    check(any(not torch.equal(initial[name], checkpoints[-1][name]) for name in initial),
          "train returned a Q-network whose weights are those it started with: it learned "
          "nothing")


def _check_cartpole_weights(state_dict: dict) -> int:
    """The trained QNetwork's hidden width, after checking its weights can be loaded."""
    weight = state_dict.get("fc1.weight")
    hidden = int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.dim() == 2 else 0
    want = {"fc1.weight": [hidden, 4], "fc1.bias": [hidden], "fc2.weight": [hidden, hidden],
            "fc2.bias": [hidden], "head.weight": [2, hidden], "head.bias": [2]}
    shapes = {name: list(tensor.shape) for name, tensor in state_dict.items()}
    check(hidden > 0 and shapes == want,
          f"the Q-network train returned for CartPole-v1 has the parameters {shapes}; expected "
          f"{want} (QNetwork's fc1, fc2 and head), so the grader cannot evaluate it")
    return hidden
