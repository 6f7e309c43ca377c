"""Tests for lab 1, part "deep Q-learning" (dqn.py).

RL is tested where it is deterministic. The schedule, the buffer, the TD target, one training
step, the target sync and greedy evaluation are compared with the reference on inputs drawn
at grade time (weights, batches, seeds). Epsilon-greedy is judged statistically. Learning is
judged on the probe environments, whose Q-values are known exactly, and on one CartPole run
with a step budget, whose trained network the reference evaluates greedily.
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.engine.checks import assert_close, check, fail

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


@pytest.mark.points(1)
@pytest.mark.public
def test_qnetwork_parameters(student, rng):
    """QNetwork has the layers fc1, fc2 and head with the specified shapes"""
    obs_dim, actions, hidden = _size(rng, 2, 6), _size(rng, 2, 5), _size(rng, 8, 24)
    weights = _qnetwork_weights(rng, obs_dim, actions, hidden)
    got = student.probe("dqn.qnetwork", obs_dim, actions, hidden, weights,
                        torch.zeros(1, obs_dim))
    want = {name: list(tensor.shape) for name, tensor in weights.items()}
    check(got["shapes"] == want,
          f"QNetwork({obs_dim}, {actions}, hidden_dim={hidden}) has the parameters "
          f"{got['shapes']}; expected exactly {want} (attributes fc1, fc2 and head, each an "
          "nn.Linear). The grader loads weights by these names.")


@pytest.mark.points(2)
@pytest.mark.public
def test_qnetwork_forward(student, reference, rng):
    """QNetwork.forward computes fc1 -> ReLU -> fc2 -> ReLU -> head"""
    obs_dim, actions, hidden = _size(rng, 2, 6), _size(rng, 2, 5), _size(rng, 8, 24)
    weights = _qnetwork_weights(rng, obs_dim, actions, hidden)
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
                 atol=FLOAT_ATOL, what=what)


# ============================================================================ the replay buffer

BUFFER_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated",
                 "truncated")


@pytest.mark.points(3)
@pytest.mark.public
def test_replay_buffer_wraps_around(student, reference, rng):
    """ReplayBuffer.add fills slots in order and overwrites the oldest once full"""
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
def test_replay_buffer_sample(student, reference, rng, seed):
    """ReplayBuffer.sample returns stored transitions with the specified shapes and dtypes"""
    capacity, obs_dim = _size(rng, 6, 12), _size(rng, 2, 5)
    adds = capacity + _size(rng, 1, capacity)
    batch_size = _size(rng, 16, 40)
    transitions = _transitions(rng, adds, obs_dim, 4)
    got = student.probe("dqn.buffer_samples", capacity, obs_dim, transitions, batch_size,
                        seed % 2**32, 2)
    want = reference.probe("dqn.buffer_samples", capacity, obs_dim, transitions, batch_size,
                           seed % 2**32, 2)
    where = f"buffer.sample({batch_size}, rng) on a buffer of capacity {capacity}"
    stored = range(adds - capacity, adds)
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
            check(got_batch[name]["dtype"] == expected["dtype"],
                  f"{where}: batch.{name} has dtype {got_batch[name]['dtype']}, expected "
                  f"{expected['dtype']}")
        for row in range(batch_size):
            matches = [i for i in stored if all(
                torch.equal(got_batch[name]["tensor"][row].to(torch.float64),
                            transitions[name][i].to(torch.float64)) for name in BUFFER_FIELDS)]
            check(matches,
                  f"{where}: row {row} of the batch is not one of the stored transitions "
                  f"(the last {capacity} added): either its fields come from different "
                  "transitions, or it is an overwritten or empty slot")
    for draw, (got_batch, want_batch) in enumerate(zip(got["batches"], want["batches"],
                                                       strict=True), start=1):
        same = all(torch.equal(got_batch[name]["tensor"], want_batch[name]["tensor"])
                   for name in BUFFER_FIELDS)
        check(same and got["next_draw"] == want["next_draw"],
              f"{where}: draw {draw} holds valid transitions but not the ones the same "
              "generator gives the reference: draw the slots with exactly one call, "
              "rng.integers(0, len(self), size=batch_size), and no other use of rng")


# ============================================================================ exploration


@pytest.mark.points(2)
@pytest.mark.public
def test_linear_schedule(student, reference, rng):
    """linear_schedule decays over exploration_fraction * total_timesteps, then stays flat"""
    total = _size(rng, 1000, 50_000)
    fraction = _uniform(rng, 0.1, 0.6)
    start_e, end_e = _uniform(rng, 0.8, 1.0), _uniform(rng, 0.01, 0.1)
    decay_end = fraction * total
    steps = [0, int(decay_end * 0.25), int(decay_end * 0.5), int(decay_end * 0.9),
             int(decay_end) + 1, int((decay_end + total) / 2), total - 1]
    got = student.probe("dqn.schedule", steps, start_e, end_e, fraction, total)
    want = reference.probe("dqn.schedule", steps, start_e, end_e, fraction, total)
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


def hoeffding_halfwidth(n: int, alpha: float) -> float:
    """t with P(|mean of n independent Bernoulli(p) - p| >= t) <= alpha, for every p.

    Hoeffding's inequality: the probability is at most 2 exp(-2 n t^2); solve for t.
    """
    return math.sqrt(math.log(2 / alpha) / (2 * n))


@pytest.mark.points(1)
def test_epsilon_greedy_exploits(student, rng, seed):
    """epsilon_greedy with epsilon = 0 always takes the greedy action"""
    actions = _size(rng, 2, 6)
    q_values = torch.randn(actions, generator=rng)
    q_values[0] = q_values.min() - 1  # the greedy action is never 0 ...
    greedy = int(q_values.argmax())
    obs = torch.randn(3, generator=rng)
    if int(obs.argmax()) == greedy:  # ... nor the argmax of the observation
        obs = obs.roll(1)
    got = student.probe("dqn.epsilon_greedy_counts", q_values, 0.0, 3, 200, seed % 2**32, obs)
    check(got["counts"] is not None, f"epsilon_greedy {got['bad']}; expected a Python int "
          f"between 0 and {actions - 1}")
    check(got["counts"][greedy] == 200,
          f"epsilon_greedy with epsilon = 0 and Q-values {_round(q_values)} chose the actions "
          f"{got['counts']} times (counts per action) in 200 calls; expected action {greedy}, "
          "the argmax, every time")


@pytest.mark.points(2)
def test_epsilon_greedy_explores(student, rng, seed):
    """epsilon_greedy explores uniformly over all actions with probability epsilon"""
    actions = _size(rng, 2, 4)
    q_values = torch.randn(actions, generator=rng)
    greedy = int(q_values.argmax())
    calls = 20_000
    # 2 * actions checks (every action's frequency, at epsilon = 1 and at the drawn epsilon),
    # each with alpha = 1e-6 / (2 * actions) and Hoeffding's half-width: at most 8 checks, so
    # t <= sqrt(ln(2 * 8 / 1e-6) / 40000) = 0.0204. False-failure probability <= 1e-6.
    # epsilon in [0.25, 0.4] keeps the common slips far outside the band: exploring only
    # among the non-greedy actions moves the greedy frequency by epsilon / k >= 0.0625, and
    # exploring with probability 1 - epsilon moves it by |1 - 2 epsilon| (1 - 1/k) >= 0.1.
    half_width = hoeffding_halfwidth(calls, FALSE_FAILURE / (2 * actions))
    epsilon = _uniform(rng, 0.25, 0.4)
    for eps in (1.0, epsilon):
        got = student.probe("dqn.epsilon_greedy_counts", q_values, eps, 3, calls,
                            (seed + int(eps * 1000)) % 2**32, timeout=30)
        check(got["counts"] is not None, f"epsilon_greedy {got['bad']}; expected a Python "
              f"int between 0 and {actions - 1}")
        expected = [eps / actions + (1 - eps) * (a == greedy) for a in range(actions)]
        frequencies = [count / calls for count in got["counts"]]
        for action in range(actions):
            if abs(frequencies[action] - expected[action]) > half_width:
                fail(f"epsilon_greedy with epsilon = {eps:.3f}, {actions} actions and "
                     f"Q-values {_round(q_values)} (greedy action {greedy}) chose the actions "
                     f"with frequencies {_round(frequencies)} in {calls} calls; expected about "
                     f"{_round(expected)} (each within {half_width:.3f}): with probability "
                     "epsilon a uniformly random action among all of them (the greedy one "
                     "included), otherwise the greedy one. This check fails a correct "
                     "implementation with probability below 1e-6.")


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
    obs_dim, actions = _size(rng, 2, 5), _size(rng, 2, 4)
    weights = _weights(rng, [obs_dim, 16, actions])
    batch = _batch(rng, 8, obs_dim, actions)
    got = student.probe("dqn.td_target", weights, batch, 0.99)
    check(got["target"]["tensor"] is not None,
          f"td_target returned a {got['target'].get('type')}, expected a tensor")
    check(not got["target"]["requires_grad"],
          "td_target returned a tensor that requires grad: the target network would receive "
          "gradients from the loss. Compute it under torch.no_grad() (or .detach() it).")
    check(not any(got["target_parameters_changed"]),
          "td_target changed the target network's parameters; it must only read them")


def _train_step_case(rng: torch.Generator) -> tuple:
    obs_dim, actions = _size(rng, 2, 5), _size(rng, 2, 4)
    online = _weights(rng, [obs_dim, 16, 16, actions])
    target = _weights(rng, [obs_dim, 16, 16, actions])
    batches = [_batch(rng, _size(rng, 16, 32), obs_dim, actions) for _ in range(2)]
    return online, target, batches, _uniform(rng, 0.8, 0.99)


@pytest.mark.points(3)
def test_train_step(student, reference, rng):
    """train_step gives the reference's loss and updated weights over two steps"""
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
def test_train_step_leaves_target_alone(student, rng):
    """train_step sends no gradient into the target network and does not change it"""
    online, target, batches, gamma = _train_step_case(rng)
    got = student.probe("dqn.train_steps", online, target, batches, gamma, 1e-2)
    for step in got["steps"]:
        with_gradient = [i for i, g in enumerate(step["target_gradients"])
                         if g is not None and bool((g != 0).any())]
        check(not with_gradient,
              "after train_step the target network's parameters have gradients: the TD "
              "target was computed with autograd on. Compute it under torch.no_grad() (or "
              "detach it) so that only q_network learns.")
        flat_target = [w for pair in target for w in pair]
        check(all(torch.equal(a, b) for a, b in zip(step["target"], flat_target, strict=True)),
              "train_step changed the target network's parameters; only sync_target may")


