"""Item models over the scan's groups: a list of groups, and one group's members.

Both are plain list models over immutable ``Group`` records. The group
list hands out rows in chunks (``fetchMore``), so a result of 100k groups
appears at once and the view only ever lays out what it has fetched.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QIcon

from ...core.actions.decisions import Decisions
from ...core.actions.review_order import space_to_free
from ...core.records import Group, Member
from ...core.units import human_size
from ...report import printable
from .thumbnails import ThumbnailCache

MEMBER_ROLE = Qt.ItemDataRole.UserRole + 1  # the Member / Group record
MARKED_ROLE = Qt.ItemDataRole.UserRole + 2  # bool: marked for deletion
KEEPER_ROLE = Qt.ItemDataRole.UserRole + 3  # bool: the suggested keeper
THUMB_ROLE = Qt.ItemDataRole.UserRole + 4  # QPixmap or None (queued)
BROKEN_ROLE = Qt.ItemDataRole.UserRole + 5  # str: why no thumbnail, or ""
GROUP_ROLE = Qt.ItemDataRole.UserRole + 6  # the Group a member belongs to

FETCH_CHUNK = 500

Index = QModelIndex | QPersistentModelIndex


# A tier as the window names it: the group list's label, and the plural
# for "3 near-duplicates".
TIER_LABELS = {"exact": "Exact copies", "near_duplicate": "Near-duplicates",
               "similar_shot": "Similar shots"}
TIER_TIPS = {
    "exact": "Files with the very same bytes",
    "near_duplicate": "The same picture: an edited, resized, cropped, recoloured, rotated or "
                      "re-encoded copy, checked on the pixels",
    "similar_shot": "The same scene taken again (a burst, a second take): different photos, "
                    "for review. Nothing is marked in them unless you ask.",
}


def group_summary(group: Group) -> str:
    total = sum(m.size_with_companions for m in group.members)
    lowest = min(m.similarity for m in group.members)
    # Rounded down: "≥ 100" on a group whose weakest pair is 99.6 promised
    # it would stay at the slider's 100, where it is gone.
    score = "" if group.tier == "exact" else f" · similarity ≥ {math.floor(lowest)}"
    return f"{len(group.members)} {TIER_LABELS[group.tier].lower()} · {human_size(total)}{score}"


class GroupListModel(QAbstractListModel):
    def __init__(self, thumbnails: ThumbnailCache, decisions: Decisions) -> None:
        super().__init__()
        self._groups: tuple[Group, ...] = ()
        self._fetched = 0
        self._thumbnails = thumbnails
        self._decisions = decisions
        self._row_of_path: dict[str, int] = {}
        self.extra_tip: Callable[[Group], str] | None = None  # e.g. the capture date
        thumbnails.ready.connect(self._on_thumbnail)

    @property
    def groups(self) -> tuple[Group, ...]:
        return self._groups

    def set_groups(self, groups: Sequence[Group]) -> None:
        self.beginResetModel()
        self._groups = tuple(groups)
        self._fetched = min(FETCH_CHUNK, len(self._groups))
        self._row_of_path = {g.reference: n for n, g in enumerate(self._groups)}
        self.endResetModel()

    def group(self, row: int) -> Group:
        return self._groups[row]

    def row_of(self, path: str) -> int | None:
        """Row of the group that has ``path`` as a member."""
        for n, group in enumerate(self._groups):
            if any(m.path == path for m in group.members):
                return n
        return None

    def ensure_fetched(self, row: int) -> None:
        while row >= self._fetched and self.canFetchMore(QModelIndex()):
            self.fetchMore(QModelIndex())

    # -- Qt model API ---------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self._fetched

    def canFetchMore(self, parent: Index) -> bool:
        return not parent.isValid() and self._fetched < len(self._groups)

    def fetchMore(self, parent: Index) -> None:
        if parent.isValid():
            return
        more = min(FETCH_CHUNK, len(self._groups) - self._fetched)
        if more <= 0:
            return
        self.beginInsertRows(QModelIndex(), self._fetched, self._fetched + more - 1)
        self._fetched += more
        self.endInsertRows()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: ANN201
        if not index.isValid() or not 0 <= index.row() < self._fetched:
            return None
        group = self._groups[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            marked = len(self._decisions.marked_in(group))
            space = space_to_free(group, self._decisions)  # what the list sorts by first
            frees = f"{human_size(space)} to free" if space else ""
            suffix = f"\n{marked} marked for deletion" + (f" · {frees}" if frees else "") \
                if marked else (f"\n{frees}" if frees else "")
            return f"{group_summary(group)}{suffix}"
        if role == Qt.ItemDataRole.ToolTipRole:
            extra = self.extra_tip(group) if self.extra_tip else ""
            return "\n".join([group.reason, *(printable(m.path) for m in group.members),
                              *([extra] if extra else [])])
        if role == Qt.ItemDataRole.DecorationRole:
            pixmap = self._thumbnails.pixmap(group.reference)
            # A QIcon is drawn at the view's icon size; a bare pixmap would
            # be drawn at full thumbnail size and crowd out the text.
            return QIcon(pixmap) if pixmap is not None else None
        if role == MEMBER_ROLE:
            return group
        return None

    def refresh_marks(self) -> None:
        if self._fetched:
            self.dataChanged.emit(self.index(0), self.index(self._fetched - 1),
                                  [Qt.ItemDataRole.DisplayRole])

    def _on_thumbnail(self, path: str) -> None:
        row = self._row_of_path.get(path)
        if row is not None and row < self._fetched:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class MemberModel(QAbstractListModel):
    """The members of one group, reference first."""

    def __init__(self, thumbnails: ThumbnailCache, decisions: Decisions,
                 show_decisions: bool = True) -> None:
        super().__init__()
        self._show_decisions = show_decisions  # off for "Find similar" results
        self._group: Group | None = None
        self._members: tuple[Member, ...] = ()
        self._thumbnails = thumbnails
        self._decisions = decisions
        self._row_of_path: dict[str, int] = {}
        thumbnails.ready.connect(self._on_thumbnail)

    @property
    def group(self) -> Group | None:
        return self._group

    def set_group(self, group: Group | None) -> None:
        self.beginResetModel()
        self._group = group
        self._members = group.members if group else ()
        self._row_of_path = {m.path: n for n, m in enumerate(self._members)}
        self.endResetModel()

    def member(self, row: int) -> Member:
        return self._members[row]

    def row_of(self, path: str) -> int | None:
        return self._row_of_path.get(path)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._members)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: ANN201
        if not index.isValid() or not 0 <= index.row() < len(self._members):
            return None
        member = self._members[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            reference = self._group is not None and self._group.kind == "similar" \
                and index.row() == 0
            caption = member_caption(member, reference and self._show_decisions)
            protected = self._show_decisions and self._decisions.is_protected(member.path)
            return caption + ("\nprotected folder" if protected else "")
        if role == Qt.ItemDataRole.ToolTipRole:
            if member.companions:
                return f"{printable(member.path)}\n{companions_text(member)}"
            return member.path
        if role == MEMBER_ROLE:
            return member
        if role == GROUP_ROLE:
            return self._group
        if role == MARKED_ROLE:
            return self._decisions.is_marked(member.path) if self._show_decisions else None
        if role == KEEPER_ROLE:  # no keeper is suggested among similar shots
            return self._show_decisions and self._group is not None \
                and self._group.deletable and self._group.keeper == member.path
        if role == THUMB_ROLE:
            return self._thumbnails.pixmap(member.path)
        if role == BROKEN_ROLE:
            return self._thumbnails.failures.get(member.path, "")
        return None

    def refresh_marks(self) -> None:
        if self._members:
            self.dataChanged.emit(self.index(0), self.index(len(self._members) - 1),
                                  [MARKED_ROLE])

    def _on_thumbnail(self, path: str) -> None:
        row = self._row_of_path.get(path)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [THUMB_ROLE])


def member_caption(member: Member, reference: bool = False) -> str:
    dims = f"{member.width}×{member.height}" if member.width else "size unknown"
    if reference:
        score = "reference"
    elif member.exact and member.similarity >= 100:
        score = "exact copy"
    else:
        score = f"{math.floor(member.similarity)}% similar"  # never "100%" below 100
    return f"{os.path.basename(member.path)}\n{score}\n{dims} · {human_size(member.size)}"


def companion_badge(member: Member) -> str:
    """"+XMP +RAW" for a card: each kind of companion file once, in order."""
    labels = dict.fromkeys(c.label for c in member.companions)
    return " ".join(f"+{label}" for label in labels)


def companions_text(member: Member) -> str:
    """The companion files, one a line, for a tooltip or the compare view."""
    if not member.companions:
        return ""
    lines = [f"  {printable(os.path.basename(c.path))} ({c.label}, {human_size(c.size)})"
             for c in member.companions]
    return "Moves to the trash with it:\n" + "\n".join(lines)
