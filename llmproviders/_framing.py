"""Framing: from body bytes, as they arrive, to frames. No I/O here.

One decoder per wire format the providers use, each a generator over any iterable of
byte chunks (a transport's body, or a list in tests):

- :func:`iter_ndjson`: newline-delimited JSON; yields each line's decoded value (FlowGpt).
- :func:`iter_text`: raw UTF-8 text, decoded incrementally; yields ``str`` (GPROChat).
- :func:`iter_sse_events`: Server-Sent Events as the WHATWG standard reads them; yields
  each dispatched event (``.event``, ``.data``, ``.id``), its fields parsed by
  ``sseclient-py`` (Chatgpt4Online, the OpenAI protocol). :func:`iter_sse` yields just
  each event's ``data``; :func:`iter_sse_frames` (what providers read) yields the
  ``data`` alone, as ``str``, for the usual event (one ``data`` line, nothing else).
- :func:`iter_json`: one whole JSON body (a non-streamed reply).

Chunks may be split anywhere (inside a line, an event or a multi-byte character); a
frame is yielded as soon as its last byte is in, never later. Malformed input raises
:class:`ProtocolError`; a body that ends in the middle of a frame raises
:class:`StreamInterruptedError`, except that an SSE decoder given a ``tail`` list puts
the unterminated rest there instead (the SSE standard discards it; the protocol then
decides whether the reply was complete). A frame may not exceed ``max_frame`` bytes, so
a broken or hostile upstream cannot exhaust memory; an SSE event bigger than
:data:`RAW_EVENT_SIZE` with one ``data`` line comes out as a :class:`RawEvent` that
keeps its bytes as they arrived (no copy), for providers that read it piecewise.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
from typing import Any, Callable, ContextManager, Dict, Iterable, Iterator, List, Optional, Union

from sseclient import Event, SSEClient

from ._exceptions import ProtocolError, StreamInterruptedError
from ._http import excerpt

__all__ = [
    "iter_ndjson",
    "iter_text",
    "iter_sse",
    "iter_sse_events",
    "iter_sse_frames",
    "iter_json",
    "loads",
    "decoder",
    "loads_frame",
    "preview",
    "RawEvent",
    "FRAMINGS",
    "MAX_FRAME",
    "MAX_JSON_BODY",
]

MAX_FRAME = 8 * 1024 * 1024  # bytes in one line or event
MAX_JSON_BODY = 16 * 1024 * 1024  # bytes in a whole (non-streamed) JSON body
_PLAIN: ContextManager[Any] = contextlib.nullcontext()
_CUT = object()
MAX_EVENT_LINES = 1_000  # lines in one SSE event (real events have one or two)
#: sseclient-py appends an event's data line by line, so parsing costs about lines x
#: bytes; an event over this product is refused (a 256 MiB event must be one line).
MAX_EVENT_WORK = 1 << 28
#: An SSE event with one ``data`` line bigger than this is passed on as a RawEvent.
RAW_EVENT_SIZE = 1 << 20
_BOM = b"\xef\xbb\xbf"

#: Environment variable: ``json`` keeps the standard library's decoder even where orjson
#: is installed (the speedups extra).
JSON_ENV = "LLMPROVIDERS_JSON"


def _frame_decoder() -> Callable[[Any], Any]:
    """orjson's ``loads`` where it is installed (``pip install 'llmproviders[speedups]'``),
    else ``json.loads``. Either way a frame that fails to decode goes to :func:`loads_frame`
    (the standard library), so results are the same: orjson refuses what the standard
    library takes (NaN, integers beyond 64 bits), and then the standard library decides."""
    if os.environ.get(JSON_ENV, "").strip().lower() != "json":
        try:
            import orjson
        except ImportError:
            pass
        else:
            return orjson.loads
    return json.loads


def decoder() -> Callable[[Any], Any]:
    """The JSON decoder of the hot path (see :func:`_frame_decoder`), chosen when first
    asked for: importing orjson costs more than the rest of the package's import."""
    global loads
    if loads is _first_loads:
        loads = _frame_decoder()
    return loads


