"""Threshold graph -> groups, with a guard against chaining.

Plain connected components chain: A~B and B~C put A and C together even
when they are unrelated, and in a large library one chain can swallow
hundreds of photos. Here every member must be within the threshold of its
group's reference, the image with the most matches in its component.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np


def greedy_star_groups(
    n: int,
    pairs: np.ndarray,
    scores: np.ndarray,
    min_score: float,
    tie_break: Callable[[int], tuple],
) -> list[tuple[int, list[tuple[int, float]]]]:
    """Split the graph of pairs with score >= min_score into star groups.

    Returns (reference, [(member, score to reference), ...]) per group,
    groups of two or more only. Deterministic: the reference of each star
    is the node with most remaining neighbours, then the highest summed
    score, then ``tie_break`` (lower first).
    """
    neighbours: dict[int, dict[int, float]] = defaultdict(dict)
    for (a, b), s in zip(pairs.tolist(), scores.tolist(), strict=True):
        if s >= min_score and a != b:
            neighbours[a][b] = s
            neighbours[b][a] = s
    remaining = set(neighbours)
    groups: list[tuple[int, list[tuple[int, float]]]] = []
    while remaining:
        def rank(node: int, remaining: set[int] = remaining) -> tuple:
            linked = [v for m, v in neighbours[node].items() if m in remaining]
            return (-len(linked), -round(sum(linked), 6), tie_break(node))

        reference = min(remaining, key=rank)
        members = sorted(
            ((m, s) for m, s in neighbours[reference].items() if m in remaining),
            key=lambda item: (-item[1], tie_break(item[0])),
        )
        remaining.discard(reference)
        if not members:
            continue
        for m, _ in members:
            remaining.discard(m)
        groups.append((reference, members))
        # Nodes left with no remaining neighbour can never form a group.
        remaining = {r for r in remaining if any(m in remaining for m in neighbours[r])}
    return groups

