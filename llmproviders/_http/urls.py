"""URLs: checking what the caller gives (``base_url``, ``proxy``), joining a protocol's
paths onto a ``base_url``, comparing origins, and redacting URLs for messages and logs.

A ``base_url`` is checked strictly before any I/O: no whitespace, control characters
or backslashes anywhere, ``http``/``https`` with a host, and a host and port that
``urllib.parse`` (which names hosts in messages) and urllib3 (which connects) agree
on, so an error always names the host that was actually connected to. A query on
``base_url`` stays on every request, after the path. Redacted URLs drop credentials
and fragments; in errors and logs they keep the query's keys and replace its values
with ``[redacted]`` (``?key=[redacted]``), in reprs they drop the query.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from typing import Callable, Optional, Tuple
from urllib.parse import unquote, urlsplit, urlunsplit

import urllib3.exceptions
from urllib3.util import parse_url

from .._exceptions import InvalidArgumentError

__all__ = [
    "REDACTED",
    "redact_url",
    "host_of",
    "check_base_url",
    "check_proxy",
    "join_url",
    "remembered",
    "append_path",
    "with_default_path",
    "origin",
    "same_origin",
    "PROXY_SCHEMES",
]

#: What replaces a secret (a query value, a key echoed by a server) in messages.
REDACTED = "[redacted]"
#: Proxy URL schemes that requests can use (``socks*`` with the ``socks`` extra).
PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")  # whitespace, control characters, backslash


def redact_url(url: str, *, query_keys: bool = False) -> str:
    """``url`` without credentials, fragment or query: safe for messages and logs.

    With ``query_keys``, the query stays with every value replaced by ``[redacted]``
    (``?key=[redacted]``): what errors and logs about a request show.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "[an unparseable URL]"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, _redact_query(parts.query) if query_keys else "", ""))


def _redact_query(query: str) -> str:
    fields = []
    for field in query.split("&"):
        if not field:
            continue
        name, equals, _ = field.partition("=")
        fields.append(f"{name}={REDACTED}" if equals else REDACTED)  # a bare field may be a token itself
    return "&".join(fields)


def host_of(url: str) -> str:
    """``host[:port]`` of ``url`` for a message (``"the server"`` if it has none)."""
    return urlsplit(redact_url(url)).netloc or "the server"


def _unsafe_character(value: str) -> Optional[str]:
    match = _UNSAFE.search(value)
    if match is None:
        return None
    char = match.group()
    kind = "a backslash" if char == "\\" else "whitespace" if char.isspace() else "a control character"
    return f"it contains {kind} at position {match.start()}"


def _same_host(split_host: str, urllib3_host: Optional[str]) -> bool:
    """Whether urlsplit's and urllib3's readings of a host name the same host."""
    if urllib3_host is None:
        return False
    theirs = unquote(urllib3_host.strip("[]")).lower()
    ours = unquote(split_host).lower()
    if not ours.isascii():
        try:
            ours = ours.encode("idna").decode("ascii")
        except UnicodeError:
            return False
    return ours == theirs


def _check_url(value: str, schemes: Tuple[str, ...]) -> Tuple[str, Optional[str]]:
    """``(scheme, problem)``: what is wrong with ``value`` as a URL of one of ``schemes``."""
    unsafe = _unsafe_character(value)
    if unsafe:
        return "", unsafe
    try:
        parts = urlsplit(value)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        message = str(exc)
        if "Port" in message or "port" in message:
            return "", "its port is not a number from 0 to 65535"
        return "", f"it is not a valid URL ({message})"
    scheme = parts.scheme.lower()
    if scheme not in schemes or not host:
        return scheme, "it needs " + " or ".join(f"{s}://" for s in schemes[:2]) + " and a host"
    try:
        connected = parse_url(value)
    except (urllib3.exceptions.LocationParseError, ValueError):
        return scheme, "urllib3 cannot parse it"
    if (connected.scheme or "").lower() != scheme or not _same_host(host, connected.host) or connected.port != port:
        return scheme, "its host is ambiguous (URL parsers disagree on which host it names)"
    return scheme, None


def check_base_url(base_url: str) -> str:
    """Validate ``base_url`` (``http(s)://host[:port][/prefix][?query]``); return it
    with the trailing slash of its path and any ``#fragment`` (never sent) removed.

    Raises :class:`InvalidArgumentError` (never echoing credentials or query values).
    """
    if type(base_url) is str and not may_hold_secret(base_url):
        return _checked_base_url(base_url)  # every call checks its base URL: remembered
    return _check_base_url(base_url)


