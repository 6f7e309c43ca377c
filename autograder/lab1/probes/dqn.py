"""Probes for the deep Q-learning part (run in the worker, next to the submission).

Each probe builds what it needs from plain data, runs one piece of `dqn.py`, and returns
plain data. Pieces that take a network (epsilon_greedy, td_target, train_step, sync_target,
evaluate) get a network built here with the test's weights, not the submission's QNetwork,
so a broken QNetwork costs only its own tests. Generators are made here from the seeds the
tests send.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import dqn
import numpy as np
import torch
from torch import nn

Weights = list[tuple[torch.Tensor, torch.Tensor]]


def _mlp(weights: Weights) -> nn.Sequential:
    """Linear layers with the given (weight, bias) pairs and ReLUs between them."""
    layers: list[nn.Module] = []
    for index, (weight, bias) in enumerate(weights):
        linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        layers.append(linear)
        if index < len(weights) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _parameters(network: nn.Module) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in network.parameters()]


def _gradients(network: nn.Module) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.detach().clone() for p in network.parameters()]


def _batch(batch: dict[str, torch.Tensor]) -> dqn.ReplayBatch:
    return dqn.ReplayBatch(**{name: tensor.clone() for name, tensor in batch.items()})


def _describe(value: Any) -> dict[str, Any]:
    """What came back, described in plain data: a tensor, or the name of its type."""
    if isinstance(value, torch.Tensor):
        return {"tensor": value.detach().cpu(), "dtype": str(value.dtype).removeprefix("torch."),
                "requires_grad": value.requires_grad}
    return {"tensor": None, "type": type(value).__name__}


# ----------------------------------------------------------------------------- the Q-network


def qnetwork(
    obs_dim: int, num_actions: int, hidden_dim: int, state_dict: dict[str, torch.Tensor],
    obs: torch.Tensor,
) -> dict[str, Any]:
    """Build QNetwork, report its parameters' names and shapes, load the weights, run it."""
    network = dqn.QNetwork(obs_dim, num_actions, hidden_dim)
    shapes = {name: list(tensor.shape) for name, tensor in network.state_dict().items()}
    if set(shapes) != set(state_dict) or any(
        shapes[name] != list(tensor.shape) for name, tensor in state_dict.items()
    ):
        return {"shapes": shapes, "q_values": None}
    network.load_state_dict(state_dict)
    with torch.no_grad():
        q_values = network(obs)
    return {"shapes": shapes, "q_values": _describe(q_values)}


# ----------------------------------------------------------------------------- replay buffer


def _add_all(buffer: Any, transitions: dict[str, torch.Tensor]) -> list[int]:
    """Add the transitions to `buffer` one by one, as the loop does; len() after each add."""
    lengths = []
    for i in range(len(transitions["actions"])):
        buffer.add(
            transitions["observations"][i].numpy(),
            int(transitions["actions"][i]),
            float(transitions["rewards"][i]),
            transitions["next_observations"][i].numpy(),
            bool(transitions["terminated"][i]),
            bool(transitions["truncated"][i]),
        )
        lengths.append(len(buffer))
    return lengths


