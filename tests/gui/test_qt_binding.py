"""Guards against a broken Qt binding: the app must not die of it mid-scan.

PySide6-Essentials 6.12.0 on Python 3.11 drops a reference to None every
time a Python model's data() returns None to C++. Views call data()
thousands of times a second, so None's count reaches zero and the process
aborts ("Fatal Python error: none_dealloc") minutes into a scan. The check
runs in a child process because the failure is an abort, not an exception.
"""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = r"""
import sys
from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtWidgets import QApplication
from imgdedupe.core.actions.decisions import Decisions
from imgdedupe.core.records import Group, Member
from imgdedupe.gui.review.group_model import BROKEN_ROLE, MemberModel
from imgdedupe.gui.review.thumbnails import ThumbnailCache

app = QApplication([])
members = tuple(Member(f"/nowhere/{n}.jpg", 90.0, None, 1, 1, 1, 0) for n in range(3))
model = MemberModel(ThumbnailCache(), Decisions())
model.set_group(Group("similar", members, members[0].path, "near_duplicate", "test"))
proxy = QSortFilterProxyModel()  # C++ calls our data(), as a view does
proxy.setSourceModel(model)
index = proxy.index(0, 0)
before = sys.getrefcount(None)
for _ in range(50_000):
    proxy.data(index, Qt.ItemDataRole.UserRole + 99)  # a role we answer with None
    proxy.data(index, BROKEN_ROLE)
drift = before - sys.getrefcount(None)
print("drift", drift)
sys.exit(0 if abs(drift) < 1000 else 3)
"""


def test_returning_none_from_data_keeps_nones_refcount() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, (
        "the Qt binding loses references to None (PySide6 6.12.0?): "
        f"{done.stdout}{done.stderr[-2000:]}")
