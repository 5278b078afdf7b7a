"""Type names for code moving from g4f: ``from g4f.typing import Messages`` becomes
``from llmproviders.typing import Messages``.

g4f's provider modules import their ``typing`` helpers from ``g4f.typing`` (``Any``,
``Union``, ``CreateResult``, ``AsyncResult``, ``Messages``, ...); the same names are here,
with llmproviders' meaning: a completion yields ``str`` deltas (g4f's may also yield
response objects), and a message is OpenAI's dict.

Example usage::

    from llmproviders.typing import CreateResult, Messages

    def ask(messages: Messages) -> CreateResult:
        return FlowGpt.create_completion(None, messages)
"""

from __future__ import annotations

import os
from typing import (
    IO,
    Any,
    AsyncGenerator,
    AsyncIterator,
    Dict,
    Generator,
    Iterator,
    List,
    Optional,
    Tuple,
    Type,
    TypedDict,
    Union,
)

from ._messages import Messages

__all__ = [
    # g4f re-exports these from the standard library; provider code imports them from here
    "Any",
    "AsyncGenerator",
    "AsyncIterator",
    "Dict",
    "Generator",
    "IO",
    "Iterator",
    "List",
    "Optional",
    "Tuple",
    "Type",
    "TypedDict",
    "Union",
    # the library's own
    "Messages",
    "Message",
    "ContentPart",
    "TextPart",
    "ImagePart",
    "ImageURL",
    "ToolCall",
    "ToolCallFunction",
    "CreateResult",
    "AsyncResult",
    "ImageType",
]


class TextPart(TypedDict):
    """``{"type": "text", "text": ...}``: a piece of a message's text."""

    type: str
    text: str


class _ImageURLRequired(TypedDict):
    url: str


class ImageURL(_ImageURLRequired, total=False):
    """``{"url": ..., "detail": ...}``: an http(s) URL or a base64 ``data:image/...`` URL."""

    detail: str


class ImagePart(TypedDict):
    """``{"type": "image_url", "image_url": {...}}``, as :func:`llmproviders.image` builds it."""

    type: str
    image_url: ImageURL


#: One item of a message's ``content`` list.
ContentPart = Union[TextPart, ImagePart]


class ToolCallFunction(TypedDict):
    """The function an assistant called: its name and its JSON-text arguments."""

    name: str
    arguments: str


class ToolCall(TypedDict):
    """One of an assistant message's ``tool_calls``, in OpenAI's shape."""

    id: str
    type: str
    function: ToolCallFunction


class _MessageRequired(TypedDict):
    role: str


class Message(_MessageRequired, total=False):
    """One chat message (for annotations; any mapping with these keys is accepted).

    ``content`` is a string or a list of parts (None for an assistant message that only
    calls tools); ``tool_calls`` and ``reasoning_content`` belong to assistant messages,
    ``tool_call_id`` to tool results.
    """

    content: Union[str, List[ContentPart], None]
    name: str
    tool_calls: List[ToolCall]
    tool_call_id: str
    reasoning_content: str


#: What a provider's ``create_completion`` returns: an iterator of text deltas (a
#: :class:`~llmproviders.Stream`, which also closes its connection).
CreateResult = Iterator[str]
#: What ``create_async_generator`` returns: an async iterator of text deltas (an
#: :class:`~llmproviders.AsyncStream`).
AsyncResult = AsyncIterator[str]
#: What :func:`llmproviders.image` takes: a file path or the image's bytes.
ImageType = Union[str, os.PathLike[str], bytes, bytearray, memoryview]
