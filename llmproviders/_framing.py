"""Framing readers: from body bytes, as they arrive, to frames.

One reader per wire format the providers use:

- :func:`iter_ndjson`: newline-delimited JSON, one object per line (FlowGpt).
- :func:`iter_text`: raw UTF-8 text, decoded incrementally (GPROChat).
- :func:`iter_sse`: Server-Sent Events, parsed by ``sseclient-py``; yields each event's
  ``data`` (Chatgpt4Online, Ylokh).

Each takes an iterable of byte chunks split anywhere (inside a line, an event or a
multi-byte character) and yields a frame as soon as its last byte is in, never
later. Malformed input raises :class:`ProtocolError`; a body that ends in the middle
of a frame raises :class:`StreamInterruptedError`. A single frame may not exceed
``max_frame`` bytes, so a broken or hostile upstream cannot exhaust memory.
"""

from __future__ import annotations

import codecs
import contextlib
import json
from typing import Any, ContextManager, Iterable, Iterator, List, Optional

from sseclient import SSEClient

from ._exceptions import ProtocolError, StreamInterruptedError
from ._http import excerpt

__all__ = ["iter_ndjson", "iter_text", "iter_sse", "loads_frame", "MAX_FRAME"]

MAX_FRAME = 8 * 1024 * 1024  # bytes in one line or event
_PLAIN: ContextManager[Any] = contextlib.nullcontext()  # no transport to translate errors of
MAX_EVENT_LINES = 1_000  # lines in one SSE event (real events have one or two)
#: sseclient-py appends an event's data line by line, so parsing costs about lines x
#: bytes; an event over this product is refused (a 256 MiB event must be one line).
MAX_EVENT_WORK = 1 << 28
_BOM = b"\xef\xbb\xbf"


def loads_frame(frame: Any, *, provider: str) -> Any:
    """Decode one frame's JSON, or raise :class:`ProtocolError` showing the frame."""
    try:
        return json.loads(frame)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, absurd nesting
        shown = excerpt(frame)
        raise ProtocolError(
            f"{provider}: malformed frame from upstream (not JSON): {shown!r}",
            provider=provider,
            frame=shown,
        ) from exc


def _too_large(provider: str, what: str, max_frame: int) -> ProtocolError:
    return ProtocolError(
        f"{provider}: one {what} is larger than {max_frame} bytes; refusing to buffer it",
        provider=provider,
    )


def iter_ndjson(
    chunks: Iterable[bytes], *, provider: str, max_frame: int = MAX_FRAME, reading: ContextManager[Any] = _PLAIN
) -> Iterator[Any]:
    """Yield the decoded JSON value of every non-blank line.

    A line is complete at ``\\n`` (a ``\\r`` before it is ignored). At the end of the
    body, an unterminated last line is accepted if it is complete JSON; otherwise the
    body was cut inside a line and :class:`StreamInterruptedError` is raised.
    """
    pending: List[bytes] = []  # pieces of the current, unterminated line
    pending_size = 0
    with reading:
        for chunk in chunks:
            if b"\n" not in chunk:
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size > max_frame:
                    raise _too_large(provider, "line", max_frame)
                continue
            if pending:
                pending.append(chunk)
                chunk = b"".join(pending)
                pending.clear()
            lines = chunk.split(b"\n")
            tail = lines.pop()
            for line in lines:
                if line and line != b"\r":
                    try:
                        value = json.loads(line)  # surrounding whitespace (a CR) is fine for JSON
                    except (ValueError, RecursionError):
                        line = line.strip()
                        if not line:
                            continue  # a blank line
                        value = loads_frame(line, provider=provider)  # raises, showing the line
                    yield value
            if tail:
                pending.append(tail)
            pending_size = len(tail)
            if pending_size > max_frame:
                raise _too_large(provider, "line", max_frame)
    tail = b"".join(pending).strip()
    if tail:
        try:
            value = json.loads(tail)
        except (ValueError, RecursionError) as exc:
            raise StreamInterruptedError(
                f"{provider}: the body ended in the middle of a line: {excerpt(tail)!r}",
                provider=provider,
            ) from exc
        yield value


