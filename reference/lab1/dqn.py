"""Lab 1, part 3: deep Q-learning (DQN) on CartPole-v1.

Read this file top to bottom, like the lecture: the configuration, the Q-network, the replay
buffer, exploration, the TD target and one training step, the training loop, and greedy
evaluation. The functions marked TODO are yours; the rest is plumbing you can rely on.

Debug on the probe environments first (see `probe_envs.py` and the handout), then train:

    python dqn.py                                  # CartPole-v1, about a minute on a laptop
    python dqn.py --env-id probes/Probe3-v0 --total-timesteps 2000 --learning-starts 100

Lines marked `# algorithm` are the lines of the DQN pseudocode; the rest is bookkeeping.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import probe_envs
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm


def knob(default: Any, help: str) -> Any:
    """A config field with a one-line help string (shown by `python dqn.py --help`)."""
    return field(default=default, metadata={"help": help})


@dataclass
class DQNConfig:
    """Every hyperparameter of the run, named once. The defaults solve CartPole-v1."""

    env_id: str = knob("CartPole-v1", "gymnasium id: CartPole-v1 or a probe, probes/Probe1-v0 ...")
    seed: int = knob(1, "seed for torch, numpy and the environment")
    total_timesteps: int = knob(50_000, "environment steps to train for")
    learning_rate: float = knob(2.3e-3, "Adam's learning rate")
    buffer_size: int = knob(100_000, "replay buffer capacity, in transitions")
    gamma: float = knob(0.99, "discount factor")
    target_network_frequency: int = knob(10, "environment steps between target-network syncs")
    batch_size: int = knob(64, "transitions per gradient step")
    start_e: float = knob(1.0, "epsilon at the first step")
    end_e: float = knob(0.04, "epsilon after the exploration phase")
    exploration_fraction: float = knob(0.16, "share of total_timesteps over which epsilon decays")
    learning_starts: int = knob(1_000, "environment steps of pure collection before learning")
    train_frequency: int = knob(256, "environment steps between training phases")
    gradient_steps: int = knob(128, "gradient steps in each training phase")
    hidden_dim: int = knob(256, "width of the Q-network's two hidden layers")
    eval_frequency: int = knob(0, "environment steps between greedy evaluations (0: never)")
    eval_episodes: int = knob(10, "episodes per greedy evaluation")


# ---------------------------------------------------------------------------------------------
# The Q-network
# ---------------------------------------------------------------------------------------------


class QNetwork(nn.Module):
    """An MLP from an observation to one Q-value per action.

    Layers, with these exact attribute names (the grader loads weights by name):
        fc1:  nn.Linear(obs_dim, hidden_dim), then ReLU
        fc2:  nn.Linear(hidden_dim, hidden_dim), then ReLU
        head: nn.Linear(hidden_dim, num_actions), no activation (Q-values can be negative)
    """

    def __init__(self, obs_dim: int, num_actions: int, hidden_dim: int = 256) -> None:
        super().__init__()
        # BEGIN SOLUTION
        self.fc1 = nn.Linear(obs_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.head = nn.Linear(hidden_dim, num_actions)
        # END SOLUTION

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs: (batch, obs_dim) float32. Returns Q-values of shape (batch, num_actions)."""
        # BEGIN SOLUTION
        hidden = F.relu(self.fc2(F.relu(self.fc1(obs))))
        return self.head(hidden)
        # END SOLUTION


# ---------------------------------------------------------------------------------------------
# The replay buffer
# ---------------------------------------------------------------------------------------------


