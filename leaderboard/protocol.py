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

import numpy as np

from dmix_gym.errors import ConfigError
from dmix_gym.feedback import objective

EVAL_SEED_BASE = 1_000_000
VALIDATION_SEED_BASE = 4_000_000  # model selection: apart from collection [0, 1e6), evaluation (1e6 + ...), sweep (2e6), start state (3e6)
REFERENCE_SEED_BASE = 5_000_000  # references and their searches (v2 on), apart from all of the above
# One intra-op thread per episode: an episode's score then repeats to float precision whatever the worker count,
# backend or core count (more threads sum matmuls in another order); parallelism comes from running episodes side
# by side. Every official row of v2 ran this way (2 workers x 1 thread on 2 cores).
EPISODE_THREADS = 1


@dataclass(frozen=True)
class Objective:
    """The score a protocol ranks by: S(f) = sum_k w_k (f_k - mean_k) / std_k over a final feedback f (fields source
    first, matched by position), w equal by default (the balanced score).

    Its constants ship with the protocol. A task's env rewards S's per-step increment (eq. 6 with
    lambda_k = w_k / std_k, `reward_weights`), so an episode's return is S(final) - S(start), and every method that
    fits, searches or learns an objective optimises this one.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: tuple[float, ...] | None = None  # w_k, summing to 1; None = equal

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not all(s > 0 for s in self.std):
            raise ConfigError(f"an objective needs one mean and one positive std per field, got {self.mean}, {self.std}")
        if self.weights is not None and (len(self.weights) != len(self.std) or min(self.weights) < 0
                                         or not np.isclose(sum(self.weights), 1.0)):
            raise ConfigError(f"objective weights {self.weights} must be {len(self.std)} non-negative numbers summing to 1")

    def field_weights(self) -> np.ndarray:
        k = len(self.std)
        return np.asarray(self.weights if self.weights is not None else [1.0 / k] * k, np.float64)

    def reward_weights(self) -> tuple[float, ...]:
        """lambda_k = w_k / std_k: the env's reward weights that make eq. 6 this score's per-step increment."""
        return tuple(float(w) for w in self.field_weights() / np.asarray(self.std, np.float64))

    def score(self, final_feedback) -> float:
        """S of a final feedback vector."""
        f = np.asarray(final_feedback, np.float64)
        if f.shape != (len(self.std),):
            raise ValueError(f"feedback has shape {f.shape}, the objective {len(self.std)} fields")
        lam = self.reward_weights()
        return objective(f, lam) - objective(np.asarray(self.mean), lam)


@dataclass(frozen=True)
class SearchConfig:
    """How `leaderboard.oracle` finds a task's best static mixture and best schedule (the references of v2 on).

    Every candidate runs on the same `search_seeds` (paired comparisons); the winners are then measured afresh on
    `confirm_seeds` other seeds, so the reference is not the luckiest of many noisy scores.
    """

    coarse: tuple[float, ...] = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)  # target shares of the static search's first pass
    refine: tuple[float, ...] = (0.05, 0.025)  # then, for each step, the shares that far either side of the best so far
    tolerance: float = 0.02  # then the step halves while a neighbour of the best differs from it by more than this
    min_step: float = 0.0125  # ... down to this step: the static oracle's neighbours are within noise, or this close
    search_seeds: int = 2  # episodes per candidate while searching
    confirm_seeds: int = 5  # fresh episodes of each winner (and of the static oracle it is compared with)
    random_episodes: int = 5  # random-mixture episodes behind ref_min
    knots: int = 4  # schedules: a piecewise-linear target share through this many evenly spaced points of progress
    generations: int = 3  # CMA-ES generations of the schedule search
    population: int = 6  # schedules per generation
    sigma: float = 0.5  # CMA-ES's initial step, in logits of the target share
    seed: int = 0  # CMA-ES's seed (and the domain search's model-based proposals')
    domains: bool = False  # v3 on: the static oracle also searches within-field domain splits (`oracle.domain_search`)
    domain_pairs: int = 3  # ... the best single-domain tilts of each role, combined two at a time
    share_multiples: tuple[float, ...] = (0.5, 1.5, 2.0)  # ... the best split at these multiples of the line's share
    model_rounds: int = 2  # ... rounds of Bayesian optimisation (a GP over every logged mixture of the task)
    model_proposals: int = 4  # ... candidates each round proposes

    def __post_init__(self) -> None:
        if self.tolerance < 0 or self.min_step <= 0:
            raise ConfigError(f"SearchConfig needs tolerance >= 0 and min_step > 0, got {self.tolerance}, {self.min_step}")
        if not self.coarse or not all(0.0 <= s <= 1.0 for s in self.coarse + self.refine):
            raise ConfigError(f"search shares must lie in [0, 1], got coarse {self.coarse}, refine {self.refine}")
        if not all(m > 0 for m in self.share_multiples):
            raise ConfigError(f"SearchConfig.share_multiples must be positive, got {self.share_multiples}")
        for name in ("search_seeds", "confirm_seeds", "random_episodes", "knots", "generations", "population"):
            if getattr(self, name) < 1:
                raise ConfigError(f"SearchConfig.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Task:
    name: str
    scenario: str  # a scenario name, a scenario JSON path, or a Scenario's JSON text
    preset: str
    seeds: tuple[int, ...]
    overrides: tuple[tuple[str, Any], ...] = ()  # scenario overrides (e.g. another proxy model shape)
    space: Literal["fine", "source"] = "fine"  # "source": policies act in the per-field (2-dim) space
    description: str = ""
    objective: Objective | None = None  # v2 on: the env rewards this score's increments (None: eq. 6, lambda equal)
    threads: int = EPISODE_THREADS  # torch threads an episode (env and policy) runs with, on any machine

    def make_scenario(self):
        from dmix_gym.scenario import override, resolve_scenario

        overrides = dict(self.overrides)
        if self.objective is not None:
            overrides["reward_weights"] = self.objective.reward_weights()
        return override(resolve_scenario(self.scenario, self.preset), **overrides)

    def make_env(self, data_dir=None, cache_dir=None, device: str = "auto", progress: bool = False):
        """The task's DataMix-v0, in the space the task is evaluated in (`progress`: bars for its data and base proxy)."""
        import gymnasium as gym

        import dmix_gym  # noqa: F401

        return self.wrap(gym.make("DataMix-v0", scenario=self.make_scenario().to_dict(), data_dir=data_dir,
                                  cache_dir=cache_dir, device=device, progress=progress, threads=self.threads))

    def make_vector_env(self, num_envs: int, data_dir=None, cache_dir=None, device: str = "auto"):
        """`num_envs` of the task's proxies trained together (a `DataMixVectorEnv`); `wrap` gives each sub-env's space."""
        import gymnasium as gym

        import dmix_gym  # noqa: F401

        return gym.make_vec("DataMix-v0", num_envs=num_envs, scenario=self.make_scenario().to_dict(), data_dir=data_dir,
                            cache_dir=cache_dir, device=device, progress=False, threads=self.threads)

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
    reference_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # v0/v1: target shares of the static mixtures behind ref_max
    reference_seeds: int = 1  # v0/v1: episodes per reference policy (the task's first seeds)
    random_episodes: int = 3  # v0/v1: random-mixture episodes behind ref_min
    frozen: str | None = None  # why the protocol takes no new submissions (its stored results stay readable)
    objective: Objective | None = None  # v2 on: the shipped score; None: balanced, standardised by the official file/dataset
    search: SearchConfig | None = None  # v2 on: how the references are searched (`leaderboard.oracle`); None: the grid above
    schedule_tasks: tuple[str, ...] = ()  # tasks whose ref_max also searches time-varying schedules
    training_task: str = "in-distribution"  # the task of the dataset's scenario (static-transfer's share comes from it)
    validation_scenarios: tuple[Task, ...] = ()  # v2 on: model selection also runs these (no evaluation task's scenario)

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise ConfigError(f"protocol {self.version} has no task {name!r} (has {[t.name for t in self.tasks]})")


