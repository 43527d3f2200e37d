"""What the agent sees and how its mixtures meet d3rlpy: pure functions over arrays.

State. Step t of an episode is the token x_t = [p_t ; f̂_t ; t/T ; l_t]: the mixture last used (p_0
after reset), the feedback per field, the episode's progress, and each target field's fraction of
training data left. The agent reads the last W tokens, oldest first; before W steps have passed the
window is padded with copies of the first token (as `dmix_gym.wrappers.HistoryWindow` pads). Three
departures from the paper's [p_t ; f̂_t]:

- progress t/T: without it a critic can read the time off the action (early mixtures carry most of
  the return still to come) and rate "early-looking" mixtures high in every state, which CQL's
  actor then exploits.
- `features="relative"`: f̂_t = (f_t - f_0) / std, how far each field's feedback has moved since
  the episode began, in units of the dataset's per-field std. The paper standardises the level
  itself, (f_t - mean) / std (`features="absolute"`, the default until relative agents win on
  validation seeds; every agent trained before this setting reads it). A level is where scenarios
  differ most (another proxy or source corpus starts 0.1 to 0.3 nats elsewhere), while the reward
  is made of changes alone. Measured with
  `benchmarks/feedback_shift.py` on the dataset's own episodes: lowering the source field's feedback
  by 0.13 nats, the offset of dmix-bench-v1's unseen-model start, moved the absolute-feature CQL
  agent's mean target share from 51% to 80%, and on that task it trained on the target field alone.
- `features="response"`: f̂_t = (f_t - f_0) / |f_1 - f_0|, the move since the start in units of the episode's own
  first move, so that a model that learns faster or slower (a larger model, another learning rate) shows the same
  trajectory for the same mixture. Measured on committed static-policy episodes (`benchmarks/feature_support.py`): at
  10x, the nearest in-distribution policy by relative features was never the right one (0% of 9 runs, chance 33%), by
  response features 56%; on another proxy shape relative features did better (91% against 69%). An option, not yet
  the default: no agent trained on it has been scored.
- data left l_t (`target_left=True`, from dmix-bench-v2's agents on): where a target corpus is scarce the
  best mixture depends on how much of it is left (the `scarce-target` task), which neither the mixture
  nor the feedback shows. Agents saved before it read tokens without it (`target_left=False`).

Action. d3rlpy's continuous policies emit a = tanh(mu + sigma * eps) in [-1, 1]^D. A mixture p
maps to that box through centred log-weights:

    to_unit(p)   = tanh((log p - mean(log p)) / scale)
    from_unit(a) = softmax(scale * atanh(a))

so the agent's logits z give d3rlpy's pre-tanh mean mu = z / scale, and a deterministic d3rlpy
action maps back to exactly softmax(z). from_unit(to_unit(p)) == p for every p with all
weights >= `FLOOR`; smaller weights are raised to it.

Reward. The env's reward is eq. 6, `λ · Δf` with λ equal over fields, in raw nats. The leaderboard
ranks by the balanced score, the mean over fields of the final feedback standardised by the
dataset's per-field std; the fields' spreads differ several-fold (general held-out text ~0.18 nats,
MATH-500 ~1.4 on dataset v1), so the two disagree on the best mixture (a target share of 0.75 for
the return, 0.25 for the balanced score). The offline algorithms therefore learn from the balanced
score's per-step increments by default (`reward="balanced"`, weights `1 / (K · std_k)`), so that an
episode's return is its final balanced score minus its start's; `reward="env"` keeps eq. 6.
"""

from __future__ import annotations

import numpy as np

from dmix_gym.errors import ConfigError

FLOOR = 1e-6
_EDGE = 1.0 - 1e-6


REWARDS = ("balanced", "env")
FEATURES = ("relative", "absolute", "response")