def buffer_after_adds(
    capacity: int, obs_dim: int, transitions: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Add the transitions one by one; return len() after each add and the final arrays."""
    buffer = dqn.ReplayBuffer(capacity, (obs_dim,))
    lengths = _add_all(buffer, transitions)
    arrays = {
        name: torch.as_tensor(np.asarray(getattr(buffer, name)))
        for name in ("observations", "actions", "rewards", "next_observations", "terminated",
                     "truncated")
    }
    return {"lengths": lengths, "arrays": arrays, "next_index": int(buffer.next_index)}


def buffer_samples(
    capacity: int, obs_dim: int, transitions: dict[str, torch.Tensor], batch_size: int,
    seed: int, draws: int,
) -> dict[str, Any]:
    """Fill a buffer, then sample `draws` batches from one generator seeded with `seed`; then
    the devices of one batch sampled from the same transitions in a buffer made with
    device="meta" (a device every machine has: a buffer that ignores its device returns CPU
    tensors)."""
    buffer = dqn.ReplayBuffer(capacity, (obs_dim,))
    _add_all(buffer, transitions)
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(draws):
        batch = buffer.sample(batch_size, rng)
        batches.append({
            field.name: _describe(getattr(batch, field.name))
            for field in dataclasses.fields(dqn.ReplayBatch)
        })
    next_draw = float(rng.random())
    meta_buffer = dqn.ReplayBuffer(capacity, (obs_dim,), device="meta")
    _add_all(meta_buffer, transitions)
    meta_batch = meta_buffer.sample(batch_size, np.random.default_rng(seed))
    devices = [str(getattr(getattr(meta_batch, field.name), "device", None))
               for field in dataclasses.fields(dqn.ReplayBatch)]
    return {"batches": batches, "next_draw": next_draw, "meta_devices": devices}


# ----------------------------------------------------------------------------- exploration


def schedule(
    steps: list[int], start_e: float, end_e: float, exploration_fraction: float,
    total_timesteps: int,
) -> list[float]:
    return [
        float(dqn.linear_schedule(step, start_e, end_e, exploration_fraction, total_timesteps))
        for step in steps
    ]


class _FixedQ(nn.Module):
    """A 'network' whose Q-values are the same for every observation."""

    def __init__(self, q_values: torch.Tensor):
        super().__init__()
        self.q_values = nn.Parameter(q_values.clone().float(), requires_grad=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_values.expand(obs.shape[0], -1)


def epsilon_greedy_actions(
    weights: Weights, observations: torch.Tensor, epsilon: float, seed: int,
    global_seed: int = 0,
) -> dict[str, Any]:
    """epsilon_greedy with a network built from `weights`, once per observation, with one
    generator; the global generators seeded with `global_seed` first. The actions chosen."""
    import random

    np.random.seed(global_seed)
    random.seed(global_seed)
    torch.manual_seed(global_seed)
    network = _mlp(weights)
    num_actions = int(weights[-1][0].shape[0])
    rng = np.random.default_rng(seed)
    actions = []
    for obs in observations.numpy().astype(np.float32):
        action = dqn.epsilon_greedy(network, obs, epsilon, num_actions, rng)
        if type(action) is not int:
            return {"actions": None, "bad": f"returned a {type(action).__name__} ({action!r})"}
        actions.append(action)
    return {"actions": actions, "bad": None}


def epsilon_greedy_counts(
    q_values: torch.Tensor, epsilon: float, obs_dim: int, calls: int, seed: int,
    obs: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Call epsilon_greedy `calls` times on one observation (zeros unless given); count the
    actions chosen."""
    network = _FixedQ(q_values)
    rng = np.random.default_rng(seed)
    obs = np.zeros(obs_dim, dtype=np.float32) if obs is None else obs.numpy().astype(np.float32)
    num_actions = len(q_values)
    counts = [0] * num_actions
    for _ in range(calls):
        action = dqn.epsilon_greedy(network, obs, epsilon, num_actions, rng)
        if type(action) is not int:
            return {"counts": None, "bad": f"returned a {type(action).__name__} ({action!r})"}
        if not 0 <= action < num_actions:
            return {"counts": None, "bad": f"returned action {action}"}
        counts[action] += 1
    return {"counts": counts, "bad": None}


# ----------------------------------------------------------------------------- learning


def td_target(weights: Weights, batch: dict[str, torch.Tensor], gamma: float) -> dict[str, Any]:
    """td_target with a target network built from `weights`; then, when the target carries a
    graph, the gradients a backward pass through it leaves in the target network, and the
    target network's parameters afterwards."""
    target_network = _mlp(weights)
    target = dqn.td_target(target_network, _batch(batch), gamma)
    if isinstance(target, torch.Tensor) and target.requires_grad:
        target.sum().backward()
    return {"target": _describe(target), "gradients": _gradients(target_network),
            "parameters": _parameters(target_network)}


def train_steps(
    online: Weights, target: Weights, batches: list[dict[str, torch.Tensor]], gamma: float,
    learning_rate: float,
) -> dict[str, Any]:
    """Call train_step once per batch with Adam; report the losses and both networks."""
    q_network, target_network = _mlp(online), _mlp(target)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=learning_rate)
    steps = []
    for batch in batches:
        loss = dqn.train_step(q_network, target_network, optimizer, _batch(batch), gamma)
        steps.append({
            "loss": float(loss) if isinstance(loss, (int, float, torch.Tensor)) and
            (not isinstance(loss, torch.Tensor) or loss.numel() == 1) else None,
            "loss_type": type(loss).__name__,
            "online": _parameters(q_network),
            "target": _parameters(target_network),
            "target_gradients": _gradients(target_network),
        })
    return {"steps": steps}


