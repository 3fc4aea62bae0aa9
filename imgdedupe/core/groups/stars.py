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

from imgdedupe.core.verify.tiers import SAME_MOMENT_S

_BLOCK = 20_000


Apart = Callable[[int], frozenset[int]]


def _none_apart(_node: int) -> frozenset[int]:
    return frozenset()


def greedy_star_groups(
    n: int,
    pairs: np.ndarray,
    scores: np.ndarray,
    min_score: float,
    tie_break: Callable[[int], tuple],
    apart: Apart = _none_apart,
) -> list[tuple[int, list[tuple[int, float]]]]:
    """Split the graph of pairs with score >= min_score into star groups.

    Returns (reference, [(member, score to reference), ...]) per group,
    groups of two or more only. Deterministic: the reference of each star
    is the node with most remaining neighbours, then the highest summed
    score, then ``tie_break`` (lower first). ``apart``: a node's "Not
    duplicates" marks; a star never takes two nodes of one mark (the next
    most similar of them waits for another star).
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
        taken_marks = set(apart(reference))
        if taken_marks or any(apart(m) for m, _ in members):
            kept = []
            for m, s in members:
                if taken_marks.isdisjoint(apart(m)):
                    kept.append((m, s))
                    taken_marks |= apart(m)
            members = kept
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


class Moments:
    """Union-find that never joins two different moments: each set keeps
    the capture time of its members (``moment_of``: a node's time, or None
    when unknown), and a join of two sets with different times is refused.
    Two frames of a burst each copied once stay in two groups, even when
    a copy without a time matches both. Nor does it join two nodes of one
    "Not duplicates" mark (``apart``): a new copy that matches both photos
    the user set apart joins the more similar one, not both."""

    def __init__(self, moment_of: Callable[[int], float | None],
                 apart: Apart = _none_apart) -> None:
        self._moment_of = moment_of
        self._apart = apart
        self._parent: dict[int, int] = {}
        self._moment: dict[int, float | None] = {}
        self._marks: dict[int, frozenset[int]] = {}

    def root(self, x: int) -> int:
        parent = self._parent
        if x not in parent:
            parent[x] = x
            self._moment[x] = self._moment_of(x)
            self._marks[x] = self._apart(x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(self, a: int, b: int) -> bool:
        """Join a's set and b's; False when refused."""
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return True
        ma, mb = self._moment[ra], self._moment[rb]
        if ma is not None and mb is not None and abs(ma - mb) >= SAME_MOMENT_S:
            return False
        if not self._marks[ra].isdisjoint(self._marks[rb]):
            return False
        self._parent[ra] = rb
        self._moment[rb] = mb if mb is not None else ma
        self._marks[rb] = self._marks[rb] | self._marks[ra]
        return True

    def joined(self, a: int, b: int) -> bool:
        return self.root(a) == self.root(b)


def linked_groups(pairs: np.ndarray, scores: np.ndarray, tie_break: Callable[[int], tuple],
                  moment_of: Callable[[int], float | None] = lambda _node: None,
                  apart: Apart = _none_apart
                  ) -> list[tuple[int, list[tuple[int, float]]]]:
    """Connected components, for pairs each verified as the same picture.

    Chaining is what the stars above guard against when a pair means only
    "similar". A verified pair means "one picture", which carries over: a
    copy of a copy is a copy, and stars would split one picture's many
    edits into several groups, each keeping a duplicate. Returns the same
    shape as greedy_star_groups: the reference is the node with the most
    links, then the highest summed score, then ``tie_break``; each member
    comes with its score to the reference, or, when the two are no pair,
    its best score within the group. Pairs join from the most similar
    down, and never two different capture times (``moment_of``, Moments)
    nor two nodes of one "Not duplicates" mark (``apart``)."""
    sets = Moments(moment_of, apart)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    for a, b in pairs[order].tolist():
        if a != b:
            sets.join(a, b)
    neighbours: dict[int, dict[int, float]] = defaultdict(dict)
    for (a, b), s in zip(pairs.tolist(), scores.tolist(), strict=True):
        if a != b and sets.joined(a, b):
            neighbours[a][b] = neighbours[b][a] = s
    components: dict[int, list[int]] = defaultdict(list)
    for node in neighbours:
        components[sets.root(node)].append(node)
    groups = []
    for nodes in components.values():
        reference = min(nodes, key=lambda n: (-len(neighbours[n]),
                                              -round(sum(neighbours[n].values()), 6),
                                              tie_break(n)))
        members = [(n, neighbours[reference].get(n, max(neighbours[n].values())))
                   for n in nodes if n != reference]
        members.sort(key=lambda item: (-item[1], tie_break(item[0])))
        groups.append((reference, members))
    groups.sort(key=lambda group: tie_break(group[0]))
    return groups
