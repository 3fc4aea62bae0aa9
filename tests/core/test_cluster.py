"""A scan on a Ray cluster (scan --cluster) leaves the cache a local scan leaves.

A local Ray cluster of two CPU workers is started in this process; the
scans run through the command line's ``--cluster auto``, which joins it.
The groups and tiers of the JSON report are compared with a local scan's
of the same folder, and again after the embedding actor's process is
killed mid-scan (a node lost: its batch runs again). A head node started
here with ``ray start`` and its Ray Client server takes the scan through
``--cluster ray://``, from a command in a process of its own.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageOps

from imgdedupe.cli import EXIT_OK, main
from imgdedupe.core.errors import ScanCancelled
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import Progress, ScanResult
from imgdedupe.core.scan.pipeline import run_scan

ray = pytest.importorskip("ray", reason="pip install 'imgdedupe[cluster]'")
psutil = pytest.importorskip("psutil")

pytestmark = [
    pytest.mark.slow,
    # Ray's own deprecations, raised on its import paths; not ours.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "resources" / "samples"
BACKBONE = "efficientnet-lite0"  # ships with imgdedupe: no download
EMBED_ACTOR = "EmbedActor"  # in the actor process's title (ray::MapWorker(...))


@pytest.fixture(scope="module")
def cluster():
    """Two CPU workers on this machine: one decodes, one embeds."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def edited_library(root: Path, count: int, seed: int = 7) -> Path:
    """``count`` small photos (320-640 px) edited from the samples:
    crops, resizes, brightness, mirror, re-encodes; near-duplicates of each
    other and of nothing else, plus the samples' broken file."""
    rng = random.Random(seed)
    sources = sorted(p for p in SAMPLES.rglob("*") if p.suffix in (".jpg", ".png", ".webp")
                     and p.name != "broken.jpg")
    root.mkdir(parents=True)
    for n in range(count):
        with Image.open(sources[n % len(sources)]) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        w, h = image.size
        left, top = rng.uniform(0, 0.15) * w, rng.uniform(0, 0.15) * h
        image = image.crop((int(left), int(top), int(w - rng.uniform(0, 0.15) * w),
                            int(h - rng.uniform(0, 0.15) * h)))
        side = rng.randrange(320, 641)
        image.thumbnail((side, side))
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
        if rng.random() < 0.2:
            image = ImageOps.mirror(image)
        image.save(root / f"edit_{n:03d}.jpg", quality=rng.randrange(60, 95))
    shutil.copy(SAMPLES / "Phone" / "broken.jpg", root / "broken.jpg")
    return root


def groups_and_tiers(report: dict) -> list:
    """What the user sees, in order: each group's tier, reason, keeper and
    members with their similarities (the same folders: the same paths)."""
    return report["groups"]


def scan_json(roots: list[Path], db: Path, out: Path, *extra: str) -> dict:
    code = main(["scan", *map(str, roots), "--db", str(db), "--backbone", BACKBONE,
                 "--json", str(out), "-q", *extra])
    assert code == EXIT_OK
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    base = tmp_path_factory.mktemp("cluster")
    samples = base / "samples"
    shutil.copytree(SAMPLES, samples, ignore=shutil.ignore_patterns("*.md"))
    return [samples, edited_library(base / "edits", 200)]


