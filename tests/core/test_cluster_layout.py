"""scan --cluster without a cluster: how the work is laid out, and the
message when Ray is missing (no Ray started here)."""

from __future__ import annotations

import re
import socket
import sys
import time

import pytest

from imgdedupe.core.scan.cluster import ClusterError, Layout, connect, layout_for


def test_one_actor_per_gpu_with_the_gpu_batch():
    assert layout_for({"CPU": 32.0, "GPU": 4.0}) == Layout(4, "cuda", 1, 128)


def test_cpu_actors_leave_a_quarter_of_the_cpus_to_decoding():
    assert layout_for({"CPU": 2.0}) == Layout(1, "cpu", 1, 16)
    assert layout_for({"CPU": 64.0}) == Layout(12, "cpu", 4, 16)
    assert layout_for({"CPU": 8.0}, batch_size=32) == Layout(1, "cpu", 4, 32)


def test_without_ray_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ClusterError, match=r"imgdedupe\[cluster\]"):
        connect("auto")


def test_a_ray_client_address_where_nothing_listens_fails_in_seconds():
    pytest.importorskip("ray", reason="pip install 'imgdedupe[cluster]'")
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"ray://127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(ClusterError, match=re.escape(f"{address!r}: nothing answers")):
        connect(address)
    assert time.monotonic() - started < 10  # Ray Client alone tries for 30 s
