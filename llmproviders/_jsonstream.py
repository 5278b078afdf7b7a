"""Read one string field of a big JSON object piece by piece, never decoding it whole.

Chatgpt4Online's ``end`` event repeats the whole reply inside a JSON string inside a
JSON string. Decoding that the usual way costs several copies of the reply (bytes, a
``str`` of up to 4 bytes a character, the inner object...). :func:`string_field` walks
the object's top level and decodes the one string asked for in pieces, as the pieces of
the input arrive; each piece is decoded by ``json.loads`` itself, cut only where no
escape sequence, surrogate pair or UTF-8 character is split, so the text comes out
exactly as ``json.loads`` would give it. Fields before it are decoded normally (they are
small) into ``fields``.

Example usage::

    fields = {}
    for piece in string_field(event_bytes_pieces, "data", fields):
        ...  # pieces of the decoded "data" string; fields holds what came before it
"""

from __future__ import annotations

import json
from typing import Any, AnyStr, Dict, Generic, Iterable, Iterator, List, Optional

__all__ = ["string_field", "top_level_fields", "JSONStreamError", "MAX_SMALL_VALUE", "TOO_BIG"]

#: The most characters a field other than the one streamed may take.
MAX_SMALL_VALUE = 1 << 20
_WHITESPACE = " \t\r\n"
_DECODER = json.JSONDecoder()


#: A string field too big to decode here (it was scanned past, not kept).
TOO_BIG: Any = object()


class JSONStreamError(ValueError):
    """The pieces are not a JSON object with the asked-for string field."""


