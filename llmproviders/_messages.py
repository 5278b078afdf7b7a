"""Chat messages: validation before any network I/O, image parts, and the prompt format
the seed upstreams share.

``messages`` is OpenAI's list of message dicts. It is checked once, at the call, so a
mistake is reported with its position instead of as an upstream 400 (or worse, a reply
to the wrong question). What is accepted, per role:

- ``system``, ``developer``: ``content`` a string or a list of text parts;
- ``user``: ``content`` a string or a list of text and image parts;
- ``assistant``: ``content`` a string, a list of text parts, or None when the message
  carries ``tool_calls`` (OpenAI's shape); ``reasoning_content`` (a string) is kept as
  sent, since DeepSeek's thinking mode wants it back in multi-turn tool use;
- ``tool``: a string ``tool_call_id`` and ``content`` a string or a list of text parts.

Parts are ``{"type": "text", "text": str}`` and ``{"type": "image_url", "image_url":
{"url": str, "detail": "auto" | "low" | "high"}}`` (``detail`` optional; ``url`` an
``http(s)`` URL or a base64 ``data:image/...`` URL, as :func:`image` builds). Any message
may have a string ``name``; other keys are kept as they are. Every string must be valid
Unicode: a lone surrogate (``"\\ud800"``, from ``surrogateescape`` or broken UTF-16)
cannot be encoded as UTF-8 and is refused.

The seed providers send one plain-text prompt: :func:`text_messages` turns text-only
part lists into strings for them and refuses what they cannot carry.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union
from urllib.parse import urlsplit

from ._exceptions import InvalidArgumentError, InvalidMessagesError

__all__ = ["Messages", "ROLES", "validate_messages", "format_prompt", "image", "text_messages"]

Messages = Sequence[Mapping[str, Any]]
ROLES = ("system", "user", "assistant", "tool", "developer")
#: ``image_url.detail`` values OpenAI defines.
IMAGE_DETAILS = ("auto", "low", "high")
#: What :func:`text_messages` puts between the text parts of one message (as vLLM does
#: when it renders parts for a text-only chat template): separate parts stay separate.
PART_SEPARATOR = "\n"

_PART_TYPES: Dict[str, Tuple[str, ...]] = {
    "system": ("text",),
    "developer": ("text",),
    "user": ("text", "image_url"),
    "assistant": ("text",),
    "tool": ("text",),
}
# Patterns compiled on first use (re caches them): compiling at import costs more than they save.
_DATA_URL = r"data:image/[A-Za-z0-9.+-]+(?:;[A-Za-z0-9.+_=-]+)*;base64,"
_BASE64 = r"[A-Za-z0-9+/]+={0,2}"
_MIME = r"image/[A-Za-z0-9.+-]+"


#: How deep a message may nest dicts and lists (content parts, tool calls, extra keys).
MAX_DEPTH = 100


def validate_messages(messages: Any) -> List[Dict[str, Any]]:
    """Return ``messages`` as a list of dicts, or raise :class:`InvalidMessagesError`
    saying which message (and which part of it) is wrong and why.

    See the module docstring for what each role accepts. The list must not be empty;
    unknown keys are kept as they are.
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
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise InvalidMessagesError(
                f"{where} must be a dict with 'role' and 'content', not {type(message).__name__}"
            )
        role = message.get("role")
        if role not in ROLES:
            expected = ", ".join(repr(r) for r in ROLES)
            problem = "has no 'role'" if "role" not in message else f"has role {role!r}"
            raise InvalidMessagesError(f"{where} {problem}; expected one of {expected}")
        _check_message(where, role, message)
        _check_unicode(where, message)
        checked.append(dict(message))
    return checked


