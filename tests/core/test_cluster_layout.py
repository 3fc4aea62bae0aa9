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


def test_a_client_server_that_dies_at_birth_is_asked_for_again(monkeypatch):
    ray = pytest.importorskip("ray", reason="pip install 'imgdedupe[cluster]'")
    from imgdedupe.core.scan import cluster

    calls = []

    def init(**kwargs):  # noqa: ANN003, ANN202
        calls.append(kwargs["address"])
        if len(calls) == 1:  # what Ray Client says when the head's server died
            raise RuntimeError("Initialization failure from server:\npsutil.ZombieProcess")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(cluster, "_probe", lambda address: None)
    assert connect("ray://head:10001") is True
    assert calls == ["ray://head:10001"] * 2
    # Any other failure is the user's to see at once, and not tried again.
    calls.clear()
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(1) or (_ for _ in ()).throw(
        ConnectionError("token rejected")))
    with pytest.raises(ClusterError, match="token rejected"):
        connect("ray://head:10001")
    assert calls == [1]
    # A server that keeps dying: CLIENT_ATTEMPTS tries, then the error.
    calls.clear()
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(1) or (_ for _ in ()).throw(
        RuntimeError("Starting Ray client server failed. See the logs.")))
    with pytest.raises(ClusterError, match="Starting Ray client server failed"):
        connect("ray://head:10001")
    assert len(calls) == cluster.CLIENT_ATTEMPTS
