"""The stream a provider call returns: text deltas, typed events, and what they add up to.

A :class:`Stream` is a plain iterator of ``str`` that owns the HTTP response behind
it: exhausting it, breaking out of a ``with`` block, calling :meth:`Stream.close` or
letting it be garbage-collected closes the response. :meth:`Stream.events` iterates the
same reply as typed events (:mod:`llmproviders.events`); text iteration skips the
other events but still records them, and the two can be mixed. The accumulated
properties (``text``, ``reasoning``, ``tool_calls``, ``usage``, ``finish_reason``,
``message``, ``metadata``) can be read during and after the stream.

Errors raised while iterating carry, in ``partial``, every character the stream
delivered before them (computed when first read: a long reply kept in a temporary
file is only read back if asked for).

Example usage::

    with FlowGpt.create_completion(model="gpt-3.5-turbo", messages=messages) as stream:
        for delta in stream:
            print(delta, end="", flush=True)
    print(stream.finish_reason, stream.usage)
"""

from __future__ import annotations

import json
import logging
import re
from types import TracebackType
from typing import Any, Callable, Dict, Iterator, List, Optional, Type

from ._exceptions import StreamError, StructuredOutputError
from ._reply import JOIN_EVERY, SPILL_AFTER, Reply
from .events import Event, TextDelta, ToolCall, Usage

__all__ = ["Stream", "ReplyView", "SPILL_AFTER", "JOIN_EVERY"]

log = logging.getLogger(__name__)


class ReplyView:
    """What a stream shows: the reply of the attempt that delivered (``commit``), and
    the metadata dict callers may already hold. Shared by the :class:`Stream` and its
    source (and by nothing that refers back to the stream, so a dropped stream is
    freed, and closed, at once)."""

    __slots__ = ("reply", "metadata", "closed", "outcome", "error", "callbacks", "__weakref__")

    def __init__(self, metadata: Optional[Dict[str, Any]] = None) -> None:
        self.reply: Optional[Reply] = None
        self.metadata: Dict[str, Any] = metadata if metadata is not None else {}
        self.closed = False
        #: None while the stream runs; then "complete", "closed" (stopped early) or "failed".
        self.outcome: Optional[str] = None
        self.error: Optional[BaseException] = None
        self.callbacks: List[Callable[[str, Optional[BaseException]], None]] = []

    def finish(self, completed: bool, error: Optional[BaseException]) -> None:
        """The stream has ended (once): record how, and tell whoever asked. A callback that
        raises is logged; it changes neither the stream's error nor the other callbacks."""
        self.closed = True
        if self.outcome is not None:
            return
        self.outcome = "complete" if completed else "failed" if error is not None else "closed"
        self.error = error
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            self.call(callback)

    def call(self, callback: Callable[[str, Optional[BaseException]], None]) -> None:
        assert self.outcome is not None
        try:
            callback(self.outcome, self.error)
        except Exception:  # a bug in the callback must not replace what the stream says
            log.exception("a stream's done-callback raised")

    def commit(self, reply: Reply) -> None:
        """``reply`` is the one the caller sees from now on; its metadata lands in
        :attr:`metadata` (and goes on landing there)."""
        self.metadata.update(reply.metadata)
        reply.metadata = self.metadata
        self.reply = reply

    def attach(self, error: StreamError) -> None:
        """Let ``error.partial`` be the delivered text, read when it is first asked for
        (unless whoever raised it said what it is)."""
        if error._partial is None and error._partial_source is None:
            reply = self.reply
            error._partial_source = reply.record if reply is not None else None


def _recorded(items: Iterator[Any], view: ReplyView) -> Iterator[Any]:
    """A plain iterator's items, recorded on a reply of their own (``Stream(iterator)``)."""
    reply = Reply()
    view.commit(reply)
    record = reply.record
    try:
        for item in items:
            if type(item) is str:
                record.parts.append(item)
                if len(record.parts) >= JOIN_EVERY:
                    record.join_parts()
            else:
                emitted = reply.apply(item)
                if type(emitted) is list:
                    yield from emitted
                    continue
                item = emitted
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _texts(source: Iterator[Any], view: ReplyView) -> Iterator[str]:
    """The text deltas of ``source`` (other events are recorded on the reply, skipped here)."""
    completed, error = False, None
    try:
        for item in source:  # the loop every delta goes through: keep it short
            if type(item) is str:
                yield item
        completed = True
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = _attached(exc, view)
        raise
    finally:
        source.close()  # type: ignore[attr-defined]  # a generator: its response is closed
        view.finish(completed, error)