def _first_loads(data: Any) -> Any:
    return decoder()(data)


#: The JSON decoder of the hot path, once chosen (call :func:`decoder` to be sure it is).
loads: Callable[[Any], Any] = _first_loads


def preview(value: Any, redact: Optional[Callable[[str], str]] = None, limit: int = 120) -> str:
    """A short, printable excerpt of something taken from the upstream (bytes, text, or a
    decoded JSON value), for an error: secrets redacted first (so a secret cut by the
    excerpt cannot slip through), never raising (a value nested too deeply to print)."""
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", "replace")
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=repr)
        except (ValueError, TypeError, RecursionError):
            text = "(a value nested too deeply to show)"
    if redact is not None:
        text = redact(text)
    return excerpt(text, limit)


def loads_frame(frame: Any, *, provider: str, redact: Optional[Callable[[str], str]] = None) -> Any:
    """Decode one frame's JSON, or raise :class:`ProtocolError` showing the frame
    (shortened, with ``redact`` applied: the frame comes from the upstream and may echo
    a secret). Absurdly deep nesting is a ProtocolError too, never a RecursionError. The
    decoder's own error is neither chained nor kept as context: it holds the whole frame."""
    try:
        return json.loads(frame)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, absurd nesting
        why = "nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
    shown = preview(frame, redact)
    raise ProtocolError(f"{provider}: malformed frame from upstream ({why}): {shown!r}", provider=provider, frame=shown)


def _too_large(provider: str, what: str, max_frame: int) -> ProtocolError:
    return ProtocolError(
        f"{provider}: one {what} is larger than {max_frame} bytes; refusing to buffer it", provider=provider
    )


def iter_ndjson(
    chunks: Iterable[bytes],
    *,
    provider: str,
    max_frame: int = MAX_FRAME,
    tail: Optional[List[bytes]] = None,
    reading: ContextManager[Any] = _PLAIN,
    redact: Optional[Callable[[str], str]] = None,
) -> Iterator[Any]:
    """Yield the decoded JSON value of every non-blank line.

    A line is complete at ``\\n`` (a ``\\r`` before it is ignored). At the end of the
    body, an unterminated last line is accepted if it is complete JSON; otherwise the
    body was cut inside a line and :class:`StreamInterruptedError` is raised.
    """
    pending: List[bytes] = []  # pieces of the current, unterminated line
    pending_size = 0
    decode = decoder()
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
            rest = lines.pop()
            for line in lines:
                if line and line != b"\r":
                    try:
                        value = decode(line)  # surrounding whitespace (a CR) is fine for JSON
                    except (ValueError, RecursionError):
                        value = _CUT
                    if value is _CUT:  # (outside the except block: no context that keeps the line)
                        line = line.strip()
                        if not line:
                            continue  # a blank line
                        value = loads_frame(line, provider=provider, redact=redact)  # raises, showing the line
                    yield value
            if rest:
                pending.append(rest)
            pending_size = len(rest)
            if pending_size > max_frame:
                raise _too_large(provider, "line", max_frame)
    last = b"".join(pending).strip()
    if last:
        try:
            value = json.loads(last)
        except (ValueError, RecursionError):
            value = _CUT
        if value is _CUT:  # (raised here, not in the except block: no context that holds the line)
            raise StreamInterruptedError(
                f"{provider}: the body ended in the middle of a line: {preview(last, redact)!r}", provider=provider
            )
        yield value


