import random

import numpy as np

from dmix_gym.data.domains import DomainSpace, capped_vocabulary, cluster_domains, collapse, expand, label_domains
from tests.helpers import general_sentence, math_sentence


def _texts(n=120):
    rng = random.Random(1)
    return [general_sentence(rng) if i % 2 else math_sentence(rng) for i in range(n)]


def test_clustering_is_deterministic_under_a_seed():
    texts = _texts()
    a, names_a = cluster_domains(texts, 3, seed=7)
    b, names_b = cluster_domains(texts, 3, seed=7)
    assert np.array_equal(a, b) and names_a == names_b
    assert set(a) == {0, 1, 2}
    # clusters are numbered largest first
    sizes = np.bincount(a)
    assert list(sizes) == sorted(sizes, reverse=True)


def test_terms_tied_at_the_cap_are_taken_alphabetically_whatever_the_document_order():
    # 'alpha' is seen 3 times, the rest twice; 'once' is in one document only and never counts.
    texts = ["alpha zeta gamma", "alpha zeta gamma", "alpha delta beta once", "delta beta"]
    assert capped_vocabulary(texts, limit=3) == ["alpha", "beta", "delta"]
    assert capped_vocabulary(texts[::-1], limit=3) == ["alpha", "beta", "delta"]
    assert capped_vocabulary(texts, limit=10) == ["alpha", "beta", "delta", "gamma", "zeta"]


def test_clustering_separates_obviously_different_texts():
    texts = _texts()
    labels, _ = cluster_domains(texts, 2, seed=0)
    parity = np.arange(len(texts)) % 2
    agreement = max((labels == parity).mean(), (labels != parity).mean())
    assert agreement > 0.95


def test_label_domains_keep_largest_and_pool_the_rest():
    ids, names = label_domains(["a", "a", "a", "b", "b", "c", None], k=3)
    assert names == ["a", "b", "other"]
    assert list(ids) == [0, 0, 0, 1, 1, 2, 2]


SPACE = DomainSpace(
    names=("general/x", "general/y", "math/u", "math/v", "math/w"),
    field_of=(0, 0, 1, 1, 1), fields=("general", "math"), target_fields=("math",),
    p0=(0.25, 0.75, 0, 0, 0), p_star=(0, 0, 0.5, 0.3, 0.2),
)


def test_collapse_sums_each_field():
    assert np.allclose(collapse(np.array([0.1, 0.2, 0.3, 0.3, 0.1]), SPACE), [0.3, 0.7])


def test_expand_splits_like_p0_and_p_star_and_round_trips():
    fine = expand(np.array([0.4, 0.6]), SPACE)
    assert np.allclose(fine, [0.1, 0.3, 0.3, 0.18, 0.12])
    assert np.isclose(fine.sum(), 1.0)
    assert np.allclose(collapse(fine, SPACE), [0.4, 0.6])


def test_domain_space_json_round_trip():
    assert DomainSpace.from_dict(SPACE.to_dict()) == SPACE