@pytest.mark.points(1)
def test_sync_target(student, rng):
    """sync_target copies q_network's values into target_network, without sharing tensors"""
    obs_dim, actions = _size(rng, 2, 5), _size(rng, 2, 4)
    online = _weights(rng, [obs_dim, 16, actions])
    target = _weights(rng, [obs_dim, 16, actions])
    got = student.probe("dqn.sync", online, target)
    flat_online = [w for pair in online for w in pair]
    check(all(torch.equal(a, b) for a, b in zip(got["after_sync"], flat_online, strict=True)),
          "after sync_target(q_network, target_network) the target network's parameters differ "
          "from q_network's: copy them into target_network (load_state_dict); rebinding the "
          "name inside the function does not change the caller's network")
    check(all(torch.equal(a, b) for a, b in zip(got["after_online_change"], flat_online,
                                                strict=True)),
          "after sync_target, changing q_network's parameters also changed target_network's: "
          "the two share tensors. Copy the values (load_state_dict) instead.")


# ============================================================================ evaluation


@pytest.mark.points(2)
def test_evaluate(student, reference, rng, seed):
    """evaluate plays greedy episodes seeded seed, seed + 1, ... and returns their returns"""
    # A linear policy that pushes the cart towards where the pole falls (long episodes), a
    # random MLP (short ones) and a probe whose observation is random.
    falling = torch.tensor([0.0, 0.0, 3.0, 1.0]) + 0.3 * torch.randn(4, generator=rng)
    cases = [("CartPole-v1", [(torch.stack([-falling, falling]), torch.zeros(2))]),
             ("CartPole-v1", _weights(rng, [4, 16, 2])),
             ("probes/Probe5-v0", _weights(rng, [1, 8, 2]))]
    episodes = _size(rng, 3, 6)
    for env_id, weights in cases:
        episode_seed = seed % 2**31
        got = student.probe("dqn.evaluate", weights, env_id, episodes, episode_seed)
        want = reference.probe("dqn.evaluate", weights, env_id, episodes, episode_seed)
        what = f"evaluate(q_network, {env_id!r}, num_episodes={episodes}, seed={episode_seed})"
        check(isinstance(got, list) and len(got) == len(want),
              f"{what} returned {got!r}; expected a list of {len(want)} returns")
        assert_close([float(r) for r in got], want, rtol=0, atol=1e-6,
                     what=f"{what} (the greedy returns, in order: start episode i with "
                     "env.reset(seed=seed + i) and always take the argmax action)")