def may_hold_secret(url: str) -> bool:
    """Whether ``url`` may carry credentials or a key (``user:pass@``, a query): such a
    URL is never kept in a cache beyond the call that uses it."""
    return "@" in url or "?" in url


def remembered(function: Callable[..., str]) -> Callable[..., str]:
    """``function`` of URL strings, its results cached unless an argument may hold a
    secret (:func:`may_hold_secret`): computed afresh then, and kept nowhere."""
    cached = functools.lru_cache(maxsize=256)(function)

    @functools.wraps(function)
    def call(*urls: Optional[str]) -> str:
        if any(url is not None and (type(url) is not str or may_hold_secret(url)) for url in urls):
            return function(*urls)
        return cached(*urls)

    call.cache_info = cached.cache_info  # type: ignore[attr-defined]  # as functools.lru_cache's
    call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return call


@functools.lru_cache(maxsize=64)
def _checked_base_url(base_url: str) -> str:
    return _check_base_url(base_url)  # (an error is raised each time, not remembered)


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str):
        problem: Optional[str] = "it is not a string"
    else:
        _, problem = _check_url(base_url, ("http", "https"))
    if problem is None:
        parts = urlsplit(base_url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), parts.query, ""))
    shown = f" ({redact_url(base_url)!r})" if problem.startswith("it needs") else ""
    raise InvalidArgumentError(
        f"base_url must look like 'http://host:port' or 'https://host/prefix': {problem}{shown}"
    )


def check_proxy(proxy: str) -> str:
    """Validate ``proxy`` (``scheme://[user:password@]host:port``, a scheme requests
    can use); return it. Raises :class:`InvalidArgumentError`, never echoing it."""
    problem: Optional[str]
    scheme = ""
    if not isinstance(proxy, str) or "://" not in proxy:
        problem = "it is not a URL"
    else:
        scheme, problem = _check_url(proxy, PROXY_SCHEMES)
        if problem is not None and problem.startswith("it needs"):
            if scheme in PROXY_SCHEMES:
                problem = "it has no host"
            else:
                named = f"{scheme!r} " if re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", scheme) else ""
                problem = f"its scheme {named}is not supported (use one of {', '.join(PROXY_SCHEMES)})"
    if problem is None:
        if scheme.startswith("socks") and importlib.util.find_spec("socks") is None:
            raise InvalidArgumentError("SOCKS proxies need PySocks: pip install 'llmproviders[socks]'")
        return proxy
    raise InvalidArgumentError(
        f"proxy must be a URL such as 'http://host:3128' or 'socks5://host:1080': {problem}"
    )


@remembered
def join_url(base_url: Optional[str], default_url: str) -> str:
    """Point ``default_url`` (a protocol's real URL) at ``base_url``, keeping its path.

    A path prefix on ``base_url`` is kept; where the prefix already ends with the
    start of the protocol's path it is not repeated, so both ``http://h:8080`` and
    the OpenAI-style ``http://h:8080/v1`` reach ``http://h:8080/v1/chat/completions``.
    A query on ``base_url`` comes after the joined path.
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
    query = "&".join(q for q in (base.query, target.query) if q)
    return urlunsplit((base.scheme, base.netloc, joined, query, ""))


def append_path(base_url: str, path: str) -> str:
    """``base_url`` with ``path`` appended to its path, before its query:
    ``append_path("http://h/v1?key=k", "models") == "http://h/v1/models?key=k"``."""
    parts = urlsplit(base_url)
    joined = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, joined, parts.query, ""))


def with_default_path(base_url: str, path: str) -> str:
    """``base_url`` as it is if it has a path, else with ``path`` (``http://h:8080`` ->
    ``http://h:8080/v1``), its query kept after it."""
    if urlsplit(base_url).path.strip("/"):
        return base_url
    return append_path(base_url, path)


def origin(url: str) -> Tuple[str, str, Optional[int]]:
    """``(scheme, host, port)`` of ``url``, the port made explicit; ValueError if it
    has no host or cannot be parsed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if not host:
        raise ValueError("no host")
    return scheme, host, parts.port or _DEFAULT_PORTS.get(scheme)


def same_origin(first: str, second: str) -> bool:
    """Whether two absolute URLs share scheme, host and port (False if either is malformed)."""
    try:
        return origin(first) == origin(second)
    except ValueError:
        return False
