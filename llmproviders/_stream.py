"""The stream of text deltas a provider call returns.

A :class:`Stream` is a plain iterator of ``str`` that owns the HTTP response behind
it: exhausting it, breaking out of a ``with`` block, calling :meth:`Stream.close` or
letting it be garbage-collected closes the response. Errors raised while iterating
carry, in ``partial``, every character the stream yielded before them.

Example usage::

    with FlowGpt.create_completion(model="gpt-3.5-turbo", messages=messages) as stream:
        for delta in stream:
            print(delta, end="", flush=True)
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Type

from ._exceptions import StreamError

if TYPE_CHECKING:
    from ._http import Call

__all__ = ["Stream"]


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
        call: Optional["Call"] = None,
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
        self._parts: List[str] = []
        self._call = call
        self._closed = False

    @property
    def text(self) -> str:
        """The text yielded so far."""
        return "".join(self._parts)

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
            exc.partial = self.text + exc.partial
            raise
        except BaseException:
            self._closed = True
            raise
        self._parts.append(delta)
        return delta

    def close(self) -> None:
        """Stop the stream and release its connection. Safe to call more than once."""
        self._closed = True
        self._deltas.close()  # type: ignore[attr-defined]  # a generator

    def abort(self) -> None:
        """From another thread: wake a read blocked on the socket so the stream ends
        promptly (with :class:`StreamInterruptedError` in the reading thread)."""
        if self._call is not None:
            self._call.abort()

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
