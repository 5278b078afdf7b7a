"""The stream of text deltas a provider call returns.

A :class:`Stream` is a plain iterator of ``str`` that owns the HTTP response behind
it: exhausting it, breaking out of a ``with`` block, calling :meth:`Stream.close` or
letting it be garbage-collected closes the response. Errors raised while iterating
carry, in ``partial``, every character the stream yielded before them. To keep that
promise for replies of any size without holding them in memory, text beyond
:data:`SPILL_AFTER` characters is kept in an anonymous temporary file until the
stream is closed.

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


class Stream(Iterator[str]):
    """An iterator of text deltas, a context manager, and the record of what it yielded.

    The request is sent when iteration starts. ``text`` is everything yielded so far;
    ``metadata`` holds what the upstream reported besides text.
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
        self._deltas = deltas
        self._next = deltas.__next__
        self._parts: List[str] = []  # the latest text yielded, up to SPILL_AFTER characters
        self._held = 0
        self._spill: Optional[IO[bytes]] = None  # older text, in an anonymous temporary file
        self._abort = abort
        self._closed = False

    @property
    def text(self) -> str:
        """The text yielded so far (still there after the stream ended, until close)."""
        recent = "".join(self._parts)
        spill = self._spill
        if spill is None or spill.closed:
            return recent
        spill.seek(0)
        older = spill.read().decode("utf-8", "surrogatepass")
        spill.seek(0, io.SEEK_END)
        return older + recent

    @property
    def closed(self) -> bool:
        return self._closed

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> str:
        try:
            delta = self._next()
        except StopIteration:
            self._closed = True
            raise
        except StreamError as exc:
            self._closed = True
            if not getattr(exc, "_partial_set", False):  # the innermost stream knows it all
                exc.partial = self.text + exc.partial
                exc._partial_set = True  # type: ignore[attr-defined]
            raise
        except BaseException:
            self._closed = True
            raise
        self._parts.append(delta)
        self._held += len(delta)
        if self._held > SPILL_AFTER:
            self._spill_parts()
        return delta

    def _spill_parts(self) -> None:
        """Move the text held in memory to the temporary file: a reply of any size keeps
        memory flat, and ``partial`` stays exact."""
        if self._spill is None:
            self._spill = tempfile.TemporaryFile()
        self._spill.write("".join(self._parts).encode("utf-8", "surrogatepass"))
        self._parts.clear()
        self._held = 0

    def close(self) -> None:
        """Stop the stream and release its connection (and the text it kept). Safe to
        call more than once."""
        self._closed = True
        self._deltas.close()  # type: ignore[attr-defined]  # a generator
        if self._spill is not None:
            self._spill.close()

    def __del__(self) -> None:
        spill = getattr(self, "_spill", None)
        if spill is not None:
            spill.close()

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
        state = "closed" if self._closed else "open"
        return f"<Stream provider={self.provider} model={self.model!r} {state}>"