class _Reader(Generic[AnyStr]):
    """A cursor over pieces of str or bytes."""

    def __init__(self, pieces: Iterable[AnyStr]) -> None:
        self.pieces: Iterator[AnyStr] = iter(pieces)
        self.buf: Any = None
        self.i = 0
        self.binary = False

    def fill(self) -> bool:
        """Make ``buf[i]`` exist; False at the end of the input."""
        while self.buf is None or self.i >= len(self.buf):
            piece = next(self.pieces, None)
            if piece is None:
                return False
            if self.buf is None:
                self.binary = isinstance(piece, (bytes, bytearray))
            self.buf, self.i = piece, 0
        return True

    def char(self) -> str:
        """The next character (a byte as a 1-char str), not consumed; "" at the end."""
        if not self.fill():
            return ""
        unit = self.buf[self.i]
        return chr(unit) if self.binary else unit

    def skip_whitespace(self) -> str:
        char = self.char()
        while char and char in _WHITESPACE:
            self.i += 1
            char = self.char()
        return char

    def expect(self, wanted: str) -> None:
        char = self.skip_whitespace()
        if char != wanted:
            raise JSONStreamError(f"expected {wanted!r}, found {char or 'the end'!r}")
        self.i += 1

    def value(self, *, limit: int = MAX_SMALL_VALUE) -> Any:
        """The JSON value that starts here: a string is scanned for its end (and decoded
        if it is at most ``limit`` characters, else skipped: :data:`TOO_BIG`); any other
        value must be at most ``limit`` characters and is decoded."""
        if self.skip_whitespace() == '"':
            self.i += 1
            return self.string(limit)
        return self.small_value(limit)

    def string(self, limit: int) -> Any:
        """The string whose opening quote was just consumed: decoded, or :data:`TOO_BIG`
        (scanned to its end without decoding, in time linear in its size)."""
        quote, backslash = (b'"', b"\\") if self.binary else ('"', "\\")
        kept: List[Any] = []
        size = 0
        run = 0  # backslashes just before the current piece (their parity escapes a quote)
        while True:
            if not self.fill():
                raise JSONStreamError("the input ended inside a string")
            buf, start = self.buf, self.i
            end = buf.find(quote, start)
            while end >= 0:
                k = end
                while k > start and buf[k - 1 : k] == backslash:
                    k -= 1
                count = end - k + (run if k == start else 0)
                if count % 2 == 0:
                    break
                end = buf.find(quote, end + 1)
            stop = end if end >= 0 else len(buf)
            if size <= limit:
                kept.append(buf[start:stop])
            size += stop - start
            if end >= 0:
                self.i = end + 1
                if size > limit:
                    return TOO_BIG
                raw = buf[:0].join(kept)
                return _decode(raw, quote)
            k = len(buf)
            while k > start and buf[k - 1 : k] == backslash:
                k -= 1
            run = len(buf) - k + (run if k == start else 0)
            self.i = len(buf)

    def small_value(self, limit: int = MAX_SMALL_VALUE) -> Any:
        """Decode the (small) JSON value that starts here: a number, literal, object or
        array. Decoding is tried each time the input read for it doubles (and at its end),
        so a value in many tiny pieces costs linear time, not quadratic."""
        self.skip_whitespace()
        parts: List[Any] = []
        size = 0
        attempt_at = 256
        while True:
            more = self.fill()
            if more:
                parts.append(self.buf[self.i :])
                size += len(self.buf) - self.i
                self.i = len(self.buf)
            if more and size < attempt_at and size <= limit:
                continue
            attempt_at = size * 2
            raw: Any = parts[0][:0].join(parts) if parts else ""
            if self.binary:  # decode up to the last whole character; keep the bytes exact
                whole = _utf8_boundary(raw)
                text, undecoded = raw[:whole].decode("utf-8", "surrogateescape"), raw[whole:]
            else:
                text, undecoded = raw, raw[:0]
            try:
                value, end = _DECODER.raw_decode(text)
            except (ValueError, RecursionError):
                value, end = None, -1
            if 0 <= end < len(text) and end <= limit:  # complete, and not a number that may go on
                rest = text[end:]
                self.buf = rest.encode("utf-8", "surrogateescape") + undecoded if self.binary else rest
                self.i = 0
                return value
            if not more:
                raise JSONStreamError("the input ended inside a value")
            if size > limit:
                raise JSONStreamError(f"a field is larger than {limit} characters")

    def string_pieces(self) -> Iterator[str]:
        """Decode the string whose opening quote was just consumed, piece by piece."""
        quote, backslash = (b'"', b"\\") if self.binary else ('"', "\\")
        carry = self.buf[:0]
        while True:
            if not self.fill():
                raise JSONStreamError("the input ended inside a string")
            segment = carry + self.buf[self.i :]
            self.i = len(self.buf)
            end = _closing_quote(segment, quote, backslash)
            if end >= 0:
                if end:
                    yield _decode(segment[:end], quote)
                self.buf, self.i = segment[end + 1 :], 0
                return
            cut = _safe_cut(segment, backslash, self.binary)
            if cut:
                yield _decode(segment[:cut], quote)
            carry = segment[cut:]


def _decode(raw: Any, quote: Any) -> str:
    try:
        text: str = json.loads(quote + raw + quote)
    except ValueError as exc:
        raise JSONStreamError(f"a malformed string ({exc.args[0] if exc.args else exc})") from None
    return text


def _closing_quote(segment: Any, quote: Any, backslash: Any) -> int:
    """The index of the first unescaped quote in ``segment`` (which starts at an escape
    boundary), or -1."""
    end = segment.find(quote)
    while end >= 0:
        run = 0
        while run < end and segment[end - run - 1 : end - run] == backslash:
            run += 1
        if run % 2 == 0:
            return int(end)
        end = segment.find(quote, end + 1)
    return -1


def _safe_cut(segment: Any, backslash: Any, binary: bool) -> int:
    """The longest prefix of ``segment`` that ends at an escape boundary, not between the
    two halves of a surrogate pair and (for bytes) not inside a UTF-8 character."""
    cut = _utf8_boundary(segment) if binary else len(segment)
    u = b"u" if binary else "u"
    while True:
        start = max(0, cut - 12)
        while start > 0 and segment[start - 1 : start] == backslash:
            start -= 1  # back to the start of a run of backslashes: an escape starts there
        j = start
        moved = False
        while j < cut:
            if segment[j : j + 1] == backslash:
                length = 6 if segment[j + 1 : j + 2] == u else 2
                end = j + length
                if end > cut or (length == 6 and end == cut and _high_surrogate(segment[j + 2 : j + 6])):
                    cut, moved = j, True
                    break
                j = end
            else:
                j += 1
        if not moved:
            return cut


