"""The evaluation protocol: a versioned, fixed list of tasks (scenario + preset + seeds) every method runs.

Tasks cover what the paper claims of the agent: the scenario it was trained on, an unseen proxy
model (another "target model"), an unseen source corpus (other domains: a fine-space agent acts
through the source-based space), and the source-based (2-dim) collapse of the fine space.
`dmix-bench-v1` adds an unseen target field (code). Evaluation seeds start at `EVAL_SEED_BASE`,
far from the env seeds trajectory collection uses (plan seed * 100_000 + episode index), so no
evaluated episode was seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dmix_gym.errors import ConfigError

EVAL_SEED_BASE = 1_000_000
VALIDATION_SEED_BASE = 4_000_000  # model selection: apart from collection [0, 1e6), evaluation (1e6 + ...), sweep (2e6), start state (3e6)


@dataclass(frozen=True)
class Task:
    name: str
    scenario: str  # a scenario name, a scenario JSON path, or a Scenario's JSON text
    preset: str
    seeds: tuple[int, ...]
    overrides: tuple[tuple[str, Any], ...] = ()  # scenario overrides (e.g. another proxy model shape)
    space: Literal["fine", "source"] = "fine"  # "source": policies act in the per-field (2-dim) space
    description: str = ""

    def make_scenario(self):
        from dmix_gym.scenario import override, resolve_scenario

        return override(resolve_scenario(self.scenario, self.preset), **dict(self.overrides))

    def make_env(self, data_dir=None, cache_dir=None, device: str = "auto", progress: bool = False):
        """The task's DataMix-v0, in the space the task is evaluated in (`progress`: bars for its data and base proxy)."""
        import gymnasium as gym

        import dmix_gym  # noqa: F401

        return self.wrap(gym.make("DataMix-v0", scenario=self.make_scenario().to_dict(), data_dir=data_dir,
                                  cache_dir=cache_dir, device=device, progress=progress))

    def make_vector_env(self, num_envs: int, data_dir=None, cache_dir=None, device: str = "auto"):
        """`num_envs` of the task's proxies trained together (a `DataMixVectorEnv`); `wrap` gives each sub-env's space."""
        import gymnasium as gym

        import dmix_gym  # noqa: F401

        return gym.make_vec("DataMix-v0", num_envs=num_envs, scenario=self.make_scenario().to_dict(), data_dir=data_dir,
                            cache_dir=cache_dir, device=device, progress=False)

    def wrap(self, env):
        """A DataMix-v0 env as the task shows it to a policy (the per-field space for `source-space`)."""
        from dmix_gym.wrappers import CollapseDomains

        return CollapseDomains(env, to="source") if self.space == "source" else env


@dataclass(frozen=True)
class Protocol:
    version: str
    dataset: str  # the Minari dataset whose feedback mean/std standardise the balanced score
    collection_seeds: tuple[int, int]  # [low, high) env seeds trajectory collection uses (plan seeds 0-9: seed * 100_000 + index)
    tasks: tuple[Task, ...]
    reference_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # target shares of the static mixtures behind ref_max
    reference_seeds: int = 1  # episodes per reference policy (the task's first seeds)
    random_episodes: int = 3  # random-mixture episodes behind ref_min
    frozen: str | None = None  # why the protocol takes no new submissions (its stored results stay readable)

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise ConfigError(f"protocol {self.version} has no task {name!r} (has {[t.name for t in self.tasks]})")


def _seeds(offset: int, n: int) -> tuple[int, ...]:
    return tuple(EVAL_SEED_BASE + offset + i for i in range(n))


def _tasks(preset: str, n_seeds: int, other_model: dict[str, Any], unseen_target: bool = False) -> tuple[Task, ...]:
    extra = (Task("unseen-target", "general-code", preset, _seeds(400, n_seeds),
                  description="another target field (code): an agent trained on math acts through the per-field space"),)
    return (
        Task("in-distribution", "general-math", preset, _seeds(0, n_seeds),
             description="the scenario the dataset was collected on"),
        Task("unseen-model", "general-math", preset, _seeds(100, n_seeds), tuple(other_model.items()),
             description="another proxy model shape (a different target model)"),
        Task("unseen-source", "wiki-math", preset, _seeds(200, n_seeds),
             description="another source corpus (WikiText-103 alone) with its own domains"),
        Task("source-space", "general-math", preset, _seeds(300, n_seeds), space="source",
             description="the per-field (2-dim) collapse of the fine space"),
    ) + (extra if unseen_target else ())


V0_FROZEN = ("dmix-bench-v0 fed the source field back by MMLU-style Q/A pairs, which rose under target-only training; "
             "its scenarios now feed it by held-out text. Its results stay readable; submit to dmix-bench-v1")
CPU_OTHER_MODEL = {"hidden_size": 96, "num_layers": 6, "num_heads": 4, "intermediate_size": 256}
SMOKE_OTHER_MODEL = {"hidden_size": 32, "num_layers": 3, "num_heads": 2, "intermediate_size": 88}


PROTOCOLS: dict[str, Protocol] = {
    "dmix-bench-v1": Protocol(
        "dmix-bench-v1", "dmix/general-math-cpu/trajectories-v1", (0, EVAL_SEED_BASE),
        _tasks("cpu", 5, CPU_OTHER_MODEL, unseen_target=True),
    ),
    "dmix-bench-smoke-v1": Protocol(
        "dmix-bench-smoke-v1", "dmix/general-math-smoke/trajectories-v1", (0, EVAL_SEED_BASE),
        _tasks("smoke", 3, SMOKE_OTHER_MODEL, unseen_target=True), reference_grid=(0.0, 0.5, 1.0), random_episodes=2,
    ),
    "dmix-bench-v0": Protocol(
        "dmix-bench-v0", "dmix/general-math-cpu/trajectories-v0", (0, EVAL_SEED_BASE), _tasks("cpu", 3, CPU_OTHER_MODEL),
        frozen=V0_FROZEN,
    ),
    "dmix-bench-smoke-v0": Protocol(
        "dmix-bench-smoke-v0", "dmix/general-math-smoke/trajectories-v0", (0, EVAL_SEED_BASE),
        _tasks("smoke", 2, SMOKE_OTHER_MODEL), reference_grid=(0.0, 0.5, 1.0), random_episodes=2, frozen=V0_FROZEN,
    ),
}
DEFAULT_PROTOCOL = "dmix-bench-v1"


def get_protocol(version: str) -> Protocol:
    if version not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {version!r}; choose one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[version]