def _check_message(where: str, role: str, message: Mapping[str, Any]) -> None:
    name = message.get("name")
    if "name" in message and (not isinstance(name, str) or not name):
        raise InvalidMessagesError(f"{where} has a 'name' of type {type(name).__name__}; name must be a non-empty string")
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if role != "assistant":
            raise InvalidMessagesError(f"{where} ({role}) has 'tool_calls'; only assistant messages carry tool calls")
        _check_tool_calls(where, tool_calls)
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            problem = "has no 'tool_call_id'" if "tool_call_id" not in message else (
                f"has a 'tool_call_id' of type {type(call_id).__name__}"
            )
            raise InvalidMessagesError(
                f"{where} (tool) {problem}; a tool result needs the string id of the call it answers"
            )
    if role == "assistant":
        reasoning = message.get("reasoning_content")
        if reasoning is not None and not isinstance(reasoning, str):
            raise InvalidMessagesError(
                f"{where} has 'reasoning_content' of type {type(reasoning).__name__}; it must be a string"
            )
    content = message.get("content")
    if isinstance(content, str):
        return
    if content is None and role == "assistant" and tool_calls:
        return  # OpenAI's shape for a reply that only calls tools
    if isinstance(content, (list, tuple)):
        _check_parts(where, role, content)
        return
    allowed = "a string or a list of parts"
    if role == "assistant":
        allowed += " (or None when the message has 'tool_calls')"
    problem = "has no 'content'" if "content" not in message else f"has content of type {type(content).__name__}"
    raise InvalidMessagesError(f"{where} {problem}; content must be {allowed}")


def _check_parts(where: str, role: str, parts: Sequence[Any]) -> None:
    if not parts:
        raise InvalidMessagesError(f"{where} has an empty list as content; give at least one part, or a string")
    allowed = _PART_TYPES[role]
    for number, part in enumerate(parts):
        at = f"{where}.content[{number}]"
        if not isinstance(part, Mapping):
            raise InvalidMessagesError(
                f"{at} must be a dict such as {{'type': 'text', 'text': ...}}, not {type(part).__name__}"
            )
        kind = part.get("type")
        if kind not in allowed:
            problem = "has no 'type'" if "type" not in part else f"has type {kind!r}"
            where_allowed = f"{role} messages take parts of type {', '.join(repr(t) for t in allowed)}"
            hint = "; images go in user messages" if kind == "image_url" else ""
            raise InvalidMessagesError(f"{at} {problem}; {where_allowed}{hint}")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                problem = "has no 'text'" if "text" not in part else f"has 'text' of type {type(text).__name__}"
                raise InvalidMessagesError(f"{at} {problem}; a text part is {{'type': 'text', 'text': str}}")
        else:
            _check_image_part(at, part.get("image_url"))


def _check_image_part(at: str, image_url: Any) -> None:
    shape = "an image part is {'type': 'image_url', 'image_url': {'url': ...}} (llmproviders.image() builds one)"
    if not isinstance(image_url, Mapping):
        problem = f"'image_url' of type {type(image_url).__name__}"
        raise InvalidMessagesError(f"{at} has {problem}; {shape}")
    url = image_url.get("url")
    if not isinstance(url, str):
        problem = "no 'url'" if "url" not in image_url else f"a 'url' of type {type(url).__name__}"
        raise InvalidMessagesError(f"{at}.image_url has {problem}; {shape}")
    # The URL itself is never echoed: it may be a signed link, or megabytes of base64.
    if url[:5].lower() == "data:":
        header = re.compile(_DATA_URL, re.ASCII).match(url)
        if header is None:
            raise InvalidMessagesError(
                f"{at}.image_url.url is a data URL but not 'data:image/<type>;base64,<data>'; "
                "llmproviders.image() builds one from a file or bytes"
            )
        if not re.compile(_BASE64, re.ASCII).fullmatch(url, header.end()):
            raise InvalidMessagesError(f"{at}.image_url.url is a data URL whose data is not base64 (or is empty)")
    else:
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        try:
            host = _url_host(url)
        except ValueError:
            host = None
        if scheme not in ("http", "https") or not host:
            if scheme in ("http", "https"):
                shown = f"an {scheme} URL without a valid host"
            else:
                shown = f"a {scheme!r} URL" if scheme.isalnum() and len(scheme) < 20 else "not a URL"
            raise InvalidMessagesError(
                f"{at}.image_url.url is {shown}; give an http(s) URL or a base64 data URL (llmproviders.image())"
            )
    detail = image_url.get("detail")
    if "detail" in image_url and detail not in IMAGE_DETAILS:
        raise InvalidMessagesError(
            f"{at}.image_url.detail is {detail!r}; expected one of {', '.join(repr(d) for d in IMAGE_DETAILS)}"
        )


