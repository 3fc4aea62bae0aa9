"""Which copy to keep: an ordered chain of criteria, like dupeGuru's
prioritize, and a sentence that says why.

The chain is a list of criterion names, best first, written as a short
string for the command line and the settings::

    pixels,upright,exif,name,compression,date,folder=/photos/library,path

Each criterion keeps, among the members still tied, those it prefers
(groups.keeper_criteria); the first member left when the chain ends is the
keeper, and a tie every criterion leaves falls to the path's order, so the
choice is always the same. The default puts pixels first, then what tells
an original from a copy of equal pixels: upright content over a turned
copy, the camera's EXIF over an export, the unedited name over "(1)" or
"_bright", less compression over a tighter re-encode; then the capture
date, a preferred folder (only when one is set) and the shorter path.

The engine only *suggests* a keeper; nothing here marks or deletes anything.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace

from imgdedupe.core.errors import ImgDedupeError
from imgdedupe.core.groups import keeper_criteria as c
from imgdedupe.core.groups.orientation import swapped_copies
from imgdedupe.core.images.photo_facts import FactsCache, PhotoFacts
from imgdedupe.core.records import Group, Member

# Name -> (what it prefers, in words; the function). In the default order.
CRITERIA: dict[str, tuple[str, c.Criterion]] = {
    "pixels": ("more pixels", c.more_pixels),
    "upright": ("upright content over a turned (rotated) copy", c.upright),
    "exif": ("the camera's EXIF over an export: make and model, no editor's Software tag, "
             "capture date, GPS; else a camera's format (JPEG, HEIC, RAW) over WebP, PNG, "
             "GIF", c.camera_exif),
    "name": ("the original name over a copy's or an edit's: (1), copy, -edited, "
             "_bright, or the original's name with something added", c.original_name),
    "compression": ("less compression: more bytes a pixel, within one format",
                    c.less_compression),
    "date": ("the earliest capture date (EXIF), else the oldest file", c.earliest),
    "folder": ("in the preferred folder (written folder=DIR)", c.preferred_folder),
    "path": ("the shorter path", c.shorter_path),
}
DEFAULT_ORDER: tuple[str, ...] = tuple(CRITERIA)
FOLDER = "folder"
UNDECIDED = "the first by name: the copies tie on every rule"


class KeeperRulesError(ImgDedupeError, ValueError):
    """A keeper chain that cannot be read; the message says what to write."""


@dataclass(frozen=True)
class KeeperChain:
    """The criteria in order, and the preferred folder. "folder" in the
    chain without a folder is skipped, so the default chain can name it."""

    criteria: tuple[str, ...] = DEFAULT_ORDER
    folder: str | None = None

    def __post_init__(self) -> None:
        unknown = [n for n in self.criteria if n not in CRITERIA]
        if unknown:
            raise KeeperRulesError(f"unknown keeper rule {unknown[0]!r}; {_choose_from()}")
        if len(set(self.criteria)) != len(self.criteria):
            raise KeeperRulesError("name each keeper rule once")

    def __str__(self) -> str:
        return ",".join(f"{FOLDER}={self.folder}" if n == FOLDER and self.folder else n
                        for n in self.criteria if n != FOLDER or self.folder)

    @classmethod
    def parse(cls, text: str) -> KeeperChain:
        """A chain from its string. A comma inside a folder's path is kept:
        what follows ``folder=`` runs to the next known rule name."""
        names: list[str] = []
        folder: str | None = None
        in_folder = False
        if not text.replace(",", "").strip():
            raise KeeperRulesError(f"no keeper rule given; {_choose_from()}")
        for part in text.split(","):
            word = part.strip()
            if word.lower() in CRITERIA and word.lower() != FOLDER:
                names.append(word.lower())
                in_folder = False
            elif word.lower().startswith(FOLDER + "="):
                if folder is not None:
                    raise KeeperRulesError("name each keeper rule once")
                folder, in_folder = word.split("=", 1)[1].strip(), True
                names.append(FOLDER)
                if not folder:
                    raise KeeperRulesError("folder needs its folder: folder=DIR")
            elif in_folder and folder is not None:
                folder += "," + part
            elif word.lower() == FOLDER:
                raise KeeperRulesError("folder needs its folder: folder=DIR")
            elif word:
                raise KeeperRulesError(f"unknown keeper rule {word!r}; {_choose_from()}")
            else:  # "pixels,,date": a rule left out by mistake, not a separator
                raise KeeperRulesError(f"an empty keeper rule between commas in {text!r}; "
                                       f"{_choose_from()}")
        if not names:
            raise KeeperRulesError(f"no keeper rule given; {_choose_from()}")
        return cls(tuple(names), folder)

    def with_folder(self, folder: str | None) -> KeeperChain:
        """The same order with another preferred folder (None: none); a
        chain that did not name "folder" gets it before "path"."""
        names = self.criteria
        if folder and FOLDER not in names:
            at = names.index("path") if "path" in names else len(names)
            names = (*names[:at], FOLDER, *names[at:])
        return KeeperChain(names, folder or None)


DEFAULT_CHAIN = KeeperChain()


def _choose_from() -> str:
    return f"choose from {', '.join(n if n != FOLDER else 'folder=DIR' for n in CRITERIA)}"


def choose_keeper(members: Sequence[Member], chain: KeeperChain,
                  facts: Callable[[Member], PhotoFacts],
                  turned: Collection[str] = frozenset(), same_picture: bool = True
                  ) -> tuple[str, str]:
    """(the keeper's path, why: "kept: 2× the pixels of IMG_1.jpg; ...").
    ``same_picture``: the members are copies of one picture, so one whose
    size is the others' swapped is a turned copy; False for similar shots,
    where a portrait beside a landscape is another photo."""
    if not members:
        raise ValueError("a group has at least one member")
    if same_picture:
        turned = {*turned, *swapped_copies(members)}
    if len({m.copy_set for m in members}) == 1 and members[0].copy_set is not None:
        facts = _no_facts  # byte copies alone: their facts are the same, no need to read
    else:
        facts = _one_read_per_copy(members, facts)
    context = c.Context(facts, turned, chain.folder)
    candidates = sorted(members, key=lambda m: m.path)
    why: list[str] = []
    for name in chain.criteria:
        if len(candidates) == 1:
            break
        kept, phrase = CRITERIA[name][1](candidates, context)
        if len(kept) < len(candidates):
            why.append(phrase)
            candidates = kept
    if len(candidates) > 1:
        why.append(UNDECIDED)
    elif not why:
        why.append("the only photo")
    return candidates[0].path, "kept: " + "; ".join(why)


def _no_facts(_member: Member) -> PhotoFacts:
    return PhotoFacts()


def _one_read_per_copy(members: Sequence[Member], facts: Callable[[Member], PhotoFacts]
                       ) -> Callable[[Member], PhotoFacts]:
    """Byte copies have the same facts: read the first of each."""
    first: dict[int, Member] = {}
    for m in members:
        if m.copy_set is not None:
            first.setdefault(m.copy_set, m)
    return lambda m: facts(first[m.copy_set] if m.copy_set is not None else m)


def choose_keepers(groups: Iterable[Group], chain: KeeperChain = DEFAULT_CHAIN,
                   facts: Callable[[Member], PhotoFacts] | None = None,
                   turned: Collection[str] = frozenset()) -> tuple[Group, ...]:
    """The groups with their keeper and keeper_reason chosen by ``chain``.
    ``facts``: a shared images.photo_facts.FactsCache (a new one by
    default); ``turned``: paths of turned copies (groups.orientation)."""
    facts = facts or FactsCache()
    out = []
    for group in groups:
        keeper, reason = choose_keeper(group.members, chain, facts, turned, group.deletable)
        out.append(replace(group, keeper=keeper, keeper_reason=reason,
                           keeper_ranking=_ranking(group, keeper, chain, facts, turned)))
    return tuple(out)


def _ranking(group: Group, keeper: str, chain: KeeperChain,
             facts: Callable[[Member], PhotoFacts], turned: Collection[str]
             ) -> tuple[str, ...]:
    """The members best first by ``chain``: the keeper, then the keeper of
    the rest, and so on. Where the first choice may not be kept (a
    protected folder's copy must be, groups.protection), the next best by
    the same rules is known. Turned copies are judged on the whole group."""
    if len(group.members) <= 2:
        return (keeper, *(m.path for m in group.members if m.path != keeper))
    if group.deletable:
        turned = {*turned, *swapped_copies(group.members)}
    facts = _one_read_per_copy(group.members, facts)  # byte copies: one read, as above
    order = [keeper]
    rest = [m for m in group.members if m.path != keeper]
    while len(rest) > 1:
        best, _ = choose_keeper(rest, chain, facts, turned, same_picture=False)
        order.append(best)
        rest = [m for m in rest if m.path != best]
    return (*order, *(m.path for m in rest))


def describe_criteria(width: int = 78) -> str:
    """Each criterion's name and what it prefers, wrapped, for --help."""
    return "\n".join(textwrap.fill(words, width, initial_indent=f"  {name:<12} ",
                                   subsequent_indent=" " * 15, break_on_hyphens=False)
                     for name, (words, _) in CRITERIA.items())


def folder_missing(chain: KeeperChain) -> bool:
    return chain.folder is not None and not os.path.isdir(chain.folder)