def sync(online: Weights, target: Weights, observations: torch.Tensor) -> dict[str, Any]:
    """sync_target, then a change to the online network (the target must not follow it): the
    target network's Q-values at `observations` after each."""
    q_network, target_network = _mlp(online), _mlp(target)
    dqn.sync_target(q_network, target_network)
    with torch.no_grad():
        after_sync = target_network(observations)
        for parameter in q_network.parameters():
            parameter.add_(1.0)
        after_online_change = target_network(observations)
    return {"after_sync": after_sync, "after_online_change": after_online_change}


# ----------------------------------------------------------------------------- evaluation, training


def evaluate(weights: Weights, env_id: str, num_episodes: int, seed: int) -> Any:
    return dqn.evaluate(_mlp(weights), env_id, num_episodes, seed)


def _q_table(network: nn.Module, observations: list[float]) -> torch.Tensor:
    with torch.no_grad():
        return network(torch.tensor(observations, dtype=torch.float32)[:, None]).detach().cpu()


def _scaled_probe(env_id: str, reward_scale: float) -> str:
    """Register `env_id` with its rewards multiplied by `reward_scale` under a new id."""
    import gymnasium as gym
    import probe_envs

    probe_envs.register_probes()
    spec = gym.spec(env_id)
    scaled_id = env_id.replace("-v0", "Scaled-v0")
    if scaled_id in gym.registry:
        del gym.registry[scaled_id]
    gym.register(id=scaled_id, entry_point=spec.entry_point,
                 max_episode_steps=spec.max_episode_steps,
                 kwargs={"reward_scale": float(reward_scale)})
    return scaled_id


def train_on_probe(env_id: str, overrides: dict[str, Any], observations: list[float],
                   reward_scale: float = 1.0) -> Any:
    """Train on a probe environment whose rewards are scaled by `reward_scale`, with every
    function of the submission but linear_schedule, which here gives epsilon 1 at every step
    (uniform exploration: the probes' Q-values do not depend on the policy, and the schedule
    has its own test). What comes back: see _probe_outcome."""
    return _probe_outcome(env_id, overrides, observations, reward_scale,
                          linear_schedule=_explore_always)


def train_alone_on_probe(env_id: str, overrides: dict[str, Any], observations: list[float],
                         reward_scale: float = 1.0) -> Any:
    """Train on a probe environment whose rewards are scaled by `reward_scale`, with the
    grader's stand-ins for every other function of dqn.py (QNetwork, ReplayBuffer,
    linear_schedule, epsilon_greedy, td_target, train_step, sync_target, as their docstrings
    state them), so that what comes back is the work of `train` alone: a trivial helper can
    neither help nor hurt it (the helpers have their own tests). See _probe_outcome."""
    return _probe_outcome(env_id, overrides, observations, reward_scale,
                          QNetwork=_GradersQNetwork, ReplayBuffer=_GradersReplayBuffer,
                          linear_schedule=_graders_schedule,
                          epsilon_greedy=_graders_epsilon_greedy, td_target=_graders_td_target,
                          train_step=_graders_train_step, sync_target=_graders_sync_target)


def train_alone_on_cut_probe(overrides: dict[str, Any]) -> Any:
    """train_alone_on_probe on Probe 3 cut by a time limit of one step: every transition goes
    from observation 0 to observation 1 and is truncated there (not terminated), and the next
    episode starts at 0 again. So the buffer's next observations show whether train stores the
    step's own next observation or the next episode's first (a transition stored after the
    reset, as old gym vector environments gave it)."""
    import gymnasium as gym
    import probe_envs

    probe_envs.register_probes()
    cut_id = "probes/Probe3Cut-v0"
    if cut_id in gym.registry:
        del gym.registry[cut_id]
    gym.register(id=cut_id, entry_point=gym.spec("probes/Probe3-v0").entry_point,
                 max_episode_steps=1)
    return train_alone_on_probe(cut_id, overrides, [0.0, 1.0])


def _explore_always(*args: Any, **kwargs: Any) -> float:
    return 1.0


