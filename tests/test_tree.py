"""The tree as a chain of partitions: validation, encodings, cost and resources."""

import numpy as np
import pytest

from mtl.branching.tree import BranchedTree

TASKS = ("seg", "depth", "normals")


def test_refinement_is_enforced():
    with pytest.raises(ValueError, match="does not refine"):
        BranchedTree(TASKS, (((0,), (1, 2)), ((0, 1), (2,))))


def test_every_task_once_per_block():
    with pytest.raises(ValueError, match="exactly once"):
        BranchedTree(TASKS, (((0, 1),),))


def test_assignment_round_trip_and_dict_round_trip():
    tree = BranchedTree(TASKS, (((0, 1, 2),), ((0, 2), (1,)), ((0,), (1,), (2,))))
    assert tree.assignment().tolist() == [[0, 0, 0], [0, 1, 0], [0, 1, 2]]
    assert BranchedTree.from_assignment(TASKS, tree.assignment()) == tree
    assert BranchedTree.from_dict(tree.to_dict()) == tree
    assert tree.parent(1, 1) == 0 and tree.parent(2, 2) == 0


def test_cost_hand_worked():
    # Block 1 shares all three tasks: max dissimilarity among them is 0.9.
    # Block 2 has {seg, normals} (0.2) and {depth} (0): mean 0.1.
    d = np.array([[0, 0.5, 0.9], [0.5, 0, 0.7], [0.9, 0.7, 0]])
    dis = np.stack([d, d])
    tree = BranchedTree(TASKS, (((0, 1, 2),), ((0, 2), (1,))))
    d2 = d.copy()
    d2[0, 2] = d2[2, 0] = 0.2
    dis[1] = d2
    assert tree.cost(dis) == pytest.approx(0.9 + 0.1)


def test_resources_formula():
    tree = BranchedTree(TASKS, (((0, 1, 2),), ((0, 2), (1,)), ((0,), (1,), (2,))))
    assert tree.resources([10, 100, 1000], fixed=7) == 7 + 10 + 2 * 100 + 3 * 1000
    assert BranchedTree.shared(TASKS, 2).copies_per_block() == [1, 1]
    assert BranchedTree.separate(TASKS, 2).copies_per_block() == [3, 3]


def test_from_dict_rejects_unknown_task():
    with pytest.raises(ValueError, match="unknown tasks"):
        BranchedTree.from_dict({"tasks": ["a", "b"], "blocks": [[["a", "c"]]]})
