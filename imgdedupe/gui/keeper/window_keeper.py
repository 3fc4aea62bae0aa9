"""The window's keeper rules: the chain from the settings, handed to each
scan and regroup, and Edit ▸ Keeper rules…, which re-suggests the keepers
of the groups on show without a rescan.

A new chain changes only the suggestion (the ★ and its reason). Marks the
user made are never changed by it: a mark is a decision, and a silent
change of decisions before a move to the trash is the one thing a review
must not do. The status bar says how many groups now suggest another copy,
and how many of those the user's marks still contradict; "Keep the
suggested keeper" with Apply (or Apply to all) follows the new suggestion.

A mixin of MainWindow, like window_apply: it declares what it takes from
the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...core.groups.keeper_rules import KeeperChain, choose_keepers
from ...core.groups.orientation import graph_turned_copies
from ...core.images.photo_facts import FactsCache
from ...core.records import Group
from .rules_dialog import KeeperRulesDialog, chain_problem, load_chain, save_chain

if TYPE_CHECKING:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QLabel, QMainWindow

    from ...core.actions.decisions import Decisions
    from ...core.groups.graph import SimilarityGraph
    from ...core.scan.events import ScanResult
    from ..jobs.errors import WorkerError
    from ..jobs.scan_worker import ScanController
    from ..jobs.tasks import TaskRunner
    from ..review.review_panel import ReviewPanel

    _Window = QMainWindow
else:
    _Window = object


class KeeperMixin(_Window):
    settings: QSettings
    review: ReviewPanel
    decisions: Decisions
    result: ScanResult | None
    tasks: TaskRunner
    controller: ScanController
    _regroup_generation: int  # MainWindow.regroup's: the newest suggestion wins
    keeper_chain: KeeperChain
    keeper_facts: FactsCache
    _scanned_with: KeeperChain  # the chain of the scan that made the groups on show
    keeper_dialog: KeeperRulesDialog
    phase_label: QLabel

    if TYPE_CHECKING:
        def _show_groups(self, groups: tuple[Group, ...], keep_place: bool = True) -> None: ...
        def _on_failed(self, error: WorkerError) -> None: ...

    def load_keeper_rules(self) -> None:
        self.keeper_chain = load_chain(self.settings)
        problem = chain_problem(self.settings)
        if problem:  # said where the user looks, not only in the log
            self.phase_label.setText(f"The saved keeper rules could not be read ({problem}): "
                                     "the default rules are used (Edit ▸ Keeper rules…).")
        self.keeper_facts = FactsCache()  # EXIF read once per file across regroups
        self._scanned_with = self.keeper_chain
        self.scan_finished.connect(self._check_scan_keepers)  # type: ignore[attr-defined]

    def keeper_rules_for_scan(self) -> KeeperChain:
        """The chain a scan starting now uses (ScanConfig.keep_rules)."""
        self._scanned_with = self.keeper_chain
        return self.keeper_chain

    def with_keepers(self, groups: Sequence[Group], graph: SimilarityGraph | None
                     ) -> tuple[Group, ...]:
        """``groups`` with the keepers the current chain chooses; runs on a
        task thread (it may read EXIF)."""
        return choose_keepers(groups, self.keeper_chain, self.keeper_facts,
                              graph_turned_copies(graph, groups))

    def edit_keeper_rules(self) -> None:
        """Edit ▸ Keeper rules…"""
        self.keeper_dialog = KeeperRulesDialog(self.keeper_chain, self)
        self.keeper_dialog.accepted.connect(
            lambda: self.set_keeper_rules(self.keeper_dialog.chain()))
        self.keeper_dialog.open()

    def set_keeper_rules(self, chain: KeeperChain) -> None:
        """Keep ``chain`` in the settings and re-suggest the shown groups' keepers."""
        unchanged = chain == self.keeper_chain
        self.keeper_chain = chain
        save_chain(self.settings, chain)
        if not unchanged:
            self.resuggest_keepers()

    def resuggest_keepers(self) -> None:
        groups = self.review.groups
        if not groups:
            self.statusBar().showMessage(f"Keeper rules: {chain_words(self.keeper_chain)}. "
                                         "They choose the keepers of the next scan.", 6000)
            return
        graph = self.result.graph if self.result is not None else None
        self._regroup_generation += 1  # a regroup still running would show old keepers
        generation = self._regroup_generation

        def done(chosen: tuple[Group, ...]) -> None:
            if generation != self._regroup_generation:
                return
            self._show_groups(chosen)
            self.statusBar().showMessage(resuggested_message(groups, chosen, self.decisions),
                                         10_000)

        self.tasks.run("Choosing keepers", lambda: self.with_keepers(groups, graph), done,
                       self._on_failed)

    def _check_scan_keepers(self, _result: ScanResult) -> None:
        """The rules changed while the scan ran: its groups have the old keepers."""
        if self._scanned_with != self.keeper_chain:
            self._scanned_with = self.keeper_chain
            self.resuggest_keepers()


def chain_words(chain: KeeperChain) -> str:
    return str(chain).replace(",", ", ")


def resuggested_message(before: Sequence[Group], after: Sequence[Group],
                        decisions: Decisions) -> str:
    """How many groups now suggest another copy, and how many of those the
    user's marks contradict (the new keeper is marked for the trash)."""
    old = {g.reference: g.keeper for g in before}
    changed = [g for g in after if g.deletable and old.get(g.reference, g.keeper) != g.keeper]
    against = sum(decisions.is_marked(g.keeper) for g in changed)
    text = f"Keepers suggested again: {len(changed)} group(s) now suggest another copy."
    if against:
        text += (f" Your marks were left as they are; in {against} group(s) they mark the new "
                 "suggestion: “Keep the suggested keeper” with Apply follows it.")
    return text
