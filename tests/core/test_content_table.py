"""graph.ContentTable: a graph's contents by column, read as Content records."""

from __future__ import annotations

import pytest

from imgdedupe.core.groups.contents import Content, ContentTable
from imgdedupe.core.records import ImageFile


def _table() -> ContentTable:
    # Three contents: a lone file, two byte copies, a lone file of unknown size.
    return ContentTable(["/a.jpg", "/b.jpg", "/b (1).jpg", "/c.png"], [10, 20, 20, 30],
                        [1, 2, 3, 4], [0, 1, 3, 4], [640, 800, None], [480, 600, None],
                        [None, "b" * 32, None])


def test_contents_read_back_as_records():
    table = _table()
    assert len(table) == 3
    assert table[1] == Content((ImageFile("/b.jpg", 20, 2), ImageFile("/b (1).jpg", 20, 3)),
                               800, 600, "b" * 32)
    assert table[-1] == table[2] == Content((ImageFile("/c.png", 30, 4),), None, None, None)
    assert table[0:2] == (table[0], table[1])
    assert table == tuple(table) and list(table) == [table[0], table[1], table[2]]
    with pytest.raises(IndexError):
        table[3]


def test_copied_and_digests():
    table = _table()
    assert list(table.copied()) == [table[1]]
    known = table.with_digests({"/c.png": "c" * 32, "/nowhere.jpg": "d" * 32})
    assert known.digests() == [None, "b" * 32, "c" * 32]
    assert table.digests() == [None, "b" * 32, None]  # the original is unchanged


def test_columns_must_agree():
    with pytest.raises(ValueError, match="disagree"):
        ContentTable(["/a.jpg"], [1], [1], [0, 2], [None], [None], [None])
