"""The emulator's server: a loopback HTTP/1.1 server serving all four protocols.

One ``ThreadingHTTPServer`` on one port. Each request is read with the checks a
careful server makes (body size, framing, header syntax), recorded, matched
against the pending plans, answered by its endpoint (``_protocols.py`` for the
seed protocols, ``_openai.py`` for OpenAI's) and written out by :class:`_Handler`,
which owns everything shared by the protocols: framing (chunked or
close-delimited), pacing, step mode and the faults. The flaky configuration
(``_flaky.py``) sees each valid chat request's question through the endpoints'
gate. :meth:`Emulator.stop` leaves no thread or socket behind: it cuts every
connection it accepted, including idle keep-alive ones, and joins the handlers.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import re
import select
import selectors
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, TextIO, Tuple, Type, Union

from ._flaky import Flaky
from ._model import FRAMINGS, Headers, Plan, RecordedRequest, check_options
from ._openai import DIALECT_OPTIONS, OpenAIChat, OpenAIModels, check_dialect, parse_dialect
from ._protocols import (
    CHATGPT4ONLINE_SESSION_PATH,
    ENDPOINTS,
    YLOKH_PATH,
    Chatgpt4Online,
    Chatgpt4OnlineSession,
    Drop,
    Endpoint,
    Fixed,
    FlowGpt,
    Gate,
    GPROChat,
    NonceBook,
    Rejection,
    Reply,
    Stream,
    json_reply,
    scripted_reply,
    status_phrase,
)

logger = logging.getLogger("llmproviders.testing")

FRAMING_HEADER = "X-Emulator-Framing"
"""Request header with which an external client picks the framing (``chunked`` or ``close``)."""

_SPLIT_PAUSE = 0.002
_JOIN_TIMEOUT = 5.0
_ACCEPT_PAUSE = 0.05
_MAX_ACCEPT_PAUSE = 0.5
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

MAX_BODY_SIZE = 16 * 1024 * 1024
"""The default limit on request bodies (``Emulator(max_body_size=...)``): 16 MiB."""
_MAX_LINE = 8192  # a chunk-size or trailer line
_MAX_TRAILERS = 64
_LINGER = 1.0  # seconds spent discarding an unread body before closing, so the client sees the answer
_LINGER_BYTES = 64 * 1024 * 1024
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")


class _Cut(Exception):
    """Ends a response early, with the outcome to record."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that tracks its connections and handler threads."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # many clients at once (the socketserver default is 5)

    def __init__(self, address: Tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self.connections: Set[socket.socket] = set()
        self.handler_threads: Set[threading.Thread] = set()
        self.tracking_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._wake_reader, self._wake_writer = socket.socketpair()
        try:
            super().__init__(address, _Handler)  # binds: raises the bind's OSError (port in use, bad host)
        except BaseException:
            self.server_close()
            raise

    def server_activate(self) -> None:
        super().server_activate()
        self.socket.setblocking(False)  # a connection reset between select() and accept() must not block

    def serve(self) -> None:
        """Accept connections until :meth:`stop_serving` (no polling delay, unlike ``serve_forever``).

        When ``accept()`` fails for lack of resources (no file descriptors left:
        ``EMFILE``/``ENFILE``; no buffers or memory), the pending connection stays in
        the listen queue and the socket stays readable: instead of spinning on it, the
        loop pauses (50 ms, doubling up to 0.5 s, while the shortage lasts), then
        tries again, and keeps serving once descriptors are free.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            pause = 0.0
            while not any(key.fileobj is self._wake_reader for key, _ in selector.select()):
                pause = self._accept(pause)
                if pause:
                    selector.unregister(self.socket)  # wait for stop_serving() only
                    woken = selector.select(pause)
                    selector.register(self.socket, selectors.EVENT_READ)
                    if woken:
                        return

    def _accept(self, pause: float) -> float:
        """Accept and start one connection; return how long to pause before the next accept."""
        try:
            connection, address = self.get_request()
        except OSError as exc:
            if exc.errno not in _RESOURCE_ERRORS:
                return 0.0  # nothing pending after all (EAGAIN), or a connection aborted before accept
            if not pause:
                logger.warning("emulator cannot accept connections: %s; retrying", exc.strerror or exc)
            return min(2 * pause, _MAX_ACCEPT_PAUSE) if pause else _ACCEPT_PAUSE
        try:
            self.process_request(connection, address)
        except Exception:  # no thread for it (RuntimeError: can't start new thread)
            self.handle_error(connection, address)
            self.shutdown_request(connection)
            return min(2 * pause, _MAX_ACCEPT_PAUSE) if pause else _ACCEPT_PAUSE
        return 0.0

    def stop_serving(self) -> None:
        """Make :meth:`serve` return."""
        self._wake_writer.send(b"\0")

    def server_close(self) -> None:
        """Close the listening socket and the wake-up pair (idempotent)."""
        if hasattr(self, "socket"):
            super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def get_request(self) -> Tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.tracking_lock:
            self.connections.add(connection)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._run, args=(request, client_address), name="llmproviders-emulator-connection", daemon=True
        )
        with self.tracking_lock:
            self.handler_threads.add(thread)
        try:
            thread.start()
        except BaseException:  # never started: stop() must not join it
            with self.tracking_lock:
                self.handler_threads.discard(thread)
            raise

    def _run(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.tracking_lock:
                self.handler_threads.discard(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        with self.tracking_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("error on the connection from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Records a request, finds its plan and endpoint, and writes the reply."""

    protocol_version = "HTTP/1.1"
    server_version = "llmproviders-emulator"
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.emulator.socket_timeout)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def parse_request(self) -> bool:
        """The standard parsing, and 400 for what it lets through: HTTP/0.9, a
        header section with lines that are not headers (they would hide the headers
        after them), invalid header names (``Host : x``) and obsolete line folding."""
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(400, "HTTP/0.9 requests are not supported")
            return False
        problem = _header_problem(self.headers)
        if problem:
            self.send_error(400, problem)
            return False
        return True

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Errors found while parsing the request (bad request line, headers too long...):
        always with a status line (the standard handler sends a bare HTML body when the
        request line was unreadable), a JSON body, and the connection closed."""
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        text = message or status_phrase(code)
        if explain:
            text = f"{text}: {explain}"
        reply = _generic_error(code, text)
        headers = {"Content-Type": reply.content_type, "Connection": "close"}
        if code >= 200 and code not in (204, 304):
            headers["Content-Length"] = str(len(reply.body))
        try:
            self._start(code, headers)
            if self.command != "HEAD" and "Content-Length" in headers:
                self.wfile.write(reply.body)
        except OSError:
            pass

    def do_POST(self) -> None:
        emulator = self.server.emulator
        path, _, query = self.path.partition("?")
        endpoint = emulator._endpoints.get(path)
        try:
            body = self._read_body(emulator.max_body_size)
        except _BadBody as bad:
            self.close_connection = True
            refusal = (endpoint.error if endpoint is not None else _generic_error)(bad.status, bad.message)
            refusal.headers["Connection"] = "close"
            self._send(refusal, {}, None)
            if bad.linger:
                self._linger()
            return
        except OSError:  # the client went away, or sent nothing for socket_timeout seconds
            self.close_connection = True
            return
        parsed, problem = _parse_json(body)
        request = RecordedRequest(self.command, path, query, Headers(self.headers.items()), body, parsed, problem)
        plan = emulator._admit(request, endpoint)
        options: Mapping[str, Any] = plan.options if plan else {}
        outcome = "aborted"
        try:
            reply = scripted_reply(options) or self._protocol_reply(request, endpoint, options)
            request.status = reply.status
            outcome = self._send(reply, options, plan)
        finally:
            if outcome != "complete":
                self.close_connection = True
            request._finish(outcome)
            if plan is not None:
                plan._finish(outcome)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST

    def _read_body(self, limit: int) -> bytes:
        """The request body, from its chunks or its ``Content-Length``; raises
        :class:`_BadBody` for a body that is malformed (400), over ``limit`` bytes (413)
        or sent with a transfer coding other than chunked (501)."""
        codings = [c.strip().lower() for v in self.headers.get_all("Transfer-Encoding", []) for c in v.split(",")]
        codings = [c for c in codings if c]
        lengths = {v.strip() for v in self.headers.get_all("Content-Length", [])}
        if codings:
            if lengths:  # RFC 9112 6.1: Transfer-Encoding wins; don't trust the connection afterwards
                self.close_connection = True
            unknown = [c for c in codings if c != "chunked"]
            if unknown:
                raise _BadBody(501, f"transfer coding {unknown[0]!r} is not supported (only chunked)")
            if len(codings) > 1:
                raise _BadBody(400, "chunked must be applied once")
            return self._read_chunked(limit)
        if not lengths:
            return b""
        if len(lengths) > 1:
            raise _BadBody(400, f"conflicting Content-Length headers: {', '.join(sorted(lengths))}")
        value = lengths.pop()
        if not _CONTENT_LENGTH.fullmatch(value):
            raise _BadBody(400, f"invalid Content-Length: {value[:40]!r} (must be a number of bytes >= 0)")
        size = int(value)
        if size > limit:
            raise _BadBody(413, f"the request body ({size} bytes) is over the limit of {limit} bytes", linger=True)
        body = self.rfile.read(size)
        if len(body) < size:
            raise _BadBody(400, f"the request body ended after {len(body)} of {size} bytes")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        parts: List[bytes] = []
        total = 0
        while True:
            line = self._read_line("a chunk size")
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise _BadBody(400, f"malformed chunked body: bad chunk size line {line[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > limit:
                raise _BadBody(413, f"the chunked request body is over the limit of {limit} bytes", linger=True)
            data = self.rfile.read(size)
            if len(data) < size:
                raise _BadBody(400, "malformed chunked body: it ended inside a chunk")
            parts.append(data)
            if self._read_line("the end of a chunk") != b"":
                raise _BadBody(400, "malformed chunked body: a chunk is longer than its size line says")
        for _ in range(_MAX_TRAILERS + 1):
            if self._read_line("a trailer") == b"":
                return b"".join(parts)
        raise _BadBody(400, f"malformed chunked body: more than {_MAX_TRAILERS} trailer lines")

    def _read_line(self, what: str) -> bytes:
        """One CRLF (or LF) terminated line of a chunked body, without its ending."""
        line = self.rfile.readline(_MAX_LINE + 1)
        if not line.endswith(b"\n"):
            if len(line) > _MAX_LINE:
                raise _BadBody(400, f"malformed chunked body: the line for {what} is over {_MAX_LINE} bytes")
            raise _BadBody(400, f"malformed chunked body: it ended before {what}")
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]

    def _linger(self) -> None:
        """Discard what the client is still sending (at most 1 s), so that it can read
        the answer instead of getting a connection reset for unread data."""
        deadline = time.monotonic() + _LINGER
        discarded = 0
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            while discarded < _LINGER_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.connection.settimeout(left)
                data = self.connection.recv(65536)
                if not data:
                    break
                discarded += len(data)
        except OSError:
            pass

    def _protocol_reply(
        self, request: RecordedRequest, endpoint: Optional[Endpoint], options: Mapping[str, Any]
    ) -> Reply:
        if endpoint is None:
            return json_reply(404, {"error": f"no such endpoint: {request.method} {request.path}"})
        if request.method != endpoint.method:
            return json_reply(
                405,
                {"error": f"method not allowed: {request.method} {request.path} (use {endpoint.method})"},
                {"Allow": endpoint.method},
            )
        try:
            return endpoint.respond(request, options)
        except Rejection as rejection:
            return rejection.reply
        except Exception as exc:  # a bug in the emulator: answer it rather than drop the connection
            logger.exception("emulator error answering %s %s", request.method, request.path)
            return json_reply(500, {"error": f"emulator error: {exc!r}"})

    # -- writing a reply ---------------------------------------------------------

    def _send(self, reply: Reply, options: Mapping[str, Any], plan: Optional[Plan]) -> str:
        """Write ``reply`` with the plan's framing and faults; return the outcome."""
        stopping = self.server.emulator._stopping
        delay = options.get("delay_headers")
        if delay and stopping.wait(delay):
            return "aborted"
        if isinstance(reply, Drop):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return "fault-disconnect"
        framing = "length" if isinstance(reply, Fixed) else self._framing(options)
        headers = {"Content-Type": reply.content_type}
        if framing == "length":
            assert isinstance(reply, Fixed)
            headers["Content-Length"] = str(len(reply.body))
        elif framing == "chunked":
            headers["Transfer-Encoding"] = "chunked"
        if framing == "close" or self.close_connection:  # say so when the connection ends after this answer
            headers["Connection"] = "close"
        writer = _BodyWriter(self, framing, options)
        try:
            self._start(reply.status, headers, reply.headers, options.get("headers", {}))
            if isinstance(reply, Fixed):
                writer.write(reply.body)
            else:
                self._stream(reply, writer, options, plan)
            writer.finish()
            return "complete"
        except _Cut as cut:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return cut.outcome
        except OSError:
            return "aborted" if stopping.is_set() else "client-disconnected"

    def _framing(self, options: Mapping[str, Any]) -> str:
        if self.request_version == "HTTP/1.0":
            return "close"
        requested = self.headers.get(FRAMING_HEADER, "").strip().lower()
        if requested and requested not in FRAMINGS:
            logger.warning("ignoring %s: %r (use one of %s)", FRAMING_HEADER, requested, FRAMINGS)
            requested = ""
        return str(options.get("framing") or requested or self.server.emulator.framing)

    def _start(self, status: int, *header_sets: Mapping[str, str]) -> None:
        merged: Dict[str, Tuple[str, str]] = {
            "server": ("Server", self.version_string()),
            "date": ("Date", self.date_time_string()),
        }
        for header_set in header_sets:
            merged.update((name.lower(), (name, str(value))) for name, value in header_set.items())
        self.send_response_only(status)
        for name, value in merged.values():
            self.send_header(name, value)
        self.end_headers()
        self.log_request(status)

    def _stream(self, reply: Stream, writer: _BodyWriter, options: Mapping[str, Any], plan: Optional[Plan]) -> None:
        step = plan if options.get("step") else None
        pace = float(options.get("pace", self.server.emulator.pace))
        limit = options.get("disconnect_after_events")
        omit_trailer = options.get("omit_trailer", False)
        if limit == 0:
            raise _Cut("fault-disconnect")
        sent = 0
        for frame in reply.frames:
            if omit_trailer and frame.kind == "trailer":
                continue
            if frame.kind == "piece" and sent:
                self._await_turn(step, pace)
            writer.write(frame.data)
            if frame.kind == "piece":
                sent += 1
                if sent == limit:
                    raise _Cut("fault-disconnect")

    def _await_turn(self, step: Optional[Plan], pace: float) -> None:
        """Wait before the next piece: for ``advance()`` in step mode, then ``pace``."""
        emulator = self.server.emulator
        if step is not None:
            deadline = time.monotonic() + emulator.step_timeout
            while not step._next_turn(timeout=0.02):
                if emulator._stopping.is_set():
                    raise _Cut("aborted")
                if self._peer_closed():
                    raise _Cut("client-disconnected")
                if time.monotonic() >= deadline:
                    logger.debug("step mode: no advance() within %s s, cutting the connection", emulator.step_timeout)
                    raise _Cut("fault-disconnect")
        if emulator._stopping.wait(pace):
            raise _Cut("aborted")
        if self._peer_closed():
            raise _Cut("client-disconnected")

    def _peer_closed(self) -> bool:
        """Whether the client has closed its end (EOF waiting on the socket)."""
        try:
            if hasattr(select, "poll"):  # select() fails on descriptors >= 1024 (FD_SETSIZE)
                poller = select.poll()
                poller.register(self.connection, select.POLLIN)
                readable = bool(poller.poll(0))
            else:  # pragma: no cover (Windows)
                readable = bool(select.select([self.connection], [], [], 0)[0])
            return readable and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True


