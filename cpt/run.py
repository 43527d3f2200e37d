"""Algorithm 2: a policy re-weights the data of a large model's continual pre-training, step by step.

Every rank steps the same `DataMixEnv` (same sampler, feedback and reward code as the benchmark);
its backend shards the model with FSDP. Rank 0 asks the policy for each step's mixture and
broadcasts it. After each step the run writes a sharded checkpoint, `metrics.jsonl` and
TensorBoard scalars; a killed run resumes from its last complete step with the same data order.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dmix_gym.data.build import build_data
from dmix_gym.env import DataMixEnv
from dmix_gym.errors import ConfigError
from dmix_gym.hf_model import load_hf_model
from dmix_gym.model import train_flops_per_token
from dmix_gym.policy import History, Policy, ScenarioInfo, adapt_env, check_mixture
from dmix_gym.scenario import Scenario, override, resolve_scenario
from dmix_gym.utils.atomic import atomic_path
from leaderboard.protocol import shipped_objective
from leaderboard.registry import load_policy

from .backend import ShardedBackend
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .distributed import Ranks, broadcast, init_distributed, wait_for_main
from .models import LLAMA_10X_PROXY, is_hf_model_dir


@dataclass(frozen=True)
class CPTConfig:
    policy: str  # a saved agent (.pt), a baseline JSON, or baseline:<name>
    out: Path = Path("runs/cpt")
    model: str = "proxy"  # proxy | llama-3b | a LlamaConfig .json | a Hugging Face model dir
    scenario: str = "general-math"
    preset: str = "cpu"
    tokens_per_step: int | None = None  # None: the scenario's
    max_steps: int | None = None  # None: the scenario's
    seed: int = 0
    data_dir: Path | None = None
    cache_dir: Path | None = None
    device: str = "auto"
    activation_checkpointing: bool = True
    keep_checkpoints: int = 1
    objective: str | None = None  # a protocol version whose objective sets the reward weights; None: the scenario's

    def proxy_scenario(self) -> Scenario:
        """This run's scenario at proxy scale, where a policy's one-off work runs: the scenario's own proxy and
        tokenizer, whatever `model` is (neither llama-10x's shape nor a user's model)."""
        return replace(replace(self, model="proxy").make_scenario(), hf_model=None)

    def make_scenario(self) -> Scenario:
        """The scenario, with this run's overrides; a model directory with its own tokenizer becomes its `hf_model`
        (the data is tokenized with that tokenizer), and a protocol's objective sets the reward weights, so a policy
        that fits or searches the reward (RegMix, Mixing laws) optimises the score the protocol ranks by."""
        changes = {k: v for k, v in (("tokens_per_step", self.tokens_per_step), ("max_steps", self.max_steps)) if v is not None}
        if self.objective is not None:
            changes["reward_weights"] = shipped_objective(self.objective).reward_weights()
        if is_hf_model_dir(self.model):
            changes["hf_model"] = str(Path(self.model).resolve())
        if self.model == "llama-10x":  # the proxy at 10x: pre-trained on the source field like the proxy's base
            changes.update(LLAMA_10X_PROXY)
        return override(resolve_scenario(self.scenario, self.preset), **changes)


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    return {k: np.asarray(v).tolist() for k, v in info.items()}


def seen_as_proxy(info: ScenarioInfo, config: CPTConfig) -> ScenarioInfo:
    """The large model's env as the policy knows it: its domain space and horizon, under the proxy scenario where the
    policy's one-off fit was made (a fit is keyed by its scenario, and llama-10x's scenario has another model shape)."""
    return replace(info, scenario=json.loads(config.proxy_scenario().to_json()))


def _prepare_on_proxy(policy: Policy, config: CPTConfig) -> None:
    """A policy's one-off work (RegMix's proxy runs, DBL's reference losses) runs at proxy scale, as on the leaderboard."""
    if type(policy).prepare is Policy.prepare:
        return
    proxy = DataMixEnv(config.proxy_scenario(), None, config.data_dir, config.cache_dir)
    policy.prepare(adapt_env(proxy, policy))


