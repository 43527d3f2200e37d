"""The policy interface shared by agents and baselines, and the one loop that runs any policy in DataMix-v0.

A policy sees a scenario (`reset`), then, before each step, the whole history of the episode so
far (`act`), and returns the next mixture: a point on the simplex over the env's domains.
"""

from __future__ import annotations

import copy
import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .data.domains import DomainSpace

if TYPE_CHECKING:
    from .scenario import Scenario


@dataclass(frozen=True)
class ScenarioInfo:
    """What a policy may know about the scenario it acts in."""

    scenario: dict[str, Any]  # the Scenario's JSON form
    domain_space: DomainSpace
    max_steps: int

    @property
    def num_domains(self) -> int:
        return self.domain_space.size

    @property
    def num_fields(self) -> int:
        return len(self.domain_space.fields)

    @cached_property
    def parsed(self) -> "Scenario":
        """The scenario as a `Scenario` (its JSON form, parsed once)."""
        from .scenario import Scenario

        return Scenario.from_dict(self.scenario)

    @property
    def optimizer_steps_per_step(self) -> int:
        """Optimizer steps the proxy takes in one env step (a method whose clock is the training batch reads it)."""
        return self.parsed.train.optimizer_steps_per_step(self.parsed.data.preset.seq_len)

    @property
    def sequences_per_step(self) -> int:
        """Training sequences the env draws in one step."""
        return self.parsed.train.sequences_per_step(self.parsed.data.preset.seq_len)

    @property
    def target_runs_out(self) -> bool:
        """Whether a used-up target field ends the episode (else it is read again)."""
        return self.parsed.train.on_exhausted == "terminate"

    @property
    def scenario_name(self) -> str:
        return f"{self.scenario['data']['name']}-{self.scenario['data']['preset']['name']}"

    @classmethod
    def from_env(cls, env) -> "ScenarioInfo":
        """The scenario of a DataMix-v0 env; the domain space is the one its outermost wrapper exposes."""
        base = env.unwrapped
        return cls(json.loads(base.scenario.to_json()), env.get_wrapper_attr("domain_space"), base.max_steps)


@dataclass
class History:
    """An episode so far: every observation (reset's first) and the `info` that came with it."""

    observations: list[np.ndarray] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)

    def append(self, observation: np.ndarray, info: dict[str, Any]) -> None:
        self.observations.append(np.asarray(observation, np.float32))
        self.infos.append(info)

    def stacked(self) -> np.ndarray:
        """(t+1, obs_dim) array of the observations."""
        return np.stack(self.observations)

    def __len__(self) -> int:
        return len(self.observations)


class Policy(ABC):
    """A data-mixing policy: agents and baselines alike."""

    name: str = "policy"

    def prepare(self, env, progress: bool = True) -> None:
        """One-off work a policy needs in a scenario before its first episode (proxy runs, reference losses)."""

    def reset(self, info: ScenarioInfo) -> None:
        """Start an episode of the scenario described by `info`."""
        self.info = info

    @abstractmethod
    def act(self, history: History) -> np.ndarray:
        """The next mixture, shape (D,), non-negative, summing to 1."""

    def save(self, path: str | Path) -> Path:
        raise NotImplementedError(f"{type(self).__name__} cannot be saved")

    def compute(self) -> dict[str, Any]:
        """What the policy spent before acting (proxy runs, training), for the leaderboard to charge."""
        return {}


def check_mixture(p: np.ndarray, size: int, who: str) -> np.ndarray:
    """`p` as float64 if it is a distribution over `size` domains; a ValueError naming `who` otherwise."""
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (size,) or not np.all(np.isfinite(p)) or np.any(p < 0) or not np.isclose(p.sum(), 1.0, atol=1e-5):
        raise ValueError(f"policy {who} returned an invalid mixture {np.round(p, 4).tolist()} "
                         f"(want {size} non-negative weights summing to 1)")
    return p


@dataclass(frozen=True)
class Episode:
    """One policy episode in DataMix-v0: what the env showed and did at every step."""

    policy: str
    seed: int
    domains: tuple[str, ...]
    fields: tuple[str, ...]
    observations: np.ndarray  # (T+1, obs_dim): reset's, then each step's
    mixtures: np.ndarray  # (T+1, D): p_0, then each action the env carried out
    rewards: np.ndarray  # (T,)
    infos: dict[str, np.ndarray]  # key -> (T+1, ...): reset's info, then each step's
    terminated: bool
    truncated: bool
    seconds: float

    @property
    def feedback(self) -> np.ndarray:
        """(T+1, K) feedback at reset, then after each step."""
        return np.asarray(self.infos["feedback"], np.float64)

    @property
    def domain_loss(self) -> np.ndarray:
        """(T+1, D) held-out LM loss per domain at reset, then after each step."""
        return np.asarray(self.infos["domain_loss"], np.float64)

    @property
    def tokens(self) -> np.ndarray:
        """(T, D) tokens drawn per domain at each step."""
        return np.asarray(self.infos["tokens"][1:], np.int64)

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum())

    @property
    def final_feedback(self) -> np.ndarray:
        return self.feedback[-1]

    def summary(self) -> dict[str, Any]:
        return {
            "policy": self.policy, "seed": self.seed, "steps": len(self.rewards), "return": self.episode_return,
            "final_feedback": dict(zip(self.fields, self.final_feedback.tolist())),
            "tokens": int(self.tokens.sum()), "terminated": self.terminated, "seconds": round(self.seconds, 2),
        }


