import numpy as np
from sklearn.neighbors import NearestNeighbors

from poison_expectations.core.neighbors import find_neighbors


def _clustered(n=3000, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, d)) * 5
    return (centers[rng.integers(0, 20, n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_exact_self_search_matches_sklearn_and_excludes_self():
    X = _clustered()
    nb = find_neighbors(X, k=5)
    assert nb.exact and nb.recall_estimate == 1.0
    assert not (nb.indices == np.arange(len(X))[:, None]).any()
    dist, _ = NearestNeighbors(n_neighbors=6).fit(X).kneighbors(X)
    np.testing.assert_allclose(nb.distances, dist[:, 1:], rtol=1e-3, atol=1e-3)


def test_duplicates_do_not_keep_self_as_a_neighbour():
    X = np.zeros((50, 3), dtype=np.float32)
    nb = find_neighbors(X, k=4)
    assert not (nb.indices == np.arange(50)[:, None]).any()
    assert (nb.distances == 0).all()


def test_reference_search_returns_reference_rows():
    X = _clustered(500)
    ref = _clustered(800, seed=1)
    nb = find_neighbors(X, ref, k=3)
    assert nb.indices.max() < 800
    dist, idx = NearestNeighbors(n_neighbors=3).fit(ref).kneighbors(X)
    np.testing.assert_allclose(nb.distances, dist, rtol=1e-3, atol=1e-3)


def test_approximate_index_has_high_recall():
    X = _clustered(4000)
    nb = find_neighbors(X, k=10, exact_max_rows=1000)
    assert not nb.exact
    assert nb.recall_estimate > 0.9
    assert not (nb.indices == np.arange(len(X))[:, None]).any()


def test_locality_ordered_hnsw_search_returns_each_query_its_own_neighbours():
    """Searching a large HNSW query set in locality order only changes the
    order the graph is walked in: every query gets what it gets alone."""
    from poison_expectations.core.neighbors import LOCALITY_MIN_QUERIES, NeighborIndex

    rng = np.random.default_rng(4)
    data = rng.standard_normal((3_000, 6)).astype(np.float32)
    queries = rng.standard_normal((LOCALITY_MIN_QUERIES + 10, 6)).astype(np.float32)
    index = NeighborIndex.build(data, exact_max_rows=100)
    assert not index.exact
    found = index.search(queries, 5)
    index.index.hnsw.efSearch = 32  # as search sets it for k = 5
    distances, indices = index.index.search(queries, 5)
    assert np.array_equal(found.indices, indices)
    assert np.allclose(found.distances, np.sqrt(np.maximum(distances, 0)))