@dataclass
class ReplayBatch:
    """A batch of transitions as tensors, each with a leading batch dimension B.

    observations, next_observations: (B, *obs_shape) float32; actions: (B,) int64;
    rewards, terminated, truncated: (B,) float32 (terminated and truncated are 0.0 or 1.0).
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor


class ReplayBuffer:
    """A fixed-capacity circular buffer of transitions, stored in preallocated numpy arrays.

    Slot i of every array holds one transition. Transitions are written to slots 0, 1, 2, ...
    and, once the buffer is full, the oldest transition is overwritten: the k-th transition
    added (counting from 0) lives in slot k % capacity. `truncated` is stored so that you can
    see it is *not* needed by the TD target; `terminated` is.
    """

    def __init__(
        self, capacity: int, obs_shape: tuple[int, ...], device: str | torch.device = "cpu"
    ) -> None:
        self.capacity = capacity
        self.device = torch.device(device)
        self.observations = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.next_observations = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.truncated = np.zeros(capacity, dtype=np.float32)
        self.next_index = 0  # the slot the next transition is written to
        self.size = 0  # how many slots hold a transition (at most capacity)

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        action: int,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> None:
        """Store one transition in slot `self.next_index`, then advance `next_index` and `size`.

        next_index wraps around to 0 after capacity - 1; size stops growing at capacity.
        Hint: the arrays are numpy; `self.observations[i] = obs` copies obs into slot i.
        """
        # BEGIN SOLUTION
        i = self.next_index
        self.observations[i] = obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_observations[i] = next_obs
        self.terminated[i] = terminated
        self.truncated[i] = truncated
        self.next_index = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        # END SOLUTION

    def sample(self, batch_size: int, rng: np.random.Generator) -> ReplayBatch:
        """Draw `batch_size` stored transitions uniformly, with replacement.

        Draw the slots with exactly one call, `rng.integers(0, len(self), size=batch_size)`
        (the grader replays your generator), and return them as a ReplayBatch of tensors on
        `self.device` with the dtypes listed in ReplayBatch's docstring.
        Hint: `torch.as_tensor(array[indices], device=self.device)`.
        """
        # BEGIN SOLUTION
        indices = rng.integers(0, len(self), size=batch_size)

        def to_tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(array[indices], device=self.device)

        return ReplayBatch(
            observations=to_tensor(self.observations),
            actions=to_tensor(self.actions),
            rewards=to_tensor(self.rewards),
            next_observations=to_tensor(self.next_observations),
            terminated=to_tensor(self.terminated),
            truncated=to_tensor(self.truncated),
        )
        # END SOLUTION


# ---------------------------------------------------------------------------------------------
# Exploration
# ---------------------------------------------------------------------------------------------


def linear_schedule(
    step: int, start_e: float, end_e: float, exploration_fraction: float, total_timesteps: int
) -> float:
    """Epsilon at environment step `step` (counting from 0).

    Epsilon falls linearly from start_e at step 0 to end_e at step
    exploration_fraction * total_timesteps, and stays at end_e from then on (so with
    exploration_fraction 0 it is end_e from step 0).
    Example: start_e 1.0, end_e 0.1, fraction 0.5, total 1000: step 250 -> 0.55, step 700 -> 0.1.
    """
    # BEGIN SOLUTION
    duration = exploration_fraction * total_timesteps
    if step >= duration:
        return end_e
    return start_e + (end_e - start_e) * step / duration
    # END SOLUTION


def epsilon_greedy(
    q_network: nn.Module,
    obs: np.ndarray,
    epsilon: float,
    num_actions: int,
    rng: np.random.Generator,
    device: str | torch.device = "cpu",
) -> int:
    """Choose an action for one observation `obs` (shape obs_shape, not batched).

    With probability epsilon, a uniformly random action in 0 .. num_actions - 1 (any of them,
    the greedy one included); otherwise the greedy action argmax_a Q(obs, a). Use `rng` for
    all randomness. Returns a Python int.
    Hint: only run the network when you act greedily, under torch.no_grad().
    """
    # BEGIN SOLUTION
    if rng.random() < epsilon:
        return int(rng.integers(num_actions))
    with torch.no_grad():
        q_values = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
    return int(q_values.argmax(dim=1).item())
    # END SOLUTION


# ---------------------------------------------------------------------------------------------
# Learning: the TD target, one gradient step, the target-network sync
# ---------------------------------------------------------------------------------------------


def td_target(target_network: nn.Module, batch: ReplayBatch, gamma: float) -> torch.Tensor:
    """The TD target y = r + gamma * (1 - terminated) * max_a' Q_target(s', a'), shape (B,).

    A terminated transition ended the episode: nothing follows, so no bootstrap. A truncated
    one was only cut by a time limit: the state still has a future, so it *does* bootstrap
    (batch.truncated is not used). No gradient may flow into the target network.
    """
    # BEGIN SOLUTION
    with torch.no_grad():
        next_q = target_network(batch.next_observations).max(dim=1).values
        return batch.rewards + gamma * (1.0 - batch.terminated) * next_q
    # END SOLUTION


def train_step(
    q_network: nn.Module,
    target_network: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: ReplayBatch,
    gamma: float,
) -> float:
    """One gradient step on the Huber loss of the TD error; returns the loss as a Python float.

    loss = mean over the batch of huber(Q(s, a) - y), with Q(s, a) the q_network's value of the
    action taken, y = td_target(target_network, batch, gamma), and huber(d) = d^2 / 2 for
    |d| <= 1, |d| - 1/2 beyond (F.smooth_l1_loss): like the squared error near 0, but a single
    large error cannot blow up the gradient. Zero the gradients, backward, optimizer.step().
    Only the q_network learns: the target network gets no gradient.
    Hint: `q_values.gather(1, actions[:, None])` picks one Q-value per row.
    """
    # BEGIN SOLUTION
    targets = td_target(target_network, batch, gamma)
    q_taken = q_network(batch.observations).gather(1, batch.actions[:, None]).squeeze(1)
    loss = F.smooth_l1_loss(q_taken, targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
    # END SOLUTION


def sync_target(q_network: nn.Module, target_network: nn.Module) -> None:
    """Copy every parameter of q_network into target_network (a hard update).

    Afterwards the two networks compute the same function, but training q_network further must
    not change target_network (copy values, do not share tensors).
    """
    # BEGIN SOLUTION
    target_network.load_state_dict(q_network.state_dict())
    # END SOLUTION


# ---------------------------------------------------------------------------------------------
# The training loop and greedy evaluation
# ---------------------------------------------------------------------------------------------


def make_env(env_id: str) -> gym.Env:
    """A single (not vectorised) environment; knows the probe environments' ids."""
    probe_envs.register_probes()
    return gym.make(env_id)


