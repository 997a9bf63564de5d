"""The guarded POST of faka/messaging/outbound.py against servers that misbehave."""

import socket
import threading
import time

from faka.messaging import outbound
from faka.messaging.push_providers import _answer_json
from faka.orders.remote_delivery import read_keys


def dripping_server(stop: threading.Event) -> int:
    """A server that answers 200 with a long body, one byte every 0.2 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        conn, _addr = listener.accept()
        with conn, listener:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b" ")
                except OSError:
                    return
                time.sleep(0.2)

    threading.Thread(target=serve, daemon=True).start()
    return port


def test_a_server_that_drips_its_answer_is_a_failed_attempt_not_a_held_worker(app):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    stop = threading.Event()
    port = dripping_server(stop)
    try:
        with app.app_context():
            answer = outbound.post(f"http://127.0.0.1:{port}/", b"{}", {"Content-Type": "application/json"}, timeout=1)
    finally:
        stop.set()
    # Each byte came well within the socket timeout; the whole answer did not.
    assert answer.status is None and not answer.ok
    assert answer.error.startswith("TimeoutError")


def test_an_answer_nested_too_deep_for_the_parser_is_not_json():
    keys, error = read_keys(b"[" * 5000 + b"]" * 5000, 1)
    assert keys is None and "not JSON" in error


def test_a_push_provider_answer_nested_too_deep_is_no_answer():
    assert _answer_json(outbound.Answer(200, b"[" * 5000 + b"]" * 5000, None)) is None
