"""HTTP: the only module that talks to ``requests`` and ``urllib3``.

Each provider class gets one :class:`requests.Session`, created on first use and
reused by every call (connection pooling). Nothing per-request lives on the session:
headers, proxies, timeouts and cookies travel with each request, and the session's
own cookie jar accepts nothing, so one session serves many threads at once.

A :class:`Call` is one provider call: where to send (``base_url``), through which
proxy, with which timeouts. It opens responses, turns every ``requests``/``urllib3``
failure and every non-2xx status into an error of the library's hierarchy (with
``raise ... from`` so the cause is kept), and reads bodies so each byte reaches the
caller as soon as the socket returns it, for chunked and close-delimited bodies
alike: ``read1`` for the latter, and for chunked bodies a lean reader of the chunk
framing (:func:`_read_chunks`).
"""

from __future__ import annotations

import datetime
import email.utils
import http.client
import http.cookiejar
import json
import logging
import math
import re
import secrets
import socket
import string
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions
from urllib3.util.wait import wait_for_read

from ._exceptions import (
    AuthenticationError,
    CloudflareError,
    InvalidArgumentError,
    LLMProvidersError,
    ProtocolError,
    RateLimitError,
    RequestTimeoutError,
    ResponseStatusError,
    StreamInterruptedError,
    TransportError,
)

__all__ = ["Call", "TimeoutArg", "DEFAULT_TIMEOUT", "random_string", "random_hex", "close_sessions"]

log = logging.getLogger(__name__)

#: ``timeout=`` accepts seconds for both phases, or ``(connect, read)``.
TimeoutArg = Union[None, float, Tuple[float, float]]
#: Connect within 10 s; then at most 120 s of silence between two reads.
DEFAULT_TIMEOUT: Tuple[float, float] = (10.0, 120.0)

READ_SIZE = 65536  # the most one read1() returns; a read returns as soon as any byte is there
ERROR_BODY_LIMIT = 65536  # how much of an error body is read to describe it
EXCERPT_LENGTH = 300  # how much of it an error message shows
POOL_MAXSIZE = 64  # connections kept per host, so concurrent streams reuse them

_sessions: Dict[type, requests.Session] = {}
_sessions_lock = threading.Lock()