@pytest.fixture(scope="module")
def local_report(photos, tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("local")
    return scan_json(photos, base / "local.db", base / "local.json")


def test_cluster_scan_gives_the_local_scans_groups(cluster, photos, local_report, tmp_path):
    report = scan_json(photos, tmp_path / "cluster.db", tmp_path / "cluster.json",
                       "--cluster", "auto")
    assert report["stats"]["embedded"] == local_report["stats"]["embedded"] > 200
    assert [e["path"] for e in report["errors"]] == [e["path"] for e in local_report["errors"]]
    assert len(report["groups"]) >= 5  # the edits group: a real comparison
    assert groups_and_tiers(report) == groups_and_tiers(local_report)
    # The cache is a local scan's: a rescan here embeds nothing.
    again = scan_json(photos, tmp_path / "cluster.db", tmp_path / "again.json")
    assert again["stats"]["embedded"] == 0
    assert groups_and_tiers(again) == groups_and_tiers(local_report)


def _embed_actor_pids() -> list[int]:
    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if EMBED_ACTOR in cmdline and "MapWorker" in cmdline:
            pids.append(process.info["pid"])
    return pids


def test_a_worker_killed_mid_scan_costs_only_its_batch(cluster, photos, tmp_path):
    # The samples alone, in batches of 4: batches remain after the first,
    # and the suite stays short (the 200-photo scan is the test above).
    config = ScanConfig(roots=(str(photos[0]),), db_path=str(tmp_path / "k.db"),
                        backbone=BACKBONE, cluster="auto", batch_size=4)
    killed: list[tuple[int, int, int]] = []
    result = None
    for event in run_scan(config):
        if (isinstance(event, Progress) and event.phase == "embed" and event.done
                and not killed):
            pids = _embed_actor_pids()
            assert len(pids) == 1
            os.kill(pids[0], signal.SIGKILL)  # as a node lost: no clean exit
            killed.append((pids[0], event.done, event.total or 0))
        if isinstance(event, ScanResult):
            result = event
    assert killed and killed[0][1] < killed[0][2]  # killed with batches still to go
    local = _result(replace(config, db_path=str(tmp_path / "local.db"), cluster=None))
    assert result is not None and result.stats.embedded == local.stats.embedded
    assert result.groups == local.groups
    # What the cache holds is whole: a rescan embeds nothing and agrees.
    again = _result(replace(config, cluster=None))
    assert again.stats.embedded == 0 and again.groups == local.groups


def _result(config: ScanConfig) -> ScanResult:
    return [e for e in run_scan(config) if isinstance(e, ScanResult)][0]


def test_cancel_stops_a_cluster_scan_and_a_rescan_resumes(cluster, photos, tmp_path):
    # The samples alone, in batches of 4: several batches, quickly.
    config = ScanConfig(roots=(str(photos[0]),), db_path=str(tmp_path / "c.db"),
                        backbone=BACKBONE, cluster="auto", batch_size=4)
    cancel = threading.Event()
    stored = 0
    with pytest.raises(ScanCancelled):
        for event in run_scan(config, cancel):
            if isinstance(event, Progress) and event.phase == "embed" and event.done:
                stored, total = event.done, event.total or 0
                cancel.set()
    assert 0 < stored < total
    resumed = _result(config)
    local = _result(replace(config, db_path=str(tmp_path / "local.db"), cluster=None))
    # What the cancelled scan stored is kept (less a broken file of its
    # batch, whose error is kept instead): only the rest is embedded.
    assert resumed.stats.from_cache >= stored - 1 > 0
    assert resumed.stats.embedded + resumed.stats.from_cache == local.stats.embedded
    assert resumed.groups == local.groups


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_processes(sid: int) -> list[psutil.Process]:
    """The processes of session ``sid``: a head started in a session of
    its own, and everything it started (Ray's workers take process groups
    of their own, not sessions)."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == sid:
                found.append(process)
        except (ProcessLookupError, PermissionError):
            continue
    return found


@pytest.fixture
def client_head():
    """A Ray head on this machine with a Ray Client server, as a user
    starts one (``ray start --head``); yields its ray:// address, the
    environment a command needs to join it, and its temp dir.

    Its own ports and temp dir (short: Ray's socket paths must be), so it
    neither meets the in-process cluster of the tests above nor any other
    Ray here; token authentication with a token of its own, as Ray turns
    on by default when a token exists, and as a client must then send.
    Stopped in teardown, pass or fail: every process of the session
    ``ray start --block`` heads is killed; never ``ray stop``, which stops
    every Ray on the machine."""
    temp = tempfile.mkdtemp(prefix="rc", dir="/tmp")
    client_port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               # The nodes import imgdedupe: this checkout, as installed.
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])]))
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
         f"--port={free_port()}", f"--ray-client-server-port={client_port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, "ray start --head exited"
            try:
                socket.create_connection(("127.0.0.1", client_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "no Ray Client server after 120 s"
                time.sleep(0.5)
        yield f"ray://127.0.0.1:{client_port}", env, Path(temp)
    finally:
        # SIGKILL, as `ray stop --force` does, to all of the head's session:
        # a SIGTERM drains the node for up to 30 s first.
        left = _session_processes(head.pid)
        for process in left:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(left, timeout=10)
        head.wait(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)
        assert not _session_processes(head.pid), "a Ray process of the head outlived it"


def _client_server_logs(temp: Path) -> str:
    """The ends of the head's Ray Client server logs (the per-client
    servers' too), for a failure's message: the head is gone after it."""
    logs = sorted(temp.glob("session_*/logs/ray_client_server*.err"))
    return "".join(f"\n--- {log.name}\n{log.read_text()[-1500:]}" for log in logs)


def test_a_scan_through_ray_client_gives_the_local_scans_groups(client_head, photos,
                                                                local_report, tmp_path):
    address, env, temp = client_head
    out = tmp_path / "client.json"
    # A process of its own: a Ray Client driver, apart from this one's Ray.
    command = [sys.executable, "-m", "imgdedupe", "scan", *map(str, photos),
               "--db", str(tmp_path / "client.db"), "--backbone", BACKBONE,
               "--cluster", address, "--json", str(out), "-q"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == EXIT_OK, done.stderr[-3000:] + _client_server_logs(temp)
    report = json.loads(out.read_text())
    assert report["stats"]["embedded"] == local_report["stats"]["embedded"] > 200
    assert [e["path"] for e in report["errors"]] == [e["path"] for e in local_report["errors"]]
    assert len(report["groups"]) >= 5
    assert groups_and_tiers(report) == groups_and_tiers(local_report)
