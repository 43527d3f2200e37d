"""Assign every document of a field to a domain, and describe the resulting domain space."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class DomainSpace:
    """The D domains of a scenario, which field each belongs to, and its start and target distributions."""

    names: tuple[str, ...]  # "<field>/<domain>"
    field_of: tuple[int, ...]  # index into `fields` for each domain
    fields: tuple[str, ...]  # field names, the source field first
    target_fields: tuple[str, ...]
    p0: tuple[float, ...]  # start state: the source field's own domain distribution
    p_star: tuple[float, ...]  # target distribution: zero on source domains

    @property
    def size(self) -> int:
        return len(self.names)

    def membership(self) -> np.ndarray:
        """(K, D) 0/1 matrix: row k marks the domains of field k."""
        matrix = np.zeros((len(self.fields), self.size), dtype=np.float64)
        matrix[list(self.field_of), np.arange(self.size)] = 1.0
        return matrix

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "DomainSpace":
        return cls(**{k: tuple(v) for k, v in data.items()})


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "-", text).strip("-").lower() or "unlabelled"


TERM_PATTERN = r"(?u)\b[a-zA-Z_][a-zA-Z_]+\b"
MAX_TERMS = 20_000


def capped_vocabulary(texts: Sequence[str], limit: int = MAX_TERMS) -> list[str]:
    """The `limit` most frequent terms seen in at least two documents, alphabetically.

    Terms tied at the cut are taken in alphabetical order. scikit-learn's own `max_features` breaks such
    ties with numpy's unstable argsort, whose order depends on the CPU's SIMD kernels, so the same corpus
    clustered differently on an AVX-512 machine.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    counter = CountVectorizer(stop_words="english", token_pattern=TERM_PATTERN, min_df=2)
    counts = counter.fit_transform(texts)
    terms = counter.get_feature_names_out()
    totals = np.asarray(counts.sum(axis=0)).ravel()
    return sorted(terms[np.lexsort((terms, -totals))[:limit]].tolist())


def cluster_domains(texts: Sequence[str], k: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """TF-IDF -> SVD -> k-means labels (the same under `seed` on any machine) and a name per cluster from its top terms."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    if len(texts) < k:
        raise ValueError(f"cannot cluster {len(texts)} documents into {k} domains")
    texts = [t[:20_000] for t in texts]
    vectorizer = TfidfVectorizer(vocabulary=capped_vocabulary(texts), sublinear_tf=True, stop_words="english",
                                 token_pattern=TERM_PATTERN)
    tfidf = vectorizer.fit_transform(texts)
    n_components = max(2, min(64, tfidf.shape[1] - 1, len(texts) - 1))
    svd = TruncatedSVD(n_components=n_components, random_state=seed)
    embedded = normalize(svd.fit_transform(tfidf))
    kmeans = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(embedded)
    # Order clusters by size (largest first) so domain ids do not depend on k-means' arbitrary numbering.
    sizes = np.bincount(kmeans.labels_, minlength=k)
    order = np.argsort(-sizes, kind="stable")
    remap = np.empty(k, dtype=np.int64)
    remap[order] = np.arange(k)
    labels = remap[kmeans.labels_]
    centroids_tfidf = svd.inverse_transform(kmeans.cluster_centers_[order])
    vocab = np.array(vectorizer.get_feature_names_out())
    names = [f"c{i:02d}-" + "-".join(vocab[np.argsort(-centroids_tfidf[i], kind="stable")[:2]]) for i in range(k)]
    return labels, names


def label_domains(labels: Sequence[str | None], k: int) -> tuple[np.ndarray, list[str]]:
    """Domains from record labels: the k-1 largest labels keep their own domain, the rest share 'other'."""
    counts = Counter(_slug(l) if l is not None else "unlabelled" for l in labels)
    keep = [name for name, _ in counts.most_common()]
    if len(keep) > k:
        keep = keep[: k - 1] + ["other"]
    index = {name: i for i, name in enumerate(keep)}
    other = index.get("other", len(keep) - 1)
    ids = np.array([index.get(_slug(l) if l is not None else "unlabelled", other) for l in labels], dtype=np.int64)
    return ids, keep


def assign_domains(texts: Sequence[str], labels: Sequence[str | None], method: str, k: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Domain id per document and the domain names, for one field."""
    if k == 1 or method == "source":
        return np.zeros(len(texts), dtype=np.int64), ["all"]
    if method == "label":
        return label_domains(labels, k)
    if method == "cluster":
        return cluster_domains(texts, k, seed)
    raise ValueError(f"unknown domain method {method!r} (use cluster, label or source)")


def collapse(p: np.ndarray, space: DomainSpace) -> np.ndarray:
    """Fine mixture (.., D) -> source-based mixture (.., K) by summing each field's domains."""
    return np.asarray(p, dtype=np.float64) @ space.membership().T


def expand(q: np.ndarray, space: DomainSpace, splits: np.ndarray | None = None) -> np.ndarray:
    """Source-based mixture (.., K) -> fine mixture (.., D): each field's share split like p0 (source) or p* (targets),
    or like `splits` (a (D,) mixture; only its proportions within each field count)."""
    within = np.where(np.array(space.field_of) == 0, space.p0, space.p_star) if splits is None else splits
    within = np.asarray(within, dtype=np.float64)
    membership = space.membership()
    field_totals = membership @ within
    if np.any(field_totals <= 0):
        raise ValueError(f"splits give a field no weight: {dict(zip(space.fields, field_totals.tolist()))}")
    within = within / field_totals[list(space.field_of)]
    return (np.asarray(q, dtype=np.float64) @ membership) * within


def source_space(space: DomainSpace) -> DomainSpace:
    """The source-based space of a fine space: one domain `<field>/all` per field (as domains="source" builds it)."""
    k = len(space.fields)
    return DomainSpace(
        names=tuple(f"{f}/all" for f in space.fields), field_of=tuple(range(k)), fields=space.fields,
        target_fields=space.target_fields, p0=tuple(float(x) for x in collapse(np.asarray(space.p0), space)),
        p_star=tuple(float(x) for x in collapse(np.asarray(space.p_star), space)),
    )