def _events(source: Iterator[Any], view: ReplyView) -> Iterator[Event]:
    """Every event of ``source``, text as :class:`TextDelta`."""
    completed, error = False, None
    try:
        for item in source:
            yield TextDelta(item) if type(item) is str else item
        completed = True
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = _attached(exc, view)
        raise
    finally:
        source.close()  # type: ignore[attr-defined]
        view.finish(completed, error)


def _items(source: Iterator[Any], view: ReplyView) -> Iterator[Any]:
    """Every item of ``source`` as it is: text as ``str``, other events as they are (for
    facades that sort them out themselves, such as the asyncio one)."""
    completed, error = False, None
    try:
        for item in source:
            yield item
        completed = True
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = _attached(exc, view)
        raise
    finally:
        source.close()  # type: ignore[attr-defined]
        view.finish(completed, error)


def _joined(source: Iterator[Any], view: ReplyView) -> Iterator[Any]:
    """``stream=False``: the whole text once, at the end, then the other events in order
    (a source of its own, so text iteration and :meth:`Stream.events` share it)."""
    events: List[Any] = []
    try:
        for item in source:
            if type(item) is not str:
                events.append(item)
    finally:
        source.close()  # type: ignore[attr-defined]
    text = view.reply.text if view.reply is not None else ""
    if text:
        yield text
    yield from events


def _attached(error: BaseException, view: ReplyView) -> BaseException:
    if isinstance(error, StreamError):
        view.attach(error)
    return error