class PolicyWrapper(Policy):
    """A policy that changes what another one plays, as `gymnasium.Wrapper` changes an env: it prepares and resets
    `inner` with itself and charges `inner`'s compute; `act` is the wrapper's own."""

    def __init__(self, inner: Policy):
        self.inner = inner

    def prepare(self, env, progress: bool = True) -> None:
        self.inner.prepare(env, progress)

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        self.inner.reset(info)

    def compute(self) -> dict[str, Any]:
        return self.inner.compute()


class Replay(Policy):
    """Plays given mixtures in order: a (T, D) plan, or one (D,) mixture held for the whole episode."""

    def __init__(self, mixtures: np.ndarray, name: str = "replay"):
        self.mixtures = np.asarray(mixtures, np.float64)
        if self.mixtures.ndim not in (1, 2):
            raise ValueError(f"Replay takes a (D,) mixture or a (T, D) plan, got shape {self.mixtures.shape}")
        self.name = name

    def act(self, history: History) -> np.ndarray:
        if self.mixtures.ndim == 1:
            return self.mixtures / self.mixtures.sum()
        t = len(history) - 1
        if t >= len(self.mixtures):
            raise ValueError(f"{self.name}: the plan has {len(self.mixtures)} mixtures, the episode asks for step {t + 1}")
        return self.mixtures[t] / self.mixtures[t].sum()


def adapt_env(env, policy: Policy):
    """`env` as a policy of a fixed domain space sees it: unchanged if the spaces match, else bridged
    through the source-based space (fine -> per-field shares -> the env's domains, by p_0/p*, or by the
    within-field splits `policy.field_splits(env's space)` returns, where the policy has that method).

    Fields pair up by role (the source field, then the target fields in order), so a policy trained
    on one target field (math) acts on another (code) by the share it gives each field.
    """
    wanted: DomainSpace | None = getattr(policy, "domain_space", None)
    if wanted is None:  # the policy adapts to any space (the baselines)
        return env
    have: DomainSpace = env.get_wrapper_attr("domain_space")
    if tuple(have.names) == tuple(wanted.names):
        return env
    if len(have.fields) != len(wanted.fields) or len(have.target_fields) != len(wanted.target_fields):
        raise ValueError(f"policy {policy.name!r} knows fields {list(wanted.fields)} (targets {list(wanted.target_fields)}), "
                         f"the env has {list(have.fields)} (targets {list(have.target_fields)}): no field-by-field match")
    from .wrappers import CollapseDomains

    # The policy's space under the env's field names: collapse and expand only read field_of, p0 and p*.
    renamed = replace(wanted, fields=have.fields, target_fields=have.target_fields)
    splits = policy.field_splits(have) if callable(getattr(policy, "field_splits", None)) else None
    coarse = env if have.size == len(have.fields) else CollapseDomains(env, to="source", splits=splits)
    return CollapseDomains(coarse, to="fine", fine_space=renamed)


def rollout(policy: Policy, env, seed: int = 0, progress: bool = False) -> Episode:
    """Run `policy` for one episode of `env` (a DataMix-v0, possibly wrapped) and return it.

    The one env loop of dmix: the leaderboard, the baselines' proxy runs, trajectory collection
    (a `Replay` of the planned mixtures) and `dmix env episode` all run through it. A policy of
    another domain space (an agent trained on other domains) acts through the source-based space
    (`adapt_env`).
    """
    from tqdm.auto import tqdm

    env = adapt_env(env, policy)
    info = ScenarioInfo.from_env(env)
    policy.prepare(env, progress=progress)
    policy.reset(info)
    started = time.perf_counter()
    obs, step_info = env.reset(seed=seed)
    history = History()
    history.append(obs, step_info)
    d = env.action_space.shape[0]
    mixtures, rewards = [obs[:d].astype(np.float64)], []
    terminated = truncated = False
    with tqdm(total=info.max_steps, desc=f"{policy.name} seed {seed}", unit="step", disable=not progress) as bar:
        while not (terminated or truncated):
            action = check_mixture(policy.act(history), d, policy.name)
            obs, reward, terminated, truncated, step_info = env.step(action)
            history.append(obs, step_info)
            mixtures.append(action)
            rewards.append(reward)
            bar.update(1)
            bar.set_postfix(reward=f"{reward:+.3f}")
    return _episode(policy, seed, info.domain_space, history, mixtures, rewards, terminated, truncated,
                    time.perf_counter() - started)


