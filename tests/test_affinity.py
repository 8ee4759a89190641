"""RSA affinity against a direct scipy computation."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr

from mtl.branching.affinity import (
    dissimilarity_tensor,
    rdm_affinity,
    representation_dissimilarity,
)


def scipy_rdm(features: np.ndarray) -> np.ndarray:
    return squareform(pdist(features.reshape(len(features), -1), metric="correlation"))


def scipy_affinity(rdms: list[np.ndarray]) -> np.ndarray:
    k = rdms[0].shape[0]
    upper = np.triu_indices(k, k=1)
    vectors = [r[upper] for r in rdms]
    out = np.ones((len(rdms), len(rdms)))
    for s in range(len(rdms)):
        for t in range(len(rdms)):
            if s != t:
                out[s, t] = spearmanr(vectors[s], vectors[t]).statistic
    return out


def test_rdm_matches_scipy_correlation_distance():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 3, 4, 5))
    np.testing.assert_allclose(
        representation_dissimilarity(features), scipy_rdm(features), atol=1e-12
    )


def test_affinity_matches_scipy_spearman_of_strict_upper_triangles():
    rng = np.random.default_rng(1)
    shared = rng.normal(size=(20, 30))
    features = [shared + rng.normal(scale=s, size=shared.shape) for s in (0.1, 0.5, 3.0)]
    rdms = [scipy_rdm(f) for f in features]
    ours = rdm_affinity(np.stack([representation_dissimilarity(f) for f in features]))
    np.testing.assert_allclose(ours, scipy_affinity(rdms), atol=1e-12)
    # Noisier copies of the same representation are less similar to the first.
    assert ours[0, 1] > ours[0, 2]


def test_ties_are_ranked_like_scipy():
    rng = np.random.default_rng(2)
    rdms = rng.integers(0, 3, size=(3, 9, 9)).astype(float)
    rdms = (rdms + rdms.transpose(0, 2, 1)) / 2
    upper = np.triu_indices(9, k=1)
    expected = spearmanr(rdms[0][upper], rdms[1][upper]).statistic
    assert rdm_affinity(rdms)[0, 1] == pytest.approx(expected, abs=1e-12)


def test_lower_triangle_with_diagonal_would_differ():
    """Including the zero diagonal changes the answer: the strict upper triangle is what counts."""
    rng = np.random.default_rng(3)
    features = [rng.normal(size=(10, 8)) for _ in range(2)]
    rdms = [scipy_rdm(f) for f in features]
    lower = np.tril_indices(10)
    wrong = spearmanr(rdms[0][lower], rdms[1][lower]).statistic
    right = rdm_affinity(np.stack(rdms))[0, 1]
    assert right == pytest.approx(scipy_affinity(rdms)[0, 1], abs=1e-12)
    assert abs(wrong - right) > 1e-3


def test_dissimilarity_tensor_shapes_and_complement():
    rng = np.random.default_rng(4)
    features = [[rng.normal(size=(8, 5)) for _ in range(3)] for _ in range(2)]
    affinity, dissimilarity = dissimilarity_tensor(features)
    assert affinity.shape == dissimilarity.shape == (2, 3, 3)
    np.testing.assert_allclose(dissimilarity, 1 - affinity)
    np.testing.assert_allclose(np.diagonal(dissimilarity, axis1=1, axis2=2), 0, atol=1e-12)
    np.testing.assert_allclose(affinity, affinity.transpose(0, 2, 1))


def test_too_few_images_is_an_error():
    with pytest.raises(ValueError, match="at least 3 images"):
        representation_dissimilarity(np.ones((2, 4)))