def iter_text(chunks: Iterable[bytes], *, provider: str, reading: ContextManager[Any] = _PLAIN) -> Iterator[str]:
    """Yield UTF-8 text as it arrives; a character split across chunks comes out whole.
    A byte order mark at the start is dropped."""
    decode = codecs.getincrementaldecoder("utf-8")("strict").decode
    reads = iter(chunks)
    started = False
    with reading:
        try:
            for chunk in reads:  # until the first text, which may start with a BOM
                text = decode(chunk)
                if text:
                    started = True
                    text = text[1:] if text[0] == "\ufeff" else text
                    if text:
                        yield text
                    break
            for chunk in reads:  # the hot loop: nothing else to check
                text = decode(chunk)
                if text:
                    yield text
        except UnicodeDecodeError as exc:
            # Text that arrived before the bad bytes (in the same read) is still delivered.
            valid = exc.object[: exc.start].decode("utf-8" if started else "utf-8-sig")
            if valid:
                yield valid
            bad = exc.object[exc.start : exc.end]
            raise ProtocolError(
                f"{provider}: the reply is not valid UTF-8 (bytes {bad!r})",
                provider=provider,
                frame=repr(bad),
            ) from exc
    try:
        decode(b"", True)
    except UnicodeDecodeError as exc:
        raise StreamInterruptedError(
            f"{provider}: the body ended in the middle of a UTF-8 character", provider=provider
        ) from exc


def iter_sse(
    chunks: Iterable[bytes], *, provider: str, max_frame: int = MAX_FRAME, reading: ContextManager[Any] = _PLAIN
) -> Iterator[str]:
    """Yield the ``data`` of each Server-Sent Event, parsed by ``sseclient-py``.

    Line endings are normalised to ``\\n`` first: sseclient-py finds an event's end by
    looking for a blank line at the end of its buffer, which a ``\\n`` line followed by a
    ``\\r\\n`` blank line would hide. A body that ends inside an event (the SSE spec says
    to drop it; sseclient-py would dispatch it) raises :class:`StreamInterruptedError`.
    """
    client = _EventParser(_normalized(chunks, provider=provider, max_frame=max_frame, reading=reading))
    try:
        for event in client.events():
            yield event.data
    except UnicodeDecodeError as exc:
        bad = exc.object[max(0, exc.start - 20) : exc.end + 20]
        raise ProtocolError(
            f"{provider}: an event is not valid UTF-8: {bad!r}", provider=provider, frame=repr(bad)
        ) from exc


class _EventParser(SSEClient):
    """sseclient-py's parsing of each event's fields, over our own framing.

    sseclient-py frames events in ``_read`` by appending lines until its buffer ends in
    a blank line: quadratic for big events, and blind to a ``\n`` line followed by a
    ``\r\n`` blank one. :func:`_normalized` already cuts the bytes into whole events
    with ``\n`` line endings, so here they are only split apart; ``events()`` (the
    field parsing: ``data``, ``event``, ``id``, ``retry``, comments) is sseclient-py's.
    """

    def __init__(self, blocks: Iterator[bytes]) -> None:
        super().__init__(blocks)
        self._blocks = blocks

    def _read(self) -> Iterator[bytes]:
        for events in self._blocks:
            for event in events.split(b"\n\n"):
                if event:
                    yield event


