"""One window per user and cache: a second launch hands over and exits.

A right-click "Find similar" or "Find duplicates in this folder" starts the
app again. Without this, each started a second window whose scan then
waited for the first one's lock and failed. Now the first launch holds a
QLockFile and listens on a QLocalServer; a later launch finds the lock
taken, sends its paths (JSON, one line) to the server, waits for the
answer and exits. A crash leaves a lock whose process is gone (QLockFile
calls it stale and takes it over) and a socket file, which the next first
launch removes before it listens: neither ever blocks a launch.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable

from PySide6.QtCore import QDir, QLockFile, QObject
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

HANDOVER_TIMEOUT_MS = 2000


def instance_name(db_path: str) -> str:
    """The server's name: one per user and cache database."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001  (no user name: one shared name still works)
        user = "user"
    key = hashlib.sha256(f"{user}\0{os.path.abspath(db_path)}".encode()).hexdigest()[:16]
    return f"imgdedupe-{key}"


def hand_over(name: str, request: dict) -> bool:
    """Send ``request`` to the running window; True when it answered."""
    deadline = time.monotonic() + HANDOVER_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:  # the first launch may still be starting to listen
        socket = QLocalSocket()
        socket.connectToServer(name)
        if socket.waitForConnected(200):
            socket.write(json.dumps(request).encode("utf-8") + b"\n")
            socket.flush()  # may write it all at once: then there is nothing to wait for
            if socket.bytesToWrite():
                socket.waitForBytesWritten(HANDOVER_TIMEOUT_MS)
            answered = socket.waitForReadyRead(HANDOVER_TIMEOUT_MS) and \
                bytes(socket.readAll().data()).startswith(b"ok")
            socket.disconnectFromServer()
            return answered
        time.sleep(0.05)
    return False


class SingleInstance(QObject):
    """Held by the first launch; ``on_request`` gets each later launch's
    request dict (``paths``, ``scan``, ``similar``)."""

    def __init__(self, name: str, on_request: Callable[[dict], None]) -> None:
        super().__init__()
        self.name = name
        self._on_request = on_request
        self._lock = QLockFile(os.path.join(QDir.tempPath(), name + ".lock"))
        self._lock.setStaleLockTime(0)  # stale only when its process is gone
        self.primary = self._lock.tryLock(100)
        self._server: QLocalServer | None = None
        if self.primary:
            QLocalServer.removeServer(name)  # a crashed first launch's socket file
            self._server = QLocalServer(self)
            self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
            if not self._server.listen(name):
                log.warning("single instance: cannot listen on %s: %s", name,
                            self._server.errorString())
            self._server.newConnection.connect(self._accept)

    def set_handler(self, on_request: Callable[[dict], None]) -> None:
        """Who gets the requests (the window, once it exists)."""
        self._on_request = on_request

    def _accept(self) -> None:
        assert self._server is not None
        while self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            socket.readyRead.connect(lambda socket=socket: self._read(socket))
            self._read(socket)  # what arrived before the signal was connected

    def _read(self, socket: QLocalSocket) -> None:
        if socket.property("answered") or not socket.canReadLine():
            return
        socket.setProperty("answered", True)
        try:
            request = json.loads(bytes(socket.readLine().data()).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            log.warning("single instance: an unreadable request was ignored")
            socket.disconnectFromServer()
            return
        socket.write(b"ok\n")
        socket.flush()
        self._on_request(request if isinstance(request, dict) else {})

    def release(self) -> None:
        if self._server is not None:
            self._server.close()
        if self.primary:
            self._lock.unlock()
