"""tf_usaug.metrics.relevance against hand-computed values and identities."""
from __future__ import annotations

import numpy as np
import pytest

from tf_usaug.metrics.relevance import area_fraction, pointing_game, relevance_mass_accuracy


def test_mass_accuracy_by_hand_ignores_negative_relevance():
    r = np.array([[1.0, -5.0], [3.0, 0.0]])
    mask = np.array([[True, True], [False, False]])
    assert relevance_mass_accuracy(r, mask) == pytest.approx(1.0 / 4.0)
    assert relevance_mass_accuracy(r, ~mask) == pytest.approx(3.0 / 4.0)


def test_uniform_map_scores_the_area_fraction_and_a_lesion_map_scores_one():
    rng = np.random.default_rng(0)
    mask = rng.random((32, 40)) < 0.2
    assert relevance_mass_accuracy(np.ones((32, 40)), mask) == pytest.approx(area_fraction(mask))
    assert relevance_mass_accuracy(mask * rng.random((32, 40)) + 0.0, mask) == 1.0
    r = rng.standard_normal((32, 40))  # complement identity: in + out = 1
    assert relevance_mass_accuracy(r, mask) + relevance_mass_accuracy(r, ~mask) == \
        pytest.approx(1.0)


def test_undefined_cases_are_none_and_shapes_must_match():
    assert relevance_mass_accuracy(-np.ones((4, 4)), np.ones((4, 4), bool)) is None
    assert relevance_mass_accuracy(np.ones((4, 4)), np.zeros((4, 4), bool)) is None
    assert pointing_game(np.ones((4, 4)), np.zeros((4, 4), bool)) is None
    with pytest.raises(ValueError, match="same HxW"):
        relevance_mass_accuracy(np.ones((4, 4)), np.ones((4, 5), bool))


def test_pointing_game_with_tolerance():
    r = np.zeros((10, 10))
    r[2, 3] = 5.0
    mask = np.zeros((10, 10), bool)
    mask[2, 3] = True
    assert pointing_game(r, mask) == 1
    mask[:] = False
    mask[5, 6] = True  # 3 rows, 3 columns away
    assert pointing_game(r, mask) == 0
    assert pointing_game(r, mask, tolerance=2) == 0
    assert pointing_game(r, mask, tolerance=3) == 1
