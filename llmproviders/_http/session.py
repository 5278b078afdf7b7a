"""Sessions and connections: one pooled :class:`requests.Session` per provider class,
and the connection, pool and redirect behaviour every request gets.

Each provider class gets one session, created on first use and reused by every call
(connection pooling). Nothing per-request lives on it: headers, proxies, timeouts and
cookies travel with each request, and its cookie jar accepts nothing, so one session
serves many threads at once. After ``os.fork()`` the child drops the sessions it
inherited (their connections belong to the parent: a child that wrote on one would
swap replies with its parent) and starts with fresh ones and fresh locks.

The connections are urllib3's, with three changes. Their responses skip every interim
``1xx`` response but ``101`` (RFC 9110 section 15.2; http.client skips only ``100``),
within limits (:data:`MAX_INTERIM_RESPONSES`, :data:`MAX_INTERIM_BYTES`), and a
``101`` ends the connection. As a request goes out, the connection attaches itself to
the call's :class:`~.deadline.Stopper`, so a deadline or ``abort()`` can shut its
socket down; the pool detaches it when it takes it back, and refuses (closes) a
connection whose response is unfinished, so no caller ever reads bytes of another
caller's response. Redirects are followed only within the origin (scheme, host and
port), at most :data:`MAX_REDIRECTS` times: a redirect elsewhere would carry API keys,
signatures and the prompt to a host nobody named, so it raises :class:`CrossOrigin`.
"""

from __future__ import annotations

import functools
import http.client
import http.cookiejar
import os
import threading
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union, cast
from urllib.parse import urljoin
from urllib.request import getproxies_environment

import requests
import requests.adapters
import requests.utils
import requests.sessions

from .chunked import READ_ERRORS
from .deadline import Stopper, detach
from .errors import FramingError
from .urls import same_origin

__all__ = [
    "session_for",
    "close_sessions",
    "sending",
    "forget_old_proxies",
    "CrossOrigin",
    "FinalResponse",
    "POOL_MAXSIZE",
    "MAX_PROXY_POOLS",
    "MAX_REDIRECTS",
    "MAX_INTERIM_RESPONSES",
    "MAX_INTERIM_BYTES",
]

POOL_MAXSIZE = 64  # connections kept per host, so concurrent streams reuse them
MAX_PROXY_POOLS = 8  # per adapter; requests keeps one pool per proxy URL forever
MAX_REDIRECTS = 5  # same-origin redirects followed for one request
MAX_INTERIM_RESPONSES = 32  # 1xx responses skipped before a final one
MAX_INTERIM_BYTES = 65536  # header bytes of all the 1xx responses skipped for one request
REDIRECT_BODY_LIMIT = 65536  # bytes of a redirect's body read (and dropped) to reuse its connection

merge_setting = cast("Callable[[Any, Any], Any]", requests.sessions.merge_setting)
_sessions: Dict[type, requests.Session] = {}
_sessions_lock = threading.Lock()
_sending = threading.local()  # .stopper: the Stopper of the call this thread is sending a request for


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


@contextmanager
def sending(stopper: Stopper) -> Iterator[None]:
    """Around ``session.request``: the connections that carry it attach to ``stopper``."""
    _sending.stopper = stopper
    try:
        yield
    finally:
        _sending.stopper = None


class CrossOrigin(Exception):
    """Raised out of ``session.request`` for a redirect to another origin (not followed;
    the redirect's response is already closed). ``Call`` turns it into
    :class:`~llmproviders.RedirectError`."""

    def __init__(self, status_code: int, url: str, location: str, headers: Any) -> None:
        super().__init__(status_code)
        self.status_code = status_code
        self.url = url
        self.location = location
        self.headers = headers


class InterimResponsesError(FramingError):
    """More interim (1xx) responses, or more of their header bytes, than allowed."""


