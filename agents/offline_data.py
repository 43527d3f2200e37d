"""A dmix Minari dataset as the agent's training data: state windows, next mixtures, rewards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from datasets_builder.publish import dmix_metadata, load_dmix_dataset
from dmix_gym.data.domains import DomainSpace, collapse, source_space
from dmix_gym.errors import ConfigError
from dmix_gym.scenario import Scenario

from .features import check_features, reward_weights, tokens, windows

JOIN = "+"  # joins the ids of datasets trained on together; Minari's dataset ids never hold it
ARRAYS = ("windows", "actions", "rewards", "feedback_change", "terminals", "timeouts", "episode", "quality", "scenario_index")


@dataclass(frozen=True)
class OfflineData:
    """Every transition of a dataset, with the window the agent sees at that step."""

    dataset_id: str
    scenario: dict[str, Any]
    domain_space: DomainSpace
    feedback_mean: np.ndarray  # (K,)
    feedback_std: np.ndarray  # (K,)
    features: str  # how the windows' tokens carry the feedback (agents.features)
    target_left: bool  # the windows' tokens carry the target fields' fraction of data left (agents.features)
    windows: np.ndarray  # (N, W, token_dim) state tokens (agents.features), oldest first
    actions: np.ndarray  # (N, D) the next mixture
    rewards: np.ndarray  # (N,) the env's logged reward (eq. 6)
    feedback_change: np.ndarray  # (N, K) f_{t+1} - f_t per field, what any per-step reward is made of
    terminals: np.ndarray  # (N,) the env terminated after this step
    timeouts: np.ndarray  # (N,) the env truncated after this step
    episode: np.ndarray  # (N,) episode id
    quality: np.ndarray  # (N,) the episode's Algorithm 1 candidate count N
    scenario_index: np.ndarray  # (N,) which of the datasets' distinct scenarios the episode ran (0: the first's)

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def domains(self) -> tuple[str, ...]:
        return self.domain_space.names

    @property
    def fields(self) -> tuple[str, ...]:
        return self.domain_space.fields

    @property
    def window(self) -> int:
        return self.windows.shape[1]

    def select(self, mask: np.ndarray) -> "OfflineData":
        """The transitions where `mask` holds (whole episodes when the mask is per episode)."""
        arrays = {k: getattr(self, k)[mask] for k in ARRAYS}
        return OfflineData(self.dataset_id, self.scenario, self.domain_space, self.feedback_mean, self.feedback_std, self.features,
                           self.target_left, **arrays)

    def expect_features(self, features: str, target_left: bool, reader: str) -> None:
        """Refuse to train `reader`, which reads `features` tokens (with or without the data left), on other windows."""
        if features != self.features:
            raise ConfigError(f"{reader} reads {features} feedback features, but these windows carry {self.features} ones; "
                              f"load the dataset with load_offline(..., features={features!r})")
        if target_left != self.target_left:
            raise ConfigError(f"{reader} reads tokens {'with' if target_left else 'without'} the data left, these windows are "
                              f"{'with' if self.target_left else 'without'} it; load the dataset with "
                              f"load_offline(..., target_left={target_left})")

    def rewards_for(self, kind: str) -> np.ndarray:
        """(N,) per-step rewards of kind "env" (the logged eq. 6) or "balanced" (see `agents.features`)."""
        if kind == "env":
            return self.rewards
        weights = reward_weights(kind, Scenario.from_dict(self.scenario).weights(), self.feedback_std)
        return (self.feedback_change @ weights).astype(np.float32)

    def top_episodes(self, share: float) -> "OfflineData":
        """The episodes whose balanced return (their final balanced score minus their start's) is in the top `share`
        of their scenario's, whatever behaviour logged them: the expert level of a dataset that mixes levels (dataset
        v2). Returns compare within a scenario only: another draw's model, corpus or data budget moves the feedback at
        another pace, as Procgen normalises returns per game."""
        if not 0 < share <= 1:
            raise ConfigError(f"the top share of episodes must lie in (0, 1], got {share}")
        ids, first, index = np.unique(self.episode, return_index=True, return_inverse=True)
        returns = np.bincount(index, weights=self.rewards_for("balanced"), minlength=len(ids))
        scenarios = self.scenario_index[first]
        best = []
        for scenario in np.unique(scenarios):
            mine = np.flatnonzero(scenarios == scenario)
            keep = max(1, int(round(share * len(mine))))
            best.append(ids[mine[np.argsort(-returns[mine], kind="stable")[:keep]]])
        return self.select(np.isin(self.episode, np.concatenate(best)))

    def of_quality(self, quality: int) -> "OfflineData":
        mask = self.quality == quality
        if not mask.any():
            raise ConfigError(f"dataset {self.dataset_id!r} has no episode of quality N={quality} "
                             f"(has {sorted(set(self.quality.tolist()))})")
        return self.select(mask)


def dataset_ids(ident: str) -> list[str]:
    """The Minari dataset ids an `OfflineData.dataset_id` (an agent's meta "dataset") was joined from."""
    return ident.split(JOIN)


def metadata_space(meta: dict[str, Any]) -> DomainSpace:
    """The domain space a dataset's dmix metadata describes."""
    return DomainSpace(tuple(meta["domains"]), tuple(meta["field_of"]), tuple(meta["fields"]), tuple(meta["target_fields"]),
                       tuple(meta["p0"]), tuple(meta["p_star"]))


def field_roles(space: DomainSpace) -> tuple:
    """What per-field datasets must share: the fields and which are targets. Each draw of a scenario space keeps its
    own natural field shares (p0, p*), so those may differ; the agent's space takes the first dataset's."""
    return space.names, space.field_of, space.fields, space.target_fields


def load_offline(dataset, window: int, features: str = "absolute", target_left: bool = True,
                 space: str = "fine", standardise: tuple | None = None) -> OfflineData:
    """Windows, actions and rewards of every step of a dmix Minari dataset: an id or a loaded MinariDataset, or a list of
    them over one domain space (a main dataset and in-regime slices); the first one's feedback standardisation applies.

    `space="source"`: every dataset's mixtures (observed and chosen) summed per field, so that datasets of different
    domain spaces with the same fields (the draws of a scenario space, each clustered its own way) train one agent of
    the per-field space; it acts in any scenario with those field roles (`dmix_gym.policy.adapt_env`), with a domain
    mixture's within-field splits where given (`baselines.domains.WithinFieldSplits`). Their natural field shares
    may differ (`field_roles`).

    `standardise` (mean, std per field): the feedback standardisation of the features and the balanced reward, by
    default the first dataset's. Pass the objective the agent will be scored by (a benchmark's shipped one), so that
    across draws, none of which has the benchmark's statistics, the reward weighs the fields as the score does."""
    check_features(features)
    if space not in ("fine", "source"):
        raise ConfigError(f"space must be 'fine' (the datasets' own domains) or 'source' (one per field), got {space!r}")
    items = dataset if isinstance(dataset, (list, tuple)) else [dataset]
    datasets = [load_dmix_dataset(d) if isinstance(d, str) else d for d in items]
    metas = [dmix_metadata(d) for d in datasets]
    meta = metas[0]
    own = [metadata_space(m) for m in metas]
    spaces = [source_space(s) for s in own] if space == "source" else own
    k = len(spaces[0].fields)
    mean, std = (meta["feedback_mean"], meta["feedback_std"]) if standardise is None else standardise
    mean, std = np.asarray(mean, np.float32), np.maximum(np.asarray(std, np.float32), 1e-6)
    if mean.shape != (k,) or std.shape != (k,):
        raise ConfigError(f"standardise needs a mean and a std per field ({k}: {list(spaces[0].fields)}), "
                          f"got shapes {mean.shape} and {std.shape}")
    parts: dict[str, list[np.ndarray]] = {key: [] for key in ARRAYS}
    first_id = 0
    keys = [Scenario.from_dict(m["scenario"]).to_json() for m in metas]
    distinct = list(dict.fromkeys(keys))
    scenario_of = [distinct.index(key) for key in keys]  # 0 for the first dataset's scenario
    for data, other, fine, seen, scenario in zip(datasets, metas, own, spaces, scenario_of):
        if space == "fine" and seen != spaces[0]:
            raise ConfigError(f"dataset {data.spec.dataset_id!r} has another domain space than {datasets[0].spec.dataset_id!r}; "
                              f"datasets trained on together must share domains, fields, p0 and p* (space='source' "
                              "trains datasets of other domains on their fields' shares)")
        if space == "source" and field_roles(seen) != field_roles(spaces[0]):
            raise ConfigError(f"dataset {data.spec.dataset_id!r} has fields {list(seen.fields)} (targets "
                              f"{list(seen.target_fields)}), {datasets[0].spec.dataset_id!r} has {list(spaces[0].fields)} "
                              f"(targets {list(spaces[0].target_fields)}): per-field agents need the same fields")
        d = fine.size
        for episode in data.iterate_episodes():
            steps = len(episode.actions)
            observations, actions = np.asarray(episode.observations, np.float64), np.asarray(episode.actions, np.float64)
            if space == "source":
                observations = np.concatenate([collapse(observations[:, :d], fine), observations[:, d:]], axis=1)
                actions = collapse(actions, fine)
            state = tokens(observations[:steps], seen.size, k, mean, std, features, target_left)
            parts["windows"].append(windows(state, window))
            parts["actions"].append(actions.astype(np.float32))
            parts["rewards"].append(np.asarray(episode.rewards, np.float32))
            parts["feedback_change"].append(np.diff(np.asarray(episode.observations[:steps + 1, d:d + k], np.float64), axis=0))
            parts["terminals"].append(np.asarray(episode.terminations, bool))
            parts["timeouts"].append(np.asarray(episode.truncations, bool))
            parts["episode"].append(np.full(steps, first_id + episode.id))
            parts["quality"].append(np.full(steps, other["episode_quality"][episode.id]))
            parts["scenario_index"].append(np.full(steps, scenario))
        first_id += data.total_episodes
    ident = JOIN.join(data.spec.dataset_id for data in datasets)
    return OfflineData(ident, meta["scenario"], spaces[0], mean, std, features, target_left,
                       **{key: np.concatenate(value) for key, value in parts.items()})
