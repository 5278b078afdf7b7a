"""The typed events a reply is made of.

A provider's reply is a stream of events in wire order: pieces of the answer
(:class:`TextDelta`), of the model's reasoning (:class:`ReasoningDelta`), of a refusal
(:class:`RefusalDelta`), fragments of tool calls (:class:`ToolCallDelta`) and each call
once it is complete (:class:`ToolCall`), token counts (:class:`Usage`) and the end of
the reply (:class:`Finish`). Each is a small immutable value: fields set at
construction, compared by value, hashable, printable, picklable, usable in ``match``
statements (``case TextDelta(text)``) and ``to_dict()``. (They are written out rather
than made with :mod:`dataclasses`, whose import alone costs more than the rest of the
package: ``import llmproviders`` stays within a few milliseconds of ``import requests``.)

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
from typing import Any, ClassVar, Dict, Optional, Tuple, Union

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
    "FrozenEventError",
]


class FrozenEventError(AttributeError):
    """An event's fields cannot be changed (as ``dataclasses.FrozenInstanceError``)."""


class _Value:
    """What every event shares: immutable fields (``_fields``), value equality on
    ``_compared`` (the fields, unless a class leaves some out), a hash, a ``repr``,
    ``to_dict()`` and pickling."""

    __slots__: Tuple[str, ...] = ("__weakref__",)
    _fields: ClassVar[Tuple[str, ...]] = ()
    _compared: ClassVar[Tuple[str, ...]] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenEventError(f"cannot assign to field {name!r} of an event")

    def __delattr__(self, name: str) -> None:
        raise FrozenEventError(f"cannot delete field {name!r} of an event")

    def _values(self, names: Tuple[str, ...]) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in names)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values(self._compared) == other._values(self._compared)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values(self._compared)))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), self._values(self._fields))

    def __setstate__(self, state: Any) -> None:
        """Fields from a state dict: what pickles of the earlier dataclass events hold."""
        if isinstance(state, tuple):  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        for name, value in (state or {}).items():
            _set(self, name, value)

    def to_dict(self) -> Dict[str, Any]:
        """The event's fields as a dict (JSON-ready)."""
        return {name: getattr(self, name) for name in self._fields}


_set = object.__setattr__


class TextDelta(_Value):
    """A piece of the answer's text."""

    __slots__ = ("text",)
    _fields = _compared = __match_args__ = ("text",)
    text: str

    def __init__(self, text: str) -> None:
        _set(self, "text", text)


class ReasoningDelta(_Value):
    """A piece of the model's reasoning ("thinking"), kept apart from the answer."""

    __slots__ = ("text",)
    _fields = _compared = __match_args__ = ("text",)
    text: str

    def __init__(self, text: str) -> None:
        _set(self, "text", text)


class RefusalDelta(_Value):
    """A piece of a refusal (OpenAI's ``delta.refusal``), kept apart from the answer."""

    __slots__ = ("text",)
    _fields = _compared = __match_args__ = ("text",)
    text: str

    def __init__(self, text: str) -> None:
        _set(self, "text", text)


class ToolCallDelta(_Value):
    """One tool-call fragment as it came over the wire.

    ``index`` is the call's position among this reply's calls (0, 1, ...), whatever
    numbering the server used; ``id`` and ``name`` are set on the fragment that
    carried them (usually the first); ``arguments`` is this fragment's piece of the
    arguments' JSON text (possibly empty, or the whole text when a server sends the
    call in one piece).
    """

    __slots__ = ("index", "id", "name", "arguments")
    _fields = _compared = __match_args__ = ("index", "id", "name", "arguments")
    index: int
    id: Optional[str]
    name: Optional[str]
    arguments: str

    def __init__(self, index: int, id: Optional[str], name: Optional[str], arguments: str) -> None:
        _set(self, "index", index)
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "arguments", arguments)


class ToolCall(_Value):
    """A complete tool call: emitted once, after its last fragment."""

    __slots__ = ("index", "id", "name", "arguments")
    _fields = _compared = __match_args__ = ("index", "id", "name", "arguments")
    index: int
    id: Optional[str]
    name: str
    arguments: str  #: the whole JSON text of the arguments, as the model wrote it

    def __init__(self, index: int, id: Optional[str], name: str, arguments: str) -> None:
        _set(self, "index", index)
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "arguments", arguments)

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


class Usage(_Value):
    """Token counts, as the server reported them (a count it did not report is None).
    ``raw`` is the server's whole ``usage`` object (not compared)."""

    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens", "raw")
    _fields = __match_args__ = ("prompt_tokens", "completion_tokens", "total_tokens", "raw")
    _compared = ("prompt_tokens", "completion_tokens", "total_tokens")
    prompt_tokens: Optional[int]
    completion_tokens: Optional[int]
    total_tokens: Optional[int]
    raw: Dict[str, Any]

    def __init__(
        self,
        prompt_tokens: Optional[int],
        completion_tokens: Optional[int],
        total_tokens: Optional[int],
        raw: Optional[Dict[str, Any]] = None,
    ) -> None:
        _set(self, "prompt_tokens", prompt_tokens)
        _set(self, "completion_tokens", completion_tokens)
        _set(self, "total_tokens", total_tokens)
        _set(self, "raw", raw if raw is not None else {})

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


class Finish(_Value):
    """The reply is complete; ``reason`` is the server's ``finish_reason`` (``"stop"``,
    ``"length"``, ``"tool_calls"``, ...) or None where the protocol gives none."""

    __slots__ = ("reason",)
    _fields = _compared = __match_args__ = ("reason",)
    reason: Optional[str]

    def __init__(self, reason: Optional[str]) -> None:
        _set(self, "reason", reason)


Event = Union[TextDelta, ReasoningDelta, RefusalDelta, ToolCallDelta, ToolCall, Usage, Finish]
