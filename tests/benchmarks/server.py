"""The benchmarks' loopback server: precomputed bodies written with ``sendall``.

It ignores request bodies (no signatures, no nonces) and answers every POST with the
reply that the first path segment describes, whatever protocol path follows, so any
client can be pointed at it with ``base_url=``::

    http://127.0.0.1:PORT/s/kind=ndjson,n=100000,per=100,size=6/v3/chat-anonymous

- ``kind``: ``ndjson`` (FlowGpt), ``text`` (GPROChat), ``openai`` (Ylokh and every
  OpenAI client: SSE chunks, a finish chunk and ``[DONE]``) or ``mwai``
  (Chatgpt4Online: ``live`` events, then ``end`` with the full reply; its
  ``start_session`` answers ``{"restNonce": "n"}``).
- ``n`` deltas of ``size`` characters each.
- Bulk (``pace=0``, default): the body is precomputed once; ``per`` frames make one
  HTTP chunk, and chunks are written ``sendall`` by ``sendall`` about 64 KiB at a
  time, so even a body of tiny chunks leaves the server faster than any client reads.
- Paced (``pace`` seconds > 0): one event per write, each carrying the server's
  ``time.monotonic()`` at send time as ``<12345.678901>``, written by one pacing
  thread for all connections, each on its own schedule; the connection closes after
  the body. ``jitter`` (seconds) adds a random extra wait to every event's gap
  (uniform in ``[0, jitter]``, seeded by ``id``); ``id=K`` sends ``<K.i>`` for event
  ``i`` instead of the time stamp, so a client can check its text (:func:`paced_text`).
- ``close=1``: a close-delimited body (no length, no chunked coding) instead of chunked.

Run it in its own process with :func:`serve` (``python -m tests.benchmarks.server``
prints its port, and exits when its stdin closes or after ``--lifetime`` seconds).
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import select
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

Segments = List[Tuple[bytes, int]]  # a body as (piece, times repeated)
WRITE_SIZE = 65536  # bytes per sendall of a bulk body

OPENAI_CHUNK = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-3.5-turbo"}
CONTENT_TYPES = {
    "ndjson": "application/x-ndjson",
    "text": "text/plain; charset=utf-8",
    "openai": "text/event-stream; charset=utf-8",
    "mwai": "text/event-stream; charset=utf-8",
}


def parse_spec(segment: str) -> Dict[str, str]:
    spec = {"kind": "ndjson", "n": "100", "per": "1", "size": "6", "pace": "0", "close": "0", "jitter": "0"}
    spec.update(item.partition("=")[::2] for item in segment.split(",") if "=" in item)
    if spec["kind"] not in CONTENT_TYPES:
        raise ValueError(f"unknown kind {spec['kind']!r}")
    return spec


def piece(index: int, size: int) -> str:
    """The text of delta ``index``: ``size`` ASCII characters."""
    word = f"t{index} "
    return (word * (size // len(word) + 1))[:size]


def paced_text(stream_id: str, index: int) -> str:
    """The text of event ``index`` of a paced reply with ``id=stream_id``."""
    return f"<{stream_id}.{index}>"


def _openai(delta: dict, finish: Optional[str] = None) -> bytes:
    chunk = dict(OPENAI_CHUNK, choices=[{"index": 0, "delta": delta, "finish_reason": finish}])
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def frame(kind: str, text: str) -> bytes:
    """One event carrying ``text``, in the wire format of ``kind``."""
    if kind == "ndjson":
        return json.dumps({"event": "text", "data": text}).encode() + b"\n"
    if kind == "text":
        return text.encode()
    if kind == "openai":
        return _openai({"content": text})
    return b"data: " + json.dumps({"type": "live", "data": text}).encode() + b"\n\n"


def opening(kind: str) -> bytes:
    return _openai({"role": "assistant", "content": ""}) if kind == "openai" else b""


def closing(kind: str, reply: List[Tuple[str, int]]) -> Segments:
    """What follows the deltas; ``reply`` is the full text as (text, times repeated)."""
    if kind == "openai":
        return [(_openai({}, "stop") + b"data: [DONE]\n\n", 1)]
    if kind != "mwai":
        return []

    # The end event's data is the JSON string of {"reply": FULL}. JSON escapes character
    # by character, so the escape of a repeated text is the repeated escape: a 100 MB
    # reply is written as repeated pieces, never built whole.
    def esc(text: str) -> str:
        return json.dumps(text)[1:-1]

    body: Segments = [(b'data: {"type": "end", "data": "' + esc('{"reply": "').encode(), 1)]
    body += [(esc(esc(text)).encode(), count) for text, count in reply]
    return body + [(esc('"}').encode() + b'"}\n\n', 1)]


def bulk_body(spec: Dict[str, str]) -> Segments:
    """The whole reply of a bulk spec: opening, ``n/per`` identical chunks, closing."""
    kind, n, per, size = spec["kind"], int(spec["n"]), int(spec["per"]), int(spec["size"])
    if n % per:
        raise ValueError("n must be a multiple of per")
    texts = [piece(i, size) for i in range(per)]
    block = b"".join(frame(kind, text) for text in texts)
    return [(opening(kind), 1), (block, n // per)] + closing(kind, [("".join(texts), n // per)])


class Pacer(threading.Thread):
    """Writes paced events for every paced connection from one thread, each at its due time."""

    def __init__(self) -> None:
        super().__init__(name="pacer", daemon=True)
        self._heap: List[Tuple[float, int, "PacedReply"]] = []
        self._seq = itertools.count()
        self._ready = threading.Condition()

    def add(self, reply: "PacedReply") -> None:
        with self._ready:
            heapq.heappush(self._heap, (reply.due, next(self._seq), reply))
            self._ready.notify()

    def run(self) -> None:
        while True:
            with self._ready:
                while not self._heap:
                    self._ready.wait()
                due, _, reply = self._heap[0]
                delay = due - time.monotonic()
                if delay > 0:
                    self._ready.wait(delay)
                    continue
                heapq.heappop(self._heap)
            if reply.step():
                self.add(reply)


class PacedReply:
    """One paced response: ``n`` events ``pace`` seconds apart, stamped when sent."""

    def __init__(self, sock: socket.socket, spec: Dict[str, str]) -> None:
        self.sock, self.kind = sock, spec["kind"]
        self.left, self.pace = int(spec["n"]), float(spec["pace"])
        self.chunked = spec["close"] != "1"
        self.sent: List[str] = []
        self.id = spec.get("id")
        self.jitter = float(spec["jitter"])
        self.random = random.Random(self.id)
        self.due = time.monotonic() + self.gap()

    def gap(self) -> float:
        return self.pace + (self.random.uniform(0, self.jitter) if self.jitter else 0.0)

    def write(self, data: bytes) -> None:
        if data:
            self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)

    def step(self) -> bool:
        """Send the next event (and the end of the body after the last); False when done."""
        try:
            text = f"<{time.monotonic():.6f}>" if self.id is None else paced_text(self.id, len(self.sent))
            self.write(frame(self.kind, text))
            self.sent.append(text)
            self.left -= 1
            if self.left > 0:
                self.due += self.gap()
                return True
            for data, count in closing(self.kind, [("".join(self.sent), 1)]):
                self.write(data * count)
            if self.chunked:
                self.sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the client went away
        _close(self.sock)
        return False


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Server:
    """Accepts connections on 127.0.0.1 and answers each in its own thread."""

    def __init__(self, port: int = 0) -> None:
        self.listener = socket.create_server(("127.0.0.1", port), backlog=2048)  # 1,000 streams connect at once
        self.port = self.listener.getsockname()[1]
        self.pacer = Pacer()
        self._bodies: Dict[str, Segments] = {}
        self._lock = threading.Lock()

    def serve_forever(self) -> None:
        self.pacer.start()
        while True:
            sock, _ = self.listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._connection, args=(sock,), daemon=True).start()

    def _body(self, segment: str, spec: Dict[str, str]) -> Segments:
        with self._lock:
            if segment not in self._bodies:
                self._bodies[segment] = bulk_body(spec)
            return self._bodies[segment]

    def _connection(self, sock: socket.socket) -> None:
        reader = sock.makefile("rb")
        try:
            while self._answer(sock, reader):
                pass
        except (OSError, ValueError):
            pass
        finally:
            reader.close()

    def _answer(self, sock: socket.socket, reader) -> bool:
        """Answer one request; True to keep the connection for the next one."""
        request_line = reader.readline(65536)
        if not request_line:
            _close(sock)
            return False
        length = 0
        while True:  # headers: only the body's length matters
            line = reader.readline(65536)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        reader.read(length)
        path = request_line.split()[1].decode()
        if path.endswith("/start_session"):
            payload = b'{"success": true, "restNonce": "n"}'
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
            return True
        segment = path.split("/")[2]
        spec = parse_spec(segment)
        chunked = spec["close"] != "1"
        paced = float(spec["pace"]) > 0
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPES[spec['kind']]}\r\nCache-Control: no-cache\r\n"
        if chunked:
            head += "Transfer-Encoding: chunked\r\n"
        if paced or not chunked:
            head += "Connection: close\r\n"
        sock.sendall(head.encode() + b"\r\n")
        if paced:
            reply = PacedReply(sock, spec)
            reply.write(opening(spec["kind"]))
            self.pacer.add(reply)  # the pacer writes the rest and closes the socket
            return False
        for data, count in self._body(segment, spec):
            if data:
                wire = b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
                batch = max(1, WRITE_SIZE // len(wire))  # the client, not the server, sets the pace
                for _ in range(count // batch):
                    sock.sendall(wire * batch)
                sock.sendall(wire * (count % batch))
        if chunked:
            sock.sendall(b"0\r\n\r\n")
            return True
        _close(sock)
        return False


@contextmanager
def serve(lifetime: float = 3600.0) -> Iterator[str]:
    """Run the server in a separate process; yield its root URL; stop it afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.server", "--lifetime", str(lifetime)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None and stdout is not None
    try:
        ready, _, _ = select.select([stdout], [], [], 20)
        line = stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError("the benchmark server did not start")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        stdin.close()  # the server exits when its stdin closes
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        stdout.close()


def main() -> None:
    lifetime = float(sys.argv[sys.argv.index("--lifetime") + 1]) if "--lifetime" in sys.argv else 3600.0
    server = Server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("PORT", server.port, flush=True)
    # Stop when the parent closes our stdin (or dies), or after `lifetime` seconds.
    select.select([sys.stdin], [], [], lifetime)


if __name__ == "__main__":
    main()
