"""The four seed providers, one module each, and the generic OpenAI-compatible provider.
Each module only describes its protocol: headers, request body and how to read the
reply; the machinery lives in the package."""

# Registration order is the seeds' order, then the generic provider; list_providers()
# reports it. OpenAICompatible is registered here, after Ylokh (its subclass), so that
# the four seeds come first.
from .flowgpt import FlowGpt  # noqa: I001
from .gprochat import GPROChat
from .chatgpt4online import Chatgpt4Online
from .ylokh import Ylokh
from .openai_compatible import OpenAICompatible
from .._provider import register_provider

register_provider(OpenAICompatible)

__all__ = ["FlowGpt", "GPROChat", "Chatgpt4Online", "Ylokh", "OpenAICompatible"]
