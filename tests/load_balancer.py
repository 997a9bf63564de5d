"""A load balancer for tests with several web hosts: TCP on 127.0.0.1, each new connection
to the next host in turn, and a host that refuses the connection (killed, not started yet)
skipped for the next one, as a balancer's health check would take it out.

It works below HTTP, so it adds no header: the hosts see 127.0.0.1 as the client, as they
would behind a balancer that faka is not told about (FAKA_PROXY_COUNT unset)."""

import itertools
import socket
import threading
from collections import Counter

CONNECT_TIMEOUT = 2.0
CHUNK = 65536


class LoadBalancer:
    """Round robin over `ports` (of 127.0.0.1; may be set after start, before the first
    connection), with failover. `refused` counts the connections each port refused."""

    def __init__(self, ports: tuple[int, ...] = ()):
        self.ports = list(ports)
        self.refused: Counter[int] = Counter()
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._closed = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LoadBalancer":
        threading.Thread(target=self._accept, name="load-balancer", daemon=True).start()
        return self

    def stop(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for conn in list(self._open):
                conn.close()
            self._open.clear()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _address = self._listener.accept()
            except OSError:  # closed by stop()
                return
            threading.Thread(target=self._forward, args=(client,), name="load-balancer-conn", daemon=True).start()

    def _backend(self) -> socket.socket | None:
        """A connection to the next host that takes one; None when none does."""
        first = next(self._turn)
        for i in range(len(self.ports)):
            port = self.ports[(first + i) % len(self.ports)]
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
            except OSError:
                with self._lock:
                    self.refused[port] += 1
                continue
            upstream.settimeout(None)
            return upstream
        return None

    def _forward(self, client: socket.socket) -> None:
        upstream = self._backend()
        if upstream is None:
            client.close()  # every host is down: the client sees the connection closed
            return
        with self._lock:
            self._open.update((client, upstream))
        pump = threading.Thread(target=self._pipe, args=(upstream, client), name="load-balancer-pipe", daemon=True)
        pump.start()
        self._pipe(client, upstream)
        pump.join()
        with self._lock:
            self._open.difference_update((client, upstream))
        client.close()
        upstream.close()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        """Copy until `source` ends, then end `target`'s direction too (half-close)."""
        try:
            while data := source.recv(CHUNK):
                target.sendall(data)
        except OSError:
            pass  # the other side went away (a killed host): the copy just ends
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass
