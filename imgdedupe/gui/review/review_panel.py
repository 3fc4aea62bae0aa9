"""Reviewing results: the list of groups on the left, one group's grid on the right.

Keyboard: arrows move, K keeps, D marks for deletion, A accepts the
group's suggestion and goes to the next group (Shift+A also in a group of
similar shots), Space compares, Enter goes to the next group, Ctrl + /
Ctrl - (or Ctrl and the wheel) size the thumbnails. Right-click any picture for Find similar,
Open, Show in folder and Copy path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from html import escape

from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPoint,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QKeySequence, QShortcut, QWheelEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListView,
    QMenu,
    QPushButton,
    QSlider,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ...core.actions.decisions import Decisions, Rule
from ...core.groups.protection import NO_PROTECTION, Protection
from ...core.records import DELETABLE_TIERS, TIERS, Group, Member
from ...report import printable
from .delegate import ThumbnailDelegate, cell_size
from .file_actions import add_file_actions
from .flow_layout import FlowLayout
from .group_model import (
    MEMBER_ROLE,
    TIER_LABELS,
    TIER_TIPS,
    GroupListModel,
    MemberModel,
    group_summary,
)
from .review_bar import ReviewBar
from .thumbnails import LARGEST_PX, SMALLEST_PX, THUMBNAIL_PX, ThumbnailCache

MAX_COMPARED = 6  # side by side, each still large enough to judge
SIZE_STEP_PX = 20  # one Ctrl + / Ctrl - or wheel notch


class ReviewPanel(QWidget):
    find_similar_requested = Signal(str)
    compare_requested = Signal(object)  # tuple[Member, ...]
    not_duplicates_requested = Signal(object)  # Group
    marks_changed = Signal()
    message = Signal(str)  # a short status-bar message
    thumbnail_size_changed = Signal(int)  # pixels, for the window to remember

    def __init__(self, thumbnails: ThumbnailCache, decisions: Decisions,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.decisions = decisions
        self.thumbnails = thumbnails
        self.groups_model = GroupListModel(thumbnails, decisions)
        self.members_model = MemberModel(thumbnails, decisions)
        self.protection = NO_PROTECTION
        self.roots: Callable[[], list[str]] = list  # the scanned folders (the window's)
        self._scanned_groups: tuple[Group, ...] = ()  # as the scan suggested their keepers
        self.bar = ReviewBar()
        self.bar.arrangement_changed.connect(self._show_tiers)
        self.bar.accept_all_requested.connect(self.accept_all_in_filter)
        self.groups_model.extra_tip = self.bar.time_tip

        # A one-column table, not a QListView: a list view lays out every
        # row again after each insert, calling the Python rowCount() twice
        # per row (250 ms stalls at 100k groups); a table's fixed-height
        # rows need no per-row layout at all.
        self.group_list = QTableView()
        self.group_list.setModel(self.groups_model)
        self.group_list.setIconSize(QSize(64, 64))
        self.group_list.horizontalHeader().hide()
        self.group_list.verticalHeader().hide()
        self.group_list.horizontalHeader().setStretchLastSection(True)
        rows = self.group_list.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(72)
        self.group_list.setShowGrid(False)
        self.group_list.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.group_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.group_list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.group_list.setAccessibleName("Groups")
        self.group_list.setMinimumWidth(200)
        self.group_list.setWordWrap(True)
        self.group_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.group_list.selectionModel().currentChanged.connect(self._group_changed)

        self.grid = QListView()
        self.grid.setModel(self.members_model)
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setGridSize(cell_size(THUMBNAIL_PX))
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.delegate = ThumbnailDelegate(self.grid)
        self.grid.setItemDelegate(self.delegate)
        self.grid.viewport().installEventFilter(self)  # Ctrl + wheel sizes the thumbnails
        self.grid.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.grid.customContextMenuRequested.connect(self._grid_menu)
        self.grid.doubleClicked.connect(lambda index: self.toggle(index.data(MEMBER_ROLE).path))
        self.grid.setAccessibleName("Images in the group")

        self.title = QLabel()
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setWordWrap(True)
        self.rule = QComboBox()
        for rule in Rule:
            self.rule.addItem(f"Keep {rule.value}", rule)
        self.apply_rule_button = QPushButton("Apply")
        self.apply_rule_button.setToolTip("Keep the rule's choice in this group; mark the rest")
        self.apply_rule_button.clicked.connect(self._apply_rule)
        self.apply_all_button = QPushButton("Apply to all groups")
        self.apply_all_button.setToolTip("Apply the rule to every exact-copy and near-duplicate "
                                         "group")
        self.apply_all_button.clicked.connect(self._apply_rule_to_all)
        # Similar shots are different photos: "Apply to all" leaves them
        # alone unless this is ticked (each time: it is never remembered).
        self.apply_to_shots = QCheckBox("and similar shots")
        self.apply_to_shots.setToolTip("Also apply the rule inside similar-shot groups "
                                       "(bursts, second takes): different photos")
        self.compare_button = QPushButton("Compare… (Space)")
        self.compare_button.clicked.connect(self.compare_selected)
        self.not_duplicates_button = QPushButton("Not duplicates")
        self.not_duplicates_button.setToolTip(
            "These are different photos: hide this group, also in later scans "
            "(Edit ▸ Undo “Not duplicates” or Edit ▸ Hidden groups… shows it again)")
        self.not_duplicates_button.clicked.connect(self._not_duplicates)

        header = FlowLayout()  # wraps in a narrow window instead of widening it
        header.addWidget(self.rule)
        header.addWidget(self.apply_rule_button)
        header.addWidget(self.apply_all_button)
        header.addWidget(self.apply_to_shots)
        header.addWidget(self.compare_button)
        header.addWidget(self.not_duplicates_button)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.title)  # its own row: a reason can be long
        right_layout.addLayout(header)
        right_layout.addWidget(self.grid, 1)
        splitter = QSplitter()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.bar.summary)  # "1,240 groups · 8.3 GB to free · …"
        left_layout.addWidget(self.group_list, 1)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setStretchFactor(0, 0)
        splitter.setSizes([320, 880])
        # Which tiers the list shows; all groups stay known (and marked) the same.
        self._all_groups: tuple[Group, ...] = ()
        self.tier_boxes: dict[str, QCheckBox] = {}
        tiers_row = QHBoxLayout()
        tiers_row.addWidget(QLabel("Show:"))
        for tier in TIERS:
            box = QCheckBox(TIER_LABELS[tier])
            box.setChecked(True)
            box.setToolTip(TIER_TIPS[tier])
            box.toggled.connect(lambda _on: self._show_tiers())
            self.tier_boxes[tier] = box
            tiers_row.addWidget(box)
        tiers_row.addStretch(1)
        # A maximised window on a large screen wants larger cards; a
        # netbook smaller ones. The window remembers the choice.
        self.size_slider = QSlider(Qt.Orientation.Horizontal)
        self.size_slider.setRange(SMALLEST_PX, LARGEST_PX)
        self.size_slider.setSingleStep(SIZE_STEP_PX)
        self.size_slider.setPageStep(2 * SIZE_STEP_PX)
        self.size_slider.setValue(THUMBNAIL_PX)
        self.size_slider.setMaximumWidth(140)
        self.size_slider.setAccessibleName("Thumbnail size")
        self.size_slider.setToolTip("Thumbnail size (Ctrl + and Ctrl -, or Ctrl and the "
                                    "mouse wheel over the pictures; Ctrl 0 resets it)")
        self.size_slider.valueChanged.connect(self.set_thumbnail_size)
        size_label = QLabel("Size:")
        size_label.setBuddy(self.size_slider)
        tiers_row.addWidget(size_label)
        tiers_row.addWidget(self.size_slider)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(tiers_row)
        layout.addWidget(self.bar)
        layout.addWidget(splitter, 1)  # the rows above keep their height

        for key, slot in (("K", self.keep_selected), ("D", self.delete_selected),
                          ("Space", self.compare_selected), ("Return", self.next_group),
                          ("Enter", self.next_group), ("A", self.accept_and_next),
                          ("Shift+A", lambda: self.accept_and_next(similar_shots=True))):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
        self._update_header()

    # -- thumbnail size ---------------------------------------------------------
    @property
    def thumbnail_px(self) -> int:
        return self.delegate.thumbnail_px

    def set_thumbnail_size(self, px: int) -> None:
        """Cards of ``px``-pixel pictures (clamped to the slider's range)."""
        px = max(SMALLEST_PX, min(LARGEST_PX, int(px)))
        if self.size_slider.value() != px:
            self.size_slider.setValue(px)  # comes back here through valueChanged
            return
        if px == self.delegate.thumbnail_px:
            return
        self.delegate.thumbnail_px = px
        self.thumbnails.set_size(px)
        self.grid.setGridSize(cell_size(px))
        self.grid.scrollTo(self.grid.currentIndex())  # the card in hand stays in sight
        self.thumbnail_size_changed.emit(px)

    def zoom(self, steps: int) -> None:
        """Larger (steps > 0) or smaller thumbnails, a step at a time."""
        self.set_thumbnail_size(self.thumbnail_px + steps * SIZE_STEP_PX)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (watched is self.grid.viewport() and event.type() == QEvent.Type.Wheel
                and isinstance(event, QWheelEvent)
                and event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            notches = event.angleDelta().y() // 120
            if notches:
                self.zoom(notches)
            return True  # Ctrl + wheel never scrolls
        return super().eventFilter(watched, event)

    # -- content --------------------------------------------------------------
    @property
    def groups(self) -> tuple[Group, ...]:
        """Every group, shown or of a hidden tier."""
        return self._all_groups

    def shown_tiers(self) -> set[str]:
        return {tier for tier, box in self.tier_boxes.items() if box.isChecked()}

    def set_groups(self, groups: Sequence[Group], keep_place: bool = True) -> None:
        """Show new groups (of the ticked tiers); with ``keep_place``, stay
        on the current group when it survives (a regroup), else start at
        the first."""
        self._scanned_groups = tuple(groups)
        self._all_groups = self.protection.apply(groups)  # a protected photo is the keeper
        self.bar.set_folders(self._all_groups, self.roots())
        for tier, box in self.tier_boxes.items():
            box.setText(f"{TIER_LABELS[tier]} ({sum(g.tier == tier for g in groups):,})")
        self._show_tiers(keep_place)

    def _show_tiers(self, keep_place: bool = True) -> None:
        shown = self.shown_tiers()
        groups = self.bar.arrange([g for g in self._all_groups if g.tier in shown],
                                  self.decisions, self.protection)
        current = self.members_model.group
        keep_path = current.reference if current and keep_place else None
        self.thumbnails.clear_pending()
        self.groups_model.set_groups(groups)
        row = self.groups_model.row_of(keep_path) if keep_path else None
        if row is None and groups:
            row = 0
        if row is not None:
            self.select_group(row)
        else:
            self.members_model.set_group(None)
            self._update_header()
        self._update_summary()

    def _update_summary(self) -> None:
        self.bar.update_summary(self.groups_model.groups, self.decisions,
                                len(self._all_groups))

    def set_protection(self, protection: Protection) -> None:
        """Protect other folders: see core.groups.protection."""
        dropped = self.decisions.set_protection(protection)
        self.protection = protection
        self.set_groups(self._scanned_groups)
        self.members_model.refresh_marks()  # the cards' "protected folder"
        if dropped:
            self.marks_updated()
            self.message.emit(f"{len(dropped)} mark(s) removed: those photos are protected.")

    def select_group(self, row: int) -> None:
        self.groups_model.ensure_fetched(row)
        index = self.groups_model.index(row)
        self.group_list.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.group_list.scrollTo(index)

    def current_group(self) -> Group | None:
        return self.members_model.group

    def _group_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        group = current.data(MEMBER_ROLE) if current.isValid() else None
        self.thumbnails.clear_pending()
        self.members_model.set_group(group)
        if group is not None:
            self.grid.setCurrentIndex(self.members_model.index(0))
        self._update_header()

    def _update_header(self) -> None:
        group = self.members_model.group
        total = len(self.groups_model.groups)
        has = group is not None
        for widget in (self.rule, self.apply_rule_button, self.compare_button,
                       self.not_duplicates_button):
            widget.setEnabled(has)
        self.apply_all_button.setEnabled(total > 0)
        if group is None:
            hidden = len(self._all_groups) - total
            self.title.setText("No groups" if not total and not hidden else
                               f"{hidden:,} group(s) of hidden kinds" if not total else "")
            return
        row = self.group_list.currentIndex().row() + 1
        # Why the ★ copy: only where a keeper is suggested (not similar shots).
        why = f"<br>★ {escape(printable(group.keeper_reason))}" if group.deletable and \
            group.keeper_reason else ""
        self.title.setText(f"<b>Group {row} of {total}</b> · <b>{TIER_LABELS[group.tier]}</b>"
                           f" · {escape(group.reason)}<br>{group_summary(group)}{why}")
        self.title.setToolTip(TIER_TIPS[group.tier])

    # -- decisions ---------------------------------------------------------------
    def selected_members(self) -> list[Member]:
        rows = sorted(i.row() for i in self.grid.selectionModel().selectedIndexes())
        if not rows and self.grid.currentIndex().isValid():
            rows = [self.grid.currentIndex().row()]
        return [self.members_model.member(r) for r in rows]

    def toggle(self, path: str) -> None:
        if not self.decisions.toggle(path) and not self.decisions.can_mark(path):
            self.message.emit(self._refusal(path))
        self.marks_updated()

    def _refusal(self, path: str) -> str:
        name = printable(os.path.basename(path))
        if self.decisions.is_protected(path):
            return f"{name} is in a protected folder: it is never marked."
        return f"At least one image of every group is kept: {name} stays."

    def keep_selected(self) -> None:
        for member in self.selected_members():
            self.decisions.keep(member.path)
        self.marks_updated()

    def delete_selected(self) -> None:
        refused = [m for m in self.selected_members() if not self.decisions.mark(m.path)]
        if refused:
            self.message.emit(self._refusal(refused[0].path))
        self.marks_updated()

    def marks_updated(self) -> None:
        """After marks changed (here or elsewhere): the cards, the list and the
        summary line show them, and marks_changed tells the window."""
        self.members_model.refresh_marks()
        self.groups_model.refresh_marks()
        self._update_summary()
        self.marks_changed.emit()

    def accept_and_next(self, similar_shots: bool = False) -> None:
        """A: keep the suggested keeper, mark the rest (never a protected
        photo), go to the next group. Shift+A: also in similar shots."""
        group = self.members_model.group
        if group is None:
            return
        if not self.decisions.accept_suggestion(group, similar_shots):
            self.message.emit("Similar shots are different photos: Shift+A accepts the "
                              "suggestion here too.")
            return
        self.marks_updated()
        self.next_group()

    def accept_all_in_filter(self) -> None:
        """Accept the suggestion in every listed group, after one confirmation."""
        done = self.bar.accept_all(self.groups_model.groups, self.decisions,
                                   self.apply_to_shots.isChecked())
        self.marks_updated()
        self.message.emit(done)

    def _chosen_rule(self) -> tuple[Rule, str | None] | None:
        rule: Rule = self.rule.currentData()
        folder = None
        if rule is Rule.IN_FOLDER:
            group = self.members_model.group
            start = os.path.dirname(group.reference) if group else ""
            folder = QFileDialog.getExistingDirectory(self, "Keep the images in this folder",
                                                      start)
            if not folder:
                return None
        return rule, folder

    def _apply_rule(self) -> None:
        group = self.members_model.group
        chosen = self._chosen_rule()
        if group is None or chosen is None:
            return
        if not self.decisions.apply_rule(group, *chosen):
            self.message.emit("No image of this group is in that folder.")
        elif not self.decisions.marked_in(group) and self.protection.protected_in(group):
            self.message.emit("Nothing marked: the others are in protected folders.")
        elif chosen[0] is Rule.IN_FOLDER and not self.decisions.marked_in(group):
            self.message.emit("Every image of this group is in that folder: all are kept.")
        self.marks_updated()

    def _apply_rule_to_all(self) -> None:
        chosen = self._chosen_rule()
        if chosen is None:
            return
        tiers = set(DELETABLE_TIERS)
        if self.apply_to_shots.isChecked():
            tiers.add("similar_shot")
        changed = self.decisions.apply_rule_to_all(*chosen, tiers=tiers)
        skipped = "" if "similar_shot" in tiers else " (similar shots left alone)"
        self.message.emit(f"Applied to {changed} group(s){skipped}.")
        self.marks_updated()

    def _not_duplicates(self) -> None:
        group = self.members_model.group
        if group is not None:
            self.not_duplicates_requested.emit(group)

    # -- navigation -----------------------------------------------------------------
    def next_group(self) -> None:
        row = self.group_list.currentIndex().row()
        if row + 1 < len(self.groups_model.groups):
            self.select_group(row + 1)
            self.grid.setFocus()

    def compare_selected(self) -> None:
        members = self.selected_members()
        group = self.members_model.group
        if len(members) < 2 and group is not None:
            members = list(group.members)
        if len(members) > MAX_COMPARED:
            self.message.emit(f"Comparing the first {MAX_COMPARED} of {len(members)} images: "
                              f"select up to {MAX_COMPARED} to compare others.")
        if len(members) >= 2:
            self.compare_requested.emit(tuple(members[:MAX_COMPARED]))

    def _grid_menu(self, pos: QPoint) -> None:
        index = self.grid.indexAt(pos)
        if not index.isValid():
            return
        member: Member = index.data(MEMBER_ROLE)
        menu = self.member_menu(member)
        menu.exec(self.grid.viewport().mapToGlobal(pos))

    def member_menu(self, member: Member) -> QMenu:
        """The right-click menu of one picture (public for tests)."""
        menu = QMenu(self)
        marked = self.decisions.is_marked(member.path)
        menu.addAction("Find similar", lambda: self.find_similar_requested.emit(member.path))
        menu.addSeparator()
        menu.addAction("Keep" if marked else "Mark for deletion",
                       lambda: self.toggle(member.path))
        menu.addAction("Compare group", self.compare_selected)
        menu.addSeparator()
        add_file_actions(menu, member.path, self.message.emit)
        return menu

