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
from typing import Any, Dict, List, Optional

__all__ = [
    "ChatCompletionChunk",
    "ChunkChoice",
    "ChoiceDelta",
    "ChatCompletionObject",
    "Choice",
    "ChatCompletionMessage",
    "CompletionUsage",
]


class _JSON:
    """``to_dict()`` for the dataclasses below: every field, nested objects included."""

    def to_dict(self) -> Dict[str, Any]:
        """The object as OpenAI's API sends it (JSON-ready; absent values are None)."""
        data: Dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        return data


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
class ChoiceDelta(_JSON):
    """What one chunk adds to the message: the role (first chunk) or some content."""

    role: Optional[str] = None
    content: Optional[str] = None


@dataclass
class ChunkChoice(_JSON):
    """The one choice of a chunk; ``finish_reason`` is set on the last chunk only."""

    index: int = 0
    delta: ChoiceDelta = field(default_factory=ChoiceDelta)
    finish_reason: Optional[str] = None
    logprobs: None = None


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
class ChatCompletionMessage(_JSON):
    """The reply of a whole completion."""

    content: Optional[str]
    role: str = "assistant"


@dataclass
class Choice(_JSON):
    """The one choice of a whole completion."""

    message: ChatCompletionMessage
    finish_reason: Optional[str]
    index: int = 0
    logprobs: None = None


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