def random_string(length: int = 10) -> str:
    """``length`` random characters from ``[a-z0-9]``."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def random_hex() -> str:
    """32 random lowercase hex characters."""
    return secrets.token_hex(16)


def session_for(owner: type) -> requests.Session:
    """The pooled session of a provider class (created on first use, thread-safe)."""
    session = _sessions.get(owner)
    if session is None:
        with _sessions_lock:
            session = _sessions.get(owner)
            if session is None:
                session = _new_session()
                _sessions[owner] = session
    return session


def close_sessions() -> None:
    """Close every pooled connection. Sessions are recreated on next use."""
    with _sessions_lock:
        sessions = list(_sessions.values())
        _sessions.clear()
    for session in sessions:
        session.close()


_waiting = threading.local()  # .call: the Call whose request this thread is sending


class _AbortableWait:
    """Connection mixin: while waiting for response headers, the socket is known to
    the call being sent (and only then), so :meth:`Call.abort` can wake the wait."""

    sock: Any

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        call: Optional[Call] = getattr(_waiting, "call", None)
        if call is not None:
            call._waiting_sock = self.sock
            if call.aborted:  # aborted between the check in open() and here
                _shutdown(self.sock)
        try:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        finally:
            if call is not None:
                call._waiting_sock = None


class _HTTPConnection(_AbortableWait, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_AbortableWait, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter with connections whose wait for headers can be aborted."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def _shutdown(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass  # already closed or never connected


def _new_session() -> requests.Session:
    session = requests.Session()
    # Cookies go with the call that needs them (see Call.send), never into shared state.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    adapter = _Adapter(pool_connections=8, pool_maxsize=POOL_MAXSIZE)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def resolve_timeout(timeout: TimeoutArg, default: Tuple[float, float]) -> Tuple[float, float]:
    """``None`` -> ``default``; a number -> both phases; a pair -> ``(connect, read)``."""
    if timeout is None:
        return default
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        pair: Tuple[Any, Any] = (timeout, timeout)
    elif isinstance(timeout, tuple) and len(timeout) == 2:
        pair = timeout
    else:
        raise InvalidArgumentError(
            f"timeout must be seconds or a (connect, read) pair of seconds, not {timeout!r}"
        )
    for value in pair:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9:
            raise InvalidArgumentError(f"timeout values must be positive numbers, not {timeout!r}")
    return (float(pair[0]), float(pair[1]))


def check_deadline(deadline: Any) -> Optional[float]:
    """``deadline=`` as seconds, or None; a non-number, NaN, infinity or a value <= 0 is
    an :class:`InvalidArgumentError` (interim: the transport branch owns this)."""
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not math.isfinite(deadline) or deadline <= 0:
        raise InvalidArgumentError(f"deadline must be a positive, finite number of seconds, not {deadline!r}")
    return float(deadline)


def redact_url(url: str) -> str:
    """``url`` without credentials, query or fragment: safe for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_base_url(base_url: str) -> str:
    """Validate ``base_url`` (``http(s)://host[:port][/prefix]``) and strip a trailing slash."""
    problem = "it is not a string"
    if isinstance(base_url, str):
        parts = urlsplit(base_url)
        try:
            parts.port  # noqa: B018  (raises for a port that is not a number in range)
        except ValueError:
            problem = "its port is not a number from 0 to 65535"
        else:
            if parts.scheme in ("http", "https") and parts.hostname:
                return base_url.rstrip("/")
            problem = "it needs http:// or https:// and a host"
    raise InvalidArgumentError(
        f"base_url must look like 'http://host:port' or 'https://host/prefix': {problem}"
        + (f" ({redact_url(base_url)!r})" if problem.startswith("it needs") else "")
    )


def join_url(base_url: Optional[str], default_url: str) -> str:
    """Point ``default_url`` (a protocol's real URL) at ``base_url``, keeping its path.

    A path prefix on ``base_url`` is kept; where the prefix already ends with the
    start of the protocol's path it is not repeated, so both ``http://h:8080`` and
    the OpenAI-style ``http://h:8080/v1`` reach ``http://h:8080/v1/chat/completions``.
    """
    if not base_url:
        return default_url
    base = urlsplit(base_url)
    target = urlsplit(default_url)
    prefix = [s for s in base.path.split("/") if s]
    path = [s for s in target.path.split("/") if s]
    overlap = 0
    for size in range(min(len(prefix), len(path)), 0, -1):
        if prefix[-size:] == path[:size]:
            overlap = size
            break
    joined = "/" + "/".join(prefix + path[overlap:])
    return urlunsplit((base.scheme, base.netloc, joined, target.query, ""))


class _Exchange:
    """Interim: one request and its response, as the layers above expect it."""

    def __init__(self, call: "Call", response: requests.Response) -> None:
        self._call = call
        self.response = response
        self.headers = response.headers
        self.cookies = response.cookies
        self.status_code = response.status_code

    def iter_bytes(self) -> Iterator[bytes]:
        return self._call.iter_bytes(self.response)

    def read_json(self, limit: int = 16 * 1024 * 1024) -> Any:
        return self._call.read_json(self.response, limit=limit)


