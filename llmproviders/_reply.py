"""One attempt's reply, as its events arrive.

Every attempt of a call gets a fresh :class:`Reply`: the text it delivered (a
:class:`TextRecord`, which keeps replies of any size at flat memory), its reasoning,
refusal, tool calls, usage, finish reason, logprobs and the facts the server reported
besides (``metadata``: id, created, model, ...). A provider's ``parse`` turns one
frame into events and may note facts on the reply; :meth:`Reply.apply` accumulates
the events and says which to emit (a :class:`ToolCall` is emitted once its call is
complete, just before the :class:`Finish`). An attempt that is retried is dropped
whole, so nothing of it reaches the caller; the stream reads the reply of the attempt
that delivered.
"""

from __future__ import annotations

import io
import os
import secrets
import tempfile
import threading
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Union

from .events import Finish, ReasoningDelta, RefusalDelta, ToolCall, ToolCallDelta, Usage

__all__ = ["Reply", "TextRecord", "SPILL_AFTER", "JOIN_EVERY"]

#: Characters of text kept in memory; older text goes to a temporary file.
SPILL_AFTER = 1 << 20
#: Deltas kept as separate strings before they are joined into one. Holding every
#: small delta as its own object would cost ~50 bytes each and, worse, keep the
#: allocator from reusing the memory of the deltas the caller is done with: ~5% of
#: the time of a fast stream.
JOIN_EVERY = 64
_READ_BLOCK = 1 << 20  # bytes per read when text is read back from the file
_PREAD = getattr(os, "pread", None)


class TextRecord:
    """The text delivered so far: the latest deltas, older text joined into blocks, and
    the oldest text in an anonymous temporary file (closed when the record is freed).

    The pipeline appends to :attr:`parts` itself (the hot path) and calls
    :meth:`join_parts` every :data:`JOIN_EVERY` deltas, in the stream's thread. Another
    thread may read the text meanwhile (``stream.text`` from a UI thread): moving text
    between the three places happens under a lock, and the file is read at offsets
    (``os.pread``), never moving the position the stream writes at.
    """

    __slots__ = ("parts", "blocks", "held", "spill", "spilled", "spilled_bytes", "lock", "__weakref__")

    def __init__(self) -> None:
        self.parts: List[str] = []  # the latest deltas, fewer than JOIN_EVERY
        self.blocks: List[str] = []  # older text, `held` characters, up to SPILL_AFTER
        self.held = 0
        self.spill: Optional[IO[bytes]] = None  # the oldest text, UTF-8, in a temporary file
        self.spilled = 0  # characters in the file
        self.spilled_bytes = 0
        self.lock = threading.Lock()

    def join_parts(self) -> None:
        """Join the latest deltas into one block; past SPILL_AFTER characters, move the
        blocks to the temporary file: a reply of any size keeps memory flat."""
        with self.lock:
            block = "".join(self.parts)
            self.parts.clear()
            self.blocks.append(block)
            self.held += len(block)
            if self.held > SPILL_AFTER:
                if self.spill is None:
                    self.spill = tempfile.TemporaryFile()
                data = "".join(self.blocks).encode("utf-8", "surrogatepass")
                self.spill.seek(0, io.SEEK_END)
                self.spill.write(data)
                self.spill.flush()
                self.spilled += self.held
                self.spilled_bytes += len(data)
                self.blocks.clear()
                self.held = 0

    def __len__(self) -> int:
        return self.spilled + self.held + sum(map(len, self.parts))

    def text(self) -> str:
        """All of it, as one string (reads the file back: use :meth:`pieces` for large text)."""
        return "".join(self.pieces())

    def pieces(self) -> Iterator[str]:
        """The text in order, in pieces of at most about a mebibyte of characters (what
        had arrived when the reading started)."""
        with self.lock:
            spill, size, blocks, parts = self.spill, self.spilled_bytes, list(self.blocks), list(self.parts)
        if spill is not None and not spill.closed and size:
            decoder = _utf8_decoder()
            offset = 0
            while offset < size:
                data = self._read_at(spill, offset, min(_READ_BLOCK, size - offset))
                if not data:
                    break
                offset += len(data)
                piece = decoder.decode(data, offset >= size)
                if piece:
                    yield piece
        yield from blocks
        recent = "".join(parts)
        if recent:
            yield recent

    def _read_at(self, spill: IO[bytes], offset: int, size: int) -> bytes:
        if _PREAD is not None:
            return _PREAD(spill.fileno(), size, offset)  # type: ignore[no-any-return]
        with self.lock:  # no pread (Windows): seek and read, then back to the end for the writer
            spill.seek(offset)
            data = spill.read(size)
            spill.seek(0, io.SEEK_END)
            return data

    def release(self) -> None:
        if self.spill is not None:
            self.spill.close()

    def __del__(self) -> None:
        self.release()