def run_cpt(config: CPTConfig) -> list[dict[str, Any]]:
    """Run (or resume) the continual pre-training; return one record per re-weighting step."""
    ranks = init_distributed(config.device)
    scenario = config.make_scenario()
    if ranks.main:  # build (or check) the token shards once, before any other rank reads them
        tokenizer = None if scenario.hf_model is None else load_hf_model(scenario.hf_model).tokenizer
        build_data(scenario.data, config.data_dir, config.cache_dir, progress=True, tokenizer=tokenizer)
    wait_for_main(ranks)
    # llama-10x is the scenario's proxy reshaped (make_scenario): it starts from its own base checkpoint, as the proxy
    backend = functools.partial(ShardedBackend, model="proxy" if config.model == "llama-10x" else config.model, ranks=ranks,
                                checkpointing=config.activation_checkpointing)
    base = DataMixEnv(scenario, None, config.data_dir, config.cache_dir, device=str(ranks.device), progress=ranks.main,
                      backend=backend, timing=True, threads=None)  # each rank keeps torchrun's OMP_NUM_THREADS
    policy = load_policy(config.policy)  # every rank acts through the same space; only rank 0 asks the policy
    if ranks.main:
        _prepare_on_proxy(policy, config)
    wait_for_main(ranks)
    env = adapt_env(base, policy)
    if ranks.main:
        policy.reset(seen_as_proxy(ScenarioInfo.from_env(env), config))
    obs, info = env.reset(seed=config.seed)
    history = History()
    history.append(obs, info)
    records: list[dict[str, Any]] = []
    done = False
    folder = config.out / "checkpoints"
    checkpoint = latest_checkpoint(folder)
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, base.backend.model, base.backend.trainer.optimizer, ranks)
        _check_same_run(state["config"], config)
        base.restore_episode_state(state["env"])
        base.backend.trainer.step_count = state["optimizer_steps"]
        records, done = state["records"], state["done"]
        for o, i in zip(state["observations"][1:], state["infos"][1:]):
            history.append(np.asarray(o), {k: np.asarray(v) for k, v in i.items()})
        if ranks.main:
            _replay(policy, history, records)
            print(f"resumed from {checkpoint.name}: {len(records)} of at most {scenario.train.max_steps} steps done", flush=True)

    flops_per_token = train_flops_per_token(base.model_config, base.shards.seq_len)
    writer = _tensorboard(config.out, len(records)) if ranks.main else None
    while not done:
        action = check_mixture(policy.act(history), env.action_space.shape[0], policy.name) if ranks.main else None
        action = broadcast(action, ranks)
        started = time.perf_counter()
        obs, reward, terminated, truncated, info = env.step(action)
        history.append(obs, info)
        done = bool(terminated or truncated)
        records.append(_record(len(records) + 1, action, reward, info, time.perf_counter() - started, flops_per_token, ranks))
        if ranks.main:
            _write_metrics(config.out, records, writer, base.domain_space.fields)
        state = {
            "config": _jsonable_config(config), "env": base.episode_state(), "optimizer_steps": base.backend.trainer.step_count,
            "records": records, "done": done, "observations": [o.tolist() for o in history.observations],
            "infos": [_jsonable(i) for i in history.infos],
        }
        save_checkpoint(folder, len(records), base.backend.model, base.backend.trainer.optimizer, state, ranks,
                        keep=config.keep_checkpoints)
    if writer is not None:
        writer.close()
    return records


def _record(step: int, action: np.ndarray, reward: float, info: dict[str, Any], seconds: float, flops_per_token: float,
            ranks: Ranks) -> dict[str, Any]:
    tokens = int(np.sum(info["tokens"]))
    return {
        "step": step, "policy_mixture": np.asarray(action).tolist(), "drawn_mixture": np.asarray(info["mixture"]).tolist(),
        "tokens": np.asarray(info["tokens"]).tolist(), "feedback": np.asarray(info["feedback"]).tolist(),
        "domain_loss": np.asarray(info["domain_loss"]).tolist(), "reward": float(reward),
        "train_loss": float(info["train_loss"]), "train_seconds": float(info["train_seconds"]),
        "eval_seconds": float(info["eval_seconds"]), "step_seconds": seconds,
        "train_tokens_per_second": tokens / float(info["train_seconds"]),
        "model_tflops_per_device": flops_per_token * tokens / float(info["train_seconds"]) / ranks.world / 1e12,
        "ranks": ranks.world,
    }


def _jsonable_config(config: CPTConfig) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}


def _check_same_run(saved: dict[str, Any], config: CPTConfig) -> None:
    """A checkpoint folder belongs to one run: resuming it with another policy, model or scenario is an error."""
    now = _jsonable_config(config)
    keys = ("policy", "model", "scenario", "preset", "tokens_per_step", "max_steps", "seed", "objective")
    changed = {k: (saved.get(k), now[k]) for k in keys if saved.get(k) != now[k]}
    if changed:
        raise ConfigError(f"{config.out} holds a run with other settings {changed} (saved, now); use another --out")


def _replay(policy: Policy, history: History, records: list[dict[str, Any]]) -> None:
    """Bring a stateful policy (DBL's weights, a sampler's stream) to where the run stopped, checking it re-chooses the same."""
    for t, record in enumerate(records):
        prefix = History(history.observations[: t + 1], history.infos[: t + 1])
        again = np.asarray(policy.act(prefix))
        if not np.allclose(again, record["policy_mixture"], atol=1e-6):
            raise RuntimeError(f"on resume the policy chose another mixture at step {t + 1} than the run recorded: "
                               "it is not the policy this run started with")


def _tensorboard(out: Path, done_steps: int):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard"), purge_step=done_steps + 1)


def _write_metrics(out: Path, records: list[dict[str, Any]], writer, fields: list[str]) -> None:
    with atomic_path(out / "metrics.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    record = records[-1]
    for key in ("reward", "train_loss", "train_tokens_per_second", "model_tflops_per_device", "step_seconds"):
        writer.add_scalar(f"cpt/{key}", record[key], record["step"])
    for field, value in zip(fields, record["feedback"]):
        writer.add_scalar(f"feedback/{field}", value, record["step"])
    writer.flush()