def iter_text(
    chunks: Iterable[bytes],
    *,
    provider: str,
    max_frame: int = MAX_FRAME,
    tail: Optional[List[bytes]] = None,
    reading: ContextManager[Any] = _PLAIN,
    redact: Optional[Callable[[str], str]] = None,
) -> Iterator[str]:
    """Yield UTF-8 text as it arrives; a character split across chunks comes out whole.
    A byte order mark at the start is dropped. (Nothing is buffered: ``max_frame`` and
    ``tail`` do not apply.)"""
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
                f"{provider}: the reply is not valid UTF-8 (bytes {bad!r})", provider=provider, frame=repr(bad)
            ) from None
    try:
        decode(b"", True)
    except UnicodeDecodeError:
        raise StreamInterruptedError(
            f"{provider}: the body ended in the middle of a UTF-8 character", provider=provider
        ) from None


def iter_json(
    chunks: Iterable[bytes],
    *,
    provider: str,
    max_frame: int = MAX_JSON_BODY,
    tail: Optional[List[bytes]] = None,
    reading: ContextManager[Any] = _PLAIN,
    redact: Optional[Callable[[str], str]] = None,
) -> Iterator[Any]:
    """Yield the one JSON value of a whole body (at most ``max_frame`` bytes, and never
    less than :data:`MAX_JSON_BODY`)."""
    limit = max(max_frame, MAX_JSON_BODY)
    body = bytearray()
    with reading:
        for chunk in chunks:
            body += chunk
            if len(body) > limit:
                raise ProtocolError(f"{provider}: the response body is larger than {limit} bytes", provider=provider)
    yield loads_frame(bytes(body), provider=provider, redact=redact)


class RawEvent:
    """An SSE event too big to copy around: one ``data`` line, kept as the chunks it
    arrived in. ``data`` decodes it (invalid UTF-8 becomes U+FFFD, as for every event);
    :meth:`pieces` gives its bytes without joining them."""

    __slots__ = ("event", "id", "retry", "_chunks", "_start", "_size")

    def __init__(self, chunks: List[bytes], start: int, size: int) -> None:
        self.event = "message"
        self.id: Optional[str] = None
        self.retry: Optional[str] = None
        self._chunks = chunks  # the event's bytes are chunks[0][start:] ... (size bytes)
        self._start = start
        self._size = size

    def __len__(self) -> int:
        return self._size

    def pieces(self) -> Iterator[bytes]:
        """The data's bytes, in the pieces they arrived in (the first and last trimmed)."""
        left = self._size
        start = self._start
        for chunk in self._chunks:
            piece = chunk[start : start + left] if start or len(chunk) - start > left else chunk
            start = 0
            if piece:
                left -= len(piece)
                yield piece
            if left <= 0:
                return

    @property
    def data(self) -> str:
        return b"".join(self.pieces()).decode("utf-8", "replace")


SSEFrame = Union[Event, RawEvent]


def iter_sse_events(
    chunks: Iterable[bytes],
    *,
    provider: str,
    max_frame: int = MAX_FRAME,
    tail: Optional[List[bytes]] = None,
    reading: ContextManager[Any] = _PLAIN,
    redact: Optional[Callable[[str], str]] = None,
) -> Iterator[SSEFrame]:
    """Yield each dispatched Server-Sent Event (``sseclient.Event``, or :class:`RawEvent`
    for a big one), as the WHATWG standard reads the stream.

    Line endings are normalised to ``\\n`` first (sseclient-py finds an event's end by
    looking for a blank line at the end of its buffer, which a ``\\n`` line followed by a
    ``\\r\\n`` blank line would hide). A leading byte order mark is dropped; events
    without data are not dispatched; invalid UTF-8 inside an event decodes to U+FFFD and
    the stream goes on. A body that ends inside an event does not dispatch it: the
    unterminated rest goes into ``tail`` if given, otherwise it is a
    :class:`StreamInterruptedError`.
    """
    return _EventParser(_normalized(chunks, provider=provider, max_frame=max_frame, reading=reading, tail=tail)).events()