def _probe_outcome(env_id: str, overrides: dict[str, Any], observations: list[float],
                   reward_scale: float, **stand_ins: Callable[..., Any]) -> Any:
    """Run train on the scaled probe with these functions of dqn.py replaced; both networks'
    Q-values at `observations` at the end, and the q_network's at every call train makes to
    evaluate (every eval_frequency steps: the learning curve), and what the buffer holds."""
    curve: list[torch.Tensor] = []

    def record(q_network: nn.Module, *args: Any, **kwargs: Any) -> list[float]:
        curve.append(_q_table(q_network, observations))
        return [0.0]

    config = dataclasses.replace(dqn.DQNConfig(), env_id=_scaled_probe(env_id, reward_scale),
                                 **overrides)
    with _replacing(evaluate=record, **stand_ins):
        result = dqn.train(config)
    buffer = result.buffer
    filled = len(buffer)
    return {
        "q_network": _q_table(result.q_network, observations),
        "target_network": _q_table(result.target_network, observations),
        "curve": curve,
        "episodes": len(result.episode_returns),
        "buffer_terminated": torch.as_tensor(np.asarray(buffer.terminated[:filled])),
        "buffer_truncated": torch.as_tensor(np.asarray(buffer.truncated[:filled])),
        "buffer_rewards": torch.as_tensor(np.asarray(buffer.rewards[:filled])),
        "buffer_observations": torch.as_tensor(np.asarray(buffer.observations[:filled])),
        "buffer_next_observations": torch.as_tensor(
            np.asarray(buffer.next_observations[:filled])),
    }


@contextlib.contextmanager
def _replacing(**functions: Callable[..., Any]) -> Iterator[None]:
    """Replace these functions of the submission's dqn module while the block runs (train
    looks them up in the module at every call), and put the originals back afterwards."""
    originals = {name: getattr(dqn, name) for name in functions}
    for name, function in functions.items():
        setattr(dqn, name, function)
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(dqn, name, function)


def _weights_of(network: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().cpu().clone() for name, t in network.state_dict().items()}


def _plain(value: Any, kind: type) -> Any:
    """`value` as a plain `kind` when it is one (numpy integers included), else its repr."""
    if kind is int and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return value if type(value) is kind else repr(value)


class _GradersQNetwork(nn.Module):
    """The grader's QNetwork (the layers QNetwork's docstring fixes), which train's setup
    builds in place of the submission's in train_bookkeeping."""

    def __init__(self, obs_dim: int, num_actions: int, hidden_dim: int = 256) -> None:
        super().__init__()
        self.fc1 = nn.Linear(obs_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.head = nn.Linear(hidden_dim, num_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(obs)))))


def _graders_schedule(step: int, start_e: float, end_e: float, exploration_fraction: float,
                      total_timesteps: int) -> float:
    """linear_schedule as its docstring states it (the grader's, in train_bookkeeping)."""
    duration = exploration_fraction * total_timesteps
    if step >= duration:
        return float(end_e)
    return float(start_e + (end_e - start_e) * step / duration)


