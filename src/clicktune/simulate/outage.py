"""A database outage on demand: a TCP forwarder between clicktune and its database that a test or
a benchmark cuts and restores, while the database server itself keeps serving everyone else.

Point the instance's database URL at `TcpForwarder.port` instead of the database's port, call
`restore()` to start forwarding, `cut()` for the outage (new connections are refused, live ones
dropped, as when the database restarts or the network fails) and `restore()` again to end it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from sqlalchemy.engine import make_url


class TcpForwarder:
    """Forwards 127.0.0.1:`port` to `target` while restored; `cut` refuses new connections and
    drops every live one. `port` stays the same across cuts, so clients reconnect to it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        """Start forwarding (again): listen on `port` and accept connections in a thread."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop forwarding: close the listener and every connection through it. Only a restored
        forwarder can be cut (AssertionError otherwise)."""
        with self._lock:
            listener, self._listener = self._listener, None
            assert listener is not None, "the forwarder is not forwarding: restore() it first"
            with contextlib.suppress(OSError):  # wakes the accepting thread (close alone does not)
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:  # the database itself refused: so does the forwarder
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut while this connection was accepted
                    client.close()
                    server.close()
                    return
                self._open |= {client, server}
            threading.Thread(target=self._forward, args=(client, server), daemon=True).start()

    def _forward(self, client: socket.socket, server: socket.socket) -> None:
        """Both directions until each side has closed, then forget the pair."""
        back = threading.Thread(target=self._pipe, args=(server, client), daemon=True)
        back.start()
        self._pipe(client, server)
        back.join()
        with self._lock:
            self._open -= {client, server}
        client.close()
        server.close()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def through_forwarder(url: str) -> Iterator[tuple[str, TcpForwarder]]:
    """`url` with the port of a restored `TcpForwarder` to its database; cut at the end."""
    parsed = make_url(url)
    forwarder = TcpForwarder((parsed.host or "127.0.0.1", parsed.port or 5432))
    forwarder.restore()
    try:
        yield parsed.set(port=forwarder.port).render_as_string(hide_password=False), forwarder
    finally:
        with contextlib.suppress(AssertionError):  # already cut
            forwarder.cut()