class _BodyWriter:
    """Writes one body: one HTTP chunk (or one write) per frame, optional UTF-8
    splitting, and the byte budget of ``disconnect_after_bytes``."""

    def __init__(self, handler: _Handler, framing: str, options: Mapping[str, Any]) -> None:
        self._out = handler.wfile
        self._chunked = framing == "chunked"
        self._budget: Optional[int] = options.get("disconnect_after_bytes")
        self._split = bool(options.get("split_utf8"))
        self._stopping = handler.server.emulator._stopping
        self.sent = 0

    def write(self, data: bytes) -> None:
        parts = _split_utf8(data) if self._split else [data]
        for index, part in enumerate(parts):
            if index:
                self._stopping.wait(_SPLIT_PAUSE)
            self._emit(part)

    def _emit(self, data: bytes) -> None:
        cut = self._budget is not None and self.sent + len(data) >= self._budget
        if cut:
            assert self._budget is not None
            data = data[: self._budget - self.sent]
        if data:
            self._out.write(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)
            self.sent += len(data)
        if cut:
            raise _Cut("fault-disconnect")

    def finish(self) -> None:
        if self._chunked:
            self._out.write(b"0\r\n\r\n")


def _split_utf8(data: bytes) -> List[bytes]:
    """``data`` cut after the first byte of its first multi-byte UTF-8 character."""
    for index, byte in enumerate(data):
        if byte >= 0xC0:
            return [data[: index + 1], data[index + 1 :]]
    return [data]


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _header_problem(headers: Any) -> Optional[str]:
    """Why a parsed header section must be refused (RFC 9112 5.1, 5.2), or ``None``."""
    if headers.defects:
        return f"malformed header section ({type(headers.defects[0]).__name__})"
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            return f"invalid header name {name[:40]!r}"
        if "\r" in value or "\n" in value:
            return f"obsolete line folding in the {name} header"
    return None


