"""Threshold graph -> groups, with a guard against chaining.

Plain connected components chain: A~B and B~C put A and C together even
when they are unrelated, and in a large library one chain can swallow
hundreds of photos. Here every member must be within the threshold of its
group's reference, the image with the most matches in its component.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable

import numpy as np

_BLOCK = 20_000


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
    # Converted to Python a block at a time: tolist() holds the GIL for the
    # whole array, and on a few hundred thousand pairs that froze the
    # window's thread for over 100 ms.
    for start in range(0, len(pairs), _BLOCK):
        block = slice(start, start + _BLOCK)
        for (a, b), s in zip(pairs[block].tolist(), scores[block].tolist(), strict=True):
            if s >= min_score and a != b:
                neighbours[a][b] = s
                neighbours[b][a] = s
    order = {node: tie_break(node) for node in neighbours}
    remaining = set(neighbours)

    def rank(node: int) -> tuple:
        linked = [v for m, v in neighbours[node].items() if m in remaining]
        return (-len(linked), -round(sum(linked), 6), order[node])

    # A node's rank only gets worse as nodes leave, so a heap whose stale
    # entries are re-ranked when they surface yields the same references,
    # in the same order, as taking min(remaining, key=rank) each time: a
    # node whose stored rank is still current is the true minimum. The
    # plain min was quadratic: minutes for 100k photos.
    heap = [(rank(node), node) for node in neighbours]
    heapq.heapify(heap)
    groups: list[tuple[int, list[tuple[int, float]]]] = []
    while heap:
        stored, reference = heapq.heappop(heap)
        if reference not in remaining:
            continue
        current = rank(reference)
        if current != stored:
            heapq.heappush(heap, (current, reference))
            continue
        members = sorted(
            ((m, s) for m, s in neighbours[reference].items() if m in remaining),
            key=lambda item: (-item[1], order[item[0]]),
        )
        # A node that leaves drops its neighbour map at once (no rank reads
        # a departed node's map). Freed all together at the return, the
        # maps of 2M pairs took 100 ms without a bytecode boundary: the GIL
        # was held throughout, and the window froze.
        remaining.discard(reference)
        del neighbours[reference]
        # A node left with no remaining neighbour is taken alone, forming
        # no group; it is no one's neighbour, so no rank changes.
        if not members:
            continue
        for m, _ in members:
            remaining.discard(m)
            del neighbours[m]
        groups.append((reference, members))
    return groups