# ============================================================================ probe environments

# Each probe is learned with a small budget; the overrides keep it to about a second. The
# tolerance, 0.1 on Q-values of size 1 to 2, is loose for a correct agent (the reference is
# within 0.02 on every seed we tried) and tight for every bug each probe is there to catch.
PROBE_TOLERANCE = 0.1
PROBE_RUN = {"learning_starts": 64, "batch_size": 32, "hidden_dim": 32, "learning_rate": 3e-3,
             "train_frequency": 4, "gradient_steps": 2, "target_network_frequency": 50,
             "exploration_fraction": 0.5, "eval_frequency": 0}
PROBES = {
    # id: (total_timesteps, gamma, {observation: expected Q-values}, what a failure means)
    1: (1000, 0.99, {0.0: [1.0]},
        "the network cannot fit a constant: check the loss, backward and the optimiser step"),
    2: (1000, 0.99, {-1.0: [-1.0], 1.0: [1.0]},
        "the Q-values do not depend on the observation: check what reaches the network"),
    3: (2000, 0.5, {0.0: [0.5], 1.0: [1.0]},
        "Q(0) should be gamma * Q(1): check the bootstrap in td_target and that the target "
        "network is synced every target_network_frequency steps"),
    4: (1000, 0.99, {0.0: [-1.0, 1.0]},
        "each action should get its own reward: check that train_step picks Q(s, a) of the "
        "action taken (gather along the action dimension)"),
    5: (2000, 0.99, {0.0: [1.0, -1.0], 1.0: [-1.0, 1.0]},
        "the Q-values should depend on both the observation and the action"),
    6: (2000, 0.5, {0.0: [2.0]},
        "Probe 6 never terminates; it is truncated every 5 steps, so Q(0) = 1 / (1 - gamma) = "
        "2. About 1.67 is what bootstrapping cut at truncation gives: store `terminated` and "
        "`truncated` separately in the buffer, and let td_target stop bootstrapping on "
        "`terminated` only. Much lower values mean the bootstrap does not propagate: is the "
        "target network synced?"),
}