def _utf8_decoder() -> Any:
    import codecs

    return codecs.getincrementaldecoder("utf-8")("surrogatepass")


class _CallBuilder:
    __slots__ = ("index", "id", "name", "arguments")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id: Optional[str] = None
        self.name: Optional[str] = None
        self.arguments: List[str] = []

    def call(self) -> ToolCall:
        if self.id is None:  # some servers give none; a tool result must name its call
            self.id = "call_" + secrets.token_hex(12)
        return ToolCall(self.index, self.id, self.name or "", "".join(self.arguments))


Emitted = Union[Any, List[Any]]


class Reply:
    """What one attempt has received: text, reasoning, refusal, tool calls, usage,
    finish reason, logprobs and ``metadata``.

    ``state`` belongs to the provider's ``parse`` (per-attempt parsing state);
    ``redact``/``redact_value`` hide the call's secrets (a :class:`~llmproviders._secrets.Secrets`)
    in anything taken from the reply into an error;
    ``done`` is set by ``parse`` at the protocol's end marker, to stop reading.
    """

    __slots__ = (
        "record",
        "metadata",
        "reasoning_parts",
        "refusal_parts",
        "logprobs",
        "usage",
        "finish_reason",
        "finished",
        "done",
        "state",
        "redact",
        "redact_value",
        "_calls",
        "tool_calls",
        "__weakref__",
    )

    def __init__(self, secrets: Optional[Any] = None, state: Any = None) -> None:
        self.record = TextRecord()
        #: Facts the server reported besides the reply (id, created, model, usage, ...).
        self.metadata: Dict[str, Any] = {}
        self.reasoning_parts: List[str] = []
        self.refusal_parts: List[str] = []
        self.logprobs: List[Any] = []
        self.usage: Optional[Usage] = None
        self.finish_reason: Optional[str] = None
        self.finished = False  # a Finish arrived (an explicit end: an empty reply is legitimate)
        self.done = False  # parse saw the protocol's end marker: stop reading
        self.state = state
        #: Hide the call's secrets in text (and in decoded JSON) taken into an error.
        self.redact: Callable[[str], str] = secrets.redact if secrets else _same
        self.redact_value: Callable[[Any], Any] = secrets.redact_value if secrets else _same
        self._calls: Dict[int, _CallBuilder] = {}
        self.tool_calls: List[ToolCall] = []  # complete calls, in the order they completed

    # -- applying events --------------------------------------------------------------

    def apply(self, event: Any) -> Emitted:
        """Accumulate ``event``; return what to emit (the event, or a list of events)."""
        kind = type(event)
        if kind is ReasoningDelta:
            self.reasoning_parts.append(event.text)
        elif kind is ToolCallDelta:
            builder = self._calls.get(event.index)
            if builder is None:
                builder = self._calls[event.index] = _CallBuilder(event.index)
            if event.id and not builder.id:
                builder.id = event.id
            if event.name and not builder.name:
                builder.name = event.name
            if event.arguments:
                builder.arguments.append(event.arguments)
        elif kind is Finish:
            self.finish_reason = event.reason
            self.finished = True
            self.metadata["finish_reason"] = event.reason
            calls = self.complete_calls()
            if calls:
                return [*calls, event]
        elif kind is Usage:
            self.usage = event
            self.metadata["usage"] = event.raw
        elif kind is RefusalDelta:
            self.refusal_parts.append(event.text)
        elif kind is ToolCall:
            self.tool_calls.append(event)
        return event

    def complete_calls(self) -> List[ToolCall]:
        """The tool calls not emitted yet, now complete (at the finish, or the end)."""
        if not self._calls:
            return []
        calls = [builder.call() for _, builder in sorted(self._calls.items())]
        self._calls.clear()
        self.tool_calls.extend(calls)
        return calls

    @property
    def has_output(self) -> bool:
        """Whether anything of the answer arrived (text, reasoning, refusal, tool calls)."""
        return bool(
            len(self.record) or self.reasoning_parts or self.refusal_parts or self.tool_calls or self._calls
        )

    # -- reading ----------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self.record.text()

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def refusal(self) -> Optional[str]:
        return "".join(self.refusal_parts) if self.refusal_parts else None

    def message(self) -> Dict[str, Any]:
        """The assistant message in OpenAI's shape, ready to append to a history."""
        text = self.text
        message: Dict[str, Any] = {"role": "assistant", "content": text or None}
        calls = self.tool_calls + [builder.call() for _, builder in sorted(self._calls.items())]
        if calls:
            message["tool_calls"] = [call.to_dict() for call in calls]
        if self.reasoning_parts:
            message["reasoning_content"] = self.reasoning
        return message


def _same(value: Any) -> Any:
    return value
