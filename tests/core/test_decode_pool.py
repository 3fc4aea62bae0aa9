"""The decode pool: threads or processes give the same pixels, errors cross
the process boundary with their reasons, and a decoder that crashes its
process costs one file, not the scan."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.images.decode_pool import DecodePool, choose_processes, decode_and_hash
from imgdedupe.core.records import ErrorReason
from imgdedupe.core.scan.config import ScanConfig


def crash_on_marked(path: str):  # noqa: ANN201
    """A decoder with a native bug: files named *crash* kill the process
    (as a segfault in a codec would). Module-level, so a spawned worker
    can import it by name."""
    if "crash" in os.path.basename(path):
        os.kill(os.getpid(), signal.SIGKILL)
    return decode_and_hash(path)


@pytest.fixture
def photos(tmp_path, photo_maker):  # noqa: ANN001
    paths = [str(tmp_path / f"p{n}.jpg") for n in range(6)]
    for n, path in enumerate(paths):
        photo_maker(path, seed=n)
    return paths


def decoded_by_threads_and_processes(paths: list[str]) -> dict[bool, list]:
    """Each path through a pool of threads (False) and of processes (True):
    what pool.result gave, or the DecodeError it raised."""
    results: dict[bool, list] = {}
    for processes in (False, True):
        with DecodePool(processes, 2) as pool:
            for path in paths:
                pool.submit(path, path)
            results[processes] = []
            for path in paths:
                try:
                    results[processes].append(pool.result(path))
                except DecodeError as exc:
                    results[processes].append(exc)
    return results


def test_processes_decode_the_same_pixels_as_threads(photos, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    paths = [*photos, str(tmp_path / "empty.jpg")]
    # An error pickled across keeps both fields.
    results = {kind: [(r.reason, r.detail) if isinstance(r, DecodeError) else r for r in found]
               for kind, found in decoded_by_threads_and_processes(paths).items()}
    threads, processes = results[False], results[True]
    assert threads[-1][0] == processes[-1][0] == ErrorReason.EMPTY
    assert threads[-1] == processes[-1]
    for a, b in zip(threads[:-1], processes[:-1], strict=True):
        assert a[0].shape == (224, 224, 3) and a[0].dtype == np.uint8
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:] == b[1:]


def test_a_crashing_decoder_costs_one_file(photos, tmp_path, photo_maker):
    crash, crash_too = str(tmp_path / "crash.jpg"), str(tmp_path / "crash2.jpg")
    photo_maker(crash, seed=99)
    photo_maker(crash_too, seed=98)
    paths = [*photos[:3], crash, photos[3], crash_too, *photos[4:]]
    decoded, failed = [], []
    with DecodePool(True, 2, work=crash_on_marked) as pool:
        for path in paths:
            pool.submit(path, path)
        for path in paths:
            try:
                pool.result(path)
                decoded.append(path)
            except DecodeError as exc:
                failed.append((path, exc.reason))
        # The pool still works after the crash.
        pool.submit("again", photos[0])
        assert pool.result("again")[0].shape == (224, 224, 3)
    assert failed == [(crash, ErrorReason.DECODER_CRASHED),
                      (crash_too, ErrorReason.DECODER_CRASHED)]
    assert decoded == photos


def test_a_scan_reports_the_crashing_file_and_finds_the_rest(tmp_path, photo_maker, monkeypatch):
    from test_pipeline import make_library, scan

    from imgdedupe.core.images import decode_pool

    make_library(tmp_path / "lib")
    photo_maker(tmp_path / "lib" / "crash.jpg", seed=5)
    monkeypatch.setattr(decode_pool, "decode_and_hash", crash_on_marked)
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"),
                        backbone="efficientnet-lite0", device="cpu", decode_pool="processes",
                        decode_workers=2)
    result, _ = scan(config)
    assert [(os.path.basename(e.path), e.reason) for e in result.errors] == \
        [("crash.jpg", ErrorReason.DECODER_CRASHED)]
    assert len(result.groups) == 4 and result.stats.embedded == 11


def test_processes_are_chosen_only_where_they_pay():
    assert not choose_processes("auto", "cpu", 100_000)
    assert not choose_processes("auto", "cuda", 10)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "cpu_count", lambda: 16)
        assert choose_processes("auto", "cuda", 10_000)  # a GPU machine's many cores
        patch.setattr(os, "cpu_count", lambda: 2)
        assert not choose_processes("auto", "cuda", 10_000)  # two cores: threads
    assert choose_processes("processes", "cpu", 1)
    assert not choose_processes("threads", "cuda", 10_000)
    with pytest.raises(ValueError):
        choose_processes("fibres", "cpu", 1)