class _GradersReplayBuffer:
    """The grader's ReplayBuffer (as its docstring states it), which train's setup builds in
    place of the submission's in train_alone_on_probe."""

    FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated",
              "truncated")

    def __init__(self, capacity: int, obs_shape: tuple[int, ...],
                 device: str | torch.device = "cpu") -> None:
        self.capacity, self.device = int(capacity), torch.device(device)
        self.observations = np.zeros((self.capacity, *obs_shape), dtype=np.float32)
        self.next_observations = np.zeros((self.capacity, *obs_shape), dtype=np.float32)
        self.actions = np.zeros(self.capacity, dtype=np.int64)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.truncated = np.zeros(self.capacity, dtype=np.float32)
        self.next_index, self.size = 0, 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: Any, action: Any, reward: Any, next_obs: Any, terminated: Any,
            truncated: Any) -> None:
        values = (obs, action, reward, next_obs, terminated, truncated)
        for name, value in zip(self.FIELDS, values, strict=True):
            getattr(self, name)[self.next_index] = value
        self.next_index = (self.next_index + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dqn.ReplayBatch:
        rows = rng.integers(0, self.size, size=batch_size)
        return dqn.ReplayBatch(**{name: torch.as_tensor(getattr(self, name)[rows],
                                                        device=self.device)
                                  for name in self.FIELDS})


def _graders_epsilon_greedy(q_network: nn.Module, obs: Any, epsilon: float, num_actions: int,
                            rng: np.random.Generator, device: Any = "cpu") -> int:
    """epsilon_greedy as its docstring states it (the grader's, in train_alone_on_probe)."""
    if rng.random() < epsilon:
        return int(rng.integers(num_actions))
    with torch.no_grad():
        q_values = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
    return int(q_values.argmax(dim=1).item())


def _graders_td_target(target_network: nn.Module, batch: Any, gamma: float) -> torch.Tensor:
    """td_target as its docstring states it (the grader's, in train_alone_on_probe)."""
    with torch.no_grad():
        best_next = target_network(batch.next_observations).max(dim=1).values
    return batch.rewards + gamma * (1.0 - batch.terminated) * best_next


def _graders_train_step(q_network: nn.Module, target_network: nn.Module, optimizer: Any,
                        batch: Any, gamma: float) -> float:
    """train_step as its docstring states it (the grader's, in train_alone_on_probe)."""
    targets = _graders_td_target(target_network, batch, gamma)
    taken = q_network(batch.observations).gather(1, batch.actions[:, None])[:, 0]
    loss = torch.nn.functional.smooth_l1_loss(taken, targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _graders_sync_target(q_network: nn.Module, target_network: nn.Module) -> None:
    """sync_target as its docstring states it (the grader's, in train_alone_on_probe)."""
    target_network.load_state_dict({name: tensor.detach().clone()
                                    for name, tensor in q_network.state_dict().items()})


def train_bookkeeping(env_id: str, overrides: dict[str, Any], eval_returns: list[float],
                      reward_scale: float = 1.0) -> dict[str, Any]:
    """Train with the grader's stand-ins for every other function of dqn.py, so that what
    comes back is the work of `train` alone (a trivial QNetwork, buffer, schedule, TD target
    or train_step cannot change it):

    - QNetwork is the grader's network; linear_schedule the grader's (the docstring's formula);
    - ReplayBuffer is the grader's buffer: its k-th sample(batch_size, rng) call (from 1)
      returns a ReplayBatch of batch_size rows whose rewards are all k (a tag);
    - epsilon_greedy records the epsilon of each call and returns action 0;
    - train_step records [step, rows of its batch, gamma, the batch's tag] and returns 0.0;
    - sync_target records the step of each call and copies the weights;
    - evaluate records its arguments and returns eval_returns[k] + episode at its k-th call.

    epsilon_greedy runs once at the start of every step, so the step of a call is the number
    of epsilons recorded so far, minus one. Reported: those records, how many batches were
    sampled, and what train logged. The grader judges the values.
    """
    calls: list[dict[str, Any]] = []
    epsilons: list[float] = []
    updates: list[list[Any]] = []  # [step, batch rows, gamma, batch tag] of each train_step
    syncs: list[int] = []  # the step of each sync_target call

    class GradersBuffer:
        def __init__(self, capacity: int, obs_shape: tuple[int, ...],
                     device: str | torch.device = "cpu") -> None:
            self.capacity, self.obs_shape = int(capacity), tuple(obs_shape)
            self.size, self.draws = 0, 0

        def __len__(self) -> int:
            return self.size

        def add(self, *args: Any, **kwargs: Any) -> None:
            self.size = min(self.size + 1, self.capacity)

        def sample(self, batch_size: int, rng: Any) -> dqn.ReplayBatch:
            self.draws += 1
            rows = int(batch_size)
            return dqn.ReplayBatch(
                observations=torch.zeros(rows, *self.obs_shape),
                actions=torch.zeros(rows, dtype=torch.int64),
                rewards=torch.full((rows,), float(self.draws)),
                next_observations=torch.zeros(rows, *self.obs_shape),
                terminated=torch.zeros(rows), truncated=torch.zeros(rows))

    def record_evaluate(q_network: nn.Module, env_id: str, num_episodes: int, seed: int,
                        device: Any = "cpu") -> list[float]:
        calls.append({"env_id": _plain(env_id, str), "num_episodes": _plain(num_episodes, int),
                      "seed": _plain(seed, int), "device": str(device)})
        base = eval_returns[(len(calls) - 1) % len(eval_returns)]
        return [float(base + episode) for episode in range(int(num_episodes))]

    def record_epsilon(q_network: nn.Module, obs: Any, epsilon: float, *args: Any,
                       **kwargs: Any) -> int:
        epsilons.append(float(epsilon))
        return 0  # the probe environments used here have one action

    def record_train_step(q_network: nn.Module, target_network: nn.Module, optimizer: Any,
                          batch: Any, gamma: float) -> float:
        rewards = getattr(batch, "rewards", None)
        valid = isinstance(rewards, torch.Tensor) and rewards.ndim == 1 and rewards.numel() > 0
        updates.append([len(epsilons) - 1, int(rewards.shape[0]) if valid else -1,
                        float(gamma), float(rewards[0]) if valid else -1.0])
        return 0.0

    def record_sync(q_network: nn.Module, target_network: nn.Module) -> None:
        syncs.append(len(epsilons) - 1)
        target_network.load_state_dict(q_network.state_dict())

    config = dataclasses.replace(dqn.DQNConfig(), env_id=_scaled_probe(env_id, reward_scale),
                                 **overrides)
    with _replacing(evaluate=record_evaluate, epsilon_greedy=record_epsilon,
                    train_step=record_train_step, sync_target=record_sync,
                    ReplayBuffer=GradersBuffer, QNetwork=_GradersQNetwork,
                    linear_schedule=_graders_schedule):
        result = dqn.train(config)
    draws = result.buffer.draws if isinstance(result.buffer, GradersBuffer) else -1
    return {"calls": calls, "epsilons": epsilons, "updates": updates, "syncs": syncs,
            "draws": int(draws),
            "episode_returns": [float(value) for value in result.episode_returns],
            "episode_end_steps": [int(step) for step in result.episode_end_steps],
            "eval_steps": [int(step) for step in result.eval_steps],
            "eval_returns": [float(value) for value in result.eval_returns]}


def train_cartpole(overrides: dict[str, Any]) -> dict[str, Any]:
    """Train on CartPole-v1; return the trained Q-network's weights for the grader to judge.

    `train` calls `evaluate` every eval_frequency steps (its docstring says so). Here that call
    only records a copy of the network's weights: the grader evaluates those checkpoints
    itself, with the reference's `evaluate`, and the final weights too.
    """
    checkpoints: list[dict[str, torch.Tensor]] = []
    initial: list[dict[str, torch.Tensor]] = []
    epsilon_greedy = dqn.epsilon_greedy

    def record(q_network: nn.Module, env_id: str, num_episodes: int, *args: Any,
               **kwargs: Any) -> list[float]:
        checkpoints.append(_weights_of(q_network))
        return [0.0] * int(num_episodes)

    def record_initial(q_network: nn.Module, *args: Any, **kwargs: Any) -> int:
        if not initial:
            initial.append(_weights_of(q_network))
        return epsilon_greedy(q_network, *args, **kwargs)

    config = dataclasses.replace(dqn.DQNConfig(), **overrides)
    with _replacing(evaluate=record, epsilon_greedy=record_initial):
        result = dqn.train(config)
    final = _weights_of(result.q_network)
    if not checkpoints or any(not torch.equal(final[name], tensor)
                              for name, tensor in checkpoints[-1].items()):
        checkpoints.append(final)  # unless the last evaluation was at the very end
    return {
        "checkpoints": checkpoints,
        "initial": initial[0] if initial else None,
        "episodes": len(result.episode_returns),
        "seconds": float(result.seconds),
    }


def best_greedy_return(
    checkpoints: list[dict[str, torch.Tensor]], hidden_dim: int, num_episodes: int, seed: int,
    threshold: float,
) -> list[float]:
    """(Run on the reference.) The mean greedy return on CartPole-v1 of each checkpoint, the
    last one first, stopping at the first that reaches `threshold`."""
    env = dqn.make_env("CartPole-v1")
    network = dqn.QNetwork(env.observation_space.shape[0], int(env.action_space.n), hidden_dim)
    env.close()
    means = []
    for state_dict in reversed(checkpoints):
        network.load_state_dict(state_dict)
        returns = dqn.evaluate(network, "CartPole-v1", num_episodes, seed)
        means.append(float(np.mean(returns)))
        if means[-1] >= threshold:
            break
    return means