class FinalResponse(http.client.HTTPResponse):
    """http.client's response, reading past every interim (1xx) response but ``101``.

    A ``103 Early Hints`` (or a ``102``) taken for the final response would leave the
    real one on the connection for the next caller to read. ``101 Switching Protocols``
    is final, and as the connection no longer speaks HTTP it is closed afterwards.
    """

    def _read_status(self) -> Tuple[str, int, str]:
        skipped = 0
        size = 0
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            skipped += 1
            if skipped > MAX_INTERIM_RESPONSES:
                raise InterimResponsesError(f"more than {MAX_INTERIM_RESPONSES} interim (1xx) responses")
            while True:  # its header section, up to the blank line
                line = self.fp.readline(MAX_INTERIM_BYTES + 1)
                size += len(line)
                if size > MAX_INTERIM_BYTES:
                    raise InterimResponsesError(f"interim (1xx) responses with more than {MAX_INTERIM_BYTES} header bytes")
                if line in (b"\r\n", b"\n", b""):
                    break

    def begin(self) -> None:
        super().begin()
        if self.status == 101:
            self.will_close = True
        headers = self.msg
        lengths = {value.strip() for field in headers.get_all("Content-Length") or () for value in field.split(",")}
        if len(lengths) > 1:
            self.close()
            raise FramingError("a response with conflicting Content-Length values")
        if headers.get("Transfer-Encoding") is not None and (lengths or self.version == 10):
            # Framed two ways (RFC 9112, 6.1 and 6.3): whichever framing the reader follows,
            # what the other says may still come. The connection ends with this response.
            self.will_close = True