class Call:
    """One provider call's transport: target, proxy, timeouts and the open response.

    Providers use :meth:`open` (a context manager yielding a status-checked streaming
    response) and :meth:`iter_bytes`; everything that can go wrong comes out as an
    error of the library's hierarchy. :meth:`abort` may be called from another thread
    to wake a read that is blocked on the socket.
    """

    def __init__(
        self,
        owner: type,
        *,
        base_url: Optional[str] = None,
        proxy: Optional[str] = None,
        timeout: TimeoutArg = None,
        default_timeout: Tuple[float, float] = DEFAULT_TIMEOUT,
        deadline: Optional[float] = None,
    ) -> None:
        self.provider = owner.__name__
        if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or deadline <= 0):
            raise InvalidArgumentError(f"deadline must be a positive number of seconds, not {deadline!r}")
        #: Seconds the whole call may take, retries included; the clock starts at the
        #: first request. None: no limit beyond the connect and read timeouts.
        self.deadline = float(deadline) if deadline is not None else None
        self._deadline_at: Optional[float] = None
        self._aborted = threading.Event()
        self.base_url = check_base_url(base_url) if base_url is not None else None
        if proxy is not None and (not isinstance(proxy, str) or "://" not in proxy):
            raise InvalidArgumentError(
                "proxy must be a URL such as 'http://host:3128' or 'socks5://host:1080'"
            )
        self._proxies = {"http": proxy, "https": proxy} if proxy else None
        self.timeout = resolve_timeout(timeout, default_timeout)
        self._session = session_for(owner)
        self._response: Optional[requests.Response] = None
        self._waiting_sock: Any = None  # the socket of a request waiting for its headers
        self._reads: Optional[Iterator[bytes]] = None  # the body reader of the open response
        self._draining = False  # _drain is reading the rest of a body without blocking
        #: The most bytes one frame may have (the provider's ``max_frame_size``).
        self.max_frame = 8 * 1024 * 1024
        #: What the protocol reports besides text (finish_reason, usage, id, ...).
        self.metadata: Dict[str, Any] = {}

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def remaining(self) -> Optional[float]:
        """Seconds left before the deadline (None without one); starts the clock."""
        if self.deadline is None:
            return None
        if self._deadline_at is None:
            self._deadline_at = time.monotonic() + self.deadline
        return self._deadline_at - time.monotonic()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` (a retry's backoff); False if the call was aborted meanwhile."""
        return not self._aborted.wait(seconds)

    def url(self, default_url: str) -> str:
        """The URL to use for one of the protocol's endpoints."""
        return join_url(self.base_url, default_url)

    @contextmanager
    def open(
        self,
        url: str,
        *,
        headers: Dict[str, str],
        json_body: Any = None,
        data: Optional[bytes] = None,
        cookies: Any = None,
        method: str = "POST",
    ) -> Iterator[requests.Response]:
        """Send the request (POST unless ``method`` says otherwise) and yield the
        response once its status is known to be good.

        A non-2xx status raises a :class:`ResponseStatusError` subclass; a 2xx HTML page
        (bot protection, a proxy's error page) raises :class:`CloudflareError` or
        :class:`ProtocolError`. The response is closed when the block exits.
        """
        if self.aborted:
            raise self._aborted_error()
        response = self._send(method, url, headers=headers, json_body=json_body, data=data, cookies=cookies)
        self._response = response
        try:
            if self.aborted:  # aborted just as the headers came in
                raise self._aborted_error()
            self._check(response)
            yield _Exchange(self, response)  # type: ignore[misc]  # (interim: the transport branch replaces this)
            self._drain(response)  # the protocol is done (no exception, no early stop)
        finally:
            self._response = None
            self._reads = None
            response.close()

    def read_json(self, response: requests.Response, *, limit: int = 16 * 1024 * 1024) -> Any:
        """Read a whole (non-streamed) body, at most ``limit`` bytes, and decode it as JSON."""
        body = bytearray()
        for chunk in self.iter_bytes(response):
            body += chunk
            if len(body) > limit:
                raise ProtocolError(
                    f"{self.provider}: the response body is larger than {limit} bytes",
                    provider=self.provider,
                )
        try:
            return json.loads(bytes(body))
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(
                f"{self.provider}: expected a JSON body, got {excerpt(bytes(body))!r}",
                provider=self.provider,
                frame=excerpt(bytes(body)),
            ) from exc

    def body(self, response: requests.Response) -> Iterator[bytes]:
        """The reader of ``response``'s body: whatever bytes the socket returned, at
        most ``READ_SIZE`` at a time, as soon as it returned them. Iterate it inside
        :meth:`reading`, which turns transport errors into the library's.

        ``iter_content()`` would wait for a full chunk of its size, or for EOF when the
        body is close-delimited; ``read1`` returns as soon as any byte is there. A
        chunked body without content coding (what streaming servers send) is read by
        :func:`_read_chunks`, straight off the connection's buffered reader.
        """
        raw = response.raw
        if raw.chunked and _plain_encoding(response):
            sock = getattr(getattr(raw, "connection", None), "sock", None)
            if self.deadline is None:
                chunks = _read_chunks(raw)
            else:  # its reads keep to the deadline themselves
                chunks = _read_chunks(raw, self._before_read(sock)) if sock is not None else None
            if chunks is not None:
                self._reads = chunks  # a drain after the protocol's end continues this reader
                return chunks
        if raw.chunked and raw.supports_chunked_reads():
            reads: Iterator[bytes] = raw.read_chunked(READ_SIZE, decode_content=True)
        else:
            reads = iter(lambda: raw.read1(READ_SIZE, decode_content=True), b"")
        self._reads = reads
        if self.deadline is not None:
            return self._until_deadline(reads, raw)
        return reads

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Around a loop over :meth:`body`: errors of the transport come out as the
        library's (the stream broke, timed out, or was aborted); the library's own
        errors and everything else pass through unchanged."""
        try:
            yield
        except LLMProvidersError:
            raise
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError) as exc:
            if self.aborted:  # the socket was shut down on purpose: say so
                raise self._aborted_error() from exc
            raise self._transport_error(exc) from exc
        if self.aborted:  # an abort can look like a clean end of a close-delimited body
            raise self._aborted_error()

    def _transport_error(self, exc: BaseException) -> LLMProvidersError:
        """The library's error for a failure while reading a body."""
        if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, socket.timeout)):
            if self._past_deadline():
                return self._deadline_error(started=True)
            return StreamInterruptedError(
                f"{self.provider}: no data for {self.timeout[1]:g} s (read timeout); the stream was cut short",
                provider=self.provider,
            )
        if isinstance(exc, urllib3.exceptions.DecodeError):
            return ProtocolError(
                f"{self.provider}: the body could not be decompressed ({_reason(exc)})", provider=self.provider
            )
        return StreamInterruptedError(
            f"{self.provider}: the connection broke before the reply was complete ({_reason(exc)})",
            provider=self.provider,
        )

    def iter_bytes(self, response: requests.Response) -> Iterator[bytes]:
        """:meth:`body` with its errors translated, as one generator."""
        reads = self.body(response)
        with self.reading():
            # Not `yield from`: it would forward our close() into urllib3's reader,
            # which then drops the connection before _drain can finish the body.
            for chunk in reads:
                yield chunk

    def _drain(self, response: requests.Response, limit: int = 65536, wait: float = 0.05) -> None:
        """After the protocol's end marker (``[DONE]``, say): finish reading the body,
        so the connection goes back to the pool instead of being dropped.

        Bounded: if nothing more has arrived yet, wait once, at most ``wait`` seconds
        (and not past the deadline), for the socket to become readable; then read
        without blocking. A server that keeps the body open, or drips it, only costs
        the connection, never the caller's time.
        """
        reads = self._reads
        sock = getattr(getattr(response.raw, "connection", None), "sock", None)
        if reads is None or sock is None:  # nothing was read, or already released to the pool
            return
        buffered = getattr(getattr(response.raw, "_fp", None), "fp", None)  # http.client's reader
        self._draining = True
        try:
            sock.settimeout(0.0)
            if buffered is not None and not buffered.peek(1):  # nothing here yet
                left = self.remaining()
                # poll, not select: select fails on descriptors numbered 1024 and up
                if not wait_for_read(sock, timeout=min(wait, left) if left is not None else wait):
                    return
            for chunk in reads:
                limit -= len(chunk)
                if limit <= 0:
                    return  # more body than an end marker leaves: close() drops the connection
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError):
            pass  # not all there: likewise
        finally:
            self._draining = False

    def _aborted_error(self) -> StreamInterruptedError:
        return StreamInterruptedError(f"{self.provider}: the call was aborted", provider=self.provider)

    def _before_read(self, sock: Any) -> Callable[[], None]:
        """For the chunk reader under a deadline: before each socket read, lower the
        socket's timeout to the time left (a read past the deadline raises). Not while
        draining: the drain reads without blocking, and its reads must stay that way."""

        def before_read() -> None:
            if self._draining:
                return
            left = self.remaining()
            assert left is not None
            if left <= 0:
                raise self._deadline_error(started=True)
            sock.settimeout(min(self.timeout[1], left))

        return before_read

    def _until_deadline(self, reads: Iterator[bytes], raw: Any) -> Iterator[bytes]:
        """``reads``, but no read may outlast the deadline: the socket's timeout is
        lowered to the time left before each read, so a server that drips a byte now
        and then cannot stretch the call."""
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        while True:
            left = self.remaining()
            assert left is not None
            if left <= 0:
                raise self._deadline_error(started=True)
            if sock is not None:
                sock.settimeout(min(self.timeout[1], left))
            chunk = next(reads, None)
            if chunk is None:
                return
            yield chunk

    def _past_deadline(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0.001

    def _deadline_error(self, *, started: bool) -> LLMProvidersError:
        message = f"{self.provider}: the call's deadline of {self.deadline:g} s passed"
        if started:
            return StreamInterruptedError(message + "; the stream was cut short", provider=self.provider)
        return RequestTimeoutError(message + " before a response", provider=self.provider)

    def abort(self) -> None:
        """Wake a read blocked in another thread; the stream then ends with an error.

        Safe to call from any thread, any number of times. ``response.close()`` from
        another thread does not wake a blocked read; shutting the socket down does.
        It also cuts a retry's backoff short.
        """
        self._aborted.set()
        waiting = self._waiting_sock
        if waiting is not None:
            _shutdown(waiting)
        response = self._response
        if response is None:
            return
        try:
            response.raw.shutdown()
        except (AttributeError, ValueError, RuntimeError, OSError):
            pass  # urllib3 < 2.3, already released or already closed: nothing is blocked there

    # -- internals ----------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        safe_url = redact_url(url)
        headers = kwargs.pop("headers")
        json_body = kwargs.pop("json_body")
        log.debug("%s: %s %s", self.provider, method, safe_url)
        started = time.monotonic()
        timeout = self.timeout
        left = self.remaining()
        if left is not None:
            if left <= 0:
                raise self._deadline_error(started=False)
            timeout = (min(timeout[0], left), min(timeout[1], left))
        _waiting.call = self
        try:
            response = self._session.request(
                method,
                url,
                headers=headers,
                json=json_body,
                data=kwargs["data"],
                cookies=kwargs["cookies"],
                proxies=self._proxies,
                timeout=timeout,
                stream=True,
                verify=True,
            )
        except requests.exceptions.RequestException as exc:
            if self.aborted:
                raise self._aborted_error() from exc
            raise self._translate(exc, url, safe_url) from exc
        finally:
            _waiting.call = None
            if self._proxies:
                _forget_old_proxies(self._session, url)
        log.debug(
            "%s: %s %s %s in %.0f ms",
            self.provider,
            response.status_code,
            method,
            safe_url,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _translate(self, exc: requests.exceptions.RequestException, url: str, safe_url: str) -> LLMProvidersError:
        """The library's error for a request that got no response."""
        where = dict(provider=self.provider, url=safe_url)
        host = _host(url)
        if isinstance(exc, requests.exceptions.Timeout):
            if self._past_deadline():
                return self._deadline_error(started=False)
            if isinstance(exc, requests.exceptions.ReadTimeout):
                return RequestTimeoutError(
                    f"{self.provider}: {host} sent no response within {self.timeout[1]:g} s (read timeout)", **where
                )
            return RequestTimeoutError(
                f"{self.provider}: could not connect to {host} within {self.timeout[0]:g} s (connect timeout)", **where
            )
        if isinstance(exc, requests.exceptions.InvalidSchema):
            if "SOCKS" in str(exc):
                return InvalidArgumentError("SOCKS proxies need PySocks: pip install 'llmproviders[socks]'")
            return InvalidArgumentError(f"{self.provider}: unsupported URL scheme in {safe_url}")
        if isinstance(exc, requests.exceptions.ProxyError):
            return TransportError(f"{self.provider}: the proxy failed ({_reason(exc)})", **where)
        if isinstance(exc, requests.exceptions.SSLError):
            return TransportError(f"{self.provider}: TLS with {host} failed ({_reason(exc)})", **where)
        return TransportError(f"{self.provider}: could not reach {host} ({_reason(exc)})", **where)

    def _check(self, response: requests.Response) -> None:
        status = response.status_code
        content_type = response.headers.get("Content-Type", "").lower()
        if 200 <= status < 300 and not content_type.startswith("text/html"):
            return
        raw = self._read_error_body(response)
        text = raw.decode("utf-8", "replace")
        html = content_type.startswith("text/html") or text.lstrip()[:15].lower().startswith(
            ("<!doctype html", "<html")
        )
        summary = _summarize(text, html=html)
        host = _host(response.url or "")
        common: Dict[str, Any] = dict(
            provider=self.provider,
            status_code=status,
            body=summary,
            headers=response.headers,
            url=redact_url(response.url or ""),
        )
        if _is_challenge(response, text):
            raise CloudflareError(
                f"{self.provider}: {host} answered with a Cloudflare bot-protection challenge "
                f"(HTTP {status}) instead of the API; it needs a browser session. Try again "
                "later, from another network or through a proxy (proxy=...)",
                **common,
            )
        if 200 <= status < 300:
            raise ProtocolError(
                f"{self.provider}: {host} answered HTTP {status} with an HTML page, not the API: "
                f"{summary!r}",
                provider=self.provider,
                frame=summary,
            )
        reason = f"HTTP {status} {response.reason or ''}".rstrip()
        detail = f": {summary}" if summary else ""
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            hint = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            raise RateLimitError(
                f"{self.provider}: rate limited by {host} ({reason}){hint}{detail}",
                retry_after=retry_after,
                **common,
            )
        if status == 401:
            raise AuthenticationError(
                f"{self.provider}: {host} refused the credentials ({reason}){detail}", **common
            )
        raise ResponseStatusError(f"{self.provider}: {host} answered {reason}{detail}", **common)

    def _read_error_body(self, response: requests.Response) -> bytes:
        try:
            return response.raw.read(ERROR_BODY_LIMIT, decode_content=True) or b""
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError):
            return b""  # the status alone still says what happened


MAX_PROXY_POOLS = 8  # per adapter; requests keeps one pool per proxy URL forever


def _forget_old_proxies(session: requests.Session, url: str) -> None:
    """Close the pools of the least recently added proxies beyond ``MAX_PROXY_POOLS``,
    so rotating through many proxies does not keep a socket open for each."""
    managers = getattr(session.get_adapter(url), "proxy_manager", None)
    if not isinstance(managers, dict):
        return
    while len(managers) > MAX_PROXY_POOLS:
        try:
            oldest = next(iter(managers))
            manager = managers.pop(oldest)
        except (StopIteration, KeyError, RuntimeError):  # another thread got there first
            return
        manager.clear()


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """``Retry-After`` in seconds (from seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # "-0000": no zone given; HTTP dates are GMT
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def excerpt(data: Union[bytes, str], limit: int = 120) -> str:
    """A short, printable excerpt of a frame for error messages."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


_TAG = re.compile(r"<(head|script|style)\b.*?</\1>|<[^>]+>", re.S | re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.S | re.I)
_SPACE = re.compile(r"\s+")


def _summarize(text: str, *, html: bool) -> str:
    """The part of an error body worth showing: JSON's message, HTML's title and text."""
    text = text[:8192]  # enough to describe it; the regexes below stay linear-ish
    if html:
        title = _TITLE.search(text)
        body = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
        if title:
            heading = _SPACE.sub(" ", title.group(1)).strip()
            body = body if body.startswith(heading) else f"{heading}: {body}".rstrip(": ")
        text = body
    else:
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        message = _json_message(payload)
        text = message if message else _SPACE.sub(" ", text).strip()
    return text if len(text) <= EXCERPT_LENGTH else text[: EXCERPT_LENGTH - 1] + "…"


def _json_message(payload: Any) -> Optional[str]:
    if isinstance(payload, dict):
        for key in ("error", "message", "detail"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict):
                inner = _json_message(value)
                if inner:
                    return inner
    return None


_CHALLENGE_MARKERS = ("just a moment", "challenge-platform", "cf-chl", "attention required! | cloudflare")


def _is_challenge(response: requests.Response, text: str) -> bool:
    headers = response.headers
    if headers.get("cf-mitigated", "").lower() == "challenge":
        return True
    if "cloudflare" not in headers.get("Server", "").lower() and "__cf_chl" not in text:
        return False
    lowered = text[:20000].lower()
    return any(marker in lowered for marker in _CHALLENGE_MARKERS)


def _host(url: str) -> str:
    return urlsplit(redact_url(url)).netloc or "the server"


class _ChunkFramingError(http.client.HTTPException):
    """A chunked body whose framing is broken (a bad chunk-size line, a chunk not
    followed by CRLF); reported as the stream breaking, like a cut connection."""


_MAX_CHUNK_LINE = 4096  # bytes in a chunk-size line (with extensions) or a trailer line
_MAX_TRAILER = 8192  # bytes in the trailer section after the last chunk


def _plain_encoding(response: requests.Response) -> bool:
    """Whether the body has no content coding (gzip and the like are left to urllib3)."""
    return response.headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity")


def _read_chunks(raw: Any, before_read: Optional[Callable[[], None]] = None) -> Optional[Iterator[bytes]]:
    """A reader of a chunked body's data, or None where urllib3 must read it.

    urllib3's ``read_chunked`` spends about a microsecond of bookkeeping per HTTP
    chunk, and streaming servers send one small chunk per token. This reads the same
    framing from the same buffered socket reader: a chunk's data comes out as soon as
    it is buffered (``read1``, at most ``READ_SIZE`` bytes at a time; a chunk's last
    bytes once the CRLF after them is in too), and once the last chunk and the
    trailers are read the connection goes back to the pool, as urllib3 would do.
    Broken framing raises :class:`_ChunkFramingError`, a body cut short
    :class:`http.client.IncompleteRead`, both translated by ``Call.reading``.

    ``before_read``, if given, runs before every socket read (at most one per call
    of ``readline``/``read1`` then): a deadline is kept however a server drips bytes.
    """
    message = getattr(raw, "_original_response", None)
    buffered = getattr(message, "fp", None)
    if buffered is None or not hasattr(buffered, "read1") or getattr(raw, "_fp", None) is not message:
        return None
    if before_read is None:
        return _chunks(raw, message, buffered.readline, buffered.read1)
    return _chunks(raw, message, *_checked_reads(buffered, before_read))


def _chunks(
    raw: Any, message: Any, readline: Callable[[int], bytes], read1: Callable[[int], bytes]
) -> Iterator[bytes]:
    while True:
        line = readline(_MAX_CHUNK_LINE + 1)
        if line[-1:] != b"\n":
            if len(line) > _MAX_CHUNK_LINE:
                raise _ChunkFramingError("a chunk-size line too long")
            raise http.client.IncompleteRead(line)  # the body ended before its last chunk
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):  # int() would take "0x1" or "-1"
            raise _ChunkFramingError("a malformed chunk-size line")
        left = int(size_text, 16)
        if not left:
            break
        while True:
            data = read1(min(left, READ_SIZE))
            if not data:
                raise http.client.IncompleteRead(b"", left)
            left -= len(data)
            if not left:
                break
            yield data
        # The CRLF after the chunk is read before its last bytes are yielded, as urllib3
        # does: then an empty buffer means that nothing more has arrived (Call._drain).
        end = readline(3)
        if end not in (b"\r\n", b"\n"):
            if not end:
                raise http.client.IncompleteRead(b"")
            raise _ChunkFramingError("a chunk not followed by CRLF")
        yield data
    trailer = 0
    while True:  # trailer fields, up to a blank line
        line = readline(_MAX_CHUNK_LINE + 1)
        if line in (b"\r\n", b"\n"):
            break
        trailer += len(line)
        if len(line) > _MAX_CHUNK_LINE or trailer > _MAX_TRAILER:
            raise _ChunkFramingError("a trailer section too long")
        if line[-1:] != b"\n":
            # The connection ended, or (when drained) the rest is not here yet: the body
            # is complete, but the connection is not known to be clean, so not reused.
            return
    message.close()  # the body is complete: the connection can be reused
    raw.release_conn()


def _checked_reads(
    buffered: Any, before_read: Callable[[], None]
) -> Tuple[Callable[[int], bytes], Callable[[int], bytes]]:
    """``readline`` and ``read1`` over ``buffered`` that call ``before_read`` before each
    socket read (``peek`` and ``read1`` do at most one; ``readline`` could do many)."""

    def readline(limit: int) -> bytes:
        parts = []
        size = 0
        while size < limit:
            before_read()
            data = buffered.peek(1)[: limit - size]  # the buffered bytes, after at most one read
            if not data:
                break
            newline = data.find(b"\n") + 1
            part = buffered.read(newline or len(data))  # from the buffer: no socket read
            parts.append(part)
            size += len(part)
            if newline:
                break
        return b"".join(parts)

    def read1(size: int) -> bytes:
        before_read()
        return buffered.read1(size)  # type: ignore[no-any-return]

    return readline, read1


def _reason(exc: BaseException) -> str:
    """The root cause of a transport error in a few words, never its URLs or credentials."""
    try:
        return _find_reason(exc)
    except Exception:  # describing an error must never raise one of its own
        return type(exc).__name__


def _find_reason(exc: BaseException) -> str:
    seen = set()
    stack = [exc]
    found: Optional[str] = None
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.NameResolutionError):
            return "the host name could not be resolved"
        if isinstance(current, OSError) and current.strerror:
            found = current.strerror
        elif isinstance(current, urllib3.exceptions.ReadTimeoutError):
            found = found or "read timed out"
        elif isinstance(current, _ChunkFramingError):
            found = found or str(current)
        elif isinstance(current, http.client.IncompleteRead):
            # urllib3's subclasses keep a byte count in .partial; http.client keeps the bytes
            got = current.partial if isinstance(current.partial, int) else len(current.partial)
            found = found or f"body ended early, after {got} bytes of a chunk or body"
        for nested in (getattr(current, "reason", None), current.__cause__, current.__context__, *current.args):
            if isinstance(nested, BaseException):
                stack.append(nested)
    return found or type(exc).__name__