def _url_host(url: str) -> Optional[str]:
    parts = urlsplit(url)
    parts.port  # noqa: B018  (raises ValueError for a port that is not a number in range)
    return parts.hostname


def _check_tool_calls(where: str, tool_calls: Any) -> None:
    shape = "[{'id': str, 'type': 'function', 'function': {'name': str, 'arguments': str}}]"
    if not isinstance(tool_calls, (list, tuple)):
        raise InvalidMessagesError(
            f"{where} has 'tool_calls' of type {type(tool_calls).__name__}; expected OpenAI's shape {shape}"
        )
    for number, call in enumerate(tool_calls):
        at = f"{where}.tool_calls[{number}]"
        if not isinstance(call, Mapping):
            raise InvalidMessagesError(f"{at} must be a dict, not {type(call).__name__}; expected {shape}")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidMessagesError(f"{at} needs a non-empty string 'id' (the tool message answers it by that id)")
        if call.get("type") != "function":
            problem = "has no 'type'" if "type" not in call else f"has type {call.get('type')!r}"
            raise InvalidMessagesError(f"{at} {problem}; tool calls have type 'function'")
        function = call.get("function")
        if not isinstance(function, Mapping):
            raise InvalidMessagesError(f"{at} needs 'function': {{'name': str, 'arguments': str}}")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidMessagesError(f"{at}.function needs a non-empty string 'name'")
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            problem = "has no 'arguments'" if "arguments" not in function else (
                f"has 'arguments' of type {type(arguments).__name__}"
            )
            raise InvalidMessagesError(
                f"{at}.function {problem}; arguments are a JSON text (json.dumps() them), sent back as the model wrote them"
            )


