"""DataMix-v0: choose the data mixture of each continual pre-training step of a real proxy LM."""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from .backend import ProxyBackend
from .base_checkpoint import gather
from .data.build import build_data
from .data.domains import expand
from .data.tokenizer import load_tokenizer
from .errors import ConfigError
from .feedback import EvalSet, Evaluation, encode_pairs, field_feedback, pack_answer_batches, reward
from .hf_model import load_hf_model
from .model import llama_config
from .render import ansi_table, mixture_area_plot
from .sampler import MixtureSampler
from .scenario import Scenario, resolve_scenario
from .start_state import load_or_estimate_start
from .utils.threads import check_threads, torch_threads


def normalise_action(action: Any, size: int) -> np.ndarray:
    """A valid mixture from an action: finite, non-negative, positive sum, shape (size,); else ValueError."""
    p = np.asarray(action, dtype=np.float64)
    if p.shape != (size,):
        raise ValueError(f"action has shape {p.shape}, expected ({size},)")
    for i, value in enumerate(p):
        if not np.isfinite(value):
            raise ValueError(f"action[{i}] is {value}: every entry must be finite")
        if value < 0:
            raise ValueError(f"action[{i}] is {value}: every entry must be non-negative")
    total = p.sum()
    if not np.isfinite(total):  # huge finite weights overflow the sum: scale them down first
        p = p / p.max()
        total = p.sum()
    if total <= 0:
        raise ValueError("action sums to 0: at least one domain needs a positive weight")
    return p / total


