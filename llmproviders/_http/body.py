"""Body readers: each byte of a response body reaches the caller as soon as the socket
returned it, whatever the body's framing, and the reader translates its own errors.

``iter_content()`` would wait for a full chunk of its size, or for EOF when the body is
close-delimited; ``read1`` returns as soon as any byte is there. So a chunked body
without content coding (what streaming servers send) is read by our chunk reader
(:mod:`.chunked`), a content-coded chunked body by urllib3's ``read_chunked``, and any
other body by a ``read1`` loop. Each reader is one generator with one ``try/except``
around its loop, so the hot path pays no extra generator step per chunk.

After the protocol's end marker (``[DONE]``, say), :func:`drain` finishes reading the
body without blocking, so the connection goes back to the pool instead of being
dropped; it never takes more than a second, and usually no time at all.
"""

from __future__ import annotations

import json
import ssl
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import requests
from urllib3.util.wait import wait_for_read

from .._exceptions import LLMProvidersError, ProtocolError
from .chunked import READ_ERRORS, READ_SIZE, read_chunks, use_urllib3_reader

if TYPE_CHECKING:
    from .chunked import Translate
from .errors import excerpt

__all__ = ["open_reader", "read1_loop", "drain", "read_json", "plain_encoding", "JSON_LIMIT"]

JSON_LIMIT = 16 * 1024 * 1024  # bytes of a whole (non-streamed) JSON body
DRAIN_LIMIT = 65536  # bytes a drain reads; more body than an end marker leaves costs the connection
DRAIN_WAIT = 0.05  # seconds a drain waits for the rest of a body to arrive
DRAIN_BUDGET = 1.0  # seconds a drain may take in all


def plain_encoding(headers: Any) -> bool:
    """Whether the body has no content coding (gzip and the like are left to urllib3)."""
    return headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity")


def open_reader(response: requests.Response, *, translate: Translate, finish: Callable[[], None]) -> Iterator[bytes]:
    """The reader of ``response``'s body: an iterator of the bytes as they arrive, at most
    :data:`READ_SIZE` at a time. Read failures are raised as ``translate(error)``;
    ``finish`` runs when a body without framing of its own ends (a closed connection
    can also mean a shutdown by abort or deadline; ``finish`` raises then)."""
    raw = response.raw
    if raw.chunked:
        if plain_encoding(response.headers) and not use_urllib3_reader():
            reads = read_chunks(raw, translate, finish)
            if reads is not None:
                return reads
        if raw.supports_chunked_reads():
            return _urllib3_chunks(raw, translate)
    return read1_loop(raw, translate, finish)


def read1_loop(raw: Any, translate: Translate, finish: Callable[[], None]) -> Iterator[bytes]:
    """urllib3's ``read1`` until the body ends: whatever one socket read returned."""
    read1 = raw.read1
    try:
        while True:
            data = read1(READ_SIZE, True)  # decode_content: gzip and the like are decoded
            if not data:
                break
            yield data
    except READ_ERRORS as exc:
        raise translate(exc) from exc
    finish()


def _urllib3_chunks(raw: Any, translate: Translate) -> Iterator[bytes]:
    """urllib3's ``read_chunked`` (content-coded bodies, or LLMPROVIDERS_CHUNK_READER=urllib3).

    Not ``yield from``: it would forward our close() into urllib3's reader, which then
    drops the connection before :func:`drain` can finish the body."""
    try:
        for data in raw.read_chunked(READ_SIZE, decode_content=True):
            yield data
    except READ_ERRORS as exc:
        raise translate(exc) from exc


def drain(
    reads: Optional[Iterator[bytes]],
    raw: Any,
    *,
    remaining: Callable[[], Optional[float]],
    limit: int = DRAIN_LIMIT,
    wait: float = DRAIN_WAIT,
    budget: float = DRAIN_BUDGET,
) -> None:
    """After the protocol's end: read the rest of the body from ``reads`` (the reader the
    protocol used), so the connection goes back to the pool instead of being dropped.

    Bounded: if nothing more has arrived yet, wait once, at most ``wait`` seconds (and
    not past the deadline: ``remaining()``), for the socket to become readable; then
    read without blocking, at most ``limit`` bytes and ``budget`` seconds. A server
    that keeps the body open, or drips it, only costs the connection, never the
    caller's time. The reader hands the connection back itself once the body is
    complete; otherwise it is closed with the response.
    """
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if reads is None or sock is None:  # nothing was read, or already back in the pool
        return
    started = time.monotonic()
    buffered = getattr(getattr(raw, "_fp", None), "fp", None)  # http.client's buffered reader
    try:
        sock.settimeout(0.0)
        try:
            ready = buffered is None or buffered.peek(1)
        except ssl.SSLWantReadError:  # TLS, non-blocking: nothing decrypted yet (not an error)
            ready = b""
        if not ready:  # nothing here yet
            left = remaining()
            timeout = wait if left is None else max(0.0, min(wait, left))
            # poll, not select: select fails on descriptors numbered 1024 and up
            if not wait_for_read(sock, timeout=timeout):
                return
        for chunk in reads:
            limit -= len(chunk)
            if limit <= 0 or time.monotonic() - started > budget:
                return  # more body than an end marker leaves: close() drops the connection
    except (LLMProvidersError, *READ_ERRORS):
        pass  # not all there: likewise


def read_json(
    reads: Iterator[bytes], *, provider: str, limit: int = JSON_LIMIT, redact: Optional[Callable[[str], str]] = None
) -> Any:
    """Read a whole body from ``reads``, at most ``limit`` bytes, and decode it as JSON
    (:class:`ProtocolError` if it is larger or not JSON). ``redact`` hides the call's
    secrets in the excerpt an error shows; the decoder's error (which holds the whole
    body) is not kept."""
    body = bytearray()
    for chunk in reads:
        body += chunk
        if len(body) > limit:
            raise ProtocolError(f"{provider}: the response body is larger than {limit} bytes", provider=provider)
    try:
        return json.loads(bytes(body))
    except (ValueError, RecursionError):
        pass
    text = bytes(body).decode("utf-8", "replace")
    shown = excerpt(redact(text) if redact is not None else text)
    raise ProtocolError(f"{provider}: expected a JSON body, got {shown!r}", provider=provider, frame=shown)
