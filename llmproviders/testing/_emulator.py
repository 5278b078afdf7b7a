"""The emulator's server: a loopback HTTP/1.1 server serving all four protocols.

One ``ThreadingHTTPServer`` on one port. Each request is recorded, matched
against the pending plans, answered by its endpoint (``_protocols.py``) and
written out by :class:`_Handler`, which owns everything shared by the
protocols: framing (chunked or close-delimited), pacing, step mode and the
faults. :meth:`Emulator.stop` leaves no thread or socket behind: it cuts every
connection it accepted, including idle keep-alive ones, and joins the handlers.
"""

from __future__ import annotations

import json
import logging
import select
import selectors
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Dict, List, Mapping, Optional, Set, TextIO, Tuple, Type, Union

from ._model import FRAMINGS, Headers, Plan, RecordedRequest, check_options
from ._protocols import (
    CHATGPT4ONLINE_SESSION_PATH,
    ENDPOINTS,
    Endpoint,
    Fixed,
    Rejection,
    Reply,
    Stream,
    json_reply,
    make_endpoints,
    scripted_reply,
)

logger = logging.getLogger("llmproviders.testing")

FRAMING_HEADER = "X-Emulator-Framing"
"""Request header with which an external client picks the framing (``chunked`` or ``close``)."""

_SPLIT_PAUSE = 0.002
_JOIN_TIMEOUT = 5.0


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
        super().__init__(address, _Handler)
        self._wake_reader, self._wake_writer = socket.socketpair()

    def serve(self) -> None:
        """Accept connections until :meth:`stop_serving` (no polling delay, unlike ``serve_forever``)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not any(key.fileobj is self._wake_reader for key, _ in selector.select()):
                self.handle_request()

    def stop_serving(self) -> None:
        """Make :meth:`serve` return."""
        self._wake_writer.send(b"\0")

    def server_close(self) -> None:
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
        thread.start()

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

    def do_POST(self) -> None:
        emulator = self.server.emulator
        path, _, query = self.path.partition("?")
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            self._send(json_reply(400, {"error": f"unreadable request body: {exc}"}), {}, None)
            return
        request = RecordedRequest(self.command, path, query, Headers(self.headers.items()), body, _parse_json(body))
        endpoint = emulator._endpoints.get(path)
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

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: List[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length")
        return self.rfile.read(int(length)) if length else b""

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
        framing = "length" if isinstance(reply, Fixed) else self._framing(options)
        headers = {"Content-Type": reply.content_type}
        if framing == "length":
            assert isinstance(reply, Fixed)
            headers["Content-Length"] = str(len(reply.body))
        elif framing == "chunked":
            headers["Transfer-Encoding"] = "chunked"
        else:
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


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


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
    ) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, not {framing!r}")
        if pace < 0:
            raise ValueError("pace must be >= 0")
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
        self._endpoints: Dict[str, Endpoint] = make_endpoints(api_key)
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and start serving in a background thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._stopping = threading.Event()
        self._server = _Server((self.host, self._requested_port), self)
        self._thread = threading.Thread(target=self._server.serve, name="llmproviders-emulator", daemon=True)
        self._thread.start()
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
        stream_error: Optional[Dict[str, Any]] = None,
        start_session_html: bool = False,
        omit_trailer: bool = False,
    ) -> Plan:
        """Script the next ``times`` requests to ``path``; returns the :class:`Plan`.

        ``path=None`` applies to the four chat endpoints (not to Chatgpt4Online's
        ``start_session``, which only a plan naming its path, or one with
        ``start_session_html=True``, applies to). An explicit ``path`` matches that
        exact path, whatever it is, so ``status=``/``body=`` can serve any path.
        Plans are matched first come, first served. Unknown options raise
        ``TypeError``; see the package docstring for what each option does.
        Options that don't apply to a protocol are ignored by it.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        given = dict(locals())
        options = {
            name: value
            for name, value in given.items()
            if name not in ("self", "path", "times") and value is not None and value is not False
        }
        if start_session_html and path is None:
            path = CHATGPT4ONLINE_SESSION_PATH
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

    def reset(self) -> None:
        """Forget the recorded requests and the plans not used up yet."""
        with self._lock:
            self._requests.clear()
            self._plans.clear()

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
