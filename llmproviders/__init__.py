"""llmproviders: synchronous streaming chat completions from LLM web providers.

Provider classes return plain iterators of text deltas, read from ``requests``
streaming responses as the bytes arrive. The original upstream sites are offline;
``llmproviders.testing`` carries an emulator of their protocols.

Example usage::

    from llmproviders import FlowGpt

    messages = [{"role": "user", "content": "Hello"}]
    for delta in FlowGpt.create_completion(model="gpt-3.5-turbo", messages=messages):
        print(delta, end="", flush=True)
"""

import logging
from typing import TYPE_CHECKING as _TYPE_CHECKING, Any as _Any

from .__version__ import __version__
from ._client import Client
from ._completion import ChatCompletion
from ._conversation import Conversation
from ._exceptions import (
    AuthenticationError,
    CloudflareError,
    ContextWindowExceededError,
    ConversationBusyError,
    EmptyResponseError,
    InvalidArgumentError,
    InvalidMessagesError,
    LLMProvidersError,
    ModelNotSupportedError,
    ProtocolError,
    ProviderNotFoundError,
    RateLimitError,
    RedirectError,
    ReplyMismatchError,
    RequestTimeoutError,
    ResponseError,
    ResponseStatusError,
    RetryProviderError,
    StreamError,
    StreamInterruptedError,
    StructuredOutputError,
    TransportError,
    UnsupportedOptionError,
)
from .events import Event, Finish, ReasoningDelta, RefusalDelta, TextDelta, ToolCall, ToolCallDelta, Usage
from ._fallback import RetryProvider
from ._messages import Messages, format_prompt, image
from ._provider import Provider, get_provider, list_providers, register_provider
from ._retry import RetryPolicy
from ._stream import Stream
from .providers import Chatgpt4Online, FlowGpt, GPROChat, OpenAICompatible, Ylokh

if _TYPE_CHECKING:  # pragma: no cover
    from ._async import AsyncStream, get_async_limit, set_async_limit
    from ._batch import BatchError, BatchResult, BatchStore, ItemResult, batch

_BATCH = {"batch", "BatchResult", "ItemResult", "BatchStore", "BatchError"}
_LAZY = {"AsyncStream", "set_async_limit", "get_async_limit"} | _BATCH


def __getattr__(name: str) -> _Any:
    """The asyncio facade and batch jobs are imported when first used: ``import
    llmproviders`` does not import asyncio (nor sqlite3 and concurrent.futures)."""
    if name in _BATCH:
        from . import _batch

        return getattr(_batch, name)
    if name in _LAZY:
        from . import _async

        return getattr(_async, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "__version__",
    # providers
    "Provider",
    "FlowGpt",
    "GPROChat",
    "Chatgpt4Online",
    "Ylokh",
    "OpenAICompatible",
    "ChatCompletion",
    "Client",
    "Conversation",
    "RetryProvider",
    "RetryPolicy",
    "Stream",
    "AsyncStream",
    "set_async_limit",
    "get_async_limit",
    "Messages",
    "format_prompt",
    # events
    "Event",
    "TextDelta",
    "ReasoningDelta",
    "RefusalDelta",
    "ToolCallDelta",
    "ToolCall",
    "Usage",
    "Finish",
    "image",
    "get_provider",
    "list_providers",
    "register_provider",
    # errors
    "LLMProvidersError",
    "InvalidArgumentError",
    "InvalidMessagesError",
    "ModelNotSupportedError",
    "UnsupportedOptionError",
    "ProviderNotFoundError",
    "TransportError",
    "RequestTimeoutError",
    "ResponseStatusError",
    "AuthenticationError",
    "RateLimitError",
    "CloudflareError",
    "RedirectError",
    "StreamError",
    "ProtocolError",
    "ReplyMismatchError",
    "ResponseError",
    "EmptyResponseError",
    "StreamInterruptedError",
    "RetryProviderError",
    "ContextWindowExceededError",
    "StructuredOutputError",
    # batch jobs
    "batch",
    "BatchResult",
    "ItemResult",
    "BatchStore",
    "BatchError",
    "ConversationBusyError",
]

logging.getLogger("llmproviders").addHandler(logging.NullHandler())
