"""The typed events a reply is made of.

A provider's reply is a stream of events in wire order: pieces of the answer
(:class:`TextDelta`), of the model's reasoning (:class:`ReasoningDelta`), of a refusal
(:class:`RefusalDelta`), fragments of tool calls (:class:`ToolCallDelta`) and each call
once it is complete (:class:`ToolCall`), token counts (:class:`Usage`) and the end of
the reply (:class:`Finish`). Each is a small immutable dataclass.

Iterating a :class:`~llmproviders.Stream` still yields plain ``str`` text deltas;
``stream.events()`` yields these objects, and the stream's properties (``text``,
``reasoning``, ``tool_calls``, ``usage``, ``finish_reason``, ``message``) accumulate
them whichever way it is read.

Example usage::

    from llmproviders import OpenAICompatible, ReasoningDelta, TextDelta, ToolCall

    stream = OpenAICompatible.create_completion("qwen3", messages, base_url=url, tools=tools)
    for event in stream.events():
        if isinstance(event, ReasoningDelta):
            print(event.text, end="", file=sys.stderr)
        elif isinstance(event, TextDelta):
            print(event.text, end="")
        elif isinstance(event, ToolCall):
            print(event.name, event.parsed_arguments())
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

from ._exceptions import ProtocolError

__all__ = [
    "Event",
    "TextDelta",
    "ReasoningDelta",
    "RefusalDelta",
    "ToolCallDelta",
    "ToolCall",
    "Usage",
    "Finish",
]


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of the model's reasoning ("thinking"), kept apart from the answer."""

    text: str


@dataclass(frozen=True)
class RefusalDelta:
    """A piece of a refusal (OpenAI's ``delta.refusal``), kept apart from the answer."""

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """One tool-call fragment as it came over the wire.

    ``index`` is the call's position among this reply's calls (0, 1, ...), whatever
    numbering the server used; ``id`` and ``name`` are set on the fragment that
    carried them (usually the first); ``arguments`` is this fragment's piece of the
    arguments' JSON text (possibly empty, or the whole text when a server sends the
    call in one piece).
    """

    index: int
    id: Optional[str]
    name: Optional[str]
    arguments: str


@dataclass(frozen=True)
class ToolCall:
    """A complete tool call: emitted once, after its last fragment."""

    index: int
    id: Optional[str]
    name: str
    arguments: str  #: the whole JSON text of the arguments, as the model wrote it

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON (an empty text is ``{}``); a text that is not
        JSON raises :class:`~llmproviders.ProtocolError`, which keeps it in ``frame``."""
        if not self.arguments.strip():
            return {}
        try:
            return json.loads(self.arguments)
        except (ValueError, RecursionError) as exc:
            shown = self.arguments if len(self.arguments) <= 120 else self.arguments[:119] + "…"
            raise ProtocolError(
                f"the arguments of tool call {self.name!r} are not valid JSON: {shown!r}", frame=shown
            ) from exc

    def to_dict(self) -> Dict[str, Any]:
        """The call in OpenAI's message shape (``{"id", "type": "function", "function": {...}}``)."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class Usage:
    """Token counts, as the server reported them (a count it did not report is None).
    ``raw`` is the server's whole ``usage`` object."""

    prompt_tokens: Optional[int]
    completion_tokens: Optional[int]
    total_tokens: Optional[int]
    raw: Dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_dict(cls, usage: Any) -> Optional["Usage"]:
        """From a server's ``usage`` object; None if it is not an object. Counts that are
        not whole numbers are None; a missing total is the sum of the other two."""
        if not isinstance(usage, dict):
            return None

        def count(key: str) -> Optional[int]:
            value = usage.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

        prompt, completion, total = count("prompt_tokens"), count("completion_tokens"), count("total_tokens")
        if total is None and prompt is not None and completion is not None:
            total = prompt + completion
        return cls(prompt, completion, total, dict(usage))


@dataclass(frozen=True)
class Finish:
    """The reply is complete; ``reason`` is the server's ``finish_reason`` (``"stop"``,
    ``"length"``, ``"tool_calls"``, ...) or None where the protocol gives none."""

    reason: Optional[str]


Event = Union[TextDelta, ReasoningDelta, RefusalDelta, ToolCallDelta, ToolCall, Usage, Finish]
