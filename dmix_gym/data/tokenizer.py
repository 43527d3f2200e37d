"""A byte-level BPE tokenizer trained on a scenario's fields, saved as a PreTrainedTokenizerFast."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import MissingFileError
from ..utils.atomic import atomic_dir, stable_hash

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def tokenizer_key(texts_digest: str, vocab_size: int) -> str:
    """Cache key of a tokenizer: a hash of its training sample and vocabulary size."""
    return stable_hash({"sample": texts_digest, "vocab": vocab_size, "kind": "bytelevel-bpe-v1"})


def train_tokenizer(texts: Sequence[str], vocab_size: int, out_dir: Path):
    """Train byte-level BPE on `texts` and save it atomically as a PreTrainedTokenizerFast folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD)
    with atomic_dir(out_dir) as tmp:
        fast.save_pretrained(tmp)
    return fast


def load_tokenizer(path: Path):
    """Load a saved tokenizer folder: dmix's own, or a user model's (any tokenizer AutoTokenizer loads)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if not (path / "tokenizer.json").exists() and not (path / "tokenizer_config.json").exists():
        raise MissingFileError(f"no tokenizer at {path} (missing tokenizer.json); run `dmix data build`")
    if not (path / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(str(path))
    return PreTrainedTokenizerFast.from_pretrained(str(path))