def _train_probe(student, probe: int, seed: int) -> tuple[dict, dict]:
    steps, gamma, table, _ = PROBES[probe]
    overrides = {**PROBE_RUN, "total_timesteps": steps, "gamma": gamma, "seed": seed % 2**31}
    got = student.probe("dqn.train_on_probe", f"probes/Probe{probe}-v0", overrides,
                        list(table), timeout=60)
    return got, overrides


@pytest.mark.points(1)
@pytest.mark.parametrize("probe", [1, 2, 3, 4, 5, 6])
def test_learns_probe(student, seed, probe):
    """train learns probe environment {probe}'s Q-values"""
    got, overrides = _train_probe(student, probe, seed)
    _, gamma, table, meaning = PROBES[probe]
    expected = torch.tensor(list(table.values()))
    learned = got["q_network"]
    check(tuple(learned.shape) == tuple(expected.shape),
          f"after training on probes/Probe{probe}-v0 the Q-network gives shape "
          f"{tuple(learned.shape)} for {len(table)} observations; expected "
          f"{tuple(expected.shape)}")
    error = (learned - expected).abs()
    if (error > PROBE_TOLERANCE).any():
        rows = ", ".join(f"Q({obs:+g}) = {_round(q)} (expected {table[obs]})"
                         for obs, q in zip(table, learned.tolist(), strict=True))
        largest_return = float(expected.abs().max())
        if float(learned.abs().max()) > largest_return + 0.5:
            meaning = (f"no Q-value can exceed {largest_return:g} here, so the target keeps "
                       "bootstrapping past the end of the episode: check the (1 - terminated) "
                       f"factor in td_target. Otherwise: {meaning}")
        fail(f"train on probes/Probe{probe}-v0 for {overrides['total_timesteps']} steps "
             f"(gamma {gamma}, seed {overrides['seed']}) learned {rows}; each should be within "
             f"{PROBE_TOLERANCE}. What this probe checks: {meaning}.")