def _high_surrogate(digits: Any) -> bool:
    try:
        value = int(digits, 16)
    except ValueError:
        return False
    return 0xD800 <= value <= 0xDBFF


def _utf8_boundary(data: bytes) -> int:
    """``len(data)``, or where the last, incomplete UTF-8 character of ``data`` starts."""
    end = len(data)
    k = end - 1
    while k >= 0 and end - k <= 4 and data[k] & 0xC0 == 0x80:
        k -= 1
    if k >= 0 and data[k] >= 0xC0:
        need = 2 if data[k] < 0xE0 else 3 if data[k] < 0xF0 else 4
        if end - k < need:
            return k
    return end


def string_field(pieces: Iterable[AnyStr], key: str, fields: Optional[Dict[str, Any]] = None) -> Iterator[str]:
    """The decoded string value of the top-level field ``key`` of the JSON object whose
    text (str or UTF-8 bytes) arrives in ``pieces``, in pieces. The top-level fields
    before it are decoded into ``fields``, the rest is read to the end and checked.
    :class:`JSONStreamError` if the input is not such an object (raised when it is found,
    so possibly after pieces were given)."""
    reader: _Reader[AnyStr] = _Reader(pieces)
    found = fields if fields is not None else {}
    streamed = False
    reader.expect("{")
    while True:
        char = reader.skip_whitespace()
        if char == "}":
            raise JSONStreamError(f"no {key!r} field")
        if char != '"':
            raise JSONStreamError(f"expected a field name, found {char or 'the end'!r}")
        reader.i += 1
        name = reader.string(MAX_SMALL_VALUE)
        if name is TOO_BIG:
            raise JSONStreamError(f"a field name is longer than {MAX_SMALL_VALUE} characters")
        reader.expect(":")
        if name == key and not streamed:
            if reader.skip_whitespace() != '"':
                raise JSONStreamError(f"the {key!r} field is not a string")
            reader.i += 1
            yield from reader.string_pieces()
            streamed = True
        else:
            value = reader.value()
            if value is not TOO_BIG:
                found[name] = value
        char = reader.skip_whitespace()
        if char == ",":
            reader.i += 1
        elif char == "}" and streamed:
            reader.i += 1
            if reader.skip_whitespace():
                raise JSONStreamError("more input after the object")
            return
        elif char != "}":
            raise JSONStreamError(f"expected ',' or '}}', found {char or 'the end'!r}")


def top_level_fields(pieces: Iterable[AnyStr]) -> Dict[str, Any]:
    """The top-level fields of the JSON object in ``pieces``, decoded, except strings of
    more than :data:`MAX_SMALL_VALUE` characters (scanned past, left out): one pass in
    linear time and little memory, however big those strings are."""
    reader: _Reader[AnyStr] = _Reader(pieces)
    found: Dict[str, Any] = {}
    reader.expect("{")
    if reader.skip_whitespace() == "}":
        reader.i += 1
        return found
    while True:
        if reader.skip_whitespace() != '"':
            raise JSONStreamError("expected a field name")
        reader.i += 1
        name = reader.string(MAX_SMALL_VALUE)
        if name is TOO_BIG:
            raise JSONStreamError(f"a field name is longer than {MAX_SMALL_VALUE} characters")
        reader.expect(":")
        value = reader.value()
        if value is not TOO_BIG:
            found[name] = value
        char = reader.skip_whitespace()
        if char == ",":
            reader.i += 1
        elif char == "}":
            reader.i += 1
            if reader.skip_whitespace():
                raise JSONStreamError("more input after the object")
            return found
        else:
            raise JSONStreamError(f"expected ',' or '}}', found {char or 'the end'!r}")
