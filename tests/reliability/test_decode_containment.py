"""Decoding is contained (issue 17, findings 4 and 5; docs/reliability.md).

A hostile file can be any format Pillow knows, and a tiny one can ask for
minutes of CPU or gigabytes. Only the formats we read are opened, a
decode's cost is judged from the header before a pixel is decoded, the
costly ones run one at a time in a process the pool can kill, a decode
past its time budget is abandoned and reported, and a cancel ends a wait
on any decode at once.

The files of the findings are decoded in a child process, where wall time
and peak memory (ru_maxrss) are the child's own.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgdedupe.cli import EXIT_OK, main
from imgdedupe.core.errors import DecodeError, ScanCancelled
from imgdedupe.core.images import decode_pool
from imgdedupe.core.images.decode import DeferredDecode, decode_image, defer_slow_decodes
from imgdedupe.core.images.decode_pool import DecodePool, decode_and_hash
from imgdedupe.core.images.preprocess import decode_for_network
from imgdedupe.core.records import ErrorReason

from .fuzzing import POSTSCRIPT, black_rgba_png, progressive_jpeg, rle_bmp
from .support import SCAN_THRESHOLD, build_library, child_env, python

pytestmark = pytest.mark.reliability

# What the child prints: the decode's outcome, its time and the child's
# peak memory above what it held before decoding.
_DECODE_IN_CHILD = """
import json, resource, sys, time
from imgdedupe.core.errors import DecodeError
from imgdedupe.core.images.preprocess import decode_for_network
import imgdedupe.core.images.decode
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
try:
    decode_for_network(sys.argv[1])
    reason, detail = None, ""
except DecodeError as exc:
    reason, detail = exc.reason, exc.detail
seconds = time.perf_counter() - started
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"reason": reason, "detail": detail, "seconds": seconds, "grown_mb": grown}))
"""
CHILD_TIMEOUT_S = 30


def decode_in_child(path: Path, **env: str) -> dict:
    """Decode ``path`` in a fresh python; its whole process group is
    killed if it runs past CHILD_TIMEOUT_S (a Ghostscript it started too)."""
    child = subprocess.Popen([*python(), "-c", _DECODE_IN_CHILD, str(path)],
                             env=child_env(**env), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = child.communicate(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail(f"decoding {path.name} was still running after {CHILD_TIMEOUT_S} s")
    assert child.returncode == 0, err.decode(errors="replace")
    return json.loads(out)


@pytest.mark.skipif(sys.platform == "win32", reason="a fake gs shell script")
def test_postscript_named_jpg_is_reported_and_never_run(tmp_path):
    """Finding 4: Pillow opens files by content and ran Ghostscript on a
    60-byte .jpg, with no timeout. A fake gs stands in for a real one
    (which may not be installed): it records being run and never ends,
    like `{ } loop`. Ghostscript's temp files would land in TMPDIR."""
    bin_dir, temp, marker = tmp_path / "bin", tmp_path / "tmp", tmp_path / "gs-was-run"
    bin_dir.mkdir()
    temp.mkdir()
    fake_gs = bin_dir / "gs"
    fake_gs.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo 10.02.1; exit 0; }\n'
                       f'touch "{marker}"\nexec sleep 120\n', encoding="utf-8")
    fake_gs.chmod(0o755)
    photo = tmp_path / "IMG_0042.jpg"
    photo.write_bytes(POSTSCRIPT)
    assert len(POSTSCRIPT) == 60

    outcome = decode_in_child(photo, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                              TMPDIR=str(temp))
    assert outcome["reason"] == ErrorReason.UNSUPPORTED
    assert "EPS" in outcome["detail"] and "does not open" in outcome["detail"]
    assert outcome["seconds"] < 5.0
    assert not marker.exists()
    assert list(temp.iterdir()) == []  # no temp file left behind


def test_the_size_hint_does_not_open_postscript_either(tmp_path):
    from imgdedupe.core.images.decode import read_image_size

    photo = tmp_path / "IMG_0042.jpg"
    photo.write_bytes(POSTSCRIPT)
    assert read_image_size(str(photo)) is None  # its BoundingBox says 200x150