def iter_sse_frames(
    chunks: Iterable[bytes],
    *,
    provider: str,
    max_frame: int = MAX_FRAME,
    tail: Optional[List[bytes]] = None,
    reading: ContextManager[Any] = _PLAIN,
    redact: Optional[Callable[[str], str]] = None,
) -> Iterator[Union[str, SSEFrame]]:
    """As :func:`iter_sse_events`, but an event of one ``data`` line and no other field
    (an event named ``message``, with no id) comes out as its data, a ``str``: the
    frames of the ``sse`` framing, one per token, made without an object each."""
    normalized = _normalized(chunks, provider=provider, max_frame=max_frame, reading=reading, tail=tail)
    return _EventParser(normalized).events(text=True)


def iter_sse(
    chunks: Iterable[bytes],
    *,
    provider: str,
    max_frame: int = MAX_FRAME,
    tail: Optional[List[bytes]] = None,
    reading: ContextManager[Any] = _PLAIN,
    redact: Optional[Callable[[str], str]] = None,
) -> Iterator[str]:
    """The ``data`` of each event :func:`iter_sse_events` yields."""
    for event in iter_sse_events(chunks, provider=provider, max_frame=max_frame, tail=tail, reading=reading, redact=redact):
        yield event.data


class _EventParser(SSEClient):
    """sseclient-py's parsing of each event's fields, over our own framing.

    sseclient-py frames events in ``_read`` by appending lines until its buffer ends in
    a blank line: quadratic for big events, and blind to a ``\n`` line followed by a
    ``\r\n`` blank one. :func:`_normalized` already cuts the bytes into whole events
    with ``\n`` line endings, so here they are only split apart. An event of one
    ``data`` line (what LLM servers send, one per token) is read here, as the standard
    says (one space after the colon dropped; an empty value still dispatches); any other
    event goes to sseclient-py's ``events()`` (the field parsing: ``data``, ``event``,
    ``id``, ``retry``, comments), one event at a time. A :class:`RawEvent` passes by.
    """

    def __init__(self, blocks: Iterator[Union[bytes, RawEvent]]) -> None:
        super().__init__(blocks)  # type: ignore[arg-type]  # only our _read reads them
        self._blocks = blocks
        self._event = b""  # the event sseclient-py parses next

    def events(self, *, text: bool = False) -> Iterator[Any]:  # type: ignore[override]
        """Each event (with ``text``, the usual one as its data, a ``str``)."""
        for events in self._blocks:
            if isinstance(events, RawEvent):
                yield events
                continue
            # A block is whole events, each ending in a blank line. The usual block is one
            # event of one data line: its only LF before the blank line's.
            if events[:5] == b"data:" and events.find(b"\n") == len(events) - 2:
                value = (events[6:-2] if events[5:6] == b" " else events[5:-2]).decode("utf-8")
                yield value if text else Event(data=value)  # type: ignore[call-arg]  # (its stub lacks __init__)
                continue
            for event in events.split(b"\n\n"):
                if event[:5] == b"data:" and b"\n" not in event:  # a single data line
                    value = (event[6:] if event[5:6] == b" " else event[5:]).decode("utf-8")
                    yield value if text else Event(data=value)  # type: ignore[call-arg]
                elif event:
                    self._event = event
                    yield from SSEClient.events(self)

    def _read(self) -> Iterator[bytes]:
        yield self._event


def _valid_utf8(block: bytes) -> bytes:
    """``block``, with invalid UTF-8 replaced by U+FFFD (sseclient-py decodes strictly)."""
    if block.isascii():
        return block
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return block.decode("utf-8", "replace").encode("utf-8")
    return block


