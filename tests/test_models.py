"""The branched network: parameter count equals the tree's formula; each copy runs once."""

import random

import pytest
import torch

from mtl.branching.search import enumerate_chains
from mtl.branching.tree import BranchedTree
from mtl.models.branched import BranchedNetwork
from mtl.models.encoders import resnet, thin_resnet, thin_vgg
from mtl.models.heads import DenseHead, GlobalHead

TASKS = ("a", "b", "c", "d")


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def heads_for(encoder, dense=("c", "d")):
    return {t: (DenseHead if t in dense else GlobalHead)(encoder.channels[-1], 3) for t in TASKS}


@pytest.mark.parametrize(
    "make_encoder",
    [
        lambda: thin_resnet(3),
        lambda: resnet("resnet18", None, 3),
        lambda: thin_vgg(3, 8, (1, 1, 2)),
    ],
    ids=["thin_resnet", "resnet18", "thin_vgg"],
)
def test_parameter_count_equals_formula(make_encoder):
    encoder = make_encoder()
    # Independent per-block count, straight from the block modules.
    per_block = [count(block) for block in encoder.blocks]
    chains = (
        list(enumerate_chains(len(TASKS), encoder.num_blocks)) if encoder.num_blocks <= 4 else None
    )
    rng = random.Random(0)
    trees = [
        BranchedTree.shared(TASKS, encoder.num_blocks),
        BranchedTree.separate(TASKS, encoder.num_blocks),
    ]
    if chains:
        trees += [BranchedTree(TASKS, c) for c in rng.sample(chains, 5)]
    for tree in trees:
        heads = heads_for(encoder)
        head_params = sum(count(h) for h in heads.values())
        network = BranchedNetwork(encoder, tree, heads, {"c", "d"})
        expected = sum(len(p) * n for p, n in zip(tree.partitions, per_block)) + head_params
        assert network.num_parameters() == expected


def test_each_block_copy_runs_once_and_dense_outputs_match_input_size():
    encoder = thin_resnet(3, widths=(4, 8, 8, 8))
    tree = BranchedTree(
        TASKS, (((0, 1, 2, 3),), ((0, 1), (2, 3)), ((0, 1), (2,), (3,)), ((0,), (1,), (2,), (3,)))
    )
    network = BranchedNetwork(encoder, tree, heads_for(encoder), {"c", "d"})
    calls = []
    for b, stage in enumerate(network.stages):
        for c, copy in enumerate(stage):
            copy.register_forward_hook(lambda *_, key=(b, c): calls.append(key))
    out = network(torch.randn(2, 3, 20, 24))
    assert sorted(calls) == sorted(
        (b, c) for b, p in enumerate(tree.partitions) for c in range(len(p))
    )
    assert out["a"].shape == (2, 3) and out["c"].shape == (2, 3, 20, 24)


def test_tasks_of_different_copies_get_different_features_and_gradients_stay_in_branch():
    encoder = thin_resnet(3, widths=(4, 4, 4, 4))
    tree = BranchedTree(TASKS, (((0, 1, 2, 3),),) + (((0, 1), (2, 3)),) * 3)
    network = BranchedNetwork(encoder, tree, heads_for(encoder), {"c", "d"})
    network(torch.randn(2, 3, 16, 16))["a"].sum().backward()
    # Block 2's copy for {c, d} gets no gradient from task a's loss.
    assert all(p.grad is None for p in network.stages[1][1].parameters())
    assert any(p.grad is not None for p in network.stages[1][0].parameters())
    assert "tasks=[c, d]" in repr(network)


def test_tree_and_encoder_must_agree():
    with pytest.raises(ValueError, match="encoder has 4"):
        BranchedNetwork(thin_resnet(3), BranchedTree.shared(TASKS, 3), heads_for(thin_resnet(3)))


def test_block_flops_counts_a_convolution():
    encoder = thin_vgg(1, width=2, layout=(1,))
    # One 3x3 conv, 1 -> 2 channels, on 4x4 with padding: 2 * (9 * 1 * 2 * 16) FLOPs.
    assert encoder.block_flops((1, 4, 4)) == [2 * 9 * 1 * 2 * 16]
