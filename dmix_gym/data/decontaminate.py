"""Keep evaluation pairs out of training data, by hashing normalised text."""

from __future__ import annotations

import hashlib
import re
from typing import Iterable

NGRAM = 13  # words; the window GPT-3 and later decontamination use
_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> list[str]:
    """Lower-cased alphanumeric words: the form two texts are compared in."""
    return _NON_WORD.sub(" ", text.lower()).split()


def _digest(words: list[str]) -> bytes:
    return hashlib.blake2b(" ".join(words).encode(), digest_size=8).digest()


def ngram_hashes(text: str, n: int = NGRAM) -> set[bytes]:
    """Hashes of every n-word window of the normalised text (the whole text if shorter)."""
    words = normalise(text)
    if len(words) <= n:
        return {_digest(words)} if words else set()
    return {_digest(words[i : i + n]) for i in range(len(words) - n + 1)}


def eval_fingerprint(questions_and_answers: Iterable[tuple[str, str]], n: int = NGRAM) -> set[bytes]:
    """Hashes that identify a set of evaluation pairs: windows of each question, answer and both together."""
    hashes: set[bytes] = set()
    for question, answer in questions_and_answers:
        hashes |= ngram_hashes(question + " " + answer, n)
        hashes |= ngram_hashes(question, n)
        hashes |= ngram_hashes(answer, n)
    return hashes


def is_contaminated(text: str, fingerprint: set[bytes], n: int = NGRAM) -> bool:
    """True when a training text shares an n-word window (or its whole short text) with an evaluation pair."""
    return not fingerprint.isdisjoint(ngram_hashes(text, n))
