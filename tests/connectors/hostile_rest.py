"""A hostile REST source for tests: a real HTTP server on 127.0.0.1 whose answers are scripted misbehaviour.

::

    with hostile(alternating_cursor()) as (base_url, seen):
        RestConnector(base_url, path="/changes", pagination="cursor", key="id", ...)
    seen   # the query of every request, in order

Each behaviour is a function ``(query, send) -> None`` answering one GET; ``send`` is the raw socket writer.
The endless ones stop when the client hangs up or the server is shut down, so no test leaves a thread behind.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Behaviour = Callable[[dict[str, str], "Answer"], None]


class Answer:
    """Writes one HTTP/1.1 answer on the raw connection, piece by piece; ``alive`` turns false when to stop."""

    def __init__(self, handler: BaseHTTPRequestHandler, stopping: threading.Event):
        self._handler, self._stopping = handler, stopping

    @property
    def alive(self) -> bool:
        return not self._stopping.is_set()

    def head(self, status: int = 200, **headers: str) -> None:
        self._handler.send_response(status)
        self._handler.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self._handler.send_header(name.replace("_", "-"), value)
        self._handler.end_headers()

    def write(self, data: bytes) -> None:
        self._handler.wfile.write(data)
        self._handler.wfile.flush()

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the server stops first; whether to go on."""
        return not self._stopping.wait(seconds)

    def json(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.head(status, Content_Length=str(len(data)))
        self.write(data)


def items(start: int, n: int) -> list[dict]:
    """``n`` well-formed records, keys ``H<start>`` on."""
    return [{"id": f"H{i:07d}", "name": f"企业{i}", "updated_at": f"2026-01-01T00:00:{i % 60:02d}"}
            for i in range(start, start + n)]


def alternating_cursor() -> Behaviour:
    """Cursor pages whose next cursor goes A, B, A, B …: each page new records, the cursors a loop."""
    def answer(query: dict[str, str], out: Answer) -> None:
        at = {"": 0, "A": 1, "B": 2}[query.get("cursor", "")]
        out.json({"items": items(at * 10, 10), "next_cursor": "B" if at == 1 else "A"})
    return answer


def fresh_cursor_same_items() -> Behaviour:
    """A new cursor on every answer, always with the same records."""
    def answer(query: dict[str, str], out: Answer) -> None:
        out.json({"items": items(0, 10), "next_cursor": secrets.token_hex(8)})
    return answer


def trickle(every: float) -> Behaviour:
    """A 200 whose body arrives one byte every ``every`` seconds, forever (it declares a megabyte)."""
    def answer(query: dict[str, str], out: Answer) -> None:
        out.head(Content_Length=str(1 << 20))
        out.write(b'{"items": [')
        while out.wait(every):
            out.write(b" ")
    return answer


def endless_chunked(chunk: int = 64 << 10) -> Behaviour:
    """A chunked 200 that never ends: an items list growing ``chunk`` bytes at a time."""
    record = json.dumps(items(0, 1)[0]).encode() + b","
    piece = record * (chunk // len(record))

    def answer(query: dict[str, str], out: Answer) -> None:
        out.head(Transfer_Encoding="chunked")
        data = b'{"items": [' + piece
        while out.alive:
            out.write(b"%x\r\n%s\r\n" % (len(data), data))
            data = piece
    return answer


def declared_huge() -> Behaviour:
    """A 200 declaring a 10 GB body (and sending a little)."""
    def answer(query: dict[str, str], out: Answer) -> None:
        out.head(Content_Length=str(10 << 30))
        out.write(b'{"items": []')
    return answer


def oversized_page(n: int) -> Behaviour:
    """Pages of ``n`` records, whatever size was asked for."""
    def answer(query: dict[str, str], out: Answer) -> None:
        page = int(query.get("page", 1))
        out.json({"items": items((page - 1) * n, n), "total": 10 * n})
    return answer


def body(answer_body: Any, status: int = 200) -> Behaviour:
    """The same JSON answer to every request."""
    def answer(query: dict[str, str], out: Answer) -> None:
        out.json(answer_body, status)
    return answer


@contextmanager
def hostile(behaviour: Behaviour) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Serve ``behaviour`` on a free port; yields (base URL, the queries seen), and stops every answer on exit."""
    stopping = threading.Event()
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
            query = dict(parse_qsl(urlsplit(self.path).query))
            seen.append(query)
            try:
                behaviour(query, Answer(self, stopping))
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client hung up: what a limit should make it do

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
