"""A scripted raw HTTP/1.1 server for transport tests: byte-exact answers, keep-alive,
and a record of which connection carried which request.

Unlike the emulator it speaks no protocol: each request, on whatever connection it
arrives, gets the next scripted answer, a list of steps (bytes to send, or a float to
wait). So a test can tell whether a connection was reused, and whether a reply reached
the call that asked for it.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import List, Sequence, Union

Step = Union[bytes, float]


@dataclass
class Seen:
    """One request the server read: on which connection (0, 1, ...), its head and body."""

    connection: int
    head: bytes
    body: bytes

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    def header(self, name: str) -> str:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return ""


def text_reply(text: str, *, status: str = "200 OK", content_type: str = "text/plain; charset=utf-8") -> bytes:
    """A whole HTTP/1.1 response with a Content-Length body."""
    body = text.encode()
    return b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        status.encode(),
        content_type.encode(),
        len(body),
        body,
    )


class ScriptedServer:
    """Serve ``answers`` in order, one per request, over any number of keep-alive
    connections. An answer past the script gets a 500. ``close_after`` answers close
    their connection afterwards. Use as a context manager; ``base_url``, ``seen``."""

    def __init__(self, answers: Sequence[Sequence[Step]], *, close_after: Sequence[int] = (), hold: float = 10.0) -> None:
        self.answers = [list(answer) for answer in answers]
        self.close_after = set(close_after)
        self.hold = hold  # seconds a connection may stay idle before the server closes it
        self.seen: List[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._conns: List[socket.socket] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """How many connections the server accepted."""
        return len(self._conns)

    def __enter__(self) -> "ScriptedServer":
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._threads[0].join(10)  # the accept loop: no connection comes after this
        with self._lock:
            for conn in self._conns:  # wakes a handler blocked in recv
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self._threads[1:]:
            thread.join(10)
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                conn.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                index = len(self._conns)
                self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn, index), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read_request(self, conn: socket.socket, buffered: bytearray) -> "Seen | None":
        idle = 0.0
        while b"\r\n\r\n" not in buffered:
            try:
                data = conn.recv(65536)
            except socket.timeout:
                idle += 0.2
                if self._stop.is_set() or idle >= self.hold:
                    return None
                continue
            if not data:
                return None
            buffered += data
        head, _, rest = bytes(buffered).partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(rest) < length:
            try:
                data = conn.recv(65536)
            except socket.timeout:
                if self._stop.is_set():
                    return None
                continue
            if not data:
                return None
            rest += data
        buffered[:] = rest[length:]
        return Seen(-1, head, rest[:length])

    def _serve(self, conn: socket.socket, index: int) -> None:
        conn.settimeout(0.2)
        buffered = bytearray()
        try:
            while not self._stop.is_set():
                request = self._read_request(conn, buffered)
                if request is None:
                    return
                with self._lock:
                    request.connection = index
                    number = len(self.seen)
                    self.seen.append(request)
                    answer = self.answers[number] if number < len(self.answers) else [text_reply("unscripted", status="500 Unscripted")]
                for step in answer:
                    if isinstance(step, float):
                        if self._stop.wait(step):
                            return
                    else:
                        conn.sendall(step)
                if number in self.close_after:
                    return
        except OSError:
            return
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
