"""What a run shows a person: the multi-task gain, a results table, and figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mtl.branching.tree import BranchedTree


def relative_gain(multi_task: float, single_task: float, higher_is_better: bool) -> float:
    """``(-1)^l (M - S) / S`` in percent; NaN where the single-task metric is 0."""
    if single_task == 0:
        return float("nan")
    sign = 1.0 if higher_is_better else -1.0
    return 100.0 * sign * (multi_task - single_task) / abs(single_task)


def delta_m(
    multi_task: Mapping[str, float],
    single_task: Mapping[str, float],
    higher_is_better: Mapping[str, bool],
) -> float:
    """Mean relative gain over single-task baselines, in percent (higher is better).

    ``Delta_m = 100 / T * sum_t (-1)^{l_t} (M_t - S_t) / S_t`` with ``l_t = 1`` for
    metrics where lower is better. It is NaN when a single-task metric is 0.
    """
    if not higher_is_better:
        raise ValueError("delta_m needs at least one task")
    gains = [relative_gain(multi_task[t], single_task[t], h) for t, h in higher_is_better.items()]
    return float(np.mean(gains))


def results_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """A plain-text table with a header row and aligned columns."""
    cells = [[str(c) for c in columns]] + [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_affinity(
    affinity: np.ndarray, tasks: Sequence[str], block_names: Sequence[str], path: Path
) -> Path:
    """Heat maps of the task affinity (Spearman correlation) at every branch point."""
    plt = _pyplot()
    points = len(affinity)
    fig, axes = plt.subplots(1, points, figsize=(3.2 * points + 1, 3.4), squeeze=False)
    for d, ax in enumerate(axes[0]):
        image = ax.imshow(affinity[d], vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(f"after {block_names[d]}")
        ax.set_xticks(range(len(tasks)), tasks, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(tasks)), tasks if d == 0 else [], fontsize=8)
        if len(tasks) <= 8:
            for s in range(len(tasks)):
                for t in range(len(tasks)):
                    value = affinity[d, s, t]
                    # light text on the dark ends of the colour map
                    color = "white" if abs(value) > 0.6 else "black"
                    ax.text(
                        t, s, f"{value:.2f}", ha="center", va="center", fontsize=7, color=color
                    )
    fig.colorbar(
        image, ax=axes[0].tolist(), label="affinity (RSA Spearman, higher = more similar)"
    )
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_tree(tree: BranchedTree, block_names: Sequence[str], path: Path, title: str = "") -> Path:
    """Draw the tree: one column per block, one node per block copy, edges to the parent copy."""
    plt = _pyplot()
    tasks = list(tree.tasks)
    assignment = tree.assignment()
    leaves = sorted(range(len(tasks)), key=lambda t: tuple(assignment[:, t]))
    order = {t: row for row, t in enumerate(leaves)}

    def y_of(cluster: tuple[int, ...]) -> float:
        return float(np.mean([order[t] for t in cluster]))

    fig, ax = plt.subplots(figsize=(1.6 * (tree.num_blocks + 2), 0.55 * len(tasks) + 1.2))
    ax.scatter([0], [y_of(tuple(range(len(tasks))))], s=80, c="black", zorder=3)
    ax.text(0, y_of(tuple(range(len(tasks)))) - 0.35, "input", ha="center", fontsize=8)
    for b, partition in enumerate(tree.partitions):
        for c, cluster in enumerate(partition):
            y = y_of(cluster)
            parent = tree.parent(b, c)
            y_parent = (
                y_of(tuple(range(len(tasks))))
                if parent is None
                else y_of(tree.partitions[b - 1][parent])
            )
            ax.plot([b, b + 1], [y_parent, y], color="tab:blue", lw=1.5, zorder=1)
            ax.scatter([b + 1], [y], s=60 + 20 * len(cluster), c="tab:blue", zorder=2)
    last = tree.partitions[-1]
    for t in range(len(tasks)):
        y_copy = y_of(next(c for c in last if t in c))
        ax.plot([tree.num_blocks, tree.num_blocks + 0.6], [y_copy, order[t]], color="gray", lw=1)
        ax.text(tree.num_blocks + 0.65, order[t], tasks[t], va="center", fontsize=9)
    ax.set_xticks(range(tree.num_blocks + 1), ["input", *block_names], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.3, tree.num_blocks + 1.8)
    ax.invert_yaxis()
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(
        title or f"branched network: {sum(tree.copies_per_block())} block copies", fontsize=10
    )
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