def _seeds(offset: int, n: int) -> tuple[int, ...]:
    return tuple(EVAL_SEED_BASE + offset + i for i in range(n))


def _tasks(preset: str, n_seeds: int, other_model: dict[str, Any], unseen_target: bool = False,
           objective: Objective | None = None) -> tuple[Task, ...]:
    extra = (Task("unseen-target", "general-code", preset, _seeds(400, n_seeds),
                  description="another target field (code): an agent trained on math acts through the per-field space",
                  objective=objective),)
    return (
        Task("in-distribution", "general-math", preset, _seeds(0, n_seeds),
             description="the scenario the dataset was collected on", objective=objective),
        Task("unseen-model", "general-math", preset, _seeds(100, n_seeds), tuple(other_model.items()),
             description="another proxy model shape (a different target model)", objective=objective),
        Task("unseen-source", "wiki-math", preset, _seeds(200, n_seeds),
             description="another source corpus (WikiText-103 alone) with its own domains", objective=objective),
        Task("source-space", "general-math", preset, _seeds(300, n_seeds), space="source",
             description="the per-field (2-dim) collapse of the fine space", objective=objective),
    ) + (extra if unseen_target else ())


V0_FROZEN = ("dmix-bench-v0 fed the source field back by MMLU-style Q/A pairs, which rose under target-only training; "
             "its scenarios now feed it by held-out text. Its results stay readable; submit to dmix-bench-v1")
V1_FROZEN = ("dmix-bench-v1 ranked by a score the searching baselines did not optimise, its ceiling was one episode of a "
             "coarse static grid on an evaluation seed, and two of its builds held out the tail of a training stream; "
             "its results stay readable; submit to dmix-bench-v2")