@dataclass
class TrainResult:
    """What a training run leaves behind (the learning curve is in the lists)."""

    q_network: QNetwork
    target_network: QNetwork
    buffer: ReplayBuffer
    episode_returns: list[float] = field(default_factory=list)  # each finished episode's return
    episode_end_steps: list[int] = field(default_factory=list)  # global step it ended at
    eval_steps: list[int] = field(default_factory=list)  # steps at which evaluate() ran
    eval_returns: list[float] = field(default_factory=list)  # mean greedy return there
    seconds: float = 0.0  # wall-clock time of the run


def train(
    config: DQNConfig, device: str | torch.device = "cpu", progress: bool = False
) -> TrainResult:
    """Train a DQN agent for config.total_timesteps environment steps.

    The setup (seeding, networks, optimiser, buffer) is done for you. Write the loop: at each
    global step (0, 1, ..., total_timesteps - 1):
      1. epsilon = linear_schedule(step, ...); action = epsilon_greedy(...) with `rng`;
      2. env.step(action); add the transition to the buffer with its own terminated and
         truncated flags and the true next observation; add the reward to the episode's return;
      3. if the episode ended (terminated or truncated): append its return to
         result.episode_returns and `step` to result.episode_end_steps, then env.reset();
      4. once step >= config.learning_starts: every config.train_frequency steps
         (step % train_frequency == 0) take config.gradient_steps gradient steps, each on a
         fresh batch sampled with `rng` and passed to train_step; then, every
         config.target_network_frequency steps (step % target_network_frequency == 0), call
         sync_target;
      5. if config.eval_frequency > 0 and (step + 1) % eval_frequency == 0: append step + 1 to
         result.eval_steps and the mean of evaluate(...) with config.eval_episodes episodes
         and seed config.seed + 10_000 to result.eval_returns.
    Advance the progress bar with `progress_bar.update()` once per step.
    """
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    env = make_env(config.env_id)
    obs_shape = env.observation_space.shape
    num_actions = int(env.action_space.n)
    q_network = QNetwork(int(np.prod(obs_shape)), num_actions, config.hidden_dim).to(device)
    target_network = QNetwork(int(np.prod(obs_shape)), num_actions, config.hidden_dim).to(device)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=config.learning_rate)
    buffer = ReplayBuffer(config.buffer_size, obs_shape, device)
    result = TrainResult(q_network, target_network, buffer)
    progress_bar = tqdm(total=config.total_timesteps, disable=not progress, desc=config.env_id,
                        mininterval=1.0)  # redrawn at most once a second
    start_time = time.perf_counter()
    obs, _ = env.reset(seed=config.seed)
    # BEGIN SOLUTION
    episode_return = 0.0
    for step in range(config.total_timesteps):
        epsilon = linear_schedule(  # algorithm
            step,
            config.start_e,
            config.end_e,
            config.exploration_fraction,
            config.total_timesteps,
        )
        action = epsilon_greedy(q_network, obs, epsilon, num_actions, rng, device)  # algorithm
        next_obs, reward, terminated, truncated, _ = env.step(action)  # algorithm
        buffer.add(obs, action, float(reward), next_obs, terminated, truncated)  # algorithm
        obs = next_obs  # algorithm
        episode_return += float(reward)
        if terminated or truncated:
            result.episode_returns.append(episode_return)
            result.episode_end_steps.append(step)
            progress_bar.set_postfix(
                episode_return=episode_return, epsilon=round(epsilon, 3), refresh=False
            )
            episode_return = 0.0
            obs, _ = env.reset()  # algorithm

        if step >= config.learning_starts:
            if step % config.train_frequency == 0:
                for _ in range(config.gradient_steps):
                    batch = buffer.sample(config.batch_size, rng)  # algorithm
                    train_step(  # algorithm
                        q_network, target_network, optimizer, batch, config.gamma
                    )
            if step % config.target_network_frequency == 0:
                sync_target(q_network, target_network)  # algorithm

        if config.eval_frequency > 0 and (step + 1) % config.eval_frequency == 0:
            returns = evaluate(
                q_network, config.env_id, config.eval_episodes, config.seed + 10_000, device
            )
            result.eval_steps.append(step + 1)
            result.eval_returns.append(float(np.mean(returns)))
            progress_bar.set_postfix(eval_return=result.eval_returns[-1], refresh=False)
        progress_bar.update()
    # END SOLUTION
    progress_bar.close()
    env.close()
    result.seconds = time.perf_counter() - start_time
    return result


