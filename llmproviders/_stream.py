"""The stream of text deltas a provider call returns.

A :class:`Stream` is a plain iterator of ``str`` that owns the HTTP response behind
it: exhausting it, breaking out of a ``with`` block, calling :meth:`Stream.close` or
letting it be garbage-collected closes the response. Errors raised while iterating
carry, in ``partial``, every character the stream yielded before them. To keep that
promise for replies of any size without holding them in memory, text beyond
:data:`SPILL_AFTER` characters (plus the latest :data:`JOIN_EVERY` deltas) is kept
in an anonymous temporary file, closed when the stream object is freed.

Example usage::

    with FlowGpt.create_completion(model="gpt-3.5-turbo", messages=messages) as stream:
        for delta in stream:
            print(delta, end="", flush=True)
"""

from __future__ import annotations

from types import TracebackType
import io
import tempfile
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Type

from ._exceptions import StreamError

__all__ = ["Stream", "SPILL_AFTER"]

#: Characters of yielded text kept in memory; older text goes to a temporary file.
SPILL_AFTER = 1 << 20
#: Deltas kept as separate strings before they are joined into one. Holding every
#: small delta as its own object would cost ~50 bytes each and, worse, keep the
#: allocator from reusing the memory of the deltas the caller is done with: ~5% of
#: the time of a fast stream.
JOIN_EVERY = 64


class _Record:
    """What a stream yielded so far: the latest deltas, older text joined into blocks,
    and the oldest text in a file.

    Shared by the :class:`Stream` and its recording generator (and by nothing that
    refers back to the stream, so a dropped stream is freed, and closed, at once).
    """

    __slots__ = ("parts", "blocks", "held", "spill", "closed")

    def __init__(self) -> None:
        self.parts: List[str] = []  # the latest deltas, fewer than JOIN_EVERY
        self.blocks: List[str] = []  # older text, `held` characters, up to SPILL_AFTER
        self.held = 0
        self.spill: Optional[IO[bytes]] = None  # the oldest text, in an anonymous temporary file
        self.closed = False

    def join_parts(self) -> None:
        """Join the latest deltas into one block; past SPILL_AFTER characters, move the
        blocks to the temporary file: a reply of any size keeps memory flat, and
        ``partial`` stays exact."""
        block = "".join(self.parts)
        self.parts.clear()
        self.blocks.append(block)
        self.held += len(block)
        if self.held > SPILL_AFTER:
            if self.spill is None:
                self.spill = tempfile.TemporaryFile()
            self.spill.write("".join(self.blocks).encode("utf-8", "surrogatepass"))
            self.blocks.clear()
            self.held = 0

    def text(self) -> str:
        recent = "".join(self.blocks) + "".join(self.parts)
        spill = self.spill
        if spill is None or spill.closed:
            return recent
        spill.seek(0)
        older = spill.read().decode("utf-8", "surrogatepass")
        spill.seek(0, io.SEEK_END)
        return older + recent

    def release(self) -> None:
        if self.spill is not None:
            self.spill.close()

    def __del__(self) -> None:
        self.release()


def _recording(deltas: Iterator[str], record: _Record) -> Iterator[str]:
    """Yield ``deltas``, keeping a record of them; stamp ``partial`` on stream errors."""
    parts = record.parts
    append = parts.append
    join_every = JOIN_EVERY
    try:
        for delta in deltas:  # the loop every delta goes through: keep it short
            append(delta)
            if len(parts) >= join_every:
                record.join_parts()
            yield delta
    except StreamError as exc:
        if not getattr(exc, "_partial_set", False):  # the innermost stream knows it all
            exc.partial = record.text() + exc.partial
            exc._partial_set = True  # type: ignore[attr-defined]
        raise
    finally:
        record.closed = True
        deltas.close()  # type: ignore[attr-defined]  # a generator: its response is closed


class Stream(Iterator[str]):
    """An iterator of text deltas, a context manager, and the record of what it yielded.

    The request is sent when iteration starts. ``text`` is everything yielded so far;
    ``metadata`` holds what the upstream reported besides text. (``iter(stream)`` is
    the stream's own generator, so a ``for`` loop pays no method call per delta;
    ``next(stream)`` and the loop advance the same stream.)
    """

    def __init__(
        self,
        deltas: Iterator[str],
        *,
        provider: str,
        model: str,
        abort: Optional[Callable[[], None]] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.provider = provider
        self.model = model
        #: What the upstream reported besides text, filled in as the stream runs:
        #: ``finish_reason``, ``usage``, ``id``, ``created``, ``model`` where the
        #: protocol has them.
        self.metadata: Dict[str, Any] = metadata if metadata is not None else {}
        self._record = _Record()
        self._iterator = _recording(deltas, self._record)
        self._next = self._iterator.__next__
        self._abort = abort

    @property
    def text(self) -> str:
        """The text yielded so far (also after the stream ended or was closed)."""
        return self._record.text()

    @property
    def closed(self) -> bool:
        return self._record.closed

    def __iter__(self) -> Iterator[str]:
        return self._iterator

    def __next__(self) -> str:
        return self._next()

    def close(self) -> None:
        """Stop the stream and release its connection. Safe to call more than once.
        ``text`` stays readable until the stream object itself is gone."""
        self._record.closed = True
        self._iterator.close()  # type: ignore[attr-defined]

    def abort(self) -> None:
        """From another thread: wake a read blocked on the socket so the stream ends
        promptly (with :class:`StreamInterruptedError` in the reading thread)."""
        if self._abort is not None:
            self._abort()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Stream provider={self.provider} model={self.model!r} {state}>"
