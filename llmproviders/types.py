"""The objects of the OpenAI-style facade (:class:`llmproviders.Client`).

Plain dataclasses with openai-python's field names; ``to_dict()`` gives the JSON
OpenAI's API sends, so ``openai.types.chat.ChatCompletionChunk.model_validate(
chunk.to_dict())`` accepts it. The names are openai-python's, except for the whole
(non-streamed) completion: openai-python's ``ChatCompletion`` would clash with
``llmproviders.ChatCompletion`` (the original framework's entry point), so it is
:class:`ChatCompletionObject` here, after its ``"object": "chat.completion"``; and
the choice of a chunk is :class:`ChunkChoice` (openai-python has two ``Choice``).

Example usage::

    from llmproviders import Client
    from llmproviders.types import ChatCompletionChunk

    for chunk in Client(provider="Ylokh").chat.completions.create(model=None, messages=messages, stream=True):
        print(chunk.choices[0].delta.content or "", end="")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

__all__ = [
    "ChatCompletionChunk",
    "ChunkChoice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChatCompletionObject",
    "Choice",
    "ChatCompletionMessage",
    "ChatCompletionMessageToolCall",
    "Function",
    "ChoiceLogprobs",
    "ChatCompletionTokenLogprob",
    "TopLogprob",
    "CompletionUsage",
    "Model",
    "ModelList",
]


#: Fields that are not OpenAI's own (servers such as DeepSeek and llama.cpp add them):
#: left out of ``to_dict()`` when they have no value, as those servers do.
_EXTENSIONS = frozenset({"reasoning_content"})


class _JSON:
    """``to_dict()`` for the dataclasses below: every field, nested objects included."""

    def to_dict(self) -> Dict[str, Any]:
        """The object as OpenAI's API sends it (JSON-ready; absent values are None)."""
        data: Dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        return _without_empty_extensions(data)  # type: ignore[no-any-return]


def _without_empty_extensions(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_empty_extensions(v) for k, v in value.items() if not (k in _EXTENSIONS and v is None)}
    if isinstance(value, list):
        return [_without_empty_extensions(v) for v in value]
    return value


@dataclass
class CompletionUsage(_JSON):
    """Token counts, as the upstream reported them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def from_dict(cls, usage: Any) -> Optional["CompletionUsage"]:
        """From an upstream's ``usage`` object (missing counts are 0; the total is
        their sum unless given); None if it is not one."""
        if not isinstance(usage, dict):
            return None
        counts = {key: usage.get(key) for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
        if not all(value is None or (isinstance(value, int) and not isinstance(value, bool)) for value in counts.values()):
            return None
        prompt, completion = counts["prompt_tokens"] or 0, counts["completion_tokens"] or 0
        total = counts["total_tokens"]
        return cls(prompt, completion, prompt + completion if total is None else total)


@dataclass
class TopLogprob(_JSON):
    """One of the most likely tokens at a position."""

    token: str
    logprob: float
    bytes: Optional[List[int]] = None

    @classmethod
    def from_dict(cls, entry: Any) -> "TopLogprob":
        return cls(str(entry.get("token", "")), float(entry.get("logprob", 0.0)), entry.get("bytes"))


@dataclass
class ChatCompletionTokenLogprob(_JSON):
    """The log probability of one token of the reply, and the most likely alternatives."""

    token: str
    logprob: float
    bytes: Optional[List[int]] = None
    top_logprobs: List[TopLogprob] = field(default_factory=list)

    @classmethod
    def from_dict(cls, entry: Any) -> "ChatCompletionTokenLogprob":
        tops = entry.get("top_logprobs") or []
        return cls(
            str(entry.get("token", "")),
            float(entry.get("logprob", 0.0)),
            entry.get("bytes"),
            [TopLogprob.from_dict(t) for t in tops if isinstance(t, dict)],
        )


@dataclass
class ChoiceLogprobs(_JSON):
    """Log probabilities of a choice's tokens (``logprobs=True``)."""

    content: Optional[List[ChatCompletionTokenLogprob]] = None
    refusal: Optional[List[ChatCompletionTokenLogprob]] = None

    @classmethod
    def from_entries(cls, entries: List[Any]) -> Optional["ChoiceLogprobs"]:
        """From the server's entries (plain dicts); None when there are none."""
        if not entries:
            return None
        return cls(content=[ChatCompletionTokenLogprob.from_dict(e) for e in entries if isinstance(e, dict)])


