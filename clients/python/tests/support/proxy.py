"""A TCP proxy the tests control, to lose answers the hub has already given.

``drop(n)``: the next ``n`` connections forward the request, wait for the hub's
answer (so the hub has processed it), then close the client's side without
passing the answer on. ``stall(n)``: the same, but the answer is held until the
client gives up. ``cut()``: closes every open connection at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading

FORWARD, DROP, STALL = "forward", "drop", "stall"


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket, mode: str) -> None:
        self.client = client
        self.upstream = upstream
        self.mode = mode
        self.request = bytearray()

    def close(self) -> None:
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._plan: list[str] = []
        self._conns: list[_Conn] = []
        self.answers_lost = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop(self, n: int = 1) -> None:
        with self._lock:
            self._plan += [DROP] * n

    def stall(self, n: int = 1) -> None:
        with self._lock:
            self._plan += [STALL] * n

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def requests(self) -> list[bytes]:
        """What each connection's client sent, in connection order."""
        with self._lock:
            return [bytes(c.request) for c in self._conns]

    def cut(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                mode = self._plan.pop(0) if self._plan else FORWARD
                conn = _Conn(client, upstream, mode)
                self._conns.append(conn)
            threading.Thread(target=self._to_hub, args=(conn,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(conn,), daemon=True).start()

    def _to_hub(self, conn: _Conn) -> None:
        while True:
            data = _recv(conn.client)
            if not data:
                break
            with self._lock:
                conn.request += data
            try:
                conn.upstream.sendall(data)
            except OSError:
                break
        conn.close()

    def _to_client(self, conn: _Conn) -> None:
        while True:
            data = _recv(conn.upstream)
            if not data:
                break
            if conn.mode != FORWARD:
                with self._lock:
                    self.answers_lost += 1
                if conn.mode == DROP:
                    break
                # STALL: swallow the answer; the client times out and closes.
                while _recv(conn.upstream):
                    pass
                break
            try:
                conn.client.sendall(data)
            except OSError:
                break
        conn.close()


def _recv(s: socket.socket) -> bytes | None:
    try:
        return s.recv(65536)
    except OSError:
        return None
