"""walk(): what it finds, what it skips, and that it never leaves the roots."""

from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from imgdedupe.core.files import walk as walk_module
from imgdedupe.core.files.walk import IMAGE_EXTENSIONS, has_image_extension, walk
from imgdedupe.core.records import ErrorReason, FileError, ImageFile

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conftest import PhotoTree

needs_symlinks = pytest.mark.skipif(
    sys.platform == "win32", reason="symlinks need a privilege on Windows"
)


def _images(results: list[ImageFile | FileError]) -> list[str]:
    return [r.path for r in results if isinstance(r, ImageFile)]


def _errors(results: list[ImageFile | FileError]) -> list[FileError]:
    return [r for r in results if isinstance(r, FileError)]


def _touch_image(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8 not decoded by the walk")
    return str(path)


def test_finds_exactly_the_expected_images(photo_tree: PhotoTree) -> None:
    results = list(walk([photo_tree.root]))
    images = _images(results)
    assert sorted(images) == sorted(photo_tree.expected)
    assert len(images) == len(set(images)), "a file was yielded twice"
    assert photo_tree.hidden_image not in images
    assert photo_tree.non_image not in images
    # The loop is the only problem in the tree; see test_symlink_loop_*.
    expected_errors = [photo_tree.loop_link] if photo_tree.loop_link else []
    assert [e.path for e in _errors(results)] == expected_errors


def test_image_records_carry_size_and_mtime(photo_tree: PhotoTree) -> None:
    by_path = {r.path: r for r in walk([photo_tree.root]) if isinstance(r, ImageFile)}
    record = by_path[photo_tree.bases[0]]
    st = os.stat(photo_tree.bases[0])
    assert (record.size, record.mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert os.path.isabs(record.path)
    # Empty files are the decoder's business: the walk still yields them.
    assert by_path[photo_tree.bad["empty"]].size == 0


def test_include_hidden_finds_hidden_entries(photo_tree: PhotoTree) -> None:
    images = _images(list(walk([photo_tree.root], include_hidden=True)))
    assert photo_tree.hidden_image in images
    assert set(images) == photo_tree.expected | {photo_tree.hidden_image}


def test_hidden_file_is_skipped(tmp_path: Path) -> None:
    visible = _touch_image(tmp_path / "a.jpg")
    hidden = _touch_image(tmp_path / ".b.jpg")
    assert _images(list(walk([tmp_path]))) == [visible]
    assert _images(list(walk([tmp_path], include_hidden=True))) == [hidden, visible]


@pytest.mark.parametrize(
    "folder", ["$RECYCLE.BIN", "System Volume Information", ".Trash-1000", "lost+found",
               "@eaDir", ".thumbnails", "__MACOSX"]
)  # fmt: skip
def test_system_folders_are_skipped_even_with_include_hidden(tmp_path: Path, folder: str) -> None:
    kept = _touch_image(tmp_path / "keep.jpg")
    _touch_image(tmp_path / folder / "thumb.jpg")
    assert _images(list(walk([tmp_path], include_hidden=True))) == [kept]
    # A system folder the user names as a root is walked all the same.
    assert _images(list(walk([tmp_path / folder]))) == [str(tmp_path / folder / "thumb.jpg")]


def test_extension_match_is_case_insensitive(tmp_path: Path) -> None:
    names = ["a.JPG", "b.Jpeg", "c.PNG", "d.HeIc", "e.AVIF", "f.TIFF"]
    paths = [_touch_image(tmp_path / name) for name in names]
    _touch_image(tmp_path / "g.txt")
    _touch_image(tmp_path / "jpg")  # no extension at all
    assert _images(list(walk([tmp_path]))) == paths


def test_has_image_extension() -> None:
    assert all(has_image_extension("x" + ext.upper()) for ext in IMAGE_EXTENSIONS)
    assert not has_image_extension("photo.jpg.txt")
    assert not has_image_extension(".jpg")  # a hidden file named ".jpg" has no extension
    assert has_image_extension(os.fsdecode(b"caf\xe9.JPEG"))


def test_order_is_deterministic_and_sorted(photo_tree: PhotoTree) -> None:
    first = list(walk([photo_tree.root]))
    second = list(walk([photo_tree.root]))
    assert first == second
    images = _images(first)
    # Files of one folder come out in name order.
    summer = [p for p in images if os.path.dirname(p) == os.path.dirname(photo_tree.bases[0])]
    assert summer == sorted(summer) and len(summer) == 2


def test_non_utf8_name_is_found_and_usable(photo_tree: PhotoTree) -> None:
    if photo_tree.non_utf8 is None:
        pytest.skip("this file system refuses non-UTF-8 names")
    images = _images(list(walk([photo_tree.root])))
    assert photo_tree.non_utf8 in images
    assert os.path.getsize(photo_tree.non_utf8) > 0  # surrogate escapes round-trip


@needs_symlinks
def test_symlink_loop_is_reported_once_and_survived(photo_tree: PhotoTree) -> None:
    results = list(walk([photo_tree.root]))
    loops = [e for e in _errors(results) if e.reason == ErrorReason.SYMLINK_LOOP]
    assert [e.path for e in loops] == [photo_tree.loop_link]
    assert "ancestor" in loops[0].detail
    assert set(_images(results)) == photo_tree.expected


@needs_symlinks
def test_self_referencing_symlink(tmp_path: Path) -> None:
    os.symlink("self.jpg", tmp_path / "self.jpg")
    os.symlink("selfdir", tmp_path / "selfdir")
    errors = _errors(list(walk([tmp_path])))
    assert [(e.path, e.reason) for e in errors] == [
        (str(tmp_path / "self.jpg"), ErrorReason.SYMLINK_LOOP)
    ]


@needs_symlinks
def test_links_leaving_the_roots_are_not_followed(photo_tree: PhotoTree) -> None:
    images = _images(list(walk([photo_tree.root])))
    assert photo_tree.outside_file_link not in images
    for path in images:
        real = os.path.realpath(path)
        assert os.path.commonpath([real, os.path.realpath(photo_tree.root)]) == os.path.realpath(
            photo_tree.root
        )


@needs_symlinks
def test_file_reachable_twice_is_yielded_once_under_its_real_path(photo_tree: PhotoTree) -> None:
    # With the parent as root, outside/far.jpg is inside; misc/elsewhere.jpg and
    # misc/elsewhere_dir/far.jpg lead to it too, and sort before it.
    parent = os.path.dirname(photo_tree.root)
    images = _images(list(walk([parent])))
    far = os.path.join(photo_tree.outside, "far.jpg")
    assert [p for p in images if os.path.realpath(p) == os.path.realpath(far)] == [far]
    assert len({os.path.realpath(p) for p in images}) == len(images)


@needs_symlinks
def test_prefix_check_is_path_wise(tmp_path: Path) -> None:
    # /x/ab must not accept /x/abc just because the string starts the same.
    root = tmp_path / "ab"
    target = _touch_image(tmp_path / "abc" / "pic.jpg")
    root.mkdir()
    os.symlink(target, root / "link.jpg")
    os.symlink(tmp_path / "abc", root / "linkdir")
    assert list(walk([root])) == []


@needs_symlinks
def test_link_inside_the_roots_is_followed(tmp_path: Path) -> None:
    real = _touch_image(tmp_path / "store" / "pic.jpg")
    os.symlink(tmp_path / "store", tmp_path / "a_view")
    os.symlink(real, tmp_path / "a_pic.jpg")
    assert _images(list(walk([tmp_path]))) == [real]
    # A root that is a link to a folder is walked under the spelling given.
    assert _images(list(walk([tmp_path / "a_view"]))) == [str(tmp_path / "a_view" / "pic.jpg")]


@needs_symlinks
def test_follow_symlinks_false_ignores_links(photo_tree: PhotoTree) -> None:
    results = list(walk([os.path.dirname(photo_tree.root)], follow_symlinks=False))
    assert _errors(results) == []  # the loop is not even looked at
    images = _images(results)
    assert all(not os.path.islink(p) for p in images)
    assert os.path.join(photo_tree.outside, "far.jpg") in images


@needs_symlinks
def test_broken_link_is_reported_vanished(tmp_path: Path) -> None:
    os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")
    errors = _errors(list(walk([tmp_path])))
    assert [(e.path, e.reason) for e in errors] == [
        (str(tmp_path / "dangling.jpg"), ErrorReason.VANISHED)
    ]


def test_file_vanishing_during_the_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _touch_image(tmp_path / "a.jpg")
    gone = _touch_image(tmp_path / "b.jpg")
    real_scandir = os.scandir

    class ListThenDelete:
        """os.scandir whose folder loses b.jpg once it is listed, before
        the walk looks at it (what another program does mid-scan)."""

        def __init__(self, path: str) -> None:
            self._it = real_scandir(path)

        def __enter__(self) -> Iterator[os.DirEntry[str]]:
            entries = list(self._it)
            if os.path.exists(gone):
                os.remove(gone)
            return iter(entries)

        def __exit__(self, *exc: object) -> None:
            self._it.close()

    monkeypatch.setattr("imgdedupe.core.files.walk.os.scandir", ListThenDelete)
    results = list(walk([tmp_path]))
    if sys.platform == "win32":
        pytest.skip("Windows lists sizes with the names: nothing left to vanish")
    assert _images(results) == [first]
    assert [(e.path, e.reason) for e in _errors(results)] == [(gone, ErrorReason.VANISHED)]


def test_unreadable_folder_is_reported_and_the_walk_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    _touch_image(locked / "x.jpg")
    keep = _touch_image(tmp_path / "open" / "y.jpg")
    real_scandir = os.scandir

    def scandir(path: str) -> object:
        # Simulated: the tests run as root, where chmod 000 stops nothing.
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(walk_module.os, "scandir", scandir)
    results = list(walk([tmp_path]))
    assert _images(results) == [keep]
    [error] = _errors(results)
    assert (error.path, error.reason) == (str(locked), ErrorReason.PERMISSION)
    assert "Permission denied" in error.detail


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root reads chmod 000 folders"
)
def test_unreadable_folder_for_real(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    _touch_image(locked / "x.jpg")
    locked.chmod(0)
    try:
        errors = _errors(list(walk([tmp_path])))
    finally:
        locked.chmod(stat.S_IRWXU)
    assert [(e.path, e.reason) for e in errors] == [(str(locked), ErrorReason.PERMISSION)]


def test_root_that_is_an_image_file(photo_tree: PhotoTree) -> None:
    assert _images(list(walk([photo_tree.bases[2]]))) == [photo_tree.bases[2]]


def test_root_that_is_another_file(photo_tree: PhotoTree) -> None:
    [error] = list(walk([photo_tree.non_image]))
    assert isinstance(error, FileError) and error.reason == ErrorReason.UNSUPPORTED


def test_missing_root(tmp_path: Path) -> None:
    keep = _touch_image(tmp_path / "a.jpg")
    missing = tmp_path / "nope"
    results = list(walk([missing, tmp_path]))
    assert _images(results) == [keep]
    [error] = _errors(results)
    assert (error.path, error.reason) == (str(missing), ErrorReason.VANISHED)
    assert "does not exist" in error.detail


def test_relative_root_gives_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _touch_image(tmp_path / "sub" / "a.jpg")
    monkeypatch.chdir(tmp_path)
    assert _images(list(walk(["sub/./"]))) == [path]


@pytest.mark.parametrize("nested_first", [False, True])
def test_overlapping_roots_yield_each_file_once(photo_tree: PhotoTree, nested_first: bool) -> None:
    nested = os.path.join(photo_tree.root, "2019")
    roots = [nested, photo_tree.root] if nested_first else [photo_tree.root, nested]
    images = _images(list(walk(roots)))
    assert sorted(images) == sorted(photo_tree.expected)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_named_like_an_image_is_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    assert list(walk([tmp_path])) == []  # reading it would block the scan


def test_cancel_stops_quietly(photo_tree: PhotoTree) -> None:
    cancel = threading.Event()
    cancel.set()
    assert list(walk([photo_tree.root], cancel=cancel)) == []
    cancel.clear()
    seen = []
    for item in walk([photo_tree.root], cancel=cancel):
        seen.append(item)
        cancel.set()  # stops at the next folder
    assert 0 < len(seen) < len(photo_tree.expected)