def _normalized(
    chunks: Iterable[bytes],
    *,
    provider: str,
    max_frame: int,
    reading: ContextManager[Any],
    tail: Optional[List[bytes]],
) -> Iterator[Union[bytes, RawEvent]]:
    """Pass on whole events only, with CRLF and CR turned into LF and valid UTF-8.

    Events are buffered here, in a list joined once, and sseclient-py sees only whole
    events: it would append an event's pieces one by one, which is quadratic for a big
    event. Nothing waits longer for it: an event is dispatched at its blank line anyway.
    A CR at the end of a chunk becomes LF at once; an LF that starts the next chunk is
    then dropped as its pair. A leading byte order mark is removed (sseclient-py would
    read ``\\ufeffdata`` as a field name).
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
                yield _valid_utf8(chunk)  # the usual case: whole small events
                continue
            events = framer.feed(chunk)
            if isinstance(events, bytes):
                if events:
                    yield _valid_utf8(events)
            else:
                for item in events:
                    yield _valid_utf8(item) if isinstance(item, bytes) else item
    if start:
        framer.feed(start)
    framer.finish(tail)


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

    def feed(self, chunk: bytes) -> Union[bytes, List[Union[bytes, RawEvent]]]:
        """Take ``chunk``; return the whole events it completes (maybe ``b""``), or, when
        it completes a big one-line event, a list with a :class:`RawEvent` in it."""
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
        if self.pending and self.size + len(chunk) > RAW_EVENT_SIZE:
            raw = self._raw(chunk)
            if raw is not None:
                return raw
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

    def _raw(self, chunk: bytes) -> Optional[List[Union[bytes, RawEvent]]]:
        """The big event in progress ends in ``chunk``: if it is a single ``data:`` line,
        hand it on as a RawEvent over its chunks (no copy), then the rest of ``chunk``.
        None if it is not such an event (it then takes the usual path)."""
        pending = self.pending
        while len(pending) > 1 and b"data:" not in pending[0][:4096]:  # small lines split across chunks
            pending[0:2] = [pending[0] + pending[1]]
        head = pending[0]
        at = 0 if head.startswith(b"data:") else head.find(b"\ndata:", 0, 4096) + 1
        if at == 0 and not head.startswith(b"data:"):
            return None
        fields = head[:at].split(b"\n")[:-1]  # small lines before the data line: id, event, retry, comments
        if any(line == b"data" or line.startswith(b"data:") for line in fields):
            return None
        before = len(fields)
        if self.lines == before:  # the data line ends in this chunk, and the blank line right after it
            take = chunk.find(b"\n")
            if chunk[take : take + 2] != b"\n\n":
                return None
            rest_at, trailing = take + 2, 0
        elif self.lines == before + 1 and self.ends_with_newline and chunk[0] == 10:
            take, rest_at, trailing = 0, 1, 1  # the line's "\n" is pending; this one ends the event
        else:
            return None
        start = at + (6 if head[at + 5 : at + 6] == b" " else 5)
        if take:
            pending.append(chunk[:take])
        event = RawEvent(pending, start, sum(map(len, pending)) - start - trailing)
        for line in fields:  # as sseclient-py would read them (it parses every other event)
            name, _, value = line.decode("utf-8", "replace").partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event.event = value or "message"
            elif name == "id":
                event.id = value
            elif name == "retry":
                event.retry = value
        self.pending, self.size, self.lines, self.ends_with_newline = [], 0, 0, True
        rest = chunk[rest_at:]
        if not rest:
            return [event]
        more = self.feed(rest)
        if isinstance(more, bytes):
            return [event, more] if more else [event]
        return [event, *more]

    def finish(self, tail: Optional[List[bytes]] = None) -> None:
        rest = b"".join(self.pending)
        if any(line == b"data" or line.startswith(b"data:") for line in rest.split(b"\n")):
            if tail is not None:
                tail.append(rest)
                return
            raise StreamInterruptedError(
                f"{self.provider}: the body ended in the middle of an event: {excerpt(rest)!r}",
                provider=self.provider,
            )


#: The framings a provider may name, by name.
FRAMINGS: Dict[str, Callable[..., Iterator[Any]]] = {
    "ndjson": iter_ndjson,
    "text": iter_text,
    "sse": iter_sse_events,
    "json": iter_json,
}