def _normalized(
    chunks: Iterable[bytes], *, provider: str, max_frame: int, reading: ContextManager[Any]
) -> Iterator[bytes]:
    """Pass on whole events only, with CRLF and CR turned into LF.

    Events are buffered here, in a list joined once, and sseclient-py sees only whole
    events: it would append an event's pieces one by one, which is quadratic for a big
    event. Nothing waits longer for it: an event is dispatched at its blank line anyway.
    A CR at the end of a chunk becomes LF at once; an LF that starts the next chunk is
    then dropped as its pair. A leading byte order mark is removed (sseclient-py would
    read ``\ufeffdata`` as a field name).
    """
    framer = _EventFramer(provider, max_frame)
    after_cr = False  # the last chunk ended with CR: an LF starting this one belongs to it
    start: Optional[bytes] = b""  # the first bytes, until we know whether they are a BOM
    with reading:
        for chunk in chunks:
            if start is not None:
                start += chunk
                if len(start) < 3 and _BOM.startswith(start):
                    continue
                chunk = start[3:] if start.startswith(_BOM) else start
                start = None
            if after_cr and chunk[:1] == b"\n":
                chunk = chunk[1:]
            if b"\r" in chunk:
                after_cr = chunk.endswith(b"\r")
                chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            else:
                after_cr = False
            if not chunk:
                continue
            if not framer.pending and chunk[-2:] == b"\n\n" and len(chunk) < MAX_EVENT_LINES:
                framer.ends_with_newline = True
                yield chunk  # the usual case: whole small events, nothing to count or keep
                continue
            events = framer.feed(chunk)
            if events:
                yield events
    if start:
        framer.feed(start)
    framer.finish()


class _EventFramer:
    """Cuts LF-only SSE bytes into runs of whole events; caps an event's size and
    lines; tells at EOF whether the body stopped inside an event."""

    def __init__(self, provider: str, max_frame: int) -> None:
        self.provider = provider
        self.max_frame = max_frame
        self.pending: List[bytes] = []  # the event in progress
        self.size = 0
        self.lines = 0
        self.ends_with_newline = True  # the start of the body counts as a line start

    def feed(self, chunk: bytes) -> bytes:
        """Take ``chunk``; return the whole events it completes (maybe ``b""``)."""
        newlines = chunk.count(b"\n")
        if self.lines + newlines > MAX_EVENT_LINES:  # rare: look at each event in the chunk
            segments = chunk.split(b"\n\n")
            counts = [self.lines + segments[0].count(b"\n")] + [seg.count(b"\n") for seg in segments[1:]]
            if max(counts) > MAX_EVENT_LINES:  # sseclient-py's per-line work would be quadratic
                raise ProtocolError(
                    f"{self.provider}: one event has more than {MAX_EVENT_LINES} lines; refusing to buffer it",
                    provider=self.provider,
                )
        boundary = chunk.rfind(b"\n\n")
        if boundary >= 0:
            cut = boundary + 2
        elif self.ends_with_newline and chunk[0] == 10:  # "\n" + "\n" across two chunks
            cut = 1
        else:
            self.pending.append(chunk)
            self.size += len(chunk)
            self.lines += newlines
            self.ends_with_newline = chunk[-1] == 10
            if self.size > self.max_frame:
                raise _too_large(self.provider, "event", self.max_frame)
            if self.size * self.lines > MAX_EVENT_WORK:
                raise ProtocolError(
                    f"{self.provider}: one event of {self.size} bytes has {self.lines} lines; "
                    "refusing to parse it (a big event must be a few lines)",
                    provider=self.provider,
                )
            return b""
        self.ends_with_newline = chunk[-1] == 10
        if cut == len(chunk) and not self.pending:
            return chunk  # the usual case: a write of whole events, passed on as it is
        self.pending.append(chunk[:cut])
        events = b"".join(self.pending)
        rest = chunk[cut:]
        self.pending = [rest] if rest else []
        self.size = len(rest)
        self.lines = rest.count(b"\n")
        return events

    def finish(self) -> None:
        rest = b"".join(self.pending)
        if any(line == b"data" or line.startswith(b"data:") for line in rest.split(b"\n")):
            raise StreamInterruptedError(
                f"{self.provider}: the body ended in the middle of an event: {excerpt(rest)!r}",
                provider=self.provider,
            )