class _ConnectionHooks:
    """Connection mixin: responses skip interim ones; the connection attaches itself to
    the stopper of the call sending on it (see :func:`sending`)."""

    response_class = FinalResponse
    sock: Any

    def connect(self) -> Any:
        # urllib3 connects before request() for https (and through proxies): a deadline
        # or abort must reach the TLS handshake and a proxy's CONNECT too.
        stopper: Optional[Stopper] = getattr(_sending, "stopper", None)
        if stopper is not None:
            stopper.attach(self)
        try:
            return super().connect()  # type: ignore[misc]
        finally:
            handle = self.__dict__.pop("_llm_handle", None)
            if handle is not None:
                if stopper is not None:
                    stopper.attach(self, self.sock)  # the connected socket, from here on
                handle.close()

    def _new_conn(self) -> Any:
        sock = super()._new_conn()  # type: ignore[misc]
        stopper: Optional[Stopper] = getattr(_sending, "stopper", None)
        if stopper is not None:
            # Wrapping for TLS takes the descriptor off ``sock`` (the SSL socket is nobody's
            # until the handshake ends): a second handle on the same connection lets a stop
            # shut it down meanwhile. (It shuts down the connection, not just a descriptor.)
            handle = sock.dup()
            self._llm_handle = handle
            stopper.attach(self, handle)  # shuts it down at once if the call stopped while it connected
        return sock

    def request(self, *args: Any, **kwargs: Any) -> Any:
        stopper: Optional[Stopper] = getattr(_sending, "stopper", None)
        if stopper is not None:
            stopper.attach(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        stopper: Optional[Stopper] = getattr(_sending, "stopper", None)
        if stopper is not None:
            # Again, with the socket: it surely exists now (a stop meanwhile shuts it), and
            # http.client takes it off the connection for a response that ends it.
            stopper.attach(self, self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _PoolHooks:
    """Pool mixin: a connection taken back is detached from its call's stopper, and one
    whose response is not finished is closed rather than reused."""

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            detach(conn)
            if _unfinished(conn):
                conn.close()
        super()._put_conn(conn)  # type: ignore[misc]


def _unfinished(conn: Any) -> bool:
    """Whether http.client still holds an unfinished response on ``conn``: bytes of it
    may still come, and the next request on ``conn`` would read them."""
    response = getattr(conn, "_HTTPConnection__response", None)
    return response is not None and not response.isclosed()


@functools.lru_cache(maxsize=None)
def _hooked_pool(pool_class: type) -> type:
    """``pool_class`` with :class:`_PoolHooks`, making :class:`_ConnectionHooks` connections."""
    base: type = pool_class.ConnectionCls  # type: ignore[attr-defined]
    connection_class = type(base.__name__, (_ConnectionHooks, base), {"__module__": __name__})
    return type(pool_class.__name__, (_PoolHooks, pool_class), {"ConnectionCls": connection_class, "__module__": __name__})


def _hook_manager(manager: Any) -> Any:
    classes = manager.pool_classes_by_scheme
    if not all(issubclass(cls, _PoolHooks) for cls in classes.values()):
        manager.pool_classes_by_scheme = {
            scheme: cls if issubclass(cls, _PoolHooks) else _hooked_pool(cls) for scheme, cls in classes.items()
        }
    return manager


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose pools (direct and through proxies) use our hooks."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _hook_manager(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _hook_manager(super().proxy_manager_for(proxy, **proxy_kwargs))


class _Session(requests.Session):
    """A session that follows redirects only within the origin of the response, and
    skips requests' scans of the environment for proxies when no variable names one."""

    def merge_environment_settings(
        self, url: Union[str, bytes, None], proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        # requests reads every environment variable twice per request to find proxies
        # (about a sixth of a short request's cost). Where only the environment can name
        # one (not macOS or Windows, which ask the system too) and no ``*_proxy``
        # variable is set, the answer is known to be none: the rest is requests' own.
        environment_only = getattr(requests.utils, "getproxies", None) is getproxies_environment
        if not self.trust_env or not environment_only or _names_a_proxy():
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is True or verify is None:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
        return {
            "proxies": merge_setting(proxies, self.proxies),
            "stream": merge_setting(stream, self.stream),
            "verify": merge_setting(verify, self.verify),
            "cert": merge_setting(cert, self.cert),
        }

    def get_redirect_target(self, resp: requests.Response) -> Optional[str]:
        try:
            target = super().get_redirect_target(resp)
        except UnicodeDecodeError:  # requests decodes Location as UTF-8
            resp.close()
            raise CrossOrigin(resp.status_code, resp.url, "", resp.headers) from None
        if target is None:
            return None
        try:
            absolute: Optional[str] = urljoin(resp.url, target)
        except ValueError:
            absolute = None
        if absolute is None or not same_origin(resp.url, absolute):
            resp.close()  # its body is not read: the connection is dropped, not pooled
            raise CrossOrigin(resp.status_code, resp.url, absolute or "", resp.headers)
        _read_redirect_body(resp)
        return target


def _names_a_proxy() -> bool:
    """Whether an environment variable is named ``<scheme>_proxy`` (any case: so
    :func:`urllib.request.getproxies_environment` reads them)."""
    return any(name[-6:].lower() == "_proxy" for name in os.environ)


def _read_redirect_body(resp: requests.Response) -> None:
    """Read a same-origin redirect's body (bounded) before requests asks for
    ``resp.content``, which would read any amount. A body over the bound, or a broken
    one, costs the connection (closed), never memory."""
    if resp._content_consumed:  # type: ignore[attr-defined]
        return
    try:
        data = resp.raw.read(REDIRECT_BODY_LIMIT + 1, decode_content=False) or b""
    except READ_ERRORS:
        data = b""
        resp.raw.close()
    if len(data) > REDIRECT_BODY_LIMIT:
        resp.raw.close()  # more is coming: drop the connection
    resp._content = data[:REDIRECT_BODY_LIMIT]
    resp._content_consumed = True  # type: ignore[attr-defined]


def _new_session() -> requests.Session:
    session = _Session()
    # Cookies go with the call that needs them (see Call.open), never into shared state.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    session.max_redirects = MAX_REDIRECTS
    adapter = _Adapter(pool_connections=8, pool_maxsize=POOL_MAXSIZE)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def forget_old_proxies(session: requests.Session, url: str) -> None:
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


# -- fork safety -------------------------------------------------------------------


def _after_fork_in_child() -> None:
    """In a forked child: forget the parent's sessions and locks.

    The inherited connections are the parent's: they are never used here. Their
    descriptors are closed (close only: a shutdown would cut the parent's connection
    too) and their pools' queues get fresh locks, all without taking a lock another
    thread of the parent may have held at the fork.
    """
    global _sessions, _sessions_lock, _sending
    inherited = list(_sessions.values())
    _sessions = {}
    _sessions_lock = threading.Lock()
    _sending = threading.local()
    for session in inherited:
        try:
            _forsake(session)
        except Exception:  # noqa: BLE001  (never fail a fork over the parent's leftovers)
            pass


def _forsake(session: requests.Session) -> None:
    for adapter in list(session.adapters.values()):
        managers: List[Any] = [getattr(adapter, "poolmanager", None)]
        managers += list(getattr(adapter, "proxy_manager", {}).values())
        for manager in managers:
            container = getattr(getattr(manager, "pools", None), "_container", {})
            for pool in list(container.values()):
                queue = getattr(pool, "pool", None)
                if queue is None:
                    continue
                for conn in list(queue.queue):
                    sock = getattr(conn, "sock", None)
                    if sock is not None:
                        sock.close()
                        conn.sock = None
                queue.__init__(queue.maxsize)  # empty, with new locks (its finalizer takes them)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
