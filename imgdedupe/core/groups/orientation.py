"""Which members of a group are turned copies (a quarter or half turn of
the picture, not an EXIF tag) of the others.

Two sources, both of which the keeper rules (groups.keeper_rules) use:

* The scan's verification (graph_turned_copies): a near-duplicate pair
  verified under a quarter or half turn says its two photos stand at
  different turns; a pair verified without one, that they stand alike.
  The photos that stand alike form orientation classes, and the class
  with the most files is taken as upright (a library keeps its originals,
  and one stray turned copy of them, far more often than the reverse).
  A class turned against it holds turned copies; with two classes of
  equal size nothing is said. The verdict names no direction (which of
  the two was turned), so the majority is the only way to choose.
* The pixel sizes (swapped_copies), for groups the graph did not make (the
  exact and near-exact groups a scan announces early) and for turns the
  verification did not describe: a member whose width and height are
  another member's swapped is that picture turned a quarter. Sizes are
  after EXIF orientation (images.decode), so a photo stored sideways with
  an Orientation tag, as cameras write them, stands upright here. The
  majority decides which size is upright, as above.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from imgdedupe.core.groups.graph import SimilarityGraph
from imgdedupe.core.records import Group, Member
from imgdedupe.core.verify.tiers import NEAR_DUPLICATE, SIMILAR_SHOT

# verify.tiers._transform's words for a copy that does not stand as its
# original: turned, or mirrored (a mirror image is as far from "as shot").
_TURN_WORDS = ("a quarter turn", "a half turn", "a mirror image")


def swapped_copies(members: Sequence[Member]) -> frozenset[str]:
    """Members whose (width, height) is the majority's swapped."""
    sizes = Counter((m.width, m.height) for m in members
                    if m.width and m.height and m.width != m.height)
    turned: set[str] = set()
    for (width, height), count in sizes.items():
        if sizes.get((height, width), 0) > count:
            turned.update(m.path for m in members if (m.width, m.height) == (width, height))
    return frozenset(turned)


def graph_turned_copies(graph: SimilarityGraph | None, groups: Sequence[Group]
                        ) -> frozenset[str]:
    """Paths of members turned against the majority of their group, from
    the verified pairs between members (see the module docstring)."""
    if graph is None or not groups or not len(graph.pairs):
        return frozenset()
    paths, _, _, starts, _, _, _ = graph.contents.columns()
    wanted = {m.path for g in groups for m in g.members}
    row_of = {p: n for n, p in enumerate(paths) if p in wanted}
    node_of = {p: int(np.searchsorted(starts, n, side="right")) - 1 for p, n in row_of.items()}
    grouped = np.zeros(len(graph.contents), dtype=bool)
    grouped[list(node_of.values())] = True
    a, b = graph.pairs[:, 0], graph.pairs[:, 1]
    verified = (graph.tiers == NEAR_DUPLICATE) | (graph.tiers == SIMILAR_SHOT)
    rows = np.flatnonzero(grouped[a] & grouped[b] & verified)
    links: dict[int, list[tuple[int, bool]]] = {}
    for row in rows.tolist():
        x, y = int(graph.pairs[row, 0]), int(graph.pairs[row, 1])
        turned = any(w in graph.reasons[row] for w in _TURN_WORDS)
        links.setdefault(x, []).append((y, turned))
        links.setdefault(y, []).append((x, turned))
    out: set[str] = set()
    for group in groups:
        nodes: dict[int, list[str]] = {}
        for m in group.members:
            if m.path in node_of:
                nodes.setdefault(node_of[m.path], []).append(m.path)
        out.update(_minority(nodes, links))
    return frozenset(out)


def _minority(nodes: dict[int, list[str]], links: dict[int, list[tuple[int, bool]]]
              ) -> set[str]:
    """The files standing against the majority of their component. Each
    verified link says "stand alike" or "one is turned": two colours, a
    turned link between them (the verification names no direction, so a
    quarter and a half turn are both just "turned"). Colouring along the
    links, not only grouping by unturned ones, matters when the turned copy
    was verified first and its pairs joined the rest: then no pair among
    the originals is verified at all (a copy of a copy is spared), and only
    the colours say that four of them stand alike against one."""
    colour: dict[int, int] = {}
    out: set[str] = set()
    for start in nodes:
        if start in colour:
            continue
        colour[start], component, todo = 0, [start], [start]
        while todo:
            node = todo.pop()
            for other, turned in links.get(node, ()):
                if other in nodes and other not in colour:
                    colour[other] = colour[node] ^ int(turned)
                    component.append(other)
                    todo.append(other)
        files = Counter({0: 0, 1: 0})
        for node in component:
            files[colour[node]] += len(nodes[node])
        if files[0] == files[1] or not min(files.values()):
            continue  # no majority, or nothing turned: nothing to say
        minority = 0 if files[0] < files[1] else 1
        out.update(path for node in component if colour[node] == minority
                   for path in nodes[node])
    return out
