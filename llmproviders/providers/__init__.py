"""The four seed providers, one module each. Each module only describes its protocol:
headers, request body and how to read the reply; the machinery lives in the package."""

# Registration order is the seeds' order; list_providers() reports it.
from .flowgpt import FlowGpt  # noqa: I001
from .gprochat import GPROChat
from .chatgpt4online import Chatgpt4Online
from .ylokh import Ylokh

__all__ = ["FlowGpt", "GPROChat", "Chatgpt4Online", "Ylokh"]
