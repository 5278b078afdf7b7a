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
from typing import Any, Callable, Dict, Iterator, List, Optional, Type

from ._exceptions import StreamError

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
        self._parts: List[str] = []
        self._abort = abort
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
            if not getattr(exc, "_partial_set", False):  # the innermost stream knows it all
                exc.partial = self.text + exc.partial
                exc._partial_set = True  # type: ignore[attr-defined]
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
