"""Chat messages: validation before any network I/O, and the prompt format the
upstreams share.

``messages`` is the OpenAI-style list of ``{"role": ..., "content": str}`` dicts. It is
checked once, at the call, so a mistake is reported with its position instead of as an
upstream 400 (or worse, a reply to the wrong question).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

from ._exceptions import InvalidMessagesError

__all__ = ["Messages", "ROLES", "validate_messages", "format_prompt"]

Messages = Sequence[Mapping[str, Any]]
ROLES = ("system", "user", "assistant")


def validate_messages(messages: Any) -> List[Dict[str, Any]]:
    """Return ``messages`` as a list of dicts, or raise :class:`InvalidMessagesError`.

    Each message needs a ``role`` (one of ``ROLES``) and a string ``content``; other
    keys are kept as they are. The list must not be empty.
    """
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidMessagesError(
            f"messages must be a list of {{'role': ..., 'content': ...}} dicts, "
            f"not {type(messages).__name__}"
        )
    if not messages:
        raise InvalidMessagesError("messages is empty: send at least one message")
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidMessagesError(
                f"messages[{index}] must be a dict with 'role' and 'content', "
                f"not {type(message).__name__}"
            )
        role = message.get("role")
        if role not in ROLES:
            expected = ", ".join(repr(r) for r in ROLES)
            problem = "has no 'role'" if "role" not in message else f"has role {role!r}"
            raise InvalidMessagesError(f"messages[{index}] {problem}; expected one of {expected}")
        content = message.get("content")
        if not isinstance(content, str):
            problem = "has no 'content'" if "content" not in message else (
                f"has content of type {type(content).__name__}"
            )
            raise InvalidMessagesError(f"messages[{index}] {problem}; content must be a string")
        checked.append(dict(message))
    return checked


def format_prompt(messages: Messages) -> str:
    """Flatten a conversation into one prompt, the way the upstreams expect it.

    One message: its content unchanged. Several: ``"{Role}: {content}"`` lines joined
    with newlines, then ``"\\nAssistant:"``.

    Example usage::

        >>> format_prompt([{"role": "user", "content": "Hi"}])
        'Hi'
        >>> format_prompt([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
        'System: S\\nUser: U\\nAssistant:'
    """
    if len(messages) == 1:
        return str(messages[0]["content"])
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def text_messages(messages: Any, provider: str) -> List[Dict[str, Any]]:
    """``messages`` checked for a provider whose protocol carries only text (placeholder
    until part lists are accepted: every content is already a string here)."""
    return validate_messages(messages)