def test_bmp_rle_bomb_named_jpg_is_refused_from_its_header(tmp_path):
    """Finding 5: 2 KB of BMP RLE declaring 700000 x 250 pixels decoded in
    19.5-39 s and 533 MB, in Pillow's Python decoder holding the GIL."""
    bomb = tmp_path / "IMG_0043.jpg"
    bomb.write_bytes(rle_bmp(700_000, 250, rows=250))
    assert bomb.stat().st_size < 2100
    _refused_as_too_large_at_once(bomb, "700000x250")


def test_13000_pixel_png_is_refused_before_decoding(tmp_path):
    """Finding 5: a valid 657 KB 13000 x 13000 RGBA PNG decoded in full,
    1.36 GB for one file (1.9 GB with two decode threads)."""
    png = tmp_path / "panorama.png"
    png.write_bytes(black_rgba_png(13_000))
    assert png.stat().st_size < 700_000
    _refused_as_too_large_at_once(png, "13000x13000")


def _refused_as_too_large_at_once(path, dimensions: str) -> None:  # noqa: ANN001
    """Refused from its header: named too large with its size, within
    seconds and without the decoder's gigabytes."""
    outcome = decode_in_child(path)
    assert outcome["reason"] == ErrorReason.TOO_LARGE
    assert dimensions in outcome["detail"]
    assert outcome["seconds"] < 5.0
    assert outcome["grown_mb"] < 100


def test_progressive_jpeg_of_a_thousand_scans_is_refused(tmp_path):
    """Each scan is a pass over the whole picture: 97 KB of 1,010 scans
    over 12 Mpx took 8 s, 3,010 over 48 Mpx over two minutes."""
    path = tmp_path / "scans.jpg"
    path.write_bytes(progressive_jpeg((4000, 3000), 1000))
    assert path.stat().st_size < 120_000
    started = time.perf_counter()
    with pytest.raises(DecodeError) as caught:
        decode_image(str(path))
    assert caught.value.reason == ErrorReason.TOO_LARGE
    assert "1010 scans" in caught.value.detail
    assert time.perf_counter() - started < 2.0


def test_ordinary_rle_bmp_and_progressive_jpeg_still_decode(tmp_path):
    """The limits cost no real picture: a BMP RLE of rows of grey levels
    and a progressive JPEG of libjpeg's usual scans decode as before."""
    bmp = tmp_path / "rle.bmp"
    bmp.write_bytes(rle_bmp(640, 480))
    decoded = decode_image(str(bmp), target=480)
    assert (decoded.width, decoded.height, decoded.format) == (640, 480, "BMP")
    column = np.asarray(decoded.image)[:, 0, 0]
    assert column[0] == (479 * 5) % 256 and column[479] == 0  # stored bottom-up
    jpeg = tmp_path / "prog.jpg"
    jpeg.write_bytes(progressive_jpeg((4000, 3000), 0))
    assert decode_image(str(jpeg)).width == 4000


def _costly_png(path: Path) -> None:
    # 36 Mpx: over the quick limit (32 M), under the refusal (64 Mpx).
    Image.new("RGB", (6000, 6000), (40, 90, 160)).save(path, compress_level=1)


def test_a_costly_file_is_deferred_by_a_worker_and_decoded_alone(tmp_path):
    big = tmp_path / "big.png"
    _costly_png(big)
    outcome: list[BaseException | None] = []

    def in_a_worker() -> None:
        defer_slow_decodes()
        try:
            decode_image(str(big))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)

    worker = threading.Thread(target=in_a_worker)
    worker.start()
    worker.join()
    assert isinstance(outcome[0], DeferredDecode)
    assert decode_image(str(big)).width == 6000  # elsewhere it decodes


def pid_of_decoder(path: str) -> int:
    """Work for the pool: decode, then name the process that did it."""
    decode_and_hash(path)
    return os.getpid()


def decode_then_hang(path: str) -> object:
    """Work for the pool: files named *hang* decode, then never return
    (as a decoder caught in a loop); each records its process id first."""
    result = decode_and_hash(path)
    if "hang" in os.path.basename(path):
        Path(path + ".pid").write_text(str(os.getpid()), encoding="utf-8")
        time.sleep(float(os.environ.get("IMGDEDUPE_TEST_HANG_S", "120")))
    return result


