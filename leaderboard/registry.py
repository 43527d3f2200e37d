"""Policies by name: `baseline:<name>`, `official:<protocol>/<algo>` (a shipped agent), a mixture written out in full
(`static:target-share=S`, `schedule:target-share=S1,S2,...`, `domains:source=...,target/<domain>=...`, the latter
optionally ending in `;target-share=S1,S2,...`), the path of a saved agent or baseline, or `package.module:factory`;
any of them followed by `@domains:...` (within-field splits) and then by `@lasting` (a scarce target corpus made to
last the episode, `baselines.lasting`)."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

from dmix_gym.errors import ConfigError
from dmix_gym.policy import Policy
from dmix_gym.utils.atomic import sha256_file

from .official import official_agent


def load_policy(spec: str | Path) -> Policy:
    """`baseline:<name>`, `official:<protocol>/<algo>`, a saved agent (.pt), or a saved baseline or DT (.json); any of
    them followed by `@domains:...`, within-field splits (`baselines.domains.WithinFieldSplits`), then `@lasting`."""
    text = str(spec)
    if text.endswith(LASTING):
        from baselines.lasting import Lasting

        return Lasting(load_policy(text.removesuffix(LASTING)))
    inner, splits = split_off_domains(text)
    if splits:
        from baselines.domains import WithinFieldSplits

        return WithinFieldSplits(load_policy(inner), splits)
    if text.startswith("baseline:"):
        from baselines import make_baseline

        return make_baseline(text)
    if text.startswith(SPEC_PREFIXES):
        return spec_policy(text)
    path = official_agent(text.removeprefix("official:")) if text.startswith("official:") else Path(text)
    if not path.exists():
        raise ConfigError(f"no policy {text!r}: not a baseline:<name> and no such file")
    if path.suffix == ".json":
        saved = json.loads(path.read_text())
        if saved.get("policy") == "guard":
            return guarded_policy(path, saved)
        if saved.get("policy") == "dt":
            from agents.decision_transformer import DTAgent

            return DTAgent.load(path)
        if "policy" not in saved:
            raise ConfigError(f"{path} is not a saved dmix policy (no 'policy' key)")
        policy = load_policy(saved["policy"])
        if "config" in saved:  # JSON lists back to the tuples a frozen config holds
            settings = {key: tuple(v) if isinstance(v, list) else v for key, v in saved["config"].items()}
            policy.config = type(policy.config)(**settings)
        return policy
    from agents.agent import TransformerAgent

    return TransformerAgent.load(path)


LASTING = "@lasting"  # the suffix of a policy whose target shares are capped to last the episode


def split_off_domains(spec: str) -> tuple[str, str | None]:
    """(the policy, its `domains:...` within-field splits) of `<policy>@domains:...`; (spec, None) without them."""
    inner, at, splits = spec.partition("@domains:")
    return (inner, "domains:" + splits) if at else (spec, None)


def guarded_policy(path: Path, saved: dict) -> Policy:
    """A saved `agents.support.SupportGuard`: its agent (a path relative to the file's folder, or any spec) and its
    support, each checked against the digest the file recorded."""
    from agents.support import Support, SupportGuard

    support, agent = path.parent / saved["support"], path.parent / saved["agent"]
    if not agent.is_file():  # not a file beside it: any other spec (official:..., a path from here)
        agent = Path(saved["agent"])
    for file, digest in ((support, saved.get("support_sha256")), (agent, saved.get("agent_sha256"))):
        if digest and file.is_file() and sha256_file(file) != digest:
            raise ConfigError(f"{file} changed since {path} was written (its digest differs): guard the agent again")
    return SupportGuard(load_policy(agent if agent.is_file() else saved["agent"]), Support.load(support), saved["agent"])


SPEC_PREFIXES = ("static:target-share=", "schedule:target-share=", "domains:")  # policies written out in full in the spec


def spec_policy(spec: str) -> Policy:
    """A policy its spec writes out in full: a target-share schedule or a domain mixture (`baselines.domains`)."""
    if spec.startswith("domains:"):
        from baselines.domains import SCHEDULE, DomainMixture, DomainSchedule

        return DomainSchedule(spec) if SCHEDULE in spec else DomainMixture(spec)
    return target_schedule(spec)


def target_schedule(spec: str) -> Policy:
    """`static:target-share=S` (one share held, e.g. the static oracle's, or static-transfer's) or
    `schedule:target-share=S1,S2,...` (a piecewise-linear schedule through those shares)."""
    from baselines.static import TargetSchedule, parse_knots

    try:
        knots = parse_knots(spec.partition("=")[2])
    except ConfigError as error:
        raise ConfigError(f"{spec!r}: {error}") from None
    if spec.startswith("static:") and len(knots) != 1:
        raise ConfigError(f"{spec!r}: a static mixture has one target share; use schedule:target-share=... for several")
    return TargetSchedule(knots)


def resolve_policy(spec: str) -> tuple[Policy, str]:
    """(policy, fingerprint) of `package.module:factory`, `baseline:<name>`, or a saved policy file; `<spec>@domains:...`
    is that policy with within-field splits (`baselines.domains.WithinFieldSplits`), `<spec>@lasting` that policy made to
    last the episode (`baselines.lasting.Lasting`): its fingerprint names the wrapper's source too."""
    if spec.endswith(LASTING):
        from baselines.lasting import Lasting

        policy, fingerprint = resolve_policy(spec.removesuffix(LASTING))
        return Lasting(policy), f"{fingerprint}{LASTING}:{source_digest(Lasting)}"
    inner, splits = split_off_domains(spec)
    if splits:
        from baselines.domains import WithinFieldSplits

        policy, fingerprint = resolve_policy(inner)
        wrapped = WithinFieldSplits(policy, splits)
        return wrapped, f"{fingerprint}@{wrapped.name.partition('@')[2]}"
    if spec.startswith(SPEC_PREFIXES):
        policy = spec_policy(spec)
        return policy, builtin_fingerprint(spec, policy)
    if ":" in spec and not spec.startswith(("baseline:", "official:")) and not Path(spec).exists():
        module_name, _, factory_name = spec.partition(":")
        module = importlib.import_module(module_name)
        policy = getattr(module, factory_name)()
        if not isinstance(policy, Policy):
            raise TypeError(f"{spec} returned {type(policy).__name__}, not a dmix_gym.Policy")
        source = getattr(module, "__file__", None)
        digest = sha256_file(source) if source else hashlib.sha256(spec.encode()).hexdigest()
        return policy, f"entry:{spec}:{digest[:16]}"
    policy = load_policy(spec)
    path = official_agent(spec.removeprefix("official:")) if spec.startswith("official:") else Path(spec)
    return policy, (f"file:{sha256_file(path)[:16]}" if path.exists() else builtin_fingerprint(spec, policy))


def builtin_fingerprint(spec: str, policy: Policy) -> str:
    """`builtin:<spec>:<digest>` of a built-in policy: its class's source files (its own and its base classes' in the
    same package) and its configuration, so a changed baseline no longer matches the episodes of the old one."""
    import inspect
    from dataclasses import asdict, is_dataclass

    package = type(policy).__module__.split(".")[0]
    digest = hashlib.sha256()
    for cls in type(policy).__mro__:
        if cls.__module__.split(".")[0] == package:
            digest.update(Path(inspect.getsourcefile(cls)).read_bytes())
    config = getattr(policy, "config", None)
    settings = asdict(config) if is_dataclass(config) else {k: v for k, v in vars(policy).items() if isinstance(v, (int, float, str))}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return f"builtin:{spec}:{digest.hexdigest()[:16]}"


def source_digest(cls: type) -> str:
    """The first 16 hex digits of the SHA-256 of the file that defines `cls` (a changed wrapper, another fingerprint)."""
    import inspect

    return sha256_file(inspect.getsourcefile(cls))[:16]