def evaluate(
    q_network: nn.Module,
    env_id: str,
    num_episodes: int,
    seed: int,
    device: str | torch.device = "cpu",
) -> list[float]:
    """The undiscounted return of `num_episodes` greedy episodes (epsilon = 0), in order.

    Use one environment from make_env(env_id); start episode i with env.reset(seed=seed + i)
    and play until it terminates or is truncated, always taking argmax_a Q(obs, a) (torch's
    argmax, so ties go to the lowest action).
    """
    # BEGIN SOLUTION
    env = make_env(env_id)
    returns = []
    for episode in range(num_episodes):
        obs, _ = env.reset(seed=seed + episode)
        episode_return, done = 0.0, False
        while not done:
            with torch.no_grad():
                q_values = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
            obs, reward, terminated, truncated, _ = env.step(int(q_values.argmax(dim=1).item()))
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    env.close()
    return returns
    # END SOLUTION


def parse_config() -> DQNConfig:
    """Build a DQNConfig from the command line: one --flag per field, e.g. --total-timesteps."""
    parser = argparse.ArgumentParser(description="Train DQN (lab 1, part 3).")
    for config_field in dataclasses.fields(DQNConfig):
        parser.add_argument(
            "--" + config_field.name.replace("_", "-"),
            type=type(config_field.default),
            default=config_field.default,
            help=config_field.metadata["help"],
        )
    return DQNConfig(**vars(parser.parse_args()))


if __name__ == "__main__":
    from plotting import plot_learning_curve

    config = parse_config()
    if config.eval_frequency == 0:
        config = dataclasses.replace(config, eval_frequency=max(config.total_timesteps // 20, 1))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(1)  # a small MLP trains fastest on one core: threads only add overhead
    result = train(config, device, progress=True)
    print(f"trained {config.total_timesteps} steps in {result.seconds:.1f} s on {device}")
    if config.env_id in probe_envs.PROBES:
        expected_q = probe_envs.expected_q_values(config.env_id, config.gamma)
        for obs_value, expected in expected_q.items():
            obs = torch.tensor([[obs_value]], dtype=torch.float32, device=device)
            learned = result.q_network(obs)[0].tolist()
            print(f"Q({obs_value:+.0f}) = {[round(q, 3) for q in learned]}, expected {expected}")
    else:
        returns = evaluate(result.q_network, config.env_id, 10, config.seed + 20_000, device)
        print(f"greedy evaluation return over 10 episodes: {np.mean(returns):.1f}")
    path = plot_learning_curve(
        result.episode_end_steps,
        result.episode_returns,
        result.eval_steps,
        result.eval_returns,
        title=f"DQN on {config.env_id} (seed {config.seed})",
        path=f"figures/dqn_{config.env_id.replace('/', '_')}_seed{config.seed}.png",
    )
    print(f"learning curve saved to {path}")