@dataclass
class ChoiceDeltaToolCallFunction(_JSON):
    """A piece of a tool call's function: its name (first fragment), arguments text."""

    arguments: Optional[str] = None
    name: Optional[str] = None


@dataclass
class ChoiceDeltaToolCall(_JSON):
    """One tool-call fragment of a chunk; ``index`` says which call it belongs to."""

    index: int
    id: Optional[str] = None
    function: Optional[ChoiceDeltaToolCallFunction] = None
    type: Optional[str] = None


@dataclass
class ChoiceDelta(_JSON):
    """What one chunk adds to the message: the role (first chunk), a piece of content,
    of reasoning (``reasoning_content``, as DeepSeek and llama.cpp name it), of a refusal,
    or tool-call fragments."""

    role: Optional[str] = None
    content: Optional[str] = None
    refusal: Optional[str] = None
    tool_calls: Optional[List[ChoiceDeltaToolCall]] = None
    reasoning_content: Optional[str] = None


@dataclass
class ChunkChoice(_JSON):
    """The one choice of a chunk; ``finish_reason`` is set on the last chunk only."""

    index: int = 0
    delta: ChoiceDelta = field(default_factory=ChoiceDelta)
    finish_reason: Optional[str] = None
    logprobs: Optional[ChoiceLogprobs] = None


@dataclass
class ChatCompletionChunk(_JSON):
    """One streamed piece of a completion (``"object": "chat.completion.chunk"``)."""

    id: str
    created: int
    model: str
    choices: List[ChunkChoice]
    object: str = "chat.completion.chunk"
    usage: Optional[CompletionUsage] = None
    system_fingerprint: Optional[str] = None


@dataclass
class Function(_JSON):
    """A complete tool call's function: its name and the whole JSON text of its arguments."""

    name: str
    arguments: str


@dataclass
class ChatCompletionMessageToolCall(_JSON):
    """A complete tool call in a message."""

    id: str
    function: Function
    type: str = "function"


@dataclass
class ChatCompletionMessage(_JSON):
    """The reply of a whole completion: its content (None when it only called tools),
    reasoning, refusal and tool calls."""

    content: Optional[str]
    role: str = "assistant"
    refusal: Optional[str] = None
    tool_calls: Optional[List[ChatCompletionMessageToolCall]] = None
    reasoning_content: Optional[str] = None


@dataclass
class Choice(_JSON):
    """The one choice of a whole completion."""

    message: ChatCompletionMessage
    finish_reason: Optional[str]
    index: int = 0
    logprobs: Optional[ChoiceLogprobs] = None


@dataclass
class ChatCompletionObject(_JSON):
    """A whole completion (``"object": "chat.completion"``): openai-python's
    ``ChatCompletion`` (renamed, see the module docstring)."""

    id: str
    created: int
    model: str
    choices: List[Choice]
    object: str = "chat.completion"
    usage: Optional[CompletionUsage] = None
    system_fingerprint: Optional[str] = None


@dataclass
class Model(_JSON):
    """A model a server offers (``client.models.list()``)."""

    id: str
    created: int = 0
    object: str = "model"
    owned_by: str = ""


@dataclass
class ModelList(_JSON):
    """``client.models.list()``: iterate it, or read ``data``."""

    data: List[Model]
    object: str = "list"

    def __iter__(self) -> Iterator[Model]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)