def check_features(kind: str) -> str:
    """`kind`, if it names a way the state token can carry the feedback."""
    if kind not in FEATURES:
        raise ConfigError(f"unknown feedback features {kind!r}; choose one of {', '.join(FEATURES)}")
    return kind


def check_reward(kind: str) -> str:
    """`kind`, if it names a reward the offline algorithms can learn from."""
    if kind not in REWARDS:
        raise ConfigError(f"unknown reward {kind!r}; choose one of {', '.join(REWARDS)}")
    return kind


def reward_weights(kind: str, env_weights, feedback_std) -> np.ndarray:
    """(K,) weights w of the per-step reward `w · (f_{t+1} - f_t)` the offline algorithms learn from."""
    if check_reward(kind) == "env":
        return np.asarray(env_weights, np.float64)
    std = np.asarray(feedback_std, np.float64)
    return 1.0 / (len(std) * std)


def token_dim(num_domains: int, num_fields: int, num_left: int = 0) -> int:
    """Length of a state token: D mixture weights, K feedback values, progress, and `num_left` data-left fractions."""
    return num_domains + num_fields + 1 + num_left


def tokens(observations: np.ndarray, num_domains: int, num_fields: int, mean: np.ndarray, std: np.ndarray,
           features: str, target_left: bool = False) -> np.ndarray:
    """(T, D + K + 1 [+ L]) agent tokens [p ; f̂ ; t/T (; l)] of an episode's raw DataMix-v0 observations (T, obs_dim),
    reset's first; `target_left` keeps the observation's tail, the L target fields' fraction of data left."""
    obs = np.asarray(observations, dtype=np.float32)
    if obs.ndim != 2:
        raise ValueError(f"tokens read an episode's observations, shape (T, obs_dim); got {obs.shape}")
    k = num_domains + num_fields
    feedback = obs[:, num_domains:k]
    kind = check_features(features)
    origin = mean if kind == "absolute" else feedback[:1]
    scale = first_move(feedback) if kind == "response" else std
    rest = obs[:, k:] if target_left else obs[:, k:k + 1]
    return np.concatenate([obs[:, :num_domains], (feedback - origin) / scale, rest], axis=-1).astype(np.float32)


def first_move(feedback: np.ndarray) -> np.ndarray:
    """(K,) how far each field's feedback moved in an episode's first step (1 before there is a step: its features
    are all 0 then); the unit of `features="response"`."""
    if len(feedback) < 2:
        return np.ones(feedback.shape[1], np.float32)
    return np.maximum(np.abs(feedback[1] - feedback[0]), 1e-6).astype(np.float32)


def windows(sequence: np.ndarray, window: int) -> np.ndarray:
    """(T, window, F): for each t, tokens t-window+1 .. t of a (T, F) episode, left-padded with token 0."""
    sequence = np.asarray(sequence, dtype=np.float32)
    padded = np.concatenate([np.repeat(sequence[:1], window - 1, axis=0), sequence], axis=0)
    index = np.arange(len(sequence))[:, None] + np.arange(window)[None, :]
    return padded[index]


def last_window(sequence: np.ndarray, window: int) -> np.ndarray:
    """(window, F): the window ending at the last token of a (T, F) history."""
    return windows(np.asarray(sequence)[-window:], window)[-1]


def to_unit(p: np.ndarray, scale: float) -> np.ndarray:
    """Mixtures (..., D) -> d3rlpy actions in (-1, 1)."""
    logp = np.log(np.maximum(np.asarray(p, dtype=np.float64), FLOOR))
    centred = logp - logp.mean(axis=-1, keepdims=True)
    return np.clip(np.tanh(centred / scale), -_EDGE, _EDGE).astype(np.float32)


def from_unit(a: np.ndarray, scale: float) -> np.ndarray:
    """d3rlpy actions (..., D) in [-1, 1] -> mixtures."""
    z = scale * np.arctanh(np.clip(np.asarray(a, dtype=np.float64), -_EDGE, _EDGE))
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
