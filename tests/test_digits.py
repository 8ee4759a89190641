"""The bundled digits: real scans, derived labels as documented, deterministic split."""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from mtl.data.digits import DigitsDataModule, make_digit_tensors


def test_labels_derived_from_the_real_scans():
    tensors = make_digit_tensors(size=16, noise=0.0)
    digits = load_digits()
    labels = digits.target
    assert len(tensors["digit"]) == 1797
    np.testing.assert_array_equal(tensors["digit"].numpy(), labels)
    np.testing.assert_array_equal(tensors["parity"].numpy(), labels % 2)
    np.testing.assert_array_equal(tensors["large"].numpy(), labels >= 5)

    clean = F.interpolate(
        torch.tensor(digits.images[:1] / 16.0, dtype=torch.float32)[:, None],
        size=16,
        mode="bilinear",
    )
    np.testing.assert_allclose(
        tensors["clean"][0, 0].numpy(), clean[0, 0].clamp(0, 1).numpy(), atol=1e-6
    )
    strokes = clean[0, 0].numpy() > 0.5
    np.testing.assert_array_equal(tensors["strokes"][0].numpy(), strokes)


def test_edges_are_stroke_pixels_with_an_outside_neighbour():
    tensors = make_digit_tensors(size=16, noise=0.0)
    mask = tensors["strokes"][5].numpy().astype(bool)
    padded = np.pad(mask, 1, constant_values=True)
    expected = np.zeros_like(mask)
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            if mask[i, j]:
                neighbours = [
                    padded[i, j + 1],
                    padded[i + 2, j + 1],
                    padded[i + 1, j],
                    padded[i + 1, j + 2],
                ]
                expected[i, j] = not all(neighbours)
    np.testing.assert_array_equal(tensors["edges"][5, 0].numpy().astype(bool), expected)


def test_split_is_deterministic_and_disjoint():
    a, b = DigitsDataModule(seed=3), DigitsDataModule(seed=3)
    a.setup(), b.setup()
    assert a.train_set.indices == b.train_set.indices
    assert not set(a.train_set.indices) & set(a.val_set.indices)
    assert len(a.train_set) + len(a.val_set) == 1797


def test_three_channel_images():
    dm = DigitsDataModule(targets=["digit"], in_channels=3, limit=4)
    dm.setup()
    assert dm.train_set[0]["image"].shape == (3, 32, 32)