@pytest.fixture
def photos(tmp_path, photo_maker):
    paths = [str(tmp_path / f"p{n}.jpg") for n in range(4)]
    for n, path in enumerate(paths):
        photo_maker(path, seed=n, size=(160, 120))
    return paths


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_costly_files_are_decoded_in_the_pools_own_process(tmp_path, photos, processes):
    """A 36 Mpx PNG is not decoded by a worker (two of them would hold
    0.5 GB) but in the pool's one killable process, with the same pixels."""
    big = str(tmp_path / "big.png")
    _costly_png(Path(big))
    paths = [photos[0], big, photos[1]]
    with DecodePool(processes, 2, work=pid_of_decoder) as pool:
        for path in paths:
            pool.submit(path, path)
        pids = [pool.result(path) for path in paths]
    workers = {pids[0], pids[2]}
    assert (os.getpid() in workers) == (not processes)
    assert pids[1] not in workers and pids[1] != os.getpid()
    with DecodePool(processes, 2) as pool:
        pool.submit("big", big)
        array = pool.result("big").array
    np.testing.assert_array_equal(array, decode_for_network(big).array)


def fail_to_start() -> None:
    raise RuntimeError("as spawn fails in a script without a __main__ guard")


def test_where_no_process_starts_a_costly_file_is_decoded_in_the_callers_thread(
        tmp_path, monkeypatch):
    def unstartable(workers: int, quick_only: bool = True) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=fail_to_start)

    monkeypatch.setattr(decode_pool, "_process_pool", unstartable)
    big = str(tmp_path / "big.png")
    _costly_png(Path(big))
    with DecodePool(False, 2) as pool:
        for key in ("first", "second"):
            pool.submit(key, big)
            np.testing.assert_array_equal(pool.result(key).array,
                                          decode_for_network(big).array)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_a_stuck_decode_is_abandoned_and_reported(tmp_path, photos, processes, monkeypatch):
    """A decode past the time budget costs its file (decode_timeout), not
    the scan: the other files decode, and so do later ones. A stuck
    process is killed; a stuck thread cannot be, and is left behind."""
    monkeypatch.setenv("IMGDEDUPE_TEST_HANG_S", "4" if not processes else "120")
    hang = str(tmp_path / "hang.jpg")
    Image.open(photos[0]).save(hang)
    paths = [photos[0], hang, photos[1], photos[2]]
    budget = 2.0
    reasons = []
    with DecodePool(processes, 2, work=decode_then_hang, time_budget_s=budget) as pool:
        pool.warm_up()
        for path in paths:
            pool.submit(path, path)
        started = time.monotonic()
        for path in paths:
            try:
                pool.result(path)
                reasons.append(None)
            except DecodeError as exc:
                reasons.append(exc.reason)
        elapsed = time.monotonic() - started
        pool.submit("later", photos[3])
        assert pool.result("later").array.shape == (224, 224, 3)
    assert reasons == [None, decode_pool.DECODE_TIMEOUT, None, None]
    assert budget <= elapsed < budget + 10
    if processes:
        _assert_gone(int(Path(hang + ".pid").read_text(encoding="utf-8")))


