"""Test helpers: a tiny two-field corpus written by the test, and its scenario."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

from dmix_gym.data import DATA_PRESETS, DataSpec, FieldSpec, SourceSpec

ANIMALS = ["fox", "owl", "whale", "beetle", "heron", "otter", "lynx", "salmon"]
PLACES = ["forest", "river", "mountain", "coast", "desert", "marsh", "valley", "island"]


def general_sentence(rng: random.Random) -> str:
    a, p, q = rng.choice(ANIMALS), rng.choice(PLACES), rng.choice(PLACES)
    n, m = rng.randint(2, 99), rng.randint(2, 99)
    # Every 13-word window holds a number, so documents rarely share one: holding some out drops few others.
    return f"The {a} lives near the {p} and travels {n} miles to the {q} in spring. Many {a}s, {m} of them, gather there."


def math_sentence(rng: random.Random) -> str:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    return f"Tom has {a} apples and buys {b} more. How many apples does he have? {a} + {b} = {a + b}. Answer: {a + b}"


def write_jsonl(path: Path, records: list[dict], gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def write_tiny_corpus(root: Path, general_docs: int = 200, math_docs: int = 60, seed: int = 0) -> Path:
    """A small two-field corpus with evaluation sets, as JSONL files under `root`."""
    rng = random.Random(seed)
    write_jsonl(root / "general" / "a.jsonl", [
        {"text": " ".join(general_sentence(rng) for _ in range(4)), "domain": rng.choice(["nature", "travel"])}
        for _ in range(general_docs)
    ])
    write_jsonl(root / "math" / "m.jsonl.gz", [
        {"text": " ".join(math_sentence(rng) for _ in range(3)), "domain": rng.choice(["add", "count"])}
        for _ in range(math_docs)
    ], gz=True)
    write_jsonl(root / "eval" / "general.jsonl", [{"question": f"Where does the {a} live?", "answer": f"near the {p}"}
                                                 for a, p in zip(ANIMALS, PLACES)])
    write_jsonl(root / "eval" / "math.jsonl", [{"question": f"What is {a} + {a + 3}?", "answer": f"{a} + {a + 3} = {2 * a + 3}"}
                                              for a in range(10, 18)])
    return root


def tiny_spec(data_dir: Path, name: str = "tiny", domains: str = "label") -> DataSpec:
    """A DataSpec over write_tiny_corpus(), at a smoke-sized preset."""
    def field(fname: str, role: str, train: str, ev: str) -> FieldSpec:
        return FieldSpec(fname, role, SourceSpec(files=(train,)), SourceSpec(files=(ev,)), domains=domains)

    preset = DATA_PRESETS["smoke"]
    return DataSpec(
        name=name,
        fields=(field("general", "source", "general/*.jsonl", "eval/general.jsonl"),
                field("math", "target", "math/*.jsonl.gz", "eval/math.jsonl")),
        preset=preset.__class__(**{**preset.__dict__, "name": "tiny", "eval_pairs": 8, "tokenizer_sample_chars": 100_000}),
    )


def tiny_scenario(data_dir: Path, **overrides):
    """A smoke-sized Scenario over the tiny corpus, with a short base pre-training."""
    from dmix_gym.scenario import PRESETS, Scenario, override

    model, train = PRESETS["smoke"]
    scenario = Scenario(data=tiny_spec(data_dir), model=model, train=train)
    return override(scenario, **{"base_tokens": 16_384, **overrides})
