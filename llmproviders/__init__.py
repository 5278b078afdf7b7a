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
from ._messages import Messages, format_prompt, image
from ._provider import Provider, get_provider, list_providers, register_provider
from ._retry import RetryPolicy
from ._stream import Stream

if _TYPE_CHECKING:  # pragma: no cover
    from .providers import Chatgpt4Online, FlowGpt, GPROChat, OpenAICompatible, Ylokh
    from ._async import AsyncStream, get_async_limit, set_async_limit
    from ._batch import BatchError, BatchResult, BatchStore, ItemResult, batch
    from ._client import Client
    from ._completion import ChatCompletion
    from ._conversation import Conversation
    from ._fallback import RetryProvider

#: Names loaded when first used (PEP 562): the providers (``get_provider`` and
#: ``list_providers`` load them too) and the facades over the core (the asyncio one, the
#: OpenAI-style client, conversations, batch jobs, fallback), so that ``import
#: llmproviders`` costs little more than ``import requests``, and imports neither
#: asyncio nor sqlite3.
_LAZY = {
    "FlowGpt": "providers",
    "GPROChat": "providers",
    "Chatgpt4Online": "providers",
    "Ylokh": "providers",
    "OpenAICompatible": "providers",
    "AsyncStream": "_async",
    "set_async_limit": "_async",
    "get_async_limit": "_async",
    "batch": "_batch",
    "BatchResult": "_batch",
    "ItemResult": "_batch",
    "BatchStore": "_batch",
    "BatchError": "_batch",
    "Client": "_client",
    "ChatCompletion": "_completion",
    "Conversation": "_conversation",
    "RetryProvider": "_fallback",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> _Any:
    return sorted(set(globals()) | set(_LAZY))


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