class _BadBody(Exception):
    """A request body the server cannot take: answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str, *, linger: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.linger = linger


def _generic_error(status: int, message: str) -> Fixed:
    return json_reply(status, {"error": message})


def _parse_json(body: bytes) -> Tuple[Any, Optional[str]]:
    """The body as JSON and ``None``, or ``None`` and why it is not JSON."""
    if not body:
        return None, "the body is empty"
    try:
        return json.loads(body), None
    except RecursionError:
        return None, "the JSON is nested too deeply to parse"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        return None, f"the body is not JSON ({exc})"


def make_endpoints(
    api_key: Optional[str] = None, dialect: Optional[Mapping[str, Any]] = None, gate: Optional[Gate] = None
) -> Dict[str, Endpoint]:
    """A fresh set of endpoints by path (with their own nonce book). ``api_key``, if
    set, is required by the OpenAI endpoints; ``dialect`` holds the OpenAI endpoint's
    dialect options; ``gate`` sees every valid chat request's question (flaky)."""
    nonces = NonceBook()
    endpoints: List[Endpoint] = [
        FlowGpt(),
        GPROChat(),
        Chatgpt4OnlineSession(nonces),
        Chatgpt4Online(nonces),
        OpenAIChat(api_key, dialect),
        OpenAIModels(api_key),
    ]
    for endpoint in endpoints:
        if endpoint.main:
            endpoint.gate = gate
    return {endpoint.path: endpoint for endpoint in endpoints}