@pytest.mark.points(1)
def test_target_network_is_synced(student, seed):
    """train syncs the target network: after training on probe 3 it agrees with q_network"""
    got, overrides = _train_probe(student, 3, seed)
    online, target = got["q_network"], got["target_network"]
    gap = float((online - target).abs().max())
    # Once Probe 3 is learned (see its test), q_network changes by much less than 0.1 between
    # syncs; a target network that is never synced keeps its random initial values.
    check(gap <= PROBE_TOLERANCE,
          f"after train on probes/Probe3-v0 the target network's Q-values {_round(target)} are "
          f"{gap:.3f} away from q_network's {_round(online)}: call sync_target every "
          f"target_network_frequency steps (here {overrides['target_network_frequency']}) "
          "once learning has started")


@pytest.mark.points(1)
def test_train_stores_truncation(student, seed):
    """train stores truncated transitions as truncated, not terminated, one per env step"""
    got, overrides = _train_probe(student, 6, seed)
    steps = overrides["total_timesteps"]
    terminated, truncated = got["buffer_terminated"], got["buffer_truncated"]
    check(len(terminated) == steps,
          f"after train on probes/Probe6-v0 for {steps} steps the buffer holds {len(terminated)} "
          f"transitions; expected {steps}, one per environment step")
    check(float(terminated.sum()) == 0,
          f"train stored {int(terminated.sum())} transitions as terminated on Probe 6, which "
          "never terminates (it is only truncated by its time limit): pass the environment's "
          "own `terminated` flag to buffer.add, not `terminated or truncated`")
    check(float(truncated.sum()) == steps // 5,
          f"train stored {int(truncated.sum())} truncated transitions in {steps} steps of Probe "
          f"6, which truncates every 5 steps: expected {steps // 5}. Reset the environment as "
          "soon as an episode ends, and store each step's own flags (with a vector environment, "
          "do not store the step that autoreset spends on resetting)")


