"""Moves files to a trash for test_crash_apply.py and dies on cue.

Usage: apply_driver.py SPEC.json. The spec holds the database, the trash
(freedesktop under ``data_home``, or a FolderTrash at ``folder_root``), the
groups as the scan saw them and the marked paths. With ``kill`` =
{"point": P, "at": N} the process SIGKILLs itself the N-th time it reaches
P; without it the test kills it from outside after a delay. A member
may list its "companions" (path, size, mtime_ns, kind): they move with it. It prints
"go" just before the batch starts, so delays count from there.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from imgdedupe.core.actions import trash_backends as trash
from imgdedupe.core.actions import trashing as actions
from imgdedupe.core.actions.trashing import FolderTrash, FreedesktopTrash, SeenFile, plan_deletions
from imgdedupe.core.records import Companion, Member
from imgdedupe.core.storage.store import Store


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    kill = spec.get("kill") or {}
    counts: dict[str, int] = {}

    def reach(point: str) -> None:
        counts[point] = counts.get(point, 0) + 1
        if kill.get("point") == point and counts[point] == kill["at"]:
            os.kill(os.getpid(), signal.SIGKILL)

    real_pending, real_expect = Store.journal_pending, Store.journal_expect
    real_set, real_move = Store.journal_set, trash.move_no_replace

    def journal_pending(self, *args):  # noqa: ANN001, ANN002, ANN202
        row = real_pending(self, *args)
        reach("pending")  # journalled, nothing reserved or moved yet
        return row

    def journal_expect(self, row_id, expected):  # noqa: ANN001, ANN202
        reach("reserved")  # a free trash name is chosen, not yet journalled
        real_expect(self, row_id, expected)
        reach("expected")  # ... and journalled; the file has not moved

    def move_no_replace(src, dst):  # noqa: ANN001, ANN202
        real_move(src, dst)
        reach("moved")  # moved; the journal still says pending

    def journal_set(self, row_id, state, trash_path=None, reason=None):  # noqa: ANN001, ANN202
        if state == "done":
            counts["done_uncommitted"] = counts.get("done_uncommitted", 0) + 1
            if kill.get("point") == "done_uncommitted" \
                    and counts["done_uncommitted"] == kill["at"]:
                # 'done' written inside its transaction, never committed.
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("UPDATE action_journal SET state = 'done' WHERE id = ?",
                                   (row_id,))
                os.kill(os.getpid(), signal.SIGKILL)
        real_set(self, row_id, state, trash_path, reason)
        if state == "done":
            reach("done")

    real_claim = trash._MoveReservation._claim

    def claim(self, sidecar):  # noqa: ANN001, ANN202
        real_claim(self, sidecar)
        reach("claimed")  # the .trashinfo is written; the file has not moved

    trash._MoveReservation._claim = claim
    Store.journal_pending = journal_pending
    Store.journal_expect = journal_expect
    Store.journal_set = journal_set
    trash.move_no_replace = move_no_replace

    if spec.get("volume"):  # FolderTrash goes to the top of this "filesystem"
        trash.mount_point = lambda path: spec["volume"]
    groups = [[_member(m) for m in group] for group in spec["groups"]]
    plan = plan_deletions(groups, set(spec["marked"]))
    if spec.get("data_home"):
        backend = FreedesktopTrash(spec["data_home"])
    else:
        backend = FolderTrash(spec["folder_root"])
    with Store(spec["db"]) as store:
        print("go", flush=True)
        result = actions.trash_files(store, plan, backend, description="crash test")
    print(json.dumps({"moved": len(result.with_status("moved"))}), flush=True)


def _member(m: dict) -> SeenFile | Member:
    """A member as the scan saw it; one with companions is a Member (they
    move with it, test_crash_companions.py)."""
    companions = m.pop("companions", None)
    if not companions:
        return SeenFile(**m)
    return Member(m["path"], 100.0, None, m["size"], None, None, m["mtime_ns"],
                  tuple(Companion(**c) for c in companions))


if __name__ == "__main__":
    main()