class Emulator:
    """An HTTP/1.1 server on loopback that speaks all four upstream protocols.

    ``framing`` (``"chunked"`` or ``"close"``) and ``pace`` (seconds between
    pieces) are the defaults for streamed replies; a plan's options override them,
    and an external client can ask for a framing with the ``X-Emulator-Framing``
    request header (a plan's ``framing`` still wins). ``step_timeout`` is how long
    step mode waits for :meth:`Plan.advance` before cutting the connection;
    ``socket_timeout`` bounds every read and write on a connection. With
    ``api_key``, the OpenAI endpoints (``/v1/chat/completions``, ``/v1/models``)
    require ``Authorization: Bearer <api_key>`` and answer 401 otherwise.

    Requests are checked as a careful server checks them: a body over
    ``max_body_size`` bytes (16 MiB by default) gets 413; a negative or invalid
    ``Content-Length``, a malformed chunked body, or a body that is not JSON (also
    one nested too deeply to parse) gets 400; each in the endpoint's error shape.
    After a 400 or 413 for the body the connection is closed.

    ``dialect`` sets the OpenAI endpoint's dialect for every request: a preset name
    (``"llama.cpp"``, ``"ollama"``...; see ``DIALECTS``), a string of presets and
    ``option=value`` items (``"llama.cpp,tool_call_style=whole"``) or a mapping of
    dialect options (the OpenAI options of :meth:`plan`). ``flaky`` (a
    :class:`Flaky`) makes a deterministic share of chat requests fail before their
    first delta; it can be changed while running (``emulator.flaky = ...``).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        framing: str = "chunked",
        pace: float = 0.0,
        step_timeout: float = 10.0,
        socket_timeout: float = 30.0,
        api_key: Optional[str] = None,
        max_body_size: int = MAX_BODY_SIZE,
        dialect: Union[str, Mapping[str, Any], None] = None,
        flaky: Optional[Flaky] = None,
    ) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, not {framing!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int from 0 to 65535 (0: any free port), not {port!r}")
        for name, value in (("pace", pace), ("step_timeout", step_timeout), ("socket_timeout", socket_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if socket_timeout == 0:
            raise ValueError("socket_timeout must be > 0")
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int) or max_body_size < 0:
            raise ValueError(f"max_body_size must be an int >= 0 (bytes), not {max_body_size!r}")
        self.max_body_size = max_body_size
        self.host = host
        self.framing = framing
        self.pace = pace
        self.step_timeout = step_timeout
        self.socket_timeout = socket_timeout
        self._requested_port = port
        self._lock = threading.Lock()
        self._requests: List[RecordedRequest] = []
        self._plans: List[Plan] = []
        self.api_key = api_key
        self.dialect: Dict[str, Any] = parse_dialect(dialect)
        self.flaky = flaky
        self._asked: Dict[str, int] = {}
        self._endpoints: Dict[str, Endpoint] = make_endpoints(api_key, self.dialect, self._gate)
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and start serving in a background thread; returns ``self``.

        A failure to bind (the port is in use, the host is not an address of this
        machine or does not resolve) raises the bind's own ``OSError`` (for example
        ``errno.EADDRINUSE``, or ``socket.gaierror``) and leaves no thread or socket
        behind; the emulator can be started again.
        """
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._stopping = threading.Event()
        server = _Server((self.host, self._requested_port), self)
        thread = threading.Thread(target=server.serve, name="llmproviders-emulator", daemon=True)
        try:
            thread.start()
        except BaseException:
            server.server_close()
            raise
        self._server, self._thread = server, thread
        logger.debug("emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving: cut every connection, join every thread. Idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.stop_serving()
        thread.join()
        server.server_close()
        with server.tracking_lock:
            connections = list(server.connections)
            threads = list(server.handler_threads)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for handler_thread in threads:
            handler_thread.join(max(0.0, deadline - time.monotonic()))
        with server.tracking_lock:
            leftovers = list(server.connections)
            server.connections.clear()
        for connection in leftovers:
            connection.close()
        if any(t.is_alive() for t in threads):
            logger.warning("emulator stopped with handler threads still running")
        self._server = self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is started and not stopped."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The port the server listens on (raises ``RuntimeError`` when not running)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server; all four providers live under it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        """``base_url + path``."""
        return self.base_url + path

    # -- plans and records ---------------------------------------------------------

    def plan(
        self,
        path: Optional[str] = None,
        times: int = 1,
        *,
        framing: Optional[str] = None,
        pace: Optional[float] = None,
        reply: Optional[str] = None,
        pieces: Optional[List[str]] = None,
        long_reply: Optional[int] = None,
        step: bool = False,
        status: Optional[int] = None,
        body: Union[str, bytes, Dict[str, Any], List[Any], None] = None,
        content_type: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        html_error: Optional[int] = None,
        cloudflare: bool = False,
        retry_after: Union[int, str, None] = None,
        delay_headers: Optional[float] = None,
        disconnect_after_bytes: Optional[int] = None,
        disconnect_after_events: Optional[int] = None,
        malformed: bool = False,
        split_utf8: bool = False,
        end_mismatch: Optional[str] = None,
        stream_error: Union[Dict[str, Any], str, None] = None,
        start_session_html: bool = False,
        omit_trailer: bool = False,
        reasoning: Optional[str] = None,
        thinking: Optional[str] = None,
        unfinished_reasoning: Optional[bool] = None,
        tool_calls: Optional[Sequence[Mapping[str, Any]]] = None,
        tool_call_style: Optional[str] = None,
        finish_reason: Optional[str] = None,
        usage: Optional[str] = None,
        timings: Optional[bool] = None,
        refusal: Union[str, bool, None] = None,
        choices: Optional[int] = None,
        context_overflow: Optional[str] = None,
        context_window: Optional[int] = None,
        require_reasoning_content: Optional[bool] = None,
        stream_error_event: Optional[bool] = None,
        invalid_utf8: Optional[bool] = None,
        utf16_bom_line: Optional[bool] = None,
        leading_bom: Optional[bool] = None,
        done_ending: Optional[str] = None,
    ) -> Plan:
        """Script the next ``times`` requests to ``path``; returns the :class:`Plan`.

        ``path=None`` applies to the four chat endpoints (not to Chatgpt4Online's
        ``start_session``, which only a plan naming its path, or one with
        ``start_session_html=True``, applies to). An explicit ``path`` matches that
        exact path, whatever it is, so ``status=``/``body=`` can serve any path.
        Plans are matched first come, first served. Unknown options raise
        ``TypeError``; see the package docstring for what each option does.
        Options that don't apply to a protocol are ignored by it.

        The options from ``reasoning`` on are the OpenAI endpoint's dialect options
        (they override the emulator's ``dialect`` and the model name's, key by key;
        ``False`` turns a flag off). A plan with any of them and no ``path``
        applies to ``/v1/chat/completions`` only.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        given = dict(locals())
        options = {
            name: value
            for name, value in given.items()
            if name not in ("self", "path", "times")
            and value is not None
            and (value is not False or name in DIALECT_OPTIONS)
        }
        if start_session_html and path is None:
            path = CHATGPT4ONLINE_SESSION_PATH
        dialect = {name: value for name, value in options.items() if name in DIALECT_OPTIONS}
        if dialect and path is None:
            path = YLOKH_PATH
        try:
            check_dialect(dialect)
        except ValueError as exc:
            raise ValueError(f"plan(): {exc}") from None
        check_options(options)
        plan = Plan(path, times, options)
        with self._lock:
            self._plans.append(plan)
        return plan

    @property
    def requests(self) -> List[RecordedRequest]:
        """Every request received since start or the last :meth:`reset`, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, question: str) -> List[RecordedRequest]:
        """The chat requests (any of the four protocols) whose question was
        ``question``, in order: what each batch item cost, as the emulator saw it.
        Only valid requests count (see :attr:`RecordedRequest.question`)."""
        with self._lock:
            return [request for request in self._requests if request.question == question]

    def reset(self) -> None:
        """Forget the recorded requests, the plans not used up yet, and how often
        each question was asked (the flaky configuration starts over)."""
        with self._lock:
            self._requests.clear()
            self._plans.clear()
            self._asked.clear()

    @property
    def flaky(self) -> Optional[Flaky]:
        """The :class:`Flaky` configuration, or ``None``; settable while running."""
        return self._flaky

    @flaky.setter
    def flaky(self, flaky: Optional[Flaky]) -> None:
        if flaky is not None and not isinstance(flaky, Flaky):
            raise TypeError(f"flaky must be a Flaky(...) or None, not {type(flaky).__name__}")
        self._flaky = flaky

    def _gate(self, endpoint: Endpoint, request: RecordedRequest, question: str) -> Optional[Reply]:
        """Count the question's attempt; return the flaky fault for it, if any."""
        with self._lock:
            attempt = self._asked.get(question, 0)
            self._asked[question] = attempt + 1
        request.attempt = attempt
        flaky = self._flaky
        fault = flaky.fault(question, attempt) if flaky is not None else None
        request.fault = fault
        if fault is None:
            return None
        if fault == "drop":
            return Drop()
        status = int(fault)
        reply = endpoint.error(status, f"{status_phrase(status)} (the flaky emulator fails attempt {attempt + 1})")
        if status == 429:
            assert flaky is not None
            reply.headers["Retry-After"] = f"{flaky.retry_after:g}"
        return reply

    def revoke_nonces(self) -> None:
        """Make every Chatgpt4Online nonce issued so far invalid (as if it expired)."""
        for endpoint in self._endpoints.values():
            nonces = getattr(endpoint, "nonces", None)
            if nonces is not None:
                nonces.revoke_all()

    def _admit(self, request: RecordedRequest, endpoint: Optional[Endpoint]) -> Optional[Plan]:
        """Record ``request``; claim and return the first pending plan for it."""
        main = endpoint is not None and endpoint.main and request.method == endpoint.method
        with self._lock:
            self._requests.append(request)
            for plan in self._plans:
                if (plan.path == request.path or (plan.path is None and main)) and plan._claim(request):
                    request.plan = plan
                    if plan.remaining == 0:
                        self._plans.remove(plan)
                    return plan
        return None


def serve(host: str = "127.0.0.1", port: int = 8000, *, file: Optional[TextIO] = None, **emulator_options: Any) -> None:
    """Run an emulator until Ctrl+C (``KeyboardInterrupt``).

    Prints the base URL and every endpoint URL once, to ``file`` (default
    stdout). ``emulator_options`` go to :class:`Emulator` (``framing``, ``pace``...).
    When the server cannot bind, the bind's ``OSError`` is raised before anything
    is printed (see :meth:`Emulator.start`).
    """
    out = file if file is not None else sys.stdout
    emulator = Emulator(host, port, **emulator_options)
    try:
        emulator.start()
        print(f"llmproviders emulator serving on {emulator.base_url} (Ctrl+C to stop)", file=out)
        for name, method, path in ENDPOINTS:
            print(f"  {name:<25} {method:<4} {emulator.url(path)}", file=out)
        out.flush()
        while True:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