@pytest.mark.points(1)
def test_train_bookkeeping(student, reference, rng, seed):
    """train explores with the schedule's epsilon, logs its episodes and its evaluations"""
    every, evaluations, episodes = _size(rng, 100, 200), _size(rng, 2, 4), _size(rng, 2, 5)
    total = every * evaluations
    schedule = {"start_e": _uniform(rng, 0.8, 1.0), "end_e": _uniform(rng, 0.01, 0.1),
                "exploration_fraction": _uniform(rng, 0.2, 0.6)}
    overrides = {**PROBE_RUN, **schedule, "total_timesteps": total, "eval_frequency": every,
                 "eval_episodes": episodes, "seed": seed % 2**31}
    # Probe 6: reward +1 every step, truncated every 5 steps.
    got = student.probe("dqn.train_bookkeeping", "probes/Probe6-v0", overrides, timeout=60)
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
             "steps differ). If the linear_schedule test fails too, fix that first; otherwise "
             "check the arguments you pass to linear_schedule")

    episodes_done = total // 5
    want_ends = [5 * k + 4 for k in range(episodes_done)]
    check(got["episode_end_steps"] == want_ends,
          f"{what} logged result.episode_end_steps = {_head(got['episode_end_steps'])}; expected "
          f"{_head(want_ends)} (the step at which each 5-step episode ended)")
    wrong = [k for k, value in enumerate(got["episode_returns"]) if value != 5.0]
    check(len(got["episode_returns"]) == episodes_done and not wrong,
          f"{what} logged result.episode_returns = {_head(got['episode_returns'])}; expected "
          f"{episodes_done} returns of 5.0 (five rewards of +1 per episode): add each reward "
          "to the episode's return, and start every episode from 0")

    want_call = {"env_id": "probes/Probe6-v0", "num_episodes": episodes,
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
    # The grader's evaluate returned k, k + 1, ..., k + episodes - 1 at its k-th call.
    want_returns = [k + 1 + (episodes - 1) / 2 for k in range(evaluations)]
    assert_close(got["eval_returns"], want_returns, rtol=0, atol=1e-6,
                 what=f"{what}: result.eval_returns (the mean of the returns that each call "
                 "to evaluate gave)")


@pytest.mark.points(1)
def test_train_updates_on_schedule(student, rng, seed):
    """train takes gradient_steps steps every train_frequency steps, syncs on schedule"""
    total = _size(rng, 300, 600)
    train_frequency = _size(rng, 3, 7)
    # learning_starts a multiple of train_frequency: the first training step is at the boundary
    timing = {"learning_starts": train_frequency * _size(rng, 10, 20),
              "train_frequency": train_frequency,
              "gradient_steps": _size(rng, 2, 3), "target_network_frequency": _size(rng, 20, 60),
              "batch_size": _size(rng, 8, 32), "gamma": _uniform(rng, 0.5, 0.9)}
    overrides = {**PROBE_RUN, **timing, "total_timesteps": total, "eval_frequency": 1,
                 "seed": seed % 2**31}
    got = student.probe("dqn.train_bookkeeping", "probes/Probe6-v0", overrides, timeout=60)
    what = (f"train on probes/Probe6-v0 for {total} steps with "
            + ", ".join(f"{name}={value:.4g}" for name, value in timing.items()))
    check(len(got["epsilons"]) == total,
          f"{what} called epsilon_greedy {len(got['epsilons'])} times; expected {total}, once "
          "at the start of every step (the grader uses those calls to tell the steps apart)")
    learning = range(timing["learning_starts"], total)
    want_updates = [[step, timing["batch_size"], timing["gamma"]] for step in learning
                    if step % timing["train_frequency"] == 0
                    for _ in range(timing["gradient_steps"])]
    got_steps = [step for step, _, _ in got["updates"]]
    want_steps = [step for step, _, _ in want_updates]
    check(got_steps == want_steps,
          f"{what} called train_step at steps {_head(got_steps)}; expected {_head(want_steps)}:"
          " once step >= learning_starts, gradient_steps calls at every step with step % "
          "train_frequency == 0")
    for (step, size, gamma), _ in zip(got["updates"], want_updates, strict=True):
        check(size == timing["batch_size"] and abs(gamma - timing["gamma"]) < 1e-9,
              f"{what} called train_step at step {step} with a batch of {size} and gamma "
              f"{gamma:.4g}; expected batch_size {timing['batch_size']} and gamma "
              f"{timing['gamma']:.4g} from the config")
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
REFERENCE_PASS_RATE = "20 of 20 (grading seeds 0-19; 19 of 20 even at 475)"


@pytest.mark.points(4)
def test_cartpole(student, reference, seed):
    """train reaches a greedy return of 300 on CartPole-v1 within 40k steps"""
    run_seed = seed % 2**31
    got = student.probe("dqn.train_cartpole", {**CARTPOLE_RUN, "seed": run_seed}, timeout=120)
    checkpoints = got["checkpoints"]
    hidden = _check_cartpole_weights(checkpoints[-1])
    means = reference.probe("dqn.best_greedy_return", checkpoints, hidden, CARTPOLE_EPISODES,
                            run_seed + 1, CARTPOLE_THRESHOLD, timeout=90)
    check(max(means) >= CARTPOLE_THRESHOLD,
          f"train on CartPole-v1 for {CARTPOLE_STEPS} steps (seed {run_seed}, the default "
          f"DQNConfig otherwise) never reached a greedy mean return of {CARTPOLE_THRESHOLD:g} "
          f"over {CARTPOLE_EPISODES} episodes: the {len(checkpoints)} networks it had after "
          f"every {CHECKPOINT_EVERY} steps and at the end scored {[round(m) for m in means[::-1]]}"
          " (the grader records them when train calls evaluate). The reference reaches it on "
          "almost every seed. If the probe tests pass, look at the loop: the schedule, when "
          "training starts, gradient_steps per training phase, how often you sync, and "
          "resetting after terminated or truncated.")


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
