"""Runs scans for test_crash_scan.py and gets them SIGKILLed on cue.

Started once per test: it imports torch and loads EfficientNet-Lite0, then
forks one child per request, so a kill never pays for the model load again.
The parent never runs the network (a fork must not inherit a live torch
thread pool; one intra-op thread keeps the children free of one as well).

Each child runs one real ``run_scan`` and dies by SIGKILL either
* at a hook point: the ``at``-th time the scan reaches ``point`` (walking a
  file, hashing, decoding, a forward pass, a database batch half-written
  inside its transaction or just committed, a schema migration half-run,
  the pair cache half-written, grouping), sent by the child to itself:
  deterministic; or
* after ``delay`` seconds, sent by this parent: lands wherever it lands,
  and the child's last hook point says where.

Protocol: one JSON request per stdin line, one JSON reply per stdout line.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback

import torch

torch.set_num_threads(1)

import numpy as np  # noqa: E402

from imgdedupe import report  # noqa: E402
from imgdedupe.core.images import decode_pool  # noqa: E402
from imgdedupe.core.model import backbone as embed  # noqa: E402
from imgdedupe.core.model.loading import load_backbone  # noqa: E402
from imgdedupe.core.scan import grouping, library, pipeline  # noqa: E402
from imgdedupe.core.scan.config import ScanConfig  # noqa: E402
from imgdedupe.core.scan.events import ScanResult  # noqa: E402
from imgdedupe.core.scan.pipeline import run_scan  # noqa: E402
from imgdedupe.core.storage import db as db_module  # noqa: E402
from imgdedupe.core.storage.store import Store  # noqa: E402

# Which database batch a _write_batches call is, by its SQL.
_DB_POINTS = {
    "INSERT OR IGNORE INTO files": "db_files",
    "INSERT INTO files": "db_files",
    "UPDATE files SET content_hash": "db_hashes",
    "INSERT OR REPLACE INTO embeddings": "db_vectors",
    "UPDATE files SET width": "db_sizes",
    "UPDATE files SET error_reason": "db_errors",
}


class _Hooks:
    def __init__(self, kill: dict | None, markers: str | None) -> None:
        self.point = kill.get("point") if kill else None
        self.at = kill.get("at", 0) if kill else 0
        self.counts: dict[str, int] = {}
        self._markers = os.open(markers, os.O_WRONLY | os.O_CREAT | os.O_APPEND) \
            if markers else None

    def tick(self, point: str) -> bool:
        """Count one arrival at ``point``; True when this one is the kill."""
        n = self.counts[point] = self.counts.get(point, 0) + 1
        if self._markers is not None:
            os.write(self._markers, f"{point} {n}\n".encode())
        return point == self.point and n == self.at

    def die_if(self, point: str) -> None:
        if self.tick(point):
            os.kill(os.getpid(), signal.SIGKILL)

    def install(self) -> None:
        hooks = self
        real_walk = library.walk_batches

        def walk_batches(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            for batch in real_walk(*args, **kwargs):
                for _ in batch:
                    hooks.die_if("walk")  # a point per file found, as before batches
                yield batch

        real_hash = library.content_hash

        def content_hash(path: str) -> str:
            hooks.die_if("hash")
            return real_hash(path)

        real_decode = decode_pool.decode_for_network

        def decode_for_network(path: str):  # noqa: ANN202
            hooks.die_if("decode")
            return real_decode(path)

        real_embed = embed.Backbone.embed_turns

        def forward(self, images, quarter_turns):  # noqa: ANN001, ANN202
            hooks.die_if("embed")
            return real_embed(self, images, quarter_turns)

        real_write = Store._write_batches

        def write_batches(self, sql: str, rows) -> None:  # noqa: ANN001
            rows = list(rows)
            name = next((v for k, v in _DB_POINTS.items() if sql.startswith(k)), "db_other")
            if rows and hooks.tick(name + "_mid"):
                # Half the batch written inside its open transaction, then death.
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(sql, rows[: max(1, len(rows) // 2)])
                os.kill(os.getpid(), signal.SIGKILL)
            real_write(self, sql, rows)
            if rows:
                hooks.die_if(name + "_committed")

        real_savez = np.savez

        def savez(file, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            # storage.cachefile writes both caches: the pairs, then the scan memo.
            point = "scan_memo" if "scan-memo" in os.fspath(file) else "pairs_cache"
            if hooks.tick(point):
                # The temp file half-written, never renamed into place.
                real_savez(file, *args, **kwargs)
                with open(file, "r+b") as handle:
                    handle.truncate(max(1, os.path.getsize(file) // 2))
                os.kill(os.getpid(), signal.SIGKILL)
            return real_savez(file, *args, **kwargs)

        real_groups_at = pipeline.groups_at

        def groups_at(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            hooks.die_if("group")
            return real_groups_at(*args, **kwargs)

        real_statements = db_module._statements

        def statements(script: str):  # noqa: ANN202
            for statement in real_statements(script):
                # Inside the migration's transaction, some statements run.
                hooks.die_if("db_migrate")
                yield statement

        db_module._statements = statements
        library.walk_batches = walk_batches
        library.content_hash = content_hash
        grouping.content_hash = content_hash
        decode_pool.decode_for_network = decode_for_network
        embed.Backbone.embed_turns = forward
        Store._write_batches = write_batches
        np.savez = savez
        pipeline.groups_at = groups_at


def _child(request: dict, backbone: embed.Backbone) -> None:
    hooks = _Hooks(request.get("kill"), request.get("markers"))
    hooks.install()
    config = ScanConfig(roots=(request["root"],), db_path=request["db"],
                        backbone="efficientnet-lite0", device="cpu",
                        threshold=request.get("threshold", 95.0), rotations=False,
                        batch_size=4, decode_workers=2)
    result = None
    for event in run_scan(config, backbone=backbone):
        if isinstance(event, ScanResult):
            result = event
    assert result is not None
    if request.get("json"):
        with open(request["json"], "w", encoding="utf-8") as handle:
            report.write_json(result, handle)
    if request.get("counts"):
        with open(request["counts"], "w", encoding="utf-8") as handle:
            json.dump(hooks.counts, handle)


def _serve(request: dict, backbone: embed.Backbone) -> dict:
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _child(request, backbone)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    delay = request.get("delay")
    done, status = 0, 0
    if delay is not None:
        deadline = started + delay
        while time.perf_counter() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:  # finished before the delay ran out
                break
            time.sleep(0.002)
        else:
            os.kill(pid, signal.SIGKILL)
    if not done:
        _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return {"killed": killed, "rc": None if killed else os.waitstatus_to_exitcode(status),
            "wall_s": time.perf_counter() - started}


def main() -> None:
    backbone, _ = load_backbone("efficientnet-lite0", device="cpu")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        reply = _serve(json.loads(line), backbone)
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
