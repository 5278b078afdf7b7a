"""The transport: the only package that talks to ``requests`` and ``urllib3``.

A provider call is a :class:`Call` (target, proxy, timeouts, deadline, abort); each of
its requests is an :class:`Exchange`, whose ``iter_bytes()`` yields the body as the
socket returns it and raises only the library's errors. The modules, bottom up:

- :mod:`.urls`: checking ``base_url`` and ``proxy``, joining paths, redacting URLs;
- :mod:`.headers`: checking request headers before any I/O;
- :mod:`.errors`: status checks and the translation of every transport failure;
- :mod:`.chunked`: our reader of chunked bodies (``LLMPROVIDERS_CHUNK_READER=urllib3``
  switches back to urllib3's);
- :mod:`.deadline`: timeouts, the deadline clock, ``abort()`` and the watchdog;
- :mod:`.session`: the session pool per provider, fork safety, and the connections
  (interim responses skipped, redirects kept within the origin);
- :mod:`.body`: choosing the body reader, the ``read1`` loop, the drain;
- :mod:`.call`: :class:`Call` and :class:`Exchange`.

Nothing here imports the layers above it (framing, providers, stream, retry).
"""

from .body import JSON_LIMIT, plain_encoding
from .call import Call, Exchange
from .chunked import READ_SIZE, READER_ENV
from .deadline import DEFAULT_TIMEOUT, TimeoutArg, check_deadline, resolve_timeout
from .errors import excerpt, parse_retry_after
from .headers import check_headers, header_problem
from .nonces import random_hex, random_string
from .session import MAX_PROXY_POOLS, MAX_REDIRECTS, POOL_MAXSIZE, close_sessions, session_for
from .urls import REDACTED, append_path, check_base_url, check_proxy, join_url, redact_url, remembered, with_default_path

__all__ = [
    "Call",
    "Exchange",
    "TimeoutArg",
    "DEFAULT_TIMEOUT",
    "resolve_timeout",
    "check_deadline",
    "random_string",
    "random_hex",
    "close_sessions",
    "session_for",
    "excerpt",
    "parse_retry_after",
    "redact_url",
    "check_base_url",
    "check_proxy",
    "check_headers",
    "header_problem",
    "join_url",
    "remembered",
    "append_path",
    "with_default_path",
    "REDACTED",
    "READ_SIZE",
    "READER_ENV",
    "JSON_LIMIT",
    "MAX_PROXY_POOLS",
    "MAX_REDIRECTS",
    "POOL_MAXSIZE",
    "plain_encoding",
]