def rollout_vector(policies: list[Policy], venv, seeds: list[int], progress: bool = False,
                   wrap: Callable[[Any], Any] | None = None) -> list[Episode]:
    """Run policy k for one episode of sub-env k of a `DataMixVectorEnv`, all at once: the episodes `rollout` gives
    each policy alone on `wrap(env)` with the same seed (up to float rounding), in one batched training and
    evaluation per step. Fewer policies than sub-envs fill the spare ones with copies of the first, discarded.

    `wrap` (e.g. a task's `CollapseDomains`) and a policy of another domain space (`adapt_env`) are applied to
    each sub-env's actions and observations as `rollout` applies them. A sub-env whose episode ended waits (its
    autoreset episode is discarded) until every sub-env's has. Each episode's `seconds` is its share of the
    batched wall time, so summing them gives the compute spent.
    """
    from tqdm.auto import tqdm

    base = venv.unwrapped
    if not (0 < len(policies) == len(seeds) <= base.num_envs):
        raise ValueError(f"{len(policies)} policies and {len(seeds)} seeds for {base.num_envs} sub-envs")
    if len({id(p) for p in policies}) < len(policies):
        raise ValueError("rollout_vector needs one policy object per sub-env (policies keep per-episode state)")
    wanted, spare = len(policies), base.num_envs - len(policies)
    policies = list(policies) + [copy.deepcopy(policies[0]) for _ in range(spare)]
    seeds = list(seeds) + [seeds[0]] * spare
    views = [adapt_env(wrap(env) if wrap else env, policy) for policy, env in zip(policies, base.envs)]
    bridges = [_bridges(view, env) for view, env in zip(views, base.envs)]
    infos_of = [ScenarioInfo.from_env(view) for view in views]
    for policy, view, info in zip(policies, views, infos_of):
        policy.prepare(view, progress=progress)
        policy.reset(info)
    started = time.perf_counter()
    obs, infos = venv.reset(seed=[int(s) for s in seeds])
    seen = [_bridged_observation(obs[k], bridges[k]) for k in range(len(policies))]
    histories = [History() for _ in policies]
    for k, history in enumerate(histories):
        history.append(seen[k], _sub_info(infos, k))
    sizes = [info.num_domains for info in infos_of]
    mixtures = [[seen[k][: sizes[k]].astype(np.float64)] for k in range(len(policies))]
    rewards: list[list[float]] = [[] for _ in policies]
    ended = np.zeros((len(policies), 2), dtype=bool)  # (terminated, truncated)
    carried = np.zeros(base.action_space.shape)  # the action each sub-env gets, in its own space (float64, as rollout)
    with tqdm(total=base.envs[0].max_steps, desc=f"{len(policies)} policies", unit="step", disable=not progress) as bar:
        while not ended.any(1).all():
            running = np.flatnonzero(~ended.any(1))
            for k in running:
                action = check_mixture(policies[k].act(histories[k]), sizes[k], policies[k].name)
                mixtures[k].append(action)
                carried[k] = _bridged_action(action, bridges[k])
            obs, reward, terminated, truncated, infos = venv.step(carried)
            for k in running:
                histories[k].append(_bridged_observation(obs[k], bridges[k]), _sub_info(infos, k))
                rewards[k].append(float(reward[k]))
                ended[k] = terminated[k], truncated[k]
            bar.update(1)
    share = (time.perf_counter() - started) / len(policies)
    return [_episode(p, int(seed), info.domain_space, h, m, r, bool(e[0]), bool(e[1]), share)
            for p, seed, info, h, m, r, e in zip(policies, seeds, infos_of, histories, mixtures, rewards, ended)][:wanted]


def _bridges(view, env) -> list:
    """The `CollapseDomains` wrappers between a policy's view of a sub-env and the sub-env, outermost first."""
    from .wrappers import CollapseDomains

    chain = []
    while view is not env:
        if not isinstance(view, CollapseDomains):
            raise ValueError(f"rollout_vector can bridge only CollapseDomains wrappers, got {type(view).__name__}")
        chain.append(view)
        view = view.env
    return chain


def _bridged_action(action: np.ndarray, bridges: list) -> np.ndarray:
    for wrapper in bridges:
        action = wrapper.action(action)
    return action


def _bridged_observation(obs: np.ndarray, bridges: list) -> np.ndarray:
    for wrapper in reversed(bridges):
        obs = wrapper.observation(obs)
    return np.asarray(obs, np.float32)


def _sub_info(infos: dict[str, Any], k: int) -> dict[str, Any]:
    """Sub-env k's info out of a vector env's batched infos."""
    return {key: value[k] for key, value in infos.items() if not key.startswith("_") and infos[f"_{key}"][k]}


def _episode(policy: Policy, seed: int, space: DomainSpace, history: History, mixtures: list, rewards: list,
             terminated: bool, truncated: bool, seconds: float) -> Episode:
    infos = {key: np.asarray([i[key] for i in history.infos]) for key in history.infos[0]}
    return Episode(policy.name, seed, space.names, space.fields, history.stacked(), np.array(mixtures),
                   np.array(rewards, np.float64), infos, bool(terminated), bool(truncated), seconds)