CPU_OTHER_MODEL = {"hidden_size": 96, "num_layers": 6, "num_heads": 4, "intermediate_size": 256}
SMOKE_OTHER_MODEL = {"hidden_size": 32, "num_layers": 3, "num_heads": 2, "intermediate_size": 88}


# dmix-bench-v2's score: the balanced score with the per-field constants of dataset
# dmix/general-math-cpu/trajectories-v1 (the ones v1 read from it at run time), shipped here so no run recomputes
# them. Fields match by position: the source field, then the target field (math, or code on unseen-target).
V2_OBJECTIVE = Objective(mean=(-4.942327976226807, -5.355085372924805), std=(0.17588239908218384, 1.3602370023727417))


# The regime where a time-varying mixture beat the best static one beyond noise (benchmarks/headroom.py,
# scarce-terminate): the target corpus is 1% of each target domain's sequences and the episode ends once it is used up.
SCARCE_TARGET = (("target_fraction", 0.01),)


def _v2(version: str, dataset: str, preset: str, n_seeds: int, other_model: dict[str, Any], search) -> Protocol:
    # Model selection also sees a source corpus no task evaluates on (DBpedia-14 alone), so it rewards generalising.
    held_out = Task("validation-dbpedia-math", "dbpedia-math", preset, (), objective=V2_OBJECTIVE,
                    description="model selection only: another source corpus (DBpedia-14 alone)")
    scarce = Task("scarce-target", "general-math", preset, _seeds(500, n_seeds), SCARCE_TARGET, objective=V2_OBJECTIVE,
                  description="a scarce target corpus (1% of each target domain) that ends the episode when used up: "
                              "when to spend it matters")
    return Protocol(version, dataset, (0, EVAL_SEED_BASE), _tasks(preset, n_seeds, other_model, True, V2_OBJECTIVE) + (scarce,),
                    objective=V2_OBJECTIVE, search=search, schedule_tasks=("in-distribution", "scarce-target"),
                    validation_scenarios=(held_out,))


PROTOCOLS: dict[str, Protocol] = {
    "dmix-bench-v2": _v2("dmix-bench-v2", "dmix/general-math-cpu/trajectories-v1", "cpu", 5, CPU_OTHER_MODEL, SearchConfig()),
    "dmix-bench-smoke-v2": _v2("dmix-bench-smoke-v2", "dmix/general-math-smoke/trajectories-v1", "smoke", 3, SMOKE_OTHER_MODEL,
                               SearchConfig(coarse=(0.0, 0.5, 1.0), refine=(0.25,), search_seeds=1, confirm_seeds=2,
                                            random_episodes=2, generations=1, population=2)),
    # v3: the static oracle searches within-field domain splits too. The default once its references and rows run.
    "dmix-bench-v3": _v2("dmix-bench-v3", "dmix/general-math-cpu/trajectories-v1", "cpu", 5, CPU_OTHER_MODEL,
                         SearchConfig(domains=True)),
    "dmix-bench-smoke-v3": _v2("dmix-bench-smoke-v3", "dmix/general-math-smoke/trajectories-v1", "smoke", 3, SMOKE_OTHER_MODEL,
                               SearchConfig(coarse=(0.0, 0.5, 1.0), refine=(0.25,), search_seeds=1, confirm_seeds=2,
                                            random_episodes=2, generations=1, population=2, domains=True, domain_pairs=2,
                                            share_multiples=(0.5,), model_rounds=1, model_proposals=2)),
    "dmix-bench-v1": Protocol(
        "dmix-bench-v1", "dmix/general-math-cpu/trajectories-v1", (0, EVAL_SEED_BASE),
        _tasks("cpu", 5, CPU_OTHER_MODEL, unseen_target=True), frozen=V1_FROZEN,
    ),
    "dmix-bench-smoke-v1": Protocol(
        "dmix-bench-smoke-v1", "dmix/general-math-smoke/trajectories-v1", (0, EVAL_SEED_BASE),
        _tasks("smoke", 3, SMOKE_OTHER_MODEL, unseen_target=True), reference_grid=(0.0, 0.5, 1.0), random_episodes=2,
        frozen=V1_FROZEN,
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
DEFAULT_PROTOCOL = "dmix-bench-v2"  # what every `dmix leaderboard` command ranks on unless told
DEFAULT_SMOKE_PROTOCOL = "dmix-bench-smoke-v2"  # its smoke twin: `dmix run`'s leaderboard


def get_protocol(version: str) -> Protocol:
    if version not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {version!r}; choose one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[version]


def shipped_objective(version: str) -> Objective:
    """The objective a protocol ranks by, for a run outside the leaderboard (`dmix cpt`, `dmix search`) to maximise;
    a protocol without a shipped one (v0, v1) is a ConfigError."""
    objective = get_protocol(version).objective
    if objective is None:
        raise ConfigError(f"protocol {version!r} ships no objective; use dmix-bench-v2 or later")
    return objective