class Stream(Iterator[str]):
    """An iterator of text deltas, a context manager, and the record of the reply.

    The request is sent when iteration starts. ``text`` is everything delivered so far;
    ``metadata`` holds what the upstream reported besides (``id``, ``created``,
    ``model``, ``finish_reason``, ``usage``, ... where the protocol has them). Only the
    attempt that delivered counts: a retried attempt leaves nothing here.
    (``iter(stream)`` is the stream's own generator, so a ``for`` loop pays no method
    call per delta; ``next(stream)``, the loop and :meth:`events` advance the same
    stream.)
    """

    def __init__(
        self,
        source: Iterator[Any],
        *,
        provider: str,
        model: str,
        abort: Optional[Callable[[], None]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        view: Optional[ReplyView] = None,
        whole: bool = False,
    ) -> None:
        self.provider = provider
        self.model = model
        if view is None:  # a plain iterator of text (and events): the stream records it itself
            view = ReplyView(metadata)
            source = _recorded(source, view)
        if whole:
            source = _joined(source, view)
        self._view = view
        self._source = source
        self._iterator = _texts(source, view)
        self._next = self._iterator.__next__
        self._event_iterator: Optional[Iterator[Event]] = None
        self._item_iterator: Optional[Iterator[Any]] = None
        self._abort = abort

    # -- iterating ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[str]:
        return self._iterator

    def __next__(self) -> str:
        return self._next()

    def events(self) -> Iterator[Event]:
        """The reply as typed events, in wire order (text as :class:`TextDelta`). Shares
        the stream's position with text iteration."""
        if self._event_iterator is None:
            self._event_iterator = _events(self._source, self._view)
        return self._event_iterator

    def _items(self) -> Iterator[Any]:
        """Text (``str``) and the other events as they come, from the same position
        (the asyncio facade's worker reads this)."""
        if self._item_iterator is None:
            self._item_iterator = _items(self._source, self._view)
        return self._item_iterator

    # -- what the reply added up to ----------------------------------------------------------

    @property
    def metadata(self) -> Dict[str, Any]:
        """What the upstream reported besides the reply, filled in as the stream runs."""
        return self._view.metadata

    @property
    def text(self) -> str:
        """The text delivered so far (also after the stream ended or was closed)."""
        reply = self._view.reply
        return reply.text if reply is not None else ""

    @property
    def reasoning(self) -> str:
        """The model's reasoning received so far ("" if it gave none)."""
        reply = self._view.reply
        return reply.reasoning if reply is not None else ""

    @property
    def refusal(self) -> Optional[str]:
        """The refusal received so far, or None."""
        reply = self._view.reply
        return reply.refusal if reply is not None else None

    @property
    def tool_calls(self) -> List[ToolCall]:
        """The tool calls completed so far."""
        reply = self._view.reply
        return list(reply.tool_calls) if reply is not None else []

    @property
    def usage(self) -> Optional[Usage]:
        """The last token counts the server reported, or None."""
        reply = self._view.reply
        return reply.usage if reply is not None else None

    @property
    def finish_reason(self) -> Optional[str]:
        """Why the reply ended (``"stop"``, ``"length"``, ``"tool_calls"``...), or None."""
        reply = self._view.reply
        return reply.finish_reason if reply is not None else None

    @property
    def logprobs(self) -> List[Any]:
        """Log-probability entries, when asked for (``logprobs=True``) and sent."""
        reply = self._view.reply
        return list(reply.logprobs) if reply is not None else []

    @property
    def message(self) -> Dict[str, Any]:
        """The assistant message in OpenAI's shape, ready to append to a history:
        ``{"role": "assistant", "content": text or None}``, plus ``tool_calls`` and
        ``reasoning_content`` when there are any."""
        reply = self._view.reply
        return reply.message() if reply is not None else {"role": "assistant", "content": None}

    @property
    def closed(self) -> bool:
        return self._view.closed

    # -- consuming --------------------------------------------------------------------------

    def json(self) -> Any:
        """Read the stream to its end and return the reply's JSON value (a Markdown code
        fence around it is tolerated). Text that is not JSON raises
        :class:`StructuredOutputError`, which keeps the text."""
        with self:
            for _ in self:
                pass
        return parse_json_reply(self.text, provider=self.provider)

    def close(self) -> None:
        """Stop the stream and release its connection. Safe to call more than once.
        ``text`` and the other properties stay readable."""
        for iterator in (self._iterator, self._event_iterator, self._item_iterator, self._source):
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        self._view.finish(False, None)  # (if it had not ended already)

    @property
    def outcome(self) -> Optional[str]:
        """None while the stream may go on; then ``"complete"`` (it reached its end),
        ``"failed"`` (it raised an error) or ``"closed"`` (stopped before its end)."""
        return self._view.outcome

    def add_done_callback(self, callback: Callable[[str, Optional[BaseException]], None]) -> None:
        """Call ``callback(outcome, error)`` once, when the stream ends (see
        :attr:`outcome`; ``error`` is the exception for ``"failed"``), in the thread that
        ends it. Called at once if it has ended already. An exception a callback raises
        is logged (``llmproviders._stream``), never raised where the stream ends."""
        view = self._view
        if view.outcome is not None:
            view.call(callback)
        else:
            view.callbacks.append(callback)

    def abort(self) -> None:
        """From another thread: wake a read blocked on the socket so the stream ends
        promptly (with :class:`StreamInterruptedError` in the reading thread)."""
        if self._abort is not None:
            self._abort()

    # -- showing ---------------------------------------------------------------------------

    def display(self) -> "Stream":
        """Read the stream to its end while showing it: in a Jupyter notebook as
        Markdown updated live (reasoning collapsed, tool calls as JSON, a footer with
        provider, model, tokens and timings), elsewhere as text deltas on stdout.
        Returns the stream, consumed. Interrupting the kernel closes the connection and
        leaves the partial reply shown, marked "(interrupted)". See :mod:`llmproviders._display`."""
        from ._display import display  # IPython is never imported by import llmproviders

        return display(self)

    def _repr_markdown_(self) -> str:
        """A finished stream's reply as Markdown (for notebooks); an open stream gets a
        note instead, and is not read."""
        from ._display import markdown

        return markdown(self)

    def _ipython_display_(self) -> None:
        """In a notebook: the Markdown, except as the result of the cell in which
        :meth:`display` already showed this stream (it would be shown twice)."""
        from ._display import ipython_display

        ipython_display(self)

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


_FENCE = r"^\s*```[\w+-]*[ \t]*\n(.*?)\n?```\s*$"  # compiled on first use


def parse_json_reply(text: str, *, provider: Optional[str] = None) -> Any:
    """The JSON value of a reply's text; a fenced code block around it is tolerated."""
    candidate = text.strip()
    fenced = re.match(_FENCE, candidate, re.S)
    if fenced:
        candidate = fenced.group(1).strip()
    try:
        return json.loads(candidate)
    except (ValueError, RecursionError) as exc:
        shown = text if len(text) <= 120 else text[:119] + "…"
        who = f"{provider}: " if provider else ""
        raise StructuredOutputError(
            f"{who}the reply is not valid JSON ({exc}): {shown!r}", provider=provider, text=text
        ) from exc