def make_spaces(space) -> tuple[spaces.Box, spaces.Box]:
    """(action space, observation space) of DataMix-v0 over a domain space (see the class docstring)."""
    d, k, kt = space.size, len(space.fields), len(space.target_fields)
    low = np.concatenate([np.zeros(d), np.full(k, -np.inf), [0.0], np.zeros(kt)]).astype(np.float32)
    high = np.concatenate([np.ones(d), np.zeros(k), [1.0], np.ones(kt)]).astype(np.float32)
    return spaces.Box(0.0, 1.0, (d,), np.float32), spaces.Box(low, high, dtype=np.float32)


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class DataMixEnv(gym.Env):
    """
    ## Description

    Continual pre-training of a language model on a new field (math, code) makes it forget
    what it knew. Each step of this env is one domain re-weighting step of that training: the
    agent picks the mixture, i.e. the share of the next `tokens_per_step` training tokens drawn
    from each of D domains; the env trains a real LLaMA-architecture proxy LM
    (`transformers.LlamaForCausalLM`) on real text drawn by that mixture, then measures how much
    it keeps of every field: the field's own held-out text (documents never trained on) and/or
    its question/answer set, as the scenario says. The source field (what the model already
    knows) and the target fields (what it must learn) each split into domains. After the Data
    Mixing Agent paper (ACL 2026), section 2.

    ## Action Space

    `Box(0, 1, (D,), float32)`: a non-negative weight per domain. It is normalised to sum to 1.
    NaN, inf, a negative entry, an all-zero vector or a wrong shape raise `ValueError` naming
    the bad entry, and leave the env unchanged.

    ## Observation Space

    `Box(float32)` of length D + K + 1 + K_target:

    | index | observation | min | max |
    | --- | --- | --- | --- |
    | 0 .. D-1 | the last mixture p_{t-1} (p_0 after reset) | 0 | 1 |
    | D .. D+K-1 | feedback f_k(theta_{t-1}) per field (eq. 1; see Rewards) | -inf | 0 |
    | D+K | progress t / T | 0 | 1 |
    | D+K+1 .. | fraction of each target field's training sequences not yet drawn | 0 | 1 |

    The agent's history window is built by a wrapper (`HistoryWindow`), not by this space.

    ## Rewards

    `r_t = sum_k lambda_k (f_k(theta_t) - f_k(theta_{t-1}))`, lambda equal by default (eq. 6).
    A field's feedback f_k is a weighted sum (the field's `feedback` in the scenario JSON) of
    its Q/A log-prob (mean log-prob per answer token) and its held-out log-prob (mean log-prob
    per token of its held-out documents, its domains weighted like p_0 or p*). By default a
    source field is fed back by its held-out text, which falls whenever the model forgets it,
    and a target field by its Q/A set.

    ## Starting State

    The proxy starts from the cached base checkpoint pre-trained on the source field
    (`init="base"`) or from random weights (`init="scratch"`); the first observation holds the
    start state p_0 (the source field's own domain distribution) and the start feedback.

    ## Episode End

    1. Termination: a target field has no training sequence left (sampling is without
       replacement within an episode; a scarce target corpus, `target_fraction` < 1, runs out
       sooner). With `on_exhausted="repeat"` a used-up domain is read again in a new order and
       the episode never terminates.
    2. Truncation: `max_steps` re-weighting steps have been taken. The env truncates itself, so
       every preset gets its own limit; `gym.make(..., max_episode_steps=n)` cuts earlier.

    ## Arguments

    * `scenario`: a scenario name (`"general-math"`, `"general-code"`), a path to a scenario
      JSON file, a `Scenario` or its dict form.
    * `preset`: `"smoke"`, `"cpu"` (default) or `"paper"`, when `scenario` is a name.
    * `data_dir`, `cache_dir`: raw data root and generated-files root (see the README).
    * `device`: `"auto"`, `"cpu"` or `"cuda"`; `compile`: `torch.compile` the proxy.
    * `render_mode`: `"ansi"` (a table) or `"rgb_array"` (a stacked-area plot of the mixture).
    * `timing`: also report `train_seconds`/`eval_seconds` in `info`. Off by default: wall-clock
      times never repeat, and `info` is otherwise fully determined by the seed.
    * `start`: the start mixture p_0: `"corpus"`, the source field's own domain distribution, or
      `"estimated"`, estimated from `start_samples` texts the base checkpoint generates (paper App. B;
      `dmix_gym.start_state`), for when the source data is not at hand. `env.unwrapped.start_estimate`
      holds the estimate and its KL to the corpus's; the env's spec (and so a Minari dataset) records it.
    * `progress`: show progress bars for data building and base pre-training.
    * `backend`: what builds, trains and evaluates the model (default `ProxyBackend`, this
      process); `dmix cpt` passes an FSDP backend and keeps this step logic.
    * `model`: a Hugging Face causal-LM directory (any architecture `AutoModelForCausalLM` loads,
      with its tokenizer) trained instead of the proxy, from its own weights; the scenario's data
      is tokenized with its tokenizer (same documents, domains and evaluation pairs). Also the
      scenario's `hf_model` field.
    * `threads`: torch's intra-op threads for the env's own work (pre-training the base proxy, training,
      evaluating), restored after each call. 1 by default, so that an episode's numbers are the same
      whatever the machine's core count and however many envs run beside it (parallelise across
      episodes: `dmix leaderboard submit --workers`); `None` leaves the process's setting (faster on
      many cores, but the same seed then gives the same episode only with the same thread count).

    ## Info

    `feedback` (K,), `domain_loss` (D,) held-out LM loss per domain, `probes` (P,) mean
    log-prob per answer token of each probe benchmark (named by `env.probe_names`, never
    rewarded), `tokens` (D,) tokens drawn per domain this step, `mixture` (D,) the mixture
    actually drawn, `train_loss`,
    `train_seconds`, `eval_seconds` (when `timing=True`). `reset()` returns the same keys.

    ## Examples

    ```python
    >>> import gymnasium as gym, dmix_gym
    >>> env = gym.make("DataMix-v0", preset="smoke")
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    ```
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        scenario: Scenario | dict | str | None = "general-math",
        preset: str | None = "cpu",
        data_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        device: str = "auto",
        render_mode: str | None = None,
        compile: bool = False,
        progress: bool = True,
        timing: bool = False,
        start: str = "corpus",
        start_samples: int = 256,
        backend: Callable[..., ProxyBackend] = ProxyBackend,
        model: str | Path | None = None,
        threads: int | None = 1,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} is not one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.timing = timing
        self.threads = check_threads(threads)
        self.scenario = resolve_scenario(scenario, preset)
        if model is not None:
            self.scenario = replace(self.scenario, hf_model=str(model))
        self.data_dir, self.cache_dir = data_dir, cache_dir  # policies that run their own proxy episodes reuse them
        self.device = resolve_device(device)
        self.hf_model = None if self.scenario.hf_model is None else load_hf_model(self.scenario.hf_model, self._context_len())
        tokenizer = None if self.hf_model is None else self.hf_model.tokenizer
        self.shards = build_data(self.scenario.data, data_dir, cache_dir, progress=progress, tokenizer=tokenizer)
        self.domain_space = space = self.shards.domain_space
        self.num_domains, self.num_fields = space.size, len(space.fields)
        self.target_index = np.array([space.fields.index(f) for f in space.target_fields])
        self.p0 = np.asarray(space.p0, dtype=np.float64)
        self.p_star = np.asarray(space.p_star, dtype=np.float64)
        self.weights = np.asarray(self.scenario.weights())
        train = self.scenario.train
        self.max_steps = train.max_steps

        tok = self.shards.manifest["tokenizer"]
        proxy_config = self.hf_model.config if self.hf_model is not None else \
            llama_config(self.scenario.model, tok["vocab_size"], self._context_len(), tok["pad_id"], tok["eos_id"])
        if start not in ("corpus", "estimated"):
            raise ConfigError(f"start must be 'corpus' or 'estimated', got {start!r}")
        with self.pinned_threads():  # pre-training the base proxy is part of every episode's numbers
            self.backend = backend(self.scenario, proxy_config, self.shards, self.device, cache_dir, compile, progress)
            self.start, self.start_estimate = start, None
            if start == "estimated":
                self.p0 = self._estimated_start(start_samples)
        self.model_config = self.backend.model_config  # another backend may train another model on the same data
        self._prepare_eval()

        self.sequences_per_step = train.sequences_per_step(self.shards.seq_len)
        self.optimizer_steps = train.max_steps * train.optimizer_steps_per_step(self.shards.seq_len)
        self.sampler = MixtureSampler.for_episode([self.shards.train_sequences(d) for d in range(self.num_domains)],
                                                  space.field_of, train, self.shards.seq_len)

        self.action_space, self.observation_space = make_spaces(space)

        self._t: int | None = None
        self._base_eval: Evaluation | None = None
        self.history: list[np.ndarray] = []
        self._last_reward: float | None = None

    # --- set-up ---------------------------------------------------------------------------------

    def _estimated_start(self, samples: int) -> np.ndarray:
        base_state = getattr(self.backend, "start_state", None)
        if base_state is None:
            raise ConfigError("start='estimated' samples from the base checkpoint: it needs the scenario's init='base'")
        model = self.backend.model
        model.load_state_dict(base_state)
        self.start_estimate = load_or_estimate_start(model, self.shards, samples, self.scenario.seed, self.cache_dir)
        return np.asarray(self.start_estimate["p0"], dtype=np.float64)

    def _context_len(self) -> int:
        p = self.scenario.data.preset
        return max(p.seq_len, p.max_question_tokens + p.max_answer_tokens)

    def _prepare_eval(self) -> None:
        preset = self.scenario.data.preset
        tokenizer = load_tokenizer(self.shards.tokenizer_dir)

        def encoded(pairs: list[tuple[str, str]]) -> list[tuple[list[int], int]]:
            return encode_pairs(tokenizer, pairs, preset.max_question_tokens, preset.max_answer_tokens, self.scenario.qa_separator)

        batch, pad = self.scenario.train.eval_batch, tokenizer.pad_token_id
        answers = pack_answer_batches([encoded(self.shards.eval_pairs.get(name, [])) for name in self.domain_space.fields],
                                      batch, pad)
        self.probe_names = tuple(self.shards.probe_pairs)
        probes = pack_answer_batches([encoded(self.shards.probe_pairs[name]) for name in self.probe_names], batch, pad)
        picks = [(d, self.shards.train_sequences(d) + i) for d in range(self.num_domains) for i in range(self.shards.heldout_sequences(d))]
        heldout = zip(gather(self.shards, picks).split(batch), torch.tensor([d for d, _ in picks]).split(batch))
        self.evalset = EvalSet(answers, list(heldout), self.num_fields, self.num_domains, probes, len(self.probe_names))
        fields = {f.name: f for f in self.scenario.data.fields}
        self.qa_weight = np.array([fields[name].feedback_weight("qa") for name in self.domain_space.fields])
        self.heldout_weight = np.array([fields[name].feedback_weight("heldout") for name in self.domain_space.fields])
        self._within = expand(np.ones(self.num_fields), self.domain_space)

    @property
    def model(self) -> torch.nn.Module:
        return self.backend.model

    def evaluate(self) -> Evaluation:
        """What the current proxy scores: Q/A per field, held-out loss per domain, probes."""
        return self.backend.evaluate(self.evalset)

    def feedback(self, evaluation: Evaluation) -> np.ndarray:
        """f_k per field (eq. 1, as the scenario combines Q/A and held-out text) of an evaluation."""
        return field_feedback(evaluation.qa, evaluation.domain_loss, self.qa_weight, self.heldout_weight, self._within,
                              np.asarray(self.domain_space.field_of))

    # --- Gymnasium API --------------------------------------------------------------------------

    def pinned_threads(self):
        """A context in which torch runs with this env's `threads` (see Arguments), restored after."""
        return torch_threads(self.threads)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        with self.pinned_threads():
            self._new_episode(seed)
            started = time.perf_counter()
            return self._started(self._start_evaluation(self.evaluate), time.perf_counter() - started)

    def step(self, action):
        with self.pinned_threads():
            p, counts, tokens = self._draw(action)
            stats = self.backend.train_on(tokens)
            started = time.perf_counter()
            evaluation = self.evaluate()
            return self._advance(p, counts, evaluation, stats["loss"], stats["seconds"], time.perf_counter() - started)

    # The phases of reset and step, apart from training and evaluation, which DataMixVectorEnv batches over its
    # sub-envs: a sub-env's episode is the single env's, whoever trains its proxy.

    def _new_episode(self, seed: int | None) -> None:
        """Seed, start weights, fresh data orders: everything of a reset before the start evaluation."""
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**31 - 1))
        self.backend.reset(episode_seed, self.optimizer_steps)
        self._rng = np.random.default_rng(episode_seed)
        self.sampler.reset(self._rng)
        self._t = 0
        self._mixture = self.p0.copy()

    def _reuses_start_eval(self) -> bool:
        """Whether this episode's start evaluation is one already made (every episode starts from the same weights)."""
        return self.backend.fixed_start and self._base_eval is not None

    def _start_evaluation(self, fresh: Callable[[], Evaluation]) -> Evaluation:
        """This episode's start evaluation: the one already made, if every episode starts alike, else `fresh()`."""
        return self._base_eval if self._reuses_start_eval() else fresh()

    def _started(self, evaluation: Evaluation, eval_seconds: float) -> tuple[np.ndarray, dict]:
        """The first observation and info, from the start weights' evaluation."""
        if self.backend.fixed_start:
            self._base_eval = evaluation
        self._feedback = self.feedback(evaluation)
        self.history = [self._mixture.copy()]
        self._last_reward = None
        info = self._info(evaluation, np.zeros(self.num_domains, np.int64), float("nan"), 0.0, eval_seconds)
        return self._observation(), info

    def _draw(self, action) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """The normalised mixture, sequences per domain and (N, L) shuffled training tokens of a step; a bad action
        raises before anything changes."""
        if self._t is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        p = normalise_action(action, self.num_domains)
        counts = self.sampler.plan(p)
        picks = self.sampler.draw(counts)
        tokens = gather(self.shards, picks)[torch.from_numpy(self._rng.permutation(len(picks)))]
        return p, counts, tokens

    def _advance(self, p: np.ndarray, counts: np.ndarray, evaluation: Evaluation, train_loss: float,
                 train_seconds: float, eval_seconds: float):
        """The step's (observation, reward, terminated, truncated, info), from the trained proxy's evaluation."""
        new_feedback = self.feedback(evaluation)
        r = reward(self._feedback, new_feedback, self.weights)
        self._feedback, self._mixture, self._t = new_feedback, p, self._t + 1
        self.history.append(p.copy())
        self._last_reward = r
        terminated = not self.sampler.repeat and bool(np.any(self.sampler.field_fraction_left()[self.target_index] == 0))
        truncated = self._t >= self.max_steps and not terminated
        info = self._info(evaluation, counts * self.shards.seq_len, train_loss, train_seconds, eval_seconds)
        return self._observation(), r, terminated, truncated, info

    def _sibling(self, backend) -> "DataMixEnv":
        """Another env on the same scenario, data and evaluation sets, with its own episode state and `backend`."""
        env = copy.copy(self)
        env.backend, env.sampler = backend, copy.deepcopy(self.sampler)
        env._np_random = env._np_random_seed = None
        env._t, env._base_eval, env.history, env._last_reward = None, None, [], None
        return env

    def episode_state(self) -> dict[str, Any]:
        """The episode's progress apart from the model (JSON-serialisable): enough, with the model, to resume it."""
        return {
            "t": self._t, "mixture": self._mixture.tolist(), "feedback": np.asarray(self._feedback).tolist(),
            "history": [h.tolist() for h in self.history], "last_reward": self._last_reward,
            "used": self.sampler.used.tolist(), "rng": self._rng.bit_generator.state,
        }

    def restore_episode_state(self, state: dict[str, Any]) -> None:
        """Continue an episode saved by `episode_state`, after `reset()` with that episode's seed."""
        if self._t is None:
            raise gym.error.ResetNeeded("call reset() with the saved episode's seed before restoring its state")
        self._t, self._last_reward = int(state["t"]), state["last_reward"]
        self._mixture, self._feedback = np.asarray(state["mixture"]), np.asarray(state["feedback"])
        self.history = [np.asarray(h) for h in state["history"]]
        self.sampler.used = np.asarray(state["used"], dtype=np.int64)
        self._rng.bit_generator.state = state["rng"]

    def render(self):
        if self.render_mode == "ansi":
            return ansi_table(self._t or 0, self.max_steps, self.domain_space.names, self._mixture,
                              self.domain_space.fields, self._feedback, self._last_reward)
        if self.render_mode == "rgb_array":
            return mixture_area_plot(np.array(self.history), self.domain_space.names, title=self.scenario.name)
        return None

    # --- helpers --------------------------------------------------------------------------------

    def _observation(self) -> np.ndarray:
        left = self.sampler.field_fraction_left()[self.target_index]
        return np.concatenate([self._mixture, self._feedback, [self._t / self.max_steps], left]).astype(np.float32)

    def _info(self, evaluation: Evaluation, tokens: np.ndarray, train_loss: float, train_seconds: float,
              eval_seconds: float) -> dict:
        total = tokens.sum()
        info = {
            "feedback": np.asarray(self._feedback, dtype=np.float32),
            "domain_loss": np.asarray(evaluation.domain_loss, dtype=np.float32),
            "probes": np.asarray(evaluation.probes, dtype=np.float32),
            "tokens": np.asarray(tokens, dtype=np.int64),
            "mixture": (tokens / total if total else self._mixture).astype(np.float32),
            "train_loss": np.float32(train_loss),
        }
        if self.timing:
            info["train_seconds"] = np.float32(train_seconds)
            info["eval_seconds"] = np.float32(eval_seconds)
        return info