def _check_unicode(where: str, message: Mapping[str, Any]) -> None:
    """Refuse any string of ``message`` (keys included, at any depth) that has a lone
    surrogate: it cannot be encoded as UTF-8, so no upstream could read it. Each dict or
    list is looked at once (one that refers back to itself is refused later, as JSON
    cannot carry it), and no deeper than :data:`MAX_DEPTH`."""
    stack: List[Tuple[str, Any, int]] = [(where, message, 0)]
    seen: Set[int] = set()
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            _refuse_surrogates(path, value)
            continue
        if not isinstance(value, (Mapping, list, tuple)) or id(value) in seen:
            continue
        seen.add(id(value))
        if depth >= MAX_DEPTH:
            raise InvalidMessagesError(f"{path} is nested more than {MAX_DEPTH} levels deep; no upstream takes that")
        depth += 1
        if isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str):
                    _refuse_surrogates(f"a key of {path}", key)
                    stack.append((f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]", item, depth))
                else:
                    stack.append((f"{path}[{key!r}]", item, depth))
        else:
            stack.extend((f"{path}[{number}]", item, depth) for number, item in enumerate(value))


def _refuse_surrogates(path: str, text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidMessagesError(
            f"{path} has a lone surrogate (U+{ord(text[exc.start]):04X}) at character {exc.start}: text must be "
            "valid Unicode; decode bytes with errors='replace', or remove the character"
        ) from None


def text_messages(messages: Messages, provider: str) -> List[Dict[str, Any]]:
    """``messages`` (as :func:`validate_messages` returns them) for a provider that
    sends plain text: each list of text parts becomes one string, the parts joined with
    :data:`PART_SEPARATOR` (a newline), so :func:`format_prompt` works on the result.

    Raises :class:`InvalidMessagesError`, naming ``provider``, for what plain text
    cannot carry: image parts, ``tool`` messages and assistant ``tool_calls``.

    Example usage::

        >>> text_messages([{"role": "user", "content": [{"type": "text", "text": "a"},
        ...                                            {"type": "text", "text": "b"}]}], "FlowGpt")
        [{'role': 'user', 'content': 'a\\nb'}]
    """
    advice = "use an OpenAI-compatible provider (OpenAICompatible, with base_url=...)"
    result = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role")
        if role == "tool":
            raise InvalidMessagesError(
                f"{provider}: {where} is a 'tool' message; {provider} sends one plain-text prompt and cannot "
                f"carry tool results: {advice}",
                provider=provider,
            )
        if message.get("tool_calls"):
            raise InvalidMessagesError(
                f"{provider}: {where} has 'tool_calls'; {provider} knows nothing of tools: {advice}",
                provider=provider,
            )
        content = message.get("content")
        if isinstance(content, (list, tuple)):
            texts = []
            for number, part in enumerate(content):
                if part.get("type") != "text":
                    what = "an image" if part.get("type") == "image_url" else f"a {part.get('type')!r} part"
                    raise InvalidMessagesError(
                        f"{provider}: {where}.content[{number}] is {what}; {provider} takes text only: {advice} "
                        "and a model that reads images",
                        provider=provider,
                    )
                texts.append(part["text"])
            message = {**message, "content": PART_SEPARATOR.join(texts)}
        else:
            message = dict(message)
        result.append(message)
    return result


def image(
    path_or_bytes: Union[str, "os.PathLike[str]", bytes, bytearray, memoryview],
    mime: Optional[str] = None,
    *,
    detail: Optional[str] = None,
) -> Dict[str, Any]:
    """An image part for a user message, with the image inlined as a base64 data URL.

    ``path_or_bytes`` is a file path (``str`` or :class:`os.PathLike`) or the image's
    bytes. ``mime`` (such as ``"image/png"``) is guessed when not given: from the
    bytes (PNG, JPEG, GIF and WebP are recognised), else from the file name. ``detail``
    is OpenAI's ``"auto"``, ``"low"`` or ``"high"``. Raises
    :class:`InvalidArgumentError` for a missing or unreadable file, empty data, or a
    type that cannot be told.

    Example usage::

        messages = [{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            llmproviders.image("photo.jpg"),
        ]}]
    """
    name: Optional[str] = None
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    elif isinstance(path_or_bytes, (str, os.PathLike)):
        name = os.fspath(path_or_bytes)
        if not isinstance(name, str):
            name = os.fsdecode(name)
        try:
            with open(name, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            raise InvalidArgumentError(f"image file not found: {name!r}") from None
        except OSError as exc:
            raise InvalidArgumentError(f"cannot read image file {name!r}: {exc.strerror or exc}") from None
    else:
        raise InvalidArgumentError(
            f"image() takes a file path or the image's bytes, not {type(path_or_bytes).__name__}"
        )
    if not data:
        raise InvalidArgumentError(f"image file {name!r} is empty" if name else "image() got empty bytes")
    if mime is None:
        mime = _sniff_image(data) or (_guess_image_type(name) if name else None)
        if mime is None:
            source = f"file {name!r}" if name else "bytes"
            raise InvalidArgumentError(
                f"cannot tell the image type of {source} (PNG, JPEG, GIF and WebP are recognised): "
                "pass mime='image/...'"
            )
    elif not isinstance(mime, str) or not re.compile(_MIME, re.ASCII).fullmatch(mime):
        raise InvalidArgumentError(f"mime must be an image type such as 'image/png', not {mime!r}")
    url: Dict[str, Any] = {"url": f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"}
    if detail is not None:
        if detail not in IMAGE_DETAILS:
            raise InvalidArgumentError(
                f"detail must be one of {', '.join(repr(d) for d in IMAGE_DETAILS)}, not {detail!r}"
            )
        url["detail"] = detail
    return {"type": "image_url", "image_url": url}


def _sniff_image(data: bytes) -> Optional[str]:
    """The image type the magic bytes at the start of ``data`` say, if recognised."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _guess_image_type(name: str) -> Optional[str]:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed if guessed and guessed.startswith("image/") else None


def format_prompt(messages: Messages) -> str:
    """Flatten a conversation into one prompt, the way the upstreams expect it.

    One message: its content unchanged. Several: ``"{Role}: {content}"`` lines joined
    with newlines, then ``"\\nAssistant:"``. Content must be strings: pass messages with
    part lists through :func:`text_messages` first.

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