def _assert_gone(pid: int) -> None:
    """The process ``pid`` has ended (a zombie not yet reaped counts)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        status = Path(f"/proc/{pid}/status")
        if status.exists() and "\nState:\tZ" in status.read_text(encoding="utf-8"):
            return
        time.sleep(0.05)
    pytest.fail(f"the stuck decoder process {pid} is still running")


def test_a_stuck_costly_decode_is_killed_in_its_own_process(tmp_path, photos, monkeypatch):
    """A costly file (decoded alone in the pool's own process) that then
    hangs is killed there, and the next costly file gets a fresh one."""
    monkeypatch.setenv("IMGDEDUPE_TEST_HANG_S", "120")
    hang, big = str(tmp_path / "hang.png"), str(tmp_path / "big.png")
    _costly_png(Path(hang))
    _costly_png(Path(big))
    with DecodePool(False, 2, work=decode_then_hang, time_budget_s=2.0) as pool:
        for path in (photos[0], hang, big):
            pool.submit(path, path)
        assert pool.result(photos[0]).width == 160
        with pytest.raises(DecodeError) as caught:
            pool.result(hang)
        assert caught.value.reason == decode_pool.DECODE_TIMEOUT
        assert pool.result(big).width == 6000
    _assert_gone(int(Path(hang + ".pid").read_text(encoding="utf-8")))


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_cancel_ends_a_wait_on_a_stuck_decode_within_a_second(tmp_path, photos, processes,
                                                             monkeypatch):
    monkeypatch.setenv("IMGDEDUPE_TEST_HANG_S", "4" if not processes else "120")
    hang = str(tmp_path / "hang.jpg")
    Image.open(photos[0]).save(hang)
    cancel = threading.Event()
    pool = DecodePool(processes, 2, work=decode_then_hang, cancel=cancel)
    try:
        pool.submit("hang", hang)
        pool.submit("photo", photos[1])
        assert pool.result("photo").width == 160
        timer = threading.Timer(0.5, cancel.set)
        timer.start()
        with pytest.raises(ScanCancelled):
            pool.result("hang")
        waited = time.monotonic()
    finally:
        pool.close()
    closed = time.monotonic()
    assert cancel.is_set()
    assert closed - waited < 1.0
    if processes:
        _assert_gone(int(Path(hang + ".pid").read_text(encoding="utf-8")))


def test_a_scan_reports_every_hostile_file_and_groups_the_rest(tmp_path, photo_maker):
    """The files of findings 4 and 5 in a library, named like photos: the
    scan reports each with its reason, quickly, and finds every group."""
    root = tmp_path / "lib"
    expected = build_library(root, photo_maker)
    hostile = root / "hostile"
    hostile.mkdir()
    (hostile / "IMG_0042.jpg").write_bytes(POSTSCRIPT)
    (hostile / "IMG_0043.jpg").write_bytes(rle_bmp(700_000, 250, rows=250))
    (hostile / "panorama.png").write_bytes(black_rgba_png(13_000))
    (hostile / "scans.jpg").write_bytes(progressive_jpeg((4000, 3000), 1000))
    report = tmp_path / "r.json"
    started = time.monotonic()
    assert main(["scan", str(root), "--db", str(tmp_path / "c.db"), "--backbone",
                 "efficientnet-lite0", "--no-rotations", "--threshold", str(SCAN_THRESHOLD),
                 "--json", str(report), "-q"]) == EXIT_OK
    elapsed = time.monotonic() - started
    result = json.loads(report.read_text(encoding="utf-8"))
    reasons = {Path(e["path"]).name: e["reason"] for e in result["errors"]}
    assert reasons == {
        "IMG_0042.jpg": ErrorReason.UNSUPPORTED,
        "IMG_0043.jpg": ErrorReason.TOO_LARGE,
        "panorama.png": ErrorReason.TOO_LARGE,
        "scans.jpg": ErrorReason.TOO_LARGE,
        "truncated.jpg": ErrorReason.TRUNCATED,
        "notes.jpg": ErrorReason.NOT_AN_IMAGE,
    }
    assert {frozenset(m["path"] for m in g["members"]) for g in result["groups"]} == \
        {frozenset(group) for group in expected.values()}
    assert elapsed < 60  # the model's load included; the bomb alone took 19.5 s


def test_cancel_ends_a_scan_within_a_second_during_a_stuck_decode(tmp_path, monkeypatch):
    """The scan hands its cancel event to the decode pool: a decode that
    hangs no longer holds the scan (the README's promise: within a second)."""
    from imgdedupe.core.scan.config import ScanConfig
    from imgdedupe.core.scan.pipeline import run_scan

    library = tmp_path / "lib"
    library.mkdir()
    for n in range(3):
        Image.new("RGB", (64, 48), (40 * n, 90, 160)).save(library / f"p{n}.jpg")
    real = decode_pool.decode_for_network
    release = threading.Event()  # set at the end: no thread outlives the test

    def hang_on_one(path: str):  # noqa: ANN202
        if path.endswith("p1.jpg"):
            release.wait(30)
        return real(path)

    monkeypatch.setattr(decode_pool, "decode_for_network", hang_on_one)
    cancel = threading.Event()
    config = ScanConfig(roots=(str(library),), db_path=str(tmp_path / "c.db"),
                        backbone="efficientnet-lite0", decode_pool="threads")
    timer = threading.Timer(2.0, cancel.set)
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(ScanCancelled):
            for _ in run_scan(config, cancel):
                pass
        assert time.monotonic() - start < 2.0 + 1.5
    finally:
        timer.cancel()
        release.set()
