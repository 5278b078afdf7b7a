"""Our reader of chunked bodies (``Transfer-Encoding: chunked``, RFC 9112 section 7.1).

urllib3's ``read_chunked`` spends about a microsecond of bookkeeping per HTTP chunk, and
streaming servers send one small chunk per token; it also waits for a whole chunk where
a chunk's first bytes could be delivered at once. :func:`chunks` reads the same framing
from the same buffered socket reader: a chunk's data comes out as soon as it is
buffered (``read1``, at most :data:`READ_SIZE` bytes at a time; a chunk's last bytes
once the CRLF after them is in too), and once the last chunk and the trailer section
are read the connection goes back to the pool, as urllib3 would do. Chunk extensions
are ignored, a bare LF is accepted as a line end, and a chunk-size line must be hex
digits only (``int(x, 16)`` alone would take ``0x5``, ``-5`` or ``1_0``). Broken
framing raises :class:`ChunkFramingError`, a body cut short
:class:`http.client.IncompleteRead`; the reader translates both, and every other read
failure, through the ``translate`` it is given, inside its own loop.

Setting the environment variable ``LLMPROVIDERS_CHUNK_READER=urllib3`` switches back
to urllib3's ``read_chunked`` (read when each body is opened); content-coded chunked
bodies (gzip and the like) always go through urllib3. A property test checks that this
reader and urllib3's give the same bytes for generated bodies.
"""

from __future__ import annotations

import http.client
import os
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import urllib3.exceptions

from .errors import FramingError

__all__ = [
    "READ_SIZE",
    "READER_ENV",
    "ChunkFramingError",
    "READ_ERRORS",
    "use_urllib3_reader",
    "read_chunks",
    "chunks",
]

READ_SIZE = 65536  # the most one read returns; a read returns as soon as any byte is there
#: Environment variable: ``urllib3`` reads chunked bodies with urllib3's ``read_chunked``.
READER_ENV = "LLMPROVIDERS_CHUNK_READER"
MAX_CHUNK_LINE = 4096  # bytes in a chunk-size line (with extensions) or a trailer line
MAX_TRAILER = 8192  # bytes in the trailer section after the last chunk
#: What a read of a body can raise besides the library's own errors.
READ_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError)

if TYPE_CHECKING:  # (an alias evaluated at import costs a millisecond of typing's machinery)
    Translate = Callable[[BaseException], BaseException]


class ChunkFramingError(FramingError):
    """A chunked body whose framing is broken (a bad chunk-size line, a chunk not
    followed by CRLF); reported as the stream breaking, like a cut connection."""


def use_urllib3_reader() -> bool:
    """Whether ``LLMPROVIDERS_CHUNK_READER=urllib3`` asks for urllib3's reader."""
    return os.environ.get(READER_ENV, "").strip().lower() == "urllib3"


def read_chunks(
    raw: Any, translate: Optional[Translate] = None, finish: Optional[Callable[[], None]] = None
) -> Optional[Iterator[bytes]]:
    """A reader of the chunked body of urllib3 response ``raw``, or None where urllib3
    must read it (a body not backed by http.client's buffered socket reader, as with
    test doubles)."""
    message = getattr(raw, "_original_response", None)
    buffered = getattr(message, "fp", None)
    if buffered is None or not hasattr(buffered, "read1") or getattr(raw, "_fp", None) is not message:
        return None
    return chunks(raw, message, buffered.readline, buffered.read1, translate, finish)


def chunks(
    raw: Any,
    message: Any,
    readline: Callable[[int], bytes],
    read1: Callable[[int], bytes],
    translate: Optional[Translate] = None,
    finish: Optional[Callable[[], None]] = None,
) -> Iterator[bytes]:
    """The data of a chunked body read with ``readline``/``read1``; at its end,
    ``message.close()`` and ``raw.release_conn()`` hand the connection back.

    Read failures go through ``translate`` (raised as its result, from the original);
    without it they propagate as they are. ``finish`` runs where the body ends
    without its final blank line (the connection closed in the trailer section, which
    a shutdown by abort or deadline also looks like; ``finish`` raises then).
    """
    try:
        while True:
            line = readline(MAX_CHUNK_LINE + 1)
            if line[-1:] != b"\n":
                if len(line) > MAX_CHUNK_LINE:
                    raise ChunkFramingError("a chunk-size line too long")
                raise http.client.IncompleteRead(line)  # the body ended before its last chunk
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
                raise ChunkFramingError("a malformed chunk-size line")
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
            # does: then an empty buffer means that nothing more has arrived (the drain).
            end = readline(3)
            if end not in (b"\r\n", b"\n"):
                if not end:
                    raise http.client.IncompleteRead(b"")
                raise ChunkFramingError("a chunk not followed by CRLF")
            yield data
        trailer = 0
        while True:  # trailer fields, up to a blank line
            line = readline(MAX_CHUNK_LINE + 1)
            if line in (b"\r\n", b"\n"):
                break
            trailer += len(line)
            if len(line) > MAX_CHUNK_LINE or trailer > MAX_TRAILER:
                raise ChunkFramingError("a trailer section too long")
            if line[-1:] != b"\n":
                # The connection ended, or (when drained) the rest is not here yet: the body
                # is complete, but the connection is not known to be clean, so not reused.
                if finish is not None:
                    finish()
                return
        message.close()  # the body is complete: the connection can be reused
        raw.release_conn()
    except READ_ERRORS as exc:
        if translate is None:
            raise
        raise translate(exc) from exc
